//! The ServiceMonitor of a Stargate or Reaper that no K8ssandraCluster made, as upstream's
//! Stargate and Reaper controllers write one: when the object's own `telemetry.prometheus` is
//! enabled, in its namespace, owned by it (so it goes with it). A Stargate or Reaper a
//! K8ssandraCluster made gets its monitor from the K8ssandraCluster controller
//! (`crate::federation::components`), which also follows the datacenter's telemetry there.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ObjectMeta};
use kube::{Api, Resource, ResourceExt};

use crate::api::cassdc::CassandraDatacenter;
use crate::api::reaper::Reaper;
use crate::api::shared::{CLUSTER_NAME_LABEL, TelemetrySpec};
use crate::api::stargate::Stargate;
use crate::apply::apply_if_changed;
use crate::dataplane::reaper::{REAPER_ADMIN_PORT, REAPER_LABEL, REAPER_METRICS_PATH};
use crate::workload::labels::{COMPONENT_LABEL, STARGATE_LABEL};
use crate::workload::relabel::stargate_relabelings;
use crate::workload::service_monitor::{
    COMPONENT_MONITORING, SERVICE_MONITOR_GROUP_VERSION, ScrapeEndpoint, ServiceMonitor, scrape,
    serves_service_monitors, service_monitor,
};

/// `<object>-servicemonitor`, the name the K8ssandraCluster controller gives its monitors too.
pub fn monitor_name(object: &str) -> String {
    format!("{object}-servicemonitor")
}

/// Made for a K8ssandraCluster (its ownership labels): its monitor is that controller's.
pub fn made_for_a_cluster<K: Resource>(object: &K) -> bool {
    object.meta().labels.as_ref().is_some_and(|labels| labels.contains_key(CLUSTER_NAME_LABEL))
}

fn monitor_of<K: Resource<DynamicType = ()>>(
    object: &K,
    telemetry: Option<&TelemetrySpec>,
    selector_label: &str,
    endpoint: ScrapeEndpoint,
) -> Option<ServiceMonitor> {
    if made_for_a_cluster(object) || !telemetry.is_some_and(TelemetrySpec::prometheus_enabled) {
        return None;
    }
    let name = object.meta().name.clone()?;
    let namespace = object.meta().namespace.clone()?;
    let mut labels = BTreeMap::from([
        (
            COMPONENT_LABEL.to_string(),
            COMPONENT_MONITORING.to_string(),
        ),
        (selector_label.to_string(), name.clone()),
    ]);
    let common = telemetry.and_then(|t| t.prometheus.as_ref()?.common_labels.as_ref());
    for (key, value) in common.into_iter().flatten() {
        labels.entry(key.clone()).or_insert_with(|| value.clone());
    }
    let owner = OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: name.clone(),
        uid: object.meta().uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let meta = ObjectMeta {
        name: Some(monitor_name(&name)),
        namespace: Some(namespace.clone()),
        labels: Some(labels),
        owner_references: Some(vec![owner]),
        ..ObjectMeta::default()
    };
    Some(service_monitor(
        meta,
        BTreeMap::from([(selector_label.to_string(), name)]),
        &namespace,
        endpoint,
        Vec::new(),
    ))
}

/// A hand-made Stargate's monitor: its `health` port's `/metrics`, relabelled as the
/// K8ssandraCluster controller's Stargate monitors are, with `dc`'s cluster and datacenter.
pub fn stargate_monitor(stargate: &Stargate, dc: &CassandraDatacenter) -> Option<ServiceMonitor> {
    let datacenter =
        dc.spec.datacenter_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| dc.name_any());
    let relabelings = stargate_relabelings(&dc.spec.cluster_name, &datacenter);
    monitor_of(
        stargate,
        stargate.spec.template.telemetry.as_ref(),
        STARGATE_LABEL,
        scrape("health", "/metrics", relabelings),
    )
}

/// A hand-made Reaper's monitor: its admin port's `/prometheusMetrics`.
pub fn reaper_monitor(reaper: &Reaper) -> Option<ServiceMonitor> {
    monitor_of(
        reaper,
        reaper.spec.template.telemetry.as_ref(),
        REAPER_LABEL,
        scrape(REAPER_ADMIN_PORT, REAPER_METRICS_PATH, Vec::new()),
    )
}

