//! The consensus component: openraft over the SQLite store, started as the peer's history or
//! its bootstrap says, and the [`Consensus`] contract on top of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use openraft::{Raft, SnapshotPolicy};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::admission::{Admission, Verdict};
use super::committer::{Committer, GROUP_BYTES, MAX_OPS};
use super::link::LeaderLink;
use super::network::{LeaderOp, NetworkFactory, RaftTransport};
use super::offline;
use super::store::{self, db_path};
use super::typ::{node_id, parse_node_id, ClusterNode, NodeId, Op, TypeConfig};
use crate::components::{Consensus, ConsensusError, Member, Pinset, RaftStats, StateChange};
use crate::config::RaftConfig;
use crate::tasks::Tasks;
use crate::types::{Cid, PeerRole, Pin};

/// How a peer with no Raft history starts.
#[derive(Clone, Debug)]
pub enum Bootstrap {
    /// A new cluster of this one voter (`init` + `daemon`).
    SingleVoter,
    /// A fixed cluster of these voters (`consensus.raft.init_peerset`); every one of them
    /// initializes with the same membership.
    Peerset(Vec<ClusterNode>),
    /// Wait to be added by an existing cluster (`daemon --bootstrap`).
    Join,
}

impl Bootstrap {
    /// `daemon --bootstrap` joins (after backing up and cleaning any previous state);
    /// `init_peerset` starts a fixed cluster whose members' addresses come from the
    /// peerstore; otherwise a new cluster of one voter.
    pub async fn decide(
        folder: &Path,
        cfg: &RaftConfig,
        joining: bool,
        me: &ClusterNode,
        known: &BTreeMap<PeerId, Vec<Multiaddr>>,
    ) -> Result<Bootstrap, ConsensusError> {
        if joining {
            if let Some(b) = offline::cleanup(folder, cfg.backups_rotate).await? {
                tracing::info!(
                    "previous state backed up to {} and cleaned for the bootstrap",
                    b.display()
                );
            }
            return Ok(Bootstrap::Join);
        }
        if cfg.init_peerset.is_empty() {
            return Ok(Bootstrap::SingleVoter);
        }
        let mut nodes = Vec::new();
        for id in &cfg.init_peerset {
            let p: PeerId = id.parse().map_err(|e| {
                ConsensusError::BadInput(format!("consensus.raft.init_peerset: {id:?}: {e}"))
            })?;
            let addrs = if p.to_string() == me.peer_id {
                me.addrs.clone()
            } else {
                known
                    .get(&p)
                    .into_iter()
                    .flatten()
                    .map(|a| a.to_string())
                    .collect()
            };
            nodes.push(ClusterNode {
                peer_id: id.clone(),
                addrs,
                history: None,
            });
        }
        Ok(Bootstrap::Peerset(nodes))
    }
}

pub struct ConsensusOptions {
    pub folder: PathBuf,
    pub config: RaftConfig,
    pub peer_id: PeerId,
    pub addrs: Vec<String>,
    pub transport: Arc<dyn RaftTransport>,
    pub changes: crate::state::feed::FeedSender,
    pub bootstrap: Bootstrap,
    /// Whether being a learner counts as ready: false only while joining as a voter, which
    /// is "staging" until promoted. A follower, or any member restarting, is ready as it is.
    pub learner_is_ready: bool,
}

pub struct RaftConsensus {
    raft: Raft<TypeConfig>,
    state: Arc<store::PinsTable>,
    pub(super) me: NodeId,
    pub(super) me_node: ClusterNode,
    pub(super) cfg: RaftConfig,
    ready: watch::Receiver<bool>,
    members: watch::Receiver<Vec<Member>>,
    pub(super) transport: Arc<dyn RaftTransport>,
    pub(super) tasks: Tasks,
    pool: sqlx::SqlitePool,
    /// Cancelled when this peer learns it was removed from the cluster.
    removed: CancellationToken,
    /// Cancelled when Raft stopped for good on an error (a storage write that failed: a full
    /// disk); see [`RaftConsensus::stopped`].
    stopped: CancellationToken,
    /// The snapshot files' folder, and how long the last build took (ms), for metrics.
    snapshots: std::path::PathBuf,
    snapshot_ms: Arc<std::sync::atomic::AtomicU64>,
    /// Whether this peer may vote (see `admission`).
    pub(super) admission: Arc<Admission>,
    /// Whether a refused Raft message was logged already (see `RaftConsensus::refuse`).
    pub(super) refused_once: std::sync::atomic::AtomicBool,
    /// The leader last followed, and when (see `senders`).
    pub(super) last_leader: Arc<super::senders::LastLeader>,
    /// openraft's settings (its election timeout, for `senders`).
    pub(super) raft_settings: std::sync::Arc<openraft::Config>,
    /// The way to the leader.
    pub(super) link: LeaderLink,
    /// Where this peer's writes queue to be committed together.
    committer: Committer,
    /// The term in which this peer last became the leader, and when (see `handover`).
    pub(super) leader_since: LeaderSince,
}

