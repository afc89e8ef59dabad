//! The stateless pin tracker (SPEC §6): a CID's status on this peer is derived, when asked,
//! from the shared state (is it allocated here?), IPFS's pin list and the operations in flight.
//! Only in-flight and failed operations are remembered, so nothing here can drift from IPFS.
//!
//! Operations go through a bounded queue (`max_pin_queue_size`) worked by `concurrent_pins`
//! workers; new pins take a priority lane ahead of retries. A newer operation on the same CID
//! cancels the older one (an unpin aborts a running pin). A queued operation is only its CID
//! and a few fields (about 450 bytes each with the map and the queue, measured with a million
//! queued; 1.8 KB when it held the pin): the pin is read from the pinset when it runs.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::components::{
    ConsensusError, IpfsConnector, IpfsError, PinTracker, Pinset, StateChange, TrackerStats,
};
use crate::config::StatelessTrackerConfig;
use crate::state::feed::{FeedGauge, FeedReceiver};
use crate::tasks::Tasks;
use crate::types::{
    Cid, IpfsId, Pin, PinInfo, PinInfoShort, PinKey, StatusFilter, StatusSummary, TrackerStatus,
};
use ops::{Changes, OpKind, OpTable, Operation, Phase};

/// How an operation ended, when IPFS did not fail it.
enum Outcome {
    Done,
    /// Nothing to do any more (no longer in the pinset, or allocated elsewhere).
    Nothing,
    /// An unpin of a pin allocated here again: pinned instead.
    PinAgain(Pin),
}

/// Who this tracker reports as, in every PinInfo.
#[derive(Clone, Debug)]
pub struct TrackerIdentity {
    pub peer_id: String,
    pub peername: String,
}

/// Intervals of the tracker's own maintenance loop.
#[derive(Clone, Debug)]
pub struct TrackerIntervals {
    /// Reconcile state with IPFS (`cluster.state_sync_interval`).
    pub state_sync: Duration,
    /// Retry failed operations (`cluster.pin_recover_interval`).
    pub recover: Duration,
    /// How often to check whether an unreachable IPFS came back (`cluster.peer_watch_interval`).
    pub ipfs_watch: Duration,
}

/// What IPFS has pinned, as sorted 64-bit fingerprints of the multihashes (8 bytes per pin
/// for a listing of millions, instead of the CIDs), or why IPFS could not be asked. A CID not
/// pinned passes for pinned with odds of one in 2^64 / (pins in IPFS): about 1 in 10^12 with
/// ten million pins.
type IpfsView = Result<Vec<u64>, IpfsError>;

/// [`Inner::ipfs_pins`] before IPFS was first listed.
const UNCOUNTED: u64 = u64::MAX;

/// Listings (of pages) whose IPFS answer is kept, and for how long after their last page.
const LISTINGS_KEPT: usize = 4;
const LISTING_KEPT: Duration = Duration::from_secs(60);
/// Page size of this peer's own status listing.
const LOCAL_PAGE: usize = 1000;

/// What the pages of one status listing share: IPFS's answer, asked when a page first needs
/// it, and the CIDs that had operations when the listing began, in CID order, so that each
/// page finds the operations on CIDs gone from the pinset in its own range without going
/// through every operation.
struct Listing {
    ipfs: tokio::sync::OnceCell<IpfsView>,
    op_cids: Vec<(PinKey, Cid)>,
}

fn fingerprint(multihash: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: stable within the process.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    multihash.hash(&mut h);
    h.finish()
}

/// Whether IPFS's pins (sorted fingerprints, see [`IpfsView`]) hold `cid`.
fn holds(prints: &[u64], cid: &Cid) -> bool {
    prints
        .binary_search(&fingerprint(&cid.multihash_bytes()))
        .is_ok()
}

struct Inner {
    me: TrackerIdentity,
    state: Arc<dyn Pinset>,
    ipfs: Arc<dyn IpfsConnector>,
    cfg: StatelessTrackerConfig,
    ops: Mutex<OpTable>,
    /// Told of every change to the pins or operations here (see [`PinTracker::changes`]).
    changes: Changes,
    priority_tx: mpsc::Sender<(Cid, u64)>,
    normal_tx: mpsc::Sender<(Cid, u64)>,
    /// Unpins have a lane and a worker of their own (as IPFS Cluster's tracker): a large
    /// import queued ahead must not hold them up.
    unpin_tx: mpsc::Sender<(Cid, u64)>,
    next_generation: AtomicU64,
    ipfs_id: Mutex<IpfsId>,
    /// Recent status listings, by id, with when they were last used (see [`Listing`]).
    listings: Mutex<Vec<(u64, std::time::Instant, Arc<Listing>)>>,
    /// IPFS's pins as last listed, plus the pins and minus the unpins done since (an
    /// already pinned CID pinned again counts twice until the next listing); [`UNCOUNTED`]
    /// before the first listing.
    ipfs_pins: AtomicU64,
    /// IPFS pin requests made, and failed, since start.
    pin_adds: AtomicU64,
    pin_add_errors: AtomicU64,
    /// Set when an IPFS call found the daemon unreachable; the watch loop recovers when it
    /// answers again.
    ipfs_down: AtomicBool,
    /// Paused (desktop "Pause pinning"): workers take no new operation until resumed.
    paused: tokio::sync::watch::Sender<bool>,
    /// The state-change feed this tracker follows, for its figures.
    feed: std::sync::OnceLock<FeedGauge>,
    /// CIDs of pins applied as allocated elsewhere, to check whether IPFS still holds them
    /// here (the allocation moved away), by one worker; past the bound, a sync does it.
    moved_tx: mpsc::Sender<Cid>,
    /// Checks left to a sync because the queue was full.
    moved_deferred: AtomicU64,
    /// Wakes the sync task (a reset, or moved-away checks left to it); wakes while it runs
    /// make one more sync.
    resync: tokio::sync::Notify,
    tasks: Tasks,
}

