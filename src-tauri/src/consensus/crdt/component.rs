//! The CRDT consensus as a [`Consensus`]: writes become blocks of this peer's DAG (at once,
//! or in batches kept on disk), heads are announced on the cluster's topic and again every
//! `rebroadcast_interval`, heads heard from trusted peers are fetched down to what this peer
//! holds ([`super::sync`]).
//!
//! There is no leader and no quorum: a peer writes while alone (offline first) and the
//! others take its blocks when they hear its heads. Followers (`follower_mode`) never write.
//! The network is a contract ([`CrdtNetwork`]): the cluster's libp2p host in a peer, an
//! in-process hub in tests.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch, Notify};

use super::store::CrdtStore;
use super::sync::{self, BlockSource, SyncOptions};
use super::wire::{self, Broadcast, Delta, Element};
use crate::components::{Consensus, ConsensusError, Member, Pinset, RaftStats};
use crate::consensus::store;
use crate::tasks::Tasks;
use crate::types::{Cid, PeerRole, Pin};

/// Broadcasts caused by peers joining the topic come at most this often.
const JOIN_SPACING: Duration = Duration::from_secs(5);

/// How the CRDT reaches the other peers.
#[async_trait]
pub trait CrdtNetwork: BlockSource {
    /// Publishes `broadcast` (a [`Broadcast`]'s bytes) on the cluster's topic; best effort
    /// (a peer alone publishes to nobody, and says so again later).
    async fn announce(&self, broadcast: Vec<u8>);

    /// Changes whenever a peer joins the topic (met, or back after a partition): the heads
    /// are said at once, so that it need not wait for the next rebroadcast. `None`: no such
    /// signal.
    fn joined(&self) -> Option<watch::Receiver<u64>> {
        None
    }
}

/// A broadcast heard on the topic: who signed it, and its bytes.
#[derive(Debug, Clone)]
pub struct Heard {
    pub from: String,
    pub data: Vec<u8>,
}

/// Whose deltas this peer applies.
#[derive(Clone, Debug)]
pub enum Trust {
    All,
    Only(HashSet<String>),
}

