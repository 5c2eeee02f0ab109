//! Server-side apply of one large custom resource (a benchmark, not a test):
//! `cargo bench -p kube-sim --bench large_apply`.
//!
//! A K8ssandraCluster (Federator's CRD, from the workspace's `crds/`) with N datacenters and a
//! status aggregating N datacenters, applied again and again with one changed setting over
//! HTTPS with kube-rs, as the fan-out benchmark's hub sees it. Prints the object's size and the
//! apply latency (min, p50, p90) for N = 1, 10, 100 (`LARGE_APPLY_SIZES`, `LARGE_APPLY_ROUNDS`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube_sim::SimBuilder;
use serde_json::{Value, json};

fn cluster(datacenters: usize, concurrent_reads: u64) -> Value {
    let datacenters: Vec<Value> = (1..=datacenters)
        .map(|i| {
            json!({"metadata": {"name": format!("dc-{i}")}, "k8sContext": format!("region-{i}"), "size": 1})
        })
        .collect();
    json!({
        "apiVersion": "k8ssandra.io/v1alpha1", "kind": "K8ssandraCluster",
        "metadata": {"name": "wide", "namespace": "default"},
        "spec": {"cassandra": {
            "serverVersion": "4.1.5",
            "config": {"cassandraYaml": {"concurrent_reads": concurrent_reads}},
            "storageConfig": {"cassandraDataVolumeClaimSpec": {
                "storageClassName": "standard", "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "5Gi"}}}},
            "datacenters": datacenters,
        }}
    })
}

/// What Federator aggregates: each datacenter's CassandraDatacenter status.
fn status(datacenters: usize) -> Value {
    let per_datacenter: serde_json::Map<String, Value> = (1..=datacenters)
        .map(|i| {
            let conditions: Vec<Value> = ["Healthy", "Ready", "Updating", "Stopped", "ScalingUp"]
                .iter()
                .map(|t| json!({"type": t, "status": "False", "lastTransitionTime": "2026-11-24T10:00:00Z", "message": "", "reason": ""}))
                .collect();
            (
                format!("dc-{i}"),
                json!({"cassandra": {
                    "cassandraOperatorProgress": "Ready", "conditions": conditions,
                    "lastServerNodeStarted": "2026-11-24T10:00:00Z", "observedGeneration": 2,
                    "nodeStatuses": {format!("dc-{i}-default-sts-0"): {"hostID": "1b5e6f5e-1111-2222-3333-444455556666"}},
                }}),
            )
        })
        .collect();
    json!({
        "apiVersion": "k8ssandra.io/v1alpha1", "kind": "K8ssandraCluster",
        "status": {"datacenters": per_datacenter, "readyDatacenters": datacenters},
    })
}

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

fn percentile(sorted: &[Duration], p: usize) -> f64 {
    let index = (sorted.len().saturating_sub(1) * p) / 100;
    sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn main() -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let crds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds");
        let sim = SimBuilder::new().clusters(1).crd_dir(crds).start().await?;
        let client = sim.client(0).await?;
        let resource = ApiResource {
            group: "k8ssandra.io".into(),
            version: "v1alpha1".into(),
            api_version: "k8ssandra.io/v1alpha1".into(),
            kind: "K8ssandraCluster".into(),
            plural: "k8ssandraclusters".into(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &resource);
        let rounds = env_list("LARGE_APPLY_ROUNDS", "200").first().copied().unwrap_or(200);
        let params = PatchParams::apply("large-apply").force();
        println!("| datacenters | object bytes | apply min | p50 | p90 |");
        println!("|---|---|---|---|---|");
        for datacenters in env_list("LARGE_APPLY_SIZES", "1,10,100") {
            api.patch("wide", &params, &Patch::Apply(&cluster(datacenters, 16))).await?;
            let status_params = PatchParams::apply("large-apply-status").force();
            api.patch_status("wide", &status_params, &Patch::Apply(&status(datacenters))).await?;
            let bytes = serde_json::to_vec(&api.get("wide").await?)?.len();
            let mut times = Vec::with_capacity(rounds);
            for round in 0..rounds as u64 {
                let started = Instant::now();
                api.patch(
                    "wide",
                    &params,
                    &Patch::Apply(&cluster(datacenters, 17 + round)),
                )
                .await?;
                times.push(started.elapsed());
            }
            times.sort();
            println!(
                "| {datacenters} | {bytes} | {:.2} ms | {:.2} ms | {:.2} ms |",
                percentile(&times, 0),
                percentile(&times, 50),
                percentile(&times, 90)
            );
            api.delete("wide", &Default::default()).await?;
            // Deletion with finalizers is not a concern here: the CR has none.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::Ok(())
    })
}
