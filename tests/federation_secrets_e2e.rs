//! Secrets of a K8ssandraCluster end to end, in process, against three kube-sim clusters with the
//! cass-operator stand-in: the generated superuser Secret is replicated to every datacenter's
//! region before the datacenter is created there, every CassandraDatacenter references it, its
//! password never changes, and deleting the cluster removes it and its copies.

mod support;

use std::time::Duration;

use federator::api::cassdc::CassandraDatacenter;
use federator::api::k8ssandra_cluster::K8ssandraCluster;
use federator::api::reaper::Reaper;
use federator::api::replicated_secret::ReplicatedSecret;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use kube_sim::Sim;
use support::*;

const WAIT: Duration = Duration::from_secs(20);
const CLUSTER: &str = "demo";
const SUPERUSER: &str = "demo-superuser";

async fn secret(client: &Client, name: &str) -> Option<Secret> {
    get(client, name).await
}

async fn datacenter(client: &Client, name: &str) -> Option<CassandraDatacenter> {
    get(client, name).await
}

/// The message of the cluster's Progressing condition once it says WaitingForSecrets.
async fn waiting_for_secrets(clusters: &Api<K8ssandraCluster>) -> String {
    wait_for("Progressing WaitingForSecrets", WAIT, || async {
        let status = bounded("get", clusters.get(CLUSTER)).await.ok()?.status?;
        status
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Progressing" && c.reason == "WaitingForSecrets")
            .map(|c| c.message)
    })
    .await
}

/// dc1 in the hub, dc2 and dc3 in the two regions.
fn three_region_cluster(region1: &str, region2: &str) -> serde_json::Value {
    k8ssandra_cluster(
        CLUSTER,
        &[("dc1", "", 1), ("dc2", region1, 1), ("dc3", region2, 1)],
    )
}

#[test]
fn the_superuser_secret_reaches_every_region_before_its_datacenter() {
    run(superuser_secret_first());
}

/// kube-sim with the cass-operator stand-in, regions 1 and 2 registered, the operator running in
/// this process until `stop`.
struct Running {
    sim: Sim,
    clients: Vec<Client>,
    operator: InProcessOperator,
}

impl Running {
    async fn start() -> Running {
        let sim = start_sim(3).cass_operator().register([1, 2]).await;
        let mut clients = Vec::new();
        for index in 0..3 {
            clients.push(sim.client(index).await.expect("client"));
        }
        let operator = InProcessOperator::start(&clients[0], |_| {});
        Running {
            sim,
            clients,
            operator,
        }
    }

    /// The hub's client, then region 1's and region 2's.
    fn hub_and_regions(&self) -> [&Client; 3] {
        [&self.clients[0], &self.clients[1], &self.clients[2]]
    }

    async fn stop(self) {
        self.operator.stop().await;
    }
}

