//! deploy/: every overlay renders with `kubectl kustomize` and its objects apply to a kube-sim
//! cluster (twice: a re-install is clean), with the security settings and least-privilege RBAC a
//! user relies on.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// Each overlay and the mode its Deployment must run.
const OVERLAYS: &[(&str, &str)] = &[
    ("control-plane", "control-plane"),
    ("data-plane", "data-plane"),
    ("control-plane-cluster-scope", "control-plane"),
    ("data-plane-cluster-scope", "data-plane"),
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kubectl_available() -> bool {
    std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn render(overlay: &str) -> String {
    let dir = repo().join("deploy").join(overlay);
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
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Every (apiGroup, resource, verb) the overlay's RBAC grants to the operator.
fn grants(objects: &[Value]) -> BTreeSet<(String, String, String)> {
    let mut granted = BTreeSet::new();
    for role in objects
        .iter()
        .filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole")
    {
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
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == name)
}

#[test]
fn every_overlay_runs_non_root_read_only_with_probes_and_limits() {
    if !kubectl_available() {
        eprintln!("skipped: kubectl is not installed (kubectl kustomize renders deploy/)");
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
        let account = pod["serviceAccountName"]
            .as_str()
            .expect("serviceAccountName");
        for binding in objects
            .iter()
            .filter(|o| o["kind"] == "RoleBinding" || o["kind"] == "ClusterRoleBinding")
        {
            assert_eq!(binding["subjects"][0]["name"], account, "{overlay}");
            let role = binding["roleRef"]["name"].as_str().unwrap_or_default();
            let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
            assert!(
                objects
                    .iter()
                    .any(|o| o["kind"] == role_kind && o["metadata"]["name"] == role),
                "{overlay}: {role_kind} {role} is bound but not installed"
            );
        }
        // Every CRD Federator generates is installed.
        let crds = of_kind(&objects, "CustomResourceDefinition").len();
        assert_eq!(
            crds,
            federator::crdgen::files().expect("CRDs").len(),
            "{overlay}"
        );
    }
}

#[test]
fn rbac_is_least_privilege_for_each_mode_and_scope() {
    if !kubectl_available() {
        eprintln!("skipped: kubectl is not installed (kubectl kustomize renders deploy/)");
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
            assert!(
                !granted.iter().any(|(_, resource, _)| resource == "secrets"),
                "{overlay}: the data plane needs no Secret"
            );
        } else {
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
            // Users create ClientConfigs (federator clientconfig create); the operator only reads.
            assert!(
                !has("config.k8ssandra.io", "clientconfigs", "create"),
                "{overlay}"
            );
        }
    }
}

async fn kubectl(kubeconfig: &Path, cache: &Path, args: &[&str]) -> (bool, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(cache)
            .args(args)
            .output(),
    )
    .await
    .expect("kubectl answers within 60 s")
    .expect("kubectl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_overlay_applies_cleanly_to_a_cluster() {
    if !kubectl_available() {
        eprintln!("skipped: kubectl is not installed (kubectl kustomize renders deploy/)");
        return;
    }
    // One cluster per overlay, without Federator's CRDs: the install brings them.
    let sim = tokio::time::timeout(
        Duration::from_secs(120),
        kube_sim::SimBuilder::new()
            .clusters(OVERLAYS.len())
            .cass_operator(true)
            .start(),
    )
    .await
    .expect("kube-sim starts in time")
    .expect("kube-sim starts");
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
            let (ok, output) = kubectl(
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
        let (ok, output) = kubectl(
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
        let (ok, output) = kubectl(
            &kubeconfig,
            &cache,
            &["--context", &context, "get", "k8ssandraclusters", "-A"],
        )
        .await;
        assert!(
            ok,
            "{overlay}: K8ssandraClusters not served after install: {output}"
        );
        let (ok, output) = kubectl(
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
