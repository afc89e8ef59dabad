//! `ipfs-cluster-service`: creates a peer's configuration and runs the peer headless.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{CommandFactory, Parser, Subcommand};
use ipfs_cluster::config::{self, Config, Identity};
use ipfs_cluster::consensus::offline;
use ipfs_cluster::peer::{Peer, StartOptions};

#[derive(Parser)]
#[command(
    name = "ipfs-cluster-service",
    version,
    about = "IPFS Cluster peer: orchestrates pins across the IPFS daemons of a cluster"
)]
struct Cli {
    /// Cluster folder (default: $IPFS_CLUSTER_PATH, else ~/.ipfs-cluster).
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(
        short = 'l',
        long,
        global = true,
        default_value = "info",
        env = "IPFS_CLUSTER_LOG_LEVEL"
    )]
    loglevel: String,
    /// Shortcut for --loglevel debug.
    #[arg(short, long, global = true)]
    debug: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Writes a new service.json and identity.json.
    Init {
        /// Overwrites an existing configuration.
        #[arg(short, long)]
        force: bool,
    },
    /// Runs the peer.
    Daemon {
        /// Joins the cluster of these peers (comma-separated multiaddrs with /p2p/<id>).
        #[arg(short = 'j', long, value_delimiter = ',')]
        bootstrap: Vec<String>,
        /// Joins as a non-voting follower.
        #[arg(long)]
        follower: bool,
        /// Serves Prometheus metrics on observations.metrics.prometheus_endpoint even when
        /// enable_stats is off.
        #[arg(long)]
        stats: bool,
    },
    /// Exports, imports or cleans the pinset of a stopped peer.
    #[command(subcommand)]
    State(StateCmd),
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
    /// Replaces the pinset with one from `state export` (run it on every peer).
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
    },
    /// Deletes the peer's Raft state (after backing it up).
    Cleanup {
        /// Does not ask for confirmation.
        #[arg(long)]
        force: bool,
    },
}

fn init_logging(level: &str) {
    // openraft narrates every election at info; users want the peer's own story.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| {
            tracing_subscriber::EnvFilter::try_new(format!("{level},openraft=warn,sqlx=warn"))
        })
        .unwrap_or_else(|_| "info".into());
    // Colours only for a terminal: a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();
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

fn load(folder: &Path) -> anyhow::Result<(Config, Identity)> {
    let cfg = Config::load(folder)?;
    let id = Identity::load(&folder.join(config::IDENTITY_FILE)).map_err(anyhow::Error::msg)?;
    Ok((cfg, id))
}

#[tokio::main]
async fn main() {
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
    init_logging(level);
    let folder = config::folder(cli.config.as_deref());
    if let Err(e) = run(cmd, &folder).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cmd: Cmd, folder: &Path) -> anyhow::Result<()> {
    match cmd {
        Cmd::Version => println!("{}", ipfs_cluster::types::VERSION),
        Cmd::Init { force } => {
            let id_path = folder.join(config::IDENTITY_FILE);
            let existed = id_path.exists();
            let (_, id) = config::init(folder, force)?;
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
        } => {
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
            daemon(
                folder,
                cfg,
                id,
                StartOptions {
                    bootstrap,
                    follower,
                    stats,
                },
            )
            .await?;
        }
        Cmd::State(StateCmd::Export { file }) => {
            let _lock = lock_folder(folder)?;
            match file {
                Some(f) => {
                    let out = ipfs_cluster::config::create_private(&f)
                        .with_context(|| format!("{}", f.display()))?;
                    offline::export(folder, std::io::BufWriter::new(out)).await
                }
                None => offline::export(folder, std::io::stdout().lock()).await,
            }
            .map_err(anyhow::Error::msg)?;
        }
        Cmd::State(StateCmd::Import { path, file, force }) => {
            let file = path.or(file);
            let (cfg, _) = load(folder)?;
            let _lock = lock_folder(folder)?;
            let staged = match &file {
                Some(f) => {
                    let input =
                        std::fs::File::open(f).with_context(|| format!("{}", f.display()))?;
                    let pins = ipfs_cluster::state::read_pins(std::io::BufReader::new(input));
                    offline::stage_import(folder, pins).await
                }
                None => {
                    let pins = ipfs_cluster::state::read_pins(std::io::stdin().lock());
                    offline::stage_import(folder, pins).await
                }
            }
            .map_err(anyhow::Error::msg)
            .context("nothing was imported")?;
            let count = staged.count;
            if !force && !confirm(&format!("Replace this peer's pinset with {count} pins?"))? {
                staged.discard().await;
                bail!("aborted: nothing changed");
            }
            if let Some(b) = offline::backup(folder, cfg.consensus.raft.backups_rotate)
                .await
                .map_err(anyhow::Error::msg)?
            {
                eprintln!("previous pinset saved to {}", b.display());
            }
            staged.commit().await.map_err(anyhow::Error::msg)?;
            println!("imported {count} pins");
        }
        Cmd::State(StateCmd::Cleanup { force }) => {
            let (cfg, _) = load(folder)?;
            let _lock = lock_folder(folder)?;
            if !force && !confirm("Delete this peer's whole Raft state (pinset and peerset)?")? {
                bail!("aborted: nothing changed");
            }
            match offline::cleanup(folder, cfg.consensus.raft.backups_rotate)
                .await
                .map_err(anyhow::Error::msg)?
            {
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
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let rotate = cfg.consensus.raft.backups_rotate;
    let scheme = if cfg.api.restapi.0.ssl_cert_file.is_empty() {
        "http"
    } else {
        "https"
    };
    let peer = Peer::start(folder.to_path_buf(), cfg, id, opts)
        .await
        .map_err(anyhow::Error::msg)?;
    for addr in peer.rest_addrs() {
        println!("REST API: {scheme}://{addr}");
    }
    for a in peer.cluster_addrs() {
        println!("cluster address: {a}");
    }
    let removed = peer.removed();
    tokio::select! {
        _ = peer.ready() => {
            tracing::info!("** IPFS Cluster is READY **");
            println!("** IPFS Cluster is READY **");
        }
        _ = tokio::signal::ctrl_c() => { peer.shutdown().await; return Ok(()); }
        _ = term.recv() => { peer.shutdown().await; return Ok(()); }
    }
    let stopped = peer.stopped();
    let was_removed = tokio::select! {
        _ = tokio::signal::ctrl_c() => false,
        _ = term.recv() => false,
        _ = removed.cancelled() => true,
        _ = stopped.cancelled() => {
            peer.shutdown().await;
            anyhow::bail!(
                "Raft stopped after a storage error (see the log above; a full disk?): \
                 start the peer again once it is fixed"
            );
        }
    };
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
