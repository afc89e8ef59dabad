//! Fault injection (issue: safe by default, faults lose nothing): peers killed with SIGKILL
//! in the middle of concurrent pins. Whatever the REST API acknowledged (a 2xx) must be in
//! every peer's pinset afterwards, and every IPFS node must end up holding it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use cluster_tests::*;
use ipfs_cluster::types::{Cid, PinOptions};

/// Concurrent clients, spread over the peers.
const CLIENTS: usize = 24;

/// Pins `n` new CIDs (tagged `tag`) through every peer's REST API, `CLIENTS` at a time, and
/// records each one acknowledged. A request that fails is tried on the next peer; one that
/// fails on every peer is counted as failed (and may or may not have been committed).
fn pin_load(
    c: &TestCluster,
    tag: &str,
    n: usize,
    acked: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<usize> {
    let clients: Vec<_> = c.peers.iter().map(Peer::client).collect();
    let tag = tag.to_string();
    tokio::spawn(async move {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for w in 0..CLIENTS {
            let clients = clients.clone();
            let (next, acked, tag) = (next.clone(), acked.clone(), tag.clone());
            workers.spawn(async move {
                let mut failed = 0;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        return failed;
                    }
                    let cid = identity_cid(&format!("{tag} {i}"));
                    // As a client with several peers' addresses does: on a failure, the next.
                    let mut done = false;
                    for k in 0..clients.len() {
                        let client = &clients[(w + k) % clients.len()];
                        match client.pin(&cid, &PinOptions::default()).await {
                            Ok(_) => {
                                acked.lock().unwrap().push(canonical(&cid));
                                done = true;
                                break;
                            }
                            Err(e) if std::env::var("FAULTS_VERBOSE").is_ok() => {
                                eprintln!(
                                    "{} {e}",
                                    tokio::time::Instant::now().elapsed().as_millis()
                                )
                            }
                            Err(_) => {}
                        }
                    }
                    if !done {
                        failed += 1;
                    }
                }
            });
        }
        let mut failed = 0;
        while let Some(f) = workers.join_next().await {
            failed += f.unwrap();
        }
        failed
    })
}

/// The form the cluster and IPFS list a CID in (base32 for CIDv1).
fn canonical(cid: &str) -> String {
    cid.parse::<Cid>().expect("a valid CID").to_string()
}

/// Waits until `acked` holds at least `n` pins.
async fn acked_at_least(acked: &Arc<Mutex<Vec<String>>>, n: usize) {
    wait_for(&format!("{n} acknowledged pins"), DEADLINE, || async {
        (acked.lock().unwrap().len() >= n).then_some(())
    })
    .await
    .unwrap();
}

