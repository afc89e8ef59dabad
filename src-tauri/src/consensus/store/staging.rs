//! Whole pinsets loaded beside the live one, then swapped in: one routine for an offline
//! import (`state import`) and for a snapshot received from the leader. Rows go into a table
//! of their own, a few thousand per transaction, so that neither readers nor the log's
//! writer wait for the length of the load and a bad row or a damaged file changes nothing;
//! [`swap_in`] then makes the table the pinset in one short transaction, with the counts
//! taken of it beforehand (see [`super::pins`]).

use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool, Transaction};

use super::super::snapshot::SnapshotFile;
use super::db::{kv_put, storage, IMPORTED, ROWS_PER_STATEMENT};
use super::pins::{count_table, expiry_index, name_index, set_counts, PIN_FORMAT};
use crate::components::ConsensusError;
use crate::types::Pin;

/// Multi-row statements per transaction while loading.
const STATEMENTS_PER_TRANSACTION: usize = 20;

/// Where an offline import is staged until it is confirmed.
const IMPORT: &str = "pins_import";
/// Where a received snapshot is loaded.
pub(super) const INCOMING: &str = "pins_incoming";

/// A table being filled with pins (CID text, pin JSON), holding one statement's rows at a
/// time.
pub(super) struct Staging {
    pool: SqlitePool,
    table: &'static str,
    tx: Option<Transaction<'static, Sqlite>>,
    rows: Vec<(String, String)>,
    statements: usize,
    count: u64,
}

impl Staging {
    /// Makes `table` anew (empty, with its indexes of expiry and names), replacing what a failed load left.
    pub(super) async fn create(
        pool: &SqlitePool,
        table: &'static str,
    ) -> Result<Staging, sqlx::Error> {
        for stmt in [
            format!("DROP TABLE IF EXISTS {table}"),
            format!("CREATE TABLE {table} (cid TEXT PRIMARY KEY, pin TEXT NOT NULL, fmt INTEGER NOT NULL DEFAULT 0)"),
            expiry_index(table),
            name_index(table),
        ] {
            sqlx::query(&stmt).execute(pool).await?;
        }
        Ok(Staging {
            pool: pool.clone(),
            table,
            tx: None,
            rows: Vec::with_capacity(ROWS_PER_STATEMENT),
            statements: 0,
            count: 0,
        })
    }

