//! Cluster operations as every front end sees them (REST API, IPFS proxy, desktop commands).
//!
//! Each method is a short sequence of calls on the component contracts; the components own
//! their state and tasks. This is where a pin is validated and allocated before it goes to
//! consensus, where answers from several peers are merged, and where the two loops that act
//! for the whole cluster live: repinning on alerts, and connecting the IPFS daemons.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::components::{
    Allocator, Consensus, IpfsConnector, IpfsError, Monitor, PeerCall, PeerRpc, PeerService,
    PinTracker, PING,
};
use crate::config::check_replication;

mod add;
pub(crate) mod car;
mod closest;
mod node;
use crate::error::{Error, Result};
use crate::global_status;
use crate::tasks::Tasks;
use crate::types::{
    Alert, Cid, GlobalPinInfo, Id, IpfsId, Metric, PeerRole, Pin, PinInfo, PinInfoShort, PinKey,
    PinOptions, PinType, StatusFilter, StatusSummary, TrackerStatus, RPC_PROTOCOL,
};

/// This peer's identity as it reports it.
#[derive(Clone, Debug)]
pub struct PeerDescriptor {
    pub peer_id: String,
    pub peername: String,
    /// Cluster swarm addresses with `/p2p/<id>`.
    pub addresses: Vec<String>,
}

/// Pins checked and allocated by [`Cluster::prepare_pins`], waiting for their commit.
pub struct PreparedPins {
    items: Vec<Prepared>,
}

enum Prepared {
    /// Answered already (refused before any commit).
    Done(Result<Pin>),
    /// To commit with the others.
    Ready(Pin),
    /// A `pin_update`, run in its turn.
    Update(Cid, PinOptions),
}

/// What [`Cluster::stats`] reports.
#[derive(Debug, Clone, Default)]
pub struct ClusterStats {
    /// Pins in the shared pinset.
    pub pins: u64,
    /// Cluster members (voters and followers).
    pub peers: u64,
    pub tracker: crate::components::TrackerStats,
    /// Pins in this peer's IPFS, as the tracker counts them (None while unknown).
    pub ipfs_pins: Option<u64>,
    /// This peer's last valid `freespace` metric.
    pub freespace: Option<u64>,
    pub raft: crate::components::RaftStats,
    /// Incoming cluster RPC calls answered "busy" since start.
    pub rpc_refused_busy: u64,
    /// Messages on the CRDT's topic rejected since start (their signer is not trusted).
    pub crdt_rejected: u64,
}

/// The components a [`Cluster`] drives, as the composition root hands them over.
pub(crate) struct Components {
    pub consensus: Arc<dyn Consensus>,
    pub tracker: Arc<dyn PinTracker>,
    pub ipfs: Arc<dyn IpfsConnector>,
    pub rpc: Arc<dyn PeerRpc>,
    pub monitor: Arc<dyn Monitor>,
    pub allocator: Arc<dyn Allocator>,
}

#[derive(Clone)]
pub struct Cluster {
    consensus: Arc<dyn Consensus>,
    tracker: Arc<dyn PinTracker>,
    ipfs: Arc<dyn IpfsConnector>,
    rpc: Arc<dyn PeerRpc>,
    monitor: Arc<dyn Monitor>,
    allocator: Arc<dyn Allocator>,
    me: Arc<PeerDescriptor>,
    /// Cluster-wide defaults for pins that set no replication factors.
    replication: (i32, i32),
    /// Other peers may run garbage collection on this peer's IPFS node (not on a follower
    /// of a CRDT cluster: IPFS Cluster's follow closes `RepoGCLocal`, since whoever has
    /// the template has the secret).
    remote_repo_gc: bool,
    /// Which peers pins may be allocated to (`pin_only_on_trusted_peers` and
    /// `pin_only_on_untrusted_peers`).
    pin_only: PinOnly,
    /// The CRDT: no leader to repin on alerts, a removed peer banned and its pins moved here.
    leaderless: bool,
    /// Repinning is on (`cluster.disable_repinning` false).
    repinning: bool,
}

/// The most peers taken for dead after alerts were missed (the channel lagged).
const LAGGED_DEAD: usize = 256;

/// The pins this peer looks after ([`Cluster::upkeep`]).
enum Upkeep {
    All,
    /// Those it is the nearest trusted peer to.
    Closest(closest::Closeness),
}

impl Upkeep {
    fn covers(&self, cid: &Cid) -> bool {
        match self {
            Upkeep::All => true,
            Upkeep::Closest(c) => c.is_closest(cid),
        }
    }
}

/// Which peers pins may be allocated to, by trust ([`Consensus::is_trusted`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PinOnly {
    Anywhere,
    /// `cluster.pin_only_on_trusted_peers`.
    Trusted,
    /// `cluster.pin_only_on_untrusted_peers`.
    Untrusted,
}

/// How long an `ID` request waits for IPFS before reporting it as unreachable.
const IPFS_ID_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `GET /peers` waits for each peer's ID.
const PEER_ID_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a global status or recover waits for each peer.
const PEER_STATUS_TIMEOUT: Duration = Duration::from_secs(30);

