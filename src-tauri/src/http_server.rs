//! Serving an HTTP API the way its config section says (SPEC §2/§4): every address of its
//! listen list, TLS when `ssl_cert_file`/`ssl_key_file` are set, and the timeouts and header
//! limit, so that a slow or hostile client cannot hold a connection or buffer without end.
//! axum's own `serve` offers none of these; this is hyper's connection loop with them, shared
//! by every HTTP API of the peer.
//!
//! Timeouts, with Go's `net/http` meaning where hyper has one:
//! - `read_header_timeout`: the request head must arrive within it; hyper also applies it to
//!   an idle keep-alive connection waiting for its next request, so idle connections close
//!   after the shorter of it and `idle_timeout`.
//! - `read_timeout`: the whole request, body included, from its arrival; 0 (IPFS Cluster's
//!   default) still makes a body keep a minimum pace.
//! - `write_timeout` (0: none): the whole response, from the request's arrival. IPFS Cluster
//!   leaves it at 0: a stream of millions of pins takes longer than any fixed limit.
//!
//! Every listener serves its API behind [`crate::http_policy`] (Host, paths, body pace).
//!
//! A listen address may be a unix socket (`/unix/<path>`, as `ipfs-cluster-follow` serves
//! its REST API): created owner-only (0600), so another local user cannot drive the peer
//! through it; a socket left by a process that died is replaced, a live one or any other
//! file at that path is not; removed when the API stops. No browser reaches a unix socket,
//! so its requests are not held to the loopback `Host` rule.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::Semaphore;

use crate::config::{HttpApiConfig, Multiaddrs};
use crate::error::Error;
use crate::http_policy::{plain_error, protect, ListenerPolicy, LocalAddr, Render};
use crate::net::ListenAddr;
use crate::tasks::Tasks;

/// How one HTTP API is served.
#[derive(Clone, Debug)]
pub(crate) struct HttpSettings {
    /// The config section, for error messages (`api.restapi`).
    pub section: &'static str,
    pub listen: Multiaddrs,
    pub ssl_cert_file: String,
    pub ssl_key_file: String,
    pub read_header_timeout: Duration,
    pub idle_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub max_header_bytes: usize,
    /// Connections served at once, over all its listen addresses (see [`serve`]).
    pub max_connections: usize,
    /// How the API words the listener policy's refusals.
    pub render: Render,
}

/// Connections an API serves at once unless its section says otherwise.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Connections refused since start because an API had as many as it serves at once, over
/// every API of this process (Prometheus: `ipfscluster_http_refused_connections`).
static REFUSED_CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// [`REFUSED_CONNECTIONS`], for `/metrics`.
pub(crate) fn refused_connections() -> u64 {
    REFUSED_CONNECTIONS.load(Ordering::Relaxed)
}

/// What a plain-HTTP connection over the limit reads before it is closed.
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
Content-Length: 60\r\nRetry-After: 1\r\nConnection: close\r\n\r\n\
too many connections to this API at once: try again shortly\n";

impl HttpSettings {
    /// The settings of an IPFS Cluster-style API section (`restapi`, `pinsvcapi`).
    pub(crate) fn of_api(cfg: &HttpApiConfig, section: &'static str) -> HttpSettings {
        HttpSettings {
            section,
            listen: cfg.http_listen_multiaddress.clone(),
            ssl_cert_file: cfg.ssl_cert_file.clone(),
            ssl_key_file: cfg.ssl_key_file.clone(),
            read_header_timeout: cfg.read_header_timeout.get(),
            idle_timeout: cfg.idle_timeout.get(),
            read_timeout: cfg.read_timeout.get(),
            write_timeout: cfg.write_timeout.get(),
            max_header_bytes: cfg.max_header_bytes as usize,
            max_connections: cfg.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            render: plain_error,
        }
    }

    /// The same, with refusals worded by `render`.
    pub(crate) fn rendered_by(self, render: Render) -> HttpSettings {
        HttpSettings { render, ..self }
    }

    /// Plain HTTP on `listen` with IPFS Cluster's defaults for its small endpoints.
    pub(crate) fn plain(section: &'static str, listen: Multiaddrs) -> HttpSettings {
        HttpSettings {
            section,
            listen,
            ssl_cert_file: String::new(),
            ssl_key_file: String::new(),
            read_header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(60),
            max_header_bytes: 4096,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            render: plain_error,
        }
    }

