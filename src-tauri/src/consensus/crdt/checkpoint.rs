//! Checkpoints: the CRDT's set at a frontier of its DAG, so that a new peer loads the set and
//! fetches only the deltas after it. IPFS Cluster's DAG only grows and a new peer walks all
//! of it, one block after the other (a day for a 50-million-pin cluster); compacting it there
//! needs the whole cluster stopped.
//!
//! **What a checkpoint holds, and why.** A trusted peer makes one from one snapshot of its
//! database, only while it wants no block (so what it holds is every ancestor of its heads):
//! - its heads F, with their heights: the loading peer's heads (what its next delta links to,
//!   and its priority);
//! - every block it holds ("covered"): a later block linking to one of them (a delta made
//!   concurrently, from a peer back from a partition) is not fetched again, the walk stops;
//! - every live element with the block that added it and its priority, not only each key's
//!   winner: a tombstone made concurrently elsewhere may name one of a key's elements and
//!   not the other;
//! - every tombstone: an element of a block not covered that a covered block removes stays
//!   removed when it arrives.
//!
//! Loaded into a store holding no block, that is the state of applying every covered block;
//! what comes after merges as usual (the set's merge is a union: commutative, idempotent).
//!
//! **Trust and integrity.** The manifest (heads, counts, the chunks' CIDs) is signed with the
//! publisher's libp2p key; a peer loads only a checkpoint of its own cluster (topic) signed
//! by a peer it names (in `trusted_peers`, or by bootstrapping from it: never "anyone", as
//! `"*"` would have it — a checkpoint that leaves pins out keeps them from every peer that
//! loads it, for good, where a bad delta reaches all peers alike), each chunk matching its
//! CID, and whose manifest adds up (heads, their heights above every element's priority,
//! the counts of what the chunks hold). It is offered in the publisher's broadcasts
//! ([`super::wire::Broadcast`]'s field 15) and fetched over Bitswap as any block: raw
//! blocks, chunks of about 1 MiB.
//!
//! **Resumable, never half applied.** The loading peer records the checkpoint it loads (in
//! `kv`) and keeps each chunk as it arrives; after a restart it fetches only those it lacks.
//! The set is written in one transaction once every chunk is in.
//!
//! **The history is kept.** Go peers cannot read checkpoints, and a peer that loaded an
//! older checkpoint may need blocks below a newer one: so a peer that loaded a checkpoint
//! fills in the bytes of the blocks it covers afterwards ([`fill_in_history`], once nothing
//! else is wanted), and every peer of this project gives the whole DAG on — unless the
//! cluster drops old deltas (`crdt.drop_old_deltas`, for clusters of this project's peers
//! only).
//!
//! **Dropping old deltas.** Once every trusted writer is heard announcing heads above this
//! peer's checkpoint ([`reached_by`]: every writer holds all it covers, and none will ask for
//! it), the bytes of the blocks it covers are dropped ([`drop_covered`]; a follower, which
//! makes no checkpoint, drops below the newest one offered: [`drop_below`]); their CIDs
//! stay, so a late delta linking below them stops there. A peer that lacks them loads the checkpoint
//! (holding no block) or merges it into what it holds ([`begin_merge`]): the set's merge is
//! a union, so a checkpoint merged into a set is that set with every covered block applied.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use cid::multihash::Multihash;
use futures::stream::{self, StreamExt, TryStreamExt};
use libp2p_identity::{Keypair, PeerId, PublicKey};
use prost::Message;
use sha2::Digest;
use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::store::{storage, CrdtStore};
use super::sync::BlockSource;
use super::wire;
use crate::components::ConsensusError;
use crate::consensus::store as pins_store;

/// The raw codec, as CIDs name it: a checkpoint's blocks are bytes, not dag-pb nodes.
const RAW: u64 = 0x55;
/// A chunk is cut once it holds about this many bytes (Bitswap carries up to 4 MiB).
pub const CHUNK_BYTES: usize = 1 << 20;
/// Chunks fetched at once.
const FETCHING: usize = 8;
/// Rows per `INSERT` when a checkpoint is written.
const ROWS: usize = 500;
/// What the signature covers: this prefix, then the manifest's bytes (a signature made for
/// anything else never passes as a checkpoint's).
const SIGNING: &[u8] = b"ipfs-cluster-desktop/crdt-checkpoint/1\n";
/// `kv`: the checkpoint this peer made or loaded (offered in its broadcasts).
const CURRENT: &str = "crdt_checkpoint";
/// `kv`: how many blocks the peer held when it made or loaded [`CURRENT`].
const BLOCKS_AT: &str = "crdt_checkpoint_blocks";
/// `kv`: the checkpoint being loaded (a restart resumes it).
const LOADING: &str = "crdt_checkpoint_loading";
/// `kv`: the peer that signed the checkpoint being loaded, accepted when the load began (a
/// restart without `--bootstrap` resumes it all the same).
const LOADING_SIGNER: &str = "crdt_checkpoint_loading_signer";
/// `kv`: set while the checkpoint being loaded is merged into a set holding blocks (a peer
/// wanting blocks no peer gives any more), so that a restart resumes the merge.
const MERGING: &str = "crdt_checkpoint_merging";
/// `kv`: the last checkpoint merged (not merged again).
const MERGED: &str = "crdt_checkpoint_merged";
/// `kv`: the last row of `crdt_blocks` whose bytes were dropped (`crdt.drop_old_deltas`).
const DROPPED_AT: &str = "crdt_dropped_at";
/// Rows of `crdt_blocks` whose bytes are dropped in one transaction.
const DROP_ROWS: i64 = 5_000;
/// A record larger than this is not put in a checkpoint (a chunk must fit in a Bitswap
/// message): no checkpoint is made.
const MAX_RECORD: usize = 3 << 20;

/// What forgets every checkpoint (a `state import` replaces the DAG they were made from).
pub const FORGET: [&str; 2] = [
    "DELETE FROM crdt_ckpt_blocks",
    "DELETE FROM kv WHERE key IN ('crdt_checkpoint', 'crdt_checkpoint_blocks', \
     'crdt_checkpoint_loading', 'crdt_checkpoint_loading_signer', 'crdt_checkpoint_merging', \
     'crdt_checkpoint_merged', 'crdt_dropped_at')",
];

