//! Cluster RPC: the libp2p swarm that carries peer-to-peer calls (SPEC §1, §5), Raft's messages
//! among them.
//!
//! Transport: TCP (and DNS names, resolved only when dialing) → private network keyed by the
//! cluster secret (pnet: a peer with another secret cannot even finish a handshake) → noise →
//! yamux. Behaviours, one per concern as in rust-libp2p's examples: request-response for the
//! calls, identify to learn peers' listen addresses, ping to keep connections alive (and close
//! those that stop answering, so that a healed partition is dialed again), and
//! [`limits`] before them all, so that strangers cannot exhaust the peer's descriptors.
//!
//! The swarm runs in its own task; [`ClusterRpc`] is a cheap handle that sends it commands.
//! Incoming calls go to the services installed once the peer's components exist: Raft's
//! messages to the consensus ([`RaftService`]), the rest to the cluster ([`PeerService`]).
//! Outgoing, the handle is the consensus's [`RaftTransport`] and the cluster's [`PeerRpc`].

mod bandwidth;
mod limits;
pub mod peerstore;
pub mod record;
pub mod versions;

pub use limits::SwarmLimits;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::core::transport::Transport as _;
use libp2p::core::upgrade::Version;
use libp2p::gossipsub;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::components::{
    Consensus, Member, NodeAnswer, NodeCall, PeerCall, PeerRpc, PeerService, RpcError,
};
use crate::consensus::crdt::component::Heard;
use crate::consensus::network::TransportError;
use crate::consensus::{ClusterNode, RaftRequest, RaftResponse, RaftService, RaftTransport};
use crate::tasks::Tasks;
use crate::types::{Bandwidth, Id, Metric, PinInfo, RPC_PROTOCOL};

/// A call from one peer to another.
#[derive(Serialize, Deserialize, Debug)]
pub enum RpcRequest {
    /// Raft traffic and writes forwarded to the leader.
    Raft(RaftRequest),
    /// The callee's ID (for `GET /peers`).
    Id,
    /// The caller's latest metrics, for the callee's peer monitor.
    Metrics(Vec<Metric>),
    /// Pin status or recover on the callee's tracker.
    Pins(PeerCall),
    /// About the callee itself and its IPFS node.
    Node(NodeCall),
}

#[derive(Serialize, Deserialize, Debug)]
pub enum RpcResponse {
    Raft(RaftResponse),
    Id(Id),
    Pins(Vec<PinInfo>),
    Node(NodeAnswer),
    Ok,
    Err(String),
}

/// Who answers incoming calls.
struct Services {
    raft: Arc<dyn RaftService>,
    peer: Arc<dyn PeerService>,
}

