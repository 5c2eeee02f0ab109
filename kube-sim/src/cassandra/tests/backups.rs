//! Medusa backups, purges and restores.

use super::*;

const DAY: i64 = 86_400_000;

#[test]
fn restore_brings_back_exactly_the_backed_up_rows() {
    let mut m = CassandraModel::deterministic(11);
    let storage = StorageLocation::new("medusa-bucket", "demo");
    let dc1 = start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &no_props());
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 3)]));
    let original = rows("k", 30);
    write(&mut m, "dc1", &original, ConsistencyLevel::LocalQuorum);

    let summary = m.backup(&storage, CLUSTER, "backup-1", &[], BackupMode::Full).expect("backup");
    assert_eq!(
        (summary.status, summary.total_nodes, summary.finished_nodes),
        (BackupStatus::Success, 3, 3)
    );
    assert_eq!(summary.backup_type, "full");
    assert!(summary.total_size > 0 && summary.total_objects > 0);

    m.advance_millis(60_000);
    write(
        &mut m,
        "dc1",
        &rows("late", 10),
        ConsistencyLevel::LocalQuorum,
    );
    write(
        &mut m,
        "dc1",
        &[("k-0".to_string(), "overwritten".to_string())],
        ConsistencyLevel::LocalQuorum,
    );
    m.delete(
        CLUSTER,
        "dc1",
        APP,
        TABLE,
        ["k-1"],
        ConsistencyLevel::LocalQuorum,
    )
    .expect("delete");

    for node in &dc1 {
        let restored = m
            .restore_node(
                node,
                &storage,
                "backup-1",
                &node.name,
                RestoreOptions::default(),
            )
            .expect("restore");
        assert!(restored > 0);
    }
    let all = m.read_all(CLUSTER, "dc1", APP, TABLE, ConsistencyLevel::LocalQuorum).expect("read");
    assert_eq!(all, original.into_iter().collect::<BTreeMap<_, _>>());
    assert!(m.node(&dc1[0]).expect("node").operations().iter().any(|op| op.operation == "RESTORE"));
}

#[test]
fn restore_into_a_cluster_of_another_region_follows_the_mapping() {
    let mut m = CassandraModel::deterministic(12);
    let storage = StorageLocation::new("shared-bucket", "prod");
    let source = start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &no_props());
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 3)]));
    let data = rows("k", 25);
    write(&mut m, "dc1", &data, ConsistencyLevel::LocalQuorum);
    m.backup(
        &storage,
        CLUSTER,
        "nightly",
        &source,
        BackupMode::Differential,
    )
    .expect("backup");

    let target = start_dc(&mut m, "copy", "east", "dc1", 3, 7, &no_props());
    assert!(m.keyspace("copy", APP).is_err());
    let mapping = m.restore_mapping(&storage, "nightly", "copy", "dc1").expect("mapping");
    let expected: BTreeMap<PodRef, String> =
        target.iter().cloned().zip(source.iter().map(|p| p.name.clone())).collect();
    assert_eq!(mapping, expected);
    for (to, from) in &mapping {
        m.restore_node(to, &storage, "nightly", from, RestoreOptions::default()).expect("restore");
    }
    for (to, from) in target.iter().zip(&source) {
        assert_eq!(
            m.node(to).map(|n| n.tokens.clone()).ok(),
            m.node(from).map(|n| n.tokens.clone()).ok()
        );
    }
    // Restoring the cluster onto itself maps every pod to its own backup.
    let in_place = m.restore_mapping(&storage, "nightly", CLUSTER, "dc1").expect("mapping");
    assert!(in_place.iter().all(|(pod, host)| pod.name == *host) && in_place.len() == 3);
    assert!(m.restore_mapping(&storage, "nightly", CLUSTER, "dc2").is_err());
    assert_eq!(
        m.replication("copy", APP).ok(),
        m.replication(CLUSTER, APP).ok()
    );
    let restored = m.read_all("copy", "dc1", APP, TABLE, ConsistencyLevel::LocalOne).expect("read");
    assert_eq!(restored, data.into_iter().collect::<BTreeMap<_, _>>());
    assert_eq!(m.list_backups(&storage, Some("copy")).len(), 0);
    assert_eq!(m.list_backups(&storage, Some(CLUSTER)).len(), 1);
}

