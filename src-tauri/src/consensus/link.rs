//! The way to the leader: finding it, forwarding an operation to it with retries of what may
//! succeed when retried, and waiting until this peer has applied what was committed. Held
//! apart from [`super::raft::RaftConsensus`] (and cheap to clone) so that the committer's
//! task ([`super::committer`]) can use it without borrowing the component.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, Fatal, RaftError};
use openraft::Raft;

use super::network::{LeaderOp, RaftRequest, RaftResponse, RaftTransport, BUSY_ANSWER};
use super::typ::{ClusterNode, NodeId, TypeConfig};
use crate::components::ConsensusError;
use crate::config::RaftConfig;

/// A failed write whose outcome is unknown or transient: it may succeed when retried.
pub(super) fn unavailable(message: impl Into<String>) -> ConsensusError {
    ConsensusError::Unavailable {
        attempts: 1,
        message: message.into(),
    }
}

/// A failed write through openraft, by what the caller can do.
pub(super) fn write_err(
    e: RaftError<NodeId, ClientWriteError<NodeId, ClusterNode>>,
) -> ConsensusError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            unavailable("leadership changed during the commit")
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(e),
        )) => unavailable(e.to_string()),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ConsensusError::Refused(e.to_string())
        }
        // Raft stops for good on a storage error (a full disk): said at once, never retried
        // (a retry would only meet a stopping peer and hide the cause).
        RaftError::Fatal(Fatal::StorageError(e)) => ConsensusError::Storage(e.to_string()),
        e => unavailable(e.to_string()),
    }
}

/// An error the leader answered a forwarded operation with, as this peer's caller sees it:
/// the leader's own storage failure stops the leader, not the cluster, so it may succeed with
/// the next leader (retried); what it says of the request stands.
fn from_leader(e: ConsensusError) -> ConsensusError {
    match e {
        ConsensusError::Storage(m) => unavailable(format!("the leader could not store it: {m}")),
        other => other,
    }
}

/// How a leader handing leadership over answers a write that arrived meanwhile (once the
/// hand-over ended): the caller waits for the next leader and sends it there.
pub(super) const HANDED_OVER: &str = "this peer handed leadership over before stopping";

#[derive(Clone)]
pub(super) struct LeaderLink {
    pub(super) raft: Raft<TypeConfig>,
    pub(super) me: NodeId,
    pub(super) cfg: RaftConfig,
    pub(super) transport: Arc<dyn RaftTransport>,
    /// True while this leader hands leadership over (`RaftConsensus::hand_over`): it takes
    /// no new write into its log, so that the voter it asks to take over holds every entry.
    pub(super) handing_over: Arc<tokio::sync::watch::Sender<bool>>,
    /// Held (shared) by each write between the gate and its end in Raft, so that the
    /// hand-over can wait (exclusive) until none is left on its way into the log.
    pub(super) writing: Arc<tokio::sync::RwLock<()>>,
    /// The leader this peer last followed, and when (see `senders`).
    pub(super) last_leader: Arc<super::senders::LastLeader>,
}

/// A write let through the gate: held until the write is in Raft's hands and answered.
pub(super) type Passed = tokio::sync::OwnedRwLockReadGuard<()>;

impl LeaderLink {
    /// Holds a write that reached this leader during a hand-over until the hand-over ends,
    /// then turns it away to whoever leads next ([`HANDED_OVER`]); at any other time, lets it
    /// through at once.
    pub(super) async fn gate(&self) -> Result<Passed, ConsensusError> {
        let limit = self.cfg.wait_for_leader_timeout.get();
        let started = std::time::Instant::now();
        loop {
            // Counted as on its way before the flag is read: a hand-over that sets the flag
            // then waits for the count to drain cannot miss this write.
            let passed = self.writing.clone().read_owned().await;
            let mut over = self.handing_over.subscribe();
            if !*over.borrow_and_update() {
                return Ok(passed);
            }
            drop(passed);
            let left = limit.saturating_sub(started.elapsed());
            let _ = tokio::time::timeout(left, over.wait_for(|h| !h)).await;
            // Still the leader (the hand-over failed): the write goes into this log after all.
            let leads = self.raft.metrics().borrow().current_leader == Some(self.me);
            if !leads || started.elapsed() >= limit {
                return Err(unavailable(HANDED_OVER));
            }
        }
    }

    /// Refuses, while a hand-over is under way, an operation that would add to the log
    /// (a membership change) without holding the hand-over up for its whole length.
    pub(super) fn refuse_during_hand_over(&self) -> Result<(), ConsensusError> {
        if *self.handing_over.borrow() {
            return Err(unavailable(HANDED_OVER));
        }
        Ok(())
    }

