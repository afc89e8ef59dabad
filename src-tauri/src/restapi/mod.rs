//! REST API compatible with IPFS Cluster's (SPEC §4), on axum.
//!
//! Streams are newline-delimited JSON sent item by item; an empty stream is 204; an error after
//! the first item goes in the `X-Stream-Error` trailer, as IPFS Cluster clients expect.

mod params;
mod token;

use std::convert::Infallible;
use std::future::Future;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use http_body::Frame;
use serde::Serialize;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::cluster::Cluster;
use crate::config::HttpApiConfig;
use crate::error::{Error, ErrorKind};
use crate::tasks::Tasks;
use crate::types::{
    AddedOutput, Alert, ApiError, Cid, GlobalPinInfo, Metric, PeerRole, PinInfo, PinRequest,
    PinResult, Version,
};
pub use params::Params;

/// An [`Error`] as an HTTP response: `{"code", "message"}` with SPEC §4's statuses.
pub struct HttpError(pub Error);

impl From<Error> for HttpError {
    fn from(e: Error) -> Self {
        HttpError(e)
    }
}

/// The one place errors become HTTP statuses: SPEC §4's 400 for bad input, 404 for an
/// unknown pin or peer; this peer's IPFS failing or unreachable 502, not answering in time
/// 504 (the gateway statuses: the fault is behind this server, not in the request); 500
/// otherwise (IPFS Cluster's clients only tell success from failure), with a message that
/// says which other class it is.
pub fn status_of(e: &Error) -> StatusCode {
    match e.kind() {
        ErrorKind::BadInput => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::IpfsFailed => StatusCode::BAD_GATEWAY,
        ErrorKind::IpfsTimeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Refused | ErrorKind::Unavailable | ErrorKind::Internal => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        error_response(status, self.0.to_string())
    }
}

pub(crate) fn error_response(status: StatusCode, message: String) -> Response {
    (
        status,
        Json(ApiError {
            code: status.as_u16(),
            message,
        }),
    )
        .into_response()
}

type ApiResult<T> = Result<T, HttpError>;

const STREAM_ERROR: &str = "x-stream-error";

/// Sends `items` as NDJSON as they are produced.
async fn ndjson<T, S>(items: S) -> Response
where
    T: Serialize + Send + 'static,
    S: Stream<Item = Result<T, Error>> + Send + 'static,
{
    ndjson_lines(items, 256, |item: &T, buf: &mut Vec<u8>| {
        serde_json::to_writer(buf, item).expect("API types serialize")
    })
    .await
}

/// [`ndjson`] of items that are JSON text already (passed through as they are). An item may
/// hold many lines (a store's page), so each goes out as a frame of its own: a frame of
/// several could hold hundreds of pages at once.
async fn ndjson_text<S>(items: S) -> Response
where
    S: Stream<Item = Result<String, Error>> + Send + 'static,
{
    ndjson_lines(items, 1, |item: &String, buf: &mut Vec<u8>| {
        buf.extend_from_slice(item.as_bytes())
    })
    .await
}

