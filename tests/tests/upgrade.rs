//! Upgrades that lose nothing: what release 0.1.0 left on disk (`tests/fixtures/upgrade/0.1.0`,
//! made by its own binaries) opens with this build's real binaries and holds every pin that
//! release acknowledged; peers of this build and peers speaking only 0.1.0's cluster RPC work
//! together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cluster_tests::*;
use ipfs_cluster::types::{Pin, PinOptions};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upgrade/0.1.0")
}

/// Every pin 0.1.0 acknowledged, by CID (`pins.json`: `pin ls --enc json` at the end).
fn acknowledged() -> BTreeMap<String, Pin> {
    let text = std::fs::read_to_string(fixtures().join("pins.json")).unwrap();
    let pins: Vec<Pin> = serde_json::from_str(&text).unwrap();
    assert!(pins.len() > 50, "{} pins", pins.len());
    pins.into_iter().map(|p| (p.cid.to_string(), p)).collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// A peer folder made by this build's `init`, given fixture peer `n`'s identity, cluster
/// secret, Raft settings and Raft state (as 0.1.0 left it).
fn peer_of_0_1_0(dir: &Path, n: u8, ipfs: &IpfsNode) -> Peer {
    let from = fixtures().join(format!("peer{n}"));
    let old: Value =
        serde_json::from_str(&std::fs::read_to_string(from.join("service.json")).unwrap()).unwrap();
    let peer = Peer::init(dir, ipfs, |cfg| {
        cfg["cluster"]["secret"] = old["cluster"]["secret"].clone();
        cfg["consensus"]["raft"] = old["consensus"]["raft"].clone();
    })
    .unwrap();
    std::fs::copy(from.join("identity.json"), dir.join("identity.json")).unwrap();
    copy_dir(&from.join("raft"), &dir.join("raft"));
    peer
}

fn peer_id(dir: &Path) -> String {
    let id: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("identity.json")).unwrap()).unwrap();
    id["id"].as_str().unwrap().to_string()
}

