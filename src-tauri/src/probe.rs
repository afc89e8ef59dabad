//! A stranger on the cluster's network, for the attack tests (`tests/tests/attacks.rs`): a
//! libp2p host that holds the cluster secret but is no member, and sends one call a member
//! would send. Not part of the library's API.

use std::time::Duration;

use crate::consensus::network::LeaderOp;
use crate::consensus::typ::Op;
use crate::consensus::{ClusterNode, RaftRequest};
use crate::rpc::{ClusterRpc, RpcRequest, SwarmLimits, SwarmOptions};
use crate::tasks::Tasks;
use crate::types::{Cid, Pin, PinOptions};

/// What the stranger asks.
pub enum Ask {
    /// The leader's commit of a pin.
    Commit(Cid),
    /// The leader's removal of a member.
    Remove(String),
    /// Telling a member it was removed.
    Removed,
    /// A join in a member's name (which would demote it).
    JoinAs(String),
    /// A member's pin statuses (what global status asks).
    Status,
    /// A vote request with a huge term (which would depose the leader).
    Vote,
}

/// Sends `ask` to `target` (a multiaddr ending in `/p2p/<id>`) as a host holding `secret`
/// (hex) that is no member; returns the answer, or the error, as text.
pub async fn as_stranger(secret: &str, target: &str, ask: Ask) -> String {
    let secret = match secret.parse::<crate::config::Secret>() {
        Ok(s) => s,
        Err(e) => return format!("bad secret: {e}"),
    };
    let addr: multiaddr::Multiaddr = match target.parse() {
        Ok(a) => a,
        Err(e) => return format!("bad target: {e}"),
    };
    let Some(multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
        return format!("{target}: no /p2p/ part");
    };
    let tasks = Tasks::new();
    let keypair = libp2p::identity::Keypair::generate_ed25519();
    let me = keypair.public().to_peer_id();
    let rpc = ClusterRpc::start(
        SwarmOptions {
            keypair,
            secret: secret.0,
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("a multiaddr")],
            announce: Vec::new(),
            request_timeout: Duration::from_secs(20),
            limits: SwarmLimits::default(),
            pubsub: None,
        },
        &tasks,
    )
    .await;
    let rpc = match rpc {
        Ok(r) => r,
        Err(e) => return format!("cannot start: {e}"),
    };
    let node = |peer_id: String| ClusterNode {
        peer_id,
        addrs: Vec::new(),
        history: None,
    };
    let req = match ask {
        Ask::Commit(cid) => RpcRequest::Raft(RaftRequest::Leader(LeaderOp::Commit(Op::Pin(
            Pin::new(cid, PinOptions::default()),
        )))),
        Ask::Remove(peer_id) => RpcRequest::Raft(RaftRequest::Leader(LeaderOp::Remove { peer_id })),
        Ask::Removed => RpcRequest::Raft(RaftRequest::Removed(None)),
        Ask::JoinAs(peer_id) => RpcRequest::Raft(RaftRequest::Join {
            node: node(peer_id),
            follower: true,
        }),
        Ask::Status => RpcRequest::Pins(crate::components::PeerCall::Status(Vec::new())),
        Ask::Vote => {
            let vote = openraft::Vote::new(1 << 40, crate::consensus::typ::node_id(&me));
            RpcRequest::Raft(RaftRequest::Vote(
                openraft::raft::VoteRequest::new(vote, None),
                None,
            ))
        }
    };
    let answer = match rpc
        .call(peer, vec![addr], req, Duration::from_secs(30))
        .await
    {
        Ok(r) => format!("{r:?}"),
        Err(e) => format!("error: {e}"),
    };
    tasks.shutdown().await;
    answer
}
