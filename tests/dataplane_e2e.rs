//! Data-plane mode and the per-datacenter components, end to end against kube-sim: a control
//! plane in the hub and a data-plane instance in each of two regions put Stargate, Reaper and
//! ServiceMonitors next to each datacenter, readiness reaches the K8ssandraCluster, removing a
//! template removes its objects, and deleting the cluster removes them all. A data-plane instance
//! alone never touches K8ssandraClusters and needs no ClientConfig.

mod support;

use std::time::Duration;

use federator::api::cassdc::CassandraDatacenter;
use federator::api::client_config::ClientConfig;
use federator::api::k8ssandra_cluster::{K8ssandraCluster, K8ssandraClusterStatus};
use federator::api::reaper::Reaper;
use federator::api::stargate::{Stargate, StargateProgress};
use federator::dataplane::stargate::CONFIG_HASH_ANNOTATION;
use federator::federation::components::{
    CONDITION_TELEMETRY_READY, REASON_SERVICE_MONITOR_CRD_MISSING, plan_components,
};
use federator::federation::plan::plan;
use federator::settings::Mode;
use federator::workload::service_monitor::ServiceMonitor;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Patch, PatchParams, ValidationDirective};
use kube::{Api, Client, ResourceExt};
use support::*;

const CLUSTER: &str = "demo";

/// kube-sim with the cass-operator stand-in, datacenters Ready after 1 s and workloads after 2 s.
fn sim(clusters: usize) -> SimSetup {
    start_sim(clusters).cass_operator().workloads_ready_after(Duration::from_secs(2))
}

/// The operator in this process as `federator run --mode <mode>` starts it, with 3 s requests.
fn start_operator(mode: Mode, client: &Client) -> InProcessOperator {
    InProcessOperator::start(client, |settings| {
        settings.mode = mode;
        settings.regions.request_timeout = Duration::from_secs(3);
    })
}

/// dc1 and dc2 in the regions named (none: the hub), with Stargate, Reaper and Prometheus
/// telemetry as asked.
fn cluster_with(
    region1: &str,
    region2: &str,
    stargate: bool,
    reaper: bool,
    telemetry: bool,
) -> serde_json::Value {
    let mut cluster = k8ssandra_cluster(CLUSTER, &[("dc1", region1, 1), ("dc2", region2, 1)]);
    let spec = &mut cluster["spec"];
    if stargate {
        spec["stargate"] = serde_json::json!({"size": 1, "heapSize": "256Mi"});
    }
    if reaper {
        spec["reaper"] = serde_json::json!({"deploymentMode": "PER_DC"});
    }
    if telemetry {
        spec["cassandra"]["telemetry"] = serde_json::json!({"prometheus": {"enabled": true}});
    }
    cluster
}

/// A user's edit taking a template out (`kubectl edit` / merge patch).
async fn remove_from_spec(clusters: &Api<K8ssandraCluster>, patch: serde_json::Value) {
    bounded(
        "merge patch",
        clusters.patch(CLUSTER, &PatchParams::default(), &Patch::Merge(&patch)),
    )
    .await
    .unwrap_or_else(|e| panic!("removing a template: {e}"));
}

async fn cluster_status(clusters: &Api<K8ssandraCluster>) -> Option<K8ssandraClusterStatus> {
    bounded("get K8ssandraCluster", clusters.get_opt(CLUSTER))
        .await
        .expect("get K8ssandraCluster")?
        .status
}

/// What one region holds for datacenter `dc`.
#[derive(Debug)]
struct RegionObjects {
    stargate: bool,
    stargate_deployment: bool,
    stargate_service: bool,
    reaper: bool,
    reaper_deployment: bool,
    reaper_service: bool,
    service_monitors: usize,
}

async fn region_objects(client: &Client, dc: &str) -> RegionObjects {
    let monitors = Api::<ServiceMonitor>::namespaced(client.clone(), NS);
    let service_monitors = match bounded("list ServiceMonitors", monitors.list(&Default::default()))
        .await
    {
        Ok(list) => {
            list.items.iter().filter(|m| m.name_any().starts_with(&format!("demo-{dc}-"))).count()
        }
        // The region does not serve ServiceMonitors.
        Err(_) => 0,
    };
    RegionObjects {
        stargate: get::<Stargate>(client, &format!("demo-{dc}-stargate")).await.is_some(),
        stargate_deployment: get::<Deployment>(
            client,
            &format!("demo-{dc}-default-stargate-deployment"),
        )
        .await
        .is_some(),
        stargate_service: get::<Service>(client, &format!("demo-{dc}-stargate-service"))
            .await
            .is_some(),
        reaper: get::<Reaper>(client, &format!("demo-{dc}-reaper")).await.is_some(),
        reaper_deployment: get::<Deployment>(client, &format!("demo-{dc}-reaper")).await.is_some(),
        reaper_service: get::<Service>(client, &format!("demo-{dc}-reaper-service"))
            .await
            .is_some(),
        service_monitors,
    }
}

// On the operator's own runtime: its workers have the stack the K8ssandraCluster watcher needs.
#[test]
fn components_reach_both_regions_report_readiness_and_are_cleaned_up() {
    run(two_regions_with_components());
}

