-- The tables of release 0.1.0, which made them without recording a schema version: `IF NOT
-- EXISTS`, so that on a database of 0.1.0 this migration changes nothing and only records
-- that the database is at version 1.
CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, entry TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- `fmt`: the format of the row's JSON (see `pins::PIN_FORMAT`).
CREATE TABLE IF NOT EXISTS pins (cid TEXT PRIMARY KEY, pin TEXT NOT NULL, fmt INTEGER NOT NULL DEFAULT 0);
-- The current snapshot: its meta and file (one row, only ever replaced by a newer one).
CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL, meta TEXT NOT NULL, file TEXT NOT NULL);
-- What the last installed snapshot dropped, to unpin from IPFS (kept until the next one).
CREATE TABLE IF NOT EXISTS pins_gone (cid TEXT PRIMARY KEY);
-- The pinset's counts, kept by triggers on `pins` (see `pins::prepare`).
CREATE TABLE IF NOT EXISTS pin_counts (id INTEGER PRIMARY KEY CHECK (id = 1), peer TEXT NOT NULL, total INTEGER NOT NULL, here INTEGER NOT NULL);
