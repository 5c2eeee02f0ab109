//! The MedusaClusterBackupJob controller (control-plane mode only): one object in the hub backs
//! up every datacenter of a K8ssandraCluster, each in its own region.
//!
//! Each reconcile: locate the cluster's datacenters (the K8ssandraCluster controller's plan) →
//! in every datacenter's region at once, each bounded by [`REGION_DEADLINE`], read its
//! MedusaBackupJob `<name>-<datacenter>` and apply it when missing, and read its MedusaBackup
//! once the job finished → fold everything into the status ([`fold`], pure) → copy each
//! MedusaBackup found recorded in this reconcile (a finished datacenter is not asked again)
//! to every other region and namespace of the cluster (the bucket is shared, so a datacenter
//! there can restore it) → one status apply. A copy that could not be made (its region down) is
//! listed in the datacenter's `missingCopies` and retried ([`copies_to_make`], pure): at every
//! poll while the job runs, every [`COPY_RETRY`] once it finished, until none is missing.
//!
//! A region that cannot be reached is marked Unreachable and does not hold up the others; it is
//! retried until the others finished and [`MISSED_REGION_GRACE`] after, then reported as missed.
//! Deleting the object deletes its MedusaBackupJobs in every region (finalizer); the
//! MedusaBackups stay, as the backups stay in the bucket.
//!
//! Per-datacenter names: Medusa keys a node's backup by its host and the backup's name, and two
//! datacenters may share a region and namespace, where two MedusaBackupJobs cannot share a name:
//! each datacenter's job and backup are named `<name>-<datacenter>`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Error as ControllerError};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::{Controller, watcher};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::api::medusa::backup::MedusaBackup;
use crate::api::medusa::backup_job::{MedusaBackupJob, MedusaBackupJobStatus};
use crate::api::medusa::cluster_backup_job::{
    DatacenterBackup, DatacenterPhase, MedusaClusterBackupJob, MedusaClusterBackupJobStatus,
};
use crate::api::shared::{CONDITION_TRUE, new_condition, set_condition};
use crate::cache::scoped;
use crate::clusters::{RegionFailure, Registry};
use crate::events::{Events, Notice};
use crate::federation::plan::{PlanInputs, plan_with};

use super::fanout::{Located, Place, places};

/// Field manager of the MedusaBackupJobs, the copied MedusaBackups and the status.
pub const FIELD_MANAGER: &str = "federator-medusaclusterbackup";
pub const FINALIZER: &str = "medusa.k8ssandra.io/cluster-backup";
/// Label of every object made for a MedusaClusterBackupJob: its name.
pub const CLUSTER_BACKUP_LABEL: &str = "medusa.k8ssandra.io/cluster-backup";
/// Annotation of a MedusaBackup copied from another region: that region (`hub` for the hub).
pub const COPIED_FROM_ANNOTATION: &str = "medusa.k8ssandra.io/copied-from";
const CONTROLLER: &str = "medusaclusterbackupjob";
const EVENT_REPORTER: &str = "federator-medusaclusterbackup";

pub const CONDITION_COMPLETE: &str = "Complete";
pub const CONDITION_FAILED: &str = "Failed";
pub const CONDITION_INVALID: &str = "Invalid";

/// How long all the work in one region may take in one reconcile.
pub const REGION_DEADLINE: Duration = Duration::from_secs(15);
/// How long an unreachable region is still tried once every other datacenter finished.
pub const MISSED_REGION_GRACE: Duration = Duration::from_secs(30);
/// How soon a running backup is looked at again.
const POLL: Duration = Duration::from_secs(2);
/// How soon copies still missing are tried again once the job finished.
pub const COPY_RETRY: Duration = Duration::from_secs(30);
/// How soon a backup whose spec cannot run is looked at again (the cluster may appear).
const INVALID_RETRY: Duration = Duration::from_secs(30);
/// Longest Kubernetes object name.
const MAX_OBJECT_NAME: usize = 253;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("MedusaClusterBackupJob {name} has no namespace")]
    MissingNamespace { name: String },
    #[error("{action} for MedusaClusterBackupJob {namespace}/{name}: {source}")]
    Hub {
        action: String,
        namespace: String,
        name: String,
        source: Box<kube::Error>,
    },
    #[error(
        "the MedusaBackupJobs of MedusaClusterBackupJob {namespace}/{name} are not deleted yet: {pending}"
    )]
    CleanupPending {
        namespace: String,
        name: String,
        pending: String,
    },
    #[error("finalizer of a MedusaClusterBackupJob: {0}")]
    Finalizer(#[source] Box<finalizer::Error<ReconcileError>>),
}

