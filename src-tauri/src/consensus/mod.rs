//! Consensus: openraft with the pinset as its state machine (SPEC §5).
//!
//! Raft's data lives in `<folder>/raft/raft.sqlite`. Node ids are derived from libp2p peer
//! ids (openraft needs a `Copy` integer id); the peer id itself travels in [`ClusterNode`].

pub mod network;
pub mod offline;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use libp2p_identity::PeerId;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, Raft, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc::UnboundedSender, watch};
use tokio_util::sync::CancellationToken;

use crate::components::Consensus;
use crate::config::RaftConfig;
use crate::state::{Op, StateChange, StateHandle};
use crate::types::{Cid, PeerRole, Pin};
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

/// How a peer with no Raft history starts.
#[derive(Clone, Debug)]
pub enum Bootstrap {
    /// A new cluster of this one voter (`init` + `daemon`).
    SingleVoter,
    /// A fixed cluster of these voters (`consensus.raft.init_peerset`); every one of them
    /// initializes with the same membership.
    Peerset(Vec<ClusterNode>),
    /// Wait to be added by an existing cluster (`daemon --bootstrap`).
    Join,
}

pub struct ConsensusOptions {
    pub folder: PathBuf,
    pub config: RaftConfig,
    pub peer_id: PeerId,
    pub addrs: Vec<String>,
    pub transport: Arc<dyn RaftTransport>,
    pub changes: UnboundedSender<StateChange>,
    pub bootstrap: Bootstrap,
    /// Whether being a learner counts as ready: false only while joining as a voter, which
    /// is "staging" until promoted. A follower, or any member restarting, is ready as it is.
    pub learner_is_ready: bool,
}