    /// The settings of the IPFS proxy section (no TLS: Kubo's RPC API has none either).
    pub(crate) fn of_proxy(cfg: &crate::config::IpfsProxyConfig) -> HttpSettings {
        HttpSettings {
            section: "api.ipfsproxy",
            listen: cfg.listen_multiaddress.clone(),
            ssl_cert_file: String::new(),
            ssl_key_file: String::new(),
            read_header_timeout: cfg.read_header_timeout.get(),
            idle_timeout: cfg.idle_timeout.get(),
            read_timeout: cfg.read_timeout.get(),
            write_timeout: cfg.write_timeout.get(),
            max_header_bytes: cfg.max_header_bytes as usize,
            max_connections: cfg.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            render: plain_error,
        }
    }

    /// hyper's header timeout: see the module docs (never zero: a client must send a head).
    fn header_timeout(&self) -> Duration {
        let t = match (self.read_header_timeout, self.idle_timeout) {
            (h, i) if h.is_zero() => i,
            (h, i) if i.is_zero() => h,
            (h, i) => h.min(i),
        };
        if t.is_zero() {
            Duration::from_secs(60)
        } else {
            t
        }
    }

    /// The TLS configuration when a certificate is configured; a clear error naming the
    /// config key when it cannot be used. Relative paths are in the peer's folder.
    fn tls(&self, folder: &Path) -> Result<Option<Arc<rustls::ServerConfig>>, Error> {
        let (cert, key) = (self.ssl_cert_file.trim(), self.ssl_key_file.trim());
        if cert.is_empty() && key.is_empty() {
            return Ok(None);
        }
        let section = self.section;
        if cert.is_empty() || key.is_empty() {
            return Err(Error::BadInput(format!(
                "{section}: ssl_cert_file and ssl_key_file must be set together"
            )));
        }
        let path = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                folder.join(p)
            }
        };
        let bad = |key: &str, file: &str, why: String| {
            Error::BadInput(format!("{section}.{key} {file:?}: {why}"))
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path(cert))
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad("ssl_cert_file", cert, e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("ssl_cert_file", cert, "no certificate in it".into()));
        }
        let private = PrivateKeyDer::from_pem_file(path(key))
            .map_err(|e| bad("ssl_key_file", key, e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Internal(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, private)
            .map_err(|e| bad("ssl_key_file", key, e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(Arc::new(config)))
    }
}

/// Binds every listen address and serves `app` on each until shutdown, finishing open
/// requests; returns the bound addresses in the configured order.
pub(crate) async fn serve(
    settings: &HttpSettings,
    folder: &Path,
    app: Router,
    tasks: &Tasks,
) -> Result<Vec<ListenAddr>, Error> {
    let section = settings.section;
    if settings.listen.0.is_empty() {
        return Err(Error::BadInput(format!(
            "{section}: the listen address list is empty"
        )));
    }
    let tls = settings.tls(folder)?.map(tokio_rustls::TlsAcceptor::from);
    let mut listeners = Vec::new();
    for addr in &settings.listen.0 {
        let bound = match crate::net::listen_addr(addr)? {
            ListenAddr::Tcp(sock) => Bound::Tcp(TcpListener::bind(sock).await.map_err(|e| {
                Error::Unavailable(format!("{section} cannot listen on {sock}: {e}"))
            })?),
            ListenAddr::Unix(path) => Bound::Unix(UnixSocket::bind(section, &path).await?),
        };
        listeners.push(bound);
    }
    // One bound for the API, whichever address its clients use (as mini-redis's semaphore).
    let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let mut bound = Vec::new();
    for listener in listeners {
        let conn = |policy: ListenerPolicy| Connections {
            app: protect(
                app.clone(),
                policy.with_timeouts(settings.read_timeout, settings.write_timeout),
            ),
            tls: tls.clone(),
            header_timeout: settings.header_timeout(),
            max_buf: (settings.max_header_bytes + 4096).max(8192),
            slots: slots.clone(),
            tasks: tasks.clone(),
        };
        match listener {
            Bound::Tcp(listener) => {
                let addr = listener
                    .local_addr()
                    .map_err(|e| Error::Internal(e.to_string()))?;
                bound.push(ListenAddr::Tcp(addr));
                let policy = ListenerPolicy::new(section, addr, settings.render);
                tasks.spawn_graceful(conn(policy).accept_loop(listener));
            }
            Bound::Unix(socket) => {
                bound.push(ListenAddr::Unix(socket.path.clone()));
                let policy = ListenerPolicy::unix(section, settings.render);
                tasks.spawn_graceful(conn(policy).accept_loop(socket));
            }
        }
    }
    Ok(bound)
}

/// A listener bound, before it is served.
enum Bound {
    Tcp(TcpListener),
    Unix(UnixSocket),
}

/// A unix socket this API created, removed (if it is still this one) when the API stops.
struct UnixSocket {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file's (device, inode), to remove this file and no other.
    file: (u64, u64),
}

impl UnixSocket {
    /// Binds `path` owner-only, replacing a socket no process listens on any more (what a
    /// peer that was killed leaves), and nothing else. The socket is made in a new folder of
    /// its own beside `path` (0700), set 0600 there, then moved into place: at no moment can
    /// another user connect to it.
    async fn bind(section: &str, path: &Path) -> Result<UnixSocket, Error> {
        use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
        let shown = path.display();
        let cannot = |why: String| {
            Error::Unavailable(format!("{section} cannot listen on unix:{shown}: {why}"))
        };
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(cannot(
                    "a file that is not a socket is there (not replaced)".into(),
                ));
            }
            let probe = tokio::net::UnixStream::connect(path);
            match tokio::time::timeout(Duration::from_secs(2), probe).await {
                Ok(Ok(_)) | Err(_) => return Err(cannot("another process listens on it".into())),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    tracing::info!(
                        "{section}: replacing unix:{shown}, left by a process that stopped"
                    );
                    std::fs::remove_file(path).map_err(|e| cannot(e.to_string()))?;
                }
                Ok(Err(e)) => return Err(cannot(e.to_string())),
            }
        }
        let dir = path.parent().unwrap_or(Path::new("/"));
        let staging = dir.join(format!(".s{:08x}", rand::random::<u32>()));
        let staged = staging.join("s");
        if staged.as_os_str().len() > crate::net::MAX_UNIX_PATH {
            // No room for the staging folder's name: bound in place, then made owner-only.
            let listener = UnixListener::bind(path).map_err(|e| cannot(e.to_string()))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| cannot(e.to_string()))?;
            let meta = std::fs::symlink_metadata(path).map_err(|e| cannot(e.to_string()))?;
            return Ok(UnixSocket {
                listener,
                path: path.to_path_buf(),
                file: (meta.dev(), meta.ino()),
            });
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .map_err(|e| cannot(format!("{}: {e}", staging.display())))?;
        let bound = (|| {
            let listener = UnixListener::bind(&staged)?;
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
            let meta = std::fs::symlink_metadata(&staged)?;
            std::fs::rename(&staged, path)?;
            Ok::<_, std::io::Error>((listener, (meta.dev(), meta.ino())))
        })();
        let _ = std::fs::remove_file(&staged);
        let _ = std::fs::remove_dir(&staging);
        let (listener, file) = bound.map_err(|e| cannot(e.to_string()))?;
        Ok(UnixSocket {
            listener,
            path: path.to_path_buf(),
            file,
        })
    }
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.file);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What an API listens with: a TCP listener or a unix socket.
trait Listener: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&self) -> impl Future<Output = std::io::Result<Self::Io>> + Send;
    /// The address the connection reached on this side (TCP only).
    fn local(io: &Self::Io) -> Option<LocalAddr>;
    /// Waits until the connection sends its first byte, without taking it (0: it closed).
    fn first_byte(io: &Self::Io) -> impl Future<Output = std::io::Result<usize>> + Send;
    fn prepare(_io: &Self::Io) {}
    /// Writes what fits at once (the refusal of a connection over the limit).
    fn try_write(io: &Self::Io, bytes: &[u8]);
}

