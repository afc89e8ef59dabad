//! Loading `service.json` strictly: removed keys named with their replacement, `CLUSTER_*`
//! environment overrides, and the checks that a value is usable.

use std::path::Path;

use serde_json::Value;

use super::error::{ConfigError, InvalidReplication};
use super::files::CONFIG_FILE;
use super::sections::{Config, CrdtConfig, INNER_KEY};
use super::values::Secret;

/// Keys IPFS Cluster removed, with what replaces them.
const OBSOLETE: &[(&str, &str, &str)] = &[
    (
        "cluster",
        "peers",
        "peers are no longer listed in service.json: known peers live in the `peerstore` file; remove the key and use `--bootstrap` (or consensus.raft.init_peerset) to form the cluster",
    ),
    (
        "cluster",
        "bootstrap",
        "bootstrapping is no longer configured in service.json: remove the key and pass `ipfs-cluster-service daemon --bootstrap <multiaddr>`",
    ),
];

/// `CLUSTER_*` environment prefixes, as IPFS Cluster's envconfig names them, per section.
const ENV_SECTIONS: &[(&str, &[&str])] = &[
    ("CLUSTER", &["cluster"]),
    ("CLUSTER_RAFT", &["consensus", "raft"]),
    ("CLUSTER_RESTAPI", &["api", "restapi"]),
    ("CLUSTER_IPFSPROXY", &["api", "ipfsproxy"]),
    ("CLUSTER_PINSVCAPI", &["api", "pinsvcapi"]),
    ("CLUSTER_IPFSHTTP", &["ipfs_connector", "ipfshttp"]),
    ("CLUSTER_STATELESS", &["pin_tracker", "stateless"]),
    ("CLUSTER_PUBSUBMON", &["monitor", "pubsubmon"]),
    ("CLUSTER_BALANCED", &["allocator", "balanced"]),
    ("CLUSTER_DISK", &["informer", "disk"]),
    ("CLUSTER_NUMPIN", &["informer", "numpin"]),
    ("CLUSTER_TAGS", &["informer", "tags"]),
    ("CLUSTER_METRICS", &["observations", "metrics"]),
    ("CLUSTER_TRACING", &["observations", "tracing"]),
];

/// Keys IPFS Cluster's `init` writes that this project accepts but does not act on
/// (JSON pointers): named in one warning at start (SPEC §2), never silently ignored.
const NOT_ACTED_ON: &[&str] = &[
    "/cluster/no_announce_multiaddress",
    "/cluster/resource_manager",
    "/cluster/enable_relay_hop",
    "/cluster/mdns_interval",
    "/cluster/connection_manager",
    "/cluster/dial_peer_timeout",
    "/informer/pinqueue/weight_bucket_size",
    "/consensus/crdt/repair_interval",
    "/datastore",
    "/observations/metrics/reporting_interval",
    "/observations/tracing/jaeger_agent_endpoint",
];

/// Of those, the ones the config types do not even have: taken out before reading.
const FOREIGN: &[&str] = &[
    "/cluster/no_announce_multiaddress",
    "/cluster/resource_manager",
];

impl Config {
    /// A fresh configuration for `init`: defaults plus a new secret.
    pub fn new_for_init() -> Config {
        let mut c = Config::default();
        c.cluster.secret = Secret::generate();
        c
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serializes") + "\n"
    }

