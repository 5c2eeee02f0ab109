//! Medusa backups end to end on kube-sim, in upstream's layout (contexts `kind-k8ssandra-N`):
//! a K8ssandraCluster with `spec.medusa` runs the medusa container beside every Cassandra node,
//! with its medusa.ini and storage Secret in each region; a MedusaBackupJob in a region backs up
//! its datacenter's pods through their Medusa gRPC service (at the pod IPs), in the hub by the
//! control plane and in the other region by its data plane, and records a MedusaBackup; the
//! bucket (kube-sim's model) then holds each node's rows under the backup's name.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use federator::api::cassdc::CassandraDatacenter;
use federator::api::medusa::{MedusaBackup, MedusaBackupJob};
use federator::settings::Mode;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::Api;
use kube_sim::cassandra::{ConsistencyLevel, PodRef, StorageLocation};
use support::*;

const CLUSTER: &str = "demo";
const BUCKET: &str = "medusa-bucket";
const WAIT: Duration = Duration::from_secs(60);

fn medusa_cluster() -> serde_json::Value {
    let mut cluster = k8ssandra_cluster(
        CLUSTER,
        &[
            ("dc1", "kind-k8ssandra-0", 2),
            ("dc2", "kind-k8ssandra-1", 2),
        ],
    );
    cluster["spec"]["medusa"] = serde_json::json!({
        "purgeBackups": false,
        "storageProperties": {
            "storageProvider": "s3_compatible",
            "bucketName": BUCKET,
            "storageSecretRef": {"name": "medusa-bucket-key"},
            "host": "minio.example",
            "port": 9000
        }
    });
    cluster
}

async fn datacenter_ready(region: &kube::Client, name: &str) {
    let datacenters = Api::<CassandraDatacenter>::namespaced(region.clone(), NS);
    wait_for(
        &format!("CassandraDatacenter {name} Ready"),
        WAIT,
        || async { datacenters.get_opt(name).await.ok().flatten().is_some_and(|dc| dc.is_ready()) },
    )
    .await;
}

/// The job's status once it has a finishTime.
async fn finished_job(region: &kube::Client, name: &str) -> MedusaBackupJob {
    let jobs = Api::<MedusaBackupJob>::namespaced(region.clone(), NS);
    wait_for(
        &format!("MedusaBackupJob {name} finished"),
        WAIT,
        || async {
            let job = jobs.get(name).await.map_err(|e| e.to_string())?;
            match job.status.as_ref().and_then(|s| s.finish_time.as_ref()) {
                Some(_) => Ok(job),
                None => Err(format!("{:?}", job.status)),
            }
        },
    )
    .await
}

async fn backup_job(region: &kube::Client, name: &str, datacenter: &str) {
    let jobs = Api::<MedusaBackupJob>::namespaced(region.clone(), NS);
    let job = serde_json::json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1",
        "kind": "MedusaBackupJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"cassandraDatacenter": datacenter, "backupType": "full"},
    });
    apply(&jobs, name, job).await;
}

/// The job finished on every pod of its datacenter, its MedusaBackup says so, and the bucket
/// holds each node's rows of `app.kv` under the backup's name.
async fn assert_backed_up(
    sim: &kube_sim::Sim,
    region: &kube::Client,
    context: &str,
    job: &str,
    pods: &[&str],
) {
    let finished = finished_job(region, job).await;
    let status = finished.status.clone().unwrap_or_default();
    let mut done = status.finished.clone().unwrap_or_default();
    done.sort();
    assert_eq!(done, pods, "{status:?}");
    assert!(status.failed.unwrap_or_default().is_empty());
    assert!(status.in_progress.unwrap_or_default().is_empty());
    let complete = (status.conditions.iter().flatten())
        .find(|c| c.type_ == "Complete")
        .map(|c| c.status.clone());
    assert_eq!(complete.as_deref(), Some("True"));

    let backups = Api::<MedusaBackup>::namespaced(region.clone(), NS);
    let backup = wait_for(&format!("MedusaBackup {job}"), WAIT, || async {
        let backup = backups.get_opt(job).await.ok().flatten();
        backup.filter(|b| b.status.is_some())
    })
    .await;
    let recorded = backup.status.clone().unwrap_or_default();
    assert_eq!(
        recorded.total_nodes,
        Some(pods.len() as i32),
        "{recorded:?}"
    );
    assert_eq!(recorded.finished_nodes, recorded.total_nodes);
    assert_eq!(recorded.status.as_deref(), Some("SUCCESS"));
    assert!(recorded.start_time.is_some() && recorded.finish_time.is_some());
    assert_eq!(recorded.nodes.as_ref().map(Vec::len), Some(pods.len()));
    assert_eq!(
        backup.spec.cassandra_datacenter,
        finished.spec.cassandra_datacenter
    );

    let storage = StorageLocation::new(BUCKET, CLUSTER);
    let model = sim.cassandra();
    let model = model.lock();
    for pod in pods {
        let node = PodRef::new(context, NS, *pod);
        let live = model.node_rows(&node, "app", "kv").expect("node rows");
        assert!(!live.is_empty(), "{pod} holds no rows");
        let saved = model.backup_rows(&storage, job, pod, "app", "kv").expect("backup rows");
        assert_eq!(saved, live, "{pod}: the backup holds what the node held");
    }
}

