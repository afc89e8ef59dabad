//! Membership and leader-only work (openraft's examples call this "management"): joining a
//! cluster, adding learners and voters, removing members, changing roles, and forwarding
//! writes to the leader with retries of what may succeed when retried.

use std::collections::BTreeSet;

use multiaddr::Multiaddr;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::ChangeMembers;

use super::network::{LeaderOp, RaftRequest, RaftResponse};
use super::raft::RaftConsensus;
use super::typ::{parse_node_id, ClusterNode, NodeId};
use crate::components::ConsensusError;

/// A failed write whose outcome is unknown or transient: it may succeed when retried.
fn unavailable(message: impl Into<String>) -> ConsensusError {
    ConsensusError::Unavailable {
        attempts: 1,
        message: message.into(),
    }
}

fn write_err(e: RaftError<NodeId, ClientWriteError<NodeId, ClusterNode>>) -> ConsensusError {
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
        e => unavailable(e.to_string()),
    }
}

/// `/…/p2p/<id>` → the member record a join is sent to.
fn node_of(addr: &Multiaddr) -> Result<ClusterNode, ConsensusError> {
    let (peer, base) = crate::net::split_p2p(addr).ok_or_else(|| {
        ConsensusError::BadInput(format!(
            "bootstrap address {addr} must end in /p2p/<peer id>"
        ))
    })?;
    Ok(ClusterNode {
        peer_id: peer.to_string(),
        addrs: vec![base.to_string()],
    })
}

impl RaftConsensus {
    /// Asks the cluster of the first `bootstrap` peer that answers to add this peer (as a
    /// learner, then a voter unless it is a follower). Returns once the leader has done so.
    pub async fn join_cluster(
        &self,
        bootstrap: &[Multiaddr],
        follower: bool,
    ) -> Result<(), ConsensusError> {
        let mut errors = Vec::new();
        for addr in bootstrap {
            let via = node_of(addr)?;
            match self.join(&via, follower).await {
                Ok(()) => {
                    tracing::info!("joined the cluster through {addr}");
                    return Ok(());
                }
                Err(e) => errors.push(format!("{addr}: {e}")),
            }
        }
        Err(unavailable(format!(
            "could not join the cluster (is the secret the same as the cluster's?): {}",
            errors.join("; ")
        )))
    }

    async fn join(&self, via: &ClusterNode, follower: bool) -> Result<(), ConsensusError> {
        let timeout = self.cfg.membership_timeout();
        let req = RaftRequest::Join {
            node: self.me_node.clone(),
            follower,
        };
        match self.transport.send(via, req, timeout).await {
            Ok(RaftResponse::Done(r)) => r,
            Ok(_) => Err(unavailable("peer answered a different request")),
            Err(e) => Err(unavailable(format!(
                "cannot reach bootstrap peer {}: {e}",
                via.peer_id
            ))),
        }
    }