pub struct RaftConsensus {
    raft: Raft<TypeConfig>,
    state: StateHandle,
    me: NodeId,
    me_node: ClusterNode,
    cfg: RaftConfig,
    ready: watch::Receiver<bool>,
    transport: Arc<dyn RaftTransport>,
    pool: sqlx::SqlitePool,
    /// Cancelled when this peer learns it was removed from the cluster.
    removed: CancellationToken,
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

fn parse_node_id(peer: &str) -> Result<NodeId, String> {
    peer.parse::<PeerId>()
        .map(|p| node_id(&p))
        .map_err(|e| format!("invalid peer id {peer:?}: {e}"))
}

impl RaftConsensus {
    /// Opens the Raft database and starts Raft. A peer with history resumes with its stored
    /// membership; a fresh one starts as `bootstrap` says.
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
        let me_node = ClusterNode {
            peer_id: opts.peer_id.to_string(),
            addrs: opts.addrs.clone(),
        };
        if fresh {
            let members = match &opts.bootstrap {
                Bootstrap::SingleVoter => Some(vec![me_node.clone()]),
                Bootstrap::Peerset(nodes) => Some(nodes.clone()),
                Bootstrap::Join => None,
            };
            if let Some(members) = members {
                let mut map = BTreeMap::new();
                for n in members {
                    let id = parse_node_id(&n.peer_id).map_err(ConsensusError::Storage)?;
                    map.insert(id, n);
                }
                raft.initialize(map)
                    .await
                    .map_err(|e| ConsensusError::Storage(format!("initializing Raft: {e}")))?;
            }
        }
        let (ready_tx, ready) = watch::channel(false);
        let removed = CancellationToken::new();
        tokio::spawn(watch_ready(
            raft.metrics(),
            me,
            opts.learner_is_ready,
            ready_tx,
        ));
        tokio::spawn(watch_removal(raft.metrics(), me, removed.clone()));
        Ok(RaftConsensus {
            raft,
            state,
            me,
            me_node,
            cfg: opts.config,
            ready,
            transport: opts.transport,
            pool,
            removed,
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

    /// Fires when this peer has been removed from the cluster.
    pub fn removed(&self) -> CancellationToken {
        self.removed.clone()
    }

    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }

    /// Asks the cluster that `via` belongs to to add this peer (as a learner, then a voter
    /// unless it is a follower). Returns once the leader has done so.
    pub async fn join(&self, via: &ClusterNode, follower: bool) -> Result<(), ConsensusError> {
        let timeout = self.cfg.membership_timeout();
        let req = RaftRequest::Join {
            node: self.me_node.clone(),
            follower,
        };
        match self.transport.send(via, req, timeout).await {
            Ok(RaftResponse::Done(Ok(()))) => Ok(()),
            Ok(RaftResponse::Done(Err(e))) => Err(ConsensusError::Commit {
                attempts: 1,
                message: e,
            }),
            Ok(_) => Err(ConsensusError::Commit {
                attempts: 1,
                message: "peer answered a different request".into(),
            }),
            Err(e) => Err(ConsensusError::Commit {
                attempts: 1,
                message: format!("cannot reach bootstrap peer {}: {e}", via.peer_id),
            }),
        }
    }

    /// Answers a request that arrived from another peer.
    pub async fn serve(&self, req: RaftRequest) -> RaftResponse {
        match req {
            RaftRequest::Join { node, follower } => RaftResponse::Done(
                self.leader_call(LeaderOp::Join { node, follower })
                    .await
                    .map_err(|e| e.to_string()),
            ),
            RaftRequest::Leader(op) => RaftResponse::Done(self.on_leader_limited(op).await),
            RaftRequest::Removed => {
                tracing::warn!("this peer was removed from the cluster");
                self.removed.cancel();
                RaftResponse::Done(Ok(()))
            }
            other => network::serve(&self.raft, other).await,
        }
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

    /// Runs `op` on the leader: here when this peer leads, else forwarded to it, retrying
    /// `commit_retries` times after `commit_retry_delay`.
    #[tracing::instrument(level = "debug", skip_all)]
    async fn leader_call(&self, op: LeaderOp) -> Result<(), ConsensusError> {
        let attempts = self.cfg.commit_retries + 1;
        let mut last_error = String::new();
        for attempt in 1..=attempts {
            let leader = self.wait_for_leader().await?;
            let result = if leader == self.me {
                self.on_leader_limited(op.clone()).await
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

    /// [`Self::on_leader`] with a time limit: a leader that lost its quorum would otherwise
    /// wait forever for the commit.
    async fn on_leader_limited(&self, op: LeaderOp) -> Result<(), String> {
        let limit = match op {
            LeaderOp::Commit(_) => self.cfg.wait_for_leader_timeout.get(),
            _ => self.cfg.membership_timeout(),
        };
        tokio::time::timeout(limit, self.on_leader(op))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "not committed within {limit:?}: the cluster may have lost its quorum"
                ))
            })
    }

    /// What only the leader does.
    async fn on_leader(&self, op: LeaderOp) -> Result<(), String> {
        let write_err = |e: RaftError<NodeId, ClientWriteError<NodeId, ClusterNode>>| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
                "leadership changed during the commit".to_string()
            }
            e => e.to_string(),
        };
        match op {
            LeaderOp::Commit(op) => self
                .raft
                .client_write(op)
                .await
                .map(|_| ())
                .map_err(write_err),
            LeaderOp::Join { node, follower } => {
                let id = parse_node_id(&node.peer_id)?;
                let voters = self.voter_ids();
                if !voters.contains(&id) {
                    tracing::info!(peer = %node.peer_id, follower, "adding peer as a learner");
                    self.raft
                        .add_learner(id, node.clone(), true)
                        .await
                        .map_err(write_err)?;
                }
                if !follower && !voters.contains(&id) {
                    tracing::info!(peer = %node.peer_id, "promoting peer to voter");
                    self.raft
                        .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                        .await
                        .map_err(write_err)?;
                }
                Ok(())
            }
            LeaderOp::Remove { peer_id } => {
                let id = parse_node_id(&peer_id)?;
                let node = self
                    .member(id)
                    .ok_or_else(|| format!("peer {peer_id} is not a cluster member"))?;
                let set = BTreeSet::from([id]);
                if self.voter_ids().contains(&id) {
                    if self.voter_ids().len() == 1 {
                        return Err("cannot remove the last voter of the cluster".into());
                    }
                    self.raft
                        .change_membership(ChangeMembers::RemoveVoters(set), false)
                        .await
                        .map_err(write_err)?;
                } else {
                    self.raft
                        .change_membership(ChangeMembers::RemoveNodes(set), false)
                        .await
                        .map_err(write_err)?;
                }
                // Best effort: the removed peer may not learn it from the log.
                if id != self.me {
                    let t = self.transport.clone();
                    let timeout = self.cfg.network_timeout.get();
                    tokio::spawn(async move {
                        let _ = t.send(&node, RaftRequest::Removed, timeout).await;
                    });
                }
                Ok(())
            }
            LeaderOp::SetRole { peer_id, voter } => {
                let id = parse_node_id(&peer_id)?;
                if self.member(id).is_none() {
                    return Err(format!("peer {peer_id} is not a cluster member"));
                }
                let set = BTreeSet::from([id]);
                let change = if voter {
                    ChangeMembers::AddVoterIds(set)
                } else {
                    if self.voter_ids() == BTreeSet::from([id]) {
                        return Err("cannot demote the last voter of the cluster".into());
                    }
                    ChangeMembers::RemoveVoters(set)
                };
                // retain: a demoted voter stays as a learner (follower).
                self.raft
                    .change_membership(change, true)
                    .await
                    .map_err(write_err)?;
                Ok(())
            }
        }
    }

