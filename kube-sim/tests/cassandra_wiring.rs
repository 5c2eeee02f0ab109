//! The cass-operator stand-in and the Cassandra model together, through kube-sim's real
//! interfaces: CassandraDatacenters written with a kube client, Cassandra seen and poked through
//! the admin API over HTTP.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube_sim::{Sim, SimBuilder};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;
use support::{dc_resource, wait_for};

fn condition(dc: &Value, kind: &str) -> Option<String> {
    dc.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str().map(str::to_string))
}

struct World {
    sim: Sim,
    admin: std::net::SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl World {
    async fn start(clusters: usize, force_decommission: bool) -> World {
        let sim = SimBuilder::new()
            .clusters(clusters)
            .cass_operator(true)
            .dc_ready_after(Duration::from_millis(100))
            .force_decommission(force_decommission)
            .start()
            .await
            .expect("starting kube-sim");
        let listener =
            kube_sim::admin::bind("127.0.0.1:0".parse().expect("addr")).await.expect("admin bind");
        let admin = listener.local_addr().expect("admin address");
        let server = tokio::spawn(kube_sim::admin::serve(listener, sim.clone()));
        World { sim, admin, server }
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let mut stream = tokio::net::TcpStream::connect(self.admin).await.expect("connect admin");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = response.split("\r\n\r\n").nth(1).unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    async fn datacenters(&self, cluster: usize) -> Api<DynamicObject> {
        let client = self.sim.client(cluster).await.expect("client");
        Api::namespaced_with(client, "default", &dc_resource())
    }

    async fn pods(&self, cluster: usize) -> Api<Pod> {
        Api::namespaced(self.sim.client(cluster).await.expect("client"), "default")
    }

    async fn create_dc(&self, cluster: usize, name: &str, spec: Value) {
        let dc: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "cassandra.datastax.com/v1beta1",
            "kind": "CassandraDatacenter",
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
        }))
        .expect("dc");
        self.datacenters(cluster)
            .await
            .create(&PostParams::default(), &dc)
            .await
            .expect("creating the datacenter");
    }

    /// The datacenter once Ready for its current generation.
    async fn ready(&self, cluster: usize, name: &str) -> Value {
        let dcs = self.datacenters(cluster).await;
        wait_for(&format!("{name} Ready"), || async {
            let dc = serde_json::to_value(dcs.get(name).await.ok()?).ok()?;
            (dc.pointer("/status/observedGeneration")? == dc.pointer("/metadata/generation")?
                && dc.pointer("/status/cassandraOperatorProgress")? == "Ready"
                && condition(&dc, "Ready").as_deref() == Some("True"))
            .then_some(dc)
        })
        .await
    }

    async fn ring(&self, cluster: &str) -> Vec<Value> {
        let (status, ring) = self
            .call(
                "GET",
                &format!("/cassandra/clusters/{cluster}/ring"),
                Value::Null,
            )
            .await;
        assert_eq!(status, 200, "{ring}");
        ring["ring"].as_array().cloned().unwrap_or_default()
    }

    async fn stop(self) {
        self.server.abort();
        self.sim.shutdown().await;
    }
}

