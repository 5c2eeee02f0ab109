//! The CassandraBackup controller: the K8ssandra book's (deprecated) kind, run as a
//! MedusaBackupJob. It runs in every mode on the objects of the cluster it runs in.
//!
//! A CassandraBackup names its datacenter (`spec.cassandraDatacenter`) and its backup
//! (`spec.name`, its own name when unset). Its controller:
//! 1. waits, `Blocked`, while the datacenter does not exist;
//! 2. creates a MedusaBackupJob of the backup's name that it owns (controller owner), with the
//!    datacenter and `backupType`, and records the datacenter as it was (`cassdcTemplateSpec`);
//!    a MedusaBackupJob of that name that it does not own is left alone, `Blocked` saying so;
//! 3. mirrors the job's progress into its status as the book shows it (`startTime`,
//!    `finishTime`, `inProgress`, `finished`, `failed`) with the job's `Complete` or `Failed`.
//!
//! The MedusaBackupJob controller does the backup ([`super::medusa_backup`]) and records the
//! MedusaBackup of the same name, which a CassandraRestore restores.
//!
//! Pure parts: [`backup_name`], [`backup_job`], [`mirror_status`], [`template_spec`].

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};

use super::job_controller::{JobError, JobRef, POLL, WAIT};
use crate::api::cassdc::CassandraDatacenter;
use crate::api::medusa::backup_job::{MedusaBackupJob, MedusaBackupJobStatus};
use crate::api::medusa::cassandra_backup::{CassandraBackup, CassandraBackupStatus};
use crate::api::shared::{CONDITION_FALSE, CONDITION_TRUE, new_condition, set_condition};
use crate::events::{Events, Notice};

pub const FIELD_MANAGER: &str = "federator-cassandra-backup";
pub const CONTROLLER: &str = "cassandrabackup";

/// Condition: the backup cannot start (the message says what to fix).
pub const CONDITION_BLOCKED: &str = "Blocked";

/// What the CassandraBackup and CassandraRestore controllers need.
pub struct BookContext {
    pub client: kube::Client,
    pub events: Events,
    pub ops: crate::ops::Ops,
}

impl AsRef<crate::ops::Ops> for BookContext {
    fn as_ref(&self) -> &crate::ops::Ops {
        &self.ops
    }
}

/// Pure: the name of the backup (and of its MedusaBackupJob and MedusaBackup).
pub fn backup_name(backup: &CassandraBackup) -> String {
    (backup.spec.name.clone()).filter(|name| !name.is_empty()).unwrap_or_else(|| backup.name_any())
}