/// Every acknowledged pin is in `peer`'s pinset (read through its own REST API).
async fn holds_every_acknowledged_pin(peer: &Peer, acked: &BTreeSet<String>, who: &str) {
    let client = peer.client();
    let missing = wait_for(
        &format!("{who} to hold every acknowledged pin"),
        DEADLINE,
        || async {
            let have: BTreeSet<String> = pinset(&client).await.into_iter().collect();
            acked.is_subset(&have).then_some(())
        },
    )
    .await;
    if missing.is_err() {
        let have: BTreeSet<String> = pinset(&client).await.into_iter().collect();
        let lost: Vec<_> = acked.difference(&have).take(5).collect();
        panic!(
            "{who} lost {} acknowledged pins, e.g. {lost:?}; log:\n{}",
            acked.difference(&have).count(),
            peer.current_log()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_leader_a_follower_and_every_peer_during_pins_loses_no_acknowledged_pin() {
    let mut c = TestCluster::start(3, 0).await.unwrap();
    let acked: Arc<Mutex<Vec<String>>> = Default::default();
    let per_phase = 340;

    // SOAK_ROUNDS=N repeats the three crashes N times (a longer soak; CI runs one round).
    let rounds: usize = std::env::var("SOAK_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for round in 0..rounds {
        // 1. The leader dies a third of the way through.
        let before = acked.lock().unwrap().len();
        let leader = c.leader_seen_by(0).await.unwrap();
        let load = pin_load(
            &c,
            &format!("leader killed {round}"),
            per_phase,
            acked.clone(),
        );
        acked_at_least(&acked, before + per_phase / 3).await;
        c.peers[leader].kill9();
        let failed = load.await.unwrap();
        eprintln!(
            "leader killed: {} acknowledged, {failed} failed",
            acked.lock().unwrap().len()
        );
        c.peers[leader].start(&[]).await.unwrap();

        // 2. A follower (of the new leader) dies the same way.
        let before = acked.lock().unwrap().len();
        let leader = c.leader_seen_by(leader).await.unwrap();
        let follower = (leader + 1) % 3;
        let load = pin_load(
            &c,
            &format!("follower killed {round}"),
            per_phase,
            acked.clone(),
        );
        acked_at_least(&acked, before + per_phase / 3).await;
        c.peers[follower].kill9();
        let failed = load.await.unwrap();
        eprintln!(
            "follower killed: {} acknowledged, {failed} failed",
            acked.lock().unwrap().len()
        );
        c.peers[follower].start(&[]).await.unwrap();

        // 3. Every peer dies at once (a power cut), then all come back.
        let before = acked.lock().unwrap().len();
        let load = pin_load(&c, &format!("all killed {round}"), per_phase, acked.clone());
        acked_at_least(&acked, before + per_phase / 3).await;
        for p in c.peers.iter_mut() {
            p.kill9();
        }
        let failed = load.await.unwrap();
        eprintln!(
            "all killed: {} acknowledged, {failed} failed",
            acked.lock().unwrap().len()
        );
        // None is ready alone (no quorum): start all, then wait for each.
        for p in c.peers.iter_mut() {
            p.spawn(&[]).unwrap();
        }
        for p in c.peers.iter_mut() {
            p.wait_ready().await.unwrap();
        }
    }

    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert!(
        acked.len() >= per_phase,
        "the load mostly succeeded: {}",
        acked.len()
    );
    for (i, p) in c.peers.iter().enumerate() {
        holds_every_acknowledged_pin(p, &acked, &format!("peer{i}")).await;
    }
    // Replication everywhere (-1): every IPFS node ends up pinning every one.
    for (i, ipfs) in c.ipfs.iter().enumerate() {
        wait_for(
            &format!("IPFS node {i} to pin every acknowledged pin"),
            DEADLINE * 2,
            || async {
                let pinned: BTreeSet<String> = ipfs
                    .pins()
                    .await
                    .ok()?
                    .iter()
                    .map(|c| canonical(c))
                    .collect();
                acked.is_subset(&pinned).then_some(())
            },
        )
        .await
        .unwrap();
    }
    // And the cluster still takes writes.
    let cid = identity_cid("after every crash");
    c.peers[0]
        .client()
        .pin(&cid, &PinOptions::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_while_the_leader_is_dead_waits_for_the_next_leader() {
    // Long enough for any election on a loaded machine: the write must not give up first.
    let mut c = TestCluster::start_custom(
        3,
        |_| "10GB".into(),
        |_, cfg| cfg["consensus"]["raft"]["wait_for_leader_timeout"] = "60s".into(),
    )
    .await
    .unwrap();
    let leader = c.leader_seen_by(0).await.unwrap();
    c.peers[leader].kill9();
    // At once, through a surviving peer that still takes the dead one for its leader.
    let other = (leader + 1) % 3;
    let cid = identity_cid("written while the leader is dead");
    let pinned = c.peers[other]
        .client()
        .pin(&cid, &PinOptions::default())
        .await;
    assert!(pinned.is_ok(), "{pinned:?}");
    let new_leader = c.leader_seen_by(other).await.unwrap();
    assert_ne!(new_leader, leader);
    let acked = BTreeSet::from([canonical(&cid)]);
    holds_every_acknowledged_pin(&c.peers[(leader + 2) % 3], &acked, "the third peer").await;
}

/// `peer`'s daemon fails to start; returns what it said (its log of this run).
async fn start_fails(peer: &mut Peer) -> String {
    match peer.start(&[]).await {
        Ok(()) => {
            let log = peer.current_log();
            peer.stop();
            panic!("started on damaged files; log:\n{log}")
        }
        Err(e) => format!("{e:#}\n{}", peer.current_log()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn damaged_files_stop_the_start_with_a_clear_error_and_are_left_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let ipfs = IpfsNode::start(dir.path()).await.unwrap();
    let mut peer = Peer::init(&dir.path().join("peer"), &ipfs, |_| {}).unwrap();
    peer.start(&[]).await.unwrap();
    let client = peer.client();
    for i in 0..300 {
        let cid = identity_cid(&format!("before the damage {i}"));
        client.pin(&cid, &PinOptions::default()).await.unwrap();
    }
    peer.stop();
    // A peer that stopped leaves no write-ahead log to replay.
    let wal = peer.dir.join("raft/raft.sqlite-wal");
    assert!(
        std::fs::metadata(&wal).map_or(0, |m| m.len()) == 0,
        "{wal:?} left"
    );
    let folder = peer.dir.clone();
    let damage = |file: &str, how: &dyn Fn(&[u8]) -> Vec<u8>| {
        let path = folder.join(file);
        let good = std::fs::read(&path).unwrap();
        std::fs::write(&path, how(&good)).unwrap();
        (path, good)
    };
    let half = |b: &[u8]| b[..b.len() / 2].to_vec();
    type Damage<'a> = &'a dyn Fn(&[u8]) -> Vec<u8>;
    let cases: [(&str, Damage, &str); 4] = [
        ("raft/raft.sqlite", &half, "raft.sqlite"),
        ("identity.json", &half, "identity.json"),
        ("service.json", &half, "service.json"),
        (
            "identity.json",
            &|_| b"{\"id\": \"12D3KooWnope\", \"private_key\": \"AAAA\"}".to_vec(),
            "identity.json",
        ),
    ];
    for (file, how, named) in cases {
        let (path, good) = damage(file, how);
        let damaged = std::fs::read(&path).unwrap();
        let said = start_fails(&mut peer).await;
        assert!(
            said.contains(named),
            "{file}: the error names {named}:\n{said}"
        );
        assert!(
            std::fs::read(&path).unwrap() == damaged,
            "{file} was rewritten"
        );
        std::fs::write(&path, good).unwrap();
    }
    // Repaired, it starts with every pin.
    peer.start(&[]).await.unwrap();
    assert_eq!(pinset(&client).await.len(), 300);
}

/// A small tmpfs mounted at a new folder, unmounted when dropped (needs root, as CI has).
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(path: std::path::PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&path).unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount tmpfs (run as root): {out:?}");
        SmallDisk { path }
    }

    fn resize(&self, size: &str) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .output()
            .unwrap();
        assert!(out.status.success(), "remount: {out:?}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_during_pins_loses_no_acknowledged_pin_and_the_peer_goes_on_after() {
    let dir = tempfile::tempdir().unwrap();
    let ipfs = IpfsNode::start(dir.path()).await.unwrap();
    let mut peer = Peer::init(&dir.path().join("peer"), &ipfs, |_| {}).unwrap();
    // Raft's folder (log, pinset, snapshots) on a disk that fills up.
    let disk = SmallDisk::mount(peer.dir.join("raft"), "3m");
    peer.start(&[]).await.unwrap();
    let client = peer.client();
    let mut acked = BTreeSet::new();
    let mut refusal = None;
    for i in 0..50_000 {
        let cid = identity_cid(&format!("until the disk is full {i}"));
        match client.pin(&cid, &PinOptions::default()).await {
            Ok(_) => {
                acked.insert(canonical(&cid));
            }
            Err(e) => {
                refusal = Some(e.to_string());
                break;
            }
        }
    }
    let refusal = refusal.expect("the disk filled up");
    eprintln!("{} pins, then: {refusal}", acked.len());
    if std::env::var("FAULTS_VERBOSE").is_ok() {
        eprintln!("{}", peer.current_log());
    }
    assert!(refusal.to_lowercase().contains("full"), "{refusal}");

    // Raft stopped for good on the failed write (openraft's rule for storage errors): the
    // daemon does not run on without a consensus, it exits saying why.
    let clean = peer.wait_exit().await.unwrap();
    assert!(!clean, "exit status says it failed");
    assert!(
        peer.current_log().contains("Raft stopped"),
        "{}",
        peer.current_log()
    );

    // Space again: started again, the peer has every acknowledged pin and takes writes.
    disk.resize("64m");
    peer.start(&[]).await.unwrap();
    holds_every_acknowledged_pin(&peer, &acked, "the peer").await;
    let cid = identity_cid("after the disk had room again");
    peer.client()
        .pin(&cid, &PinOptions::default())
        .await
        .unwrap();
}
