//! What the overview's charts draw: samples of this peer's pins by status, the cluster
//! traffic and the storage of its IPFS node (used and free), kept in two small ring buffers (the last hour
//! every 10 s, the last day every 5 minutes), so the charts are full when the window opens.
//! Memory is fixed: 360 + 288 samples of a few numbers each, whatever the pinset.

use std::collections::VecDeque;

use serde::Serialize;

/// One moment of the peer.
#[derive(Serialize, Clone, Debug, Default, PartialEq, ts_rs::TS)]
pub struct Sample {
    /// Unix time, seconds.
    pub at: i64,
    pub pinned: u64,
    /// Queued or running, pins and unpins.
    pub in_progress: u64,
    /// Pin, unpin and cluster errors.
    pub errors: u64,
    pub remote: u64,
    /// Cluster traffic since the last sample, bytes per second.
    pub bytes_in: f64,
    pub bytes_out: f64,
    /// Free space of this peer's IPFS node (its `freespace` metric), bytes; none unknown.
    pub free: Option<u64>,
    /// Storage its IPFS node uses (`repo/stat`'s size), bytes; none unknown.
    pub used: Option<u64>,
    /// Its IPFS node's traffic with other IPFS nodes since the last sample (`stats/bw`),
    /// bytes per second; none when the node does not say.
    pub ipfs_in: Option<f64>,
    pub ipfs_out: Option<f64>,
    /// Free space of the [`PEERS_FREE`] peers with the least (their `freespace` metrics), by
    /// peer id: who runs out first.
    pub peers_free: std::collections::BTreeMap<String, u64>,
}

/// Peers whose free space a sample keeps (those with the least): a chart draws no more.
pub const PEERS_FREE: usize = 4;

/// The [`PEERS_FREE`] peers with the least free space, of `(peer, free)`.
pub fn least_free(mut all: Vec<(String, u64)>) -> std::collections::BTreeMap<String, u64> {
    all.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    all.into_iter().take(PEERS_FREE).collect()
}

/// The two windows the charts show.
#[derive(Serialize, Clone, Debug, Default, PartialEq, ts_rs::TS)]
pub struct Charts {
    pub hour: Vec<Sample>,
    pub day: Vec<Sample>,
}

/// Seconds between two samples of the hour, and of the day.
pub const HOUR_STEP: i64 = 10;
pub const DAY_STEP: i64 = 300;
const HOUR_LEN: usize = 360;
const DAY_LEN: usize = 288;

#[derive(Default)]
pub struct History {
    hour: VecDeque<Sample>,
    day: VecDeque<Sample>,
    /// Traffic totals at the last sample, for the rates.
    last_totals: Option<(i64, i64, i64)>,
    /// The IPFS node's totals at the last sample that had them: when, in, out.
    last_ipfs: Option<(i64, u64, u64)>,
}

impl History {
    /// Takes a sample at `at` of `counts` and the traffic `totals` (bytes in and out so far),
    /// and the IPFS node's totals if it told them. The day keeps one sample per
    /// [`DAY_STEP`]: the first of each step.
    pub fn push(&mut self, mut s: Sample, totals: (i64, i64), ipfs: Option<(u64, u64)>) {
        (s.ipfs_in, s.ipfs_out) = (None, None);
        if let Some((tin, tout)) = ipfs {
            if let Some((at, pin, pout)) = self.last_ipfs {
                let secs = (s.at - at).max(1) as f64;
                // A node restarted counts from zero again: its totals are the traffic since.
                let moved = |now: u64, then: u64| if now >= then { now - then } else { now };
                s.ipfs_in = Some(moved(tin, pin) as f64 / secs);
                s.ipfs_out = Some(moved(tout, pout) as f64 / secs);
            }
            self.last_ipfs = Some((s.at, tin, tout));
        }
        if let Some((at, tin, tout)) = self.last_totals {
            let secs = (s.at - at).max(1) as f64;
            s.bytes_in = (totals.0 - tin).max(0) as f64 / secs;
            s.bytes_out = (totals.1 - tout).max(0) as f64 / secs;
        }
        self.last_totals = Some((s.at, totals.0, totals.1));
        let new_step = self
            .day
            .back()
            .is_none_or(|last| s.at.div_euclid(DAY_STEP) != last.at.div_euclid(DAY_STEP));
        if new_step {
            if self.day.len() == DAY_LEN {
                self.day.pop_front();
            }
            self.day.push_back(s.clone());
        }
        if self.hour.len() == HOUR_LEN {
            self.hour.pop_front();
        }
        self.hour.push_back(s);
    }

