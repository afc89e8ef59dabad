//! Leadership hand-over before a planned stop (SIGTERM, the app's Quit, a restart for an
//! upgrade): a leader that just stops leaves the cluster without one until a follower's
//! election timeout passes (`bench/`: about 3.5 s with IPFS Cluster's 1 s timeout), and every
//! write waits that long. Instead the leader stops taking writes into its log, lets an
//! up-to-date voter catch up with every entry, and asks it to stand for election at once
//! (`RaftRequest::Campaign`); the leader grants it its vote, so with three voters the new
//! leader is elected within a round trip. Writes that reached the old leader meanwhile are
//! held ([`super::link::LeaderLink::gate`]) and then sent to the new one.
//!
//! openraft 0.9 has no leadership transfer of its own (0.10 has `transfer_leader`); this is
//! built from its `trigger().elect()`. openraft grants no vote within a lease
//! (`election_timeout_max`): a follower for that long after it last heard the leader, the
//! leader for that long after it was elected. So with two or three voters the leader, if
//! elected less than a lease ago, waits for its own lease to pass, and the candidate wins with
//! the leader's vote and its own. With more voters the others' votes are needed too: the
//! leader stops its heartbeats for a lease first, so that writes pause for about a lease
//! (against a lease and an election timeout when a leader just stops). A voter of a release
//! without `Campaign` (0.1.0) is not asked (the call is unsupported by its protocol); if no
//! voter can take over, the peer stops as before.

use std::time::{Duration, Instant};

use openraft::ServerState;

use super::network::{RaftRequest, RaftResponse};
use super::raft::RaftConsensus;
use super::typ::NodeId;

/// Why no voter took leadership over (told in the log; the peer then stops as the leader).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct NoHandOver(pub String);

impl RaftConsensus {
    /// Hands leadership to an up-to-date voter when this peer leads and another voter can
    /// take over; returns once another peer leads, or when it could not be done (told in the
    /// log). Bounded by `wait_for_leader_timeout` less an election timeout (what a write held
    /// at the gate waits).
    pub(super) async fn hand_over(&self) {
        let m = self.raft().metrics().borrow().clone();
        if m.state != ServerState::Leader {
            return;
        }
        let others: Vec<NodeId> = m
            .membership_config
            .membership()
            .voter_ids()
            .filter(|v| *v != self.me)
            .collect();
        if others.is_empty() {
            return;
        }
        let started = Instant::now();
        let election = Duration::from_millis(self.raft_settings.election_timeout_max);
        // Within the time a held write waits at the gate, so that it is answered by the
        // next leader or let into this log, never timed out.
        let limit = self
            .cfg
            .wait_for_leader_timeout
            .get()
            .saturating_sub(election);
        let outcome = tokio::time::timeout(limit, async {
            match tokio::time::timeout(election, self.link.hold_writes(true)).await {
                Ok(()) => self.hand_to(&others).await,
                Err(_) => Err(NoHandOver("writes under way did not end in time".into())),
            }
        })
        .await
        .unwrap_or_else(|_| Err(NoHandOver(format!("not done within {limit:?}"))));
        self.link.hold_writes(false).await;
        // Stopped for a larger cluster's hand-over (a leader that is still one goes on).
        self.raft().runtime_config().heartbeat(true);
        match outcome {
            Ok(to) => tracing::info!(
                "handed leadership to {to} in {} ms before stopping",
                started.elapsed().as_millis()
            ),
            Err(why) => tracing::warn!("stopping as the leader, without a hand-over: {why}"),
        }
    }

    async fn hand_to(&self, voters: &[NodeId]) -> Result<String, NoHandOver> {
        let election = Duration::from_millis(self.raft_settings.election_timeout_max);
        let mut metrics = self.raft().metrics();
        // Every write already in the log committed and applied, and a voter that holds it
        // all: writes are held at the gate, so the log no longer grows.
        let caught_up = tokio::time::timeout(
            election,
            metrics.wait_for(|m| {
                let last = m.last_log_index;
                m.last_applied.map(|l| l.index) == last
                    && m.replication.as_ref().is_some_and(|r| {
                        voters
                            .iter()
                            .any(|v| r.get(v).and_then(|l| l.map(|l| l.index)) == last)
                    })
            }),
        )
        .await
        .map_err(|_| NoHandOver("no voter caught up with the log in time".into()))?
        .map_err(|_| NoHandOver("Raft stopped".into()))?
        .clone();
        let last = caught_up.last_log_index;
        let term = caught_up.current_term;
        let mut ready: Vec<NodeId> = voters
            .iter()
            .copied()
            .filter(|v| {
                caught_up
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(v).cloned().flatten())
                    .map(|l| l.index)
                    == last
            })
            .collect();
        ready.sort();
        // The votes the candidate needs beyond its own and this leader's are refused while
        // their lease lasts (see the module's text).
        let lease = election;
        let voters = voters.len() + 1;
        if voters > 3 {
            self.raft().runtime_config().heartbeat(false);
            tokio::time::sleep(lease + Duration::from_millis(100)).await;
        } else {
            let elected = *self.leader_since.lock().unwrap();
            if let Some(at) = elected.filter(|(t, _)| *t == term).map(|(_, at)| at) {
                tokio::time::sleep_until((at + lease + Duration::from_millis(100)).into()).await;
            }
        }
        let mut refusals = Vec::new();
        for v in ready {
            let Some(node) = self.member(v) else { continue };
            let asked = self
                .transport
                .send(&node, RaftRequest::Campaign { term }, election)
                .await;
            let refused = match asked {
                Ok(RaftResponse::Done(Ok(_))) => None,
                Ok(RaftResponse::Refused(why)) => Some(why),
                Ok(_) => Some("it answered another request".into()),
                // No answer in time: it may be standing already, and a second candidate
                // would split the vote; wait for the outcome as if it said yes.
                Err(e) if e.0.contains("did not answer within") => None,
                // Unsupported: a voter of a release without the call, not asked.
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = refused {
                tracing::info!("{} does not take leadership over: {why}", node.peer_id);
                refusals.push(format!("{}: {why}", node.peer_id));
                continue;
            }
            // It stands for election; this peer grants its vote as the request comes in.
            let led = tokio::time::timeout(
                election * 2,
                metrics.wait_for(|m| m.current_leader.is_some_and(|l| l != self.me)),
            )
            .await;
            return match led {
                Ok(Ok(m)) => Ok(m
                    .current_leader
                    .and_then(|l| self.member(l))
                    .map_or_else(|| "another peer".into(), |n| n.peer_id)),
                _ => Err(NoHandOver(format!(
                    "{} stood for election but no new leader was seen in time",
                    node.peer_id
                ))),
            };
        }
        Err(NoHandOver(if refusals.is_empty() {
            "no voter holds the whole log".into()
        } else {
            refusals.join("; ")
        }))
    }
}
