//! The applied pinset as the `pins` table holds it: the reader every component uses
//! ([`PinsTable`]), the index of expiring pins, and the pinset's counts.
//!
//! The counts (all pins, and those allocated to this peer) are kept by triggers on `pins`, in
//! the same transaction as every write to it, so that `/metrics`, `GET /pins/summary` and
//! the desktop read two numbers instead of counting ten million rows; a swap of the whole
//! table ([`super::staging::swap_in`]) counts once, as part of the swap.

use async_trait::async_trait;
use futures::stream::BoxStream;
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::db::{fresh_name, storage};
use crate::components::{
    Browse, BrowseCursor, Browsed, ConsensusError, PinCounts, PinMatch, PinOrder, Pinset,
};
use crate::types::{Cid, Pin, PinKey, PinType};

/// The shape of the pin JSON this version writes, kept beside each row (`pins.fmt`): a row
/// written in this format is exactly what the REST API sends for the pin, so listings pass
/// it through without parsing and encoding it again; a row of any other format (0: written
/// before rows carried one) is read into a [`Pin`] and encoded anew. A change to how
/// [`Pin`] serializes must raise this number (`the_stored_pin_format_is_the_apis` fails
/// until it is).
pub const PIN_FORMAT: i64 = 1;

/// A pin's expiry time as SQLite reads it from the stored JSON (Go's zero time when unset).
pub(super) const EXPIRY: &str = "julianday(json_extract(pin, '$.expire_at'))";
pub(super) const EXPIRES: &str = "json_extract(pin, '$.expire_at') <> '0001-01-01T00:00:00Z'";

/// SQL creating the index of `table`'s expiring pins by expiry time (for
/// [`Pinset::expired`]; pins that never expire are not in it). Its name is new each time:
/// an index keeps its name when its table is renamed to `pins`, and must not clash with the
/// index of the `pins` table it replaces.
pub(super) fn expiry_index(table: &str) -> String {
    format!(
        "CREATE INDEX \"{}\" ON {table} ({EXPIRY}) WHERE {EXPIRES}",
        fresh_name(&format!("{table}_expiry"))
    )
}

/// A pin's name as the index of names holds it: ASCII letters lower-cased (SQLite's
/// `lower`), so that a search in any case goes through the index.
pub(super) const NAME: &str = "lower(json_extract(pin, '$.name'))";
/// The pins the index of names holds: the named ones (an unnamed pin has `""`).
pub(super) const NAMED: &str = "json_extract(pin, '$.name') <> ''";
const UNNAMED: &str = "COALESCE(json_extract(pin, '$.name'), '') = ''";

/// SQL creating the index of `table`'s named pins by name (for [`Pinset::browse`]; unnamed
/// pins cost it nothing). Named anew each time, as [`expiry_index`].
pub(super) fn name_index(table: &str) -> String {
    format!(
        "CREATE INDEX \"{}\" ON {table} ({NAME}, cid) WHERE {NAMED}",
        fresh_name(&format!("{table}_names"))
    )
}

/// After the name and CID bound (in this order) in name order. The caller also bounds the
/// name from below (`>=`), so that SQLite seeks in the index of names instead of walking
/// it from its start (a row value `(name, cid) > (?, ?)` is not a seek).
const AFTER_NAME: &str = "(lower(json_extract(pin, '$.name')) > ? OR cid > ?)";

/// Rows of the unnamed pins' part of a listing by name looked at, at most, for one page
/// (they are found by walking the CIDs, as no index holds them).
const BROWSE_SCAN: i64 = 20_000;

/// Above every CID and every name's bytes: where a range "starting with" ends.
const TOP: char = '\u{10FFFF}';

/// Whether the stored pin `json` (an SQL expression) is allocated to the peer the counts are
/// kept for: allocated to every peer (no allocations) or naming it. Peer ids are base58,
/// so finding one quoted in the JSON array is an exact match.
fn here(json: &str) -> String {
    format!(
        r#"(COALESCE(json_array_length({json}, '$.allocations'), 0) = 0
          OR instr(json_extract({json}, '$.allocations'),
                   '"' || (SELECT peer FROM pin_counts WHERE id = 1) || '"') > 0)"#
    )
}

