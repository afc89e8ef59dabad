//! The database under the store: errors, the connection pool, the small key-value table and
//! the flags kept in it. Every other part of the store builds on this one.

use std::path::{Path, PathBuf};

use openraft::{AnyError, StorageError, StorageIOError, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

use super::super::typ::NodeId;
use crate::components::ConsensusError;

pub(super) type SErr = StorageError<NodeId>;

/// Rows per multi-row statement (two bound values each, well under SQLite's limit).
pub(super) const ROWS_PER_STATEMENT: usize = 500;

/// Where Raft's database lives inside the cluster folder.
pub fn db_path(folder: &Path) -> PathBuf {
    folder.join("raft").join("raft.sqlite")
}

pub(super) fn storage(e: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::Storage(e.to_string())
}

pub(super) fn read_err(e: impl std::error::Error + 'static) -> SErr {
    StorageIOError::read(AnyError::new(&e)).into()
}
pub(super) fn write_err(e: impl std::error::Error + 'static) -> SErr {
    StorageIOError::write(AnyError::new(&e)).into()
}

pub(crate) async fn kv_get<'e, T: DeserializeOwned>(
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

pub(crate) async fn kv_put<'e, T: Serialize>(
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

pub(crate) async fn kv_delete<'e>(
    exec: impl sqlx::SqliteExecutor<'e>,
    key: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM kv WHERE key = ?")
        .bind(key)
        .execute(exec)
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

/// A pool whose connections are all opened now and never closed: a running peer then needs
/// no new descriptor for its database, so running out of descriptors (a flood of
/// connections, a busy machine) can delay a request but never fail a Raft write with
/// SQLite's "unable to open database file" and stop Raft. Sorts and indexes built for a
/// query stay in memory for the same reason (no temporary files).
pub(super) async fn connect(
    path: &Path,
    opts: SqliteConnectOptions,
    connections: u32,
) -> Result<SqlitePool, ConsensusError> {
    let cannot =
        |e: sqlx::Error| storage(format!("{}: cannot open the database: {e}", path.display()));
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
pub(super) const IMPORTED: &str = "imported";

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

/// A file name no other snapshot file of this peer has.
pub(super) fn fresh_name(kind: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "{kind}-{}-{n}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    )
}
