//! The MedusaRestoreJob controller, as k8ssandra-operator's (`medusarestorejob_controller.go`):
//! it runs in every mode on the objects of the cluster it runs in, and restores the MedusaBackup
//! `spec.backup` onto the CassandraDatacenter `spec.cassandraDatacenter`, both in the job's
//! namespace.
//!
//! A job goes through these steps, its status telling where it is:
//! 1. the MedusaBackup must exist, be finished on all its nodes and fit the datacenter (node
//!    count, datacenter and rack names, as upstream checks); a missing backup or datacenter
//!    sets `Blocked` and is looked for again, a backup that does not fit fails the job. Beyond
//!    upstream, the backup may be another datacenter's (a MedusaClusterBackupJob copies each
//!    datacenter's MedusaBackup to every region of the cluster; the bucket is shared): its nodes
//!    are then mapped onto this datacenter's pods, and a node count that differs sets
//!    `Blocked` (SizeMismatch) naming both counts;
//! 2. `startTime` and a new `restoreKey`;
//! 3. the restore mapping (which backed-up node each pod restores), from the backup's nodes as
//!    the first answering pod's Medusa lists them (`GetBackups`), matched rack by rack to the
//!    datacenter's pods as upstream does; `restorePrepared`;
//! 4. the datacenter is stopped (`spec.stopped`), then `datacenterStopped`;
//! 5. the `medusa-restore` init container gets `BACKUP_NAME`, `RESTORE_KEY` and
//!    `RESTORE_MAPPING` and the datacenter starts again: each pod restores its node before
//!    Cassandra starts;
//! 6. once the datacenter is Ready with that template: `finishTime` and `Complete`. While it
//!    is not, a pod whose `medusa-restore` init container exited with an error sets `Blocked`
//!    (`RestoreContainerFailing`, naming the pod and the container's last message) and a
//!    Warning Event. Not `Failed`: the kubelet keeps retrying the container, and a cause the
//!    user removes (a source datacenter that still owns the tokens, storage) lets the restore
//!    finish; the time limit still ends a job that never gets there.
//!
//! A job not finished [`MedusaRestoreContext::restore_limit`] after its start fails, saying
//! what it waited for; a datacenter it stopped and did not restart yet is started again.
//!
//! Pure parts: [`validate_backup`], [`restore_mapping`], [`step`], [`restore_body`],
//! [`restore_env_applied`], [`restore_container_failure`]; the rest is I/O.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::api::cassdc::CassandraDatacenter;
use crate::api::medusa::backup::{MedusaBackup, MedusaBackupStatus};
use crate::api::medusa::restore_job::{
    MappingSource, MedusaRestoreJob, MedusaRestoreJobStatus, MedusaRestoreMapping,
};
use crate::api::shared::{CONDITION_FALSE, CONDITION_TRUE, new_condition, set_condition};
use crate::cassandra::medusa::MedusaClient;
use crate::events::{Events, Notice};
use crate::workload::labels::{
    CASSANDRA_CLUSTER_LABEL, CASSANDRA_DATACENTER_LABEL, clean_for_kubernetes,
};
use crate::workload::medusa::RESTORE_INIT_CONTAINER;

use super::job_controller::{JobError, JobRef, POLL, WAIT};
use super::medusa_backup::datacenter_pods;

pub const FIELD_MANAGER: &str = "federator-medusa-restore";
pub const CONTROLLER: &str = "medusarestorejob";

/// Condition: the datacenter is Ready again, restored from the backup.
pub const CONDITION_COMPLETE: &str = "Complete";
/// Condition: the restore cannot be done (the message says why).
pub const CONDITION_FAILED: &str = "Failed";
/// Condition: the restore waits on something the user can fix (the message says what).
pub const CONDITION_BLOCKED: &str = "Blocked";

/// The init container's environment a restore sets (Medusa's `k8s/docker-entrypoint.sh`).
pub const BACKUP_NAME_ENV: &str = "BACKUP_NAME";
pub const RESTORE_KEY_ENV: &str = "RESTORE_KEY";
pub const RESTORE_MAPPING_ENV: &str = "RESTORE_MAPPING";