/// What [`converge`] could not do; the reconcile goes on.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(
        "its ServiceMonitor {name} was not made: the ServiceMonitor CRD ({SERVICE_MONITOR_GROUP_VERSION}) is not installed in this cluster; install prometheus-operator, or turn telemetry.prometheus off"
    )]
    CrdMissing { name: String },
    #[error("{action} ServiceMonitor {name}: {source}")]
    Api {
        action: &'static str,
        name: String,
        source: kube::Error,
    },
}

/// Brings the monitor named after `owner` to `desired`: applied when wanted, deleted when not
/// (only one `owner` owns: never the K8ssandraCluster controller's).
pub async fn converge(
    client: &kube::Client,
    field_manager: &str,
    namespace: &str,
    owner: &str,
    owner_uid: &str,
    desired: Option<ServiceMonitor>,
) -> Result<(), MonitorError> {
    let name = monitor_name(owner);
    let api_error = |action| {
        let name = name.clone();
        move |source| MonitorError::Api {
            action,
            name,
            source,
        }
    };
    let monitors: Api<ServiceMonitor> = Api::namespaced(client.clone(), namespace);
    match desired {
        Some(desired) => {
            if !serves_service_monitors(client).await.map_err(api_error("discovering"))? {
                return Err(MonitorError::CrdMissing { name });
            }
            let live = monitors.get_opt(&name).await.map_err(api_error("reading"))?;
            apply_if_changed(&monitors, field_manager, &desired, live.as_ref())
                .await
                .map_err(api_error("applying"))?;
        }
        None => {
            // Without the CRD there is no monitor to delete either.
            let live = match monitors.get_opt(&name).await {
                Err(kube::Error::Api(response)) if response.is_not_found() => None,
                read => read.map_err(api_error("reading"))?,
            };
            let owned = live.is_some_and(|monitor| {
                monitor.owner_references().iter().any(|reference| reference.uid == owner_uid)
            });
            if owned {
                monitors
                    .delete(&name, &DeleteParams::default())
                    .await
                    .map_err(api_error("deleting"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reaper(labels: serde_json::Value, telemetry: serde_json::Value) -> Reaper {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "reaper.k8ssandra.io/v1alpha1", "kind": "Reaper",
            "metadata": {"name": "solo", "namespace": "ns", "uid": "u-1", "labels": labels},
            "spec": {"datacenterRef": {"name": "dc1"}, "telemetry": telemetry}
        }))
        .expect("a Reaper")
    }

    #[test]
    fn a_hand_made_reaper_with_prometheus_on_gets_a_monitor_of_its_admin_port_owned_by_it() {
        let on =
            serde_json::json!({"prometheus": {"enabled": true, "commonLabels": {"team": "db"}}});
        let monitor = reaper_monitor(&reaper(serde_json::json!({}), on)).expect("a monitor");
        assert_eq!(monitor.name_any(), "solo-servicemonitor");
        let owner = &monitor.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Reaper", "u-1", Some(true))
        );
        let endpoint = &monitor.spec.endpoints[0];
        assert_eq!(endpoint.port.as_deref(), Some(REAPER_ADMIN_PORT));
        assert_eq!(endpoint.path.as_deref(), Some(REAPER_METRICS_PATH));
        assert_eq!(
            monitor.spec.selector.match_labels,
            Some(BTreeMap::from([(REAPER_LABEL.into(), "solo".into())]))
        );
        assert_eq!(monitor.labels().get("team").map(String::as_str), Some("db"));
    }

    #[test]
    fn none_without_prometheus_or_for_a_clusters_reaper() {
        let on = serde_json::json!({"prometheus": {"enabled": true}});
        let off = serde_json::json!({"prometheus": {"enabled": false}});
        assert!(reaper_monitor(&reaper(serde_json::json!({}), off)).is_none());
        let made = serde_json::json!({CLUSTER_NAME_LABEL: "demo"});
        assert!(reaper_monitor(&reaper(made, on)).is_none());
    }
}
