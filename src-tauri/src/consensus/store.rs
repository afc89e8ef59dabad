//! Raft's log, vote and state machine, persisted in one SQLite file (sqlx), split as openraft's
//! examples split them: [`LogStore`] (log + vote) and [`StateMachine`] (pinset + snapshot).
//!
//! Applying an entry writes the pin and the new `last_applied` in one transaction, so after a
//! crash (kill -9 included) the pinset and the applied index always agree, and replay resumes
//! from exactly the next entry.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Acquire, Connection, Row, SqlitePool};

use super::snapshot;
use super::typ::{ClusterNode, NodeId, Op, TypeConfig};
use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::TryStreamExt;

use crate::components::{ConsensusError, Pinset, StateChange};
use crate::state::feed::FeedSender;
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

/// A pin's expiry time as SQLite reads it from the stored JSON (Go's zero time when unset).
const EXPIRY: &str = "julianday(json_extract(pin, '$.expire_at'))";
const EXPIRES: &str = "json_extract(pin, '$.expire_at') <> '0001-01-01T00:00:00Z'";

/// SQL creating the index of `table`'s expiring pins by expiry time (for
/// [`Pinset::expired`]; pins that never expire are not in it). Its name is new each time:
/// an index keeps its name when its table is renamed to `pins`, and must not clash with the
/// index of the `pins` table it replaces.
fn expiry_index(table: &str) -> String {
    format!(
        "CREATE INDEX \"{}\" ON {table} ({EXPIRY}) WHERE {EXPIRES}",
        fresh_name(&format!("{table}_expiry"))
    )
}

/// Gives `pins` its expiry index if it has none (a database from before it).
async fn ensure_expiry_index(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'pins' AND name GLOB '*_expiry-*'",
    )
    .fetch_one(pool)
    .await?
    .get(0);
    if n == 0 {
        sqlx::query(&expiry_index("pins")).execute(pool).await?;
    }
    Ok(())
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, entry TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pins (cid TEXT PRIMARY KEY, pin TEXT NOT NULL)",
    // The current snapshot: its meta and file (one row, only ever replaced by a newer one).
    "CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL, meta TEXT NOT NULL, file TEXT NOT NULL)",
    // What the last installed snapshot dropped, to unpin from IPFS (kept until the next one).
    "CREATE TABLE IF NOT EXISTS pins_gone (cid TEXT PRIMARY KEY)",
];

/// Refuses a database file that is visibly damaged before SQLite opens it for writing (which
/// could change it further): shorter than its header says (cut off by a full disk or an
/// interrupted copy) or not an SQLite file at all. Checks only the 100-byte header and the
/// size, so it costs nothing at any size; damage inside pages is SQLite's to find. A file
/// with a write-ahead log is left to SQLite's recovery, which may legitimately grow it.
fn check_header(path: &Path) -> Result<(), ConsensusError> {
    use std::io::Read;
    let damaged = |why: String| {
        storage(format!(
            "{}: the Raft database is damaged ({why}); it was left as it is. Restore the \
             folder from a backup, or move the raft folder away and start with --bootstrap \
             to receive the state from the cluster again",
            path.display()
        ))
    };
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(storage(format!("{}: {e}", path.display()))),
    };
    if size == 0 {
        return Ok(()); // created, never written: nothing to lose
    }
    let mut header = [0u8; 100];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header));
    if read.is_err() || &header[..16] != b"SQLite format 3\0" {
        return Err(damaged(format!("not an SQLite database, {size} bytes")));
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n => u64::from(n),
    };
    let be32 = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().unwrap());
    let wal = path.with_extension("sqlite-wal");
    let wal_in_use = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
    // The page count in the header is valid only when stamped with the change counter.
    let counted = be32(24) == be32(92);
    let expected = u64::from(be32(28)) * page_size;
    if counted && !wal_in_use && size < expected {
        return Err(damaged(format!(
            "shorter than its header says: {size} of {expected} bytes"
        )));
    }
    Ok(())
}

/// Moves everything in the write-ahead log into the database file and empties the log.
pub async fn checkpoint(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(pool)
        .await
        .map(|_| ())
}

/// Opens (creating if needed) the database. A file that is not a valid database is an error
/// naming the file; it is never overwritten.
pub async fn open(path: &Path) -> Result<SqlitePool, ConsensusError> {
    check_header(path)?;
    // Owner-only from the start (SQLite gives its write-ahead log the same mode).
    crate::config::create_private_if_missing(path)
        .map_err(|e| storage(format!("{}: {e}", path.display())))?;
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
    ensure_expiry_index(&pool)
        .await
        .map_err(|e| storage(format!("{}: {e}", path.display())))?;
    Ok(pool)
}

