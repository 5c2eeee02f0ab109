//! The per-datacenter components the control plane puts in each datacenter's region and
//! namespace, next to its CassandraDatacenter: a Stargate, a Reaper, and ServiceMonitors for
//! Prometheus. The data plane's controllers (`crate::dataplane`) turn Stargates and Reapers into
//! Deployments; this module only writes the resources and reads their status back.
//!
//! - **Stargate** `<k8c>-<dc>-stargate` when `spec.stargate` or the datacenter's `stargate` is
//!   set (the datacenter's template wins field by field), created once the datacenter is Ready;
//!   none for a stopped datacenter (`stopped: true`): its Stargate is deleted, as upstream, and
//!   made again once the datacenter is started and Ready.
//! - **Reaper** per `spec.reaper.deploymentMode`: `PER_DC` one `<cluster>-<dc>-reaper` in every
//!   datacenter (availability `EACH` with several datacenters, else `ALL`); `SINGLE` one in the
//!   first datacenter that is not stopped (`ALL`); `CONTROL_PLANE` none; a stopped datacenter
//!   none. None either when `reaperRef` names an existing Reaper (as upstream, whatever the
//!   mode): the cluster is registered with that one (`super::reaper_registration`). Created once
//!   its datacenter is Ready.
//! - **Purge schedule** `<cluster>-<dc>-medusa-purge` (upstream's name), a MedusaBackupSchedule
//!   purging the datacenter's backups daily at midnight UTC, when `spec.medusa` is set and its
//!   `purgeBackups` is not false; removed when it turns false or the datacenter goes.
//! - **ServiceMonitors** (monitoring.coreos.com/v1), only in regions that serve the
//!   ServiceMonitor kind (elsewhere the `TelemetryReady` condition names the regions that lack
//!   it), each with the relabelling of `crate::workload::relabel`:
//!   - the Cassandra pods' when `telemetry.prometheus.enabled` holds for the datacenter (its own
//!     `telemetry`, else the cluster's): MCAC's port `prometheus` renamed into `mcac_*` series,
//!     else the metrics endpoint's port `metrics` as it is; every series gets the
//!     `cassandra.datastax.com/cluster` and `/datacenter` labels of the Service;
//!   - the Stargate's when its own telemetry (else the datacenter's) enables Prometheus: its
//!     client request metrics as `stargate_client_request_*`, labelled with the cluster and
//!     the datacenter;
//!   - the Reaper's when the Reaper template's own `telemetry` enables Prometheus (as upstream,
//!     the cluster's telemetry does not count): its admin port's `/prometheusMetrics`.
//!
//!   A Stargate or Reaper made by hand gets its monitor from its own controller instead
//!   (`crate::dataplane::monitor`).
//!
//! Every object carries the ownership labels, so that a template removed, a datacenter removed
//! or the K8ssandraCluster deleted removes what it had (found by label selector).
//!
//! | condition | status | reason | meaning |
//! |---|---|---|---|
//! | TelemetryReady | True | `ServiceMonitorsApplied` | every requested ServiceMonitor is in place |
//! | TelemetryReady | False | `ServiceMonitorCrdMissing` | the message names each region (and datacenter) without prometheus-operator's ServiceMonitor CRD: install prometheus-operator there, or turn telemetry off for those datacenters |
//!
//! The condition is absent when no datacenter asks for Prometheus telemetry.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams, ObjectMeta};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::backups::{self, BackedUpDatacenter};
use super::observed::{ObservedCluster, known_contexts};
use super::plan::{ClusterKey, ClusterPlan, DatacenterPlan};
use crate::api::k8ssandra_cluster::{DatacenterBackups, K8ssandraCluster, K8ssandraClusterStatus};
use crate::api::medusa::MedusaBackupSchedule;
use crate::api::reaper::{
    DatacenterAvailability, DeploymentMode, Reaper, ReaperClusterTemplate, ReaperDatacenterRef,
    ReaperSpec, ReaperStatus, ReaperTemplate,
};
use crate::api::shared::{
    CONDITION_FALSE, CONDITION_TRUE, EncryptionStores, SecretRef, TelemetrySpec, new_condition,
    set_condition,
};
use crate::api::stargate::{
    CassandraEncryption, Stargate, StargateDatacenterRef, StargateSpec, StargateStatus,
};
use crate::apply::apply_if_changed;
use crate::clusters::{RegionFailure, Registry};
use crate::dataplane::reaper::{REAPER_ADMIN_PORT, REAPER_LABEL, REAPER_METRICS_PATH};
use crate::workload::encryption::{self, Traffic};
use crate::workload::labels::{
    CASSANDRA_CLUSTER_LABEL, CASSANDRA_DATACENTER_LABEL, COMPONENT_LABEL, clean_for_kubernetes,
    clean_label_value, datacenter_labels,
};
use crate::workload::labels::{COMPONENT_STARGATE, STARGATE_LABEL};
use crate::workload::relabel;
use crate::workload::service_monitor::{
    COMPONENT_MONITORING, SERVICE_MONITOR_GROUP_VERSION, ServiceMonitor, scrape,
    serves_service_monitors, service_monitor,
};

/// Field manager of the components' writes in the regions.
pub const FIELD_MANAGER: &str = "federator-components";
pub const CONDITION_TELEMETRY_READY: &str = "TelemetryReady";
pub const REASON_SERVICE_MONITORS_APPLIED: &str = "ServiceMonitorsApplied";
pub const REASON_SERVICE_MONITOR_CRD_MISSING: &str = "ServiceMonitorCrdMissing";
/// cass-operator's label on the Service whose endpoints expose Cassandra metrics.
pub const PROM_METRICS_LABEL: &str = "cassandra.datastax.com/prom-metrics";
const COMPONENT_REAPER: &str = "reaper";
const COMPONENT_MEDUSA: &str = "medusa";

/// What one datacenter should have besides its CassandraDatacenter.
#[derive(Clone, Debug, PartialEq)]
pub struct DatacenterComponents {
    pub datacenter: String,
    pub context: String,
    pub namespace: String,
    pub stargate: Option<Stargate>,
    pub reaper: Option<Reaper>,
    pub service_monitors: Vec<ServiceMonitor>,
    /// The daily MedusaBackupSchedule purging its backups (`spec.medusa`, `purgeBackups` not
    /// false).
    pub purge_schedule: Option<MedusaBackupSchedule>,
}

