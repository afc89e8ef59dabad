//! Fetching the DAG's blocks this peer lacks: the `crdt_wanted` table emptied a round at a
//! time, at most `workers` fetches in flight, each bounded by `fetch_timeout`.
//!
//! The source of blocks is a contract ([`BlockSource`]): the network (blocks asked of any
//! peer over the cluster's libp2p host), or another store in tests. A block that cannot be
//! had now stays wanted, behind those tried less, and is asked again in a later round: the
//! state is never dirty, it only lacks what it has not got yet.

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};

use super::store::CrdtStore;
use crate::components::ConsensusError;

/// Why a block could not be had now (it stays wanted, and is asked for again).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("no peer to ask")]
    NoPeer,
    #[error("no peer asked has it")]
    Lacking,
    #[error("no peer gave it within {0:?}")]
    TimedOut(Duration),
    /// The network failed: a stream not opened, a message not sent.
    #[error("{0}")]
    Network(String),
    /// What came is not the block asked for.
    #[error("{0}")]
    Invalid(String),
}

/// Where blocks come from.
#[async_trait]
pub trait BlockSource: Send + Sync + 'static {
    /// Block `c`'s bytes (checked against `c` by the store, not here).
    async fn get(&self, c: &cid::Cid) -> Result<Vec<u8>, FetchError>;
}

#[derive(Clone, Copy, Debug)]
pub struct SyncOptions {
    /// Fetches in flight at most (IPFS Cluster runs 50 DAG workers).
    pub workers: usize,
    /// How long one fetch may take (IPFS Cluster's `DAGSyncerTimeout` is 2 minutes; blocks
    /// here are small, a peer lacking one says so at once, and a fetch given up is tried
    /// again at the next head heard: 30 s).
    pub fetch_timeout: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            workers: 50,
            fetch_timeout: Duration::from_secs(30),
        }
    }
}

/// What a sync did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// Blocks fetched and stored.
    pub stored: u64,
    /// Fetches that failed (their blocks stay wanted).
    pub failed: u64,
    /// Blocks still wanted at the end.
    pub wanted: u64,
}

