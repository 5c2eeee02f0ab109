//! The Rust API for tests: start N clusters in-process, get kubeconfigs and clients, inject
//! faults, shut down.

mod cassandra;

pub use cassandra::{CassandraRequestError, CassandraResult, generated_key};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;

use crate::catalog::{Catalog, builtin_served};
use crate::cluster::{Cluster, ClusterState, Security};
use crate::store::{Store, StoreConfig};
use crate::tls::{CertificateAuthority, ClientCertificate};

/// Configures and starts a [`Sim`].
#[derive(Debug, Clone)]
pub struct SimBuilder {
    clusters: usize,
    context_prefix: String,
    crd_dirs: Vec<PathBuf>,
    cass_operator: bool,
    dc_ready_after: Duration,
    workloads_ready_after: Option<Duration>,
    rbac: bool,
    pod_listeners: bool,
    force_decommission: bool,
}

impl Default for SimBuilder {
    fn default() -> Self {
        SimBuilder {
            clusters: 1,
            context_prefix: "sim-".into(),
            crd_dirs: Vec::new(),
            cass_operator: false,
            dc_ready_after: Duration::from_secs(1),
            workloads_ready_after: None,
            rbac: false,
            pod_listeners: false,
            force_decommission: true,
        }
    }
}

impl SimBuilder {
    pub fn new() -> Self {
        SimBuilder::default()
    }

    /// Number of clusters (at least 1).
    pub fn clusters(mut self, count: usize) -> Self {
        self.clusters = count.max(1);
        self
    }