/// openraft's settings from IPFS Cluster's `consensus.raft`, for links of real networks.
///
/// In openraft 0.9 the heartbeat interval is also how long the leader waits for each
/// AppendEntries answer, so it cannot be a tenth of the follower's timeout as in hashicorp's
/// Raft: on a link with 100 ms round trips nothing would ever commit. Heartbeats go every
/// third of the election timeout (333 ms by default), still three chances before a follower
/// starts an election; raise `election_timeout` on slower links. A snapshot has its own,
/// longer limit (`network_timeout`), sent in chunks.
fn raft_config(cfg: &RaftConfig) -> Result<openraft::Config, ConsensusError> {
    let ms = |d: crate::config::GoDuration| d.get().as_millis() as u64;
    let election = ms(cfg.election_timeout).max(150);
    // `heartbeat_timeout` (a follower's wait, in hashicorp's terms) has no openraft
    // counterpart: the election timeout is what a follower waits.
    let heartbeat = election / 3;
    let c = openraft::Config {
        cluster_name: "ipfs-cluster".into(),
        heartbeat_interval: heartbeat,
        election_timeout_min: election,
        election_timeout_max: election * 2,
        install_snapshot_timeout: ms(cfg.network_timeout).max(heartbeat),
        max_payload_entries: cfg.max_append_entries.max(1),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_threshold.max(1)),
        max_in_snapshot_log_to_keep: cfg.trailing_logs,
        ..Default::default()
    };
    c.validate()
        .map_err(|e| ConsensusError::Storage(format!("invalid consensus.raft settings: {e}")))
}

