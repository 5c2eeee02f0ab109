//! deploy/: every overlay renders with `kubectl kustomize` and its objects apply to a kube-sim
//! cluster (twice: a re-install is clean), with the security settings and least-privilege RBAC a
//! user relies on.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use federator::settings::Mode;
use serde_json::Value;
use support::*;

/// Each overlay and the mode its Deployment must run.
const OVERLAYS: &[(&str, &str)] = &[
    ("control-plane", "control-plane"),
    ("data-plane", "data-plane"),
    ("control-plane-cluster-scope", "control-plane"),
    ("data-plane-cluster-scope", "data-plane"),
];

fn render(overlay: &str) -> String {
    let dir = repo_path("deploy").join(overlay);
    let output = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 YAML")
}

fn objects(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .expect("rendered YAML parses")
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// Every (apiGroup, resource, verb) the overlay's RBAC grants to the operator.
/// (API group, resource, verb) triples.
type Grants = BTreeSet<(String, String, String)>;

fn grants(objects: &[Value]) -> Grants {
    let mut granted = BTreeSet::new();
    for role in objects.iter().filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole") {
        for rule in role["rules"].as_array().into_iter().flatten() {
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        granted.insert((group.into(), resource.into(), verb.into()));
                    }
                }
            }
        }
    }
    granted
}

fn the_deployment(objects: &[Value]) -> &Value {
    let deployments = of_kind(objects, "Deployment");
    assert_eq!(deployments.len(), 1, "one Deployment");
    deployments[0]
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"].as_array().into_iter().flatten().find(|e| e["name"] == name)
}

#[test]
fn every_overlay_runs_non_root_read_only_with_probes_and_limits() {
    if !kube_sim::prerequisites::kubectl() {
        return;
    }
    for (overlay, mode) in OVERLAYS {
        let objects = objects(&render(overlay));
        let deployment = the_deployment(&objects);
        assert_eq!(deployment["metadata"]["namespace"], "k8ssandra-operator");
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{overlay}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{overlay}"
        );
        let container = &pod["containers"][0];
        let security = &container["securityContext"];
        assert_eq!(security["readOnlyRootFilesystem"], true, "{overlay}");
        assert_eq!(security["allowPrivilegeEscalation"], false, "{overlay}");
        assert_eq!(
            strings(&security["capabilities"]["drop"]),
            ["ALL"],
            "{overlay}"
        );
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(container["livenessProbe"]["httpGet"]["port"], "http");
        assert_eq!(container["ports"][0]["name"], "http");
        assert_eq!(
            env_value(container, "FEDERATOR_HTTP_ADDR").map(|e| &e["value"]),
            Some(&Value::from(format!(
                "0.0.0.0:{}",
                container["ports"][0]["containerPort"]
            ))),
            "{overlay}: the probes' port is the one Federator listens on"
        );
        for kind in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    container["resources"][kind][resource].is_string(),
                    "{overlay}: resources.{kind}.{resource}"
                );
            }
        }
        assert_eq!(
            env_value(container, "FEDERATOR_MODE").map(|e| &e["value"]),
            Some(&Value::from(*mode)),
            "{overlay}"
        );
        assert_eq!(
            env_value(container, "POD_NAME").map(|e| &e["valueFrom"]["fieldRef"]["fieldPath"]),
            Some(&Value::from("metadata.name")),
            "{overlay}: events name the pod"
        );
        let watches_own_namespace = env_value(container, "FEDERATOR_WATCH_NAMESPACES")
            .is_some_and(|e| e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace");
        assert_eq!(
            watches_own_namespace,
            !overlay.ends_with("cluster-scope"),
            "{overlay}: a namespaced install watches only its namespace"
        );
        // The ServiceAccount the pod runs as is the one the RBAC binds.
        let account = pod["serviceAccountName"].as_str().expect("serviceAccountName");
        for binding in objects
            .iter()
            .filter(|o| o["kind"] == "RoleBinding" || o["kind"] == "ClusterRoleBinding")
        {
            assert_eq!(binding["subjects"][0]["name"], account, "{overlay}");
            let role = binding["roleRef"]["name"].as_str().unwrap_or_default();
            let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
            assert!(
                objects.iter().any(|o| o["kind"] == role_kind && o["metadata"]["name"] == role),
                "{overlay}: {role_kind} {role} is bound but not installed"
            );
        }
        // Every CRD of a kind Federator acts on is installed, and only those.
        let crds = of_kind(&objects, "CustomResourceDefinition").len();
        assert_eq!(crds, federator::api::installed_crds().len(), "{overlay}");
    }
}

