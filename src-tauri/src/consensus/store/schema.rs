//! What the database file holds and how it is opened: the tables (made and changed by the
//! migrations in `src-tauri/migrations/`, whose last one is the file's schema version), the
//! checks of the file's header and version before SQLite may write to it, and the writers'
//! and readers' pools.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::SqlitePool;

use super::db::{connect, storage};
use super::pins;
use crate::components::ConsensusError;

/// The schema's migrations (`src-tauri/migrations/`, embedded in the binary): run in order at
/// open, each in a transaction with the row that records it, so that the database's version
/// is always that of its last migration.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The newest schema version this build knows (its last migration).
pub fn schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Where the version of the program that last opened the database is kept (so that an older
/// one can name the version it would need).
const WRITTEN_BY: &str = "written_by";

/// Refuses a database of a newer schema than this build knows, before anything writes to it:
/// read through a read-only connection, the file is left exactly as it was (and, when it has
/// no write-ahead log to replay, opened as immutable, so that not even SQLite's side files
/// appear). A database of 0.1.0 (no `_sqlx_migrations`) or a new file passes.
async fn check_version(path: &Path) -> Result<(), ConsensusError> {
    if std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
        return Ok(());
    }
    let wal = path.with_extension("sqlite-wal");
    let wal_in_use = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(!wal_in_use)
        .busy_timeout(Duration::from_secs(30));
    let cannot = |e: sqlx::Error| {
        storage(format!(
            "{}: cannot read the database's version: {e}",
            path.display()
        ))
    };
    let mut conn = sqlx::ConnectOptions::connect(&opts).await.map_err(cannot)?;
    let tracked: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(&mut conn)
    .await
    .map_err(cannot)?;
    if tracked.is_none() {
        return Ok(());
    }
    let theirs: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .map_err(cannot)?;
    if theirs <= schema_version() {
        return Ok(());
    }
    let by: Option<String> = super::db::kv_get(&mut conn, WRITTEN_BY)
        .await
        .ok()
        .flatten();
    Err(storage(format!(
        "{}: the database was written by a newer version ({}, storage schema {theirs}); \
         this is {} (storage schema {}), which cannot read it. Nothing was changed: run \
         that version or a newer one, or restore the folder's backup made by this one",
        path.display(),
        by.as_deref().unwrap_or("unknown"),
        crate::types::full_version(),
        schema_version(),
    )))
}

/// Refuses a database file that is visibly damaged before SQLite opens it for writing (which
/// could change it further): shorter than its header says (cut off by a full disk or an
/// interrupted copy) or not an SQLite file at all. Checks only the 100-byte header and the
/// size, so it costs nothing at any size; damage inside pages is SQLite's to find. A file
/// with a write-ahead log is left to SQLite's recovery, which may legitimately grow it.
fn check_header(path: &Path) -> Result<(), ConsensusError> {
    use std::io::Read;
    let damaged = |why: String| {
        storage(format!(
            "{}: the database is damaged ({why}); it was left as it is. Restore the \
             folder from a backup, or move its folder (raft or crdt) away and start the peer \
             again (a Raft peer with --bootstrap) to receive the state from the cluster",
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
    check_version(path).await?;
    let pool = connect(path, opts, 4).await?;
    MIGRATOR.run(&pool).await.map_err(|e| {
        storage(format!(
            "{}: not a usable database of this program: {e}",
            path.display()
        ))
    })?;
    super::db::kv_put(&pool, WRITTEN_BY, &crate::types::full_version())
        .await
        .map_err(|e| storage(format!("{}: {e}", path.display())))?;
    pins::prepare(&pool)
        .await
        .map_err(|e| storage(format!("{}: {e}", path.display())))?;
    Ok(pool)
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