impl crate::ops::ErrorLabel for ReconcileError {
    const KINDS: &'static [&'static str] =
        &["missing_namespace", "hub", "cleanup_pending", "finalizer"];
    fn metric_label(&self) -> &'static str {
        match self {
            ReconcileError::MissingNamespace { .. } => "missing_namespace",
            ReconcileError::Hub { .. } => "hub",
            ReconcileError::CleanupPending { .. } => "cleanup_pending",
            ReconcileError::Finalizer(error) => crate::ops::finalizer_label(error),
        }
    }
}

fn hub_error(
    job: &MedusaClusterBackupJob,
    action: &str,
) -> impl FnOnce(kube::Error) -> ReconcileError {
    let (namespace, name) = (job.namespace().unwrap_or_default(), job.name_any());
    let action = action.to_string();
    move |source| ReconcileError::Hub {
        action,
        namespace,
        name,
        source: Box::new(source),
    }
}

struct Context {
    hub: kube::Client,
    registry: Registry,
    events: Events,
    watch_namespaces: Vec<String>,
    metrics: Arc<crate::ops::Metrics>,
}

// ---- pure parts ----

/// One datacenter to back up: where, and its job's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub datacenter: String,
    pub context: String,
    pub namespace: String,
    pub job_name: String,
}

/// The name of a datacenter's MedusaBackupJob and MedusaBackup.
pub fn job_name(cluster_backup: &str, datacenter: &str) -> String {
    format!("{cluster_backup}-{datacenter}")
}

/// Pure: the datacenters `job` backs up, from where the cluster's are (`located`, spec order);
/// why not when its spec names a datacenter the cluster does not have, or a name is too long.
pub fn select(job: &MedusaClusterBackupJob, located: &[Located]) -> Result<Vec<Target>, String> {
    let wanted: Vec<String> =
        job.spec.datacenters.iter().flatten().map(|dc| dc.0.clone()).collect();
    let unknown: Vec<&String> =
        wanted.iter().filter(|dc| !located.iter().any(|l| &l.name == *dc)).collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = located.iter().map(|l| l.name.as_str()).collect();
        return Err(format!(
            "spec.datacenters names {unknown:?}, which K8ssandraCluster {} does not have (it has {known:?})",
            job.spec.k8ssandra_cluster.name
        ));
    }
    let name = job.name_any();
    let targets: Vec<Target> = located
        .iter()
        .filter(|l| wanted.is_empty() || wanted.contains(&l.name))
        .map(|l| Target {
            datacenter: l.name.clone(),
            context: l.context.clone(),
            namespace: l.namespace.clone(),
            job_name: job_name(&name, &l.name),
        })
        .collect();
    if let Some(long) = targets.iter().find(|t| t.job_name.len() > MAX_OBJECT_NAME) {
        return Err(format!(
            "the MedusaBackupJob name {:?} would be longer than {MAX_OBJECT_NAME} characters: use a shorter name",
            long.job_name
        ));
    }
    if targets.is_empty() {
        return Err(format!(
            "K8ssandraCluster {} has no datacenter",
            job.spec.k8ssandra_cluster.name
        ));
    }
    Ok(targets)
}

/// Pure: the MedusaBackupJob of one datacenter, labelled with the cluster backup's name.
pub fn backup_job_body(job: &MedusaClusterBackupJob, target: &Target) -> Value {
    let mut spec = json!({"cassandraDatacenter": target.datacenter});
    if let Some(backup_type) = job.spec.backup_type {
        spec["backupType"] = json!(backup_type);
    }
    json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1",
        "kind": "MedusaBackupJob",
        "metadata": {
            "name": target.job_name,
            "namespace": target.namespace,
            "labels": {CLUSTER_BACKUP_LABEL: job.name_any()},
        },
        "spec": spec,
    })
}

/// Pure: a recorded MedusaBackup as copied into another region's `namespace` (its status apart).
pub fn copied_backup_body(
    backup: &MedusaBackup,
    cluster_backup: &str,
    from_context: &str,
    namespace: &str,
) -> Value {
    let from = match from_context {
        "" => "hub",
        context => context,
    };
    json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1",
        "kind": "MedusaBackup",
        "metadata": {
            "name": backup.name_any(),
            "namespace": namespace,
            "labels": {CLUSTER_BACKUP_LABEL: cluster_backup},
            "annotations": {COPIED_FROM_ANNOTATION: from},
        },
        "spec": backup.spec,
    })
}

/// Pure: how a place is named in `missingCopies` and Events: `<k8sContext or hub>/<namespace>`.
pub fn place_label(place: &Place) -> String {
    match place.context.as_str() {
        "" => format!("hub/{}", place.namespace),
        context => format!("{context}/{}", place.namespace),
    }
}

