//! Nodes starting, failing, leaving and being looked up.

use super::*;

#[test]
fn decommissioning_a_datacenters_last_node_waits_for_replication_to_leave_it() {
    let mut m = CassandraModel::deterministic(5);
    let props = SystemReplicationProperties::dc_rf("dc1:3");
    start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &props);
    let dc2 = start_dc(&mut m, CLUSTER, "east", "dc2", 1, 2, &props);
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 3), ("dc2", 1)]));
    write(&mut m, "dc1", &rows("r", 20), ConsistencyLevel::LocalQuorum);

    let err = m.decommission_node(&dc2[0], false).expect_err("still replicated");
    assert_eq!(
        err.to_string(),
        "Not enough live nodes to maintain replication factor in keyspace app (RF = 1, N = 1). \
         Perform a forceful decommission to ignore."
    );
    assert!(matches!(err, CassandraError::UnsupportedOperation(_)));

    m.alter_keyspace(CLUSTER, APP, &nts(&[("dc1", 3)])).expect("alter");
    m.decommission_node(&dc2[0], false).expect("decommission");
    assert_eq!(m.node(&dc2[0]).map(|n| n.state).ok(), Some(NodeState::Left));
    let ring = m.ring(CLUSTER).expect("ring");
    assert_eq!(ring.len(), 3);
    assert!(ring.iter().all(|e| e.datacenter == "dc1"));
    assert_eq!(
        m.count(CLUSTER, "dc1", APP, TABLE, ConsistencyLevel::LocalQuorum).ok(),
        Some(20)
    );
}

#[test]
fn decommission_counts_the_whole_ring_for_simple_strategy() {
    let mut m = CassandraModel::deterministic(6);
    let dc1 = start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &no_props());
    let err = m.decommission_node(&dc1[2], false).expect_err("system_distributed has RF 3");
    assert_eq!(
        err.to_string(),
        "Not enough live nodes to maintain replication factor in keyspace system_distributed (RF = 3, N = 3). \
         Perform a forceful decommission to ignore."
    );
    assert!(m.decommission_node(&dc1[2], true).is_ok());
    let only = start_dc(&mut m, "solo", "west", "dc1", 1, 9, &no_props());
    let err = m.decommission_node(&only[0], true).expect_err("alone");
    assert_eq!(
        err.to_string(),
        "no other normal nodes in the ring; decommission would be pointless"
    );
}

#[test]
fn pods_deleted_without_decommission_stay_in_the_ring_as_down() {
    let mut m = CassandraModel::deterministic(24);
    let dc1 = start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &no_props());
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 3)]));
    write(&mut m, "dc1", &rows("k", 10), ConsistencyLevel::All);
    m.remove_node(&dc1[2]).expect("remove");
    let ring = m.ring(CLUSTER).expect("ring");
    let gone = ring.iter().find(|e| e.pod == dc1[2]).expect("still listed");
    assert_eq!((gone.state, gone.up), (NodeState::Normal, false));
    assert!(
        m.write(
            CLUSTER,
            "dc1",
            APP,
            TABLE,
            rows("x", 1),
            ConsistencyLevel::All
        )
        .is_err()
    );

    // The pod comes back with its volume: same node, same data.
    let host_id = gone.host_id;
    let spec = NodeSpec::new(CLUSTER, dc1[2].clone(), "10.1.0.33", "dc1", "default");
    assert_eq!(m.start_node(spec).ok(), Some(StartOutcome::Restarted));
    assert_eq!(
        m.node_by_ip(CLUSTER, "10.1.0.33").map(|n| n.host_id).ok(),
        Some(host_id)
    );
    assert_eq!(
        m.node_rows(&dc1[2], APP, TABLE).map(|r| r.len()).ok(),
        Some(10)
    );
    let moved = NodeSpec::new(CLUSTER, dc1[2].clone(), "10.1.0.33", "dc9", "default");
    assert!(
        m.start_node(moved)
            .is_err_and(|e| e.to_string().contains("differs from previous data center (dc1)"))
    );

    // removenode of a dead node restores the replica count from the others.
    m.remove_node(&dc1[1]).expect("remove");
    let dead = m.node(&dc1[1]).expect("node").host_id;
    assert!(
        m.removenode(CLUSTER, host_id).is_err(),
        "alive nodes are refused"
    );
    m.removenode(CLUSTER, dead).expect("removenode");
    assert_eq!(m.ring(CLUSTER).map(|r| r.len()).ok(), Some(2));
    assert!(m.node(&dc1[1]).is_err());
}