    /// Waits until a leader is known, up to `wait_for_leader_timeout`.
    async fn wait_for_leader(&self) -> Result<NodeId, ConsensusError> {
        let timeout = self.cfg.wait_for_leader_timeout.get();
        let mut metrics = self.raft().metrics();
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

    /// Runs `op` on the leader: here when this peer leads, else forwarded to it, retrying
    /// transient failures `commit_retries` times after `commit_retry_delay`. A refusal (the
    /// last voter, not a member) is returned at once: retrying it cannot help.
    #[tracing::instrument(level = "debug", skip_all)]
    pub(super) async fn leader_call(&self, op: LeaderOp) -> Result<(), ConsensusError> {
        let attempts = self.cfg.commit_retries + 1;
        let mut last_error = String::new();
        for attempt in 1..=attempts {
            let leader = self.wait_for_leader().await?;
            let result = if leader == self.me {
                self.on_leader_limited(op.clone()).await
            } else {
                self.forward(leader, op.clone()).await
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) if !e.is_transient() => return Err(e),
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "commit failed");
                    last_error = match e {
                        ConsensusError::Unavailable { message, .. } => message,
                        other => other.to_string(),
                    };
                }
            }
            if attempt < attempts {
                tokio::time::sleep(self.cfg.commit_retry_delay.get()).await;
            }
        }
        Err(ConsensusError::Unavailable {
            attempts,
            message: last_error,
        })
    }

    /// [`Self::on_leader`] with a time limit: a leader that lost its quorum would otherwise
    /// wait forever for the commit.
    pub(super) async fn on_leader_limited(&self, op: LeaderOp) -> Result<(), ConsensusError> {
        let limit = match op {
            LeaderOp::Commit(_) => self.cfg.wait_for_leader_timeout.get(),
            _ => self.cfg.membership_timeout(),
        };
        tokio::time::timeout(limit, self.on_leader(op))
            .await
            .unwrap_or_else(|_| {
                Err(unavailable(format!(
                    "not committed within {limit:?}: the cluster may have lost its quorum"
                )))
            })
    }

    /// What only the leader does.
    async fn on_leader(&self, op: LeaderOp) -> Result<(), ConsensusError> {
        let raft = self.raft();
        match op {
            LeaderOp::Commit(op) => raft.client_write(op).await.map(|_| ()).map_err(write_err),
            LeaderOp::Join { node, follower } => {
                let id = parse_node_id(&node.peer_id)?;
                let voters = self.voter_ids();
                if !voters.contains(&id) {
                    tracing::info!(peer = %node.peer_id, follower, "adding peer as a learner");
                    raft.add_learner(id, node.clone(), true)
                        .await
                        .map_err(write_err)?;
                }
                if !follower && !voters.contains(&id) {
                    tracing::info!(peer = %node.peer_id, "promoting peer to voter");
                    raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                        .await
                        .map_err(write_err)?;
                }
                Ok(())
            }
            LeaderOp::Remove { peer_id } => {
                let id = parse_node_id(&peer_id)?;
                let node = self.member_node(id, &peer_id)?;
                let set = BTreeSet::from([id]);
                let voters = self.voter_ids();
                let change = if voters.contains(&id) {
                    if voters.len() == 1 {
                        return Err(ConsensusError::Refused(
                            "cannot remove the last voter of the cluster".into(),
                        ));
                    }
                    ChangeMembers::RemoveVoters(set)
                } else {
                    ChangeMembers::RemoveNodes(set)
                };
                raft.change_membership(change, false)
                    .await
                    .map_err(write_err)?;
                // Best effort: the removed peer may not learn it from the log.
                if id != self.me {
                    let t = self.transport.clone();
                    let timeout = self.cfg.network_timeout.get();
                    self.tasks.spawn(async move {
                        let _ = t.send(&node, RaftRequest::Removed, timeout).await;
                    });
                }
                Ok(())
            }
            LeaderOp::SetRole { peer_id, voter } => {
                let id = parse_node_id(&peer_id)?;
                self.member_node(id, &peer_id)?;
                let set = BTreeSet::from([id]);
                let change = if voter {
                    ChangeMembers::AddVoterIds(set)
                } else {
                    if self.voter_ids() == BTreeSet::from([id]) {
                        return Err(ConsensusError::Refused(
                            "cannot demote the last voter of the cluster".into(),
                        ));
                    }
                    ChangeMembers::RemoveVoters(set)
                };
                // retain: a demoted voter stays as a learner (follower).
                raft.change_membership(change, true)
                    .await
                    .map_err(write_err)?;
                Ok(())
            }
        }
    }

    async fn forward(&self, leader: NodeId, op: LeaderOp) -> Result<(), ConsensusError> {
        let node = self
            .member(leader)
            .ok_or_else(|| unavailable(format!("leader {leader} is not in the membership")))?;
        let timeout = match op {
            LeaderOp::Commit(_) => self.cfg.network_timeout.get(),
            _ => self.cfg.membership_timeout(),
        };
        match self
            .transport
            .send(&node, RaftRequest::Leader(op), timeout)
            .await
        {
            Ok(RaftResponse::Done(r)) => r,
            Ok(_) => Err(unavailable("leader answered a different request")),
            Err(e) => Err(unavailable(format!(
                "forwarding to leader {}: {e}",
                node.peer_id
            ))),
        }
    }

    /// The member with Raft id `id`, if it is one.
    pub(super) fn member(&self, id: NodeId) -> Option<ClusterNode> {
        self.raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .cloned()
    }

    /// [`Self::member`], or the error that `peer_id` is not a member.
    fn member_node(&self, id: NodeId, peer_id: &str) -> Result<ClusterNode, ConsensusError> {
        self.member(id)
            .ok_or_else(|| ConsensusError::NotMember(peer_id.to_string()))
    }

    fn voter_ids(&self) -> BTreeSet<NodeId> {
        self.raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }
}