/// Pure: where `entry`'s MedusaBackup is to be copied in this reconcile: every place but its
/// own when it was recorded just now (`recorded_now`), else the places its `missingCopies`
/// still lists (a datacenter not Complete has no backup to copy).
pub fn copies_to_make<'a>(
    entry: &DatacenterBackup,
    places: &'a [Place],
    recorded_now: bool,
) -> Vec<&'a Place> {
    let others = places
        .iter()
        .filter(|p| !(p.context == entry.k8s_context && p.namespace == entry.namespace));
    match recorded_now {
        true => others.collect(),
        false if entry.phase != DatacenterPhase::Complete => Vec::new(),
        false => {
            let missing = entry.missing_copies.as_deref().unwrap_or_default();
            others.filter(|p| missing.contains(&place_label(p))).collect()
        }
    }
}

/// Pure: the places still missing after copies to `tried` failed at `failed` (labels), of an
/// entry that missed `before`: `tried` ones that did not fail are no longer missing, the others
/// stay as they were. None when nothing is missing.
pub fn still_missing(
    before: Option<&[String]>,
    tried: &[String],
    failed: &[String],
) -> Option<Vec<String>> {
    let mut missing: Vec<String> = (before.unwrap_or_default().iter())
        .filter(|label| !tried.contains(label))
        .cloned()
        .collect();
    missing.extend(failed.iter().cloned());
    missing.sort();
    missing.dedup();
    (!missing.is_empty()).then_some(missing)
}

/// What one region showed of one datacenter's backup.
#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    /// The job's status (None: not written yet) and whether its MedusaBackup is recorded.
    Reached {
        job: Option<MedusaBackupJobStatus>,
        recorded: bool,
    },
    /// The region could not be asked: why.
    Unreachable(String),
}

/// Pure: one datacenter's entry from what its region showed (`previous`: the last entry).
pub fn entry(
    target: &Target,
    observed: &Observed,
    previous: Option<&DatacenterBackup>,
) -> DatacenterBackup {
    let mut entry = DatacenterBackup {
        datacenter: target.datacenter.clone(),
        k8s_context: target.context.clone(),
        namespace: target.namespace.clone(),
        job_name: target.job_name.clone(),
        ..Default::default()
    };
    match observed {
        Observed::Unreachable(why) => {
            // A datacenter that finished stays finished; one under way keeps its counts.
            if let Some(previous) = previous.filter(|p| p.phase.is_finished()) {
                return previous.clone();
            }
            if let Some(previous) = previous {
                entry.finished_pods = previous.finished_pods;
                entry.failed_pods = previous.failed_pods;
            }
            entry.phase = DatacenterPhase::Unreachable;
            entry.message = Some(why.clone());
        }
        Observed::Reached { job: None, .. } => entry.phase = DatacenterPhase::Pending,
        Observed::Reached {
            job: Some(status),
            recorded,
        } => {
            let count = |pods: &Option<Vec<String>>| {
                i32::try_from(pods.as_ref().map_or(0, Vec::len)).unwrap_or(i32::MAX)
            };
            entry.finished_pods = count(&status.finished);
            entry.failed_pods = count(&status.failed);
            entry.finish_time = status.finish_time.clone();
            entry.phase = match (&status.start_time, &status.finish_time) {
                (None, _) => DatacenterPhase::Pending,
                (Some(_), None) => DatacenterPhase::Running,
                (Some(_), Some(_)) if entry.failed_pods > 0 => {
                    let failed = (status.conditions.iter().flatten())
                        .find(|c| c.type_ == "Failed")
                        .map(|c| c.message.clone());
                    entry.message = failed;
                    DatacenterPhase::Failed
                }
                (Some(_), Some(_)) if *recorded => DatacenterPhase::Complete,
                (Some(_), Some(_)) => {
                    entry.message = Some("recording the MedusaBackup".into());
                    DatacenterPhase::Running
                }
            };
        }
    }
    entry
}

fn describe(entry: &DatacenterBackup) -> String {
    match entry.k8s_context.as_str() {
        "" => format!("{} (hub)", entry.datacenter),
        context => format!("{} ({context})", entry.datacenter),
    }
}

