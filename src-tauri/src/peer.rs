//! The composition root: builds each component from the configuration, connects them, and
//! stops them. No cluster logic lives here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Cluster, PeerDescriptor};
use crate::components::{Consensus, IpfsConnector, PinTracker};
use crate::config::{Config, Identity};
use crate::consensus::{offline, Bootstrap, ClusterNode, ConsensusOptions, RaftConsensus};
use crate::informer::{self, Informer};
use crate::ipfsconn::IpfsHttp;
use crate::monitor::PeerMonitor;
use crate::pintracker::{StatelessTracker, TrackerIdentity, TrackerIntervals};
use crate::rpc::{self, peerstore, ClusterRpc, RpcHandler, RpcRequest, RpcResponse, SwarmOptions};
use crate::state::StateChange;

/// How this run of the peer meets its cluster.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// `daemon --bootstrap`: join the cluster of these peers (after backing up and cleaning
    /// any previous state).
    pub bootstrap: Vec<Multiaddr>,
    /// Join (or stay) as a non-voting follower.
    pub follower: bool,
}

pub struct Peer {
    pub cluster: Cluster,
    consensus: Arc<RaftConsensus>,
    tracker: StatelessTracker,
    rpc: ClusterRpc,
    rest_addr: SocketAddr,
    shutdown: CancellationToken,
}

/// Answers other peers' calls with this peer's components.
struct Handler {
    consensus: Arc<RaftConsensus>,
    cluster: Cluster,
}

#[async_trait]
impl RpcHandler for Handler {
    async fn handle(&self, from: PeerId, req: RpcRequest) -> RpcResponse {
        match req {
            RpcRequest::Raft(r) => RpcResponse::Raft(self.consensus.serve(r).await),
            RpcRequest::Id => RpcResponse::Id(self.cluster.id().await),
            RpcRequest::Metrics(metrics) => {
                for m in metrics {
                    // A peer speaks only for itself.
                    if m.peer == from.to_string() {
                        self.cluster.monitor.log_metric(m);
                    }
                }
                RpcResponse::Ok
            }
            RpcRequest::Pins(call) => RpcResponse::Pins(self.cluster.local_call(call).await),
        }
    }
}

fn node_of(addr: &Multiaddr) -> Result<ClusterNode, String> {
    let (peer, base) = peerstore::split_p2p(addr)
        .ok_or_else(|| format!("bootstrap address {addr} must end in /p2p/<peer id>"))?;
    Ok(ClusterNode {
        peer_id: peer.to_string(),
        addrs: vec![base.to_string()],
    })
}

impl Peer {
    pub async fn start(
        folder: PathBuf,
        config: Config,
        identity: Identity,
        opts: StartOptions,
    ) -> Result<Peer, String> {
        let peer_id = identity.peer_id();
        let span = tracing::info_span!("peer", id = %peer_id);
        let _guard = span.enter();
        let shutdown = CancellationToken::new();
        let c = &config.cluster;
        let raft_cfg = &config.consensus.raft;
        let follower = opts.follower || c.follower_mode;
        let ipfs = Arc::new(IpfsHttp::new(&config.ipfs_connector.ipfshttp)?);

        let rpc = ClusterRpc::start(SwarmOptions {
            keypair: identity.keypair.clone(),
            secret: c.secret.0,
            listen: c.listen_multiaddress.0.clone(),
            request_timeout: raft_cfg.membership_timeout(),
        })
        .await
        .map_err(|e| e.to_string())?;
        let peerstore_path = folder.join(&c.peerstore_file);
        let known = peerstore::read(&peerstore_path);
        for (p, addrs) in &known {
            rpc.learn(*p, addrs.clone());
        }
        let my_addrs: Vec<String> = rpc.listen_addrs().iter().map(|a| a.to_string()).collect();

        let bootstrap = if !opts.bootstrap.is_empty() {
            if let Some(b) = offline::cleanup(&folder, raft_cfg.backups_rotate).await? {
                tracing::info!(
                    "previous state backed up to {} and cleaned for the bootstrap",
                    b.display()
                );
            }
            Bootstrap::Join
        } else if !raft_cfg.init_peerset.is_empty() {
            let mut nodes = Vec::new();
            for id in &raft_cfg.init_peerset {
                let p: PeerId = id
                    .parse()
                    .map_err(|e| format!("consensus.raft.init_peerset: {id:?}: {e}"))?;
                let addrs = if p == peer_id {
                    my_addrs.clone()
                } else {
                    known
                        .get(&p)
                        .into_iter()
                        .flatten()
                        .map(|a| a.to_string())
                        .collect()
                };
                nodes.push(ClusterNode {
                    peer_id: id.clone(),
                    addrs,
                });
            }
            Bootstrap::Peerset(nodes)
        } else {
            Bootstrap::SingleVoter
        };

        let (changes_tx, mut changes_rx) = mpsc::unbounded_channel();
        let consensus = Arc::new(
            RaftConsensus::start(ConsensusOptions {
                folder: folder.clone(),
                config: raft_cfg.clone(),
                peer_id,
                addrs: my_addrs.clone(),
                transport: Arc::new(rpc.clone()),
                changes: changes_tx,
                bootstrap,
                learner_is_ready: opts.bootstrap.is_empty() || follower,
            })
            .await
            .map_err(|e| e.to_string())?,
        );

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
        );
        for cid in consensus.unpins_to_replay().await {
            tracker.untrack(cid);
        }
        // Applied state changes drive the tracker.
        let t = tracker.clone();
        tokio::spawn(async move {
            while let Some(change) = changes_rx.recv().await {
                match change {
                    StateChange::Pinned(p) => t.track(p),
                    StateChange::Unpinned(c) => t.untrack(c),
                    StateChange::Reset => t.sync().await,
                }
            }
        });

