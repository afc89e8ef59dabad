//! One policy for every HTTP listener of the project (SPEC §4): the REST API, the Pinning
//! Service API, the IPFS proxy, the metrics endpoint and the built-in IPFS node's RPC API.
//!
//! Who can reach a listener decides what it must refuse. Web pages in the user's browser
//! reach loopback too:
//! - [`cross_site`] refuses requests that show they come from a page the API's settings do
//!   not allow (each API installs it with its own CORS settings);
//! - DNS rebinding (a page whose own name resolves to 127.0.0.1) passes for same-origin, so
//!   a request that reached a loopback address (a listener bound there, or one bound to every
//!   interface and reached through loopback) is answered only when its `Host` names that
//!   address or `localhost` (403 otherwise). Requests from the network reach a listener by
//!   names only its users know, and are not checked;
//! - paths are normalised before routing (`//api/v0/pin/add`, `/api/v0/pin/add/`,
//!   `/api/v0/pin%2Fadd` are all `/api/v0/pin/add`, as Go's servers read them), so that no
//!   spelling slips past a handler: the proxy intercepts every pin Kubo would run;
//! - a body must keep arriving: `read_timeout` bounds the whole request when set; when it is
//!   0 (IPFS Cluster's default) a body must still average [`MIN_BODY_RATE`] bytes a second
//!   over the time the handler waits for it, once [`BODY_GRACE`] of waiting has passed
//!   (Kestrel's rule: time the handler spends not reading, as a batch between its commits,
//!   is not the client's), and may never stall longer than [`BODY_STALL`] while waited for
//!   (bytes sent fast earn no long silence), so that
//!   a client trickling bytes holds neither a connection nor a handler, while uploads of any
//!   size at any real speed pass.

pub mod cross_site;

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use http_body::Frame;

pub use cross_site::{plain_error, refuse_cross_site, CrossSitePolicy, Render};

/// The least a request body must average once [`BODY_GRACE`] has passed, in bytes a second.
pub const MIN_BODY_RATE: u64 = 240;
/// How long a body may take before [`MIN_BODY_RATE`] applies.
pub const BODY_GRACE: Duration = Duration::from_secs(10);
/// The longest a body may send nothing while the handler waits for it.
pub const BODY_STALL: Duration = Duration::from_secs(30);

/// The address a request's connection reached on this side, as a request extension (set by
/// the connection loop; what the client dialled: the `Host` rule and a proof of identity,
/// `restapi::auth_proof`, depend on it).
#[derive(Clone, Copy, Debug)]
pub struct LocalAddr(pub SocketAddr);

/// What every request to one bound address passes before its API sees it.
#[derive(Clone, Debug)]
pub struct ListenerPolicy {
    /// Names the listener in refusals (`api.restapi`).
    section: &'static str,
    /// The address it is bound to (for a request whose connection's own is not known);
    /// none for a unix socket.
    bound: Option<SocketAddr>,
    /// The whole request, body included (zero: the pace rule instead).
    read: Duration,
    /// The whole response (zero: none).
    write: Duration,
    render: Render,
}

impl ListenerPolicy {
    /// The policy of a listener bound to `bound`, with no timeouts but the body pace.
    pub fn new(section: &'static str, bound: SocketAddr, render: Render) -> ListenerPolicy {
        ListenerPolicy {
            section,
            bound: Some(bound),
            read: Duration::ZERO,
            write: Duration::ZERO,
            render,
        }
    }

    /// The policy of a unix socket: as [`ListenerPolicy::new`] but for the `Host` rule,
    /// which guards loopback TCP against pages, and no page reaches a unix socket.
    pub fn unix(section: &'static str, render: Render) -> ListenerPolicy {
        ListenerPolicy {
            section,
            bound: None,
            read: Duration::ZERO,
            write: Duration::ZERO,
            render,
        }
    }

    /// With `read_timeout` and `write_timeout` (zero: none, and the body pace applies).
    pub fn with_timeouts(self, read: Duration, write: Duration) -> ListenerPolicy {
        ListenerPolicy {
            read,
            write,
            ..self
        }
    }

    /// Why a request naming `host` that reached `local` (this side of its connection, when
    /// known) may not be answered here, if it may not.
    fn host_refusal(&self, host: Option<&str>, local: Option<SocketAddr>) -> Option<String> {
        let local = local.or(self.bound)?;
        if !local.ip().is_loopback() {
            return None;
        }
        // Browsers always send one; a client without (HTTP/1.0) is not a page.
        let host = host?;
        let name = host_name(host);
        if name == "localhost" || name == local.ip().to_string() {
            return None;
        }
        Some(format!(
            "{} answers requests for its own address only: Host {host:?} refused (a page \
             whose name was made to point at this machine?)",
            self.section
        ))
    }
}

/// The name in a `Host` value: lowercase, without port, brackets or a final dot.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// `app` behind `policy`: paths normalised before routing, `Host` checked, bodies paced or
/// timed out, responses timed out.
pub fn protect(app: Router, policy: ListenerPolicy) -> Router {
    let normalized = tower::ServiceBuilder::new()
        .map_request(normalize::<Body>)
        .service(app);
    Router::new()
        .fallback_service(normalized)
        .layer(axum::middleware::from_fn_with_state(policy, check))
}

