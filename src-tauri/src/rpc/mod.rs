//! Cluster RPC: the libp2p swarm that carries peer-to-peer calls (SPEC §1, §5), Raft's messages
//! among them.
//!
//! Transport: TCP (and DNS names, resolved only when dialing) → private network keyed by the
//! cluster secret (pnet: a peer with another secret cannot even finish a handshake) → noise →
//! yamux. Behaviours, one per concern as in rust-libp2p's examples: request-response for the
//! calls, identify to learn peers' listen addresses, ping to keep connections alive.
//!
//! The swarm runs in its own task; [`ClusterRpc`] is a cheap handle that sends it commands.
//! Incoming calls go to an [`RpcHandler`] installed once the peer's components exist.

pub mod peerstore;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use libp2p::core::transport::Transport as _;
use libp2p::core::upgrade::Version;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use crate::cluster::PeerCall;
use crate::consensus::network::TransportError;
use crate::consensus::{ClusterNode, RaftRequest, RaftResponse, RaftTransport};
use crate::types::{Id, Metric, PinInfo};

/// The request-response protocol of this project's cluster RPC.
pub const PROTOCOL: &str = "/ipfs-cluster-desktop/rpc/0.1.0";

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
}

#[derive(Serialize, Deserialize, Debug)]
pub enum RpcResponse {
    Raft(RaftResponse),
    Id(Id),
    Pins(Vec<PinInfo>),
    Ok,
    Err(String),
}

/// Answers incoming calls.
#[async_trait]
pub trait RpcHandler: Send + Sync + 'static {
    async fn handle(&self, from: PeerId, req: RpcRequest) -> RpcResponse;
}

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot reach peer {peer}: {message}")]
    Unreachable { peer: PeerId, message: String },
    #[error("peer {peer} did not answer within {timeout:?}")]
    Timeout { peer: PeerId, timeout: Duration },
    #[error("the cluster swarm stopped")]
    Stopped,
    #[error("invalid peer id {0:?} in the membership")]
    InvalidPeer(String),
    #[error("cluster swarm: {0}")]
    Setup(String),
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    rpc: request_response::json::Behaviour<RpcRequest, RpcResponse>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
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
}

/// Handle to the cluster swarm.
#[derive(Clone)]
pub struct ClusterRpc {
    me: PeerId,
    commands: mpsc::UnboundedSender<Command>,
    handler: Arc<OnceLock<Arc<dyn RpcHandler>>>,
    listen: watch::Receiver<Vec<Multiaddr>>,
    /// Addresses learned (identify, peerstore, membership), for dialing.
    known: Arc<Mutex<HashMap<PeerId, Vec<Multiaddr>>>>,
    stop: tokio_util::sync::CancellationToken,
}

pub struct SwarmOptions {
    pub keypair: libp2p::identity::Keypair,
    pub secret: [u8; 32],
    pub listen: Vec<Multiaddr>,
    /// Longest a single call may take before the swarm gives up on it.
    pub request_timeout: Duration,
}

