//! Plain data types exactly as IPFS Cluster's REST API sends them (SPEC §3).
//!
//! The server, `ipfs-cluster-ctl` and the desktop UI all use these structs, so a JSON field is
//! spelled in one place only. Peer ids are kept as strings here: they are validated where they
//! enter the program (REST handlers, config) and only ever compared or displayed afterwards.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A content identifier, (de)serialized as its string form ("Qm…", "bafy…").
///
/// The `cid` crate's own serde impl writes binary (IPLD links); the API needs strings.
///
/// It has no order of its own: pins are listed in one order, that of [`PinKey`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, ts_rs::TS)]
#[ts(type = "string")]
pub struct Cid(pub cid::Cid);

/// A pin's place in the pinset's one order: its CID's text, compared as text (the order of
/// the `pins` table's primary key, which every peer shares). Every listing is in this order
/// and resumes after one (the store's pages, each member's status pages, the merged global
/// status, the desktop's pins view); as a cursor from a client it may be any text.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, ts_rs::TS,
)]
#[serde(transparent)]
#[ts(type = "string")]
pub struct PinKey(String);

impl PinKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&Cid> for PinKey {
    fn from(cid: &Cid) -> PinKey {
        PinKey(cid.to_string())
    }
}

impl From<String> for PinKey {
    fn from(text: String) -> PinKey {
        PinKey(text)
    }
}

impl fmt::Display for PinKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Cid {
    /// This CID's place in the pinset's order.
    pub fn key(&self) -> PinKey {
        PinKey::from(self)
    }

    /// Key for comparing pins across CID versions: IPFS lists a pin the way it was added
    /// (`Qm…` v0), a user may pin the same content as v1 (`bafy…`).
    pub fn multihash_bytes(&self) -> Vec<u8> {
        self.0.hash().to_bytes()
    }
}

impl FromStr for Cid {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        cid::Cid::try_from(s)
            .map(Cid)
            .map_err(|e| format!("invalid CID {s:?}: {e}"))
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for Cid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Cid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Go's zero `time.Time`, which IPFS Cluster sends for "no time" (e.g. `expire_at`).
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `Option<DateTime>` written as Go writes an unset `time.Time`, so Go clients parse it.
pub mod go_time {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            None => s.serialize_str(GO_ZERO_TIME),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s.as_deref() {
            None | Some("") | Some(GO_ZERO_TIME) => Ok(None),
            Some(s) => DateTime::parse_from_rfc3339(s)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|e| serde::de::Error::custom(format!("invalid RFC 3339 time {s:?}: {e}"))),
        }
    }
}

/// Go sends `null` for empty slices and maps; accept it wherever a collection is expected.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, ts_rs::TS)]
#[serde(rename_all = "kebab-case")]
pub enum PinType {
    #[default]
    Pin,
    MetaPin,
    ClusterdagPin,
    ShardPin,
}

impl PinType {
    pub const ALL: [PinType; 4] = [
        PinType::Pin,
        PinType::MetaPin,
        PinType::ClusterdagPin,
        PinType::ShardPin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PinType::Pin => "pin",
            PinType::MetaPin => "meta-pin",
            PinType::ClusterdagPin => "clusterdag-pin",
            PinType::ShardPin => "shard-pin",
        }
    }
}

impl FromStr for PinType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PinType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown pin type {s:?} (expected pin, meta-pin, clusterdag-pin or shard-pin)"
                )
            })
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum PinMode {
    #[default]
    Recursive,
    Direct,
}

impl FromStr for PinMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "recursive" => Ok(PinMode::Recursive),
            "direct" => Ok(PinMode::Direct),
            other => Err(format!(
                "unknown pin mode {other:?} (expected recursive or direct)"
            )),
        }
    }
}

/// One line of the batch form of pinning (`POST /pins`, NDJSON): a CID and the options
/// `POST /pins/{cid}` takes, as the fields of a pin (a line of `GET /allocations` or of
/// `state export` is one; its other fields are ignored). Every field but `cid` is optional.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct PinRequest {
    pub cid: Cid,
    #[serde(flatten)]
    pub options: PinOptions,
}

