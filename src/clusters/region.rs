//! One region as callers see it: a `kube::Client` bounded by the per-region request timeout and
//! concurrency limit, and what the prober last learnt about its health.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use tower::Layer as _;
use tower::timeout::{Timeout, TimeoutLayer};
use tower::util::Either;

use super::transport::Transport;
use crate::ops::Metrics;
use crate::settings::RegionSettings;

/// Why a region cannot be used right now. Callers get it at once, without a network call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    /// No ClientConfig provides this context (or it was deleted).
    #[error("no ClientConfig provides context {context:?}")]
    UnknownContext { context: String },
    /// The prober could not reach the region (or its credentials were rejected); it keeps
    /// probing and the region comes back by itself.
    #[error("region {context:?} is unavailable since {since}: {reason}")]
    Unavailable {
        context: String,
        since: Timestamp,
        reason: String,
    },
    /// The ClientConfig exists but cannot be used (missing Secret, refused kubeconfig,
    /// conflict); `reason` says what to fix.
    #[error("region {context:?} is misconfigured: {reason}")]
    Misconfigured { context: String, reason: String },
}

impl RegionError {
    pub fn context(&self) -> &str {
        match self {
            RegionError::UnknownContext { context }
            | RegionError::Unavailable { context, .. }
            | RegionError::Misconfigured { context, .. } => context,
        }
    }
}

/// Why the last probe failed, as far as a user needs to tell cases apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// 401: the token or certificate is no longer accepted.
    CredentialsRejected,
    /// No connection, TLS failure, timeout or a server error.
    Unreachable,
}

impl FailureKind {
    /// The condition reason.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::CredentialsRejected => "CredentialsRejected",
            FailureKind::Unreachable => "Unreachable",
        }
    }
}

/// What the prober knows about a region. Only transitions change `since`, `failure` and
/// `server_version`; `last_success` moves with every successful probe (it is not written to
/// the ClientConfig on every probe, see the controller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// None until the first probe has finished.
    pub reachable: Option<bool>,
    /// When the current state (reachable, unreachable or unknown) began.
    pub since: Timestamp,
    /// `gitVersion` from the last successful probe.
    pub server_version: Option<String>,
    /// The last successful probe, if any since the client was built.
    pub last_success: Option<Timestamp>,
    /// Why the region is unreachable, when it is.
    pub failure: Option<ProbeFailure>,
    /// Failed probes in a row.
    pub consecutive_failures: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFailure {
    pub kind: FailureKind,
    /// Written by Federator from the error's kind; never contains credentials.
    pub message: String,
}

impl HealthReport {
    fn unknown(now: Timestamp) -> Self {
        HealthReport {
            reachable: None,
            since: now,
            server_version: None,
            last_success: None,
            failure: None,
            consecutive_failures: 0,
        }
    }
}

/// A region's client and health. Cheap to clone; a clone keeps working after the registry has
/// replaced the region (with the credentials it was built with).
#[derive(Clone)]
pub struct Region {
    inner: Arc<RegionInner>,
}

struct RegionInner {
    context: String,
    /// ClientConfig the region comes from; None for the hub.
    source: Option<String>,
    server: String,
    credential_expiry: Option<Timestamp>,
    /// Bounded by the request timeout and the concurrency limit: for callers.
    client: kube::Client,
    /// Bounded by the request timeout only, so that a region saturated by callers is still
    /// probed.
    probe_client: kube::Client,
    /// Failed probes in a row that mark the region unreachable.
    failure_threshold: u32,
    health: RwLock<HealthReport>,
    /// Whether this API server is the hub's own (see [`super::identity`]); None until known.
    reaches_hub: RwLock<Option<bool>>,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("context", &self.inner.context)
            .field("source", &self.inner.source)
            .field("server", &self.inner.server)
            .finish_non_exhaustive()
    }
}

