-- The Merkle-CRDT consensus (`consensus: crdt`, `consensus/crdt/store.rs`); empty in a Raft
-- peer's database. Its pinset is the `pins` table, as Raft's.
-- Every block of the DAG this peer holds (its own deltas and those fetched): the dag-pb bytes,
-- and the delta's priority (height). A block is stored and its delta applied in one
-- transaction: a stored block is an applied one.
CREATE TABLE crdt_blocks (cid TEXT PRIMARY KEY, height INTEGER NOT NULL, data BLOB NOT NULL);
-- The DAG's edges among stored blocks (`parent` stored, `child` stored or wanted).
CREATE TABLE crdt_links (child TEXT NOT NULL, parent TEXT NOT NULL, PRIMARY KEY (child, parent)) WITHOUT ROWID;
-- The heads: stored blocks no stored block links to (what this peer's next delta links to).
CREATE TABLE crdt_heads (cid TEXT PRIMARY KEY, height INTEGER NOT NULL);
-- Blocks a stored block links to that are not stored yet: the sync's work, kept across
-- restarts (a sync resumes here; nothing is ever half applied).
CREATE TABLE crdt_wanted (cid TEXT PRIMARY KEY, tries INTEGER NOT NULL DEFAULT 0);
-- The elements alive (added and not tombstoned): key, the id of the block that added it,
-- the delta's priority and the value. The key's value is its element of highest priority,
-- then greatest value (go-ds-crdt's rule).
CREATE TABLE crdt_elems (key TEXT NOT NULL, block TEXT NOT NULL, prio INTEGER NOT NULL, value BLOB NOT NULL, PRIMARY KEY (key, block)) WITHOUT ROWID;
-- The tombstones: elements removed (kept, so that an element applied after its tombstone
-- stays removed).
CREATE TABLE crdt_tombs (key TEXT NOT NULL, block TEXT NOT NULL, PRIMARY KEY (key, block)) WITHOUT ROWID;
-- Writes acknowledged but not yet published (batching on): in order, kept across a crash and
-- published with the next batch. `value` NULL: a remove.
CREATE TABLE crdt_batch (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, value BLOB);
