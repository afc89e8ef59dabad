//! `service.json`: every section and default of IPFS Cluster's (SPEC §2), loaded strictly.
//!
//! The file is written once, by `init`; the program never rewrites it (peers it learns go to the
//! `peerstore` file instead). Loading refuses anything it does not understand, naming the key,
//! because a silently ignored typo in a cluster config surfaces weeks later as a split cluster.

mod duration;
pub mod identity;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use multiaddr::Multiaddr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub use duration::GoDuration;
pub use identity::Identity;

pub const CONFIG_FILE: &str = "service.json";
pub const IDENTITY_FILE: &str = "identity.json";
pub const DEFAULT_FOLDER: &str = ".ipfs-cluster";

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
}

/// The cluster folder: `--config DIR`, else `$IPFS_CLUSTER_PATH`, else `~/.ipfs-cluster`.
pub fn folder(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("IPFS_CLUSTER_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    dirs::home_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join(DEFAULT_FOLDER)
}

/// One multiaddress or a list of them: IPFS Cluster accepts both spellings for every
/// multiaddress key, so configs written by either form load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Multiaddrs(pub Vec<Multiaddr>);

impl Multiaddrs {
    pub fn one(s: &str) -> Multiaddrs {
        Multiaddrs(vec![s.parse().expect("valid built-in multiaddr")])
    }
    pub fn first(&self) -> Option<&Multiaddr> {
        self.0.first()
    }
}

impl Serialize for Multiaddrs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let strs: Vec<String> = self.0.iter().map(|m| m.to_string()).collect();
        if strs.len() == 1 {
            s.serialize_str(&strs[0])
        } else {
            strs.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Multiaddrs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        let strs = match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        };
        strs.iter()
            .map(|s| {
                Multiaddr::from_str(s).map_err(|e| {
                    serde::de::Error::custom(format!("invalid multiaddress {s:?}: {e}"))
                })
            })
            .collect::<Result<_, _>>()
            .map(Multiaddrs)
    }
}

/// The cluster secret: 32 bytes, written as 64 hex characters.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub [u8; 32]);

impl Secret {
    pub fn generate() -> Secret {
        Secret(rand::random())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s.trim())
            .map_err(|e| format!("the secret must be 64 hexadecimal characters ({e})"))?;
        let arr: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "the secret must be 32 bytes (64 hexadecimal characters), this one is {} bytes",
                b.len()
            )
        })?;
        Ok(Secret(arr))
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConnMgrConfig {
    pub high_water: u32,
    pub low_water: u32,
    pub grace_period: GoDuration,
}