/// Fetches wanted blocks until none is wanted or a whole round stored nothing (what is left
/// cannot be had now; a later call tries again). Each round takes what is wanted now, so a
/// sync follows the DAG down as blocks name their parents.
pub async fn sync(
    store: &CrdtStore,
    source: &dyn BlockSource,
    opts: SyncOptions,
) -> Result<SyncReport, ConsensusError> {
    let mut report = SyncReport::default();
    let workers = opts.workers.max(1);
    loop {
        let wanted = store.wanted(workers * 4).await?;
        if wanted.is_empty() {
            break;
        }
        let mut stored_now = 0u64;
        let mut fetches = stream::iter(wanted)
            .map(|c| async move {
                let got = tokio::time::timeout(opts.fetch_timeout, source.get(&c))
                    .await
                    .map_err(|_| FetchError::TimedOut(opts.fetch_timeout))
                    .and_then(|r| r);
                (c, got)
            })
            .buffer_unordered(workers);
        while let Some((c, got)) = fetches.next().await {
            let outcome = match got {
                Ok(bytes) => match store.put_block(&c, &bytes).await {
                    Ok(_) => Ok(()),
                    // The block itself, and not a delta's node: wanted no more.
                    Err(ConsensusError::BadInput(e)) => {
                        tracing::warn!(block = %c, error = %e, "CRDT block unusable: dropped");
                        store.unwant(&c).await?;
                        report.failed += 1;
                        continue;
                    }
                    Err(e) => return Err(e),
                },
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => {
                    stored_now += 1;
                    report.stored += 1;
                }
                Err(e) => {
                    tracing::debug!(block = %c, error = %e, "CRDT block not fetched");
                    report.failed += 1;
                    store.fetch_failed(&c).await?;
                }
            }
        }
        if stored_now == 0 {
            break;
        }
    }
    report.wanted = store.wanted_count().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::store::db_path;
    use super::super::testing::FromStore;
    use super::super::wire;
    use super::*;
    use crate::state::feed::feed;
    use crate::types::{Cid, Pin, PinOptions};

    async fn open(dir: &std::path::Path) -> CrdtStore {
        let (tx, _rx) = feed(1 << 12);
        CrdtStore::open(&db_path(dir), tx).await.unwrap()
    }

    #[tokio::test]
    async fn a_sync_follows_the_dag_down_and_resumes_past_a_block_it_could_not_get() {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = Arc::new(open(da.path()).await);
        let mut chain = Vec::new();
        for n in 0..40u32 {
            let p = Pin::new(
                Cid(wire::block_cid(&n.to_be_bytes())),
                PinOptions::default(),
            );
            let d = wire::Delta {
                elements: vec![wire::Element {
                    key: wire::pin_key(&p.cid),
                    id: String::new(),
                    value: wire::pin_to_bytes(&p).unwrap(),
                }],
                ..Default::default()
            };
            chain.push(a.publish(d).await.unwrap().unwrap());
        }
        let b = open(db.path()).await;
        let source = FromStore::new(a.clone());
        source.missing.lock().unwrap().insert(chain[15]);
        b.want(chain.last().unwrap()).await.unwrap();
        let opts = SyncOptions {
            workers: 4,
            fetch_timeout: Duration::from_secs(10),
        };
        let r = sync(&b, &source, opts).await.unwrap();
        // Down to the block that could not be had: the 24 above it, and it still wanted.
        assert_eq!(
            r,
            SyncReport {
                stored: 24,
                failed: 1,
                wanted: 1
            }
        );
        assert_eq!(b.wanted(10).await.unwrap(), vec![chain[15]]);
        // The peer that had it is back: the next sync takes the rest.
        source.missing.lock().unwrap().clear();
        let r = sync(&b, &source, opts).await.unwrap();
        assert_eq!(
            r,
            SyncReport {
                stored: 16,
                failed: 0,
                wanted: 0
            }
        );
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pins")
            .fetch_one(b.pool())
            .await
            .unwrap();
        assert_eq!(count, 40);
        // Nothing wanted: nothing asked.
        let asked = source.asked.lock().unwrap().len();
        sync(&b, &source, opts).await.unwrap();
        assert_eq!(source.asked.lock().unwrap().len(), asked);
    }

    /// A block whose bytes are right but that is not a delta's node is wanted no more (no
    /// fetch could ever make it usable), and nothing of it is applied.
    #[tokio::test]
    async fn a_block_that_is_no_delta_is_wanted_no_more() {
        struct Junk;
        #[async_trait]
        impl BlockSource for Junk {
            async fn get(&self, _: &cid::Cid) -> Result<Vec<u8>, FetchError> {
                Ok(b"\xff\xff".to_vec())
            }
        }
        let d = tempfile::tempdir().unwrap();
        let b = open(d.path()).await;
        b.want(&wire::block_cid(b"\xff\xff")).await.unwrap();
        let r = sync(&b, &Junk, SyncOptions::default()).await.unwrap();
        assert_eq!(
            r,
            SyncReport {
                stored: 0,
                failed: 1,
                wanted: 0
            }
        );
        assert!(!b.has_block(&wire::block_cid(b"\xff\xff")).await.unwrap());
    }

    /// A source that never answers holds a sync up for one timeout, not forever.
    #[tokio::test]
    async fn a_source_that_never_answers_costs_one_timeout() {
        struct Never;
        #[async_trait]
        impl BlockSource for Never {
            async fn get(&self, _: &cid::Cid) -> Result<Vec<u8>, FetchError> {
                futures::future::pending().await
            }
        }
        let d = tempfile::tempdir().unwrap();
        let b = open(d.path()).await;
        b.want(&wire::block_cid(b"x")).await.unwrap();
        let r = sync(
            &b,
            &Never,
            SyncOptions {
                workers: 2,
                fetch_timeout: Duration::from_millis(50),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            r,
            SyncReport {
                stored: 0,
                failed: 1,
                wanted: 1
            }
        );
    }
}