/// The two voters 0.1.0 left, stopped, start again with this build: each finds its Raft
/// state (migrated to this version's schema), they elect a leader, every pin 0.1.0
/// acknowledged is there with its options, and new writes commit.
#[tokio::test]
async fn the_voters_0_1_0_left_restart_on_this_release_with_every_pin() {
    let dir = tempfile::tempdir().unwrap();
    let mut peers = Vec::new();
    let mut nodes = Vec::new();
    for n in [1u8, 2] {
        let home = dir.path().join(format!("node{n}"));
        std::fs::create_dir_all(&home).unwrap();
        let node = IpfsNode::start(&home).await.unwrap();
        peers.push(peer_of_0_1_0(
            &dir.path().join(format!("peer{n}")),
            n,
            &node,
        ));
        nodes.push(node);
    }
    // Each knows where the other listens now (the addresses in the Raft state are 0.1.0's).
    for (me, other) in [(0, 1), (1, 0)] {
        let line = format!(
            "/ip4/127.0.0.1/tcp/{}/p2p/{}\n",
            peers[other].swarm_port,
            peer_id(&peers[other].dir)
        );
        std::fs::write(peers[me].dir.join("peerstore"), line).unwrap();
    }
    for p in peers.iter_mut() {
        p.start(&[]).await.unwrap();
    }
    let want = acknowledged();
    for p in &peers {
        let have: BTreeMap<String, Pin> = p
            .client()
            .allocations("")
            .await
            .gather()
            .await
            .unwrap()
            .into_iter()
            .map(|p| (p.cid.to_string(), p))
            .collect();
        assert_eq!(
            have.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
        for (cid, pin) in &want {
            assert_eq!(have[cid].options, pin.options, "{cid}");
            assert_eq!(have[cid].allocations, pin.allocations, "{cid}");
        }
    }
    let cid = nodes[1].add(&unique("after the upgrade")).await.unwrap();
    peers[1]
        .client()
        .pin(&cid, &PinOptions::default())
        .await
        .unwrap();
    wait_for("the new pin on both peers", DEADLINE, || async {
        for p in &peers {
            p.client().allocation(&cid).await.ok()?;
        }
        Some(())
    })
    .await
    .unwrap();
}

/// `state import` of 0.1.0's `state export` gives a new peer every pin, options and all.
#[tokio::test]
async fn a_state_export_of_0_1_0_imports_with_every_pin() {
    let dir = tempfile::tempdir().unwrap();
    let node = IpfsNode::start(dir.path()).await.unwrap();
    let mut peer = Peer::init(&dir.path().join("peer"), &node, |_| {}).unwrap();
    let export = fixtures().join("state-export.ndjson");
    let out = service(
        &peer.dir,
        &["state", "import", "-f", export.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    peer.start(&[]).await.unwrap();
    let have: BTreeMap<String, Pin> = peer
        .client()
        .allocations("")
        .await
        .gather()
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.cid.to_string(), p))
        .collect();
    let want = acknowledged();
    assert_eq!(
        have.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (cid, pin) in &want {
        assert_eq!(have[cid].options, pin.options, "{cid}");
    }
}

/// A peer of 0.1.0, as far as the cluster can tell: this build speaking only 0.1.0's cluster
/// RPC protocol (`IPFS_CLUSTER_RPC_RELEASES=0.1.0`), whose messages are 0.1.0's byte for
/// byte (`rpc::versions`' test on the messages 0.1.0's peers recorded).
const AS_0_1_0: (&str, &str) = ("IPFS_CLUSTER_RPC_RELEASES", "0.1.0");

/// Peers of this release and a peer of 0.1.0 work as one cluster (joins, writes forwarded
/// through the old peer, global status with no `cluster_error`); the leader, stopped on
/// purpose, hands leadership over to the voter of this release (the 0.1.0 one cannot be
/// asked: its protocol lacks the call), and no write sent through the 0.1.0 peer meanwhile
/// fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_of_0_1_0_works_with_this_release_and_a_stopping_leader_hands_over() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "7e".repeat(32);
    let mut nodes = Vec::new();
    let mut peers = Vec::new();
    for n in 0..3 {
        let home = dir.path().join(format!("node{n}"));
        std::fs::create_dir_all(&home).unwrap();
        let node = IpfsNode::start(&home).await.unwrap();
        let peer = Peer::init(&dir.path().join(format!("peer{n}")), &node, |cfg| {
            cfg["cluster"]["secret"] = secret.clone().into();
        })
        .unwrap();
        nodes.push(node);
        peers.push(peer);
    }
    peers[0].start(&[]).await.unwrap();
    let boot = peers[0].cluster_addr();
    peers[1]
        .start_env(&["--bootstrap", &boot], &[AS_0_1_0])
        .await
        .unwrap();
    peers[2].start(&["--bootstrap", &boot]).await.unwrap();
    let ids: Vec<String> = peers.iter().map(Peer::id).collect();
    wait_for("three members answering", DEADLINE, || async {
        let all = peers[0].client().peers().await.ok()?;
        (all.len() == 3 && all.iter().all(|p| p.error.is_empty())).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(
        peers[0].client().id().await.unwrap().leader.as_deref(),
        Some(ids[0].as_str())
    );
    // A write through the 0.1.0 peer (forwarded to the leader on 0.1.0's protocol), seen
    // pinned by every peer in global status asked of this release's peers.
    let cid = identity_cid("through the peer of 0.1.0");
    peers[1]
        .client()
        .pin(&cid, &PinOptions::default())
        .await
        .unwrap();
    for p in [&peers[0], &peers[2]] {
        wait_for("pinned on every peer", DEADLINE, || async {
            let g = p.client().status(&cid).await.ok()?;
            (g.peer_map.len() == 3
                && g.peer_map
                    .values()
                    .all(|s| s.status == ipfs_cluster::types::TrackerStatus::Pinned))
            .then_some(())
        })
        .await
        .unwrap();
    }
    // Writes through the 0.1.0 peer, one after another, while the leader stops.
    let client = peers[1].client();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn({
        let stop = stop.clone();
        async move {
            let (mut acked, mut failed) = (Vec::new(), Vec::new());
            let mut longest = std::time::Duration::ZERO;
            let mut last = std::time::Instant::now();
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let cid = identity_cid(&format!("written during the hand-over {n}"));
                match client.pin(&cid, &PinOptions::default()).await {
                    Ok(_) => {
                        longest = longest.max(last.elapsed());
                        last = std::time::Instant::now();
                        acked.push((cid, last));
                    }
                    Err(e) => failed.push(format!("{cid}: {e}")),
                }
            }
            (acked, failed, longest)
        }
    });
    wait_for("writes under way", DEADLINE, || async {
        (!writer.is_finished()).then_some(())
    })
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let stopping = std::time::Instant::now();
    peers[0].stop();
    let log = peers[0].current_log();
    for (i, p) in peers.iter().enumerate() {
        for line in p
            .current_log()
            .lines()
            .filter(|l| l.contains("leader") || l.contains("election") || l.contains("vote"))
        {
            eprintln!("peer{i}: {line}");
        }
    }
    assert!(
        log.contains(&format!("handed leadership to {}", ids[2])),
        "the leader did not hand over to the voter of this release:\n{log}"
    );
    assert!(
        !log.contains(&format!("handed leadership to {}", ids[1])),
        "{log}"
    );
    // More writes once the new leader leads, then the writer stops.
    let client = peers[2].client();
    wait_for("the voter of this release to lead", DEADLINE, || async {
        (client.id().await.ok()?.leader.as_deref() == Some(ids[2].as_str())).then_some(())
    })
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acked, failed, longest) = writer.await.unwrap();
    eprintln!(
        "{} writes through the 0.1.0 peer, longest pause {longest:?}",
        acked.len()
    );
    assert!(failed.is_empty(), "writes failed: {failed:?}");
    // Writes went on before the stop and after it.
    assert!(
        acked.iter().any(|(_, at)| *at < stopping) && acked.iter().any(|(_, at)| *at > stopping),
        "{} writes, none on one side of the stop",
        acked.len()
    );
    for p in [&peers[1], &peers[2]] {
        for (cid, _) in &acked {
            wait_for("every acknowledged pin", DEADLINE, || async {
                p.client().allocation(cid).await.ok()
            })
            .await
            .unwrap();
        }
    }
}
