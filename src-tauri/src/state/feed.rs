//! The state-change feed: what the state machine applied, on its way to the pin tracker,
//! in bounded memory.
//!
//! An unbounded channel here let a snapshot install (one message per pin it dropped) or a
//! large import grow memory with the pinset. The feed holds at most `capacity` changes and
//! coalesces what can be re-read from the state instead of holding it:
//! - a `Reset` (the state was replaced: the tracker re-reads it all) replaces every queued
//!   `Pinned`, and an earlier queued `Reset`;
//! - a `Pinned` that finds the feed full turns what is queued of its kind into one `Reset`:
//!   the tracker's sync re-reads the pinset from disk (pins allocated here that IPFS lacks,
//!   and pins moved away that IPFS still holds), which is everything a `Pinned` would do;
//! - an `Unpinned` is never dropped: the state no longer has the pin, so nothing could
//!   re-read it. One that finds the feed full waits for room (back-pressure on the state
//!   machine, whose commit is already durable).
//!
//! The counters show when the limit bites (`/metrics`: `ipfscluster_state_feed_*`). The queue
//! holds at most `capacity` changes plus one `Reset`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::components::StateChange;

/// Changes queued at most by default: about 200 bytes each (a pin with a name and a few
/// allocations), so some 13 MB when full.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// How often the feed's limit bit, since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedStats {
    /// Changes queued now.
    pub queued: usize,
    /// `Pinned` changes replaced by a `Reset` (re-read from the state instead).
    pub coalesced: u64,
    /// `Unpinned` changes that waited for room.
    pub waited: u64,
}

struct Queue {
    items: VecDeque<StateChange>,
    /// A `Reset` is queued: a `Pinned` sent now is seen by it (the state machine sends
    /// after applying), so it is not queued.
    reset_queued: bool,
    /// Senders alive; the receiver ends once they are gone and the queue is empty.
    senders: usize,
    /// The receiver is gone: senders queue nothing and never wait.
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    capacity: usize,
    /// Wakes the receiver: something was queued, or the last sender left.
    filled: Notify,
    /// Wakes senders waiting for room.
    drained: Notify,
    coalesced: AtomicU64,
    waited: AtomicU64,
}

/// Reads a feed's [`FeedStats`] without holding either end.
#[derive(Clone)]
pub struct FeedGauge {
    shared: Arc<Shared>,
}

impl FeedGauge {
    pub fn stats(&self) -> FeedStats {
        self.shared.stats()
    }
}

/// The state machine's end.
pub struct FeedSender {
    shared: Arc<Shared>,
}

/// The tracker's end.
pub struct FeedReceiver {
    shared: Arc<Shared>,
}

/// A feed that holds at most `capacity` changes (at least 1).
pub fn feed(capacity: usize) -> (FeedSender, FeedReceiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            items: VecDeque::new(),
            reset_queued: false,
            senders: 1,
            closed: false,
        }),
        capacity: capacity.max(1),
        filled: Notify::new(),
        drained: Notify::new(),
        coalesced: AtomicU64::new(0),
        waited: AtomicU64::new(0),
    });
    (
        FeedSender {
            shared: shared.clone(),
        },
        FeedReceiver { shared },
    )
}

impl Shared {
    fn stats(&self) -> FeedStats {
        FeedStats {
            queued: self.queue.lock().unwrap().items.len(),
            coalesced: self.coalesced.load(Ordering::Relaxed),
            waited: self.waited.load(Ordering::Relaxed),
        }
    }

    /// Replaces every queued `Pinned` and `Reset` with one `Reset` at the end.
    fn reset(&self, q: &mut Queue) {
        let before = q.items.len();
        let mut pinned = 0u64;
        q.items.retain(|c| match c {
            StateChange::Pinned(_) => {
                pinned += 1;
                false
            }
            StateChange::Reset => false,
            StateChange::Unpinned(_) => true,
        });
        self.coalesced.fetch_add(pinned, Ordering::Relaxed);
        q.items.push_back(StateChange::Reset);
        q.reset_queued = true;
        if q.items.len() < before {
            self.drained.notify_waiters();
        }
    }
}

