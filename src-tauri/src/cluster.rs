//! Cluster operations as every front end sees them (REST API, IPFS proxy, desktop commands).
//!
//! Each method is a short sequence of component calls; the components own their state and
//! tasks. This is where a pin is validated and allocated before it goes to consensus.

use std::sync::Arc;
use std::time::Duration;

use crate::allocator;
use crate::components::{Consensus, IpfsConnector, PinTracker};
use crate::config::check_replication;
use crate::error::{Error, Result};
use crate::informer;
use crate::monitor::PeerMonitor;
use crate::rpc::{ClusterRpc, RpcRequest, RpcResponse};
use crate::types::{
    Cid, GlobalPinInfo, Id, IpfsId, PeerRole, Pin, PinInfo, PinInfoShort, PinOptions, PinType,
    StatusFilter, TrackerStatus, RPC_PROTOCOL, VERSION,
};

/// This peer's identity as it reports it.
#[derive(Clone, Debug)]
pub struct PeerDescriptor {
    pub peer_id: String,
    pub peername: String,
    /// Cluster swarm addresses with `/p2p/<id>`.
    pub addresses: Vec<String>,
}

#[derive(Clone)]
pub struct Cluster {
    pub consensus: Arc<dyn Consensus>,
    pub tracker: Arc<dyn PinTracker>,
    pub ipfs: Arc<dyn IpfsConnector>,
    pub rpc: ClusterRpc,
    pub monitor: PeerMonitor,
    pub me: PeerDescriptor,
    /// Cluster-wide defaults for pins that set no replication factors.
    pub replication: (i32, i32),
    /// `allocator.balanced.allocate_by`.
    pub allocate_by: Vec<String>,
}

/// How long an `ID` request waits for IPFS before reporting it as unreachable.
const IPFS_ID_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `GET /peers` waits for each peer's ID.
const PEER_ID_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a global status or recover waits for each peer.
const PEER_STATUS_TIMEOUT: Duration = Duration::from_secs(30);

impl Cluster {
    pub async fn id(&self) -> Id {
        let ipfs = match tokio::time::timeout(IPFS_ID_TIMEOUT, self.ipfs.id()).await {
            Ok(Ok(id)) => id,
            Ok(Err(e)) => IpfsId {
                error: e.to_string(),
                ..Default::default()
            },
            Err(_) => IpfsId {
                error: format!("IPFS did not answer within {IPFS_ID_TIMEOUT:?}"),
                ..Default::default()
            },
        };
        let members = self.consensus.members();
        let role = members
            .iter()
            .find(|m| m.peer_id == self.me.peer_id)
            .map(|m| m.role);
        let cluster_peers_addresses = members
            .iter()
            .filter(|m| m.peer_id != self.me.peer_id)
            .flat_map(|m| {
                m.addrs
                    .iter()
                    .map(move |a| format!("{a}/p2p/{}", m.peer_id))
            })
            .collect();
        Id {
            id: self.me.peer_id.clone(),
            addresses: self.me.addresses.clone(),
            cluster_peers: members.into_iter().map(|m| m.peer_id).collect(),
            cluster_peers_addresses,
            version: VERSION.to_string(),
            commit: String::new(),
            rpc_protocol_version: RPC_PROTOCOL.to_string(),
            error: String::new(),
            ipfs,
            peername: self.me.peername.clone(),
            role,
            leader: self.consensus.leader(),
        }
    }

    /// Every member's ID, asked in parallel. Members this peer cannot reach carry an `error`.
    pub async fn peers(&self) -> Vec<Id> {
        let members = self.consensus.members();
        let asks = members.into_iter().map(|m| async move {
            if m.peer_id == self.me.peer_id {
                return self.id().await;
            }
            let unreachable = |error: String| Id {
                id: m.peer_id.clone(),
                error,
                role: Some(m.role),
                ..Default::default()
            };
            match self
                .rpc
                .call_member(&m.peer_id, &m.addrs, RpcRequest::Id, PEER_ID_TIMEOUT)
                .await
            {
                Ok(RpcResponse::Id(mut id)) => {
                    id.role = Some(m.role);
                    id
                }
                Ok(RpcResponse::Err(e)) => unreachable(e),
                Ok(_) => unreachable("unexpected answer".into()),
                Err(e) => unreachable(e.to_string()),
            }
        });
        futures::future::join_all(asks).await
    }

