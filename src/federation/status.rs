//! The K8ssandraCluster status, computed without I/O from the plan, what the regions show and
//! the decisions of this reconcile.
//!
//! `status.datacenters[dc]` holds the region (`contextName`) and the CassandraDatacenter's
//! status as cass-operator reports it. An entry appears once the datacenter has been seen, and
//! stays while it is in the spec (so a CassandraDatacenter deleted by hand is re-created, not
//! mistaken for an added datacenter); the last known entry is kept while its region does not
//! answer; a removed datacenter's entry goes once its CassandraDatacenter is gone.
//! `readyDatacenters`/`totalDatacenters` count the datacenters of the spec.
//!
//! Conditions (`lastTransitionTime` moves only when a condition's status changes):
//!
//! | type | status | reason | meaning, and what to do |
//! |---|---|---|---|
//! | Ready | True | `AllDatacentersReady` | every datacenter of the spec reports Ready |
//! | Ready | True | `DatacentersStopped` | every datacenter of the spec reports Ready, except those the spec stops (`stopped: true`), which report Stopped; the message names them |
//! | Ready | False | `DatacentersNotReady` | the message lists each datacenter that is not Ready and why; see Progressing and Degraded |
//! | Ready | False | `NoDatacenters` | `spec.cassandra.datacenters` is empty: add a datacenter |
//! | Ready | False | `InvalidSpec` | the spec cannot be planned; `status.error` names the field to fix |
//! | Progressing | True | `Decommissioning` | a datacenter taken out of the spec is being deleted (decommissioned) |
//! | Progressing | True | `CreatingDatacenters` | datacenters are being created, one after another |
//! | Progressing | True | `UpdatingDatacenters` | cass-operator is applying a change (Ready comes back when done) |
//! | Progressing | True | `WaitingForDatacenter` | a datacenter waits for another to be Ready (bootstrap order) |
//! | Progressing | True | `WaitingForSecrets` | a datacenter is created once its secrets (superuser, Reaper's logins, encryption stores) are replicated to its region, and created or updated only while its encryption store passwords can be read; see the ReplicatedSecret of the same name |
//! | Progressing | False | `Reconciled` | nothing is in progress |
//! | Progressing | False | `Blocked` | the remaining work needs a fix; see Degraded |
//! | Degraded | True | `InvalidSpec` | the spec cannot be planned: fix the field `status.error` names |
//! | Degraded | True | `RemovalBlockedByKeyspaces` | a datacenter taken out of the spec is not decommissioned while user keyspaces replicate to it; the message names them: alter them to leave it |
//! | Degraded | True | `DatacentersAddedAndRemoved` | datacenters were added and removed in one change (a rename would lose data): restore the removed ones, then add and remove in separate changes |
//! | Degraded | True | `NumTokensChangeRefused` | the spec gives an existing datacenter another `num_tokens` than it runs with; Cassandra refuses to start a node whose num_tokens changed, so that datacenter is left as it is (the others proceed): set num_tokens back to the value the message names (or remove it), or add a new datacenter with the new value and remove the old one |
//! | Degraded | True | `Conflict` | a CassandraDatacenter of that name exists in the region and is not this cluster's: remove or rename it, or annotate the K8ssandraCluster `federator.k8ssandra.io/adopt: "true"` to take it over |
//! | Degraded | True | `UnknownContext` | a `k8sContext` names no ClientConfig: create the ClientConfig, or fix the name |
//! | Degraded | True | `NamespaceMissing` | the datacenter's namespace does not exist in its region, or is being deleted: create it (Federator does not create namespaces) |
//! | Degraded | True | `RegionUnreachable` | a region does not answer; see RegionUnreachable |
//! | Degraded | True | `RegionWatchRefused` | a region refuses a watch Federator needs (403: the ClientConfig's credentials lack list/watch on that resource; 404: the resource is not served there); the message names the region, resource and namespace. Federator keeps working without it, seeing that region's changes only at its periodic reconciles: grant the permission or install the CRD |
//! | Degraded | True | `ReconcileError` | the last reconcile failed; `status.error` says how (retried with backoff) |
//! | Degraded | False | `NoProblems` | |
//! | RegionUnreachable | True | `RegionUnreachable` | the message names each region and its error: check the network, the region's API server and its ClientConfig credentials; the other regions keep converging |
//! | RegionUnreachable | False | `AllRegionsReachable` | |
//! | CassandraInitialized | True | `CassandraInitialized` | a datacenter has started Cassandra once; never cleared afterwards |
//! | CassandraInitialized | False | `NotInitialized` | no datacenter has started yet |
//! | SeedsResolved | True | `HostNamesResolved` | every host name of `spec.cassandra.additionalSeeds` resolved (re-resolved when its DNS TTL ends) |
//! | SeedsResolved | False | `HostNameNotResolved` | the message names each host name that did not resolve and why: fix the name or the DNS; the others are used meanwhile |
//!
//! The keyspace and rebuild stages add `SystemKeyspacesReplicated` ([`super::keyspaces`]) and
//! `DatacenterRebuild` ([`super::rebuild`]); docs/troubleshooting.md lists their reasons.
//!
//! When several Degraded reasons hold, the reason is the first in the table's order and the
//! message lists them all.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::cassdc::{CONDITION_INITIALIZED, CassandraDatacenterStatus};
use crate::api::k8ssandra_cluster::{DatacenterStatus, K8ssandraClusterStatus};
use crate::api::shared::{
    CONDITION_FALSE, CONDITION_TRUE, find_condition, new_condition, set_condition,
};

