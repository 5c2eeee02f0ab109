//! One reconcile of a task, in upstream's order (`CassandraTaskReconciler.Reconcile`):
//! scheduled time, TTL of a finished task, the datacenter, the concurrency policy and the
//! activation, then the job, then completion.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::store::ResourceInfo;

use super::datacenter::{DC_GROUP, DC_PLURAL, Datacenter, set_controller_reference};
use super::error::TaskError;
use super::spec::{Command, JobArguments, PodCommand, PodJob, TaskSpec, parse_time};
use super::status::{COMPLETE, DATACENTER_UPDATED, FAILED, RUNNING, TaskStatus};
use super::{
    ACTIVE, COMPLETED, GROUP, JOB_RUNNING_REQUEUE, OUT_OF_SYNC_REQUEUE, PLURAL, STATUS_LABEL,
    TASK_RUNNING_REQUEUE, TaskController, TaskKey,
};

/// The datacenter annotation that lets cass-operator apply a changed spec (`once`, `always`).
const UPDATE_ALLOWED_ANNOTATION: &str = "cassandra.datastax.com/autoupdate-spec";

/// When the task wants to be reconciled again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    Done,
    After(Duration),
}

/// What running the task's job found (`processJobs`' results).
pub(super) struct JobsOutcome {
    /// Some while the job is not over.
    pub requeue: Option<Duration>,
    pub failed: usize,
    pub completed: usize,
    /// A validation failure: the task ends Failed with this message, wrapped as
    /// controller-runtime's `TerminalError` words it.
    pub terminal: Option<String>,
}

/// Whether a job's arguments let it run (upstream's `ValidatorFunc`).
pub(super) enum Validation {
    Valid,
    Invalid(String),
    /// A transient error: the reconcile fails and is retried.
    Retry(TaskError),
}

/// A task as read, with its decoded spec and the status being built.
pub(super) struct Task {
    pub object: Value,
    pub spec: TaskSpec,
    pub status: TaskStatus,
    /// The status last read or written: unchanged statuses are not written again.
    written: TaskStatus,
}

impl Task {
    fn from_object(object: Value) -> Result<Task, TaskError> {
        let status = TaskStatus::parse(&object)?;
        Ok(Task {
            spec: TaskSpec::parse(&object)?,
            written: status.clone(),
            status,
            object,
        })
    }

    fn text(&self, pointer: &str) -> &str {
        self.object.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.text("/metadata/namespace")
    }

    pub fn name(&self) -> &str {
        self.text("/metadata/name")
    }

    fn label(&self, key: &str) -> Option<&str> {
        self.object.pointer("/metadata/labels").and_then(|l| l.get(key)).and_then(Value::as_str)
    }

    /// Merges `entries` into `metadata.<field>` (labels or annotations).
    fn merge_metadata_map(&mut self, field: &str, entries: &BTreeMap<String, String>) {
        let Some(metadata) = self.object.get_mut("metadata").and_then(Value::as_object_mut) else {
            return;
        };
        let map = metadata.entry(field).or_insert_with(|| Value::Object(Map::new()));
        if !map.is_object() {
            *map = Value::Object(Map::new());
        }
        if let Some(map) = map.as_object_mut() {
            for (key, value) in entries {
                map.insert(key.clone(), Value::String(value.clone()));
            }
        }
    }

    fn set_status_label(&mut self, value: &str) {
        self.merge_metadata_map(
            "labels",
            &BTreeMap::from([(STATUS_LABEL.to_string(), value.to_string())]),
        );
    }

    fn first_command(&self) -> Option<Command> {
        self.spec.jobs.first().map(|job| Command::parse(&job.command))
    }
}

fn seconds_until(now: jiff::Timestamp, at: jiff::Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// RFC3339 with whole seconds, as `metav1.Time` is written.
fn rfc3339(at: jiff::Timestamp) -> String {
    jiff::Timestamp::from_second(at.as_second()).unwrap_or(at).to_string()
}

/// The JSON merge patch that turns `old` into `new` (what controller-runtime's `MergeFrom`
/// sends): changed members, `null` for removed ones; arrays and scalars whole.
fn merge_diff(old: &Value, new: &Value) -> Value {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return new.clone();
    };
    let mut changes = Map::new();
    for (key, value) in new {
        match old.get(key) {
            Some(previous) if previous == value => {}
            Some(previous) if previous.is_object() && value.is_object() => {
                changes.insert(key.clone(), merge_diff(previous, value));
            }
            _ => {
                changes.insert(key.clone(), value.clone());
            }
        }
    }
    for key in old.keys().filter(|key| !new.contains_key(*key)) {
        changes.insert(key.clone(), Value::Null);
    }
    Value::Object(changes)
}