/// How long after its start a restore may take, stopping and starting the datacenter included.
pub const DEFAULT_RESTORE_LIMIT: Duration = Duration::from_secs(3600);

impl AsRef<crate::ops::Ops> for MedusaRestoreContext {
    fn as_ref(&self) -> &crate::ops::Ops {
        &self.ops
    }
}

pub struct MedusaRestoreContext {
    pub client: kube::Client,
    pub events: Events,
    pub medusa: MedusaClient,
    pub restore_limit: Duration,
    pub ops: crate::ops::Ops,
}

/// The datacenter whose nodes `backup` holds, when that is not `dc`: a backup taken by another
/// datacenter (in another region, in the same bucket). None for a backup of `dc` itself, or
/// one that names no node.
pub fn source_datacenter(backup: &MedusaBackupStatus, dc: &CassandraDatacenter) -> Option<String> {
    let dc_name = datacenter_name(dc);
    let mut names = backup.nodes.iter().flatten().filter_map(|n| n.datacenter.clone());
    let first = names.next()?;
    (first != dc_name).then_some(first)
}

/// Why a backup of another datacenter cannot be restored onto `dc` yet: its node count is not
/// the datacenter's (scaling one of them fixes it).
pub fn size_mismatch(backup: &MedusaBackupStatus, dc: &CassandraDatacenter) -> Option<String> {
    let source = source_datacenter(backup, dc)?;
    let total = backup.total_nodes.unwrap_or(0);
    (total != 0 && total != dc.spec.size).then(|| {
        format!(
            "the backup has {total} nodes (datacenter {source}), datacenter {} has {}: a backup of another datacenter restores node for node",
            datacenter_name(dc),
            dc.spec.size
        )
    })
}

/// Pure: why `backup` cannot be restored onto `dc` (upstream's `validateBackupForRestore`). A
/// backup of another datacenter (Federator's addition) must hold that datacenter only and as
/// many racks as `dc`; its nodes are then mapped onto `dc`'s pods ([`restore_mapping`]).
pub fn validate_backup(
    backup: &MedusaBackupStatus,
    dc: &CassandraDatacenter,
) -> Result<(), String> {
    let total = backup.total_nodes.unwrap_or(0);
    let finished = backup.finished_nodes.unwrap_or(0);
    // A backup recorded without counts (older operators): nothing to check, as upstream.
    if total == 0 && finished == 0 {
        return Ok(());
    }
    if backup.finish_time.is_none() {
        return Err("the backup has not finished".into());
    }
    if finished != total {
        return Err(format!(
            "the backup finished on {finished} of its {total} nodes"
        ));
    }
    if total != dc.spec.size {
        return Err(format!(
            "the backup has {total} nodes, the datacenter {}",
            dc.spec.size
        ));
    }
    let source = source_datacenter(backup, dc);
    let dc_name = source.clone().unwrap_or_else(|| datacenter_name(dc));
    let mut backup_racks: BTreeMap<String, usize> = BTreeMap::new();
    for node in backup.nodes.iter().flatten() {
        let datacenter = node.datacenter.as_deref().unwrap_or_default();
        if datacenter != dc_name {
            return Err(format!(
                "the backup is of datacenter {datacenter}, the target is {dc_name}"
            ));
        }
        *backup_racks.entry(node.rack.clone().unwrap_or_default()).or_default() += 1;
    }
    let target: Vec<String> = racks(dc);
    let backed_up: Vec<&String> = backup_racks.keys().collect();
    let mut sorted_target: Vec<&String> = target.iter().collect();
    sorted_target.sort();
    if source.is_some() {
        // Another datacenter's racks are matched in name order, not by name.
        if backed_up.len() != sorted_target.len() {
            return Err(format!(
                "the backup's datacenter {dc_name} has racks {backed_up:?}, the datacenter {sorted_target:?}: as many racks are needed"
            ));
        }
        return Ok(());
    }
    if backed_up != sorted_target {
        return Err(format!(
            "the backup's racks {backed_up:?} are not the datacenter's {sorted_target:?}"
        ));
    }
    Ok(())
}

/// The datacenter's name in Cassandra.
fn datacenter_name(dc: &CassandraDatacenter) -> String {
    dc.spec.datacenter_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| dc.name_any())
}

