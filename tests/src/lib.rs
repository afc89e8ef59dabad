//! Harness for the integration tests: real processes (`ipfs-local-node`,
//! `ipfs-cluster-service`, `ipfs-cluster-ctl`) on 127.0.0.1 with free ports, real SQLite files
//! and real IPFS repos in temporary folders.
//!
//! Every wait is a condition polled until a deadline, never a fixed sleep: CI has two cores
//! shared by every process a test starts.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ipfs_cluster::client::Client;
use serde_json::Value;

pub mod browser;
pub mod clients;
pub mod nemesis;
pub mod netns;
pub mod relay;

pub use netns::{Host, Net};

/// A client listing gathered whole, for assertions on the small pinsets of tests.
#[allow(async_fn_in_trait)]
pub trait Gather<T> {
    async fn gather(self) -> Result<Vec<T>, ipfs_cluster::client::ClientError>;
}

impl<T> Gather<T> for Result<ipfs_cluster::client::Items<T>, ipfs_cluster::client::ClientError> {
    async fn gather(self) -> Result<Vec<T>, ipfs_cluster::client::ClientError> {
        futures::TryStreamExt::try_collect(self?).await
    }
}

/// Content no other test adds, so CIDs never collide across tests.
pub fn unique(tag: &str) -> Vec<u8> {
    format!(
        "{tag} {} {:?}",
        std::process::id(),
        std::time::SystemTime::now()
    )
    .into_bytes()
}

/// A valid CID unique to `text` (CIDv1 raw with an identity multihash of the text, in
/// base16): the content is the CID itself, so any IPFS node pins it at once, without
/// fetching anything. `text` must be at most 127 bytes.
pub fn identity_cid(text: &str) -> String {
    let bytes = text.as_bytes();
    assert!(bytes.len() < 128, "identity CIDs of short texts only");
    let mut raw = vec![0x01, 0x55, 0x00, bytes.len() as u8];
    raw.extend_from_slice(bytes);
    std::iter::once("f".to_string())
        .chain(raw.iter().map(|b| format!("{b:02x}")))
        .collect()
}

/// The CIDs of the pinset as `client` lists it, sorted.
pub async fn pinset(client: &Client) -> Vec<String> {
    let mut cids: Vec<String> = client
        .allocations("")
        .await
        .gather()
        .await
        .expect("allocations")
        .iter()
        .map(|p| p.cid.to_string())
        .collect();
    cids.sort();
    cids
}

/// `cids`, sorted, to compare with [`pinset`].
pub fn sorted(cids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = cids.iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}

