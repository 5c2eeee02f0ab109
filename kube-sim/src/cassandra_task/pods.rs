//! Running a command pod by pod, as upstream's `reconcileEveryPodTask` does: the datacenter's
//! pods (by its labels) sorted by rack then name; racks one after the other; within a rack at
//! most `maxConcurrentPods` at once (1 unless set; upstream takes 0 as it is, so nothing ever
//! starts); each pod's progress in `status.podStatuses`.
//!
//! A pod's job goes to its node's Management API: asynchronously when the node has the job's
//! feature (the job id is kept and polled), else through the synchronous endpoint, or not at
//! all ("this job isn't supported by the target pod").

use std::collections::BTreeMap;

use serde_json::Value;

use crate::cassandra::{JobStatus, NodeOperation, PodRef, TableOperation};

use super::datacenter::{Datacenter, RACK_LABEL};
use super::error::TaskError;
use super::management::{Feature, ManagementApi};
use super::reconcile::{JobsOutcome, Task};
use super::spec::{JobArguments, PodCommand, PodJob};
use super::status::{PodPhase, PodStatus};
use super::{JOB_RUNNING_REQUEUE, TaskController};

const NOT_SUPPORTED: &str = "this job isn't supported by the target pod";
/// What upstream records for a RUNNING pod without a job id and no sync job in flight.
const SYNC_TASK_LOST: &str = "Pod or controller crashed during sync task";

/// A pod of the datacenter, as the controller reads it.
#[derive(Debug, Clone)]
pub(super) struct DcPod {
    pub name: String,
    pub namespace: String,
    pub rack: String,
    pub ip: Option<String>,
    /// The pod's Ready condition (what a StatefulSet counts as ready).
    pub ready: bool,
    pub object: Value,
}

impl DcPod {
    pub fn from_object(pod: Value) -> Option<DcPod> {
        let text = |pointer: &str| pod.pointer(pointer).and_then(Value::as_str).map(str::to_string);
        let ready = pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|all| {
                all.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
            })
            .is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True"));
        Some(DcPod {
            name: text("/metadata/name")?,
            namespace: text("/metadata/namespace")?,
            rack: text(&format!(
                "/metadata/labels/{}",
                RACK_LABEL.replace('/', "~1")
            ))
            .unwrap_or_default(),
            ip: text("/status/podIP").filter(|ip| !ip.is_empty()),
            ready,
            object: pod,
        })
    }
}

impl PodCommand {
    fn async_feature(self) -> Option<Feature> {
        match self {
            PodCommand::Cleanup => Some(Feature::AsyncSSTableTasks),
            PodCommand::Rebuild => Some(Feature::Rebuild),
            PodCommand::UpgradeSSTables => Some(Feature::AsyncUpgradeSSTableTask),
            PodCommand::Compact => Some(Feature::AsyncCompactionTask),
            PodCommand::Scrub => Some(Feature::AsyncScrubTask),
            PodCommand::GarbageCollect => Some(Feature::AsyncGarbageCollect),
            PodCommand::Flush => Some(Feature::AsyncFlush),
            PodCommand::Move => Some(Feature::Move),
            PodCommand::TsReload | PodCommand::ReplaceNode => None,
        }
    }

    /// A feature the synchronous endpoint needs (only the truststore reload has one).
    fn sync_feature(self) -> Option<Feature> {
        (self == PodCommand::TsReload).then_some(Feature::ReloadInodeTruststore)
    }

    /// Rebuild and move have no synchronous endpoint upstream.
    fn has_sync_endpoint(self) -> bool {
        !matches!(self, PodCommand::Rebuild | PodCommand::Move)
    }

    /// The endpoint path (v1 for the asynchronous jobs, v0 for the synchronous calls).
    fn endpoint(self, asynchronous: bool, args: &JobArguments) -> String {
        let version = if asynchronous { "v1" } else { "v0" };
        let path = match self {
            PodCommand::Cleanup => "ops/keyspace/cleanup".to_string(),
            PodCommand::Rebuild => format!("ops/node/rebuild?src_dc={}", args.source_datacenter),
            PodCommand::UpgradeSSTables => "ops/tables/sstables/upgrade".into(),
            PodCommand::Compact => "ops/tables/compact".into(),
            PodCommand::Scrub => "ops/tables/scrub".into(),
            PodCommand::GarbageCollect => "ops/tables/garbagecollect".into(),
            PodCommand::Flush => "ops/tables/flush".into(),
            PodCommand::Move => return "/api/v0/ops/node/move".into(),
            PodCommand::TsReload => {
                return "/api/v0/ops/node/encryption/internode/truststore/reload".into();
            }
            PodCommand::ReplaceNode => return "/api/v0/ops/node/drain".into(),
        };
        format!("/api/{version}/{path}")
    }