/// The datacenter's racks in spec order; cass-operator's single `default` rack when none.
fn racks(dc: &CassandraDatacenter) -> Vec<String> {
    let named: Vec<String> = dc.spec.racks.iter().flatten().map(|r| r.name.clone()).collect();
    match named.is_empty() {
        true => vec!["default".to_string()],
        false => named,
    }
}

/// The pod names of each rack, as cass-operator names and sizes its StatefulSets (`SplitRacks`:
/// the first `size % racks` racks hold one pod more).
fn target_pods(dc: &CassandraDatacenter) -> BTreeMap<String, Vec<String>> {
    let racks = racks(dc);
    let size = usize::try_from(dc.spec.size).unwrap_or(0);
    let (per_rack, extra) = (size / racks.len(), size % racks.len());
    let prefix = format!("{}-{}", dc.spec.cluster_name, datacenter_name(dc));
    racks
        .iter()
        .enumerate()
        .map(|(index, rack)| {
            let count = per_rack + usize::from(index < extra);
            let stateful_set = clean_for_kubernetes(&format!("{prefix}-{rack}-sts"));
            let mut pods: Vec<String> =
                (0..count).map(|ordinal| format!("{stateful_set}-{ordinal}")).collect();
            // Sorted as names, as the backup's hosts are: `-10` before `-2` on both sides.
            pods.sort_unstable();
            (rack.clone(), pods)
        })
        .collect()
}

/// Pure: which backed-up node each pod of `dc` restores (upstream's `GetHostMap`): the backup's
/// nodes of the datacenter and the datacenter's pods, rack by rack in name order, each side
/// sorted; in place when every pod restores its own node. A backup without a node of `dc` but
/// with nodes of exactly one other datacenter (taken in another region) maps that datacenter's
/// nodes onto `dc`'s pods, node for node: Medusa's restore onto other hosts.
pub fn restore_mapping(
    backup_nodes: &[medusa_grpc::BackupNode],
    dc: &CassandraDatacenter,
) -> Result<MedusaRestoreMapping, String> {
    let own = datacenter_name(dc);
    let others: std::collections::BTreeSet<&str> =
        backup_nodes.iter().map(|n| n.datacenter.as_str()).filter(|d| *d != own).collect();
    let dc_name = match (
        backup_nodes.iter().any(|n| n.datacenter == own),
        others.len(),
    ) {
        (true, _) | (false, 0) => own,
        (false, 1) => others.iter().next().map(|d| d.to_string()).unwrap_or(own),
        (false, _) => {
            return Err(format!(
                "the backup has no node of datacenter {own} and nodes of several others {others:?}: name a backup of one datacenter"
            ));
        }
    };
    let cross_datacenter = dc_name != datacenter_name(dc);
    let source_count = backup_nodes.iter().filter(|n| n.datacenter == dc_name).count();
    if cross_datacenter && i32::try_from(source_count).ok() != Some(dc.spec.size) {
        return Err(format!(
            "the backup has {source_count} nodes in datacenter {dc_name}, datacenter {} has {}",
            datacenter_name(dc),
            dc.spec.size
        ));
    }
    let mut sources: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for node in backup_nodes.iter().filter(|n| n.datacenter == dc_name) {
        sources.entry(node.rack.as_str()).or_default().push(node.host.as_str());
    }
    let targets = target_pods(dc);
    if sources.len() != targets.len() {
        return Err(format!(
            "the backup has {} racks in datacenter {dc_name}, the datacenter {}",
            sources.len(),
            targets.len()
        ));
    }
    let mut host_map = BTreeMap::new();
    let mut in_place = true;
    for ((source_rack, mut hosts), (target_rack, pods)) in sources.into_iter().zip(targets) {
        hosts.sort_unstable();
        if hosts.len() > pods.len() {
            return Err(format!(
                "rack {source_rack} of the backup has {} nodes, rack {target_rack} {}",
                hosts.len(),
                pods.len()
            ));
        }
        for (host, pod) in hosts.into_iter().zip(pods) {
            in_place &= host == pod;
            host_map.insert(
                pod,
                MappingSource {
                    source: vec![host.to_string()],
                    seed: false,
                },
            );
        }
    }
    Ok(MedusaRestoreMapping {
        in_place: Some(in_place),
        host_map: Some(host_map),
    })
}