/// The owner reference an object created for `owner` carries: its controller, blocking the
/// owner's foreground deletion, as controller-runtime's `SetControllerReference` writes it.
pub fn controller_owner<K: Resource<DynamicType = ()>>(owner: &K) -> Value {
    json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "name": owner.meta().name.clone().unwrap_or_default(),
        "uid": owner.meta().uid.clone().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether `object` is owned by the object of `uid`.
pub fn owned_by<K: Resource>(object: &K, uid: Option<&str>) -> bool {
    let Some(uid) = uid else {
        return false;
    };
    (object.meta().owner_references.iter().flatten()).any(|owner| owner.uid == uid)
}

/// Pure: the MedusaBackupJob `backup` runs (server-side apply body).
pub fn backup_job(backup: &CassandraBackup) -> Value {
    let mut spec = json!({"cassandraDatacenter": backup.spec.cassandra_datacenter});
    if let Some(backup_type) = backup.spec.backup_type {
        spec["backupType"] = serde_json::to_value(backup_type).unwrap_or(Value::Null);
    }
    json!({
        "apiVersion": MedusaBackupJob::api_version(&()),
        "kind": MedusaBackupJob::kind(&()),
        "metadata": {
            "name": backup_name(backup),
            "namespace": backup.namespace(),
            "ownerReferences": [controller_owner(backup)],
        },
        "spec": spec,
    })
}

/// Pure: the datacenter as it is at backup time (`cassdcTemplateSpec`, as medusa-operator kept
/// it: its name, labels and annotations, and its whole spec as stored).
pub fn template_spec(dc: &Value) -> Value {
    let metadata = dc.get("metadata").cloned().unwrap_or_default();
    let mut kept = serde_json::Map::new();
    for field in ["name", "namespace", "labels", "annotations"] {
        if let Some(value) = metadata.get(field) {
            kept.insert(field.into(), value.clone());
        }
    }
    json!({
        "metadata": kept,
        "spec": dc.get("spec").cloned().unwrap_or_default(),
    })
}

/// Pure: the CassandraBackup's status mirroring its job's `job` (`previous`: its status now).
pub fn mirror_status(
    previous: &CassandraBackupStatus,
    job: Option<&MedusaBackupJobStatus>,
    generation: Option<i64>,
    now: Time,
) -> CassandraBackupStatus {
    let mut next = previous.clone();
    let job = job.cloned().unwrap_or_default();
    next.start_time = job.start_time;
    next.finish_time = job.finish_time;
    next.in_progress = job.in_progress;
    next.finished = job.finished;
    next.failed = job.failed;
    let mut conditions = next.conditions.take().unwrap_or_default();
    for condition in job.conditions.iter().flatten() {
        let mut mirrored = condition.clone();
        mirrored.observed_generation = generation;
        set_condition(&mut conditions, mirrored);
    }
    unblock(&mut conditions, generation, now);
    next.conditions = Some(conditions);
    next
}

/// `Blocked` back to False once the backup runs.
fn unblock(conditions: &mut Vec<Condition>, generation: Option<i64>, now: Time) {
    let blocked =
        (conditions.iter()).any(|c| c.type_ == CONDITION_BLOCKED && c.status == CONDITION_TRUE);
    if blocked {
        set_condition(
            conditions,
            new_condition(
                CONDITION_BLOCKED,
                CONDITION_FALSE,
                "JobRunning",
                "the MedusaBackupJob runs the backup",
                generation,
                now,
            ),
        );
    }
}

fn now() -> Time {
    Time(Timestamp::now())
}

fn is_true(status: &CassandraBackupStatus, kind: &str) -> bool {
    (status.conditions.iter().flatten()).any(|c| c.type_ == kind && c.status == CONDITION_TRUE)
}

struct Backup<'a> {
    object: &'a CassandraBackup,
    id: JobRef,
    context: &'a BookContext,
}

