//! Peers of the CRDT consensus joined by an in-process hub (their real stores on disk): a
//! write reaches every peer, a peer cut off writes on and is taken up when it is back,
//! writes on both sides merge, followers refuse writes, untrusted peers are not heard, and
//! a batch a crash left is published at the next start.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::super::testing::until;
use super::*;
use crate::state::feed::feed;
use crate::types::PinOptions;

/// Delivers broadcasts to every connected peer and fetches blocks from any of them; a peer
/// cut off neither sends nor receives.
/// A peer on the hub: where its broadcasts go, and its store (to fetch blocks from).
type OnHub = (mpsc::Sender<Heard>, Arc<CrdtStore>);

#[derive(Default)]
struct Hub {
    peers: Mutex<HashMap<String, OnHub>>,
    cut: Mutex<HashSet<String>>,
}

struct Port {
    hub: Arc<Hub>,
    me: String,
}

impl Hub {
    fn is_cut(&self, p: &str) -> bool {
        self.cut.lock().unwrap().contains(p)
    }
}

#[async_trait]
impl BlockSource for Port {
    async fn get(&self, c: &cid::Cid) -> Result<Vec<u8>, sync::FetchError> {
        if self.hub.is_cut(&self.me) {
            return Err(sync::FetchError::NoPeer);
        }
        let stores: Vec<Arc<CrdtStore>> = {
            let peers = self.hub.peers.lock().unwrap();
            peers
                .iter()
                .filter(|(id, _)| **id != self.me && !self.hub.is_cut(id))
                .map(|(_, (_, s))| s.clone())
                .collect()
        };
        for s in stores {
            if let Ok(Some(b)) = s.block(c).await {
                return Ok(b);
            }
        }
        Err(sync::FetchError::Lacking)
    }
}

#[async_trait]
impl CrdtNetwork for Port {
    async fn announce(&self, broadcast: Vec<u8>) {
        if self.hub.is_cut(&self.me) {
            return;
        }
        let to: Vec<mpsc::Sender<Heard>> = {
            let peers = self.hub.peers.lock().unwrap();
            peers
                .iter()
                .filter(|(id, _)| **id != self.me && !self.hub.is_cut(id))
                .map(|(_, (tx, _))| tx.clone())
                .collect()
        };
        for tx in to {
            let _ = tx.try_send(Heard {
                from: self.me.clone(),
                data: broadcast.clone(),
            });
        }
    }
}

struct Peer {
    c: Arc<CrdtConsensus>,
    tasks: Tasks,
    _dir: Option<tempfile::TempDir>,
}

fn options(id: &str) -> CrdtOptions {
    CrdtOptions {
        peer_id: id.into(),
        batching: None,
        max_queue_size: 50_000,
        follower: false,
        trust: Trust::All,
        rebroadcast_interval: Duration::from_millis(200),
        sync: SyncOptions {
            workers: 8,
            fetch_timeout: Duration::from_secs(5),
        },
        topic: "test".into(),
        keypair: None,
        checkpoint_every: 0,
        signers: HashSet::new(),
        drop_old_deltas: false,
    }
}

async fn start(hub: &Arc<Hub>, dir: &Path, opts: CrdtOptions) -> (Arc<CrdtConsensus>, Tasks) {
    let (tx, rx) = mpsc::channel(64);
    let (changes, mut feed_rx) = feed(1 << 12);
    let tasks = Tasks::new();
    tasks.spawn(async move { while feed_rx.recv().await.is_some() {} });
    let port = Arc::new(Port {
        hub: hub.clone(),
        me: opts.peer_id.clone(),
    });
    let id = opts.peer_id.clone();
    let store = Arc::new(
        CrdtStore::open(&super::super::store::db_path(dir), changes)
            .await
            .unwrap(),
    );
    let c = CrdtConsensus::start(store, opts, port, rx, &tasks)
        .await
        .unwrap();
    hub.peers
        .lock()
        .unwrap()
        .insert(id, (tx, c.store().clone()));
    (c, tasks)
}

async fn peer(hub: &Arc<Hub>, opts: CrdtOptions) -> Peer {
    let dir = tempfile::tempdir().unwrap();
    let (c, tasks) = start(hub, dir.path(), opts).await;
    Peer {
        c,
        tasks,
        _dir: Some(dir),
    }
}

