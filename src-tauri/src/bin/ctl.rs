//! `ipfs-cluster-ctl`: IPFS Cluster's command-line client of the REST API, with its command
//! names, flags and text output, so users' scripts keep working.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ipfs_cluster::client::Client;
use ipfs_cluster::types::{GlobalPinInfo, Id, Pin, PinInfo, PinMode, PinOptions, TrackerStatus};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "ipfs-cluster-ctl",
    version,
    about = "Controls an IPFS Cluster peer through its REST API"
)]
struct Cli {
    /// Cluster peer REST API: multiaddr, host:port or URL.
    #[arg(
        short = 'l',
        long,
        global = true,
        default_value = "/ip4/127.0.0.1/tcp/9094",
        env = "CLUSTER_HOST"
    )]
    host: String,
    /// user:password for the REST API's basic auth. Without it, a peer on this machine is
    /// asked with the credential in its folder's `restapi.credential`, if there is one.
    #[arg(
        long,
        global = true,
        env = "CLUSTER_CREDENTIALS",
        hide_env_values = true
    )]
    basic_auth: Option<String>,
    /// Output encoding.
    #[arg(long, global = true, value_enum, default_value_t = Enc::Text)]
    enc: Enc,
    /// Seconds before a request is abandoned.
    #[arg(short = 't', long, global = true, default_value_t = 60)]
    timeout: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Enc {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Shows the peer's ID and its view of the cluster.
    Id,
    /// Lists or removes cluster peers.
    #[command(subcommand)]
    Peers(PeersCmd),
    /// Adds, removes and lists pins.
    #[command(subcommand)]
    Pin(PinCmd),
    /// Status of pins in the cluster (of one or more CIDs, or of all).
    Status {
        cids: Vec<String>,
        /// Comma-separated statuses, e.g. pinned,error.
        #[arg(long, default_value = "")]
        filter: String,
        /// Only this peer's status.
        #[arg(long)]
        local: bool,
    },
    /// Retries failed pins and unpins (of one CID or of all).
    Recover {
        cid: Option<String>,
        #[arg(long)]
        local: bool,
    },
    /// Prints the peer's version.
    Version,
    /// Liveness (no subcommand), metrics and alerts.
    Health {
        #[command(subcommand)]
        cmd: Option<HealthCmd>,
    },
}

#[derive(Subcommand)]
enum HealthCmd {
    /// Lists metric names, or the latest metric of that name from every peer.
    Metrics { name: Option<String> },
    /// Lists recent alerts (expired metrics).
    Alerts,
}

#[derive(Subcommand)]
enum PeersCmd {
    /// Lists every peer with its ID.
    Ls,
    /// Removes a peer from the cluster.
    Rm { peer: String },
    /// Makes a follower a voter.
    Promote { peer: String },
    /// Makes a voter a follower (it keeps replicating but no longer counts for quorum).
    Demote { peer: String },
}

#[derive(Args)]
struct WaitArgs {
    /// Waits until the operation is done on every allocated peer.
    #[arg(short, long)]
    wait: bool,
    /// Prints the pin instead of its status afterwards (faster, quieter).
    #[arg(long = "no-status", alias = "ns")]
    no_status: bool,
    /// Gives up waiting after this long: a Go duration (`1m`, `30s`) or seconds (0 = no
    /// limit).
    #[arg(long, alias = "wt", default_value = "0", value_parser = parse_wait)]
    wait_timeout: Duration,
}

/// A wait timeout as IPFS Cluster's ctl takes it (a Go duration), or bare seconds.
fn parse_wait(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => s
            .parse::<ipfs_cluster::config::GoDuration>()
            .map(|d| d.get())
            .map_err(|e| format!("{e} (a duration such as 90s, 1m or 1h30m)")),
    }
}

