//! Every component's contract, in one place (as IPFS Cluster's `cluster.go` interfaces): the
//! traits and the plain types and errors they need. This file imports only the API types
//! (`types.rs`); implementations import from here, never the other way round, so a second
//! implementation of any contract (or a test double) needs nothing from the first.
//!
//! The composition root (`peer.rs`) wires one implementation of each; the front ends (REST
//! API, desktop) only ever see [`crate::cluster::Cluster`]'s methods. A pin travels: REST
//! handler → `Cluster::pin` (validate, [`Allocator`]) → [`Consensus::log_pin`] → Raft state
//! machine → [`StateChange`] → [`PinTracker::track`] → [`IpfsConnector::pin`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use crate::types::{
    Alert, Bandwidth, Cid, Id, IpfsId, IpfsRepoGc, Metric, PeerRole, Pin, PinInfo, PinKey,
    PinOptions, PinType, RepoGc, StatusFilter, StatusSummary,
};

// ---------------------------------------------------------------------------------------
// IPFS

#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum IpfsError {
    /// The daemon could not be reached at all (down, wrong address).
    #[error("IPFS daemon unreachable at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// The daemon answered with an error.
    #[error("IPFS error: {0}")]
    Api(String),
    #[error("IPFS request timed out after {0:?}")]
    Timeout(Duration),
    #[error("unexpected answer from IPFS: {0}")]
    Decode(String),
}

impl IpfsError {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, IpfsError::Unreachable { .. })
    }
}

/// `repo/stat` plus `Datastore.StorageMax`, for the free-space informer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepoStat {
    pub repo_size: u64,
    pub storage_max: u64,
}

/// Kubo's `stats/bw`: the node's traffic with other IPFS nodes since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IpfsBandwidth {
    pub total_in: u64,
    pub total_out: u64,
    /// Bytes per second, as the node measures them.
    pub rate_in: f64,
    pub rate_out: f64,
}

/// The peer's own IPFS daemon, reached over the Kubo RPC API.
#[async_trait]
pub trait IpfsConnector: Send + Sync + 'static {
    async fn id(&self) -> Result<IpfsId, IpfsError>;
    /// Pins recursively (or directly, per the pin's mode); returns once IPFS has it all.
    async fn pin(&self, pin: &Pin) -> Result<(), IpfsError>;
    /// Unpins; a CID that is not pinned counts as done. Says whether it was pinned.
    async fn unpin(&self, cid: &Cid) -> Result<bool, IpfsError>;
    /// Every recursive pin, as IPFS lists it, handed to `each` as it is read (Kubo's
    /// `stream=true`), so that a list of millions is never held whole; returns how many.
    async fn pin_ls_each(&self, each: &mut (dyn FnMut(Cid) + Send)) -> Result<u64, IpfsError>;
    /// Whether `cid` is pinned (by multihash, so CID v0 and v1 forms agree).
    async fn is_pinned(&self, cid: &Cid) -> Result<bool, IpfsError>;
    /// `/ipfs/…`, `/ipns/…` or `/ipld/…` path → the CID it points at.
    async fn resolve(&self, path: &str) -> Result<Cid, IpfsError>;
    async fn repo_stat(&self) -> Result<RepoStat, IpfsError>;
    async fn swarm_connect(&self, addr: &str) -> Result<(), IpfsError>;
    /// The node's traffic (`stats/bw`).
    async fn bandwidth(&self) -> Result<IpfsBandwidth, IpfsError>;
    /// Where the node's gateway answers (`http://127.0.0.1:8080`), from its config's
    /// `Addresses.Gateway`; none when it has no gateway.
    async fn gateway(&self) -> Result<Option<String>, IpfsError>;
    /// Adds a file's bytes to IPFS without pinning it (the cluster pins it); returns its CID.
    async fn add(&self, name: &str, data: Vec<u8>) -> Result<Cid, IpfsError>;
    /// The IPFS peer ids this node is connected to (`swarm/peers`).
    async fn swarm_peers(&self) -> Result<Vec<String>, IpfsError>;
    /// Runs IPFS's garbage collection; the CIDs it removed, and per-block errors.
    async fn repo_gc(&self) -> Result<Vec<IpfsRepoGc>, IpfsError>;
    /// Imports a CAR file's blocks (Kubo's `dag/import`, roots not pinned: the cluster pins).
    async fn dag_import(&self, name: &str, car: ByteStream) -> Result<(), IpfsError>;
    /// Sends a multipart body in Kubo's `add` form (as the client wrote it, `content_type`
    /// carrying its boundary) to IPFS as it arrives, without pinning; yields every node IPFS
    /// reports added, the root last. Nothing is held whole: a file of any size streams.
    async fn add_multipart(
        &self,
        content_type: &str,
        body: ByteStream,
        opts: &AddOptions,
    ) -> Result<BoxStream<'static, Result<AddedNode, IpfsError>>, IpfsError>;
}

