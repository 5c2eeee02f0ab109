//! Drives kube-sim with the real kubectl, oldest (1.27) and newest (1.33) builds.

mod support;

use std::time::Duration;

use kube_sim::SimBuilder;
use kube_sim::prerequisites::kubectl_build;
use serde_json::Value;
use support::{Kubectl, WIDGET_CRD};

const WIDGET_W1: &str = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: default}\nspec: {size: 3}\n";

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

async fn conformance(minor: u32) {
    let Some(binary) = kubectl_build(minor) else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let sim = SimBuilder::new().clusters(1).start().await.expect("starting kube-sim");
    let kubeconfig = work.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let kubectl = Kubectl::new(binary, kubeconfig, work.path());

    // CRD, Established, discovery
    let out = kubectl.ok_with_input(&["apply", "-f", "-"], Some(WIDGET_CRD)).await;
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"),
        "{out}"
    );
    let out = kubectl
        .ok(&[
            "wait",
            "--for=condition=Established",
            "crd/widgets.example.com",
            "--timeout=10s",
        ])
        .await;
    assert!(out.contains("condition met"), "{out}");
    let out = kubectl.ok(&["api-resources", "--api-group=example.com"]).await;
    assert!(
        out.lines().any(|l| l.starts_with("widgets") && l.contains("wd") && l.contains("Widget")),
        "{out}"
    );
    let out = kubectl.ok(&["api-resources"]).await;
    assert!(
        out.contains("deployments") && out.contains("configmaps"),
        "{out}"
    );

    // create, get -o json / jsonpath, table
    let out = kubectl.ok_with_input(&["create", "-f", "-"], Some(WIDGET_W1)).await;
    assert!(out.contains("widget.example.com/w1 created"), "{out}");
    let object = json(&kubectl.ok(&["get", "widget", "w1", "-o", "json"]).await);
    assert_eq!(object["spec"]["size"], 3);
    assert_eq!(object["metadata"]["generation"], 1);
    let out = kubectl.ok(&["get", "wd", "w1", "-o", "jsonpath={.spec.size}"]).await;
    assert_eq!(out, "3");
    let out = kubectl.ok(&["get", "widgets"]).await;
    let header: Vec<&str> = out.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, ["NAME", "SIZE", "READY", "AGE"], "{out}");
    assert!(
        out.lines().nth(1).is_some_and(|l| l.starts_with("w1") && l.contains(" 3 ")),
        "{out}"
    );

    // label, merge patch, JSON patch
    let out = kubectl.ok(&["label", "widget", "w1", "tier=gold"]).await;
    assert!(out.contains("labeled"), "{out}");
    let out = kubectl
        .ok(&[
            "get",
            "widget",
            "w1",
            "-o",
            "jsonpath={.metadata.labels.tier}",
        ])
        .await;
    assert_eq!(out, "gold");
    kubectl
        .ok(&[
            "patch",
            "widget",
            "w1",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"color":"red"}}"#,
        ])
        .await;
    kubectl
        .ok(&[
            "patch",
            "widget",
            "w1",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/size","value":5}]"#,
        ])
        .await;
    let object = json(&kubectl.ok(&["get", "widget", "w1", "-o", "json"]).await);
    assert_eq!(object["spec"]["size"], 5);
    assert_eq!(object["spec"]["color"], "red");
    assert_eq!(object["metadata"]["generation"], 3);

    // client-side apply (create, then a strategic merge patch for a built-in), server-side apply
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: default}\ndata: {a: \"1\"}\n";
    let out = kubectl.ok_with_input(&["apply", "-f", "-"], Some(cm)).await;
    assert!(out.contains("configmap/settings created"), "{out}");
    let cm2 = cm.replace("a: \"1\"", "a: \"2\", b: \"3\"");
    let outcome = kubectl.run_with_input(&["apply", "-f", "-"], Some(&cm2)).await;
    assert!(
        outcome.success && outcome.stdout.contains("configmap/settings configured"),
        "{}{}",
        outcome.stdout,
        outcome.stderr
    );
    assert!(!outcome.stderr.contains("warning"), "{}", outcome.stderr);
    let out = kubectl
        .ok(&[
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.data.a},{.data.b}",
        ])
        .await;
    assert_eq!(out, "2,3");
    let out = kubectl.ok_with_input(&["apply", "-f", "-"], Some(&cm2)).await;
    assert!(out.contains("unchanged"), "{out}");
    let w2 = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2, namespace: default}\nspec: {size: 2}\n";
    let out = kubectl.ok_with_input(&["apply", "--server-side", "-f", "-"], Some(w2)).await;
    assert!(
        out.contains("widget.example.com/w2 serverside-applied"),
        "{out}"
    );
    let out = kubectl
        .ok_with_input(
            &["apply", "--server-side", "-f", "-"],
            Some(&w2.replace("size: 2", "size: 4")),
        )
        .await;
    assert!(out.contains("serverside-applied"), "{out}");
    let object =
        json(&kubectl.ok(&["get", "widget", "w2", "-o", "json", "--show-managed-fields"]).await);
    assert_eq!(object["spec"]["size"], 4);
    let managers: Vec<&str> = object["metadata"]["managedFields"]
        .as_array()
        .map(|m| m.iter().filter_map(|e| e["manager"].as_str()).collect())
        .unwrap_or_default();
    assert!(managers.contains(&"kubectl"), "{managers:?}");

    // replace with a stale resourceVersion
    let stale = kubectl.ok(&["get", "widget", "w1", "-o", "json"]).await;
    kubectl
        .ok(&[
            "patch",
            "widget",
            "w1",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"size":6}}"#,
        ])
        .await;
    let stale_path = tempfile::NamedTempFile::new_in(work.path()).expect("temp file");
    std::fs::write(
        stale_path.path(),
        stale.replace("\"size\": 5", "\"size\": 7"),
    )
    .expect("writing stale");
    let stale_file = stale_path.path().to_string_lossy().into_owned();
    let err = kubectl.fails(&["replace", "-f", &stale_file], None).await;
    assert!(
        err.contains("Operation cannot be fulfilled on widgets.example.com \"w1\": the object has been modified"),
        "{err}"
    );

    // a rejected custom resource, with its field path
    let bad = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: bad, namespace: default}\nspec: {size: 30}\n";
    let err = kubectl.fails(&["create", "-f", "-"], Some(bad)).await;
    assert!(
        err.contains("The Widget \"bad\" is invalid: spec.size: Invalid value: 30"),
        "{err}"
    );
    let bogus = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: bad, namespace: default}\nspec: {size: 1, bogus: true}\n";
    let err = kubectl.fails(&["apply", "-f", "-"], Some(bogus)).await;
    assert!(err.contains("unknown field \"spec.bogus\""), "{err}");

    // get -w: the list, then the change
    let mut watch = kubectl
        .command(&["get", "widgets", "-w", "--output-watch-events"])
        .spawn()
        .expect("spawning kubectl get -w");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    kubectl
        .ok(&[
            "patch",
            "widget",
            "w1",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"size":8}}"#,
        ])
        .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let _ = watch.start_kill();
    let output = tokio::time::timeout(Duration::from_secs(10), watch.wait_with_output())
        .await
        .expect("kubectl get -w ends once killed")
        .expect("kubectl get -w output");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        out.lines().any(|l| l.starts_with("ADDED") && l.contains("w1")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("MODIFIED") && l.contains("w1") && l.contains(" 8 ")),
        "{out}"
    );

    // wait --for=condition: the condition appears a moment later through /status
    let waiter = kubectl
        .command(&[
            "wait",
            "--for=condition=Ready",
            "widget/w1",
            "--timeout=20s",
        ])
        .spawn()
        .expect("spawning kubectl wait");
    tokio::time::sleep(Duration::from_millis(700)).await;
    kubectl
        .ok(&[
            "patch",
            "widget",
            "w1",
            "--subresource=status",
            "--type",
            "merge",
            "-p",
            r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
        ])
        .await;
    let output = tokio::time::timeout(support::KUBECTL_TIMEOUT, waiter.wait_with_output())
        .await
        .expect("kubectl wait timed out")
        .expect("kubectl wait output");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && out.contains("condition met"),
        "{out} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out = kubectl.ok(&["get", "widget", "w1"]).await;
    assert!(
        out.lines().nth(1).is_some_and(|l| l.contains("True")),
        "{out}"
    );

    // delete with a finalizer: the object stays until the finalizer is removed
    let held = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: held, namespace: default, finalizers: [example.com/hold]}\nspec: {size: 1}\n";
    kubectl.ok_with_input(&["create", "-f", "-"], Some(held)).await;
    let out = kubectl.ok(&["delete", "widget", "held", "--wait=false"]).await;
    assert!(out.contains("widget.example.com \"held\" deleted"), "{out}");
    let object = json(&kubectl.ok(&["get", "widget", "held", "-o", "json"]).await);
    assert!(
        object["metadata"]["deletionTimestamp"].is_string(),
        "{object}"
    );
    kubectl
        .ok(&[
            "patch",
            "widget",
            "held",
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ])
        .await;
    let err = kubectl.fails(&["get", "widget", "held"], None).await;
    assert!(
        err.contains("widgets.example.com \"held\" not found"),
        "{err}"
    );
    let out = kubectl.ok(&["delete", "widget", "w2"]).await;
    assert!(out.contains("deleted"), "{out}");

    // typed create commands (kubectl 1.33 sends these as protobuf), and namespace deletion
    let out = kubectl.ok(&["create", "namespace", "scratch"]).await;
    assert!(out.contains("namespace/scratch created"), "{out}");
    kubectl
        .ok(&[
            "create",
            "configmap",
            "cm1",
            "-n",
            "scratch",
            "--from-literal=k=v",
        ])
        .await;
    kubectl
        .ok(&[
            "create",
            "secret",
            "generic",
            "s1",
            "-n",
            "scratch",
            "--from-literal=p=q",
        ])
        .await;
    let out = kubectl
        .ok(&[
            "get",
            "configmap",
            "cm1",
            "-n",
            "scratch",
            "-o",
            "jsonpath={.data.k}",
        ])
        .await;
    assert_eq!(out, "v");
    let out = kubectl
        .ok(&[
            "get",
            "secret",
            "s1",
            "-n",
            "scratch",
            "-o",
            "jsonpath={.data.p} {.type}",
        ])
        .await;
    assert_eq!(out, "cQ== Opaque");
    // a ConfigMap with a finalizer holds the namespace in Terminating
    kubectl
        .ok_with_input(
            &["apply", "-f", "-"],
            Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, namespace: scratch, finalizers: [example.com/hold]}\n"),
        )
        .await;
    let out = kubectl.ok(&["delete", "namespace", "scratch", "--wait=false"]).await;
    assert!(out.contains("namespace \"scratch\" deleted"), "{out}");
    let out = kubectl.ok(&["get", "namespace", "scratch"]).await;
    assert!(
        out.lines().nth(1).is_some_and(|l| l.starts_with("scratch") && l.contains("Terminating")),
        "{out}"
    );
    let err = kubectl
        .fails(
            &[
                "create",
                "configmap",
                "cm2",
                "-n",
                "scratch",
                "--from-literal=k=v",
            ],
            None,
        )
        .await;
    assert!(
        err.contains(
            "unable to create new content in namespace scratch because it is being terminated"
        ),
        "{err}"
    );
    // the namespace controller deletes the rest; the held ConfigMap waits for its finalizer
    let mut remaining = String::new();
    for _ in 0..100 {
        remaining = kubectl.ok(&["get", "configmaps,secrets", "-n", "scratch", "-o", "name"]).await;
        if remaining.trim() == "configmap/held" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(remaining.trim(), "configmap/held");
    kubectl
        .ok(&[
            "patch",
            "configmap",
            "held",
            "-n",
            "scratch",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ])
        .await;
    kubectl.ok(&["wait", "--for=delete", "namespace/scratch", "--timeout=20s"]).await;
    let err = kubectl.fails(&["get", "namespace", "scratch"], None).await;
    assert!(err.contains("namespaces \"scratch\" not found"), "{err}");

    // quantities of built-in kinds read back in canonical form
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - name: web\n        image: web:1\n        resources: {limits: {cpu: 1000m, memory: 1024Mi}, requests: {cpu: '0.5'}}\n";
    let out = kubectl.ok_with_input(&["apply", "-f", "-"], Some(deployment)).await;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let object = json(&kubectl.ok(&["get", "deploy", "web", "-o", "json"]).await);
    assert_eq!(
        object["spec"]["template"]["spec"]["containers"][0]["resources"],
        serde_json::json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}})
    );
    // kubectl's three-way diff sees 1000m against the live 1 and sends a patch each time
    // (kubernetes/kubernetes#116135), which changes nothing on the server
    let out = kubectl.ok_with_input(&["apply", "-f", "-"], Some(deployment)).await;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let again = json(&kubectl.ok(&["get", "deploy", "web", "-o", "json"]).await);
    assert_eq!(again["metadata"]["generation"], 1);
    assert_eq!(
        again["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"],
        serde_json::json!({"cpu": "1", "memory": "1Gi"})
    );

    // authentication failure
    let err = kubectl.fails(&["--token", "not-the-token", "get", "configmaps"], None).await;
    assert!(
        err.contains("error: You must be logged in to the server"),
        "{err}"
    );

    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27_against_kube_sim() {
    conformance(27).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33_against_kube_sim() {
    conformance(33).await;
}
