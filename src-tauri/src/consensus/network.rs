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
use openraft::LogId;
use serde::{Deserialize, Serialize};

use super::admission::Admission;
use super::typ::{ClusterNode, NodeId, Op, TypeConfig};
use crate::components::ConsensusError;

/// Work that only the leader may do; non-leaders forward it.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub enum LeaderOp {
    Commit(Op),
    Join {
        node: ClusterNode,
        follower: bool,
    },
    Remove {
        peer_id: String,
    },
    SetRole {
        peer_id: String,
        voter: bool,
    },
    /// The index a read must wait for to see every write committed before it was asked
    /// (Raft's read index, confirmed with a quorum).
    ReadIndex,
    /// A member tells the history of its Raft state, for a record made before histories
    /// existed (one that has a history is never changed this way).
    Identify {
        node: ClusterNode,
    },
}

#[derive(Serialize, Deserialize, Debug)]
pub enum RaftRequest {
    /// Raft's own messages, each with the history of the target's Raft state as the sender's
    /// membership records it (see `admission`): a peer with another state refuses them.
    AppendEntries(AppendEntriesRequest<TypeConfig>, Option<String>),
    Vote(VoteRequest<NodeId>, Option<String>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>, Option<String>),
    /// Work only the leader does, forwarded by a non-leader.
    Leader(LeaderOp),
    /// A new peer asks any member to have it added (`daemon --bootstrap`).
    Join {
        node: ClusterNode,
        follower: bool,
    },
    /// The leader tells a peer that its record (naming this history) was removed. The peer
    /// acts on it only if that is its own state's record, it is a member by its own log, and
    /// the sender confirms (`Members`) that it is no longer in the membership.
    Removed(Option<String>),
    /// The membership as the callee has it.
    Members,
    /// The history of the callee's Raft state now (see `admission`).
    State,
    /// The leader, about to stop, asks an up-to-date voter to stand for election now (its
    /// hand-over: `RaftConsensus::hand_over`), in the leader's `term`. Protocol 0.4.0 on.
    Campaign {
        term: u64,
    },
}

/// How a peer over its limit of calls in flight answers (cluster RPC): a caller that reads
/// it waits a moment and asks the same peer again, rather than looking for another leader.
pub const BUSY_ANSWER: &str = "this peer is busy (too many cluster RPC calls in flight)";

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
    /// The answer to `Members`: the peer ids of the membership as the answering peer has it,
    /// and the log id of that membership (which of two memberships is newer).
    Members(Vec<String>, Option<LogId<NodeId>>),
    /// A Raft message refused, and why: it names another Raft state of the callee's, or asks
    /// for the vote of a peer that waits to be admitted again (see `admission`).
    Refused(String),
    /// The answer to `State`.
    State(String),
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

    /// Whether `from` is a member (voter or follower) as far as this peer knows. Holding the
    /// secret only lets a peer connect: one that is not a member may ask to join and read
    /// what joining needs, nothing else.
    fn is_member(&self, from: &str) -> bool;
}

pub struct NetworkFactory {
    pub transport: Arc<dyn RaftTransport>,
    pub admission: Arc<Admission>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &ClusterNode) -> Connection {
        Connection {
            transport: self.transport.clone(),
            admission: self.admission.clone(),
            target,
            node: node.clone(),
        }
    }
}

pub struct Connection {
    transport: Arc<dyn RaftTransport>,
    admission: Arc<Admission>,
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

/// What the callee's refusal is to Raft: a peer it cannot use now.
fn refused<E: std::error::Error>(why: String) -> RpcErr<E> {
    RPCError::Unreachable(Unreachable::new(&TransportError(why)))
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
        let to = self.node.history.clone();
        match self
            .call(RaftRequest::AppendEntries(rpc, to), &option)
            .await?
        {
            RaftResponse::AppendEntries(r) => self.remote(r),
            RaftResponse::Refused(why) => Err(refused(why)),
            _ => Err(mismatched()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        let to = self.node.history.clone();
        match self
            .call(RaftRequest::InstallSnapshot(rpc, to), &option)
            .await?
        {
            RaftResponse::InstallSnapshot(r) => self.remote(r),
            RaftResponse::Refused(why) => Err(refused(why)),
            _ => Err(mismatched()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr> {
        // A peer that is not admitted does not stand (its election timer is off too).
        if !self.admission.is_admitted() {
            return Err(refused(
                "this peer waits to be admitted and does not stand for election".into(),
            ));
        }
        let to = self.node.history.clone();
        match self.call(RaftRequest::Vote(rpc, to), &option).await? {
            RaftResponse::Vote(r) => self.remote(r),
            RaftResponse::Refused(why) => Err(refused(why)),
            _ => Err(mismatched()),
        }
    }
}