/// Generous: a debug build on two busy cores.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The folder holding the workspace's binaries (`target/debug` or `target/release`).
pub fn bin_dir() -> PathBuf {
    // A test executable lives in <target>/<profile>/deps, the benchmark in <target>/<profile>.
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().expect("target/<profile>");
    match dir.file_name() {
        Some(n) if n == "deps" => dir.parent().expect("target/<profile>").to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`)",
        p.display()
    );
    p
}

/// A port nobody listens on right now, below the kernel's range of ephemeral ports (32768 and
/// up on Linux): a port the OS handed out and took back could be given again at once as the
/// local port of one of the many connections the peers make, before the peer it was meant for
/// binds it (it happened with 53 peers). Taken in turn from a range that starts at a place of
/// this process's own, and checked free on every address.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id() * 97) % COUNT,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..COUNT {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % COUNT) as u16;
        if TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + COUNT)
}

/// Polls `check` until it returns `Some`, or fails after `deadline` with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() >= end {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The last `lines` lines of a log, without the frames of a backtrace (an error's own lines
/// come before its backtrace, which would otherwise fill the tail: a CI failure showed
/// frames only).
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let frame = |l: &str| {
        let t = l.trim_start();
        t.starts_with("at ")
            || t.split_once(": ")
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut in_backtrace = false;
    let all: Vec<&str> = text
        .lines()
        .filter(|l| {
            if l.trim().eq_ignore_ascii_case("stack backtrace:") {
                in_backtrace = true;
                return false;
            }
            in_backtrace &= frame(l);
            !in_backtrace
        })
        .collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What a log gained after its first `from` bytes (this run's lines).
fn log_since(path: &Path, from: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&text[from.min(text.len())..]).into_owned()
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status();
}

/// Stops `child` with SIGTERM and waits for it to exit; SIGKILL if it does not in time.
pub(crate) fn terminate(child: &mut Child) {
    signal(child, "-TERM");
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub(crate) fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))
}

/// A real IPFS node (Kubo as a library) in its own process, with its RPC API on a fixed
/// port so that it can be stopped and started again at the same address.
pub struct IpfsNode {
    pub repo: PathBuf,
    storage_max: String,
    pub api_port: u16,
    /// The test host it runs on (a network namespace), or this machine's loopback.
    host: Option<Host>,
    log: PathBuf,
    child: Option<Child>,
    http: reqwest::Client,
}

impl IpfsNode {
    /// The running process's id (none for a node not started by the harness).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub async fn start(dir: &Path) -> Result<IpfsNode> {
        Self::start_with(dir, "10GB").await
    }

    /// A node whose `Datastore.StorageMax` is `storage_max` (so peers differ in free space).
    pub async fn start_with(dir: &Path, storage_max: &str) -> Result<IpfsNode> {
        Self::start_on(dir, storage_max, None).await
    }

    /// A node on test host `host` (its LAN mode, on the host's address), or on loopback.
    pub async fn start_on(dir: &Path, storage_max: &str, host: Option<&Host>) -> Result<IpfsNode> {
        let mut node = IpfsNode {
            storage_max: storage_max.to_string(),
            repo: dir.join("ipfs"),
            api_port: if host.is_some() { 5001 } else { free_port() },
            host: host.cloned(),
            log: dir.join("ipfs.log"),
            child: None,
            http: reqwest::Client::new(),
        };
        // The port picked may have been taken meanwhile (the race `free_port` accepts): then
        // the first start is tried again on another.
        for attempt in 1.. {
            let before = std::fs::metadata(&node.log).map_or(0, |m| m.len() as usize);
            match node.restart().await {
                Err(_)
                    if attempt < 3
                        && node.host.is_none()
                        && log_since(&node.log, before).contains("Address already in use") =>
                {
                    node.stop();
                    node.api_port = free_port();
                }
                done => return done.map(|_| node),
            }
        }
        unreachable!()
    }

    fn addr(&self) -> &str {
        self.host.as_ref().map_or("127.0.0.1", |h| h.ip.as_str())
    }

    pub fn api_url(&self) -> String {
        format!("http://{}:{}", self.addr(), self.api_port)
    }

    pub fn api_multiaddr(&self) -> String {
        format!("/ip4/{}/tcp/{}", self.addr(), self.api_port)
    }

    /// Starts the node process (again) and waits until its API answers.
    pub async fn restart(&mut self) -> Result<()> {
        assert!(self.child.is_none(), "IPFS node already running");
        let mut cmd = match &self.host {
            Some(h) => {
                let mut c = h.command(&bin("ipfs-local-node"));
                c.arg("--swarm")
                    .arg(format!("/ip4/{}/tcp/4001", h.ip))
                    .arg("--allow-remote-api");
                c
            }
            None => {
                let mut c = Command::new(bin("ipfs-local-node"));
                // A free port for the gateway: nodes of tests running at once would all
                // want Kubo's 8080.
                c.arg("--loopback-only")
                    .arg("--gateway")
                    .arg("/ip4/127.0.0.1/tcp/0");
                c
            }
        };
        cmd.arg("--test-api")
            .arg("--repo")
            .arg(&self.repo)
            .arg("--api")
            .arg(self.api_multiaddr())
            .arg("--storage-max")
            .arg(&self.storage_max);
        let child = spawn_logged(&mut cmd, &self.log)?;
        self.child = Some(child);
        // Until the API answers, the process exits, or the deadline.
        let end = Instant::now() + DEADLINE;
        let state = loop {
            // Whether the process is still there first (the port may answer for another
            // test's node that took it), and for whoever reads a failure (a CI run saw a
            // node that logged nothing in 60 s).
            match self.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(status))) => break format!("exited: {status}"),
                Some(Err(e)) => break format!("unknown: {e}"),
                None => break "not started".to_string(),
                Some(Ok(None)) => {}
            }
            if self.call("id", &[]).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= end {
                break format!("still running after {DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        bail!(
            "IPFS node on port {} did not answer ({state}); its log:\n{}",
            self.api_port,
            tail(&self.log, 30)
        )
    }

    /// Stops the node (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c);
        }
    }

    pub async fn call(&self, path: &str, query: &[(&str, &str)]) -> Result<reqwest::Response> {
        let resp = self
            .http
            .post(format!("{}/api/v0/{path}", self.api_url()))
            .query(query)
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("{path}: {} {}", resp.status(), resp.text().await?);
        }
        Ok(resp)
    }

    /// A call with a multipart form (`add`), its answer as text.
    pub async fn call_form(
        &self,
        path: &str,
        query: &[(&str, &str)],
        form: reqwest::multipart::Form,
    ) -> Result<String> {
        let resp = self
            .http
            .post(format!("{}/api/v0/{path}", self.api_url()))
            .query(query)
            .multipart(form)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("{path}: {status} {text}");
        }
        Ok(text)
    }

    /// The gateway's base URL (`http://host:port`), from `Addresses.Gateway` as Kubo's.
    pub async fn gateway_url(&self) -> Result<String> {
        let cfg: Value = self.call("config/show", &[]).await?.json().await?;
        let ma = cfg["Addresses"]["Gateway"]
            .as_str()
            .context("the config names no gateway")?;
        let mut parts = ma.split('/').skip(1);
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("ip4"), Some(ip), Some("tcp"), Some(port)) => Ok(format!("http://{ip}:{port}")),
            _ => bail!("gateway address {ma} is not /ip4/…/tcp/…"),
        }
    }

    /// Adds `data` without pinning it (so only the cluster's pin keeps it); returns its CID.
    pub async fn add(&self, data: &[u8]) -> Result<String> {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(data.to_vec()).file_name("data"),
        );
        let resp = self
            .http
            .post(format!("{}/api/v0/add?pin=false", self.api_url()))
            .multipart(form)
            .send()
            .await?;
        let v: Value = resp.json().await?;
        Ok(v["Hash"]
            .as_str()
            .context("add answered no Hash")?
            .to_string())
    }

    /// The node's recursive pins.
    pub async fn pins(&self) -> Result<Vec<String>> {
        let body = self
            .call("pin/ls", &[("type", "recursive"), ("stream", "true")])
            .await?
            .text()
            .await?;
        Ok(body
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["Cid"].as_str().map(String::from))
            .collect())
    }

    /// Whether `cid` is among the node's recursive pins, in whatever base or version either
    /// is written (an identity CID made by [`identity_cid`] is base16, IPFS lists base32).
    pub async fn is_pinned(&self, cid: &str) -> Result<bool> {
        let hash = |c: &str| {
            c.parse::<ipfs_cluster::types::Cid>()
                .ok()
                .map(|c| c.multihash_bytes())
        };
        let wanted = hash(cid).with_context(|| format!("not a CID: {cid}"))?;
        Ok(self
            .pins()
            .await?
            .iter()
            .any(|c| hash(c).as_ref() == Some(&wanted)))
    }
}

