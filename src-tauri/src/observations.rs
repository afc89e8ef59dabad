//! Operators' metrics (SPEC §4): Prometheus text at `GET /metrics` on
//! `observations.metrics.prometheus_endpoint`, served when `enable_stats` is set (or
//! `daemon --stats`), as IPFS Cluster does.
//!
//! IPFS Cluster's names (`ipfscluster_pins`, `ipfscluster_pins_pin_queued`, …, from its
//! OpenCensus views: gauges for last values, counters without `_total` for sums), plus this
//! project's Raft numbers (`ipfscluster_raft_*`). Every value is read when scraped: nothing
//! runs between scrapes, and `reporting_interval` has nothing to pace.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::cluster::{Cluster, ClusterStats};
use crate::config::MetricsConfig;
use crate::error::Error;
use crate::tasks::Tasks;

/// Prometheus' text exposition format, version 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn family(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

/// The text of one scrape.
pub(crate) fn render(s: &ClusterStats) -> String {
    let mut out = String::new();
    let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
        family(out, &format!("ipfscluster_{name}"), "gauge", help, v)
    };
    let counter = |out: &mut String, name: &str, help: &str, v: u64| {
        family(
            out,
            &format!("ipfscluster_{name}"),
            "counter",
            help,
            v as f64,
        )
    };
    let t = &s.tracker;
    gauge(
        &mut out,
        "pins",
        "Total number of cluster pins",
        s.pins as f64,
    );
    gauge(
        &mut out,
        "pins_pin_queued",
        "Current number of pins queued for pinning",
        t.pin_queued as f64,
    );
    gauge(
        &mut out,
        "pins_pinning",
        "Current number of pins currently pinning",
        t.pinning as f64,
    );
    gauge(
        &mut out,
        "pins_pin_error",
        "Current number of pins in pin_error state",
        t.pin_error as f64,
    );
    gauge(
        &mut out,
        "pins_unpin_queued",
        "Current number of pins queued for unpinning",
        t.unpin_queued as f64,
    );
    gauge(
        &mut out,
        "pins_unpinning",
        "Current number of pins currently unpinning",
        t.unpinning as f64,
    );
    gauge(
        &mut out,
        "pins_unpin_error",
        "Current number of pins in unpin_error state",
        t.unpin_error as f64,
    );
    if let Some(n) = s.ipfs_pins {
        gauge(
            &mut out,
            "pins_ipfs_pins",
            "Current number of items pinned on IPFS",
            n as f64,
        );
    }
    counter(
        &mut out,
        "pins_pin_add",
        "Total number of IPFS pin requests",
        t.pin_add,
    );
    counter(
        &mut out,
        "pins_pin_add_errors",
        "Total number of failed pin requests",
        t.pin_add_errors,
    );
    // Not in IPFS Cluster: the limits, and how often they bit.
    counter(
        &mut out,
        "rpc_refused_busy",
        "Incoming cluster RPC calls answered busy (too many in flight)",
        s.rpc_refused_busy,
    );
    counter(
        &mut out,
        "crdt_rejected_broadcasts",
        "Messages on the CRDT's topic rejected because their signer is not trusted",
        s.crdt_rejected,
    );
    counter(
        &mut out,
        "http_refused_connections",
        "HTTP connections answered 503 because an API served as many as it may at once",
        crate::http_server::refused_connections(),
    );
    counter(
        &mut out,
        "pins_moved_checks_deferred",
        "Remote pins whose moved-away check was left to a state sync (its queue was full)",
        t.moved_checks_deferred,
    );
    // The bounded feed of applied changes into the tracker.
    gauge(
        &mut out,
        "state_feed_queued",
        "State changes queued for the pin tracker",
        t.feed_queued as f64,
    );
    counter(
        &mut out,
        "state_feed_coalesced",
        "Applied pins re-read from the pinset instead of queued (the feed was full or a reset was pending)",
        t.feed_coalesced,
    );
    counter(
        &mut out,
        "state_feed_waited",
        "Applied unpins that waited for room in the state feed",
        t.feed_waited,
    );
    if let Some(free) = s.freespace {
        gauge(
            &mut out,
            "informer_disk",
            "The metric value weight issued by disk informer",
            free as f64,
        );
    }
    gauge(
        &mut out,
        "peers",
        "Number of cluster peers (voters and followers)",
        s.peers as f64,
    );
    let r = &s.raft;
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    gauge(&mut out, "raft_term", "Current Raft term", r.term as f64);
    gauge(
        &mut out,
        "raft_is_leader",
        "1 if this peer is the Raft leader",
        flag(r.is_leader),
    );
    gauge(
        &mut out,
        "raft_has_leader",
        "1 if this peer knows a Raft leader",
        flag(r.has_leader),
    );
    gauge(
        &mut out,
        "raft_voters",
        "Voting members of the Raft cluster",
        r.voters as f64,
    );
    gauge(
        &mut out,
        "raft_learners",
        "Non-voting members (followers, joining peers)",
        r.learners as f64,
    );
    gauge(
        &mut out,
        "raft_last_log_index",
        "Index of the last entry in this peer's log",
        r.last_log_index as f64,
    );
    gauge(
        &mut out,
        "raft_commit_index",
        "Index of the last committed entry",
        r.commit_index as f64,
    );
    gauge(
        &mut out,
        "raft_applied_index",
        "Index of the last entry applied to the pinset",
        r.applied_index as f64,
    );
    gauge(
        &mut out,
        "raft_log_entries",
        "Entries in the log not yet folded into a snapshot",
        r.log_entries as f64,
    );
    gauge(
        &mut out,
        "raft_snapshot_index",
        "Last log index the current snapshot covers",
        r.snapshot_index as f64,
    );
    gauge(
        &mut out,
        "raft_snapshot_size_bytes",
        "Size of the current snapshot file",
        r.snapshot_bytes as f64,
    );
    gauge(
        &mut out,
        "raft_snapshot_duration_seconds",
        "How long building the last snapshot took",
        r.snapshot_seconds,
    );
    out
}