impl Services {
    async fn handle(&self, from: PeerId, req: RpcRequest) -> RpcResponse {
        let from_member = || self.raft.is_member(&from.to_string());
        // Everything but Raft's traffic (which the consensus checks itself) is for members
        // only: a holder of the secret that is not one reads no status and runs no GC.
        if !matches!(req, RpcRequest::Raft(_)) && !from_member() {
            tracing::debug!("refused a call from {from}: not a member of this cluster");
            return RpcResponse::Err(format!("{REFUSED} {from} {NOT_A_MEMBER}"));
        }
        match req {
            RpcRequest::Raft(r) => RpcResponse::Raft(self.raft.serve(&from.to_string(), r).await),
            RpcRequest::Id => RpcResponse::Id(self.peer.id().await),
            RpcRequest::Metrics(metrics) => {
                self.peer.metrics(&from.to_string(), metrics);
                RpcResponse::Ok
            }
            RpcRequest::Pins(call) => RpcResponse::Pins(self.peer.pins(call).await),
            RpcRequest::Node(call) => RpcResponse::Node(self.peer.node(call).await),
        }
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    // First: a connection over a limit is refused before any other behaviour sees it.
    limits: libp2p::connection_limits::Behaviour,
    per_ip: limits::PendingPerIp,
    rpc: request_response::Behaviour<
        bandwidth::Counting<
            versions::Versioned<request_response::cbor::codec::Codec<RpcRequest, RpcResponse>>,
        >,
    >,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    /// Streams of protocols of their own (the CRDT's Bitswap).
    stream: libp2p_stream::Behaviour,
    /// The CRDT's topic (gossipsub), only in a CRDT peer.
    pubsub: Toggle<gossipsub::Behaviour>,
}

enum Command {
    Call {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        req: RpcRequest,
        reply: oneshot::Sender<Result<RpcResponse, RpcError>>,
    },
    Respond {
        channel: ResponseChannel<RpcResponse>,
        resp: RpcResponse,
    },
    Learn {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
    },
    /// Publishes on the CRDT's topic.
    Publish(Vec<u8>),
    /// Publishes each message on the metrics topic.
    PublishMetrics(Vec<Vec<u8>>),
    /// Closes every connection with a peer (banned).
    Disconnect(PeerId),
    /// Connects to a peer (at its known addresses) unless connected.
    Connect(PeerId),
}

/// Commands queued for the swarm's loop at most; a caller past it waits.
const COMMANDS: usize = 4096;

/// Request streams open at once on one connection (libp2p's default of 100 would refuse
/// calls before [`SwarmLimits::calls_in_flight`] does, with a less useful error).
const STREAMS_PER_CONNECTION: usize = 1024;

/// Handle to the cluster swarm.
#[derive(Clone)]
pub struct ClusterRpc {
    me: PeerId,
    commands: mpsc::Sender<Command>,
    services: Arc<OnceLock<Services>>,
    listen: watch::Receiver<Vec<Multiaddr>>,
    /// Incoming calls answered "busy" since start (a call limit bit).
    refused_busy: Arc<AtomicU64>,
    /// Addresses learned (identify, peerstore, membership), for dialing.
    known: Arc<Mutex<HashMap<PeerId, Vec<Multiaddr>>>>,
    /// Bumped whenever an address is learned.
    learned: watch::Receiver<u64>,
    tasks: Tasks,
    /// Bytes of cluster RPC in and out.
    meter: Arc<bandwidth::Meter>,
    /// The last ping round trip to each connected peer (one entry per connected peer).
    latency: Latencies,
    /// Opens and accepts streams of other protocols (the CRDT's Bitswap).
    control: libp2p_stream::Control,
    /// Peers connected now.
    connected: Arc<Mutex<HashSet<PeerId>>>,
    /// Messages on the CRDT's topic rejected (signer not trusted) since start.
    rejected: Arc<AtomicU64>,
    /// Bumped whenever a peer subscribes to the CRDT's topic (a peer met or back).
    topic_joined: watch::Receiver<u64>,
    /// A CRDT peer's swarm (its topics on): a peer refusing calls from this one is one that
    /// does not trust it ([`RpcError::Unauthorized`]).
    leaderless: bool,
}

/// The CRDT's topics: what the swarm subscribes to, and whose messages on them are heard.
pub struct Pubsub {
    /// The heads' topic's name ([`crate::consensus::crdt::wire::topic`] of the cluster's name).
    pub topic: String,
    /// Whether a message signed by this peer is taken (IPFS Cluster's topic validator): one
    /// that is not is rejected, so it is neither heard here nor passed on.
    pub trusted: Arc<dyn Fn(&PeerId) -> bool + Send + Sync>,
    /// Where the messages taken go; when it is full, a message is dropped (heads are said
    /// again every rebroadcast interval).
    pub heard: mpsc::Sender<Heard>,
    /// Where a metric heard on the metrics topic ([`crate::monitor::wire::TOPIC`]) goes: one
    /// from any peer holding the secret (as IPFS Cluster's), but only about its signer.
    pub metric: Arc<dyn Fn(Metric) + Send + Sync>,
    /// Whether a peer is banned ([`crate::consensus::crdt::bans`]): its metrics are not
    /// heard and its connections are closed as they open.
    pub banned: Arc<dyn Fn(&PeerId) -> bool + Send + Sync>,
    /// A peer connected to this one joined the metrics topic (not banned): IPFS Cluster
    /// records a ping for it then (`logPingMetric`), so that it is in the peerset before
    /// its first own ping arrives.
    pub met: Arc<dyn Fn(PeerId) + Send + Sync>,
}

/// The longest a metric heard on pubsub is taken to live: a peer cannot stay in the others'
/// peerset for days with one message.
const MAX_METRIC_TTL: Duration = Duration::from_secs(3600);

/// Round trips of libp2p's ping, by peer, while connected.
type Latencies = Arc<Mutex<HashMap<PeerId, Duration>>>;

pub struct SwarmOptions {
    pub keypair: libp2p::identity::Keypair,
    pub secret: [u8; 32],
    pub listen: Vec<Multiaddr>,
    /// Announced instead of the listen addresses when set (`cluster.announce_multiaddress`).
    pub announce: Vec<Multiaddr>,
    /// Longest a single call may take before the swarm gives up on it.
    pub request_timeout: Duration,
    /// How many connections it holds (`cluster.connection_manager`).
    pub limits: SwarmLimits,
    /// The CRDT's topic, in a CRDT peer.
    pub pubsub: Option<Pubsub>,
}

/// How often each connection is pinged, and how long an answer may take. libp2p's ping lets
/// one failure pass; on the second in a row the connection is taken for dead and closed, some
/// 35 s after it stopped answering (with libp2p's defaults, 15 s and 20 s, it was never
/// closed at all).
const PING_INTERVAL: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_secs(15);

fn build_swarm(
    opts: &SwarmOptions,
    meter: Arc<bandwidth::Meter>,
) -> Result<Swarm<Behaviour>, RpcError> {
    let psk = PreSharedKey::new(opts.secret);
    let setup = |e: &dyn std::fmt::Display| RpcError::Setup(e.to_string());
    let handshake = opts.limits.handshake;
    let (limits, per_ip) = limits::behaviours(&opts.limits);
    let pubsub = match &opts.pubsub {
        None => None,
        Some(p) => Some(crdt_pubsub(&opts.keypair, &[&p.topic, METRICS_TOPIC])?),
    };
    let swarm = libp2p::SwarmBuilder::with_existing_identity(opts.keypair.clone())
        .with_tokio()
        .with_other_transport(|key| {
            let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
            let base = libp2p::dns::tokio::Transport::system(tcp)?;
            let noise = noise::Config::new(key)?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                base.and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
                    .upgrade(Version::V1Lazy)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default())
                    .timeout(handshake),
            )
        })
        .map_err(|e| setup(&e))?
        .with_behaviour(|key| {
            let codec = bandwidth::Counting {
                inner: versions::Versioned(
                    request_response::cbor::codec::Codec::default()
                        .set_request_size_maximum(64 * 1024 * 1024)
                        .set_response_size_maximum(256 * 1024 * 1024),
                ),
                meter,
                recorder: record::Recorder::from_env(),
            };
            Behaviour {
                limits,
                per_ip,
                rpc: request_response::Behaviour::with_codec(
                    codec,
                    versions::spoken()
                        .into_iter()
                        .map(|p| (StreamProtocol::new(p.id), ProtocolSupport::Full)),
                    request_response::Config::default()
                        .with_request_timeout(opts.request_timeout)
                        .with_max_concurrent_streams(STREAMS_PER_CONNECTION),
                ),
                identify: identify::Behaviour::new(
                    identify::Config::new("/ipfs-cluster-desktop/0.1.0".into(), key.public())
                        .with_agent_version(format!(
                            "ipfs-cluster-desktop/{}",
                            crate::types::full_version()
                        ))
                        .with_hide_listen_addrs(!opts.announce.is_empty()),
                ),
                ping: ping::Behaviour::new(
                    ping::Config::new()
                        .with_interval(PING_INTERVAL)
                        .with_timeout(PING_TIMEOUT),
                ),
                stream: libp2p_stream::Behaviour::new(),
                pubsub: Toggle::from(pubsub),
            }
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
}

/// Gossipsub for the CRDT's topics, as IPFS Cluster's pubsub: messages signed by their
/// author (checked strictly), each validated before it is passed on.
fn crdt_pubsub(
    keypair: &libp2p::identity::Keypair,
    topics: &[&str],
) -> Result<gossipsub::Behaviour, RpcError> {
    let setup = |e: &dyn std::fmt::Display| RpcError::Setup(format!("pubsub: {e}"));
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .build()
        .map_err(|e| setup(&e))?;
    let mut g = gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Signed(keypair.clone()),
        config,
    )
    .map_err(|e| setup(&e))?;
    for topic in topics {
        g.subscribe(&gossipsub::IdentTopic::new(*topic))
            .map_err(|e| setup(&e))?;
    }
    Ok(g)
}

