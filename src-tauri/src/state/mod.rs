//! The shared pinset: what Raft's state machine applies and every component reads.
//!
//! Writes happen only in the consensus state machine; everything else holds a [`StateHandle`]
//! (a read view) and hears about changes through [`StateChange`] messages.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::types::{Cid, Pin};

/// A command in the Raft log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Pin(Pin),
    Unpin(Cid),
}

/// What an applied log entry changed, for the pin tracker.
#[derive(Clone, Debug, PartialEq)]
pub enum StateChange {
    Pinned(Pin),
    Unpinned(Cid),
    /// The whole state was replaced (snapshot installed): re-read everything.
    Reset,
}

/// Read-only, cheaply cloned view of the applied pinset.
#[derive(Clone, Default)]
pub struct StateHandle {
    pins: Arc<RwLock<BTreeMap<Cid, Pin>>>,
}

impl StateHandle {
    pub fn new(pins: BTreeMap<Cid, Pin>) -> StateHandle {
        StateHandle {
            pins: Arc::new(RwLock::new(pins)),
        }
    }

    pub fn get(&self, cid: &Cid) -> Option<Pin> {
        self.pins.read().unwrap().get(cid).cloned()
    }

    pub fn list(&self) -> Vec<Pin> {
        self.pins.read().unwrap().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.pins.read().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Only the state machine calls this, after the change is durable.
    pub(crate) fn apply(&self, op: &Op) {
        let mut pins = self.pins.write().unwrap();
        match op {
            Op::Pin(p) => {
                pins.insert(p.cid, p.clone());
            }
            Op::Unpin(c) => {
                pins.remove(c);
            }
        }
    }

    pub(crate) fn replace(&self, new: BTreeMap<Cid, Pin>) {
        *self.pins.write().unwrap() = new;
    }
}

/// Writes the pinset as newline-delimited Pin JSON (`state export`).
pub fn export(pins: &[Pin], mut out: impl Write) -> std::io::Result<()> {
    for p in pins {
        serde_json::to_writer(&mut out, p)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Reads newline-delimited Pin JSON (`state import`); all or nothing, with the line number of
/// the first bad line.
pub fn import(input: impl BufRead) -> Result<Vec<Pin>, String> {
    let mut pins = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let pin: Pin =
            serde_json::from_str(&line).map_err(|e| format!("line {}: not a pin: {e}", i + 1))?;
        pins.push(pin);
    }
    Ok(pins)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PinOptions;

    #[test]
    fn export_import_round_trip_and_reject_garbage() {
        let a = Pin::new(
            "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
                .parse()
                .unwrap(),
            PinOptions::default(),
        );
        let mut buf = Vec::new();
        export(std::slice::from_ref(&a), &mut buf).unwrap();
        assert_eq!(import(&buf[..]).unwrap(), vec![a]);
        let err = import(&b"{}\n"[..]).unwrap_err();
        assert!(err.starts_with("line 1"), "{err}");
    }

    #[test]
    fn handle_applies_ops() {
        let h = StateHandle::default();
        let c: Cid = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
            .parse()
            .unwrap();
        h.apply(&Op::Pin(Pin::new(c, PinOptions::default())));
        assert!(h.get(&c).is_some());
        h.apply(&Op::Unpin(c));
        assert!(h.is_empty());
    }
}
