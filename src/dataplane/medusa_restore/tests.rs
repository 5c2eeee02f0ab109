use super::*;
use crate::api::medusa::backup::MedusaBackupNode;

fn time(seconds: i64) -> Time {
    Time(Timestamp::from_second(seconds).expect("valid timestamp"))
}

fn datacenter(size: i32, racks: &[&str]) -> CassandraDatacenter {
    let racks: Vec<Value> = racks.iter().map(|r| json!({"name": r})).collect();
    let mut spec = json!({
        "clusterName": "demo", "serverType": "cassandra", "serverVersion": "4.1.5", "size": size,
        "storageConfig": {},
        "podTemplateSpec": {"spec": {"initContainers": [
            {"name": "medusa-restore", "env": [{"name": "MEDUSA_MODE", "value": "RESTORE"}]}
        ]}},
    });
    if !racks.is_empty() {
        spec["racks"] = Value::Array(racks);
    }
    serde_json::from_value(json!({
        "apiVersion": "cassandra.datastax.com/v1beta1", "kind": "CassandraDatacenter",
        "metadata": {"name": "dc1", "namespace": "ns"},
        "spec": spec,
    }))
    .expect("datacenter")
}

fn backup(nodes: &[(&str, &str)]) -> MedusaBackupStatus {
    MedusaBackupStatus {
        start_time: Some(time(1)),
        finish_time: Some(time(2)),
        total_nodes: Some(nodes.len() as i32),
        finished_nodes: Some(nodes.len() as i32),
        nodes: Some(
            nodes
                .iter()
                .map(|(host, rack)| MedusaBackupNode {
                    host: Some(host.to_string()),
                    tokens: None,
                    datacenter: Some("dc1".into()),
                    rack: Some(rack.to_string()),
                })
                .collect(),
        ),
        ..Default::default()
    }
}

fn grpc_nodes(nodes: &[(&str, &str)]) -> Vec<medusa_grpc::BackupNode> {
    nodes
        .iter()
        .map(|(host, rack)| medusa_grpc::BackupNode {
            host: host.to_string(),
            tokens: vec![],
            datacenter: "dc1".into(),
            rack: rack.to_string(),
        })
        .collect()
}

#[test]
fn a_backup_must_be_finished_everywhere_and_fit_the_datacenter_as_upstream_checks() {
    let two = [
        ("demo-dc1-default-sts-0", "default"),
        ("demo-dc1-default-sts-1", "default"),
    ];
    assert_eq!(validate_backup(&backup(&two), &datacenter(2, &[])), Ok(()));
    let mut unfinished = backup(&two);
    unfinished.finish_time = None;
    assert!(validate_backup(&unfinished, &datacenter(2, &[])).is_err());
    let mut partial = backup(&two);
    partial.finished_nodes = Some(1);
    let why = validate_backup(&partial, &datacenter(2, &[])).expect_err("partial");
    assert_eq!(why, "the backup finished on 1 of its 2 nodes");
    let why = validate_backup(&backup(&two), &datacenter(3, &[])).expect_err("size");
    assert_eq!(why, "the backup has 2 nodes, the datacenter 3");
    assert!(validate_backup(&backup(&two), &datacenter(2, &["r1"])).is_err());
    // Counts missing: an old backup, not checked.
    assert_eq!(
        validate_backup(&MedusaBackupStatus::default(), &datacenter(5, &[])),
        Ok(())
    );
}

#[test]
fn the_mapping_is_in_place_when_each_pod_took_its_own_backup() {
    let nodes = grpc_nodes(&[
        ("demo-dc1-default-sts-1", "default"),
        ("demo-dc1-default-sts-0", "default"),
    ]);
    let mapping = restore_mapping(&nodes, &datacenter(2, &[])).expect("mapping");
    assert_eq!(mapping.in_place, Some(true));
    let hosts = mapping.host_map.expect("host map");
    assert_eq!(
        hosts["demo-dc1-default-sts-0"].source,
        vec!["demo-dc1-default-sts-0"]
    );
    assert_eq!(
        hosts["demo-dc1-default-sts-1"].source,
        vec!["demo-dc1-default-sts-1"]
    );
}

#[test]
fn an_in_place_mapping_holds_past_ten_pods_a_rack() {
    let hosts: Vec<String> = (0..11).map(|n| format!("demo-dc1-default-sts-{n}")).collect();
    let nodes: Vec<(&str, &str)> = hosts.iter().map(|h| (h.as_str(), "default")).collect();
    let mapping = restore_mapping(&grpc_nodes(&nodes), &datacenter(11, &[])).expect("mapping");
    assert_eq!(mapping.in_place, Some(true));
}

