//! Membership and leader-only work (openraft's examples call this "management"): joining a
//! cluster, adding learners and voters, removing members, changing roles, and forwarding
//! writes to the leader with retries of what may succeed when retried.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use multiaddr::Multiaddr;
use openraft::ChangeMembers;

use super::link::{unavailable, write_err};
use super::network::{LeaderOp, RaftRequest, RaftResponse};
use super::raft::RaftConsensus;
use super::typ::{parse_node_id, ClusterNode, NodeId, Op};
use crate::components::ConsensusError;

/// Why a join attempt through one bootstrap peer failed.
enum JoinError {
    /// The bootstrap peer could not be reached at all.
    Unreachable(String),
    /// The cluster answered with an error.
    Cluster(ConsensusError),
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
        history: None,
    })
}

impl RaftConsensus {
    /// Asks the cluster of the first `bootstrap` peer that answers to add this peer (as a
    /// learner, then a voter unless it is a follower). Returns once the leader has done so.
    ///
    /// While the cluster has no leader (a bootstrap peer answers, but its leader is gone), it
    /// keeps asking, saying so, for up to the membership timeout; the error then names what
    /// failed: no bootstrap peer reachable (a wrong secret looks like that), or no leader.
    /// `stop` gives up the join (the peer is stopping).
    pub async fn join_cluster(
        &self,
        bootstrap: &[Multiaddr],
        follower: bool,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Result<(), ConsensusError> {
        tokio::select! {
            joined = self.ask_to_join(bootstrap, follower) => joined,
            _ = stop.cancelled() => Err(unavailable("stopped before the cluster added this peer")),
        }
    }

    async fn ask_to_join(
        &self,
        bootstrap: &[Multiaddr],
        follower: bool,
    ) -> Result<(), ConsensusError> {
        let vias = bootstrap
            .iter()
            .map(node_of)
            .collect::<Result<Vec<_>, _>>()?;
        let deadline = tokio::time::Instant::now() + self.cfg.membership_timeout();
        loop {
            let mut errors = Vec::new();
            let mut reached = false;
            for (addr, via) in bootstrap.iter().zip(&vias) {
                match self.join(via, follower).await {
                    Ok(()) => {
                        tracing::info!("joined the cluster through {addr}");
                        return Ok(());
                    }
                    Err(JoinError::Unreachable(e)) => errors.push(format!("{addr}: {e}")),
                    Err(JoinError::Cluster(e)) if e.is_transient() => {
                        reached = true;
                        errors.push(format!("{addr}: {e}"));
                    }
                    Err(JoinError::Cluster(e)) => return Err(e),
                }
            }
            let errors = errors.join("; ");
            if !reached {
                return Err(unavailable(format!(
                    "could not join the cluster: no bootstrap peer could be reached (is the \
                     secret the same as the cluster's?): {errors}"
                )));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(unavailable(format!(
                    "could not join the cluster: it has no leader (no quorum?): {errors}"
                )));
            }
            tracing::warn!("the cluster cannot add this peer yet, waiting: {errors}");
            tokio::time::sleep(
                self.cfg
                    .commit_retry_delay
                    .get()
                    .max(Duration::from_secs(1)),
            )
            .await;
        }
    }

    async fn join(&self, via: &ClusterNode, follower: bool) -> Result<(), JoinError> {
        // The bootstrap peer forwards to the leader, which waits for this peer to catch up.
        let timeout = self.cfg.membership_timeout() + self.cfg.network_timeout.get();
        let req = RaftRequest::Join {
            node: self.me_node.clone(),
            follower,
        };
        match self.transport.send(via, req, timeout).await {
            Ok(RaftResponse::Done(r)) => r.map(|_| ()).map_err(JoinError::Cluster),
            Ok(_) => Err(JoinError::Cluster(unavailable(
                "peer answered a different request",
            ))),
            Err(e) => Err(JoinError::Unreachable(format!(
                "cannot reach bootstrap peer {}: {e}",
                via.peer_id
            ))),
        }
    }

    /// Runs `op` on the leader (see [`super::link::LeaderLink::call`]).
    pub(super) async fn leader_call(&self, op: LeaderOp) -> Result<Option<u64>, ConsensusError> {
        self.link.call(op, |op| self.on_leader_limited(op)).await
    }

    /// [`Self::on_leader`] with a time limit: a leader that lost its quorum would otherwise
    /// wait forever for the commit.
    pub(super) async fn on_leader_limited(
        &self,
        op: LeaderOp,
    ) -> Result<Option<u64>, ConsensusError> {
        self.link.limited(&op, self.on_leader(op.clone())).await
    }

    /// What only the leader does.
    async fn on_leader(&self, op: LeaderOp) -> Result<Option<u64>, ConsensusError> {
        let raft = self.raft();
        // A write is held until it is answered (see `LeaderLink::gate`); a membership change
        // (which may wait long for a new peer to catch up) is only turned away during a
        // hand-over.
        let _passed = match op {
            LeaderOp::ReadIndex => None,
            LeaderOp::Commit(_) => Some(self.link.gate().await?),
            _ => {
                self.link.refuse_during_hand_over()?;
                None
            }
        };
        match op {
            LeaderOp::Commit(Op::Batch(ops))
                if ops.is_empty() || ops.iter().any(|o| matches!(o, Op::Batch(_))) =>
            {
                Err(ConsensusError::BadInput(
                    "a batch of writes must hold pins and unpins, not none or other batches".into(),
                ))
            }
            LeaderOp::Commit(op) => raft
                .client_write(op)
                .await
                .map(|r| Some(r.log_id.index))
                .map_err(write_err),
            LeaderOp::Join { node, follower } => {
                self.add_member(node, follower).await.map(|_| None)
            }
            LeaderOp::Remove { peer_id } => {
                let id = parse_node_id(&peer_id)?;
                // Removing a peer that is already gone is done (a retry after a lost answer).
                let Some(node) = self.member(id) else {
                    return Ok(None);
                };
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
                // Best effort: the removed peer may not learn it from the log (if it cannot
                // be told now, it asks the others once it is back: `notice_removal_while_away`).
                if id != self.me {
                    let t = self.transport.clone();
                    let timeout = self.cfg.network_timeout.get();
                    self.tasks.spawn(async move {
                        let removed = RaftRequest::Removed(node.history.clone());
                        if let Err(e) = t.send(&node, removed, timeout).await {
                            tracing::info!(
                                "could not tell {} that it was removed: {e}",
                                node.peer_id
                            );
                        }
                    });
                }
                Ok(None)
            }
            LeaderOp::ReadIndex => {
                let (read, _) = raft
                    .get_read_log_id()
                    .await
                    .map_err(|e| unavailable(format!("no read index: {e}")))?;
                Ok(Some(read.map_or(0, |l| l.index)))
            }
            LeaderOp::Identify { node } => {
                let id = parse_node_id(&node.peer_id)?;
                let mut record = self.member_node(id, &node.peer_id)?;
                // A history, once recorded, changes only by a join (which demotes a voter).
                if record.history.is_some() || node.history.is_none() {
                    return Ok(None);
                }
                record.history = node.history;
                let nodes = BTreeMap::from([(id, record)]);
                raft.change_membership(ChangeMembers::SetNodes(nodes), false)
                    .await
                    .map_err(write_err)?;
                Ok(None)
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
                Ok(None)
            }
        }
    }

    /// Adds a peer that asked to join: as a learner, then (unless a follower) a voter once
    /// it has the whole log. A voter that asks to join has lost its state (`--bootstrap`
    /// cleans it): it is demoted to a learner first, so that its answers never count as the
    /// voter's it was, and only then does its record name its new Raft state (which admits
    /// it, see `admission`): both changes commit through voters that kept their state, never
    /// through the wiped peer, so a leader that no longer leads (cut off, unaware) cannot
    /// commit them with its help. A join that fails takes a newly added learner out again;
    /// a repeated join of the same state (a retry after a lost answer) undoes nothing done.
    async fn add_member(&self, node: ClusterNode, follower: bool) -> Result<(), ConsensusError> {
        let raft = self.raft();
        let id = parse_node_id(&node.peer_id)?;
        let peer = node.peer_id.clone();
        let record = self.member(id);
        let was_member = record.is_some();
        let same_state = record.as_ref().is_some_and(|r| r.history == node.history);
        if same_state && self.voter_ids().contains(&id) {
            return Ok(());
        }
        if !same_state {
            self.check_current_state(&node).await?;
        }
        if !same_state && self.voter_ids().contains(&id) {
            tracing::warn!(%peer, "a voter asks to join again with an empty state: demoted to learner until it has caught up");
            raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), true)
                .await
                .map_err(write_err)?;
        }
        if was_member && !same_state {
            // Its record now names its new Raft state (and its addresses, which may have
            // changed).
            let nodes = BTreeMap::from([(id, node.clone())]);
            raft.change_membership(ChangeMembers::SetNodes(nodes), false)
                .await
                .map_err(write_err)?;
        }
        if !was_member {
            tracing::info!(%peer, follower, "adding peer as a learner");
            raft.add_learner(id, node, false).await.map_err(write_err)?;
        }
        // Caught up means holding the log as it was when it asked, not merely being close.
        let limit = self.cfg.membership_timeout() * 3 / 4;
        if let Err(e) = self.wait_caught_up(id, limit).await {
            if !was_member {
                tracing::warn!(%peer, "the new peer did not catch up: removing it again");
                let _ = raft
                    .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                    .await;
            }
            return Err(e);
        }
        if !follower {
            tracing::info!(%peer, "promoting peer to voter");
            raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                .await
                .map_err(write_err)?;
        }
        Ok(())
    }

    /// A join names the Raft state the peer had when it asked; the request may arrive late
    /// (forwarded, retried) from an earlier start of the peer, whose state is gone. Only the
    /// peer's state now may be recorded, or the peer would refuse every message for good.
    async fn check_current_state(&self, node: &ClusterNode) -> Result<(), ConsensusError> {
        let Some(asked) = &node.history else {
            return Ok(());
        };
        let timeout = self.cfg.network_timeout.get();
        match self.transport.send(node, RaftRequest::State, timeout).await {
            Ok(RaftResponse::State(now)) if now == *asked => Ok(()),
            Ok(RaftResponse::State(_)) => Err(ConsensusError::Refused(format!(
                "a join from an earlier start of {} (its Raft state has changed since)",
                node.peer_id
            ))),
            Ok(_) => Err(unavailable("the joining peer answered a different request")),
            Err(e) => Err(unavailable(format!(
                "cannot ask the joining peer {} for its Raft state: {e}",
                node.peer_id
            ))),
        }
    }

    /// Waits until learner `id` has replicated the leader's log up to where it is now.
    async fn wait_caught_up(&self, id: NodeId, limit: Duration) -> Result<(), ConsensusError> {
        let mut metrics = self.raft().metrics();
        let target = metrics.borrow().last_log_index;
        let caught_up = async {
            loop {
                {
                    let m = metrics.borrow_and_update();
                    let matched = m
                        .replication
                        .as_ref()
                        .and_then(|r| r.get(&id).copied().flatten())
                        .map(|l| l.index);
                    if matched >= target {
                        return;
                    }
                }
                if metrics.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(limit, caught_up).await.map_err(|_| {
            unavailable(format!(
                "the new peer did not catch up with the log within {limit:?}"
            ))
        })
    }

    /// Once ready: a record of this peer's made before histories existed gets its history,
    /// so that the cluster refuses to count another state of this peer's as this one.
    pub fn identify_when_ready(self: &std::sync::Arc<Self>) {
        let me = self.clone();
        let stopping = self.tasks.stopping();
        self.tasks.spawn(async move {
            me.wait_ready().await;
            // Until it succeeds: while the record names no state, another state of this
            // peer's would be taken for this one.
            while me.member(me.me).is_some_and(|n| n.history.is_none()) {
                let op = LeaderOp::Identify {
                    node: me.me_node.clone(),
                };
                match me.leader_call(op).await {
                    Ok(_) => tracing::info!("the membership now names this peer's Raft state"),
                    Err(e) => tracing::warn!(
                        "cannot record this peer's Raft state in the membership yet: {e}"
                    ),
                }
                let pause = me.cfg.commit_retry_delay.get().max(Duration::from_secs(1));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stopping.cancelled() => return,
                }
            }
        });
    }

    /// Asks another member now and then whether this peer is still in the membership: a
    /// peer removed while it could not be reached (cut off, asleep, stopped)
    /// never receives the entry that removed it, and would run on as a member with a pinset
    /// that no longer changes. Only a membership newer than this peer's is believed.
    pub fn notice_removal_while_away(self: &std::sync::Arc<Self>) {
        let me = self.clone();
        let stopping = self.tasks.stopping();
        let every = (self.cfg.election_timeout.get() * 5).max(Duration::from_secs(5));
        self.tasks.spawn(async move {
            for turn in 0usize.. {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopping.cancelled() => return,
                }
                // Not before it is a member by its own state (a peer still joining has
                // nothing to be removed from); a removed peer that restarts may never be
                // ready (no leader will have it), so readiness is not waited for.
                if !me.admission.is_admitted() || me.member(me.me).is_none() {
                    continue;
                }
                let others: Vec<ClusterNode> = me
                    .raft()
                    .metrics()
                    .borrow()
                    .membership_config
                    .membership()
                    .nodes()
                    .filter(|(id, _)| **id != me.me)
                    .map(|(_, n)| n.clone())
                    .collect();
                let Some(other) = others.get(turn % others.len().max(1)) else {
                    continue;
                };
                if let Ok(true) = me.removed_says(other).await {
                    tracing::warn!(
                        "this peer was removed from the cluster while it could not be reached \
                         (confirmed by {})",
                        other.peer_id
                    );
                    me.removed().cancel();
                    return;
                }
            }
        });
    }

    /// The member with Raft id `id`, if it is one.
    pub(super) fn member(&self, id: NodeId) -> Option<ClusterNode> {
        self.link.member(id)
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
