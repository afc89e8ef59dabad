//! Every section of `service.json` with IPFS Cluster's defaults (SPEC §2). Unknown keys are
//! refused (`deny_unknown_fields`), naming the key.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::duration::GoDuration;
use super::values::{Multiaddrs, Secret};

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
    /// Where other peers reach this one, when not at its listen addresses (a NAT's public
    /// address, a DNS name, a relay): announced instead of them.
    pub announce_multiaddress: Multiaddrs,
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

impl ClusterConfig {
    /// The peerstore file in the peer's `folder` (`peerstore_file`, checked at load to be
    /// one file name; empty, as IPFS Cluster may write it: `peerstore`).
    pub fn peerstore_path(&self, folder: &std::path::Path) -> std::path::PathBuf {
        match self.peerstore_file.trim() {
            "" => folder.join("peerstore"),
            name => folder.join(name),
        }
    }
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
            announce_multiaddress: Multiaddrs::default(),
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
    /// IPFS Cluster's CRDT section (`consensus/crdt/config.go`), read and checked as IPFS
    /// Cluster reads it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crdt: Option<CrdtConfig>,
    /// The file has a `crdt` section and no `raft` one: the peer runs the CRDT consensus
    /// (with both, Raft, as this project's releases before the CRDT read such files). Not
    /// part of the file.
    #[serde(skip)]
    pub crdt_mode: bool,
}

/// The `consensus.crdt` section, with IPFS Cluster's defaults. Every key an IPFS Cluster
/// release writes here is known (its `jsonConfig` has only gained keys), so an unknown one is
/// a typo and, as elsewhere, an error naming it (SPEC §config).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CrdtConfig {
    /// Names the pubsub topic (its MD5 multihash in base58).
    pub cluster_name: String,
    /// Peer ids whose deltas are applied; `"*"` trusts every peer (the default).
    pub trusted_peers: Vec<String>,
    pub batching: CrdtBatching,
    /// How often a dirty store is repaired (IPFS Cluster); this store is never dirty.
    pub repair_interval: GoDuration,
    /// How often the heads are announced again when nothing else was.
    pub rebroadcast_interval: GoDuration,
    /// The metric whose senders make the peerset.
    pub peerset_metric: String,
    pub datastore_namespace: String,
    /// This project's own key (IPFS Cluster has none, and ignores it): a trusted peer makes
    /// a checkpoint of the set once it holds this many blocks more than at its last one, so
    /// that new peers load the set and sync only what came after (0: never).
    pub checkpoint_every: u64,
    /// This project's own key (IPFS Cluster has none, and ignores it): once every trusted
    /// peer is heard above this peer's checkpoint, the bytes of the deltas it covers are
    /// dropped (their CIDs stay); peers that lack them load or merge a checkpoint. Off by
    /// default: IPFS Cluster's peers cannot read checkpoints, and sync the whole DAG. Needs
    /// `trusted_peers` to name every peer that writes (not `"*"`).
    pub drop_old_deltas: bool,
}

/// Batching of CRDT writes: both `max_batch_size` and `max_batch_age` above 0 enable it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CrdtBatching {
    pub max_batch_size: u64,
    pub max_batch_age: GoDuration,
    pub max_queue_size: u64,
}

impl Default for CrdtBatching {
    fn default() -> Self {
        CrdtBatching {
            max_batch_size: 0,
            max_batch_age: GoDuration::secs(0),
            max_queue_size: 50_000,
        }
    }
}

impl Default for CrdtConfig {
    fn default() -> Self {
        CrdtConfig {
            cluster_name: "ipfs-cluster".into(),
            trusted_peers: vec!["*".into()],
            batching: CrdtBatching::default(),
            repair_interval: GoDuration::secs(3600),
            rebroadcast_interval: GoDuration::secs(60),
            peerset_metric: "ping".into(),
            datastore_namespace: "/c".into(),
            checkpoint_every: 1000,
            drop_old_deltas: false,
        }
    }
}

impl CrdtConfig {
    /// Whether every peer is trusted (`"*"` among the trusted peers).
    pub fn trust_all(&self) -> bool {
        self.trusted_peers.iter().any(|p| p == "*")
    }

    /// Whether writes are batched.
    pub fn batching_enabled(&self) -> bool {
        self.batching.max_batch_size > 0 && !self.batching.max_batch_age.get().is_zero()
    }