#[test]
fn purge_keeps_the_newest_backups_and_drops_old_ones() {
    let mut m = CassandraModel::deterministic(13);
    let storage = StorageLocation::new("bucket", "demo");
    let dc1 = start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &no_props());
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 3)]));
    for day in 0..4 {
        write(
            &mut m,
            "dc1",
            &rows(&format!("d{day}"), 5),
            ConsistencyLevel::LocalQuorum,
        );
        m.backup(&storage, CLUSTER, &format!("b{day}"), &[], BackupMode::Full).expect("backup");
        m.advance_millis(DAY);
    }
    let stats = m.purge_backups(&storage, CLUSTER, 2, 0);
    assert_eq!(stats.backups_purged, 6);
    assert!(stats.objects_purged > 0 && stats.total_purged_size > 0);
    let names: Vec<String> =
        m.list_backups(&storage, Some(CLUSTER)).into_iter().map(|b| b.name).collect();
    assert_eq!(names, vec!["b2", "b3"]);

    m.advance_millis(10 * DAY);
    m.backup(&storage, CLUSTER, "fresh", &[], BackupMode::Full).expect("backup");
    let stats = m.purge_node_backups(&storage, &dc1[0].name, 0, 5);
    assert_eq!(stats.backups_purged, 2);
    let statuses = m.backup_status(&storage, "b3").expect("b3 still on two nodes");
    assert_eq!(statuses.node_statuses.len(), 2);
    let stats = m.purge_backups(&storage, CLUSTER, 0, 5);
    assert_eq!(stats.backups_purged, 4);
    let names: Vec<String> = m.list_backups(&storage, None).into_iter().map(|b| b.name).collect();
    assert_eq!(names, vec!["fresh"]);
    assert!(m.delete_backup(&storage, "fresh").is_ok());
    assert!(m.list_backups(&storage, None).is_empty());
    assert!(m.delete_backup(&storage, "fresh").is_err());
}

#[test]
fn a_backdated_backup_is_purged_by_age_and_a_missing_one_is_an_error() {
    let mut m = CassandraModel::deterministic(16);
    let storage = StorageLocation::new("bucket", "demo");
    start_dc(&mut m, CLUSTER, "west", "dc1", 2, 1, &no_props());
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 2)]));
    for name in ["old", "new"] {
        m.backup(&storage, CLUSTER, name, &[], BackupMode::Full).expect("backup");
    }
    let before = m.backup_status(&storage, "old").expect("old").start_millis;
    m.backdate_backup(&storage, "old", 3 * DAY).expect("backdate");
    let after = m.backup_status(&storage, "old").expect("old");
    assert_eq!(after.start_millis, before - 3 * DAY);
    assert_eq!(after.status, BackupStatus::Success);
    let names: Vec<String> = m.list_backups(&storage, None).into_iter().map(|b| b.name).collect();
    assert_eq!(names, vec!["old", "new"], "oldest first");
    let stats = m.purge_backups(&storage, CLUSTER, 0, 1);
    assert_eq!(stats.backups_purged, 2, "old, on both nodes");
    let names: Vec<String> = m.list_backups(&storage, None).into_iter().map(|b| b.name).collect();
    assert_eq!(names, vec!["new"]);
    assert!(m.backdate_backup(&storage, "gone", DAY).is_err());
}

