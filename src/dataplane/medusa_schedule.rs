//! The MedusaBackupSchedule controller, as k8ssandra-operator's
//! (`medusabackupschedule_controller.go`): in every mode, on the schedules of the cluster it runs
//! in. When the schedule's next time (after `status.lastExecution`, else after its creation) has
//! come, it creates a MedusaBackupJob from `spec.backupSpec` (`operationType: backup`) or a
//! MedusaTask `operation: purge` (`purge`), named `<schedule>-<unix seconds>` as upstream and
//! owned by the schedule, and requeues itself at the following time (no polling in between).
//!
//! `spec.cronSchedule` is read as robfig/cron's standard parser reads it (upstream's): five
//! fields, the descriptors `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`,
//! `@hourly`, and `@every <Go duration>`, in UTC. `@every` shorter than
//! [`MIN_EVERY_INTERVAL`] is rounded up to it (robfig's own floor). Anything else (six fields,
//! `TZ=`, croner's `L`/`W`/`#` extensions) gets the `Scheduled` condition False naming
//! `spec.cronSchedule` and the parse error.
//!
//! `concurrencyPolicy`: `Forbid` (the default, as upstream) skips a fire while a job or task this
//! schedule created is unfinished (the `Skipped` condition and a `ScheduleSkipped` Event say so);
//! `Allow` fires regardless; `Replace` is refused by the `Scheduled` condition. `disabled`: the
//! times move on, nothing is created.
//!
//! Pure parts: [`parse_schedule`], [`CronSchedule::next_after`], [`decide`], [`operation_name`],
//! [`schedule_conditions`]; the rest is I/O.

use std::sync::Arc;
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::jiff::{Timestamp, tz::TimeZone};
use kube::api::{ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use super::job_controller::{JobError, JobRef};
use crate::api::medusa::backup_job::MedusaBackupJob;
use crate::api::medusa::backup_schedule::{
    MedusaBackupSchedule, MedusaBackupScheduleStatus, ScheduledOperation,
};
use crate::api::medusa::task::{MedusaOperation, MedusaTask, MedusaTaskSpec};
use crate::api::shared::{CONDITION_FALSE, CONDITION_TRUE, new_condition, set_condition};
use crate::events::{Events, Notice};

pub const FIELD_MANAGER: &str = "federator-medusa-schedule";
pub const CONTROLLER: &str = "medusabackupschedule";

/// Condition: the cron schedule is understood and the schedule fires by it.
pub const CONDITION_SCHEDULED: &str = "Scheduled";
/// Condition: the last fire was skipped (Forbid, and an unfinished operation).
pub const CONDITION_SKIPPED: &str = "Skipped";

/// The shortest `@every` interval; shorter ones are rounded up to it, as robfig/cron does.
pub const MIN_EVERY_INTERVAL: Duration = Duration::from_secs(1);
/// The longest sleep between two looks at a schedule, whatever its next time (a clock that
/// jumped is noticed within it).
pub const MAX_SLEEP: Duration = Duration::from_secs(3600);

pub struct MedusaScheduleContext {
    pub client: kube::Client,
    pub events: Events,
    pub ops: crate::ops::Ops,
}

impl AsRef<crate::ops::Ops> for MedusaScheduleContext {
    fn as_ref(&self) -> &crate::ops::Ops {
        &self.ops
    }
}

/// A parsed `spec.cronSchedule`.
#[derive(Clone, Debug)]
pub enum CronSchedule {
    /// Five fields (or a descriptor standing for them), in UTC.
    Cron(Box<Cron>),
    /// `@every <duration>`: whole seconds, at least [`MIN_EVERY_INTERVAL`].
    Every(Duration),
}

/// The descriptors robfig/cron's standard parser knows, as five fields.
const DESCRIPTORS: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// Pure: `spec.cronSchedule` as robfig/cron's `ParseStandard` reads it, or why not.
pub fn parse_schedule(text: &str) -> Result<CronSchedule, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty spec string".to_string());
    }
    if let Some(rest) = text.strip_prefix("@every ") {
        let every = parse_go_duration(rest.trim())
            .map_err(|e| format!("failed to parse duration {text}: {e}"))?;
        // robfig keeps whole seconds and never less than one.
        let every = Duration::from_secs(every.as_secs()).max(MIN_EVERY_INTERVAL);
        return Ok(CronSchedule::Every(every));
    }
    let pattern = if text.starts_with('@') {
        let found = DESCRIPTORS.iter().find(|(name, _)| name.eq_ignore_ascii_case(text));
        match found {
            Some((_, fields)) => *fields,
            None => return Err(format!("unrecognized descriptor: {text}")),
        }
    } else {
        text
    };
    let fields: Vec<&str> = pattern.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: {text}",
            fields.len()
        ));
    }
    // croner's extensions that robfig refuses: L, W, # and the + of dom-and-dow.
    let (dom, dow) = (fields[2], fields[4]);
    if pattern.contains('+')
        || dom.contains(['L', 'l', 'W', 'w'])
        || dow.contains('#')
        || dow.to_ascii_uppercase().ends_with('L')
    {
        return Err(format!(
            "{text}: L, W, # and + are not part of the standard cron syntax"
        ));
    }
    let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
    let cron = parser.parse(pattern).map_err(|e| format!("{text}: {e}"))?;
    Ok(CronSchedule::Cron(Box::new(cron)))
}