        let monitor = PeerMonitor::start(
            config.monitor.pubsubmon.check_interval.get(),
            shutdown.clone(),
        );
        let cluster = Cluster {
            consensus: consensus.clone(),
            tracker: Arc::new(tracker.clone()),
            ipfs: ipfs.clone(),
            rpc: rpc.clone(),
            monitor: monitor.clone(),
            me: PeerDescriptor {
                peer_id: peer_id.to_string(),
                peername: c.peername.clone(),
                addresses: rpc
                    .listen_addrs()
                    .iter()
                    .map(|a| format!("{a}/p2p/{peer_id}"))
                    .collect(),
            },
            replication: (c.replication_factor_min, c.replication_factor_max),
            allocate_by: config.allocator.balanced.allocate_by.clone(),
        };
        let t = tracker.clone();
        let informers = informer::from_config(
            &config.informer,
            ipfs.clone(),
            Arc::new(move || t.queue_len()),
        );
        // Our own metrics count before the first broadcast, so a lone peer can allocate.
        monitor.log_metric(informer::ping(
            &peer_id.to_string(),
            c.monitor_ping_interval.get(),
        ));
        tokio::spawn(broadcast_metrics(
            cluster.clone(),
            informers,
            c.monitor_ping_interval.get(),
            shutdown.clone(),
        ));
        if !c.disable_repinning {
            tokio::spawn(repin_on_alerts(cluster.clone(), shutdown.clone()));
        }
        rpc.set_handler(Arc::new(Handler {
            consensus: consensus.clone(),
            cluster: cluster.clone(),
        }));

        if !opts.bootstrap.is_empty() {
            let mut errors = Vec::new();
            let mut joined = false;
            for addr in &opts.bootstrap {
                let node = node_of(addr)?;
                match consensus.join(&node, follower).await {
                    Ok(()) => {
                        tracing::info!("joined the cluster through {addr}");
                        joined = true;
                        break;
                    }
                    Err(e) => errors.push(format!("{addr}: {e}")),
                }
            }
            if !joined {
                shutdown.cancel();
                tracker.shutdown();
                consensus.shutdown().await;
                rpc.shutdown();
                return Err(format!(
                    "could not join the cluster (is the secret the same as the cluster's?): {}",
                    errors.join("; ")
                ));
            }
        }

        tokio::spawn(keep_peerstore(
            consensus.clone(),
            rpc.clone(),
            peerstore_path,
            peer_id,
            shutdown.clone(),
        ));
        tokio::spawn(connect_swarms(
            cluster.clone(),
            ipfs.clone(),
            config.ipfs_connector.ipfshttp.connect_swarms_delay.get(),
            shutdown.clone(),
        ));

