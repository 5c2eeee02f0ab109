//! A K8ssandraTask's status from its CassandraTasks' (pure): totals, Running, Complete and
//! Failed as upstream folds them, Federator's Invalid and RegionUnreachable with a message, and
//! when a finished task expires.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::api::k8ssandra_task::{CassandraTaskStatus, K8ssandraTaskStatus};

use super::fanout::has_condition;

pub const RUNNING: &str = "Running";
pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
/// The spec cannot run (upstream's `Invalid`).
pub const INVALID: &str = "Invalid";
/// Some datacenter's region could not be asked (Federator's own).
pub const REGION_UNREACHABLE: &str = "RegionUnreachable";

/// The TTL of a finished task when `ttlSecondsAfterFinished` is absent (upstream's).
pub const DEFAULT_TTL: Duration = Duration::from_secs(86_400);

/// What one reconcile found, to fold into the status.
#[derive(Clone, Debug, Default)]
pub struct Found {
    /// The datacenters the task runs on, in order.
    pub targets: Vec<String>,
    /// The status of each CassandraTask read now, by datacenter.
    pub statuses: BTreeMap<String, CassandraTaskStatus>,
    /// Datacenters never started because an earlier one failed (Forbid).
    pub cancelled: Vec<String>,
    /// Datacenters whose region could not be asked, and why.
    pub unreachable: BTreeMap<String, String>,
    /// Why the spec cannot run, with the condition reason.
    pub invalid: Option<(&'static str, String)>,
}

/// The new status: the previous one with what was found folded in. `datacenters` keeps the
/// last status read of a datacenter whose region cannot be asked now.
pub fn fold(
    previous: Option<&K8ssandraTaskStatus>,
    found: &Found,
    now: Timestamp,
) -> K8ssandraTaskStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let mut datacenters = status.datacenters.take().unwrap_or_default();
    datacenters.retain(|dc, _| found.targets.contains(dc));
    for (dc, seen) in &found.statuses {
        datacenters.insert(dc.clone(), seen.clone());
    }
    let mut conditions = status.task.conditions.take().unwrap_or_default();
    let now = Time(now);

    match &found.invalid {
        Some((reason, message)) => {
            set(&mut conditions, INVALID, true, reason, message, &now);
        }
        None => {
            if conditions.iter().any(|c| c.type_ == INVALID) {
                set(&mut conditions, INVALID, false, "Valid", "", &now);
            }
        }
    }
    if found.unreachable.is_empty() {
        if conditions.iter().any(|c| c.type_ == REGION_UNREACHABLE) {
            set(
                &mut conditions,
                REGION_UNREACHABLE,
                false,
                "Reachable",
                "",
                &now,
            );
        }
    } else {
        let message = found
            .unreachable
            .iter()
            .map(|(dc, why)| format!("{dc}: {why}"))
            .collect::<Vec<_>>()
            .join("; ");
        set(
            &mut conditions,
            REGION_UNREACHABLE,
            true,
            "RegionUnreachable",
            &message,
            &now,
        );
    }

    let known: Vec<&CassandraTaskStatus> =
        found.targets.iter().filter_map(|dc| datacenters.get(dc)).collect();
    let start = known.iter().filter_map(|s| s.start_time.as_ref()).min_by_key(|t| t.0);
    let last_completion =
        known.iter().filter_map(|s| s.completion_time.as_ref()).max_by_key(|t| t.0);
    let task = &mut status.task;
    task.start_time = start.cloned().or(task.start_time.take());
    task.active = known.iter().map(|s| s.active).sum();
    task.succeeded = known.iter().map(|s| s.succeeded).sum();
    task.failed = known.iter().map(|s| s.failed).sum();

