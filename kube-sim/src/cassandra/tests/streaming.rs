//! Bootstrap, rebuild, decommission and cleanup moving rows.

use super::*;

#[test]
fn new_dc_added_to_replication_misses_earlier_rows_until_rebuilt() {
    let mut m = CassandraModel::deterministic(1);
    let props = SystemReplicationProperties::dc_rf("dc1:3,dc2:3");
    start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &props);
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 3)]));
    let before = rows("before", 40);
    write(&mut m, "dc1", &before, ConsistencyLevel::LocalQuorum);

    let dc2 = start_dc(&mut m, CLUSTER, "east", "dc2", 3, 2, &props);
    m.alter_keyspace(CLUSTER, APP, &nts(&[("dc1", 3), ("dc2", 3)])).expect("alter");
    let after = rows("after", 10);
    write(&mut m, "dc1", &after, ConsistencyLevel::LocalQuorum);

    assert_eq!(
        m.count(CLUSTER, "dc2", APP, TABLE, ConsistencyLevel::LocalOne).ok(),
        Some(after.len())
    );
    assert_eq!(
        m.read(
            CLUSTER,
            "dc2",
            APP,
            TABLE,
            "before-0",
            ConsistencyLevel::LocalOne
        )
        .ok(),
        Some(None)
    );
    assert_eq!(
        m.count(CLUSTER, "dc1", APP, TABLE, ConsistencyLevel::LocalOne).ok(),
        Some(50)
    );

    for node in &dc2 {
        m.rebuild(node, Some("dc1")).expect("rebuild");
    }
    let all = m.read_all(CLUSTER, "dc2", APP, TABLE, ConsistencyLevel::LocalOne).expect("read");
    let expected: BTreeMap<String, String> = before.into_iter().chain(after).collect();
    assert_eq!(all, expected);
    let counts = m.row_counts(CLUSTER).expect("counts");
    assert_eq!(counts.per_datacenter["dc2"]["app.events"], 50);
    // rf 3 of 3 nodes: every dc2 node holds every row.
    for node in &dc2 {
        assert_eq!(counts.per_node[node]["app.events"], 50);
    }
}

#[test]
fn rebuild_refuses_unknown_or_dead_source_datacenters() {
    let mut m = CassandraModel::deterministic(2);
    let props = SystemReplicationProperties::dc_rf("dc1:3,dc2:3");
    let dc1 = start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &props);
    let dc2 = start_dc(&mut m, CLUSTER, "east", "dc2", 3, 2, &props);
    let err = m.rebuild(&dc2[0], Some("dc9")).err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(
            "Provided datacenter 'dc9' is not a valid datacenter, available datacenters are: dc1,dc2"
        )
    );
    for node in &dc1 {
        m.set_down(node).expect("down");
    }
    let err = m.rebuild(&dc2[0], Some("dc1")).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        err.starts_with("Unable to find sufficient sources for streaming range ("),
        "{err}"
    );
    assert!(err.contains(" in keyspace system_auth"), "{err}");
}

#[test]
fn a_node_joining_an_existing_datacenter_bootstraps_its_ranges_and_cleanup_drops_the_rest() {
    let mut m = CassandraModel::deterministic(17);
    let props = SystemReplicationProperties::dc_rf("dc1:3");
    let mut dc1 = start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &props);
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 2)]));
    let data = rows("k", 200);
    write(&mut m, "dc1", &data, ConsistencyLevel::LocalQuorum);

    let new = pod("west", CLUSTER, "dc1", 3);
    let outcome = m
        .start_node(NodeSpec::new(
            CLUSTER,
            new.clone(),
            "10.1.0.4",
            "dc1",
            "default",
        ))
        .expect("join");
    let StartOutcome::Joined { streamed_rows } = outcome else {
        panic!("expected a join, got {outcome:?}")
    };
    let received = m.node_rows(&new, APP, TABLE).expect("rows");
    assert!(!received.is_empty() && streamed_rows >= received.len());
    dc1.push(new.clone());
    // Every row is readable from its new replica set, the joined node included.
    assert_eq!(
        m.count(CLUSTER, "dc1", APP, TABLE, ConsistencyLevel::All).ok(),
        Some(200)
    );

    let held_before: usize =
        dc1.iter().map(|p| m.node_rows(p, APP, TABLE).map(|r| r.len()).unwrap_or(0)).sum();
    assert!(held_before > 400, "old owners still hold the moved ranges");
    let mut removed = 0;
    for node in &dc1 {
        removed += m.cleanup(node, Some(APP)).expect("cleanup");
    }
    assert_eq!(
        removed,
        received.len(),
        "each moved row leaves exactly the node that gave it up"
    );
    let held_after: usize =
        dc1.iter().map(|p| m.node_rows(p, APP, TABLE).map(|r| r.len()).unwrap_or(0)).sum();
    assert_eq!(held_after, 400);
    assert_eq!(m.cleanup(&new, None).ok(), Some(0));
}

