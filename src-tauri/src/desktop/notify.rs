//! What the app tells through the system's notifications: a pin failed here, a peer was
//! lost or came back, a join finished. [`Notifier`] turns what the peer knows now (its error
//! count, the members it hears from) into notices, remembering only what it told before:
//! nothing at start (the first look is the baseline), a lost peer told once, and "back"
//! only for a peer told lost, so that a start, when every peer's first ping is still on its
//! way, is not a burst of notices. The app sends them, each kind as Settings allow.

use std::collections::{BTreeMap, BTreeSet};

use super::settings::Notify;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    PinFailed,
    PeerLost,
    PeerBack,
    Joined,
    /// The last run did not end cleanly: always told (it is about the app itself).
    UncleanExit,
    /// What came of something the user did from the tray: always told.
    Action,
}

impl NoticeKind {
    /// Whether the user wants this kind.
    pub fn wanted(self, n: &Notify) -> bool {
        match self {
            NoticeKind::PinFailed => n.pin_failed,
            NoticeKind::PeerLost | NoticeKind::PeerBack => n.peers,
            NoticeKind::Joined => n.joined,
            NoticeKind::UncleanExit | NoticeKind::Action => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    pub title: String,
    pub body: String,
}

/// What the peer knows now, for [`Notifier::step`].
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Which start of the peer this is: a new one begins from a new baseline.
    pub instance: u64,
    /// Pins and unpins in error on this peer.
    pub errors: u64,
    /// Pins and unpins queued or under way on this peer.
    pub in_progress: u64,
    /// Every member but this peer.
    pub members: Vec<String>,
    /// The members this peer hears from.
    pub online: Vec<String>,
}

/// Whether the peers' names are to be asked again, last asked `since` ago (never: none): once
/// a minute, and soon after a member this peer hears from has no name yet (it joined since),
/// so that a notice about it names it.
pub fn names_due(
    seen: &Seen,
    names: &BTreeMap<String, String>,
    since: Option<std::time::Duration>,
) -> bool {
    let Some(since) = since else { return true };
    let unnamed = seen.online.iter().any(|p| !names.contains_key(p));
    since >= NAMES_EVERY || (unnamed && since >= NAMES_SOON)
}

/// How often the names are asked again, and how soon when one is missing.
const NAMES_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
const NAMES_SOON: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct Notifier {
    instance: Option<u64>,
    /// The most errors told of: failures are told only above it (a recover that queues the
    /// failed pins again, which then fail again, is not news); forgotten once nothing is in
    /// error or in progress.
    told: u64,
    online: BTreeSet<String>,
    lost: BTreeSet<String>,
}

/// A peer id as people can tell it apart: its last six characters.
fn short(id: &str) -> String {
    let tail: Vec<char> = id.chars().rev().take(6).collect();
    format!("…{}", tail.into_iter().rev().collect::<String>())
}

/// A peer's name as another peer gave it, fit for a notification's title: without control or
/// format characters (line breaks, bidirectional overrides), at most 40 characters.
fn fit(name: &str) -> String {
    let clean: String = name
        .chars()
        .filter(|c| !c.is_control() && !super::settings::is_format(*c))
        .take(40)
        .collect();
    clean.trim().to_string()
}

impl Notifier {
    /// The notices between the last look and this one; `names` names peers it knows.
    pub fn step(&mut self, now: &Seen, names: &BTreeMap<String, String>) -> Vec<Notice> {
        let name = |id: &str| {
            names
                .get(id)
                .map(|n| fit(n))
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| short(id))
        };
        let mut out = Vec::new();
        let members: BTreeSet<&String> = now.members.iter().collect();
        let online: BTreeSet<String> = now
            .online
            .iter()
            .filter(|p| members.contains(p))
            .cloned()
            .collect();
        if self.instance != Some(now.instance) {
            // The first look at this start of the peer: the baseline.
            *self = Notifier {
                instance: Some(now.instance),
                told: now.errors,
                online,
                lost: BTreeSet::new(),
            };
            return out;
        }
        if now.errors > self.told {
            let n = now.errors - self.told;
            out.push(Notice {
                kind: NoticeKind::PinFailed,
                title: if n == 1 {
                    "A pin failed".into()
                } else {
                    format!("{n} pins failed")
                },
                body: format!(
                    "{} in error on this peer now. The Pins view lists them (status: Errors).",
                    now.errors
                ),
            });
            self.told = now.errors;
        }
        if now.errors == 0 && now.in_progress == 0 {
            self.told = 0;
        }
        for p in self.online.difference(&online) {
            if members.contains(p) && self.lost.insert(p.clone()) {
                out.push(Notice {
                    kind: NoticeKind::PeerLost,
                    title: format!("Peer {} is unreachable", name(p)),
                    body:
                        "Its pins are kept by the other peers; the cluster tells when it is back."
                            .into(),
                });
            }
        }
        let back: Vec<String> = self.lost.intersection(&online).cloned().collect();
        for p in back {
            self.lost.remove(&p);
            out.push(Notice {
                kind: NoticeKind::PeerBack,
                title: format!("Peer {} is back", name(&p)),
                body: "It answers again.".into(),
            });
        }
        self.lost.retain(|p| members.contains(p));
        self.online = online;
        out
    }
}

