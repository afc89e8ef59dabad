//! What the tray shows: one of four states for its icon (a coloured badge on the app's icon)
//! and one status line for its menu and tooltip, worked out from what the app knows (its
//! snapshot and the peers it heard from). Pure, so that every state is tested; the binary
//! only draws it.

use super::{IpfsSource, Snapshot};
use crate::types::Id;

/// The tray icon's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayState {
    /// Everything pinned, every peer reachable.
    Ok,
    /// Starting, or pins and unpins under way here.
    Working,
    /// Something needs the user: pins in error, peers unreachable, IPFS not answering,
    /// pinning paused, storage stopped.
    Attention,
    /// No cluster: not set up, stopped, or no other peer reachable.
    Offline,
}

impl TrayState {
    /// The badge's colour (RGB): green, blue, amber, grey.
    pub fn colour(self) -> [u8; 3] {
        match self {
            TrayState::Ok => [0x1b, 0x7f, 0x4f],
            TrayState::Working => [0x1f, 0x6f, 0xd1],
            TrayState::Attention => [0xd9, 0x8a, 0x00],
            TrayState::Offline => [0x7a, 0x7a, 0x7a],
        }
    }

    /// Said in the tooltip, for who cannot tell the colours apart.
    pub fn word(self) -> &'static str {
        match self {
            TrayState::Ok => "all good",
            TrayState::Working => "working",
            TrayState::Attention => "needs attention",
            TrayState::Offline => "offline",
        }
    }
}

/// The icon's state and the menu's status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayView {
    pub state: TrayState,
    pub line: String,
}

