//! Raft's safety when peers lose their state (issue: no acknowledged pin lost, ever): a peer
//! that waits to rejoin after `state cleanup` must not vote, or a candidate that never saw an
//! acknowledged pin can be elected with its vote and overwrite that pin on the others.
//!
//! Only the consensus is at work here (peers without IPFS nodes).

use std::collections::BTreeSet;

use cluster_tests::*;
use ipfs_cluster::types::{Cid, PinOptions};

/// A new CID for `text`, in the form the cluster lists it.
fn cid(text: &str) -> String {
    let c: Cid = identity_cid(text).parse().expect("a valid CID");
    c.to_string()
}

/// The pinset `peer` reports through its REST API.
async fn pins_of(peer: &Peer) -> BTreeSet<String> {
    pinset(&peer.client()).await.into_iter().collect()
}

/// Waits until every running peer in `peers` holds the same pinset, which includes `must`.
async fn all_agree_and_hold(c: &TestCluster, must: &[&str]) -> BTreeSet<String> {
    let found = wait_for(
        "every peer to hold the same pinset",
        DEADLINE * 3,
        || async {
            let mut sets = Vec::new();
            for p in &c.peers {
                sets.push(pins_of(p).await);
            }
            let same = sets.windows(2).all(|w| w[0] == w[1]);
            let holds = must.iter().all(|m| sets[0].contains(*m));
            (same && holds).then(|| sets[0].clone())
        },
    )
    .await;
    match found {
        Ok(set) => set,
        Err(_) => {
            for (i, p) in c.peers.iter().enumerate() {
                eprintln!("peer {i}: {:?}", pins_of(p).await);
            }
            panic!("the peers do not agree on a pinset holding {must:?}");
        }
    }
}

/// The sequence of the issue: a voter is wiped and waits to rejoin while the leader that
/// committed a pin with it dies and a voter that never saw the pin wakes up.
#[tokio::test(flavor = "multi_thread")]
async fn a_wiped_voter_waiting_to_rejoin_does_not_vote_and_no_acknowledged_pin_is_lost() {
    let mut c = TestCluster::start_without_ipfs(3, 0).await.unwrap();
    let (a, b, cc) = (0, 1, 2);
    let leader = c.leader_seen_by(a).await.unwrap();
    assert_eq!(leader, a, "the first peer leads the cluster it started");

    // 1. C sleeps (a laptop's lid closed).
    c.peers[cc].signal("-STOP");
    // 2. A pin acknowledged by A (committed by A and B).
    let x = cid("acknowledged while C slept");
    c.peers[a]
        .client()
        .pin(&x, &PinOptions::default())
        .await
        .expect("A and B commit the pin");
    // 3. B loses its state and is started to rejoin through C, as documented.
    c.peers[b].stop();
    c.peers[b].cleanup_state().unwrap();
    let via_c = c.peers[cc].cluster_addr();
    c.peers[b].spawn(&["--bootstrap", &via_c]).unwrap();
    c.peers[b]
        .wait_logged("takes no part in elections", DEADLINE)
        .await
        .unwrap();
    // 4. A dies; C wakes up and stands for election: it never saw the pin.
    c.peers[a].kill9();
    c.peers[cc].signal("-CONT");
    let c_id = c.peers[cc].id();
    wait_for("C to ask B for its vote, or to lead", DEADLINE, || async {
        let refused = c.peers[b]
            .current_log()
            .contains(&format!("refused a vote request from {c_id}"));
        let id = c.peers[cc].client().id().await.ok();
        let c_leads = id.is_some_and(|id| id.leader.as_deref() == Some(c_id.as_str()));
        (refused || c_leads).then_some(())
    })
    .await
    .unwrap();
    // 5. A comes back.
    c.peers[a].start(&[]).await.unwrap();
    c.peers[b].wait_ready().await.unwrap();

    // The acknowledged pin is on every peer, and the cluster takes writes again.
    let set = all_agree_and_hold(&c, &[&x]).await;
    assert!(set.contains(&x));
    let y = cid("after the faults");
    c.peers[b]
        .client()
        .pin(&y, &PinOptions::default())
        .await
        .expect("the cluster accepts writes again");
    all_agree_and_hold(&c, &[&x, &y]).await;
}