impl Cluster {
    pub(crate) fn new(c: Components, me: PeerDescriptor, replication: (i32, i32)) -> Cluster {
        Cluster {
            consensus: c.consensus,
            tracker: c.tracker,
            ipfs: c.ipfs,
            rpc: c.rpc,
            monitor: c.monitor,
            allocator: c.allocator,
            me: Arc::new(me),
            replication,
            remote_repo_gc: true,
            pin_only: PinOnly::Anywhere,
            leaderless: false,
            repinning: false,
        }
    }

    /// The same, allocating pins only to the peers `only` names.
    pub(crate) fn pinning_only_on(self, only: PinOnly) -> Cluster {
        Cluster {
            pin_only: only,
            ..self
        }
    }

    /// The same, for a consensus without a leader (the CRDT): each pin's nearest trusted
    /// peer repins it on alerts and unpins it once expired, and `peers rm` moves the removed
    /// peer's pins at once (with `repinning` on, as IPFS Cluster's `vacatePeer`).
    pub(crate) fn leaderless(self, repinning: bool) -> Cluster {
        Cluster {
            leaderless: true,
            repinning,
            ..self
        }
    }

    /// The same, refusing other peers' garbage collection of this peer's IPFS node.
    pub(crate) fn closed_to_remote_repo_gc(self) -> Cluster {
        Cluster {
            remote_repo_gc: false,
            ..self
        }
    }

    pub fn me(&self) -> &PeerDescriptor {
        &self.me
    }

    pub fn is_ready(&self) -> bool {
        self.consensus.is_ready()
    }

    pub async fn id(&self) -> Id {
        let ipfs = match tokio::time::timeout(IPFS_ID_TIMEOUT, self.ipfs.id()).await {
            Ok(Ok(id)) => id,
            Ok(Err(e)) => IpfsId {
                error: e.to_string(),
                ..Default::default()
            },
            Err(_) => IpfsId {
                error: format!("IPFS did not answer within {IPFS_ID_TIMEOUT:?}"),
                ..Default::default()
            },
        };
        let members = self.consensus.members();
        let role = members
            .iter()
            .find(|m| m.peer_id == self.me.peer_id)
            .map(|m| m.role);
        let cluster_peers_addresses = members
            .iter()
            .filter(|m| m.peer_id != self.me.peer_id)
            .flat_map(|m| {
                m.addrs
                    .iter()
                    .map(move |a| format!("{a}/p2p/{}", m.peer_id))
            })
            .collect();
        Id {
            id: self.me.peer_id.clone(),
            addresses: self.me.addresses.clone(),
            cluster_peers: members.into_iter().map(|m| m.peer_id).collect(),
            cluster_peers_addresses,
            version: crate::types::full_version().to_string(),
            commit: crate::types::COMMIT.to_string(),
            rpc_protocol_version: RPC_PROTOCOL.to_string(),
            error: String::new(),
            ipfs,
            peername: self.me.peername.clone(),
            role,
            leader: self.consensus.leader(),
        }
    }

    /// Every member's ID, asked in parallel. Members this peer cannot reach carry an
    /// `error`; those that take no calls from it (a CRDT cluster's trusted peers, asked by
    /// a follower they do not trust) are listed by their id alone, as the peerset has them.
    pub async fn peers(&self) -> Vec<Id> {
        let members = self.consensus.members();
        let asks = members.into_iter().map(|m| async move {
            if m.peer_id == self.me.peer_id {
                return self.id().await;
            }
            match self.rpc.id(&m, PEER_ID_TIMEOUT).await {
                Ok(mut id) => {
                    id.role = Some(m.role);
                    id
                }
                Err(crate::components::RpcError::Unauthorized { .. }) => Id {
                    id: m.peer_id.clone(),
                    role: Some(m.role),
                    ..Default::default()
                },
                Err(e) => Id {
                    id: m.peer_id.clone(),
                    error: e.to_string(),
                    role: Some(m.role),
                    ..Default::default()
                },
            }
        });
        futures::future::join_all(asks).await
    }

    /// Removes `peer` from the cluster. In a CRDT cluster, where this bans it here, the
    /// pins allocated to it are then given to other peers (IPFS Cluster's `PeerRemove`
    /// re-allocates them itself) when repinning is on, unless this peer is a follower.
    pub async fn peer_rm(&self, peer: &str) -> Result<()> {
        check_peer_id(peer)?;
        self.consensus.rm_peer(peer).await?;
        if self.leaderless && self.repinning && self.writes() {
            self.vacate(&[peer.to_string()], &Upkeep::All).await;
        }
        Ok(())
    }

    /// Whether this peer writes the pinset (a CRDT follower does not).
    fn writes(&self) -> bool {
        self.consensus
            .members()
            .iter()
            .any(|m| m.peer_id == self.me.peer_id && m.role == PeerRole::Voter)
    }

    /// Promotes a follower to voter or demotes a voter to follower.
    pub async fn peer_role(&self, peer: &str, role: PeerRole) -> Result<()> {
        check_peer_id(peer)?;
        self.consensus.set_role(peer, role).await?;
        Ok(())
    }