    /// IPFS Cluster's checks (`Config.Validate`, and the trusted peers' parsing): the key at
    /// fault and what is wrong with it.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let key = |k: &str| format!("consensus.crdt.{k}");
        if self.cluster_name.is_empty() {
            return Err((key("cluster_name"), "cannot be empty".into()));
        }
        if self.peerset_metric.is_empty() {
            return Err((key("peerset_metric"), "needs a name".into()));
        }
        if self.rebroadcast_interval.get().is_zero() {
            return Err((key("rebroadcast_interval"), "must be above 0".into()));
        }
        if self.batching.max_queue_size == 0 {
            return Err((key("batching.max_queue_size"), "must be above 0".into()));
        }
        if self.drop_old_deltas && self.trust_all() {
            return Err((
                key("drop_old_deltas"),
                "needs trusted_peers to name every peer that writes: with \"*\" anyone may \
                 write, so no delta is ever known to have reached every writer"
                    .into(),
            ));
        }
        if !self.trust_all() {
            for p in &self.trusted_peers {
                p.parse::<libp2p_identity::PeerId>().map_err(|e| {
                    (
                        key("trusted_peers"),
                        format!("{p:?} is not a peer id (nor \"*\"): {e}"),
                    )
                })?;
            }
        }
        Ok(())
    }
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
    /// Connections served at once, over all listen addresses; one more is answered 503 and
    /// closed. Not in IPFS Cluster's config (whose APIs have no limit); absent means 1,024.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
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
            max_connections: None,
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
pub(super) const INNER_KEY: char = '\u{0}';

/// An HTTP API section whose keys default to [`HttpApiConfig`]'s on port `PORT`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(transparent)]
pub struct HttpApiSection<const PORT: u16>(pub HttpApiConfig);

impl<const PORT: u16> Default for HttpApiSection<PORT> {
    fn default() -> Self {
        HttpApiSection(HttpApiConfig::on_port(PORT))
    }
}

impl<'de, const PORT: u16> Deserialize<'de> for HttpApiSection<PORT> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        http_api_with_defaults(d, HttpApiConfig::on_port(PORT)).map(HttpApiSection)
    }
}

/// The REST API section (default port 9094).
pub type RestApiConfig = HttpApiSection<9094>;
/// The Pinning Service API section (default port 9097).
pub type PinSvcApiConfig = HttpApiSection<9097>;

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
    /// Credentials the proxy asks for (basic auth), set by the desktop app for its own peer;
    /// never read from or written to `service.json` (IPFS Cluster's proxy has none).
    #[serde(skip)]
    pub basic_auth_credentials: Option<std::collections::BTreeMap<String, String>>,
    /// As [`HttpApiConfig::max_connections`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
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
            basic_auth_credentials: None,
            max_connections: None,
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
    /// State changes (applied pins and unpins) queued for the tracker at most; past it,
    /// pins are re-read from the pinset and unpins wait (see `state::feed`). Not in IPFS
    /// Cluster's config; absent means 65,536.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_feed_capacity: Option<usize>,
}

impl Default for StatelessTrackerConfig {
    fn default() -> Self {
        StatelessTrackerConfig {
            max_pin_queue_size: 1_000_000,
            concurrent_pins: 10,
            priority_pin_max_age: GoDuration::secs(24 * 3600),
            priority_pin_max_retries: 5,
            state_feed_capacity: None,
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
    pub pinqueue: PinQueueInformerConfig,
}

/// `informer.pinqueue`, as IPFS Cluster writes it (`weight_bucket_size` is not acted on).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PinQueueInformerConfig {
    pub metric_ttl: GoDuration,
    pub weight_bucket_size: u64,
}

impl Default for PinQueueInformerConfig {
    fn default() -> Self {
        PinQueueInformerConfig {
            metric_ttl: GoDuration::secs(30),
            weight_bucket_size: 100_000,
        }
    }
}

/// `observations`: operators' metrics and traces, with IPFS Cluster's keys and defaults.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ObservationsConfig {
    pub metrics: MetricsConfig,
    pub tracing: TracingConfig,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve Prometheus metrics (also `daemon --stats`).
    pub enable_stats: bool,
    pub prometheus_endpoint: Multiaddrs,
    /// IPFS Cluster pushes to its exporter this often; here values are read at each scrape.
    pub reporting_interval: GoDuration,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enable_stats: false,
            prometheus_endpoint: Multiaddrs::one("/ip4/127.0.0.1/tcp/8888"),
            reporting_interval: GoDuration::secs(2),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    pub enable_tracing: bool,
    pub jaeger_agent_endpoint: String,
    pub sampling_prob: f64,
    pub service_name: String,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            enable_tracing: false,
            jaeger_agent_endpoint: "/ip4/0.0.0.0/udp/6831".into(),
            sampling_prob: 0.3,
            service_name: "cluster-daemon".into(),
        }
    }
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
    /// IPFS Cluster's datastore section is accepted, so that a Go peer's `service.json`
    /// loads unchanged, but unused: state lives in the Raft SQLite database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datastore: Option<Value>,
    pub observations: ObservationsConfig,
    /// Keys of the file that this project accepts but does not act on (dotted), for the one
    /// warning at start (SPEC §2). Not part of the file.
    #[serde(skip)]
    pub not_acted_on: Vec<String>,
}
