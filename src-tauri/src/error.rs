//! The error every front end (REST API, proxy, desktop commands) maps to its own form.

use crate::consensus::ConsensusError;
use crate::ipfsconn::IpfsError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller sent something invalid; nothing was changed.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// This peer cannot take writes yet (no leader, still catching up).
    #[error("{0}")]
    NotReady(String),
    #[error(transparent)]
    Consensus(#[from] ConsensusError),
    #[error(transparent)]
    Ipfs(#[from] IpfsError),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
