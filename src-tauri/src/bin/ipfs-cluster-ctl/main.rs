//! `ipfs-cluster-ctl`: IPFS Cluster's command-line client of the REST API, with its command
//! names, flags and text output, so users' scripts keep working.

mod add;
mod graph;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ipfs_cluster::client::Client;
use ipfs_cluster::types::{GlobalPinInfo, Id, Pin, PinInfo, PinMode, PinOptions, TrackerStatus};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "ipfs-cluster-ctl",
    version = ipfs_cluster::types::full_version(),
    about = "Controls an IPFS Cluster peer through its REST API",
    long_about = "Controls an IPFS Cluster peer through its REST API: pins, status, peers, \
                  health. The commands, flags and outputs are IPFS Cluster's, so existing \
                  scripts keep working; --enc json prints one JSON object per item.",
    after_help = "Exit codes: 0 success, 1 the call failed (peer unreachable, bad \
                  arguments), 2 the peer answered with an error, 62 no answer in time or a \
                  --wait gave up."
)]
struct Cli {
    /// Cluster peer REST API: multiaddr (`/unix/<path>` for a unix socket), host:port or URL.
    #[arg(
        short = 'l',
        long,
        global = true,
        help_heading = "Global options",
        default_value = "/ip4/127.0.0.1/tcp/9094",
        env = "CLUSTER_HOST"
    )]
    host: String,
    /// user:password for the REST API's basic auth. Without it, a peer on this machine is
    /// asked with the credential in its folder's `restapi.credential`, if there is one.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "CLUSTER_CREDENTIALS",
        hide_env_values = true
    )]
    basic_auth: Option<String>,
    /// Output encoding.
    #[arg(long, global = true,
        help_heading = "Global options", value_enum, default_value_t = Enc::Text)]
    enc: Enc,
    /// Seconds before a request is abandoned.
    #[arg(
        short = 't',
        long,
        global = true,
        help_heading = "Global options",
        default_value_t = 60
    )]
    timeout: u64,
    /// Uses HTTPS to reach the API.
    #[arg(short = 's', long, global = true, help_heading = "Global options")]
    https: bool,
    /// Does not verify the server's TLS certificate (with --https).
    #[arg(long, global = true, help_heading = "Global options")]
    no_check_certificate: bool,
    /// Keeps plain HTTP with --basic-auth (which otherwise switches to HTTPS, as IPFS
    /// Cluster's ctl does). Before the command, as in IPFS Cluster's ctl (`health graph`
    /// has its own -f).
    #[arg(short = 'f', long)]
    force_http: bool,
    /// The cluster secret, for IPFS Cluster's libp2p API endpoints (accepted; this ctl
    /// talks HTTP only).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        hide_env_values = true,
        value_name = "HEX"
    )]
    secret: Option<String>,
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
    /// Adds files or folders to IPFS through the peer and pins the result in the cluster.
    ///
    /// Several paths are wrapped in one directory. Prints `added <cid> <name>` for every
    /// file and folder, the root last.
    Add(AddArgs),
    /// Runs IPFS operations on the cluster's IPFS daemons.
    #[command(subcommand)]
    Ipfs(IpfsCmd),
    /// Lists, removes, promotes or demotes cluster peers.
    #[command(subcommand)]
    Peers(PeersCmd),
    /// Adds, removes and lists pins.
    #[command(subcommand)]
    Pin(PinCmd),
    /// Status of pins in the cluster (of one or more CIDs, or of all).
    Status {
        /// CIDs to show (all pins when none).
        cids: Vec<String>,
        /// Comma-separated statuses, e.g. pinned,error.
        #[arg(long, default_value = "", hide_default_value = true)]
        filter: String,
        /// Only this peer's status.
        #[arg(long)]
        local: bool,
        /// This peer's pins counted by status, at once whatever the pinset's size (not in
        /// IPFS Cluster's ctl).
        #[arg(long, conflicts_with_all = ["cids", "filter", "local"])]
        summary: bool,
    },
    /// Retries failed pins and unpins (of one CID or of all).
    Recover {
        /// The CID to retry (every failed one when none).
        cid: Option<String>,
        #[arg(long)]
        local: bool,
    },
    /// Prints the peer's version.
    Version,
    /// Liveness (without a subcommand), metrics, alerts, the connectivity graph and
    /// bandwidth.
    Health {
        #[command(subcommand)]
        cmd: Option<HealthCmd>,
    },
}