/// An unpin through any member of a pin acknowledged through another succeeds, even when that
/// member has not applied the pin yet (it learns of a commit only with the leader's next
/// message): it asks the leader how far to catch up first, instead of answering 404.
#[tokio::test(flavor = "multi_thread")]
async fn an_unpin_through_any_member_of_a_pin_acknowledged_elsewhere_succeeds() {
    let c = TestCluster::start_without_ipfs(3, 0).await.unwrap();
    let leader = c.leader_seen_by(0).await.unwrap();
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let mut unpinned = Vec::new();
    for i in 0..30 {
        let x = cid(&format!("pinned on the leader, unpinned elsewhere {i}"));
        c.peers[leader]
            .client()
            .pin(&x, &PinOptions::default())
            .await
            .unwrap();
        let through = others[i % others.len()];
        if let Err(e) = c.peers[through].client().unpin(&x).await {
            panic!("unpin {i} of {x} through peer {through} failed: {e}");
        }
        unpinned.push(x);
    }
    let set = all_agree_and_hold(&c, &[]).await;
    assert!(
        unpinned.iter().all(|x| !set.contains(x)),
        "an unpin was acknowledged but the pin stayed: {set:?}"
    );
}

/// A peer removed with `peers rm` and started again with `--bootstrap` replays a history in
/// which it is a member, then removed, then a member again: it stays joined (it was shut down
/// as "removed" a second after each join).
#[tokio::test(flavor = "multi_thread")]
async fn a_peer_removed_and_rejoined_stays_joined() {
    // The log travels an entry at a time, so that the rejoining peer goes through every
    // membership of the history it replays.
    let mut c = TestCluster::start_consensus_only(&[], 3, 0, |cfg| {
        cfg["consensus"]["raft"]["max_append_entries"] = 1.into();
    })
    .await
    .unwrap();
    let id = c.peers[2].id();
    // Entries between the memberships: the replaying peer spends a while in each.
    let fill = |c: &TestCluster, what: String| {
        let client = c.peers[0].client();
        async move {
            for i in 0..100 {
                let x = cid(&format!("{what} {i}"));
                client.pin(&x, &PinOptions::default()).await.unwrap();
            }
        }
    };
    for round in 0..2 {
        fill(&c, format!("before removal {round}")).await;
        let out = c.peers[0].ctl(&["peers", "rm", &id]);
        assert!(out.status.success(), "peers rm: {}", text(&out));
        assert!(
            c.peers[2].wait_exit().await.unwrap(),
            "a removed peer shuts down"
        );
        fill(&c, format!("after removal {round}")).await;
        let via = c.peers[0].cluster_addr();
        c.peers[2].start(&["--bootstrap", &via]).await.unwrap();
        // Writes through it, committed and seen by all: it is a member and running.
        let mut written = Vec::new();
        for i in 0..5 {
            let x = cid(&format!("through the rejoined peer, round {round}, {i}"));
            c.peers[2]
                .client()
                .pin(&x, &PinOptions::default())
                .await
                .expect("the rejoined peer takes writes");
            written.push(x);
        }
        let must: Vec<&str> = written.iter().map(String::as_str).collect();
        all_agree_and_hold(&c, &must).await;
        assert!(
            c.peers[2].is_running(),
            "the rejoined peer is still running"
        );
        let log = c.peers[2].current_log();
        assert!(
            !log.contains("removed from the cluster") && !log.contains("no longer in the"),
            "the rejoined peer believed it was removed:\n{log}"
        );
        let peers = c.peers[0].client().peers().await.unwrap();
        assert!(peers.iter().any(|p| p.id == id), "it is a member again");
    }
}

