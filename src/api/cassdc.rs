//! The part of cass-operator's CassandraDatacenter (cassandra.datastax.com/v1beta1) that
//! Federator writes and reads. Client-side only: the CRD is cass-operator's, installed in each
//! region; Federator never installs it. Every field is optional unless cass-operator requires it,
//! and absent fields are not serialized, so server-side apply only claims what Federator sets.
//!
//! Several pieces (racks, storage, networking, management API auth, DSE workloads) are also
//! embedded as-is in K8ssandraCluster, as k8ssandra-operator does, so they carry a schema.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::preserve_unknown_fields;

/// Server flavour run by cass-operator.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServerType {
    #[default]
    Cassandra,
    Dse,
    Hcd,
}

impl ServerType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerType::Cassandra => "cassandra",
            ServerType::Dse => "dse",
            ServerType::Hcd => "hcd",
        }
    }
}

/// A rack: a failure domain, pinned to nodes by labels or affinity.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rack {
    #[schemars(length(max = 63))]
    pub name: String,
    /// Node labels the rack's pods must run on (e.g. topology.kubernetes.io/zone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity_labels: Option<BTreeMap<String, String>>,
    /// core/v1 Affinity for this rack only, passed through (its full schema is huge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub affinity: Option<serde_json::Value>,
    /// Deprecated by cass-operator in favour of nodeAffinityLabels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// Persistent storage of each Cassandra pod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageConfig {
    /// Claim template of the data volume (/var/lib/cassandra).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_data_volume_claim_spec: Option<PersistentVolumeClaimSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_volumes: Option<Vec<AdditionalVolume>>,
}

/// An extra volume mounted in the Cassandra container: a claim template or any volume source.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdditionalVolume {
    #[schemars(length(max = 63))]
    pub name: String,
    pub mount_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc_spec: Option<PersistentVolumeClaimSpec>,
    /// core/v1 VolumeSource, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub volume_source: Option<serde_json::Value>,
}

/// Pod networking of the Cassandra nodes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkingConfig {
    /// Use the worker's network namespace: pods are reachable at the node IP (cross-cluster
    /// without an overlay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_network: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<NodePortConfig>,
}

/// Node ports of a NodePort Service in front of the datacenter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct NodePortConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<i32>,
    #[serde(rename = "nativeSSL", default, skip_serializing_if = "Option::is_none")]
    pub native_ssl: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internode: Option<i32>,
    #[serde(
        rename = "internodeSSL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub internode_ssl: Option<i32>,
}

/// Authentication of the management API sidecar: none (insecure) or mutual TLS.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagementApiAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<InsecureManagementApiAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual: Option<ManualManagementApiAuth>,
}

/// Marker: plain HTTP without authentication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct InsecureManagementApiAuth {}

/// Mutual TLS with certificates from the named Secrets.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManualManagementApiAuth {
    pub client_secret_name: String,
    pub server_secret_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_secret_validation: Option<bool>,
}

/// DSE workloads to enable (serverType dse only).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DseWorkloads {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analytics_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_enabled: Option<bool>,
}

/// A CQL user cass-operator creates from a Secret (keys `username`, `password`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CassandraUser {
    pub secret_name: String,
    pub superuser: bool,
}

/// The spec of a CassandraDatacenter as Federator writes it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "cassandra.datastax.com",
    version = "v1beta1",
    kind = "CassandraDatacenter",
    doc = "cass-operator's CassandraDatacenter, as far as Federator writes and reads it.",
    plural = "cassandradatacenters",
    shortname = "cassdc",
    shortname = "cassdcs",
    namespaced,
    status = "CassandraDatacenterStatus",
    derive = "PartialEq",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct CassandraDatacenterSpec {
    /// Cassandra cluster name (cluster_name); the same in every datacenter of the cluster.
    pub cluster_name: String,
    pub server_type: ServerType,
    pub server_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_image: Option<String>,
    pub size: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub racks: Option<Vec<Rack>>,
    pub storage_config: StorageConfig,
    /// Server configuration: `{"cassandra-yaml": {...}, "jvm-server-options": {...}, ...}`,
    /// built by Federator from the K8ssandraCluster config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networking: Option<NetworkingConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superuser_secret_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<CassandraUser>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_api_auth: Option<ManagementApiAuth>,
    /// core/v1 PodTemplateSpec merged into cass-operator's own (containers, init containers,
    /// volumes, security context, affinity...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template_spec: Option<serde_json::Value>,
    /// Seeds outside this datacenter (the other regions' seed addresses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_seeds: Option<Vec<String>>,
    /// Name of the datacenter inside Cassandra, when it differs from metadata.name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_annotations: Option<BTreeMap<String, String>>,
    /// Labels/annotations of the generated Services, keyed by service (dcService, seedService...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_service_config: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dse_workloads: Option<DseWorkloads>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdc: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_multiple_nodes_per_worker: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_builder_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_logger_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_logger_resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_system_logger_sidecar: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_nodes: Option<Vec<String>>,
}

