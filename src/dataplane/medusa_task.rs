//! The MedusaTask controller, as k8ssandra-operator's (`medusatask_controller.go`): in every mode,
//! on the tasks of the cluster it runs in, acting on the pods of the CassandraDatacenter
//! `spec.cassandraDatacenter` names in the task's namespace. A task runs once: a finished one
//! (`finishTime`) is left alone.
//!
//! - `purge`: `PurgeBackups` on every pod (each Medusa applies its medusa.ini's
//!   `max_backup_count` / `max_backup_age`); each pod's counts go to `status.finished`, a pod
//!   that failed to `status.failed`; then a `sync` task `<name>-sync` is created, as upstream
//!   does, so that the MedusaBackups follow the bucket.
//! - `sync`: `GetBackups` from the first pod that answers; a MedusaBackup is created for each
//!   successful backup the bucket has and the namespace lacks, and the MedusaBackups of this
//!   datacenter the bucket no longer has are deleted, with their MedusaBackupJob.
//! - `prepare_restore`: `PrepareRestore` of `backupName` under `restoreKey` on every pod.
//!
//! Each ends with `finishTime` and the `Complete` or `Failed` condition, told by Events too.
//!
//! Pure parts: [`sync_plan`], [`synced_backup`], [`task_result`], [`task_conditions`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::job_controller::{JobError, JobRef, WAIT};
use super::medusa_backup::{backup_status, datacenter_pods};
use crate::api::cassdc::CassandraDatacenter;
use crate::api::medusa::BackupType;
use crate::api::medusa::backup::{MedusaBackup, MedusaBackupSpec};
use crate::api::medusa::backup_job::MedusaBackupJob;
use crate::api::medusa::task::{
    MedusaOperation, MedusaTask, MedusaTaskSpec, MedusaTaskStatus, TaskResult,
};
use crate::api::shared::{CONDITION_TRUE, new_condition, set_condition};
use crate::cassandra::medusa::{MedusaClient, MedusaPod};
use crate::events::{Events, Notice};

pub const FIELD_MANAGER: &str = "federator-medusa-task";
pub const CONTROLLER: &str = "medusatask";

/// Condition: every pod did its part.
pub const CONDITION_COMPLETE: &str = "Complete";
/// Condition: the task ended with pods that failed.
pub const CONDITION_FAILED: &str = "Failed";

pub struct MedusaTaskContext {
    pub client: kube::Client,
    pub events: Events,
    pub medusa: MedusaClient,
    pub ops: crate::ops::Ops,
}

impl AsRef<crate::ops::Ops> for MedusaTaskContext {
    fn as_ref(&self) -> &crate::ops::Ops {
        &self.ops
    }
}

/// What a sync does to the namespace's MedusaBackups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// Backups in the bucket (finished) without a MedusaBackup: created.
    pub create: Vec<String>,
    /// MedusaBackups of the task's datacenter whose backup the bucket no longer has: deleted.
    pub delete: Vec<String>,
}

/// Pure: what a sync of `datacenter` does, from the bucket's backups (name, finished) and the
/// namespace's MedusaBackups (name, datacenter).
pub fn sync_plan(
    bucket: &[(String, bool)],
    local: &[(String, String)],
    datacenter: &str,
) -> SyncPlan {
    let in_bucket: BTreeSet<&str> = bucket.iter().map(|(n, _)| n.as_str()).collect();
    let local_names: BTreeSet<&str> = local.iter().map(|(n, _)| n.as_str()).collect();
    SyncPlan {
        create: (bucket.iter())
            .filter(|(name, finished)| *finished && !local_names.contains(name.as_str()))
            .map(|(name, _)| name.clone())
            .collect(),
        delete: (local.iter())
            .filter(|(name, dc)| dc == datacenter && !in_bucket.contains(name.as_str()))
            .map(|(name, _)| name.clone())
            .collect(),
    }
}

/// Pure: the MedusaBackup a sync creates for a backup found in the bucket (as upstream's
/// `createMedusaBackup`: times from Medusa's summary, in the task's datacenter).
pub fn synced_backup(
    summary: &medusa_grpc::BackupSummary,
    datacenter: &str,
    namespace: &str,
) -> MedusaBackup {
    let time = |seconds: i64| Timestamp::from_second(seconds).ok().map(Time);
    let backup_type = match summary.backup_type.as_str() {
        "full" => Some(BackupType::Full),
        "differential" => Some(BackupType::Differential),
        _ => None,
    };
    let mut backup = MedusaBackup::new(
        &summary.backup_name,
        MedusaBackupSpec {
            cassandra_datacenter: datacenter.to_string(),
            backup_type,
        },
    );
    backup.metadata.namespace = Some(namespace.to_string());
    backup.status = Some(backup_status(
        summary,
        time(summary.start_time),
        time(summary.finish_time),
    ));
    backup
}