async fn two_regions_with_components() {
    let sim = sim(3).register([1, 2]).await;
    let hub = sim.client(0).await.expect("hub client");
    let regions = [
        sim.client(1).await.expect("region 1 client"),
        sim.client(2).await.expect("region 2 client"),
    ];
    let (context1, context2) = (sim.context_name(1), sim.context_name(2));
    // prometheus-operator only in region 1 for now.
    install_service_monitor_crd(&regions[0]).await;

    let mut operators = Vec::new();
    operators.push(start_operator(Mode::ControlPlane, &hub));
    for region in &regions {
        operators.push(start_operator(Mode::DataPlane, region));
    }

    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    let everything = cluster_with(&context1, &context2, true, true, true);
    apply(&clusters, CLUSTER, everything.clone()).await;

    // What the control plane sends validates strictly against prometheus-operator's CRD.
    let k8c: K8ssandraCluster = serde_json::from_value(everything.clone()).expect("typed");
    let components = plan_components(&k8c, &plan(&k8c).expect("plannable"));
    let monitors = Api::<ServiceMonitor>::namespaced(regions[0].clone(), NS);
    let mut strict = PatchParams::apply(TEST_MANAGER).force();
    strict.field_validation = Some(ValidationDirective::Strict);
    strict.dry_run = true;
    let mut checked = 0;
    for monitor in components.iter().flat_map(|c| c.service_monitors.iter()) {
        let mut body = serde_json::to_value(monitor).expect("json");
        body["apiVersion"] = "monitoring.coreos.com/v1".into();
        body["kind"] = "ServiceMonitor".into();
        bounded(
            "strict apply",
            monitors.patch(&monitor.name_any(), &strict, &Patch::Apply(&body)),
        )
        .await
        .unwrap_or_else(|e| panic!("ServiceMonitor {} is refused: {e}", monitor.name_any()));
        checked += 1;
    }
    assert_eq!(
        checked, 4,
        "Cassandra and Stargate ServiceMonitors of both datacenters"
    );

    // The data planes deploy Stargate and Reaper; the control plane mirrors their readiness.
    let status = wait_for(
        "Stargate and Reaper Ready in both datacenters' status",
        Duration::from_secs(90),
        || async {
            let status = cluster_status(&clusters).await?;
            let dcs = status.datacenters.as_ref()?;
            let all = ["dc1", "dc2"].iter().all(|dc| {
                dcs.get(*dc).is_some_and(|entry| {
                    entry.stargate.as_ref().is_some_and(|s| s.is_ready())
                        && entry.reaper.as_ref().is_some_and(|r| r.is_ready())
                })
            });
            all.then_some(status)
        },
    )
    .await;
    let dc1 = &status.datacenters.as_ref().expect("datacenters")["dc1"];
    let stargate = dc1.stargate.as_ref().expect("stargate status");
    assert_eq!(stargate.progress, Some(StargateProgress::Running));
    assert_eq!(stargate.ready_replicas_ratio.as_deref(), Some("1/1"));
    assert_eq!(
        stargate.service_ref.as_deref(),
        Some("demo-dc1-stargate-service")
    );
    for (region, dc) in regions.iter().zip(["dc1", "dc2"]) {
        let objects = region_objects(region, dc).await;
        assert!(
            objects.stargate && objects.stargate_deployment && objects.stargate_service,
            "{dc}: Stargate objects"
        );
        assert!(
            objects.reaper && objects.reaper_deployment && objects.reaper_service,
            "{dc}: Reaper objects"
        );
    }
    // The Stargate Deployment joins through the datacenter's seed Service.
    let deployment: Deployment =
        get(&regions[1], "demo-dc2-default-stargate-deployment").await.expect("deployment");
    let seed = deployment
        .spec
        .and_then(|s| s.template.spec)
        .map(|p| p.containers[0].env.clone().unwrap_or_default())
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.name == "SEED")
        .and_then(|e| e.value);
    assert_eq!(
        seed.as_deref(),
        Some(format!("demo-seed-service.{NS}.svc").as_str())
    );

    // ServiceMonitors where prometheus-operator is; the condition names the other region.
    wait_for(
        "ServiceMonitors in region 1",
        Duration::from_secs(20),
        || async { (region_objects(&regions[0], "dc1").await.service_monitors == 2).then_some(()) },
    )
    .await;
    let (state, reason, message) = wait_for(
        "TelemetryReady names region 2",
        Duration::from_secs(20),
        || async {
            condition(&cluster_status(&clusters).await?, CONDITION_TELEMETRY_READY)
                .filter(|c| c.0 == "False")
        },
    )
    .await;
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("False", REASON_SERVICE_MONITOR_CRD_MISSING)
    );
    assert!(
        message.contains(&context2) && message.contains("dc2"),
        "{message}"
    );
    assert!(!message.contains(&format!("{context1:?}")), "{message}");
    install_service_monitor_crd(&regions[1]).await;
    wait_for(
        "ServiceMonitors in region 2 and TelemetryReady",
        Duration::from_secs(45),
        || async {
            let in_region = region_objects(&regions[1], "dc2").await.service_monitors == 2;
            let condition =
                condition(&cluster_status(&clusters).await?, CONDITION_TELEMETRY_READY)?;
            (in_region && condition.0 == "True").then_some(())
        },
    )
    .await;

    // Steady state: nothing is written, neither in the regions nor in the hub.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let versions = || async {
        let k8c = bounded("get", clusters.get(CLUSTER)).await.expect("K8ssandraCluster");
        let stargate: Stargate = get(&regions[0], "demo-dc1-stargate").await.expect("stargate");
        let reaper: Reaper = get(&regions[1], "demo-dc2-reaper").await.expect("reaper");
        let deployment: Deployment =
            get(&regions[0], "demo-dc1-default-stargate-deployment").await.expect("deployment");
        let monitor: ServiceMonitor =
            get(&regions[1], "demo-dc2-cass-servicemonitor").await.expect("monitor");
        [
            k8c.resource_version(),
            stargate.resource_version(),
            reaper.resource_version(),
            deployment.resource_version(),
            monitor.resource_version(),
        ]
    };
    let before = versions().await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        before,
        versions().await,
        "nothing is written at steady state"
    );

    // Removing each template removes its objects in both regions, and its status.
    remove_from_spec(&clusters, serde_json::json!({"spec": {"stargate": null}})).await;
    wait_for(
        "Stargate objects removed",
        Duration::from_secs(30),
        || async {
            for (region, dc) in regions.iter().zip(["dc1", "dc2"]) {
                let objects = region_objects(region, dc).await;
                if objects.stargate
                    || objects.stargate_deployment
                    || objects.stargate_service
                    || objects.service_monitors != 1
                {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    wait_for(
        "Stargate gone from the status",
        Duration::from_secs(20),
        || async {
            let status = cluster_status(&clusters).await?;
            status
                .datacenters?
                .values()
                .all(|dc| dc.stargate.is_none() && dc.reaper.is_some())
                .then_some(())
        },
    )
    .await;
    remove_from_spec(&clusters, serde_json::json!({"spec": {"reaper": null}})).await;
    wait_for(
        "Reaper objects removed",
        Duration::from_secs(30),
        || async {
            for (region, dc) in regions.iter().zip(["dc1", "dc2"]) {
                let objects = region_objects(region, dc).await;
                if objects.reaper || objects.reaper_deployment || objects.reaper_service {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    remove_from_spec(
        &clusters,
        serde_json::json!({"spec": {"cassandra": {"telemetry": null}}}),
    )
    .await;
    wait_for(
        "ServiceMonitors removed and TelemetryReady gone",
        Duration::from_secs(30),
        || async {
            for (region, dc) in regions.iter().zip(["dc1", "dc2"]) {
                if region_objects(region, dc).await.service_monitors != 0 {
                    return None;
                }
            }
            condition(&cluster_status(&clusters).await?, CONDITION_TELEMETRY_READY)
                .is_none()
                .then_some(())
        },
    )
    .await;

    // Everything back, then the cluster deleted: every component goes with it.
    apply(&clusters, CLUSTER, everything.clone()).await;
    wait_for(
        "components back in both regions",
        Duration::from_secs(45),
        || async {
            for (region, dc) in regions.iter().zip(["dc1", "dc2"]) {
                let objects = region_objects(region, dc).await;
                if !(objects.stargate && objects.reaper && objects.service_monitors == 2) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;

    // A datacenter taken out of the spec takes its components with it; the other keeps its own.
    let mut only_dc1 = everything.clone();
    if let Some(datacenters) = only_dc1["spec"]["cassandra"]["datacenters"].as_array_mut() {
        datacenters.truncate(1);
    }
    apply(&clusters, CLUSTER, only_dc1).await;
    wait_for(
        "dc2's components removed from region 2",
        Duration::from_secs(45),
        || async {
            let objects = region_objects(&regions[1], "dc2").await;
            let any = objects.stargate
                || objects.stargate_deployment
                || objects.reaper
                || objects.reaper_deployment
                || objects.service_monitors > 0;
            (!any).then_some(())
        },
    )
    .await;
    let kept = region_objects(&regions[0], "dc1").await;
    assert!(
        kept.stargate && kept.reaper && kept.service_monitors == 2,
        "dc1 keeps its components: {kept:?}"
    );

    delete(&clusters, CLUSTER).await;
    wait_deleted(&clusters, CLUSTER, Duration::from_secs(45)).await;
    for (region, dc) in regions.iter().zip(["dc1", "dc2"]) {
        wait_for(
            "components and their workloads gone after the deletion",
            Duration::from_secs(20),
            || async {
                let objects = region_objects(region, dc).await;
                let any = objects.stargate
                    || objects.stargate_deployment
                    || objects.stargate_service
                    || objects.reaper
                    || objects.reaper_deployment
                    || objects.reaper_service
                    || objects.service_monitors > 0;
                (!any).then_some(())
            },
        )
        .await;
    }
    stop_all(operators).await;
    sim.shutdown().await;
}

/// Waits until the Stargate `name` is Running.
async fn wait_running(stargates: &Api<Stargate>, name: &str, what: &str) {
    wait_for(what, Duration::from_secs(45), || async {
        let stargate = bounded("get", stargates.get_opt(name)).await.expect("get")?;
        stargate.status.filter(|s| s.is_ready()).map(|_| ())
    })
    .await;
}

/// The content hash of the configuration a Stargate Deployment's pods read.
fn config_hash(deployment: Deployment) -> Option<String> {
    let annotations = deployment.spec?.template.metadata?.annotations?;
    annotations.get(CONFIG_HASH_ANNOTATION).cloned()
}

#[test]
fn a_data_plane_instance_alone_leaves_k8ssandra_clusters_alone_and_needs_no_client_config() {
    run(data_plane_alone());
}

/// A one-node datacenter `standalone` of cluster `solo`, made by hand (no K8ssandraCluster).
async fn apply_standalone_datacenter(client: &Client) {
    apply(
        &Api::<CassandraDatacenter>::namespaced(client.clone(), NS),
        "standalone",
        serde_json::json!({
            "apiVersion": "cassandra.datastax.com/v1beta1", "kind": "CassandraDatacenter",
            "metadata": {"name": "standalone", "namespace": NS},
            "spec": {"clusterName": "solo", "serverType": "cassandra", "serverVersion": "4.1.5",
                     "size": 1, "storageConfig": {}}
        }),
    )
    .await;
}

/// A Reaper of the hand-made datacenter, with these Vector settings.
async fn apply_solo_reaper(client: &Client, vector: serde_json::Value) {
    apply(
        &Api::<Reaper>::namespaced(client.clone(), NS),
        "solo-reaper",
        serde_json::json!({
            "apiVersion": "reaper.k8ssandra.io/v1alpha1", "kind": "Reaper",
            "metadata": {"name": "solo-reaper", "namespace": NS},
            "spec": {"datacenterRef": {"name": "standalone"}, "telemetry": {"vector": vector}}
        }),
    )
    .await;
}

async fn data_plane_alone() {
    let sim = sim(1).await;
    let client = sim.client(0).await.expect("client");
    install_service_monitor_crd(&client).await;
    let clusters = Api::<K8ssandraCluster>::namespaced(client.clone(), NS);
    apply(&clusters, CLUSTER, cluster_with("", "", true, true, false)).await;
    // A datacenter and a Stargate made by hand: the data plane serves them.
    apply_standalone_datacenter(&client).await;
    let solo_stargate = |prometheus: bool| {
        serde_json::json!({
            "apiVersion": "stargate.k8ssandra.io/v1alpha1", "kind": "Stargate",
            "metadata": {"name": "solo-stargate", "namespace": NS},
            "spec": {"datacenterRef": {"name": "standalone"}, "size": 1,
                     "cassandraConfigMapRef": {"name": "solo-stargate-config"},
                     "telemetry": {"vector": {"enabled": true},
                                   "prometheus": {"enabled": prometheus}}}
        })
    };
    let stargate_config = |num_tokens: u32| {
        serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "solo-stargate-config", "namespace": NS},
            "data": {"cassandra.yaml": format!("num_tokens: {num_tokens}")}
        })
    };
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), NS);
    apply(&config_maps, "solo-stargate-config", stargate_config(16)).await;
    let stargates = Api::<Stargate>::namespaced(client.clone(), NS);
    apply(&stargates, "solo-stargate", solo_stargate(true)).await;
    apply_solo_reaper(
        &client,
        serde_json::json!({"enabled": true, "image": "example.com/vector:1"}),
    )
    .await;

    let operators = vec![start_operator(Mode::DataPlane, &client)];
    assert!(
        operators[0].operator().registry.is_none(),
        "no cluster registry in data-plane mode"
    );

    wait_running(
        &stargates,
        "solo-stargate",
        "the hand-made Stargate Running",
    )
    .await;
    // Its own telemetry asks for Prometheus: the data plane makes its ServiceMonitor, as
    // upstream's Stargate controller does, owned by it and relabelled for its datacenter.
    let monitors = Api::<ServiceMonitor>::namespaced(client.clone(), NS);
    let monitor = wait_for(
        "the Stargate's ServiceMonitor",
        Duration::from_secs(20),
        || async { monitors.get_opt("solo-stargate-servicemonitor").await.ok().flatten() },
    )
    .await;
    assert_eq!(
        monitor.owner_references().iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
        ["solo-stargate"]
    );
    let endpoint = &monitor.spec.endpoints[0];
    assert_eq!(
        (endpoint.port.as_deref(), endpoint.path.as_deref()),
        (Some("health"), Some("/metrics"))
    );
    assert!(
        endpoint.metric_relabelings.iter().any(|r| r.target_label.as_deref() == Some("dc")
            && r.replacement.as_deref() == Some("standalone")),
        "{:?}",
        endpoint.metric_relabelings
    );
    let deployment = get::<Deployment>(&client, "solo-standalone-default-stargate-deployment")
        .await
        .expect("Stargate's Deployment");
    // Stargate reads its configuration at start: an edit of it rolls the pods, at once (the
    // Stargate is Running, its next steady re-look minutes away).
    let first = config_hash(deployment.clone()).expect("the configuration's hash on the pods");
    let edited = std::time::Instant::now();
    apply(&config_maps, "solo-stargate-config", stargate_config(8)).await;
    wait_for(
        "Stargate's pods get the edited configuration's hash",
        Duration::from_secs(20),
        || async {
            let deployment =
                get::<Deployment>(&client, "solo-standalone-default-stargate-deployment").await?;
            config_hash(deployment).filter(|hash| *hash != first)
        },
    )
    .await;
    eprintln!(
        "measured: Stargate's pods got the edited cassandraConfigMapRef {:?} after the edit",
        edited.elapsed()
    );
    // Once the Stargate is Running again (its next steady re-look minutes away), the
    // datacenter's spec changes: the Stargate follows at once, e.g. its node selector.
    wait_running(
        &stargates,
        "solo-stargate",
        "the Stargate Running with its new configuration",
    )
    .await;
    let edited = std::time::Instant::now();
    bounded(
        "patch the datacenter",
        Api::<CassandraDatacenter>::namespaced(client.clone(), NS).patch(
            "standalone",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"nodeSelector": {"disk": "ssd"}}})),
        ),
    )
    .await
    .expect("patch the datacenter");
    wait_for(
        "Stargate's pods get the datacenter's node selector",
        Duration::from_secs(20),
        || async {
            let deployment =
                get::<Deployment>(&client, "solo-standalone-default-stargate-deployment").await?;
            let selector = deployment.spec?.template.spec?.node_selector?;
            (selector.get("disk").map(String::as_str) == Some("ssd")).then_some(())
        },
    )
    .await;
    eprintln!(
        "measured: Stargate followed its datacenter's new node selector {:?} after the change",
        edited.elapsed()
    );
    // Each component's Vector agent, and its configuration named after the datacenter.
    let containers = |deployment: &Deployment| -> Vec<(String, Option<String>)> {
        deployment
            .spec
            .iter()
            .flat_map(|s| s.template.spec.iter())
            .flat_map(|pod| pod.containers.iter())
            .map(|c| (c.name.clone(), c.image.clone()))
            .collect()
    };
    assert!(
        containers(&deployment).contains(&(
            "stargate-vector-agent".into(),
            Some(federator::settings::DEFAULT_SYSTEM_LOGGER_IMAGE.into())
        )),
        "{:?}",
        containers(&deployment)
    );
    let reaper = wait_for("Reaper's Deployment", Duration::from_secs(30), || {
        get::<Deployment>(&client, "solo-reaper")
    })
    .await;
    assert!(
        containers(&reaper).contains(&(
            "reaper-vector-agent".into(),
            Some("example.com/vector:1".into())
        )),
        "{:?}",
        containers(&reaper)
    );
    for (config_map, source) in [
        ("solo-standalone-stargate-vector", "stargate_metrics"),
        ("solo-standalone-reaper-vector", "reaper_metrics"),
    ] {
        let toml = get::<ConfigMap>(&client, config_map)
            .await
            .and_then(|c| c.data?.remove("vector.toml"))
            .unwrap_or_else(|| panic!("{config_map} with a vector.toml"));
        assert!(toml.contains(&format!("[sources.{source}]")), "{toml}");
    }
    // Vector turned off: the agent leaves the pods and its configuration goes.
    apply_solo_reaper(&client, serde_json::json!({"enabled": false})).await;
    wait_for(
        "Reaper's Vector ConfigMap deleted",
        Duration::from_secs(30),
        || async {
            get::<ConfigMap>(&client, "solo-standalone-reaper-vector").await.is_none().then_some(())
        },
    )
    .await;
    let reaper = get::<Deployment>(&client, "solo-reaper").await.expect("Reaper's Deployment");
    assert!(
        containers(&reaper).iter().all(|(name, _)| name != "reaper-vector-agent"),
        "{:?}",
        containers(&reaper)
    );
    // Prometheus turned off: the monitor goes.
    apply(&stargates, "solo-stargate", solo_stargate(false)).await;
    wait_for(
        "the Stargate's ServiceMonitor deleted",
        Duration::from_secs(20),
        || async {
            monitors.get_opt("solo-stargate-servicemonitor").await.ok()?.is_none().then_some(())
        },
    )
    .await;
    // The progress is told as Events on the Stargate.
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), NS);
    wait_for(
        "a Running event on the Stargate",
        Duration::from_secs(10),
        || async {
            let list = bounded("list events", events.list(&Default::default())).await.ok()?;
            list.items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("Running")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                            == Some("solo-stargate")
                })
                .then_some(())
        },
    )
    .await;
    // Give a K8ssandraCluster controller, if one ran, time to act.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let k8c = bounded("get", clusters.get(CLUSTER)).await.expect("K8ssandraCluster");
    assert!(
        k8c.finalizers().is_empty(),
        "no finalizer: {:?}",
        k8c.finalizers()
    );
    assert!(k8c.status.is_none(), "no status: {:?}", k8c.status);
    assert!(
        get::<CassandraDatacenter>(&client, "dc1").await.is_none(),
        "no CassandraDatacenter made"
    );
    let client_configs = Api::<ClientConfig>::all(client.clone());
    assert!(
        bounded("list", client_configs.list(&Default::default()))
            .await
            .expect("list")
            .items
            .is_empty()
    );
    stop_all(operators).await;
    sim.shutdown().await;
}