fn pod_ip(pod: &Pod) -> String {
    pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default()
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datacenter_becomes_nodes_at_its_pods_addresses_and_its_superuser_logs_in() {
    let world = World::start(1, true).await;
    world
        .create_dc(
            0,
            "dc1",
            json!({"clusterName": "Demo Cluster", "datacenterName": "east",
                                    "serverType": "cassandra", "serverVersion": "4.1.5", "size": 3,
                                    "racks": [{"name": "r1"}, {"name": "r2"}]}),
        )
        .await;
    let dc = world.ready(0, "dc1").await;
    assert!(dc.pointer("/status/superUserUpserted").is_some());

    let pods = world.pods(0).await;
    let listed = pods
        // cass-operator's labels: CleanLabelValue of the cluster name and of the object's name
        // (not of datacenterName).
        .list(&ListParams::default().labels(
            "cassandra.datastax.com/cluster=DemoCluster,cassandra.datastax.com/datacenter=dc1",
        ))
        .await
        .expect("pods");
    assert_eq!(listed.items.len(), 3);
    let ring = world.ring("Demo%20Cluster").await;
    assert_eq!(ring.len(), 3);
    for pod in &listed.items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ip = pod_ip(pod);
        let address: std::net::Ipv4Addr = ip.parse().expect("an IPv4 pod IP");
        assert!(address.is_loopback() && address != std::net::Ipv4Addr::LOCALHOST);
        let node = ring.iter().find(|n| n["pod"] == name.as_str()).expect("a node per pod");
        assert_eq!(node["ip"], ip.as_str());
        assert_eq!(node["datacenter"], "east");
        assert_eq!(node["status"], "UN");
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert_eq!(node["rack"], labels["cassandra.datastax.com/rack"].as_str());
        assert_eq!(labels["cassandra.datastax.com/node-state"], "Started");
        let status = &dc["status"]["nodeStatuses"][&name];
        assert_eq!(status["hostID"], node["hostId"]);
        assert_eq!(status["ip"], ip.as_str());
        let owner = pod.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(owner.first().map(|o| o.kind.as_str()), Some("StatefulSet"));
        assert!(pod_ready(pod));
    }
    let statefulsets: Api<StatefulSet> =
        Api::namespaced(world.sim.client(0).await.expect("client"), "default");
    let r1 = statefulsets.get("demo-cluster-east-r1-sts").await.expect("rack r1's StatefulSet");
    assert_eq!(r1.spec.and_then(|s| s.replicas), Some(2));

    // The superuser Secret cass-operator generates logs in through the datacenter.
    let secrets: Api<Secret> =
        Api::namespaced(world.sim.client(0).await.expect("client"), "default");
    let secret = secrets.get("demo-cluster-superuser").await.expect("generated superuser secret");
    let data = secret.data.unwrap_or_default();
    let text = |key: &str| String::from_utf8(data[key].0.clone()).expect("utf-8");
    assert_eq!(text("username"), "demo-cluster-superuser");
    let login = json!({"username": text("username"), "password": text("password")});
    let (status, role) = world
        .call(
            "POST",
            "/cassandra/clusters/Demo%20Cluster/datacenters/east/login",
            login,
        )
        .await;
    assert_eq!(
        (status, role["superuser"].as_bool()),
        (200, Some(true)),
        "{role}"
    );
    let wrong = json!({"username": text("username"), "password": "nope"});
    let (status, refused) = world
        .call(
            "POST",
            "/cassandra/clusters/Demo%20Cluster/datacenters/east/login",
            wrong,
        )
        .await;
    assert_eq!(status, 401, "{refused}");
    assert_eq!(refused["exception"], "AuthenticationException");

    // A pod deleted by hand: its node is down in the ring until the pod is back, at a new
    // address, and Cassandra restarted in it.
    let victim = "demo-cluster-east-r1-sts-1";
    let old_ip = pod_ip(&pods.get(victim).await.expect("pod"));
    pods.delete(victim, &DeleteParams::default()).await.expect("deleting a pod");
    let back = wait_for("the pod back and Ready", || async {
        let pod = pods.get(victim).await.ok()?;
        (pod_ready(&pod) && pod_ip(&pod) != old_ip).then_some(pod)
    })
    .await;
    let ring = world.ring("Demo%20Cluster").await;
    let node = ring.iter().find(|n| n["pod"] == victim).expect("the node");
    assert_eq!(node["ip"], pod_ip(&back).as_str());
    assert_eq!(node["status"], "UN");
    assert_eq!(ring.len(), 3, "the same node came back, not a new one");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_datacenters_in_two_regions_form_one_cluster_with_the_system_replication_asked() {
    let world = World::start(2, true).await;
    let spec = |dc: &str| {
        json!({"clusterName": "multi", "serverType": "cassandra", "serverVersion": "4.0.17",
               "size": 2, "datacenterName": dc,
               "config": {"cassandra-env-sh": {"additional-jvm-opts": [
                   "-Dcassandra.system_distributed_replication=dc1:2,dc2:2"]}}})
    };
    world.create_dc(0, "dc1", spec("dc1")).await;
    world.ready(0, "dc1").await;
    world.create_dc(1, "dc2", spec("dc2")).await;
    world.ready(1, "dc2").await;

    let ring = world.ring("multi").await;
    let mut datacenters: Vec<&str> = ring.iter().filter_map(|n| n["datacenter"].as_str()).collect();
    datacenters.sort_unstable();
    assert_eq!(datacenters, ["dc1", "dc1", "dc2", "dc2"]);
    let mut addresses: Vec<&str> = ring.iter().filter_map(|n| n["ip"].as_str()).collect();
    addresses.sort_unstable();
    addresses.dedup();
    assert_eq!(addresses.len(), 4, "addresses are unique across regions");
    let contexts: Vec<&str> = ring.iter().filter_map(|n| n["context"].as_str()).collect();
    assert!(contexts.contains(&"sim-0") && contexts.contains(&"sim-1"));

    let (status, keyspaces) =
        world.call("GET", "/cassandra/clusters/multi/keyspaces", Value::Null).await;
    assert_eq!(status, 200);
    let system_auth = keyspaces["keyspaces"]
        .as_array()
        .and_then(|all| all.iter().find(|k| k["name"] == "system_auth"))
        .expect("system_auth");
    assert_eq!(system_auth["replication"]["dc1"], "2");
    assert_eq!(system_auth["replication"]["dc2"], "2");

    // Unknown things are 404s with Cassandra's words.
    let (status, missing) = world.call("GET", "/cassandra/clusters/nope/ring", Value::Null).await;
    assert_eq!(status, 404, "{missing}");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_waits_while_a_keyspace_needs_the_node_and_proceeds_once_altered() {
    let world = World::start(1, false).await;
    world
        .create_dc(
            0,
            "dc1",
            json!({"clusterName": "shrink", "serverType": "cassandra",
                                    "serverVersion": "4.1.5", "size": 4}),
        )
        .await;
    world.ready(0, "dc1").await;
    let (status, created) = world
        .call(
            "POST",
            "/cassandra/clusters/shrink/keyspaces",
            json!({"name": "app", "replication": {"class": "NetworkTopologyStrategy", "dc1": 4}}),
        )
        .await;
    assert_eq!(status, 200, "{created}");

    let dcs = world.datacenters(0).await;
    dcs.patch(
        "dc1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 3}})),
    )
    .await
    .expect("scaling down");
    let pods = world.pods(0).await;
    let leaving = "shrink-dc1-default-sts-3";
    let stuck = wait_for("the refused decommission reported", || async {
        let dc = serde_json::to_value(dcs.get("dc1").await.ok()?).ok()?;
        let pod = pods.get(leaving).await.ok()?;
        let label = pod.metadata.labels.as_ref()?.get("cassandra.datastax.com/node-state")?.clone();
        (condition(&dc, "ScalingDown").as_deref() == Some("True") && label == "Decommissioning")
            .then_some(dc)
    })
    .await;
    assert_eq!(stuck["status"]["cassandraOperatorProgress"], "Updating");
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(world.sim.client(0).await.expect("client"), "default");
    let notes = wait_for("the Events of the retry loop", || async {
        let listed = events.list(&ListParams::default()).await.ok()?;
        let retried = listed.items.iter().any(|e| {
            e.action.as_deref() == Some("DecommissioningNode")
                && e.reason.as_deref() == Some(&format!("Decommissioning node {leaving}"))
        });
        let why: Vec<String> = listed
            .items
            .iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .filter_map(|e| e.note.clone())
            .collect();
        (retried && !why.is_empty()).then_some(why)
    })
    .await;
    assert!(
        notes
            .iter()
            .any(|n| n
                .contains("Not enough live nodes to maintain replication factor in keyspace app")),
        "{notes:?}"
    );
    assert_eq!(world.ring("shrink").await.len(), 4, "the node stays");

    let (status, altered) = world
        .call(
            "PUT",
            "/cassandra/clusters/shrink/keyspaces/app",
            json!({"replication": {"class": "NetworkTopologyStrategy", "dc1": 3}}),
        )
        .await;
    assert_eq!(status, 200, "{altered}");
    let done = world.ready(0, "dc1").await;
    assert_eq!(condition(&done, "ScalingDown").as_deref(), Some("False"));
    assert!(done["status"]["nodeStatuses"].get(leaving).is_none());
    assert!(pods.get_opt(leaving).await.expect("pod lookup").is_none());
    let ring = world.ring("shrink").await;
    assert_eq!(ring.len(), 3);
    assert!(ring.iter().all(|n| n["pod"] != leaving));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_nodes_turn_their_pods_not_ready_and_local_quorum_unavailable() {
    let world = World::start(1, true).await;
    world
        .create_dc(
            0,
            "dc1",
            json!({"clusterName": "flaky", "serverType": "cassandra",
                                    "serverVersion": "4.1.5", "size": 3}),
        )
        .await;
    world.ready(0, "dc1").await;
    let calls = [
        (
            "POST",
            "/cassandra/clusters/flaky/keyspaces",
            json!({"name": "app", "replication": {"class": "NetworkTopologyStrategy", "dc1": 3}}),
        ),
        (
            "POST",
            "/cassandra/clusters/flaky/keyspaces/app/tables",
            json!({"name": "kv"}),
        ),
        (
            "POST",
            "/cassandra/clusters/flaky/datacenters/dc1/write",
            json!({"keyspace": "app", "table": "kv", "consistency": "LOCAL_QUORUM", "rows": 20}),
        ),
    ];
    for (method, path, body) in calls {
        let (status, answer) = world.call(method, path, body).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    let (status, counts) =
        world.call("GET", "/cassandra/clusters/flaky/row-counts", Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(counts["perDatacenter"]["dc1"]["app.kv"], 20);

    let pods = world.pods(0).await;
    for pod in ["flaky-dc1-default-sts-0", "flaky-dc1-default-sts-1"] {
        let (status, answer) = world
            .call(
                "POST",
                &format!("/cassandra/nodes/sim-0/default/{pod}/stop"),
                Value::Null,
            )
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    wait_for("both pods not Ready", || async {
        let listed = pods.list(&ListParams::default()).await.ok()?;
        let not_ready = listed.items.iter().filter(|p| !pod_ready(p)).count();
        (not_ready == 2).then_some(())
    })
    .await;
    let read =
        json!({"keyspace": "app", "table": "kv", "key": "key-1", "consistency": "LOCAL_QUORUM"});
    let (status, unavailable) = world
        .call(
            "POST",
            "/cassandra/clusters/flaky/datacenters/dc1/read",
            read.clone(),
        )
        .await;
    assert_eq!(status, 503, "{unavailable}");
    assert_eq!(unavailable["exception"], "UnavailableException");
    assert_eq!(
        unavailable["error"],
        "Cannot achieve consistency level LOCAL_QUORUM"
    );
    assert_eq!(
        (
            unavailable["required"].as_u64(),
            unavailable["alive"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let one = json!({"keyspace": "app", "table": "kv", "key": "key-1", "consistency": "ONE"});
    let (status, value) = world
        .call(
            "POST",
            "/cassandra/clusters/flaky/datacenters/dc1/read",
            one,
        )
        .await;
    assert_eq!(
        (status, value["value"].as_str()),
        (200, Some("value-1")),
        "{value}"
    );

    // The Management API fault is kept on the node for its HTTP handler to obey.
    let (status, _) = world
        .call(
            "POST",
            "/cassandra/nodes/sim-0/default/flaky-dc1-default-sts-2/management-fault",
            json!({"status": 500, "delayMs": 250}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, node) = world
        .call(
            "GET",
            "/cassandra/nodes/sim-0/default/flaky-dc1-default-sts-2",
            Value::Null,
        )
        .await;
    assert_eq!(
        node["managementFault"],
        json!({"status": 500, "delayMs": 250})
    );
    let (status, bad) = world
        .call(
            "POST",
            "/cassandra/nodes/sim-0/default/flaky-dc1-default-sts-2/management-fault",
            json!({"status": 1000}),
        )
        .await;
    assert_eq!(status, 400, "{bad}");

    // Started again: Ready again, LOCAL_QUORUM answers.
    let (status, _) = world
        .call(
            "POST",
            "/cassandra/nodes/sim-0/default/flaky-dc1-default-sts-0/start",
            Value::Null,
        )
        .await;
    assert_eq!(status, 200);
    wait_for("one pod Ready again", || async {
        let pod = pods.get("flaky-dc1-default-sts-0").await.ok()?;
        pod_ready(&pod).then_some(())
    })
    .await;
    let (status, value) = world
        .call(
            "POST",
            "/cassandra/clusters/flaky/datacenters/dc1/read",
            read,
        )
        .await;
    assert_eq!(
        (status, value["value"].as_str()),
        (200, Some("value-1")),
        "{value}"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_keeps_the_pod_not_ready_and_a_refused_decommission_holds_the_deletion() {
    let world = World::start(2, false).await;
    let spec = |dc: &str| {
        json!({"clusterName": "pair", "serverType": "cassandra", "serverVersion": "4.1.5",
               "size": 1, "datacenterName": dc,
               "config": {"cassandra-env-sh": {"additional-jvm-opts": [
                   "-Dcassandra.system_distributed_replication=dc1:1"]}}})
    };
    world.create_dc(0, "dc1", spec("dc1")).await;
    world.ready(0, "dc1").await;

    // With dc1's only node stopped, dc2's node finds no peer to bootstrap from.
    let (status, _) = world
        .call(
            "POST",
            "/cassandra/nodes/sim-0/default/pair-dc1-default-sts-0/stop",
            Value::Null,
        )
        .await;
    assert_eq!(status, 200);
    world.create_dc(1, "dc2", spec("dc2")).await;
    let pods = world.pods(1).await;
    let failed = wait_for("dc2's start failing", || async {
        let pod = pods.get("pair-dc2-default-sts-0").await.ok()?;
        let container = pod.status.as_ref()?.container_statuses.as_ref()?.first()?.clone();
        let message = container.last_state?.terminated?.message?;
        (container.restart_count > 0).then_some(message)
    })
    .await;
    assert_eq!(failed, "Unable to gossip with any peers");
    let dcs = world.datacenters(1).await;
    let dc2 = serde_json::to_value(dcs.get("dc2").await.expect("dc2")).expect("json");
    assert_eq!(dc2["status"]["cassandraOperatorProgress"], "Updating");
    assert_ne!(condition(&dc2, "Ready").as_deref(), Some("True"));
    assert_eq!(
        dc2["status"]["failedStarts"],
        json!(["pair-dc2-default-sts-0"])
    );
    assert!(!pod_ready(
        &pods.get("pair-dc2-default-sts-0").await.expect("pod")
    ));

    // dc1 back: the retry works.
    let (status, _) = world
        .call(
            "POST",
            "/cassandra/nodes/sim-0/default/pair-dc1-default-sts-0/start",
            Value::Null,
        )
        .await;
    assert_eq!(status, 200);
    world.ready(1, "dc2").await;

    // Deleted with decommission-on-delete while a keyspace still replicates to it: refused,
    // the datacenter stays with Decommission and ScalingDown; altered, it goes.
    let (status, answer) = world
        .call("POST", "/cassandra/clusters/pair/keyspaces",
              json!({"name": "app", "replication": {"class": "NetworkTopologyStrategy", "dc1": 1, "dc2": 1}}))
        .await;
    assert_eq!(status, 200, "{answer}");
    dcs.patch(
        "dc2",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {
        "cassandra.datastax.com/decommission-on-delete": "true"}}})),
    )
    .await
    .expect("annotating");
    dcs.delete("dc2", &DeleteParams::default()).await.expect("deleting dc2");
    wait_for("the decommission refused", || async {
        let dc = serde_json::to_value(dcs.get("dc2").await.ok()?).ok()?;
        (condition(&dc, "Decommission").as_deref() == Some("True")
            && condition(&dc, "ScalingDown").as_deref() == Some("True"))
        .then_some(())
    })
    .await;
    assert_eq!(world.ring("pair").await.len(), 2);
    let (status, _) = world
        .call(
            "PUT",
            "/cassandra/clusters/pair/keyspaces/app",
            json!({"replication": {"class": "NetworkTopologyStrategy", "dc1": 1}}),
        )
        .await;
    assert_eq!(status, 200);
    wait_for("dc2 gone", || async {
        dcs.get_opt("dc2").await.ok()?.is_none().then_some(())
    })
    .await;
    let ring = world.ring("pair").await;
    assert_eq!(ring.len(), 1, "dc2's node left the ring: {ring:?}");
    assert_eq!(ring[0]["datacenter"], "dc1");
    world.stop().await;
}

/// A raw request to a pod's Management API through its API server's pod proxy, as a control
/// plane in another cluster reaches it; the status and the body as JSON (or text).
async fn management_api(
    world: &World,
    cluster: usize,
    pod: &str,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let client = world.sim.client(cluster).await.expect("client");
    let uri = format!("/api/v1/namespaces/default/pods/{pod}:8080/proxy{path}");
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let request = hyper::Request::builder()
        .method(method)
        .uri(uri)
        .header("Content-Type", "application/json")
        .body(body)
        .expect("request");
    let (status, text) = match client.send(request.map(kube::client::Body::from)).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let bytes = http_body_util::BodyExt::collect(response.into_body())
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            (status, String::from_utf8_lossy(&bytes).to_string())
        }
        Err(error) => panic!("{method} {path} through the pod proxy: {error}"),
    };
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_through_a_datacenter_without_system_auth_fails_until_it_is_replicated_there() {
    let world = World::start(2, true).await;
    // One login for both regions, as k8ssandra-operator replicates the superuser Secret.
    for cluster in 0..2 {
        let secrets: Api<Secret> =
            Api::namespaced(world.sim.client(cluster).await.expect("client"), "default");
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "auth-superuser"},
            "stringData": {"username": "admin", "password": "s3cret-pw"}}))
        .expect("secret");
        secrets.create(&PostParams::default(), &secret).await.expect("superuser Secret");
    }
    // system_auth in dc1 only, as the founding node's flag says.
    let spec = |dc: &str| {
        json!({"clusterName": "auth", "serverType": "cassandra", "serverVersion": "4.0.17",
               "size": 1, "datacenterName": dc, "superuserSecretName": "auth-superuser",
               "config": {"cassandra-env-sh": {"additional-jvm-opts": [
                   "-Dcassandra.system_distributed_replication=dc1:1"]}}})
    };
    world.create_dc(0, "dc1", spec("dc1")).await;
    world.ready(0, "dc1").await;
    world.create_dc(1, "dc2", spec("dc2")).await;
    wait_for("dc2's node in the ring", || async {
        (world.ring("auth").await.len() == 2).then_some(())
    })
    .await;
    let login = |dc: &'static str| {
        let world = &world;
        async move {
            world
                .call(
                    "POST",
                    &format!("/cassandra/clusters/auth/datacenters/{dc}/login"),
                    json!({"username": "admin", "password": "s3cret-pw"}),
                )
                .await
        }
    };
    assert_eq!(login("dc1").await.0, 200, "dc1 holds system_auth");
    let (status, refused) = login("dc2").await;
    assert_eq!(status, 503, "no system_auth replica in dc2: {refused}");
    assert!(refused.to_string().contains("LOCAL_ONE"), "{refused}");

    // The alter, through dc1's Management API behind its API server's pod proxy.
    let dc1_pod = world
        .pods(0)
        .await
        .list(&ListParams::default().labels("cassandra.datastax.com/datacenter=dc1"))
        .await
        .expect("dc1 pods")
        .items
        .into_iter()
        .next()
        .and_then(|p| p.metadata.name)
        .expect("a dc1 pod");
    let (status, answer) = management_api(
        &world,
        0,
        &dc1_pod,
        "POST",
        "/api/v0/ops/keyspace/alter",
        json!({"keyspace_name": "system_auth", "replication_settings": [
            {"dc_name": "dc1", "replication_factor": 1},
            {"dc_name": "dc2", "replication_factor": 1}]}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (_, replication) = management_api(
        &world,
        0,
        &dc1_pod,
        "GET",
        "/api/v0/ops/keyspace/replication?keyspaceName=system_auth",
        Value::Null,
    )
    .await;
    assert_eq!(replication["dc2"], "1", "{replication}");
    // cass-operator's user creation through dc2 now succeeds, and so does the login.
    world.ready(1, "dc2").await;
    let (status, accepted) = login("dc2").await;
    assert_eq!(status, 200, "{accepted}");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_in_a_bucket_can_be_backdated_through_the_admin_api() {
    let world = World::start(1, true).await;
    world
        .create_dc(
            0,
            "dc1",
            json!({"clusterName": "aged", "serverType": "cassandra",
                                    "serverVersion": "4.1.5", "size": 1}),
        )
        .await;
    world.ready(0, "dc1").await;
    let storage = kube_sim::cassandra::StorageLocation::new("bucket", "aged");
    let taken = {
        let model = world.sim.cassandra();
        let mut model = model.lock();
        let summary = model
            .backup(
                &storage,
                "aged",
                "b1",
                &[],
                kube_sim::cassandra::BackupMode::Full,
            )
            .expect("backup");
        summary.start_millis
    };
    let path = "/cassandra/buckets/bucket/aged/backups/b1/backdate";
    let (status, answer) = world.call("POST", path, json!({"days": 3})).await;
    assert_eq!(status, 200, "{answer}");
    let moved = world.sim.cassandra().lock().backup_status(&storage, "b1").expect("b1");
    assert_eq!(moved.start_millis, taken - 3 * 86_400_000);
    let (status, _) = world.call("POST", path, json!({"days": -1})).await;
    assert_eq!(status, 400);
    let missing = "/cassandra/buckets/bucket/aged/backups/nope/backdate";
    let (status, answer) = world.call("POST", missing, json!({"days": 1})).await;
    assert_ne!(status, 200);
    assert!(answer.to_string().contains("does not exist"), "{answer}");
    world.stop().await;
}
