//! The desktop app's actions, free of any GUI toolkit so they are unit-tested headless: the
//! Tauri binary (`src/bin/ipfs-cluster-desktop`) only wraps each of these in a command and forwards
//! [`Desktop::snapshot`]s as events.
//!
//! The app drives the same peer as `ipfs-cluster-service`, in-process, in the same folder
//! (`$IPFS_CLUSTER_PATH` or `~/.ipfs-cluster`), so the CLI and the app share one peer.

pub mod add;
pub mod history;
pub mod invite;
mod ipfs_trust;
pub mod logfiles;
pub mod logs;
pub mod notify;
pub mod secrets;
pub mod settings;
pub mod tray;
pub mod ui_types;

use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

use crate::components::{IpfsConnector, FREESPACE, NUMPIN};
use crate::config::{self, Config, Identity, Multiaddrs};
use crate::error::{Error, ErrorKind, Result};
use crate::ipfsconn::IpfsHttp;
use crate::peer::{Peer, StartOptions};
use crate::types::{GlobalPinInfo, Id, Pin, PinOptions, StatusFilter, StatusSummary};
pub use invite::Invitation;
use secrets::SecretStore;

/// An error as the app shows it: what kind of problem it is (so the page can tell a bad CID
/// from a lost connection) and a sentence for the user. The one place errors become UI text.
#[derive(Serialize, Clone, Debug, PartialEq, ts_rs::TS)]
pub struct UiError {
    /// `bad_input`, `not_found`, `refused`, `unavailable`, `ipfs` or `internal`.
    #[ts(type = "'bad_input' | 'not_found' | 'refused' | 'unavailable' | 'ipfs' | 'internal'")]
    pub kind: &'static str,
    pub message: String,
}

impl UiError {
    /// What the system around the app could not do (no browser, no file manager): said as
    /// it is, without the cluster's "try again shortly".
    pub fn unavailable(message: impl Into<String>) -> UiError {
        UiError {
            kind: "unavailable",
            message: message.into(),
        }
    }
}

impl From<Error> for UiError {
    fn from(e: Error) -> UiError {
        let (kind, message) = match e.kind() {
            ErrorKind::BadInput => ("bad_input", e.to_string()),
            ErrorKind::NotFound => ("not_found", e.to_string()),
            ErrorKind::Refused => ("refused", format!("The cluster refused: {e}")),
            ErrorKind::Unavailable => (
                "unavailable",
                format!("The cluster cannot do this right now (try again shortly): {e}"),
            ),
            ErrorKind::IpfsFailed | ErrorKind::IpfsTimeout => {
                ("ipfs", format!("This computer's IPFS node failed: {e}"))
            }
            ErrorKind::Internal => ("internal", format!("Something went wrong: {e}")),
        };
        UiError { kind, message }
    }
}

impl std::fmt::Display for UiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Where this peer's IPFS node comes from, as the app tells the user.
#[derive(Serialize, Clone, Debug, PartialEq, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum IpfsSource {
    /// A daemon was already answering at the configured address.
    Running,
    /// The app started the local node it ships (`ipfs-local-node`).
    Embedded,
    /// Neither: pins will wait with errors until an IPFS node answers.
    Unavailable,
}

#[derive(Serialize, Clone, Debug, ts_rs::TS)]
pub struct IpfsStatus {
    pub source: IpfsSource,
    pub address: String,
    pub message: String,
}

/// What the window is to do as it opens, or at once (see [`Desktop::set_pending`]).
#[derive(Serialize, Clone, Debug, Default, PartialEq, ts_rs::TS)]
pub struct Pending {
    /// An invitation link the app was opened with: the Join form shows it.
    pub link: Option<String>,
    /// A view to show (`invite`, …).
    pub view: Option<String>,
    /// Files and folders to open in the Add view.
    pub add: Vec<String>,
}

/// Everything the overview shows.
#[derive(Serialize, Clone, Debug, ts_rs::TS)]
pub struct Snapshot {
    pub folder: String,
    pub configured: bool,
    pub running: bool,
    pub ready: bool,
    pub paused: bool,
    pub id: Option<Id>,
    pub ipfs: Option<IpfsStatus>,
    pub secret_location: String,
    pub rest_api: Option<String>,
    /// Pins in the pinset (when running).
    pub pins: Option<u64>,
    /// This peer's pins by status (when running), from counts kept as they change.
    pub summary: Option<StatusSummary>,
    /// Operations queued or running on this peer.
    pub queued: usize,
    /// Raft stopped for good on a storage error (a full disk): the peer must be restarted.
    pub consensus_stopped: bool,
    /// The peer is starting (its store opening, joining, its IPFS node coming up).
    pub starting: bool,
    /// The add running now, if any (a window opened meanwhile shows it).
    pub adding: Option<add::AddProgress>,
    /// Where the app's log files are (none: not written, the folder could not be made).
    pub log_folder: Option<String>,
    /// The last run did not end cleanly (a crash, or killed): what to tell, with the log's place.
    pub last_run: Option<String>,
    /// The template URL of the cluster this peer follows ("Follow a cluster"), if it does.
    pub following: Option<String>,
    /// The peer refuses pins and unpins (a follower of a CRDT cluster): the views say so
    /// instead of offering what would fail.
    pub read_only: bool,
    /// A CRDT peer that writes hears no other peer now: its pins, unpins and adds are taken
    /// here and reach the others when it meets them again ("will sync").
    pub will_sync: bool,
    /// The peer runs the CRDT consensus: removing a peer bans it from this peer's peerset
    /// (there is no membership to take it out of), and the Peers view says so.
    pub crdt: bool,
}

/// What the pins view asks for: pins whose name (`search_in` name) or CID starts with
/// `search` and whose status on some peer matches `filter` (IPFS Cluster's filter names;
/// empty: all), in `order`, after the cursor `after`, at most `limit` (default 50). A search
/// by name lists by name, a search by CID by CID, whatever `order` says.
#[derive(serde::Deserialize, Clone, Debug, Default, ts_rs::TS)]
#[serde(default)]
pub struct PinsQuery {
    pub search: String,
    pub search_in: SearchIn,
    pub filter: String,
    pub order: PinsOrder,
    pub after: Option<String>,
    pub limit: Option<usize>,
}

