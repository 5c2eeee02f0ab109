//! Shared by the fault suite and the bad-input matrix: three kube-sim clusters with the
//! cass-operator stand-in (cluster 0 is the hub and hosts dc1; regions `sim-1` and `sim-2`
//! registered as ClientConfigs host dc2 and dc3), the real `federator` binary as a child
//! process with its logs captured, and what the tests compare: every object carrying the
//! ownership labels, in every cluster.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use federator::api::cassdc::CassandraDatacenter;
use federator::api::k8ssandra_cluster::K8ssandraCluster;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::{Discovery, verbs};
use kube::{Api, Client};
use kube_sim::{Sim, SimBuilder};

pub const FEDERATOR: &str = env!("CARGO_BIN_EXE_federator");
/// The operator's namespace in the hub, and the namespace of every K8ssandraCluster and
/// datacenter here.
pub const NS: &str = "k8ssandra-operator";
pub const CLUSTER: &str = "demo";
const TEST_MANAGER: &str = "reliability-test";
/// Bound on every single API call a test makes.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Datacenter names and the cluster (index) each one runs in.
pub const DATACENTERS: [(&str, usize); 3] = [("dc1", 0), ("dc2", 1), ("dc3", 2)];

/// Three clusters with Federator's CRDs, cass-operator's CRD and its stand-in; the namespace
/// exists in every cluster.
pub async fn start_sim(dc_ready_after: Duration) -> Sim {
    let repo = env!("CARGO_MANIFEST_DIR");
    let sim = tokio::time::timeout(
        Duration::from_secs(120),
        SimBuilder::new()
            .clusters(3)
            .cass_operator(true)
            .dc_ready_after(dc_ready_after)
            .crd_dir(format!("{repo}/crds"))
            .crd_dir(format!("{repo}/../shared/compat/crds/cass-operator"))
            .start(),
    )
    .await
    .expect("kube-sim starts in time")
    .expect("kube-sim starts");
    for index in 0..3 {
        let client = sim.client(index).await.expect("client");
        apply(
            &Api::<Namespace>::all(client),
            NS,
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        )
        .await;
    }
    sim
}

/// Server-side apply by the test, forced; panics on an error.
pub async fn apply<K>(api: &Api<K>, name: &str, object: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    try_apply(api, name, object)
        .await
        .unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

/// Server-side apply with strict field validation, as `kubectl apply --server-side` sends it.
pub async fn try_apply<K>(
    api: &Api<K>,
    name: &str,
    object: serde_json::Value,
) -> Result<K, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    bounded(
        "apply",
        api.patch(
            name,
            &PatchParams::apply(TEST_MANAGER).force().validation_strict(),
            &Patch::Apply(&object),
        ),
    )
    .await
}

pub async fn bounded<T>(what: &str, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {CALL_TIMEOUT:?}"))
}

/// Polls `check` every 50 ms until it gives a value, at most `limit`; returns it and how long
/// it took. On timeout the panic shows `last`, what the check last saw.
pub async fn wait_for<T, Fut>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Fut,
) -> (T, Duration)
where
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(value) => return (value, start.elapsed()),
            Err(seen) => seen,
        };
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}; last seen: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Puts a Secret in the operator namespace holding `kubeconfig`.
pub async fn put_kubeconfig_secret(hub: &Client, name: &str, data: &[(&str, &[u8])]) {
    let data: BTreeMap<String, ByteString> = data
        .iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
        .collect();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };
    let mut value = serde_json::to_value(&secret).expect("json");
    value["apiVersion"] = "v1".into();
    value["kind"] = "Secret".into();
    apply(&Api::<Secret>::namespaced(hub.clone(), NS), name, value).await;
}