use super::observed::{ObservedCluster, RemoteState};
use super::plan::{ClusterPlan, PlanError};
use super::progressive::Halt;
use super::rollout::{Actions, BlockReason, Decision, WaitReason, still_replicated};

pub const CONDITION_READY: &str = "Ready";
pub const CONDITION_PROGRESSING: &str = "Progressing";
pub const CONDITION_DEGRADED: &str = "Degraded";
pub const CONDITION_REGION_UNREACHABLE: &str = "RegionUnreachable";
pub const CONDITION_CASSANDRA_INITIALIZED: &str = "CassandraInitialized";
/// Only present when `additionalSeeds` holds host names.
pub const CONDITION_SEEDS_RESOLVED: &str = "SeedsResolved";

pub const REASON_ALL_READY: &str = "AllDatacentersReady";
pub const REASON_STOPPED: &str = "DatacentersStopped";
pub const REASON_NOT_READY: &str = "DatacentersNotReady";
pub const REASON_NO_DATACENTERS: &str = "NoDatacenters";
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
pub const REASON_DECOMMISSIONING: &str = "Decommissioning";
pub const REASON_CREATING: &str = "CreatingDatacenters";
pub const REASON_UPDATING: &str = "UpdatingDatacenters";
pub const REASON_WAITING: &str = "WaitingForDatacenter";
pub const REASON_WAITING_FOR_SECRETS: &str = "WaitingForSecrets";
pub const REASON_RECONCILED: &str = "Reconciled";
pub const REASON_BLOCKED: &str = "Blocked";
pub const REASON_ADDED_AND_REMOVED: &str = "DatacentersAddedAndRemoved";
pub const REASON_CONFLICT: &str = "Conflict";
pub const REASON_REMOVAL_BLOCKED: &str = "RemovalBlockedByKeyspaces";
pub const REASON_NUM_TOKENS_CHANGE_REFUSED: &str = "NumTokensChangeRefused";
pub const REASON_ROLLOUT_HALTED: &str = "RolloutHalted";
pub const REASON_STOP_REFUSED: &str = "StopRefusedWhileRebuilding";
pub const REASON_ROLLOUT_POLICY_INVALID: &str = "RolloutPolicyInvalid";
pub const REASON_UNKNOWN_CONTEXT: &str = "UnknownContext";
pub const REASON_NAMESPACE_MISSING: &str = "NamespaceMissing";
pub const REASON_REGION_UNREACHABLE: &str = "RegionUnreachable";
pub const REASON_RECONCILE_ERROR: &str = "ReconcileError";
pub const REASON_WATCH_REFUSED: &str = "RegionWatchRefused";
pub const REASON_NO_PROBLEMS: &str = "NoProblems";
pub const REASON_ALL_REACHABLE: &str = "AllRegionsReachable";
pub const REASON_INITIALIZED: &str = "CassandraInitialized";
pub const REASON_NOT_INITIALIZED: &str = "NotInitialized";
pub const REASON_HOST_NAMES_RESOLVED: &str = "HostNamesResolved";
pub const REASON_HOST_NAME_NOT_RESOLVED: &str = "HostNameNotResolved";