const METRICS_TOPIC: &str = crate::monitor::wire::TOPIC;

/// How a call from a peer that is not a member is refused (`refused: <peer> is not a member
/// of this cluster`): the caller tells it from other errors by these.
const REFUSED: &str = "refused:";
const NOT_A_MEMBER: &str = "is not a member of this cluster";

/// The CRDT's topics as the swarm's loop keeps them.
struct Topics {
    heads: gossipsub::IdentTopic,
    metrics: gossipsub::IdentTopic,
    opts: Pubsub,
}

impl ClusterRpc {
    /// Starts the swarm and waits until it listens on every configured address.
    pub async fn start(opts: SwarmOptions, tasks: &Tasks) -> Result<ClusterRpc, RpcError> {
        let meter = Arc::new(bandwidth::Meter::default());
        let mut swarm = build_swarm(&opts, meter.clone())?;
        // IPFS Cluster's init also lists a QUIC address; this swarm speaks TCP only, so such
        // addresses are skipped with a warning (an error only if nothing is left).
        let (tcp, other): (Vec<_>, Vec<_>) = opts.listen.iter().partition(|a| {
            a.iter()
                .any(|p| matches!(p, libp2p::multiaddr::Protocol::Tcp(_)))
        });
        for addr in &other {
            tracing::warn!("cluster.listen_multiaddress {addr}: not TCP, not listened on");
        }
        if tcp.is_empty() {
            return Err(RpcError::Setup(
                "cluster.listen_multiaddress has no TCP address to listen on".into(),
            ));
        }
        let mut listeners = HashSet::new();
        for addr in tcp {
            listeners.insert(
                swarm
                    .listen_on(addr.clone())
                    .map_err(|e| RpcError::Setup(format!("cannot listen on {addr}: {e}")))?,
            );
        }
        for addr in &opts.announce {
            swarm.add_external_address(addr.clone());
        }
        let me = *swarm.local_peer_id();
        let control = swarm.behaviour().stream.new_control();
        let connected = Arc::new(Mutex::new(HashSet::new()));
        let (joined_tx, topic_joined) = watch::channel(0u64);
        let (commands, rx) = mpsc::channel(COMMANDS);
        let refused_busy = Arc::new(AtomicU64::new(0));
        let (listen_tx, listen) = watch::channel(Vec::new());
        let (listening_tx, mut listening) = watch::channel(HashSet::new());
        let (learned_tx, learned) = watch::channel(0);
        let rpc = ClusterRpc {
            me,
            commands: commands.clone(),
            services: Arc::new(OnceLock::new()),
            listen,
            refused_busy: refused_busy.clone(),
            known: Arc::new(Mutex::new(HashMap::new())),
            learned,
            tasks: tasks.clone(),
            meter: meter.clone(),
            latency: Latencies::default(),
            control,
            connected: connected.clone(),
            rejected: Arc::new(AtomicU64::new(0)),
            topic_joined,
            leaderless: opts.pubsub.is_some(),
        };
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                meter.sample();
            }
        });
        let task = SwarmTask {
            swarm,
            rx,
            commands,
            raft_calls: Arc::new(Semaphore::new(opts.limits.raft_calls_in_flight.max(1))),
            calls: Arc::new(Semaphore::new(opts.limits.calls_in_flight.max(1))),
            refused_busy,
            services: rpc.services.clone(),
            pending: HashMap::new(),
            listen_tx,
            listening: listening_tx,
            known: rpc.known.clone(),
            learned: learned_tx,
            tasks: tasks.clone(),
            latency: rpc.latency.clone(),
            connected,
            rejected: rpc.rejected.clone(),
            topic_joined: joined_tx,
            pubsub: opts.pubsub.map(|p| Topics {
                heads: gossipsub::IdentTopic::new(p.topic.clone()),
                metrics: gossipsub::IdentTopic::new(METRICS_TOPIC),
                opts: p,
            }),
        };
        tasks.spawn(task.run());
        // Every listener it opened has an address (a wildcard one may have several; a skipped
        // QUIC address has none to wait for).
        tokio::time::timeout(
            Duration::from_secs(10),
            listening.wait_for(|up| listeners.is_subset(up)),
        )
        .await
        .map_err(|_| RpcError::Setup("the cluster swarm did not start listening".into()))?
        .map_err(|_| RpcError::Stopped)?;
        Ok(rpc)
    }

    /// A handle opening and accepting streams of other protocols on this swarm.
    pub fn stream_control(&self) -> libp2p_stream::Control {
        self.control.clone()
    }

    /// Bumped whenever a peer subscribes to the CRDT's topic: a peer met, or back.
    pub fn topic_joined(&self) -> watch::Receiver<u64> {
        self.topic_joined.clone()
    }

    /// Closes every connection with `peer` (a peer just banned).
    pub async fn disconnect(&self, peer: PeerId) {
        let _ = self.commands.send(Command::Disconnect(peer)).await;
    }

    /// The peers connected now.
    pub fn connected_peers(&self) -> Vec<PeerId> {
        self.connected.lock().unwrap().iter().copied().collect()
    }

    /// Connects to `peer` at `addrs` (and the addresses known for it) unless connected:
    /// what a CRDT peer does with the peers it knows, as there are no Raft calls to connect it.
    pub async fn connect(&self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let _ = self.commands.send(Command::Learn { peer, addrs }).await;
        let _ = self.commands.send(Command::Connect(peer)).await;
    }

    /// Publishes `data` on the CRDT's topic (nothing without one). Best effort: with the
    /// swarm's queue full, or no peer on the topic, it is not sent (and said again later).
    pub async fn publish(&self, data: Vec<u8>) {
        let _ = self.commands.send(Command::Publish(data)).await;
    }

    /// Where this peer listens, as others can dial it.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.listen.borrow().clone()
    }

    /// Installs who answers incoming calls; until then they get "still starting".
    pub fn serve(&self, raft: Arc<dyn RaftService>, peer: Arc<dyn PeerService>) {
        let _ = self.services.set(Services { raft, peer });
    }

    /// Remembers addresses of `peer` (from the peerstore, a bootstrap address, the membership).
    pub fn learn(&self, peer: PeerId, addrs: Vec<Multiaddr>) {
        // Best effort: with the swarm's queue full, the addresses come again (identify, the
        // membership, the next call).
        if self
            .commands
            .try_send(Command::Learn { peer, addrs })
            .is_err()
        {
            tracing::debug!(%peer, "swarm busy: addresses not recorded this time");
        }
    }

    /// Calls `peer`, dialing it at `addrs` (plus any learned address) if not connected.
    pub async fn call(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        req: RpcRequest,
        timeout: Duration,
    ) -> Result<RpcResponse, RpcError> {
        let (reply, rx) = oneshot::channel();
        // One deadline for the whole call: a full queue makes the caller wait
        // (back-pressure) within it, as the answer does.
        let call = async {
            self.commands
                .send(Command::Call {
                    peer,
                    addrs,
                    req,
                    reply,
                })
                .await
                .map_err(|_| RpcError::Stopped)?;
            rx.await.map_err(|_| RpcError::Stopped)?
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(RpcError::Timeout {
                peer: peer.to_string(),
                timeout,
            }),
        }
    }
}