fn n(v: u64) -> String {
    // Thousands apart, as the window writes them.
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl TrayView {
    /// The menu's first line: the state in words (a tray on Linux shows no tooltip), then the
    /// line.
    pub fn menu_text(&self) -> String {
        let word = self.state.word();
        let mut chars = word.chars();
        let first = chars.next().map(|c| c.to_ascii_uppercase()).unwrap_or(' ');
        format!("{first}{}: {}", chars.as_str(), self.line)
    }
}

/// The tray's state and line: `peers`, the cluster's peers as last heard (none yet: unknown).
pub fn view(snap: &Snapshot, peers: Option<&[Id]>) -> TrayView {
    let offline = |line: &str| TrayView {
        state: TrayState::Offline,
        line: line.into(),
    };
    if !snap.configured {
        return offline("Not set up yet: open the app to start or join a cluster");
    }
    if !snap.running {
        if snap.starting {
            return TrayView {
                state: TrayState::Working,
                line: "Starting…".into(),
            };
        }
        return offline("Stopped");
    }
    if snap.consensus_stopped {
        return TrayView {
            state: TrayState::Attention,
            line: "Stopped after a storage error (disk full?): free space, then restart".into(),
        };
    }
    let mut parts = Vec::new();
    let (online, total) = match peers {
        Some(p) if !p.is_empty() => {
            let online = p.iter().filter(|i| i.error.is_empty()).count();
            parts.push(format!("{online} of {} peers online", p.len()));
            (online, p.len())
        }
        _ => (1, 1),
    };
    let (errors, busy) = match &snap.summary {
        Some(s) => {
            let errors = s.pin_error + s.unpin_error + s.cluster_error;
            let busy = s.pin_queued + s.pinning + s.unpin_queued + s.unpinning;
            parts.push(format!(
                "{} of {} pinned here",
                n(s.pinned),
                n(s.allocated_here)
            ));
            parts.push(format!("{} in progress", n(busy)));
            parts.push(format!(
                "{} {}",
                n(errors),
                if errors == 1 { "error" } else { "errors" }
            ));
            (errors, busy)
        }
        None => (0, snap.queued as u64),
    };
    let ipfs_down = snap
        .ipfs
        .as_ref()
        .is_some_and(|i| i.source == IpfsSource::Unavailable)
        || snap.id.as_ref().is_some_and(|id| !id.ipfs.error.is_empty());
    let mut line = parts.join(" · ");
    let state = if total > 1 && online <= 1 {
        line = format!("No other peer reachable · {line}");
        TrayState::Offline
    } else if snap.paused {
        line = format!("Pinning paused · {line}");
        TrayState::Attention
    } else if ipfs_down {
        line = format!("IPFS not answering · {line}");
        TrayState::Attention
    } else if errors > 0 || online < total {
        TrayState::Attention
    } else if !snap.ready || busy > 0 || snap.adding.is_some() {
        if !snap.ready {
            line = format!("Starting · {line}");
        }
        TrayState::Working
    } else {
        TrayState::Ok
    };
    TrayView {
        state,
        line: line.trim_end_matches(" · ").to_string(),
    }
}

/// The app's icon (RGBA, `width` pixels a row) with a badge of the state's colour in its
/// lower right corner, ringed in white so that it shows on dark and light panels alike.
pub fn badge(rgba: &[u8], width: u32, height: u32, state: TrayState) -> Vec<u8> {
    let mut out = rgba.to_vec();
    let (w, h) = (width as f32, height as f32);
    let r = w.min(h) * 0.22;
    let ring = r + (w.min(h) * 0.05).max(1.0);
    // The whole ring inside the icon, whatever its size.
    let (cx, cy) = (w - ring - 0.5, h - ring - 0.5);
    let [cr, cg, cb] = state.colour();
    for y in 0..height {
        for x in 0..width {
            let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
            let px = if d <= r {
                [cr, cg, cb, 255]
            } else if d <= ring {
                [255, 255, 255, 255]
            } else {
                continue;
            };
            let i = ((y * width + x) * 4) as usize;
            out[i..i + 4].copy_from_slice(&px);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::StatusSummary;

    fn snap() -> Snapshot {
        Snapshot {
            folder: String::new(),
            configured: true,
            running: true,
            ready: true,
            paused: false,
            id: None,
            ipfs: None,
            secret_location: String::new(),
            rest_api: None,
            pins: Some(10),
            summary: Some(StatusSummary {
                pins: 10,
                allocated_here: 10,
                pinned: 10,
                ..Default::default()
            }),
            queued: 0,
            consensus_stopped: false,
            starting: false,
            adding: None,
            log_folder: None,
            last_run: None,
            following: None,
            read_only: false,
            will_sync: false,
            crdt: false,
        }
    }

    fn peers(up: usize, down: usize) -> Vec<Id> {
        (0..up + down)
            .map(|i| Id {
                id: format!("p{i}"),
                error: if i < up {
                    String::new()
                } else {
                    "dial failed".into()
                },
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn each_state_with_its_line() {
        let three = peers(3, 0);
        let v = view(&snap(), Some(&three));
        assert_eq!(v.state, TrayState::Ok);
        assert_eq!(
            v.line,
            "3 of 3 peers online · 10 of 10 pinned here · 0 in progress · 0 errors"
        );
        assert_eq!(
            v.menu_text(),
            "All good: 3 of 3 peers online · 10 of 10 pinned here · 0 in progress · 0 errors"
        );

        let mut s = snap();
        let sum = s.summary.as_mut().unwrap();
        (sum.pinned, sum.pinning, sum.pin_queued) = (7, 1, 2);
        let v = view(&s, Some(&three));
        assert_eq!(v.state, TrayState::Working);
        assert_eq!(
            v.line,
            "3 of 3 peers online · 7 of 10 pinned here · 3 in progress · 0 errors"
        );

        let mut s = snap();
        s.ready = false;
        assert_eq!(view(&s, Some(&three)).state, TrayState::Working);
        assert!(view(&s, Some(&three)).line.starts_with("Starting · "));

        let mut s = snap();
        s.summary.as_mut().unwrap().pin_error = 1;
        let v = view(&s, Some(&three));
        assert_eq!(v.state, TrayState::Attention);
        assert!(v.line.ends_with("· 1 error"), "{}", v.line);

        let v = view(&snap(), Some(&peers(2, 1)));
        assert_eq!(v.state, TrayState::Attention);
        assert!(v.line.starts_with("2 of 3 peers online"));

        let mut s = snap();
        s.paused = true;
        let v = view(&s, Some(&three));
        assert_eq!(v.state, TrayState::Attention);
        assert!(v.line.starts_with("Pinning paused · "));

        let mut s = snap();
        s.ipfs = Some(super::super::IpfsStatus {
            source: IpfsSource::Unavailable,
            address: String::new(),
            message: String::new(),
        });
        assert_eq!(view(&s, Some(&three)).state, TrayState::Attention);

        let mut s = snap();
        s.consensus_stopped = true;
        assert_eq!(view(&s, Some(&three)).state, TrayState::Attention);

        // Offline: alone among unreachable peers, stopped, not set up.
        let v = view(&snap(), Some(&peers(1, 2)));
        assert_eq!(v.state, TrayState::Offline);
        assert!(v
            .line
            .starts_with("No other peer reachable · 1 of 3 peers online"));
        let mut s = snap();
        s.running = false;
        s.starting = true;
        assert_eq!(view(&s, None).state, TrayState::Working, "starting");
        s.starting = false;
        assert_eq!(
            view(&s, None),
            TrayView {
                state: TrayState::Offline,
                line: "Stopped".into()
            }
        );
        s.configured = false;
        assert_eq!(view(&s, None).state, TrayState::Offline);

        // A peer alone in its cluster is not offline.
        assert_eq!(view(&snap(), Some(&peers(1, 0))).state, TrayState::Ok);
        assert_eq!(n(1_234_567), "1,234,567");
    }

    #[test]
    fn the_badge_is_drawn_in_the_states_colour_in_the_corner_only() {
        let (w, h) = (32u32, 32u32);
        let icon = vec![10u8; (w * h * 4) as usize];
        let at = |px: &[u8], x: u32, y: u32| {
            let i = ((y * w + x) * 4) as usize;
            [px[i], px[i + 1], px[i + 2], px[i + 3]]
        };
        let mut seen = std::collections::HashSet::new();
        for state in [
            TrayState::Ok,
            TrayState::Working,
            TrayState::Attention,
            TrayState::Offline,
        ] {
            let out = badge(&icon, w, h, state);
            let [r, g, b] = state.colour();
            assert_eq!(
                at(&out, 24, 24),
                [r, g, b, 255],
                "{state:?}: the badge's middle"
            );
            assert_eq!(
                at(&out, 4, 4),
                [10, 10, 10, 10],
                "the icon elsewhere untouched"
            );
            assert_eq!(
                at(&out, 31, 31),
                [10, 10, 10, 10],
                "the very corner stays the icon's"
            );
            seen.insert(state.colour());
        }
        // On a large icon the white ring is whole: as wide below the badge as above it.
        let (w, h) = (128u32, 128u32);
        let big = badge(&vec![10u8; (w * h * 4) as usize], w, h, TrayState::Ok);
        let column = 100;
        let white: Vec<u32> = (0..h)
            .filter(|&y| {
                let i = ((y * w + column) * 4) as usize;
                big[i..i + 4] == [255, 255, 255, 255]
            })
            .collect();
        let (top, bottom) = (white[0], white[white.len() - 1]);
        let split = white
            .windows(2)
            .position(|p| p[1] - p[0] > 1)
            .expect("ring above and below the badge");
        assert_eq!(
            white[split] - top + 1,
            bottom - white[split + 1] + 1,
            "ring above and below"
        );
        assert!(bottom < h - 1, "the ring does not reach the edge");
        assert_eq!(seen.len(), 4, "four states, four colours");
    }
}
