//! Chooses which peers hold a pin (SPEC §6).
//!
//! Order of preference: current allocations that are still valid (so a re-pin moves nothing),
//! then the user's `user_allocations`, then the remaining candidates in the order given (the
//! caller sorts candidates by its metrics; without metrics, by peer id).

/// Picks up to `max` peers, at least `min`. `max == -1` means every peer, which IPFS Cluster
/// records as an empty allocation list.
pub fn allocate(
    min: i32,
    max: i32,
    current: &[String],
    user_allocations: &[String],
    candidates: &[String],
) -> Result<Vec<String>, String> {
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
        return Err(format!(
            "not enough peers to allocate: need at least {min}, found {} valid candidate(s)",
            chosen.len()
        ));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn not_enough_peers() {
        let err = allocate(3, 3, &[], &[], &s(&["a", "b"])).unwrap_err();
        assert!(err.contains("not enough peers to allocate"), "{err}");
    }
}
