//! Progressive rollout, end to end in process, in upstream's layout (contexts `kind-k8ssandra-N`,
//! the hub registered as `kind-k8ssandra-0` like the others): a configuration change restarts
//! one region's Cassandra after the other, each once the one before is Ready with it; a region
//! whose Cassandra does not come back halts the rollout, named in the status, until the user
//! resumes it with `kubectl annotate`.

mod support;

use std::path::Path;
use std::time::Duration;

use federator::api::cassdc::CassandraDatacenter;
use federator::api::k8ssandra_cluster::K8ssandraCluster;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use kube_sim::cassandra::ManagementFault;
use serde_json::{Value, json};
use support::*;

const CLUSTER: &str = "demo";
const WAIT: Duration = Duration::from_secs(60);
const DATACENTERS: [(&str, &str); 3] = [
    ("dc1", "kind-k8ssandra-0"),
    ("dc2", "kind-k8ssandra-1"),
    ("dc3", "kind-k8ssandra-2"),
];

fn manifest(concurrent_reads: u32) -> Value {
    let mut k8c = k8ssandra_cluster(CLUSTER, &DATACENTERS.map(|(dc, context)| (dc, context, 1)));
    k8c["metadata"]["annotations"] = json!({"federator.k8ssandra.io/rollout-deadline": "10s"});
    k8c["spec"]["cassandra"]["config"] =
        json!({"cassandraYaml": {"concurrent_reads": concurrent_reads}});
    k8c
}

/// Where one datacenter is in a change: not yet given it, restarting with it, or Ready with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Before,
    Restarting,
    Done,
}

async fn step(region: &Client, dc: &str, concurrent_reads: u32) -> Result<Step, String> {
    let api = Api::<CassandraDatacenter>::namespaced(region.clone(), NS);
    let live = bounded("get", api.get(dc)).await.map_err(|e| format!("{dc}: {e}"))?;
    let config = serde_json::to_value(&live.spec.config).map_err(|e| e.to_string())?;
    if config.pointer("/cassandra-yaml/concurrent_reads") != Some(&json!(concurrent_reads)) {
        return Ok(Step::Before);
    }
    let ready =
        live.status.as_ref().is_some_and(|status| status.is_ready_at(live.metadata.generation));
    Ok(if ready { Step::Done } else { Step::Restarting })
}

/// The uids of a datacenter's pods.
async fn pod_uids(region: &Client, dc: &str) -> Vec<String> {
    let pods = Api::<Pod>::namespaced(region.clone(), NS);
    let listed = bounded(
        "list pods",
        pods.list(
            &ListParams::default().labels(&format!("cassandra.datastax.com/datacenter={dc}")),
        ),
    )
    .await
    .expect("pods");
    listed.items.into_iter().filter_map(|p| p.metadata.uid).collect()
}

