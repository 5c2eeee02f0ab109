//! The hub registered as a region, as k8ssandra-operator's setups do (`make multi-up` gives the
//! control plane's own cluster a ClientConfig too), and the move from k8ssandra-operator
//! (docs/install.md), end to end against two kube-sim clusters with the cass-operator stand-in:
//! cluster 0 is the hub, cluster 1 a region, both registered with ClientConfigs.

mod support;

use std::time::Duration;

use federator::api::cassdc::CassandraDatacenter;
use federator::api::k8ssandra_cluster::K8ssandraCluster;
use federator::api::replicated_secret::ReplicatedSecret;
use federator::federation::plan::plan;
use federator::replication::desired::{REPLICATED_SECRET_NAME_LABEL, ReplicationKey};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::{Api, Client};
use kube_sim::Sim;
use serde_json::{Value, json};
use support::*;

const CLUSTER: &str = "demo";
/// k8ssandra-operator's field manager, for the objects it leaves behind.
const UPSTREAM_MANAGER: &str = "k8ssandra-operator";
/// k8ssandra-operator's finalizer, on its K8ssandraClusters and CassandraDatacenters.
const UPSTREAM_FINALIZER: &str = "k8ssandracluster.k8ssandra.io/finalizer";
const WAIT: Duration = Duration::from_secs(40);

/// The sim (hub and one region, both registered) and the operator in this process.
struct Running {
    sim: Sim,
    hub: Client,
    region: Client,
    operator: InProcessOperator,
}

impl Running {
    /// kube-sim with `objects` made before the operator starts (what another operator left).
    async fn start(before_operator: impl AsyncFnOnce(&Sim, &Client, &Client)) -> Running {
        // The hub is registered like any region.
        let sim = start_sim(2)
            .cass_operator()
            .dc_ready_after(Duration::from_millis(500))
            .register([0, 1])
            .await;
        let hub = sim.client(0).await.expect("hub client");
        let region = sim.client(1).await.expect("region client");
        before_operator(&sim, &hub, &region).await;
        let operator = InProcessOperator::start(&hub, |settings| {
            settings.leader_election.enabled = false;
        });
        Running {
            sim,
            hub,
            region,
            operator,
        }
    }

    async fn stop(self) {
        self.operator.stop().await;
        self.sim.shutdown().await;
    }
}

/// dc1 in the hub (named by `hub_context`, or by no context), dc2 in the region.
fn two_datacenters(hub_context: Option<&str>, region_context: &str) -> Value {
    k8ssandra_cluster(
        CLUSTER,
        &[
            ("dc1", hub_context.unwrap_or_default(), 1),
            ("dc2", region_context, 1),
        ],
    )
}

async fn datacenter(client: &Client, name: &str) -> Option<CassandraDatacenter> {
    get(client, name).await
}

async fn cluster(hub: &Client) -> Option<K8ssandraCluster> {
    get(hub, CLUSTER).await
}

/// Waits until the K8ssandraCluster is Ready with both datacenters Ready.
async fn wait_cluster_ready(hub: &Client) -> K8ssandraCluster {
    wait_for("the K8ssandraCluster Ready", WAIT, || async {
        let k8c = cluster(hub).await?;
        let status = k8c.status.as_ref()?;
        let ready =
            status.conditions.as_ref()?.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(k8c)
    })
    .await
}

/// Deletes the K8ssandraCluster; waits until it and both datacenters are gone.
async fn delete_and_wait(running: &Running) {
    delete(&hub_api::<K8ssandraCluster>(&running.hub), CLUSTER).await;
    wait_for(
        "the K8ssandraCluster and its datacenters gone",
        WAIT,
        || async {
            let gone = cluster(&running.hub).await.is_none()
                && datacenter(&running.hub, "dc1").await.is_none()
                && datacenter(&running.region, "dc2").await.is_none();
            gone.then_some(())
        },
    )
    .await;
}