impl Backup<'_> {
    fn status(&self) -> CassandraBackupStatus {
        self.object.status.clone().unwrap_or_default()
    }

    async fn write_status(&self, status: &CassandraBackupStatus) -> Result<(), JobError> {
        if self.object.status.as_ref() == Some(status) {
            return Ok(());
        }
        (self.id).write_status::<CassandraBackup>(&self.context.client, FIELD_MANAGER, status).await
    }

    async fn publish(&self, notice: Notice) {
        self.context.events.publish(self.object, &notice).await;
    }

    /// `Blocked` with `reason` (a Warning Event when that is new), looked at again later.
    async fn blocked(&self, reason: &str, message: String) -> Result<Action, JobError> {
        let mut status = self.status();
        let already = (status.conditions.iter().flatten()).any(|c| {
            c.type_ == CONDITION_BLOCKED && c.status == CONDITION_TRUE && c.reason == reason
        });
        let mut conditions = status.conditions.take().unwrap_or_default();
        let generation = self.object.metadata.generation;
        set_condition(
            &mut conditions,
            new_condition(
                CONDITION_BLOCKED,
                CONDITION_TRUE,
                reason,
                &message,
                generation,
                now(),
            ),
        );
        status.conditions = Some(conditions);
        self.write_status(&status).await?;
        if !already {
            self.publish(Notice::warning(reason, "Backup", message)).await;
        }
        Ok(Action::requeue(WAIT))
    }

    /// The datacenter as stored, every field kept; `None` when it does not exist.
    async fn datacenter(&self) -> Result<Option<Value>, JobError> {
        let resource = kube::discovery::ApiResource::erase::<CassandraDatacenter>(&());
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(self.context.client.clone(), &self.id.namespace, &resource);
        let name = &self.object.spec.cassandra_datacenter;
        let found = api
            .get_opt(name)
            .await
            .map_err(self.id.api_error(format!("reading CassandraDatacenter {name}")))?;
        Ok(found.and_then(|dc| serde_json::to_value(dc).ok()))
    }

    async fn create_job(&self, name: &str) -> Result<Action, JobError> {
        let Some(dc) = self.datacenter().await? else {
            let message = format!(
                "CassandraDatacenter {} does not exist in namespace {}: spec.cassandraDatacenter names the datacenter to back up",
                self.object.spec.cassandra_datacenter, self.id.namespace
            );
            return self.blocked("DatacenterNotFound", message).await;
        };
        let jobs: Api<MedusaBackupJob> =
            Api::namespaced(self.context.client.clone(), &self.id.namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        jobs.patch(name, &params, &Patch::Apply(&backup_job(self.object)))
            .await
            .map_err(self.id.api_error(format!("creating MedusaBackupJob {name}")))?;
        let mut status = self.status();
        status.cassdc_template_spec = Some(template_spec(&dc));
        self.write_status(&status).await?;
        self.publish(Notice::normal(
            "BackupJobCreated",
            "Backup",
            format!(
                "MedusaBackupJob {name} backs up datacenter {}",
                self.object.spec.cassandra_datacenter
            ),
        ))
        .await;
        Ok(Action::requeue(POLL))
    }

    async fn mirror(&self, job: &MedusaBackupJob) -> Result<Action, JobError> {
        let before = self.status();
        let next = mirror_status(
            &before,
            job.status.as_ref(),
            self.object.metadata.generation,
            now(),
        );
        self.write_status(&next).await?;
        let name = job.name_any();
        if next.finish_time.is_none() {
            return Ok(Action::requeue(POLL));
        }
        if before.finish_time.is_none() {
            let failed = next.failed.clone().unwrap_or_default();
            let notice = match failed.is_empty() {
                true => Notice::normal(
                    "BackupFinished",
                    "Backup",
                    format!(
                        "backup {name} finished on {} pods",
                        next.finished.as_ref().map_or(0, Vec::len)
                    ),
                ),
                false => Notice::warning(
                    "BackupFailed",
                    "Backup",
                    format!("backup {name} failed on pods {}", failed.join(", ")),
                ),
            };
            self.publish(notice).await;
        }
        Ok(Action::await_change())
    }
}

