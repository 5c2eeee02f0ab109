//! Operating Cassandra across regions, end to end in process, against kube-sim's Cassandra model
//! in upstream's layout (contexts `kind-k8ssandra-N`, the hub registered as `kind-k8ssandra-0`
//! like the others): the system keyspaces follow the datacenters through each pod's Management
//! API, reached through its region's API server (the pod proxy), as `kubectl get --raw` shows; a
//! datacenter added later is rebuilt from a running one, with the user keyspaces upstream's
//! `k8ssandra.io/dc-replication` names.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use federator::api::cassdc::CassandraDatacenter;
use federator::api::k8ssandra_cluster::K8ssandraCluster;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{DynamicObject, ListParams};
use kube_sim::cassandra::ConsistencyLevel;
use support::*;

const CLUSTER: &str = "demo";
const WAIT: Duration = Duration::from_secs(40);
const SYSTEM_KEYSPACES: [&str; 3] = ["system_auth", "system_distributed", "system_traces"];

/// A keyspace's replication as `kubectl get --raw` reads it through the pod proxy of `pod` in
/// `context`.
async fn replication_through_kubectl(
    kubeconfig: &Path,
    cache: &Path,
    context: &str,
    pod: &str,
    keyspace: &str,
) -> BTreeMap<String, String> {
    let path = format!(
        "/api/v1/namespaces/{NS}/pods/{pod}:8080/proxy/api/v0/ops/keyspace/replication?keyspaceName={keyspace}"
    );
    let (ok, out, err) = kubectl(
        kubeconfig,
        cache,
        &["--context", context, "get", "--raw", &path],
    )
    .await;
    assert!(ok, "kubectl get --raw {path}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"))
}

fn datacenters_of(replication: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    replication
        .iter()
        .filter(|(key, _)| key.as_str() != "class")
        .map(|(dc, n)| (dc.as_str(), n.as_str()))
        .collect()
}

/// The SystemKeyspacesReplicated condition once it is True with `message`.
async fn replicated(clusters: &Api<K8ssandraCluster>, message: &str) {
    keyspaces_condition(clusters, "Replicated", message).await;
}

#[test]
fn the_system_keyspaces_follow_the_datacenters_across_regions() {
    run(system_keyspaces_follow_the_datacenters());
}