/// The triggers' names carry the version of what they count: a change to [`here`] gets new
/// names, and [`prepare`] replaces triggers of older versions.
const TRIGGERS: [&str; 3] = [
    "pins_counted_insert_v1",
    "pins_counted_update_v1",
    "pins_counted_delete_v1",
];

/// The triggers that keep `pin_counts` true as `pins` changes (an upsert that updates a row
/// fires the update trigger). Dropped with the table; made again by each swap. Nothing writes
/// `pins` with `INSERT OR REPLACE`, whose deletes fire no trigger (`recursive_triggers` is
/// off): a row is replaced by an upsert.
fn count_triggers() -> [String; 3] {
    [
        format!(
            "CREATE TRIGGER IF NOT EXISTS {} AFTER INSERT ON pins BEGIN \
             UPDATE pin_counts SET total = total + 1, here = here + {} WHERE id = 1; END",
            TRIGGERS[0],
            here("NEW.pin")
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS {} AFTER UPDATE OF pin ON pins BEGIN \
             UPDATE pin_counts SET here = here + {} - {} WHERE id = 1; END",
            TRIGGERS[1],
            here("NEW.pin"),
            here("OLD.pin")
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS {} AFTER DELETE ON pins BEGIN \
             UPDATE pin_counts SET total = total - 1, here = here - {} WHERE id = 1; END",
            TRIGGERS[2],
            here("OLD.pin")
        ),
    ]
}

/// How many pins `table` holds, and how many are allocated to the peer the counts are kept
/// for: one walk of the table.
pub(super) async fn count_table(
    conn: &mut SqliteConnection,
    table: &str,
) -> Result<(i64, i64), sqlx::Error> {
    let sql = format!(
        "SELECT COUNT(*), COALESCE(SUM({}), 0) FROM {table}",
        here("pin")
    );
    let row = sqlx::query(&sql).fetch_one(&mut *conn).await?;
    Ok((row.get(0), row.get(1)))
}