#[derive(Subcommand)]
enum HealthCmd {
    /// Lists metric names, or the latest metric of that name from every peer.
    Metrics {
        /// A metric name (e.g. freespace, ping).
        name: Option<String>,
    },
    /// Lists recent alerts (expired metrics).
    Alerts,
    /// This peer's cluster traffic by protocol: bytes in and out, and rates.
    Bandwidth,
    /// Writes the cluster's connectivity as a Graphviz dot graph (`| dot -Tpng`).
    Graph {
        /// Writes to this file instead of standard output.
        #[arg(short, long)]
        file: Option<PathBuf>,
        /// Also draws the IPFS peers that are not the cluster's.
        #[arg(long)]
        all_ipfs_peers: bool,
    },
}

#[derive(Subcommand)]
enum IpfsCmd {
    /// Runs garbage collection on every peer's IPFS daemon (or this peer's, with --local).
    Gc {
        #[arg(long)]
        local: bool,
    },
}

/// Pin options shared by `add`, `pin add` and `pin update`.
#[derive(Args)]
struct PinArgs {
    /// A name for the pin.
    #[arg(short = 'n', long, default_value = "", hide_default_value = true)]
    name: String,
    /// Fewest peers that must pin it (0: the cluster's default).
    #[arg(
        long = "replication-min",
        visible_alias = "rmin",
        default_value_t = 0,
        hide_default_value = true
    )]
    replication_min: i32,
    /// Most peers that pin it (-1: every peer; 0: the cluster's default).
    #[arg(
        long = "replication-max",
        visible_alias = "rmax",
        default_value_t = 0,
        hide_default_value = true
    )]
    replication_max: i32,
    /// Peer ids to allocate to first (comma-separated).
    #[arg(
        long,
        visible_alias = "allocs",
        default_value = "",
        hide_default_value = true
    )]
    allocations: String,
    /// The pin expires (is removed from the cluster) after this long: a Go duration
    /// (`24h`, `90m`).
    #[arg(long, value_parser = parse_duration)]
    expire_in: Option<Duration>,
    /// key=value, repeatable.
    #[arg(long)]
    metadata: Vec<String>,
}

#[derive(Args)]
struct AddArgs {
    /// Files or folders to add.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Adds folders with their content.
    #[arg(short, long)]
    recursive: bool,
    /// Prints only CIDs.
    #[arg(short, long)]
    quiet: bool,
    /// Prints only the root's CID.
    #[arg(short = 'Q', long)]
    quieter: bool,
    /// Waits for the whole add before printing (the peer answers with one list).
    #[arg(long)]
    no_stream: bool,
    /// Adds through this peer only (every add does here; accepted for IPFS Cluster's
    /// scripts).
    #[arg(long)]
    local: bool,
    #[command(flatten)]
    pin: PinArgs,
    /// Adds to IPFS without pinning in the cluster.
    #[arg(long)]
    no_pin: bool,
    /// Wraps the files in a directory (always with several paths).
    #[arg(short, long)]
    wrap_with_directory: bool,
    /// unixfs, or car (a CAR file with a single root).
    #[arg(long, default_value = "unixfs")]
    format: String,
    /// Includes files whose name starts with a dot.
    #[arg(short = 'H', long)]
    hidden: bool,
    /// IPFS chunker, e.g. size-262144.
    #[arg(long)]
    chunker: Option<String>,
    /// Raw leaves (IPFS's default with --cid-version 1).
    #[arg(long)]
    raw_leaves: bool,
    #[arg(long)]
    cid_version: Option<u8>,
    /// Waits until the root is pinned on every allocated peer (`-w` is
    /// --wrap-with-directory here, as in IPFS Cluster's ctl).
    #[arg(long)]
    wait: bool,
    /// Gives up waiting after this long (Go duration or seconds; exits with 62).
    #[arg(long, alias = "wt", default_value = "0", value_parser = parse_duration)]
    wait_timeout: Duration,
}

