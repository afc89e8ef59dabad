//! The CRDT's storage: the DAG's blocks and heads, the add-wins observed-remove set, and the
//! pinset it makes (the `pins` table, as Raft's state machine keeps it, so every reader of
//! the pinset works unchanged), in one SQLite file (tables of migration 2).
//!
//! **Nothing is ever half applied.** go-ds-crdt walks a new head down the DAG, applying each
//! block as it goes and making the head a head first; a walk cut short (a crash, a peer gone)
//! leaves heads whose history is partly missing, and the store "dirty" until a repair pass
//! walks the whole DAG again (ipfs-cluster#1007, go-ds-crdt#285). Here a block is stored,
//! its delta applied, its links recorded and the blocks it names but this peer lacks added to
//! `crdt_wanted`, all in one transaction. The heads are the stored blocks no stored block
//! links to, kept as blocks arrive. A sync is the `crdt_wanted` table emptied: cut short, it
//! resumes where it stopped, with nothing to repair. The order blocks arrive in does not
//! matter: the set's merge is commutative and idempotent (an element stays removed when its
//! tombstone came first; a key's value is its live element of highest priority, then of
//! greatest value, whatever the order they came in).
//!
//! The set keeps only live elements (`crdt_elems`) and the tombstones (`crdt_tombs`): an
//! element is deleted when tombstoned, so a key's value is one indexed read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use tokio::sync::Mutex;

use super::wire::{self, Delta, Element, Node};
use crate::components::{ConsensusError, StateChange};
use crate::consensus::store;
use crate::state::feed::FeedSender;
use crate::types::Pin;

/// Where the CRDT's database lives inside the cluster folder.
pub fn db_path(folder: &Path) -> PathBuf {
    folder.join("crdt").join("crdt.sqlite")
}

pub(super) fn storage(e: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::Storage(format!("CRDT store: {e}"))
}

/// What storing a block another peer sent did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stored {
    /// The block was new here (a known one changes nothing).
    pub new: bool,
    /// The blocks it links to that this peer lacks (now wanted).
    pub wanted: Vec<cid::Cid>,
}

/// The CRDT's blocks, heads and set, and the pinset they make.
pub struct CrdtStore {
    path: PathBuf,
    pool: SqlitePool,
    /// Read-only connections for what other peers ask (blocks), so that their reads never
    /// take a connection this peer's writes need.
    readers: SqlitePool,
    /// Serializes the writers: a block's heads are read and changed in one transaction.
    writer: Mutex<()>,
    changes: FeedSender,
}

/// A key's value: its live element of highest priority, then greatest value.
type Best = Option<(i64, Vec<u8>)>;

async fn best(tx: &mut Transaction<'_, Sqlite>, key: &str) -> Result<Best, sqlx::Error> {
    sqlx::query_as(
        "SELECT prio, value FROM crdt_elems WHERE key = ? ORDER BY prio DESC, value DESC LIMIT 1",
    )
    .bind(key)
    .fetch_optional(&mut **tx)
    .await
}

/// A priority as SQLite stores it (its integers are signed; heights never come near 2^63,
/// and a larger one from another peer is kept as the largest).
fn prio(p: u64) -> i64 {
    i64::try_from(p).unwrap_or(i64::MAX)
}

