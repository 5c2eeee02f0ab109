//! The K8ssandraCluster controller end to end, in process, against three kube-sim clusters with
//! the cass-operator stand-in: bootstrap order, status, a spec change reaching the region, no
//! writes at steady state, a hand edit in a region reverted, a watch a region refuses shown in
//! status, and deletion of every remote datacenter before the K8ssandraCluster goes.

mod support;

use std::time::{Duration, Instant};

use federator::api::cassdc::CassandraDatacenter;
use federator::api::k8ssandra_cluster::{K8ssandraCluster, K8ssandraClusterStatus};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use kube_sim::Sim;
use support::*;

const CLUSTER: &str = "demo";
/// How long the cass-operator stand-in takes to make a datacenter Ready.
const DC_READY_AFTER: Duration = Duration::from_secs(3);

/// Deletes the K8ssandraCluster and waits until it is gone.
async fn delete_cluster(clusters: &Api<K8ssandraCluster>) {
    delete(clusters, CLUSTER).await;
    wait_until_cluster_deleted(clusters).await;
}

/// The K8ssandraCluster is gone from the hub (its finalizer released).
async fn wait_until_cluster_deleted(clusters: &Api<K8ssandraCluster>) {
    wait_deleted(clusters, CLUSTER, Duration::from_secs(20)).await;
}

async fn datacenter(client: &Client, name: &str) -> Option<CassandraDatacenter> {
    get(client, name).await
}

/// Waits (40 s at most) until CassandraDatacenter `name` is Ready in `client`'s cluster,
/// `cluster` naming it in the failure message.
async fn wait_datacenter_ready(client: &Client, name: &str, cluster: &str) {
    wait_for(
        &format!("{name} Ready in {cluster}"),
        Duration::from_secs(40),
        || async { datacenter(client, name).await.filter(|dc| dc.is_ready()).map(|_| ()) },
    )
    .await;
}

/// dc1 (1 node) in the hub, dc2 of `dc2_size` in `region`.
fn two_datacenters(dc2_size: i32, region: &str) -> serde_json::Value {
    two_datacenters_sized(1, dc2_size, region)
}

fn two_datacenters_sized(dc1_size: i32, dc2_size: i32, region: &str) -> serde_json::Value {
    k8ssandra_cluster(CLUSTER, &[("dc1", "", dc1_size), ("dc2", region, dc2_size)])
}

// On the operator's own runtime: its workers have the stack the K8ssandraCluster watcher needs.
#[test]
fn a_two_region_cluster_bootstraps_in_order_scales_and_is_deleted() {
    run(bootstrap_scale_delete());
}

/// The sim with regions 1 and 2 registered as ClientConfigs, and the operator running in this
/// process as `federator run` starts it; stops when dropped.
struct Running {
    sim: Sim,
    hub: Client,
    operator: InProcessOperator,
}

impl Running {
    async fn start() -> Running {
        let sim =
            start_sim(3).cass_operator().dc_ready_after(DC_READY_AFTER).register([1, 2]).await;
        let hub = sim.client(0).await.expect("hub client");
        let operator = InProcessOperator::start(&hub, |_| {});
        Running { sim, hub, operator }
    }

    async fn stop(self) {
        self.operator.stop().await;
    }
}

async fn k8ssandra_cluster_status(
    clusters: &Api<K8ssandraCluster>,
) -> Option<K8ssandraClusterStatus> {
    bounded("get K8ssandraCluster", clusters.get_opt(CLUSTER))
        .await
        .expect("get K8ssandraCluster")?
        .status
}

