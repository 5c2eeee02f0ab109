//! The K8ssandraTask controller (control-plane mode only): gather (the K8ssandraCluster, where
//! its datacenters are, each CassandraTask in its region) → validate and decide
//! ([`super::fanout`], pure) → apply (create the CassandraTasks due now, in their regions) →
//! status ([`super::progress`], pure) with one server-side apply; cleanup on deletion.
//!
//! Regions are asked in parallel, each request bounded by its region client's timeout; a region
//! that cannot be asked is reported (condition RegionUnreachable) and holds up only its own
//! datacenter (and, under Forbid, the ones after it). While tasks run, the K8ssandraTask is
//! looked at again every [`POLL`]; a region coming back re-queues it at once.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Error as ControllerError};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, Predicate, WatchStreamExt, predicates, watcher};
use kube::{Resource, ResourceExt};
use tracing::{debug, info, warn};

use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::api::k8ssandra_task::{CassandraTaskStatus, K8ssandraTask, K8ssandraTaskStatus};
use crate::cache::{reflected, scoped};
use crate::cassandra::task::task_resource;
use crate::clusters::{FailureCategory, RegionChange, RegionFailure, Registry};
use crate::events::{Events, Notice};
use crate::federation::plan::{PlanInputs, plan_with};

use super::fanout::{
    Invalid, Located, Place, Seen, Target, cancelled, cassandra_task, made_for, places, select,
    task_selector, to_create,
};
use super::progress::{Expiry, Found, INVALID, expiry, fold};

/// Field manager of the CassandraTasks, of the K8ssandraTask's owner reference and status.
pub const FIELD_MANAGER: &str = "federator-k8ssandratask";
/// Upstream's finalizer.
pub const FINALIZER: &str = "control.k8ssandra.io/finalizer";
const EVENT_REPORTER: &str = "federator-k8ssandratask";
/// The `controller` label of this controller's metrics.
const CONTROLLER: &str = "k8ssandratask";
/// How soon a task with CassandraTasks under way is looked at again.
pub const POLL: Duration = Duration::from_secs(2);
/// How soon a task whose spec cannot run is looked at again (its K8ssandraCluster may appear).
const INVALID_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("K8ssandraTask {name} has no namespace")]
    MissingNamespace { name: String },
    #[error("reading K8ssandraCluster {namespace}/{name}: {source}")]
    ReadCluster {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("writing K8ssandraTask {namespace}/{name}: {source}")]
    Write {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error(
        "the CassandraTasks of K8ssandraTask {namespace}/{name} are not deleted yet: {pending}"
    )]
    CleanupPending {
        namespace: String,
        name: String,
        pending: String,
    },
    #[error("finalizer of a K8ssandraTask: {0}")]
    Finalizer(#[source] Box<finalizer::Error<ReconcileError>>),
}

impl crate::ops::ErrorLabel for ReconcileError {
    const KINDS: &'static [&'static str] = &[
        "missing_namespace",
        "read_cluster",
        "write",
        "cleanup_pending",
        "finalizer",
    ];
    fn metric_label(&self) -> &'static str {
        match self {
            ReconcileError::MissingNamespace { .. } => "missing_namespace",
            ReconcileError::ReadCluster { .. } => "read_cluster",
            ReconcileError::Write { .. } => "write",
            ReconcileError::CleanupPending { .. } => "cleanup_pending",
            ReconcileError::Finalizer(error) => crate::ops::finalizer_label(error),
        }
    }
}

