//! `ipfs-cluster-service state …` on a stopped CRDT peer, as IPFS Cluster's CRDT state
//! manager does it, with the Raft side's backups:
//! - **export** writes the pinset (the `pins` table the CRDT keeps) as Raft's does;
//! - **cleanup** backs the pinset up (`<folder>/crdt.backups/`) and removes `<folder>/crdt/`
//!   (blocks, heads, batch and pinset);
//! - **import** stages the pins first (all or nothing), then, in one transaction, empties the
//!   CRDT's tables and makes the staged pins the pinset, and writes them as this peer's
//!   deltas of [`PINS_PER_DELTA`] pins (blocks well under Bitswap's 4 MiB), a new DAG. As in
//!   IPFS Cluster, run it on every peer with the cluster stopped: a peer that kept its old DAG
//!   would bring its pins back when they meet (nothing of the new DAG removes them).

use std::path::{Path, PathBuf};

use futures::TryStreamExt;

use super::store::{db_path, storage, CrdtStore};
use super::wire::{self, Delta, Element};
use crate::components::{ConsensusError, Pinset};
use crate::consensus::offline::{
    backup_db, cleanup_db, export_db, stage_import_db, CommitStaged, StagedImport,
};
use crate::consensus::store;
use crate::types::Pin;

/// Pins written in one delta by an import.
pub const PINS_PER_DELTA: usize = 1_000;

/// Set (in `kv`) from the moment an import makes its pins the pinset until they are all
/// written as deltas: a peer whose import was cut short refuses to start (its pinset would
/// hold pins its DAG never gives the others).
const IMPORT_PENDING: &str = "crdt_import_pending";

/// Whether an import into the CRDT database `pool` was cut short.
pub async fn import_interrupted(pool: &sqlx::SqlitePool) -> Result<bool, ConsensusError> {
    let found: Option<bool> = store::kv_get(pool, IMPORT_PENDING).await.map_err(storage)?;
    Ok(found.is_some())
}

/// Where a CRDT peer's backups go.
pub fn backups_dir(folder: &Path) -> PathBuf {
    folder.join("crdt.backups")
}

/// The pinset of a stopped CRDT peer, as newline-delimited JSON; how many pins.
pub async fn export(folder: &Path, out: impl std::io::Write) -> Result<u64, ConsensusError> {
    export_db(&db_path(folder), out).await
}

/// Writes the pinset to a new backup file (keeping `rotate`); `None` without state.
pub async fn backup(folder: &Path, rotate: u32) -> Result<Option<PathBuf>, ConsensusError> {
    backup_db(&db_path(folder), &backups_dir(folder), rotate).await
}

/// Backs up, then removes the CRDT's state.
pub async fn cleanup(folder: &Path, rotate: u32) -> Result<Option<PathBuf>, ConsensusError> {
    cleanup_db(&db_path(folder), &backups_dir(folder), rotate).await
}

/// Stages `pins` for import into a CRDT peer (see the module's docs for the commit).
pub async fn stage_import(
    folder: &Path,
    pins: impl IntoIterator<Item = Result<Pin, crate::state::ImportError>>,
) -> Result<StagedImport, ConsensusError> {
    let db = db_path(folder);
    let at = db.clone();
    let commit: CommitStaged =
        Box::new(move |pool| Box::pin(async move { commit(&pool, &at).await }));
    stage_import_db(&db, pins, Some(commit)).await
}

