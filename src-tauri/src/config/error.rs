//! Why a configuration could not be loaded or written.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no configuration at {0}: run `ipfs-cluster-service init` first")]
    Missing(PathBuf),
    #[error("{path}: malformed JSON: {source}")]
    Malformed {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: key `{key}`: {message}")]
    Key {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("{0} already exists: use --force to overwrite it")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A configuration template (`source`) could not be fetched or used.
    #[error("configuration source {url}: {message}")]
    Source { url: String, message: String },
    /// `identity.json` is missing or not a valid identity.
    #[error("{0}")]
    Identity(String),
}

/// Replication factors that IPFS Cluster would refuse.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct InvalidReplication(pub(super) String);
