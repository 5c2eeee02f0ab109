//! Every K8ssandraCluster among k8ssandra-operator's real manifests (../shared/compat/fixtures)
//! applied to the hub with the operator running fans out: each datacenter becomes a
//! CassandraDatacenter in the region its `k8sContext` names and the namespace it asks for,
//! admitted by cass-operator's real CRD (kube-sim serves it), and nowhere else.
//!
//! The fixtures name the regions `kind-k8ssandra-0` and `kind-k8ssandra-1` (none = the hub), as
//! k8ssandra-operator's own e2e setup does, and with its mapping: `kind-k8ssandra-0` is the
//! control plane's own cluster (the hub, kube-sim cluster 0), registered with a ClientConfig like
//! every other, and `kind-k8ssandra-1` is kube-sim cluster 1. Fixtures share cluster names, so
//! they are applied one at a time: apply, check, delete, wait until everything is gone.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use federator::api::cassdc::CassandraDatacenter;
use federator::api::k8ssandra_cluster::K8ssandraCluster;
use federator::federation::plan::plan;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client};
use kube_sim::Sim;
use serde_json::Value;
use support::*;

/// Bound on each fixture's fan-out, and separately on its deletion.
const FIXTURE_WAIT: Duration = Duration::from_secs(30);
/// kube-sim's own names for the clusters, renamed in the kubeconfig to the fixtures' contexts.
const SIM_PREFIX: &str = "fixture-sim-";
/// The fixtures' contexts, by kube-sim cluster index: 0 is the hub, which upstream registers too.
const FIXTURE_CONTEXTS: [(&str, usize); 2] = [("kind-k8ssandra-0", 0), ("kind-k8ssandra-1", 1)];
/// kube-sim clusters: the hub and one region.
const CLUSTERS: usize = 2;

/// One document of a fixture file.
struct Fixture {
    file: String,
    k8ssandra_cluster: Value,
    /// Secrets and ConfigMaps the same file carries (reaper credentials, per-node config).
    companions: Vec<Value>,
}

fn fixtures() -> Option<Vec<Fixture>> {
    let files = fixture_files()?;
    let mut fixtures = Vec::new();
    for path in files {
        let file = file_name(&path);
        let documents = yaml_documents(&path);
        let companions: Vec<Value> = documents
            .iter()
            .filter(|d| d["kind"] == "Secret" || d["kind"] == "ConfigMap")
            .cloned()
            .collect();
        for document in documents {
            if document["kind"] == "K8ssandraCluster" {
                let mut companions: Vec<Value> =
                    companions.iter().cloned().map(in_namespace).collect();
                companions.extend(store_secrets(&document).into_iter().map(in_namespace));
                fixtures.push(Fixture {
                    file: file.clone(),
                    k8ssandra_cluster: in_namespace(document),
                    companions,
                });
            }
        }
    }
    Some(fixtures)
}

/// The encryption store Secrets a K8ssandraCluster names, as its user makes them beside it
/// (upstream's e2e setup does): placeholder stores with their passwords.
fn store_secrets(k8ssandra_cluster: &Value) -> Vec<Value> {
    let cassandra = &k8ssandra_cluster["spec"]["cassandra"];
    let names: BTreeSet<&str> = ["serverEncryptionStores", "clientEncryptionStores"]
        .iter()
        .flat_map(|stores| {
            ["keystoreSecretRef", "truststoreSecretRef"]
                .map(|reference| cassandra[*stores][reference]["name"].as_str())
        })
        .flatten()
        .collect();
    let encoded = |text: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(text)
    };
    names
        .into_iter()
        .map(|name| {
            serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {
                "keystore": encoded("placeholder keystore"),
                "truststore": encoded("placeholder truststore"),
                "keystore-password": encoded("keystore-pw"),
                "truststore-password": encoded("truststore-pw")
            }})
        })
        .collect()
}