#[test]
fn rbac_is_least_privilege_for_each_mode_and_scope() {
    if !kube_sim::prerequisites::kubectl() {
        return;
    }
    for (overlay, mode) in OVERLAYS {
        let objects = objects(&render(overlay));
        let granted = grants(&objects);
        let has = |group: &str, resource: &str, verb: &str| {
            granted.contains(&(group.to_string(), resource.to_string(), verb.to_string()))
        };
        for (group, resource, verb) in &granted {
            assert!(
                group != "*" && resource != "*" && verb != "*",
                "{overlay}: wildcard grant {group}/{resource} {verb}"
            );
        }
        // What every mode does: Stargate/Reaper status, the leader Lease, Events.
        for verb in ["get", "create", "update"] {
            assert!(
                has("coordination.k8s.io", "leases", verb),
                "{overlay}: leases {verb}"
            );
        }
        assert!(has("events.k8s.io", "events", "create"), "{overlay}");
        assert!(
            has("stargate.k8ssandra.io", "stargates/status", "patch"),
            "{overlay}"
        );
        assert!(
            has("reaper.k8ssandra.io", "reapers/status", "patch"),
            "{overlay}"
        );
        // MedusaBackupJobs run in every mode, on the datacenters of the cluster they are in.
        assert!(
            has("medusa.k8ssandra.io", "medusabackupjobs/status", "patch"),
            "{overlay}"
        );
        assert!(
            has("medusa.k8ssandra.io", "medusabackups", "create"),
            "{overlay}"
        );
        // MedusaRestoreJobs too: status patched, their datacenter stopped and restarted by apply.
        assert!(
            has("medusa.k8ssandra.io", "medusarestorejobs", "watch"),
            "{overlay}"
        );
        let restore_status: Vec<&str> = (granted.iter())
            .filter(|(_, resource, _)| resource == "medusarestorejobs/status")
            .map(|(_, _, verb)| verb.as_str())
            .collect();
        assert_eq!(restore_status, ["patch"], "{overlay}");
        // MedusaBackupSchedules and MedusaTasks too: status patched, jobs and tasks created.
        for (resource, verb) in [
            ("medusabackupschedules", "watch"),
            ("medusabackupschedules/status", "patch"),
            ("medusatasks", "create"),
            ("medusatasks/status", "patch"),
            ("medusabackupjobs", "create"),
            ("medusabackups", "delete"),
        ] {
            assert!(
                has("medusa.k8ssandra.io", resource, verb),
                "{overlay}: {resource} {verb}"
            );
        }
        assert!(
            has("cassandra.datastax.com", "cassandradatacenters", "patch"),
            "{overlay}"
        );
        assert!(has("", "pods", "list"), "{overlay}");
        assert!(has("apps", "deployments", "create"), "{overlay}");

        let namespaced = !overlay.ends_with("cluster-scope");
        let roles = of_kind(&objects, "Role");
        let cluster_roles = of_kind(&objects, "ClusterRole");
        if namespaced {
            assert_eq!(roles.len(), 1, "{overlay}: one namespaced Role");
            // A namespaced install's only cluster-wide grants are reads: a namespace's existence,
            // and the CassandraDatacenters Federator made (watched and cleaned up by label).
            for role in cluster_roles {
                for rule in role["rules"].as_array().into_iter().flatten() {
                    for resource in strings(&rule["resources"]) {
                        for verb in strings(&rule["verbs"]) {
                            assert!(
                                matches!(
                                    (resource, verb),
                                    ("namespaces", "get")
                                        | ("cassandradatacenters", "list" | "watch")
                                ),
                                "{overlay}: cluster-wide {verb} {resource}"
                            );
                        }
                    }
                }
            }
        } else {
            assert!(roles.is_empty(), "{overlay}: cluster scope has no Role");
            assert!(of_kind(&objects, "RoleBinding").is_empty(), "{overlay}");
        }

        let k8c_writes = ["create", "update", "patch", "delete", "deletecollection"];
        if *mode == "data-plane" {
            let clientconfig_access: Vec<_> = granted
                .iter()
                .filter(|(_, resource, _)| resource.starts_with("clientconfigs"))
                .collect();
            assert!(
                clientconfig_access.is_empty(),
                "{overlay}: the data plane must not read ClientConfigs: {clientconfig_access:?}"
            );
            for verb in k8c_writes {
                for resource in ["k8ssandraclusters", "k8ssandraclusters/status"] {
                    assert!(
                        !has("k8ssandra.io", resource, verb),
                        "{overlay}: the data plane must not {verb} {resource}"
                    );
                }
            }
            let secret_verbs: Vec<&str> = (granted.iter())
                .filter(|(_, resource, _)| resource == "secrets")
                .map(|(_, _, verb)| verb.as_str())
                .collect();
            assert_eq!(
                secret_verbs,
                ["get"],
                "{overlay}: the data plane reads a Reaper's UI login by name, nothing more"
            );
            for verb in ["get", "create", "update"] {
                assert!(
                    has("", "services/proxy", verb),
                    "{overlay}: Reaper's REST API through the services proxy"
                );
            }
            let monitor_verbs: Vec<&str> = (granted.iter())
                .filter(|(_, resource, _)| resource == "servicemonitors")
                .map(|(_, _, verb)| verb.as_str())
                .collect();
            assert_eq!(
                monitor_verbs,
                ["create", "delete", "get", "patch"],
                "{overlay}: a hand-made component's ServiceMonitor, by name"
            );
            assert!(
                !granted.iter().any(|(_, resource, _)| resource == "pods/proxy"),
                "{overlay}: the data plane calls no Management API"
            );
            assert!(
                !granted.iter().any(|(_, resource, _)| resource.starts_with("k8ssandratasks")),
                "{overlay}: K8ssandraTasks run in the control plane only"
            );
            assert!(
                !granted.iter().any(|(_, r, _)| r.starts_with("medusaclusterbackupjobs")),
                "{overlay}: MedusaClusterBackupJobs run in the control plane only"
            );
        } else {
            // MedusaClusterBackupJobs: followed with a finalizer; their MedusaBackupJobs
            // applied and deleted, their MedusaBackups copied.
            for verb in ["watch", "patch"] {
                assert!(
                    has("medusa.k8ssandra.io", "medusaclusterbackupjobs", verb),
                    "{overlay}: medusaclusterbackupjobs {verb}"
                );
            }
            for resource in [
                "medusaclusterbackupjobs/status",
                "medusaclusterbackupjobs/finalizers",
            ] {
                assert!(
                    has("medusa.k8ssandra.io", resource, "patch"),
                    "{overlay}: {resource}"
                );
            }
            for verb in ["patch", "delete"] {
                assert!(
                    has("medusa.k8ssandra.io", "medusabackupjobs", verb),
                    "{overlay}: medusabackupjobs {verb}"
                );
            }
            assert!(has("medusa.k8ssandra.io", "medusabackups/status", "patch"));
            assert!(
                has("config.k8ssandra.io", "clientconfigs", "watch"),
                "{overlay}"
            );
            assert!(has("config.k8ssandra.io", "clientconfigs/status", "patch"));
            assert!(
                has("k8ssandra.io", "k8ssandraclusters", "patch"),
                "{overlay}"
            );
            assert!(has("k8ssandra.io", "k8ssandraclusters/status", "patch"));
            assert!(has(
                "cassandra.datastax.com",
                "cassandradatacenters",
                "create"
            ));
            assert!(
                has("", "namespaces", "get"),
                "{overlay}: NamespaceMissing check"
            );
            for verb in ["get", "create"] {
                assert!(
                    has("", "pods/proxy", verb),
                    "{overlay}: the Management API through the pod proxy"
                );
            }
            assert!(!has("", "pods/proxy", "delete"), "{overlay}");
            // K8ssandraTasks: followed, their status written, deleted when their TTL passed;
            // users create them.
            for verb in ["watch", "patch", "delete"] {
                assert!(
                    has("control.k8ssandra.io", "k8ssandratasks", verb),
                    "{overlay}: k8ssandratasks {verb}"
                );
            }
            assert!(has(
                "control.k8ssandra.io",
                "k8ssandratasks/status",
                "patch"
            ));
            assert!(!has("control.k8ssandra.io", "k8ssandratasks", "create"));
            // Their CassandraTasks (and rebuilds'): created by apply, read, deleted.
            for verb in ["get", "patch", "delete"] {
                assert!(
                    has("control.k8ssandra.io", "cassandratasks", verb),
                    "{overlay}: cassandratasks {verb}"
                );
            }
            // Users create ClientConfigs (federator clientconfig create); the operator only reads.
            assert!(
                !has("config.k8ssandra.io", "clientconfigs", "create"),
                "{overlay}"
            );
        }
    }
}