impl Region {
    pub(crate) fn new(
        context: String,
        source: Option<String>,
        server: String,
        credential_expiry: Option<Timestamp>,
        config: kube::Config,
        settings: &RegionSettings,
        metrics: &Arc<Metrics>,
    ) -> Result<Region, kube::Error> {
        // One pool for both: the prober sees the connection callers use.
        let transport = transport(config, settings.connect_timeout)?;
        let client = wrapped_client(
            &transport,
            &context,
            settings.request_timeout,
            Some(settings.max_concurrent_requests),
            metrics,
        );
        let probe_client = wrapped_client(
            &transport,
            &context,
            settings.request_timeout,
            None,
            metrics,
        );
        Ok(Region {
            inner: Arc::new(RegionInner {
                context,
                source,
                server,
                credential_expiry,
                client,
                probe_client,
                failure_threshold: settings.probe_failure_threshold.max(1),
                health: RwLock::new(HealthReport::unknown(whole_seconds(Timestamp::now()))),
                reaches_hub: RwLock::new(None),
            }),
        })
    }

    /// The hub itself (context ""), with the client the operator already has.
    pub(crate) fn hub(client: kube::Client) -> Region {
        let now = whole_seconds(Timestamp::now());
        Region {
            inner: Arc::new(RegionInner {
                context: String::new(),
                source: None,
                server: String::new(),
                credential_expiry: None,
                client: client.clone(),
                probe_client: client,
                failure_threshold: 1,
                health: RwLock::new(HealthReport {
                    // The operator talks to the hub all the time; a hub outage is not a region's.
                    reachable: Some(true),
                    ..HealthReport::unknown(now)
                }),
                reaches_hub: RwLock::new(Some(true)),
            }),
        }
    }

    /// The context name ("" for the hub).
    pub fn context(&self) -> &str {
        &self.inner.context
    }

    pub fn is_hub(&self) -> bool {
        self.inner.context.is_empty()
    }

    /// Name of the ClientConfig this region comes from (None for the hub).
    pub fn source(&self) -> Option<&str> {
        self.inner.source.as_deref()
    }

