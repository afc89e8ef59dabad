//! `service.json`: every section and default of IPFS Cluster's (SPEC §2), loaded strictly.
//!
//! The file is written once, by `init`; the program never rewrites it (peers it learns go to the
//! `peerstore` file instead). Loading refuses anything it does not understand, naming the key,
//! because a silently ignored typo in a cluster config surfaces weeks later as a split cluster.
//!
//! Split by concern: the sections and their defaults (`sections`), value types (`values`,
//! `duration`), strict loading with environment overrides (`load`), `init` (`init`), the
//! files themselves (`files`), the identity (`identity`), configuration templates fetched
//! from a URL (`template`, IPFS Cluster's `source`) and the errors (`error`).

mod credential;
mod duration;
mod error;
mod files;
pub mod identity;
mod init;
mod load;
mod sections;
pub mod template;
mod values;

pub use credential::{ApiCredential, API_CREDENTIAL_FILE};
pub use duration::GoDuration;
pub use error::{ConfigError, InvalidReplication};
pub use files::{
    create_private, create_private_dir, create_private_if_missing, folder, lock_folder,
    write_private, FolderLock, CONFIG_FILE, DEFAULT_FOLDER, IDENTITY_FILE,
};
pub use identity::Identity;
pub use init::{init, init_keeping_secret_out, init_with_config};
pub use load::check_replication;
pub use sections::*;
pub use values::{Multiaddrs, Secret};

#[cfg(test)]
mod tests;
