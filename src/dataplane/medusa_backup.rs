//! The MedusaBackupJob controller, as k8ssandra-operator's (`medusabackupjob_controller.go`): it
//! runs in every mode on the objects of the cluster it runs in, and acts on the pods of the
//! CassandraDatacenter `spec.cassandraDatacenter` names in the job's namespace.
//!
//! A job goes through these steps, one reconcile each, its status telling where it is:
//! 1. no `startTime`: `startTime` is written, then each Cassandra pod's Medusa is asked for
//!    `AsyncBackup` under the job's name (pods found by cass-operator's labels, reached at their
//!    IP on the gRPC port); a pod whose Medusa refuses goes to `failed` at once, the others to
//!    `inProgress` (one that could not be reached is asked again below);
//! 2. `inProgress`: each pod's `BackupStatus` (every call bounded by a timeout) moves it to
//!    `finished` (SUCCESS) or `failed` (FAILED, UNKNOWN); a pod whose Medusa does not know the
//!    backup (it could not be reached at the start) is asked for `AsyncBackup` again. A pod that
//!    does not answer, or whose backup does not start, stays in progress until
//!    [`MedusaBackupContext::unanswered_limit`] after the start, then fails: it is reported, not
//!    waited for forever;
//! 3. nothing in progress: `finishTime`, the `Complete` or `Failed` condition, and, when no pod
//!    failed, a MedusaBackup of the job's name with the backup's summary as Medusa gives it
//!    (`GetBackup`): nodes, tokens, sizes, status.
//!
//! Pure parts: [`step`], [`fold_statuses`], [`medusa_backup`], [`job_conditions`]; the rest is I/O.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::job_controller::{JobError, JobRef, POLL, WAIT};
use crate::api::cassdc::CassandraDatacenter;
use crate::api::medusa::BackupType;
use crate::api::medusa::backup::{
    MedusaBackup, MedusaBackupNode, MedusaBackupSpec, MedusaBackupStatus,
};
use crate::api::medusa::backup_job::{MedusaBackupJob, MedusaBackupJobStatus};
use crate::api::shared::{CONDITION_TRUE, new_condition};
use crate::cassandra::medusa::{MedusaClient, MedusaError, MedusaPod, NodeBackup, status_name};
use crate::events::{Events, Notice};
use crate::workload::labels::{
    CASSANDRA_CLUSTER_LABEL, CASSANDRA_DATACENTER_LABEL, clean_for_kubernetes,
};
use crate::workload::medusa::{DEFAULT_GRPC_PORT, GRPC_PORT_ANNOTATION, MEDUSA_CONTAINER};

pub const FIELD_MANAGER: &str = "federator-medusa-backup";
pub const CONTROLLER: &str = "medusabackupjob";

/// Condition: every pod of the job finished its backup.
pub const CONDITION_COMPLETE: &str = "Complete";
/// Condition: the job ended with pods whose backup failed or that did not answer.
pub const CONDITION_FAILED: &str = "Failed";

/// How long after its start a job waits for a pod that does not answer.
pub const DEFAULT_UNANSWERED_LIMIT: Duration = Duration::from_secs(600);

impl AsRef<crate::ops::Ops> for MedusaBackupContext {
    fn as_ref(&self) -> &crate::ops::Ops {
        &self.ops
    }
}

pub struct MedusaBackupContext {
    pub client: kube::Client,
    pub events: Events,
    pub medusa: MedusaClient,
    pub unanswered_limit: Duration,
    pub ops: crate::ops::Ops,
    /// Why pods of running jobs failed, by job (the status keeps only their names): for the
    /// `Failed` condition. Lost on a restart; the condition then names the pods only.
    pub reasons: std::sync::Mutex<BTreeMap<(String, String), BTreeMap<String, String>>>,
}

/// What a job does next, from its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Not started: start every pod's backup.
    Start,
    /// Ask these pods how their backup goes.
    Poll(Vec<String>),
    /// Nothing in progress any more: write the finish.
    Finish,
    /// Finished without failures: the MedusaBackup must exist.
    Record,
    /// Finished with failures: nothing more.
    Done,
}

