//! The CassandraRestore controller: the K8ssandra book's (deprecated) kind, run as a
//! MedusaRestoreJob. It runs in every mode on the objects of the cluster it runs in.
//!
//! A CassandraRestore names a backup (`spec.backup`: a CassandraBackup, whose backup is its
//! `spec.name` or its name, or else a MedusaBackup of that name) and the datacenter to restore
//! (`spec.cassandraDatacenter.name`, of Cassandra cluster `clusterName`). Its controller:
//! 1. refuses, `Failed`, what the jobs do not do: `inPlace: false` (a restore into a new
//!    datacenter), or a `clusterName` that is not the datacenter's `spec.clusterName`;
//! 2. reports `shutdown: false` in `FieldsNotActedOn`: a restore always stops the datacenter;
//! 3. waits, `Blocked`, while the datacenter does not exist;
//! 4. creates a MedusaRestoreJob of its own name that it owns (controller owner); one of that
//!    name that it does not own is left alone, `Blocked` saying so;
//! 5. mirrors the job's status (`restoreKey`, `startTime`, `finishTime`, `datacenterStopped`,
//!    its conditions).
//!
//! Pure parts: [`refusal`], [`fields_not_acted_on`], [`restore_job`], [`mirror_status`].

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};

use super::cassandra_backup::{BookContext, backup_name, controller_owner, owned_by};
use super::job_controller::{JobError, JobRef, POLL, WAIT};
use crate::api::cassdc::CassandraDatacenter;
use crate::api::medusa::cassandra_backup::CassandraBackup;
use crate::api::medusa::cassandra_restore::{CassandraRestore, CassandraRestoreStatus};
use crate::api::medusa::restore_job::{MedusaRestoreJob, MedusaRestoreJobStatus};
use crate::api::shared::{
    CONDITION_FALSE, CONDITION_TRUE, new_condition, report_fields_not_acted_on, set_condition,
};
use crate::events::Notice;

pub const FIELD_MANAGER: &str = "federator-cassandra-restore";
pub const CONTROLLER: &str = "cassandrarestore";

pub const CONDITION_FAILED: &str = "Failed";
pub const CONDITION_BLOCKED: &str = "Blocked";
pub const CONDITION_COMPLETE: &str = "Complete";

/// Pure: why the restore cannot be done as written (reason, message), if it cannot; `dc`:
/// the datacenter named, when it exists.
pub fn refusal(
    restore: &CassandraRestore,
    dc: Option<&CassandraDatacenter>,
) -> Option<(&'static str, String)> {
    if !restore.spec.in_place {
        return Some((
            "NotInPlace",
            "inPlace: false (a restore into a new datacenter) is not supported: the backup is restored onto the datacenter it was taken of; set inPlace: true".to_string(),
        ));
    }
    let dc = dc?;
    let wanted = &restore.spec.cassandra_datacenter;
    (dc.spec.cluster_name != wanted.cluster_name).then(|| {
        (
            "ClusterNameMismatch",
            format!(
                "spec.cassandraDatacenter.clusterName is {:?} but CassandraDatacenter {} belongs to cluster {:?}",
                wanted.cluster_name, wanted.name, dc.spec.cluster_name
            ),
        )
    })
}

/// Pure: the fields set that cannot be acted on.
pub fn fields_not_acted_on(restore: &CassandraRestore) -> Vec<String> {
    match restore.spec.shutdown {
        true => Vec::new(),
        false => vec![
            "spec.shutdown: false (a restore always stops the datacenter while its nodes restore)"
                .to_string(),
        ],
    }
}

/// Pure: the MedusaRestoreJob `restore` runs, restoring backup `backup` (server-side apply body).
pub fn restore_job(restore: &CassandraRestore, backup: &str) -> Value {
    json!({
        "apiVersion": MedusaRestoreJob::api_version(&()),
        "kind": MedusaRestoreJob::kind(&()),
        "metadata": {
            "name": restore.name_any(),
            "namespace": restore.namespace(),
            "ownerReferences": [controller_owner(restore)],
        },
        "spec": {
            "backup": backup,
            "cassandraDatacenter": restore.spec.cassandra_datacenter.name,
        },
    })
}