/// Streams `items` one JSON line each, as `write` puts them into the response; items already
/// produced go out together, up to `per_frame` in one frame.
async fn ndjson_lines<T, S, W>(items: S, per_frame: usize, write: W) -> Response
where
    T: Send + 'static,
    S: Stream<Item = Result<T, Error>> + Send + 'static,
    W: Fn(&T, &mut Vec<u8>) + Send + 'static,
{
    let mut items = Box::pin(items);
    let first = match items.next().await {
        None => return StatusCode::NO_CONTENT.into_response(),
        Some(Err(e)) => return HttpError(e).into_response(),
        Some(Ok(first)) => first,
    };
    let mut first_line = Vec::new();
    write(&first, &mut first_line);
    first_line.push(b'\n');
    let first_line = Bytes::from(first_line);
    // Items already produced go out together, one frame for up to a few hundred lines: a
    // frame per line cost more than producing the line. A slow stream still sends each line
    // as soon as it exists.
    let mut batches = items.ready_chunks(per_frame);
    let trailer = |value: HeaderValue| {
        let mut trailers = HeaderMap::new();
        trailers.insert(HeaderName::from_static(STREAM_ERROR), value);
        Frame::trailers(trailers)
    };
    let frames = async_stream::stream! {
        yield Ok::<_, Infallible>(Frame::data(first_line));
        while let Some(batch) = batches.next().await {
            let mut buf = Vec::new();
            for item in batch {
                match item {
                    Ok(item) => {
                        write(&item, &mut buf);
                        buf.push(b'\n');
                    }
                    Err(e) => {
                        if !buf.is_empty() {
                            yield Ok(Frame::data(Bytes::from(std::mem::take(&mut buf))));
                        }
                        let msg = HeaderValue::from_str(&e.to_string().replace(['\r', '\n'], " "))
                            .unwrap_or_else(|_| HeaderValue::from_static("stream error"));
                        yield Ok(trailer(msg));
                        return;
                    }
                }
            }
            yield Ok(Frame::data(Bytes::from(buf)));
        }
        // As IPFS Cluster: the trailer always comes, empty when all went well.
        yield Ok(trailer(HeaderValue::from_static("")));
    };
    let mut resp = Response::new(Body::new(http_body_util::StreamBody::new(frames)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::TRAILER, HeaderValue::from_static("X-Stream-Error"));
    resp
}

fn stream_vec<T: Serialize + Send + 'static>(
    items: Vec<T>,
) -> impl Stream<Item = Result<T, Error>> + Send {
    futures::stream::iter(items.into_iter().map(Ok))
}

fn parse_cid(s: &str) -> Result<Cid, HttpError> {
    s.parse().map_err(|e: String| HttpError(Error::BadInput(e)))
}

/// `?local=true`: this peer's own answer, else the whole cluster's. Only the chosen future
/// runs. Either way a GlobalPinInfo, as IPFS Cluster answers: a local one has this peer alone
/// in its `peer_map`.
async fn one(
    q: &Params,
    local: impl Future<Output = PinInfo>,
    global: impl Future<Output = GlobalPinInfo>,
) -> ApiResult<Response> {
    Ok(if q.local()? {
        Json(GlobalPinInfo::from_local(local.await)).into_response()
    } else {
        Json(global.await).into_response()
    })
}

async fn id(State(c): State<Cluster>) -> Response {
    Json(c.id().await).into_response()
}

async fn version() -> Json<Version> {
    Json(Version {
        version: crate::types::full_version().to_string(),
    })
}

async fn health() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn peers(State(c): State<Cluster>) -> Response {
    ndjson(stream_vec(c.peers().await)).await
}