/// Pure: the next step of a job with `status`.
pub fn step(status: Option<&MedusaBackupJobStatus>) -> Step {
    let Some(status) = status.filter(|s| s.start_time.is_some()) else {
        return Step::Start;
    };
    // Started but no pod recorded: the start was interrupted before its second status write;
    // it starts again (a pod that had started refuses the name twice and is reported failed).
    if status.finish_time.is_none()
        && status.in_progress.is_none()
        && status.finished.is_none()
        && status.failed.is_none()
    {
        return Step::Start;
    }
    if status.finish_time.is_some() {
        return match status.failed.as_ref().is_some_and(|f| !f.is_empty()) {
            true => Step::Done,
            false => Step::Record,
        };
    }
    match status.in_progress.as_ref().filter(|p| !p.is_empty()) {
        Some(pods) => Step::Poll(pods.clone()),
        None => Step::Finish,
    }
}

/// What a pod answered to `BackupStatus`, or why it did not.
pub type Answer = Result<NodeBackup, String>;

/// Pure: the job's status after the pods in progress answered (`answers`, by pod; a pod with no
/// answer did not answer), `elapsed` after its start. Failure reasons come back by pod.
pub fn fold_statuses(
    status: &MedusaBackupJobStatus,
    answers: &BTreeMap<String, Answer>,
    elapsed: Duration,
    unanswered_limit: Duration,
) -> (MedusaBackupJobStatus, BTreeMap<String, String>) {
    let mut next = status.clone();
    let mut in_progress = Vec::new();
    let mut finished = status.finished.clone().unwrap_or_default();
    let mut failed = status.failed.clone().unwrap_or_default();
    let mut reasons = BTreeMap::new();
    for pod in status.in_progress.iter().flatten() {
        match answers.get(pod) {
            Some(Ok(NodeBackup::Success)) => finished.push(pod.clone()),
            Some(Ok(NodeBackup::Failed)) => {
                failed.push(pod.clone());
                reasons.insert(pod.clone(), "Medusa reports its backup failed".to_string());
            }
            Some(Ok(NodeBackup::InProgress)) => in_progress.push(pod.clone()),
            unanswered if elapsed >= unanswered_limit => {
                failed.push(pod.clone());
                let why = match unanswered {
                    Some(Err(why)) => why.clone(),
                    _ => "the pod is gone".to_string(),
                };
                reasons.insert(
                    pod.clone(),
                    format!(
                        "no answer {}s after the start: {why}",
                        unanswered_limit.as_secs()
                    ),
                );
            }
            _ => in_progress.push(pod.clone()),
        }
    }
    next.in_progress = Some(in_progress);
    next.finished = Some(finished);
    next.failed = Some(failed);
    (next, reasons)
}

/// Pure: the conditions of a finished job (`reasons`: why pods failed, as far as known).
pub fn job_conditions(
    status: &MedusaBackupJobStatus,
    reasons: &BTreeMap<String, String>,
    generation: Option<i64>,
    now: Time,
) -> Vec<Condition> {
    let mut conditions = status.conditions.clone().unwrap_or_default();
    let failed = status.failed.clone().unwrap_or_default();
    let finished = status.finished.as_ref().map_or(0, Vec::len);
    let total = finished + failed.len();
    let (kind, reason, message) = if failed.is_empty() {
        (
            CONDITION_COMPLETE,
            "BackedUp",
            format!("{finished} of {total} pods backed up"),
        )
    } else {
        let named: Vec<String> = failed
            .iter()
            .map(|pod| match reasons.get(pod) {
                Some(why) => format!("{pod} ({why})"),
                None => pod.clone(),
            })
            .collect();
        (
            CONDITION_FAILED,
            "PodsFailed",
            format!(
                "{} of {total} pods failed: {}",
                failed.len(),
                named.join("; ")
            ),
        )
    };
    crate::api::shared::set_condition(
        &mut conditions,
        new_condition(kind, CONDITION_TRUE, reason, message, generation, now),
    );
    conditions
}

