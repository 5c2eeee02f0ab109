//! MedusaBackupJob (medusa.k8ssandra.io/v1alpha1): a backup of one CassandraDatacenter, run by
//! Medusa on each of its pods ([`crate::dataplane::medusa_backup`], in the datacenter's region).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BackupType, MAX_NAME_LENGTH};
use crate::api::shared::{condition_list, tidy_schema};

/// Refusal of a change to a job's spec: the backup it names runs once.
pub const SPEC_IMMUTABLE_MESSAGE: &str = "the spec of a MedusaBackupJob cannot change (its backup runs once); create another MedusaBackupJob";

/// A backup of one datacenter.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "medusa.k8ssandra.io",
    version = "v1alpha1",
    kind = "MedusaBackupJob",
    doc = "A Medusa backup of one CassandraDatacenter: each of its pods backs up under the job's name.",
    plural = "medusabackupjobs",
    namespaced,
    status = "MedusaBackupJobStatus",
    derive = "PartialEq",
    validation = Rule::new("self.spec == oldSelf.spec").message(SPEC_IMMUTABLE_MESSAGE),
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
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct MedusaBackupJobSpec {
    /// Name of the CassandraDatacenter to back up.
    #[schemars(length(min = 1, max = MAX_NAME_LENGTH))]
    pub cassandra_datacenter: String,
    /// differential (default) or full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_type: Option<BackupType>,
}

/// Progress of a backup job, by pod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct MedusaBackupJobStatus {
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,
    /// Pods backing up now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<Vec<String>>,
    /// Pods whose backup finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Vec<String>>,
    /// Pods whose backup failed, or that did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Vec<String>>,
    /// `Complete` (True once every pod finished) and `Failed` (True once the job ended with
    /// failed pods, naming them and why). Federator's addition; upstream has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "condition_list")]
    pub conditions: Option<Vec<Condition>>,
}

impl MedusaBackupJobSpec {
    pub fn backup_type(&self) -> BackupType {
        self.backup_type.unwrap_or_default()
    }
}
