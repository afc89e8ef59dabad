//! The network client: how Raft reaches other peers, openraft's network traits over a
//! [`RaftTransport`], and the messages peers exchange.
//!
//! The transport only moves [`RaftRequest`]s to a peer and brings back [`RaftResponse`]s; the
//! cluster RPC (libp2p) implements it, and a single peer uses [`NoTransport`]. The same
//! messages carry leader forwarding ([`RaftRequest::Leader`]), so a write sent to any peer
//! reaches the leader without a second channel. The other side is `server.rs`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::typ::{ClusterNode, NodeId, Op, TypeConfig};
use crate::components::ConsensusError;

/// Work that only the leader may do; non-leaders forward it.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub enum LeaderOp {
    Commit(Op),
    Join { node: ClusterNode, follower: bool },
    Remove { peer_id: String },
    SetRole { peer_id: String, voter: bool },
}

#[derive(Serialize, Deserialize, Debug)]
pub enum RaftRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// Work only the leader does, forwarded by a non-leader.
    Leader(LeaderOp),
    /// A new peer asks any member to have it added (`daemon --bootstrap`).
    Join {
        node: ClusterNode,
        follower: bool,
    },
    /// The leader tells a peer it was removed. The peer acts on it only after the sender
    /// confirms (`Members`) that it is no longer in the membership.
    Removed,
    /// The membership as the callee has it.
    Members,
}

#[derive(Serialize, Deserialize, Debug)]
pub enum RaftResponse {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// Outcome of `Leader`, `Join` and `Removed`, classified so that the caller retries
    /// only what may succeed when retried; for a commit, the index of its log entry.
    Done(Result<Option<u64>, ConsensusError>),
    /// The answer to `Members`: the peer ids of the membership as the answering peer has it.
    Members(Vec<String>),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

/// Carries Raft messages to a peer; implemented by the cluster RPC.
#[async_trait]
pub trait RaftTransport: Send + Sync + 'static {
    async fn send(
        &self,
        target: &ClusterNode,
        req: RaftRequest,
        timeout: Duration,
    ) -> Result<RaftResponse, TransportError>;
}

/// For a single peer in tests: there is nobody to talk to.
#[cfg(test)]
pub struct NoTransport;

#[cfg(test)]
#[async_trait]
impl RaftTransport for NoTransport {
    async fn send(
        &self,
        target: &ClusterNode,
        _req: RaftRequest,
        _timeout: Duration,
    ) -> Result<RaftResponse, TransportError> {
        Err(TransportError(format!(
            "no cluster transport: cannot reach peer {}",
            target.peer_id
        )))
    }
}

/// Answers the messages another peer sends (implemented by the consensus, `server.rs`).
#[async_trait]
pub trait RaftService: Send + Sync + 'static {
    /// `from`: the peer id of the caller (authenticated by the swarm).
    async fn serve(&self, from: &str, req: RaftRequest) -> RaftResponse;
}

pub struct NetworkFactory {
    pub transport: Arc<dyn RaftTransport>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &ClusterNode) -> Connection {
        Connection {
            transport: self.transport.clone(),
            target,
            node: node.clone(),
        }
    }
}

pub struct Connection {
    transport: Arc<dyn RaftTransport>,
    target: NodeId,
    node: ClusterNode,
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, ClusterNode, RaftError<NodeId, E>>;

impl Connection {
    async fn call<E: std::error::Error>(
        &self,
        req: RaftRequest,
        option: &RPCOption,
    ) -> Result<RaftResponse, RpcErr<E>> {
        self.transport
            .send(&self.node, req, option.hard_ttl())
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
    }

    fn remote<T, E: std::error::Error>(
        &self,
        r: Result<T, RaftError<NodeId, E>>,
    ) -> Result<T, RpcErr<E>> {
        r.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }
}

fn mismatched<E: std::error::Error>() -> RpcErr<E> {
    RPCError::Network(NetworkError::new(&TransportError(
        "peer answered a different Raft request".into(),
    )))
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        match self.call(RaftRequest::AppendEntries(rpc), &option).await? {
            RaftResponse::AppendEntries(r) => self.remote(r),
            _ => Err(mismatched()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        match self
            .call(RaftRequest::InstallSnapshot(rpc), &option)
            .await?
        {
            RaftResponse::InstallSnapshot(r) => self.remote(r),
            _ => Err(mismatched()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr> {
        match self.call(RaftRequest::Vote(rpc), &option).await? {
            RaftResponse::Vote(r) => self.remote(r),
            _ => Err(mismatched()),
        }
    }
}
