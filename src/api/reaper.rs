//! Reaper (reaper.k8ssandra.io/v1alpha1): the repair scheduler of a Cassandra cluster, and the
//! template a K8ssandraCluster embeds to ask for one.

use k8s_openapi::api::core::v1::{
    EnvVar, PersistentVolumeClaimSpec, PodSecurityContext, Probe, ResourceRequirements,
    SecurityContext, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::{
    ComponentMetadata, ContainerImage, EncryptionStores, ObjectReference, SecretRef,
    SecretsProvider, TelemetrySpec, condition_list, preserve_unknown_fields, tidy_schema,
};

/// Settings shared by `K8ssandraCluster.spec.reaper` and `Reaper.spec`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReaperTemplate {
    /// Keyspace holding Reaper's state when storageType is cassandra (upstream default reaper_db).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyspace: Option<String>,
    /// CQL credentials of Reaper; created by the operator when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_user_secret_ref: Option<SecretRef>,
    /// JMX credentials (only used when Reaper talks JMX rather than the management API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmx_user_secret_ref: Option<SecretRef>,
    /// Web UI credentials; created by the operator when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_user_secret_ref: Option<SecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_provider: Option<SecretsProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_image: Option<ContainerImage>,
    /// Deprecated upstream and not used: the schema init container runs Reaper's own image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_container_image: Option<ContainerImage>,
    /// Upstream spells this key with a capital S; kept for compatibility.
    #[serde(
        rename = "ServiceAccountName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub service_account_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_scheduling: Option<AutoScheduling>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    /// core/v1 Affinity, passed through (its full schema is huge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub affinity: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// Of the `reaper-schema-init` container (default: none, as the main container; upstream's
    /// read-only root would stop the default image, which writes its configuration there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_container_security_context: Option<SecurityContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ComponentMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Of the `reaper-schema-init` container (default: requests 100m CPU and 128Mi, limit 512Mi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_container_resources: Option<ResourceRequirements>,
    /// JVM heap of Reaper (upstream default 2Gi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_size: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_management: Option<HttpManagement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetrySpec>,
    /// Where Reaper keeps its state: in the Cassandra cluster (a Deployment), or `local` on a
    /// volume (a StatefulSet of one replica with a claim from storageConfig).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_type: Option<ReaperStorageType>,
    /// Volume claim for storageType local (required then), mounted at
    /// /var/lib/cassandra-reaper/storage; deleted with the StatefulSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_config: Option<PersistentVolumeClaimSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_env_vars: Option<Vec<EnvVar>>,
    /// true: no `reaper-schema-init` container migrates Reaper's schema before Reaper starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_schema_migration: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<ReaperEncryption>,
}

impl ReaperTemplate {
    /// `secretsProvider: external`: an injector provides the logins and stores.
    pub fn uses_external_secrets(&self) -> bool {
        self.secrets_provider == Some(SecretsProvider::External)
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReaperStorageType {
    #[default]
    Cassandra,
    Local,
}

/// How many Reapers a K8ssandraCluster gets.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeploymentMode {
    /// One Reaper in every datacenter.
    #[default]
    #[serde(rename = "PER_DC")]
    PerDc,
    /// One Reaper for the whole cluster.
    #[serde(rename = "SINGLE")]
    Single,
    /// One Reaper on the control plane, shared by clusters (reaperRef).
    #[serde(rename = "CONTROL_PLANE")]
    ControlPlane,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum RepairType {
    Regular,
    Adaptive,
    Incremental,
    #[default]
    Auto,
}

/// What Reaper's `Duration.parse` reads: days, hours, minutes and seconds.
pub const ISO_8601_DURATION: &str =
    r"^P([0-9]+D)?(T([0-9]+H)?([0-9]+M)?([0-9]+(\.[0-9]{1,9})?S)?)?$";

/// Reaper's automatic repair scheduling.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoScheduling {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// ISO-8601 durations (days at most), e.g. PT15S; upstream's defaults PT15S, PT10M, PT5M, PT6H.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ISO_8601_DURATION))]
    pub initial_delay_period: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ISO_8601_DURATION))]
    pub period_between_polls: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ISO_8601_DURATION))]
    pub time_before_first_schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ISO_8601_DURATION))]
    pub schedule_spread_period: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair_type: Option<RepairType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percent_unrepaired_threshold: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded_clusters: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded_keyspaces: Option<Vec<String>>,
}

