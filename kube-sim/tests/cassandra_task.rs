//! The CassandraTask stand-in, through the Kubernetes API, against the Cassandra model.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::api::{Patch, PatchParams};
use kube::discovery::ApiResource;
use kube_sim::cassandra::{
    Column, ConsistencyLevel, ManagementFault, NodeState, PodRef, Replication,
};
use kube_sim::{Sim, SimBuilder};
use serde_json::{Value, json};

mod support;
use support::{dc_resource, wait_for};

const NS: &str = "default";
const CLUSTER: &str = "demo";
const KEYSPACE: &str = "app";
const TABLE: &str = "events";

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn task_resource() -> ApiResource {
    resource(
        "control.k8ssandra.io",
        "v1alpha1",
        "CassandraTask",
        "cassandratasks",
    )
}

/// kube-sim with the cass-operator stand-ins, with cass-operator's real CRDs when the shared
/// compatibility data is there (the built-in permissive ones otherwise).
async fn start_sim(clusters: usize) -> Sim {
    let mut builder = SimBuilder::new()
        .clusters(clusters)
        .cass_operator(true)
        .dc_ready_after(Duration::from_millis(300));
    let workspace = kube_sim::prerequisites::workspace_root();
    if let Some(compat) = kube_sim::prerequisites::compat_dir(&workspace) {
        builder = builder.crd_dir(compat.join("crds/cass-operator"));
    }
    builder.start().await.expect("starting kube-sim")
}

/// A pod of a datacenter and its node in the model.
#[derive(Debug, Clone)]
struct DcPod {
    name: String,
    rack: String,
    pod_ref: PodRef,
}

/// Creates a CassandraDatacenter of cluster [`CLUSTER`] and waits until the cass-operator
/// stand-in made it Ready (its pods run Cassandra and the superuser exists). The system
/// keyspaces replicate to the datacenter that founds the cluster, as k8ssandra-operator has them
/// (`-Dcassandra.system_distributed_replication`).
async fn create_datacenter(
    sim: &Sim,
    index: usize,
    dc: &str,
    size: usize,
    racks: &[&str],
) -> Vec<DcPod> {
    let racks: Vec<Value> = racks.iter().map(|rack| json!({"name": rack})).collect();
    let spec = json!({"clusterName": CLUSTER, "serverType": "cassandra", "serverVersion": "4.1.5",
                      "size": size, "racks": racks,
                      "config": {"cassandra-env-sh": {"additional-jvm-opts": [
                          format!("-Dcassandra.system_distributed_replication={dc}:{}", size.min(3))]}},
                      "storageConfig": {"cassandraDataVolumeClaimSpec": {"accessModes": ["ReadWriteOnce"],
                                        "resources": {"requests": {"storage": "1Gi"}}}}});
    create_datacenter_with(sim, index, dc, spec).await
}

/// Creates a CassandraDatacenter with this spec and waits until it is Ready; its pods.
async fn create_datacenter_with(sim: &Sim, index: usize, dc: &str, spec: Value) -> Vec<DcPod> {
    let client = sim.client(index).await.expect("client");
    let dcs: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &dc_resource());
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cassandra.datastax.com/v1beta1",
        "kind": "CassandraDatacenter",
        "metadata": {"name": dc, "namespace": NS},
        "spec": spec,
    }))
    .expect("datacenter object");
    dcs.create(&PostParams::default(), &object).await.expect("creating the datacenter");
    wait_ready(sim, index, dc).await
}

/// Waits until the datacenter is Ready at its current generation; its pods.
async fn wait_ready(sim: &Sim, index: usize, dc: &str) -> Vec<DcPod> {
    let client = sim.client(index).await.expect("client");
    let dcs: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &dc_resource());
    let pods: Api<Pod> = Api::namespaced(client, NS);
    let selector = format!("cassandra.datastax.com/datacenter={dc}");
    let context = sim.context_name(index);
    wait_for(&format!("{dc} Ready"), || async {
        let object = serde_json::to_value(dcs.get(dc).await.ok()?).ok()?;
        let generation = object.pointer("/metadata/generation")?;
        let ready = object.pointer("/status/cassandraOperatorProgress")? == "Ready"
            && object.pointer("/status/observedGeneration") == Some(generation);
        if !ready {
            return None;
        }
        let listed = pods.list(&ListParams::default().labels(&selector)).await.ok()?;
        let found: Vec<DcPod> = listed
            .items
            .iter()
            .filter_map(|pod| {
                let name = pod.metadata.name.clone()?;
                pod.status.as_ref()?.pod_ip.as_ref()?;
                Some(DcPod {
                    rack: pod.metadata.labels.as_ref()?.get("cassandra.datastax.com/rack")?.clone(),
                    pod_ref: PodRef::new(&context, NS, &name),
                    name,
                })
            })
            .collect();
        let size = object.pointer("/spec/size").and_then(Value::as_u64)? as usize;
        (found.len() == size).then_some(found)
    })
    .await
}

