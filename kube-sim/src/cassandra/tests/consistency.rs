//! Consistency levels, read repair and where replicas live.

use super::*;

#[test]
fn local_quorum_is_unavailable_with_two_of_three_replicas_down() {
    let mut m = CassandraModel::deterministic(8);
    let dc1 = start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &no_props());
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 3)]));
    write(&mut m, "dc1", &rows("a", 5), ConsistencyLevel::LocalQuorum);

    m.set_down(&dc1[0]).expect("down");
    assert!(
        m.write(
            CLUSTER,
            "dc1",
            APP,
            TABLE,
            rows("b", 5),
            ConsistencyLevel::LocalQuorum
        )
        .is_ok()
    );
    m.stop_node(&dc1[1]).expect("stop");
    let err = m
        .write(
            CLUSTER,
            "dc1",
            APP,
            TABLE,
            rows("c", 5),
            ConsistencyLevel::LocalQuorum,
        )
        .expect_err("2 down");
    assert_eq!(
        err.to_string(),
        "Cannot achieve consistency level LOCAL_QUORUM"
    );
    let u = unavailable(err);
    assert_eq!((u.required, u.alive), (2, 1));
    let err = m
        .read(
            CLUSTER,
            "dc1",
            APP,
            TABLE,
            "a-0",
            ConsistencyLevel::LocalQuorum,
        )
        .expect_err("read too");
    assert_eq!(unavailable(err).alive, 1);
    // Nothing of the refused write was applied anywhere.
    assert_eq!(
        m.read(
            CLUSTER,
            "dc1",
            APP,
            TABLE,
            "c-0",
            ConsistencyLevel::LocalOne
        )
        .ok(),
        Some(None)
    );
    assert_eq!(
        m.count(CLUSTER, "dc1", APP, TABLE, ConsistencyLevel::LocalOne).ok(),
        Some(10)
    );
}

#[test]
fn quorum_counts_replicas_in_every_datacenter() {
    let mut m = CassandraModel::deterministic(9);
    let props = SystemReplicationProperties::dc_rf("dc1:3,dc2:3");
    start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &props);
    let dc2 = start_dc(&mut m, CLUSTER, "east", "dc2", 3, 2, &props);
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 3), ("dc2", 3)]));
    for node in &dc2 {
        m.set_down(node).expect("down");
    }
    let err = m
        .write(
            CLUSTER,
            "dc1",
            APP,
            TABLE,
            rows("q", 1),
            ConsistencyLevel::Quorum,
        )
        .expect_err("3 of 6");
    let u = unavailable(err);
    assert_eq!(
        (u.consistency, u.required, u.alive),
        (ConsistencyLevel::Quorum, 4, 3)
    );
    let err = m
        .write(
            CLUSTER,
            "dc1",
            APP,
            TABLE,
            rows("q", 1),
            ConsistencyLevel::EachQuorum,
        )
        .expect_err("dc2");
    assert_eq!(
        err.to_string(),
        "Cannot achieve consistency level EACH_QUORUM in DC dc2"
    );
    assert!(
        m.write(
            CLUSTER,
            "dc1",
            APP,
            TABLE,
            rows("l", 1),
            ConsistencyLevel::LocalQuorum
        )
        .is_ok()
    );

    m.set_up(&dc2[0]).expect("up");
    assert!(
        m.write(
            CLUSTER,
            "dc1",
            APP,
            TABLE,
            rows("q", 1),
            ConsistencyLevel::Quorum
        )
        .is_ok()
    );
    assert_eq!(
        m.read(CLUSTER, "dc2", APP, TABLE, "q-0", ConsistencyLevel::Quorum).ok(),
        Some(Some("value-q-0".to_string()))
    );
    // The row written while dc2 was down reached only dc2's live node.
    assert_eq!(
        m.node_rows(&dc2[1], APP, TABLE).map(|r| r.len()).ok(),
        Some(0)
    );
}

