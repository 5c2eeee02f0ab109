//! Medusa schedules, purges and syncs end to end on kube-sim, in upstream's layout (contexts
//! `kind-k8ssandra-N`): the hub runs dc1 (control plane), region 1 runs dc2 (its data plane).
//! A MedusaBackupSchedule fires backups (`@every`), skipping under Forbid while one runs; a
//! purge (a schedule's MedusaTask, then a MedusaTask) keeps `maxBackupCount` and `maxBackupAge`
//! in the bucket and as MedusaBackup objects; a sync records a backup that exists only in the
//! bucket; a bad cron gets the `Scheduled` condition; the K8ssandraCluster's daily purge
//! schedule is in each region while `purgeBackups` is not false.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use federator::api::medusa::{MedusaBackup, MedusaBackupJob, MedusaBackupSchedule, MedusaTask};
use kube::{Api, ResourceExt};
use kube_sim::cassandra::{BackupMode, PodRef, StorageLocation};
use support::*;

const CLUSTER: &str = "demo";
const BUCKET: &str = "medusa-bucket";
const WAIT: Duration = Duration::from_secs(60);
const DAY_MILLIS: i64 = 86_400_000;

fn medusa_cluster(purge_backups: Option<bool>) -> serde_json::Value {
    let mut cluster = k8ssandra_cluster(
        CLUSTER,
        &[
            ("dc1", "kind-k8ssandra-0", 2),
            ("dc2", "kind-k8ssandra-1", 2),
        ],
    );
    cluster["spec"]["medusa"] = medusa_spec(BUCKET);
    let storage = &mut cluster["spec"]["medusa"]["storageProperties"];
    storage["maxBackupCount"] = serde_json::json!(2);
    storage["maxBackupAge"] = serde_json::json!(1);
    if let Some(purge) = purge_backups {
        cluster["spec"]["medusa"]["purgeBackups"] = serde_json::json!(purge);
    }
    cluster
}

/// dc1 in the hub, dc2 in region 1, both Ready and running Medusa; the operators to stop.
async fn medusa_world(
    hub: &kube::Client,
    region1: &kube::Client,
    purge_backups: Option<bool>,
) -> Vec<InProcessOperator> {
    apply_bucket_secret(hub).await;
    let operators = start_operators(&[hub, region1]);
    let clusters =
        Api::<federator::api::k8ssandra_cluster::K8ssandraCluster>::namespaced(hub.clone(), NS);
    apply(&clusters, CLUSTER, medusa_cluster(purge_backups)).await;
    datacenter_ready(hub, "dc1", Duration::from_secs(90)).await;
    datacenter_ready(region1, "dc2", Duration::from_secs(90)).await;
    operators
}

fn schedule(name: &str, cron: &str, operation: &str, disabled: bool) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1",
        "kind": "MedusaBackupSchedule",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "cronSchedule": cron,
            "disabled": disabled,
            "operationType": operation,
            "backupSpec": {"cassandraDatacenter": "dc2", "backupType": "full"},
        },
    })
}

fn owned_by(meta: &kube::api::ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|o| o.uid == uid)
}

/// The names of the backups in the bucket that dc2's nodes took, oldest first.
fn dc2_backups_in_bucket(sim: &kube_sim::Sim) -> Vec<String> {
    let storage = StorageLocation::new(BUCKET, CLUSTER);
    let model = sim.cassandra();
    let model = model.lock();
    (model.list_backups(&storage, None).into_iter())
        .filter(|b| b.node_statuses.iter().any(|n| n.host.starts_with("demo-dc2-")))
        .map(|b| b.name)
        .collect()
}

async fn dc2_medusa_backups(region: &kube::Client) -> BTreeSet<String> {
    let backups = Api::<MedusaBackup>::namespaced(region.clone(), NS);
    let listed = backups.list(&Default::default()).await.map(|l| l.items).unwrap_or_default();
    (listed.iter()).filter(|b| b.spec.cassandra_datacenter == "dc2").map(|b| b.name_any()).collect()
}

/// Waits for task `name` to finish; returns it.
async fn finished_task(region: &kube::Client, name: &str) -> MedusaTask {
    let tasks = Api::<MedusaTask>::namespaced(region.clone(), NS);
    wait_for(&format!("MedusaTask {name} finished"), WAIT, || async {
        let task = tasks.get(name).await.map_err(|e| e.to_string())?;
        match task.status.as_ref().and_then(|s| s.finish_time.as_ref()) {
            Some(_) => Ok(task),
            None => Err(format!("{:?}", task.status)),
        }
    })
    .await
}