/// A keyspace replicated as `replication` with one table, and `rows` rows written from dc1.
fn write_rows(sim: &Sim, replication: &Replication, rows: usize) {
    let model = sim.cassandra();
    let mut model = model.lock();
    model.create_keyspace(CLUSTER, KEYSPACE, replication).expect("keyspace");
    model
        .create_table(
            CLUSTER,
            KEYSPACE,
            TABLE,
            vec![
                Column::partition_key("id", "text"),
                Column::regular("v", "text"),
            ],
        )
        .expect("table");
    let values = (0..rows).map(|i| (format!("row-{i}"), format!("value-{i}")));
    model
        .write(
            CLUSTER,
            "dc1",
            KEYSPACE,
            TABLE,
            values,
            ConsistencyLevel::LocalQuorum,
        )
        .expect("rows written");
}

struct Tasks {
    api: Api<DynamicObject>,
}

impl Tasks {
    async fn of(sim: &Sim, index: usize) -> Tasks {
        let client = sim.client(index).await.expect("client");
        Tasks {
            api: Api::namespaced_with(client, NS, &task_resource()),
        }
    }

    async fn create(&self, name: &str, dc: &str, command: &str, args: Value, extra: Value) {
        let mut spec = json!({"datacenter": {"name": dc, "namespace": NS},
                              "jobs": [{"name": format!("{command}-{dc}"), "command": command, "args": args}]});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        let task: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "control.k8ssandra.io/v1alpha1", "kind": "CassandraTask",
            "metadata": {"name": name, "namespace": NS}, "spec": spec,
        }))
        .expect("task object");
        self.api.create(&PostParams::default(), &task).await.expect("creating the task");
    }

    async fn get(&self, name: &str) -> Option<Value> {
        serde_json::to_value(self.api.get_opt(name).await.ok()??).ok()
    }

    async fn wait_completed(&self, name: &str) -> Value {
        wait_for(&format!("task {name} completed"), || async {
            let task = self.get(name).await?;
            task.pointer("/status/completionTime").is_some().then_some(task)
        })
        .await
    }
}

fn condition<'a>(task: &'a Value, kind: &str) -> Option<&'a Value> {
    task.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == kind)
}

fn condition_status(task: &Value, kind: &str) -> Option<String> {
    condition(task, kind).and_then(|c| c["status"].as_str()).map(str::to_string)
}

fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.pointer("/metadata/labels")?.get(key)?.as_str()
}

fn pod_status<'a>(task: &'a Value, pod: &str) -> Option<&'a Value> {
    task.pointer("/status/podStatuses")?.get(pod)
}

