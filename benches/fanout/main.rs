//! Fan-out benchmark: how fast a change reaches every region, against the least any control
//! plane must do for it (the floor), and what that costs.
//!
//! For each N (regions), kube-sim runs N+1 clusters in this process (the hub and N regions,
//! with the cass-operator stand-in) and the release `federator` binary runs as a child process
//! against the hub, with one ClientConfig per region. Times are taken in the regions' own
//! stores (the instant a watch there sees the object), so they include everything between the
//! hub write and the region write. The floor ([`floor`]) is a bare client in this process
//! writing the same bodies straight to the regions, timed by the same watches in the same run.
//! Figures:
//!
//! - cold start: 10 x N single-DC K8ssandraClusters spread over the regions, created at once;
//!   time until each one's DC exists and its status is aggregated in the hub (p50, p99); the
//!   floor writes each cluster's superuser Secret copy and datacenter to its region, until the
//!   datacenter shows a status;
//! - update fan-out: a change that restarts nothing (a label on every datacenter, under the
//!   default rollout policy) to a K8ssandraCluster with one DC in every region; time until all
//!   N regions have it (p50, p99 over the changes); after each, the floor applies the same
//!   label change to N datacenters of the same bodies at once. Then a change that restarts
//!   Cassandra (`concurrent_reads`) under `federator.k8ssandra.io/rollout-wave: all`;
//! - secret rotation: a source Secret's change until every region's copy matches; the floor
//!   applies the Secret to every region at once;
//! - steady state: writes and reads per minute against all clusters while nothing changes;
//! - Federator's CPU per region per update and per region per minute at steady state (its own
//!   /proc accounting), peak RSS, RSS per region, CPU seconds.
//!
//! Each N runs FANOUT_RUNS times on a fresh simulator and Federator; each figure reported is the
//! median over the runs ([`report`]). The table goes to standard output, to
//! `target/fanout.json` with every run, and to the latest-run section of docs/performance.md.
//!
//! Run: `make bench` (= `cargo bench --bench fanout`). Settings by environment:
//! FANOUT_REGIONS (default "1,10,50,100"), FANOUT_RUNS (3), FANOUT_CHANGES (20),
//! FANOUT_STEADY_SECONDS (60).

mod floor;
mod report;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use kube_sim::store::WatchOptions;
use kube_sim::{Sim, SimBuilder};
use serde_json::{Value, json};

use floor::{Floor, Kind as FloorKind};
use report::{Figures, Provenance, millis, ratio};

/// The simulated API servers (this process) stand in for machines of their own; their
/// allocations are not what is measured, so they get a faster allocator than glibc's.
#[global_allocator]
static SIMULATOR_ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NS: &str = "bench";
const OPERATOR_NS: &str = "k8ssandra-operator";
const MANAGER: &str = "fanout-bench";
const APPLIED_HASH: &str = "federator.k8ssandra.io/applied-hash";
/// The stand-in makes a datacenter Ready this long after a change.
const DC_READY_AFTER: Duration = Duration::from_millis(100);
/// Creates in flight at once in a cold start, Federator's (to the hub) and the floor's.
const CREATES_IN_FLIGHT: usize = 64;
const PHASE_LIMIT: Duration = Duration::from_secs(600);
const SETUP_LIMIT: Duration = Duration::from_secs(120);

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// When each watched object was last seen changed, by (cluster index, name). Objects are kept
/// as the store holds them and parsed only when a wait looks at them: the benchmark shares
/// the cores it measures, and parsing every event of 100 regions (and copying the object on
/// every poll) was a tenth of the simulator process's CPU during the update fan-out.
#[derive(Clone, Default)]
struct Sightings {
    seen: Arc<Mutex<HashMap<(usize, String), Sighting>>>,
}

/// The object as last seen (compact JSON, shared with the store), and when.
type Sighting = (Arc<[u8]>, Instant);

/// Just the name of a watched object, read without building the rest.
#[derive(serde::Deserialize)]
struct Named {
    metadata: NameOnly,
}

#[derive(serde::Deserialize)]
struct NameOnly {
    name: String,
}