/// `<k8c>-<dc>-stargate`.
pub fn stargate_name(cluster: &str, datacenter: &str) -> String {
    format!("{cluster}-{datacenter}-stargate")
}

/// `<cluster>-<dc>-reaper` (k8ssandra-operator's name).
pub fn reaper_name(cassandra_cluster: &str, datacenter: &str) -> String {
    format!(
        "{}-{}-reaper",
        clean_for_kubernetes(cassandra_cluster),
        clean_for_kubernetes(datacenter)
    )
}

fn metadata(
    name: String,
    namespace: &str,
    cluster: &ClusterKey,
    datacenter: &str,
    component: &str,
    extra: Option<&BTreeMap<String, String>>,
) -> ObjectMeta {
    let mut labels = datacenter_labels(&cluster.name, &cluster.namespace, datacenter);
    labels.insert(COMPONENT_LABEL.into(), component.into());
    for (key, value) in extra.into_iter().flatten() {
        labels.entry(key.clone()).or_insert_with(|| value.clone());
    }
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.into()),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

fn common_labels(telemetry: Option<&TelemetrySpec>) -> Option<&BTreeMap<String, String>> {
    telemetry?.prometheus.as_ref()?.common_labels.as_ref()
}

/// The components of every datacenter of the plan. Pure.
pub fn plan_components(k8c: &K8ssandraCluster, plan: &ClusterPlan) -> Vec<DatacenterComponents> {
    let cluster = &plan.cluster;
    let cluster_options =
        k8c.spec.cassandra.as_ref().map(|c| c.options.clone()).unwrap_or_default();
    let reaper_template = k8c.spec.reaper.as_ref().filter(|r| !r.references_a_reaper());
    let mode = reaper_template.map(|r| r.deployment_mode_or_default());
    let availability = if mode == Some(DeploymentMode::Single) || plan.datacenters.len() <= 1 {
        DatacenterAvailability::All
    } else {
        DatacenterAvailability::Each
    };
    let stopped =
        |name: &str| (k8c.spec.datacenters().iter()).any(|t| t.name() == name && t.is_stopped());
    // SINGLE: the first datacenter that runs (as upstream).
    let single_reaper_dc =
        plan.datacenters.iter().find(|dc| !stopped(&dc.name)).map(|dc| dc.name.as_str());
    plan.datacenters
        .iter()
        .map(|dc| {
            let template = k8c.spec.datacenters().iter().find(|t| t.name() == dc.name);
            let encryption = datacenter_encryption(k8c, dc);
            let telemetry = template
                .map(|t| t.options.merged_over(&cluster_options).telemetry)
                .unwrap_or_else(|| cluster_options.telemetry.clone());
            // A stopped datacenter has no node for Stargate to join.
            let stargate_spec = match (
                k8c.spec.stargate.as_ref().filter(|_| !stopped(&dc.name)),
                template.and_then(|t| t.stargate.as_ref()).filter(|_| !stopped(&dc.name)),
            ) {
                (_, Some(own)) => Some((
                    own.size,
                    own.template.merged_over(
                        &k8c.spec.stargate.as_ref().map(|c| c.template.clone()).unwrap_or_default(),
                    ),
                    own.racks.clone(),
                )),
                (Some(cluster_level), None) => {
                    Some((cluster_level.size, cluster_level.template.clone(), None))
                }
                (None, None) => None,
            };
            let stargate = stargate_spec.map(|(size, template, racks)| {
                let name = stargate_name(&cluster.name, &dc.name);
                Stargate {
                    metadata: metadata(
                        name,
                        &dc.namespace,
                        cluster,
                        &dc.name,
                        COMPONENT_STARGATE,
                        None,
                    ),
                    spec: StargateSpec {
                        datacenter_ref: StargateDatacenterRef {
                            name: dc.name.clone(),
                        },
                        auth: k8c.spec.auth,
                        cassandra_encryption: encryption.clone(),
                        size,
                        template,
                        racks,
                    },
                    status: None,
                }
            });
            // A stopped datacenter has no node for Reaper to talk to.
            let wants_reaper = !stopped(&dc.name)
                && match mode {
                    Some(DeploymentMode::PerDc) => true,
                    Some(DeploymentMode::Single) => single_reaper_dc == Some(dc.name.as_str()),
                    Some(DeploymentMode::ControlPlane) | None => false,
                };
            let reaper = reaper_template.filter(|_| wants_reaper).map(|template| Reaper {
                metadata: metadata(
                    reaper_name(&plan.cassandra_cluster_name, &dc.name),
                    &dc.namespace,
                    cluster,
                    &dc.name,
                    COMPONENT_REAPER,
                    None,
                ),
                spec: ReaperSpec {
                    datacenter_ref: Some(ReaperDatacenterRef {
                        name: dc.name.clone(),
                        namespace: Some(dc.namespace.clone()),
                    }),
                    datacenter_availability: Some(availability),
                    client_encryption_stores: encryption
                        .as_ref()
                        .and_then(|e| e.client_encryption_stores.clone()),
                    template: reaper_with_logins(k8c, plan, template),
                },
                status: None,
            });
            let mut service_monitors = Vec::new();
            if telemetry.as_ref().is_some_and(TelemetrySpec::prometheus_enabled) {
                // MCAC's series need renaming; the metrics endpoint names its own.
                let endpoint = if telemetry.as_ref().is_some_and(TelemetrySpec::mcac_enabled) {
                    scrape("prometheus", "/metrics", relabel::mcac_relabelings())
                } else {
                    scrape("metrics", "/metrics", Vec::new())
                };
                service_monitors.push(service_monitor(
                    metadata(
                        format!(
                            "{}-{}-cass-servicemonitor",
                            clean_for_kubernetes(&plan.cassandra_cluster_name),
                            clean_for_kubernetes(&dc.name)
                        ),
                        &dc.namespace,
                        cluster,
                        &dc.name,
                        COMPONENT_MONITORING,
                        common_labels(telemetry.as_ref()),
                    ),
                    BTreeMap::from([
                        (
                            CASSANDRA_CLUSTER_LABEL.to_string(),
                            clean_label_value(&plan.cassandra_cluster_name),
                        ),
                        (
                            CASSANDRA_DATACENTER_LABEL.to_string(),
                            dc.cassandra_datacenter_name.clone(),
                        ),
                        (PROM_METRICS_LABEL.to_string(), "true".to_string()),
                    ]),
                    &dc.namespace,
                    endpoint,
                    // Every series says which cluster and datacenter it comes from.
                    vec![
                        CASSANDRA_CLUSTER_LABEL.to_string(),
                        CASSANDRA_DATACENTER_LABEL.to_string(),
                    ],
                ));
            }
            if let Some(stargate) = &stargate {
                // Stargate's own telemetry wins; else the datacenter's.
                let stargate_telemetry =
                    stargate.spec.template.telemetry.clone().or_else(|| telemetry.clone());
                if stargate_telemetry.as_ref().is_some_and(TelemetrySpec::prometheus_enabled) {
                    service_monitors.push(service_monitor(
                        metadata(
                            format!("{}-servicemonitor", stargate.name_any()),
                            &dc.namespace,
                            cluster,
                            &dc.name,
                            COMPONENT_MONITORING,
                            common_labels(stargate_telemetry.as_ref()),
                        ),
                        BTreeMap::from([(STARGATE_LABEL.to_string(), stargate.name_any())]),
                        &dc.namespace,
                        scrape(
                            "health",
                            "/metrics",
                            relabel::stargate_relabelings(
                                &plan.cassandra_cluster_name,
                                &dc.cassandra_datacenter_name,
                            ),
                        ),
                        Vec::new(),
                    ));
                }
            }
            // Reaper's own telemetry only, as upstream.
            if let Some(reaper) = &reaper {
                let reaper_telemetry = reaper.spec.template.telemetry.as_ref();
                if reaper_telemetry.is_some_and(TelemetrySpec::prometheus_enabled) {
                    service_monitors.push(service_monitor(
                        metadata(
                            format!("{}-servicemonitor", reaper.name_any()),
                            &dc.namespace,
                            cluster,
                            &dc.name,
                            COMPONENT_MONITORING,
                            common_labels(reaper_telemetry),
                        ),
                        BTreeMap::from([(REAPER_LABEL.to_string(), reaper.name_any())]),
                        &dc.namespace,
                        scrape(REAPER_ADMIN_PORT, REAPER_METRICS_PATH, Vec::new()),
                        Vec::new(),
                    ));
                }
            }
            let purge_schedule = k8c.spec.medusa.as_deref().and_then(|medusa| {
                let name = crate::workload::medusa::purge_schedule_name(
                    &plan.cassandra_cluster_name,
                    &dc.cassandra_datacenter_name,
                );
                let meta = metadata(
                    name,
                    &dc.namespace,
                    cluster,
                    &dc.name,
                    COMPONENT_MEDUSA,
                    None,
                );
                crate::workload::medusa::purge_schedule(medusa, meta, &dc.name)
            });
            DatacenterComponents {
                datacenter: dc.name.clone(),
                context: dc.context.clone(),
                namespace: dc.namespace.clone(),
                stargate,
                reaper,
                service_monitors,
                purge_schedule,
            }
        })
        .collect()
}

