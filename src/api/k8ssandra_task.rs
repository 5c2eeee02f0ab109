//! K8ssandraTask (control.k8ssandra.io/v1alpha1): one CassandraTask per datacenter of a
//! K8ssandraCluster, run in each datacenter's region, and their progress folded into one status.
//! The shape is k8ssandra-operator's; the template is cass-operator's CassandraTask template.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::k8ssandra_cluster::MAX_DATACENTERS;
use super::shared::{ObjectReference, tidy_schema};

/// Most jobs one task may list (cass-operator runs one per task today).
pub const MAX_JOBS: u32 = 16;
/// Most pods of a rack a task may work on at once.
pub const MAX_CONCURRENT_PODS: i32 = 1000;
/// Most retries of a failed pod operation.
pub const MAX_RETRIES: i32 = 100;
/// Most compaction jobs a job may ask Cassandra to run at once (`args.jobs`).
pub const MAX_ARGUMENT_JOBS: i32 = 64;
/// Most entries of `args.tables` and `args.new_tokens`.
pub const MAX_ARGUMENT_ENTRIES: u32 = 1000;

/// A task run on the datacenters of a K8ssandraCluster, across regions.
// Several printer columns share a type, which clippy takes for repeated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "control.k8ssandra.io",
    version = "v1alpha1",
    kind = "K8ssandraTask",
    doc = "Runs a CassandraTask on each selected datacenter of a K8ssandraCluster, in each datacenter's region, and reports their progress.",
    plural = "k8ssandratasks",
    namespaced,
    status = "K8ssandraTaskStatus",
    derive = "PartialEq",
    printcolumn(
        name = "Job",
        type_ = "string",
        description = "The job that is executed",
        json_path = ".spec.template.jobs[0].command"
    ),
    printcolumn(
        name = "Scheduled",
        type_ = "date",
        description = "When the execution of the task is allowed at earliest",
        json_path = ".spec.template.scheduledTime"
    ),
    printcolumn(
        name = "Started",
        type_ = "date",
        description = "When the execution of the task started",
        json_path = ".status.startTime"
    ),
    printcolumn(
        name = "Completed",
        type_ = "date",
        description = "When the execution of the task finished",
        json_path = ".status.completionTime"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct K8ssandraTaskSpec {
    /// The K8ssandraCluster the task runs on; its namespace defaults to the task's.
    #[serde(default)]
    pub cluster: ObjectReference,
    /// Names (metadata.name) of the datacenters to run on; empty or absent runs on every
    /// datacenter, in the K8ssandraCluster's spec order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_DATACENTERS))]
    pub datacenters: Option<Vec<String>>,
    /// Forbid (default): one datacenter at a time, the next one's CassandraTask created once the
    /// previous one completed; a failed one stops the sequence. Allow: every datacenter at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dc_concurrency_policy: Option<DcConcurrencyPolicy>,
    /// The CassandraTask created for each datacenter.
    #[serde(default)]
    pub template: CassandraTaskTemplate,
}

/// How the datacenters' CassandraTasks follow each other.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DcConcurrencyPolicy {
    /// Every datacenter's CassandraTask is created at once.
    Allow,
    /// One datacenter at a time, in order.
    #[default]
    Forbid,
}

/// cass-operator's CassandraTaskTemplate: what each CassandraTask runs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CassandraTaskTemplate {
    /// The earliest time the task may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<Time>,
    /// Seconds a finished K8ssandraTask is kept before it is deleted with its CassandraTasks;
    /// 0 keeps it, absent is 86400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
    /// The jobs run against the datacenter's pods, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_JOBS))]
    pub jobs: Option<Vec<CassandraJob>>,
    /// OnFailure (default) or Never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub restart_policy: Option<String>,
    /// Forbid (default): the task waits for other tasks of the datacenter; Allow: it runs
    /// beside other Allow tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub concurrency_policy: Option<String>,
    /// Pods of a rack processed at once (0 or absent: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_CONCURRENT_PODS))]
    pub max_concurrent_pods: Option<i32>,
    /// Retries of a failed pod operation with restartPolicy OnFailure (absent: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_RETRIES))]
    pub retries: Option<i32>,
}

/// One job of a task.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct CassandraJob {
    #[schemars(length(max = 253))]
    pub name: String,
    /// What is run against the pods: restart, cleanup, rebuild, upgradesstables, compaction,
    /// scrub, flush, garbagecollect, refresh, replacenode, move, ...
    #[schemars(length(max = 64))]
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<JobArguments>,
}