/// Where the pins view's search looks.
#[derive(serde::Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum SearchIn {
    #[default]
    Name,
    Cid,
}

/// How the pins view is ordered.
#[derive(serde::Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum PinsOrder {
    #[default]
    Cid,
    CidDesc,
    Name,
}

/// A page of the pins view; `next` is where the following page starts (none at the end),
/// a cursor to give back as it is.
#[derive(Serialize, Clone, Debug, ts_rs::TS)]
pub struct PinsPage {
    pub pins: Vec<GlobalPinInfo>,
    pub next: Option<String>,
}

/// Pins one page request with a status filter looks at, at most, before answering with
/// what it found (a filter over millions of pins answers in parts, each with where to go
/// on, each well under a second: each pin's status is asked of every peer).
const PAGE_SCAN: usize = 4_000;

#[derive(Serialize, Clone, Debug, ts_rs::TS)]
pub struct InvitationView {
    pub text: String,
    pub svg: String,
    /// The QR code's width in modules, quiet zone included, and the SVG path of its dark
    /// modules (see [`Invitation::qr_modules`]).
    pub qr_size: u32,
    pub qr_path: String,
    /// The addresses in it, best first, for `--bootstrap`.
    pub bootstrap: Vec<String>,
}

/// What the Settings view shows.
#[derive(Serialize, Clone, Debug, ts_rs::TS)]
pub struct SettingsView {
    pub settings: settings::Settings,
    /// The running peer's name (none while it is not running).
    pub peer_name_now: Option<String>,
    pub rest_api: Option<String>,
    /// The credential of the peer's APIs (REST, proxy, pinning service), for other tools.
    pub api_user: String,
    pub api_password: String,
    /// The app's folder (`service.json`, the peer's state).
    pub folder: String,
    /// This build's version (the release and the commit, see [`crate::types::full_version`]).
    pub version: String,
    /// The commit it was built from (empty when built without git).
    pub commit: String,
}

/// Metrics and alerts for the peers view.
#[derive(Serialize, Clone, Debug, ts_rs::TS)]
pub struct Health {
    pub freespace: Vec<crate::types::Metric>,
    pub numpin: Vec<crate::types::Metric>,
    /// Each peer's last `ping` (when it was last heard from: `received_at`).
    pub pings: Vec<crate::types::Metric>,
    pub alerts: Vec<crate::types::Alert>,
    /// The last round trip to each connected peer (libp2p's ping), in milliseconds.
    pub latency_ms: std::collections::BTreeMap<String, f64>,
}

/// The app's peer and its IPFS node.
pub struct Desktop {
    folder: PathBuf,
    secrets: Box<dyn SecretStore>,
    /// Applied to the defaults of a new peer's config (tests use free ports).
    defaults: Box<dyn Fn(&mut Config) + Send + Sync>,
    peer: RwLock<Option<Arc<Peer>>>,
    ipfs: Mutex<Option<IpfsStatus>>,
    ipfs_child: Mutex<Option<Child>>,
    /// See [`Desktop::secret_location`].
    secret_location: Mutex<Option<String>>,
    /// The add running now, if any: one at a time.
    adding: Mutex<Option<add::Running>>,
    /// What the overview's charts draw (see [`history`]).
    history: Mutex<history::History>,
    /// What the window is to do when it opens (see [`Desktop::set_pending`]).
    pending: Mutex<Pending>,
    /// Where the log files are written (see [`logfiles`]).
    log_folder: Mutex<Option<PathBuf>>,
    /// What to tell about a last run that did not end cleanly.
    last_run: Mutex<Option<String>>,
    /// The folder's lock while the app's peer runs, as the daemon takes it: neither
    /// `ipfs-cluster-service daemon` nor its `state` commands can then use the folder.
    lock: Mutex<Option<config::FolderLock>>,
    /// How many times the peer was started (notifications begin anew at each start).
    starts: std::sync::atomic::AtomicU64,
    /// Held by a start and by a stop for their whole course: a stop (Quit, SIGTERM) waits for
    /// a start under way, so that no half-started peer or IPFS node outlives the app.
    lifecycle: tokio::sync::Mutex<()>,
    /// A start is under way (the tray shows it).
    starting: std::sync::atomic::AtomicBool,
    /// A stop is waiting: a start under way stops waiting for its peer to be ready.
    stopping: std::sync::atomic::AtomicBool,
    /// How the running peer was configured: the template it follows, whether it is
    /// read-only (set at each start).
    mode: Mutex<Mode>,
}

/// See [`Desktop::mode`].
#[derive(Clone, Debug, Default)]
struct Mode {
    following: Option<String>,
    read_only: bool,
    /// A CRDT peer (one that is not read-only pins and adds without the others).
    crdt: bool,
}

/// The last template a following peer fetched, kept in its folder (owner-only: it holds
/// the cluster's secret) so that the peer starts offline too.
const TEMPLATE_CACHE: &str = "template.json";

/// How long a start waits for a followed cluster's template before it uses the one kept.
const TEMPLATE_WAIT: Duration = Duration::from_secs(15);

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::BadInput(format!("{}: {e}", path.display()))
}

/// A new desktop peer's config: IPFS Cluster's defaults, with repinning on (a desktop user
/// expects a cluster to heal itself).
fn desktop_defaults(cfg: &mut Config) {
    cfg.cluster.disable_repinning = false;
}

impl Desktop {
    pub fn new(folder: PathBuf) -> Desktop {
        let secrets = secrets::for_folder(&folder);
        Desktop::with(folder, secrets, Box::new(desktop_defaults))
    }