/// Pure: the status after the regions showed `observed` (by datacenter) at `now`. Finished once
/// every datacenter finished, or the only ones left are unreachable and `grace` passed since the
/// last of the others finished (since the start when none finished).
pub fn fold(
    previous: Option<&MedusaClusterBackupJobStatus>,
    targets: &[Target],
    observed: &BTreeMap<String, Observed>,
    generation: Option<i64>,
    now: Timestamp,
    grace: Duration,
) -> MedusaClusterBackupJobStatus {
    let mut status = previous.cloned().unwrap_or_default();
    if status.finish_time.is_some() {
        return status;
    }
    let start = status.start_time.clone().unwrap_or(Time(now));
    status.start_time = Some(start.clone());
    let previous_entries = previous.and_then(|p| p.datacenters.clone()).unwrap_or_default();
    let entries: Vec<DatacenterBackup> = targets
        .iter()
        .map(|target| {
            let before = previous_entries.iter().find(|e| e.datacenter == target.datacenter);
            match (observed.get(&target.datacenter), before) {
                (Some(seen), _) => entry(target, seen, before),
                // Not asked: it had finished.
                (None, Some(before)) => before.clone(),
                (None, None) => entry(target, &Observed::Unreachable("not asked".into()), None),
            }
        })
        .collect();
    let mut conditions = status.conditions.take().unwrap_or_default();
    // Valid again: the Invalid condition goes.
    conditions.retain(|c| c.type_ != CONDITION_INVALID);
    let unreachable: Vec<&DatacenterBackup> =
        entries.iter().filter(|e| e.phase == DatacenterPhase::Unreachable).collect();
    let others_finished =
        entries.iter().all(|e| e.phase.is_finished() || e.phase == DatacenterPhase::Unreachable);
    let last_finish = entries
        .iter()
        .filter_map(|e| e.finish_time.as_ref().map(|t| t.0))
        .max()
        .unwrap_or(start.0)
        .max(start.0);
    let waited = Duration::try_from(now.duration_since(last_finish)).unwrap_or_default();
    let finished = others_finished && (unreachable.is_empty() || waited >= grace);
    if finished {
        status.finish_time = Some(Time(now));
        let missed: Vec<String> = unreachable.iter().map(|e| describe(e)).collect();
        let failed: Vec<String> = (entries.iter())
            .filter(|e| e.phase == DatacenterPhase::Failed)
            .map(|e| match &e.message {
                Some(why) => format!("{}: {why}", describe(e)),
                None => describe(e),
            })
            .collect();
        let complete = entries.iter().filter(|e| e.phase == DatacenterPhase::Complete).count();
        let missed_words = match missed.is_empty() {
            true => String::new(),
            false => format!(
                "; missed, their region unreachable: {}",
                unreachable
                    .iter()
                    .map(|e| format!(
                        "{} ({})",
                        describe(e),
                        e.message.as_deref().unwrap_or("no answer")
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        let (kind, reason, message) = if !failed.is_empty() {
            (
                CONDITION_FAILED,
                "DatacentersFailed",
                format!(
                    "{complete} of {} datacenters backed up; failed: {}{missed_words}",
                    entries.len(),
                    failed.join("; ")
                ),
            )
        } else if !missed.is_empty() {
            (
                CONDITION_COMPLETE,
                "RegionsMissed",
                format!(
                    "{complete} of {} datacenters backed up{missed_words}",
                    entries.len()
                ),
            )
        } else {
            (
                CONDITION_COMPLETE,
                "BackedUp",
                format!("{complete} of {} datacenters backed up", entries.len()),
            )
        };
        set_condition(
            &mut conditions,
            new_condition(kind, CONDITION_TRUE, reason, message, generation, Time(now)),
        );
        status.missed = (!missed.is_empty()).then_some(missed);
    }
    status.datacenters = Some(entries);
    status.conditions = Some(conditions);
    status
}

/// Pure: the status of a job whose spec cannot run (`why`).
pub fn invalid(
    previous: Option<&MedusaClusterBackupJobStatus>,
    why: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> MedusaClusterBackupJobStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let mut conditions = status.conditions.take().unwrap_or_default();
    set_condition(
        &mut conditions,
        new_condition(
            CONDITION_INVALID,
            CONDITION_TRUE,
            "InvalidSpec",
            why,
            generation,
            Time(now),
        ),
    );
    status.conditions = Some(conditions);
    status
}

fn condition<'a>(status: &'a MedusaClusterBackupJobStatus, kind: &str) -> Option<&'a Condition> {
    (status.conditions.iter().flatten()).find(|c| c.type_ == kind && c.status == CONDITION_TRUE)
}

// ---- I/O ----

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    hub: kube::Client,
    registry: Registry,
    watch_namespaces: Vec<String>,
    ops: crate::ops::Ops,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let context = Arc::new(Context {
        events: Events::new(hub.clone(), EVENT_REPORTER),
        hub: hub.clone(),
        registry,
        watch_namespaces: watch_namespaces.clone(),
        metrics: Arc::clone(&ops.metrics),
    });
    let controller = Controller::new(
        scoped::<MedusaClusterBackupJob>(&hub, &watch_namespaces),
        watcher::Config::default(),
    );
    ops.health.track_cache(CONTROLLER, controller.store());
    let backoff = crate::ops::RetryBackoff::default();
    info!("MedusaClusterBackupJob controller started");
    controller
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(crate::ops::MAX_CONCURRENT_RECONCILES),
        )
        .graceful_shutdown_on(shutdown)
        .run(
            crate::ops::instrument(
                CONTROLLER,
                |job: &MedusaClusterBackupJob| job.spec.k8ssandra_cluster.name.clone(),
                &backoff,
                &ops.metrics,
                reconcile,
            ),
            backoff.error_policy(),
            context,
        )
        .for_each(|result| {
            match result {
                Ok((object, _)) => debug!(cluster_backup = %object, "reconciled"),
                Err(ControllerError::ObjectNotFound(_)) => {}
                Err(ControllerError::ReconcilerFailed(error, object)) => {
                    warn!(cluster_backup = %object, error = %error, "reconcile failed; retrying");
                }
                Err(error) => warn!(error = %error, "MedusaClusterBackupJob controller"),
            }
            futures::future::ready(())
        })
        .await;
    info!("MedusaClusterBackupJob controller stopped");
}