/// The document with the namespace the fixtures are applied in, unless it names one.
fn in_namespace(mut document: Value) -> Value {
    if document["metadata"]["namespace"].as_str().is_none() {
        document["metadata"]["namespace"] = NS.into();
    }
    document
}

fn name_of(document: &Value) -> String {
    document["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

/// Applies `document` as the test.
async fn apply_document<K>(api: &Api<K>, document: &Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    apply(api, &name_of(document), document.clone()).await;
}

/// The kubeconfig with kube-sim's clusters renamed to the fixtures' contexts.
fn fixture_kubeconfig(sim: &Sim) -> String {
    let renames: Vec<(String, &str)> = FIXTURE_CONTEXTS
        .iter()
        .map(|(context, index)| (sim.context_name(*index), *context))
        .collect();
    sim.kubeconfig_yaml()
        .lines()
        .map(|line| {
            for (sim_name, context) in &renames {
                if let Some(key) = line.strip_suffix(&format!(": {sim_name}")) {
                    return format!("{key}: {context}");
                }
            }
            line.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A CassandraDatacenter as found in (or expected in) a cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Placed {
    cluster: usize,
    namespace: String,
    name: String,
    size: i32,
    cluster_name: String,
}

/// Every CassandraDatacenter in every cluster of the sim.
async fn placed_everywhere(clients: &[Client]) -> BTreeSet<Placed> {
    let mut placed = BTreeSet::new();
    for (cluster, client) in clients.iter().enumerate() {
        let api = Api::<CassandraDatacenter>::all(client.clone());
        let list = bounded(
            "list CassandraDatacenters",
            api.list(&ListParams::default()),
        )
        .await
        .expect("list CassandraDatacenters");
        for dc in list {
            placed.insert(Placed {
                cluster,
                namespace: dc.metadata.namespace.clone().unwrap_or_default(),
                name: dc.metadata.name.clone().unwrap_or_default(),
                size: dc.spec.size,
                cluster_name: dc.spec.cluster_name.clone(),
            });
        }
    }
    placed
}

fn cluster_of(context: &str) -> Option<usize> {
    if context.is_empty() {
        return Some(0);
    }
    FIXTURE_CONTEXTS.iter().find(|(name, _)| *name == context).map(|(_, index)| *index)
}

// On the operator's own runtime: its workers have the stack the K8ssandraCluster watcher needs.
#[test]
fn every_fixture_fans_out_to_its_regions_with_the_controller_running() {
    run(every_fixture_fans_out());
}

async fn every_fixture_fans_out() {
    let Some(fixtures) = fixtures() else {
        return;
    };
    assert!(
        !fixtures.is_empty(),
        "no K8ssandraCluster among the fixtures"
    );
    let started = Instant::now();

    // What every fixture should produce, planned before anything runs.
    let mut expected = Vec::new();
    for fixture in &fixtures {
        let k8c: K8ssandraCluster = serde_json::from_value(fixture.k8ssandra_cluster.clone())
            .unwrap_or_else(|e| panic!("{}: not a K8ssandraCluster: {e}", fixture.file));
        let planned = plan(&k8c).unwrap_or_else(|e| panic!("{}: not planned: {e}", fixture.file));
        let placed: BTreeSet<Placed> = planned
            .datacenters
            .iter()
            .map(|dc| Placed {
                cluster: cluster_of(&dc.context).unwrap_or_else(|| {
                    panic!("{}: unknown context {:?}", fixture.file, dc.context)
                }),
                namespace: dc.namespace.clone(),
                name: dc.name.clone(),
                size: dc.datacenter.spec.size,
                cluster_name: dc.datacenter.spec.cluster_name.clone(),
            })
            .collect();
        // The planned placement is what the spec asks for, not only what the planner says.
        let templates = k8c.spec.datacenters();
        assert_eq!(placed.len(), templates.len(), "{}", fixture.file);
        for template in templates {
            let namespace = template.metadata.namespace.clone().unwrap_or_else(|| NS.to_string());
            let cluster = cluster_of(template.context()).expect("known context");
            assert!(
                placed.iter().any(|p| p.name == template.name()
                    && p.cluster == cluster
                    && p.namespace == namespace
                    && p.size == template.size),
                "{}: {} planned elsewhere: {placed:?}",
                fixture.file,
                template.name()
            );
        }
        expected.push(placed);
    }

    // Federator does not create namespaces: every namespace a datacenter needs exists everywhere.
    let namespaces: BTreeSet<&str> =
        expected.iter().flatten().map(|p| p.namespace.as_str()).collect();
    let mut sim = start_sim(CLUSTERS)
        .context_prefix(SIM_PREFIX)
        .cass_operator()
        .dc_ready_after(Duration::from_millis(200));
    for namespace in namespaces {
        sim = sim.namespace(namespace);
    }
    let sim = sim.await;
    let mut clients = Vec::new();
    for index in 0..CLUSTERS {
        clients.push(sim.client(index).await.expect("client"));
    }
    let hub = clients[0].clone();

    let kubeconfig = fixture_kubeconfig(&sim);
    for (context, _) in FIXTURE_CONTEXTS {
        let secret = format!("{context}-config");
        put_secret(&hub, &secret, &[("kubeconfig", kubeconfig.as_bytes())]).await;
        put_client_config(&hub, context, context, &secret).await;
    }

    let operator = InProcessOperator::start(&hub, |settings| {
        settings.leader_election.enabled = false;
    });

    // The hub's own ClientConfig is recognised as the hub, the other one is a region.
    for (context, index) in FIXTURE_CONTEXTS {
        let reaches_hub = poll(FIXTURE_WAIT, || async {
            status_of(&hub, context).await?.reaches_hub
        })
        .await
        .ok();
        assert_eq!(
            reaches_hub,
            Some(index == 0),
            "{context}: status.reachesHub"
        );
    }

    let mut problems = Vec::new();
    let mut summary = Vec::new();
    for (fixture, expected) in fixtures.iter().zip(&expected) {
        let fixture_started = Instant::now();
        let outcome = check_fixture(&clients, fixture, expected).await;
        let took = fixture_started.elapsed();
        match outcome {
            Ok(()) => summary.push(format!(
                "{} {}: {} CassandraDatacenter(s) {:?} in {took:.1?}",
                fixture.file,
                name_of(&fixture.k8ssandra_cluster),
                expected.len(),
                expected
                    .iter()
                    .map(|p| format!("{}@{}/{}", p.name, p.cluster, p.namespace))
                    .collect::<Vec<_>>()
            )),
            Err(problem) => problems.push(format!("{}: {problem}", fixture.file)),
        }
    }

    operator.stop().await;
    println!("{}", summary.join("\n"));
    println!(
        "{} K8ssandraClusters applied, {} fanned out, in {:.1?}",
        fixtures.len(),
        summary.len(),
        started.elapsed()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Applies one fixture, checks where its datacenters landed and its status, then deletes it
/// and waits until nothing of it is left (so the next fixture, perhaps of the same name,
/// starts clean). The first problem found, if any.
async fn check_fixture(
    clients: &[Client],
    fixture: &Fixture,
    expected: &BTreeSet<Placed>,
) -> Result<(), String> {
    let hub = &clients[0];
    for companion in &fixture.companions {
        let namespace = companion["metadata"]["namespace"].as_str().unwrap_or(NS);
        if companion["kind"] == "Secret" {
            apply_document(
                &Api::<Secret>::namespaced(hub.clone(), namespace),
                companion,
            )
            .await;
        } else {
            // A per-node ConfigMap is read where its datacenter runs, as upstream: every cluster.
            for client in clients {
                apply_document(
                    &Api::<ConfigMap>::namespaced(client.clone(), namespace),
                    companion,
                )
                .await;
            }
        }
    }
    let name = name_of(&fixture.k8ssandra_cluster);
    let namespace =
        fixture.k8ssandra_cluster["metadata"]["namespace"].as_str().unwrap_or(NS).to_string();
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), &namespace);
    apply_document(&clusters, &fixture.k8ssandra_cluster).await;

    let fanned_out = poll(FIXTURE_WAIT, || async {
        let placed = placed_everywhere(clients).await;
        expected
            .iter()
            .all(|want| {
                placed.iter().any(|p| {
                    (p.cluster, &p.namespace, &p.name)
                        == (want.cluster, &want.namespace, &want.name)
                })
            })
            .then_some(placed)
    })
    .await
    .ok();
    let result = match fanned_out {
        None => Err(format!(
            "not every datacenter appeared within {FIXTURE_WAIT:?}: found {:?}, expected {expected:?}; status: {}",
            placed_everywhere(clients).await,
            status_summary(&clusters, &name).await
        )),
        Some(placed) if &placed != expected => Err(format!(
            "CassandraDatacenters {placed:?}, expected exactly {expected:?}"
        )),
        Some(_) => check_status(hub, &clusters, &namespace, &name).await,
    };

    bounded(
        "delete K8ssandraCluster",
        clusters.delete(&name, &DeleteParams::default()),
    )
    .await
    .map_err(|e| format!("delete {name}: {e}"))?;
    let gone = poll(FIXTURE_WAIT, || async {
        let cluster_gone =
            bounded("get K8ssandraCluster", clusters.get_opt(&name)).await.ok()?.is_none();
        (cluster_gone && placed_everywhere(clients).await.is_empty()).then_some(())
    })
    .await
    .ok();
    result?;
    gone.ok_or_else(|| {
        format!("the K8ssandraCluster or its CassandraDatacenters not gone {FIXTURE_WAIT:?} after deletion")
    })
}

/// The K8ssandraCluster's status shows no failure: Degraded is not True (once the status has
/// caught up with the datacenters just created) and no ApplyFailed event names it.
async fn check_status(
    hub: &Client,
    clusters: &Api<K8ssandraCluster>,
    namespace: &str,
    name: &str,
) -> Result<(), String> {
    let settled = poll(Duration::from_secs(10), || async {
        let k8c = bounded("get K8ssandraCluster", clusters.get_opt(name)).await.ok()??;
        (condition(&k8c, "Degraded")?.0 == "False").then_some(k8c)
    })
    .await
    .ok();
    let Some(k8c) = settled else {
        return Err(format!(
            "Degraded did not settle False: {}",
            status_summary(clusters, name).await
        ));
    };
    let uid = k8c.metadata.uid.unwrap_or_default();
    let events = bounded(
        "list Events",
        Api::<Event>::namespaced(hub.clone(), namespace).list(&ListParams::default()),
    )
    .await
    .map_err(|e| format!("list Events: {e}"))?;
    let failures: Vec<String> = events
        .items
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.uid.as_deref()) == Some(uid.as_str()))
        .filter(|e| matches!(e.reason.as_deref(), Some("ApplyFailed" | "ReconcileError")))
        .map(|e| format!("{:?}: {:?}", e.reason, e.note))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("failure events: {failures:?}"))
    }
}

/// Conditions (type=status reason: message) and `status.error`, for a failure message.
async fn status_summary(clusters: &Api<K8ssandraCluster>, name: &str) -> String {
    let Ok(Some(k8c)) = bounded("get K8ssandraCluster", clusters.get_opt(name)).await else {
        return "K8ssandraCluster not found".to_string();
    };
    let Some(status) = k8c.status else {
        return "no status".to_string();
    };
    let conditions: Vec<String> = status
        .conditions
        .unwrap_or_default()
        .iter()
        .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
        .collect();
    format!("{conditions:?}, error: {:?}", status.error)
}