/// The signed manifest: the block a checkpoint's CID names.
#[derive(Clone, PartialEq, Message)]
pub struct Signed {
    #[prost(bytes = "vec", tag = "1")]
    pub manifest: Vec<u8>,
    /// The signer's public key (protobuf, as libp2p encodes it): its peer id is derived.
    #[prost(bytes = "vec", tag = "2")]
    pub public_key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub signature: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Manifest {
    /// The cluster's topic ([`wire::topic`]): a checkpoint of another cluster is refused.
    #[prost(string, tag = "1")]
    pub topic: String,
    #[prost(message, repeated, tag = "2")]
    pub heads: Vec<Head>,
    #[prost(uint64, tag = "3")]
    pub blocks: u64,
    #[prost(uint64, tag = "4")]
    pub elems: u64,
    #[prost(uint64, tag = "5")]
    pub tombs: u64,
    /// The chunks' CIDs, in the order they are applied.
    #[prost(bytes = "vec", repeated, tag = "6")]
    pub chunks: Vec<Vec<u8>>,
    /// When it was made (seconds since the epoch; for people, never compared).
    #[prost(uint64, tag = "7")]
    pub made_at: u64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Head {
    #[prost(bytes = "vec", tag = "1")]
    pub cid: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub height: u64,
}

/// Part of a checkpoint. Elements come by key, then priority and value from the highest
/// (a key's first element is its value), across chunks.
#[derive(Clone, PartialEq, Message)]
pub struct Chunk {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub covered: Vec<Vec<u8>>,
    /// The ids of the blocks that added this chunk's elements (named by index).
    #[prost(string, repeated, tag = "2")]
    pub ids: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    pub elems: Vec<Elem>,
    #[prost(message, repeated, tag = "4")]
    pub tombs: Vec<Tomb>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Elem {
    #[prost(string, tag = "1")]
    pub key: String,
    /// Index into [`Chunk::ids`].
    #[prost(uint32, tag = "2")]
    pub id: u32,
    #[prost(uint64, tag = "3")]
    pub prio: u64,
    #[prost(bytes = "vec", tag = "4")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Tomb {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub id: String,
}

/// The CIDv1 (raw, sha2-256) of a checkpoint's block.
pub fn raw_cid(bytes: &[u8]) -> cid::Cid {
    let digest = sha2::Sha256::digest(bytes);
    let mh = Multihash::<64>::wrap(0x12, &digest).expect("a sha2-256 digest fits");
    cid::Cid::new_v1(RAW, mh)
}

/// Why a checkpoint was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Some of it could not be had now: what was had is kept, the rest is asked again.
    #[error("checkpoint incomplete: {0}")]
    Fetch(String),
    /// It is not one to load (not signed by a trusted peer, of another cluster, unreadable):
    /// given up, the peer syncs deltas instead.
    #[error("checkpoint refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Storage(#[from] ConsensusError),
}

/// A checkpoint made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub cid: cid::Cid,
    pub blocks: u64,
    pub elems: u64,
    pub chunks: usize,
}

/// What loading a checkpoint did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// The set is the checkpoint's: `pins` keys, `blocks` covered.
    Applied { pins: u64, blocks: u64 },
    /// The peer held blocks by the time every chunk was in: it syncs deltas instead.
    NotEmpty,
    /// Merged into the set this peer held ([`begin_merge`]): `keys` keys rewritten.
    Merged { keys: u64 },
    /// Not merged: it covers none of the blocks this peer wants (not tried again).
    Unneeded,
}

async fn kv_text(store: &CrdtStore, key: &str) -> Result<Option<String>, ConsensusError> {
    pins_store::kv_get(store.pool(), key).await.map_err(storage)
}

async fn kv_cid(store: &CrdtStore, key: &str) -> Result<Option<cid::Cid>, ConsensusError> {
    Ok(kv_text(store, key)
        .await?
        .and_then(|c| cid::Cid::from_str(&c).ok()))
}

/// The checkpoint this peer made or loaded last (what its broadcasts offer).
pub async fn current(store: &CrdtStore) -> Result<Option<cid::Cid>, ConsensusError> {
    kv_cid(store, CURRENT).await
}

/// The checkpoint this peer was loading when it stopped (resumed at start).
pub async fn loading(store: &CrdtStore) -> Result<Option<cid::Cid>, ConsensusError> {
    kv_cid(store, LOADING).await
}

/// The newest block's row: blocks are never deleted, so rows since a mark are blocks stored
/// since (one index read, where counting the table would read it all).
async fn last_block_row<'e>(exec: impl sqlx::SqliteExecutor<'e>) -> Result<i64, ConsensusError> {
    let n: Option<i64> = sqlx::query_scalar("SELECT MAX(rowid) FROM crdt_blocks")
        .fetch_one(exec)
        .await
        .map_err(storage)?;
    Ok(n.unwrap_or(0))
}

/// Whether this peer, whose pinset holds `pins` pins, holds enough blocks beyond those of
/// its last checkpoint to make another: `every`, or one per 2,000 pins if more (a
/// checkpoint costs a copy of the set: a large set is copied less often).
pub async fn due(store: &CrdtStore, every: u64, pins: u64) -> Result<bool, ConsensusError> {
    let at: i64 = pins_store::kv_get(store.pool(), BLOCKS_AT)
        .await
        .map_err(storage)?
        .unwrap_or(0);
    let since = last_block_row(store.pool())
        .await?
        .saturating_sub(at)
        .max(0) as u64;
    Ok(since >= every.max(pins / 2000))
}

async fn ckpt_block(store: &CrdtStore, c: &cid::Cid) -> Result<Option<Vec<u8>>, ConsensusError> {
    sqlx::query_scalar("SELECT data FROM crdt_ckpt_blocks WHERE cid = ?")
        .bind(c.to_string())
        .fetch_optional(store.pool())
        .await
        .map_err(storage)
}

async fn put_ckpt_block(
    store: &CrdtStore,
    c: &cid::Cid,
    bytes: &[u8],
) -> Result<(), ConsensusError> {
    sqlx::query("INSERT INTO crdt_ckpt_blocks (cid, data) VALUES (?, ?) ON CONFLICT DO NOTHING")
        .bind(c.to_string())
        .bind(bytes)
        .execute(store.pool())
        .await
        .map_err(storage)?;
    Ok(())
}