    /// Context, cluster and user names are `<prefix><index>`.
    pub fn context_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.context_prefix = prefix.into();
        self
    }

    /// Applies every CRD in this directory to every cluster at start (may be repeated).
    pub fn crd_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.crd_dirs.push(dir.into());
        self
    }

    /// Runs the cass-operator stand-in in every cluster.
    pub fn cass_operator(mut self, enabled: bool) -> Self {
        self.cass_operator = enabled;
        self
    }

    /// How long the stand-in takes to make a CassandraDatacenter Ready.
    pub fn dc_ready_after(mut self, delay: Duration) -> Self {
        self.dc_ready_after = delay;
        self
    }

    /// Whether the stand-in decommissions with `force=true`, as cass-operator does (the
    /// default): Cassandra then skips its replication-factor check. `false` makes Cassandra
    /// refuse to decommission a node that a keyspace's replication still needs, so a scale-down
    /// or a datacenter removal before its keyspaces are altered stays stuck (ScalingDown, the
    /// pod labelled Decommissioning, Events saying why) until they are.
    pub fn force_decommission(mut self, force: bool) -> Self {
        self.force_decommission = force;
        self
    }

    /// How long a Deployment or StatefulSet takes to report its replicas ready after a change,
    /// as kube-controller-manager would once the pods run (default: the built-in controllers'
    /// short delay).
    pub fn workloads_ready_after(mut self, delay: Duration) -> Self {
        self.workloads_ready_after = Some(delay);
        self
    }

    /// Authorises resource requests with each cluster's Roles, ClusterRoles, RoleBindings and
    /// ClusterRoleBindings, as kube-apiserver's RBAC authorizer does (403 when none allows).
    /// The kubeconfig's admin token (user `kubernetes-admin` in `system:masters`) stays
    /// unrestricted.
    pub fn rbac(mut self, enforced: bool) -> Self {
        self.rbac = enforced;
        self
    }

    /// Gives every pod whose `status.podIP` is in 127.0.0.0/8 (not 127.0.0.1) and that is a
    /// node of the Cassandra model real listeners at its IP: the Management API on 8080 over
    /// plain HTTP, and whatever else is served on [`Sim::pod_network`]. Off by default: each
    /// listener takes a file descriptor, and a large Sim (100 clusters × 10 datacenters × 3
    /// pods, two ports each) would pass the usual limit of 1024; the pods' proxy subresource
    /// reaches the same services without them.
    pub fn pod_listeners(mut self, enabled: bool) -> Self {
        self.pod_listeners = enabled;
        self
    }

    pub async fn start(self) -> anyhow::Result<Sim> {
        // kube's rustls client picks the process-wide provider; make it ring's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = CertificateAuthority::generate()?;
        let client_certificates = ca.client_authenticator()?;
        let mut crds = Vec::new();
        if self.cass_operator {
            crds.push(crate::cass_operator::builtin_crd());
            crds.push(crate::cassandra_task::builtin_crd());
        }
        for dir in &self.crd_dirs {
            crds.extend(crate::crd::load_crd_dir(dir)?);
        }
        let crds = Arc::new(crds);
        let cassandra = crate::cassandra::SharedModel::default();
        let pod_ports = Arc::new(crate::pod_network::PodPorts::default());
        pod_ports.serve(
            crate::management_api::PORT,
            crate::management_api::ManagementApi::new(Arc::clone(&cassandra)),
        );
        let mut starting = Vec::with_capacity(self.clusters);
        for index in 0..self.clusters {
            let context = format!("{}{index}", self.context_prefix);
            let security = Security {
                tls: ca.server_config(&context, &client_certificates)?,
                client_certificates: Arc::clone(&client_certificates),
                enforce_rbac: self.rbac,
            };
            let crds = Arc::clone(&crds);
            let cassandra = Arc::clone(&cassandra);
            let pod_ports = Arc::clone(&pod_ports);
            let config = StoreConfig {
                workload_ready_delay: self.workloads_ready_after,
                ..StoreConfig::default()
            };
            // Clusters start in parallel: loading large CRDs is CPU-bound.
            starting.push(tokio::spawn(async move {
                start_cluster(
                    index, context, security, &crds, config, cassandra, pod_ports,
                )
                .await
            }));
        }
        let mut clusters = Vec::with_capacity(self.clusters);
        let mut tasks = Vec::new();
        for started in starting {
            let (cluster, controllers) = started.await.context("cluster start task")??;
            tasks.push(controllers);
            clusters.push(cluster);
        }
        // Medusa answers on the pods whose template runs it; it needs the stores for their
        // medusa.ini, so it is served once the clusters exist.
        let stores: std::collections::BTreeMap<String, Arc<Store>> =
            clusters.iter().map(|c| (c.context.clone(), Arc::clone(&c.store))).collect();
        pod_ports.serve(
            crate::medusa::GRPC_PORT,
            Arc::new(crate::medusa::MedusaPort::new(
                Arc::clone(&cassandra),
                stores.clone(),
            )),
        );
        // Reaper answers 8080 of Reaper pods and hands the others to the Management API.
        let reaper = crate::reaper::ReaperPort::new(
            Arc::clone(&cassandra),
            stores,
            pod_ports.service(crate::reaper::APP_PORT),
        );
        pod_ports.serve(crate::reaper::ADMIN_PORT, Arc::new(reaper.admin_port()));
        pod_ports.serve(crate::reaper::APP_PORT, Arc::new(reaper));
        let regions = clusters
            .iter()
            .map(|cluster| crate::pod_network::Region {
                context: cluster.context.clone(),
                store: Arc::clone(&cluster.store),
            })
            .collect();
        let pod_network = crate::pod_network::PodNetwork::new(
            Arc::clone(&cassandra),
            pod_ports,
            regions,
            self.pod_listeners,
        );
        tasks.extend(pod_network.spawn());
        let wiring = Arc::new(crate::cass_operator::Wiring::default());
        for cluster in &clusters {
            tasks.push(crate::reaper::pods::spawn(
                Arc::clone(&cluster.store),
                Arc::clone(&wiring),
            ));
        }
        if self.cass_operator {
            let settings = crate::cass_operator::Settings {
                ready_after: self.dc_ready_after,
                force_decommission: self.force_decommission,
            };
            for cluster in &clusters {
                tasks.push(crate::cass_operator::spawn(
                    Arc::clone(cluster),
                    settings,
                    Arc::clone(&wiring),
                ));
                tasks.push(crate::cassandra_task::spawn(Arc::clone(cluster)));
            }
        }
        Ok(Sim {
            inner: Arc::new(SimInner {
                clusters,
                cassandra,
                pod_network,
                wiring,
                ca_pem: ca.ca_pem().to_string(),
                ca,
                tasks: Mutex::new(tasks),
                kubeconfig_path: Mutex::new(None),
            }),
        })
    }
}

