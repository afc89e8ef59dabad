//! Raft's log, vote and state machine, persisted in one SQLite file (sqlx), split as openraft's
//! examples split them: [`LogStore`] (log + vote) and [`StateMachine`] (pinset + snapshot).
//!
//! Applying an entry writes the pin and the new `last_applied` in one transaction, so after a
//! crash (kill -9 included) the pinset and the applied index always agree, and replay resumes
//! from exactly the next entry.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::time::Duration;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokio::sync::mpsc::UnboundedSender;

use super::typ::{ClusterNode, NodeId, Op, TypeConfig};
use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::TryStreamExt;

use crate::components::{ConsensusError, Pinset, StateChange};
use crate::types::{Cid, Pin};

type SErr = StorageError<NodeId>;

/// Where Raft's database lives inside the cluster folder.
pub fn db_path(folder: &Path) -> PathBuf {
    folder.join("raft").join("raft.sqlite")
}

fn storage(e: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::Storage(e.to_string())
}

fn read_err(e: impl std::error::Error + 'static) -> SErr {
    StorageIOError::read(AnyError::new(&e)).into()
}
fn write_err(e: impl std::error::Error + 'static) -> SErr {
    StorageIOError::write(AnyError::new(&e)).into()
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, entry TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pins (cid TEXT PRIMARY KEY, pin TEXT NOT NULL)",
];

/// Opens (creating if needed) the database. A file that is not a valid database is an error
/// naming the file; it is never overwritten.
pub async fn open(path: &Path) -> Result<SqlitePool, ConsensusError> {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // An acknowledged pin must survive power loss, not only a process crash.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(30));
    let pool = connect(path, opts, 4).await?;
    for stmt in SCHEMA {
        sqlx::query(stmt).execute(&pool).await.map_err(|e| {
            storage(format!(
                "{}: not a usable Raft database: {e}",
                path.display()
            ))
        })?;
    }
    Ok(pool)
}

async fn kv_get<T: DeserializeOwned>(
    pool: &SqlitePool,
    key: &str,
) -> Result<Option<T>, sqlx::Error> {
    let row = sqlx::query("SELECT value FROM kv WHERE key = ?")
        .bind(key)
        .fetch_optional(pool)
        .await?;
    match row {
        None => Ok(None),
        Some(r) => {
            let text: String = r.get(0);
            serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))
        }
    }
}

async fn kv_put<'e, T: Serialize>(
    exec: impl sqlx::SqliteExecutor<'e>,
    key: &str,
    value: &T,
) -> Result<(), sqlx::Error> {
    let text = serde_json::to_string(value).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        .bind(key)
        .bind(text)
        .execute(exec)
        .await?;
    Ok(())
}

/// Whether the database holds any Raft history (used to decide between first start and
/// rejoin).
pub async fn has_history(pool: &SqlitePool) -> Result<bool, sqlx::Error> {
    let vote: Option<Vote<NodeId>> = kv_get(pool, "vote").await?;
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM log")
        .fetch_one(pool)
        .await?
        .get(0);
    Ok(vote.is_some() || n > 0)
}

/// Opens a second, read-only pool on the database for the pinset's readers, so that long
/// reads (a list streamed to a slow client) never hold a connection the writer needs.
pub async fn open_readers(path: &Path) -> Result<SqlitePool, ConsensusError> {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(Duration::from_secs(30));
    connect(path, opts, 8).await
}

async fn connect(
    path: &Path,
    opts: SqliteConnectOptions,
    connections: u32,
) -> Result<SqlitePool, ConsensusError> {
    SqlitePoolOptions::new()
        .max_connections(connections)
        .connect_with(opts)
        .await
        .map_err(|e| {
            storage(format!(
                "{}: cannot open the Raft database: {e}",
                path.display()
            ))
        })
}

fn parse_pin(text: &str) -> Result<Pin, ConsensusError> {
    serde_json::from_str(text).map_err(|e| storage(format!("corrupt pin row: {e}")))
}

/// The applied pinset as the `pins` table holds it: what every component reads.
#[derive(Clone)]
pub struct PinsTable {
    readers: SqlitePool,
}

impl PinsTable {
    pub fn new(readers: SqlitePool) -> PinsTable {
        PinsTable { readers }
    }
}

#[async_trait]
impl Pinset for PinsTable {
    async fn get(&self, cid: &Cid) -> Result<Option<Pin>, ConsensusError> {
        let row = sqlx::query("SELECT pin FROM pins WHERE cid = ?")
            .bind(cid.to_string())
            .fetch_optional(&self.readers)
            .await
            .map_err(storage)?;
        row.map(|r| parse_pin(&r.get::<String, _>(0))).transpose()
    }

