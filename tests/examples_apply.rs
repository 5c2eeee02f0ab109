//! examples/: every manifest a user copies is accepted by the API server with Federator's CRDs
//! (and cass-operator's), with `kubectl apply` as the user runs it, and nothing in it is dropped:
//! a field the schema does not know would be refused (strict field validation) or pruned.

mod support;

use std::path::PathBuf;

use serde_json::Value;
use support::*;

/// Where `expected` (from the example) is not found in `stored` (what the API server kept).
fn missing_from(expected: &Value, stored: &Value, path: &str, found: &mut Vec<String>) {
    match (expected, stored) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, value) in want {
                match have.get(key) {
                    Some(kept) => missing_from(value, kept, &format!("{path}.{key}"), found),
                    None => found.push(format!("{path}.{key}")),
                }
            }
        }
        (Value::Array(want), Value::Array(have)) if want.len() == have.len() => {
            for (index, (value, kept)) in want.iter().zip(have).enumerate() {
                missing_from(value, kept, &format!("{path}[{index}]"), found);
            }
        }
        (want, have) if want == have => {}
        (want, have) => found.push(format!("{path}: {want} became {have}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_is_accepted_whole() {
    if !kube_sim::prerequisites::kubectl() {
        return;
    }
    let sim = launch(
        kube_sim::SimBuilder::new()
            .clusters(3)
            .context_prefix("region-")
            .crd_dir(federator_crds())
            .crd_dir(cass_operator_crds()),
    )
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let cache = dir.path().join("cache");
    // The operator's namespace, as an install creates it (deploy/base).
    let (ok, _, err) = kubectl(
        &kubeconfig,
        &cache,
        &[
            "--context",
            "region-0",
            "create",
            "namespace",
            "k8ssandra-operator",
        ],
    )
    .await;
    assert!(ok, "{err}");

    let mut examples: Vec<PathBuf> = std::fs::read_dir(repo_path("examples"))
        .expect("examples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    examples.sort();
    let names: Vec<String> = examples
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for expected in [
        "single-region.yaml",
        "multi-region.yaml",
        "with-stargate-reaper-telemetry.yaml",
        "replicated-secret.yaml",
        "client-config.yaml",
        "k8ssandra-task.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "examples/{expected} is missing"
        );
    }

    for example in &examples {
        let name = example.display().to_string();
        let (ok, out, err) = kubectl(
            &kubeconfig,
            &cache,
            &["--context", "region-0", "apply", "-f", &name],
        )
        .await;
        assert!(ok, "{name} was refused:\n{out}{err}");
        assert!(
            !err.contains("Warning"),
            "{name}: the API server warned:\n{err}"
        );

        let text = std::fs::read_to_string(example).expect("read example");
        let documents: Vec<Value> = serde_saphyr::from_multiple(&text).expect("example parses");
        for document in documents.iter().filter(|d| !d.is_null()) {
            let kind = document["kind"].as_str().expect("kind");
            let object = document["metadata"]["name"].as_str().expect("name");
            let namespace = document["metadata"]["namespace"].as_str().unwrap_or("default");
            let (ok, stored, err) = kubectl(
                &kubeconfig,
                &cache,
                &[
                    "--context",
                    "region-0",
                    "get",
                    &kind.to_ascii_lowercase(),
                    object,
                    "-n",
                    namespace,
                    "-o",
                    "json",
                ],
            )
            .await;
            assert!(ok, "{name}: {kind} {object} not stored: {err}");
            if kind == "Secret" {
                // stringData is write-only: the API server stores it as data.
                continue;
            }
            let stored: Value = serde_json::from_str(&stored).expect("stored JSON");
            let mut missing = Vec::new();
            missing_from(&document["spec"], &stored["spec"], "spec", &mut missing);
            assert!(
                missing.is_empty(),
                "{name}: {kind} {object} lost fields on the way in:\n{}",
                missing.join("\n")
            );
        }
    }
    sim.shutdown().await;
}