/// Go's `time.ParseDuration`, for `@every`: a sequence of decimal numbers with units (ns, us,
/// µs, ms, s, m, h), e.g. `1h30m`, `2.5s`; no sign.
fn parse_go_duration(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err("empty duration".to_string());
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len =
            rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if number_len == 0 {
            return Err(format!("invalid duration {text:?}"));
        }
        let number: f64 =
            rest[..number_len].parse().map_err(|_| format!("invalid duration {text:?}"))?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("missing unit in duration {text:?}")),
            unit => return Err(format!("unknown unit {unit:?} in duration {text:?}")),
        };
        rest = &rest[unit_len..];
        total += number * seconds_per_unit;
    }
    // Go's durations end near 292 years.
    if !total.is_finite() || total > 9.2e9 {
        return Err(format!("invalid duration {text:?}"));
    }
    Ok(Duration::from_secs_f64(total))
}

impl CronSchedule {
    /// Pure: the first time of the schedule strictly after `after` (None past year 9999).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match self {
            CronSchedule::Every(every) => {
                // robfig: the delay from `after`, on a whole second.
                let whole = Timestamp::from_second(after.as_second()).ok()?;
                let secs = i64::try_from(every.as_secs()).ok()?;
                whole.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(secs)).ok()
            }
            CronSchedule::Cron(cron) => {
                let zoned = after.to_zoned(TimeZone::UTC);
                cron.find_next_occurrence(&zoned, false).ok().map(|z| z.timestamp())
            }
        }
    }
}

/// What a schedule does now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Its time has not come: look again at `next`.
    Wait { next: Timestamp },
    /// Create the operation now (unless disabled); then `next`.
    Fire { next: Timestamp },
    /// Forbid, and an operation of this schedule is unfinished: nothing now; then `next`.
    Skip { next: Timestamp },
}

/// Pure: what a schedule does at `now`, having last fired at `last` (else created at
/// `created`), with `unfinished` operations of its own; None when the schedule has no next time.
pub fn decide(
    schedule: &CronSchedule,
    last: Option<Timestamp>,
    created: Timestamp,
    now: Timestamp,
    forbid: bool,
    unfinished: usize,
) -> Option<Decision> {
    let due = schedule.next_after(last.unwrap_or(created))?;
    if due > now {
        return Some(Decision::Wait { next: due });
    }
    let next = schedule.next_after(now)?;
    Some(match forbid && unfinished > 0 {
        true => Decision::Skip { next },
        false => Decision::Fire { next },
    })
}