impl Trust {
    pub fn trusts(&self, peer: &str) -> bool {
        match self {
            Trust::All => true,
            Trust::Only(set) => set.contains(peer),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CrdtOptions {
    pub peer_id: String,
    /// `(max_batch_size, max_batch_age)`; `None`: every write is a block of its own.
    pub batching: Option<(u64, Duration)>,
    /// Writes a batch may hold before more are refused (`batching.max_queue_size`).
    pub max_queue_size: u64,
    /// A follower: reads and follows the pinset, never writes it.
    pub follower: bool,
    pub trust: Trust,
    pub rebroadcast_interval: Duration,
    pub sync: SyncOptions,
}

/// The CRDT consensus of one peer.
pub struct CrdtConsensus {
    store: Arc<CrdtStore>,
    state: Arc<dyn Pinset>,
    net: Arc<dyn CrdtNetwork>,
    opts: CrdtOptions,
    /// Wakes the sync (a head was heard that this peer lacks).
    wake_sync: Arc<Notify>,
    /// Wakes the batcher (the batch is full).
    batch_full: Arc<Notify>,
    members: watch::Sender<Vec<Member>>,
    /// Broadcasts dropped because their sender is not trusted, since start.
    untrusted: std::sync::atomic::AtomicU64,
}

/// Why a follower refuses writes.
fn read_only() -> ConsensusError {
    ConsensusError::Refused(
        "this peer follows the cluster (follower_mode): it reads the pinset and cannot change \
         it; pin and unpin through one of the cluster's trusted peers"
            .into(),
    )
}

impl CrdtConsensus {
    /// Starts the peer's CRDT tasks on `store`: hearing heads from `heard`, syncing,
    /// announcing, batching. A batch a crash left is published first.
    pub async fn start(
        store: Arc<CrdtStore>,
        opts: CrdtOptions,
        net: Arc<dyn CrdtNetwork>,
        heard: mpsc::Receiver<Heard>,
        tasks: &Tasks,
    ) -> Result<Arc<CrdtConsensus>, ConsensusError> {
        store::count_for(store.pool(), &opts.peer_id).await?;
        let readers = store::open_readers(store.path()).await?;
        let (members, _) = watch::channel(vec![Member {
            peer_id: opts.peer_id.clone(),
            addrs: Vec::new(),
            role: if opts.follower {
                PeerRole::Follower
            } else {
                PeerRole::Voter
            },
        }]);
        let me = Arc::new(CrdtConsensus {
            store,
            state: Arc::new(store::PinsTable::new(readers)),
            net,
            opts,
            wake_sync: Arc::new(Notify::new()),
            batch_full: Arc::new(Notify::new()),
            members,
            untrusted: Default::default(),
        });
        if me.opts.follower {
            // A follower publishes nothing: writes acknowledged when this peer was not one
            // stay in the batch, neither lost nor published where no one would hear them.
            let left = me.store.queued().await?;
            if left > 0 {
                tracing::warn!(
                    writes = left,
                    "writes acknowledged before this peer became a follower wait in its batch: \
                     run it once without follower_mode to publish them"
                );
            }
        } else if let Some(c) = me.store.flush().await? {
            tracing::info!(block = %c, "published the batch left by the last run");
        }
        tasks.spawn(me.clone().hear(heard));
        tasks.spawn(me.clone().syncing());
        tasks.spawn(me.clone().rebroadcasting());
        if me.opts.batching.is_some() {
            tasks.spawn_graceful(me.clone().batching(tasks.stopping()));
        }
        // What this peer lacks from before a restart is fetched at once.
        me.wake_sync.notify_one();
        Ok(me)
    }

    /// The store (for tests).
    #[cfg(test)]
    pub fn store(&self) -> &Arc<CrdtStore> {
        &self.store
    }

    /// Whose heads this peer hears.
    pub fn trust(&self) -> &Trust {
        &self.opts.trust
    }

    /// Broadcasts dropped because their sender is not trusted, since start (tests; the
    /// swarm's validator rejects them first, [`crate::rpc::ClusterRpc::pubsub_rejected`]).
    #[cfg(test)]
    pub fn untrusted_broadcasts(&self) -> u64 {
        self.untrusted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets the peerset (the peers whose metrics were heard recently, from the monitor).
    pub fn set_members(&self, members: Vec<Member>) {
        self.members.send_if_modified(|m| {
            let changed = *m != members;
            *m = members;
            changed
        });
    }

    async fn announce_heads(&self, heads: &[cid::Cid]) {
        if self.opts.follower || heads.is_empty() {
            return;
        }
        self.net.announce(Broadcast::of(heads).to_bytes()).await;
    }

    /// Hears broadcasts: a trusted peer's heads this peer lacks are wanted, and the sync
    /// woken (also for heads wanted already: the peer saying them can give them). Anything else is dropped (told in the log at debug level: the topic is open
    /// to anyone holding the secret, or to everyone in a collaborative cluster).
    async fn hear(self: Arc<Self>, mut heard: mpsc::Receiver<Heard>) {
        while let Some(h) = heard.recv().await {
            if !self.opts.trust.trusts(&h.from) {
                self.untrusted
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(from = %h.from, "CRDT broadcast from an untrusted peer dropped");
                continue;
            }
            let heads = match Broadcast::heads_from_bytes(&h.data) {
                Ok(heads) => heads,
                Err(e) => {
                    tracing::debug!(from = %h.from, error = %e, "CRDT broadcast unreadable");
                    continue;
                }
            };
            let mut lacking = false;
            for c in heads {
                match self.store.want(&c).await {
                    Ok(l) => lacking |= l,
                    Err(e) => tracing::warn!(error = %e, "CRDT store"),
                }
            }
            // Lacking a head a peer just said it has, or any block at all: fetch now (what
            // could not be had before may be had from the peer that spoke).
            if lacking || self.store.wants_any().await.unwrap_or(true) {
                self.wake_sync.notify_one();
            }
        }
    }

    /// Fetches what is wanted whenever woken (a head heard, a peer met), and every
    /// rebroadcast interval (what could not be had is tried again).
    async fn syncing(self: Arc<Self>) {
        let mut joined = self.net.joined();
        // After a round that left blocks wanted, the next comes soon (1 s, doubling up to the
        // rebroadcast interval): a peer that just went away or a connection being replaced
        // should not hold the sync up for a whole interval.
        let mut retry: Option<Duration> = None;
        loop {
            let wait = retry.unwrap_or(self.opts.rebroadcast_interval);
            let woken = tokio::time::timeout(wait, self.wake_sync.notified());
            // A peer met or back may have what could not be had (when anything is wanted;
            // joins come at most once per JOIN_SPACING).
            match joined.as_mut() {
                Some(j) => tokio::select! {
                    _ = woken => {}
                    r = j.changed() => {
                        if r.is_err() {
                            joined = None;
                        }
                        tokio::time::sleep(JOIN_SPACING / 5).await;
                        if let Some(j) = joined.as_mut() {
                            j.borrow_and_update();
                        }
                        if !self.store.wants_any().await.unwrap_or(true) {
                            continue;
                        }
                    }
                },
                None => {
                    let _ = woken.await;
                }
            }
            match sync::sync(&self.store, self.net.as_ref(), self.opts.sync).await {
                Ok(r) => {
                    if r.stored > 0 || r.failed > 0 {
                        tracing::debug!(
                            stored = r.stored,
                            failed = r.failed,
                            wanted = r.wanted,
                            "CRDT sync"
                        );
                    }
                    // What was taken is said on (as this peer's new heads): a peer that
                    // missed the first broadcast, not connected to the writer, learns it now
                    // rather than at the next rebroadcast. Once per round, never by followers.
                    if r.stored > 0 {
                        if let Ok((heads, _)) = self.store.heads().await {
                            self.announce_heads(&heads).await;
                        }
                    }
                    retry = (r.wanted > 0).then(|| {
                        retry
                            .map_or(Duration::from_secs(1), |d| d * 2)
                            .min(self.opts.rebroadcast_interval)
                    });
                }
                Err(e) => tracing::warn!(error = %e, "CRDT sync"),
            }
        }
    }

    /// Says the heads again every `rebroadcast_interval` (±30 %, as go-ds-crdt), so that
    /// peers that missed a broadcast (offline, partitioned, new) learn them; and at once
    /// when a peer joins the topic (go-ds-crdt waits for the interval: a peer back from a
    /// partition waited up to a minute and more).
    async fn rebroadcasting(self: Arc<Self>) {
        use rand::Rng;
        let mut joined = self.net.joined();
        // The first join is answered at once.
        let now = tokio::time::Instant::now();
        let mut last = now.checked_sub(JOIN_SPACING).unwrap_or(now);
        loop {
            let base = self.opts.rebroadcast_interval.as_secs_f64();
            let wait = base * rand::thread_rng().gen_range(0.7..1.3);
            let timer = tokio::time::sleep(Duration::from_secs_f64(wait.max(0.01)));
            match joined.as_mut() {
                Some(j) => tokio::select! {
                    _ = timer => {}
                    r = j.changed() => {
                        if r.is_err() {
                            joined = None;
                        }
                        // Peers joining (or a peer joining and leaving over and over) make one
                        // broadcast per JOIN_SPACING at most: those in between are coalesced.
                        tokio::time::sleep_until(last + JOIN_SPACING).await;
                        if let Some(j) = joined.as_mut() {
                            j.borrow_and_update();
                        }
                    }
                },
                None => timer.await,
            }
            last = tokio::time::Instant::now();
            match self.store.heads().await {
                Ok((heads, _)) => self.announce_heads(&heads).await,
                Err(e) => tracing::warn!(error = %e, "CRDT heads"),
            }
        }
    }

    /// Publishes the batch when it is full or its oldest write reaches `max_batch_age`; at
    /// shutdown, what it holds.
    async fn batching(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let Some((_, age)) = self.opts.batching else {
            return;
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    self.flush().await;
                    return;
                }
                _ = self.batch_full.notified() => {}
                _ = tokio::time::sleep(age) => {}
            }
            self.flush().await;
        }
    }

    async fn flush(&self) {
        if self.opts.follower {
            return;
        }
        match self.store.flush().await {
            Ok(Some(c)) => self.announce_heads(&[c]).await,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "CRDT batch not published (kept on disk)"),
        }
    }

    /// One write: a block of its own, announced; or queued in the batch.
    async fn write(&self, key: String, value: Option<Vec<u8>>) -> Result<(), ConsensusError> {
        if self.opts.follower {
            return Err(read_only());
        }
        if let Some((size, _)) = self.opts.batching {
            if self.store.queued().await? >= self.opts.max_queue_size {
                return Err(ConsensusError::Unavailable {
                    attempts: 1,
                    message: format!(
                        "the CRDT batch holds {} writes (batching.max_queue_size): try again \
                         once it is published",
                        self.opts.max_queue_size
                    ),
                });
            }
            let n = self.store.queue(&key, value.as_deref()).await?;
            if n >= size {
                self.batch_full.notify_one();
            }
            return Ok(());
        }
        let delta = match value {
            Some(v) => Delta {
                elements: vec![Element {
                    key,
                    id: String::new(),
                    value: v,
                }],
                ..Delta::default()
            },
            None => Delta {
                tombstones: self.store.tombstones(&key).await?,
                ..Delta::default()
            },
        };
        if let Some(c) = self.store.publish(delta).await? {
            self.announce_heads(&[c]).await;
        }
        Ok(())
    }
}

#[async_trait]
impl Consensus for CrdtConsensus {
    async fn log_pin(&self, pin: Pin) -> Result<(), ConsensusError> {
        let value = wire::pin_to_bytes(&pin).map_err(|e| ConsensusError::BadInput(e.0))?;
        self.write(wire::pin_key(&pin.cid), Some(value)).await
    }