/// What a job does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Not started: record the start and a restore key.
    Start,
    /// Compute the restore mapping.
    Prepare,
    /// Stop the datacenter (or wait for it to be stopped).
    Stop,
    /// Set the restore's environment and start the datacenter, then wait for it to be Ready.
    Restore,
    /// Finished, or failed: nothing more.
    Done,
}

/// Pure: the next step of a job with `status`.
pub fn step(status: Option<&MedusaRestoreJobStatus>) -> Step {
    let Some(status) = status else {
        return Step::Start;
    };
    if status.finish_time.is_some() {
        return Step::Done;
    }
    if status.start_time.is_none() || status.restore_key.is_empty() {
        return Step::Start;
    }
    if status.restore_prepared != Some(true) || status.restore_mapping.is_none() {
        return Step::Prepare;
    }
    match status.datacenter_stopped {
        None => Step::Stop,
        Some(_) => Step::Restore,
    }
}

/// The apply of everything the restore owns in a CassandraDatacenter (`stopped` while
/// `stop`, the restore's environment when `env` is set); what it leaves out it no longer owns.
///
/// Ownership: the hub applies each CassandraDatacenter with server-side apply and force under
/// its own field manager. The restore applies under [`FIELD_MANAGER`] only `spec.stopped: true`
/// (the hub sets `stopped` only when the user stops the datacenter) and three entries of the
/// `medusa-restore` init container's `env`, a list keyed by name: the hub's applies neither
/// name nor remove them, so they survive its reconciles and nothing is applied back and forth.
/// They stay after the restore (as upstream leaves them): a pod that starts again finds its
/// `RESTORE_KEY` already restored and restores nothing.
pub fn restore_body(
    dc: &CassandraDatacenter,
    stop: bool,
    env: Option<[(&str, String); 3]>,
) -> Value {
    let mut spec = serde_json::Map::new();
    if stop {
        spec.insert("stopped".into(), Value::Bool(true));
    }
    if let Some(env) = env {
        let env: Vec<Value> =
            env.iter().map(|(name, value)| json!({"name": name, "value": value})).collect();
        spec.insert(
            "podTemplateSpec".into(),
            json!({"spec": {"initContainers": [{"name": RESTORE_INIT_CONTAINER, "env": env}]}}),
        );
    }
    json!({
        "apiVersion": "cassandra.datastax.com/v1beta1",
        "kind": "CassandraDatacenter",
        "metadata": {"name": dc.name_any(), "namespace": dc.namespace()},
        "spec": spec,
    })
}

/// The restore's environment of the init container.
fn restore_env(
    backup: &str,
    status: &MedusaRestoreJobStatus,
) -> Result<[(&'static str, String); 3], serde_json::Error> {
    let mapping = serde_json::to_string(&status.restore_mapping)?;
    Ok([
        (BACKUP_NAME_ENV, backup.to_string()),
        (RESTORE_KEY_ENV, status.restore_key.clone()),
        (RESTORE_MAPPING_ENV, mapping),
    ])
}

/// Pure: whether `dc`'s `medusa-restore` init container has `env` (and the datacenter has one).
pub fn restore_env_applied(dc: &CassandraDatacenter, env: &[(&str, String)]) -> Option<bool> {
    let template = serde_json::to_value(&dc.spec.pod_template_spec).ok()?;
    let containers = template.pointer("/spec/initContainers")?.as_array()?;
    let container = containers
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(RESTORE_INIT_CONTAINER))?;
    let live = container.get("env").and_then(Value::as_array).cloned().unwrap_or_default();
    Some(env.iter().all(|(name, value)| {
        live.iter().any(|e| {
            e.get("name").and_then(Value::as_str) == Some(*name)
                && e.get("value").and_then(Value::as_str) == Some(value.as_str())
        })
    }))
}

/// The longest part of an init container's message a status or Event repeats.
const FAILURE_MESSAGE_LIMIT: usize = 300;

