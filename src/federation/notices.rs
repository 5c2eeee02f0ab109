//! Which Kubernetes Events a reconcile of a K8ssandraCluster publishes, computed without I/O:
//! one per datacenter created or deleted, one for the datacenters a spec change updated (a
//! cluster-level change touches every region: one event, not one per region), one per new
//! error, and one per condition transition users care about. A steady cluster publishes
//! nothing.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;

use super::status::{
    CONDITION_DEGRADED, CONDITION_READY, CONDITION_REGION_UNREACHABLE, CONDITION_SEEDS_RESOLVED,
};
use crate::api::cassdc::CassandraDatacenter;
use crate::api::shared::{CONDITION_TRUE, find_condition};
use crate::clusters::RegionFailure;
use crate::events::Notice;

/// What happened to one datacenter's CassandraDatacenter in this reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatacenterOutcome {
    Created,
    Updated,
    Deleted,
    ApplyFailed(RegionFailure),
    DeleteFailed(RegionFailure),
}

/// One outcome, with where it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub datacenter: String,
    pub context: String,
    pub namespace: String,
    pub outcome: DatacenterOutcome,
}

fn region(context: &str) -> String {
    if context.is_empty() {
        "the control plane's cluster".into()
    } else {
        format!("region {context}")
    }
}

/// Events for the outcomes of this reconcile. A failure already in `previous_error` (the same
/// failure on a retry) is not announced again.
pub fn outcome_notices(outcomes: &[Outcome], previous_error: Option<&str>) -> Vec<Notice> {
    let target = |o: &Outcome| {
        format!(
            "CassandraDatacenter {}/{} in {}",
            o.namespace,
            o.datacenter,
            region(&o.context)
        )
    };
    let updated: Vec<&Outcome> =
        outcomes.iter().filter(|o| o.outcome == DatacenterOutcome::Updated).collect();
    let mut notices: Vec<Notice> = outcomes
        .iter()
        .filter_map(|o| {
            let notice = match &o.outcome {
                DatacenterOutcome::Created => Notice::normal(
                    "DatacenterCreated",
                    "Create",
                    format!("{} created", target(o)),
                ),
                DatacenterOutcome::Updated if updated.len() == 1 => Notice::normal(
                    "DatacenterUpdated",
                    "Update",
                    format!("{} updated to the current spec", target(o)),
                ),
                DatacenterOutcome::Updated => return None,
                DatacenterOutcome::Deleted => Notice::normal(
                    "DatacenterDeleted",
                    "Delete",
                    format!("{} deleted (decommissioned first)", target(o)),
                ),
                DatacenterOutcome::ApplyFailed(failure)
                | DatacenterOutcome::DeleteFailed(failure)
                    if previous_error.is_some_and(|p| p.contains(&failure.to_string())) =>
                {
                    return None;
                }
                DatacenterOutcome::ApplyFailed(failure) => {
                    Notice::warning("ApplyFailed", "Apply", failure.to_string())
                }
                DatacenterOutcome::DeleteFailed(failure) => {
                    Notice::warning("DeleteFailed", "Delete", failure.to_string())
                }
            };
            Some(notice.about(datacenter_reference(o)))
        })
        .collect();
    if updated.len() > 1 {
        let names: Vec<String> = updated
            .iter()
            .map(|o| format!("{}/{} in {}", o.namespace, o.datacenter, region(&o.context)))
            .collect();
        notices.push(Notice::normal(
            "DatacenterUpdated",
            "Update",
            format!(
                "{} CassandraDatacenters updated to the current spec: {}",
                updated.len(),
                names.join(", ")
            ),
        ));
    }
    notices
}

/// The remote CassandraDatacenter an outcome is about: events about different datacenters
/// are not folded into one series.
fn datacenter_reference(o: &Outcome) -> ObjectReference {
    ObjectReference {
        api_version: Some(CassandraDatacenter::api_version(&()).into_owned()),
        kind: Some(CassandraDatacenter::kind(&()).into_owned()),
        namespace: Some(o.namespace.clone()),
        name: Some(o.datacenter.clone()),
        ..Default::default()
    }
}

