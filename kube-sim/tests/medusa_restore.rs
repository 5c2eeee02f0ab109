//! The cass-operator stand-in's pods running what the datacenter's `podTemplateSpec` declares:
//! Medusa's gRPC port on the `medusa` container, and the `medusa-restore` init container that
//! restores a backup when a MedusaRestoreJob sets its environment and the pods roll.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube_sim::cassandra::{ConsistencyLevel, PodRef};
use kube_sim::medusa::LAST_RESTORE_FILE;
use kube_sim::{Sim, SimBuilder};
use medusa_grpc::backup_request::Mode;
use medusa_grpc::medusa_client::MedusaClient;
use medusa_grpc::{BackupRequest, StatusType};
use serde_json::json;

mod support;
use support::{dc_resource, medusa_restore_container, wait_for};

const NS: &str = "default";
const CLUSTER: &str = "demo";

const MEDUSA_INI: &str = "
[storage]
storage_provider = local
bucket_name = medusa-bucket
prefix = demo
";

/// Waits until the datacenter is Ready at its current generation; its pods by name.
async fn ready_pods(sim: &Sim) -> BTreeMap<String, Pod> {
    let client = sim.client(0).await.expect("client");
    let dcs: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &dc_resource());
    let pods: Api<Pod> = Api::namespaced(client, NS);
    wait_for("dc1 Ready", || async {
        let dc = serde_json::to_value(dcs.get("dc1").await.ok()?).ok()?;
        let ready = dc.pointer("/status/cassandraOperatorProgress")? == "Ready"
            && dc.pointer("/status/observedGeneration") == dc.pointer("/metadata/generation");
        if !ready {
            return None;
        }
        let listed = pods
            .list(&ListParams::default().labels("cassandra.datastax.com/datacenter=dc1"))
            .await
            .ok()?;
        let by_name: BTreeMap<String, Pod> = listed
            .items
            .into_iter()
            .filter_map(|pod| Some((pod.metadata.name.clone()?, pod)))
            .collect();
        (by_name.len() == 3).then_some(by_name)
    })
    .await
}

