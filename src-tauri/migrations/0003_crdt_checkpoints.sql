-- CRDT checkpoints (`consensus/crdt/checkpoint.rs`): the blocks of the checkpoint this peer
-- made or loaded (its signed manifest and its chunks, served to peers that load it), and
-- those of one being loaded (each chunk kept as it arrives: a load cut short resumes). Which
-- is which is in `kv` (`crdt_checkpoint`, `crdt_checkpoint_loading`).
-- A block of `crdt_blocks` whose `data` is empty is covered by a loaded checkpoint: its
-- delta is in the set, its bytes were never fetched (a block linking to it stops there).
CREATE TABLE crdt_ckpt_blocks (cid TEXT PRIMARY KEY, data BLOB NOT NULL);
-- The blocks a loaded checkpoint covers whose bytes are not fetched yet: the peer fills them
-- in afterwards, so that it can give the whole DAG to peers that sync it from the start.
CREATE INDEX crdt_blocks_unfetched ON crdt_blocks (cid) WHERE length(data) = 0;
