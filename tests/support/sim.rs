//! kube-sim clusters with Federator's CRDs, the tests' bounded API calls, and the regions
//! registered in the hub (kubeconfig Secrets and ClientConfigs).

use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use federator::api::client_config::{ClientConfig, ClientConfigStatus};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use kube_sim::{Sim, SimBuilder};

use super::cluster::condition;
use super::wait::wait_for;

/// The operator namespace in the hub, and the namespace of the tests' K8ssandraClusters and
/// datacenters.
pub const NS: &str = "k8ssandra-operator";
/// Field manager of the tests' own writes.
pub const TEST_MANAGER: &str = "federator-tests";
/// Bound on every single API call a test makes.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The repository (the federator crate's root).
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// A path in the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(REPO).join(relative)
}

/// Federator's CRDs (`crds/`).
pub fn federator_crds() -> PathBuf {
    repo_path("crds")
}

/// cass-operator's real CRDs, from the shared reference data.
pub fn cass_operator_crds() -> PathBuf {
    repo_path("../shared/compat/crds/cass-operator")
}

/// Starts kube-sim as `builder` says, within two minutes.
pub async fn launch(builder: SimBuilder) -> Sim {
    tokio::time::timeout(Duration::from_secs(120), builder.start())
        .await
        .expect("kube-sim starts in time")
        .expect("kube-sim starts")
}

/// `clusters` simulated clusters with Federator's CRDs and the namespace [`NS`] in each;
/// cluster 0 is the hub. Await it as it is, or say more first:
/// `start_sim(3).cass_operator().register([1, 2]).await`.
pub fn start_sim(clusters: usize) -> SimSetup {
    SimSetup {
        builder: SimBuilder::new().clusters(clusters).crd_dir(federator_crds()),
        clusters,
        namespaces: vec![NS.to_string()],
        hub_namespaces_only: false,
        regions: Vec::new(),
    }
}

/// What [`start_sim`] starts.
pub struct SimSetup {
    builder: SimBuilder,
    clusters: usize,
    namespaces: Vec<String>,
    hub_namespaces_only: bool,
    regions: Vec<usize>,
}

impl SimSetup {
    /// cass-operator in every cluster: its stand-in and its real CRD.
    pub fn cass_operator(mut self) -> Self {
        self.builder = self.builder.cass_operator(true).crd_dir(cass_operator_crds());
        self
    }

    /// How long the cass-operator stand-in takes to make a datacenter Ready (1 s unless said).
    pub fn dc_ready_after(mut self, delay: Duration) -> Self {
        self.builder = self.builder.dc_ready_after(delay);
        self
    }

    /// How long Deployments and StatefulSets take to report their replicas ready.
    pub fn workloads_ready_after(mut self, delay: Duration) -> Self {
        self.builder = self.builder.workloads_ready_after(delay);
        self
    }

    /// A real listener at every Cassandra pod's IP (the Management API at `podIP:8080`).
    pub fn pod_listeners(mut self) -> Self {
        self.builder = self.builder.pod_listeners(true);
        self
    }

    /// Context names `<prefix><index>` instead of `sim-<index>`.
    pub fn context_prefix(mut self, prefix: &str) -> Self {
        self.builder = self.builder.context_prefix(prefix);
        self
    }

    /// Requests authorised by each cluster's RBAC (the tests' admin clients stay unrestricted).
    pub fn rbac(mut self) -> Self {
        self.builder = self.builder.rbac(true);
        self
    }

    /// Another namespace, made where [`NS`] is.
    pub fn namespace(mut self, name: &str) -> Self {
        if !self.namespaces.iter().any(|n| n == name) {
            self.namespaces.push(name.to_string());
        }
        self
    }

    /// The namespaces in the hub only (what a region lacks is left to the code under test).
    pub fn hub_namespaces_only(mut self) -> Self {
        self.hub_namespaces_only = true;
        self
    }

    /// Registers these clusters with the hub ([`register_region`]), once the namespaces exist.
    pub fn register(mut self, indexes: impl IntoIterator<Item = usize>) -> Self {
        self.regions.extend(indexes);
        self
    }

    pub async fn start(self) -> Sim {
        let sim = launch(self.builder).await;
        let with_namespaces = if self.hub_namespaces_only {
            1
        } else {
            self.clusters
        };
        for index in 0..with_namespaces {
            let client = sim.client(index).await.expect("client");
            for namespace in &self.namespaces {
                apply(
                    &Api::<Namespace>::all(client.clone()),
                    namespace,
                    serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": namespace}}),
                )
                .await;
            }
        }
        if !self.regions.is_empty() {
            let hub = sim.client(0).await.expect("hub client");
            for index in self.regions {
                register_region(&sim, &hub, index).await;
            }
        }
        sim
    }
}

impl IntoFuture for SimSetup {
    type Output = Sim;
    type IntoFuture = Pin<Box<dyn Future<Output = Sim> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.start())
    }
}