async fn superuser_secret_first() {
    let running = Running::start().await;
    let sim = &running.sim;
    let [hub, region1, region2] = running.hub_and_regions();
    // Region 2 already has a Secret of that name that is not Federator's: its datacenter must
    // wait, and say why.
    apply(
        &Api::<Secret>::namespaced(region2.clone(), NS),
        SUPERUSER,
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": SUPERUSER, "namespace": NS},
            "data": {"password": "c29tZW9uZSBlbHNl"}}),
    )
    .await;

    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    apply(
        &clusters,
        CLUSTER,
        three_region_cluster(&sim.context_name(1), &sim.context_name(2)),
    )
    .await;

    // The generated superuser Secret: username = the cluster name, a long random password.
    let generated = wait_for("the superuser Secret in the hub", WAIT, || {
        secret(hub, SUPERUSER)
    })
    .await;
    let data = generated.data.clone().expect("data");
    assert_eq!(data["username"].0, b"demo");
    assert!(data["password"].0.len() >= 20);

    // dc2 never exists in region 1 without the copy of the Secret.
    wait_for(
        "dc2 created in region 1",
        Duration::from_secs(40),
        || async {
            let dc2 = datacenter(region1, "dc2").await?;
            let copy = secret(region1, SUPERUSER).await;
            assert!(
                copy.is_some(),
                "dc2 exists in region 1 before its superuser Secret"
            );
            assert_eq!(
                copy.and_then(|c| c.data),
                generated.data,
                "the copy holds the generated credentials"
            );
            Some(dc2)
        },
    )
    .await;

    // dc3 waits while region 2's Secret is someone else's, and the cluster's status says so.
    wait_for("dc2 Ready", Duration::from_secs(30), || async {
        datacenter(region1, "dc2").await.filter(|dc| dc.is_ready())
    })
    .await;
    let message = waiting_for_secrets(&clusters).await;
    assert!(
        message.contains("dc3") && message.contains(SUPERUSER),
        "{message}"
    );
    assert!(
        message.contains("not overwritten"),
        "the conflict is named: {message}"
    );
    assert!(datacenter(region2, "dc3").await.is_none());

    // Once it is removed, the copy is made and dc3 follows.
    bounded(
        "delete their Secret",
        Api::<Secret>::namespaced(region2.clone(), NS).delete(SUPERUSER, &DeleteParams::default()),
    )
    .await
    .expect("delete their Secret");
    wait_for("dc3 created in region 2", WAIT, || async {
        let dc3 = datacenter(region2, "dc3").await?;
        assert!(secret(region2, SUPERUSER).await.is_some());
        Some(dc3)
    })
    .await;

    // Every datacenter references it, and the password never changed.
    for (client, name) in [(hub, "dc1"), (region1, "dc2"), (region2, "dc3")] {
        let dc = datacenter(client, name).await.expect("datacenter");
        assert_eq!(dc.spec.superuser_secret_name.as_deref(), Some(SUPERUSER));
    }
    let later = secret(hub, SUPERUSER).await.expect("superuser Secret");
    assert_eq!(later.data, generated.data, "the password is generated once");

    // Steady state: the cluster's reconciles rewrite neither the Secret, nor its copies, nor the
    // ReplicatedSecret.
    let replicated = Api::<ReplicatedSecret>::namespaced(hub.clone(), NS);
    let versions = || async {
        let mut versions = Vec::new();
        for client in [hub, region1, region2] {
            let found = secret(client, SUPERUSER).await.expect("Secret");
            versions.push(found.metadata.resource_version);
        }
        let rs = bounded("get", replicated.get(CLUSTER)).await.expect("get ReplicatedSecret");
        versions.push(rs.metadata.resource_version);
        versions
    };
    let before = versions().await;
    // An annotation the controller does not use still makes it reconcile the cluster.
    let touch = serde_json::json!({"metadata": {"annotations": {"example.com/touched": "yes"}}});
    bounded(
        "annotate the cluster",
        clusters.patch(CLUSTER, &PatchParams::default(), &Patch::Merge(&touch)),
    )
    .await
    .expect("annotate the K8ssandraCluster");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        before,
        versions().await,
        "nothing is written at steady state"
    );

    // Deleting the cluster removes the Secret, the ReplicatedSecret and the copies.
    delete(&clusters, CLUSTER).await;
    wait_for(
        "secrets gone everywhere",
        Duration::from_secs(40),
        || async {
            let gone = secret(hub, SUPERUSER).await.is_none()
                && secret(region1, SUPERUSER).await.is_none()
                && secret(region2, SUPERUSER).await.is_none()
                && bounded("get", replicated.get_opt(CLUSTER))
                    .await
                    .expect("get ReplicatedSecret")
                    .is_none();
            gone.then_some(())
        },
    )
    .await;

    running.stop().await;
}

#[test]
fn an_orphaned_cluster_leaves_its_datacenters_their_superuser_secret() {
    run(orphaned_cluster());
}

