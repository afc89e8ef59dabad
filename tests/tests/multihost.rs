//! Peers on different machines: three or more test hosts (network namespaces on one bridge,
//! made and removed by the test), each with a cluster peer and the built-in IPFS node in its
//! LAN mode. Skipped, with a message, where namespaces cannot be made (not root).

use cluster_tests::*;
use ipfs_cluster::types::PinOptions;

fn everywhere() -> PinOptions {
    PinOptions {
        replication_factor_min: -1,
        replication_factor_max: -1,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn content_added_on_one_host_is_pinned_by_every_hosts_built_in_node() {
    let Some(net) = Net::create(3).unwrap() else {
        return;
    };
    let c = TestCluster::start_on_hosts(&net.hosts, 0, |_, _| {})
        .await
        .unwrap();
    // Each built-in node listens and announces on its host's real interface.
    for (node, host) in c.ipfs.iter().zip(&net.hosts) {
        let id: serde_json::Value = node.call("id", &[]).await.unwrap().json().await.unwrap();
        let addrs = id["Addresses"].to_string();
        assert!(
            addrs.contains(&format!("/ip4/{}/tcp/4001", host.ip)),
            "{addrs}"
        );
    }
    let cid = c.ipfs[0].add(&unique("lan")).await.unwrap();
    // Pinned through another host's peer, everywhere.
    c.peers[1].client().pin(&cid, &everywhere()).await.unwrap();
    for (i, node) in c.ipfs.iter().enumerate() {
        wait_for(
            &format!("host {i}'s IPFS node to pin {cid}"),
            DEADLINE,
            || async { node.is_pinned(&cid).await.ok().filter(|p| *p) },
        )
        .await
        .unwrap();
    }
    for p in &c.peers {
        p.wait_status(&cid, "pinned").await.unwrap();
    }
    drop(c);
    drop(net);
}

/// Waits (up to the harness's deadline) until `peer`'s state holds `cid`, as its own REST
/// API lists it; fails the test naming `what` otherwise.
async fn wait_holds(peer: &Peer, cid: &str, what: &str) {
    wait_for(what, DEADLINE, || async {
        pinset(&peer.client())
            .await
            .iter()
            .any(|c| c == cid)
            .then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_whose_address_changed_is_found_again_after_a_restart_through_the_peerstore() {
    let Some(net) = Net::create(4).unwrap() else {
        return;
    };
    // Nothing but Raft may dial the follower: no metric pushes or IPFS swarm connections
    // during the test, which would reconnect it by themselves.
    let quiet = |_: usize, cfg: &mut serde_json::Value| {
        cfg["cluster"]["monitor_ping_interval"] = "1h".into();
        cfg["ipfs_connector"]["ipfshttp"]["connect_swarms_delay"] = "1h".into();
    };
    let mut c = TestCluster::start_on_hosts(&net.hosts[..3], 1, quiet)
        .await
        .unwrap();
    let voter = c.peers[0].client();
    let pin = |n: &str| {
        let cid = identity_cid(n);
        let voter = &voter;
        async move {
            // As the cluster writes it (base32), to compare with what peers list.
            voter
                .pin(&cid, &everywhere())
                .await
                .unwrap()
                .cid
                .to_string()
        }
    };
    let first = pin("before the move").await;
    wait_holds(&c.peers[2], &first, "the follower to hold the first pin").await;

    // The laptop roams: same peer, another network (host 3), restarted without --bootstrap.
    c.peers[2].stop();
    c.peers[2].move_to(&net.hosts[3]).unwrap();
    c.peers[2].start(&[]).await.unwrap();
    let second = pin("after the move").await;
    wait_holds(&c.peers[2], &second, "the moved follower to hold a new pin").await;
    let store = std::fs::read_to_string(c.peers[0].dir.join("peerstore")).unwrap();
    let moved = format!("/ip4/{}/tcp/9096/p2p/{}", net.hosts[3].ip, c.peers[2].id());
    assert!(store.contains(&moved), "the new address is kept: {store}");

    // The voters restart: only their peerstore knows where the follower is now.
    for i in 0..2 {
        c.peers[i].stop();
    }
    for i in 0..2 {
        c.peers[i].spawn(&[]).unwrap();
    }
    for i in 0..2 {
        c.peers[i].wait_ready().await.unwrap();
    }
    let third = pin("after the restart").await;
    wait_holds(&c.peers[2], &third, "the follower to be found again").await;
    drop(c);
    drop(net);
}

#[tokio::test(flavor = "multi_thread")]
async fn over_slow_lossy_links_the_cluster_commits_and_a_sleeping_follower_catches_up_by_snapshot()
{
    let Some(net) = Net::create(4).unwrap() else {
        return;
    };
    // 50 ms each way (100 ms round trips) and 1 % of packets lost, on every cluster link.
    let link = relay::Link {
        one_way: std::time::Duration::from_millis(50),
        loss: 0.01,
        bytes_per_sec: 0,
    };
    // Snapshots often and little log kept, so a follower that sleeps falls behind the log.
    let small_log = |_: usize, cfg: &mut serde_json::Value| {
        cfg["consensus"]["raft"]["snapshot_threshold"] = 10.into();
        cfg["consensus"]["raft"]["trailing_logs"] = 2.into();
    };
    let c = TestCluster::start_on_slow_links(&net, 1, link, small_log)
        .await
        .unwrap();
    let laptop = 3;
    let content = c.ipfs[0].add(&unique("slept through")).await.unwrap();
    c.peers[0]
        .client()
        .pin(&content, &everywhere())
        .await
        .unwrap();
    for (i, node) in c.ipfs.iter().enumerate() {
        wait_for(
            &format!("host {i} to pin the content"),
            DEADLINE,
            || async { node.is_pinned(&content).await.ok().filter(|p| *p) },
        )
        .await
        .unwrap();
    }

    // The laptop sleeps; meanwhile the content is unpinned and the cluster keeps committing.
    c.peers[laptop].signal("-STOP");
    let client = c.peers[1].client();
    client.unpin(&content).await.unwrap();
    let mut pinned = Vec::new();
    for n in 0..30 {
        let cid = identity_cid(&format!("while the laptop slept {n}"));
        pinned.push(
            client
                .pin(&cid, &everywhere())
                .await
                .unwrap()
                .cid
                .to_string(),
        );
    }
    c.peers[laptop].signal("-CONT");

    let last = pinned.last().unwrap().clone();
    wait_holds(&c.peers[laptop], &last, "the woken follower to catch up").await;
    let follower = &c.peers[laptop];
    assert!(
        follower.current_log().contains("installed a snapshot"),
        "it caught up by snapshot"
    );
    let all = pinset(&follower.client()).await;
    assert!(
        pinned.iter().all(|p| all.contains(p)),
        "every pin reached it"
    );
    let node = &c.ipfs[laptop];
    wait_for(
        "the woken follower's IPFS to drop the unpinned content",
        DEADLINE,
        || async { (!node.is_pinned(&content).await.ok()?).then_some(()) },
    )
    .await
    .unwrap();
    drop(c);
    drop(net);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wiped_voter_rejoins_as_a_learner_and_no_acknowledged_pin_is_lost() {
    let Some(net) = Net::create(3).unwrap() else {
        return;
    };
    let mut c = TestCluster::start_on_hosts(&net.hosts, 0, |_, _| {})
        .await
        .unwrap();
    let leader = c.leader_seen_by(0).await.unwrap();
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let (b, wiped) = (others[0], others[1]);
    // Acknowledged by the leader and the voter that is about to lose its state, only.
    c.peers[b].stop();
    let acked = identity_cid("acknowledged while a voter was away");
    let acked = c.peers[leader]
        .client()
        .pin(&acked, &everywhere())
        .await
        .unwrap()
        .cid
        .to_string();
    // That voter's state is wiped (`daemon --bootstrap` backs it up and cleans it) and it
    // asks to join again; the third voter comes back meanwhile.
    c.peers[wiped].stop();
    let boot = c.peers[leader].cluster_addr();
    c.peers[wiped].spawn(&["--bootstrap", &boot]).unwrap();
    c.peers[b].start(&[]).await.unwrap();
    c.peers[wiped].wait_ready().await.unwrap();
    let leader_log = c.peers[leader].current_log();
    assert!(
        leader_log.contains("demoted to learner until it has caught up"),
        "the wiped voter was not counted as a voter with an empty log"
    );
    // The leader crashes: the two left elect a leader that has the acknowledged pin.
    c.peers[leader].kill9();
    let survivor = c.peers[b].client();
    let after = identity_cid("after the leader crashed");
    wait_for("the survivors to accept a write", DEADLINE, || async {
        survivor.pin(&after, &everywhere()).await.ok()
    })
    .await
    .unwrap();
    for i in [b, wiped] {
        let what = format!("peer {i} to hold the acknowledged pin");
        wait_holds(&c.peers[i], &acked, &what).await;
    }
    drop(c);
    drop(net);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_join_during_an_outage_waits_for_a_leader_and_says_so() {
    let Some(net) = Net::create(4).unwrap() else {
        return;
    };
    let mut c = TestCluster::start_on_hosts(&net.hosts[..3], 0, |_, _| {})
        .await
        .unwrap();
    // Two of three voters down: the third answers, but the cluster has no leader.
    let live = 2;
    c.peers[0].kill9();
    c.peers[1].kill9();
    let newcomer = c
        .add_peer_on(Some(&net.hosts[3]), live, |_| {})
        .await
        .unwrap();
    let log_says_waiting = || c.peers[newcomer].current_log().contains("waiting");
    wait_for("the newcomer to say it waits", DEADLINE, || async {
        log_says_waiting().then_some(())
    })
    .await
    .unwrap();
    // Quorum returns; the newcomer joins.
    c.peers[1].start(&[]).await.unwrap();
    c.peers[newcomer].wait_ready().await.unwrap();
    let id = c.peers[newcomer].id();
    let members = c.peers[live].client().id().await.unwrap().cluster_peers;
    assert!(members.contains(&id), "{members:?}");
    drop(c);
    drop(net);
}

/// The CIDs `peer` lists (`ipfs-cluster-ctl --enc json pin ls`, run on its own host).
fn pinset_seen_by(peer: &Peer) -> Vec<String> {
    let out = peer.ctl(&["--enc", "json", "pin", "ls"]);
    assert!(out.status.success(), "pin ls: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // One JSON object after another, as IPFS Cluster's ctl prints lists.
    let items: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("pin ls output: {e}: {stdout}"));
    let mut cids: Vec<String> = items
        .iter()
        .filter_map(|p| {
            p["cid"]
                .as_str()
                .or(p["cid"]["/"].as_str())
                .map(String::from)
        })
        .collect();
    cids.sort();
    cids
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partitioned_leader_refuses_writes_the_majority_goes_on_and_all_agree_after_healing() {
    let Some(net) = Net::create(3).unwrap() else {
        return;
    };
    let c = TestCluster::start_on_hosts(&net.hosts, 0, |_, _| {})
        .await
        .unwrap();
    let old = c.leader_seen_by(0).await.unwrap();
    let majority: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    net.hosts[old].cut_off().unwrap();

    // The majority elects a leader of its own and keeps committing.
    let fresh = wait_for("a new leader on the majority side", DEADLINE, || async {
        let l = c.leader_seen_by(majority[0]).await.ok()?;
        (l != old).then_some(l)
    })
    .await
    .unwrap();
    assert!(majority.contains(&fresh));
    let committed = c.ipfs[majority[0]].add(&unique("majority")).await.unwrap();
    let out = c.peers[majority[1]].ctl(&["pin", "add", &committed, "--no-status"]);
    assert!(out.status.success(), "majority write: {}", text(&out));

    // The old leader, alone, refuses a write with an error that says why.
    // In the form the cluster lists CIDs (base32 for v1).
    let lost: String = identity_cid("written to the minority")
        .parse::<ipfs_cluster::types::Cid>()
        .unwrap()
        .to_string();
    let out = c.peers[old].ctl(&["pin", "add", &lost]);
    let said = text(&out);
    assert!(
        !out.status.success(),
        "the minority acknowledged a write: {said}"
    );
    assert!(
        ["quorum", "leader", "commit"]
            .iter()
            .any(|w| said.contains(w)),
        "{said}"
    );
    assert!(!pinset_seen_by(&c.peers[old]).contains(&lost));

    // Healed: one history. The minority catches up; the refused write is nowhere.
    net.hosts[old].reconnect().unwrap();
    let want = pinset_seen_by(&c.peers[fresh]);
    assert!(want.contains(&committed), "{committed} in {want:?}");
    for i in 0..3 {
        wait_for(&format!("peer{i} to agree"), DEADLINE, || async {
            (pinset_seen_by(&c.peers[i]) == want).then_some(())
        })
        .await
        .unwrap();
    }
    assert!(!want.contains(&lost));
    drop(c);
    drop(net);
}
