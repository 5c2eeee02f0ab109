//! The cass-operator stand-in, against the real CassandraDatacenter CRD.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube_sim::SimBuilder;
use serde_json::{Value, json};

mod support;
use support::{dc_resource, wait_for};

fn real_crd_dir() -> Option<std::path::PathBuf> {
    kube_sim::prerequisites::compat_dir(&kube_sim::prerequisites::workspace_root())
        .map(|compat| compat.join("crds/cass-operator"))
}

fn condition(dc: &Value, kind: &str) -> Option<String> {
    dc.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str().map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datacenters_become_ready_with_pods_service_and_endpoints() {
    let crds = real_crd_dir().expect("cass-operator's CRDs in ../shared/compat");
    let sim = SimBuilder::new()
        .clusters(2)
        .crd_dir(crds)
        .cass_operator(true)
        .dc_ready_after(Duration::from_millis(300))
        .start()
        .await
        .expect("starting kube-sim");
    let client = sim.client(1).await.expect("client");
    let dcs: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &dc_resource());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");

    let dc: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cassandra.datastax.com/v1beta1",
        "kind": "CassandraDatacenter",
        "metadata": {"name": "dc1", "namespace": "default"},
        "spec": {"clusterName": "demo", "serverType": "cassandra", "serverVersion": "4.1.5", "size": 3,
                 "racks": [{"name": "r1"}, {"name": "r2"}],
                 "storageConfig": {"cassandraDataVolumeClaimSpec": {"accessModes": ["ReadWriteOnce"],
                                   "resources": {"requests": {"storage": "1Gi"}}}}},
    }))
    .expect("dc");
    dcs.create(&PostParams::default(), &dc).await.expect("creating the datacenter");

    let get = || async { serde_json::to_value(dcs.get("dc1").await.ok()?).ok() };
    wait_for("Updating", || async {
        let dc = get().await?;
        (dc.pointer("/status/cassandraOperatorProgress")? == "Updating").then_some(())
    })
    .await;
    let ready = wait_for("Ready", || async {
        let dc = get().await?;
        (dc.pointer("/status/cassandraOperatorProgress")? == "Ready").then_some(dc)
    })
    .await;
    assert_eq!(ready.pointer("/status/observedGeneration"), Some(&json!(1)));
    assert_eq!(condition(&ready, "Ready").as_deref(), Some("True"));
    assert_eq!(condition(&ready, "Initialized").as_deref(), Some("True"));
    assert_eq!(
        ready.pointer("/status/nodeStatuses").and_then(Value::as_object).map(|m| m.len()),
        Some(3)
    );
    assert!(
        ready["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "finalizer.cassandra.datastax.com"))
    );

    let listed = pods
        .list(
            &ListParams::default().labels(
                "cassandra.datastax.com/cluster=demo,cassandra.datastax.com/datacenter=dc1",
            ),
        )
        .await
        .expect("pods");
    let mut names: Vec<String> =
        listed.items.iter().filter_map(|p| p.metadata.name.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "demo-dc1-r1-sts-0",
            "demo-dc1-r1-sts-1",
            "demo-dc1-r2-sts-0"
        ]
    );
    for pod in &listed.items {
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
        let address: std::net::Ipv4Addr = ip.parse().expect("an IPv4 pod IP");
        assert!(
            address.is_loopback() && address != std::net::Ipv4Addr::LOCALHOST,
            "pod IP {ip} is a loopback address other than the API servers'"
        );
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert!(labels.contains_key("cassandra.datastax.com/rack"));
    }
    let seeds = pods
        .list(&ListParams::default().labels("cassandra.datastax.com/seed-node=true"))
        .await
        .expect("seeds");
    assert_eq!(seeds.items.len(), 3);
    services.get("demo-dc1-all-pods-service").await.expect("all-pods service");
    let slice_list = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=demo-dc1-all-pods-service"))
        .await
        .expect("slices");
    assert_eq!(slice_list.items.len(), 1);
    assert_eq!(slice_list.items[0].endpoints.len(), 3);

    // a spec change goes through Updating to Ready for the new generation
    let change_spec = |spec: Value, generation: i64| {
        let (dcs, get) = (&dcs, &get);
        async move {
            dcs.patch(
                "dc1",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await
            .expect("changing the spec");
            wait_for(&format!("generation {generation} Ready"), || async {
                let dc = get().await?;
                (dc.pointer("/status/observedGeneration")? == generation
                    && dc.pointer("/status/cassandraOperatorProgress")? == "Ready")
                    .then_some(dc)
            })
            .await
        }
    };
    let dc1_pods = || async {
        pods.list(&ListParams::default().labels("cassandra.datastax.com/datacenter=dc1"))
            .await
            .expect("pods")
            .items
            .len()
    };
    let scaled = change_spec(json!({"size": 4}), 2).await;
    assert_eq!(
        scaled.pointer("/status/nodeStatuses").and_then(Value::as_object).map(|m| m.len()),
        Some(4)
    );
    assert_eq!(dc1_pods().await, 4);

    // scaled down: the pods beyond the new size go (the roll-out before kept them)
    change_spec(json!({"size": 2}), 3).await;
    assert_eq!(dc1_pods().await, 2);

    // a config change rolls the pods: cass-operator puts the hash of the config Secret it
    // makes from `spec.config` on their template
    let dc1_pod_uids = || async {
        let listed = pods
            .list(&ListParams::default().labels("cassandra.datastax.com/datacenter=dc1"))
            .await
            .expect("pods");
        let hashes: Vec<String> = listed
            .items
            .iter()
            .filter_map(|p| {
                p.metadata.annotations.as_ref()?.get("cassandra.datastax.com/config-hash").cloned()
            })
            .collect();
        let uids: Vec<String> =
            listed.items.iter().filter_map(|p| p.metadata.uid.clone()).collect();
        (uids, hashes)
    };
    let (before, old_hashes) = dc1_pod_uids().await;
    assert_eq!(old_hashes.len(), 2, "every pod carries the config hash");
    change_spec(
        json!({"config": {"cassandra-yaml": {"concurrent_reads": 64}}}),
        4,
    )
    .await;
    let (after, new_hashes) = dc1_pod_uids().await;
    assert_eq!(after.len(), 2);
    assert!(
        after.iter().all(|uid| !before.contains(uid)),
        "every pod restarted"
    );
    assert!(
        new_hashes.iter().all(|h| !old_hashes.contains(h)),
        "{new_hashes:?}"
    );

    // stopped: as cass-operator, Stopped True and Ready False as soon as the stop begins
    // (progress Updating while the nodes drain), then no pods and progress Ready
    dcs.patch(
        "dc1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"stopped": true}})),
    )
    .await
    .expect("stopping");
    let stopping = wait_for("the stop under way", || async {
        let dc = get().await?;
        (dc.pointer("/metadata/generation")? == 5
            && dc.pointer("/status/cassandraOperatorProgress")? == "Updating")
            .then_some(dc)
    })
    .await;
    assert_eq!(condition(&stopping, "Stopped").as_deref(), Some("True"));
    assert_eq!(condition(&stopping, "Ready").as_deref(), Some("False"));
    let stopped = wait_for("generation 5 stopped", || async {
        let dc = get().await?;
        (dc.pointer("/status/observedGeneration")? == 5
            && dc.pointer("/status/cassandraOperatorProgress")? == "Ready")
            .then_some(dc)
    })
    .await;
    assert_eq!(condition(&stopped, "Stopped").as_deref(), Some("True"));
    assert_eq!(condition(&stopped, "Ready").as_deref(), Some("False"));
    assert_eq!(dc1_pods().await, 0);

    // started again: Stopped False, Ready once the nodes are back
    let started = change_spec(json!({"stopped": false}), 6).await;
    assert_eq!(condition(&started, "Stopped").as_deref(), Some("False"));
    assert_eq!(condition(&started, "Ready").as_deref(), Some("True"));
    assert_eq!(dc1_pods().await, 2);

    // deletion removes everything, then the datacenter itself
    dcs.delete("dc1", &DeleteParams::default()).await.expect("deleting");
    wait_for("the datacenter gone", || async {
        dcs.get_opt("dc1").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(services.get_opt("demo-dc1-all-pods-service").await.expect("service lookup").is_none());
    assert!(slices.list(&ListParams::default()).await.expect("slices").items.is_empty());

    // the other cluster saw none of it
    let other: Api<Pod> = Api::namespaced(sim.client(0).await.expect("client 0"), "default");
    assert!(other.list(&ListParams::default()).await.expect("pods").items.is_empty());
    sim.shutdown().await;
}