#[derive(Subcommand)]
enum PinCmd {
    /// Pins a CID (or /ipfs/ path) in the cluster.
    Add {
        cid: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Sets both replication factors.
        #[arg(short = 'r', long)]
        replication: Option<i32>,
        #[arg(long = "replication-min", visible_alias = "rmin", default_value_t = 0)]
        replication_min: i32,
        #[arg(long = "replication-max", visible_alias = "rmax", default_value_t = 0)]
        replication_max: i32,
        /// Peer ids to allocate to first (comma-separated).
        #[arg(long, default_value = "")]
        allocations: String,
        #[arg(long, default_value = "recursive")]
        mode: String,
        /// key=value, repeatable.
        #[arg(long)]
        metadata: Vec<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Unpins a CID from the cluster.
    Rm {
        cid: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Lists the pinset (or one pin).
    Ls {
        cid: Option<String>,
        /// Pin types, comma-separated: pin, meta-pin, clusterdag-pin, shard-pin or all.
        #[arg(long, default_value = "all")]
        filter: String,
    },
}

/// Prints `v` as text or, with `--enc json`, as IPFS Cluster's ctl does: a list as one JSON
/// object after another (what `| jq .cid` reads), anything else as one object.
fn print<T: Serialize>(enc: Enc, v: &T, text: impl FnOnce(&T) -> String) {
    match enc {
        Enc::Json => match serde_json::to_value(v).expect("serializes") {
            serde_json::Value::Array(items) => {
                for item in items {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&item).expect("serializes")
                    );
                }
            }
            one => println!(
                "{}",
                serde_json::to_string_pretty(&one).expect("serializes")
            ),
        },
        Enc::Text => print!("{}", text(v)),
    }
}

fn id_text(id: &Id) -> String {
    let mut s = if id.error.is_empty() {
        format!(
            "{} | {} | Sees {} other peers\n",
            id.id,
            id.peername,
            id.cluster_peers.len().saturating_sub(1)
        )
    } else {
        return format!("{} | ERROR: {}\n", id.id, id.error);
    };
    if let Some(role) = id.role {
        s += &format!(
            "  > Role: {}\n",
            serde_json::to_value(role).unwrap().as_str().unwrap()
        );
    }
    s += "  > Addresses:\n";
    for a in &id.addresses {
        s += &format!("    - {a}\n");
    }
    if id.ipfs.error.is_empty() {
        s += &format!("  > IPFS: {}\n", id.ipfs.id);
        for a in &id.ipfs.addresses {
            s += &format!("    - {a}\n");
        }
    } else {
        s += &format!("  > IPFS: ERROR: {}\n", id.ipfs.error);
    }
    s
}

fn pin_text(p: &Pin) -> String {
    let allocs = if p.allocations.is_empty() {
        "[everywhere]".to_string()
    } else {
        format!("[{}]", p.allocations.join(" "))
    };
    let mode = match p.options.mode {
        PinMode::Recursive => "Recursive",
        PinMode::Direct => "Direct",
    };
    let repl = if p.options.replication_factor_max == -1 {
        "-1".to_string()
    } else {
        format!(
            "{}/{}",
            p.options.replication_factor_min, p.options.replication_factor_max
        )
    };
    let exp = p
        .options
        .expire_at
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| "∞".into());
    format!(
        "{} | {} | {} | Repl. Factor: {} | Allocations: {} | {} | Metadata: {} | Exp: {} | Added: {}\n",
        p.cid,
        p.options.name,
        p.pin_type.as_str().to_uppercase(),
        repl,
        allocs,
        mode,
        if p.options.metadata.is_empty() { "no" } else { "yes" },
        exp,
        p.timestamp.format("%Y-%m-%d %H:%M:%S"),
    )
}

fn short_text(peer: &str, s: &ipfs_cluster::types::PinInfoShort) -> String {
    let mut line = format!(
        "    > {:<16}: {} | {}",
        if s.peername.is_empty() {
            peer
        } else {
            &s.peername
        },
        s.status.as_str().to_uppercase(),
        s.timestamp.format("%Y-%m-%dT%H:%M:%SZ")
    );
    if !s.error.is_empty() {
        line += &format!(" | {}", s.error);
    }
    line += &format!(
        " | Attempts: {} | Priority: {}\n",
        s.attempt_count, s.priority_pin
    );
    line
}