impl TaskController {
    fn tasks_resource(&self) -> Result<ResourceInfo, TaskError> {
        Ok(self.kube.resource(GROUP, PLURAL)?)
    }

    pub(super) async fn reconcile(&mut self, key: &TaskKey) -> Result<Next, TaskError> {
        let tasks = self.tasks_resource()?;
        let object = match self.kube.get(&tasks, &key.0, &key.1) {
            Ok(object) => object,
            Err(e) if e.code == 404 => return Ok(Next::Done),
            Err(e) => return Err(e.into()),
        };
        if object.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(Next::Done);
        }
        let mut task = Task::from_object(object)?;
        let now = jiff::Timestamp::now();
        if let Some(at) = task.spec.scheduled_time()?
            && now < at
        {
            return Ok(Next::After(seconds_until(now, at)));
        }
        let status_label = task.label(STATUS_LABEL).map(str::to_string);
        if task.status.completion_time.is_none() && status_label.as_deref() == Some(COMPLETED) {
            return Ok(Next::After(OUT_OF_SYNC_REQUEUE));
        }
        if let Some(completed) = task.status.completion_time.as_deref() {
            return self.expire(&tasks, &task, parse_time(completed)?, now);
        }
        let dc = self.target_datacenter(&task)?;
        if status_label.is_none() {
            if self.blocked_by_active_tasks(&task, &dc)? {
                return Ok(Next::After(TASK_RUNNING_REQUEUE));
            }
            self.activate(&mut task, &dc)?;
        }
        if task.spec.jobs.len() > 1 {
            return Err(TaskError::TooManyJobs);
        }
        let outcome = self.process_jobs(&mut task, &dc).await?;
        let mut next = outcome.requeue.map_or(Next::Done, Next::After);
        if outcome.requeue.is_none() {
            task.set_status_label(COMPLETED);
            self.write_metadata(&mut task)?;
            task.status.active = 0;
            task.status.completion_time = Some(rfc3339(now));
            task.status.set_condition(COMPLETE, true, "");
            task.status.set_condition(RUNNING, false, "");
            if outcome.failed > 0 {
                let message = match &outcome.terminal {
                    Some(message) => format!("terminal error: {message}"),
                    None => format!("{} pods failed during processing", outcome.failed),
                };
                task.status.set_condition(FAILED, true, &message);
            }
            next = match task.spec.deletion_time(now) {
                Some(at) if at > now => Next::After(seconds_until(now, at)),
                _ => Next::Done,
            };
        }
        let Some(command) = task.first_command() else {
            // Upstream reads `Jobs[0]` here and panics: the task stays labelled completed
            // without a completion time.
            return Err(TaskError::Malformed(
                "runtime error: index out of range [0] with length 0".into(),
            ));
        };
        let mut completed = outcome.completed;
        if command == Command::PerPod(PodCommand::ReplaceNode) {
            // Upstream's offset for the replaced pods its count missed.
            let succeeded = task
                .status
                .pod_statuses
                .values()
                .filter(|s| s.status == super::status::PodPhase::Completed)
                .count();
            completed = completed.max(succeeded);
        }
        task.status.succeeded = i64::try_from(completed).unwrap_or(i64::MAX);
        task.status.failed = i64::try_from(outcome.failed).unwrap_or(i64::MAX);
        self.write_status(&mut task)?;
        if outcome.terminal.is_some() {
            // controller-runtime does not requeue a terminal error, whatever the result says.
            return Ok(Next::Done);
        }
        Ok(next)
    }

    /// A finished task: deleted once its TTL has passed (never with TTL 0).
    fn expire(
        &self,
        tasks: &ResourceInfo,
        task: &Task,
        completed: jiff::Timestamp,
        now: jiff::Timestamp,
    ) -> Result<Next, TaskError> {
        match task.spec.deletion_time(completed) {
            None => Ok(Next::Done),
            Some(at) if at < now => match self.kube.delete(tasks, task.namespace(), task.name()) {
                Ok(()) => Ok(Next::Done),
                Err(e) if e.code == 404 => Ok(Next::Done),
                Err(e) => Err(e.into()),
            },
            Some(at) => Ok(Next::After(seconds_until(now, at))),
        }
    }

    fn target_datacenter(&self, task: &Task) -> Result<Datacenter, TaskError> {
        let reference = &task.spec.datacenter;
        let unavailable = |source: ApiError| TaskError::DatacenterUnavailable {
            name: reference.name.clone(),
            source,
        };
        let info = self.kube.resource(DC_GROUP, DC_PLURAL).map_err(unavailable)?;
        // Without a namespace the client asks at cluster scope, where no datacenter is.
        let dc = if reference.namespace.is_empty() {
            Err(ApiError::not_found(DC_GROUP, DC_PLURAL, &reference.name))
        } else {
            self.kube.get(&info, &reference.namespace, &reference.name)
        };
        Datacenter::from_object(&dc.map_err(unavailable)?)
    }

    /// The concurrency policy against the datacenter's other active tasks. Upstream reads the
    /// others' policy as written: only an explicit Forbid there blocks an Allow task.
    fn blocked_by_active_tasks(&self, task: &Task, dc: &Datacenter) -> Result<bool, TaskError> {
        let tasks = self.tasks_resource()?;
        let mut labels = dc.labels();
        labels.insert(STATUS_LABEL.to_string(), ACTIVE.to_string());
        let others: Vec<Value> = self
            .kube
            .list(&tasks, &dc.namespace, &labels)?
            .into_iter()
            .filter(|other| {
                let text = |p: &str| other.pointer(p).and_then(Value::as_str).unwrap_or_default();
                !(text("/metadata/name") == task.name()
                    && text("/metadata/namespace") == task.namespace())
            })
            .collect();
        if others.is_empty() {
            return Ok(false);
        }
        if task.spec.forbids_concurrency() {
            return Ok(true);
        }
        Ok(others.iter().any(|other| {
            other.pointer("/spec/concurrencyPolicy").and_then(Value::as_str) == Some("Forbid")
        }))
    }

    /// The task starts: its status gets a start time, then it is owned by the datacenter, with
    /// its labels, labelled active. The status goes first, so a task seen labelled active
    /// always has its start time.
    fn activate(&self, task: &mut Task, dc: &Datacenter) -> Result<(), TaskError> {
        task.status.start_time = Some(crate::now_rfc3339());
        // One task runs one job at a time.
        task.status.active = 1;
        self.write_status(task)?;
        set_controller_reference(&mut task.object, dc).map_err(|reason| {
            TaskError::OwnerReference {
                task: format!("{}/{}", task.namespace(), task.name()),
                reason,
            }
        })?;
        let mut labels = dc.labels();
        labels.extend(dc.operator_labels());
        labels.insert(STATUS_LABEL.to_string(), ACTIVE.to_string());
        task.merge_metadata_map("labels", &labels);
        task.merge_metadata_map("annotations", &dc.additional_annotations);
        self.write_metadata(task)
    }

    /// PUT of the task's metadata and spec; the status being built stays as it is.
    fn write_metadata(&self, task: &mut Task) -> Result<(), TaskError> {
        let tasks = self.tasks_resource()?;
        task.object = self.kube.update(&tasks, task.object.clone())?;
        Ok(())
    }

    /// PUT of the task's status, unless it is what was last read or written.
    pub(super) fn write_status(&self, task: &mut Task) -> Result<(), TaskError> {
        if task.status == task.written {
            return Ok(());
        }
        let tasks = self.tasks_resource()?;
        let status = serde_json::to_value(&task.status)
            .map_err(|e| TaskError::Malformed(format!("CassandraTask status: {e}")))?;
        let mut object = task.object.clone();
        if let Some(fields) = object.as_object_mut() {
            fields.insert("status".into(), status);
        }
        task.object = self.kube.update_status(&tasks, object)?;
        task.written = task.status.clone();
        Ok(())
    }

    /// A merge patch of the task's status from what was last written, as upstream patches it
    /// while it processes the pods: no resourceVersion, so a concurrent write to the task does
    /// not make the controller forget the jobs it has just submitted.
    pub(super) fn patch_status(&self, task: &mut Task) -> Result<(), TaskError> {
        if task.status == task.written {
            return Ok(());
        }
        let encode = |status: &TaskStatus| {
            serde_json::to_value(status)
                .map_err(|e| TaskError::Malformed(format!("CassandraTask status: {e}")))
        };
        let changes = merge_diff(&encode(&task.written)?, &encode(&task.status)?);
        let tasks = self.tasks_resource()?;
        let patch = json!({ "status": changes });
        task.object = self.kube.merge_patch(&tasks, task.namespace(), task.name(), &patch, true)?;
        task.written = task.status.clone();
        Ok(())
    }

    /// `processJobs`: the task's one job.
    async fn process_jobs(
        &mut self,
        task: &mut Task,
        dc: &Datacenter,
    ) -> Result<JobsOutcome, TaskError> {
        let mut outcome = JobsOutcome {
            requeue: None,
            failed: 0,
            completed: 0,
            terminal: None,
        };
        for job in task.spec.jobs.clone() {
            let command = match Command::parse(&job.command) {
                Command::Restart => {
                    let restart_time = task.status.start_time.clone().unwrap_or_default();
                    let progress = self.rolling_restart(dc, &job.arguments, &restart_time)?;
                    return Ok(JobsOutcome {
                        requeue: (!progress.done).then_some(JOB_RUNNING_REQUEUE),
                        completed: progress.restarted,
                        ..outcome
                    });
                }
                Command::Refresh => {
                    let requeue = self.refresh(task, dc)?;
                    return Ok(JobsOutcome { requeue, ..outcome });
                }
                Command::Unknown(name) => return Err(TaskError::UnknownCommand(name)),
                Command::PerPod(command) => command,
            };
            if !task.status.has_condition(RUNNING, true) {
                match self.validate(command, &job.arguments, dc) {
                    Validation::Valid => {}
                    Validation::Retry(error) => return Err(error),
                    Validation::Invalid(message) => {
                        outcome.failed += 1;
                        outcome.terminal = Some(message);
                        outcome.requeue = None;
                        break;
                    }
                }
                if command == PodCommand::ReplaceNode {
                    self.mark_replacements(dc, &job.arguments)?;
                }
            }
            if task.status.set_condition(RUNNING, true, "") {
                self.write_status(task)?;
            }
            let pod_job = PodJob {
                command,
                args: &job.arguments,
                retries_failed_pods: task.spec.retries_failed_pods(),
                retries: task.spec.retries,
                max_concurrent_pods: task.spec.max_concurrent_pods,
            };
            outcome = self.reconcile_every_pod(task, dc, &pod_job).await?;
            if outcome.requeue.is_some() {
                break;
            }
        }
        Ok(outcome)
    }

    fn validate(&self, command: PodCommand, args: &JobArguments, dc: &Datacenter) -> Validation {
        match command {
            PodCommand::ReplaceNode => self.validate_replace(args, dc),
            PodCommand::Move => self.validate_move(args, dc),
            _ => Validation::Valid,
        }
    }

    /// `moveValidator`: new tokens for pods that exist.
    fn validate_move(&self, args: &JobArguments, dc: &Datacenter) -> Validation {
        if args.new_tokens.is_empty() {
            return Validation::Invalid("missing required new_tokens argument".into());
        }
        let pods = match self.datacenter_pods(dc) {
            Ok(pods) => pods,
            Err(error) => return Validation::Retry(error),
        };
        match args.new_tokens.keys().find(|name| !pods.iter().any(|pod| &pod.name == *name)) {
            Some(missing) => Validation::Invalid(format!(
                "invalid new_tokens argument: pod doesn't exist: {missing}"
            )),
            None => Validation::Valid,
        }
    }

    /// `refreshDatacenter`: asks cass-operator to apply the datacenter's spec once (annotation
    /// `autoupdate-spec: once`) and waits until the annotation is gone again.
    fn refresh(&self, task: &mut Task, dc: &Datacenter) -> Result<Option<Duration>, TaskError> {
        if let Some(allowed) = dc.annotations.get(UPDATE_ALLOWED_ANNOTATION) {
            return Ok((allowed != "always").then_some(JOB_RUNNING_REQUEUE));
        }
        if task.status.has_condition(DATACENTER_UPDATED, true) {
            return Ok(None);
        }
        let datacenters = self.kube.resource(DC_GROUP, DC_PLURAL)?;
        let patch = json!({"metadata": {"annotations": {UPDATE_ALLOWED_ANNOTATION: "once"}}});
        self.kube.merge_patch(&datacenters, &dc.namespace, &dc.name, &patch, false)?;
        if task.status.set_condition(
            DATACENTER_UPDATED,
            true,
            "Datacenter updated to update spec once",
        ) {
            self.write_status(task)?;
        }
        Ok(Some(JOB_RUNNING_REQUEUE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_merge_diff_keeps_changes_and_nulls_removals() {
        let old = json!({"active": 1, "podStatuses": {"a": {"status": "RUNNING", "jobId": "j"},
                                                      "b": {"status": "RUNNING"}}});
        let new = json!({"active": 1, "podStatuses": {"a": {"status": "COMPLETED", "jobId": "j"}},
                         "conditions": [{"type": "Running"}]});
        assert_eq!(
            merge_diff(&old, &new),
            json!({"podStatuses": {"a": {"status": "COMPLETED"}, "b": null},
                   "conditions": [{"type": "Running"}]})
        );
    }
}