/// What a user could tell apart in the hub: dc1 as applied, the ReplicatedSecret's targets,
/// the Secrets and seed EndpointSlices there, and what the status says of each datacenter.
async fn hub_view(running: &Running, k8c: &K8ssandraCluster) -> Value {
    let dc1 = datacenter(&running.hub, "dc1").await.expect("dc1 in the hub");
    let replicated = bounded(
        "get ReplicatedSecret",
        Api::<ReplicatedSecret>::namespaced(running.hub.clone(), NS).get(CLUSTER),
    )
    .await
    .expect("the cluster's ReplicatedSecret");
    let names = |items: Vec<kube::api::ObjectMeta>| {
        let mut names: Vec<String> = items.into_iter().filter_map(|m| m.name).collect();
        names.sort();
        names
    };
    let secrets = bounded(
        "list Secrets",
        Api::<Secret>::namespaced(running.hub.clone(), NS).list(&ListParams::default()),
    )
    .await
    .expect("list Secrets");
    let slices = bounded(
        "list EndpointSlices",
        Api::<EndpointSlice>::namespaced(running.hub.clone(), NS).list(&ListParams::default()),
    )
    .await
    .expect("list EndpointSlices");
    let status = k8c.status.clone().unwrap_or_default();
    let placed: Value = status
        .datacenters
        .unwrap_or_default()
        .into_iter()
        .map(|(name, dc)| (name, json!(dc.context_name)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    json!({
        "dc1 spec": serde_json::to_value(&dc1.spec).expect("json"),
        "dc1 labels": dc1.metadata.labels,
        "replication targets": replicated.spec.replication_targets,
        "secrets": names(secrets.items.into_iter().map(|s| s.metadata).collect()),
        "seed slices": names(slices.items.into_iter().map(|s| s.metadata).collect()),
        "status.datacenters": placed,
    })
}

// On the operator's own runtime: its workers have the stack the K8ssandraCluster watcher needs.
#[test]
fn a_datacenter_placed_by_the_hubs_own_context_is_the_same_as_one_with_no_context() {
    run(hub_context_is_no_context());
}

async fn hub_context_is_no_context() {
    let running = Running::start(async |_: &Sim, _: &Client, _: &Client| {}).await;
    let hub_context = running.sim.context_name(0);
    let region_context = running.sim.context_name(1);
    let clusters = Api::<K8ssandraCluster>::namespaced(running.hub.clone(), NS);
    wait_reaches_hub(&running.hub, &hub_context, true, WAIT).await;

    let mut views = Vec::new();
    for dc1_context in [None, Some(hub_context.as_str())] {
        apply(
            &clusters,
            CLUSTER,
            two_datacenters(dc1_context, &region_context),
        )
        .await;
        let k8c = wait_cluster_ready(&running.hub).await;
        // Let the status catch up with the last seed slices.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let k8c = cluster(&running.hub).await.unwrap_or(k8c);
        views.push(hub_view(&running, &k8c).await);
        delete_and_wait(&running).await;
    }
    assert_eq!(
        views[0], views[1],
        "dc1 with no k8sContext (left) and with the hub's own context (right)"
    );
    running.stop().await;
}

/// The objects k8ssandra-operator leaves for a two-datacenter cluster: the K8ssandraCluster and
/// its CassandraDatacenters with its finalizer and labels, the superuser Secret and its copy in
/// the region, and the ReplicatedSecret.
async fn leave_upstream_objects(sim: &Sim, hub: &Client, region: &Client) {
    let hub_context = sim.context_name(0);
    let region_context = sim.context_name(1);
    let mut k8c_value = two_datacenters(Some(&hub_context), &region_context);
    k8c_value["metadata"]["finalizers"] = json!([UPSTREAM_FINALIZER]);
    let k8c: K8ssandraCluster = serde_json::from_value(k8c_value.clone()).expect("valid");
    apply_as(
        UPSTREAM_MANAGER,
        &Api::<K8ssandraCluster>::namespaced(hub.clone(), NS),
        CLUSTER,
        k8c_value,
    )
    .await;

    let upstream_labels = json!({
        "app.kubernetes.io/managed-by": "k8ssandra-operator",
        "app.kubernetes.io/name": "k8ssandra-operator",
        "app.kubernetes.io/part-of": "k8ssandra",
        "app.kubernetes.io/component": "cassandra",
        "app.kubernetes.io/created-by": "k8ssandracluster-controller",
        "k8ssandra.io/cleaned-up-by": "k8ssandracluster-controller",
        "k8ssandra.io/cluster-name": CLUSTER,
        "k8ssandra.io/cluster-namespace": NS,
    });
    let planned = plan(&k8c).expect("plans");
    for (dc, client) in planned.datacenters.iter().zip([hub, region]) {
        let mut body = serde_json::to_value(&dc.datacenter).expect("json");
        body["apiVersion"] = "cassandra.datastax.com/v1beta1".into();
        body["kind"] = "CassandraDatacenter".into();
        body["metadata"]["labels"] = upstream_labels.clone();
        body["metadata"]["annotations"] = json!({"k8ssandra.io/resource-hash": "upstream"});
        body["metadata"]["finalizers"] = json!([UPSTREAM_FINALIZER]);
        if let Some(map) = body.as_object_mut() {
            map.remove("status");
        }
        apply_as(
            UPSTREAM_MANAGER,
            &Api::<CassandraDatacenter>::namespaced(client.clone(), NS),
            &dc.name,
            body,
        )
        .await;
    }

    let superuser = format!("{CLUSTER}-superuser");
    let secret = |labels: Value| {
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": superuser, "namespace": NS, "labels": labels},
            "type": "Opaque",
            "stringData": {"username": CLUSTER, "password": "left-by-k8ssandra-operator"}})
    };
    let source_labels = json!({
        "app.kubernetes.io/managed-by": "k8ssandra-operator",
        "k8ssandra.io/cluster-name": CLUSTER,
        "k8ssandra.io/cluster-namespace": NS,
    });
    apply_as(
        UPSTREAM_MANAGER,
        &Api::<Secret>::namespaced(hub.clone(), NS),
        &superuser,
        secret(source_labels.clone()),
    )
    .await;
    let mut copy_labels = source_labels.clone();
    copy_labels[REPLICATED_SECRET_NAME_LABEL] = ReplicationKey {
        namespace: NS.into(),
        name: CLUSTER.into(),
    }
    .label_value()
    .into();
    apply_as(
        UPSTREAM_MANAGER,
        &Api::<Secret>::namespaced(region.clone(), NS),
        &superuser,
        secret(copy_labels),
    )
    .await;
    apply_as(
        UPSTREAM_MANAGER,
        &Api::<ReplicatedSecret>::namespaced(hub.clone(), NS),
        CLUSTER,
        json!({"apiVersion": "replication.k8ssandra.io/v1alpha1", "kind": "ReplicatedSecret",
        "metadata": {"name": CLUSTER, "namespace": NS,
            "finalizers": ["replicatedresource.k8ssandra.io/finalizer"],
            "labels": {"k8ssandra.io/cluster-name": CLUSTER, "k8ssandra.io/cluster-namespace": NS}},
        "spec": {
            "selector": {"matchLabels": {"k8ssandra.io/cluster-name": CLUSTER,
                "k8ssandra.io/cluster-namespace": NS}},
            "replicationTargets": [{"namespace": NS, "k8sContextName": region_context}]
        }}),
    )
    .await;
}

