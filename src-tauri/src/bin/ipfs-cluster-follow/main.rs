//! `ipfs-cluster-follow`: runs follower peers of CRDT clusters, as IPFS Cluster's command of
//! that name does (its 1.1 source is the reference for every message and file).
//!
//! Each followed cluster has a folder `<base>/<name>` (base: `--config`, else
//! `$IPFS_CLUSTER_PATH`, else `~/.ipfs-cluster-follow`), owner-only, holding `identity.json`
//! (made by `init`), `service.json` (`{"source": "<template URL>"}` only), the state and the
//! peerstore. `run` fetches the template at every start (the cluster's owners may change it),
//! makes the peer a follower (it never writes the pinset), and serves the REST API on the
//! unix socket `<folder>/api-socket` only (no IPFS proxy, Pinning Service API or metrics):
//! `list` and `info` ask the running peer through it, and `list` reads the state on disk when
//! the peer is not running.
//!
//! Decisions beyond IPFS Cluster's: a DNSLink name given to `init` becomes
//! `http://<gateway>/ipns/<name>` (IPFS Cluster forgets the scheme of its default gateway,
//! and the URL it stores fails); a template that is not a CRDT cluster's, or that names a
//! `source` itself, is refused with a message saying so; the template is read up to 4 MiB
//! within a minute; an unknown command is an error rather than `info`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{CommandFactory, Parser, Subcommand};
use futures::StreamExt;
use ipfs_cluster::client::{Client, ClientError};
use ipfs_cluster::config::{self, template, Config, Identity, IpfsHttpConfig};
use ipfs_cluster::peer::{Peer, StartOptions};

const PROGRAM: &str = "ipfs-cluster-follow";
const DEFAULT_FOLDER: &str = ".ipfs-cluster-follow";
const DEFAULT_GATEWAY: &str = "127.0.0.1:8080";
const SOCKET: &str = "api-socket";
/// How long `run` waits for IPFS before giving up, as IPFS Cluster's.
const IPFS_WAIT: Duration = Duration::from_secs(120);

#[derive(Parser)]
#[command(
    name = PROGRAM,
    version = ipfs_cluster::types::full_version(),
    about = "IPFS Cluster Follower: runs follower peers of collaborative (CRDT) clusters",
    override_usage = "ipfs-cluster-follow [--config FOLDER] [<clusterName> [info|init <URL>|run|list]]",
    after_help = "EXAMPLES:\n\n\
List configured follower peers:\n  $ ipfs-cluster-follow\n\n\
Display information for a follower peer:\n  $ ipfs-cluster-follow <clusterName> info\n\n\
Initialize a follower peer:\n  $ ipfs-cluster-follow <clusterName> init <example.url>\n\n\
Launch a follower peer (will stay running):\n  $ ipfs-cluster-follow <clusterName> run\n\n\
List items in the pinset for a given cluster:\n  $ ipfs-cluster-follow <clusterName> list"
)]
struct Cli {
    /// Folder of the followers' configurations and data (default: ~/.ipfs-cluster-follow).
    #[arg(long, value_name = "FOLDER", env = "IPFS_CLUSTER_PATH")]
    config: Option<PathBuf>,
    /// The cluster to follow (a name of your choosing: its folder's name).
    cluster_name: Option<String>,
    /// The command for that cluster and its arguments (see `<clusterName> --help`).
    #[arg(skip)]
    rest: Vec<String>,
}

