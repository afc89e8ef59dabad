//! The CRDT consensus with real peer processes (and real IPFS nodes), formed by
//! `--bootstrap` on 127.0.0.1: a pin reaches every peer; a peer alone (the others stopped)
//! pins 100 CIDs and the others take them when they are back; writes on both sides of a
//! split merge; a follower refuses writes; a crash with a batch in progress loses no
//! acknowledged pin; IPFS Cluster's own CRDT `service.json` loads and runs; the peerset is the
//! peers heard on the metrics topic, and `peers rm` bans one for good.

use cluster_tests::*;
use ipfs_cluster::types::PinOptions;
use serde_json::Value;

/// Makes a `service.json` a CRDT peer's, as `init --consensus crdt` writes it, with the
/// test's `crdt` settings.
fn crdt(cfg: &mut Value, settings: Value) {
    let consensus = cfg["consensus"].as_object_mut().unwrap();
    consensus.remove("raft");
    consensus.insert("crdt".into(), settings);
}

fn crdt_default(cfg: &mut Value) {
    crdt(
        cfg,
        serde_json::json!({"cluster_name": "crdt-test", "trusted_peers": ["*"]}),
    );
}

/// A CID as the pinset lists it (identity CIDs are written in base16 here, listed in base32).
fn listed(cid: &str) -> String {
    cid.parse::<ipfs_cluster::types::Cid>().unwrap().to_string()
}

/// Waits until peer `i` lists every one of `cids` in its pinset.
async fn holds(c: &TestCluster, i: usize, cids: &[String]) {
    let cids: Vec<String> = cids.iter().map(|c| listed(c)).collect();
    let client = c.peers[i].client();
    wait_for(
        &format!("peer {i} to hold {} pins", cids.len()),
        DEADLINE,
        || async {
            let have = pinset(&client).await;
            cids.iter().all(|c| have.contains(c)).then_some(())
        },
    )
    .await
    .unwrap();
}

