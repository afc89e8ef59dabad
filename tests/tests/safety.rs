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
    wait_for("B to ask C to join", DEADLINE, || async {
        c.peers[b]
            .current_log()
            .contains("this peer lost its Raft state")
            .then_some(())
    })
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
