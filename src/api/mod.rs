//! Custom resource types: the K8ssandra API that Federator serves, one file per kind,
//! plus the client-side view of cass-operator's CassandraDatacenter.

pub mod cassdc;
pub mod client_config;
pub mod k8ssandra_cluster;
pub mod k8ssandra_task;
pub mod medusa;
pub mod reaper;
pub mod replicated_secret;
pub mod shared;
pub mod stargate;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD Federator owns and installs, in a stable order.
/// (CassandraDatacenter is cass-operator's and is not listed.)
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        k8ssandra_cluster::K8ssandraCluster::crd(),
        client_config::ClientConfig::crd(),
        replicated_secret::ReplicatedSecret::crd(),
        stargate::Stargate::crd(),
        reaper::Reaper::crd(),
        k8ssandra_task::K8ssandraTask::crd(),
        medusa::MedusaBackupJob::crd(),
        medusa::MedusaBackup::crd(),
        medusa::MedusaRestoreJob::crd(),
        medusa::MedusaClusterBackupJob::crd(),
        medusa::MedusaBackupSchedule::crd(),
        medusa::MedusaTask::crd(),
        medusa::MedusaConfiguration::crd(),
        medusa::CassandraBackup::crd(),
        medusa::CassandraRestore::crd(),
    ]
}

/// The kinds that nothing in Federator acts on yet: their CRDs are generated (`crds/`, the
/// reference) but left out of the install's kustomization, so that a user applying one is told
/// the kind is not served rather than seeing it stored and ignored.
pub const NOT_ACTED_ON_KINDS: &[&str] = &[];

/// The CRDs the install applies: [`all_crds`] but the [`NOT_ACTED_ON_KINDS`].
pub fn installed_crds() -> Vec<CustomResourceDefinition> {
    (all_crds().into_iter())
        .filter(|crd| !NOT_ACTED_ON_KINDS.contains(&crd.spec.names.kind.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Paths of nodes that break the "structural schema" rules the API server enforces:
    /// every node has a type (or is int-or-string / preserve-unknown), and no anyOf/oneOf/allOf
    /// carries types or properties.
    fn structural_violations(node: &Value, path: &str, found: &mut Vec<String>) {
        let Some(object) = node.as_object() else {
            return;
        };
        let typed = object.contains_key("type")
            || object.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
            || object.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        if !typed {
            found.push(format!("{path}: no type"));
        }
        for keyword in ["anyOf", "oneOf", "allOf"] {
            if object.contains_key(keyword) {
                found.push(format!("{path}: {keyword}"));
            }
        }
        if object.get("type").is_some_and(|t| t.is_array()) {
            found.push(format!("{path}: type is a list"));
        }
        if object
            .get("enum")
            .and_then(Value::as_array)
            .is_some_and(|values| values.contains(&Value::Null))
        {
            found.push(format!("{path}: null among enum values"));
        }
        if let Some(properties) = object.get("properties").and_then(Value::as_object) {
            for (name, child) in properties {
                structural_violations(child, &format!("{path}.{name}"), found);
            }
        }
        if let Some(items) = object.get("items") {
            structural_violations(items, &format!("{path}[]"), found);
        }
        if let Some(additional) = object.get("additionalProperties").filter(|a| a.is_object()) {
            structural_violations(additional, &format!("{path}{{}}"), found);
        }
    }

    #[test]
    fn every_crd_fits_in_a_client_side_apply_annotation() {
        // `kubectl apply` (client-side) keeps the whole object in an annotation, which the API
        // server caps at 256 KiB.
        for crd in all_crds() {
            let size = serde_json::to_vec(&crd).map(|json| json.len()).unwrap_or(usize::MAX);
            let name = crd.metadata.name.unwrap_or_default();
            assert!(size < 200 * 1024, "{name} is {size} bytes of JSON");
        }
    }

    #[test]
    fn every_crd_schema_is_structural() {
        for crd in all_crds() {
            let name = crd.metadata.name.clone().unwrap_or_default();
            for version in &crd.spec.versions {
                let schema = version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .map(serde_json::to_value)
                    .and_then(Result::ok)
                    .unwrap_or(Value::Null);
                assert!(schema.is_object(), "{name} has no schema");
                let mut found = Vec::new();
                structural_violations(&schema, "", &mut found);
                assert!(
                    found.is_empty(),
                    "{name} {}: not structural:\n{}",
                    version.name,
                    found.join("\n")
                );
            }
        }
    }
}