    /// Whether this peer can take writes now (a leader, caught up); a clear error if not.
    pub fn check_ready(&self) -> Result<()> {
        if self.consensus.is_ready() {
            Ok(())
        } else {
            Err(Error::Unavailable(
                "this peer is not ready yet: consensus has no leader or is still catching up; retry shortly".into(),
            ))
        }
    }

    /// Validates and allocates `opts`, then commits the pin. Returns it as committed.
    #[tracing::instrument(level = "info", skip_all, fields(cid = %cid))]
    pub async fn pin(&self, cid: Cid, opts: PinOptions) -> Result<Pin> {
        self.check_ready()?;
        if let Some(from) = opts.pin_update.filter(|from| *from != cid) {
            return self.pin_update(from, cid, opts).await;
        }
        let pin = self.prepare_pin(cid, opts).await?;
        self.consensus.log_pin(pin.clone()).await?;
        Ok(pin)
    }

    /// The pin that pinning `cid` with `opts` commits: options completed, allocated, and
    /// keeping the creation time of the pin it replaces.
    async fn prepare_pin(&self, cid: Cid, mut opts: PinOptions) -> Result<Pin> {
        self.complete_options(&mut opts)?;
        let existing = self.consensus.state().get(&cid).await?;
        let mut pin = Pin::new(cid, opts);
        let current = existing
            .as_ref()
            .map(|p| p.allocations.clone())
            .unwrap_or_default();
        pin.allocations = self.allocate(&pin, &current, &[])?;
        if let Some(old) = existing {
            // Re-pinning keeps the original creation time.
            pin.timestamp = old.timestamp;
        }
        Ok(pin)
    }

    /// The first half of pinning many at once (the batch form): each request checked and
    /// allocated as [`Cluster::pin`] does, nothing committed yet. Requests of one batch may
    /// be prepared while the ones before them are committed; [`Cluster::commit_pins`] then
    /// commits them in order.
    pub async fn prepare_pins(&self, requests: Vec<(Cid, PinOptions)>) -> PreparedPins {
        let mut items = Vec::with_capacity(requests.len());
        for (cid, opts) in requests {
            let item = if opts.pin_update.is_some_and(|from| from != cid) {
                // It reads the pin it updates: prepared when what comes before is committed.
                Prepared::Update(cid, opts)
            } else {
                match self.check_ready() {
                    Err(e) => Prepared::Done(Err(e)),
                    Ok(()) => match self.prepare_pin(cid, opts).await {
                        Ok(pin) => Prepared::Ready(pin),
                        Err(e) => Prepared::Done(Err(e)),
                    },
                }
            };
            items.push(item);
        }
        PreparedPins { items }
    }

    /// Commits what [`Cluster::prepare_pins`] prepared, in order: the pins that passed
    /// together (as few writes to the leader and log entries as their size allows), an
    /// update after everything before it. The answers are in the order of the requests.
    pub async fn commit_pins(&self, prepared: PreparedPins) -> Vec<Result<Pin>> {
        let mut answers: Vec<Option<Result<Pin>>> = Vec::with_capacity(prepared.items.len());
        let mut group: Vec<(usize, Pin)> = Vec::new();
        for (i, item) in prepared.items.into_iter().enumerate() {
            answers.push(None);
            match item {
                Prepared::Done(answer) => answers[i] = Some(answer),
                Prepared::Ready(pin) => group.push((i, pin)),
                Prepared::Update(cid, opts) => {
                    self.commit_group(&mut group, &mut answers).await;
                    answers[i] = Some(self.pin(cid, opts).await);
                }
            }
        }
        self.commit_group(&mut group, &mut answers).await;
        answers
            .into_iter()
            .map(|a| a.expect("every request answered"))
            .collect()
    }

    async fn commit_group(
        &self,
        group: &mut Vec<(usize, Pin)>,
        answers: &mut [Option<Result<Pin>>],
    ) {
        if group.is_empty() {
            return;
        }
        let pins = group.iter().map(|(_, p)| p.clone()).collect();
        let committed = self.consensus.log_pins(pins).await;
        for ((i, pin), result) in group.drain(..).zip(committed) {
            answers[i] = Some(result.map(|()| pin).map_err(Error::from));
        }
    }

    /// Pins `to` as an update of the pin of `from` (IPFS Cluster's `PinUpdate`): its options
    /// and allocations are copied, with `opts`' name and expiry when given; `from` stays
    /// pinned. Peers holding `from` use IPFS's `pin/update`, fetching only what differs.
    async fn pin_update(&self, from: Cid, to: Cid, opts: PinOptions) -> Result<Pin> {
        let existing =
            self.consensus.state().get(&from).await?.ok_or_else(|| {
                Error::NotFound(format!("pin-update: {from} is not in the pinset"))
            })?;
        if existing.pin_type != PinType::Pin {
            return Err(Error::BadInput(format!(
                "pin-update: {from} is a {} and cannot be updated",
                existing.pin_type.as_str()
            )));
        }
        let mut pin = existing;
        pin.cid = to;
        pin.options.pin_update = Some(from);
        pin.timestamp = chrono::Utc::now();
        if !opts.name.is_empty() {
            pin.options.name = opts.name;
        }
        if let Some(at) = opts.expire_at.filter(|at| *at > chrono::Utc::now()) {
            pin.options.expire_at = Some(at);
        }
        self.consensus.log_pin(pin.clone()).await?;
        Ok(pin)
    }

