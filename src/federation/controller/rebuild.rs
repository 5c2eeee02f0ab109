//! Rebuilds, as a stage: for each datacenter marked `k8ssandra.io/rebuild-dc` that may rebuild
//! now, create its CassandraTask in its region or follow it; when it succeeded, take the mark
//! off the CassandraDatacenter. Regions are asked in parallel, each bounded by its timeout.

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use crate::api::cassdc::CassandraDatacenter;
use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::cassandra::task::{RebuildTask, TaskProgress, task_progress, task_resource};
use crate::clusters::RegionFailure;
use crate::events::Notice;
use crate::federation::observed::{LiveDatacenter, ObservedCluster};
use crate::federation::plan::ClusterPlan;
use crate::federation::rebuild::{
    PendingRebuild, REBUILD_DC_ANNOTATION, REBUILD_SOURCE_ANNOTATION, RebuildNext, RebuildState,
    is_marked_for_rebuild, pending_rebuilds,
};

use super::context::{ControllerContext, FIELD_MANAGER};

/// What the stage did.
#[derive(Default)]
pub(super) struct RebuildReport {
    /// Each marked datacenter of the spec, and where its rebuild stands.
    pub(super) states: Vec<(String, RebuildState)>,
    pub(super) failures: Vec<RegionFailure>,
    pub(super) notices: Vec<Notice>,
}

pub(super) async fn rebuild_datacenters(
    context: &ControllerContext,
    k8c: &K8ssandraCluster,
    cluster_plan: &ClusterPlan,
    observed: &ObservedCluster,
    keyspaces_replicated: bool,
) -> RebuildReport {
    let source_annotation = k8c.annotations().get(REBUILD_SOURCE_ANNOTATION).map(String::as_str);
    let pending = pending_rebuilds(
        cluster_plan,
        observed,
        source_annotation,
        keyspaces_replicated,
    );
    let steps = pending.into_iter().map(|rebuild| async move {
        let state = follow(context, &rebuild).await;
        (rebuild, state)
    });
    let key = ObjectRef::from_obj(k8c);
    let mut report = RebuildReport::default();
    for (rebuild, state) in futures::future::join_all(steps).await {
        match state {
            Ok((state, notice)) => {
                if matches!(state, RebuildState::Done { .. }) {
                    context.rebuilds_ended.record(&key, &rebuild.datacenter);
                }
                report.notices.extend(notice);
                report.states.push((rebuild.datacenter, state));
            }
            Err(failure) => {
                let why = failure.to_string();
                report.failures.push(failure);
                report.states.push((rebuild.datacenter, RebuildState::Waiting(why)));
            }
        }
    }
    report
}