#[test]
fn a_restarted_data_plane_finds_deployments_with_canonical_quantities_up_to_date() {
    run(restart_with_canonical_quantities());
}

/// The API server stores a Deployment's quantities in canonical form (`cpu: 1000m` reads back
/// as `1`): Stargate's default CPU limit and a Reaper's `1000m`/`1024Mi` must still compare
/// equal to what the data plane wants, or every reconcile re-applies them.
async fn restart_with_canonical_quantities() {
    let sim = sim(1).await;
    let client = sim.client(0).await.expect("client");
    apply_standalone_datacenter(&client).await;
    // Stargate with its default resources (a CPU limit of 1000m)
    apply(
        &Api::<Stargate>::namespaced(client.clone(), NS),
        "solo-stargate",
        serde_json::json!({
            "apiVersion": "stargate.k8ssandra.io/v1alpha1", "kind": "Stargate",
            "metadata": {"name": "solo-stargate", "namespace": NS},
            "spec": {"datacenterRef": {"name": "standalone"}, "size": 1}
        }),
    )
    .await;
    apply(
        &Api::<Reaper>::namespaced(client.clone(), NS),
        "solo-reaper",
        serde_json::json!({
            "apiVersion": "reaper.k8ssandra.io/v1alpha1", "kind": "Reaper",
            "metadata": {"name": "solo-reaper", "namespace": NS},
            "spec": {"datacenterRef": {"name": "standalone"},
                     "resources": {"limits": {"cpu": "1000m", "memory": "1024Mi"}}}
        }),
    )
    .await;
    let operators = vec![start_operator(Mode::DataPlane, &client)];
    let stargates = Api::<Stargate>::namespaced(client.clone(), NS);
    wait_running(&stargates, "solo-stargate", "the Stargate Running").await;
    let limits = |deployment: &Deployment| {
        let pod = deployment.spec.as_ref()?.template.spec.as_ref()?;
        let limits = pod.containers.first()?.resources.as_ref()?.limits.as_ref()?;
        Some(
            limits
                .iter()
                .map(|(name, quantity)| format!("{name}={}", quantity.0))
                .collect::<Vec<_>>(),
        )
    };
    let reaper = wait_for("Reaper's Deployment", Duration::from_secs(30), || {
        get::<Deployment>(&client, "solo-reaper")
    })
    .await;
    assert_eq!(
        limits(&reaper),
        Some(vec!["cpu=1".to_string(), "memory=1Gi".to_string()]),
        "the API server's canonical form"
    );
    let stargate = get::<Deployment>(&client, "solo-standalone-default-stargate-deployment")
        .await
        .expect("Stargate's Deployment");
    assert!(
        limits(&stargate).is_some_and(|l| l.contains(&"cpu=1".to_string())),
        "{:?}",
        limits(&stargate)
    );
    stop_all(operators).await;

    // A new instance reconciles every Stargate and Reaper: nothing to write.
    sim.reset_requests(0).expect("reset requests");
    let operators = vec![start_operator(Mode::DataPlane, &client)];
    let deployment_requests = |verbs: &[&str]| -> u64 {
        sim.requests(0)
            .expect("requests")
            .iter()
            .filter(|r| r.resource == "deployments.apps" && verbs.contains(&r.verb.as_str()))
            .map(|r| r.count)
            .sum()
    };
    wait_for(
        "the new instance reading the Deployments",
        Duration::from_secs(30),
        || async { (deployment_requests(&["list", "watch", "get"]) > 0).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        deployment_requests(&["create", "update", "patch"]),
        0,
        "Deployments written by a reconcile that had nothing to change: {:?}",
        sim.requests(0).expect("requests")
    );
    stop_all(operators).await;
    sim.shutdown().await;
}

#[test]
fn stargate_and_reaper_follow_their_datacenters_encryption() {
    run(encrypted_components());
}

async fn encrypted_components() {
    let sim = sim(2).register([1]).await;
    let hub = sim.client(0).await.expect("hub client");
    let region = sim.client(1).await.expect("region client");
    let context = sim.context_name(1);
    put_secret(
        &hub,
        "stores",
        &[
            ("keystore", b"keystore bytes"),
            ("truststore", b"truststore bytes"),
            ("keystore-password", b"ks-secret"),
            ("truststore-password", b"ts-secret"),
        ],
    )
    .await;
    let operators = vec![
        start_operator(Mode::ControlPlane, &hub),
        start_operator(Mode::DataPlane, &region),
    ];

    let mut manifest = cluster_with(&context, &context, true, true, false);
    let cassandra = &mut manifest["spec"]["cassandra"];
    cassandra["datacenters"] = serde_json::json!([
        {"metadata": {"name": "dc1"}, "k8sContext": context, "size": 1}
    ]);
    cassandra["config"] = serde_json::json!({"cassandraYaml": {
        "server_encryption_options": {"internode_encryption": "all"},
        "client_encryption_options": {"enabled": true}
    }});
    let stores = serde_json::json!({
        "keystoreSecretRef": {"name": "stores"}, "truststoreSecretRef": {"name": "stores"}
    });
    cassandra["serverEncryptionStores"] = stores.clone();
    cassandra["clientEncryptionStores"] = stores;
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    apply(&clusters, CLUSTER, manifest).await;

    // Stargate's node reads the datacenter's internode settings from the generated ConfigMap
    // and finds the stores where the datacenter's nodes have them.
    let config_maps = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(region.clone(), NS);
    let config = wait_for("Stargate's ConfigMap", Duration::from_secs(60), || async {
        bounded(
            "get ConfigMap",
            config_maps.get_opt("demo-dc1-cassandra-config"),
        )
        .await
        .ok()
        .flatten()
    })
    .await;
    let data = config.data.expect("data");
    let cassandra_yaml: serde_json::Value =
        serde_saphyr::from_str(&data["cassandra.yaml"]).expect("YAML");
    let internode = &cassandra_yaml["server_encryption_options"];
    assert_eq!(internode["internode_encryption"], "all");
    assert_eq!(internode["keystore"], "/mnt/server-keystore/keystore");
    assert_eq!(internode["keystore_password"], "ks-secret");
    let stargate = wait_for("Stargate's Deployment", Duration::from_secs(30), || {
        get::<Deployment>(&region, "demo-dc1-default-stargate-deployment")
    })
    .await;
    let first_hash = config_hash(stargate.clone()).expect("the configuration's hash on the pods");
    let pod = stargate.spec.and_then(|s| s.template.spec).expect("pod");
    let mounts: Vec<String> =
        (pod.containers[0].volume_mounts.iter().flatten()).map(|m| m.mount_path.clone()).collect();
    for path in ["/config", "/mnt/server-keystore", "/mnt/client-keystore"] {
        assert!(mounts.iter().any(|m| m == path), "{path} in {mounts:?}");
    }
    // A rotated keystore password reaches Stargate's configuration and rolls its pods (it
    // reads the configuration at start only).
    put_secret(
        &hub,
        "stores",
        &[
            ("keystore", b"keystore bytes"),
            ("truststore", b"truststore bytes"),
            ("keystore-password", b"ks-rotated"),
            ("truststore-password", b"ts-secret"),
        ],
    )
    .await;
    wait_for(
        "Stargate's pods roll with the rotated password",
        Duration::from_secs(60),
        || async {
            let config = bounded(
                "get ConfigMap",
                config_maps.get_opt("demo-dc1-cassandra-config"),
            )
            .await
            .ok()??;
            let rotated = config.data?["cassandra.yaml"].contains("ks-rotated");
            let deployment = get::<Deployment>(&region, "demo-dc1-default-stargate-deployment");
            let hash = config_hash(deployment.await?)?;
            (rotated && hash != first_hash).then_some(())
        },
    )
    .await;

    // Reaper talks TLS to Cassandra; its pod reads the passwords, its spec holds none.
    let reaper = wait_for("Reaper's Deployment", Duration::from_secs(30), || {
        get::<Deployment>(&region, "demo-dc1-reaper")
    })
    .await;
    let text = serde_json::to_string(&reaper.spec).expect("json");
    assert!(text.contains("REAPER_CASS_NATIVE_PROTOCOL_SSL_ENCRYPTION_ENABLED"));
    assert!(
        !text.contains("ks-secret") && !text.contains("ts-secret"),
        "{text}"
    );
    stop_all(operators).await;
    sim.shutdown().await;
}

#[test]
fn a_stopped_datacenter_settles_loses_its_stargate_and_lets_another_be_added() {
    run(stopped_datacenter());
}

async fn stopped_datacenter() {
    let sim = sim(3).register([1, 2]).await;
    let hub = sim.client(0).await.expect("hub client");
    let regions = [
        sim.client(1).await.expect("region 1 client"),
        sim.client(2).await.expect("region 2 client"),
    ];
    let (context1, context2) = (sim.context_name(1), sim.context_name(2));
    let mut operators = Vec::new();
    operators.push(start_operator(Mode::ControlPlane, &hub));
    for region in &regions {
        operators.push(start_operator(Mode::DataPlane, region));
    }
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    apply(
        &clusters,
        CLUSTER,
        cluster_with(&context1, &context2, true, false, false),
    )
    .await;
    wait_for("both Stargates Ready", Duration::from_secs(90), || async {
        let dcs = cluster_status(&clusters).await?.datacenters?;
        ["dc1", "dc2"]
            .iter()
            .all(|dc| {
                (dcs.get(*dc).and_then(|e| e.stargate.as_ref())).is_some_and(|s| s.is_ready())
            })
            .then_some(())
    })
    .await;

    // The user stops dc1.
    let datacenters = |extra: serde_json::Value| {
        let mut list = serde_json::json!([
            {"metadata": {"name": "dc1"}, "k8sContext": context1, "size": 1, "stopped": true},
            {"metadata": {"name": "dc2"}, "k8sContext": context2, "size": 1}
        ]);
        if let (Some(list), false) = (list.as_array_mut(), extra.is_null()) {
            list.push(extra);
        }
        serde_json::json!({"spec": {"cassandra": {"datacenters": list}}})
    };
    remove_from_spec(&clusters, datacenters(serde_json::Value::Null)).await;
    let (_, reason, message) = wait_for(
        "the cluster Ready with dc1 Stopped",
        Duration::from_secs(60),
        || async {
            let status = cluster_status(&clusters).await?;
            let dc1_stopped = (status.datacenters.as_ref()?.get("dc1")?.cassandra.as_ref())
                .is_some_and(|c| c.is_stopped());
            let ready = condition(&status, "Ready").filter(|c| c.0 == "True")?;
            dc1_stopped.then_some(ready)
        },
    )
    .await;
    assert_eq!(reason, "DatacentersStopped");
    assert!(message.contains("dc1"), "{message}");
    // Its Stargate goes (and the Deployment with it); dc2's stays.
    wait_for(
        "dc1's Stargate and its Deployment gone",
        Duration::from_secs(30),
        || async {
            let objects = region_objects(&regions[0], "dc1").await;
            (!objects.stargate && !objects.stargate_deployment).then_some(())
        },
    )
    .await;
    let dc2 = region_objects(&regions[1], "dc2").await;
    assert!(dc2.stargate && dc2.stargate_deployment, "{dc2:?}");

    // A datacenter added now is created: the stopped one does not hold it back.
    remove_from_spec(
        &clusters,
        datacenters(serde_json::json!({
            "metadata": {"name": "dc3"}, "k8sContext": context2, "size": 1
        })),
    )
    .await;
    wait_for("dc3 created and Ready", Duration::from_secs(60), || async {
        let dc3 = get::<CassandraDatacenter>(&regions[1], "dc3").await?;
        dc3.is_ready().then_some(())
    })
    .await;
    let (status, reason, _) = wait_for(
        "the cluster Ready again with dc3",
        Duration::from_secs(30),
        || async {
            let status = cluster_status(&clusters).await?;
            (status.ready_datacenters == Some(2) && status.total_datacenters == Some(3))
                .then_some(())?;
            condition(&status, "Ready")
        },
    )
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "DatacentersStopped")
    );
    stop_all(operators).await;
}