/// The stores of the encryption a datacenter turns on, unless an injector provides them
/// (external secrets): Stargate's embedded node needs them all (it joins the ring and serves
/// CQL like the datacenter's nodes); Reaper, a CQL client, the client stores.
fn datacenter_encryption(
    k8c: &K8ssandraCluster,
    dc: &DatacenterPlan,
) -> Option<CassandraEncryption> {
    if k8c.spec.uses_external_secrets() {
        return None;
    }
    let cassandra = k8c.spec.cassandra.as_ref()?;
    let config = dc.datacenter.spec.config.as_ref();
    let yaml = config.and_then(|c| c.get("cassandra-yaml"));
    let stores = |traffic: Traffic, stores: &Option<EncryptionStores>| {
        stores.clone().filter(|_| encryption::enabled(yaml, traffic))
    };
    let wanted = CassandraEncryption {
        client_encryption_stores: stores(Traffic::Client, &cassandra.client_encryption_stores),
        server_encryption_stores: stores(Traffic::Server, &cassandra.server_encryption_stores),
    };
    (wanted != CassandraEncryption::default()).then_some(wanted)
}

/// The cluster's Reaper template with the logins Federator provides filled in, as
/// k8ssandra-operator fills them in: the Reaper objects say which Secrets to read.
fn reaper_with_logins(
    k8c: &K8ssandraCluster,
    plan: &ClusterPlan,
    cluster_level: &ReaperClusterTemplate,
) -> ReaperTemplate {
    let mut template = cluster_level.template.clone();
    template.secrets_provider = k8c.spec.secrets_provider;
    if let Some(access) = &plan.reaper_access {
        if let Some(cql) = &access.cql_user {
            template.cassandra_user_secret_ref = Some(SecretRef::new(&cql.name));
        }
        if let Some(ui) = &access.ui_user {
            template.ui_user_secret_ref = Some(SecretRef::new(&ui.name));
        }
    }
    template
}

/// What the components of one reconcile came to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ComponentsReport {
    /// What failed, with its region and object.
    pub errors: Vec<RegionFailure>,
    /// Regions that answered: their datacenters' entries are replaced; others keep theirs.
    pub answered: BTreeSet<String>,
    /// Status of each datacenter's Stargate and Reaper, as their regions report it.
    pub stargates: BTreeMap<String, StargateStatus>,
    pub reapers: BTreeMap<String, ReaperStatus>,
    /// Each datacenter's Medusa backups (`spec.medusa` set), as their regions list them.
    pub backups: BTreeMap<String, DatacenterBackups>,
    /// The backups were looked up (`spec.medusa` set): look again now and then.
    pub backups_read: bool,
    /// A MedusaBackupJob runs on one of the datacenters: look again soon for its MedusaBackup.
    pub backup_running: bool,
    /// Whether any datacenter asks for Prometheus telemetry.
    pub telemetry_requested: bool,
    /// Region → datacenters whose ServiceMonitors could not be created there (no CRD).
    pub service_monitor_crd_missing: BTreeMap<String, Vec<String>>,
    /// Nothing is waiting: every wanted component exists and is ready.
    pub settled: bool,
}