#[test]
fn after_taking_over_from_k8ssandra_operator_removing_a_datacenter_and_deleting_the_cluster_finish()
{
    run(take_over_then_remove_and_delete());
}

/// docs/install.md's steps: k8ssandra-operator is stopped and its webhook removed (kube-sim runs
/// neither), Federator is installed (its CRDs are the ones kube-sim serves) and started; then
/// the clusters go Ready without their datacenters being re-created.
async fn take_over_then_remove_and_delete() {
    let running = Running::start(leave_upstream_objects).await;
    let region_context = running.sim.context_name(1);
    let uid = |dc: Option<CassandraDatacenter>| dc.and_then(|dc| dc.metadata.uid);
    let before = (
        uid(datacenter(&running.hub, "dc1").await),
        uid(datacenter(&running.region, "dc2").await),
    );

    wait_cluster_ready(&running.hub).await;
    wait_for("both datacenters taken over", WAIT, || async {
        let federators = |dc: Option<CassandraDatacenter>| {
            dc.and_then(|dc| dc.metadata.labels)
                .and_then(|labels| labels.get("app.kubernetes.io/managed-by").cloned())
                .is_some_and(|v| v == "federator")
        };
        (federators(datacenter(&running.hub, "dc1").await)
            && federators(datacenter(&running.region, "dc2").await))
        .then_some(())
    })
    .await;
    let after = (
        uid(datacenter(&running.hub, "dc1").await),
        uid(datacenter(&running.region, "dc2").await),
    );
    assert_eq!(before, after, "taken over, not re-created");

    // dc2 removed from the spec: decommissioned and deleted, k8ssandra-operator's finalizer
    // notwithstanding.
    let hub_context = running.sim.context_name(0);
    let mut one = k8ssandra_cluster(CLUSTER, &[("dc1", &hub_context, 1)]);
    one["metadata"]["finalizers"] = json!([UPSTREAM_FINALIZER]);
    apply_as(
        UPSTREAM_MANAGER,
        &Api::<K8ssandraCluster>::namespaced(running.hub.clone(), NS),
        CLUSTER,
        one,
    )
    .await;
    wait_for(
        &format!("dc2 gone from region {region_context}"),
        WAIT,
        || async { datacenter(&running.region, "dc2").await.is_none().then_some(()) },
    )
    .await;
    let dc1 = datacenter(&running.hub, "dc1").await.expect("dc1 stays");
    assert!(
        dc1.metadata.deletion_timestamp.is_none(),
        "dc1 is not deleted"
    );

    // The cluster deleted: dc1 goes, then the K8ssandraCluster.
    delete_and_wait(&running).await;
    running.stop().await;
}
