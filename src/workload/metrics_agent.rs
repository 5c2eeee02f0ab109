//! The configuration of the Cassandra metrics endpoint (the Management API's metrics agent,
//! port 9000), as k8ssandra-operator writes it for every datacenter: a ConfigMap
//! `<cluster>-<dc>-metrics-agent-config` whose `metrics-collector.yaml` is mounted at
//! `/opt/management-api/configs` in the Cassandra pods. It holds the relabels the agent
//! applies before serving the series (by default: of the per-table metrics, keep only those
//! the dashboards use) and where it serves them, from `telemetry.cassandra`:
//!
//! - `relabels`: replace the default relabels (not added to them), as upstream;
//! - `endpoint` (`address`, `port`, `tls` with `ca.crt`, `tls.crt`, `tls.key`): written as given.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use super::labels::clean_for_kubernetes;
use super::relabel::metrics_agent_default_relabels;
use super::service_monitor::RelabelConfig;

/// Key of the configuration in the ConfigMap, and its file name in the pods.
pub const METRICS_AGENT_KEY: &str = "metrics-collector.yaml";
/// Name of the volume on the CassandraDatacenter.
pub const METRICS_AGENT_VOLUME: &str = "metrics-agent-config";
/// Where the Management API reads its configuration.
pub const METRICS_AGENT_MOUNT: &str = "/opt/management-api/configs";

#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("telemetry.cassandra is not valid: {reason}")]
pub struct MetricsAgentError {
    pub reason: String,
}

/// `telemetry.cassandra` as the agent reads it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct AgentSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    endpoint: Option<AgentEndpoint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    relabels: Vec<RelabelConfig>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
struct AgentEndpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tls: Option<AgentTls>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
struct AgentTls {
    #[serde(rename = "ca.crt", default, skip_serializing_if = "Option::is_none")]
    ca: Option<String>,
    #[serde(rename = "tls.crt", default, skip_serializing_if = "Option::is_none")]
    cert: Option<String>,
    #[serde(rename = "tls.key", default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

/// `<cluster>-<dc>-metrics-agent-config` (the datacenter's name inside Cassandra).
pub fn config_map_name(cassandra_cluster_name: &str, cassandra_datacenter_name: &str) -> String {
    clean_for_kubernetes(&format!(
        "{cassandra_cluster_name}-{cassandra_datacenter_name}-metrics-agent-config"
    ))
}

/// The agent's `metrics-collector.yaml` for the datacenter's merged `telemetry.cassandra`.
pub fn collector_yaml(cassandra: Option<&Value>) -> Result<String, MetricsAgentError> {
    let mut settings: AgentSettings = match cassandra {
        Some(value) => serde_json::from_value(value.clone()).map_err(|e| MetricsAgentError {
            reason: e.to_string(),
        })?,
        None => AgentSettings::default(),
    };
    if settings.relabels.is_empty() {
        settings.relabels = metrics_agent_default_relabels();
    }
    serde_saphyr::to_string(&settings).map_err(|e| MetricsAgentError {
        reason: e.to_string(),
    })
}

/// `own` over `fallback`, key by key through objects; anything else (lists too) whole.
pub fn merge_json(own: Option<&Value>, fallback: Option<&Value>) -> Option<Value> {
    match (own, fallback) {
        (Some(Value::Object(own)), Some(Value::Object(fallback))) => {
            let mut merged = fallback.clone();
            for (key, value) in own {
                let combined = merge_json(Some(value), fallback.get(key));
                if let Some(combined) = combined {
                    merged.insert(key.clone(), combined);
                }
            }
            Some(Value::Object(merged))
        }
        (Some(own), _) => Some(own.clone()),
        (None, fallback) => fallback.cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(yaml: &str) -> Value {
        serde_saphyr::from_str(yaml).expect("valid YAML")
    }

    #[test]
    fn by_default_only_the_per_table_metrics_the_dashboards_use_are_kept() {
        let config = parsed(&collector_yaml(None).expect("yaml"));
        assert!(config.get("endpoint").is_none());
        let relabels = config["relabels"].as_array().expect("relabels");
        assert_eq!(
            relabels[0],
            json!({"sourceLabels": ["table"], "regex": ".+", "targetLabel": "should_drop", "replacement": "true"})
        );
        assert_eq!(
            relabels.last(),
            Some(&json!({"sourceLabels": ["should_drop"], "regex": "true", "action": "drop"}))
        );
        assert!(relabels.contains(&json!({"sourceLabels": ["__name__"],
            "regex": "org_apache_cassandra_metrics_table_pending_compactions",
            "targetLabel": "should_drop", "replacement": "false"})));
    }

    #[test]
    fn the_users_relabels_replace_the_defaults_and_the_endpoint_is_written_as_given() {
        let cassandra = json!({
            "endpoint": {"address": "0.0.0.0", "port": "10000",
                "tls": {"ca.crt": "/certs/ca.crt", "tls.crt": "/certs/tls.crt", "tls.key": "/certs/tls.key"}},
            "relabels": [{"sourceLabels": ["tag1", "tag2"], "separator": ";",
                "regex": "(.*);(b.*)", "action": "drop"}]
        });
        let config = parsed(&collector_yaml(Some(&cassandra)).expect("yaml"));
        assert_eq!(config, cassandra);
        let endpoint_only = json!({"endpoint": {"port": "10000"}});
        let config = parsed(&collector_yaml(Some(&endpoint_only)).expect("yaml"));
        assert_eq!(config["endpoint"], json!({"port": "10000"}));
        assert_eq!(
            config["relabels"].as_array().map(Vec::len),
            Some(metrics_agent_default_relabels().len()),
            "no relabels of their own: the defaults"
        );
    }

    #[test]
    fn settings_of_the_wrong_shape_are_refused() {
        let error = collector_yaml(Some(&json!({"relabels": "drop everything"})));
        assert!(error.is_err(), "{error:?}");
    }

    #[test]
    fn a_datacenters_settings_win_key_by_key_over_the_clusters() {
        let cluster = json!({"endpoint": {"address": "0.0.0.0", "port": "9000"},
            "relabels": [{"action": "drop"}]});
        let datacenter = json!({"endpoint": {"port": "10000"}});
        assert_eq!(
            merge_json(Some(&datacenter), Some(&cluster)),
            Some(json!({"endpoint": {"address": "0.0.0.0", "port": "10000"},
                "relabels": [{"action": "drop"}]}))
        );
        assert_eq!(merge_json(None, Some(&cluster)), Some(cluster.clone()));
        assert_eq!(merge_json(None, None), None);
    }

    #[test]
    fn the_name_is_upstreams() {
        assert_eq!(
            config_map_name("Demo Cluster", "dc1"),
            "democluster-dc1-metrics-agent-config"
        );
    }
}
