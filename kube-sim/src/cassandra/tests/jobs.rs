//! Management API jobs and table operations.

use super::*;

#[test]
fn jobs_wait_until_due_and_report_like_the_management_api() {
    let mut m = CassandraModel::deterministic(22);
    let props = SystemReplicationProperties::dc_rf("dc1:3,dc2:1");
    start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &props);
    let dc2 = start_dc(&mut m, CLUSTER, "east", "dc2", 1, 2, &props);
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 3), ("dc2", 1)]));
    write(&mut m, "dc1", &rows("k", 10), ConsistencyLevel::LocalOne);
    m.set_job_duration_millis(5_000);

    let rebuild = m
        .submit_job(
            &dc2[0],
            NodeOperation::Rebuild {
                source_dc: Some("dc1".into()),
            },
        )
        .expect("submit");
    assert_eq!(
        m.job(&dc2[0], &rebuild).map(|j| j.status).ok(),
        Some(JobStatus::Waiting)
    );
    assert_eq!(m.poll_jobs(), 0);
    m.advance_millis(5_000);
    assert_eq!(m.poll_jobs(), 1);
    let job = m.job(&dc2[0], &rebuild).expect("job");
    assert_eq!(job.status, JobStatus::Completed);
    let body = job.to_json();
    assert_eq!(body["type"], "rebuild");
    assert_eq!(body["status"], "COMPLETED");
    assert_eq!(
        body["end_time"],
        body["submit_time"].as_i64().map(|t| t + 5_000).unwrap_or(0)
    );
    assert!(body.get("error").is_none());
    assert_eq!(
        m.count(CLUSTER, "dc2", APP, TABLE, ConsistencyLevel::LocalOne).ok(),
        Some(10)
    );

    let decommission =
        m.submit_job(&dc2[0], NodeOperation::Decommission { force: false }).expect("submit");
    assert_eq!(m.complete_jobs(), 1);
    let job = m.job(&dc2[0], &decommission).expect("job");
    assert_eq!(job.status, JobStatus::Error);
    assert_eq!(
        job.to_json()["error"],
        "Not enough live nodes to maintain replication factor in keyspace app (RF = 1, N = 1). \
         Perform a forceful decommission to ignore."
    );
    assert!(matches!(
        m.job(&dc2[0], "nope"),
        Err(CassandraError::UnknownJob(_))
    ));
}

#[test]
fn table_operations_validate_their_keyspace_and_are_recorded() {
    let mut m = CassandraModel::deterministic(23);
    let dc1 = start_dc(&mut m, CLUSTER, "west", "dc1", 1, 1, &no_props());
    create_app(&mut m, CLUSTER, &Replication::simple(1));
    m.flush(&dc1[0], Some(APP), &[TABLE.to_string()]).expect("flush");
    m.compact(&dc1[0], None, &[]).expect("compact");
    m.garbage_collect(&dc1[0], Some(APP), &[]).expect("gc");
    m.scrub(&dc1[0], Some(APP), &[]).expect("scrub");
    m.upgrade_sstables(&dc1[0], Some("system_auth"), &[]).expect("upgrade");
    let err = m.flush(&dc1[0], Some("nope"), &[]).expect_err("keyspace");
    assert_eq!(err.to_string(), "Keyspace nope does not exist");
    let err = m.scrub(&dc1[0], Some(APP), &["nope".to_string()]).expect_err("table");
    assert_eq!(err.to_string(), "Unknown keyspace/cf pair (app.nope)");
    let ops: Vec<String> =
        m.node(&dc1[0]).expect("node").operations().iter().map(|op| op.operation.clone()).collect();
    assert_eq!(
        ops,
        vec![
            "FLUSH",
            "COMPACTION",
            "GARBAGE_COLLECT",
            "SCRUB",
            "UPGRADE_SSTABLES"
        ]
    );
    let job = m
        .submit_job(
            &dc1[0],
            NodeOperation::Cleanup {
                keyspace: Some("nope".into()),
                tables: vec![],
            },
        )
        .expect("submit");
    assert_eq!(
        m.job(&dc1[0], &job).map(|j| j.error.clone()).ok().flatten().as_deref(),
        Some("Keyspace nope does not exist")
    );
    m.stop_node(&dc1[0]).expect("stop");
    assert!(matches!(
        m.flush(&dc1[0], None, &[]),
        Err(CassandraError::NodeNotRunning(_))
    ));
}
