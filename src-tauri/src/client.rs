//! A client of the REST API (9094), used by `ipfs-cluster-ctl`, the integration tests and
//! anything else that talks to a peer over HTTP. It speaks to IPFS Cluster's Go peers too: the
//! paths, parameters and JSON are the SPEC's.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::types::{
    AddedOutput, Alert, ApiError, ConnectGraph, GlobalPinInfo, GlobalRepoGc, Id, Metric, Pin,
    PinInfo, PinOptions, RepoGc, StatusSummary, Version,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The peer answered with an error (`{code, message}`).
    #[error("{code}: {message}")]
    Api { code: u16, message: String },
    #[error("cannot reach the cluster peer at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// No answer within the client's timeout.
    #[error("the cluster peer at {url} did not answer in time")]
    Timeout { url: String },
    #[error("unexpected answer from the cluster peer: {0}")]
    Decode(String),
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    pub fn code(&self) -> Option<u16> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[derive(Clone)]
pub struct Client {
    base: String,
    /// Where the peer is, in errors: the base URL, or the unix socket's multiaddress.
    shown: String,
    http: reqwest::Client,
    auth: Option<(String, String)>,
}

/// `/ip4/…/tcp/…` multiaddr, `host:port` or a full URL → base URL.
/// A listing as it streams in: one item per line of the answer.
pub type Items<T> = futures::stream::BoxStream<'static, Result<T>>;

/// The items of an NDJSON answer, decoded line by line as the body arrives (blank lines
/// skipped, a line over 16 MiB an error).
fn json_lines<T: DeserializeOwned + Send + 'static>(resp: reqwest::Response) -> Items<T> {
    use futures::StreamExt;
    use tokio_util::codec::{FramedRead, LinesCodec};
    let bytes = resp
        .bytes_stream()
        .map(|r| r.map_err(std::io::Error::other));
    let lines = FramedRead::new(
        tokio_util::io::StreamReader::new(bytes),
        LinesCodec::new_with_max_length(16 << 20),
    );
    lines
        .filter(|l| futures::future::ready(!matches!(l, Ok(t) if t.trim().is_empty())))
        .map(|l| {
            let l = l.map_err(|e| ClientError::Decode(e.to_string()))?;
            serde_json::from_str(&l).map_err(|e| ClientError::Decode(e.to_string()))
        })
        .boxed()
}

/// The socket of a `/unix/<path>` host, if it is one.
fn unix_socket(host: &str) -> Result<Option<std::path::PathBuf>> {
    let host = host.trim();
    if !host.starts_with("/unix/") {
        return Ok(None);
    }
    let ma =
        crate::net::parse_multiaddr(host).map_err(|e| ClientError::Usage(format!("--host {e}")))?;
    Ok(crate::net::unix_path(&ma))
}

/// Credentials go over a unix socket only to one of this user's (or root's): another user
/// could have made one at that path while the peer was down.
fn socket_is_ours(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(()); // Not there: the request fails as unreachable.
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() == me || meta.uid() == 0 {
        return Ok(());
    }
    Err(ClientError::Usage(format!(
        "{} belongs to another user (uid {}): credentials are not sent to it",
        path.display(),
        meta.uid()
    )))
}

pub fn base_url(host: &str) -> Result<String> {
    let host = host.trim().trim_end_matches('/');
    if host.starts_with('/') {
        let ma: multiaddr::Multiaddr = host
            .parse()
            .map_err(|e| ClientError::Usage(format!("--host {host}: {e}")))?;
        return crate::net::http_url(&ma).map_err(|e| ClientError::Usage(e.to_string()));
    }
    if host.starts_with("http://") || host.starts_with("https://") {
        return Ok(host.to_string());
    }
    Ok(format!("http://{host}"))
}

/// Query parameters for `POST /pins/{cid}` from pin options, as IPFS Cluster's client sends.
pub fn pin_query(o: &PinOptions) -> Vec<(String, String)> {
    let mut q = vec![
        (
            "replication-min".into(),
            o.replication_factor_min.to_string(),
        ),
        (
            "replication-max".into(),
            o.replication_factor_max.to_string(),
        ),
        ("name".into(), o.name.clone()),
        (
            "mode".into(),
            serde_json::to_value(o.mode)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string(),
        ),
        ("shard-size".into(), o.shard_size.to_string()),
    ];
    if !o.user_allocations.is_empty() {
        q.push(("user-allocations".into(), o.user_allocations.join(",")));
    }
    if let Some(t) = o.expire_at {
        q.push(("expire-at".into(), t.to_rfc3339()));
    }
    if let Some(c) = o.pin_update {
        q.push(("pin-update".into(), c.to_string()));
    }
    if !o.origins.is_empty() {
        q.push(("origins".into(), o.origins.join(",")));
    }
    for (k, v) in &o.metadata {
        q.push((format!("meta-{k}"), v.clone()));
    }
    q
}