async fn bootstrap_scale_delete() {
    let running = Running::start().await;
    let (sim, hub) = (&running.sim, &running.hub);
    let region1 = sim.client(1).await.expect("region 1 client");
    let region1_context = sim.context_name(1);

    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    apply(&clusters, CLUSTER, two_datacenters(1, &region1_context)).await;

    // dc1 first; dc2 must not exist in its region before dc1 is Ready.
    wait_for("dc1 created in the hub", Duration::from_secs(20), || {
        datacenter(hub, "dc1")
    })
    .await;
    wait_for("dc1 Ready", Duration::from_secs(30), || async {
        let dc1 = datacenter(hub, "dc1").await?;
        if dc1.is_ready() {
            return Some(());
        }
        assert!(
            datacenter(&region1, "dc2").await.is_none(),
            "dc2 was created before dc1 is Ready"
        );
        None
    })
    .await;

    // Both Ready, and the status shows them.
    wait_datacenter_ready(&region1, "dc2", "region 1").await;
    let status = wait_for(
        "status.datacenters shows both Ready",
        Duration::from_secs(40),
        || async {
            let k8c = bounded("get K8ssandraCluster", clusters.get_opt(CLUSTER))
                .await
                .expect("get K8ssandraCluster")?;
            let status = k8c.status?;
            let datacenters = status.datacenters.as_ref()?;
            let ready = |name: &str| {
                datacenters
                    .get(name)
                    .and_then(|dc| dc.cassandra.as_ref())
                    .is_some_and(|c| c.is_ready())
            };
            (ready("dc1") && ready("dc2")).then_some(status)
        },
    )
    .await;
    let datacenters = status.datacenters.expect("datacenters");
    assert_eq!(datacenters["dc1"].context_name.as_deref().unwrap_or(""), "");
    assert_eq!(
        datacenters["dc2"].context_name.as_deref(),
        Some(region1_context.as_str())
    );

    // Scaling dc2 reaches its region within seconds.
    apply(&clusters, CLUSTER, two_datacenters(2, &region1_context)).await;
    wait_for(
        "dc2 scaled to 2 in region 1",
        Duration::from_secs(10),
        || async { datacenter(&region1, "dc2").await.filter(|dc| dc.spec.size == 2).map(|_| ()) },
    )
    .await;

    // Steady state once dc2 is Ready again: no write to the remote DC nor to the status.
    wait_for(
        "dc2 Ready after scaling",
        Duration::from_secs(30),
        || async { datacenter(&region1, "dc2").await.filter(|dc| dc.is_ready()).map(|_| ()) },
    )
    .await;
    // Let the status catch up with the Ready datacenter first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let versions = || async {
        let dc2 = datacenter(&region1, "dc2").await.expect("dc2 exists");
        let k8c = bounded("get K8ssandraCluster", clusters.get(CLUSTER))
            .await
            .expect("get K8ssandraCluster");
        (dc2.metadata.resource_version, k8c.metadata.resource_version)
    };
    let before = versions().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        before,
        versions().await,
        "nothing is written at steady state"
    );

    // An edit by hand in the region is reverted by the region watch, well before the steady
    // re-queue (5 min) would.
    let remote = Api::<CassandraDatacenter>::namespaced(region1.clone(), NS);
    bounded(
        "edit dc2 by hand",
        remote.patch(
            "dc2",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"size": 3}})),
        ),
    )
    .await
    .expect("edit dc2 by hand");
    wait_for("the hand edit reverted", Duration::from_secs(5), || async {
        datacenter(&region1, "dc2").await.filter(|dc| dc.spec.size == 2).map(|_| ())
    })
    .await;

    // Deleting removes both remote datacenters, then the K8ssandraCluster.
    delete(&clusters, CLUSTER).await;
    wait_for(
        "both datacenters deleted",
        Duration::from_secs(30),
        || async {
            let dc1 = datacenter(hub, "dc1").await;
            let dc2 = datacenter(&region1, "dc2").await;
            (dc1.is_none() && dc2.is_none()).then_some(())
        },
    )
    .await;
    wait_until_cluster_deleted(&clusters).await;

    running.stop().await;
}

#[test]
fn a_stopped_region_is_named_blocks_only_itself_and_holds_the_deletion() {
    run(stopped_region());
}

