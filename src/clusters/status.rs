//! ClientConfig status from what the controller and the prober observed. Pure: the same input
//! gives the same status, so the controller writes only when something really changed.
//!
//! `lastSuccessfulContact` is not bumped on every probe (that would be a write per region per
//! probe interval). It is written when the status changes for another reason: on becoming
//! reachable it is the time of that probe, on becoming unreachable the time of the last probe that
//! succeeded. While a region stays reachable, the Ready condition is what says it is reachable
//! now; at steady state nothing is written.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::kubeconfig::Refusal;
use super::region::{HealthReport, whole_seconds};
use crate::api::client_config::ClientConfigStatus;
use crate::api::shared::{
    CONDITION_FALSE, CONDITION_TRUE, CONDITION_UNKNOWN, new_condition, set_condition,
};

/// The region can be used now.
pub const READY: &str = "Ready";
/// Something needs a user's attention (refused kubeconfig, unreachable region, credentials
/// that are rejected or about to expire).
pub const DEGRADED: &str = "Degraded";
/// Another, older ClientConfig provides the same context; present only while that is so.
pub const CONFLICT: &str = "Conflict";

/// Said in Ready's message of a ClientConfig whose context reaches the hub itself.
pub const HUB_NOTE: &str = "; it is the cluster Federator runs in: datacenters placed in this context are the hub's own, as if they named no k8sContext";

/// Credentials expiring within this window make the ClientConfig Degraded.
pub const EXPIRY_WARNING: SignedDuration = SignedDuration::from_hours(7 * 24);

/// What the controller found for one ClientConfig.
#[derive(Debug, Clone)]
pub enum Observation {
    /// An older ClientConfig (`holder`) provides the same context.
    Conflict { context: String, holder: String },
    /// The Secret or kubeconfig cannot be used.
    Refused(Refusal),
    /// A client exists; `health` is the prober's view.
    Connected {
        server: String,
        credential_expiry: Option<Timestamp>,
        health: HealthReport,
        /// Whether the context reaches the hub itself (None: not known yet).
        reaches_hub: Option<bool>,
    },
}

/// The status to write, given the current one.
pub fn desired_status(
    previous: Option<&ClientConfigStatus>,
    generation: Option<i64>,
    observation: &Observation,
    now: Timestamp,
) -> ClientConfigStatus {
    let now = whole_seconds(now);
    let mut conditions: Vec<Condition> = previous
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| [READY, DEGRADED, CONFLICT].contains(&c.type_.as_str()))
        .collect();
    let previous_contact = previous.and_then(|s| s.last_successful_contact.clone());
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        new_condition(type_, status, reason, message, generation, Time(now))
    };

    let mut status = ClientConfigStatus {
        observed_generation: generation,
        last_successful_contact: previous_contact.clone(),
        ..Default::default()
    };
    match observation {
        Observation::Conflict { context, holder } => {
            let message = format!(
                "context {context:?} is already provided by the older ClientConfig {holder:?}; this one is ignored until that one is deleted or gets another contextName"
            );
            set_condition(
                &mut conditions,
                condition(READY, CONDITION_FALSE, "Conflict", &message),
            );
            set_condition(
                &mut conditions,
                condition(DEGRADED, CONDITION_TRUE, "Conflict", &message),
            );
            set_condition(
                &mut conditions,
                condition(CONFLICT, CONDITION_TRUE, "ContextClaimed", &message),
            );
            status.message = Some(message);
        }
        Observation::Refused(refusal) => {
            let reason = refusal.reason.as_str();
            set_condition(
                &mut conditions,
                condition(READY, CONDITION_FALSE, reason, &refusal.message),
            );
            set_condition(
                &mut conditions,
                condition(DEGRADED, CONDITION_TRUE, reason, &refusal.message),
            );
            status.message = Some(refusal.message.clone());
        }
        Observation::Connected {
            server,
            credential_expiry,
            health,
            reaches_hub,
        } => {
            status.credential_expiry = credential_expiry.map(Time);
            status.reaches_hub = *reaches_hub;
            status.server_version = health.server_version.clone();
            status.reachable = health.reachable;
            match (health.reachable, &health.failure) {
                (None, _) => {
                    let message = format!("waiting for the first answer from {server}");
                    set_condition(
                        &mut conditions,
                        condition(READY, CONDITION_UNKNOWN, "Probing", &message),
                    );
                    set_condition(
                        &mut conditions,
                        condition(DEGRADED, CONDITION_UNKNOWN, "Probing", &message),
                    );
                }
                (Some(true), _) => {
                    // Keep the stored contact while it belongs to the current reachable period.
                    let keep = previous.is_some_and(|p| p.reachable == Some(true))
                        && previous_contact.as_ref().is_some_and(|t| t.0 >= health.since);
                    if !keep {
                        status.last_successful_contact = health.last_success.map(Time);
                    }
                    let version = health.server_version.as_deref().unwrap_or("unknown version");
                    let mut message = format!("{server} answers ({version})");
                    if *reaches_hub == Some(true) {
                        message.push_str(HUB_NOTE);
                    }
                    set_condition(
                        &mut conditions,
                        condition(READY, CONDITION_TRUE, "Reachable", &message),
                    );
                    let (degraded, reason, message) = expiry_state(*credential_expiry, now);
                    set_condition(
                        &mut conditions,
                        condition(DEGRADED, degraded, reason, &message),
                    );
                }
                (Some(false), failure) => {
                    if health.last_success.is_some() {
                        status.last_successful_contact = health.last_success.map(Time);
                    }
                    let (reason, message) = match failure {
                        Some(f) => (f.kind.as_str(), f.message.clone()),
                        None => ("Unreachable", format!("{server} does not answer")),
                    };
                    set_condition(
                        &mut conditions,
                        condition(READY, CONDITION_FALSE, reason, &message),
                    );
                    set_condition(
                        &mut conditions,
                        condition(DEGRADED, CONDITION_TRUE, reason, &message),
                    );
                    status.message = Some(message);
                }
            }
        }
    }
    if !matches!(observation, Observation::Conflict { .. }) {
        conditions.retain(|c| c.type_ != CONFLICT);
    }
    // A stable order, so that equal statuses compare equal.
    conditions.sort_by_key(|c| match c.type_.as_str() {
        READY => 0,
        DEGRADED => 1,
        _ => 2,
    });
    status.conditions = Some(conditions);
    status
}

