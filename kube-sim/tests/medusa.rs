//! Medusa's stand-in through its gRPC wire (the `medusa-grpc` tonic client against
//! `kube_sim::medusa::serve` on an ephemeral 127.0.0.1 port) and its `medusa-restore` init
//! container, over a two-region cluster of the Cassandra model.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube_sim::cassandra::{
    CassandraModel, Column, ConsistencyLevel, NodeSpec, PodRef, Replication, SharedModel,
    StorageLocation,
};
use kube_sim::medusa::{
    BACKUP_NAME_ENV, MedusaConfig, MedusaService, RESTORE_KEY_ENV, RESTORE_MAPPING_ENV,
    RestoreMapping, RestoreOutcome, prepared_restore_mapping, restore_on_start, serve,
};
use medusa_grpc::backup_request::Mode;
use medusa_grpc::medusa_client::MedusaClient;
use medusa_grpc::*;
use tonic::transport::Channel;

const CLUSTER: &str = "demo";
const APP: &str = "app";
const TABLE: &str = "events";
const DAY: i64 = 86_400_000;

fn bucket() -> StorageLocation {
    StorageLocation::new("medusa-bucket", CLUSTER)
}

/// `demo` with dc1 (3 nodes) in region `west` and dc2 (3 nodes) in region `east`, an `app`
/// keyspace with two replicas in each, and `rows` rows written.
fn two_region_cluster(seed: u64, rows: usize) -> (SharedModel, Vec<PodRef>, Vec<PodRef>) {
    let mut model = CassandraModel::deterministic(seed);
    let mut start_dc = |region: &str, dc: &str, octet: u8| -> Vec<PodRef> {
        (0..3)
            .map(|i| {
                let pod = PodRef::new(
                    region,
                    "k8ssandra",
                    format!("{CLUSTER}-{dc}-default-sts-{i}"),
                );
                let ip = format!("10.{octet}.0.{}", i + 1);
                model
                    .start_node(NodeSpec::new(CLUSTER, pod.clone(), &ip, dc, "default"))
                    .expect("node starts");
                pod
            })
            .collect()
    };
    let dc1 = start_dc("west", "dc1", 1);
    let dc2 = start_dc("east", "dc2", 2);
    model
        .create_keyspace(
            CLUSTER,
            APP,
            &Replication::network_topology([("dc1", 2), ("dc2", 2)]),
        )
        .expect("keyspace");
    model
        .create_table(
            CLUSTER,
            APP,
            TABLE,
            vec![
                Column::partition_key("id", "text"),
                Column::regular("v", "text"),
            ],
        )
        .expect("table");
    write(&mut model, "k", rows);
    (Arc::new(parking_lot::Mutex::new(model)), dc1, dc2)
}

fn write(model: &mut CassandraModel, prefix: &str, n: usize) {
    let rows = (0..n).map(|i| (format!("{prefix}-{i}"), format!("value-{prefix}-{i}")));
    model
        .write(
            CLUSTER,
            "dc1",
            APP,
            TABLE,
            rows,
            ConsistencyLevel::EachQuorum,
        )
        .expect("write");
}

/// Serves the pod's Medusa on an ephemeral port and connects a client to it.
async fn medusa(service: MedusaService) -> MedusaClient<Channel> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(serve(listener, service));
    MedusaClient::connect(format!("http://{address}")).await.expect("client connects")
}

async fn medusa_of(model: &SharedModel, pod: &PodRef) -> MedusaClient<Channel> {
    medusa(MedusaService::new(model.clone(), pod.clone(), bucket())).await
}

fn full(name: &str) -> BackupRequest {
    BackupRequest {
        name: name.to_string(),
        mode: Mode::Full as i32,
    }
}

fn status_of(value: i32) -> StatusType {
    StatusType::try_from(value).expect("a StatusType")
}

async fn backups(client: &mut MedusaClient<Channel>) -> GetBackupsResponse {
    client.get_backups(GetBackupsRequest {}).await.expect("GetBackups").into_inner()
}