    /// Reads and checks `service.json` in `folder`, then applies `CLUSTER_*` overrides from
    /// the process environment (never written back).
    pub fn load(folder: &Path) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(folder, &env)
    }

    pub fn load_with_env(folder: &Path, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let path = folder.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ConfigError::Missing(path.clone()),
            _ => ConfigError::Io {
                path: path.clone(),
                source: e,
            },
        })?;
        Self::parse(&path, &text, env)
    }

    pub fn parse(path: &Path, text: &str, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let value: Value = serde_json::from_str(text).map_err(|source| ConfigError::Malformed {
            path: path.to_path_buf(),
            source,
        })?;
        let key_err = |key: String, message: String| ConfigError::Key {
            path: path.to_path_buf(),
            key,
            message,
        };
        if !value.is_object() {
            return Err(key_err(
                "(top level)".into(),
                "must be a JSON object".into(),
            ));
        }
        for (section, key, advice) in OBSOLETE {
            if value.get(section).and_then(|s| s.get(key)).is_some() {
                return Err(key_err(
                    format!("{section}.{key}"),
                    format!("obsolete key: {advice}"),
                ));
            }
        }
        let consensus = &value["consensus"];
        let crdt_mode = consensus.get("crdt").is_some() && consensus.get("raft").is_none();
        let mut value = value;
        // Keys the file sets to something other than the default, that nothing here reads
        // (foreign ones, absent from the types, count whenever present).
        // (A CRDT section left out is not read: its defaults are those of a section present.)
        let mut defaults = Config::default();
        defaults.consensus.crdt = Some(CrdtConfig::default());
        let defaults = serde_json::to_value(defaults).expect("config serializes");
        let set_here: Vec<&str> = NOT_ACTED_ON
            .iter()
            .copied()
            .filter(|p| value.pointer(p).is_some())
            .collect();
        for pointer in FOREIGN {
            let (parent, key) = pointer.rsplit_once('/').expect("a pointer with a parent");
            if let Some(obj) = value.pointer_mut(parent).and_then(Value::as_object_mut) {
                obj.remove(key);
            }
        }
        let config = from_value_naming_key(value).map_err(|(k, m)| key_err(k, m))?;
        // Overrides are applied to the already-defaulted config so a variable can set a key
        // the file leaves out.
        let mut value = serde_json::to_value(&config).expect("config serializes");
        let touched = apply_env(&mut value, env)?;
        let config = match from_value_naming_key(value) {
            Ok(c) => c,
            Err((key, message)) => {
                let var = touched
                    .into_iter()
                    .find(|(_, k)| *k == key)
                    .map(|(v, _)| v)
                    .unwrap_or(key);
                return Err(ConfigError::Env { var, message });
            }
        };
        config.validate().map_err(|(k, m)| key_err(k, m))?;
        let read = serde_json::to_value(&config).expect("config serializes");
        let not_acted_on = set_here
            .into_iter()
            .filter(|p| FOREIGN.contains(p) || read.pointer(p) != defaults.pointer(p))
            .map(|p| p.trim_start_matches('/').replace('/', "."))
            .collect();
        let mut config = Config {
            not_acted_on,
            ..config
        };
        config.consensus.crdt_mode = crdt_mode;
        Ok(config)
    }

    /// Checks that span keys or that serde cannot express.
    fn validate(&self) -> Result<(), (String, String)> {
        if self.cluster.secret.0 == [0; 32] {
            return Err((
                "cluster.secret".into(),
                "missing or all zeros: set it to the cluster's 64-hex-character secret (peers made by the desktop app keep it in the OS keyring: pass it as CLUSTER_SECRET)".into(),
            ));
        }
        let (min, max) = (
            self.cluster.replication_factor_min,
            self.cluster.replication_factor_max,
        );
        check_replication(min, max)
            .map_err(|m| ("cluster.replication_factor_min".into(), m.to_string()))?;
        if self.cluster.pin_only_on_trusted_peers && self.cluster.pin_only_on_untrusted_peers {
            return Err((
                "cluster.pin_only_on_trusted_peers".into(),
                "pin_only_on_trusted_peers and pin_only_on_untrusted_peers cannot both be true"
                    .into(),
            ));
        }
        if self.cluster.listen_multiaddress.0.is_empty() {
            return Err((
                "cluster.listen_multiaddress".into(),
                "needs at least one multiaddress".into(),
            ));
        }
        if let Some(crdt) = &self.consensus.crdt {
            crdt.validate()?;
        }
        let name = self.cluster.peerstore_file.trim();
        if name.contains('/') || name.contains('\\') || name == "." || name == ".." {
            return Err((
                "cluster.peerstore_file".into(),
                format!("{name:?}: must be a file name in the peer's folder (no path)"),
            ));
        }
        if self.pin_tracker.stateless.concurrent_pins == 0 {
            return Err((
                "pin_tracker.stateless.concurrent_pins".into(),
                "must be at least 1".into(),
            ));
        }
        let key = "api.restapi.http_listen_multiaddress";
        let rest = &self.api.restapi.0.http_listen_multiaddress.0;
        if rest.is_empty() {
            return Err((key.to_string(), "needs a multiaddress".to_string()));
        }
        for addr in rest {
            crate::net::listen_addr(addr).map_err(|m| (key.to_string(), m.to_string()))?;
        }
        let key = "ipfs_connector.ipfshttp.node_multiaddress";
        let node = self.ipfs_connector.ipfshttp.node_multiaddress.first();
        let node = node.ok_or_else(|| (key.to_string(), "needs a multiaddress".to_string()))?;
        crate::net::http_url(node).map_err(|m| (key.to_string(), m.to_string()))?;
        Ok(())
    }
}

