//! Medusa backups end to end on kube-sim, in upstream's layout (contexts `kind-k8ssandra-N`):
//! a K8ssandraCluster with `spec.medusa` runs the medusa container beside every Cassandra node,
//! with its medusa.ini and storage Secret in each region; a MedusaBackupJob in a region backs up
//! its datacenter's pods through their Medusa gRPC service (at the pod IPs), in the hub by the
//! control plane and in the other region by its data plane, and records a MedusaBackup; the
//! bucket (kube-sim's model) then holds each node's rows under the backup's name. A
//! MedusaRestoreJob then brings each datacenter back to its backup, while the hub keeps
//! applying the datacenters.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use federator::api::cassdc::CassandraDatacenter;
use federator::api::k8ssandra_cluster::K8ssandraCluster;
use federator::api::medusa::{MedusaBackup, MedusaBackupJob, MedusaRestoreJob};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
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
    cluster["spec"]["medusa"] = medusa_spec(BUCKET);
    cluster["spec"]["medusa"]["purgeBackups"] = serde_json::json!(false);
    cluster
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

/// Applying `changed` to job `name` is refused: its spec cannot change.
async fn assert_refused_as_immutable<K>(jobs: &Api<K>, name: &str, changed: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = kube::api::PatchParams::apply("test").force();
    let refused = jobs.patch(name, &params, &kube::api::Patch::Apply(&changed)).await;
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("cannot change"), "{message}");
}

#[test]
fn a_backup_job_backs_up_every_pod_of_its_datacenter_in_each_region() {
    let _one = one_at_a_time();
    run(backup_in_each_region());
}

/// The hub with dc1 (control plane) and region 1 with dc2 (data plane), Ready, running Medusa,
/// with 40 rows in `app.kv`; the operators to stop at the end.
async fn medusa_world(
    sim: &kube_sim::Sim,
    hub: &kube::Client,
    region1: &kube::Client,
) -> Vec<InProcessOperator> {
    apply_bucket_secret(hub).await;
    let operators = start_operators(&[hub, region1]);
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    apply(&clusters, CLUSTER, medusa_cluster()).await;
    datacenter_ready(hub, "dc1", WAIT).await;
    datacenter_ready(region1, "dc2", WAIT).await;

    // Each region has dc's medusa.ini, the storage Secret and pods running Medusa.
    for (region, dc) in [(hub, "dc1"), (region1, "dc2")] {
        let config_maps = Api::<ConfigMap>::namespaced(region.clone(), NS);
        let ini = config_maps.get(&format!("{CLUSTER}-{dc}-medusa")).await.expect("medusa.ini");
        let text = ini.data.unwrap_or_default().remove("medusa.ini").unwrap_or_default();
        assert!(text.contains(&format!("bucket_name = {BUCKET}")), "{text}");
        let stored = Api::<Secret>::namespaced(region.clone(), NS);
        assert!(
            stored.get_opt(BUCKET_SECRET).await.ok().flatten().is_some(),
            "{dc}"
        );
        let pods = Api::<Pod>::namespaced(region.clone(), NS);
        let pod = pods.get(&format!("{CLUSTER}-{dc}-default-sts-0")).await.expect("pod");
        let spec = pod.spec.unwrap_or_default();
        assert!(spec.containers.iter().any(|c| c.name == "medusa"), "{dc}");
        let init = spec.init_containers.unwrap_or_default();
        assert!(init.iter().any(|c| c.name == "medusa-restore"), "{dc}");
    }

    write_app_rows(sim, CLUSTER, &["dc1", "dc2"], 40);
    operators
}

