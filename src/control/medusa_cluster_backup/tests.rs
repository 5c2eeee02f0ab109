use super::*;
use crate::api::medusa::BackupType;
use crate::api::medusa::cluster_backup_job::{
    ClusterName, DatacenterName, MedusaClusterBackupJobSpec,
};

fn time(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).expect("valid timestamp")
}

fn cluster_backup(datacenters: &[&str]) -> MedusaClusterBackupJob {
    let mut job = MedusaClusterBackupJob::new(
        "nightly",
        MedusaClusterBackupJobSpec {
            k8ssandra_cluster: ClusterName {
                name: "demo".into(),
            },
            datacenters: (!datacenters.is_empty())
                .then(|| datacenters.iter().map(|d| DatacenterName(d.to_string())).collect()),
            backup_type: Some(BackupType::Full),
        },
    );
    job.metadata.namespace = Some("ns".into());
    job
}

fn located() -> Vec<Located> {
    [
        ("dc1", ""),
        ("dc2", "kind-k8ssandra-1"),
        ("dc3", "kind-k8ssandra-2"),
    ]
    .iter()
    .map(|(name, context)| Located {
        name: name.to_string(),
        context: context.to_string(),
        namespace: "ns".into(),
    })
    .collect()
}

fn finished_job(pods: &[&str], failed: &[&str], at: i64) -> MedusaBackupJobStatus {
    MedusaBackupJobStatus {
        start_time: Some(Time(time(1_000))),
        finish_time: Some(Time(time(at))),
        in_progress: Some(vec![]),
        finished: Some(pods.iter().map(|p| p.to_string()).collect()),
        failed: Some(failed.iter().map(|p| p.to_string()).collect()),
        conditions: (!failed.is_empty()).then(|| {
            vec![new_condition(
                "Failed",
                CONDITION_TRUE,
                "PodsFailed",
                "1 of 2 pods failed: b (no answer)",
                None,
                Time(time(at)),
            )]
        }),
    }
}

fn done(at: i64) -> Observed {
    Observed::Reached {
        job: Some(finished_job(&["a", "b"], &[], at)),
        recorded: true,
    }
}

#[test]
fn every_datacenter_is_backed_up_unless_a_subset_is_named_and_unknown_ones_are_refused() {
    let all = select(&cluster_backup(&[]), &located()).expect("valid");
    assert_eq!(
        all.iter().map(|t| t.job_name.as_str()).collect::<Vec<_>>(),
        ["nightly-dc1", "nightly-dc2", "nightly-dc3"]
    );
    assert_eq!(all[1].context, "kind-k8ssandra-1");
    let some = select(&cluster_backup(&["dc3"]), &located()).expect("valid");
    assert_eq!(some.len(), 1);
    assert_eq!(some[0].datacenter, "dc3");
    let unknown = select(&cluster_backup(&["dc9"]), &located()).expect_err("dc9 unknown");
    assert!(
        unknown.contains("dc9") && unknown.contains("dc1"),
        "{unknown}"
    );
    let mut long = cluster_backup(&[]);
    long.metadata.name = Some("x".repeat(250));
    assert!(select(&long, &located()).expect_err("too long").contains("shorter name"));
}

#[test]
fn the_job_of_a_datacenter_names_it_and_carries_the_cluster_backups_label_and_type() {
    let job = cluster_backup(&[]);
    let target = &select(&job, &located()).expect("valid")[1];
    let body = backup_job_body(&job, target);
    assert_eq!(body["kind"], "MedusaBackupJob");
    assert_eq!(body["metadata"]["name"], "nightly-dc2");
    assert_eq!(body["metadata"]["namespace"], "ns");
    assert_eq!(body["metadata"]["labels"][CLUSTER_BACKUP_LABEL], "nightly");
    assert_eq!(
        body["spec"],
        json!({"cassandraDatacenter": "dc2", "backupType": "full"})
    );
    // Without a type, none is set: the job's own default applies.
    let mut differential = job.clone();
    differential.spec.backup_type = None;
    assert_eq!(
        backup_job_body(&differential, target)["spec"],
        json!({"cassandraDatacenter": "dc2"})
    );
}

