//! A real IPFS node for machines without one: Kubo's core as a C library ([`kubo`]) behind
//! the Kubo RPC API ([`rpc`]), run as its own process by the `ipfs-local-node` binary so that
//! tests and the quick-start can stop and restart it like any IPFS daemon.
//!
//! A user who already runs Kubo keeps using it (`ipfs_connector.ipfshttp.node_multiaddress`).

pub mod kubo;
pub mod rpc;
