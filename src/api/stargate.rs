//! Stargate (stargate.k8ssandra.io/v1alpha1): the data API gateway deployed next to a
//! CassandraDatacenter, and the templates a K8ssandraCluster embeds to ask for one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Probe, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::{
    ComponentMetadata, ConfigMapRef, ContainerImage, EncryptionStores, SecretsProvider,
    TelemetrySpec, condition_list, preserve_unknown_fields, tidy_schema,
};

/// Settings common to every level a Stargate can be described at (cluster, datacenter, rack).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StargateTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ComponentMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_image: Option<ContainerImage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// JVM heap of each Stargate node (upstream default 256Mi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_size: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Pod affinity of the Stargate pods (core/v1 Affinity, passed through: its full schema is huge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub affinity: Option<serde_json::Value>,
    /// Allow Stargate pods on the same workers as Cassandra pods (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_stargate_on_data_nodes: Option<bool>,
    /// ConfigMap (in the Stargate's namespace) whose `cassandra.yaml` configures Stargate's
    /// embedded Cassandra node: mounted at /config and passed with
    /// `-Dstargate.unsafe.cassandra_config_path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_config_map_ref: Option<ConfigMapRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetrySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_options: Option<AuthOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_provider: Option<SecretsProvider>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ApiAuthMethod {
    #[default]
    Table,
    #[serde(rename = "JWT")]
    Jwt,
}

/// How Stargate authenticates API clients.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_auth_method: Option<ApiAuthMethod>,
    /// JWKS URL of the identity provider, for JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub token_ttl_seconds: Option<i32>,
}

fn default_stargate_size() -> i32 {
    1
}

/// `spec.stargate` of a K8ssandraCluster: a Stargate for every datacenter.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StargateClusterTemplate {
    /// Number of Stargate nodes per datacenter.
    #[serde(default = "default_stargate_size")]
    #[schemars(range(min = 1, max = super::shared::MAX_DATACENTER_SIZE))]
    pub size: i32,
    #[serde(flatten)]
    pub template: StargateTemplate,
}

impl Default for StargateClusterTemplate {
    fn default() -> Self {
        Self {
            size: default_stargate_size(),
            template: StargateTemplate::default(),
        }
    }
}

/// Per-rack overrides of a datacenter's Stargate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StargateRackTemplate {
    /// Name of the Cassandra rack this applies to.
    pub name: String,
    #[serde(flatten)]
    pub template: StargateTemplate,
}

/// `spec.cassandra.datacenters[].stargate`: the Stargate of one datacenter; its values win over
/// the cluster-level template.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StargateDatacenterTemplate {
    #[serde(default = "default_stargate_size")]
    #[schemars(range(min = 1, max = super::shared::MAX_DATACENTER_SIZE))]
    pub size: i32,
    #[serde(flatten)]
    pub template: StargateTemplate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub racks: Option<Vec<StargateRackTemplate>>,
}

impl Default for StargateDatacenterTemplate {
    fn default() -> Self {
        Self {
            size: default_stargate_size(),
            template: StargateTemplate::default(),
            racks: None,
        }
    }
}

/// The CassandraDatacenter a Stargate serves (same namespace).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct StargateDatacenterRef {
    #[serde(default)]
    pub name: String,
}

/// Encryption stores of the Cassandra cluster, so Stargate's embedded node can join it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CassandraEncryption {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_encryption_stores: Option<EncryptionStores>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_encryption_stores: Option<EncryptionStores>,
}

/// A Stargate deployment for one CassandraDatacenter.
// Several printer columns share `type_ = "string"`; clippy reads that as a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "stargate.k8ssandra.io",
    version = "v1alpha1",
    kind = "Stargate",
    doc = "A Stargate data API gateway serving one CassandraDatacenter.",
    plural = "stargates",
    namespaced,
    status = "StargateStatus",
    derive = "PartialEq",
    printcolumn(name = "DC", type_ = "string", json_path = ".spec.datacenterRef.name"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.progress"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.readyReplicasRatio"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct StargateSpec {
    /// Required in practice; defaulted so that upstream's placeholder sample still parses (the
    /// controller reports a missing datacenter in status).
    #[serde(default)]
    pub datacenter_ref: StargateDatacenterRef,
    /// Whether Cassandra authentication is on (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_encryption: Option<CassandraEncryption>,
    #[serde(default = "default_stargate_size")]
    #[schemars(range(min = 1, max = super::shared::MAX_DATACENTER_SIZE))]
    pub size: i32,
    #[serde(flatten)]
    pub template: StargateTemplate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub racks: Option<Vec<StargateRackTemplate>>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum StargateProgress {
    #[default]
    Pending,
    Deploying,
    Running,
}

/// Observed state of a Stargate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct StargateStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<StargateProgress>,
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    #[serde(default)]
    pub updated_replicas: i32,
    #[serde(default)]
    pub available_replicas: i32,
    /// "ready/replicas", for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas_ratio: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_refs: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "condition_list")]
    pub conditions: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl StargateStatus {
    /// Running with every replica ready.
    pub fn is_ready(&self) -> bool {
        self.progress == Some(StargateProgress::Running)
            && self.replicas > 0
            && self.ready_replicas == self.replicas
    }
}

impl StargateTemplate {
    /// This template with every absent field taken from `fallback` (a rack over its datacenter,
    /// a datacenter over the cluster): whole values, as k8ssandra-operator merges them.
    pub fn merged_over(&self, fallback: &StargateTemplate) -> StargateTemplate {
        use super::shared::own_or as pick;
        StargateTemplate {
            metadata: pick(&self.metadata, &fallback.metadata),
            container_image: pick(&self.container_image, &fallback.container_image),
            service_account: pick(&self.service_account, &fallback.service_account),
            resources: pick(&self.resources, &fallback.resources),
            heap_size: pick(&self.heap_size, &fallback.heap_size),
            liveness_probe: pick(&self.liveness_probe, &fallback.liveness_probe),
            readiness_probe: pick(&self.readiness_probe, &fallback.readiness_probe),
            node_selector: pick(&self.node_selector, &fallback.node_selector),
            tolerations: pick(&self.tolerations, &fallback.tolerations),
            affinity: pick(&self.affinity, &fallback.affinity),
            allow_stargate_on_data_nodes: pick(
                &self.allow_stargate_on_data_nodes,
                &fallback.allow_stargate_on_data_nodes,
            ),
            cassandra_config_map_ref: pick(
                &self.cassandra_config_map_ref,
                &fallback.cassandra_config_map_ref,
            ),
            telemetry: pick(&self.telemetry, &fallback.telemetry),
            auth_options: pick(&self.auth_options, &fallback.auth_options),
            secrets_provider: pick(&self.secrets_provider, &fallback.secrets_provider),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datacenter_template_defaults_size_to_one() {
        let template: StargateDatacenterTemplate =
            serde_json::from_value(serde_json::json!({"heapSize": "384Mi"}))
                .expect("valid template");
        assert_eq!(template.size, 1);
        assert_eq!(template.template.heap_size, Some(Quantity("384Mi".into())));
    }
}