    /// Adds one pin, `json` encoded by this version ([`PIN_FORMAT`]); a later one for the
    /// same CID replaces it.
    pub(super) async fn push(&mut self, cid: String, json: String) -> Result<(), sqlx::Error> {
        self.rows.push((cid, json));
        if self.rows.len() >= ROWS_PER_STATEMENT {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), sqlx::Error> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let tx = match &mut self.tx {
            Some(tx) => tx,
            None => self.tx.insert(self.pool.begin().await?),
        };
        let mut q = sqlx::QueryBuilder::new(format!(
            "INSERT OR REPLACE INTO {} (cid, pin, fmt) ",
            self.table
        ));
        q.push_values(&self.rows, |mut b, (cid, json)| {
            b.push_bind(cid.as_str())
                .push_bind(json.as_str())
                .push_bind(PIN_FORMAT);
        });
        q.build().execute(&mut **tx).await?;
        self.count += self.rows.len() as u64;
        self.rows.clear();
        self.statements += 1;
        if self.statements >= STATEMENTS_PER_TRANSACTION {
            self.statements = 0;
            if let Some(tx) = self.tx.take() {
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Writes what is left; returns how many pins were pushed.
    pub(super) async fn finish(mut self) -> Result<u64, sqlx::Error> {
        self.flush().await?;
        if let Some(tx) = self.tx.take() {
            tx.commit().await?;
        }
        Ok(self.count)
    }
}

/// Drops a staging table (a load that failed or was not confirmed).
pub(super) async fn discard(pool: &SqlitePool, table: &str) {
    let _ = sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
        .execute(pool)
        .await;
}

/// Counts the loaded `table` (one walk, before the swap's transaction: nothing writes the
/// table any more, and the log's writer must not wait for the walk).
pub(super) async fn counted(pool: &SqlitePool, table: &str) -> Result<(i64, i64), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    count_table(&mut conn, table).await
}

/// Makes the loaded `table` the pinset, inside the caller's transaction, with its `counts`
/// (see [`counted`]; with none it is counted here, inside the transaction).
pub(super) async fn swap_in(
    conn: &mut SqliteConnection,
    table: &str,
    counts: Option<(i64, i64)>,
) -> Result<(), sqlx::Error> {
    for stmt in [
        "DROP TABLE pins".to_string(),
        format!("ALTER TABLE {table} RENAME TO pins"),
    ] {
        sqlx::query(&stmt).execute(&mut *conn).await?;
    }
    set_counts(conn, counts).await
}

/// Reads a received snapshot file into [`INCOMING`]. Returns how many pins it holds.
pub(super) async fn load_snapshot(
    pool: &SqlitePool,
    file: SnapshotFile,
) -> Result<u64, std::io::Error> {
    let io = |e: sqlx::Error| std::io::Error::other(e.to_string());
    let mut staging = Staging::create(pool, INCOMING).await.map_err(io)?;
    let mut records = file.records().await?;
    while let Some((pin, _as_sent)) = records.next().await? {
        // Encoded anew: the sender may be a version whose pins have another shape, and a
        // row is kept as this version's format (see `PIN_FORMAT`).
        let json = serde_json::to_string(&pin).map_err(std::io::Error::other)?;
        staging.push(pin.cid.to_string(), json).await.map_err(io)?;
    }
    staging.finish().await.map_err(io)
}

/// Loads pins into a staging table for an offline `state import` (peer stopped), streaming;
/// nothing the peer reads changes until [`commit_staged`]. The first error (a bad line)
/// drops what was staged.
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
    let mut staging = Staging::create(pool, IMPORT).await.map_err(storage)?;
    for pin in pins {
        let pin = pin?;
        let json = serde_json::to_string(&pin).map_err(storage)?;
        staging
            .push(pin.cid.to_string(), json)
            .await
            .map_err(storage)?;
    }
    staging.finish().await.map_err(storage)
}

/// Drops a staged import.
pub async fn discard_staged(pool: &SqlitePool) {
    discard(pool, IMPORT).await
}

/// Makes the staged import the applied pinset, in one transaction. The Raft log and applied
/// index are kept, so entries after it still apply on top at the next start.
pub async fn commit_staged(pool: &SqlitePool) -> Result<(), ConsensusError> {
    let mut conn = pool.acquire().await.map_err(storage)?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(storage)?;
    // The peer is stopped: counting inside the transaction holds up nobody.
    swap_in(&mut tx, IMPORT, None).await.map_err(storage)?;
    // A stored snapshot would bring the old pinset back to peers that install it. The next
    // start takes a new one and purges the log before it (see `imported`), so that every
    // peer that joins later installs the imported pinset instead of replaying a log that
    // never had it.
    sqlx::query("DELETE FROM snapshot")
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
    kv_put(&mut *tx, IMPORTED, &true).await.map_err(storage)?;
    tx.commit().await.map_err(storage)
}

/// Makes the staged import the `pins` table after running `first` (statements of the
/// caller's), in one transaction, and nothing else: a CRDT peer's import, which then writes
/// the pins as its deltas.
pub async fn swap_staged_after(pool: &SqlitePool, first: &[&str]) -> Result<(), ConsensusError> {
    let mut conn = pool.acquire().await.map_err(storage)?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(storage)?;
    for stmt in first {
        sqlx::query(stmt).execute(&mut *tx).await.map_err(storage)?;
    }
    swap_in(&mut tx, IMPORT, None).await.map_err(storage)?;
    tx.commit().await.map_err(storage)
}

/// Replaces the applied pinset with `pins` (stage and commit at once).
#[cfg(test)]
pub async fn replace_pins(pool: &SqlitePool, pins: &[Pin]) -> Result<(), ConsensusError> {
    stage_pins(pool, pins.iter().cloned().map(Ok)).await?;
    commit_staged(pool).await
}
