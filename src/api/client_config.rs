//! ClientConfig (config.k8ssandra.io/v1beta1): how the control plane reaches one data-plane
//! cluster ("region"). The kubeconfig lives in a Secret; the region is named by its context.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::{SecretRef, condition_list, tidy_schema};

/// Key of the kubeconfig inside the Secret named by `spec.kubeConfigSecret` (as upstream).
pub const KUBECONFIG_SECRET_KEY: &str = "kubeconfig";

/// A remote Kubernetes cluster Federator can deploy to.
// Several printer columns share `type_ = "string"`; clippy reads that as a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "config.k8ssandra.io",
    version = "v1beta1",
    kind = "ClientConfig",
    doc = "A Kubernetes cluster (region) the control plane deploys to, reached with a kubeconfig Secret.",
    plural = "clientconfigs",
    namespaced,
    status = "ClientConfigStatus",
    derive = "PartialEq",
    printcolumn(name = "Context", type_ = "string", json_path = ".spec.contextName"),
    printcolumn(name = "Reachable", type_ = "boolean", json_path = ".status.reachable"),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.serverVersion"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct ClientConfigSpec {
    /// Name of the context in the kubeconfig, and the name K8ssandraClusters use in `k8sContext`.
    /// Defaults to the ClientConfig's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_name: Option<String>,
    /// Secret (same namespace) holding the kubeconfig under the key `kubeconfig`.
    pub kube_config_secret: SecretRef,
}

impl ClientConfig {
    /// The context this ClientConfig provides: `spec.contextName`, or the object's name.
    pub fn context_name(&self) -> String {
        match self.spec.context_name.as_deref() {
            Some(context) if !context.is_empty() => context.to_string(),
            _ => self.name_any(),
        }
    }
}

/// What Federator last observed about the remote cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct ClientConfigStatus {
    /// Whether the last probe of the API server succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable: Option<bool>,
    /// `gitVersion` reported by the remote API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_contact: Option<Time>,
    /// Why the cluster is unreachable or the kubeconfig unusable, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the credentials in the kubeconfig expire (client certificate or token), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_expiry: Option<Time>,
    /// Whether the context reaches the cluster Federator runs in (same `kube-system` namespace
    /// UID): its datacenters are then the hub's, as if they named no `k8sContext`. Absent until
    /// known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaches_hub: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "condition_list")]
    pub conditions: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_config(name: &str, context: Option<&str>) -> ClientConfig {
        ClientConfig::new(
            name,
            ClientConfigSpec {
                context_name: context.map(str::to_string),
                kube_config_secret: SecretRef::new(format!("{name}-kubeconfig")),
            },
        )
    }

    #[test]
    fn context_name_defaults_to_object_name() {
        assert_eq!(
            client_config("kind-k8ssandra-1", None).context_name(),
            "kind-k8ssandra-1"
        );
        assert_eq!(
            client_config("kind-k8ssandra-1", Some("")).context_name(),
            "kind-k8ssandra-1"
        );
    }

    #[test]
    fn explicit_context_name_wins() {
        assert_eq!(
            client_config("east", Some("gke-east")).context_name(),
            "gke-east"
        );
    }

    #[test]
    fn upstream_manifest_deserializes() {
        let manifest = serde_json::json!({
            "apiVersion": "config.k8ssandra.io/v1beta1",
            "kind": "ClientConfig",
            "metadata": {"name": "kind-k8ssandra-1", "namespace": "k8ssandra-operator"},
            "spec": {"contextName": "kind-k8ssandra-1", "kubeConfigSecret": {"name": "kind-k8ssandra-1-config"}}
        });
        let parsed: ClientConfig = serde_json::from_value(manifest).expect("valid ClientConfig");
        assert_eq!(
            parsed.spec.kube_config_secret.name,
            "kind-k8ssandra-1-config"
        );
    }
}