/// Pure: why `pod`'s `medusa-restore` init container failed, if it did: the kubelet shows a
/// failed init container as `terminated` with a non-zero exit code (`Init:Error`), then, while
/// it backs off, as `waiting` (`Init:CrashLoopBackOff`) with that termination in `lastState`.
/// The message is the container's termination message (its log's tail when the policy is
/// FallbackToLogsOnError), cut to a bounded length; without one (Medusa writes none), where
/// its log is.
pub fn restore_container_failure(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let container = (status.init_container_statuses.iter().flatten())
        .find(|c| c.name == RESTORE_INIT_CONTAINER)?;
    let failed = |t: &&ContainerStateTerminated| t.exit_code != 0;
    let current = container.state.as_ref().and_then(|s| s.terminated.as_ref()).filter(failed);
    let last = || {
        let waiting = container.state.as_ref().is_some_and(|s| s.waiting.is_some());
        let last = container.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        last.filter(failed).filter(|_| waiting)
    };
    let terminated = current.or_else(last)?;
    let said = (terminated.message.as_deref())
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| {
            let mut cut: String = m.chars().take(FAILURE_MESSAGE_LIMIT).collect();
            if cut.len() < m.len() {
                cut.push('…');
            }
            format!(": {cut}")
        })
        .unwrap_or_else(|| {
            format!(
                "; its log says why: kubectl logs {} -c {RESTORE_INIT_CONTAINER} --previous",
                pod.name_any()
            )
        });
    let reason = terminated.reason.as_deref().unwrap_or("Error");
    Some(format!(
        "pod {}: init container {RESTORE_INIT_CONTAINER} exited with code {} ({reason}){said}",
        pod.name_any(),
        terminated.exit_code
    ))
}

fn now() -> Time {
    Time(Timestamp::now())
}

struct Job<'a> {
    object: &'a MedusaRestoreJob,
    id: JobRef,
    context: &'a MedusaRestoreContext,
}

