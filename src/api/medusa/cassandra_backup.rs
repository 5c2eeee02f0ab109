//! CassandraBackup (medusa.k8ssandra.io/v1alpha1, deprecated upstream for MedusaBackupJob): a
//! backup of one CassandraDatacenter, as older manifests and the K8ssandra book write it.
//! Served (with the API server's deprecation warning) and validated; not acted on.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BackupType, MAX_NAME_LENGTH};
use crate::api::shared::{preserve_unknown_fields, tidy_schema};

/// What `kubectl` prints when a CassandraBackup or CassandraRestore is used.
pub const DEPRECATION_WARNING: &str = "medusa.k8ssandra.io/v1alpha1 CassandraBackup and CassandraRestore are deprecated and not acted on; use MedusaBackupJob and MedusaRestoreJob";

/// A backup of one datacenter (deprecated kind).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "medusa.k8ssandra.io",
    version = "v1alpha1",
    kind = "CassandraBackup",
    doc = "Deprecated for MedusaBackupJob: a backup of one CassandraDatacenter (served and validated; Federator does not run it).",
    plural = "cassandrabackups",
    namespaced,
    status = "CassandraBackupStatus",
    derive = "PartialEq",
    deprecated = "medusa.k8ssandra.io/v1alpha1 CassandraBackup and CassandraRestore are deprecated and not acted on; use MedusaBackupJob and MedusaRestoreJob"
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct CassandraBackupSpec {
    /// Name of the backup.
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
}