/// Pure: a MedusaBackup's status from Medusa's summary of the backup, with its times.
pub fn backup_status(
    summary: &medusa_grpc::BackupSummary,
    start_time: Option<Time>,
    finish_time: Option<Time>,
) -> MedusaBackupStatus {
    let nodes = (summary.nodes.iter())
        .map(|node| MedusaBackupNode {
            host: Some(node.host.clone()),
            tokens: Some(node.tokens.clone()),
            datacenter: Some(node.datacenter.clone()),
            rack: Some(node.rack.clone()),
        })
        .collect();
    MedusaBackupStatus {
        start_time,
        finish_time,
        total_nodes: Some(summary.total_nodes),
        finished_nodes: Some(summary.finished_nodes),
        nodes: Some(nodes),
        total_files: Some(summary.total_objects),
        total_size: Some(humanize_bytes(
            u64::try_from(summary.total_size).unwrap_or(0),
        )),
        status: Some(status_name(summary.status)),
    }
}

/// Pure: the MedusaBackup a finished job records, from Medusa's summary of the backup.
pub fn medusa_backup(
    job: &MedusaBackupJob,
    summary: &medusa_grpc::BackupSummary,
    finish_time: Option<Time>,
) -> MedusaBackup {
    let start_time = job.status.as_ref().and_then(|s| s.start_time.clone());
    let status = backup_status(summary, start_time, finish_time);
    let mut backup = MedusaBackup::new(
        &job.name_any(),
        MedusaBackupSpec {
            cassandra_datacenter: job.spec.cassandra_datacenter.clone(),
            backup_type: job.spec.backup_type,
        },
    );
    backup.metadata.namespace = job.namespace();
    backup.status = Some(status);
    backup
}

/// Bytes as go-humanize's `Bytes` writes them (SI units), as upstream writes `totalSize`.
pub fn humanize_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 10 {
        return format!("{bytes} B");
    }
    let exponent = ((bytes as f64).ln() / 1000f64.ln()).floor() as usize;
    let exponent = exponent.min(UNITS.len() - 1);
    let value = (bytes as f64 / 1000f64.powi(exponent as i32) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[exponent])
    } else {
        format!("{value:.0} {}", UNITS[exponent])
    }
}

/// The pods of `dc` (found by cass-operator's labels), each with where its Medusa listens and
/// whether it runs a medusa container, sorted by name; a pod without an IP yet has an empty one.
pub async fn datacenter_pods(
    client: &kube::Client,
    dc: &CassandraDatacenter,
) -> Result<Vec<(MedusaPod, bool)>, kube::Error> {
    let namespace = dc.namespace().unwrap_or_default();
    let port = (dc.metadata.annotations.as_ref())
        .and_then(|a| a.get(GRPC_PORT_ANNOTATION))
        .and_then(|p| p.parse().ok())
        .unwrap_or(DEFAULT_GRPC_PORT);
    let dc_name = dc.name_any();
    let datacenter = dc.spec.datacenter_name.clone().filter(|n| !n.is_empty());
    let selector = format!(
        "{CASSANDRA_CLUSTER_LABEL}={},{CASSANDRA_DATACENTER_LABEL}={}",
        clean_for_kubernetes(&dc.spec.cluster_name),
        datacenter.as_deref().unwrap_or(&dc_name),
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let listed = pods.list(&ListParams::default().labels(&selector)).await?;
    let mut found: Vec<(MedusaPod, bool)> = listed
        .items
        .into_iter()
        .map(|pod| {
            let has_medusa =
                (pod.spec.iter()).flat_map(|s| &s.containers).any(|c| c.name == MEDUSA_CONTAINER);
            let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
            (
                MedusaPod {
                    name: pod.name_any(),
                    ip,
                    port,
                },
                has_medusa,
            )
        })
        .collect();
    found.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    Ok(found)
}

fn now() -> Time {
    Time(Timestamp::now())
}

struct Job<'a> {
    object: &'a MedusaBackupJob,
    id: JobRef,
    context: &'a MedusaBackupContext,
}