/// Waits until peer `i` no longer lists `cid` in its pinset.
async fn drops(c: &TestCluster, i: usize, cid: &str) {
    let cid = listed(cid);
    let client = c.peers[i].client();
    wait_for(
        &format!("peer {i} to drop the unpinned {cid}"),
        DEADLINE,
        || async { (!pinset(&client).await.contains(&cid)).then_some(()) },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_alone_pins_100_cids_and_every_peer_holds_them_once_it_is_back() {
    let mut c = TestCluster::start_custom(3, |_| "10GB".into(), |_, cfg| crdt_default(cfg))
        .await
        .unwrap();
    // Formed: a pin on one reaches the others, and their IPFS nodes pin it.
    let first = c.ipfs[1].add(&unique("crdt first")).await.unwrap();
    let out = c.peers[1].ctl(&["pin", "add", &first, "--name", "first"]);
    assert!(out.status.success(), "{}", text(&out));
    for i in 0..3 {
        holds(&c, i, std::slice::from_ref(&first)).await;
        c.peers[i].wait_status(&first, "pinned").await.unwrap();
    }
    // Peer 2 alone: the others stopped. It pins 100 CIDs, offline.
    c.peers[0].stop();
    c.peers[1].stop();
    let alone = c.peers[2].client();
    let mut offline = Vec::new();
    for n in 0..100 {
        let cid = identity_cid(&format!("offline {n}"));
        alone.pin(&cid, &PinOptions::default()).await.unwrap();
        offline.push(cid);
    }
    // Meanwhile, back on their side, the others unpin the first pin (peer 2 does not see it).
    c.peers[0].start(&[]).await.unwrap();
    c.peers[1].start(&[]).await.unwrap();
    c.peers[2].stop();
    c.peers[0].client().unpin(&first).await.unwrap();
    let theirs = identity_cid("their side");
    c.peers[1]
        .client()
        .pin(&theirs, &PinOptions::default())
        .await
        .unwrap();
    // Healed: everyone holds both sides' writes, and the unpin.
    c.peers[2].start(&[]).await.unwrap();
    let mut all = offline.clone();
    all.push(theirs.clone());
    for i in 0..3 {
        holds(&c, i, &all).await;
    }
    for i in 0..3 {
        drops(&c, i, &first).await;
        assert_eq!(pinset(&c.peers[i].client()).await.len(), 101, "peer {i}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_refuses_writes_and_follows_the_pinset() {
    let mut c = TestCluster::start_custom(
        2,
        |_| "10GB".into(),
        |i, cfg| {
            crdt_default(cfg);
            if i == 1 {
                cfg["cluster"]["follower_mode"] = true.into();
            }
        },
    )
    .await
    .unwrap();
    let cid = identity_cid("followed");
    let follower = c.peers[1].client();
    let err = follower
        .pin(&cid, &PinOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("follower_mode"), "{err}");
    let out = c.peers[1].ctl(&["pin", "add", &cid]);
    assert!(!out.status.success());
    assert!(text(&out).contains("follower_mode"), "{}", text(&out));
    c.peers[0]
        .client()
        .pin(&cid, &PinOptions::default())
        .await
        .unwrap();
    holds(&c, 1, std::slice::from_ref(&cid)).await;
    c.peers[1].stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_with_a_batch_in_progress_loses_no_acknowledged_pin() {
    let mut c = TestCluster::start_custom(
        2,
        |_| "10GB".into(),
        |_, cfg| {
            crdt(
                cfg,
                serde_json::json!({
                    "cluster_name": "crdt-batch",
                    "trusted_peers": ["*"],
                    // Batches go out by size or after a minute: the crash comes first.
                    "batching": {"max_batch_size": 1000, "max_batch_age": "1m"}
                }),
            )
        },
    )
    .await
    .unwrap();
    let client = c.peers[0].client();
    let mut acked = Vec::new();
    for n in 0..20 {
        let cid = identity_cid(&format!("batched {n}"));
        client.pin(&cid, &PinOptions::default()).await.unwrap();
        acked.push(cid);
    }
    c.peers[0].kill9();
    c.peers[0].start(&[]).await.unwrap();
    holds(&c, 0, &acked).await;
    holds(&c, 1, &acked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ipfs_clusters_own_crdt_service_json_loads_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let ipfs = IpfsNode::start(dir.path()).await.unwrap();
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/ipfs-cluster-v1.1-crdt-service.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut peer = Peer::init(&dir.path().join("cluster"), &ipfs, |cfg| {
        // The fixture as IPFS Cluster wrote it, on this test's ports and IPFS node.
        let mut f = fixture.clone();
        for key in [
            "/api/restapi/http_listen_multiaddress",
            "/api/ipfsproxy/listen_multiaddress",
            "/api/ipfsproxy/node_multiaddress",
            "/api/pinsvcapi/http_listen_multiaddress",
            "/cluster/listen_multiaddress",
            "/ipfs_connector/ipfshttp/node_multiaddress",
        ] {
            *f.pointer_mut(key).unwrap() = cfg.pointer(key).unwrap().clone();
        }
        *cfg = f;
    })
    .unwrap();
    peer.start(&[]).await.unwrap();
    let cid = ipfs.add(&unique("fixture crdt")).await.unwrap();
    peer.client()
        .pin(&cid, &PinOptions::default())
        .await
        .unwrap();
    peer.wait_status(&cid, "pinned").await.unwrap();
    assert!(ipfs.is_pinned(&cid).await.unwrap());
    let id = peer.client().id().await.unwrap();
    assert_eq!(id.leader, None, "no leader in a CRDT cluster");
    peer.stop();
}

/// Done-when (1) across machines: three test hosts (network namespaces on one bridge); host
/// 2's link is cut while its peer keeps running, until the others have found its connections
/// dead. It pins 100 CIDs alone while the others unpin one and pin another; once the link is
/// back every peer holds both sides' writes.
/// The time from the link's return to the last peer holding everything is printed (the
/// figure in `bench/`); the test itself only waits with the harness's deadline.
#[tokio::test(flavor = "multi_thread")]
async fn a_peer_cut_off_by_the_network_pins_100_cids_and_every_peer_holds_them_after_healing() {
    let Some(net) = Net::create(3).unwrap() else {
        return;
    };
    let c = TestCluster::start_on_hosts(&net.hosts, 0, |_, cfg| crdt_default(cfg))
        .await
        .unwrap();
    let first = identity_cid("before the partition");
    c.peers[0]
        .client()
        .pin(&first, &PinOptions::default())
        .await
        .unwrap();
    for i in 0..3 {
        holds(&c, i, std::slice::from_ref(&first)).await;
    }
    // The peerset is the peers connected: peer 0 lists peer 2.
    let other = c.peers[0].client();
    let cut_off_id = c.peers[2].id();
    let lists = |listed: bool| {
        let (other, cut_off_id) = (&other, &cut_off_id);
        async move {
            let id = other.id().await.ok()?;
            (id.cluster_peers.contains(cut_off_id) == listed).then_some(())
        }
    };
    wait_for("peer 0 to list peer 2", DEADLINE, || lists(true))
        .await
        .unwrap();
    net.hosts[2].cut_off().unwrap();
    // Peer 2 is reached from its own host while cut off (ctl in its namespace).
    let mut all = Vec::new();
    for n in 0..100 {
        let cid = identity_cid(&format!("cut off {n}"));
        let out = c.peers[2].ctl(&["pin", "add", &cid]);
        assert!(out.status.success(), "{}", text(&out));
        all.push(cid);
    }
    c.peers[0].client().unpin(&first).await.unwrap();
    let theirs = identity_cid("the connected side");
    c.peers[1]
        .client()
        .pin(&theirs, &PinOptions::default())
        .await
        .unwrap();
    all.push(theirs);
    // Neither side saw the other's writes while cut off.
    assert!(!pinset(&c.peers[0].client())
        .await
        .contains(&listed(&all[0])));
    let theirs_alone = text(&c.peers[2].ctl(&["pin", "ls"]));
    assert!(theirs_alone.contains(&listed(&first)), "{theirs_alone}");
    // A partition long enough for the connections to be found dead (no answer to pings) and
    // closed: healing then needs a new connection, dialed by the peers.
    wait_for(
        "peer 0 to close its connection to the peer cut off (and list it no more)",
        DEADLINE,
        || lists(false),
    )
    .await
    .unwrap();
    net.hosts[2].reconnect().unwrap();
    let healed = std::time::Instant::now();
    for i in 0..3 {
        holds(&c, i, &all).await;
        drops(&c, i, &first).await;
    }
    eprintln!(
        "FIGURE crdt partition healed: every peer holds both sides' writes {:.1} s after the link came back",
        healed.elapsed().as_secs_f64()
    );
    for i in 0..3 {
        assert_eq!(pinset(&c.peers[i].client()).await.len(), 101, "peer {i}");
    }
    drop(c);
    drop(net);
}

/// Done-when (3): 50 follower processes (their IPFS connector pointed at nothing) follow 3
/// trusted peers, each trusting only the peer it bootstrapped from; a pin on one trusted peer
/// reaches every follower. The time from the pin's acknowledgement to the last follower
/// listing it is printed (the figure in `bench/`).
#[tokio::test(flavor = "multi_thread")]
async fn fifty_followers_of_three_trusted_peers_all_get_a_pin() {
    let followers = std::env::var("CRDT_FOLLOWERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let mut c = TestCluster::start_consensus_only(&[], 3, 0, |cfg| {
        crdt(
            cfg,
            serde_json::json!({"cluster_name": "crdt-followers", "trusted_peers": ["*"]}),
        )
    })
    .await
    .unwrap();
    let mut started = Vec::new();
    for n in 0..followers {
        let i = c
            .add_peer_on(None, n % 3, |cfg| {
                cfg["cluster"]["follower_mode"] = true.into();
                // Trusted: only the peer it bootstraps from (as `ipfs-cluster-follow`'s
                // templates name the cluster's trusted peers).
                crdt(
                    cfg,
                    serde_json::json!({"cluster_name": "crdt-followers", "trusted_peers": []}),
                )
            })
            .await
            .unwrap();
        started.push(i);
    }
    for &i in &started {
        c.peers[i].wait_ready().await.unwrap();
    }
    // A follower refuses writes.
    let refused = c.peers[started[0]]
        .client()
        .pin(&identity_cid("from a follower"), &PinOptions::default())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("follower"), "{refused}");
    let cid = listed(&identity_cid("to every follower"));
    let t = std::time::Instant::now();
    c.peers[0]
        .client()
        .pin(&cid, &PinOptions::default())
        .await
        .unwrap();
    let acked = t.elapsed();
    let clients: Vec<_> = started.iter().map(|&i| c.peers[i].client()).collect();
    // Those not yet seen holding it (asked again each round).
    let waiting = std::sync::Mutex::new((0..clients.len()).collect::<Vec<usize>>());
    wait_for("every follower to list the pin", DEADLINE, || {
        let (clients, waiting, cid) = (&clients, &waiting, &cid);
        async move {
            let asked = waiting.lock().unwrap().clone();
            let mut still = Vec::new();
            for f in asked {
                if clients[f].allocation(cid).await.is_err() {
                    still.push(f);
                }
            }
            let done = still.is_empty();
            *waiting.lock().unwrap() = still;
            done.then_some(())
        }
    })
    .await
    .unwrap();
    eprintln!(
        "FIGURE crdt followers: a pin reached all {followers} followers {:.1} s after it was acknowledged",
        (t.elapsed() - acked).as_secs_f64()
    );
}

/// `crdt.drop_old_deltas`: a peer drops the deltas its checkpoint covers once every other
/// trusted peer is heard above it (peer 0 trusts only itself: at once); a peer that was
/// stopped meanwhile finds, back, that no peer gives the blocks it lacks, merges the
/// checkpoint offered and holds every pin, what comes after reaches it as deltas, and it
/// drops in turn once it hears peer 0 above its own checkpoint.
#[tokio::test(flavor = "multi_thread")]
async fn old_deltas_are_dropped_and_a_peer_back_from_away_merges_a_checkpoint() {
    let settings = serde_json::json!({
        "cluster_name": "crdt-drop",
        "trusted_peers": [],
        "checkpoint_every": 5,
        "drop_old_deltas": true,
        "rebroadcast_interval": "1s",
    });
    let mut c = TestCluster::start_consensus_only(&[], 2, 0, |cfg| crdt(cfg, settings.clone()))
        .await
        .unwrap();
    let client = c.peers[0].client();
    let pin = |cids: Vec<String>| {
        let client = client.clone();
        async move {
            for cid in &cids {
                client.pin(cid, &PinOptions::default()).await.unwrap();
            }
            cids
        }
    };
    let before = pin((0..3).map(|n| identity_cid(&format!("drop {n}"))).collect()).await;
    holds(&c, 1, &before).await;
    c.peers[1].stop();
    let away = pin((3..25)
        .map(|n| identity_cid(&format!("drop {n}")))
        .collect())
    .await;
    c.peers[0]
        .wait_logged("CRDT deltas below the checkpoint dropped", DEADLINE)
        .await
        .unwrap();
    let boot = format!(
        "/ip4/127.0.0.1/tcp/{}/p2p/{}",
        c.peers[0].swarm_port,
        c.peers[0].id()
    );
    c.peers[1].start(&["--bootstrap", &boot]).await.unwrap();
    c.peers[1]
        .wait_logged("CRDT checkpoint merged", DEADLINE)
        .await
        .unwrap();
    holds(&c, 1, &[before, away].concat()).await;
    let after = pin(vec![identity_cid("drop after")]).await;
    holds(&c, 1, &after).await;
    // Peer 1 trusts peer 0 (its bootstrap peer): it makes a checkpoint of its own and drops
    // what it covers once peer 0 says, holding all below, heads above it.
    c.peers[1]
        .wait_logged("CRDT deltas below the checkpoint dropped", DEADLINE)
        .await
        .unwrap();
}

/// Asserts that peer `i` lists `pins` pins (`/allocations`).
async fn lists_every_pin(c: &TestCluster, i: usize, pins: usize) {
    let listed = c.peers[i].read_stream("/allocations").await.unwrap().lines;
    assert_eq!(listed, pins, "peer {i} lists every imported pin");
}

/// The `crdt` settings of the checkpoint tests: checkpoints after 5 blocks.
fn checkpoint_settings() -> Value {
    serde_json::json!({
        "cluster_name": "crdt-checkpoint",
        "trusted_peers": ["*"],
        "checkpoint_every": 5,
    })
}

/// One CRDT peer holding `pins` pins put in by `state import`, once it has made a checkpoint
/// of them.
async fn peer_with_checkpoint(pins: usize) -> TestCluster {
    let settings = checkpoint_settings();
    let mut c = TestCluster::start_consensus_only(&[], 1, 0, |cfg| crdt(cfg, settings.clone()))
        .await
        .unwrap();
    c.peers[0].stop();
    c.peers[0].import_pins((0..pins).map(|n| {
        let cid = identity_cid(&format!("pin {n:07}"));
        ipfs_cluster::types::Pin::new(cid.parse().unwrap(), PinOptions::default())
    }));
    c.peers[0].start(&[]).await.unwrap();
    c.peers[0]
        .wait_logged("CRDT checkpoint made", DEADLINE * 3)
        .await
        .unwrap();
    c
}

/// Done-when (4), at the scale of a test run: a peer of a cluster of `CRDT_CHECKPOINT_PINS`
/// pins (20,000 unless told; the bench runs 1,000,000) made by `state import`, with a
/// checkpoint made at start; a new peer loads the checkpoint (not one of the import's
/// deltas walked) and holds every pin. The time from its start to holding every pin is
/// printed (the figure in `bench/`).
#[tokio::test(flavor = "multi_thread")]
async fn a_new_peer_of_a_large_cluster_loads_a_checkpoint_and_holds_every_pin() {
    let pins: usize = std::env::var("CRDT_CHECKPOINT_PINS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let settings = checkpoint_settings();
    let mut c = peer_with_checkpoint(pins).await;
    let t = std::time::Instant::now();
    let joiner = c
        .add_peer_on(None, 0, |cfg| crdt(cfg, settings.clone()))
        .await
        .unwrap();
    c.peers[joiner]
        .wait_logged("CRDT checkpoint loaded", DEADLINE * 3)
        .await
        .unwrap();
    let loaded = t.elapsed();
    c.peers[joiner].wait_ready().await.unwrap();
    let log = c.peers[joiner].current_log();
    assert!(
        log.contains(&format!("pins={pins}")),
        "the checkpoint held every pin: {}",
        log.lines()
            .find(|l| l.contains("CRDT checkpoint loaded"))
            .unwrap_or_default()
    );
    lists_every_pin(&c, joiner, pins).await;
    let listed = t.elapsed();
    let rss = c.peers[joiner].rss().unwrap_or(0);
    // What comes after the checkpoint comes as deltas.
    let after = identity_cid("after the checkpoint");
    c.peers[0]
        .client()
        .pin(&after, &PinOptions::default())
        .await
        .unwrap();
    holds(&c, joiner, &[after]).await;
    eprintln!(
        "FIGURE crdt join: a new peer of a {pins}-pin cluster loaded its checkpoint {:.1} s after it started, and listed every pin {:.1} s after",
        loaded.as_secs_f64(),
        listed.as_secs_f64()
    );
    eprintln!(
        "FIGURE crdt memory: the new peer holding {pins} pins uses {:.0} MB",
        rss as f64 / 1e6
    );
}

/// Done-when (4), the interrupted sync: a new peer fetching a checkpoint over a slow link
/// (a relay delivering 1 MB/s in front of the only peer) is killed once it has kept a chunk;
/// restarted, it says how many chunks it kept from before, fetches only the others, and
/// holds every pin.
#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_load_cut_short_by_a_kill_resumes_after_a_restart() {
    let pins = 20_000;
    let settings = checkpoint_settings();
    let mut c = peer_with_checkpoint(pins).await;
    let target: std::net::SocketAddr = format!("127.0.0.1:{}", c.peers[0].swarm_port)
        .parse()
        .unwrap();
    let link = relay::Link {
        one_way: std::time::Duration::ZERO,
        loss: 0.0,
        bytes_per_sec: 1_000_000,
    };
    let slow = relay::Relay::start("127.0.0.1:0".parse().unwrap(), target, link)
        .await
        .unwrap();
    let boot = format!(
        "/ip4/127.0.0.1/tcp/{}/p2p/{}",
        slow.addr.port(),
        c.peers[0].id()
    );
    let joiner = c
        .add_peer_bootstrapping(
            None,
            &boot,
            &[(
                "RUST_LOG",
                "info,ipfs_cluster::consensus::crdt::checkpoint=debug",
            )],
            |cfg| crdt(cfg, settings.clone()),
        )
        .await
        .unwrap();
    c.peers[joiner]
        .wait_logged("CRDT checkpoint chunk kept", DEADLINE)
        .await
        .unwrap();
    c.peers[joiner].kill9();
    let first = c.peers[joiner].current_log();
    assert!(
        !first.contains("CRDT checkpoint loaded"),
        "the load was to be cut short, and it ended: make the link slower"
    );
    // Restarted (bootstrapping through the relay still): it resumes with what it kept.
    c.peers[joiner]
        .spawn_env(
            &["--bootstrap", &boot],
            &[(
                "RUST_LOG",
                "info,ipfs_cluster::consensus::crdt::checkpoint=debug",
            )],
        )
        .unwrap();
    c.peers[joiner]
        .wait_logged("resuming the CRDT checkpoint being loaded", DEADLINE)
        .await
        .unwrap();
    c.peers[joiner]
        .wait_logged("CRDT checkpoint loaded", DEADLINE * 2)
        .await
        .unwrap();
    let log = c.peers[joiner].current_log();
    let kept = log
        .lines()
        .find(|l| l.contains("chunks kept from before"))
        .unwrap_or_else(|| panic!("no chunks kept from before:\n{log}"));
    assert!(kept.contains("had=") && !kept.contains("had=0"), "{kept}");
    lists_every_pin(&c, joiner, pins).await;
}

/// The peer ids peer `i` lists (`peers ls`), sorted.
async fn listed_peers(c: &TestCluster, i: usize) -> Vec<String> {
    let mut ids: Vec<String> = c.peers[i]
        .client()
        .peers()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.id)
        .collect();
    ids.sort();
    ids
}

/// Waits until peer `i` lists exactly `want` (`peers ls`).
async fn lists_peers(c: &TestCluster, i: usize, want: &[&String]) {
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    let last = std::sync::Mutex::new(Vec::new());
    let r = wait_for(&format!("peer {i} to list {want:?}"), DEADLINE, || async {
        let now = listed_peers(c, i).await;
        let done = now == want;
        *last.lock().unwrap() = now;
        done.then_some(())
    })
    .await;
    if let Err(e) = r {
        panic!("{e}: it lists {:?}", last.lock().unwrap());
    }
}

/// When peer `i` last heard `peer`'s ping (`received_at`), if it holds one.
async fn ping_heard(c: &TestCluster, i: usize, peer: &str) -> Option<i64> {
    let pings = c.peers[i].client().metrics("ping").await.ok()?;
    pings
        .into_iter()
        .find(|m| m.peer == peer)
        .map(|m| m.received_at)
}

/// Waits until peer `i` has heard `n` fresh pings of `peer` (each received after the last).
async fn hears_fresh_pings(c: &TestCluster, i: usize, peer: &str, n: usize) {
    let mut last = ping_heard(c, i, peer).await.unwrap_or(0);
    for k in 0..n {
        last = wait_for(
            &format!("fresh ping {k} of {peer} at peer {i}"),
            DEADLINE,
            || async { ping_heard(c, i, peer).await.filter(|t| *t > last) },
        )
        .await
        .unwrap();
    }
}

/// IPFS Cluster's CRDT peerset: the peers whose pings were heard on the metrics topic and
/// have not expired. A peer stopped leaves it, and is back when started again; `peers rm`
/// (refused by IPFS Cluster in CRDT mode) bans a peer here: it leaves this peer's peerset at
/// once, gets none of its new allocations, and stays out across a restart while it goes on
/// publishing (the others still list it).
#[tokio::test(flavor = "multi_thread")]
async fn the_peerset_is_the_peers_heard_and_peers_rm_bans_one_for_good() {
    let mut c = TestCluster::start_consensus_only(&[], 3, 0, |cfg| {
        crdt(
            cfg,
            serde_json::json!({"cluster_name": "crdt-peerset", "trusted_peers": ["*"]}),
        );
        cfg["cluster"]["monitor_ping_interval"] = "1s".into();
    })
    .await
    .unwrap();
    let ids: Vec<String> = c.peers.iter().map(|p| p.id()).collect();
    for i in 0..3 {
        lists_peers(&c, i, &[&ids[0], &ids[1], &ids[2]]).await;
    }
    // Stopped: its ping expires (2 s) and it leaves the others' peerset; back when started.
    c.peers[2].stop();
    lists_peers(&c, 0, &[&ids[0], &ids[1]]).await;
    c.peers[2].start(&[]).await.unwrap();
    for i in 0..3 {
        lists_peers(&c, i, &[&ids[0], &ids[1], &ids[2]]).await;
    }

    // Peer 2 bans peer 1 (both joined through peer 0, which passes the metrics topic on).
    let out = c.peers[2].ctl(&["peers", "rm", &ids[1]]);
    assert!(out.status.success(), "{}", text(&out));
    let mut others = vec![ids[0].clone(), ids[2].clone()];
    others.sort();
    assert_eq!(
        listed_peers(&c, 2).await,
        others,
        "out of the peerset at once"
    );
    let banned = std::fs::read_to_string(c.peers[2].dir.join("banned_peers")).unwrap();
    assert!(banned.lines().any(|l| l == ids[1]), "{banned}");
    // A peer cannot ban itself; a bad id changes nothing.
    let out = c.peers[2].ctl(&["peers", "rm", &ids[2]]);
    assert!(!out.status.success(), "{}", text(&out));
    let out = c.peers[2].ctl(&["peers", "rm", "not-a-peer"]);
    assert!(!out.status.success(), "{}", text(&out));
    // New pins of peer 2 never go to it.
    for n in 0..5 {
        let cid = identity_cid(&format!("after the ban {n}"));
        let opts = PinOptions {
            replication_factor_min: 2,
            replication_factor_max: 3,
            ..Default::default()
        };
        let pin = c.peers[2].client().pin(&cid, &opts).await.unwrap();
        let mut got = pin.allocations.clone();
        got.sort();
        assert_eq!(got, others);
    }
    // Across a restart: peer 1 goes on publishing every second (heard by peer 0, which
    // passes the topic on), and peer 2 hears three fresh pings of peer 0 but none of it.
    c.peers[2].stop();
    c.peers[2].start(&[]).await.unwrap();
    lists_peers(&c, 2, &[&ids[0], &ids[2]]).await;
    hears_fresh_pings(&c, 2, &ids[0], 3).await;
    assert_eq!(
        ping_heard(&c, 2, &ids[1]).await,
        None,
        "a banned peer is not heard"
    );
    assert_eq!(listed_peers(&c, 2).await, others);
    // The ban is peer 2's own: peer 0 still lists and hears peer 1.
    hears_fresh_pings(&c, 0, &ids[1], 2).await;
    lists_peers(&c, 0, &[&ids[0], &ids[1], &ids[2]]).await;
}

/// `pin_only_on_trusted_peers`: a peer that trusts only itself allocates only to itself,
/// though it hears the two others (as IPFS Cluster's `IsTrustedPeer` decides).
#[tokio::test(flavor = "multi_thread")]
async fn pin_only_on_trusted_peers_allocates_to_trusted_peers_only() {
    let c = TestCluster::start_consensus_only(&[], 3, 0, |cfg| {
        crdt(
            cfg,
            serde_json::json!({"cluster_name": "crdt-trusted", "trusted_peers": []}),
        );
        cfg["cluster"]["monitor_ping_interval"] = "1s".into();
        cfg["cluster"]["pin_only_on_trusted_peers"] = true.into();
    })
    .await
    .unwrap();
    let ids: Vec<String> = c.peers.iter().map(|p| p.id()).collect();
    for i in 0..3 {
        lists_peers(&c, i, &[&ids[0], &ids[1], &ids[2]]).await;
    }
    let opts = PinOptions {
        replication_factor_min: 1,
        replication_factor_max: 3,
        ..Default::default()
    };
    // Peer 0 trusts itself only (nobody bootstrapped it); peer 1 trusts itself and peer 0
    // (its bootstrap peer).
    let pin = c.peers[0]
        .client()
        .pin(&identity_cid("trusted only"), &opts)
        .await
        .unwrap();
    assert_eq!(pin.allocations, vec![ids[0].clone()]);
    let pin = c.peers[1]
        .client()
        .pin(&identity_cid("trusted only, 1"), &opts)
        .await
        .unwrap();
    let mut want = vec![ids[0].clone(), ids[1].clone()];
    want.sort();
    let mut got = pin.allocations.clone();
    got.sort();
    assert_eq!(got, want);
    // Peer 0 takes no calls from peer 1 (it does not trust it): peer 1 lists it without an
    // error, and its statuses leave it out rather than show cluster_error (as IPFS Cluster
    // leaves out authorization errors); peer 0 itself answers for both.
    let listed = c.peers[1].client().peers().await.unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    let zero = listed.iter().find(|i| i.id == ids[0]).unwrap();
    assert!(zero.error.is_empty(), "{zero:?}");
    let cid = identity_cid("trusted only, 1");
    let st = c.peers[1].client().status(&cid).await.unwrap();
    assert!(!st.peer_map.contains_key(&ids[0]), "{st:?}");
    let out = c.peers[1].ctl(&["status", &cid]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(&ids[0]), "{}", text(&out));
    let st = c.peers[0].client().status(&cid).await.unwrap();
    assert!(st.peer_map.contains_key(&ids[1]), "{st:?}");
}

/// Expired pins leave a CRDT cluster's pinset (IPFS Cluster's state sync): with no leader,
/// the trusted peer nearest to the pin unpins it (IPFS Cluster's distance check), once.
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_pin_is_unpinned_once_by_its_nearest_trusted_peer() {
    let c = TestCluster::start_consensus_only(&[], 3, 0, |cfg| {
        crdt(
            cfg,
            serde_json::json!({"cluster_name": "crdt-expiry", "trusted_peers": ["*"]}),
        );
        cfg["cluster"]["monitor_ping_interval"] = "1s".into();
        cfg["cluster"]["state_sync_interval"] = "1s".into();
    })
    .await
    .unwrap();
    let ids: Vec<String> = c.peers.iter().map(|p| p.id()).collect();
    for i in 0..3 {
        lists_peers(&c, i, &[&ids[0], &ids[1], &ids[2]]).await;
    }
    let cids: Vec<String> = (0..6)
        .map(|n| identity_cid(&format!("expiring {n}")))
        .collect();
    for cid in &cids {
        let opts = PinOptions {
            expire_at: Some(chrono::Utc::now() + chrono::Duration::seconds(2)),
            ..Default::default()
        };
        c.peers[1].client().pin(cid, &opts).await.unwrap();
    }
    for i in 0..3 {
        for cid in &cids {
            drops(&c, i, cid).await;
        }
    }
    // Each was unpinned by one peer (the one nearest to it), not by all three.
    let logs: Vec<String> = c
        .peers
        .iter()
        .map(|p| std::fs::read_to_string(p.log_path()).unwrap_or_default())
        .collect();
    for cid in &cids {
        let by = logs
            .iter()
            .filter(|l| {
                l.lines()
                    .any(|line| line.contains("the pin expired") && line.contains(&listed(cid)))
            })
            .count();
        assert_eq!(by, 1, "{cid} unpinned by {by} peers");
    }
}
