//! Consensus: openraft with the pinset as its state machine (SPEC §5).
//!
//! Raft's data lives in `<folder>/raft/raft.sqlite`. Node ids are derived from libp2p peer
//! ids (openraft needs a `Copy` integer id); the peer id itself travels in [`ClusterNode`].

pub mod network;
pub mod offline;
pub mod store;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use libp2p_identity::PeerId;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{Raft, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc::UnboundedSender, watch};

use crate::components::Consensus;
use crate::config::RaftConfig;
use crate::state::{Op, StateChange, StateHandle};
use crate::types::{Cid, Pin};
pub use network::{NoTransport, RaftRequest, RaftResponse, RaftTransport};

pub type NodeId = u64;

/// A member as Raft's membership records it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterNode {
    pub peer_id: String,
    /// Cluster swarm multiaddrs this peer was last known at.
    pub addrs: Vec<String>,
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Op,
        R = (),
        NodeId = NodeId,
        Node = ClusterNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Raft node id of a peer: the last 8 bytes of its peer id (an Ed25519 peer id embeds the
/// public key, so these are uniformly random).
pub fn node_id(peer: &PeerId) -> NodeId {
    let bytes = peer.to_bytes();
    let tail: [u8; 8] = bytes[bytes.len() - 8..]
        .try_into()
        .expect("peer ids exceed 8 bytes");
    u64::from_be_bytes(tail)
}

#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    #[error("no Raft leader after waiting {0:?}: the cluster has no quorum or is still electing")]
    NoLeader(Duration),
    #[error("commit failed after {attempts} attempt(s): {message}")]
    Commit { attempts: u32, message: String },
    #[error("Raft storage: {0}")]
    Storage(String),
}

pub struct ConsensusOptions {
    pub folder: PathBuf,
    pub config: RaftConfig,
    pub peer_id: PeerId,
    pub addrs: Vec<String>,
    pub transport: Arc<dyn RaftTransport>,
    pub changes: UnboundedSender<StateChange>,
}

pub struct RaftConsensus {
    raft: Raft<TypeConfig>,
    state: StateHandle,
    me: NodeId,
    cfg: RaftConfig,
    ready: watch::Receiver<bool>,
    transport: Arc<dyn RaftTransport>,
    pool: sqlx::SqlitePool,
}

/// Where Raft's database lives inside the cluster folder.
pub fn db_path(folder: &Path) -> PathBuf {
    folder.join("raft").join("raft.sqlite")
}

fn raft_config(cfg: &RaftConfig) -> Result<openraft::Config, ConsensusError> {
    let ms = |d: crate::config::GoDuration| d.get().as_millis() as u64;
    // Go's heartbeat_timeout is how long a follower waits for a heartbeat; openraft wants the
    // leader's send interval, which must be well below the election timeout.
    let election = ms(cfg.election_timeout).max(150);
    let heartbeat = (ms(cfg.heartbeat_timeout) / 10).clamp(20, election / 3);
    let c = openraft::Config {
        cluster_name: "ipfs-cluster".into(),
        heartbeat_interval: heartbeat,
        election_timeout_min: election,
        election_timeout_max: election * 2,
        max_payload_entries: cfg.max_append_entries.max(1),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_threshold.max(1)),
        max_in_snapshot_log_to_keep: cfg.trailing_logs,
        ..Default::default()
    };
    c.validate()
        .map_err(|e| ConsensusError::Storage(format!("invalid consensus.raft settings: {e}")))
}

impl RaftConsensus {
    /// Opens the Raft database and starts Raft. A fresh database (no vote, no log) becomes a
    /// single-voter cluster, as `init` + `daemon` does in IPFS Cluster.
    pub async fn start(opts: ConsensusOptions) -> Result<RaftConsensus, ConsensusError> {
        let db = db_path(&opts.folder);
        std::fs::create_dir_all(db.parent().unwrap())
            .map_err(|e| ConsensusError::Storage(format!("{}: {e}", db.display())))?;
        let pool = store::open(&db).await.map_err(ConsensusError::Storage)?;
        let fresh = !store::has_history(&pool)
            .await
            .map_err(|e| ConsensusError::Storage(format!("{}: {e}", db.display())))?;
        let state = StateHandle::default();
        let sm = store::StateMachine::new(pool.clone(), state.clone(), opts.changes)
            .await
            .map_err(ConsensusError::Storage)?;
        let me = node_id(&opts.peer_id);
        let network = network::NetworkFactory {
            transport: opts.transport.clone(),
        };
        let raft = Raft::new(
            me,
            Arc::new(raft_config(&opts.config)?),
            network,
            store::LogStore::new(pool.clone()),
            sm,
        )
        .await
        .map_err(|e| ConsensusError::Storage(e.to_string()))?;
        if fresh {
            let node = ClusterNode {
                peer_id: opts.peer_id.to_string(),
                addrs: opts.addrs.clone(),
            };
            raft.initialize(BTreeMap::from([(me, node)]))
                .await
                .map_err(|e| ConsensusError::Storage(format!("initializing Raft: {e}")))?;
        }
        let (ready_tx, ready) = watch::channel(false);
        tokio::spawn(watch_ready(raft.metrics(), ready_tx));
        Ok(RaftConsensus {
            raft,
            state,
            me,
            cfg: opts.config,
            ready,
            transport: opts.transport,
            pool,
        })
    }

