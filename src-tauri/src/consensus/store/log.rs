//! Raft's log and vote ([`LogStore`], openraft's `RaftLogStorage`), and what a start reads
//! back from the log ([`logged_unpins`]).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, Vote};
use sqlx::{Row, SqlitePool};

use super::super::typ::{NodeId, Op, TypeConfig};
use super::db::{kv_get, kv_put, read_err, storage, write_err, SErr, ROWS_PER_STATEMENT};
use crate::components::ConsensusError;
use crate::types::Cid;

/// Unpins still in the log whose CID is not pinned again later, oldest first. The state
/// machine applies an unpin atomically, but the IPFS-side unpin happens afterwards; a crash in
/// between would leave the content pinned in IPFS. Replaying these at start closes that gap,
/// as Raft log replay does in IPFS Cluster.
pub async fn logged_unpins(pool: &SqlitePool) -> Result<Vec<Cid>, ConsensusError> {
    let rows = sqlx::query("SELECT entry FROM log ORDER BY idx")
        .fetch_all(pool)
        .await
        .map_err(storage)?;
    let mut unpins: Vec<Cid> = Vec::new();
    for r in rows {
        let text: String = r.get(0);
        let entry: Entry<TypeConfig> =
            serde_json::from_str(&text).map_err(|e| storage(format!("corrupt log entry: {e}")))?;
        let EntryPayload::Normal(op) = entry.payload else {
            continue;
        };
        for op in op.into_ops() {
            match op {
                Op::Unpin(c) => {
                    unpins.retain(|x| *x != c);
                    unpins.push(c);
                }
                Op::Pin(p) => unpins.retain(|x| *x != p.cid),
                Op::Batch(_) => {}
            }
        }
    }
    // And what the last installed snapshot dropped, unless pinned again since.
    let gone = sqlx::query("SELECT cid FROM pins_gone WHERE cid NOT IN (SELECT cid FROM pins)")
        .fetch_all(pool)
        .await
        .map_err(storage)?;
    let logged: std::collections::HashSet<Cid> = unpins.iter().copied().collect();
    let mut first = Vec::with_capacity(gone.len() + unpins.len());
    for r in gone {
        let cid: Cid = r
            .get::<String, _>(0)
            .parse()
            .map_err(|e| storage(format!("corrupt row in pins_gone: {e}")))?;
        if !logged.contains(&cid) {
            first.push(cid);
        }
    }
    first.extend(unpins);
    Ok(first)
}

#[derive(Clone)]
pub struct LogStore {
    pool: SqlitePool,
}

impl LogStore {
    pub fn new(pool: SqlitePool) -> LogStore {
        LogStore { pool }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s as i64,
            Bound::Excluded(s) => *s as i64 + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => *e as i64 + 1,
            Bound::Excluded(e) => *e as i64,
            Bound::Unbounded => i64::MAX,
        };
        let rows = sqlx::query("SELECT entry FROM log WHERE idx >= ? AND idx < ? ORDER BY idx")
            .bind(start)
            .bind(end)
            .fetch_all(&self.pool)
            .await
            .map_err(read_err)?;
        rows.into_iter()
            .map(|r| {
                let text: String = r.get(0);
                serde_json::from_str(&text).map_err(read_err)
            })
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        let last_purged: Option<LogId<NodeId>> =
            kv_get(&self.pool, "last_purged").await.map_err(read_err)?;
        let row = sqlx::query("SELECT entry FROM log ORDER BY idx DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(read_err)?;
        let last = match row {
            Some(r) => {
                let text: String = r.get(0);
                let e: Entry<TypeConfig> = serde_json::from_str(&text).map_err(read_err)?;
                Some(e.log_id)
            }
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), SErr> {
        kv_put(&self.pool, "vote", vote).await.map_err(write_err)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, SErr> {
        kv_get(&self.pool, "vote").await.map_err(read_err)
    }

    // `save_committed` is left out on purpose: `apply` is durable before it returns, so the
    // applied index already says how far a restart may resume, and leaving it out saves one
    // synchronous write per commit on every peer.

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // One statement per batch of entries, not one per entry: every statement is a round
        // trip to SQLite's worker thread, and under load openraft hands over many at once.
        let rows = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index as i64, serde_json::to_string(&e)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()
            .map_err(write_err)?;
        let mut tx = self.pool.begin().await.map_err(write_err)?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut q = sqlx::QueryBuilder::new("INSERT OR REPLACE INTO log (idx, entry) ");
            q.push_values(chunk, |mut b, (idx, text)| {
                b.push_bind(*idx).push_bind(text.as_str());
            });
            q.build().execute(&mut *tx).await.map_err(write_err)?;
        }
        let result = tx.commit().await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(write_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        sqlx::query("DELETE FROM log WHERE idx >= ?")
            .bind(log_id.index as i64)
            .execute(&self.pool)
            .await
            .map_err(write_err)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        let mut tx = self.pool.begin().await.map_err(write_err)?;
        kv_put(&mut *tx, "last_purged", &log_id)
            .await
            .map_err(write_err)?;
        sqlx::query("DELETE FROM log WHERE idx <= ?")
            .bind(log_id.index as i64)
            .execute(&mut *tx)
            .await
            .map_err(write_err)?;
        tx.commit().await.map_err(write_err)
    }
}