/// A member as the membership records it (peer id and addresses as text) → what to dial.
/// Addresses that do not parse are skipped: the peer may still be reachable at the others.
pub fn dial_target(peer_id: &str, addrs: &[String]) -> Result<(PeerId, Vec<Multiaddr>), RpcError> {
    let peer = peer_id
        .parse()
        .map_err(|_| RpcError::InvalidPeer(peer_id.to_string()))?;
    Ok((peer, addrs.iter().filter_map(|a| a.parse().ok()).collect()))
}

impl ClusterRpc {
    /// [`ClusterRpc::call`] for a member known by its recorded id and addresses; an error
    /// answer or an answer of the wrong kind is an error.
    async fn call_member<T>(
        &self,
        peer_id: &str,
        addrs: &[String],
        req: RpcRequest,
        timeout: Duration,
        expect: impl FnOnce(RpcResponse) -> Option<T>,
    ) -> Result<T, RpcError> {
        let (peer, addrs) = dial_target(peer_id, addrs)?;
        let remote = |message: String| RpcError::Remote {
            peer: peer_id.to_string(),
            message,
        };
        match self.call(peer, addrs, req, timeout).await? {
            // A CRDT peer refusing this one (it does not trust it). In Raft the same answer
            // (a member behind on the membership) stays an error: a member must not drop out
            // of statuses unseen.
            RpcResponse::Err(e)
                if self.leaderless && e == format!("{REFUSED} {} {NOT_A_MEMBER}", self.me) =>
            {
                Err(RpcError::Unauthorized {
                    peer: peer_id.to_string(),
                    message: e,
                })
            }
            RpcResponse::Err(e) => Err(remote(e)),
            other => expect(other).ok_or_else(|| remote("answered a different request".into())),
        }
    }

