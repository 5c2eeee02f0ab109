//! Throughput and memory of kube-sim (a benchmark, not a test):
//! `cargo bench -p kube-sim --bench throughput`.
//!
//! Starts `SIM_BENCH_CLUSTERS` clusters (default 100), seeds each with `SIM_BENCH_OBJECTS`
//! ConfigMaps (default 10000) through the store, prints the process's resident memory, then
//! measures requests/s over HTTPS with kube-rs on cluster 0 for get, list (pages of 500),
//! server-side apply, and watch delivery (events/s reaching one watcher while writers patch).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube_sim::SimBuilder;
use kube_sim::store::WriteOptions;
use serde_json::json;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

const WORKERS: usize = 16;

/// Runs `WORKERS` loops of `operation` for `duration`; returns operations per second.
async fn measure<F, Fut>(duration: Duration, operation: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let operation = Arc::new(operation);
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (operation, count, stop) = (
            Arc::clone(&operation),
            Arc::clone(&count),
            Arc::clone(&stop),
        );
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = count.fetch_add(1, Ordering::Relaxed);
                operation(n).await;
            }
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.await;
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clusters = env_number("SIM_BENCH_CLUSTERS", 100);
    let objects = env_number("SIM_BENCH_OBJECTS", 10_000);
    let seconds = env_number("SIM_BENCH_SECONDS", 5) as u64;
    let phase = Duration::from_secs(seconds);

    let before = resident_mib();
    let started = Instant::now();
    let sim = SimBuilder::new().clusters(clusters).start().await?;
    println!(
        "started {clusters} clusters in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let seeding = Instant::now();
    for index in 0..clusters {
        let store = sim.store(index)?;
        let info = sim.resource(index, "", "v1", "configmaps")?;
        let options = WriteOptions {
            field_manager: Some("bench".into()),
            ..Default::default()
        };
        for n in 0..objects {
            let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("cm-{n:05}"), "namespace": "default", "labels": {"bench": "yes", "shard": (n % 10).to_string()}},
                "data": {"key": format!("value-{n}"), "other": "some ordinary configuration text of moderate length"}});
            store
                .create(&info, Some("default"), object, &options)
                .map_err(|e| anyhow::anyhow!("seeding: {e}"))?;
        }
    }
    println!(
        "seeded {} objects in {:.1}s; resident memory {:.0} MiB (was {:.0} MiB)",
        clusters * objects,
        seeding.elapsed().as_secs_f64(),
        resident_mib(),
        before
    );

    let client = sim.client(0).await?;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let api = configmaps.clone();
    let objects_u64 = objects.max(1) as u64;
    let gets = measure(phase, move |n| {
        let api = api.clone();
        async move {
            let _ = api.get(&format!("cm-{:05}", n % objects_u64)).await;
        }
    })
    .await;
    println!("get:   {gets:>9.0} requests/s");

    let api = configmaps.clone();
    let lists = measure(phase, move |n| {
        let api = api.clone();
        async move {
            let _ = api
                .list(&ListParams::default().labels(&format!("shard={}", n % 10)).limit(500))
                .await;
        }
    })
    .await;
    println!("list:  {lists:>9.0} requests/s (label selector, pages of 500)");

    let api = configmaps.clone();
    let applies = measure(phase, move |n| {
        let api = api.clone();
        async move {
            let name = format!("cm-{:05}", n % objects_u64);
            let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"applied": n.to_string()}});
            let _ = api.patch(&name, &PatchParams::apply("bench-apply").force(), &Patch::Apply(&body)).await;
        }
    })
    .await;
    println!("apply: {applies:>9.0} requests/s (server-side apply)");

    let list = configmaps.list(&ListParams::default().limit(1)).await?;
    let rv = list.metadata.resource_version.unwrap_or_default();
    let mut stream = configmaps.watch(&WatchParams::default().timeout(290), &rv).await?.boxed();
    let delivered = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&delivered);
    let reader = tokio::spawn(async move {
        while let Some(event) = stream.next().await {
            if matches!(event, Ok(WatchEvent::Modified(_))) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let api = configmaps.clone();
    let watch_start = Instant::now();
    let writes = measure(phase, move |n| {
        let api = api.clone();
        async move {
            let name = format!("cm-{:05}", n % objects_u64);
            let _ = api
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"data": {"watched": n.to_string()}})),
                )
                .await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = delivered.load(Ordering::Relaxed) as f64 / watch_start.elapsed().as_secs_f64();
    reader.abort();
    println!(
        "watch: {events:>9.0} events/s delivered to one watcher ({writes:.0} merge patches/s)"
    );
    println!("resident memory at the end: {:.0} MiB", resident_mib());
    sim.shutdown().await;
    Ok(())
}
