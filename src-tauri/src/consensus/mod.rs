//! Consensus: openraft with the pinset as its state machine (SPEC §5), laid out as openraft's
//! `raft-kv-rocksdb` example: the type config ([`typ`]), the log and state storage in SQLite
//! (`store`, with snapshots as files: `snapshot`), the network client ([`network`]) and server (`server`), membership and
//! leader-only operations (`management`), the leader's hand-over before a planned stop
//! (`handover`), and the component itself (`raft`); who may vote
//! (`admission`) and who may send Raft's messages (`senders`). The offline `state` commands
//! are in [`offline`].
//!
//! Raft's data lives in `<folder>/raft/raft.sqlite`. Node ids are derived from libp2p peer
//! ids (openraft needs a `Copy` integer id); the peer id itself travels in [`ClusterNode`].

mod admission;
mod committer;
pub(crate) mod crdt;
mod engine;
mod handover;
mod link;
mod management;
pub(crate) mod network;
pub mod offline;
/// A CRDT peer's state commands (`state export/import/cleanup`).
pub use crdt::offline as crdt_offline;
mod raft;
mod senders;
mod server;
mod snapshot;
mod store;
pub(crate) mod typ;

pub(crate) use engine::Engine;
#[cfg(test)]
use network::NoTransport;
pub(crate) use network::{RaftRequest, RaftResponse, RaftService, RaftTransport};
pub(crate) use raft::{Bootstrap, ConsensusOptions, RaftConsensus};
#[cfg(test)]
use store::db_path;
pub(crate) use typ::ClusterNode;

#[cfg(test)]
mod tests;
