//! The network server: what this peer answers when another peer sends it a Raft message, a
//! write to commit as leader, a join request or news of its removal.

use std::time::Duration;

use async_trait::async_trait;

use crate::components::{Consensus, ConsensusError};

use super::handover::NoHandOver;
use super::link::unavailable;
use super::network::{LeaderOp, RaftRequest, RaftResponse, RaftService};
use super::raft::{members_of, RaftConsensus};
use super::typ::{ClusterNode, NodeId};

#[async_trait]
impl RaftService for RaftConsensus {
    fn is_member(&self, from: &str) -> bool {
        // The node id is 8 bytes of the key: the whole peer id must match too.
        super::typ::parse_node_id(from)
            .is_ok_and(|id| self.member(id).is_some_and(|n| n.peer_id == from))
    }

    async fn serve(&self, from: &str, req: RaftRequest) -> RaftResponse {
        let raft = self.raft();
        // Holding the secret is not membership: who is not a member may ask to join (for
        // itself) and read what joining and learning of a removal need (`State`, `Members`).
        // Raft's own messages from a non-member are refused only while this peer has a live
        // leader that is a member (`raft_refusal`): a member that missed a change must still
        // follow a leader it does not know yet.
        // A peer that knows no membership yet (joining) cannot tell: it answers as before (it
        // is not the leader; a member that still takes it for one retries elsewhere).
        let member_only = matches!(req, RaftRequest::Leader(_) | RaftRequest::Removed(_));
        let knows_members = raft.metrics().borrow().membership_config.log_id().is_some();
        if member_only && knows_members && !self.is_member(from) {
            tracing::warn!("refused a request from {from}: not a member of this cluster");
            return RaftResponse::Done(Err(ConsensusError::Refused(format!(
                "{from} is not a member of this cluster"
            ))));
        }
        match req {
            RaftRequest::AppendEntries(r, to) => {
                if let Some(why) = self
                    .raft_refusal(from, r.vote.leader_id().voted_for())
                    .await
                {
                    return self.refuse(from, why);
                }
                match self.admission.check_target(to.as_deref()) {
                    Ok(()) => {
                        let answer = raft.append_entries(r).await;
                        if answer.as_ref().is_ok_and(|a| a.is_success()) {
                            self.last_leader.heard(from);
                        }
                        RaftResponse::AppendEntries(answer)
                    }
                    Err(why) => self.refuse(from, why.0),
                }
            }
            RaftRequest::Vote(r, to) => {
                if let Some(why) = self
                    .raft_refusal(from, r.vote.leader_id().voted_for())
                    .await
                {
                    return self.refuse(from, why);
                }
                if !self.admission.is_admitted() {
                    // Its log may lack what it acknowledged before it lost its state: its vote
                    // could elect a leader without an acknowledged pin. Refused before Raft
                    // sees the request, which changes nothing here (not even the term).
                    tracing::info!(
                        "refused a vote request from {from}: this peer's Raft state is new \
                         and takes no part in elections until the cluster has admitted it"
                    );
                    return RaftResponse::Refused(
                        "this peer waits to be admitted again and does not vote".into(),
                    );
                }
                if let Err(why) = self.admission.check_target(to.as_deref()) {
                    return self.refuse(from, why.0);
                }
                RaftResponse::Vote(raft.vote(r).await)
            }
            RaftRequest::InstallSnapshot(r, to) => {
                if let Some(why) = self
                    .raft_refusal(from, r.vote.leader_id().voted_for())
                    .await
                {
                    return self.refuse(from, why);
                }
                match self.admission.check_target(to.as_deref()) {
                    Ok(()) => RaftResponse::InstallSnapshot(raft.install_snapshot(r).await),
                    Err(why) => self.refuse(from, why.0),
                }
            }
            // A peer asks to join for itself only: a join naming another peer would demote
            // that peer and rewrite its record.
            RaftRequest::Join { node, .. } if node.peer_id != from => RaftResponse::Done(Err(
                ConsensusError::Refused(format!("{from} cannot ask to join for {}", node.peer_id)),
            )),
            RaftRequest::Join { node, follower } => {
                RaftResponse::Done(self.leader_call(LeaderOp::Join { node, follower }).await)
            }
            // A peer names only its own Raft state.
            RaftRequest::Leader(LeaderOp::Identify { node }) if node.peer_id != from => {
                RaftResponse::Done(Err(ConsensusError::Refused(format!(
                    "{from} cannot name the Raft state of {}",
                    node.peer_id
                ))))
            }
            RaftRequest::Leader(op) => RaftResponse::Done(self.on_leader_limited(op).await),
            RaftRequest::Removed(history) => {
                self.confirm_removal(from, history).await;
                RaftResponse::Done(Ok(None))
            }
            RaftRequest::State => RaftResponse::State(self.admission.history().to_string()),
            RaftRequest::Campaign { term } => match self.campaign(from, term).await {
                Ok(()) => RaftResponse::Done(Ok(None)),
                Err(why) => {
                    tracing::info!("did not stand for election when {from} asked: {why}");
                    RaftResponse::Refused(why.0)
                }
            },
            RaftRequest::Members => {
                let m = raft.metrics().borrow().clone();
                RaftResponse::Members(
                    members_of(&m).into_iter().map(|m| m.peer_id).collect(),
                    *m.membership_config.log_id(),
                )
            }
        }
    }
}

