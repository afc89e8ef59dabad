//! The IPFS proxy API (SPEC §1, port 9095): a Kubo RPC look-alike, so that tools written for
//! an IPFS daemon (Kubo's RPC clients, `ipfs --api`) pin into the cluster without knowing it.
//!
//! As IPFS Cluster's `ipfsproxy`: `pin/add`, `pin/rm`, `pin/ls`, `pin/update`, `add`,
//! `repo/stat` (summed over peers), `repo/gc` (on every peer), and `block/put`/`dag/put`
//! with `pin=true` are answered by the cluster, in
//! Kubo's JSON shapes and Kubo's error form (`{"Message", "Code", "Type": "error"}`); every
//! other request goes to the IPFS node unchanged, both bodies streamed. Unlike IPFS Cluster,
//! `pin/ls` of the whole pinset is written as it is read from disk, never gathered first.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::on;
use axum::{Json, Router};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::components::{AddFormat, AddOptions, AddRequest};
use crate::config::IpfsProxyConfig;
use crate::error::Error;
use crate::http_policy::{refuse_cross_site, CrossSitePolicy};
use crate::restapi::{status_of, Params};
use crate::tasks::Tasks;
use crate::types::{Cid, Pin, PinMode};

#[derive(Clone)]
struct Proxy {
    cluster: Cluster,
    /// The IPFS node's RPC API, `http://host:port`.
    node: String,
    http: reqwest::Client,
    /// The proxy checks credentials of its own: the client's `Authorization` is for it, and
    /// is not passed on to the IPFS node.
    own_auth: bool,
}

/// Kubo's error answer.
fn kubo_error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({"Message": message.into(), "Code": 0, "Type": "error"});
    (status, Json(body)).into_response()
}

/// A cluster error as Kubo would answer it (500 for what Kubo calls an error, 400 for bad
/// arguments).
fn error(e: Error) -> Response {
    let status = match status_of(&e) {
        StatusCode::BAD_REQUEST => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    kubo_error(status, e.to_string())
}

/// Every `arg` of the query, in order, then the one of a `/pin/add/{arg}` path (people use
/// the API that way too).
fn args(q: &Params, slash: Option<String>) -> Vec<String> {
    let mut a: Vec<String> =
        q.0.iter()
            .filter(|(k, _)| k == "arg")
            .map(|(_, v)| v.clone())
            .collect();
    a.extend(slash);
    a
}

fn first_arg(q: &Params, slash: Option<String>) -> Result<String, Response> {
    args(q, slash)
        .into_iter()
        .next()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            kubo_error(
                StatusCode::BAD_REQUEST,
                "argument \"ipfs-path\" is required",
            )
        })
}

/// A Kubo path argument: a bare CID, or `/ipfs|ipns|ipld/…`.
enum Target {
    Cid(Cid),
    Path(String),
}

fn target(arg: &str) -> Result<Target, Response> {
    let path = if arg.starts_with('/') {
        arg.to_string()
    } else {
        format!("/ipfs/{arg}")
    };
    let rest = path.strip_prefix("/ipfs/").unwrap_or("");
    if !rest.is_empty() && !rest.trim_end_matches('/').contains('/') {
        return rest
            .trim_end_matches('/')
            .parse()
            .map(Target::Cid)
            .map_err(|e: String| {
                kubo_error(
                    StatusCode::BAD_REQUEST,
                    format!("invalid path {arg:?}: {e}"),
                )
            });
    }
    Ok(Target::Path(path))
}

async fn pin_op(p: &Proxy, q: &Params, slash: Option<String>, unpin: bool) -> Response {
    let arg = match first_arg(q, slash) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let target = match target(&arg) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let pinned = if unpin {
        match target {
            Target::Cid(c) => p.cluster.unpin(c).await,
            Target::Path(path) => p.cluster.unpin_path(&path).await,
        }
    } else {
        let mut opts = match q.pin_options() {
            Ok(o) => o,
            Err(e) => return error(e),
        };
        if q.get("recursive") == Some("false") {
            opts.mode = PinMode::Direct;
        }
        match target {
            Target::Cid(c) => p.cluster.pin(c, opts).await,
            Target::Path(path) => p.cluster.pin_path(&path, opts).await,
        }
    };
    match pinned {
        Ok(pin) => Json(json!({"Pins": [pin.cid.to_string()]})).into_response(),
        Err(e) => error(e),
    }
}

