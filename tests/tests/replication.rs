//! Replication across 4 peers, each with its own real IPFS node: allocation by free space and
//! tags, alerts and repinning when a peer stops, global status and recover.

use std::collections::BTreeSet;

use cluster_tests::*;
use ipfs_cluster::types::{PinOptions, StatusSummary, TrackerStatus};
use serde_json::Value;

const GB: u64 = 1_000_000_000;

/// Fast metrics so a test sees them move: ping every second (valid 2s), checked every 3s.
fn fast_monitoring(cfg: &mut Value) {
    cfg["cluster"]["monitor_ping_interval"] = "1s".into();
    cfg["monitor"]["pubsubmon"]["check_interval"] = "3s".into();
    for informer in ["disk", "numpin", "tags"] {
        cfg["informer"][informer]["metric_ttl"] = "3s".into();
    }
}

/// Waits until `peer` holds a current `name` metric from all `n` peers.
async fn metrics_from_all(c: &TestCluster, peer: usize, name: &str, n: usize) {
    let client = c.peers[peer].client();
    wait_for(
        &format!("{name} metrics from {n} peers"),
        DEADLINE,
        || async {
            let ms = client.metrics(name).await.ok()?;
            (ms.iter().filter(|m| m.is_current()).count() == n).then_some(())
        },
    )
    .await
    .unwrap();
}

fn ids(c: &TestCluster, which: &[usize]) -> BTreeSet<String> {
    which.iter().map(|&i| c.peers[i].id()).collect()
}