impl Drop for IpfsNode {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- IPFS node log ({}) ---\n{}",
                self.log.display(),
                tail(&self.log, 40)
            );
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A cluster peer process (`ipfs-cluster-service daemon`) with its own folder.
pub struct Peer {
    pub dir: PathBuf,
    pub rest_port: u16,
    /// The IPFS proxy API's configured port (0: the OS picks; see [`Peer::proxy_url`]).
    pub proxy_port: u16,
    /// The Pinning Service API's configured port (see [`Peer::pinsvc_url`]).
    pub pinsvc_port: u16,
    pub swarm_port: u16,
    /// The test host it runs on (a network namespace), or this machine's loopback.
    pub host: Option<Host>,
    /// `cluster.announce_multiaddress`, where others reach it when set.
    announce: Option<String>,
    log: PathBuf,
    child: Option<Child>,
    /// Bytes of the log already seen when the current run started.
    log_offset: usize,
}

pub fn service(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin("ipfs-cluster-service"))
        .arg("--config")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("ipfs-cluster-service runs")
}

impl Peer {
    /// `init`s a peer folder wired to `ipfs`, with fast maintenance intervals; `edit` may
    /// change more of `service.json` before it is written (as a user would by hand).
    pub fn init(dir: &Path, ipfs: &IpfsNode, edit: impl FnOnce(&mut Value)) -> Result<Peer> {
        Self::init_on(dir, ipfs, None, edit)
    }

    /// [`Peer::init`] for a peer on test host `host` (its API and swarm on the host's address).
    pub fn init_on(
        dir: &Path,
        ipfs: &IpfsNode,
        host: Option<&Host>,
        edit: impl FnOnce(&mut Value),
    ) -> Result<Peer> {
        Self::init_at(dir, &ipfs.api_multiaddr(), host, edit)
    }