fn pod_ip(pod: &Pod) -> String {
    pod.status.as_ref().and_then(|s| s.pod_ip.clone()).expect("a pod IP")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_through_medusas_port_is_restored_by_the_init_container_when_pods_roll() {
    let mut builder = SimBuilder::new()
        .cass_operator(true)
        .pod_listeners(true)
        .dc_ready_after(Duration::from_millis(300));
    let workspace = kube_sim::prerequisites::workspace_root();
    if let Some(compat) = kube_sim::prerequisites::compat_dir(&workspace) {
        builder = builder.crd_dir(compat.join("crds/cass-operator"));
    }
    let sim = builder.start().await.expect("starting kube-sim");
    let client = sim.client(0).await.expect("client");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let config_map: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "demo-medusa", "namespace": NS},
        "data": {"medusa.ini": MEDUSA_INI},
    }))
    .expect("config map");
    config_maps.create(&PostParams::default(), &config_map).await.expect("medusa.ini");
    let dcs: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &dc_resource());
    let dc: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cassandra.datastax.com/v1beta1", "kind": "CassandraDatacenter",
        "metadata": {"name": "dc1", "namespace": NS},
        "spec": {"clusterName": CLUSTER, "serverType": "cassandra", "serverVersion": "4.1.5",
                 "size": 3, "racks": [{"name": "r1"}],
                 "storageConfig": {"cassandraDataVolumeClaimSpec": {"accessModes": ["ReadWriteOnce"],
                                   "resources": {"requests": {"storage": "1Gi"}}}},
                 "podTemplateSpec": {"spec": {
                     "containers": [{"name": "medusa", "image": "docker.io/k8ssandra/medusa:0.22.0",
                                     "ports": [{"name": "grpc", "containerPort": 50051, "protocol": "TCP"}],
                                     "volumeMounts": [{"name": "demo-medusa", "mountPath": "/etc/medusa"}]}],
                     "initContainers": [medusa_restore_container(json!([]))],
                     "volumes": [{"name": "demo-medusa", "configMap": {"name": "demo-medusa"}}]}}},
    }))
    .expect("dc");
    dcs.create(&PostParams::default(), &dc).await.expect("creating the datacenter");
    let pods = ready_pods(&sim).await;
    let medusa_container = pods.values().all(|pod| {
        pod.spec.as_ref().is_some_and(|spec| spec.containers.iter().any(|c| c.name == "medusa"))
    });
    assert!(medusa_container, "the template's containers are the pods'");

    let replication = BTreeMap::from([
        ("class".to_string(), "NetworkTopologyStrategy".to_string()),
        ("dc1".to_string(), "3".to_string()),
    ]);
    sim.cassandra_create_keyspace(CLUSTER, "app", &replication).expect("keyspace");
    sim.cassandra_create_table(CLUSTER, "app", "kv").expect("table");
    sim.cassandra_write_generated(
        CLUSTER,
        "dc1",
        "app",
        "kv",
        40,
        ConsistencyLevel::LocalQuorum,
    )
    .expect("rows");
    sim.cassandra().lock().set_backup_duration_millis(0);

    // MedusaBackupJob: each pod's Medusa backs its node up under one name.
    for pod in pods.values() {
        let address = format!("http://{}:50051", pod_ip(pod));
        let mut medusa = wait_for("Medusa listening at the pod's IP", || async {
            MedusaClient::connect(address.clone()).await.ok()
        })
        .await;
        let request = BackupRequest {
            name: "nightly".into(),
            mode: Mode::Full as i32,
        };
        let response = medusa.backup(request).await.expect("Backup").into_inner();
        assert_eq!(
            StatusType::try_from(response.status).ok(),
            Some(StatusType::Success)
        );
    }
    let later: Vec<(String, String)> =
        (0..25).map(|n| (format!("later-{n}"), format!("v{n}"))).collect();
    sim.cassandra_write(
        CLUSTER,
        "dc1",
        "app",
        "kv",
        later,
        ConsistencyLevel::LocalQuorum,
    )
    .expect("more rows");
    assert_eq!(
        sim.cassandra_count(CLUSTER, "dc1", "app", "kv", ConsistencyLevel::All).ok(),
        Some(65)
    );

    // MedusaRestoreJob: the init container's environment changes, the pods roll.
    let restore_env = json!([{"name": "BACKUP_NAME", "value": "nightly"},
                             {"name": "RESTORE_KEY", "value": "restore-1"}]);
    let patch = json!({"spec": {"podTemplateSpec": {"spec": {
        "initContainers": [medusa_restore_container(restore_env)]}}}});
    dcs.patch("dc1", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("restore env");
    let context = sim.context_name(0);
    let restored = wait_for("every pod rolled and restored", || async {
        let rolled = ready_pods(&sim).await;
        let all_new = rolled.iter().all(|(name, pod)| pod.metadata.uid != pods[name].metadata.uid);
        let model = sim.cassandra();
        let model = model.lock();
        let marked = rolled.keys().all(|name| {
            let pod = PodRef::new(&context, NS, name);
            model.volume_file(&pod, LAST_RESTORE_FILE) == Some("restore-1\n")
        });
        (all_new && marked).then_some(rolled)
    })
    .await;
    assert_eq!(restored.len(), 3);
    assert_eq!(
        sim.cassandra_count(CLUSTER, "dc1", "app", "kv", ConsistencyLevel::All).ok(),
        Some(40),
        "exactly the backed-up rows remain"
    );
    assert_eq!(
        sim.cassandra_read(
            CLUSTER,
            "dc1",
            "app",
            "kv",
            "later-3",
            ConsistencyLevel::All
        )
        .ok(),
        Some(None)
    );

    // A restore that fails keeps its pod from starting, with Medusa's error, and the roll waits.
    let broken_env = json!([{"name": "BACKUP_NAME", "value": "nightly"},
                            {"name": "RESTORE_KEY", "value": "restore-2"},
                            {"name": "RESTORE_MAPPING", "value": "not a mapping"}]);
    let patch = json!({"spec": {"podTemplateSpec": {"spec": {
        "initContainers": [medusa_restore_container(broken_env)]}}}});
    dcs.patch("dc1", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("broken env");
    let pod_api: Api<Pod> = Api::namespaced(client, NS);
    let failing = wait_for("the rolled pod failing its init container", || async {
        let pod = pod_api.get("demo-dc1-r1-sts-2").await.ok()?;
        let status = pod.status.clone()?;
        let message = status
            .init_container_statuses?
            .into_iter()
            .find(|c| c.name == "medusa-restore")?
            .last_state?
            .terminated?
            .message?;
        Some((pod, message))
    })
    .await;
    assert!(
        failing.1.contains("RESTORE_MAPPING is not a restore mapping"),
        "{}",
        failing.1
    );
    let ready = failing
        .0
        .status
        .and_then(|s| s.conditions)
        .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status);
    assert_eq!(ready.as_deref(), Some("False"));
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let untouched = pod_api.get("demo-dc1-r1-sts-0").await.expect("pod 0");
    assert_eq!(
        untouched.metadata.uid, restored["demo-dc1-r1-sts-0"].metadata.uid,
        "the roll waits for the failing pod"
    );
}