/// The purge task's pods each purged `per_pod` node backups, and its sync task brought the
/// MedusaBackups of dc2 to what the bucket holds.
async fn assert_purged(region: &kube::Client, task: &str, per_pod: i64) {
    let purge = finished_task(region, task).await;
    let status = purge.status.clone().unwrap_or_default();
    let finished = status.finished.clone().unwrap_or_default();
    let mut pods: Vec<String> = finished.iter().filter_map(|r| r.pod_name.clone()).collect();
    pods.sort();
    assert_eq!(
        pods,
        ["demo-dc2-default-sts-0", "demo-dc2-default-sts-1"],
        "{status:?}"
    );
    for result in &finished {
        assert_eq!(result.nb_backups_purged, Some(per_pod), "{status:?}");
    }
    assert!(status.failed.unwrap_or_default().is_empty());
    let complete = status.conditions.iter().flatten().find(|c| c.type_ == "Complete");
    assert_eq!(complete.map(|c| c.status.as_str()), Some("True"));
    let sync = finished_task(region, &format!("{task}-sync")).await;
    assert_eq!(
        sync.spec.operation,
        federator::api::medusa::task::MedusaOperation::Sync
    );
}

#[test]
fn a_backup_schedule_fires_and_purges_keep_max_backup_count_then_max_backup_age() {
    let _one = one_at_a_time();
    run(schedule_and_purge());
}