    /// [`Peer::init_on`] with its IPFS connector (and proxy) at `ipfs_api`.
    pub fn init_at(
        dir: &Path,
        ipfs_api: &str,
        host: Option<&Host>,
        edit: impl FnOnce(&mut Value),
    ) -> Result<Peer> {
        let out = service(dir, &["init"]);
        if !out.status.success() {
            bail!("init failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        // The proxy and pinning service listen where the OS says (their ports are read
        // from the log, see `proxy_url`): fewer ports reserved ahead, fewer collisions.
        let (rest_port, swarm_port, proxy_port, pinsvc_port) = match host {
            Some(_) => (9094, 9096, 9095, 9097),
            None => (free_port(), free_port(), 0, 0),
        };
        let mut peer = Peer {
            dir: dir.to_path_buf(),
            rest_port,
            swarm_port,
            proxy_port,
            pinsvc_port,
            host: host.cloned(),
            announce: None,
            log: dir.join("peer.log"),
            child: None,
            log_offset: 0,
        };
        let path = dir.join("service.json");
        let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        cfg["api"]["restapi"]["http_listen_multiaddress"] =
            format!("/ip4/{}/tcp/{}", peer.addr(), peer.rest_port).into();
        cfg["api"]["ipfsproxy"]["listen_multiaddress"] =
            format!("/ip4/{}/tcp/{}", peer.addr(), peer.proxy_port).into();
        cfg["api"]["pinsvcapi"]["http_listen_multiaddress"] =
            format!("/ip4/{}/tcp/{}", peer.addr(), peer.pinsvc_port).into();
        cfg["cluster"]["listen_multiaddress"] =
            format!("/ip4/{}/tcp/{}", peer.addr(), peer.swarm_port).into();
        cfg["ipfs_connector"]["ipfshttp"]["node_multiaddress"] = ipfs_api.into();
        cfg["api"]["ipfsproxy"]["node_multiaddress"] = ipfs_api.into();
        cfg["cluster"]["peer_watch_interval"] = "500ms".into();
        edit(&mut cfg);
        let announce = &cfg["cluster"]["announce_multiaddress"];
        let announce = announce
            .as_str()
            .or_else(|| announce.get(0).and_then(Value::as_str));
        peer.announce = announce.map(String::from);
        std::fs::write(&path, serde_json::to_string_pretty(&cfg)?)?;
        Ok(peer)
    }

    /// The address its APIs and swarm listen on.
    pub fn addr(&self) -> &str {
        self.host.as_ref().map_or("127.0.0.1", |h| h.ip.as_str())
    }

    pub fn client(&self) -> Client {
        Client::new(
            &format!("{}:{}", self.addr(), self.rest_port),
            None,
            Duration::from_secs(30),
        )
        .expect("client")
    }

    /// Starts `daemon` (with `extra` arguments) and waits until it logs that it is ready.
    pub async fn start(&mut self, extra: &[&str]) -> Result<()> {
        self.start_env(extra, &[]).await
    }

    /// As [`Peer::start`], with extra environment variables (`CLUSTER_*` overrides). A port
    /// picked by [`free_port`] may have been taken meanwhile (the race that function
    /// accepts): then the REST API (and the swarm, if it is the one) get new ports and the
    /// start is tried again.
    pub async fn start_env(&mut self, extra: &[&str], env: &[(&str, &str)]) -> Result<()> {
        for attempt in 1.. {
            self.spawn_env(extra, env)?;
            match self.wait_ready().await {
                // (This run's lines only: an earlier run's refusal is no reason to try again.)
                Err(_)
                    if attempt < 3
                        && self.host.is_none()
                        && self.current_log().contains("Address already in use") =>
                {
                    let swarm = self.current_log().contains("cannot listen on /ip4");
                    self.stop();
                    self.repick_ports(swarm)?;
                }
                done => return done,
            }
        }
        unreachable!()
    }

    /// New ports for the REST API (and the swarm), written to `service.json`.
    fn repick_ports(&mut self, swarm: bool) -> Result<()> {
        let path = self.dir.join("service.json");
        let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        self.rest_port = free_port();
        cfg["api"]["restapi"]["http_listen_multiaddress"] =
            format!("/ip4/127.0.0.1/tcp/{}", self.rest_port).into();
        if swarm {
            self.swarm_port = free_port();
            cfg["cluster"]["listen_multiaddress"] =
                format!("/ip4/127.0.0.1/tcp/{}", self.swarm_port).into();
        }
        std::fs::write(&path, serde_json::to_string_pretty(&cfg)?)?;
        Ok(())
    }

    /// The URL an API of the running peer listens on, from its log (`what` as logged).
    fn api_url_from_log(&self, what: &str) -> String {
        let log = self.current_log();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} in the log:\n{log}"));
        line[line.find("http").expect("a URL")..].trim().to_string()
    }

    /// The IPFS proxy API's URL (`http://host:port`).
    pub fn proxy_url(&self) -> String {
        self.api_url_from_log("IPFS proxy API listening on ")
    }

    /// The Pinning Service API's URL.
    pub fn pinsvc_url(&self) -> String {
        self.api_url_from_log("Pinning Service API listening on ")
    }

    /// Starts the daemon without waiting for it to be ready.
    pub fn spawn(&mut self, extra: &[&str]) -> Result<()> {
        self.spawn_env(extra, &[])
    }

    /// [`Peer::spawn`] with environment variables set (`RUST_LOG`, …).
    pub fn spawn_env(&mut self, extra: &[&str], env: &[(&str, &str)]) -> Result<()> {
        assert!(self.child.is_none(), "peer already running");
        self.log_offset = std::fs::metadata(&self.log)
            .map(|m| m.len() as usize)
            .unwrap_or(0);
        let mut cmd = match &self.host {
            Some(h) => h.command(&bin("ipfs-cluster-service")),
            None => Command::new(bin("ipfs-cluster-service")),
        };
        cmd.arg("--config")
            .arg(&self.dir)
            .arg("daemon")
            .args(extra)
            .envs(env.iter().copied());
        let child = spawn_logged(&mut cmd, &self.log)?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the running daemon logs that it is ready.
    pub async fn wait_ready(&mut self) -> Result<()> {
        self.wait_ready_within(DEADLINE).await
    }

    /// [`Peer::wait_ready`] with a deadline of its own (a join that installs a large snapshot).
    pub async fn wait_ready_within(&mut self, deadline: Duration) -> Result<()> {
        let end = Instant::now() + deadline;
        loop {
            if self.current_log().contains("IPFS Cluster is READY") {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                bail!("daemon exited with {status}; log:\n{}", tail(&self.log, 40));
            }
            if Instant::now() >= end {
                bail!(
                    "peer not ready after {deadline:?}; log:\n{}",
                    tail(&self.log, 40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Reads a REST stream (`/allocations`, `/pins`, …) as it arrives, with no overall time
    /// limit, counting its lines and watching this daemon's memory while it is sent.
    pub async fn read_stream(&self, path_and_query: &str) -> Result<Streamed> {
        let url = format!("http://127.0.0.1:{}{path_and_query}", self.rest_port);
        let before = self.rss().unwrap_or(0);
        let mut resp = reqwest::get(&url).await?;
        let (mut lines, mut bytes, mut peak) = (0usize, 0u64, before);
        while let Some(chunk) = resp.chunk().await? {
            bytes += chunk.len() as u64;
            let seen = lines;
            lines += chunk.iter().filter(|b| **b == b'\n').count();
            // Memory every thousand lines or so.
            if lines / 1000 != seen / 1000 {
                peak = peak.max(self.rss().unwrap_or(0));
            }
        }
        Ok(Streamed {
            lines,
            bytes,
            grown: peak.saturating_sub(before),
        })
    }

    /// What this run of the daemon has logged.
    pub fn current_log(&self) -> String {
        log_since(&self.log, self.log_offset)
    }

    /// Waits, up to `deadline`, until this run of the daemon has logged `text`.
    pub async fn wait_logged(&self, text: &str, deadline: Duration) -> Result<()> {
        wait_for(&format!("the log to say {text:?}"), deadline, || async {
            self.current_log().contains(text).then_some(())
        })
        .await
    }

    /// Graceful stop (SIGTERM).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c);
        }
    }

    /// `ipfs-cluster-service state import --force` of `pins` into this (stopped) peer's
    /// folder, through an NDJSON file written there.
    pub fn import_pins(&self, pins: impl IntoIterator<Item = ipfs_cluster::types::Pin>) {
        use std::io::Write;
        let file = self.dir.join("import.ndjson");
        {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
            for pin in pins {
                serde_json::to_writer(&mut out, &pin).unwrap();
                out.write_all(b"\n").unwrap();
            }
        }
        let out = service(
            &self.dir,
            &["state", "import", "--force", file.to_str().unwrap()],
        );
        assert!(out.status.success(), "{}", text(&out));
    }

    /// Crash (SIGKILL): nothing gets a chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `ipfs-cluster-service state cleanup --force` on this (stopped) peer's folder: its Raft
    /// state is backed up and removed, as an operator does before rejoining.
    pub fn cleanup_state(&self) -> Result<()> {
        let out = service(&self.dir, &["state", "cleanup", "--force"]);
        if !out.status.success() {
            bail!("state cleanup failed: {}", text(&out));
        }
        Ok(())
    }

    /// Runs `ipfs-cluster-ctl` against this peer.
    pub fn ctl(&self, args: &[&str]) -> Output {
        // From the peer's own host: it answers there even when cut off from the others.
        let mut cmd = match &self.host {
            Some(h) => h.command(&bin("ipfs-cluster-ctl")),
            None => Command::new(bin("ipfs-cluster-ctl")),
        };
        cmd.arg("--host")
            .arg(format!("/ip4/{}/tcp/{}", self.addr(), self.rest_port))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ipfs-cluster-ctl runs")
    }

    /// Waits until this peer reports `status` for `cid` (its own view, `?local=true`).
    pub async fn wait_status(&self, cid: &str, status: &str) -> Result<()> {
        let client = self.client();
        let end = Instant::now() + DEADLINE;
        loop {
            let last = match client.status_local(cid).await {
                Ok(info) if info.info.status.as_str() == status => return Ok(()),
                Ok(info) => format!("{} {}", info.info.status, info.info.error),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= end {
                bail!("{cid} not {status} after {DEADLINE:?}; last seen: {last}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let crashes: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("panicked at"))
                .take(3)
                .collect();
            eprintln!(
                "--- peer log ({}) ---\n{}{}",
                self.log.display(),
                crashes.join("\n"),
                tail(&self.log, 60)
            );
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Output's text, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Peer {
    /// This peer's id, from its `identity.json`.
    pub fn id(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("identity.json")).expect("identity");
        let v: Value = serde_json::from_str(&text).expect("identity JSON");
        v["id"].as_str().expect("id").to_string()
    }

    /// What others pass to `--bootstrap`.
    pub fn cluster_addr(&self) -> String {
        match &self.announce {
            Some(a) => format!("{a}/p2p/{}", self.id()),
            None => format!(
                "/ip4/{}/tcp/{}/p2p/{}",
                self.addr(),
                self.swarm_port,
                self.id()
            ),
        }
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The daemon's resident memory (VmRSS), in bytes.
    pub fn rss(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// Moves this (stopped) peer to another test host, as a laptop that roams to another
    /// network: its APIs and swarm listen on the new host's address from its next start.
    pub fn move_to(&mut self, host: &Host) -> Result<()> {
        assert!(self.child.is_none(), "stop the peer first");
        let path = self.dir.join("service.json");
        let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        self.host = Some(host.clone());
        cfg["api"]["restapi"]["http_listen_multiaddress"] =
            format!("/ip4/{}/tcp/{}", host.ip, self.rest_port).into();
        cfg["api"]["ipfsproxy"]["listen_multiaddress"] =
            format!("/ip4/{}/tcp/{}", host.ip, self.proxy_port).into();
        cfg["api"]["pinsvcapi"]["http_listen_multiaddress"] =
            format!("/ip4/{}/tcp/{}", host.ip, self.pinsvc_port).into();
        cfg["cluster"]["listen_multiaddress"] =
            format!("/ip4/{}/tcp/{}", host.ip, self.swarm_port).into();
        std::fs::write(&path, serde_json::to_string_pretty(&cfg)?)?;
        Ok(())
    }

    /// The daemon's log file (every run of it).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Forgets a daemon that exited by itself, so that it can be started again; returns how
    /// it exited (`None`: it had not).
    pub fn reap(&mut self) -> Option<std::process::ExitStatus> {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => {
                self.child = None;
                Some(status)
            }
            _ => None,
        }
    }

    /// Signals the daemon (`-STOP`, `-CONT`: a laptop that sleeps and wakes).
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            signal(c, sig);
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Waits for the daemon to exit by itself; returns whether it exited successfully.
    pub async fn wait_exit(&mut self) -> Result<bool> {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Ok(status.success());
            }
            if Instant::now() >= end {
                bail!("daemon still running after {DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Where a peer without an IPFS node looks for one: a port nothing listens on (connections
/// are refused at once).
pub const NO_IPFS: &str = "/ip4/127.0.0.1/tcp/1";

/// Settings that make a cluster on one loaded machine quick to react but not flaky.
pub fn cluster_settings(cfg: &mut Value) {
    cfg["consensus"]["raft"]["wait_for_leader_timeout"] = "3s".into();
    cfg["consensus"]["raft"]["network_timeout"] = "5s".into();
    cfg["ipfs_connector"]["ipfshttp"]["connect_swarms_delay"] = "1s".into();
}

/// Several peers, each with its own real IPFS node, formed by `--bootstrap` to the first.
pub struct TestCluster {
    // Fields drop in this order: processes first (printing their logs on a failure), then
    // the folder that holds the logs.
    pub peers: Vec<Peer>,
    pub ipfs: Vec<IpfsNode>,
    secret: String,
    /// Test hosts for the peers, in order (none: all on loopback).
    hosts: Vec<Host>,
    /// Peers get no IPFS node: their connectors point at a closed port, so that only the
    /// consensus is at work (tests of Raft's safety; `ipfs` stays empty).
    without_ipfs: bool,
    /// Delaying relays in front of the peers' swarms, when the links are slow.
    relays: Vec<relay::Relay>,
    pub dir: tempfile::TempDir,
}

/// What [`Peer::read_stream`] saw.
#[derive(Debug, Clone, Copy)]
pub struct Streamed {
    pub lines: usize,
    pub bytes: u64,
    /// How much the daemon's resident memory grew while it sent the stream, at its peak.
    pub grown: u64,
}

impl TestCluster {
    /// CPU time used so far by the cluster's peers and by its IPFS nodes, in seconds.
    pub fn cpu_seconds(&self) -> (f64, f64) {
        let sum = |pids: Vec<Option<u32>>| pids.into_iter().flatten().filter_map(cpu_seconds).sum();
        (
            sum(self.peers.iter().map(|p| p.pid()).collect()),
            sum(self.ipfs.iter().map(|n| n.pid()).collect()),
        )
    }

    /// `voters` voting peers (the first starts the cluster) and `followers` followers.
    pub async fn start(voters: usize, followers: usize) -> Result<TestCluster> {
        let mut c = TestCluster::empty()?;
        c.add_members(voters, followers, |_| {}).await?;
        Ok(c)
    }

    /// Adds `voters` voters, then `followers` followers, with `edit` on each `service.json`.
    async fn add_members(
        &mut self,
        voters: usize,
        followers: usize,
        edit: impl Fn(&mut Value),
    ) -> Result<()> {
        for i in 0..voters + followers {
            let extra: &[&str] = if i >= voters { &["--follower"] } else { &[] };
            self.add_peer(extra, "10GB", &edit).await?;
        }
        Ok(())
    }

    /// `n` voters; peer `i` gets `storage(i)` as its IPFS StorageMax and `edit(i, cfg)` on
    /// its `service.json`.
    pub async fn start_custom(
        n: usize,
        storage: impl Fn(usize) -> String,
        edit: impl Fn(usize, &mut Value),
    ) -> Result<TestCluster> {
        let mut c = TestCluster::empty()?;
        for i in 0..n {
            c.add_peer(&[], &storage(i), |cfg| edit(i, cfg)).await?;
        }
        Ok(c)
    }

    fn empty() -> Result<TestCluster> {
        Ok(TestCluster {
            dir: tempfile::tempdir()?,
            ipfs: Vec::new(),
            peers: Vec::new(),
            secret: String::new(),
            hosts: Vec::new(),
            without_ipfs: false,
            relays: Vec::new(),
        })
    }

    /// [`TestCluster::start`] without IPFS nodes: only the consensus is at work (pins are
    /// committed and replicated; no IPFS node ever pins them).
    pub async fn start_without_ipfs(voters: usize, followers: usize) -> Result<TestCluster> {
        Self::start_consensus_only(&[], voters, followers, |_| {}).await
    }

    /// Voters and followers without IPFS nodes, one on each of `hosts` (on loopback when
    /// there are none), with `edit` on each `service.json`: the cluster of the randomized
    /// fault schedules.
    pub async fn start_consensus_only(
        hosts: &[Host],
        voters: usize,
        followers: usize,
        edit: impl Fn(&mut Value),
    ) -> Result<TestCluster> {
        let mut c = TestCluster::empty()?;
        c.without_ipfs = true;
        c.hosts = hosts.to_vec();
        c.add_members(voters, followers, edit).await?;
        Ok(c)
    }

    /// [`TestCluster::start_on_hosts`] with every link between peers slowed down: each peer
    /// is reached through a delaying relay (on the bridge) that it announces as its address.
    pub async fn start_on_slow_links(
        net: &Net,
        followers: usize,
        link: relay::Link,
        edit: impl Fn(usize, &mut Value),
    ) -> Result<TestCluster> {
        let mut relays = Vec::new();
        for h in &net.hosts {
            let listen = format!("{}:0", net.gateway).parse()?;
            let target = format!("{}:9096", h.ip).parse()?;
            relays.push(relay::Relay::start(listen, target, link).await?);
        }
        let announce: Vec<String> = relays
            .iter()
            .map(|r| format!("/ip4/{}/tcp/{}", r.addr.ip(), r.addr.port()))
            .collect();
        let mut c = TestCluster::start_on_hosts(&net.hosts, followers, |i, cfg| {
            cfg["cluster"]["announce_multiaddress"] = vec![announce[i].clone()].into();
            edit(i, cfg);
        })
        .await?;
        c.relays = relays;
        Ok(c)
    }

    /// A peer on each of `hosts`, each with the built-in IPFS node in its LAN mode: voters,
    /// then `followers` followers on the last hosts; `edit(i, cfg)` on each `service.json`.
    pub async fn start_on_hosts(
        hosts: &[Host],
        followers: usize,
        edit: impl Fn(usize, &mut Value),
    ) -> Result<TestCluster> {
        let mut c = TestCluster::empty()?;
        c.hosts = hosts.to_vec();
        let voters = hosts.len() - followers;
        for i in 0..hosts.len() {
            let extra: &[&str] = if i >= voters { &["--follower"] } else { &[] };
            c.add_peer(extra, "10GB", |cfg| edit(i, cfg)).await?;
        }
        Ok(c)
    }

    /// Adds a peer (with its IPFS node) that bootstraps to peer 0.
    pub async fn add_peer(
        &mut self,
        extra: &[&str],
        storage_max: &str,
        edit: impl FnOnce(&mut Value),
    ) -> Result<usize> {
        let i = self.peers.len();
        let dir = self.dir.path().join(format!("p{i}"));
        std::fs::create_dir_all(&dir)?;
        let host = self.hosts.get(i).cloned();
        let ipfs = match self.without_ipfs {
            true => None,
            false => Some(IpfsNode::start_on(&dir, storage_max, host.as_ref()).await?),
        };
        let api = ipfs
            .as_ref()
            .map_or_else(|| NO_IPFS.to_string(), IpfsNode::api_multiaddr);
        let secret = self.secret.clone();
        let mut peer = Peer::init_at(&dir.join("cluster"), &api, host.as_ref(), |cfg| {
            cluster_settings(cfg);
            cfg["cluster"]["peername"] = format!("peer{i}").into();
            if !secret.is_empty() {
                cfg["cluster"]["secret"] = secret.clone().into();
            }
            edit(cfg);
        })?;
        if i == 0 {
            let cfg: Value =
                serde_json::from_str(&std::fs::read_to_string(peer.dir.join("service.json"))?)?;
            self.secret = cfg["cluster"]["secret"].as_str().unwrap_or_default().into();
            peer.start(extra).await?;
        } else {
            let boot = self.peers[0].cluster_addr();
            let mut args = vec!["--bootstrap", boot.as_str()];
            args.extend_from_slice(extra);
            peer.start(&args).await?;
        }
        self.ipfs.extend(ipfs);
        self.peers.push(peer);
        Ok(i)
    }

    /// Starts a new peer (with its IPFS node) on `host` that bootstraps through peer `via`,
    /// without waiting for it to be ready; returns its index.
    pub async fn add_peer_on(
        &mut self,
        host: Option<&Host>,
        via: usize,
        edit: impl FnOnce(&mut Value),
    ) -> Result<usize> {
        let boot = self.peers[via].cluster_addr();
        self.add_peer_bootstrapping(host, &boot, &[], edit).await
    }

    /// Starts a new peer (with its IPFS node) on `host` that bootstraps through the cluster
    /// address `boot` (a peer's, or a relay's in front of it), with `env` set, without
    /// waiting for it to be ready; returns its index.
    pub async fn add_peer_bootstrapping(
        &mut self,
        host: Option<&Host>,
        boot: &str,
        env: &[(&str, &str)],
        edit: impl FnOnce(&mut Value),
    ) -> Result<usize> {
        let i = self.peers.len();
        let dir = self.dir.path().join(format!("p{i}"));
        std::fs::create_dir_all(&dir)?;
        let ipfs = match self.without_ipfs {
            true => None,
            false => Some(IpfsNode::start_on(&dir, "10GB", host).await?),
        };
        let api = ipfs
            .as_ref()
            .map_or_else(|| NO_IPFS.to_string(), IpfsNode::api_multiaddr);
        let secret = self.secret.clone();
        let mut peer = Peer::init_at(&dir.join("cluster"), &api, host, |cfg| {
            cluster_settings(cfg);
            cfg["cluster"]["peername"] = format!("peer{i}").into();
            cfg["cluster"]["secret"] = secret.into();
            edit(cfg);
        })?;
        peer.spawn_env(&["--bootstrap", boot], env)?;
        self.ipfs.extend(ipfs);
        self.peers.push(peer);
        Ok(i)
    }

    /// Index of the peer that `from` sees as leader.
    pub async fn leader_seen_by(&self, from: usize) -> Result<usize> {
        let ids: Vec<String> = self.peers.iter().map(Peer::id).collect();
        let client = self.peers[from].client();
        wait_for("a leader", DEADLINE, || async {
            let id = client.id().await.ok()?;
            ids.iter().position(|i| Some(i) == id.leader.as_ref())
        })
        .await
    }
}

/// CPU time (user + system) a process has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ, which Linux fixes at 100 for every architecture it reports /proc on.
    Some(ticks / 100.0)
}