#[test]
fn management_faults_and_lookups_are_kept_per_node() {
    let mut m = CassandraModel::deterministic(25);
    let dc1 = start_dc(&mut m, CLUSTER, "west", "dc1", 2, 1, &no_props());
    let fault = ManagementFault {
        fail_status: Some(503),
        delay_millis: 250,
    };
    m.set_management_fault(&dc1[1], fault.clone()).expect("fault");
    assert_eq!(
        m.node(&dc1[1]).map(|n| n.management_fault.clone()).ok(),
        Some(fault)
    );
    assert_eq!(
        m.node_by_ip(CLUSTER, "10.1.0.1").map(|n| n.pod.clone()).ok(),
        Some(dc1[0].clone())
    );
    assert_eq!(m.cluster_of(&dc1[0]).ok(), Some(CLUSTER));
    assert_eq!(m.node(&dc1[0]).map(|n| n.tokens.len()).ok(), Some(16));
    let other = NodeSpec::new("other", dc1[0].clone(), "10.5.0.1", "dc1", "default");
    assert_eq!(
        m.start_node(other).err().map(|e| e.to_string()).as_deref(),
        Some("Saved cluster name demo != configured name other")
    );
    let clash = NodeSpec::new(
        CLUSTER,
        pod("west", CLUSTER, "dc1", 7),
        "10.1.0.1",
        "dc1",
        "default",
    );
    assert!(
        m.start_node(clash).is_err_and(|e| e
            .to_string()
            .starts_with("A node with address /10.1.0.1 already exists"))
    );
}

#[test]
fn the_same_seed_gives_the_same_cluster() {
    let build = || {
        let mut m = CassandraModel::deterministic(99);
        start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &no_props());
        m.ring(CLUSTER).expect("ring")
    };
    assert_eq!(build(), build());
}

#[test]
fn a_replacement_takes_the_dead_nodes_tokens_under_a_new_host_id_and_streams_its_ranges() {
    let mut m = CassandraModel::deterministic(41);
    let dc1 = start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &no_props());
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 3)]));
    write(&mut m, "dc1", &rows("k", 25), ConsistencyLevel::All);
    let dead = m.node(&dc1[1]).expect("node").clone();
    let spec = |ip: &str| NodeSpec::new(CLUSTER, dc1[1].clone(), ip, "dc1", "default");

    let err = m.replace_node(spec("10.1.0.9"), &dead.ip).expect_err("still alive");
    assert_eq!(
        err.to_string(),
        "Cannot replace a live node /10.1.0.2. Endpoint is still alive."
    );
    m.remove_node(&dc1[1]).expect("the pod goes with its volume");
    let err = m.replace_node(spec("10.1.0.9"), "10.1.0.77").expect_err("unknown address");
    assert_eq!(
        err.to_string(),
        "Cannot replace_address /10.1.0.77 because it doesn't exist in gossip"
    );

    let outcome = m.replace_node(spec("10.1.0.9"), &dead.ip).expect("replaced");
    assert_eq!(outcome, StartOutcome::Joined { streamed_rows: 25 });
    let node = m.node(&dc1[1]).expect("the pod's new node");
    assert_ne!(node.host_id, dead.host_id);
    assert_eq!(node.tokens, dead.tokens);
    assert_eq!(
        (node.state, node.up, node.ip.as_str()),
        (NodeState::Normal, true, "10.1.0.9")
    );
    let ring = m.ring(CLUSTER).expect("ring");
    assert_eq!(ring.len(), 3, "the dead node left the ring");
    assert!(ring.iter().all(|entry| entry.up));
    let counts = m.row_counts(CLUSTER).expect("counts");
    assert_eq!(
        counts.per_node.get(&dc1[1]).and_then(|t| t.get("app.events")),
        Some(&25)
    );
}