impl PinRequest {
    /// One line of the batch form. Absent replication factors are 0 (the cluster's
    /// defaults), here only: a pin read elsewhere (a state import) must carry them.
    pub fn from_line(line: &[u8]) -> Result<PinRequest, serde_json::Error> {
        use serde::de::Error as _;
        let mut fields: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line)?;
        let cid = fields
            .remove("cid")
            .ok_or_else(|| serde_json::Error::custom("no \"cid\""))?;
        let cid: Cid = serde_json::from_value(cid)?;
        for f in ["replication_factor_min", "replication_factor_max"] {
            fields.entry(f).or_insert(serde_json::Value::from(0));
        }
        let options = serde_json::from_value(serde_json::Value::Object(fields))?;
        Ok(PinRequest { cid, options })
    }
}

/// What the batch form answers for each line, in order: the pin as committed (`code` 200),
/// or the error `POST /pins/{cid}` would have answered (`code` and `message`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PinResult {
    /// The line of the request, from 1.
    pub line: u64,
    pub code: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<Pin>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Options a user sets on a pin; inlined into [`Pin`] as in IPFS Cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ts_rs::TS)]
pub struct PinOptions {
    pub replication_factor_min: i32,
    pub replication_factor_max: i32,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub mode: PinMode,
    #[serde(default)]
    pub shard_size: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub user_allocations: Vec<String>,
    #[serde(default, with = "go_time")]
    #[ts(type = "string")]
    pub expire_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub pin_update: Option<Cid>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub origins: Vec<String>,
}

impl Default for PinOptions {
    fn default() -> Self {
        PinOptions {
            replication_factor_min: 0,
            replication_factor_max: 0,
            name: String::new(),
            mode: PinMode::Recursive,
            shard_size: 0,
            user_allocations: Vec::new(),
            expire_at: None,
            metadata: BTreeMap::new(),
            pin_update: None,
            origins: Vec::new(),
        }
    }
}

/// An item of the shared pinset: what the cluster keeps and where.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ts_rs::TS)]
pub struct Pin {
    pub cid: Cid,
    #[serde(rename = "type", default)]
    pub pin_type: PinType,
    /// Peer ids holding the pin; empty means every peer.
    #[serde(default, deserialize_with = "null_as_default")]
    pub allocations: Vec<String>,
    pub max_depth: i32,
    #[serde(default)]
    pub reference: Option<Cid>,
    pub timestamp: DateTime<Utc>,
    #[serde(flatten)]
    pub options: PinOptions,
}

impl Pin {
    pub fn new(cid: Cid, options: PinOptions) -> Pin {
        let max_depth = match options.mode {
            PinMode::Recursive => -1,
            PinMode::Direct => 0,
        };
        Pin {
            cid,
            pin_type: PinType::Pin,
            allocations: Vec::new(),
            max_depth,
            reference: None,
            timestamp: Utc::now(),
            options,
        }
    }

    /// Whether `peer` should hold this pin in its IPFS node.
    pub fn is_allocated_to(&self, peer: &str) -> bool {
        self.allocations.is_empty() || self.allocations.iter().any(|a| a == peer)
    }
}

/// Per-CID state of the pin tracker on one peer.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum TrackerStatus {
    Undefined,
    ClusterError,
    PinError,
    UnpinError,
    Error,
    Pinned,
    Pinning,
    Unpinning,
    Unpinned,
    Remote,
    PinQueued,
    UnpinQueued,
    Queued,
    Sharded,
    UnexpectedlyUnpinned,
}

impl TrackerStatus {
    pub const ALL: [TrackerStatus; 15] = [
        TrackerStatus::Undefined,
        TrackerStatus::ClusterError,
        TrackerStatus::PinError,
        TrackerStatus::UnpinError,
        TrackerStatus::Error,
        TrackerStatus::Pinned,
        TrackerStatus::Pinning,
        TrackerStatus::Unpinning,
        TrackerStatus::Unpinned,
        TrackerStatus::Remote,
        TrackerStatus::PinQueued,
        TrackerStatus::UnpinQueued,
        TrackerStatus::Queued,
        TrackerStatus::Sharded,
        TrackerStatus::UnexpectedlyUnpinned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TrackerStatus::Undefined => "undefined",
            TrackerStatus::ClusterError => "cluster_error",
            TrackerStatus::PinError => "pin_error",
            TrackerStatus::UnpinError => "unpin_error",
            TrackerStatus::Error => "error",
            TrackerStatus::Pinned => "pinned",
            TrackerStatus::Pinning => "pinning",
            TrackerStatus::Unpinning => "unpinning",
            TrackerStatus::Unpinned => "unpinned",
            TrackerStatus::Remote => "remote",
            TrackerStatus::PinQueued => "pin_queued",
            TrackerStatus::UnpinQueued => "unpin_queued",
            TrackerStatus::Queued => "queued",
            TrackerStatus::Sharded => "sharded",
            TrackerStatus::UnexpectedlyUnpinned => "unexpectedly_unpinned",
        }
    }

    /// Whether a filter naming `self` selects `status`: `error` and `queued` are groups.
    pub fn selects(self, status: TrackerStatus) -> bool {
        use TrackerStatus::*;
        match self {
            Error => matches!(status, Error | ClusterError | PinError | UnpinError),
            Queued => matches!(status, Queued | PinQueued | UnpinQueued),
            other => other == status,
        }
    }

    pub fn is_error(self) -> bool {
        TrackerStatus::Error.selects(self)
    }
}

