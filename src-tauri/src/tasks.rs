//! Every task a peer starts, in one place, so that shutdown can await them all (mini-redis's
//! "awaited shutdown"): a [`TaskTracker`] to wait on and a [`CancellationToken`] that tells
//! them to stop. Components take a [`Tasks`] and spawn through it; nothing in the library
//! calls `tokio::spawn` directly (`tests/tests/architecture.rs` checks this).

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Default)]
pub(crate) struct Tasks {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Tasks {
    pub(crate) fn new() -> Tasks {
        Tasks::default()
    }

    /// Runs `task` until it ends or shutdown begins, whichever is first.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// Runs `task` to its end: for tasks that stop gracefully on [`Tasks::stopping`] (a
    /// server finishing its open requests).
    pub(crate) fn spawn_graceful<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task);
    }

    /// Fires when shutdown begins.
    pub(crate) fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Tasks still running.
    pub(crate) fn len(&self) -> usize {
        self.tracker.len()
    }

    /// Tells every task to stop and waits until all have.
    pub(crate) async fn shutdown(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_stops_and_awaits_every_task() {
        let tasks = Tasks::new();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        tasks.spawn(async move {
            let _keep = tx;
            std::future::pending::<()>().await
        });
        let stop = tasks.stopping();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        tasks.spawn_graceful(async move {
            stop.cancelled().await;
            let _ = done_tx.send(());
        });
        assert_eq!(tasks.len(), 2);
        tasks.shutdown().await;
        assert_eq!(tasks.len(), 0);
        assert!(rx.recv().await.is_none(), "the pending task was dropped");
        assert!(done_rx.await.is_ok(), "the graceful task ran to its end");
    }
}