    /// Keeps the swarm's address book and the `peerstore` file up to date: every address
    /// of every member, from the membership and from what was learned while running
    /// (bootstrap addresses, identify), added to the file as it is learned.
    pub fn keep_peerstore(&self, consensus: Arc<dyn Consensus>, path: PathBuf) {
        let rpc = self.clone();
        self.tasks.spawn(async move {
            let mut members = consensus.watch_members();
            let mut learned = rpc.learned.clone();
            loop {
                let current = members.borrow_and_update().clone();
                learned.borrow_and_update();
                let mut peers: BTreeMap<PeerId, Vec<Multiaddr>> = BTreeMap::new();
                for m in current {
                    let Ok((p, addrs)) = dial_target(&m.peer_id, &m.addrs) else {
                        continue;
                    };
                    if p == rpc.me {
                        continue;
                    }
                    rpc.learn(p, addrs.clone());
                    let mut all = addrs;
                    if let Some(more) = rpc.known.lock().unwrap().get(&p) {
                        all.extend(
                            more.iter()
                                .filter(|a| !all.contains(a))
                                .cloned()
                                .collect::<Vec<_>>(),
                        );
                    }
                    peers.insert(p, all);
                }
                let file = path.clone();
                let merged =
                    tokio::task::spawn_blocking(move || peerstore::merge(&file, &peers)).await;
                match merged {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!("cannot write {}: {e}", path.display()),
                    Err(e) => tracing::warn!("writing {}: {e}", path.display()),
                }
                tokio::select! {
                    r = members.changed() => if r.is_err() { return },
                    r = learned.changed() => if r.is_err() { return },
                }
            }
        });
    }
}

#[async_trait]
impl PeerRpc for ClusterRpc {
    async fn publish_metrics(&self, metrics: Vec<Metric>) {
        let messages: Vec<Vec<u8>> = metrics
            .iter()
            .filter_map(|m| match crate::monitor::wire::encode(m) {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::warn!(metric = %m.name, "metric not published: {e}");
                    None
                }
            })
            .collect();
        if !messages.is_empty() {
            let _ = self.commands.send(Command::PublishMetrics(messages)).await;
        }
    }

    async fn id(&self, to: &Member, timeout: Duration) -> Result<Id, RpcError> {
        self.call_member(
            &to.peer_id,
            &to.addrs,
            RpcRequest::Id,
            timeout,
            |r| match r {
                RpcResponse::Id(id) => Some(id),
                _ => None,
            },
        )
        .await
    }

    async fn pins(
        &self,
        to: &Member,
        call: PeerCall,
        timeout: Duration,
    ) -> Result<Vec<PinInfo>, RpcError> {
        let req = RpcRequest::Pins(call);
        self.call_member(&to.peer_id, &to.addrs, req, timeout, |r| match r {
            RpcResponse::Pins(p) => Some(p),
            _ => None,
        })
        .await
    }

    async fn metrics(
        &self,
        to: &Member,
        metrics: Vec<Metric>,
        timeout: Duration,
    ) -> Result<(), RpcError> {
        let req = RpcRequest::Metrics(metrics);
        self.call_member(&to.peer_id, &to.addrs, req, timeout, |r| match r {
            RpcResponse::Ok => Some(()),
            _ => None,
        })
        .await
    }

    fn bandwidth(&self) -> BTreeMap<String, Bandwidth> {
        BTreeMap::from([(RPC_PROTOCOL.to_string(), self.meter.bandwidth())])
    }

    fn refused_busy(&self) -> u64 {
        self.refused_busy.load(Ordering::Relaxed)
    }

    fn pubsub_rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    fn latencies(&self) -> BTreeMap<String, Duration> {
        self.latency
            .lock()
            .unwrap()
            .iter()
            .map(|(p, d)| (p.to_string(), *d))
            .collect()
    }

    async fn node(
        &self,
        to: &Member,
        call: NodeCall,
        timeout: Duration,
    ) -> Result<NodeAnswer, RpcError> {
        let req = RpcRequest::Node(call);
        self.call_member(&to.peer_id, &to.addrs, req, timeout, |r| match r {
            RpcResponse::Node(a) => Some(a),
            _ => None,
        })
        .await
    }
}

#[async_trait]
impl RaftTransport for ClusterRpc {
    async fn send(
        &self,
        target: &ClusterNode,
        req: RaftRequest,
        timeout: Duration,
    ) -> Result<RaftResponse, TransportError> {
        let req = RpcRequest::Raft(req);
        self.call_member(&target.peer_id, &target.addrs, req, timeout, |r| match r {
            RpcResponse::Raft(r) => Some(r),
            _ => None,
        })
        .await
        .map_err(|e| TransportError(e.to_string()))
    }
}

struct SwarmTask {
    swarm: Swarm<Behaviour>,
    rx: mpsc::Receiver<Command>,
    /// For handler tasks to send their responses back into the loop.
    commands: mpsc::Sender<Command>,
    /// Permits for incoming calls in flight: Raft's, and everything else's.
    raft_calls: Arc<Semaphore>,
    calls: Arc<Semaphore>,
    refused_busy: Arc<AtomicU64>,
    services: Arc<OnceLock<Services>>,
    pending: HashMap<OutboundRequestId, (PeerId, oneshot::Sender<Result<RpcResponse, RpcError>>)>,
    listen_tx: watch::Sender<Vec<Multiaddr>>,
    /// The listeners that have reported an address.
    listening: watch::Sender<HashSet<ListenerId>>,
    known: Arc<Mutex<HashMap<PeerId, Vec<Multiaddr>>>>,
    learned: watch::Sender<u64>,
    tasks: Tasks,
    latency: Latencies,
    connected: Arc<Mutex<HashSet<PeerId>>>,
    rejected: Arc<AtomicU64>,
    topic_joined: watch::Sender<u64>,
    /// The CRDT's topics, who may publish on them, and where what is heard goes.
    pubsub: Option<Topics>,
}