async fn system_keyspaces_follow_the_datacenters() {
    let layout = upstream_layout(3, |setup| setup).await;
    let (sim, kubeconfig, cache) = (&layout.sim, &layout.kubeconfig, &layout.cache);
    let hub = sim.client(0).await.expect("hub client");
    let region1 = sim.client(1).await.expect("region 1 client");
    let operator = InProcessOperator::start(&hub, |settings| {
        settings.leader_election.enabled = false;
    });
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);

    // One datacenter, in the hub through its ClientConfig.
    let one = k8ssandra_cluster(CLUSTER, &[("dc1", "kind-k8ssandra-0", 3)]);
    apply(&clusters, CLUSTER, one.clone()).await;
    replicated(&clusters, "system_auth {dc1: 3}").await;

    // Rows written in dc1 at LOCAL_QUORUM, before there is a dc2.
    let app = BTreeMap::from([
        ("class".to_string(), "NetworkTopologyStrategy".to_string()),
        ("dc1".to_string(), "3".to_string()),
    ]);
    sim.cassandra_create_keyspace(CLUSTER, "app", &app).expect("keyspace app");
    sim.cassandra_create_table(CLUSTER, "app", "kv").expect("table app.kv");
    sim.cassandra_write_generated(
        CLUSTER,
        "dc1",
        "app",
        "kv",
        50,
        ConsistencyLevel::LocalQuorum,
    )
    .expect("rows in dc1");

    // A second region, its user keyspaces named as upstream names them: once dc2 is Ready, every
    // system keyspace has 3 replicas in each, app has 3 in dc2, and dc2 is rebuilt from dc1.
    let mut two = k8ssandra_cluster(
        CLUSTER,
        &[
            ("dc1", "kind-k8ssandra-0", 3),
            ("dc2", "kind-k8ssandra-1", 3),
        ],
    );
    two["metadata"]["annotations"] =
        serde_json::json!({"k8ssandra.io/dc-replication": r#"{"dc2": {"app": 3}}"#});
    apply(&clusters, CLUSTER, two).await;
    replicated(&clusters, "system_auth {dc1: 3, dc2: 3}").await;
    wait_for("dc2 rebuilt", WAIT, || async {
        let k8c = bounded("get", clusters.get(CLUSTER)).await.map_err(|e| e.to_string())?;
        let status = k8c.status.ok_or("no status")?;
        match condition(&status, "DatacenterRebuild") {
            Some((state, reason, text)) if state == "True" && reason == "Rebuilt" => Ok(text),
            other => {
                let tasks: Api<DynamicObject> = Api::namespaced_with(
                    region1.clone(),
                    NS,
                    &federator::cassandra::task::task_resource(),
                );
                let task = tasks.get_opt("dc2-rebuild").await.ok().flatten();
                let task = task.map(|t| serde_json::to_string(&t.data).unwrap_or_default());
                let all: Api<DynamicObject> = Api::all_with(
                    region1.clone(),
                    &federator::cassandra::task::task_resource(),
                );
                let all = all.list(&Default::default()).await.map(|l| l.items.len());
                let dc2 = get::<CassandraDatacenter>(&region1, "dc2").await;
                let marks = dc2.map(|d| d.metadata.annotations);
                let events = Api::<Event>::namespaced(hub.clone(), NS);
                let events = events.list(&Default::default()).await.map(|l| {
                    l.items
                        .into_iter()
                        .map(|e| (e.reason, e.note, e.series.map(|s| s.count)))
                        .collect::<Vec<_>>()
                });
                Err(format!(
                    "{other:?}; error {:?}; task {task:?}; all {all:?}; marks {marks:?}; events {events:?}",
                    status.error
                ))
            }
        }
    })
    .await;
    // As upstream, the task that succeeded is gone.
    let tasks: Api<DynamicObject> = Api::namespaced_with(
        region1.clone(),
        NS,
        &federator::cassandra::task::task_resource(),
    );
    let left = bounded("get", tasks.get_opt("dc2-rebuild")).await.expect("get");
    assert!(left.is_none(), "{left:?}");
    let dc2: CassandraDatacenter = get(&region1, "dc2").await.expect("dc2");
    let marked = dc2.metadata.annotations.unwrap_or_default();
    assert!(
        !marked.contains_key("k8ssandra.io/rebuild-dc"),
        "the mark goes: {marked:?}"
    );
    assert_eq!(
        sim.cassandra_count(CLUSTER, "dc2", "app", "kv", ConsistencyLevel::LocalQuorum).ok(),
        Some(50),
        "every row written before dc2 existed is read in dc2 at LOCAL_QUORUM"
    );
    for keyspace in SYSTEM_KEYSPACES {
        let seen = replication_through_kubectl(
            kubeconfig,
            cache,
            "kind-k8ssandra-1",
            "demo-dc2-default-sts-0",
            keyspace,
        )
        .await;
        assert_eq!(
            datacenters_of(&seen),
            BTreeMap::from([("dc1", "3"), ("dc2", "3")]),
            "{keyspace}: {seen:?}"
        );
        assert!(
            seen["class"].ends_with("NetworkTopologyStrategy"),
            "{seen:?}"
        );
    }

    // A login through the new region reads system_auth there: it succeeds.
    let superuser: Secret = get(&hub, "demo-superuser").await.expect("superuser Secret");
    let data = superuser.data.expect("data");
    let text = |key: &str| String::from_utf8(data[key].0.clone()).expect("utf-8");
    let login = sim.cassandra_login(CLUSTER, "dc2", &text("username"), &text("password"));
    assert!(login.is_ok(), "login through dc2: {login:?}");

    // The alteration and the rebuild are Events on the K8ssandraCluster.
    let events = Api::<Event>::namespaced(hub.clone(), NS);
    let notes = wait_for("ReplicationAltered and Rebuilt Events", WAIT, || async {
        let listed = bounded("list", events.list(&ListParams::default())).await.ok()?;
        let notes: BTreeMap<String, String> =
            listed.items.into_iter().filter_map(|e| Some((e.reason?, e.note?))).collect();
        ["ReplicationAltered", "RebuildStarted", "Rebuilt"]
            .iter()
            .all(|reason| notes.contains_key(*reason))
            .then_some(notes)
    })
    .await;
    let altered = &notes["ReplicationAltered"];
    assert!(
        altered.contains("system_auth {dc1: 3, dc2: 3}"),
        "{altered}"
    );
    assert!(altered.contains("app {dc1: 3, dc2: 3}"), "{altered}");
    assert_eq!(notes["Rebuilt"], "dc2 rebuilt from dc1");
    assert_eq!(
        notes.get("RebuildStarted").map(String::as_str),
        Some(r#"dc2 rebuilds from dc1 (CassandraTask dc2-rebuild in region "kind-k8ssandra-1")"#)
    );

    // dc2 removed while app replicates to it: refused, with the keyspace named; dc2 has left
    // the system keyspaces and stays.
    apply(&clusters, CLUSTER, one).await;
    let refused = wait_for("the removal refused", WAIT, || async {
        let k8c = bounded("get", clusters.get(CLUSTER)).await.map_err(|e| e.to_string())?;
        let status = k8c.status.ok_or("no status")?;
        match condition(&status, "Degraded") {
            Some((state, reason, text))
                if state == "True" && reason == "RemovalBlockedByKeyspaces" =>
            {
                let progress = status
                    .datacenters
                    .and_then(|dcs| dcs.get("dc2")?.decommission_progress.clone());
                Ok((text, progress))
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        refused.0.contains("keyspaces app replicate to it"),
        "{}",
        refused.0
    );
    assert_eq!(refused.1.as_deref(), Some("UpdatingReplication"));
    let auth = replication_through_kubectl(
        kubeconfig,
        cache,
        "kind-k8ssandra-0",
        "demo-dc1-default-sts-0",
        "system_auth",
    )
    .await;
    assert_eq!(datacenters_of(&auth), BTreeMap::from([("dc1", "3")]));
    assert!(
        get::<CassandraDatacenter>(&region1, "dc2").await.is_some(),
        "dc2 is not deleted"
    );

    // The user alters app to leave dc2: the removal proceeds, and no keyspace names dc2.
    sim.cassandra_alter_keyspace(CLUSTER, "app", &app).expect("ALTER KEYSPACE app");
    wait_for("dc2 deleted in kind-k8ssandra-1", WAIT, || async {
        match try_get::<CassandraDatacenter>(&region1, "dc2").await {
            Ok(None) => Some(()),
            _ => None,
        }
    })
    .await;
    replicated(&clusters, "system_auth {dc1: 3}").await;
    for keyspace in SYSTEM_KEYSPACES.into_iter().chain(["app"]) {
        let seen = replication_through_kubectl(
            kubeconfig,
            cache,
            "kind-k8ssandra-0",
            "demo-dc1-default-sts-0",
            keyspace,
        )
        .await;
        assert_eq!(
            datacenters_of(&seen),
            BTreeMap::from([("dc1", "3")]),
            "{keyspace}"
        );
    }
    operator.stop().await;
}

/// The `managementApiAuth.manual` Secrets, as a user makes them in each region (cass-operator
/// reads them there): the server's certificate for the agent, the client's for its callers.
async fn management_tls_secrets(
    region: &kube::Client,
    certificates: &kube_sim::tls::ManagementApiCertificates,
) {
    let secrets = Api::<Secret>::namespaced(region.clone(), NS);
    for (name, pair) in [
        ("mgmt-server", &certificates.server),
        ("mgmt-client", &certificates.client),
    ] {
        let secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": NS},
            "type": "kubernetes.io/tls",
            "stringData": {"ca.crt": certificates.ca_pem, "tls.crt": pair.certificate_pem,
                           "tls.key": pair.key_pem},
        });
        apply(&secrets, name, secret).await;
    }
}

/// The SystemKeyspacesReplicated condition once it has `reason` and its message `text`.
async fn keyspaces_condition(clusters: &Api<K8ssandraCluster>, reason: &str, text: &str) -> String {
    wait_for_condition(
        clusters,
        CLUSTER,
        "SystemKeyspacesReplicated",
        WAIT,
        |_, found, message| found == reason && message.contains(text),
    )
    .await
}

#[test]
fn a_management_api_with_mutual_tls_is_called_at_the_pod_ips_with_the_client_certificate() {
    run(mutual_tls_management_api());
}

async fn mutual_tls_management_api() {
    let layout = upstream_layout(2, |setup| setup.pod_listeners()).await;
    let (sim, kubeconfig, cache) = (&layout.sim, &layout.kubeconfig, &layout.cache);
    let hub = sim.client(0).await.expect("hub client");
    let certificates = kube_sim::tls::ManagementApiCertificates::generate("demo-dc1-service")
        .expect("certificates");
    for index in 0..2 {
        let region = sim.client(index).await.expect("region client");
        management_tls_secrets(&region, &certificates).await;
    }
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    let mut one = k8ssandra_cluster(CLUSTER, &[("dc1", "kind-k8ssandra-0", 1)]);
    one["spec"]["cassandra"]["managementApiAuth"] = serde_json::json!(
        {"manual": {"clientSecretName": "mgmt-client", "serverSecretName": "mgmt-server"}});

    // Through the pod proxy (the default) the agent cannot be called: it wants a client
    // certificate. The condition says what to set.
    let proxied = InProcessOperator::start(&hub, |settings| {
        settings.leader_election.enabled = false;
    });
    apply(&clusters, CLUSTER, one.clone()).await;
    let refused = keyspaces_condition(&clusters, "CassandraUnreachable", "mutual TLS").await;
    assert!(refused.contains("management_api.transport"), "{refused}");
    assert!(refused.contains("pod-ip"), "{refused}");
    let path = format!(
        "/api/v1/namespaces/{NS}/pods/demo-dc1-default-sts-0:8080/proxy/api/v0/ops/keyspace"
    );
    let (ok, _, err) = kubectl(
        kubeconfig,
        cache,
        &["--context", "kind-k8ssandra-0", "get", "--raw", &path],
    )
    .await;
    assert!(
        !ok,
        "the pod proxy reached an agent that requires mutual TLS"
    );
    assert!(err.contains("error trying to reach service"), "{err}");
    proxied.stop().await;

    // At the pod IPs with the client certificate: the keyspaces follow the datacenters.
    let direct = InProcessOperator::start(&hub, |settings| {
        settings.leader_election.enabled = false;
        settings.management_api_transport = federator::cassandra::management::Transport::PodIp;
    });
    replicated(&clusters, "system_auth {dc1: 1}").await;
    let mut two = k8ssandra_cluster(
        CLUSTER,
        &[
            ("dc1", "kind-k8ssandra-0", 1),
            ("dc2", "kind-k8ssandra-1", 1),
        ],
    );
    two["spec"]["cassandra"]["managementApiAuth"] =
        one["spec"]["cassandra"]["managementApiAuth"].clone();
    apply(&clusters, CLUSTER, two).await;
    replicated(&clusters, "system_auth {dc1: 1, dc2: 1}").await;

    // A client certificate the agents do not trust is refused by them: the region's Secret
    // replaced by one from another CA.
    let stranger = kube_sim::tls::ManagementApiCertificates::generate("demo-dc1-service")
        .expect("certificates");
    let foreign = kube_sim::tls::ManagementApiCertificates {
        ca_pem: certificates.ca_pem.clone(),
        server: certificates.server.clone(),
        client: stranger.client.clone(),
    };
    for index in 0..2 {
        let region = sim.client(index).await.expect("region client");
        management_tls_secrets(&region, &foreign).await;
    }
    direct.stop().await;
    let restarted = InProcessOperator::start(&hub, |settings| {
        settings.leader_election.enabled = false;
        settings.management_api_transport = federator::cassandra::management::Transport::PodIp;
    });
    let untrusted = keyspaces_condition(
        &clusters,
        "CassandraUnreachable",
        "cannot be reached at its IP",
    )
    .await;
    assert!(!untrusted.contains("PRIVATE KEY"), "{untrusted}");
    restarted.stop().await;
}

#[test]
fn a_third_region_added_later_reads_every_row_and_logs_in() {
    run(third_region_added_later());
}

/// Two regions with Reaper, rows written at LOCAL_QUORUM; a third region added later gets
/// every system and component keyspace, the user keyspace its annotation names, and the rows.
async fn third_region_added_later() {
    let layout = upstream_layout(3, |setup| {
        setup.workloads_ready_after(Duration::from_millis(300))
    })
    .await;
    let (sim, kubeconfig, cache) = (&layout.sim, &layout.kubeconfig, &layout.cache);
    let hub = sim.client(0).await.expect("hub client");
    let operator = InProcessOperator::start(&hub, |settings| {
        settings.leader_election.enabled = false;
    });
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    let datacenters = [
        ("dc1", "kind-k8ssandra-0", 3),
        ("dc2", "kind-k8ssandra-1", 3),
        ("dc3", "kind-k8ssandra-2", 3),
    ];
    let mut two = k8ssandra_cluster(CLUSTER, &datacenters[..2]);
    two["spec"]["reaper"] = serde_json::json!({});
    apply(&clusters, CLUSTER, two.clone()).await;
    replicated(&clusters, "reaper_db {dc1: 3, dc2: 3}").await;

    let app = BTreeMap::from([
        ("class".to_string(), "NetworkTopologyStrategy".to_string()),
        ("dc1".to_string(), "3".to_string()),
        ("dc2".to_string(), "3".to_string()),
    ]);
    sim.cassandra_create_keyspace(CLUSTER, "app", &app).expect("keyspace app");
    sim.cassandra_create_table(CLUSTER, "app", "kv").expect("table app.kv");
    sim.cassandra_write_generated(
        CLUSTER,
        "dc1",
        "app",
        "kv",
        80,
        ConsistencyLevel::LocalQuorum,
    )
    .expect("rows in dc1");

    let mut three = k8ssandra_cluster(CLUSTER, &datacenters);
    three["spec"]["reaper"] = serde_json::json!({});
    three["metadata"]["annotations"] =
        serde_json::json!({"k8ssandra.io/dc-replication": r#"{"dc3": {"app": 3}}"#});
    apply(&clusters, CLUSTER, three).await;
    replicated(&clusters, "system_auth {dc1: 3, dc2: 3, dc3: 3}").await;
    wait_for_condition(
        &clusters,
        CLUSTER,
        "DatacenterRebuild",
        WAIT,
        |state, reason, _| state == "True" && reason == "Rebuilt",
    )
    .await;
    for keyspace in ["reaper_db", "app", "system_auth"] {
        let seen = replication_through_kubectl(
            kubeconfig,
            cache,
            "kind-k8ssandra-2",
            "demo-dc3-default-sts-0",
            keyspace,
        )
        .await;
        assert_eq!(
            datacenters_of(&seen),
            BTreeMap::from([("dc1", "3"), ("dc2", "3"), ("dc3", "3")]),
            "{keyspace}: {seen:?}"
        );
    }
    assert_eq!(
        sim.cassandra_count(CLUSTER, "dc3", "app", "kv", ConsistencyLevel::LocalQuorum).ok(),
        Some(80),
        "every row written before dc3 existed is read in dc3 at LOCAL_QUORUM"
    );
    let superuser: Secret = get(&hub, "demo-superuser").await.expect("superuser Secret");
    let data = superuser.data.expect("data");
    let text = |key: &str| String::from_utf8(data[key].0.clone()).expect("utf-8");
    let login = sim.cassandra_login(CLUSTER, "dc3", &text("username"), &text("password"));
    assert!(login.is_ok(), "login through dc3: {login:?}");
    operator.stop().await;
}

/// One call to a Reaper's REST API through its region's services proxy: status, Set-Cookie, body.
async fn reaper_call(
    region: &kube::Client,
    reaper: &str,
    method: &str,
    path: &str,
    session: Option<&str>,
    form: Option<String>,
) -> (u16, Option<String>, String) {
    let service = format!("{reaper}-service:app");
    service_proxy_call(region, &service, method, path, session, form).await
}

/// A request through `services/<service:port>/proxy`: its status, session cookie and body.
async fn service_proxy_call(
    region: &kube::Client,
    service: &str,
    method: &str,
    path: &str,
    session: Option<&str>,
    form: Option<String>,
) -> (u16, Option<String>, String) {
    use http_body_util::BodyExt;
    let uri = format!("/api/v1/namespaces/{NS}/services/{service}/proxy{path}");
    let mut request = http::Request::builder().method(method).uri(uri);
    if let Some(session) = session {
        request = request.header("cookie", session);
    }
    if form.is_some() {
        request = request.header("content-type", "application/x-www-form-urlencoded");
    }
    let request = request.body(form.unwrap_or_default().into_bytes()).expect("request");
    let response = bounded(
        "a call to Reaper",
        region.send(request.map(kube::client::Body::from)),
    )
    .await
    .expect("Reaper answers");
    let status = response.status().as_u16();
    let cookie = (response.headers().get("set-cookie"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string);
    let body =
        bounded("Reaper's body", response.into_body().collect()).await.expect("body").to_bytes();
    (status, cookie, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn reaper_is_told_about_the_cluster_and_its_auto_schedules_repair_the_user_keyspaces() {
    run(reaper_repairs_across_regions());
}

/// Two regions with `autoScheduling`: each datacenter's Reaper is ready only once the cluster is
/// registered with it, lists the schedule Reaper made for the user keyspace, and that schedule's
/// run makes replicas that missed writes consistent again.
async fn reaper_repairs_across_regions() {
    let layout = upstream_layout(2, |setup| {
        setup.workloads_ready_after(Duration::from_millis(300))
    })
    .await;
    let sim = &layout.sim;
    let hub = sim.client(0).await.expect("hub client");
    let region1 = sim.client(1).await.expect("region 1 client");
    let control_plane = InProcessOperator::start(&hub, |settings| {
        settings.leader_election.enabled = false;
    });
    let data_plane = InProcessOperator::start(&region1, |settings| {
        settings.mode = federator::settings::Mode::DataPlane;
        settings.leader_election.enabled = false;
    });
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    let mut cluster = k8ssandra_cluster(
        CLUSTER,
        &[
            ("dc1", "kind-k8ssandra-0", 3),
            ("dc2", "kind-k8ssandra-1", 3),
        ],
    );
    cluster["spec"]["reaper"] = serde_json::json!({
        "autoScheduling": {
            "enabled": true, "initialDelayPeriod": "PT1S", "periodBetweenPolls": "PT1S",
            "excludedKeyspaces": ["audit"]
        }
    });
    apply(&clusters, CLUSTER, cluster).await;
    replicated(&clusters, "reaper_db {dc1: 3, dc2: 3}").await;
    let replication = BTreeMap::from([
        ("class".to_string(), "NetworkTopologyStrategy".to_string()),
        ("dc1".to_string(), "3".to_string()),
        ("dc2".to_string(), "3".to_string()),
    ]);
    for keyspace in ["app", "audit"] {
        sim.cassandra_create_keyspace(CLUSTER, keyspace, &replication).expect("keyspace");
        sim.cassandra_create_table(CLUSTER, keyspace, "kv").expect("table");
    }

    // Both Reapers become ready, as the K8ssandraCluster reports, once the cluster is registered.
    wait_for("both Reapers ready", WAIT, || async {
        let cluster = clusters.get(CLUSTER).await.ok()?;
        let datacenters = cluster.status?.datacenters?;
        ["dc1", "dc2"]
            .iter()
            .all(|dc| {
                (datacenters.get(*dc).and_then(|d| d.reaper.as_ref())).is_some_and(|r| r.is_ready())
            })
            .then_some(())
    })
    .await;
    let reapers = [(&hub, "demo-dc1-reaper"), (&region1, "demo-dc2-reaper")];
    let secret: Secret = get(&region1, "demo-reaper-ui").await.expect("the UI user's Secret");
    let field = |key: &str| {
        let data = secret.data.as_ref().and_then(|d| d.get(key)).expect(key);
        String::from_utf8(data.0.clone()).expect("text")
    };
    let login = format!(
        "username={}&password={}",
        field("username"),
        field("password")
    );
    let mut schedule_ids = Vec::new();
    for (client, reaper) in reapers {
        let (status, _, clusters_known) =
            reaper_call(client, reaper, "GET", "/cluster", None, None).await;
        assert_eq!(
            status, 403,
            "the UI user's login is needed: {clusters_known}"
        );
        let (status, session, _) =
            reaper_call(client, reaper, "POST", "/login", None, Some(login.clone())).await;
        assert_eq!(status, 204);
        let session = session.expect("a session");
        let (_, _, known) =
            reaper_call(client, reaper, "GET", "/cluster", Some(&session), None).await;
        assert_eq!(known, r#"["demo"]"#, "{reaper}");
        // Reaper's auto-scheduling gives `app` a schedule; not the excluded `audit`, nor
        // `reaper_db`, which has no tables.
        let schedule = wait_for("app's schedule", WAIT, || async {
            let path = "/repair_schedule/cluster/demo";
            let (_, _, body) = reaper_call(client, reaper, "GET", path, Some(&session), None).await;
            let listed: serde_json::Value = serde_json::from_str(&body).ok()?;
            let listed = listed.as_array()?.clone();
            (listed.len() == 1 && listed[0]["keyspace_name"] == "app").then_some(listed[0].clone())
        })
        .await;
        assert_eq!(schedule["owner"], "auto-scheduling");
        schedule_ids.push((
            client,
            reaper,
            session,
            schedule["id"].as_str().expect("id").to_string(),
        ));
    }

    // The Reaper's status lists the schedule (read at each reconcile: a touch brings one now).
    let region_reapers = Api::<federator::api::reaper::Reaper>::namespaced(region1.clone(), NS);
    let touch = serde_json::json!({"metadata": {"annotations": {"test/touched": "1"}}});
    bounded(
        "touch the Reaper",
        region_reapers.patch(
            "demo-dc2-reaper",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&touch),
        ),
    )
    .await
    .expect("annotated");
    let listed = wait_for("the schedule in the Reaper's status", WAIT, || async {
        let reaper = region_reapers.get("demo-dc2-reaper").await.ok()?;
        let schedules = reaper.status?.schedules?;
        (!schedules.is_empty()).then_some(schedules)
    })
    .await;
    assert_eq!(
        listed
            .iter()
            .map(|s| (s.keyspace.as_str(), s.owner.as_str(), s.state.as_str()))
            .collect::<Vec<_>>(),
        [("app", "auto-scheduling", "ACTIVE")]
    );

    // A node of dc2 misses writes; the schedule's run repairs it.
    let ring = sim.cassandra_ring(CLUSTER).expect("ring");
    let missing =
        (ring.iter().find(|entry| entry.datacenter == "dc2")).expect("a dc2 node").pod.name.clone();
    let context = sim.context_name(1);
    sim.stop_cassandra_node(&context, NS, &missing).expect("stop");
    sim.cassandra_write_generated(CLUSTER, "dc1", "app", "kv", 40, ConsistencyLevel::One)
        .expect("write at ONE");
    sim.start_cassandra_node(&context, NS, &missing).expect("start");
    let rows = || {
        let counts = sim.cassandra_row_counts(CLUSTER).expect("row counts");
        counts.per_node.values().map(|t| t.get("app.kv").copied().unwrap_or(0)).collect::<Vec<_>>()
    };
    assert!(
        rows().contains(&0),
        "a replica missed the rows: {:?}",
        rows()
    );
    let (client, reaper, session, id) = &schedule_ids[1];
    let start = format!("/repair_schedule/start/{id}");
    let (status, _, body) = reaper_call(client, reaper, "POST", &start, Some(session), None).await;
    assert_eq!(status, 200, "{body}");
    wait_for("the scheduled run done", WAIT, || async {
        let path = "/repair_run?cluster_name=demo";
        let (_, _, body) = reaper_call(client, reaper, "GET", path, Some(session), None).await;
        let runs: serde_json::Value = serde_json::from_str(&body).ok()?;
        (runs.get(0)?["state"] == "DONE").then_some(())
    })
    .await;
    assert!(
        rows().iter().all(|n| *n == 40),
        "every replica has every row: {:?}",
        rows()
    );

    // The dashboards' Reaper series are ones this Reaper's ServiceMonitor scrapes (its admin
    // port and path), and the run shows as done.
    let admin = format!(
        "{reaper}-service:{}",
        federator::dataplane::reaper::REAPER_ADMIN_PORT
    );
    let metrics_path = federator::dataplane::reaper::REAPER_METRICS_PATH;
    let (status, _, scrape) =
        service_proxy_call(client, &admin, "GET", metrics_path, None, None).await;
    assert_eq!(status, 200, "{scrape}");
    let dashboards = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana"))
        .expect("deploy/grafana")
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .collect::<String>();
    let queried: BTreeSet<&str> = regex::Regex::new(r"io_cassandrareaper_\w+")
        .expect("regex")
        .find_iter(&dashboards)
        .map(|m| m.as_str())
        .collect();
    assert!(
        !queried.is_empty(),
        "a dashboard shows Reaper's repair progress"
    );
    for name in queried {
        assert!(
            scrape.lines().any(|line| line.starts_with(&format!("{name}{{cluster=\"demo\""))),
            "{name} is not in Reaper's scrape:\n{scrape}"
        );
    }
    assert!(
        scrape.lines().any(|line| line
            .starts_with("io_cassandrareaper_service_RepairRunner_repairProgress{cluster=\"demo\",keyspace=\"app\"")
            && line.ends_with(" 1.0")),
        "{scrape}"
    );
    data_plane.stop().await;
    control_plane.stop().await;
}

/// The control-plane Reaper `cp-reaper`: no datacenter, its state on a volume, and `spec`'s
/// fields besides.
fn control_plane_reaper(spec: serde_json::Value) -> serde_json::Value {
    let mut reaper = serde_json::json!({
        "apiVersion": "reaper.k8ssandra.io/v1alpha1", "kind": "Reaper",
        "metadata": {"name": "cp-reaper", "namespace": NS},
        "spec": {
            "storageType": "local",
            "storageConfig": {"accessModes": ["ReadWriteOnce"],
                              "resources": {"requests": {"storage": "256Mi"}}},
        },
    });
    for (field, value) in spec.as_object().into_iter().flatten() {
        reaper["spec"][field] = value.clone();
    }
    reaper
}

/// Waits until the cluster is registered with `cp-reaper`; its FieldsNotActedOn message then.
async fn wait_registered_with_cp_reaper(clusters: &Api<K8ssandraCluster>) -> String {
    let message = wait_for_condition(clusters, CLUSTER, "ReaperRegistered", WAIT, |s, _, _| {
        s == "True"
    })
    .await;
    assert_eq!(
        message,
        format!("cluster demo is registered with Reaper {NS}/cp-reaper")
    );
    let registered = clusters.get(CLUSTER).await.expect("the cluster");
    condition(&registered, "FieldsNotActedOn").map(|c| c.2).unwrap_or_default()
}

async fn wait_reaper_running(reapers: &Api<federator::api::reaper::Reaper>) {
    wait_for("the control-plane Reaper running", WAIT, || async {
        let reaper = reapers.get("cp-reaper").await.ok()?;
        reaper.status?.is_ready().then_some(())
    })
    .await;
}

#[test]
fn a_reaper_ref_cluster_is_registered_with_the_referenced_reaper() {
    run(reaper_ref_registration());
}

/// A control-plane Reaper in the hub (no `datacenterRef`, `storageType: local`, a UI login) and
/// a cluster with datacenters in two other regions whose `reaper.reaperRef` names it: no Reaper
/// is made for the datacenters; the cluster is registered with the hub's Reaper through the seed
/// pods' IPs (its regions' Services do not resolve in the hub), which Reaper lists, and whose
/// schedules the Reaper's status lists. A `reaperRef` naming no Reaper says so.
async fn reaper_ref_registration() {
    let layout = upstream_layout(3, |setup| {
        setup.workloads_ready_after(Duration::from_millis(300))
    })
    .await;
    let sim = &layout.sim;
    let hub = sim.client(0).await.expect("hub client");
    let control_plane = InProcessOperator::start(&hub, |settings| {
        settings.leader_election.enabled = false;
    });
    put_secret(
        &hub,
        "reaper-ui",
        &[("username", b"admin"), ("password", b"s3cret")],
    )
    .await;
    let reapers = Api::<federator::api::reaper::Reaper>::namespaced(hub.clone(), NS);
    let reaper = control_plane_reaper(serde_json::json!({
        "uiUserSecretRef": {"name": "reaper-ui"},
        "autoScheduling": {"enabled": true, "initialDelayPeriod": "PT1S",
                           "periodBetweenPolls": "PT1S"},
    }));
    apply(&reapers, "cp-reaper", reaper).await;
    wait_reaper_running(&reapers).await;

    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    let mut cluster = k8ssandra_cluster(
        CLUSTER,
        &[
            ("dc1", "kind-k8ssandra-1", 3),
            ("dc2", "kind-k8ssandra-2", 3),
        ],
    );
    cluster["spec"]["reaper"] = serde_json::json!({
        "reaperRef": {"name": "cp-reaper"},
        "uiUserSecretRef": {"name": "reaper-ui"},
    });
    apply(&clusters, CLUSTER, cluster).await;
    let not_acted_on = wait_registered_with_cp_reaper(&clusters).await;
    assert!(!not_acted_on.contains("reaperRef"), "{not_acted_on}");

    // Reaper lists the cluster, reached through the seed pods' IPs of both regions.
    let (status, session, _) = reaper_call(
        &hub,
        "cp-reaper",
        "POST",
        "/login",
        None,
        Some("username=admin&password=s3cret".into()),
    )
    .await;
    assert_eq!(status, 204);
    let session = session.expect("a session");
    let (_, _, known) =
        reaper_call(&hub, "cp-reaper", "GET", "/cluster", Some(&session), None).await;
    assert_eq!(known, r#"["demo"]"#);
    // Registered as soon as dc1 had seed pods; Reaper then sees dc2 join.
    let described = wait_for("Reaper sees both datacenters", WAIT, || async {
        let path = "/cluster/demo";
        let (_, _, body) = reaper_call(&hub, "cp-reaper", "GET", path, Some(&session), None).await;
        let described: serde_json::Value = serde_json::from_str(&body).ok()?;
        let endpoints = &described["nodes_status"]["endpointStates"][0]["endpoints"];
        (endpoints.get("dc1").is_some() && endpoints.get("dc2").is_some()).then_some(described)
    })
    .await;
    let seeds = described["seed_hosts"].as_array().expect("seed hosts").clone();
    assert!(
        !seeds.is_empty()
            && seeds
                .iter()
                .all(|s| s.as_str().is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok())),
        "the seed pods' IPs: {described}"
    );

    // The datacenters' Services are in their own regions: the hub's Reaper cannot resolve them.
    let path = format!("/cluster/demo?seedHost=demo-seed-service.{NS}");
    let (status, _, refused) =
        reaper_call(&hub, "cp-reaper", "PUT", &path, Some(&session), None).await;
    assert_eq!(
        (status, refused.as_str()),
        (
            400,
            format!("no cluster demo with seed host demo-seed-service.{NS}").as_str()
        )
    );

    // No Reaper was made for the datacenters, in their regions or the hub.
    for index in [1, 2] {
        let region = sim.client(index).await.expect("region client");
        let listed = Api::<federator::api::reaper::Reaper>::namespaced(region, NS)
            .list(&ListParams::default())
            .await
            .expect("Reapers listed");
        assert!(
            listed.items.is_empty(),
            "region {index}: {:?}",
            listed.items
        );
    }
    let in_hub = reapers.list(&ListParams::default()).await.expect("Reapers listed");
    assert_eq!(
        in_hub
            .items
            .iter()
            .map(|r| r.metadata.name.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["cp-reaper"]
    );

    // The hub's Reaper lists the schedules of the clusters registered with it: Reaper's
    // auto-scheduling gives a user keyspace with a table one.
    let replication = BTreeMap::from([
        ("class".to_string(), "NetworkTopologyStrategy".to_string()),
        ("dc1".to_string(), "3".to_string()),
        ("dc2".to_string(), "3".to_string()),
    ]);
    sim.cassandra_create_keyspace(CLUSTER, "app", &replication).expect("keyspace");
    sim.cassandra_create_table(CLUSTER, "app", "kv").expect("table");
    let touch = |n: usize| serde_json::json!({"metadata": {"annotations": {"test/touched": n.to_string()}}});
    let mut touches = 0;
    let listed = wait_for("app's schedule in the Reaper's status", WAIT, || {
        touches += 1;
        let patch = touch(touches);
        let reapers = reapers.clone();
        async move {
            // Read at each reconcile: a touch brings one now.
            let params = kube::api::PatchParams::default();
            reapers.patch("cp-reaper", &params, &kube::api::Patch::Merge(&patch)).await.ok()?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let schedules = reapers.get("cp-reaper").await.ok()?.status?.schedules?;
            (!schedules.is_empty()).then_some(schedules)
        }
    })
    .await;
    assert_eq!(
        listed
            .iter()
            .map(|s| (s.cluster.as_deref(), s.keyspace.as_str(), s.owner.as_str()))
            .collect::<Vec<_>>(),
        [(Some("demo"), "app", "auto-scheduling")]
    );

    // Without a datacenter there is no Cassandra to keep Reaper's state in: storageType
    // cassandra (the default) is not deployed, and the Reaper says why.
    apply(
        &reapers,
        "cp-cassandra",
        serde_json::json!({
            "apiVersion": "reaper.k8ssandra.io/v1alpha1", "kind": "Reaper",
            "metadata": {"name": "cp-cassandra", "namespace": NS},
            "spec": {},
        }),
    )
    .await;
    let refused = wait_for(
        "the Reaper storing into no Cassandra refused",
        WAIT,
        || async {
            let reaper = reapers.get("cp-cassandra").await.ok()?;
            let status = reaper.status?;
            let ready = status.conditions?.into_iter().find(|c| c.type_ == "Ready")?;
            (ready.reason == "InvalidSpec").then_some(ready.message)
        },
    )
    .await;
    assert!(refused.contains("set spec.storageType: local"), "{refused}");
    let deployments = Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(hub.clone(), NS);
    assert!(
        deployments.get_opt("cp-cassandra").await.expect("read").is_none(),
        "not deployed"
    );

    // A reaperRef naming no Reaper says so.
    let mut other = k8ssandra_cluster("other", &[("dc1", "kind-k8ssandra-1", 1)]);
    other["spec"]["reaper"] = serde_json::json!({"reaperRef": {"name": "no-such-reaper"}});
    apply(&clusters, "other", other).await;
    let message = wait_for_condition(&clusters, "other", "ReaperRegistered", WAIT, |s, r, _| {
        s == "False" && r == "ReaperNotFound"
    })
    .await;
    assert!(
        message.starts_with(&format!(
            "Reaper {NS}/no-such-reaper (spec.reaper.reaperRef) does not exist"
        )),
        "{message}"
    );
    control_plane.stop().await;
}

#[test]
fn a_reaper_ref_cluster_is_registered_with_a_referenced_reaper_that_requires_mutual_tls() {
    run(reaper_ref_mutual_tls());
}

/// A control-plane Reaper in the hub serving its REST API with mutual TLS (certificates made
/// now): the services proxy cannot present a client certificate, so Federator connects to the
/// Reaper's pod with the clientCertName Secret, for the Reaper's own status and for registering
/// the cluster whose `reaperRef` names it. The K8ssandraCluster's own `spec.reaper.encryption`
/// (as upstream's manifests have it) is not needed: the Reaper's decides, and the cluster says so.
async fn reaper_ref_mutual_tls() {
    let layout = upstream_layout(2, |setup| {
        setup.workloads_ready_after(Duration::from_millis(300)).pod_listeners()
    })
    .await;
    let sim = &layout.sim;
    let hub = sim.client(0).await.expect("hub client");
    let control_plane = InProcessOperator::start(&hub, |settings| {
        settings.leader_election.enabled = false;
    });
    let certificates = kube_sim::tls::ManagementApiCertificates::generate("cp-reaper-service")
        .expect("certificates");
    put_reaper_tls_secrets(&hub, &certificates, false).await;
    let encryption =
        serde_json::json!({"serverCertName": "reaper-server", "clientCertName": "reaper-client"});
    let reapers = Api::<federator::api::reaper::Reaper>::namespaced(hub.clone(), NS);
    let reaper = control_plane_reaper(serde_json::json!({"encryption": encryption}));
    apply(&reapers, "cp-reaper", reaper).await;
    // The client Secret is not there yet: the Reaper's status names it.
    let missing = wait_for("the missing client Secret reported", WAIT, || async {
        let status = reapers.get("cp-reaper").await.ok()?.status?;
        let ready = status.conditions?.into_iter().find(|c| c.type_ == "Ready")?;
        (ready.reason == "ClientCertificateUnusable").then_some(ready.message)
    })
    .await;
    assert!(
        missing.contains("Secret reaper-client (spec.encryption.clientCertName) does not exist"),
        "{missing}"
    );
    assert!(!missing.contains("BEGIN"), "no key material: {missing}");
    put_reaper_tls_secrets(&hub, &certificates, true).await;
    // Ready: its controller read the clusters Reaper serves over mutual TLS.
    wait_reaper_running(&reapers).await;

    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    let mut cluster = k8ssandra_cluster(CLUSTER, &[("dc1", "kind-k8ssandra-1", 1)]);
    cluster["spec"]["reaper"] =
        serde_json::json!({"reaperRef": {"name": "cp-reaper"}, "encryption": encryption});
    apply(&clusters, CLUSTER, cluster).await;
    let not_acted_on = wait_registered_with_cp_reaper(&clusters).await;
    assert!(
        not_acted_on.contains(
            "spec.reaper.encryption (with reaperRef, the referenced Reaper's own spec.encryption decides"
        ),
        "{not_acted_on}"
    );
    control_plane.stop().await;
}