/// The commit of a staged import into the CRDT database `db` (whose pool `pool` is).
async fn commit(pool: &sqlx::SqlitePool, db: &Path) -> Result<(), ConsensusError> {
    store::swap_staged_after(
        pool,
        &[
            "DELETE FROM crdt_blocks",
            "DELETE FROM crdt_links",
            "DELETE FROM crdt_heads",
            "DELETE FROM crdt_wanted",
            "DELETE FROM crdt_elems",
            "DELETE FROM crdt_tombs",
            "DELETE FROM crdt_batch",
            super::checkpoint::FORGET[0],
            super::checkpoint::FORGET[1],
            "INSERT OR REPLACE INTO kv (key, value) VALUES ('crdt_import_pending', 'true')",
        ],
    )
    .await?;
    // Nobody follows the feed of a stopped peer: the tracker re-reads the pinset at start.
    let (changes, _unread) = crate::state::feed::feed(16);
    let crdt = CrdtStore::open(db, changes).await?;
    let mut pins = store::PinsTable::new(crdt.pool().clone()).stream();
    let mut elements = Vec::with_capacity(PINS_PER_DELTA);
    loop {
        let pin = pins.try_next().await?;
        if let Some(pin) = &pin {
            elements.push(Element {
                key: wire::pin_key(&pin.cid),
                id: String::new(),
                value: wire::pin_to_bytes(pin).map_err(|e| ConsensusError::BadInput(e.0))?,
            });
        }
        if elements.len() >= PINS_PER_DELTA || (pin.is_none() && !elements.is_empty()) {
            crdt.publish(Delta {
                elements: std::mem::take(&mut elements),
                ..Delta::default()
            })
            .await?;
        }
        if pin.is_none() {
            break;
        }
    }
    drop(pins);
    store::kv_delete(crdt.pool(), IMPORT_PENDING)
        .await
        .map_err(storage)?;
    crdt.pool().close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Cid, PinOptions};

    fn pin(n: u32) -> Pin {
        let mut p = Pin::new(
            Cid(wire::block_cid(&n.to_be_bytes())),
            PinOptions {
                name: format!("pin {n}"),
                ..PinOptions::default()
            },
        );
        p.timestamp = chrono::DateTime::UNIX_EPOCH;
        p
    }

    async fn exported(f: &Path) -> Vec<Pin> {
        let mut buf = Vec::new();
        export(f, &mut buf).await.unwrap();
        crate::state::read_pins(&buf[..])
            .collect::<Result<_, _>>()
            .unwrap()
    }

    async fn count(f: &Path, table: &str) -> i64 {
        let pool = store::open(&db_path(f)).await.unwrap();
        let n = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    }

    #[tokio::test]
    async fn an_import_replaces_the_dag_with_deltas_of_the_pins_and_cleanup_keeps_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path();
        assert!(exported(f).await.is_empty());
        let first: Vec<Pin> = (0..2_500).map(pin).collect();
        let staged = stage_import(f, first.iter().cloned().map(Ok))
            .await
            .unwrap();
        assert_eq!(staged.count, 2_500);
        staged.commit().await.unwrap();
        let mut want = first.clone();
        want.sort_by_key(|p| p.cid.to_string());
        assert_eq!(exported(f).await, want);
        // Three deltas of at most 1,000 pins, one after the other: one head, at height 3.
        assert_eq!(count(f, "crdt_blocks").await, 3);
        let (changes, _rx) = crate::state::feed::feed(16);
        let crdt = CrdtStore::open(&db_path(f), changes).await.unwrap();
        let (heads, height) = crdt.heads().await.unwrap();
        assert_eq!((heads.len(), height), (1, 3));
        // Done: not taken for an import cut short (which a peer refuses to start with).
        assert!(!import_interrupted(crdt.pool()).await.unwrap());
        sqlx::query("INSERT INTO kv (key, value) VALUES (?, 'true')")
            .bind(IMPORT_PENDING)
            .execute(crdt.pool())
            .await
            .unwrap();
        assert!(import_interrupted(crdt.pool()).await.unwrap());
        crdt.pool().close().await;
        // A second import replaces it all: the old pins and blocks are gone.
        let second = vec![pin(9_999)];
        let staged = stage_import(f, second.iter().cloned().map(Ok))
            .await
            .unwrap();
        staged.commit().await.unwrap();
        assert_eq!(exported(f).await, second);
        assert_eq!(count(f, "crdt_blocks").await, 1);
        assert_eq!(count(f, "crdt_elems").await, 1);
        // A declined import changes nothing.
        stage_import(f, [Ok(pin(1))]).await.unwrap().discard().await;
        assert_eq!(exported(f).await, second);
        // Cleanup: a backup of the pinset, and no CRDT state left.
        let saved = cleanup(f, 2).await.unwrap().unwrap();
        assert!(saved.starts_with(backups_dir(f)));
        assert!(!db_path(f).exists());
        let text = std::fs::read(&saved).unwrap();
        let back: Vec<Pin> = crate::state::read_pins(&text[..])
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back, second);
    }
}