impl Job<'_> {
    fn api_error(&self, action: impl Into<String>) -> impl FnOnce(kube::Error) -> JobError {
        self.id.api_error(action)
    }

    fn status(&self) -> MedusaRestoreJobStatus {
        self.object.status.clone().unwrap_or_default()
    }

    async fn write_status(&self, status: &MedusaRestoreJobStatus) -> Result<(), JobError> {
        if self.object.status.as_ref() == Some(status) {
            return Ok(());
        }
        (self.id)
            .write_status::<MedusaRestoreJob>(&self.context.client, FIELD_MANAGER, status)
            .await
    }

    async fn publish(&self, notice: Notice) {
        self.context.events.publish(self.object, &notice).await;
    }

    fn with_condition(
        &self,
        mut status: MedusaRestoreJobStatus,
        kind: &str,
        state: &str,
        reason: &str,
        message: impl Into<String>,
    ) -> MedusaRestoreJobStatus {
        let mut conditions = status.conditions.take().unwrap_or_default();
        let generation = self.object.metadata.generation;
        set_condition(
            &mut conditions,
            new_condition(kind, state, reason, message, generation, now()),
        );
        status.conditions = Some(conditions);
        status
    }

    /// Says what the restore waits for (a Warning Event only when that changes).
    async fn blocked(&self, reason: &str, message: String) -> Result<Action, JobError> {
        let status = self.status();
        let already = (status.conditions.iter().flatten()).any(|c| {
            c.type_ == CONDITION_BLOCKED && c.status == CONDITION_TRUE && c.reason == reason
        });
        let next = self.with_condition(status, CONDITION_BLOCKED, CONDITION_TRUE, reason, &message);
        self.write_status(&next).await?;
        if !already {
            self.publish(Notice::warning(reason, "Restore", message)).await;
        }
        Ok(Action::requeue(WAIT))
    }

    async fn not_deployed(&self, dc: &CassandraDatacenter) -> Result<Action, JobError> {
        let message = format!(
            "datacenter {} has no {RESTORE_INIT_CONTAINER} init container: set spec.medusa in the K8ssandraCluster",
            dc.name_any()
        );
        self.blocked("MedusaNotDeployed", message).await
    }

    /// `Blocked` back to False once the restore moves on.
    fn unblocked(&self, status: MedusaRestoreJobStatus) -> MedusaRestoreJobStatus {
        let was_blocked = (status.conditions.iter().flatten())
            .any(|c| c.type_ == CONDITION_BLOCKED && c.status == CONDITION_TRUE);
        match was_blocked {
            true => self.with_condition(
                status,
                CONDITION_BLOCKED,
                CONDITION_FALSE,
                "Progressing",
                "the restore is running",
            ),
            false => status,
        }
    }

    /// Ends the job as failed, saying why in `message`, the `Failed` condition and an Event.
    async fn fail(
        &self,
        mut status: MedusaRestoreJobStatus,
        reason: &str,
        message: String,
    ) -> Result<Action, JobError> {
        status.finish_time = Some(now());
        status.message = Some(message.clone());
        let status = self.unblocked(status);
        let status =
            self.with_condition(status, CONDITION_FAILED, CONDITION_TRUE, reason, &message);
        self.write_status(&status).await?;
        self.publish(Notice::warning(reason, "Restore", message)).await;
        Ok(Action::await_change())
    }

    async fn apply_datacenter(&self, body: &Value) -> Result<(), JobError> {
        let api: Api<CassandraDatacenter> =
            Api::namespaced(self.context.client.clone(), &self.id.namespace);
        api.patch(
            &self.object.spec.cassandra_datacenter,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
        .map(|_| ())
        .map_err(self.api_error("applying the restore to the CassandraDatacenter"))
    }

    async fn start(&self, status: MedusaRestoreJobStatus) -> Result<Action, JobError> {
        let mut status = self.unblocked(status);
        status.start_time = Some(now());
        status.restore_key = uuid_v4();
        status.restore_prepared = Some(false);
        self.write_status(&status).await?;
        self.publish(Notice::normal(
            "RestoreStarted",
            "Restore",
            format!(
                "restore of backup {} onto datacenter {} started",
                self.object.spec.backup, self.object.spec.cassandra_datacenter
            ),
        ))
        .await;
        Ok(Action::requeue(Duration::from_millis(100)))
    }

    /// The mapping from the backup's nodes as the first pod's Medusa that answers lists them.
    async fn prepare(
        &self,
        status: MedusaRestoreJobStatus,
        dc: &CassandraDatacenter,
    ) -> Result<Action, JobError> {
        let pods = datacenter_pods(&self.context.client, dc)
            .await
            .map_err(self.api_error("listing the datacenter's pods"))?;
        let backup = &self.object.spec.backup;
        let mut unreachable = Vec::new();
        let mut nodes = None;
        for (pod, _) in pods.iter().filter(|(p, medusa)| *medusa && !p.ip.is_empty()) {
            match self.context.medusa.backups(pod).await {
                Ok(backups) => {
                    nodes = Some(backups.into_iter().find(|b| &b.backup_name == backup));
                    break;
                }
                Err(error) => unreachable.push(error.to_string()),
            }
        }
        let Some(found) = nodes else {
            let why = match unreachable.is_empty() {
                true => "no pod of the datacenter runs Medusa with an IP".to_string(),
                false => unreachable.join("; "),
            };
            return self
                .blocked(
                    "MedusaUnreachable",
                    format!("no Medusa of the datacenter listed the backups: {why}"),
                )
                .await;
        };
        let Some(summary) = found else {
            return self
                .fail(
                    status,
                    "BackupNotInStorage",
                    format!("Medusa's storage holds no backup {backup}"),
                )
                .await;
        };
        let mapping = match restore_mapping(&summary.nodes, dc) {
            Ok(mapping) => mapping,
            Err(why) => return self.fail(status, "MappingFailed", why).await,
        };
        let mut status = self.unblocked(status);
        status.restore_mapping = Some(mapping);
        status.restore_prepared = Some(true);
        self.write_status(&status).await?;
        self.publish(Notice::normal(
            "RestorePrepared",
            "Restore",
            format!("restore mapping of backup {backup} prepared"),
        ))
        .await;
        Ok(Action::requeue(Duration::from_millis(100)))
    }

    async fn stop(
        &self,
        status: MedusaRestoreJobStatus,
        dc: &CassandraDatacenter,
    ) -> Result<Action, JobError> {
        // Not stopped for a restore that could not be put in.
        if restore_env_applied(dc, &[]).is_none() {
            return self.not_deployed(dc).await;
        }
        let spec_stopped = dc.spec.stopped == Some(true);
        let stopped = spec_stopped
            && dc.status.as_ref().is_some_and(|s| s.is_stopped_at(dc.metadata.generation));
        if !stopped {
            if !spec_stopped {
                self.apply_datacenter(&restore_body(dc, true, None)).await?;
                self.publish(Notice::normal(
                    "StoppingDatacenter",
                    "Restore",
                    format!("stopping datacenter {} for the restore", dc.name_any()),
                ))
                .await;
            }
            return Ok(Action::requeue(POLL));
        }
        let mut status = self.unblocked(status);
        status.datacenter_stopped = Some(now());
        self.write_status(&status).await?;
        Ok(Action::requeue(Duration::from_millis(100)))
    }

    async fn restore(
        &self,
        status: MedusaRestoreJobStatus,
        dc: &CassandraDatacenter,
    ) -> Result<Action, JobError> {
        let env = match restore_env(&self.object.spec.backup, &status) {
            Ok(env) => env,
            Err(error) => {
                return self.fail(status, "MappingFailed", error.to_string()).await;
            }
        };
        match restore_env_applied(dc, &env) {
            None => return self.not_deployed(dc).await,
            Some(false) => {
                self.apply_datacenter(&restore_body(dc, false, Some(env))).await?;
                self.publish(Notice::normal(
                    "StartingDatacenter",
                    "Restore",
                    format!(
                        "datacenter {} starts again, restoring backup {}",
                        dc.name_any(),
                        self.object.spec.backup
                    ),
                ))
                .await;
                return Ok(Action::requeue(POLL));
            }
            Some(true) => {}
        }
        if dc.spec.stopped == Some(true) {
            return self
                .blocked(
                    "DatacenterStoppedBySpec",
                    format!(
                        "datacenter {} stays stopped: its K8ssandraCluster stops it",
                        dc.name_any()
                    ),
                )
                .await;
        }
        if !dc.is_ready() {
            if let Some(why) = self.failing_restore_container(dc).await? {
                let message = format!(
                    "the restore of backup {} cannot finish while it fails, and is retried by the kubelet: {why}",
                    self.object.spec.backup
                );
                // Polled, not waited on: the Event is said once, the recovery seen at once.
                self.blocked("RestoreContainerFailing", message).await?;
            }
            return Ok(Action::requeue(POLL));
        }
        let mut status = self.unblocked(status);
        status.finish_time = Some(now());
        let message = format!(
            "datacenter {} restored from backup {}",
            dc.name_any(),
            self.object.spec.backup
        );
        let status = self.with_condition(
            status,
            CONDITION_COMPLETE,
            CONDITION_TRUE,
            "Restored",
            &message,
        );
        self.write_status(&status).await?;
        self.publish(Notice::normal("RestoreFinished", "Restore", message)).await;
        Ok(Action::await_change())
    }

    /// The first of the datacenter's pods (by name) whose `medusa-restore` init container fails.
    async fn failing_restore_container(
        &self,
        dc: &CassandraDatacenter,
    ) -> Result<Option<String>, JobError> {
        let selector = format!(
            "{CASSANDRA_CLUSTER_LABEL}={},{CASSANDRA_DATACENTER_LABEL}={}",
            clean_for_kubernetes(&dc.spec.cluster_name),
            datacenter_name(dc),
        );
        let pods: Api<Pod> = Api::namespaced(self.context.client.clone(), &self.id.namespace);
        let mut listed = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(self.api_error("listing the datacenter's pods"))?
            .items;
        listed.sort_by_key(|p| p.name_any());
        Ok(listed.iter().find_map(restore_container_failure))
    }

    /// A job past its limit fails; the datacenter it stopped starts again, without a restore.
    async fn time_out(
        &self,
        status: MedusaRestoreJobStatus,
        next: &Step,
        dc: Option<&CassandraDatacenter>,
    ) -> Result<Action, JobError> {
        let waited = match next {
            Step::Start | Step::Prepare => "the restore mapping",
            Step::Stop => "the datacenter to stop",
            Step::Restore | Step::Done => "the datacenter to be Ready, restored",
        };
        // Started again only when the restore's environment is not in yet (else it runs).
        let env = restore_env(&self.object.spec.backup, &status).ok();
        if let Some(dc) = dc {
            let applied = env.is_some_and(|env| restore_env_applied(dc, &env) == Some(true));
            if matches!(next, Step::Stop | Step::Restore) && !applied {
                self.apply_datacenter(&restore_body(dc, false, None)).await?;
            }
        }
        let message = format!(
            "not finished {}s after its start: waited for {waited}",
            self.context.restore_limit.as_secs()
        );
        self.fail(status, "TimedOut", message).await
    }
}

