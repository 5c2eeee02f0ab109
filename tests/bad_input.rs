//! The bad-input matrix: one table of wrong K8ssandraClusters, ClientConfigs and kubeconfig
//! Secrets, written to a hub served by kube-sim while the real `federator` binary runs with its
//! logs captured. Each case ends either in the API server refusing the write with a message that
//! names the field, or in a status condition with a reason. Throughout, a healthy 3-region
//! K8ssandraCluster keeps converging, and the operator never panics.

mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use federator::api::client_config::ClientConfig;
use federator::api::k8ssandra_cluster::K8ssandraCluster;
use federator::api::replicated_secret::ReplicatedSecret;
use kube::Api;
use kube_sim::Sim;
use serde_json::{Value, json};
use support::*;

/// A write a case makes.
enum Write {
    Cluster(Value),
    ClientConfig(Value),
    ReplicatedSecret(Value),
    /// A Secret in the operator namespace with these keys.
    Secret(&'static str, Vec<(&'static str, Vec<u8>)>),
    /// Waits until a datacenter exists in the hub (so the next write is an update of a cluster
    /// that has run).
    HubDatacenter(&'static str),
    /// Waits until the K8ssandraCluster's status lists the datacenter (a rename is recognised
    /// against the status).
    InStatus(&'static str, &'static str),
}