impl fmt::Display for TrackerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TrackerStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TrackerStatus::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown status filter {s:?}"))
    }
}

/// A `?filter=a,b` of tracker statuses; empty selects everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusFilter(pub Vec<TrackerStatus>);

impl StatusFilter {
    pub fn matches(&self, status: TrackerStatus) -> bool {
        self.0.is_empty() || self.0.iter().any(|f| f.selects(status))
    }
}

impl FromStr for StatusFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(StatusFilter)
    }
}

/// Status of one CID on one peer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ts_rs::TS)]
pub struct PinInfoShort {
    pub peername: String,
    pub ipfs_peer_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub ipfs_peer_addresses: Vec<String>,
    pub status: TrackerStatus,
    pub timestamp: DateTime<Utc>,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub attempt_count: u32,
    #[serde(default)]
    pub priority_pin: bool,
}

/// What a status report says of the pin itself (shared by [`PinInfo`] and [`GlobalPinInfo`],
/// whose JSON has these fields at the top level).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ts_rs::TS)]
pub struct PinSummary {
    pub cid: Cid,
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub allocations: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub origins: Vec<String>,
    #[serde(with = "go_time", default)]
    #[ts(type = "string")]
    pub created: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: BTreeMap<String, String>,
}

impl PinSummary {
    pub fn of(pin: &Pin) -> PinSummary {
        PinSummary {
            cid: pin.cid,
            name: pin.options.name.clone(),
            allocations: pin.allocations.clone(),
            origins: pin.options.origins.clone(),
            created: Some(pin.timestamp),
            metadata: pin.options.metadata.clone(),
        }
    }
}

/// One peer's pins by status (`GET /pins/summary`; not in IPFS Cluster's API). Read from
/// counts the peer keeps as its pinset and its operations change, so it costs the same at ten
/// pins or ten million; a status walk (`GET /pins?local=true`) finds the same numbers, except
/// that IPFS is not asked: a pin removed from IPFS behind the cluster's back counts as
/// pinned here until the next state sync queues it again.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, ts_rs::TS)]
pub struct StatusSummary {
    pub peer: String,
    pub peername: String,
    /// Pins in the cluster's pinset.
    pub pins: u64,
    /// Of them, those allocated to this peer (pins on every peer included).
    pub allocated_here: u64,
    /// Allocated here with nothing left to do.
    pub pinned: u64,
    /// Allocated to other peers only.
    pub remote: u64,
    pub pin_queued: u64,
    pub pinning: u64,
    pub pin_error: u64,
    pub unpin_queued: u64,
    pub unpinning: u64,
    pub unpin_error: u64,
    /// Allocated here with nothing left to do, while this peer's IPFS daemon does not
    /// answer (counted here instead of as pinned).
    pub cluster_error: u64,
}

/// Status of one CID on one peer, with the pin's identity (`GET /pins?local=true`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PinInfo {
    #[serde(flatten)]
    pub pin: PinSummary,
    pub peer: String,
    #[serde(flatten)]
    pub info: PinInfoShort,
}

/// Status of one CID across the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ts_rs::TS)]
pub struct GlobalPinInfo {
    #[serde(flatten)]
    pub pin: PinSummary,
    #[serde(default, deserialize_with = "null_as_default")]
    pub peer_map: BTreeMap<String, PinInfoShort>,
}

impl PinInfoShort {
    /// `status` at this moment, with nothing else known.
    pub fn now(status: TrackerStatus, error: String) -> PinInfoShort {
        PinInfoShort {
            peername: String::new(),
            ipfs_peer_id: String::new(),
            ipfs_peer_addresses: Vec::new(),
            status,
            timestamp: Utc::now(),
            error,
            attempt_count: 0,
            priority_pin: false,
        }
    }
}