#[test]
fn the_mapping_matches_racks_in_name_order_onto_other_hosts() {
    let nodes = grpc_nodes(&[("10.0.0.2", "r2"), ("10.0.0.1", "r1"), ("10.0.0.3", "r1")]);
    // Three nodes over two racks: r1 holds two pods (SplitRacks), r2 one.
    let mapping = restore_mapping(&nodes, &datacenter(3, &["r1", "r2"])).expect("mapping");
    assert_eq!(mapping.in_place, Some(false));
    let hosts = mapping.host_map.expect("host map");
    assert_eq!(hosts["demo-dc1-r1-sts-0"].source, vec!["10.0.0.1"]);
    assert_eq!(hosts["demo-dc1-r1-sts-1"].source, vec!["10.0.0.3"]);
    assert_eq!(hosts["demo-dc1-r2-sts-0"].source, vec!["10.0.0.2"]);
    let why = restore_mapping(&nodes, &datacenter(3, &["r1"])).expect_err("racks");
    assert!(why.contains("2 racks"), "{why}");
}

#[test]
fn a_job_goes_from_start_through_prepare_and_stop_to_restore() {
    assert_eq!(step(None), Step::Start);
    let blocked = MedusaRestoreJobStatus::default();
    assert_eq!(step(Some(&blocked)), Step::Start);
    let mut status = MedusaRestoreJobStatus {
        start_time: Some(time(1)),
        restore_key: "key".into(),
        restore_prepared: Some(false),
        ..Default::default()
    };
    assert_eq!(step(Some(&status)), Step::Prepare);
    status.restore_prepared = Some(true);
    status.restore_mapping = Some(MedusaRestoreMapping::default());
    assert_eq!(step(Some(&status)), Step::Stop);
    status.datacenter_stopped = Some(time(2));
    assert_eq!(step(Some(&status)), Step::Restore);
    status.finish_time = Some(time(3));
    assert_eq!(step(Some(&status)), Step::Done);
}

#[test]
fn the_restore_owns_only_stopped_and_its_three_env_entries() {
    let dc = datacenter(2, &[]);
    let stop = restore_body(&dc, true, None);
    assert_eq!(stop["spec"], json!({"stopped": true}));
    assert_eq!(stop["metadata"], json!({"name": "dc1", "namespace": "ns"}));
    let status = MedusaRestoreJobStatus {
        restore_key: "key".into(),
        restore_mapping: Some(MedusaRestoreMapping {
            in_place: Some(true),
            host_map: None,
        }),
        ..Default::default()
    };
    let env = restore_env("nightly", &status).expect("env");
    let body = restore_body(&dc, false, Some(env.clone()));
    assert_eq!(
        body["spec"],
        json!({"podTemplateSpec": {"spec": {"initContainers": [{"name": "medusa-restore", "env": [
            {"name": "BACKUP_NAME", "value": "nightly"},
            {"name": "RESTORE_KEY", "value": "key"},
            {"name": "RESTORE_MAPPING", "value": "{\"in_place\":true}"},
        ]}]}}})
    );
    assert_eq!(restore_env_applied(&dc, &env), Some(false));
    let mut restored = dc.clone();
    let mut template = serde_json::to_value(&restored.spec.pod_template_spec).expect("template");
    let live_env = &mut template["spec"]["initContainers"][0]["env"];
    for (name, value) in &env {
        live_env.as_array_mut().expect("env").push(json!({"name": name, "value": value}));
    }
    restored.spec.pod_template_spec = serde_json::from_value(template).expect("template");
    assert_eq!(restore_env_applied(&restored, &env), Some(true));
    let mut bare = dc;
    bare.spec.pod_template_spec = None;
    assert_eq!(restore_env_applied(&bare, &env), None);
}

#[test]
fn restore_keys_are_version_4_uuids() {
    let key = uuid_v4();
    assert_eq!(key.len(), 36);
    assert_eq!(&key[14..15], "4");
    assert_ne!(key, uuid_v4());
}

fn datacenter_named(name: &str, size: i32) -> CassandraDatacenter {
    let mut dc = datacenter(size, &[]);
    dc.metadata.name = Some(name.into());
    dc
}

#[test]
fn another_datacenters_backup_maps_its_nodes_onto_this_datacenters_pods() {
    // dc1's backup, taken in another region, restored onto dc2.
    let nodes = grpc_nodes(&[
        ("demo-dc1-default-sts-1", "default"),
        ("demo-dc1-default-sts-0", "default"),
    ]);
    let mapping = restore_mapping(&nodes, &datacenter_named("dc2", 2)).expect("mapping");
    assert_eq!(mapping.in_place, Some(false));
    let hosts = mapping.host_map.expect("host map");
    assert_eq!(hosts.len(), 2);
    assert_eq!(
        hosts["demo-dc2-default-sts-0"].source,
        vec!["demo-dc1-default-sts-0"]
    );
    assert_eq!(
        hosts["demo-dc2-default-sts-1"].source,
        vec!["demo-dc1-default-sts-1"]
    );
    // Node for node: a datacenter of another size is refused, naming both counts.
    let why = restore_mapping(&nodes, &datacenter_named("dc2", 3)).expect_err("size");
    assert!(
        why.contains("2 nodes in datacenter dc1") && why.contains("dc2 has 3"),
        "{why}"
    );
    // A backup of several other datacenters is ambiguous.
    let mut mixed = nodes.clone();
    mixed[0].datacenter = "dc3".into();
    let why = restore_mapping(&mixed, &datacenter_named("dc2", 2)).expect_err("mixed");
    assert!(why.contains("several"), "{why}");
}