impl Sightings {
    fn record(&self, cluster: usize, object: Arc<[u8]>) {
        let Ok(named) = serde_json::from_slice::<Named>(&object) else {
            return;
        };
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert((cluster, named.metadata.name), (object, Instant::now()));
        }
    }

    fn get_raw(&self, cluster: usize, name: &str) -> Option<Sighting> {
        self.seen.lock().ok()?.get(&(cluster, name.to_string())).cloned()
    }

    fn get(&self, cluster: usize, name: &str) -> Option<(Value, Instant)> {
        let (bytes, at) = self.get_raw(cluster, name)?;
        Some((serde_json::from_slice(&bytes).ok()?, at))
    }

    /// Polls until `done` holds for the object, then gives when it was seen so. An object is
    /// parsed once per change, not once per poll.
    async fn wait(
        &self,
        cluster: usize,
        name: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + limit;
        let mut checked: Option<Arc<[u8]>> = None;
        loop {
            if let Some((bytes, at)) = self.get_raw(cluster, name)
                && !checked.as_ref().is_some_and(|c| Arc::ptr_eq(c, &bytes))
            {
                if let Ok(object) = serde_json::from_slice::<Value>(&bytes)
                    && done(&object)
                {
                    return Ok(at);
                }
                checked = Some(bytes);
            }
            if Instant::now() > deadline {
                bail!("{name} in cluster {cluster} not as expected after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Records every change of `group/plural` in cluster `index` (namespace NS) into `sightings`.
fn watch_store(
    sim: &Sim,
    index: usize,
    group: &str,
    version: &str,
    plural: &str,
    sightings: &Sightings,
) -> anyhow::Result<()> {
    let store = sim.store(index)?;
    let info = sim.resource(index, group, version, plural)?;
    let options = WatchOptions {
        stored_objects: true,
        ..WatchOptions::default()
    };
    let mut stream =
        store.watch(&info, Some(NS), &options).map_err(|e| anyhow!("watch {plural}: {e}"))?;
    let sightings = sightings.clone();
    tokio::spawn(async move {
        while let Some(event) = stream.next().await {
            if event.event_type == "BOOKMARK" || event.event_type == "ERROR" {
                continue;
            }
            let object = match event.stored {
                Some(stored) => stored,
                None => match serde_json::to_vec(&event.object) {
                    Ok(bytes) => bytes.into(),
                    Err(_) => continue,
                },
            };
            sightings.record(index, object);
        }
    });
    Ok(())
}

/// `/proc/<pid>` figures of the federator process.
struct ProcessFigures {
    peak_rss_mib: f64,
    rss_mib: f64,
    cpu_seconds: f64,
}

fn process_figures(pid: u32) -> anyhow::Result<ProcessFigures> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 11 and 12 after the name and state.
    let cpu_seconds = (ticks(11) + ticks(12)) / 100.0;
    Ok(ProcessFigures {
        peak_rss_mib: kib("VmHWM:") / 1024.0,
        rss_mib: kib("VmRSS:") / 1024.0,
        cpu_seconds,
    })
}

struct Federator(Child);

impl Drop for Federator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One N: kube-sim, the regions registered, federator running.
struct Setup {
    sim: Sim,
    hub: Client,
    regions: usize,
    federator: Federator,
    _dir: tempfile::TempDir,
}

async fn apply(api: &Api<DynamicObject>, name: &str, object: Value) -> anyhow::Result<()> {
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await
    .with_context(|| format!("apply {name}"))?;
    Ok(())
}

fn dynamic(
    client: &Client,
    api_version: &str,
    kind: &str,
    plural: &str,
    ns: Option<&str>,
) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = kube::api::ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn setup(regions: usize) -> anyhow::Result<Setup> {
    let mut builder = SimBuilder::new()
        .clusters(regions + 1)
        .context_prefix("region-")
        .cass_operator(true)
        .dc_ready_after(DC_READY_AFTER)
        .crd_dir(repo_dir().join("crds"));
    let cass_operator_crds = repo_dir().join("../shared/compat/crds/cass-operator");
    if cass_operator_crds.is_dir() {
        builder = builder.crd_dir(cass_operator_crds);
    }
    let sim = builder.start().await?;
    let hub = sim.client(0).await?;
    for index in 0..=regions {
        let client = sim.client(index).await?;
        let namespaces = dynamic(&client, "v1", "Namespace", "namespaces", None);
        for ns in [NS, OPERATOR_NS] {
            apply(
                &namespaces,
                ns,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )
            .await?;
        }
    }
    let kubeconfig_base64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(sim.kubeconfig_yaml())
    };
    let secrets = dynamic(&hub, "v1", "Secret", "secrets", Some(OPERATOR_NS));
    let client_configs = dynamic(
        &hub,
        "config.k8ssandra.io/v1beta1",
        "ClientConfig",
        "clientconfigs",
        Some(OPERATOR_NS),
    );
    for index in 1..=regions {
        let context = sim.context_name(index);
        apply(
            &secrets,
            &format!("{context}-kubeconfig"),
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": format!("{context}-kubeconfig"), "namespace": OPERATOR_NS},
                "data": {"kubeconfig": kubeconfig_base64},
            }),
        )
        .await?;
        apply(&client_configs, &context, json!({
            "apiVersion": "config.k8ssandra.io/v1beta1", "kind": "ClientConfig",
            "metadata": {"name": context, "namespace": OPERATOR_NS},
            "spec": {"contextName": context, "kubeConfigSecret": {"name": format!("{context}-kubeconfig")}},
        })).await?;
    }
    let dir = tempfile::tempdir()?;
    let kubeconfig_path = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig_path)?;
    let federator = start_federator(&kubeconfig_path, &sim.context_name(0), dir.path())?;
    let setup = Setup {
        sim,
        hub,
        regions,
        federator,
        _dir: dir,
    };
    wait_regions_ready(&setup).await?;
    Ok(setup)
}