/// Pure: the CassandraRestore's status mirroring its job's `job` (`previous`: its status now).
pub fn mirror_status(
    previous: &CassandraRestoreStatus,
    job: Option<&MedusaRestoreJobStatus>,
    generation: Option<i64>,
) -> CassandraRestoreStatus {
    let mut next = previous.clone();
    let job = job.cloned().unwrap_or_default();
    next.restore_key = job.restore_key;
    next.start_time = job.start_time;
    next.finish_time = job.finish_time;
    next.datacenter_stopped = job.datacenter_stopped;
    next.in_progress = job.in_progress;
    next.finished = job.finished;
    next.failed = job.failed;
    let mut conditions = next.conditions.take().unwrap_or_default();
    for condition in job.conditions.iter().flatten() {
        let mut mirrored = condition.clone();
        mirrored.observed_generation = generation;
        set_condition(&mut conditions, mirrored);
    }
    next.conditions = Some(conditions);
    next
}

fn now() -> Time {
    Time(Timestamp::now())
}

struct Restore<'a> {
    object: &'a CassandraRestore,
    id: JobRef,
    context: &'a BookContext,
}

impl Restore<'_> {
    fn status(&self) -> CassandraRestoreStatus {
        self.object.status.clone().unwrap_or_default()
    }

    async fn write_status(&self, status: &CassandraRestoreStatus) -> Result<(), JobError> {
        if self.object.status.as_ref() == Some(status) {
            return Ok(());
        }
        (self.id)
            .write_status::<CassandraRestore>(&self.context.client, FIELD_MANAGER, status)
            .await
    }

    async fn publish(&self, notice: Notice) {
        self.context.events.publish(self.object, &notice).await;
    }

    /// `kind` True with `reason` (a Warning Event when that is new).
    async fn condition(
        &self,
        mut status: CassandraRestoreStatus,
        kind: &str,
        reason: &str,
        message: String,
    ) -> Result<(), JobError> {
        let already = (status.conditions.iter().flatten())
            .any(|c| c.type_ == kind && c.status == CONDITION_TRUE && c.reason == reason);
        let mut conditions = status.conditions.take().unwrap_or_default();
        let generation = self.object.metadata.generation;
        set_condition(
            &mut conditions,
            new_condition(kind, CONDITION_TRUE, reason, &message, generation, now()),
        );
        status.conditions = Some(conditions);
        self.write_status(&status).await?;
        if !already {
            self.publish(Notice::warning(reason, "Restore", message)).await;
        }
        Ok(())
    }

    /// The Medusa backup `spec.backup` means: the backup of the CassandraBackup of that name,
    /// or else the name itself (a MedusaBackup).
    async fn medusa_backup_name(&self) -> Result<String, JobError> {
        let name = &self.object.spec.backup;
        let backups: Api<CassandraBackup> =
            Api::namespaced(self.context.client.clone(), &self.id.namespace);
        let found = backups
            .get_opt(name)
            .await
            .map_err(self.id.api_error(format!("reading CassandraBackup {name}")))?;
        Ok(found.map_or_else(|| name.clone(), |backup| backup_name(&backup)))
    }

    async fn mirror(
        &self,
        status: CassandraRestoreStatus,
        job: &MedusaRestoreJob,
    ) -> Result<Action, JobError> {
        let next = mirror_status(
            &status,
            job.status.as_ref(),
            self.object.metadata.generation,
        );
        self.write_status(&next).await?;
        if next.finish_time.is_none() {
            // A job waiting on the user is looked at as often as it looks itself.
            let blocked = (next.conditions.iter().flatten())
                .any(|c| c.type_ == CONDITION_BLOCKED && c.status == CONDITION_TRUE);
            return Ok(Action::requeue(if blocked { WAIT } else { POLL }));
        }
        if self.object.status.as_ref().is_none_or(|s| s.finish_time.is_none()) {
            let failed = (next.conditions.iter().flatten())
                .find(|c| c.type_ == CONDITION_FAILED && c.status == CONDITION_TRUE);
            let notice = match failed {
                Some(failed) => Notice::warning("RestoreFailed", "Restore", failed.message.clone()),
                None => Notice::normal(
                    "RestoreFinished",
                    "Restore",
                    format!(
                        "datacenter {} restored",
                        self.object.spec.cassandra_datacenter.name
                    ),
                ),
            };
            self.publish(notice).await;
        }
        Ok(Action::await_change())
    }
}