    /// What the node runs for this command; None for those the model has no operation for.
    fn operation(self, args: &JobArguments) -> Option<NodeOperation> {
        let table = |operation| NodeOperation::Table {
            operation,
            keyspace: args.keyspace(),
            tables: args.tables.clone(),
        };
        Some(match self {
            PodCommand::Cleanup => NodeOperation::Cleanup {
                keyspace: args.keyspace(),
                tables: args.tables.clone(),
            },
            PodCommand::Rebuild => NodeOperation::Rebuild {
                source_dc: Some(args.source_datacenter.clone()).filter(|dc| !dc.is_empty()),
            },
            PodCommand::UpgradeSSTables => table(TableOperation::UpgradeSSTables),
            PodCommand::Compact => table(TableOperation::Compact),
            PodCommand::Scrub => table(TableOperation::Scrub),
            PodCommand::GarbageCollect => table(TableOperation::GarbageCollect),
            PodCommand::Flush => table(TableOperation::Flush),
            PodCommand::Move | PodCommand::TsReload | PodCommand::ReplaceNode => return None,
        })
    }

    /// Which pods the command processes: `new_tokens`' pods for move; for replacenode a pod or
    /// rack must be named; otherwise the `rack` and `pod_name` arguments, when given.
    fn accepts(self, pod: &DcPod, args: &JobArguments) -> bool {
        match self {
            PodCommand::Move => args.new_tokens.contains_key(&pod.name),
            PodCommand::ReplaceNode if args.rack_name.is_empty() && args.pod_name.is_empty() => {
                false
            }
            _ => {
                (args.rack_name.is_empty() || pod.rack == args.rack_name)
                    && (args.pod_name.is_empty() || pod.name == args.pod_name)
            }
        }
    }
}

/// What `checkRackCompletion` counted.
struct RackCheck {
    remaining: usize,
    failed: usize,
    completed: usize,
    running: usize,
}

/// What `processRack` tells its caller.
struct RackOutcome {
    requeue: bool,
    failed: usize,
    completed: usize,
    running: usize,
}

impl TaskController {
    pub(super) fn pod_ref(&self, pod: &DcPod) -> PodRef {
        PodRef::new(&self.region, &pod.namespace, &pod.name)
    }

    pub(super) fn management_api(&self, pod: &DcPod) -> ManagementApi {
        ManagementApi::new(
            std::sync::Arc::clone(&self.model),
            self.pod_ref(pod),
            pod.ip.clone(),
        )
    }

    /// The datacenter's pods, as upstream lists them: by its labels, in its namespace.
    pub(super) fn datacenter_pods(&self, dc: &Datacenter) -> Result<Vec<DcPod>, TaskError> {
        let pods = self.kube.resource("", "pods")?;
        let listed = self.kube.list(&pods, &dc.namespace, &dc.labels())?;
        Ok(listed.into_iter().filter_map(DcPod::from_object).collect())
    }

    /// `reconcileEveryPodTask`.
    pub(super) async fn reconcile_every_pod(
        &mut self,
        task: &mut Task,
        dc: &Datacenter,
        job: &PodJob<'_>,
    ) -> Result<JobsOutcome, TaskError> {
        let mut racks: BTreeMap<String, Vec<DcPod>> = BTreeMap::new();
        for pod in self.datacenter_pods(dc)? {
            racks.entry(pod.rack.clone()).or_default().push(pod);
        }
        let max_concurrent = job.max_concurrent_pods.unwrap_or(1);
        let (mut failed, mut completed) = (0, 0);
        for (_, mut pods) in racks {
            pods.sort_by(|a, b| a.name.cmp(&b.name));
            pods.retain(|pod| job.command.accepts(pod, job.args));
            let rack = self.process_rack(task, dc, &pods, job, max_concurrent).await?;
            failed += rack.failed;
            completed += rack.completed;
            if rack.running > 0 || rack.requeue {
                return Ok(JobsOutcome {
                    requeue: rack.requeue.then_some(JOB_RUNNING_REQUEUE),
                    failed,
                    completed,
                    terminal: None,
                });
            }
        }
        Ok(JobsOutcome {
            requeue: None,
            failed,
            completed,
            terminal: None,
        })
    }

    /// `processRack`: counts the rack's pods, then starts as many as the free slots allow.
    async fn process_rack(
        &mut self,
        task: &mut Task,
        dc: &Datacenter,
        pods: &[DcPod],
        job: &PodJob<'_>,
        max_concurrent: i64,
    ) -> Result<RackOutcome, TaskError> {
        let before = task.status.clone();
        let check = self.check_rack_completion(task, pods, job).await?;
        let running = i64::try_from(check.running).unwrap_or(i64::MAX);
        let waiting = RackOutcome {
            requeue: true,
            failed: 0,
            completed: 0,
            running: 0,
        };
        // Upstream returns before persisting what the check found; the next check finds it again.
        if running >= max_concurrent || (check.remaining > 0 && check.remaining == check.running) {
            task.status = before;
            return Ok(waiting);
        }
        let slots = max_concurrent - running;
        let mut started = 0;
        for pod in pods {
            if started >= slots {
                break;
            }
            let phase = task.status.pod_statuses.get(&pod.name).map(|s| s.status);
            if matches!(
                phase,
                Some(PodPhase::Completed | PodPhase::Error | PodPhase::Running)
            ) {
                continue;
            }
            self.start_pod_task(task, dc, pod, job).await?;
            started += 1;
        }
        self.patch_status(task)?;
        Ok(RackOutcome {
            requeue: check.remaining > 0,
            failed: check.failed,
            completed: check.completed,
            running: check.running + usize::try_from(started).unwrap_or(0),
        })
    }

