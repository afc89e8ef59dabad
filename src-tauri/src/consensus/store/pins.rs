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
    prefix_end, Browse, BrowseCursor, Browsed, ConsensusError, PinCounts, PinMatch, PinOrder,
    Pinset,
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

/// Rows of the unnamed pins' part of a listing by name looked at, at most, for one page
/// (they are found by walking the CIDs, as no index holds them).
const BROWSE_SCAN: i64 = 20_000;

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
    ensure_index(pool, "*_expiry-*", expiry_index).await?;
    ensure_index(pool, "*_names-*", name_index).await?;
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

/// Gives `pins` the index whose names match `glob` if it has none (a database from before
/// it), made by the SQL `create` gives for the table.
async fn ensure_index(
    pool: &SqlitePool,
    glob: &str,
    create: fn(&str) -> String,
) -> Result<(), sqlx::Error> {
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'pins' AND name GLOB ?",
    )
    .bind(glob)
    .fetch_one(pool)
    .await?
    .get(0);
    if n == 0 {
        sqlx::query(&create("pins")).execute(pool).await?;
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
        after: Option<PinKey>,
        limit: usize,
    ) -> Result<Vec<Cid>, ConsensusError> {
        let sql = format!(
            "SELECT cid FROM pins WHERE {EXPIRES} AND {EXPIRY} <= julianday(?) AND cid > ? \
             ORDER BY cid LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .bind(after.map(|k| k.to_string()).unwrap_or_default())
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
        let after = q.cursor()?;
        let cid_after = |c: &Option<BrowseCursor>| match c {
            Some(BrowseCursor::Cid(c)) => Ok(c.clone()),
            None => Ok(String::new()),
            Some(_) => Err(ConsensusError::BadInput("a cursor of another order".into())),
        };
        let db = &self.readers;
        let fetch = |sql: String, binds: Vec<Bind>| async move {
            let mut query = sqlx::query(&sql);
            for b in binds {
                query = match b {
                    Bind::Text(t) => query.bind(t),
                    Bind::Int(n) => query.bind(n),
                };
            }
            query.fetch_all(db).await.map_err(storage)
        };
        use Bind::{Int, Text};
        let page = match (&q.matching, q.order) {
            (PinMatch::CidPrefix(prefix), _) => {
                // One lower bound, so that SQLite seeks to it (given two, it seeks to one and
                // walks the rest of the table testing the other).
                let from = cid_after(&after)?;
                let (low, low_op) = if from.as_str() >= prefix.as_str() {
                    (from, ">")
                } else {
                    (prefix.clone(), ">=")
                };
                let (high, binds) = match prefix_end(prefix) {
                    Some(end) => (" AND cid < ?", vec![Text(low), Text(end), Int(limit)]),
                    None => ("", vec![Text(low), Int(limit)]),
                };
                let sql = format!(
                    "SELECT cid, pin FROM pins WHERE cid {low_op} ?{high} ORDER BY cid LIMIT ?"
                );
                by_cid(q, fetch(sql, binds).await?, limit)?
            }
            (PinMatch::All, PinOrder::Cid) => {
                let sql = "SELECT cid, pin FROM pins WHERE cid > ? ORDER BY cid LIMIT ?";
                let rows = fetch(sql.into(), vec![Text(cid_after(&after)?), Int(limit)]).await?;
                by_cid(q, rows, limit)?
            }
            (PinMatch::All, PinOrder::CidDesc) => {
                let rows = match after {
                    None => {
                        let sql = "SELECT cid, pin FROM pins ORDER BY cid DESC LIMIT ?";
                        fetch(sql.into(), vec![Int(limit)]).await?
                    }
                    some => {
                        let sql =
                            "SELECT cid, pin FROM pins WHERE cid < ? ORDER BY cid DESC LIMIT ?";
                        fetch(sql.into(), vec![Text(cid_after(&some)?), Int(limit)]).await?
                    }
                };
                by_cid(q, rows, limit)?
            }
            (PinMatch::NamePrefix(prefix), _) => {
                let prefix = prefix.to_ascii_lowercase();
                let from = match after {
                    Some(BrowseCursor::Name(n, c)) => Some((n, c)),
                    None => None,
                    Some(_) => {
                        return Err(ConsensusError::BadInput("a cursor of another order".into()))
                    }
                };
                self.by_name(q, &prefix, prefix_end(&prefix), from, limit)
                    .await?
            }
            (PinMatch::All, PinOrder::Name) => {
                // The named pins through the index of names, then the unnamed ones by CID.
                let mut page = Browsed::default();
                let mut at = after;
                if let None | Some(BrowseCursor::Name(..)) = at {
                    let from = match at {
                        Some(BrowseCursor::Name(n, c)) => Some((n, c)),
                        _ => None,
                    };
                    page = self.by_name(q, "", None, from, limit).await?;
                    if page.next.is_some() {
                        return Ok(page);
                    }
                    at = Some(BrowseCursor::Cid(String::new()));
                }
                let want = limit - page.pins.len() as i64;
                let unnamed = self.unnamed(q, cid_after(&at)?, want).await?;
                page.pins.extend(unnamed.pins);
                page.next = unnamed.next;
                page.looked += unnamed.looked;
                page
            }
        };
        Ok(page)
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

/// A value bound to a browse query.
enum Bind {
    Text(String),
    Int(i64),
}

/// The pins of `rows` (cid, pin, …), parsed.
fn pins_of(rows: &[sqlx::sqlite::SqliteRow]) -> Result<Vec<Pin>, ConsensusError> {
    rows.iter()
        .map(|r| parse_pin(r.get::<&str, _>(1)))
        .collect()
}

/// A page of pins in CID order from `rows` (cid, pin) of a query limited to `limit`: full,
/// it goes on after its last CID.
fn by_cid(
    q: &Browse,
    rows: Vec<sqlx::sqlite::SqliteRow>,
    limit: i64,
) -> Result<Browsed, ConsensusError> {
    let next = (rows.len() as i64 == limit)
        .then(|| {
            rows.last()
                .map(|r| q.next_text(&BrowseCursor::Cid(r.get(0))))
        })
        .flatten();
    Ok(Browsed {
        looked: rows.len(),
        pins: pins_of(&rows)?,
        next,
    })
}

impl PinsTable {
    /// Named pins by lower-cased name from `low` (below `high`, if any), after `from` (a
    /// name and CID) when given: the rest of `from`'s name by CID, then the names above it,
    /// each a seek in the index of names (a run of pins of one name costs each page its own
    /// rows only).
    async fn by_name(
        &self,
        q: &Browse,
        low: &str,
        high: Option<String>,
        from: Option<(String, String)>,
        limit: i64,
    ) -> Result<Browsed, ConsensusError> {
        let db = &self.readers;
        let mut rows = Vec::new();
        let low_name = match &from {
            Some((name, cid)) => {
                let same = format!(
                    "SELECT cid, pin, {NAME} FROM pins WHERE {NAMED} AND {NAME} = ? AND cid > ? \
                     ORDER BY cid LIMIT ?"
                );
                rows = sqlx::query(&same)
                    .bind(name)
                    .bind(cid)
                    .bind(limit)
                    .fetch_all(db)
                    .await
                    .map_err(storage)?;
                Some(name.clone())
            }
            None => None,
        };
        let want = limit - rows.len() as i64;
        if want > 0 {
            let (low, op) = match &low_name {
                Some(name) => (name.clone(), ">"),
                None => (low.to_string(), ">="),
            };
            let below = if high.is_some() {
                format!(" AND {NAME} < ?")
            } else {
                String::new()
            };
            let sql = format!(
                "SELECT cid, pin, {NAME} FROM pins WHERE {NAMED} AND {NAME} {op} ?{below} \
                 ORDER BY {NAME}, cid LIMIT ?"
            );
            let mut query = sqlx::query(&sql).bind(low);
            if let Some(h) = high {
                query = query.bind(h);
            }
            rows.extend(query.bind(want).fetch_all(db).await.map_err(storage)?);
        }
        let next = (rows.len() as i64 == limit)
            .then(|| {
                rows.last()
                    .map(|r| q.next_text(&BrowseCursor::Name(r.get(2), r.get(0))))
            })
            .flatten();
        Ok(Browsed {
            looked: rows.len(),
            pins: pins_of(&rows)?,
            next,
        })
    }

    /// Up to `want` unnamed pins after the CID `from`, looking at [`BROWSE_SCAN`] rows at
    /// most (no index holds them): the rows and where the look ended are read in one read
    /// transaction, so that both see the same pinset.
    async fn unnamed(
        &self,
        q: &Browse,
        from: String,
        want: i64,
    ) -> Result<Browsed, ConsensusError> {
        let mut tx = self.readers.begin().await.map_err(storage)?;
        let scanned =
            format!("SELECT cid, pin FROM pins WHERE cid > ? ORDER BY cid LIMIT {BROWSE_SCAN}");
        let rows = sqlx::query(&format!(
            "SELECT cid, pin FROM ({scanned}) WHERE {UNNAMED} ORDER BY cid LIMIT ?"
        ))
        .bind(&from)
        .bind(want)
        .fetch_all(&mut *tx)
        .await
        .map_err(storage)?;
        let mut page = by_cid(q, rows, want)?;
        let row = sqlx::query(&format!(
            "SELECT count(*), max(cid) FROM (SELECT cid FROM pins WHERE cid > ? ORDER BY cid LIMIT {BROWSE_SCAN})"
        ))
        .bind(&from)
        .fetch_one(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        let count = row.get::<i64, _>(0);
        page.looked = count.max(page.pins.len() as i64) as usize;
        if page.next.is_none() && count == BROWSE_SCAN {
            // Fewer than wanted in the rows looked at: go on after the last of them.
            page.next = Some(q.next_text(&BrowseCursor::Cid(row.get(1))));
        }
        Ok(page)
    }
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