    pub fn with(
        folder: PathBuf,
        secrets: Box<dyn SecretStore>,
        defaults: Box<dyn Fn(&mut Config) + Send + Sync>,
    ) -> Desktop {
        Desktop {
            folder,
            secrets,
            defaults,
            peer: RwLock::new(None),
            ipfs: Mutex::new(None),
            ipfs_child: Mutex::new(None),
            secret_location: Mutex::new(None),
            adding: Mutex::new(None),
            history: Mutex::new(history::History::default()),
            pending: Mutex::new(Pending::default()),
            log_folder: Mutex::new(None),
            last_run: Mutex::new(None),
            lock: Mutex::new(None),
            starts: Default::default(),
            lifecycle: tokio::sync::Mutex::new(()),
            starting: Default::default(),
            stopping: Default::default(),
            mode: Default::default(),
        }
    }

    pub fn folder(&self) -> &Path {
        &self.folder
    }

    pub fn is_configured(&self) -> bool {
        self.folder.join(config::CONFIG_FILE).exists()
    }

    /// The running peer, or a clear error.
    pub async fn peer(&self) -> Result<Arc<Peer>> {
        self.peer
            .read()
            .await
            .clone()
            .ok_or_else(|| Error::Unavailable("the cluster peer is not running".into()))
    }

    pub async fn snapshot(&self) -> Snapshot {
        let peer = self.peer.read().await.clone();
        let id = match &peer {
            Some(p) => Some(p.cluster().id().await),
            None => None,
        };
        let summary = match &peer {
            Some(p) => p.cluster().status_summary().await.ok(),
            None => None,
        };
        let stopped = peer.as_ref().is_some_and(|p| p.stopped().is_cancelled());
        let mode = self.mode.lock().unwrap().clone();
        let alone = peer
            .as_ref()
            .is_some_and(|p| p.cluster().member_ids().len() <= 1);
        Snapshot {
            folder: self.folder.display().to_string(),
            configured: self.is_configured(),
            running: peer.is_some(),
            ready: peer.as_ref().is_some_and(|p| p.is_ready()) && !stopped,
            paused: peer.as_ref().is_some_and(|p| p.cluster().is_paused()),
            id,
            ipfs: self.ipfs.lock().unwrap().clone(),
            secret_location: self.secret_location(),
            pins: summary.as_ref().map(|s| s.pins),
            queued: peer.as_ref().map_or(0, |p| p.cluster().queue_len()),
            summary,
            consensus_stopped: stopped,
            starting: self.starting.load(std::sync::atomic::Ordering::Relaxed),
            rest_api: peer
                .and_then(|p| p.rest_addr())
                .map(|a| format!("http://{a}")),
            adding: self.add_progress(),
            log_folder: self
                .log_folder
                .lock()
                .unwrap()
                .as_ref()
                .map(|p| p.display().to_string()),
            last_run: self.last_run.lock().unwrap().clone(),
            following: mode.following,
            read_only: mode.read_only,
            will_sync: mode.crdt && !mode.read_only && alone,
            crdt: mode.crdt,
        }
    }

