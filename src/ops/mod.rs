//! Operability: metrics, health, retry backoff, the write fence, and the reconcile wrapper every
//! controller uses for its metrics and its log span.
//!
//! A controller gets both in one line at its `run(...)` call:
//! `.run(ops::instrument("replicatedsecret", |rs: &ReplicatedSecret| region_of(rs), &backoff, &ops.metrics, reconcile), backoff.error_policy(), ...)`,
//! where `backoff` is the controller's [`RetryBackoff`] (failed objects are retried after it)
//! and `ops` the operator's [`Ops`].

pub mod backoff;
pub mod fence;
pub mod health;
pub mod http;
pub mod metrics;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::Instrument as _;

pub use backoff::RetryBackoff;
pub use fence::WriteFence;
pub use health::Health;
pub use metrics::Metrics;

/// A running operator's metrics and health, passed to everything that records into them (as
/// controller-rs passes its context): one per process, or per operator a test starts.
#[derive(Clone)]
pub struct Ops {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
}

impl Default for Ops {
    fn default() -> Self {
        Ops::new()
    }
}

impl Ops {
    pub fn new() -> Ops {
        let metrics = Arc::new(Metrics::new());
        Ops {
            health: Arc::new(Health::new(Arc::clone(&metrics))),
            metrics,
        }
    }
}

/// Reconciles one controller runs at once. Each holds its requests' HTTP/1.1 connections, which
/// stay open for reuse: unbounded, a thousand clusters created together would open thousands.
pub const MAX_CONCURRENT_RECONCILES: u16 = 16;

/// An object's `namespace/name` (`name` when cluster-scoped).
pub fn object_key<K: Resource>(object: &K) -> String {
    match object.namespace() {
        Some(namespace) => format!("{namespace}/{}", object.name_any()),
        None => object.name_any(),
    }
}

/// The kind of a controller's reconcile error, as the `error` label of
/// `federator_reconcile_errors_total` (controller-rs's `metric_label`).
pub trait ErrorLabel {
    /// Every kind this error type has: their series exist at zero from the first reconcile.
    const KINDS: &'static [&'static str];
    fn metric_label(&self) -> &'static str;
}

/// The label of a finalizer error: its reconcile's error's, else `finalizer`.
pub fn finalizer_label<E: ErrorLabel + std::error::Error + 'static>(
    error: &kube::runtime::finalizer::Error<E>,
) -> &'static str {
    use kube::runtime::finalizer::Error;
    match error {
        Error::ApplyFailed(inner) | Error::CleanupFailed(inner) => inner.metric_label(),
        _ => "finalizer",
    }
}

/// A boxed reconcile future, as [`instrument`] returns them.
pub type ReconcileFuture<E> = Pin<Box<dyn Future<Output = Result<Action, E>> + Send>>;

/// Wraps a reconcile function: each reconcile runs in a `reconcile` span with the controller,
/// the object (`namespace/name`) and its region(s) as fields, and is counted, timed and (when it
/// fails) counted as an error under `controller` in the metrics. A success starts the object's
/// `backoff` over.
///
/// Fault injection: when the environment variable [`PANIC_ON_RECONCILE_VARIABLE`] names this
/// controller, its reconciles panic (how the tests show that a dead controller is noticed).
pub fn instrument<K, Ctx, E, F, Fut>(
    controller: &'static str,
    region_of: impl Fn(&K) -> String + Send + 'static,
    backoff: &RetryBackoff,
    metrics: &Arc<Metrics>,
    mut reconcile: F,
) -> impl FnMut(Arc<K>, Arc<Ctx>) -> ReconcileFuture<E>
where
    K: Resource + 'static,
    F: FnMut(Arc<K>, Arc<Ctx>) -> Fut,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: ErrorLabel + 'static,
{
    let backoff = backoff.clone();
    let metrics = Arc::clone(metrics);
    move |object: Arc<K>, context: Arc<Ctx>| {
        let key = object_key(object.as_ref());
        let span = tracing::info_span!(
            "reconcile",
            controller,
            object = %key,
            region = %region_of(&object)
        );
        let work = reconcile(object, context);
        let backoff = backoff.clone();
        let metrics = Arc::clone(&metrics);
        Box::pin(
            async move {
                if panic_injected_into(controller) {
                    panic!("{PANIC_ON_RECONCILE_VARIABLE} names the {controller} controller");
                }
                metrics.reconcile_started(controller);
                let started = Instant::now();
                let result = work.await;
                let error = result.as_ref().err().map(ErrorLabel::metric_label);
                metrics.reconcile_finished(controller, started.elapsed(), error, E::KINDS);
                if result.is_ok() {
                    backoff.succeeded(&key);
                }
                result
            }
            .instrument(span),
        )
    }
}

/// Names a controller whose reconciles are to panic (fault injection, read once).
pub const PANIC_ON_RECONCILE_VARIABLE: &str = "FEDERATOR_FAULT_PANIC_ON_RECONCILE";

fn panic_injected_into(controller: &str) -> bool {
    static TARGET: OnceLock<Option<String>> = OnceLock::new();
    TARGET.get_or_init(|| std::env::var(PANIC_ON_RECONCILE_VARIABLE).ok()).as_deref()
        == Some(controller)
}

/// This replica's name: the pod name in a cluster (POD_NAME), else host name and process id.
/// It is the Lease holder identity and part of the User-Agent of every request.
pub fn identity() -> &'static str {
    static IDENTITY: OnceLock<String> = OnceLock::new();
    IDENTITY.get_or_init(|| {
        if let Ok(pod) = std::env::var("POD_NAME")
            && !pod.trim().is_empty()
        {
            return pod.trim().to_string();
        }
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "federator".to_string());
        format!("{host}-{}", std::process::id())
    })
}

/// The User-Agent of every request Federator makes: API server audit logs (and kube-sim's
/// request accounting) tell the replicas apart by it.
pub fn user_agent() -> String {
    format!("federator/{} ({})", env!("CARGO_PKG_VERSION"), identity())
}
