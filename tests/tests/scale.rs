//! Large pinsets: a state import of 300,000 pins reaches a peer that joins later (a snapshot
//! built, sent and installed), and listing it streams from disk without holding it in memory.
//! Nothing here is timed; memory is compared with the size of what is listed.

use cluster_tests::*;
use ipfs_cluster::types::{Pin, PinOptions};

const PINS: usize = 300_000;

fn cid_for(n: usize) -> String {
    identity_cid(&format!("pin {n:07}"))
}

/// A log line without its terminal colour codes.
fn without_colours(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            out.push(ch);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_imported_pinset_of_300k_pins_streams_from_disk_and_reaches_a_joiner() {
    // A debug build moves a 300,000-pin snapshot slowly: the join may take minutes. A small
    // snapshot threshold makes the log itself trigger snapshots of the large pinset too.
    let slow_join = |cfg: &mut serde_json::Value| {
        cfg["consensus"]["raft"]["network_timeout"] = "30s".into();
        cfg["consensus"]["raft"]["snapshot_threshold"] = 50.into();
        cfg["consensus"]["raft"]["trailing_logs"] = 10.into();
    };
    let mut c = TestCluster::start_custom(1, |_| "10GB".into(), |_, cfg| slow_join(cfg))
        .await
        .unwrap();
    c.peers[0].stop();
    // Allocated to a peer that is not in this cluster: no IPFS node is asked to pin them.
    let elsewhere = "12D3KooWLe5VSWGTfRmpVPcmr1qKTBkbeB3YJzqTR3uLbDZ94Dge";
    let opts = PinOptions {
        replication_factor_min: 1,
        replication_factor_max: 1,
        ..Default::default()
    };
    c.peers[0].import_pins((0..PINS).map(|n| {
        let mut pin = Pin::new(cid_for(n).parse().unwrap(), opts.clone());
        pin.allocations = vec![elsewhere.to_string()];
        pin
    }));
    c.peers[0].start(&[]).await.unwrap();
    c.peers[0]
        .wait_logged("imported pinset is in a snapshot", DEADLINE * 3)
        .await
        .unwrap();

    // Listing streams: the daemon's memory grows by far less than what it sends (read here
    // as it arrives, with no overall time limit: a debug build streams slowly).
    let listed = c.peers[0].read_stream("/allocations").await.unwrap();
    assert_eq!(listed.lines, PINS, "every pin listed");
    assert!(
        listed.grown < listed.bytes / 2,
        "memory grew by {} bytes while streaming {} bytes of pins",
        listed.grown,
        listed.bytes
    );

    // A peer that joins now installs the snapshot: it holds every imported pin.
    let joiner = c.add_peer_on(None, 0, slow_join).await.unwrap();
    c.peers[joiner]
        .wait_ready_within(DEADLINE * 6)
        .await
        .unwrap();
    c.peers[joiner]
        .wait_logged("installed a snapshot", DEADLINE * 3)
        .await
        .unwrap();
    assert_eq!(
        c.peers[joiner]
            .read_stream("/allocations")
            .await
            .unwrap()
            .lines,
        PINS,
        "the joiner holds every imported pin"
    );

    // Past the threshold, both peers build snapshots of the whole large pinset from the log.
    let built = |i: usize| c.peers[i].current_log().matches("built a snapshot").count();
    let (leader_before, joiner_before) = (built(0), built(joiner));
    let leader = c.peers[0].client();
    for n in 0..120 {
        leader
            .pin(&cid_for(PINS + n), &PinOptions::default())
            .await
            .unwrap();
    }
    wait_for("snapshots from the log", DEADLINE * 3, || async {
        (built(0) > leader_before && built(joiner) > joiner_before).then_some(())
    })
    .await
    .unwrap();
    let log = c.peers[joiner].current_log();
    let line = log
        .lines()
        .rfind(|l| l.contains("built a snapshot"))
        .map(without_colours)
        .unwrap();
    let count: usize = line
        .split("pins=")
        .nth(1)
        .and_then(|r| r.split(|ch: char| !ch.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        count > PINS,
        "the joiner's snapshot holds the whole pinset and what came after: {line}"
    );

    // The cluster's global status streams too: the other peer's status arrives in pages and
    // is merged as it comes, so the asking peer's memory stays far below what it sends.
    let status = c.peers[0].read_stream("/pins").await.unwrap();
    assert_eq!(status.lines, PINS + 120, "every pin's global status");
    assert!(
        status.grown < status.bytes / 4,
        "memory grew by {} bytes while streaming {} bytes of global status",
        status.grown,
        status.bytes
    );
}

/// Resident memory of process `pid`, in bytes.
fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// What README's "Limits inside the peer" states: a peer under these floods at once stays
/// under this resident size (a debug build; a release build is smaller). Measured: 72–76 MB.
const FLOOD_RSS_BOUND: u64 = 192 << 20;

#[tokio::test(flavor = "multi_thread")]
async fn floods_of_connections_writes_and_state_changes_keep_each_peers_memory_bounded() {
    use tokio::io::AsyncWriteExt;
    ipfs_cluster::process::raise_open_files_limit();
    // No IPFS: every pin applied fails on every peer and stays as an error (the most the
    // tracker keeps).
    let mut c = TestCluster::start_without_ipfs(3, 0).await.unwrap();
    let leader = c.leader_seen_by(0).await.unwrap();
    let follower = (leader + 1) % 3;
    let pids: Vec<u32> = c.peers.iter().map(|p| p.pid().unwrap()).collect();
    let stop = tokio_util::sync::CancellationToken::new();
    // The largest resident size each peer reaches, sampled until the floods are over.
    let peaks: Vec<_> = (0..3)
        .map(|_| std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)))
        .collect();
    let sampler = {
        let (stop, peaks, pids) = (stop.clone(), peaks.clone(), pids.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                for (pid, peak) in pids.iter().zip(&peaks) {
                    peak.fetch_max(rss_of(*pid), std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
    };

    // 1. 3,000 HTTP connections held open on the third peer's REST API (its limit: 1,024;
    // the rest wait in the backlog or are refused), half of them in the middle of a request
    // head.
    let third = 3 - leader - follower;
    let rest = format!("127.0.0.1:{}", c.peers[third].rest_port);
    let mut held = Vec::new();
    for i in 0..3000 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(&rest).await {
            if i % 2 == 0 {
                let _ = s.write_all(b"GET /id HTTP/1.1\r\nHost: x\r\n").await;
            }
            held.push(s);
        }
    }
    // 2. 64 clients pinning one at a time through the follower (writes forwarded to the
    // leader over cluster RPC), 3. while a batch of 30,000 pins goes through the leader
    // (state changes on every peer).
    let mut writers = Vec::new();
    for k in 0..64 {
        let client = c.peers[follower].client();
        writers.push(tokio::spawn(async move {
            for n in 0..50 {
                let cid = identity_cid(&format!("flood {k} {n}"));
                client.pin(&cid, &PinOptions::default()).await.unwrap();
            }
        }));
    }
    let mut body = String::new();
    for n in 0..30_000 {
        body.push_str(&format!("{{\"cid\":\"{}\"}}\n", cid_for(n)));
    }
    let answers = {
        use futures::TryStreamExt;
        c.peers[leader]
            .client()
            .pin_many(body.into())
            .await
            .unwrap()
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
    };
    assert!(answers.iter().all(|a| a.code == 200));
    for w in writers {
        w.await.unwrap();
    }
    drop(held);
    let total = 30_000 + 64 * 50;
    for i in 0..3 {
        let client = c.peers[i].client();
        wait_for("every pin applied everywhere", DEADLINE, || async {
            let s = client.status_summary().await.ok()?;
            (s.pins == total as u64).then_some(())
        })
        .await
        .unwrap();
    }
    stop.cancel();
    sampler.await.unwrap();
    for (i, peak) in peaks.iter().enumerate() {
        let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
        eprintln!("peer {i}: peak resident size {} MB", peak >> 20);
        assert!(
            peak < FLOOD_RSS_BOUND,
            "peer {i} reached {} MB under the floods (bound {} MB)",
            peak >> 20,
            FLOOD_RSS_BOUND >> 20
        );
        assert!(c.peers[i].is_running());
    }
}