async fn pin_add(State(p): State<Proxy>, q: Params) -> Response {
    pin_op(&p, &q, None, false).await
}

async fn pin_add_slash(State(p): State<Proxy>, Path(arg): Path<String>, q: Params) -> Response {
    pin_op(&p, &q, Some(arg), false).await
}

async fn pin_rm(State(p): State<Proxy>, q: Params) -> Response {
    pin_op(&p, &q, None, true).await
}

async fn pin_rm_slash(State(p): State<Proxy>, Path(arg): Path<String>, q: Params) -> Response {
    pin_op(&p, &q, Some(arg), true).await
}

fn pin_type(pin: &Pin) -> &'static str {
    match pin.options.mode {
        PinMode::Direct => "direct",
        PinMode::Recursive => "recursive",
    }
}

async fn pin_ls_of(p: &Proxy, q: &Params, slash: Option<String>) -> Response {
    let stream = q.get("stream") == Some("true") || q.get("s") == Some("true");
    // Kubo's `type`: the cluster has recursive and direct pins, no indirect ones listed.
    let wanted = q.get("type").unwrap_or("all").to_string();
    if !["all", "recursive", "direct", "indirect"].contains(&wanted.as_str()) {
        return kubo_error(
            StatusCode::BAD_REQUEST,
            format!("invalid type '{wanted}', must be one of {{direct, indirect, recursive, all}}"),
        );
    }
    let keep = move |pin: &Pin| wanted == "all" || wanted == pin_type(pin);
    if let Some(arg) = args(q, slash).into_iter().next().filter(|a| !a.is_empty()) {
        let cid = match target(&arg) {
            Ok(Target::Cid(c)) => c,
            Ok(Target::Path(_)) => {
                return kubo_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("path '{arg}' is not a CID the cluster can look up"),
                )
            }
            Err(r) => return r,
        };
        return match p.cluster.allocation(&cid).await {
            Ok(pin) if keep(&pin) => {
                let (c, t) = (pin.cid.to_string(), pin_type(&pin));
                if stream {
                    Json(json!({"Cid": c, "Type": t})).into_response()
                } else {
                    Json(json!({"Keys": {c: {"Type": t}}})).into_response()
                }
            }
            Ok(_) | Err(_) => kubo_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("path '{arg}' is not pinned"),
            ),
        };
    }
    // The whole pinset, written as it is read: NDJSON, or one `{"Keys": {…}}` object.
    let pins = p
        .cluster
        .allocations(&[])
        .try_filter(move |pin| futures::future::ready(keep(pin)));
    let body = async_stream::stream! {
        let mut pins = Box::pin(pins);
        let mut first = true;
        if !stream {
            yield Ok::<_, Infallible>(Bytes::from_static(b"{\"Keys\":{"));
        }
        while let Some(pin) = pins.next().await {
            let Ok(pin) = pin else {
                // Kubo has no way to say so after the head: end the listing short.
                break;
            };
            let (c, t) = (pin.cid.to_string(), pin_type(&pin));
            let line = if stream {
                format!("{}\n", json!({"Cid": c, "Type": t}))
            } else {
                let sep = if first { "" } else { "," };
                format!("{sep}{}:{}", json!(c), json!({"Type": t}))
            };
            first = false;
            yield Ok(Bytes::from(line));
        }
        if !stream {
            yield Ok(Bytes::from_static(b"}}\n"));
        }
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-Chunked-Output", "1")
        .body(Body::from_stream(body))
        .expect("static response")
}

async fn pin_ls(State(p): State<Proxy>, q: Params) -> Response {
    pin_ls_of(&p, &q, None).await
}

async fn pin_ls_slash(State(p): State<Proxy>, Path(arg): Path<String>, q: Params) -> Response {
    pin_ls_of(&p, &q, Some(arg)).await
}

