//! CassandraRestore (medusa.k8ssandra.io/v1alpha1, deprecated upstream for MedusaRestoreJob): a
//! restore of a CassandraBackup, as older manifests and the K8ssandra book write it. Served
//! (with the API server's deprecation warning) and validated; not acted on.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::MAX_NAME_LENGTH;
use crate::api::shared::tidy_schema;

/// A restore of a backup (deprecated kind).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "medusa.k8ssandra.io",
    version = "v1alpha1",
    kind = "CassandraRestore",
    doc = "Deprecated for MedusaRestoreJob: a restore of a CassandraBackup (served and validated; Federator does not run it).",
    plural = "cassandrarestores",
    namespaced,
    status = "CassandraRestoreStatus",
    derive = "PartialEq",
    deprecated = "medusa.k8ssandra.io/v1alpha1 CassandraBackup and CassandraRestore are deprecated and not acted on; use MedusaBackupJob and MedusaRestoreJob"
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct CassandraRestoreSpec {
    /// Name of the CassandraBackup to restore.
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub backup: String,
    /// The datacenter restored onto.
    pub cassandra_datacenter: CassandraDatacenterRef,
    /// Restore onto the datacenter that was backed up, rather than a new one.
    pub in_place: bool,
    /// Stop the datacenter before restoring.
    pub shutdown: bool,
}

/// A CassandraDatacenter by name, with its Cassandra cluster name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CassandraDatacenterRef {
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub name: String,
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub cluster_name: String,
}

/// Progress of a restore.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct CassandraRestoreStatus {
    /// Identifies the restore operation.
    pub restore_key: String,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,
    /// When the datacenter was stopped for the restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter_stopped: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Vec<String>>,
}