async fn orphaned_cluster() {
    let running = Running::start().await;
    let sim = &running.sim;
    let [hub, region1, _] = running.hub_and_regions();
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    apply(
        &clusters,
        CLUSTER,
        three_region_cluster(&sim.context_name(1), &sim.context_name(2)),
    )
    .await;
    wait_for("dc2 created in region 1", Duration::from_secs(40), || {
        datacenter(region1, "dc2")
    })
    .await;
    let generated = secret(hub, SUPERUSER).await.expect("superuser Secret");

    bounded(
        "annotate the cluster orphan",
        clusters.patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                "federator.k8ssandra.io/orphan": "true"
            }}})),
        ),
    )
    .await
    .expect("annotate the K8ssandraCluster");
    delete(&clusters, CLUSTER).await;
    let replicated = Api::<ReplicatedSecret>::namespaced(hub.clone(), NS);
    wait_for(
        "the cluster and its ReplicatedSecret gone",
        WAIT,
        || async {
            let cluster_gone = bounded("get", clusters.get_opt(CLUSTER))
                .await
                .expect("get K8ssandraCluster")
                .is_none();
            let replicated_gone = bounded("get", replicated.get_opt(CLUSTER))
                .await
                .expect("get ReplicatedSecret")
                .is_none();
            (cluster_gone && replicated_gone).then_some(())
        },
    )
    .await;
    // The datacenters left behind keep their credentials, in the hub and in the region.
    assert!(datacenter(hub, "dc1").await.is_some());
    assert!(datacenter(region1, "dc2").await.is_some());
    let kept = secret(hub, SUPERUSER).await.expect("the hub's Secret is kept");
    assert_eq!(kept.data, generated.data);
    let copy = secret(region1, SUPERUSER).await.expect("the region's copy is kept");
    assert_eq!(copy.data, generated.data);
    running.stop().await;
}

#[test]
fn reaper_gets_generated_logins_in_every_region_and_its_role_in_every_datacenter() {
    run(reaper_logins());
}

async fn reaper_logins() {
    const REAPER_CQL: &str = "demo-reaper";
    const REAPER_UI: &str = "demo-reaper-ui";
    let running = Running::start().await;
    let sim = &running.sim;
    let [hub, region1, region2] = running.hub_and_regions();
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    let mut manifest = three_region_cluster(&sim.context_name(1), &sim.context_name(2));
    manifest["spec"]["reaper"] = serde_json::json!({});
    apply(&clusters, CLUSTER, manifest.clone()).await;

    // Generated in the hub (username: the Secret's name), copied into both regions.
    for name in [REAPER_CQL, REAPER_UI] {
        let generated = wait_for("a Reaper login in the hub", WAIT, || secret(hub, name)).await;
        let data = generated.data.clone().expect("data");
        assert_eq!(data["username"].0, name.as_bytes());
        assert!(data["password"].0.len() >= 20);
        for region in [region1, region2] {
            let copy = wait_for("a Reaper login's copy", WAIT, || secret(region, name)).await;
            assert_eq!(copy.data, generated.data, "{name}");
        }
    }

    // cass-operator is asked to create Reaper's role; the Reapers read both logins.
    for (client, name) in [(hub, "dc1"), (region1, "dc2"), (region2, "dc3")] {
        let dc = wait_for("the datacenter", Duration::from_secs(40), || {
            datacenter(client, name)
        })
        .await;
        let users: Vec<(String, bool)> =
            dc.spec.users.iter().flatten().map(|u| (u.secret_name.clone(), u.superuser)).collect();
        assert_eq!(users, vec![(REAPER_CQL.to_string(), true)], "{name}");
    }
    let reapers = Api::<Reaper>::namespaced(region1.clone(), NS);
    let reaper = wait_for("dc2's Reaper", Duration::from_secs(40), || async {
        bounded("get Reaper", reapers.get_opt("demo-dc2-reaper")).await.expect("get Reaper")
    })
    .await;
    let template = reaper.spec.template;
    assert_eq!(
        (
            template.cassandra_user_secret_ref.map(|s| s.name),
            template.ui_user_secret_ref.map(|s| s.name)
        ),
        (Some(REAPER_CQL.to_string()), Some(REAPER_UI.to_string()))
    );

    // A UI login named by the user must exist: the status names the field to fix.
    manifest["spec"]["reaper"] = serde_json::json!({"uiUserSecretRef": {"name": "my-reaper-ui"}});
    apply(&clusters, CLUSTER, manifest).await;
    let error = wait_for("the missing Secret in status.error", WAIT, || async {
        let status = bounded("get", clusters.get(CLUSTER)).await.ok()?.status?;
        status.error.filter(|e| e.contains("my-reaper-ui"))
    })
    .await;
    assert!(
        error.contains("named by spec.reaper.uiUserSecretRef does not exist"),
        "{error}"
    );
    running.stop().await;
}