#[test]
fn a_local_storage_reaper_runs_as_a_statefulset_with_its_claim_until_it_keeps_its_state_in_cassandra()
 {
    run(local_storage_reaper());
}

/// `storageType: local`: the Reaper runs as a one-replica StatefulSet whose pod mounts its claim,
/// and the cluster is registered with it; switching to `cassandra` replaces the StatefulSet (and
/// its claim) with a Deployment, registered again.
async fn local_storage_reaper() {
    let sim = sim(1).await;
    let client = sim.client(0).await.expect("client");
    apply_standalone_datacenter(&client).await;
    let sized = |storage: &str, size: &str| {
        serde_json::json!({
            "apiVersion": "reaper.k8ssandra.io/v1alpha1", "kind": "Reaper",
            "metadata": {"name": "solo-reaper", "namespace": NS},
            "spec": {"datacenterRef": {"name": "standalone"}, "storageType": storage,
                     "storageConfig": {"accessModes": ["ReadWriteOnce"],
                                       "resources": {"requests": {"storage": size}}}}
        })
    };
    let reaper = |storage: &str| sized(storage, "256Mi");
    let reapers = Api::<Reaper>::namespaced(client.clone(), NS);
    apply(&reapers, "solo-reaper", reaper("local")).await;
    let operators = vec![start_operator(Mode::DataPlane, &client)];
    let registered = || async {
        let status = reapers.get("solo-reaper").await.ok()?.status?;
        let ready = (status.conditions.iter().flatten()).find(|c| c.type_ == "Ready")?;
        let seen = format!("{:?} {}: {}", status.progress, ready.reason, ready.message);
        Some((status.is_ready() && ready.reason == "Registered", seen))
    };
    let registered = || async {
        match registered().await {
            Some((true, _)) => Ok(()),
            Some((false, seen)) => Err(seen),
            None => Err("no status yet".to_string()),
        }
    };
    wait_for(
        "the local Reaper registers the cluster",
        Duration::from_secs(30),
        registered,
    )
    .await;
    let set = get::<StatefulSet>(&client, "solo-reaper").await.expect("Reaper's StatefulSet");
    assert_eq!(set.spec.as_ref().and_then(|s| s.replicas), Some(1));
    assert!(get::<Deployment>(&client, "solo-reaper").await.is_none());
    let pod = get::<Pod>(&client, "solo-reaper-0").await.expect("the StatefulSet's pod");
    let claim = (pod.spec.and_then(|s| s.volumes).unwrap_or_default().into_iter())
        .find(|v| v.name == "reaper-data")
        .and_then(|v| v.persistent_volume_claim)
        .map(|c| c.claim_name);
    assert_eq!(claim.as_deref(), Some("reaper-data-solo-reaper-0"));
    let claim = get::<PersistentVolumeClaim>(&client, "reaper-data-solo-reaper-0")
        .await
        .expect("Reaper's claim");
    let requested = claim.spec.and_then(|s| s.resources).and_then(|r| r.requests);
    assert_eq!(
        requested.and_then(|r| r.get("storage").cloned()).map(|q| q.0).as_deref(),
        Some("256Mi")
    );
    // A new instance finds the StatefulSet up to date: nothing to write.
    stop_all(operators).await;
    sim.reset_requests(0).expect("reset requests");
    let operators = vec![start_operator(Mode::DataPlane, &client)];
    let set_requests = |verbs: &[&str]| -> u64 {
        (sim.requests(0).expect("requests").iter())
            .filter(|r| r.resource == "statefulsets.apps" && verbs.contains(&r.verb.as_str()))
            .map(|r| r.count)
            .sum()
    };
    wait_for(
        "the new instance listing the StatefulSets",
        Duration::from_secs(30),
        || async { (set_requests(&["list"]) > 1).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        set_requests(&["create", "update", "patch"]),
        0,
        "StatefulSets written by a reconcile that had nothing to change"
    );

    // Kubernetes refuses to change a StatefulSet's claim: a Warning Event says what to do.
    apply(&reapers, "solo-reaper", sized("local", "512Mi")).await;
    let events = Api::<Event>::namespaced(client.clone(), NS);
    let note = wait_for(
        "a Warning Event about the claim",
        Duration::from_secs(30),
        || async {
            let listed = events.list(&Default::default()).await.ok()?;
            listed.items.into_iter().find_map(|e| {
                let about = e.regarding.as_ref().and_then(|r| r.name.as_deref());
                let note = e.note.unwrap_or_default();
                (about == Some("solo-reaper") && note.contains("spec.storageConfig cannot change"))
                    .then_some(note)
            })
        },
    )
    .await;
    assert!(note.contains("StatefulSet solo-reaper"), "{note}");
    let set = get::<StatefulSet>(&client, "solo-reaper").await.expect("Reaper's StatefulSet");
    let kept = (set.spec.and_then(|s| s.volume_claim_templates).unwrap_or_default().into_iter())
        .find_map(|c| c.spec?.resources?.requests?.get("storage").cloned());
    assert_eq!(kept.map(|q| q.0).as_deref(), Some("256Mi"));

    // Cassandra storage: a Deployment instead; the StatefulSet and its claim go.
    apply(&reapers, "solo-reaper", reaper("cassandra")).await;
    wait_for(
        "a Deployment replaces the StatefulSet and its claim",
        Duration::from_secs(30),
        || async {
            let deployment = get::<Deployment>(&client, "solo-reaper").await.is_some();
            let set = get::<StatefulSet>(&client, "solo-reaper").await.is_some();
            let claim =
                get::<PersistentVolumeClaim>(&client, "reaper-data-solo-reaper-0").await.is_some();
            (deployment && !set && !claim).then_some(())
        },
    )
    .await;
    wait_for(
        "the Deployment's Reaper registers the cluster",
        Duration::from_secs(30),
        registered,
    )
    .await;
    stop_all(operators).await;
    sim.shutdown().await;
}

#[test]
fn a_reaper_serving_tls_or_mutual_tls_gets_the_cluster_registered() {
    run(encrypted_reaper());
}

/// A hand-made Reaper with `encryption.serverCertName`: its REST API serves TLS and the cluster
/// is registered through the API server's https proxy. With `clientCertName` too, Reaper
/// requires a client certificate the proxy cannot present: Federator connects to the pod
/// itself. A client Secret that does not exist is named in the Ready condition until it does.
async fn encrypted_reaper() {
    let sim = sim(1).pod_listeners().await;
    let client = sim.client(0).await.expect("client");
    apply_standalone_datacenter(&client).await;
    let certificates = kube_sim::tls::ManagementApiCertificates::generate("solo-reaper-service")
        .expect("certificates");
    put_reaper_tls_secrets(&client, &certificates, false).await;
    let reaper = |encryption: serde_json::Value| {
        serde_json::json!({
            "apiVersion": "reaper.k8ssandra.io/v1alpha1", "kind": "Reaper",
            "metadata": {"name": "solo-reaper", "namespace": NS},
            "spec": {"datacenterRef": {"name": "standalone"}, "encryption": encryption}
        })
    };
    let reapers = Api::<Reaper>::namespaced(client.clone(), NS);
    apply(
        &reapers,
        "solo-reaper",
        reaper(serde_json::json!({"serverCertName": "reaper-server"})),
    )
    .await;
    let operators = vec![start_operator(Mode::DataPlane, &client)];
    let ready = |reason: &'static str| {
        let reapers = reapers.clone();
        move || {
            let reapers = reapers.clone();
            async move {
                let status = reapers.get("solo-reaper").await.ok().and_then(|r| r.status);
                let Some(status) = status else {
                    return Err("no status yet".to_string());
                };
                let found = (status.conditions.iter().flatten()).find(|c| c.type_ == "Ready");
                match found {
                    Some(c) if c.reason == reason => Ok((status.clone(), c.message.clone())),
                    Some(c) => Err(format!("{:?} {}: {}", status.progress, c.reason, c.message)),
                    None => Err("no Ready condition".to_string()),
                }
            }
        }
    };
    let (status, _) = wait_for(
        "the TLS Reaper registers the cluster",
        Duration::from_secs(30),
        ready("Registered"),
    )
    .await;
    assert!(status.is_ready());
    let not_acted_on = (status.conditions.iter().flatten())
        .find(|c| c.type_ == "FieldsNotActedOn")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(!not_acted_on.contains("encryption"), "{not_acted_on}");
    // Its repair schedules were read too (none yet: the status lists an empty list).
    assert_eq!(status.schedules, Some(Vec::new()));

    // Mutual TLS, the client Secret not made yet: the Ready condition names it.
    apply(
        &reapers,
        "solo-reaper",
        reaper(serde_json::json!({"serverCertName": "reaper-server",
                                  "clientCertName": "reaper-client"})),
    )
    .await;
    let (status, message) = wait_for(
        "the missing client Secret reported",
        Duration::from_secs(30),
        ready("ClientCertificateUnusable"),
    )
    .await;
    assert!(!status.is_ready());
    assert!(
        message.contains("reaper-client") && message.contains("does not exist"),
        "{message}"
    );
    sim.reset_requests(0).expect("reset requests");
    put_reaper_tls_secrets(&client, &certificates, true).await;
    let (status, message) = wait_for(
        "the mutual-TLS Reaper registers the cluster",
        Duration::from_secs(30),
        ready("Registered"),
    )
    .await;
    assert!(status.is_ready(), "{message}");
    assert_eq!(status.schedules, Some(Vec::new()));
    // What answered was Reaper at its pod's IP: the services proxy was not asked since the
    // Reaper asked for mutual TLS (it cannot present the client certificate).
    let proxied: u64 = (sim.requests(0).expect("requests").iter())
        .filter(|r| r.resource == "services/proxy")
        .map(|r| r.count)
        .sum();
    assert_eq!(proxied, 0);
    stop_all(operators).await;
    sim.shutdown().await;
}
