//! The shared pinset's file format (`state export` / `state import`: newline-delimited Pin
//! JSON), and an in-memory [`Pinset`] for tests.
//!
//! The pinset itself lives on disk, in the consensus store's `pins` table; writes happen only
//! in the state machine, everything else reads it through the [`Pinset`] contract and hears
//! about changes through [`crate::components::StateChange`] messages.

pub mod feed;

#[cfg(test)]
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
#[cfg(test)]
use std::sync::{Arc, RwLock};

#[cfg(test)]
use crate::components::Pinset;
use crate::types::Pin;
#[cfg(test)]
use crate::types::{Cid, PinKey};

/// An in-memory pinset, for unit tests of the components that read one.
#[cfg(test)]
#[derive(Clone, Default)]
pub struct StateHandle {
    pins: Arc<RwLock<BTreeMap<PinKey, Pin>>>,
    /// The peer whose pins [`Pinset::counts`] counts as allocated here.
    counted_for: Arc<RwLock<String>>,
}

#[cfg(test)]
impl StateHandle {
    pub fn new(pins: impl IntoIterator<Item = Pin>) -> StateHandle {
        StateHandle {
            pins: Arc::new(RwLock::new(
                pins.into_iter().map(|p| (p.cid.key(), p)).collect(),
            )),
            counted_for: Arc::default(),
        }
    }

    /// Counts pins allocated to `peer` as allocated here (as the store's `count_for`).
    pub fn count_for(&self, peer: &str) {
        *self.counted_for.write().unwrap() = peer.to_string();
    }

    pub fn insert(&self, pin: Pin) {
        self.pins.write().unwrap().insert(pin.cid.key(), pin);
    }

    pub fn remove(&self, cid: &Cid) {
        self.pins.write().unwrap().remove(&cid.key());
    }

    pub fn list(&self) -> Vec<Pin> {
        self.pins.read().unwrap().values().cloned().collect()
    }
}

#[cfg(test)]
#[async_trait::async_trait]
impl Pinset for StateHandle {
    async fn get(&self, cid: &Cid) -> Result<Option<Pin>, crate::components::ConsensusError> {
        Ok(self.pins.read().unwrap().get(&cid.key()).cloned())
    }

    async fn counts(
        &self,
    ) -> Result<crate::components::PinCounts, crate::components::ConsensusError> {
        let pins = self.pins.read().unwrap();
        let me = self.counted_for.read().unwrap();
        Ok(crate::components::PinCounts {
            total: pins.len() as u64,
            allocated_here: pins.values().filter(|p| p.is_allocated_to(&me)).count() as u64,
        })
    }

    async fn expired(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        after: Option<crate::types::PinKey>,
        limit: usize,
    ) -> Result<Vec<Cid>, crate::components::ConsensusError> {
        let pins = self.pins.read().unwrap();
        let mut out: Vec<Cid> = pins
            .values()
            .filter(|p| p.options.expire_at.is_some_and(|at| at <= now))
            .filter(|p| after.as_ref().is_none_or(|a| p.cid.key() > *a))
            .map(|p| p.cid)
            .collect();
        out.sort_by_key(Cid::key);
        out.truncate(limit);
        Ok(out)
    }

    async fn browse(
        &self,
        q: &crate::components::Browse,
    ) -> Result<crate::components::Browsed, crate::components::ConsensusError> {
        use crate::components::{BrowseCursor, PinMatch, PinOrder};
        // As the store answers, by sorting everything (a test's pinset is small).
        let key = |p: &Pin| -> BrowseCursor {
            let name = p.options.name.to_ascii_lowercase();
            let by_name = match &q.matching {
                PinMatch::NamePrefix(_) => true,
                PinMatch::CidPrefix(_) => false,
                PinMatch::All => q.order == PinOrder::Name && !name.is_empty(),
            };
            if by_name {
                BrowseCursor::Name(name, p.cid.to_string())
            } else {
                BrowseCursor::Cid(p.cid.to_string())
            }
        };
        let rank = |c: &BrowseCursor| match c {
            BrowseCursor::Name(n, c) => (0, n.clone(), c.clone()),
            BrowseCursor::Cid(c) => (1, String::new(), c.clone()),
        };
        let desc = q.order == PinOrder::CidDesc && q.matching == PinMatch::All;
        let mut pins: Vec<(BrowseCursor, Pin)> = self
            .list()
            .into_iter()
            .filter(|p| match &q.matching {
                PinMatch::All => true,
                PinMatch::CidPrefix(x) => p.cid.to_string().starts_with(x.as_str()),
                PinMatch::NamePrefix(x) => {
                    !p.options.name.is_empty()
                        && p.options
                            .name
                            .to_ascii_lowercase()
                            .starts_with(&x.to_ascii_lowercase())
                }
            })
            .map(|p| (key(&p), p))
            .collect();
        pins.sort_by_key(|(k, _)| rank(k));
        if desc {
            pins.reverse();
        }
        if let Some(after) = q.cursor()? {
            let after = rank(&after);
            pins.retain(|(k, _)| {
                if desc {
                    rank(k) < after
                } else {
                    rank(k) > after
                }
            });
        }
        let limit = q.limit.clamp(1, 1000);
        let next = (pins.len() > limit).then(|| q.next_text(&pins[limit - 1].0));
        let pins: Vec<Pin> = pins.into_iter().take(limit).map(|(_, p)| p).collect();
        Ok(crate::components::Browsed {
            looked: pins.len(),
            pins,
            next,
        })
    }