impl ComponentsReport {
    /// Mirrors the components into `status.datacenters[dc]` and sets `TelemetryReady`. Pure.
    pub fn fill_status(
        &self,
        status: &mut K8ssandraClusterStatus,
        generation: Option<i64>,
        now: Time,
    ) {
        for (name, entry) in status.datacenters.iter_mut().flatten() {
            let context = entry.context_name.clone().unwrap_or_default();
            if self.answered.contains(&context) {
                entry.stargate = self.stargates.get(name).cloned();
                entry.reaper = self.reapers.get(name).cloned();
                entry.backups = self.backups.get(name).cloned();
            }
        }
        let mut conditions = status.conditions.take().unwrap_or_default();
        if !self.telemetry_requested {
            conditions.retain(|c| c.type_ != CONDITION_TELEMETRY_READY);
        } else if self.service_monitor_crd_missing.is_empty() {
            set_condition(
                &mut conditions,
                new_condition(
                    CONDITION_TELEMETRY_READY,
                    CONDITION_TRUE,
                    REASON_SERVICE_MONITORS_APPLIED,
                    "every requested ServiceMonitor is in place",
                    generation,
                    now,
                ),
            );
        } else {
            let regions: Vec<String> = self
                .service_monitor_crd_missing
                .iter()
                .map(|(region, dcs)| format!("{region:?} ({})", dcs.join(", ")))
                .collect();
            set_condition(
                &mut conditions,
                new_condition(
                    CONDITION_TELEMETRY_READY,
                    CONDITION_FALSE,
                    REASON_SERVICE_MONITOR_CRD_MISSING,
                    format!(
                        "the ServiceMonitor CRD ({SERVICE_MONITOR_GROUP_VERSION}) is missing in region {}: install prometheus-operator there or turn Prometheus telemetry off",
                        regions.join(", ")
                    ),
                    generation,
                    now,
                ),
            );
        }
        status.conditions = (!conditions.is_empty()).then_some(conditions);
    }
}

/// Every object of kind `K` in the region with this cluster's labels; a kind the region does
/// not serve has none.
async fn list_owned<K>(
    client: &kube::Client,
    namespaces: &[String],
    selector: &str,
) -> Result<Vec<K>, kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = crate::cache::scoped(client, namespaces);
    match api.list(&ListParams::default().labels(selector)).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(response)) if response.is_not_found() => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

fn key_of<K: Resource>(object: &K) -> (String, String) {
    (
        object.meta().namespace.clone().unwrap_or_default(),
        object.meta().name.clone().unwrap_or_default(),
    )
}

/// Applies the wanted objects of one kind in a region and deletes the owned ones no longer
/// wanted. `wanted` pairs each object with whether it may be created now (an existing one is
/// always kept up to date). Returns the live objects by key, and the errors.
async fn converge<K>(
    client: &kube::Client,
    region: &str,
    wanted: &[(&K, bool)],
    live: Vec<K>,
    errors: &mut Vec<RegionFailure>,
) -> BTreeMap<(String, String), K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let kind = K::kind(&());
    let live: BTreeMap<(String, String), K> = live.into_iter().map(|o| (key_of(&o), o)).collect();
    for (object, may_create) in wanted {
        let key = key_of(*object);
        let current = live.get(&key);
        if current.is_none() && !may_create {
            continue;
        }
        let api: Api<K> = Api::namespaced(client.clone(), &key.0);
        if let Err(error) = apply_if_changed(&api, FIELD_MANAGER, *object, current).await {
            let doing = format!("applying {kind} {}/{}", key.0, key.1);
            errors.push(RegionFailure::kube(region, doing, &error));
        }
    }
    let wanted_keys: BTreeSet<(String, String)> = wanted.iter().map(|(o, _)| key_of(*o)).collect();
    for key in live.keys().filter(|k| !wanted_keys.contains(*k)) {
        let api: Api<K> = Api::namespaced(client.clone(), &key.0);
        match api.delete(&key.1, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(response)) if response.is_not_found() => {}
            Err(error) => {
                let doing = format!("deleting {kind} {}/{}", key.0, key.1);
                errors.push(RegionFailure::kube(region, doing, &error));
            }
        }
    }
    live
}

