//! The shared pinset: what Raft's state machine applies and every component reads.
//!
//! Writes happen only in the consensus state machine; everything else reads it through the
//! [`Pinset`] contract (this [`StateHandle`]) and hears about changes through
//! [`crate::components::StateChange`] messages.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::{Arc, RwLock};

use crate::components::Pinset;
use crate::types::{Cid, Pin};

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

    /// Only the state machine calls this, after the change is durable.
    pub(crate) fn insert(&self, pin: Pin) {
        self.pins.write().unwrap().insert(pin.cid, pin);
    }

    /// Only the state machine calls this, after the change is durable.
    pub(crate) fn remove(&self, cid: &Cid) {
        self.pins.write().unwrap().remove(cid);
    }

    pub(crate) fn replace(&self, new: BTreeMap<Cid, Pin>) {
        *self.pins.write().unwrap() = new;
    }
}

impl Pinset for StateHandle {
    fn get(&self, cid: &Cid) -> Option<Pin> {
        self.pins.read().unwrap().get(cid).cloned()
    }

    fn list(&self) -> Vec<Pin> {
        self.pins.read().unwrap().values().cloned().collect()
    }
}

/// `state import` found a line that is not a pin; nothing was imported.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ImportError {
    pub line: usize,
    pub message: String,
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
pub fn import(input: impl BufRead) -> Result<Vec<Pin>, ImportError> {
    let mut pins = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let err = |message: String| ImportError {
            line: i + 1,
            message,
        };
        let line = line.map_err(|e| err(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let pin: Pin = serde_json::from_str(&line).map_err(|e| err(format!("not a pin: {e}")))?;
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
        let err = import(&b"{}\n"[..]).unwrap_err().to_string();
        assert!(err.starts_with("line 1"), "{err}");
    }

    #[test]
    fn handle_applies_ops() {
        let h = StateHandle::default();
        let c: Cid = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
            .parse()
            .unwrap();
        h.insert(Pin::new(c, PinOptions::default()));
        assert!(h.get(&c).is_some());
        h.remove(&c);
        assert!(h.list().is_empty());
    }
}
