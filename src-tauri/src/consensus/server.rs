//! The network server: what this peer answers when another peer sends it a Raft message, a
//! write to commit as leader, a join request or news of its removal.

use async_trait::async_trait;

use super::network::{LeaderOp, RaftRequest, RaftResponse, RaftService};
use super::raft::{members_of, RaftConsensus};
use super::typ::ClusterNode;

#[async_trait]
impl RaftService for RaftConsensus {
    async fn serve(&self, from: &str, req: RaftRequest) -> RaftResponse {
        let raft = self.raft();
        match req {
            RaftRequest::AppendEntries(r) => {
                RaftResponse::AppendEntries(raft.append_entries(r).await)
            }
            RaftRequest::Vote(r) => RaftResponse::Vote(raft.vote(r).await),
            RaftRequest::InstallSnapshot(r) => {
                RaftResponse::InstallSnapshot(raft.install_snapshot(r).await)
            }
            RaftRequest::Join { node, follower } => {
                RaftResponse::Done(self.leader_call(LeaderOp::Join { node, follower }).await)
            }
            RaftRequest::Leader(op) => RaftResponse::Done(self.on_leader_limited(op).await),
            RaftRequest::Removed => {
                self.confirm_removal(from).await;
                RaftResponse::Done(Ok(None))
            }
            RaftRequest::Members => RaftResponse::Members(
                members_of(&raft.metrics().borrow())
                    .into_iter()
                    .map(|m| m.peer_id)
                    .collect(),
            ),
        }
    }
}

impl RaftConsensus {
    /// `from` says this peer was removed: believed only if `from`'s membership, asked again,
    /// no longer has this peer (a stale message after a rejoin, or one from a peer that is
    /// wrong, changes nothing).
    async fn confirm_removal(&self, from: &str) {
        let sender = ClusterNode {
            peer_id: from.to_string(),
            addrs: Vec::new(),
        };
        let timeout = self.cfg.network_timeout.get();
        match self
            .transport
            .send(&sender, RaftRequest::Members, timeout)
            .await
        {
            Ok(RaftResponse::Members(ids)) if !ids.contains(&self.me_node.peer_id) => {
                tracing::warn!("this peer was removed from the cluster (confirmed by {from})");
                self.removed().cancel();
            }
            Ok(_) => tracing::warn!(
                "ignoring a removal notice from {from}: its membership still has this peer"
            ),
            Err(e) => tracing::warn!(
                "ignoring a removal notice from {from}, which cannot confirm it: {e}"
            ),
        }
    }
}