/// Pure: the name of the operation a schedule creates at `now`, as upstream names it.
pub fn operation_name(schedule: &str, now: Timestamp) -> String {
    format!("{schedule}-{}", now.as_second())
}

/// Pure: `concurrencyPolicy` → whether it forbids overlaps, or why it is refused.
pub fn forbids_overlap(policy: Option<&str>) -> Result<bool, String> {
    match policy.unwrap_or("") {
        "" | "Forbid" => Ok(true),
        "Allow" => Ok(false),
        other => Err(format!(
            "spec.concurrencyPolicy {other:?} is not supported: use Allow or Forbid"
        )),
    }
}

/// Pure: the schedule's conditions after `scheduled` (Ok: understood; Err: why not) and, when
/// it fired or skipped, whether it skipped.
pub fn schedule_conditions(
    current: Option<&Vec<Condition>>,
    scheduled: Result<(), &str>,
    skipped: Option<bool>,
    generation: Option<i64>,
    now: Time,
) -> Vec<Condition> {
    let mut conditions = current.cloned().unwrap_or_default();
    let condition = match scheduled {
        Ok(()) => new_condition(
            CONDITION_SCHEDULED,
            CONDITION_TRUE,
            "ScheduleValid",
            "spec.cronSchedule is understood",
            generation,
            now.clone(),
        ),
        Err(why) => new_condition(
            CONDITION_SCHEDULED,
            CONDITION_FALSE,
            "InvalidSchedule",
            why,
            generation,
            now.clone(),
        ),
    };
    set_condition(&mut conditions, condition);
    match skipped {
        Some(true) => {
            set_condition(
                &mut conditions,
                new_condition(
                    CONDITION_SKIPPED,
                    CONDITION_TRUE,
                    "PreviousUnfinished",
                    "concurrencyPolicy Forbid: the last fire was skipped, an operation this schedule created is unfinished",
                    generation,
                    now,
                ),
            );
        }
        Some(false) => {
            set_condition(
                &mut conditions,
                new_condition(
                    CONDITION_SKIPPED,
                    CONDITION_FALSE,
                    "Fired",
                    "the last fire created its operation",
                    generation,
                    now,
                ),
            );
        }
        None => {}
    }
    conditions
}

fn owned_by(meta: &kube::api::ObjectMeta, uid: &str) -> bool {
    (meta.owner_references.iter().flatten()).any(|o| o.uid == uid)
}

fn owner_reference(schedule: &MedusaBackupSchedule) -> Option<OwnerReference> {
    let mut owner = schedule.controller_owner_ref(&())?;
    owner.block_owner_deletion = None;
    Some(owner)
}

fn time_until(next: Timestamp, now: Timestamp) -> Duration {
    let wait = Duration::try_from(now.duration_until(next)).unwrap_or_default();
    // A little past the time, so that the next look finds it come.
    (wait + Duration::from_millis(50)).min(MAX_SLEEP)
}

/// The operations (jobs or tasks) of this schedule that have not finished.
async fn unfinished_operations(
    client: &kube::Client,
    schedule: &MedusaBackupSchedule,
    id: &JobRef,
) -> Result<usize, JobError> {
    let uid = schedule.uid().unwrap_or_default();
    let params = ListParams::default();
    Ok(match schedule.spec.operation_type() {
        ScheduledOperation::Backup => {
            let api: Api<MedusaBackupJob> = Api::namespaced(client.clone(), &id.namespace);
            let jobs = api.list(&params).await.map_err(id.api_error("listing MedusaBackupJobs"))?;
            (jobs.items.iter())
                .filter(|j| owned_by(&j.metadata, &uid))
                .filter(|j| j.status.as_ref().and_then(|s| s.finish_time.as_ref()).is_none())
                .count()
        }
        ScheduledOperation::Purge => {
            let api: Api<MedusaTask> = Api::namespaced(client.clone(), &id.namespace);
            let tasks = api.list(&params).await.map_err(id.api_error("listing MedusaTasks"))?;
            (tasks.items.iter())
                .filter(|t| owned_by(&t.metadata, &uid))
                .filter(|t| t.status.as_ref().and_then(|s| s.finish_time.as_ref()).is_none())
                .count()
        }
    })
}