/// Follows a change until every datacenter in `expected` is Done; fails if a datacenter got the
/// change while the one before it (in spec order) was not Done. The regions are looked at from
/// the last datacenter to the first, so a later one seen changed before an earlier one seen not
/// Done proves the order broken.
async fn follow_one_at_a_time(regions: &[Client], concurrent_reads: u32) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut steps = Vec::new();
        for (index, (dc, _)) in DATACENTERS.iter().enumerate().rev() {
            let seen = step(&regions[index], dc, concurrent_reads).await;
            steps.push((*dc, seen.unwrap_or(Step::Before)));
        }
        steps.reverse();
        for pair in steps.windows(2) {
            let ((earlier, earlier_step), (later, later_step)) = (pair[0], pair[1]);
            assert!(
                later_step == Step::Before || earlier_step == Step::Done,
                "{later} got the change while {earlier} was {earlier_step:?}: {steps:?}"
            );
        }
        if steps.iter().all(|(_, s)| *s == Step::Done) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the change did not reach every region: {steps:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn kubectl_jsonpath(kubeconfig: &Path, cache: &Path, args: &[&str], path: &str) -> String {
    let jsonpath = format!("jsonpath={path}");
    let mut all = args.to_vec();
    all.extend(["-n", NS, "-o", jsonpath.as_str()]);
    let (ok, out, err) = kubectl(kubeconfig, cache, &all).await;
    assert!(ok, "kubectl {all:?}: {err}");
    out
}

#[test]
fn a_restarting_change_rolls_region_by_region_and_halts_at_a_failing_one() {
    run(rolls_region_by_region());
}

async fn rolls_region_by_region() {
    let layout = upstream_layout(3, |setup| setup).await;
    let (sim, kubeconfig, cache) = (&layout.sim, &layout.kubeconfig, &layout.cache);
    let mut regions = Vec::new();
    for index in 0..3 {
        regions.push(sim.client(index).await.expect("region client"));
    }
    let hub = regions[0].clone();
    let operator = InProcessOperator::start(&hub, |settings| {
        settings.leader_election.enabled = false;
    });
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);

    apply(&clusters, CLUSTER, manifest(32)).await;
    follow_one_at_a_time(&regions, 32).await;
    wait_for_condition(&clusters, CLUSTER, "Ready", WAIT, |state, _, _| {
        state == "True"
    })
    .await;

    // A configuration change: every region restarts, one after the other.
    let mut before = Vec::new();
    for (index, (dc, _)) in DATACENTERS.iter().enumerate() {
        before.push(pod_uids(&regions[index], dc).await);
    }
    apply(&clusters, CLUSTER, manifest(64)).await;
    follow_one_at_a_time(&regions, 64).await;
    for (index, (dc, _)) in DATACENTERS.iter().enumerate() {
        let after = pod_uids(&regions[index], dc).await;
        assert!(
            after.iter().all(|uid| !before[index].contains(uid)),
            "{dc}'s pods were restarted"
        );
    }

    // dc2's Cassandra will not start again (its Management API fails): the next change
    // restarts dc1, then dc2, which stays down; past the 10 s deadline the rollout halts there
    // and dc3 keeps its running configuration.
    let dc2_pod = "demo-dc2-default-sts-0";
    let failing = ManagementFault {
        fail_status: Some(500),
        delay_millis: 0,
    };
    sim.set_cassandra_management_fault("kind-k8ssandra-1", NS, dc2_pod, failing)
        .expect("dc2's Management API fails");
    apply(&clusters, CLUSTER, manifest(96)).await;
    let halted = wait_for_condition(&clusters, CLUSTER, "Degraded", WAIT, |state, reason, _| {
        state == "True" && reason == "RolloutHalted"
    })
    .await;
    assert!(halted.contains("datacenter dc2 is not Ready"), "{halted}");
    assert!(halted.contains("dc3 waits for it"), "{halted}");
    assert_eq!(step(&regions[0], "dc1", 96).await, Ok(Step::Done));
    assert_eq!(step(&regions[1], "dc2", 96).await, Ok(Step::Restarting));
    assert_eq!(step(&regions[2], "dc3", 96).await, Ok(Step::Before));
    let progressing = kubectl_jsonpath(
        kubeconfig,
        cache,
        &[
            "--context",
            "kind-k8ssandra-0",
            "get",
            "k8ssandracluster",
            CLUSTER,
        ],
        "{.status.conditions[?(@.type==\"Degraded\")].reason}",
    )
    .await;
    assert_eq!(progressing, "RolloutHalted");
    // It stays halted: dc3 still runs the old configuration a while later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(step(&regions[2], "dc3", 96).await, Ok(Step::Before));

    // The user resumes for this generation, as the condition says: dc3 gets the change.
    let generation = kubectl_jsonpath(
        kubeconfig,
        cache,
        &[
            "--context",
            "kind-k8ssandra-0",
            "get",
            "k8ssandracluster",
            CLUSTER,
        ],
        "{.metadata.generation}",
    )
    .await;
    let resume = format!("federator.k8ssandra.io/rollout-resume={generation}");
    assert!(halted.contains(&resume), "{halted}");
    let (ok, _, err) = kubectl(
        kubeconfig,
        cache,
        &[
            "--context",
            "kind-k8ssandra-0",
            "-n",
            NS,
            "annotate",
            "k8ssandracluster",
            CLUSTER,
            &resume,
            "--overwrite",
        ],
    )
    .await;
    assert!(ok, "kubectl annotate: {err}");
    wait_for("dc3 restarted with the change", WAIT, || async {
        match step(&regions[2], "dc3", 96).await {
            Ok(Step::Done) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // dc2's Cassandra answers again: it starts, and the cluster is Ready.
    sim.set_cassandra_management_fault("kind-k8ssandra-1", NS, dc2_pod, Default::default())
        .expect("dc2's Management API answers");
    wait_for("the cluster Ready again", WAIT, || async {
        let k8c = bounded("get", clusters.get(CLUSTER)).await.map_err(|e| e.to_string())?;
        match (condition(&k8c, "Ready"), condition(&k8c, "Degraded")) {
            (Some((ready, _, _)), Some((degraded, _, _)))
                if ready == "True" && degraded == "False" =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    operator.stop().await;
}
