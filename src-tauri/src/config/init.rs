//! `ipfs-cluster-service init`: a fresh `service.json` and `identity.json`.

use std::path::Path;

use super::error::ConfigError;
use super::files::{write_private, CONFIG_FILE, IDENTITY_FILE};
use super::identity::Identity;
use super::sections::Config;

/// Writes a fresh `service.json` and, unless one exists (with `force`), `identity.json` into
/// `folder`.
pub fn init(folder: &Path, force: bool) -> Result<(Config, Identity), ConfigError> {
    init_with(folder, force, Config::new_for_init(), true)
}

/// As [`init`], with `config` (made by [`Config::new_for_init`] and adjusted: a given
/// secret, other ports, an initial peerset) instead of the defaults.
pub fn init_with_config(
    folder: &Path,
    force: bool,
    config: Config,
) -> Result<(Config, Identity), ConfigError> {
    init_with(folder, force, config, true)
}

/// As [`init`], for a peer whose secret lives elsewhere (the desktop app keeps it in the OS
/// keyring): `service.json` gets no `cluster.secret`, which is then supplied at load as
/// `CLUSTER_SECRET`. The returned config carries the secret to store.
pub fn init_keeping_secret_out(
    folder: &Path,
    force: bool,
    config: Config,
) -> Result<(Config, Identity), ConfigError> {
    init_with(folder, force, config, false)
}

fn init_with(
    folder: &Path,
    force: bool,
    config: Config,
    with_secret: bool,
) -> Result<(Config, Identity), ConfigError> {
    let cfg_path = folder.join(CONFIG_FILE);
    let id_path = folder.join(IDENTITY_FILE);
    if !force {
        for p in [&cfg_path, &id_path] {
            if p.exists() {
                return Err(ConfigError::Exists(p.clone()));
            }
        }
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ConfigError::Io { path, source }
    };
    super::files::create_private_dir(folder).map_err(io(folder))?;
    // As IPFS Cluster: --force rewrites the configuration but keeps an existing identity
    // (the peer id other peers know).
    let kept = id_path.exists();
    let identity = if kept {
        Identity::load(&id_path)?
    } else {
        Identity::generate()
    };
    let mut json = serde_json::to_value(&config).expect("config serializes");
    if config.consensus.crdt_mode {
        // As IPFS Cluster's `init --consensus crdt`: the crdt section only (a file with
        // both runs Raft).
        json["consensus"]
            .as_object_mut()
            .expect("consensus section")
            .remove("raft");
    }
    if !with_secret {
        json["cluster"]
            .as_object_mut()
            .expect("cluster section")
            .remove("secret");
    }
    let text = serde_json::to_string_pretty(&json).expect("config serializes") + "\n";
    write_private(&cfg_path, text.as_bytes()).map_err(io(&cfg_path))?;
    if !kept {
        identity.save(&id_path).map_err(io(&id_path))?;
    }
    Ok((config, identity))
}