async fn stopped_region() {
    let running = Running::start().await;
    let (sim, hub) = (&running.sim, &running.hub);
    let region2 = sim.client(2).await.expect("region 2 client");
    let region2_context = sim.context_name(2);
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    apply(
        &clusters,
        CLUSTER,
        two_datacenters_sized(1, 1, &region2_context),
    )
    .await;
    wait_datacenter_ready(&region2, "dc2", "region 2").await;

    // Region 2 stops: dc1 in the hub still follows the spec, and the status names region 2.
    sim.stop(2).expect("stop region 2");
    apply(
        &clusters,
        CLUSTER,
        two_datacenters_sized(2, 1, &region2_context),
    )
    .await;
    wait_for(
        "dc1 scaled while region 2 is down",
        Duration::from_secs(10),
        || async { datacenter(hub, "dc1").await.filter(|dc| dc.spec.size == 2).map(|_| ()) },
    )
    .await;
    wait_for(
        "RegionUnreachable names region 2",
        Duration::from_secs(15),
        || async {
            let status = k8ssandra_cluster_status(&clusters).await?;
            let (value, _, message) = condition(&status, "RegionUnreachable")?;
            (value == "True" && message.contains(&region2_context)).then_some(())
        },
    )
    .await;

    // It comes back: the condition clears.
    sim.start(2).await.expect("start region 2");
    wait_for(
        "RegionUnreachable cleared",
        Duration::from_secs(20),
        || async {
            let status = k8ssandra_cluster_status(&clusters).await?;
            let (value, _, _) = condition(&status, "RegionUnreachable")?;
            (value == "False").then_some(())
        },
    )
    .await;

    // Deleted while region 2 is down: the hub's DC goes, the K8ssandraCluster stays (its
    // finalizer) and says which region holds it up; it goes once region 2 is back.
    sim.stop(2).expect("stop region 2 again");
    delete(&clusters, CLUSTER).await;
    wait_for(
        "dc1 deleted from the hub",
        Duration::from_secs(15),
        || async { datacenter(hub, "dc1").await.is_none().then_some(()) },
    )
    .await;
    wait_for(
        "status names the region holding the deletion",
        Duration::from_secs(15),
        || async {
            let status = k8ssandra_cluster_status(&clusters).await?;
            status.error.filter(|error| error.contains(&region2_context)).map(|_| ())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        bounded("get K8ssandraCluster", clusters.get_opt(CLUSTER))
            .await
            .expect("get K8ssandraCluster")
            .is_some(),
        "the K8ssandraCluster must stay while region 2 still holds dc2"
    );
    sim.start(2).await.expect("start region 2 again");
    // A new client: the old one's connections died with the region.
    let region2 = sim.client(2).await.expect("region 2 client");
    wait_for(
        "dc2 deleted from region 2",
        Duration::from_secs(30),
        || async { datacenter(&region2, "dc2").await.is_none().then_some(()) },
    )
    .await;
    wait_until_cluster_deleted(&clusters).await;
    running.stop().await;
}

#[test]
fn a_removed_datacenter_is_deleted_and_the_orphan_annotation_leaves_the_rest() {
    run(removal_and_orphan());
}

async fn removal_and_orphan() {
    let running = Running::start().await;
    let (sim, hub) = (&running.sim, &running.hub);
    let region1 = sim.client(1).await.expect("region 1 client");
    let region1_context = sim.context_name(1);
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    apply(&clusters, CLUSTER, two_datacenters(1, &region1_context)).await;
    wait_datacenter_ready(&region1, "dc2", "region 1").await;

    // dc2 taken out of the spec: deleted in its region, then its status entry goes.
    let mut only_dc1 = two_datacenters(1, &region1_context);
    if let Some(datacenters) = only_dc1["spec"]["cassandra"]["datacenters"].as_array_mut() {
        datacenters.truncate(1);
    }
    apply(&clusters, CLUSTER, only_dc1).await;
    wait_for(
        "dc2 deleted from region 1",
        Duration::from_secs(20),
        || async { datacenter(&region1, "dc2").await.is_none().then_some(()) },
    )
    .await;
    wait_for(
        "dc2 gone from the status",
        Duration::from_secs(20),
        || async {
            let status = k8ssandra_cluster_status(&clusters).await?;
            let datacenters = status.datacenters?;
            (datacenters.contains_key("dc1") && !datacenters.contains_key("dc2")).then_some(())
        },
    )
    .await;
    assert!(
        datacenter(hub, "dc1").await.is_some(),
        "dc1 stays when dc2 is removed"
    );

    // With the orphan annotation, deleting the K8ssandraCluster leaves dc1 in place.
    bounded(
        "annotate orphan",
        clusters.patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "metadata": {"annotations": {"federator.k8ssandra.io/orphan": "true"}}
            })),
        ),
    )
    .await
    .expect("annotate orphan");
    delete(&clusters, CLUSTER).await;
    wait_deleted(&clusters, CLUSTER, Duration::from_secs(15)).await;
    assert!(
        datacenter(hub, "dc1").await.is_some(),
        "an orphaned datacenter stays"
    );
    running.stop().await;
}

#[test]
fn a_datacenter_of_another_cluster_or_a_missing_namespace_is_a_condition() {
    run(conflict_and_missing_namespace());
}

/// Waits until the K8ssandraCluster `name` is Degraded with `reason` and a message holding
/// `mention`.
async fn wait_degraded(clusters: &Api<K8ssandraCluster>, name: &str, reason: &str, mention: &str) {
    wait_for(
        &format!("{name} Degraded with {reason} naming {mention}"),
        Duration::from_secs(20),
        || async {
            let k8c = bounded("get K8ssandraCluster", clusters.get_opt(name))
                .await
                .expect("get K8ssandraCluster")?;
            let (status, found, message) = condition(&k8c, "Degraded")?;
            (status == "True" && found == reason && message.contains(mention)).then_some(())
        },
    )
    .await;
}

