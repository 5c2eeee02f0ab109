//! MedusaClusterBackupJob end to end on kube-sim, in upstream's layout (three regions
//! `kind-k8ssandra-0..2`, the hub is 0): one object in the hub backs up every datacenter of a
//! K8ssandraCluster in its region (each region's MedusaBackupJob controller runs the backup),
//! reports each datacenter's progress, finishes without a region that is down and names it, and
//! copies each datacenter's MedusaBackup to the other regions, where a datacenter can restore
//! another datacenter's backup (the bucket is shared).

mod support;

use std::time::Duration;

use federator::api::medusa::cluster_backup_job::{DatacenterPhase, MedusaClusterBackupJob};
use federator::api::medusa::{MedusaBackup, MedusaBackupJob, MedusaRestoreJob};
use kube::Api;
use kube_sim::cassandra::{ConsistencyLevel, PodRef, StorageLocation};
use support::*;

const CLUSTER: &str = "demo";
const BUCKET: &str = "medusa-bucket";
const WAIT: Duration = Duration::from_secs(60);
const CONTEXTS: [&str; 3] = ["kind-k8ssandra-0", "kind-k8ssandra-1", "kind-k8ssandra-2"];

fn medusa_cluster() -> serde_json::Value {
    let mut cluster = k8ssandra_cluster(
        CLUSTER,
        &[
            ("dc1", CONTEXTS[0], 2),
            ("dc2", CONTEXTS[1], 2),
            ("dc3", CONTEXTS[2], 2),
        ],
    );
    cluster["spec"]["medusa"] = medusa_spec(BUCKET);
    cluster["spec"]["medusa"]["purgeBackups"] = serde_json::json!(false);
    cluster
}

/// Three regions with a datacenter each, Ready and running Medusa, 40 rows in `app.kv`: the
/// control plane in the hub, a data plane in each other region (their MedusaBackupJobs).
async fn world(sim: &kube_sim::Sim, regions: &[kube::Client]) -> Vec<InProcessOperator> {
    let hub = &regions[0];
    apply_bucket_secret(hub).await;
    let operators = start_operators(&regions.iter().collect::<Vec<_>>());
    let clusters =
        Api::<federator::api::k8ssandra_cluster::K8ssandraCluster>::namespaced(hub.clone(), NS);
    apply(&clusters, CLUSTER, medusa_cluster()).await;
    for (region, dc) in regions.iter().zip(["dc1", "dc2", "dc3"]) {
        datacenter_ready(region, dc, WAIT).await;
    }
    write_app_rows(sim, CLUSTER, &["dc1", "dc2", "dc3"], 40);
    operators
}

async fn cluster_backup(hub: &kube::Client, name: &str) {
    let jobs = Api::<MedusaClusterBackupJob>::namespaced(hub.clone(), NS);
    let job = serde_json::json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1",
        "kind": "MedusaClusterBackupJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"k8ssandraCluster": {"name": CLUSTER}, "backupType": "full"},
    });
    apply(&jobs, name, job).await;
}

