//! The tracker's operations by CID, with a running count of each status, so that queue
//! lengths and per-status figures cost the same with ten operations or a million (the desktop
//! asks every second, `/metrics` at every scrape). Every change to an operation's kind or
//! phase goes through [`OpTable::update`], which keeps the counts true, and tells the
//! tracker's change feed ([`Changes`]).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::components::TrackerStats;
use crate::types::{Cid, TrackerStatus};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OpKind {
    Pin,
    Unpin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Queued,
    InProgress,
    Failed,
}

/// One queued, running or failed operation. Kept small, since a queue may hold a million
/// of them: the pin itself is read from the pinset when the operation runs or is shown, and
/// only a running operation has a cancellation token.
pub(super) struct Operation {
    pub(super) kind: OpKind,
    pub(super) phase: Phase,
    pub(super) attempt_count: u32,
    pub(super) priority: bool,
    pub(super) error: String,
    pub(super) timestamp: DateTime<Utc>,
    /// Distinguishes this operation from a later one on the same CID.
    pub(super) generation: u64,
    /// Set while it runs: a newer operation on the CID cancels it.
    pub(super) cancel: Option<CancellationToken>,
    /// An unpin of a pin still in the pinset but allocated elsewhere now (moved away), as
    /// opposed to one whose CID left the pinset: status walks show the first in place of
    /// a remote pin, which is what the summary must know.
    pub(super) moved: bool,
}

impl Operation {
    pub(super) fn cancel(&self) {
        if let Some(c) = &self.cancel {
            c.cancel();
        }
    }

    pub(super) fn status(&self) -> TrackerStatus {
        match (self.kind, self.phase) {
            (OpKind::Pin, Phase::Queued) => TrackerStatus::PinQueued,
            (OpKind::Pin, Phase::InProgress) => TrackerStatus::Pinning,
            (OpKind::Pin, Phase::Failed) => TrackerStatus::PinError,
            (OpKind::Unpin, Phase::Queued) => TrackerStatus::UnpinQueued,
            (OpKind::Unpin, Phase::InProgress) => TrackerStatus::Unpinning,
            (OpKind::Unpin, Phase::Failed) => TrackerStatus::UnpinError,
        }
    }
}

/// Counts `op` in `counts` (or takes it out): its status, and whether it unpins a pin that
/// moved away.
fn count(counts: &mut TrackerStats, op: &Operation, add: bool) {
    let slot = match op.status() {
        TrackerStatus::PinQueued => &mut counts.pin_queued,
        TrackerStatus::Pinning => &mut counts.pinning,
        TrackerStatus::PinError => &mut counts.pin_error,
        TrackerStatus::UnpinQueued => &mut counts.unpin_queued,
        TrackerStatus::Unpinning => &mut counts.unpinning,
        _ => &mut counts.unpin_error,
    };
    let bump = |n: &mut u64| *n = if add { *n + 1 } else { *n - 1 };
    bump(slot);
    if op.kind == OpKind::Unpin && op.moved {
        bump(&mut counts.moved_unpins);
    }
}

/// Operations queued or running in `counts` (failed ones wait for a recover).
pub(super) fn in_queue(counts: &TrackerStats) -> u64 {
    counts.pin_queued + counts.pinning + counts.unpin_queued + counts.unpinning
}

/// The tracker's change feed: a counter bumped at every change to this peer's pins or
/// operations. A watch holds only the latest value, so any number of changes since a
/// subscriber last looked wake it once (coalesced), and nothing queues up behind a slow one.
#[derive(Clone)]
pub(super) struct Changes(Arc<watch::Sender<u64>>);

impl Default for Changes {
    fn default() -> Changes {
        Changes(Arc::new(watch::Sender::new(0)))
    }
}

impl Changes {
    pub fn bump(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

#[derive(Default)]
pub(super) struct OpTable {
    map: HashMap<Cid, Operation>,
    /// The operation counts of [`TrackerStats`] (its other fields stay 0 here).
    counts: TrackerStats,
    changes: Changes,
}

impl OpTable {
    /// A table whose every change is told to `changes`.
    pub fn new(changes: Changes) -> OpTable {
        OpTable {
            changes,
            ..OpTable::default()
        }
    }

    pub fn get(&self, cid: &Cid) -> Option<&Operation> {
        self.map.get(cid)
    }

    pub fn contains_key(&self, cid: &Cid) -> bool {
        self.map.contains_key(cid)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Cid, &Operation)> {
        self.map.iter()
    }

    pub fn keys(&self) -> impl Iterator<Item = &Cid> {
        self.map.keys()
    }

    pub fn insert(&mut self, cid: Cid, op: Operation) {
        count(&mut self.counts, &op, true);
        if let Some(old) = self.map.insert(cid, op) {
            count(&mut self.counts, &old, false);
        }
        self.changes.bump();
    }

    pub fn remove(&mut self, cid: &Cid) -> Option<Operation> {
        let old = self.map.remove(cid)?;
        count(&mut self.counts, &old, false);
        self.changes.bump();
        Some(old)
    }

    /// Changes the operation on `cid`, if there is one, keeping the counts true.
    pub fn update<R>(&mut self, cid: &Cid, f: impl FnOnce(&mut Operation) -> R) -> Option<R> {
        let op = self.map.get_mut(cid)?;
        count(&mut self.counts, op, false);
        let r = f(op);
        count(&mut self.counts, op, true);
        self.changes.bump();
        Some(r)
    }

    pub fn counts(&self) -> TrackerStats {
        self.counts
    }

    /// The counts as a walk of every operation finds them (for tests).
    #[cfg(test)]
    pub fn counted(&self) -> TrackerStats {
        let mut c = TrackerStats::default();
        for op in self.map.values() {
            count(&mut c, op, true);
        }
        c
    }
}