    /// 400 for a malformed peer id, 404 for one that is not a member.
    fn check_member(&self, peer: &str) -> Result<()> {
        peer.parse::<libp2p::PeerId>()
            .map_err(|e| Error::BadRequest(format!("invalid peer id {peer:?}: {e}")))?;
        if !self.consensus.peers().iter().any(|p| p == peer) {
            return Err(Error::NotFound(format!(
                "peer {peer} is not a cluster member"
            )));
        }
        Ok(())
    }

    /// Removes `peer` from the cluster.
    pub async fn peer_rm(&self, peer: &str) -> Result<()> {
        self.check_member(peer)?;
        self.consensus.rm_peer(peer).await?;
        Ok(())
    }

    /// Promotes a follower to voter or demotes a voter to follower.
    pub async fn peer_role(&self, peer: &str, role: PeerRole) -> Result<()> {
        self.check_member(peer)?;
        self.consensus.set_role(peer, role).await?;
        Ok(())
    }

    fn check_ready(&self) -> Result<()> {
        if self.consensus.is_ready() {
            Ok(())
        } else {
            Err(Error::NotReady(
                "this peer is not ready yet: consensus has no leader or is still catching up; retry shortly".into(),
            ))
        }
    }

    /// Validates and allocates `opts`, then commits the pin. Returns it as committed.
    #[tracing::instrument(level = "info", skip_all, fields(cid = %cid))]
    pub async fn pin(&self, cid: Cid, mut opts: PinOptions) -> Result<Pin> {
        self.check_ready()?;
        if opts.replication_factor_min == 0 && opts.replication_factor_max == 0 {
            (opts.replication_factor_min, opts.replication_factor_max) = self.replication;
        } else if opts.replication_factor_max == 0 {
            opts.replication_factor_max = opts.replication_factor_min;
        } else if opts.replication_factor_min == 0 {
            opts.replication_factor_min = opts.replication_factor_max.clamp(-1, 1);
        }
        check_replication(opts.replication_factor_min, opts.replication_factor_max)
            .map_err(Error::BadRequest)?;
        for p in &opts.user_allocations {
            p.parse::<libp2p_identity::PeerId>().map_err(|e| {
                Error::BadRequest(format!("user allocation {p:?} is not a peer id: {e}"))
            })?;
        }
        let existing = self.consensus.state().get(&cid);
        let mut pin = Pin::new(cid, opts);
        let current = existing
            .as_ref()
            .map(|p| p.allocations.clone())
            .unwrap_or_default();
        let candidates = self.candidates(&[]);
        pin.allocations = allocator::allocate(
            pin.options.replication_factor_min,
            pin.options.replication_factor_max,
            &current,
            &pin.options.user_allocations,
            &candidates,
        )
        .map_err(Error::BadRequest)?;
        if let Some(old) = existing {
            // Re-pinning keeps the original creation time.
            pin.timestamp = old.timestamp;
        }
        self.consensus.log_pin(pin.clone()).await?;
        Ok(pin)
    }

    pub async fn pin_path(&self, path: &str, opts: PinOptions) -> Result<Pin> {
        let cid = self.resolve(path).await?;
        self.pin(cid, opts).await
    }

    #[tracing::instrument(level = "info", skip_all, fields(cid = %cid))]
    pub async fn unpin(&self, cid: Cid) -> Result<Pin> {
        self.check_ready()?;
        let pin = self.allocation(&cid)?;
        self.consensus.log_unpin(cid).await?;
        Ok(pin)
    }

    pub async fn unpin_path(&self, path: &str) -> Result<Pin> {
        let cid = self.resolve(path).await?;
        self.unpin(cid).await
    }

    async fn resolve(&self, path: &str) -> Result<Cid> {
        let valid = ["/ipfs/", "/ipns/", "/ipld/"]
            .iter()
            .any(|p| path.starts_with(p) && path.len() > p.len());
        if !valid {
            return Err(Error::BadRequest(format!(
                "invalid path {path:?}: expected /ipfs/…, /ipns/… or /ipld/…"
            )));
        }
        self.ipfs.resolve(path).await.map_err(|e| match e {
            crate::ipfsconn::IpfsError::Api(m) => {
                Error::BadRequest(format!("cannot resolve {path}: {m}"))
            }
            other => Error::Ipfs(other),
        })
    }