/// The commands for one cluster (`ipfs-cluster-follow <clusterName> …`; its help names it).
#[derive(Parser)]
#[command(no_binary_name = true, disable_version_flag = true)]
struct ClusterCli {
    #[command(subcommand)]
    cmd: Option<ClusterCmd>,
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Displays information for this peer.
    Info,
    /// Initializes the follower peer: a new identity, and the template's URL to read its
    /// configuration from at every run. Refused if the cluster's folder exists (delete it to
    /// start again).
    Init {
        /// The configuration template's URL (http:// or https://), or a DNSLink name
        /// resolved through the IPFS gateway.
        #[arg(value_name = "template_URL")]
        url: Option<String>,
        #[arg(long, env = "IPFS_GATEWAY", default_value = DEFAULT_GATEWAY, hide = true)]
        gateway: String,
    },
    /// Runs the follower peer in the foreground until stopped (Ctrl-C). Start the IPFS
    /// daemon first.
    Run {
        /// Initializes the peer with this URL first, unless it already is.
        #[arg(long, value_name = "URL")]
        init: Option<String>,
        #[arg(long, env = "IPFS_GATEWAY", default_value = DEFAULT_GATEWAY, hide = true)]
        gateway: String,
    },
    /// Lists the items of the pinset with this peer's status of each (offline: the state
    /// on disk, when the peer is not running).
    List,
}

/// Where one followed cluster's files are.
struct Paths {
    name: String,
    folder: PathBuf,
}

impl Paths {
    fn config(&self) -> PathBuf {
        self.folder.join(config::CONFIG_FILE)
    }
    fn identity(&self) -> PathBuf {
        self.folder.join(config::IDENTITY_FILE)
    }
    /// The REST API's address: `CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS`, else the socket.
    fn api(&self) -> String {
        match std::env::var("CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS") {
            Ok(a) if !a.trim().is_empty() => a,
            _ => ipfs_cluster::net::unix_multiaddr(&self.folder.join(SOCKET)).to_string(),
        }
    }
    fn initialized(&self) -> bool {
        self.folder.exists()
    }
}

/// How a command ends: `Exit(code)` after it printed what the user needs.
#[derive(Debug)]
struct Exit(i32);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Exit {}

#[tokio::main]
async fn main() {
    ipfs_cluster::process::raise_open_files_limit();
    // The cluster's name splits the command line: what follows it is for that cluster
    // (`<name> --help` is its help, not the program's).
    let args: Vec<String> = std::env::args().collect();
    let mut split = args.len();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--config" => i += 2,
            a if a.starts_with('-') => i += 1,
            _ => {
                split = i + 1;
                break;
            }
        }
    }
    let mut cli = Cli::parse_from(&args[..split.min(args.len())]);
    cli.rest = args[split.min(args.len())..].to_vec();
    let base = base_folder(cli.config.as_deref());
    let result = match cli.cluster_name {
        None => list_clusters(&base),
        Some(name) => cluster(&base, name, cli.rest).await,
    };
    if let Err(e) = result {
        if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
            std::process::exit(*code);
        }
        // As IPFS Cluster's: the message alone (no "error:" prefix), exit 1.
        eprintln!("{e:#}");
        std::process::exit(1);
    }
}

fn base_folder(explicit: Option<&Path>) -> PathBuf {
    let base = match explicit {
        Some(p) => p.to_path_buf(),
        None => dirs::home_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join(DEFAULT_FOLDER),
    };
    std::path::absolute(&base).unwrap_or(base)
}

async fn cluster(base: &Path, name: String, rest: Vec<String>) -> anyhow::Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        bail!("{name:?} cannot name a cluster's folder");
    }
    let parsed = ClusterCli::command()
        .bin_name(format!("{PROGRAM} {name}"))
        .about(format!("Follower peer management for \"{name}\""))
        .try_get_matches_from(&rest)
        .and_then(|m| <ClusterCli as clap::FromArgMatches>::from_arg_matches(&m));
    let cmd = match parsed {
        Ok(c) => c.cmd,
        Err(e) => e.exit(),
    };
    let paths = Paths {
        folder: base.join(&name),
        name,
    };
    match cmd {
        None => {
            info(&paths).await?;
            println!("Additional help:\n\n-------------------------------------------------\n");
            let mut help = ClusterCli::command()
                .bin_name(format!("{PROGRAM} {}", paths.name))
                .about(format!("Follower peer management for \"{}\"", paths.name));
            println!("{}", help.render_help());
            Ok(())
        }
        Some(ClusterCmd::Info) => info(&paths).await,
        Some(ClusterCmd::Init { url: None, .. }) => bail!("configuration URL not provided"),
        Some(ClusterCmd::Init {
            url: Some(url),
            gateway,
        }) => init(&paths, &url, &gateway, false),
        Some(ClusterCmd::Run { init: url, gateway }) => {
            if let Some(url) = url {
                init(&paths, &url, &gateway, true)?;
            }
            run(&paths).await
        }
        Some(ClusterCmd::List) => list(&paths).await,
    }
}