/// Progress of a removed datacenter, in `status.datacenters[dc].decommissionProgress`.
pub const DECOMMISSION_IN_PROGRESS: &str = "Decommissioning";
/// `status.datacenters[dc].decommissionProgress` while a removed datacenter leaves the system
/// keyspaces' replication (before it is decommissioned), as upstream names that step.
pub const UPDATING_REPLICATION: &str = "UpdatingReplication";

/// What every status computation needs besides the observations.
#[derive(Clone, Debug)]
pub struct StatusInput<'a> {
    /// The status before this reconcile (conditions keep their transition times from it).
    pub previous: Option<&'a K8ssandraClusterStatus>,
    /// `metadata.generation` of the K8ssandraCluster this status describes.
    pub generation: Option<i64>,
    pub now: Time,
    /// The error of this reconcile, if it failed (e.g. an apply was rejected).
    pub reconcile_error: Option<&'a str>,
    /// The host names of `additionalSeeds` that did not resolve (empty: all did); `None` when
    /// there are no host names.
    pub unresolved_seeds: Option<&'a [String]>,
}

/// The status after a reconcile that planned, observed and decided.
pub fn cluster_status(
    input: &StatusInput<'_>,
    plan: &ClusterPlan,
    observed: &ObservedCluster,
    actions: &Actions,
) -> K8ssandraClusterStatus {
    let previous = input.previous.cloned().unwrap_or_default();
    let datacenters = datacenter_entries(&previous, plan, observed);
    let ready: Vec<&str> = plan
        .datacenters
        .iter()
        .filter(|dc| observed.get(&dc.name).is_some_and(|o| o.state.is_ready()))
        .map(|dc| dc.name.as_str())
        .collect();
    // Stopped as the spec asks: at rest, counted apart from the Ready ones.
    let stopped: Vec<&str> = plan
        .datacenters
        .iter()
        .filter(|dc| observed.get(&dc.name).is_some_and(|o| o.state.is_stopped()))
        .map(|dc| dc.name.as_str())
        .collect();

    let mut conditions = previous.conditions.clone().unwrap_or_default();
    let condition = |type_: &str, status: &str, reason: &str, message: String| {
        new_condition(
            type_,
            status,
            reason,
            message,
            input.generation,
            input.now.clone(),
        )
    };
    let problems = problems(plan, observed, actions, input.reconcile_error);

    let ready_condition = if plan.datacenters.is_empty() {
        condition(
            CONDITION_READY,
            CONDITION_FALSE,
            REASON_NO_DATACENTERS,
            "spec.cassandra.datacenters is empty".into(),
        )
    } else if ready.len() == plan.datacenters.len() {
        condition(
            CONDITION_READY,
            CONDITION_TRUE,
            REASON_ALL_READY,
            format!("{0}/{0} datacenters Ready", ready.len()),
        )
    } else if ready.len() + stopped.len() == plan.datacenters.len() {
        condition(
            CONDITION_READY,
            CONDITION_TRUE,
            REASON_STOPPED,
            format!(
                "{}/{} datacenters Ready; Stopped (spec stopped: true): {}",
                ready.len(),
                plan.datacenters.len(),
                stopped.join(", ")
            ),
        )
    } else {
        let waiting: Vec<String> = plan
            .datacenters
            .iter()
            .filter(|dc| !ready.contains(&dc.name.as_str()) && !stopped.contains(&dc.name.as_str()))
            .map(|dc| {
                format!(
                    "{} ({})",
                    dc.name,
                    not_ready_reason(
                        observed.get(&dc.name).map(|o| &o.state),
                        actions.decision(&dc.name)
                    )
                )
            })
            .collect();
        condition(
            CONDITION_READY,
            CONDITION_FALSE,
            REASON_NOT_READY,
            format!(
                "{}/{} datacenters Ready; not Ready: {}{}",
                ready.len(),
                plan.datacenters.len(),
                waiting.join("; "),
                match stopped.is_empty() {
                    true => String::new(),
                    false => format!("; Stopped: {}", stopped.join(", ")),
                }
            ),
        )
    };
    set_condition(&mut conditions, ready_condition);
    set_condition(
        &mut conditions,
        progressing(plan, observed, actions, &problems, &condition),
    );
    set_condition(&mut conditions, degraded(&problems, &condition));
    set_condition(&mut conditions, region_unreachable(observed, &condition));
    let initialized = cassandra_initialized(&conditions, observed, &condition);
    set_condition(&mut conditions, initialized);
    match input.unresolved_seeds {
        None => conditions.retain(|c| c.type_ != CONDITION_SEEDS_RESOLVED),
        Some([]) => {
            set_condition(
                &mut conditions,
                condition(
                    CONDITION_SEEDS_RESOLVED,
                    CONDITION_TRUE,
                    REASON_HOST_NAMES_RESOLVED,
                    "every host name of spec.cassandra.additionalSeeds resolved".into(),
                ),
            );
        }
        Some(failures) => {
            set_condition(
                &mut conditions,
                condition(
                    CONDITION_SEEDS_RESOLVED,
                    CONDITION_FALSE,
                    REASON_HOST_NAME_NOT_RESOLVED,
                    format!("spec.cassandra.additionalSeeds: {}", failures.join("; ")),
                ),
            );
        }
    }

    let mut status = K8ssandraClusterStatus {
        conditions: Some(conditions),
        datacenters: (!datacenters.is_empty()).then_some(datacenters),
        observed_generation: input.generation,
        error: input.reconcile_error.map(str::to_string),
        ..previous
    };
    status.set_datacenter_counts(
        i32::try_from(ready.len()).unwrap_or(i32::MAX),
        i32::try_from(plan.datacenters.len()).unwrap_or(i32::MAX),
    );
    status
}

