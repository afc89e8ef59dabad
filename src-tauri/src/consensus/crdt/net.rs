//! The CRDT on the cluster's libp2p host ([`crate::rpc::ClusterRpc`]): heads announced on the
//! cluster's topic (gossipsub, set up by the swarm with the trust check as its validator),
//! blocks fetched by Bitswap from the peers connected.

use std::sync::Arc;

use async_trait::async_trait;

use super::bitswap::{Bitswap, LocalBlocks};
use super::component::CrdtNetwork;
use super::store::CrdtStore;
use super::sync::BlockSource;
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
    async fn get(&self, c: &cid::Cid) -> Result<Vec<u8>, String> {
        self.bitswap.fetch(c, &self.rpc.connected_peers()).await
    }
}

#[async_trait]
impl CrdtNetwork for CrdtNet {
    async fn announce(&self, broadcast: Vec<u8>) {
        self.rpc.publish(broadcast).await;
    }
}

#[cfg(test)]
mod tests;
