//! The peer's recent log lines for the app's Logs view: a `tracing` layer that keeps the last
//! [`CAPACITY`] events in a ring, each cut to [`LINE_MAX`] bytes, so that the view costs a
//! bounded amount of memory however long the app runs and however chatty a module is. The
//! window asks for the lines after the last one it has (a sequence number), and hears that
//! there are new ones through [`LogRing::changes`] (a watch: coalesced, never queued).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Lines kept.
pub const CAPACITY: usize = 2_000;
/// Bytes of one line kept, at most.
pub const LINE_MAX: usize = 2_048;

/// One event as the Logs view shows it.
#[derive(Serialize, Clone, Debug, PartialEq, ts_rs::TS)]
pub struct LogLine {
    /// Counts every line since the app started: where the window asks to go on from.
    #[ts(type = "number")]
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    /// ERROR, WARN, INFO, DEBUG or TRACE.
    pub level: String,
    /// The module that logged it.
    pub target: String,
    /// The message and its fields (`key=value`).
    pub message: String,
}

/// The ring of recent lines.
pub struct LogRing {
    lines: Mutex<VecDeque<LogLine>>,
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for LogRing {
    fn default() -> Self {
        LogRing {
            lines: Mutex::new(VecDeque::with_capacity(64)),
            changes: tokio::sync::watch::channel(0).0,
        }
    }
}

impl LogRing {
    /// The app's one ring (the layer writes to it; the window reads it).
    pub fn global() -> &'static LogRing {
        static RING: OnceLock<LogRing> = OnceLock::new();
        RING.get_or_init(LogRing::default)
    }

    /// Keeps a line, dropping the oldest beyond [`CAPACITY`].
    pub fn push(&self, time: String, level: &str, target: &str, mut message: String) {
        if message.len() > LINE_MAX {
            let mut end = LINE_MAX;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        let seq = {
            let mut lines = self.lines.lock().unwrap();
            let seq = lines.back().map_or(1, |l| l.seq + 1);
            if lines.len() == CAPACITY {
                lines.pop_front();
            }
            lines.push_back(LogLine {
                seq,
                time,
                level: level.to_string(),
                target: target.to_string(),
                message,
            });
            seq
        };
        self.changes.send_replace(seq);
    }

    /// The lines after `seq` (all kept with none), oldest first, at most `max`.
    pub fn after(&self, seq: Option<u64>, max: usize) -> Vec<LogLine> {
        let lines = self.lines.lock().unwrap();
        let from = seq.unwrap_or(0);
        let skip = lines.partition_point(|l| l.seq <= from);
        lines.iter().skip(skip).take(max).cloned().collect()
    }

    /// The last line's number each time lines come (coalesced).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// The `tracing` layer that feeds [`LogRing::global`].
pub struct RingLayer;

/// An event's message and fields as text. Events bridged from the `log` crate carry where
/// they came from as `log.*` fields: their target is kept as the line's, the rest left out.
#[derive(Default)]
struct Fields {
    text: String,
    log_target: Option<String>,
}

impl Fields {
    fn field(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => {
                let rest = std::mem::take(&mut self.text);
                self.text = format!("{value}{rest}");
            }
            "log.target" => self.log_target = Some(value),
            name if name.starts_with("log.") => {}
            name => {
                let _ = write!(self.text, " {name}={value}");
            }
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.field(field, format!("{value:?}"));
    }
}

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        LogRing::global().push(
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            meta.level().as_str(),
            fields.log_target.as_deref().unwrap_or(meta.target()),
            fields.text,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_cut_to_size_and_answers_after_a_number() {
        let ring = LogRing::default();
        let changes = ring.changes();
        for n in 0..CAPACITY + 5 {
            ring.push("t".into(), "INFO", "x", format!("line {n}"));
        }
        let all = ring.after(None, usize::MAX);
        assert_eq!(all.len(), CAPACITY, "bounded");
        assert_eq!(all[0].message, "line 5", "the oldest went first");
        assert_eq!(*changes.borrow(), (CAPACITY + 5) as u64);
        let last = all.last().unwrap().seq;
        assert!(ring.after(Some(last), 10).is_empty());
        let two = ring.after(Some(last - 2), 10);
        assert_eq!(two.len(), 2);
        assert_eq!(two[1].message, format!("line {}", CAPACITY + 4));
        assert_eq!(ring.after(Some(0), 3).len(), 3, "at most max");
        ring.push("t".into(), "WARN", "x", "é".repeat(LINE_MAX));
        let long = ring.after(Some(last), 10).pop().unwrap();
        assert!(long.message.len() <= LINE_MAX + '…'.len_utf8());
        assert!(long.message.ends_with('…'));
    }

    #[test]
    fn the_layer_keeps_the_message_and_its_fields() {
        use tracing_subscriber::prelude::*;
        let subscriber = tracing_subscriber::registry().with(RingLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(peer = "QmPeer", attempts = 3, "a peer was lost");
            tracing::info!(
                log.target = "yamux::connection",
                log.line = 354,
                "bridged from the log crate"
            );
        });
        let line = LogRing::global()
            .after(None, usize::MAX)
            .into_iter()
            .rev()
            .find(|l| l.message.starts_with("a peer was lost"))
            .expect("the event is kept");
        assert_eq!(line.level, "WARN");
        assert_eq!(line.message, "a peer was lost peer=QmPeer attempts=3");
        let bridged = LogRing::global()
            .after(None, usize::MAX)
            .into_iter()
            .rev()
            .find(|l| l.message.starts_with("bridged"))
            .expect("the event is kept");
        assert_eq!(bridged.target, "yamux::connection");
        assert_eq!(bridged.message, "bridged from the log crate");
    }
}
