//! The operator's metrics, process-wide (one scrape shows every controller and region), in
//! OpenMetrics text with prometheus-client.
//!
//! One [`Metrics`] per running operator, passed to what records into it ([`super::Ops`]); reconciles are counted and timed by
//! [`crate::ops::instrument`], region requests by [`RegionMetricsLayer`] on every region client,
//! fan-out lag by [`Metrics::fanout_progress`] from the K8ssandraCluster controller.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry as MetricRegistry;

/// Label of the hub's own client in the region metrics.
pub const HUB_REGION: &str = "hub";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileErrorLabels {
    pub controller: String,
    /// The error's kind ([`crate::ops::ErrorLabel`]).
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegionFailureLabels {
    pub controller: String,
    /// [`crate::clusters::FailureCategory::metric_label`].
    pub category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerExitLabels {
    pub controller: String,
    pub cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegionRequestLabels {
    pub region: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegionLabels {
    pub region: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~16 s
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

fn reconcile_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Where a K8ssandraCluster's latest generation stands in its fan-out.
#[derive(Debug, Clone, Copy)]
struct Fanout {
    generation: i64,
    first_seen: Instant,
    applied: bool,
}

/// How a controller ended before the operator was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCause {
    Panicked,
    Returned,
}

impl ExitCause {
    /// The `cause` label of `federator_controller_exits_total`.
    pub fn label(self) -> &'static str {
        match self {
            ExitCause::Panicked => "panicked",
            ExitCause::Returned => "returned",
        }
    }
}

/// Every metric of the process.
pub struct Metrics {
    registry: MetricRegistry,
    /// Regions whose ClientConfig went: a request of theirs still under way then (a watch, a
    /// write) records nothing when it ends, so their series stay gone.
    removed_regions: Mutex<HashSet<String>>,
    reconciles: Family<ControllerLabels, Counter>,
    reconcile_errors: Family<ReconcileErrorLabels, Counter>,
    reconcile_duration: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    reconciles_in_flight: Family<ControllerLabels, Gauge>,
    controller_exits: Family<ControllerExitLabels, Counter>,
    region_failures: Family<RegionFailureLabels, Counter>,
    region_requests: Family<RegionRequestLabels, Counter>,
    region_request_errors: Family<RegionRequestLabels, Counter>,
    region_request_duration: Family<RegionLabels, Histogram, fn() -> Histogram>,
    region_reachable: Family<RegionLabels, Gauge>,
    fanout_lag: Histogram,
    fanouts_pending: Gauge,
    region_fanout_lag: Family<RegionLabels, Gauge<f64, AtomicU64>>,
    leader: Gauge,
    fanouts: Mutex<HashMap<String, Fanout>>,
    /// Per region label: the clusters whose latest generation is not applied there yet, and
    /// since when the oldest change not there was first seen.
    region_fanouts: Mutex<HashMap<String, HashMap<String, Instant>>>,
}

/// Names of every metric family [`Metrics::encode`] writes (as queried, with `_total` etc.).
pub const METRIC_NAMES: &[&str] = &[
    "federator_reconciles_total",
    "federator_reconcile_errors_total",
    "federator_reconcile_duration_seconds",
    "federator_reconciles_in_flight",
    "federator_controller_exits_total",
    "federator_region_failures_total",
    "federator_region_requests_total",
    "federator_region_request_errors_total",
    "federator_region_request_duration_seconds",
    "federator_region_reachable",
    "federator_fanout_lag_seconds",
    "federator_fanouts_pending",
    "federator_region_fanout_lag_seconds",
    "federator_leader",
];

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = MetricRegistry::with_prefix("federator");
        let reconciles = Family::default();
        registry.register(
            "reconciles",
            "Reconciles finished, per controller",
            reconciles.clone(),
        );
        let reconcile_errors = Family::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that failed (and will be retried), per controller and kind of error",
            reconcile_errors.clone(),
        );
        let reconcile_duration: Family<ControllerLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(reconcile_histogram);
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took, per controller",
            reconcile_duration.clone(),
        );
        let reconciles_in_flight = Family::default();
        registry.register(
            "reconciles_in_flight",
            "Reconciles running now, per controller (the work queue itself is not observable)",
            reconciles_in_flight.clone(),
        );
        let controller_exits = Family::default();
        registry.register(
            "controller_exits",
            "Controllers that ended while the operator should run (a panic in a reconcile, say), \
             per controller and cause; the replica then stops, gives up its Lease and fails /healthz",
            controller_exits.clone(),
        );
        let region_failures = Family::default();
        registry.register(
            "region_failures",
            "Steps of a reconcile that failed in one region (the reconcile goes on with the others), \
             per controller and category: what fixes it and how soon it is tried again",
            region_failures.clone(),
        );
        let region_requests = Family::default();
        registry.register(
            "region_requests",
            "API requests sent, per region (hub for the home cluster) and HTTP method",
            region_requests.clone(),
        );
        let region_request_errors = Family::default();
        registry.register(
            "region_request_errors",
            "API requests that failed (no answer, timeout, 429 or 5xx), per region and HTTP method",
            region_request_errors.clone(),
        );
        let region_request_duration: Family<RegionLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "region_request_duration_seconds",
            "Time to the response head of an API request, per region",
            region_request_duration.clone(),
        );
        let region_reachable = Family::default();
        registry.register(
            "region_reachable",
            "1 when the region's last probe succeeded, 0 when it failed, is pending or the ClientConfig is refused",
            region_reachable.clone(),
        );
        let fanout_lag = Histogram::new(exponential_buckets(0.1, 2.0, 14));
        registry.register(
            "fanout_lag_seconds",
            "Time from a K8ssandraCluster generation first seen to its datacenters applied in every region",
            fanout_lag.clone(),
        );
        let fanouts_pending = Gauge::default();
        registry.register(
            "fanouts_pending",
            "K8ssandraClusters whose latest generation is not applied in every region yet",
            fanouts_pending.clone(),
        );
        let region_fanout_lag = Family::default();
        registry.register(
            "region_fanout_lag_seconds",
            "Per region: how long the oldest K8ssandraCluster change not yet applied there has waited \
             (0 when every cluster's latest generation is applied there)",
            region_fanout_lag.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease (or runs without leader election)",
            leader.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            reconciles_in_flight,
            controller_exits,
            region_failures,
            region_requests,
            region_request_errors,
            region_request_duration,
            region_reachable,
            fanout_lag,
            fanouts_pending,
            region_fanout_lag,
            leader,
            fanouts: Mutex::new(HashMap::new()),
            region_fanouts: Mutex::new(HashMap::new()),
            removed_regions: Mutex::new(HashSet::new()),
        }
    }

    /// The metrics in OpenMetrics text.
    pub fn encode(&self) -> String {
        self.refresh_region_fanout_lag();
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// The registry's word on a region: reachable by its last probes, or not (unreachable,
    /// misconfigured, not probed yet).
    pub fn set_region_reachable(&self, context: &str, reachable: bool) {
        if self.is_removed(&region_label(context)) {
            return;
        }
        self.region_reachable
            .get_or_create(&RegionLabels {
                region: context.to_string(),
            })
            .set(i64::from(reachable));
    }

    /// Controllers stopped: this replica no longer knows the regions.
    pub fn forget_regions(&self) {
        self.region_reachable.clear();
    }

    /// A region whose ClientConfig went: its series go from the scrape.
    pub fn forget_region(&self, context: &str) {
        let region = region_label(context);
        self.lock_removed().insert(region.clone());
        for method in [
            http::Method::GET,
            http::Method::POST,
            http::Method::PUT,
            http::Method::PATCH,
            http::Method::DELETE,
            http::Method::HEAD,
            http::Method::OPTIONS,
            http::Method::CONNECT,
            http::Method::TRACE,
        ] {
            let labels = RegionRequestLabels {
                region: region.clone(),
                method: method.to_string(),
            };
            self.region_requests.remove(&labels);
            self.region_request_errors.remove(&labels);
        }
        if let Ok(mut region_fanouts) = self.region_fanouts.lock() {
            region_fanouts.remove(&region);
        }
        let labels = RegionLabels { region };
        self.region_request_duration.remove(&labels);
        self.region_reachable.remove(&labels);
        self.region_fanout_lag.remove(&labels);
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// A controller's exit counters exist, at zero, from its start (alerts see the first one).
    pub(crate) fn controller_started(&self, controller: &str) {
        for cause in [ExitCause::Panicked, ExitCause::Returned] {
            let _ = self.controller_exits.get_or_create(&ControllerExitLabels {
                controller: controller.to_string(),
                cause: cause.label().to_string(),
            });
        }
        // Every category at zero, so that failure rates exist before the first failure.
        self.region_failures(controller, []);
    }

    pub(crate) fn controller_exited(&self, controller: &str, cause: &str) {
        self.controller_exits
            .get_or_create(&ControllerExitLabels {
                controller: controller.to_string(),
                cause: cause.to_string(),
            })
            .inc();
    }

    pub(crate) fn reconcile_started(&self, controller: &str) {
        self.reconciles_in_flight.get_or_create(&controller_labels(controller)).inc();
    }

    /// A reconcile ended; `error` is the kind of error when it failed. `error_kinds` (every kind
    /// the controller has) are created at zero, so that error rates exist before the first one.
    pub(crate) fn reconcile_finished(
        &self,
        controller: &str,
        took: Duration,
        error: Option<&str>,
        error_kinds: &[&str],
    ) {
        let labels = controller_labels(controller);
        self.reconciles_in_flight.get_or_create(&labels).dec();
        self.reconciles.get_or_create(&labels).inc();
        let errors = |kind: &str| ReconcileErrorLabels {
            controller: controller.to_string(),
            error: kind.to_string(),
        };
        for kind in error_kinds {
            let _ = self.reconcile_errors.get_or_create(&errors(kind));
        }
        if let Some(kind) = error {
            self.reconcile_errors.get_or_create(&errors(kind)).inc();
        }
        self.reconcile_duration.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// Counts the region failures of one reconcile of `controller` (every category exists at
    /// zero once the controller reported).
    pub fn region_failures(
        &self,
        controller: &str,
        failures: impl IntoIterator<Item = crate::clusters::FailureCategory>,
    ) {
        let labels = |category: crate::clusters::FailureCategory| RegionFailureLabels {
            controller: controller.to_string(),
            category: category.metric_label().to_string(),
        };
        for category in crate::clusters::FailureCategory::ALL {
            let _ = self.region_failures.get_or_create(&labels(category));
        }
        for category in failures {
            self.region_failures.get_or_create(&labels(category)).inc();
        }
    }

    /// A client for `context` is made: its requests count again.
    pub fn region_added(&self, context: &str) {
        self.lock_removed().remove(&region_label(context));
    }

    fn is_removed(&self, region: &str) -> bool {
        self.lock_removed().contains(region)
    }

    fn lock_removed(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // A panic while holding it left a set that is still whole.
        self.removed_regions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records one region request's outcome (nothing for a region removed meanwhile).
    pub fn region_request(&self, region: &str, method: &str, took: Duration, failed: bool) {
        if self.is_removed(region) {
            return;
        }
        let labels = RegionRequestLabels {
            region: region.to_string(),
            method: method.to_string(),
        };
        self.region_requests.get_or_create(&labels).inc();
        let errors = self.region_request_errors.get_or_create(&labels);
        if failed {
            errors.inc();
        }
        self.region_request_duration
            .get_or_create(&RegionLabels {
                region: region.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// Called by the K8ssandraCluster controller after every reconcile of `cluster`
    /// (`namespace/name`) at `generation`: `applied` when its datacenters were applied in every
    /// region with no error. The lag of a generation is observed once, when it is first applied.
    ///
    /// `regions` are the contexts the cluster's datacenters are in, each with whether its part is
    /// applied there.
    pub fn fanout_progress(
        &self,
        cluster: &str,
        generation: Option<i64>,
        applied: bool,
        regions: &[(String, bool)],
    ) {
        let Some(generation) = generation else {
            return;
        };
        let Ok(mut fanouts) = self.fanouts.lock() else {
            return;
        };
        let now = Instant::now();
        let entry = fanouts.entry(cluster.to_string()).or_insert(Fanout {
            generation,
            first_seen: now,
            applied: false,
        });
        if entry.generation != generation {
            *entry = Fanout {
                generation,
                first_seen: now,
                applied: false,
            };
        }
        if applied && !entry.applied {
            entry.applied = true;
            self.fanout_lag.observe(now.duration_since(entry.first_seen).as_secs_f64());
        }
        let first_seen = entry.first_seen;
        let pending = fanouts.values().filter(|f| !f.applied).count();
        self.fanouts_pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
        drop(fanouts);
        self.region_fanout_progress(cluster, first_seen, regions);
    }

    fn region_fanout_progress(
        &self,
        cluster: &str,
        first_seen: Instant,
        regions: &[(String, bool)],
    ) {
        let Ok(mut region_fanouts) = self.region_fanouts.lock() else {
            return;
        };
        let labelled: HashMap<String, bool> =
            regions.iter().map(|(context, applied)| (region_label(context), *applied)).collect();
        for (region, applied) in &labelled {
            if self.is_removed(region) {
                continue;
            }
            let waiting = region_fanouts.entry(region.clone()).or_default();
            if *applied {
                waiting.remove(cluster);
            } else {
                // A region still behind on an older change has waited since that one.
                waiting.entry(cluster.to_string()).or_insert(first_seen);
            }
        }
        // Regions the cluster no longer has a datacenter in no longer wait for it.
        for (region, waiting) in region_fanouts.iter_mut() {
            if !labelled.contains_key(region) {
                waiting.remove(cluster);
            }
        }
    }

    /// Sets each region's lag gauge from the changes waiting there, as of now.
    fn refresh_region_fanout_lag(&self) {
        let Ok(region_fanouts) = self.region_fanouts.lock() else {
            return;
        };
        let now = Instant::now();
        for (region, waiting) in region_fanouts.iter() {
            let lag = waiting
                .values()
                .map(|since| now.duration_since(*since).as_secs_f64())
                .fold(0.0, f64::max);
            self.region_fanout_lag
                .get_or_create(&RegionLabels {
                    region: region.clone(),
                })
                .set(lag);
        }
    }

    /// A deleted K8ssandraCluster no longer counts as pending.
    pub fn fanout_forget(&self, cluster: &str) {
        if let Ok(mut fanouts) = self.fanouts.lock() {
            fanouts.remove(cluster);
            let pending = fanouts.values().filter(|f| !f.applied).count();
            self.fanouts_pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
        }
        if let Ok(mut region_fanouts) = self.region_fanouts.lock() {
            for waiting in region_fanouts.values_mut() {
                waiting.remove(cluster);
            }
        }
    }
}

fn controller_labels(controller: &str) -> ControllerLabels {
    ControllerLabels {
        controller: controller.to_string(),
    }
}

/// A tower layer counting and timing every request of one region's client.
#[derive(Clone)]
pub struct RegionMetricsLayer {
    region: String,
    metrics: Arc<Metrics>,
}

/// The `region` label of a context: the context, or [`HUB_REGION`] for the hub's "".
fn region_label(context: &str) -> String {
    if context.is_empty() {
        HUB_REGION.to_string()
    } else {
        context.to_string()
    }
}

impl RegionMetricsLayer {
    /// `region` is the context name; the hub's client uses [`HUB_REGION`].
    pub fn new(region: &str, metrics: Arc<Metrics>) -> RegionMetricsLayer {
        metrics.region_added(region);
        RegionMetricsLayer {
            region: region_label(region),
            metrics,
        }
    }
}

impl<S> tower::Layer<S> for RegionMetricsLayer {
    type Service = RegionMetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RegionMetricsService {
            inner,
            region: self.region.clone(),
            metrics: Arc::clone(&self.metrics),
        }
    }
}

#[derive(Clone)]
pub struct RegionMetricsService<S> {
    inner: S,
    region: String,
    metrics: Arc<Metrics>,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for RegionMetricsService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let method = request.method().as_str().to_string();
        let region = self.region.clone();
        let metrics = Arc::clone(&self.metrics);
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            let failed = match &result {
                Ok(response) => {
                    let status = response.status();
                    status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS
                }
                Err(_) => true,
            };
            metrics.region_request(&region, &method, started.elapsed(), failed);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generation_lag_is_observed_once_when_it_is_first_applied() {
        let metrics = Metrics::new();
        metrics.fanout_progress("ns/a", Some(1), false, &[]);
        assert_eq!(metrics.fanouts_pending.get(), 1);
        metrics.fanout_progress("ns/a", Some(1), true, &[]);
        metrics.fanout_progress("ns/a", Some(1), true, &[]);
        assert_eq!(metrics.fanouts_pending.get(), 0);
        let text = metrics.encode();
        assert!(
            text.contains("federator_fanout_lag_seconds_count 1\n"),
            "{text}"
        );
        // A new generation is pending again until applied.
        metrics.fanout_progress("ns/a", Some(2), false, &[]);
        assert_eq!(metrics.fanouts_pending.get(), 1);
        metrics.fanout_forget("ns/a");
        assert_eq!(metrics.fanouts_pending.get(), 0);
    }

    fn region_lag(text: &str, region: &str) -> Option<f64> {
        let prefix = format!("federator_region_fanout_lag_seconds{{region=\"{region}\"}} ");
        text.lines().find_map(|line| line.strip_prefix(prefix.as_str())?.parse().ok())
    }

    #[test]
    fn a_region_behind_shows_how_long_its_oldest_change_has_waited() {
        let metrics = Metrics::new();
        let regions = |east: bool, west: bool| {
            vec![
                ("".to_string(), true),
                ("east".to_string(), east),
                ("west".to_string(), west),
            ]
        };
        metrics.fanout_progress("ns/a", Some(1), false, &regions(false, true));
        std::thread::sleep(Duration::from_millis(20));
        // A newer generation does not reset the wait of a region still behind on the older one.
        metrics.fanout_progress("ns/a", Some(2), false, &regions(false, false));
        let text = metrics.encode();
        let east = region_lag(&text, "east").expect("east's lag");
        let west = region_lag(&text, "west").expect("west's lag");
        assert!(east >= 0.02 && east > west, "{text}");
        assert_eq!(region_lag(&text, HUB_REGION), Some(0.0), "{text}");

        metrics.fanout_progress("ns/a", Some(2), false, &regions(true, false));
        let text = metrics.encode();
        assert_eq!(region_lag(&text, "east"), Some(0.0), "{text}");
        assert!(
            region_lag(&text, "west").is_some_and(|lag| lag > 0.0),
            "{text}"
        );

        // A cluster gone, or a region gone, waits nowhere.
        metrics.fanout_forget("ns/a");
        assert_eq!(region_lag(&metrics.encode(), "west"), Some(0.0));
        metrics.forget_region("west");
        assert_eq!(region_lag(&metrics.encode(), "west"), None);
    }

    #[test]
    fn every_listed_metric_name_is_exported() {
        let metrics = Metrics::new();
        metrics.reconcile_started("test");
        metrics.reconcile_finished(
            "test",
            Duration::from_millis(3),
            Some("write_status"),
            &["write_status", "timeout"],
        );
        let text = metrics.encode();
        let errors = |kind: &str| {
            format!("federator_reconcile_errors_total{{controller=\"test\",error=\"{kind}\"}}")
        };
        assert!(
            text.contains(&format!("{} 1\n", errors("write_status"))),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} 0\n", errors("timeout"))),
            "{text}"
        );
        metrics.controller_started("test");
        metrics.region_request("sim-1", "GET", Duration::from_millis(2), false);
        metrics
            .region_reachable
            .get_or_create(&RegionLabels {
                region: "sim-1".into(),
            })
            .set(1);
        metrics.fanout_progress("ns/a", Some(1), false, &[("sim-1".into(), false)]);
        let text = metrics.encode();
        for name in METRIC_NAMES {
            assert!(
                text.lines().any(|l| l.starts_with(name)),
                "{name} missing from\n{text}"
            );
        }
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics text ends with # EOF"
        );
    }

    #[test]
    fn a_forgotten_region_has_no_series_left() {
        let metrics = Metrics::new();
        for method in ["GET", "PATCH", "DELETE"] {
            metrics.region_request("gone", method, Duration::from_millis(2), true);
        }
        metrics.region_request("kept", "GET", Duration::from_millis(2), false);
        assert!(metrics.encode().contains("region=\"gone\""));
        metrics.forget_region("gone");
        let text = metrics.encode();
        assert!(!text.contains("region=\"gone\""), "{text}");
        assert!(text.contains("region=\"kept\""), "{text}");

        // A watch or write of the region that ends afterwards, or a late probe, leaves none.
        metrics.region_request("gone", "GET", Duration::from_millis(2), false);
        metrics.set_region_reachable("gone", false);
        assert!(!metrics.encode().contains("region=\"gone\""));
        // A region registered again under that name counts again.
        metrics.region_added("gone");
        metrics.region_request("gone", "GET", Duration::from_millis(2), false);
        assert!(metrics.encode().contains("region=\"gone\""));
    }
}