/// The status when the spec cannot be planned: nothing was applied; the previous datacenter
/// entries stay, Ready and Degraded say why.
pub fn invalid_spec_status(input: &StatusInput<'_>, error: &PlanError) -> K8ssandraClusterStatus {
    let previous = input.previous.cloned().unwrap_or_default();
    let message = error.to_string();
    let mut conditions = previous.conditions.clone().unwrap_or_default();
    let condition = |type_: &str, status: &str, reason: &str| {
        new_condition(
            type_,
            status,
            reason,
            message.clone(),
            input.generation,
            input.now.clone(),
        )
    };
    set_condition(
        &mut conditions,
        condition(CONDITION_READY, CONDITION_FALSE, REASON_INVALID_SPEC),
    );
    set_condition(
        &mut conditions,
        condition(CONDITION_PROGRESSING, CONDITION_FALSE, REASON_BLOCKED),
    );
    set_condition(
        &mut conditions,
        condition(CONDITION_DEGRADED, CONDITION_TRUE, REASON_INVALID_SPEC),
    );
    K8ssandraClusterStatus {
        conditions: Some(conditions),
        observed_generation: input.generation,
        error: Some(message),
        ..previous
    }
}

/// `status.datacenters`: entries for the plan's datacenters once seen, and for removed ones
/// until they are gone.
fn datacenter_entries(
    previous: &K8ssandraClusterStatus,
    plan: &ClusterPlan,
    observed: &ObservedCluster,
) -> BTreeMap<String, Box<DatacenterStatus>> {
    let before = previous.datacenters.clone().unwrap_or_default();
    let mut entries = BTreeMap::new();
    let names: BTreeSet<&String> = plan
        .datacenters
        .iter()
        .map(|dc| &dc.name)
        .chain(observed.datacenters.keys())
        .chain(before.keys())
        .collect();
    for name in names {
        let in_plan = plan.datacenter(name);
        let observation = observed.get(name);
        let old = before.get(name);
        let context = in_plan
            .map(|dc| dc.context.clone())
            .or_else(|| observation.map(|o| o.context.clone()))
            .or_else(|| old.and_then(|o| o.context_name.clone()));
        let entry = match observation.map(|o| &o.state) {
            Some(RemoteState::Present(dc)) => {
                let mut entry = old.cloned().unwrap_or_default();
                entry.context_name = context;
                entry.cassandra = dc.status().cloned();
                entry.decommission_progress = match observation {
                    Some(o) if in_plan.is_none() => {
                        Some(match still_replicated(observed, name, o) {
                            Some(_) => UPDATING_REPLICATION.to_string(),
                            None => DECOMMISSION_IN_PROGRESS.to_string(),
                        })
                    }
                    _ => None,
                };
                Some(entry)
            }
            // The region does not answer: keep what was last seen.
            Some(RemoteState::Unreachable { .. }) => old.cloned(),
            // Gone from its region: a plan datacenter stays known (to be re-created); a
            // removed one is done.
            _ if in_plan.is_some() => old.cloned().map(|mut entry| {
                entry.context_name = context;
                entry.cassandra = None;
                entry
            }),
            _ => None,
        };
        if let Some(entry) = entry {
            entries.insert(name.clone(), entry);
        }
    }
    entries
}