    /// The API server address.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    pub fn credential_expiry(&self) -> Option<Timestamp> {
        self.inner.credential_expiry
    }

    /// A client whose every request is bounded by the region's request timeout and waits for
    /// one of the region's concurrency slots. A request that times out fails with
    /// `kube::Error::Service` (see [`is_timeout`]). Watches are fine: the timeout covers the
    /// response head, not the stream.
    pub fn client(&self) -> kube::Client {
        self.inner.client.clone()
    }

    pub fn health(&self) -> HealthReport {
        match self.inner.health.read() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Ok when the region may be called: reachable, or not probed yet.
    pub fn check_available(&self) -> Result<(), RegionError> {
        let health = self.health();
        if health.reachable == Some(false) {
            return Err(RegionError::Unavailable {
                context: self.inner.context.clone(),
                since: health.since,
                reason: health.failure.map(|f| f.message).unwrap_or_else(|| "probe failed".into()),
            });
        }
        Ok(())
    }

    /// Whether this region's API server is the hub's own, i.e. the same cluster (None while
    /// that could not be checked yet).
    pub fn reaches_hub(&self) -> Option<bool> {
        match self.inner.reaches_hub.read() {
            Ok(known) => *known,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// Records whether the region is the hub; returns whether that changed.
    pub(crate) fn record_reaches_hub(&self, reaches_hub: bool) -> bool {
        let mut known = match self.inner.reaches_hub.write() {
            Ok(known) => known,
            Err(poisoned) => poisoned.into_inner(),
        };
        let changed = *known != Some(reaches_hub);
        *known = Some(reaches_hub);
        changed
    }

    pub(crate) fn probe_client(&self) -> kube::Client {
        self.inner.probe_client.clone()
    }

    /// Failed probes in a row that mark the region unreachable.
    pub(crate) fn failure_threshold(&self) -> u32 {
        self.inner.failure_threshold
    }

    /// Updates the health with a probe's outcome; returns whether that was a transition
    /// worth telling subscribers about (reachability, failure kind or server version changed).
    /// A failure marks the region unreachable only as the threshold's failure in a row: until
    /// then callers go on (each call bounded by the request timeout).
    pub(crate) fn record_probe(&self, outcome: Result<String, ProbeFailure>) -> bool {
        let now = whole_seconds(Timestamp::now());
        let mut health = match self.inner.health.write() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        };
        match outcome {
            Ok(version) => {
                let changed = health.reachable != Some(true)
                    || health.server_version.as_deref() != Some(version.as_str());
                if health.reachable != Some(true) {
                    health.since = now;
                }
                health.reachable = Some(true);
                health.server_version = Some(version);
                health.last_success = Some(now);
                health.failure = None;
                health.consecutive_failures = 0;
                changed
            }
            Err(failure) => {
                health.consecutive_failures = health.consecutive_failures.saturating_add(1);
                if health.reachable != Some(false)
                    && health.consecutive_failures < self.inner.failure_threshold
                {
                    return false;
                }
                let same_kind = health.reachable == Some(false)
                    && health.failure.as_ref().map(|f| f.kind) == Some(failure.kind);
                if same_kind {
                    // Keep the first message of the streak, so status is not rewritten on every
                    // failed probe.
                    return false;
                }
                if health.reachable != Some(false) {
                    health.since = now;
                }
                health.reachable = Some(false);
                health.failure = Some(failure);
                true
            }
        }
    }
}

/// Builds a client from `config`, with the connect timeout, a timeout on every request and,
/// when given, a limit of requests in flight (the rest wait their turn). Every request is
/// counted and timed under `region` ("" for the hub) in the metrics.
pub fn build_client(
    region: &str,
    config: kube::Config,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_concurrent_requests: Option<usize>,
    metrics: &Arc<Metrics>,
) -> Result<kube::Client, kube::Error> {
    let transport = transport(config, connect_timeout)?;
    Ok(wrapped_client(
        &transport,
        region,
        request_timeout,
        max_concurrent_requests,
        metrics,
    ))
}

/// The connections to `config`'s API server, with Federator's User-Agent.
fn transport(
    mut config: kube::Config,
    connect_timeout: Duration,
) -> Result<Transport, kube::Error> {
    if let Ok(agent) = http::HeaderValue::from_str(&crate::ops::user_agent()) {
        config.headers.push((http::header::USER_AGENT, agent));
    }
    Transport::new(&config, connect_timeout)
}

/// A client over `transport` whose requests are timed out, limited when
/// `max_concurrent_requests` is given, and counted under `region`.
fn wrapped_client(
    transport: &Transport,
    region: &str,
    request_timeout: Duration,
    max_concurrent_requests: Option<usize>,
    metrics: &Arc<Metrics>,
) -> kube::Client {
    transport.client(tower::layer::layer_fn(|stack| {
        bounded(
            stack,
            region,
            request_timeout,
            max_concurrent_requests,
            metrics,
        )
    }))
}

/// `inner` with every request counted under `region`, limited to `max_concurrent_requests` in
/// flight when given, and bounded by `request_timeout` from the moment it is sent: the wait for
/// a concurrency slot counts, so a region saturated by slow requests fails the others in time
/// instead of queueing them.
fn bounded<S, B>(
    inner: S,
    region: &str,
    request_timeout: Duration,
    max_concurrent_requests: Option<usize>,
    metrics: &Arc<Metrics>,
) -> crate::ops::metrics::RegionMetricsService<Timeout<Either<ConcurrencySlots<S>, S>>>
where
    S: tower::Service<
            http::Request<kube::client::Body>,
            Response = http::Response<B>,
            Error = tower::BoxError,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let limited = match max_concurrent_requests {
        Some(max) => Either::Left(ConcurrencySlots::new(inner, max)),
        None => Either::Right(inner),
    };
    crate::ops::metrics::RegionMetricsLayer::new(region, Arc::clone(metrics))
        .layer(TimeoutLayer::new(request_timeout).layer(limited))
}

/// Lets `max` requests be in flight at once; the others wait for a slot inside their response
/// future, which the request timeout around it bounds. (tower's ConcurrencyLimit waits in
/// `poll_ready`, which kube's buffered client polls before any timeout has started.)
#[derive(Clone)]
pub(crate) struct ConcurrencySlots<S> {
    inner: S,
    slots: Arc<tokio::sync::Semaphore>,
}

impl<S> ConcurrencySlots<S> {
    fn new(inner: S, max: usize) -> ConcurrencySlots<S> {
        ConcurrencySlots {
            inner,
            slots: Arc::new(tokio::sync::Semaphore::new(max.max(1))),
        }
    }
}