/// [`kubectl`]: (success, stdout and stderr).
async fn kubectl_output(
    kubeconfig: &std::path::Path,
    cache: &std::path::Path,
    args: &[&str],
) -> (bool, String) {
    let (ok, stdout, stderr) = kubectl(kubeconfig, cache, args).await;
    (ok, format!("{stdout}{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_overlay_applies_cleanly_to_a_cluster() {
    if !kube_sim::prerequisites::kubectl() {
        return;
    }
    // One cluster per overlay, without Federator's CRDs: the install brings them.
    let sim =
        launch(kube_sim::SimBuilder::new().clusters(OVERLAYS.len()).cass_operator(true)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let cache = dir.path().join("cache");

    for (index, (overlay, mode)) in OVERLAYS.iter().enumerate() {
        let manifest = dir.path().join(format!("{overlay}.yaml"));
        std::fs::write(&manifest, render(overlay)).expect("write manifest");
        let context = sim.context_name(index);
        let manifest = manifest.to_string_lossy().into_owned();
        // Twice: installing over an existing install (an upgrade) is clean too.
        for attempt in ["install", "re-install"] {
            let (ok, output) = kubectl_output(
                &kubeconfig,
                &cache,
                &[
                    "--context",
                    &context,
                    "apply",
                    "--server-side",
                    "--field-manager",
                    "federator-install",
                    "-f",
                    &manifest,
                ],
            )
            .await;
            assert!(ok, "{overlay} {attempt} failed:\n{output}");
        }
        let (ok, output) = kubectl_output(
            &kubeconfig,
            &cache,
            &[
                "--context",
                &context,
                "get",
                "deployment",
                "federator",
                "-n",
                "k8ssandra-operator",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].env[?(@.name==\"FEDERATOR_MODE\")].value}",
            ],
        )
        .await;
        assert!(ok, "{overlay}: {output}");
        assert_eq!(output.trim(), *mode, "{overlay}");
        // The CRDs are served: a K8ssandraCluster list works in the new API.
        let (ok, output) = kubectl_output(
            &kubeconfig,
            &cache,
            &["--context", &context, "get", "k8ssandraclusters", "-A"],
        )
        .await;
        assert!(
            ok,
            "{overlay}: K8ssandraClusters not served after install: {output}"
        );
        if index == 0 {
            medusa_kinds_are_served(&kubeconfig, &cache, &context, dir.path()).await;
        }
        let (ok, output) = kubectl_output(
            &kubeconfig,
            &cache,
            &[
                "--context",
                &context,
                "get",
                "roles,rolebindings,clusterroles,clusterrolebindings",
                "-A",
                "-l",
                &format!("app.kubernetes.io/component={mode}"),
                "-o",
                "name",
            ],
        )
        .await;
        assert!(ok, "{overlay}: {output}");
        assert!(
            output.contains(&format!("federator-{mode}-operator")),
            "{overlay}: RBAC installed: {output}"
        );
    }
    sim.shutdown().await;
}

/// After an install, the Medusa kinds Federator acts on are served: a MedusaBackupJob is stored
/// and listed with upstream's columns, one with an unknown backup type is refused naming the
/// field. The K8ssandra book's CassandraBackup and CassandraRestore, acted on now, are stored as
/// printed, with the API server's deprecation warning; the kinds nothing acts on yet (MedusaBackupSchedule,
/// MedusaTask) are not installed.
async fn medusa_kinds_are_served(
    kubeconfig: &std::path::Path,
    cache: &std::path::Path,
    context: &str,
    dir: &std::path::Path,
) {
    let Some(samples) = compat_path("samples/medusa") else {
        return;
    };
    let job = |name: &str, backup_type: &str| {
        format!(
            "apiVersion: medusa.k8ssandra.io/v1alpha1\nkind: MedusaBackupJob\nmetadata:\n  name: {name}\n  namespace: k8ssandra-operator\nspec:\n  cassandraDatacenter: dc1\n  backupType: {backup_type}\n"
        )
    };
    let apply = |file: String| async move {
        kubectl_output(
            kubeconfig,
            cache,
            &["--context", context, "apply", "--server-side", "-f", &file],
        )
        .await
    };
    let good = dir.join("medusa-backup-job.yaml");
    std::fs::write(&good, job("backup1", "full")).expect("write manifest");
    let file = good.to_string_lossy().into_owned();
    let (ok, output) = apply(file.clone()).await;
    assert!(ok, "{file} refused: {output}");
    for book in ["book-cassandrabackup.yaml", "book-cassandrarestore.yaml"] {
        let file = samples.join(book).to_string_lossy().into_owned();
        let (ok, output) = apply(file.clone()).await;
        assert!(ok, "{file} refused: {output}");
        assert!(
            output.contains("are deprecated"),
            "no deprecation warning: {output}"
        );
    }
    let task = dir.join("medusa-task.yaml");
    std::fs::write(
        &task,
        "apiVersion: medusa.k8ssandra.io/v1alpha1\nkind: MedusaTask\nmetadata:\n  name: purge\n  namespace: k8ssandra-operator\nspec:\n  cassandraDatacenter: dc1\n  operation: purge\n",
    )
    .expect("write manifest");
    // Every kind is acted on now, so every CRD is installed: a MedusaTask is stored.
    let (ok, output) = apply(task.to_string_lossy().into_owned()).await;
    assert!(ok, "a MedusaTask refused: {output}");
    let (ok, output) = kubectl_output(
        kubeconfig,
        cache,
        &[
            "--context",
            context,
            "get",
            "medusabackupjobs",
            "-n",
            "k8ssandra-operator",
        ],
    )
    .await;
    assert!(ok, "{output}");
    for expected in ["backup1", "STARTED", "FINISHED"] {
        assert!(output.contains(expected), "{expected} not listed: {output}");
    }
    let bad = dir.join("medusa-backup-job-bad.yaml");
    std::fs::write(&bad, job("backup2", "incremental")).expect("write manifest");
    let file = bad.to_string_lossy().into_owned();
    let (ok, output) = apply(file).await;
    assert!(!ok, "an unknown backup type was stored: {output}");
    assert!(output.contains("spec.backupType"), "{output}");
}

/// What a namespaced overlay's RBAC grants in its namespace (Roles and ClusterRoles) and
/// cluster-wide (ClusterRoles).
struct Granted {
    in_namespace: Grants,
    cluster_wide: Grants,
}

impl Granted {
    fn of(overlay: &str) -> Granted {
        let objects = objects(&render(overlay));
        let cluster_roles: Vec<Value> =
            of_kind(&objects, "ClusterRole").into_iter().cloned().collect();
        Granted {
            in_namespace: grants(&objects),
            cluster_wide: grants(&cluster_roles),
        }
    }

    /// The requests `agent` made to cluster `index` that these grants would refuse.
    fn refused(&self, sim: &kube_sim::Sim, index: usize, agent: &str) -> (u64, BTreeSet<String>) {
        let mut refused = BTreeSet::new();
        let mut asked = 0;
        for count in sim.requests(index).expect("requests") {
            if count.user_agent != agent {
                continue;
            }
            asked += count.count;
            let request = as_rbac(&count);
            let allowed = match count.namespace.as_str() {
                AUDITED_NS => {
                    self.in_namespace.contains(&request) || self.cluster_wide.contains(&request)
                }
                _ => self.cluster_wide.contains(&request),
            };
            if !allowed {
                let (group, resource, verb) = request;
                let scope = match count.namespace.as_str() {
                    "" => "cluster-wide".to_string(),
                    namespace => format!("in {namespace}"),
                };
                refused.insert(format!(
                    "{verb} {group}/{resource} {scope} (x{})",
                    count.count
                ));
            }
        }
        (asked, refused)
    }
}

/// A request as kube-sim counts it, as RBAC names it: (group, resource[/subresource], verb).
fn as_rbac(count: &kube_sim::requests::RequestCount) -> (String, String, String) {
    let (resource, subresource) = match count.resource.split_once('/') {
        Some((resource, sub)) => (resource, Some(sub)),
        None => (count.resource.as_str(), None),
    };
    let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
    let resource = match subresource {
        Some(sub) => format!("{plural}/{sub}"),
        None => plural.to_string(),
    };
    (group.to_string(), resource, count.verb.clone())
}

/// The namespace of the audited installs (the overlays' own).
const AUDITED_NS: &str = "k8ssandra-operator";
/// The User-Agent of the audited operator's requests.
const AUDITED_AGENT: &str = "federator-under-audit";

/// One kube-sim cluster with the audited namespace, and an operator in `mode` watching only
/// that namespace, whose requests carry [`AUDITED_AGENT`].
async fn audited_operator(mode: Mode) -> (kube_sim::Sim, kube::Client, InProcessOperator) {
    let sim = start_sim(1).cass_operator().workloads_ready_after(Duration::from_secs(1)).await;
    let client = sim.client(0).await.expect("client");
    let operator_client =
        sim.client_with_user_agent(0, AUDITED_AGENT).await.expect("the operator's client");
    let operator = start_operator(mode, &operator_client, true);
    (sim, client, operator)
}

/// An operator in `mode` (in [`AUDITED_NS`], watching only it when `namespaced`), talking to
/// its home cluster through `client`, with the default request timeout.
fn start_operator(mode: Mode, client: &kube::Client, namespaced: bool) -> InProcessOperator {
    InProcessOperator::start(client, |settings| {
        settings.mode = mode;
        settings.operator_namespace = AUDITED_NS.to_string();
        settings.watch_namespaces = match namespaced {
            true => vec![AUDITED_NS.to_string()],
            false => Vec::new(),
        };
        settings.regions.request_timeout = Duration::from_secs(10);
    })
}

/// `cluster` with Stargate and a Reaper per datacenter.
fn with_components(mut cluster: Value) -> Value {
    cluster["spec"]["stargate"] = serde_json::json!({"size": 1, "heapSize": "256Mi"});
    cluster["spec"]["reaper"] = serde_json::json!({"deploymentMode": "PER_DC"});
    cluster
}

/// Server-side applies each object, of whatever kind the cluster serves, as the test.
async fn apply_objects(client: &kube::Client, objects: &[Value]) {
    use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};

    let discovery = kube::Discovery::new(client.clone()).run().await.expect("discovery");
    for object in objects {
        let object: DynamicObject = serde_json::from_value(object.clone()).expect("object");
        let types = object.types.clone().expect("apiVersion and kind");
        let gvk = GroupVersionKind::try_from(&types).expect("gvk");
        let (resource, _) = discovery.resolve_gvk(&gvk).expect("served");
        let api: Api<DynamicObject> = match &object.metadata.namespace {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let name = object.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply("audit-test").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {} {name}: {e}", types.kind));
    }
}

/// Runs an audit scenario; needs kubectl, which renders the RBAC it checks against.
fn audit(scenario: impl std::future::Future<Output = ()>) {
    if !kube_sim::prerequisites::kubectl() {
        return;
    }
    run(scenario);
}

/// Stops the operator and checks every request it made against `overlay`'s RBAC.
async fn assert_granted(overlay: &str, sim: kube_sim::Sim, operator: InProcessOperator) {
    operator.stop().await;
    let (asked, refused) = Granted::of(overlay).refused(&sim, 0, AUDITED_AGENT);
    assert!(asked > 0, "no request of the operator was counted");
    assert!(
        refused.is_empty(),
        "requests {overlay}'s RBAC would refuse:\n{}",
        Vec::from_iter(refused).join("\n")
    );
    sim.shutdown().await;
}

#[test]
fn a_namespaced_control_plane_asks_the_hub_only_what_its_rbac_grants() {
    audit(namespaced_control_plane());
}

/// The default install (deploy/control-plane, one namespace) runs a cluster whose datacenter
/// (with a per-node ConfigMap), Stargate and Reaper are in the hub, then deletes it.
async fn namespaced_control_plane() {
    use federator::api::k8ssandra_cluster::K8ssandraCluster;
    use kube::Api;

    let (sim, client, operator) = audited_operator(Mode::ControlPlane).await;
    let per_node = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "dc1-per-node", "namespace": AUDITED_NS},
        "data": {"demo-dc1-default-sts-0_cassandra.yaml": "initial_token: 1"}
    });
    let mut cluster = with_components(k8ssandra_cluster("demo", &[("dc1", "", 1)]));
    cluster["spec"]["cassandra"]["datacenters"][0]["perNodeConfigMapRef"] =
        serde_json::json!({"name": "dc1-per-node"});
    apply_objects(&client, &[per_node, cluster]).await;
    let clusters = Api::<K8ssandraCluster>::namespaced(client.clone(), AUDITED_NS);
    wait_for(
        "Stargate and Reaper Ready in the status",
        Duration::from_secs(90),
        || async {
            let status = clusters.get("demo").await.ok().and_then(|k8c| k8c.status);
            status.as_ref().and_then(|s| s.datacenters.as_ref()?.get("dc1").cloned()).is_some_and(
                |dc| {
                    dc.stargate.as_ref().is_some_and(|s| s.is_ready())
                        && dc.reaper.as_ref().is_some_and(|r| r.is_ready())
                },
            )
        },
    )
    .await;
    clusters.delete("demo", &Default::default()).await.expect("delete");
    wait_for("the cluster deleted", Duration::from_secs(60), || async {
        clusters.get_opt("demo").await.is_ok_and(|found| found.is_none())
    })
    .await;
    assert_granted("control-plane", sim, operator).await;
}

#[test]
fn a_namespaced_data_plane_asks_its_region_only_what_its_rbac_grants() {
    audit(namespaced_data_plane());
}

/// deploy/data-plane (one namespace) serves a Stargate reading a ConfigMap of its own and a
/// Reaper, for a datacenter made by hand, until both run; then they are deleted.
async fn namespaced_data_plane() {
    use federator::api::reaper::Reaper;
    use federator::api::stargate::Stargate;
    use federator::workload::service_monitor::ServiceMonitor;
    use kube::Api;

    let (sim, client, operator) = audited_operator(Mode::DataPlane).await;
    let objects = [
        serde_json::json!({
            "apiVersion": "cassandra.datastax.com/v1beta1", "kind": "CassandraDatacenter",
            "metadata": {"name": "standalone", "namespace": AUDITED_NS},
            "spec": {"clusterName": "solo", "serverType": "cassandra", "serverVersion": "4.1.5",
                     "size": 1, "storageConfig": {}}
        }),
        serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "stargate-config", "namespace": AUDITED_NS},
            "data": {"cassandra.yaml": "num_tokens: 16"}
        }),
        serde_json::json!({
            "apiVersion": "stargate.k8ssandra.io/v1alpha1", "kind": "Stargate",
            "metadata": {"name": "solo-stargate", "namespace": AUDITED_NS},
            "spec": {"datacenterRef": {"name": "standalone"}, "size": 1,
                     "cassandraConfigMapRef": {"name": "stargate-config"}}
        }),
        serde_json::json!({
            "apiVersion": "reaper.k8ssandra.io/v1alpha1", "kind": "Reaper",
            "metadata": {"name": "solo-reaper", "namespace": AUDITED_NS},
            "spec": {"datacenterRef": {"name": "standalone"},
                     "telemetry": {"prometheus": {"enabled": true}}}
        }),
    ];
    install_service_monitor_crd(&client).await;
    apply_objects(&client, &objects).await;
    let stargates = Api::<Stargate>::namespaced(client.clone(), AUDITED_NS);
    let reapers = Api::<Reaper>::namespaced(client.clone(), AUDITED_NS);
    wait_for(
        "the Stargate and the Reaper running",
        Duration::from_secs(90),
        || async {
            let stargate = stargates.get("solo-stargate").await.ok().and_then(|s| s.status);
            let reaper = reapers.get("solo-reaper").await.ok().and_then(|r| r.status);
            stargate.is_some_and(|s| s.is_ready()) && reaper.is_some_and(|r| r.is_ready())
        },
    )
    .await;
    let monitors = Api::<ServiceMonitor>::namespaced(client.clone(), AUDITED_NS);
    wait_for(
        "the Reaper's ServiceMonitor",
        Duration::from_secs(30),
        || async { monitors.get_opt("solo-reaper-servicemonitor").await.ok().flatten() },
    )
    .await;
    stargates.delete("solo-stargate", &Default::default()).await.expect("delete the Stargate");
    reapers.delete("solo-reaper", &Default::default()).await.expect("delete the Reaper");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_granted("data-plane", sim, operator).await;
}

