//! The IPFS Pinning Service API (SPEC §1, port 9097), so that Kubo's `ipfs pin remote` and
//! IPFS Desktop's pinning-service settings can use the cluster as their pinning service.
//!
//! As IPFS Cluster's `pinsvcapi`: a request id is the pin's CID; a pin's status is the
//! cluster's, merged over its peers (failed if any peer failed, else queued, pinning, pinned
//! in that order; pins only unpinning are not listed); `delegates` are the IPFS addresses of
//! the peers that hold it. Unlike IPFS Cluster, listings are in the order the spec's
//! pagination needs (newest first, so `before` = the last `created` gives the next page), and
//! a listing holds at most `limit` results in memory while it walks the statuses as a stream.
//! Auth as the REST API: `basic_auth_credentials`, and Bearer tokens from `POST /token`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::config::HttpApiConfig;
use crate::error::{Error, ErrorKind};
use crate::restapi::Params;
use crate::tasks::Tasks;
use crate::types::{Cid, GlobalPinInfo, Pin, PinOptions, StatusFilter, TrackerStatus};

/// The spec's error body: `{"error": {"reason", "details"}}`.
fn svc_error(status: StatusCode, details: String) -> Response {
    let reason = match status {
        StatusCode::BAD_REQUEST => "BAD_REQUEST",
        StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::FORBIDDEN => "FORBIDDEN",
        _ => "INTERNAL_SERVER_ERROR",
    };
    let body = serde_json::json!({"error": {"reason": reason, "details": details}});
    (status, Json(body)).into_response()
}

fn error(e: Error) -> Response {
    let status = match e.kind() {
        ErrorKind::BadInput => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    svc_error(status, e.to_string())
}

fn bad(details: impl Into<String>) -> Response {
    svc_error(StatusCode::BAD_REQUEST, details.into())
}

/// A pin as the spec has it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SvcPin {
    pub cid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origins: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

#[derive(Serialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Copy)]
#[serde(rename_all = "lowercase")]
pub enum SvcStatus {
    Queued,
    Pinning,
    Pinned,
    Failed,
}

impl std::str::FromStr for SvcStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "queued" => Ok(SvcStatus::Queued),
            "pinning" => Ok(SvcStatus::Pinning),
            "pinned" => Ok(SvcStatus::Pinned),
            "failed" => Ok(SvcStatus::Failed),
            other => Err(Error::BadInput(format!(
                "status {other:?}: must be queued, pinning, pinned or failed"
            ))),
        }
    }
}