/// The sim's kubeconfig, written in `dir`.
pub fn write_kubeconfig(sim: &Sim, dir: &Path) -> PathBuf {
    let path = dir.join("sim.kubeconfig");
    sim.write_kubeconfig(&path).expect("write kubeconfig");
    path
}

/// `call`, or a panic naming `what` if it takes longer than [`CALL_TIMEOUT`].
pub async fn bounded<T>(what: &str, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {CALL_TIMEOUT:?}"))
}

/// Server-side applies `object` as the test ([`TEST_MANAGER`]), forcing conflicts; panics on an
/// error.
pub async fn apply<K>(api: &Api<K>, name: &str, object: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    apply_as(TEST_MANAGER, api, name, object).await;
}

/// [`apply`] as field manager `manager`.
pub async fn apply_as<K>(manager: &str, api: &Api<K>, name: &str, object: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = PatchParams::apply(manager).force();
    send_apply(api, name, object, &params).await.unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

/// Server-side apply as the test with strict field validation, as `kubectl apply
/// --server-side` sends it; the API server's answer.
pub async fn try_apply<K>(
    api: &Api<K>,
    name: &str,
    object: serde_json::Value,
) -> Result<K, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = PatchParams::apply(TEST_MANAGER).force().validation_strict();
    send_apply(api, name, object, &params).await
}

async fn send_apply<K>(
    api: &Api<K>,
    name: &str,
    object: serde_json::Value,
    params: &PatchParams,
) -> Result<K, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    bounded("apply", api.patch(name, params, &Patch::Apply(&object))).await
}

/// Deletes `name` through `api`, panicking on an error.
pub async fn delete<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    bounded(
        &format!("delete {name}"),
        api.delete(name, &Default::default()),
    )
    .await
    .unwrap_or_else(|e| panic!("delete {name}: {e}"));
}

/// Waits until `name` is gone from `api` (its finalizers released).
pub async fn wait_deleted<K>(api: &Api<K>, name: &str, limit: Duration)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    wait_for(&format!("{name} deleted"), limit, || async {
        bounded(&format!("get {name}"), api.get_opt(name))
            .await
            .unwrap_or_else(|e| panic!("get {name}: {e}"))
            .is_none()
    })
    .await;
}

/// The API of `K` in [`NS`] through `client`.
pub fn hub_api<K>(client: &Client) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    Api::namespaced(client.clone(), NS)
}

/// Object `name` of `K` in [`NS`] through `client`: None when absent, an error when the call
/// fails or takes longer than [`CALL_TIMEOUT`] (for a cluster that may be down).
pub async fn try_get<K>(client: &Client, name: &str) -> Result<Option<K>, String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let kind = K::kind(&());
    match tokio::time::timeout(CALL_TIMEOUT, hub_api::<K>(client).get_opt(name)).await {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(e)) => Err(format!("get {kind} {name}: {e}")),
        Err(_) => Err(format!("get {kind} {name} timed out")),
    }
}

/// [`try_get`], panicking on an error.
pub async fn get<K>(client: &Client, name: &str) -> Option<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    try_get(client, name).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Puts a Secret `name` in [`NS`] holding these keys.
pub async fn put_secret(hub: &Client, name: &str, data: &[(&str, &[u8])]) {
    let data: BTreeMap<String, ByteString> =
        data.iter().map(|(k, v)| (k.to_string(), ByteString(v.to_vec()))).collect();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };
    let mut value = serde_json::to_value(&secret).expect("json");
    value["apiVersion"] = "v1".into();
    value["kind"] = "Secret".into();
    apply(&hub_api::<Secret>(hub), name, value).await;
}

/// The Secrets a user's cert-manager makes for a Reaper's TLS in [`NS`] (test certificates,
/// made at test time): `reaper-server` with the stores Reaper reads (kube-sim only checks they
/// are there) and the PEM files, and with `with_client` `reaper-client`, which Federator presents.
pub async fn put_reaper_tls_secrets(
    client: &Client,
    certificates: &kube_sim::tls::ManagementApiCertificates,
    with_client: bool,
) {
    put_secret(
        client,
        "reaper-server",
        &[
            ("keystore.jks", b"JKS bytes"),
            ("truststore.jks", b"JKS bytes"),
            ("tls.crt", certificates.server.certificate_pem.as_bytes()),
            ("tls.key", certificates.server.key_pem.as_bytes()),
            ("ca.crt", certificates.ca_pem.as_bytes()),
        ],
    )
    .await;
    if with_client {
        put_secret(
            client,
            "reaper-client",
            &[
                ("tls.crt", certificates.client.certificate_pem.as_bytes()),
                ("tls.key", certificates.client.key_pem.as_bytes()),
                ("ca.crt", certificates.ca_pem.as_bytes()),
            ],
        )
        .await;
    }
}

