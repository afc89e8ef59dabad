//! CRDT peers on real cluster swarms (TCP on localhost, pnet, noise, yamux; gossipsub for
//! heads, Bitswap for blocks): a pin reaches every peer, and a peer whose signature is not
//! trusted is rejected by the topic's validator (not heard, not passed on).

use std::collections::HashSet;
use std::time::Duration;

use libp2p::PeerId;
use tokio::sync::mpsc;

use super::super::component::{CrdtConsensus, CrdtOptions, Trust};
use super::super::store::db_path;
use super::super::sync::SyncOptions;
use super::super::testing::until;
use super::super::wire;
use super::*;
use crate::components::Consensus;
use crate::rpc::{Pubsub, SwarmLimits, SwarmOptions};
use crate::state::feed::feed;
use crate::tasks::Tasks;
use crate::types::{Cid, Pin, PinOptions};

struct Node {
    id: PeerId,
    rpc: ClusterRpc,
    c: Arc<CrdtConsensus>,
    _dir: tempfile::TempDir,
}

/// A CRDT peer on its own cluster swarm; `trusted`: the peers it trusts (`None`: all).
async fn node(tasks: &Tasks, trusted: Option<Vec<PeerId>>) -> Node {
    let keypair = libp2p::identity::Keypair::generate_ed25519();
    let id = keypair.public().to_peer_id();
    let trust = match &trusted {
        None => Trust::All,
        Some(t) => Trust::Only(t.iter().map(|p| p.to_string()).collect::<HashSet<_>>()),
    };
    let check = trust.clone();
    let (heard_tx, heard_rx) = mpsc::channel(64);
    let rpc = ClusterRpc::start(
        SwarmOptions {
            keypair,
            secret: [9; 32],
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            announce: Vec::new(),
            request_timeout: Duration::from_secs(5),
            limits: SwarmLimits::default(),
            pubsub: Some(Pubsub {
                topic: wire::topic("net-test"),
                trusted: Arc::new(move |p: &PeerId| check.trusts(&p.to_string())),
                heard: heard_tx,
            }),
        },
        tasks,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (changes, mut changes_rx) = feed(1 << 12);
    tasks.spawn(async move { while changes_rx.recv().await.is_some() {} });
    let store = Arc::new(
        CrdtStore::open(&db_path(dir.path()), changes)
            .await
            .unwrap(),
    );
    let bitswap = Bitswap::start(
        rpc.stream_control(),
        Arc::new(StoreBlocks(store.clone())),
        tasks,
    )
    .unwrap();
    let net = Arc::new(CrdtNet {
        rpc: rpc.clone(),
        bitswap,
    });
    let c = CrdtConsensus::start(
        store,
        CrdtOptions {
            peer_id: id.to_string(),
            batching: None,
            max_queue_size: 50_000,
            follower: false,
            trust,
            rebroadcast_interval: Duration::from_millis(300),
            sync: SyncOptions {
                workers: 8,
                fetch_timeout: Duration::from_secs(5),
            },
            topic: "test".into(),
            keypair: None,
            checkpoint_every: 0,
            signers: Default::default(),
        },
        net,
        heard_rx,
        tasks,
    )
    .await
    .unwrap();
    Node {
        id,
        rpc,
        c,
        _dir: dir,
    }
}

async fn link(a: &Node, b: &Node) {
    a.rpc.connect(b.id, b.rpc.listen_addrs()).await;
}

fn pin(n: u32) -> Pin {
    Pin::new(
        Cid(wire::block_cid(&n.to_be_bytes())),
        PinOptions::default(),
    )
}

async fn has(n: &Node, p: &Pin) -> bool {
    n.c.state().get(&p.cid).await.unwrap().is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_reaches_every_peer_over_the_cluster_swarm() {
    let tasks = Tasks::new();
    let nodes = [
        node(&tasks, None).await,
        node(&tasks, None).await,
        node(&tasks, None).await,
    ];
    // A line: 0 - 1 - 2. The pin of 0 reaches 2 through 1 (gossip passes heads on; 2
    // fetches the block from 1, which took it from 0).
    link(&nodes[0], &nodes[1]).await;
    link(&nodes[1], &nodes[2]).await;
    let p = pin(1);
    nodes[0].c.log_pin(p.clone()).await.unwrap();
    for n in &nodes[1..] {
        until(30, "the pin on every peer", || has(n, &p)).await;
    }
    nodes[2].c.log_unpin(p.cid).await.unwrap();
    for n in &nodes {
        until(30, "the unpin on every peer", || async {
            !has(n, &p).await
        })
        .await;
    }
    tasks.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_not_trusted_is_rejected_by_the_topics_validator() {
    let tasks = Tasks::new();
    let trusted = node(&tasks, Some(vec![])).await;
    let t = trusted.id;
    let stranger = node(&tasks, None).await;
    let careful = node(&tasks, Some(vec![t])).await;
    link(&stranger, &careful).await;
    link(&trusted, &careful).await;
    let theirs = pin(7);
    let ours = pin(8);
    stranger.c.log_pin(theirs.clone()).await.unwrap();
    trusted.c.log_pin(ours.clone()).await.unwrap();
    until(30, "the trusted peer's pin", || has(&careful, &ours)).await;
    // The stranger's heads are said again and again; the careful peer's validator rejects
    // them (and its CRDT never sees them: the component's own check counts none).
    until(30, "the stranger's heads rejected thrice", || async {
        crate::components::PeerRpc::pubsub_rejected(&careful.rpc) >= 3
    })
    .await;
    assert!(!has(&careful, &theirs).await);
    assert_eq!(careful.c.untrusted_broadcasts(), 0);
    tasks.shutdown().await;
}
