//! The part of prometheus-operator's ServiceMonitor (monitoring.coreos.com/v1) Federator writes.
//! Not a CRD of Federator: it exists in a region only where prometheus-operator is installed.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use kube::api::ObjectMeta;
use serde::{Deserialize, Serialize};

/// Group, version and plural of ServiceMonitors, for discovery.
pub const SERVICE_MONITOR_GROUP_VERSION: &str = "monitoring.coreos.com/v1";
pub const SERVICE_MONITOR_PLURAL: &str = "servicemonitors";
/// `app.kubernetes.io/component` of the ServiceMonitors.
pub const COMPONENT_MONITORING: &str = "monitoring";

/// A monitor of the Services in `namespace` matching `selector`, scraped at `endpoint`, each
/// series labelled with the Service's `target_labels`.
pub fn service_monitor(
    meta: ObjectMeta,
    selector: BTreeMap<String, String>,
    namespace: &str,
    endpoint: ScrapeEndpoint,
    target_labels: Vec<String>,
) -> ServiceMonitor {
    ServiceMonitor {
        metadata: meta,
        spec: ServiceMonitorSpec {
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            namespace_selector: Some(NamespaceSelector {
                match_names: vec![namespace.into()],
            }),
            endpoints: vec![endpoint],
            job_label: None,
            target_labels,
        },
    }
}

/// Whether the cluster serves ServiceMonitors (prometheus-operator's CRD is installed).
pub async fn serves_service_monitors(client: &kube::Client) -> Result<bool, kube::Error> {
    match client.list_api_group_resources(SERVICE_MONITOR_GROUP_VERSION).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == SERVICE_MONITOR_PLURAL)),
        Err(kube::Error::Api(response)) if response.is_not_found() => Ok(false),
        Err(error) => Err(error),
    }
}

/// A scrape every 15 s of `path` on the Service port `port`, as upstream's monitors.
pub fn scrape(port: &str, path: &str, metric_relabelings: Vec<RelabelConfig>) -> ScrapeEndpoint {
    ScrapeEndpoint {
        port: Some(port.into()),
        path: Some(path.into()),
        scheme: Some("http".into()),
        interval: Some("15s".into()),
        scrape_timeout: Some("15s".into()),
        metric_relabelings,
    }
}

/// Which Services Prometheus scrapes, and how.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "monitoring.coreos.com",
    version = "v1",
    kind = "ServiceMonitor",
    plural = "servicemonitors",
    namespaced,
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    pub selector: LabelSelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<NamespaceSelector>,
    #[serde(default)]
    pub endpoints: Vec<ScrapeEndpoint>,
    /// Label of the target Service whose value becomes the `job` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_label: Option<String>,
    /// Labels of the target Service copied onto every scraped series.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_labels: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_names: Vec<String>,
}

/// One scraped port of the selected Services.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScrapeEndpoint {
    /// Name of the Service port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_timeout: Option<String>,
    /// Rewrites of the scraped series before Prometheus stores them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_relabelings: Vec<RelabelConfig>,
}

/// One Prometheus relabelling step (prometheus-operator's `RelabelConfig`); also the shape of
/// the relabels in the Cassandra metrics agent's configuration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RelabelConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modulus: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// `replace` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

impl RelabelConfig {
    /// Sets `target` to `replacement` on series whose `sources` (joined by `;`) match `regex`.
    pub fn replace(sources: &[&str], regex: &str, target: &str, replacement: &str) -> Self {
        RelabelConfig {
            source_labels: sources.iter().map(|s| s.to_string()).collect(),
            separator: (sources.len() > 1).then(|| ";".to_string()),
            target_label: Some(target.into()),
            regex: Some(regex.into()),
            replacement: Some(replacement.into()),
            ..RelabelConfig::default()
        }
    }

    /// Drops series whose `sources` match `regex`.
    pub fn drop(sources: &[&str], regex: &str) -> Self {
        RelabelConfig {
            source_labels: sources.iter().map(|s| s.to_string()).collect(),
            regex: Some(regex.into()),
            action: Some("drop".into()),
            ..RelabelConfig::default()
        }
    }

    /// Removes the labels whose name matches `regex`.
    pub fn label_drop(regex: &str) -> Self {
        RelabelConfig {
            regex: Some(regex.into()),
            action: Some("labeldrop".into()),
            ..RelabelConfig::default()
        }
    }
}
