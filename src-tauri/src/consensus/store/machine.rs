//! The state machine ([`StateMachine`], openraft's `RaftStateMachine`): applies committed
//! entries to the `pins` table and installs received snapshots.
//!
//! Applying entries writes their pins and the new `last_applied` in one transaction, so after
//! a crash (kill -9 included) the pinset and the applied index always agree, and replay
//! resumes from exactly the next entry.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{Entry, EntryPayload, LogId, OptionalSend, SnapshotMeta, StoredMembership};
use sqlx::{Connection, SqlitePool};

use super::super::snapshot;
use super::super::typ::{ClusterNode, NodeId, Op, TypeConfig};
use super::db::{
    fresh_name, kv_get, kv_put, read_err, storage, write_err, SErr, ROWS_PER_STATEMENT,
};
use super::pins::PIN_FORMAT;
use super::snapshots::{current_snapshot, keep_snapshot, remove_other_snapshots, SnapshotBuilder};
use super::staging::{counted, discard, load_snapshot, swap_in, INCOMING};
use crate::components::StateChange;
use crate::state::feed::FeedSender;
use crate::types::Cid;

/// Writes a batch of applied operations in order, as few statements as the order allows: a
/// run of pins is one upsert (within one statement a later row for the same CID wins), a run
/// of unpins one delete.
async fn write_ops(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    ops: &[Op],
) -> Result<(), sqlx::Error> {
    let mut rest = ops;
    while let Some(first) = rest.first() {
        let is_pin = matches!(first, Op::Pin(_));
        let run = rest
            .iter()
            .take(ROWS_PER_STATEMENT)
            .take_while(|op| matches!(op, Op::Pin(_)) == is_pin)
            .count();
        let (batch, tail) = rest.split_at(run);
        rest = tail;
        if is_pin {
            let rows = batch
                .iter()
                .filter_map(|op| match op {
                    Op::Pin(p) => Some(serde_json::to_string(p).map(|t| (p.cid.to_string(), t))),
                    _ => None,
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            let mut q = sqlx::QueryBuilder::new("INSERT INTO pins (cid, pin, fmt) ");
            q.push_values(&rows, |mut b, (cid, text)| {
                b.push_bind(cid.as_str())
                    .push_bind(text.as_str())
                    .push_bind(PIN_FORMAT);
            });
            q.push(" ON CONFLICT(cid) DO UPDATE SET pin = excluded.pin, fmt = excluded.fmt");
            q.build().execute(&mut **tx).await?;
        } else {
            let mut q = sqlx::QueryBuilder::new("DELETE FROM pins WHERE cid IN (");
            let mut list = q.separated(", ");
            for op in batch {
                if let Op::Unpin(c) = op {
                    list.push_bind(c.to_string());
                }
            }
            q.push(")");
            q.build().execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// Applies entries to the `pins` table; readers see them through [`PinsTable`] (the applied
/// pinset is readable from disk before Raft has even started).
pub struct StateMachine {
    pool: SqlitePool,
    /// Where snapshot files live (see [`snapshot`]).
    snapshots: PathBuf,
    changes: FeedSender,
    /// How long the last snapshot build took, in milliseconds (operators' metrics).
    build_ms: Arc<AtomicU64>,
}

impl StateMachine {
    pub fn new(pool: SqlitePool, snapshots: PathBuf, changes: FeedSender) -> StateMachine {
        StateMachine {
            pool,
            snapshots,
            changes,
            build_ms: Arc::default(),
        }
    }

    /// Where the duration of each snapshot build goes (milliseconds).
    pub fn build_timer(&self) -> Arc<AtomicU64> {
        self.build_ms.clone()
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, ClusterNode>), SErr> {
        let applied: Option<LogId<NodeId>> =
            kv_get::<Option<LogId<NodeId>>>(&self.pool, "sm_applied")
                .await
                .map_err(read_err)?
                .flatten();
        let membership = kv_get(&self.pool, "sm_membership")
            .await
            .map_err(read_err)?
            .unwrap_or_default();
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut tx = self.pool.begin().await.map_err(write_err)?;
        let mut ops = Vec::new();
        let mut last = None;
        let mut membership = None;
        let mut count = 0;
        for e in entries {
            count += 1;
            last = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(op) => ops.extend(op.into_ops()),
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(e.log_id), m));
                }
            }
        }
        write_ops(&mut tx, &ops).await.map_err(write_err)?;
        let Some(last) = last else {
            return Ok(Vec::new());
        };
        kv_put(&mut *tx, "sm_applied", &Some(last))
            .await
            .map_err(write_err)?;
        if let Some(m) = &membership {
            kv_put(&mut *tx, "sm_membership", m)
                .await
                .map_err(write_err)?;
        }
        tx.commit().await.map_err(write_err)?;
        // Only now, durable, do readers and the tracker see the change.
        for op in ops {
            let change = match op {
                Op::Pin(p) => StateChange::Pinned(p),
                Op::Unpin(c) => StateChange::Unpinned(c),
                // Flattened when applied (below): never here.
                Op::Batch(_) => continue,
            };
            self.changes.send(change).await;
        }
        // One response per entry, including blank and membership ones.
        Ok(vec![(); count])
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            pool: self.pool.clone(),
            snapshots: self.snapshots.clone(),
            build_ms: self.build_ms.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<snapshot::SnapshotFile>, SErr> {
        let path = self
            .snapshots
            .join(format!("{}.part", fresh_name("receive")));
        let file = snapshot::SnapshotFile::create(path)
            .await
            .map_err(write_err)?;
        Ok(Box::new(file))
    }

    /// Loads the received file into a table of its own, then swaps it for `pins` in one
    /// short transaction, so that readers see the old pinset or the new one, the log's writer
    /// is never held up for the length of the load, and a damaged file changes nothing.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, ClusterNode>,
        snapshot: Box<snapshot::SnapshotFile>,
    ) -> Result<(), SErr> {
        let mut file = *snapshot;
        file.sync().await.map_err(write_err)?;
        let part = file.path().to_path_buf();
        let loaded = match load_snapshot(&self.pool, file).await {
            Ok(n) => counted(&self.pool, INCOMING)
                .await
                .map(|counts| (n, counts))
                .map_err(|e| std::io::Error::other(e.to_string())),
            Err(e) => Err(e),
        };
        let (count, counts) = match loaded {
            Ok(n) => n,
            Err(e) => {
                discard(&self.pool, INCOMING).await;
                let _ = tokio::fs::remove_file(&part).await;
                tracing::error!("a received snapshot is unusable, nothing changed: {e}");
                return Err(write_err(e));
            }
        };
        let name = format!("{}.snap", fresh_name("snapshot"));
        let mut conn = self.pool.acquire().await.map_err(write_err)?;
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(write_err)?;
        for stmt in [
            "DELETE FROM pins_gone".to_string(),
            format!("INSERT INTO pins_gone SELECT cid FROM pins WHERE cid NOT IN (SELECT cid FROM {INCOMING})"),
        ] {
            sqlx::query(&stmt)
                .execute(&mut *tx)
                .await
                .map_err(write_err)?;
        }
        swap_in(&mut tx, INCOMING, Some(counts))
            .await
            .map_err(write_err)?;
        kv_put(&mut *tx, "sm_applied", &meta.last_log_id)
            .await
            .map_err(write_err)?;
        kv_put(&mut *tx, "sm_membership", &meta.last_membership)
            .await
            .map_err(write_err)?;
        // Named before the commit: a crash in between leaves a stray file (removed at the
        // next start), never a current snapshot without its file.
        tokio::fs::rename(&part, self.snapshots.join(&name))
            .await
            .map_err(write_err)?;
        let current = keep_snapshot(&mut tx, meta, &name)
            .await
            .map_err(write_err)?;
        tx.commit().await.map_err(write_err)?;
        if current {
            remove_other_snapshots(&self.snapshots, Some(&name), false).await;
        } else {
            // A newer snapshot is current already; this one's file is not needed.
            let _ = tokio::fs::remove_file(self.snapshots.join(&name)).await;
        }
        // What the snapshot drops (unpinned while this peer was away) must leave IPFS too;
        // the reset afterwards pins what it adds.
        // Read in pages: no cursor stays open while the feed makes this wait.
        let mut unpinned = 0usize;
        let mut after = String::new();
        loop {
            let page: Vec<String> = sqlx::query_scalar(
                "SELECT cid FROM pins_gone WHERE cid > ? ORDER BY cid LIMIT 1000",
            )
            .bind(&after)
            .fetch_all(&mut *conn)
            .await
            .map_err(read_err)?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            for text in page {
                let cid: Cid = text.parse().map_err(|e| read_err(storage(e)))?;
                self.changes.send(StateChange::Unpinned(cid)).await;
                unpinned += 1;
            }
            after = last;
        }
        tracing::info!(
            pins = count,
            unpinned,
            last_log = ?meta.last_log_id,
            "installed a snapshot"
        );
        self.changes.send(StateChange::Reset).await;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        let Some(row) = current_snapshot(&self.pool).await.map_err(read_err)? else {
            return Ok(None);
        };
        let file = match snapshot::SnapshotFile::open(self.snapshots.join(&row.file)).await {
            Ok(f) => f,
            // Deleted behind the peer's back: no snapshot (the next start builds one if the
            // log needs it), rather than a storage error that stops Raft.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(file = %row.file, "the current snapshot's file is missing");
                return Ok(None);
            }
            Err(e) => return Err(read_err(e)),
        };
        Ok(Some(Snapshot {
            meta: row.meta,
            snapshot: Box::new(file),
        }))
    }
}