impl RaftConsensus {
    /// Opens the Raft database and starts Raft. A peer with history resumes with its stored
    /// membership; a fresh one starts as `bootstrap` says.
    pub async fn start(opts: ConsensusOptions, tasks: &Tasks) -> Result<Self, ConsensusError> {
        let storage = |e: String| ConsensusError::Storage(e);
        let db = db_path(&opts.folder);
        crate::config::create_private_dir(db.parent().unwrap())
            .map_err(|e| storage(format!("{}: {e}", db.display())))?;
        let pool = store::open(&db).await?;
        let fresh = !store::has_history(&pool)
            .await
            .map_err(|e| storage(format!("{}: {e}", db.display())))?;
        store::count_for(&pool, &opts.peer_id.to_string()).await?;
        let state = Arc::new(store::PinsTable::new(store::open_readers(&db).await?));
        let changes = opts.changes.clone();
        let snapshots = super::snapshot::dir(db.parent().expect("the database is in a folder"));
        store::ensure_snapshot(&pool, &snapshots).await?;
        let sm = store::StateMachine::new(pool.clone(), snapshots.clone(), opts.changes);
        let snapshot_ms = sm.build_timer();
        let me = node_id(&opts.peer_id);
        let history = store::history(&pool).await?;
        if fresh && matches!(opts.bootstrap, Bootstrap::Join) {
            store::set_joining(&pool, true).await?;
        }
        let admission = Arc::new(Admission::new(
            history.clone(),
            store::joining(&pool).await?,
        ));
        let network = NetworkFactory {
            transport: opts.transport.clone(),
            admission: admission.clone(),
        };
        let raft_settings = Arc::new(raft_config(&opts.config)?);
        let raft = Raft::new(
            me,
            raft_settings.clone(),
            network,
            store::LogStore::new(pool.clone()),
            sm,
        )
        .await
        .map_err(|e| storage(e.to_string()))?;
        let me_node = ClusterNode {
            peer_id: opts.peer_id.to_string(),
            addrs: opts.addrs.clone(),
            history: Some(history),
        };
        if fresh {
            let members = match &opts.bootstrap {
                Bootstrap::SingleVoter => Some(vec![me_node.clone()]),
                Bootstrap::Peerset(nodes) => Some(nodes.clone()),
                Bootstrap::Join => None,
            };
            if let Some(members) = members {
                // Every peer of an `init_peerset` writes the same first entry (no histories:
                // each names its own once ready); a single voter names its own at once.
                let mut map = BTreeMap::new();
                for n in members {
                    map.insert(parse_node_id(&n.peer_id)?, n);
                }
                raft.initialize(map)
                    .await
                    .map_err(|e| storage(format!("initializing Raft: {e}")))?;
            }
        }
        let (ready_tx, ready) = watch::channel(false);
        let (members_tx, members) = watch::channel(members_of(&raft.metrics().borrow()));
        let removed = CancellationToken::new();
        tasks.spawn(watch_admission(
            raft.clone(),
            me,
            admission.clone(),
            pool.clone(),
        ));
        tasks.spawn(watch_ready(
            raft.metrics(),
            me,
            opts.learner_is_ready,
            admission.clone(),
            ready_tx,
        ));
        tasks.spawn(watch_removal(
            raft.metrics(),
            me,
            ready.clone(),
            admission.clone(),
            removed.clone(),
        ));
        let stopped = CancellationToken::new();
        tasks.spawn(watch_fatal(raft.metrics(), stopped.clone()));
        // Raft stops with the peer's other tasks, so shutdown (or a failed start) awaits it;
        // then the write-ahead log is folded into the database, which a stopped peer leaves
        // as one self-contained file (and the start's damage check can read whole).
        let stopping = tasks.stopping();
        let core = raft.clone();
        let writer = pool.clone();
        tasks.spawn_graceful(async move {
            stopping.cancelled().await;
            let _ = core.shutdown().await;
            if let Err(e) = store::checkpoint(&writer).await {
                tracing::warn!("folding the write-ahead log into the database: {e}");
            }
            writer.close().await;
        });
        let link = LeaderLink {
            raft: raft.clone(),
            me,
            cfg: opts.config.clone(),
            transport: opts.transport.clone(),
            handing_over: Arc::new(watch::channel(false).0),
            writing: Arc::default(),
            last_leader: Arc::default(),
        };
        let committer = Committer::start(link.clone(), tasks);
        let consensus = RaftConsensus {
            raft,
            state,
            me,
            me_node,
            cfg: opts.config,
            ready,
            members,
            transport: opts.transport,
            tasks: tasks.clone(),
            pool,
            removed,
            stopped,
            snapshots,
            snapshot_ms,
            admission,
            refused_once: Default::default(),
            last_leader: link.last_leader.clone(),
            raft_settings,
            link,
            committer,
            leader_since: Default::default(),
        };
        tasks.spawn(watch_members(consensus.raft.metrics(), members_tx));
        tasks.spawn(watch_leadership(
            consensus.raft.metrics(),
            consensus.leader_since.clone(),
        ));
        if store::imported(&consensus.pool).await? {
            tasks.spawn(snapshot_import(
                consensus.raft.clone(),
                consensus.pool.clone(),
            ));
        }
        // Unpins committed just before a crash may not have reached IPFS: replay them, from a
        // task (the feed is bounded, and the tracker follows it only once this returns).
        let replay = consensus.unpins_to_replay().await;
        if !replay.is_empty() {
            tasks.spawn(async move {
                for cid in replay {
                    changes.send(StateChange::Unpinned(cid)).await;
                }
            });
        }
        Ok(consensus)
    }

