//! The CRDT on the cluster's libp2p host ([`crate::rpc::ClusterRpc`]): heads announced on the
//! cluster's topic (gossipsub, set up by the swarm with the trust check as its validator),
//! blocks fetched by Bitswap from the peers connected.

use std::sync::Arc;

use async_trait::async_trait;

use super::bitswap::{Bitswap, LocalBlocks};
use super::component::CrdtNetwork;
use super::store::CrdtStore;
use super::sync::{BlockSource, FetchError};
use crate::rpc::ClusterRpc;

/// The CRDT's blocks as Bitswap serves them: the store's, nothing else.
pub struct StoreBlocks(pub Arc<CrdtStore>);

#[async_trait]
impl LocalBlocks for StoreBlocks {
    async fn get(&self, c: &cid::Cid) -> Option<Vec<u8>> {
        self.0.block(c).await.ok().flatten()
    }
}

/// [`CrdtNetwork`] over the cluster swarm.
pub struct CrdtNet {
    pub rpc: ClusterRpc,
    pub bitswap: Arc<Bitswap>,
}

#[async_trait]
impl BlockSource for CrdtNet {
    async fn get(&self, c: &cid::Cid) -> Result<Vec<u8>, FetchError> {
        let rpc = self.rpc.clone();
        // In a random order: the wants of many fetches spread over the peers.
        let peers = move || {
            use rand::seq::SliceRandom;
            let mut p = rpc.connected_peers();
            p.shuffle(&mut rand::thread_rng());
            p
        };
        self.bitswap.fetch(c, &peers).await
    }
}

#[async_trait]
impl CrdtNetwork for CrdtNet {
    async fn announce(&self, broadcast: Vec<u8>) {
        self.rpc.publish(broadcast).await;
    }

    fn joined(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.rpc.topic_joined())
    }
}

/// What a CRDT peer answers Raft's messages (it has no Raft), and who may call it: the
/// peers it trusts (every peer holding the secret, with `trusted_peers: ["*"]`) that it has
/// not banned.
pub struct NoRaft(pub Arc<super::component::CrdtConsensus>);

#[async_trait]
impl crate::consensus::RaftService for NoRaft {
    async fn serve(
        &self,
        _from: &str,
        _req: crate::consensus::RaftRequest,
    ) -> crate::consensus::RaftResponse {
        crate::consensus::RaftResponse::Refused(
            "this peer runs the CRDT consensus: it takes no Raft messages".into(),
        )
    }

    fn is_member(&self, from: &str) -> bool {
        self.0.trust().trusts(from) && !self.0.banned(from)
    }
}

#[cfg(test)]
mod tests;