impl<S, Request> tower::Service<Request> for ConcurrencySlots<S>
where
    S: tower::Service<Request> + Clone + Send + 'static,
    S::Error: Into<tower::BoxError>,
    S::Future: Send + 'static,
    Request: Send + 'static,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, tower::BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // Readiness is awaited with the slot, in the response future.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let slots = self.slots.clone();
        // The clone that was not polled ready goes with the request, as tower's Buffer does.
        let mut inner = self.inner.clone();
        Box::pin(async move {
            let _slot = slots.acquire_owned().await.map_err(tower::BoxError::from)?;
            let ready = tower::ServiceExt::ready(&mut inner).await.map_err(Into::into)?;
            ready.call(request).await.map_err(Into::into)
        })
    }
}

/// Whether a request failed because the region's request timeout elapsed.
pub fn is_timeout(error: &kube::Error) -> bool {
    match error {
        kube::Error::Service(inner) => inner.is::<tower::timeout::error::Elapsed>(),
        _ => false,
    }
}

/// Kubernetes times have whole seconds; so do ours, so that what is written reads back equal.
pub fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region_with_threshold(threshold: u32) -> Region {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let settings = RegionSettings {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            max_concurrent_requests: 1,
            probe_interval: Duration::from_secs(1),
            probe_failure_threshold: threshold,
            allow_insecure_skip_tls_verify: false,
        };
        let server = "https://127.0.0.1:1";
        let config = kube::Config::new(server.parse().expect("url"));
        Region::new(
            "east".into(),
            Some("east".into()),
            server.into(),
            None,
            config,
            &settings,
            &Default::default(),
        )
        .expect("a region")
    }

    fn failed() -> Result<String, ProbeFailure> {
        Err(ProbeFailure {
            kind: FailureKind::Unreachable,
            message: "the API server did not answer within 1s".into(),
        })
    }

    // A runtime: the region's clients start their request buffers on it.
    #[tokio::test]
    async fn a_region_is_unreachable_only_after_the_threshold_of_failed_probes_in_a_row() {
        let region = region_with_threshold(3);
        assert!(region.record_probe(Ok("v1.32.0".into())));
        assert!(
            !region.record_probe(failed()),
            "one failure changes nothing"
        );
        assert!(region.check_available().is_ok());
        assert!(!region.record_probe(failed()));
        assert!(region.check_available().is_ok());
        assert!(region.record_probe(failed()), "the third in a row does");
        assert!(matches!(
            region.check_available(),
            Err(RegionError::Unavailable { .. })
        ));
        // Back; a new streak starts from zero.
        assert!(region.record_probe(Ok("v1.32.0".into())));
        assert!(!region.record_probe(failed()));
        assert!(region.check_available().is_ok());
        assert_eq!(region.health().reachable, Some(true));

        let strict = region_with_threshold(1);
        assert!(strict.record_probe(failed()));
        assert!(strict.check_available().is_err());
    }

    #[tokio::test]
    async fn a_request_waiting_for_a_concurrency_slot_times_out_after_the_request_timeout() {
        let timeout = Duration::from_secs(1);
        // An API server that answers nothing in time: the first request holds the only slot.
        let silent = tower::service_fn(|_: http::Request<kube::client::Body>| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, tower::BoxError>(http::Response::new(String::from("{}")))
        });
        let metrics = Arc::default();
        let client = kube::Client::new(
            bounded(silent, "slots-test", timeout, Some(1), &metrics),
            "default",
        );
        let started = std::time::Instant::now();
        let call = || {
            let client = client.clone();
            async move {
                let result = client.apiserver_version().await;
                (result, started.elapsed())
            }
        };
        let (first, second) = tokio::join!(call(), call());
        for (result, took) in [first, second] {
            let error = result.expect_err("nothing answers");
            assert!(is_timeout(&error), "{error:?}");
            // Waiting for the slot and then a timeout of its own would take twice as long.
            assert!(
                took < timeout.mul_f64(1.6),
                "failed after {took:?}; the request timeout is {timeout:?}"
            );
        }
    }
}