/// A request or response body as it arrives.
pub type ByteStream = BoxStream<'static, Result<bytes::Bytes, std::io::Error>>;

/// Kubo `add` options that IPFS Cluster's `/add` passes on (`None`: IPFS's default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddOptions {
    pub cid_version: Option<u8>,
    pub raw_leaves: Option<bool>,
    pub chunker: Option<String>,
    pub hidden: bool,
    pub wrap_with_directory: bool,
}

/// How the upload is to be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AddFormat {
    /// Files and directories, chunked into a UnixFS DAG.
    #[default]
    Unixfs,
    /// A CAR file holding a DAG with a single root.
    Car,
}

/// Everything `POST /add` was asked for.
#[derive(Debug, Clone)]
pub struct AddRequest {
    pub pin: PinOptions,
    pub ipfs: AddOptions,
    /// Add to IPFS only; the cluster pinset is left alone.
    pub no_pin: bool,
    pub format: AddFormat,
}

/// One node `add` wrote: a file or a directory, by its path in the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedNode {
    pub name: String,
    pub cid: Cid,
    /// The node's size as IPFS reports it (the DAG's, for Kubo).
    pub size: u64,
}

/// What a pin tracker reports to operators (Prometheus, IPFS Cluster's `pins_*` names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerStats {
    pub pin_queued: u64,
    pub pinning: u64,
    pub pin_error: u64,
    pub unpin_queued: u64,
    pub unpinning: u64,
    pub unpin_error: u64,
    /// Of the unpin operations, those of pins still in the pinset but allocated elsewhere
    /// now (moved away from this peer).
    pub moved_unpins: u64,
    /// IPFS pin requests made since start, and how many of them failed.
    pub pin_add: u64,
    pub pin_add_errors: u64,
    /// The state-change feed into the tracker: changes queued now, pins it re-read from the
    /// pinset instead of holding (its limit bit), unpins that waited for room.
    pub feed_queued: u64,
    pub feed_coalesced: u64,
    pub feed_waited: u64,
    /// Pins applied as allocated elsewhere whose "moved away?" check was left to a sync
    /// because its queue was full.
    pub moved_checks_deferred: u64,
}

/// Raft as operators watch it (Prometheus).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RaftStats {
    pub term: u64,
    pub is_leader: bool,
    pub has_leader: bool,
    pub voters: u64,
    pub learners: u64,
    pub last_log_index: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    /// Entries kept in the log (not yet folded into a snapshot and purged).
    pub log_entries: u64,
    pub snapshot_index: u64,
    pub snapshot_bytes: u64,
    /// How long building the last snapshot here took (0 before the first).
    pub snapshot_seconds: f64,
}

// ---------------------------------------------------------------------------------------
// Shared state

/// What an applied log entry changed, for the pin tracker.
#[derive(Clone, Debug, PartialEq)]
pub enum StateChange {
    Pinned(Pin),
    Unpinned(Cid),
    /// The whole state was replaced (snapshot installed): re-read everything.
    Reset,
}

/// The pinset's size, as [`Pinset::counts`] keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PinCounts {
    pub total: u64,
    /// Pins allocated to this peer (all peers' pins, replication -1, included).
    pub allocated_here: u64,
}