#[tokio::test]
async fn async_backup_finishes_with_the_clock_and_is_listed_from_another_region() {
    let (model, dc1, dc2) = two_region_cluster(21, 40);
    model.lock().set_backup_duration_millis(60_000);
    let mut west = Vec::new();
    for pod in &dc1 {
        west.push(medusa_of(&model, pod).await);
    }
    let mut east = medusa_of(&model, &dc2[0]).await;

    for client in &mut west {
        let response =
            client.async_backup(full("nightly")).await.expect("AsyncBackup").into_inner();
        assert_eq!(response.backup_name, "nightly");
        assert_eq!(status_of(response.status), StatusType::InProgress);
    }
    let status = west[0]
        .backup_status(BackupStatusRequest {
            backup_name: "nightly".into(),
        })
        .await
        .expect("BackupStatus")
        .into_inner();
    assert_eq!(status_of(status.status), StatusType::InProgress);
    assert_eq!(
        (status.start_time.as_str(), status.finish_time.as_str()),
        ("2024-01-01 00:00:00", "")
    );

    let listed = backups(&mut east).await;
    assert_eq!(listed.backups.len(), 1);
    let summary = &listed.backups[0];
    assert_eq!(
        (
            summary.backup_name.as_str(),
            summary.backup_type.as_str(),
            summary.total_nodes,
            summary.finished_nodes
        ),
        ("nightly", "full", 3, 0)
    );
    assert_eq!(
        (status_of(summary.status), summary.finish_time),
        (StatusType::InProgress, 0)
    );
    assert_eq!(status_of(listed.overall_status), StatusType::InProgress);

    model.lock().advance_millis(60_000);
    let status = west[0]
        .backup_status(BackupStatusRequest {
            backup_name: "nightly".into(),
        })
        .await
        .expect("BackupStatus")
        .into_inner();
    assert_eq!(status_of(status.status), StatusType::Success);
    assert_eq!(status.finish_time, "2024-01-01 00:01:00");

    let listed = backups(&mut east).await;
    let summary = &listed.backups[0];
    assert_eq!(status_of(listed.overall_status), StatusType::Success);
    assert_eq!(
        (status_of(summary.status), summary.finished_nodes),
        (StatusType::Success, 3)
    );
    assert_eq!(summary.finish_time - summary.start_time, 60);
    assert!(summary.total_size > 0 && summary.total_objects > 0);
    let hosts: Vec<&str> = summary.nodes.iter().map(|n| n.host.as_str()).collect();
    assert_eq!(
        hosts,
        dc1.iter().map(|p| p.name.as_str()).collect::<Vec<_>>()
    );
    for node in &summary.nodes {
        let pod = dc1.iter().find(|p| p.name == node.host).expect("a dc1 pod");
        assert_eq!(node.tokens, model.lock().node(pod).expect("node").tokens);
        assert_eq!(
            (node.datacenter.as_str(), node.rack.as_str()),
            ("dc1", "default")
        );
    }

    let one = east
        .get_backup(GetBackupRequest {
            backup_name: "nightly".into(),
        })
        .await
        .expect("GetBackup")
        .into_inner();
    assert_eq!(one.backup.as_ref(), Some(summary));
    assert_eq!(status_of(one.status), StatusType::Success);

    // Medusa raises for an unknown backup in GetBackup; BackupStatus looks at this node only.
    let unknown = east
        .get_backup(GetBackupRequest {
            backup_name: "nope".into(),
        })
        .await;
    assert_eq!(
        unknown.map_err(|s| s.code()).err(),
        Some(tonic::Code::Internal)
    );
    let elsewhere = east
        .backup_status(BackupStatusRequest {
            backup_name: "nightly".into(),
        })
        .await;
    assert_eq!(
        elsewhere.map_err(|s| s.code()).err(),
        Some(tonic::Code::NotFound)
    );
}

