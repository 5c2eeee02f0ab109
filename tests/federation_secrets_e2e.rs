//! Secrets of a K8ssandraCluster end to end, in process, against three kube-sim clusters with the
//! cass-operator stand-in: the generated superuser Secret is replicated to every datacenter's
//! region before the datacenter is created there, every CassandraDatacenter references it, its
//! password never changes, and deleting the cluster removes it and its copies.

mod clusters_support;

use std::time::Duration;

use clusters_support::{NS, apply_as, bounded, eventually, put_secret, register_region};
use federator::api::cassdc::CassandraDatacenter;
use federator::api::k8ssandra_cluster::K8ssandraCluster;
use federator::api::reaper::Reaper;
use federator::api::replicated_secret::ReplicatedSecret;
use federator::operator::{Operator, shutdown_on};
use federator::settings::{Overrides, Settings};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use kube_sim::{Sim, SimBuilder};

const TEST_MANAGER: &str = "federation-secrets-e2e";
const WAIT: Duration = Duration::from_secs(20);
const CLUSTER: &str = "demo";
const SUPERUSER: &str = "demo-superuser";

async fn secret(client: &Client, name: &str) -> Option<Secret> {
    bounded(
        "get Secret",
        Api::<Secret>::namespaced(client.clone(), NS).get_opt(name),
    )
    .await
    .expect("get Secret")
}

async fn datacenter(client: &Client, name: &str) -> Option<CassandraDatacenter> {
    bounded(
        "get CassandraDatacenter",
        Api::<CassandraDatacenter>::namespaced(client.clone(), NS).get_opt(name),
    )
    .await
    .expect("get CassandraDatacenter")
}

/// The message of the cluster's Progressing condition once it says WaitingForSecrets.
async fn waiting_for_secrets(clusters: &Api<K8ssandraCluster>) -> String {
    eventually("Progressing WaitingForSecrets", WAIT, || async {
        let status = bounded("get", clusters.get(CLUSTER)).await.ok()?.status?;
        status
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Progressing" && c.reason == "WaitingForSecrets")
            .map(|c| c.message)
    })
    .await
}

fn k8ssandra_cluster(region1: &str, region2: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "k8ssandra.io/v1alpha1",
        "kind": "K8ssandraCluster",
        "metadata": {"name": CLUSTER, "namespace": NS},
        "spec": {"cassandra": {
            "serverVersion": "4.1.5",
            "storageConfig": {"cassandraDataVolumeClaimSpec": {
                "storageClassName": "standard",
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "5Gi"}}
            }},
            "datacenters": [
                {"metadata": {"name": "dc1"}, "size": 1},
                {"metadata": {"name": "dc2"}, "k8sContext": region1, "size": 1},
                {"metadata": {"name": "dc3"}, "k8sContext": region2, "size": 1}
            ]
        }}
    })
}

#[test]
fn the_superuser_secret_reaches_every_region_before_its_datacenter() {
    federator::operator::runtime()
        .expect("tokio runtime")
        .block_on(superuser_secret_first());
}

/// kube-sim with the cass-operator stand-in, regions 1 and 2 registered, the operator running in
/// this process until `stop`.
struct Running {
    sim: Sim,
    clients: Vec<Client>,
    operator: Operator,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl Running {
    async fn start() -> Running {
        let sim = tokio::time::timeout(
            Duration::from_secs(120),
            SimBuilder::new()
                .clusters(3)
                .cass_operator(true)
                .dc_ready_after(Duration::from_secs(1))
                .crd_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/crds"))
                .crd_dir(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../shared/compat/crds/cass-operator"
                ))
                .start(),
        )
        .await
        .expect("kube-sim starts in time")
        .expect("kube-sim starts");
        let mut clients = Vec::new();
        for index in 0..3 {
            let client = sim.client(index).await.expect("client");
            let namespace = serde_json::json!({
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}
            });
            apply_as(
                TEST_MANAGER,
                &Api::<Namespace>::all(client.clone()),
                NS,
                namespace,
            )
            .await;
            clients.push(client);
        }
        let hub = &clients[0];
        for index in [1, 2] {
            register_region(&sim, hub, index).await;
        }
        let mut settings =
            Settings::load_from(&Overrides::default(), &[]).expect("default settings load");
        settings.operator_namespace = NS.to_string();
        settings.regions.probe_interval = Duration::from_secs(1);
        settings.regions.request_timeout = Duration::from_secs(2);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let operator = Operator::start(
            &settings,
            hub.clone(),
            shutdown_on(async move {
                let _ = stopped.await;
            }),
        );

        Running {
            sim,
            clients,
            operator,
            stop,
        }
    }

    /// The hub's client, then region 1's and region 2's.
    fn hub_and_regions(&self) -> [&Client; 3] {
        [&self.clients[0], &self.clients[1], &self.clients[2]]
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        bounded("operator stops", self.operator.run_until(async {}))
            .await
            .expect("no controller ended before the stop");
    }
}

