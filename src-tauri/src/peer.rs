//! The composition root: builds each component from the configuration, connects them, and
//! stops them. No cluster logic lives here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Cluster, PeerDescriptor};
use crate::components::{Consensus, PinTracker};
use crate::config::{Config, Identity};
use crate::consensus::{ConsensusOptions, NoTransport, RaftConsensus};
use crate::ipfsconn::IpfsHttp;
use crate::pintracker::{StatelessTracker, TrackerIdentity, TrackerIntervals};
use crate::state::StateChange;
use crate::types::PeerRole;

pub struct Peer {
    pub cluster: Cluster,
    consensus: Arc<RaftConsensus>,
    tracker: StatelessTracker,
    rest_addr: SocketAddr,
    shutdown: CancellationToken,
}

impl Peer {
    pub async fn start(
        folder: PathBuf,
        config: Config,
        identity: Identity,
    ) -> Result<Peer, String> {
        let peer_id = identity.peer_id();
        let span = tracing::info_span!("peer", id = %peer_id);
        let _guard = span.enter();
        let shutdown = CancellationToken::new();
        let ipfs = Arc::new(IpfsHttp::new(&config.ipfs_connector.ipfshttp)?);

        let (changes_tx, mut changes_rx) = mpsc::unbounded_channel();
        let consensus = Arc::new(
            RaftConsensus::start(ConsensusOptions {
                folder: folder.clone(),
                config: config.consensus.raft.clone(),
                peer_id,
                addrs: Vec::new(),
                transport: Arc::new(NoTransport),
                changes: changes_tx,
            })
            .await
            .map_err(|e| e.to_string())?,
        );

        let c = &config.cluster;
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

        let cluster = Cluster {
            consensus: consensus.clone(),
            tracker: Arc::new(tracker.clone()),
            ipfs,
            me: PeerDescriptor {
                peer_id: peer_id.to_string(),
                peername: c.peername.clone(),
                addresses: Vec::new(),
                role: if c.follower_mode {
                    PeerRole::Follower
                } else {
                    PeerRole::Voter
                },
            },
            replication: (c.replication_factor_min, c.replication_factor_max),
        };
        let rest_addr =
            crate::restapi::serve(cluster.clone(), &config.api.restapi.0, shutdown.clone()).await?;
        tracing::info!("REST API listening on {rest_addr}");
        Ok(Peer {
            cluster,
            consensus,
            tracker,
            rest_addr,
            shutdown,
        })
    }

    pub fn rest_addr(&self) -> SocketAddr {
        self.rest_addr
    }

    /// Resolves once consensus is ready (leader known, state caught up).
    pub async fn ready(&self) {
        while !self.consensus.is_ready() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tracker.shutdown();
        self.consensus.shutdown().await;
    }
}