async fn conflict_and_missing_namespace() {
    let running = Running::start().await;
    let (sim, hub) = (&running.sim, &running.hub);
    let region1_context = sim.context_name(1);
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    apply(&clusters, CLUSTER, two_datacenters(1, &region1_context)).await;
    wait_for("dc1 created in the hub", Duration::from_secs(20), || {
        datacenter(hub, "dc1")
    })
    .await;

    // A second cluster with a datacenter of the same name in the same place: not overwritten.
    let mut second = two_datacenters(1, &region1_context);
    second["metadata"]["name"] = "second".into();
    apply(&clusters, "second", second).await;
    wait_degraded(&clusters, "second", "Conflict", CLUSTER).await;
    let dc1 = datacenter(hub, "dc1").await.expect("dc1 exists");
    assert_eq!(
        dc1.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("k8ssandra.io/cluster-name"))
            .map(String::as_str),
        Some(CLUSTER),
        "dc1 still belongs to the first cluster"
    );

    // A datacenter whose namespace does not exist in its region.
    let mut third = two_datacenters(1, &region1_context);
    third["metadata"]["name"] = "third".into();
    third["spec"]["cassandra"]["datacenters"] = serde_json::json!([
        {"metadata": {"name": "dc9", "namespace": "no-such-namespace"}, "k8sContext": region1_context, "size": 1}
    ]);
    apply(&clusters, "third", third).await;
    wait_degraded(&clusters, "third", "NamespaceMissing", "no-such-namespace").await;

    // A namespace being deleted (held in Terminating by a finalizer) is no place for a new
    // datacenter either: the API server refuses new content in it.
    let region1 = sim.client(1).await.expect("region client");
    apply(&Api::<Namespace>::all(region1.clone()),
        "doomed",
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}}),
    )
    .await;
    apply(&Api::<ConfigMap>::namespaced(region1.clone(), "doomed"),
        "held",
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "held", "namespace": "doomed", "finalizers": ["example.com/hold"]}}),
    )
    .await;
    bounded(
        "delete namespace",
        Api::<Namespace>::all(region1.clone()).delete("doomed", &DeleteParams::default()),
    )
    .await
    .expect("namespace deletion starts");
    let mut fourth = two_datacenters(1, &region1_context);
    fourth["metadata"]["name"] = "fourth".into();
    fourth["spec"]["cassandra"]["datacenters"] = serde_json::json!([
        {"metadata": {"name": "dc8", "namespace": "doomed"}, "k8sContext": region1_context, "size": 1}
    ]);
    apply(&clusters, "fourth", fourth).await;
    wait_degraded(&clusters, "fourth", "NamespaceMissing", "doomed").await;
    running.stop().await;
}

#[test]
fn a_watch_a_region_refuses_is_a_condition_naming_region_resource_and_namespace() {
    run(refused_watch());
}

async fn refused_watch() {
    let running = Running::start().await;
    let (sim, hub) = (&running.sim, &running.hub);
    let region1 = sim.client(1).await.expect("region 1 client");
    let region1_context = sim.context_name(1);
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    apply(&clusters, CLUSTER, two_datacenters(1, &region1_context)).await;
    wait_datacenter_ready(&region1, "dc2", "region 1").await;

    // Region 1's RBAC stops granting CassandraDatacenters; its watch has to start again.
    sim.forbid(1, "cassandradatacenters", true).expect("forbid");
    sim.drop_watches(1).expect("drop watches");
    wait_degraded(
        &clusters,
        CLUSTER,
        "RegionWatchRefused",
        "cassandradatacenters",
    )
    .await;
    let degraded = k8ssandra_cluster_status(&clusters)
        .await
        .and_then(|s| condition(&s, "Degraded"))
        .expect("Degraded");
    for mention in [region1_context.as_str(), "all namespaces", "403"] {
        assert!(degraded.2.contains(mention), "{mention} in {}", degraded.2);
    }
    let ready = k8ssandra_cluster_status(&clusters)
        .await
        .and_then(|s| condition(&s, "Ready"))
        .expect("Ready");
    assert_eq!(ready.0, "True", "the datacenters stay Ready: {}", ready.2);

    // Granted again: the condition clears.
    sim.forbid(1, "cassandradatacenters", false).expect("allow");
    wait_for(
        "Degraded cleared once the watch works",
        Duration::from_secs(40),
        || async {
            let status = k8ssandra_cluster_status(&clusters).await?;
            let (value, _, _) = condition(&status, "Degraded")?;
            (value == "False").then_some(())
        },
    )
    .await;
    running.stop().await;
}

#[test]
fn seeds_reach_every_region_events_are_published_and_a_rename_is_refused() {
    run(seeds_events_and_rename());
}

/// Every endpoint address of an EndpointSlice, if it exists.
async fn slice_addresses(client: &Client, name: &str) -> Option<Vec<String>> {
    let api = Api::<EndpointSlice>::namespaced(client.clone(), NS);
    let slice =
        bounded("get EndpointSlice", api.get_opt(name)).await.expect("get EndpointSlice")?;
    Some(slice.endpoints.into_iter().flat_map(|e| e.addresses).collect())
}

/// The IPs of a datacenter's seed pods, as cass-operator labels them.
async fn seed_pod_ips(client: &Client, datacenter: &str) -> Vec<String> {
    let pods = Api::<Pod>::namespaced(client.clone(), NS);
    let selector = format!(
        "cassandra.datastax.com/datacenter={datacenter},cassandra.datastax.com/seed-node=true"
    );
    bounded(
        "list seed pods",
        pods.list(&ListParams::default().labels(&selector)),
    )
    .await
    .expect("list seed pods")
    .items
    .into_iter()
    .filter_map(|pod| pod.status?.pod_ip)
    .collect()
}