async fn schedule_and_purge() {
    let layout = upstream_layout(2, |setup| setup.pod_listeners()).await;
    let sim = &layout.sim;
    let hub = sim.client(0).await.expect("hub client");
    let region1 = sim.client(1).await.expect("region 1 client");
    // No daily purge schedule here: the test's own purges are the only ones.
    let operators = medusa_world(&hub, &region1, Some(false)).await;
    // Each backup takes 3s: a schedule firing every 2s overlaps its previous backup.
    sim.cassandra().lock().set_backup_duration_millis(3_000);

    // In region 1, by its data plane: a backup every 2 seconds, Forbid by default.
    let schedules = Api::<MedusaBackupSchedule>::namespaced(region1.clone(), NS);
    apply(
        &schedules,
        "often",
        schedule("often", "@every 2s", "backup", false),
    )
    .await;
    let live = wait_for("often has a nextSchedule", WAIT, || async {
        let live = schedules.get("often").await.ok()?;
        live.status.as_ref()?.next_schedule.as_ref()?;
        Some(live)
    })
    .await;
    let uid = live.uid().unwrap_or_default();
    wait_for(
        "4 scheduled backups recorded",
        Duration::from_secs(90),
        || async {
            let recorded = dc2_medusa_backups(&region1).await;
            match recorded.len() >= 4 {
                true => Ok(()),
                false => Err(format!("{recorded:?}")),
            }
        },
    )
    .await;
    apply(
        &schedules,
        "often",
        schedule("often", "@every 2s", "backup", true),
    )
    .await;

    // Every job is the schedule's, named after it, and finished; each has its MedusaBackup.
    let jobs = Api::<MedusaBackupJob>::namespaced(region1.clone(), NS);
    let names: Vec<String> = wait_for("the schedule's jobs finished", WAIT, || async {
        let listed = jobs.list(&Default::default()).await.map_err(|e| e.to_string())?;
        let ours: Vec<&MedusaBackupJob> =
            listed.items.iter().filter(|j| owned_by(&j.metadata, &uid)).collect();
        let running = ours
            .iter()
            .filter(|j| j.status.as_ref().and_then(|s| s.finish_time.as_ref()).is_none())
            .count();
        let recorded = dc2_medusa_backups(&region1).await;
        let names: Vec<String> = ours.iter().map(|j| j.name_any()).collect();
        match running == 0 && names.iter().all(|n| recorded.contains(n)) {
            true => Ok(names),
            false => {
                let states: Vec<String> =
                    (ours.iter()).map(|j| format!("{}: {:?}", j.name_any(), j.status)).collect();
                Err(format!(
                    "{running} running; jobs {states:?}; backups {recorded:?}"
                ))
            }
        }
    })
    .await;
    for name in &names {
        let stamp = name.strip_prefix("often-").and_then(|s| s.parse::<i64>().ok());
        assert!(stamp.is_some(), "{name}: <schedule>-<unix seconds>");
    }
    let status = schedules.get("often").await.expect("often").status.unwrap_or_default();
    assert!(status.last_execution.is_some() && status.next_schedule.is_some());

    // Forbid skipped the fires that came while a 3s backup ran, and said so.
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(region1.clone(), NS);
    let reasons: Vec<String> = wait_for("the schedule's Events", WAIT, || async {
        let listed = events.list(&Default::default()).await.map_err(|e| e.to_string())?;
        let reasons: Vec<String> = (listed.items.iter())
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("often"))
            .filter_map(|e| e.reason.clone())
            .collect();
        match reasons.iter().any(|r| r == "ScheduleSkipped") {
            true => Ok(reasons),
            false => {
                let all: Vec<String> = (listed.items.iter())
                    .map(|e| {
                        format!(
                            "{:?}/{:?}",
                            e.regarding.as_ref().and_then(|r| r.name.clone()),
                            e.reason
                        )
                    })
                    .collect();
                Err(format!("{all:?}"))
            }
        }
    })
    .await;
    assert!(
        reasons.iter().any(|r| r == "BackupScheduled"),
        "{reasons:?}"
    );

    let before = dc2_backups_in_bucket(sim);
    assert_eq!(before.len(), names.len(), "{before:?} / {names:?}");
    assert!(before.len() >= 4);

    // A purge schedule fires a MedusaTask: maxBackupCount 2 keeps each node's 2 newest.
    apply(
        &schedules,
        "purger",
        schedule("purger", "@every 1s", "purge", false),
    )
    .await;
    let purger_uid = wait_for("purger seen", WAIT, || async {
        schedules.get("purger").await.ok().and_then(|s| s.uid())
    })
    .await;
    let tasks = Api::<MedusaTask>::namespaced(region1.clone(), NS);
    let first_purge = wait_for("a purge task", WAIT, || async {
        let listed = tasks.list(&Default::default()).await.ok()?;
        let mut ours: Vec<String> = (listed.items.iter())
            .filter(|t| owned_by(&t.metadata, &purger_uid))
            .map(|t| t.name_any())
            .collect();
        ours.sort();
        ours.into_iter().next()
    })
    .await;
    apply(
        &schedules,
        "purger",
        schedule("purger", "@every 1s", "purge", true),
    )
    .await;
    let expected_purged = i64::try_from(before.len() - 2).expect("count");
    assert_purged(&region1, &first_purge, expected_purged).await;
    let kept: Vec<String> = before[before.len() - 2..].to_vec();
    assert_eq!(dc2_backups_in_bucket(sim), kept);
    wait_for("MedusaBackups follow the bucket", WAIT, || async {
        let recorded = dc2_medusa_backups(&region1).await;
        match recorded == kept.iter().cloned().collect() {
            true => Ok(()),
            false => Err(format!("{recorded:?}")),
        }
    })
    .await;
    // The sync deleted the purged backups' jobs with them.
    for purged in &before[..before.len() - 2] {
        assert!(
            jobs.get_opt(purged).await.expect("jobs").is_none(),
            "{purged}"
        );
    }

    // maxBackupAge 1 (day): the older of the two, taken three days ago, goes.
    let storage = StorageLocation::new(BUCKET, CLUSTER);
    sim.cassandra().lock().backdate_backup(&storage, &kept[0], 3 * DAY_MILLIS).expect("backdate");
    let by_age = serde_json::json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1",
        "kind": "MedusaTask",
        "metadata": {"name": "purge-by-age", "namespace": NS},
        "spec": {"cassandraDatacenter": "dc2", "operation": "purge"},
    });
    apply(&tasks, "purge-by-age", by_age).await;
    assert_purged(&region1, "purge-by-age", 1).await;
    assert_eq!(dc2_backups_in_bucket(sim), kept[1..].to_vec());
    wait_for("MedusaBackups keep the young one", WAIT, || async {
        let recorded = dc2_medusa_backups(&region1).await;
        match recorded == kept[1..].iter().cloned().collect() {
            true => Ok(()),
            false => Err(format!("{recorded:?}")),
        }
    })
    .await;

    stop_all(operators).await;
}

fn condition_of(schedule: &MedusaBackupSchedule, kind: &str) -> Option<(String, String)> {
    let conditions = schedule.status.as_ref()?.conditions.as_ref()?;
    let found = conditions.iter().find(|c| c.type_ == kind)?;
    Some((found.status.clone(), found.message.clone()))
}

#[test]
fn the_daily_purge_schedule_follows_purge_backups_and_a_sync_records_bucket_only_backups() {
    let _one = one_at_a_time();
    run(daily_purge_and_sync());
}