#[derive(Clone)]
pub struct StatelessTracker {
    inner: Arc<Inner>,
}

impl StatelessTracker {
    /// Starts the workers and the maintenance loop (in `tasks`).
    pub fn start(
        me: TrackerIdentity,
        state: Arc<dyn Pinset>,
        ipfs: Arc<dyn IpfsConnector>,
        cfg: StatelessTrackerConfig,
        intervals: TrackerIntervals,
        tasks: &Tasks,
    ) -> StatelessTracker {
        let cap = cfg.max_pin_queue_size.max(1);
        let (priority_tx, priority_rx) = mpsc::channel(cap);
        let (normal_tx, normal_rx) = mpsc::channel(cap);
        let (unpin_tx, unpin_rx) = mpsc::channel(cap);
        let (moved_tx, moved_rx) = mpsc::channel(MOVED_AWAY_QUEUE);
        let changes = Changes::default();
        let inner = Arc::new(Inner {
            me,
            state,
            ipfs,
            cfg,
            ops: Mutex::new(OpTable::new(changes.clone())),
            changes,
            priority_tx,
            normal_tx,
            unpin_tx,
            next_generation: AtomicU64::new(1),
            ipfs_id: Mutex::new(IpfsId::default()),
            listings: Mutex::new(Vec::new()),
            ipfs_pins: AtomicU64::new(UNCOUNTED),
            pin_adds: AtomicU64::new(0),
            pin_add_errors: AtomicU64::new(0),
            ipfs_down: AtomicBool::new(false),
            paused: tokio::sync::watch::channel(false).0,
            feed: std::sync::OnceLock::new(),
            moved_tx,
            moved_deferred: AtomicU64::new(0),
            resync: tokio::sync::Notify::new(),
            tasks: tasks.clone(),
        });
        let queues = Arc::new(tokio::sync::Mutex::new((priority_rx, normal_rx)));
        for _ in 0..inner.cfg.concurrent_pins {
            tasks.spawn(worker(inner.clone(), queues.clone()));
        }
        tasks.spawn(unpin_worker(inner.clone(), unpin_rx));
        tasks.spawn(moved_away_worker(inner.clone(), moved_rx));
        let syncing = inner.clone();
        tasks.spawn(async move {
            loop {
                syncing.resync.notified().await;
                syncing.sync().await;
            }
        });
        tasks.spawn(maintenance(inner.clone(), intervals));
        StatelessTracker { inner }
    }

    /// Follows the applied state: each change the consensus applies is tracked here.
    pub fn follow(&self, mut changes: FeedReceiver) {
        let _ = self.inner.feed.set(changes.gauge());
        // A reset's sync (a walk of the pinset and a listing of IPFS) runs in the sync task
        // beside this loop, so that the feed keeps draining meanwhile: the state machine
        // waits on a full feed of unpins, and must not wait on IPFS.
        let t = self.clone();
        self.inner.tasks.spawn(async move {
            while let Some(change) = changes.recv().await {
                match change {
                    StateChange::Pinned(p) => t.track(p),
                    StateChange::Unpinned(c) => t.untrack(c),
                    StateChange::Reset => t.inner.resync.notify_one(),
                }
            }
        });
    }

    /// Makes the pins allocated here that IPFS lacks get pinned, and drops operations for
    /// CIDs the state no longer has. The tracker runs it at start, periodically and when
    /// woken (a reset, moved-away checks left to it); tests call it directly.
    #[cfg(test)]
    pub async fn sync(&self) {
        self.inner.sync().await
    }
}

