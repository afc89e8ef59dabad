//! IPFS Cluster Desktop: an IPFS Cluster peer (Raft consensus, pin tracker, REST API) as a
//! library, driven by `ipfs-cluster-service`, `ipfs-cluster-ctl` and the desktop app.
//!
//! Component contracts are in `components.rs`; [`peer`] wires one implementation of each;
//! front ends use [`cluster::Cluster`]'s methods only. The public surface is what the
//! binaries and the integration tests use; everything else is `pub(crate)`. See
//! `docs/architecture.md`.

// openraft's error and message types and axum's Response are large by design; boxing them
// at every call would only obscure the code that follows those crates' examples.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

mod allocator;
pub mod client;
pub mod cluster;
pub(crate) mod components;
pub mod config;
pub mod consensus;
pub mod desktop;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
mod global_status;
#[cfg(test)]
mod hostile_input;
pub mod http_policy;
mod http_server;
mod informer;
mod ipfsconn;
pub use ipfsconn::answers as ipfs_answers;
mod ipfsproxy;
mod monitor;
pub mod net;
mod observations;
pub mod peer;
mod pinsvcapi;
mod pintracker;
#[doc(hidden)]
pub mod probe;
pub mod process;
mod restapi;
mod rpc;
pub mod state;
mod tasks;
pub mod telemetry;
pub mod types;