/// One cluster: its store with the built-in kinds and controllers, its listener, its CRDs.
async fn start_cluster(
    index: usize,
    context: String,
    security: Security,
    crds: &[serde_json::Value],
    config: StoreConfig,
    cassandra: crate::cassandra::SharedModel,
    pod_ports: Arc<crate::pod_network::PodPorts>,
) -> anyhow::Result<(Arc<Cluster>, tokio::task::JoinHandle<()>)> {
    let store = Arc::new(Store::with_builtins(config));
    let controllers = store.spawn_controllers();
    let mut catalog = Catalog::default();
    for mut info in crate::store::builtin_resources() {
        if info.group == crate::crd::CRD_GROUP && info.plural == crate::crd::CRD_PLURAL {
            info.admission = Some(Arc::new(crate::crd::CrdAdmission));
            store.register(info.clone());
        }
        catalog.add_builtin(builtin_served(info));
    }
    let (cluster, listener) = Cluster::bind_new(
        index, context, store, catalog, security, cassandra, pod_ports,
    )
    .await?;
    crate::server::accept(&cluster, listener);
    crate::crd::apply_crds(&cluster, crds)
        .await
        .with_context(|| format!("applying CRDs to cluster {index}"))?;
    Ok((cluster, controllers))
}

struct SimInner {
    clusters: Vec<Arc<Cluster>>,
    /// The Cassandra clusters behind every cluster's CassandraDatacenters.
    cassandra: crate::cassandra::SharedModel,
    /// What pods serve on their ports, and their listeners.
    pod_network: Arc<crate::pod_network::PodNetwork>,
    /// Pod addresses and the model-changed signal the cass-operator stand-ins share.
    wiring: Arc<crate::cass_operator::Wiring>,
    ca_pem: String,
    /// Issues client certificates.
    ca: CertificateAuthority,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Rewritten when a token rotates, so scripts keep working.
    kubeconfig_path: Mutex<Option<PathBuf>>,
}

/// A running set of simulated clusters. Cheap to clone.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<SimInner>,
}

/// What the admin API lists for a cluster.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterSummary {
    pub index: usize,
    pub context: String,
    pub url: String,
    pub state: &'static str,
}

impl Sim {
    fn cluster(&self, index: usize) -> anyhow::Result<&Arc<Cluster>> {
        self.inner.clusters.get(index).with_context(|| {
            format!(
                "no cluster {index} (there are {})",
                self.inner.clusters.len()
            )
        })
    }

    /// The Cassandra model every cluster shares.
    pub fn cassandra(&self) -> crate::cassandra::SharedModel {
        Arc::clone(&self.inner.cassandra)
    }

    /// The pods' ports: where Medusa's gRPC is served on 50051
    /// ([`PodNetwork::serve`](crate::pod_network::PodNetwork::serve)), which listeners are bound.
    pub fn pod_network(&self) -> Arc<crate::pod_network::PodNetwork> {
        Arc::clone(&self.inner.pod_network)
    }

    /// What the cass-operator stand-ins share: pod addresses, and the signal to call after
    /// changing node liveness in the model behind their back.
    pub fn cassandra_wiring(&self) -> Arc<crate::cass_operator::Wiring> {
        Arc::clone(&self.inner.wiring)
    }

    pub fn cluster_count(&self) -> usize {
        self.inner.clusters.len()
    }

    pub fn context_name(&self, index: usize) -> String {
        self.cluster(index).map(|c| c.context.clone()).unwrap_or_default()
    }

    /// `https://127.0.0.1:<port>` of a cluster.
    pub fn url(&self, index: usize) -> String {
        self.cluster(index).map(|c| c.url()).unwrap_or_default()
    }

    /// The cluster's current bearer token.
    pub fn token(&self, index: usize) -> String {
        self.cluster(index).map(|c| c.token()).unwrap_or_default()
    }

    /// The object store of a cluster, for seeding many objects without going through HTTP
    /// (benchmarks, large fixtures).
    pub fn store(&self, index: usize) -> anyhow::Result<Arc<crate::store::Store>> {
        Ok(Arc::clone(&self.cluster(index)?.store))
    }

    /// The store's description of a served resource (group, version, plural).
    pub fn resource(
        &self,
        index: usize,
        group: &str,
        version: &str,
        plural: &str,
    ) -> anyhow::Result<crate::store::ResourceInfo> {
        self.cluster(index)?
            .catalog()
            .find(group, version, plural)
            .map(|r| r.info.clone())
            .with_context(|| format!("cluster {index} does not serve {group}/{version} {plural}"))
    }

    pub fn ca_pem(&self) -> &str {
        &self.inner.ca_pem
    }

    /// Whether the clusters enforce RBAC ([`SimBuilder::rbac`]).
    pub fn enforces_rbac(&self) -> bool {
        self.inner.clusters.first().is_some_and(|c| c.enforces_rbac())
    }