#[test]
fn with_rbac_enforced_a_namespaced_install_runs_a_cluster_in_regions_with_only_its_roles() {
    audit(rbac_enforced_regions(Scope::Namespaced));
}

#[test]
fn with_rbac_enforced_a_cluster_scope_install_runs_a_cluster_in_regions_with_only_its_roles() {
    audit(rbac_enforced_regions(Scope::Cluster));
}

/// Which overlays are installed: deploy/control-plane and deploy/data-plane (watching the
/// operator namespace), or their `-cluster-scope` variants (watching every namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Namespaced,
    Cluster,
}

impl Scope {
    fn overlay(self, mode: &str) -> String {
        match self {
            Scope::Namespaced => mode.to_string(),
            Scope::Cluster => format!("{mode}-cluster-scope"),
        }
    }

    /// Where the K8ssandraCluster (and so its datacenters) lives.
    fn cluster_namespace(self) -> &'static str {
        match self {
            Scope::Namespaced => AUDITED_NS,
            Scope::Cluster => "cassandra",
        }
    }
}

/// User name of the client certificates regions are registered with.
const CERTIFICATE_USER: &str = "federator-control-plane";

/// Registers cluster `index` with the hub (cluster 0) by a kubeconfig whose user is a client
/// certificate for [`CERTIFICATE_USER`], bound in the region to `role`; returns the certificate.
async fn register_certificate_region(
    sim: &kube_sim::Sim,
    admins: &[kube::Client],
    index: usize,
    role: k8s_openapi::api::rbac::v1::ClusterRole,
) -> kube_sim::tls::ClientCertificate {
    use base64::Engine as _;

    let role_name = role.metadata.name.clone().expect("role name");
    let mut role = serde_json::to_value(role).expect("role");
    role["apiVersion"] = "rbac.authorization.k8s.io/v1".into();
    role["kind"] = "ClusterRole".into();
    let binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": format!("{role_name}-certificate")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": role_name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                      "name": CERTIFICATE_USER}]
    });
    apply_objects(&admins[index], &[role, binding]).await;
    let certificate =
        sim.issue_client_certificate(CERTIFICATE_USER, &[]).expect("client certificate");
    let context = sim.context_name(index);
    let kubeconfig =
        sim.client_certificate_kubeconfig_yaml(index, &certificate).expect("kubeconfig");
    apply_objects(
        &admins[0],
        &[
            serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": format!("{context}-config"), "namespace": AUDITED_NS},
                "data": {"kubeconfig": base64::engine::general_purpose::STANDARD.encode(&kubeconfig)}
            }),
            serde_json::json!({
                "apiVersion": "config.k8ssandra.io/v1beta1", "kind": "ClientConfig",
                "metadata": {"name": context, "namespace": AUDITED_NS},
                "spec": {"contextName": context,
                         "kubeConfigSecret": {"name": format!("{context}-config")}}
            }),
        ],
    )
    .await;
    certificate
}