async fn reconcile(
    job: Arc<MedusaClusterBackupJob>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let namespace = job.namespace().ok_or_else(|| ReconcileError::MissingNamespace {
        name: job.name_any(),
    })?;
    if !context.watch_namespaces.is_empty() && !context.watch_namespaces.contains(&namespace) {
        return Ok(Action::await_change());
    }
    let api: Api<MedusaClusterBackupJob> = Api::namespaced(context.hub.clone(), &namespace);
    finalizer::finalizer(&api, FINALIZER, job, |event| async {
        match event {
            FinalizerEvent::Apply(job) => back_up(&job, &api, &context).await,
            FinalizerEvent::Cleanup(job) => cleanup(&job, &context).await,
        }
    })
    .await
    .map_err(|error| ReconcileError::Finalizer(Box::new(error)))
}

/// Where the cluster's datacenters are (its plan decides), or why they cannot be known.
async fn locate(
    context: &Context,
    job: &MedusaClusterBackupJob,
) -> Result<Result<Vec<Located>, String>, ReconcileError> {
    let namespace = job.namespace().unwrap_or_default();
    let name = &job.spec.k8ssandra_cluster.name;
    let clusters: Api<K8ssandraCluster> = Api::namespaced(context.hub.clone(), &namespace);
    let Some(k8c) = clusters
        .get_opt(name)
        .await
        .map_err(hub_error(job, &format!("reading K8ssandraCluster {name}")))?
    else {
        return Ok(Err(format!(
            "K8ssandraCluster {name} does not exist in namespace {namespace}"
        )));
    };
    let hub_contexts = (k8c.spec.datacenters().iter())
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
            return Ok(Err(format!(
                "K8ssandraCluster {name} cannot be planned: {error}"
            )));
        }
    };
    Ok(Ok(planned
        .datacenters
        .iter()
        .map(|dc| Located {
            name: dc.name.clone(),
            context: dc.context.clone(),
            namespace: dc.namespace.clone(),
        })
        .collect()))
}

/// `work` in `region`, bounded by [`REGION_DEADLINE`]; a region without a client fails at once.
async fn in_region<T, F, Fut>(
    context: &Context,
    region: &str,
    doing: String,
    work: F,
) -> Result<T, RegionFailure>
where
    F: FnOnce(kube::Client) -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let client = context
        .registry
        .client(region)
        .map_err(|e| RegionFailure::region(region, doing.clone(), &e))?;
    match tokio::time::timeout(REGION_DEADLINE, work(client)).await {
        Ok(result) => result.map_err(|e| RegionFailure::kube(region, doing, &e)),
        Err(_) => Err(RegionFailure::new(
            region,
            doing,
            crate::clusters::FailureCategory::RegionUnavailable,
            format!("no answer within {}s", REGION_DEADLINE.as_secs()),
        )),
    }
}