fn start_federator(kubeconfig: &Path, context: &str, dir: &Path) -> anyhow::Result<Federator> {
    let log = std::fs::File::create(dir.join("federator.log"))?;
    let child = Command::new(env!("CARGO_BIN_EXE_federator"))
        .args([
            "run",
            // One replica; lease renewals are not fan-out work.
            "--no-leader-election",
            "--mode",
            "control-plane",
            "--namespace",
            OPERATOR_NS,
            "--http-addr",
            "127.0.0.1:0",
            "--log-level",
            "warn",
        ])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--context", context])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting federator")?;
    Ok(Federator(child))
}

async fn wait_regions_ready(setup: &Setup) -> anyhow::Result<()> {
    let client_configs = dynamic(
        &setup.hub,
        "config.k8ssandra.io/v1beta1",
        "ClientConfig",
        "clientconfigs",
        Some(OPERATOR_NS),
    );
    let deadline = Instant::now() + SETUP_LIMIT;
    loop {
        let list = client_configs.list(&Default::default()).await?;
        let ready = list
            .items
            .iter()
            .filter_map(|cc| serde_json::to_value(cc).ok())
            .filter(|cc| {
                cc["status"]["conditions"].as_array().is_some_and(|conditions| {
                    conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .count();
        if ready == setup.regions {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{ready}/{} regions Ready", setup.regions);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn cluster_manifest(name: &str, datacenters: Vec<Value>, concurrent_reads: u64) -> Value {
    json!({
        "apiVersion": "k8ssandra.io/v1alpha1", "kind": "K8ssandraCluster",
        "metadata": {"name": name, "namespace": NS},
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

fn datacenter(name: &str, context: &str) -> Value {
    json!({"metadata": {"name": name}, "k8sContext": context, "size": 1})
}

fn aggregated(k8c: &Value, dc: &str) -> bool {
    k8c["status"]["datacenters"][dc]["cassandra"].is_object()
}

/// 10 x N single-DC clusters at once; per cluster, time until its status aggregates its DC.
async fn cold_start(setup: &Setup, hub_sightings: &Sightings) -> anyhow::Result<Vec<Duration>> {
    let clusters = dynamic(
        &setup.hub,
        "k8ssandra.io/v1alpha1",
        "K8ssandraCluster",
        "k8ssandraclusters",
        Some(NS),
    );
    let count = 10 * setup.regions;
    let started = Instant::now();
    let creates = (0..count).map(|k| {
        let clusters = clusters.clone();
        let context = setup.sim.context_name(1 + k % setup.regions);
        async move {
            let manifest = cluster_manifest(
                &format!("cold-{k}"),
                vec![datacenter(&format!("cold-dc-{k}"), &context)],
                16,
            );
            let object: DynamicObject = serde_json::from_value(manifest)?;
            clusters
                .create(&PostParams::default(), &object)
                .await
                .with_context(|| format!("create cold-{k}"))
        }
    });
    for result in
        futures::stream::iter(creates).buffer_unordered(CREATES_IN_FLIGHT).collect::<Vec<_>>().await
    {
        result?;
    }
    let mut times = Vec::with_capacity(count);
    for k in 0..count {
        let dc = format!("cold-dc-{k}");
        let at = hub_sightings
            .wait(0, &format!("cold-{k}"), PHASE_LIMIT, |k8c| {
                aggregated(k8c, &dc)
            })
            .await?;
        times.push(at.saturating_duration_since(started));
    }
    Ok(times)
}

/// What Federator writes in a region for one single-DC cluster (its datacenter and superuser
/// Secret copy), from a probe cluster applied and deleted again.
async fn probe_bodies(
    setup: &Setup,
    region_dcs: &Sightings,
    region_secrets: &Sightings,
) -> anyhow::Result<(Value, Value)> {
    let clusters = dynamic(
        &setup.hub,
        "k8ssandra.io/v1alpha1",
        "K8ssandraCluster",
        "k8ssandraclusters",
        Some(NS),
    );
    let context = setup.sim.context_name(1);
    apply(
        &clusters,
        "probe",
        cluster_manifest("probe", vec![datacenter("probe-dc", &context)], 16),
    )
    .await?;
    region_dcs.wait(1, "probe-dc", SETUP_LIMIT, |_| true).await?;
    let datacenter = region_dcs.get(1, "probe-dc").map(|(dc, _)| dc);
    region_secrets.wait(1, "probe-superuser", SETUP_LIMIT, |_| true).await?;
    let secret = region_secrets.get(1, "probe-superuser").map(|(secret, _)| secret);
    clusters.delete("probe", &Default::default()).await?;
    let datacenters = dynamic(
        &setup.sim.client(1).await?,
        "cassandra.datastax.com/v1beta1",
        "CassandraDatacenter",
        "cassandradatacenters",
        Some(NS),
    );
    let deadline = Instant::now() + SETUP_LIMIT;
    while datacenters.get_opt("probe-dc").await?.is_some() {
        if Instant::now() > deadline {
            bail!("the probe cluster's datacenter is still there after {SETUP_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match (datacenter, secret) {
        (Some(datacenter), Some(secret)) => Ok((datacenter, secret)),
        _ => bail!("the probe cluster's datacenter or superuser Secret was not seen"),
    }
}

/// The floor of [`cold_start`]: for each of 10 x N clusters, its superuser Secret copy and then
/// its datacenter written straight to its region, as many clusters at once as the hub gets
/// creates; per cluster, time until its region shows the datacenter's first status. Removed
/// again before Federator's cold start.
async fn floor_cold_start(
    setup: &Setup,
    floor: &Floor,
    template: &(Value, Value),
    region_dcs: &Sightings,
) -> anyhow::Result<Vec<Duration>> {
    let count = 10 * setup.regions;
    let bodies: Vec<(usize, String, Value, Value)> = (0..count)
        .map(|k| {
            let secret_name = format!("floor-cold-{k}-superuser");
            let dc = floor::datacenter_body(
                &template.0,
                &format!("floor-cold-dc-{k}"),
                &format!("floor-cold-{k}"),
                &secret_name,
                json!({}),
            );
            (
                1 + k % setup.regions,
                secret_name.clone(),
                floor::secret_body(&template.1, &secret_name),
                dc,
            )
        })
        .collect();
    let started = Instant::now();
    let creates =
        bodies.into_iter().enumerate().map(|(k, (region, secret_name, secret, dc))| async move {
            floor.apply_all(vec![(region, FloorKind::Secret, secret_name, secret)]).await?;
            floor
                .apply_all(vec![(
                    region,
                    FloorKind::Datacenter,
                    format!("floor-cold-dc-{k}"),
                    dc,
                )])
                .await
        });
    for result in
        futures::stream::iter(creates).buffer_unordered(CREATES_IN_FLIGHT).collect::<Vec<_>>().await
    {
        result?;
    }
    let mut times = Vec::with_capacity(count);
    for k in 0..count {
        let at = region_dcs
            .wait(
                1 + k % setup.regions,
                &format!("floor-cold-dc-{k}"),
                PHASE_LIMIT,
                |dc| dc["status"]["cassandraOperatorProgress"].is_string(),
            )
            .await?;
        times.push(at.saturating_duration_since(started));
    }
    floor.remove("floor-cold", PHASE_LIMIT).await?;
    Ok(times)
}

/// What [`update_fanout`] changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    /// A label on every datacenter, under the default rollout policy: restarts nothing.
    Label,
    /// `concurrent_reads`, under the all-at-once policy: restarts Cassandra everywhere.
    RestartAll,
}

/// An update phase's figures.
struct UpdateTimes {
    /// Per change, until the last region has it.
    federator: Vec<Duration>,
    /// Per floor change (one after each of Federator's), until the last region has it.
    floor: Vec<Duration>,
    /// Federator's CPU over its changes, each until it settled.
    federator_cpu_seconds: f64,
}

/// One cluster with a DC in every region; each change's time until every region has it. With a
/// floor, each change is followed by the floor's: the same datacenter bodies, under other names,
/// applied straight to every region with the same label change.
async fn update_fanout(
    setup: &Setup,
    region_sightings: &Sightings,
    hub_sightings: &Sightings,
    changes: u64,
    kind: Change,
    floor: Option<&Floor>,
) -> anyhow::Result<UpdateTimes> {
    let clusters = dynamic(
        &setup.hub,
        "k8ssandra.io/v1alpha1",
        "K8ssandraCluster",
        "k8ssandraclusters",
        Some(NS),
    );
    let dcs: Vec<(usize, String)> =
        (1..=setup.regions).map(|i| (i, format!("wide-dc-{i}"))).collect();
    let manifest = |version: u64| {
        let datacenters = dcs
            .iter()
            .map(|(i, name)| {
                let mut dc = datacenter(name, &setup.sim.context_name(*i));
                if kind == Change::Label {
                    dc["metadata"]["labels"] = json!({"bench/change": version.to_string()});
                }
                dc
            })
            .collect();
        let reads = if kind == Change::RestartAll {
            version
        } else {
            16
        };
        let mut k8c = cluster_manifest("wide", datacenters, reads);
        if kind == Change::RestartAll {
            k8c["metadata"]["annotations"] = json!({"federator.k8ssandra.io/rollout-wave": "all"});
        }
        k8c
    };
    apply(&clusters, "wide", manifest(16)).await?;
    // Bootstrap is one DC after another: wait until every one is Ready.
    let ready = |dc: &Value| {
        dc["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
    };
    for (region, name) in &dcs {
        region_sightings.wait(*region, name, PHASE_LIMIT, ready).await?;
    }
    hub_sightings
        .wait(0, "wide", PHASE_LIMIT, |k8c| {
            k8c["status"]["readyDatacenters"].as_u64() == Some(setup.regions as u64)
        })
        .await?;
    let floor_dcs: Vec<(usize, String)> =
        (1..=setup.regions).map(|i| (i, format!("floor-dc-{i}"))).collect();
    let floor_bodies = |version: u64| -> anyhow::Result<Vec<(usize, FloorKind, String, Value)>> {
        dcs.iter()
            .zip(&floor_dcs)
            .map(|((region, federators), (_, name))| {
                let (body, _) = region_sightings
                    .get(*region, federators)
                    .ok_or_else(|| anyhow!("{federators} not seen in cluster {region}"))?;
                let labels = json!({"bench/change": version.to_string()});
                let body =
                    floor::datacenter_body(&body, name, name, &format!("{name}-superuser"), labels);
                Ok((*region, FloorKind::Datacenter, name.clone(), body))
            })
            .collect()
    };
    let has_label = |version: u64| {
        move |dc: &Value| {
            dc["metadata"]["labels"]["bench/change"].as_str() == Some(&*version.to_string())
        }
    };
    if let Some(floor) = floor {
        floor.apply_all(floor_bodies(0)?).await?;
        floor::slowest_arrival(
            region_sightings,
            &floor_dcs,
            Instant::now(),
            PHASE_LIMIT,
            has_label(0),
        )
        .await?;
    }
    let hash = |object: &Value| {
        object["metadata"]["annotations"][APPLIED_HASH].as_str().map(str::to_string)
    };
    let mut times = UpdateTimes {
        federator: Vec::new(),
        floor: Vec::new(),
        federator_cpu_seconds: 0.0,
    };
    for change in 0..changes {
        let before: BTreeMap<usize, Option<String>> = dcs
            .iter()
            .map(|(i, name)| {
                (
                    *i,
                    region_sightings.get(*i, name).and_then(|(o, _)| hash(&o)),
                )
            })
            .collect();
        let cpu_before = process_figures(setup.federator.0.id())?.cpu_seconds;
        let started = Instant::now();
        apply(&clusters, "wide", manifest(17 + change)).await?;
        let hub_applied = started.elapsed();
        let mut arrivals = Vec::with_capacity(dcs.len());
        for (region, name) in &dcs {
            let old = before.get(region).cloned().flatten();
            let at = region_sightings
                .wait(*region, name, Duration::from_secs(60), |dc| hash(dc) != old)
                .await?;
            arrivals.push(at.saturating_duration_since(started));
        }
        arrivals.sort();
        let slowest = arrivals.last().copied().unwrap_or_default();
        times.federator.push(slowest);
        // Let cass-operator's Updating/Ready round settle before the next change.
        tokio::time::sleep(DC_READY_AFTER * 3).await;
        times.federator_cpu_seconds +=
            process_figures(setup.federator.0.id())?.cpu_seconds - cpu_before;
        let mut line = format!(
            "N={}: {kind:?} change {change}: hub apply {}, first region {}, median {}, last {}",
            setup.regions,
            ms(hub_applied),
            ms(arrivals.first().copied().unwrap_or_default()),
            ms(percentile(&arrivals, 50.0)),
            ms(slowest),
        );
        if let Some(floor) = floor {
            let version = 1 + change;
            let bodies = floor_bodies(version)?;
            let started = Instant::now();
            floor.apply_all(bodies).await?;
            let floor_slowest = floor::slowest_arrival(
                region_sightings,
                &floor_dcs,
                started,
                Duration::from_secs(60),
                has_label(version),
            )
            .await?;
            times.floor.push(floor_slowest);
            line.push_str(&format!("; floor last {}", ms(floor_slowest)));
            tokio::time::sleep(DC_READY_AFTER * 3).await;
        }
        eprintln!("{line}");
    }
    Ok(times)
}

/// A Secret replicated to every region; each change's time until every region's copy has it.
/// With a floor, each change is followed by the floor's: the Secret applied straight to every
/// region.
async fn secret_rotation(
    setup: &Setup,
    copies: &Sightings,
    changes: u64,
    floor: Option<&Floor>,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    use base64::Engine as _;
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let secrets = dynamic(&setup.hub, "v1", "Secret", "secrets", Some(NS));
    let secret = |name: &str, version: u64| {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": NS, "labels": {"bench/rotate": "yes"}},
            "data": {"password": encode(&format!("password-{version}"))},
        })
    };
    apply(&secrets, "rotating", secret("rotating", 0)).await?;
    let targets: Vec<Value> = (1..=setup.regions)
        .map(|i| json!({"k8sContextName": setup.sim.context_name(i), "namespace": NS}))
        .collect();
    let replicated = dynamic(
        &setup.hub,
        "replication.k8ssandra.io/v1alpha1",
        "ReplicatedSecret",
        "replicatedsecrets",
        Some(NS),
    );
    apply(&replicated, "rotating", json!({
        "apiVersion": "replication.k8ssandra.io/v1alpha1", "kind": "ReplicatedSecret",
        "metadata": {"name": "rotating", "namespace": NS},
        "spec": {"selector": {"matchLabels": {"bench/rotate": "yes"}}, "replicationTargets": targets},
    }))
    .await?;
    let has = |version: u64| {
        let wanted = encode(&format!("password-{version}"));
        move |copy: &Value| copy["data"]["password"].as_str() == Some(wanted.as_str())
    };
    let federators: Vec<(usize, String)> =
        (1..=setup.regions).map(|i| (i, "rotating".to_string())).collect();
    let floors: Vec<(usize, String)> =
        (1..=setup.regions).map(|i| (i, "floor-rotating".to_string())).collect();
    // The floor's copies carry no label the ReplicatedSecret selects.
    let floor_writes = |version: u64| {
        let mut body = secret("floor-rotating", version);
        body["metadata"]["labels"] = json!({});
        floors
            .iter()
            .map(|(region, name)| (*region, FloorKind::Secret, name.clone(), body.clone()))
            .collect::<Vec<_>>()
    };
    let first = Instant::now();
    floor::slowest_arrival(copies, &federators, first, PHASE_LIMIT, has(0)).await?;
    if let Some(floor) = floor {
        floor.apply_all(floor_writes(0)).await?;
        floor::slowest_arrival(copies, &floors, first, PHASE_LIMIT, has(0)).await?;
    }
    let (mut times, mut floor_times) = (Vec::new(), Vec::new());
    for version in 1..=changes {
        let started = Instant::now();
        apply(&secrets, "rotating", secret("rotating", version)).await?;
        times.push(
            floor::slowest_arrival(
                copies,
                &federators,
                started,
                Duration::from_secs(60),
                has(version),
            )
            .await?,
        );
        if let Some(floor) = floor {
            let writes = floor_writes(version);
            let started = Instant::now();
            floor.apply_all(writes).await?;
            floor_times.push(
                floor::slowest_arrival(
                    copies,
                    &floors,
                    started,
                    Duration::from_secs(60),
                    has(version),
                )
                .await?,
            );
        }
    }
    Ok((times, floor_times))
}

/// Federator's API writes and reads per minute against all clusters over a quiet window,
/// from kube-sim's request accounting (by User-Agent; watches are not counted as reads), and
/// its CPU seconds over that window.
async fn steady_requests(setup: &Setup, window: Duration) -> anyhow::Result<(f64, f64, f64)> {
    // Let status updates of the last changes land first.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for index in 0..=setup.regions {
        setup.sim.reset_requests(index)?;
    }
    let cpu_before = process_figures(setup.federator.0.id())?.cpu_seconds;
    tokio::time::sleep(window).await;
    let cpu_seconds = process_figures(setup.federator.0.id())?.cpu_seconds - cpu_before;
    let (mut writes, mut reads) = (0u64, 0u64);
    for index in 0..=setup.regions {
        for counted in setup.sim.requests(index)? {
            if !counted.user_agent.starts_with("federator/") || counted.verb == "watch" {
                continue;
            }
            if counted.is_write() {
                writes += counted.count;
            } else {
                reads += counted.count;
            }
        }
    }
    let per_minute = |n: u64| n as f64 * 60.0 / window.as_secs_f64();
    Ok((per_minute(writes), per_minute(reads), cpu_seconds))
}

async fn run(regions: usize, changes: u64, steady: Duration) -> anyhow::Result<Figures> {
    let setup_started = Instant::now();
    let setup = setup(regions).await?;
    eprintln!(
        "N={regions}: {regions} regions registered in {:.1}s",
        setup_started.elapsed().as_secs_f64()
    );
    let hub_sightings = Sightings::default();
    watch_store(
        &setup.sim,
        0,
        "k8ssandra.io",
        "v1alpha1",
        "k8ssandraclusters",
        &hub_sightings,
    )?;
    let region_sightings = Sightings::default();
    let copies = Sightings::default();
    for index in 1..=regions {
        watch_store(
            &setup.sim,
            index,
            "cassandra.datastax.com",
            "v1beta1",
            "cassandradatacenters",
            &region_sightings,
        )?;
        watch_store(&setup.sim, index, "", "v1", "secrets", &copies)?;
    }
    let floor = Floor::connect(&setup.sim, regions).await?;
    let template = probe_bodies(&setup, &region_sightings, &copies).await?;
    let cold_floor = floor_cold_start(&setup, &floor, &template, &region_sightings).await?;
    let cold = cold_start(&setup, &hub_sightings).await?;
    eprintln!(
        "N={regions}: cold start of {} clusters: p99 {} (floor {})",
        cold.len(),
        ms(percentile(&cold, 99.0)),
        ms(percentile(&cold_floor, 99.0)),
    );
    let update = update_fanout(
        &setup,
        &region_sightings,
        &hub_sightings,
        changes,
        Change::Label,
        Some(&floor),
    )
    .await?;
    eprintln!(
        "N={regions}: update fan-out p99 {} (floor {})",
        ms(percentile(&update.federator, 99.0)),
        ms(percentile(&update.floor, 99.0)),
    );
    let restart = update_fanout(
        &setup,
        &region_sightings,
        &hub_sightings,
        changes,
        Change::RestartAll,
        None,
    )
    .await?;
    eprintln!(
        "N={regions}: restart-all fan-out p99 {}",
        ms(percentile(&restart.federator, 99.0))
    );
    let (rotation, rotation_floor) =
        secret_rotation(&setup, &copies, changes, Some(&floor)).await?;
    eprintln!(
        "N={regions}: secret rotation p99 {} (floor {})",
        ms(percentile(&rotation, 99.0)),
        ms(percentile(&rotation_floor, 99.0)),
    );
    let (writes_per_minute, reads_per_minute, steady_cpu_seconds) =
        steady_requests(&setup, steady).await?;
    let process = process_figures(setup.federator.0.id())?;
    let p = |samples: &[Duration], at: f64| millis(percentile(samples, at));
    let n = regions as f64;
    Ok(Figures {
        regions,
        cold_p50_ms: p(&cold, 50.0),
        cold_p99_ms: p(&cold, 99.0),
        cold_floor_p50_ms: p(&cold_floor, 50.0),
        cold_floor_p99_ms: p(&cold_floor, 99.0),
        cold_p50_ratio: ratio(p(&cold, 50.0), p(&cold_floor, 50.0)),
        cold_p99_ratio: ratio(p(&cold, 99.0), p(&cold_floor, 99.0)),
        update_p50_ms: p(&update.federator, 50.0),
        update_p99_ms: p(&update.federator, 99.0),
        update_floor_p50_ms: p(&update.floor, 50.0),
        update_floor_p99_ms: p(&update.floor, 99.0),
        update_p50_ratio: ratio(p(&update.federator, 50.0), p(&update.floor, 50.0)),
        update_p99_ratio: ratio(p(&update.federator, 99.0), p(&update.floor, 99.0)),
        restart_all_p50_ms: p(&restart.federator, 50.0),
        restart_all_p99_ms: p(&restart.federator, 99.0),
        rotation_p50_ms: p(&rotation, 50.0),
        rotation_p99_ms: p(&rotation, 99.0),
        rotation_floor_p50_ms: p(&rotation_floor, 50.0),
        rotation_floor_p99_ms: p(&rotation_floor, 99.0),
        rotation_p50_ratio: ratio(p(&rotation, 50.0), p(&rotation_floor, 50.0)),
        rotation_p99_ratio: ratio(p(&rotation, 99.0), p(&rotation_floor, 99.0)),
        steady_writes_per_minute: writes_per_minute,
        steady_reads_per_minute: reads_per_minute,
        cpu_ms_per_region_per_update: update.federator_cpu_seconds * 1000.0
            / (n * update.federator.len().max(1) as f64),
        cpu_ms_per_region_per_minute_steady: steady_cpu_seconds * 1000.0 * 60.0
            / (n * steady.as_secs_f64().max(1.0)),
        peak_rss_mib: process.peak_rss_mib,
        rss_per_region_mib: process.rss_mib / n,
        cpu_seconds: process.cpu_seconds,
    })
}

fn main() -> anyhow::Result<()> {
    // The bench harness passes `--bench`; nothing else is read from the command line.
    let regions = env_list("FANOUT_REGIONS", "1,10,50,100");
    let runs_per_n = env_number("FANOUT_RUNS", 3).max(1) as usize;
    let changes = env_number("FANOUT_CHANGES", 20);
    let steady_seconds = env_number("FANOUT_STEADY_SECONDS", 60);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let provenance = Provenance::gather(runs_per_n, changes, steady_seconds);
    let (mut medians, mut every_run) = (Vec::new(), Vec::new());
    for n in regions {
        let mut runs = Vec::with_capacity(runs_per_n);
        for attempt in 1..=runs_per_n {
            eprintln!("N={n}: run {attempt} of {runs_per_n}");
            runs.push(runtime.block_on(run(n, changes, Duration::from_secs(steady_seconds)))?);
        }
        medians.push(report::medians(&runs));
        every_run.extend(runs);
    }
    print!("{}", report::tables(&medians));
    let json = report::write_json(&provenance, &medians, &every_run)?;
    let docs = report::write_docs(&provenance, &medians)?;
    eprintln!(
        "figures written to {} and {}",
        json.display(),
        docs.display()
    );
    Ok(())
}