impl CrdtStore {
    /// Opens (creating if needed) the store at `path`; `changes` receives what the pinset
    /// gains and loses, after each write is durable.
    pub async fn open(path: &Path, changes: FeedSender) -> Result<CrdtStore, ConsensusError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| storage(format!("{}: {e}", dir.display())))?;
        }
        let pool = store::open(path).await?;
        let readers = store::open_readers(path).await?;
        Ok(CrdtStore {
            path: path.to_path_buf(),
            pool,
            readers,
            writer: Mutex::new(()),
            changes,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pool (for readers of the pinset and tests).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The current heads, and the greatest height among them (0 with none).
    pub async fn heads(&self) -> Result<(Vec<cid::Cid>, u64), ConsensusError> {
        heads(&self.pool).await.map_err(storage)
    }

    /// Whether this peer holds block `c`.
    pub async fn has_block(&self, c: &cid::Cid) -> Result<bool, ConsensusError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM crdt_blocks WHERE cid = ?")
            .bind(c.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?;
        Ok(found.is_some())
    }

    /// Block `c`'s bytes, if this peer holds them (what it serves to others; read on the
    /// read-only pool): a delta's block (not one a checkpoint covers, whose bytes it never
    /// had), or a checkpoint's.
    pub async fn block(&self, c: &cid::Cid) -> Result<Option<Vec<u8>>, ConsensusError> {
        sqlx::query_scalar(
            "SELECT data FROM crdt_blocks WHERE cid = ?1 AND length(data) > 0 \
             UNION ALL SELECT data FROM crdt_ckpt_blocks WHERE cid = ?1 LIMIT 1",
        )
        .bind(c.to_string())
        .fetch_optional(&self.readers)
        .await
        .map_err(storage)
    }

    /// Whether this peer holds any block (a peer holding none loads a checkpoint offered).
    pub async fn holds_blocks(&self) -> Result<bool, ConsensusError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM crdt_blocks)")
            .fetch_one(&self.pool)
            .await
            .map_err(storage)
    }

    /// Up to `limit` blocks a loaded checkpoint covers whose bytes this peer lacks, in CID
    /// order after `after`.
    pub async fn unfetched(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<cid::Cid>, ConsensusError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT cid FROM crdt_blocks WHERE length(data) = 0 AND cid > ? ORDER BY cid LIMIT ?",
        )
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        Ok(parse_cids(&rows))
    }

    /// Fills in the bytes of block `c`, which a loaded checkpoint covers (its delta is in
    /// the set already: nothing is applied). Bytes that are not the block `c` names, or not
    /// a delta's node, are refused.
    pub async fn fill_in(&self, c: &cid::Cid, bytes: &[u8]) -> Result<(), ConsensusError> {
        let (node, delta) = decode_block(c, bytes)?;
        let _w = self.writer.lock().await;
        let mut tx = self.write_tx().await?;
        let me = c.to_string();
        sqlx::query(
            "UPDATE crdt_blocks SET data = ?, height = ? WHERE cid = ? AND length(data) = 0",
        )
        .bind(bytes)
        .bind(prio(delta.priority))
        .bind(&me)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        for l in &node.links {
            sqlx::query(
                "INSERT INTO crdt_links (child, parent) VALUES (?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(l.to_string())
            .bind(&me)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        }
        tx.commit().await.map_err(storage)?;
        Ok(())
    }

    /// A write transaction, holding SQLite's write lock from its start: one that read first
    /// (a deferred `BEGIN`) could find, when it comes to write, that another connection
    /// wrote since its read (a checkpoint's chunks, a failed fetch counted), and fail with
    /// "database is locked" instead of waiting.
    pub(super) async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>, ConsensusError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(storage)
    }

    /// The read-only pool (a checkpoint is read from one snapshot of the database).
    pub(super) fn readers(&self) -> &SqlitePool {
        &self.readers
    }

    /// Holds the writers off (a checkpoint is loaded in one transaction of its own).
    pub(super) async fn write_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writer.lock().await
    }

    /// Tells the pinset's readers that it was replaced whole.
    pub(super) async fn tell_reset(&self) {
        self.changes.send(StateChange::Reset).await;
    }

    /// Up to `limit` blocks this peer wants (named by a stored block, not stored), those
    /// tried least first.
    pub async fn wanted(&self, limit: usize) -> Result<Vec<cid::Cid>, ConsensusError> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT cid FROM crdt_wanted ORDER BY tries, cid LIMIT ?")
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .map_err(storage)?;
        Ok(parse_cids(&rows))
    }

    /// How many blocks are wanted (0: this peer holds every block its heads descend from).
    pub async fn wanted_count(&self) -> Result<u64, ConsensusError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM crdt_wanted")
            .fetch_one(&self.pool)
            .await
            .map_err(storage)?;
        Ok(n as u64)
    }

    /// Whether any block is wanted.
    pub async fn wants_any(&self) -> Result<bool, ConsensusError> {
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM crdt_wanted)")
            .fetch_one(&self.pool)
            .await
            .map_err(storage)?;
        Ok(any)
    }

    /// Stops wanting `c`: its bytes are the block but not a delta's node (a peer wrote
    /// garbage), so no fetch will ever make it applicable.
    pub async fn unwant(&self, c: &cid::Cid) -> Result<(), ConsensusError> {
        sqlx::query("DELETE FROM crdt_wanted WHERE cid = ?")
            .bind(c.to_string())
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(())
    }

    /// Whether a wanted block has failed to come `tries` times or more (no peer asked gives
    /// it: its bytes may have been dropped everywhere, below a checkpoint).
    pub async fn stuck(&self, tries: u32) -> Result<bool, ConsensusError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM crdt_wanted WHERE tries >= ?)")
            .bind(i64::from(tries))
            .fetch_one(&self.pool)
            .await
            .map_err(storage)
    }

    /// Records that fetching `c` failed once more (it goes behind those tried less).
    pub async fn fetch_failed(&self, c: &cid::Cid) -> Result<(), ConsensusError> {
        sqlx::query("UPDATE crdt_wanted SET tries = tries + 1 WHERE cid = ?")
            .bind(c.to_string())
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(())
    }

    /// Wants `c` (a head another peer announced) unless it is stored already; whether this
    /// peer lacks it (newly wanted, or wanted already: either way worth a fetch now that a
    /// peer says it has it).
    pub async fn want(&self, c: &cid::Cid) -> Result<bool, ConsensusError> {
        let _w = self.writer.lock().await;
        if self.has_block(c).await? {
            return Ok(false);
        }
        sqlx::query("INSERT INTO crdt_wanted (cid) VALUES (?) ON CONFLICT(cid) DO NOTHING")
            .bind(c.to_string())
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(true)
    }

    /// The tombstones that remove `key` as this peer sees it: one for each of its live
    /// elements (none when it is not in the set). Elements added meanwhile elsewhere are not
    /// among them, and survive (add wins).
    pub async fn tombstones(&self, key: &str) -> Result<Vec<Element>, ConsensusError> {
        let blocks: Vec<String> = sqlx::query_scalar("SELECT block FROM crdt_elems WHERE key = ?")
            .bind(key)
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?;
        Ok(blocks
            .into_iter()
            .map(|id| Element {
                key: key.to_string(),
                id,
                value: Vec::new(),
            })
            .collect())
    }

    /// Makes `delta` this peer's next block: a node linking to every head, of priority one
    /// more than the highest; stored and applied at once. Returns its CID (to announce);
    /// `None` for an empty delta, which changes nothing.
    pub async fn publish(&self, delta: Delta) -> Result<Option<cid::Cid>, ConsensusError> {
        if delta.is_empty() {
            return Ok(None);
        }
        let _w = self.writer.lock().await;
        let mut tx = self.write_tx().await?;
        let (c, changes) = publish_in(&mut tx, delta).await.map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        self.tell(changes).await;
        Ok(Some(c))
    }

    /// Stores a block another peer sent, named `c`: checked against its CID, decoded,
    /// stored and its delta applied, in one transaction. Bytes that are not the block `c`
    /// names, or not a delta's node, are refused and change nothing.
    pub async fn put_block(&self, c: &cid::Cid, bytes: &[u8]) -> Result<Stored, ConsensusError> {
        let (node, delta) = decode_block(c, bytes)?;
        let _w = self.writer.lock().await;
        if self.has_block(c).await? {
            return Ok(Stored::default());
        }
        let mut tx = self.write_tx().await?;
        let mut wanted = Vec::new();
        for l in &node.links {
            let have: Option<i64> = sqlx::query_scalar("SELECT 1 FROM crdt_blocks WHERE cid = ?")
                .bind(l.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(storage)?;
            if have.is_none() {
                wanted.push(*l);
            }
        }
        let changes = store_block(&mut tx, c, bytes, &node, &delta)
            .await
            .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        self.tell(changes).await;
        Ok(Stored { new: true, wanted })
    }

    /// Queues a write for the next batch (`value`: the pin's bytes; `None`: a remove of
    /// `key`), durably: once this returns, the write survives a crash and goes out with the
    /// next batch. Returns how many writes the batch holds.
    pub async fn queue(&self, key: &str, value: Option<&[u8]>) -> Result<u64, ConsensusError> {
        let _w = self.writer.lock().await;
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO crdt_batch (key, value) VALUES (?, ?)")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM crdt_batch")
            .fetch_one(&mut *tx)
            .await
            .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(n as u64)
    }

    /// How many writes wait in the batch.
    pub async fn queued(&self) -> Result<u64, ConsensusError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM crdt_batch")
            .fetch_one(&self.pool)
            .await
            .map_err(storage)?;
        Ok(n as u64)
    }

    /// Publishes the batch as one block (its writes in order: a key's last add is its
    /// element, a remove tombstones what was live when the batch is published and drops the
    /// key's earlier adds in the batch) and empties it, in one transaction: a crash leaves
    /// either the batch or its block. Returns the block's CID (`None`: nothing to publish).
    pub async fn flush(&self) -> Result<Option<cid::Cid>, ConsensusError> {
        let _w = self.writer.lock().await;
        let mut tx = self.write_tx().await?;
        let rows: Vec<(i64, String, Option<Vec<u8>>)> =
            sqlx::query_as("SELECT seq, key, value FROM crdt_batch ORDER BY seq")
                .fetch_all(&mut *tx)
                .await
                .map_err(storage)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let last = rows.last().map_or(0, |r| r.0);
        let mut elements: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut removed: Vec<String> = Vec::new();
        for (_, key, value) in rows {
            match value {
                Some(v) => {
                    elements.insert(key, v);
                }
                None => {
                    elements.remove(&key);
                    if !removed.contains(&key) {
                        removed.push(key);
                    }
                }
            }
        }
        let mut delta = Delta::default();
        for key in removed {
            let blocks: Vec<String> =
                sqlx::query_scalar("SELECT block FROM crdt_elems WHERE key = ?")
                    .bind(&key)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(storage)?;
            delta
                .tombstones
                .extend(blocks.into_iter().map(|id| Element {
                    key: key.clone(),
                    id,
                    value: Vec::new(),
                }));
        }
        delta.elements = elements
            .into_iter()
            .map(|(key, value)| Element {
                key,
                id: String::new(),
                value,
            })
            .collect();
        sqlx::query("DELETE FROM crdt_batch WHERE seq <= ?")
            .bind(last)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        if delta.is_empty() {
            tx.commit().await.map_err(storage)?;
            return Ok(None);
        }
        let (c, changes) = publish_in(&mut tx, delta).await.map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        self.tell(changes).await;
        Ok(Some(c))
    }

    async fn tell(&self, changes: Vec<StateChange>) {
        for c in changes {
            self.changes.send(c).await;
        }
    }
}