#[test]
fn a_first_node_of_a_new_datacenter_gets_nothing_until_replication_includes_it() {
    let mut m = CassandraModel::deterministic(18);
    let props = SystemReplicationProperties::dc_rf("dc1:3");
    start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &props);
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 3)]));
    write(&mut m, "dc1", &rows("k", 50), ConsistencyLevel::LocalQuorum);
    let spec = NodeSpec::new(
        CLUSTER,
        pod("east", CLUSTER, "dc2", 0),
        "10.2.0.1",
        "dc2",
        "default",
    );
    assert_eq!(
        m.start_node(spec).ok(),
        Some(StartOutcome::Joined { streamed_rows: 0 })
    );
    assert_eq!(
        m.node(&pod("east", CLUSTER, "dc2", 0)).map(|n| n.load_bytes()).ok(),
        Some(0)
    );
}

#[test]
fn bootstrap_needs_the_replica_that_gives_a_range_up() {
    let mut m = CassandraModel::deterministic(19);
    let dc1 = start_dc(&mut m, CLUSTER, "west", "dc1", 1, 1, &no_props());
    m.stop_node(&dc1[0]).expect("stop");
    let spec = NodeSpec::new(
        CLUSTER,
        pod("west", CLUSTER, "dc1", 1),
        "10.1.0.2",
        "dc1",
        "default",
    );
    let err = m.start_node(spec).expect_err("no seed");
    assert_eq!(err.to_string(), "Unable to gossip with any peers");
    m.restart_node(&dc1[0]).expect("restart");
    let dc1b = start_dc(&mut m, CLUSTER, "west", "dc1b", 1, 3, &no_props());
    m.set_down(&dc1[0]).expect("down");
    let spec = NodeSpec::new(
        CLUSTER,
        pod("west", CLUSTER, "dc1", 1),
        "10.1.0.2",
        "dc1",
        "default",
    );
    let err = m.start_node(spec).expect_err("strict source down");
    assert!(
        err.to_string().starts_with(
            "Necessary replicas for strict consistency were removed by source filters"
        ),
        "{err}"
    );
    assert!(
        m.nodes(CLUSTER).is_ok_and(|n| n.len() == 2),
        "the failed node did not join: {dc1b:?}"
    );
}

#[test]
fn decommission_streams_the_leaving_nodes_ranges_to_their_new_owners() {
    let mut m = CassandraModel::deterministic(7);
    let dc1 = start_dc(
        &mut m,
        CLUSTER,
        "west",
        "dc1",
        4,
        1,
        &SystemReplicationProperties::dc_rf("dc1:3"),
    );
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 1)]));
    let data = rows("k", 100);
    write(&mut m, "dc1", &data, ConsistencyLevel::One);
    let leaving_rows = m.node_rows(&dc1[3], APP, TABLE).expect("rows").len();
    assert!(leaving_rows > 0);
    let outcome = m.decommission_node(&dc1[3], false).expect("decommission");
    assert_eq!(outcome.streamed_rows, leaving_rows);
    // rf 1: only the streamed copies keep these rows alive.
    assert_eq!(
        m.count(CLUSTER, "dc1", APP, TABLE, ConsistencyLevel::One).ok(),
        Some(100)
    );
}
