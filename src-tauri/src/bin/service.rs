//! `ipfs-cluster-service`: creates a peer's configuration and runs the peer headless.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{CommandFactory, Parser, Subcommand};
use ipfs_cluster::config::{self, Config, Identity};
use ipfs_cluster::consensus::{crdt_offline, offline};
use ipfs_cluster::desktop::invite::Invitation;
use ipfs_cluster::peer::{Peer, StartOptions};
use ipfs_cluster::telemetry::Telemetry;

#[derive(Parser)]
#[command(
    name = "ipfs-cluster-service",
    version = ipfs_cluster::types::full_version(),
    about = "IPFS Cluster peer: orchestrates pins across the IPFS daemons of a cluster"
)]
struct Cli {
    /// Cluster folder (default: $IPFS_CLUSTER_PATH, else ~/.ipfs-cluster).
    #[arg(short, long, global = true, help_heading = "Global options")]
    config: Option<PathBuf>,
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(
        short = 'l',
        long,
        global = true,
        help_heading = "Global options",
        default_value = "info",
        env = "IPFS_CLUSTER_LOG_LEVEL"
    )]
    loglevel: String,
    /// Shortcut for --loglevel debug.
    #[arg(short, long, global = true, help_heading = "Global options")]
    debug: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Writes a new service.json and identity.json (and an empty peerstore).
    ///
    /// The cluster secret is generated, or taken from CLUSTER_SECRET, or asked for with
    /// --custom-secret. --force rewrites the configuration and keeps identity.json.
    Init {
        /// Overwrites an existing configuration (the identity is kept).
        #[arg(short, long)]
        force: bool,
        /// Asks for the cluster secret (64 hex characters) instead of generating one.
        #[arg(short = 's', long)]
        custom_secret: bool,
        /// Comma-separated multiaddrs (with /p2p/<id>) of the cluster's peers: written to
        /// the peerstore, and their ids to consensus.raft.init_peerset.
        #[arg(long, value_delimiter = ',')]
        peers: Vec<String>,
        /// Listens on free ports picked now instead of the default ones.
        #[arg(long)]
        randomports: bool,
        /// raft (the default) or crdt (IPFS Cluster's Merkle-CRDT: no leader, works
        /// offline, trusted peers write, followers read).
        #[arg(long, default_value = "raft")]
        consensus: String,
        /// IPFS Cluster's datastore choice: accepted, unused (the state is in SQLite).
        #[arg(long, hide = true)]
        datastore: Option<String>,
    },
    /// Runs the peer.
    ///
    /// A first peer forms a cluster of its own; others join it with --bootstrap (once: a
    /// peer that has joined rejoins by itself at its next start). It serves the REST API,
    /// the IPFS proxy and the Pinning Service API as configured, and logs
    /// "** IPFS Cluster is READY **" once it can take writes.
    Daemon {
        /// Joins the cluster of these peers (comma-separated multiaddrs with /p2p/<id>).
        #[arg(short = 'j', long, value_delimiter = ',')]
        bootstrap: Vec<String>,
        /// Joins as a non-voting follower.
        #[arg(long)]
        follower: bool,
        /// Leaves the cluster (removes this peer from the peerset) when stopped, backing up
        /// and cleaning its state; overrides cluster.leave_on_shutdown.
        #[arg(short = 'x', long)]
        leave: bool,
        /// IPFS Cluster's state migrations: nothing to migrate here (accepted, no effect).
        #[arg(short = 'u', long, hide = true)]
        upgrade: bool,
        /// Exports tracing spans with OpenTelemetry (OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT,
        /// default http://localhost:4318), as observations.tracing.enable_tracing does.
        #[arg(long)]
        tracing: bool,
        /// CRDT: does not trust the --bootstrap peers (IPFS Cluster's option; by default
        /// they are added to trusted_peers). No effect with Raft.
        #[arg(long)]
        no_trust: bool,
        /// Serves Prometheus metrics on observations.metrics.prometheus_endpoint even when
        /// enable_stats is off.
        #[arg(long)]
        stats: bool,
    },
    /// Exports, imports or cleans the pinset of a stopped peer.
    #[command(subcommand)]
    State(StateCmd),
    /// Prints an invitation to this peer's cluster: an `ipfs-cluster-invite:` link that the
    /// desktop app opens on its Join form (its addresses and the cluster secret: give it
    /// only to whom may join).
    ///
    /// The addresses are cluster.announce_multiaddress, or else the listen addresses with
    /// 0.0.0.0 replaced by each address of this machine. Works whether the peer runs or not.
    Invite {
        /// Also draws the link as a QR code in the terminal.
        #[arg(long)]
        qr: bool,
    },
    /// Prints the version.
    Version,
}