fn pin(n: u32) -> Pin {
    Pin::new(
        Cid(wire::block_cid(&n.to_be_bytes())),
        PinOptions {
            name: format!("pin {n}"),
            ..PinOptions::default()
        },
    )
}

async fn count(p: &CrdtConsensus) -> u64 {
    p.state().count().await.unwrap()
}

#[tokio::test]
async fn a_pin_reaches_every_peer_and_an_unpin_too() {
    let hub = Arc::new(Hub::default());
    let peers = [
        peer(&hub, options("a")).await,
        peer(&hub, options("b")).await,
        peer(&hub, options("c")).await,
    ];
    peers[0].c.log_pin(pin(1)).await.unwrap();
    // The writer has it at once.
    assert_eq!(count(&peers[0].c).await, 1);
    for p in &peers[1..] {
        until(10, "pin on every peer", || async { count(&p.c).await == 1 }).await;
    }
    peers[2].c.log_unpin(pin(1).cid).await.unwrap();
    for p in &peers {
        until(10, "unpin on every peer", || async {
            count(&p.c).await == 0
        })
        .await;
    }
    assert!(peers[0].c.is_ready());
    assert_eq!(peers[0].c.leader(), None);
    for p in &peers {
        p.tasks.shutdown().await;
    }
}

#[tokio::test]
async fn a_peer_cut_off_writes_on_and_both_sides_merge_when_it_is_back() {
    let hub = Arc::new(Hub::default());
    let peers = [
        peer(&hub, options("a")).await,
        peer(&hub, options("b")).await,
        peer(&hub, options("c")).await,
    ];
    peers[0].c.log_pin(pin(1000)).await.unwrap();
    for p in &peers {
        until(10, "first pin everywhere", || async {
            count(&p.c).await == 1
        })
        .await;
    }
    hub.cut.lock().unwrap().insert("a".into());
    // Offline: a pins 100 CIDs and removes the shared one; b pins it again meanwhile
    // (its add is one a's remove did not see: it wins) and pins one of its own.
    for n in 0..100 {
        peers[0].c.log_pin(pin(n)).await.unwrap();
    }
    peers[0].c.log_unpin(pin(1000).cid).await.unwrap();
    peers[1].c.log_pin(pin(1000)).await.unwrap();
    peers[1].c.log_pin(pin(2000)).await.unwrap();
    assert_eq!(count(&peers[0].c).await, 100);
    hub.cut.lock().unwrap().clear();
    for p in &peers {
        until(10, "merged everywhere", || async {
            count(&p.c).await == 102
        })
        .await;
    }
    for p in &peers {
        assert!(p.c.state().get(&pin(1000).cid).await.unwrap().is_some());
        p.tasks.shutdown().await;
    }
}

#[tokio::test]
async fn a_follower_refuses_writes_and_follows() {
    let hub = Arc::new(Hub::default());
    let writer = peer(&hub, options("w")).await;
    let follower = peer(
        &hub,
        CrdtOptions {
            follower: true,
            ..options("f")
        },
    )
    .await;
    let err = follower.c.log_pin(pin(1)).await.unwrap_err();
    assert!(matches!(err, ConsensusError::Refused(_)), "{err}");
    assert!(err.to_string().contains("follower_mode"), "{err}");
    assert!(matches!(
        follower.c.log_unpin(pin(1).cid).await,
        Err(ConsensusError::Refused(_))
    ));
    assert_eq!(count(&follower.c).await, 0);
    assert_eq!(follower.c.members()[0].role, PeerRole::Follower);
    writer.c.log_pin(pin(2)).await.unwrap();
    until(10, "the follower follows", || async {
        count(&follower.c).await == 1
    })
    .await;
    writer.tasks.shutdown().await;
    follower.tasks.shutdown().await;
}

