//! Writes that run outside a controller's own task (a reconcile's per-region writes, an event
//! published from an error policy) go through a [`WriteFence`]: when the operator stops, the
//! fence closes and every such task is stopped at its next await and waited for, so none can
//! write after this replica lost its Lease.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The tasks one running operator started beside its controllers.
#[derive(Clone, Debug, Default)]
pub struct WriteFence {
    closed: CancellationToken,
    tasks: TaskTracker,
}

impl WriteFence {
    pub fn new() -> WriteFence {
        WriteFence::default()
    }

    /// Runs `work` in its own task until it ends or the fence closes, whichever comes first.
    /// Once the fence is closed, `work` is never started.
    pub fn spawn<F>(&self, work: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let closed = self.closed.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                biased;
                _ = closed.cancelled() => {}
                _ = work => {}
            }
        })
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Stops every task at once and returns when none is left running.
    pub async fn close(&self) {
        self.closed.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Lets the tasks finish for up to `grace`, then stops the rest as [`WriteFence::close`].
    pub async fn drain(&self, grace: Duration) {
        self.tasks.close();
        let _ = tokio::time::timeout(grace, self.tasks.wait()).await;
        self.close().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_closed_fence_stops_its_tasks_and_starts_no_more() {
        let fence = WriteFence::new();
        let writes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&writes);
        fence.spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            counted.fetch_add(1, Ordering::SeqCst);
        });
        fence.close().await;
        assert!(fence.is_closed());
        let counted = Arc::clone(&writes);
        let late = fence.spawn(async move {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let _ = late.await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(writes.load(Ordering::SeqCst), 0, "no write after the close");
    }

    #[tokio::test]
    async fn draining_lets_short_tasks_finish() {
        let fence = WriteFence::new();
        let writes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&writes);
        fence.spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let counted = Arc::clone(&writes);
        fence.spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            counted.fetch_add(1, Ordering::SeqCst);
        });
        tokio::time::timeout(
            Duration::from_secs(5),
            fence.drain(Duration::from_millis(500)),
        )
        .await
        .expect("drain ends after its grace");
        assert_eq!(writes.load(Ordering::SeqCst), 1);
    }
}