/// Values of `status.cassandraOperatorProgress`.
pub const PROGRESS_READY: &str = "Ready";
pub const PROGRESS_UPDATING: &str = "Updating";

/// cass-operator condition types Federator looks at.
pub const CONDITION_READY: &str = "Ready";
pub const CONDITION_INITIALIZED: &str = "Initialized";
pub const CONDITION_STOPPED: &str = "Stopped";
pub const CONDITION_UPDATING: &str = "Updating";
pub const CONDITION_SCALING_UP: &str = "ScalingUp";
pub const CONDITION_SCALING_DOWN: &str = "ScalingDown";
pub const CONDITION_VALID: &str = "Valid";

/// A condition as cass-operator reports it (its own shape, not metav1.Condition).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatacenterCondition {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// Where a Cassandra node runs, per pod name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct NodeStatus {
    #[serde(rename = "hostID", default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
}

/// cass-operator's observed state of a datacenter; also copied into
/// `K8ssandraCluster.status.datacenters[dc].cassandra`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CassandraDatacenterStatus {
    /// "Updating" or "Ready".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_operator_progress: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<DatacenterCondition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_statuses: Option<BTreeMap<String, NodeStatus>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_server_node_started: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub super_user_upserted: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_upserted: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rolling_restart: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_period: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_replacements: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_starts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_version: Option<i64>,
}

impl CassandraDatacenterStatus {
    pub fn condition(&self, condition_type: &str) -> Option<&DatacenterCondition> {
        self.conditions.as_deref().unwrap_or_default().iter().find(|c| c.type_ == condition_type)
    }

    pub fn is_condition_true(&self, condition_type: &str) -> bool {
        self.condition(condition_type).is_some_and(|c| c.status == "True")
    }

    /// Ready as cass-operator means it: the Ready condition is True and no update is running.
    pub fn is_ready(&self) -> bool {
        self.is_condition_true(CONDITION_READY)
            && self.cassandra_operator_progress.as_deref() == Some(PROGRESS_READY)
    }

    /// Stopped as cass-operator means it once a stop is done (`spec.stopped`): the Stopped
    /// condition is True and no update is running. While the nodes are still being drained the
    /// progress is Updating.
    pub fn is_stopped(&self) -> bool {
        self.is_condition_true(CONDITION_STOPPED)
            && self.cassandra_operator_progress.as_deref() == Some(PROGRESS_READY)
    }

    /// Ready, and describing the spec of `generation` (not a previous one).
    pub fn is_ready_at(&self, generation: Option<i64>) -> bool {
        self.describes(generation) && self.is_ready()
    }

    /// Stopped, and describing the spec of `generation`.
    pub fn is_stopped_at(&self, generation: Option<i64>) -> bool {
        self.describes(generation) && self.is_stopped()
    }

    /// Whether the status is about the spec of `generation` or a later one.
    fn describes(&self, generation: Option<i64>) -> bool {
        match (self.observed_generation, generation) {
            (Some(observed), Some(generation)) => observed >= generation,
            _ => true,
        }
    }
}

impl CassandraDatacenter {
    /// Ready, and the status describes the current spec (not a previous generation).
    pub fn is_ready(&self) -> bool {
        self.status.as_ref().is_some_and(|status| status.is_ready_at(self.metadata.generation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_are_not_serialized() {
        let spec = CassandraDatacenterSpec {
            cluster_name: "demo".into(),
            server_type: ServerType::Cassandra,
            server_version: "4.0.17".into(),
            size: 3,
            ..Default::default()
        };
        let json = serde_json::to_value(&spec).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "clusterName": "demo", "serverType": "cassandra", "serverVersion": "4.0.17",
                "size": 3, "storageConfig": {}
            })
        );
    }

    #[test]
    fn readiness_needs_condition_progress_and_current_generation() {
        let mut dc = CassandraDatacenter::new("dc1", CassandraDatacenterSpec::default());
        dc.metadata.generation = Some(2);
        dc.status = Some(CassandraDatacenterStatus {
            cassandra_operator_progress: Some(PROGRESS_READY.into()),
            conditions: Some(vec![DatacenterCondition {
                type_: CONDITION_READY.into(),
                status: "True".into(),
                ..Default::default()
            }]),
            observed_generation: Some(1),
            ..Default::default()
        });
        assert!(
            !dc.is_ready(),
            "status of generation 1 says nothing about generation 2"
        );
        if let Some(status) = dc.status.as_mut() {
            status.observed_generation = Some(2);
        }
        assert!(dc.is_ready());
    }
}