/// How a browsing view (the desktop's pins table) orders the pinset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PinOrder {
    /// By CID, as [`PinKey`] orders them (every peer's order).
    #[default]
    Cid,
    /// By CID, last first.
    CidDesc,
    /// Named pins by name (ASCII letters in any case), then the unnamed ones by CID.
    Name,
}

/// What a browsing view looks for. Each is answered through an index of the store (a CID
/// prefix through the pinset's own order, a name prefix through the index of names), so it
/// costs the same in ten pins or ten million.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PinMatch {
    #[default]
    All,
    /// Pins whose CID starts with this text (listed by CID, whatever the order asked).
    CidPrefix(String),
    /// Pins whose name starts with this text, ASCII letters in any case (listed by name).
    NamePrefix(String),
}

/// One page asked of [`Pinset::browse`]: `after` is the `next` of the page before (opaque).
#[derive(Debug, Clone, Default)]
pub struct Browse {
    pub order: PinOrder,
    pub matching: PinMatch,
    pub after: Option<String>,
    pub limit: usize,
}

/// Where a [`Pinset::browse`] page ends: a CID in CID order, or a lower-cased name and CID
/// in name order. Its text (`next`) also names the listing it belongs to, so that a cursor of
/// one listing given to another is refused instead of answering with the wrong rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BrowseCursor {
    #[serde(rename = "c")]
    Cid(String),
    #[serde(rename = "n")]
    Name(String, String),
}

impl Browse {
    /// The kind of listing, as its cursors carry it.
    fn kind(&self) -> &'static str {
        match (&self.matching, self.order) {
            (PinMatch::CidPrefix(_), _) => "p",
            (PinMatch::NamePrefix(_), _) => "m",
            (PinMatch::All, PinOrder::Cid) => "c",
            (PinMatch::All, PinOrder::CidDesc) => "d",
            (PinMatch::All, PinOrder::Name) => "n",
        }
    }

    /// Where this page starts: after the cursor `after` names, which must be this kind of
    /// listing's.
    pub fn cursor(&self) -> Result<Option<BrowseCursor>, ConsensusError> {
        let Some(text) = &self.after else {
            return Ok(None);
        };
        let bad = || ConsensusError::BadInput(format!("{text:?} is not a cursor of this listing"));
        let (kind, at): (String, BrowseCursor) = serde_json::from_str(text).map_err(|_| bad())?;
        if kind != self.kind() {
            return Err(bad());
        }
        Ok(Some(at))
    }

    /// The text of a cursor of this listing, for `next`.
    pub fn next_text(&self, at: &BrowseCursor) -> String {
        serde_json::to_string(&(self.kind(), at)).unwrap_or_default()
    }
}

/// The smallest text above every text starting with `prefix` (its last character raised by
/// one), where a range "starting with" ends; none when nothing is above (a prefix of
/// U+10FFFF only).
pub fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// A page of [`Pinset::browse`]: fewer than asked when the store stopped looking (a page
/// looks at a bounded number of rows), `next` set while there may be more.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Browsed {
    pub pins: Vec<Pin>,
    pub next: Option<String>,
    /// Rows the store looked at for this page (at least the pins it holds).
    pub looked: usize,
}