async fn backup_in_each_region() {
    let layout = upstream_layout(2, |setup| setup.pod_listeners()).await;
    let sim = &layout.sim;
    let hub = sim.client(0).await.expect("hub client");
    let region1 = sim.client(1).await.expect("region 1 client");
    let operators = medusa_world(sim, &hub, &region1).await;

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

    // The hub's status (and so `federator status`) names each datacenter's last backup.
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    for (dc, backup) in [("dc1", "backup-dc1"), ("dc2", "backup-dc2")] {
        let last = wait_for(
            &format!("{dc}'s last backup {backup} in the K8ssandraCluster's status"),
            Duration::from_secs(90),
            || async {
                let k8c = clusters.get(CLUSTER).await.ok()?;
                let entry = k8c.status?.datacenters?.remove(dc)?;
                entry.backups?.last.filter(|last| last.name == backup)
            },
        )
        .await;
        assert_eq!(
            (last.finished_nodes, last.total_nodes),
            (Some(2), Some(2)),
            "{dc}"
        );
        assert!(last.finish_time.is_some(), "{dc}");
    }

    // The spec of a started job cannot change.
    let jobs = Api::<MedusaBackupJob>::namespaced(hub.clone(), NS);
    let changed = serde_json::json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1",
        "kind": "MedusaBackupJob",
        "metadata": {"name": "backup-dc1", "namespace": NS},
        "spec": {"cassandraDatacenter": "dc1", "backupType": "differential"},
    });
    assert_refused_as_immutable(&jobs, "backup-dc1", changed).await;

    stop_all(operators).await;
}

async fn restore_job(region: &kube::Client, name: &str, backup: &str, datacenter: &str) {
    let jobs = Api::<MedusaRestoreJob>::namespaced(region.clone(), NS);
    let job = serde_json::json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1",
        "kind": "MedusaRestoreJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"backup": backup, "cassandraDatacenter": datacenter},
    });
    apply(&jobs, name, job).await;
}

fn condition<'a>(job: &'a MedusaRestoreJob, kind: &str) -> Option<&'a Condition> {
    (job.status.as_ref()?.conditions.iter().flatten()).find(|c| c.type_ == kind)
}

/// The value of `name` in the datacenter's medusa-restore init container.
fn restore_env(dc: &CassandraDatacenter, name: &str) -> Option<String> {
    let template = dc.spec.pod_template_spec.as_ref()?;
    let containers = template.pointer("/spec/initContainers")?.as_array()?;
    let init = containers.iter().find(|c| c["name"] == "medusa-restore")?;
    let env = init["env"].as_array()?;
    let entry = env.iter().find(|e| e["name"] == name)?;
    entry["value"].as_str().map(str::to_string)
}

/// Labels dc1 and dc2 through the K8ssandraCluster: the hub applies both datacenters again.
async fn relabel_datacenters(hub: &kube::Client, value: &str) {
    let clusters =
        Api::<federator::api::k8ssandra_cluster::K8ssandraCluster>::namespaced(hub.clone(), NS);
    let mut cluster = medusa_cluster();
    for dc in cluster["spec"]["cassandra"]["datacenters"].as_array_mut().into_iter().flatten() {
        dc["metadata"]["labels"] = serde_json::json!({"restore-test": value});
    }
    apply(&clusters, CLUSTER, cluster).await;
}

#[test]
fn a_restore_job_brings_every_node_back_to_its_backup_in_each_region() {
    let _one = one_at_a_time();
    run(restore_in_each_region());
}