/// Reaper's HTTP management endpoint (upstream default: enabled).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpManagement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Secret with `keystore.jks` and `truststore.jks` for mutual TLS with the management API,
    /// mounted at /etc/encryption/mgmt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keystores: Option<SecretRef>,
}

/// Refusal of `encryption.clientCertName` without `serverCertName`: Reaper asks clients for a
/// certificate only on its TLS endpoint, so the operator would present one to a plain-HTTP
/// Reaper (upstream accepts it, then fails to connect).
pub const CLIENT_CERT_WITHOUT_SERVER_CERT_MESSAGE: &str = "encryption.clientCertName needs encryption.serverCertName: Reaper asks for client certificates only when it serves TLS (set serverCertName, or remove clientCertName)";

/// TLS of Reaper's REST API (the `app` port; the admin port and its probes stay plain HTTP).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new(
    "!has(self.clientCertName) || self.clientCertName == '' || (has(self.serverCertName) && self.serverCertName != '')"
).message(CLIENT_CERT_WITHOUT_SERVER_CERT_MESSAGE).field_path(".clientCertName"))]
#[serde(rename_all = "camelCase")]
pub struct ReaperEncryption {
    /// A Secret in the Reaper's namespace with the client certificate (`tls.crt`, `tls.key`)
    /// and `ca.crt`: Reaper then requires mutual TLS, and Federator presents this certificate,
    /// verifying Reaper's against `ca.crt`. Needs serverCertName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_name: Option<String>,
    /// A Secret in the Reaper's namespace with `keystore.jks` and `truststore.jks` (as
    /// cert-manager writes them; Reaper's image opens them with the password `changeit`),
    /// mounted at /etc/encryption/server: Reaper serves HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cert_name: Option<String>,
}

impl ReaperEncryption {
    /// The server certificate's Secret, when Reaper serves TLS.
    pub fn server_secret(&self) -> Option<&str> {
        self.server_cert_name.as_deref().filter(|name| !name.is_empty())
    }

    /// The client certificate's Secret, when Reaper serves TLS and requires client certificates.
    pub fn client_secret(&self) -> Option<&str> {
        self.server_secret()?;
        self.client_cert_name.as_deref().filter(|name| !name.is_empty())
    }
}

impl ReaperTemplate {
    /// The fields of this template that are set but that Federator does not act on yet, as
    /// paths under `prefix` with what a user would otherwise expect.
    pub fn fields_not_acted_on(&self, prefix: &str) -> Vec<String> {
        let mut fields = Vec::new();
        if self.init_container_image.is_some() {
            fields.push(format!(
                "{prefix}.initContainerImage (deprecated: the schema init container runs Reaper's image)"
            ));
        }
        if self.jmx_user_secret_ref.is_some() {
            fields.push(format!("{prefix}.jmxUserSecretRef"));
        }
        fields
    }
}

/// Refusal of `storageType: local` without `storageConfig` (upstream's webhook refuses it too).
pub const LOCAL_STORAGE_CONFIG_MESSAGE: &str = "spec.reaper.storageConfig is required with storageType local (the volume claim of Reaper's state)";
/// Refusal of a local storage claim without access modes or a storage request, as upstream.
pub const LOCAL_STORAGE_CLAIM_MESSAGE: &str = "spec.reaper.storageConfig needs accessModes and resources.requests.storage with storageType local";
/// Refusal of `storageType: local` with Reapers per datacenter, as upstream.
pub const LOCAL_STORAGE_PER_DC_MESSAGE: &str = "spec.reaper.storageType local needs deploymentMode SINGLE or CONTROL_PLANE: a Reaper per datacenter (PER_DC, the default) keeps its state in Cassandra";

