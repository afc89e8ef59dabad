//! The app's own settings (not IPFS Cluster's): `<folder>/desktop.json`. Today one choice,
//! which networks the built-in IPFS node joins.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Which networks the built-in IPFS node (`ipfs-local-node`) takes part in.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum IpfsNetwork {
    /// Every interface, exchanging blocks with the cluster's IPFS nodes only (the default).
    #[default]
    Lan,
    /// Also the public IPFS network (bootstrap peers, DHT).
    Public,
    /// 127.0.0.1 only (tests on one machine).
    Loopback,
}

impl IpfsNetwork {
    /// `ipfs-local-node`'s flags for this choice.
    pub fn node_args(self) -> &'static [&'static str] {
        match self {
            IpfsNetwork::Lan => &[],
            IpfsNetwork::Public => &["--public"],
            IpfsNetwork::Loopback => &["--loopback-only"],
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Settings {
    #[serde(default)]
    pub ipfs_network: IpfsNetwork,
}

/// `IPFS_CLUSTER_IPFS_NETWORK` (`lan`, `public`, `loopback`) overrides the saved choice, as
/// `CLUSTER_*` variables override `service.json`.
pub const NETWORK_ENV: &str = "IPFS_CLUSTER_IPFS_NETWORK";

fn path(folder: &Path) -> PathBuf {
    folder.join("desktop.json")
}

impl Settings {
    /// The saved settings (defaults when there are none), with the environment's override.
    pub fn load(folder: &Path) -> Result<Settings, Error> {
        let p = path(folder);
        let mut s = match std::fs::read_to_string(&p) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| Error::BadInput(format!("{}: {e}", p.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings::default(),
            Err(e) => return Err(Error::Internal(format!("{}: {e}", p.display()))),
        };
        if let Some(v) = std::env::var_os(NETWORK_ENV) {
            let v = v.to_string_lossy();
            s.ipfs_network = serde_json::from_value(serde_json::Value::String(v.to_string()))
                .map_err(|_| {
                    Error::BadInput(format!(
                        "{NETWORK_ENV}={v:?}: expected lan, public or loopback"
                    ))
                })?;
        }
        Ok(s)
    }

    pub fn save(&self, folder: &Path) -> Result<(), Error> {
        let p = path(folder);
        let text = serde_json::to_string_pretty(self).expect("settings serialize");
        std::fs::write(&p, text).map_err(|e| Error::Internal(format!("{}: {e}", p.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_lan_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        // With the override set (the e2e sets it for the app), only the file checks below.
        let no_override = std::env::var_os(NETWORK_ENV).is_none();
        if no_override {
            assert_eq!(
                Settings::load(dir.path()).unwrap().ipfs_network,
                IpfsNetwork::Lan
            );
            let s = Settings {
                ipfs_network: IpfsNetwork::Public,
            };
            s.save(dir.path()).unwrap();
            assert_eq!(Settings::load(dir.path()).unwrap(), s);
        }
        assert_eq!(IpfsNetwork::Public.node_args(), ["--public"]);
        assert_eq!(IpfsNetwork::Lan.node_args(), [] as [&str; 0]);
        std::fs::write(dir.path().join("desktop.json"), "{").unwrap();
        assert!(
            Settings::load(dir.path()).is_err(),
            "a corrupt file is an error"
        );
    }
}