async fn restore_in_each_region() {
    let layout = upstream_layout(2, |setup| setup.pod_listeners()).await;
    let sim = &layout.sim;
    let hub = sim.client(0).await.expect("hub client");
    let region1 = sim.client(1).await.expect("region 1 client");
    let operators = medusa_world(sim, &hub, &region1).await;
    let regions = [
        (&hub, "kind-k8ssandra-0", "dc1"),
        (&region1, "kind-k8ssandra-1", "dc2"),
    ];
    for (region, _, dc) in regions {
        backup_job(region, &format!("backup-{dc}"), dc).await;
    }
    for (region, context, dc) in regions {
        let pods = [
            format!("{CLUSTER}-{dc}-default-sts-0"),
            format!("{CLUSTER}-{dc}-default-sts-1"),
        ];
        let pods: Vec<&str> = pods.iter().map(String::as_str).collect();
        assert_backed_up(sim, region, context, &format!("backup-{dc}"), &pods).await;
    }

    // After the backups: new rows, and one row changed.
    let mut later: Vec<(String, String)> =
        (0..20).map(|n| (format!("after-{n}"), format!("later-{n}"))).collect();
    later.push(("key-0".to_string(), "changed".to_string()));
    sim.cassandra_write(CLUSTER, "dc1", "app", "kv", later, ConsistencyLevel::All)
        .expect("later rows");

    // A backup that does not exist: blocked, saying so.
    restore_job(&hub, "restore-missing", "no-such-backup", "dc1").await;
    let jobs = Api::<MedusaRestoreJob>::namespaced(hub.clone(), NS);
    let blocked = wait_for("restore-missing Blocked", WAIT, || async {
        let job = jobs.get("restore-missing").await.ok()?;
        condition(&job, "Blocked").filter(|c| c.status == "True").cloned()
    })
    .await;
    assert_eq!(blocked.reason, "BackupNotFound");
    assert!(
        blocked.message.contains("MedusaBackup no-such-backup does not exist"),
        "{}",
        blocked.message
    );
    let missing = jobs.get("restore-missing").await.expect("restore-missing");
    let status = missing.status.clone().unwrap_or_default();
    assert!(
        status.start_time.is_none() && status.finish_time.is_none(),
        "{status:?}"
    );

    for (region, _, dc) in regions {
        restore_job(
            region,
            &format!("restore-{dc}"),
            &format!("backup-{dc}"),
            dc,
        )
        .await;
    }
    // The hub applies both datacenters while they restore.
    relabel_datacenters(&hub, "during").await;

    for (region, context, dc) in regions {
        let name = format!("restore-{dc}");
        let jobs = Api::<MedusaRestoreJob>::namespaced(region.clone(), NS);
        let job = wait_for(&format!("{name} finished"), Duration::from_secs(180), || async {
            let job = jobs.get(&name).await.map_err(|e| e.to_string())?;
            match job.status.as_ref().and_then(|s| s.finish_time.as_ref()) {
                Some(_) => Ok(job),
                None => {
                    let datacenters = Api::<CassandraDatacenter>::namespaced(region.clone(), NS);
                    let live = datacenters.get(dc).await.map_err(|e| e.to_string())?;
                    Err(format!(
                        "{:?}; datacenter: stopped {:?}, RESTORE_KEY {:?}, generation {:?}, progress {:?}",
                        job.status,
                        live.spec.stopped,
                        restore_env(&live, "RESTORE_KEY"),
                        live.metadata.generation,
                        live.status.as_ref().and_then(|s| s.cassandra_operator_progress.clone())
                    ))
                }
            }
        })
        .await;
        let status = job.status.clone().unwrap_or_default();
        let complete = condition(&job, "Complete").expect("Complete");
        assert_eq!(
            (complete.status.as_str(), complete.reason.as_str()),
            ("True", "Restored")
        );
        assert!(condition(&job, "Failed").is_none(), "{status:?}");
        assert!(status.start_time.is_some() && status.datacenter_stopped.is_some());
        assert_eq!(status.restore_prepared, Some(true));
        assert_eq!(status.restore_key.len(), 36, "{status:?}");
        let mapping = status.restore_mapping.clone().expect("restoreMapping");
        assert_eq!(mapping.in_place, Some(true));
        let hosts = mapping.host_map.unwrap_or_default();
        assert_eq!(hosts.len(), 2, "{hosts:?}");
        for (target, source) in &hosts {
            assert_eq!(source.source, vec![target.clone()]);
        }

        // Each node holds exactly what its backup holds: no later row, the changed one back.
        let storage = StorageLocation::new(BUCKET, CLUSTER);
        let model = sim.cassandra();
        {
            let model = model.lock();
            for pod in hosts.keys() {
                let node = PodRef::new(context, NS, pod.as_str());
                let live = model.node_rows(&node, "app", "kv").expect("node rows");
                let saved = model
                    .backup_rows(&storage, &format!("backup-{dc}"), pod, "app", "kv")
                    .expect("backup rows");
                assert_eq!(live, saved, "{pod}: restored to its backup");
                assert!(!live.keys().any(|k| k.starts_with("after-")), "{pod}");
                assert_ne!(
                    live.get("key-0").map(String::as_str),
                    Some("changed"),
                    "{pod}"
                );
            }
        }

        // The datacenter runs the restore's template, labelled by the hub's apply during it.
        let datacenters = Api::<CassandraDatacenter>::namespaced(region.clone(), NS);
        let live = datacenters.get(dc).await.expect("datacenter");
        assert!(live.is_ready(), "{dc}");
        assert_eq!(
            restore_env(&live, "RESTORE_KEY"),
            Some(status.restore_key.clone())
        );
        assert_eq!(
            restore_env(&live, "BACKUP_NAME"),
            Some(format!("backup-{dc}"))
        );
        assert_eq!(
            restore_env(&live, "MEDUSA_MODE").as_deref(),
            Some("RESTORE")
        );
        assert_eq!(live.spec.stopped, None, "{dc}: started again");

        // The story as Events on the job.
        let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(region.clone(), NS);
        let reasons: Vec<String> = wait_for(&format!("{name}'s Events"), WAIT, || async {
            let listed = events.list(&Default::default()).await.ok()?;
            let reasons: Vec<String> = (listed.items.iter())
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(&name))
                .filter_map(|e| e.reason.clone())
                .collect();
            reasons.iter().any(|r| r == "RestoreFinished").then_some(reasons)
        })
        .await;
        for reason in [
            "RestoreStarted",
            "RestorePrepared",
            "StoppingDatacenter",
            "StartingDatacenter",
        ] {
            assert!(
                reasons.iter().any(|r| r == reason),
                "{name}: {reason} in {reasons:?}"
            );
        }
    }

    // The hub applies both datacenters again after the restore: the restore's environment
    // stays, and nothing rolls.
    let mut generations = BTreeMap::new();
    for (region, _, dc) in regions {
        let datacenters = Api::<CassandraDatacenter>::namespaced(region.clone(), NS);
        let live = datacenters.get(dc).await.expect("datacenter");
        generations.insert(dc, live.metadata.generation);
    }
    relabel_datacenters(&hub, "after").await;
    for (region, _, dc) in regions {
        let datacenters = Api::<CassandraDatacenter>::namespaced(region.clone(), NS);
        wait_for(&format!("{dc} relabelled"), WAIT, || async {
            let live = datacenters.get(dc).await.ok()?;
            let labels = live.metadata.labels.clone().unwrap_or_default();
            (labels.get("restore-test").map(String::as_str) == Some("after")).then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (region, _, dc) in regions {
        let datacenters = Api::<CassandraDatacenter>::namespaced(region.clone(), NS);
        let live = datacenters.get(dc).await.expect("datacenter");
        assert_eq!(live.metadata.generation, generations[dc], "{dc}: no roll");
        assert!(live.is_ready(), "{dc}");
        assert!(restore_env(&live, "RESTORE_KEY").is_some(), "{dc}");
    }

    // The spec of a restore cannot change.
    let changed = serde_json::json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1",
        "kind": "MedusaRestoreJob",
        "metadata": {"name": "restore-dc1", "namespace": NS},
        "spec": {"backup": "backup-dc2", "cassandraDatacenter": "dc1"},
    });
    assert_refused_as_immutable(&jobs, "restore-dc1", changed).await;

    stop_all(operators).await;
}
