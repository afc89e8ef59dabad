//! IPFS Cluster Desktop: an IPFS Cluster peer (Raft consensus, pin tracker, REST API) as a
//! library, driven by `ipfs-cluster-service`, `ipfs-cluster-ctl` and the desktop app.
//!
//! Component traits are in [`components`]; [`peer`] wires the implementations together.

// openraft's error and message types and axum's Response are large by design; boxing them
// at every call would only obscure the code that follows those crates' examples.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

pub mod allocator;
pub mod client;
pub mod cluster;
pub mod components;
pub mod config;
pub mod consensus;
pub mod desktop;
pub mod error;
pub mod informer;
pub mod ipfsconn;
pub mod localnode;
pub mod monitor;
pub mod net;
pub mod peer;
pub mod pintracker;
pub mod restapi;
pub mod rpc;
pub mod state;
pub mod types;