    fn stream(&self) -> BoxStream<'static, Result<Pin, ConsensusError>> {
        let readers = self.readers.clone();
        Box::pin(async_stream::try_stream! {
            let mut rows = sqlx::query("SELECT pin FROM pins ORDER BY cid").fetch(&readers);
            while let Some(row) = rows.try_next().await.map_err(storage)? {
                yield parse_pin(&row.get::<String, _>(0))?;
            }
        })
    }
}

/// Reads the applied pinset without starting Raft (offline `state export`).
pub async fn load_pins(pool: &SqlitePool) -> Result<BTreeMap<Cid, Pin>, ConsensusError> {
    let rows = sqlx::query("SELECT pin FROM pins")
        .fetch_all(pool)
        .await
        .map_err(storage)?;
    let mut pins = BTreeMap::new();
    for r in rows {
        let text: String = r.get(0);
        let pin: Pin =
            serde_json::from_str(&text).map_err(|e| storage(format!("corrupt pin row: {e}")))?;
        pins.insert(pin.cid, pin);
    }
    Ok(pins)
}

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
        match entry.payload {
            EntryPayload::Normal(Op::Unpin(c)) => {
                unpins.retain(|x| *x != c);
                unpins.push(c);
            }
            EntryPayload::Normal(Op::Pin(p)) => unpins.retain(|x| *x != p.cid),
            _ => {}
        }
    }
    Ok(unpins)
}

/// Replaces the applied pinset offline (`state import`, peer stopped). The Raft log and
/// applied index are kept, so entries after it still apply on top at the next start.
pub async fn replace_pins(pool: &SqlitePool, pins: &[Pin]) -> Result<(), ConsensusError> {
    let mut tx = pool.begin().await.map_err(storage)?;
    sqlx::query("DELETE FROM pins")
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
    for p in pins {
        let text = serde_json::to_string(p).map_err(storage)?;
        sqlx::query("INSERT OR REPLACE INTO pins (cid, pin) VALUES (?, ?)")
            .bind(p.cid.to_string())
            .bind(text)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
    }
    // A stored snapshot would bring the old pinset back to peers that install it. The next
    // start takes a new one and purges the log before it (see `imported`), so that every
    // peer that joins later installs the imported pinset instead of replaying a log that
    // never had it.
    sqlx::query("DELETE FROM kv WHERE key = 'snapshot'")
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
    kv_put(&mut *tx, IMPORTED, &true).await.map_err(storage)?;
    tx.commit().await.map_err(storage)
}

/// Set by an offline import until the next start has snapshotted the imported pinset.
const IMPORTED: &str = "imported";

/// Whether an import awaits its snapshot.
pub async fn imported(pool: &SqlitePool) -> Result<bool, ConsensusError> {
    Ok(kv_get::<bool>(pool, IMPORTED)
        .await
        .map_err(storage)?
        .unwrap_or(false))
}

/// The imported pinset is in a snapshot and the log before it is purged.
pub async fn clear_imported(pool: &SqlitePool) -> Result<(), ConsensusError> {
    sqlx::query("DELETE FROM kv WHERE key = ?")
        .bind(IMPORTED)
        .execute(pool)
        .await
        .map_err(storage)?;
    Ok(())
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

/// A snapshot as stored and sent: the whole pinset at `meta.last_log_id`.
#[derive(Serialize, serde::Deserialize)]
struct SnapshotData {
    pins: Vec<Pin>,
}

#[derive(Serialize, serde::Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, ClusterNode>,
    data: String,
}

/// Rows per multi-row statement (two bound values each, well under SQLite's limit).
const ROWS_PER_STATEMENT: usize = 500;

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
                    Op::Unpin(_) => None,
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            let mut q = sqlx::QueryBuilder::new("INSERT INTO pins (cid, pin) ");
            q.push_values(&rows, |mut b, (cid, text)| {
                b.push_bind(cid.as_str()).push_bind(text.as_str());
            });
            q.push(" ON CONFLICT(cid) DO UPDATE SET pin = excluded.pin");
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
    changes: UnboundedSender<StateChange>,
}

impl StateMachine {
    pub fn new(pool: SqlitePool, changes: UnboundedSender<StateChange>) -> StateMachine {
        StateMachine { pool, changes }
    }
}