#[tokio::test]
async fn an_untrusted_peers_heads_are_not_heard() {
    let hub = Arc::new(Hub::default());
    // As in a collaborative cluster, every peer's configuration names the same trusted
    // peers. (A trusted peer that trusted everyone would take the stranger's blocks into its
    // own DAG, vouching for them, and those who trust it would follow: trust is in whose
    // heads are heard, as in IPFS Cluster.)
    let trust = Trust::Only(HashSet::from(["t".to_string()]));
    let trusted = peer(
        &hub,
        CrdtOptions {
            trust: trust.clone(),
            ..options("t")
        },
    )
    .await;
    let stranger = peer(&hub, options("s")).await;
    let careful = peer(
        &hub,
        CrdtOptions {
            trust,
            ..options("c")
        },
    )
    .await;
    stranger.c.log_pin(pin(1)).await.unwrap();
    trusted.c.log_pin(pin(2)).await.unwrap();
    until(10, "the trusted peer's pin", || async {
        count(&careful.c).await >= 1
    })
    .await;
    // The stranger, trusting all, has both; after hearing its heads thrice the careful peer
    // still has not its pin.
    until(10, "the stranger hears the trusted peer", || async {
        count(&stranger.c).await == 2
    })
    .await;
    until(10, "the stranger's heads dropped three times", || async {
        careful.c.untrusted_broadcasts() >= 3
    })
    .await;
    assert_eq!(count(&careful.c).await, 1);
    assert!(careful.c.state().get(&pin(1).cid).await.unwrap().is_none());
    for p in [&trusted, &stranger, &careful] {
        p.tasks.shutdown().await;
    }
}

#[tokio::test]
async fn batches_go_out_when_full_or_old_and_a_crash_loses_none() {
    let hub = Arc::new(Hub::default());
    let batched = |id: &str, size: u64, age_ms: u64| CrdtOptions {
        batching: Some((size, Duration::from_millis(age_ms))),
        ..options(id)
    };
    let other = peer(&hub, options("o")).await;
    let dir = tempfile::tempdir().unwrap();
    // As a crash leaves it: three writes acknowledged (queued on disk), none published.
    {
        let (tx, _rx) = feed(16);
        let s = CrdtStore::open(&super::super::store::db_path(dir.path()), tx)
            .await
            .unwrap();
        for n in 0..3 {
            let p = pin(n);
            s.queue(
                &wire::pin_key(&p.cid),
                Some(&wire::pin_to_bytes(&p).unwrap()),
            )
            .await
            .unwrap();
        }
    }
    // The next start publishes them before anything else, and the others get them.
    let (c, tasks) = start(&hub, dir.path(), batched("b", 5, 60_000)).await;
    assert_eq!(count(&c).await, 3);
    assert_eq!(c.store().queued().await.unwrap(), 0);
    until(
        10,
        "the batch left by the crash reaches the others",
        || async { count(&other.c).await == 3 },
    )
    .await;
    // A full batch goes out at once (its age is a minute); until then it is not published.
    for n in 3..7 {
        c.log_pin(pin(n)).await.unwrap();
    }
    assert_eq!(count(&c).await, 3);
    c.log_pin(pin(7)).await.unwrap();
    until(10, "a full batch published and heard", || async {
        count(&other.c).await == 8
    })
    .await;
    // A graceful stop publishes what the batch holds.
    c.log_pin(pin(8)).await.unwrap();
    tasks.shutdown().await;
    assert_eq!(count(&c).await, 9);
    // A batch goes out by age.
    let aged = peer(&hub, batched("a", 1000, 100)).await;
    aged.c.log_pin(pin(99)).await.unwrap();
    until(10, "a batch published by age", || async {
        count(&other.c).await == 10
    })
    .await;
    aged.tasks.shutdown().await;
    other.tasks.shutdown().await;
}