/// Creates the schedule's operation `name`; one already there (a replayed fire) is fine.
async fn create_operation(
    client: &kube::Client,
    schedule: &MedusaBackupSchedule,
    id: &JobRef,
    name: &str,
) -> Result<(), JobError> {
    let mut meta = kube::api::ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(id.namespace.clone()),
        owner_references: owner_reference(schedule).map(|o| vec![o]),
        ..Default::default()
    };
    let labels = schedule.metadata.labels.clone().unwrap_or_default();
    if !labels.is_empty() {
        meta.labels = Some(labels);
    }
    let created = match schedule.spec.operation_type() {
        ScheduledOperation::Backup => {
            let api: Api<MedusaBackupJob> = Api::namespaced(client.clone(), &id.namespace);
            let mut job = MedusaBackupJob::new(name, schedule.spec.backup_spec.clone());
            job.metadata = meta;
            api.create(&PostParams::default(), &job).await.map(|_| ())
        }
        ScheduledOperation::Purge => {
            let api: Api<MedusaTask> = Api::namespaced(client.clone(), &id.namespace);
            let spec = MedusaTaskSpec {
                operation: MedusaOperation::Purge,
                cassandra_datacenter: schedule.spec.backup_spec.cassandra_datacenter.clone(),
                backup_name: None,
                restore_key: None,
            };
            let mut task = MedusaTask::new(name, spec);
            task.metadata = meta;
            api.create(&PostParams::default(), &task).await.map(|_| ())
        }
    };
    match created {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(response)) if response.code == 409 => Ok(()),
        Err(error) => Err(id.api_error(format!("creating {name}"))(error)),
    }
}