/// The rendered overlay's Namespace, ServiceAccount and RBAC, applied as the admin.
async fn install_identity(admin: &kube::Client, overlay: &str) {
    let identity: Vec<Value> = objects(&render(overlay))
        .into_iter()
        .filter(|o| {
            matches!(
                o["kind"].as_str(),
                Some(
                    "Namespace"
                        | "ServiceAccount"
                        | "Role"
                        | "ClusterRole"
                        | "RoleBinding"
                        | "ClusterRoleBinding"
                )
            )
        })
        .collect();
    apply_objects(admin, &identity).await;
}

/// A client of cluster `index` authenticating as service account `AUDITED_NS/account`, with the
/// token of a service-account-token Secret (the admin creates it).
async fn service_account_client(
    sim: &kube_sim::Sim,
    admin: &kube::Client,
    index: usize,
    account: &str,
) -> kube::Client {
    use k8s_openapi::api::core::v1::Secret;

    let name = format!("{account}-token");
    apply_objects(
        admin,
        &[serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
            "metadata": {"name": name, "namespace": AUDITED_NS,
                         "annotations": {"kubernetes.io/service-account.name": account}}
        })],
    )
    .await;
    let secrets = kube::Api::<Secret>::namespaced(admin.clone(), AUDITED_NS);
    let token = wait_for(
        &format!("the token of {account}"),
        Duration::from_secs(10),
        || async {
            secrets
                .get(&name)
                .await
                .ok()
                .and_then(|s| s.data?.get("token").cloned())
                .and_then(|t| String::from_utf8(t.0).ok())
        },
    )
    .await;
    sim.client_with_token(index, &token).await.expect("client")
}