/// How to reach the API besides its address.
#[derive(Debug, Clone, Copy, Default)]
pub struct Transport {
    /// HTTPS for a host given as a multiaddr or `host:port`.
    pub https: bool,
    /// Accept any server certificate (IPFS Cluster's `--no-check-certificate`).
    pub insecure: bool,
}

impl Client {
    pub fn new(
        host: &str,
        basic_auth: Option<(String, String)>,
        timeout: Duration,
    ) -> Result<Client> {
        Self::with_transport(host, basic_auth, timeout, Transport::default())
    }

    pub fn with_transport(
        host: &str,
        basic_auth: Option<(String, String)>,
        timeout: Duration,
        transport: Transport,
    ) -> Result<Client> {
        let mut http = reqwest::Client::builder()
            .timeout(timeout)
            .danger_accept_invalid_certs(transport.insecure);
        // A peer's REST API on a unix socket (`/unix/<path>`, as `ipfs-cluster-follow`
        // serves it): every request goes to that socket, naming `localhost`.
        let unix = unix_socket(host)?;
        if let Some(path) = &unix {
            if basic_auth.is_some() {
                socket_is_ours(path)?;
            }
            http = http.unix_socket(path.as_path());
        }
        let http = http
            .build()
            .map_err(|e| ClientError::Usage(e.to_string()))?;
        let (mut base, shown) = match &unix {
            Some(path) => (
                "http://localhost".to_string(),
                crate::net::unix_multiaddr(path).to_string(),
            ),
            None => (base_url(host)?, String::new()),
        };
        if transport.https {
            if let Some(rest) = base.strip_prefix("http://") {
                base = format!("https://{rest}");
            }
        }
        let shown = match shown.is_empty() {
            true => base.clone(),
            false => shown,
        };
        Ok(Client {
            base,
            shown,
            http,
            auth: basic_auth,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The address of the server at this client's address, if it proves it knows `cred`'s
    /// password (`GET /auth/proof` with a fresh nonce, redirects not followed): a client on
    /// this machine sends the local peer's credential only to a server that does, and then
    /// only to that address (see [`crate::config::ApiCredential::proof`]).
    pub async fn server_knows(
        &self,
        cred: &crate::config::ApiCredential,
    ) -> Option<std::net::SocketAddr> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .ok()?;
        let nonce = hex::encode(rand::random::<[u8; 32]>());
        let resp = http
            .get(format!("{}/auth/proof", self.base))
            .query(&[("user", cred.user.as_str()), ("nonce", nonce.as_str())])
            .send()
            .await
            .ok()?;
        let addr = resp.remote_addr()?;
        let v: serde_json::Value = resp.json().await.ok()?;
        let expected = crate::config::ApiCredential::proof(&cred.password, &nonce, addr);
        let got = v["proof"].as_str().unwrap_or_default();
        let ok: bool = subtle::ConstantTimeEq::ct_eq(got.as_bytes(), expected.as_bytes()).into();
        ok.then_some(addr)
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
    ) -> Result<reqwest::Response> {
        self.request_with(method, path, query, |r| r).await
    }

    /// [`Client::request`], with the request builder adjusted by `adjust` (a body).
    async fn request_with(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        adjust: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url).query(query);
        if let Some((u, p)) = &self.auth {
            req = req.basic_auth(u, Some(p));
        }
        let resp = adjust(req)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ApiError>(&body) {
            Ok(e) => ClientError::Api {
                code: e.code,
                message: e.message,
            },
            Err(_) => ClientError::Api {
                code: status.as_u16(),
                message: body.trim().to_string(),
            },
        })
    }

