//! The CRDT consensus's figures (issue 25), from the integration tests of
//! `tests/tests/crdt.rs` run with the release build: the partition (three test hosts in
//! network namespaces; root) prints the time from the link's return to every peer holding both
//! sides' writes; the followers test the time from a pin's acknowledgement to the last of 50
//! followers listing it; the checkpoint test (with 1,000,000 pins) the time a new peer takes
//! to load the checkpoint and to list every pin, and its memory then. Pins per second are
//! measured here, on 3 CRDT peers, with batching and without.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cluster_tests::*;
use ipfs_cluster::types::PinOptions;

use crate::{cid_for, Report};

/// Pins per second of `clients` concurrent REST clients spread over 3 CRDT peers (IPFS
/// connector pointed at nothing), with `batching` (`(max_batch_size, max_batch_age)`) or
/// without; and the rate to every peer listing every pin.
async fn throughput(r: &mut Report, clients: usize, batching: Option<(u64, &str)>) -> Result<()> {
    let settings = match batching {
        Some((size, age)) => serde_json::json!({
            "cluster_name": "crdt-bench",
            "trusted_peers": ["*"],
            "batching": {"max_batch_size": size, "max_batch_age": age},
        }),
        None => serde_json::json!({"cluster_name": "crdt-bench", "trusted_peers": ["*"]}),
    };
    let c = TestCluster::start_consensus_only(&[], 3, 0, |cfg| {
        let consensus = cfg["consensus"].as_object_mut().unwrap();
        consensus.remove("raft");
        consensus.insert("crdt".into(), settings.clone());
    })
    .await?;
    for p in &c.peers {
        p.wait_logged("IPFS Cluster is READY", DEADLINE).await?;
    }
    let total: usize = std::env::var("BENCH_PINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let per_client = total / clients.max(1);
    let tag = format!("crdt{}-", batching.map_or(0, |b| b.0));
    let (cpu_before, _) = c.cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..clients {
        let client = c.peers[k % 3].client();
        let tag = format!("{tag}{k}-");
        tasks.push(tokio::spawn(async move {
            for n in 0..per_client {
                client
                    .pin(&cid_for(&tag, n), &PinOptions::default())
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let acked = started.elapsed().as_secs_f64();
    let pins = per_client * clients;
    let (cpu_after, _) = c.cpu_seconds();
    for p in &c.peers {
        wait_for(
            "every peer to list every pin",
            Duration::from_secs(600),
            || async {
                let listed = p.read_stream("/allocations").await.ok()?.lines;
                (listed == pins).then_some(())
            },
        )
        .await?;
    }
    let everywhere = started.elapsed().as_secs_f64();
    let how = match batching {
        Some((size, age)) => format!("batching (max_batch_size {size}, max_batch_age {age})"),
        None => "no batching".into(),
    };
    r.add(
        &format!("CRDT pins/s, {clients} clients, 3 peers, {how}, IPFS connector idle"),
        Some(pins as f64 / acked),
        "pins/s",
        "—",
        &format!(
            "{pins} pins to acknowledgement (with batching: in the peer's on-disk batch); \
             CPU per 1,000 pins: cluster peers {:.2} s",
            (cpu_after - cpu_before) / pins as f64 * 1000.0
        ),
    );
    r.add(
        &format!("CRDT pins/s to every peer listing them, {clients} clients, {how}"),
        Some(pins as f64 / everywhere),
        "pins/s",
        "—",
        "from the first pin sent to each of the 3 peers listing every pin (`/allocations`)",
    );
    Ok(())
}

/// Pins per second, with IPFS Cluster's kind of batching and without.
pub async fn crdt_rates(r: &mut Report) -> Result<()> {
    throughput(r, 64, None).await?;
    throughput(r, 64, Some((1000, "1s"))).await
}

/// Runs `test` of `tests/tests/crdt.rs` with the release build and returns the number its
/// `FIGURE <prefix> … <n> s` line gives (`None` when it skipped: not root).
fn figure_of(test: &str, prefix: &str) -> Result<Option<f64>> {
    Ok(figures_of(test, &[], &[prefix])?.remove(0))
}

/// Runs `test` (with `envs`) as [`figure_of`] does, and returns each of `prefixes`' numbers.
fn figures_of(test: &str, envs: &[(&str, &str)], prefixes: &[&str]) -> Result<Vec<Option<f64>>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new("cargo")
        .args(["test", "--release", "-p", "cluster-tests", "--test", "crdt"])
        .args([test, "--", "--exact", "--nocapture"])
        .envs(envs.iter().copied())
        .current_dir(&root)
        .output()
        .context("running cargo test")?;
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("{test} failed:\n{text}");
    }
    Ok(prefixes
        .iter()
        .map(|prefix| {
            let marker = format!("FIGURE {prefix}");
            let line = text.lines().find(|l| l.starts_with(&marker))?;
            // The last number before its unit (" s", " MB") on the line.
            line.split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .filter(|w| w[1] == "s" || w[1] == "MB")
                .filter_map(|w| w[0].parse::<f64>().ok())
                .next_back()
        })
        .collect())
}

pub fn crdt_figures(r: &mut Report) -> Result<()> {
    let healed = figure_of(
        "a_peer_cut_off_by_the_network_pins_100_cids_and_every_peer_holds_them_after_healing",
        "crdt partition healed",
    )?;
    r.add(
        "CRDT: a partition healed to every peer holding both sides' writes",
        healed,
        "s",
        "≤ 10 s",
        "3 CRDT peers on three test hosts (network namespaces), each with its built-in IPFS \
         node; host C's link down until A has closed its dead connection (two pings \
         unanswered); C pins 100 CIDs alone while A unpins one and B pins one; from the link's \
         return to every peer listing the 101 pins",
    );
    let followers = figure_of(
        "fifty_followers_of_three_trusted_peers_all_get_a_pin",
        "crdt followers",
    )?;
    r.add(
        "CRDT: a pin reaching 50 followers of 3 trusted peers",
        followers,
        "s",
        "≤ 5 s",
        "53 peer processes on loopback, IPFS connector pointed at nothing; each follower \
         bootstrapped from one trusted peer and trusting only it; from the pin's \
         acknowledgement on a trusted peer to the last follower listing it",
    );
    let join = figures_of(
        "a_new_peer_of_a_large_cluster_loads_a_checkpoint_and_holds_every_pin",
        &[("CRDT_CHECKPOINT_PINS", "1000000")],
        &["crdt join", "crdt memory"],
    )?;
    r.add(
        "CRDT: a new peer of a 1,000,000-pin cluster holding every pin (checkpoint)",
        join[0],
        "s",
        "≤ 60 s",
        "2 CRDT peers on loopback, IPFS connector pointed at nothing; 1,000,000 pins made by \
         `state import` (1,000 deltas) on the first, which makes a checkpoint at start; from \
         the new peer's start to its REST API listing every pin (`/allocations`)",
    );
    r.add(
        "CRDT: memory of a new peer holding 1,000,000 pins",
        join[1],
        "MB",
        "—",
        "resident memory of the new peer above, once it has listed every pin",
    );
    Ok(())
}
