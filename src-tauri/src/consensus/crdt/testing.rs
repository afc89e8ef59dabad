//! What the CRDT's tests share: the wire vectors written by the independent writer
//! (`tests/fixtures/crdt/make_vectors.py`), waiting on a condition with a deadline, and
//! another store as the source of blocks.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::store::CrdtStore;
use super::sync::{BlockSource, FetchError};

/// Blocks of another store (deltas' and checkpoints'); those in `missing` cannot be had (a
/// peer gone away). Every block asked for is recorded.
pub struct FromStore {
    pub store: Arc<CrdtStore>,
    pub missing: Mutex<HashSet<cid::Cid>>,
    pub asked: Mutex<Vec<cid::Cid>>,
}

impl FromStore {
    pub fn new(store: Arc<CrdtStore>) -> FromStore {
        FromStore {
            store,
            missing: Mutex::default(),
            asked: Mutex::default(),
        }
    }
}

#[async_trait]
impl BlockSource for FromStore {
    async fn get(&self, c: &cid::Cid) -> Result<Vec<u8>, FetchError> {
        self.asked.lock().unwrap().push(*c);
        if self.missing.lock().unwrap().contains(c) {
            return Err(FetchError::NoPeer);
        }
        self.store
            .block(c)
            .await
            .map_err(|e| FetchError::Network(e.to_string()))?
            .ok_or(FetchError::Lacking)
    }
}

const VECTORS: &str = include_str!("../../../../tests/fixtures/crdt/vectors.txt");

/// The vector named `name` (the rest of its line in `vectors.txt`).
pub fn vector(name: &str) -> &'static str {
    VECTORS
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no vector {name}"))
}

/// Waits until `check` holds, failing the test after `secs` seconds.
pub async fn until<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