/// Whose checkpoints a peer loads (those whose deltas it applies).
pub type Trusted<'a> = dyn Fn(&PeerId) -> bool + Send + Sync + 'a;

/// Reads and checks a signed manifest: of `topic`, signed by a peer `trusted` accepts.
/// Returns it and its signer.
pub fn open_manifest(
    bytes: &[u8],
    topic: &str,
    trusted: &Trusted<'_>,
) -> Result<(Manifest, PeerId), LoadError> {
    let refused = LoadError::Refused;
    let signed = Signed::decode(bytes).map_err(|e| refused(format!("not a checkpoint: {e}")))?;
    let key = PublicKey::try_decode_protobuf(&signed.public_key)
        .map_err(|e| refused(format!("its signer's key is unreadable: {e}")))?;
    let signer = key.to_peer_id();
    if !key.verify(&[SIGNING, &signed.manifest].concat(), &signed.signature) {
        return Err(refused(format!(
            "its signature (by {signer}) does not verify"
        )));
    }
    if !trusted(&signer) {
        return Err(refused(format!(
            "signed by {signer}, a peer this one does not trust"
        )));
    }
    let m = Manifest::decode(signed.manifest.as_slice())
        .map_err(|e| refused(format!("its manifest is unreadable: {e}")))?;
    if m.topic != topic {
        return Err(refused(format!(
            "it is of another cluster (topic {})",
            m.topic
        )));
    }
    Ok((m, signer))
}

/// Cuts a checkpoint's records into chunks, each stored as it is cut.
struct Chunker<'a> {
    store: &'a CrdtStore,
    chunk: Chunk,
    ids: HashMap<String, u32>,
    size: usize,
    /// A chunk is cut once it holds this many bytes.
    cut_at: usize,
    cids: Vec<Vec<u8>>,
}

impl Chunker<'_> {
    fn id(&mut self, id: String) -> u32 {
        if let Some(&n) = self.ids.get(&id) {
            return n;
        }
        let n = self.chunk.ids.len() as u32;
        self.size += id.len() + 2;
        self.ids.insert(id.clone(), n);
        self.chunk.ids.push(id);
        n
    }

    /// Makes room for a record of `len` bytes: the chunk is cut first when the record would
    /// take it past its size. A record too large for any chunk makes no checkpoint.
    async fn room_for(&mut self, len: usize) -> Result<(), ConsensusError> {
        if len > MAX_RECORD {
            return Err(storage(format!(
                "a record of {len} bytes is too large for a checkpoint's chunk"
            )));
        }
        if self.size > 0 && self.size + len > self.cut_at {
            self.cut().await?;
        }
        Ok(())
    }

    async fn cut(&mut self) -> Result<(), ConsensusError> {
        if self.size == 0 {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.chunk).encode_to_vec();
        self.ids.clear();
        self.size = 0;
        let c = raw_cid(&bytes);
        put_ckpt_block(self.store, &c, &bytes).await?;
        self.cids.push(c.to_bytes());
        Ok(())
    }
}

/// Makes a checkpoint of this peer's set, signed with `key`, unless it wants blocks (what it
/// holds is then not every ancestor of its heads) or holds none. Its blocks are stored (and
/// served), it becomes [`current`], and the blocks of the one before are dropped.
pub async fn make(
    store: &CrdtStore,
    topic: &str,
    key: &Keypair,
) -> Result<Option<Made>, ConsensusError> {
    make_cut_at(store, topic, key, CHUNK_BYTES).await
}

/// [`make`] with chunks cut at `cut_at` bytes.
async fn make_cut_at(
    store: &CrdtStore,
    topic: &str,
    key: &Keypair,
    cut_at: usize,
) -> Result<Option<Made>, ConsensusError> {
    // What an earlier make cut short left.
    keep_only_current(store).await?;
    // One snapshot of the database for everything read (the writers go on meanwhile).
    let mut tx = store.readers().begin().await.map_err(storage)?;
    // A block a stored block links to and not stored: what this peer holds is not every
    // ancestor of its heads. (A head announced and not had yet is no such gap.)
    let wanting: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM crdt_wanted w JOIN crdt_links l ON l.child = w.cid)",
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(storage)?;
    let heads: Vec<(String, i64)> =
        sqlx::query_as("SELECT cid, height FROM crdt_heads ORDER BY cid")
            .fetch_all(&mut *tx)
            .await
            .map_err(storage)?;
    if wanting || heads.is_empty() {
        return Ok(None);
    }
    let blocks_at = last_block_row(&mut *tx).await?;
    let mut m = Manifest {
        topic: topic.to_string(),
        made_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        ..Manifest::default()
    };
    for (c, h) in heads {
        let c = cid::Cid::from_str(&c).map_err(storage)?;
        m.heads.push(Head {
            cid: c.to_bytes(),
            height: h.max(0) as u64,
        });
    }
    let mut ch = Chunker {
        store,
        chunk: Chunk::default(),
        ids: HashMap::new(),
        size: 0,
        cut_at,
        cids: Vec::new(),
    };
    {
        let mut rows =
            sqlx::query_scalar::<_, String>("SELECT cid FROM crdt_blocks").fetch(&mut *tx);
        while let Some(c) = rows.try_next().await.map_err(storage)? {
            let c = cid::Cid::from_str(&c).map_err(storage)?.to_bytes();
            ch.room_for(c.len() + 2).await?;
            ch.size += c.len() + 2;
            ch.chunk.covered.push(c);
            m.blocks += 1;
        }
    }
    {
        let mut rows = sqlx::query_as::<_, (String, String, i64, Vec<u8>)>(
            "SELECT key, block, prio, value FROM crdt_elems ORDER BY key, prio DESC, value DESC",
        )
        .fetch(&mut *tx);
        while let Some((key, block, prio, value)) = rows.try_next().await.map_err(storage)? {
            ch.room_for(key.len() + value.len() + block.len() + 18)
                .await?;
            let id = ch.id(block);
            ch.size += key.len() + value.len() + 16;
            ch.chunk.elems.push(Elem {
                key,
                id,
                prio: prio.max(0) as u64,
                value,
            });
            m.elems += 1;
        }
    }
    {
        let mut rows = sqlx::query_as::<_, (String, String)>("SELECT key, block FROM crdt_tombs")
            .fetch(&mut *tx);
        while let Some((key, id)) = rows.try_next().await.map_err(storage)? {
            ch.room_for(key.len() + id.len() + 6).await?;
            ch.size += key.len() + id.len() + 6;
            ch.chunk.tombs.push(Tomb { key, id });
            m.tombs += 1;
        }
    }
    tx.rollback().await.map_err(storage)?;
    ch.cut().await?;
    let chunks = ch.cids.len();
    m.chunks = ch.cids;
    let manifest = m.encode_to_vec();
    let signature = key
        .sign(&[SIGNING, &manifest].concat())
        .map_err(|e| storage(format!("signing a checkpoint: {e}")))?;
    let signed = Signed {
        manifest,
        public_key: key.public().encode_protobuf(),
        signature,
    }
    .encode_to_vec();
    let c = raw_cid(&signed);
    put_ckpt_block(store, &c, &signed).await?;
    let mut tx = store.write_tx().await?;
    record_current(&mut tx, &c, &blocks_at).await?;
    tx.commit().await.map_err(storage)?;
    keep_only_current(store).await?;
    Ok(Some(Made {
        cid: c,
        blocks: m.blocks,
        elems: m.elems,
        chunks,
    }))
}