#[test]
fn a_copied_backup_keeps_name_and_spec_and_says_where_it_came_from() {
    let mut backup = MedusaBackup::new(
        "nightly-dc1",
        crate::api::medusa::backup::MedusaBackupSpec {
            cassandra_datacenter: "dc1".into(),
            backup_type: None,
        },
    );
    backup.metadata.namespace = Some("ns".into());
    let body = copied_backup_body(&backup, "nightly", "", "other");
    assert_eq!(body["metadata"]["name"], "nightly-dc1");
    assert_eq!(body["metadata"]["namespace"], "other");
    assert_eq!(
        body["metadata"]["annotations"][COPIED_FROM_ANNOTATION],
        "hub"
    );
    assert_eq!(body["spec"]["cassandraDatacenter"], "dc1");
    assert!(body.get("status").is_none());
}

#[test]
fn a_job_folds_into_its_datacenters_phase_and_pod_counts() {
    let target = &select(&cluster_backup(&[]), &located()).expect("valid")[0];
    let seen = |job: Option<MedusaBackupJobStatus>, recorded: bool| {
        entry(target, &Observed::Reached { job, recorded }, None)
    };
    assert_eq!(seen(None, false).phase, DatacenterPhase::Pending);
    let running = MedusaBackupJobStatus {
        start_time: Some(Time(time(1))),
        in_progress: Some(vec!["a".into()]),
        finished: Some(vec!["b".into()]),
        ..Default::default()
    };
    let running = seen(Some(running), false);
    assert_eq!(
        (running.phase, running.finished_pods),
        (DatacenterPhase::Running, 1)
    );
    let unrecorded = seen(Some(finished_job(&["a", "b"], &[], 5)), false);
    assert_eq!(unrecorded.phase, DatacenterPhase::Running);
    let complete = seen(Some(finished_job(&["a", "b"], &[], 5)), true);
    assert_eq!(
        (complete.phase, complete.finished_pods, complete.failed_pods),
        (DatacenterPhase::Complete, 2, 0)
    );
    assert_eq!(complete.finish_time, Some(Time(time(5))));
    let failed = seen(Some(finished_job(&["a"], &["b"], 5)), false);
    assert_eq!(
        (failed.phase, failed.failed_pods),
        (DatacenterPhase::Failed, 1)
    );
    assert_eq!(
        failed.message.as_deref(),
        Some("1 of 2 pods failed: b (no answer)")
    );

    // Unreachable: the counts seen last stay, a finished datacenter stays finished.
    let lost = entry(
        target,
        &Observed::Unreachable("connection refused".into()),
        Some(&running),
    );
    assert_eq!(
        (lost.phase, lost.finished_pods),
        (DatacenterPhase::Unreachable, 1)
    );
    assert_eq!(lost.message.as_deref(), Some("connection refused"));
    let kept = entry(
        target,
        &Observed::Unreachable("gone".into()),
        Some(&complete),
    );
    assert_eq!(kept, complete);
}

#[test]
fn every_datacenter_complete_completes_the_cluster_backup() {
    let targets = select(&cluster_backup(&[]), &located()).expect("valid");
    let observed: BTreeMap<String, Observed> =
        ["dc1", "dc2", "dc3"].iter().map(|dc| (dc.to_string(), done(1_010))).collect();
    let status = fold(
        None,
        &targets,
        &observed,
        Some(1),
        time(1_020),
        MISSED_REGION_GRACE,
    );
    assert!(status.finish_time.is_some());
    let complete = condition(&status, CONDITION_COMPLETE).expect("Complete");
    assert_eq!(complete.reason, "BackedUp");
    assert_eq!(complete.message, "3 of 3 datacenters backed up");
    assert_eq!(status.missed, None);
    assert_eq!(status.datacenters.as_ref().map(Vec::len), Some(3));
}

