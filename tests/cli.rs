//! The `federator` binary as a user runs it.

use std::process::{Command, Output};

fn federator(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_federator"));
    cmd.args(args);
    // A clean environment: only what the test sets, so the developer's FEDERATOR_* never leak in.
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("federator runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn crd_prints_every_installed_crd_as_multi_document_yaml() {
    let out = federator(&["crd"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let yaml = String::from_utf8(out.stdout).expect("utf-8");
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&yaml).expect("multi-document YAML");
    let mut names: Vec<String> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "cassandrabackups.medusa.k8ssandra.io",
            "cassandrarestores.medusa.k8ssandra.io",
            "clientconfigs.config.k8ssandra.io",
            "k8ssandraclusters.k8ssandra.io",
            "k8ssandratasks.control.k8ssandra.io",
            "medusabackupjobs.medusa.k8ssandra.io",
            "medusabackups.medusa.k8ssandra.io",
            "medusabackupschedules.medusa.k8ssandra.io",
            "medusaclusterbackupjobs.medusa.k8ssandra.io",
            "medusaconfigurations.medusa.k8ssandra.io",
            "medusarestorejobs.medusa.k8ssandra.io",
            "medusatasks.medusa.k8ssandra.io",
            "reapers.reaper.k8ssandra.io",
            "replicatedsecrets.replication.k8ssandra.io",
            "stargates.stargate.k8ssandra.io",
        ]
    );
    for doc in &docs {
        assert_eq!(doc["kind"], "CustomResourceDefinition");
        assert_eq!(doc["apiVersion"], "apiextensions.k8s.io/v1");
    }
}

#[test]
fn crd_output_dir_writes_one_file_per_crd_identical_to_crds_folder() {
    let dir = std::env::temp_dir().join(format!("federator-crd-test-{}", std::process::id()));
    let out = federator(
        &["crd", "--output-dir", dir.to_str().expect("utf-8 path")],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let repo_crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut written = 0;
    for entry in std::fs::read_dir(&dir).expect("output dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("file name").to_owned();
        let ours = std::fs::read_to_string(&path).expect("read written");
        let committed = std::fs::read_to_string(repo_crds.join(&name)).unwrap_or_default();
        assert_eq!(ours, committed, "{name:?}");
        written += 1;
    }
    // Fifteen CRDs (six K8ssandra kinds, nine Medusa kinds) and the kustomization.yaml
    // listing them.
    assert_eq!(written, 16);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn crd_reference_writes_the_committed_reference_and_prints_no_crd() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("crd-reference.md");
    let out = federator(
        &["crd", "--reference", path.to_str().expect("utf-8 path")],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("CustomResourceDefinition"), "{stdout}");
    let written = std::fs::read_to_string(&path).expect("reference written");
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/crd-reference.md"),
    )
    .unwrap_or_default();
    assert!(
        written == committed,
        "docs/crd-reference.md is not what --reference writes"
    );
    assert!(written.contains("## K8ssandraCluster"));
}

#[test]
fn run_with_an_invalid_setting_exits_non_zero_naming_setting_and_value() {
    /// (arguments, environment, setting named in the error, value quoted in the error)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 4] = [
        (&["run", "--mode", "hub"], &[], "mode", "hub"),
        (&["run", "--log-format", "xml"], &[], "log_format", "xml"),
        (
            &["run"],
            &[("FEDERATOR_HTTP_ADDR", "nowhere")],
            "http_addr",
            "nowhere",
        ),
        (
            &["run", "--namespace", "Not_A_Namespace"],
            &[],
            "operator_namespace",
            "Not_A_Namespace",
        ),
    ];
    for (args, env, key, value) in cases {
        let out = federator(args, env);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&format!("`{key}`")), "{args:?}: {err}");
        assert!(err.contains(value), "{args:?}: {err}");
    }
}

#[test]
fn run_without_a_reachable_cluster_fails_with_a_clear_message() {
    let kubeconfig = std::env::temp_dir().join(format!("federator-kc-{}.yaml", std::process::id()));
    // Port 9 (discard) on loopback: nothing listens, so the connection is refused at once.
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:9\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: secret-token-value\ncurrent-context: c\n",
    )
    .expect("write kubeconfig");
    let out = federator(
        &["run", "--kubeconfig", kubeconfig.to_str().expect("utf-8")],
        &[],
    );
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("home cluster"), "{err}");
    assert!(
        !err.contains("secret-token-value"),
        "the token leaked: {err}"
    );
    let _ = std::fs::remove_file(&kubeconfig);
}

#[test]
fn status_refuses_an_unknown_output_format() {
    let out = federator(&["status", "-o", "yaml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("expected json"), "{}", stderr(&out));
}

#[test]
fn help_lists_the_commands() {
    let out = federator(&["--help"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    for command in ["run", "crd", "clientconfig", "status"] {
        assert!(text.contains(command), "{text}");
    }
}