async fn seeds_events_and_rename() {
    let running = Running::start().await;
    let (sim, hub) = (&running.sim, &running.hub);
    let region1 = sim.client(1).await.expect("region 1 client");
    let region1_context = sim.context_name(1);
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    let mut cluster = two_datacenters(1, &region1_context);
    // An IP, a name the hosts file resolves, and a name that cannot resolve (RFC 6761 .invalid).
    cluster["spec"]["cassandra"]["additionalSeeds"] =
        serde_json::json!(["192.0.2.10", "localhost", "seed.invalid"]);
    apply(&clusters, CLUSTER, cluster.clone()).await;
    wait_datacenter_ready(&region1, "dc2", "region 1").await;

    // dc1 (in the hub) lists dc2's seeds and the additional seeds; dc2 lists dc1's.
    let dc2_seeds = seed_pod_ips(&region1, "dc2").await;
    let dc1_seeds = seed_pod_ips(hub, "dc1").await;
    assert!(!dc1_seeds.is_empty() && !dc2_seeds.is_empty());
    let dc1_slice = "demo-demo-dc1-additional-seed-service-ipv4";
    let dc2_slice = "demo-demo-dc2-additional-seed-service-ipv4";
    let in_hub = wait_for(
        "dc1's slice lists dc2's seeds",
        Duration::from_secs(20),
        || async {
            slice_addresses(hub, dc1_slice)
                .await
                .filter(|a| dc2_seeds.iter().all(|ip| a.contains(ip)))
        },
    )
    .await;
    for expected in ["192.0.2.10", "127.0.0.1"] {
        assert!(
            in_hub.contains(&expected.to_string()),
            "{expected} in {in_hub:?}"
        );
    }
    assert!(
        dc1_seeds.iter().all(|ip| !in_hub.contains(ip)),
        "a datacenter's own seeds are not additional seeds: {in_hub:?}"
    );
    let in_region1 = wait_for(
        "dc2's slice lists dc1's seeds",
        Duration::from_secs(20),
        || async {
            slice_addresses(&region1, dc2_slice)
                .await
                .filter(|a| dc1_seeds.iter().all(|ip| a.contains(ip)))
        },
    )
    .await;
    assert!(dc2_seeds.iter().all(|ip| !in_region1.contains(ip)));

    // A seed slice edited by hand in its region is put back (the slice cache is compared
    // against, and its watch re-queues the cluster).
    let slices = Api::<EndpointSlice>::namespaced(region1.clone(), NS);
    bounded(
        "edit dc2's seed slice by hand",
        slices.patch(
            dc2_slice,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"endpoints": [{"addresses": ["198.51.100.7"]}]})),
        ),
    )
    .await
    .expect("edit dc2's seed slice by hand");
    wait_for(
        "the slice edit reverted",
        Duration::from_secs(10),
        || async { slice_addresses(&region1, dc2_slice).await.filter(|a| *a == in_region1) },
    )
    .await;

    let status = wait_for("SeedsResolved False", Duration::from_secs(10), || async {
        let status = k8ssandra_cluster_status(&clusters).await?;
        condition(&status, "SeedsResolved").filter(|(s, _, _)| s == "False")
    })
    .await;
    assert!(status.2.contains("seed.invalid"), "{}", status.2);

    // Events on the K8ssandraCluster: each datacenter's creation, in its region.
    let events = Api::<Event>::namespaced(hub.clone(), NS);
    let created = wait_for(
        "DatacenterCreated events",
        Duration::from_secs(10),
        || async {
            let list = bounded("list events", events.list(&ListParams::default()))
                .await
                .expect("list events");
            let notes: Vec<String> = list
                .items
                .into_iter()
                .filter(|e| {
                    e.reason.as_deref() == Some("DatacenterCreated")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(CLUSTER)
                })
                .filter_map(|e| e.note)
                .collect();
            (notes.len() == 2).then_some(notes)
        },
    )
    .await;
    assert!(
        created.iter().any(|n| n.contains(&region1_context)),
        "{created:?}"
    );

    // Renaming dc2 (one added, one removed in one change) is refused: nothing is deleted.
    let mut renamed = cluster.clone();
    renamed["spec"]["cassandra"]["datacenters"][1]["metadata"]["name"] = "dc3".into();
    apply(&clusters, CLUSTER, renamed).await;
    wait_degraded(&clusters, CLUSTER, "DatacentersAddedAndRemoved", "dc3").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(datacenter(&region1, "dc2").await.is_some(), "dc2 kept");
    assert!(
        datacenter(&region1, "dc3").await.is_none(),
        "dc3 not created"
    );

    // Back to the old spec, then delete: the seed slices go with the datacenters.
    apply(&clusters, CLUSTER, cluster).await;
    delete_cluster(&clusters).await;
    assert!(slice_addresses(hub, dc1_slice).await.is_none());
    assert!(slice_addresses(&region1, dc2_slice).await.is_none());
    running.stop().await;
}

#[test]
fn the_adopt_annotation_takes_over_an_existing_datacenter() {
    run(adopt_existing());
}

