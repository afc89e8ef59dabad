//! Who may take part in elections: a peer whose Raft state is the one its cluster knows.
//!
//! Raft's safety rests on every voter keeping what it acknowledged. A peer that lost its state
//! (`state cleanup`, a wiped folder, `daemon --bootstrap`) breaks that: with an empty or short
//! log it would grant its vote to any candidate, and a candidate that never saw an
//! acknowledged pin could win with it and overwrite that pin on the others. So each Raft
//! state carries an id of its history ([`store::history`](super::store::history)), made when
//! the state is created, and every membership record names the history of the peer it
//! admitted ([`ClusterNode::history`]).
//!
//! A peer is **admitted** when its own log's membership names it with its history: the leader
//! wrote that record after the peer asked to join with its new state, so the peer's log then
//! holds everything that leader had (Raft's log matching), every acknowledged entry included.
//! Until then it neither votes nor stands for election, whatever the membership it replicates
//! says (it may be the one from before it lost its state). Records without a history (made
//! before histories existed) admit the peer, except while it waits to rejoin.
//!
//! Messages are checked the other way too: every Raft message names the history the sender
//! records for its target, and a peer whose history is another refuses it, so a peer that
//! came back with another state is never counted as the voter it was.

use std::sync::atomic::{AtomicBool, Ordering};

use openraft::RaftMetrics;

use super::typ::{ClusterNode, NodeId};

/// Whether this peer may vote, as judged from the membership in its own log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Admitted,
    /// It lost its state and waits for the cluster to admit it again.
    Waiting,
    /// The membership names this peer with another history: another state of this peer's,
    /// one it no longer has.
    OtherHistory(String),
}

/// A Raft message refused: it is meant for another Raft state of this peer's (or for none,
/// while this one waits to be admitted). The text says why, for the sender's log.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotThisState(pub String);

pub struct Admission {
    history: String,
    /// This state was made to rejoin (`--bootstrap`) and has not been admitted yet.
    joining: AtomicBool,
    admitted: AtomicBool,
}

impl Admission {
    /// Not admitted until the membership has been judged ([`Admission::update`]).
    pub fn new(history: String, joining: bool) -> Admission {
        Admission {
            history,
            joining: AtomicBool::new(joining),
            admitted: AtomicBool::new(false),
        }
    }

    pub fn history(&self) -> &str {
        &self.history
    }

    pub fn is_admitted(&self) -> bool {
        self.admitted.load(Ordering::Acquire)
    }

    pub fn is_joining(&self) -> bool {
        self.joining.load(Ordering::Acquire)
    }

    /// The verdict for membership `m` (this peer's Raft id `me`).
    pub fn judge(&self, m: &RaftMetrics<NodeId, ClusterNode>, me: NodeId) -> Verdict {
        let record = m.membership_config.membership().get_node(&me);
        // While joining, the admitting record counts once committed (applied here): an entry
        // only appended may come from a leader that no longer leads, and be undone.
        let committed =
            m.last_applied.map(|l| l.index) >= m.membership_config.log_id().map(|l| l.index);
        match record.and_then(|n| n.history.as_ref()) {
            Some(h) if *h == self.history && (committed || !self.is_joining()) => Verdict::Admitted,
            Some(h) if *h == self.history => Verdict::Waiting,
            Some(h) if !self.is_joining() => Verdict::OtherHistory(h.clone()),
            _ if self.is_joining() => Verdict::Waiting,
            _ => Verdict::Admitted,
        }
    }

    /// Records the verdict; returns whether it changed whether this peer is admitted.
    pub fn update(&self, verdict: &Verdict) -> bool {
        let admitted = *verdict == Verdict::Admitted;
        self.admitted.swap(admitted, Ordering::AcqRel) != admitted
    }

    /// The cluster admitted this state (its record is applied): no longer joining.
    pub fn joined(&self) {
        self.joining.store(false, Ordering::Release);
    }