#[test]
fn a_region_down_does_not_hold_up_the_others_and_is_reported_missed_after_the_grace() {
    let targets = select(&cluster_backup(&[]), &located()).expect("valid");
    let grace = Duration::from_secs(30);
    let mut observed: BTreeMap<String, Observed> =
        ["dc1", "dc2"].iter().map(|dc| (dc.to_string(), done(1_010))).collect();
    observed.insert(
        "dc3".into(),
        Observed::Unreachable("reading MedusaBackupJob: connection refused".into()),
    );
    let start = fold(
        None,
        &targets,
        &BTreeMap::new(),
        Some(1),
        time(1_000),
        grace,
    );
    assert_eq!(start.start_time, Some(Time(time(1_000))));
    // The others finished at 1010: dc3 is still tried until 1040.
    let waiting = fold(
        Some(&start),
        &targets,
        &observed,
        Some(1),
        time(1_039),
        grace,
    );
    assert!(waiting.finish_time.is_none(), "{waiting:?}");
    let entries = waiting.datacenters.clone().unwrap_or_default();
    assert_eq!(entries[2].phase, DatacenterPhase::Unreachable);
    assert_eq!(entries[0].phase, DatacenterPhase::Complete);

    let missed = fold(
        Some(&waiting),
        &targets,
        &observed,
        Some(1),
        time(1_040),
        grace,
    );
    assert!(missed.finish_time.is_some());
    assert_eq!(
        missed.missed,
        Some(vec!["dc3 (kind-k8ssandra-2)".to_string()])
    );
    let complete = condition(&missed, CONDITION_COMPLETE).expect("Complete");
    assert_eq!(complete.reason, "RegionsMissed");
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
    assert!(
        complete.message.contains("connection refused"),
        "{}",
        complete.message
    );

    // Finished: nothing changes it any more.
    let later = fold(
        Some(&missed),
        &targets,
        &BTreeMap::new(),
        Some(1),
        time(2_000),
        grace,
    );
    assert_eq!(later, missed);

    // A region back before the grace ran out is waited for.
    let mut back = observed.clone();
    back.insert(
        "dc3".into(),
        Observed::Reached {
            job: None,
            recorded: false,
        },
    );
    let resumed = fold(Some(&waiting), &targets, &back, Some(1), time(1_100), grace);
    assert!(resumed.finish_time.is_none());
}

#[test]
fn a_failed_datacenter_fails_the_cluster_backup_naming_it_and_why() {
    let targets = select(&cluster_backup(&["dc1", "dc2"]), &located()).expect("valid");
    let observed = BTreeMap::from([
        ("dc1".to_string(), done(1_010)),
        (
            "dc2".to_string(),
            Observed::Reached {
                job: Some(finished_job(&["a"], &["b"], 1_010)),
                recorded: false,
            },
        ),
    ]);
    let status = fold(
        None,
        &targets,
        &observed,
        Some(1),
        time(1_020),
        MISSED_REGION_GRACE,
    );
    assert!(status.finish_time.is_some());
    assert!(condition(&status, CONDITION_COMPLETE).is_none());
    let failed = condition(&status, CONDITION_FAILED).expect("Failed");
    assert_eq!(failed.reason, "DatacentersFailed");
    assert!(
        failed.message.contains("dc2 (kind-k8ssandra-1): 1 of 2 pods failed: b"),
        "{}",
        failed.message
    );
}

#[test]
fn an_invalid_spec_says_why_and_goes_once_valid() {
    let status = invalid(
        None,
        "K8ssandraCluster demo does not exist",
        Some(1),
        time(1),
    );
    let why = condition(&status, CONDITION_INVALID).expect("Invalid");
    assert_eq!(why.reason, "InvalidSpec");
    let targets = select(&cluster_backup(&["dc1"]), &located()).expect("valid");
    let valid = fold(
        Some(&status),
        &targets,
        &BTreeMap::new(),
        Some(1),
        time(2),
        MISSED_REGION_GRACE,
    );
    assert!(condition(&valid, CONDITION_INVALID).is_none());
}