/// One reconcile of a CassandraBackup (run by [`super::job_controller::run`]).
pub(super) async fn reconcile(
    object: Arc<CassandraBackup>,
    context: Arc<BookContext>,
) -> Result<Action, JobError> {
    let this = Backup {
        object: &object,
        id: JobRef::of(object.as_ref())?,
        context: &context,
    };
    let status = this.status();
    if status.finish_time.is_some() && (is_true(&status, "Complete") || is_true(&status, "Failed"))
    {
        return Ok(Action::await_change());
    }
    let name = backup_name(&object);
    let jobs: Api<MedusaBackupJob> = Api::namespaced(context.client.clone(), &this.id.namespace);
    let job = jobs
        .get_opt(&name)
        .await
        .map_err(this.id.api_error(format!("reading MedusaBackupJob {name}")))?;
    match job {
        None => this.create_job(&name).await,
        Some(job) if owned_by(&job, object.metadata.uid.as_deref()) => this.mirror(&job).await,
        Some(_) => {
            let message = format!(
                "MedusaBackupJob {name} already exists and does not belong to this CassandraBackup: it is left alone; give the backup another spec.name"
            );
            this.blocked("JobNotOwned", message).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::medusa::BackupType;
    use crate::api::medusa::cassandra_backup::CassandraBackupSpec;

    fn time(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("valid timestamp"))
    }

    fn book_backup(name: Option<&str>) -> CassandraBackup {
        let mut backup = CassandraBackup::new(
            "medusa-backup1",
            CassandraBackupSpec {
                name: name.map(str::to_string),
                cassandra_datacenter: "dc1".into(),
                backup_type: None,
            },
        );
        backup.metadata.namespace = Some("k8ssandra-operator".into());
        backup.metadata.uid = Some("uid-1".into());
        backup
    }

    #[test]
    fn the_backup_is_named_by_spec_name_or_the_object() {
        assert_eq!(backup_name(&book_backup(Some("nightly"))), "nightly");
        assert_eq!(backup_name(&book_backup(None)), "medusa-backup1");
        assert_eq!(backup_name(&book_backup(Some(""))), "medusa-backup1");
    }

    #[test]
    fn the_job_is_owned_by_the_backup_and_carries_its_datacenter_and_type() {
        let mut backup = book_backup(Some("nightly"));
        let job = backup_job(&backup);
        assert_eq!(job["kind"], "MedusaBackupJob");
        assert_eq!(job["metadata"]["name"], "nightly");
        assert_eq!(job["metadata"]["namespace"], "k8ssandra-operator");
        assert_eq!(job["spec"], json!({"cassandraDatacenter": "dc1"}));
        let owner = &job["metadata"]["ownerReferences"][0];
        assert_eq!(
            (
                owner["kind"].as_str(),
                owner["uid"].as_str(),
                owner["controller"].as_bool()
            ),
            (Some("CassandraBackup"), Some("uid-1"), Some(true))
        );
        backup.spec.backup_type = Some(BackupType::Full);
        assert_eq!(backup_job(&backup)["spec"]["backupType"], "full");
        let parsed: MedusaBackupJob = serde_json::from_value(job).expect("a MedusaBackupJob");
        assert!(owned_by(&parsed, Some("uid-1")));
        assert!(!owned_by(&parsed, Some("uid-2")));
        assert!(!owned_by(&parsed, None));
    }

    #[test]
    fn the_jobs_progress_shows_as_the_book_prints_it() {
        let job = MedusaBackupJobStatus {
            start_time: Some(time(10)),
            finish_time: Some(time(20)),
            in_progress: Some(vec![]),
            finished: Some(vec![
                "demo-dc1-default-sts-0".into(),
                "demo-dc1-default-sts-1".into(),
            ]),
            failed: Some(vec![]),
            conditions: Some(vec![new_condition(
                "Complete",
                CONDITION_TRUE,
                "BackedUp",
                "2 of 2 pods backed up",
                Some(1),
                time(20),
            )]),
        };
        let mut previous = CassandraBackupStatus {
            cassdc_template_spec: Some(json!({"spec": {"size": 2}})),
            ..Default::default()
        };
        let mut blocked = Vec::new();
        set_condition(
            &mut blocked,
            new_condition(
                CONDITION_BLOCKED,
                CONDITION_TRUE,
                "DatacenterNotFound",
                "x",
                Some(1),
                time(1),
            ),
        );
        previous.conditions = Some(blocked);
        let status = mirror_status(&previous, Some(&job), Some(3), time(30));
        assert_eq!(status.start_time, Some(time(10)));
        assert_eq!(status.finish_time, Some(time(20)));
        assert_eq!(status.finished.as_ref().map(Vec::len), Some(2));
        assert_eq!(status.failed, Some(vec![]));
        assert_eq!(
            status.cassdc_template_spec, previous.cassdc_template_spec,
            "kept"
        );
        let conditions = status.conditions.unwrap_or_default();
        let complete = conditions.iter().find(|c| c.type_ == "Complete").expect("Complete");
        assert_eq!(
            (complete.status.as_str(), complete.observed_generation),
            ("True", Some(3))
        );
        let blocked = conditions.iter().find(|c| c.type_ == CONDITION_BLOCKED).expect("Blocked");
        assert_eq!(blocked.status, CONDITION_FALSE);

        // A job not started yet: nothing to show but what was there.
        let waiting = mirror_status(&CassandraBackupStatus::default(), None, Some(1), time(1));
        assert_eq!(waiting.start_time, None);
        assert_eq!(waiting.finished, None);
    }

    #[test]
    fn the_template_keeps_the_datacenters_spec_and_identity_only() {
        let dc = json!({
            "apiVersion": "cassandra.datastax.com/v1beta1",
            "kind": "CassandraDatacenter",
            "metadata": {"name": "dc1", "namespace": "ns", "labels": {"a": "b"}, "uid": "u", "resourceVersion": "7"},
            "spec": {"clusterName": "demo", "size": 3, "somethingNew": true},
            "status": {"cassandraOperatorProgress": "Ready"},
        });
        let template = template_spec(&dc);
        assert_eq!(
            template,
            json!({
                "metadata": {"name": "dc1", "namespace": "ns", "labels": {"a": "b"}},
                "spec": {"clusterName": "demo", "size": 3, "somethingNew": true},
            })
        );
    }
}