/// One region's part of [`reconcile`].
async fn reconcile_region(
    registry: &Registry,
    cluster: &ClusterKey,
    region: String,
    components: Vec<&DatacenterComponents>,
    ready: &BTreeSet<String>,
    backups_wanted: bool,
) -> ComponentsReport {
    let mut report = ComponentsReport {
        settled: true,
        ..ComponentsReport::default()
    };
    let Ok(client) = registry.client(&region) else {
        // The datacenters' own status already says the region is unknown or down.
        report.settled = components.is_empty();
        return report;
    };
    let selector = crate::workload::labels::ownership_selector(&cluster.name, &cluster.namespace);
    let errors = &mut report.errors;
    let (stargates, reapers, monitors_served) = futures::join!(
        list_owned::<Stargate>(&client, registry.namespaces(&region), &selector),
        list_owned::<Reaper>(&client, registry.namespaces(&region), &selector),
        serves_service_monitors(&client),
    );
    let mut failed = |what: &str, error: kube::Error| {
        errors.push(RegionFailure::kube(&region, what, &error));
    };
    let (stargates, reapers, monitors_served) = match (stargates, reapers, monitors_served) {
        (Ok(s), Ok(r), Ok(m)) => (s, r, m),
        (s, r, m) => {
            for error in [s.err(), r.err(), m.err()].into_iter().flatten() {
                failed("looking up the components", error);
            }
            report.settled = false;
            return report;
        }
    };
    let may_create = |dc: &DatacenterComponents| ready.contains(&dc.datacenter);
    let wanted_stargates: Vec<(&Stargate, bool)> = components
        .iter()
        .filter_map(|dc| dc.stargate.as_ref().map(|s| (s, may_create(dc))))
        .collect();
    let wanted_reapers: Vec<(&Reaper, bool)> = components
        .iter()
        .filter_map(|dc| dc.reaper.as_ref().map(|r| (r, may_create(dc))))
        .collect();
    let live_stargates = converge(&client, &region, &wanted_stargates, stargates, errors).await;
    let live_reapers = converge(&client, &region, &wanted_reapers, reapers, errors).await;
    // Purge schedules are looked after while spec.medusa is set (so that purgeBackups turned
    // off removes them).
    if backups_wanted {
        let wanted: Vec<(&MedusaBackupSchedule, bool)> = components
            .iter()
            .filter_map(|dc| dc.purge_schedule.as_ref().map(|s| (s, true)))
            .collect();
        let namespaces = registry.namespaces(&region);
        match list_owned::<MedusaBackupSchedule>(&client, namespaces, &selector).await {
            Ok(live) => {
                converge(&client, &region, &wanted, live, errors).await;
            }
            Err(error) => errors.push(RegionFailure::kube(
                &region,
                "listing MedusaBackupSchedules",
                &error,
            )),
        }
    }
    if monitors_served {
        let wanted: Vec<(&ServiceMonitor, bool)> = components
            .iter()
            .flat_map(|dc| dc.service_monitors.iter().map(|m| (m, true)))
            .collect();
        match list_owned::<ServiceMonitor>(&client, registry.namespaces(&region), &selector).await {
            Ok(live) => {
                converge(&client, &region, &wanted, live, errors).await;
            }
            Err(error) => errors.push(RegionFailure::kube(
                &region,
                "listing ServiceMonitors",
                &error,
            )),
        }
    } else {
        let missing: Vec<String> = components
            .iter()
            .filter(|dc| !dc.service_monitors.is_empty())
            .map(|dc| dc.datacenter.clone())
            .collect();
        if !missing.is_empty() {
            report.service_monitor_crd_missing.insert(region.clone(), missing);
        }
    }
    for dc in &components {
        if let Some(wanted) = &dc.stargate {
            let status = live_stargates.get(&key_of(wanted)).and_then(|s| s.status.clone());
            report.settled &= status.as_ref().is_some_and(StargateStatus::is_ready);
            if let Some(status) = status {
                report.stargates.insert(dc.datacenter.clone(), status);
            }
        }
        if let Some(wanted) = &dc.reaper {
            let status = live_reapers.get(&key_of(wanted)).and_then(|r| r.status.clone());
            report.settled &= status.as_ref().is_some_and(ReaperStatus::is_ready);
            if let Some(status) = status {
                report.reapers.insert(dc.datacenter.clone(), status);
            }
        }
    }
    report.settled &= report.errors.is_empty();
    if backups_wanted {
        let datacenters: Vec<BackedUpDatacenter> = (components.iter())
            .map(|dc| BackedUpDatacenter {
                namespace: dc.namespace.clone(),
                name: dc.datacenter.clone(),
            })
            .collect();
        match backups::read_region(&client, registry.namespaces(&region), &datacenters).await {
            Ok(found) => {
                report.backup_running = found.values().any(|b| b.running.is_some());
                report.backups = found;
            }
            Err(error) => report.errors.push(RegionFailure::kube(
                &region,
                "listing Medusa backups",
                &error,
            )),
        }
    }
    report.answered.insert(region);
    report
}

/// Applies every datacenter's components in its region (regions in parallel, each bounded by
/// its client's timeout) and removes the ones no longer wanted, also in regions the cluster has
/// left. Stargates and Reapers are created once their datacenter is Ready.
pub async fn reconcile(
    registry: &Registry,
    k8c: &K8ssandraCluster,
    plan: &ClusterPlan,
    observed: &ObservedCluster,
) -> ComponentsReport {
    let components = plan_components(k8c, plan);
    let backups_wanted = k8c.spec.medusa.is_some();
    if !backups_wanted && !components_wanted_or_recorded(k8c, &components) {
        // Nothing to make and nothing made before (the status records every component made):
        // no need to ask every region.
        return ComponentsReport {
            settled: true,
            ..ComponentsReport::default()
        };
    }
    let ready: BTreeSet<String> = plan
        .datacenters
        .iter()
        .filter(|dc| observed.get(&dc.name).is_some_and(|o| o.state.is_ready()))
        .map(|dc| dc.name.clone())
        .collect();
    let mut regions: BTreeMap<String, Vec<&DatacenterComponents>> = BTreeMap::new();
    for dc in &components {
        regions.entry(dc.context.clone()).or_default().push(dc);
    }
    for region in known_contexts(k8c.status.as_ref()).into_values() {
        regions.entry(registry.canonical(&region).to_string()).or_default();
    }
    let reports = futures::future::join_all(regions.into_iter().map(|(region, dcs)| {
        reconcile_region(registry, &plan.cluster, region, dcs, &ready, backups_wanted)
    }))
    .await;
    let mut report = ComponentsReport {
        settled: true,
        telemetry_requested: components.iter().any(|dc| !dc.service_monitors.is_empty()),
        ..ComponentsReport::default()
    };
    for part in reports {
        report.errors.extend(part.errors);
        report.answered.extend(part.answered);
        report.stargates.extend(part.stargates);
        report.reapers.extend(part.reapers);
        report.backups.extend(part.backups);
        report.backup_running |= part.backup_running;
        report.backups_read |= backups_wanted;
        report.service_monitor_crd_missing.extend(part.service_monitor_crd_missing);
        report.settled &= part.settled;
    }
    report
}

/// Whether the spec asks for a component, or the status shows one was made.
fn components_wanted_or_recorded(
    k8c: &K8ssandraCluster,
    components: &[DatacenterComponents],
) -> bool {
    let wanted = components
        .iter()
        .any(|dc| dc.stargate.is_some() || dc.reaper.is_some() || !dc.service_monitors.is_empty());
    let status = k8c.status.as_ref();
    let recorded = status.and_then(|s| s.datacenters.as_ref()).is_some_and(|dcs| {
        (dcs.values())
            .any(|dc| dc.stargate.is_some() || dc.reaper.is_some() || dc.backups.is_some())
    }) || status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == CONDITION_TELEMETRY_READY));
    wanted || recorded
}

