//! The second consensus, `consensus: crdt`: the pinset as an add-wins observed-remove set
//! replicated by a Merkle-CRDT, as IPFS Cluster's CRDT mode (go-ds-crdt) keeps it, with the
//! same formats on the wire. Laid out as the Raft side is: the formats ([`wire`]), the
//! storage ([`store`]: blocks, heads, the set, the batch, and the `pins` table every reader
//! of the pinset uses), fetching what is missing ([`sync`]), the component itself
//! ([`component`]), and the network: Bitswap for blocks ([`bitswap`]) and the cluster swarm's
//! gossipsub for heads ([`net`]). [`start`] puts them together for a peer.

pub mod bans;
pub(crate) mod bitswap;
pub(crate) mod checkpoint;
pub(crate) mod component;
pub(crate) mod net;
pub mod offline;
pub(crate) mod store;
pub(crate) mod sync;
#[cfg(test)]
mod testing;
pub(crate) mod wire;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;

use crate::components::{ConsensusError, Member, Monitor, PING};
use crate::config::CrdtConfig;
use crate::rpc::{ClusterRpc, Pubsub};
use crate::state::feed::FeedSender;
use crate::tasks::Tasks;
use crate::types::PeerRole;
use bans::Bans;
use component::{CrdtConsensus, CrdtOptions, Heard, Trust};

/// Broadcasts heard and not yet handled at most (more are dropped: heads are said again).
const HEARD: usize = 256;

/// Whose heads a peer of `cfg` hears: everyone (`"*"`), or the trusted peers, the peers it
/// was told to bootstrap from (as IPFS Cluster's daemon adds them) and itself.
pub fn trust(cfg: &CrdtConfig, me: &PeerId, bootstrap: &[PeerId]) -> Trust {
    if cfg.trust_all() {
        return Trust::All;
    }
    let mut set: HashSet<String> = cfg.trusted_peers.iter().cloned().collect();
    set.insert(me.to_string());
    set.extend(bootstrap.iter().map(|p| p.to_string()));
    Trust::Only(set)
}

/// Whose checkpoints a peer of `cfg` loads: the peers `trusted_peers` names and those it was
/// told to bootstrap from — never "every peer" (`"*"` names none): a checkpoint that leaves
/// pins out keeps them from every peer that loads it, for good, where a delta reaches all
/// peers alike.
pub fn checkpoint_signers(cfg: &CrdtConfig, bootstrap: &[PeerId]) -> HashSet<String> {
    cfg.trusted_peers
        .iter()
        .filter(|p| *p != "*")
        .cloned()
        .chain(bootstrap.iter().map(|p| p.to_string()))
        .collect()
}

/// The swarm's part of a CRDT peer (its topics and validators), and where what it hears
/// goes: heads to the CRDT, metrics to `monitor`; nothing from a peer in `bans`. A trusted
/// peer met on the metrics topic that has no current ping gets one of `ping_interval` at
/// once (IPFS Cluster logs one for the peers it bootstraps from); any other waits for its
/// own (so that subscribing again and again raises no stream of alerts).
pub fn pubsub(
    cfg: &CrdtConfig,
    trust: &Trust,
    bans: Arc<Bans>,
    monitor: Arc<dyn Monitor>,
    ping_interval: Duration,
) -> (Pubsub, mpsc::Receiver<Heard>) {
    let (heard, rx) = mpsc::channel(HEARD);
    let check = trust.clone();
    let meets = monitor.clone();
    let trusts = trust.clone();
    (
        Pubsub {
            topic: wire::topic(&cfg.cluster_name),
            trusted: Arc::new(move |p: &PeerId| check.trusts(&p.to_string())),
            heard,
            metric: Arc::new(move |m| monitor.log_metric(m)),
            banned: Arc::new(move |p: &PeerId| bans.contains(&p.to_string())),
            met: Arc::new(move |p: PeerId| {
                let p = p.to_string();
                if trusts.trusts(&p) && meets.current(PING, &p).is_none() {
                    meets.log_metric(crate::informer::ping(&p, ping_interval))
                }
            }),
        },
        rx,
    )
}

/// What a CRDT peer is started with.
pub struct CrdtStart<'a> {
    pub folder: &'a Path,
    pub config: &'a CrdtConfig,
    pub follower: bool,
    pub peer_id: PeerId,
    /// Whose checkpoints it loads ([`checkpoint_signers`]).
    pub signers: HashSet<String>,
    /// The peer's key: its checkpoints are signed with it.
    pub keypair: libp2p::identity::Keypair,
    pub trust: Trust,
    pub rpc: &'a ClusterRpc,
    pub heard: mpsc::Receiver<Heard>,
    pub changes: FeedSender,
    /// Peers to connect to at once (the peerstore's and `--bootstrap`'s).
    pub connect: Vec<(PeerId, Vec<Multiaddr>)>,
    /// How often known peers not connected are dialed again.
    pub members_interval: Duration,
    /// Where the peers heard on the metrics topic are: the peerset is those with a current
    /// `ping`.
    pub monitor: Arc<dyn Monitor>,
    /// The peers banned by `peers rm`.
    pub bans: Arc<Bans>,
}

