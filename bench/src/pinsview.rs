//! The desktop app's Pins view at a million pins (issue 22: "the Pins view shows its first
//! rows within 1 s and a search answers within 0.5 s"): the `pins_page` command the window
//! calls (`Desktop::pins_page`), in this process with its peer holding 1,000,000 imported
//! pins, each with a name and metadata; a real IPFS node behind it.

use std::time::Instant;

use anyhow::{Context, Result};
use ipfs_cluster::consensus::offline;
use ipfs_cluster::desktop::{Desktop, PinsOrder, PinsQuery, SearchIn};
use ipfs_cluster::peer::StartOptions;

use crate::Report;

const PINS: usize = 1_000_000;

/// Seconds `pins_page(q)` takes, the first time and the slowest of five more, and its rows.
async fn timed(d: &Desktop, q: PinsQuery) -> Result<(f64, f64, usize)> {
    let started = Instant::now();
    let first = d.pins_page(q.clone()).await?;
    let cold = started.elapsed().as_secs_f64();
    let mut worst: f64 = 0.0;
    for _ in 0..5 {
        let started = Instant::now();
        d.pins_page(q.clone()).await?;
        worst = worst.max(started.elapsed().as_secs_f64());
    }
    Ok((cold, worst, first.pins.len()))
}

pub async fn pins_view_figures(report: &mut Report) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_ipfs, d) = crate::add::desktop_in(dir.path()).await?;
    let app = dir.path().join("app");
    d.stop().await;
    let file = dir.path().join("import.ndjson");
    crate::write_import(&file, PINS)?;
    let input = std::io::BufReader::new(std::fs::File::open(&file)?);
    offline::stage_import(&app, ipfs_cluster::state::read_pins(input))
        .await
        .map_err(anyhow::Error::msg)?
        .commit()
        .await
        .map_err(anyhow::Error::msg)?;
    d.start(StartOptions::default()).await.context("restart")?;
    let page = |q: PinsQuery| PinsQuery {
        limit: Some(100),
        ..q
    };
    // As the pinset writes it (the import's CIDs are in base 16).
    let middle = crate::cid_for("size-", PINS / 2)
        .parse::<ipfs_cluster::types::Cid>()
        .map_err(anyhow::Error::msg)?
        .to_string();
    let asks = [
        ("first rows, by CID", page(PinsQuery::default()), "≤ 1 s"),
        (
            "first rows, by name",
            page(PinsQuery {
                order: PinsOrder::Name,
                ..Default::default()
            }),
            "≤ 1 s",
        ),
        (
            "first rows, last CID first",
            page(PinsQuery {
                order: PinsOrder::CidDesc,
                ..Default::default()
            }),
            "≤ 1 s",
        ),
        (
            "search by name (\"bench pin 77777\")",
            page(PinsQuery {
                search: "bench pin 77777".into(),
                ..Default::default()
            }),
            "≤ 0.5 s",
        ),
        (
            "search by CID prefix (all but its last 3 characters)",
            page(PinsQuery {
                search: middle[..middle.len() - 3].to_string(),
                search_in: SearchIn::Cid,
                ..Default::default()
            }),
            "≤ 0.5 s",
        ),
        (
            "status filter that matches nothing (errors)",
            page(PinsQuery {
                filter: "error".into(),
                ..Default::default()
            }),
            "—",
        ),
    ];
    for (what, q, goal) in asks {
        let (cold, worst, rows) = timed(&d, q).await?;
        report.add(
            &format!("Pins view at {PINS} pins: {what}"),
            Some(cold),
            "s",
            goal,
            &format!(
                "{rows} rows with each peer's status (`pins_page`, the window's command); \
                 slowest of 5 more {worst:.3} s"
            ),
        );
    }
    d.stop().await;
    Ok(())
}