/// The notice of a finished join.
pub fn joined(peers: usize) -> Notice {
    Notice {
        kind: NoticeKind::Joined,
        title: "Joined the cluster".into(),
        body: format!("This peer now keeps the cluster's pinset with {peers} other peers."),
    }
}

/// What came of something done from the tray.
pub fn action(title: &str, body: &str) -> Notice {
    Notice {
        kind: NoticeKind::Action,
        title: title.into(),
        body: body.into(),
    }
}

/// The notice of a last run that did not end cleanly, naming its log.
pub fn unclean_exit(log: &str) -> Notice {
    Notice {
        kind: NoticeKind::UncleanExit,
        title: "IPFS Cluster Desktop did not shut down cleanly last time".into(),
        body: format!("Its log is {log}: attach it to a bug report."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(errors: u64, members: &[&str], online: &[&str]) -> Seen {
        Seen {
            instance: 1,
            in_progress: 0,
            errors,
            members: members.iter().map(|s| s.to_string()).collect(),
            online: online.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn tells_failures_lost_and_returning_peers_once_each_and_nothing_at_start() {
        let names: BTreeMap<String, String> =
            [("QmAAAAAAbbbbbb".to_string(), "server".to_string())].into();
        let mut n = Notifier::default();
        // The start: errors already there, peers not heard yet: a baseline, no notice.
        assert!(n
            .step(&seen(3, &["QmAAAAAAbbbbbb", "QmCCCCCCdddddd"], &[]), &names)
            .is_empty());
        // Peers heard for the first time: not "back" (never told lost).
        assert!(n
            .step(
                &seen(
                    3,
                    &["QmAAAAAAbbbbbb", "QmCCCCCCdddddd"],
                    &["QmAAAAAAbbbbbb", "QmCCCCCCdddddd"]
                ),
                &names
            )
            .is_empty());
        // Two more errors, and a peer lost: told once.
        let told = n.step(
            &seen(
                5,
                &["QmAAAAAAbbbbbb", "QmCCCCCCdddddd"],
                &["QmCCCCCCdddddd"],
            ),
            &names,
        );
        let kinds: Vec<NoticeKind> = told.iter().map(|t| t.kind).collect();
        assert_eq!(kinds, [NoticeKind::PinFailed, NoticeKind::PeerLost]);
        assert_eq!(told[0].title, "2 pins failed");
        assert_eq!(told[1].title, "Peer server is unreachable");
        assert!(n
            .step(
                &seen(
                    5,
                    &["QmAAAAAAbbbbbb", "QmCCCCCCdddddd"],
                    &["QmCCCCCCdddddd"]
                ),
                &names
            )
            .is_empty());
        // Errors going down (recovered) are not news; the peer coming back is.
        let told = n.step(
            &seen(
                1,
                &["QmAAAAAAbbbbbb", "QmCCCCCCdddddd"],
                &["QmAAAAAAbbbbbb", "QmCCCCCCdddddd"],
            ),
            &names,
        );
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].kind, NoticeKind::PeerBack);
        assert_eq!(told[0].title, "Peer server is back");
        // A peer removed from the cluster is not "lost"; an unnamed one is told by its id's end.
        assert!(n
            .step(&seen(1, &["QmAAAAAAbbbbbb"], &["QmAAAAAAbbbbbb"]), &names)
            .is_empty());
        let told = n.step(
            &seen(
                2,
                &["QmAAAAAAbbbbbb", "QmEEEEEEffffff"],
                &["QmEEEEEEffffff"],
            ),
            &names,
        );
        // (Errors back up to 2, below the 5 told: not news.)
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].title, "Peer server is unreachable");
        let told = n.step(
            &seen(
                2,
                &["QmAAAAAAbbbbbb", "QmEEEEEEffffff"],
                &["QmAAAAAAbbbbbb"],
            ),
            &names,
        );
        assert_eq!(
            told.iter().map(|t| t.title.as_str()).collect::<Vec<_>>(),
            ["Peer …ffffff is unreachable", "Peer server is back"]
        );
    }

    #[test]
    fn failures_told_again_only_above_what_was_told_and_a_restart_is_a_new_baseline() {
        let names = BTreeMap::from([(
            "QmAAAAAAbbbbbb".to_string(),
            "bad\u{202E}name\nx".to_string(),
        )]);
        let mut n = Notifier::default();
        let mut s = seen(0, &["QmAAAAAAbbbbbb"], &["QmAAAAAAbbbbbb"]);
        assert!(n.step(&s, &names).is_empty());
        s.errors = 2;
        assert_eq!(n.step(&s, &names).len(), 1);
        // A recover queues them again (errors 0, in progress 2), and they fail again.
        s.errors = 0;
        s.in_progress = 2;
        assert!(n.step(&s, &names).is_empty());
        s.errors = 2;
        s.in_progress = 0;
        assert!(
            n.step(&s, &names).is_empty(),
            "the same failures are not news"
        );
        s.errors = 3;
        assert_eq!(n.step(&s, &names)[0].title, "A pin failed");
        // Everything settled: a later failure is news again.
        s.errors = 0;
        assert!(n.step(&s, &names).is_empty());
        s.errors = 1;
        assert_eq!(n.step(&s, &names).len(), 1);
        // A restart of the peer: its first look, with no peer heard yet, tells nothing, nor
        // do its peers' first pings.
        let restarted = Seen {
            instance: 2,
            online: vec![],
            ..s.clone()
        };
        assert!(n.step(&restarted, &names).is_empty());
        let heard = Seen {
            instance: 2,
            ..s.clone()
        };
        assert!(n.step(&heard, &names).is_empty());
        // A name from another peer is shown without its control and format characters.
        let lost = n.step(&restarted, &names);
        assert_eq!(lost[0].title, "Peer badnamex is unreachable");
    }

    #[test]
    fn each_kind_follows_its_switch() {
        let off = Notify {
            pin_failed: false,
            peers: true,
            joined: false,
        };
        assert!(!NoticeKind::PinFailed.wanted(&off));
        assert!(NoticeKind::PeerLost.wanted(&off) && NoticeKind::PeerBack.wanted(&off));
        assert!(!NoticeKind::Joined.wanted(&off));
        assert_eq!(joined(2).title, "Joined the cluster");
    }

    #[test]
    fn names_are_asked_once_a_minute_and_soon_for_a_member_that_joined() {
        use std::time::Duration;
        let names = BTreeMap::from([("QmAAAAAAbbbbbb".to_string(), "server".to_string())]);
        let known = seen(0, &["QmAAAAAAbbbbbb"], &["QmAAAAAAbbbbbb"]);
        assert!(names_due(&known, &names, None), "at first");
        assert!(!names_due(&known, &names, Some(Duration::from_secs(30))));
        assert!(names_due(&known, &names, Some(Duration::from_secs(61))));
        let joined = seen(
            0,
            &["QmAAAAAAbbbbbb", "QmNEWWWWWWWWWW"],
            &["QmAAAAAAbbbbbb", "QmNEWWWWWWWWWW"],
        );
        assert!(!names_due(&joined, &names, Some(Duration::from_secs(5))));
        assert!(names_due(&joined, &names, Some(Duration::from_secs(11))));
    }
}