/// Starts a peer's CRDT consensus on its swarm: the store in `<folder>/crdt/`, Bitswap
/// serving its blocks, the component, and the peerset kept as IPFS Cluster keeps it: this
/// peer and those whose `ping` was heard on the metrics topic and has not expired (banned
/// peers left out).
pub async fn start(s: CrdtStart<'_>, tasks: &Tasks) -> Result<Arc<CrdtConsensus>, ConsensusError> {
    let store = Arc::new(store::CrdtStore::open(&store::db_path(s.folder), s.changes).await?);
    if offline::import_interrupted(store.pool()).await? {
        return Err(ConsensusError::Refused(
            "a `state import` into this peer was cut short: its pinset holds pins its DAG does \
             not give the others. Run `ipfs-cluster-service state import` again (the pinset \
             before it is in crdt.backups/)"
                .into(),
        ));
    }
    let bitswap = bitswap::Bitswap::start(
        s.rpc.stream_control(),
        Arc::new(net::StoreBlocks(store.clone())),
        tasks,
    )
    .map_err(|e| ConsensusError::Storage(format!("Bitswap: {e}")))?;
    let network = Arc::new(net::CrdtNet {
        rpc: s.rpc.clone(),
        bitswap,
    });
    let batching = s.config.batching_enabled().then(|| {
        (
            s.config.batching.max_batch_size,
            s.config.batching.max_batch_age.get(),
        )
    });
    let c = CrdtConsensus::start(
        store,
        CrdtOptions {
            peer_id: s.peer_id.to_string(),
            batching,
            max_queue_size: s.config.batching.max_queue_size,
            follower: s.follower,
            trust: s.trust,
            rebroadcast_interval: s.config.rebroadcast_interval.get(),
            sync: sync::SyncOptions::default(),
            topic: wire::topic(&s.config.cluster_name),
            keypair: Some(s.keypair.clone()),
            checkpoint_every: s.config.checkpoint_every,
            signers: s.signers,
            drop_old_deltas: s.config.drop_old_deltas,
        },
        network,
        s.heard,
        tasks,
    )
    .await?;
    c.keep_bans(s.bans.clone());
    // The peers this peer dials again when not connected: those it was given (its
    // peerstore, --bootstrap) and the trusted ones. Any other that connected to it dials
    // again itself, so a stranger's addresses are never dialed over and over.
    let mut redial: HashSet<PeerId> = s.connect.iter().map(|(p, _)| *p).collect();
    if let Trust::Only(set) = c.trust() {
        redial.extend(set.iter().filter_map(|p| p.parse::<PeerId>().ok()));
    }
    for (p, addrs) in s.connect {
        s.rpc.connect(p, addrs).await;
    }
    let (rpc, me, follower, every, trust, monitor, bans) = (
        s.rpc.clone(),
        s.peer_id,
        s.follower,
        s.members_interval.max(Duration::from_millis(100)),
        c.trust().clone(),
        s.monitor.clone(),
        s.bans.clone(),
    );
    let kept = c.clone();
    tasks.spawn(async move {
        let mut last_dial: Option<tokio::time::Instant> = None;
        loop {
            // No Raft calls keep a CRDT peer connected: it dials again the peers it was
            // given that are not connected (a peer back from a crash, a partition healed),
            // as IPFS Cluster's peers reconnect to their peerstore.
            let connected = rpc.connected_peers();
            // A peer banned while connected: its connections close, its metrics go.
            for p in connected.iter().filter(|p| bans.contains(&p.to_string())) {
                monitor.forget(&p.to_string());
                rpc.disconnect(*p).await;
            }
            if last_dial.is_none_or(|t| t.elapsed() >= every) {
                last_dial = Some(tokio::time::Instant::now());
                for p in &redial {
                    let banned = bans.contains(&p.to_string());
                    if *p != me && !banned && !connected.contains(p) {
                        rpc.connect(*p, Vec::new()).await;
                    }
                }
            }
            let mut members = vec![Member {
                peer_id: me.to_string(),
                addrs: rpc.listen_addrs().iter().map(|a| a.to_string()).collect(),
                role: if follower {
                    PeerRole::Follower
                } else {
                    PeerRole::Voter
                },
            }];
            let me_text = me.to_string();
            let mut heard: Vec<String> = Vec::new();
            for m in monitor.latest(PING) {
                if bans.contains(&m.peer) {
                    // Heard before the ban (or relayed meanwhile): its metrics go.
                    monitor.forget(&m.peer);
                } else if m.is_current() && m.peer != me_text {
                    heard.push(m.peer);
                }
            }
            heard.sort();
            // A peer whose heads are heard writes the pinset; any other only follows it.
            members.extend(heard.into_iter().map(|p| Member {
                role: if trust.trusts(&p) {
                    PeerRole::Voter
                } else {
                    PeerRole::Follower
                },
                peer_id: p,
                addrs: Vec::new(),
            }));
            kept.set_members(members);
            // The peerset follows what is heard within a second (it is cheap to look at).
            tokio::time::sleep(every.min(Duration::from_secs(1))).await;
        }
    });
    Ok(c)
}