/// SIGTERM stops a peer whose join waits for a leader within seconds (it was ignored for up
/// to 12 × network_timeout while the join waited).
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_a_peer_waiting_to_join() {
    let mut c = TestCluster::start_without_ipfs(2, 0).await.unwrap();
    // Without its second voter the cluster cannot add anyone: a join waits.
    c.peers[1].kill9();
    let i = c.add_peer_on(None, 0, |_| {}).await.unwrap();
    c.peers[i]
        .wait_logged("takes no part in elections", DEADLINE)
        .await
        .unwrap();
    c.peers[i].signal("-TERM");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while c.peers[i].is_running() {
        assert!(
            std::time::Instant::now() < end,
            "a joining peer still runs 15 s after SIGTERM:\n{}",
            c.peers[i].current_log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A majority of voters lost their state: the cluster cannot elect a leader and waits (the
/// wiped peers do not vote), and the README's recovery (export from the surviving voter,
/// cleanup, import, start it alone, the others rejoin) brings back its pinset.
#[tokio::test(flavor = "multi_thread")]
async fn a_majority_of_wiped_voters_waits_and_the_documented_recovery_restores_the_pinset() {
    let mut c = TestCluster::start_without_ipfs(3, 0).await.unwrap();
    let x = cid("kept by the surviving voter");
    c.peers[0]
        .client()
        .pin(&x, &PinOptions::default())
        .await
        .unwrap();
    for p in &mut c.peers {
        p.stop();
    }
    c.peers[1].cleanup_state().unwrap();
    c.peers[2].cleanup_state().unwrap();
    let via = c.peers[0].cluster_addr();
    c.peers[0].spawn(&[]).unwrap();
    // Started, not ready (it cannot be): joins through it need it listening.
    c.peers[0]
        .wait_logged("REST API listening", DEADLINE)
        .await
        .unwrap();
    c.peers[1].spawn(&["--bootstrap", &via]).unwrap();
    c.peers[2].spawn(&["--bootstrap", &via]).unwrap();
    // The survivor (a leader again at once: openraft restores a restarted leader) is refused
    // by both wiped peers, and cannot commit.
    let a_id = c.peers[0].id();
    wait_for(
        "both wiped peers to refuse the survivor",
        DEADLINE,
        || async {
            let refused = |p: &Peer| {
                p.current_log()
                    .lines()
                    .any(|l| l.contains("refus") && l.contains(&a_id))
            };
            (refused(&c.peers[1]) && refused(&c.peers[2])).then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| {
        for p in &c.peers[1..] {
            eprintln!("--- {} ---\n{}", p.dir.display(), p.current_log());
        }
        panic!("{e}")
    });
    let y = cid("written while a majority lost its state");
    let refused = c.peers[0].client().pin(&y, &PinOptions::default()).await;
    assert!(refused.is_err(), "the survivor alone committed a pin");

    // The recovery, as the README says.
    for p in &mut c.peers {
        p.stop();
    }
    let export = c.peers[0].dir.join("pinset.json");
    let export = export.to_str().unwrap();
    for args in [
        &["state", "export", "-f", export][..],
        &["state", "cleanup", "--force"],
        &["state", "import", "--force", export],
    ] {
        let out = service(&c.peers[0].dir, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }
    c.peers[0].start(&[]).await.unwrap();
    let via = c.peers[0].cluster_addr();
    c.peers[1].start(&["--bootstrap", &via]).await.unwrap();
    c.peers[2].start(&["--bootstrap", &via]).await.unwrap();
    all_agree_and_hold(&c, &[&x]).await;
}

/// A peer removed while it was down never receives the entry that removed it, and the
/// leader's notice cannot reach it: started again, it learns it from a newer membership,
/// shuts down as removed, and can rejoin (found by the randomized schedules, seed 1011: a
/// peer removed while cut off ran on with a stale pinset).
#[tokio::test(flavor = "multi_thread")]
async fn a_peer_removed_while_down_learns_it_when_it_is_back() {
    let mut c = TestCluster::start_without_ipfs(3, 0).await.unwrap();
    let leader = c.leader_seen_by(0).await.unwrap();
    assert_ne!(leader, 2, "the first peer leads the cluster it started");
    c.peers[2].kill9();
    let id = c.peers[2].id();
    c.peers[0].client().peer_rm(&id).await.unwrap();
    c.peers[leader]
        .wait_logged(
            &format!("could not tell {id} that it was removed"),
            DEADLINE,
        )
        .await
        .unwrap();
    let x = cid("pinned while the removed peer was away");
    c.peers[0]
        .client()
        .pin(&x, &PinOptions::default())
        .await
        .unwrap();
    c.peers[2].spawn(&[]).unwrap();
    assert!(
        c.peers[2].wait_exit().await.unwrap(),
        "the removed peer shuts down by itself"
    );
    assert!(c.peers[2]
        .current_log()
        .contains("this peer was removed from the cluster"));
    let via = c.peers[0].cluster_addr();
    c.peers[2].start(&["--bootstrap", &via]).await.unwrap();
    all_agree_and_hold(&c, &[&x]).await;
}
