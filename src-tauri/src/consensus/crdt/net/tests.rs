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
use crate::components::{Consensus, Monitor};
use crate::rpc::{Pubsub, SwarmLimits, SwarmOptions};
use crate::state::feed::feed;
use crate::tasks::Tasks;
use crate::types::{Cid, Pin, PinOptions};

struct Node {
    id: PeerId,
    rpc: ClusterRpc,
    c: Arc<CrdtConsensus>,
    monitor: Arc<crate::monitor::PeerMonitor>,
    bans: Arc<super::super::bans::Bans>,
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
    let dir = tempfile::tempdir().unwrap();
    let monitor = Arc::new(crate::monitor::PeerMonitor::default());
    let bans = Arc::new(super::super::bans::Bans::load(dir.path()).unwrap());
    let (heard_by, banned, met) = (monitor.clone(), bans.clone(), monitor.clone());
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
                metric: Arc::new(move |m| heard_by.log_metric(m)),
                banned: Arc::new(move |p: &PeerId| banned.contains(&p.to_string())),
                met: Arc::new(move |p: PeerId| {
                    met.log_metric(crate::informer::ping(
                        &p.to_string(),
                        Duration::from_secs(30),
                    ))
                }),
            }),
        },
        tasks,
    )
    .await
    .unwrap();
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
            drop_old_deltas: false,
        },
        net,
        heard_rx,
        tasks,
    )
    .await
    .unwrap();
    c.keep_bans(bans.clone());
    Node {
        id,
        rpc,
        c,
        monitor,
        bans,
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

/// Publishes `m` from `from` (again every 100 ms: the mesh forms within a heartbeat) until
/// each of `by` holds it as `from`'s current metric of that name.
async fn heard_when_published(from: &Node, m: &crate::types::Metric, by: &[&Node]) {
    use crate::components::PeerRpc;
    let peer = from.id.to_string();
    until(30, &format!("{} of {peer} heard", m.name), || async {
        from.rpc.publish_metrics(vec![m.clone()]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        by.iter()
            .all(|n| n.monitor.current(&m.name, &peer).is_some())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_the_topic_are_heard_only_about_their_signer_and_never_from_a_banned_peer() {
    use crate::components::PeerRpc;
    use crate::consensus::RaftService as _;
    let tasks = Tasks::new();
    let nodes = [
        node(&tasks, None).await,
        node(&tasks, None).await,
        node(&tasks, None).await,
    ];
    link(&nodes[0], &nodes[1]).await;
    link(&nodes[0], &nodes[2]).await;
    // A peer met on the topic has a ping at once (IPFS Cluster's logPingMetric); the one
    // not connected (2, seen from 1) only once its own metrics arrive.
    until(30, "1 met by 0", || async {
        nodes[0]
            .monitor
            .current("ping", &nodes[1].id.to_string())
            .is_some()
    })
    .await;
    let ping = |of: &Node| {
        let mut m = crate::informer::ping(&of.id.to_string(), Duration::from_secs(30));
        m.name = "tag:own".into();
        m
    };
    // Published until heard (the mesh forms within a heartbeat), passed on by 0 to 2.
    heard_when_published(&nodes[1], &ping(&nodes[1]), &[&nodes[0], &nodes[2]]).await;
    // Speaking for another peer: rejected by the validator, heard by no one.
    let mut forged = ping(&nodes[2]);
    forged.name = "tag:forged".into();
    for _ in 0..5 {
        nodes[1].rpc.publish_metrics(vec![forged.clone()]).await;
    }
    // Expired (an old message sent again), or a name no informer uses: not heard.
    let mut stale = ping(&nodes[1]);
    stale.name = "tag:stale".into();
    stale.expire = crate::types::Metric::now_ns() - 1;
    let mut junk = ping(&nodes[1]);
    junk.name = "junk".into();
    for _ in 0..5 {
        nodes[1]
            .rpc
            .publish_metrics(vec![stale.clone(), junk.clone()])
            .await;
    }
    // 2's own metric, after the forged ones.
    heard_when_published(&nodes[2], &ping(&nodes[2]), &[&nodes[0]]).await;
    // A metric's expiry is held to an hour from now.
    let mut forever = ping(&nodes[1]);
    forever.name = "tag:forever".into();
    forever.expire = i64::MAX;
    heard_when_published(&nodes[1], &forever, &[&nodes[0]]).await;
    // (Published by 1 before the long-lived one, on the same link: they would be in.)
    assert!(
        nodes[0].monitor.latest("tag:stale").is_empty(),
        "an expired metric"
    );
    assert!(
        nodes[0].monitor.latest("junk").is_empty(),
        "a name no informer uses"
    );
    assert!(
        nodes[0].monitor.latest("tag:forged").is_empty(),
        "a metric about another peer"
    );
    let held = nodes[0].monitor.latest("tag:forever")[0].expire;
    assert!(held <= crate::types::Metric::now_ns() + 3_601 * 1_000_000_000);
    // 0 bans 1: 1 is refused as a caller, its connection closes, what it publishes next is
    // not heard, and it stays out after it dials again.
    nodes[0].c.rm_peer(&nodes[1].id.to_string()).await.unwrap();
    assert!(nodes[0].bans.contains(&nodes[1].id.to_string()));
    assert!(!NoRaft(nodes[0].c.clone()).is_member(&nodes[1].id.to_string()));
    assert!(NoRaft(nodes[0].c.clone()).is_member(&nodes[2].id.to_string()));
    nodes[0].monitor.forget(&nodes[1].id.to_string());
    nodes[0].rpc.disconnect(nodes[1].id).await;
    link(&nodes[1], &nodes[0]).await;
    let mut after = ping(&nodes[1]);
    after.name = "tag:after-ban".into();
    for _ in 0..10 {
        nodes[1].rpc.publish_metrics(vec![after.clone()]).await;
        link(&nodes[1], &nodes[0]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 2's metrics still arrive (published after 1's: the topic is ordered per peer pair).
    let mut later = ping(&nodes[2]);
    later.name = "tag:later".into();
    heard_when_published(&nodes[2], &later, &[&nodes[0]]).await;
    assert!(
        nodes[0].monitor.latest("tag:after-ban").is_empty(),
        "a banned peer is not heard"
    );
    assert!(
        !nodes[0].rpc.connected_peers().contains(&nodes[1].id),
        "a banned peer's connections are closed"
    );
    // A peer cannot ban itself.
    assert!(nodes[0].c.rm_peer(&nodes[0].id.to_string()).await.is_err());
    tasks.shutdown().await;
}