async fn adopt_existing() {
    let running = Running::start().await;
    let (sim, hub) = (&running.sim, &running.hub);
    let region1 = sim.client(1).await.expect("region 1 client");
    let region1_context = sim.context_name(1);
    // dc2 exists in region 1, made by someone else (no Federator labels).
    let existing = Api::<CassandraDatacenter>::namespaced(region1.clone(), NS);
    apply(
        &existing,
        "dc2",
        serde_json::json!({
            "apiVersion": "cassandra.datastax.com/v1beta1", "kind": "CassandraDatacenter",
            "metadata": {"name": "dc2", "namespace": NS},
            "spec": {"clusterName": CLUSTER, "serverType": "cassandra", "serverVersion": "4.1.5",
                     "size": 1, "storageConfig": {"cassandraDataVolumeClaimSpec": {
                         "storageClassName": "standard", "accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "5Gi"}}}}}
        }),
    )
    .await;
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    let mut cluster = two_datacenters(3, &region1_context);
    apply(&clusters, CLUSTER, cluster.clone()).await;
    wait_degraded(&clusters, CLUSTER, "Conflict", "dc2").await;
    assert_eq!(
        datacenter(&region1, "dc2").await.map(|dc| dc.spec.size),
        Some(1)
    );

    cluster["metadata"]["annotations"] =
        serde_json::json!({"federator.k8ssandra.io/adopt": "true"});
    apply(&clusters, CLUSTER, cluster).await;
    let adopted = wait_for(
        "dc2 adopted and scaled",
        Duration::from_secs(30),
        || async { datacenter(&region1, "dc2").await.filter(|dc| dc.spec.size == 3) },
    )
    .await;
    let labels = adopted.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.get("k8ssandra.io/cluster-name").map(String::as_str),
        Some(CLUSTER)
    );
    wait_for("Degraded cleared", Duration::from_secs(30), || async {
        let status = k8ssandra_cluster_status(&clusters).await?;
        condition(&status, "Degraded").filter(|(s, _, _)| s == "False")
    })
    .await;
    running.stop().await;
}

#[test]
fn initial_tokens_and_vector_configuration_reach_each_region_and_go_with_the_cluster() {
    run(initial_tokens());
}

/// A ConfigMap's entries, if it exists.
async fn config_map_entries(client: &Client, name: &str) -> Option<Vec<(String, String)>> {
    let api = Api::<ConfigMap>::namespaced(client.clone(), NS);
    let config_map = bounded("get ConfigMap", api.get_opt(name)).await.expect("get ConfigMap")?;
    Some(config_map.data.unwrap_or_default().into_iter().collect())
}

async fn initial_tokens() {
    let running = Running::start().await;
    let (sim, hub) = (&running.sim, &running.hub);
    let region1 = sim.client(1).await.expect("region 1 client");
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    let mut cluster = two_datacenters_sized(3, 3, &sim.context_name(1));
    cluster["spec"]["cassandra"]["config"] =
        serde_json::json!({"cassandraYaml": {"num_tokens": 4}});
    cluster["spec"]["cassandra"]["telemetry"] = serde_json::json!({"vector": {"enabled": true}});
    apply(&clusters, CLUSTER, cluster.clone()).await;
    wait_datacenter_ready(&region1, "dc2", "region 1").await;

    // Vector's configuration, where the datacenter mounts it.
    let vector = config_map_entries(&region1, "demo-dc2-cass-vector")
        .await
        .expect("dc2's Vector ConfigMap in region 1");
    assert!(
        vector
            .iter()
            .any(|(key, toml)| key == "vector.toml" && toml.contains("[sinks.console_log]")),
        "{vector:?}"
    );

    let entries = config_map_entries(&region1, "demo-dc2-per-node-config")
        .await
        .expect("dc2's per-node ConfigMap in region 1");
    let pods = Api::<Pod>::namespaced(region1.clone(), NS);
    let pod_names: Vec<String> = bounded("list pods", pods.list(&ListParams::default()))
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter_map(|pod| pod.metadata.name)
        .collect();
    assert_eq!(entries.len(), 3, "the first RF pods: {entries:?}");
    let mut tokens = Vec::new();
    for (key, value) in &entries {
        let pod = key.strip_suffix("_cassandra.yaml").expect("a pod's cassandra.yaml");
        assert!(
            pod_names.iter().any(|p| p == pod),
            "{pod} among {pod_names:?}"
        );
        let listed = value.trim().strip_prefix("initial_token: ").expect(value);
        tokens.extend(listed.split(',').map(str::to_string));
    }
    assert_eq!(tokens.len(), 12, "num_tokens × RF: {tokens:?}");

    let dc2 = datacenter(&region1, "dc2").await.expect("dc2");
    let template = dc2.spec.pod_template_spec.expect("a pod template");
    assert!(
        template["metadata"]["annotations"]["k8ssandra.io/per-node-config-hash"].is_string(),
        "{template}"
    );
    assert!(
        template["spec"]["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .any(|v| v["configMap"]["name"] == "demo-dc2-per-node-config"),
        "{template}"
    );
    let dc1_entries = config_map_entries(hub, "demo-dc1-per-node-config")
        .await
        .expect("dc1's per-node ConfigMap in the hub");
    assert!(
        dc1_entries.iter().all(|(_, value)| !tokens.iter().any(|t| value.contains(t.as_str()))),
        "no token given twice"
    );

    // Vector turned off: dc2 no longer mounts its configuration, which goes.
    cluster["spec"]["cassandra"]["telemetry"] = serde_json::json!({"vector": {"enabled": false}});
    apply(&clusters, CLUSTER, cluster).await;
    wait_for(
        "dc2's Vector ConfigMap deleted",
        Duration::from_secs(20),
        || async {
            config_map_entries(&region1, "demo-dc2-cass-vector").await.is_none().then_some(())
        },
    )
    .await;
    // The ConfigMap goes with the update that stops mounting it.
    wait_for(
        "dc2 no longer mounting Vector's configuration",
        Duration::from_secs(20),
        || async {
            let volumes = datacenter(&region1, "dc2")
                .await
                .ok_or("no dc2")?
                .spec
                .storage_config
                .additional_volumes
                .unwrap_or_default();
            match volumes.iter().all(|v| v.name != "vector-config") {
                true => Ok(()),
                false => Err(format!("{volumes:?}")),
            }
        },
    )
    .await;
    assert!(
        config_map_entries(&region1, "demo-dc2-per-node-config").await.is_some(),
        "the per-node config stays"
    );

    delete_cluster(&clusters).await;
    assert!(config_map_entries(&region1, "demo-dc2-per-node-config").await.is_none());
    assert!(config_map_entries(hub, "demo-dc1-per-node-config").await.is_none());
    assert!(config_map_entries(&region1, "demo-dc2-cass-vector").await.is_none());
    running.stop().await;
}

#[test]
fn a_users_per_node_config_map_is_awaited_and_its_edits_restart_the_pods_at_once() {
    run(user_per_node_config());
}

/// dc2's pod-template hash of its per-node config, once dc2 exists.
async fn per_node_config_hash(client: &Client) -> Option<String> {
    let template = datacenter(client, "dc2").await?.spec.pod_template_spec?;
    template["metadata"]["annotations"]["k8ssandra.io/per-node-config-hash"]
        .as_str()
        .map(str::to_string)
}

async fn user_per_node_config() {
    let running = Running::start().await;
    let (sim, hub) = (&running.sim, &running.hub);
    let region1 = sim.client(1).await.expect("region 1 client");
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    let mut cluster = two_datacenters(1, &sim.context_name(1));
    cluster["spec"]["cassandra"]["datacenters"][1]["perNodeConfigMapRef"] =
        serde_json::json!({"name": "dc2-per-node"});
    apply(&clusters, CLUSTER, cluster).await;

    // Without its ConfigMap dc2 waits, and the status says what to create where.
    wait_datacenter_ready(hub, "dc1", "the hub").await;
    let waiting = wait_for(
        "the status names the missing ConfigMap",
        Duration::from_secs(20),
        || async {
            let status = k8ssandra_cluster_status(&clusters).await?;
            status.conditions?.into_iter().map(|c| c.message).find(|m| m.contains("dc2-per-node"))
        },
    )
    .await;
    assert!(waiting.contains("create it there"), "{waiting}");
    assert!(datacenter(&region1, "dc2").await.is_none());

    let config_maps = Api::<ConfigMap>::namespaced(region1.clone(), NS);
    let config_map = |token: &str| {
        serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "dc2-per-node", "namespace": NS},
            "data": {"demo-dc2-default-sts-0_cassandra.yaml": format!("initial_token: {token}")}
        })
    };
    apply(&config_maps, "dc2-per-node", config_map("1")).await;
    let first = wait_for(
        "dc2 created with its per-node config's hash",
        Duration::from_secs(20),
        || async { per_node_config_hash(&region1).await },
    )
    .await;

    // An edit reaches the pods by itself, through the ConfigMap's watch: nothing else changes
    // and the next steady re-look is minutes away.
    let edited = Instant::now();
    apply(&config_maps, "dc2-per-node", config_map("2")).await;
    wait_for(
        "dc2's hash follows the ConfigMap",
        Duration::from_secs(20),
        || async { per_node_config_hash(&region1).await.filter(|hash| *hash != first) },
    )
    .await;
    eprintln!(
        "measured: dc2's pods got the edited per-node config {:?} after the edit",
        edited.elapsed()
    );
    running.stop().await;
}