    /// Fills in the cluster's replication defaults; a bad input error when the replication
    /// factors or user allocations make no sense. Checked before any work starts.
    fn complete_options(&self, opts: &mut PinOptions) -> Result<()> {
        if opts.replication_factor_min == 0 && opts.replication_factor_max == 0 {
            (opts.replication_factor_min, opts.replication_factor_max) = self.replication;
        } else if opts.replication_factor_max == 0 {
            opts.replication_factor_max = opts.replication_factor_min;
        } else if opts.replication_factor_min == 0 {
            opts.replication_factor_min = opts.replication_factor_max.clamp(-1, 1);
        }
        check_replication(opts.replication_factor_min, opts.replication_factor_max)?;
        if let Some(at) = opts.expire_at.filter(|at| *at <= chrono::Utc::now()) {
            return Err(Error::BadInput(format!(
                "expire-at {} is in the past: the pin would be removed at once",
                at.to_rfc3339()
            )));
        }
        for p in &opts.user_allocations {
            p.parse::<libp2p_identity::PeerId>().map_err(|e| {
                Error::BadInput(format!("user allocation {p:?} is not a peer id: {e}"))
            })?;
        }
        Ok(())
    }

    pub async fn pin_path(&self, path: &str, opts: PinOptions) -> Result<Pin> {
        let cid = self.resolve(path).await?;
        self.pin(cid, opts).await
    }

    #[tracing::instrument(level = "info", skip_all, fields(cid = %cid))]
    pub async fn unpin(&self, cid: Cid) -> Result<Pin> {
        self.check_ready()?;
        let pin = match self.allocation(&cid).await {
            // Acknowledged elsewhere but not applied here yet: not a 404 once caught up.
            Err(Error::NotFound(_)) => {
                self.consensus.catch_up().await?;
                self.allocation(&cid).await?
            }
            found => found?,
        };
        self.consensus.log_unpin(cid).await?;
        Ok(pin)
    }

    pub async fn unpin_path(&self, path: &str) -> Result<Pin> {
        let cid = self.resolve(path).await?;
        self.unpin(cid).await
    }

    /// Adds a file's bytes to this peer's IPFS (not pinned there yet); returns its CID.
    pub async fn add(&self, name: &str, data: Vec<u8>) -> Result<Cid> {
        Ok(self.ipfs.add(name, data).await?)
    }

    /// `/ipfs/…`, `/ipns/…` or `/ipld/…` → the CID it points at, asked of this peer's IPFS.
    pub async fn resolve(&self, path: &str) -> Result<Cid> {
        check_ipfs_path(path)?;
        self.ipfs.resolve(path).await.map_err(|e| match e {
            IpfsError::Api(m) => Error::BadInput(format!("cannot resolve {path}: {m}")),
            other => Error::Ipfs(other),
        })
    }

    /// This peer's numbers for operators (Prometheus `/metrics`), read now.
    pub async fn stats(&self) -> Result<ClusterStats> {
        let freespace = self
            .monitor
            .current(crate::components::FREESPACE, &self.me.peer_id)
            .filter(|m| m.valid)
            .and_then(|m| m.value.parse().ok());
        Ok(ClusterStats {
            pins: self.consensus.state().count().await?,
            peers: self.consensus.members().len() as u64,
            tracker: self.tracker.stats(),
            ipfs_pins: self.tracker.ipfs_pin_count(),
            freespace,
            raft: self.consensus.stats().await,
            rpc_refused_busy: self.rpc.refused_busy(),
            crdt_rejected: self.rpc.pubsub_rejected(),
        })
    }