/// With RBAC enforced in every cluster: the hub's control plane runs as the control-plane
/// overlay's service account; region 1 is registered by `federator clientconfig create
/// --service-account` (its ClusterRole, its token); region 2 by a kubeconfig with a client
/// certificate whose user is bound to that same ClusterRole; each region runs the data-plane
/// overlay as its service account. A cluster with a datacenter in each region (one with a
/// per-node ConfigMap) and one in the hub, Stargate and Reaper goes Ready and is deleted with
/// everything it made, and no cluster refused a single request.
async fn rbac_enforced_regions(scope: Scope) {
    use federator::api::cassdc::CassandraDatacenter;
    use federator::api::client_config::ClientConfig;
    use federator::api::k8ssandra_cluster::K8ssandraCluster;
    use federator::clusters::create::{CreateOptions, region_cluster_role};
    use kube::Api;

    let namespace = scope.cluster_namespace();
    let namespaced = scope == Scope::Namespaced;
    let sim = start_sim(3)
        .rbac()
        .cass_operator()
        .workloads_ready_after(Duration::from_secs(1))
        .namespace(namespace)
        .await;
    let mut admins = Vec::new();
    for index in 0..3 {
        admins.push(sim.client(index).await.expect("admin client"));
    }
    install_identity(&admins[0], &scope.overlay("control-plane")).await;
    let hub = service_account_client(&sim, &admins[0], 0, "federator").await;

    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    federator::clusters::create::create(&CreateOptions {
        src_kubeconfig: kubeconfig.clone(),
        src_context: sim.context_name(1),
        hub: federator::home::HomeCluster {
            kubeconfig: Some(kubeconfig.clone()),
            context: Some(sim.context_name(0)),
        },
        namespace: AUDITED_NS.to_string(),
        name: None,
        service_account: Some("federator-control-plane".into()),
        server: None,
    })
    .await
    .expect("clientconfig create --service-account");

    let region2 = sim.context_name(2);
    let certificate = register_certificate_region(&sim, &admins, 2, region_cluster_role()).await;

    let mut operators = vec![start_operator(Mode::ControlPlane, &hub, namespaced)];
    for (index, admin) in admins.iter().enumerate().skip(1) {
        install_identity(admin, &scope.overlay("data-plane")).await;
        let client = service_account_client(&sim, admin, index, "federator").await;
        operators.push(start_operator(Mode::DataPlane, &client, namespaced));
    }

    let per_node = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "dc1-per-node", "namespace": namespace},
        "data": {"demo-dc1-default-sts-0_cassandra.yaml": "initial_token: 1"}
    });
    let region1 = sim.context_name(1);
    let mut cluster = with_components(k8ssandra_cluster(
        "demo",
        &[("dc1", &region1, 1), ("dc2", &region2, 1), ("dc3", "", 1)],
    ));
    cluster["metadata"]["namespace"] = namespace.into();
    cluster["spec"]["cassandra"]["datacenters"][0]["perNodeConfigMapRef"] =
        serde_json::json!({"name": "dc1-per-node"});
    // The per-node ConfigMap lives in its datacenter's region, as k8ssandra-operator wants it.
    apply_objects(&admins[1], &[per_node]).await;
    apply_objects(&admins[0], &[cluster]).await;
    let clusters = Api::<K8ssandraCluster>::namespaced(admins[0].clone(), namespace);
    wait_for(
        "the datacenters, their Stargates and Reapers Ready in the status",
        Duration::from_secs(120),
        || async {
            let status = clusters.get("demo").await.ok().and_then(|k8c| k8c.status);
            let datacenters = status.clone().and_then(|s| s.datacenters).unwrap_or_default();
            let ready = ["dc1", "dc2", "dc3"].iter().all(|dc| {
                datacenters.get(*dc).is_some_and(|dc| {
                    dc.stargate.as_ref().is_some_and(|s| s.is_ready())
                        && dc.reaper.as_ref().is_some_and(|r| r.is_ready())
                })
            });
            match ready {
                true => Ok(()),
                false => Err(format!("{status:?}; refused: {}", refusals(&sim))),
            }
        },
    )
    .await;
    let client_configs = Api::<ClientConfig>::namespaced(admins[0].clone(), AUDITED_NS);
    let expiry = client_configs
        .get(&region2)
        .await
        .expect("ClientConfig")
        .status
        .and_then(|s| s.credential_expiry)
        .map(|t| t.0);
    assert_eq!(
        expiry,
        federator::clusters::kubeconfig::first_certificate_not_after(
            certificate.certificate_pem.as_bytes()
        ),
        "the client certificate's expiry is in the ClientConfig status"
    );

    clusters.delete("demo", &Default::default()).await.expect("delete");
    wait_for(
        "the cluster and its datacenters deleted",
        Duration::from_secs(60),
        || async {
            let mut gone = clusters.get_opt("demo").await.is_ok_and(|found| found.is_none());
            for admin in &admins {
                gone &= Api::<CassandraDatacenter>::namespaced(admin.clone(), namespace)
                    .list(&Default::default())
                    .await
                    .is_ok_and(|list| list.items.is_empty());
            }
            gone
        },
    )
    .await;
    stop_all(operators).await;
    let refused = refusals(&sim);
    assert!(refused.is_empty(), "refused:\n{refused}");
    sim.shutdown().await;
}

