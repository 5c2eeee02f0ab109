//! Status, as a stage: the status and Events of one reconcile, and when to look again.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::k8ssandra_cluster::{K8ssandraCluster, K8ssandraClusterStatus};
use crate::clusters::RegionFailure;
use crate::federation::notices::{Outcome, condition_notices, outcome_notices};
use crate::federation::observed::ObservedCluster;
use crate::federation::plan::ClusterPlan;
use crate::federation::reaper_registration::CONDITION_REAPER_REGISTERED;
use crate::federation::rebuild::{CONDITION_DATACENTER_REBUILD, RebuildState, rebuild_condition};
use crate::federation::rollout::Decision;
use crate::federation::status::{StatusInput, cluster_status};

use super::context::*;
use super::converge::Applied;

/// Re-look while something is being created, deleted or waited for.
const PROGRESSING_REQUEUE: Duration = Duration::from_secs(5);
/// Re-look at a steady cluster: a safety net, since the region watches bring every remote
/// change as it happens. Spread by [`steady_requeue`].
const STEADY_REQUEUE: Duration = Duration::from_secs(300);
/// Re-look while the cluster is not registered with the Reaper `reaperRef` names: the Reaper
/// and its Secret change without an event this controller sees.
const REAPER_REGISTRATION_RECHECK: Duration = Duration::from_secs(15);
/// Re-look at the regions' Medusa backups (`spec.medusa` set): a backup made in a region makes
/// no event this controller sees. Sooner while a MedusaBackupJob runs.
const BACKUPS_RECHECK: Duration = Duration::from_secs(60);
const BACKUP_RUNNING_RECHECK: Duration = Duration::from_secs(15);
/// Re-look while a region lacks the ServiceMonitor CRD the spec's telemetry needs.
const MISSING_CRD_RECHECK: Duration = Duration::from_secs(30);

/// What the status is made from besides the plan: the K8ssandraCluster as read, and this
/// reconcile's error and unresolved seeds.
pub(super) fn status_input<'a>(
    k8c: &'a K8ssandraCluster,
    reconcile_error: Option<&'a str>,
    unresolved_seeds: Option<&'a [String]>,
) -> StatusInput<'a> {
    StatusInput {
        previous: k8c.status.as_ref(),
        generation: k8c.metadata.generation,
        now: Time(Timestamp::now()),
        reconcile_error,
        unresolved_seeds,
    }
}

/// The status of a cluster that was planned and applied. Pure.
pub(super) fn status_of(
    k8c: &K8ssandraCluster,
    cluster_plan: &ClusterPlan,
    observed: &ObservedCluster,
    applied: &Applied,
) -> K8ssandraClusterStatus {
    let texts: Vec<String> = applied.failures.iter().map(RegionFailure::to_string).collect();
    let error_text = (!texts.is_empty()).then(|| texts.join("; "));
    let input = status_input(
        k8c,
        error_text.as_deref(),
        applied.unresolved_seeds.as_deref(),
    );
    let mut status = cluster_status(&input, cluster_plan, observed, &applied.actions);
    let generation = k8c.metadata.generation;
    applied.components.fill_status(&mut status, generation, input.now.clone());
    crate::api::shared::set_condition(
        status.conditions.get_or_insert_default(),
        applied.keyspaces.outcome.condition(generation, input.now.clone()),
    );
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let previous = crate::api::shared::find_condition(conditions, CONDITION_DATACENTER_REBUILD);
    let rebuild = rebuild_condition(
        &applied.rebuilds.states,
        previous,
        generation,
        input.now.clone(),
    );
    if let Some(rebuild) = rebuild {
        crate::api::shared::set_condition(status.conditions.get_or_insert_default(), rebuild);
    }
    let conditions = status.conditions.get_or_insert_default();
    match &applied.reaper_registration {
        Some((target, registration)) => {
            let condition = registration.condition(target, generation, input.now.clone());
            crate::api::shared::set_condition(conditions, condition);
        }
        None => conditions.retain(|c| c.type_ != CONDITION_REAPER_REGISTERED),
    }
    crate::api::shared::report_fields_not_acted_on(
        status.conditions.get_or_insert_default(),
        &k8c.spec.fields_not_acted_on(),
        generation,
        input.now,
    );
    status
}

/// Events for what this reconcile did and for condition transitions; nothing when steady.
pub(super) async fn publish_transitions(
    context: &ControllerContext,
    k8c: &K8ssandraCluster,
    status: &K8ssandraClusterStatus,
    outcomes: &[Outcome],
) {
    let previous = k8c.status.as_ref();
    let before = previous.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    let after = status.conditions.as_deref().unwrap_or(&[]);
    let previous_error = previous.and_then(|s| s.error.as_deref());
    let notices = outcome_notices(outcomes, previous_error)
        .into_iter()
        .chain(condition_notices(before, after));
    for notice in notices {
        context.events.publish(k8c, &notice).await;
    }
}