/// How a case must end.
enum Expect {
    /// The API server refuses the last write; its message names this field.
    Rejected(&'static str),
    /// The K8ssandraCluster's condition `type` is `status` with this reason.
    Cluster(&'static str, &'static str, &'static str),
    /// The K8ssandraCluster is Degraded with reason InvalidSpec, its message naming this field.
    InvalidSpec(&'static str),
    /// The ClientConfig's Ready condition is False with this reason.
    ClientConfig(&'static str),
    /// A target condition of the ReplicatedSecret is False with this reason.
    ReplicatedSecret(&'static str),
}

struct Case {
    name: &'static str,
    writes: Vec<Write>,
    expect: Expect,
}

/// A ReplicatedSecret `name` with this selector and these targets.
fn replicated_secret(name: &str, selector: Value, targets: Value) -> Write {
    Write::ReplicatedSecret(json!({
        "apiVersion": "replication.k8ssandra.io/v1alpha1", "kind": "ReplicatedSecret",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"selector": selector, "replicationTargets": targets}
    }))
}

fn case(name: &'static str, writes: Vec<Write>, expect: Expect) -> Case {
    Case {
        name,
        writes,
        expect,
    }
}

/// A valid one-datacenter K8ssandraCluster `name` (dc `dc` in the hub), changed by `edit`.
fn k8c(name: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut cluster = k8ssandra_cluster(name, &[(&format!("{name}-dc"), "", 1)]);
    edit(&mut cluster);
    cluster
}

fn dc0(cluster: &mut Value) -> &mut Value {
    &mut cluster["spec"]["cassandra"]["datacenters"][0]
}

/// A one-context kubeconfig: `cluster` and `user` are the YAML bodies of its entries.
fn kubeconfig(context: &str, cluster: &str, user: &str) -> Vec<u8> {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: {context}\nclusters:\n- name: c\n  cluster:\n{cluster}\ncontexts:\n- name: {context}\n  context: {{cluster: c, user: u}}\nusers:\n- name: u\n  user:\n{user}\n"
    )
    .into_bytes()
}

/// A ClientConfig `name` (context `name`) whose Secret holds `kubeconfig`.
fn registered(name: &'static str, secret: &'static str, kubeconfig: Vec<u8>) -> Vec<Write> {
    vec![
        Write::Secret(secret, vec![("kubeconfig", kubeconfig)]),
        Write::ClientConfig(client_config(name, name, secret)),
    ]
}

fn cases(sim: &Sim) -> Vec<Case> {
    use Expect::*;
    let ca = base64::engine::general_purpose::STANDARD.encode(sim.ca_pem());
    let region1 = format!(
        "    server: {}\n    certificate-authority-data: {ca}",
        sim.url(1)
    );
    let token = format!("    token: {}", sim.token(1));
    let bad = |name: &'static str, edit: fn(&mut Value)| Write::Cluster(k8c(name, edit));
    vec![
        // ---- refused by the API server (OpenAPI and CEL rules of the CRDs, ObjectMeta)
        case(
            "object name not a DNS subdomain",
            vec![bad("Bad_Name", |_| {})],
            Rejected("metadata.name"),
        ),
        case(
            "datacenter name with upper case",
            vec![bad("bad-dc-upper", |c| {
                dc0(c)["metadata"]["name"] = json!("DC1")
            })],
            Rejected("spec.cassandra.datacenters[0].metadata.name"),
        ),
        case(
            "datacenter name starting with a digit",
            vec![bad("bad-dc-digit", |c| {
                dc0(c)["metadata"]["name"] = json!("1dc")
            })],
            Rejected("spec.cassandra.datacenters[0].metadata.name"),
        ),
        case(
            "datacenter name of 64 characters",
            vec![bad("bad-dc-long", |c| {
                dc0(c)["metadata"]["name"] = json!("d".repeat(64))
            })],
            Rejected("spec.cassandra.datacenters[0].metadata.name"),
        ),
        case(
            "empty datacenter name",
            vec![bad("bad-dc-empty", |c| {
                dc0(c)["metadata"]["name"] = json!("")
            })],
            Rejected("spec.cassandra.datacenters[0].metadata.name"),
        ),
        case(
            "duplicate datacenter names",
            vec![bad("bad-dup", |c| {
                let dc = dc0(c).clone();
                c["spec"]["cassandra"]["datacenters"] = json!([dc.clone(), dc]);
            })],
            Rejected("spec.cassandra.datacenters"),
        ),
        case(
            "size 0",
            vec![bad("bad-size-0", |c| dc0(c)["size"] = json!(0))],
            Rejected("spec.cassandra.datacenters[0].size"),
        ),
        case(
            "negative size",
            vec![bad("bad-size-neg", |c| dc0(c)["size"] = json!(-3))],
            Rejected("spec.cassandra.datacenters[0].size"),
        ),
        case(
            "size not a number",
            vec![bad("bad-size-str", |c| dc0(c)["size"] = json!("three"))],
            Rejected("spec.cassandra.datacenters[0].size"),
        ),
        case(
            "unknown field in spec",
            vec![bad("bad-unknown-spec", |c| {
                c["spec"]["cassandraa"] = json!({})
            })],
            Rejected("spec.cassandraa"),
        ),
        case(
            "unknown field in spec.cassandra",
            vec![bad("bad-unknown-cassandra", |c| {
                c["spec"]["cassandra"]["datacentres"] = json!([])
            })],
            Rejected("spec.cassandra.datacentres"),
        ),
        case(
            "unknown field in a datacenter",
            vec![bad("bad-unknown-dc", |c| dc0(c)["sise"] = json!(3))],
            Rejected("spec.cassandra.datacenters[0].sise"),
        ),
        case(
            "unknown field in storageConfig",
            vec![bad("bad-unknown-storage", |c| {
                c["spec"]["cassandra"]["storageConfig"]["cassandraDataVolumeClaimSpc"] = json!({})
            })],
            Rejected("spec.cassandra.storageConfig.cassandraDataVolumeClaimSpc"),
        ),
        case(
            "serverVersion without a patch number",
            vec![bad("bad-version", |c| {
                c["spec"]["cassandra"]["serverVersion"] = json!("4.1")
            })],
            Rejected("spec.cassandra.serverVersion"),
        ),
        case(
            "datacenter serverVersion not a version",
            vec![bad("bad-dc-version", |c| {
                dc0(c)["serverVersion"] = json!("latest")
            })],
            Rejected("spec.cassandra.datacenters[0].serverVersion"),
        ),
        case(
            "unknown serverType",
            vec![bad("bad-server-type", |c| {
                c["spec"]["cassandra"]["serverType"] = json!("mongodb")
            })],
            Rejected("spec.cassandra.serverType"),
        ),
        case(
            "one datacenter more than the limit",
            vec![bad("bad-too-many", |c| {
                let limit = federator::api::k8ssandra_cluster::MAX_DATACENTERS;
                let dcs: Vec<Value> = (0..=limit)
                    .map(|i| json!({"metadata": {"name": format!("dc{i}")}, "size": 1}))
                    .collect();
                c["spec"]["cassandra"]["datacenters"] = json!(dcs);
            })],
            Rejected("spec.cassandra.datacenters"),
        ),
        case(
            "datacenter size of a million",
            vec![bad("bad-size-huge", |c| dc0(c)["size"] = json!(1_000_000))],
            Rejected("spec.cassandra.datacenters[0].size"),
        ),
        case(
            "65 racks",
            vec![bad("bad-racks", |c| {
                let racks: Vec<Value> = (0..65).map(|i| json!({"name": format!("r{i}")})).collect();
                dc0(c)["racks"] = json!(racks);
            })],
            Rejected("spec.cassandra.datacenters[0].racks"),
        ),
        case(
            "101 additionalSeeds",
            vec![bad("bad-seeds", |c| {
                let seeds: Vec<String> = (0..101).map(|i| format!("10.0.1.{i}")).collect();
                c["spec"]["cassandra"]["additionalSeeds"] = json!(seeds);
            })],
            Rejected("spec.cassandra.additionalSeeds"),
        ),
        case(
            "Stargate size of a million",
            vec![bad("bad-stargate-size", |c| {
                c["spec"]["stargate"] = json!({"size": 1_000_000})
            })],
            Rejected("spec.stargate.size"),
        ),
        case(
            "cassandraYaml nested 3,000 levels deep",
            vec![bad("bad-deep-yaml", |c| {
                let mut nested = json!(1);
                for _ in 0..3000 {
                    nested = json!({"a": nested});
                }
                c["spec"]["cassandra"]["config"] = json!({"cassandraYaml": nested});
            })],
            Rejected("error decoding"),
        ),
        case(
            "k8sContext of 254 characters",
            vec![bad("bad-context-long", |c| {
                dc0(c)["k8sContext"] = json!("c".repeat(254))
            })],
            Rejected("spec.cassandra.datacenters[0].k8sContext"),
        ),
        case(
            "clusterName of 254 characters",
            vec![bad("bad-cluster-name-long", |c| {
                c["spec"]["cassandra"]["clusterName"] = json!("n".repeat(254))
            })],
            Rejected("spec.cassandra.clusterName"),
        ),
        case(
            "datacenter namespace of 64 characters",
            vec![bad("bad-ns-long", |c| {
                dc0(c)["metadata"]["namespace"] = json!("n".repeat(64))
            })],
            Rejected("spec.cassandra.datacenters[0].metadata.namespace"),
        ),
        case(
            "annotations over 256 KiB",
            vec![bad("bad-annotation", |c| {
                c["metadata"]["annotations"] = json!({"example.com/blob": "x".repeat(300 * 1024)})
            })],
            Rejected("metadata.annotations"),
        ),
        case(
            "clusterName changed",
            vec![
                bad("bad-rename-cluster", |c| {
                    c["spec"]["cassandra"]["clusterName"] = json!("one")
                }),
                bad("bad-rename-cluster", |c| {
                    c["spec"]["cassandra"]["clusterName"] = json!("two")
                }),
            ],
            Rejected("spec.cassandra.clusterName"),
        ),
        case(
            "clusterName removed",
            vec![
                bad("bad-drop-cluster-name", |c| {
                    c["spec"]["cassandra"]["clusterName"] = json!("one")
                }),
                bad("bad-drop-cluster-name", |_| {}),
            ],
            Rejected("spec.cassandra.clusterName"),
        ),
        case(
            "k8sContext changed",
            vec![
                bad("bad-move", |_| {}),
                Write::HubDatacenter("bad-move-dc"),
                bad("bad-move", |c| dc0(c)["k8sContext"] = json!("sim-1")),
            ],
            Rejected("spec.cassandra.datacenters"),
        ),
        case(
            "ClientConfig without kubeConfigSecret",
            vec![Write::ClientConfig(json!({
                "apiVersion": "config.k8ssandra.io/v1beta1", "kind": "ClientConfig",
                "metadata": {"name": "no-secret-ref", "namespace": NS}, "spec": {"contextName": "x"}
            }))],
            Rejected("spec.kubeConfigSecret"),
        ),
        case(
            "ClientConfig name not a DNS subdomain",
            vec![Write::ClientConfig(client_config("Bad_Region", "x", "x"))],
            Rejected("metadata.name"),
        ),
        case(
            "unknown field in a ClientConfig",
            vec![Write::ClientConfig({
                let mut cc = client_config("typo-region", "x", "x");
                cc["spec"]["contextname"] = json!("x");
                cc
            })],
            Rejected("spec.contextname"),
        ),
        case(
            "unknown field in a ReplicatedSecret target",
            vec![Write::ReplicatedSecret(json!({
                "apiVersion": "replication.k8ssandra.io/v1alpha1", "kind": "ReplicatedSecret",
                "metadata": {"name": "typo-targets", "namespace": NS},
                "spec": {"selector": {"matchLabels": {"app": "x"}},
                         "replicationTargets": [{"namespce": "elsewhere"}]}
            }))],
            Rejected("spec.replicationTargets[0].namespce"),
        ),
        case(
            "ReplicatedSecret selector not a label selector",
            vec![Write::ReplicatedSecret(json!({
                "apiVersion": "replication.k8ssandra.io/v1alpha1", "kind": "ReplicatedSecret",
                "metadata": {"name": "string-selector", "namespace": NS},
                "spec": {"selector": "all"}
            }))],
            Rejected("spec.selector"),
        ),
        // ---- accepted, then refused by the operator with a condition
        case(
            "ReplicatedSecret selecting every Secret into its own namespace",
            vec![replicated_secret("everything", json!({}), json!([{}]))],
            ReplicatedSecret("ReplicationLoop"),
        ),
        case(
            "ReplicatedSecret target namespace that does not exist",
            vec![replicated_secret(
                "no-namespace",
                json!({}),
                json!([{"k8sContextName": sim.context_name(1), "namespace": "no-such-namespace"}]),
            )],
            ReplicatedSecret("NamespaceMissing"),
        ),
        case(
            "ReplicatedSecret target context that names no ClientConfig",
            vec![replicated_secret(
                "no-context",
                json!({}),
                json!([{"k8sContextName": "no-such-region", "namespace": NS}]),
            )],
            ReplicatedSecret("UnknownContext"),
        ),
        case(
            "datacenter renamed",
            vec![
                bad("bad-dc-rename", |_| {}),
                Write::InStatus("bad-dc-rename", "bad-dc-rename-dc"),
                bad("bad-dc-rename", |c| {
                    dc0(c)["metadata"]["name"] = json!("renamed")
                }),
            ],
            Cluster("Degraded", "True", "DatacentersAddedAndRemoved"),
        ),
        case(
            "k8sContext naming no ClientConfig",
            vec![bad("bad-unknown-context", |c| {
                dc0(c)["k8sContext"] = json!("nowhere")
            })],
            Cluster("Degraded", "True", "UnknownContext"),
        ),
        case(
            "target namespace missing in the region",
            vec![bad("bad-missing-ns", |c| {
                dc0(c)["k8sContext"] = json!("sim-1");
                dc0(c)["metadata"]["namespace"] = json!("no-such-namespace");
            })],
            Cluster("Degraded", "True", "NamespaceMissing"),
        ),
        case(
            "datacenter namespace not an RFC 1123 label",
            vec![bad("bad-ns-invalid", |c| {
                dc0(c)["metadata"]["namespace"] = json!("Bad_NS")
            })],
            Cluster("Degraded", "True", "InvalidSpec"),
        ),
        case(
            "no serverVersion anywhere",
            vec![bad("bad-no-version", |c| {
                if let Some(cassandra) = c["spec"]["cassandra"].as_object_mut() {
                    cassandra.remove("serverVersion");
                }
            })],
            Cluster("Degraded", "True", "InvalidSpec"),
        ),
        case(
            "no storageConfig anywhere",
            vec![bad("bad-no-storage", |c| {
                if let Some(cassandra) = c["spec"]["cassandra"].as_object_mut() {
                    cassandra.remove("storageConfig");
                }
            })],
            Cluster("Degraded", "True", "InvalidSpec"),
        ),
        case(
            "two datacenters with one Cassandra datacenterName",
            vec![bad("bad-dc-alias", |c| {
                c["spec"]["cassandra"]["datacenters"] = json!([
                    {"metadata": {"name": "alias-a"}, "datacenterName": "same", "size": 1},
                    {"metadata": {"name": "alias-b"}, "datacenterName": "same", "size": 1}
                ]);
            })],
            Cluster("Degraded", "True", "InvalidSpec"),
        ),
        case(
            "initial-system-replication annotation not JSON",
            vec![bad(
                "bad-replication",
                |c| {
                    c["metadata"]["annotations"] =
                        json!({"k8ssandra.io/initial-system-replication": "{not json"})
                },
            )],
            Cluster("Degraded", "True", "InvalidSpec"),
        ),
        case(
            "num_tokens -1 with a token allocation replication factor of -2^62",
            vec![bad("bad-num-tokens", |c| {
                c["spec"]["cassandra"]["config"] = json!({"cassandraYaml": {
                    "num_tokens": -1,
                    "allocate_tokens_for_local_replication_factor": -4611686018427387904_i64
                }})
            })],
            InvalidSpec("config.cassandraYaml.num_tokens"),
        ),
        case(
            "token allocation replication factor of a million",
            vec![bad("bad-token-rf", |c| {
                c["spec"]["cassandra"]["config"] = json!({"cassandraYaml": {
                    "num_tokens": 4, "allocate_tokens_for_local_replication_factor": 1_000_000
                }})
            })],
            InvalidSpec("config.cassandraYaml.allocate_tokens_for_local_replication_factor"),
        ),
        case(
            "datacenter of another K8ssandraCluster",
            vec![
                bad("bad-owner", |c| dc0(c)["metadata"]["name"] = json!("taken")),
                Write::HubDatacenter("taken"),
                bad("bad-thief", |c| dc0(c)["metadata"]["name"] = json!("taken")),
            ],
            Cluster("Degraded", "True", "Conflict"),
        ),
        case(
            "no datacenters",
            vec![bad("bad-empty", |c| {
                c["spec"]["cassandra"]["datacenters"] = json!([])
            })],
            Cluster("Ready", "False", "NoDatacenters"),
        ),
        case(
            "ClientConfig naming a missing Secret",
            vec![Write::ClientConfig(client_config(
                "no-secret",
                "no-secret",
                "absent-config",
            ))],
            ClientConfig("SecretNotFound"),
        ),
        case(
            "Secret without the kubeconfig key",
            vec![
                Write::Secret(
                    "wrong-key-config",
                    vec![("config", kubeconfig("wrong-key", &region1, &token))],
                ),
                Write::ClientConfig(client_config("wrong-key", "wrong-key", "wrong-key-config")),
            ],
            ClientConfig("KubeconfigKeyMissing"),
        ),
        case(
            "malformed kubeconfig",
            registered("malformed", "malformed-config", b"clusters: [ {".to_vec()),
            ClientConfig("KubeconfigInvalid"),
        ),
        case(
            "kubeconfig with an exec plugin",
            registered(
                "exec-plugin",
                "exec-plugin-config",
                kubeconfig(
                    "exec-plugin",
                    &region1,
                    "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/true",
                ),
            ),
            ClientConfig("ExecCredentialsRefused"),
        ),
        case(
            "context missing from the kubeconfig",
            vec![
                Write::Secret(
                    "other-context-config",
                    vec![("kubeconfig", kubeconfig("elsewhere", &region1, &token))],
                ),
                Write::ClientConfig(client_config(
                    "other-context",
                    "other-context",
                    "other-context-config",
                )),
            ],
            ClientConfig("ContextNotFound"),
        ),
        case(
            "insecure-skip-tls-verify",
            registered(
                "insecure",
                "insecure-config",
                kubeconfig(
                    "insecure",
                    &format!(
                        "    server: {}\n    insecure-skip-tls-verify: true",
                        sim.url(1)
                    ),
                    &token,
                ),
            ),
            ClientConfig("InsecureTLSRefused"),
        ),
        case(
            "kubeconfig pointing at files",
            registered(
                "file-ref",
                "file-ref-config",
                kubeconfig(
                    "file-ref",
                    &format!(
                        "    server: {}\n    certificate-authority: /etc/ssl/certs/ca.pem",
                        sim.url(1)
                    ),
                    &token,
                ),
            ),
            ClientConfig("FileReferenceRefused"),
        ),
        case(
            "second ClientConfig for a context already provided",
            vec![Write::ClientConfig(client_config(
                "sim-1-again",
                "sim-1",
                "sim-1-config",
            ))],
            ClientConfig("Conflict"),
        ),
        case(
            "server that does not answer",
            registered(
                "closed-port",
                "closed-port-config",
                kubeconfig(
                    "closed-port",
                    &format!(
                        "    server: https://127.0.0.1:1\n    certificate-authority-data: {ca}"
                    ),
                    &token,
                ),
            ),
            ClientConfig("Unreachable"),
        ),
        case(
            "token the region does not accept",
            registered(
                "wrong-token",
                "wrong-token-config",
                kubeconfig("wrong-token", &region1, "    token: not-a-valid-token"),
            ),
            ClientConfig("CredentialsRejected"),
        ),
    ]
}

/// Makes a case's writes; returns the error of the last one, if it failed.
async fn write_all(sim: &Sim, case: &Case) -> Option<kube::Error> {
    let hub = client(sim, 0).await;
    let last = case.writes.len().saturating_sub(1);
    for (position, write) in case.writes.iter().enumerate() {
        let result = match write {
            Write::Cluster(body) => {
                let name = body["metadata"]["name"].as_str().unwrap_or_default();
                try_apply(
                    &Api::<K8ssandraCluster>::namespaced(hub.clone(), NS),
                    name,
                    body.clone(),
                )
                .await
                .map(|_| ())
            }
            Write::ClientConfig(body) => {
                let name = body["metadata"]["name"].as_str().unwrap_or_default();
                try_apply(
                    &Api::<ClientConfig>::namespaced(hub.clone(), NS),
                    name,
                    body.clone(),
                )
                .await
                .map(|_| ())
            }
            Write::ReplicatedSecret(body) => {
                let name = body["metadata"]["name"].as_str().unwrap_or_default();
                try_apply(
                    &Api::<ReplicatedSecret>::namespaced(hub.clone(), NS),
                    name,
                    body.clone(),
                )
                .await
                .map(|_| ())
            }
            Write::Secret(name, data) => {
                let data: Vec<(&str, &[u8])> =
                    data.iter().map(|(k, v)| (*k, v.as_slice())).collect();
                put_secret(&hub, name, &data).await;
                Ok(())
            }
            Write::InStatus(cluster, dc) => {
                wait_for(
                    &format!("{dc} in the status of {cluster}"),
                    Duration::from_secs(20),
                    || async {
                        let k8c =
                            find_cluster(sim, cluster).await?.ok_or(format!("{cluster} absent"))?;
                        let listed = k8c
                            .status
                            .and_then(|s| s.datacenters)
                            .is_some_and(|d| d.contains_key(*dc));
                        listed.then_some(()).ok_or("not listed yet".to_string())
                    },
                )
                .await;
                Ok(())
            }
            Write::HubDatacenter(name) => {
                wait_for(
                    &format!("{name} in the hub"),
                    Duration::from_secs(20),
                    || async { datacenter_in(sim, 0, name).await.map(|_| ()) },
                )
                .await;
                Ok(())
            }
        };
        match result {
            Ok(()) => {}
            Err(error) if position == last => return Some(error),
            Err(error) => panic!("{}: setup write {position} failed: {error}", case.name),
        }
    }
    None
}

async fn client_config_ready(sim: &Sim, name: &str) -> Result<(String, String), String> {
    let cc = try_get::<ClientConfig>(&client(sim, 0).await, name)
        .await?
        .ok_or(format!("ClientConfig {name} absent"))?;
    condition(&cc, "Ready")
        .map(|(status, reason, _)| (status, reason))
        .ok_or("no Ready condition".to_string())
}

/// The name of the last K8ssandraCluster a case writes.
fn last_cluster_name(case: &Case) -> &str {
    case.writes
        .iter()
        .rev()
        .find_map(|w| match w {
            Write::Cluster(body) => body["metadata"]["name"].as_str(),
            _ => None,
        })
        .unwrap_or_default()
}

/// Runs one case to its end; returns what it ended in, for the printed table.
async fn run_case(sim: &Sim, case: &Case) -> String {
    let failed = write_all(sim, case).await;
    match &case.expect {
        Expect::Rejected(field) => {
            let message = match failed {
                Some(kube::Error::Api(response)) => response.message,
                Some(other) => panic!("{}: not an API rejection: {other}", case.name),
                None => panic!("{}: the API server accepted it", case.name),
            };
            assert!(
                message.contains(field),
                "{}: the rejection does not name {field}: {message}",
                case.name
            );
            message
        }
        Expect::Cluster(type_, status, reason) => {
            if let Some(error) = failed {
                panic!("{}: refused by the API server: {error}", case.name);
            }
            let name = last_cluster_name(case);
            let message =
                wait_condition(sim, name, type_, status, reason, Duration::from_secs(20)).await;
            format!("{type_}={status} {reason}: {message}")
        }
        Expect::InvalidSpec(field) => {
            if let Some(error) = failed {
                panic!("{}: refused by the API server: {error}", case.name);
            }
            let name = last_cluster_name(case);
            let message = wait_condition(
                sim,
                name,
                "Degraded",
                "True",
                "InvalidSpec",
                Duration::from_secs(20),
            )
            .await;
            assert!(
                message.contains(field),
                "{}: the condition does not name {field}: {message}",
                case.name
            );
            format!("Degraded=True InvalidSpec: {message}")
        }
        Expect::ClientConfig(reason) => {
            if let Some(error) = failed {
                panic!("{}: refused by the API server: {error}", case.name);
            }
            let name = case
                .writes
                .iter()
                .rev()
                .find_map(|w| match w {
                    Write::ClientConfig(body) => body["metadata"]["name"].as_str(),
                    _ => None,
                })
                .unwrap_or_default();
            wait_for(
                &format!("{}: ClientConfig {name} Ready=False {reason}", case.name),
                Duration::from_secs(20),
                || async {
                    let (status, found) = client_config_ready(sim, name).await?;
                    if status == "False" && found == *reason {
                        Ok(())
                    } else {
                        Err(format!("Ready={status} {found}"))
                    }
                },
            )
            .await;
            format!("ClientConfig Ready=False {reason}")
        }
        Expect::ReplicatedSecret(reason) => {
            if let Some(error) = failed {
                panic!("{}: refused by the API server: {error}", case.name);
            }
            let name = case
                .writes
                .iter()
                .rev()
                .find_map(|w| match w {
                    Write::ReplicatedSecret(body) => body["metadata"]["name"].as_str(),
                    _ => None,
                })
                .unwrap_or_default();
            let api = Api::<ReplicatedSecret>::namespaced(sim.client(0).await.expect("hub"), NS);
            wait_for(
                &format!("{}: ReplicatedSecret {name} condition {reason}", case.name),
                Duration::from_secs(20),
                || async {
                    let rs = api.get(name).await.map_err(|e| e.to_string())?;
                    let conditions = rs.status.and_then(|s| s.conditions).unwrap_or_default();
                    if conditions
                        .iter()
                        .any(|c| c.status == "False" && c.reason.as_deref() == Some(*reason))
                    {
                        Ok(())
                    } else {
                        Err(format!(
                            "conditions {:?}",
                            conditions
                                .iter()
                                .map(|c| (c.status.clone(), c.reason.clone()))
                                .collect::<Vec<_>>()
                        ))
                    }
                },
            )
            .await;
            format!("ReplicatedSecret condition False {reason}")
        }
    }
}

#[test]
fn every_bad_input_is_refused_by_name_or_reason_while_a_healthy_cluster_keeps_converging() {
    federator::operator::runtime().expect("tokio runtime").block_on(async {
        // On a worker, whose stack takes the 3,000-level object of one case (a test
        // thread's does not).
        if let Err(error) = tokio::spawn(matrix()).await {
            std::panic::resume_unwind(error.into_panic());
        }
    });
}

async fn matrix() {
    let world = World::start(Duration::from_millis(300)).await;
    let sim = &world.sim;
    world.apply_cluster(CLUSTER, 1).await;
    wait_for("the healthy cluster Ready", Duration::from_secs(40), || {
        datacenters_ready(sim, 1)
    })
    .await;

    let cases = cases(sim);
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let start = Instant::now();
    for case in &cases {
        let ended = run_case(sim, case).await;
        eprintln!("case {:?}: {ended}", case.name);
    }
    eprintln!(
        "measured: {} bad-input cases in {:?}",
        cases.len(),
        start.elapsed()
    );

    // The healthy cluster was never disturbed, and still takes a change everywhere.
    let healthy =
        find_cluster(sim, CLUSTER).await.expect("get").expect("the healthy cluster exists");
    assert_eq!(
        condition(&healthy, "Ready").map(|c| c.1),
        Some("AllDatacentersReady".to_string())
    );
    world.apply_cluster(CLUSTER, 2).await;
    world.wait_converged(2).await;
    let logs = world.finish().await;
    assert!(logs.lines().count() > 10, "the logs were captured:\n{logs}");
}