#[test]
fn fields_federator_does_not_act_on_yet_are_named_in_status_until_removed() {
    run(fields_not_acted_on());
}

async fn fields_not_acted_on() {
    let running = Running::start().await;
    let clusters = Api::<K8ssandraCluster>::namespaced(running.hub.clone(), NS);
    let mut cluster = two_datacenters(1, &running.sim.context_name(1));
    // Medusa gets no backup volume (podStorage); Reaper's JMX login is not used. purgeBackups
    // (on unless turned off) is acted on: the daily purge schedule.
    cluster["spec"]["medusa"] = serde_json::json!({"storageProperties": {
        "storageProvider": "s3", "credentialsType": "role-based", "bucketName": "backups",
        "podStorage": {"size": "10Gi"}}});
    cluster["spec"]["reaper"] = serde_json::json!({"jmxUserSecretRef": {"name": "reaper-jmx"}});
    apply(&clusters, CLUSTER, cluster.clone()).await;
    let message = wait_for(
        "FieldsNotActedOn names spec.medusa.storageProperties.podStorage and spec.reaper.jmxUserSecretRef",
        Duration::from_secs(20),
        || async {
            let status = k8ssandra_cluster_status(&clusters).await?;
            let (state, _, message) = condition(&status, "FieldsNotActedOn")?;
            (state == "True" && message.contains("spec.reaper.jmxUserSecretRef")).then_some(message)
        },
    )
    .await;
    assert!(
        message.contains("spec.medusa.storageProperties.podStorage"),
        "{message}"
    );
    assert!(!message.contains("purgeBackups"), "{message}");

    // Once neither is set, the condition goes.
    cluster["spec"]
        .as_object_mut()
        .expect("spec")
        .retain(|key, _| key != "medusa" && key != "reaper");
    apply(&clusters, CLUSTER, cluster).await;
    wait_for(
        "FieldsNotActedOn removed",
        Duration::from_secs(20),
        || async {
            let status = k8ssandra_cluster_status(&clusters).await?;
            condition(&status, "FieldsNotActedOn").is_none().then_some(())
        },
    )
    .await;
    delete_cluster(&clusters).await;
    running.stop().await;
}