#[derive(Serialize, Clone, Debug)]
pub struct PinStatus {
    pub requestid: String,
    pub status: SvcStatus,
    pub created: DateTime<Utc>,
    pub pin: SvcPin,
    pub delegates: Vec<String>,
    pub info: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct PinResults {
    count: u64,
    results: Vec<PinStatus>,
}

/// The spec allows at most 20 delegates.
const MAX_DELEGATES: usize = 20;

/// The cluster's status of a pin over all its peers, as the spec's one status (see the
/// module docs); None for a pin on its way out.
fn merged_status(g: &GlobalPinInfo) -> Option<SvcStatus> {
    let has = |f: &dyn Fn(TrackerStatus) -> bool| g.peer_map.values().any(|i| f(i.status));
    if has(&|s| s.is_error() || s == TrackerStatus::UnexpectedlyUnpinned) {
        Some(SvcStatus::Failed)
    } else if has(&|s| matches!(s, TrackerStatus::PinQueued | TrackerStatus::Queued)) {
        Some(SvcStatus::Queued)
    } else if has(&|s| s == TrackerStatus::Pinning) {
        Some(SvcStatus::Pinning)
    } else if has(&|s| s == TrackerStatus::Pinned) {
        Some(SvcStatus::Pinned)
    } else {
        None
    }
}

fn svc_pin(cid: &Cid, name: &str, origins: &[String], meta: &BTreeMap<String, String>) -> SvcPin {
    SvcPin {
        cid: cid.to_string(),
        name: (!name.is_empty()).then(|| name.to_string()),
        origins: origins.to_vec(),
        meta: meta.clone(),
    }
}

fn status_of(g: &GlobalPinInfo, status: SvcStatus) -> PinStatus {
    let p = &g.pin;
    PinStatus {
        requestid: p.cid.to_string(),
        status,
        created: p.created.unwrap_or_else(Utc::now),
        pin: svc_pin(&p.cid, &p.name, &p.origins, &p.metadata),
        delegates: g
            .peer_map
            .values()
            .flat_map(|i| i.ipfs_peer_addresses.iter().cloned())
            .take(MAX_DELEGATES)
            .collect(),
        info: BTreeMap::new(),
    }
}

/// The request body of `POST /pins` as cluster pin options.
fn pin_options(body: &[u8]) -> Result<(Cid, PinOptions), Response> {
    let pin: SvcPin = serde_json::from_slice(body)
        .map_err(|e| bad(format!("the body is not a pin object: {e}")))?;
    let cid: Cid = pin
        .cid
        .parse()
        .map_err(|e| bad(format!("cid {:?}: {e}", pin.cid)))?;
    let name = pin.name.unwrap_or_default();
    if name.chars().count() > 255 {
        return Err(bad("name: at most 255 characters"));
    }
    for o in &pin.origins {
        o.parse::<multiaddr::Multiaddr>()
            .map_err(|e| bad(format!("origins: {o:?}: {e}")))?;
    }
    let opts = PinOptions {
        name,
        origins: pin.origins,
        metadata: pin.meta,
        ..Default::default()
    };
    Ok((cid, opts))
}

impl Svc {
    /// A pin just committed, as the spec's status: queued, delegated to the IPFS nodes of
    /// the peers allocated (all of them when it goes everywhere).
    async fn accepted(&self, pin: &Pin) -> Response {
        let delegates = self
            .cluster
            .peers()
            .await
            .into_iter()
            .filter(|id| pin.allocations.is_empty() || pin.allocations.contains(&id.id))
            .flat_map(|id| id.ipfs.addresses)
            .take(MAX_DELEGATES)
            .collect();
        let o = &pin.options;
        let status = PinStatus {
            requestid: pin.cid.to_string(),
            status: SvcStatus::Queued,
            created: pin.timestamp,
            pin: svc_pin(&pin.cid, &o.name, &o.origins, &o.metadata),
            delegates,
            info: BTreeMap::new(),
        };
        (StatusCode::ACCEPTED, Json(status)).into_response()
    }
}

#[derive(Clone)]
struct Svc {
    cluster: Cluster,
}

fn request_id(id: &str) -> Result<Cid, Response> {
    id.parse()
        .map_err(|e| bad(format!("requestid {id:?} is not a pin's request id: {e}")))
}

async fn add_pin(State(s): State<Svc>, body: axum::body::Bytes) -> Response {
    let (cid, opts) = match pin_options(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match s.cluster.pin(cid, opts).await {
        Ok(pin) => s.accepted(&pin).await,
        Err(e) => error(e),
    }
}

async fn get_pin(State(s): State<Svc>, Path(id): Path<String>) -> Response {
    let cid = match request_id(&id) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(e) = s.cluster.allocation(&cid).await {
        return error(e);
    }
    let g = s.cluster.status(&cid).await;
    match merged_status(&g) {
        Some(st) => Json(status_of(&g, st)).into_response(),
        None => svc_error(StatusCode::NOT_FOUND, format!("{id}: no such pin request")),
    }
}

/// Replaces the pin `id` by the one in the body: pinned as an update of the old one (same
/// allocations, IPFS's `pin/update`), then the old one is removed.
async fn replace_pin(
    State(s): State<Svc>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let old = match request_id(&id) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (cid, mut opts) = match pin_options(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(e) = s.cluster.allocation(&old).await {
        return error(e);
    }
    opts.pin_update = Some(old);
    let pin = match s.cluster.pin(cid, opts).await {
        Ok(p) => p,
        Err(e) => return error(e),
    };
    if old != cid {
        if let Err(e) = s.cluster.unpin(old).await {
            return error(e);
        }
    }
    s.accepted(&pin).await
}

async fn remove_pin(State(s): State<Svc>, Path(id): Path<String>) -> Response {
    let cid = match request_id(&id) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match s.cluster.unpin(cid).await {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(e) => error(e),
    }
}

/// `GET /pins`' query.
struct Listing {
    cids: Vec<Cid>,
    name: Option<String>,
    matching: String,
    statuses: Vec<SvcStatus>,
    before: Option<DateTime<Utc>>,
    after: Option<DateTime<Utc>>,
    limit: usize,
    meta: BTreeMap<String, String>,
}

fn listing(q: &Params) -> Result<Listing, Response> {
    let list = |k: &str| -> Vec<String> {
        q.get(k)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    let cids = list("cid")
        .iter()
        .map(|c| c.parse().map_err(|e| bad(format!("cid {c:?}: {e}"))))
        .collect::<Result<Vec<Cid>, _>>()?;
    if cids.len() > 10 {
        return Err(bad("cid: at most 10 CIDs"));
    }
    let matching = q.get("match").unwrap_or("exact").to_string();
    if !["exact", "iexact", "partial", "ipartial"].contains(&matching.as_str()) {
        return Err(bad(format!(
            "match {matching:?}: must be exact, iexact, partial or ipartial"
        )));
    }
    let mut statuses = list("status")
        .iter()
        .map(|s| s.parse().map_err(error))
        .collect::<Result<Vec<SvcStatus>, _>>()?;
    if statuses.is_empty() {
        statuses.push(SvcStatus::Pinned);
    }
    let time = |k: &str| -> Result<Option<DateTime<Utc>>, Response> {
        q.get(k)
            .filter(|v| !v.is_empty())
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| bad(format!("{k} {v:?}: {e}")))
            })
            .transpose()
    };
    let limit = match q.get("limit").filter(|v| !v.is_empty()) {
        None => 10,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => return Err(bad(format!("limit {v:?}: must be 1 to 1000"))),
        },
    };
    // The spec's JSON object (`meta={"k":"v"}`, as Kubo sends it), or the deep-object form
    // generated clients send (`meta[k]=v`).
    let mut meta: BTreeMap<String, String> = match q.get("meta").filter(|v| !v.is_empty()) {
        None => BTreeMap::new(),
        Some(v) => serde_json::from_str(v)
            .map_err(|e| bad(format!("meta: a JSON object of strings: {e}")))?,
    };
    for (k, v) in &q.0 {
        if let Some(key) = k.strip_prefix("meta[").and_then(|k| k.strip_suffix(']')) {
            meta.insert(key.to_string(), v.clone());
        }
    }
    Ok(Listing {
        cids,
        name: q.get("name").filter(|n| !n.is_empty()).map(String::from),
        matching,
        statuses,
        before: time("before")?,
        after: time("after")?,
        limit,
        meta,
    })
}