    /// Refuses a Raft message meant for another history of this peer's; while joining, also
    /// one that names no history (a record made before histories existed is this peer's
    /// former state's, and its answers must not count as that voter's).
    pub fn check_target(&self, to: Option<&str>) -> Result<(), NotThisState> {
        match to {
            None if self.is_joining() => Err(NotThisState(
                "this peer's Raft state is new and waits to be admitted: it does not answer \
                 for a record that names no Raft state"
                    .into(),
            )),
            Some(h) if h != self.history => Err(NotThisState(format!(
                "this peer's Raft state is not the one the sender's membership names (history \
                 {h}, this peer has {}): it lost its state and must be removed (peers rm) and \
                 rejoin with --bootstrap",
                self.history
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use openraft::{CommittedLeaderId, LogId, Membership, StoredMembership};

    use super::*;

    fn metrics(me: NodeId, record: Option<Option<&str>>) -> RaftMetrics<NodeId, ClusterNode> {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            7,
            ClusterNode {
                peer_id: "other".into(),
                ..Default::default()
            },
        );
        if let Some(h) = record {
            nodes.insert(
                me,
                ClusterNode {
                    peer_id: "me".into(),
                    addrs: Vec::new(),
                    history: h.map(String::from),
                },
            );
        }
        let voters = nodes
            .keys()
            .copied()
            .collect::<std::collections::BTreeSet<_>>();
        let membership = Membership::new(vec![voters], nodes);
        let mut m = RaftMetrics::new_initial(me);
        m.membership_config = std::sync::Arc::new(StoredMembership::new(None, membership));
        m
    }

    #[test]
    fn a_rejoining_state_votes_only_once_its_own_history_is_in_the_membership() {
        let a = Admission::new("new".into(), true);
        // The record from before it lost its state, with or without a history, or none yet.
        assert_eq!(a.judge(&metrics(1, Some(Some("old"))), 1), Verdict::Waiting);
        assert_eq!(a.judge(&metrics(1, Some(None)), 1), Verdict::Waiting);
        assert_eq!(a.judge(&metrics(1, None), 1), Verdict::Waiting);
        assert!(
            a.check_target(None).is_err(),
            "it answers for no old record"
        );
        // Named, but only appended (not applied): a leader that no longer leads may have
        // written it, and it may be undone.
        let at = |index| Some(LogId::new(CommittedLeaderId::new(1, 7), index));
        let mut appended = metrics(1, Some(Some("new")));
        let membership = appended.membership_config.membership().clone();
        appended.membership_config = std::sync::Arc::new(StoredMembership::new(at(5), membership));
        appended.last_applied = at(4);
        assert_eq!(a.judge(&appended, 1), Verdict::Waiting);
        appended.last_applied = at(5);
        assert_eq!(a.judge(&appended, 1), Verdict::Admitted);
        assert!(a.update(&Verdict::Admitted));
        assert!(a.is_admitted());
        a.joined();
        // Admitted for good once joined, except under a record of another state.
        assert_eq!(a.judge(&metrics(1, Some(None)), 1), Verdict::Admitted);
        assert_eq!(
            a.judge(&metrics(1, Some(Some("old"))), 1),
            Verdict::OtherHistory("old".into())
        );
    }

    #[test]
    fn a_peer_with_its_state_is_admitted_and_refuses_messages_for_another_state() {
        let a = Admission::new("mine".into(), false);
        assert!(!a.is_admitted(), "not before the membership was judged");
        assert_eq!(a.judge(&metrics(1, Some(None)), 1), Verdict::Admitted);
        assert_eq!(a.judge(&metrics(1, None), 1), Verdict::Admitted);
        assert_eq!(
            a.judge(&metrics(1, Some(Some("gone"))), 1),
            Verdict::OtherHistory("gone".into())
        );
        assert!(a.check_target(None).is_ok());
        assert!(a.check_target(Some("mine")).is_ok());
        let refused = a.check_target(Some("gone")).unwrap_err().to_string();
        assert!(refused.contains("--bootstrap"), "{refused}");
    }
}