    /// Stops letting writes into this leader's log (see [`Self::gate`]) and waits until the
    /// writes already let through are answered; `false` lets them in again.
    pub(super) async fn hold_writes(&self, hold: bool) {
        self.handing_over.send_replace(hold);
        if hold {
            drop(self.writing.write().await);
        }
    }

    /// The member with Raft id `id`, if it is one.
    pub(super) fn member(&self, id: NodeId) -> Option<ClusterNode> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .cloned()
    }

    /// Waits until a leader is known, up to `wait_for_leader_timeout`.
    pub(super) async fn wait_for_leader(&self) -> Result<NodeId, ConsensusError> {
        let timeout = self.cfg.wait_for_leader_timeout.get();
        let mut metrics = self.raft.metrics();
        let wait = async {
            loop {
                if let Some(l) = metrics.borrow_and_update().current_leader {
                    return l;
                }
                if metrics.changed().await.is_err() {
                    // Raft stopped: nothing will ever be elected.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ConsensusError::NoLeader(timeout))
    }

    /// Waits, up to `wait_for_leader_timeout`, until this peer knows a leader other than
    /// `gone` (one it could not reach: probably dead, and Raft elects another only after its
    /// election timeout), or follows `gone` again (a leader restarted within the election
    /// timeout is still the leader: its first heartbeat says it is back). Returns either
    /// way: the next attempt tries whoever leads then.
    async fn wait_for_leader_other_than(&self, gone: NodeId) {
        let since = std::time::Instant::now();
        let gone_peer = self.member(gone).map(|n| n.peer_id);
        let mut metrics = self.raft.metrics();
        let other = async {
            loop {
                let leader = metrics.borrow_and_update().current_leader;
                if leader.is_some_and(|l| l != gone) || metrics.changed().await.is_err() {
                    return;
                }
            }
        };
        let back = async {
            let Some(peer) = gone_peer else {
                return std::future::pending().await;
            };
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
            while !self.last_leader.heard_since(&peer, since) {
                tick.tick().await;
            }
        };
        let either = async {
            tokio::select! {
                _ = other => {}
                _ = back => {}
            }
        };
        let _ = tokio::time::timeout(self.cfg.wait_for_leader_timeout.get(), either).await;
    }

    /// Runs `op` on the leader: through `on_leader` when this peer leads, else forwarded to
    /// it, retrying transient failures `commit_retries` times after `commit_retry_delay`. A
    /// leader that cannot be reached is given up on only after the cluster had
    /// `wait_for_leader_timeout` to elect another, so that a write during a leader's death
    /// waits for the next leader instead of failing at once. A refusal (the last voter, not a
    /// member) is returned at once: retrying it cannot help. For a commit, returns the index
    /// of its log entry.
    #[tracing::instrument(level = "debug", skip_all)]
    pub(super) async fn call<F, Fut>(
        &self,
        op: LeaderOp,
        on_leader: F,
    ) -> Result<Option<u64>, ConsensusError>
    where
        F: Fn(LeaderOp) -> Fut,
        Fut: Future<Output = Result<Option<u64>, ConsensusError>>,
    {
        let attempts = self.cfg.commit_retries + 1;
        let mut last_error = String::new();
        for attempt in 1..=attempts {
            let leader = self.wait_for_leader().await?;
            let mut unreachable = None;
            let result = if leader == self.me {
                let r = on_leader(op.clone()).await;
                if matches!(&r, Err(ConsensusError::Unavailable { message, .. }) if message == HANDED_OVER)
                {
                    unreachable = Some(leader);
                }
                r
            } else {
                match self.forward(leader, op.clone()).await {
                    Ok(answer) => {
                        if matches!(&answer, Err(ConsensusError::Unavailable { message, .. }) if message == HANDED_OVER)
                        {
                            unreachable = Some(leader);
                        }
                        answer.map_err(from_leader)
                    }
                    Err(e) => {
                        // A busy leader is there: ask it again after the retry delay.
                        if !e.to_string().contains(BUSY_ANSWER) {
                            unreachable = Some(leader);
                        }
                        Err(e)
                    }
                }
            };
            match result {
                Ok(index) => return Ok(index),
                Err(e) if !e.is_transient() => return Err(e),
                Err(e) => {
                    if unreachable.is_some() && e.to_string().contains(HANDED_OVER) {
                        tracing::info!(attempt, "the leader handed leadership over: sent again");
                    } else {
                        tracing::warn!(attempt, error = %e, "commit failed");
                    }
                    last_error = match e {
                        ConsensusError::Unavailable { message, .. } => message,
                        other => other.to_string(),
                    };
                }
            }
            if attempt < attempts {
                if let Some(gone) = unreachable {
                    self.wait_for_leader_other_than(gone).await;
                }
                tokio::time::sleep(self.cfg.commit_retry_delay.get()).await;
            }
        }
        Err(ConsensusError::Unavailable {
            attempts,
            message: last_error,
        })
    }

    /// How long the leader may take for `op`: a commit waits for a quorum, a membership
    /// change also for a new peer to catch up.
    pub(super) fn leader_limit(&self, op: &LeaderOp) -> Duration {
        match op {
            LeaderOp::Commit(_) => self.cfg.wait_for_leader_timeout.get(),
            _ => self.cfg.membership_timeout(),
        }
    }

    /// `work` on the leader, with [`Self::leader_limit`]: a leader that lost its quorum would
    /// otherwise wait forever for the commit.
    pub(super) async fn limited(
        &self,
        op: &LeaderOp,
        work: impl Future<Output = Result<Option<u64>, ConsensusError>>,
    ) -> Result<Option<u64>, ConsensusError> {
        let limit = self.leader_limit(op);
        tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(unavailable(format!(
                "not committed within {limit:?}: the cluster may have lost its quorum"
            )))
        })
    }

    /// Commits `op` here, this peer being the leader (with its time limit).
    pub(super) async fn commit_here(&self, op: LeaderOp) -> Result<Option<u64>, ConsensusError> {
        let LeaderOp::Commit(command) = &op else {
            return Err(unavailable("not a commit"));
        };
        let passed = self.gate().await?;
        let write = self.raft.client_write(command.clone());
        let answer = self
            .limited(&op, async move {
                write.await.map(|r| Some(r.log_id.index)).map_err(write_err)
            })
            .await;
        drop(passed);
        answer
    }

    /// Sends `op` to `leader`: its answer, or (the outer error) why it could not be reached.
    async fn forward(
        &self,
        leader: NodeId,
        op: LeaderOp,
    ) -> Result<Result<Option<u64>, ConsensusError>, ConsensusError> {
        let Some(node) = self.member(leader) else {
            let e = unavailable(format!("leader {leader} is not in the membership"));
            return Ok(Err(e));
        };
        // Longer than the leader may take, so that the leader's own answer (committed, or
        // why not) arrives instead of a timeout here and a needless retry.
        let timeout = self.leader_limit(&op) + self.cfg.network_timeout.get();
        match self
            .transport
            .send(&node, RaftRequest::Leader(op), timeout)
            .await
        {
            Ok(RaftResponse::Done(r)) => Ok(r),
            Ok(_) => Ok(Err(unavailable("leader answered a different request"))),
            Err(e) => Err(unavailable(format!(
                "forwarding to leader {}: {e}",
                node.peer_id
            ))),
        }
    }

    /// Waits, up to `wait_for_leader_timeout`, until this peer has applied the log up to
    /// `index` (`what`: how far the entry got, for the error).
    pub(super) async fn wait_applied(&self, index: u64, what: &str) -> Result<(), ConsensusError> {
        let mut metrics = self.raft.metrics();
        let limit = self.cfg.wait_for_leader_timeout.get();
        let applied = tokio::time::timeout(limit, async {
            metrics
                .wait_for(|m| m.last_applied.is_some_and(|l| l.index >= index))
                .await
                .map(|_| ())
        })
        .await;
        match applied {
            Ok(Ok(())) => Ok(()),
            // Committed (durable on a quorum), just not applied here yet.
            _ => Err(ConsensusError::Unavailable {
                attempts: 1,
                message: format!(
                    "{what}, but this peer has not applied it within {limit:?}; it will"
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A storage error stops Raft for good: the writer hears it at once and is not told to
    /// retry (a retry only met a stopping peer, and the cause was lost: "full disk" became
    /// "the peer is stopping").
    #[test]
    fn a_storage_error_is_told_as_it_is_and_not_retried() {
        let full = openraft::StorageError::from_io_error(
            openraft::ErrorSubject::Store,
            openraft::ErrorVerb::Write,
            std::io::Error::other("database or disk is full"),
        );
        let e = write_err(RaftError::Fatal(Fatal::StorageError(full)));
        assert!(
            matches!(&e, ConsensusError::Storage(m) if m.contains("full")),
            "{e:?}"
        );
        assert!(!e.is_transient());
        let stopped = write_err(RaftError::Fatal(Fatal::Stopped));
        assert!(stopped.is_transient(), "{stopped:?}");
        // Heard from the leader by a follower: the leader stops, another is elected, the
        // write is tried again there.
        let relayed = from_leader(e);
        assert!(
            relayed.is_transient() && relayed.to_string().contains("full"),
            "{relayed:?}"
        );
        let refused = from_leader(ConsensusError::Refused("last voter".into()));
        assert!(!refused.is_transient());
    }
}