#[test]
fn encryption_stores_reach_the_regions_and_their_passwords_the_datacenters() {
    run(encryption_stores());
}

/// The keystore password in a datacenter's config, if any.
fn keystore_password(dc: &CassandraDatacenter) -> Option<String> {
    let config = dc.spec.config.as_ref()?;
    config["cassandra-yaml"]["server_encryption_options"]["keystore_password"]
        .as_str()
        .map(str::to_string)
}

async fn encryption_stores() {
    const STORES: &str = "server-stores";
    let running = Running::start().await;
    let sim = &running.sim;
    let [hub, region1, region2] = running.hub_and_regions();
    let stores = |password: Option<&'static [u8]>| {
        let mut data: Vec<(&str, &[u8])> = vec![
            ("keystore", b"keystore bytes"),
            ("truststore", b"truststore bytes"),
            ("truststore-password", b"trust-pw"),
        ];
        data.extend(password.map(|p| ("keystore-password", p)));
        data
    };
    put_secret(hub, STORES, &stores(Some(b"key-pw-1"))).await;
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    let mut manifest = three_region_cluster(&sim.context_name(1), &sim.context_name(2));
    manifest["spec"]["cassandra"]["config"] = serde_json::json!({"cassandraYaml": {
        "server_encryption_options": {"internode_encryption": "all"}
    }});
    manifest["spec"]["cassandra"]["serverEncryptionStores"] = serde_json::json!({
        "keystoreSecretRef": {"name": STORES}, "truststoreSecretRef": {"name": STORES}
    });
    apply(&clusters, CLUSTER, manifest).await;

    // The stores are copied to both regions; every datacenter mounts them and has the password.
    for (client, name) in [(hub, "dc1"), (region1, "dc2"), (region2, "dc3")] {
        let dc = wait_for("an encrypted datacenter", Duration::from_secs(40), || {
            datacenter(client, name)
        })
        .await;
        assert_eq!(
            keystore_password(&dc).as_deref(),
            Some("key-pw-1"),
            "{name}"
        );
        let copy = secret(client, STORES).await.expect("the stores in the region");
        assert!(copy.data.is_some_and(|d| d.contains_key("keystore")));
        let pods = dc.spec.pod_template_spec.clone().expect("pod template");
        assert_eq!(
            pods["spec"]["volumes"][0]["secret"]["secretName"], STORES,
            "{name}"
        );
    }

    // A new password reaches every datacenter.
    put_secret(hub, STORES, &stores(Some(b"key-pw-2"))).await;
    for (client, name) in [(hub, "dc1"), (region1, "dc2"), (region2, "dc3")] {
        wait_for("the new password", WAIT, || async {
            let dc = datacenter(client, name).await?;
            (keystore_password(&dc).as_deref() == Some("key-pw-2")).then_some(())
        })
        .await;
    }

    // Without it the datacenters wait, keep the one they have, and the status says what is
    // missing, never a value.
    put_secret(hub, STORES, &stores(None)).await;
    let message = waiting_for_secrets(&clusters).await;
    assert!(
        message.contains("key keystore-password of Secret server-stores"),
        "{message}"
    );
    assert!(!message.contains("pw"), "no password in status: {message}");
    let dc2 = datacenter(region1, "dc2").await.expect("dc2");
    assert_eq!(keystore_password(&dc2).as_deref(), Some("key-pw-2"));
    running.stop().await;
}
