//! Raft's log, vote and state machine, persisted in one SQLite file (sqlx), split as
//! openraft's storage is split:
//! - [`db`]: the pool, errors and the small key-value table everything else builds on;
//! - [`schema`]: the tables, and opening the file (its header checked first);
//! - [`log`]: the log store (log entries and vote);
//! - [`machine`]: the state machine (applying entries, installing snapshots);
//! - [`pins`]: the pins table as every component reads it, and its counts;
//! - [`snapshots`]: which snapshot is current, and building one;
//! - [`staging`]: loading a whole pinset beside the live one and swapping it in (offline
//!   import, received snapshots).

mod db;
mod log;
mod machine;
mod pins;
mod schema;
mod snapshots;
mod staging;

pub use db::{clear_imported, db_path, has_history, history, imported, joining, set_joining};
pub(crate) use db::{kv_delete, kv_get, kv_put};
pub use log::{logged_unpins, LogStore};
pub use machine::StateMachine;
pub use pins::PIN_FORMAT;
/// The SQL of a pin's name as indexed, and of the pins the index holds (for tests of plans).
#[cfg(test)]
pub fn pins_name_sql() -> &'static str {
    pins::NAME
}
#[cfg(test)]
pub fn pins_named_sql() -> &'static str {
    pins::NAMED
}
pub use pins::{count_for, PinsTable};
#[cfg(test)]
pub use schema::schema_version;
pub use schema::{checkpoint, open, open_readers};
pub use snapshots::{ensure_snapshot, snapshot_size};
#[cfg(test)]
pub use staging::replace_pins;
pub use staging::{commit_staged, discard_staged, stage_pins, swap_staged_after};