#[derive(Clone)]
pub struct SnapshotBuilder {
    pool: SqlitePool,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        // Pins and applied index are read in one transaction so they describe the same moment.
        let mut tx = self.pool.begin().await.map_err(read_err)?;
        let rows = sqlx::query("SELECT pin FROM pins")
            .fetch_all(&mut *tx)
            .await
            .map_err(read_err)?;
        let applied: Option<String> = sqlx::query("SELECT value FROM kv WHERE key = 'sm_applied'")
            .fetch_optional(&mut *tx)
            .await
            .map_err(read_err)?
            .map(|r| r.get(0));
        let membership: Option<String> =
            sqlx::query("SELECT value FROM kv WHERE key = 'sm_membership'")
                .fetch_optional(&mut *tx)
                .await
                .map_err(read_err)?
                .map(|r| r.get(0));
        tx.commit().await.map_err(read_err)?;
        let pins = rows
            .into_iter()
            .map(|r| serde_json::from_str::<Pin>(&r.get::<String, _>(0)).map_err(read_err))
            .collect::<Result<Vec<_>, _>>()?;
        let last_log_id: Option<LogId<NodeId>> = match applied {
            Some(t) => serde_json::from_str(&t).map_err(read_err)?,
            None => None,
        };
        let last_membership: StoredMembership<NodeId, ClusterNode> = match membership {
            Some(t) => serde_json::from_str(&t).map_err(read_err)?,
            None => StoredMembership::default(),
        };
        let data = serde_json::to_string(&SnapshotData { pins }).map_err(read_err)?;
        let snapshot_id = match last_log_id {
            Some(l) => format!(
                "{}-{}-{}",
                l.leader_id,
                l.index,
                chrono::Utc::now().timestamp_millis()
            ),
            None => format!("empty-{}", chrono::Utc::now().timestamp_millis()),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        kv_put(
            &self.pool,
            "snapshot",
            &StoredSnapshot {
                meta: meta.clone(),
                data: data.clone(),
            },
        )
        .await
        .map_err(write_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data.into_bytes())),
        })
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
                EntryPayload::Normal(op) => ops.push(op),
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
            };
            let _ = self.changes.send(change);
        }
        // One response per entry, including blank and membership ones.
        Ok(vec![(); count])
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            pool: self.pool.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SErr> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, ClusterNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SErr> {
        let bytes = snapshot.into_inner();
        let data: SnapshotData = serde_json::from_slice(&bytes).map_err(write_err)?;
        let incoming: std::collections::HashSet<String> =
            data.pins.iter().map(|p| p.cid.to_string()).collect();
        // What the snapshot drops (unpinned while this peer was away) must leave IPFS too;
        // the reset afterwards pins what it adds. Read before the write transaction: only
        // this state machine writes pins, and a transaction that reads first and writes
        // later fails at once (SQLITE_BUSY) when the log was appended to in between.
        let mut gone = Vec::new();
        {
            let mut rows = sqlx::query("SELECT cid FROM pins").fetch(&self.pool);
            while let Some(row) = rows.try_next().await.map_err(read_err)? {
                let cid: String = row.get(0);
                if !incoming.contains(&cid) {
                    gone.push(cid.parse::<Cid>().map_err(|e| read_err(storage(e)))?);
                }
            }
        }
        let mut tx = self.pool.begin().await.map_err(write_err)?;
        sqlx::query("DELETE FROM pins")
            .execute(&mut *tx)
            .await
            .map_err(write_err)?;
        let count = data.pins.len();
        for p in data.pins {
            let text = serde_json::to_string(&p).map_err(write_err)?;
            sqlx::query("INSERT INTO pins (cid, pin) VALUES (?, ?)")
                .bind(p.cid.to_string())
                .bind(text)
                .execute(&mut *tx)
                .await
                .map_err(write_err)?;
        }
        kv_put(&mut *tx, "sm_applied", &meta.last_log_id)
            .await
            .map_err(write_err)?;
        kv_put(&mut *tx, "sm_membership", &meta.last_membership)
            .await
            .map_err(write_err)?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: String::from_utf8(bytes).map_err(write_err)?,
        };
        kv_put(&mut *tx, "snapshot", &stored)
            .await
            .map_err(write_err)?;
        tx.commit().await.map_err(write_err)?;
        tracing::info!(
            pins = count,
            unpinned = gone.len(),
            last_log = ?meta.last_log_id,
            "installed a snapshot"
        );
        for cid in gone {
            let _ = self.changes.send(StateChange::Unpinned(cid));
        }
        let _ = self.changes.send(StateChange::Reset);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        let stored: Option<StoredSnapshot> =
            kv_get(&self.pool, "snapshot").await.map_err(read_err)?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data.into_bytes())),
        }))
    }
}
