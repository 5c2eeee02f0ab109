//! Health probing: one task per region asks `/version` every probe interval, with a timeout.
//! `probe_failure_threshold` failures in a row mark the region unreachable (one lost answer
//! does not cut it off), and from then on the probes back off exponentially (capped); a success
//! marks it reachable.

use std::time::Duration;

use std::sync::Arc;

use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use super::change::{ChangeKind, RegionChange};
use super::identity::{self, HubIdentity};
use super::region::{FailureKind, ProbeFailure, Region};

/// Longest wait between probes of a failing region, unless the probe interval is longer.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How long to wait before the next probe after `consecutive_failures` failures in a row:
/// the interval while healthy, then interval × 2, × 4, … up to min(8 × interval, 60 s) — but
/// never less than the interval itself.
pub fn next_probe_delay(interval: Duration, consecutive_failures: u32) -> Duration {
    if consecutive_failures == 0 {
        return interval;
    }
    let cap = interval.max(MAX_BACKOFF.min(interval.saturating_mul(8)));
    let factor = 1u32 << consecutive_failures.saturating_sub(1).min(16);
    interval.saturating_mul(factor).min(cap)
}

/// The probe's own timeout: the request timeout, but no longer than the probe interval, so a
/// dead region is noticed within one interval.
pub fn probe_timeout(interval: Duration, request_timeout: Duration) -> Duration {
    request_timeout.min(interval).max(Duration::from_millis(200))
}

/// Probes `region` until the task is aborted (the registry aborts it when the region is
/// replaced or removed). Whether the region is the hub is checked again when it answers after
/// an outage (the cluster behind an address may have been re-created) or was never known.
pub(crate) async fn run(
    region: Region,
    interval: Duration,
    request_timeout: Duration,
    changes: broadcast::Sender<RegionChange>,
    hub: Arc<HubIdentity>,
    metrics: Arc<crate::ops::Metrics>,
) {
    let timeout = probe_timeout(interval, request_timeout);
    let client = region.probe_client();
    loop {
        let outcome = match tokio::time::timeout(timeout, client.apiserver_version()).await {
            Ok(Ok(info)) => Ok(info.git_version),
            Ok(Err(error)) => Err(describe_failure(&error, region.server(), timeout)),
            Err(_) => Err(timed_out(region.server(), timeout)),
        };
        let failed = outcome.as_ref().err().cloned();
        let was_unreachable = region.health().reachable == Some(false);
        if failed.is_none()
            && (was_unreachable || region.reaches_hub().is_none())
            && identity::check(&region, &hub, timeout).await
        {
            let _ = changes.send(RegionChange::Context {
                context: region.context().to_string(),
                kind: ChangeKind::Identity,
            });
        }
        if region.record_probe(outcome) {
            let health = region.health();
            metrics.set_region_reachable(region.context(), health.reachable == Some(true));
            let kind = if health.reachable == Some(true) {
                info!(
                    context = region.context(),
                    server_version = health.server_version.as_deref().unwrap_or(""),
                    "region reachable"
                );
                ChangeKind::Reachable
            } else {
                warn!(
                    context = region.context(),
                    reason = failed.as_ref().map(|f| f.message.as_str()).unwrap_or(""),
                    "region unreachable"
                );
                ChangeKind::Unreachable
            };
            // No subscriber is fine: nobody needs to know.
            let _ = changes.send(RegionChange::Context {
                context: region.context().to_string(),
                kind,
            });
        } else if let Some(failure) = &failed {
            debug!(
                context = region.context(),
                reason = %failure.message,
                failures_in_a_row = region.health().consecutive_failures,
                threshold = region.failure_threshold(),
                "probe failed"
            );
        }
        // Below the threshold the next probe comes after one interval: it decides sooner.
        let beyond_threshold = (region.health().consecutive_failures)
            .saturating_sub(region.failure_threshold().saturating_sub(1));
        let delay = next_probe_delay(interval, beyond_threshold);
        tokio::time::sleep(delay).await;
    }
}

fn timed_out(server: &str, timeout: Duration) -> ProbeFailure {
    ProbeFailure {
        kind: FailureKind::Unreachable,
        message: format!(
            "the API server at {server} did not answer within {}",
            seconds_text(timeout)
        ),
    }
}

fn seconds_text(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}s")
    } else {
        format!("{s:.1}s")
    }
}

/// A message for a failed probe, written from the error's kind (the API server's own message
/// for HTTP errors, the transport error chain otherwise; neither can contain our credentials).
fn describe_failure(error: &kube::Error, server: &str, timeout: Duration) -> ProbeFailure {
    if super::region::is_timeout(error) {
        return timed_out(server, timeout);
    }
    match error {
        kube::Error::Api(status) if status.code == 401 => ProbeFailure {
            kind: FailureKind::CredentialsRejected,
            message: format!(
                "the API server at {server} rejected the credentials (401 Unauthorized): they were rotated, revoked or have expired; update the kubeconfig Secret (federator clientconfig create does)"
            ),
        },
        kube::Error::Api(status) => ProbeFailure {
            kind: FailureKind::Unreachable,
            message: format!(
                "the API server at {server} answered {} {} to a version request",
                status.code, status.reason
            ),
        },
        other => ProbeFailure {
            kind: FailureKind::Unreachable,
            message: format!(
                "cannot reach the API server at {server}: {}",
                error_chain(other)
            ),
        },
    }
}

/// "a: b: c" from an error and its sources, without repeats.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let s = Duration::from_secs;
        let delays: Vec<_> = (0..7).map(|n| next_probe_delay(s(10), n)).collect();
        assert_eq!(delays, [s(10), s(10), s(20), s(40), s(60), s(60), s(60)]);
        let fast: Vec<_> = (0..6).map(|n| next_probe_delay(s(1), n)).collect();
        assert_eq!(fast, [s(1), s(1), s(2), s(4), s(8), s(8)]);
        // A long interval is never shortened by the cap.
        assert_eq!(next_probe_delay(s(300), 5), s(300));
        assert_eq!(next_probe_delay(s(1), u32::MAX), s(8));
    }

    #[test]
    fn the_probe_timeout_fits_in_the_interval() {
        let s = Duration::from_secs;
        assert_eq!(probe_timeout(s(10), s(10)), s(10));
        assert_eq!(probe_timeout(s(1), s(10)), s(1));
        assert_eq!(probe_timeout(s(30), s(5)), s(5));
    }

    #[test]
    fn a_401_says_the_credentials_were_rejected() {
        let status = kube::core::Status::failure("Unauthorized", "Unauthorized").with_code(401);
        let failure = describe_failure(
            &kube::Error::Api(Box::new(status)),
            "https://x:6443",
            Duration::from_secs(1),
        );
        assert_eq!(failure.kind, FailureKind::CredentialsRejected);
        assert!(failure.message.contains("401"), "{}", failure.message);
    }
}
