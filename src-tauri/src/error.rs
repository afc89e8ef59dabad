//! The library's error, classified by what the caller can do about it. Front ends map it
//! once: to an HTTP status in `restapi` ([`Error::kind`]), to a message for the user in the
//! desktop app. Components have their own errors (in `components.rs`); they convert here.

use crate::components::{ConsensusError, IpfsError, NotEnoughPeers, RpcError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller sent something invalid; nothing was changed. Fix it and try again.
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    NotFound(String),
    /// Valid, but refused as the cluster stands (its last voter cannot leave); retrying the
    /// same request will not help.
    #[error("{0}")]
    Refused(String),
    /// Not now: no leader, no quorum, still starting or catching up, a peer out of reach.
    /// The same request may succeed later.
    #[error("{0}")]
    Unavailable(String),
    /// This peer's IPFS daemon failed or could not be reached.
    #[error(transparent)]
    Ipfs(#[from] IpfsError),
    #[error("{0}")]
    Internal(String),
}

/// [`Error`]'s classes, for front ends that map them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadInput,
    NotFound,
    Refused,
    Unavailable,
    /// IPFS unreachable or failing.
    IpfsFailed,
    /// IPFS did not answer in time.
    IpfsTimeout,
    Internal,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadInput(_) => ErrorKind::BadInput,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Refused(_) => ErrorKind::Refused,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Ipfs(IpfsError::Timeout(_)) => ErrorKind::IpfsTimeout,
            Error::Ipfs(_) => ErrorKind::IpfsFailed,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }
}

impl From<ConsensusError> for Error {
    fn from(e: ConsensusError) -> Self {
        match e {
            ConsensusError::BadInput(m) => Error::BadInput(m),
            e @ ConsensusError::NotMember(_) => Error::NotFound(e.to_string()),
            ConsensusError::Refused(m) => Error::Refused(m),
            e @ (ConsensusError::NoLeader(_) | ConsensusError::Unavailable { .. }) => {
                Error::Unavailable(e.to_string())
            }
            e @ ConsensusError::Storage(_) => Error::Internal(e.to_string()),
        }
    }
}

impl From<NotEnoughPeers> for Error {
    fn from(e: NotEnoughPeers) -> Self {
        Error::BadInput(e.to_string())
    }
}

impl From<RpcError> for Error {
    fn from(e: RpcError) -> Self {
        Error::Unavailable(e.to_string())
    }
}

impl From<crate::net::AddrError> for Error {
    fn from(e: crate::net::AddrError) -> Self {
        Error::BadInput(e.to_string())
    }
}

impl From<crate::config::ConfigError> for Error {
    fn from(e: crate::config::ConfigError) -> Self {
        Error::BadInput(e.to_string())
    }
}

impl From<crate::config::InvalidReplication> for Error {
    fn from(e: crate::config::InvalidReplication) -> Self {
        Error::BadInput(e.to_string())
    }
}

impl From<crate::state::ImportError> for Error {
    fn from(e: crate::state::ImportError) -> Self {
        Error::BadInput(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