#[derive(Subcommand)]
enum StateCmd {
    /// Writes the pinset as newline-delimited Pin JSON.
    Export {
        /// Output file (default: standard output).
        #[arg(short, long)]
        file: Option<PathBuf>,
    },
    /// Replaces the pinset with one from `state export` (run it on every peer). A CRDT
    /// peer's DAG is started anew with the imported pins, as IPFS Cluster does.
    Import {
        /// Input file (default: standard input), as IPFS Cluster takes it.
        #[arg(value_name = "FILE")]
        path: Option<PathBuf>,
        /// The input file, as earlier versions of this program took it.
        #[arg(long = "file", hide = true, conflicts_with = "path")]
        file: Option<PathBuf>,
        /// Does not ask for confirmation.
        #[arg(short, long)]
        force: bool,
        /// Sets every imported pin's replication_factor_min.
        #[arg(long = "replication-min", visible_alias = "rmin")]
        replication_min: Option<i32>,
        /// Sets every imported pin's replication_factor_max.
        #[arg(long = "replication-max", visible_alias = "rmax")]
        replication_max: Option<i32>,
        /// Sets every imported pin's allocations (comma-separated peer ids).
        #[arg(long, visible_alias = "allocs", value_delimiter = ',')]
        allocations: Vec<String>,
    },
    /// Deletes the peer's consensus state, Raft's or the CRDT's (after backing it up).
    Cleanup {
        /// Does not ask for confirmation.
        #[arg(long)]
        force: bool,
    },
}

/// Logs to standard output at `level`, and exports spans with OpenTelemetry when `tracing`
/// is given (see `ipfs_cluster::telemetry`).
fn init_logging(
    level: &str,
    tracing: Option<&config::TracingConfig>,
) -> anyhow::Result<Option<Telemetry>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    // openraft narrates every election at info; users want the peer's own story.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| {
            tracing_subscriber::EnvFilter::try_new(format!("{level},openraft=warn,sqlx=warn"))
        })
        .unwrap_or_else(|_| "info".into());
    // Colours only for a terminal: a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_filter(filter);
    let (telemetry, otel) = match tracing {
        Some(cfg) => {
            let (t, layer) = Telemetry::start(cfg).map_err(anyhow::Error::msg)?;
            // Spans of this program's own crates, at info and above.
            let only_ours =
                tracing_subscriber::EnvFilter::new("ipfs_cluster=info,ipfs_cluster_service=info");
            (Some(t), Some(layer.with_filter(only_ours)))
        }
        None => (None, None),
    };
    tracing_subscriber::registry().with(fmt).with(otel).init();
    Ok(telemetry)
}