struct Context {
    hub: kube::Client,
    registry: Registry,
    events: Events,
    watch_namespaces: Vec<String>,
    metrics: Arc<crate::ops::Metrics>,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    hub: kube::Client,
    registry: Registry,
    watch_namespaces: Vec<String>,
    ops: crate::ops::Ops,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (store, events) = reflected(
        scoped::<K8ssandraTask>(&hub, &watch_namespaces),
        watcher::Config::default(),
    );
    // Its own status writes are not worth a reconcile (upstream's GenerationChangedPredicate);
    // finalizers and deletion are.
    let changes = events.applied_objects().predicate_filter(
        predicates::generation.combine(predicates::finalizers).combine(deleting),
        Default::default(),
    );
    ops.health.track_cache("k8ssandratask", store.clone());
    let region_store = store.clone();
    let region_triggers = registry
        .changes()
        .flat_map(move |change| stream::iter(unfinished_using(&region_store, &change)));
    let context = Arc::new(Context {
        events: Events::new(hub.clone(), EVENT_REPORTER),
        hub,
        registry,
        watch_namespaces,
        metrics: Arc::clone(&ops.metrics),
    });
    let backoff = crate::ops::RetryBackoff::default();
    info!("K8ssandraTask controller started");
    Controller::for_stream(changes, store)
        .reconcile_on(region_triggers)
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(crate::ops::MAX_CONCURRENT_RECONCILES),
        )
        .graceful_shutdown_on(shutdown)
        .run(
            crate::ops::instrument(
                CONTROLLER,
                |task: &K8ssandraTask| task.spec.cluster.name.clone().unwrap_or_default(),
                &backoff,
                &ops.metrics,
                reconcile,
            ),
            backoff.error_policy(),
            context,
        )
        .for_each(|result| {
            match result {
                Ok((object, _)) => debug!(k8ssandra_task = %object, "reconciled"),
                Err(ControllerError::ObjectNotFound(_)) => {}
                Err(ControllerError::ReconcilerFailed(error, object)) => {
                    warn!(k8ssandra_task = %object, error = %error, "reconcile failed; retrying");
                }
                Err(error) => warn!(error = %error, "K8ssandraTask controller"),
            }
            futures::future::ready(())
        })
        .await;
    info!("K8ssandraTask controller stopped");
}

fn deleting(task: &K8ssandraTask) -> Option<u64> {
    task.metadata.deletion_timestamp.as_ref().map(|_| 1)
}

/// The K8ssandraTasks still at work, when a region changed (came back, say): those not
/// finished, and those being deleted (their cleanup may wait for that region).
fn unfinished_using(
    store: &Store<K8ssandraTask>,
    _change: &RegionChange,
) -> Vec<ObjectRef<K8ssandraTask>> {
    store
        .state()
        .iter()
        .filter(|task| {
            task.metadata.deletion_timestamp.is_some()
                || task.status.as_ref().is_none_or(|s| s.task.completion_time.is_none())
        })
        .map(|task| ObjectRef::from_obj(task.as_ref()))
        .collect()
}

async fn reconcile(
    task: Arc<K8ssandraTask>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let namespace = task.namespace().ok_or_else(|| ReconcileError::MissingNamespace {
        name: task.name_any(),
    })?;
    if !context.watch_namespaces.is_empty() && !context.watch_namespaces.contains(&namespace) {
        return Ok(Action::await_change());
    }
    let api: Api<K8ssandraTask> = Api::namespaced(context.hub.clone(), &namespace);
    finalizer::finalizer(&api, FINALIZER, task, |event| async {
        match event {
            FinalizerEvent::Apply(task) => run_task(&task, &api, &context).await,
            FinalizerEvent::Cleanup(task) => cleanup(&task, &api, &context).await,
        }
    })
    .await
    .map_err(|error| ReconcileError::Finalizer(Box::new(error)))
}

/// The K8ssandraCluster, if it exists, and where its datacenters are.
async fn locate(
    context: &Context,
    task: &K8ssandraTask,
) -> Result<Result<(K8ssandraCluster, Vec<Located>), Invalid>, ReconcileError> {
    let (namespace, name) = task.cluster_key();
    if name.is_empty() {
        return Ok(Err(Invalid::NoCluster));
    }
    if !context.watch_namespaces.is_empty() && !context.watch_namespaces.contains(&namespace) {
        return Ok(Err(Invalid::UnwatchedNamespace { namespace }));
    }
    let clusters: Api<K8ssandraCluster> = Api::namespaced(context.hub.clone(), &namespace);
    let k8c = match clusters.get_opt(&name).await {
        Ok(Some(k8c)) => k8c,
        Ok(None) => return Ok(Err(Invalid::UnknownCluster { namespace, name })),
        Err(source) => {
            return Err(ReconcileError::ReadCluster {
                namespace,
                name,
                source,
            });
        }
    };
    // Where the K8ssandraCluster controller put each CassandraDatacenter: its plan decides.
    let hub_contexts: BTreeSet<String> = k8c
        .spec
        .datacenters()
        .iter()
        .map(|dc| dc.context().to_string())
        .filter(|c| context.registry.reaches_hub(c))
        .collect();
    let inputs = PlanInputs {
        hub_contexts,
        ..PlanInputs::default()
    };
    let planned = match plan_with(&k8c, &inputs) {
        Ok(planned) => planned,
        Err(error) => {
            return Ok(Err(Invalid::ClusterNotPlanned {
                cluster: format!("{namespace}/{name}"),
                reason: error.to_string(),
            }));
        }
    };
    let located = planned
        .datacenters
        .iter()
        .map(|dc| Located {
            name: dc.name.clone(),
            context: dc.context.clone(),
            namespace: dc.namespace.clone(),
        })
        .collect();
    Ok(Ok((k8c, located)))
}

