//! Rebuilding a datacenter added to a running cluster (pure), as k8ssandra-operator does: a
//! datacenter created while another one already runs Cassandra is marked
//! `k8ssandra.io/rebuild-dc`; once it is Ready and the system keyspaces replicate to it, a
//! CassandraTask `<dc>-rebuild` in its region streams every node's data from a source
//! datacenter; when the task succeeds the mark goes. Until then its nodes hold only what was
//! written after they joined.
//!
//! The source is the datacenter's `rebuild.sourceDc`, else the K8ssandraCluster's (deprecated)
//! `k8ssandra.io/rebuild-src-dc` annotation, else the first other datacenter of the spec that is
//! Ready. It must be a Ready datacenter of the spec; the rebuild waits until it is.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Resource as _;

use crate::api::cassdc::CONDITION_INITIALIZED;
use crate::api::shared::{CONDITION_FALSE, CONDITION_TRUE, new_condition};
use crate::cassandra::task::RebuildTask;
use crate::workload::labels::ownership_labels;

use super::observed::{ObservedCluster, RemoteState};
use super::plan::{ClusterPlan, DatacenterPlan};

/// On a CassandraDatacenter: it must be rebuilt from another datacenter (upstream's name).
pub const REBUILD_DC_ANNOTATION: &str = "k8ssandra.io/rebuild-dc";
/// On a K8ssandraCluster: the source of rebuilds (upstream's deprecated form of
/// `rebuild.sourceDc`).
pub const REBUILD_SOURCE_ANNOTATION: &str = "k8ssandra.io/rebuild-src-dc";

pub const CONDITION_DATACENTER_REBUILD: &str = "DatacenterRebuild";
pub const REASON_REBUILT: &str = "Rebuilt";
pub const REASON_REBUILDING: &str = "Rebuilding";
pub const REASON_REBUILD_FAILED: &str = "RebuildFailed";
pub const REASON_REBUILD_WAITING: &str = "WaitingToRebuild";

/// Whether a CassandraDatacenter carries the rebuild mark.
pub fn is_marked_for_rebuild(meta: &ObjectMeta) -> bool {
    meta.annotations.as_ref().is_some_and(|a| a.contains_key(REBUILD_DC_ANNOTATION))
}

/// Whether `datacenter`, created now, must be rebuilt: another datacenter of the cluster
/// already started Cassandra.
pub fn rebuild_when_created(observed: &ObservedCluster, datacenter: &str) -> bool {
    observed.datacenters.iter().any(|(name, o)| {
        name != datacenter
            && o.state.present().and_then(|live| live.status()).is_some_and(|status| {
                status.is_condition_true(CONDITION_INITIALIZED) || status.is_ready()
            })
    })
}

/// A datacenter marked for a rebuild, and what to do about it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingRebuild {
    pub datacenter: String,
    pub context: String,
    pub namespace: String,
    /// Pods the datacenter has (each rebuilds).
    pub pods: u32,
    pub next: RebuildNext,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RebuildNext {
    /// Start the task, or follow it if it exists.
    Run(RebuildTask),
    /// Not yet, and why (the datacenter is not Ready, the system keyspaces do not replicate to
    /// it yet, the source is not Ready...).
    Wait(String),
}

/// The marked datacenters of the spec and what each needs now. `keyspaces_replicated`: the
/// system keyspaces reached every datacenter that joined (a rebuild before that would stream
/// no `system_auth` into it).
pub fn pending_rebuilds(
    plan: &ClusterPlan,
    observed: &ObservedCluster,
    source_annotation: Option<&str>,
    keyspaces_replicated: bool,
) -> Vec<PendingRebuild> {
    let mut pending = Vec::new();
    for dc in &plan.datacenters {
        let Some(RemoteState::Present(live)) = observed.get(&dc.name).map(|o| &o.state) else {
            continue;
        };
        if !is_marked_for_rebuild(live.meta()) {
            continue;
        }
        let next = if !live.is_ready() {
            RebuildNext::Wait(format!("{} is not Ready yet", dc.name))
        } else if !keyspaces_replicated {
            RebuildNext::Wait(format!(
                "the system keyspaces do not replicate to {} yet",
                dc.cassandra_datacenter_name
            ))
        } else {
            match source_of(plan, observed, dc, source_annotation) {
                Ok(source) => RebuildNext::Run(task_for(plan, dc, source)),
                Err(wait) => RebuildNext::Wait(wait),
            }
        };
        pending.push(PendingRebuild {
            datacenter: dc.name.clone(),
            context: dc.context.clone(),
            namespace: dc.namespace.clone(),
            pods: u32::try_from(dc.datacenter.spec.size).unwrap_or(0),
            next,
        });
    }
    pending
}