    async fn log_unpin(&self, cid: Cid) -> Result<(), ConsensusError> {
        self.write(wire::pin_key(&cid), None).await
    }

    /// Nothing to wait for: there is no leader to ask, and a peer's own writes are in its
    /// state once acknowledged (batched ones once published). Others' writes arrive as they
    /// are heard: the CRDT is eventually consistent.
    async fn catch_up(&self) -> Result<(), ConsensusError> {
        Ok(())
    }

    fn state(&self) -> Arc<dyn Pinset> {
        self.state.clone()
    }

    /// Always: a CRDT peer reads and (unless a follower) writes without anyone else.
    fn is_ready(&self) -> bool {
        true
    }

    fn leader(&self) -> Option<String> {
        None
    }

    fn members(&self) -> Vec<Member> {
        self.members.borrow().clone()
    }

    fn watch_members(&self) -> watch::Receiver<Vec<Member>> {
        self.members.subscribe()
    }

    async fn step_down(&self) {
        if self.opts.batching.is_some() {
            self.flush().await;
        }
    }

    async fn rm_peer(&self, _peer: &str) -> Result<(), ConsensusError> {
        Err(ConsensusError::Refused(
            "a CRDT cluster has no membership to remove a peer from: its peerset is the peers \
             heard recently (stop the peer, or leave it out of trusted_peers)"
                .into(),
        ))
    }

    async fn set_role(&self, _peer: &str, _role: PeerRole) -> Result<(), ConsensusError> {
        Err(ConsensusError::Refused(
            "a CRDT cluster has no roles to change: trusted peers write (trusted_peers), \
             followers read (follower_mode in their own configuration)"
                .into(),
        ))
    }

    async fn stats(&self) -> RaftStats {
        RaftStats::default()
    }
}

#[cfg(test)]
mod tests;