/// Read access to the applied pinset. It lives on disk: a read asks the store, and a list is
/// a stream read as it is consumed, so nothing here holds the whole pinset in memory.
#[async_trait]
pub trait Pinset: Send + Sync + 'static {
    async fn get(&self, cid: &Cid) -> Result<Option<Pin>, ConsensusError>;
    /// Every pin, in the pinset's order ([`PinKey`]'s, which every peer shares).
    fn stream(&self) -> BoxStream<'static, Result<Pin, ConsensusError>> {
        self.stream_after(None)
    }
    /// The pins whose key comes after `after`, in the pinset's order: where a listing
    /// handed out in pages resumes.
    fn stream_after(
        &self,
        after: Option<PinKey>,
    ) -> BoxStream<'static, Result<Pin, ConsensusError>>;
    /// The pins of `types` (every pin with none), in CID order, each as the REST API's JSON
    /// for it: a store that keeps that text hands it over without parsing it. An item holds
    /// one pin or several, one per line (a store hands over a page at a time).
    fn stream_json(&self, types: &[PinType]) -> BoxStream<'static, Result<String, ConsensusError>> {
        use futures::{StreamExt, TryStreamExt};
        let types = types.to_vec();
        self.stream()
            .try_filter(move |p| {
                futures::future::ready(types.is_empty() || types.contains(&p.pin_type))
            })
            .and_then(|p| {
                futures::future::ready(
                    serde_json::to_string(&p).map_err(|e| ConsensusError::Storage(e.to_string())),
                )
            })
            .boxed()
    }
    /// How many pins there are, and how many of them are allocated to this peer: kept as
    /// the pinset changes, so asking costs the same at ten pins or ten million.
    async fn counts(&self) -> Result<PinCounts, ConsensusError>;
    /// How many pins there are.
    async fn count(&self) -> Result<u64, ConsensusError> {
        Ok(self.counts().await?.total)
    }
    /// Up to `limit` pins whose `expire_at` is `now` or earlier, in CID order after `after`
    /// (read through an index of the expiring pins, never the whole pinset).
    async fn expired(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        after: Option<PinKey>,
        limit: usize,
    ) -> Result<Vec<Cid>, ConsensusError>;
    /// A page of the pinset for people browsing it, in `q.order`, of the pins `q.matching`,
    /// after `q.after`: read through the store's indexes, never by scanning the pinset.
    async fn browse(&self, q: &Browse) -> Result<Browsed, ConsensusError>;
}

// ---------------------------------------------------------------------------------------
// Consensus

/// Why a consensus operation failed, by what the caller can do about it.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize, PartialEq)]
pub enum ConsensusError {
    /// The request names something invalid (a malformed peer id); nothing was changed.
    #[error("{0}")]
    BadInput(String),
    /// The peer named is not a cluster member.
    #[error("peer {0} is not a cluster member")]
    NotMember(String),
    /// The cluster refuses the change as it stands (removing its last voter); retrying the
    /// same request will not help.
    #[error("{0}")]
    Refused(String),
    #[error("no Raft leader after waiting {0:?}: the cluster has no quorum or is still electing")]
    NoLeader(Duration),
    /// The write may be retried: leadership changed, the leader was unreachable, the commit
    /// timed out.
    #[error("commit failed after {attempts} attempt(s): {message}")]
    Unavailable { attempts: u32, message: String },
    #[error("Raft storage: {0}")]
    Storage(String),
}

impl ConsensusError {
    /// Whether the same request may succeed when tried again.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConsensusError::NoLeader(_) | ConsensusError::Unavailable { .. }
        )
    }
}

/// A cluster member as the consensus sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub peer_id: String,
    /// Cluster swarm multiaddrs it was last known at.
    pub addrs: Vec<String>,
    pub role: PeerRole,
}

