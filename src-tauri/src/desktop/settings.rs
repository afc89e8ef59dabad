//! The app's own settings (not IPFS Cluster's): `<folder>/desktop.json`. `service.json` is
//! never rewritten: what the Settings view changes lives here and is laid over the config
//! when the peer starts (its name), or applies at once (default copies, log level, the
//! notifications wanted, the IPFS network at the node's next start).

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

/// How much the app logs (to stderr and to its Logs view).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
}

impl LogLevel {
    /// The `tracing` filter for this level (the chatty libraries one step quieter).
    pub fn filter(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info,openraft=warn,sqlx=warn",
            LogLevel::Debug => "debug,openraft=info,sqlx=warn,libp2p=info,hyper=info,h2=info",
        }
    }
}

/// Unicode's invisible format characters that can disguise text (bidirectional controls,
/// zero-width characters, the byte-order mark, the soft hyphen): refused in a peer's name,
/// and left out of names shown in notifications.
pub fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
    )
}

/// Which desktop notifications the user wants.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, ts_rs::TS)]
#[serde(default)]
pub struct Notify {
    /// A pin of this peer's failed.
    pub pin_failed: bool,
    /// A peer of the cluster stopped answering, or came back.
    pub peers: bool,
    /// Joining a cluster finished.
    pub joined: bool,
}

impl Default for Notify {
    fn default() -> Self {
        Notify {
            pin_failed: true,
            peers: true,
            joined: true,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, ts_rs::TS)]
#[serde(default)]
pub struct Settings {
    #[ts(type = "\"lan\" | \"public\" | \"loopback\"")]
    pub ipfs_network: IpfsNetwork,
    /// This peer's name in the cluster (empty: the one `service.json` gives); applies when
    /// the peer starts.
    pub peer_name: String,
    /// Copies of what is pinned or added here when none are chosen (none: the cluster's
    /// default).
    pub default_copies: Option<i32>,
    pub log_level: LogLevel,
    pub notify: Notify,
}

/// `IPFS_CLUSTER_IPFS_NETWORK` (`lan`, `public`, `loopback`) overrides the saved choice, as
/// `CLUSTER_*` variables override `service.json`.
pub const NETWORK_ENV: &str = "IPFS_CLUSTER_IPFS_NETWORK";

fn path(folder: &Path) -> PathBuf {
    folder.join("desktop.json")
}

impl Settings {
    /// The settings as saved (defaults when there are none): what the Settings view shows
    /// and saves again, without the environment's override.
    pub fn load_saved(folder: &Path) -> Result<Settings, Error> {
        let p = path(folder);
        match std::fs::read_to_string(&p) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| Error::BadInput(format!("{}: {e}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(e) => Err(Error::Internal(format!("{}: {e}", p.display()))),
        }
    }

    /// The saved settings (defaults when there are none), with the environment's override:
    /// what the app runs with.
    pub fn load(folder: &Path) -> Result<Settings, Error> {
        let mut s = Settings::load_saved(folder)?;
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

    /// Refuses what the app could not use, naming it; nothing is saved then.
    pub fn check(&self) -> Result<(), Error> {
        let name = self.peer_name.trim();
        let hidden = |c: char| c.is_control() || is_format(c);
        if name.chars().count() > 64 || name.chars().any(hidden) {
            return Err(Error::BadInput(
                "a peer name has at most 64 characters, none of them control or invisible format characters".into(),
            ));
        }
        if let Some(n) = self.default_copies {
            if n == 0 || n < -1 {
                return Err(Error::BadInput(format!(
                    "default copies {n}: -1 (every peer) or 1 and more"
                )));
            }
        }
        Ok(())
    }

    /// Saves the settings whole or not at all: written to a file beside, flushed, then
    /// renamed over the old one (a crash leaves the old settings or the new, never half).
    pub fn save(&self, folder: &Path) -> Result<(), Error> {
        use std::io::Write;
        let p = path(folder);
        let err = |e: std::io::Error| Error::Internal(format!("{}: {e}", p.display()));
        let text = serde_json::to_string_pretty(self).expect("settings serialize");
        let tmp = p.with_extension("json.new");
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &p).map_err(err)
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
                peer_name: "laptop".into(),
                default_copies: Some(2),
                log_level: LogLevel::Debug,
                notify: Notify {
                    peers: false,
                    ..Notify::default()
                },
            };
            s.save(dir.path()).unwrap();
            assert_eq!(Settings::load(dir.path()).unwrap(), s);
        }
        assert_eq!(IpfsNetwork::Public.node_args(), ["--public"]);
        assert_eq!(IpfsNetwork::Lan.node_args(), [] as [&str; 0]);
        // A file of an older version (one setting) reads with the defaults of the rest.
        std::fs::write(
            dir.path().join("desktop.json"),
            r#"{"ipfs_network":"public"}"#,
        )
        .unwrap();
        if no_override {
            let old = Settings::load(dir.path()).unwrap();
            assert_eq!(old.ipfs_network, IpfsNetwork::Public);
            assert_eq!(old.log_level, LogLevel::Info);
            assert!(old.notify.pin_failed && old.notify.peers && old.notify.joined);
        }
        std::fs::write(dir.path().join("desktop.json"), "{").unwrap();
        assert!(
            Settings::load(dir.path()).is_err(),
            "a corrupt file is an error"
        );
    }
}

#[cfg(test)]
mod check_tests {
    use super::*;

    #[test]
    fn refuses_names_and_copies_the_app_could_not_use() {
        let ok = Settings {
            peer_name: "Ada's laptop".into(),
            default_copies: Some(-1),
            ..Settings::default()
        };
        assert!(ok.check().is_ok());
        for bad in [
            Settings {
                peer_name: "x".repeat(65),
                ..Settings::default()
            },
            Settings {
                peer_name: "line\nbreak".into(),
                ..Settings::default()
            },
            Settings {
                peer_name: "evil\u{202E}txt.exe".into(),
                ..Settings::default()
            },
            Settings {
                default_copies: Some(0),
                ..Settings::default()
            },
            Settings {
                default_copies: Some(-2),
                ..Settings::default()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
