//! MedusaBackup (medusa.k8ssandra.io/v1alpha1): a backup that exists in the storage bucket,
//! with its nodes, files and size. Federator creates one for each MedusaBackupJob that finished
//! on every pod ([`crate::dataplane::medusa_backup`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BackupType, MAX_NAME_LENGTH};
use crate::api::shared::tidy_schema;

/// A backup in the bucket.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "medusa.k8ssandra.io",
    version = "v1alpha1",
    kind = "MedusaBackup",
    doc = "A Medusa backup stored in the bucket, recorded when a MedusaBackupJob finished on every pod.",
    plural = "medusabackups",
    namespaced,
    status = "MedusaBackupStatus",
    derive = "PartialEq",
    printcolumn(
        name = "Started",
        type_ = "date",
        description = "Backup start time",
        json_path = ".status.startTime"
    ),
    printcolumn(
        name = "Finished",
        type_ = "date",
        description = "Backup finish time",
        json_path = ".status.finishTime"
    ),
    printcolumn(
        name = "Nodes",
        type_ = "string",
        description = "Total number of nodes at the time of the backup",
        json_path = ".status.totalNodes"
    ),
    printcolumn(
        name = "Files",
        type_ = "integer",
        description = "Total number of files in the backup",
        json_path = ".status.totalFiles"
    ),
    printcolumn(
        name = "Size",
        type_ = "string",
        description = "Human-readable total size of the backup",
        json_path = ".status.totalSize"
    ),
    printcolumn(
        name = "Completed",
        type_ = "string",
        description = "Number of nodes that completed this backup",
        json_path = ".status.finishedNodes"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        description = "Backup completion status",
        json_path = ".status.status"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct MedusaBackupSpec {
    /// Name of the CassandraDatacenter that was backed up.
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub cassandra_datacenter: String,
    /// differential or full (upstream's default: differential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_type: Option<BackupType>,
}

/// What the backup holds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct MedusaBackupStatus {
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,
    /// Nodes of the datacenter when the backup was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_nodes: Option<i32>,
    /// Nodes whose backup finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_nodes: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<MedusaBackupNode>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_files: Option<i64>,
    /// Total size, human-readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_size: Option<String>,
    /// Completion status as Medusa reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// One node of a backup: where it ran and the tokens it owned.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MedusaBackupNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
}