    fn transport_error(&self, e: reqwest::Error) -> ClientError {
        if e.is_timeout() {
            return ClientError::Timeout {
                url: self.shown.clone(),
            };
        }
        ClientError::Unreachable {
            url: self.shown.clone(),
            message: std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.to_string()),
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
    ) -> Result<T> {
        let resp = self.request(method, path, query).await?;
        resp.json()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// An NDJSON listing, each item as it arrives (204 = none): the request's own failure
    /// is the `Err`; one while reading is the stream's last item.
    async fn stream<T: DeserializeOwned + Send + 'static>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Items<T>> {
        let resp = self.request(method, path, query).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(Box::pin(futures::stream::empty()));
        }
        Ok(json_lines(resp))
    }

    pub async fn id(&self) -> Result<Id> {
        self.json(Method::GET, "/id", &[]).await
    }

    pub async fn version(&self) -> Result<Version> {
        self.json(Method::GET, "/version", &[]).await
    }

    pub async fn health(&self) -> Result<()> {
        self.request(Method::GET, "/health", &[]).await.map(|_| ())
    }

    /// The cluster's peers (a few hundred at most: gathered).
    pub async fn peers(&self) -> Result<Vec<Id>> {
        use futures::TryStreamExt;
        self.stream(Method::GET, "/peers", &[])
            .await?
            .try_collect()
            .await
    }

    pub async fn peer_rm(&self, peer: &str) -> Result<()> {
        self.request(Method::DELETE, &format!("/peers/{peer}"), &[])
            .await
            .map(|_| ())
    }

    pub async fn metric_names(&self) -> Result<Vec<String>> {
        self.json(Method::GET, "/monitor/metrics", &[]).await
    }

    pub async fn metrics(&self, name: &str) -> Result<Vec<Metric>> {
        self.json(Method::GET, &format!("/monitor/metrics/{name}"), &[])
            .await
    }

    pub async fn alerts(&self) -> Result<Vec<Alert>> {
        self.json(Method::GET, "/health/alerts", &[]).await
    }

    /// Promotes (`voter`) or demotes (`follower`) a peer.
    pub async fn peer_role(&self, peer: &str, role: &str) -> Result<()> {
        let q = [("role".to_string(), role.to_string())];
        self.request(Method::POST, &format!("/peers/{peer}/role"), &q)
            .await
            .map(|_| ())
    }

    /// `POST /pins`, the batch form: `body` is NDJSON, one [`crate::types::PinRequest`] a
    /// line, sent as it is read; one [`crate::types::PinResult`] a line comes back, in the
    /// same order, as each pin is committed. No overall timeout: a batch takes as long as
    /// its lines (each line's commit has the cluster's own).
    pub async fn pin_many(&self, body: reqwest::Body) -> Result<Items<crate::types::PinResult>> {
        let resp = self
            .request_with(Method::POST, "/pins", &[], |r| {
                r.header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
                    .timeout(Duration::from_secs(365 * 24 * 3600))
                    .body(body)
            })
            .await?;
        Ok(json_lines(resp))
    }

    /// `arg` is a CID or an `/ipfs|ipns|ipld/…` path.
    pub async fn pin(&self, arg: &str, opts: &PinOptions) -> Result<Pin> {
        let path = format!("/pins/{}", arg.trim_start_matches('/'));
        self.json(Method::POST, &path, &pin_query(opts)).await
    }

    pub async fn unpin(&self, arg: &str) -> Result<Pin> {
        let path = format!("/pins/{}", arg.trim_start_matches('/'));
        self.json(Method::DELETE, &path, &[]).await
    }

    /// Every pin in the pinset (of the types in `filter`), as it streams in.
    pub async fn allocations(&self, filter: &str) -> Result<Items<Pin>> {
        let q = [("filter".to_string(), filter.to_string())];
        self.stream(Method::GET, "/allocations", &q).await
    }

    pub async fn allocation(&self, cid: &str) -> Result<Pin> {
        self.json(Method::GET, &format!("/allocations/{cid}"), &[])
            .await
    }

    pub async fn status(&self, cid: &str) -> Result<GlobalPinInfo> {
        self.json(Method::GET, &format!("/pins/{cid}"), &[]).await
    }

    pub async fn status_local(&self, cid: &str) -> Result<PinInfo> {
        let q = [("local".to_string(), "true".to_string())];
        let g: GlobalPinInfo = self.json(Method::GET, &format!("/pins/{cid}"), &q).await?;
        local_of(g)
    }

    /// The peer's pins by status (`GET /pins/summary`).
    pub async fn status_summary(&self) -> Result<StatusSummary> {
        self.json(Method::GET, "/pins/summary", &[]).await
    }

    /// The cluster's status of every pin (or of `cids`), as it streams in.
    pub async fn status_all(&self, filter: &str, cids: &[String]) -> Result<Items<GlobalPinInfo>> {
        let mut q = vec![("filter".to_string(), filter.to_string())];
        if !cids.is_empty() {
            q.push(("cids".into(), cids.join(",")));
        }
        self.stream(Method::GET, "/pins", &q).await
    }

    /// This peer's status of every pin, as it streams in.
    pub async fn status_all_local(&self, filter: &str) -> Result<Items<PinInfo>> {
        use futures::StreamExt;
        let q = [
            ("filter".to_string(), filter.to_string()),
            ("local".to_string(), "true".to_string()),
        ];
        let all: Items<GlobalPinInfo> = self.stream(Method::GET, "/pins", &q).await?;
        Ok(all.map(|g| g.and_then(local_of)).boxed())
    }

    pub async fn recover(&self, cid: &str) -> Result<GlobalPinInfo> {
        self.json(Method::POST, &format!("/pins/{cid}/recover"), &[])
            .await
    }

    pub async fn recover_local(&self, cid: &str) -> Result<PinInfo> {
        let q = [("local".to_string(), "true".to_string())];
        let g: GlobalPinInfo = self
            .json(Method::POST, &format!("/pins/{cid}/recover"), &q)
            .await?;
        local_of(g)
    }

    /// Recovers every pin on every peer; what each queued again, as it streams in.
    pub async fn recover_all(&self) -> Result<Items<GlobalPinInfo>> {
        self.stream(Method::POST, "/pins/recover", &[]).await
    }

    /// Pins `to` as an update of the pin of `from` (its options and allocations).
    pub async fn pin_update(&self, from: &str, to: &str, opts: &PinOptions) -> Result<Pin> {
        let mut q = pin_query(opts);
        q.push(("pin-update".into(), from.to_string()));
        self.json(Method::POST, &format!("/pins/{to}"), &q).await
    }

    /// Garbage collection on every peer's IPFS node.
    pub async fn ipfs_gc(&self) -> Result<GlobalRepoGc> {
        self.json(Method::POST, "/ipfs/gc", &[]).await
    }

    /// Garbage collection on this peer's IPFS node only.
    pub async fn ipfs_gc_local(&self) -> Result<RepoGc> {
        let q = [("local".to_string(), "true".to_string())];
        self.json(Method::POST, "/ipfs/gc", &q).await
    }

    pub async fn bandwidth(
        &self,
    ) -> Result<std::collections::BTreeMap<String, crate::types::Bandwidth>> {
        self.json(Method::GET, "/health/bandwidth", &[]).await
    }

    pub async fn graph(&self) -> Result<ConnectGraph> {
        self.json(Method::GET, "/health/graph", &[]).await
    }

    /// `POST /add` of `form` (files and directories in Kubo's multipart form) with `query`
    /// (pin and add options); hands each added node to `each` as it arrives. No request
    /// timeout: an upload takes as long as it takes.
    pub async fn add(
        &self,
        form: reqwest::multipart::Form,
        query: &[(String, String)],
        mut each: impl FnMut(AddedOutput),
    ) -> Result<()> {
        let mut resp = self
            .request_with(Method::POST, "/add", query, |r| {
                r.multipart(form)
                    .timeout(Duration::from_secs(365 * 24 * 3600))
            })
            .await?;
        let mut buf = Vec::new();
        // NDJSON, or with `stream-channels=false` one array at the end.
        let decode = |line: &[u8]| -> Result<Vec<AddedOutput>> {
            let line = line.trim_ascii();
            let parsed = match line.first() {
                None => return Ok(Vec::new()),
                Some(b'[') => serde_json::from_slice(line),
                Some(_) => serde_json::from_slice(line).map(|one| vec![one]),
            };
            parsed.map_err(|e| ClientError::Decode(e.to_string()))
        };
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport_error(e))? {
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                decode(&line)?.into_iter().for_each(&mut each);
            }
        }
        decode(&buf)?.into_iter().for_each(&mut each);
        Ok(())
    }
}