/// The manifest of a signed checkpoint block this peer keeps (checked when it was kept;
/// `None`: unreadable).
fn manifest_of(bytes: &[u8]) -> Option<Manifest> {
    let signed = Signed::decode(bytes).ok()?;
    Manifest::decode(signed.manifest.as_slice()).ok()
}

/// Drops the checkpoint blocks that belong neither to [`current`] nor to the one [`loading`].
async fn keep_only_current(store: &CrdtStore) -> Result<(), ConsensusError> {
    let mut keep: HashSet<String> = HashSet::new();
    for c in [current(store).await?, loading(store).await?]
        .into_iter()
        .flatten()
    {
        keep.insert(c.to_string());
        let Some(bytes) = ckpt_block(store, &c).await? else {
            continue;
        };
        if let Some(m) = manifest_of(&bytes) {
            keep.extend(
                m.chunks
                    .iter()
                    .filter_map(|b| cid::Cid::try_from(b.as_slice()).ok())
                    .map(|c| c.to_string()),
            );
        }
    }
    let all: Vec<String> = sqlx::query_scalar("SELECT cid FROM crdt_ckpt_blocks")
        .fetch_all(store.pool())
        .await
        .map_err(storage)?;
    for c in all.into_iter().filter(|c| !keep.contains(c)) {
        sqlx::query("DELETE FROM crdt_ckpt_blocks WHERE cid = ?")
            .bind(c)
            .execute(store.pool())
            .await
            .map_err(storage)?;
    }
    Ok(())
}

/// Gives up loading (a checkpoint refused): its blocks are dropped.
pub async fn abandon(store: &CrdtStore) -> Result<(), ConsensusError> {
    for key in [LOADING, LOADING_SIGNER, MERGING] {
        pins_store::kv_delete(store.pool(), key)
            .await
            .map_err(storage)?;
    }
    keep_only_current(store).await
}

/// Gets checkpoint block `c`: kept already, or fetched from `source` within `timeout`,
/// checked against `c` and kept.
async fn get(
    store: &CrdtStore,
    source: &dyn BlockSource,
    c: &cid::Cid,
    timeout: Duration,
) -> Result<Vec<u8>, LoadError> {
    let (bytes, fetched) = kept_or_fetched(store, source, c, timeout).await?;
    if fetched {
        put_ckpt_block(store, c, &bytes).await?;
    }
    Ok(bytes)
}

/// Checkpoint block `c`: kept already, or fetched from `source` within `timeout` and checked
/// against `c` (then `true`: not kept by this).
async fn kept_or_fetched(
    store: &CrdtStore,
    source: &dyn BlockSource,
    c: &cid::Cid,
    timeout: Duration,
) -> Result<(Vec<u8>, bool), LoadError> {
    if let Some(b) = ckpt_block(store, c).await? {
        return Ok((b, false));
    }
    let bytes = tokio::time::timeout(timeout, source.get(c))
        .await
        .map_err(|_| LoadError::Fetch(format!("block {c}: no peer gave it within {timeout:?}")))?
        .map_err(|e| LoadError::Fetch(format!("block {c}: {e}")))?;
    wire::verify_block(c, &bytes).map_err(|e| LoadError::Fetch(e.0))?;
    Ok((bytes, true))
}

/// Whether the checkpoint being loaded ([`loading`]) is merged ([`begin_merge`]).
pub async fn merging(store: &CrdtStore) -> Result<bool, ConsensusError> {
    Ok(kv_text(store, MERGING).await?.is_some())
}

/// The last checkpoint merged into this peer's set ([`begin_merge`]).
pub async fn merged(store: &CrdtStore) -> Result<Option<cid::Cid>, ConsensusError> {
    kv_cid(store, MERGED).await
}

/// Makes checkpoint `c` the one to load, merged into the set this peer holds (a peer
/// wanting blocks that no peer gives any more, their bytes dropped below a checkpoint):
/// [`load`] then adds its blocks, elements and tombstones to what the peer holds (the set's
/// merge is a union, whatever the order) instead of refusing a store that holds blocks.
/// Kept across a restart, as any load.
pub async fn begin_merge(store: &CrdtStore, c: &cid::Cid) -> Result<(), ConsensusError> {
    start_loading(store, c, true).await
}

/// Records `c` as the checkpoint being loaded (a merge if `merge`; otherwise a merge begun
/// stays one), its signer to be accepted anew; the blocks of any other one go.
async fn start_loading(store: &CrdtStore, c: &cid::Cid, merge: bool) -> Result<(), ConsensusError> {
    let mut tx = store.write_tx().await?;
    pins_store::kv_put(&mut *tx, LOADING, &c.to_string())
        .await
        .map_err(storage)?;
    if merge {
        pins_store::kv_put(&mut *tx, MERGING, &c.to_string())
            .await
            .map_err(storage)?;
    }
    pins_store::kv_delete(&mut *tx, LOADING_SIGNER)
        .await
        .map_err(storage)?;
    tx.commit().await.map_err(storage)?;
    keep_only_current(store).await
}