fn not_ready_reason(state: Option<&RemoteState>, decision: Option<&Decision>) -> String {
    match (state, decision) {
        (_, Some(Decision::Blocked(block))) => block_message(block),
        (_, Some(Decision::Wait(wait))) => wait.to_string(),
        (_, Some(Decision::Create)) => "being created".into(),
        (Some(RemoteState::Present(dc)), _) => dc
            .status()
            .map(describe_cassandra_status)
            .unwrap_or_else(|| "no status from cass-operator yet".into()),
        _ => "not created yet".into(),
    }
}

fn describe_cassandra_status(status: &CassandraDatacenterStatus) -> String {
    let progress = status.cassandra_operator_progress.as_deref().unwrap_or("no progress reported");
    let false_conditions: Vec<&str> = status
        .conditions
        .iter()
        .flatten()
        .filter(|c| c.type_ == "Ready" && c.status != CONDITION_TRUE)
        .map(|c| c.message.as_str())
        .filter(|m| !m.is_empty())
        .collect();
    if false_conditions.is_empty() {
        format!("cass-operator: {progress}")
    } else {
        format!("cass-operator: {progress}, {}", false_conditions.join(", "))
    }
}

fn region_name(context: &str) -> String {
    if context.is_empty() {
        "the control plane's cluster (k8sContext \"\")".into()
    } else {
        format!("region {context}")
    }
}

fn block_message(block: &BlockReason) -> String {
    match block {
        BlockReason::UnknownContext => "its k8sContext names no ClientConfig".into(),
        BlockReason::RegionUnreachable { reason } => {
            format!("its region does not answer: {reason}")
        }
        BlockReason::NamespaceMissing => "its namespace does not exist in its region".into(),
        BlockReason::Conflict { owner: Some(owner) } => {
            format!("a CassandraDatacenter of that name belongs to {owner}")
        }
        BlockReason::Conflict { owner: None } => {
            "a CassandraDatacenter of that name exists and was not made by Federator".into()
        }
        BlockReason::NotObserved => "not observed yet".into(),
        BlockReason::TopologyChangeRefused => {
            "datacenters were added and removed in one change".into()
        }
        BlockReason::NumTokensChangeRefused(change) => format!(
            "its num_tokens cannot change from {} to {}",
            change.running, change.requested
        ),
        BlockReason::KeyspacesReplicateToIt { keyspaces } => {
            format!("keyspaces {} still replicate to it", keyspaces.join(", "))
        }
        BlockReason::RolloutHalted(halt) => {
            format!("its change restarts Cassandra and the rollout is halted: {halt}")
        }
        BlockReason::StopRefusedWhileRebuilding => {
            "it is not stopped while it is to be rebuilt or rebuilding".into()
        }
    }
}

/// One thing that needs the user's (or the environment's) attention, by Degraded reason.
struct Problem {
    reason: &'static str,
    message: String,
}