/// Middleware: the `Host` rule, then the body and response deadlines.
async fn check(State(p): State<ListenerPolicy>, req: Request, next: Next) -> Response {
    let host = match req.headers().get(header::HOST) {
        Some(h) => Some(h.to_str().unwrap_or("(not text)").to_string()),
        None => req.uri().authority().map(|a| a.to_string()),
    };
    let local = req.extensions().get::<LocalAddr>().map(|l| l.0);
    if let Some(why) = p.host_refusal(host.as_deref(), local) {
        tracing::warn!(method = %req.method(), path = %req.uri().path(), "{why}");
        return (p.render)(StatusCode::FORBIDDEN, why);
    }
    let start = tokio::time::Instant::now();
    let req = if p.read.is_zero() {
        req.map(|b| Body::new(Deadline::paced(b)))
    } else {
        req.map(|b| Body::new(Deadline::at(b, start + p.read, "reading the request")))
    };
    let resp = next.run(req).await;
    if p.write.is_zero() {
        resp
    } else {
        resp.map(|b| Body::new(Deadline::at(b, start + p.write, "writing the response")))
    }
}

/// The request with its path in one spelling (see the module docs); the query is kept.
fn normalize<B>(mut req: axum::http::Request<B>) -> axum::http::Request<B> {
    let path = req.uri().path();
    let Cow::Owned(clean) = clean_path(path) else {
        return req;
    };
    let mut target = clean;
    if let Some(q) = req.uri().query() {
        target.push('?');
        target.push_str(q);
    }
    let mut parts = req.uri().clone().into_parts();
    match target.parse() {
        Ok(pq) => {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
        Err(e) => tracing::debug!("path {target:?} not normalised: {e}"),
    }
    req
}

/// Characters that stay escaped in a normalised path: all but RFC 3986's `pchar`s.
const PATH_ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// `path` decoded once, its empty and `.` segments dropped, `..` applied, no trailing slash,
/// and escaped again where a path needs it; borrowed when it was already so.
fn clean_path(path: &str) -> Cow<'_, str> {
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(path).collect();
    let mut segments: Vec<&[u8]> = Vec::new();
    for seg in decoded.split(|b| *b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut clean = String::with_capacity(path.len());
    for seg in &segments {
        clean.push('/');
        clean.extend(percent_encoding::percent_encode(seg, PATH_ESCAPED));
    }
    if clean.is_empty() {
        clean.push('/');
    }
    if clean == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(clean)
    }
}

/// A body that fails once its deadline has passed (the connection is then dropped): a fixed
/// one, or the pace rule, which counts only the time the handler waits for the client.
struct Deadline {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    what: &'static str,
    pace: Option<Pace>,
}

/// The pace rule's account (Kestrel's: time the handler spends not reading is not the
/// client's; a batch that reads as its commits finish is not "slow").
#[derive(Default)]
struct Pace {
    received: u64,
    /// Time spent waiting for the client's bytes, in earlier waits.
    waited: Duration,
    /// Of that, the waiting since the last byte.
    silent: Duration,
    /// The wait under way, since when.
    waiting_since: Option<tokio::time::Instant>,
}

impl Deadline {
    fn at(inner: Body, at: tokio::time::Instant, what: &'static str) -> Deadline {
        Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(at)),
            what,
            pace: None,
        }
    }

    fn paced(inner: Body) -> Deadline {
        Deadline {
            pace: Some(Pace::default()),
            // Armed when the handler waits for bytes.
            ..Deadline::at(
                inner,
                tokio::time::Instant::now() + BODY_STALL,
                "reading the request (too slow)",
            )
        }
    }

    /// The fixed deadline has passed.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.sleep.as_mut().poll(cx).is_ready()
    }
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let timed_out =
            |what: &str| Poll::Ready(Some(Err(axum::Error::new(format!("{what} timed out")))));
        let Some(pace) = this.pace.as_mut() else {
            if this.expired(cx) {
                return timed_out(this.what);
            }
            return Pin::new(&mut this.inner).poll_frame(cx);
        };
        let now = tokio::time::Instant::now();
        // The handler is reading again: the wait since the last poll was the client's.
        if let Some(since) = pace.waiting_since.take() {
            pace.waited += now - since;
            pace.silent += now - since;
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    pace.received += data.len() as u64;
                }
                pace.silent = Duration::ZERO;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                // What the bytes so far have earned, at least the grace; and never a silence
                // longer than the stall limit.
                let earned = Duration::from_secs_f64(pace.received as f64 / MIN_BODY_RATE as f64)
                    .max(BODY_GRACE);
                if pace.waited >= earned || pace.silent >= BODY_STALL {
                    return timed_out(this.what);
                }
                pace.waiting_since = Some(now);
                let at = now + (earned - pace.waited).min(BODY_STALL - pace.silent);
                this.sleep.as_mut().reset(at);
                if this.expired(cx) {
                    return timed_out(this.what);
                }
                Poll::Pending
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
