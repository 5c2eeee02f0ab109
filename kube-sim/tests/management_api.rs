//! The Management API stand-in reached as clients reach the real one: through the API
//! server's pods/proxy subresource (kubectl, kube-rs) and at the pod's own IP on port 8080
//! (a plain HTTP client).
//!
//! The cass-operator stand-in does not start model nodes for its pods yet, so each test makes
//! its pods by hand: the Pod object, its `status.podIP` through the status subresource, and the
//! node in the Sim's shared model.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube_sim::cassandra::{ManagementFault, NodeSpec, PodRef, SystemReplicationProperties};
use kube_sim::{Sim, SimBuilder};
use serde_json::{Value, json};

mod support;
use support::{http, https_get};

const NAMESPACE: &str = "cass";
const CLUSTER: &str = "demo";

async fn start(builder: SimBuilder) -> Sim {
    tokio::time::timeout(Duration::from_secs(60), builder.clusters(1).start())
        .await
        .expect("starts in time")
        .expect("starts")
}

/// A pod address in 127.0.0.0/8 that other test processes on this machine are unlikely to use.
fn pod_ip(host: u8) -> String {
    let pid = std::process::id();
    format!("127.{}.{}.{host}", 100 + pid % 100, (pid / 100) % 250)
}

/// A Cassandra pod as cass-operator makes one (the `mgmt-api-http` port first), its IP set
/// through the status subresource, and its node started in the model.
async fn cassandra_pod(sim: &Sim, name: &str, ip: &str, replication: &str) -> PodRef {
    let client = sim.client(0).await.expect("client");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let namespace =
        serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).expect("namespace");
    let _ = namespaces.create(&PostParams::default(), &namespace).await;
    let pods: Api<Pod> = Api::namespaced(client, NAMESPACE);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"cassandra.datastax.com/cluster": CLUSTER}},
        "spec": {"containers": [{
            "name": "cassandra",
            "image": "k8ssandra/cass-management-api:4.0.17",
            "ports": [
                {"name": "mgmt-api-http", "containerPort": 8080},
                {"name": "native", "containerPort": 9042},
            ],
        }]},
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod).await.expect("pod created");
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}})),
    )
    .await
    .expect("pod IP set");
    let pod = PodRef::new(sim.context_name(0), NAMESPACE, name);
    let mut spec = NodeSpec::new(CLUSTER, pod.clone(), ip, "dc1", "r1");
    spec.system_replication = SystemReplicationProperties::dc_rf(replication);
    sim.cassandra().lock().start_node(spec).expect("node starts");
    pod
}

/// kubectl is the real client these tests check kube-sim against: without it they fail,
/// rather than pass having checked nothing.
fn require_kubectl() {
    let installed = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(installed, "kubectl is not installed (see README.md)");
}