impl Default for ConnMgrConfig {
    fn default() -> Self {
        ConnMgrConfig {
            high_water: 400,
            low_water: 100,
            grace_period: GoDuration::secs(120),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    pub peername: String,
    pub secret: Secret,
    pub leave_on_shutdown: bool,
    pub listen_multiaddress: Multiaddrs,
    pub enable_relay_hop: bool,
    pub connection_manager: ConnMgrConfig,
    pub dial_peer_timeout: GoDuration,
    pub state_sync_interval: GoDuration,
    pub pin_recover_interval: GoDuration,
    pub replication_factor_min: i32,
    pub replication_factor_max: i32,
    pub monitor_ping_interval: GoDuration,
    pub peer_watch_interval: GoDuration,
    pub mdns_interval: GoDuration,
    pub pin_only_on_trusted_peers: bool,
    pub pin_only_on_untrusted_peers: bool,
    pub disable_repinning: bool,
    pub follower_mode: bool,
    pub peerstore_file: String,
    pub peer_addresses: Vec<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            peername: gethostname::gethostname().to_string_lossy().into_owned(),
            secret: Secret([0; 32]),
            leave_on_shutdown: false,
            listen_multiaddress: Multiaddrs(vec!["/ip4/0.0.0.0/tcp/9096".parse().unwrap()]),
            enable_relay_hop: false,
            connection_manager: ConnMgrConfig::default(),
            dial_peer_timeout: GoDuration::secs(3),
            state_sync_interval: GoDuration::secs(5 * 60),
            pin_recover_interval: GoDuration::secs(12 * 60),
            replication_factor_min: -1,
            replication_factor_max: -1,
            monitor_ping_interval: GoDuration::secs(15),
            peer_watch_interval: GoDuration::secs(5),
            mdns_interval: GoDuration::secs(0),
            pin_only_on_trusted_peers: false,
            pin_only_on_untrusted_peers: false,
            disable_repinning: true,
            follower_mode: false,
            peerstore_file: "peerstore".into(),
            peer_addresses: Vec::new(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RaftConfig {
    pub init_peerset: Vec<String>,
    pub wait_for_leader_timeout: GoDuration,
    pub network_timeout: GoDuration,
    pub commit_retries: u32,
    pub commit_retry_delay: GoDuration,
    pub backups_rotate: u32,
    pub heartbeat_timeout: GoDuration,
    pub election_timeout: GoDuration,
    pub commit_timeout: GoDuration,
    pub max_append_entries: u64,
    pub trailing_logs: u64,
    pub snapshot_interval: GoDuration,
    pub snapshot_threshold: u64,
    pub leader_lease_timeout: GoDuration,
}

impl RaftConfig {
    /// How long a membership change may take: adding a peer waits until it has caught up
    /// with the log, which takes much longer than one network round trip.
    pub fn membership_timeout(&self) -> std::time::Duration {
        self.network_timeout.get() * 12
    }
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            init_peerset: Vec::new(),
            wait_for_leader_timeout: GoDuration::secs(15),
            network_timeout: GoDuration::secs(10),
            commit_retries: 1,
            commit_retry_delay: GoDuration::millis(200),
            backups_rotate: 6,
            heartbeat_timeout: GoDuration::secs(1),
            election_timeout: GoDuration::secs(1),
            commit_timeout: GoDuration::millis(50),
            max_append_entries: 64,
            trailing_logs: 10240,
            snapshot_interval: GoDuration::secs(120),
            snapshot_threshold: 8192,
            leader_lease_timeout: GoDuration::millis(500),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusConfig {
    pub raft: RaftConfig,
    /// Accepted so IPFS Cluster configs that also carry a CRDT section load; unused here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crdt: Option<Value>,
}

/// Shared by the REST API (9094) and the Pinning Service API (9097), as in IPFS Cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpApiConfig {
    pub http_listen_multiaddress: Multiaddrs,
    pub read_timeout: GoDuration,
    pub read_header_timeout: GoDuration,
    pub write_timeout: GoDuration,
    pub idle_timeout: GoDuration,
    pub max_header_bytes: u64,
    pub basic_auth_credentials: Option<BTreeMap<String, String>>,
    pub http_log_file: String,
    pub headers: BTreeMap<String, Vec<String>>,
    pub cors_allowed_origins: Vec<String>,
    pub cors_allowed_methods: Vec<String>,
    pub cors_allowed_headers: Vec<String>,
    pub cors_exposed_headers: Vec<String>,
    pub cors_allow_credentials: bool,
    pub cors_max_age: GoDuration,
    pub ssl_cert_file: String,
    pub ssl_key_file: String,
}

impl HttpApiConfig {
    fn on_port(port: u16) -> HttpApiConfig {
        HttpApiConfig {
            http_listen_multiaddress: Multiaddrs::one(&format!("/ip4/127.0.0.1/tcp/{port}")),
            read_timeout: GoDuration::secs(0),
            read_header_timeout: GoDuration::secs(5),
            write_timeout: GoDuration::secs(0),
            idle_timeout: GoDuration::secs(120),
            max_header_bytes: 4096,
            basic_auth_credentials: None,
            http_log_file: String::new(),
            headers: BTreeMap::new(),
            cors_allowed_origins: vec!["*".into()],
            cors_allowed_methods: vec!["GET".into()],
            cors_allowed_headers: Vec::new(),
            cors_exposed_headers: vec![
                "Content-Type".into(),
                "X-Stream-Output".into(),
                "X-Chunked-Output".into(),
                "X-Content-Length".into(),
            ],
            cors_allow_credentials: true,
            cors_max_age: GoDuration::secs(0),
            ssl_cert_file: String::new(),
            ssl_key_file: String::new(),
        }
    }
}

impl Default for HttpApiConfig {
    fn default() -> Self {
        HttpApiConfig::on_port(9094)
    }
}

/// Fills the keys a section leaves out from `defaults` (the two HTTP APIs share a type but
/// not a default port).
fn http_api_with_defaults<'de, D: Deserializer<'de>>(
    d: D,
    defaults: HttpApiConfig,
) -> Result<HttpApiConfig, D::Error> {
    let given = serde_json::Map::<String, Value>::deserialize(d)?;
    let mut merged = serde_json::to_value(defaults).expect("config serializes");
    let obj = merged.as_object_mut().expect("object");
    for (k, v) in given {
        obj.insert(k, v);
    }
    // The inner key travels in the message (after a NUL) so the error names the full path.
    serde_path_to_error::deserialize(merged)
        .map_err(|e| serde::de::Error::custom(format!("{}{INNER_KEY}{}", e.path(), e.inner())))
}

/// Separates an inner key path from the message in errors of nested deserializers.
const INNER_KEY: char = '\u{0}';

/// The REST API section (default port 9094).
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(transparent)]
pub struct RestApiConfig(pub HttpApiConfig);
impl Default for RestApiConfig {
    fn default() -> Self {
        RestApiConfig(HttpApiConfig::on_port(9094))
    }
}
impl<'de> Deserialize<'de> for RestApiConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        http_api_with_defaults(d, HttpApiConfig::on_port(9094)).map(RestApiConfig)
    }
}

/// The Pinning Service API section (default port 9097).
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(transparent)]
pub struct PinSvcApiConfig(pub HttpApiConfig);
impl Default for PinSvcApiConfig {
    fn default() -> Self {
        PinSvcApiConfig(HttpApiConfig::on_port(9097))
    }
}
impl<'de> Deserialize<'de> for PinSvcApiConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        http_api_with_defaults(d, HttpApiConfig::on_port(9097)).map(PinSvcApiConfig)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IpfsProxyConfig {
    pub listen_multiaddress: Multiaddrs,
    pub node_multiaddress: Multiaddrs,
    pub log_file: String,
    pub read_timeout: GoDuration,
    pub read_header_timeout: GoDuration,
    pub write_timeout: GoDuration,
    pub idle_timeout: GoDuration,
    pub max_header_bytes: u64,
    pub extract_headers_extra: Vec<String>,
    pub extract_headers_path: String,
    pub extract_headers_ttl: GoDuration,
}

