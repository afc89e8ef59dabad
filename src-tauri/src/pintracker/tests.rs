use std::time::Duration;

use super::*;
use crate::ipfsconn::fake::{dead_config, test_cid, FakeKubo};
use crate::ipfsconn::IpfsHttp;
use crate::state::StateHandle;
use crate::types::PinOptions;
use futures::StreamExt;

const ME: &str = "12D3KooWMe";
const DEADLINE: Duration = Duration::from_secs(10);

fn start(state: StateHandle, ipfs: crate::config::IpfsHttpConfig) -> StatelessTracker {
    StatelessTracker::start(
        TrackerIdentity {
            peer_id: ME.into(),
            peername: "me".into(),
        },
        Arc::new(state),
        Arc::new(IpfsHttp::new(&ipfs).unwrap()),
        StatelessTrackerConfig {
            concurrent_pins: 2,
            ..Default::default()
        },
        TrackerIntervals {
            state_sync: Duration::from_secs(3600),
            recover: Duration::from_secs(3600),
            ipfs_watch: Duration::from_millis(100),
        },
        &Tasks::new(),
    )
}

async fn wait_status(t: &StatelessTracker, cid: &Cid, want: TrackerStatus) -> PinInfo {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let info = t.status(cid).await;
        if info.info.status == want {
            return info;
        }
        assert!(
            std::time::Instant::now() < end,
            "{cid}: still {} ({}), wanted {want}",
            info.info.status,
            info.info.error
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the sync a tracker runs as it starts is over (it lists IPFS, so it counts
/// IPFS's pins), so that it cannot mend what a test sets up afterwards.
async fn first_sync_done(t: &StatelessTracker) {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while t.ipfs_pin_count().is_none() {
        assert!(std::time::Instant::now() < end, "the first sync never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn pin(n: u32, allocations: &[&str]) -> Pin {
    let mut p = Pin::new(test_cid(n), PinOptions::default());
    p.allocations = allocations.iter().map(|s| s.to_string()).collect();
    p
}

#[tokio::test]
async fn tracks_pins_allocated_here_and_reports_remote_ones() {
    let kubo = FakeKubo::start().await;
    let state = StateHandle::default();
    let t = start(state.clone(), kubo.config());
    let mine = pin(1, &[]);
    let theirs = pin(2, &["12D3KooWOther"]);
    for p in [&mine, &theirs] {
        state.insert(p.clone());
        t.track(p.clone());
    }
    let info = wait_status(&t, &mine.cid, TrackerStatus::Pinned).await;
    assert_eq!(info.peer, ME);
    assert_eq!(info.info.peername, "me");
    assert!(kubo.is_pinned(&mine.cid));
    wait_status(&t, &theirs.cid, TrackerStatus::Remote).await;
    assert!(!kubo.is_pinned(&theirs.cid));

    let all = t
        .status_all(StatusFilter::default())
        .collect::<Vec<_>>()
        .await;
    assert_eq!(all.len(), 2);
    let remote_only = t
        .status_all("remote".parse().unwrap())
        .collect::<Vec<_>>()
        .await;
    assert_eq!(remote_only.len(), 1);
    assert_eq!(remote_only[0].cid, theirs.cid);

    state.remove(&mine.cid);
    t.untrack(mine.cid);
    wait_status(&t, &mine.cid, TrackerStatus::Unpinned).await;
    assert!(!kubo.is_pinned(&mine.cid));
}

#[tokio::test]
async fn failed_pins_count_attempts_and_recover() {
    let kubo = FakeKubo::start().await;
    kubo.state.lock().unwrap().fail_pins = Some("no space left".into());
    let state = StateHandle::default();
    let t = start(state.clone(), kubo.config());
    let p = pin(3, &[]);
    state.insert(p.clone());
    t.track(p.clone());
    let info = wait_status(&t, &p.cid, TrackerStatus::PinError).await;
    assert_eq!(info.info.attempt_count, 1);
    assert!(info.info.error.contains("no space left"));
    assert!(
        info.info.priority_pin,
        "a fresh pin takes the priority lane"
    );
    let errors = t
        .status_all("error".parse().unwrap())
        .collect::<Vec<_>>()
        .await;
    assert_eq!(errors.len(), 1);

    // Still failing: the attempt count grows.
    t.recover(&p.cid).await;
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while t.status(&p.cid).await.info.attempt_count < 2 {
        assert!(std::time::Instant::now() < end, "second attempt never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kubo.state.lock().unwrap().fail_pins = None;
    let recovered: Vec<_> = t.recover_all().collect().await;
    assert_eq!(recovered.len(), 1, "{recovered:#?}");
    wait_status(&t, &p.cid, TrackerStatus::Pinned).await;
    // Pinned: recovering it queues nothing, and says nothing.
    assert_eq!(t.recover_queued(&p.cid).await, None);
    assert!(t.recover_all().collect::<Vec<_>>().await.is_empty());
}

#[tokio::test]
async fn state_sync_pins_what_ipfs_lost() {
    let kubo = FakeKubo::start().await;
    let p = pin(4, &[]);
    let state = StateHandle::new([p.clone()]);
    let t = start(state.clone(), kubo.config());
    // The maintenance loop syncs once at start.
    wait_status(&t, &p.cid, TrackerStatus::Pinned).await;
    // Someone unpins it behind the cluster's back.
    kubo.state.lock().unwrap().pinned.clear();
    wait_status(&t, &p.cid, TrackerStatus::UnexpectedlyUnpinned).await;
    t.sync().await;
    wait_status(&t, &p.cid, TrackerStatus::Pinned).await;
}

#[tokio::test]
async fn state_sync_asks_ipfs_once_and_unpins_what_moved_away() {
    let kubo = FakeKubo::start().await;
    // 40 pins allocated elsewhere; IPFS here still holds 10 of them (they moved away).
    let pins: Vec<Pin> = (100..140).map(|n| pin(n, &["12D3KooWOther"])).collect();
    let state = StateHandle::new(pins.iter().cloned());
    {
        let mut k = kubo.state.lock().unwrap();
        for p in &pins[..10] {
            k.pinned.insert(p.cid.multihash_bytes());
        }
    }
    let t = start(state.clone(), kubo.config());
    for p in &pins[..10] {
        wait_status(&t, &p.cid, TrackerStatus::Remote).await;
    }
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while !kubo.state.lock().unwrap().pinned.is_empty() {
        assert!(
            std::time::Instant::now() < end,
            "moved-away pins never unpinned"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One list for the whole pinset, not a question per pin.
    let k = kubo.state.lock().unwrap();
    assert_eq!(k.pin_ls_one_calls, 0, "no per-CID pin/ls during sync");
    assert!(k.pin_ls_all_calls >= 1);
}

#[tokio::test]
async fn an_unreachable_ipfs_gives_cluster_and_pin_errors() {
    let p = pin(5, &[]);
    let state = StateHandle::new([p.clone()]);
    let t = start(state.clone(), dead_config());
    // Whether IPFS has it cannot be known: a cluster error, not a claim it is unpinned.
    let info = wait_status(&t, &p.cid, TrackerStatus::ClusterError).await;
    assert!(
        info.info.error.contains("unreachable"),
        "{}",
        info.info.error
    );
    // A pin attempted now fails on this peer.
    let q = pin(6, &[]);
    state.insert(q.clone());
    t.track(q.clone());
    let info = wait_status(&t, &q.cid, TrackerStatus::PinError).await;
    assert_eq!(info.info.attempt_count, 1);
}

#[tokio::test]
async fn an_unpin_cancels_a_pin_in_progress() {
    let kubo = FakeKubo::start().await;
    let p = pin(7, &[]);
    kubo.state
        .lock()
        .unwrap()
        .unavailable
        .insert(p.cid.multihash_bytes());
    let state = StateHandle::default();
    let t = start(state.clone(), kubo.config());
    state.insert(p.clone());
    t.track(p.clone());
    wait_status(&t, &p.cid, TrackerStatus::Pinning).await;
    state.remove(&p.cid);
    t.untrack(p.cid);
    wait_status(&t, &p.cid, TrackerStatus::Unpinned).await;
}

#[tokio::test]
async fn pausing_holds_queued_pins_until_resumed() {
    let kubo = FakeKubo::start().await;
    let state = StateHandle::default();
    let t = start(state.clone(), kubo.config());
    t.set_paused(true);
    assert!(t.is_paused());
    let p = pin(8, &[]);
    state.insert(p.clone());
    t.track(p.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(t.status(&p.cid).await.info.status, TrackerStatus::PinQueued);
    assert!(!kubo.is_pinned(&p.cid));
    t.set_paused(false);
    wait_status(&t, &p.cid, TrackerStatus::Pinned).await;
}

#[tokio::test]
async fn the_status_of_every_pin_streams_in_pages_in_cid_order_with_one_question_to_ipfs() {
    let kubo = FakeKubo::start().await;
    let state = StateHandle::default();
    let t = start(state.clone(), kubo.config());
    // More pins than a page holds, most allocated elsewhere, a few here.
    for n in 0..2500 {
        state.insert(pin(n, &["12D3KooWOther"]));
    }
    let mine: Vec<Pin> = (5000..5003).map(|n| pin(n, &[])).collect();
    for p in &mine {
        state.insert(p.clone());
        t.track(p.clone());
        wait_status(&t, &p.cid, TrackerStatus::Pinned).await;
    }
    // An operation on a CID no longer in the pinset: a failed pin, then the pin removed.
    kubo.state.lock().unwrap().fail_pins = Some("no space left".into());
    let gone = pin(7000, &[]);
    state.insert(gone.clone());
    t.track(gone.clone());
    wait_status(&t, &gone.cid, TrackerStatus::PinError).await;
    state.remove(&gone.cid);

    let asked = kubo.state.lock().unwrap().pin_ls_all_calls;
    let all: Vec<PinInfo> = t.status_all(StatusFilter::default()).collect().await;
    assert_eq!(all.len(), 2500 + 3 + 1);
    let keys: Vec<String> = all.iter().map(|i| i.pin.cid.to_string()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted, "in CID order, each once");
    let status = |cid: &Cid| all.iter().find(|i| i.pin.cid == *cid).unwrap().info.status;
    for p in &mine {
        assert_eq!(status(&p.cid), TrackerStatus::Pinned);
    }
    assert_eq!(status(&gone.cid), TrackerStatus::PinError);
    assert_eq!(status(&test_cid(17)), TrackerStatus::Remote);
    assert_eq!(
        kubo.state.lock().unwrap().pin_ls_all_calls,
        asked + 1,
        "one pin/ls for the whole listing"
    );
}

#[test]
fn a_queued_operation_holds_neither_the_pin_nor_a_token() {
    // A queue may hold a million operations (max_pin_queue_size): the pin (with its
    // allocations, name and metadata) is read from the pinset when it runs.
    assert!(
        std::mem::size_of::<Operation>() <= 72,
        "{} bytes",
        std::mem::size_of::<Operation>()
    );
}

#[tokio::test]
async fn a_queued_pin_that_left_the_pinset_or_moved_away_is_dropped_without_asking_ipfs() {
    let kubo = FakeKubo::start().await;
    let state = StateHandle::default();
    let t = start(state.clone(), kubo.config());
    t.set_paused(true);
    let gone = pin(21, &[]);
    let moved = pin(22, &[]);
    let kept = pin(23, &[]);
    for p in [&gone, &moved, &kept] {
        state.insert(p.clone());
        t.track(p.clone());
    }
    // While queued: one leaves the pinset (its unpin not yet seen), one is reallocated.
    state.remove(&gone.cid);
    state.insert(pin(22, &["12D3KooWOther"]));
    t.set_paused(false);
    wait_status(&t, &kept.cid, TrackerStatus::Pinned).await;
    wait_status(&t, &gone.cid, TrackerStatus::Unpinned).await;
    wait_status(&t, &moved.cid, TrackerStatus::Remote).await;
    assert_eq!(kubo.state.lock().unwrap().pin_calls, 1, "only the kept pin");
    assert!(!kubo.is_pinned(&gone.cid) && !kubo.is_pinned(&moved.cid));
    assert_eq!(t.queue_len(), 0);
}

#[tokio::test]
async fn the_count_of_ipfs_pins_comes_from_the_last_listing_and_the_operations_since() {
    let kubo = FakeKubo::start().await;
    for n in 31..34 {
        let mh = test_cid(n).multihash_bytes();
        kubo.state.lock().unwrap().pinned.insert(mh);
    }
    let state = StateHandle::default();
    let t = start(state.clone(), kubo.config());
    // The first state sync lists IPFS once.
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while t.ipfs_pin_count() != Some(3) {
        assert!(std::time::Instant::now() < end, "{:?}", t.ipfs_pin_count());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listings = kubo.state.lock().unwrap().pin_ls_all_calls;
    let p = pin(34, &[]);
    state.insert(p.clone());
    t.track(p.clone());
    wait_status(&t, &p.cid, TrackerStatus::Pinned).await;
    assert_eq!(t.ipfs_pin_count(), Some(4));
    state.remove(&p.cid);
    t.untrack(p.cid);
    wait_status(&t, &p.cid, TrackerStatus::Unpinned).await;
    assert_eq!(t.ipfs_pin_count(), Some(3));
    assert_eq!(
        kubo.state.lock().unwrap().pin_ls_all_calls,
        listings,
        "counted without listing IPFS again"
    );

    let down = start(StateHandle::default(), dead_config());
    assert_eq!(down.ipfs_pin_count(), None, "unknown while IPFS is down");
}

#[tokio::test]
async fn unpins_complete_while_100000_pins_are_queued() {
    // IPFS Cluster's tracker has an unpin lane and worker of its own: a large import must
    // not hold up an unpin. Here every pin worker is stuck on a pin IPFS cannot find.
    let kubo = FakeKubo::start().await;
    let state = StateHandle::default();
    let t = start(state.clone(), kubo.config());
    for n in 0..2 {
        let p = pin(500_000 + n, &[]);
        kubo.state
            .lock()
            .unwrap()
            .unavailable
            .insert(p.cid.multihash_bytes());
        state.insert(p.clone());
        t.track(p.clone());
        wait_status(&t, &p.cid, TrackerStatus::Pinning).await;
    }
    for n in 0..100_000 {
        let p = pin(n, &[]);
        state.insert(p.clone());
        t.track(p);
    }
    assert_eq!(t.stats().pin_queued, 100_000);
    // A pin IPFS holds, then unpinned from the cluster.
    let gone = pin(900_000, &[]);
    kubo.state
        .lock()
        .unwrap()
        .pinned
        .insert(gone.cid.multihash_bytes());
    t.untrack(gone.cid);
    wait_status(&t, &gone.cid, TrackerStatus::Unpinned).await;
    assert!(!kubo.is_pinned(&gone.cid));
    assert_eq!(t.stats().pin_queued, 100_000, "the pins are still waiting");
}

#[tokio::test]
async fn a_queued_unpin_of_a_cid_pinned_here_again_leaves_ipfs_alone() {
    // The state feed may hand the tracker an unpin whose pin came back (the pin itself was
    // re-read from the state rather than queued): the unpin must not remove it.
    let kubo = FakeKubo::start().await;
    let state = StateHandle::default();
    let t = start(state.clone(), kubo.config());
    let p = pin(77, &[]);
    state.insert(p.clone());
    t.track(p.clone());
    wait_status(&t, &p.cid, TrackerStatus::Pinned).await;
    t.untrack(p.cid);
    wait_status(&t, &p.cid, TrackerStatus::Pinned).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        kubo.is_pinned(&p.cid),
        "IPFS still pins what the state allocates here"
    );
}

#[tokio::test]
async fn a_sync_replaces_a_queued_unpin_of_a_pin_allocated_here_that_ipfs_lacks() {
    // What a state reset (see `state::feed`) must do for a CID unpinned and pinned again
    // whose pin was re-read rather than queued.
    let kubo = FakeKubo::start().await;
    let state = StateHandle::default();
    let t = start(state.clone(), kubo.config());
    t.set_paused(true);
    let p = pin(78, &[]);
    state.insert(p.clone());
    t.untrack(p.cid);
    assert_eq!(
        t.status(&p.cid).await.info.status,
        TrackerStatus::UnpinQueued
    );
    t.sync().await;
    assert_eq!(t.status(&p.cid).await.info.status, TrackerStatus::PinQueued);
    t.set_paused(false);
    wait_status(&t, &p.cid, TrackerStatus::Pinned).await;
    assert!(kubo.is_pinned(&p.cid));
}

#[tokio::test]
async fn the_running_counts_match_a_walk_of_every_operation() {
    // queue_len and stats answer from counts kept as operations change (the desktop asks
    // every second); they must agree with a walk through pins, unpins, failures, cancels,
    // retries and syncs.
    let kubo = FakeKubo::start().await;
    let state = StateHandle::default();
    let t = start(state.clone(), kubo.config());
    let agree = |t: &StatelessTracker| {
        let ops = t.inner.ops.lock().unwrap();
        assert_eq!(ops.counts(), ops.counted());
    };
    let hung = pin(1_000, &[]);
    kubo.state
        .lock()
        .unwrap()
        .unavailable
        .insert(hung.cid.multihash_bytes());
    state.insert(hung.clone());
    t.track(hung.clone());
    for n in 0..200 {
        let p = pin(n, &[]);
        state.insert(p.clone());
        t.track(p);
        agree(&t);
    }
    for n in (0..200).step_by(3) {
        state.remove(&test_cid(n));
        t.untrack(test_cid(n));
        agree(&t);
    }
    kubo.state.lock().unwrap().fail_pins = Some("no space left".into());
    for n in 300..320 {
        let p = pin(n, &[]);
        state.insert(p.clone());
        t.track(p);
    }
    // Until every operation but the hung pin is done or failed.
    let end = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        agree(&t);
        let s = t.stats();
        if s.pin_queued + s.unpin_queued + s.unpinning == 0 && s.pinning == 1 {
            break;
        }
        assert!(std::time::Instant::now() < end, "still busy: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(t.stats().pin_error > 0, "{:?}", t.stats());
    kubo.state.lock().unwrap().fail_pins = None;
    t.sync().await;
    agree(&t);
    let _: Vec<_> = t.recover_all().collect().await;
    agree(&t);
    // The hung pin cancelled by its unpin.
    state.remove(&hung.cid);
    t.untrack(hung.cid);
    wait_status(&t, &hung.cid, TrackerStatus::Unpinned).await;
    agree(&t);
    assert_eq!(t.queue_len() as u64, {
        let s = t.stats();
        s.pin_queued + s.pinning + s.unpin_queued + s.unpinning
    });
}

#[tokio::test]
async fn an_unpin_of_a_cid_allocated_here_again_that_ipfs_lacks_pins_it() {
    // The feed may hand over an unpin after a reset whose sync found the re-pin already: the
    // unpin replaced the pin still owed, and must pin it rather than drop it.
    let kubo = FakeKubo::start().await;
    let state = StateHandle::default();
    let t = start(state.clone(), kubo.config());
    first_sync_done(&t).await;
    t.set_paused(true);
    let p = pin(79, &[]);
    state.insert(p.clone());
    t.track(p.clone());
    t.untrack(p.cid);
    assert_eq!(
        t.status(&p.cid).await.info.status,
        TrackerStatus::UnpinQueued
    );
    t.set_paused(false);
    wait_status(&t, &p.cid, TrackerStatus::Pinned).await;
    assert!(kubo.is_pinned(&p.cid));
}

#[tokio::test]
async fn a_flood_of_remote_pins_spawns_no_task_per_pin_and_still_unpins_what_moved_away() {
    // Every pin applied that is allocated elsewhere asks whether IPFS holds it here (the
    // allocation may have moved away). One task per such pin made a large import of remote
    // pins a task flood; a bounded queue and one worker do it, and a full queue leaves the
    // rest to one sync.
    let kubo = FakeKubo::start().await;
    let state = StateHandle::default();
    let t = start(state.clone(), kubo.config());
    first_sync_done(&t).await;
    let moved = pin(60_000, &["12D3KooWElsewhere"]);
    kubo.state
        .lock()
        .unwrap()
        .pinned
        .insert(moved.cid.multihash_bytes());
    state.insert(moved.clone());
    let before = t.inner.tasks.len();
    t.track(moved.clone());
    for n in 0..20_000 {
        let p = pin(n, &["12D3KooWElsewhere"]);
        state.insert(p.clone());
        t.track(p);
    }
    assert!(
        t.inner.tasks.len() < before + 100,
        "{} tasks for 20,001 remote pins",
        t.inner.tasks.len() - before
    );
    wait_status(&t, &moved.cid, TrackerStatus::Remote).await;
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while kubo.is_pinned(&moved.cid) {
        assert!(
            std::time::Instant::now() < end,
            "what moved away stays pinned in IPFS"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_summary_counts_what_a_status_walk_finds_through_moves_unpins_and_queues() {
    let kubo = FakeKubo::start().await;
    let state = StateHandle::default();
    state.count_for(ME);
    let t = start(state.clone(), kubo.config());
    first_sync_done(&t).await;
    let pinned_here = |p: Pin| {
        state.insert(p.clone());
        t.track(p.clone());
        p
    };
    let here = pinned_here(pin(1, &[ME]));
    let everywhere = pinned_here(pin(2, &[]));
    let moving = pinned_here(pin(3, &[ME]));
    let leaving = pinned_here(pin(4, &[ME]));
    for p in [&here, &everywhere, &moving, &leaving] {
        wait_status(&t, &p.cid, TrackerStatus::Pinned).await;
    }
    t.set_paused(true);
    // Moved away while IPFS holds it: an unpin, shown in place of "remote".
    let moved = pin(3, &["elsewhere"]);
    state.insert(moved.clone());
    t.track(moved.clone());
    wait_status(&t, &moved.cid, TrackerStatus::UnpinQueued).await;
    // Left the pinset: an unpin of a CID the pinset no longer has.
    state.remove(&leaving.cid);
    t.untrack(leaving.cid);
    // Remote, and a pin waiting its turn.
    let remote = pin(5, &["elsewhere"]);
    state.insert(remote.clone());
    t.track(remote.clone());
    let waiting = pinned_here(pin(6, &[ME]));
    wait_status(&t, &waiting.cid, TrackerStatus::PinQueued).await;

    let mut walked = StatusSummary::default();
    let mut all = t.status_all(StatusFilter::default());
    while let Some(info) = all.next().await {
        *match info.info.status {
            TrackerStatus::Pinned => &mut walked.pinned,
            TrackerStatus::Remote => &mut walked.remote,
            TrackerStatus::PinQueued => &mut walked.pin_queued,
            TrackerStatus::UnpinQueued => &mut walked.unpin_queued,
            other => panic!("unexpected {other:?}"),
        } += 1;
    }
    let s = t.summary().await.unwrap();
    assert_eq!(
        (s.pinned, s.remote, s.pin_queued, s.unpin_queued),
        (
            walked.pinned,
            walked.remote,
            walked.pin_queued,
            walked.unpin_queued
        ),
        "{s:?}"
    );
    assert_eq!(
        (s.pinned, s.remote, s.pin_queued, s.unpin_queued),
        (2, 1, 1, 2)
    );
    assert_eq!((s.pins, s.allocated_here), (5, 3));
}

#[tokio::test]
async fn a_sync_brings_operations_in_line_with_the_pinset_so_the_summary_matches_a_walk() {
    // After a reset the tracker re-reads the pinset instead of hearing each change: an unpin
    // of a pin allocated here again (which IPFS still holds), an unpin of one that moved away
    // but was queued as if it left the pinset, and a pin of one now allocated elsewhere.
    let kubo = FakeKubo::start().await;
    let state = StateHandle::default();
    state.count_for(ME);
    let t = start(state.clone(), kubo.config());
    first_sync_done(&t).await;
    let back = pin(1, &[ME]);
    state.insert(back.clone());
    t.track(back.clone());
    wait_status(&t, &back.cid, TrackerStatus::Pinned).await;
    t.set_paused(true);
    t.untrack(back.cid);
    let moved = pin(2, &["elsewhere"]);
    state.insert(moved.clone());
    t.untrack(moved.cid);
    let gone_elsewhere = pin(3, &[ME]);
    state.insert(gone_elsewhere.clone());
    t.track(gone_elsewhere.clone());
    state.insert(pin(3, &["elsewhere"]));
    t.sync().await;
    assert_eq!(
        t.status(&back.cid).await.info.status,
        TrackerStatus::PinQueued
    );
    assert_eq!(
        t.status(&gone_elsewhere.cid).await.info.status,
        TrackerStatus::Remote
    );
    let s = t.summary().await.unwrap();
    assert_eq!(
        (s.pinned, s.remote, s.pin_queued, s.unpin_queued),
        (0, 1, 1, 1),
        "{s:?}"
    );
    t.set_paused(false);
    wait_status(&t, &back.cid, TrackerStatus::Pinned).await;
    assert!(kubo.is_pinned(&back.cid));
}

#[tokio::test]
async fn changes_are_told_as_coalesced_events_and_the_summary_then_shows_them() {
    let kubo = FakeKubo::start().await;
    let state = StateHandle::default();
    state.count_for(ME);
    let t = start(state.clone(), kubo.config());
    first_sync_done(&t).await;
    let mut changes = t.changes();
    changes.borrow_and_update();
    assert!(!changes.has_changed().unwrap(), "no change yet");

    // A remote pin changes no operation, but the summary's count of remote pins.
    let remote = pin(1, &["elsewhere"]);
    state.insert(remote.clone());
    t.track(remote);
    tokio::time::timeout(DEADLINE, changes.changed())
        .await
        .expect("a remote pin is told")
        .unwrap();
    assert_eq!(t.summary().await.unwrap().remote, 1);

    // Many changes while nobody looks: one wake, and the summary has them all.
    t.set_paused(true);
    for n in 2..502 {
        let p = pin(n, &[ME]);
        state.insert(p.clone());
        t.track(p);
    }
    tokio::time::timeout(DEADLINE, changes.changed())
        .await
        .expect("pins queued here are told")
        .unwrap();
    changes.borrow_and_update();
    assert!(
        !changes.has_changed().unwrap(),
        "a subscriber wakes once for every change since it last looked"
    );
    assert_eq!(t.summary().await.unwrap().pin_queued, 500);

    // Each pin done is told: the summary reaches all of them pinned.
    t.set_paused(false);
    let end = std::time::Instant::now() + DEADLINE;
    loop {
        tokio::time::timeout(
            end.saturating_duration_since(std::time::Instant::now()),
            changes.changed(),
        )
        .await
        .expect("pinning is told until every pin is pinned")
        .unwrap();
        if t.summary().await.unwrap().pinned == 500 {
            break;
        }
    }
}