/// Pure: one pod's result of a purge (its counts) or of another operation (its name only).
pub fn task_result(pod: &str, purged: Option<&medusa_grpc::PurgeBackupsResponse>) -> TaskResult {
    TaskResult {
        pod_name: Some(pod.to_string()),
        nb_backups_purged: purged.map(|p| i64::from(p.nb_backups_purged)),
        nb_objects_purged: purged.map(|p| i64::from(p.nb_objects_purged)),
        total_purged_size: purged.map(|p| p.total_purged_size),
        total_objects_within_gc_grace: purged.map(|p| i64::from(p.total_objects_within_gc_grace)),
    }
}

fn operation_word(operation: MedusaOperation) -> &'static str {
    match operation {
        MedusaOperation::Sync => "sync",
        MedusaOperation::Purge => "purge",
        MedusaOperation::PrepareRestore => "prepare_restore",
    }
}

/// Pure: the conditions of a finished task (`reasons`: why pods failed).
pub fn task_conditions(
    status: &MedusaTaskStatus,
    operation: MedusaOperation,
    reasons: &BTreeMap<String, String>,
    generation: Option<i64>,
    now: Time,
) -> Vec<Condition> {
    let mut conditions = status.conditions.clone().unwrap_or_default();
    let failed = status.failed.clone().unwrap_or_default();
    let finished = status.finished.as_ref().map_or(0, Vec::len);
    let word = operation_word(operation);
    let condition = if failed.is_empty() {
        let purged: i64 =
            (status.finished.iter().flatten()).filter_map(|r| r.nb_backups_purged).sum();
        let message = match operation {
            MedusaOperation::Purge => {
                format!("{word} done on {finished} pods; {purged} node backups purged")
            }
            _ => format!("{word} done on {finished} pods"),
        };
        new_condition(
            CONDITION_COMPLETE,
            CONDITION_TRUE,
            "Done",
            message,
            generation,
            now,
        )
    } else {
        let named: Vec<String> = (failed.iter())
            .map(|pod| match reasons.get(pod) {
                Some(why) => format!("{pod} ({why})"),
                None => pod.clone(),
            })
            .collect();
        let message = format!(
            "{word} failed on {} of {} pods: {}",
            failed.len(),
            failed.len() + finished,
            named.join("; ")
        );
        new_condition(
            CONDITION_FAILED,
            CONDITION_TRUE,
            "PodsFailed",
            message,
            generation,
            now,
        )
    };
    set_condition(&mut conditions, condition);
    conditions
}

fn now() -> Time {
    Time(Timestamp::now())
}

struct Task<'a> {
    object: &'a MedusaTask,
    id: JobRef,
    context: &'a MedusaTaskContext,
}

