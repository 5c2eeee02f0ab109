//! Waiting for what the operator does: [`wait_for`] polls a check until it gives a value.

use std::future::Future;
use std::time::{Duration, Instant};

use super::sim::CALL_TIMEOUT;

/// How often [`wait_for`] looks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// What a check of [`wait_for`] gives: `Some(value)`, `Ok(value)` or `true` ends the wait;
/// `None`, `false`, or `Err(what it saw)` (shown if the wait times out), looks again.
pub trait Outcome {
    type Value;
    fn into_result(self) -> Result<Self::Value, Option<String>>;
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn into_result(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl Outcome for bool {
    type Value = ();
    fn into_result(self) -> Result<(), Option<String>> {
        self.then_some(()).ok_or(None)
    }
}

impl<T> Outcome for Result<T, String> {
    type Value = T;
    fn into_result(self) -> Result<T, Option<String>> {
        self.map_err(Some)
    }
}

/// Runs `check` every [`POLL_INTERVAL`] until it gives a value, and returns it; panics naming
/// `what` (and what the check last saw) when `limit` has passed. A check started before then
/// may finish and count; a hung one is cut at `limit`, or [`CALL_TIMEOUT`] after it started if
/// that is later.
pub async fn wait_for<O, Fut>(what: &str, limit: Duration, check: impl FnMut() -> Fut) -> O::Value
where
    O: Outcome,
    Fut: Future<Output = O>,
{
    match poll(limit, check).await {
        Ok(value) => value,
        Err(Some(seen)) => {
            panic!("timed out after {limit:?} waiting for {what}; last seen: {seen}")
        }
        Err(None) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// [`wait_for`] that does not panic: the value, or what the check last saw when `limit` has
/// passed.
pub async fn poll<O, Fut>(
    limit: Duration,
    mut check: impl FnMut() -> Fut,
) -> Result<O::Value, Option<String>>
where
    O: Outcome,
    Fut: Future<Output = O>,
{
    let start = Instant::now();
    let mut last = None;
    loop {
        // A check started in time may finish and count; one that hangs is cut.
        let left = limit.saturating_sub(start.elapsed()).max(CALL_TIMEOUT);
        match tokio::time::timeout(left, check()).await {
            Ok(outcome) => match outcome.into_result() {
                Ok(value) => return Ok(value),
                Err(seen) => last = seen.or(last),
            },
            Err(_) => return Err(last),
        }
        if start.elapsed() >= limit {
            return Err(last);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// What `future` gives, and how long it took.
pub async fn timed<T>(future: impl Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let value = future.await;
    (value, start.elapsed())
}
