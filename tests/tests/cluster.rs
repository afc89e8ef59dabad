//! Multi-peer clusters: real peer processes, each with its own real IPFS node, joined by
//! `--bootstrap` over the libp2p cluster swarm on 127.0.0.1.

use std::time::Duration;

use cluster_tests::*;
use ipfs_cluster::types::{PeerRole, PinOptions};

/// Waits until every running peer lists `cid` in `/allocations` and its IPFS node pins it.
async fn pinned_everywhere(c: &TestCluster, cid: &str, peers: &[usize]) {
    for &i in peers {
        let client = c.peers[i].client();
        wait_for(&format!("peer {i} to list {cid}"), DEADLINE, || async {
            client.allocation(cid).await.ok().map(|_| ())
        })
        .await
        .unwrap();
        c.peers[i].wait_status(cid, "pinned").await.unwrap();
        assert!(
            c.ipfs[i].is_pinned(cid).await.unwrap(),
            "IPFS node {i} pins {cid}"
        );
    }
}

async fn peer_ids_seen_by(c: &TestCluster, i: usize) -> Vec<String> {
    let mut ids: Vec<String> = c.peers[i]
        .client()
        .peers()
        .await
        .unwrap()
        .into_iter()
        .map(|p| {
            assert!(p.error.is_empty(), "peer {} unreachable: {}", p.id, p.error);
            p.id
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn three_peers_form_by_bootstrap_and_a_pin_sent_to_a_follower_reaches_every_node() {
    let c = TestCluster::start(3, 0).await.unwrap();
    let mut all: Vec<String> = c.peers.iter().map(Peer::id).collect();
    all.sort();
    for i in 0..3 {
        assert_eq!(peer_ids_seen_by(&c, i).await, all, "peers ls on peer {i}");
    }
    let leader = c.leader_seen_by(0).await.unwrap();
    let follower = (leader + 1) % 3;
    // The content lives only in the leader's IPFS node: the others fetch it over bitswap.
    let cid = c.ipfs[leader].add(&unique("three")).await.unwrap();
    let out = c.peers[follower].ctl(&["pin", "add", &cid, "--name", "from-follower"]);
    assert!(out.status.success(), "{}", text(&out));
    pinned_everywhere(&c, &cid, &[0, 1, 2]).await;
    let pin = c.peers[leader].client().allocation(&cid).await.unwrap();
    assert_eq!(pin.options.name, "from-follower");
    // Every peer knows the others in its peerstore file, never in service.json.
    for p in &c.peers {
        let store = std::fs::read_to_string(p.dir.join("peerstore")).unwrap();
        assert_eq!(store.lines().count(), 2, "{store}");
        let cfg = std::fs::read_to_string(p.dir.join("service.json")).unwrap();
        assert!(!cfg.contains("/p2p/"), "service.json untouched");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn five_peers_elect_a_new_leader_after_kill_9_and_a_minority_cannot_commit() {
    let mut c = TestCluster::start(5, 0).await.unwrap();
    let leader = c.leader_seen_by(1).await.unwrap();
    let old_leader_id = c.peers[leader].id();
    c.peers[leader].kill9();

    let others: Vec<usize> = (0..5).filter(|&i| i != leader).collect();
    let client = c.peers[others[0]].client();
    wait_for("a new leader", DEADLINE, || async {
        let id = client.id().await.ok()?;
        id.leader.filter(|l| *l != old_leader_id)
    })
    .await
    .unwrap();
    let a = c.ipfs[others[0]].add(&unique("after-kill")).await.unwrap();
    client.pin(&a, &PinOptions::default()).await.unwrap();
    pinned_everywhere(&c, &a, &others).await;

    // Stop two more: two of five voters are left, no quorum.
    c.peers[others[2]].stop();
    c.peers[others[3]].stop();
    let b = c.ipfs[others[0]].add(&unique("minority")).await.unwrap();
    let err = client.pin(&b, &PinOptions::default()).await.unwrap_err();
    assert_eq!(err.code(), Some(500), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("quorum") || msg.contains("leader"), "{msg}");
    // The stopped peers are listed with an error, not left out.
    let listed = client.peers().await.unwrap();
    assert_eq!(listed.len(), 5);
    let down = c.peers[others[2]].id();
    let entry = listed.iter().find(|p| p.id == down).unwrap();
    assert!(
        !entry.error.is_empty(),
        "an unreachable peer carries its error"
    );
    assert!(!c.peers[others[1]]
        .client()
        .allocations("")
        .await
        .gather()
        .await
        .unwrap()
        .iter()
        .any(|p| p.cid.to_string() == b));

    // The stopped peers come back without --bootstrap; the cluster commits again.
    for i in [leader, others[2], others[3]] {
        c.peers[i].start(&[]).await.unwrap();
    }
    // The peers back may still be electing: a write met by a change of leader is told as
    // one to retry (as any client would), anything else fails the test.
    wait_for(
        "a commit once the peers are back",
        Duration::from_secs(60),
        || async {
            match client.pin(&b, &PinOptions::default()).await {
                Ok(p) => Some(p),
                Err(e) if e.to_string().contains("leader") => None,
                Err(e) => panic!("{e}"),
            }
        },
    )
    .await
    .unwrap();
    pinned_everywhere(&c, &b, &[0, 1, 2, 3, 4]).await;
    pinned_everywhere(&c, &a, &[leader]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_with_a_wrong_secret_cannot_join() {
    let c = TestCluster::start(1, 0).await.unwrap();
    let dir = c.dir.path().join("intruder");
    std::fs::create_dir_all(&dir).unwrap();
    let ipfs = IpfsNode::start(&dir).await.unwrap();
    let mut intruder = Peer::init(&dir.join("cluster"), &ipfs, cluster_settings).unwrap();
    let boot = c.peers[0].cluster_addr();
    let err = intruder
        .start(&["--bootstrap", &boot])
        .await
        .expect_err("a peer with another secret must not join");
    assert!(err.to_string().contains("could not join"), "{err:#}");
    assert_eq!(c.peers[0].client().peers().await.unwrap().len(), 1);
    assert_eq!(
        c.peers[0].client().id().await.unwrap().cluster_peers.len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_joining_peer_whose_api_port_is_taken_stops_before_joining_and_joins_once_it_is_free() {
    let mut c = TestCluster::start(1, 0).await.unwrap();
    // Another program holds the port the newcomer's REST API is configured on.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let i = c
        .add_peer_on(None, 0, |cfg| {
            cfg["api"]["restapi"]["http_listen_multiaddress"] =
                format!("/ip4/127.0.0.1/tcp/{port}").into();
        })
        .await
        .unwrap();
    assert!(
        !c.peers[i].wait_exit().await.unwrap(),
        "the start fails on the taken port"
    );
    let log = c.peers[i].current_log();
    assert!(
        log.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{log}"
    );
    // The cluster never counted it: nobody waits for a member that never ran.
    assert_eq!(
        c.peers[0].client().id().await.unwrap().cluster_peers.len(),
        1
    );
    // The port freed, the same start joins.
    drop(taken);
    let boot = c.peers[0].cluster_addr();
    c.peers[i].start(&["--bootstrap", &boot]).await.unwrap();
    let id = c.peers[i].id();
    wait_for("the newcomer in the membership", DEADLINE, || async {
        let members = c.peers[0].client().id().await.ok()?.cluster_peers;
        (members.len() == 2 && members.contains(&id)).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn peers_rm_shrinks_the_cluster_and_a_full_restart_keeps_every_pin() {
    let mut c = TestCluster::start(3, 0).await.unwrap();
    let x = c.ipfs[0].add(&unique("x")).await.unwrap();
    c.peers[1]
        .client()
        .pin(&x, &PinOptions::default())
        .await
        .unwrap();
    pinned_everywhere(&c, &x, &[0, 1, 2]).await;

    let leader = c.leader_seen_by(0).await.unwrap();
    let victim = (leader + 1) % 3;
    let victim_id = c.peers[victim].id();
    let asker = (leader + 2) % 3;
    let out = c.peers[asker].ctl(&["peers", "rm", &victim_id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        c.peers[victim].wait_exit().await.unwrap(),
        "removed peer exits cleanly"
    );
    assert!(
        !c.peers[victim].dir.join("raft").exists(),
        "removed peer cleaned its state"
    );
    let backups = std::fs::read_dir(c.peers[victim].dir.join("raft.backups"))
        .unwrap()
        .count();
    assert_eq!(backups, 1, "the removed peer backed up its pinset");
    let remaining: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    for &i in &remaining {
        let client = c.peers[i].client();
        wait_for("the membership to shrink", DEADLINE, || async {
            (client.peers().await.ok()?.len() == 2).then_some(())
        })
        .await
        .unwrap();
    }
    let y = c.ipfs[0].add(&unique("y")).await.unwrap();
    c.peers[asker]
        .client()
        .pin(&y, &PinOptions::default())
        .await
        .unwrap();
    pinned_everywhere(&c, &y, &remaining).await;

    // Restart every remaining peer together (started at once: neither is ready alone, the
    // last leader having handed leadership over as the first one stopped).
    for &i in &remaining {
        c.peers[i].stop();
    }
    for &i in &remaining {
        c.peers[i].spawn(&[]).unwrap();
    }
    for &i in &remaining {
        c.peers[i].wait_ready().await.unwrap();
    }
    for &i in &remaining {
        let cids = pinset(&c.peers[i].client()).await;
        assert_eq!(cids, sorted(&[&x, &y]), "peer {i} kept every pin");
    }
    let z = c.ipfs[0].add(&unique("z")).await.unwrap();
    c.peers[remaining[1]]
        .client()
        .pin(&z, &PinOptions::default())
        .await
        .unwrap();
    pinned_everywhere(&c, &z, &remaining).await;

    // The removed peer can join again by bootstrapping; it gets the whole pinset.
    let boot = c.peers[remaining[0]].cluster_addr();
    c.peers[victim]
        .start(&["--bootstrap", &boot])
        .await
        .unwrap();
    pinned_everywhere(&c, &z, &[victim]).await;
    pinned_everywhere(&c, &x, &[victim]).await;
    assert_eq!(
        c.peers[remaining[0]].client().peers().await.unwrap().len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn init_peerset_forms_a_fixed_cluster_without_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let mut ipfs = Vec::new();
    let mut peers = Vec::new();
    let mut secret = String::new();
    for i in 0..3 {
        let d = dir.path().join(format!("p{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let node = IpfsNode::start(&d).await.unwrap();
        let p = Peer::init(&d.join("cluster"), &node, |cfg| {
            cluster_settings(cfg);
            if secret.is_empty() {
                secret = cfg["cluster"]["secret"].as_str().unwrap().to_string();
            } else {
                cfg["cluster"]["secret"] = secret.clone().into();
            }
        })
        .unwrap();
        ipfs.push(node);
        peers.push(p);
    }
    let ids: Vec<String> = peers.iter().map(Peer::id).collect();
    for (i, p) in peers.iter().enumerate() {
        let path = p.dir.join("service.json");
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        cfg["consensus"]["raft"]["init_peerset"] = ids.clone().into();
        std::fs::write(&path, cfg.to_string()).unwrap();
        let store: String = peers
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, o)| format!("{}\n", o.cluster_addr()))
            .collect();
        std::fs::write(p.dir.join("peerstore"), store).unwrap();
    }
    // No single peer has a quorum: start them all, then wait.
    for p in peers.iter_mut() {
        p.spawn(&[]).unwrap();
    }
    for p in peers.iter_mut() {
        p.wait_ready().await.unwrap();
    }
    let cid = ipfs[2].add(&unique("peerset")).await.unwrap();
    peers[0]
        .client()
        .pin(&cid, &PinOptions::default())
        .await
        .unwrap();
    for (i, p) in peers.iter().enumerate() {
        p.wait_status(&cid, "pinned").await.unwrap();
        assert!(ipfs[i].is_pinned(&cid).await.unwrap());
    }
    assert_eq!(peers[1].client().peers().await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn followers_never_stall_the_cluster_and_catch_up_when_they_return() {
    let mut c = TestCluster::start(3, 2).await.unwrap();
    let roles: Vec<(String, Option<PeerRole>)> = c.peers[0]
        .client()
        .peers()
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.id, p.role))
        .collect();
    for (i, p) in c.peers.iter().enumerate() {
        let want = if i < 3 {
            PeerRole::Voter
        } else {
            PeerRole::Follower
        };
        let role = roles.iter().find(|(id, _)| *id == p.id()).unwrap().1;
        assert_eq!(role, Some(want), "peer {i}");
    }
    let out = c.peers[0].ctl(&["peers", "ls"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Role: follower"),
        "{}",
        text(&out)
    );

    c.peers[3].stop();
    c.peers[4].stop();
    let a = c.ipfs[0].add(&unique("while-away")).await.unwrap();
    c.peers[1]
        .client()
        .pin(&a, &PinOptions::default())
        .await
        .unwrap();
    pinned_everywhere(&c, &a, &[0, 1, 2]).await;

    c.peers[3].start(&[]).await.unwrap();
    c.peers[4].start(&[]).await.unwrap();
    pinned_everywhere(&c, &a, &[3, 4]).await;

    // A follower can be promoted to voter and demoted back.
    let f = c.peers[3].id();
    let out = c.peers[0].ctl(&["peers", "promote", &f]);
    assert!(out.status.success(), "{}", text(&out));
    let client = c.peers[0].client();
    let role_is = |want: PeerRole| {
        let client = client.clone();
        let f = f.clone();
        async move {
            wait_for(&format!("{f} to be {want:?}"), DEADLINE, || async {
                let peers = client.peers().await.ok()?;
                let p = peers.into_iter().find(|p| p.id == f)?;
                (p.role == Some(want)).then_some(())
            })
            .await
        }
    };
    role_is(PeerRole::Voter).await.unwrap();
    let out = c.peers[1].ctl(&["peers", "demote", &f]);
    assert!(out.status.success(), "{}", text(&out));
    role_is(PeerRole::Follower).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_through_a_follower_is_visible_there_as_soon_as_it_is_acknowledged() {
    let c = TestCluster::start(3, 0).await.unwrap();
    let leader = c.leader_seen_by(0).await.unwrap();
    let other = (0..3).find(|&i| i != leader).unwrap();
    let client = c.peers[other].client();
    for n in 0..10 {
        let data = unique(&format!("read your writes {n}"));
        let cid = c.ipfs[other].add(&data).await.unwrap();
        let pin = client.pin(&cid, &PinOptions::default()).await.unwrap();
        // No waiting: the peer that acknowledged the pin has applied it.
        let got = client.allocation(&pin.cid.to_string()).await.unwrap();
        assert_eq!(got.cid, pin.cid);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_that_joins_after_a_state_import_receives_the_imported_pinset() {
    let mut c = TestCluster::start(1, 0).await.unwrap();
    // Some history first, so the import lands on a log that already has entries.
    let before = c.ipfs[0].add(&unique("before import")).await.unwrap();
    c.peers[0]
        .client()
        .pin(&before, &PinOptions::default())
        .await
        .unwrap();
    c.peers[0].stop();
    let mut lines = String::new();
    let mut imported = Vec::new();
    for n in 0..50u8 {
        let cid = identity_cid(&format!("import {n:02}"));
        let pin = ipfs_cluster::types::Pin::new(cid.parse().unwrap(), PinOptions::default());
        imported.push(pin.cid.to_string());
        lines.push_str(&serde_json::to_string(&pin).unwrap());
        lines.push('\n');
    }
    let file = c.dir.path().join("import.ndjson");
    std::fs::write(&file, lines).unwrap();
    let out = service(
        &c.peers[0].dir,
        &["state", "import", "--force", file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    c.peers[0].start(&[]).await.unwrap();

    let joiner = c.add_peer(&[], "10GB", |_| {}).await.unwrap();
    let client = c.peers[joiner].client();
    let want: Vec<&String> = imported.iter().collect();
    wait_for(
        "the joiner to hold the imported pinset",
        DEADLINE,
        || async {
            let have = pinset(&client).await;
            sorted(&want).iter().all(|c| have.contains(c)).then_some(())
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn global_status_of_more_pins_than_a_page_merges_every_peer_and_names_a_stopped_one() {
    let mut c = TestCluster::start(3, 0).await.unwrap();
    // More pins than one page of a peer's status (1,000), pinned everywhere.
    let n = 1200;
    let mut tasks = Vec::new();
    for k in 0..8 {
        let client = c.peers[k % 3].client();
        tasks.push(tokio::spawn(async move {
            for i in (k..n).step_by(8) {
                client
                    .pin(&identity_cid(&format!("page {i}")), &PinOptions::default())
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let client = c.peers[0].client();
    let ids: Vec<String> = c.peers.iter().map(|p| p.id()).collect();
    wait_for("every peer to pin every CID", DEADLINE * 3, || async {
        let all = client.status_all("", &[]).await.gather().await.ok()?;
        let done = all.len() == n
            && all.iter().all(|g| {
                ids.iter().all(|id| {
                    g.peer_map
                        .get(id)
                        .is_some_and(|i| i.status.to_string() == "pinned")
                })
            });
        done.then_some(())
    })
    .await
    .unwrap();
    let all = client.status_all("", &[]).await.gather().await.unwrap();
    let keys: Vec<String> = all.iter().map(|g| g.cid.to_string()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted, "one entry per CID, in CID order");

    // A stopped peer does not fail the listing: each of its pins says why.
    c.peers[2].stop();
    let all = client.status_all("", &[]).await.gather().await.unwrap();
    assert_eq!(all.len(), n);
    for g in &all {
        let gone = &g.peer_map[&ids[2]];
        assert_eq!(gone.status.to_string(), "cluster_error", "{}", g.cid);
        assert!(gone.error.contains("not reachable"), "{}", gone.error);
        assert_eq!(g.peer_map[&ids[1]].status.to_string(), "pinned");
    }
    // The filter keeps a pin when any peer matches it.
    let errored = client
        .status_all("cluster_error", &[])
        .await
        .gather()
        .await
        .unwrap();
    assert_eq!(errored.len(), n);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_started_with_leave_leaves_the_cluster_when_stopped() {
    let mut c = TestCluster::start(3, 0).await.unwrap();
    let leader = c.leader_seen_by(0).await.unwrap();
    let v = (leader + 1) % 3;
    c.peers[v].stop();
    c.peers[v].start(&["--leave"]).await.unwrap();
    c.peers[v].stop();
    assert!(
        !c.peers[v].dir.join("raft").exists(),
        "the peer that left backed up and cleaned its state"
    );
    for i in (0..3).filter(|&i| i != v) {
        let client = c.peers[i].client();
        wait_for("the membership to shrink", DEADLINE, || async {
            (client.peers().await.ok()?.len() == 2).then_some(())
        })
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_graph_and_bandwidth_show_every_peer_and_its_ipfs_node() {
    let c = TestCluster::start(3, 0).await.unwrap();
    let ids: Vec<String> = c.peers.iter().map(Peer::id).collect();
    let client = c.peers[0].client();
    // Every peer sees the two others, and each has its own IPFS node; the IPFS nodes are
    // connected to each other (the cluster connects them).
    let g = wait_for("the graph to be complete", DEADLINE, || async {
        let g = client.graph().await.ok()?;
        let complete = ids.iter().all(|p| {
            g.cluster_links.get(p).is_some_and(|l| l.len() == 2)
                && g.cluster_to_ipfs.contains_key(p)
        });
        complete.then_some(g)
    })
    .await
    .unwrap();
    assert_eq!(g.cluster_id, ids[0]);
    assert_eq!(g.id_to_peername.len(), 3);
    let out = c.peers[1].ctl(&["health", "graph"]);
    assert!(out.status.success(), "{}", text(&out));
    let dot = String::from_utf8_lossy(&out.stdout);
    assert_eq!(dot.matches("shape=\"box3d\"").count(), 3, "{dot}");
    assert!(dot.contains("shape=\"cylinder\""), "{dot}");

    // Raft and status traffic went through the cluster RPC protocol.
    let bw = client.bandwidth().await.unwrap();
    let rpc = &bw[ipfs_cluster::types::RPC_PROTOCOL];
    assert!(rpc.total_in > 0 && rpc.total_out > 0, "{bw:?}");
}

/// The leader's last log index, from its Prometheus metrics at `url`.
async fn last_log_index(url: &str) -> u64 {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("ipfscluster_raft_last_log_index "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no last log index in {text}")) as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_through_a_follower_is_committed_in_groups_and_each_line_is_answered() {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let c = TestCluster::start_custom(
        3,
        |_| "10GB".into(),
        |i, cfg| {
            cfg["observations"]["metrics"]["enable_stats"] = true.into();
            cfg["observations"]["metrics"]["prometheus_endpoint"] =
                format!("/ip4/127.0.0.1/tcp/{}", ports[i]).into();
        },
    )
    .await
    .unwrap();
    let leader = c.leader_seen_by(0).await.unwrap();
    let follower = (leader + 1) % 3;
    let metrics = format!("http://127.0.0.1:{}/metrics", ports[leader]);
    let before = last_log_index(&metrics).await;
    let pins = 2000;
    let mut body = String::new();
    for n in 0..pins {
        if n == 1000 {
            // Refused on its own (3 peers cannot hold 5 copies); the others go on.
            let cid = identity_cid("too many copies");
            body.push_str(&format!(
                "{{\"cid\":\"{cid}\",\"replication_factor_min\":5,\"replication_factor_max\":5}}\n"
            ));
        }
        body.push_str(&format!(
            "{{\"cid\":\"{}\"}}\n",
            identity_cid(&format!("batch {n}"))
        ));
    }
    let client = c.peers[follower].client();
    let results: Vec<_> = {
        use futures::TryStreamExt;
        client
            .pin_many(body.into())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    };
    assert_eq!(results.len(), pins + 1);
    let failed: Vec<_> = results.iter().filter(|r| r.code != 200).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].line, 1001);
    assert!(
        results.windows(2).all(|w| w[0].line < w[1].line),
        "answers in line order"
    );
    // Through the follower, yet far fewer entries than pins.
    let entries = last_log_index(&metrics).await - before;
    assert!(
        entries <= pins as u64 / 50,
        "{pins} pins took {entries} log entries"
    );
    assert_eq!(
        c.peers[follower]
            .client()
            .status_summary()
            .await
            .unwrap()
            .pins,
        pins as u64,
        "every pin acknowledged is in the follower's state"
    );
}
