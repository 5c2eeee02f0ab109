//! The fault suite's and the bad-input matrix's world: three kube-sim clusters with the
//! cass-operator stand-in (cluster 0 is the hub and hosts dc1; regions `sim-1` and `sim-2`
//! registered as ClientConfigs host dc2 and dc3), the real `federator` binary as a child
//! process with its logs captured, and what the tests compare: every object carrying the
//! ownership labels, in every cluster.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use federator::api::cassdc::CassandraDatacenter;
use federator::api::k8ssandra_cluster::K8ssandraCluster;
use kube::api::{DeleteParams, DynamicObject, ListParams};
use kube::discovery::{Discovery, verbs};
use kube::{Api, Client};
use kube_sim::Sim;

use super::cluster::{condition, k8ssandra_cluster};
use super::process::OperatorProcess;
use super::sim::{
    CALL_TIMEOUT, NS, bounded, hub_api, start_sim, try_apply, try_get, write_kubeconfig,
};
use super::wait::{timed, wait_for};

pub const CLUSTER: &str = "demo";
/// Datacenter names and the cluster (index) each one runs in.
pub const DATACENTERS: [(&str, usize); 3] = [("dc1", 0), ("dc2", 1), ("dc3", 2)];

/// A fresh client for cluster `index` (one made before the cluster was stopped, or its token
/// rotated, would not do).
pub async fn client(sim: &Sim, index: usize) -> Client {
    sim.client(index).await.expect("client")
}

/// The K8ssandraCluster `name` with dc1 in the hub, dc2 in `sim-1` and dc3 in `sim-2`, each of
/// `size` nodes.
pub fn cluster_manifest(sim: &Sim, name: &str, size: i32) -> serde_json::Value {
    let contexts: Vec<String> = DATACENTERS
        .iter()
        .map(|(_, index)| match index {
            0 => String::new(),
            _ => sim.context_name(*index),
        })
        .collect();
    let datacenters: Vec<(&str, &str, i32)> = DATACENTERS
        .iter()
        .zip(&contexts)
        .map(|((dc, _), context)| (*dc, context.as_str(), size))
        .collect();
    k8ssandra_cluster(name, &datacenters)
}

/// Datacenter `name` in cluster `index`; an error when absent or not read (the cluster may be
/// down).
pub async fn datacenter_in(
    sim: &Sim,
    index: usize,
    name: &str,
) -> Result<CassandraDatacenter, String> {
    try_get::<CassandraDatacenter>(&client(sim, index).await, name)
        .await
        .map_err(|e| format!("{e} in cluster {index}"))?
        .ok_or_else(|| format!("{name} absent in cluster {index}"))
}

/// Every datacenter exists in its cluster with `size` nodes and is Ready.
pub async fn datacenters_ready(sim: &Sim, size: i32) -> Result<(), String> {
    for (name, index) in DATACENTERS {
        let dc = datacenter_in(sim, index, name).await?;
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

/// K8ssandraCluster `name` in the hub, if it exists; an error when not read.
pub async fn find_cluster(sim: &Sim, name: &str) -> Result<Option<K8ssandraCluster>, String> {
    try_get::<K8ssandraCluster>(&client(sim, 0).await, name).await
}

/// Waits until the K8ssandraCluster's `type_` condition has `status` and `reason`; returns its
/// message.
pub async fn wait_condition(
    sim: &Sim,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
    limit: Duration,
) -> String {
    wait_for(
        &format!("{name} {type_}={status} ({reason})"),
        limit,
        || async {
            let k8c = find_cluster(sim, name).await?.ok_or_else(|| format!("{name} absent"))?;
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
/// datacenter, its metrics agent ConfigMap and its two seed EndpointSlices. Extend this when Federator makes more objects per
/// datacenter (superuser Secrets, Stargate, Reaper).
pub fn expected_objects(cluster: &str) -> [BTreeSet<String>; 3] {
    let mut expected: [BTreeSet<String>; 3] = Default::default();
    for (dc, index) in DATACENTERS {
        expected[index].insert(format!("cassandradatacenters {NS}/{dc}"));
        // Its metrics agent's configuration (upstream's default relabelling).
        expected[index].insert(format!(
            "configmaps {NS}/{cluster}-{dc}-metrics-agent-config"
        ));
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
    bounded(
        "delete K8ssandraCluster",
        hub_api::<K8ssandraCluster>(&client(sim, 0).await).delete(name, &DeleteParams::default()),
    )
    .await
    .expect("delete K8ssandraCluster");
}

/// Waits until the K8ssandraCluster is gone (its finalizer released).
pub async fn wait_cluster_gone(sim: &Sim, name: &str, limit: Duration) -> Duration {
    timed(wait_for(&format!("{name} deleted"), limit, || async {
        match find_cluster(sim, name).await? {
            None => Ok(()),
            Some(k8c) => Err(format!(
                "still there: {:?}",
                k8c.status.and_then(|s| s.error)
            )),
        }
    }))
    .await
    .1
}

/// The sim, its kubeconfig on disk, regions 1 and 2 registered, and the operator running as a
/// child process (info logs, 1 s connect timeout to the regions).
pub struct World {
    pub sim: Sim,
    pub hub: Client,
    pub kubeconfig: PathBuf,
    pub federator: Option<OperatorProcess>,
    _dir: tempfile::TempDir,
}

impl World {
    pub async fn start(dc_ready_after: Duration) -> World {
        let sim =
            start_sim(3).cass_operator().dc_ready_after(dc_ready_after).register([1, 2]).await;
        let hub = client(&sim, 0).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = write_kubeconfig(&sim, dir.path());
        let federator = Some(World::start_federator(&kubeconfig));
        World {
            sim,
            hub,
            kubeconfig,
            federator,
            _dir: dir,
        }
    }

    fn start_federator(kubeconfig: &std::path::Path) -> OperatorProcess {
        OperatorProcess::start_with_env(
            kubeconfig,
            &["--log-level", "info"],
            &[("FEDERATOR_REGIONS__CONNECT_TIMEOUT_SECONDS", "1")],
        )
    }

    /// Applies [`cluster_manifest`] (strict field validation, as `kubectl apply --server-side`).
    pub async fn apply_cluster(&self, name: &str, size: i32) {
        try_apply(
            &hub_api::<K8ssandraCluster>(&client(&self.sim, 0).await),
            name,
            cluster_manifest(&self.sim, name, size),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {name}: {e}"));
    }

    /// Waits until every datacenter of [`CLUSTER`] is Ready at `size` (40 s at most), every
    /// cluster holds exactly the expected objects and the K8ssandraCluster is Ready.
    pub async fn wait_converged(&self, size: i32) {
        wait_for("every datacenter Ready", Duration::from_secs(40), || {
            datacenters_ready(&self.sim, size)
        })
        .await;
        wait_owned(
            &self.sim,
            CLUSTER,
            &expected_objects(CLUSTER),
            Duration::from_secs(20),
        )
        .await;
        wait_condition(
            &self.sim,
            CLUSTER,
            "Ready",
            "True",
            "AllDatacentersReady",
            Duration::from_secs(20),
        )
        .await;
    }

    /// SIGKILLs the running operator and starts a new one; returns the old one's logs.
    pub fn restart_federator(&mut self) -> String {
        let logs = self.federator.take().map(OperatorProcess::kill_for_logs).unwrap_or_default();
        self.federator = Some(World::start_federator(&self.kubeconfig));
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
            logs = federator.kill_for_logs();
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