impl Default for IpfsProxyConfig {
    fn default() -> Self {
        IpfsProxyConfig {
            listen_multiaddress: Multiaddrs::one("/ip4/127.0.0.1/tcp/9095"),
            node_multiaddress: Multiaddrs::one("/ip4/127.0.0.1/tcp/5001"),
            log_file: String::new(),
            read_timeout: GoDuration::secs(0),
            read_header_timeout: GoDuration::secs(5),
            write_timeout: GoDuration::secs(0),
            idle_timeout: GoDuration::secs(60),
            max_header_bytes: 4096,
            extract_headers_extra: Vec::new(),
            extract_headers_path: "/api/v0/version".into(),
            extract_headers_ttl: GoDuration::secs(300),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub restapi: RestApiConfig,
    pub ipfsproxy: IpfsProxyConfig,
    pub pinsvcapi: PinSvcApiConfig,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IpfsHttpConfig {
    pub node_multiaddress: Multiaddrs,
    pub connect_swarms_delay: GoDuration,
    pub ipfs_request_timeout: GoDuration,
    pub pin_timeout: GoDuration,
    pub unpin_timeout: GoDuration,
    pub repogc_timeout: GoDuration,
    pub informer_trigger_interval: u32,
}

impl Default for IpfsHttpConfig {
    fn default() -> Self {
        IpfsHttpConfig {
            node_multiaddress: Multiaddrs::one("/ip4/127.0.0.1/tcp/5001"),
            connect_swarms_delay: GoDuration::secs(30),
            ipfs_request_timeout: GoDuration::secs(5 * 60),
            pin_timeout: GoDuration::secs(2 * 60),
            unpin_timeout: GoDuration::secs(3 * 3600),
            repogc_timeout: GoDuration::secs(24 * 3600),
            informer_trigger_interval: 0,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct IpfsConnectorConfig {
    pub ipfshttp: IpfsHttpConfig,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StatelessTrackerConfig {
    pub max_pin_queue_size: usize,
    pub concurrent_pins: usize,
    pub priority_pin_max_age: GoDuration,
    pub priority_pin_max_retries: u32,
}

impl Default for StatelessTrackerConfig {
    fn default() -> Self {
        StatelessTrackerConfig {
            max_pin_queue_size: 1_000_000,
            concurrent_pins: 10,
            priority_pin_max_age: GoDuration::secs(24 * 3600),
            priority_pin_max_retries: 5,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PinTrackerConfig {
    pub stateless: StatelessTrackerConfig,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PubsubMonConfig {
    pub check_interval: GoDuration,
}

impl Default for PubsubMonConfig {
    fn default() -> Self {
        PubsubMonConfig {
            check_interval: GoDuration::secs(15),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    pub pubsubmon: PubsubMonConfig,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BalancedConfig {
    pub allocate_by: Vec<String>,
}

impl Default for BalancedConfig {
    fn default() -> Self {
        BalancedConfig {
            allocate_by: vec!["tag:group".into(), "freespace".into()],
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AllocatorConfig {
    pub balanced: BalancedConfig,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DiskInformerConfig {
    pub metric_ttl: GoDuration,
    pub metric_type: String,
}

impl Default for DiskInformerConfig {
    fn default() -> Self {
        DiskInformerConfig {
            metric_ttl: GoDuration::secs(30),
            metric_type: "freespace".into(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NumpinInformerConfig {
    pub metric_ttl: GoDuration,
}

impl Default for NumpinInformerConfig {
    fn default() -> Self {
        NumpinInformerConfig {
            metric_ttl: GoDuration::secs(10),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TagsInformerConfig {
    pub metric_ttl: GoDuration,
    pub tags: BTreeMap<String, String>,
}

impl Default for TagsInformerConfig {
    fn default() -> Self {
        TagsInformerConfig {
            metric_ttl: GoDuration::secs(30),
            tags: BTreeMap::from([("group".to_string(), "default".to_string())]),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct InformerConfig {
    pub disk: DiskInformerConfig,
    pub numpin: NumpinInformerConfig,
    pub tags: TagsInformerConfig,
}

/// The whole of `service.json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub cluster: ClusterConfig,
    pub consensus: ConsensusConfig,
    pub api: ApiConfig,
    pub ipfs_connector: IpfsConnectorConfig,
    pub pin_tracker: PinTrackerConfig,
    pub monitor: MonitorConfig,
    pub allocator: AllocatorConfig,
    pub informer: InformerConfig,
    /// IPFS Cluster's datastore and observability sections are accepted, so that a Go peer's
    /// `service.json` loads unchanged, but unused: state lives in the Raft SQLite database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datastore: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observations: Option<Value>,
}

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
        check_replication(min, max).map_err(|m| ("cluster.replication_factor_min".into(), m))?;
        if self.cluster.listen_multiaddress.0.is_empty() {
            return Err((
                "cluster.listen_multiaddress".into(),
                "needs at least one multiaddress".into(),
            ));
        }
        if self.pin_tracker.stateless.concurrent_pins == 0 {
            return Err((
                "pin_tracker.stateless.concurrent_pins".into(),
                "must be at least 1".into(),
            ));
        }
        let key = "api.restapi.http_listen_multiaddress";
        let first = self.api.restapi.0.http_listen_multiaddress.first();
        let first = first.ok_or_else(|| (key.to_string(), "needs a multiaddress".to_string()))?;
        crate::net::socket_addr(first).map_err(|m| (key.to_string(), m))?;
        let key = "ipfs_connector.ipfshttp.node_multiaddress";
        let node = self.ipfs_connector.ipfshttp.node_multiaddress.first();
        let node = node.ok_or_else(|| (key.to_string(), "needs a multiaddress".to_string()))?;
        crate::net::http_url(node).map_err(|m| (key.to_string(), m))?;
        Ok(())
    }
}

/// Replication factors as IPFS Cluster accepts them: both -1 (everywhere), or 0 < min <= max
/// (0 means "use the cluster default" on a per-pin basis).
pub fn check_replication(min: i32, max: i32) -> Result<(), String> {
    match (min, max) {
        (-1, -1) | (0, 0) => Ok(()),
        (min, max) if min < -1 || max < -1 => Err(format!("invalid replication factors {min}/{max}")),
        (-1, _) | (_, -1) => Err(format!(
            "replication factor min ({min}) and max ({max}) must both be -1 (pin everywhere) or both positive"
        )),
        (min, max) if min > max && max != 0 => Err(format!(
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
            *current = env_value(current, raw).map_err(|message| ConfigError::Env {
                var: var.clone(),
                message,
            })?;
            touched.push((var, format!("{}.{key}", path.join("."))));
        }
    }
    Ok(touched)
}

/// Interprets a variable's text by the JSON type of the key it replaces.
fn env_value(current: &Value, raw: &str) -> Result<Value, String> {
    let parse_json =
        || serde_json::from_str::<Value>(raw).map_err(|e| format!("expected JSON: {e}"));
    match current {
        Value::String(_) => Ok(Value::String(raw.to_string())),
        Value::Bool(_) => raw
            .parse::<bool>()
            .map(Value::Bool)
            .map_err(|_| format!("expected true or false, got {raw:?}")),
        Value::Number(_) => raw
            .parse::<serde_json::Number>()
            .map(Value::Number)
            .map_err(|_| format!("expected a number, got {raw:?}")),
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

/// Writes a fresh `service.json` and `identity.json` into `folder`.
pub fn init(folder: &Path, force: bool) -> Result<(Config, Identity), ConfigError> {
    init_with(folder, force, Config::new_for_init(), true)
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
    std::fs::create_dir_all(folder).map_err(io(folder))?;
    let identity = Identity::generate();
    let mut json = serde_json::to_value(&config).expect("config serializes");
    if !with_secret {
        json["cluster"]
            .as_object_mut()
            .expect("cluster section")
            .remove("secret");
    }
    let text = serde_json::to_string_pretty(&json).expect("config serializes") + "\n";
    write_private(&cfg_path, text.as_bytes()).map_err(io(&cfg_path))?;
    identity.save(&id_path).map_err(io(&id_path))?;
    Ok((config, identity))
}

/// Writes a file readable by its owner only: both files hold secrets.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("service.json"), text, &[])
    }

    fn valid_json() -> Value {
        serde_json::to_value(Config::new_for_init()).unwrap()
    }

    #[test]
    fn defaults_match_the_spec() {
        let v = valid_json();
        assert_eq!(v["cluster"]["listen_multiaddress"], "/ip4/0.0.0.0/tcp/9096");
        assert_eq!(v["cluster"]["replication_factor_min"], -1);
        assert_eq!(v["cluster"]["state_sync_interval"], "5m0s");
        assert_eq!(v["cluster"]["pin_recover_interval"], "12m0s");
        assert_eq!(v["cluster"]["disable_repinning"], true);
        assert_eq!(v["consensus"]["raft"]["wait_for_leader_timeout"], "15s");
        assert_eq!(v["consensus"]["raft"]["commit_retry_delay"], "200ms");
        assert_eq!(v["consensus"]["raft"]["backups_rotate"], 6);
        assert_eq!(
            v["api"]["restapi"]["http_listen_multiaddress"],
            "/ip4/127.0.0.1/tcp/9094"
        );
        assert_eq!(
            v["api"]["pinsvcapi"]["http_listen_multiaddress"],
            "/ip4/127.0.0.1/tcp/9097"
        );
        assert_eq!(
            v["api"]["ipfsproxy"]["listen_multiaddress"],
            "/ip4/127.0.0.1/tcp/9095"
        );
        assert_eq!(v["api"]["restapi"]["basic_auth_credentials"], Value::Null);
        assert_eq!(v["ipfs_connector"]["ipfshttp"]["pin_timeout"], "2m0s");
        assert_eq!(v["ipfs_connector"]["ipfshttp"]["unpin_timeout"], "3h0m0s");
        assert_eq!(
            v["pin_tracker"]["stateless"]["max_pin_queue_size"],
            1_000_000
        );
        assert_eq!(v["pin_tracker"]["stateless"]["concurrent_pins"], 10);
        assert_eq!(v["monitor"]["pubsubmon"]["check_interval"], "15s");
        assert_eq!(v["informer"]["disk"]["metric_ttl"], "30s");
        assert_eq!(
            v["allocator"]["balanced"]["allocate_by"],
            serde_json::json!(["tag:group", "freespace"])
        );
        assert_eq!(v["cluster"]["secret"].as_str().unwrap().len(), 64);
        // What init writes loads back unchanged.
        let c = parse(&v.to_string()).unwrap();
        assert_eq!(serde_json::to_value(c).unwrap(), v);
    }

    #[test]
    fn malformed_json_is_reported() {
        let err = parse("{\"cluster\": ").unwrap_err();
        assert!(matches!(err, ConfigError::Malformed { .. }), "{err}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let mut v = valid_json();
        v["cluster"]["replication_factr_min"] = 2.into();
        let err = parse(&v.to_string()).unwrap_err().to_string();
        assert!(err.contains("replication_factr_min"), "{err}");
    }

    #[test]
    fn obsolete_keys_say_what_to_do() {
        for key in ["peers", "bootstrap"] {
            let mut v = valid_json();
            v["cluster"][key] = serde_json::json!([]);
            let err = parse(&v.to_string()).unwrap_err().to_string();
            assert!(err.contains(&format!("cluster.{key}")), "{err}");
            assert!(err.contains("obsolete"), "{err}");
        }
    }

    #[test]
    fn bad_secret_and_multiaddr_name_the_key() {
        let mut v = valid_json();
        v["cluster"]["secret"] = "abcd".into();
        let err = parse(&v.to_string()).unwrap_err().to_string();
        assert!(err.contains("cluster.secret"), "{err}");

        let mut v = valid_json();
        v["api"]["restapi"]["http_listen_multiaddress"] = "not/a/multiaddr".into();
        let err = parse(&v.to_string()).unwrap_err().to_string();
        assert!(
            err.contains("api.restapi.http_listen_multiaddress"),
            "{err}"
        );

        let mut v = valid_json();
        v["consensus"]["raft"]["commit_retry_delay"] = "soon".into();
        let err = parse(&v.to_string()).unwrap_err().to_string();
        assert!(err.contains("consensus.raft.commit_retry_delay"), "{err}");
    }

    #[test]
    fn multiaddr_keys_take_one_or_many() {
        let mut v = valid_json();
        v["cluster"]["listen_multiaddress"] =
            serde_json::json!(["/ip4/0.0.0.0/tcp/9096", "/ip6/::/tcp/9096"]);
        v["api"]["restapi"]["http_listen_multiaddress"] =
            serde_json::json!(["/ip4/127.0.0.1/tcp/1234"]);
        let c = parse(&v.to_string()).unwrap();
        assert_eq!(c.cluster.listen_multiaddress.0.len(), 2);
        assert_eq!(
            c.api
                .restapi
                .0
                .http_listen_multiaddress
                .first()
                .unwrap()
                .to_string(),
            "/ip4/127.0.0.1/tcp/1234"
        );
    }

    #[test]
    fn env_overrides_apply_and_bad_ones_name_the_variable() {
        let text = valid_json().to_string();
        let env = vec![
            ("CLUSTER_PEERNAME".to_string(), "from-env".to_string()),
            (
                "CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS".to_string(),
                "/ip4/127.0.0.1/tcp/19094".to_string(),
            ),
            ("CLUSTER_REPLICATIONFACTORMIN".to_string(), "2".to_string()),
            ("CLUSTER_REPLICATIONFACTORMAX".to_string(), "3".to_string()),
            (
                "CLUSTER_STATELESS_CONCURRENTPINS".to_string(),
                "4".to_string(),
            ),
        ];
        let c = Config::parse(Path::new("s.json"), &text, &env).unwrap();
        assert_eq!(c.cluster.peername, "from-env");
        assert_eq!(c.cluster.replication_factor_max, 3);
        assert_eq!(c.pin_tracker.stateless.concurrent_pins, 4);
        assert_eq!(
            c.api
                .restapi
                .0
                .http_listen_multiaddress
                .first()
                .unwrap()
                .to_string(),
            "/ip4/127.0.0.1/tcp/19094"
        );

        let env = vec![("CLUSTER_SECRET".to_string(), "xyz".to_string())];
        let err = Config::parse(Path::new("s.json"), &text, &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("CLUSTER_SECRET"), "{err}");
        let env = vec![("CLUSTER_DISABLEREPINNING".to_string(), "maybe".to_string())];
        let err = Config::parse(Path::new("s.json"), &text, &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("CLUSTER_DISABLEREPINNING"), "{err}");
    }

    #[test]
    fn replication_factors_are_checked() {
        assert!(check_replication(-1, -1).is_ok());
        assert!(check_replication(2, 3).is_ok());
        assert!(check_replication(3, 2).is_err());
        assert!(check_replication(-1, 2).is_err());
        assert!(check_replication(-5, -5).is_err());
    }

    #[test]
    fn init_refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let (c, id) = init(dir.path(), false).unwrap();
        let before = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
        assert!(matches!(
            init(dir.path(), false),
            Err(ConfigError::Exists(_))
        ));
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap(),
            before
        );
        let loaded = Config::load_with_env(dir.path(), &[]).unwrap();
        assert_eq!(loaded, c);
        let loaded_id = Identity::load(&dir.path().join(IDENTITY_FILE)).unwrap();
        assert_eq!(loaded_id.peer_id(), id.peer_id());
        let (c2, _) = init(dir.path(), true).unwrap();
        assert_ne!(c2.cluster.secret, c.cluster.secret);
    }

    #[test]
    fn go_config_sections_are_accepted() {
        let mut v = valid_json();
        v["datastore"] = serde_json::json!({"pebble": {}});
        v["observations"] = serde_json::json!({"metrics": {}});
        assert!(parse(&v.to_string()).is_ok());
    }
}
