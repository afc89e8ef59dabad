//! The CRDT consensus as a [`Consensus`]: writes become blocks of this peer's DAG (at once,
//! or in batches kept on disk), heads are announced on the cluster's topic and again every
//! `rebroadcast_interval`, heads heard from trusted peers are fetched down to what this peer
//! holds ([`super::sync`]).
//!
//! There is no leader and no quorum: a peer writes while alone (offline first) and the
//! others take its blocks when they hear its heads. Followers (`follower_mode`) never write.
//! The network is a contract ([`CrdtNetwork`]): the cluster's libp2p host in a peer, an
//! in-process hub in tests.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch, Notify};

use super::bans::Bans;
use super::checkpoint::{self, LoadError, Loaded};
use super::store::CrdtStore;
use super::sync::{self, BlockSource, SyncOptions};
use super::wire::{self, Broadcast, Delta, Element};
use crate::components::{Consensus, ConsensusError, Member, Pinset, RaftStats};
use crate::consensus::store;
use crate::tasks::Tasks;
use crate::types::{Cid, PeerRole, Pin};

/// Tries of a load (whichever checkpoint each takes) before a peer gives it up and syncs
/// deltas: waits of 1 s doubling to 30 s between them, each try bounded by the fetch
/// timeout per chunk (a few minutes in all, when no peer answers).
const LOAD_TRIES: u32 = 7;

/// A wanted block that failed to come this many times while a trusted peer offers a
/// checkpoint (not merged before) makes a peer that drops old deltas merge it: the block's
/// bytes may be gone from every peer, below a checkpoint (`crdt.drop_old_deltas`).
const STUCK_TRIES: u32 = 3;

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
    /// The cluster's topic (a checkpoint names the cluster it is of).
    pub topic: String,
    /// The key checkpoints are signed with; `None`: this peer makes none.
    pub keypair: Option<libp2p_identity::Keypair>,
    /// A checkpoint is made once the peer holds this many blocks more than at its last one
    /// (`crdt.checkpoint_every`; 0: never).
    pub checkpoint_every: u64,
    /// Whose checkpoints this peer loads (peer ids): those named in `trusted_peers` and
    /// those it bootstraps from, never "anyone" (a checkpoint that leaves pins out would
    /// keep them from every peer that loads it, for good).
    pub signers: HashSet<String>,
    /// `crdt.drop_old_deltas`: the bytes of the blocks this peer's checkpoint covers are
    /// dropped once every trusted peer is heard announcing heads above it; a peer wanting
    /// blocks no peer gives merges a checkpoint offered instead. Needs `trust` to be
    /// [`Trust::Only`] (the config refuses `"*"`).
    pub drop_old_deltas: bool,
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
    /// A checkpoint is being loaded: the sync waits (what it would fetch, the checkpoint
    /// covers), and the peer is not ready.
    loading: AtomicBool,
    /// The checkpoint being loaded is merged into the set this peer holds: the peer stays
    /// ready (its pinset is the cluster's, short of what the checkpoint adds).
    merging: AtomicBool,
    /// The heads each trusted peer announced last (`drop_old_deltas` only; one entry per
    /// trusted peer at most).
    heard_heads: std::sync::Mutex<HashMap<String, Vec<cid::Cid>>>,
    /// The newest checkpoint a trusted peer offered (a follower drops old deltas below it:
    /// it makes none of its own).
    latest_offer: std::sync::Mutex<Option<cid::Cid>>,
    /// When a merge was last begun ([`Self::should_merge`]).
    last_merge: std::sync::Mutex<Option<std::time::Instant>>,
    /// The checkpoint to load (the loader's work).
    to_load: watch::Sender<Option<cid::Cid>>,
    /// The checkpoint this peer offers in its broadcasts.
    offered: std::sync::Mutex<Option<cid::Cid>>,
    /// Checkpoints refused, given up, merged or found of no use to merge in this run (not
    /// tried again; a few at most).
    given_up: std::sync::Mutex<HashSet<cid::Cid>>,
    /// The peers banned by `peers rm` (set by [`super::start`]; without it, none can be).
    bans: std::sync::OnceLock<Arc<Bans>>,
}

