//! What the database file holds and how it is opened: the tables, a check of the file's
//! header before SQLite may write to it, and the writers' and readers' pools.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::SqlitePool;

use super::db::{connect, storage};
use super::pins;
use crate::components::ConsensusError;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, entry TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    // `fmt`: the format of the row's JSON (see `pins::PIN_FORMAT`; a database from before it
    // gets the column from `pins::prepare`).
    "CREATE TABLE IF NOT EXISTS pins (cid TEXT PRIMARY KEY, pin TEXT NOT NULL, fmt INTEGER NOT NULL DEFAULT 0)",
    // The current snapshot: its meta and file (one row, only ever replaced by a newer one).
    "CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL, meta TEXT NOT NULL, file TEXT NOT NULL)",
    // What the last installed snapshot dropped, to unpin from IPFS (kept until the next one).
    "CREATE TABLE IF NOT EXISTS pins_gone (cid TEXT PRIMARY KEY)",
    // The pinset's counts, kept by triggers on `pins` (see `pins::prepare`).
    "CREATE TABLE IF NOT EXISTS pin_counts (id INTEGER PRIMARY KEY CHECK (id = 1), peer TEXT NOT NULL, total INTEGER NOT NULL, here INTEGER NOT NULL)",
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