/// A ClientConfig `name` for `context` reading Secret `secret`.
pub async fn put_client_config(hub: &Client, name: &str, context: &str, secret: &str) {
    apply(
        &Api::<federator::api::client_config::ClientConfig>::namespaced(hub.clone(), NS),
        name,
        serde_json::json!({
            "apiVersion": "config.k8ssandra.io/v1beta1", "kind": "ClientConfig",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"contextName": context, "kubeConfigSecret": {"name": secret}}
        }),
    )
    .await;
}

/// Registers cluster `index` as region `sim-<index>`: its kubeconfig Secret and ClientConfig.
pub async fn register_region(sim: &Sim, hub: &Client, index: usize) {
    let context = sim.context_name(index);
    let secret = format!("{context}-config");
    put_kubeconfig_secret(
        hub,
        &secret,
        &[("kubeconfig", sim.kubeconfig_yaml().as_bytes())],
    )
    .await;
    put_client_config(hub, &context, &context, &secret).await;
}

/// A fresh client for cluster `index` (one made before the cluster was stopped, or its token
/// rotated, would not do).
pub async fn client(sim: &Sim, index: usize) -> Client {
    sim.client(index).await.expect("client")
}

/// The K8ssandraCluster `name` with dc1 in the hub, dc2 in `sim-1` and dc3 in `sim-2`, each of
/// `size` nodes.
pub fn cluster_manifest(sim: &Sim, name: &str, size: i32) -> serde_json::Value {
    let datacenters: Vec<serde_json::Value> = DATACENTERS
        .iter()
        .map(|(dc, index)| {
            let context = if *index == 0 {
                String::new()
            } else {
                sim.context_name(*index)
            };
            serde_json::json!({"metadata": {"name": dc}, "k8sContext": context, "size": size})
        })
        .collect();
    serde_json::json!({
        "apiVersion": "k8ssandra.io/v1alpha1",
        "kind": "K8ssandraCluster",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"cassandra": {
            "serverVersion": "4.1.5",
            "storageConfig": {"cassandraDataVolumeClaimSpec": {
                "storageClassName": "standard",
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "5Gi"}}
            }},
            "datacenters": datacenters
        }}
    })
}

pub async fn datacenter(
    sim: &Sim,
    index: usize,
    name: &str,
) -> Result<CassandraDatacenter, String> {
    let api = Api::<CassandraDatacenter>::namespaced(client(sim, index).await, NS);
    match tokio::time::timeout(CALL_TIMEOUT, api.get_opt(name)).await {
        Ok(Ok(Some(dc))) => Ok(dc),
        Ok(Ok(None)) => Err(format!("{name} absent in cluster {index}")),
        Ok(Err(e)) => Err(format!("get {name} in cluster {index}: {e}")),
        Err(_) => Err(format!("get {name} in cluster {index} timed out")),
    }
}

/// Every datacenter exists in its cluster with `size` nodes and is Ready.
pub async fn datacenters_ready(sim: &Sim, size: i32) -> Result<(), String> {
    for (name, index) in DATACENTERS {
        let dc = datacenter(sim, index, name).await?;
        if dc.spec.size != size || !dc.is_ready() {
            return Err(format!(
                "{name} in cluster {index}: size {} ready {}",
                dc.spec.size,
                dc.is_ready()
            ));
        }
    }
    Ok(())
}

pub async fn k8ssandra_cluster(sim: &Sim, name: &str) -> Result<Option<K8ssandraCluster>, String> {
    let api = Api::<K8ssandraCluster>::namespaced(client(sim, 0).await, NS);
    match tokio::time::timeout(CALL_TIMEOUT, api.get_opt(name)).await {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(e)) => Err(format!("get K8ssandraCluster {name}: {e}")),
        Err(_) => Err(format!("get K8ssandraCluster {name} timed out")),
    }
}