/// Blocks whose bytes a peer holds (those a checkpoint covers have none).
async fn blocks_with_bytes(p: &CrdtConsensus) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM crdt_blocks WHERE length(data) > 0")
        .fetch_one(p.store().pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_new_peer_loads_the_checkpoint_offered_then_fills_in_the_history() {
    let hub = Arc::new(Hub::default());
    let key = libp2p_identity::Keypair::generate_ed25519();
    let signers = HashSet::from([key.public().to_peer_id().to_string()]);
    let a = peer(
        &hub,
        CrdtOptions {
            keypair: Some(key),
            checkpoint_every: 20,
            ..options("a")
        },
    )
    .await;
    for n in 0..30 {
        a.c.log_pin(pin(n)).await.unwrap();
    }
    until(10, "a checkpoint made", || async {
        checkpoint::current(a.c.store()).await.unwrap().is_some()
    })
    .await;
    // A follower never makes one.
    let f = peer(
        &hub,
        CrdtOptions {
            keypair: Some(libp2p_identity::Keypair::generate_ed25519()),
            checkpoint_every: 1,
            follower: true,
            signers: signers.clone(),
            ..options("f")
        },
    )
    .await;
    let b = peer(
        &hub,
        CrdtOptions {
            signers: signers.clone(),
            ..options("b")
        },
    )
    .await;
    // A peer that names no signer (trusting everyone) loads no checkpoint: it takes every
    // delta.
    let c = peer(&hub, options("c")).await;
    until(10, "c to hold every pin", || async {
        count(&c.c).await == 30
    })
    .await;
    assert_eq!(blocks_with_bytes(&c.c).await, 30);
    assert_eq!(checkpoint::current(c.c.store()).await.unwrap(), None);
    until(10, "b to hold every pin", || async {
        count(&b.c).await == 30
    })
    .await;
    until(10, "f to hold every pin", || async {
        count(&f.c).await == 30
    })
    .await;
    // Through the checkpoint (what it loaded, it offers), and ready.
    assert!(b.c.is_ready());
    let offered = checkpoint::current(a.c.store()).await.unwrap();
    assert_eq!(checkpoint::current(b.c.store()).await.unwrap(), offered);
    // What comes after is fetched as deltas.
    a.c.log_pin(pin(100)).await.unwrap();
    until(10, "b to hold the pin after", || async {
        count(&b.c).await == 31
    })
    .await;
    // The history below the checkpoint is filled in afterwards.
    until(10, "b to fill in the history", || async {
        blocks_with_bytes(&b.c).await == 31
    })
    .await;
    assert_eq!(checkpoint::current(f.c.store()).await.unwrap(), offered);
    for p in [&a, &b, &f, &c] {
        p.tasks.shutdown().await;
    }
}

/// The options of the drop tests' peers: writers `a` and `b` trusted, `f` a follower,
/// checkpoints every 10 blocks signed by `signers`, old deltas dropped.
fn dropping(
    id: &str,
    key: Option<libp2p_identity::Keypair>,
    signers: &HashSet<String>,
) -> CrdtOptions {
    CrdtOptions {
        keypair: key,
        checkpoint_every: 10,
        trust: Trust::Only(HashSet::from(["a".to_string(), "b".to_string()])),
        signers: signers.clone(),
        drop_old_deltas: true,
        follower: id == "f",
        ..options(id)
    }
}

#[tokio::test]
async fn old_deltas_are_dropped_once_every_writer_is_above_and_a_peer_back_merges_a_checkpoint() {
    let hub = Arc::new(Hub::default());
    let (ka, kb) = (
        libp2p_identity::Keypair::generate_ed25519(),
        libp2p_identity::Keypair::generate_ed25519(),
    );
    let signers = HashSet::from([
        ka.public().to_peer_id().to_string(),
        kb.public().to_peer_id().to_string(),
    ]);
    let a = peer(&hub, dropping("a", Some(ka), &signers)).await;
    let f = peer(&hub, dropping("f", None, &signers)).await;
    for n in 0..5 {
        a.c.log_pin(pin(n)).await.unwrap();
    }
    until(10, "f to hold the first pins", || async {
        count(&f.c).await == 5
    })
    .await;
    // F goes away; A writes on and makes a checkpoint.
    hub.cut.lock().unwrap().insert("f".into());
    for n in 5..40 {
        a.c.log_pin(pin(n)).await.unwrap();
    }
    until(10, "a checkpoint made", || async {
        checkpoint::current(a.c.store()).await.unwrap().is_some()
    })
    .await;
    // B, the other writer, has never been heard: A keeps every delta.
    let frontier = checkpoint::frontier(a.c.store()).await.unwrap().unwrap();
    let b_is_above = || async {
        a.c.stable_for(&frontier.heads, &["b".to_string()])
            .await
            .unwrap()
    };
    assert_eq!(b_is_above().await, Err("b".to_string()));
    // B saying heads above the checkpoint while it still wants blocks (part-way through a
    // sync) does not count: it may still ask for them. (The broadcast of an untrusted peer
    // after it tells when A has read it.)
    let to_a = hub.peers.lock().unwrap().get("a").unwrap().0.clone();
    let says = |from: &str, complete: bool| Heard {
        from: from.into(),
        data: Broadcast {
            complete,
            ..Broadcast::with_checkpoint(&frontier.heads, None)
        }
        .to_bytes(),
    };
    to_a.send(says("b", false)).await.unwrap();
    to_a.send(says("x", true)).await.unwrap();
    until(10, "a to read both", || async {
        a.c.untrusted_broadcasts() == 1
    })
    .await;
    assert_eq!(b_is_above().await, Err("b".to_string()));
    assert_eq!(blocks_with_bytes(&a.c).await, 40);
    // Holding all below them, it counts: A drops what the checkpoint covers.
    to_a.send(says("b", true)).await.unwrap();
    until(10, "a to drop the deltas its checkpoint covers", || async {
        blocks_with_bytes(&a.c).await < 40
    })
    .await;
    assert_eq!(b_is_above().await, Ok(()));
    assert_eq!(count(&a.c).await, 40);
    // B comes: it loads A's checkpoint and takes the deltas after it.
    let b = peer(&hub, dropping("b", Some(kb), &signers)).await;
    until(10, "b to hold every pin", || async {
        count(&b.c).await == 40
    })
    .await;
    // F is back: what it lacks is no longer given, block by block; it merges a checkpoint.
    hub.cut.lock().unwrap().clear();
    until(20, "f to hold every pin through a checkpoint", || async {
        count(&f.c).await == 40
    })
    .await;
    assert!(checkpoint::merged(f.c.store()).await.unwrap().is_some());
    a.c.log_pin(pin(100)).await.unwrap();
    until(10, "f to take what comes after", || async {
        count(&f.c).await == 41 && !f.c.store().wants_any().await.unwrap()
    })
    .await;
    for p in [&a, &b, &f] {
        p.tasks.shutdown().await;
    }
}

#[tokio::test]
async fn a_follower_drops_old_deltas_below_a_checkpoint_offered_once_every_writer_is_above() {
    let hub = Arc::new(Hub::default());
    let ka = libp2p_identity::Keypair::generate_ed25519();
    let signers = HashSet::from([ka.public().to_peer_id().to_string()]);
    let a = peer(&hub, dropping("a", Some(ka), &signers)).await;
    let f = peer(&hub, dropping("f", None, &signers)).await;
    // F syncs every delta from the start (it joined before any checkpoint).
    for n in 0..25 {
        a.c.log_pin(pin(n)).await.unwrap();
    }
    until(10, "f to hold every pin and want nothing", || async {
        count(&f.c).await == 25 && !f.c.store().wants_any().await.unwrap()
    })
    .await;
    until(10, "f to hear a checkpoint offered", || async {
        f.c.latest_offer.lock().unwrap().is_some()
    })
    .await;
    assert_eq!(blocks_with_bytes(&f.c).await, 25);
    // B, the other writer, has never been heard: F keeps every delta.
    let writers = ["a".to_string(), "b".to_string()];
    assert_eq!(f.c.drop_as_follower(&writers, &mut None).await.unwrap(), 0);
    assert_eq!(blocks_with_bytes(&f.c).await, 25);
    // B says heads above it, holding all below: F drops what the checkpoint covers.
    let (heads, _) = a.c.store().heads().await.unwrap();
    let to_f = hub.peers.lock().unwrap().get("f").unwrap().0.clone();
    to_f.send(Heard {
        from: "b".into(),
        data: Broadcast {
            complete: true,
            ..Broadcast::with_checkpoint(&heads, None)
        }
        .to_bytes(),
    })
    .await
    .unwrap();
    until(
        10,
        "f to drop the deltas below the checkpoint offered",
        || async { blocks_with_bytes(&f.c).await < 25 },
    )
    .await;
    assert_eq!(count(&f.c).await, 25);
    // What comes after still reaches it.
    a.c.log_pin(pin(100)).await.unwrap();
    until(10, "f to take what comes after", || async {
        count(&f.c).await == 26
    })
    .await;
    for p in [&a, &f] {
        p.tasks.shutdown().await;
    }
}