    async fn forward(&self, leader: NodeId, op: LeaderOp) -> Result<(), String> {
        let node = self
            .member(leader)
            .ok_or_else(|| format!("leader {leader} is not in the membership"))?;
        let timeout = match op {
            LeaderOp::Commit(_) => self.cfg.network_timeout.get(),
            _ => self.cfg.membership_timeout(),
        };
        match self
            .transport
            .send(&node, RaftRequest::Leader(op), timeout)
            .await
        {
            Ok(RaftResponse::Done(r)) => r,
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

    /// The member with Raft id `id`, if it is one.
    fn member(&self, id: NodeId) -> Option<ClusterNode> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .cloned()
    }

    fn voter_ids(&self) -> BTreeSet<NodeId> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// Every member with its role and last known addresses.
    pub fn members(&self) -> Vec<Member> {
        let voters = self.voter_ids();
        self.member_nodes()
            .into_iter()
            .map(|(id, n)| Member {
                peer_id: n.peer_id,
                addrs: n.addrs,
                role: if voters.contains(&id) {
                    PeerRole::Voter
                } else {
                    PeerRole::Follower
                },
            })
            .collect()
    }

    /// Resolves on every membership change.
    pub fn membership_changes(
        &self,
    ) -> watch::Receiver<openraft::RaftMetrics<NodeId, ClusterNode>> {
        self.raft.metrics()
    }
}

/// A cluster member as the consensus sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub peer_id: String,
    pub addrs: Vec<String>,
    pub role: PeerRole,
}

/// Work that only the leader may do; non-leaders forward it.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub enum LeaderOp {
    Commit(Op),
    Join { node: ClusterNode, follower: bool },
    Remove { peer_id: String },
    SetRole { peer_id: String, voter: bool },
}

/// Ready = a leader is known, this peer has applied its whole log, and it is a member: a
/// voter, or a learner unless it is joining as a voter (IPFS Cluster's WaitForSync; a joining
/// voter is not ready while still "staging"). It stays ready through
/// later elections: writes then wait for a leader (`wait_for_leader_timeout`).
async fn watch_ready(
    mut metrics: watch::Receiver<openraft::RaftMetrics<NodeId, ClusterNode>>,
    me: NodeId,
    learner_is_ready: bool,
    ready: watch::Sender<bool>,
) {
    loop {
        {
            let m = metrics.borrow_and_update();
            let applied = m.last_applied.map(|l| l.index);
            let membership = m.membership_config.membership();
            let is_voter = membership.voter_ids().any(|v| v == me);
            let is_member = membership.get_node(&me).is_some();
            let role_ok = is_voter || (learner_is_ready && is_member);
            if m.current_leader.is_some() && applied >= m.last_log_index && role_ok {
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

/// Fires `removed` when a membership this peer had been part of no longer includes it.
async fn watch_removal(
    mut metrics: watch::Receiver<openraft::RaftMetrics<NodeId, ClusterNode>>,
    me: NodeId,
    removed: CancellationToken,
) {
    let mut was_member = false;
    loop {
        {
            let m = metrics.borrow_and_update();
            let is_member = m.membership_config.membership().get_node(&me).is_some();
            if was_member && !is_member {
                tracing::warn!("this peer is no longer in the cluster's membership");
                removed.cancel();
                return;
            }
            was_member |= is_member;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

#[async_trait]
impl Consensus for RaftConsensus {
    async fn log_pin(&self, pin: Pin) -> Result<(), ConsensusError> {
        self.leader_call(LeaderOp::Commit(Op::Pin(pin))).await
    }

    async fn log_unpin(&self, cid: Cid) -> Result<(), ConsensusError> {
        self.leader_call(LeaderOp::Commit(Op::Unpin(cid))).await
    }

    fn state(&self) -> StateHandle {
        self.state.clone()
    }

    fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    fn leader(&self) -> Option<String> {
        let leader = self.raft.metrics().borrow().current_leader?;
        self.member(leader).map(|n| n.peer_id)
    }

    fn members(&self) -> Vec<Member> {
        RaftConsensus::members(self)
    }

    async fn rm_peer(&self, peer: &str) -> Result<(), ConsensusError> {
        self.leader_call(LeaderOp::Remove {
            peer_id: peer.to_string(),
        })
        .await
    }

    async fn set_role(&self, peer: &str, role: PeerRole) -> Result<(), ConsensusError> {
        self.leader_call(LeaderOp::SetRole {
            peer_id: peer.to_string(),
            voter: role == PeerRole::Voter,
        })
        .await
    }
}

#[cfg(test)]
mod tests;
