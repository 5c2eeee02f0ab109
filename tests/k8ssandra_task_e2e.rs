//! K8ssandraTask end to end, in process, against kube-sim's cass-operator and CassandraTask
//! stand-ins in upstream's layout (contexts `kind-k8ssandra-N`, the hub registered as
//! `kind-k8ssandra-0` like the others), with the real kubectl: a restart reaches the datacenter
//! of every region, one region after the other by default (Forbid) and at once with Allow; the
//! pods are restarted; the status says it completed; a task whose TTL passed is deleted with
//! its CassandraTasks, and so is a task the user deletes.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use federator::api::k8ssandra_cluster::K8ssandraCluster;
use federator::api::k8ssandra_task::K8ssandraTask;
use federator::cassandra::task::task_resource;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DynamicObject, ListParams};
use kube::{Api, Client};
use support::*;

const CLUSTER: &str = "demo";
const WAIT: Duration = Duration::from_secs(60);
const RESTARTED_AT: &str = "control.k8ssandra.io/restartedAt";
/// (datacenter, context, index of the simulated cluster).
const DATACENTERS: [(&str, &str, usize); 3] = [
    ("dc1", "kind-k8ssandra-0", 0),
    ("dc2", "kind-k8ssandra-1", 1),
    ("dc3", "kind-k8ssandra-2", 2),
];

/// Name → uid of the Cassandra pods of `dc`.
async fn pods_of(client: &Client, dc: &str) -> BTreeMap<String, String> {
    let pods = Api::<Pod>::namespaced(client.clone(), NS);
    let selector = format!("cassandra.datastax.com/datacenter={dc}");
    let listed = bounded(
        "list pods",
        pods.list(&ListParams::default().labels(&selector)),
    )
    .await
    .expect("list pods");
    listed
        .items
        .into_iter()
        .map(|p| {
            (
                p.metadata.name.unwrap_or_default(),
                p.metadata.uid.unwrap_or_default(),
            )
        })
        .collect()
}

async fn cassandra_task(client: &Client, name: &str) -> Option<DynamicObject> {
    let tasks: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &task_resource());
    bounded("get CassandraTask", tasks.get_opt(name)).await.expect("get CassandraTask")
}

/// `kubectl apply -f` of one manifest.
async fn kubectl_apply(kubeconfig: &Path, cache: &Path, dir: &Path, manifest: &str) {
    let file = dir.join("manifest.yaml");
    std::fs::write(&file, manifest).expect("write manifest");
    let path = file.to_string_lossy().to_string();
    let (ok, out, err) = kubectl(
        kubeconfig,
        cache,
        &["--context", "kind-k8ssandra-0", "apply", "-f", &path],
    )
    .await;
    assert!(ok, "kubectl apply: {out} {err}");
}

/// `kubectl get k8ssandratask <name> -o jsonpath=<path>`; None when it fails (gone).
async fn kubectl_get(kubeconfig: &Path, cache: &Path, name: &str, path: &str) -> Option<String> {
    let jsonpath = format!("jsonpath={path}");
    let (ok, out, _) = kubectl(
        kubeconfig,
        cache,
        &[
            "--context",
            "kind-k8ssandra-0",
            "-n",
            NS,
            "get",
            "k8ssandratask",
            name,
            "-o",
            &jsonpath,
        ],
    )
    .await;
    ok.then_some(out)
}

fn restart_task(name: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: control.k8ssandra.io/v1alpha1
kind: K8ssandraTask
metadata:
  name: {name}
  namespace: {NS}
spec:
  cluster:
    name: {CLUSTER}
{extra_spec}  template:
    jobs:
      - name: {name}
        command: restart
"#
    )
}

#[test]
fn a_k8ssandra_task_restarts_every_datacenter_across_regions() {
    run(restart_every_datacenter());
}