    /// The pinset (of `types`, all when empty), in CID order, read from disk as the stream
    /// is consumed.
    pub fn allocations(&self, types: &[PinType]) -> BoxStream<'static, Result<Pin>> {
        let types = types.to_vec();
        self.consensus
            .state()
            .stream()
            .map_err(Error::from)
            .try_filter(move |p| {
                futures::future::ready(types.is_empty() || types.contains(&p.pin_type))
            })
            .boxed()
    }

    /// [`Cluster::allocations`] as the REST API's JSON text of each pin, passed through from
    /// the store where it keeps that text (see [`Pinset::stream_json`]).
    pub fn allocations_json(&self, types: &[PinType]) -> BoxStream<'static, Result<String>> {
        self.consensus
            .state()
            .stream_json(types)
            .map_err(Error::from)
            .boxed()
    }

    pub async fn allocation(&self, cid: &Cid) -> Result<Pin> {
        self.consensus
            .state()
            .get(cid)
            .await?
            .ok_or_else(|| Error::NotFound(format!("{cid} is not in the pinset")))
    }

    pub async fn status_local(&self, cid: &Cid) -> PinInfo {
        self.tracker.status(cid).await
    }

    /// This peer's pins by status, from kept counts (see [`StatusSummary`]).
    pub async fn status_summary(&self) -> Result<StatusSummary> {
        Ok(self.tracker.summary().await?)
    }

    /// Changes to [`Self::status_summary`] as coalesced events (see [`PinTracker::changes`]).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.tracker.changes()
    }

    pub async fn status(&self, cid: &Cid) -> GlobalPinInfo {
        self.gather_one(cid, PeerCall::Status(vec![*cid])).await
    }

    /// This peer's status of every pin (or of `cids`) matching `filter`, as a stream.
    pub fn status_all_local(
        &self,
        filter: &StatusFilter,
        cids: &[Cid],
    ) -> BoxStream<'static, PinInfo> {
        if cids.is_empty() {
            return self.tracker.status_all(filter.clone());
        }
        let (this, filter, cids) = (self.clone(), filter.clone(), cids.to_vec());
        Box::pin(async_stream::stream! {
            for c in cids {
                let info = this.tracker.status(&c).await;
                if filter.matches(info.info.status) {
                    yield info;
                }
            }
        })
    }

    /// Every peer's view of every pin (or of `cids`); a pin is kept when any peer's status
    /// matches `filter`. Every pin is streamed, merged from every member's stream as it
    /// comes (see [`crate::global_status`]).
    pub fn status_all(
        &self,
        filter: &StatusFilter,
        cids: &[Cid],
    ) -> BoxStream<'static, GlobalPinInfo> {
        let filter = filter.clone();
        let keep = move |g: &GlobalPinInfo| g.peer_map.values().any(|i| filter.matches(i.status));
        if !cids.is_empty() {
            let (this, cids) = (self.clone(), cids.to_vec());
            return Box::pin(
                futures::stream::once(async move { this.gather(PeerCall::Status(cids)).await })
                    .flat_map(futures::stream::iter)
                    .filter(move |g| futures::future::ready(keep(g))),
            );
        }
        let listing = rand::random::<u64>();
        let sources = self
            .consensus
            .members()
            .into_iter()
            .map(|m| {
                if m.peer_id == self.me.peer_id {
                    self.tracker.status_all(StatusFilter::default())
                } else {
                    global_status::remote(
                        self.rpc.clone(),
                        self.consensus.state(),
                        m,
                        listing,
                        PEER_STATUS_TIMEOUT,
                    )
                }
            })
            .collect();
        Box::pin(global_status::merge(sources).filter(move |g| futures::future::ready(keep(g))))
    }

    pub async fn recover_local(&self, cid: &Cid) -> PinInfo {
        self.tracker.recover(cid).await
    }

    pub async fn recover(&self, cid: &Cid) -> GlobalPinInfo {
        self.gather_one(cid, PeerCall::Recover(Some(*cid))).await
    }

    /// Queues again each pin in error here; the status of each, as this peer's status walk
    /// reaches it.
    pub fn recover_all_local(&self) -> BoxStream<'static, PinInfo> {
        self.tracker.recover_all()
    }

    /// Recovers on every member at once, each walking its status and queueing again what is
    /// in error; what each queued, merged per CID as a stream (this peer's from its tracker,
    /// the others' a page at a time). A member that cannot be asked shows `cluster_error`
    /// for each pin allocated to it, read from disk as the stream goes.
    pub fn recover_all(&self) -> BoxStream<'static, GlobalPinInfo> {
        let listing = rand::random::<u64>();
        let sources = self
            .consensus
            .members()
            .into_iter()
            .map(|m| {
                if m.peer_id == self.me.peer_id {
                    self.tracker.recover_all()
                } else {
                    global_status::recover_remote(
                        self.rpc.clone(),
                        self.consensus.state(),
                        m,
                        listing,
                        PEER_STATUS_TIMEOUT,
                    )
                }
            })
            .collect();
        global_status::merge(sources)
    }

    /// Names of the metrics this peer has seen.
    pub fn metric_names(&self) -> Vec<String> {
        self.monitor.names()
    }

    /// The latest metric of that name from every peer.
    pub fn metrics(&self, name: &str) -> Vec<Metric> {
        self.monitor.latest(name)
    }

    /// The size and limit of this peer's IPFS repository.
    pub async fn repo_stat(&self) -> Result<crate::components::RepoStat> {
        Ok(self.ipfs.repo_stat().await?)
    }

    /// This peer's IPFS node's traffic with other IPFS nodes (`stats/bw`).
    pub async fn ipfs_bandwidth(&self) -> Result<crate::components::IpfsBandwidth> {
        Ok(self.ipfs.bandwidth().await?)
    }

    /// Where this peer's IPFS node serves its gateway, if it has one.
    pub async fn ipfs_gateway(&self) -> Result<Option<String>> {
        Ok(self.ipfs.gateway().await?)
    }

    /// Members with a current `ping` metric: those this peer hears from (itself included).
    pub fn online_peers(&self) -> Vec<String> {
        self.consensus
            .peers()
            .into_iter()
            .filter(|p| self.monitor.current(PING, p).is_some())
            .collect()
    }

    /// Every member of the peerset.
    pub fn member_ids(&self) -> Vec<String> {
        self.consensus.peers()
    }

    pub fn alerts(&self) -> Vec<Alert> {
        self.monitor.alerts()
    }

    /// Desktop "Pause pinning": this peer's IPFS operations wait until resumed.
    pub fn set_paused(&self, paused: bool) {
        self.tracker.set_paused(paused);
    }

    /// The applied pinset, read from disk (for views that page through it).
    pub(crate) fn pinset(&self) -> Arc<dyn crate::components::Pinset> {
        self.consensus.state()
    }

    /// Operations queued or running on this peer.
    pub fn queue_len(&self) -> usize {
        self.tracker.queue_len()
    }

    pub fn is_paused(&self) -> bool {
        self.tracker.is_paused()
    }

    /// [`Self::gather`] for one CID; when no peer knows it, this peer's "unpinned".
    async fn gather_one(&self, cid: &Cid, call: PeerCall) -> GlobalPinInfo {
        let mut all = self.gather(call).await;
        all.pop().unwrap_or_else(|| {
            let unknown = Pin::new(*cid, Default::default());
            let info = self.short(PinInfoShort::now(TrackerStatus::Unpinned, String::new()));
            let mut local = PinInfo::of(&unknown, &self.me.peer_id, info);
            local.pin.created = None;
            GlobalPinInfo::from_local(local)
        })
    }

    /// `info` as this peer reports it.
    fn short(&self, info: PinInfoShort) -> PinInfoShort {
        PinInfoShort {
            peername: self.me.peername.clone(),
            ..info
        }
    }

    /// Runs `call` on every member in parallel and merges the answers per CID. A member that
    /// cannot be asked shows `cluster_error` for each pin it should hold.
    async fn gather(&self, call: PeerCall) -> Vec<GlobalPinInfo> {
        let members = self.consensus.members();
        let asks = members.iter().map(|m| {
            let call = call.clone();
            async move {
                if m.peer_id == self.me.peer_id {
                    return (m, Ok(self.pins(call).await));
                }
                (m, self.rpc.pins(m, call, PEER_STATUS_TIMEOUT).await)
            }
        });
        let answers = futures::future::join_all(asks).await;
        // Every call gathered names its CIDs (the whole pinset goes through the streams of
        // `status_all` and `recover_all`).
        let wanted: Vec<Cid> = match &call {
            PeerCall::Status(cids) => cids.clone(),
            PeerCall::Recover(Some(c)) => vec![*c],
            _ => Vec::new(),
        };
        let state = self.consensus.state();
        // In the pinset's order, as every listing.
        let mut out: BTreeMap<PinKey, GlobalPinInfo> = BTreeMap::new();
        for (m, answer) in answers {
            match answer {
                Ok(infos) => {
                    for info in infos {
                        out.entry(info.pin.cid.key())
                            .or_insert_with(|| GlobalPinInfo {
                                pin: info.pin.clone(),
                                peer_map: Default::default(),
                            })
                            .peer_map
                            .insert(info.peer, info.info);
                    }
                }
                // It takes no calls from this peer: left out (IPFS Cluster leaves out its
                // authorization errors).
                Err(crate::components::RpcError::Unauthorized { .. }) => {}
                Err(error) => {
                    // The pins of `wanted` it should hold, read from disk.
                    let mut pins: Vec<Pin> = Vec::new();
                    for c in &wanted {
                        if let Ok(Some(p)) = state.get(c).await {
                            if p.is_allocated_to(&m.peer_id) {
                                pins.push(p);
                            }
                        }
                    }
                    for pin in &pins {
                        let short = crate::global_status::unanswered(&m.peer_id, &error);
                        out.entry(pin.cid.key())
                            .or_insert_with(|| GlobalPinInfo::of(pin))
                            .peer_map
                            .insert(m.peer_id.clone(), short);
                    }
                }
            }
        }
        out.into_values().collect()
    }

    /// Peers a pin may be allocated to, best first: members with a current `ping`, minus
    /// `exclude`, ranked by the allocator.
    fn candidates(&self, exclude: &[String]) -> Vec<String> {
        let mut live: Vec<String> = self
            .consensus
            .peers()
            .into_iter()
            .filter(|p| !exclude.contains(p))
            .filter(|p| match self.pin_only {
                PinOnly::Anywhere => true,
                PinOnly::Trusted => self.consensus.is_trusted(p),
                PinOnly::Untrusted => !self.consensus.is_trusted(p),
            })
            .filter(|p| self.monitor.current(PING, p).is_some())
            .collect();
        live.sort();
        self.allocator
            .rank(&live, &|name, peer| self.monitor.current(name, peer))
    }

    /// Where `pin` goes, keeping `keep` where still possible and never on `exclude`.
    fn allocate(&self, pin: &Pin, keep: &[String], exclude: &[String]) -> Result<Vec<String>> {
        let candidates = self.candidates(exclude);
        Ok(self.allocator.allocate(pin, keep, &candidates)?)
    }

    /// Removes expired pins from the pinset (IPFS Cluster's expiry, done in its state sync):
    /// every `every` (the first time one `every` after start, as IPFS Cluster's ticker, once
    /// the peer is ready: a CRDT peer has heard the others by then), the peer that
    /// [looks after](Self::upkeep) a pin whose `expire_at` has passed unpins it. The expired
    /// pins are read through the pinset's index of expiring pins, a page at a time in CID
    /// order, to the end (those another peer looks after do not hide the rest).
    pub(crate) fn unpin_expired(&self, every: Duration, tasks: &Tasks) {
        let cluster = self.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if !cluster.consensus.is_ready() {
                    continue;
                }
                let Some(upkeep) = cluster.upkeep(&[]) else {
                    continue;
                };
                let now = chrono::Utc::now();
                let mut after = None;
                loop {
                    let page = match cluster.consensus.state().expired(now, after, 1000).await {
                        Ok(e) => e,
                        Err(e) => {
                            tracing::warn!("cannot read the expiring pins: {e}");
                            break;
                        }
                    };
                    after = page.last().map(Cid::key);
                    let full = page.len() == 1000;
                    for cid in page.into_iter().filter(|c| upkeep.covers(c)) {
                        tracing::info!(%cid, "unpinning: the pin expired");
                        if let Err(e) = cluster.consensus.log_unpin(cid).await {
                            tracing::warn!(%cid, "cannot unpin the expired pin: {e}");
                        }
                    }
                    if !full {
                        break;
                    }
                }
            }
        });
    }

    /// With repinning on: moves the pins of the peers whose `ping` expired to live peers.
    /// The alerts that came together are handled in one pass over the pinset (a flood of
    /// peers heard once and gone costs one pass, not one each); alerts missed while the
    /// channel was full are made up by every peer whose ping has expired.
    pub(crate) fn repin_on_alerts(&self, tasks: &Tasks) {
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        let cluster = self.clone();
        let mut alerts = self.monitor.subscribe();
        tasks.spawn(async move {
            loop {
                let mut dead = std::collections::BTreeSet::new();
                let mut lagged = false;
                match alerts.recv().await {
                    Ok(a) if a.metric.name == PING => {
                        dead.insert(a.metric.peer);
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => lagged = true,
                    Err(RecvError::Closed) => return,
                }
                loop {
                    match alerts.try_recv() {
                        Ok(a) if a.metric.name == PING => {
                            dead.insert(a.metric.peer);
                        }
                        Ok(_) => {}
                        Err(TryRecvError::Lagged(_)) => lagged = true,
                        Err(_) => break,
                    }
                }
                if lagged {
                    // The most recently expired pings (those long gone were repinned when
                    // their alert came).
                    let mut expired: Vec<Metric> = cluster
                        .monitor
                        .latest(PING)
                        .into_iter()
                        .filter(|m| m.expired())
                        .collect();
                    expired.sort_by_key(|m| std::cmp::Reverse(m.expire));
                    dead.extend(expired.into_iter().take(LAGGED_DEAD).map(|m| m.peer));
                }
                // Not this peer; not a peer heard again meanwhile.
                dead.remove(&cluster.me.peer_id);
                dead.retain(|p| cluster.monitor.current(PING, p).is_none());
                if !dead.is_empty() {
                    let dead: Vec<String> = dead.into_iter().collect();
                    cluster.repin_from(&dead).await;
                }
            }
        });
    }

    /// Who does the cluster's upkeep (repinning, unpinning expired pins) with `gone` out,
    /// so that peers do not race each other: the leader for every pin (Raft), or, without
    /// a leader (the CRDT), for each pin the trusted peer of the peerset nearest to it, as
    /// IPFS Cluster's `distanceChecker` decides (a follower never acts). `None`: not this
    /// peer, for any pin.
    fn upkeep(&self, gone: &[String]) -> Option<Upkeep> {
        if !self.leaderless {
            let leads = self.consensus.leader().as_deref() == Some(self.me.peer_id.as_str());
            return leads.then_some(Upkeep::All);
        }
        if !self.writes() {
            return None;
        }
        let others = self
            .consensus
            .members()
            .into_iter()
            .map(|m| m.peer_id)
            .filter(|p| *p != self.me.peer_id && !gone.contains(p))
            .filter(|p| self.consensus.is_trusted(p));
        Some(Upkeep::Closest(closest::Closeness::new(
            &self.me.peer_id,
            others,
        )))
    }

    /// Re-allocates the pins held by `dead` to other live peers (repinning on alerts), those
    /// this peer [looks after](Self::upkeep).
    async fn repin_from(&self, dead: &[String]) {
        if let Some(upkeep) = self.upkeep(dead) {
            self.vacate(dead, &upkeep).await;
        }
    }

    /// Re-allocates every pin allocated to one of `dead` that `upkeep` gives this peer to
    /// other live peers.
    async fn vacate(&self, dead: &[String], upkeep: &Upkeep) {
        // The candidates once for the pass (not once a pin).
        let candidates = self.candidates(dead);
        let dead: std::collections::HashSet<&str> = dead.iter().map(String::as_str).collect();
        // Pin by pin as the pinset is read from disk (pages in CID order, so a pin moved
        // meanwhile is not met again): never the dead peers' whole share in memory.
        let mut held = self.consensus.state().stream().try_filter(|p| {
            futures::future::ready(
                p.allocations.iter().any(|a| dead.contains(a.as_str())) && upkeep.covers(&p.cid),
            )
        });
        while let Some(pin) = held.next().await {
            let pin = match pin {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("cannot read the pinset to repin: {e}");
                    return;
                }
            };
            let keep: Vec<String> = pin
                .allocations
                .iter()
                .filter(|a| !dead.contains(a.as_str()))
                .cloned()
                .collect();
            match self.allocator.allocate(&pin, &keep, &candidates) {
                Ok(allocations) if allocations != pin.allocations => {
                    tracing::info!(cid = %pin.cid, from = ?dead, to = ?allocations, "repinning");
                    let mut moved = pin.clone();
                    moved.allocations = allocations;
                    if let Err(e) = self.consensus.log_pin(moved).await {
                        tracing::warn!(cid = %pin.cid, "repinning failed: {e}");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(cid = %pin.cid, "cannot repin: {e}"),
            }
        }
    }

    /// After `delay`, then whenever the membership changes (a peer joined, came back with
    /// other addresses) and at least every minute, asks this peer's IPFS to connect to the
    /// other peers' IPFS nodes, so that content moves between them directly.
    pub(crate) fn connect_swarms(&self, delay: Duration, tasks: &Tasks) {
        let cluster = self.clone();
        let mut members = self.consensus.watch_members();
        tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            loop {
                for id in cluster.peers().await {
                    if id.id == cluster.me.peer_id || !id.error.is_empty() {
                        continue;
                    }
                    for addr in &id.ipfs.addresses {
                        if cluster.ipfs.swarm_connect(addr).await.is_ok() {
                            break;
                        }
                    }
                }
                members.borrow_and_update();
                let minute = Duration::from_secs(60);
                if let Ok(Err(_)) = tokio::time::timeout(minute, members.changed()).await {
                    // Consensus stopped: no more membership news.
                    tokio::time::sleep(minute).await;
                }
            }
        });
    }
}