    /// Where this peer's secret is, as the overview tells the user: found out when the peer
    /// starts (the app's store, or `service.json` for a peer made by `ipfs-cluster-service
    /// init`), so the once-a-second snapshot never asks the keyring.
    fn secret_location(&self) -> String {
        self.secret_location
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| self.secrets.describe())
    }

    /// First run, "Start a new cluster": a new config and identity, the secret in the
    /// keyring, then the peer as the cluster's first voter.
    pub async fn new_cluster(&self) -> Result<Snapshot> {
        let mut cfg = Config::new_for_init();
        (self.defaults)(&mut cfg);
        let (cfg, _) = config::init_keeping_secret_out(&self.folder, false, cfg)?;
        self.secrets.set(&cfg.cluster.secret.to_string())?;
        self.start(StartOptions::default()).await
    }

    /// First run, "Join a cluster": as a follower unless `voter`.
    pub async fn join(
        &self,
        invitation: &str,
        secret: Option<&str>,
        voter: bool,
    ) -> Result<Snapshot> {
        let inv = Invitation::parse(invitation, secret)?;
        let bootstrap = inv
            .bootstrap
            .iter()
            .map(|b| {
                b.parse()
                    .map_err(|e| Error::BadInput(format!("bootstrap address {b:?}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut cfg = Config::new_for_init();
        (self.defaults)(&mut cfg);
        config::init_keeping_secret_out(&self.folder, false, cfg)?;
        self.secrets.set(&inv.secret)?;
        let started = self
            .start(StartOptions {
                bootstrap,
                follower: !voter,
                ..Default::default()
            })
            .await;
        if started.is_err() {
            // A failed first join leaves nothing behind, so the user can simply try again.
            for f in [config::CONFIG_FILE, config::IDENTITY_FILE] {
                let _ = std::fs::remove_file(self.folder.join(f));
            }
        }
        started
    }

    /// First run, "Follow a cluster": the template at `url` (an http(s) URL its owners
    /// publish, as for `ipfs-cluster-follow`) is fetched and checked before anything is
    /// written; then a new identity, a `service.json` naming the template and the template
    /// kept, and the peer as a follower, which reads the pinset and cannot change it. A
    /// folder that holds a peer already is refused; when the first start fails, everything
    /// the attempt made in the folder is removed.
    pub async fn follow(&self, url: &str) -> Result<Snapshot> {
        let url = url.trim();
        if self.is_configured() || self.folder.join(config::IDENTITY_FILE).exists() {
            return Err(Error::BadInput(format!(
                "{} holds a peer already: this computer follows a cluster from a new folder",
                self.folder.display()
            )));
        }
        let template = config::template::fetch(url).await?;
        config::template::follower_config(url, template.clone(), &self.local_sections(), &[])?;
        config::create_private_dir(&self.folder).map_err(|e| io_error(&self.folder, e))?;
        let before: std::collections::BTreeSet<_> = std::fs::read_dir(&self.folder)
            .map_err(|e| io_error(&self.folder, e))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        let made = async {
            self.keep_template(url, &template)?;
            config::template::write_source(&self.folder, url)?;
            let id_path = self.folder.join(config::IDENTITY_FILE);
            Identity::generate()
                .save(&id_path)
                .map_err(|e| io_error(&id_path, e))?;
            self.start(StartOptions {
                follower: true,
                ..Default::default()
            })
            .await
        };
        let started = made.await;
        if started.is_err() {
            // The attempt's files and folders (identity, state, peerstore, credential, …).
            for entry in std::fs::read_dir(&self.folder)
                .into_iter()
                .flatten()
                .flatten()
            {
                if before.contains(&entry.file_name()) {
                    continue;
                }
                let path = entry.path();
                let _ = match path.is_dir() {
                    true => std::fs::remove_dir_all(&path),
                    false => std::fs::remove_file(&path),
                };
            }
        }
        started
    }

    /// Keeps the template of `url` (checked) in the folder, for starts without it.
    fn keep_template(
        &self,
        url: &str,
        template: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        let cache = self.folder.join(TEMPLATE_CACHE);
        let kept = serde_json::json!({ "url": url, "template": template });
        config::write_private(&cache, kept.to_string().as_bytes()).map_err(|e| io_error(&cache, e))
    }

    /// The template kept for `url`, if any.
    fn kept_template(&self, url: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
        let bytes = std::fs::read(self.folder.join(TEMPLATE_CACHE)).ok()?;
        let mut kept: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        if kept["url"].as_str() != Some(url) {
            return None;
        }
        match kept["template"].take() {
            serde_json::Value::Object(t) => Some(t),
            _ => None,
        }
    }

    /// What only concerns this computer, laid over a followed cluster's template: where
    /// its APIs listen, its IPFS node, its cluster address (a template could otherwise
    /// open this computer's API to the network).
    fn local_sections(&self) -> Vec<(&'static str, serde_json::Value)> {
        let mut own = Config::default();
        (self.defaults)(&mut own);
        let own = serde_json::to_value(own).expect("config serializes");
        ["/api", "/ipfs_connector", "/cluster/listen_multiaddress"]
            .into_iter()
            .map(|p| (p, own.pointer(p).cloned().expect("a default section")))
            .collect()
    }

    /// The configuration of a following peer: its template fetched anew (within
    /// [`TEMPLATE_WAIT`]; kept once checked), or, when it cannot be fetched or is refused,
    /// the one kept from the last start (a laptop starts offline, and a bad update of the
    /// template does not stop it).
    async fn followed_config(&self, url: &str, env: &[(String, String)]) -> Result<Config> {
        use config::template::{fetch, follower_config};
        let local = self.local_sections();
        let fresh = match tokio::time::timeout(TEMPLATE_WAIT, fetch(url)).await {
            Ok(Ok(t)) => follower_config(url, t.clone(), &local, env).map(|c| (c, t)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(config::ConfigError::Source {
                url: url.to_string(),
                message: format!("no answer within {} s", TEMPLATE_WAIT.as_secs()),
            }),
        };
        match fresh {
            Ok((cfg, template)) => {
                self.keep_template(url, &template)?;
                Ok(cfg)
            }
            Err(e) => match self.kept_template(url) {
                Some(kept) => {
                    tracing::warn!("{e}: starting with the template kept from the last start");
                    Ok(follower_config(url, kept, &local, env)?)
                }
                None => Err(e.into()),
            },
        }
    }

    /// Starts the configured peer (every later launch of the app).
    pub async fn start(&self, opts: StartOptions) -> Result<Snapshot> {
        use std::sync::atomic::Ordering;
        let _turn = self.lifecycle.lock().await;
        if self.peer.read().await.is_some() || self.stopping.load(Ordering::SeqCst) {
            return Ok(self.snapshot().await);
        }
        self.starting.store(true, Ordering::SeqCst);
        let started = self.start_inner(opts).await;
        self.starting.store(false, Ordering::SeqCst);
        started?;
        Ok(self.snapshot().await)
    }

    async fn start_inner(&self, opts: StartOptions) -> Result<()> {
        // A peer made by `ipfs-cluster-service init` has its secret in service.json; one
        // made by the app has it in the keyring.
        // `CLUSTER_*` overrides work for the app as for the daemon.
        let lock = config::lock_folder(&self.folder)?;
        let mut env: Vec<(String, String)> = std::env::vars().collect();
        let following = config::template::source_of(&self.folder)?;
        let secret = match following {
            Some(_) => None,
            None => self.secrets.get()?,
        };
        let location = match (&following, secret) {
            (Some(url), _) => format!(
                "in the template of the cluster this computer follows ({url}), kept in {}",
                self.folder.join(TEMPLATE_CACHE).display()
            ),
            (None, Some(secret)) => {
                env.push(("CLUSTER_SECRET".to_string(), secret));
                self.secrets.describe()
            }
            (None, None) => format!(
                "in {} (written by ipfs-cluster-service init; readable by you only)",
                self.folder.join(config::CONFIG_FILE).display()
            ),
        };
        *self.secret_location.lock().unwrap() = Some(location);
        let mut cfg = match &following {
            Some(url) => self.followed_config(url, &env).await?,
            None => Config::load_with_env(&self.folder, &env)?,
        };
        let read_only = cfg.consensus.crdt_mode && (cfg.cluster.follower_mode || opts.follower);
        let mode = Mode {
            following,
            read_only,
            crdt: cfg.consensus.crdt_mode,
        };
        // Its own credential on every API its peer serves, unless the config sets some (see
        // config::ApiCredential): another user of the machine may use none of them.
        let cred = config::ApiCredential::load_or_create(&self.folder)
            .map_err(|e| io_error(&self.folder.join(config::API_CREDENTIAL_FILE), e))?;
        let own = || Some([(cred.user.clone(), cred.password.clone())].into());
        for api in [&mut cfg.api.restapi.0, &mut cfg.api.pinsvcapi.0] {
            if api
                .basic_auth_credentials
                .as_ref()
                .is_none_or(|c| c.is_empty())
            {
                api.basic_auth_credentials = own();
            }
        }
        cfg.api.ipfsproxy.basic_auth_credentials = own();
        // The name chosen in Settings, laid over service.json's (never rewritten).
        let chosen = settings::Settings::load_saved(&self.folder)?.peer_name;
        if !chosen.trim().is_empty() {
            cfg.cluster.peername = chosen.trim().to_string();
        }
        let identity = Identity::load(&self.folder.join(config::IDENTITY_FILE))?;
        self.ensure_ipfs(&cfg).await?;
        let peer = Peer::start(self.folder.clone(), cfg, identity, opts).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !peer.is_ready()
            && Instant::now() < deadline
            && !self.stopping.load(std::sync::atomic::Ordering::SeqCst)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.starts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *self.mode.lock().unwrap() = mode;
        *self.peer.write().await = Some(Arc::new(peer));
        *self.lock.lock().unwrap() = Some(lock);
        Ok(())
    }

    /// Stops the peer and the IPFS node the app started (Quit), after a start under way
    /// (which stops waiting for its peer to be ready).
    pub async fn stop(&self) {
        use std::sync::atomic::Ordering;
        self.stopping.store(true, Ordering::SeqCst);
        let _turn = self.lifecycle.lock().await;
        self.stopping.store(false, Ordering::SeqCst);
        if let Some(p) = self.peer.write().await.take() {
            p.shutdown().await;
        }
        self.lock.lock().unwrap().take();
        if let Some(mut c) = self.ipfs_child.lock().unwrap().take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// Uses the IPFS daemon at the configured address if one answers and is this user's
    /// (see [`ipfs_trust`]), else starts the local node shipped with the app there. A daemon
    /// that answers but is not this user's is an error: the peer does not start, so that no
    /// file or pin goes to it.
    async fn ensure_ipfs(&self, cfg: &Config) -> Result<()> {
        let ipfs_cfg = &cfg.ipfs_connector.ipfshttp;
        let first = ipfs_cfg.node_multiaddress.first();
        let address = first.map(|a| a.to_string()).unwrap_or_default();
        let sock = first.and_then(ipfs_trust::socket_of);
        let mut refused = None;
        let status = match IpfsHttp::new(ipfs_cfg) {
            Err(e) => IpfsStatus {
                source: IpfsSource::Unavailable,
                address,
                message: e.to_string(),
            },
            Ok(client) => match client.id().await {
                Ok(id) => match ipfs_trust::refusal(&self.folder, sock, &id.id) {
                    None => IpfsStatus {
                        source: IpfsSource::Running,
                        message: format!("using the IPFS daemon already running at {address}"),
                        address,
                    },
                    Some(why) => {
                        refused = Some(why.clone());
                        IpfsStatus {
                            source: IpfsSource::Unavailable,
                            message: why,
                            address,
                        }
                    }
                },
                Err(_) => match self.start_local_node(&address, sock, &client).await {
                    Ok(()) => IpfsStatus {
                        source: IpfsSource::Embedded,
                        message: format!(
                            "no IPFS daemon was running: started the built-in IPFS node at {address}"
                        ),
                        address,
                    },
                    Err(e) => {
                        if matches!(e, Error::Refused(_)) {
                            refused = Some(e.to_string());
                        }
                        IpfsStatus {
                            source: IpfsSource::Unavailable,
                            message: format!("no IPFS daemon at {address}, and the built-in node did not start: {e}"),
                            address,
                        }
                    }
                },
            },
        };
        tracing::info!("{}", status.message);
        *self.ipfs.lock().unwrap() = Some(status);
        match refused {
            Some(why) => Err(Error::Refused(why)),
            None => Ok(()),
        }
    }

    async fn start_local_node(
        &self,
        address: &str,
        sock: Option<std::net::SocketAddr>,
        client: &IpfsHttp,
    ) -> Result<()> {
        let exe = std::env::current_exe().map_err(|e| Error::Internal(e.to_string()))?;
        let bin = exe
            .parent()
            .map(|d| d.join("ipfs-local-node"))
            .filter(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("ipfs-local-node"));
        let log_path = self.folder.join("ipfs-local-node.log");
        let log = std::fs::File::create(&log_path).map_err(|e| io_error(&log_path, e))?;
        let network = settings::Settings::load(&self.folder)?.ipfs_network;
        let child = Command::new(&bin)
            .args(network.node_args())
            .arg("--repo")
            .arg(self.folder.join("ipfs"))
            .arg("--api")
            .arg(address)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| io_error(&log_path, e))?)
            .stderr(log)
            .spawn()
            .map_err(|e| Error::Unavailable(format!("{}: {e}", bin.display())))?;
        *self.ipfs_child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(id) = client.id().await {
                // Whoever took the port first answers: the built-in node, or another user's.
                return match ipfs_trust::refusal(&self.folder, sock, &id.id) {
                    None => Ok(()),
                    Some(why) => Err(Error::Refused(why)),
                };
            }
            if let Some(Ok(Some(status))) = self
                .ipfs_child
                .lock()
                .unwrap()
                .as_mut()
                .map(Child::try_wait)
            {
                return Err(Error::Unavailable(format!(
                    "it exited with {status} (see ipfs-local-node.log)"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(Error::Unavailable("it did not answer within 30s".into()))
    }

    /// This peer's invitation: its cluster addresses and the secret.
    pub async fn invitation(&self) -> Result<InvitationView> {
        let peer = self.peer().await?;
        if let Some(url) = self.mode.lock().unwrap().following.clone() {
            return Err(Error::Refused(format!(
                "this computer follows a cluster: it invites nobody (others follow it by its \
                 follow link, {url})"
            )));
        }
        let secret = match self.secrets.get()? {
            Some(s) => s,
            None => Config::load(&self.folder)?.cluster.secret.to_string(),
        };
        let inv = Invitation::to_peer(peer.cluster_addrs(), secret);
        let (qr_size, qr_path) = inv.qr_modules();
        Ok(InvitationView {
            text: inv.to_text(),
            svg: inv.qr_svg(),
            qr_size,
            qr_path,
            bootstrap: inv.bootstrap.clone(),
        })
    }

    pub async fn peers(&self) -> Result<Vec<Id>> {
        Ok(self.peer().await?.cluster().peers().await)
    }

    /// What the peers view shows beside each peer: its latest metrics, and recent alerts.
    pub async fn health(&self) -> Result<Health> {
        let peer = self.peer().await?;
        let c = peer.cluster();
        Ok(Health {
            freespace: c.metrics(FREESPACE),
            numpin: c.metrics(NUMPIN),
            pings: c.metrics(crate::components::PING),
            alerts: c.alerts(),
            latency_ms: c
                .latencies()
                .into_iter()
                .map(|(p, d)| (p, d.as_secs_f64() * 1000.0))
                .collect(),
        })
    }

    /// Who reaches whom (`/health/graph`): the peers view's picture.
    pub async fn graph(&self) -> Result<crate::types::ConnectGraph> {
        Ok(self.peer().await?.cluster().connect_graph().await)
    }

    pub async fn remove_peer(&self, id: &str) -> Result<()> {
        self.peer().await?.cluster().peer_rm(id).await
    }

    /// Changes to this peer's pins and operations, as the tracker tells them (coalesced: see
    /// [`crate::components::PinTracker::changes`]); none while the peer is not running.
    pub async fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.peer.read().await.as_ref()?.cluster().changes())
    }

    /// This peer's pins by status (O(1): counts kept as they change).
    pub async fn summary(&self) -> Result<StatusSummary> {
        self.peer().await?.cluster().status_summary().await
    }

    /// One page of the pins view, searched, ordered and filtered on the peer: the pinset is
    /// read through its indexes ([`crate::components::Pinset::browse`]) and only the page's
    /// pins are asked of the cluster, so the view costs the same for ten pins or ten million.
    /// A status filter reads pages until the page is full or [`PAGE_SCAN`] pins were looked
    /// at, and answers with what it found and where to go on.
    pub async fn pins_page(&self, q: PinsQuery) -> Result<PinsPage> {
        use crate::components::{Browse, PinMatch, PinOrder};
        let peer = self.peer().await?;
        let c = peer.cluster();
        let filter: StatusFilter = q.filter.parse().map_err(Error::BadInput)?;
        let search = q.search.trim();
        let limit = q.limit.unwrap_or(50).clamp(1, 500);
        let matching = match (search.is_empty(), q.search_in) {
            (true, _) => PinMatch::All,
            (false, SearchIn::Name) => PinMatch::NamePrefix(search.to_string()),
            (false, SearchIn::Cid) => PinMatch::CidPrefix(search.to_string()),
        };
        let order = match q.order {
            PinsOrder::Cid => PinOrder::Cid,
            PinsOrder::CidDesc => PinOrder::CidDesc,
            PinsOrder::Name => PinOrder::Name,
        };
        let pinset = c.pinset();
        let filter_all = q.filter.trim().is_empty();
        let (mut out, mut scanned) = (Vec::new(), 0);
        let mut after = q.after;
        loop {
            let page = pinset
                .browse(&Browse {
                    order,
                    matching: matching.clone(),
                    after: after.clone(),
                    limit: limit - out.len(),
                })
                .await?;
            // A page that found nothing still looked at rows (the store bounds each).
            scanned += page.looked.max(1);
            let cids: Vec<_> = page.pins.iter().map(|p| p.cid).collect();
            // (No CIDs would ask for every pin's status.) The statuses come in the pinset's
            // order: put back in the page's.
            if !cids.is_empty() {
                let mut found: std::collections::HashMap<_, _> = c
                    .status_all(&filter, &cids)
                    .map(|g| (g.cid, g))
                    .collect()
                    .await;
                out.extend(cids.iter().filter_map(|cid| found.remove(cid)));
            }
            after = page.next;
            // Without a filter, one look: a short page (the store stopped looking) is
            // answered as it is, with where to go on.
            if after.is_none() || out.len() >= limit || scanned >= PAGE_SCAN || filter_all {
                break;
            }
        }
        Ok(PinsPage {
            pins: out,
            next: after,
        })
    }

    /// Pins a CID, an `ipfs://` link or an `/ipfs/…` path (what a user drops or pastes).
    pub async fn pin(&self, what: &str, name: &str, replication: Option<i32>) -> Result<Pin> {
        self.pin_inner(what, name, replication).await
    }

    async fn pin_inner(&self, what: &str, name: &str, replication: Option<i32>) -> Result<Pin> {
        let peer = self.peer().await?;
        let what = what.trim();
        let what = what
            .strip_prefix("ipfs://")
            .map(|rest| rest.trim_end_matches('/'))
            .unwrap_or(what);
        let (r_min, r_max) = self.copies(replication)?.map(|r| (r, r)).unwrap_or((0, 0));
        let opts = PinOptions {
            name: name.to_string(),
            replication_factor_min: r_min,
            replication_factor_max: r_max,
            ..Default::default()
        };
        let c = peer.cluster();
        if what.starts_with('/') {
            c.pin_path(what, opts).await
        } else if what.contains('/') {
            c.pin_path(&format!("/ipfs/{what}"), opts).await
        } else {
            c.pin(parse_cid(what)?, opts).await
        }
    }

    pub async fn unpin(&self, cid: &str) -> Result<Pin> {
        self.peer().await?.cluster().unpin(parse_cid(cid)?).await
    }

    /// Pins `pin` again with every option it had (an undone unpin): copies, allocations,
    /// expiry, mode and metadata as they were.
    pub async fn repin(&self, pin: Pin) -> Result<Pin> {
        self.peer().await?.cluster().pin(pin.cid, pin.options).await
    }

    /// A pin as the pinset holds it (its options: copies, expiry, mode), for its details.
    pub async fn pin_info(&self, cid: &str) -> Result<Pin> {
        let cid = parse_cid(cid)?;
        self.peer().await?.cluster().allocation(&cid).await
    }

    /// The pin's address on this computer's IPFS gateway (`http://127.0.0.1:8080/ipfs/<cid>`).
    pub async fn gateway_link(&self, cid: &str) -> Result<String> {
        let cid = parse_cid(cid)?;
        match self.peer().await?.cluster().ipfs_gateway().await? {
            Some(base) => Ok(format!("{base}/ipfs/{cid}")),
            None => Err(Error::Unavailable(
                "this computer's IPFS node has no gateway (its config's Addresses.Gateway is empty)"
                    .into(),
            )),
        }
    }

    pub async fn recover(&self, cid: &str) -> Result<GlobalPinInfo> {
        let cid = parse_cid(cid)?;
        Ok(self.peer().await?.cluster().recover(&cid).await)
    }

    /// Adds files and folders from disk (what the user dropped or picked) as one DAG, then
    /// pins its root named `name` (the item's own name when empty) on `replication` peers
    /// (the cluster's default when none). See [`add`]: the bytes stream from disk into IPFS,
    /// so memory stays flat whatever the size; [`Desktop::add_progress`] follows it and
    /// [`Desktop::cancel_add`] stops it, at any point before the pin, leaving nothing pinned.
    /// One add at a time.
    pub async fn add(
        &self,
        paths: &[PathBuf],
        name: &str,
        replication: Option<i32>,
    ) -> Result<add::Added> {
        let replication = self.copies(replication)?;
        let peer = self.peer().await?;
        let cluster = peer.cluster();
        cluster.check_ready()?;
        let counters = Arc::new(add::Counters::default());
        let cancel = CancellationToken::new();
        {
            let mut adding = self.adding.lock().unwrap();
            if adding.is_some() {
                return Err(Error::Unavailable(
                    "another add is running: wait for it to finish, or cancel it".into(),
                ));
            }
            *adding = Some(add::Running {
                name: name.trim().to_string(),
                counters: counters.clone(),
                cancel: cancel.clone(),
            });
        }
        // However the add ends (error, cancel, the caller gone), the next one may start.
        struct Done<'a>(&'a Mutex<Option<add::Running>>);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                *self.0.lock().unwrap() = None;
            }
        }
        let _done = Done(&self.adding);
        let walking = (paths.to_vec(), cancel.clone());
        let plan = tokio::task::spawn_blocking(move || add::plan(&walking.0, &walking.1))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        counters.set_totals(&plan);
        let name = match name.trim() {
            "" => plan.default_name.clone(),
            n => n.to_string(),
        };
        if let Some(running) = self.adding.lock().unwrap().as_mut() {
            running.name = name.clone();
        }
        let (skipped_hidden, skipped_links) = (plan.skipped_hidden, plan.skipped_links);
        let (r_min, r_max) = self.copies(replication)?.map(|r| (r, r)).unwrap_or((0, 0));
        let opts = PinOptions {
            name,
            replication_factor_min: r_min,
            replication_factor_max: r_max,
            ..Default::default()
        };
        // Into IPFS only: the pin is made below, once a cancel can no longer come too late
        // (the built-in node builds the DAG after the last byte, which takes a while).
        let req = crate::components::AddRequest {
            pin: opts.clone(),
            ipfs: crate::components::AddOptions {
                wrap_with_directory: plan.wrap,
                ..Default::default()
            },
            no_pin: true,
            format: crate::components::AddFormat::Unixfs,
        };
        let boundary = add::boundary();
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let added = async {
            let body = add::body(plan, boundary, counters, cancel.clone());
            let mut out = cluster.add_stream(&content_type, body, req).await?;
            let mut root = None;
            while let Some(node) = out.next().await {
                root = Some(node?);
            }
            root.ok_or_else(|| Error::Internal("IPFS reported nothing added".into()))
        }
        .await;
        if cancel.is_cancelled() {
            return Err(add::cancelled());
        }
        let pin = cluster.pin(added?.cid, opts).await?;
        Ok(add::Added {
            pin,
            skipped_hidden,
            skipped_links,
        })
    }

    /// Takes a sample for the overview's charts (the app calls it every
    /// [`history::HOUR_STEP`] seconds, window open or not); the sample, for the window.
    pub async fn sample(&self) -> Result<history::Sample> {
        let peer = self.peer().await?;
        let c = peer.cluster();
        let s = c.status_summary().await?;
        let me = &s.peer;
        let frees: Vec<(String, u64)> = c
            .metrics(FREESPACE)
            .into_iter()
            .filter(|m| m.is_current())
            .filter_map(|m| Some((m.peer.clone(), m.value.parse().ok()?)))
            .collect();
        let free = frees.iter().find(|(p, _)| p == me).map(|(_, f)| *f);
        // (The built-in node measures its blockstore at most every 15 s, whoever asks.)
        let used = c.repo_stat().await.ok().map(|r| r.repo_size);
        let ipfs = c
            .ipfs_bandwidth()
            .await
            .ok()
            .map(|b| (b.total_in, b.total_out));
        let totals = c
            .bandwidth()
            .values()
            .fold((0i64, 0i64), |(i, o), b| (i + b.total_in, o + b.total_out));
        let sample = history::Sample {
            at: chrono::Utc::now().timestamp(),
            pinned: s.pinned,
            in_progress: s.pin_queued + s.pinning + s.unpin_queued + s.unpinning,
            errors: s.pin_error + s.unpin_error + s.cluster_error,
            remote: s.remote,
            bytes_in: 0.0,
            bytes_out: 0.0,
            free,
            used,
            ipfs_in: None,
            ipfs_out: None,
            peers_free: history::least_free(frees),
        };
        let mut h = self.history.lock().unwrap();
        h.push(sample, totals, ipfs);
        Ok(h.last().unwrap_or_default())
    }

    /// Where the log files are; `unclean`: the last run did not end cleanly.
    pub fn set_log_folder(&self, folder: PathBuf, unclean: bool) {
        if unclean {
            *self.last_run.lock().unwrap() = Some(format!(
                "The app did not shut down cleanly last time (it crashed or was stopped by force). \
                 Its log is in {}: attach it to a bug report.",
                folder.display()
            ));
        }
        *self.log_folder.lock().unwrap() = Some(folder);
    }

    pub fn log_folder(&self) -> Option<PathBuf> {
        self.log_folder.lock().unwrap().clone()
    }

    /// Keeps something for the window to do when it opens, or at once if it is open (the
    /// latest of each kind wins): an invitation link the app was opened with, a view the tray
    /// asked for, files chosen from the tray.
    pub fn set_pending(&self, change: impl FnOnce(&mut Pending)) {
        change(&mut self.pending.lock().unwrap());
    }

    /// What the window is to do, once: it asks when it opens, and when told (`pending`).
    pub fn take_pending(&self) -> Pending {
        std::mem::take(&mut self.pending.lock().unwrap())
    }

    /// The samples of the last hour and day.
    pub fn charts(&self) -> history::Charts {
        self.history.lock().unwrap().charts()
    }

    /// How far the running add has gone, if one runs.
    pub fn add_progress(&self) -> Option<add::AddProgress> {
        self.adding.lock().unwrap().as_ref().map(|a| a.progress())
    }

    /// Stops the running add; whether one was running.
    pub fn cancel_add(&self) -> bool {
        match self.adding.lock().unwrap().as_ref() {
            Some(a) => {
                a.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// What the notifications are made from (none while the peer is not running): this
    /// peer's errors (O(1), the tracker's counts) and which members it hears from.
    pub async fn seen(&self) -> Option<notify::Seen> {
        let peer = self.peer.read().await.clone()?;
        let c = peer.cluster();
        let s = c.status_summary().await.ok()?;
        let me = c.me().peer_id.clone();
        Some(notify::Seen {
            instance: self.starts.load(std::sync::atomic::Ordering::Relaxed),
            errors: s.pin_error + s.unpin_error,
            in_progress: s.pin_queued + s.pinning + s.unpin_queued + s.unpinning,
            members: c.member_ids().into_iter().filter(|p| *p != me).collect(),
            online: c.online_peers(),
        })
    }

    /// The copies to ask for: those chosen, else the default of Settings.
    fn copies(&self, chosen: Option<i32>) -> Result<Option<i32>> {
        Ok(chosen.or(settings::Settings::load_saved(&self.folder)?.default_copies))
    }

    /// The Settings view: the app's settings, and what the user needs to reach the peer
    /// from other tools (its REST API and credential).
    pub async fn settings(&self) -> Result<SettingsView> {
        let settings = settings::Settings::load_saved(&self.folder)?;
        let peer = self.peer.read().await.clone();
        let cred = config::ApiCredential::load_or_create(&self.folder)
            .map_err(|e| io_error(&self.folder.join(config::API_CREDENTIAL_FILE), e))?;
        Ok(SettingsView {
            peer_name_now: peer.as_ref().map(|p| p.cluster().me().peername.clone()),
            settings,
            rest_api: peer
                .as_ref()
                .and_then(|p| p.rest_addr())
                .map(|a| format!("http://{a}")),
            api_user: cred.user,
            api_password: cred.password,
            folder: self.folder.display().to_string(),
            version: crate::types::full_version().to_string(),
            commit: crate::types::COMMIT.to_string(),
        })
    }

    /// Saves the app's settings once checked (nothing is saved otherwise). The peer's name
    /// applies when it next starts ([`Desktop::restart`]).
    pub async fn save_settings(&self, s: settings::Settings) -> Result<SettingsView> {
        s.check()?;
        s.save(&self.folder)?;
        self.settings().await
    }

    /// Stops the peer and starts it again, with the settings as saved.
    pub async fn restart(&self) -> Result<Snapshot> {
        if self.peer.read().await.is_none() {
            return Err(Error::Unavailable("the peer is not running".into()));
        }
        self.stop().await;
        self.start(StartOptions::default()).await
    }

    /// Whether the built-in IPFS node also joins the public IPFS network (else it exchanges
    /// blocks with the cluster's nodes only). Takes effect when the node next starts.
    pub fn set_public_network(&self, public: bool) -> Result<bool> {
        let mut s = settings::Settings::load_saved(&self.folder)?;
        s.ipfs_network = if public {
            settings::IpfsNetwork::Public
        } else {
            settings::IpfsNetwork::Lan
        };
        s.save(&self.folder)?;
        Ok(public)
    }

    pub fn public_network(&self) -> Result<bool> {
        Ok(settings::Settings::load(&self.folder)?.ipfs_network == settings::IpfsNetwork::Public)
    }

    pub async fn set_paused(&self, paused: bool) -> Result<()> {
        self.peer().await?.cluster().set_paused(paused);
        Ok(())
    }
}

fn parse_cid(text: &str) -> Result<crate::types::Cid> {
    text.parse().map_err(Error::BadInput)
}

/// Config defaults for tests: every port picked by the OS, all on loopback.
pub fn loopback_defaults(ipfs: Multiaddrs) -> impl Fn(&mut Config) + Send + Sync {
    move |cfg: &mut Config| {
        cfg.api.restapi.0.http_listen_multiaddress = Multiaddrs::one("/ip4/127.0.0.1/tcp/0");
        cfg.api.ipfsproxy.listen_multiaddress = Multiaddrs::one("/ip4/127.0.0.1/tcp/0");
        cfg.api.pinsvcapi.0.http_listen_multiaddress = Multiaddrs::one("/ip4/127.0.0.1/tcp/0");
        cfg.cluster.listen_multiaddress = Multiaddrs::one("/ip4/127.0.0.1/tcp/0");
        cfg.ipfs_connector.ipfshttp.node_multiaddress = ipfs.clone();
        cfg.api.ipfsproxy.node_multiaddress = ipfs.clone();
        cfg.ipfs_connector.ipfshttp.connect_swarms_delay = crate::config::GoDuration::secs(3600);
    }
}

#[cfg(test)]
mod tests;
