//! Every component's contract, in one place (as IPFS Cluster's `cluster.go` interfaces).
//!
//! The peer (`peer.rs`) wires concrete implementations behind these traits; the REST API and
//! the desktop shell only ever see the traits, so each component can be replaced or doubled
//! in tests on its own. A pin travels: REST handler → [`Consensus::log_pin`] → Raft state
//! machine → state change → [`PinTracker::track`] → [`IpfsConnector::pin`].

use async_trait::async_trait;

use crate::ipfsconn::{IpfsError, RepoStat};
use crate::types::{Cid, Id, IpfsId, PeerRole, Pin, PinInfo, StatusFilter};

/// The peer's own IPFS daemon, reached over the Kubo RPC API.
#[async_trait]
pub trait IpfsConnector: Send + Sync + 'static {
    async fn id(&self) -> Result<IpfsId, IpfsError>;
    /// Pins recursively (or directly, per the pin's mode); returns once IPFS has it all.
    async fn pin(&self, pin: &Pin) -> Result<(), IpfsError>;
    /// Unpins; a CID that is not pinned counts as done.
    async fn unpin(&self, cid: &Cid) -> Result<(), IpfsError>;
    /// Every recursive and direct pin, as IPFS lists it.
    async fn pin_ls(&self) -> Result<Vec<Cid>, IpfsError>;
    /// Whether `cid` is pinned (by multihash, so CID v0 and v1 forms agree).
    async fn is_pinned(&self, cid: &Cid) -> Result<bool, IpfsError>;
    /// `/ipfs/…`, `/ipns/…` or `/ipld/…` path → the CID it points at.
    async fn resolve(&self, path: &str) -> Result<Cid, IpfsError>;
    async fn repo_stat(&self) -> Result<RepoStat, IpfsError>;
    async fn swarm_connect(&self, addr: &str) -> Result<(), IpfsError>;
    /// Adds a file's bytes to IPFS without pinning it (the cluster pins it); returns its CID.
    async fn add(&self, name: &str, data: Vec<u8>) -> Result<Cid, IpfsError>;
}

/// Shared, agreed state: the pinset and the peerset.
#[async_trait]
pub trait Consensus: Send + Sync + 'static {
    /// Commits a pin (add or update) and returns once it is applied; the pin is then durable.
    async fn log_pin(&self, pin: Pin) -> Result<(), crate::consensus::ConsensusError>;
    async fn log_unpin(&self, cid: Cid) -> Result<(), crate::consensus::ConsensusError>;
    /// Read access to the applied pinset.
    fn state(&self) -> crate::state::StateHandle;
    /// Whether there is a leader and this peer's state has caught up (writes are accepted).
    fn is_ready(&self) -> bool;
    /// Current leader's peer id, if any.
    fn leader(&self) -> Option<String>;
    /// Every member (voters and followers) with its role.
    fn members(&self) -> Vec<crate::consensus::Member>;
    /// Peer ids of every member.
    fn peers(&self) -> Vec<String> {
        self.members().into_iter().map(|m| m.peer_id).collect()
    }
    /// Takes `peer` out of the cluster (forwarded to the leader).
    async fn rm_peer(&self, peer: &str) -> Result<(), crate::consensus::ConsensusError>;
    /// Promotes a follower to voter, or demotes a voter to follower.
    async fn set_role(
        &self,
        peer: &str,
        role: PeerRole,
    ) -> Result<(), crate::consensus::ConsensusError>;
}

/// Drives this peer's IPFS so that what the state allocates here is pinned there.
#[async_trait]
pub trait PinTracker: Send + Sync + 'static {
    /// The state says `pin` exists (new or changed): pin it here if allocated to us.
    fn track(&self, pin: Pin);
    /// The state dropped `cid`: unpin it here.
    fn untrack(&self, cid: Cid);
    async fn status(&self, cid: &Cid) -> PinInfo;
    async fn status_all(&self, filter: &StatusFilter) -> Vec<PinInfo>;
    /// Retries a failed or unexpectedly unpinned CID.
    async fn recover(&self, cid: &Cid) -> PinInfo;
    async fn recover_all(&self) -> Vec<PinInfo>;
}

/// What the REST API needs to describe this peer.
pub trait PeerInfo: Send + Sync + 'static {
    fn id(&self) -> Id;
}