async fn superuser_secret_first() {
    let running = Running::start().await;
    let sim = &running.sim;
    let [hub, region1, region2] = running.hub_and_regions();
    // Region 2 already has a Secret of that name that is not Federator's: its datacenter must
    // wait, and say why.
    apply_as(
        TEST_MANAGER,
        &Api::<Secret>::namespaced(region2.clone(), NS),
        SUPERUSER,
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": SUPERUSER, "namespace": NS},
            "data": {"password": "c29tZW9uZSBlbHNl"}}),
    )
    .await;

    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    apply_as(
        TEST_MANAGER,
        &clusters,
        CLUSTER,
        k8ssandra_cluster(&sim.context_name(1), &sim.context_name(2)),
    )
    .await;

    // The generated superuser Secret: username = the cluster name, a long random password.
    let generated = eventually("the superuser Secret in the hub", WAIT, || {
        secret(hub, SUPERUSER)
    })
    .await;
    let data = generated.data.clone().expect("data");
    assert_eq!(data["username"].0, b"demo");
    assert!(data["password"].0.len() >= 20);

    // dc2 never exists in region 1 without the copy of the Secret.
    eventually(
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
    eventually("dc2 Ready", Duration::from_secs(30), || async {
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
    eventually("dc3 created in region 2", WAIT, || async {
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
        let rs = bounded("get", replicated.get(CLUSTER))
            .await
            .expect("get ReplicatedSecret");
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
    bounded(
        "delete the cluster",
        clusters.delete(CLUSTER, &DeleteParams::default()),
    )
    .await
    .expect("delete the K8ssandraCluster");
    eventually(
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
    federator::operator::runtime()
        .expect("tokio runtime")
        .block_on(orphaned_cluster());
}

async fn orphaned_cluster() {
    let running = Running::start().await;
    let sim = &running.sim;
    let [hub, region1, _] = running.hub_and_regions();
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    apply_as(
        TEST_MANAGER,
        &clusters,
        CLUSTER,
        k8ssandra_cluster(&sim.context_name(1), &sim.context_name(2)),
    )
    .await;
    eventually("dc2 created in region 1", Duration::from_secs(40), || {
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
    bounded(
        "delete the cluster",
        clusters.delete(CLUSTER, &DeleteParams::default()),
    )
    .await
    .expect("delete the K8ssandraCluster");
    let replicated = Api::<ReplicatedSecret>::namespaced(hub.clone(), NS);
    eventually(
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
    let kept = secret(hub, SUPERUSER)
        .await
        .expect("the hub's Secret is kept");
    assert_eq!(kept.data, generated.data);
    let copy = secret(region1, SUPERUSER)
        .await
        .expect("the region's copy is kept");
    assert_eq!(copy.data, generated.data);
    running.stop().await;
}

#[test]
fn reaper_gets_generated_logins_in_every_region_and_its_role_in_every_datacenter() {
    federator::operator::runtime()
        .expect("tokio runtime")
        .block_on(reaper_logins());
}

async fn reaper_logins() {
    const REAPER_CQL: &str = "demo-reaper";
    const REAPER_UI: &str = "demo-reaper-ui";
    let running = Running::start().await;
    let sim = &running.sim;
    let [hub, region1, region2] = running.hub_and_regions();
    let clusters = Api::<K8ssandraCluster>::namespaced(hub.clone(), NS);
    let mut manifest = k8ssandra_cluster(&sim.context_name(1), &sim.context_name(2));
    manifest["spec"]["reaper"] = serde_json::json!({});
    apply_as(TEST_MANAGER, &clusters, CLUSTER, manifest.clone()).await;

    // Generated in the hub (username: the Secret's name), copied into both regions.
    for name in [REAPER_CQL, REAPER_UI] {
        let generated = eventually("a Reaper login in the hub", WAIT, || secret(hub, name)).await;
        let data = generated.data.clone().expect("data");
        assert_eq!(data["username"].0, name.as_bytes());
        assert!(data["password"].0.len() >= 20);
        for region in [region1, region2] {
            let copy = eventually("a Reaper login's copy", WAIT, || secret(region, name)).await;
            assert_eq!(copy.data, generated.data, "{name}");
        }
    }

    // cass-operator is asked to create Reaper's role; the Reapers read both logins.
    for (client, name) in [(hub, "dc1"), (region1, "dc2"), (region2, "dc3")] {
        let dc = eventually("the datacenter", Duration::from_secs(40), || {
            datacenter(client, name)
        })
        .await;
        let users: Vec<(String, bool)> = dc
            .spec
            .users
            .iter()
            .flatten()
            .map(|u| (u.secret_name.clone(), u.superuser))
            .collect();
        assert_eq!(users, vec![(REAPER_CQL.to_string(), true)], "{name}");
    }
    let reapers = Api::<Reaper>::namespaced(region1.clone(), NS);
    let reaper = eventually("dc2's Reaper", Duration::from_secs(40), || async {
        bounded("get Reaper", reapers.get_opt("demo-dc2-reaper"))
            .await
            .expect("get Reaper")
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
    apply_as(TEST_MANAGER, &clusters, CLUSTER, manifest).await;
    let error = eventually("the missing Secret in status.error", WAIT, || async {
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
    federator::operator::runtime()
        .expect("tokio runtime")
        .block_on(encryption_stores());
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
    let mut manifest = k8ssandra_cluster(&sim.context_name(1), &sim.context_name(2));
    manifest["spec"]["cassandra"]["config"] = serde_json::json!({"cassandraYaml": {
        "server_encryption_options": {"internode_encryption": "all"}
    }});
    manifest["spec"]["cassandra"]["serverEncryptionStores"] = serde_json::json!({
        "keystoreSecretRef": {"name": STORES}, "truststoreSecretRef": {"name": STORES}
    });
    apply_as(TEST_MANAGER, &clusters, CLUSTER, manifest).await;

    // The stores are copied to both regions; every datacenter mounts them and has the password.
    for (client, name) in [(hub, "dc1"), (region1, "dc2"), (region2, "dc3")] {
        let dc = eventually("an encrypted datacenter", Duration::from_secs(40), || {
            datacenter(client, name)
        })
        .await;
        assert_eq!(
            keystore_password(&dc).as_deref(),
            Some("key-pw-1"),
            "{name}"
        );
        let copy = secret(client, STORES)
            .await
            .expect("the stores in the region");
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
        eventually("the new password", WAIT, || async {
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