/// A checkpoint offered, as a follower drops below it.
struct Offered {
    cid: cid::Cid,
    /// Its heads (none: not one to drop below).
    heads: Vec<cid::Cid>,
    /// Dropped below it already.
    done: bool,
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
        let offered = checkpoint::current(&store).await?;
        let me = Arc::new(CrdtConsensus {
            store,
            state: Arc::new(store::PinsTable::new(readers)),
            net,
            opts,
            wake_sync: Arc::new(Notify::new()),
            batch_full: Arc::new(Notify::new()),
            members,
            untrusted: Default::default(),
            loading: AtomicBool::new(false),
            merging: AtomicBool::new(false),
            heard_heads: Default::default(),
            last_merge: Default::default(),
            latest_offer: Default::default(),
            to_load: watch::channel(None).0,
            offered: std::sync::Mutex::new(offered),
            given_up: Default::default(),
            bans: Default::default(),
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
        // A load cut short by a stop resumes before anything else is fetched.
        if let Some(c) = checkpoint::loading(&me.store).await? {
            tracing::info!(checkpoint = %c, "resuming the CRDT checkpoint being loaded");
            me.merging
                .store(checkpoint::merging(&me.store).await?, Ordering::SeqCst);
            me.loading.store(true, Ordering::SeqCst);
            me.to_load.send_replace(Some(c));
        }
        tasks.spawn(me.clone().loading_checkpoints());
        tasks.spawn(me.clone().making_checkpoints());
        tasks.spawn(me.clone().filling_in_history());
        tasks.spawn(me.clone().dropping_old_deltas());
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

    /// Keeps the bans of `peers rm` in `bans` (once).
    pub fn keep_bans(&self, bans: Arc<Bans>) {
        let _ = self.bans.set(bans);
    }

    /// Whether `peer` was banned by `peers rm`.
    pub fn banned(&self, peer: &str) -> bool {
        self.bans.get().is_some_and(|b| b.contains(peer))
    }

    /// Sets the peerset (the peers whose metrics were heard recently, from the monitor),
    /// banned peers left out (one banned while the peerset was being worked out).
    pub fn set_members(&self, mut members: Vec<Member>) {
        members.retain(|m| !self.banned(&m.peer_id));
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
        let offered = *self.offered.lock().unwrap();
        // Wanting nothing now, this peer holds every block below `heads` (read before):
        // blocks are never given up, and each stored block's links are stored or wanted.
        let complete = !self.store.wants_any().await.unwrap_or(true);
        let b = Broadcast {
            complete,
            ..Broadcast::with_checkpoint(heads, offered.as_ref())
        };
        self.net.announce(b.to_bytes()).await;
    }

    /// Loads the checkpoints it is given, one at a time. A load that cannot be completed
    /// now is tried again (1 s, doubling up to 30 s), keeping what it had, or moves on to
    /// another checkpoint offered meanwhile; after [`LOAD_TRIES`] tries in all the peer
    /// gives it up and syncs deltas (slower, but it never waits on a checkpoint no peer can
    /// give, nor goes from one to another for good).
    async fn loading_checkpoints(self: Arc<Self>) {
        let mut given = self.to_load.subscribe();
        loop {
            let Some(mut c) = *given.borrow_and_update() else {
                if given.changed().await.is_err() {
                    return;
                }
                continue;
            };
            let started = std::time::Instant::now();
            let mut wait = Duration::from_secs(1);
            let mut tries = 0;
            loop {
                let r = checkpoint::load(
                    &self.store,
                    &c,
                    self.net.as_ref(),
                    &self.opts.topic,
                    &|p| self.is_signer(p),
                    self.opts.sync.fetch_timeout,
                )
                .await;
                match r {
                    Ok(Loaded::Applied { pins, blocks }) => {
                        tracing::info!(
                            checkpoint = %c,
                            pins,
                            blocks,
                            ms = started.elapsed().as_millis() as u64,
                            "CRDT checkpoint loaded"
                        );
                        *self.offered.lock().unwrap() = Some(c);
                        break;
                    }
                    Ok(Loaded::Merged { keys }) => {
                        self.tried(c);
                        tracing::info!(
                            checkpoint = %c,
                            keys,
                            ms = started.elapsed().as_millis() as u64,
                            "CRDT checkpoint merged (blocks wanted were no longer given)"
                        );
                        break;
                    }
                    Ok(Loaded::Unneeded) => {
                        self.tried(c);
                        tracing::info!(checkpoint = %c, "CRDT checkpoint not merged: it covers none of the blocks wanted");
                        break;
                    }
                    Ok(Loaded::NotEmpty) => {
                        tracing::info!(checkpoint = %c, "CRDT checkpoint not loaded: this peer holds blocks already, it syncs deltas");
                        break;
                    }
                    Err(LoadError::Refused(e)) => {
                        tracing::warn!(checkpoint = %c, error = %e, "CRDT checkpoint refused: this peer syncs deltas");
                        self.give_up(c).await;
                        break;
                    }
                    Err(e) => {
                        tries += 1;
                        if tries >= LOAD_TRIES {
                            tracing::warn!(checkpoint = %c, error = %e, tries, "CRDT checkpoint given up: this peer syncs deltas");
                            self.give_up(c).await;
                            break;
                        }
                        tracing::info!(checkpoint = %c, error = %e, "CRDT checkpoint: trying again");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(30));
                        if let Some(newer) = *given.borrow_and_update() {
                            if newer != c {
                                tracing::info!(checkpoint = %newer, "loading the CRDT checkpoint offered since instead");
                                c = newer;
                            }
                        }
                    }
                }
            }
            self.to_load.send_replace(None);
            given.borrow_and_update();
            self.merging.store(false, Ordering::SeqCst);
            self.loading.store(false, Ordering::SeqCst);
            self.wake_sync.notify_one();
        }
    }

    /// Fills in the history a loaded checkpoint covers (a pass every rebroadcast interval,
    /// at most every 30 s, while no checkpoint loads and no block is wanted: the sync comes
    /// first), so that this peer gives the whole DAG on as IPFS Cluster's peers expect.
    async fn filling_in_history(self: Arc<Self>) {
        if self.opts.drop_old_deltas {
            return;
        }
        let every = self.opts.rebroadcast_interval.min(Duration::from_secs(30));
        loop {
            tokio::time::sleep(every).await;
            if self.loading.load(Ordering::SeqCst) || self.store.wants_any().await.unwrap_or(true) {
                continue;
            }
            match checkpoint::fill_in_history(
                &self.store,
                self.net.as_ref(),
                8,
                self.opts.sync.fetch_timeout,
            )
            .await
            {
                Ok(p) if p.filled > 0 || p.missing > 0 => tracing::info!(
                    filled = p.filled,
                    missing = p.missing,
                    "CRDT history below the checkpoint filled in"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "CRDT history not filled in"),
            }
        }
    }

    /// Drops the bytes of the blocks this peer's checkpoint covers once every trusted peer
    /// (but this one) announced heads that this peer holds and that are above each head of
    /// it (so every writer holds all it covers: none will ask for them); looked at every
    /// rebroadcast interval, at most every 30 s. A peer that lacks them (new, or back from
    /// long away) loads or merges a checkpoint. `crdt.drop_old_deltas` only.
    async fn dropping_old_deltas(self: Arc<Self>) {
        let (true, Trust::Only(trusted)) = (self.opts.drop_old_deltas, &self.opts.trust) else {
            return;
        };
        let writers: Vec<String> = trusted
            .iter()
            .filter(|p| **p != self.opts.peer_id)
            .cloned()
            .collect();
        let every = self.opts.rebroadcast_interval.min(Duration::from_secs(30));
        let mut waiting_on: Option<String> = None;
        let mut offered: Option<Offered> = None;
        loop {
            tokio::time::sleep(every).await;
            if self.loading.load(Ordering::SeqCst) {
                continue;
            }
            if self.opts.follower {
                match self.drop_as_follower(&writers, &mut offered).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        blocks = n,
                        "CRDT deltas below the checkpoint offered dropped"
                    ),
                    Err(e) => tracing::warn!(error = %e, "CRDT deltas not dropped"),
                }
                continue;
            }
            let f = match checkpoint::frontier(&self.store).await {
                Ok(Some(f)) if f.to_drop() => f,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "CRDT store");
                    continue;
                }
            };
            match self.stable_for(&f.heads, &writers).await {
                Ok(Ok(())) => {
                    waiting_on = None;
                    match checkpoint::drop_covered(&self.store, &f).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(blocks = n, "CRDT deltas below the checkpoint dropped")
                        }
                        Err(e) => tracing::warn!(error = %e, "CRDT deltas not dropped"),
                    }
                }
                Ok(Err(peer)) => {
                    if waiting_on.as_ref() != Some(&peer) {
                        tracing::info!(%peer, "CRDT deltas below the checkpoint kept: this trusted peer has not been heard above it yet");
                        waiting_on = Some(peer);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "CRDT store"),
            }
        }
    }

    /// A follower makes no checkpoint: it drops the deltas below the newest one a trusted
    /// peer offers (its heads read from its signed manifest, once), once it holds those
    /// heads and wants nothing (so it holds all below them) and every writer is heard above
    /// them; once per checkpoint. How many blocks it dropped.
    async fn drop_as_follower(
        &self,
        writers: &[String],
        offered: &mut Option<Offered>,
    ) -> Result<u64, ConsensusError> {
        let Some(c) = *self.latest_offer.lock().unwrap() else {
            return Ok(0);
        };
        if offered.as_ref().map(|o| o.cid) != Some(c) {
            let heads = match checkpoint::offered_heads(
                &self.store,
                &c,
                self.net.as_ref(),
                &self.opts.topic,
                &|p| self.is_signer(p),
                self.opts.sync.fetch_timeout,
            )
            .await
            {
                Ok(h) => h,
                // Not had now: asked again next time.
                Err(LoadError::Fetch(e)) => {
                    tracing::debug!(checkpoint = %c, error = %e, "CRDT checkpoint offered not had");
                    return Ok(0);
                }
                // Not one to drop below: remembered, with no heads.
                Err(e) => {
                    tracing::debug!(checkpoint = %c, error = %e, "CRDT checkpoint offered refused");
                    Vec::new()
                }
            };
            *offered = Some(Offered {
                cid: c,
                heads,
                done: false,
            });
        }
        let Some(o) = offered.as_mut().filter(|o| !o.done && !o.heads.is_empty()) else {
            return Ok(0);
        };
        if self.store.wants_any().await? {
            return Ok(0);
        }
        for h in &o.heads {
            if !self.store.has_block(h).await? {
                return Ok(0);
            }
        }
        if self.stable_for(&o.heads, writers).await?.is_err() {
            return Ok(0);
        }
        let n = checkpoint::drop_below(&self.store, &o.heads).await?;
        o.done = true;
        Ok(n)
    }

    /// Whether every peer of `writers` was heard announcing heads above `frontier` (`Err`:
    /// the first that was not).
    async fn stable_for(
        &self,
        frontier: &[cid::Cid],
        writers: &[String],
    ) -> Result<Result<(), String>, ConsensusError> {
        for w in writers {
            let heads = self.heard_heads.lock().unwrap().get(w).cloned();
            let reached = match heads {
                Some(h) => checkpoint::reached_by(&self.store, frontier, &h).await?,
                None => false,
            };
            if !reached {
                return Ok(Err(w.clone()));
            }
        }
        Ok(Ok(()))
    }

    /// Whether checkpoints signed by `p` are taken ([`CrdtOptions::signers`]).
    fn is_signer(&self, p: &libp2p_identity::PeerId) -> bool {
        self.opts.signers.contains(&p.to_string())
    }

    /// Checkpoint `c` is not loaded nor merged again in this run.
    fn tried(&self, c: cid::Cid) {
        let mut g = self.given_up.lock().unwrap();
        if g.len() >= 64 {
            g.clear();
        }
        g.insert(c);
    }

    /// Gives checkpoint `c` up: what was kept of it is dropped, and it is not loaded again
    /// in this run.
    async fn give_up(&self, c: cid::Cid) {
        self.tried(c);
        if let Err(e) = checkpoint::abandon(&self.store).await {
            tracing::warn!(error = %e, "CRDT store");
        }
    }

    /// Makes a checkpoint whenever this peer (a writer with a key) holds
    /// `checkpoint_every` blocks more than at its last one and wants none; looked at every
    /// rebroadcast interval (at most every 10 s) and at start.
    async fn making_checkpoints(self: Arc<Self>) {
        let (Some(key), false, every @ 1..) = (
            self.opts.keypair.clone(),
            self.opts.follower,
            self.opts.checkpoint_every,
        ) else {
            return;
        };
        loop {
            if !self.loading.load(Ordering::SeqCst) {
                if let Err(e) = self.checkpoint_if_due(&key, every).await {
                    tracing::warn!(error = %e, "CRDT checkpoint not made");
                }
            }
            tokio::time::sleep(self.opts.rebroadcast_interval.min(Duration::from_secs(10))).await;
        }
    }

    /// Makes a checkpoint signed with `key` if one is due ([`checkpoint::due`]).
    async fn checkpoint_if_due(
        &self,
        key: &libp2p_identity::Keypair,
        every: u64,
    ) -> Result<(), ConsensusError> {
        let pins = self.state.counts().await?.total;
        if !checkpoint::due(&self.store, every, pins).await? {
            return Ok(());
        }
        let started = std::time::Instant::now();
        if let Some(m) = checkpoint::make(&self.store, &self.opts.topic, key).await? {
            tracing::info!(
                checkpoint = %m.cid,
                blocks = m.blocks,
                elements = m.elems,
                chunks = m.chunks,
                ms = started.elapsed().as_millis() as u64,
                "CRDT checkpoint made"
            );
            *self.offered.lock().unwrap() = Some(m.cid);
        }
        Ok(())
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
            let wire::Announced {
                heads,
                checkpoint: offered,
                complete,
            } = match Broadcast::parse(&h.data) {
                Ok(parsed) => parsed,
                Err(e) => {
                    tracing::debug!(from = %h.from, error = %e, "CRDT broadcast unreadable");
                    continue;
                }
            };
            // Heads said by a peer holding every block below them (a peer part-way through
            // a sync holds its newest heads and not all below: it would still ask). Kept
            // until the next such: what a peer holds it keeps. One entry per trusted peer.
            if self.opts.drop_old_deltas
                && complete
                && !heads.is_empty()
                && matches!(self.opts.trust, Trust::Only(_))
            {
                self.heard_heads
                    .lock()
                    .unwrap()
                    .insert(h.from.clone(), heads.clone());
            }
            if let (true, Some(c)) = (self.opts.drop_old_deltas, offered) {
                *self.latest_offer.lock().unwrap() = Some(c);
            }
            // A peer holding no block loads the checkpoint offered, then syncs only what
            // came after it (a peer that names no signer loads none).
            let offered = offered.filter(|c| {
                !self.opts.signers.is_empty() && !self.given_up.lock().unwrap().contains(c)
            });
            if let Some(c) = offered {
                if self.loading.load(Ordering::SeqCst) {
                    // The one loading may not be had: the newest offered is tried next.
                    self.to_load.send_if_modified(|cur| {
                        let newer = cur.is_some() && *cur != Some(c);
                        if newer {
                            *cur = Some(c);
                        }
                        newer
                    });
                } else if !self.store.holds_blocks().await.unwrap_or(true) {
                    tracing::info!(checkpoint = %c, from = %h.from, "loading a CRDT checkpoint");
                    self.loading.store(true, Ordering::SeqCst);
                    self.to_load.send_replace(Some(c));
                } else if self.should_merge(&c).await {
                    tracing::info!(checkpoint = %c, from = %h.from, "merging a CRDT checkpoint: blocks wanted are no longer given");
                    match checkpoint::begin_merge(&self.store, &c).await {
                        Ok(()) => {
                            self.merging.store(true, Ordering::SeqCst);
                            self.loading.store(true, Ordering::SeqCst);
                            self.to_load.send_replace(Some(c));
                        }
                        Err(e) => tracing::warn!(error = %e, "CRDT store"),
                    }
                }
            }
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

    /// Whether checkpoint `c`, offered by a trusted peer, is to be merged into the set this
    /// peer holds: it drops old deltas (so do the others), a block it wants failed to come
    /// [`STUCK_TRIES`] times, `c` is neither its own checkpoint nor merged or found of no use
    /// before, and no merge was begun in the last ten rebroadcast intervals (each fetches a
    /// whole checkpoint: a peer that stays stuck, a writer away with blocks only it holds,
    /// does not fetch one after the other).
    async fn should_merge(&self, c: &cid::Cid) -> bool {
        if !self.opts.drop_old_deltas || !self.store.stuck(STUCK_TRIES).await.unwrap_or(false) {
            return false;
        }
        if self
            .last_merge
            .lock()
            .unwrap()
            .is_some_and(|t| t.elapsed() < self.opts.rebroadcast_interval * 10)
        {
            return false;
        }
        let current = checkpoint::current(&self.store).await.ok().flatten();
        let merged = checkpoint::merged(&self.store).await.ok().flatten();
        if current.as_ref() == Some(c) || merged.as_ref() == Some(c) {
            return false;
        }
        *self.last_merge.lock().unwrap() = Some(std::time::Instant::now());
        true
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
            // A checkpoint being loaded covers what the sync would fetch (woken after).
            if self.loading.load(Ordering::SeqCst) {
                continue;
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

    /// A CRDT peer reads and (unless a follower) writes without anyone else: always, but
    /// while it loads a checkpoint (its pinset is not yet the cluster's; one merged into
    /// its set only adds to it, and writes wait for the merge's transaction).
    fn is_ready(&self) -> bool {
        !self.loading.load(Ordering::SeqCst) || self.merging.load(Ordering::SeqCst)
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

    /// A CRDT cluster has no membership to take a peer out of: this peer bans it (see
    /// [`super::bans`]), for good, and it leaves this peer's peerset at once.
    async fn rm_peer(&self, peer: &str) -> Result<(), ConsensusError> {
        if peer == self.opts.peer_id {
            return Err(ConsensusError::Refused(
                "a CRDT peer cannot remove itself: stop it instead".into(),
            ));
        }
        let Some(bans) = self.bans.get().cloned() else {
            return Err(ConsensusError::Refused(
                "a CRDT cluster has no membership to remove a peer from: its peerset is the \
                 peers heard recently"
                    .into(),
            ));
        };
        let p = peer.to_string();
        let added = tokio::task::spawn_blocking(move || bans.add(&p))
            .await
            .map_err(|e| ConsensusError::Storage(format!("banning {peer}: {e}")))??;
        if added {
            tracing::warn!(%peer, "peer banned by `peers rm`: its metrics, calls and connections are refused from now on");
        }
        // Out of the peerset at once (it leaves out banned peers).
        self.set_members(self.members());
        Ok(())
    }

    /// Whose deltas this peer applies (IPFS Cluster's `IsTrustedPeer`): itself and its
    /// trusted peers, every peer with `trusted_peers: ["*"]`.
    fn is_trusted(&self, peer: &str) -> bool {
        peer == self.opts.peer_id || self.opts.trust.trusts(peer)
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