impl Task<'_> {
    async fn write_status(&self, status: &MedusaTaskStatus) -> Result<(), JobError> {
        (self.id).write_status::<MedusaTask>(&self.context.client, FIELD_MANAGER, status).await
    }

    async fn publish(&self, notice: Notice) {
        self.context.events.publish(self.object, &notice).await;
    }

    /// Writes the end of the task: `finishTime`, its condition and an Event.
    async fn finish(
        &self,
        mut status: MedusaTaskStatus,
        reasons: &BTreeMap<String, String>,
    ) -> Result<Action, JobError> {
        let operation = self.object.spec.operation;
        status.in_progress = Some(Vec::new());
        status.finish_time = Some(now());
        let generation = self.object.metadata.generation;
        status.conditions = Some(task_conditions(
            &status,
            operation,
            reasons,
            generation,
            now(),
        ));
        self.write_status(&status).await?;
        let condition = (status.conditions.iter().flatten()).find(|c| {
            c.status == CONDITION_TRUE
                && (c.type_ == CONDITION_COMPLETE || c.type_ == CONDITION_FAILED)
        });
        if let Some(condition) = condition {
            let notice = match condition.type_ == CONDITION_FAILED {
                true => Notice::warning("TaskFailed", "Task", condition.message.clone()),
                false => Notice::normal("TaskFinished", "Task", condition.message.clone()),
            };
            self.publish(notice).await;
        }
        Ok(Action::await_change())
    }

    /// Purge or prepare_restore on every pod (those still in progress when the task was
    /// interrupted, else all): each pod's answer into the status.
    async fn on_every_pod(&self, pods: &[MedusaPod]) -> Result<Action, JobError> {
        let mut status = self.object.status.clone().unwrap_or_default();
        let targets: Vec<&MedusaPod> = match status.start_time.is_some() {
            true => {
                let waiting = status.in_progress.clone().unwrap_or_default();
                pods.iter().filter(|p| waiting.contains(&p.name)).collect()
            }
            false => {
                status.start_time = Some(now());
                status.in_progress = Some(pods.iter().map(|p| p.name.clone()).collect());
                self.write_status(&status).await?;
                let word = operation_word(self.object.spec.operation);
                let note = format!("{word} started on {} pods", pods.len());
                self.publish(Notice::normal("TaskStarted", "Task", note)).await;
                pods.iter().collect()
            }
        };
        let spec = &self.object.spec;
        let medusa = self.context.medusa;
        let calls = targets.iter().map(|pod| async move {
            let answer = match (spec.operation, pod.ip.is_empty()) {
                (_, true) => Err("the pod has no IP".to_string()),
                (MedusaOperation::Purge, false) => {
                    medusa.purge_backups(pod).await.map(Some).map_err(|e| e.to_string())
                }
                (_, false) => medusa
                    .prepare_restore(
                        pod,
                        spec.backup_name.as_deref().unwrap_or_default(),
                        "",
                        spec.restore_key.as_deref().unwrap_or_default(),
                    )
                    .await
                    .map(|()| None)
                    .map_err(|e| e.to_string()),
            };
            (pod.name.clone(), answer)
        });
        let mut finished = status.finished.clone().unwrap_or_default();
        let mut failed = status.failed.clone().unwrap_or_default();
        let mut reasons = BTreeMap::new();
        for (pod, answer) in join_all(calls).await {
            match answer {
                Ok(purged) => finished.push(task_result(&pod, purged.as_ref())),
                Err(why) => {
                    reasons.insert(pod.clone(), why);
                    failed.push(pod);
                }
            }
        }
        // Pods gone since the start are failed too: nothing answered for them.
        let answered: BTreeSet<&String> = targets.iter().map(|p| &p.name).collect();
        for pod in status.in_progress.iter().flatten().filter(|p| !answered.contains(p)) {
            reasons.insert(pod.clone(), "the pod is gone".to_string());
            failed.push(pod.clone());
        }
        status.finished = Some(finished);
        status.failed = Some(failed);
        if spec.operation == MedusaOperation::Purge {
            self.schedule_sync().await?;
        }
        self.finish(status, &reasons).await
    }

    /// The `<name>-sync` task a purge leaves behind, as upstream's `scheduleSyncForPurge`.
    async fn schedule_sync(&self) -> Result<(), JobError> {
        let name = format!("{}-sync", self.id.name);
        let api: Api<MedusaTask> = Api::namespaced(self.context.client.clone(), &self.id.namespace);
        let mut sync = MedusaTask::new(
            &name,
            MedusaTaskSpec {
                operation: MedusaOperation::Sync,
                cassandra_datacenter: self.object.spec.cassandra_datacenter.clone(),
                backup_name: None,
                restore_key: None,
            },
        );
        sync.metadata.namespace = Some(self.id.namespace.clone());
        sync.metadata.labels = self.object.metadata.labels.clone();
        match api.create(&PostParams::default(), &sync).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(response)) if response.code == 409 => Ok(()),
            Err(error) => Err(self.id.api_error(format!("creating MedusaTask {name}"))(
                error,
            )),
        }
    }

    /// Makes the namespace's MedusaBackups follow the bucket, from the first pod that answers.
    async fn sync(&self, pods: &[MedusaPod]) -> Result<Action, JobError> {
        let mut status = self.object.status.clone().unwrap_or_default();
        if status.start_time.is_none() {
            status.start_time = Some(now());
            self.write_status(&status).await?;
        }
        let mut reasons = BTreeMap::new();
        let mut found = None;
        for pod in pods.iter().filter(|p| !p.ip.is_empty()) {
            match self.context.medusa.backups(pod).await {
                Ok(backups) => {
                    found = Some((pod, backups));
                    break;
                }
                Err(error) => {
                    reasons.insert(pod.name.clone(), error.to_string());
                }
            }
        }
        let Some((pod, remote)) = found else {
            status.failed = Some(reasons.keys().cloned().collect());
            if reasons.is_empty() {
                return Ok(Action::requeue(WAIT));
            }
            return self.finish(status, &reasons).await;
        };
        let client = &self.context.client;
        let namespace = &self.id.namespace;
        let backups: Api<MedusaBackup> = Api::namespaced(client.clone(), namespace);
        let local = backups
            .list(&ListParams::default())
            .await
            .map_err(self.id.api_error("listing MedusaBackups"))?;
        let local: Vec<(String, String)> = (local.items.iter())
            .map(|b| (b.name_any(), b.spec.cassandra_datacenter.clone()))
            .collect();
        let in_bucket: Vec<(String, bool)> = (remote.iter())
            .map(|b| {
                (
                    b.backup_name.clone(),
                    b.status == medusa_grpc::StatusType::Success as i32,
                )
            })
            .collect();
        let datacenter = &self.object.spec.cassandra_datacenter;
        let plan = sync_plan(&in_bucket, &local, datacenter);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for name in &plan.create {
            let Some(summary) = remote.iter().find(|b| &b.backup_name == name) else {
                continue;
            };
            let backup = synced_backup(summary, datacenter, namespace);
            let mut body = serde_json::to_value(&backup).unwrap_or_default();
            if let Some(object) = body.as_object_mut() {
                object.remove("status");
            }
            backups
                .patch(name, &params, &Patch::Apply(&body))
                .await
                .map_err(self.id.api_error(format!("creating MedusaBackup {name}")))?;
            let status_body = serde_json::json!({
                "apiVersion": "medusa.k8ssandra.io/v1alpha1",
                "kind": "MedusaBackup",
                "status": backup.status,
            });
            backups
                .patch_status(name, &params, &Patch::Apply(&status_body))
                .await
                .map_err(self.id.api_error(format!("writing MedusaBackup {name}'s status")))?;
        }
        let jobs: Api<MedusaBackupJob> = Api::namespaced(client.clone(), namespace);
        for name in &plan.delete {
            for deleted in [
                backups.delete(name, &DeleteParams::default()).await.map(|_| ()),
                jobs.delete(name, &DeleteParams::default()).await.map(|_| ()),
            ] {
                match deleted {
                    Ok(()) => {}
                    Err(kube::Error::Api(response)) if response.code == 404 => {}
                    Err(error) => {
                        return Err(self.id.api_error(format!("deleting backup {name}"))(error));
                    }
                }
            }
        }
        if !(plan.create.is_empty() && plan.delete.is_empty()) {
            let note = format!(
                "MedusaBackups created: [{}]; deleted: [{}]",
                plan.create.join(", "),
                plan.delete.join(", ")
            );
            self.publish(Notice::normal("BackupsSynced", "Task", note)).await;
        }
        status.finished = Some(vec![task_result(&pod.name, None)]);
        // Pods asked before the one that answered did not fail the sync.
        status.failed = Some(Vec::new());
        self.finish(status, &BTreeMap::new()).await
    }
}