#[test]
fn a_backup_job_backs_up_every_pod_of_its_datacenter_in_each_region() {
    run(backup_in_each_region());
}

async fn backup_in_each_region() {
    let layout = upstream_layout(2, |setup| setup.pod_listeners()).await;
    let sim = &layout.sim;
    let hub = sim.client(0).await.expect("hub client");
    let region1 = sim.client(1).await.expect("region 1 client");
    let secrets = Api::<Secret>::namespaced(hub.clone(), NS);
    apply(
        &secrets,
        "medusa-bucket-key",
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "medusa-bucket-key", "namespace": NS},
            "stringData": {"credentials": "[default]\naws_access_key_id = id\naws_secret_access_key = key\n"},
        }),
    )
    .await;
    let control = InProcessOperator::start(&hub, |settings| {
        settings.leader_election.enabled = false;
    });
    let data = InProcessOperator::start(&region1, |settings| {
        settings.leader_election.enabled = false;
        settings.mode = Mode::DataPlane;
    });

    let clusters =
        Api::<federator::api::k8ssandra_cluster::K8ssandraCluster>::namespaced(hub.clone(), NS);
    apply(&clusters, CLUSTER, medusa_cluster()).await;
    datacenter_ready(&hub, "dc1").await;
    datacenter_ready(&region1, "dc2").await;

    // Each region has dc's medusa.ini, the storage Secret and pods running Medusa.
    for (region, dc) in [(&hub, "dc1"), (&region1, "dc2")] {
        let config_maps = Api::<ConfigMap>::namespaced(region.clone(), NS);
        let ini = config_maps.get(&format!("{CLUSTER}-{dc}-medusa")).await.expect("medusa.ini");
        let text = ini.data.unwrap_or_default().remove("medusa.ini").unwrap_or_default();
        assert!(text.contains(&format!("bucket_name = {BUCKET}")), "{text}");
        let stored = Api::<Secret>::namespaced(region.clone(), NS);
        assert!(
            stored.get_opt("medusa-bucket-key").await.ok().flatten().is_some(),
            "{dc}"
        );
        let pods = Api::<Pod>::namespaced(region.clone(), NS);
        let pod = pods.get(&format!("{CLUSTER}-{dc}-default-sts-0")).await.expect("pod");
        let spec = pod.spec.unwrap_or_default();
        assert!(spec.containers.iter().any(|c| c.name == "medusa"), "{dc}");
        let init = spec.init_containers.unwrap_or_default();
        assert!(init.iter().any(|c| c.name == "medusa-restore"), "{dc}");
    }

    let app = BTreeMap::from([
        ("class".to_string(), "NetworkTopologyStrategy".to_string()),
        ("dc1".to_string(), "2".to_string()),
        ("dc2".to_string(), "2".to_string()),
    ]);
    sim.cassandra_create_keyspace(CLUSTER, "app", &app).expect("keyspace app");
    sim.cassandra_create_table(CLUSTER, "app", "kv").expect("table app.kv");
    sim.cassandra_write_generated(CLUSTER, "dc1", "app", "kv", 40, ConsistencyLevel::All)
        .expect("rows");

    // In the hub, by the control plane; in region 1, by its data plane.
    backup_job(&hub, "backup-dc1", "dc1").await;
    backup_job(&region1, "backup-dc2", "dc2").await;
    assert_backed_up(
        sim,
        &hub,
        "kind-k8ssandra-0",
        "backup-dc1",
        &["demo-dc1-default-sts-0", "demo-dc1-default-sts-1"],
    )
    .await;
    assert_backed_up(
        sim,
        &region1,
        "kind-k8ssandra-1",
        "backup-dc2",
        &["demo-dc2-default-sts-0", "demo-dc2-default-sts-1"],
    )
    .await;

    // The spec of a started job cannot change.
    let jobs = Api::<MedusaBackupJob>::namespaced(hub.clone(), NS);
    let changed = serde_json::json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1",
        "kind": "MedusaBackupJob",
        "metadata": {"name": "backup-dc1", "namespace": NS},
        "spec": {"cassandraDatacenter": "dc1", "backupType": "differential"},
    });
    let refused = jobs
        .patch(
            "backup-dc1",
            &kube::api::PatchParams::apply("test").force(),
            &kube::api::Patch::Apply(&changed),
        )
        .await;
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("cannot change"), "{message}");

    stop_all(vec![control, data]).await;
}
