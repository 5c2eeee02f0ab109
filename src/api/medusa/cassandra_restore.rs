//! CassandraRestore (medusa.k8ssandra.io/v1alpha1, deprecated upstream for MedusaRestoreJob): a
//! restore of a CassandraBackup, as older manifests and the K8ssandra book write it. Served
//! (with the API server's deprecation warning) and acted on: each one runs a MedusaRestoreJob it
//! owns and mirrors its progress ([`crate::dataplane::cassandra_restore`]). Only in-place
//! restores are done (`inPlace: false` is refused), and the datacenter is always stopped while it
//! restores (`shutdown: false` is reported as not acted on).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::MAX_NAME_LENGTH;
use crate::api::shared::{condition_list, tidy_schema};

/// A restore of a backup (deprecated kind).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "medusa.k8ssandra.io",
    version = "v1alpha1",
    kind = "CassandraRestore",
    doc = "Deprecated for MedusaRestoreJob: a restore of a CassandraBackup onto the datacenter it was taken of, run as a MedusaRestoreJob of the same name that it owns.",
    plural = "cassandrarestores",
    namespaced,
    status = "CassandraRestoreStatus",
    derive = "PartialEq",
    deprecated = "medusa.k8ssandra.io/v1alpha1 CassandraBackup and CassandraRestore are deprecated; they run a MedusaBackupJob or MedusaRestoreJob: use those"
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct CassandraRestoreSpec {
    /// Name of the CassandraBackup to restore (or of a MedusaBackup, when no CassandraBackup has
    /// that name).
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub backup: String,
    /// The datacenter restored onto.
    pub cassandra_datacenter: CassandraDatacenterRef,
    /// Restore onto the datacenter that was backed up, rather than a new one (only `true` is
    /// done; `false` is refused with the `Failed` condition).
    pub in_place: bool,
    /// Stop the datacenter before restoring. A restore always stops it: `false` is reported in
    /// the `FieldsNotActedOn` condition.
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
    /// `Complete`, `Failed` and `Blocked` (as its MedusaRestoreJob's, and `Failed` for a
    /// restore that cannot be done as written: `inPlace: false`, a wrong `clusterName`), and
    /// `FieldsNotActedOn` (`shutdown: false`). Federator's addition; upstream has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "condition_list")]
    pub conditions: Option<Vec<Condition>>,
}
