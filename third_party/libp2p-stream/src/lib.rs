#![doc = include_str!("../README.md")]

mod behaviour;
mod control;
mod handler;
mod shared;
mod upgrade;

pub use behaviour::{AlreadyRegistered, Behaviour};
pub use control::{Control, IncomingStreams, OpenStreamError};

/// Inbound streams of one protocol waiting to be accepted (patched in by
/// ipfs-cluster-desktop; upstream holds none, and drops a stream that arrives while the one
/// before it is not taken yet).
pub const ACCEPT_BACKLOG: usize = 64;
