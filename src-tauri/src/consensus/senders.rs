//! Who may send this peer Raft's own messages (AppendEntries, Vote, InstallSnapshot).
//!
//! Holding the cluster secret lets a host connect; it does not make it a member. Two rules,
//! both of which leave every legitimate flow to plain Raft:
//! - a message names its sender as its candidate or leader (the swarm authenticates the
//!   sender's peer id), so that nobody speaks in a member's name;
//! - a sender that is not a member as this peer knows the membership is refused while this
//!   peer follows a leader that is a member and has heard from it within the election
//!   timeout (the Raft thesis's answer to disruptive servers, §4.2.3): a stranger cannot
//!   depose a healthy leader with a huge term, nor take over its followers. Without such a
//!   leader (an election, a partition, a peer catching up through memberships it never knew,
//!   a fresh joiner) the message goes to Raft: a voter added while this peer was away, now
//!   leader, is followed as soon as the old leader is silent.
//!
//! An earlier version asked known voters to vouch for unknown senders; an independent review
//! showed joins and sleeping followers could then stall for good (every voter they knew
//! replaced), so this one asks nobody.

use std::time::{Duration, Instant};

/// The leader this peer last took AppendEntries from, and when.
#[derive(Default)]
pub(super) struct LastLeader(std::sync::Mutex<Option<(String, Instant)>>);

impl LastLeader {
    /// `leader` was followed just now.
    pub(super) fn heard(&self, leader: &str) {
        *self.0.lock().unwrap() = Some((leader.to_string(), Instant::now()));
    }

    /// Whether `leader` was followed after `since`.
    pub(super) fn heard_since(&self, leader: &str, since: Instant) -> bool {
        self.0
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|(l, at)| l == leader && *at > since)
    }

    /// The leader heard from within `within`, if any.
    pub(super) fn live(&self, within: Duration) -> Option<String> {
        self.0
            .lock()
            .unwrap()
            .as_ref()
            .filter(|(_, at)| at.elapsed() < within)
            .map(|(l, _)| l.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_is_live_only_within_the_timeout() {
        let l = LastLeader::default();
        assert_eq!(l.live(Duration::from_secs(1)), None);
        l.heard("a");
        assert_eq!(l.live(Duration::from_secs(1)).as_deref(), Some("a"));
        assert_eq!(l.live(Duration::ZERO), None);
        let before = Instant::now();
        assert!(!l.heard_since("a", before));
        l.heard("a");
        assert!(l.heard_since("a", before) && !l.heard_since("b", before));
    }
}