impl Inner {
    /// `cid`'s pin in the state; a store that cannot be read counts as not having it (and
    /// says so in the log).
    async fn pin_of(&self, cid: &Cid) -> Option<Pin> {
        match self.state.get(cid).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(%cid, "cannot read the pinset: {e}");
                None
            }
        }
    }

    fn is_mine(&self, pin: &Pin) -> bool {
        pin.is_allocated_to(&self.me.peer_id)
    }

    /// `cid`'s pin in the state now, if it is allocated here.
    async fn allocated_here(&self, cid: &Cid) -> Option<Pin> {
        self.pin_of(cid).await.filter(|p| self.is_mine(p))
    }

    /// Whether a pin made at `pinned_at` that was tried `attempts` times takes the priority
    /// lane (new pins go ahead of retries and of old pins being caught up).
    fn priority_for(&self, pinned_at: DateTime<Utc>, attempts: u32) -> bool {
        let age = Utc::now().signed_duration_since(pinned_at);
        attempts < self.cfg.priority_pin_max_retries
            && age.to_std().unwrap_or_default() < self.cfg.priority_pin_max_age.get()
    }

    /// Queues pinning `pin` here, replacing (and cancelling) any other operation on its CID.
    fn enqueue_pin(&self, pin: &Pin) {
        self.enqueue(OpKind::Pin, pin.cid, Some(pin.timestamp), false);
    }

    /// Queues unpinning `cid` here (it left the pinset), replacing (and cancelling) any other
    /// operation on it.
    fn enqueue_unpin(&self, cid: Cid) {
        self.enqueue(OpKind::Unpin, cid, None, false);
    }

    /// Queues unpinning `cid` here because its pin, still in the pinset, is allocated
    /// elsewhere now.
    fn enqueue_unpin_moved(&self, cid: Cid) {
        self.enqueue(OpKind::Unpin, cid, None, true);
    }

    /// Queues `kind` for `cid` (a pin made at `pinned_at`, if known), replacing (and
    /// cancelling) any other operation on the CID.
    fn enqueue(&self, kind: OpKind, cid: Cid, pinned_at: Option<DateTime<Utc>>, moved: bool) {
        let mut ops = self.ops.lock().unwrap();
        let attempts = match ops.get(&cid) {
            Some(op) if op.kind == kind && op.phase != Phase::Failed => {
                // The same unpin goes on; only why it is needed may have changed.
                ops.update(&cid, |op| op.moved = moved);
                return;
            }
            Some(op) if op.kind == kind => op.attempt_count,
            Some(op) => {
                op.cancel();
                0
            }
            None => 0,
        };
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let priority =
            kind == OpKind::Pin && pinned_at.is_some_and(|at| self.priority_for(at, attempts));
        let lane = if kind == OpKind::Unpin {
            &self.unpin_tx
        } else if priority {
            &self.priority_tx
        } else {
            &self.normal_tx
        };
        let mut op = Operation {
            kind,
            phase: Phase::Queued,
            attempt_count: attempts,
            priority,
            error: String::new(),
            timestamp: Utc::now(),
            generation,
            cancel: None,
            moved: kind == OpKind::Unpin && moved,
        };
        if lane.try_send((cid, generation)).is_err() {
            op.phase = Phase::Failed;
            op.error = format!(
                "pin queue is full (max_pin_queue_size {})",
                self.cfg.max_pin_queue_size
            );
        }
        ops.insert(cid, op);
    }

    fn note_ipfs_error(&self, e: &IpfsError) {
        if e.is_unreachable() && !self.ipfs_down.swap(true, Ordering::Relaxed) {
            // Every pin settled here shows as `cluster_error` now.
            self.changes.bump();
        }
    }

    /// `pin`'s status here as this peer reports it (with its IPFS identity).
    fn info(&self, pin: &Pin, short: PinInfoShort) -> PinInfo {
        let ipfs = self.ipfs_id.lock().unwrap().clone();
        let short = PinInfoShort {
            peername: self.me.peername.clone(),
            ipfs_peer_id: ipfs.id,
            ipfs_peer_addresses: ipfs.addresses,
            ..short
        };
        PinInfo::of(pin, &self.me.peer_id, short)
    }

    /// The status of the operation on `cid`, if one is queued, running or failed.
    fn op_status(&self, cid: &Cid) -> Option<PinInfoShort> {
        let ops = self.ops.lock().unwrap();
        let op = ops.get(cid)?;
        Some(PinInfoShort {
            timestamp: op.timestamp,
            attempt_count: op.attempt_count,
            priority_pin: op.priority,
            ..PinInfoShort::now(op.status(), op.error.clone())
        })
    }

    /// `cid`'s PinInfo when the pinset no longer has it (an unpin in flight or failed).
    fn info_without_pin(&self, cid: &Cid, short: PinInfoShort) -> PinInfo {
        self.info(&Pin::new(*cid, Default::default()), short)
    }

    /// Status of a pin that has no operation in flight, given whether IPFS has it.
    fn settled_info(&self, pin: &Pin, in_ipfs: &Result<bool, IpfsError>) -> PinInfo {
        let (status, error) = match in_ipfs {
            _ if !self.is_mine(pin) => (TrackerStatus::Remote, String::new()),
            Ok(true) => (TrackerStatus::Pinned, String::new()),
            Ok(false) => (TrackerStatus::UnexpectedlyUnpinned, String::new()),
            Err(e) => (TrackerStatus::ClusterError, e.to_string()),
        };
        self.info(pin, PinInfoShort::now(status, error))
    }

    /// The allocation of `pin` moved away from this peer: if IPFS still holds it and nothing
    /// else is under way for it here, unpin it here.
    async fn unpin_if_moved_away(&self, cid: Cid) {
        if !matches!(self.ipfs.is_pinned(&cid).await, Ok(true)) {
            return;
        }
        let still_elsewhere = self.pin_of(&cid).await.is_some_and(|p| !self.is_mine(&p));
        if still_elsewhere && !self.ops.lock().unwrap().contains_key(&cid) {
            self.enqueue_unpin_moved(cid);
        }
    }

    async fn refresh_ipfs_id(&self) -> Result<(), IpfsError> {
        match self.ipfs.id().await {
            Ok(id) => {
                *self.ipfs_id.lock().unwrap() = id;
                Ok(())
            }
            Err(e) => {
                self.note_ipfs_error(&e);
                Err(e)
            }
        }
    }

    async fn status(&self, cid: &Cid) -> PinInfo {
        let pin = self.pin_of(cid).await;
        if let Some(short) = self.op_status(cid) {
            return match &pin {
                Some(pin) => self.info(pin, short),
                None => self.info_without_pin(cid, short),
            };
        }
        let Some(pin) = pin else {
            let unpinned = PinInfoShort::now(TrackerStatus::Unpinned, String::new());
            return self.info_without_pin(cid, unpinned);
        };
        let in_ipfs = if self.is_mine(&pin) {
            let r = self.ipfs.is_pinned(cid).await;
            if let Err(e) = &r {
                self.note_ipfs_error(e);
            }
            r
        } else {
            Ok(false)
        };
        self.settled_info(&pin, &in_ipfs)
    }

    /// What IPFS has pinned, read as it streams in (see [`IpfsView`]).
    async fn ipfs_fingerprints(&self) -> IpfsView {
        let mut prints: Vec<u64> = Vec::new();
        let listed = self
            .ipfs
            .pin_ls_each(&mut |c| prints.push(fingerprint(&c.multihash_bytes())))
            .await;
        match listed {
            Ok(_) => {
                prints.sort_unstable();
                prints.dedup();
                prints.shrink_to_fit();
                self.ipfs_pins.store(prints.len() as u64, Ordering::Relaxed);
                Ok(prints)
            }
            Err(e) => {
                self.note_ipfs_error(&e);
                Err(e)
            }
        }
    }

    /// The listing `id`, begun now if it is new (or forgotten).
    fn listing(&self, id: u64) -> Arc<Listing> {
        let mut listings = self.listings.lock().unwrap();
        listings.retain(|(_, at, _)| at.elapsed() < LISTING_KEPT);
        if let Some((_, at, l)) = listings.iter_mut().find(|(i, _, _)| *i == id) {
            *at = std::time::Instant::now();
            return l.clone();
        }
        let mut op_cids: Vec<(PinKey, Cid)> = {
            let ops = self.ops.lock().unwrap();
            ops.keys().map(|c| (c.key(), *c)).collect()
        };
        op_cids.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let l = Arc::new(Listing {
            ipfs: tokio::sync::OnceCell::new(),
            op_cids,
        });
        if listings.len() >= LISTINGS_KEPT {
            listings.remove(0);
        }
        listings.push((id, std::time::Instant::now(), l.clone()));
        l
    }

    /// What IPFS has pinned, for `listing`: asked once per listing and kept for its pages.
    async fn ipfs_view<'l>(&self, listing: &'l Listing) -> &'l IpfsView {
        listing
            .ipfs
            .get_or_init(|| async {
                if self.ipfs_id.lock().unwrap().id.is_empty() {
                    let _ = self.refresh_ipfs_id().await;
                }
                self.ipfs_fingerprints().await
            })
            .await
    }

    /// See [`PinTracker::status_page`]. IPFS is only asked when a pin of the page is
    /// allocated here.
    async fn status_page(&self, listing: u64, after: Option<PinKey>, limit: usize) -> Vec<PinInfo> {
        use futures::StreamExt;
        let limit = limit.max(1);
        let mut pins = Vec::with_capacity(limit);
        let mut stream = self.state.stream_after(after.clone()).take(limit);
        while let Some(p) = stream.next().await {
            match p {
                Ok(p) => pins.push(p),
                Err(e) => {
                    tracing::warn!("cannot read the pinset: {e}");
                    break;
                }
            }
        }
        // The page covers CIDs in (after, upper]; the last page everything after `after`.
        let upper = pins
            .last()
            .filter(|_| pins.len() == limit)
            .map(|p| p.cid.key());
        let l = self.listing(listing);
        let view = if pins.iter().any(|p| self.is_mine(p)) {
            Some(self.ipfs_view(&l).await)
        } else {
            None
        };
        let mut out: Vec<(PinKey, PinInfo)> = Vec::with_capacity(pins.len());
        let in_page: HashSet<Cid> = pins.iter().map(|p| p.cid).collect();
        for pin in &pins {
            let info = match self.op_status(&pin.cid) {
                Some(short) => self.info(pin, short),
                None => {
                    let has = match view {
                        Some(v) => v
                            .as_ref()
                            .map(|prints| holds(prints, &pin.cid))
                            .map_err(Clone::clone),
                        None => Ok(false),
                    };
                    self.settled_info(pin, &has)
                }
            };
            out.push((pin.cid.key(), info));
        }
        // Operations on CIDs gone from the state (unpins in flight or failed), in the page
        // whose range holds their CID.
        let from = after
            .as_ref()
            .map_or(0, |a| l.op_cids.partition_point(|(k, _)| k <= a));
        let to = upper.as_ref().map_or(l.op_cids.len(), |u| {
            l.op_cids.partition_point(|(k, _)| k <= u)
        });
        for (key, cid) in &l.op_cids[from..to.max(from)] {
            if in_page.contains(cid) {
                continue;
            }
            if let Some(short) = self.op_status(cid) {
                out.push((key.clone(), self.info_without_pin(cid, short)));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.into_iter().map(|(_, i)| i).collect()
    }

    /// Requeues `cid` if it failed or is missing from IPFS; returns whether it did.
    async fn recover_one(&self, cid: &Cid) -> bool {
        let failed = {
            let ops = self.ops.lock().unwrap();
            ops.get(cid)
                .filter(|op| op.phase == Phase::Failed)
                .map(|op| op.kind)
        };
        if let Some(kind) = failed {
            self.requeue_failed(kind, cid).await;
            return true;
        }
        if self.op_status(cid).is_some() {
            return false;
        }
        match self.pin_of(cid).await {
            Some(pin) if self.is_mine(&pin) => match self.ipfs.is_pinned(cid).await {
                Ok(false) => {
                    self.enqueue_pin(&pin);
                    true
                }
                Ok(true) => false,
                Err(e) => {
                    self.note_ipfs_error(&e);
                    false
                }
            },
            _ => false,
        }
    }

    /// Queues the failed `kind` on `cid` again, keeping its attempt count (`enqueue` takes
    /// it over). A failed pin whose CID left the pinset, or is now allocated elsewhere, is
    /// dropped instead.
    async fn requeue_failed(&self, kind: OpKind, cid: &Cid) {
        match kind {
            OpKind::Unpin => match self.pin_of(cid).await {
                // Allocated here again: pinning it is what is left to do.
                Some(pin) if self.is_mine(&pin) => self.enqueue_pin(&pin),
                Some(_) => self.enqueue_unpin_moved(*cid),
                None => self.enqueue_unpin(*cid),
            },
            OpKind::Pin => match self.pin_of(cid).await {
                Some(pin) if self.is_mine(&pin) => self.enqueue_pin(&pin),
                _ => {
                    let mut ops = self.ops.lock().unwrap();
                    if ops
                        .get(cid)
                        .is_some_and(|op| op.kind == kind && op.phase == Phase::Failed)
                    {
                        ops.remove(cid);
                    }
                }
            },
        }
    }

    /// Queues every failed operation again, and the pins allocated here that IPFS lacks
    /// (the maintenance loop's recover; a user's "recover all" walks the status instead, see
    /// [`PinTracker::recover_all`]).
    async fn requeue_all(&self) {
        let failed: Vec<(OpKind, Cid)> = {
            let ops = self.ops.lock().unwrap();
            ops.iter()
                .filter(|(_, op)| op.phase == Phase::Failed)
                .map(|(cid, op)| (op.kind, *cid))
                .collect()
        };
        for (kind, cid) in failed {
            self.requeue_failed(kind, &cid).await;
        }
        self.reconcile(false).await;
    }

    /// Compares the state with one list of what IPFS pins (not a question per pin): queues
    /// the pins allocated here that IPFS lacks and, with `unpin_moved`, unpins what IPFS
    /// holds but is now allocated elsewhere. Returns how many pins it queued.
    async fn reconcile(&self, unpin_moved: bool) -> usize {
        use futures::StreamExt;
        // Taken before asking IPFS: an operation that finishes while IPFS answers must not
        // look like a missing pin.
        let busy: HashMap<Cid, OpKind> = self
            .ops
            .lock()
            .unwrap()
            .iter()
            .map(|(cid, op)| (*cid, op.kind))
            .collect();
        let Ok(have) = self.ipfs_fingerprints().await else {
            return 0;
        };
        let mut queued = 0;
        // The pinset streamed from disk, one pin at a time.
        let mut pins = self.state.stream();
        while let Some(pin) = pins.next().await {
            let pin = match pin {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("cannot read the pinset: {e}");
                    break;
                }
            };
            if self.ops.lock().unwrap().contains_key(&pin.cid) && self.align(&pin.cid).await {
                queued += 1;
                continue;
            }
            let in_ipfs = holds(&have, &pin.cid);
            let mine = self.is_mine(&pin);
            let kind = match (mine, in_ipfs) {
                (true, false) => OpKind::Pin,
                (false, true) if unpin_moved => OpKind::Unpin,
                _ => continue,
            };
            // An operation already on it (then or now) goes on, except an unpin of a pin
            // allocated here (re-pinned after the unpin was queued): the pin replaces it.
            let now = self.ops.lock().unwrap().get(&pin.cid).map(|op| op.kind);
            let goes_on = |k: OpKind| !(kind == OpKind::Pin && k == OpKind::Unpin);
            if busy.get(&pin.cid).is_some_and(|k| goes_on(*k)) || now.is_some_and(goes_on) {
                continue;
            }
            if now == Some(OpKind::Unpin) {
                // The page may be older than the unpin: only the state now decides.
                if let Some(current) = self.allocated_here(&pin.cid).await {
                    queued += 1;
                    self.enqueue_pin(&current);
                }
                continue;
            }
            if kind == OpKind::Pin {
                queued += 1;
                self.enqueue_pin(&pin);
            } else {
                self.enqueue_unpin_moved(pin.cid);
            }
        }
        queued
    }

    /// Brings the operation on `cid`, if any, in line with its pin in the pinset now (after a
    /// reset the tracker re-reads the pinset rather than hears each change): an unpin of a pin
    /// allocated here becomes a pin, an unpin of one allocated elsewhere is marked as moved
    /// away, and a pin of one allocated elsewhere is dropped (as `track` drops it). Returns
    /// whether it queued a pin.
    async fn align(&self, cid: &Cid) -> bool {
        let current = self.pin_of(cid).await;
        let mut ops = self.ops.lock().unwrap();
        let Some(op) = ops.get(cid) else {
            return false;
        };
        match (&current, op.kind) {
            (Some(pin), OpKind::Unpin) if self.is_mine(pin) => {
                drop(ops);
                self.enqueue_pin(pin);
                return true;
            }
            (Some(_), OpKind::Unpin) if !op.moved => {
                ops.update(cid, |op| op.moved = true);
            }
            (Some(pin), OpKind::Pin) if !self.is_mine(pin) => {
                if let Some(op) = ops.remove(cid) {
                    op.cancel();
                }
            }
            _ => {}
        }
        false
    }

    async fn sync(&self) {
        // Pins whose CID left the state while queued are pointless now.
        let pinning: Vec<Cid> = {
            let ops = self.ops.lock().unwrap();
            ops.iter()
                .filter(|(_, op)| op.kind == OpKind::Pin)
                .map(|(cid, _)| *cid)
                .collect()
        };
        for cid in pinning {
            if self.pin_of(&cid).await.is_none() {
                let mut ops = self.ops.lock().unwrap();
                // Still the pin found above (not replaced by an unpin meanwhile).
                if ops.get(&cid).is_some_and(|op| op.kind == OpKind::Pin) {
                    if let Some(op) = ops.remove(&cid) {
                        op.cancel();
                    }
                }
            }
        }
        let queued = self.reconcile(true).await;
        if queued > 0 {
            tracing::info!(count = queued, "state sync queued missing pins");
        }
        // After a reset the pinset itself changed, whatever the operations did.
        self.changes.bump();
    }

    /// Adds `delta` to the count of IPFS's pins, once there is one.
    fn count_ipfs_pins(&self, delta: i64) {
        let _ = self
            .ipfs_pins
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n != UNCOUNTED).then(|| n.saturating_add_signed(delta))
            });
    }

    /// Runs one queued operation, if it is still the current one for its CID. A pin is read
    /// from the pinset now (the current options); one whose CID left the pinset, or is now
    /// allocated elsewhere, has nothing left to do.
    async fn run(&self, cid: Cid, generation: u64) {
        let started = self.ops.lock().unwrap().update(&cid, |op| {
            if op.generation != generation || op.phase != Phase::Queued {
                return None;
            }
            op.phase = Phase::InProgress;
            op.timestamp = Utc::now();
            let cancel = CancellationToken::new();
            op.cancel = Some(cancel.clone());
            Some((op.kind, cancel))
        });
        let Some(Some((kind, cancel))) = started else {
            return;
        };
        let work = async {
            match kind {
                OpKind::Pin => match self.pin_of(&cid).await {
                    Some(pin) if self.is_mine(&pin) => {
                        self.pin_adds.fetch_add(1, Ordering::Relaxed);
                        let r = self.ipfs.pin(&pin).await;
                        match r {
                            Ok(()) => self.count_ipfs_pins(1),
                            Err(_) => {
                                self.pin_add_errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        r.map(|_| Outcome::Done)
                    }
                    _ => Ok(Outcome::Nothing),
                },
                OpKind::Unpin => {
                    // Allocated here again since the unpin was queued (the re-pin may have
                    // been left to a reset rather than queued after it: see `state::feed`),
                    // before or while IPFS removed it: it is pinned back.
                    if let Some(pin) = self.allocated_here(&cid).await {
                        return Ok(Outcome::PinAgain(pin));
                    }
                    if self.ipfs.unpin(&cid).await? {
                        self.count_ipfs_pins(-1);
                    }
                    Ok(match self.allocated_here(&cid).await {
                        Some(pin) => Outcome::PinAgain(pin),
                        None => Outcome::Done,
                    })
                }
            }
        };
        let result = tokio::select! {
            r = work => r,
            _ = cancel.cancelled() => return,
        };
        let mut ops = self.ops.lock().unwrap();
        if ops.get(&cid).is_none_or(|op| op.generation != generation) {
            return;
        }
        match result {
            Ok(Outcome::Nothing) => {
                tracing::debug!(?kind, "no longer pinned here: nothing to do");
                ops.remove(&cid);
            }
            Ok(Outcome::Done) => {
                tracing::info!(?kind, "done");
                ops.remove(&cid);
            }
            Ok(Outcome::PinAgain(pin)) => {
                tracing::info!("allocated here again: pinned, not unpinned");
                ops.remove(&cid);
                drop(ops);
                self.enqueue_pin(&pin);
            }
            Err(e) => {
                tracing::warn!(?kind, error = %e, "IPFS operation failed");
                self.note_ipfs_error(&e);
                ops.update(&cid, |op| {
                    op.phase = Phase::Failed;
                    op.attempt_count += 1;
                    op.error = e.to_string();
                    op.timestamp = Utc::now();
                });
            }
        }
    }
}

type Queues = (mpsc::Receiver<(Cid, u64)>, mpsc::Receiver<(Cid, u64)>);

async fn worker(inner: Arc<Inner>, queues: Arc<tokio::sync::Mutex<Queues>>) {
    let mut paused = inner.paused.subscribe();
    loop {
        if paused.wait_for(|p| !*p).await.is_err() {
            return;
        }
        let next = {
            let mut q = queues.lock().await;
            let (prio, normal) = &mut *q;
            tokio::select! {
                biased;
                Some(item) = prio.recv() => item,
                Some(item) = normal.recv() => item,
                else => return,
            }
        };
        // Paused while this worker waited for work: the operation waits, queued, for the
        // resume.
        if paused.wait_for(|p| !*p).await.is_err() {
            return;
        }
        let (cid, generation) = next;
        inner
            .run(cid, generation)
            .instrument(tracing::info_span!("pin", cid = %cid))
            .await;
    }
}

/// Remote pins waiting for the moved-away check at most (32 bytes or so each).
const MOVED_AWAY_QUEUE: usize = 10_000;

/// Checks, one at a time, whether pins applied as allocated elsewhere are still in IPFS here.
async fn moved_away_worker(inner: Arc<Inner>, mut queue: mpsc::Receiver<Cid>) {
    while let Some(cid) = queue.recv().await {
        inner.unpin_if_moved_away(cid).await;
    }
}

/// The unpin lane's one worker (as IPFS Cluster's): unpins are quick for IPFS, and one at a
/// time keeps them from crowding the pins.
async fn unpin_worker(inner: Arc<Inner>, mut lane: mpsc::Receiver<(Cid, u64)>) {
    let mut paused = inner.paused.subscribe();
    loop {
        if paused.wait_for(|p| !*p).await.is_err() {
            return;
        }
        let Some((cid, generation)) = lane.recv().await else {
            return;
        };
        if paused.wait_for(|p| !*p).await.is_err() {
            return;
        }
        inner
            .run(cid, generation)
            .instrument(tracing::info_span!("unpin", cid = %cid))
            .await;
    }
}

async fn maintenance(inner: Arc<Inner>, intervals: TrackerIntervals) {
    let mut sync = tokio::time::interval(intervals.state_sync.max(Duration::from_millis(100)));
    let mut recover = tokio::time::interval(intervals.recover.max(Duration::from_millis(100)));
    let mut watch = tokio::time::interval(intervals.ipfs_watch.max(Duration::from_millis(100)));
    recover.tick().await; // the first recover waits a full interval; sync runs at once
    loop {
        tokio::select! {
            _ = sync.tick() => inner.sync().await,
            _ = recover.tick() => { inner.requeue_all().await; }
            _ = watch.tick() => {
                let was_down = inner.ipfs_down.load(Ordering::Relaxed);
                if inner.refresh_ipfs_id().await.is_ok() && was_down {
                    inner.ipfs_down.store(false, Ordering::Relaxed);
                    inner.changes.bump();
                    tracing::info!("IPFS is reachable again: recovering");
                    inner.requeue_all().await;
                }
            }
        }
    }
}

#[async_trait]
impl PinTracker for StatelessTracker {
    fn track(&self, pin: Pin) {
        if self.inner.is_mine(&pin) {
            self.inner.enqueue_pin(&pin);
            return;
        }
        // Allocated elsewhere. A pin of it running here is pointless now; if IPFS holds it
        // (the allocation moved away from this peer), unpin it. Otherwise it is simply remote
        // (one more remote pin in the summary).
        if let Some(op) = self.inner.ops.lock().unwrap().remove(&pin.cid) {
            op.cancel();
        }
        self.inner.changes.bump();
        if self.inner.moved_tx.try_send(pin.cid).is_err() {
            self.inner.moved_deferred.fetch_add(1, Ordering::Relaxed);
            self.inner.resync.notify_one();
        }
    }

    fn untrack(&self, cid: Cid) {
        self.inner.enqueue_unpin(cid);
    }

    async fn status(&self, cid: &Cid) -> PinInfo {
        self.inner.status(cid).await
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    async fn summary(&self) -> Result<StatusSummary, ConsensusError> {
        let inner = &self.inner;
        let pins = inner.state.counts().await?;
        let ops = inner.ops.lock().unwrap().counts();
        // Every operation shows in place of the pin's settled status: pins' on pins allocated
        // here, unpins' of moved pins on remote ones (other unpins' CIDs left the pinset).
        let settled_here = pins
            .allocated_here
            .saturating_sub(ops.pin_queued + ops.pinning + ops.pin_error);
        let ipfs_down = inner.ipfs_down.load(Ordering::Relaxed);
        Ok(StatusSummary {
            peer: inner.me.peer_id.clone(),
            peername: inner.me.peername.clone(),
            pins: pins.total,
            allocated_here: pins.allocated_here,
            pinned: if ipfs_down { 0 } else { settled_here },
            remote: (pins.total - pins.allocated_here.min(pins.total))
                .saturating_sub(ops.moved_unpins),
            pin_queued: ops.pin_queued,
            pinning: ops.pinning,
            pin_error: ops.pin_error,
            unpin_queued: ops.unpin_queued,
            unpinning: ops.unpinning,
            unpin_error: ops.unpin_error,
            cluster_error: if ipfs_down { settled_here } else { 0 },
        })
    }

    fn status_all(&self, filter: StatusFilter) -> BoxStream<'static, PinInfo> {
        let inner = self.inner.clone();
        let listing = rand::random::<u64>();
        Box::pin(async_stream::stream! {
            let mut after = None;
            loop {
                let page = inner.status_page(listing, after.take(), LOCAL_PAGE).await;
                let full = page.len() >= LOCAL_PAGE;
                for info in page {
                    after = Some(info.pin.cid.key());
                    if filter.matches(info.info.status) {
                        yield info;
                    }
                }
                // A page shorter than asked is the last (orphans only make pages longer).
                if !full || after.is_none() {
                    break;
                }
            }
        })
    }

    async fn status_page(&self, listing: u64, after: Option<PinKey>, limit: usize) -> Vec<PinInfo> {
        self.inner.status_page(listing, after, limit).await
    }

    async fn recover(&self, cid: &Cid) -> PinInfo {
        self.inner.recover_one(cid).await;
        self.inner.status(cid).await
    }

    async fn recover_queued(&self, cid: &Cid) -> Option<PinInfo> {
        if self.inner.recover_one(cid).await {
            Some(self.inner.status(cid).await)
        } else {
            None
        }
    }

    fn recover_all(&self) -> BoxStream<'static, PinInfo> {
        use futures::StreamExt;
        let this = self.clone();
        let errored = StatusFilter(vec![
            TrackerStatus::PinError,
            TrackerStatus::UnpinError,
            TrackerStatus::UnexpectedlyUnpinned,
        ]);
        // As IPFS Cluster's tracker: the status of each pin queued again, nothing for one
        // that needed nothing by the time it was reached.
        Box::pin(self.status_all(errored).filter_map(move |info| {
            let this = this.clone();
            async move { this.recover_queued(&info.pin.cid).await }
        }))
    }

    fn set_paused(&self, paused: bool) {
        self.inner.paused.send_replace(paused);
    }

    fn is_paused(&self) -> bool {
        *self.inner.paused.borrow()
    }

    fn ipfs_pin_count(&self) -> Option<u64> {
        let n = self.inner.ipfs_pins.load(Ordering::Relaxed);
        (n != UNCOUNTED && !self.inner.ipfs_down.load(Ordering::Relaxed)).then_some(n)
    }

    fn queue_len(&self) -> usize {
        ops::in_queue(&self.inner.ops.lock().unwrap().counts()) as usize
    }

    fn stats(&self) -> TrackerStats {
        // The operation counts are kept as the operations change: the same cost with a
        // million queued.
        let mut s = TrackerStats {
            pin_add: self.inner.pin_adds.load(Ordering::Relaxed),
            pin_add_errors: self.inner.pin_add_errors.load(Ordering::Relaxed),
            ..self.inner.ops.lock().unwrap().counts()
        };
        if let Some(feed) = self.inner.feed.get() {
            let f = feed.stats();
            s.feed_queued = f.queued as u64;
            s.feed_coalesced = f.coalesced;
            s.feed_waited = f.waited;
        }
        s.moved_checks_deferred = self.inner.moved_deferred.load(Ordering::Relaxed);
        s
    }
}

mod ops;
#[cfg(test)]
mod tests;