/// `pin/update FROM TO`: TO is pinned as a pin update of FROM (same options and
/// allocations, IPFS's `pin/update` where FROM is pinned), then FROM is unpinned unless
/// `unpin=false`.
async fn pin_update(State(p): State<Proxy>, q: Params) -> Response {
    let a = args(&q, None);
    let (from, to) = match a.as_slice() {
        [] => {
            return kubo_error(
                StatusCode::BAD_REQUEST,
                "argument \"from-path\" is required",
            )
        }
        [_] => return kubo_error(StatusCode::BAD_REQUEST, "argument \"to-path\" is required"),
        [f, t, ..] => (f.clone(), t.clone()),
    };
    let resolve = |arg: String| {
        let p = p.clone();
        async move {
            match target(&arg)? {
                Target::Cid(c) => Ok(c),
                Target::Path(path) => p.cluster.resolve(&path).await.map_err(error),
            }
        }
    };
    let from = match resolve(from).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let to = match resolve(to).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut opts = match q.pin_options() {
        Ok(o) => o,
        Err(e) => return error(e),
    };
    opts.pin_update = Some(from);
    if let Err(e) = p.cluster.pin(to, opts).await {
        return error(e);
    }
    if q.get("unpin") != Some("false") {
        if let Err(e) = p.cluster.unpin(from).await {
            return error(e);
        }
    }
    Json(json!({"Pins": [from.to_string(), to.to_string()]})).into_response()
}

/// Kubo's `add`, through the cluster's add (README "Adding content"): `pin=false` adds
/// without pinning.
async fn add(State(p): State<Proxy>, q: Params, req: Request) -> Response {
    if q.get("only-hash") == Some("true") {
        return kubo_error(
            StatusCode::BAD_REQUEST,
            "only-hash is not supported when adding to cluster",
        );
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if !content_type.starts_with("multipart/form-data") {
        return kubo_error(
            StatusCode::BAD_REQUEST,
            "add takes a multipart/form-data body",
        );
    }
    let opts = (|| -> Result<AddRequest, Error> {
        let cid_version = q.get("cid-version").filter(|v| !v.is_empty());
        let cid_version = match cid_version {
            None => None,
            Some("0") => Some(0),
            Some("1") => Some(1),
            Some(v) => {
                return Err(Error::BadInput(format!(
                    "cid-version {v:?}: must be 0 or 1"
                )))
            }
        };
        Ok(AddRequest {
            pin: q.pin_options()?,
            ipfs: AddOptions {
                cid_version,
                raw_leaves: q.get("raw-leaves").map(|v| v == "true"),
                chunker: q.get("chunker").filter(|c| !c.is_empty()).map(String::from),
                hidden: q.flag("hidden")?,
                wrap_with_directory: q.flag("wrap-with-directory")?,
            },
            no_pin: q.get("pin") == Some("false"),
            format: AddFormat::Unixfs,
        })
    })();
    let opts = match opts {
        Ok(o) => o,
        Err(e) => return error(e),
    };
    let body = req
        .into_body()
        .into_data_stream()
        .map(|chunk| chunk.map_err(std::io::Error::other))
        .boxed();
    let mut out = match p.cluster.add_stream(&content_type, body, opts).await {
        Ok(o) => o,
        Err(e) => return error(e),
    };
    // The first node decides between an answer and an error status, as in the REST API.
    let first = match out.next().await {
        None => return kubo_error(StatusCode::BAD_REQUEST, "no file in the request"),
        Some(Err(e)) => return error(e),
        Some(Ok(f)) => f,
    };
    let line = |o: crate::types::AddedOutput| {
        let mut v = json!({"Name": o.name, "Hash": o.cid.to_string(), "Size": o.size.to_string()});
        if o.size == 0 {
            v.as_object_mut().expect("object").remove("Size");
        }
        Bytes::from(format!("{v}\n"))
    };
    let body = async_stream::stream! {
        yield Ok::<_, Infallible>(line(first));
        while let Some(next) = out.next().await {
            match next {
                Ok(o) => yield Ok(line(o)),
                Err(e) => {
                    let v = json!({"Message": e.to_string(), "Code": 0, "Type": "error"});
                    yield Ok(Bytes::from(format!("{v}\n")));
                    break;
                }
            }
        }
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-Chunked-Output", "1")
        .body(Body::from_stream(body))
        .expect("static response")
}

/// Kubo's `repo/stat` with the cluster's numbers: every peer's repository size and limit
/// summed (as IPFS Cluster), the rest of the answer as this peer's node gives it.
async fn repo_stat(State(p): State<Proxy>, req: Request) -> Response {
    let resp = match forward(&p, req, None).await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => return streamed(r),
        Err(r) => return r,
    };
    let mut v: Value = match resp.json().await {
        Ok(v) => v,
        Err(e) => return kubo_error(StatusCode::BAD_GATEWAY, e.to_string()),
    };
    let (size, max) = p.cluster.ipfs_repo_stat_all().await;
    v["RepoSize"] = size.into();
    v["StorageMax"] = max.into();
    Json(v).into_response()
}

/// Kubo's `repo/gc`, run on every peer's IPFS node: one `{"Key": {"/": cid}}` line per
/// removed block; errors as lines with `stream-errors=true`, else in the trailer.
async fn repo_gc(State(p): State<Proxy>, q: Params) -> Response {
    let stream_errors = q.get("stream-errors") == Some("true");
    let gc = p.cluster.repo_gc().await;
    let mut body = String::new();
    let mut errors = Vec::new();
    for peer in gc.peer_map.values() {
        if !peer.error.is_empty() {
            errors.push(format!("{}: {}", peer.peer, peer.error));
        }
        for k in &peer.keys {
            let mut line = serde_json::Map::new();
            if let Some(c) = k.key {
                line.insert("Key".into(), json!({"/": c.to_string()}));
            }
            if !k.error.is_empty() {
                if stream_errors {
                    line.insert("Error".into(), k.error.clone().into());
                } else {
                    errors.push(k.error.clone());
                }
            }
            if !line.is_empty() {
                body.push_str(&Value::Object(line).to_string());
                body.push('\n');
            }
        }
    }
    let mut trailers = axum::http::HeaderMap::new();
    if !errors.is_empty() {
        let msg = errors.join("; ").replace(['\r', '\n'], " ");
        if let Ok(v) = axum::http::HeaderValue::from_str(&msg) {
            trailers.insert("x-stream-error", v);
        }
    }
    let frames = futures::stream::iter([
        Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(body))),
        Ok(http_body::Frame::trailers(trailers)),
    ]);
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::TRAILER, "X-Stream-Error")
        .body(Body::new(http_body_util::StreamBody::new(frames)))
        .expect("static response")
}