/// The arguments of a job, as cass-operator names them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct JobArguments {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyspace_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_datacenter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_ARGUMENT_ENTRIES))]
    pub tables: Option<Vec<String>>,
    /// Compaction jobs run at once (cleanup, upgradesstables, scrub).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_ARGUMENT_JOBS))]
    pub jobs: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_output: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_validate: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_snapshot: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_corrupted: Option<bool>,
    /// Restart several pods (or a whole rack) at once when the datacenter is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast: Option<bool>,
    /// Run even when cass-operator thinks it unsafe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
    /// Pod name → new token, for `move`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_ARGUMENT_ENTRIES))]
    pub new_tokens: Option<BTreeMap<String, String>>,
}

/// cass-operator's CassandraTaskStatus, as the K8ssandraTask aggregates it and keeps it per
/// datacenter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CassandraTaskStatus {
    /// When the first pod's job started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the task finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Pods at work now.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub active: i64,
    /// Pods whose job succeeded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub succeeded: i64,
    /// Pods whose job failed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: i64,
    /// Running, Complete, Failed (and Invalid on a K8ssandraTask whose spec cannot run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// Each pod's processing, by pod name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_statuses: Option<BTreeMap<String, PodProcessingStatus>>,
}

/// One pod's processing by a CassandraTask.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodProcessingStatus {
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "jobId")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Observed state of a K8ssandraTask: the totals over its datacenters, and each one's.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct K8ssandraTaskStatus {
    #[serde(flatten)]
    pub task: CassandraTaskStatus,
    /// The status of each datacenter's CassandraTask, by datacenter name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenters: Option<BTreeMap<String, CassandraTaskStatus>>,
}

impl K8ssandraTask {
    /// Namespace and name of the K8ssandraCluster: `spec.cluster.namespace` defaults to the
    /// task's own namespace.
    pub fn cluster_key(&self) -> (String, String) {
        let namespace = self
            .spec
            .cluster
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| self.metadata.namespace.clone())
            .unwrap_or_default();
        (
            namespace,
            self.spec.cluster.name.clone().unwrap_or_default(),
        )
    }

    pub fn policy(&self) -> DcConcurrencyPolicy {
        self.spec.dc_concurrency_policy.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn upstream_shaped_task_deserializes() {
        let task: K8ssandraTask = serde_json::from_value(json!({
            "apiVersion": "control.k8ssandra.io/v1alpha1",
            "kind": "K8ssandraTask",
            "metadata": {"name": "restart", "namespace": "k8ssandra-operator"},
            "spec": {
                "cluster": {"name": "demo"},
                "datacenters": ["dc1", "dc2"],
                "dcConcurrencyPolicy": "Allow",
                "template": {
                    "jobs": [{"name": "restart-run", "command": "restart", "args": {"fast": true}}],
                    "restartPolicy": "Never",
                    "ttlSecondsAfterFinished": 60,
                    "scheduledTime": "2026-01-01T00:00:00Z"
                }
            },
            "status": {"active": 2, "startTime": "2026-01-01T00:00:00Z",
                       "datacenters": {"dc1": {"active": 1, "podStatuses": {"p": {"status": "RUNNING"}}}}}
        }))
        .expect("upstream shape");
        assert_eq!(
            task.cluster_key(),
            ("k8ssandra-operator".into(), "demo".into())
        );
        assert_eq!(task.policy(), DcConcurrencyPolicy::Allow);
        let status = task.status.expect("status");
        assert_eq!(status.task.active, 2);
        assert_eq!(status.datacenters.map(|d| d["dc1"].active), Some(1));
        let job = &task.spec.template.jobs.unwrap_or_default()[0];
        assert_eq!(job.args.as_ref().and_then(|a| a.fast), Some(true));
    }

    #[test]
    fn the_policy_defaults_to_forbid_and_the_namespace_to_the_tasks() {
        let task = K8ssandraTask {
            metadata: kube::api::ObjectMeta {
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: K8ssandraTaskSpec {
                cluster: ObjectReference {
                    name: Some("demo".into()),
                    namespace: Some(String::new()),
                    ..Default::default()
                },
                ..Default::default()
            },
            status: None,
        };
        assert_eq!(task.policy(), DcConcurrencyPolicy::Forbid);
        assert_eq!(task.cluster_key(), ("ns".into(), "demo".into()));
    }
}