fn complete_entry(datacenter: &str, context: &str, missing: Option<&[&str]>) -> DatacenterBackup {
    DatacenterBackup {
        datacenter: datacenter.into(),
        k8s_context: context.into(),
        namespace: "ns".into(),
        job_name: format!("nightly-{datacenter}"),
        phase: DatacenterPhase::Complete,
        missing_copies: missing.map(|m| m.iter().map(|l| l.to_string()).collect()),
        ..Default::default()
    }
}

fn labels(places: &[&Place]) -> Vec<String> {
    places.iter().map(|p| place_label(p)).collect()
}

#[test]
fn a_backup_recorded_now_is_copied_to_every_other_place_and_later_only_where_it_is_missing() {
    let places = places(&located());
    let dc1 = complete_entry("dc1", "", None);
    assert_eq!(
        labels(&copies_to_make(&dc1, &places, true)),
        ["kind-k8ssandra-1/ns", "kind-k8ssandra-2/ns"]
    );
    // All copied: nothing more to do.
    assert!(copies_to_make(&dc1, &places, false).is_empty());
    // One region missed it: only that one is tried again.
    let dc2 = complete_entry("dc2", "kind-k8ssandra-1", Some(&["kind-k8ssandra-2/ns"]));
    assert_eq!(
        labels(&copies_to_make(&dc2, &places, false)),
        ["kind-k8ssandra-2/ns"]
    );
    let dc3 = complete_entry("dc3", "kind-k8ssandra-2", Some(&["hub/ns"]));
    assert_eq!(labels(&copies_to_make(&dc3, &places, false)), ["hub/ns"]);
    // A datacenter whose backup is not recorded has nothing to copy.
    let mut failed = complete_entry("dc2", "kind-k8ssandra-1", Some(&["hub/ns"]));
    failed.phase = DatacenterPhase::Failed;
    assert!(copies_to_make(&failed, &places, false).is_empty());
}

#[test]
fn copies_made_leave_the_missing_list_failed_ones_join_it_and_untried_ones_stay() {
    let s = |labels: &[&str]| labels.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    assert_eq!(
        still_missing(None, &s(&["hub/ns", "r2/ns"]), &s(&["r2/ns"])),
        Some(s(&["r2/ns"]))
    );
    assert_eq!(
        still_missing(Some(&s(&["r2/ns"])[..]), &s(&["r2/ns"]), &[]),
        None,
        "made late: nothing missing"
    );
    assert_eq!(
        still_missing(
            Some(&s(&["r1/ns", "r2/ns"])[..]),
            &s(&["r2/ns"]),
            &s(&["r2/ns"])
        ),
        Some(s(&["r1/ns", "r2/ns"]))
    );
    assert_eq!(still_missing(None, &s(&["hub/ns"]), &[]), None);
}

#[test]
fn missing_copies_survive_a_fold_of_a_finished_datacenter() {
    let job = cluster_backup(&[]);
    let targets = select(&job, &located()).expect("targets");
    let previous = MedusaClusterBackupJobStatus {
        start_time: Some(Time(time(1))),
        datacenters: Some(vec![
            complete_entry("dc1", "", Some(&["kind-k8ssandra-2/ns"])),
            complete_entry("dc2", "kind-k8ssandra-1", None),
        ]),
        ..Default::default()
    };
    let status = fold(
        Some(&previous),
        &targets,
        &BTreeMap::new(),
        None,
        time(2),
        MISSED_REGION_GRACE,
    );
    let entries = status.datacenters.unwrap_or_default();
    assert_eq!(
        entries[0].missing_copies,
        Some(vec!["kind-k8ssandra-2/ns".to_string()])
    );
    assert_eq!(entries[1].missing_copies, None);
}