#[test]
fn writes_miss_a_down_replica_until_repair_or_read_repair() {
    let mut m = CassandraModel::deterministic(20);
    let dc1 = start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &no_props());
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 3)]));
    m.set_down(&dc1[0]).expect("down");
    write(&mut m, "dc1", &rows("k", 10), ConsistencyLevel::LocalQuorum);
    m.set_up(&dc1[0]).expect("up");
    assert_eq!(
        m.node_rows(&dc1[0], APP, TABLE).map(|r| r.len()).ok(),
        Some(0),
        "no hints"
    );

    let err = {
        m.set_down(&dc1[1]).expect("down");
        let err = m.repair(CLUSTER, &RepairRequest::keyspace(APP)).expect_err("dead neighbour");
        m.set_up(&dc1[1]).expect("up");
        err
    };
    assert_eq!(err.to_string(), "Endpoint not alive: /10.1.0.2");
    let outcome = m.repair(CLUSTER, &RepairRequest::keyspace(APP)).expect("repair");
    assert_eq!(outcome.rows_repaired, 10);
    assert_eq!(
        m.node_rows(&dc1[0], APP, TABLE).map(|r| r.len()).ok(),
        Some(10)
    );

    // Read repair: a QUORUM read writes the newest version back to the replicas it asked.
    m.set_down(&dc1[2]).expect("down");
    write(
        &mut m,
        "dc1",
        &[("k-0".to_string(), "new".to_string())],
        ConsistencyLevel::Quorum,
    );
    m.set_up(&dc1[2]).expect("up");
    m.set_down(&dc1[0]).expect("down");
    assert_eq!(
        m.read(CLUSTER, "dc1", APP, TABLE, "k-0", ConsistencyLevel::Quorum).ok(),
        Some(Some("new".into()))
    );
    assert_eq!(
        m.node_rows(&dc1[2], APP, TABLE).ok().and_then(|r| r.get("k-0").cloned()).as_deref(),
        Some("new")
    );
}

#[test]
fn any_accepts_a_write_no_replica_takes() {
    let mut m = CassandraModel::deterministic(28);
    let dc1 = start_dc(&mut m, CLUSTER, "west", "dc1", 2, 1, &no_props());
    create_app(&mut m, CLUSTER, &Replication::simple(2));
    for node in &dc1 {
        m.set_down(node).expect("down");
    }
    assert!(
        m.write(
            CLUSTER,
            "dc1",
            APP,
            TABLE,
            rows("k", 1),
            ConsistencyLevel::Any
        )
        .is_ok()
    );
    assert!(
        m.write(
            CLUSTER,
            "dc1",
            APP,
            TABLE,
            rows("k", 1),
            ConsistencyLevel::One
        )
        .is_err()
    );
    for node in &dc1 {
        m.set_up(node).expect("up");
    }
    // Without hints, the ANY write is gone.
    assert_eq!(
        m.count(CLUSTER, "dc1", APP, TABLE, ConsistencyLevel::All).ok(),
        Some(0)
    );
}

#[test]
fn network_topology_places_replicas_on_distinct_racks() {
    let mut m = CassandraModel::deterministic(26);
    let racks = ["r1", "r1", "r2", "r2", "r3", "r3"];
    let pods: Vec<PodRef> = racks
        .iter()
        .enumerate()
        .map(|(i, rack)| {
            let p = pod("west", CLUSTER, "dc1", i);
            let spec = NodeSpec::new(
                CLUSTER,
                p.clone(),
                &format!("10.1.0.{}", i + 1),
                "dc1",
                rack,
            );
            m.start_node(spec).expect("start");
            p
        })
        .collect();
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 3)]));
    let data = rows("k", 60);
    write(&mut m, "dc1", &data, ConsistencyLevel::All);
    for (key, _) in &data {
        let holders: Vec<&str> = pods
            .iter()
            .zip(racks)
            .filter(|(p, _)| m.node_rows(p, APP, TABLE).is_ok_and(|r| r.contains_key(key)))
            .map(|(_, rack)| rack)
            .collect();
        let mut distinct = holders.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(
            (holders.len(), distinct.len()),
            (3, 3),
            "{key} on {holders:?}"
        );
    }
}

