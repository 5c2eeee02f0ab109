//! CassandraBackup (medusa.k8ssandra.io/v1alpha1, deprecated upstream for MedusaBackupJob): a
//! backup of one CassandraDatacenter, as older manifests and the K8ssandra book write it.
//! Served (with the API server's deprecation warning) and acted on: each one runs a
//! MedusaBackupJob it owns and mirrors its progress ([`crate::dataplane::cassandra_backup`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BackupType, MAX_NAME_LENGTH};
use crate::api::shared::{condition_list, preserve_unknown_fields, tidy_schema};

/// What `kubectl` prints when a CassandraBackup or CassandraRestore is used.
pub const DEPRECATION_WARNING: &str = "medusa.k8ssandra.io/v1alpha1 CassandraBackup and CassandraRestore are deprecated; they run a MedusaBackupJob or MedusaRestoreJob: use those";

/// A backup of one datacenter (deprecated kind).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "medusa.k8ssandra.io",
    version = "v1alpha1",
    kind = "CassandraBackup",
    doc = "Deprecated for MedusaBackupJob: a backup of one CassandraDatacenter, run as a MedusaBackupJob of the backup's name that it owns.",
    plural = "cassandrabackups",
    namespaced,
    status = "CassandraBackupStatus",
    derive = "PartialEq",
    deprecated = "medusa.k8ssandra.io/v1alpha1 CassandraBackup and CassandraRestore are deprecated; they run a MedusaBackupJob or MedusaRestoreJob: use those"
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct CassandraBackupSpec {
    /// Name of the backup (and of its MedusaBackupJob and MedusaBackup); the object's name
    /// when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub name: Option<String>,
    /// Name of the CassandraDatacenter to back up.
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub cassandra_datacenter: String,
    /// differential or full (upstream's default: differential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_type: Option<BackupType>,
}

/// Progress of the backup, and the datacenter's template when it was taken.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct CassandraBackupStatus {
    /// The CassandraDatacenter's metadata and spec at backup time, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub cassdc_template_spec: Option<serde_json::Value>,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Vec<String>>,
    /// `Complete`, `Failed` (as its MedusaBackupJob's) and `Blocked` (True while the backup
    /// cannot start: its datacenter is missing, or a MedusaBackupJob of its name belongs to
    /// something else). Federator's addition; upstream has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "condition_list")]
    pub conditions: Option<Vec<Condition>>,
}