/// A ClientConfig `name` in [`NS`] for `context`, reading Secret `secret`.
pub fn client_config(name: &str, context: &str, secret: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "config.k8ssandra.io/v1beta1", "kind": "ClientConfig",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"contextName": context, "kubeConfigSecret": {"name": secret}}
    })
}

/// Puts a [`client_config`].
pub async fn put_client_config(hub: &Client, name: &str, context: &str, secret: &str) {
    apply(
        &hub_api::<ClientConfig>(hub),
        name,
        client_config(name, context, secret),
    )
    .await;
}

/// The Secret holding the kubeconfig of a region registered by [`register_region`].
pub fn kubeconfig_secret(context: &str) -> String {
    format!("{context}-config")
}

/// Registers kube-sim cluster `index` with the hub under its context: Secret
/// `<context>-config` with the simulator's kubeconfig, and ClientConfig `<context>`. Again after
/// a token rotation, it puts the current kubeconfig in place.
pub async fn register_region(sim: &Sim, hub: &Client, index: usize) {
    let context = sim.context_name(index);
    let secret = kubeconfig_secret(&context);
    put_secret(
        hub,
        &secret,
        &[("kubeconfig", sim.kubeconfig_yaml().as_bytes())],
    )
    .await;
    put_client_config(hub, &context, &context, &secret).await;
}

pub async fn delete_client_config(hub: &Client, name: &str) {
    delete(&hub_api::<ClientConfig>(hub), name).await;
}

/// ClientConfig `name`'s status (None when absent, without one, or not read in time).
pub async fn status_of(hub: &Client, name: &str) -> Option<ClientConfigStatus> {
    try_get::<ClientConfig>(hub, name).await.ok()??.status
}

/// Lists namespaces through `client`, with a bound.
pub async fn can_list_namespaces(client: &Client) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_secs(3),
            Api::<Namespace>::all(client.clone()).list(&Default::default())
        )
        .await,
        Ok(Ok(_))
    )
}

/// Waits until ClientConfig `name`'s Ready condition has `status` and `reason`; returns the
/// ClientConfig's status then.
pub async fn wait_for_ready(
    hub: &Client,
    name: &str,
    status: &str,
    reason: &str,
    limit: Duration,
) -> ClientConfigStatus {
    wait_for(
        &format!("ClientConfig {name}: Ready={status} ({reason})"),
        limit,
        || async {
            let current = status_of(hub, name).await.ok_or_else(|| "no status".to_string())?;
            match condition(&current, "Ready") {
                Some((s, r, _)) if s == status && r == reason => Ok(current),
                _ => Err(format!("{current:?}")),
            }
        },
    )
    .await
}

/// Waits until ClientConfig `name` is Ready and says whether it reaches the hub, as
/// `reaches_hub`.
pub async fn wait_reaches_hub(hub: &Client, name: &str, reaches_hub: bool, limit: Duration) {
    wait_for(
        &format!("{name} Ready with reachesHub: {reaches_hub}"),
        limit,
        || async {
            let status = status_of(hub, name).await?;
            (status.reaches_hub == Some(reaches_hub)
                && condition(&status, "Ready").map(|(s, r, _)| (s, r))
                    == Some(("True".into(), "Reachable".into())))
            .then_some(())
        },
    )
    .await;
}

/// kube-sim in upstream's layout: `clusters` clusters with contexts `kind-k8ssandra-N`, every one
/// registered with a ClientConfig (the hub, `kind-k8ssandra-0`, like the others), cass-operator's
/// stand-in making datacenters Ready in 300 ms; `more` adds to the setup. With a kubeconfig
/// and kubectl cache for the real kubectl.
pub async fn upstream_layout(clusters: usize, more: impl FnOnce(SimSetup) -> SimSetup) -> Layout {
    let setup = start_sim(clusters)
        .context_prefix("kind-k8ssandra-")
        .cass_operator()
        .dc_ready_after(Duration::from_millis(300))
        .register(0..clusters);
    let sim = more(setup).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = write_kubeconfig(&sim, dir.path());
    let cache = dir.path().join("kubectl-cache");
    Layout {
        sim,
        kubeconfig,
        cache,
        _dir: dir,
    }
}

/// What [`upstream_layout`] starts.
pub struct Layout {
    pub sim: Sim,
    pub kubeconfig: PathBuf,
    pub cache: PathBuf,
    _dir: tempfile::TempDir,
}

/// prometheus-operator's ServiceMonitor CRD, as upstream ships it, installed in `client`'s cluster.
pub async fn install_service_monitor_crd(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let dir = repo_path("../shared/compat/crds/prometheus-operator");
    let crd = kube_sim::crd::load_crd_dir(&dir)
        .expect("prometheus-operator CRDs load")
        .into_iter()
        .find(|crd| crd["metadata"]["name"] == "servicemonitors.monitoring.coreos.com")
        .expect("the ServiceMonitor CRD");
    apply(
        &Api::<CustomResourceDefinition>::all(client.clone()),
        "servicemonitors.monitoring.coreos.com",
        crd,
    )
    .await;
}