#[test]
fn simple_strategy_gives_a_key_to_the_first_token_at_or_after_its_own() {
    let mut m = CassandraModel::deterministic(27);
    let tokens = [-4_000_000_000_000_000_000i64, 0, 4_000_000_000_000_000_000];
    let pods: Vec<PodRef> = tokens
        .iter()
        .enumerate()
        .map(|(i, token)| {
            let p = pod("west", CLUSTER, "dc1", i);
            let mut spec = NodeSpec::new(
                CLUSTER,
                p.clone(),
                &format!("10.1.0.{}", i + 1),
                "dc1",
                "default",
            );
            spec.initial_tokens = vec![*token];
            m.start_node(spec).expect("start");
            p
        })
        .collect();
    create_app(&mut m, CLUSTER, &Replication::simple(1));
    let data = rows("k", 50);
    write(&mut m, "dc1", &data, ConsistencyLevel::One);
    for (key, _) in &data {
        let token = ring::token_for_key(key);
        let owner = tokens.iter().position(|t| *t >= token).unwrap_or(0);
        let held = m.node_rows(&pods[owner], APP, TABLE).expect("rows");
        assert!(
            held.contains_key(key),
            "{key} ({token}) belongs to node {owner}"
        );
    }
    assert_eq!(
        m.locate_ip("10.1.0.2").map(|(c, n)| (c.to_string(), n.pod.clone())),
        Some((CLUSTER.into(), pods[1].clone()))
    );
}

#[test]
fn repair_can_be_limited_to_a_token_range_and_a_coordinator() {
    let mut m = CassandraModel::deterministic(29);
    let dc1 = start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &no_props());
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 3)]));
    m.set_down(&dc1[0]).expect("down");
    write(&mut m, "dc1", &rows("k", 40), ConsistencyLevel::LocalQuorum);
    m.set_up(&dc1[0]).expect("up");

    let ranges = m.range_to_endpoints(CLUSTER, APP).expect("ranges");
    assert_eq!(ranges.len(), 48, "3 nodes with 16 tokens each");
    assert!(ranges.iter().all(|r| r.endpoints.len() == 3));
    let segment = (ranges[0].start, ranges[0].end);
    let in_segment = rows("k", 40)
        .iter()
        .filter(|(key, _)| ring::range_contains(segment.0, segment.1, ring::token_for_key(key)))
        .count();
    let request = RepairRequest {
        ranges: vec![segment],
        ..RepairRequest::keyspace(APP)
    };
    let outcome = m.repair(CLUSTER, &request).expect("segment repair");
    assert_eq!(outcome.rows_repaired, in_segment);
    assert_eq!(
        m.node_rows(&dc1[0], APP, TABLE).map(|r| r.len()).ok(),
        Some(in_segment)
    );

    let request = RepairRequest {
        coordinator: Some(dc1[1].clone()),
        ..RepairRequest::keyspace(APP)
    };
    let outcome = m.repair(CLUSTER, &request).expect("repair from a node");
    assert_eq!(outcome.rows_repaired, 40 - in_segment);
    assert!(m.node(&dc1[1]).expect("node").operations().iter().any(|op| op.operation == "REPAIR"));
    let request = RepairRequest {
        coordinator: Some(dc1[1].clone()),
        datacenters: vec!["dc2".into()],
        ..RepairRequest::keyspace(APP)
    };
    let err = m.repair(CLUSTER, &request).expect_err("local dc missing");
    assert_eq!(
        err.to_string(),
        "The local data center must be part of the repair"
    );
}
