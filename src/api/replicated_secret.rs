//! ReplicatedSecret (replication.k8ssandra.io/v1alpha1): copies the Secrets matching a selector
//! to other namespaces and clusters.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::tidy_schema;

/// Secrets to copy and where to.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "replication.k8ssandra.io",
    version = "v1alpha1",
    kind = "ReplicatedSecret",
    doc = "Copies the Secrets matching a selector to other namespaces and Kubernetes clusters.",
    plural = "replicatedsecrets",
    namespaced,
    status = "ReplicatedSecretStatus",
    derive = "PartialEq",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct ReplicatedSecretSpec {
    /// Secrets of this namespace to replicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_targets: Option<Vec<ReplicationTarget>>,
}

/// One destination of the copies.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationTarget {
    /// Namespace to copy into; defaults to the ReplicatedSecret's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Cluster to copy into; "" or absent is the local cluster.
    #[serde(
        rename = "k8sContextName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub k8s_context_name: Option<String>,
    /// Prefix added to the name of each copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_prefix: Option<String>,
    /// Label keys not copied over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_labels: Option<Vec<String>>,
    /// Labels added to each copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_labels: Option<BTreeMap<String, String>>,
}

impl ReplicationTarget {
    /// The target cluster's context ("" for the local cluster).
    pub fn context(&self) -> &str {
        self.k8s_context_name.as_deref().unwrap_or("")
    }
}

/// Replication state per target cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct ReplicatedSecretStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<ReplicationCondition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Condition type of a replication target: the copies there are current.
pub const REPLICATION_DONE: &str = "Replication";

/// Replication result for one target cluster (upstream shape plus reason and message).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationCondition {
    /// Context of the target cluster ("" for the local cluster).
    #[serde(default)]
    pub cluster: String,
    /// Namespace of the target (Federator's own: one condition per target, and a cluster may
    /// be the target of several namespaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(rename = "type", default)]
    pub type_: String,
    /// "True", "False" or "Unknown".
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Copies were placed in this target before it failed, and may still be there: when the
    /// target is removed, pruning waits until it can be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies_placed: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_context_defaults_to_local() {
        assert_eq!(ReplicationTarget::default().context(), "");
        let remote = ReplicationTarget {
            k8s_context_name: Some("kind-k8ssandra-1".into()),
            ..Default::default()
        };
        assert_eq!(remote.context(), "kind-k8ssandra-1");
    }

    #[test]
    fn upstream_condition_without_reason_deserializes() {
        let condition: ReplicationCondition = serde_json::from_value(serde_json::json!({
            "cluster": "kind-k8ssandra-1", "type": "Replication", "status": "True",
            "lastTransitionTime": "2024-01-01T00:00:00Z"
        }))
        .expect("upstream condition");
        assert_eq!(condition.reason, None);
        assert_eq!(condition.type_, REPLICATION_DONE);
    }
}