    pub fn allocations(&self, types: &[PinType]) -> Vec<Pin> {
        let mut pins = self.consensus.state().list();
        if !types.is_empty() {
            pins.retain(|p| types.contains(&p.pin_type));
        }
        pins
    }

    pub fn allocation(&self, cid: &Cid) -> Result<Pin> {
        self.consensus
            .state()
            .get(cid)
            .ok_or_else(|| Error::NotFound(format!("{cid} is not in the pinset")))
    }

    pub async fn status_local(&self, cid: &Cid) -> PinInfo {
        self.tracker.status(cid).await
    }

    pub async fn status(&self, cid: &Cid) -> GlobalPinInfo {
        let mut all = self.gather(PeerCall::Status(vec![*cid])).await;
        all.pop()
            .unwrap_or_else(|| GlobalPinInfo::from_local(self.placeholder_info(cid)))
    }

    pub async fn status_all_local(&self, filter: &StatusFilter, cids: &[Cid]) -> Vec<PinInfo> {
        if cids.is_empty() {
            return self.tracker.status_all(filter).await;
        }
        let mut out = Vec::new();
        for c in cids {
            let info = self.tracker.status(c).await;
            if filter.matches(info.info.status) {
                out.push(info);
            }
        }
        out
    }

    /// Every peer's view of every pin (or of `cids`), gathered in parallel; a pin is kept
    /// when any peer's status matches `filter`.
    pub async fn status_all(&self, filter: &StatusFilter, cids: &[Cid]) -> Vec<GlobalPinInfo> {
        let mut all = self.gather(PeerCall::Status(cids.to_vec())).await;
        all.retain(|g| g.peer_map.values().any(|i| filter.matches(i.status)));
        all
    }

    pub async fn recover_local(&self, cid: &Cid) -> PinInfo {
        self.tracker.recover(cid).await
    }

    pub async fn recover(&self, cid: &Cid) -> GlobalPinInfo {
        let mut all = self.gather(PeerCall::Recover(Some(*cid))).await;
        all.pop()
            .unwrap_or_else(|| GlobalPinInfo::from_local(self.placeholder_info(cid)))
    }

    pub async fn recover_all_local(&self) -> Vec<PinInfo> {
        self.tracker.recover_all().await
    }

    pub async fn recover_all(&self) -> Vec<GlobalPinInfo> {
        self.gather(PeerCall::Recover(None)).await
    }

    /// What this peer's tracker answers for a call from another peer.
    pub async fn local_call(&self, call: PeerCall) -> Vec<PinInfo> {
        match call {
            PeerCall::Status(cids) => self.status_all_local(&StatusFilter::default(), &cids).await,
            PeerCall::Recover(Some(cid)) => vec![self.recover_local(&cid).await],
            PeerCall::Recover(None) => self.recover_all_local().await,
        }
    }

    fn placeholder_info(&self, cid: &Cid) -> PinInfo {
        PinInfo {
            cid: *cid,
            name: String::new(),
            peer: self.me.peer_id.clone(),
            allocations: Vec::new(),
            origins: Vec::new(),
            created: None,
            metadata: Default::default(),
            info: PinInfoShort {
                peername: self.me.peername.clone(),
                ipfs_peer_id: String::new(),
                ipfs_peer_addresses: Vec::new(),
                status: TrackerStatus::Unpinned,
                timestamp: chrono::Utc::now(),
                error: String::new(),
                attempt_count: 0,
                priority_pin: false,
            },
        }
    }