/// `info.cid`, `info.name`…: the summary's fields read as the status's own, as in the JSON
/// (and as the code of clients written before the summary was factored out expects).
impl std::ops::Deref for PinInfo {
    type Target = PinSummary;
    fn deref(&self) -> &PinSummary {
        &self.pin
    }
}

impl std::ops::Deref for GlobalPinInfo {
    type Target = PinSummary;
    fn deref(&self) -> &PinSummary {
        &self.pin
    }
}

impl PinInfo {
    /// `pin`'s status on `peer`.
    pub fn of(pin: &Pin, peer: &str, info: PinInfoShort) -> PinInfo {
        PinInfo {
            pin: PinSummary::of(pin),
            peer: peer.to_string(),
            info,
        }
    }
}

impl GlobalPinInfo {
    /// `pin` with no peer's status yet.
    pub fn of(pin: &Pin) -> GlobalPinInfo {
        GlobalPinInfo {
            pin: PinSummary::of(pin),
            peer_map: BTreeMap::new(),
        }
    }

    pub fn from_local(info: PinInfo) -> GlobalPinInfo {
        GlobalPinInfo {
            pin: info.pin,
            peer_map: BTreeMap::from([(info.peer, info.info)]),
        }
    }

    /// The one peer's PinInfo of a `local=true` answer (the first, should there be more).
    pub fn into_local(self) -> Option<PinInfo> {
        let (peer, info) = self.peer_map.into_iter().next()?;
        Some(PinInfo {
            pin: self.pin,
            peer,
            info,
        })
    }
}

/// A peer's raft role (this project's addition to ID; ignored by older clients).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum PeerRole {
    Voter,
    Follower,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, ts_rs::TS)]
pub struct IpfsId {
    #[serde(default)]
    pub id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub error: String,
}

/// A cluster peer's identity and view (`GET /id`, `GET /peers`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, ts_rs::TS)]
pub struct Id {
    pub id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub addresses: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub cluster_peers: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub cluster_peers_addresses: Vec<String>,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub commit: String,
    #[serde(default)]
    pub rpc_protocol_version: String,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub ipfs: IpfsId,
    #[serde(default)]
    pub peername: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<PeerRole>,
    /// The Raft leader as this peer sees it (this project's addition, like `role`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
}

/// A peer's measurement with a time to live (`GET /monitor/metrics/{name}`); the allocator
/// only trusts valid, unexpired metrics.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, ts_rs::TS)]
pub struct Metric {
    pub name: String,
    pub peer: String,
    pub value: String,
    /// Unix time in nanoseconds after which the metric is stale.
    pub expire: i64,
    pub valid: bool,
    #[serde(default)]
    pub weight: i64,
    #[serde(default)]
    pub partitionable: bool,
    #[serde(default)]
    pub received_at: i64,
}

impl Metric {
    pub fn now_ns() -> i64 {
        Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
    }

    pub fn expired(&self) -> bool {
        self.expire <= Metric::now_ns()
    }

    /// Valid and not expired.
    pub fn is_current(&self) -> bool {
        self.valid && !self.expired()
    }
}

/// Raised when a peer's metric expires (`GET /health/alerts`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, ts_rs::TS)]
pub struct Alert {
    #[serde(flatten)]
    pub metric: Metric,
    pub triggered_at: DateTime<Utc>,
}

/// One node written by `POST /add` (IPFS Cluster's `AddedOutput`): every file and directory
/// of the upload, the root last; the root also carries the pin's allocations.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AddedOutput {
    pub name: String,
    pub cid: Cid,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allocations: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Traffic of one protocol (`GET /health/bandwidth`, by protocol id): bytes so far and
/// bytes per second lately.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Bandwidth {
    pub total_in: i64,
    pub total_out: i64,
    pub rate_in: f64,
    pub rate_out: f64,
}

/// One block IPFS's garbage collection removed, or an error it met.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct IpfsRepoGc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Cid>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// What one peer's IPFS garbage collection did (`POST /ipfs/gc`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct RepoGc {
    pub peer: String,
    pub peername: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub keys: Vec<IpfsRepoGc>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// `POST /ipfs/gc`: every peer's [`RepoGc`], by cluster peer id.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct GlobalRepoGc {
    pub peer_map: BTreeMap<String, RepoGc>,
}