/// 400 for a malformed peer id (whether it is a member, consensus says).
fn check_peer_id(peer: &str) -> Result<()> {
    peer.parse::<libp2p_identity::PeerId>()
        .map(|_| ())
        .map_err(|e| Error::BadInput(format!("invalid peer id {peer:?}: {e}")))
}

/// What this peer answers other peers.
#[async_trait]
impl PeerService for Cluster {
    async fn id(&self) -> Id {
        Cluster::id(self).await
    }

    async fn pins(&self, call: PeerCall) -> Vec<PinInfo> {
        match call {
            PeerCall::Status(cids) => {
                self.status_all_local(&StatusFilter::default(), &cids)
                    .collect()
                    .await
            }
            PeerCall::StatusPage {
                listing,
                after,
                limit,
            } => {
                let limit = limit.min(global_status::PAGE);
                self.tracker.status_page(listing, after, limit).await
            }
            PeerCall::Recover(Some(cid)) => vec![self.recover_local(&cid).await],
            // From an older version: everything is recovered, a page of it answered.
            PeerCall::Recover(None) => {
                let mut recovered = self.recover_all_local();
                let mut page = Vec::new();
                while let Some(info) = recovered.next().await {
                    if page.len() < global_status::PAGE {
                        page.push(info);
                    }
                }
                page
            }
            PeerCall::RecoverCids(cids) => {
                let mut out = Vec::new();
                for cid in cids.iter().take(global_status::PAGE) {
                    out.extend(self.tracker.recover_queued(cid).await);
                }
                out
            }
        }
    }