/// A random (version 4) UUID, as upstream's restore keys.
fn uuid_v4() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn elapsed_since(start: Option<&Time>) -> Duration {
    start
        .map(|t| Timestamp::now().duration_since(t.0))
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or_default()
}

/// One reconcile of a job (run by [`super::job_controller::run`]).
pub(super) async fn reconcile(
    job: Arc<MedusaRestoreJob>,
    context: Arc<MedusaRestoreContext>,
) -> Result<Action, JobError> {
    let this = Job {
        object: &job,
        id: JobRef::of(job.as_ref())?,
        context: &context,
    };
    let next = step(job.status.as_ref());
    if next == Step::Done {
        return Ok(Action::await_change());
    }
    let status = this.status();
    let datacenters: Api<CassandraDatacenter> =
        Api::namespaced(context.client.clone(), &this.id.namespace);
    let dc_name = &job.spec.cassandra_datacenter;
    let dc = datacenters
        .get_opt(dc_name)
        .await
        .map_err(this.api_error(format!("reading CassandraDatacenter {dc_name}")))?;
    if status.start_time.is_some()
        && elapsed_since(status.start_time.as_ref()) > context.restore_limit
    {
        return this.time_out(status, &next, dc.as_ref()).await;
    }
    let Some(dc) = dc else {
        let message = format!(
            "CassandraDatacenter {dc_name} does not exist in namespace {}",
            this.id.namespace
        );
        return this.blocked("DatacenterNotFound", message).await;
    };
    if (this.id).own_by_datacenter(&context.client, FIELD_MANAGER, job.as_ref(), &dc).await? {
        // The next reconcile, on the job as written, goes on (a step taken now could be taken
        // again on the cached job of before the write).
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    if matches!(next, Step::Start | Step::Prepare) {
        let backups: Api<MedusaBackup> =
            Api::namespaced(context.client.clone(), &this.id.namespace);
        let backup_name = &job.spec.backup;
        let backup = backups
            .get_opt(backup_name)
            .await
            .map_err(this.api_error(format!("reading MedusaBackup {backup_name}")))?;
        let Some(backup) = backup else {
            let message = format!(
                "MedusaBackup {backup_name} does not exist in namespace {}: name a finished backup (kubectl get medusabackups)",
                this.id.namespace
            );
            return this.blocked("BackupNotFound", message).await;
        };
        let Some(recorded) = backup.status.as_ref() else {
            let message = format!("MedusaBackup {backup_name} has no status yet");
            return this.blocked("BackupNotFinished", message).await;
        };
        if let Some(why) = size_mismatch(recorded, &dc) {
            let message =
                format!("MedusaBackup {backup_name} cannot be restored onto {dc_name} yet: {why}");
            return this.blocked("SizeMismatch", message).await;
        }
        if let Err(why) = validate_backup(recorded, &dc) {
            let message =
                format!("MedusaBackup {backup_name} cannot be restored onto {dc_name}: {why}");
            return this.fail(status, "BackupNotUsable", message).await;
        }
    }
    match next {
        Step::Start => this.start(status).await,
        Step::Prepare => this.prepare(status, &dc).await,
        Step::Stop => this.stop(status, &dc).await,
        Step::Restore => this.restore(status, &dc).await,
        Step::Done => Ok(Action::await_change()),
    }
}

#[cfg(test)]
mod tests;
