//! Group commit on the leader: writes that arrive together (from this peer's clients, and
//! forwarded by followers) go into Raft as one log entry, so that a burst of single pins costs
//! one trip through openraft's core, one log row and one apply transaction instead of one
//! each. No write waits for a timer: whatever queued while the entries before it were being
//! committed goes out together, as group commit in databases. The queue is bounded (a full
//! one holds writers back) and so are the entries in flight.

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::Raft;
use tokio::sync::{mpsc, oneshot};

use super::typ::{ClusterNode, NodeId, Op, TypeConfig};
use crate::components::ConsensusError;
use crate::tasks::Tasks;

/// Writes waiting for an entry.
const QUEUE: usize = 4096;
/// Pins and unpins in one entry at most.
pub(super) const MAX_OPS: usize = 1024;
/// Entries being committed at once.
const IN_FLIGHT: usize = 4;

type WriteError = RaftError<NodeId, ClientWriteError<NodeId, ClusterNode>>;
type Answer = oneshot::Sender<Result<u64, ConsensusError>>;

/// A failed write through openraft, by what the caller can do.
pub(super) fn write_err(e: WriteError) -> ConsensusError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            unavailable_("leadership changed during the commit")
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(e),
        )) => unavailable_(e.to_string()),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ConsensusError::Refused(e.to_string())
        }
        e => unavailable_(e.to_string()),
    }
}

fn unavailable_(message: impl Into<String>) -> ConsensusError {
    ConsensusError::Unavailable {
        attempts: 1,
        message: message.into(),
    }
}

/// Where the leader's writes queue for an entry.
pub(super) struct Batcher {
    queue: mpsc::Sender<(Op, Answer)>,
}

impl Batcher {
    /// Starts the loop that commits queued writes through `raft`.
    pub(super) fn start(raft: Raft<TypeConfig>, tasks: &Tasks) -> Batcher {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tasks.spawn(run(raft, waiting));
        Batcher { queue }
    }

    /// Commits `op` in the next entry; returns the entry's log index.
    pub(super) async fn commit(&self, op: Op) -> Result<u64, ConsensusError> {
        let stopping = || unavailable_("the peer is stopping");
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

async fn run(raft: Raft<TypeConfig>, mut waiting: mpsc::Receiver<(Op, Answer)>) {
    let mut in_flight = FuturesUnordered::new();
    loop {
        tokio::select! {
            first = waiting.recv(), if in_flight.len() < IN_FLIGHT => {
                let Some(first) = first else { break };
                let mut n = size(&first.0);
                let mut writes = vec![first];
                while n < MAX_OPS {
                    match waiting.try_recv() {
                        Ok(w) => {
                            n += size(&w.0);
                            writes.push(w);
                        }
                        Err(_) => break,
                    }
                }
                let (ops, answers): (Vec<Op>, Vec<Answer>) = writes.into_iter().unzip();
                let raft = raft.clone();
                in_flight.push(async move {
                    let r = raft
                        .client_write(Op::joined(ops))
                        .await
                        .map(|w| w.log_id.index)
                        .map_err(write_err);
                    for a in answers {
                        let _ = a.send(r.clone());
                    }
                });
            }
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
        }
    }
    while in_flight.next().await.is_some() {}
}