/// CIDs as the tables keep them (text; a row that is not one is skipped).
fn parse_cids(rows: &[String]) -> Vec<cid::Cid> {
    rows.iter()
        .filter_map(|c| cid::Cid::from_str(c).ok())
        .collect()
}

/// Block `c`'s node and delta, once its bytes are checked against `c`; bytes that are not
/// the block `c` names, or not a delta's node, are bad input.
fn decode_block(c: &cid::Cid, bytes: &[u8]) -> Result<(Node, Delta), ConsensusError> {
    wire::verify_block(c, bytes).map_err(|e| ConsensusError::BadInput(e.0))?;
    let node = Node::from_bytes(bytes).map_err(|e| ConsensusError::BadInput(e.0))?;
    let delta = Delta::from_bytes(&node.data).map_err(|e| ConsensusError::BadInput(e.0))?;
    Ok((node, delta))
}

async fn heads<'e>(
    exec: impl sqlx::SqliteExecutor<'e>,
) -> Result<(Vec<cid::Cid>, u64), sqlx::Error> {
    let rows = sqlx::query("SELECT cid, height FROM crdt_heads")
        .fetch_all(exec)
        .await?;
    let mut max = 0u64;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let h: i64 = r.get(1);
        max = max.max(h.max(0) as u64);
        if let Ok(c) = cid::Cid::from_str(r.get::<&str, _>(0)) {
            out.push(c);
        }
    }
    Ok((out, max))
}

