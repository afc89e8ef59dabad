//! The consensus a peer runs, Raft or the CRDT, behind what the peer's wiring needs of
//! either: the [`Consensus`] contract, readiness, the signals that stop the peer, the stop
//! itself, and who answers Raft's messages.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::crdt::component::CrdtConsensus;
use super::crdt::net::NoRaft;
use super::network::RaftService;
use super::raft::RaftConsensus;
use crate::components::Consensus;

#[derive(Clone)]
pub enum Engine {
    Raft(Arc<RaftConsensus>),
    Crdt {
        crdt: Arc<CrdtConsensus>,
        /// Never fires: a CRDT peer is never removed, and has no Raft to stop.
        never: CancellationToken,
    },
}

impl Engine {
    pub fn crdt(crdt: Arc<CrdtConsensus>) -> Engine {
        Engine::Crdt {
            crdt,
            never: CancellationToken::new(),
        }
    }

    pub fn consensus(&self) -> Arc<dyn Consensus> {
        match self {
            Engine::Raft(r) => r.clone(),
            Engine::Crdt { crdt, .. } => crdt.clone(),
        }
    }

    pub fn raft_service(&self) -> Arc<dyn RaftService> {
        match self {
            Engine::Raft(r) => r.clone(),
            Engine::Crdt { crdt, .. } => Arc::new(NoRaft(crdt.clone())),
        }
    }

    /// Resolves once the peer can take writes (a CRDT peer can at once).
    pub async fn wait_ready(&self) {
        if let Engine::Raft(r) = self {
            r.wait_ready().await
        }
    }

    pub fn is_ready(&self) -> bool {
        self.consensus().is_ready()
    }

    pub fn removed(&self) -> CancellationToken {
        match self {
            Engine::Raft(r) => r.removed(),
            Engine::Crdt { never, .. } => never.clone(),
        }
    }

    pub fn stopped(&self) -> CancellationToken {
        match self {
            Engine::Raft(r) => r.stopped(),
            Engine::Crdt { never, .. } => never.clone(),
        }
    }

    pub async fn step_down(&self) {
        self.consensus().step_down().await
    }
}