    /// A client certificate signed by the simulator's CA for `user` in `groups` (at most two),
    /// valid for a year: every cluster authenticates it as that user, as kube-apiserver maps
    /// x509 client certificates (CN = user, O = groups).
    pub fn issue_client_certificate(
        &self,
        user: &str,
        groups: &[&str],
    ) -> anyhow::Result<ClientCertificate> {
        self.inner.ca.issue_client_certificate(user, groups)
    }

    /// A kubeconfig with the single context of cluster `index` (current), its user
    /// authenticating with `certificate` (`client-certificate-data` and `client-key-data`),
    /// as kind writes its kubeconfigs.
    pub fn client_certificate_kubeconfig_yaml(
        &self,
        index: usize,
        certificate: &ClientCertificate,
    ) -> anyhow::Result<String> {
        let cluster = self.cluster(index)?;
        let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        let name = &cluster.context;
        Ok(format!(
            "apiVersion: v1\nkind: Config\npreferences: {{}}\ncurrent-context: {name}\nclusters:\n- name: {name}\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: {name}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n",
            cluster.url(),
            encode(&self.inner.ca_pem),
            encode(&certificate.certificate_pem),
            encode(&certificate.key_pem),
        ))
    }

    pub fn clusters(&self) -> Vec<ClusterSummary> {
        self.inner
            .clusters
            .iter()
            .map(|c| ClusterSummary {
                index: c.index,
                context: c.context.clone(),
                url: c.url(),
                state: c.state().as_str(),
            })
            .collect()
    }