/// One reconcile of a CassandraRestore (run by [`super::job_controller::run`]).
pub(super) async fn reconcile(
    object: Arc<CassandraRestore>,
    context: Arc<BookContext>,
) -> Result<Action, JobError> {
    let this = Restore {
        object: &object,
        id: JobRef::of(object.as_ref())?,
        context: &context,
    };
    let mut status = this.status();
    if status.finish_time.is_some() {
        return Ok(Action::await_change());
    }
    let generation = object.metadata.generation;
    let mut conditions = status.conditions.take().unwrap_or_default();
    report_fields_not_acted_on(
        &mut conditions,
        &fields_not_acted_on(&object),
        generation,
        now(),
    );
    status.conditions = Some(conditions);

    let jobs: Api<MedusaRestoreJob> = Api::namespaced(context.client.clone(), &this.id.namespace);
    let name = object.name_any();
    let job = jobs
        .get_opt(&name)
        .await
        .map_err(this.id.api_error(format!("reading MedusaRestoreJob {name}")))?;
    match job {
        // Once its job runs, the restore follows it (the spec checks were done before).
        Some(job) if owned_by(&job, object.metadata.uid.as_deref()) => {
            return this.mirror(status, &job).await;
        }
        Some(_) => {
            let message = format!(
                "MedusaRestoreJob {name} already exists and does not belong to this CassandraRestore: it is left alone; give the restore another name"
            );
            this.condition(status, CONDITION_BLOCKED, "JobNotOwned", message).await?;
            return Ok(Action::requeue(WAIT));
        }
        None => {}
    }

    let datacenters: Api<CassandraDatacenter> =
        Api::namespaced(context.client.clone(), &this.id.namespace);
    let dc_name = &object.spec.cassandra_datacenter.name;
    let dc = datacenters
        .get_opt(dc_name)
        .await
        .map_err(this.id.api_error(format!("reading CassandraDatacenter {dc_name}")))?;
    if let Some((reason, message)) = refusal(&object, dc.as_ref()) {
        this.condition(status, CONDITION_FAILED, reason, message).await?;
        return Ok(Action::await_change());
    }
    if dc.is_none() {
        let message = format!(
            "CassandraDatacenter {dc_name} does not exist in namespace {}: spec.cassandraDatacenter.name names the datacenter to restore",
            this.id.namespace
        );
        this.condition(status, CONDITION_BLOCKED, "DatacenterNotFound", message).await?;
        return Ok(Action::requeue(WAIT));
    }

    let backup = this.medusa_backup_name().await?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    jobs.patch(
        &name,
        &params,
        &Patch::Apply(&restore_job(&object, &backup)),
    )
    .await
    .map_err(this.id.api_error(format!("creating MedusaRestoreJob {name}")))?;
    // Blocked and Failed of the checks above, back to False: the job runs.
    let mut conditions = status.conditions.take().unwrap_or_default();
    for kind in [CONDITION_BLOCKED, CONDITION_FAILED] {
        if conditions.iter().any(|c| c.type_ == kind && c.status == CONDITION_TRUE) {
            set_condition(
                &mut conditions,
                new_condition(
                    kind,
                    CONDITION_FALSE,
                    "JobRunning",
                    "the MedusaRestoreJob runs the restore",
                    generation,
                    now(),
                ),
            );
        }
    }
    status.conditions = Some(conditions);
    this.write_status(&status).await?;
    this.publish(Notice::normal(
        "RestoreJobCreated",
        "Restore",
        format!("MedusaRestoreJob {name} restores backup {backup} onto datacenter {dc_name}"),
    ))
    .await;
    Ok(Action::requeue(POLL))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::medusa::cassandra_restore::{CassandraDatacenterRef, CassandraRestoreSpec};

    fn time(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("valid timestamp"))
    }

    /// The book's CassandraRestore.
    fn book_restore() -> CassandraRestore {
        let mut restore = CassandraRestore::new(
            "restore-backup1",
            CassandraRestoreSpec {
                backup: "medusa-backup1".into(),
                cassandra_datacenter: CassandraDatacenterRef {
                    name: "dc1".into(),
                    cluster_name: "demo".into(),
                },
                in_place: true,
                shutdown: true,
            },
        );
        restore.metadata.namespace = Some("k8ssandra-operator".into());
        restore.metadata.uid = Some("uid-r".into());
        restore
    }

    fn datacenter(cluster: &str) -> CassandraDatacenter {
        let mut dc = CassandraDatacenter::new("dc1", Default::default());
        dc.spec.cluster_name = cluster.into();
        dc
    }

    #[test]
    fn the_books_restore_is_done_as_written() {
        let restore = book_restore();
        assert_eq!(refusal(&restore, Some(&datacenter("demo"))), None);
        assert_eq!(
            refusal(&restore, None),
            None,
            "a missing datacenter is waited for"
        );
        assert!(fields_not_acted_on(&restore).is_empty());
        let job = restore_job(&restore, "medusa-backup1");
        assert_eq!(job["metadata"]["name"], "restore-backup1");
        assert_eq!(
            job["spec"],
            json!({"backup": "medusa-backup1", "cassandraDatacenter": "dc1"})
        );
        let owner = &job["metadata"]["ownerReferences"][0];
        assert_eq!(
            (
                owner["kind"].as_str(),
                owner["uid"].as_str(),
                owner["controller"].as_bool()
            ),
            (Some("CassandraRestore"), Some("uid-r"), Some(true))
        );
    }

    #[test]
    fn what_the_jobs_cannot_do_is_refused_or_reported() {
        let mut restore = book_restore();
        let (reason, message) = refusal(&restore, Some(&datacenter("other"))).expect("refused");
        assert_eq!(reason, "ClusterNameMismatch");
        assert!(
            message.contains("\"demo\"") && message.contains("\"other\""),
            "{message}"
        );

        restore.spec.in_place = false;
        let (reason, message) = refusal(&restore, Some(&datacenter("demo"))).expect("refused");
        assert_eq!(reason, "NotInPlace");
        assert!(message.contains("inPlace: false"), "{message}");

        restore.spec.shutdown = false;
        let fields = fields_not_acted_on(&restore);
        assert_eq!(fields.len(), 1);
        assert!(fields[0].starts_with("spec.shutdown: false"), "{fields:?}");
    }

    #[test]
    fn the_jobs_status_shows_on_the_restore() {
        let job = MedusaRestoreJobStatus {
            restore_key: "key-1".into(),
            start_time: Some(time(1)),
            datacenter_stopped: Some(time(2)),
            finish_time: Some(time(3)),
            conditions: Some(vec![new_condition(
                CONDITION_COMPLETE,
                CONDITION_TRUE,
                "Restored",
                "restored",
                Some(1),
                time(3),
            )]),
            ..Default::default()
        };
        let status = mirror_status(&CassandraRestoreStatus::default(), Some(&job), Some(2));
        assert_eq!(status.restore_key, "key-1");
        assert_eq!(
            (
                status.start_time,
                status.datacenter_stopped,
                status.finish_time
            ),
            (Some(time(1)), Some(time(2)), Some(time(3)))
        );
        let complete = status.conditions.unwrap_or_default();
        assert_eq!(complete[0].type_, CONDITION_COMPLETE);
        assert_eq!(complete[0].observed_generation, Some(2));
    }
}