/// Makes `delta` a block over the current heads (priority one more than the highest), then
/// stores and applies it; within the caller's transaction.
async fn publish_in(
    tx: &mut Transaction<'_, Sqlite>,
    mut delta: Delta,
) -> Result<(cid::Cid, Vec<StateChange>), sqlx::Error> {
    let (mut heads, height) = heads(&mut **tx).await?;
    heads.sort_by_key(|c| c.to_bytes());
    delta.priority = height + 1;
    let (c, bytes) = wire::delta_block(&delta, &heads);
    let node = Node {
        links: heads,
        data: Vec::new(),
    };
    let changes = store_block(tx, &c, &bytes, &node, &delta).await?;
    Ok((c, changes))
}

/// Stores block `c` (whose links are `node.links`), applies `delta`, and keeps the heads and
/// the wanted blocks true; returns what the pinset gained and lost. Within the caller's
/// transaction.
async fn store_block(
    tx: &mut Transaction<'_, Sqlite>,
    c: &cid::Cid,
    bytes: &[u8],
    node: &Node,
    delta: &Delta,
) -> Result<Vec<StateChange>, sqlx::Error> {
    let me = c.to_string();
    sqlx::query("INSERT INTO crdt_blocks (cid, height, data) VALUES (?, ?, ?)")
        .bind(&me)
        .bind(prio(delta.priority))
        .bind(bytes)
        .execute(&mut **tx)
        .await?;
    for l in &node.links {
        let child = l.to_string();
        sqlx::query("INSERT INTO crdt_links (child, parent) VALUES (?, ?) ON CONFLICT DO NOTHING")
            .bind(&child)
            .bind(&me)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM crdt_heads WHERE cid = ?")
            .bind(&child)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO crdt_wanted (cid) SELECT ?1 WHERE NOT EXISTS \
             (SELECT 1 FROM crdt_blocks WHERE cid = ?1) ON CONFLICT(cid) DO NOTHING",
        )
        .bind(&child)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("DELETE FROM crdt_wanted WHERE cid = ?")
        .bind(&me)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO crdt_heads (cid, height) SELECT ?1, ?2 WHERE NOT EXISTS \
         (SELECT 1 FROM crdt_links WHERE child = ?1)",
    )
    .bind(&me)
    .bind(prio(delta.priority))
    .execute(&mut **tx)
    .await?;
    merge(tx, delta, &wire::block_id(c)).await
}