    let running = known.iter().any(|s| has_condition(s, RUNNING));
    set(&mut conditions, RUNNING, running, RUNNING, "", &now);
    let failed: Vec<&str> = found
        .targets
        .iter()
        .filter(|dc| datacenters.get(*dc).is_some_and(|s| has_condition(s, FAILED)))
        .map(String::as_str)
        .collect();
    let failed_message = match (failed.is_empty(), found.cancelled.is_empty()) {
        (true, _) => String::new(),
        (false, true) => format!("failed in {}", failed.join(", ")),
        (false, false) => format!(
            "failed in {}; not run in {} (dcConcurrencyPolicy Forbid)",
            failed.join(", "),
            found.cancelled.join(", ")
        ),
    };
    set(
        &mut conditions,
        FAILED,
        !failed.is_empty(),
        FAILED,
        &failed_message,
        &now,
    );
    let all_complete = found.invalid.is_none()
        && !found.targets.is_empty()
        && found
            .targets
            .iter()
            .filter(|dc| !found.cancelled.contains(dc))
            .all(|dc| datacenters.get(dc).is_some_and(|s| has_condition(s, COMPLETE)));
    if all_complete {
        task.completion_time = last_completion.cloned();
        set(&mut conditions, COMPLETE, true, COMPLETE, "", &now);
    }

    task.conditions = Some(conditions);
    status.datacenters = (!datacenters.is_empty()).then_some(datacenters);
    status
}

/// Sets condition `kind`; its transition time changes only with its status.
fn set(
    conditions: &mut Vec<Condition>,
    kind: &str,
    on: bool,
    reason: &str,
    message: &str,
    now: &Time,
) {
    let state = if on { "True" } else { "False" };
    match conditions.iter_mut().find(|c| c.type_ == kind) {
        Some(existing) => {
            if existing.status != state {
                existing.status = state.into();
                existing.last_transition_time = now.clone();
            }
            existing.reason = reason.into();
            existing.message = message.into();
        }
        None => conditions.push(Condition {
            type_: kind.into(),
            status: state.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: now.clone(),
            observed_generation: None,
        }),
    }
}

/// What becomes of a finished K8ssandraTask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// `ttlSecondsAfterFinished: 0`: kept.
    Keep,
    DeleteNow,
    DeleteAfter(Duration),
}