async fn kv_get<'e, T: DeserializeOwned>(
    exec: impl sqlx::SqliteExecutor<'e>,
    key: &str,
) -> Result<Option<T>, sqlx::Error> {
    let row = sqlx::query("SELECT value FROM kv WHERE key = ?")
        .bind(key)
        .fetch_optional(exec)
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

async fn kv_delete(pool: &SqlitePool, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM kv WHERE key = ?")
        .bind(key)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Whether the database holds any Raft history (used to decide between first start and
/// rejoin).
pub async fn has_history(pool: &SqlitePool) -> Result<bool, sqlx::Error> {
    let vote: Option<Vote<NodeId>> = kv_get(pool, "vote").await?;
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM log")
        .fetch_one(pool)
        .await?
        .get(0);
    // A state made to rejoin is never a new cluster's first, even before anything arrived.
    let joining: Option<bool> = kv_get(pool, JOINING).await?;
    Ok(vote.is_some() || n > 0 || joining.unwrap_or(false))
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

/// A pool whose connections are all opened now and never closed: a running peer then needs
/// no new descriptor for its database, so running out of descriptors (a flood of
/// connections, a busy machine) can delay a request but never fail a Raft write with
/// SQLite's "unable to open database file" and stop Raft. Sorts and indexes built for a
/// query stay in memory for the same reason (no temporary files).
async fn connect(
    path: &Path,
    opts: SqliteConnectOptions,
    connections: u32,
) -> Result<SqlitePool, ConsensusError> {
    let cannot = |e: sqlx::Error| {
        storage(format!(
            "{}: cannot open the Raft database: {e}",
            path.display()
        ))
    };
    let pool = SqlitePoolOptions::new()
        .max_connections(connections)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(opts.pragma("temp_store", "memory"))
        .await
        .map_err(cannot)?;
    // One after another: SQLite refuses a connection opened while another sets up the
    // write-ahead log of a new database ("database is locked").
    let mut held = Vec::with_capacity(connections as usize);
    for _ in 0..connections {
        let mut conn = pool.acquire().await.map_err(cannot)?;
        // A first read opens what the connection keeps open (the write-ahead log and its
        // index), so that no later query needs a descriptor either.
        sqlx::query("SELECT count(*) FROM sqlite_master")
            .execute(&mut *conn)
            .await
            .map_err(cannot)?;
        held.push(conn);
    }
    drop(held);
    Ok(pool)
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

    async fn expired(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<Vec<Cid>, ConsensusError> {
        let sql =
            format!("SELECT cid FROM pins WHERE {EXPIRES} AND {EXPIRY} <= julianday(?) LIMIT ?");
        let rows = sqlx::query(&sql)
            .bind(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .bind(limit as i64)
            .fetch_all(&self.readers)
            .await
            .map_err(storage)?;
        rows.iter()
            .map(|r| r.get::<String, _>(0).parse().map_err(storage))
            .collect()
    }

    async fn count(&self) -> Result<u64, ConsensusError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM pins")
            .fetch_one(&self.readers)
            .await
            .map_err(storage)?
            .get(0);
        Ok(n as u64)
    }

    fn stream_after(
        &self,
        after: Option<String>,
    ) -> BoxStream<'static, Result<Pin, ConsensusError>> {
        let readers = self.readers.clone();
        Box::pin(async_stream::try_stream! {
            // Pages in CID order (the primary key's index), each fetched whole: one trip to
            // SQLite's thread per page rather than per row, and no read transaction held
            // open for the length of a slow client (the log's writer can checkpoint).
            let mut after = after;
            loop {
                let rows = match &after {
                    Some(a) => sqlx::query("SELECT cid, pin FROM pins WHERE cid > ? ORDER BY cid LIMIT ?")
                        .bind(a.clone())
                        .bind(READ_PAGE as i64)
                        .fetch_all(&readers)
                        .await,
                    None => sqlx::query("SELECT cid, pin FROM pins ORDER BY cid LIMIT ?")
                        .bind(READ_PAGE as i64)
                        .fetch_all(&readers)
                        .await,
                }
                .map_err(storage)?;
                let full = rows.len() == READ_PAGE;
                for row in &rows {
                    yield parse_pin(row.get::<&str, _>(1))?;
                }
                match rows.last() {
                    Some(last) if full => after = Some(last.get::<String, _>(0)),
                    _ => break,
                }
            }
        })
    }
}

/// Rows per page when the pinset is read in order.
const READ_PAGE: usize = 1000;

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

/// Loads pins into a staging table for an offline `state import` (peer stopped), streaming,
/// a few thousand rows per transaction; nothing the peer reads changes until
/// [`commit_staged`]. The first error (a bad line) drops what was staged.
pub async fn stage_pins(
    pool: &SqlitePool,
    pins: impl IntoIterator<Item = Result<Pin, ConsensusError>>,
) -> Result<u64, ConsensusError> {
    let staged = stage(pool, pins).await;
    if staged.is_err() {
        discard_staged(pool).await;
    }
    staged
}

async fn stage(
    pool: &SqlitePool,
    pins: impl IntoIterator<Item = Result<Pin, ConsensusError>>,
) -> Result<u64, ConsensusError> {
    for stmt in [
        "DROP TABLE IF EXISTS pins_import".to_string(),
        "CREATE TABLE pins_import (cid TEXT PRIMARY KEY, pin TEXT NOT NULL)".to_string(),
        expiry_index("pins_import"),
    ] {
        sqlx::query(&stmt).execute(pool).await.map_err(storage)?;
    }
    let mut pins = pins.into_iter().peekable();
    let mut count = 0u64;
    while pins.peek().is_some() {
        let mut tx = pool.begin().await.map_err(storage)?;
        for _ in 0..20 {
            let rows = pins
                .by_ref()
                .take(ROWS_PER_STATEMENT)
                .map(|p| {
                    let p = p?;
                    let text = serde_json::to_string(&p).map_err(storage)?;
                    Ok((p.cid.to_string(), text))
                })
                .collect::<Result<Vec<_>, ConsensusError>>()?;
            if rows.is_empty() {
                break;
            }
            count += rows.len() as u64;
            let mut q = sqlx::QueryBuilder::new("INSERT OR REPLACE INTO pins_import (cid, pin) ");
            q.push_values(&rows, |mut b, (cid, text)| {
                b.push_bind(cid.as_str()).push_bind(text.as_str());
            });
            q.build().execute(&mut *tx).await.map_err(storage)?;
        }
        tx.commit().await.map_err(storage)?;
    }
    Ok(count)
}

/// Drops a staged import.
pub async fn discard_staged(pool: &SqlitePool) {
    let _ = sqlx::query("DROP TABLE IF EXISTS pins_import")
        .execute(pool)
        .await;
}

/// Makes the staged import the applied pinset, in one transaction. The Raft log and applied
/// index are kept, so entries after it still apply on top at the next start.
pub async fn commit_staged(pool: &SqlitePool) -> Result<(), ConsensusError> {
    let mut conn = pool.acquire().await.map_err(storage)?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(storage)?;
    // A stored snapshot would bring the old pinset back to peers that install it. The next
    // start takes a new one and purges the log before it (see `imported`), so that every
    // peer that joins later installs the imported pinset instead of replaying a log that
    // never had it.
    for stmt in [
        "DROP TABLE pins",
        "ALTER TABLE pins_import RENAME TO pins",
        "DELETE FROM snapshot",
    ] {
        sqlx::query(stmt).execute(&mut *tx).await.map_err(storage)?;
    }
    kv_put(&mut *tx, IMPORTED, &true).await.map_err(storage)?;
    tx.commit().await.map_err(storage)
}

/// Replaces the applied pinset with `pins` (stage and commit at once).
#[cfg(test)]
pub async fn replace_pins(pool: &SqlitePool, pins: &[Pin]) -> Result<(), ConsensusError> {
    stage_pins(pool, pins.iter().cloned().map(Ok)).await?;
    commit_staged(pool).await
}

/// Where the id of this state's history is kept (see [`history`]).
const HISTORY: &str = "history";
/// Set while this state is a wiped peer's waiting to be admitted again (see [`joining`]).
const JOINING: &str = "joining";

/// The id of this Raft state's history ([`super::typ::ClusterNode::history`]): made the first
/// time the database is opened (or the first time by a version that knows histories) and kept
/// with it, so that a wiped or re-created state has another one.
pub async fn history(pool: &SqlitePool) -> Result<String, ConsensusError> {
    if let Some(h) = kv_get::<String>(pool, HISTORY).await.map_err(storage)? {
        return Ok(h);
    }
    let h = hex::encode(rand::random::<[u8; 16]>());
    kv_put(pool, HISTORY, &h).await.map_err(storage)?;
    Ok(h)
}

/// Whether this state was created to rejoin a cluster (`daemon --bootstrap`) and the cluster
/// has not yet admitted it under its new history: until then the peer must not vote, whatever
/// the membership it replicates says (it may be the one it had before it lost its state).
pub async fn joining(pool: &SqlitePool) -> Result<bool, ConsensusError> {
    Ok(kv_get::<bool>(pool, JOINING)
        .await
        .map_err(storage)?
        .unwrap_or(false))
}

/// Records whether this state waits to be admitted (see [`joining`]).
pub async fn set_joining(pool: &SqlitePool, waiting: bool) -> Result<(), ConsensusError> {
    if waiting {
        kv_put(pool, JOINING, &true).await.map_err(storage)
    } else {
        kv_delete(pool, JOINING).await.map_err(storage)
    }
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
    kv_delete(pool, IMPORTED).await.map_err(storage)
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

/// A file name no other snapshot file of this peer has.
fn fresh_name(kind: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "{kind}-{}-{n}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    )
}

#[derive(Serialize, serde::Deserialize)]
struct SnapshotRow {
    meta: SnapshotMeta<NodeId, ClusterNode>,
    file: String,
}

/// Records `file` as the current snapshot unless a newer one already is (a snapshot built
/// from an older state can finish after a newer one was installed), then deletes every other
/// snapshot file. Returns whether it became current.
async fn keep_snapshot(
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
async fn remove_other_snapshots(dir: &Path, current: Option<&str>, parts_too: bool) {
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

async fn current_snapshot(pool: &SqlitePool) -> Result<Option<SnapshotRow>, sqlx::Error> {
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
    pool: SqlitePool,
    snapshots: PathBuf,
    build_ms: Arc<AtomicU64>,
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
        let loaded = load_incoming(&self.pool, file).await;
        let count = match loaded {
            Ok(n) => n,
            Err(e) => {
                let _ = sqlx::query("DROP TABLE IF EXISTS pins_incoming")
                    .execute(&self.pool)
                    .await;
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
            "DELETE FROM pins_gone",
            "INSERT INTO pins_gone SELECT cid FROM pins WHERE cid NOT IN (SELECT cid FROM pins_incoming)",
            "DROP TABLE pins",
            "ALTER TABLE pins_incoming RENAME TO pins",
        ] {
            sqlx::query(stmt)
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

/// Reads a snapshot file into a fresh `pins_incoming` table, a few thousand rows per
/// transaction. Returns how many pins it holds.
async fn load_incoming(
    pool: &SqlitePool,
    file: snapshot::SnapshotFile,
) -> Result<u64, std::io::Error> {
    let io = |e: sqlx::Error| std::io::Error::other(e.to_string());
    let mut conn = pool.acquire().await.map_err(io)?;
    for stmt in [
        "DROP TABLE IF EXISTS pins_incoming".to_string(),
        "CREATE TABLE pins_incoming (cid TEXT PRIMARY KEY, pin TEXT NOT NULL)".to_string(),
        expiry_index("pins_incoming"),
    ] {
        sqlx::query(&stmt).execute(&mut *conn).await.map_err(io)?;
    }
    let mut records = file.records().await?;
    let mut count = 0u64;
    let mut done = false;
    while !done {
        let mut tx = conn.begin().await.map_err(io)?;
        for _ in 0..20 {
            let mut rows = Vec::with_capacity(ROWS_PER_STATEMENT);
            while rows.len() < ROWS_PER_STATEMENT {
                match records.next().await? {
                    Some((pin, text)) => rows.push((pin.cid.to_string(), text)),
                    None => {
                        done = true;
                        break;
                    }
                }
            }
            if !rows.is_empty() {
                count += rows.len() as u64;
                let mut q =
                    sqlx::QueryBuilder::new("INSERT OR REPLACE INTO pins_incoming (cid, pin) ");
                q.push_values(&rows, |mut b, (cid, text)| {
                    b.push_bind(cid.as_str()).push_bind(text.as_str());
                });
                q.build().execute(&mut *tx).await.map_err(io)?;
            }
            if done {
                break;
            }
        }
        tx.commit().await.map_err(io)?;
    }
    Ok(count)
}
