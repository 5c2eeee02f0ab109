//! Why a reconcile failed. Each is retried with backoff, as controller-runtime retries a
//! reconcile's error; the messages are upstream's.

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TaskError {
    /// A request to the API server failed (the message as a Go client prints it).
    #[error("{}", .0.message)]
    Api(#[from] ApiError),
    #[error("unable to fetch target CassandraDatacenter: {name}: {}", .source.message)]
    DatacenterUnavailable { name: String, source: ApiError },
    #[error("unable to set ownerReference to the task {task}: {reason}")]
    OwnerReference { task: String, reason: String },
    /// Upstream refuses more than one job after the task became active, so the task stays
    /// active and keeps failing.
    #[error("only a single job can be defined in this version of cass-operator")]
    TooManyJobs,
    #[error("unknown job command: {0}")]
    UnknownCommand(String),
    /// A pod's Management API did not answer as asked (unreachable, an HTTP error status).
    #[error("{0}")]
    ManagementApi(String),
    #[error(
        "inconsistent state: more pod states than pods, running={running}, completed={completed}, failed={failed}, totalPods={total}"
    )]
    InconsistentState {
        running: usize,
        completed: usize,
        failed: usize,
        total: usize,
    },
    /// The task (or its datacenter) does not decode as the controller's types do.
    #[error("{0}")]
    Malformed(String),
}