fn global_text(g: &GlobalPinInfo) -> String {
    let mut s = if g.name.is_empty() {
        format!("{}:\n", g.cid)
    } else {
        format!("{} | {}:\n", g.cid, g.name)
    };
    for (peer, info) in &g.peer_map {
        s += &short_text(peer, info);
    }
    s
}

fn local_text(p: &PinInfo) -> String {
    format!("{}:\n{}", p.cid, short_text(&p.peer, &p.info))
}

fn metric_text(m: &ipfs_cluster::types::Metric) -> String {
    let expire = chrono::DateTime::from_timestamp_nanos(m.expire);
    let state = if m.is_current() {
        ""
    } else {
        " (expired or invalid)"
    };
    format!(
        "{} | {}: {} | Expires: {}{state}\n",
        m.peer,
        m.name,
        m.value,
        expire.to_rfc3339()
    )
}

fn parse_metadata(items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--metadata {kv:?}: expected key=value"))
        })
        .collect()
}

/// Polls the cluster status of `cid` until `done` holds on every peer that tracks it.
async fn wait_for(
    client: &Client,
    cid: &str,
    args: &WaitArgs,
    done: impl Fn(TrackerStatus) -> bool,
) -> anyhow::Result<GlobalPinInfo> {
    let deadline = (!args.wait_timeout.is_zero()).then(|| Instant::now() + args.wait_timeout);
    loop {
        let st = client.status(cid).await?;
        let relevant: Vec<_> = st
            .peer_map
            .values()
            .filter(|i| i.status != TrackerStatus::Remote)
            .collect();
        if let Some(e) = relevant.iter().find(|i| i.status.is_error()) {
            bail!("{cid}: {} on {}: {}", e.status, e.peername, e.error);
        }
        if relevant.iter().all(|i| done(i.status)) {
            return Ok(st);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            bail!("{cid}: still not done after {:?}", args.wait_timeout);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What `pin add`/`pin rm` print, as IPFS Cluster's ctl: the status once done (`--wait`),
/// else the status now, or the pin itself with `--no-status`.
async fn report(
    client: &Client,
    enc: Enc,
    pin: Pin,
    wait: &WaitArgs,
    target: TrackerStatus,
) -> anyhow::Result<()> {
    let cid = pin.cid.to_string();
    if wait.wait {
        let st = wait_for(client, &cid, wait, |s| s == target).await?;
        print(enc, &st, global_text);
    } else if wait.no_status {
        print(enc, &pin, pin_text);
    } else {
        print(enc, &client.status(&cid).await?, global_text);
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("An error occurred:\n Error: {e:#}");
        // As IPFS Cluster's ctl: 2 when the peer answered with an error, 1 when the call
        // itself failed (unreachable, bad arguments).
        let answered = e
            .downcast_ref::<ipfs_cluster::client::ClientError>()
            .is_some_and(|c| c.code().is_some());
        std::process::exit(if answered { 2 } else { 1 });
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let auth = match &cli.basic_auth {
        Some(s) => {
            let (u, p) = s
                .split_once(':')
                .context("--basic-auth: expected user:password")?;
            Some((u.to_string(), p.to_string()))
        }
        // The local peer's own credential (the desktop app makes one), for loopback only.
        None => ipfs_cluster::config::ApiCredential::for_local_client(&cli.host)
            .map(|c| (c.user, c.password)),
    };
    let client = Client::new(&cli.host, auth, Duration::from_secs(cli.timeout))?;
    let enc = cli.enc;
    match cli.cmd {
        Cmd::Id => print(enc, &client.id().await?, id_text),
        Cmd::Version => print(enc, &client.version().await?, |v| {
            format!("{}\n", v.version)
        }),
        Cmd::Health { cmd: None } => {
            client.health().await?;
            println!("ok");
        }
        Cmd::Health {
            cmd: Some(HealthCmd::Metrics { name: None }),
        } => print(enc, &client.metric_names().await?, |names| {
            names.iter().map(|n| format!("{n}\n")).collect()
        }),
        Cmd::Health {
            cmd: Some(HealthCmd::Metrics { name: Some(name) }),
        } => print(enc, &client.metrics(&name).await?, |ms| {
            ms.iter().map(metric_text).collect()
        }),
        Cmd::Health {
            cmd: Some(HealthCmd::Alerts),
        } => print(enc, &client.alerts().await?, |alerts| {
            alerts
                .iter()
                .map(|a| {
                    format!(
                        "{} | {} | expired metric {} | triggered {}\n",
                        a.metric.peer,
                        a.metric.name,
                        a.metric.name,
                        a.triggered_at.to_rfc3339()
                    )
                })
                .collect()
        }),
        Cmd::Peers(PeersCmd::Ls) => {
            let peers = client.peers().await?;
            print(enc, &peers, |ps| ps.iter().map(id_text).collect());
        }
        Cmd::Peers(PeersCmd::Rm { peer }) => {
            client.peer_rm(&peer).await?;
            println!("Peer {peer} removed");
        }
        Cmd::Peers(PeersCmd::Promote { peer }) => {
            client.peer_role(&peer, "voter").await?;
            println!("Peer {peer} is now a voter");
        }
        Cmd::Peers(PeersCmd::Demote { peer }) => {
            client.peer_role(&peer, "follower").await?;
            println!("Peer {peer} is now a follower");
        }
        Cmd::Pin(PinCmd::Add {
            cid,
            name,
            replication,
            replication_min,
            replication_max,
            allocations,
            mode,
            metadata,
            wait,
        }) => {
            let (min, max) = match replication {
                Some(r) => (r, r),
                None => (replication_min, replication_max),
            };
            let opts = PinOptions {
                replication_factor_min: min,
                replication_factor_max: max,
                name,
                mode: mode.parse().map_err(anyhow::Error::msg)?,
                user_allocations: allocations
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                metadata: parse_metadata(&metadata)?,
                ..Default::default()
            };
            let pin = client.pin(&cid, &opts).await?;
            report(&client, enc, pin, &wait, TrackerStatus::Pinned).await?;
        }
        Cmd::Pin(PinCmd::Rm { cid, wait }) => {
            let pin = client.unpin(&cid).await?;
            report(&client, enc, pin, &wait, TrackerStatus::Unpinned).await?;
        }
        Cmd::Pin(PinCmd::Ls { cid, filter }) => match cid {
            Some(c) => print(enc, &client.allocation(&c).await?, pin_text),
            None => {
                let pins = client.allocations(&filter).await?;
                print(enc, &pins, |ps| ps.iter().map(pin_text).collect());
            }
        },
        Cmd::Status {
            cids,
            filter,
            local,
        } => {
            if local {
                let infos = if cids.is_empty() {
                    client.status_all_local(&filter).await?
                } else {
                    let mut v = Vec::new();
                    for c in &cids {
                        v.push(client.status_local(c).await?);
                    }
                    v
                };
                print(enc, &infos, |is| is.iter().map(local_text).collect());
            } else if cids.len() == 1 && filter.is_empty() {
                print(enc, &client.status(&cids[0]).await?, global_text);
            } else {
                let infos = client.status_all(&filter, &cids).await?;
                print(enc, &infos, |is| is.iter().map(global_text).collect());
            }
        }
        Cmd::Recover { cid, local } => match (cid, local) {
            (Some(c), false) => print(enc, &client.recover(&c).await?, global_text),
            (Some(c), true) => print(enc, &client.recover_local(&c).await?, local_text),
            (None, _) => {
                let infos = client.recover_all().await?;
                print(enc, &infos, |is| is.iter().map(global_text).collect());
            }
        },
    }
    Ok(())
}