/// One reconcile of a task that is not being deleted.
async fn run_task(
    task: &K8ssandraTask,
    api: &Api<K8ssandraTask>,
    context: &Context,
) -> Result<Action, ReconcileError> {
    // Finished: only its TTL is left to follow.
    if let Some(completed) = task.status.as_ref().and_then(|s| s.task.completion_time.as_ref()) {
        return expire(task, api, completed.0).await;
    }
    let located = locate(context, task).await?;
    let (k8c, targets) = match located
        .and_then(|(k8c, located)| select(task, &located).map(|targets| (k8c, targets)))
    {
        Ok(found) => found,
        Err(invalid) => {
            let found = Found {
                invalid: Some((invalid.reason(), invalid.to_string())),
                ..Found::default()
            };
            let was_invalid = is_invalid(task.status.as_ref());
            let status = fold(task.status.as_ref(), &found, Timestamp::now());
            if !was_invalid {
                let notice = Notice::warning("InvalidSpec", "Validate", invalid.to_string());
                context.events.publish(task, &notice).await;
            }
            write_status(api, task, status).await?;
            return Ok(Action::requeue(INVALID_RETRY));
        }
    };
    own(api, task, &k8c).await?;
    let cluster = task.cluster_key();

    // Gather: each target's CassandraTask, regions in parallel.
    let reads = targets.iter().map(|target| read_target(context, task, target));
    let mut seen = BTreeMap::new();
    let mut failures: Vec<(String, RegionFailure)> = Vec::new();
    for (target, result) in targets.iter().zip(futures::future::join_all(reads).await) {
        match result {
            Ok(state) => {
                seen.insert(target.datacenter.clone(), state);
            }
            Err(failure) => {
                seen.insert(target.datacenter.clone(), Seen::Unknown);
                failures.push((target.datacenter.clone(), failure));
            }
        }
    }

    // Apply: the CassandraTasks due now.
    let policy = task.policy();
    let creations = to_create(&targets, &seen, policy)
        .into_iter()
        .map(|target| create_target(context, task, &cluster, target));
    for (target, result) in futures::future::join_all(creations).await {
        match result {
            Ok(()) => {
                seen.insert(target.datacenter.clone(), Seen::Found(Default::default()));
                let region = match target.context.as_str() {
                    "" => String::new(),
                    region => format!(" in context {region}"),
                };
                let notice = Notice::normal(
                    "CreateCassandraTask",
                    "CreateCassandraTask",
                    format!(
                        "Created CassandraTask {}.{}{region}",
                        target.namespace, target.task_name
                    ),
                );
                context.events.publish(task, &notice).await;
            }
            Err(failure) => {
                seen.insert(target.datacenter.clone(), Seen::Unknown);
                failures.push((target.datacenter.clone(), failure));
            }
        }
    }

    // Status.
    let found = Found {
        targets: targets.iter().map(|t| t.datacenter.clone()).collect(),
        statuses: seen
            .iter()
            .filter_map(|(dc, state)| match state {
                Seen::Found(status) => Some((dc.clone(), status.clone())),
                _ => None,
            })
            .collect(),
        cancelled: cancelled(&targets, &seen, policy),
        unreachable: failures.iter().map(|(dc, f)| (dc.clone(), f.to_string())).collect(),
        invalid: None,
    };
    let now = Timestamp::now();
    let status = fold(task.status.as_ref(), &found, now);
    context.metrics.region_failures(CONTROLLER, failures.iter().map(|(_, f)| f.category));
    let completed = status.task.completion_time.clone();
    write_status(api, task, status).await?;
    if let Some(completed) = completed {
        return Ok(
            match expiry(
                task.spec.template.ttl_seconds_after_finished,
                completed.0,
                now,
            ) {
                Expiry::Keep => Action::await_change(),
                Expiry::DeleteNow => Action::requeue(Duration::from_millis(100)),
                Expiry::DeleteAfter(after) => Action::requeue(after),
            },
        );
    }
    // Tasks under way are followed every POLL; a region that failed alone is retried as its
    // failure says.
    let under_way =
        seen.values().any(|s| matches!(s, Seen::Found(s) if s.completion_time.is_none()));
    let retry = RegionFailure::retry_after(failures.iter().map(|(_, f)| f));
    Ok(Action::requeue(match retry {
        Some(retry) if !under_way => retry,
        _ => POLL,
    }))
}

