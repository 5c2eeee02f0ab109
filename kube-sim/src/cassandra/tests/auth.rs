//! Roles and logins per datacenter.

use super::*;

#[test]
fn login_needs_a_system_auth_replica_in_the_coordinators_datacenter() {
    let mut m = CassandraModel::deterministic(3);
    let props = SystemReplicationProperties::dc_rf("dc1:3");
    start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &props);
    start_dc(&mut m, CLUSTER, "east", "dc2", 3, 2, &props);
    m.create_role(CLUSTER, "dc1", "reaper", "s3cret", false, true).expect("role");

    assert_eq!(
        m.login(CLUSTER, "dc1", "reaper", "s3cret").map(|r| r.superuser).ok(),
        Some(false)
    );
    let err = m.login(CLUSTER, "dc2", "reaper", "s3cret").expect_err("no local replica");
    assert_eq!(
        err.to_string(),
        "Unable to perform authentication: Cannot achieve consistency level LOCAL_ONE"
    );
    let u = unavailable(err);
    assert_eq!(
        (u.consistency, u.required, u.alive),
        (ConsistencyLevel::LocalOne, 1, 0)
    );
    // The default superuser is read at QUORUM, which dc1's replicas satisfy from anywhere.
    assert!(m.login(CLUSTER, "dc2", "cassandra", "cassandra").is_ok());

    m.alter_keyspace(CLUSTER, "system_auth", &nts(&[("dc1", 3), ("dc2", 3)])).expect("alter");
    // dc2's replicas exist now but never received the role: as in Cassandra, repair first.
    let err = m.login(CLUSTER, "dc2", "reaper", "s3cret").expect_err("not repaired");
    assert_eq!(
        err.to_string(),
        "Provided username reaper and/or password are incorrect"
    );
    m.repair(CLUSTER, &RepairRequest::keyspace("system_auth")).expect("repair");
    assert!(m.login(CLUSTER, "dc2", "reaper", "s3cret").is_ok());
    let err = m.login(CLUSTER, "dc2", "reaper", "wrong").expect_err("bad password");
    assert_eq!(
        err.to_string(),
        "Provided username reaper and/or password are incorrect"
    );
    let err = m.login(CLUSTER, "dc1", "nobody", "x").expect_err("no role");
    assert_eq!(
        err.to_string(),
        "Provided username nobody and/or password are incorrect"
    );
}

#[test]
fn cassandra_4_1_reads_roles_at_local_quorum() {
    let mut m = CassandraModel::deterministic(4);
    let dc1: Vec<PodRef> = (0..3)
        .map(|i| {
            let p = pod("west", CLUSTER, "dc1", i);
            let mut spec = NodeSpec::new(
                CLUSTER,
                p.clone(),
                &format!("10.1.0.{}", i + 1),
                "dc1",
                "default",
            );
            spec.server_version = "4.1.8".into();
            spec.system_replication = SystemReplicationProperties::dc_rf("dc1:3");
            m.start_node(spec).expect("start");
            p
        })
        .collect();
    m.create_role(CLUSTER, "dc1", "app", "pw", false, true).expect("role");
    m.set_down(&dc1[1]).expect("down");
    assert!(m.login(CLUSTER, "dc1", "app", "pw").is_ok());
    m.set_down(&dc1[2]).expect("down");
    let err = m.login(CLUSTER, "dc1", "app", "pw").expect_err("one of three");
    let u = unavailable(err);
    assert_eq!(
        (u.consistency, u.required, u.alive),
        (ConsistencyLevel::LocalQuorum, 2, 1)
    );
}
