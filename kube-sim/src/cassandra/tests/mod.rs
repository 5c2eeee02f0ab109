//! Scenario tests of the Cassandra model through its public API, by area; the helpers here
//! start datacenters and write rows.

mod auth;
mod backups;
mod consistency;
mod jobs;
mod schema;
mod streaming;
mod topology;

use std::collections::BTreeMap;

use super::*;

const CLUSTER: &str = "demo";
const APP: &str = "app";
const TABLE: &str = "events";

fn pod(region: &str, cluster: &str, dc: &str, i: usize) -> PodRef {
    PodRef::new(
        region,
        "k8ssandra",
        format!("{cluster}-{dc}-default-sts-{i}"),
    )
}

/// Starts `count` nodes of `dc` in `region`, with ips `10.<octet>.0.<i+1>`.
fn start_dc(
    m: &mut CassandraModel,
    cluster: &str,
    region: &str,
    dc: &str,
    count: usize,
    octet: u8,
    props: &SystemReplicationProperties,
) -> Vec<PodRef> {
    (0..count)
        .map(|i| {
            let pod = pod(region, cluster, dc, i);
            let mut spec = NodeSpec::new(
                cluster,
                pod.clone(),
                &format!("10.{octet}.0.{}", i + 1),
                dc,
                "default",
            );
            spec.system_replication = props.clone();
            m.start_node(spec).expect("node starts");
            pod
        })
        .collect()
}

fn no_props() -> SystemReplicationProperties {
    SystemReplicationProperties::default()
}

fn create_app(m: &mut CassandraModel, cluster: &str, replication: &Replication) {
    m.create_keyspace(cluster, APP, replication).expect("keyspace");
    m.create_table(
        cluster,
        APP,
        TABLE,
        vec![
            Column::partition_key("id", "text"),
            Column::regular("v", "text"),
        ],
    )
    .expect("table");
}

fn rows(prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n).map(|i| (format!("{prefix}-{i}"), format!("value-{prefix}-{i}"))).collect()
}

fn write(m: &mut CassandraModel, dc: &str, rows: &[(String, String)], cl: ConsistencyLevel) {
    m.write(CLUSTER, dc, APP, TABLE, rows.iter().cloned(), cl).expect("write");
}

fn unavailable(err: CassandraError) -> Unavailable {
    match err {
        CassandraError::Unavailable(u) | CassandraError::AuthenticationUnavailable(u) => u,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

fn nts(dcs: &[(&str, u32)]) -> Replication {
    Replication::network_topology(dcs.iter().copied())
}