async fn restart_every_datacenter() {
    let sim = start_sim(3)
        .context_prefix("kind-k8ssandra-")
        .cass_operator()
        .dc_ready_after(Duration::from_millis(200))
        .register([0, 1, 2])
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = write_kubeconfig(&sim, dir.path());
    let cache = dir.path().join("kubectl-cache");
    let hub = sim.client(0).await.expect("hub client");
    let mut regions = Vec::new();
    for (_, _, index) in DATACENTERS {
        regions.push(sim.client(index).await.expect("region client"));
    }
    let operator = InProcessOperator::start(&hub, |settings| {
        settings.leader_election.enabled = false;
    });
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    let tasks = Api::<K8ssandraTask>::namespaced(hub.clone(), NS);
    let datacenters: Vec<(&str, &str, i32)> =
        DATACENTERS.iter().map(|(dc, context, _)| (*dc, *context, 2)).collect();
    apply(&clusters, CLUSTER, k8ssandra_cluster(CLUSTER, &datacenters)).await;
    wait_for_condition(&clusters, CLUSTER, "Ready", WAIT, |state, _, _| {
        state == "True"
    })
    .await;
    let mut before = Vec::new();
    for ((dc, _, _), region) in DATACENTERS.iter().zip(&regions) {
        let pods = pods_of(region, dc).await;
        assert_eq!(pods.len(), 2, "{dc}: {pods:?}");
        before.push(pods);
    }

    // A task naming a datacenter the cluster does not have: refused, with the names it has.
    kubectl_apply(
        &kubeconfig,
        &cache,
        dir.path(),
        &restart_task("typo", "  datacenters: [dc9]\n"),
    )
    .await;
    let invalid = wait_for("the typo refused", WAIT, || async {
        let message = kubectl_get(
            &kubeconfig,
            &cache,
            "typo",
            r#"{.status.conditions[?(@.type=="Invalid")].message}"#,
        )
        .await?;
        (!message.is_empty()).then_some(message)
    })
    .await;
    assert_eq!(
        invalid,
        "unknown datacenters: dc9; spec.datacenters must name datacenters of the K8ssandraCluster (metadata.name): dc1, dc2, dc3"
    );
    for region in &regions {
        assert!(cassandra_task(region, "typo-dc1").await.is_none());
    }

    // A rolling restart of every datacenter, one after the other (Forbid, the default).
    kubectl_apply(
        &kubeconfig,
        &cache,
        dir.path(),
        &restart_task("restart", ""),
    )
    .await;
    wait_for("the restart Complete", Duration::from_secs(120), || async {
        let complete = kubectl_get(
            &kubeconfig,
            &cache,
            "restart",
            r#"{.status.conditions[?(@.type=="Complete")].status}"#,
        )
        .await
        .unwrap_or_default();
        if complete == "True" {
            return Ok(());
        }
        let status = bounded("get", tasks.get("restart")).await.map(|t| t.status);
        Err(format!("{status:?}"))
    })
    .await;
    let done = bounded("get", tasks.get("restart")).await.expect("the task");
    let status = done.status.expect("status");
    assert_eq!(status.task.succeeded, 6, "{status:?}");
    assert_eq!(status.task.failed, 0);
    assert_eq!(status.task.active, 0);
    assert!(status.task.completion_time.is_some());
    let per_dc = status.datacenters.clone().unwrap_or_default();
    assert_eq!(
        per_dc.keys().map(String::as_str).collect::<Vec<_>>(),
        ["dc1", "dc2", "dc3"]
    );
    let owners = done.metadata.owner_references.unwrap_or_default();
    assert_eq!(
        owners.iter().map(|o| (o.kind.as_str(), o.name.as_str())).collect::<Vec<_>>(),
        [("K8ssandraCluster", CLUSTER)],
        "owned by its cluster, as upstream"
    );
    // Each region's task ran after the previous one completed.
    let mut previous_end = None;
    for ((dc, _, _), region) in DATACENTERS.iter().zip(&regions) {
        let task = cassandra_task(region, &format!("restart-{dc}")).await.expect("its task");
        let labels = task.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("k8ssandra.io/task-name").map(String::as_str),
            Some("restart")
        );
        assert_eq!(
            labels.get("k8ssandra.io/task-namespace").map(String::as_str),
            Some(NS)
        );
        assert_eq!(task.data["spec"]["datacenter"]["name"], *dc);
        assert_eq!(task.data["spec"]["ttlSecondsAfterFinished"], 0);
        let created = task.metadata.creation_timestamp.clone().expect("created").0;
        if let Some(end) = previous_end {
            assert!(
                created >= end,
                "{dc}'s task created at {created}, before {end}"
            );
        }
        let end = task.data["status"]["completionTime"].as_str().expect("completed");
        previous_end = Some(end.parse::<k8s_openapi::jiff::Timestamp>().expect("a time"));
    }
    // What a user notices: every pod of every region was restarted.
    for (((dc, _, _), region), before) in DATACENTERS.iter().zip(&regions).zip(&before) {
        let after = pods_of(region, dc).await;
        assert_eq!(
            after.keys().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>()
        );
        for (pod, uid) in &after {
            assert_ne!(Some(uid), before.get(pod), "{dc}: {pod} was not recreated");
            let pods = Api::<Pod>::namespaced(region.clone(), NS);
            let pod = bounded("get pod", pods.get(pod)).await.expect("the pod");
            let annotations = pod.metadata.annotations.unwrap_or_default();
            assert!(
                annotations.contains_key(RESTARTED_AT),
                "{dc}: {annotations:?}"
            );
        }
    }

    // Allow, two datacenters, scheduled a few seconds ahead: both CassandraTasks are there
    // before either ran (under Forbid the second would wait for the first to complete); the
    // task is gone a second after they finished (TTL), with its CassandraTasks.
    let scheduled = k8s_openapi::jiff::Timestamp::now()
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(4))
        .expect("a time")
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    kubectl_apply(
        &kubeconfig,
        &cache,
        dir.path(),
        &restart_task(
            "quick",
            "  datacenters: [dc3, dc2]\n  dcConcurrencyPolicy: Allow\n",
        )
        .replace(
            "  template:\n",
            &format!(
                "  template:\n    ttlSecondsAfterFinished: 1\n    scheduledTime: \"{scheduled}\"\n"
            ),
        ),
    )
    .await;
    wait_for("both CassandraTasks at once", WAIT, || async {
        let dc2 = cassandra_task(&regions[1], "quick-dc2").await?;
        let dc3 = cassandra_task(&regions[2], "quick-dc3").await?;
        let not_started = |t: &DynamicObject| t.data["status"]["completionTime"].is_null();
        assert!(
            not_started(&dc2) && not_started(&dc3),
            "both must exist before either completed: {:?} {:?}",
            dc2.data["status"],
            dc3.data["status"]
        );
        Some(())
    })
    .await;
    assert!(cassandra_task(&regions[0], "quick-dc1").await.is_none());
    wait_for(
        "the expired task gone",
        Duration::from_secs(120),
        || async {
            let gone = bounded("get", tasks.get_opt("quick")).await.ok()?.is_none();
            let dc2 = cassandra_task(&regions[1], "quick-dc2").await;
            let dc3 = cassandra_task(&regions[2], "quick-dc3").await;
            (gone && dc2.is_none() && dc3.is_none()).then_some(())
        },
    )
    .await;

    // Deleting a task deletes its CassandraTasks in every region; a region that is down holds
    // its part, named in the status, until it is back.
    sim.stop(2).expect("stop kind-k8ssandra-2");
    let (ok, _, err) = kubectl(
        &kubeconfig,
        &cache,
        &[
            "--context",
            "kind-k8ssandra-0",
            "-n",
            NS,
            "delete",
            "k8ssandratask",
            "restart",
            "--wait=false",
        ],
    )
    .await;
    assert!(ok, "kubectl delete: {err}");
    let held = wait_for("the deletion held by kind-k8ssandra-2", WAIT, || async {
        let task = bounded("get", tasks.get_opt("restart")).await.ok()??;
        let conditions = task.status?.task.conditions.unwrap_or_default();
        let unreachable = conditions.into_iter().find(|c| c.type_ == "RegionUnreachable")?;
        (unreachable.status == "True").then_some(unreachable.message)
    })
    .await;
    assert!(
        held.starts_with("dc3: deleting the CassandraTasks of K8ssandraTask restart in namespace k8ssandra-operator in region \"kind-k8ssandra-2\""),
        "{held}"
    );
    for ((dc, _, _), region) in DATACENTERS.iter().zip(&regions).take(2) {
        wait_for(&format!("restart-{dc} deleted"), WAIT, || async {
            cassandra_task(region, &format!("restart-{dc}")).await.is_none().then_some(())
        })
        .await;
    }
    sim.start(2).await.expect("start kind-k8ssandra-2");
    wait_for("the CassandraTasks deleted", WAIT, || async {
        for ((dc, _, _), region) in DATACENTERS.iter().zip(&regions) {
            if cassandra_task(region, &format!("restart-{dc}")).await.is_some() {
                return None;
            }
        }
        bounded("get", tasks.get_opt("restart")).await.ok()?.is_none().then_some(())
    })
    .await;
    operator.stop().await;
}