async fn daily_purge_and_sync() {
    let layout = upstream_layout(2, |setup| setup.pod_listeners()).await;
    let sim = &layout.sim;
    let hub = sim.client(0).await.expect("hub client");
    let region1 = sim.client(1).await.expect("region 1 client");
    let operators = medusa_world(&hub, &region1, None).await;

    // purgeBackups defaults to true: each region has its datacenter's daily purge schedule,
    // scheduled by the controller there for the next midnight (UTC).
    for (region, dc) in [(&hub, "dc1"), (&region1, "dc2")] {
        let schedules = Api::<MedusaBackupSchedule>::namespaced(region.clone(), NS);
        let name = format!("{CLUSTER}-{dc}-medusa-purge");
        let live = wait_for(&format!("{name} scheduled"), WAIT, || async {
            let live = schedules.get_opt(&name).await.ok().flatten()?;
            live.status.as_ref()?.next_schedule.as_ref()?;
            Some(live)
        })
        .await;
        assert_eq!(live.spec.cron_schedule, "0 0 * * *");
        assert_eq!(
            live.spec.operation_type(),
            federator::api::medusa::backup_schedule::ScheduledOperation::Purge
        );
        assert_eq!(live.spec.backup_spec.cassandra_datacenter, dc);
        let next = live.status.and_then(|s| s.next_schedule).expect("nextSchedule").0;
        let text = next.to_string();
        assert!(text.ends_with("T00:00:00Z"), "{text}");
    }

    // A cron schedule upstream's parser refuses gets the condition naming the field.
    let schedules = Api::<MedusaBackupSchedule>::namespaced(hub.clone(), NS);
    let mut bad = schedule("bad-cron", "61 * * * *", "backup", false);
    bad["spec"]["backupSpec"]["cassandraDatacenter"] = serde_json::json!("dc1");
    apply(&schedules, "bad-cron", bad).await;
    let (status, message) = wait_for("bad-cron refused", WAIT, || async {
        let live = schedules.get("bad-cron").await.ok()?;
        condition_of(&live, "Scheduled").filter(|(s, _)| s == "False")
    })
    .await;
    assert_eq!(status, "False");
    assert!(message.contains("spec.cronSchedule"), "{message}");
    let jobs = Api::<MedusaBackupJob>::namespaced(hub.clone(), NS);
    let listed = jobs.list(&Default::default()).await.expect("jobs");
    assert!(listed.items.is_empty(), "a bad schedule fires nothing");

    // A backup Medusa took outside Federator (only in the bucket): a sync records it.
    let storage = StorageLocation::new(BUCKET, CLUSTER);
    let pods: Vec<PodRef> = (0..2)
        .map(|n| {
            PodRef::new(
                "kind-k8ssandra-0",
                NS,
                format!("{CLUSTER}-dc1-default-sts-{n}"),
            )
        })
        .collect();
    sim.cassandra()
        .lock()
        .backup(&storage, CLUSTER, "taken-by-hand", &pods, BackupMode::Full)
        .expect("backup in the bucket");
    let tasks = Api::<MedusaTask>::namespaced(hub.clone(), NS);
    let sync = serde_json::json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1",
        "kind": "MedusaTask",
        "metadata": {"name": "sync-dc1", "namespace": NS},
        "spec": {"cassandraDatacenter": "dc1", "operation": "sync"},
    });
    apply(&tasks, "sync-dc1", sync).await;
    let synced = finished_task(&hub, "sync-dc1").await;
    let complete = (synced.status.iter().flat_map(|s| s.conditions.iter().flatten()))
        .find(|c| c.type_ == "Complete")
        .map(|c| c.status.clone());
    assert_eq!(complete.as_deref(), Some("True"), "{:?}", synced.status);
    let backups = Api::<MedusaBackup>::namespaced(hub.clone(), NS);
    let recorded = backups.get("taken-by-hand").await.expect("MedusaBackup taken-by-hand");
    assert_eq!(recorded.spec.cassandra_datacenter, "dc1");
    let status = recorded.status.unwrap_or_default();
    assert_eq!(status.status.as_deref(), Some("SUCCESS"));
    assert_eq!(
        (status.total_nodes, status.finished_nodes),
        (Some(2), Some(2))
    );
    assert!(status.start_time.is_some() && status.finish_time.is_some());

    // purgeBackups false: the schedules go from both regions.
    let clusters =
        Api::<federator::api::k8ssandra_cluster::K8ssandraCluster>::namespaced(hub.clone(), NS);
    apply(&clusters, CLUSTER, medusa_cluster(Some(false))).await;
    for (region, dc) in [(&hub, "dc1"), (&region1, "dc2")] {
        let schedules = Api::<MedusaBackupSchedule>::namespaced(region.clone(), NS);
        let name = format!("{CLUSTER}-{dc}-medusa-purge");
        wait_for(&format!("{name} removed"), WAIT, || async {
            schedules.get_opt(&name).await.is_ok_and(|found| found.is_none())
        })
        .await;
    }

    stop_all(operators).await;
}
