//! MedusaTask (medusa.k8ssandra.io/v1alpha1): a Medusa maintenance operation (sync, purge,
//! prepare_restore) on the pods of one CassandraDatacenter, run once in the datacenter's region
//! ([`crate::dataplane::medusa_task`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::MAX_NAME_LENGTH;
use crate::api::shared::{condition_list, tidy_schema};

/// A Medusa operation on a datacenter.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "medusa.k8ssandra.io",
    version = "v1alpha1",
    kind = "MedusaTask",
    doc = "A Medusa sync, purge or prepare_restore on one CassandraDatacenter, run once.",
    plural = "medusatasks",
    namespaced,
    status = "MedusaTaskStatus",
    derive = "PartialEq",
    printcolumn(
        name = "Datacenter",
        type_ = "string",
        description = "Datacenter which the task targets",
        json_path = ".spec.cassandraDatacenter"
    ),
    printcolumn(
        name = "Operation",
        type_ = "string",
        description = "Type of operation",
        json_path = ".spec.operation"
    ),
    printcolumn(
        name = "Start",
        type_ = "date",
        description = "Start time",
        json_path = ".status.startTime"
    ),
    printcolumn(
        name = "Finish",
        type_ = "date",
        description = "Finish time",
        json_path = ".status.finishTime"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct MedusaTaskSpec {
    pub operation: MedusaOperation,
    /// Name of the CassandraDatacenter to run on.
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub cassandra_datacenter: String,
    /// Name of the backup the operation concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub backup_name: Option<String>,
    /// Restore key of a prepare_restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub restore_key: Option<String>,
}

/// The operations of a MedusaTask.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MedusaOperation {
    /// Make the MedusaBackups match the backups in the bucket.
    #[default]
    Sync,
    /// Delete backups past maxBackupAge or maxBackupCount.
    Purge,
    /// Compute the restore mapping of a restore.
    PrepareRestore,
}

/// Progress of a task, by pod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct MedusaTaskStatus {
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Vec<TaskResult>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Vec<String>>,
    /// `Complete` (True once every pod did its part) or `Failed` (True naming the pods that
    /// failed and why, or what blocked the task). Federator's addition; upstream has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "condition_list")]
    pub conditions: Option<Vec<Condition>>,
}

/// What one pod's operation did; the counts are set by purges only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nb_backups_purged: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nb_objects_purged: Option<i64>,
    /// Bytes purged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_purged_size: Option<i64>,
    /// Objects kept because they are within Medusa's GC grace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_objects_within_gc_grace: Option<i64>,
}