const PROBLEM_ORDER: &[&str] = &[
    REASON_INVALID_SPEC,
    REASON_ADDED_AND_REMOVED,
    REASON_REMOVAL_BLOCKED,
    REASON_ROLLOUT_HALTED,
    REASON_STOP_REFUSED,
    REASON_ROLLOUT_POLICY_INVALID,
    REASON_NUM_TOKENS_CHANGE_REFUSED,
    REASON_CONFLICT,
    REASON_UNKNOWN_CONTEXT,
    REASON_NAMESPACE_MISSING,
    REASON_REGION_UNREACHABLE,
    REASON_WATCH_REFUSED,
    REASON_RECONCILE_ERROR,
];

fn problems(
    plan: &ClusterPlan,
    observed: &ObservedCluster,
    actions: &Actions,
    reconcile_error: Option<&str>,
) -> Vec<Problem> {
    let mut found = Vec::new();
    if let Some(change) = &actions.refused {
        found.push(Problem {
            reason: REASON_ADDED_AND_REMOVED,
            message: change.to_string(),
        });
    }
    for decision in &actions.decisions {
        if let Decision::Blocked(BlockReason::KeyspacesReplicateToIt { keyspaces }) =
            &decision.decision
        {
            found.push(Problem {
                reason: REASON_REMOVAL_BLOCKED,
                message: format!(
                    "datacenter {} is not removed while keyspaces {} replicate to it (Cassandra would refuse to decommission it, and its replicas would be lost): alter them to leave it, e.g. ALTER KEYSPACE {} WITH replication = {{'class': 'NetworkTopologyStrategy', ...}} without {}; the removal then proceeds",
                    decision.datacenter,
                    keyspaces.join(", "),
                    keyspaces.first().map(String::as_str).unwrap_or_default(),
                    decision.datacenter
                ),
            });
        }
    }
    found.extend(rollout_problems(plan, actions));
    for (name, observation) in &observed.datacenters {
        let place = format!(
            "datacenter {name} in {} namespace {}",
            region_name(&observation.context),
            observation.namespace
        );
        let problem = match &observation.state {
            RemoteState::Conflict { owner } => Some((
                REASON_CONFLICT,
                format!(
                    "{place}: a CassandraDatacenter named {name} already exists there{}; remove or rename it, or annotate this K8ssandraCluster federator.k8ssandra.io/adopt=\"true\" to take it over",
                    owner.as_ref().map(|o| format!(" (it belongs to {o})")).unwrap_or_default()
                ),
            )),
            RemoteState::UnknownContext => Some((
                REASON_UNKNOWN_CONTEXT,
                format!(
                    "datacenter {name}: k8sContext {:?} names no ClientConfig; create one for that context or fix k8sContext",
                    observation.context
                ),
            )),
            RemoteState::NamespaceMissing => Some((
                REASON_NAMESPACE_MISSING,
                format!(
                    "{place}: namespace {} does not exist there or is being deleted; create it (Federator does not create namespaces)",
                    observation.namespace
                ),
            )),
            _ => None,
        };
        if let Some((reason, message)) = problem {
            found.push(Problem { reason, message });
        }
    }
    let unreachable = unreachable_regions(observed);
    if !unreachable.is_empty() {
        found.push(Problem {
            reason: REASON_REGION_UNREACHABLE,
            message: unreachable_message(&unreachable),
        });
    }
    for refused in &observed.refused_watches {
        found.push(Problem {
            reason: REASON_WATCH_REFUSED,
            message: refused.clone(),
        });
    }
    for dc in &plan.datacenters {
        if let Some(Decision::Blocked(BlockReason::NumTokensChangeRefused(change))) =
            actions.decision(&dc.name)
        {
            found.push(Problem {
                reason: REASON_NUM_TOKENS_CHANGE_REFUSED,
                message: format!("datacenter {}: {change}", dc.name),
            });
        }
        if matches!(
            actions.decision(&dc.name),
            Some(Decision::Blocked(BlockReason::NotObserved))
        ) {
            found.push(Problem {
                reason: REASON_RECONCILE_ERROR,
                message: format!("datacenter {}: not observed in its region", dc.name),
            });
        }
    }
    if let Some(error) = reconcile_error {
        found.push(Problem {
            reason: REASON_RECONCILE_ERROR,
            message: error.to_string(),
        });
    }
    found.sort_by_key(|p| PROBLEM_ORDER.iter().position(|r| *r == p.reason));
    found
}