/// Makes the counts `counts` (or, with none, counts `pins` whole), with the triggers that
/// keep them from then on.
pub(super) async fn set_counts(
    conn: &mut SqliteConnection,
    counts: Option<(i64, i64)>,
) -> Result<(), sqlx::Error> {
    for t in count_triggers() {
        sqlx::query(&t).execute(&mut *conn).await?;
    }
    sqlx::query("INSERT OR IGNORE INTO pin_counts (id, peer, total, here) VALUES (1, '', 0, 0)")
        .execute(&mut *conn)
        .await?;
    let (total, here) = match counts {
        Some(c) => c,
        None => count_table(conn, "pins").await?,
    };
    sqlx::query("UPDATE pin_counts SET total = ?, here = ? WHERE id = 1")
        .bind(total)
        .bind(here)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Keeps the pinset's counts of pins allocated here for `peer`. Counts the pinset once when
/// the counts are new (a database from before them) or were kept for another peer id;
/// otherwise costs one read.
pub async fn count_for(pool: &SqlitePool, peer: &str) -> Result<(), ConsensusError> {
    let kept: Option<String> = sqlx::query_scalar("SELECT peer FROM pin_counts WHERE id = 1")
        .fetch_optional(pool)
        .await
        .map_err(storage)?;
    if kept.as_deref() == Some(peer) {
        return Ok(());
    }
    let mut tx = pool.begin().await.map_err(storage)?;
    sqlx::query(
        "INSERT INTO pin_counts (id, peer, total, here) VALUES (1, ?, 0, 0) \
         ON CONFLICT(id) DO UPDATE SET peer = excluded.peer",
    )
    .bind(peer)
    .execute(&mut *tx)
    .await
    .map_err(storage)?;
    set_counts(&mut tx, None).await.map_err(storage)?;
    tx.commit().await.map_err(storage)
}

/// Gives `pins` what a database from before them lacks: the expiry index, and the counts
/// with their triggers.
pub(super) async fn prepare(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    ensure_format_column(pool).await?;
    ensure_expiry_index(pool).await?;
    ensure_name_index(pool).await?;
    let counted: Option<i64> = sqlx::query_scalar("SELECT total FROM pin_counts WHERE id = 1")
        .fetch_optional(pool)
        .await?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'pins'",
    )
    .fetch_all(pool)
    .await?;
    let current = TRIGGERS.iter().all(|t| names.iter().any(|n| n == t));
    if counted.is_none() || !current {
        let mut tx = pool.begin().await?;
        for old in names.iter().filter(|n| n.starts_with("pins_counted_")) {
            sqlx::query(&format!("DROP TRIGGER \"{old}\""))
                .execute(&mut *tx)
                .await?;
        }
        set_counts(&mut tx, None).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Gives `pins` the column of its rows' format if it has none (a database from before it):
/// its rows are then of format 0, encoded anew when listed. Adding a column with a default
/// rewrites no row.
async fn ensure_format_column(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info('pins') WHERE name = 'fmt'")
            .fetch_one(pool)
            .await?;
    if n == 0 {
        sqlx::query("ALTER TABLE pins ADD COLUMN fmt INTEGER NOT NULL DEFAULT 0")
            .execute(pool)
            .await?;
    }
    Ok(())
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

/// Gives `pins` its index of names if it has none (a database from before it).
async fn ensure_name_index(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'pins' AND name GLOB '*_names-*'",
    )
    .fetch_one(pool)
    .await?
    .get(0);
    if n == 0 {
        sqlx::query(&name_index("pins")).execute(pool).await?;
    }
    Ok(())
}

pub(super) fn parse_pin(text: &str) -> Result<Pin, ConsensusError> {
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

    async fn counts(&self) -> Result<PinCounts, ConsensusError> {
        let row = sqlx::query("SELECT total, here FROM pin_counts WHERE id = 1")
            .fetch_optional(&self.readers)
            .await
            .map_err(storage)?;
        Ok(row.map_or(PinCounts::default(), |r| PinCounts {
            total: r.get::<i64, _>(0).max(0) as u64,
            allocated_here: r.get::<i64, _>(1).max(0) as u64,
        }))
    }

    async fn browse(&self, q: &Browse) -> Result<Browsed, ConsensusError> {
        let limit = q.limit.clamp(1, 1000) as i64;
        let after = q.after.as_deref().map(BrowseCursor::decode).transpose()?;
        let cid_after = |c: &Option<BrowseCursor>| match c {
            Some(BrowseCursor::Cid(c)) => Ok(c.clone()),
            None => Ok(String::new()),
            Some(_) => Err(ConsensusError::BadInput("a cursor of another order".into())),
        };
        let db = &self.readers;
        match (&q.matching, q.order) {
            (PinMatch::CidPrefix(prefix), _) => {
                // One lower bound, so that SQLite seeks to it (given two, it seeks to one and
                // walks the rest of the table testing the other).
                let from = cid_after(&after)?;
                let sql = if from.as_str() >= prefix.as_str() {
                    "SELECT cid, pin FROM pins WHERE cid > ? AND cid < ? ORDER BY cid LIMIT ?"
                } else {
                    "SELECT cid, pin FROM pins WHERE cid >= ? AND cid < ? ORDER BY cid LIMIT ?"
                };
                let rows = sqlx::query(sql)
                    .bind(from.as_str().max(prefix.as_str()))
                    .bind(format!("{prefix}{TOP}"))
                    .bind(limit)
                    .fetch_all(db)
                    .await
                    .map_err(storage)?;
                by_cid(rows, limit)
            }
            (PinMatch::All, PinOrder::Cid) => {
                let rows =
                    sqlx::query("SELECT cid, pin FROM pins WHERE cid > ? ORDER BY cid LIMIT ?")
                        .bind(cid_after(&after)?)
                        .bind(limit)
                        .fetch_all(db)
                        .await
                        .map_err(storage)?;
                by_cid(rows, limit)
            }
            (PinMatch::All, PinOrder::CidDesc) => {
                let before = match after {
                    None => TOP.to_string(),
                    some => cid_after(&some)?,
                };
                let rows = sqlx::query(
                    "SELECT cid, pin FROM pins WHERE cid < ? ORDER BY cid DESC LIMIT ?",
                )
                .bind(before)
                .bind(limit)
                .fetch_all(db)
                .await
                .map_err(storage)?;
                by_cid(rows, limit)
            }
            (PinMatch::NamePrefix(prefix), _) => {
                let prefix = prefix.to_ascii_lowercase();
                let (name, cid) = match after {
                    Some(BrowseCursor::Name(n, c)) => (n, c),
                    None => (String::new(), String::new()),
                    Some(_) => {
                        return Err(ConsensusError::BadInput("a cursor of another order".into()))
                    }
                };
                let sql = format!(
                    "SELECT cid, pin, {NAME} FROM pins WHERE {NAMED} AND {NAME} >= ? AND {NAME} < ? \
                     AND {AFTER_NAME} ORDER BY {NAME}, cid LIMIT ?"
                );
                let rows = sqlx::query(&sql)
                    .bind(prefix.as_str().max(name.as_str()))
                    .bind(format!("{prefix}{TOP}"))
                    .bind(&name)
                    .bind(cid)
                    .bind(limit)
                    .fetch_all(db)
                    .await
                    .map_err(storage)?;
                by_name(rows, limit)
            }
            (PinMatch::All, PinOrder::Name) => {
                // The named pins through the index of names, then the unnamed ones by CID.
                let mut page = Browsed::default();
                let mut at = after;
                if let None | Some(BrowseCursor::Name(..)) = at {
                    let (name, cid) = match at {
                        Some(BrowseCursor::Name(n, c)) => (n, c),
                        _ => (String::new(), String::new()),
                    };
                    let sql = format!(
                        "SELECT cid, pin, {NAME} FROM pins WHERE {NAMED} AND {NAME} >= ? \
                         AND {AFTER_NAME} ORDER BY {NAME}, cid LIMIT ?"
                    );
                    let rows = sqlx::query(&sql)
                        .bind(&name)
                        .bind(&name)
                        .bind(cid)
                        .bind(limit)
                        .fetch_all(db)
                        .await
                        .map_err(storage)?;
                    page = by_name(rows, limit)?;
                    if page.next.is_some() {
                        return Ok(page);
                    }
                    at = Some(BrowseCursor::Cid(String::new()));
                }
                let from = cid_after(&at)?;
                let want = limit - page.pins.len() as i64;
                let sql = format!(
                    "SELECT cid, pin FROM (SELECT cid, pin FROM pins WHERE cid > ? ORDER BY cid \
                     LIMIT {BROWSE_SCAN}) WHERE {UNNAMED} LIMIT ?"
                );
                let rows = sqlx::query(&sql)
                    .bind(&from)
                    .bind(want)
                    .fetch_all(db)
                    .await
                    .map_err(storage)?;
                let unnamed = by_cid(rows, want)?;
                page.pins.extend(unnamed.pins);
                page.next = match unnamed.next {
                    Some(next) => Some(next),
                    None => {
                        // Fewer than wanted in the rows looked at: go on after the last of
                        // them, unless they were the last of the pinset.
                        let row = sqlx::query(&format!(
                            "SELECT count(*), max(cid) FROM (SELECT cid FROM pins WHERE cid > ? \
                             ORDER BY cid LIMIT {BROWSE_SCAN})"
                        ))
                        .bind(&from)
                        .fetch_one(db)
                        .await
                        .map_err(storage)?;
                        (row.get::<i64, _>(0) == BROWSE_SCAN)
                            .then(|| BrowseCursor::Cid(row.get(1)).encode())
                    }
                };
                Ok(page)
            }
        }
    }

    fn stream_json(&self, types: &[PinType]) -> BoxStream<'static, Result<String, ConsensusError>> {
        self.json_pages(types)
    }

    fn stream_after(
        &self,
        after: Option<PinKey>,
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
                        .bind(a.as_str().to_string())
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
                    Some(last) if full => after = Some(PinKey::from(last.get::<String, _>(0))),
                    _ => break,
                }
            }
        })
    }
}