    /// CIDs unpinned by entries still in the log and not in the pinset now: the tracker
    /// makes sure IPFS dropped them too (see [`store::logged_unpins`]).
    pub async fn unpins_to_replay(&self) -> Vec<Cid> {
        match store::logged_unpins(&self.pool).await {
            Ok(cids) => cids
                .into_iter()
                .filter(|c| self.state.get(c).is_none())
                .collect(),
            Err(e) => {
                tracing::warn!("cannot read the Raft log for unpins to replay: {e}");
                Vec::new()
            }
        }
    }

    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }

    /// Waits until a leader is known, up to `wait_for_leader_timeout`.
    async fn wait_for_leader(&self) -> Result<NodeId, ConsensusError> {
        let timeout = self.cfg.wait_for_leader_timeout.get();
        let mut metrics = self.raft.metrics();
        let wait = async {
            loop {
                if let Some(l) = metrics.borrow_and_update().current_leader {
                    return l;
                }
                if metrics.changed().await.is_err() {
                    // Raft stopped: nothing will ever be elected.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ConsensusError::NoLeader(timeout))
    }

    /// Commits `op`, forwarding to the leader when this peer is not it, retrying
    /// `commit_retries` times after `commit_retry_delay`.
    #[tracing::instrument(level = "debug", skip_all)]
    async fn commit(&self, op: Op) -> Result<(), ConsensusError> {
        let attempts = self.cfg.commit_retries + 1;
        let mut last_error = String::new();
        for attempt in 1..=attempts {
            let leader = self.wait_for_leader().await?;
            let result = if leader == self.me {
                match self.raft.client_write(op.clone()).await {
                    Ok(_) => Ok(()),
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                        Err("leadership changed during the commit".to_string())
                    }
                    Err(e) => Err(e.to_string()),
                }
            } else {
                self.forward(leader, op.clone()).await
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "commit failed");
                    last_error = e;
                }
            }
            if attempt < attempts {
                tokio::time::sleep(self.cfg.commit_retry_delay.get()).await;
            }
        }
        Err(ConsensusError::Commit {
            attempts,
            message: last_error,
        })
    }

    async fn forward(&self, leader: NodeId, op: Op) -> Result<(), String> {
        let node = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&leader)
            .cloned()
            .ok_or_else(|| format!("leader {leader} is not in the membership"))?;
        let timeout = self.cfg.network_timeout.get();
        match self
            .transport
            .send(&node, RaftRequest::Commit(op), timeout)
            .await
        {
            Ok(RaftResponse::Commit(r)) => r,
            Ok(_) => Err("leader answered a different request".into()),
            Err(e) => Err(format!("forwarding to leader {}: {e}", node.peer_id)),
        }
    }

    fn member_nodes(&self) -> Vec<(NodeId, ClusterNode)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.clone()))
            .collect()
    }
}

/// Ready = a leader was known and this peer had applied everything in its log (IPFS
/// Cluster's WaitForSync). It stays ready through later elections: writes then wait for a
/// leader (`wait_for_leader_timeout`) instead of being refused.
async fn watch_ready(
    mut metrics: watch::Receiver<openraft::RaftMetrics<NodeId, ClusterNode>>,
    ready: watch::Sender<bool>,
) {
    loop {
        {
            let m = metrics.borrow_and_update();
            let applied = m.last_applied.map(|l| l.index);
            if m.current_leader.is_some() && applied >= m.last_log_index {
                tracing::info!(leader = ?m.current_leader, "consensus ready");
                let _ = ready.send(true);
                return;
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

#[async_trait]
impl Consensus for RaftConsensus {
    async fn log_pin(&self, pin: Pin) -> Result<(), ConsensusError> {
        self.commit(Op::Pin(pin)).await
    }

    async fn log_unpin(&self, cid: Cid) -> Result<(), ConsensusError> {
        self.commit(Op::Unpin(cid)).await
    }

    fn state(&self) -> StateHandle {
        self.state.clone()
    }

    fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    fn leader(&self) -> Option<String> {
        let leader = self.raft.metrics().borrow().current_leader?;
        self.member_nodes()
            .into_iter()
            .find(|(id, _)| *id == leader)
            .map(|(_, n)| n.peer_id)
    }

    fn peers(&self) -> Vec<String> {
        self.member_nodes()
            .into_iter()
            .map(|(_, n)| n.peer_id)
            .collect()
    }
}

#[cfg(test)]
mod tests;