        let rest_addr =
            crate::restapi::serve(cluster.clone(), &config.api.restapi.0, shutdown.clone()).await?;
        tracing::info!("REST API listening on {rest_addr}");
        Ok(Peer {
            cluster,
            consensus,
            tracker,
            rpc,
            rest_addr,
            shutdown,
        })
    }

    pub fn rest_addr(&self) -> SocketAddr {
        self.rest_addr
    }

    /// Cluster swarm addresses, with `/p2p/<id>`: what others pass to `--bootstrap`.
    pub fn cluster_addrs(&self) -> Vec<String> {
        self.cluster.me.addresses.clone()
    }

    /// Resolves once consensus is ready (leader known, state caught up, role reached).
    pub async fn ready(&self) {
        while !self.consensus.is_ready() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn is_ready(&self) -> bool {
        self.consensus.is_ready()
    }

    /// Desktop "Pause pinning": this peer's IPFS operations wait until resumed.
    pub fn set_paused(&self, paused: bool) {
        self.tracker.set_paused(paused);
    }

    pub fn is_paused(&self) -> bool {
        self.tracker.is_paused()
    }

    /// Fires when this peer has been removed from the cluster.
    pub fn removed(&self) -> CancellationToken {
        self.consensus.removed()
    }

    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tracker.shutdown();
        self.consensus.shutdown().await;
        self.rpc.shutdown();
    }
}

/// Keeps the `peerstore` file and the swarm's address book in step with the membership.
async fn keep_peerstore(
    consensus: Arc<RaftConsensus>,
    rpc: ClusterRpc,
    path: PathBuf,
    me: PeerId,
    shutdown: CancellationToken,
) {
    let mut changes = consensus.membership_changes();
    loop {
        let mut peers = std::collections::BTreeMap::new();
        for m in consensus.members() {
            let Ok((p, addrs)) = rpc::dial_target(&m.peer_id, &m.addrs) else {
                continue;
            };
            if p == me {
                continue;
            }
            rpc.learn(p, addrs.clone());
            peers.insert(p, addrs);
        }
        if let Err(e) = peerstore::write(&path, &peers) {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = changes.changed() => if r.is_err() { return },
        }
        // Metrics change on every heartbeat; the file only when the membership does.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// After `connect_swarms_delay`, and every minute after, asks this peer's IPFS to connect to
/// the other peers' IPFS nodes so that content moves between them directly.
async fn connect_swarms(
    cluster: Cluster,
    ipfs: Arc<IpfsHttp>,
    delay: Duration,
    shutdown: CancellationToken,
) {
    let mut wait = delay;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = Duration::from_secs(60);
        for id in cluster.peers().await {
            if id.id == cluster.me.peer_id || !id.error.is_empty() {
                continue;
            }
            for addr in &id.ipfs.addresses {
                if ipfs.swarm_connect(addr).await.is_ok() {
                    break;
                }
            }
        }
    }
}

/// Every `monitor_ping_interval`: measure this peer, record it, and push it to every other
/// member (a peer that misses them raises an alert when they expire).
async fn broadcast_metrics(
    cluster: Cluster,
    informers: Vec<Arc<dyn Informer>>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let me = cluster.me.peer_id.clone();
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut metrics = vec![informer::ping(&me, interval)];
        for i in &informers {
            metrics.extend(i.metrics(&me).await);
        }
        for m in &metrics {
            cluster.monitor.log_metric(m.clone());
        }
        let sends = cluster
            .consensus
            .members()
            .into_iter()
            .filter(|m| m.peer_id != me)
            .map(|m| {
                let rpc = cluster.rpc.clone();
                let req = RpcRequest::Metrics(metrics.clone());
                async move {
                    let _ = rpc.call_member(&m.peer_id, &m.addrs, req, interval).await;
                }
            });
        futures::future::join_all(sends).await;
    }
}

/// With repinning on, moves the pins of a peer whose `ping` expired to live peers.
async fn repin_on_alerts(cluster: Cluster, shutdown: CancellationToken) {
    let mut alerts = cluster.monitor.subscribe();
    loop {
        let alert = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = alerts.recv() => a,
        };
        match alert {
            Ok(a) if a.metric.name == informer::PING => cluster.repin_from(&a.metric.peer).await,
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(_) => return,
        }
    }
}
