//! MedusaClusterBackupJob (medusa.k8ssandra.io/v1alpha1): Federator's own kind, not
//! k8ssandra-operator's. One object in the hub backs up every datacenter of a K8ssandraCluster,
//! in every region, under one name: the hub applies a MedusaBackupJob per datacenter in that
//! datacenter's region and namespace and folds their progress into this status
//! ([`crate::control::medusa_cluster_backup`], control-plane mode only).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BackupType, MAX_NAME_LENGTH};
use crate::api::k8ssandra_cluster::MAX_DATACENTERS;
use crate::api::shared::{condition_list, tidy_schema};

/// Refusal of a change to the spec: the backups it names run once.
pub const SPEC_IMMUTABLE_MESSAGE: &str = "the spec of a MedusaClusterBackupJob cannot change (its backups run once); create another MedusaClusterBackupJob";

/// A backup of every datacenter of a K8ssandraCluster, in every region.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "medusa.k8ssandra.io",
    version = "v1alpha1",
    kind = "MedusaClusterBackupJob",
    doc = "Federator's own kind (hub only): a Medusa backup of every datacenter of a K8ssandraCluster, one MedusaBackupJob per datacenter in its region, with per-datacenter progress.",
    plural = "medusaclusterbackupjobs",
    namespaced,
    status = "MedusaClusterBackupJobStatus",
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
pub struct MedusaClusterBackupJobSpec {
    /// The K8ssandraCluster to back up, in the job's namespace.
    pub k8ssandra_cluster: ClusterName,
    /// Names (metadata.name) of the datacenters to back up; absent or empty: every datacenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_DATACENTERS), extend("x-kubernetes-list-type" = "set"))]
    pub datacenters: Option<Vec<DatacenterName>>,
    /// differential (default) or full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_type: Option<BackupType>,
}

/// A K8ssandraCluster in the job's namespace, by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ClusterName {
    #[schemars(length(min = 1, max = MAX_NAME_LENGTH))]
    pub name: String,
}

/// A datacenter's metadata.name in the K8ssandraCluster.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(transparent)]
pub struct DatacenterName(#[schemars(length(min = 1, max = 63))] pub String);

/// Where the backup of each datacenter is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct MedusaClusterBackupJobStatus {
    /// When the first MedusaBackupJob was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When every datacenter finished, failed or was given up as unreachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,
    /// One entry per datacenter backed up, in the K8ssandraCluster's order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenters: Option<Vec<DatacenterBackup>>,
    /// The datacenters whose region could not be reached before the others finished
    /// (`<datacenter> (<k8sContext>)`): their backup is missing from this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<Vec<String>>,
    /// `Complete` (True once finished with no datacenter failed; reason `RegionsMissed` when
    /// regions were missed), `Failed` (a datacenter's backup failed) and `Invalid` (the spec
    /// names what does not exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "condition_list")]
    pub conditions: Option<Vec<Condition>>,
}

/// The backup of one datacenter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatacenterBackup {
    pub datacenter: String,
    /// Its region (the K8ssandraCluster's k8sContext; empty: the hub).
    #[serde(default)]
    pub k8s_context: String,
    #[serde(default)]
    pub namespace: String,
    /// The MedusaBackupJob (and MedusaBackup) of the datacenter: `<name>-<datacenter>`.
    #[serde(default)]
    pub job_name: String,
    pub phase: DatacenterPhase,
    /// Why the phase is what it is, when it is not plain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Pods whose backup finished.
    #[serde(default)]
    pub finished_pods: i32,
    /// Pods whose backup failed.
    #[serde(default)]
    pub failed_pods: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,
    /// Where its recorded MedusaBackup is not copied yet (`<k8sContext or hub>/<namespace>`):
    /// retried while the job exists, every poll while it runs, then every 30 s until none is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_copies: Option<Vec<String>>,
}

/// Where a datacenter's backup is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DatacenterPhase {
    /// Its MedusaBackupJob is applied, not started yet.
    #[default]
    Pending,
    Running,
    /// Every pod backed up and the MedusaBackup recorded.
    Complete,
    Failed,
    /// Its region could not be reached (the message says why).
    Unreachable,
}

impl DatacenterPhase {
    /// Nothing more happens to it.
    pub fn is_finished(self) -> bool {
        matches!(self, DatacenterPhase::Complete | DatacenterPhase::Failed)
    }
}

impl MedusaClusterBackupJobSpec {
    pub fn backup_type(&self) -> BackupType {
        self.backup_type.unwrap_or_default()
    }
}