impl FeedSender {
    /// Queues `change`; waits for room only for an `Unpinned` on a full feed. A feed whose
    /// receiver is gone takes everything and keeps nothing.
    pub async fn send(&self, change: StateChange) {
        let shared = &self.shared;
        let mut waited = false;
        loop {
            // Registered before looking, so that room made in between is not missed.
            let room = shared.drained.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.try_queue(&change) {
                shared.filled.notify_one();
                return;
            }
            if !waited {
                waited = true;
                shared.waited.fetch_add(1, Ordering::Relaxed);
            }
            room.await;
        }
    }

    /// Queues `change` unless it must wait for room (an `Unpinned` on a full feed).
    fn try_queue(&self, change: &StateChange) -> bool {
        let shared = &self.shared;
        let mut q = shared.queue.lock().unwrap();
        if q.closed {
            return true;
        }
        let full = q.items.len() >= shared.capacity;
        match change {
            StateChange::Reset => shared.reset(&mut q),
            StateChange::Pinned(_) if q.reset_queued => {
                shared.coalesced.fetch_add(1, Ordering::Relaxed);
            }
            StateChange::Pinned(_) if full => {
                shared.reset(&mut q);
                shared.coalesced.fetch_add(1, Ordering::Relaxed);
            }
            StateChange::Unpinned(_) if full => {
                // Room may come from turning the queued pins into one reset.
                if q.items.iter().any(|c| matches!(c, StateChange::Pinned(_))) {
                    shared.reset(&mut q);
                }
                if q.items.len() >= shared.capacity {
                    return false;
                }
                q.items.push_back(change.clone());
            }
            change => q.items.push_back(change.clone()),
        }
        true
    }

    pub fn stats(&self) -> FeedStats {
        self.shared.stats()
    }
}

