//! Who may send this peer Raft's own messages (AppendEntries, Vote, InstallSnapshot).
//!
//! Holding the cluster secret lets a host connect; it does not make it a member. A message
//! must name its sender as its candidate or leader (the swarm authenticates the sender's
//! peer id), and the sender must be a member as this peer knows the membership. A member that
//! missed a membership change may be sent messages by a peer it does not know yet (a voter
//! added while it was away, now leader): it then asks a voter it knows for that voter's
//! membership, and believes the sender if that membership is at least as new as its own and
//! has the sender. A peer that knows no membership yet (a fresh joiner) takes messages from
//! whoever leads the cluster it asked to join. Answers are remembered until this peer's
//! membership changes; refusals for a few seconds, so that a stranger's flood costs one
//! question per few seconds.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use openraft::LogId;

use super::typ::NodeId;

/// How long an unknown sender stays refused before voters are asked about it again.
const REFUSED_FOR: Duration = Duration::from_secs(5);
/// At most this many refused senders are remembered (others are refused without asking).
const REMEMBERED: usize = 256;

/// The senders this peer was told about, for the membership it had then.
#[derive(Default)]
pub(super) struct Senders {
    /// Serialises the questions, so that a burst of messages asks once.
    asking: tokio::sync::Mutex<()>,
    known: std::sync::Mutex<Known>,
}

#[derive(Default)]
struct Known {
    /// The membership (its log id) the vouched senders were checked against.
    membership: Option<LogId<NodeId>>,
    vouched: HashSet<String>,
    refused: HashMap<String, Instant>,
}

/// What is known of `from` now.
pub(super) enum Verdict {
    Vouched,
    Refused,
    Unknown,
}

impl Senders {
    pub(super) fn lock(&self) -> &tokio::sync::Mutex<()> {
        &self.asking
    }

    /// What was learned of `from` for the membership `mine`.
    pub(super) fn verdict(&self, from: &str, mine: Option<LogId<NodeId>>) -> Verdict {
        let mut k = self.known.lock().unwrap();
        if k.membership != mine {
            k.membership = mine;
            k.vouched.clear();
        }
        if k.vouched.contains(from) {
            return Verdict::Vouched;
        }
        match k.refused.get(from) {
            Some(at) if at.elapsed() < REFUSED_FOR => Verdict::Refused,
            _ if k.refused.len() >= REMEMBERED => {
                k.refused.retain(|_, at| at.elapsed() < REFUSED_FOR);
                if k.refused.len() >= REMEMBERED {
                    Verdict::Refused
                } else {
                    Verdict::Unknown
                }
            }
            _ => Verdict::Unknown,
        }
    }

    /// Remembers the answer about `from` for the membership `mine`.
    pub(super) fn learned(&self, from: &str, mine: Option<LogId<NodeId>>, vouched: bool) {
        let mut k = self.known.lock().unwrap();
        if k.membership != mine {
            k.membership = mine;
            k.vouched.clear();
        }
        if vouched {
            k.refused.remove(from);
            k.vouched.insert(from.to_string());
        } else {
            k.refused.insert(from.to_string(), Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_last_as_long_as_the_membership_and_refusals_a_few_seconds() {
        let s = Senders::default();
        let m1 = Some(LogId::new(openraft::CommittedLeaderId::new(1, 1), 5));
        let m2 = Some(LogId::new(openraft::CommittedLeaderId::new(1, 1), 9));
        assert!(matches!(s.verdict("a", m1), Verdict::Unknown));
        s.learned("a", m1, true);
        s.learned("b", m1, false);
        assert!(matches!(s.verdict("a", m1), Verdict::Vouched));
        assert!(matches!(s.verdict("b", m1), Verdict::Refused));
        // A new membership: ask again about who was vouched for.
        assert!(matches!(s.verdict("a", m2), Verdict::Unknown));
        for i in 0..REMEMBERED {
            s.learned(&format!("stranger {i}"), m2, false);
        }
        assert!(matches!(s.verdict("another", m2), Verdict::Refused));
    }
}