/// Addresses worth dialing: not unspecified (0.0.0.0) and without a trailing /p2p.
fn dialable(addr: &Multiaddr) -> Option<Multiaddr> {
    use libp2p::multiaddr::Protocol;
    let mut out = Multiaddr::empty();
    for p in addr.iter() {
        match p {
            Protocol::Ip4(ip) if ip.is_unspecified() => return None,
            Protocol::Ip6(ip) if ip.is_unspecified() => return None,
            Protocol::P2p(_) => break,
            other => out.push(other),
        }
    }
    Some(out)
}

impl SwarmTask {
    /// The addresses known for `peer`.
    fn addresses_of(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.known
            .lock()
            .unwrap()
            .get(peer)
            .cloned()
            .unwrap_or_default()
    }

    fn remember(&mut self, peer: PeerId, addrs: impl IntoIterator<Item = Multiaddr>) {
        let mut known = self.known.lock().unwrap();
        let entry = known.entry(peer).or_default();
        let mut added = false;
        for a in addrs.into_iter().filter_map(|a| dialable(&a)) {
            if !entry.contains(&a) {
                entry.push(a);
                added = true;
            }
        }
        if added {
            self.learned.send_modify(|n| *n += 1);
        }
    }

    /// Runs until shutdown (the task is dropped, and the swarm with it: its listeners and
    /// connections close).
    async fn run(mut self) {
        loop {
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => return,
                },
                event = self.swarm.select_next_some() => self.event(event),
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Call {
                peer,
                addrs,
                req,
                reply,
            } => {
                self.remember(peer, addrs);
                let addrs = self.addresses_of(&peer);
                let id = self
                    .swarm
                    .behaviour_mut()
                    .rpc
                    .send_request_with_addresses(&peer, req, addrs);
                self.pending.insert(id, (peer, reply));
            }
            Command::Respond { channel, resp } => {
                let _ = self.swarm.behaviour_mut().rpc.send_response(channel, resp);
            }
            Command::Learn { peer, addrs } => self.remember(peer, addrs),
            Command::Connect(peer) => {
                if self.swarm.is_connected(&peer) || peer == *self.swarm.local_peer_id() {
                    return;
                }
                let addrs = self.addresses_of(&peer);
                let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                    .addresses(addrs)
                    .build();
                if let Err(e) = self.swarm.dial(opts) {
                    tracing::debug!(%peer, "not dialed: {e}");
                }
            }
            Command::Publish(data) => {
                let Some(topics) = &self.pubsub else {
                    return;
                };
                let topic = topics.heads.clone();
                if let Some(g) = self.swarm.behaviour_mut().pubsub.as_mut() {
                    if let Err(e) = g.publish(topic, data) {
                        // Alone, or no peer on the topic yet: said again later.
                        tracing::debug!("CRDT broadcast not published: {e}");
                    }
                }
            }
            Command::PublishMetrics(messages) => {
                let Some(topics) = &self.pubsub else {
                    return;
                };
                let topic = topics.metrics.clone();
                if let Some(g) = self.swarm.behaviour_mut().pubsub.as_mut() {
                    for data in messages {
                        if let Err(e) = g.publish(topic.clone(), data) {
                            // Alone, or no peer on the topic yet: sent again next round.
                            tracing::debug!("metric not published: {e}");
                        }
                    }
                }
            }
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    /// A message on the CRDT's topic: taken (and passed on) when its signer is trusted,
    /// rejected otherwise. One on the metrics topic: [`Self::metric_message`].
    fn pubsub_event(&mut self, ev: gossipsub::Event) {
        if let gossipsub::Event::Subscribed { peer_id, topic } = &ev {
            let Some(topics) = &self.pubsub else {
                return;
            };
            if *topic == topics.metrics.hash() {
                if !(topics.opts.banned)(peer_id) {
                    (topics.opts.met)(*peer_id);
                }
            } else if *topic == topics.heads.hash() {
                tracing::debug!(peer = %peer_id, "a peer joined the CRDT's topic");
                self.topic_joined.send_modify(|n| *n += 1);
            }
            return;
        }
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = ev
        else {
            return;
        };
        let Some(topics) = &self.pubsub else {
            return;
        };
        if message.topic == topics.metrics.hash() {
            let verdict = Self::metric_message(&topics.opts, message.source, &message.data);
            if let Some(g) = self.swarm.behaviour_mut().pubsub.as_mut() {
                g.report_message_validation_result(&message_id, &propagation_source, verdict);
            }
            return;
        }
        let (trusted, heard) = (&topics.opts.trusted, &topics.opts.heard);
        let signer = message.source;
        let take = signer.is_some_and(|p| trusted(&p));
        let verdict = if take {
            gossipsub::MessageAcceptance::Accept
        } else {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(?signer, "CRDT broadcast from an untrusted peer rejected");
            gossipsub::MessageAcceptance::Reject
        };
        if take {
            let h = Heard {
                from: signer.map(|p| p.to_string()).unwrap_or_default(),
                data: message.data,
            };
            if heard.try_send(h).is_err() {
                tracing::debug!("CRDT broadcast dropped: the CRDT is busy (said again later)");
            }
        }
        if let Some(g) = self.swarm.behaviour_mut().pubsub.as_mut() {
            g.report_message_validation_result(&message_id, &propagation_source, verdict);
        }
    }

    /// A message on the metrics topic: a metric about its own signer is heard (its expiry
    /// held to [`MAX_METRIC_TTL`] from now) and passed on; one from a banned peer is dropped;
    /// one that does not decode, or speaks for another peer, is rejected.
    fn metric_message(
        opts: &Pubsub,
        signer: Option<PeerId>,
        data: &[u8],
    ) -> gossipsub::MessageAcceptance {
        let Some(signer) = signer else {
            return gossipsub::MessageAcceptance::Reject;
        };
        if (opts.banned)(&signer) {
            return gossipsub::MessageAcceptance::Ignore;
        }
        let mut m = match crate::monitor::wire::decode(data) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(peer = %signer, "metric rejected: {e}");
                return gossipsub::MessageAcceptance::Reject;
            }
        };
        if m.peer != signer.to_string() {
            tracing::debug!(peer = %signer, about = %m.peer, "metric rejected: about another peer");
            return gossipsub::MessageAcceptance::Reject;
        }
        // Expired: an old message sent again once gossipsub forgot its id (a peer's own
        // expired ping would put it out of the peerset and raise an alert), or a clock far
        // behind. Not passed on.
        if m.expired() {
            return gossipsub::MessageAcceptance::Ignore;
        }
        if !crate::monitor::wire::known_name(&m.name) {
            tracing::debug!(peer = %signer, metric = %m.name, "metric rejected: not a name IPFS Cluster's informers use");
            return gossipsub::MessageAcceptance::Reject;
        }
        let latest = Metric::now_ns().saturating_add(MAX_METRIC_TTL.as_nanos() as i64);
        m.expire = m.expire.min(latest);
        (opts.metric)(m);
        gossipsub::MessageAcceptance::Accept
    }

    fn event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                tracing::info!("cluster swarm listening on {address}");
                self.listen_tx.send_modify(|l| l.push(address));
                self.listening.send_modify(|l| {
                    l.insert(listener_id);
                });
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_tx.send_modify(|l| l.retain(|a| *a != address));
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => self.remember(peer_id, info.listen_addrs),
            SwarmEvent::Behaviour(BehaviourEvent::Rpc(ev)) => self.rpc_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Pubsub(ev)) => self.pubsub_event(ev),
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                if self
                    .pubsub
                    .as_ref()
                    .is_some_and(|t| (t.opts.banned)(&peer_id))
                {
                    tracing::debug!(peer = %peer_id, "connection with a banned peer closed");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                self.connected.lock().unwrap().insert(peer_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            })) => {
                self.latency.lock().unwrap().insert(peer, rtt);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(e),
            })) if !matches!(e, ping::Failure::Unsupported) => {
                // A connection that no longer answers (a cable out, a partition, a peer
                // frozen) is closed: left open, it would hold calls and broadcasts until TCP
                // gives up (minutes), and nothing would dial the peer again once it is back.
                tracing::info!(%peer, "closing a connection that does not answer pings: {e}");
                self.swarm.close_connection(connection);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.latency.lock().unwrap().remove(&peer_id);
                self.connected.lock().unwrap().remove(&peer_id);
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                // Most often: a peer with another secret (pnet handshake fails).
                tracing::debug!("incoming cluster connection failed: {error}");
            }
            _ => {}
        }
    }

    fn rpc_event(&mut self, ev: request_response::Event<RpcRequest, RpcResponse>) {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                // Raft's own messages (heartbeats, votes, snapshots) have a lane of their own;
                // forwarded writes and joins count with the other calls.
                let raft_own = matches!(
                    request,
                    RpcRequest::Raft(
                        RaftRequest::AppendEntries(..)
                            | RaftRequest::Vote(..)
                            | RaftRequest::InstallSnapshot(..)
                            | RaftRequest::Campaign { .. }
                    )
                );
                let limit = if raft_own {
                    &self.raft_calls
                } else {
                    &self.calls
                };
                // One task per call in flight, at most the limit: over it, "busy" at once
                // rather than a task (and its memory) per call of a flood.
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    self.refused_busy.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "refused a call: too many in flight");
                    let busy = RpcResponse::Err(format!(
                        "{}: try again",
                        crate::consensus::network::BUSY_ANSWER
                    ));
                    let _ = self.swarm.behaviour_mut().rpc.send_response(channel, busy);
                    return;
                };
                let services = self.services.clone();
                let back = self.commands.clone();
                self.tasks.spawn(async move {
                    let resp = match services.get() {
                        Some(s) => s.handle(peer, request).await,
                        None => RpcResponse::Err("this peer is still starting".into()),
                    };
                    drop(permit);
                    let _ = back.send(Command::Respond { channel, resp }).await;
                });
            }
            Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some((_, reply)) = self.pending.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some((peer, reply)) = self.pending.remove(&request_id) {
                    let peer = peer.to_string();
                    let e = match &error {
                        request_response::OutboundFailure::Io(e) => {
                            versions::unsupported(e).map(|v| RpcError::Unsupported {
                                peer: peer.clone(),
                                version: v.to_string(),
                            })
                        }
                        // One that speaks none of this release's protocols can answer
                        // nothing: unreachable, as any peer that cannot be talked to.
                        _ => None,
                    };
                    let _ = reply.send(Err(e.unwrap_or(RpcError::Unreachable {
                        peer,
                        message: error.to_string(),
                    })));
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, "inbound cluster RPC failed: {error}");
            }
            Event::ResponseSent { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(listen: &[&str]) -> SwarmOptions {
        SwarmOptions {
            keypair: libp2p::identity::Keypair::generate_ed25519(),
            secret: [7; 32],
            listen: listen.iter().map(|a| a.parse().unwrap()).collect(),
            announce: Vec::new(),
            request_timeout: Duration::from_secs(5),
            limits: SwarmLimits::default(),
            pubsub: None,
        }
    }

    #[tokio::test]
    async fn a_tcp_and_a_quic_address_on_explicit_ips_start_on_the_tcp_one() {
        // IPFS Cluster's own shape of `cluster.listen_multiaddress`: the skipped QUIC address
        // must not be waited for (the start gave up after 10 s).
        let tasks = Tasks::new();
        let started = tokio::time::timeout(
            Duration::from_secs(8),
            ClusterRpc::start(
                options(&["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"]),
                &tasks,
            ),
        )
        .await
        .expect("started before the swarm's own 10 s deadline")
        .expect("started");
        let addrs = started.listen_addrs();
        assert_eq!(addrs.len(), 1, "{addrs:?}");
        assert!(addrs[0].to_string().starts_with("/ip4/127.0.0.1/tcp/"));
        tasks.shutdown().await;
    }

    #[tokio::test]
    async fn two_tcp_addresses_are_both_listened_on_before_the_start_returns() {
        let tasks = Tasks::new();
        let rpc = ClusterRpc::start(options(&["/ip4/127.0.0.1/tcp/0", "/ip6/::1/tcp/0"]), &tasks)
            .await
            .expect("started");
        let addrs = rpc.listen_addrs();
        assert_eq!(addrs.len(), 2, "{addrs:?}");
        tasks.shutdown().await;
    }

    /// Services that never answer (a peer whose IPFS hangs): every call stays in flight.
    struct Stuck;

    #[async_trait]
    impl RaftService for Stuck {
        async fn serve(&self, _: &str, _: RaftRequest) -> RaftResponse {
            futures::future::pending().await
        }
        fn is_member(&self, _: &str) -> bool {
            true
        }
    }

    #[async_trait]
    impl PeerService for Stuck {
        async fn id(&self) -> Id {
            futures::future::pending().await
        }
        async fn pins(&self, _: crate::components::PeerCall) -> Vec<PinInfo> {
            futures::future::pending().await
        }
        fn metrics(&self, _: &str, _: Vec<Metric>) {}
        async fn node(&self, _: crate::components::NodeCall) -> crate::components::NodeAnswer {
            futures::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_flood_of_calls_holds_a_bounded_number_in_flight_and_the_rest_hear_busy() {
        let server_tasks = Tasks::new();
        let mut opts = options(&["/ip4/127.0.0.1/tcp/0"]);
        opts.limits.calls_in_flight = 16;
        let server = ClusterRpc::start(opts, &server_tasks).await.unwrap();
        server.serve(Arc::new(Stuck), Arc::new(Stuck));
        let addrs = server.listen_addrs();
        let client_tasks = Tasks::new();
        let client = ClusterRpc::start(options(&["/ip4/127.0.0.1/tcp/0"]), &client_tasks)
            .await
            .unwrap();
        let before = server_tasks.len();
        let calls = (0..300).map(|_| {
            client.call(
                server.me,
                addrs.clone(),
                RpcRequest::Id,
                Duration::from_secs(3),
            )
        });
        let answers = futures::future::join_all(calls).await;
        let busy = answers
            .iter()
            .filter(|a| matches!(a, Ok(RpcResponse::Err(e)) if e.contains("busy")))
            .count();
        let waited = answers
            .iter()
            .filter(|a| matches!(a, Err(RpcError::Timeout { .. })))
            .count();
        assert_eq!(waited, 16, "as many in flight as the limit");
        assert_eq!(busy, 300 - 16, "the others told at once");
        assert!(
            server_tasks.len() <= before + 16,
            "{} tasks for {} calls in flight",
            server_tasks.len() - before,
            16
        );
        assert_eq!(server.refused_busy(), 284);
        client_tasks.shutdown().await;
        server_tasks.shutdown().await;
    }

    #[tokio::test]
    async fn the_round_trip_to_each_connected_peer_is_measured_and_forgotten_when_it_goes() {
        let server_tasks = Tasks::new();
        let server = ClusterRpc::start(options(&["/ip4/127.0.0.1/tcp/0"]), &server_tasks)
            .await
            .unwrap();
        server.serve(Arc::new(Stuck), Arc::new(Stuck));
        let client_tasks = Tasks::new();
        let client = ClusterRpc::start(options(&["/ip4/127.0.0.1/tcp/0"]), &client_tasks)
            .await
            .unwrap();
        assert!(client.latencies().is_empty(), "no peer connected yet");
        // A call connects them; libp2p's ping runs on the connection.
        let _ = client
            .call(
                server.me,
                server.listen_addrs(),
                RpcRequest::Id,
                Duration::from_millis(300),
            )
            .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let rtt = loop {
            if let Some(d) = client.latencies().get(&server.me.to_string()) {
                break *d;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no round trip measured"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(rtt < Duration::from_secs(5), "{rtt:?} on loopback");
        assert_eq!(client.latencies().len(), 1, "one entry per connected peer");
        server_tasks.shutdown().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !client.latencies().is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "a peer gone keeps its entry"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        client_tasks.shutdown().await;
    }
}