/// Loads checkpoint `c` (of `topic`, signed by a peer `trusted` accepts) from `source` into
/// `store`, resuming with the chunks kept from before. The set is written in one
/// transaction once every chunk is in, and only into a store that holds no block, unless
/// the load is a merge ([`begin_merge`]).
pub async fn load(
    store: &CrdtStore,
    c: &cid::Cid,
    source: &dyn BlockSource,
    topic: &str,
    trusted: &Trusted<'_>,
    timeout: Duration,
) -> Result<Loaded, LoadError> {
    let merging = merging(store).await?;
    // A peer that holds blocks syncs deltas (checked before anything is fetched, and again
    // when the set is written), unless it merges.
    if !merging && store.holds_blocks().await? {
        abandon(store).await?;
        return Ok(Loaded::NotEmpty);
    }
    let accepted = if loading(store).await?.as_ref() == Some(c) {
        kv_text(store, LOADING_SIGNER).await?
    } else {
        // Another checkpoint than the one being loaded: the blocks of that one go.
        start_loading(store, c, false).await?;
        None
    };
    let signed = get(store, source, c, timeout).await?;
    let trusted_or_accepted =
        |p: &PeerId| trusted(p) || accepted.as_deref() == Some(p.to_string().as_str());
    let (m, signer) = open_manifest(&signed, topic, &trusted_or_accepted)?;
    if accepted.is_none() {
        let mut tx = store.write_tx().await?;
        pins_store::kv_put(&mut *tx, LOADING_SIGNER, &signer.to_string())
            .await
            .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
    }
    if m.heads.is_empty() {
        return Err(LoadError::Refused("it names no head".into()));
    }
    let chunks: Vec<cid::Cid> = m
        .chunks
        .iter()
        .map(|b| cid::Cid::try_from(b.as_slice()))
        .collect::<Result<_, _>>()
        .map_err(|e| LoadError::Refused(format!("a chunk is not named by a CID: {e}")))?;
    let mut missing = Vec::new();
    for ch in &chunks {
        if ckpt_block(store, ch).await?.is_none() {
            missing.push(*ch);
        }
    }
    let mut had = chunks.len() - missing.len();
    if had > 0 {
        tracing::info!(checkpoint = %c, had, of = chunks.len(), "CRDT checkpoint: chunks kept from before");
    }
    // Every chunk not kept yet, FETCHING at a time; those had are kept whatever else fails.
    let mut fetches = stream::iter(missing)
        .map(|ch| async move { get(store, source, &ch, timeout).await.map(|_| ()) })
        .buffer_unordered(FETCHING);
    let mut failed: Vec<String> = Vec::new();
    while let Some(r) = fetches.next().await {
        match r {
            Ok(()) => {
                had += 1;
                tracing::debug!(checkpoint = %c, had, of = chunks.len(), "CRDT checkpoint chunk kept");
            }
            Err(e) => failed.push(e.to_string()),
        }
    }
    drop(fetches);
    if let Some(first) = failed.first() {
        return Err(LoadError::Fetch(format!(
            "{} of {} chunks not had yet ({first})",
            failed.len(),
            chunks.len()
        )));
    }
    if merging && !covers_wanted(store, &chunks).await? {
        // Merging it would rewrite the whole set for nothing: not tried again.
        pins_store::kv_put(store.pool(), MERGED, &c.to_string())
            .await
            .map_err(storage)?;
        abandon(store).await?;
        return Ok(Loaded::Unneeded);
    }
    let _w = store.write_lock().await;
    let mut tx = store.write_tx().await?;
    let holds: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM crdt_blocks)")
        .fetch_one(&mut *tx)
        .await
        .map_err(storage)?;
    if holds && !merging {
        drop(tx);
        drop(_w);
        abandon(store).await?;
        return Ok(Loaded::NotEmpty);
    }
    let mut apply = Apply {
        merge: merging,
        ..Apply::default()
    };
    for ch in &chunks {
        let chunk = kept_chunk(&mut *tx, ch).await?;
        apply.chunk(&mut tx, chunk).await?;
    }
    for h in &m.heads {
        let head = cid::Cid::try_from(h.cid.as_slice())
            .map_err(|e| LoadError::Refused(format!("a head is not a CID: {e}")))?
            .to_string();
        let height = i64::try_from(h.height).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO crdt_blocks (cid, height, data) VALUES (?1, ?2, x'') \
             ON CONFLICT(cid) DO UPDATE SET height = ?2",
        )
        .bind(&head)
        .bind(height)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        // A head is one unless a block this peer holds links to it (merging).
        sqlx::query(
            "INSERT OR REPLACE INTO crdt_heads (cid, height) SELECT ?1, ?2 \
             WHERE NOT EXISTS (SELECT 1 FROM crdt_links WHERE child = ?1)",
        )
        .bind(&head)
        .bind(height)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
    }
    // What the manifest says, checked against what was written: a checkpoint that does not
    // add up is refused whole (the transaction is dropped).
    let max_head = m.heads.iter().map(|h| h.height).max().unwrap_or(0);
    if apply.max_prio > max_head {
        return Err(LoadError::Refused(format!(
            "an element has priority {} above its heads' {max_head}",
            apply.max_prio
        )));
    }
    if (apply.blocks, apply.elems, apply.tombs) != (m.blocks, m.elems, m.tombs) {
        return Err(LoadError::Refused(format!(
            "it holds {} blocks, {} elements and {} tombstones where its manifest says {}, {} \
             and {}",
            apply.blocks, apply.elems, apply.tombs, m.blocks, m.elems, m.tombs
        )));
    }
    let done = if merging {
        // The elements either side removed stay removed (the checkpoint's tombstones name
        // this peer's elements, and this peer's the checkpoint's), then every key the
        // checkpoint names is written to the pinset as its elements now make it.
        sqlx::query(
            "DELETE FROM crdt_elems WHERE EXISTS (SELECT 1 FROM crdt_tombs t \
             WHERE t.key = crdt_elems.key AND t.block = crdt_elems.block)",
        )
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        let mut keys = 0;
        for ch in &chunks {
            keys += rewrite_pins(&mut tx, ch).await?;
        }
        // What is still wanted is asked again afresh (not taken for stuck at once).
        sqlx::query("UPDATE crdt_wanted SET tries = 0")
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        pins_store::kv_put(&mut *tx, MERGED, &c.to_string())
            .await
            .map_err(storage)?;
        Loaded::Merged { keys }
    } else {
        let removed_yet_live: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM crdt_tombs t JOIN crdt_elems e \
             ON e.key = t.key AND e.block = t.block)",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(storage)?;
        if removed_yet_live {
            return Err(LoadError::Refused(
                "an element it holds live is also among its tombstones".into(),
            ));
        }
        let blocks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM crdt_blocks")
            .fetch_one(&mut *tx)
            .await
            .map_err(storage)?;
        let blocks_at = last_block_row(&mut *tx).await?;
        record_current(&mut tx, c, &blocks_at).await?;
        // What it covers came without bytes: nothing to drop below it.
        pins_store::kv_put(&mut *tx, DROPPED_AT, &blocks_at)
            .await
            .map_err(storage)?;
        Loaded::Applied {
            pins: apply.pins,
            blocks: blocks.max(0) as u64,
        }
    };
    sqlx::query("DELETE FROM crdt_wanted WHERE cid IN (SELECT cid FROM crdt_blocks)")
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
    for key in [LOADING, LOADING_SIGNER, MERGING] {
        pins_store::kv_delete(&mut *tx, key)
            .await
            .map_err(storage)?;
    }
    tx.commit().await.map_err(storage)?;
    drop(_w);
    store.tell_reset().await;
    keep_only_current(store).await?;
    tracing::debug!(%signer, checkpoint = %c, ?done, "CRDT checkpoint taken in");
    Ok(done)
}