/// `kubectl --kubeconfig K get --raw PATH`: (success, stdout, stderr).
async fn kubectl_raw(kubeconfig: &std::path::Path, path: &str) -> (bool, String, String) {
    let cache = kubeconfig.with_extension("cache");
    let output = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(["get", "--raw", path])
        .output()
        .await
        .expect("kubectl runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn proxy_path(pod: &str, rest: &str) -> String {
    format!("/api/v1/namespaces/{NAMESPACE}/pods/{pod}/proxy{rest}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_system_auth_replication_through_the_pod_proxy() {
    require_kubectl();
    let sim = start(SimBuilder::new()).await;
    cassandra_pod(&sim, "demo-dc1-r1-sts-0", &pod_ip(1), "dc1:1").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");

    let path = proxy_path(
        "demo-dc1-r1-sts-0:8080",
        "/api/v0/ops/keyspace/replication?keyspaceName=system_auth",
    );
    let (ok, stdout, stderr) = kubectl_raw(&kubeconfig, &path).await;
    assert!(ok, "{stderr}");
    let replication: Value = serde_json::from_str(&stdout).expect("JSON");
    let expected = sim.cassandra().lock().replication(CLUSTER, "system_auth").expect("model");
    assert_eq!(replication, json!(expected));
    assert_eq!(
        replication,
        json!({"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "dc1": "1"})
    );

    // Without a port, the pod's first container port (8080 here).
    let readiness = proxy_path("demo-dc1-r1-sts-0", "/api/v0/probes/readiness");
    let (ok, stdout, stderr) = kubectl_raw(&kubeconfig, &readiness).await;
    assert!(ok && stdout == "OK", "{stdout} {stderr}");

    let closed_port = proxy_path("demo-dc1-r1-sts-0:9999", "/");
    let (ok, _, stderr) = kubectl_raw(&kubeconfig, &closed_port).await;
    let refused = format!(
        "Error from server (ServiceUnavailable): error trying to reach service: dial tcp {}:9999: connect: connection refused",
        pod_ip(1)
    );
    assert!(!ok && stderr.contains(&refused), "{stderr}");

    let (ok, _, stderr) = kubectl_raw(&kubeconfig, &proxy_path("nope:8080", "/")).await;
    assert!(
        !ok && stderr.contains("Error from server (NotFound): pods \"nope\" not found"),
        "{stderr}"
    );

    let (ok, stdout, stderr) = kubectl_raw(&kubeconfig, "/api/v1").await;
    assert!(ok, "{stderr}");
    let resources: Value = serde_json::from_str(&stdout).expect("JSON");
    let proxy = resources["resources"]
        .as_array()
        .and_then(|list| list.iter().find(|r| r["name"] == "pods/proxy"))
        .cloned()
        .expect("pods/proxy is discoverable");
    assert_eq!(
        proxy["verbs"],
        json!(["create", "delete", "get", "patch", "update"])
    );
    let counted = sim.requests(0).expect("requests").into_iter().any(|count| {
        count.resource == "pods/proxy" && count.verb == "get" && count.namespace == NAMESPACE
    });
    assert!(counted, "proxy requests are counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pod_proxy_needs_rbac_on_pods_proxy() {
    require_kubectl();
    let sim = start(SimBuilder::new().rbac(true)).await;
    cassandra_pod(&sim, "demo-dc1-r1-sts-0", &pod_ip(2), "dc1:1").await;
    let admin = sim.client(0).await.expect("client");
    let roles: Api<kube::api::DynamicObject> = Api::namespaced_with(
        admin.clone(),
        NAMESPACE,
        &kube::api::ApiResource::erase::<k8s_openapi::api::rbac::v1::Role>(&()),
    );
    let role = |resources: Value| -> kube::api::DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "pod-reader", "namespace": NAMESPACE},
            "rules": [{"apiGroups": [""], "resources": resources, "verbs": ["get", "list"]}],
        }))
        .expect("role")
    };
    let apply = PatchParams::apply("management-api-test").force();
    roles.patch("pod-reader", &apply, &Patch::Apply(&role(json!(["pods"])))).await.expect("role");
    let bindings: Api<kube::api::DynamicObject> = Api::namespaced_with(
        admin,
        NAMESPACE,
        &kube::api::ApiResource::erase::<k8s_openapi::api::rbac::v1::RoleBinding>(&()),
    );
    let binding: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "jane-reads-pods", "namespace": NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}],
    }))
    .expect("binding");
    bindings.patch("jane-reads-pods", &apply, &Patch::Apply(&binding)).await.expect("binding");

    let certificate = sim.issue_client_certificate("jane", &[]).expect("certificate");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("jane");
    let yaml = sim.client_certificate_kubeconfig_yaml(0, &certificate).expect("kubeconfig");
    std::fs::write(&kubeconfig, yaml).expect("kubeconfig written");

    let readiness = proxy_path("demo-dc1-r1-sts-0:8080", "/api/v0/probes/readiness");
    let (ok, _, stderr) = kubectl_raw(&kubeconfig, &readiness).await;
    assert!(
        !ok && stderr.contains(
            "pods \"demo-dc1-r1-sts-0:8080\" is forbidden: User \"jane\" cannot get resource \"pods/proxy\" in API group \"\" in the namespace \"cass\""
        ),
        "{stderr}"
    );

    roles
        .patch(
            "pod-reader",
            &apply,
            &Patch::Apply(&role(json!(["pods", "pods/proxy"]))),
        )
        .await
        .expect("role widened");
    let (ok, stdout, stderr) = kubectl_raw(&kubeconfig, &readiness).await;
    assert!(ok && stdout == "OK", "{stdout} {stderr}");
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_api_answers_at_the_pod_ip_while_the_pod_and_node_exist() {
    let sim = start(SimBuilder::new().pod_listeners(true)).await;
    let ip = pod_ip(3);
    let pod = cassandra_pod(&sim, "demo-dc1-r1-sts-0", &ip, "dc1:1").await;
    let network = sim.pod_network();
    let address = format!("{ip}:8080");
    let listening =
        || network.listening().into_iter().map(|(_, a)| a.to_string()).collect::<Vec<_>>();
    // The Pod watch and the model poll bind it without being told.
    wait_until("the listener is bound", || {
        listening() == vec![address.clone()]
    })
    .await;

    let (status, body) =
        http(&address, "GET", "/api/v0/probes/readiness", None).await.expect("readiness");
    assert_eq!((status, body.as_str()), (200, "OK"));
    let create = json!({
        "keyspace_name": "app",
        "replication_settings": [{"dc_name": "dc1", "replication_factor": 1}],
    });
    let (status, body) = http(
        &address,
        "POST",
        "/api/v0/ops/keyspace/create",
        Some(create),
    )
    .await
    .expect("create");
    assert_eq!((status, body.as_str()), (200, "OK"));
    let (status, body) = http(
        &address,
        "GET",
        "/api/v0/ops/keyspace/replication?keyspaceName=app",
        None,
    )
    .await
    .expect("replication");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("JSON"),
        json!({"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "dc1": "1"})
    );

    // PodNetwork::resync binds at once, without waiting for the watch or the poll.
    let other_ip = pod_ip(7);
    cassandra_pod(&sim, "demo-dc1-r1-sts-1", &other_ip, "dc1:1").await;
    network.resync();
    let (status, _) = http(
        &format!("{other_ip}:8080"),
        "GET",
        "/api/v0/probes/liveness",
        None,
    )
    .await
    .expect("liveness");
    assert_eq!(status, 200);

    // The listener goes with the pod.
    let pods: Api<Pod> = Api::namespaced(sim.client(0).await.expect("client"), NAMESPACE);
    pods.delete(&pod.name, &DeleteParams::default()).await.expect("pod deleted");
    sim.cassandra().lock().remove_node(&pod).expect("node gone with its pod");
    wait_until("the listener is gone", || !listening().contains(&address)).await;
    let refused = http(&address, "GET", "/api/v0/probes/liveness", None).await;
    assert!(refused.is_err(), "nothing listens any more: {refused:?}");

    sim.shutdown().await;
    assert!(
        network.listening().is_empty(),
        "shutdown closes the listeners"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_job_completes_when_the_model_clock_moves() {
    let sim = start(SimBuilder::new()).await;
    cassandra_pod(&sim, "demo-dc1-r1-sts-0", &pod_ip(4), "dc1:2").await;
    cassandra_pod(&sim, "demo-dc1-r1-sts-1", &pod_ip(5), "dc1:2").await;
    sim.cassandra().lock().set_job_duration_millis(30_000);
    let client = sim.client(0).await.expect("client");
    let rebuild = hyper::Request::post(proxy_path(
        "demo-dc1-r1-sts-1:8080",
        "/api/v1/ops/node/rebuild?src_dc=dc1",
    ))
    .body(Vec::new())
    .expect("request");
    let job_id = client.request_text(rebuild).await.expect("rebuild accepted");
    let job_path = proxy_path(
        "demo-dc1-r1-sts-1:8080",
        &format!("/api/v0/ops/executor/job?job_id={job_id}"),
    );
    let job = || async {
        let request = hyper::Request::get(job_path.as_str()).body(Vec::new()).expect("request");
        client.request::<Value>(request).await.expect("job")
    };
    let waiting = job().await;
    assert_eq!(
        (waiting["type"].as_str(), waiting["status"].as_str()),
        (Some("rebuild"), Some("WAITING"))
    );

    sim.cassandra().lock().advance_millis(30_000);
    let done = job().await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_api_fails_with_its_fault_then_recovers() {
    let sim = start(SimBuilder::new()).await;
    let pod = cassandra_pod(&sim, "demo-dc1-r1-sts-0", &pod_ip(6), "dc1:1").await;
    let client = sim.client(0).await.expect("client");
    let readiness = || {
        hyper::Request::get(proxy_path(
            "demo-dc1-r1-sts-0:8080",
            "/api/v0/probes/readiness",
        ))
        .body(Vec::new())
        .expect("request")
    };
    let failing = ManagementFault {
        fail_status: Some(500),
        delay_millis: 0,
    };
    sim.cassandra().lock().set_management_fault(&pod, failing).expect("fault set");
    match client.request_text(readiness()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 500),
        other => panic!("expected the injected 500, got {other:?}"),
    }
    sim.cassandra()
        .lock()
        .set_management_fault(&pod, ManagementFault::default())
        .expect("fault cleared");
    assert_eq!(
        client.request_text(readiness()).await.expect("ready again"),
        "OK"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_mutual_tls_answers_only_clients_with_a_certificate_of_its_ca() {
    let sim = start(SimBuilder::new().pod_listeners(true)).await;
    let ip = pod_ip(11);
    let pod = cassandra_pod(&sim, "demo-dc1-r1-sts-0", &ip, "dc1:1").await;
    let certificates =
        kube_sim::tls::ManagementApiCertificates::generate("demo-dc1-service").expect("certs");
    let tls = kube_sim::cassandra::ManagementTls {
        certificate_pem: certificates.server.certificate_pem.clone().into_bytes(),
        key_pem: certificates.server.key_pem.clone().into_bytes(),
        ca_pem: certificates.ca_pem.clone().into_bytes(),
    };
    sim.cassandra().lock().set_management_tls(&pod, Some(tls)).expect("tls");
    sim.pod_network().resync();
    let address = format!("{ip}:8080");

    let answered = https_get(
        &address,
        "demo-dc1-service",
        "/api/v0/probes/readiness",
        &certificates.ca_pem,
        Some(&certificates.client),
    )
    .await;
    assert_eq!(answered, Ok((200, "OK".to_string())));
    // Without a client certificate, or with one of another CA, the handshake fails.
    let anonymous = https_get(
        &address,
        "demo-dc1-service",
        "/api/v0/probes/readiness",
        &certificates.ca_pem,
        None,
    )
    .await;
    assert!(anonymous.is_err(), "{anonymous:?}");
    let stranger =
        kube_sim::tls::ManagementApiCertificates::generate("demo-dc1-service").expect("certs");
    let foreign = https_get(
        &address,
        "demo-dc1-service",
        "/api/v0/probes/readiness",
        &certificates.ca_pem,
        Some(&stranger.client),
    )
    .await;
    assert!(foreign.is_err(), "{foreign:?}");
    // Plain HTTP gets no HTTP answer, and neither does the API server's proxy.
    let plain = http(&address, "GET", "/api/v0/probes/readiness", None).await;
    assert!(plain.is_err(), "{plain:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let path = proxy_path("demo-dc1-r1-sts-0:8080", "/api/v0/probes/readiness");
    let (ok, _, stderr) = kubectl_raw(&kubeconfig, &path).await;
    assert!(
        !ok,
        "the proxy reached an agent that requires a client certificate"
    );
    assert!(
        stderr.contains("error trying to reach service")
            && stderr.contains("malformed HTTP response"),
        "{stderr}"
    );
    sim.shutdown().await;
}
