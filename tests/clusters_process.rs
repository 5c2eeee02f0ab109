//! The real binaries against kube-sim: `federator run` as a child process (JSON debug logs on
//! stderr) and `federator clientconfig create` as a user runs it.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use support::*;

/// Runs `federator clientconfig create` for `context` against the sim; returns (success,
/// stdout, stderr).
async fn clientconfig_create(
    kubeconfig: &Path,
    context: &str,
    extra: &[&str],
) -> (bool, String, String) {
    let kubeconfig = kubeconfig.to_str().expect("UTF-8 path");
    let mut args = vec![
        "clientconfig",
        "create",
        "--src-kubeconfig",
        kubeconfig,
        "--src-context",
        context,
        "--kubeconfig",
        kubeconfig,
        "--context",
        "sim-0",
        "--namespace",
        NS,
    ];
    args.extend(extra);
    run_federator(args, Duration::from_secs(60)).await
}

async fn stored_kubeconfig(hub: &kube::Client, secret: &str) -> String {
    let secret = Api::<Secret>::namespaced(hub.clone(), NS)
        .get(secret)
        .await
        .expect("Secret written by clientconfig create");
    let data = secret.data.unwrap_or_default();
    String::from_utf8(data.get("kubeconfig").expect("kubeconfig key").0.clone()).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_token_then_clientconfig_create_again_works_in_the_same_process_and_logs_hold_no_token()
 {
    let sim = start_sim(3).hub_namespaces_only().await;
    let hub = sim.client(0).await.expect("hub");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = write_kubeconfig(&sim, dir.path());
    let mut operator = OperatorProcess::start(&kubeconfig, &["--log-level", "debug"]);
    let pid = operator.child.id();

    // Registered after the operator started.
    for context in ["sim-1", "sim-2"] {
        let (ok, stdout, stderr) = clientconfig_create(&kubeconfig, context, &[]).await;
        assert!(ok, "clientconfig create {context}: {stderr}");
        assert!(
            stdout.contains(&format!("clientconfig {NS}/{context} configured")),
            "{stdout}"
        );
        assert!(!stdout.contains(&sim.token(1)) && !stderr.contains(&sim.token(1)));
    }
    for context in ["sim-1", "sim-2"] {
        let (status, after) = timed(wait_for_ready(
            &hub,
            context,
            "True",
            "Reachable",
            Duration::from_secs(20),
        ))
        .await;
        eprintln!("measured: {context} Ready {after:?} after clientconfig create");
        assert_eq!(status.reachable, Some(true));
    }
    let stored = stored_kubeconfig(&hub, "sim-1-config").await;
    assert!(stored.contains("current-context: sim-1"), "{stored}");
    assert!(!stored.contains("sim-2"), "only the one context is stored");

    // Bad kubeconfigs carrying tokens: refused, and their tokens must not be logged either.
    let planted = "planted-token-0123456789";
    let ca = base64::engine::general_purpose::STANDARD.encode(sim.ca_pem());
    let bad = [
        ("leaky-yaml", format!("users: [ {{ token: {planted}-a")),
        (
            "leaky-exec",
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\ncontexts:\n- name: leaky-exec\n  context: {{cluster: c, user: u}}\nusers:\n- name: u\n  user:\n    token: {planted}-b\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/echo\n      args: [{planted}-c]\n",
                sim.url(2)
            ),
        ),
    ];
    for (name, text) in &bad {
        let secret = format!("{name}-config");
        put_secret(&hub, &secret, &[("kubeconfig", text.as_bytes())]).await;
        put_client_config(&hub, name, name, &secret).await;
    }
    wait_for_ready(
        &hub,
        "leaky-yaml",
        "False",
        "KubeconfigInvalid",
        Duration::from_secs(10),
    )
    .await;
    wait_for_ready(
        &hub,
        "leaky-exec",
        "False",
        "ExecCredentialsRefused",
        Duration::from_secs(10),
    )
    .await;

    // The region's token rotates: the operator sees the credentials rejected...
    let old_token = sim.token(1);
    sim.rotate_token(1).expect("rotate"); // also rewrites the kubeconfig file
    wait_for_ready(
        &hub,
        "sim-1",
        "False",
        "CredentialsRejected",
        Duration::from_secs(10),
    )
    .await;
    // ...and running clientconfig create again brings it back, in place, in the same process.
    let rerun = Instant::now();
    let (ok, _, stderr) = clientconfig_create(&kubeconfig, "sim-1", &[]).await;
    assert!(ok, "{stderr}");
    let status = wait_for_ready(&hub, "sim-1", "True", "Reachable", Duration::from_secs(10)).await;
    let recovered_after = rerun.elapsed();
    eprintln!(
        "measured: region working again {recovered_after:?} after clientconfig create was re-run"
    );
    assert!(recovered_after <= Duration::from_secs(10));
    assert_eq!(status.reachable, Some(true));
    assert!(operator.still_running(), "the operator never restarted");
    assert_eq!(operator.child.id(), pid);
    let stored = stored_kubeconfig(&hub, "sim-1-config").await;
    assert!(stored.contains(&sim.token(1)) && !stored.contains(&old_token));
    let client_configs =
        Api::<federator::api::client_config::ClientConfig>::namespaced(hub.clone(), NS)
            .list(&Default::default())
            .await
            .expect("list");
    assert_eq!(
        client_configs
            .items
            .iter()
            .filter(|cc| cc.spec.context_name.as_deref() == Some("sim-1"))
            .count(),
        1,
        "re-running updates in place"
    );

    let logs = operator.kill_for_logs();
    assert!(
        logs.lines().count() > 20,
        "debug logs were captured:\n{logs}"
    );
    assert!(
        logs.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "every line is JSON"
    );
    assert!(logs.contains("region reachable"), "{logs}");
    let secrets = [
        sim.token(0),
        sim.token(1),
        sim.token(2),
        old_token,
        planted.to_string(),
    ];
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a token appears in the operator's logs"
        );
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_plane_mode_starts_no_client_config_controller() {
    let sim = start_sim(2).hub_namespaces_only().await;
    let hub = sim.client(0).await.expect("hub");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = write_kubeconfig(&sim, dir.path());
    let mut operator = OperatorProcess::start(
        &kubeconfig,
        &["--log-level", "debug", "--mode", "data-plane"],
    );
    register_region(&sim, &hub, 1).await;
    // Long enough for a control plane to have written the status many times over.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(operator.still_running(), "{}", operator.logs());
    assert_eq!(status_of(&hub, "sim-1").await, None);
    let logs = operator.kill_for_logs();
    assert!(logs.contains("controllers started"), "{logs}");
    assert!(!logs.contains("ClientConfig controller started"), "{logs}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clientconfig_create_with_a_service_account_stores_its_token() {
    let sim = start_sim(2).hub_namespaces_only().await;
    let hub = sim.client(0).await.expect("hub");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = write_kubeconfig(&sim, dir.path());
    let (ok, stdout, stderr) = clientconfig_create(
        &kubeconfig,
        "sim-1",
        &[
            "--service-account",
            "federator",
            "--name",
            "east",
            "--server",
            &sim.url(1),
        ],
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("clientconfig {NS}/east configured")),
        "{stdout}"
    );

    // In the region: the service account and its token Secret, filled by the token controller.
    let region = sim.client(1).await.expect("region");
    let token_secret = Api::<Secret>::namespaced(region.clone(), NS)
        .get("federator-token")
        .await
        .expect("token Secret in the region");
    let token = String::from_utf8(
        token_secret.data.unwrap_or_default().get("token").expect("token").0.clone(),
    )
    .expect("utf-8");
    Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(region.clone(), NS)
        .get("federator")
        .await
        .expect("service account in the region");
    // The data plane's RBAC, bound to that service account.
    let role = Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(region.clone())
        .get(federator::clusters::create::REGION_CLUSTER_ROLE)
        .await
        .expect("ClusterRole in the region");
    assert!(!role.rules.unwrap_or_default().is_empty());
    let bindings = Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(region)
        .list(&Default::default())
        .await
        .expect("ClusterRoleBindings");
    assert!(
        bindings.items.iter().any(|b| {
            b.role_ref.name == federator::clusters::create::REGION_CLUSTER_ROLE
                && b.subjects
                    .iter()
                    .flatten()
                    .any(|s| s.kind == "ServiceAccount" && s.name == "federator")
        }),
        "the ClusterRole is bound to the service account"
    );
    assert!(!stderr.contains("rbac.authorization.k8s.io"), "{stderr}");
    assert!(!stderr.contains(&token), "the token is not printed");

    // In the hub: the kubeconfig uses the service account's token, not the caller's.
    let stored = stored_kubeconfig(&hub, "east-config").await;
    assert!(
        stored.contains(&token),
        "the service account's token is stored"
    );
    assert!(!stored.contains(&sim.token(1)), "the caller's token is not");
    // And the region accepts that token.
    let stored_config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&stored).expect("stored kubeconfig parses"),
        &Default::default(),
    )
    .await
    .expect("stored kubeconfig is usable");
    let as_service_account = kube::Client::try_from(stored_config).expect("client");
    Api::<k8s_openapi::api::core::v1::Namespace>::all(as_service_account)
        .list(&Default::default())
        .await
        .expect("the region answers the service account");
    let cc = Api::<federator::api::client_config::ClientConfig>::namespaced(hub, NS)
        .get("east")
        .await
        .expect("ClientConfig east");
    assert_eq!(cc.spec.context_name.as_deref(), Some("sim-1"));
    assert_eq!(cc.spec.kube_config_secret.name, "east-config");
    sim.shutdown().await;
}