impl Clone for FeedSender {
    fn clone(&self) -> Self {
        self.shared.queue.lock().unwrap().senders += 1;
        FeedSender {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for FeedSender {
    fn drop(&mut self) {
        let last = {
            let mut q = self.shared.queue.lock().unwrap();
            q.senders -= 1;
            q.senders == 0
        };
        if last {
            self.shared.filled.notify_one();
        }
    }
}

impl FeedReceiver {
    /// What the feed holds and how often its limit bit, for whoever reports it.
    pub fn gauge(&self) -> FeedGauge {
        FeedGauge {
            shared: self.shared.clone(),
        }
    }

    /// The next change, in order; `None` once every sender is gone and nothing is queued.
    pub async fn recv(&mut self) -> Option<StateChange> {
        loop {
            let filled = self.shared.filled.notified();
            tokio::pin!(filled);
            filled.as_mut().enable();
            {
                let mut q = self.shared.queue.lock().unwrap();
                if let Some(c) = q.items.pop_front() {
                    if c == StateChange::Reset {
                        q.reset_queued = false;
                    }
                    drop(q);
                    self.shared.drained.notify_waiters();
                    return Some(c);
                }
                if q.senders == 0 {
                    return None;
                }
            }
            filled.await;
        }
    }
}

#[cfg(test)]
impl FeedReceiver {
    /// The next change if one is queued now.
    pub fn try_recv(&mut self) -> Option<StateChange> {
        let mut q = self.shared.queue.lock().unwrap();
        let c = q.items.pop_front();
        if c == Some(StateChange::Reset) {
            q.reset_queued = false;
        }
        drop(q);
        if c.is_some() {
            self.shared.drained.notify_waiters();
        }
        c
    }
}

impl Drop for FeedReceiver {
    fn drop(&mut self) {
        {
            let mut q = self.shared.queue.lock().unwrap();
            q.closed = true;
            q.items.clear();
        }
        self.shared.drained.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Cid, Pin, PinOptions};
    use std::time::Duration;

    fn cid(i: u32) -> Cid {
        crate::ipfsconn::fake::test_cid(i)
    }

    fn pinned(i: u32) -> StateChange {
        StateChange::Pinned(Pin::new(cid(i), PinOptions::default()))
    }

    async fn drain(rx: &mut FeedReceiver) -> Vec<StateChange> {
        let mut out = Vec::new();
        while let Ok(Some(c)) = tokio::time::timeout(Duration::from_millis(20), rx.recv()).await {
            out.push(c);
        }
        out
    }

    #[tokio::test]
    async fn changes_arrive_in_order_and_the_end_is_seen() {
        let (tx, mut rx) = feed(8);
        let one = pinned(1);
        tx.send(one.clone()).await;
        tx.send(StateChange::Unpinned(cid(2))).await;
        drop(tx);
        assert_eq!(rx.recv().await, Some(one));
        assert_eq!(rx.recv().await, Some(StateChange::Unpinned(cid(2))));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_reset_replaces_queued_pins_and_keeps_unpins() {
        let (tx, mut rx) = feed(100);
        tx.send(pinned(1)).await;
        tx.send(StateChange::Unpinned(cid(2))).await;
        tx.send(StateChange::Reset).await;
        tx.send(pinned(3)).await;
        tx.send(StateChange::Unpinned(cid(4))).await;
        tx.send(StateChange::Reset).await;
        assert_eq!(
            drain(&mut rx).await,
            vec![
                StateChange::Unpinned(cid(2)),
                StateChange::Unpinned(cid(4)),
                StateChange::Reset
            ]
        );
        assert_eq!(tx.stats().coalesced, 2, "pins 1 and 3");
        // Once the reset is taken, pins are queued again (its sync may have read before them).
        tx.send(StateChange::Reset).await;
        assert_eq!(rx.recv().await, Some(StateChange::Reset));
        let five = pinned(5);
        tx.send(five.clone()).await;
        assert_eq!(rx.recv().await, Some(five));
    }

    #[tokio::test]
    async fn a_flood_of_pins_stays_within_the_bound_as_one_reset() {
        let (tx, mut rx) = feed(16);
        for i in 0..100_000 {
            tx.send(pinned(i)).await;
            assert!(tx.stats().queued <= 16);
        }
        let got = drain(&mut rx).await;
        assert_eq!(got.len(), 1, "one reset stands for them all");
        assert_eq!(got[0], StateChange::Reset);
        assert_eq!(tx.stats().coalesced, 100_000);
    }

    #[tokio::test]
    async fn unpins_are_never_dropped_they_wait_for_room() {
        let (tx, mut rx) = feed(4);
        let sender = tokio::spawn(async move {
            for i in 0..1_000 {
                tx.send(StateChange::Unpinned(cid(i))).await;
            }
            tx.stats()
        });
        let mut got = Vec::new();
        while let Some(c) = rx.recv().await {
            got.push(c);
        }
        let stats = sender.await.unwrap();
        assert_eq!(
            got,
            (0..1_000)
                .map(|i| StateChange::Unpinned(cid(i)))
                .collect::<Vec<_>>()
        );
        assert!(stats.waited > 0, "the bound bit");
    }

    #[tokio::test]
    async fn a_full_feed_of_pins_makes_room_for_an_unpin_without_waiting() {
        let (tx, mut rx) = feed(4);
        for i in 0..4 {
            tx.send(pinned(i)).await;
        }
        tokio::time::timeout(
            Duration::from_secs(5),
            tx.send(StateChange::Unpinned(cid(9))),
        )
        .await
        .expect("no wait: the pins became one reset");
        assert_eq!(
            drain(&mut rx).await,
            vec![StateChange::Reset, StateChange::Unpinned(cid(9))]
        );
    }

    #[tokio::test]
    async fn a_sender_whose_receiver_is_gone_does_not_wait() {
        let (tx, rx) = feed(1);
        tx.send(StateChange::Unpinned(cid(1))).await;
        drop(rx);
        tokio::time::timeout(
            Duration::from_secs(5),
            tx.send(StateChange::Unpinned(cid(2))),
        )
        .await
        .expect("not stuck");
    }
}
