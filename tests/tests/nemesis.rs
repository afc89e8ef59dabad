//! Randomized fault schedules, checked (see `cluster_tests::nemesis` for the faults and the
//! checker). CI runs `NEMESIS_SCHEDULES` schedules (default 20) with seeds from
//! `NEMESIS_FIRST_SEED` (default 1); `NEMESIS_SEED=N` runs seed N alone. The soak:
//!
//!     NEMESIS_SCHEDULES=1000 NEMESIS_FIRST_SEED=<any> cargo test --release -p cluster-tests \
//!         --test nemesis -- --nocapture
//!
//! (`NEMESIS_MINUTES=m` starts no schedule after m minutes; `NEMESIS_STEPS` sets the steps
//! of each, 10 by default.)
//!
//! A seed that once failed becomes a named test below, so that it is run every time.

use cluster_tests::nemesis::{self, Plan};

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Runs the schedules of `seeds` and fails naming every seed that broke a guarantee.
async fn check(seeds: impl IntoIterator<Item = u64>) {
    let steps = env("NEMESIS_STEPS").unwrap_or(10) as usize;
    // A soak may also be bounded in time: no new schedule after NEMESIS_MINUTES.
    let until = env("NEMESIS_MINUTES")
        .map(|m| std::time::Instant::now() + std::time::Duration::from_secs(m * 60));
    let mut failed = Vec::new();
    let mut ran = 0;
    for seed in seeds {
        if until.is_some_and(|u| std::time::Instant::now() >= u) {
            println!("nemesis: NEMESIS_MINUTES reached");
            break;
        }
        let plan = Plan::for_seed(seed, steps);
        let out = nemesis::run(&plan).await.expect("the test cluster starts");
        ran += 1;
        println!(
            "nemesis: seed {seed}: {} voters, {} pins and {} unpins acknowledged, {} failed \
             operations, {} violations",
            plan.voters,
            out.acknowledged_pins,
            out.acknowledged_unpins,
            out.failed_ops,
            out.violations.len()
        );
        if !out.violations.is_empty() {
            failed.push(format!("seed {seed}: {}", out.violations.join("; ")));
        }
    }
    println!("nemesis: {ran} schedules, {} with violations", failed.len());
    assert!(failed.is_empty(), "violations:\n{}", failed.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn randomized_fault_schedules_lose_no_acknowledged_pin() {
    if let Some(seed) = env("NEMESIS_SEED") {
        return check([seed]).await;
    }
    let first = env("NEMESIS_FIRST_SEED").unwrap_or(1);
    let count = env("NEMESIS_SCHEDULES").unwrap_or(20);
    check(first..first + count).await;
}

/// Seed 4 found a join request from an earlier start of a wiped peer arriving after its
/// current start had joined: the leader recorded the dead state, and the peer refused every
/// message for good. The leader now asks the joining peer for its state first.
#[tokio::test(flavor = "multi_thread")]
async fn seed_4_a_late_join_from_an_earlier_start_does_not_lock_the_peer_out() {
    check([4]).await;
}

/// Seed 2085 found a peer removed while it was restarting: it learned of its removal, but
/// the daemon watched for removal only once ready, which a removed peer never becomes again,
/// so it ran on outside the cluster.
#[tokio::test(flavor = "multi_thread")]
async fn seed_2085_a_peer_removed_while_restarting_shuts_down() {
    check([2085]).await;
}