#[derive(Subcommand)]
enum PeersCmd {
    /// Lists every peer with its ID.
    Ls,
    /// Removes a peer from the cluster.
    Rm {
        /// The peer id.
        peer: String,
    },
    /// Makes a follower a voter.
    Promote {
        /// The peer id.
        peer: String,
    },
    /// Makes a voter a follower (it keeps replicating but no longer counts for quorum).
    Demote {
        /// The peer id.
        peer: String,
    },
}

#[derive(Args)]
struct WaitArgs {
    /// Waits until the operation is done on every allocated peer.
    #[arg(short, long)]
    wait: bool,
    /// Prints the pin instead of its status afterwards (faster, quieter).
    #[arg(long = "no-status", alias = "ns")]
    no_status: bool,
    /// Stops waiting once this many peers reached the status (0: every allocated peer).
    #[arg(long, alias = "wl", default_value_t = 0)]
    wait_limit: usize,
    /// Gives up waiting after this long: a Go duration (`1m`, `30s`) or seconds (0 = no
    /// limit); giving up exits with 62.
    #[arg(long, alias = "wt", default_value = "0", value_parser = parse_duration)]
    wait_timeout: Duration,
}

/// A duration as IPFS Cluster's ctl takes it (a Go duration), or bare seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
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
        /// A CID, or an /ipfs/, /ipns/ or /ipld/ path to resolve.
        #[arg(required_unless_present = "from_file")]
        cid: Option<String>,
        /// Pins every line of FILE ("-": standard input) in one request: NDJSON, a pin a
        /// line, {"cid": …} with any of the pin's fields (a line of `state export` is one).
        /// Prints each pin as it is committed; lines that fail are reported and make the
        /// exit status 1. The other options do not apply to these pins.
        #[arg(long, value_name = "FILE", conflicts_with = "cid")]
        from_file: Option<String>,
        /// Sets both replication factors.
        #[arg(short = 'r', long)]
        replication: Option<i32>,
        /// recursive or direct.
        #[arg(long, default_value = "recursive")]
        mode: String,
        #[command(flatten)]
        pin: PinArgs,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Pins TO as an update of the pin of FROM (same options and allocations; IPFS fetches
    /// only what differs). FROM stays pinned.
    Update {
        /// The pinned CID whose options and allocations are copied.
        from: String,
        /// The CID to pin.
        to: String,
        /// A name for the new pin (default: the old pin's).
        #[arg(short = 'n', long, default_value = "", hide_default_value = true)]
        name: String,
        /// The new pin expires after this long (a Go duration).
        #[arg(long, value_parser = parse_duration)]
        expire_in: Option<Duration>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Unpins a CID from the cluster.
    Rm {
        /// A CID, or an /ipfs/, /ipns/ or /ipld/ path to resolve.
        cid: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Lists the pinset (or one pin).
    Ls {
        /// One pin to show (the whole pinset when none).
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

/// Prints each item of a listing as it arrives (never the whole listing held at once).
async fn print_each<T: Serialize>(
    enc: Enc,
    mut items: ipfs_cluster::client::Items<T>,
    text: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    use std::io::Write;
    // Not the stdout lock: it would be held across the waits for the next item.
    let mut out = std::io::BufWriter::new(std::io::stdout());
    while let Some(item) = items.next().await {
        let item = item?;
        match enc {
            Enc::Json => writeln!(out, "{}", serde_json::to_string_pretty(&item)?)?,
            Enc::Text => write!(out, "{}", text(&item))?,
        }
    }
    out.flush()?;
    Ok(())
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

fn gc_text(gc: &ipfs_cluster::types::RepoGc) -> String {
    let mut s = if gc.error.is_empty() {
        format!(
            "{} | {} | {} blocks removed\n",
            gc.peer,
            gc.peername,
            gc.keys.len()
        )
    } else {
        format!("{} | {} | ERROR: {}\n", gc.peer, gc.peername, gc.error)
    };
    for k in &gc.keys {
        match (&k.key, k.error.is_empty()) {
            (Some(c), true) => s += &format!("    - {c}\n"),
            (Some(c), false) => s += &format!("    - {c} | ERROR: {}\n", k.error),
            (None, _) => s += &format!("    - ERROR: {}\n", k.error),
        }
    }
    s
}

fn local_text(p: &PinInfo) -> String {
    format!("{}:\n{}", p.cid, short_text(&p.peer, &p.info))
}

fn summary_text(s: &ipfs_cluster::types::StatusSummary) -> String {
    let mut out = format!(
        "{} ({}): {} pins in the cluster, {} allocated here\n",
        s.peername, s.peer, s.pins, s.allocated_here
    );
    for (name, n) in [
        ("pinned", s.pinned),
        ("remote", s.remote),
        ("pin_queued", s.pin_queued),
        ("pinning", s.pinning),
        ("pin_error", s.pin_error),
        ("unpin_queued", s.unpin_queued),
        ("unpinning", s.unpinning),
        ("unpin_error", s.unpin_error),
        ("cluster_error", s.cluster_error),
    ] {
        if n > 0 || matches!(name, "pinned" | "remote") {
            out.push_str(&format!("  {name:>13}: {n}\n"));
        }
    }
    out
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

/// Pin options from the shared flags (`min`/`max` after `-r`).
fn pin_options(args: &PinArgs, min: i32, max: i32, mode: PinMode) -> anyhow::Result<PinOptions> {
    Ok(PinOptions {
        replication_factor_min: min,
        replication_factor_max: max,
        name: args.name.clone(),
        mode,
        user_allocations: args
            .allocations
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        expire_at: expiry(args.expire_in)?,
        metadata: parse_metadata(&args.metadata)?,
        ..Default::default()
    })
}

fn expiry(expire_in: Option<Duration>) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
    expire_in
        .map(|d| Ok(chrono::Utc::now() + chrono::Duration::from_std(d)?))
        .transpose()
}

/// Waiting gave up (`--wait-timeout`): exit 62, as IPFS Cluster's ctl.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TimedOut(String);

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
        let finished = relevant.iter().filter(|i| done(i.status)).count();
        let enough = match args.wait_limit {
            0 => finished == relevant.len(),
            limit => finished >= limit.min(relevant.len().max(1)),
        };
        if enough {
            return Ok(st);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(TimedOut(format!(
                "{cid}: still not done after {:?}",
                args.wait_timeout
            ))
            .into());
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
        // As IPFS Cluster's ctl: 2 when the peer answered with an error, 62 (ETIME) when
        // it did not answer in time or a wait gave up, 1 when the call itself failed.
        let client = e.downcast_ref::<ipfs_cluster::client::ClientError>();
        let code = match client {
            Some(c) if c.code().is_some() => 2,
            Some(ipfs_cluster::client::ClientError::Timeout { .. }) => 62,
            _ if e.downcast_ref::<TimedOut>().is_some() => 62,
            _ => 1,
        };
        std::process::exit(code);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut https = cli.https;
    let auth = match &cli.basic_auth {
        Some(s) => {
            let (u, p) = s
                .split_once(':')
                .context("--basic-auth: expected user:password")?;
            let unix = cli.host.trim().starts_with("/unix/");
            if !https && !cli.force_http && !unix && !cli.host.starts_with("http://") {
                // IPFS Cluster's ctl never sends a password in clear unless told to (a unix
                // socket's bytes never leave the machine).
                eprintln!("SSL automatically enabled with basic auth credentials. Set \"force-http\" to disable");
                https = true;
            }
            Some((u.to_string(), p.to_string()))
        }
        // The local peer's own credential (the desktop app makes one), for loopback only,
        // and only once the server proves it is that peer (below).
        None => None,
    };
    let transport = ipfs_cluster::client::Transport {
        https,
        insecure: cli.no_check_certificate,
    };
    let timeout = Duration::from_secs(cli.timeout);
    let local = match &auth {
        Some(_) => None,
        None => ipfs_cluster::config::ApiCredential::for_local_client(&cli.host),
    };
    // The credentialed client then dials the address that proved itself, nothing else.
    let (host, auth) = match local {
        None => (cli.host.clone(), auth),
        Some(cred) => {
            // Another user's program on that port (or a peer without this credential) gets
            // no credential; if the API needs one, its 401 says so.
            let anonymous = Client::with_transport(&cli.host, None, timeout, transport)?;
            match anonymous.server_knows(&cred).await {
                Some(addr) => (addr.to_string(), Some((cred.user, cred.password))),
                None => (cli.host.clone(), None),
            }
        }
    };
    let client = Client::with_transport(&host, auth, timeout, transport)?;
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
            from_file: Some(file),
            ..
        }) => {
            let body = if file == "-" {
                reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(tokio::io::stdin()))
            } else {
                let f = tokio::fs::File::open(&file)
                    .await
                    .with_context(|| format!("cannot open {file}"))?;
                reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f))
            };
            let mut results = client.pin_many(body).await?;
            let mut failed = 0u64;
            while let Some(r) = futures::StreamExt::next(&mut results).await {
                let r = r?;
                if r.code != 200 {
                    failed += 1;
                }
                match (enc, &r.pin) {
                    (Enc::Json, _) => println!("{}", serde_json::to_string(&r)?),
                    (Enc::Text, Some(p)) => println!("{}", p.cid),
                    (Enc::Text, None) => {
                        eprintln!("line {}: error ({}): {}", r.line, r.code, r.message)
                    }
                }
            }
            if failed > 0 {
                eprintln!("{failed} line(s) not pinned");
                std::process::exit(1);
            }
        }
        Cmd::Pin(PinCmd::Add {
            cid,
            replication,
            mode,
            pin,
            wait,
            from_file: None,
        }) => {
            let cid = cid.context("a CID is required")?;
            let (min, max) = match replication {
                Some(r) => (r, r),
                None => (pin.replication_min, pin.replication_max),
            };
            let mode = mode.parse().map_err(anyhow::Error::msg)?;
            let opts = pin_options(&pin, min, max, mode)?;
            let pin = client.pin(&cid, &opts).await?;
            report(&client, enc, pin, &wait, TrackerStatus::Pinned).await?;
        }
        Cmd::Pin(PinCmd::Update {
            from,
            to,
            name,
            expire_in,
            wait,
        }) => {
            let opts = PinOptions {
                name,
                expire_at: expiry(expire_in)?,
                ..Default::default()
            };
            let pin = client.pin_update(&from, &to, &opts).await?;
            report(&client, enc, pin, &wait, TrackerStatus::Pinned).await?;
        }
        Cmd::Add(args) => {
            let opts = pin_options(
                &args.pin,
                args.pin.replication_min,
                args.pin.replication_max,
                PinMode::Recursive,
            )?;
            let mut query = ipfs_cluster::client::pin_query(&opts);
            let flag = |k: &str, on: bool| on.then(|| (k.to_string(), "true".to_string()));
            query.extend(
                [
                    flag(
                        "wrap-with-directory",
                        args.wrap_with_directory || args.paths.len() > 1,
                    ),
                    flag("hidden", args.hidden),
                    flag("no-pin", args.no_pin),
                    flag("local", args.local),
                    flag("raw-leaves", args.raw_leaves),
                ]
                .into_iter()
                .flatten(),
            );
            query.push(("format".into(), args.format.clone()));
            query.push(("stream-channels".into(), (!args.no_stream).to_string()));
            if let Some(v) = args.cid_version {
                query.push(("cid-version".into(), v.to_string()));
            }
            if let Some(c) = &args.chunker {
                query.push(("chunker".into(), c.clone()));
            }
            let show = add::Output {
                json: enc == Enc::Json,
                quiet: args.quiet,
                quieter: args.quieter,
            };
            let root = add::add(
                &client,
                &args.paths,
                args.recursive,
                args.hidden,
                query,
                show,
            )
            .await?;
            if args.wait && !args.no_pin {
                let wait = WaitArgs {
                    wait: true,
                    no_status: true,
                    wait_limit: 0,
                    wait_timeout: args.wait_timeout,
                };
                wait_for(&client, &root, &wait, |s| s == TrackerStatus::Pinned).await?;
            }
        }
        Cmd::Health {
            cmd: Some(HealthCmd::Bandwidth),
        } => print(enc, &client.bandwidth().await?, |bw| {
            bw.iter()
                .map(|(proto, b)| {
                    format!(
                        "{proto}: in {} B ({:.0} B/s), out {} B ({:.0} B/s)\n",
                        b.total_in, b.rate_in, b.total_out, b.rate_out
                    )
                })
                .collect()
        }),
        Cmd::Ipfs(IpfsCmd::Gc { local }) => {
            let gcs = if local {
                vec![client.ipfs_gc_local().await?]
            } else {
                client.ipfs_gc().await?.peer_map.into_values().collect()
            };
            print(enc, &gcs, |gcs| gcs.iter().map(gc_text).collect());
        }
        Cmd::Health {
            cmd:
                Some(HealthCmd::Graph {
                    file,
                    all_ipfs_peers,
                }),
        } => {
            let g = client.graph().await?;
            if enc == Enc::Json {
                print(enc, &g, |_| String::new());
            } else {
                let text = graph::dot(&g, all_ipfs_peers);
                match file {
                    Some(f) => {
                        std::fs::write(&f, text).with_context(|| format!("{}", f.display()))?
                    }
                    None => print!("{text}"),
                }
            }
        }
        Cmd::Pin(PinCmd::Rm { cid, wait }) => {
            let pin = client.unpin(&cid).await?;
            report(&client, enc, pin, &wait, TrackerStatus::Unpinned).await?;
        }
        Cmd::Pin(PinCmd::Ls { cid, filter }) => match cid {
            Some(c) => print(enc, &client.allocation(&c).await?, pin_text),
            None => print_each(enc, client.allocations(&filter).await?, pin_text).await?,
        },
        Cmd::Status {
            cids,
            filter,
            local,
            summary,
        } => {
            if summary {
                print(enc, &client.status_summary().await?, summary_text);
            } else if local && cids.is_empty() {
                print_each(enc, client.status_all_local(&filter).await?, local_text).await?;
            } else if local {
                for c in &cids {
                    print(enc, &client.status_local(c).await?, local_text);
                }
            } else if cids.len() == 1 && filter.is_empty() {
                print(enc, &client.status(&cids[0]).await?, global_text);
            } else {
                print_each(enc, client.status_all(&filter, &cids).await?, global_text).await?;
            }
        }
        Cmd::Recover { cid, local } => match (cid, local) {
            (Some(c), false) => print(enc, &client.recover(&c).await?, global_text),
            (Some(c), true) => print(enc, &client.recover_local(&c).await?, local_text),
            (None, _) => print_each(enc, client.recover_all().await?, global_text).await?,
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_and_flag_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