fn count_in(sim: &Sim, dc: &str) -> usize {
    sim.cassandra()
        .lock()
        .count(CLUSTER, dc, KEYSPACE, TABLE, ConsistencyLevel::LocalOne)
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_task_streams_the_earlier_rows_to_a_datacenter_added_to_replication() {
    let sim = start_sim(2).await;
    create_datacenter(&sim, 0, "dc1", 3, &["r1"]).await;
    write_rows(&sim, &Replication::network_topology([("dc1", 3)]), 50);
    let dc2 = create_datacenter(&sim, 1, "dc2", 3, &["r1", "r2", "r3"]).await;
    sim.cassandra()
        .lock()
        .alter_keyspace(
            CLUSTER,
            KEYSPACE,
            &Replication::network_topology([("dc1", 3), ("dc2", 3)]),
        )
        .expect("dc2 added to the replication");
    assert_eq!(count_in(&sim, "dc2"), 0, "dc2 has none of the earlier rows");

    let tasks = Tasks::of(&sim, 1).await;
    tasks
        .create(
            "rebuild-dc2",
            "dc2",
            "rebuild",
            json!({"source_datacenter": "dc1"}),
            json!({}),
        )
        .await;
    let task = tasks.wait_completed("rebuild-dc2").await;

    assert_eq!(count_in(&sim, "dc2"), 50);
    assert_eq!(task.pointer("/status/succeeded"), Some(&json!(3)));
    assert_eq!(task.pointer("/status/failed"), None);
    assert_eq!(condition_status(&task, "Complete").as_deref(), Some("True"));
    assert_eq!(condition_status(&task, "Running").as_deref(), Some("False"));
    assert_eq!(condition(&task, "Failed"), None);
    assert_eq!(
        condition(&task, "Complete").and_then(|c| c["reason"].as_str()),
        Some("Complete")
    );
    assert_eq!(
        label(&task, "control.k8ssandra.io/status"),
        Some("completed")
    );
    assert_eq!(
        label(&task, "cassandra.datastax.com/datacenter"),
        Some("dc2")
    );
    assert_eq!(
        label(&task, "cassandra.datastax.com/cluster"),
        Some(CLUSTER)
    );
    assert_eq!(
        label(&task, "app.kubernetes.io/managed-by"),
        Some("cass-operator")
    );
    assert_eq!(
        task.pointer("/metadata/ownerReferences/0/kind").and_then(Value::as_str),
        Some("CassandraDatacenter")
    );
    assert_eq!(
        task.pointer("/metadata/ownerReferences/0/name").and_then(Value::as_str),
        Some("dc2")
    );
    let model = sim.cassandra();
    let model = model.lock();
    let mut submitted = Vec::new();
    for pod in &dc2 {
        let status = pod_status(&task, &pod.name).expect("a status per pod");
        assert_eq!(status["status"], "COMPLETED");
        let job_id = status["jobId"].as_str().expect("an async job id");
        let job = model.job(&pod.pod_ref, job_id).expect("the node's job");
        assert_eq!(job.job_type, "rebuild");
        submitted.push((job.submit_time, pod.rack.clone()));
    }
    submitted.sort();
    let racks: Vec<&str> = submitted.iter().map(|(_, rack)| rack.as_str()).collect();
    assert_eq!(racks, ["r1", "r2", "r3"], "racks are processed in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_task_drops_the_rows_nodes_no_longer_replicate() {
    let sim = start_sim(1).await;
    create_datacenter(&sim, 0, "dc1", 2, &["r1"]).await;
    write_rows(&sim, &Replication::network_topology([("dc1", 1)]), 60);
    // A third node joins: it streams its ranges, their old owners keep their copies.
    let client = sim.client(0).await.expect("client");
    let dcs: Api<DynamicObject> = Api::namespaced_with(client, NS, &dc_resource());
    dcs.patch(
        "dc1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 3}})),
    )
    .await
    .expect("scaling dc1 up");
    let pods = wait_ready(&sim, 0, "dc1").await;
    let held = || -> usize {
        let counts = sim.cassandra().lock().row_counts(CLUSTER).expect("row counts");
        counts.per_node.values().filter_map(|tables| tables.get("app.events")).sum()
    };
    assert!(
        held() > 60,
        "the joined node's ranges are still on their old owners"
    );

    let tasks = Tasks::of(&sim, 0).await;
    tasks
        .create(
            "cleanup",
            "dc1",
            "cleanup",
            json!({"keyspace_name": KEYSPACE}),
            json!({"maxConcurrentPods": 2}),
        )
        .await;
    let task = tasks.wait_completed("cleanup").await;

    assert_eq!(held(), 60);
    assert_eq!(count_in(&sim, "dc1"), 60);
    assert_eq!(task.pointer("/status/succeeded"), Some(&json!(3)));
    let model = sim.cassandra();
    let model = model.lock();
    for pod in &pods {
        let node = model.node(&pod.pod_ref).expect("node");
        assert!(node.operations().iter().any(|op| op.operation == "CLEANUP"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidding_task_waits_for_the_active_task_of_its_datacenter() {
    let sim = start_sim(1).await;
    create_datacenter(&sim, 0, "dc1", 2, &["r1"]).await;
    // Jobs stay WAITING a while, so that the first task stays active.
    sim.cassandra().lock().set_job_duration_millis(1_500);
    let tasks = Tasks::of(&sim, 0).await;
    tasks.create("first", "dc1", "flush", json!({}), json!({})).await;
    wait_for("the first task active", || async {
        let task = tasks.get("first").await?;
        (label(&task, "control.k8ssandra.io/status") == Some("active")).then_some(())
    })
    .await;
    tasks.create("second", "dc1", "compact", json!({}), json!({})).await;
    // An Allow task runs beside a task whose policy is unset: upstream reads the other tasks'
    // policy without its default.
    tasks
        .create(
            "allowed",
            "dc1",
            "garbagecollect",
            json!({}),
            json!({"concurrencyPolicy": "Allow"}),
        )
        .await;
    wait_for("the Allow task active", || async {
        let task = tasks.get("allowed").await?;
        (label(&task, "control.k8ssandra.io/status") == Some("active")).then_some(())
    })
    .await;
    let second = tasks.get("second").await.expect("second task");
    assert_eq!(label(&second, "control.k8ssandra.io/status"), None);
    assert_eq!(second.pointer("/status/startTime"), None);

    let first = tasks.wait_completed("first").await;
    let second = tasks.wait_completed("second").await;
    let started = second.pointer("/status/startTime").and_then(Value::as_str).expect("started");
    let first_done =
        first.pointer("/status/completionTime").and_then(Value::as_str).expect("completed");
    assert!(
        started >= first_done,
        "second started {started}, first completed {first_done}"
    );
    assert_eq!(second.pointer("/status/succeeded"), Some(&json!(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_ends_the_task_failed_with_the_nodes_error() {
    let sim = start_sim(1).await;
    let pods = create_datacenter(&sim, 0, "dc1", 2, &["r1"]).await;
    let tasks = Tasks::of(&sim, 0).await;
    tasks
        .create(
            "cleanup",
            "dc1",
            "cleanup",
            json!({"keyspace_name": "missing"}),
            json!({}),
        )
        .await;
    let task = tasks.wait_completed("cleanup").await;

    assert_eq!(task.pointer("/status/failed"), Some(&json!(2)));
    assert_eq!(task.pointer("/status/succeeded"), None);
    assert_eq!(condition_status(&task, "Complete").as_deref(), Some("True"));
    let failed = condition(&task, "Failed").expect("Failed condition");
    assert_eq!(failed["status"], "True");
    assert_eq!(failed["message"], "2 pods failed during processing");
    let model = sim.cassandra();
    let model = model.lock();
    for pod in &pods {
        let status = pod_status(&task, &pod.name).expect("pod status");
        assert_eq!(status["status"], "ERROR");
        // RestartPolicy OnFailure with one retry: the node ran the job twice.
        assert_eq!(status["retries"], 1);
        let jobs = model.node(&pod.pod_ref).expect("node").jobs();
        assert_eq!(jobs.len(), 2);
        let error = jobs.values().next().and_then(|job| job.error.clone()).expect("job error");
        assert_eq!(status["error"], error.as_str());
        assert_eq!(error, "Keyspace missing does not exist");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_management_api_that_fails_is_retried_until_it_answers() {
    let sim = start_sim(1).await;
    let pods = create_datacenter(&sim, 0, "dc1", 2, &["r1"]).await;
    let first = pods.iter().min_by_key(|pod| pod.name.clone()).expect("a pod");
    let fault = ManagementFault {
        fail_status: Some(500),
        delay_millis: 0,
    };
    sim.cassandra().lock().set_management_fault(&first.pod_ref, fault).expect("fault");
    let tasks = Tasks::of(&sim, 0).await;
    tasks.create("flush", "dc1", "flush", json!({}), json!({})).await;
    wait_for("the task running", || async {
        let task = tasks.get("flush").await?;
        (condition_status(&task, "Running")? == "True").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let task = tasks.get("flush").await.expect("task");
    assert_eq!(task.pointer("/status/completionTime"), None);
    assert_eq!(
        pod_status(&task, &first.name),
        None,
        "the pod's job never started"
    );

    sim.cassandra()
        .lock()
        .set_management_fault(&first.pod_ref, ManagementFault::default())
        .expect("fault lifted");
    let task = tasks.wait_completed("flush").await;
    assert_eq!(task.pointer("/status/succeeded"), Some(&json!(2)));
    assert_eq!(condition(&task, "Failed"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_tasks_are_deleted_after_their_ttl_unless_it_is_zero() {
    let sim = start_sim(1).await;
    create_datacenter(&sim, 0, "dc1", 1, &["r1"]).await;
    let tasks = Tasks::of(&sim, 0).await;
    tasks
        .create(
            "short",
            "dc1",
            "flush",
            json!({}),
            json!({"ttlSecondsAfterFinished": 1}),
        )
        .await;
    tasks
        .create(
            "kept",
            "dc1",
            "flush",
            json!({}),
            json!({"ttlSecondsAfterFinished": 0}),
        )
        .await;
    tasks.wait_completed("short").await;
    tasks.wait_completed("kept").await;
    wait_for("the short task deleted", || async {
        tasks.get("short").await.is_none().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(tasks.get("kept").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_scheduled_later_waits_for_its_time() {
    let sim = start_sim(1).await;
    create_datacenter(&sim, 0, "dc1", 1, &["r1"]).await;
    let tasks = Tasks::of(&sim, 0).await;
    let scheduled = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 3)
        .expect("a time")
        .to_string();
    tasks
        .create(
            "later",
            "dc1",
            "flush",
            json!({}),
            json!({"scheduledTime": scheduled}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let waiting = tasks.get("later").await.expect("task");
    assert_eq!(label(&waiting, "control.k8ssandra.io/status"), None);
    assert_eq!(waiting.pointer("/status"), None);
    let task = tasks.wait_completed("later").await;
    let started = task.pointer("/status/startTime").and_then(Value::as_str).expect("started");
    assert!(
        started >= scheduled.as_str(),
        "started {started} before {scheduled}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_task_restarts_one_pod_at_a_time_rack_after_rack() {
    let sim = start_sim(1).await;
    let pods = create_datacenter(&sim, 0, "dc1", 3, &["r1", "r2"]).await;
    let client = sim.client(0).await.expect("client");
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let mut before = std::collections::BTreeMap::new();
    for pod in &pods {
        let uid = pod_api.get(&pod.name).await.expect("pod").metadata.uid;
        let host = sim.cassandra().lock().node(&pod.pod_ref).expect("node").host_id;
        before.insert(pod.name.clone(), (uid, host));
    }
    let tasks = Tasks::of(&sim, 0).await;
    tasks.create("restart", "dc1", "restart", json!({}), json!({})).await;
    let ready = |pod: &Pod| {
        pod.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True")
    };
    let mut most_down = 0;
    let task = loop {
        let listed = pod_api
            .list(&ListParams::default().labels("cassandra.datastax.com/datacenter=dc1"))
            .await
            .expect("pods");
        // A pod being recreated is missing from the list: it counts as down too.
        let up = listed.items.iter().filter(|pod| ready(pod)).count();
        most_down = most_down.max(pods.len() - up.min(pods.len()));
        if let Some(task) = tasks.get("restart").await
            && task.pointer("/status/completionTime").is_some()
        {
            break task;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(most_down, 1, "one pod restarts at a time");
    assert_eq!(task.pointer("/status/succeeded"), Some(&json!(3)));
    assert_eq!(condition_status(&task, "Complete").as_deref(), Some("True"));
    let started = task.pointer("/status/startTime").and_then(Value::as_str).expect("started");
    let statefulsets: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(client, NS);
    for rack in ["r1", "r2"] {
        let sts = statefulsets.get(&format!("demo-dc1-{rack}-sts")).await.expect("sts");
        let annotations = sts.spec.and_then(|s| s.template.metadata).and_then(|m| m.annotations);
        assert_eq!(
            annotations
                .unwrap_or_default()
                .get("control.k8ssandra.io/restartedAt")
                .map(String::as_str),
            Some(started),
            "the task restarts through the StatefulSet's template"
        );
    }
    let model = sim.cassandra();
    for pod in &pods {
        let object = pod_api.get(&pod.name).await.expect("pod");
        assert!(ready(&object));
        let (old_uid, old_host) = &before[&pod.name];
        assert_ne!(
            &object.metadata.uid, old_uid,
            "{} was recreated from the new template",
            pod.name
        );
        let annotations = object.metadata.annotations.unwrap_or_default();
        assert_eq!(
            annotations.get("control.k8ssandra.io/restartedAt").map(String::as_str),
            Some(started)
        );
        let model = model.lock();
        let node = model.node(&pod.pod_ref).expect("node");
        assert!(node.running && node.up, "{} runs again", pod.name);
        assert_eq!(
            &node.host_id, old_host,
            "{}'s Cassandra restarted with its data",
            pod.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacenode_task_brings_the_pod_back_with_a_new_node_holding_its_data() {
    let sim = start_sim(1).await;
    let pods = create_datacenter(&sim, 0, "dc1", 3, &["r1"]).await;
    write_rows(&sim, &Replication::network_topology([("dc1", 3)]), 30);
    let replaced = &pods[1];
    let client = sim.client(0).await.expect("client");
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let old_uid = pod_api.get(&replaced.name).await.expect("pod").metadata.uid;
    let old_host = sim.cassandra().lock().node(&replaced.pod_ref).expect("node").host_id;

    let tasks = Tasks::of(&sim, 0).await;
    tasks
        .create(
            "replace",
            "dc1",
            "replacenode",
            json!({"pod_name": replaced.name}),
            json!({}),
        )
        .await;
    let task = tasks.wait_completed("replace").await;
    assert_eq!(task.pointer("/status/succeeded"), Some(&json!(1)));
    assert_eq!(
        pod_status(&task, &replaced.name).map(|s| s["status"].clone()),
        Some(json!("COMPLETED"))
    );
    let dcs: Api<DynamicObject> = Api::namespaced_with(client, NS, &dc_resource());
    let back = wait_for("the replaced pod back and ready", || async {
        let pod = pod_api.get_opt(&replaced.name).await.ok()??;
        let ready = pod
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(pod)
    })
    .await;
    assert_ne!(back.metadata.uid, old_uid, "the pod was created again");
    let dc = wait_for("the datacenter done replacing", || async {
        let dc = serde_json::to_value(dcs.get("dc1").await.ok()?).ok()?;
        (condition_status(&dc, "ReplacingNodes")? == "False").then_some(dc)
    })
    .await;
    assert_eq!(dc.pointer("/status/nodeReplacements"), Some(&json!([])));

    let model = sim.cassandra();
    let model = model.lock();
    let node = model.node(&replaced.pod_ref).expect("the new node");
    assert_ne!(node.host_id, old_host);
    assert_eq!(node.state, NodeState::Normal);
    assert!(node.running && node.up);
    let ring = model.ring(CLUSTER).expect("ring");
    assert_eq!(ring.len(), 3, "the old node left the ring");
    let counts = model.row_counts(CLUSTER).expect("row counts");
    let held = counts.per_node.get(&replaced.pod_ref).and_then(|tables| tables.get("app.events"));
    assert_eq!(held, Some(&30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacenode_without_a_pod_or_rack_fails_terminally() {
    let sim = start_sim(1).await;
    create_datacenter(&sim, 0, "dc1", 1, &["r1"]).await;
    let tasks = Tasks::of(&sim, 0).await;
    tasks.create("replace", "dc1", "replacenode", json!({}), json!({})).await;
    let task = tasks.wait_completed("replace").await;
    assert_eq!(task.pointer("/status/failed"), Some(&json!(1)));
    let kinds: Vec<&str> = task
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|all| all.iter().filter_map(|c| c["type"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(kinds, ["Complete", "Running", "Failed"]);
    assert_eq!(
        condition(&task, "Failed").and_then(|c| c["message"].as_str()),
        Some(
            "terminal error: replace requires either rack_name or pod_name to be set as a filtering rule"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_datacenters_and_unknown_commands_are_retried() {
    let sim = start_sim(1).await;
    let tasks = Tasks::of(&sim, 0).await;
    tasks.create("early", "later", "flush", json!({}), json!({})).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let waiting = tasks.get("early").await.expect("task");
    assert_eq!(label(&waiting, "control.k8ssandra.io/status"), None);
    assert_eq!(waiting.pointer("/status"), None);

    create_datacenter(&sim, 0, "later", 1, &["r1"]).await;
    let task = tasks.wait_completed("early").await;
    assert_eq!(task.pointer("/status/succeeded"), Some(&json!(1)));

    tasks.create("odd", "later", "frobnicate", json!({}), json!({})).await;
    let odd = wait_for("the unknown command's task active", || async {
        let task = tasks.get("odd").await?;
        (label(&task, "control.k8ssandra.io/status") == Some("active")).then_some(task)
    })
    .await;
    assert!(odd.pointer("/status/startTime").is_some());
    tokio::time::sleep(Duration::from_millis(800)).await;
    let odd = tasks.get("odd").await.expect("task");
    assert_eq!(odd.pointer("/status/completionTime"), None);
    assert_eq!(condition(&odd, "Running"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_finds_the_pods_by_upstreams_labels_when_names_need_cleaning() {
    let sim = start_sim(1).await;
    // Cassandra knows the datacenter as East_1; cass-operator labels its pods with the cleaned
    // cluster name and the object's name, and the task selects them so.
    let pods = create_datacenter_with(
        &sim,
        0,
        "dc1",
        json!({"clusterName": "Demo_Cluster", "datacenterName": "East_1", "serverType": "cassandra",
               "serverVersion": "4.1.5", "size": 2, "racks": [{"name": "r1"}],
               "storageConfig": {"cassandraDataVolumeClaimSpec": {"accessModes": ["ReadWriteOnce"],
                                 "resources": {"requests": {"storage": "1Gi"}}}}}),
    )
    .await;
    let client = sim.client(0).await.expect("client");
    let pod_api: Api<Pod> = Api::namespaced(client, NS);
    for pod in &pods {
        let labels = pod_api.get(&pod.name).await.expect("pod").metadata.labels.unwrap_or_default();
        assert_eq!(
            labels.get("cassandra.datastax.com/cluster").map(String::as_str),
            Some("Demo_Cluster")
        );
        assert_eq!(
            labels.get("cassandra.datastax.com/datacenter").map(String::as_str),
            Some("dc1")
        );
        let node = sim.cassandra().lock().node(&pod.pod_ref).expect("node").datacenter.clone();
        assert_eq!(node, "East_1");
    }
    let tasks = Tasks::of(&sim, 0).await;
    tasks.create("flush", "dc1", "flush", json!({}), json!({})).await;
    let task = tasks.wait_completed("flush").await;
    assert_eq!(task.pointer("/status/succeeded"), Some(&json!(2)));
    assert_eq!(
        label(&task, "cassandra.datastax.com/cluster"),
        Some("Demo_Cluster")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_rolled_while_its_management_api_fails_does_not_start_until_it_answers() {
    let sim = start_sim(1).await;
    let pods_before = create_datacenter(&sim, 0, "dc1", 1, &["r1"]).await;
    let pod = &pods_before[0];
    let client = sim.client(0).await.expect("client");
    let dcs: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &dc_resource());
    let pods: Api<Pod> = Api::namespaced(client, NS);
    let fault = ManagementFault {
        fail_status: Some(500),
        delay_millis: 0,
    };
    sim.set_cassandra_management_fault(&sim.context_name(0), NS, &pod.name, fault).expect("fault");
    // A config change rolls the pod; cass-operator starts Cassandra in the new one through its
    // Management API, which fails.
    let change = json!({"spec": {"config": {"cassandra-yaml": {"concurrent_reads": 64}}}});
    dcs.patch("dc1", &PatchParams::default(), &Patch::Merge(change)).await.expect("patch");
    let waiting = wait_for("the pod crash-looping", || async {
        let status = serde_json::to_value(pods.get(&pod.name).await.ok()?.status?).ok()?;
        let state = status.pointer("/containerStatuses/0/state/waiting/reason")?;
        (state == "CrashLoopBackOff").then_some(status)
    })
    .await;
    assert_eq!(
        waiting.pointer("/containerStatuses/0/lastState/terminated/message"),
        Some(&json!("incorrect status code of 500 when calling endpoint"))
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let dc = serde_json::to_value(dcs.get("dc1").await.expect("dc1")).expect("json");
    assert_eq!(
        dc.pointer("/status/cassandraOperatorProgress"),
        Some(&json!("Updating"))
    );

    sim.set_cassandra_management_fault(&sim.context_name(0), NS, &pod.name, Default::default())
        .expect("fault cleared");
    wait_ready(&sim, 0, "dc1").await;
}
