//! Chooses which peers hold a pin (SPEC §6): the balanced allocator.
//!
//! Order of preference: current allocations that are still valid (so a re-pin moves nothing),
//! then the user's `user_allocations`, then the remaining candidates as [`rank`] orders them
//! by their metrics (`allocate_by`: tag partitions first, then most free space).

use crate::components::{Allocator, NotEnoughPeers, FREESPACE, TAG_PREFIX};
use crate::types::{Metric, Pin};

/// The balanced allocator, ranking by `allocator.balanced.allocate_by`.
pub struct Balanced {
    pub allocate_by: Vec<String>,
}

impl Allocator for Balanced {
    fn rank(
        &self,
        candidates: &[String],
        metric: &dyn Fn(&str, &str) -> Option<Metric>,
    ) -> Vec<String> {
        rank(candidates, &self.allocate_by, metric)
    }

    /// `max == -1` means every peer, which IPFS Cluster records as an empty allocation list.
    fn allocate(
        &self,
        pin: &Pin,
        current: &[String],
        candidates: &[String],
    ) -> Result<Vec<String>, NotEnoughPeers> {
        let (min, max) = (
            pin.options.replication_factor_min,
            pin.options.replication_factor_max,
        );
        let user_allocations = &pin.options.user_allocations;
        if max == -1 {
            return Ok(Vec::new());
        }
        let mut chosen: Vec<String> = Vec::new();
        let valid = |p: &String| candidates.contains(p);
        for p in current.iter().chain(user_allocations).chain(candidates) {
            if chosen.len() >= max as usize {
                break;
            }
            if valid(p) && !chosen.contains(p) {
                chosen.push(p.clone());
            }
        }
        if (chosen.len() as i32) < min {
            return Err(NotEnoughPeers {
                need: min,
                found: chosen.len(),
            });
        }
        Ok(chosen)
    }
}

/// Orders `candidates` by `allocate_by`: candidates are grouped by the values of their `tag:*`
/// metrics and the groups take turns (so copies spread across groups, e.g. regions); within
/// and across groups the numeric metrics decide, `freespace` highest first and anything else
/// (`numpin`, `pinqueue`) lowest first. Ties keep the given order.
fn rank(
    candidates: &[String],
    allocate_by: &[String],
    metric: impl Fn(&str, &str) -> Option<Metric>,
) -> Vec<String> {
    let (tags, numeric): (Vec<&String>, Vec<&String>) =
        allocate_by.iter().partition(|a| a.starts_with(TAG_PREFIX));
    let score = |peer: &str| -> Vec<i64> {
        numeric
            .iter()
            .map(|name| {
                let w = metric(name, peer).map(|m| m.weight).unwrap_or(0);
                if name.as_str() == FREESPACE {
                    w.saturating_neg()
                } else {
                    w
                }
            })
            .collect()
    };
    let mut sorted: Vec<String> = candidates.to_vec();
    sorted.sort_by_cached_key(|p| score(p));
    // Group by tag values, groups in order of their best member.
    let mut groups: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    for p in sorted {
        let key: Vec<String> = tags
            .iter()
            .map(|t| metric(t, &p).map(|m| m.value).unwrap_or_default())
            .collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(p),
            None => groups.push((key, vec![p])),
        }
    }
    let mut out = Vec::with_capacity(candidates.len());
    let mut round = 0;
    while out.len() < candidates.len() {
        for (_, members) in &groups {
            if let Some(p) = members.get(round) {
                out.push(p.clone());
            }
        }
        round += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn allocate(
        min: i32,
        max: i32,
        current: &[String],
        user: &[String],
        candidates: &[String],
    ) -> Result<Vec<String>, NotEnoughPeers> {
        let b = Balanced {
            allocate_by: Vec::new(),
        };
        let mut pin = Pin::new(
            "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
                .parse()
                .unwrap(),
            Default::default(),
        );
        pin.options.replication_factor_min = min;
        pin.options.replication_factor_max = max;
        pin.options.user_allocations = user.to_vec();
        b.allocate(&pin, current, candidates)
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn everywhere_is_empty() {
        assert_eq!(
            allocate(-1, -1, &[], &[], &s(&["a", "b"])).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn keeps_current_then_user_then_candidates() {
        let got = allocate(2, 3, &s(&["c"]), &s(&["b"]), &s(&["a", "b", "c", "d"])).unwrap();
        assert_eq!(got, s(&["c", "b", "a"]));
        // A current allocation that is no longer a candidate is dropped.
        let got = allocate(1, 1, &s(&["gone"]), &[], &s(&["a"])).unwrap();
        assert_eq!(got, s(&["a"]));
    }

    #[test]
    fn rank_spreads_over_tags_then_prefers_free_space() {
        let metrics: BTreeMap<(&str, &str), (&str, i64)> = BTreeMap::from([
            (("freespace", "a"), ("", 10)),
            (("freespace", "b"), ("", 30)),
            (("freespace", "c"), ("", 20)),
            (("freespace", "d"), ("", 40)),
            (("tag:group", "a"), ("eu", 0)),
            (("tag:group", "b"), ("eu", 0)),
            (("tag:group", "c"), ("us", 0)),
            (("tag:group", "d"), ("eu", 0)),
        ]);
        let get = |name: &str, peer: &str| {
            metrics.get(&(name, peer)).map(|(v, w)| Metric {
                name: name.into(),
                peer: peer.into(),
                value: v.to_string(),
                weight: *w,
                ..Default::default()
            })
        };
        let all = s(&["a", "b", "c", "d"]);
        let by_space = rank(&all, &s(&["freespace"]), get);
        assert_eq!(by_space, s(&["d", "b", "c", "a"]));
        let by_tag = rank(&all, &s(&["tag:group", "freespace"]), get);
        // eu's best (d), then us's only (c), then the rest of eu.
        assert_eq!(by_tag, s(&["d", "c", "b", "a"]));
    }

    #[test]
    fn not_enough_peers() {
        let err = allocate(3, 3, &[], &[], &s(&["a", "b"])).unwrap_err();
        assert_eq!(err, NotEnoughPeers { need: 3, found: 2 });
        assert!(
            err.to_string().contains("not enough peers to allocate"),
            "{err}"
        );
    }
}