/// Applies `delta` (carried by the block whose id is `id`) to the set, tombstones first as
/// go-ds-crdt does, then writes each key whose value changed to the `pins` table.
async fn merge(
    tx: &mut Transaction<'_, Sqlite>,
    delta: &Delta,
    id: &str,
) -> Result<Vec<StateChange>, sqlx::Error> {
    // The value each touched key had before this delta.
    let mut before: BTreeMap<&str, Best> = BTreeMap::new();
    for t in &delta.tombstones {
        if !before.contains_key(t.key.as_str()) {
            before.insert(&t.key, best(tx, &t.key).await?);
        }
        sqlx::query("INSERT INTO crdt_tombs (key, block) VALUES (?, ?) ON CONFLICT DO NOTHING")
            .bind(&t.key)
            .bind(&t.id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM crdt_elems WHERE key = ? AND block = ?")
            .bind(&t.key)
            .bind(&t.id)
            .execute(&mut **tx)
            .await?;
    }
    let p = prio(delta.priority);
    for e in &delta.elements {
        if !before.contains_key(e.key.as_str()) {
            before.insert(&e.key, best(tx, &e.key).await?);
        }
        // An element whose tombstone came first stays removed; within one delta the
        // greatest value of a key is its element (go-ds-crdt keeps the greatest).
        sqlx::query(
            "INSERT INTO crdt_elems (key, block, prio, value) SELECT ?1, ?2, ?3, ?4 \
             WHERE NOT EXISTS (SELECT 1 FROM crdt_tombs WHERE key = ?1 AND block = ?2) \
             ON CONFLICT(key, block) DO UPDATE SET value = excluded.value \
             WHERE excluded.value > crdt_elems.value",
        )
        .bind(&e.key)
        .bind(id)
        .bind(p)
        .bind(&e.value)
        .execute(&mut **tx)
        .await?;
    }
    let mut changes = Vec::new();
    for (key, was) in before {
        let now = best(tx, key).await?;
        if now != was {
            if let Some(change) =
                write_pin(tx, key, now.as_ref().map(|(_, v)| v.as_slice())).await?
            {
                changes.push(change);
            }
        }
    }
    Ok(changes)
}

/// Writes key `key`'s value as its live elements now make it to the `pins` table (a
/// checkpoint merged into a set: what its elements and tombstones made of each key).
pub(super) async fn rewrite_pin(
    tx: &mut Transaction<'_, Sqlite>,
    key: &str,
) -> Result<(), sqlx::Error> {
    let now = best(tx, key).await?;
    write_pin(tx, key, now.as_ref().map(|(_, v)| v.as_slice())).await?;
    Ok(())
}

/// Writes key `key`'s new value to the `pins` table (`None`: it left the set). A key that
/// names no CID, or a value that is not a pin of that CID, is no pin: the set keeps it (every
/// peer agrees on it), the pinset does not.
async fn write_pin(
    tx: &mut Transaction<'_, Sqlite>,
    key: &str,
    value: Option<&[u8]>,
) -> Result<Option<StateChange>, sqlx::Error> {
    let Some(cid) = wire::key_cid(key) else {
        tracing::debug!(key, "CRDT key names no CID: not a pin");
        return Ok(None);
    };
    let pin: Option<Pin> = value.and_then(|v| match wire::pin_from_bytes(v) {
        Ok(p) if p.cid.0.to_bytes() == cid.0.to_bytes() => Some(p),
        Ok(p) => {
            tracing::warn!(%cid, other = %p.cid, "CRDT value of one CID names another: not a pin");
            None
        }
        Err(e) => {
            tracing::warn!(%cid, error = %e, "CRDT value is not a pin");
            None
        }
    });
    match pin {
        Some(pin) => {
            let text = serde_json::to_string(&pin).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            sqlx::query(
                "INSERT INTO pins (cid, pin, fmt) VALUES (?, ?, ?) \
                 ON CONFLICT(cid) DO UPDATE SET pin = excluded.pin, fmt = excluded.fmt",
            )
            .bind(cid.to_string())
            .bind(text)
            .bind(store::PIN_FORMAT)
            .execute(&mut **tx)
            .await?;
            Ok(Some(StateChange::Pinned(pin)))
        }
        None => {
            let gone = sqlx::query("DELETE FROM pins WHERE cid = ?")
                .bind(cid.to_string())
                .execute(&mut **tx)
                .await?;
            Ok((gone.rows_affected() > 0).then_some(StateChange::Unpinned(cid)))
        }
    }
}

#[cfg(test)]
mod tests;