async fn metrics(State(cluster): State<Cluster>) -> Response {
    match cluster.stats().await {
        Ok(s) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&s)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Serves `/metrics` on `prometheus_endpoint` until shutdown; returns the bound addresses.
pub(crate) async fn serve(
    cluster: Cluster,
    cfg: &MetricsConfig,
    folder: &std::path::Path,
    tasks: &Tasks,
) -> Result<Vec<crate::net::ListenAddr>, Error> {
    let router = Router::new()
        .route("/metrics", get(metrics))
        .with_state(cluster)
        // Scrapers are not web pages; no page may read the metrics.
        .layer(axum::middleware::from_fn_with_state(
            crate::http_policy::CrossSitePolicy::no_pages(
                "observations.metrics.prometheus_endpoint",
            ),
            crate::http_policy::refuse_cross_site,
        ));
    let settings = crate::http_server::HttpSettings::plain(
        "observations.metrics.prometheus_endpoint",
        cfg.prometheus_endpoint.clone(),
    );
    crate::http_server::serve(&settings, folder, router, tasks).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_type_and_one_sample() {
        let text = render(&ClusterStats {
            pins: 3,
            ipfs_pins: Some(2),
            freespace: Some(1000),
            ..Default::default()
        });
        let mut names = Vec::new();
        for chunk in text.trim_end().split("# HELP ").skip(1) {
            let lines: Vec<&str> = chunk.lines().collect();
            assert_eq!(lines.len(), 3, "{chunk}");
            let name = lines[0].split(' ').next().unwrap();
            assert!(lines[1].starts_with(&format!("# TYPE {name} ")));
            assert!(lines[2].starts_with(&format!("{name} ")));
            names.push(name.to_string());
        }
        for expected in [
            "ipfscluster_pins",
            "ipfscluster_pins_ipfs_pins",
            "ipfscluster_informer_disk",
        ] {
            assert!(names.contains(&expected.to_string()), "{expected}");
        }
        assert!(text.contains("ipfscluster_pins 3\n"));
    }
}
