//! Retry delays after failed reconciles, per object: [`RETRY_BASE`] after the first failure,
//! doubling with each failure in a row up to [`RETRY_CAP`]; a successful reconcile starts the
//! object over. An object that fails for good (a hub that refuses its status) is then retried
//! once a minute instead of every few seconds, and one failing object does not speed up or
//! slow down the retries of another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::runtime::controller::Action;

/// Delay after an object's first failed reconcile.
pub const RETRY_BASE: Duration = Duration::from_secs(1);
/// Longest delay between retries of a failing object.
pub const RETRY_CAP: Duration = Duration::from_secs(60);
/// A failure count not updated for this long belongs to an object that is gone (a failing
/// object is retried at least every [`RETRY_CAP`]); it is dropped.
const FORGET_AFTER: Duration = Duration::from_secs(3 * 60);

#[derive(Debug, Clone, Copy)]
struct Failures {
    in_a_row: u32,
    last: Instant,
}

/// The failures in a row of each object of one controller, by `namespace/name`.
#[derive(Debug, Clone, Default)]
pub struct RetryBackoff {
    failures: Arc<Mutex<HashMap<String, Failures>>>,
}

/// The delay before retrying after `in_a_row` failures in a row (at least one).
pub fn retry_delay(in_a_row: u32) -> Duration {
    let doublings = in_a_row.saturating_sub(1).min(31);
    RETRY_BASE.checked_mul(1 << doublings).unwrap_or(RETRY_CAP).min(RETRY_CAP)
}

impl RetryBackoff {
    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a failed reconcile of `key`; returns how long to wait before retrying it.
    pub fn failed(&self, key: &str) -> Duration {
        self.failed_at(key, Instant::now())
    }

    fn failed_at(&self, key: &str, now: Instant) -> Duration {
        let mut failures = self.failures();
        failures.retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
        let entry = failures.entry(key.to_string()).or_insert(Failures {
            in_a_row: 0,
            last: now,
        });
        entry.in_a_row = entry.in_a_row.saturating_add(1);
        entry.last = now;
        retry_delay(entry.in_a_row)
    }

    /// A successful reconcile of `key`: its next failure waits [`RETRY_BASE`] again.
    pub fn succeeded(&self, key: &str) {
        self.failures().remove(key);
    }

    /// An `error_policy` for a kube-runtime Controller: re-queues the object after its delay.
    pub fn error_policy<K, E, Ctx>(
        &self,
    ) -> impl Fn(Arc<K>, &E, Arc<Ctx>) -> Action + use<K, E, Ctx>
    where
        K: kube::Resource,
    {
        let backoff = self.clone();
        move |object, _, _| Action::requeue(backoff.failed(&super::object_key(object.as_ref())))
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.failures().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_per_failure_in_a_row_up_to_the_cap() {
        let secs: Vec<u64> = (1..=9).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_delay(u32::MAX), RETRY_CAP);
        assert_eq!(retry_delay(0), RETRY_BASE);
    }

    #[test]
    fn each_object_backs_off_on_its_own_and_starts_over_after_a_success() {
        let backoff = RetryBackoff::default();
        let now = Instant::now();
        assert_eq!(backoff.failed_at("ns/a", now), Duration::from_secs(1));
        assert_eq!(backoff.failed_at("ns/a", now), Duration::from_secs(2));
        assert_eq!(backoff.failed_at("ns/a", now), Duration::from_secs(4));
        // Another object is not held back by the first one's failures.
        assert_eq!(backoff.failed_at("ns/b", now), Duration::from_secs(1));
        backoff.succeeded("ns/a");
        assert_eq!(backoff.failed_at("ns/a", now), Duration::from_secs(1));
        assert_eq!(backoff.failed_at("ns/b", now), Duration::from_secs(2));
    }

    #[test]
    fn counts_of_objects_that_stopped_failing_long_ago_are_dropped() {
        let backoff = RetryBackoff::default();
        let start = Instant::now();
        backoff.failed_at("ns/deleted", start);
        backoff.failed_at("ns/failing", start);
        let later = start + FORGET_AFTER + Duration::from_secs(1);
        assert_eq!(
            backoff.failed_at("ns/failing", later),
            Duration::from_secs(1)
        );
        assert_eq!(backoff.tracked(), 1, "the deleted object's count is gone");
    }

    #[test]
    fn the_error_policy_requeues_after_the_objects_delay() {
        use k8s_openapi::api::core::v1::ConfigMap;
        let backoff = RetryBackoff::default();
        let policy = backoff.error_policy::<ConfigMap, std::io::Error, ()>();
        let object = Arc::new(ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some("a".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        let error = std::io::Error::other("refused");
        let first = policy(object.clone(), &error, Arc::new(()));
        let second = policy(object.clone(), &error, Arc::new(()));
        assert_eq!(first, Action::requeue(Duration::from_secs(1)));
        assert_eq!(second, Action::requeue(Duration::from_secs(2)));
        backoff.succeeded("ns/a");
        assert_eq!(
            policy(object, &error, Arc::new(())),
            Action::requeue(Duration::from_secs(1))
        );
    }
}