/// Chunk `ch` of a checkpoint, kept, read through `exec` (in a load's transaction or not).
async fn kept_chunk<'e>(
    exec: impl sqlx::SqliteExecutor<'e>,
    ch: &cid::Cid,
) -> Result<Chunk, LoadError> {
    let bytes: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT data FROM crdt_ckpt_blocks WHERE cid = ?")
            .bind(ch.to_string())
            .fetch_optional(exec)
            .await
            .map_err(storage)?;
    let bytes = bytes.ok_or_else(|| LoadError::Fetch(format!("chunk {ch} is no longer kept")))?;
    Chunk::decode(bytes.as_slice())
        .map_err(|e| LoadError::Refused(format!("chunk {ch} is unreadable: {e}")))
}

/// Whether the checkpoint of `chunks` (kept) covers a block this peer wants.
async fn covers_wanted(store: &CrdtStore, chunks: &[cid::Cid]) -> Result<bool, LoadError> {
    for ch in chunks {
        let chunk = kept_chunk(store.pool(), ch).await?;
        for rows in chunk.covered.chunks(ROWS) {
            let cids: Vec<String> = rows
                .iter()
                .filter_map(|b| cid::Cid::try_from(b.as_slice()).ok())
                .map(|c| c.to_string())
                .collect();
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT EXISTS (SELECT 1 FROM crdt_wanted WHERE cid IN (",
            );
            let mut list = q.separated(", ");
            for c in &cids {
                list.push_bind(c.as_str());
            }
            q.push("))");
            let found: bool = q
                .build_query_scalar()
                .fetch_one(store.pool())
                .await
                .map_err(storage)?;
            if found {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Writes to the pinset each key chunk `ch` (kept) names, as its live elements make it now;
/// how many keys.
async fn rewrite_pins(tx: &mut Transaction<'_, Sqlite>, ch: &cid::Cid) -> Result<u64, LoadError> {
    let chunk = kept_chunk(&mut **tx, ch).await?;
    let mut n = 0;
    let mut last: Option<&str> = None;
    let keys = chunk.elems.iter().map(|e| e.key.as_str());
    for key in keys.chain(chunk.tombs.iter().map(|t| t.key.as_str())) {
        // A key's elements come together (a tombstone's key may come again: rewritten twice).
        if last == Some(key) {
            continue;
        }
        last = Some(key);
        super::store::rewrite_pin(tx, key).await.map_err(storage)?;
        n += 1;
    }
    Ok(n)
}

/// This peer's [`current`] checkpoint as the dropping of old deltas sees it: its heads, the
/// rows it covers and those dropped already, read together (a checkpoint made meanwhile is
/// another frontier: what was checked for one is never dropped for the next).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontier {
    pub heads: Vec<cid::Cid>,
    /// The rows of `crdt_blocks` up to this one are blocks the checkpoint covers.
    blocks_at: i64,
    /// The rows up to this one have had their bytes dropped.
    dropped_at: i64,
}

impl Frontier {
    /// Whether it covers blocks whose bytes are kept still.
    pub fn to_drop(&self) -> bool {
        self.dropped_at < self.blocks_at
    }
}

/// This peer's checkpoint, as [`Frontier`] (none without one).
pub async fn frontier(store: &CrdtStore) -> Result<Option<Frontier>, ConsensusError> {
    let mut tx = store.readers().begin().await.map_err(storage)?;
    let c: Option<String> = pins_store::kv_get(&mut *tx, CURRENT)
        .await
        .map_err(storage)?;
    let Some(c) = c.and_then(|c| cid::Cid::from_str(&c).ok()) else {
        return Ok(None);
    };
    let blocks_at: i64 = pins_store::kv_get(&mut *tx, BLOCKS_AT)
        .await
        .map_err(storage)?
        .unwrap_or(0);
    let dropped_at: i64 = pins_store::kv_get(&mut *tx, DROPPED_AT)
        .await
        .map_err(storage)?
        .unwrap_or(0);
    let bytes: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT data FROM crdt_ckpt_blocks WHERE cid = ?")
            .bind(c.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(storage)?;
    tx.rollback().await.map_err(storage)?;
    let m = bytes
        .as_deref()
        .and_then(manifest_of)
        .ok_or_else(|| storage(format!("checkpoint {c} kept is unreadable")))?;
    Ok(Some(Frontier {
        heads: m
            .heads
            .iter()
            .filter_map(|h| cid::Cid::try_from(h.cid.as_slice()).ok())
            .collect(),
        blocks_at,
        dropped_at,
    }))
}

/// Whether a peer whose heads are `heads` holds every block `frontier` covers: this peer
/// holds each of `heads`, and each block of `frontier` is one of them or below one (walked
/// up from the frontier through the links this peer holds: the blocks after it).
pub async fn reached_by(
    store: &CrdtStore,
    frontier: &[cid::Cid],
    heads: &[cid::Cid],
) -> Result<bool, ConsensusError> {
    if heads.is_empty() {
        return Ok(false);
    }
    let mut heads: Vec<String> = heads.iter().map(|c| c.to_string()).collect();
    heads.sort();
    heads.dedup();
    let list = serde_json::to_string(&heads).map_err(storage)?;
    let held: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM crdt_blocks WHERE cid IN (SELECT value FROM json_each(?))",
    )
    .bind(&list)
    .fetch_one(store.readers())
    .await
    .map_err(storage)?;
    if held != heads.len() as i64 {
        return Ok(false);
    }
    for f in frontier {
        let below: bool = sqlx::query_scalar(
            "WITH RECURSIVE above(cid) AS (SELECT ?1 UNION \
             SELECT l.parent FROM crdt_links l JOIN above a ON l.child = a.cid) \
             SELECT EXISTS (SELECT 1 FROM above WHERE cid IN (SELECT value FROM json_each(?2)))",
        )
        .bind(f.to_string())
        .bind(&list)
        .fetch_one(store.readers())
        .await
        .map_err(storage)?;
        if !below {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Drops the bytes of the blocks checkpoint `f` covers (the caller knows every writer
/// holds them: [`reached_by`]), a few thousand rows a transaction; how many. Their rows stay
/// (a block linking to one stops the walk there, as below a loaded checkpoint); a peer that
/// lacks them loads or merges the checkpoint instead. Never filled in again while
/// `crdt.drop_old_deltas` is on.
pub async fn drop_covered(store: &CrdtStore, f: &Frontier) -> Result<u64, ConsensusError> {
    let mut from = f.dropped_at;
    let mut dropped = 0;
    while from < f.blocks_at {
        let to = from.saturating_add(DROP_ROWS).min(f.blocks_at);
        let mut tx = store.write_tx().await?;
        let r = sqlx::query(
            "UPDATE crdt_blocks SET data = x'' WHERE rowid > ? AND rowid <= ? AND length(data) > 0",
        )
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        pins_store::kv_put(&mut *tx, DROPPED_AT, &to)
            .await
            .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        dropped += r.rows_affected();
        from = to;
    }
    Ok(dropped)
}

/// The heads of checkpoint `c`, offered by a peer (its signed manifest, kept or fetched
/// from `source` within `timeout`, checked as a load checks it: of `topic`, signed by a
/// peer `trusted` accepts). Nothing is kept.
pub async fn offered_heads(
    store: &CrdtStore,
    c: &cid::Cid,
    source: &dyn BlockSource,
    topic: &str,
    trusted: &Trusted<'_>,
    timeout: Duration,
) -> Result<Vec<cid::Cid>, LoadError> {
    let (bytes, _) = kept_or_fetched(store, source, c, timeout).await?;
    let (m, _) = open_manifest(&bytes, topic, trusted)?;
    m.heads
        .iter()
        .map(|h| cid::Cid::try_from(h.cid.as_slice()))
        .collect::<Result<_, _>>()
        .map_err(|e| LoadError::Refused(format!("a head is not a CID: {e}")))
}

/// Drops the bytes of the blocks of `frontier` and of every block below them that still
/// has its bytes, walking down the links each block's bytes name, a few thousand a
/// transaction; how many. The walk stops at a block without bytes (covered by a checkpoint
/// loaded, or dropped before: what is below it was too), so it visits only what it drops.
/// For a peer whose own checkpoint does not cover what it holds (a follower makes none):
/// the caller knows every writer holds all below `frontier`, and a trusted peer offers a
/// checkpoint of it.
pub async fn drop_below(store: &CrdtStore, frontier: &[cid::Cid]) -> Result<u64, ConsensusError> {
    let mut to_visit: Vec<String> = frontier.iter().map(|c| c.to_string()).collect();
    let mut dropped = 0;
    while !to_visit.is_empty() {
        let mut tx = store.write_tx().await?;
        let mut n = 0;
        while let Some(c) = to_visit.pop() {
            let data: Option<Vec<u8>> = sqlx::query_scalar(
                "SELECT data FROM crdt_blocks WHERE cid = ? AND length(data) > 0",
            )
            .bind(&c)
            .fetch_optional(&mut *tx)
            .await
            .map_err(storage)?;
            let Some(data) = data else {
                continue;
            };
            // Stored bytes were checked as a node when stored; unreadable ones end the walk.
            if let Ok(node) = wire::Node::from_bytes(&data) {
                to_visit.extend(node.links.iter().map(|l| l.to_string()));
            }
            sqlx::query("UPDATE crdt_blocks SET data = x'' WHERE cid = ?")
                .bind(&c)
                .execute(&mut *tx)
                .await
                .map_err(storage)?;
            n += 1;
            if n >= DROP_ROWS {
                break;
            }
        }
        tx.commit().await.map_err(storage)?;
        dropped += n as u64;
    }
    Ok(dropped)
}

/// What a pass of [`fill_in_history`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FilledIn {
    pub filled: u64,
    /// Blocks not had this pass (asked again at the next).
    pub missing: u64,
}

/// One pass over the blocks a loaded checkpoint covers whose bytes this peer lacks, fetching
/// them from `source`, `workers` at a time: once filled in, the peer gives the whole DAG to
/// peers that sync it from the start (IPFS Cluster's, those that do not load checkpoints,
/// and peers that loaded an older checkpoint than the blocks after it need). The set is not
/// touched: their deltas are in it already.
pub async fn fill_in_history(
    store: &CrdtStore,
    source: &dyn BlockSource,
    workers: usize,
    timeout: Duration,
) -> Result<FilledIn, ConsensusError> {
    let mut done = FilledIn::default();
    let mut after = String::new();
    loop {
        let batch = store.unfetched(&after, workers.max(1) * 4).await?;
        let Some(last) = batch.last() else {
            return Ok(done);
        };
        after = last.to_string();
        let mut fetches = stream::iter(batch)
            .map(|c| async move {
                let got = tokio::time::timeout(timeout, source.get(&c)).await;
                (c, got)
            })
            .buffer_unordered(workers.max(1));
        while let Some((c, got)) = fetches.next().await {
            match got {
                Ok(Ok(bytes)) => match store.fill_in(&c, &bytes).await {
                    Ok(()) => done.filled += 1,
                    Err(ConsensusError::BadInput(e)) => {
                        tracing::debug!(block = %c, error = %e, "CRDT block not usable");
                        done.missing += 1;
                    }
                    Err(e) => return Err(e),
                },
                _ => done.missing += 1,
            }
        }
    }
}

/// A checkpoint's chunks written in order (the last element seen carries over: a key's
/// elements may span two chunks).
#[derive(Default)]
struct Apply {
    /// Merged into a set holding blocks: the pinset is written once every chunk is in
    /// ([`rewrite_pins`]), and the heads the checkpoint covers stop being heads.
    merge: bool,
    last: Option<(String, u64, Vec<u8>)>,
    pins: u64,
    blocks: u64,
    elems: u64,
    tombs: u64,
    max_prio: u64,
}

impl Apply {
    async fn chunk(
        &mut self,
        tx: &mut Transaction<'_, Sqlite>,
        chunk: Chunk,
    ) -> Result<(), LoadError> {
        self.blocks += chunk.covered.len() as u64;
        self.elems += chunk.elems.len() as u64;
        self.tombs += chunk.tombs.len() as u64;
        for rows in chunk.covered.chunks(ROWS) {
            let cids: Vec<String> = rows
                .iter()
                .map(|b| cid::Cid::try_from(b.as_slice()).map(|c| c.to_string()))
                .collect::<Result<_, _>>()
                .map_err(|e| LoadError::Refused(format!("a covered block is not a CID: {e}")))?;
            let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO crdt_blocks (cid, height, data) ");
            q.push_values(&cids, |mut b, c| {
                b.push_bind(c.as_str()).push_bind(0i64).push_bind(&[][..]);
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut **tx).await.map_err(storage)?;
            if self.merge {
                let mut q = QueryBuilder::<Sqlite>::new("DELETE FROM crdt_heads WHERE cid IN (");
                let mut list = q.separated(", ");
                for c in &cids {
                    list.push_bind(c.as_str());
                }
                q.push(")");
                q.build().execute(&mut **tx).await.map_err(storage)?;
            }
        }
        // Each key's first element is its value: checked in order (a checkpoint out of
        // order would make the pinset disagree with the set).
        let mut pins: Vec<(String, String)> = Vec::new();
        for e in &chunk.elems {
            if chunk.ids.get(e.id as usize).is_none() {
                return Err(LoadError::Refused("an element names no block".into()));
            }
            self.max_prio = self.max_prio.max(e.prio);
            let first = match &self.last {
                None => true,
                Some((k, p, v)) if *k == e.key => {
                    if (e.prio, &e.value) > (*p, v) {
                        return Err(LoadError::Refused(format!(
                            "the elements of {} are out of order",
                            e.key
                        )));
                    }
                    false
                }
                Some((k, _, _)) if *k > e.key => {
                    return Err(LoadError::Refused(format!("{} comes out of order", e.key)))
                }
                Some(_) => true,
            };
            if first && !self.merge {
                if let Some(row) = pin_row(&e.key, &e.value) {
                    pins.push(row);
                }
            }
            self.last = Some((e.key.clone(), e.prio, e.value.clone()));
        }
        for rows in chunk.elems.chunks(ROWS) {
            let mut q =
                QueryBuilder::<Sqlite>::new("INSERT INTO crdt_elems (key, block, prio, value) ");
            q.push_values(rows, |mut b, e| {
                b.push_bind(e.key.as_str())
                    .push_bind(chunk.ids[e.id as usize].as_str())
                    .push_bind(i64::try_from(e.prio).unwrap_or(i64::MAX))
                    .push_bind(e.value.as_slice());
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut **tx).await.map_err(storage)?;
        }
        for rows in chunk.tombs.chunks(ROWS) {
            let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO crdt_tombs (key, block) ");
            q.push_values(rows, |mut b, t| {
                b.push_bind(t.key.as_str()).push_bind(t.id.as_str());
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut **tx).await.map_err(storage)?;
        }
        for rows in pins.chunks(ROWS) {
            let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO pins (cid, pin, fmt) ");
            q.push_values(rows, |mut b, (cid, text)| {
                b.push_bind(cid.as_str())
                    .push_bind(text.as_str())
                    .push_bind(pins_store::PIN_FORMAT);
            });
            q.push(" ON CONFLICT(cid) DO UPDATE SET pin = excluded.pin, fmt = excluded.fmt");
            q.build().execute(&mut **tx).await.map_err(storage)?;
        }
        self.pins += pins.len() as u64;
        Ok(())
    }
}

/// The `pins` row of key `key` whose value is `value` (`None`: not a pin, as
/// [`super::store`]'s `write_pin` decides).
fn pin_row(key: &str, value: &[u8]) -> Option<(String, String)> {
    let cid = wire::key_cid(key)?;
    let pin = wire::pin_from_bytes(value).ok()?;
    if pin.cid.0.to_bytes() != cid.0.to_bytes() {
        return None;
    }
    serde_json::to_string(&pin)
        .ok()
        .map(|text| (cid.to_string(), text))
}

/// Records `c` as this peer's checkpoint, made or loaded when the store's last block row was
/// `blocks_at` (what [`due`] counts from).
async fn record_current<T: serde::Serialize>(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    c: &cid::Cid,
    blocks_at: &T,
) -> Result<(), ConsensusError> {
    pins_store::kv_put(&mut **tx, CURRENT, &c.to_string())
        .await
        .map_err(storage)?;
    pins_store::kv_put(&mut **tx, BLOCKS_AT, blocks_at)
        .await
        .map_err(storage)
}

#[cfg(test)]
mod tests;
