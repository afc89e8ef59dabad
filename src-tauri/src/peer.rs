//! The composition root: builds one implementation of each component contract from the
//! configuration, connects them, and stops them. It holds no behaviour: every loop belongs to
//! the component that owns its concern, and every task is spawned into one [`Tasks`], so
//! [`Peer::shutdown`] returns only when all of them have ended.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use libp2p::Multiaddr;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::allocator::Balanced;
use crate::cluster::{Cluster, Components, PeerDescriptor, PinOnly};
use crate::components::{Consensus, PinTracker};
use crate::config::{Config, Identity};
use crate::consensus::{crdt, Bootstrap, ClusterNode, ConsensusOptions, Engine, RaftConsensus};
use crate::error::Result;
use crate::informer::{self, Publisher};
use crate::ipfsconn::IpfsHttp;
use crate::monitor::PeerMonitor;
use crate::net::ListenAddr;
use crate::pintracker::{StatelessTracker, TrackerIdentity, TrackerIntervals};
use crate::rpc::{peerstore, ClusterRpc, SwarmOptions};
use crate::tasks::Tasks;

/// How this run of the peer meets its cluster.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// `daemon --bootstrap`: join the cluster of these peers (after backing up and cleaning
    /// any previous state).
    pub bootstrap: Vec<Multiaddr>,
    /// Join (or stay) as a non-voting follower.
    pub follower: bool,
    /// `daemon --stats`: serve Prometheus metrics even if `enable_stats` is off.
    pub stats: bool,
    /// `daemon --no-trust` (CRDT): the bootstrap peers are not added to the trusted peers.
    pub no_trust: bool,
    /// Cancelled to give up a start still under way (a stop signal while joining waits for
    /// a leader): the start then ends with [`crate::error::Error::Unavailable`], having stopped what it began.
    pub stop: CancellationToken,
    /// `ipfs-cluster-follow run`: serve the REST API only (no IPFS proxy, no Pinning
    /// Service API, no metrics), as IPFS Cluster's follower command does.
    pub rest_only: bool,
}

fn first_tcp(addrs: &[ListenAddr]) -> Option<SocketAddr> {
    addrs.iter().find_map(ListenAddr::tcp)
}

pub struct Peer {
    cluster: Cluster,
    consensus: Engine,
    /// Never empty (serving fails without an address).
    rest_addrs: Vec<ListenAddr>,
    /// Empty when not served ([`StartOptions::rest_only`]).
    proxy_addrs: Vec<ListenAddr>,
    pinsvc_addrs: Vec<ListenAddr>,
    /// Empty unless metrics are served.
    metrics_addrs: Vec<ListenAddr>,
    tasks: Tasks,
}

impl Peer {
    pub async fn start(
        folder: PathBuf,
        config: Config,
        identity: Identity,
        opts: StartOptions,
    ) -> Result<Peer> {
        if !config.not_acted_on.is_empty() {
            tracing::warn!(
                "service.json: accepted but not acted on by this peer: {}",
                config.not_acted_on.join(", ")
            );
        }
        let tasks = Tasks::new();
        // Attached to the future, not entered across its awaits (tracing's rule).
        let span = tracing::info_span!("peer", id = %identity.peer_id());
        let started = Peer::wire(folder, config, identity, opts, &tasks)
            .instrument(span)
            .await;
        if started.is_err() {
            tasks.shutdown().await;
        }
        started
    }