/// Replication factors as IPFS Cluster accepts them: both -1 (everywhere), or 0 < min <= max
/// (0 means "use the cluster default" on a per-pin basis).
pub fn check_replication(min: i32, max: i32) -> Result<(), InvalidReplication> {
    let invalid = |m: String| Err(InvalidReplication(m));
    match (min, max) {
        (-1, -1) | (0, 0) => Ok(()),
        (min, max) if min < -1 || max < -1 => invalid(format!("invalid replication factors {min}/{max}")),
        (-1, _) | (_, -1) => invalid(format!(
            "replication factor min ({min}) and max ({max}) must both be -1 (pin everywhere) or both positive"
        )),
        (min, max) if min > max && max != 0 => invalid(format!(
            "replication factor min ({min}) must not exceed max ({max})"
        )),
        _ => Ok(()),
    }
}

fn from_value_naming_key(value: Value) -> Result<Config, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        let message = e.into_inner().to_string();
        match message.split_once(INNER_KEY) {
            Some((inner, message)) => (format!("{key}.{inner}"), message.to_string()),
            None => (key, message),
        }
    })
}

/// Applies `CLUSTER_<SECTION>_<KEY>` variables (key without underscores, upper case).
/// Returns which variable set which key, so a bad value is reported under its variable.
fn apply_env(
    value: &mut Value,
    env: &[(String, String)],
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut touched = Vec::new();
    for (prefix, path) in ENV_SECTIONS {
        let mut section = &mut *value;
        for p in *path {
            section = section.get_mut(*p).expect("defaulted section exists");
        }
        let Some(obj) = section.as_object_mut() else {
            continue;
        };
        for (key, current) in obj.iter_mut() {
            let var = format!("{prefix}_{}", key.replace('_', "").to_uppercase());
            let Some((_, raw)) = env.iter().find(|(k, _)| *k == var) else {
                continue;
            };
            *current = env_value(&var, current, raw)?;
            touched.push((var, format!("{}.{key}", path.join("."))));
        }
    }
    Ok(touched)
}

/// Interprets variable `var`'s text by the JSON type of the key it replaces.
fn env_value(var: &str, current: &Value, raw: &str) -> Result<Value, ConfigError> {
    let err = |message: String| ConfigError::Env {
        var: var.to_string(),
        message,
    };
    let parse_json =
        || serde_json::from_str::<Value>(raw).map_err(|e| err(format!("expected JSON: {e}")));
    match current {
        Value::String(_) => Ok(Value::String(raw.to_string())),
        Value::Bool(_) => raw
            .parse::<bool>()
            .map(Value::Bool)
            .map_err(|_| err(format!("expected true or false, got {raw:?}"))),
        Value::Number(_) => raw
            .parse::<serde_json::Number>()
            .map(Value::Number)
            .map_err(|_| err(format!("expected a number, got {raw:?}"))),
        Value::Array(_) if !raw.trim_start().starts_with('[') => Ok(Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        )),
        _ => parse_json(),
    }
}