    /// CIDs unpinned by entries still in the log and not in the pinset now: the tracker
    /// makes sure IPFS dropped them too (see [`store::logged_unpins`]).
    pub async fn unpins_to_replay(&self) -> Vec<Cid> {
        let cids = match store::logged_unpins(&self.pool).await {
            Ok(cids) => cids,
            Err(e) => {
                tracing::warn!("cannot read the Raft log for unpins to replay: {e}");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for c in cids {
            // Pinned again since (or unreadable: then IPFS keeps it, the safe side).
            if let Ok(None) = self.state.get(&c).await {
                out.push(c);
            }
        }
        out
    }

    /// Commits `op` (with the writes queued beside it) and returns once this peer has
    /// applied it too, so that a write through any peer is visible in that peer's state as
    /// soon as it is acknowledged.
    async fn commit(&self, op: Op) -> Result<(), ConsensusError> {
        self.committer.commit(op).await
    }

    /// Resolves once this peer is ready (see [`watch_ready`]).
    pub async fn wait_ready(&self) {
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|r| *r).await;
    }

    pub(super) fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// Fires when this peer has been removed from the cluster.
    pub fn removed(&self) -> CancellationToken {
        self.removed.clone()
    }

    /// Fires when Raft stopped for good on an error (openraft stops at any storage error,
    /// such as a full disk): this peer can neither commit nor follow until it is restarted,
    /// so the daemon exits and says why rather than run on without a consensus.
    pub fn stopped(&self) -> CancellationToken {
        self.stopped.clone()
    }

    #[cfg(test)]
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

/// After `state import`: a snapshot that holds the imported pinset, and the log before it
/// purged, so that a peer that joins later installs the snapshot (replaying the log would
/// never give it the imported pins).
async fn snapshot_import(raft: Raft<TypeConfig>, pool: sqlx::SqlitePool) {
    let mut metrics = raft.metrics();
    let applied = match metrics.wait_for(|m| m.last_applied.is_some()).await {
        Ok(m) => m.last_applied.map(|l| l.index).unwrap_or(0),
        Err(_) => return,
    };
    if raft.trigger().snapshot().await.is_err() {
        return;
    }
    let snapshotted = metrics
        .wait_for(|m| m.snapshot.is_some_and(|s| s.index >= applied))
        .await
        .map(|m| m.snapshot.map(|s| s.index));
    let Ok(Some(upto)) = snapshotted else {
        return;
    };
    if raft.trigger().purge_log(upto).await.is_err() {
        return;
    }
    let purged = metrics
        .wait_for(|m| m.purged.is_some_and(|p| p.index >= upto))
        .await
        .is_ok();
    if purged {
        match store::clear_imported(&pool).await {
            Ok(()) => tracing::info!(upto, "the imported pinset is in a snapshot for new peers"),
            Err(e) => tracing::warn!("cannot record the import's snapshot: {e}"),
        }
    }
}

/// Every member with its role and last known addresses, as `metrics` records them.
pub(super) fn members_of(m: &openraft::RaftMetrics<NodeId, ClusterNode>) -> Vec<Member> {
    let membership = m.membership_config.membership();
    let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
    membership
        .nodes()
        .map(|(id, n)| Member {
            peer_id: n.peer_id.clone(),
            addrs: n.addrs.clone(),
            role: if voters.contains(id) {
                PeerRole::Voter
            } else {
                PeerRole::Follower
            },
        })
        .collect()
}

/// Publishes the member list whenever the membership changes (not on every heartbeat).
async fn watch_members(
    mut metrics: watch::Receiver<openraft::RaftMetrics<NodeId, ClusterNode>>,
    members: watch::Sender<Vec<Member>>,
) {
    while metrics.changed().await.is_ok() {
        let now = members_of(&metrics.borrow_and_update());
        members.send_if_modified(|m| {
            let changed = *m != now;
            if changed {
                *m = now;
            }
            changed
        });
    }
}

/// The term in which this peer last became the leader, and when.
pub(super) type LeaderSince = Arc<std::sync::Mutex<Option<(u64, std::time::Instant)>>>;

/// Records when this peer becomes the leader of a term (openraft does not say: its leader
/// refuses to vote for another candidate until a lease has passed since it was elected).
async fn watch_leadership(
    mut metrics: watch::Receiver<openraft::RaftMetrics<NodeId, ClusterNode>>,
    since: LeaderSince,
) {
    loop {
        {
            let m = metrics.borrow_and_update();
            let mut since = since.lock().unwrap();
            if m.state == openraft::ServerState::Leader
                && since.is_none_or(|(term, _)| term != m.current_term)
            {
                *since = Some((m.current_term, std::time::Instant::now()));
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Ready = a leader is known, this peer has applied its whole log, and it is a member: a
/// voter, or a learner unless it is joining as a voter (IPFS Cluster's WaitForSync; a joining
/// voter is not ready while still "staging"). It stays ready through
/// later elections: writes then wait for a leader (`wait_for_leader_timeout`).
async fn watch_ready(
    mut metrics: watch::Receiver<openraft::RaftMetrics<NodeId, ClusterNode>>,
    me: NodeId,
    learner_is_ready: bool,
    admission: Arc<Admission>,
    ready: watch::Sender<bool>,
) {
    loop {
        {
            let m = metrics.borrow_and_update();
            let applied = m.last_applied.map(|l| l.index);
            let membership = m.membership_config.membership();
            let is_voter = membership.voter_ids().any(|v| v == me);
            let is_member = membership.get_node(&me).is_some();
            // A rejoining peer replays the membership it had before it lost its state: it is
            // a member again only once the cluster has admitted its new state.
            let admitted = admission.judge(&m, me) == Verdict::Admitted;
            let role_ok = admitted && (is_voter || (learner_is_ready && is_member));
            if m.current_leader.is_some() && applied >= m.last_log_index && role_ok {
                tracing::info!(leader = ?m.current_leader, "consensus ready");
                let _ = ready.send(true);
                return;
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Keeps [`Admission`] true to the membership in this peer's log: whether it may vote, its
/// election timer on only then, and the "joining" mark cleared once its admission is applied.
async fn watch_admission(
    raft: Raft<TypeConfig>,
    me: NodeId,
    admission: Arc<Admission>,
    pool: sqlx::SqlitePool,
) {
    let mut metrics = raft.metrics();
    let mut said = None;
    loop {
        let (verdict, applied_admission) = {
            let m = metrics.borrow_and_update();
            let verdict = admission.judge(&m, me);
            let record_at = m.membership_config.log_id().map(|l| l.index);
            let applied = m.last_applied.map(|l| l.index);
            (
                verdict.clone(),
                verdict == Verdict::Admitted && applied >= record_at,
            )
        };
        if admission.update(&verdict) || said.is_none() {
            raft.runtime_config().elect(verdict == Verdict::Admitted);
        }
        if said.as_ref() != Some(&verdict) {
            match &verdict {
                Verdict::Admitted if said.is_some() => {
                    tracing::info!("the cluster admitted this peer's Raft state: it votes again")
                }
                Verdict::Admitted => {}
                Verdict::Waiting => tracing::info!(
                    "this peer's Raft state is new (made to join or rejoin a cluster): it takes \
                     no part in elections until the cluster has admitted it (daemon \
                     --bootstrap <a member's address> asks it to)"
                ),
                Verdict::OtherHistory(h) => tracing::warn!(
                    "the cluster knows this peer with another Raft state (history {h}; this \
                     one is {}): it takes no part in elections. Remove it (peers rm) and start \
                     it with --bootstrap to rejoin",
                    admission.history()
                ),
            }
            said = Some(verdict);
        }
        if applied_admission && admission.is_joining() {
            match store::set_joining(&pool, false).await {
                Ok(()) => admission.joined(),
                Err(e) => tracing::warn!("cannot record that this peer was admitted: {e}"),
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Fires `stopped` when Raft reports that it stopped on an error.
async fn watch_fatal(
    mut metrics: watch::Receiver<openraft::RaftMetrics<NodeId, ClusterNode>>,
    stopped: CancellationToken,
) {
    loop {
        if let Err(fatal) = &metrics.borrow_and_update().running_state {
            tracing::error!("Raft stopped: {fatal}; restart this peer once the cause is fixed");
            stopped.cancel();
            return;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Fires `removed` when a membership this peer had been part of no longer includes it.
///
/// Watched only once the peer is ready: before that it replays the cluster's history, in
/// which a peer removed and started again with `--bootstrap` is a member, then removed, then
/// a member again. A record of another Raft state of this peer's is not this peer.
async fn watch_removal(
    mut metrics: watch::Receiver<openraft::RaftMetrics<NodeId, ClusterNode>>,
    me: NodeId,
    mut ready: watch::Receiver<bool>,
    admission: Arc<Admission>,
    removed: CancellationToken,
) {
    if ready.wait_for(|r| *r).await.is_err() {
        return;
    }
    let mut was_member = false;
    loop {
        {
            let m = metrics.borrow_and_update();
            let is_member = m
                .membership_config
                .membership()
                .get_node(&me)
                .is_some_and(|n| {
                    n.history
                        .as_deref()
                        .is_none_or(|h| h == admission.history())
                });
            if was_member && !is_member {
                tracing::warn!("this peer is no longer in the cluster's membership");
                removed.cancel();
                return;
            }
            was_member |= is_member;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

#[async_trait]
impl Consensus for RaftConsensus {
    async fn step_down(&self) {
        self.hand_over().await
    }

    async fn stats(&self) -> RaftStats {
        let (term, leader, last_log, applied, snapshot, purged, voters, learners) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let membership = m.membership_config.membership();
            (
                m.current_term,
                m.current_leader,
                m.last_log_index,
                m.last_applied.map(|l| l.index),
                m.snapshot.map(|l| l.index),
                m.purged.map(|l| l.index),
                membership.voter_ids().count() as u64,
                membership.learner_ids().count() as u64,
            )
        };
        let commit = self
            .raft
            .with_raft_state(|st| st.committed.map(|l| l.index))
            .await
            .ok()
            .flatten();
        let last_log = last_log.unwrap_or(0);
        RaftStats {
            term,
            is_leader: leader == Some(self.me),
            has_leader: leader.is_some(),
            voters,
            learners,
            last_log_index: last_log,
            commit_index: commit.or(applied).unwrap_or(0),
            applied_index: applied.unwrap_or(0),
            log_entries: purged.map_or(last_log, |p| last_log.saturating_sub(p)),
            snapshot_index: snapshot.unwrap_or(0),
            snapshot_bytes: store::snapshot_size(&self.pool, &self.snapshots).await,
            snapshot_seconds: self.snapshot_ms.load(std::sync::atomic::Ordering::Relaxed) as f64
                / 1000.0,
        }
    }

    async fn log_pin(&self, pin: Pin) -> Result<(), ConsensusError> {
        self.commit(Op::Pin(pin)).await
    }

    async fn log_unpin(&self, cid: Cid) -> Result<(), ConsensusError> {
        self.commit(Op::Unpin(cid)).await
    }

    async fn log_pins(&self, pins: Vec<Pin>) -> Vec<Result<(), ConsensusError>> {
        // Groups within the committer's bounds, one after another (a CID repeated across
        // them keeps its order).
        let mut out = Vec::with_capacity(pins.len());
        let mut group: Vec<Op> = Vec::new();
        let mut bytes = 0;
        let mut pins = pins.into_iter().map(Op::Pin).peekable();
        while let Some(op) = pins.next() {
            bytes += op.weight();
            group.push(op);
            let full = pins
                .peek()
                .is_none_or(|next| group.len() >= MAX_OPS || bytes + next.weight() > GROUP_BYTES);
            if full {
                let n = group.len();
                let result = self.commit(Op::joined(std::mem::take(&mut group))).await;
                out.extend(std::iter::repeat_n(result, n));
                bytes = 0;
            }
        }
        out
    }

    async fn catch_up(&self) -> Result<(), ConsensusError> {
        let index = self.leader_call(LeaderOp::ReadIndex).await?.unwrap_or(0);
        self.link
            .wait_applied(index, "the cluster's latest writes are known")
            .await
    }

    fn state(&self) -> Arc<dyn Pinset> {
        self.state.clone()
    }

    fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    fn leader(&self) -> Option<String> {
        let leader = self.raft.metrics().borrow().current_leader?;
        self.member(leader).map(|n| n.peer_id)
    }

    fn members(&self) -> Vec<Member> {
        members_of(&self.raft.metrics().borrow())
    }

    fn watch_members(&self) -> watch::Receiver<Vec<Member>> {
        self.members.clone()
    }

    async fn rm_peer(&self, peer: &str) -> Result<(), ConsensusError> {
        // Whether it is a member, as this peer knows it now; the leader's removal is then
        // idempotent, so a retry after a lost answer is not a "not a member" error.
        if self.member(parse_node_id(peer)?).is_none() {
            return Err(ConsensusError::NotMember(peer.to_string()));
        }
        let op = LeaderOp::Remove {
            peer_id: peer.to_string(),
        };
        self.leader_call(op).await.map(|_| ())
    }

    async fn set_role(&self, peer: &str, role: PeerRole) -> Result<(), ConsensusError> {
        let op = LeaderOp::SetRole {
            peer_id: peer.to_string(),
            voter: role == PeerRole::Voter,
        };
        self.leader_call(op).await.map(|_| ())
    }
}