/// The datacenter to stream from, or why there is none now.
fn source_of<'a>(
    plan: &'a ClusterPlan,
    observed: &ObservedCluster,
    dc: &DatacenterPlan,
    source_annotation: Option<&str>,
) -> Result<&'a DatacenterPlan, String> {
    let ready = |name: &str| observed.get(name).is_some_and(|o| o.state.is_ready());
    let named = dc
        .rebuild
        .as_ref()
        .and_then(|r| r.source_dc.as_deref())
        .or(source_annotation)
        .filter(|name| !name.is_empty());
    match named {
        Some(name) => {
            let source = plan
                .datacenters
                .iter()
                .find(|other| other.name == name && other.name != dc.name)
                .ok_or_else(|| {
                    format!(
                        "the rebuild source {name} of {} is not another datacenter of this cluster",
                        dc.name
                    )
                })?;
            match ready(&source.name) {
                true => Ok(source),
                false => Err(format!("the rebuild source {name} is not Ready")),
            }
        }
        None => plan
            .datacenters
            .iter()
            .find(|other| other.name != dc.name && ready(&other.name))
            .ok_or_else(|| format!("no other datacenter is Ready to rebuild {} from", dc.name)),
    }
}

fn task_for(plan: &ClusterPlan, dc: &DatacenterPlan, source: &DatacenterPlan) -> RebuildTask {
    let size = u32::try_from(dc.datacenter.spec.size).unwrap_or(1).max(1);
    // maxConcurrentRebuilds 0 means every pod of a rack at once; cass-operator would read a 0
    // maxConcurrentPods as one (or, in some versions, as none), so the rack's size is sent.
    let max_concurrent_pods = match dc.rebuild.as_ref().and_then(|r| r.max_concurrent_rebuilds) {
        None => 1,
        Some(0) => size,
        Some(n) => u32::try_from(n).unwrap_or(1).clamp(1, size),
    };
    RebuildTask {
        name: format!("{}-rebuild", dc.name),
        namespace: dc.namespace.clone(),
        datacenter: dc.name.clone(),
        source_datacenter: source.cassandra_datacenter_name.clone(),
        max_concurrent_pods,
        labels: ownership_labels(&plan.cluster.name, &plan.cluster.namespace),
    }
}

/// How one rebuild stands after this reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RebuildState {
    Waiting(String),
    Running {
        task: String,
        source: String,
        succeeded: i64,
        total: i64,
    },
    Failed {
        task: String,
        message: String,
    },
    Done {
        source: String,
    },
}

/// The `DatacenterRebuild` condition for the rebuilds of this reconcile (by datacenter). With
/// none, a previous condition that was not True becomes True (every rebuild ended: the one that
/// saw it end may have written a status that a reconcile reading an older one overwrote), and
/// a cluster that never rebuilt has none.
pub fn rebuild_condition(
    rebuilds: &[(String, RebuildState)],
    previous: Option<&Condition>,
    generation: Option<i64>,
    now: Time,
) -> Option<Condition> {
    if rebuilds.is_empty() {
        previous.filter(|c| c.status != CONDITION_TRUE)?;
        return Some(new_condition(
            CONDITION_DATACENTER_REBUILD,
            CONDITION_TRUE,
            REASON_REBUILT,
            "every datacenter added to the running cluster was rebuilt",
            generation,
            now,
        ));
    }
    let failed: Vec<String> = rebuilds
        .iter()
        .filter_map(|(dc, state)| match state {
            RebuildState::Failed { task, message } => Some(format!(
                "{dc}: CassandraTask {task} failed ({message}); delete it to try again"
            )),
            _ => None,
        })
        .collect();
    let describe = |(dc, state): &(String, RebuildState)| match state {
        RebuildState::Waiting(why) => format!("{dc} waits to rebuild: {why}"),
        RebuildState::Running {
            task,
            source,
            succeeded,
            total,
        } => format!(
            "{dc} rebuilding from {source} (CassandraTask {task}: {succeeded} of {total} pods done)"
        ),
        RebuildState::Failed { task, .. } => format!("{dc}: CassandraTask {task} failed"),
        RebuildState::Done { source } => format!("{dc} rebuilt from {source}"),
    };
    let message: Vec<String> = rebuilds.iter().map(describe).collect();
    let all_done = rebuilds.iter().all(|(_, s)| matches!(s, RebuildState::Done { .. }));
    let any_running = rebuilds.iter().any(|(_, s)| matches!(s, RebuildState::Running { .. }));
    let (status, reason, message) = if !failed.is_empty() {
        (CONDITION_FALSE, REASON_REBUILD_FAILED, failed.join("; "))
    } else if all_done {
        (CONDITION_TRUE, REASON_REBUILT, message.join("; "))
    } else if any_running {
        (CONDITION_FALSE, REASON_REBUILDING, message.join("; "))
    } else {
        (CONDITION_FALSE, REASON_REBUILD_WAITING, message.join("; "))
    };
    Some(new_condition(
        CONDITION_DATACENTER_REBUILD,
        status,
        reason,
        message,
        generation,
        now,
    ))
}

#[cfg(test)]
mod tests;
