//! The cluster registry and the ClientConfig controller, in process, against three kube-sim
//! clusters (cluster 0 is the hub): hot reload, health probing, and refused kubeconfigs.

mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use federator::api::k8ssandra_cluster::K8ssandraCluster;
use federator::clusters::controller;
use federator::clusters::{KubeconfigPolicy, RegionError, Registry};
use federator::federation::referenced::{ReferencedConfigMaps, RegionConfigMap};
use federator::operator::shutdown_on;
use federator::settings::RegionSettings;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::reflector::ObjectRef;
use kube_sim::Sim;
use support::*;

const PROBE_INTERVAL: Duration = Duration::from_secs(1);

fn settings() -> RegionSettings {
    RegionSettings {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        max_concurrent_requests: 8,
        probe_interval: PROBE_INTERVAL,
        probe_failure_threshold: 1,
        allow_insecure_skip_tls_verify: false,
    }
}

/// The ClientConfig controller running in this process; stops when dropped.
struct Running {
    registry: Registry,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start_controller(sim: &Sim) -> Running {
    let hub = sim.client(0).await.expect("hub client");
    let ops = federator::ops::Ops::new();
    let registry = Registry::new(hub.clone(), settings(), ops.metrics.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(controller::run(
        hub,
        NS.to_string(),
        registry.clone(),
        KubeconfigPolicy::default(),
        federator::ops::WriteFence::new(),
        ops,
        shutdown_on(async move {
            let _ = stopped.await;
        }),
    ));
    Running {
        registry,
        stop: Some(stop),
    }
}

async fn usable(registry: &Registry, context: &str) -> Option<()> {
    let client = registry.client(context).ok()?;
    can_list_namespaces(&client).await.then_some(())
}

/// Puts the simulator's current kubeconfig (after a token rotation) in region 1's Secret and
/// waits until the registry's client for it works again.
async fn put_current_kubeconfig(sim: &Sim, hub: &kube::Client, registry: &Registry) {
    put_secret(
        hub,
        "sim-1-config",
        &[("kubeconfig", sim.kubeconfig_yaml().as_bytes())],
    )
    .await;
    wait_for("sim-1 usable again", Duration::from_secs(10), || {
        usable(registry, "sim-1")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_config_created_after_start_is_used_then_reloaded_then_removed() {
    let sim = start_sim(3).await;
    let hub = sim.client(0).await.expect("hub");
    let running = start_controller(&sim).await;
    let registry = &running.registry;
    assert!(matches!(
        registry.region("sim-1"),
        Err(RegionError::UnknownContext { .. })
    ));
    assert!(registry.region("").is_ok(), "the hub is always there");

    // Created after the controller started: usable without any restart.
    register_region(&sim, &hub, 1).await;
    let (_, usable_after) = timed(wait_for(
        "region sim-1 usable",
        Duration::from_secs(10),
        || usable(registry, "sim-1"),
    ))
    .await;
    let status = wait_for_ready(&hub, "sim-1", "True", "Reachable", Duration::from_secs(10)).await;
    eprintln!("measured: a new ClientConfig was usable after {usable_after:?}");
    assert_eq!(status.reachable, Some(true));
    assert!(status.server_version.is_some(), "{status:?}");
    assert!(status.last_successful_contact.is_some(), "{status:?}");
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        condition(&status, "Degraded").map(|(s, r, _)| (s, r)),
        Some(("False".into(), "AsExpected".into()))
    );
    assert_eq!(registry.contexts(), ["sim-1"]);

    // Steady state: probes go on every second, the ClientConfig is not written.
    let client_configs =
        kube::Api::<federator::api::client_config::ClientConfig>::namespaced(hub.clone(), NS);
    let version = |cc: federator::api::client_config::ClientConfig| cc.metadata.resource_version;
    let before = version(client_configs.get("sim-1").await.expect("get"));
    tokio::time::sleep(3 * PROBE_INTERVAL).await;
    let after = version(client_configs.get("sim-1").await.expect("get"));
    assert_eq!(before, after, "no status write while nothing changes");

    // The client reaches cluster 1, not the hub.
    let marker = "only-in-cluster-1";
    let region1 = sim.client(1).await.expect("client 1");
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(region1)
        .create(
            &Default::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": marker}}))
                .expect("namespace"),
        )
        .await
        .expect("create namespace in cluster 1");
    let via_registry = registry.client("sim-1").expect("client");
    assert!(
        kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(via_registry)
            .get_opt(marker)
            .await
            .expect("get")
            .is_some()
    );

    // The token rotates: the prober sees 401, callers get Unavailable at once.
    sim.rotate_token(1).expect("rotate");
    let (_, rejected_after) = timed(wait_for(
        "sim-1 unavailable",
        Duration::from_secs(5),
        || async {
            matches!(
                registry.region("sim-1"),
                Err(RegionError::Unavailable { .. })
            )
            .then_some(())
        },
    ))
    .await;
    wait_for_ready(
        &hub,
        "sim-1",
        "False",
        "CredentialsRejected",
        Duration::from_secs(5),
    )
    .await;
    // The Secret gets the new kubeconfig: the client is replaced in place.
    let replaced = Instant::now();
    put_current_kubeconfig(&sim, &hub, registry).await;
    let reloaded_after = replaced.elapsed();
    wait_for_ready(&hub, "sim-1", "True", "Reachable", Duration::from_secs(10)).await;
    eprintln!(
        "measured: rotated token rejected after {rejected_after:?}; new Secret usable after {reloaded_after:?}"
    );

    // Deleted: gone from the registry.
    delete_client_config(&hub, "sim-1").await;
    let (_, removed_after) = timed(wait_for(
        "sim-1 removed",
        Duration::from_secs(10),
        || async {
            matches!(
                registry.region("sim-1"),
                Err(RegionError::UnknownContext { .. })
            )
            .then_some(())
        },
    ))
    .await;
    eprintln!("measured: a deleted ClientConfig left the registry after {removed_after:?}");
    assert!(registry.contexts().is_empty());
    drop(running);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_region_is_unreachable_within_two_probe_intervals_and_others_keep_working() {
    let sim = start_sim(3).await;
    let hub = sim.client(0).await.expect("hub");
    let running = start_controller(&sim).await;
    let registry = &running.registry;
    register_region(&sim, &hub, 1).await;
    register_region(&sim, &hub, 2).await;
    for context in ["sim-1", "sim-2"] {
        wait_for_ready(&hub, context, "True", "Reachable", Duration::from_secs(10)).await;
    }

    sim.stop(1).expect("stop");
    let stopped = Instant::now();
    let status = wait_for_ready(
        &hub,
        "sim-1",
        "False",
        "Unreachable",
        Duration::from_secs(10),
    )
    .await;
    let detected_after = stopped.elapsed();
    eprintln!(
        "measured: stopped region shown unreachable after {detected_after:?} (probe interval {PROBE_INTERVAL:?})"
    );
    assert!(
        detected_after <= 2 * PROBE_INTERVAL,
        "took {detected_after:?}, more than two probe intervals"
    );
    assert_eq!(status.reachable, Some(false));
    assert!(
        status.message.as_deref().unwrap_or("").contains(&sim.url(1)),
        "{status:?}"
    );
    assert_eq!(
        condition(&status, "Degraded").map(|c| c.0),
        Some("True".into())
    );

    // Callers of the stopped region are told at once; the other region keeps answering.
    for _ in 0..5 {
        let asked = Instant::now();
        let error = registry.region("sim-1").expect_err("unavailable");
        assert!(asked.elapsed() < Duration::from_millis(50));
        assert!(matches!(error, RegionError::Unavailable { .. }), "{error}");
        assert!(
            usable(registry, "sim-2").await.is_some(),
            "sim-2 keeps working"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    sim.start(1).await.expect("start");
    let started = Instant::now();
    let status = wait_for_ready(&hub, "sim-1", "True", "Reachable", Duration::from_secs(15)).await;
    eprintln!(
        "measured: restarted region reachable again after {:?}",
        started.elapsed()
    );
    assert_eq!(status.reachable, Some(true));
    assert_eq!(status.message, None);
    wait_for("sim-1 usable again", Duration::from_secs(5), || {
        usable(registry, "sim-1")
    })
    .await;
    drop(running);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_holds_one_http2_connection_for_its_watches_requests_and_probes() {
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
    use kube::api::{Api, ListParams, WatchParams};

    let sim = start_sim(2).await;
    let hub = sim.client(0).await.expect("hub");
    let running = start_controller(&sim).await;
    register_region(&sim, &hub, 1).await;
    wait_for_ready(&hub, "sim-1", "True", "Reachable", Duration::from_secs(10)).await;
    let client = running.registry.client("sim-1").expect("sim-1 client");

    // Four watches held open and 24 lists at once: over HTTP/1.1, a connection each.
    let params = WatchParams::default().timeout(60);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let secrets: Api<Secret> = Api::all(client.clone());
    let config_maps: Api<ConfigMap> = Api::all(client.clone());
    let accounts: Api<ServiceAccount> = Api::all(client.clone());
    let watches = (
        namespaces.watch(&params, "0").await.expect("watch namespaces"),
        secrets.watch(&params, "0").await.expect("watch secrets"),
        config_maps.watch(&params, "0").await.expect("watch config maps"),
        accounts.watch(&params, "0").await.expect("watch accounts"),
    );
    let list_params = ListParams::default();
    let lists = (0..24).map(|_| namespaces.list(&list_params));
    for listed in futures::future::join_all(lists).await {
        listed.expect("list namespaces");
    }

    // Callers and the prober share one HTTP/2 connection, as client-go would.
    let open = wait_for("sim-1's connections settle", Duration::from_secs(5), || {
        let open = sim.connections(1).expect("connections");
        async move { (open.http1 == 0 && open.http2 == 1).then_some(open) }
    })
    .await;
    eprintln!("measured: connections open to sim-1 with 4 watches and 24 lists: {open:?}");
    drop(watches);
    drop(running);
    sim.shutdown().await;
}

/// A ClientConfig name, its context, its Secret's one key and value (None: no Secret), and
/// the reason its Ready condition must give.
type Case<'a> = (&'a str, &'a str, Option<(&'a str, String)>, &'a str);

/// A kubeconfig for cluster 1 with context `context`, extra cluster fields and a user body.
fn kubeconfig(sim: &Sim, context: &str, cluster_extra: &str, user: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(sim.ca_pem());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n{cluster_extra}contexts:\n- name: {context}\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n{user}",
        sim.url(1)
    )
}

/// The user entry of a kubeconfig authenticating with `certificate`, as kind writes them.
fn client_certificate_user(certificate: &kube_sim::tls::ClientCertificate) -> String {
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    format!(
        "    client-certificate-data: {}\n    client-key-data: {}\n",
        encode(&certificate.certificate_pem),
        encode(&certificate.key_pem)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_region_is_reachable_with_its_expiry_and_a_foreign_one_is_rejected() {
    let sim = start_sim(2).await;
    let hub = sim.client(0).await.expect("hub");
    let running = start_controller(&sim).await;
    let certificate = sim.issue_client_certificate("federator", &[]).expect("client certificate");
    let trusted = kubeconfig(&sim, "east", "", &client_certificate_user(&certificate));
    put_secret(&hub, "east-config", &[("kubeconfig", trusted.as_bytes())]).await;
    put_client_config(&hub, "east", "east", "east-config").await;
    let status = wait_for_ready(&hub, "east", "True", "Reachable", Duration::from_secs(10)).await;
    let not_after = federator::clusters::kubeconfig::first_certificate_not_after(
        certificate.certificate_pem.as_bytes(),
    )
    .expect("NotAfter");
    assert_eq!(
        status.credential_expiry.map(|t| t.0),
        Some(not_after),
        "the status shows when the client certificate expires"
    );
    wait_for("east usable", Duration::from_secs(10), || {
        usable(&running.registry, "east")
    })
    .await;

    // A certificate of another CA: the region answers 401, which the status names.
    let other = tokio::time::timeout(
        Duration::from_secs(60),
        kube_sim::SimBuilder::new().context_prefix("other-").start(),
    )
    .await
    .expect("starts in time")
    .expect("starts");
    let foreign = other.issue_client_certificate("federator", &[]).expect("client certificate");
    let untrusted = kubeconfig(&sim, "west", "", &client_certificate_user(&foreign));
    put_secret(&hub, "west-config", &[("kubeconfig", untrusted.as_bytes())]).await;
    put_client_config(&hub, "west", "west", "west-config").await;
    let status = wait_for_ready(
        &hub,
        "west",
        "False",
        "CredentialsRejected",
        Duration::from_secs(10),
    )
    .await;
    assert!(
        status.message.as_deref().unwrap_or_default().contains("401"),
        "{status:?}"
    );
    other.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_kubeconfig_gives_its_condition_and_a_conflict_is_resolved_by_age() {
    let sim = start_sim(2).await;
    let hub = sim.client(0).await.expect("hub");
    let running = start_controller(&sim).await;
    let token = format!("    token: {}\n", sim.token(1));
    let exec =
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/true\n";
    let provider = "    auth-provider:\n      name: oidc\n      config: {}\n";

    // (name, context, Secret key and value or None for no Secret, expected reason)
    let bad_yaml = "clusters: [ {{ token: not-closed".to_string();
    let cases: Vec<Case> = vec![
        ("no-secret", "ctx-a", None, "SecretNotFound"),
        (
            "wrong-key",
            "ctx-b",
            Some(("config", kubeconfig(&sim, "ctx-b", "", &token))),
            "KubeconfigKeyMissing",
        ),
        (
            "bad-yaml",
            "ctx-c",
            Some(("kubeconfig", bad_yaml)),
            "KubeconfigInvalid",
        ),
        (
            "no-context",
            "ctx-d",
            Some(("kubeconfig", kubeconfig(&sim, "other", "", &token))),
            "ContextNotFound",
        ),
        (
            "exec",
            "ctx-e",
            Some(("kubeconfig", kubeconfig(&sim, "ctx-e", "", exec))),
            "ExecCredentialsRefused",
        ),
        (
            "auth-provider",
            "ctx-f",
            Some(("kubeconfig", kubeconfig(&sim, "ctx-f", "", provider))),
            "ExecCredentialsRefused",
        ),
        (
            "insecure",
            "ctx-g",
            Some((
                "kubeconfig",
                kubeconfig(
                    &sim,
                    "ctx-g",
                    "    insecure-skip-tls-verify: true\n",
                    &token,
                ),
            )),
            "InsecureTLSRefused",
        ),
        (
            "token-file",
            "ctx-h",
            Some((
                "kubeconfig",
                kubeconfig(
                    &sim,
                    "ctx-h",
                    "",
                    "    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n",
                ),
            )),
            "FileReferenceRefused",
        ),
        (
            "good",
            "ctx-i",
            Some(("kubeconfig", kubeconfig(&sim, "ctx-i", "", &token))),
            "Reachable",
        ),
    ];
    for (name, context, secret, _) in &cases {
        let secret_name = format!("{name}-config");
        if let Some((key, value)) = secret {
            put_secret(&hub, &secret_name, &[(key, value.as_bytes())]).await;
        }
        put_client_config(&hub, name, context, &secret_name).await;
    }
    for (name, context, _, reason) in &cases {
        let expected = if *reason == "Reachable" {
            "True"
        } else {
            "False"
        };
        let status = wait_for_ready(&hub, name, expected, reason, Duration::from_secs(15)).await;
        if *reason != "Reachable" {
            let message = status.message.clone().unwrap_or_default();
            assert!(!message.is_empty(), "{name}: no message");
            assert!(
                !message.contains(&sim.token(1)),
                "{name}: token in {message}"
            );
            assert!(
                !message.contains("not-closed"),
                "{name}: YAML quoted in {message}"
            );
            assert_eq!(
                condition(&status, "Degraded").map(|c| c.0),
                Some("True".into())
            );
            let error = running.registry.region(context).expect_err("refused");
            assert!(
                matches!(error, RegionError::Misconfigured { .. }),
                "{name}: {error}"
            );
            eprintln!("{name}: {reason}: {message}");
        }
    }

    // Fixing the cause is enough: the missing Secret appears, the ClientConfig becomes Ready.
    put_secret(
        &hub,
        "no-secret-config",
        &[(
            "kubeconfig",
            kubeconfig(&sim, "ctx-a", "", &token).as_bytes(),
        )],
    )
    .await;
    wait_for_ready(
        &hub,
        "no-secret",
        "True",
        "Reachable",
        Duration::from_secs(10),
    )
    .await;

    // Two ClientConfigs claim one context: the older keeps it.
    tokio::time::sleep(Duration::from_millis(1100)).await; // creationTimestamp has seconds
    put_client_config(&hub, "newer", "ctx-i", "good-config").await;
    let status = wait_for_ready(&hub, "newer", "False", "Conflict", Duration::from_secs(10)).await;
    assert_eq!(
        condition(&status, "Conflict").map(|(s, r, _)| (s, r)),
        Some(("True".into(), "ContextClaimed".into()))
    );
    assert!(status.message.unwrap_or_default().contains("\"good\""));
    let region = running.registry.region("ctx-i").expect("still usable");
    assert_eq!(region.source(), Some("good"));
    // The older one goes: the newer takes the context over.
    delete_client_config(&hub, "good").await;
    let (status, took_over_after) = timed(wait_for_ready(
        &hub,
        "newer",
        "True",
        "Reachable",
        Duration::from_secs(10),
    ))
    .await;
    assert_eq!(condition(&status, "Conflict"), None);
    assert_eq!(
        running.registry.region("ctx-i").expect("usable").source(),
        Some("newer")
    );
    eprintln!("measured: the newer ClientConfig took the context over after {took_over_after:?}");
    drop(running);
    sim.shutdown().await;
}

/// The next cluster re-queued within `limit`, if any.
async fn requeued_within(
    requeued: &mut (impl futures::Stream<Item = ObjectRef<K8ssandraCluster>> + Unpin),
    limit: Duration,
) -> Option<ObjectRef<K8ssandraCluster>> {
    tokio::time::timeout(limit, requeued.next()).await.ok().flatten()
}

/// Takes every re-queue until none comes for a second.
async fn drain(requeued: &mut (impl futures::Stream<Item = ObjectRef<K8ssandraCluster>> + Unpin)) {
    while requeued_within(requeued, Duration::from_secs(1)).await.is_some() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referenced_config_map_requeues_its_clusters_through_a_credential_rotation_until_unreferenced()
 {
    let sim = start_sim(3).await;
    let hub = sim.client(0).await.expect("hub");
    let running = start_controller(&sim).await;
    let registry = &running.registry;
    register_region(&sim, &hub, 1).await;
    wait_for("region sim-1 usable", Duration::from_secs(10), || {
        usable(registry, "sim-1")
    })
    .await;
    let (referenced, requeued, follow_regions) = ReferencedConfigMaps::start(registry.clone());
    let following = tokio::spawn(follow_regions);
    let mut requeued = Box::pin(requeued);
    let soon = Duration::from_secs(5);
    let demo = ObjectRef::<K8ssandraCluster>::new("demo").within(NS);
    let other = ObjectRef::<K8ssandraCluster>::new("other").within(NS);
    let per_node = RegionConfigMap {
        context: "sim-1".into(),
        namespace: NS.into(),
        name: "dc2-per-node".into(),
    };
    let namespace =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}});
    let namespaces = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(
        sim.client(1).await.expect("client 1"),
    );
    apply_as("test", &namespaces, NS, namespace).await;
    // The token rotates below: each call takes the current one.
    let config_maps =
        || async { kube::Api::<ConfigMap>::namespaced(sim.client(1).await.expect("client 1"), NS) };
    let put = |name: &'static str, token: &'static str| async move {
        let object = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NS},
            "data": {"demo-dc2-default-sts-0_cassandra.yaml": format!("initial_token: {token}")}
        });
        apply_as("test", &config_maps().await, name, object).await;
    };

    // Referenced before it exists: its first sighting (absent) re-queues, as it may have been
    // created between the reconcile's read and the watch's start.
    referenced.set(&demo, [per_node.clone()].into());
    assert_eq!(
        requeued_within(&mut requeued, soon).await,
        Some(demo.clone())
    );
    // Created, then edited: each re-queues the cluster.
    put("dc2-per-node", "1").await;
    assert_eq!(
        requeued_within(&mut requeued, soon).await,
        Some(demo.clone())
    );
    put("dc2-per-node", "2").await;
    assert_eq!(
        requeued_within(&mut requeued, soon).await,
        Some(demo.clone())
    );
    // Another ConfigMap of the namespace is not watched.
    put("unrelated", "1").await;
    assert_eq!(
        requeued_within(&mut requeued, Duration::from_secs(1)).await,
        None
    );

    // The token rotates (open watches end, as when a region's API server restarts) and the
    // kubeconfig Secret follows: the watch restarts with the new client and still sees edits.
    sim.rotate_token(1).expect("rotate");
    sim.drop_watches(1).expect("drop watches");
    put_current_kubeconfig(&sim, &hub, registry).await;
    drain(&mut requeued).await;
    put("dc2-per-node", "3").await;
    assert_eq!(
        requeued_within(&mut requeued, soon).await,
        Some(demo.clone())
    );

    // Two clusters reference it: a deletion re-queues both.
    referenced.set(&other, [per_node.clone()].into());
    drain(&mut requeued).await;
    bounded(
        "delete",
        config_maps().await.delete("dc2-per-node", &Default::default()),
    )
    .await
    .expect("delete");
    let mut both = Vec::new();
    for _ in 0..2 {
        let owner = requeued_within(&mut requeued, soon).await.expect("re-queued");
        both.push(owner.name);
    }
    both.sort();
    assert_eq!(both, ["demo", "other"]);

    // Referenced by one only, then by none: the watch stops with the last reference.
    referenced.set(&demo, Default::default());
    assert_eq!(
        referenced.watched(),
        [(per_node.clone(), [other.clone()].into())].into()
    );
    referenced.set(&other, Default::default());
    assert!(referenced.watched().is_empty());
    put("dc2-per-node", "4").await;
    assert_eq!(
        requeued_within(&mut requeued, Duration::from_secs(1)).await,
        None
    );
    following.abort();
    drop(running);
    sim.shutdown().await;
}

/// A kubeconfig reaching kube-sim cluster `index` under context `context`.
fn kubeconfig_of(sim: &Sim, index: usize, context: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(sim.ca_pem());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\ncontexts:\n- name: {context}\n  context:\n    cluster: c\n    user: u\ncurrent-context: {context}\nusers:\n- name: u\n  user:\n    token: {}\n",
        sim.url(index),
        sim.token(index)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_that_reaches_the_hub_is_the_hub_until_its_kubeconfig_points_elsewhere() {
    let sim = start_sim(2).await;
    let hub = sim.client(0).await.expect("hub");
    let running = start_controller(&sim).await;
    let registry = &running.registry;

    // The hub registered as a region, as k8ssandra-operator's setups do.
    let secret = "home-config";
    put_secret(
        &hub,
        secret,
        &[("kubeconfig", kubeconfig_of(&sim, 0, "home").as_bytes())],
    )
    .await;
    put_client_config(&hub, "home", "home", secret).await;
    wait_reaches_hub(&hub, "home", true, Duration::from_secs(10)).await;
    let status = status_of(&hub, "home").await.expect("status");
    let (_, _, message) = condition(&status, "Ready").expect("Ready");
    assert!(
        message.contains("the cluster Federator runs in"),
        "{message}"
    );
    assert!(registry.reaches_hub("home"));
    assert_eq!(registry.canonical("home"), "");
    let region = registry.region("home").expect("usable");
    assert!(region.is_hub(), "the hub's own region, not a second one");
    // Not a region of its own: nothing watches it a second time.
    assert!(registry.contexts().is_empty(), "{:?}", registry.contexts());

    // Its kubeconfig edited to reach another cluster: a region of its own from then on.
    put_secret(
        &hub,
        secret,
        &[("kubeconfig", kubeconfig_of(&sim, 1, "home").as_bytes())],
    )
    .await;
    wait_reaches_hub(&hub, "home", false, Duration::from_secs(10)).await;
    assert!(!registry.reaches_hub("home"));
    assert_eq!(registry.canonical("home"), "home");
    assert!(!registry.region("home").expect("usable").is_hub());
    assert_eq!(registry.contexts(), ["home"]);

    // And back.
    put_secret(
        &hub,
        secret,
        &[("kubeconfig", kubeconfig_of(&sim, 0, "home").as_bytes())],
    )
    .await;
    wait_reaches_hub(&hub, "home", true, Duration::from_secs(10)).await;
    assert!(registry.region("home").expect("usable").is_hub());
    drop(running);
    sim.shutdown().await;
}