/// One rebuild's step: where it stands, and an Event when it started or ended.
async fn follow(
    context: &ControllerContext,
    rebuild: &PendingRebuild,
) -> Result<(RebuildState, Option<Notice>), RegionFailure> {
    let task = match &rebuild.next {
        RebuildNext::Wait(why) => return Ok((RebuildState::Waiting(why.clone()), None)),
        RebuildNext::Run(task) => task,
    };
    let region = rebuild.context.as_str();
    let client = context.registry.client(region).map_err(|e| {
        RegionFailure::region(region, format!("rebuilding {}", rebuild.datacenter), &e)
    })?;
    let tasks: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &task.namespace, &task_resource());
    let doing = format!("following CassandraTask {}/{}", task.namespace, task.name);
    let existing = tasks
        .get_opt(&task.name)
        .await
        .map_err(|e| RegionFailure::kube(region, doing.clone(), &e))?;
    let Some(existing) = existing else {
        // The watched copy of the datacenter may be older than the end of its rebuild (the mark
        // taken off, the task deleted): the region says whether it is still marked.
        let datacenters: Api<CassandraDatacenter> =
            Api::namespaced(client.clone(), &rebuild.namespace);
        let current = datacenters
            .get(&rebuild.datacenter)
            .await
            .map_err(|e| RegionFailure::kube(region, doing.clone(), &e))?;
        if !is_marked_for_rebuild(current.meta()) {
            let source = task.source_datacenter.clone();
            return Ok((RebuildState::Done { source }, None));
        }
        start(&tasks, task).await.map_err(|e| {
            RegionFailure::kube(region, format!("creating CassandraTask {}", task.name), &e)
        })?;
        let notice = Notice::normal(
            "RebuildStarted",
            "Rebuild",
            format!(
                "{} rebuilds from {} (CassandraTask {} in region {region:?})",
                rebuild.datacenter, task.source_datacenter, task.name
            ),
        );
        return Ok((running(rebuild, task, 0), Some(notice)));
    };
    let value = serde_json::to_value(&existing).unwrap_or_default();
    match task_progress(&value) {
        TaskProgress::Running { succeeded, .. } => Ok((running(rebuild, task, succeeded), None)),
        TaskProgress::Failed { message, .. } => Ok((
            RebuildState::Failed {
                task: task.name.clone(),
                message,
            },
            None,
        )),
        TaskProgress::Succeeded => {
            // The mark first: a task deleted before it would be made again.
            let datacenters: Api<CassandraDatacenter> = Api::namespaced(client, &rebuild.namespace);
            let unmark =
                serde_json::json!({"metadata": {"annotations": {REBUILD_DC_ANNOTATION: null}}});
            let ending = format!("ending the rebuild of {}", rebuild.datacenter);
            datacenters
                .patch(
                    &rebuild.datacenter,
                    &PatchParams::default(),
                    &Patch::Merge(&unmark),
                )
                .await
                .map_err(|e| RegionFailure::kube(region, ending.clone(), &e))?;
            // As upstream, a rebuild that succeeded leaves no task behind.
            match tasks.delete(&task.name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                Err(e) => return Err(RegionFailure::kube(region, ending, &e)),
            }
            let notice = Notice::normal(
                "Rebuilt",
                "Rebuild",
                format!(
                    "{} rebuilt from {}",
                    rebuild.datacenter, task.source_datacenter
                ),
            );
            let state = RebuildState::Done {
                source: task.source_datacenter.clone(),
            };
            Ok((state, Some(notice)))
        }
    }
}

fn running(rebuild: &PendingRebuild, task: &RebuildTask, succeeded: i64) -> RebuildState {
    RebuildState::Running {
        task: task.name.clone(),
        source: task.source_datacenter.clone(),
        succeeded,
        total: i64::from(rebuild.pods),
    }
}

async fn start(tasks: &Api<DynamicObject>, task: &RebuildTask) -> Result<(), kube::Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    tasks.patch(&task.name, &params, &Patch::Apply(task.to_object())).await.map(drop)
}

/// Whether the datacenter's object as applied now carries the rebuild mark: when it is created
/// beside a running datacenter, and while the live object has it and its rebuild did not end
/// lately (`ended`).
pub(super) fn keeps_rebuild_mark(
    live: Option<&LiveDatacenter>,
    created_beside_running: bool,
    ended: impl Fn(&str) -> bool,
) -> bool {
    match live {
        None => created_beside_running,
        Some(live) => is_marked_for_rebuild(live.meta()) && !ended(&live.name_any()),
    }
}

/// Deletes this cluster's CassandraTasks (by label) in a region: a rebuild under way when the
/// cluster is deleted. A region without the CassandraTask CRD has none.
pub(super) async fn delete_tasks(
    client: &kube::Client,
    namespaces: &[String],
    selector: &str,
) -> Result<(), kube::Error> {
    let listing: Api<DynamicObject> = match namespaces {
        [single] => Api::namespaced_with(client.clone(), single, &task_resource()),
        _ => Api::all_with(client.clone(), &task_resource()),
    };
    let found = match listing.list(&ListParams::default().labels(selector)).await {
        Ok(found) => found,
        Err(kube::Error::Api(status)) if status.is_not_found() => return Ok(()),
        Err(error) => return Err(error),
    };
    for task in found.items {
        let namespace = task.namespace().unwrap_or_default();
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &namespace, &task_resource());
        match api.delete(&task.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