/// Shared, agreed state: the pinset and the peerset.
#[async_trait]
pub trait Consensus: Send + Sync + 'static {
    /// Commits a pin (add or update) and returns once it is applied; the pin is then durable.
    async fn log_pin(&self, pin: Pin) -> Result<(), ConsensusError>;
    async fn log_unpin(&self, cid: Cid) -> Result<(), ConsensusError>;
    /// Commits many pins, in order, in as few writes as their size allows (each write all
    /// or none); returns once they are applied, with each pin's result.
    async fn log_pins(&self, pins: Vec<Pin>) -> Vec<Result<(), ConsensusError>> {
        let mut out = Vec::with_capacity(pins.len());
        for pin in pins {
            out.push(self.log_pin(pin).await);
        }
        out
    }
    /// Returns once this peer has applied every write the cluster committed before the call
    /// (a read index confirmed by the leader's quorum): a read of the state then sees every
    /// acknowledged write, wherever it was made.
    async fn catch_up(&self) -> Result<(), ConsensusError>;
    /// Read access to the applied pinset.
    fn state(&self) -> Arc<dyn Pinset>;
    /// Whether there is a leader and this peer's state has caught up (writes are accepted).
    fn is_ready(&self) -> bool;
    /// Current leader's peer id, if any.
    fn leader(&self) -> Option<String>;
    /// Every member (voters and followers) with its role.
    fn members(&self) -> Vec<Member>;
    /// The member list, renewed whenever the membership changes.
    fn watch_members(&self) -> watch::Receiver<Vec<Member>>;
    /// Peer ids of every member.
    fn peers(&self) -> Vec<String> {
        self.members().into_iter().map(|m| m.peer_id).collect()
    }

    /// Before a planned stop: hands over what this peer does for the cluster that others
    /// would otherwise wait a timeout to take over (Raft: its leadership, to an up-to-date
    /// voter). Returns once done or given up (bounded); never fails the stop.
    async fn step_down(&self) {}

    /// Takes `peer` out of the cluster (Raft: forwarded to the leader; the CRDT has no
    /// membership: this peer bans it).
    async fn rm_peer(&self, peer: &str) -> Result<(), ConsensusError>;
    /// Whether `peer` is trusted (IPFS Cluster's `IsTrustedPeer`, for
    /// `pin_only_on_trusted_peers`): every member in Raft, as IPFS Cluster's Raft answers.
    fn is_trusted(&self, _peer: &str) -> bool {
        true
    }
    /// Promotes a follower to voter, or demotes a voter to follower.
    async fn set_role(&self, peer: &str, role: PeerRole) -> Result<(), ConsensusError>;
    /// Raft's numbers now, for operators' metrics.
    async fn stats(&self) -> RaftStats;
}

// ---------------------------------------------------------------------------------------
// Pin tracker

/// Drives this peer's IPFS so that what the state allocates here is pinned there.
#[async_trait]
pub trait PinTracker: Send + Sync + 'static {
    /// The state says `pin` exists (new or changed): pin it here if allocated to us.
    fn track(&self, pin: Pin);
    /// The state dropped `cid`: unpin it here.
    fn untrack(&self, cid: Cid);
    async fn status(&self, cid: &Cid) -> PinInfo;
    /// This peer's pins by status, from counts kept as they change: no walk of the pinset,
    /// no IPFS call.
    async fn summary(&self) -> Result<StatusSummary, ConsensusError>;
    /// Changes to the summary as events: a counter bumped at every change to this peer's
    /// pins, operations or IPFS reachability. Being a watch, it coalesces: a subscriber wakes
    /// once for all the changes since it last looked and reads [`PinTracker::summary`] at
    /// its own pace, so a million changes cost a slow subscriber nothing.
    fn changes(&self) -> watch::Receiver<u64>;
    /// Every pin's status here matching `filter`, in CID order, as it is produced.
    fn status_all(&self, filter: StatusFilter) -> BoxStream<'static, PinInfo>;
    /// One page of this peer's status of every pin, in CID order: at most `limit` pins after
    /// `after`, with operations on CIDs no longer in the pinset in their place. Pages of one
    /// `listing` share one answer from IPFS, kept for a short while.
    async fn status_page(&self, listing: u64, after: Option<PinKey>, limit: usize) -> Vec<PinInfo>;
    /// Retries a failed or unexpectedly unpinned CID.
    async fn recover(&self, cid: &Cid) -> PinInfo;
    /// [`PinTracker::recover`], answering only when it queued the CID again (nothing for one
    /// that needed nothing): what a recover of everything reports.
    async fn recover_queued(&self, cid: &Cid) -> Option<PinInfo>;
    /// Walks this peer's status in CID order and queues again each pin in error or
    /// unexpectedly unpinned; the status of each one queued, as it goes (memory: a page).
    fn recover_all(&self) -> BoxStream<'static, PinInfo>;
    /// Desktop "Pause pinning": queued operations wait until resumed, running ones finish.
    fn set_paused(&self, paused: bool);
    fn is_paused(&self) -> bool;
    /// Operations queued or running (the `pinqueue` metric).
    fn queue_len(&self) -> usize;
    /// Operations by status and IPFS pin requests so far, for operators' metrics.
    fn stats(&self) -> TrackerStats;
    /// How many pins this peer's IPFS holds (the `numpin` metric), as the tracker last
    /// listed them plus its own pins and unpins since, so that the metric costs no call to
    /// IPFS; `None` before the first listing and while IPFS is unreachable.
    fn ipfs_pin_count(&self) -> Option<u64>;
}