/// One reconcile of a schedule (run by [`super::job_controller::run`]).
pub(super) async fn reconcile(
    schedule: Arc<MedusaBackupSchedule>,
    context: Arc<MedusaScheduleContext>,
) -> Result<Action, JobError> {
    let id = JobRef::of(schedule.as_ref())?;
    let client = &context.client;
    let status = schedule.status.clone().unwrap_or_default();
    let generation = schedule.metadata.generation;
    let now = Timestamp::now();
    let live_status = schedule.status.clone();
    let write = |next: MedusaBackupScheduleStatus| {
        let (id, live_status) = (&id, &live_status);
        async move {
            if Some(&next) != live_status.as_ref() {
                id.write_status::<MedusaBackupSchedule>(client, FIELD_MANAGER, &next).await?;
            }
            Ok::<(), JobError>(())
        }
    };
    let refused = (parse_schedule(&schedule.spec.cron_schedule))
        .map_err(|e| format!("spec.cronSchedule {:?}: {e}", schedule.spec.cron_schedule))
        .and_then(|cron| {
            Ok((
                cron,
                forbids_overlap(schedule.spec.concurrency_policy.as_deref())?,
            ))
        });
    let (cron, forbid) = match refused {
        Ok(parsed) => parsed,
        Err(why) => {
            let mut next = status.clone();
            next.next_schedule = None;
            next.conditions = Some(schedule_conditions(
                status.conditions.as_ref(),
                Err(&why),
                None,
                generation,
                Time(now),
            ));
            if Some(&next) != schedule.status.as_ref() {
                context
                    .events
                    .publish(
                        schedule.as_ref(),
                        &Notice::warning("InvalidSchedule", "Schedule", why),
                    )
                    .await;
            }
            write(next).await?;
            return Ok(Action::await_change());
        }
    };
    let created = (schedule.metadata.creation_timestamp.as_ref()).map(|t| t.0).unwrap_or(now);
    let last = status.last_execution.as_ref().map(|t| t.0);
    // Only a due schedule under Forbid needs to know what is unfinished.
    let due = cron.next_after(last.unwrap_or(created)).is_some_and(|due| due <= now);
    let unfinished = match due && forbid && schedule.spec.disabled != Some(true) {
        true => unfinished_operations(client, &schedule, &id).await?,
        false => 0,
    };
    let Some(decision) = decide(&cron, last, created, now, forbid, unfinished) else {
        return Ok(Action::await_change());
    };
    let mut next_status = status.clone();
    let (next, skipped) = match decision {
        Decision::Wait { next } => (next, None),
        Decision::Skip { next } => (next, Some(true)),
        Decision::Fire { next } => (next, Some(false)),
    };
    next_status.next_schedule = Some(Time(next));
    if skipped.is_some() {
        next_status.last_execution = Some(Time(now));
    }
    let disabled = schedule.spec.disabled == Some(true);
    next_status.conditions = Some(schedule_conditions(
        status.conditions.as_ref(),
        Ok(()),
        skipped.filter(|_| !disabled),
        generation,
        Time(now),
    ));
    match decision {
        Decision::Fire { .. } if !disabled => {
            let name = operation_name(&id.name, now);
            create_operation(client, &schedule, &id, &name).await?;
            let (reason, what) = match schedule.spec.operation_type() {
                ScheduledOperation::Backup => ("BackupScheduled", "MedusaBackupJob"),
                ScheduledOperation::Purge => ("PurgeScheduled", "MedusaTask"),
            };
            let note = format!("created {what} {name}");
            context
                .events
                .publish(schedule.as_ref(), &Notice::normal(reason, "Schedule", note))
                .await;
        }
        Decision::Skip { .. } if !disabled => {
            let note = format!(
                "skipped the fire at {now}: concurrencyPolicy Forbid and {unfinished} unfinished operation(s) of this schedule"
            );
            let notice = Notice::warning("ScheduleSkipped", "Schedule", note);
            context.events.publish(schedule.as_ref(), &notice).await;
        }
        _ => {}
    }
    write(next_status).await?;
    Ok(Action::requeue(time_until(next, Timestamp::now())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn standard_fields_and_descriptors_parse_and_fire_in_utc() {
        let daily = parse_schedule("0 0 * * *").expect("daily");
        assert_eq!(
            daily.next_after(at("2026-12-07T19:30:00Z")),
            Some(at("2026-12-08T00:00:00Z"))
        );
        let hourly = parse_schedule("@hourly").expect("hourly");
        assert_eq!(
            hourly.next_after(at("2026-12-07T19:30:00Z")),
            Some(at("2026-12-07T20:00:00Z"))
        );
        for descriptor in [
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
        ] {
            assert!(parse_schedule(descriptor).is_ok(), "{descriptor}");
        }
        let weekdays = parse_schedule("30 2 * * MON-FRI").expect("weekdays");
        // 2026-12-12 is a Saturday: the next is Monday the 14th.
        assert_eq!(
            weekdays.next_after(at("2026-12-11T03:00:00Z")),
            Some(at("2026-12-14T02:30:00Z"))
        );
        let steps = parse_schedule("*/15 * * * *").expect("steps");
        assert_eq!(
            steps.next_after(at("2026-12-07T19:31:00Z")),
            Some(at("2026-12-07T19:45:00Z"))
        );
    }

    #[test]
    fn every_takes_go_durations_in_whole_seconds_with_a_floor() {
        let every = parse_schedule("@every 1h30m").expect("every");
        assert!(matches!(every, CronSchedule::Every(d) if d == Duration::from_secs(5400)));
        assert_eq!(
            every.next_after(at("2026-12-07T19:30:00.700Z")),
            Some(at("2026-12-07T21:00:00Z"))
        );
        let tiny = parse_schedule("@every 10ms").expect("tiny");
        assert!(matches!(tiny, CronSchedule::Every(d) if d == MIN_EVERY_INTERVAL));
        let half = parse_schedule("@every 2.5s").expect("fraction");
        assert!(matches!(half, CronSchedule::Every(d) if d == Duration::from_secs(2)));
        for bad in ["@every", "@every 5", "@every 5x", "@every -5s", "@every s"] {
            assert!(parse_schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_robfigs_standard_parser_refuses_is_refused_with_the_reason() {
        for bad in [
            "",
            "* * * *",
            "0 * * * * *",
            "@reboot",
            "0 0 L * *",
            "0 0 15W * *",
            "0 0 * * 5#2",
            "0 0 * * 5L",
            "61 * * * *",
            "0 25 * * *",
            "not a schedule",
        ] {
            let refused = parse_schedule(bad);
            assert!(refused.is_err(), "{bad:?} was accepted");
            assert!(!refused.err().unwrap_or_default().is_empty(), "{bad:?}");
        }
        let why = parse_schedule("0 * * * * *").err().unwrap_or_default();
        assert!(why.contains("expected exactly 5 fields"), "{why}");
    }

    #[test]
    fn a_schedule_waits_then_fires_once_then_waits_for_the_next_time() {
        let every = parse_schedule("@every 10s").expect("every");
        let created = at("2026-12-07T19:00:00Z");
        assert_eq!(
            decide(&every, None, created, at("2026-12-07T19:00:05Z"), true, 0),
            Some(Decision::Wait {
                next: at("2026-12-07T19:00:10Z")
            })
        );
        let now = at("2026-12-07T19:00:11Z");
        assert_eq!(
            decide(&every, None, created, now, true, 0),
            Some(Decision::Fire {
                next: at("2026-12-07T19:00:21Z")
            })
        );
        // Having fired at `now`, it waits.
        assert!(matches!(
            decide(
                &every,
                Some(now),
                created,
                at("2026-12-07T19:00:12Z"),
                true,
                0
            ),
            Some(Decision::Wait { .. })
        ));
        // Forbid with an unfinished operation skips; Allow fires.
        assert_eq!(
            decide(&every, None, created, now, true, 1),
            Some(Decision::Skip {
                next: at("2026-12-07T19:00:21Z")
            })
        );
        assert!(matches!(
            decide(&every, None, created, now, false, 1),
            Some(Decision::Fire { .. })
        ));
    }

    #[test]
    fn operations_are_named_by_schedule_and_unix_second_and_policies_are_checked() {
        assert_eq!(
            operation_name("nightly", at("2026-12-07T19:00:00Z")),
            "nightly-1796670000"
        );
        assert_eq!(forbids_overlap(None), Ok(true));
        assert_eq!(forbids_overlap(Some("Forbid")), Ok(true));
        assert_eq!(forbids_overlap(Some("Allow")), Ok(false));
        let replace = forbids_overlap(Some("Replace")).err().unwrap_or_default();
        assert!(replace.contains("spec.concurrencyPolicy"), "{replace}");
    }

    #[test]
    fn conditions_name_the_bad_schedule_and_say_when_a_fire_was_skipped() {
        let now = Time(at("2026-12-07T19:00:00Z"));
        let bad = schedule_conditions(
            None,
            Err("spec.cronSchedule \"x\": nope"),
            None,
            Some(2),
            now.clone(),
        );
        assert_eq!(bad.len(), 1);
        assert_eq!(
            (bad[0].status.as_str(), bad[0].reason.as_str()),
            ("False", "InvalidSchedule")
        );
        assert!(bad[0].message.contains("spec.cronSchedule"));
        let skipped = schedule_conditions(Some(&bad), Ok(()), Some(true), Some(3), now);
        let scheduled = skipped.iter().find(|c| c.type_ == CONDITION_SCHEDULED).expect("Scheduled");
        assert_eq!(scheduled.status, "True");
        let skip = skipped.iter().find(|c| c.type_ == CONDITION_SKIPPED).expect("Skipped");
        assert_eq!(
            (skip.status.as_str(), skip.reason.as_str()),
            ("True", "PreviousUnfinished")
        );
    }
}