    pub fn last(&self) -> Option<Sample> {
        self.hour.back().cloned()
    }

    pub fn charts(&self) -> Charts {
        Charts {
            hour: self.hour.iter().cloned().collect(),
            day: self.day.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hour_and_the_day_are_rings_of_fixed_size_with_rates_between_samples() {
        let mut h = History::default();
        for i in 0..1000i64 {
            let s = Sample {
                at: 1_000_000 + i * HOUR_STEP,
                pinned: i as u64,
                ..Default::default()
            };
            h.push(
                s,
                (i * 1000, i * 500),
                Some((i as u64 * 2000, i as u64 * 100)),
            );
        }
        let c = h.charts();
        assert_eq!(c.hour.len(), HOUR_LEN);
        assert_eq!(c.hour.last().unwrap().pinned, 999);
        assert_eq!(c.hour.first().unwrap().pinned, 640, "the last hour only");
        // 1000 samples over 10,000 s: one per 5-minute step.
        assert_eq!(c.day.len(), 34);
        assert!(
            c.day
                .windows(2)
                .all(|w| w[1].at.div_euclid(DAY_STEP) == w[0].at.div_euclid(DAY_STEP) + 1),
            "one sample per step"
        );
        // 1000 bytes in and 500 out per 10 s.
        let last = c.hour.last().unwrap();
        assert_eq!((last.bytes_in, last.bytes_out), (100.0, 50.0));
        // The IPFS node's: 2000 in and 100 out per 10 s; the first sample has no rate.
        assert_eq!((last.ipfs_in, last.ipfs_out), (Some(200.0), Some(10.0)));
        assert_eq!(c.day[0].ipfs_in, None);
        for i in 1000..1000 + 400 * 30 {
            h.push(
                Sample {
                    at: 1_000_000 + i * HOUR_STEP,
                    ..Default::default()
                },
                (0, 0),
                None,
            );
        }
        assert_eq!(
            h.charts().hour.last().unwrap().ipfs_in,
            None,
            "a node that stops telling has no rate"
        );
        assert_eq!(h.charts().day.len(), DAY_LEN, "the day is bounded too");
        assert_eq!(h.charts().hour.last().unwrap().bytes_in, 0.0);
    }

    #[test]
    fn an_ipfs_node_restarted_counts_from_zero_and_its_rate_stays_true() {
        let mut h = History::default();
        let at = |i: i64| Sample {
            at: 1_000 + i * HOUR_STEP,
            ..Default::default()
        };
        h.push(at(0), (0, 0), Some((50_000, 50_000)));
        h.push(at(1), (0, 0), Some((60_000, 55_000)));
        assert_eq!(h.last().unwrap().ipfs_in, Some(1000.0));
        // Restarted: totals went back to 300 and 100.
        h.push(at(2), (0, 0), Some((300, 100)));
        assert_eq!(
            (h.last().unwrap().ipfs_in, h.last().unwrap().ipfs_out),
            (Some(30.0), Some(10.0))
        );
    }

    #[test]
    fn a_sample_keeps_the_free_space_of_the_few_peers_with_the_least() {
        let all: Vec<(String, u64)> = (0..10u64).map(|i| (format!("p{i}"), 100 - i)).collect();
        let kept = least_free(all);
        assert_eq!(kept.len(), PEERS_FREE);
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["p6", "p7", "p8", "p9"]);
        assert_eq!(kept["p9"], 91);
    }
}
