//! Keyspaces, system keyspaces and schema agreement.

use super::*;

#[test]
fn schema_versions_disagree_while_a_node_is_down_and_agree_after() {
    let mut m = CassandraModel::deterministic(10);
    let dc1 = start_dc(&mut m, CLUSTER, "west", "dc1", 3, 1, &no_props());
    assert_eq!(m.schema_agreement(CLUSTER).ok(), Some(true));
    let old = m.node(&dc1[2]).expect("node").schema_version;

    m.set_down(&dc1[2]).expect("down");
    create_app(&mut m, CLUSTER, &nts(&[("dc1", 3)]));
    let current = m.cluster_schema_version(CLUSTER).expect("version");
    assert_ne!(current, old);
    let versions = m.schema_versions(CLUSTER).expect("versions");
    assert_eq!(versions.len(), 2);
    assert_eq!(
        versions[&current.to_string()],
        vec!["10.1.0.1".to_string(), "10.1.0.2".to_string()]
    );
    assert_eq!(versions["UNREACHABLE"], vec!["10.1.0.3".to_string()]);
    assert_eq!(m.node(&dc1[2]).map(|n| n.schema_version).ok(), Some(old));
    assert_eq!(m.schema_agreement(CLUSTER).ok(), Some(false));

    m.set_up(&dc1[2]).expect("up");
    assert_eq!(m.schema_agreement(CLUSTER).ok(), Some(true));
    assert_eq!(
        m.node(&dc1[2]).map(|n| n.schema_version).ok(),
        Some(current)
    );
}

#[test]
fn system_distributed_replication_property_sets_the_system_keyspaces() {
    let mut m = CassandraModel::deterministic(16);
    start_dc(
        &mut m,
        CLUSTER,
        "west",
        "dc1",
        1,
        1,
        &SystemReplicationProperties::dc_rf("dc1:3,dc2:3"),
    );
    let expected: BTreeMap<String, String> = [
        (
            "class",
            "org.apache.cassandra.locator.NetworkTopologyStrategy",
        ),
        ("dc1", "3"),
        ("dc2", "3"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for keyspace in ["system_auth", "system_distributed", "system_traces"] {
        assert_eq!(
            m.replication(CLUSTER, keyspace).ok(),
            Some(expected.clone()),
            "{keyspace}"
        );
    }

    start_dc(&mut m, "plain", "west", "dc1", 1, 2, &no_props());
    let simple = |rf: &str| -> BTreeMap<String, String> {
        [
            ("class", "org.apache.cassandra.locator.SimpleStrategy"),
            ("replication_factor", rf),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    assert_eq!(
        m.replication("plain", "system_auth").ok(),
        Some(simple("1"))
    );
    assert_eq!(
        m.replication("plain", "system_distributed").ok(),
        Some(simple("3"))
    );
    assert_eq!(
        m.replication("plain", "system_traces").ok(),
        Some(simple("2"))
    );
    assert_eq!(
        m.replication("plain", "system").ok().and_then(|r| r.get("class").cloned()).as_deref(),
        Some("org.apache.cassandra.locator.LocalStrategy")
    );
    assert_eq!(
        m.keyspace_names("plain").ok(),
        Some(
            [
                "system",
                "system_auth",
                "system_distributed",
                "system_schema",
                "system_traces"
            ]
            .map(String::from)
            .to_vec()
        )
    );
}

#[test]
fn keyspace_changes_are_validated_as_cassandra_4_0_does() {
    let mut m = CassandraModel::deterministic(21);
    start_dc(&mut m, CLUSTER, "west", "dc1", 1, 1, &no_props());
    let err = m.create_keyspace(CLUSTER, APP, &nts(&[("dc2", 3)])).expect_err("unknown dc");
    assert_eq!(
        err.to_string(),
        "Unrecognized strategy option {dc2} passed to NetworkTopologyStrategy for keyspace app"
    );
    let err = m.alter_keyspace(CLUSTER, "system", &Replication::simple(3)).expect_err("local");
    assert_eq!(err.to_string(), "system keyspace is not user-modifiable.");
    let err = m.drop_keyspace(CLUSTER, "system_auth").expect_err("replicated system");
    assert_eq!(err.to_string(), "Cannot DROP <keyspace system_auth>");
    assert!(m.alter_keyspace(CLUSTER, "system_auth", &nts(&[("dc1", 1)])).is_ok());
    let options: BTreeMap<String, String> =
        [("class", "SimpleStrategy"), ("replication_factor", "-2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let err = m.create_keyspace_with_options(CLUSTER, APP, &options).expect_err("negative");
    assert_eq!(
        err.to_string(),
        "Replication factor must be non-negative, found -2"
    );
    create_app(&mut m, CLUSTER, &Replication::simple(1));
    let err = m.create_keyspace(CLUSTER, APP, &Replication::simple(1)).expect_err("exists");
    assert_eq!(err.to_string(), "Cannot add existing keyspace \"app\"");
    let err = m.create_keyspace(CLUSTER, "bad-name", &Replication::simple(1)).expect_err("name");
    assert!(matches!(err, CassandraError::InvalidRequest(_)));
    assert_eq!(m.tables(CLUSTER, APP).map(|t| t.len()).ok(), Some(1));
    let err = m
        .write(
            CLUSTER,
            "dc1",
            APP,
            "missing",
            rows("k", 1),
            ConsistencyLevel::One,
        )
        .expect_err("table");
    assert_eq!(err.to_string(), "unconfigured table missing");
    write(&mut m, "dc1", &rows("k", 3), ConsistencyLevel::One);
    m.drop_keyspace(CLUSTER, APP).expect("drop");
    let counts = m.row_counts(CLUSTER).expect("counts");
    assert!(counts.per_datacenter.values().all(|tables| !tables.contains_key("app.events")));
}