async fn finished(hub: &kube::Client, name: &str, limit: Duration) -> MedusaClusterBackupJob {
    let jobs = Api::<MedusaClusterBackupJob>::namespaced(hub.clone(), NS);
    wait_for(
        &format!("MedusaClusterBackupJob {name} finished"),
        limit,
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

fn true_condition<'a>(
    job: &'a MedusaClusterBackupJob,
    kind: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    (job.status.as_ref()?.conditions.iter().flatten())
        .find(|c| c.type_ == kind && c.status == "True")
}

/// Each node of `dc` in `context` holds in the bucket what it held: its rows of `app.kv`.
fn assert_bucket_holds_the_nodes(sim: &kube_sim::Sim, context: &str, dc: &str, backup: &str) {
    let storage = StorageLocation::new(BUCKET, CLUSTER);
    let model = sim.cassandra();
    let model = model.lock();
    for ordinal in 0..2 {
        let pod = format!("{CLUSTER}-{dc}-default-sts-{ordinal}");
        let node = PodRef::new(context, NS, pod.as_str());
        let live = model.node_rows(&node, "app", "kv").expect("node rows");
        assert!(!live.is_empty(), "{pod} holds no rows");
        let saved = model.backup_rows(&storage, backup, &pod, "app", "kv").expect("backup rows");
        assert_eq!(saved, live, "{pod}: the backup holds what the node held");
    }
}

#[test]
fn a_cluster_backup_backs_up_every_datacenter_in_every_region_and_another_region_restores_it() {
    let _one = one_at_a_time();
    run(every_region());
}

async fn every_region() {
    let layout = upstream_layout(3, |setup| setup.pod_listeners()).await;
    let sim = &layout.sim;
    let mut regions = Vec::new();
    for index in 0..3 {
        regions.push(sim.client(index).await.expect("region client"));
    }
    let operators = world(sim, &regions).await;
    let hub = &regions[0];

    cluster_backup(hub, "nightly").await;
    let job = finished(hub, "nightly", WAIT).await;
    let status = job.status.clone().unwrap_or_default();
    let complete = true_condition(&job, "Complete").expect("Complete");
    assert_eq!(complete.reason, "BackedUp", "{status:?}");
    assert_eq!(complete.message, "3 of 3 datacenters backed up");
    assert!(true_condition(&job, "Failed").is_none(), "{status:?}");
    assert_eq!(status.missed, None);
    let entries = status.datacenters.clone().unwrap_or_default();
    assert_eq!(
        entries.iter().map(|e| e.datacenter.as_str()).collect::<Vec<_>>(),
        ["dc1", "dc2", "dc3"]
    );
    for entry in &entries {
        assert_eq!(entry.phase, DatacenterPhase::Complete, "{entry:?}");
        assert_eq!(
            (entry.finished_pods, entry.failed_pods),
            (2, 0),
            "{entry:?}"
        );
        assert_eq!(entry.job_name, format!("nightly-{}", entry.datacenter));
        assert!(entry.finish_time.is_some());
    }
    // The hub's datacenter has the hub's context, the others their region's.
    assert_eq!(entries[1].k8s_context, CONTEXTS[1]);
    assert_eq!(entries[2].k8s_context, CONTEXTS[2]);

    // Each region ran its datacenter's job, labelled with the cluster backup; the bucket holds
    // every node; every region holds every datacenter's MedusaBackup.
    for (index, (region, dc)) in regions.iter().zip(["dc1", "dc2", "dc3"]).enumerate() {
        let jobs = Api::<MedusaBackupJob>::namespaced(region.clone(), NS);
        let made = jobs.get(&format!("nightly-{dc}")).await.expect("per-datacenter job");
        let labels = made.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("medusa.k8ssandra.io/cluster-backup").map(String::as_str),
            Some("nightly")
        );
        assert_eq!(made.spec.cassandra_datacenter, dc);
        assert_bucket_holds_the_nodes(sim, CONTEXTS[index], dc, &format!("nightly-{dc}"));
        let backups = Api::<MedusaBackup>::namespaced(region.clone(), NS);
        for source in ["dc1", "dc2", "dc3"] {
            let backup = backups
                .get_opt(&format!("nightly-{source}"))
                .await
                .expect("read")
                .unwrap_or_else(|| panic!("{dc}'s region lacks nightly-{source}"));
            assert_eq!(backup.spec.cassandra_datacenter, source);
            let recorded = backup.status.clone().unwrap_or_default();
            assert_eq!(recorded.total_nodes, Some(2), "{dc}: {recorded:?}");
            assert_eq!(recorded.status.as_deref(), Some("SUCCESS"));
        }
    }

    // The spec cannot change.
    let jobs = Api::<MedusaClusterBackupJob>::namespaced(hub.clone(), NS);
    let params = kube::api::PatchParams::apply("test").force();
    let changed = serde_json::json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1", "kind": "MedusaClusterBackupJob",
        "metadata": {"name": "nightly", "namespace": NS},
        "spec": {"k8ssandraCluster": {"name": CLUSTER}, "backupType": "differential"},
    });
    let refused = jobs.patch("nightly", &params, &kube::api::Patch::Apply(&changed)).await;
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("cannot change"), "{message}");

    // After the backup: new rows and a changed one. Then a datacenter in region 1 restores
    // dc1's backup, taken in the hub (the bucket is shared): exactly those rows are in it. The
    // datacenter is a new cluster's (`standby`, reading demo's backups): a datacenter of demo
    // itself would take tokens dc1's live nodes own (Medusa restores a node's tokens with it).
    let mut later: Vec<(String, String)> =
        (0..20).map(|n| (format!("after-{n}"), format!("later-{n}"))).collect();
    later.push(("key-0".to_string(), "changed".to_string()));
    sim.cassandra_write(CLUSTER, "dc1", "app", "kv", later, ConsistencyLevel::All)
        .expect("later rows");
    let region1 = &regions[1];
    let clusters =
        Api::<federator::api::k8ssandra_cluster::K8ssandraCluster>::namespaced(hub.clone(), NS);
    let mut standby = k8ssandra_cluster("standby", &[("dc4", CONTEXTS[1], 2)]);
    standby["spec"]["medusa"] = medusa_cluster()["spec"]["medusa"].clone();
    standby["spec"]["medusa"]["storageProperties"]["prefix"] = CLUSTER.into();
    apply(&clusters, "standby", standby).await;
    datacenter_ready(region1, "dc4", WAIT).await;
    let restores = Api::<MedusaRestoreJob>::namespaced(region1.clone(), NS);
    apply(
        &restores,
        "dc4-from-dc1",
        serde_json::json!({
            "apiVersion": "medusa.k8ssandra.io/v1alpha1", "kind": "MedusaRestoreJob",
            "metadata": {"name": "dc4-from-dc1", "namespace": NS},
            "spec": {"backup": "nightly-dc1", "cassandraDatacenter": "dc4"},
        }),
    )
    .await;
    let restored = wait_for(
        "dc4-from-dc1 finished",
        Duration::from_secs(120),
        || async {
            let job = restores.get("dc4-from-dc1").await.map_err(|e| e.to_string())?;
            match job.status.as_ref().and_then(|s| s.finish_time.as_ref()) {
                Some(_) => Ok(job),
                None => Err(format!("{:?}", job.status)),
            }
        },
    )
    .await;
    let status = restored.status.clone().unwrap_or_default();
    let complete = (status.conditions.iter().flatten()).find(|c| c.type_ == "Complete");
    assert_eq!(
        complete.map(|c| (c.status.as_str(), c.reason.as_str())),
        Some(("True", "Restored")),
        "{status:?}"
    );
    let mapping = status.restore_mapping.clone().expect("restoreMapping");
    assert_eq!(mapping.in_place, Some(false));
    let hosts = mapping.host_map.unwrap_or_default();
    assert_eq!(
        hosts.get("standby-dc4-default-sts-0").map(|s| s.source.clone()),
        Some(vec!["demo-dc1-default-sts-0".to_string()])
    );
    let storage = StorageLocation::new(BUCKET, CLUSTER);
    {
        let model = sim.cassandra();
        let model = model.lock();
        for (target, source) in &hosts {
            let node = PodRef::new(CONTEXTS[1], NS, target.as_str());
            let live = model.node_rows(&node, "app", "kv").expect("node rows");
            let saved = model
                .backup_rows(&storage, "nightly-dc1", &source.source[0], "app", "kv")
                .expect("backup rows");
            assert_eq!(
                live, saved,
                "{target}: exactly {}'s backed-up rows",
                source.source[0]
            );
            assert!(!live.keys().any(|k| k.starts_with("after-")), "{target}");
            assert_ne!(live.get("key-0").map(String::as_str), Some("changed"));
        }
    }

    // Deleting the cluster backup deletes its jobs in every region; the backups stay.
    jobs.delete("nightly", &Default::default()).await.expect("delete");
    for (region, dc) in regions.iter().zip(["dc1", "dc2", "dc3"]) {
        let per_dc = Api::<MedusaBackupJob>::namespaced(region.clone(), NS);
        let name = format!("nightly-{dc}");
        wait_for(&format!("{name} deleted"), WAIT, || async {
            matches!(per_dc.get_opt(&name).await, Ok(None))
        })
        .await;
        let backups = Api::<MedusaBackup>::namespaced(region.clone(), NS);
        assert!(
            backups.get_opt(&name).await.ok().flatten().is_some(),
            "{name} stays"
        );
    }

    // dc2 (of demo itself) restoring dc1's backup while dc1's nodes still own its tokens: the
    // medusa-restore init container fails, and the job says so within seconds of the pod.
    let dc2_restores = Api::<MedusaRestoreJob>::namespaced(region1.clone(), NS);
    apply(
        &dc2_restores,
        "dc2-from-dc1",
        serde_json::json!({
            "apiVersion": "medusa.k8ssandra.io/v1alpha1", "kind": "MedusaRestoreJob",
            "metadata": {"name": "dc2-from-dc1", "namespace": NS},
            "spec": {"backup": "nightly-dc1", "cassandraDatacenter": "dc2"},
        }),
    )
    .await;
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(region1.clone(), NS);
    let failing_pod = wait_for(
        "a dc2 pod failing its restore",
        Duration::from_secs(90),
        || async {
            let listed = pods.list(&Default::default()).await.ok()?;
            (listed.items.iter())
                .filter(|p| p.metadata.name.as_deref().is_some_and(|n| n.starts_with("demo-dc2-")))
                .find(|p| {
                    federator::dataplane::medusa_restore::restore_container_failure(p).is_some()
                })
                .and_then(|p| p.metadata.name.clone())
        },
    )
    .await;
    let blocked = wait_for(
        "dc2-from-dc1 Blocked by the failing init container",
        Duration::from_secs(10),
        || async {
            let job = dc2_restores.get("dc2-from-dc1").await.map_err(|e| e.to_string())?;
            let status = job.status.clone().unwrap_or_default();
            (status.conditions.iter().flatten())
                .find(|c| c.type_ == "Blocked" && c.status == "True")
                .filter(|c| c.reason == "RestoreContainerFailing")
                .cloned()
                .ok_or_else(|| format!("{status:?}"))
        },
    )
    .await;
    assert!(
        blocked.message.contains("pod demo-dc2-default-sts-")
            && blocked.message.contains("init container medusa-restore exited with code 1")
            // Medusa writes no termination message: the job says where the log is.
            && blocked.message.contains("kubectl logs demo-dc2-default-sts-"),
        "{} ({failing_pod} fails)",
        blocked.message
    );
    assert!(
        !blocked.message.contains("aws_secret_access_key"),
        "{}",
        blocked.message
    );
    let job = dc2_restores.get("dc2-from-dc1").await.expect("restore job");
    assert_eq!(
        job.status.as_ref().and_then(|s| s.finish_time.as_ref()),
        None,
        "kept waiting: the kubelet retries the container"
    );
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(region1.clone(), NS);
    wait_for(
        "the restore's RestoreContainerFailing Event",
        WAIT,
        || async {
            let listed = events.list(&Default::default()).await.ok()?;
            let warned = (listed.items.iter()).any(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("dc2-from-dc1")
                    && e.reason.as_deref() == Some("RestoreContainerFailing")
                    && e.type_.as_deref() == Some("Warning")
            });
            warned.then_some(())
        },
    )
    .await;
    stop_all(operators).await;
}