/// Upstream's TTL: deleted `ttl` seconds (default a day) after it completed.
pub fn expiry(ttl: Option<i32>, completed: Timestamp, now: Timestamp) -> Expiry {
    let ttl = match ttl {
        Some(0) => return Expiry::Keep,
        Some(seconds) => SignedDuration::from_secs(i64::from(seconds.max(0))),
        None => SignedDuration::try_from(DEFAULT_TTL).unwrap_or(SignedDuration::MAX),
    };
    let Ok(at) = completed.checked_add(ttl) else {
        return Expiry::Keep;
    };
    if at <= now {
        return Expiry::DeleteNow;
    }
    Duration::try_from(at.duration_since(now)).map_or(Expiry::Keep, Expiry::DeleteAfter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn condition(kind: &str, on: bool) -> Condition {
        Condition {
            type_: kind.into(),
            status: if on { "True" } else { "False" }.into(),
            reason: kind.into(),
            message: String::new(),
            last_transition_time: Time(at(0)),
            observed_generation: None,
        }
    }

    fn running(start: i64) -> CassandraTaskStatus {
        CassandraTaskStatus {
            start_time: Some(Time(at(start))),
            active: 1,
            conditions: Some(vec![condition(RUNNING, true)]),
            ..Default::default()
        }
    }

    fn done(start: i64, end: i64, failed: bool) -> CassandraTaskStatus {
        let mut conditions = vec![condition(RUNNING, false), condition(COMPLETE, true)];
        if failed {
            conditions.push(condition(FAILED, true));
        }
        CassandraTaskStatus {
            start_time: Some(Time(at(start))),
            completion_time: Some(Time(at(end))),
            succeeded: if failed { 2 } else { 3 },
            failed: i64::from(failed),
            conditions: Some(conditions),
            ..Default::default()
        }
    }

    fn state(status: &K8ssandraTaskStatus, kind: &str) -> Option<String> {
        status
            .task
            .conditions
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|c| c.type_ == kind)
            .map(|c| c.status.clone())
    }

    fn found(statuses: &[(&str, CassandraTaskStatus)]) -> Found {
        Found {
            targets: vec!["dc1".into(), "dc2".into()],
            statuses: statuses.iter().map(|(d, s)| (d.to_string(), s.clone())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn running_tasks_add_up_from_the_first_start() {
        let status = fold(
            None,
            &found(&[("dc1", running(5)), ("dc2", running(3))]),
            at(10),
        );
        assert_eq!(status.task.active, 2);
        assert_eq!(status.task.start_time, Some(Time(at(3))));
        assert_eq!(state(&status, RUNNING).as_deref(), Some("True"));
        assert_eq!(state(&status, FAILED).as_deref(), Some("False"));
        assert_eq!(state(&status, COMPLETE), None);
        assert_eq!(status.task.completion_time, None);
        assert_eq!(status.datacenters.map(|d| d.len()), Some(2));
    }

    #[test]
    fn complete_once_every_datacenter_is_at_the_last_completion() {
        let half = fold(None, &found(&[("dc1", done(0, 10, false))]), at(11));
        assert_eq!(state(&half, COMPLETE), None, "dc2 has not run");
        let status = fold(Some(&half), &found(&[("dc2", done(11, 20, false))]), at(21));
        assert_eq!(status.task.succeeded, 6);
        assert_eq!(status.task.active, 0);
        assert_eq!(status.task.start_time, Some(Time(at(0))));
        assert_eq!(status.task.completion_time, Some(Time(at(20))));
        assert_eq!(state(&status, COMPLETE).as_deref(), Some("True"));
        assert_eq!(state(&status, RUNNING).as_deref(), Some("False"));
    }

    #[test]
    fn a_failure_under_forbid_ends_the_task_and_names_the_rest() {
        let mut seen = found(&[("dc1", done(0, 10, true))]);
        seen.cancelled = vec!["dc2".into()];
        let status = fold(None, &seen, at(11));
        assert_eq!(state(&status, FAILED).as_deref(), Some("True"));
        assert_eq!(state(&status, COMPLETE).as_deref(), Some("True"));
        assert_eq!(status.task.completion_time, Some(Time(at(10))));
        let failed = status.task.conditions.unwrap_or_default();
        let failed = failed.iter().find(|c| c.type_ == FAILED).map(|c| c.message.clone());
        assert_eq!(
            failed.as_deref(),
            Some("failed in dc1; not run in dc2 (dcConcurrencyPolicy Forbid)")
        );
        assert_eq!(status.task.failed, 1);
    }

    #[test]
    fn invalid_and_unreachable_are_conditions_with_messages() {
        let mut seen = found(&[]);
        seen.invalid = Some(("UnknownDatacenters", "unknown datacenters: dc9".into()));
        let invalid = fold(None, &seen, at(0));
        assert_eq!(state(&invalid, INVALID).as_deref(), Some("True"));
        assert_eq!(state(&invalid, COMPLETE), None);
        let mut seen = found(&[("dc1", running(0))]);
        seen.unreachable.insert("dc2".into(), "region \"east\" is unavailable".into());
        let status = fold(Some(&invalid), &seen, at(5));
        assert_eq!(state(&status, INVALID).as_deref(), Some("False"));
        let conditions = status.task.conditions.clone().unwrap_or_default();
        let unreachable = conditions.iter().find(|c| c.type_ == REGION_UNREACHABLE);
        assert_eq!(
            unreachable.map(|c| (c.status.as_str(), c.message.as_str())),
            Some(("True", "dc2: region \"east\" is unavailable"))
        );
        // The transition time moves with the status only.
        let again = fold(Some(&status), &seen, at(9));
        let times = |s: &K8ssandraTaskStatus| {
            s.task
                .conditions
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.last_transition_time)
                .collect::<Vec<_>>()
        };
        assert_eq!(times(&status), times(&again));
    }

    #[test]
    fn a_datacenter_not_read_now_keeps_its_last_status() {
        let first = fold(
            None,
            &found(&[("dc1", running(0)), ("dc2", running(1))]),
            at(2),
        );
        let status = fold(Some(&first), &found(&[("dc1", done(0, 5, false))]), at(6));
        assert_eq!(status.task.active, 1, "dc2 as last read");
        assert_eq!(state(&status, COMPLETE), None);
    }

    #[test]
    fn ttl_as_upstream() {
        assert_eq!(expiry(Some(0), at(0), at(1_000_000)), Expiry::Keep);
        assert_eq!(expiry(Some(10), at(0), at(10)), Expiry::DeleteNow);
        assert_eq!(
            expiry(Some(10), at(0), at(4)),
            Expiry::DeleteAfter(Duration::from_secs(6))
        );
        assert_eq!(
            expiry(None, at(0), at(0)),
            Expiry::DeleteAfter(Duration::from_secs(86_400))
        );
        assert_eq!(expiry(Some(-5), at(0), at(0)), Expiry::DeleteNow);
    }
}