impl Listener for TcpListener {
    type Io = TcpStream;
    async fn accept(&self) -> std::io::Result<TcpStream> {
        TcpListener::accept(self).await.map(|(tcp, _)| tcp)
    }
    fn local(io: &TcpStream) -> Option<LocalAddr> {
        io.local_addr().ok().map(LocalAddr)
    }
    async fn first_byte(io: &TcpStream) -> std::io::Result<usize> {
        io.peek(&mut [0u8; 1]).await
    }
    fn prepare(io: &TcpStream) {
        let _ = io.set_nodelay(true);
    }
    fn try_write(io: &TcpStream, bytes: &[u8]) {
        let _ = io.try_write(bytes);
    }
}

impl Listener for UnixSocket {
    type Io = UnixStream;
    /// Only this user's (and root's) connections: the socket's mode says so already, this
    /// holds should the mode be changed.
    async fn accept(&self) -> std::io::Result<UnixStream> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        loop {
            let (stream, _) = self.listener.accept().await?;
            match stream.peer_cred() {
                Ok(c) if c.uid() == me || c.uid() == 0 => return Ok(stream),
                Ok(c) => tracing::warn!(
                    "unix:{}: refused a connection of user {} (only this peer's user may connect)",
                    self.path.display(),
                    c.uid()
                ),
                Err(e) => tracing::debug!("a unix socket connection without credentials: {e}"),
            }
        }
    }
    fn local(_io: &UnixStream) -> Option<LocalAddr> {
        None
    }
    fn try_write(io: &UnixStream, bytes: &[u8]) {
        let _ = io.try_write(bytes);
    }
    async fn first_byte(io: &UnixStream) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        loop {
            io.readable().await?;
            let mut byte = [0u8; 1];
            let peeked = io.try_io(tokio::io::Interest::READABLE, || {
                // SAFETY: recv writes at most one byte into `byte`, which outlives the call;
                // MSG_PEEK leaves it in the socket for hyper.
                let n = unsafe {
                    libc::recv(io.as_raw_fd(), byte.as_mut_ptr().cast(), 1, libc::MSG_PEEK)
                };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match peeked {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }
}

/// What every connection of one listener is served with.
#[derive(Clone)]
struct Connections {
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    header_timeout: Duration,
    max_buf: usize,
    /// A permit per connection served.
    slots: Arc<Semaphore>,
    tasks: Tasks,
}

impl Connections {
    /// Accepts until shutdown begins, then lets open connections finish their requests.
    async fn accept_loop<L: Listener>(self, listener: L) {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let stopping = self.tasks.stopping();
        loop {
            let io = tokio::select! {
                _ = stopping.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(io) => io,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, do not spin.
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            // Over the limit: told at once and closed, without a task (a flood of connections
            // costs nothing beyond the accept). A TLS client is just closed.
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                REFUSED_CONNECTIONS.fetch_add(1, Ordering::Relaxed);
                if self.tls.is_none() {
                    L::try_write(&io, TOO_MANY);
                }
                continue;
            };
            L::prepare(&io);
            let local = L::local(&io);
            let this = self.clone();
            let watcher = graceful.watcher();
            self.tasks.spawn_graceful(async move {
                let _slot = slot;
                match this.tls.clone() {
                    None => {
                        // hyper's header timeout starts with the first byte: a connection
                        // that sends none would be held for good.
                        match tokio::time::timeout(this.header_timeout, L::first_byte(&io)).await {
                            Ok(Ok(n)) if n > 0 => {
                                this.serve(TokioIo::new(io), watcher, local).await
                            }
                            _ => tracing::debug!("a connection sent nothing in time"),
                        }
                    }
                    Some(acceptor) => {
                        let handshake =
                            tokio::time::timeout(this.header_timeout, acceptor.accept(io));
                        match handshake.await {
                            Ok(Ok(tls)) => this.serve(TokioIo::new(tls), watcher, local).await,
                            Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                            Err(_) => tracing::debug!("TLS handshake timed out"),
                        }
                    }
                }
            });
        }
        drop(listener);
        graceful.shutdown().await;
    }

    async fn serve<I>(
        &self,
        io: I,
        watcher: hyper_util::server::graceful::Watcher,
        local: Option<LocalAddr>,
    ) where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let app = self.app.clone();
        let with_local = tower::service_fn(move |mut req: axum::http::Request<_>| {
            if let Some(l) = local {
                req.extensions_mut().insert(l);
            }
            tower::ServiceExt::oneshot(app.clone(), req)
        });
        let service = hyper_util::service::TowerToHyperService::new(with_local);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .max_buf_size(self.max_buf);
        builder.http2().timer(TokioTimer::new());
        // HTTP/2 only over TLS (agreed by ALPN), as Go's servers: a plain connection is
        // HTTP/1, whose idle connections the header timeout closes.
        let builder = if self.tls.is_some() {
            builder
        } else {
            builder.http1_only()
        };
        let conn = builder.serve_connection_with_upgrades(io, service);
        if let Err(e) = watcher.watch(conn.into_owned()).await {
            tracing::debug!("HTTP connection ended: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_timeout_is_the_shorter_one_and_never_zero() {
        let mut s = HttpSettings::of_api(&Default::default(), "api.restapi");
        s.read_header_timeout = Duration::from_secs(5);
        s.idle_timeout = Duration::from_secs(120);
        assert_eq!(s.header_timeout(), Duration::from_secs(5));
        s.read_header_timeout = Duration::ZERO;
        assert_eq!(s.header_timeout(), Duration::from_secs(120));
        s.idle_timeout = Duration::ZERO;
        assert_eq!(s.header_timeout(), Duration::from_secs(60));
    }

    #[tokio::test]
    async fn connections_over_the_limit_hear_503_at_once_and_a_freed_slot_serves_again() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut settings = HttpSettings::plain("test", Multiaddrs::one("/ip4/127.0.0.1/tcp/0"));
        settings.max_connections = 2;
        let tasks = Tasks::new();
        let app = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let dir = tempfile::tempdir().unwrap();
        let addr = serve(&settings, dir.path(), app, &tasks).await.unwrap()[0]
            .tcp()
            .unwrap();
        let before = refused_connections();
        // Two clients that started a request and stalled hold both slots.
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .await
                .unwrap();
            held.push(c);
        }
        let answer = |mut c: tokio::net::TcpStream| async move {
            c.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .await
                .ok();
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut out)).await;
            String::from_utf8_lossy(&out).to_string()
        };
        // Held connections are counted once accepted: ask until the refusal comes.
        let end = std::time::Instant::now() + Duration::from_secs(10);
        let refused = loop {
            let got = answer(tokio::net::TcpStream::connect(addr).await.unwrap()).await;
            if got.starts_with("HTTP/1.1 503") {
                break got;
            }
            assert!(std::time::Instant::now() < end, "never refused: {got}");
        };
        assert!(refused.contains("too many connections"), "{refused}");
        assert!(refused_connections() > before);
        // One client leaves: its slot serves the next.
        drop(held.pop());
        let end = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = answer(tokio::net::TcpStream::connect(addr).await.unwrap()).await;
            if got.starts_with("HTTP/1.1 200") {
                assert!(got.ends_with("ok"), "{got}");
                break;
            }
            assert!(
                std::time::Instant::now() < end,
                "the slot never came back: {got}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tasks.shutdown().await;
    }

    /// What is at a unix socket's path is replaced only when it is a socket nobody listens
    /// on: a live one, or a file of another kind, stops the start and is left as it is.
    #[tokio::test]
    async fn a_unix_socket_replaces_only_a_dead_socket() {
        let dir = tempfile::tempdir().unwrap();
        let app = || Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let settings = |path: &Path| {
            HttpSettings::plain("test", Multiaddrs(vec![crate::net::unix_multiaddr(path)]))
        };
        let file = dir.path().join("a-file");
        std::fs::write(&file, "keep me").unwrap();
        let tasks = Tasks::new();
        let err = serve(&settings(&file), dir.path(), app(), &tasks)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a socket"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
        let live = dir.path().join("live");
        let first = serve(&settings(&live), dir.path(), app(), &tasks).await;
        assert!(first.is_ok(), "{first:?}");
        // Made in a folder of its own and moved into place: nothing else is left.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["a-file", "live"]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&live).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let err = serve(&settings(&live), dir.path(), app(), &tasks)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("another process listens"), "{err}");
        tasks.shutdown().await;
        assert!(!live.exists());
    }
}