#[test]
fn differential_files_are_shared_and_outlive_their_backups_for_the_grace_period() {
    let mut m = CassandraModel::deterministic(14);
    let storage = StorageLocation::new("bucket", "demo");
    let dc1 = start_dc(&mut m, CLUSTER, "west", "dc1", 1, 1, &no_props());
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 1)]));
    write(&mut m, "dc1", &rows("a", 5), ConsistencyLevel::One);
    let first = m.backup(&storage, CLUSTER, "d1", &[], BackupMode::Differential).expect("d1");
    m.advance_millis(DAY);
    let second = m.backup(&storage, CLUSTER, "d2", &[], BackupMode::Differential).expect("d2");
    assert_eq!(first.total_objects, second.total_objects);
    // The same files: deleting d1 frees nothing d2 still references.
    let stats = m.delete_backup(&storage, "d1").expect("delete");
    assert_eq!((stats.backups_purged, stats.objects_purged), (1, 0));
    write(&mut m, "dc1", &rows("b", 5), ConsistencyLevel::One);
    m.backup(&storage, CLUSTER, "d3", &[], BackupMode::Differential).expect("d3");
    let stats = m.purge_node_backups(&storage, &dc1[0].name, 1, 0);
    assert_eq!(stats.backups_purged, 1);
    assert_eq!(
        stats.objects_within_gc_grace, 1,
        "d2's app file is younger than 10 days"
    );
    m.advance_millis(11 * DAY);
    let stats = m.purge_node_backups(&storage, &dc1[0].name, 1, 0);
    assert_eq!((stats.backups_purged, stats.objects_purged), (0, 1));
}

#[test]
fn backup_status_is_in_progress_until_the_backup_duration_passes() {
    let mut m = CassandraModel::deterministic(15);
    let storage = StorageLocation::new("bucket", "demo");
    let dc1 = start_dc(&mut m, CLUSTER, "west", "dc1", 2, 1, &no_props());
    m.set_backup_duration_millis(30_000);
    m.stop_node(&dc1[1]).expect("stop");
    let summary = m.backup(&storage, CLUSTER, "b", &dc1, BackupMode::Full).expect("backup");
    assert_eq!(summary.status, BackupStatus::Failed);
    let statuses: Vec<BackupStatus> = summary.node_statuses.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        vec![BackupStatus::InProgress, BackupStatus::Failed]
    );
    let one = m.backup(&storage, CLUSTER, "c", &dc1[..1], BackupMode::Full).expect("backup");
    assert_eq!(
        (one.status, one.total_nodes, one.finished_nodes),
        (BackupStatus::InProgress, 2, 0)
    );
    m.advance_millis(30_000);
    let one = m.backup_status(&storage, "c").expect("status");
    assert_eq!(
        (one.status, one.finished_nodes),
        (BackupStatus::InProgress, 1)
    );
    assert!(one.node_statuses[0].finish_millis.is_some());
    let err = m.backup(&storage, CLUSTER, "c", &dc1[..1], BackupMode::Full).expect_err("name used");
    assert!(matches!(err, CassandraError::Backup(_)));
}

#[test]
fn a_backup_holds_each_nodes_rows_as_they_were_when_it_was_taken() {
    let mut m = CassandraModel::deterministic(13);
    let storage = StorageLocation::new("medusa-bucket", "demo");
    let dc1 = start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &no_props());
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 3)]));
    let original = rows("k", 12);
    write(&mut m, "dc1", &original, ConsistencyLevel::All);
    m.backup(&storage, CLUSTER, "b1", &dc1, BackupMode::Full).expect("backup");
    write(&mut m, "dc1", &rows("late", 5), ConsistencyLevel::All);
    let expected: BTreeMap<String, String> = original.into_iter().collect();
    for node in &dc1 {
        assert_eq!(
            m.backup_rows(&storage, "b1", &node.name, APP, TABLE).expect("rows"),
            expected,
            "{node}"
        );
    }
    assert!(m.backup_rows(&storage, "b2", &dc1[0].name, APP, TABLE).is_err());
}
