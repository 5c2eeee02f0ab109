//! ConfigMaps Federator generates for a datacenter (per-node initial tokens, Vector's
//! configuration), applied in its region before it and deleted with it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::labels::{COMPONENT_CASSANDRA, COMPONENT_LABEL, datacenter_labels};

/// Selects the generated ConfigMaps among a cluster's objects (the data plane makes ConfigMaps
/// of other components).
pub const GENERATED_CONFIG_MAP_SELECTOR: &str = "app.kubernetes.io/component=cassandra";

#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedConfigMap {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub data: BTreeMap<String, String>,
}

impl GeneratedConfigMap {
    /// A ConfigMap of datacenter `(name, namespace)` of cluster `(name, namespace)`, labelled
    /// for the cleanup of either.
    pub fn new(
        (cluster_name, cluster_namespace): (&str, &str),
        (datacenter, namespace): (&str, &str),
        name: String,
        data: BTreeMap<String, String>,
    ) -> GeneratedConfigMap {
        let mut labels = datacenter_labels(cluster_name, cluster_namespace, datacenter);
        labels.insert(COMPONENT_LABEL.into(), COMPONENT_CASSANDRA.into());
        GeneratedConfigMap {
            name,
            namespace: namespace.to_string(),
            labels,
            data,
        }
    }

    /// Hash of the content, for a pod-template annotation that restarts the pods on a change.
    pub fn content_hash(&self) -> String {
        config_map_hash(&self.to_config_map())
    }

    pub fn to_config_map(&self) -> ConfigMap {
        ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(self.labels.clone()),
                ..Default::default()
            },
            data: Some(self.data.clone()),
            ..Default::default()
        }
    }
}

/// Hash of a ConfigMap's content (`data`, `binaryData`): FNV-1a 64 of canonical JSON, stable
/// across releases.
pub fn config_map_hash(config_map: &ConfigMap) -> String {
    let text =
        serde_json::to_string(&(&config_map.data, &config_map.binary_data)).unwrap_or_default();
    format!("{:016x}", crate::apply::fnv1a(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cleanup_selector_matches_what_is_generated() {
        let config_map =
            GeneratedConfigMap::new(("demo", "ns"), ("dc1", "ns"), "c".into(), BTreeMap::new());
        let (key, value) = GENERATED_CONFIG_MAP_SELECTOR.split_once('=').expect("key=value");
        assert_eq!(config_map.labels.get(key).map(String::as_str), Some(value));
        assert_eq!(config_map.content_hash().len(), 16);
    }
}