/// Events for condition transitions: Ready becoming True, and Degraded, RegionUnreachable or
/// SeedsResolved turning bad or changing reason.
pub fn condition_notices(before: &[Condition], after: &[Condition]) -> Vec<Notice> {
    let mut notices = Vec::new();
    let changed = |type_: &str| -> Option<&Condition> {
        let now = find_condition(after, type_)?;
        let was = find_condition(before, type_);
        let same = was.is_some_and(|w| w.status == now.status && w.reason == now.reason);
        (!same).then_some(now)
    };
    if let Some(ready) = changed(CONDITION_READY)
        && ready.status == CONDITION_TRUE
    {
        notices.push(Notice::normal("Ready", "Reconcile", ready.message.clone()));
    }
    for (type_, bad) in [
        (CONDITION_DEGRADED, CONDITION_TRUE),
        (CONDITION_REGION_UNREACHABLE, CONDITION_TRUE),
        (
            CONDITION_SEEDS_RESOLVED,
            crate::api::shared::CONDITION_FALSE,
        ),
    ] {
        if let Some(condition) = changed(type_)
            && condition.status == bad
        {
            notices.push(Notice::warning(
                &condition.reason,
                "Reconcile",
                condition.message.clone(),
            ));
        }
    }
    notices
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::shared::{CONDITION_FALSE, new_condition};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn condition(type_: &str, status: &str, reason: &str) -> Condition {
        new_condition(
            type_,
            status,
            reason,
            format!("{reason} message"),
            Some(1),
            Time(Timestamp::UNIX_EPOCH),
        )
    }

    fn outcome(outcome: DatacenterOutcome) -> Outcome {
        Outcome {
            datacenter: "dc2".into(),
            context: "region-1".into(),
            namespace: "db".into(),
            outcome,
        }
    }

    #[test]
    fn each_datacenter_change_is_announced_with_its_region() {
        let notices = outcome_notices(
            &[
                outcome(DatacenterOutcome::Created),
                outcome(DatacenterOutcome::Updated),
                outcome(DatacenterOutcome::Deleted),
            ],
            None,
        );
        let reasons: Vec<&str> = notices.iter().map(|n| n.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "DatacenterCreated",
                "DatacenterUpdated",
                "DatacenterDeleted"
            ]
        );
        assert!(notices[0].note.contains("db/dc2 in region region-1"));
        assert!(notices.iter().all(|n| !n.warning));
        // events about different datacenters are not folded into one series
        assert_eq!(
            notices[0].related.as_ref().and_then(|r| r.name.as_deref()),
            Some("dc2")
        );
    }

    #[test]
    fn a_change_that_updates_many_datacenters_is_one_event_naming_them() {
        let updated: Vec<Outcome> = (1..=100)
            .map(|i| Outcome {
                datacenter: format!("dc{i}"),
                context: format!("region-{i}"),
                ..outcome(DatacenterOutcome::Updated)
            })
            .chain([outcome(DatacenterOutcome::Created)])
            .collect();
        let notices = outcome_notices(&updated, None);
        let reasons: Vec<&str> = notices.iter().map(|n| n.reason.as_str()).collect();
        assert_eq!(reasons, ["DatacenterCreated", "DatacenterUpdated"]);
        let update = &notices[1];
        assert!(update.related.is_none());
        assert!(
            update
                .note
                .starts_with("100 CassandraDatacenters updated to the current spec: db/dc1 in region region-1, db/dc2 in region region-2"),
            "{}",
            update.note
        );
    }

    #[test]
    fn a_failure_is_announced_once_not_on_every_retry() {
        let failure = RegionFailure::new(
            "east",
            "applying CassandraDatacenter db/dc1",
            crate::clusters::FailureCategory::Rejected,
            "denied by webhook",
        );
        let failed = [outcome(DatacenterOutcome::ApplyFailed(failure.clone()))];
        let first = outcome_notices(&failed, None);
        assert_eq!(first.len(), 1);
        assert!(first[0].warning);
        assert_eq!(first[0].reason, "ApplyFailed");
        assert_eq!(first[0].note, failure.to_string());
        assert!(outcome_notices(&failed, Some(&format!("x; {failure}"))).is_empty());
    }

    #[test]
    fn only_transitions_make_condition_events() {
        let healthy = vec![
            condition(CONDITION_READY, CONDITION_TRUE, "AllDatacentersReady"),
            condition(CONDITION_DEGRADED, CONDITION_FALSE, "NoProblems"),
        ];
        assert!(condition_notices(&healthy, &healthy).is_empty());

        let not_ready = vec![
            condition(CONDITION_READY, CONDITION_FALSE, "DatacentersNotReady"),
            condition(CONDITION_DEGRADED, CONDITION_TRUE, "RegionUnreachable"),
            condition(
                CONDITION_REGION_UNREACHABLE,
                CONDITION_TRUE,
                "RegionUnreachable",
            ),
        ];
        let notices = condition_notices(&healthy, &not_ready);
        assert_eq!(notices.len(), 2);
        assert!(notices.iter().all(|n| n.warning && n.reason == "RegionUnreachable"));

        let back = condition_notices(&not_ready, &healthy);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].reason, "Ready");
        assert!(!back[0].warning);
    }
}