impl Listing {
    fn name_matches(&self, name: &str) -> bool {
        let Some(want) = &self.name else {
            return true;
        };
        match self.matching.as_str() {
            "iexact" => name.to_lowercase() == want.to_lowercase(),
            "partial" => name.contains(want.as_str()),
            "ipartial" => name.to_lowercase().contains(&want.to_lowercase()),
            _ => name == want,
        }
    }

    fn selects(&self, s: &PinStatus) -> bool {
        self.statuses.contains(&s.status)
            && self.before.is_none_or(|b| s.created < b)
            && self.after.is_none_or(|a| s.created > a)
            && self.name_matches(s.pin.name.as_deref().unwrap_or(""))
            && self.meta.iter().all(|(k, v)| s.pin.meta.get(k) == Some(v))
    }
}

async fn list_pins(State(s): State<Svc>, q: Params) -> Response {
    let l = match listing(&q) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let mut statuses = s.cluster.status_all(&StatusFilter::default(), &l.cids);
    // The `limit` newest matches so far, by (created, request id), and how many matched in
    // all: memory is bounded by `limit`, whatever the pinset's size.
    let mut kept: BTreeMap<(DateTime<Utc>, String), PinStatus> = BTreeMap::new();
    let mut count = 0u64;
    while let Some(g) = statuses.next().await {
        let Some(st) = merged_status(&g) else {
            continue;
        };
        let status = status_of(&g, st);
        if !l.selects(&status) {
            continue;
        }
        count += 1;
        kept.insert((status.created, status.requestid.clone()), status);
        if kept.len() > l.limit {
            kept.pop_first();
        }
    }
    let results = kept.into_values().rev().collect();
    Json(PinResults { count, results }).into_response()
}

async fn health() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn not_found() -> Response {
    svc_error(StatusCode::NOT_FOUND, "no such API endpoint".into())
}

fn router(cluster: Cluster, cfg: &HttpApiConfig) -> Router {
    let r = Router::new()
        .route("/pins", get(list_pins).post(add_pin))
        .route(
            "/pins/{requestid}",
            get(get_pin).post(replace_pin).delete(remove_pin),
        )
        .route("/health", get(health))
        .fallback(not_found)
        .with_state(Svc { cluster });
    crate::restapi::guard(r, cfg, "api.pinsvcapi", svc_error)
}

/// Serves the Pinning Service API on every configured address until shutdown.
pub(crate) async fn serve(
    cluster: Cluster,
    cfg: &HttpApiConfig,
    folder: &std::path::Path,
    tasks: &Tasks,
) -> Result<Vec<crate::net::ListenAddr>, Error> {
    let settings =
        crate::http_server::HttpSettings::of_api(cfg, "api.pinsvcapi").rendered_by(svc_error);
    crate::http_server::serve(&settings, folder, router(cluster, cfg), tasks).await
}

#[cfg(test)]
mod tests;