/// One datacenter: its job (applied when missing) and, once finished, its MedusaBackup.
async fn observe(
    context: &Context,
    job: &MedusaClusterBackupJob,
    target: &Target,
) -> (Observed, Option<MedusaBackup>, bool) {
    let doing = format!(
        "backing up datacenter {} with MedusaBackupJob {}/{}",
        target.datacenter, target.namespace, target.job_name
    );
    let body = backup_job_body(job, target);
    let result = in_region(context, &target.context, doing, |client| async move {
        let jobs: Api<MedusaBackupJob> = Api::namespaced(client.clone(), &target.namespace);
        let mut created = false;
        let found = match jobs.get_opt(&target.job_name).await? {
            Some(found) => found,
            None => {
                let params = PatchParams::apply(FIELD_MANAGER).force();
                created = true;
                jobs.patch(&target.job_name, &params, &Patch::Apply(&body)).await?
            }
        };
        let finished = found.status.as_ref().is_some_and(|s| {
            s.finish_time.is_some() && s.failed.as_ref().is_none_or(Vec::is_empty)
        });
        let backup = match finished {
            true => {
                let backups: Api<MedusaBackup> = Api::namespaced(client, &target.namespace);
                backups.get_opt(&target.job_name).await?.filter(|b| b.status.is_some())
            }
            false => None,
        };
        Ok((found.status, backup, created))
    })
    .await;
    match result {
        Ok((status, backup, created)) => (
            Observed::Reached {
                job: status,
                recorded: backup.is_some(),
            },
            backup,
            created,
        ),
        Err(failure) => (Observed::Unreachable(failure.to_string()), None, false),
    }
}

/// Copies `backup` (recorded in `from`'s region) to `places`; the failures are returned, each
/// with its place's label.
async fn copy_backup(
    context: &Context,
    job: &MedusaClusterBackupJob,
    backup: &MedusaBackup,
    from: &Target,
    places: &[&Place],
) -> Vec<(String, String)> {
    let copies = places.iter().map(|place| {
        let doing = format!(
            "copying MedusaBackup {} to namespace {}",
            backup.name_any(),
            place.namespace
        );
        let body = copied_backup_body(backup, &job.name_any(), &from.context, &place.namespace);
        let status = json!({
            "apiVersion": "medusa.k8ssandra.io/v1alpha1",
            "kind": "MedusaBackup",
            "status": backup.status,
        });
        let name = backup.name_any();
        let label = place_label(place);
        async move {
            let copied = in_region(context, &place.context, doing, move |client| async move {
                let backups: Api<MedusaBackup> = Api::namespaced(client, &place.namespace);
                let params = PatchParams::apply(FIELD_MANAGER).force();
                backups.patch(&name, &params, &Patch::Apply(&body)).await?;
                backups.patch_status(&name, &params, &Patch::Apply(&status)).await?;
                Ok(())
            })
            .await;
            copied.err().map(|failure| (label, failure.to_string()))
        }
    });
    futures::future::join_all(copies).await.into_iter().flatten().collect()
}

/// The recorded MedusaBackup of a datacenter that finished, read again in its region to copy it
/// where it is missing (None: its region cannot be reached now, or it is gone).
async fn recorded_backup(context: &Context, entry: &DatacenterBackup) -> Option<MedusaBackup> {
    let doing = format!(
        "reading MedusaBackup {}/{} to copy it",
        entry.namespace, entry.job_name
    );
    let read = in_region(context, &entry.k8s_context, doing, |client| async move {
        let backups: Api<MedusaBackup> = Api::namespaced(client, &entry.namespace);
        backups.get_opt(&entry.job_name).await
    })
    .await;
    match read {
        Ok(found) => found.filter(|b| b.status.is_some()),
        Err(failure) => {
            debug!(%failure, "MedusaBackup not read for its copies");
            None
        }
    }
}

/// Makes the copies of every datacenter's MedusaBackup that `status` needs (`recorded`: the
/// backups recorded in this reconcile, by datacenter) and writes in `status` which are still
/// missing; a copy that starts missing says so once (Warning), one made late too (Normal).
async fn make_copies(
    context: &Context,
    job: &MedusaClusterBackupJob,
    status: &mut MedusaClusterBackupJobStatus,
    recorded: &BTreeMap<String, MedusaBackup>,
    places: &[Place],
) {
    let entries = status.datacenters.iter_mut().flatten();
    let work = entries.map(|entry| async move {
        let fresh = recorded.get(&entry.datacenter);
        let to_make = copies_to_make(entry, places, fresh.is_some());
        if to_make.is_empty() {
            return;
        }
        let backup = match fresh {
            Some(backup) => Some(backup.clone()),
            None => recorded_backup(context, entry).await,
        };
        let Some(backup) = backup else {
            return;
        };
        let from = Target {
            datacenter: entry.datacenter.clone(),
            context: entry.k8s_context.clone(),
            namespace: entry.namespace.clone(),
            job_name: entry.job_name.clone(),
        };
        let failures = copy_backup(context, job, &backup, &from, &to_make).await;
        let tried: Vec<String> = to_make.iter().map(|p| place_label(p)).collect();
        let failed: Vec<String> = failures.iter().map(|(label, _)| label.clone()).collect();
        let before = entry.missing_copies.clone().unwrap_or_default();
        for (label, failure) in &failures {
            if !before.contains(label) {
                warn!(cluster_backup = %job.name_any(), %failure, "MedusaBackup not copied");
                let notice = Notice::warning(
                    "BackupNotCopied",
                    "Backup",
                    format!("{failure}; retried while the MedusaClusterBackupJob exists"),
                );
                context.events.publish(job, &notice).await;
            }
        }
        let made: Vec<&String> =
            before.iter().filter(|l| tried.contains(l) && !failed.contains(l)).collect();
        if !made.is_empty() {
            let notice = Notice::normal(
                "BackupCopied",
                "Backup",
                format!(
                    "MedusaBackup {} copied to {}, which missed it",
                    backup.name_any(),
                    made.iter().map(|l| l.as_str()).collect::<Vec<_>>().join(", ")
                ),
            );
            context.events.publish(job, &notice).await;
        }
        entry.missing_copies = still_missing(Some(before.as_slice()), &tried, &failed);
    });
    futures::future::join_all(work).await;
}