    async fn node(&self, call: crate::components::NodeCall) -> crate::components::NodeAnswer {
        use crate::components::{NodeAnswer, NodeCall};
        if matches!(call, NodeCall::IpfsRepoGc) && !self.remote_repo_gc {
            return NodeAnswer::IpfsRepoGc(crate::types::RepoGc {
                peer: self.me.peer_id.clone(),
                peername: self.me.peername.clone(),
                keys: Vec::new(),
                error: "this peer follows the cluster (follower_mode): its IPFS garbage \
                        collection runs for its own user only"
                    .into(),
            });
        }
        self.answer_node(call).await
    }

    fn metrics(&self, from: &str, metrics: Vec<Metric>) {
        // A CRDT peer hears metrics on the metrics topic only (expiry held, size bounded),
        // as IPFS Cluster has no call to push them.
        if self.leaderless {
            return;
        }
        for m in metrics {
            // A peer speaks only for itself.
            if m.peer == from {
                self.monitor.log_metric(m);
            }
        }
    }
}

/// Rejects a path IPFS could never resolve before asking it: `/ipfs/` and `/ipld/` need a
/// CID, `/ipns/` a name (a key's CID or peer ID, or a DNSLink domain).
fn check_ipfs_path(path: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::BadInput(format!(
            "invalid path {path:?}: {why} (expected /ipfs/CID/…, /ipld/CID/… or /ipns/NAME/…)"
        )))
    };
    let Some((ns, rest)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return bad("no namespace");
    };
    let root = rest.split('/').next().unwrap_or_default();
    match ns {
        "ipfs" | "ipld" => match root.parse::<Cid>() {
            Ok(_) => Ok(()),
            Err(e) => bad(&format!("{root:?} is not a CID: {e}")),
        },
        "ipns"
            if !root.is_empty()
                && root
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')) =>
        {
            Ok(())
        }
        "ipns" => bad(&format!("{root:?} is not an IPNS name")),
        _ => bad(&format!("unknown namespace {ns:?}")),
    }
}
