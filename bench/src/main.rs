//! `cluster-bench`: measures the figures of bench/README.md with real peer processes, real
//! SQLite files and real IPFS nodes on this machine's loopback, and writes them with their
//! goals to `bench/results.json` and `bench/RESULTS.md`. Never run by the tests.
//!
//! `--quick` measures the 100,000-pin figures only; the default adds 1,000,000; `--large`
//! adds 10,000,000.

mod add;
mod crdt;
mod desktop;
mod join;
mod pinsview;

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cluster_tests::*;
use ipfs_cluster::types::{Pin, PinOptions};
use serde::Serialize;

#[derive(Serialize, serde::Deserialize)]
struct Figure {
    name: String,
    value: Option<f64>,
    unit: String,
    goal: String,
    note: String,
}

#[derive(Default)]
struct Report {
    figures: Vec<Figure>,
    /// The disk's own rate of one-fsync SQLite commits, for the ratios of the write figures.
    disk_commits: Option<f64>,
}

impl Report {
    fn add(&mut self, name: &str, value: Option<f64>, unit: &str, goal: &str, note: &str) {
        let shown = value.map_or("not measured".into(), |v| format!("{v:.2} {unit}"));
        eprintln!("{name}: {shown} (goal {goal}) {note}");
        self.figures.push(Figure {
            name: name.into(),
            value,
            unit: unit.into(),
            goal: goal.into(),
            note: note.into(),
        });
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A CID per `n`, pinned at once by any IPFS node (see [`identity_cid`]).
pub(crate) fn cid_for(tag: &str, n: usize) -> String {
    identity_cid(&format!("{tag}{n:08}"))
}

/// Commit latency of sequential pins through the leader of `voters` voters.
async fn commit_latency(report: &mut Report, voters: usize) -> Result<()> {
    let c = TestCluster::start(voters, 0).await?;
    let leader = c.leader_seen_by(0).await?;
    let client = c.peers[leader].client();
    let mut ms = Vec::new();
    for n in 0..300 {
        let started = Instant::now();
        client
            .pin(
                &cid_for(&format!("lat{voters}-"), n),
                &PinOptions::default(),
            )
            .await?;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    for (p, goal) in [(0.5, "≤ 3 ms"), (0.95, "—"), (0.99, "≤ 15 ms")] {
        report.add(
            &format!("commit latency p{} ({voters} voter(s))", (p * 100.0) as u32),
            Some(percentile(&ms, p)),
            "ms",
            if voters == 3 { goal } else { "—" },
            "sequential pins through the leader, REST to acknowledgement",
        );
    }
    Ok(())
}

/// Stops every IPFS node of `c` once the cluster is up: the peers' IPFS connector then has
/// nothing to do but fail at once (the "IPFS connector idle" figures, which measure the
/// cluster alone).
async fn idle_ipfs(c: &mut TestCluster) -> Result<()> {
    c.leader_seen_by(0).await?;
    for ipfs in c.ipfs.iter_mut() {
        ipfs.stop();
    }
    Ok(())
}

/// Pins per second with `clients` concurrent REST clients on 3 voters, with the IPFS nodes
/// pinning (`idle`: stopped).
async fn throughput(report: &mut Report, clients: usize, idle: bool) -> Result<()> {
    let mut c = TestCluster::start(3, 0).await?;
    if idle {
        idle_ipfs(&mut c).await?;
    }
    let total: usize = std::env::var("BENCH_PINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let per_client = total / clients.max(1);
    let (peers_before, ipfs_before) = c.cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..clients {
        let client = c.peers[k % 3].client();
        tasks.push(tokio::spawn(async move {
            for n in 0..per_client {
                let cid = cid_for(&format!("tp{clients}-{k}-"), n);
                client.pin(&cid, &PinOptions::default()).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let pins = (per_client * clients) as f64;
    let rate = pins / started.elapsed().as_secs_f64();
    // Where the CPU went, per 1,000 pins: the three cluster peers, and the three IPFS nodes
    // pinning every CID (replication -1) on the same two cores.
    let (peers_after, ipfs_after) = c.cpu_seconds();
    let peers_cpu = (peers_after - peers_before) / pins * 1000.0;
    let ipfs_cpu = (ipfs_after - ipfs_before) / pins * 1000.0;
    let name = if idle {
        format!("pins/s, {clients} client(s), 3 voters, IPFS connector idle")
    } else {
        format!("pins/s, {clients} client(s), 3 voters")
    };
    report.add(
        &name,
        Some(rate),
        "pins/s",
        if clients == 64 && idle {
            "≥ 10,000"
        } else {
            "—"
        },
        &format!(
            "{}CPU per 1,000 pins: cluster peers {peers_cpu:.2} s, IPFS nodes {ipfs_cpu:.2} s",
            report
                .disk_commits
                .map(|d| format!("{:.2}× the disk's one-fsync commit rate; ", rate / d))
                .unwrap_or_default()
        ),
    );
    Ok(())
}

/// Pins per second through the batch form (`POST /pins`, NDJSON) of one client, sent to a
/// follower of 3 voters with the IPFS connector idle.
async fn batch_form(report: &mut Report) -> Result<()> {
    let mut c = TestCluster::start(3, 0).await?;
    idle_ipfs(&mut c).await?;
    let leader = c.leader_seen_by(0).await?;
    let follower = (leader + 1) % 3;
    let total: usize = std::env::var("BENCH_BATCH_PINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut body = Vec::with_capacity(total * 80);
    for n in 0..total {
        writeln!(body, "{{\"cid\":\"{}\"}}", cid_for("batch-", n))?;
    }
    let (peers_before, _) = c.cpu_seconds();
    let started = Instant::now();
    let mut results = c.peers[follower].client().pin_many(body.into()).await?;
    let mut ok = 0usize;
    {
        use futures::StreamExt;
        while let Some(r) = results.next().await {
            if r?.code == 200 {
                ok += 1;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(ok == total, "{ok} of {total} pins accepted");
    let (peers_after, _) = c.cpu_seconds();
    report.add(
        "pins/s, batch form, 1 client, 3 voters, IPFS connector idle",
        Some(total as f64 / elapsed),
        "pins/s",
        "≥ 50,000",
        &format!(
            "{total} pins in one POST /pins to a follower; CPU per 1,000 pins: cluster peers {:.2} s",
            (peers_after - peers_before) / total as f64 * 1000.0
        ),
    );
    Ok(())
}

/// Commit latency of sequential pins through a follower of 3 voters, the IPFS connector idle.
async fn follower_latency(report: &mut Report) -> Result<()> {
    let mut c = TestCluster::start(3, 0).await?;
    idle_ipfs(&mut c).await?;
    let leader = c.leader_seen_by(0).await?;
    let client = c.peers[(leader + 1) % 3].client();
    let mut ms = Vec::new();
    for n in 0..500 {
        let started = Instant::now();
        client
            .pin(&cid_for("latf-", n), &PinOptions::default())
            .await?;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    for (p, goal) in [(0.5, "≤ 3 ms"), (0.95, "—"), (0.99, "≤ 15 ms")] {
        report.add(
            &format!(
                "commit latency p{} through a follower (3 voters, IPFS connector idle)",
                (p * 100.0) as u32
            ),
            Some(percentile(&ms, p)),
            "ms",
            goal,
            "500 sequential pins sent to a follower, REST to acknowledgement",
        );
    }
    Ok(())
}

/// The disk's own limits, as SQLite with the peer's settings reaches them: one fsync per
/// commit, and 100 rows per commit.
async fn sqlite_limits(report: &mut Report) -> Result<()> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    let dir = tempfile::tempdir()?;
    let opts = SqliteConnectOptions::new()
        .filename(dir.path().join("bench.sqlite"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let pool = sqlx::SqlitePool::connect_with(opts).await?;
    sqlx::query("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        .execute(&pool)
        .await?;
    let started = Instant::now();
    for k in 0..500i64 {
        sqlx::query("INSERT INTO t VALUES (?, ?)")
            .bind(k)
            .bind("x".repeat(300))
            .execute(&pool)
            .await?;
    }
    let single = 500.0 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for b in 0..50i64 {
        let mut tx = pool.begin().await?;
        for k in 0..100i64 {
            sqlx::query("INSERT INTO t VALUES (?, ?)")
                .bind(10_000 + b * 100 + k)
                .bind("x".repeat(300))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    let batched = 5000.0 / started.elapsed().as_secs_f64();
    report.disk_commits = Some(single);
    report.add(
        "SQLite, one fsync per commit",
        Some(single),
        "rows/s",
        "(the disk's limit)",
        "",
    );
    report.add(
        "SQLite, 100 rows per commit",
        Some(batched),
        "rows/s",
        "(the disk's limit)",
        "",
    );
    Ok(())
}

/// An ndjson file of `n` pins for `state import`, each with a name and metadata, allocated
/// to a peer outside the cluster, so that no IPFS node is asked to pin them.
pub(crate) fn write_import(file: &std::path::Path, n: usize) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(file)?);
    let opts = PinOptions {
        replication_factor_min: 1,
        replication_factor_max: 1,
        ..Default::default()
    };
    for k in 0..n {
        let mut opts = opts.clone();
        opts.name = format!("bench pin {k}");
        opts.metadata = [
            ("kind".to_string(), "bench".to_string()),
            ("batch".to_string(), (k / 1000).to_string()),
        ]
        .into();
        let mut pin = Pin::new(
            cid_for("size-", k).parse().map_err(anyhow::Error::msg)?,
            opts,
        );
        pin.allocations = vec!["12D3KooWLe5VSWGTfRmpVPcmr1qKTBkbeB3YJzqTR3uLbDZ94Dge".into()];
        serde_json::to_writer(&mut out, &pin)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// The desktop app at rest in the tray and with its window open (see `desktop.rs`).
async fn desktop_figures(report: &mut Report) -> Result<()> {
    let app = bin_dir().join("ipfs-cluster-desktop");
    let label = "desktop app";
    if !app.exists() {
        for (name, goal) in [
            ("in the tray (window closed): PSS", "≤ 120 MB"),
            ("in the tray (window closed): CPU", "< 0.5 %"),
            ("window open, idle: CPU", "< 2 %"),
            ("window open, idle, 1,000,000 pins: CPU", "< 1 %"),
        ] {
            report.add(
                &format!("{label} {name}"),
                None,
                "",
                goal,
                "not measured: build it with `cargo build --release -p ipfs-cluster --features desktop --bin ipfs-cluster-desktop`",
            );
        }
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let pins = 100_000;
    let file = dir.path().join("import.ndjson");
    write_import(&file, pins)?;
    let d = desktop::measure(app.clone(), pins, &file).await?;
    let note = format!("one peer of {} pins, after 20 s at rest, over 30 s", d.pins);
    report.add(
        &format!("{label} in the tray (window closed): PSS"),
        Some(d.tray_pss),
        "MB",
        "≤ 120 MB",
        &format!(
            "{note}; app and WebKit processes (the session bus and keyring apart); its built-in IPFS node adds {:.0} MB",
            d.tray_ipfs_pss
        ),
    );
    report.add(
        &format!("{label} in the tray (window closed): CPU"),
        Some(d.tray_cpu),
        "% of a core",
        "< 0.5 %",
        &note,
    );
    report.add(
        &format!("{label} window open, idle: CPU"),
        Some(d.open_cpu),
        "% of a core",
        "< 2 %",
        &format!("{note}; PSS {:.0} MB with the window open", d.open_pss),
    );
    // The window open and idle over a pinset of a million (issue 22's case): what the
    // window costs must not grow with the pinset.
    let big = 1_000_000;
    let file = dir.path().join("import-1m.ndjson");
    write_import(&file, big)?;
    let d = desktop::measure(app, big, &file).await?;
    report.add(
        &format!("{label} window open, idle, 1,000,000 pins: CPU"),
        Some(d.open_cpu),
        "% of a core",
        "< 1 %",
        &format!(
            "one peer of {} pins, after 20 s at rest, over 30 s; PSS {:.0} MB with the window open, {:.0} MB in the tray",
            d.pins, d.open_pss, d.tray_pss
        ),
    );
    Ok(())
}

/// The goal of a pinset figure: for 1,000,000 pins, for 10,000,000, none for other sizes.
fn goal_at(n: usize, million: &'static str, ten_million: &'static str) -> &'static str {
    match n {
        1_000_000 => million,
        10_000_000 => ten_million,
        _ => "—",
    }
}

/// For a pinset of `n` pins put in by `state import`: restart to ready, memory, disk size,
/// `/allocations` rate and memory while streaming, and a new peer's join.
async fn pinset_figures(report: &mut Report, n: usize) -> Result<()> {
    let slow = |cfg: &mut serde_json::Value| {
        cfg["consensus"]["raft"]["network_timeout"] = "60s".into();
    };
    let mut c = TestCluster::start_custom(1, |_| "10GB".into(), |_, cfg| slow(cfg)).await?;
    c.peers[0].stop();
    let file = c.dir.path().join("import.ndjson");
    write_import(&file, n)?;
    let out = service(
        &c.peers[0].dir,
        &["state", "import", "--force", file.to_str().unwrap()],
    );
    anyhow::ensure!(out.status.success(), "import: {}", text(&out));
    let label = |what: &str| format!("{what} ({n} pins)");
    let started = Instant::now();
    c.peers[0].spawn(&[])?;
    c.peers[0]
        .wait_ready_within(Duration::from_secs(600))
        .await?;
    report.add(
        &label("restart to Ready"),
        Some(started.elapsed().as_secs_f64()),
        "s",
        goal_at(n, "≤ 3 s", "≤ 10 s"),
        "first start after the import, which also snapshots it",
    );
    wait_for(
        "the import's snapshot",
        Duration::from_secs(1800),
        || async {
            c.peers[0]
                .current_log()
                .contains("imported pinset is in a snapshot")
                .then_some(())
        },
    )
    .await?;
    let rss = c.peers[0].rss().context("rss")? as f64 / 1e6;
    report.add(
        &label("daemon RSS at rest"),
        Some(rss),
        "MB",
        goal_at(n, "≤ 150 MB", "≤ 600 MB"),
        "",
    );
    let disk = std::fs::metadata(c.peers[0].dir.join("raft/raft.sqlite"))?.len() as f64 / 1e6;
    report.add(&label("disk size (raft.sqlite)"), Some(disk), "MB", "—", "");

    let started = Instant::now();
    let listed = c.peers[0].read_stream("/allocations").await?;
    let rate = listed.lines as f64 / started.elapsed().as_secs_f64();
    report.add(
        &label("/allocations stream"),
        Some(rate),
        "pins/s",
        "≥ 500,000",
        "",
    );
    report.add(
        &label("memory growth while streaming"),
        Some(listed.grown as f64 / 1e6),
        "MB",
        "flat",
        "",
    );

    let started = Instant::now();
    let j = c.add_peer_on(None, 0, slow).await?;
    c.peers[j]
        .wait_ready_within(Duration::from_secs(1800))
        .await?;
    report.add(
        &label("new peer join to Ready"),
        Some(started.elapsed().as_secs_f64()),
        "s",
        goal_at(n, "≤ 30 s", "≤ 5 min"),
        "installs the snapshot",
    );

    // Global status with two peers: this one's status and the joiner's, in pages, merged.
    let started = Instant::now();
    let status = c.peers[0].read_stream("/pins").await?;
    let lines = status.lines;
    anyhow::ensure!(lines == n, "global status listed {lines} of {n} pins");
    report.add(
        &label("global status stream, 2 peers"),
        Some(lines as f64 / started.elapsed().as_secs_f64()),
        "pins/s",
        "—",
        "GET /pins: this peer's status and the other's in pages, merged",
    );
    report.add(
        &label("memory growth while streaming global status"),
        Some(status.grown as f64 / 1e6),
        "MB",
        "flat",
        "",
    );
    Ok(())
}

/// `status --local` of a peer whose real IPFS node holds 10,000 pins: the time to stream it.
async fn local_status(report: &mut Report) -> Result<()> {
    let n = 10_000;
    let c = TestCluster::start(1, 0).await?;
    let mut tasks = Vec::new();
    for k in 0..32 {
        let client = c.peers[0].client();
        tasks.push(tokio::spawn(async move {
            for i in (k..n).step_by(32) {
                client
                    .pin(&cid_for("local-", i), &PinOptions::default())
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let url = format!(
        "http://127.0.0.1:{}/pins?local=true&filter=pinned",
        c.peers[0].rest_port
    );
    let count = || async {
        let mut resp = reqwest::get(&url).await.ok()?;
        let mut lines = 0usize;
        while let Some(chunk) = resp.chunk().await.ok()? {
            lines += chunk.iter().filter(|b| **b == b'\n').count();
        }
        Some(lines)
    };
    wait_for(
        "IPFS to hold every pin",
        Duration::from_secs(600),
        || async { count().await.filter(|l| *l >= n) },
    )
    .await?;
    let mut secs = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        count().await.context("status --local")?;
        secs.push(started.elapsed().as_secs_f64());
    }
    secs.sort_by(f64::total_cmp);
    report.add(
        "status --local against a real IPFS node with 10,000 pins",
        Some(n as f64 / secs[2]),
        "pins/s",
        "—",
        &format!("median of 5: {:.3} s for the whole status", secs[2]),
    );
    Ok(())
}

/// CPU of a 3-voter cluster with nothing to do, per peer and per IPFS node.
async fn idle(report: &mut Report) -> Result<()> {
    let c = TestCluster::start(3, 0).await?;
    let window = Duration::from_secs(20);
    let (p0, n0) = c.cpu_seconds();
    tokio::time::sleep(window).await;
    let (p1, n1) = c.cpu_seconds();
    let pct = |cpu: f64| cpu / window.as_secs_f64() / 3.0 * 100.0;
    report.add(
        "idle CPU per cluster peer (3 voters, no pins)",
        Some(pct(p1 - p0)),
        "% of a core",
        "—",
        "",
    );
    report.add(
        "idle CPU per built-in IPFS node (3 voters, no pins)",
        Some(pct(n1 - n0)),
        "% of a core",
        "—",
        "",
    );
    Ok(())
}

/// From killing the leader of 3 voters to the next accepted write: the median of 5 clusters
/// (the election timeout is random, 1 to 2 s by default).
async fn leader_loss(report: &mut Report) -> Result<()> {
    let mut secs = Vec::new();
    for round in 0..5 {
        let mut c = TestCluster::start(3, 0).await?;
        let leader = c.leader_seen_by(0).await?;
        let other = (0..3).find(|&i| i != leader).unwrap();
        let client = c.peers[other].client();
        c.peers[leader].kill9();
        let started = Instant::now();
        let mut n = 0;
        loop {
            n += 1;
            let cid = cid_for(&format!("after-loss-{round}-"), n);
            if client.pin(&cid, &PinOptions::default()).await.is_ok() {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(120),
                "no write accepted"
            );
        }
        secs.push(started.elapsed().as_secs_f64());
    }
    secs.sort_by(f64::total_cmp);
    report.add(
        "leader loss to an accepted write",
        Some(secs[2]),
        "s",
        "≤ 2 s",
        &format!(
            "kill -9 of the leader of 3 voters; median of 5 (min {:.2} s, max {:.2} s)",
            secs[0], secs[4]
        ),
    );
    Ok(())
}

/// The longest pause between acknowledged writes while the leader of 3 voters is stopped on
/// purpose (SIGTERM: it hands leadership over first), writes going one after another through
/// a follower; the median of 5 clusters. Against `leader_loss` (a leader that dies).
async fn planned_stop(report: &mut Report) -> Result<()> {
    let mut pauses = Vec::new();
    for round in 0..5 {
        let mut c = TestCluster::start(3, 0).await?;
        let leader = c.leader_seen_by(0).await?;
        let other = (0..3).find(|&i| i != leader).unwrap();
        let client = c.peers[other].client();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = tokio::spawn({
            let stop = stop.clone();
            async move {
                let (mut longest, mut last, mut failed) = (Duration::ZERO, Instant::now(), 0);
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let cid = cid_for(&format!("planned-stop-{round}-"), n);
                    match client.pin(&cid, &PinOptions::default()).await {
                        Ok(_) => {
                            longest = longest.max(last.elapsed());
                            last = Instant::now();
                        }
                        Err(_) => failed += 1,
                    }
                }
                (longest, failed)
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        tokio::task::block_in_place(|| c.peers[leader].stop());
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (longest, failed) = writer.await?;
        anyhow::ensure!(failed == 0, "{failed} writes failed during a planned stop");
        pauses.push(longest.as_secs_f64());
    }
    pauses.sort_by(f64::total_cmp);
    report.add(
        "longest write pause while the leader stops on purpose",
        Some(pauses[2]),
        "s",
        "—",
        &format!(
            "SIGTERM to the leader of 3 voters (hand-over), writes through a follower; median of 5 (min {:.2} s, max {:.2} s); no write failed",
            pauses[0], pauses[4]
        ),
    );
    Ok(())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let cores = cpu.lines().filter(|l| l.starts_with("processor")).count();
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = mem
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .nth(1)
        .and_then(|k| k.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
        / 1024;
    format!("{cores} cores ({model}), {total} GiB")
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let large = args.iter().any(|a| a == "--large");
    // `--only <part>` (sqlite, latency, throughput, batch, leader, pinset, status, desktop, add,
    // pinsview, join, crdt) runs one
    // part, for profiling; the committed table comes from a full run.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let part = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let mut sizes = vec![100_000];
    if !quick {
        sizes.push(1_000_000);
    }
    if large {
        sizes.push(10_000_000);
    }
    let mut r = Report::default();
    if part("sqlite") {
        sqlite_limits(&mut r).await?;
    }
    if part("latency") {
        for voters in [1, 3, 5] {
            commit_latency(&mut r, voters).await?;
        }
    }
    if part("throughput") {
        let clients: Vec<usize> = match std::env::var("BENCH_CLIENTS") {
            Ok(v) => v.split(',').filter_map(|c| c.parse().ok()).collect(),
            Err(_) => vec![1, 16, 64],
        };
        // BENCH_IDLE=only: the figures with the IPFS connector idle only (for profiling).
        let idle_only = std::env::var("BENCH_IDLE").is_ok_and(|v| v == "only");
        for clients in clients.iter().copied().filter(|_| !idle_only) {
            throughput(&mut r, clients, false).await?;
        }
        for clients in clients {
            throughput(&mut r, clients, true).await?;
        }
    }
    if part("batch") {
        batch_form(&mut r).await?;
    }
    if part("latency") {
        follower_latency(&mut r).await?;
    }
    if part("idle") {
        idle(&mut r).await?;
    }
    if part("leader") {
        leader_loss(&mut r).await?;
        planned_stop(&mut r).await?;
    }
    if part("pinset") {
        for n in sizes {
            pinset_figures(&mut r, n).await?;
        }
    }
    if part("status") {
        local_status(&mut r).await?;
    }
    if part("desktop") {
        desktop_figures(&mut r).await?;
    }
    if part("add") {
        add::add_figures(&mut r).await?;
    }
    if part("pinsview") {
        pinsview::pins_view_figures(&mut r).await?;
    }
    if part("join") {
        join::join_figures(&mut r)?;
    }
    if part("crdt") {
        crdt::crdt_rates(&mut r).await?;
        crdt::crdt_figures(&mut r)?;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let merge = args.iter().any(|a| a == "--merge");
    if only.is_some() && !merge {
        eprintln!("--only: results not written (add --merge to put them into the committed table)");
        return Ok(());
    }
    if merge {
        // The figures of the committed run, with those measured now in place of theirs (or
        // after them, when new).
        let old: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("results.json"))?)?;
        let mut figures: Vec<Figure> = serde_json::from_value(old["figures"].clone())?;
        for f in std::mem::take(&mut r.figures) {
            match figures.iter_mut().find(|o| o.name == f.name) {
                Some(o) => *o = f,
                None => figures.push(f),
            }
        }
        r.figures = figures;
    }
    let machine = machine();
    let when = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let json = serde_json::json!({"machine": machine, "date": when, "figures": r.figures});
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    let mut md = format!("# Benchmark results\n\n{when}, {machine}, loopback, release build (the command in `bench/README.md`).\n\n| figure | measured | goal | note |\n|---|---|---|---|\n");
    for f in &r.figures {
        let v = f
            .value
            .map_or("not measured".into(), |v| format!("{v:.2} {}", f.unit));
        md += &format!("| {} | {} | {} | {} |\n", f.name, v, f.goal, f.note);
    }
    std::fs::write(dir.join("RESULTS.md"), md)?;
    eprintln!("written: bench/results.json, bench/RESULTS.md");
    Ok(())
}