    async fn wire(
        folder: PathBuf,
        config: Config,
        identity: Identity,
        opts: StartOptions,
        tasks: &Tasks,
    ) -> Result<Peer> {
        let peer_id = identity.peer_id();
        let c = &config.cluster;
        let raft_cfg = &config.consensus.raft;
        let follower = opts.follower || c.follower_mode;
        let ipfs = Arc::new(IpfsHttp::new(&config.ipfs_connector.ipfshttp)?);

        // A CRDT peer: its section, whom it trusts, and its topic on the swarm.
        let crdt_cfg = config
            .consensus
            .crdt_mode
            .then(|| config.consensus.crdt.clone().unwrap_or_default());
        let bootstrap_ids: Vec<libp2p::PeerId> = opts
            .bootstrap
            .iter()
            .filter_map(|a| {
                a.iter().find_map(|p| match p {
                    libp2p::multiaddr::Protocol::P2p(id) => Some(id),
                    _ => None,
                })
            })
            .collect();
        // Metrics heard: pushed by members (Raft), or on the metrics topic (CRDT).
        let monitor = Arc::new(PeerMonitor::start(
            config.monitor.pubsubmon.check_interval.get(),
            tasks,
        ));
        let (pubsub, crdt_trust) = match &crdt_cfg {
            Some(cc) => {
                let vouched: &[libp2p::PeerId] = if opts.no_trust { &[] } else { &bootstrap_ids };
                let trust = crdt::trust(cc, &peer_id, vouched);
                let signers = crdt::checkpoint_signers(cc, vouched);
                let bans = Arc::new(crdt::bans::Bans::load(&folder)?);
                // Named trusted peers always find room in the monitor (with "*" every peer
                // is trusted: none is set apart).
                if let crdt::component::Trust::Only(_) = &trust {
                    let t = trust.clone();
                    monitor.protect(Arc::new(move |p: &str| t.trusts(p)));
                }
                let (pubsub, heard) = crdt::pubsub(
                    cc,
                    &trust,
                    bans.clone(),
                    monitor.clone(),
                    c.monitor_ping_interval.get(),
                );
                (Some(pubsub), Some((trust, signers, heard, bans)))
            }
            None => (None, None),
        };
        let swarm = SwarmOptions {
            keypair: identity.keypair.clone(),
            secret: c.secret.0,
            listen: c.listen_multiaddress.0.clone(),
            announce: c.announce_multiaddress.0.clone(),
            request_timeout: raft_cfg.membership_timeout(),
            limits: crate::rpc::SwarmLimits::of(&c.connection_manager),
            pubsub,
        };
        let rpc = ClusterRpc::start(swarm, tasks).await?;
        let peerstore_path = c.peerstore_path(&folder);
        let mut known = peerstore::read(&peerstore_path);
        // `cluster.peer_addresses` join the peerstore's, as IPFS Cluster adds them to its
        // peerstore at start (what a follow template bootstraps from); one naming no peer is
        // skipped, said once, as IPFS Cluster skips it.
        for (p, addr) in c.peer_addresses.iter().filter_map(|a| {
            let peer = a
                .parse::<Multiaddr>()
                .ok()
                .and_then(|m| crate::net::split_p2p(&m));
            if peer.is_none() {
                tracing::warn!(
                    "cluster.peer_addresses: {a:?} skipped: not a multiaddress ending in /p2p/<peer id>"
                );
            }
            peer
        }) {
            let addrs = known.entry(p).or_default();
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        for (p, addrs) in &known {
            rpc.learn(*p, addrs.clone());
        }
        // Others record and dial the announced addresses when there are any.
        let reachable = match &c.announce_multiaddress.0 {
            a if a.is_empty() => rpc.listen_addrs(),
            a => a.clone(),
        };
        let me_node = ClusterNode {
            peer_id: peer_id.to_string(),
            addrs: reachable.iter().map(|a| a.to_string()).collect(),
            // Set by the consensus, which keeps it with the Raft state.
            history: None,
        };
        let joining = !opts.bootstrap.is_empty();
        let (changes_tx, changes_rx) = crate::state::feed::feed(
            config
                .pin_tracker
                .stateless
                .state_feed_capacity
                .unwrap_or(crate::state::feed::DEFAULT_CAPACITY),
        );
        let engine = match (crdt_cfg, crdt_trust) {
            (Some(cc), Some((trust, signers, heard, bans))) => {
                // The peers it knows, and those it was told to bootstrap from.
                let mut connect: Vec<_> = known.clone().into_iter().collect();
                for a in &opts.bootstrap {
                    let id = a.iter().find_map(|p| match p {
                        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
                        _ => None,
                    });
                    if let Some(id) = id {
                        connect.push((id, vec![a.clone()]));
                    }
                }
                let started = crdt::start(
                    crdt::CrdtStart {
                        folder: &folder,
                        config: &cc,
                        follower,
                        peer_id,
                        keypair: identity.keypair.clone(),
                        signers,
                        trust,
                        rpc: &rpc,
                        heard,
                        changes: changes_tx,
                        connect,
                        // At most the monitor's ping interval, at least every 5 s: a peer
                        // back is met again soon.
                        members_interval: c
                            .monitor_ping_interval
                            .get()
                            .min(std::time::Duration::from_secs(5)),
                        monitor: monitor.clone(),
                        bans,
                    },
                    tasks,
                )
                .await?;
                Engine::crdt(started)
            }
            _ => {
                let bootstrap =
                    Bootstrap::decide(&folder, raft_cfg, joining, &me_node, &known).await?;
                let consensus_opts = ConsensusOptions {
                    folder: folder.clone(),
                    config: raft_cfg.clone(),
                    peer_id,
                    addrs: me_node.addrs.clone(),
                    transport: Arc::new(rpc.clone()),
                    changes: changes_tx,
                    bootstrap,
                    learner_is_ready: !joining || follower,
                };
                let raft = Arc::new(RaftConsensus::start(consensus_opts, tasks).await?);
                raft.identify_when_ready();
                raft.notice_removal_while_away();
                Engine::Raft(raft)
            }
        };
        let consensus: Arc<dyn Consensus> = engine.consensus();

        let tracker = StatelessTracker::start(
            TrackerIdentity {
                peer_id: peer_id.to_string(),
                peername: c.peername.clone(),
            },
            consensus.state(),
            ipfs.clone(),
            config.pin_tracker.stateless.clone(),
            TrackerIntervals {
                state_sync: c.state_sync_interval.get(),
                recover: c.pin_recover_interval.get(),
                ipfs_watch: c.peer_watch_interval.get(),
            },
            tasks,
        );
        tracker.follow(changes_rx);
        let tracker: Arc<dyn PinTracker> = Arc::new(tracker);

        let me = PeerDescriptor {
            peer_id: peer_id.to_string(),
            peername: c.peername.clone(),
            addresses: me_node
                .addrs
                .iter()
                .map(|a| format!("{a}/p2p/{peer_id}"))
                .collect(),
        };
        let components = Components {
            consensus: consensus.clone(),
            tracker: tracker.clone(),
            ipfs: ipfs.clone(),
            rpc: Arc::new(rpc.clone()),
            monitor: monitor.clone(),
            allocator: Arc::new(Balanced {
                allocate_by: config.allocator.balanced.allocate_by.clone(),
            }),
        };
        let cluster = Cluster::new(
            components,
            me,
            (c.replication_factor_min, c.replication_factor_max),
        );
        let cluster = match follower && config.consensus.crdt_mode {
            true => cluster.closed_to_remote_repo_gc(),
            false => cluster,
        };
        let cluster = match config.consensus.crdt_mode {
            true => cluster.leaderless(!c.disable_repinning),
            false => cluster,
        };
        let cluster = cluster.pinning_only_on(
            match (c.pin_only_on_trusted_peers, c.pin_only_on_untrusted_peers) {
                (true, _) => PinOnly::Trusted,
                (_, true) => PinOnly::Untrusted,
                _ => PinOnly::Anywhere,
            },
        );
        Publisher {
            me: peer_id.to_string(),
            peername: c.peername.clone(),
            informers: informer::from_config(&config.informer, ipfs.clone(), tracker),
            interval: c.monitor_ping_interval.get(),
            monitor,
            members: consensus.watch_members(),
            rpc: Arc::new(rpc.clone()),
            route: match config.consensus.crdt_mode {
                true => informer::Route::Pubsub,
                false => informer::Route::ToMembers,
            },
        }
        .start(tasks);
        if !c.disable_repinning {
            cluster.repin_on_alerts(tasks);
        }
        // IPFS Cluster checks expiry at each state sync; at least every minute here.
        let expiry_check = c
            .state_sync_interval
            .get()
            .min(std::time::Duration::from_secs(60));
        cluster.unpin_expired(expiry_check, tasks);
        rpc.serve(engine.raft_service(), Arc::new(cluster.clone()));

        // Every API listens before the peer joins (as IPFS Cluster's daemon does): a port
        // taken stops the start while the cluster has not counted this peer yet, and the
        // same start can be tried again once it is free. (Joined first, a peer whose REST
        // port was taken was a member that had never run.)
        let rest_addrs =
            crate::restapi::serve(cluster.clone(), &config.api.restapi.0, &folder, tasks).await?;
        let scheme = if config.api.restapi.0.ssl_cert_file.is_empty() {
            "http"
        } else {
            "https"
        };
        for addr in &rest_addrs {
            tracing::info!("REST API listening on {}", addr.url(scheme));
        }
        let serve_all = !opts.rest_only;
        let proxy_addrs = match serve_all {
            true => {
                let proxy = &config.api.ipfsproxy;
                crate::ipfsproxy::serve(cluster.clone(), proxy, &folder, tasks).await?
            }
            false => Vec::new(),
        };
        for addr in &proxy_addrs {
            tracing::info!("IPFS proxy API listening on {}", addr.url("http"));
        }
        let pinsvc = &config.api.pinsvcapi.0;
        let pinsvc_addrs = match serve_all {
            true => crate::pinsvcapi::serve(cluster.clone(), pinsvc, &folder, tasks).await?,
            false => Vec::new(),
        };
        let scheme = if pinsvc.ssl_cert_file.is_empty() {
            "http"
        } else {
            "https"
        };
        for addr in &pinsvc_addrs {
            tracing::info!("Pinning Service API listening on {}", addr.url(scheme));
        }
        let metrics = &config.observations.metrics;
        let metrics_addrs = if serve_all && (metrics.enable_stats || opts.stats) {
            let addrs =
                crate::observations::serve(cluster.clone(), metrics, &folder, tasks).await?;
            for addr in &addrs {
                tracing::info!("Prometheus metrics at {}/metrics", addr.url("http"));
            }
            addrs
        } else {
            Vec::new()
        };
        if let (true, Engine::Raft(raft)) = (joining, &engine) {
            raft.join_cluster(&opts.bootstrap, follower, &opts.stop)
                .await?;
        }
        rpc.keep_peerstore(consensus.clone(), peerstore_path);
        let swarm_delay = config.ipfs_connector.ipfshttp.connect_swarms_delay.get();
        cluster.connect_swarms(swarm_delay, tasks);
        Ok(Peer {
            cluster,
            consensus: engine,
            rest_addrs,
            proxy_addrs,
            pinsvc_addrs,
            metrics_addrs,
            tasks: tasks.clone(),
        })
    }

    /// Cluster operations, as every front end uses them.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The REST API's first TCP address (none when it listens on unix sockets only).
    pub fn rest_addr(&self) -> Option<SocketAddr> {
        first_tcp(&self.rest_addrs)
    }

    /// Every address the REST API listens on, in the configured order.
    pub fn rest_addrs(&self) -> &[ListenAddr] {
        &self.rest_addrs
    }

    /// The IPFS proxy API's first TCP address, if it serves one.
    pub fn proxy_addr(&self) -> Option<SocketAddr> {
        first_tcp(&self.proxy_addrs)
    }

    /// The Pinning Service API's first TCP address, if it serves one.
    pub fn pinsvc_addr(&self) -> Option<SocketAddr> {
        first_tcp(&self.pinsvc_addrs)
    }

    /// Where Prometheus metrics are served, if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        first_tcp(&self.metrics_addrs)
    }

    /// Cluster swarm addresses, with `/p2p/<id>`: what others pass to `--bootstrap`.
    pub fn cluster_addrs(&self) -> Vec<String> {
        self.cluster.me().addresses.clone()
    }

    /// Resolves once consensus is ready (leader known, state caught up, role reached).
    pub async fn ready(&self) {
        self.consensus.wait_ready().await
    }

    pub fn is_ready(&self) -> bool {
        self.consensus.is_ready()
    }

    /// Fires when this peer has been removed from the cluster.
    pub fn removed(&self) -> CancellationToken {
        self.consensus.removed()
    }

    /// Fires when Raft stopped for good on an error (see `RaftConsensus::stopped`).
    pub fn stopped(&self) -> CancellationToken {
        self.consensus.stopped()
    }

    /// Stops every task this peer started, Raft among them, and waits until all have ended;
    /// a leader first hands leadership over (a planned stop costs the cluster's writes a
    /// round trip, not an election timeout).
    pub async fn shutdown(&self) {
        self.consensus.step_down().await;
        self.tasks.shutdown().await;
    }

    /// Tasks of this peer still running (none once [`Peer::shutdown`] returned).
    pub fn running_tasks(&self) -> usize {
        self.tasks.len()
    }
}