/// One reconcile of a task (run by [`super::job_controller::run`]).
pub(super) async fn reconcile(
    task: Arc<MedusaTask>,
    context: Arc<MedusaTaskContext>,
) -> Result<Action, JobError> {
    let this = Task {
        object: &task,
        id: JobRef::of(task.as_ref())?,
        context: &context,
    };
    let status = task.status.as_ref();
    if status.is_some_and(|s| s.finish_time.is_some()) {
        return Ok(Action::await_change());
    }
    if task.spec.operation == MedusaOperation::PrepareRestore
        && (task.spec.backup_name.as_deref().unwrap_or_default().is_empty()
            || task.spec.restore_key.as_deref().unwrap_or_default().is_empty())
    {
        let why = "prepare_restore needs spec.backupName and spec.restoreKey".to_string();
        let mut status = status.cloned().unwrap_or_default();
        status.start_time.get_or_insert_with(now);
        status.failed = Some(Vec::new());
        let mut conditions = status.conditions.clone().unwrap_or_default();
        set_condition(
            &mut conditions,
            new_condition(
                CONDITION_FAILED,
                CONDITION_TRUE,
                "MissingFields",
                why.clone(),
                task.metadata.generation,
                now(),
            ),
        );
        status.conditions = Some(conditions);
        status.finish_time = Some(now());
        this.write_status(&status).await?;
        this.publish(Notice::warning("TaskFailed", "Task", why)).await;
        return Ok(Action::await_change());
    }
    let datacenters: Api<CassandraDatacenter> =
        Api::namespaced(context.client.clone(), &this.id.namespace);
    let dc_name = &task.spec.cassandra_datacenter;
    let Some(dc) = datacenters
        .get_opt(dc_name)
        .await
        .map_err(this.id.api_error(format!("reading CassandraDatacenter {dc_name}")))?
    else {
        let message = format!(
            "CassandraDatacenter {dc_name} does not exist in namespace {}",
            this.id.namespace
        );
        this.publish(Notice::warning("DatacenterNotFound", "Task", message)).await;
        return Ok(Action::requeue(WAIT));
    };
    let found = datacenter_pods(&context.client, &dc)
        .await
        .map_err(this.id.api_error("listing the datacenter's pods"))?;
    if found.is_empty() {
        return Ok(Action::requeue(WAIT));
    }
    if let Some((pod, _)) = found.iter().find(|(_, medusa)| !medusa) {
        let message = format!(
            "pod {} runs no medusa container: set spec.medusa in the K8ssandraCluster",
            pod.name
        );
        this.publish(Notice::warning("MedusaNotDeployed", "Task", message)).await;
        return Ok(Action::requeue(WAIT));
    }
    let pods: Vec<MedusaPod> = found.into_iter().map(|(pod, _)| pod).collect();
    match task.spec.operation {
        MedusaOperation::Sync => this.sync(&pods).await,
        MedusaOperation::Purge | MedusaOperation::PrepareRestore => this.on_every_pod(&pods).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_creates_what_the_bucket_has_and_deletes_what_it_lost_in_its_datacenter_only() {
        let bucket = vec![
            ("kept".to_string(), true),
            ("only-in-bucket".to_string(), true),
            ("still-running".to_string(), false),
        ];
        let local = vec![
            ("kept".to_string(), "dc1".to_string()),
            ("purged".to_string(), "dc1".to_string()),
            ("other-dc".to_string(), "dc2".to_string()),
        ];
        let plan = sync_plan(&bucket, &local, "dc1");
        assert_eq!(plan.create, vec!["only-in-bucket".to_string()]);
        assert_eq!(plan.delete, vec!["purged".to_string()]);
    }

    #[test]
    fn a_synced_backup_carries_medusas_summary() {
        let summary = medusa_grpc::BackupSummary {
            backup_name: "old".into(),
            start_time: 1_700_000_000,
            finish_time: 1_700_000_060,
            total_nodes: 2,
            finished_nodes: 2,
            status: medusa_grpc::StatusType::Success as i32,
            backup_type: "full".into(),
            total_size: 2_000,
            total_objects: 4,
            ..Default::default()
        };
        let backup = synced_backup(&summary, "dc1", "ns");
        assert_eq!(backup.name_any(), "old");
        assert_eq!(backup.spec.backup_type, Some(BackupType::Full));
        let status = backup.status.expect("status");
        assert_eq!(
            status.start_time.map(|t| t.0.as_second()),
            Some(1_700_000_000)
        );
        assert_eq!(status.status.as_deref(), Some("SUCCESS"));
        assert_eq!(status.total_size.as_deref(), Some("2.0 kB"));
    }

    #[test]
    fn a_purge_reports_each_pods_counts_and_fails_naming_pods() {
        let purged = medusa_grpc::PurgeBackupsResponse {
            nb_backups_purged: 2,
            nb_objects_purged: 10,
            total_purged_size: 1_000,
            total_objects_within_gc_grace: 1,
        };
        let status = MedusaTaskStatus {
            finished: Some(vec![
                task_result("a", Some(&purged)),
                task_result("b", Some(&purged)),
            ]),
            failed: Some(vec![]),
            ..Default::default()
        };
        assert_eq!(
            status.finished.as_ref().expect("finished")[0].nb_backups_purged,
            Some(2)
        );
        let now = Time(Timestamp::from_second(10).expect("time"));
        let ok = task_conditions(
            &status,
            MedusaOperation::Purge,
            &BTreeMap::new(),
            None,
            now.clone(),
        );
        assert_eq!(ok[0].type_, "Complete");
        assert!(
            ok[0].message.contains("4 node backups purged"),
            "{}",
            ok[0].message
        );
        let mut failing = status.clone();
        failing.failed = Some(vec!["c".into()]);
        let reasons = BTreeMap::from([("c".to_string(), "unreachable".to_string())]);
        let failed = task_conditions(&failing, MedusaOperation::Purge, &reasons, None, now);
        let condition = failed.iter().find(|c| c.type_ == "Failed").expect("Failed");
        assert_eq!(
            condition.message,
            "purge failed on 1 of 3 pods: c (unreachable)"
        );
    }
}
