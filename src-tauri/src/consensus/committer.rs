//! Group commit, on every peer: writes that arrive together (from this peer's clients) go to
//! the leader as one operation and into Raft as one log entry, so that a burst of single pins
//! costs one forward to the leader, one trip through openraft's core, one log row and one
//! apply transaction instead of one each. No write waits for a timer: whatever queued while
//! the groups before it were being committed goes out together, as group commit in
//! databases. The queue is bounded (a full one holds writers back) and so are the groups in
//! flight. A group fails or succeeds as a whole, and each of its writers is told.

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::link::{unavailable, LeaderLink};
use super::network::LeaderOp;
use super::typ::Op;
use crate::components::ConsensusError;
use crate::tasks::Tasks;

/// Writes waiting for a group.
const QUEUE: usize = 4096;
/// Pins and unpins in one group at most.
pub(super) const MAX_OPS: usize = 1024;
/// Bytes of one group at most (by [`Op::weight`]): `max_append_entries` (64 by default)
/// entries of this size are 32 MB, half a cluster RPC message. A write that would take a
/// group past it waits for the next; one heavier alone goes alone.
pub(super) const GROUP_BYTES: usize = 512 * 1024;
/// Groups being committed at once.
const IN_FLIGHT: usize = 4;

type Answer = oneshot::Sender<Result<(), ConsensusError>>;

/// Where this peer's writes queue for a group.
pub(super) struct Committer {
    queue: mpsc::Sender<(Op, Answer)>,
    raft: openraft::Raft<super::typ::TypeConfig>,
}

impl Committer {
    /// Starts the loop that commits queued writes through `link`.
    pub(super) fn start(link: LeaderLink, tasks: &Tasks) -> Committer {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let raft = link.raft.clone();
        tasks.spawn(run(link, waiting));
        Committer { queue, raft }
    }

    /// Why a write got no answer: the group's task ended with the peer. When Raft stopped on
    /// a storage error (a full disk while applying), that error, which is what stopped the
    /// peer (the peer stops on seeing it, so it is known by then); else "stopping".
    fn stopped(&self) -> ConsensusError {
        if let Err(openraft::error::Fatal::StorageError(e)) =
            &self.raft.metrics().borrow().running_state
        {
            return ConsensusError::Storage(e.to_string());
        }
        unavailable("the peer is stopping; the write may or may not have been committed")
    }

    /// Commits `op` in the next group; returns once this peer has applied it, so that a
    /// write through any peer is visible in that peer's state as soon as it is acknowledged.
    pub(super) async fn commit(&self, op: Op) -> Result<(), ConsensusError> {
        let stopping = || self.stopped();
        let (answer, answered) = oneshot::channel();
        self.queue
            .send((op, answer))
            .await
            .map_err(|_| stopping())?;
        answered.await.map_err(|_| stopping())?
    }
}

/// How many pins and unpins `op` carries.
fn size(op: &Op) -> usize {
    match op {
        Op::Batch(ops) => ops.len(),
        _ => 1,
    }
}

async fn run(link: LeaderLink, mut waiting: mpsc::Receiver<(Op, Answer)>) {
    let mut in_flight = FuturesUnordered::new();
    // A write that did not fit the last group: the first of the next.
    let mut held: Option<(Op, Answer)> = None;
    loop {
        tokio::select! {
            first = async { match held.take() {
                Some(w) => Some(w),
                None => waiting.recv().await,
            } }, if in_flight.len() < IN_FLIGHT => {
                let Some(first) = first else { break };
                let (mut n, mut bytes) = (size(&first.0), first.0.weight());
                let mut writes = vec![first];
                while n < MAX_OPS && bytes < GROUP_BYTES {
                    match waiting.try_recv() {
                        Ok(w) => {
                            let (more, heavier) = (size(&w.0), w.0.weight());
                            if n + more > MAX_OPS || bytes + heavier > GROUP_BYTES {
                                held = Some(w);
                                break;
                            }
                            n += more;
                            bytes += heavier;
                            writes.push(w);
                        }
                        Err(_) => break,
                    }
                }
                let (ops, answers): (Vec<Op>, Vec<Answer>) = writes.into_iter().unzip();
                in_flight.push(commit_group(link.clone(), Op::joined(ops), answers));
            }
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
        }
    }
    while in_flight.next().await.is_some() {}
}

async fn commit_group(link: LeaderLink, op: Op, answers: Vec<Answer>) {
    let result = async {
        let index = link
            .call(LeaderOp::Commit(op), |op| link.commit_here(op))
            .await?;
        match index {
            Some(index) => link.wait_applied(index, "committed").await,
            None => Ok(()),
        }
    }
    .await;
    for a in answers {
        let _ = a.send(result.clone());
    }
}