/// This peer's PinInfo from a `local=true` answer (a GlobalPinInfo with this peer alone).
fn local_of(g: GlobalPinInfo) -> Result<PinInfo> {
    g.into_local()
        .ok_or_else(|| ClientError::Decode("a local status without its peer".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unix socket of another user gets no credentials (it could be an impostor's); one's
    /// own does. (Needs root to give a file away, as CI runs.)
    #[test]
    fn credentials_go_to_this_users_unix_socket_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-socket");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let host = crate::net::unix_multiaddr(&path).to_string();
        let auth = || Some(("u".to_string(), "p".to_string()));
        let t = Duration::from_secs(1);
        assert!(Client::new(&host, auth(), t).is_ok());
        if std::os::unix::fs::lchown(&path, Some(65534), None).is_err() {
            eprintln!("not root: the other user's socket is not tried");
            return;
        }
        let err = Client::new(&host, auth(), t).err().unwrap().to_string();
        assert!(err.contains("belongs to another user"), "{err}");
        assert!(Client::new(&host, None, t).is_ok(), "without credentials");
    }

    #[test]
    fn host_forms() {
        assert_eq!(
            base_url("/ip4/127.0.0.1/tcp/9094").unwrap(),
            "http://127.0.0.1:9094"
        );
        assert_eq!(base_url("127.0.0.1:9094").unwrap(), "http://127.0.0.1:9094");
        assert_eq!(base_url("https://x:1/").unwrap(), "https://x:1");
        assert!(base_url("/ip4/nope").is_err());
    }

    #[test]
    fn pin_query_round_trips_through_the_server_parser() {
        let mut o = PinOptions {
            replication_factor_min: 2,
            replication_factor_max: 3,
            name: "n".into(),
            ..Default::default()
        };
        o.metadata.insert("k".into(), "v".into());
        let q = pin_query(&o);
        let parsed = crate::restapi::Params(q).pin_options().unwrap();
        assert_eq!(parsed, o);
    }
}