/// `spec.reaper` of a K8ssandraCluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new(
    "!has(self.storageType) || self.storageType != 'local' || has(self.storageConfig)"
).message(LOCAL_STORAGE_CONFIG_MESSAGE))]
#[x_kube(validation = Rule::new(
    "!has(self.storageType) || self.storageType != 'local' || !has(self.storageConfig) || (has(self.storageConfig.accessModes) && size(self.storageConfig.accessModes) > 0 && has(self.storageConfig.resources) && has(self.storageConfig.resources.requests) && 'storage' in self.storageConfig.resources.requests)"
).message(LOCAL_STORAGE_CLAIM_MESSAGE))]
#[x_kube(validation = Rule::new(
    "!has(self.storageType) || self.storageType != 'local' || (has(self.deploymentMode) && self.deploymentMode != 'PER_DC')"
).message(LOCAL_STORAGE_PER_DC_MESSAGE))]
#[serde(rename_all = "camelCase")]
pub struct ReaperClusterTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_mode: Option<DeploymentMode>,
    /// An existing Reaper to register the cluster with (deploymentMode CONTROL_PLANE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaper_ref: Option<ObjectReference>,
    #[serde(flatten)]
    pub template: ReaperTemplate,
}

impl ReaperClusterTemplate {
    pub fn deployment_mode_or_default(&self) -> DeploymentMode {
        self.deployment_mode.unwrap_or_default()
    }

    /// `reaperRef` names an existing Reaper: it serves the cluster instead of one of its own.
    pub fn references_a_reaper(&self) -> bool {
        self.reaper_ref
            .as_ref()
            .and_then(|r| r.name.as_deref())
            .is_some_and(|name| !name.is_empty())
    }
}

/// Which datacenters Reaper may contact.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum DatacenterAvailability {
    Local,
    #[default]
    All,
    Each,
}

/// The CassandraDatacenter a Reaper manages (may be in another namespace).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ReaperDatacenterRef {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A Reaper deployment.
// Several printer columns share `type_ = "string"`; clippy reads that as a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "reaper.k8ssandra.io",
    version = "v1alpha1",
    kind = "Reaper",
    doc = "A Cassandra Reaper: schedules and runs repairs.",
    plural = "reapers",
    namespaced,
    status = "ReaperStatus",
    derive = "PartialEq",
    printcolumn(name = "DC", type_ = "string", json_path = ".spec.datacenterRef.name"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.progress"),
    printcolumn(name = "Ready", type_ = "boolean", json_path = ".status.ready"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct ReaperSpec {
    /// Absent for a Reaper that only stores state locally and is shared (control-plane mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter_ref: Option<ReaperDatacenterRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter_availability: Option<DatacenterAvailability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_encryption_stores: Option<EncryptionStores>,
    #[serde(flatten)]
    pub template: ReaperTemplate,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ReaperProgress {
    #[default]
    Pending,
    Deploying,
    Configuring,
    Running,
}

/// Observed state of a Reaper.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct ReaperStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<ReaperProgress>,
    /// Reaper's replica is ready for the current spec and the cluster is registered with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "condition_list")]
    pub conditions: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The cluster's repair schedules in Reaper, by keyspace (at most 100 listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedules: Option<Vec<RepairScheduleSummary>>,
}

/// One repair schedule as Reaper reports it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepairScheduleSummary {
    /// The cluster, as Reaper names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub keyspace: String,
    /// ACTIVE or PAUSED.
    pub state: String,
    /// Who made it: `auto-scheduling` for Reaper's own.
    pub owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_activation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_between: Option<i64>,
}

impl ReaperStatus {
    pub fn is_ready(&self) -> bool {
        self.ready == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_mode_uses_upstream_spelling() {
        let template: ReaperClusterTemplate =
            serde_json::from_value(serde_json::json!({"deploymentMode": "CONTROL_PLANE"}))
                .expect("valid template");
        assert_eq!(
            template.deployment_mode_or_default(),
            DeploymentMode::ControlPlane
        );
        assert_eq!(
            ReaperClusterTemplate::default().deployment_mode_or_default(),
            DeploymentMode::PerDc
        );
    }

    #[test]
    fn service_account_key_keeps_upstream_capital() {
        let template: ReaperTemplate =
            serde_json::from_value(serde_json::json!({"ServiceAccountName": "reaper"}))
                .expect("valid template");
        assert_eq!(template.service_account_name.as_deref(), Some("reaper"));
        let json = serde_json::to_value(&template).expect("serializes");
        assert_eq!(json, serde_json::json!({"ServiceAccountName": "reaper"}));
    }
}