    /// One kubeconfig with a context per cluster; current-context is cluster 0.
    pub fn kubeconfig_yaml(&self) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.inner.ca_pem.as_bytes());
        let mut clusters = String::new();
        let mut users = String::new();
        let mut contexts = String::new();
        for c in &self.inner.clusters {
            let name = &c.context;
            clusters.push_str(&format!(
                "- name: {name}\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n",
                c.url()
            ));
            users.push_str(&format!(
                "- name: {name}\n  user:\n    token: {}\n",
                c.token()
            ));
            contexts.push_str(&format!(
                "- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n"
            ));
        }
        let current = self.context_name(0);
        format!(
            "apiVersion: v1\nkind: Config\npreferences: {{}}\ncurrent-context: {current}\nclusters:\n{clusters}users:\n{users}contexts:\n{contexts}"
        )
    }

    /// Writes the kubeconfig (mode 0600) and remembers the path to rewrite it on token rotation.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> anyhow::Result<()> {
        let path = path.as_ref();
        write_private(path, &self.kubeconfig_yaml())?;
        if let Ok(mut remembered) = self.inner.kubeconfig_path.lock() {
            *remembered = Some(path.to_path_buf());
        }
        Ok(())
    }

    /// A kube-rs client for cluster `index`, built from the kubeconfig like any other program.
    pub async fn client(&self, index: usize) -> anyhow::Result<kube::Client> {
        let config = self.client_config(index).await?;
        kube::Client::try_from(config).context("building a kube client")
    }

    /// [`Sim::client`] whose requests carry `user_agent`: the request accounting tells them
    /// apart from other clients'.
    pub async fn client_with_user_agent(
        &self,
        index: usize,
        user_agent: &str,
    ) -> anyhow::Result<kube::Client> {
        let mut config = self.client_config(index).await?;
        let value = hyper::header::HeaderValue::from_str(user_agent)
            .context("the User-Agent is not a valid header value")?;
        config.headers.push((hyper::header::USER_AGENT, value));
        kube::Client::try_from(config).context("building a kube client")
    }

    /// A kube-rs client for cluster `index` that authenticates with `token` (a service
    /// account's, say) instead of the admin token.
    pub async fn client_with_token(
        &self,
        index: usize,
        token: &str,
    ) -> anyhow::Result<kube::Client> {
        let mut config = self.client_config(index).await?;
        config.auth_info = kube::config::AuthInfo {
            token: Some(token.to_string().into()),
            ..Default::default()
        };
        kube::Client::try_from(config).context("building a kube client")
    }

    /// A kube-rs client for cluster `index` that authenticates with a client certificate
    /// ([`Sim::issue_client_certificate`]) and no token.
    pub async fn client_with_certificate(
        &self,
        index: usize,
        certificate: &ClientCertificate,
    ) -> anyhow::Result<kube::Client> {
        let yaml = self.client_certificate_kubeconfig_yaml(index, certificate)?;
        let kubeconfig =
            kube::config::Kubeconfig::from_yaml(&yaml).context("parsing the kubeconfig")?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .context("kube config from the client-certificate kubeconfig")?;
        kube::Client::try_from(config).context("building a kube client")
    }

    /// The kube config of cluster `index`'s context, for a client built by other means.
    pub async fn client_config(&self, index: usize) -> anyhow::Result<kube::Config> {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml())
            .context("parsing the generated kubeconfig")?;
        let options = kube::config::KubeConfigOptions {
            context: Some(self.context_name(index)),
            ..Default::default()
        };
        kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .context("kube config from the generated kubeconfig")
    }

    /// Closes the cluster's listener and connections (refused from now on); data is kept.
    pub fn stop(&self, index: usize) -> anyhow::Result<()> {
        self.cluster(index)?.stop();
        Ok(())
    }

    /// Serves the cluster again on the same port.
    pub async fn start(&self, index: usize) -> anyhow::Result<()> {
        let cluster = self.cluster(index)?;
        if let Some(listener) = cluster.rebind().await? {
            crate::server::accept(cluster, listener);
        }
        Ok(())
    }

    pub fn state(&self, index: usize) -> anyhow::Result<ClusterState> {
        Ok(self.cluster(index)?.state())
    }

    /// Delays every response of the cluster by `latency` (zero to remove).
    pub fn set_latency(&self, index: usize, latency: Duration) -> anyhow::Result<()> {
        self.cluster(index)?.set_latency(latency);
        Ok(())
    }

    /// Fails the next `count` requests with `code`: 500 (a Status) or 429 (plain text with
    /// `Retry-After: 1`, as API Priority and Fairness answers).
    /// Refuses (403 Forbidden, worded as RBAC words it) every request of cluster `index` for
    /// `resource` (a plural name, e.g. `cassandradatacenters`), or stops refusing them.
    pub fn forbid(&self, index: usize, resource: &str, forbidden: bool) -> anyhow::Result<()> {
        self.cluster(index)?.forbid(resource, forbidden);
        Ok(())
    }

    pub fn fail_next(&self, index: usize, count: u32, code: u16) -> anyhow::Result<()> {
        anyhow::ensure!(
            matches!(code, 429 | 500 | 503 | 504),
            "fail code must be 429, 500, 503 or 504"
        );
        self.cluster(index)?.fail_next(count, code);
        Ok(())
    }

    /// Resource requests the cluster served since it started (or since the last
    /// [`Sim::reset_requests`]), by client (User-Agent), verb and resource.
    pub fn requests(&self, index: usize) -> anyhow::Result<Vec<crate::requests::RequestCount>> {
        Ok(self.cluster(index)?.requests.snapshot())
    }

    /// The requests RBAC refused since the cluster started (or since the last
    /// [`Sim::reset_requests`]): each 403's message and how many times it was answered.
    pub fn refused_requests(
        &self,
        index: usize,
    ) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
        Ok(self.cluster(index)?.requests.refused())
    }

    /// TLS connections open to the cluster now, by protocol.
    pub fn connections(&self, index: usize) -> anyhow::Result<crate::cluster::ConnectionCounts> {
        Ok(self.cluster(index)?.connections())
    }

    /// Forgets the counted requests of the cluster.
    pub fn reset_requests(&self, index: usize) -> anyhow::Result<()> {
        self.cluster(index)?.requests.reset();
        Ok(())
    }

    /// Ends every open watch stream of the cluster.
    pub fn drop_watches(&self, index: usize) -> anyhow::Result<()> {
        self.cluster(index)?.drop_watches();
        Ok(())
    }

    /// Gives the cluster a new token and returns it; the old one gets 401 from now on.
    pub fn rotate_token(&self, index: usize) -> anyhow::Result<String> {
        let token = self.cluster(index)?.rotate_token();
        let path = self.inner.kubeconfig_path.lock().ok().and_then(|p| p.clone());
        if let Some(path) = path {
            write_private(&path, &self.kubeconfig_yaml())?;
        }
        Ok(token)
    }

    /// Stops every cluster and background task.
    pub async fn shutdown(&self) {
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
        self.inner.pod_network.close();
        for cluster in &self.inner.clusters {
            cluster.stop();
        }
    }
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes()).with_context(|| format!("writing {}", path.display()))
}