/// A job that finished: only its missing copies are retried, every [`COPY_RETRY`] while any is.
async fn retry_copies(
    job: &MedusaClusterBackupJob,
    api: &Api<MedusaClusterBackupJob>,
    context: &Context,
) -> Result<Action, ReconcileError> {
    let mut status = job.status.clone().unwrap_or_default();
    let missing = |status: &MedusaClusterBackupJobStatus| {
        (status.datacenters.iter().flatten()).any(|e| e.missing_copies.is_some())
    };
    if !missing(&status) {
        return Ok(Action::await_change());
    }
    let places = match locate(context, job).await? {
        Ok(located) => places(&located),
        Err(_) => return Ok(Action::requeue(COPY_RETRY)),
    };
    make_copies(context, job, &mut status, &BTreeMap::new(), &places).await;
    write_status(api, job, &status).await?;
    Ok(match missing(&status) {
        true => Action::requeue(COPY_RETRY),
        false => Action::await_change(),
    })
}

async fn write_status(
    api: &Api<MedusaClusterBackupJob>,
    job: &MedusaClusterBackupJob,
    status: &MedusaClusterBackupJobStatus,
) -> Result<(), ReconcileError> {
    if job.status.as_ref() == Some(status) {
        return Ok(());
    }
    let body = json!({
        "apiVersion": MedusaClusterBackupJob::api_version(&()),
        "kind": MedusaClusterBackupJob::kind(&()),
        "status": status,
    });
    api.patch_status(
        &job.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map(drop)
    .map_err(hub_error(job, "writing the status"))
}

async fn back_up(
    job: &MedusaClusterBackupJob,
    api: &Api<MedusaClusterBackupJob>,
    context: &Context,
) -> Result<Action, ReconcileError> {
    if job.status.as_ref().is_some_and(|s| s.finish_time.is_some()) {
        return retry_copies(job, api, context).await;
    }
    let now = Timestamp::now();
    let generation = job.metadata.generation;
    let targets = locate(context, job)
        .await?
        .and_then(|located| select(job, &located).map(|targets| (targets, places(&located))));
    let (targets, places) = match targets {
        Ok(found) => found,
        Err(why) => {
            let was_invalid =
                job.status.as_ref().is_some_and(|s| condition(s, CONDITION_INVALID).is_some());
            if !was_invalid {
                let notice = Notice::warning("InvalidSpec", "Validate", why.clone());
                context.events.publish(job, &notice).await;
            }
            write_status(
                api,
                job,
                &invalid(job.status.as_ref(), &why, generation, now),
            )
            .await?;
            return Ok(Action::requeue(INVALID_RETRY));
        }
    };
    let before = job.status.clone().unwrap_or_default();
    let previous_entries = before.datacenters.clone().unwrap_or_default();
    let observations = targets.iter().map(|target| {
        // A datacenter that finished is not asked again.
        let done = previous_entries
            .iter()
            .find(|e| e.datacenter == target.datacenter && e.phase.is_finished())
            .cloned();
        async move {
            match done {
                Some(_) => None,
                None => Some(observe(context, job, target).await),
            }
        }
    });
    let seen = futures::future::join_all(observations).await;
    let mut observed = BTreeMap::new();
    let mut recorded = BTreeMap::new();
    for (target, seen) in targets.iter().zip(seen) {
        // Finished before: [`fold`] keeps its entry.
        let Some((observation, backup, created)) = seen else {
            continue;
        };
        if created {
            let notice = Notice::normal(
                "BackupJobCreated",
                "Backup",
                format!(
                    "Created MedusaBackupJob {}/{} for datacenter {}{}",
                    target.namespace,
                    target.job_name,
                    target.datacenter,
                    match target.context.as_str() {
                        "" => String::new(),
                        region => format!(" in context {region}"),
                    }
                ),
            );
            context.events.publish(job, &notice).await;
        }
        if let Some(backup) = backup {
            recorded.insert(target.datacenter.clone(), backup);
        }
        observed.insert(target.datacenter.clone(), observation);
    }
    let mut status = fold(
        job.status.as_ref(),
        &targets,
        &observed,
        generation,
        now,
        MISSED_REGION_GRACE,
    );
    // Each backup recorded just now goes to every other region of the cluster; copies missed
    // before are tried again.
    make_copies(context, job, &mut status, &recorded, &places).await;
    // Events for what changed: a region lost, the end.
    for entry in status.datacenters.iter().flatten() {
        let was_unreachable = previous_entries
            .iter()
            .any(|e| e.datacenter == entry.datacenter && e.phase == DatacenterPhase::Unreachable);
        if entry.phase == DatacenterPhase::Unreachable && !was_unreachable {
            let notice = Notice::warning(
                "RegionUnreachable",
                "Backup",
                format!(
                    "datacenter {}: {}",
                    describe(entry),
                    entry.message.as_deref().unwrap_or("no answer")
                ),
            );
            context.events.publish(job, &notice).await;
        }
    }
    let finished = status.finish_time.is_some();
    if finished {
        let (warning, reason, message) = match condition(&status, CONDITION_FAILED) {
            Some(c) => (true, "BackupFailed", c.message.clone()),
            None => match condition(&status, CONDITION_COMPLETE) {
                Some(c) if c.reason == "RegionsMissed" => {
                    (true, "RegionsMissed", c.message.clone())
                }
                Some(c) => (false, "BackupFinished", c.message.clone()),
                None => (false, "BackupFinished", String::new()),
            },
        };
        let notice = match warning {
            true => Notice::warning(reason, "Backup", message),
            false => Notice::normal(reason, "Backup", message),
        };
        context.events.publish(job, &notice).await;
    }
    let unreachable = status
        .datacenters
        .iter()
        .flatten()
        .filter(|e| e.phase == DatacenterPhase::Unreachable)
        .count();
    context.metrics.region_failures(
        CONTROLLER,
        std::iter::repeat_n(
            crate::clusters::FailureCategory::RegionUnavailable,
            unreachable,
        ),
    );
    write_status(api, job, &status).await?;
    let missing = (status.datacenters.iter().flatten()).any(|e| e.missing_copies.is_some());
    Ok(match (finished, missing) {
        (false, _) => Action::requeue(POLL),
        (true, true) => Action::requeue(COPY_RETRY),
        (true, false) => Action::await_change(),
    })
}

/// Deletion: the MedusaBackupJobs made for `job` go, in every region and namespace of the
/// cluster (found by label). A region that cannot be reached holds the deletion, retried.
async fn cleanup(
    job: &MedusaClusterBackupJob,
    context: &Context,
) -> Result<Action, ReconcileError> {
    let located = match locate(context, job).await? {
        Ok(located) => located,
        Err(_) => return Ok(Action::await_change()),
    };
    let selector = format!("{CLUSTER_BACKUP_LABEL}={}", job.name_any());
    let deletions = places(&located).into_iter().map(|place| {
        let selector = selector.clone();
        let doing = format!(
            "deleting the MedusaBackupJobs of MedusaClusterBackupJob {} in namespace {}",
            job.name_any(),
            place.namespace
        );
        async move {
            in_region(context, &place.context, doing, |client| async move {
                let jobs: Api<MedusaBackupJob> = Api::namespaced(client, &place.namespace);
                for found in jobs.list(&ListParams::default().labels(&selector)).await?.items {
                    match jobs.delete(&found.name_any(), &DeleteParams::default()).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(status)) if status.is_not_found() => {}
                        Err(error) => return Err(error),
                    }
                }
                Ok(())
            })
            .await
        }
    });
    let failures: Vec<String> = futures::future::join_all(deletions)
        .await
        .into_iter()
        .filter_map(|r| r.err().map(|f| f.to_string()))
        .collect();
    if failures.is_empty() {
        return Ok(Action::await_change());
    }
    Err(ReconcileError::CleanupPending {
        namespace: job.namespace().unwrap_or_default(),
        name: job.name_any(),
        pending: failures.join("; "),
    })
}

#[cfg(test)]
mod tests;