impl RaftConsensus {
    /// Why `from` may not send a Raft message whose candidate or leader is `named`, if it may
    /// not (see `senders`): it must name itself, and be a member, or this peer has no live leader that
    /// is one (as a follower: heard from within the election timeout; as the leader: a
    /// quorum confirms it now, so no one can have been elected over it).
    async fn raft_refusal(&self, from: &str, named: Option<NodeId>) -> Option<String> {
        if named.is_none_or(|n| super::typ::parse_node_id(from).ok() != Some(n)) {
            return Some(format!("{from} sent a Raft message in another peer's name"));
        }
        if self.is_member(from) {
            return None;
        }
        let within = Duration::from_millis(self.raft_settings.election_timeout_min);
        let leading = self.raft().metrics().borrow().state == openraft::ServerState::Leader;
        let alive = if leading {
            let confirmed = tokio::time::timeout(within, self.raft().get_read_log_id()).await;
            matches!(confirmed, Ok(Ok(_))).then(|| self.me_node.peer_id.clone())
        } else {
            self.last_leader
                .live(within)
                .filter(|l| l != from && self.is_member(l))
        };
        alive.map(|leader| {
            format!("{from} is not a member of this cluster, whose leader {leader} is alive")
        })
    }

    /// Stands for election at once because the leader `from`, about to stop, asks (its
    /// hand-over). Only the leader this peer follows, in the term it follows it, may ask, and
    /// only a voter that holds every entry the leader has is asked: anyone else asking is
    /// refused (a member must not be able to unseat a live leader at will).
    async fn campaign(&self, from: &str, term: u64) -> Result<(), NoHandOver> {
        let m = self.raft().metrics().borrow().clone();
        let sender = super::typ::parse_node_id(from).ok();
        if sender.is_none() || m.current_leader != sender || !self.is_member(from) {
            return Err(NoHandOver(format!(
                "{from} is not the leader this peer follows"
            )));
        }
        if m.current_term != term {
            return Err(NoHandOver(format!(
                "term {term} is not this peer's ({})",
                m.current_term
            )));
        }
        if !m
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == self.me)
        {
            return Err(NoHandOver("this peer is not a voter".into()));
        }
        if !self.admission.is_admitted() {
            return Err(NoHandOver("this peer waits to be admitted again".into()));
        }
        self.raft()
            .trigger()
            .elect()
            .await
            .map_err(|e| NoHandOver(e.to_string()))?;
        tracing::info!("standing for election: the leader {from} hands leadership over");
        Ok(())
    }

    /// Refuses a Raft message meant for another Raft state of this peer's (said once a run:
    /// the sender retries at every heartbeat).
    fn refuse(&self, from: &str, why: String) -> RaftResponse {
        if !self
            .refused_once
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!("refusing Raft messages from {from}: {why}");
        }
        RaftResponse::Refused(why)
    }

    /// `from` says this peer was removed: believed only if the removed record was this
    /// state's, this peer is ready (a member by its own log: a peer still joining or
    /// replaying has nothing to be removed from), and `from`'s membership, asked again, no
    /// longer has this peer. A stale notice after a rejoin, or one from a peer that is wrong,
    /// changes nothing.
    async fn confirm_removal(&self, from: &str, history: Option<String>) {
        if history.is_some_and(|h| h != self.admission.history()) {
            tracing::info!("ignoring a removal notice from {from}: it removed another Raft state of this peer's");
            return;
        }
        if !self.is_ready() {
            tracing::info!("ignoring a removal notice from {from}: this peer is not a member yet");
            return;
        }
        let sender = ClusterNode {
            peer_id: from.to_string(),
            addrs: Vec::new(),
            history: None,
        };
        match self.removed_says(&sender).await {
            Ok(true) => {
                tracing::warn!("this peer was removed from the cluster (confirmed by {from})");
                self.removed().cancel();
            }
            Ok(false) => tracing::warn!(
                "ignoring a removal notice from {from}: its membership still has this peer"
            ),
            Err(e) => tracing::warn!(
                "ignoring a removal notice from {from}, which cannot confirm it: {e}"
            ),
        }
    }

    /// Whether `other`'s membership, asked now, is at least as new as this peer's and no
    /// longer has this peer (a peer that is behind, or was removed itself earlier, is not
    /// believed).
    pub(super) async fn removed_says(&self, other: &ClusterNode) -> Result<bool, ConsensusError> {
        let timeout = self.cfg.network_timeout.get();
        let mine = self
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .log_id()
            .to_owned();
        match self
            .transport
            .send(other, RaftRequest::Members, timeout)
            .await
        {
            Ok(RaftResponse::Members(ids, theirs)) => {
                Ok(theirs >= mine && !ids.contains(&self.me_node.peer_id))
            }
            Ok(_) => Err(unavailable("it answered a different request")),
            Err(e) => Err(unavailable(e.to_string())),
        }
    }
}