impl Job<'_> {
    fn api_error(&self, action: impl Into<String>) -> impl FnOnce(kube::Error) -> JobError {
        self.id.api_error(action)
    }

    async fn write_status(&self, status: &MedusaBackupJobStatus) -> Result<(), JobError> {
        (self.id).write_status::<MedusaBackupJob>(&self.context.client, FIELD_MANAGER, status).await
    }

    async fn publish(&self, notice: Notice) {
        self.context.events.publish(self.object, &notice).await;
    }

    /// The datacenter's pods, with where their Medusa listens (pods without an IP yet are
    /// listed with none). None when the datacenter does not exist.
    /// The datacenter's pods, once the datacenter owns the job; `None` without a datacenter.
    async fn pods(&self) -> Result<Option<Owned>, JobError> {
        let client = self.context.client.clone();
        let datacenters: Api<CassandraDatacenter> =
            Api::namespaced(client.clone(), &self.id.namespace);
        let dc_name = &self.object.spec.cassandra_datacenter;
        let Some(dc) = datacenters
            .get_opt(dc_name)
            .await
            .map_err(self.api_error(format!("reading CassandraDatacenter {dc_name}")))?
        else {
            return Ok(None);
        };
        if (self.id).own_by_datacenter(&client, FIELD_MANAGER, self.object, &dc).await? {
            return Ok(Some(Owned::Now));
        }
        datacenter_pods(&client, &dc)
            .await
            .map(|pods| Some(Owned::Already(pods)))
            .map_err(self.api_error("listing the datacenter's pods"))
    }

    async fn start(&self, pods: &[(MedusaPod, bool)]) -> Result<Action, JobError> {
        if pods.is_empty() {
            return Ok(Action::requeue(WAIT));
        }
        if let Some((pod, _)) = pods.iter().find(|(_, medusa)| !medusa) {
            let message = format!(
                "pod {} runs no medusa container: set spec.medusa in the K8ssandraCluster",
                pod.name
            );
            self.publish(Notice::warning("MedusaNotDeployed", "Backup", message)).await;
            return Ok(Action::requeue(WAIT));
        }
        let started = MedusaBackupJobStatus {
            start_time: Some(now()),
            ..Default::default()
        };
        self.write_status(&started).await?;
        let full = self.object.spec.backup_type() == BackupType::Full;
        let calls = pods.iter().map(|(pod, _)| async move {
            let result = match pod.ip.is_empty() {
                true => Err(None),
                false => {
                    (self.context.medusa).start_backup(pod, &self.id.name, full).await.map_err(Some)
                }
            };
            (pod.name.clone(), result)
        });
        let mut status = started;
        let (mut in_progress, mut failed, mut reasons) = (Vec::new(), Vec::new(), BTreeMap::new());
        for (pod, result) in join_all(calls).await {
            match result {
                Ok(()) => in_progress.push(pod),
                // Not reached (yet): asked again while it is polled.
                Err(None | Some(MedusaError::Unreachable { .. })) => in_progress.push(pod),
                Err(Some(refused)) => {
                    reasons.insert(
                        pod.clone(),
                        format!("the backup could not start: {refused}"),
                    );
                    failed.push(pod);
                }
            }
        }
        status.in_progress = Some(in_progress);
        status.failed = Some(failed);
        if !reasons.is_empty() {
            let named: Vec<String> = reasons.iter().map(|(p, why)| format!("{p}: {why}")).collect();
            self.publish(Notice::warning(
                "BackupNotStarted",
                "Backup",
                named.join("; "),
            ))
            .await;
        }
        self.context.add_reasons(&self.id.namespace, &self.id.name, reasons);
        self.write_status(&status).await?;
        self.publish(Notice::normal(
            "BackupStarted",
            "Backup",
            format!("backup {} started on {} pods", self.id.name, pods.len()),
        ))
        .await;
        Ok(Action::requeue(POLL))
    }

    async fn poll(
        &self,
        in_progress: &[String],
        pods: &[(MedusaPod, bool)],
    ) -> Result<Action, JobError> {
        let status = self.object.status.clone().unwrap_or_default();
        let full = self.object.spec.backup_type() == BackupType::Full;
        let medusa = self.context.medusa;
        let calls = in_progress.iter().filter_map(|name| {
            let (pod, _) = pods.iter().find(|(p, _)| &p.name == name)?;
            Some(async move {
                if pod.ip.is_empty() {
                    return (pod.name.clone(), Err("the pod has no IP".to_string()));
                }
                let answer = match medusa.backup_status(pod, &self.id.name).await {
                    Ok(found) => Ok(found),
                    // Its Medusa has no such backup: the start did not reach it.
                    Err(MedusaError::Refused {
                        code: tonic::Code::NotFound,
                        ..
                    }) => match medusa.start_backup(pod, &self.id.name, full).await {
                        Ok(()) => Ok(NodeBackup::InProgress),
                        Err(error) => Err(format!("the backup did not start: {error}")),
                    },
                    Err(error) => Err(error.to_string()),
                };
                (pod.name.clone(), answer)
            })
        });
        let answers: BTreeMap<String, Answer> = join_all(calls).await.into_iter().collect();
        let elapsed = (status.start_time.as_ref())
            .map(|t| Timestamp::now().duration_since(t.0))
            .and_then(|d| Duration::try_from(d).ok())
            .unwrap_or_default();
        let (next, reasons) =
            fold_statuses(&status, &answers, elapsed, self.context.unanswered_limit);
        for (pod, why) in &reasons {
            let message = format!("pod {pod}: {why}");
            self.publish(Notice::warning("PodBackupFailed", "Backup", message)).await;
        }
        self.context.add_reasons(&self.id.namespace, &self.id.name, reasons);
        if next != status {
            self.write_status(&next).await?;
        }
        Ok(
            match next.in_progress.as_ref().is_some_and(|p| !p.is_empty()) {
                true => Action::requeue(POLL),
                false => Action::requeue(Duration::from_millis(100)),
            },
        )
    }

    async fn finish(&self, pods: &[(MedusaPod, bool)]) -> Result<Action, JobError> {
        let mut status = self.object.status.clone().unwrap_or_default();
        status.finish_time = Some(now());
        let reasons = self.context.take_reasons(&self.id.namespace, &self.id.name);
        status.conditions = Some(job_conditions(
            &status,
            &reasons,
            self.object.metadata.generation,
            now(),
        ));
        self.write_status(&status).await?;
        let failed = status.failed.as_ref().is_some_and(|f| !f.is_empty());
        if failed {
            let message = status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == CONDITION_FAILED)
                .map(|c| c.message.clone())
                .unwrap_or_default();
            self.publish(Notice::warning("BackupFailed", "Backup", message)).await;
            return Ok(Action::await_change());
        }
        let mut job = self.object.clone();
        job.status = Some(status);
        self.record(&job, pods).await
    }

    /// Creates the MedusaBackup of a job finished without failures, when it is missing.
    async fn record(
        &self,
        job: &MedusaBackupJob,
        pods: &[(MedusaPod, bool)],
    ) -> Result<Action, JobError> {
        let api: Api<MedusaBackup> =
            Api::namespaced(self.context.client.clone(), &self.id.namespace);
        let existing =
            api.get_opt(&self.id.name).await.map_err(self.api_error("reading the MedusaBackup"))?;
        if existing.is_some_and(|b| b.status.is_some()) {
            return Ok(Action::await_change());
        }
        let finished = job.status.as_ref().and_then(|s| s.finished.clone()).unwrap_or_default();
        let mut why = Vec::new();
        let mut summary = None;
        for (pod, _) in pods.iter().filter(|(p, _)| finished.contains(&p.name) && !p.ip.is_empty())
        {
            match self.context.medusa.backup_summary(pod, &self.id.name).await {
                Ok(found) => {
                    summary = Some(found);
                    break;
                }
                Err(error) => why.push(error.to_string()),
            }
        }
        let Some(summary) = summary else {
            return Err(self.id.medusa_error(format!(
                "no pod gave the summary of backup {}: {}",
                self.id.name,
                why.join("; ")
            )));
        };
        let finish_time = job.status.as_ref().and_then(|s| s.finish_time.clone());
        let backup = medusa_backup(job, &summary, finish_time);
        let mut body = serde_json::to_value(&backup).unwrap_or_default();
        if let Some(object) = body.as_object_mut() {
            object.remove("status");
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(&self.id.name, &params, &Patch::Apply(&body))
            .await
            .map_err(self.api_error("applying the MedusaBackup"))?;
        let status = serde_json::json!({
            "apiVersion": "medusa.k8ssandra.io/v1alpha1",
            "kind": "MedusaBackup",
            "status": backup.status,
        });
        api.patch_status(&self.id.name, &params, &Patch::Apply(&status))
            .await
            .map_err(self.api_error("writing the MedusaBackup's status"))?;
        self.publish(Notice::normal(
            "BackupFinished",
            "Backup",
            format!(
                "backup {} finished on {} of {} nodes",
                self.id.name, summary.finished_nodes, summary.total_nodes
            ),
        ))
        .await;
        Ok(Action::await_change())
    }
}

