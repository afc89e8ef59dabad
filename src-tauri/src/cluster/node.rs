//! What each peer answers about itself and its IPFS node, and the cluster-wide views built
//! from those answers: `POST /ipfs/gc`, `GET /health/graph`, the proxy's `repo/stat`.

use std::time::Duration;

use super::{Cluster, PEER_ID_TIMEOUT};
use crate::components::{Member, NodeAnswer, NodeCall, RpcError};
use crate::types::{ConnectGraph, GlobalRepoGc, RepoGc};

/// How long a member's IPFS garbage collection may take before it is reported as failed
/// (the cluster RPC's own request limit may end it sooner: README, "IPFS GC").
const REPO_GC_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// How long a member may take to list its connections or repository size.
const NODE_TIMEOUT: Duration = Duration::from_secs(30);

impl Cluster {
    /// This peer's answer to `call`.
    pub(super) async fn answer_node(&self, call: NodeCall) -> NodeAnswer {
        match call {
            NodeCall::Peers => NodeAnswer::Peers(self.peers().await),
            NodeCall::IpfsSwarmPeers => NodeAnswer::IpfsSwarmPeers(self.ipfs.swarm_peers().await),
            NodeCall::IpfsRepoStat => NodeAnswer::IpfsRepoStat(
                self.ipfs
                    .repo_stat()
                    .await
                    .map(|s| (s.repo_size, s.storage_max)),
            ),
            NodeCall::IpfsRepoGc => NodeAnswer::IpfsRepoGc(self.repo_gc_local().await),
        }
    }

    /// `call` on `m` (this peer answers itself without the network).
    async fn ask(
        &self,
        m: &Member,
        call: NodeCall,
        timeout: Duration,
    ) -> Result<NodeAnswer, RpcError> {
        if m.peer_id == self.me.peer_id {
            return Ok(self.answer_node(call).await);
        }
        self.rpc.node(m, call, timeout).await
    }

    /// This peer's cluster RPC traffic by protocol (IPFS Cluster's bandwidth by protocol;
    /// IPFS Cluster also counts libp2p's own protocols).
    pub fn bandwidth(&self) -> std::collections::BTreeMap<String, crate::types::Bandwidth> {
        self.rpc.bandwidth()
    }

    /// The last ping round trip to each cluster peer this one is connected to.
    pub fn latencies(&self) -> std::collections::BTreeMap<String, std::time::Duration> {
        self.rpc.latencies()
    }

    /// Garbage collection on this peer's IPFS node.
    pub async fn repo_gc_local(&self) -> RepoGc {
        let (keys, error) = match self.ipfs.repo_gc().await {
            Ok(keys) => (keys, String::new()),
            Err(e) => (Vec::new(), e.to_string()),
        };
        RepoGc {
            peer: self.me.peer_id.clone(),
            peername: self.me.peername.clone(),
            keys,
            error,
        }
    }

    /// Garbage collection on every member's IPFS node, in parallel (IPFS Cluster's
    /// `RepoGC`); a member that cannot be asked has its `error` set.
    #[tracing::instrument(level = "info", skip_all)]
    pub async fn repo_gc(&self) -> GlobalRepoGc {
        let members = self.consensus.members();
        let asks = members.iter().map(|m| async move {
            let gc = match self.ask(m, NodeCall::IpfsRepoGc, REPO_GC_TIMEOUT).await {
                Ok(NodeAnswer::IpfsRepoGc(gc)) => gc,
                Ok(_) => failed_gc(m, "answered a different question".into()),
                // Takes no calls from this peer: left out, as IPFS Cluster does.
                Err(crate::components::RpcError::Unauthorized { .. }) => return None,
                Err(e) => failed_gc(m, e.to_string()),
            };
            Some((m.peer_id.clone(), gc))
        });
        GlobalRepoGc {
            peer_map: futures::future::join_all(asks)
                .await
                .into_iter()
                .flatten()
                .collect(),
        }
    }

    /// The sum of every member's IPFS repository size and limit (IPFS Cluster's proxy
    /// `repo/stat`); members that cannot be asked are left out.
    pub async fn ipfs_repo_stat_all(&self) -> (u64, u64) {
        let members = self.consensus.members();
        let asks = members
            .iter()
            .map(|m| self.ask(m, NodeCall::IpfsRepoStat, NODE_TIMEOUT));
        let mut total = (0u64, 0u64);
        for answer in futures::future::join_all(asks).await {
            if let Ok(NodeAnswer::IpfsRepoStat(Ok((size, max)))) = answer {
                total.0 += size;
                total.1 += max;
            }
        }
        total
    }

    /// Who is connected to whom (IPFS Cluster's `ConnectGraph`): each member's view of the
    /// other members, and its IPFS node's connections. A member that cannot be asked has no
    /// links.
    pub async fn connect_graph(&self) -> ConnectGraph {
        let members = self.consensus.members();
        let mut g = ConnectGraph {
            cluster_id: self.me.peer_id.clone(),
            ..Default::default()
        };
        let asks = members.iter().map(|m| async move {
            let peers = self.ask(m, NodeCall::Peers, PEER_ID_TIMEOUT * 2).await;
            let swarm = self.ask(m, NodeCall::IpfsSwarmPeers, NODE_TIMEOUT).await;
            (m, peers, swarm)
        });
        for (m, peers, swarm) in futures::future::join_all(asks).await {
            let p = m.peer_id.clone();
            g.cluster_trust_links.insert(p.clone(), true);
            let links = g.cluster_links.entry(p.clone()).or_default();
            let Ok(NodeAnswer::Peers(ids)) = peers else {
                continue;
            };
            let mut own_ipfs = None;
            for id in ids.iter().filter(|id| id.error.is_empty()) {
                if id.id == p {
                    g.id_to_peername.insert(p.clone(), id.peername.clone());
                    if id.ipfs.error.is_empty() && !id.ipfs.id.is_empty() {
                        own_ipfs = Some(id.ipfs.id.clone());
                    }
                } else {
                    links.push(id.id.clone());
                }
            }
            let Some(ipfs) = own_ipfs else { continue };
            g.cluster_to_ipfs.insert(p, ipfs.clone());
            let ipfs_links = match swarm {
                Ok(NodeAnswer::IpfsSwarmPeers(Ok(list))) => list,
                _ => Vec::new(),
            };
            g.ipfs_links.insert(ipfs, ipfs_links);
        }
        g
    }
}

fn failed_gc(m: &Member, error: String) -> RepoGc {
    RepoGc {
        peer: m.peer_id.clone(),
        peername: String::new(),
        keys: Vec::new(),
        error,
    }
}