// ---------------------------------------------------------------------------------------
// Informers, monitor, allocator

/// Name of the liveness metric every peer sends each `monitor_ping_interval`.
pub const PING: &str = "ping";
pub const FREESPACE: &str = "freespace";
pub const NUMPIN: &str = "numpin";
pub const PINQUEUE: &str = "pinqueue";
/// Tag metrics are named `tag:<key>`, as in `allocate_by`.
pub const TAG_PREFIX: &str = "tag:";

/// Something that measures this peer. Each informer is measured and sent on its own timer,
/// twice per TTL, as in IPFS Cluster.
#[async_trait]
pub trait Informer: Send + Sync + 'static {
    /// How long its metrics stay valid (`informer.<name>.metric_ttl`).
    fn ttl(&self) -> Duration;
    /// The metrics of one round (a tag informer gives one per tag).
    async fn metrics(&self, peer: &str) -> Vec<Metric>;
    /// What to send when a measurement did not finish in time: invalid metrics, so that
    /// nobody allocates by a value that is not known (none by default).
    fn unmeasured(&self, _peer: &str) -> Vec<Metric> {
        Vec::new()
    }
}

/// Keeps every peer's latest metrics and raises alerts when they expire.
pub trait Monitor: Send + Sync + 'static {
    /// Records a metric (ours or received from a peer).
    fn log_metric(&self, m: Metric);
    /// Drops every metric of `peer` (a banned peer), raising no alert for them.
    fn forget(&self, peer: &str);
    /// The current (valid, unexpired) `name` metric of `peer`.
    fn current(&self, name: &str, peer: &str) -> Option<Metric>;
    /// The latest `name` metric of every peer (expired ones included).
    fn latest(&self, name: &str) -> Vec<Metric>;
    /// Names of every metric seen.
    fn names(&self) -> Vec<String>;
    /// Recent alerts, oldest first.
    fn alerts(&self) -> Vec<Alert>;
    /// New alerts as they fire.
    fn subscribe(&self) -> broadcast::Receiver<Alert>;
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("not enough peers to allocate: need at least {need}, found {found} valid candidate(s)")]
pub struct NotEnoughPeers {
    pub need: i32,
    pub found: usize,
}

/// Chooses which peers hold a pin.
pub trait Allocator: Send + Sync + 'static {
    /// `candidates` best first, by their metrics (`metric(name, peer)`).
    fn rank(
        &self,
        candidates: &[String],
        metric: &dyn Fn(&str, &str) -> Option<Metric>,
    ) -> Vec<String>;
    /// Where `pin` goes: up to its replication factor max, at least its min, from `candidates`
    /// (ranked), keeping `current` and preferring its `user_allocations`. A max of -1 means
    /// every peer, recorded as an empty list.
    fn allocate(
        &self,
        pin: &Pin,
        current: &[String],
        candidates: &[String],
    ) -> Result<Vec<String>, NotEnoughPeers>;
}

// ---------------------------------------------------------------------------------------
// Cluster RPC: what one peer asks of another

/// A pin-status question one peer asks another (`GET /pins`, recover).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub enum PeerCall {
    /// Status of these CIDs (all when empty).
    Status(Vec<Cid>),
    /// A page of the status of every pin (see [`PinTracker::status_page`]).
    StatusPage {
        listing: u64,
        after: Option<PinKey>,
        limit: usize,
    },
    /// Recover this CID (all errored ones when None: answered with the first
    /// [`crate::global_status::PAGE`] of them; this version asks with `RecoverCids`).
    Recover(Option<Cid>),
    /// Recover these CIDs (at most a page, picked from a `StatusPage`); answers the status
    /// of each one queued again.
    RecoverCids(Vec<Cid>),
}