/// Holds an exclusive lock on the folder so two processes never run one peer.
fn lock_folder(folder: &Path) -> anyhow::Result<ipfs_cluster::config::FolderLock> {
    ipfs_cluster::config::lock_folder(folder).map_err(anyhow::Error::msg)
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    eprint!("{question} [y/N]: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// `init --randomports`: every listen address on a free port picked now.
fn random_ports(cfg: &mut Config) -> anyhow::Result<()> {
    let free = || -> anyhow::Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    };
    let one = |ip: &str, port: u16| config::Multiaddrs::one(&format!("/ip4/{ip}/tcp/{port}"));
    cfg.cluster.listen_multiaddress = one("0.0.0.0", free()?);
    cfg.api.restapi.0.http_listen_multiaddress = one("127.0.0.1", free()?);
    cfg.api.ipfsproxy.listen_multiaddress = one("127.0.0.1", free()?);
    cfg.api.pinsvcapi.0.http_listen_multiaddress = one("127.0.0.1", free()?);
    Ok(())
}

/// `init --peers`: each multiaddr with its peer id (from its `/p2p/` part).
fn init_peers(addrs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    addrs
        .iter()
        .map(|a| a.trim())
        .filter(|a| !a.is_empty())
        .map(|a| {
            let ma: libp2p::Multiaddr = a
                .parse()
                .with_context(|| format!("--peers {a:?} is not a multiaddr"))?;
            let id = ma
                .iter()
                .find_map(|p| match p {
                    libp2p::multiaddr::Protocol::P2p(id) => Some(id.to_string()),
                    _ => None,
                })
                .with_context(|| format!("--peers {a:?} has no /p2p/<peer id>"))?;
            Ok((id, a.to_string()))
        })
        .collect()
}

/// Whether `folder`'s peer runs the CRDT consensus (a `crdt` section and no `raft` one in
/// its `service.json`): its `state` commands then work on the CRDT's database.
fn crdt_folder(folder: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(folder.join(config::CONFIG_FILE)) else {
        return false;
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    let consensus = &json["consensus"];
    consensus.get("crdt").is_some() && consensus.get("raft").is_none()
}

fn load(folder: &Path) -> anyhow::Result<(Config, Identity)> {
    let cfg = Config::load(folder)?;
    let id = Identity::load(&folder.join(config::IDENTITY_FILE)).map_err(anyhow::Error::msg)?;
    Ok((cfg, id))
}

#[tokio::main]
async fn main() {
    let limits = ipfs_cluster::process::raise_open_files_limit();
    let cli = Cli::parse();
    let Some(cmd) = cli.cmd else {
        Cli::command().print_help().ok();
        println!();
        return;
    };
    let level = if cli.debug {
        "debug"
    } else {
        cli.loglevel.as_str()
    };
    let folder = config::folder(cli.config.as_deref());
    // Traces are exported by a daemon whose config enables them, or with --tracing.
    let tracing = match &cmd {
        Cmd::Daemon { tracing, .. } => Config::load(&folder)
            .ok()
            .map(|c| c.observations.tracing)
            .filter(|t| *tracing || t.enable_tracing),
        _ => None,
    };
    let telemetry = match init_logging(level, tracing.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    };
    match limits {
        Some((old, new)) if new > old => {
            tracing::debug!("open files limit raised from {old} to {new}")
        }
        Some((n, _)) => tracing::debug!("open files limit: {n}"),
        None => tracing::warn!("the open files limit could not be raised"),
    }
    let result = run(cmd, &folder).await;
    if let Some(t) = telemetry {
        t.shutdown();
    }
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cmd: Cmd, folder: &Path) -> anyhow::Result<()> {
    match cmd {
        Cmd::Version => println!("{}", ipfs_cluster::types::full_version()),
        Cmd::Invite { qr } => {
            let cfg = Config::load(folder)?;
            let id =
                Identity::load(&folder.join(config::IDENTITY_FILE)).map_err(anyhow::Error::msg)?;
            let inv = Invitation::of_config(&cfg.cluster, &id.peer_id())?;
            if qr {
                print!("{}", inv.qr_text());
                println!();
            }
            println!("{}", inv.to_text());
        }
        Cmd::Init {
            force,
            custom_secret,
            peers,
            randomports,
            consensus,
            datastore: _,
        } => {
            let mut cfg = Config::new_for_init();
            match consensus.as_str() {
                "raft" => {}
                "crdt" => {
                    cfg.consensus.crdt = Some(Default::default());
                    cfg.consensus.crdt_mode = true;
                }
                other => bail!("--consensus {other}: expected raft or crdt"),
            }
            if let Ok(s) = std::env::var("CLUSTER_SECRET") {
                cfg.cluster.secret = s
                    .parse()
                    .map_err(|e| anyhow::anyhow!("CLUSTER_SECRET: {e}"))?;
            }
            if custom_secret {
                eprint!("Enter cluster secret (32-byte hex string): ");
                std::io::stderr().flush()?;
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                cfg.cluster.secret = line
                    .trim()
                    .parse()
                    .map_err(|e| anyhow::anyhow!("the secret: {e}"))?;
            }
            if randomports {
                random_ports(&mut cfg)?;
            }
            let peers = init_peers(&peers)?;
            cfg.consensus.raft.init_peerset = peers.iter().map(|(id, _)| id.clone()).collect();
            let id_path = folder.join(config::IDENTITY_FILE);
            let existed = id_path.exists();
            let (cfg, id) = config::init_with_config(folder, force, cfg)?;
            let peerstore = cfg.cluster.peerstore_path(folder);
            let lines: String = peers.iter().map(|(_, a)| format!("{a}\n")).collect();
            if !peerstore.exists() || !peers.is_empty() {
                std::fs::write(&peerstore, lines)
                    .with_context(|| format!("{}", peerstore.display()))?;
            }
            println!(
                "configuration written to {}",
                folder.join(config::CONFIG_FILE).display()
            );
            let what = if existed {
                "identity kept"
            } else {
                "new identity written"
            };
            println!("{what}: {} (peer id {})", id_path.display(), id.peer_id());
        }
        Cmd::Daemon {
            bootstrap,
            follower,
            stats,
            leave,
            upgrade: _,
            tracing,
            no_trust,
        } => {
            if tracing {
                tracing::info!("--tracing: spans are exported with OpenTelemetry (OTLP)");
            }
            let (cfg, id) = load(folder)?;
            let bootstrap = bootstrap
                .iter()
                .map(|b| {
                    b.trim()
                        .parse::<libp2p::Multiaddr>()
                        .with_context(|| format!("--bootstrap {b:?} is not a multiaddr"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let _lock = lock_folder(folder)?;
            let leave = leave || cfg.cluster.leave_on_shutdown;
            daemon(
                folder,
                cfg,
                id,
                StartOptions {
                    bootstrap,
                    follower,
                    stats,
                    no_trust,
                    ..Default::default()
                },
                leave,
            )
            .await?;
        }
        Cmd::State(StateCmd::Export { file }) => {
            let crdt = crdt_folder(folder);
            let _lock = lock_folder(folder)?;
            let out: Box<dyn std::io::Write> = match file {
                Some(f) => Box::new(std::io::BufWriter::new(
                    ipfs_cluster::config::create_private(&f)
                        .with_context(|| format!("{}", f.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            match crdt {
                true => crdt_offline::export(folder, out).await,
                false => offline::export(folder, out).await,
            }
            .map_err(anyhow::Error::msg)?;
        }
        Cmd::State(StateCmd::Import {
            path,
            file,
            force,
            replication_min,
            replication_max,
            allocations,
        }) => {
            let crdt = crdt_folder(folder);
            let file = path.or(file);
            // IPFS Cluster's overrides, applied to every pin read.
            let adjust = move |p: ipfs_cluster::types::Pin| {
                let mut p = p;
                if let Some(m) = replication_min {
                    p.options.replication_factor_min = m;
                }
                if let Some(m) = replication_max {
                    p.options.replication_factor_max = m;
                }
                if !allocations.is_empty() {
                    p.allocations = allocations.clone();
                }
                p
            };
            let (cfg, _) = load(folder)?;
            let _lock = lock_folder(folder)?;
            let input: Box<dyn std::io::BufRead> = match &file {
                Some(f) => Box::new(std::io::BufReader::new(
                    std::fs::File::open(f).with_context(|| format!("{}", f.display()))?,
                )),
                None => Box::new(std::io::stdin().lock()),
            };
            let pins = ipfs_cluster::state::read_pins(input).map(|r| r.map(&adjust));
            let staged = match crdt {
                true => crdt_offline::stage_import(folder, pins).await,
                false => offline::stage_import(folder, pins).await,
            }
            .map_err(anyhow::Error::msg)
            .context("nothing was imported")?;
            let count = staged.count;
            if !force && !confirm(&format!("Replace this peer's pinset with {count} pins?"))? {
                staged.discard().await;
                bail!("aborted: nothing changed");
            }
            let rotate = cfg.consensus.raft.backups_rotate;
            let saved = match crdt {
                true => crdt_offline::backup(folder, rotate).await,
                false => offline::backup(folder, rotate).await,
            };
            if let Some(b) = saved.map_err(anyhow::Error::msg)? {
                eprintln!("previous pinset saved to {}", b.display());
            }
            staged.commit().await.map_err(anyhow::Error::msg)?;
            println!("imported {count} pins");
        }
        Cmd::State(StateCmd::Cleanup { force }) => {
            let crdt = crdt_folder(folder);
            let (cfg, _) = load(folder)?;
            let _lock = lock_folder(folder)?;
            let what = match crdt {
                true => "Delete this peer's whole CRDT state (its DAG and pinset)?",
                false => "Delete this peer's whole Raft state (pinset and peerset)?",
            };
            if !force && !confirm(what)? {
                bail!("aborted: nothing changed");
            }
            let rotate = cfg.consensus.raft.backups_rotate;
            let cleaned = match crdt {
                true => crdt_offline::cleanup(folder, rotate).await,
                false => offline::cleanup(folder, rotate).await,
            };
            match cleaned.map_err(anyhow::Error::msg)? {
                Some(b) => println!("state removed; a backup is in {}", b.display()),
                None => println!("no state to remove"),
            }
        }
    }
    Ok(())
}

async fn daemon(
    folder: &Path,
    cfg: Config,
    id: Identity,
    opts: StartOptions,
    leave: bool,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // One watcher of SIGTERM and Ctrl-C for the whole run: a stop asked while the start is
    // still under way (a join waiting for a leader) ends the start too.
    let stop = opts.stop.clone();
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn({
        let stop = stop.clone();
        async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            stop.cancel();
        }
    });
    let rotate = cfg.consensus.raft.backups_rotate;
    let scheme = if cfg.api.restapi.0.ssl_cert_file.is_empty() {
        "http"
    } else {
        "https"
    };
    let peer = match Peer::start(folder.to_path_buf(), cfg, id, opts).await {
        Ok(peer) => peer,
        Err(e) if stop.is_cancelled() => {
            tracing::info!("stopped during the start: {e}");
            return Ok(());
        }
        Err(e) => return Err(anyhow::Error::msg(e)),
    };
    for addr in peer.rest_addrs() {
        println!("REST API: {}", addr.url(scheme));
    }
    for a in peer.cluster_addrs() {
        println!("cluster address: {a}");
    }
    let removed = peer.removed();
    // A peer removed while it was away may never be ready again (no leader will have it):
    // its removal ends the wait too.
    let removed_early = tokio::select! {
        _ = peer.ready() => {
            tracing::info!("** IPFS Cluster is READY **");
            println!("** IPFS Cluster is READY **");
            false
        }
        _ = removed.cancelled() => true,
        _ = stop.cancelled() => { peer.shutdown().await; return Ok(()); }
    };
    let stopped = peer.stopped();
    let was_removed = removed_early
        || tokio::select! {
            _ = stop.cancelled() => false,
            _ = removed.cancelled() => true,
            _ = stopped.cancelled() => {
                peer.shutdown().await;
                anyhow::bail!(
                    "Raft stopped after a storage error (see the log above; a full disk?): \
                     start the peer again once it is fixed"
                );
            }
        };
    let mut was_removed = was_removed;
    if leave && !was_removed {
        let me = peer.cluster().me().peer_id.clone();
        match peer.cluster().peer_rm(&me).await {
            Ok(()) => {
                tracing::info!("left the cluster (--leave)");
                was_removed = true;
            }
            Err(e) => tracing::warn!("could not leave the cluster: {e}"),
        }
    }
    tracing::info!("shutting down");
    peer.shutdown().await;
    if was_removed {
        // As IPFS Cluster does: a removed peer's state is of no use to anyone; keep a backup.
        let saved = offline::cleanup(folder, rotate)
            .await
            .map_err(anyhow::Error::msg)?;
        println!("this peer was removed from the cluster and has shut down");
        if let Some(b) = saved {
            println!("its pinset was backed up to {}", b.display());
        }
    }
    Ok(())
}
