//! A pod's Management API as the task controller calls it (`httphelper.NodeMgmtClient`),
//! answered by the pod's node in the model. A node that does not exist or does not run refuses
//! the connection; the node's `ManagementFault` delays or fails every call, as the HTTP layer
//! obeys it. The model is locked for each call only.

use std::time::Duration;

use crate::cassandra::{CassandraError, JobStatus, NodeOperation, PodRef, SharedModel};

use super::error::TaskError;

/// The `/api/v0/metadata/versions/features` a task checks before choosing how to run a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Feature {
    AsyncSSTableTasks,
    Rebuild,
    AsyncUpgradeSSTableTask,
    AsyncCompactionTask,
    AsyncScrubTask,
    AsyncGarbageCollect,
    AsyncFlush,
    Move,
    ReloadInodeTruststore,
}

impl Feature {
    /// The model's Management API runs every job asynchronously but has no `move` (the model
    /// cannot move tokens) and no truststore reload.
    pub fn supported(self) -> bool {
        !matches!(self, Feature::Move | Feature::ReloadInodeTruststore)
    }
}

/// What `GET /api/v0/ops/executor/job` tells of a job.
pub(super) struct JobDetails {
    pub status: JobStatus,
    pub error: String,
}

pub(super) struct ManagementApi {
    model: SharedModel,
    pod: PodRef,
    /// The pod's IP: the address a request goes to (upstream's `BuildPodHostFromPod`).
    address: Option<String>,
}

/// The Management API's port in cass-operator's pods.
const PORT: u16 = 8080;

impl ManagementApi {
    pub fn new(model: SharedModel, pod: PodRef, address: Option<String>) -> ManagementApi {
        ManagementApi {
            model,
            pod,
            address,
        }
    }

    /// Whether the request reaches the node and how it answers before it is served: the
    /// HTTP status a fault imposes, if any.
    async fn connect(&self, method: &str, endpoint: &str) -> Result<Option<u16>, TaskError> {
        let Some(address) = &self.address else {
            return Err(TaskError::ManagementApi(format!(
                "pod {} has no IP to reach its Management API",
                self.pod.name
            )));
        };
        let node = {
            let model = self.model.lock();
            model.node(&self.pod).ok().map(|node| (node.running, node.management_fault.clone()))
        };
        let refused = || {
            TaskError::ManagementApi(format!(
                "{method} \"http://{address}:{PORT}{endpoint}\": dial tcp {address}:{PORT}: connect: connection refused"
            ))
        };
        let Some((true, fault)) = node else {
            return Err(refused());
        };
        if fault.delay_millis > 0 {
            tokio::time::sleep(Duration::from_millis(fault.delay_millis)).await;
        }
        Ok(fault.fail_status)
    }

    fn status_error(code: u16) -> TaskError {
        TaskError::ManagementApi(format!(
            "incorrect status code of {code} when calling endpoint"
        ))
    }

    /// `FeatureSet`: fails when the API cannot be reached.
    pub async fn check_features(&self) -> Result<(), TaskError> {
        match self.connect("GET", "/api/v0/metadata/versions/features").await? {
            Some(code) => Err(Self::status_error(code)),
            None => Ok(()),
        }
    }

    /// Submits a job and returns its id.
    pub async fn submit(
        &self,
        endpoint: &str,
        operation: NodeOperation,
    ) -> Result<String, TaskError> {
        if let Some(code) = self.connect("POST", endpoint).await? {
            return Err(Self::status_error(code));
        }
        self.model.lock().submit_job(&self.pod, operation).map_err(|e| self.server_error(&e))
    }

    /// A job's state; None when the node does not know the job (upstream then starts the pod
    /// over).
    pub async fn job_details(&self, job_id: &str) -> Result<Option<JobDetails>, TaskError> {
        let endpoint = format!("/api/v0/ops/executor/job?job_id={job_id}");
        match self.connect("GET", &endpoint).await? {
            Some(404) => return Ok(None),
            Some(code) => return Err(Self::status_error(code)),
            None => {}
        }
        let mut model = self.model.lock();
        // The executor runs jobs in the background; here they run when someone looks.
        model.poll_jobs();
        match model.job(&self.pod, job_id) {
            Ok(job) => Ok(Some(JobDetails {
                status: job.status,
                error: job.error.clone().unwrap_or_default(),
            })),
            Err(CassandraError::UnknownJob(_)) => Ok(None),
            Err(e) => Err(self.server_error(&e)),
        }
    }

    /// A synchronous endpoint: the operation runs within the request.
    pub async fn call(&self, endpoint: &str, operation: &NodeOperation) -> Result<(), TaskError> {
        if let Some(code) = self.connect("POST", endpoint).await? {
            return Err(Self::status_error(code));
        }
        self.model.lock().run_operation(&self.pod, operation).map_err(|e| self.server_error(&e))
    }

    /// The node answered 500 with the exception's message.
    fn server_error(&self, error: &CassandraError) -> TaskError {
        TaskError::ManagementApi(format!(
            "incorrect status code of 500 when calling endpoint: {error}"
        ))
    }
}