/// Headers that belong to one connection, not to the message.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "proxy-connection",
    "content-length",
];

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap, keep_auth: bool) {
    for (k, v) in from {
        if k != header::HOST
            && !HOP_BY_HOP.contains(&k.as_str())
            && (keep_auth || k != header::AUTHORIZATION)
        {
            to.append(k.clone(), v.clone());
        }
    }
}

/// Sends `req` to the IPFS node (with `query` instead of its own when given), both bodies
/// streamed.
async fn forward(
    p: &Proxy,
    req: Request,
    query: Option<String>,
) -> Result<reqwest::Response, Response> {
    let (parts, body) = req.into_parts();
    let query = query.or_else(|| parts.uri.query().map(String::from));
    let url = match query {
        Some(q) if !q.is_empty() => format!("{}{}?{q}", p.node, parts.uri.path()),
        _ => format!("{}{}", p.node, parts.uri.path()),
    };
    let mut headers = reqwest::header::HeaderMap::new();
    copy_headers(&parts.headers, &mut headers, !p.own_auth);
    let body = reqwest::Body::wrap_stream(body.into_data_stream());
    p.http
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            kubo_error(
                StatusCode::BAD_GATEWAY,
                format!("the IPFS node at {} cannot be reached: {e}", p.node),
            )
        })
}

fn streamed(resp: reqwest::Response) -> Response {
    let mut out = Response::builder().status(resp.status());
    if let Some(h) = out.headers_mut() {
        copy_headers(resp.headers(), h, true);
    }
    out.body(Body::from_stream(resp.bytes_stream()))
        .expect("valid response")
}

/// Everything the cluster does not answer goes to the IPFS node as it is.
async fn passthrough(State(p): State<Proxy>, req: Request) -> Response {
    match forward(&p, req, None).await {
        Ok(resp) => streamed(resp),
        Err(r) => r,
    }
}

