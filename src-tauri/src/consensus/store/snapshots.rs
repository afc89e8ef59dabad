//! Snapshot bookkeeping: which snapshot file is current (one row, only ever replaced by a
//! newer one), building one from the pins table, and tidying the folder at start. The file
//! format is [`super::super::snapshot`]'s.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::TryStreamExt;
use openraft::storage::Snapshot;
use openraft::{LogId, RaftSnapshotBuilder, SnapshotMeta, StoredMembership};
use serde::Serialize;
use sqlx::{Connection, Row, SqlitePool};

use super::super::snapshot;
use super::super::typ::{ClusterNode, NodeId, TypeConfig};
use super::db::{fresh_name, kv_get, read_err, storage, write_err, SErr};
use crate::components::ConsensusError;

/// The size of the current snapshot file (0 when there is none).
pub async fn snapshot_size(pool: &SqlitePool, snapshots: &Path) -> u64 {
    match current_snapshot(pool).await {
        Ok(Some(row)) => tokio::fs::metadata(snapshots.join(row.file))
            .await
            .map(|m| m.len())
            .unwrap_or(0),
        _ => 0,
    }
}

#[derive(Serialize, serde::Deserialize)]
pub(super) struct SnapshotRow {
    pub(super) meta: SnapshotMeta<NodeId, ClusterNode>,
    pub(super) file: String,
}

/// Records `file` as the current snapshot unless a newer one already is (a snapshot built
/// from an older state can finish after a newer one was installed), then deletes every other
/// snapshot file. Returns whether it became current.
pub(super) async fn keep_snapshot(
    exec: &mut sqlx::SqliteConnection,
    meta: &SnapshotMeta<NodeId, ClusterNode>,
    file: &str,
) -> Result<bool, sqlx::Error> {
    let idx = meta.last_log_id.map_or(-1, |l| l.index as i64);
    let text = serde_json::to_string(meta).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let done = sqlx::query(
        "INSERT INTO snapshot (id, idx, meta, file) VALUES (1, ?, ?, ?) \
         ON CONFLICT(id) DO UPDATE SET idx = excluded.idx, meta = excluded.meta, file = excluded.file \
         WHERE excluded.idx >= snapshot.idx",
    )
    .bind(idx)
    .bind(text)
    .bind(file)
    .execute(exec)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes the snapshot files other than the current one (and, at start, half-written ones).
pub(super) async fn remove_other_snapshots(dir: &Path, current: Option<&str>, parts_too: bool) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(e)) = entries.next_entry().await {
        let name = e.file_name().to_string_lossy().to_string();
        let stale = (name.ends_with(".snap") && Some(name.as_str()) != current)
            || (parts_too && name.ends_with(".part"));
        if stale {
            let _ = tokio::fs::remove_file(e.path()).await;
        }
    }
}

pub(super) async fn current_snapshot(
    pool: &SqlitePool,
) -> Result<Option<SnapshotRow>, sqlx::Error> {
    let row = sqlx::query("SELECT meta, file FROM snapshot WHERE id = 1")
        .fetch_optional(pool)
        .await?;
    row.map(|r| {
        let meta = serde_json::from_str(&r.get::<String, _>(0))
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok(SnapshotRow {
            meta,
            file: r.get(1),
        })
    })
    .transpose()
}

/// Before Raft starts: removes half-written snapshot files and makes sure a snapshot exists
/// whenever the log has been purged (openraft stops for good if it must send a snapshot and
/// has none). A database from before snapshot files had its snapshot as one JSON value; it is
/// dropped and a file built from the pins table instead.
pub async fn ensure_snapshot(pool: &SqlitePool, snapshots: &Path) -> Result<(), ConsensusError> {
    crate::config::create_private_dir(snapshots)
        .map_err(|e| storage(format!("{}: {e}", snapshots.display())))?;
    sqlx::query("DELETE FROM kv WHERE key = 'snapshot'")
        .execute(pool)
        .await
        .map_err(storage)?;
    let current = current_snapshot(pool).await.map_err(storage)?;
    let usable = match &current {
        Some(row) => snapshots.join(&row.file).is_file(),
        None => false,
    };
    remove_other_snapshots(
        snapshots,
        current.as_ref().filter(|_| usable).map(|r| r.file.as_str()),
        true,
    )
    .await;
    if current.is_some() && !usable {
        tracing::warn!("the current snapshot's file is missing; forgetting it");
        sqlx::query("DELETE FROM snapshot")
            .execute(pool)
            .await
            .map_err(storage)?;
    }
    let purged: Option<LogId<NodeId>> = kv_get(pool, "last_purged").await.map_err(storage)?;
    if !usable && purged.is_some() {
        tracing::info!("building a snapshot of the pinset (none usable on disk)");
        let mut builder = SnapshotBuilder {
            pool: pool.clone(),
            snapshots: snapshots.to_path_buf(),
            build_ms: Arc::default(),
        };
        builder
            .build_snapshot()
            .await
            .map_err(|e| storage(format!("cannot build a snapshot: {e}")))?;
    }
    Ok(())
}

#[derive(Clone)]
pub struct SnapshotBuilder {
    pub(super) pool: SqlitePool,
    pub(super) snapshots: PathBuf,
    pub(super) build_ms: Arc<AtomicU64>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    /// Streams the pins table into a new file, reading pins and applied index in one read
    /// transaction so that they describe the same moment (writers go on meanwhile: WAL).
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let started = std::time::Instant::now();
        let part = self.snapshots.join(format!("{}.part", fresh_name("build")));
        let mut out = snapshot::Writer::create(part.clone())
            .await
            .map_err(write_err)?;
        let mut conn = self.pool.acquire().await.map_err(read_err)?;
        let mut tx = conn.begin().await.map_err(read_err)?;
        let last_log_id: Option<LogId<NodeId>> =
            kv_get::<Option<LogId<NodeId>>>(&mut *tx, "sm_applied")
                .await
                .map_err(read_err)?
                .flatten();
        let last_membership: StoredMembership<NodeId, ClusterNode> =
            kv_get(&mut *tx, "sm_membership")
                .await
                .map_err(read_err)?
                .unwrap_or_default();
        {
            let mut rows = sqlx::query("SELECT pin FROM pins ORDER BY cid").fetch(&mut *tx);
            while let Some(row) = rows.try_next().await.map_err(read_err)? {
                out.push(row.get::<&str, _>(0)).await.map_err(write_err)?;
            }
        }
        tx.commit().await.map_err(read_err)?;
        let (_, count) = out.finish().await.map_err(write_err)?;
        let name = format!("{}.snap", fresh_name("snapshot"));
        let path = self.snapshots.join(&name);
        tokio::fs::rename(&part, &path).await.map_err(write_err)?;
        let snapshot_id = match last_log_id {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, name),
            None => format!("empty-{name}"),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        let current = keep_snapshot(&mut conn, &meta, &name)
            .await
            .map_err(write_err)?;
        drop(conn);
        let keep = current_snapshot(&self.pool).await.map_err(read_err)?;
        remove_other_snapshots(
            &self.snapshots,
            keep.as_ref().map(|r| r.file.as_str()),
            false,
        )
        .await;
        self.build_ms
            .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        tracing::info!(pins = count, current, last_log = ?meta.last_log_id, "built a snapshot");
        let file = snapshot::SnapshotFile::open(path).await.map_err(read_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}