    fn stream_after(
        &self,
        after: Option<PinKey>,
    ) -> futures::stream::BoxStream<'static, Result<Pin, crate::components::ConsensusError>> {
        // The pinset's order, as the store gives it.
        let mut pins: Vec<(PinKey, Pin)> = self
            .list()
            .into_iter()
            .map(|p| (p.cid.key(), p))
            .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
            .collect();
        pins.sort_by(|a, b| a.0.cmp(&b.0));
        Box::pin(futures::stream::iter(pins.into_iter().map(|(_, p)| Ok(p))))
    }
}

/// `state import` found a line that is not a pin; nothing was imported.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ImportError {
    pub line: usize,
    pub message: String,
}

/// Writes one pin as a line of newline-delimited Pin JSON (`state export`).
pub fn export_one(pin: &Pin, mut out: impl Write) -> std::io::Result<()> {
    serde_json::to_writer(&mut out, pin)?;
    out.write_all(b"\n")
}

/// The export format this version writes and reads: IPFS Cluster's (newline-delimited pins,
/// no header), which IPFS Cluster's `state import` reads too. A later format would start with
/// a header line, `{"format": "ipfs-cluster-desktop-state", "version": N, "written_by": V}`,
/// which this version reads to refuse it by name (no pin has a `format` field).
pub const EXPORT_FORMAT: u64 = 1;
const EXPORT_HEADER: &str = "ipfs-cluster-desktop-state";

/// The header line of a later export format.
#[derive(serde::Deserialize)]
struct ExportHeader {
    format: String,
    version: u64,
    #[serde(default)]
    written_by: String,
}

/// Reads newline-delimited Pin JSON (`state import`) one pin at a time; a bad line is an
/// error with its line number (the importer makes the import all or nothing). An export of
/// a later format is refused at its header, naming both versions.
pub fn read_pins(input: impl BufRead) -> impl Iterator<Item = Result<Pin, ImportError>> {
    let mut first = true;
    input.lines().enumerate().filter_map(move |(i, line)| {
        let err = |message: String| ImportError {
            line: i + 1,
            message,
        };
        match line {
            Err(e) => Some(Err(err(e.to_string()))),
            Ok(l) if l.trim().is_empty() => None,
            Ok(l) => {
                if std::mem::take(&mut first) {
                    if let Ok(h) = serde_json::from_str::<ExportHeader>(&l) {
                        if h.format == EXPORT_HEADER && h.version > EXPORT_FORMAT {
                            return Some(Err(err(format!(
                                "an export of format {}, written by a newer version ({}); this \
                                 is {}, which reads format {EXPORT_FORMAT}",
                                h.version,
                                if h.written_by.is_empty() {
                                    "unknown"
                                } else {
                                    &h.written_by
                                },
                                crate::types::full_version()
                            ))));
                        }
                        if h.format == EXPORT_HEADER {
                            return None;
                        }
                    }
                }
                Some(serde_json::from_str::<Pin>(&l).map_err(|e| err(format!("not a pin: {e}"))))
            }
        }
    })
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
        export_one(&a, &mut buf).unwrap();
        buf.extend_from_slice(b"\n");
        export_one(&a, &mut buf).unwrap();
        let back: Vec<Pin> = read_pins(&buf[..]).collect::<Result<_, _>>().unwrap();
        assert_eq!(back, vec![a.clone(), a]);
        let err = read_pins(&b"\n{}\n"[..])
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("line 2"), "{err}");
    }

    /// An export of a later format is refused at its header, naming its format, the version
    /// that wrote it and this one; a header of this format is read past.
    #[test]
    fn an_export_of_a_newer_format_is_refused_naming_both_versions() {
        let pin = r#"{"cid":{"/":"QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"}}"#;
        let newer = format!(
            "{{\"format\":\"ipfs-cluster-desktop-state\",\"version\":2,\"written_by\":\"9.9.9\"}}\n{pin}\n"
        );
        let err = read_pins(newer.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("line 1: an export of format 2, written by a newer version (9.9.9)")
                && err.contains(crate::types::full_version())
                && err.ends_with("reads format 1"),
            "{err}"
        );
        let same = format!("{{\"format\":\"ipfs-cluster-desktop-state\",\"version\":1}}\n{pin}\n");
        assert_eq!(read_pins(same.as_bytes()).count(), 1);
        // Only a first line is a header.
        let late = format!("{pin}\n{{\"format\":\"ipfs-cluster-desktop-state\",\"version\":2}}\n");
        assert!(read_pins(late.as_bytes()).nth(1).unwrap().is_err());
    }
}
