//! MedusaRestoreJob (medusa.k8ssandra.io/v1alpha1): a restore of a MedusaBackup onto one
//! CassandraDatacenter ([`crate::dataplane::medusa_restore`], in the datacenter's region).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::MAX_NAME_LENGTH;
use crate::api::shared::{condition_list, tidy_schema};

/// Refusal of a change to a job's spec: the restore it names runs once.
pub const SPEC_IMMUTABLE_MESSAGE: &str = "the spec of a MedusaRestoreJob cannot change (its restore runs once); create another MedusaRestoreJob";

/// A restore of a backup onto a datacenter.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "medusa.k8ssandra.io",
    version = "v1alpha1",
    kind = "MedusaRestoreJob",
    doc = "A restore of a MedusaBackup onto one CassandraDatacenter: the datacenter stops, then starts again with every node restored from the backup.",
    plural = "medusarestorejobs",
    namespaced,
    status = "MedusaRestoreJobStatus",
    derive = "PartialEq",
    validation = Rule::new("self.spec == oldSelf.spec").message(SPEC_IMMUTABLE_MESSAGE),
    printcolumn(
        name = "Started",
        type_ = "date",
        description = "Restore start time",
        json_path = ".status.startTime"
    ),
    printcolumn(
        name = "Finished",
        type_ = "date",
        description = "Restore finish time",
        json_path = ".status.finishTime"
    ),
    printcolumn(
        name = "Error",
        type_ = "string",
        description = "Error message",
        json_path = ".status.message"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct MedusaRestoreJobSpec {
    /// Name of the MedusaBackup to restore.
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub backup: String,
    /// Name of the CassandraDatacenter to restore onto.
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub cassandra_datacenter: String,
}

/// Progress of a restore.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct MedusaRestoreJobStatus {
    /// Identifies the restore operation.
    pub restore_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_prepared: Option<bool>,
    /// Which backed-up nodes each target node restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_mapping: Option<MedusaRestoreMapping>,
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
    /// Why the restore failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Complete` (True once the datacenter is Ready again, restored), `Failed` (True once the
    /// restore cannot be done, saying why) and `Blocked` (True while it waits on something the
    /// user can fix: a missing backup or datacenter, an unreachable Medusa). Federator's
    /// addition; upstream has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "condition_list")]
    pub conditions: Option<Vec<Condition>>,
}

/// Source and target nodes of a restore (Medusa's own snake_case keys).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct MedusaRestoreMapping {
    /// Whether the backup is restored onto the nodes that took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_place: Option<bool>,
    /// Target node → its source nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_map: Option<BTreeMap<String, MappingSource>>,
}

/// The backed-up nodes one target node restores.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct MappingSource {
    pub source: Vec<String>,
    pub seed: bool,
}