    /// Runs `call` on every member in parallel and merges the answers per CID. A member that
    /// cannot be asked shows `cluster_error` for each pin it should hold.
    async fn gather(&self, call: PeerCall) -> Vec<GlobalPinInfo> {
        let members = self.consensus.members();
        let asks = members.iter().map(|m| {
            let call = call.clone();
            async move {
                if m.peer_id == self.me.peer_id {
                    return (m, Ok(self.local_call(call).await));
                }
                let req = RpcRequest::Pins(call);
                let r = match self
                    .rpc
                    .call_member(&m.peer_id, &m.addrs, req, PEER_STATUS_TIMEOUT)
                    .await
                {
                    Ok(RpcResponse::Pins(infos)) => Ok(infos),
                    Ok(RpcResponse::Err(e)) => Err(e),
                    Ok(_) => Err("unexpected answer".to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (m, r)
            }
        });
        let answers = futures::future::join_all(asks).await;
        let wanted: Option<Vec<Cid>> = match &call {
            PeerCall::Status(cids) if !cids.is_empty() => Some(cids.clone()),
            PeerCall::Recover(Some(c)) => Some(vec![*c]),
            _ => None,
        };
        let state = self.consensus.state();
        let mut out: std::collections::BTreeMap<Cid, GlobalPinInfo> = Default::default();
        for (m, answer) in answers {
            match answer {
                Ok(infos) => {
                    for info in infos {
                        let peer = info.peer.clone();
                        let short = info.info.clone();
                        out.entry(info.cid)
                            .or_insert_with(|| GlobalPinInfo {
                                peer_map: Default::default(),
                                ..GlobalPinInfo::from_local(info)
                            })
                            .peer_map
                            .insert(peer, short);
                    }
                }
                Err(error) => {
                    let pins: Vec<Pin> = match &wanted {
                        Some(cids) => cids.iter().filter_map(|c| state.get(c)).collect(),
                        None => state.list(),
                    };
                    for pin in pins.iter().filter(|p| p.is_allocated_to(&m.peer_id)) {
                        let short = PinInfoShort {
                            peername: String::new(),
                            ipfs_peer_id: String::new(),
                            ipfs_peer_addresses: Vec::new(),
                            status: TrackerStatus::ClusterError,
                            timestamp: chrono::Utc::now(),
                            error: format!("peer {} not reachable: {error}", m.peer_id),
                            attempt_count: 0,
                            priority_pin: false,
                        };
                        out.entry(pin.cid)
                            .or_insert_with(|| GlobalPinInfo {
                                cid: pin.cid,
                                name: pin.options.name.clone(),
                                allocations: pin.allocations.clone(),
                                origins: pin.options.origins.clone(),
                                created: Some(pin.timestamp),
                                metadata: pin.options.metadata.clone(),
                                peer_map: Default::default(),
                            })
                            .peer_map
                            .insert(m.peer_id.clone(), short);
                    }
                }
            }
        }
        out.into_values().collect()
    }

    /// Peers a pin may be allocated to, best first: members with a current `ping`, minus
    /// `exclude`, ranked by the balanced allocator.
    pub fn candidates(&self, exclude: &[String]) -> Vec<String> {
        let mut live: Vec<String> = self
            .consensus
            .peers()
            .into_iter()
            .filter(|p| !exclude.contains(p))
            .filter(|p| self.monitor.current(informer::PING, p).is_some())
            .collect();
        live.sort();
        allocator::rank(&live, &self.allocate_by, |name, peer| {
            self.monitor.current(name, peer)
        })
    }

    /// Re-allocates the pins held by `dead` to other live peers (repinning on an alert).
    /// Only the leader does this, so peers do not race each other.
    pub async fn repin_from(&self, dead: &str) {
        if self.consensus.leader().as_deref() != Some(self.me.peer_id.as_str()) {
            return;
        }
        let exclude = vec![dead.to_string()];
        for pin in self.consensus.state().list() {
            if pin.allocations.is_empty() || !pin.allocations.iter().any(|a| a == dead) {
                continue;
            }
            let keep: Vec<String> = pin
                .allocations
                .iter()
                .filter(|a| *a != dead)
                .cloned()
                .collect();
            let candidates = self.candidates(&exclude);
            match allocator::allocate(
                pin.options.replication_factor_min,
                pin.options.replication_factor_max,
                &keep,
                &pin.options.user_allocations,
                &candidates,
            ) {
                Ok(allocations) if allocations != pin.allocations => {
                    tracing::info!(cid = %pin.cid, from = dead, to = ?allocations, "repinning");
                    let mut moved = pin.clone();
                    moved.allocations = allocations;
                    if let Err(e) = self.consensus.log_pin(moved).await {
                        tracing::warn!(cid = %pin.cid, "repinning failed: {e}");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(cid = %pin.cid, "cannot repin: {e}"),
            }
        }
    }
}

/// A pin-status question one peer asks another (`GET /pins`, recover).
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub enum PeerCall {
    /// Status of these CIDs (all when empty).
    Status(Vec<Cid>),
    /// Recover this CID (all errored ones when None).
    Recover(Option<Cid>),
}