#[test]
fn a_backup_with_one_region_down_finishes_everywhere_else_and_names_the_region_it_missed() {
    let _one = one_at_a_time();
    run(one_region_down());
}

async fn one_region_down() {
    let layout = upstream_layout(3, |setup| setup.pod_listeners()).await;
    let sim = &layout.sim;
    let mut regions = Vec::new();
    for index in 0..3 {
        regions.push(sim.client(index).await.expect("region client"));
    }
    let operators = world(sim, &regions).await;
    let hub = &regions[0];
    sim.stop(2).expect("stop region 2");

    let started = std::time::Instant::now();
    cluster_backup(hub, "missing-one").await;
    // While region 2 is down, the others finish and dc3 is Unreachable, saying why.
    let jobs = Api::<MedusaClusterBackupJob>::namespaced(hub.clone(), NS);
    wait_for("dc1 and dc2 Complete, dc3 Unreachable", WAIT, || async {
        let job = jobs.get("missing-one").await.map_err(|e| e.to_string())?;
        let entries = job.status.clone().unwrap_or_default().datacenters.unwrap_or_default();
        let phases: Vec<DatacenterPhase> = entries.iter().map(|e| e.phase).collect();
        let why = entries.get(2).and_then(|e| e.message.clone()).unwrap_or_default();
        match phases[..] {
            [
                DatacenterPhase::Complete,
                DatacenterPhase::Complete,
                DatacenterPhase::Unreachable,
            ] if why.contains(CONTEXTS[2]) => Ok(()),
            _ => Err(format!("{entries:?}")),
        }
    })
    .await;
    let job = finished(hub, "missing-one", Duration::from_secs(90)).await;
    assert!(
        started.elapsed() < Duration::from_secs(100),
        "finished {:?} after the start",
        started.elapsed()
    );
    let status = job.status.clone().unwrap_or_default();
    let complete = true_condition(&job, "Complete").expect("Complete");
    assert_eq!(complete.reason, "RegionsMissed", "{status:?}");
    assert!(
        complete.message.starts_with("2 of 3 datacenters backed up; missed"),
        "{}",
        complete.message
    );
    assert!(
        complete.message.contains("dc3 (kind-k8ssandra-2)"),
        "{}",
        complete.message
    );
    assert_eq!(
        status.missed,
        Some(vec!["dc3 (kind-k8ssandra-2)".to_string()])
    );
    let entries = status.datacenters.clone().unwrap_or_default();
    assert_eq!(entries[2].phase, DatacenterPhase::Unreachable);
    for (index, dc) in ["dc1", "dc2"].iter().enumerate() {
        assert_eq!(entries[index].phase, DatacenterPhase::Complete);
        assert_bucket_holds_the_nodes(sim, CONTEXTS[index], dc, &format!("missing-one-{dc}"));
    }
    // The missed region said so as a Warning Event on the cluster backup.
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(hub.clone(), NS);
    let reasons: Vec<String> = wait_for("the cluster backup's Events", WAIT, || async {
        let listed = events.list(&Default::default()).await.ok()?;
        let reasons: Vec<String> = (listed.items.iter())
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("missing-one"))
            .filter_map(|e| e.reason.clone())
            .collect();
        reasons.iter().any(|r| r == "RegionsMissed").then_some(reasons)
    })
    .await;
    assert!(
        reasons.iter().any(|r| r == "RegionUnreachable"),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r == "BackupJobCreated"),
        "{reasons:?}"
    );
    // The copies region 2 missed are listed, said once per backup (not at every poll), and
    // made once the region is back.
    for entry in &entries[..2] {
        assert_eq!(
            entry.missing_copies,
            Some(vec![format!("{}/{NS}", CONTEXTS[2])]),
            "{entry:?}"
        );
    }
    // Two copies missed (dc1's and dc2's), over about 15 polls: said at most once each (Events
    // of one reason may be merged into a series).
    let listed = events.list(&Default::default()).await.expect("events");
    let not_copied: i32 = (listed.items.iter())
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("missing-one"))
        .filter(|e| e.reason.as_deref() == Some("BackupNotCopied"))
        .map(|e| e.series.as_ref().map_or(1, |s| s.count))
        .sum();
    assert!((1..=2).contains(&not_copied), "{not_copied}: {reasons:?}");
    sim.start(2).await.expect("start region 2");
    let region2_backups = Api::<MedusaBackup>::namespaced(regions[2].clone(), NS);
    wait_for(
        "region 2 holding the copies",
        Duration::from_secs(60),
        || async {
            for source in ["dc1", "dc2"] {
                let name = format!("missing-one-{source}");
                let copy = region2_backups.get_opt(&name).await.map_err(|e| e.to_string())?;
                let recorded = copy.and_then(|c| c.status).ok_or(format!("no {name}"))?;
                if recorded.total_nodes != Some(2) {
                    return Err(format!("{name}: {recorded:?}"));
                }
            }
            Ok(())
        },
    )
    .await;
    wait_for("no copy missing", WAIT, || async {
        let job = jobs.get("missing-one").await.map_err(|e| e.to_string())?;
        let entries = job.status.unwrap_or_default().datacenters.unwrap_or_default();
        match entries.iter().all(|e| e.missing_copies.is_none()) {
            true => Ok(()),
            false => Err(format!("{entries:?}")),
        }
    })
    .await;
    // Deleting waits for the region that is down (its job may exist there); nothing else to see.
    stop_all(operators).await;
}