#[test]
fn an_upgrade_from_3_11_keeps_num_tokens_and_a_num_tokens_change_is_refused() {
    run(num_tokens_kept());
}

/// The server version and `num_tokens` of a datacenter's CassandraDatacenter.
async fn version_and_num_tokens(
    client: &Client,
    name: &str,
) -> Option<(String, serde_json::Value)> {
    let dc = datacenter(client, name).await?;
    let num_tokens = dc.spec.config?["cassandra-yaml"]["num_tokens"].clone();
    Some((dc.spec.server_version, num_tokens))
}

/// Waits until datacenter `name` runs `version` with `num_tokens`.
async fn wait_version(client: &Client, name: &str, version: &str, num_tokens: u64) {
    wait_for(
        &format!("{name} at {version} with num_tokens {num_tokens}"),
        Duration::from_secs(20),
        || async {
            let (found, tokens) = version_and_num_tokens(client, name).await?;
            (found == version).then(|| assert_eq!(tokens, num_tokens, "{name} at {version}"))
        },
    )
    .await;
}

async fn num_tokens_kept() {
    let running = Running::start().await;
    let (sim, hub) = (&running.sim, &running.hub);
    let region1 = sim.client(1).await.expect("region 1 client");
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    let mut cluster = two_datacenters(1, &sim.context_name(1));
    cluster["spec"]["cassandra"]["serverVersion"] = "3.11.17".into();
    apply(&clusters, CLUSTER, cluster.clone()).await;
    wait_datacenter_ready(&region1, "dc2", "region 1").await;
    wait_version(hub, "dc1", "3.11.17", 256).await;
    wait_version(&region1, "dc2", "3.11.17", 256).await;

    // 3.11 → 4.1 with num_tokens never set: 4.x's default is 16, but both keep 256.
    cluster["spec"]["cassandra"]["serverVersion"] = "4.1.5".into();
    apply(&clusters, CLUSTER, cluster.clone()).await;
    wait_version(hub, "dc1", "4.1.5", 256).await;
    wait_version(&region1, "dc2", "4.1.5", 256).await;

    // Asking dc1 for 16 vnodes is refused for dc1 alone: the next upgrade still reaches dc2.
    cluster["spec"]["cassandra"]["datacenters"][0]["config"] =
        serde_json::json!({"cassandraYaml": {"num_tokens": 16}});
    cluster["spec"]["cassandra"]["serverVersion"] = "4.1.6".into();
    apply(&clusters, CLUSTER, cluster.clone()).await;
    wait_degraded(
        &clusters,
        CLUSTER,
        "NumTokensChangeRefused",
        "datacenter dc1: config.cassandraYaml.num_tokens cannot change from 256 to 16",
    )
    .await;
    wait_version(&region1, "dc2", "4.1.6", 256).await;
    assert_eq!(
        version_and_num_tokens(hub, "dc1").await,
        Some(("4.1.5".to_string(), serde_json::json!(256))),
        "dc1 left as it runs"
    );

    // Taking the value out again lets dc1 follow, with the num_tokens it runs with.
    cluster["spec"]["cassandra"]["datacenters"][0].as_object_mut().map(|dc| dc.remove("config"));
    apply(&clusters, CLUSTER, cluster).await;
    wait_version(hub, "dc1", "4.1.6", 256).await;
    wait_for("Degraded cleared", Duration::from_secs(20), || async {
        let status = k8ssandra_cluster_status(&clusters).await?;
        (condition(&status, "Degraded")?.0 == "False").then_some(())
    })
    .await;
    running.stop().await;
}