/// A question about the callee itself: its view of the cluster, its IPFS node.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub enum NodeCall {
    /// Every member's ID as the callee reaches them (`GET /peers` on the callee).
    Peers,
    /// The IPFS peers the callee's IPFS node is connected to.
    IpfsSwarmPeers,
    /// The callee's IPFS repository size and limit.
    IpfsRepoStat,
    /// Garbage collection on the callee's IPFS node.
    IpfsRepoGc,
}

/// The answer to a [`NodeCall`].
#[derive(Serialize, Deserialize, Clone, Debug)]
pub enum NodeAnswer {
    Peers(Vec<Id>),
    IpfsSwarmPeers(Result<Vec<String>, IpfsError>),
    IpfsRepoStat(Result<(u64, u64), IpfsError>),
    IpfsRepoGc(RepoGc),
}

/// Why a call to another peer failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    #[error("cannot reach peer {peer}: {message}")]
    Unreachable { peer: String, message: String },
    #[error("peer {peer} did not answer within {timeout:?}")]
    Timeout { peer: String, timeout: Duration },
    /// The peer answered with an error of its own.
    #[error("peer {peer}: {message}")]
    Remote { peer: String, message: String },
    /// The peer runs a release whose cluster RPC does not have this call (a rolling
    /// upgrade in progress): not sent, and not a fault of the peer.
    #[error("unsupported by peer {peer} (version {version})")]
    Unsupported { peer: String, version: String },
    /// The peer takes no calls from this one (it is not a member there: a CRDT peer that
    /// does not trust it, or a Raft cluster that removed it). Listings leave such a peer
    /// out, as IPFS Cluster leaves out its authorization errors.
    #[error("peer {peer} takes no calls from this peer: {message}")]
    Unauthorized { peer: String, message: String },
    #[error("the cluster swarm stopped")]
    Stopped,
    #[error("invalid peer id {0:?} in the membership")]
    InvalidPeer(String),
    #[error("cluster swarm: {0}")]
    Setup(String),
}

/// Calls on other members' cluster peers.
#[async_trait]
pub trait PeerRpc: Send + Sync + 'static {
    async fn id(&self, to: &Member, timeout: Duration) -> Result<Id, RpcError>;
    async fn pins(
        &self,
        to: &Member,
        call: PeerCall,
        timeout: Duration,
    ) -> Result<Vec<PinInfo>, RpcError>;
    /// Pushes this peer's latest metrics to `to`'s monitor.
    async fn metrics(
        &self,
        to: &Member,
        metrics: Vec<Metric>,
        timeout: Duration,
    ) -> Result<(), RpcError>;
    async fn node(
        &self,
        to: &Member,
        call: NodeCall,
        timeout: Duration,
    ) -> Result<NodeAnswer, RpcError>;
    /// Publishes this peer's `metrics` on the metrics topic (a CRDT peer's swarm; nothing
    /// elsewhere). Best effort: metrics are sent again before they expire.
    async fn publish_metrics(&self, _metrics: Vec<Metric>) {}
    /// This peer's cluster RPC traffic, by protocol.
    fn bandwidth(&self) -> std::collections::BTreeMap<String, Bandwidth>;
    /// Messages on the CRDT's topic rejected since start (their signer is not trusted).
    fn pubsub_rejected(&self) -> u64 {
        0
    }
    /// Incoming calls answered "busy" since start (the limit on calls in flight bit).
    fn refused_busy(&self) -> u64 {
        0
    }
    /// The last measured round trip to each peer this one is connected to, by peer id.
    fn latencies(&self) -> std::collections::BTreeMap<String, Duration> {
        Default::default()
    }
}

/// What this peer answers when another one calls it (the other side of [`PeerRpc`]).
#[async_trait]
pub trait PeerService: Send + Sync + 'static {
    async fn id(&self) -> Id;
    async fn pins(&self, call: PeerCall) -> Vec<PinInfo>;
    /// Metrics pushed by `from` (a peer speaks only for itself).
    fn metrics(&self, from: &str, metrics: Vec<Metric>);
    async fn node(&self, call: NodeCall) -> NodeAnswer;
}