/// `GET /health/graph`: who is connected to whom, cluster peers and IPFS nodes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, ts_rs::TS)]
pub struct ConnectGraph {
    pub cluster_id: String,
    #[serde(default)]
    pub id_to_peername: BTreeMap<String, String>,
    /// IPFS peer → the IPFS peers it is connected to.
    #[serde(default)]
    pub ipfs_links: BTreeMap<String, Vec<String>>,
    /// Cluster peer → the cluster peers it reaches.
    #[serde(default)]
    pub cluster_links: BTreeMap<String, Vec<String>>,
    /// Cluster peer → whether it is trusted (every Raft member is).
    #[serde(default)]
    pub cluster_trust_links: BTreeMap<String, bool>,
    /// Cluster peer → its IPFS peer.
    #[serde(default)]
    pub cluster_to_ipfs: BTreeMap<String, String>,
}

/// Error body of every failed REST call.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub message: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Version {
    pub version: String,
}

/// The release this build belongs to (semver, as in the CHANGELOG).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit this build was made from (empty when built without git; see `build.rs`).
pub const COMMIT: &str = env!("IPFS_CLUSTER_COMMIT");

/// The version every component reports (`--version`, `GET /version`, `ID.version`), as IPFS
/// Cluster reports its own: the release, and the commit as semver build metadata
/// (`0.1.0+git0123456789ab`), so that two builds of one release can be told apart. IPFS
/// Cluster clients only display it.
pub fn full_version() -> &'static str {
    static FULL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    FULL.get_or_init(|| match COMMIT.get(..12) {
        Some(short) => format!("{VERSION}+git{short}"),
        None if COMMIT.is_empty() => VERSION.to_string(),
        None => format!("{VERSION}+git{COMMIT}"),
    })
}
/// The cluster RPC's newest request-response protocol, as `ID.rpc_protocol_version` reports
/// it (the swarm also speaks the previous release's: `rpc::versions`).
pub const RPC_PROTOCOL: &str = "/ipfs-cluster-desktop/rpc/0.4.0";

/// Parses Kubo's human sizes ("10GB", "500MiB", "1000") as bytes.
pub fn parse_storage_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0f64.powi(4),
        _ => return None,
    };
    Some((num * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V0: &str = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";

    #[test]
    fn cid_round_trips_as_string() {
        let c: Cid = V0.parse().unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{V0}\""));
        assert!("not-a-cid".parse::<Cid>().is_err());
    }

    #[test]
    fn pin_json_matches_ipfs_cluster_fields() {
        let pin = Pin::new(V0.parse().unwrap(), PinOptions::default());
        let v = serde_json::to_value(&pin).unwrap();
        for key in [
            "cid",
            "type",
            "allocations",
            "max_depth",
            "reference",
            "timestamp",
            "replication_factor_min",
            "replication_factor_max",
            "name",
            "mode",
            "shard_size",
            "user_allocations",
            "expire_at",
            "metadata",
            "pin_update",
            "origins",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["type"], "pin");
        assert_eq!(v["mode"], "recursive");
        assert_eq!(v["expire_at"], GO_ZERO_TIME);
        let back: Pin = serde_json::from_value(v).unwrap();
        assert_eq!(back, pin);
    }

    #[test]
    fn go_nulls_are_accepted() {
        let json = format!(
            r#"{{"cid":"{V0}","type":"pin","allocations":null,"max_depth":-1,"reference":null,
            "timestamp":"2024-01-01T00:00:00Z","replication_factor_min":-1,"replication_factor_max":-1,
            "name":"","mode":"recursive","shard_size":0,"user_allocations":null,
            "expire_at":"0001-01-01T00:00:00Z","metadata":null,"pin_update":null,"origins":null}}"#
        );
        let pin: Pin = serde_json::from_str(&json).unwrap();
        assert!(pin.allocations.is_empty());
        assert_eq!(pin.options.expire_at, None);
    }

    #[test]
    fn status_filters_group_errors_and_queues() {
        let f: StatusFilter = "error,queued".parse().unwrap();
        assert!(f.matches(TrackerStatus::PinError));
        assert!(f.matches(TrackerStatus::ClusterError));
        assert!(f.matches(TrackerStatus::UnpinQueued));
        assert!(!f.matches(TrackerStatus::Pinned));
        assert!("pinned,bogus".parse::<StatusFilter>().is_err());
        assert!(StatusFilter::default().matches(TrackerStatus::Remote));
        for s in TrackerStatus::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
    }
}