/// Deletes every component of the cluster in a region (by label selector): Stargates, Reapers,
/// purge schedules and ServiceMonitors; their Deployments and Services follow by garbage collection.
pub async fn delete_all(
    client: &kube::Client,
    namespaces: &[String],
    selector: &str,
) -> Result<(), String> {
    async fn delete_kind<K>(
        client: &kube::Client,
        namespaces: &[String],
        selector: &str,
    ) -> Result<(), String>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let kind = K::kind(&());
        let items = list_owned::<K>(client, namespaces, selector)
            .await
            .map_err(|e| format!("listing {kind}s: {e}"))?;
        for item in items {
            let (namespace, name) = key_of(&item);
            let api: Api<K> = Api::namespaced(client.clone(), &namespace);
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(response)) if response.is_not_found() => {}
                Err(e) => return Err(format!("deleting {kind} {namespace}/{name}: {e}")),
            }
        }
        Ok(())
    }
    delete_kind::<Stargate>(client, namespaces, selector).await?;
    delete_kind::<Reaper>(client, namespaces, selector).await?;
    delete_kind::<MedusaBackupSchedule>(client, namespaces, selector).await?;
    if serves_service_monitors(client)
        .await
        .map_err(|e| format!("discovering ServiceMonitors: {e}"))?
    {
        delete_kind::<ServiceMonitor>(client, namespaces, selector).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::k8ssandra_cluster::DatacenterStatus;
    use crate::api::shared::SecretsProvider;
    use crate::api::stargate::StargateProgress;
    use crate::federation::plan::plan;

    fn cluster(mut spec: serde_json::Value) -> K8ssandraCluster {
        spec["cassandra"]["storageConfig"] = serde_json::json!({"cassandraDataVolumeClaimSpec": {
            "storageClassName": "standard", "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "5Gi"}}
        }});
        serde_json::from_value(serde_json::json!({
            "apiVersion": "k8ssandra.io/v1alpha1", "kind": "K8ssandraCluster",
            "metadata": {"name": "demo", "namespace": "hub"},
            "spec": spec,
        }))
        .expect("valid K8ssandraCluster")
    }

    fn two_datacenters(extra: serde_json::Value) -> serde_json::Value {
        let mut spec = serde_json::json!({"cassandra": {
            "serverVersion": "4.1.5",
            "datacenters": [
                {"metadata": {"name": "dc1", "namespace": "ns1"}, "k8sContext": "east", "size": 3,
                 "stargate": {"size": 2, "heapSize": "1Gi"}},
                {"metadata": {"name": "dc2"}, "k8sContext": "west", "size": 3,
                 "telemetry": {"prometheus": {"enabled": false}}}
            ]
        }});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            for (key, value) in extra {
                if key == "telemetry" {
                    spec["cassandra"]["telemetry"] = value.clone();
                } else {
                    spec.insert(key.clone(), value.clone());
                }
            }
        }
        spec
    }

    fn components_of(k8c: &K8ssandraCluster) -> Vec<DatacenterComponents> {
        plan_components(k8c, &plan(k8c).expect("plannable"))
    }

    #[test]
    fn datacenter_stargate_wins_over_the_cluster_template_field_by_field() {
        let k8c = cluster(two_datacenters(serde_json::json!({
            "stargate": {"size": 1, "heapSize": "256Mi", "serviceAccount": "sg"}
        })));
        let components = components_of(&k8c);
        let dc1 = components[0].stargate.as_ref().expect("dc1 stargate");
        assert_eq!(dc1.name_any(), "demo-dc1-stargate");
        assert_eq!(dc1.namespace().as_deref(), Some("ns1"));
        assert_eq!(components[0].context, "east");
        assert_eq!(dc1.spec.size, 2);
        assert_eq!(
            dc1.spec.template.heap_size.as_ref().map(|q| q.0.as_str()),
            Some("1Gi")
        );
        assert_eq!(dc1.spec.template.service_account.as_deref(), Some("sg"));
        assert_eq!(dc1.spec.datacenter_ref.name, "dc1");
        let dc2 = components[1].stargate.as_ref().expect("dc2 stargate from the cluster");
        assert_eq!(dc2.spec.size, 1);
        assert_eq!(dc2.namespace().as_deref(), Some("hub"));
        let labels = dc1.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["k8ssandra.io/cluster-name"], "demo");
        assert_eq!(
            labels["k8ssandra.io/cleaned-up-by"],
            "k8ssandracluster-controller"
        );
        assert_eq!(labels["k8ssandra.io/datacenter"], "dc1");
    }

    #[test]
    fn no_stargate_template_means_no_stargate() {
        let k8c = cluster(serde_json::json!({"cassandra": {"serverVersion": "4.1.5",
            "datacenters": [{"metadata": {"name": "dc1"}, "size": 1}]}}));
        let components = components_of(&k8c);
        assert!(components[0].stargate.is_none());
        assert!(components[0].reaper.is_none());
        assert!(components[0].service_monitors.is_empty());
    }

    #[test]
    fn stargate_gets_the_stores_of_the_encryption_its_datacenter_turns_on() {
        let mut spec = two_datacenters(serde_json::json!({}));
        spec["cassandra"]["config"] = serde_json::json!({"cassandraYaml": {
            "server_encryption_options": {"internode_encryption": "all"}
        }});
        spec["cassandra"]["serverEncryptionStores"] = serde_json::json!({
            "keystoreSecretRef": {"name": "server"}, "truststoreSecretRef": {"name": "server"}
        });
        spec["cassandra"]["clientEncryptionStores"] = serde_json::json!({
            "keystoreSecretRef": {"name": "client"}, "truststoreSecretRef": {"name": "client"}
        });
        let components = components_of(&cluster(spec.clone()));
        let encryption = components[0]
            .stargate
            .as_ref()
            .and_then(|s| s.spec.cassandra_encryption.clone())
            .expect("encryption");
        let keystore =
            |stores: Option<EncryptionStores>| stores.map(|s| s.keystore_secret_ref.name);
        assert_eq!(
            (
                keystore(encryption.server_encryption_stores),
                keystore(encryption.client_encryption_stores)
            ),
            (Some("server".to_string()), None),
            "client encryption is off"
        );
        spec["secretsProvider"] = serde_json::json!("external");
        let external = components_of(&cluster(spec));
        assert_eq!(
            external[0].stargate.as_ref().and_then(|s| s.spec.cassandra_encryption.clone()),
            None
        );
    }

    #[test]
    fn reaper_deployment_modes() {
        let reapers = |mode: &str| -> Vec<Option<(String, Option<DatacenterAvailability>)>> {
            let k8c = cluster(two_datacenters(
                serde_json::json!({"reaper": {"deploymentMode": mode}}),
            ));
            components_of(&k8c)
                .into_iter()
                .map(|c| c.reaper.map(|r| (r.name_any(), r.spec.datacenter_availability)))
                .collect()
        };
        assert_eq!(
            reapers("PER_DC"),
            vec![
                Some(("demo-dc1-reaper".into(), Some(DatacenterAvailability::Each))),
                Some(("demo-dc2-reaper".into(), Some(DatacenterAvailability::Each)))
            ]
        );
        assert_eq!(
            reapers("SINGLE"),
            vec![
                Some(("demo-dc1-reaper".into(), Some(DatacenterAvailability::All))),
                None
            ]
        );
        assert_eq!(reapers("CONTROL_PLANE"), vec![None, None]);
        // dc1 stopped: SINGLE moves to dc2, PER_DC leaves dc1 without one.
        let stopped_first = |mode: &str| {
            let mut spec = two_datacenters(serde_json::json!({"reaper": {"deploymentMode": mode}}));
            spec["cassandra"]["datacenters"][0]["stopped"] = serde_json::json!(true);
            components_of(&cluster(spec))
                .into_iter()
                .map(|c| c.reaper.map(|r| r.name_any()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            stopped_first("SINGLE"),
            vec![None, Some("demo-dc2-reaper".into())]
        );
        assert_eq!(
            stopped_first("PER_DC"),
            vec![None, Some("demo-dc2-reaper".into())]
        );
        let referenced = cluster(two_datacenters(serde_json::json!({"reaper": {
            "deploymentMode": "PER_DC", "reaperRef": {"name": "shared", "namespace": "reapers"}
        }})));
        assert!(
            components_of(&referenced).iter().all(|c| c.reaper.is_none()),
            "the referenced Reaper serves the cluster"
        );
    }

    #[test]
    fn a_stopped_datacenter_has_no_stargate_nor_its_service_monitor() {
        let mut spec = two_datacenters(serde_json::json!({"stargate": {"size": 1,
            "telemetry": {"prometheus": {"enabled": true}}}}));
        spec["cassandra"]["datacenters"][0]["stopped"] = serde_json::json!(true);
        spec["cassandra"]["datacenters"][1]["stargate"] = serde_json::json!({"size": 2});
        let components = components_of(&cluster(spec));
        let stargates: Vec<Option<String>> =
            components.iter().map(|c| c.stargate.as_ref().map(|s| s.name_any())).collect();
        assert_eq!(stargates, vec![None, Some("demo-dc2-stargate".into())]);
        assert!(
            (components[0].service_monitors.iter()).all(|m| !m.name_any().contains("stargate")),
            "no ServiceMonitor for a Stargate that is not there"
        );
    }

    #[test]
    fn reapers_read_the_logins_federator_provides() {
        let logins = |reaper: serde_json::Value| {
            let k8c = cluster(two_datacenters(reaper));
            components_of(&k8c)
                .into_iter()
                .filter_map(|c| c.reaper)
                .map(|r| {
                    let template = r.spec.template;
                    let name = |s: Option<SecretRef>| s.map(|s| s.name);
                    (
                        name(template.cassandra_user_secret_ref),
                        name(template.ui_user_secret_ref),
                        template.secrets_provider,
                    )
                })
                .collect::<Vec<_>>()
        };
        let generated = (
            Some("demo-reaper".to_string()),
            Some("demo-reaper-ui".to_string()),
            None,
        );
        assert_eq!(
            logins(serde_json::json!({"reaper": {}})),
            vec![generated.clone(), generated]
        );
        assert_eq!(
            logins(serde_json::json!({"reaper": {"uiUserSecretRef": {"name": ""}}}))[0],
            (Some("demo-reaper".to_string()), Some(String::new()), None),
            "an empty UI ref stays: the UI needs no login"
        );
        assert_eq!(
            logins(serde_json::json!({"auth": false, "reaper": {}}))[0],
            (None, None, None)
        );
        assert_eq!(
            logins(serde_json::json!({"secretsProvider": "external", "reaper": {}}))[0],
            (None, None, Some(SecretsProvider::External)),
            "the Reaper's pods get their logins injected"
        );
    }

    #[test]
    fn telemetry_at_cluster_level_with_a_datacenter_opting_out() {
        let k8c = cluster(two_datacenters(serde_json::json!({
            "telemetry": {"prometheus": {"enabled": true, "commonLabels": {"team": "db"}}, "mcac": {"enabled": false}}
        })));
        let components = components_of(&k8c);
        let names: Vec<String> =
            components[0].service_monitors.iter().map(ResourceExt::name_any).collect();
        assert_eq!(
            names,
            vec![
                "demo-dc1-cass-servicemonitor",
                "demo-dc1-stargate-servicemonitor"
            ]
        );
        let cassandra = &components[0].service_monitors[0];
        let selector = cassandra.spec.selector.match_labels.clone().expect("selector");
        assert_eq!(selector["cassandra.datastax.com/cluster"], "demo");
        assert_eq!(selector["cassandra.datastax.com/datacenter"], "dc1");
        assert_eq!(cassandra.spec.endpoints[0].port.as_deref(), Some("metrics"));
        assert_eq!(
            cassandra.metadata.labels.as_ref().expect("labels")["team"],
            "db"
        );
        let stargate = &components[0].service_monitors[1];
        assert_eq!(
            stargate.spec.selector.match_labels.clone().expect("selector")["k8ssandra.io/stargate"],
            "demo-dc1-stargate"
        );
        assert!(
            components[1].service_monitors.is_empty(),
            "dc2 turned telemetry off"
        );
    }

    #[test]
    fn service_monitors_carry_the_relabelling_the_dashboards_read() {
        let monitors = |extra: serde_json::Value| {
            components_of(&cluster(two_datacenters(extra)))
                .into_iter()
                .next()
                .map(|c| c.service_monitors)
                .unwrap_or_default()
        };
        // MCAC (the default): its series renamed, each with its cluster and datacenter.
        let mcac = monitors(serde_json::json!({"telemetry": {"prometheus": {"enabled": true}}}));
        let cassandra = &mcac[0];
        let endpoint = &cassandra.spec.endpoints[0];
        assert_eq!(endpoint.port.as_deref(), Some("prometheus"));
        assert_eq!(endpoint.metric_relabelings, relabel::mcac_relabelings());
        assert!(
            (endpoint.metric_relabelings.iter()).any(|r| r.replacement.as_deref()
                == Some("mcac_client_request_${1}")
                && r.target_label.as_deref() == Some("__name__")),
            "client requests become mcac_client_request_*"
        );
        assert_eq!(
            cassandra.spec.target_labels,
            vec![
                "cassandra.datastax.com/cluster",
                "cassandra.datastax.com/datacenter"
            ]
        );
        let rendered = serde_json::to_value(cassandra).expect("serializable");
        assert_eq!(
            rendered["spec"]["endpoints"][0]["metricRelabelings"][0],
            serde_json::json!({"sourceLabels": ["__name__"], "targetLabel": "kind",
                "regex": "collectd_mcac_(meter|histogram).*", "replacement": "${1}"})
        );
        // Stargate's client request metrics name the datacenter they serve.
        let stargate = &mcac[1].spec.endpoints[0];
        let dc_rule = (stargate.metric_relabelings.iter())
            .find(|r| r.target_label.as_deref() == Some("dc"))
            .expect("a dc label");
        assert_eq!(dc_rule.replacement.as_deref(), Some("dc1"));
        // The metrics endpoint names its series itself: scraped as they are.
        let modern = monitors(serde_json::json!({"telemetry": {
            "prometheus": {"enabled": true}, "mcac": {"enabled": false}}}));
        assert_eq!(modern[0].spec.endpoints[0].port.as_deref(), Some("metrics"));
        assert!(modern[0].spec.endpoints[0].metric_relabelings.is_empty());
    }

    #[test]
    fn reaper_gets_a_service_monitor_when_its_own_telemetry_asks() {
        let reaper_monitor = |extra: serde_json::Value| {
            components_of(&cluster(two_datacenters(extra)))
                .into_iter()
                .next()
                .into_iter()
                .flat_map(|c| c.service_monitors)
                .find(|m| m.name_any().contains("reaper"))
        };
        let monitor = reaper_monitor(serde_json::json!({"reaper": {
            "telemetry": {"prometheus": {"enabled": true, "commonLabels": {"team": "db"}}}}}))
        .expect("a Reaper ServiceMonitor");
        assert_eq!(monitor.name_any(), "demo-dc1-reaper-servicemonitor");
        assert_eq!(
            monitor.spec.selector.match_labels.clone().expect("selector")["k8ssandra.io/reaper"],
            "demo-dc1-reaper"
        );
        let endpoint = &monitor.spec.endpoints[0];
        assert_eq!(
            (endpoint.port.as_deref(), endpoint.path.as_deref()),
            (Some("admin"), Some("/prometheusMetrics"))
        );
        assert_eq!(
            monitor.metadata.labels.as_ref().expect("labels")["team"],
            "db"
        );
        assert!(
            reaper_monitor(serde_json::json!({"reaper": {},
                "telemetry": {"prometheus": {"enabled": true}}}))
            .is_none(),
            "the cluster's telemetry is not Reaper's (as upstream)"
        );
    }

    #[test]
    fn status_mirrors_components_of_regions_that_answered_and_names_missing_crds() {
        let now = Time(k8s_openapi::jiff::Timestamp::from_second(1_000).expect("time"));
        let running = StargateStatus {
            progress: Some(StargateProgress::Running),
            ..Default::default()
        };
        let old = StargateStatus {
            progress: Some(StargateProgress::Deploying),
            ..Default::default()
        };
        let entry = |context: &str| {
            Box::new(DatacenterStatus {
                context_name: Some(context.into()),
                stargate: Some(old.clone()),
                ..Default::default()
            })
        };
        let mut status = K8ssandraClusterStatus {
            datacenters: Some(BTreeMap::from([
                ("dc1".to_string(), entry("east")),
                ("dc2".to_string(), entry("west")),
                ("dc3".to_string(), entry("north")),
            ])),
            ..Default::default()
        };
        let report = ComponentsReport {
            answered: BTreeSet::from(["east".to_string(), "west".to_string()]),
            stargates: BTreeMap::from([("dc1".to_string(), running.clone())]),
            telemetry_requested: true,
            service_monitor_crd_missing: BTreeMap::from([(
                "west".to_string(),
                vec!["dc2".to_string()],
            )]),
            ..Default::default()
        };
        report.fill_status(&mut status, Some(3), now.clone());
        let dcs = status.datacenters.as_ref().expect("entries");
        assert_eq!(dcs["dc1"].stargate, Some(running));
        assert_eq!(dcs["dc2"].stargate, None, "its template was removed");
        assert_eq!(
            dcs["dc3"].stargate,
            Some(old),
            "region did not answer: kept"
        );
        let conditions = status.conditions.clone().expect("conditions");
        let telemetry =
            conditions.iter().find(|c| c.type_ == CONDITION_TELEMETRY_READY).expect("condition");
        assert_eq!(telemetry.status, CONDITION_FALSE);
        assert_eq!(telemetry.reason, REASON_SERVICE_MONITOR_CRD_MISSING);
        assert!(
            telemetry.message.contains("\"west\" (dc2)"),
            "{}",
            telemetry.message
        );
        let off = ComponentsReport::default();
        off.fill_status(&mut status, Some(3), now);
        assert!(status.conditions.iter().flatten().all(|c| c.type_ != CONDITION_TELEMETRY_READY));
    }
}