async fn peer_rm(State(c): State<Cluster>, Path(peer): Path<String>) -> ApiResult<StatusCode> {
    c.peer_rm(&peer).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /peers` with `{"peer_id": …}` (IPFS Cluster's peer add): the peer's ID when it is
/// a member. A Raft peer joins by starting with `--bootstrap` (it must back up and clean any
/// state of its own first), so asking a running peer to join is refused, saying so.
async fn peer_add(State(c): State<Cluster>, body: Bytes) -> ApiResult<Response> {
    #[derive(serde::Deserialize)]
    struct PeerAdd {
        peer_id: String,
    }
    let add: PeerAdd = serde_json::from_slice(&body)
        .map_err(|e| Error::BadInput(format!("the body must be {{\"peer_id\": \"…\"}}: {e}")))?;
    add.peer_id
        .parse::<libp2p_identity::PeerId>()
        .map_err(|e| Error::BadInput(format!("peer_id {:?}: {e}", add.peer_id)))?;
    match c.peers().await.into_iter().find(|id| id.id == add.peer_id) {
        Some(id) => Ok(Json(id).into_response()),
        None => Err(Error::Refused(format!(
            "{} is not a member, and a running peer cannot be made to join: start it with \
             `ipfs-cluster-service daemon --bootstrap {}`",
            add.peer_id,
            c.me().addresses.first().cloned().unwrap_or_default()
        ))
        .into()),
    }
}

/// `POST /peers/{peer}/role?role=voter|follower` (this project's addition): promotes a
/// follower or demotes a voter.
async fn peer_role(
    State(c): State<Cluster>,
    Path(peer): Path<String>,
    q: Params,
) -> ApiResult<StatusCode> {
    let role = match q.get("role") {
        Some("voter") => PeerRole::Voter,
        Some("follower") => PeerRole::Follower,
        other => {
            return Err(Error::BadInput(format!(
                "parameter role={other:?}: expected voter or follower"
            ))
            .into())
        }
    };
    c.peer_role(&peer, role).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn pin_cid(
    State(c): State<Cluster>,
    Path(cid): Path<String>,
    q: Params,
) -> ApiResult<Response> {
    let cid = parse_cid(&cid)?;
    let opts = q.pin_options()?;
    Ok(Json(c.pin(cid, opts).await?).into_response())
}

/// Pins of one batch request committed together at most (one group, one log entry).
const BATCH_CHUNK: usize = 256;
/// Groups of one batch request checked and allocated ahead of their commit (commits go one
/// after another, in order).
const BATCH_CHUNKS_IN_FLIGHT: usize = 4;
/// Bytes of parsed lines held by every batch request together, until their answers are
/// written out: a request whose next line does not fit stops reading its body until one
/// does.
const BATCH_BYTES: usize = 64 << 20;
/// The part of [`BATCH_BYTES`] one request may hold.
const BATCH_BYTES_PER_REQUEST: usize = BATCH_BYTES / 8;
/// The longest line of a batch request (a pin with a long name and much metadata fits).
const BATCH_LINE_MAX: usize = 64 * 1024;

fn batch_bytes() -> std::sync::Arc<tokio::sync::Semaphore> {
    static BYTES: std::sync::LazyLock<std::sync::Arc<tokio::sync::Semaphore>> =
        std::sync::LazyLock::new(|| std::sync::Arc::new(tokio::sync::Semaphore::new(BATCH_BYTES)));
    BYTES.clone()
}

/// One line of a batch body: its bytes, or why it has none.
enum BatchLine {
    Line(Vec<u8>),
    TooLong,
    /// The body broke off (its last item).
    Broken(String),
}

/// The lines of `body`, one item per line (so that they can be numbered), each at most
/// `max` bytes: a longer one is skipped to its end and reported, and the next is read.
fn batch_lines<S>(body: S, max: usize) -> impl Stream<Item = BatchLine> + Send
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Send + 'static,
{
    async_stream::stream! {
        let mut body = Box::pin(body);
        let mut buf: Vec<u8> = Vec::new();
        let mut skipping = false;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    yield BatchLine::Broken(e.to_string());
                    return;
                }
            };
            let mut rest = &chunk[..];
            while let Some(end) = rest.iter().position(|b| *b == b'\n') {
                let part = &rest[..end];
                rest = &rest[end + 1..];
                if skipping || buf.len() + part.len() > max {
                    skipping = false;
                    buf.clear();
                    yield BatchLine::TooLong;
                } else {
                    buf.extend_from_slice(part);
                    yield BatchLine::Line(std::mem::take(&mut buf));
                }
            }
            if !skipping && buf.len() + rest.len() > max {
                buf.clear();
                skipping = true;
            } else if !skipping {
                buf.extend_from_slice(rest);
            }
        }
        if skipping {
            yield BatchLine::TooLong;
        } else if !buf.is_empty() {
            yield BatchLine::Line(buf);
        }
    }
}

/// `POST /pins`: the batch form (not in IPFS Cluster, whose users loop over single pins). The
/// body is NDJSON, one [`PinRequest`] a line; the answer streams one [`PinResult`] a line in
/// the same order, as each is committed. Pins of all batch requests are committed 64 at a
/// time; the body is read as the answer goes: its size is unbounded, the memory is not. A
/// line that does not parse (or is longer than 64 KiB) is answered 400 and the others go
/// on; a body that breaks off is answered by a last 400 line saying so.
/// A batch answer with its line's share of the bytes budgets, given back once it is written
/// out to the client (one that does not read its answers holds its own share, no more).
struct Held<T> {
    value: T,
    _shares: Vec<tokio::sync::OwnedSemaphorePermit>,
}

impl<T: Serialize> Serialize for Held<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

async fn pin_many(State(c): State<Cluster>, req: Request) -> ApiResult<Response> {
    let lines = batch_lines(req.into_body().into_data_stream(), BATCH_LINE_MAX);
    // This request's own share of the budget: a client that stops reading its answers
    // stops only itself.
    let mine = std::sync::Arc::new(tokio::sync::Semaphore::new(BATCH_BYTES_PER_REQUEST));
    let committer = c.clone();
    let results = lines
        .enumerate()
        .filter(|(_, line)| {
            let blank = matches!(line, BatchLine::Line(l) if l.iter().all(u8::is_ascii_whitespace));
            futures::future::ready(!blank)
        })
        // Each line holds its share of the bytes budgets until its answer is written out;
        // the line's bytes go once parsed, only the pin is kept.
        .then(move |(n, line)| {
            let mine = mine.clone();
            async move {
                let weight = match &line {
                    BatchLine::Line(bytes) => bytes.len().clamp(1, BATCH_LINE_MAX),
                    _ => 1,
                } as u32;
                let own = mine
                    .acquire_many_owned(weight)
                    .await
                    .expect("the budget is never closed");
                let shared = batch_bytes()
                    .acquire_many_owned(weight)
                    .await
                    .expect("the budget is never closed");
                let request = match line {
                    BatchLine::Line(bytes) => {
                        PinRequest::from_line(&bytes).map_err(|e| format!("not a pin: {e}"))
                    }
                    BatchLine::TooLong => Err(format!("line longer than {BATCH_LINE_MAX} bytes")),
                    BatchLine::Broken(e) => Err(format!("the request body broke off: {e}")),
                };
                (
                    n as u64 + 1,
                    request.map_err(Error::BadInput),
                    vec![own, shared],
                )
            }
        })
        // What has arrived goes together (up to a group), without waiting for more; groups
        // are checked and allocated ahead, and committed one after another, in order.
        .ready_chunks(BATCH_CHUNK)
        .map(move |chunk| {
            let c = c.clone();
            async move {
                let requests = chunk
                    .iter()
                    .filter_map(|(_, r, _)| r.as_ref().ok())
                    .map(|r| (r.cid, r.options.clone()))
                    .collect();
                (chunk, c.prepare_pins(requests).await)
            }
        })
        .buffered(BATCH_CHUNKS_IN_FLIGHT)
        .then(move |(chunk, prepared)| {
            let c = committer.clone();
            async move {
                let mut answers = c.commit_pins(prepared).await.into_iter();
                chunk
                    .into_iter()
                    .map(|(line, request, shares)| {
                        let answer =
                            request.and_then(|_| answers.next().expect("one answer per request"));
                        let value = match answer {
                            Ok(pin) => PinResult {
                                line,
                                code: 200,
                                pin: Some(pin),
                                message: String::new(),
                            },
                            Err(e) => PinResult {
                                line,
                                code: status_of(&e).as_u16(),
                                pin: None,
                                message: e.to_string(),
                            },
                        };
                        Held {
                            value,
                            _shares: shares,
                        }
                    })
                    .collect::<Vec<_>>()
            }
        })
        .flat_map(futures::stream::iter)
        .map(Ok::<_, Error>);
    Ok(ndjson(results).await)
}

/// `POST /add`: the multipart body streams through to IPFS (never read whole here).
async fn add(State(c): State<Cluster>, q: Params, req: Request) -> ApiResult<Response> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with("multipart/form-data"))
        .ok_or_else(|| {
            Error::BadInput("POST /add takes a multipart/form-data body of files".into())
        })?
        .to_string();
    let add = q.add_request()?;
    let stream_channels = q.stream_channels()?;
    let body = req
        .into_body()
        .into_data_stream()
        .map(|chunk| chunk.map_err(std::io::Error::other))
        .boxed();
    let out = c.add_stream(&content_type, body, add).await?;
    if stream_channels {
        // X-Chunked-Output on /add only, as IPFS Cluster's adder: clients read a list
        // stream that carries it as raw chunks rather than as objects.
        let mut resp = ndjson(out).await;
        resp.headers_mut()
            .insert("x-chunked-output", HeaderValue::from_static("1"));
        Ok(resp)
    } else {
        // IPFS Cluster's stream-channels=false: one array once everything is added.
        let all: Vec<AddedOutput> = out.try_collect().await?;
        Ok(Json(all).into_response())
    }
}

/// `GET /health/bandwidth`: IPFS Cluster's bandwidth by protocol.
async fn bandwidth(State(c): State<Cluster>) -> Response {
    Json(c.bandwidth()).into_response()
}

/// `GET /health/graph`: IPFS Cluster's ConnectGraph.
async fn graph(State(c): State<Cluster>) -> Response {
    Json(c.connect_graph().await).into_response()
}

/// `POST /ipfs/gc`: GC on every peer's IPFS, or with `local=true` on this peer's alone (a
/// RepoGC instead of a GlobalRepoGC, as IPFS Cluster).
async fn ipfs_gc(State(c): State<Cluster>, q: Params) -> ApiResult<Response> {
    if q.local()? {
        return Ok(Json(c.repo_gc_local().await).into_response());
    }
    Ok(Json(c.repo_gc().await).into_response())
}

async fn unpin_cid(State(c): State<Cluster>, Path(cid): Path<String>) -> ApiResult<Response> {
    let cid = parse_cid(&cid)?;
    Ok(Json(c.unpin(cid).await?).into_response())
}

async fn pin_path(
    State(c): State<Cluster>,
    Path((ns, path)): Path<(String, String)>,
    q: Params,
) -> ApiResult<Response> {
    let opts = q.pin_options()?;
    Ok(Json(c.pin_path(&format!("/{ns}/{path}"), opts).await?).into_response())
}

async fn unpin_path(
    State(c): State<Cluster>,
    Path((ns, path)): Path<(String, String)>,
) -> ApiResult<Response> {
    Ok(Json(c.unpin_path(&format!("/{ns}/{path}")).await?).into_response())
}

async fn status_one(
    State(c): State<Cluster>,
    Path(cid): Path<String>,
    q: Params,
) -> ApiResult<Response> {
    let cid = parse_cid(&cid)?;
    one(&q, c.status_local(&cid), c.status(&cid)).await
}

async fn status_all(State(c): State<Cluster>, q: Params) -> ApiResult<Response> {
    let filter = q.status_filter()?;
    let cids = q.cids()?;
    // Both stream: a listing of millions of pins is sent as it is produced.
    Ok(if q.local()? {
        let local = c.status_all_local(&filter, &cids);
        ndjson(local.map(|i| Ok(GlobalPinInfo::from_local(i)))).await
    } else {
        ndjson(c.status_all(&filter, &cids).map(Ok)).await
    })
}

/// This peer's pins by status (not in IPFS Cluster's API): counts kept as pins and
/// operations change, so it answers at once whatever the pinset's size.
async fn status_summary(State(c): State<Cluster>) -> ApiResult<Response> {
    Ok(Json(c.status_summary().await?).into_response())
}

async fn recover_one(
    State(c): State<Cluster>,
    Path(cid): Path<String>,
    q: Params,
) -> ApiResult<Response> {
    let cid = parse_cid(&cid)?;
    one(&q, c.recover_local(&cid), c.recover(&cid)).await
}

async fn recover_all(State(c): State<Cluster>, q: Params) -> ApiResult<Response> {
    Ok(if q.local()? {
        ndjson(
            c.recover_all_local()
                .map(|i| Ok(GlobalPinInfo::from_local(i))),
        )
        .await
    } else {
        ndjson(c.recover_all().map(Ok)).await
    })
}

async fn allocations(State(c): State<Cluster>, q: Params) -> ApiResult<Response> {
    let types = q.pin_types()?;
    Ok(ndjson_text(c.allocations_json(&types)).await)
}

async fn allocation(State(c): State<Cluster>, Path(cid): Path<String>) -> ApiResult<Response> {
    let cid = parse_cid(&cid)?;
    Ok(Json(c.allocation(&cid).await?).into_response())
}

/// Names of the metrics this peer has seen.
async fn metric_names(State(c): State<Cluster>) -> Json<Vec<String>> {
    Json(c.metric_names())
}

/// The latest metric of that name from every peer.
async fn metrics(State(c): State<Cluster>, Path(name): Path<String>) -> Json<Vec<Metric>> {
    Json(c.metrics(&name))
}

async fn alerts(State(c): State<Cluster>) -> Json<Vec<Alert>> {
    Json(c.alerts())
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "no such API endpoint".into())
}

/// An API's `basic_auth_credentials` and how that API words its errors (the REST API's
/// `{"code", "message"}`, the Pinning Service API's `{"error": {…}}`).
#[derive(Clone)]
struct Auth {
    creds: Option<std::collections::BTreeMap<String, String>>,
    render: fn(StatusCode, String) -> Response,
}

impl Auth {
    /// `router` behind [`require_auth`] when credentials are configured, with `POST /token`.
    fn guard(self, router: Router) -> Router {
        let router = router.merge(
            Router::new()
                .route("/token", post(new_token))
                .with_state(self.clone()),
        );
        if self.creds.as_ref().is_some_and(|c| !c.is_empty()) {
            router.layer(middleware::from_fn_with_state(self, require_auth))
        } else {
            router
        }
    }
}

/// `routes` asking for `creds` (basic auth or a Bearer token) when there are some, without
/// `POST /token`: for an API that only checks (the IPFS proxy of the desktop's peer).
pub(crate) fn require_credentials(
    routes: Router,
    creds: Option<std::collections::BTreeMap<String, String>>,
    render: fn(StatusCode, String) -> Response,
) -> Router {
    if creds.as_ref().is_none_or(|c| c.is_empty()) {
        return routes;
    }
    routes.layer(middleware::from_fn_with_state(
        Auth { creds, render },
        require_auth,
    ))
}

/// Rejects requests without valid credentials when `basic_auth_credentials` is set: basic
/// auth, or a Bearer JWT from `POST /token` (IPFS Cluster's `authHandler`).
async fn require_auth(State(auth): State<Auth>, req: Request, next: Next) -> Response {
    let Some(creds) = auth.creds.as_ref().filter(|c| !c.is_empty()) else {
        return next.run(req).await;
    };
    // CORS preflights carry no credentials by design; liveness is open, as in IPFS Cluster;
    // a client asks for the proof before it sends credentials.
    if req.method() == Method::OPTIONS || matches!(req.uri().path(), "/health" | "/auth/proof") {
        return next.run(req).await;
    }
    let refusal = match credentials(req.headers()) {
        Some(Credentials::Basic(u, p)) => {
            (!credentials_match(creds, &u, &p)).then_some(("Basic", "unauthorized: access denied"))
        }
        Some(Credentials::Bearer(t)) => token::verify(creds, &t)
            .is_none()
            .then_some(("Bearer", "unauthorized: invalid token")),
        None => Some(("Basic", "Unauthorized")),
    };
    let Some((scheme, message)) = refusal else {
        return next.run(req).await;
    };
    let mut resp = (auth.render)(StatusCode::UNAUTHORIZED, message.into());
    let challenge = format!("{scheme} realm=\"Restricted IPFS Cluster API\"");
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// What a request's `Authorization` header offers.
enum Credentials {
    /// User and password.
    Basic(String, String),
    /// A token from `POST /token`.
    Bearer(String),
}

/// The request's credentials, if its `Authorization` header holds readable ones.
fn credentials(headers: &HeaderMap) -> Option<Credentials> {
    let header = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, value) = header.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Credentials::Bearer(value.trim().to_string()));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some(Credentials::Basic(u.to_string(), p.to_string()))
}

/// `POST /token`: a JWT for the authenticated user (the auth layer has checked the
/// credentials); 401 when the API has no credentials configured, as in IPFS Cluster.
async fn new_token(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    let unauthorized = || (auth.render)(StatusCode::UNAUTHORIZED, "unauthorized".into());
    let Some(creds) = auth.creds.filter(|c| !c.is_empty()) else {
        return unauthorized();
    };
    let user = match credentials(&headers) {
        Some(Credentials::Basic(u, _)) => Some(u),
        Some(Credentials::Bearer(t)) => token::verify(&creds, &t),
        None => None,
    };
    match user.and_then(|u| creds.get(&u).map(|p| token::issue(&u, p))) {
        Some(t) => Json(serde_json::json!({ "token": t })).into_response(),
        None => unauthorized(),
    }
}

/// The local credential this peer proves it knows (`<folder>/restapi.credential`, when it
/// is one of the API's credentials: the desktop app's, random).
#[derive(Clone)]
struct Proof {
    user: String,
    password: String,
}

/// `GET /auth/proof?user=U&nonce=N`: this peer's proof that it knows the local credential
/// ([`crate::config::ApiCredential::proof`], bound to the address the client reached), so
/// that `ipfs-cluster-ctl` on this machine sends it to no other program. Open, like
/// `/health`, but only on loopback connections and only for that credential (its password
/// is 256 random bits: the answer helps no one guess it); 404 otherwise.
async fn auth_proof(
    State(proof): State<Option<Proof>>,
    q: Params,
    local: Option<axum::Extension<crate::http_policy::LocalAddr>>,
) -> Response {
    let no = || error_response(StatusCode::NOT_FOUND, "no proof here".into());
    let (Some(p), Some(axum::Extension(local))) = (proof, local) else {
        return no();
    };
    if !local.0.ip().is_loopback() || q.get("user") != Some(p.user.as_str()) {
        return no();
    }
    let nonce = q.get("nonce").unwrap_or_default();
    if nonce.len() < 32 || nonce.len() > 128 {
        return error_response(
            StatusCode::BAD_REQUEST,
            "nonce: 32 to 128 characters expected".into(),
        );
    }
    let proof = crate::config::ApiCredential::proof(&p.password, nonce, local.0);
    Json(serde_json::json!({ "proof": proof })).into_response()
}

/// Whether `user:password` is one of `creds`, compared in constant time (every pair is
/// compared, and each comparison takes as long whatever the bytes), so that response times
/// tell an attacker nothing about how close a guess was.
fn credentials_match(
    creds: &std::collections::BTreeMap<String, String>,
    user: &str,
    password: &str,
) -> bool {
    use subtle::ConstantTimeEq;
    let mut found = subtle::Choice::from(0u8);
    for (u, p) in creds {
        found |= u.as_bytes().ct_eq(user.as_bytes()) & p.as_bytes().ct_eq(password.as_bytes());
    }
    found.into()
}

fn cors(cfg: &HttpApiConfig) -> CorsLayer {
    let any_origin = cfg.cors_allowed_origins.iter().any(|o| o == "*");
    let origin = if any_origin {
        // Any origin is answered "*", which browsers never combine with credentials: a
        // mirrored origin with `Allow-Credentials` would let every site read the API with the
        // browser's ambient authority (basic auth it cached). IPFS Cluster's rs/cors mirrors;
        // a web UI that sends credentials names its origin in `cors_allowed_origins`.
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            cfg.cors_allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    let allow_credentials = cfg.cors_allow_credentials && !any_origin;
    let methods: Vec<Method> = cfg
        .cors_allowed_methods
        .iter()
        .filter_map(|m| m.parse().ok())
        .collect();
    let headers: Vec<HeaderName> = cfg
        .cors_allowed_headers
        .iter()
        .filter_map(|h| h.parse().ok())
        .collect();
    let exposed: Vec<HeaderName> = cfg
        .cors_exposed_headers
        .iter()
        .filter_map(|h| h.parse().ok())
        .collect();
    let mut layer = CorsLayer::new()
        .allow_origin(origin)
        .allow_methods(methods)
        .allow_headers(headers)
        .expose_headers(exposed)
        .allow_credentials(allow_credentials);
    if !cfg.cors_max_age.get().is_zero() {
        layer = layer.max_age(cfg.cors_max_age.get());
    }
    layer
}

/// The REST API's routes behind their guard, proving it knows `proof` (see [`auth_proof`]).
fn router(cluster: Cluster, cfg: &HttpApiConfig, proof: Option<Proof>) -> Router {
    let proof = Router::new()
        .route("/auth/proof", get(auth_proof))
        .with_state(proof);
    let r = Router::new()
        .route("/id", get(id))
        .route("/version", get(version))
        .route("/health", get(health))
        .route("/peers", get(peers).post(peer_add))
        .route("/peers/{peer}", delete(peer_rm))
        .route("/peers/{peer}/role", post(peer_role))
        .route("/pins", get(status_all).post(pin_many))
        .route("/pins/recover", post(recover_all))
        .route("/pins/summary", get(status_summary))
        .route(
            "/pins/{cid}",
            post(pin_cid).delete(unpin_cid).get(status_one),
        )
        .route("/pins/{cid}/recover", post(recover_one))
        .route("/pins/{ns}/{*path}", post(pin_path).delete(unpin_path))
        .route("/add", post(add))
        .route("/allocations", get(allocations))
        .route("/allocations/{cid}", get(allocation))
        .route("/monitor/metrics", get(metric_names))
        .route("/monitor/metrics/{name}", get(metrics))
        .route("/health/alerts", get(alerts))
        .route("/health/graph", get(graph))
        .route("/health/bandwidth", get(bandwidth))
        .route("/ipfs/gc", post(ipfs_gc))
        .fallback(not_found)
        .with_state(cluster)
        .merge(proof);
    guard(r, cfg, "api.restapi", error_response)
}

/// An IPFS Cluster-style API's `routes` as its config section says: basic auth or Bearer
/// tokens (with `POST /token`), CORS, and web pages refused (errors worded by `render`).
pub(crate) fn guard(
    routes: Router,
    cfg: &HttpApiConfig,
    section: &'static str,
    render: fn(StatusCode, String) -> Response,
) -> Router {
    let r = Auth {
        creds: cfg.basic_auth_credentials.clone(),
        render,
    }
    .guard(routes);
    let policy = crate::http_policy::CrossSitePolicy::new(
        &cfg.cors_allowed_origins,
        &cfg.cors_allowed_methods,
        section,
    )
    .rendered_by(render);
    // Outermost: a refused page's request reaches neither the CORS layer nor a handler.
    r.layer(cors(cfg)).layer(middleware::from_fn_with_state(
        policy,
        crate::http_policy::refuse_cross_site,
    ))
}

/// Serves the REST API on every configured address (TLS and timeouts as configured, see
/// [`crate::http_server`]) until shutdown, finishing open requests; returns the bound
/// addresses. `folder` is where relative certificate paths are.
pub(crate) async fn serve(
    cluster: Cluster,
    cfg: &HttpApiConfig,
    folder: &std::path::Path,
    tasks: &Tasks,
) -> Result<Vec<crate::net::ListenAddr>, Error> {
    let settings =
        crate::http_server::HttpSettings::of_api(cfg, "api.restapi").rendered_by(error_response);
    let proof = crate::config::ApiCredential::load(folder)
        .ok()
        .flatten()
        .filter(|c| {
            cfg.basic_auth_credentials
                .as_ref()
                .and_then(|m| m.get(&c.user))
                .is_some_and(|p| *p == c.password)
        })
        .map(|c| Proof {
            user: c.user,
            password: c.password,
        });
    let app = router(cluster, cfg, proof);
    crate::http_server::serve(&settings, folder, app, tasks).await
}

#[cfg(test)]
pub(crate) mod tests;