fn build_swarm(opts: &SwarmOptions) -> Result<Swarm<Behaviour>, RpcError> {
    let psk = PreSharedKey::new(opts.secret);
    let setup = |e: &dyn std::fmt::Display| RpcError::Setup(e.to_string());
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
                    .timeout(Duration::from_secs(20)),
            )
        })
        .map_err(|e| setup(&e))?
        .with_behaviour(|key| {
            let codec = request_response::json::codec::Codec::default()
                .set_request_size_maximum(64 * 1024 * 1024)
                .set_response_size_maximum(256 * 1024 * 1024);
            Behaviour {
                rpc: request_response::Behaviour::with_codec(
                    codec,
                    [(StreamProtocol::new(PROTOCOL), ProtocolSupport::Full)],
                    request_response::Config::default().with_request_timeout(opts.request_timeout),
                ),
                identify: identify::Behaviour::new(identify::Config::new(
                    "/ipfs-cluster-desktop/0.1.0".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::new(ping::Config::new()),
            }
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
}

impl ClusterRpc {
    /// Starts the swarm and waits until it listens on every configured address.
    pub async fn start(opts: SwarmOptions) -> Result<ClusterRpc, RpcError> {
        let mut swarm = build_swarm(&opts)?;
        for addr in &opts.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| RpcError::Setup(format!("cannot listen on {addr}: {e}")))?;
        }
        let me = *swarm.local_peer_id();
        let (commands, rx) = mpsc::unbounded_channel();
        let (listen_tx, listen) = watch::channel(Vec::new());
        let rpc = ClusterRpc {
            me,
            commands: commands.clone(),
            handler: Arc::new(OnceLock::new()),
            listen,
            known: Arc::new(Mutex::new(HashMap::new())),
            stop: tokio_util::sync::CancellationToken::new(),
        };
        let task = SwarmTask {
            swarm,
            rx,
            commands,
            handler: rpc.handler.clone(),
            pending: HashMap::new(),
            listen_tx,
            known: rpc.known.clone(),
            stop: rpc.stop.clone(),
        };
        tokio::spawn(task.run());
        let mut l = rpc.listen.clone();
        let wanted = opts.listen.len();
        tokio::time::timeout(Duration::from_secs(10), l.wait_for(|a| a.len() >= wanted))
            .await
            .map_err(|_| RpcError::Setup("the cluster swarm did not start listening".into()))?
            .map_err(|_| RpcError::Stopped)?;
        Ok(rpc)
    }

    pub fn peer_id(&self) -> PeerId {
        self.me
    }

    /// Closes the swarm: its listeners and connections go away.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Where this peer listens, as others can dial it.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.listen.borrow().clone()
    }

    pub fn set_handler(&self, handler: Arc<dyn RpcHandler>) {
        let _ = self.handler.set(handler);
    }

    /// Remembers addresses of `peer` (from the peerstore, a bootstrap address, the membership).
    pub fn learn(&self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let _ = self.commands.send(Command::Learn { peer, addrs });
    }

    /// Every address known for each peer.
    pub fn known_addrs(&self) -> HashMap<PeerId, Vec<Multiaddr>> {
        self.known.lock().unwrap().clone()
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
        self.commands
            .send(Command::Call {
                peer,
                addrs,
                req,
                reply,
            })
            .map_err(|_| RpcError::Stopped)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(RpcError::Stopped),
            Err(_) => Err(RpcError::Timeout { peer, timeout }),
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
    /// [`ClusterRpc::call`] for a member known by its recorded id and addresses.
    pub async fn call_member(
        &self,
        peer_id: &str,
        addrs: &[String],
        req: RpcRequest,
        timeout: Duration,
    ) -> Result<RpcResponse, RpcError> {
        let (peer, addrs) = dial_target(peer_id, addrs)?;
        self.call(peer, addrs, req, timeout).await
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
        match self
            .call_member(&target.peer_id, &target.addrs, req, timeout)
            .await
        {
            Ok(RpcResponse::Raft(r)) => Ok(r),
            Ok(RpcResponse::Err(e)) => Err(TransportError(e)),
            Ok(_) => Err(TransportError("peer answered a different request".into())),
            Err(e) => Err(TransportError(e.to_string())),
        }
    }
}

struct SwarmTask {
    swarm: Swarm<Behaviour>,
    rx: mpsc::UnboundedReceiver<Command>,
    /// For handler tasks to send their responses back into the loop.
    commands: mpsc::UnboundedSender<Command>,
    handler: Arc<OnceLock<Arc<dyn RpcHandler>>>,
    pending: HashMap<OutboundRequestId, (PeerId, oneshot::Sender<Result<RpcResponse, RpcError>>)>,
    listen_tx: watch::Sender<Vec<Multiaddr>>,
    known: Arc<Mutex<HashMap<PeerId, Vec<Multiaddr>>>>,
    stop: tokio_util::sync::CancellationToken,
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
    fn remember(&mut self, peer: PeerId, addrs: impl IntoIterator<Item = Multiaddr>) {
        let mut known = self.known.lock().unwrap();
        let entry = known.entry(peer).or_default();
        for a in addrs.into_iter().filter_map(|a| dialable(&a)) {
            if !entry.contains(&a) {
                entry.push(a);
            }
        }
    }

    async fn run(mut self) {
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
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
                let addrs = self
                    .known
                    .lock()
                    .unwrap()
                    .get(&peer)
                    .cloned()
                    .unwrap_or_default();
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
        }
    }

    fn event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!("cluster swarm listening on {address}");
                self.listen_tx.send_modify(|l| l.push(address));
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
                let handler = self.handler.get().cloned();
                let back = self.commands.clone();
                tokio::spawn(async move {
                    let resp = match handler {
                        Some(h) => h.handle(peer, request).await,
                        None => RpcResponse::Err("this peer is still starting".into()),
                    };
                    let _ = back.send(Command::Respond { channel, resp });
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
                    let _ = reply.send(Err(RpcError::Unreachable {
                        peer,
                        message: error.to_string(),
                    }));
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, "inbound cluster RPC failed: {error}");
            }
            Event::ResponseSent { .. } => {}
        }
    }
}