/// [`STEADY_REQUEUE`] give or take a tenth: clusters created together (a restart lists them
/// all at once) do not all come back in the same instant.
pub(super) fn steady_requeue() -> Duration {
    use rand::Rng as _;
    STEADY_REQUEUE.mul_f64(rand::rng().random_range(0.9..1.1))
}

/// When to look at the cluster again: soon while anything progresses; when only failures
/// remain, as their categories say; at the steady pace otherwise.
pub(super) fn next_look(observed: &ObservedCluster, applied: &Applied) -> Duration {
    let next = if !applied.components.settled {
        PROGRESSING_REQUEUE
    } else if !applied.components.service_monitor_crd_missing.is_empty() {
        // Installing a CRD in a region makes no event Federator watches.
        MISSING_CRD_RECHECK
    } else {
        let rebuilding = applied.rebuilds.states.iter().any(|(_, state)| {
            matches!(
                state,
                RebuildState::Running { .. } | RebuildState::Waiting(_)
            )
        });
        let progressing = rebuilding
            || applied.actions.refused.is_some()
            || !applied.actions.decisions.iter().all(|d| matches!(d.decision, Decision::Update))
            || !observed.datacenters.values().all(|o| o.state.is_settled());
        match RegionFailure::retry_after(&applied.failures) {
            _ if progressing => PROGRESSING_REQUEUE,
            Some(retry) => retry,
            None => steady_requeue(),
        }
    };
    let registering = (applied.reaper_registration.as_ref())
        .is_some_and(|(_, registration)| !registration.is_registered());
    let next = match registering {
        true => next.min(REAPER_REGISTRATION_RECHECK),
        false => next,
    };
    let next = match (
        applied.components.backups_read,
        applied.components.backup_running,
    ) {
        (_, true) => next.min(BACKUP_RUNNING_RECHECK),
        (true, false) => next.min(BACKUPS_RECHECK),
        (false, false) => next,
    };
    sooner_for_seeds(next, applied.seeds_refresh_after)
}

/// `next`, or sooner when the answers for `additionalSeeds` host names run out, so a seed that
/// moved is seen when its TTL ends rather than at the next steady look.
fn sooner_for_seeds(next: Duration, seeds_refresh_after: Option<Duration>) -> Duration {
    // A second at least: an answer about to expire is not worth a reconcile loop.
    seeds_refresh_after.map_or(next, |refresh| {
        next.min(refresh.max(Duration::from_secs(1)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clusters::FailureCategory;
    use crate::federation::components::ComponentsReport;
    use crate::federation::controller::keyspaces::KeyspacesReport;
    use crate::federation::keyspaces::KeyspacesOutcome;
    use crate::federation::rollout::Actions;

    #[test]
    fn a_cluster_with_host_name_seeds_comes_back_when_their_answers_run_out() {
        let steady = Duration::from_secs(300);
        assert_eq!(sooner_for_seeds(steady, None), steady);
        assert_eq!(
            sooner_for_seeds(steady, Some(Duration::from_secs(42))),
            Duration::from_secs(42)
        );
        assert_eq!(
            sooner_for_seeds(Duration::from_secs(5), Some(Duration::from_secs(42))),
            Duration::from_secs(5)
        );
        assert_eq!(
            sooner_for_seeds(steady, Some(Duration::ZERO)),
            Duration::from_secs(1)
        );
    }

    fn applied(failures: Vec<RegionFailure>) -> Applied {
        Applied {
            actions: Actions::default(),
            outcomes: Vec::new(),
            unresolved_seeds: None,
            seeds_refresh_after: None,
            failures,
            components: ComponentsReport {
                settled: true,
                ..ComponentsReport::default()
            },
            keyspaces: KeyspacesReport {
                outcome: KeyspacesOutcome::Waiting,
                failures: Vec::new(),
                notices: Vec::new(),
            },
            rebuilds: Default::default(),
            busy_regions: Vec::new(),
            reaper_registration: None,
        }
    }

    #[test]
    fn a_settled_cluster_with_a_failure_comes_back_as_the_failure_category_says() {
        let observed = ObservedCluster::default();
        let steady = next_look(&observed, &applied(Vec::new()));
        assert!(steady >= Duration::from_secs(270), "{steady:?}");
        let forbidden = RegionFailure::new(
            "east",
            "applying Stargate db/sg",
            FailureCategory::Forbidden,
            "403",
        );
        assert_eq!(
            next_look(&observed, &applied(vec![forbidden.clone()])),
            FailureCategory::Forbidden.retry_after()
        );
        let busy = RegionFailure::new(
            "west",
            "applying Reaper db/r",
            FailureCategory::Transient,
            "503",
        );
        assert_eq!(
            next_look(&observed, &applied(vec![forbidden, busy])),
            FailureCategory::Transient.retry_after()
        );
    }
}