/// No cluster named: the clusters this base folder has.
fn list_clusters(base: &Path) -> anyhow::Result<()> {
    let mut names = Vec::new();
    match std::fs::read_dir(base) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", base.display())),
        Ok(dir) => {
            for entry in dir {
                let entry = entry.with_context(|| format!("reading {}", base.display()))?;
                if entry.path().join(config::CONFIG_FILE).is_file() {
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
    }
    if names.is_empty() {
        print!(
            "\nNo clusters configured yet!\n \nIf this is the first time you are running \
             {PROGRAM},\nbe sure to check out the usage documentation. Here are some\n\
             examples to get you going:\n\n\
             $ {PROGRAM} --help                     - general description and usage help\n\
             $ {PROGRAM} <clusterName> --help       - Help and subcommands for the \
             <clusterName>'s follower peer\n\
             $ {PROGRAM} <clusterName> info --help  - Help for the \"info\" subcommand (same \
             for others).\n"
        );
        return Ok(());
    }
    names.sort();
    println!(
        "Configurations found for {} follower peers. For info and help, try running:\n",
        names.len()
    );
    for n in names {
        println!("{PROGRAM} \"{n}\"");
    }
    println!("\nTip: \"{PROGRAM} --help\" for help and examples.");
    Ok(())
}

fn not_initialized(paths: &Paths) -> anyhow::Error {
    print!(
        "\nThis cluster peer has not been initialized.\n\nTry running \"{PROGRAM} {} init \
         <config-url>\" first.\n",
        paths.name
    );
    Exit(1).into()
}

/// `init`: a new identity and `service.json` naming the template (nothing is fetched).
fn init(paths: &Paths, url: &str, gateway: &str, skip_existing: bool) -> anyhow::Result<()> {
    let folder = &paths.folder;
    if paths.initialized() {
        if skip_existing {
            println!("Configuration for this cluster already exists. Skipping initialization.");
            println!(
                "If you wish to re-initialize, simply delete {}\n",
                folder.display()
            );
            return Ok(());
        }
        eprintln!("Configuration for this cluster already exists.\n");
        eprintln!(
            "Please delete {} if you wish to re-initialize.",
            folder.display()
        );
        return Err(Exit(1).into());
    }
    let url = url.trim();
    let source = if url.starts_with("http://") || url.starts_with("https://") {
        url.to_string()
    } else {
        println!("{url} will be assumed to be an DNSLink-powered address: /ipns/{url}.");
        println!("It will be resolved using the local IPFS daemon's gateway ({gateway}).");
        println!(
            "If this is not the case, specify the full url starting with http:// or https://."
        );
        println!("(You can override the gateway URL by setting IPFS_GATEWAY)");
        println!();
        let gateway = gateway.trim().trim_end_matches('/');
        let gateway = match gateway.contains("://") {
            true => gateway.to_string(),
            false => format!("http://{gateway}"),
        };
        format!("{gateway}/ipns/{url}")
    };
    template::check_url(&source)?;
    config::create_private_dir(folder).with_context(|| format!("creating {}", folder.display()))?;
    let identity = Identity::generate();
    identity
        .save(&paths.identity())
        .with_context(|| format!("error saving {}", paths.identity().display()))?;
    println!("Identity written to {}.", paths.identity().display());
    template::write_source(folder, &source)
        .with_context(|| format!("saving {}", paths.config().display()))?;
    println!("Configuration written to {}.", paths.config().display());
    println!("Cluster \"{}\" follower peer initialized.\n", paths.name);
    println!(
        "You can now use \"{PROGRAM} {} run\" to start a follower peer for this cluster.",
        paths.name
    );
    println!("(Remember to start your IPFS daemon before)");
    Ok(())
}

/// The template's URL, from `service.json`.
fn source(paths: &Paths) -> anyhow::Result<String> {
    match template::source_of(&paths.folder)? {
        Some(url) => Ok(url),
        None => bail!(
            "{} names no \"source\": initialize this follower again (delete {} first)",
            paths.config().display(),
            paths.folder.display()
        ),
    }
}

/// The cluster's configuration: the template at `url`, a follower's, its REST API on the
/// socket only (`CLUSTER_RESTAPI_*` still apply).
async fn fetch_config(paths: &Paths, url: &str) -> anyhow::Result<Config> {
    let fetched = template::fetch(url).await?;
    follower_config(paths, url, fetched)
}

fn follower_config(
    paths: &Paths,
    url: &str,
    fetched: serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<Config> {
    let socket = ipfs_cluster::net::unix_multiaddr(&paths.folder.join(SOCKET));
    let local = [(
        "/api/restapi",
        serde_json::json!({ "http_listen_multiaddress": socket.to_string() }),
    )];
    let env: Vec<(String, String)> = std::env::vars().collect();
    Ok(template::follower_config(url, fetched, &local, &env)?)
}

/// The IPFS connector's settings when no configuration is at hand: the defaults, with
/// `CLUSTER_IPFSHTTP_NODEMULTIADDRESS` applied.
fn default_ipfs() -> IpfsHttpConfig {
    let mut cfg = IpfsHttpConfig::default();
    if let Ok(a) = std::env::var("CLUSTER_IPFSHTTP_NODEMULTIADDRESS") {
        if let Ok(m) = ipfs_cluster::net::parse_multiaddr(&a) {
            cfg.node_multiaddress = config::Multiaddrs(vec![m]);
        }
    }
    cfg
}

async fn ipfs_online(cfg: &IpfsHttpConfig) -> bool {
    ipfs_cluster::ipfs_answers(cfg).await
}

fn client(paths: &Paths, timeout: Duration) -> anyhow::Result<Client> {
    Client::new(&paths.api(), None, timeout).context("error creating client")
}

async fn info(paths: &Paths) -> anyhow::Result<()> {
    if !paths.initialized() {
        return Err(not_initialized(paths));
    }
    let url = source(paths)?;
    let (shown, ipfs) = match template::fetch(&url).await {
        Ok(fetched) => {
            let cfg = follower_config(paths, &url, fetched).with_context(|| {
                format!("reading the configurations in {}", paths.folder.display())
            })?;
            (
                format!("Available ({url})"),
                cfg.ipfs_connector.ipfshttp.clone(),
            )
        }
        Err(_) => (
            format!("failed retrieving configuration source ({url})"),
            default_ipfs(),
        ),
    };
    println!(
        "Information about follower peer for Cluster \"{}\":\n",
        paths.name
    );
    println!("Config folder: {}", paths.folder.display());
    println!("Config source URL: {shown}");
    let peer = client(paths, Duration::from_secs(10))?
        .version()
        .await
        .is_ok();
    println!("Cluster Peer online: {peer}");
    println!("IPFS peer online: {}", ipfs_online(&ipfs).await);
    Ok(())
}

async fn run(paths: &Paths) -> anyhow::Result<()> {
    if !paths.initialized() {
        return Err(not_initialized(paths));
    }
    let socket = paths.folder.join(SOCKET);
    if socket.as_os_str().len() > ipfs_cluster::net::MAX_UNIX_PATH {
        bail!(
            "{} is longer than a unix socket's path may be ({} bytes): use a shorter --config \
             folder or cluster name",
            socket.display(),
            ipfs_cluster::net::MAX_UNIX_PATH
        );
    }
    init_logging();
    println!(
        "Starting the IPFS Cluster follower peer for \"{}\".\nCTRL-C to stop it.",
        paths.name
    );
    println!("Checking if IPFS is online (will wait for 2 minutes)...");
    let stop = tokio_util::sync::CancellationToken::new();
    watch_signals(stop.clone());
    let ipfs = default_ipfs();
    let deadline = tokio::time::Instant::now() + IPFS_WAIT;
    while !ipfs_online(&ipfs).await {
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out waiting for IPFS to be available");
        }
        tokio::select! {
            _ = stop.cancelled() => return Err(Exit(1).into()),
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
    let url = source(paths)?;
    let cfg = fetch_config(paths, &url)
        .await
        .with_context(|| format!("reading the configurations in {}", paths.folder.display()))?;
    let identity = Identity::load(&paths.identity()).map_err(anyhow::Error::msg)?;
    let _lock = config::lock_folder(&paths.folder).map_err(anyhow::Error::msg)?;
    let opts = StartOptions {
        follower: true,
        rest_only: true,
        stop: stop.clone(),
        ..Default::default()
    };
    let peer = match Peer::start(paths.folder.clone(), cfg, identity, opts).await {
        Ok(peer) => peer,
        Err(_) if stop.is_cancelled() => return Ok(()),
        Err(e) => return Err(anyhow::Error::msg(e)),
    };
    tokio::select! {
        _ = peer.ready() => {
            tracing::info!("** IPFS Cluster is READY **");
            println!("** IPFS Cluster is READY **");
        }
        _ = stop.cancelled() => {}
    }
    stop.cancelled().await;
    tracing::info!("shutting down");
    peer.shutdown().await;
    Ok(())
}

/// The first Ctrl-C, SIGTERM or SIGHUP (the terminal closed) stops the peer in order; the third ends the process at once
/// (as IPFS Cluster's: a shutdown stuck on something).
fn watch_signals(stop: tokio_util::sync::CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    tokio::spawn(async move {
        for n in 1.. {
            tokio::select! {
                _ = term.recv() => {}
                _ = hup.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            match n {
                1 => stop.cancel(),
                2 => eprintln!("shutting down: once more to exit at once"),
                _ => {
                    eprintln!("exiting cluster NOW");
                    std::process::exit(1);
                }
            }
        }
    });
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new("info,openraft=warn,sqlx=warn"))
        .unwrap_or_else(|_| "info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();
}

fn print_pin(status: &str, cid: &str, name: &str, error: &str) -> std::io::Result<()> {
    let name = match error.is_empty() {
        true => name.to_string(),
        false => format!("{name} ({error})"),
    };
    writeln!(std::io::stdout().lock(), "{status:<20} {cid} {name}")
}

async fn list(paths: &Paths) -> anyhow::Result<()> {
    if !paths.initialized() {
        return Err(not_initialized(paths));
    }
    // A listing streams for as long as the pinset takes: no overall timeout.
    let client = client(paths, Duration::from_secs(24 * 3600))?;
    match client.status_all_local("").await {
        Ok(mut items) => {
            while let Some(item) = items.next().await {
                let p = item?;
                print_pin(
                    p.info.status.as_str(),
                    &p.pin.cid.to_string(),
                    &p.pin.name,
                    &p.info.error,
                )?;
            }
            Ok(())
        }
        Err(ClientError::Api { code, message }) => {
            bail!("The Peer API seems to be running but returned with code {code}: {message}")
        }
        // Not running: the state on disk.
        Err(ClientError::Unreachable { .. } | ClientError::Timeout { .. }) => {
            list_offline(paths).await
        }
        Err(e) => Err(anyhow::Error::new(e).context("error creating client")),
    }
}

/// The pinset in the stopped peer's state, each pin `offline`.
async fn list_offline(paths: &Paths) -> anyhow::Result<()> {
    let _lock = config::lock_folder(&paths.folder).map_err(anyhow::Error::msg)?;
    ipfs_cluster::consensus::crdt_offline::export(&paths.folder, OfflineLines::default())
        .await
        .map_err(anyhow::Error::msg)
        .context("error obtaining the pinset")?;
    Ok(())
}

/// Prints each pin of an export's lines as it is written (one line held at a time).
#[derive(Default)]
struct OfflineLines {
    line: Vec<u8>,
}

impl Write for OfflineLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let line = std::mem::take(&mut self.line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let pin: ipfs_cluster::types::Pin =
                serde_json::from_slice(&line).map_err(std::io::Error::other)?;
            print_pin("offline", &pin.cid.to_string(), &pin.options.name, "")?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}
