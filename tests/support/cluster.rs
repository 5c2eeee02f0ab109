//! The K8ssandraCluster manifest the tests apply, and the conditions in statuses.

use federator::api::client_config::{ClientConfig, ClientConfigStatus};
use federator::api::k8ssandra_cluster::{K8ssandraCluster, K8ssandraClusterStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::sim::NS;

/// A K8ssandraCluster `name` in [`NS`] (Cassandra 4.1.5, 5Gi volumes of class `standard`) with
/// one datacenter per `(name, k8sContext, size)`; an empty context leaves `k8sContext` out (a
/// datacenter in the hub). Tests add what else they need to the returned manifest.
pub fn k8ssandra_cluster(name: &str, datacenters: &[(&str, &str, i32)]) -> serde_json::Value {
    let datacenters: Vec<serde_json::Value> = datacenters
        .iter()
        .map(|(dc, context, size)| {
            let mut datacenter = serde_json::json!({"metadata": {"name": dc}, "size": size});
            if !context.is_empty() {
                datacenter["k8sContext"] = (*context).into();
            }
            datacenter
        })
        .collect();
    serde_json::json!({
        "apiVersion": "k8ssandra.io/v1alpha1",
        "kind": "K8ssandraCluster",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"cassandra": {
            "serverVersion": "4.1.5",
            "storageConfig": {"cassandraDataVolumeClaimSpec": {
                "storageClassName": "standard",
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "5Gi"}}
            }},
            "datacenters": datacenters
        }}
    })
}

/// What carries status conditions.
pub trait Conditions {
    fn conditions(&self) -> &[Condition];
}

impl Conditions for ClientConfigStatus {
    fn conditions(&self) -> &[Condition] {
        self.conditions.as_deref().unwrap_or_default()
    }
}

impl Conditions for ClientConfig {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map(|s| s.conditions()).unwrap_or_default()
    }
}

impl Conditions for K8ssandraClusterStatus {
    fn conditions(&self) -> &[Condition] {
        self.conditions.as_deref().unwrap_or_default()
    }
}

impl Conditions for K8ssandraCluster {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map(|s| s.conditions()).unwrap_or_default()
    }
}

/// (status, reason, message) of the condition of type `type_`.
pub fn condition(of: &impl Conditions, type_: &str) -> Option<(String, String, String)> {
    of.conditions()
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits (at most `limit`) until the K8ssandraCluster `name`'s condition `type_` is as `wanted`
/// says, given (status, reason, message); returns the message.
pub async fn wait_for_condition(
    clusters: &kube::Api<K8ssandraCluster>,
    name: &str,
    type_: &str,
    limit: std::time::Duration,
    wanted: impl Fn(&str, &str, &str) -> bool,
) -> String {
    super::wait::wait_for(&format!("{name}'s {type_} condition"), limit, || async {
        let k8c =
            super::sim::bounded("get", clusters.get(name)).await.map_err(|e| e.to_string())?;
        match condition(&k8c, type_) {
            Some((state, reason, message)) if wanted(&state, &reason, &message) => Ok(message),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}