/// (status, reason, message) of a condition of the K8ssandraCluster.
pub fn condition(k8c: &K8ssandraCluster, type_: &str) -> Option<(String, String, String)> {
    k8c.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until the K8ssandraCluster's `type_` condition has `status` and `reason`.
pub async fn wait_condition(
    sim: &Sim,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
    limit: Duration,
) -> (String, Duration) {
    wait_for(
        &format!("{name} {type_}={status} ({reason})"),
        limit,
        || async {
            let k8c = k8ssandra_cluster(sim, name)
                .await?
                .ok_or_else(|| format!("{name} absent"))?;
            match condition(&k8c, type_) {
                Some((s, r, message)) if s == status && r == reason => Ok(message),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

/// `<plural> <namespace>/<name>` of every object in cluster `index` carrying the ownership
/// labels of K8ssandraCluster `NS/cluster`, of every resource the cluster serves.
pub async fn owned_objects(
    sim: &Sim,
    index: usize,
    cluster: &str,
) -> Result<BTreeSet<String>, String> {
    let client = client(sim, index).await;
    let discovery = tokio::time::timeout(CALL_TIMEOUT, Discovery::new(client.clone()).run())
        .await
        .map_err(|_| format!("discovery in cluster {index} timed out"))?
        .map_err(|e| format!("discovery in cluster {index}: {e}"))?;
    let selector =
        format!("k8ssandra.io/cluster-name={cluster},k8ssandra.io/cluster-namespace={NS}");
    let mut found = BTreeSet::new();
    for group in discovery.groups() {
        for (resource, capabilities) in group.recommended_resources() {
            if !capabilities.supports_operation(verbs::LIST) {
                continue;
            }
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            let list = tokio::time::timeout(
                CALL_TIMEOUT,
                api.list(&ListParams::default().labels(&selector)),
            )
            .await
            .map_err(|_| format!("listing {} timed out", resource.plural))?
            .map_err(|e| format!("listing {} in cluster {index}: {e}", resource.plural))?;
            for object in list.items {
                found.insert(format!(
                    "{} {}/{}",
                    resource.plural,
                    object.metadata.namespace.unwrap_or_default(),
                    object.metadata.name.unwrap_or_default()
                ));
            }
        }
    }
    Ok(found)
}

/// What Federator makes for K8ssandraCluster `cluster` in each of the three clusters: the
/// datacenter and its two seed EndpointSlices. Extend this when Federator makes more objects per
/// datacenter (superuser Secrets, Stargate, Reaper).
pub fn expected_objects(cluster: &str) -> [BTreeSet<String>; 3] {
    let mut expected: [BTreeSet<String>; 3] = Default::default();
    for (dc, index) in DATACENTERS {
        expected[index].insert(format!("cassandradatacenters {NS}/{dc}"));
        for family in ["ipv4", "ipv6"] {
            expected[index].insert(format!(
                "endpointslices {NS}/{cluster}-{cluster}-{dc}-additional-seed-service-{family}"
            ));
        }
    }
    // The generated superuser Secret (copied, labels and all, to every region with a DC) and
    // the ReplicatedSecret that copies it.
    for (_, index) in DATACENTERS {
        expected[index].insert(format!("secrets {NS}/{cluster}-superuser"));
    }
    expected[0].insert(format!("replicatedsecrets {NS}/{cluster}"));
    expected
}

/// Waits until every cluster holds exactly `expected` of the owned objects.
pub async fn wait_owned(
    sim: &Sim,
    cluster: &str,
    expected: &[BTreeSet<String>; 3],
    limit: Duration,
) {
    wait_for(
        "the owned objects to be exactly the expected ones",
        limit,
        || async {
            for (index, want) in expected.iter().enumerate() {
                let have = owned_objects(sim, index, cluster).await?;
                if &have != want {
                    return Err(format!(
                        "cluster {index}: extra {:?}, missing {:?}",
                        have.difference(want).collect::<Vec<_>>(),
                        want.difference(&have).collect::<Vec<_>>()
                    ));
                }
            }
            Ok(())
        },
    )
    .await;
}

/// Deletes the K8ssandraCluster (its finalizer holds it until the regions are clean).
pub async fn delete_cluster(sim: &Sim, name: &str) {
    let api = Api::<K8ssandraCluster>::namespaced(client(sim, 0).await, NS);
    bounded(
        "delete K8ssandraCluster",
        api.delete(name, &DeleteParams::default()),
    )
    .await
    .expect("delete K8ssandraCluster");
}

/// Waits until the K8ssandraCluster is gone (its finalizer released).
pub async fn wait_cluster_gone(sim: &Sim, name: &str, limit: Duration) -> Duration {
    wait_for(&format!("{name} deleted"), limit, || async {
        match k8ssandra_cluster(sim, name).await? {
            None => Ok(()),
            Some(k8c) => Err(format!(
                "still there: {:?}",
                k8c.status.and_then(|s| s.error)
            )),
        }
    })
    .await
    .1
}

/// `federator run` as a child process against the sim's hub, JSON logs captured; SIGKILLed
/// when dropped.
pub struct Federator {
    child: std::process::Child,
    logs: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Federator {
    pub fn start(kubeconfig: &Path) -> Federator {
        let mut child = std::process::Command::new(FEDERATOR)
            .args(["run", "--kubeconfig"])
            .arg(kubeconfig)
            .args(["--context", "sim-0", "--namespace", NS])
            .args(["--log-format", "json", "--log-level", "info"])
            // Several operators may run at once on one machine.
            .args(["--http-addr", "127.0.0.1:0"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("FEDERATOR_REGIONS__PROBE_INTERVAL_SECONDS", "1")
            .env("FEDERATOR_REGIONS__REQUEST_TIMEOUT_SECONDS", "2")
            .env("FEDERATOR_REGIONS__CONNECT_TIMEOUT_SECONDS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("federator run starts");
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&logs);
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(mut logs) = sink.lock() {
                    logs.push_str(&line);
                    logs.push('\n');
                }
            }
        });
        Federator {
            child,
            logs,
            reader: Some(reader),
        }
    }

    pub fn still_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// SIGKILL (no chance to clean up), then everything it logged.
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.logs()
    }
}

impl Drop for Federator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sim, its kubeconfig on disk, regions 1 and 2 registered, and the operator running.
pub struct World {
    pub sim: Sim,
    pub hub: Client,
    pub kubeconfig: PathBuf,
    pub federator: Option<Federator>,
    _dir: tempfile::TempDir,
}

impl World {
    pub async fn start(dc_ready_after: Duration) -> World {
        let sim = start_sim(dc_ready_after).await;
        let hub = client(&sim, 0).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("sim.kubeconfig");
        sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        for index in [1, 2] {
            register_region(&sim, &hub, index).await;
        }
        let federator = Some(Federator::start(&kubeconfig));
        World {
            sim,
            hub,
            kubeconfig,
            federator,
            _dir: dir,
        }
    }

    pub async fn apply_cluster(&self, name: &str, size: i32) {
        apply(
            &Api::<K8ssandraCluster>::namespaced(client(&self.sim, 0).await, NS),
            name,
            cluster_manifest(&self.sim, name, size),
        )
        .await;
    }

    /// SIGKILLs the running operator and starts a new one; returns the old one's logs.
    pub fn restart_federator(&mut self) -> String {
        let logs = self
            .federator
            .take()
            .map(Federator::kill)
            .unwrap_or_default();
        self.federator = Some(Federator::start(&self.kubeconfig));
        logs
    }

    /// Stops the operator (asserting it never exited by itself and never panicked) and the sim.
    pub async fn finish(mut self) -> String {
        let mut logs = String::new();
        if let Some(mut federator) = self.federator.take() {
            assert!(
                federator.still_running(),
                "the operator exited by itself:\n{}",
                federator.logs()
            );
            logs = federator.kill();
        }
        assert_no_panic(&logs);
        self.sim.shutdown().await;
        logs
    }
}

pub fn assert_no_panic(logs: &str) {
    assert!(!logs.contains("panicked"), "the operator panicked:\n{logs}");
}

/// The median of some durations.
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}