/// A halted rollout (once, naming the datacenters that wait), stops refused during a rebuild,
/// and rollout annotations that could not be read.
fn rollout_problems(plan: &ClusterPlan, actions: &Actions) -> Vec<Problem> {
    let mut found = Vec::new();
    let mut halts: Vec<(&Halt, Vec<&str>)> = Vec::new();
    for decision in &actions.decisions {
        match &decision.decision {
            Decision::Blocked(BlockReason::RolloutHalted(halt)) => {
                match halts.iter_mut().find(|(known, _)| *known == halt) {
                    Some((_, waiting)) => waiting.push(&decision.datacenter),
                    None => halts.push((halt, vec![&decision.datacenter])),
                }
            }
            Decision::Blocked(BlockReason::StopRefusedWhileRebuilding) => found.push(Problem {
                reason: REASON_STOP_REFUSED,
                message: format!(
                    "datacenter {} is not stopped while it is to be rebuilt or rebuilding (the rebuild would fail and its data would stay missing); it stops once the rebuild ends (condition {}), or remove it from the spec",
                    decision.datacenter,
                    super::rebuild::CONDITION_DATACENTER_REBUILD
                ),
            }),
            _ => {}
        }
    }
    let cluster = &plan.cluster;
    let generation = plan.rollout.generation.unwrap_or_default();
    for (halt, waiting) in halts {
        found.push(Problem {
            reason: REASON_ROLLOUT_HALTED,
            message: format!(
                "the rollout of a change that restarts Cassandra is halted: {halt}; {} wait{} for it. Fix it or change its spec, or go on without it: kubectl annotate k8ssandracluster -n {} {} {}={generation} --overwrite",
                waiting.join(", "),
                if waiting.len() == 1 { "s" } else { "" },
                cluster.namespace,
                cluster.name,
                super::progressive::RESUME_ANNOTATION,
            ),
        });
    }
    if !plan.rollout.problems.is_empty() {
        found.push(Problem {
            reason: REASON_ROLLOUT_POLICY_INVALID,
            message: plan.rollout.problems.join("; "),
        });
    }
    found
}

type MakeCondition<'a> = dyn Fn(&str, &str, &str, String) -> Condition + 'a;

fn progressing(
    plan: &ClusterPlan,
    observed: &ObservedCluster,
    actions: &Actions,
    problems: &[Problem],
    condition: &MakeCondition<'_>,
) -> Condition {
    let mut deleting = Vec::new();
    let mut creating = Vec::new();
    let mut updating = Vec::new();
    let mut waiting = Vec::new();
    let mut waiting_secrets = Vec::new();
    for decision in &actions.decisions {
        let name = &decision.datacenter;
        let in_plan = plan.datacenter(name).is_some();
        let state = observed.get(name).map(|o| &o.state);
        match &decision.decision {
            Decision::Delete { .. } => deleting.push(format!("{name}: deleting")),
            Decision::Wait(wait) if !in_plan => deleting.push(format!("{name}: {wait}")),
            Decision::Create => creating.push(format!("{name}: creating")),
            Decision::Wait(wait @ WaitReason::SecretsNotReady { .. }) => {
                waiting_secrets.push(format!("{name}: {wait}"))
            }
            Decision::Wait(wait) => waiting.push(format!("{name}: {wait}")),
            Decision::Update if !state.is_some_and(RemoteState::is_settled) => {
                let what = state
                    .and_then(RemoteState::present)
                    .and_then(|dc| dc.status())
                    .map(describe_cassandra_status)
                    .unwrap_or_else(|| "no status from cass-operator yet".into());
                // Until cass-operator reports the datacenter Initialized, it is still being
                // created; afterwards it is being updated.
                let initialized = state
                    .and_then(RemoteState::present)
                    .and_then(|dc| dc.status())
                    .is_some_and(|s| s.is_condition_true(CONDITION_INITIALIZED));
                if initialized {
                    updating.push(format!("{name}: {what}"));
                } else {
                    creating.push(format!("{name}: {what}"));
                }
            }
            _ => {}
        }
    }
    let groups = [
        (REASON_DECOMMISSIONING, deleting),
        (REASON_CREATING, creating),
        (REASON_UPDATING, updating),
        (REASON_WAITING, waiting),
        (REASON_WAITING_FOR_SECRETS, waiting_secrets),
    ];
    let active: Vec<&(&str, Vec<String>)> =
        groups.iter().filter(|(_, items)| !items.is_empty()).collect();
    if let Some((reason, _)) = active.first() {
        let message = active
            .iter()
            .flat_map(|(_, items)| items.iter().cloned())
            .collect::<Vec<_>>()
            .join("; ");
        return condition(CONDITION_PROGRESSING, CONDITION_TRUE, reason, message);
    }
    let blocked = actions.decisions.iter().any(|d| matches!(d.decision, Decision::Blocked(_)));
    if blocked
        || problems
            .iter()
            .any(|p| ![REASON_RECONCILE_ERROR, REASON_WATCH_REFUSED].contains(&p.reason))
    {
        condition(
            CONDITION_PROGRESSING,
            CONDITION_FALSE,
            REASON_BLOCKED,
            "nothing can progress until the problems in Degraded are fixed".into(),
        )
    } else {
        condition(
            CONDITION_PROGRESSING,
            CONDITION_FALSE,
            REASON_RECONCILED,
            "every datacenter matches the spec".into(),
        )
    }
}