async fn pinned_only_on(c: &TestCluster, cid: &str, holders: &[usize]) {
    for (i, peer) in c.peers.iter().enumerate() {
        if holders.contains(&i) {
            peer.wait_status(cid, "pinned").await.unwrap();
            assert!(
                c.ipfs[i].is_pinned(cid).await.unwrap(),
                "node {i} pins {cid}"
            );
        } else {
            peer.wait_status(cid, "remote").await.unwrap();
            assert!(
                !c.ipfs[i].is_pinned(cid).await.unwrap(),
                "node {i} must not pin {cid}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replication_factors_follow_free_space_and_tags() {
    // Free space: p0 > p1 > p3 > p2. Groups: p0, p1 in "a"; p2, p3 in "b".
    let storage = [4 * GB, 3 * GB, GB, 2 * GB];
    let c = TestCluster::start_custom(
        4,
        |i| storage[i].to_string(),
        |i, cfg| {
            fast_monitoring(cfg);
            let group = if i < 2 { "a" } else { "b" };
            cfg["informer"]["tags"]["tags"] = serde_json::json!({ "group": group });
        },
    )
    .await
    .unwrap();
    metrics_from_all(&c, 0, "freespace", 4).await;
    metrics_from_all(&c, 0, "tag:group", 4).await;
    let client = c.peers[0].client();
    let names = client.metric_names().await.unwrap();
    for n in ["ping", "freespace", "numpin", "pinqueue", "tag:group"] {
        assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
    }

    let out = c.peers[1].ctl(&["health", "metrics", "freespace"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(shown.lines().count(), 4, "{}", text(&out));
    for p in &c.peers {
        assert!(shown.contains(&p.id()), "{shown}");
    }

    // One copy: the peer with the most free space.
    let one = c.ipfs[0].add(&unique("one")).await.unwrap();
    let opts = |r: i32| PinOptions {
        replication_factor_min: r,
        replication_factor_max: r,
        ..Default::default()
    };
    let pin = client.pin(&one, &opts(1)).await.unwrap();
    assert_eq!(
        pin.allocations.iter().cloned().collect::<BTreeSet<_>>(),
        ids(&c, &[0])
    );

    // Two copies: one per tag group, each the group's roomiest peer (not p0 and p1, the two
    // roomiest overall).
    let two = c.ipfs[0].add(&unique("two")).await.unwrap();
    let pin = client.pin(&two, &opts(2)).await.unwrap();
    assert_eq!(
        pin.allocations.iter().cloned().collect::<BTreeSet<_>>(),
        ids(&c, &[0, 3])
    );
    pinned_only_on(&c, &two, &[0, 3]).await;

    // The global status has every peer: pinned where allocated, remote elsewhere.
    let g = client.status(&two).await.unwrap();
    assert_eq!(g.peer_map.len(), 4);
    for (peer, info) in &g.peer_map {
        let want = if pin.allocations.contains(peer) {
            TrackerStatus::Pinned
        } else {
            TrackerStatus::Remote
        };
        assert_eq!(info.status, want, "{peer}");
    }
    let out = c.peers[1].ctl(&["status", &two]);
    let text_out = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text_out.matches("PINNED").count(), 2, "{text_out}");
    assert_eq!(text_out.matches("REMOTE").count(), 2, "{text_out}");

    // Re-pinning keeps the current allocations.
    let again = client.pin(&two, &opts(2)).await.unwrap();
    assert_eq!(again.allocations, pin.allocations);

    // More than there are peers: refused, nothing committed.
    let five = c.ipfs[0].add(&unique("five")).await.unwrap();
    let err = client.pin(&five, &opts(5)).await.unwrap_err();
    assert_eq!(err.code(), Some(400));
    assert!(
        err.to_string().contains("not enough peers to allocate"),
        "{err}"
    );
    assert!(client.allocation(&five).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_peer_raises_an_alert_and_its_pins_move_to_another_peer() {
    let storage = [4 * GB, 3 * GB, 2 * GB, GB];
    let mut c = TestCluster::start_custom(
        4,
        |i| storage[i].to_string(),
        |_, cfg| {
            fast_monitoring(cfg);
            cfg["cluster"]["disable_repinning"] = false.into();
        },
    )
    .await
    .unwrap();
    for i in 0..4 {
        metrics_from_all(&c, i, "freespace", 4).await;
    }
    // Peer 0 leads; replicate on the two roomiest others by asking for 3 copies: p0, p1, p2.
    let leader = c.leader_seen_by(0).await.unwrap();
    assert_eq!(leader, 0, "the first peer still leads");
    let client = c.peers[0].client();
    let cid = c.ipfs[0].add(&unique("moving")).await.unwrap();
    let opts = PinOptions {
        replication_factor_min: 2,
        replication_factor_max: 3,
        ..Default::default()
    };
    let pin = client.pin(&cid, &opts).await.unwrap();
    assert_eq!(
        pin.allocations.iter().cloned().collect::<BTreeSet<_>>(),
        ids(&c, &[0, 1, 2])
    );
    pinned_only_on(&c, &cid, &[0, 1, 2]).await;
    let everywhere = c.ipfs[0].add(&unique("everywhere")).await.unwrap();
    client
        .pin(&everywhere, &PinOptions::default())
        .await
        .unwrap();
    for p in &c.peers {
        p.wait_status(&everywhere, "pinned").await.unwrap();
    }

    // Stop peer 1 (an allocated one).
    let gone = c.peers[1].id();
    c.peers[1].stop();
    wait_for("an alert about the stopped peer", DEADLINE, || async {
        let alerts = client.alerts().await.ok()?;
        alerts
            .iter()
            .any(|a| a.metric.peer == gone && a.metric.name == "ping")
            .then_some(())
    })
    .await
    .unwrap();
    let client2 = c.peers[2].client();
    wait_for("peer 2 to raise the alert too", DEADLINE, || async {
        let alerts = client2.alerts().await.ok()?;
        alerts.iter().any(|a| a.metric.peer == gone).then_some(())
    })
    .await
    .unwrap();
    let out = c.peers[2].ctl(&["health", "alerts"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&gone),
        "{}",
        text(&out)
    );

    // Global status shows the stopped peer as cluster_error for what it should hold.
    let g = client.status(&everywhere).await.unwrap();
    assert_eq!(g.peer_map[&gone].status, TrackerStatus::ClusterError);
    assert!(!g.peer_map[&gone].error.is_empty());

    // Repinning: the pin moves to peer 3 (the only live peer not holding it).
    let moved_to = c.peers[3].id();
    // Within two check intervals (3s each) of the ping expiring (2s after the stop), plus
    // slack for a loaded machine.
    let bound = std::time::Duration::from_secs(2 * 3 + 2 + 6);
    wait_for("the pin to be re-allocated", bound, || async {
        let p = client.allocation(&cid).await.ok()?;
        (p.allocations.contains(&moved_to) && !p.allocations.contains(&gone)).then_some(())
    })
    .await
    .unwrap();
    c.peers[3].wait_status(&cid, "pinned").await.unwrap();
    assert!(c.ipfs[3].is_pinned(&cid).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn recover_retries_an_errored_pin_after_its_ipfs_node_returns() {
    let mut c = TestCluster::start_custom(
        4,
        |_| "10GB".into(),
        |_, cfg| {
            fast_monitoring(cfg);
            // Only an explicit recover may fix the error in this test.
            cfg["cluster"]["peer_watch_interval"] = "1h".into();
            cfg["cluster"]["pin_recover_interval"] = "1h".into();
        },
    )
    .await
    .unwrap();
    let client = c.peers[0].client();
    let cid = c.ipfs[0].add(&unique("recover")).await.unwrap();
    c.ipfs[2].stop();
    client.pin(&cid, &PinOptions::default()).await.unwrap();
    c.peers[2].wait_status(&cid, "pin_error").await.unwrap();
    let g = client.status(&cid).await.unwrap();
    let p2 = c.peers[2].id();
    assert_eq!(g.peer_map[&p2].status, TrackerStatus::PinError);
    let errors = client
        .status_all("error", &[])
        .await
        .gather()
        .await
        .unwrap();
    assert_eq!(errors.len(), 1);

    c.ipfs[2].restart().await.unwrap();
    let out = c.peers[0].ctl(&["recover", &cid]);
    assert!(out.status.success(), "{}", text(&out));
    c.peers[2].wait_status(&cid, "pinned").await.unwrap();
    assert!(c.ipfs[2].is_pinned(&cid).await.unwrap());
    let g = client.status(&cid).await.unwrap();
    assert!(
        g.peer_map
            .values()
            .all(|i| i.status == TrackerStatus::Pinned),
        "{g:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pin_with_replication_2_right_after_three_peers_are_ready_is_allocated() {
    // The default monitoring (a ping every 15 s). IPFS Cluster sends a peer's first metrics
    // at once; here the others once knew of a new peer only at its next round, and a pin
    // with replication 2 was refused ("found 1 valid candidate").
    let c = TestCluster::start_custom(3, |_| "10GB".into(), |_, _| {})
        .await
        .unwrap();
    let opts = PinOptions {
        replication_factor_min: 2,
        replication_factor_max: 2,
        ..Default::default()
    };
    // Through the first peer (which saw the others join) and the last (which joined).
    for i in [0, 2] {
        let cid = identity_cid(&format!("replication 2 right after the start, via {i}"));
        let pin = c.peers[i]
            .client()
            .pin(&cid, &opts)
            .await
            .unwrap_or_else(|e| panic!("pin through peer {i}: {e}"));
        assert_eq!(pin.allocations.len(), 2, "through peer {i}: {pin:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn recover_of_everything_streams_cluster_error_for_a_member_that_cannot_be_asked() {
    let mut c = TestCluster::start_custom(3, |_| "10GB".into(), |_, _| {})
        .await
        .unwrap();
    let mut cids = Vec::new();
    for n in 0..3 {
        let cid = c.ipfs[0]
            .add(&unique(&format!("recover-all {n}")))
            .await
            .unwrap();
        c.peers[0]
            .client()
            .pin(&cid, &PinOptions::default())
            .await
            .unwrap();
        for p in &c.peers {
            p.wait_status(&cid, "pinned").await.unwrap();
        }
        cids.push(cid);
    }
    let gone = c.peers[2].id();
    c.peers[2].stop();
    let recovered = c.peers[0]
        .client()
        .recover_all()
        .await
        .gather()
        .await
        .unwrap();
    let got: Vec<String> = recovered.iter().map(|g| g.pin.cid.to_string()).collect();
    let mut want = cids.clone();
    want.sort();
    assert_eq!(
        got, want,
        "every pin allocated to the stopped peer, in CID order"
    );
    for g in &recovered {
        assert_eq!(
            g.peer_map[&gone].status,
            TrackerStatus::ClusterError,
            "{g:?}"
        );
        assert!(g.peer_map[&gone].error.contains("not reachable"), "{g:?}");
    }
}

/// Peer `i`'s statuses as a walk of every pin counts them (`GET /pins?local=true`), in the
/// shape of its summary.
async fn walked_summary(c: &TestCluster, i: usize) -> StatusSummary {
    let infos = c.peers[i]
        .client()
        .status_all_local("")
        .await
        .gather()
        .await
        .unwrap();
    let mut s = StatusSummary::default();
    for info in &infos {
        let n = match info.info.status {
            TrackerStatus::Pinned => &mut s.pinned,
            TrackerStatus::Remote => &mut s.remote,
            TrackerStatus::PinQueued => &mut s.pin_queued,
            TrackerStatus::Pinning => &mut s.pinning,
            TrackerStatus::PinError => &mut s.pin_error,
            TrackerStatus::UnpinQueued => &mut s.unpin_queued,
            TrackerStatus::Unpinning => &mut s.unpinning,
            TrackerStatus::UnpinError => &mut s.unpin_error,
            TrackerStatus::ClusterError => &mut s.cluster_error,
            other => panic!("peer {i}: unexpected status {other:?} of {}", info.cid),
        };
        *n += 1;
    }
    s
}

/// Peer `i`'s summary once it agrees with a walk and `settled` holds; the last two seen
/// when the deadline passes.
async fn summary_as_walked(
    c: &TestCluster,
    i: usize,
    settled: impl Fn(&StatusSummary) -> bool,
) -> StatusSummary {
    let client = c.peers[i].client();
    let last = std::sync::Mutex::new(None);
    let found = wait_for("the summary to match a status walk", DEADLINE, || {
        let client = &client;
        let last = &last;
        let settled = &settled;
        async move {
            let summary = client.status_summary().await.ok()?;
            let mut walked = walked_summary(c, i).await;
            // What the walk cannot know, the summary's identity and pinset counts.
            walked.peer = summary.peer.clone();
            walked.peername = summary.peername.clone();
            walked.pins = summary.pins;
            walked.allocated_here = summary.allocated_here;
            let same = walked == summary && settled(&summary);
            *last.lock().unwrap() = Some((summary.clone(), walked));
            same.then_some(summary)
        }
    })
    .await;
    match found {
        Ok(s) => s,
        Err(e) => panic!(
            "peer {i}: {e}; last summary and walk: {:#?}",
            last.lock().unwrap()
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_summary_counts_what_a_status_walk_finds() {
    let mut c = TestCluster::start_custom(
        3,
        |_| "10GB".into(),
        |_, cfg| {
            fast_monitoring(cfg);
            // Only the test changes what is pinned.
            cfg["cluster"]["pin_recover_interval"] = "1h".into();
        },
    )
    .await
    .unwrap();
    metrics_from_all(&c, 0, "freespace", 3).await;
    let client = c.peers[0].client();
    let opts = |r: i32| PinOptions {
        replication_factor_min: r,
        replication_factor_max: r,
        ..Default::default()
    };
    let mut cids = Vec::new();
    for (n, r) in [1, 1, 1, 2, 2, 2, -1, -1, -1].into_iter().enumerate() {
        let cid = c.ipfs[0]
            .add(&unique(&format!("summary {n}")))
            .await
            .unwrap();
        client.pin(&cid, &opts(r)).await.unwrap();
        cids.push(cid);
    }
    client.unpin(&cids[3]).await.unwrap();

    let idle = |s: &StatusSummary| {
        s.pin_queued + s.pinning + s.unpin_queued + s.unpinning + s.pin_error + s.unpin_error == 0
    };
    let mut pinned = 0;
    for i in 0..3 {
        let s = summary_as_walked(&c, i, idle).await;
        assert_eq!(s.pins, 8, "peer {i}: {s:?}");
        assert_eq!(s.pinned + s.remote, 8, "peer {i}: {s:?}");
        assert_eq!(s.pinned, s.allocated_here, "peer {i}: {s:?}");
        pinned += s.pinned;
    }
    // 3 pins on one peer, 2 on two, 3 on all three.
    assert_eq!(pinned, 3 + 2 * 2 + 3 * 3);
    let out = c.peers[1].ctl(&["status", "--summary"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("8 pins in the cluster"),
        "{}",
        text(&out)
    );

    // Peer 2's IPFS stops: a new pin fails there, and what it had shows as cluster_error.
    c.ipfs[2].stop();
    let more = c.ipfs[0].add(&unique("summary while down")).await.unwrap();
    client.pin(&more, &opts(-1)).await.unwrap();
    let s = summary_as_walked(&c, 2, |s| s.pin_error == 1).await;
    assert_eq!(s.pinned, 0, "{s:?}");
    assert_eq!(s.cluster_error + s.pin_error, s.allocated_here, "{s:?}");
    assert!(s.cluster_error > 0, "{s:?}");
}