/// Every 403 of every cluster, one a line with its cluster and count ("" when none).
fn refusals(sim: &kube_sim::Sim) -> String {
    let mut lines = Vec::new();
    for index in 0..sim.cluster_count() {
        for (message, count) in sim.refused_requests(index).expect("refused requests") {
            lines.push(format!("cluster {index}: {message} (x{count})"));
        }
    }
    lines.join("\n")
}

#[test]
fn a_region_refusing_to_list_seed_pods_is_named_in_the_cluster_status() {
    audit(region_refusing_seed_pods());
}

/// Regions whose credentials may do everything the control plane needs but read pods: the
/// datacenters come up, and the K8ssandraCluster's status says why they lack each other's seeds
/// (before, the 403 was only logged at debug level and the cluster looked healthy).
async fn region_refusing_seed_pods() {
    use federator::api::k8ssandra_cluster::K8ssandraCluster;
    use federator::clusters::create::region_cluster_role;
    use kube::Api;

    let sim = start_sim(3).rbac().cass_operator().dc_ready_after(Duration::from_millis(500)).await;
    let mut admins = Vec::new();
    for index in 0..3 {
        admins.push(sim.client(index).await.expect("admin client"));
    }
    let mut without_pods = region_cluster_role();
    without_pods.metadata.name = Some("federator-without-pods".into());
    for rule in without_pods.rules.iter_mut().flatten() {
        if let Some(resources) = &mut rule.resources {
            resources.retain(|r| r != "pods");
        }
    }
    for index in [1, 2] {
        register_certificate_region(&sim, &admins, index, without_pods.clone()).await;
    }
    let operator = start_operator(Mode::ControlPlane, &admins[0], true);
    let (region1, region2) = (sim.context_name(1), sim.context_name(2));
    let cluster = k8ssandra_cluster("demo", &[("dc1", &region1, 1), ("dc2", &region2, 1)]);
    apply_objects(&admins[0], &[cluster]).await;
    let clusters = Api::<K8ssandraCluster>::namespaced(admins[0].clone(), AUDITED_NS);
    let expected = [
        format!(
            "listing the seed pods of datacenter dc1 in region \"{}\"",
            sim.context_name(1)
        ),
        format!(
            "pods is forbidden: User \"{CERTIFICATE_USER}\" cannot list resource \"pods\" in API group \"\" in the namespace \"{AUDITED_NS}\""
        ),
    ];
    wait_for(
        &format!("the status to name the refused seed pod list ({expected:?})"),
        Duration::from_secs(60),
        || async {
            let k8c = clusters.get("demo").await.map_err(|e| e.to_string())?;
            let names_it = |text: &str| expected.iter().all(|part| text.contains(part.as_str()));
            let error = k8c.status.as_ref().and_then(|s| s.error.clone());
            let degraded = condition(&k8c, "Degraded")
                .is_some_and(|(status, _, message)| status == "True" && names_it(&message));
            match error.as_deref().is_some_and(names_it) && degraded {
                true => Ok(()),
                false => Err(format!("{:?}", k8c.status)),
            }
        },
    )
    .await;
    operator.stop().await;
    sim.shutdown().await;
}