fn degraded(problems: &[Problem], condition: &MakeCondition<'_>) -> Condition {
    match problems.first() {
        Some(first) => condition(
            CONDITION_DEGRADED,
            CONDITION_TRUE,
            first.reason,
            problems.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; "),
        ),
        None => condition(
            CONDITION_DEGRADED,
            CONDITION_FALSE,
            REASON_NO_PROBLEMS,
            String::new(),
        ),
    }
}

/// Unreachable regions with their errors, by context (one error per region).
fn unreachable_regions(observed: &ObservedCluster) -> BTreeMap<&str, &str> {
    let mut regions = BTreeMap::new();
    for observation in observed.datacenters.values() {
        if let RemoteState::Unreachable { reason } = &observation.state {
            regions.entry(observation.context.as_str()).or_insert(reason.as_str());
        }
    }
    regions
}

fn unreachable_message(regions: &BTreeMap<&str, &str>) -> String {
    regions
        .iter()
        .map(|(context, reason)| format!("{}: {reason}", region_name(context)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn region_unreachable(observed: &ObservedCluster, condition: &MakeCondition<'_>) -> Condition {
    let regions = unreachable_regions(observed);
    if regions.is_empty() {
        condition(
            CONDITION_REGION_UNREACHABLE,
            CONDITION_FALSE,
            REASON_ALL_REACHABLE,
            String::new(),
        )
    } else {
        condition(
            CONDITION_REGION_UNREACHABLE,
            CONDITION_TRUE,
            REASON_REGION_UNREACHABLE,
            unreachable_message(&regions),
        )
    }
}

/// True from the first time a datacenter reports Initialized (or Ready), and never cleared.
fn cassandra_initialized(
    conditions: &[Condition],
    observed: &ObservedCluster,
    condition: &MakeCondition<'_>,
) -> Condition {
    if let Some(existing) = find_condition(conditions, CONDITION_CASSANDRA_INITIALIZED)
        .filter(|c| c.status == CONDITION_TRUE)
    {
        return existing.clone();
    }
    let initialized: Vec<&str> = observed
        .datacenters
        .iter()
        .filter(|(_, o)| {
            o.state.present().is_some_and(|dc| {
                dc.status()
                    .is_some_and(|s| s.is_condition_true(CONDITION_INITIALIZED) || s.is_ready())
            })
        })
        .map(|(name, _)| name.as_str())
        .collect();
    match initialized.first() {
        Some(first) => condition(
            CONDITION_CASSANDRA_INITIALIZED,
            CONDITION_TRUE,
            REASON_INITIALIZED,
            format!("Cassandra started in datacenter {first}"),
        ),
        None => condition(
            CONDITION_CASSANDRA_INITIALIZED,
            CONDITION_FALSE,
            REASON_NOT_INITIALIZED,
            "no datacenter has started Cassandra yet".into(),
        ),
    }
}

#[cfg(test)]
mod tests;