impl MedusaBackupContext {
    fn add_reasons(&self, namespace: &str, name: &str, reasons: BTreeMap<String, String>) {
        if reasons.is_empty() {
            return;
        }
        let mut table = self.reasons.lock().unwrap_or_else(|p| p.into_inner());
        (table.entry((namespace.to_string(), name.to_string())).or_default()).extend(reasons);
    }

    fn take_reasons(&self, namespace: &str, name: &str) -> BTreeMap<String, String> {
        let mut table = self.reasons.lock().unwrap_or_else(|p| p.into_inner());
        table.remove(&(namespace.to_string(), name.to_string())).unwrap_or_default()
    }
}

/// Whether the job was owned by its datacenter before this reconcile (with the pods), or was
/// made so now.
enum Owned {
    Already(Vec<(MedusaPod, bool)>),
    Now,
}

/// One reconcile of a job (run by [`super::job_controller::run`]).
pub(super) async fn reconcile(
    job: Arc<MedusaBackupJob>,
    context: Arc<MedusaBackupContext>,
) -> Result<Action, JobError> {
    let id = JobRef::of(job.as_ref())?;
    // A start that looks interrupted may only be a cached copy older than the start's second
    // status write: read the job afresh before starting its backups again.
    let started_without_pods = (job.status.as_ref())
        .is_some_and(|s| s.start_time.is_some() && s.finish_time.is_none())
        && step(job.status.as_ref()) == Step::Start;
    let job = match started_without_pods {
        true => {
            let api: Api<MedusaBackupJob> = Api::namespaced(context.client.clone(), &id.namespace);
            match api.get_opt(&id.name).await.map_err(id.api_error("reading the job"))? {
                Some(fresh) => Arc::new(fresh),
                None => return Ok(Action::await_change()),
            }
        }
        false => job,
    };
    let this = Job {
        object: &job,
        id,
        context: &context,
    };
    let next = step(job.status.as_ref());
    if next == Step::Done {
        return Ok(Action::await_change());
    }
    let pods = match this.pods().await? {
        Some(Owned::Already(pods)) => Some(pods),
        // Made owned just now: the next reconcile, on the job as written, goes on.
        Some(Owned::Now) => return Ok(Action::requeue(Duration::from_millis(100))),
        None => None,
    };
    let Some(pods) = pods else {
        let message = format!(
            "CassandraDatacenter {} does not exist in namespace {}",
            job.spec.cassandra_datacenter, this.id.namespace
        );
        this.publish(Notice::warning("DatacenterNotFound", "Backup", message)).await;
        // A finished job whose datacenter is gone has no pod to ask for the summary: it stays
        // without its MedusaBackup rather than being retried forever.
        return Ok(match next {
            Step::Record => Action::await_change(),
            _ => Action::requeue(WAIT),
        });
    };
    match next {
        Step::Start => this.start(&pods).await,
        Step::Poll(in_progress) => this.poll(&in_progress, &pods).await,
        Step::Finish => this.finish(&pods).await,
        Step::Record => this.record(&job, &pods).await,
        Step::Done => Ok(Action::await_change()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("valid timestamp"))
    }

    fn running(pods: &[&str]) -> MedusaBackupJobStatus {
        MedusaBackupJobStatus {
            start_time: Some(time(1_000)),
            in_progress: Some(pods.iter().map(|p| p.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn a_job_goes_from_start_through_polling_to_its_record() {
        assert_eq!(step(None), Step::Start);
        assert_eq!(step(Some(&MedusaBackupJobStatus::default())), Step::Start);
        assert_eq!(step(Some(&running(&["a"]))), Step::Poll(vec!["a".into()]));
        let interrupted = MedusaBackupJobStatus {
            start_time: Some(time(1_000)),
            ..Default::default()
        };
        assert_eq!(step(Some(&interrupted)), Step::Start);
        let mut done = running(&[]);
        assert_eq!(step(Some(&done)), Step::Finish);
        done.finish_time = Some(time(2_000));
        assert_eq!(step(Some(&done)), Step::Record);
        done.failed = Some(vec!["b".into()]);
        assert_eq!(step(Some(&done)), Step::Done);
    }

    #[test]
    fn answers_move_pods_and_silence_fails_them_only_after_the_limit() {
        let status = running(&["a", "b", "c", "d"]);
        let answers = BTreeMap::from([
            ("a".to_string(), Ok(NodeBackup::Success)),
            ("b".to_string(), Ok(NodeBackup::InProgress)),
            ("c".to_string(), Ok(NodeBackup::Failed)),
            ("d".to_string(), Err("connection refused".to_string())),
        ]);
        let limit = Duration::from_secs(600);
        let (early, reasons) = fold_statuses(&status, &answers, Duration::from_secs(5), limit);
        assert_eq!(early.finished, Some(vec!["a".into()]));
        assert_eq!(early.failed, Some(vec!["c".into()]));
        assert_eq!(early.in_progress, Some(vec!["b".into(), "d".into()]));
        assert!(reasons["c"].contains("failed"));

        let (late, reasons) = fold_statuses(&early, &BTreeMap::new(), limit, limit);
        assert_eq!(late.failed, Some(vec!["c".into(), "b".into(), "d".into()]));
        assert_eq!(late.in_progress, Some(vec![]));
        assert!(
            reasons["d"].contains("no answer 600s after the start"),
            "{reasons:?}"
        );
    }

    #[test]
    fn a_finished_job_is_complete_or_failed_naming_the_pods_and_why() {
        let mut status = running(&[]);
        status.finished = Some(vec!["a".into(), "b".into()]);
        let ok = job_conditions(&status, &BTreeMap::new(), Some(1), time(3));
        assert_eq!(ok.len(), 1);
        assert_eq!(
            (ok[0].type_.as_str(), ok[0].status.as_str()),
            ("Complete", "True")
        );
        status.failed = Some(vec!["c".into()]);
        let reasons = BTreeMap::from([("c".to_string(), "no answer".to_string())]);
        let failed = job_conditions(&status, &reasons, Some(1), time(3));
        let condition = failed.iter().find(|c| c.type_ == "Failed").expect("Failed");
        assert_eq!(condition.message, "1 of 3 pods failed: c (no answer)");
    }

    #[test]
    fn the_medusa_backup_carries_medusas_summary_as_upstream_writes_it() {
        let mut job = MedusaBackupJob::new(
            "nightly",
            crate::api::medusa::backup_job::MedusaBackupJobSpec {
                cassandra_datacenter: "dc1".into(),
                backup_type: Some(BackupType::Full),
            },
        );
        job.metadata.namespace = Some("ns".into());
        job.status = Some(running(&[]));
        let summary = medusa_grpc::BackupSummary {
            backup_name: "nightly".into(),
            total_nodes: 3,
            finished_nodes: 3,
            nodes: vec![medusa_grpc::BackupNode {
                host: "demo-dc1-default-sts-0".into(),
                tokens: vec![-42],
                datacenter: "dc1".into(),
                rack: "default".into(),
            }],
            status: medusa_grpc::StatusType::Success as i32,
            total_size: 123_456,
            total_objects: 7,
            ..Default::default()
        };
        let backup = medusa_backup(&job, &summary, Some(time(2_000)));
        assert_eq!(backup.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(backup.spec.cassandra_datacenter, "dc1");
        let status = backup.status.expect("status");
        assert_eq!(
            (status.total_nodes, status.finished_nodes),
            (Some(3), Some(3))
        );
        assert_eq!(status.status.as_deref(), Some("SUCCESS"));
        // 123.5 rounds to even, as Go's %.0f does.
        assert_eq!(status.total_size.as_deref(), Some("124 kB"));
        assert_eq!(status.total_files, Some(7));
        assert_eq!(status.start_time, Some(time(1_000)));
        let node = &status.nodes.expect("nodes")[0];
        assert_eq!(node.tokens, Some(vec![-42]));
    }

    #[test]
    fn sizes_are_written_as_go_humanize_writes_them() {
        assert_eq!(humanize_bytes(0), "0 B");
        assert_eq!(humanize_bytes(9), "9 B");
        assert_eq!(humanize_bytes(82_854_982), "83 MB");
        assert_eq!(humanize_bytes(1_500), "1.5 kB");
        assert_eq!(humanize_bytes(1_000_000_000), "1.0 GB");
    }
}