fn is_invalid(status: Option<&K8ssandraTaskStatus>) -> bool {
    status
        .and_then(|s| s.task.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == INVALID && c.status == "True")
}

/// A finished task: deleted once its TTL has passed, as upstream (its CassandraTasks go with it
/// through the finalizer).
async fn expire(
    task: &K8ssandraTask,
    api: &Api<K8ssandraTask>,
    completed: Timestamp,
) -> Result<Action, ReconcileError> {
    match expiry(
        task.spec.template.ttl_seconds_after_finished,
        completed,
        Timestamp::now(),
    ) {
        Expiry::Keep => Ok(Action::await_change()),
        Expiry::DeleteAfter(after) => Ok(Action::requeue(after)),
        Expiry::DeleteNow => {
            info!(k8ssandra_task = %task.name_any(), "TTL expired: deleting");
            match api.delete(&task.name_any(), &DeleteParams::default()).await {
                Ok(_) => Ok(Action::await_change()),
                Err(kube::Error::Api(status)) if status.is_not_found() => {
                    Ok(Action::await_change())
                }
                Err(source) => Err(write_error(task, source)),
            }
        }
    }
}

fn write_error(task: &K8ssandraTask, source: kube::Error) -> ReconcileError {
    ReconcileError::Write {
        namespace: task.namespace().unwrap_or_default(),
        name: task.name_any(),
        source,
    }
}