/// A page of pins in CID order from `rows` (cid, pin) of a query limited to `limit`: full,
/// it goes on after its last CID.
fn by_cid(rows: Vec<sqlx::sqlite::SqliteRow>, limit: i64) -> Result<Browsed, ConsensusError> {
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| BrowseCursor::Cid(r.get(0)).encode()))
        .flatten();
    let pins = rows
        .iter()
        .map(|r| parse_pin(r.get::<&str, _>(1)))
        .collect::<Result<_, _>>()?;
    Ok(Browsed { pins, next })
}

/// A page of pins in name order from `rows` (cid, pin, name as indexed), as [`by_cid`].
fn by_name(rows: Vec<sqlx::sqlite::SqliteRow>, limit: i64) -> Result<Browsed, ConsensusError> {
    let next = (rows.len() as i64 == limit)
        .then(|| {
            rows.last()
                .map(|r| BrowseCursor::Name(r.get(2), r.get(0)).encode())
        })
        .flatten();
    let pins = rows
        .iter()
        .map(|r| parse_pin(r.get::<&str, _>(1)))
        .collect::<Result<_, _>>()?;
    Ok(Browsed { pins, next })
}

impl PinsTable {
    /// [`Pinset::stream_json`]: a row of [`PIN_FORMAT`] as it is stored, any other read and
    /// encoded anew; `types` matched by SQLite on the stored text. Read in pages as
    /// [`Pinset::stream_after`].
    fn json_pages(&self, types: &[PinType]) -> BoxStream<'static, Result<String, ConsensusError>> {
        let readers = self.readers.clone();
        // The types as the JSON names them, matched by SQLite on the stored text.
        let only = if types.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = types.iter().map(|t| format!("'{}'", t.as_str())).collect();
            format!(" AND json_extract(pin, '$.type') IN ({})", names.join(", "))
        };
        let page = format!(
            "SELECT cid, pin, fmt FROM pins WHERE cid > ?{only} ORDER BY cid LIMIT {READ_PAGE}"
        );
        // A page whose rows are all of this version's format comes out of SQLite as one
        // text, its pins one per line: one hand-off from SQLite's thread for the page instead
        // of one per row (what bounded `/allocations`). A page with a row of another format
        // is read again row by row, and that row encoded anew.
        let joined = format!(
            "SELECT count(*), max(cid), count(*) FILTER (WHERE fmt != {PIN_FORMAT}), \
             group_concat(pin, char(10) ORDER BY cid) FROM ({page})"
        );
        Box::pin(async_stream::try_stream! {
            // "" sorts before every CID.
            let mut after = String::new();
            loop {
                let row = sqlx::query(&joined)
                    .bind(after.as_str())
                    .fetch_one(&readers)
                    .await
                    .map_err(storage)?;
                let mut count: i64 = row.get(0);
                if count == 0 {
                    break;
                }
                let mut last: String = row.get(1);
                if row.get::<i64, _>(2) == 0 {
                    yield row.get::<String, _>(3);
                } else {
                    let rows = sqlx::query(&page)
                        .bind(after.as_str())
                        .fetch_all(&readers)
                        .await
                        .map_err(storage)?;
                    // Rows may have changed in between: this read decides where to go on.
                    count = rows.len() as i64;
                    match rows.last() {
                        Some(row) => last = row.get(0),
                        None => break,
                    }
                    let mut text = String::new();
                    for row in &rows {
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        let stored: String = row.get(1);
                        if row.get::<i64, _>(2) == PIN_FORMAT {
                            text.push_str(&stored);
                        } else {
                            let pin = parse_pin(&stored)?;
                            text.push_str(&serde_json::to_string(&pin).map_err(storage)?);
                        }
                    }
                    yield text;
                }
                if count < READ_PAGE as i64 {
                    break;
                }
                after = last;
            }
        })
    }
}

/// Rows per page when the pinset is read in order.
const READ_PAGE: usize = 1000;