/// Degraded's status, reason and message for credentials expiring at `expiry`.
fn expiry_state(expiry: Option<Timestamp>, now: Timestamp) -> (&'static str, &'static str, String) {
    match expiry {
        Some(at) if at <= now => (
            CONDITION_TRUE,
            "CredentialsExpired",
            format!("the credentials in the kubeconfig expired at {at}; renew them"),
        ),
        Some(at) if at.duration_since(now) <= EXPIRY_WARNING => (
            CONDITION_TRUE,
            "CredentialsExpiringSoon",
            format!("the credentials in the kubeconfig expire at {at}; renew them before then"),
        ),
        _ => (CONDITION_FALSE, "AsExpected", String::new()),
    }
}

/// When the status would change by itself (credentials entering the warning window or
/// expiring), so the controller looks again then.
pub fn next_time_based_change(
    expiry: Option<Timestamp>,
    now: Timestamp,
) -> Option<std::time::Duration> {
    let at = expiry?;
    let warn_at = at.checked_sub(EXPIRY_WARNING).ok()?;
    let next = if now < warn_at {
        warn_at
    } else if now < at {
        at
    } else {
        return None;
    };
    let wait = next.duration_since(now);
    std::time::Duration::try_from(wait).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::shared::find_condition;
    use crate::clusters::kubeconfig::RefusalReason;
    use crate::clusters::region::{FailureKind, ProbeFailure};

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).expect("valid")
    }

    fn connected(health: HealthReport) -> Observation {
        Observation::Connected {
            server: "https://127.0.0.1:6443".into(),
            credential_expiry: None,
            health,
            reaches_hub: Some(false),
        }
    }

    fn reachable(since: i64, last_success: i64) -> HealthReport {
        HealthReport {
            reachable: Some(true),
            since: t(since),
            server_version: Some("v1.33.0".into()),
            last_success: Some(t(last_success)),
            failure: None,
            consecutive_failures: 0,
        }
    }

    fn unreachable(since: i64, last_success: Option<i64>) -> HealthReport {
        HealthReport {
            reachable: Some(false),
            since: t(since),
            server_version: Some("v1.33.0".into()),
            last_success: last_success.map(t),
            failure: Some(ProbeFailure {
                kind: FailureKind::Unreachable,
                message: "cannot reach the API server: connection refused".into(),
            }),
            consecutive_failures: 1,
        }
    }

    fn condition<'a>(status: &'a ClientConfigStatus, type_: &str) -> &'a Condition {
        find_condition(status.conditions.as_deref().unwrap_or_default(), type_)
            .unwrap_or_else(|| panic!("no {type_} condition"))
    }

    #[test]
    fn steady_probes_do_not_change_the_status() {
        let first = desired_status(None, Some(1), &connected(reachable(0, 0)), t(0));
        assert_eq!(first.reachable, Some(true));
        assert_eq!(first.last_successful_contact, Some(Time(t(0))));
        assert_eq!(condition(&first, READY).status, CONDITION_TRUE);
        assert_eq!(condition(&first, DEGRADED).status, CONDITION_FALSE);
        // Many probes later: same status, so no write.
        let later = desired_status(Some(&first), Some(1), &connected(reachable(0, 500)), t(600));
        assert_eq!(later, first);
    }

    #[test]
    fn becoming_unreachable_records_the_last_success_and_moves_transition_times() {
        let up = desired_status(None, Some(1), &connected(reachable(0, 0)), t(0));
        let down = desired_status(
            Some(&up),
            Some(1),
            &connected(unreachable(100, Some(90))),
            t(100),
        );
        assert_eq!(down.reachable, Some(false));
        assert_eq!(down.last_successful_contact, Some(Time(t(90))));
        assert!(down.message.as_deref().unwrap_or("").contains("connection refused"));
        let ready = condition(&down, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            (CONDITION_FALSE, "Unreachable")
        );
        assert_eq!(ready.last_transition_time, Time(t(100)));
        assert_eq!(condition(&down, DEGRADED).status, CONDITION_TRUE);

        let still_down = desired_status(
            Some(&down),
            Some(1),
            &connected(unreachable(100, Some(90))),
            t(200),
        );
        assert_eq!(still_down, down);

        let back = desired_status(
            Some(&down),
            Some(1),
            &connected(reachable(300, 300)),
            t(300),
        );
        assert_eq!(back.reachable, Some(true));
        assert_eq!(back.message, None);
        assert_eq!(back.last_successful_contact, Some(Time(t(300))));
        assert_eq!(condition(&back, READY).last_transition_time, Time(t(300)));
    }

    #[test]
    fn a_stale_contact_from_a_previous_process_is_replaced() {
        let old = desired_status(None, Some(1), &connected(reachable(0, 0)), t(0));
        // The operator restarted at t=1000: its reachable period began then.
        let after_restart = desired_status(
            Some(&old),
            Some(1),
            &connected(reachable(1000, 1000)),
            t(1000),
        );
        assert_eq!(after_restart.last_successful_contact, Some(Time(t(1000))));
        // Ready was already True: its transition time stays.
        assert_eq!(
            condition(&after_restart, READY).last_transition_time,
            Time(t(0))
        );
    }

    #[test]
    fn a_refusal_sets_ready_false_with_its_reason() {
        let refusal = Refusal::new(RefusalReason::SecretNotFound, "Secret ns/x does not exist");
        let status = desired_status(None, Some(2), &Observation::Refused(refusal), t(0));
        let ready = condition(&status, READY);
        assert_eq!(ready.reason, "SecretNotFound");
        assert_eq!(ready.observed_generation, Some(2));
        assert_eq!(status.observed_generation, Some(2));
        assert_eq!(status.reachable, None);
        assert_eq!(
            status.message.as_deref(),
            Some("Secret ns/x does not exist")
        );
    }

    #[test]
    fn a_conflict_has_its_own_condition_that_goes_away() {
        let conflict = Observation::Conflict {
            context: "east".into(),
            holder: "east-old".into(),
        };
        let status = desired_status(None, Some(1), &conflict, t(0));
        assert_eq!(condition(&status, CONFLICT).status, CONDITION_TRUE);
        assert_eq!(condition(&status, READY).reason, "Conflict");
        let resolved = desired_status(Some(&status), Some(1), &connected(reachable(5, 5)), t(5));
        assert!(
            find_condition(resolved.conditions.as_deref().unwrap_or_default(), CONFLICT).is_none()
        );
    }

    #[test]
    fn a_context_that_reaches_the_hub_says_so() {
        let hub = Observation::Connected {
            server: "https://10.96.0.1:443".into(),
            credential_expiry: None,
            health: reachable(0, 0),
            reaches_hub: Some(true),
        };
        let status = desired_status(None, Some(1), &hub, t(0));
        assert_eq!(status.reaches_hub, Some(true));
        let ready = condition(&status, READY);
        assert_eq!(ready.status, CONDITION_TRUE);
        assert!(
            ready.message.contains("the cluster Federator runs in"),
            "{}",
            ready.message
        );
        let region = desired_status(None, Some(1), &connected(reachable(0, 0)), t(0));
        assert_eq!(region.reaches_hub, Some(false));
        assert!(!condition(&region, READY).message.contains("Federator runs in"));
    }

    #[test]
    fn expiring_credentials_make_it_degraded() {
        let observation = |expiry: i64| Observation::Connected {
            server: "https://x".into(),
            credential_expiry: Some(t(expiry)),
            health: reachable(0, 0),
            reaches_hub: None,
        };
        let day = 24 * 3600;
        let fine = desired_status(None, Some(1), &observation(30 * day), t(0));
        assert_eq!(condition(&fine, DEGRADED).status, CONDITION_FALSE);
        assert_eq!(fine.credential_expiry, Some(Time(t(30 * day))));
        let soon = desired_status(None, Some(1), &observation(3 * day), t(0));
        assert_eq!(condition(&soon, DEGRADED).reason, "CredentialsExpiringSoon");
        let expired = desired_status(None, Some(1), &observation(-1), t(0));
        assert_eq!(condition(&expired, DEGRADED).reason, "CredentialsExpired");

        let wait = next_time_based_change(Some(t(30 * day)), t(0)).expect("a wait");
        assert_eq!(wait.as_secs(), 23 * day as u64);
        assert_eq!(
            next_time_based_change(Some(t(3 * day)), t(0)).map(|d| d.as_secs()),
            Some(3 * day as u64)
        );
        assert_eq!(next_time_based_change(Some(t(-1)), t(0)), None);
        assert_eq!(next_time_based_change(None, t(0)), None);
    }
}
