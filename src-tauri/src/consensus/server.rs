//! The network server: what this peer answers when another peer sends it a Raft message, a
//! write to commit as leader, a join request or news of its removal.

use async_trait::async_trait;

use super::network::{LeaderOp, RaftRequest, RaftResponse, RaftService};
use super::raft::RaftConsensus;

#[async_trait]
impl RaftService for RaftConsensus {
    async fn serve(&self, req: RaftRequest) -> RaftResponse {
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
                tracing::warn!("this peer was removed from the cluster");
                self.removed().cancel();
                RaftResponse::Done(Ok(()))
            }
        }
    }
}