/// Makes the K8ssandraCluster the task's controller owner, as upstream: deleting the cluster
/// deletes its tasks.
async fn own(
    api: &Api<K8ssandraTask>,
    task: &K8ssandraTask,
    k8c: &K8ssandraCluster,
) -> Result<(), ReconcileError> {
    let Some(owner) = k8c.controller_owner_ref(&()) else {
        return Ok(());
    };
    // One controller owner at most (the API server refuses two): a task already owned, by this
    // cluster or by another object, is left as it is.
    if task.owner_references().iter().any(|o| o.uid == owner.uid || o.controller == Some(true)) {
        return Ok(());
    }
    let body = serde_json::json!({
        "apiVersion": K8ssandraTask::api_version(&()),
        "kind": K8ssandraTask::kind(&()),
        "metadata": {"ownerReferences": [owner]},
    });
    api.patch(
        &task.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map(drop)
    .map_err(|source| write_error(task, source))
}

/// The CassandraTask of one target, as its region has it.
async fn read_target(
    context: &Context,
    task: &K8ssandraTask,
    target: &Target,
) -> Result<Seen, RegionFailure> {
    let doing = format!(
        "reading CassandraTask {}/{} of datacenter {}",
        target.namespace, target.task_name, target.datacenter
    );
    let region = target.context.as_str();
    let client = context
        .registry
        .client(region)
        .map_err(|e| RegionFailure::region(region, doing.clone(), &e))?;
    let tasks: Api<DynamicObject> =
        Api::namespaced_with(client, &target.namespace, &task_resource());
    let Some(found) = tasks
        .get_opt(&target.task_name)
        .await
        .map_err(|e| RegionFailure::kube(region, doing.clone(), &e))?
    else {
        return Ok(Seen::Missing);
    };
    if !made_for(found.metadata.labels.as_ref(), task) {
        return Err(RegionFailure::new(
            region,
            doing,
            FailureCategory::Conflict,
            "it exists and was not made for this K8ssandraTask: delete or rename it",
        ));
    }
    let status = found.data.get("status").cloned().unwrap_or_default();
    let status: CassandraTaskStatus = serde_json::from_value(status).map_err(|e| {
        RegionFailure::new(
            region,
            format!("{doing}: unreadable status"),
            FailureCategory::Internal,
            e,
        )
    })?;
    Ok(Seen::Found(status))
}

async fn create_target<'a>(
    context: &Context,
    task: &K8ssandraTask,
    cluster: &(String, String),
    target: &'a Target,
) -> (&'a Target, Result<(), RegionFailure>) {
    let doing = format!(
        "creating CassandraTask {}/{} for datacenter {}",
        target.namespace, target.task_name, target.datacenter
    );
    let region = target.context.as_str();
    let client = match context.registry.client(region) {
        Ok(client) => client,
        Err(e) => return (target, Err(RegionFailure::region(region, doing, &e))),
    };
    let tasks: Api<DynamicObject> =
        Api::namespaced_with(client, &target.namespace, &task_resource());
    let object = cassandra_task(task, cluster, target);
    let created = tasks
        .patch(
            &target.task_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map(drop)
        .map_err(|e| RegionFailure::kube(region, doing, &e));
    (target, created)
}

/// Writes the status with server-side apply, only when it changed.
async fn write_status(
    api: &Api<K8ssandraTask>,
    task: &K8ssandraTask,
    status: K8ssandraTaskStatus,
) -> Result<(), ReconcileError> {
    if task.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let body = serde_json::json!({
        "apiVersion": K8ssandraTask::api_version(&()),
        "kind": K8ssandraTask::kind(&()),
        "status": status,
    });
    api.patch_status(
        &task.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map(drop)
    .map_err(|source| write_error(task, source))
}

/// Deletion: the task's CassandraTasks go, in every region and namespace where the
/// K8ssandraCluster has a datacenter (found by the task's labels, so that those of datacenters
/// since taken out of `spec.datacenters` go too). Nothing to do when the K8ssandraCluster is
/// gone or cannot be planned (its cleanup deletes what carries its labels). A region that
/// cannot be reached is reported in the status and retried.
async fn cleanup(
    task: &K8ssandraTask,
    api: &Api<K8ssandraTask>,
    context: &Context,
) -> Result<Action, ReconcileError> {
    let located = match locate(context, task).await? {
        Ok((_, located)) => located,
        Err(_) => return Ok(Action::await_change()),
    };
    let places = places(&located);
    let selector = task_selector(task);
    let deletions = places.iter().map(|place| delete_in(context, task, place, &selector));
    let failures: Vec<(String, RegionFailure)> = places
        .iter()
        .zip(futures::future::join_all(deletions).await)
        .filter_map(|(place, result)| result.err().map(|f| (place.datacenters.join(", "), f)))
        .collect();
    context.metrics.region_failures(CONTROLLER, failures.iter().map(|(_, f)| f.category));
    if failures.is_empty() {
        return Ok(Action::await_change());
    }
    let found = Found {
        targets: located.iter().map(|l| l.name.clone()).collect(),
        unreachable: failures.iter().map(|(dc, f)| (dc.clone(), f.to_string())).collect(),
        ..Found::default()
    };
    // Deleting changes no progress: only the RegionUnreachable condition is new.
    let mut status = task.status.clone().unwrap_or_default();
    status.task.conditions = fold(task.status.as_ref(), &found, Timestamp::now()).task.conditions;
    write_status(api, task, status).await?;
    Err(ReconcileError::CleanupPending {
        namespace: task.namespace().unwrap_or_default(),
        name: task.name_any(),
        pending: failures.iter().map(|(_, f)| f.to_string()).collect::<Vec<_>>().join("; "),
    })
}

/// Deletes the task's CassandraTasks in one region and namespace. A region without the
/// CassandraTask CRD has none.
async fn delete_in(
    context: &Context,
    task: &K8ssandraTask,
    place: &Place,
    selector: &str,
) -> Result<(), RegionFailure> {
    let doing = format!(
        "deleting the CassandraTasks of K8ssandraTask {} in namespace {}",
        task.name_any(),
        place.namespace
    );
    let region = place.context.as_str();
    let client = context
        .registry
        .client(region)
        .map_err(|e| RegionFailure::region(region, doing.clone(), &e))?;
    let tasks: Api<DynamicObject> =
        Api::namespaced_with(client, &place.namespace, &task_resource());
    let found = match tasks.list(&ListParams::default().labels(selector)).await {
        Ok(found) => found.items,
        Err(kube::Error::Api(status)) if status.is_not_found() => return Ok(()),
        Err(e) => return Err(RegionFailure::kube(region, doing, &e)),
    };
    for found in found {
        match tasks.delete(&found.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(e) => return Err(RegionFailure::kube(region, doing, &e)),
        }
    }
    Ok(())
}
