//! Raft's type configuration (openraft's `declare_raft_types!`) and the plain types it names:
//! node ids, the member record, and the log's command.

use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};

use crate::components::ConsensusError;
use crate::types::{Cid, Pin};

pub type NodeId = u64;

/// A member as Raft's membership records it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterNode {
    pub peer_id: String,
    /// Cluster swarm multiaddrs this peer was last known at.
    pub addrs: Vec<String>,
    /// The id of the peer's Raft state (its disk's history, made when that state was
    /// created): a peer that lost its state comes back with another one and is not the voter
    /// this record names. `None` in records made before histories existed (not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<String>,
}

/// A command in the Raft log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Pin(Pin),
    Unpin(Cid),
    /// Pins and unpins committed together (group commit on the leader, the batch form),
    /// applied in order in one transaction. Never nested (see [`Op::joined`]).
    Batch(Vec<Op>),
}

impl Op {
    /// One command for `ops`: itself when alone, else a batch of their pins and unpins in
    /// order.
    pub fn joined(mut ops: Vec<Op>) -> Op {
        if ops.len() == 1 {
            return ops.pop().expect("one op");
        }
        Op::Batch(ops.into_iter().flat_map(Op::into_ops).collect())
    }

    /// About how many bytes this command takes in the log and on the wire (its JSON, give
    /// or take): what bounds the size of a group, so that an entry, and the appends that
    /// carry up to `max_append_entries` of them, stay well inside a cluster RPC message.
    pub fn weight(&self) -> usize {
        match self {
            Op::Pin(p) => {
                let o = &p.options;
                let strings = |v: &[String]| v.iter().map(|s| s.len() + 4).sum::<usize>();
                512 + o.name.len()
                    + o.metadata
                        .iter()
                        .map(|(k, v)| k.len() + v.len() + 8)
                        .sum::<usize>()
                    + strings(&p.allocations)
                    + strings(&o.user_allocations)
                    + strings(&o.origins)
            }
            Op::Unpin(_) => 96,
            Op::Batch(ops) => ops.iter().map(Op::weight).sum(),
        }
    }

    /// The pins and unpins this command carries, in order.
    pub fn into_ops(self) -> Vec<Op> {
        match self {
            Op::Batch(ops) => ops.into_iter().flat_map(Op::into_ops).collect(),
            op => vec![op],
        }
    }
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Op,
        R = (),
        NodeId = NodeId,
        Node = ClusterNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = super::snapshot::SnapshotFile,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Raft node id of a peer: the last 8 bytes of its peer id (an Ed25519 peer id embeds the
/// public key, so these are uniformly random).
pub fn node_id(peer: &PeerId) -> NodeId {
    let bytes = peer.to_bytes();
    let tail: [u8; 8] = bytes[bytes.len() - 8..]
        .try_into()
        .expect("peer ids exceed 8 bytes");
    u64::from_be_bytes(tail)
}

/// [`node_id`] of a peer id given as text.
pub fn parse_node_id(peer: &str) -> Result<NodeId, ConsensusError> {
    peer.parse::<PeerId>()
        .map(|p| node_id(&p))
        .map_err(|e| ConsensusError::BadInput(format!("invalid peer id {peer:?}: {e}")))
}