#[tokio::test]
async fn synchronous_backup_returns_once_the_clock_passes_its_end() {
    let (model, dc1, _) = two_region_cluster(22, 10);
    model.lock().set_backup_duration_millis(30_000);
    let mut client = medusa_of(&model, &dc1[0]).await;
    let mut call = client.clone();
    let backup = tokio::spawn(async move { call.backup(full("sync")).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        !backup.is_finished(),
        "Backup returned before its backup finished"
    );

    // A second backup while one runs is refused, as Medusa's in-progress marker refuses it.
    let refused = client.backup(full("other")).await;
    assert_eq!(
        refused.map_err(|s| s.code()).err(),
        Some(tonic::Code::Internal)
    );

    model.lock().advance_millis(30_000);
    let response = tokio::time::timeout(Duration::from_secs(10), backup)
        .await
        .expect("Backup returns")
        .expect("task")
        .expect("Backup")
        .into_inner();
    assert_eq!(
        (response.backup_name.as_str(), status_of(response.status)),
        ("sync", StatusType::Success)
    );
    let again = client.backup(full("sync")).await;
    assert!(matches!(again, Err(s) if s.message().contains("Backup sync already exists")));
}

const PURGING_INI: &str = "
[storage]
storage_provider = s3
bucket_name = medusa-bucket
prefix = demo
max_backup_count = 2
max_backup_age = 0
";

#[tokio::test]
async fn delete_and_purge_by_count() {
    let (model, dc1, dc2) = two_region_cluster(23, 20);
    let config = MedusaConfig::from_ini(PURGING_INI).expect("medusa.ini");
    assert_eq!(config.storage, bucket());
    let mut west = medusa(MedusaService::from_config(
        model.clone(),
        dc1[0].clone(),
        config,
    ))
    .await;
    let mut east = medusa_of(&model, &dc2[0]).await;
    for day in 0..4 {
        west.async_backup(full(&format!("b{day}"))).await.expect("AsyncBackup");
        model.lock().advance_millis(DAY);
        write(&mut model.lock(), &format!("d{day}"), 5);
    }
    let names = |listed: GetBackupsResponse| -> Vec<String> {
        listed.backups.into_iter().map(|b| b.backup_name).collect()
    };
    assert_eq!(names(backups(&mut east).await), ["b0", "b1", "b2", "b3"]);

    // A name already taken: the response is IN_PROGRESS, the backup then reads FAILED.
    let again = west.async_backup(full("b3")).await.expect("AsyncBackup").into_inner();
    assert_eq!(status_of(again.status), StatusType::InProgress);
    let status = west
        .backup_status(BackupStatusRequest {
            backup_name: "b3".into(),
        })
        .await;
    assert_eq!(
        status.map(|r| status_of(r.into_inner().status)).ok(),
        Some(StatusType::Failed)
    );

    // A Medusa that registered no backup refuses to delete; one that did deletes for every node.
    let refused =
        east.delete_backup(DeleteBackupRequest { name: "b0".into() }).await.expect("DeleteBackup");
    assert_eq!(status_of(refused.into_inner().status), StatusType::Failed);
    let deleted =
        west.delete_backup(DeleteBackupRequest { name: "b0".into() }).await.expect("DeleteBackup");
    assert_eq!(status_of(deleted.into_inner().status), StatusType::Unknown);
    assert_eq!(names(backups(&mut east).await), ["b1", "b2", "b3"]);
    let unregistered = west.delete_backup(DeleteBackupRequest { name: "zzz".into() }).await;
    assert_eq!(
        unregistered.map_err(|s| s.code()).err(),
        Some(tonic::Code::Unknown)
    );

    let purged =
        west.purge_backups(PurgeBackupsRequest {}).await.expect("PurgeBackups").into_inner();
    assert_eq!(purged.nb_backups_purged, 1);
    assert!(purged.nb_objects_purged > 0 && purged.total_purged_size > 0);
    assert_eq!(names(backups(&mut east).await), ["b2", "b3"]);
    // Without limits in its medusa.ini, another node's Medusa purges nothing.
    let nothing =
        east.purge_backups(PurgeBackupsRequest {}).await.expect("PurgeBackups").into_inner();
    assert_eq!(nothing.nb_backups_purged, 0);
}

/// Every live row the node holds outside `system` and `system_schema` (what a restore replaces).
fn restorable_rows(
    model: &CassandraModel,
    pod: &PodRef,
) -> BTreeMap<(String, String), BTreeMap<String, String>> {
    let mut rows = BTreeMap::new();
    for keyspace in model.keyspace_names(CLUSTER).expect("keyspaces") {
        if keyspace == "system" || keyspace == "system_schema" {
            continue;
        }
        for table in model.tables(CLUSTER, &keyspace).expect("tables") {
            let held = model.node_rows(pod, &keyspace, &table.name).expect("rows");
            if !held.is_empty() {
                rows.insert((keyspace.clone(), table.name.clone()), held);
            }
        }
    }
    rows
}

fn restore_env(
    backup: &str,
    key: &str,
    mapping: Option<&RestoreMapping>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([
        (BACKUP_NAME_ENV.to_string(), backup.to_string()),
        (RESTORE_KEY_ENV.to_string(), key.to_string()),
    ]);
    if let Some(mapping) = mapping {
        env.insert(
            RESTORE_MAPPING_ENV.to_string(),
            serde_json::to_string(mapping).expect("json"),
        );
    }
    env
}

#[tokio::test]
async fn restore_on_start_brings_back_the_backed_up_rows_once_per_key() {
    let (model, dc1, _) = two_region_cluster(24, 60);
    let target = &dc1[0];
    for pod in &dc1 {
        medusa_of(&model, pod).await.async_backup(full("nightly")).await.expect("AsyncBackup");
    }
    let backed_up = restorable_rows(&model.lock(), target);
    let app_rows = model.lock().node_rows(target, APP, TABLE).expect("rows");
    assert!(!app_rows.is_empty());

    // The mapping PrepareRestore writes on the pod (the prepare_restore MedusaTask); the restore
    // below hands it to the node as RESTORE_MAPPING, as k8ssandra-operator sets that variable.
    let mut client = medusa_of(&model, target).await;
    client
        .prepare_restore(PrepareRestoreRequest {
            backup_name: "nightly".into(),
            datacenter: "dc1".into(),
            restore_key: "key-1".into(),
        })
        .await
        .expect("PrepareRestore");
    let mapping =
        prepared_restore_mapping(&model.lock(), target, "key-1").expect("mapping written");
    assert_eq!(mapping.in_place, Some(true));
    assert_eq!(mapping.host_map.len(), 3);
    assert!(mapping.host_map.iter().all(|(target, source)| source.source == [target.clone()]));
    let unknown = client
        .prepare_restore(PrepareRestoreRequest {
            backup_name: "nope".into(),
            datacenter: "dc1".into(),
            restore_key: "key-x".into(),
        })
        .await;
    assert_eq!(
        unknown.map_err(|s| s.code()).err(),
        Some(tonic::Code::Internal)
    );

    {
        let mut m = model.lock();
        m.advance_millis(DAY);
        write(&mut m, "late", 20);
        m.delete(
            CLUSTER,
            "dc1",
            APP,
            TABLE,
            ["k-1", "k-2", "k-3"],
            ConsistencyLevel::EachQuorum,
        )
        .expect("delete");
        assert_ne!(m.node_rows(target, APP, TABLE).expect("rows"), app_rows);
        // k8ssandra-operator stops the datacenter; the init container runs before Cassandra.
        m.stop_node(target).expect("stop");
    }

    let env = restore_env("nightly", "key-1", Some(&mapping));
    let outcome = restore_on_start(&model, target, &bucket(), &env).expect("restore");
    let RestoreOutcome::Restored {
        rows,
        in_place,
        source_host,
        ..
    } = outcome
    else {
        panic!("expected a restore, got {outcome:?}");
    };
    assert!(in_place);
    assert_eq!(source_host, target.name);
    assert_eq!(restorable_rows(&model.lock(), target), backed_up);
    assert_eq!(rows, backed_up.values().map(BTreeMap::len).sum::<usize>());
    assert_eq!(
        model.lock().node_rows(target, APP, TABLE).expect("rows"),
        app_rows
    );

    // The next start with the same key leaves the node's data alone.
    {
        let mut m = model.lock();
        m.restart_node(target).expect("restart");
        write(&mut m, "after", 10);
    }
    let after_writes = restorable_rows(&model.lock(), target);
    let again = restore_on_start(&model, target, &bucket(), &env).expect("second start");
    assert_eq!(
        again,
        RestoreOutcome::AlreadyRestored {
            restore_key: "key-1".into()
        }
    );
    assert_eq!(restorable_rows(&model.lock(), target), after_writes);

    // A new restore key restores again.
    let fresh = restore_on_start(
        &model,
        target,
        &bucket(),
        &restore_env("nightly", "key-2", None),
    )
    .expect("restore");
    assert!(matches!(fresh, RestoreOutcome::Restored { .. }));
    assert_eq!(restorable_rows(&model.lock(), target), backed_up);
}

#[test]
fn restore_on_start_skips_what_medusa_skips() {
    let (model, dc1, dc2) = two_region_cluster(25, 5);
    let no_key = BTreeMap::from([(BACKUP_NAME_ENV.to_string(), "nightly".to_string())]);
    assert_eq!(
        restore_on_start(&model, &dc1[0], &bucket(), &no_key),
        Ok(RestoreOutcome::NotRequested {
            missing: RESTORE_KEY_ENV
        })
    );
    // No such backup: skipped, and the key is recorded all the same.
    let env = restore_env("missing", "key-1", None);
    assert!(matches!(
        restore_on_start(&model, &dc1[0], &bucket(), &env),
        Ok(RestoreOutcome::BackupMissing { .. })
    ));
    assert!(matches!(
        restore_on_start(&model, &dc1[0], &bucket(), &env),
        Ok(RestoreOutcome::AlreadyRestored { .. })
    ));
    // A remote mapping without this pod.
    let remote = RestoreMapping::from_pairs([(dc2[0].name.as_str(), "elsewhere-0")]);
    assert_eq!(remote.in_place, Some(false));
    assert_eq!(
        restore_on_start(
            &model,
            &dc1[1],
            &bucket(),
            &restore_env("nightly", "key-1", Some(&remote))
        ),
        Ok(RestoreOutcome::NotInMapping {
            pod_name: dc1[1].name.clone()
        })
    );
    let broken = BTreeMap::from([
        (BACKUP_NAME_ENV.to_string(), "nightly".to_string()),
        (RESTORE_KEY_ENV.to_string(), "key-9".to_string()),
        (RESTORE_MAPPING_ENV.to_string(), "{not json".to_string()),
    ]);
    assert!(restore_on_start(&model, &dc1[2], &bucket(), &broken).is_err());
}