#[test]
fn another_datacenters_backup_is_usable_when_sizes_match_and_blocked_when_not() {
    let two = [
        ("demo-dc1-default-sts-0", "default"),
        ("demo-dc1-default-sts-1", "default"),
    ];
    let dc2 = datacenter_named("dc2", 2);
    assert_eq!(
        source_datacenter(&backup(&two), &dc2),
        Some("dc1".to_string())
    );
    assert_eq!(source_datacenter(&backup(&two), &datacenter(2, &[])), None);
    assert_eq!(validate_backup(&backup(&two), &dc2), Ok(()));
    assert_eq!(size_mismatch(&backup(&two), &dc2), None);
    let why = size_mismatch(&backup(&two), &datacenter_named("dc2", 3)).expect("mismatch");
    assert!(
        why.starts_with("the backup has 2 nodes (datacenter dc1), datacenter dc2 has 3"),
        "{why}"
    );
    // The same datacenter's backup of another size still fails as upstream's does.
    assert_eq!(size_mismatch(&backup(&two), &datacenter(3, &[])), None);
    // Racks are matched in order, their count must agree.
    let racked = datacenter_named("dc2", 2);
    let mut racked = racked;
    racked.spec.racks = serde_json::from_value(json!([{"name": "r1"}, {"name": "r2"}])).ok();
    let why = validate_backup(&backup(&two), &racked).expect_err("racks");
    assert!(why.contains("as many racks"), "{why}");
}

fn pod_with_init_status(init_status: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "demo-dc1-default-sts-0", "namespace": "ns"},
        "status": {"phase": "Pending", "initContainerStatuses": [init_status]},
    }))
    .expect("pod")
}

#[test]
fn a_restore_container_in_crash_loop_back_off_is_a_failure_naming_the_pod_and_its_message() {
    let pod = pod_with_init_status(json!({
        "name": "medusa-restore", "ready": false, "restartCount": 3, "image": "", "imageID": "",
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
            "message": "restore of backup b1 from demo-dc2-default-sts-0 failed: tokens owned"}},
    }));
    let why = restore_container_failure(&pod).expect("a failure");
    assert_eq!(
        why,
        "pod demo-dc1-default-sts-0: init container medusa-restore exited with code 1 (Error): restore of backup b1 from demo-dc2-default-sts-0 failed: tokens owned"
    );
}

#[test]
fn a_restore_container_that_just_terminated_with_an_error_is_a_failure() {
    let pod = pod_with_init_status(json!({
        "name": "medusa-restore", "ready": false, "restartCount": 0, "image": "", "imageID": "",
        "state": {"terminated": {"exitCode": 2, "reason": "Error"}},
    }));
    assert_eq!(
        restore_container_failure(&pod).as_deref(),
        Some(
            "pod demo-dc1-default-sts-0: init container medusa-restore exited with code 2 (Error); its log says why: kubectl logs demo-dc1-default-sts-0 -c medusa-restore --previous"
        )
    );
}

#[test]
fn a_restore_container_that_succeeded_runs_or_retries_after_an_old_failure_is_no_failure() {
    let statuses = [
        // Finished: exit code 0.
        json!({"name": "medusa-restore", "ready": true, "restartCount": 0, "image": "", "imageID": "",
               "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}),
        // Running again after a failure: the kubelet's retry, not yet failed.
        json!({"name": "medusa-restore", "ready": false, "restartCount": 1, "image": "", "imageID": "",
               "state": {"running": {}},
               "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}),
        // Another init container failing is not the restore's.
        json!({"name": "server-config-init", "ready": false, "restartCount": 1, "image": "", "imageID": "",
               "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}),
    ];
    for status in statuses {
        assert_eq!(
            restore_container_failure(&pod_with_init_status(status.clone())),
            None,
            "{status}"
        );
    }
}

#[test]
fn a_long_restore_container_message_is_cut() {
    let long = "x".repeat(5000);
    let pod = pod_with_init_status(json!({
        "name": "medusa-restore", "ready": false, "restartCount": 0, "image": "", "imageID": "",
        "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": long}},
    }));
    let why = restore_container_failure(&pod).expect("a failure");
    assert!(why.len() < 500, "{}", why.len());
    assert!(why.ends_with('…'), "{why}");
}
