//! What the Medusa end-to-end tests share: a K8ssandraCluster's `spec.medusa` over one bucket,
//! its storage Secret in the hub, the operators (the control plane in the hub, a data plane in
//! each other region), and the `app.kv` rows a backup keeps.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use federator::api::cassdc::CassandraDatacenter;
use federator::settings::Mode;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube_sim::cassandra::ConsistencyLevel;

use super::{InProcessOperator, NS, apply, wait_for};

/// The storage Secret `spec.medusa` names.
pub const BUCKET_SECRET: &str = "medusa-bucket-key";

/// `spec.medusa` storing to `bucket` (s3_compatible at minio.example:9000, credentials in
/// [`BUCKET_SECRET`]).
pub fn medusa_spec(bucket: &str) -> serde_json::Value {
    serde_json::json!({
        "storageProperties": {
            "storageProvider": "s3_compatible",
            "bucketName": bucket,
            "storageSecretRef": {"name": BUCKET_SECRET},
            "host": "minio.example",
            "port": 9000
        }
    })
}

/// A bucket Secret named `name`, with the `credentials` key Medusa reads.
pub fn bucket_secret(name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "stringData": {"credentials": "[default]\naws_access_key_id = id\naws_secret_access_key = key\n"},
    })
}

/// Applies [`BUCKET_SECRET`] in the hub, which copies it to the regions.
pub async fn apply_bucket_secret(hub: &kube::Client) {
    let secrets = Api::<Secret>::namespaced(hub.clone(), NS);
    apply(&secrets, BUCKET_SECRET, bucket_secret(BUCKET_SECRET)).await;
}

/// Waits (at most `limit`) until the CassandraDatacenter `name` of `region` is Ready.
pub async fn datacenter_ready(region: &kube::Client, name: &str, limit: Duration) {
    let datacenters = Api::<CassandraDatacenter>::namespaced(region.clone(), NS);
    wait_for(
        &format!("CassandraDatacenter {name} Ready"),
        limit,
        || async { datacenters.get_opt(name).await.ok().flatten().is_some_and(|dc| dc.is_ready()) },
    )
    .await;
}

/// The control plane in `regions[0]` (the hub) and a data plane in each other region, without
/// leader election; to stop at the end.
pub fn start_operators(regions: &[&kube::Client]) -> Vec<InProcessOperator> {
    let mut operators = Vec::with_capacity(regions.len());
    for (index, region) in regions.iter().enumerate() {
        operators.push(InProcessOperator::start(region, |settings| {
            settings.leader_election.enabled = false;
            if index > 0 {
                settings.mode = Mode::DataPlane;
            }
        }));
    }
    operators
}

/// Keyspace `app` (two replicas in each of `datacenters`), table `app.kv`, and `rows` rows
/// written through `datacenters[0]` at ALL.
pub fn write_app_rows(sim: &kube_sim::Sim, cluster: &str, datacenters: &[&str], rows: usize) {
    let mut replication =
        BTreeMap::from([("class".to_string(), "NetworkTopologyStrategy".to_string())]);
    for dc in datacenters {
        replication.insert(dc.to_string(), "2".to_string());
    }
    sim.cassandra_create_keyspace(cluster, "app", &replication).expect("keyspace app");
    sim.cassandra_create_table(cluster, "app", "kv").expect("table app.kv");
    let first = datacenters.first().copied().unwrap_or("dc1");
    sim.cassandra_write_generated(cluster, first, "app", "kv", rows, ConsistencyLevel::All)
        .expect("rows");
}

/// Runs a binary's Medusa tests one at a time: each starts a Sim with Cassandra nodes, Medusa
/// and several operators, and their bounded waits are sized for one at a time.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