/// `block/put` and `dag/put` with `pin=true`: stored by IPFS without its pin, then each
/// stored CID pinned by the cluster. Without `pin=true` they go to IPFS as they are.
async fn put_and_pin(State(p): State<Proxy>, q: Params, req: Request) -> Response {
    if q.get("pin") != Some("true") {
        return passthrough(State(p), req).await;
    }
    let unpinned: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(q.0.iter().filter(|(k, _)| k != "pin"))
        .append_pair("pin", "false")
        .finish();
    let resp = match forward(&p, req, Some(unpinned)).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if !resp.status().is_success() {
        return streamed(resp);
    }
    let status = resp.status();
    let text = match resp.text().await {
        Ok(t) => t,
        Err(e) => return kubo_error(StatusCode::BAD_GATEWAY, e.to_string()),
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        // block/put: {"Key": cid}; dag/put: {"Cid": {"/": cid}}.
        let cid = v["Key"].as_str().or_else(|| v["Cid"]["/"].as_str());
        let Some(cid) = cid.and_then(|c| c.parse::<Cid>().ok()) else {
            continue;
        };
        let opts = match q.pin_options() {
            Ok(o) => o,
            Err(e) => return error(e),
        };
        if let Err(e) = p.cluster.pin(cid, opts).await {
            return error(e);
        }
    }
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// Middleware: POST only, as Kubo's RPC API since 0.5 (IPFS Cluster's proxy also takes GET
/// and PUT; a GET is what a page can make a browser send without asking, by a link or an
/// image, so no call here is one).
async fn post_only(req: Request, next: middleware::Next) -> Response {
    if req.method() == axum::http::Method::POST {
        return next.run(req).await;
    }
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "POST")],
        "405 - Method Not Allowed",
    )
        .into_response()
}

fn router(proxy: Proxy, creds: Option<std::collections::BTreeMap<String, String>>) -> Router {
    let m = || axum::routing::MethodFilter::POST;
    let routes = Router::new()
        .route("/api/v0/pin/add", on(m(), pin_add))
        .route("/api/v0/pin/add/{*arg}", on(m(), pin_add_slash))
        .route("/api/v0/pin/rm", on(m(), pin_rm))
        .route("/api/v0/pin/rm/{*arg}", on(m(), pin_rm_slash))
        .route("/api/v0/pin/ls", on(m(), pin_ls))
        .route("/api/v0/pin/ls/{*arg}", on(m(), pin_ls_slash))
        .route("/api/v0/pin/update", on(m(), pin_update))
        .route("/api/v0/add", on(m(), add))
        .route("/api/v0/repo/stat", on(m(), repo_stat))
        .route("/api/v0/repo/gc", on(m(), repo_gc))
        .route("/api/v0/block/put", on(m(), put_and_pin))
        .route("/api/v0/dag/put", on(m(), put_and_pin))
        .fallback(passthrough)
        .with_state(proxy)
        .layer(middleware::from_fn(post_only));
    crate::restapi::require_credentials(routes, creds, kubo_error)
        // Kubo refuses pages too: no origin may use the proxy.
        .layer(middleware::from_fn_with_state(
            CrossSitePolicy::no_pages("the IPFS proxy").rendered_by(kubo_error),
            refuse_cross_site,
        ))
}

/// Serves the proxy on every configured address until shutdown; returns the bound addresses.
pub(crate) async fn serve(
    cluster: Cluster,
    cfg: &IpfsProxyConfig,
    folder: &std::path::Path,
    tasks: &Tasks,
) -> Result<Vec<crate::net::ListenAddr>, Error> {
    let addr = cfg.node_multiaddress.first().ok_or_else(|| {
        Error::BadInput("api.ipfsproxy.node_multiaddress: no address given".into())
    })?;
    let node = crate::net::http_url(addr).map_err(|e| Error::BadInput(e.to_string()))?;
    let proxy = Proxy {
        cluster,
        node,
        http: reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?,
        own_auth: cfg.basic_auth_credentials.is_some(),
    };
    let settings = crate::http_server::HttpSettings::of_proxy(cfg).rendered_by(kubo_error);
    let app = router(proxy, cfg.basic_auth_credentials.clone());
    crate::http_server::serve(&settings, folder, app, tasks).await
}

#[cfg(test)]
mod tests;