    /// `checkRackCompletion`: polls the running pods' jobs and counts the rack's pods.
    async fn check_rack_completion(
        &mut self,
        task: &mut Task,
        pods: &[DcPod],
        job: &PodJob<'_>,
    ) -> Result<RackCheck, TaskError> {
        let (mut failed, mut completed, mut running) = (0, 0, 0);
        for pod in pods {
            let Some(mut status) = task.status.pod_statuses.get(&pod.name).cloned() else {
                continue;
            };
            match status.status {
                PodPhase::Waiting => continue,
                PodPhase::Completed => completed += 1,
                PodPhase::Error => failed += 1,
                PodPhase::Running if status.job_id.is_empty() => {
                    // Sync jobs finish within the reconcile that starts them here, so a
                    // RUNNING pod without a job id was left by a controller that stopped.
                    failed += status.fail(SYNC_TASK_LOST, job.max_retries());
                    task.status.pod_statuses.insert(pod.name.clone(), status);
                }
                PodPhase::Running => {
                    let api = self.management_api(pod);
                    match api.job_details(&status.job_id).await? {
                        None => {
                            // The node lost the job: the pod starts over.
                            task.status.pod_statuses.remove(&pod.name);
                            running += 1;
                        }
                        Some(details) => match details.status {
                            JobStatus::Completed => {
                                status.complete();
                                task.status.pod_statuses.insert(pod.name.clone(), status);
                                completed += 1;
                            }
                            JobStatus::Error => {
                                failed += status.fail(&details.error, job.max_retries());
                                task.status.pod_statuses.insert(pod.name.clone(), status);
                            }
                            JobStatus::Waiting => running += 1,
                        },
                    }
                }
            }
        }
        let remaining = pods.len().saturating_sub(completed + failed);
        if remaining == 0 && running != 0 {
            return Err(TaskError::InconsistentState {
                running,
                completed,
                failed,
                total: pods.len(),
            });
        }
        Ok(RackCheck {
            remaining,
            failed,
            completed,
            running,
        })
    }

    /// `startPodTask`: submits the pod's job, or runs it synchronously, or marks it ERROR when
    /// the node cannot run it.
    async fn start_pod_task(
        &mut self,
        task: &mut Task,
        dc: &Datacenter,
        pod: &DcPod,
        job: &PodJob<'_>,
    ) -> Result<(), TaskError> {
        let api = self.management_api(pod);
        let replacing = job.command == PodCommand::ReplaceNode;
        // Replacing a dead node must not need its Management API.
        let features_known = match api.check_features().await {
            Ok(()) => true,
            Err(e) if !replacing => return Err(e),
            Err(_) => false,
        };
        let supports =
            |feature: Option<Feature>| features_known && feature.is_some_and(Feature::supported);
        let mut status =
            task.status.pod_statuses.get(&pod.name).cloned().unwrap_or_else(PodStatus::running);
        if status.status == PodPhase::Waiting {
            status.status = PodPhase::Running;
        }
        if status.start_time.is_none() {
            status.start_time = Some(crate::now_rfc3339());
        }
        let asynchronous = !replacing && supports(job.command.async_feature());
        if let (true, Some(operation)) = (asynchronous, job.command.operation(job.args)) {
            let endpoint = job.command.endpoint(true, job.args);
            status.job_id = api.submit(&endpoint, operation).await?;
        } else {
            let unsupported = !job.command.has_sync_endpoint()
                || (!replacing && job.command.sync_feature().is_some_and(|f| !supports(Some(f))));
            if unsupported {
                status.error = NOT_SUPPORTED.to_string();
                status.status = PodPhase::Error;
            } else {
                match self.run_sync(dc, pod, job, &api).await {
                    Ok(()) => status.complete(),
                    Err(message) => {
                        status.error = message;
                        status.status = PodPhase::Error;
                    }
                }
            }
        }
        task.status.pod_statuses.insert(pod.name.clone(), status);
        Ok(())
    }

    /// A synchronous job: upstream runs it in a goroutine and records its end; here it is over
    /// when the call returns. Errors are the pod's ERROR message.
    async fn run_sync(
        &mut self,
        dc: &Datacenter,
        pod: &DcPod,
        job: &PodJob<'_>,
        api: &ManagementApi,
    ) -> Result<(), String> {
        if job.command == PodCommand::ReplaceNode {
            // Upstream runs the pre-processing again before each pod.
            self.mark_replacements(dc, job.args).map_err(|e| e.to_string())?;
            return self.replace_pod(pod);
        }
        let Some(operation) = job.command.operation(job.args) else {
            // Only the truststore reload gets here, and the model never offers its feature.
            return Err(NOT_SUPPORTED.to_string());
        };
        let endpoint = job.command.endpoint(false, job.args);
        api.call(&endpoint, &operation).await.map_err(|e| e.to_string())
    }
}
