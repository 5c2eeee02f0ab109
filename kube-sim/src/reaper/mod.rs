//! Reaper's stand-in: the REST API of Cassandra Reaper 3.x as k8ssandra deploys it, on port
//! 8080 (`app`) of every Reaper pod, and Dropwizard's admin `/healthcheck` and Reaper's
//! `/prometheusMetrics` (the repair runner's gauges) on 8081 (`admin`), over the shared Cassandra
//! model.
//!
//! A Reaper pod is a pod labelled `k8ssandra.io/reaper` (Federator's and k8ssandra-operator's
//! Reaper Deployments and StatefulSets label their pods so). Its state outlives the pod where
//! real Reaper's would: with `cassandra` storage (kept under the label's value, the Reaper's
//! name), and with `memory` storage (the image's default) only when Reaper 3.6 or later writes
//! it to a PersistentVolumeClaim mounted at its storage directory; otherwise a new pod starts
//! empty. The state is kept in memory here ([`ReaperState`]), not in the model's `reaper_db`
//! keyspace.
//! Authentication follows the pod's `REAPER_AUTH_ENABLED`, `REAPER_AUTH_USER` and
//! `REAPER_AUTH_PASSWORD` (values or Secret references).
//!
//! Semantics follow cassandra-reaper 3.8's `resources/ClusterResource.java`,
//! `RepairRunResource.java`, `RepairScheduleResource.java`, `PingResource.java`,
//! `resources/auth/*.java` with `shiro.ini`, and the views in `resources/view/`. The repair
//! runner is simplified: segments repair one after another, [`state::SEGMENT_MILLIS`] of the
//! model's clock each, whenever a request reaches the Reaper; a failing segment puts the run in
//! ERROR with Cassandra's message instead of being retried.
//!
//! Kubernetes has no controller here that makes pods for Deployments and StatefulSets;
//! [`pods::spawn`] makes the pods of each Reaper Deployment and StatefulSet (and a
//! StatefulSet's claims; only workloads with the label are watched).

mod auto_scheduling;
mod http;
mod metrics;
pub mod pods;
mod resources;
pub mod server_tls;
mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpStream;

pub use auto_scheduling::{AutoScheduling, OWNER as AUTO_SCHEDULING_OWNER};
pub use http::{Params, Reply};
pub use resources::{ReaperRequest, handle, resolve_seed, symbolic_name};
pub use server_tls::ServerTls;
pub use state::{ReaperState, RunState, SEGMENT_MILLIS};

use crate::cassandra::{CassandraModel, PodRef, SharedModel};
use crate::pod_network::{PodRequest, PodResponse, PortService, ProxyReply, ServiceFuture};
use crate::store::Store;

/// Reaper's UI and REST port (`app`).
pub const APP_PORT: u16 = 8080;
/// Dropwizard's admin port (`admin`): `/healthcheck`, `/ping`.
pub const ADMIN_PORT: u16 = 8081;
/// The label of Reaper pods, naming their Reaper.
pub const REAPER_LABEL: &str = "k8ssandra.io/reaper";
const CONTAINER: &str = "reaper";
/// Reaper's configuration defaults (`cassandra-reaper.yml` of the image).
pub const DEFAULT_SEGMENT_COUNT_PER_NODE: i64 = 64;
pub const DEFAULT_INTENSITY: f64 = 0.9;
pub const DEFAULT_PARALLELISM: &str = "DATACENTER_AWARE";
pub const DEFAULT_DAYS_BETWEEN: i64 = 7;
pub const DEFAULT_SEGMENT_TIMEOUT_MINS: i64 = 30;
pub const DEFAULT_JMX_PORT: i64 = 7199;
/// What a Reaper pod's environment configures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaperConfig {
    /// Where the Reaper's pod runs (region and namespace): the cluster DNS it resolves names
    /// with.
    pub region: String,
    pub namespace: String,
    /// The UI/REST user and password when authentication is on.
    pub login: Option<(String, String)>,
    /// `REAPER_AUTO_SCHEDULING_*`; None when off.
    pub auto_scheduling: Option<AutoScheduling>,
}

/// Reaper on port 8080 (or its admin port) of every Reaper pod, as a [`PortService`]; other
/// pods' port 8080 goes to `fallback` (the Management API).
pub struct ReaperPort {
    model: SharedModel,
    stores: BTreeMap<String, Arc<Store>>,
    reapers: Arc<Mutex<HashMap<PodRef, Arc<Mutex<ReaperState>>>>>,
    fallback: Option<Arc<dyn PortService>>,
    admin: bool,
}

impl ReaperPort {
    /// The app port, handing non-Reaper pods to `fallback`.
    pub fn new(
        model: SharedModel,
        stores: BTreeMap<String, Arc<Store>>,
        fallback: Option<Arc<dyn PortService>>,
    ) -> ReaperPort {
        ReaperPort {
            model,
            stores,
            reapers: Arc::default(),
            fallback,
            admin: false,
        }
    }

    /// The admin port of the same Reapers.
    pub fn admin_port(&self) -> ReaperPort {
        ReaperPort {
            model: Arc::clone(&self.model),
            stores: self.stores.clone(),
            reapers: Arc::clone(&self.reapers),
            fallback: None,
            admin: true,
        }
    }

    /// The memory a pod's Reaper answers from (see [`storage_of`]), its configuration and its
    /// TLS on the app port ([`server_tls::of_pod`]: an error when Reaper cannot start); None
    /// for pods that are not Reapers.
    fn reaper_of(&self, pod: &PodRef) -> Option<ReaperPod> {
        let store = self.stores.get(&pod.region)?;
        let pods = store.resource("", "pods")?;
        let object = store.get(&pods, Some(&pod.namespace), &pod.name).ok()?;
        let name = object.pointer("/metadata/labels")?.get(REAPER_LABEL)?.as_str()?;
        let storage = storage_of(store, &pod.namespace, name, &object);
        let reaper = PodRef::new(&pod.region, &pod.namespace, &storage);
        let config = ReaperConfig {
            region: pod.region.clone(),
            ..config_of(store, &pod.namespace, &object)
        };
        let tls = server_tls::of_pod(store, &pod.namespace, &object);
        Some(ReaperPod {
            reaper,
            config,
            tls,
        })
    }

    /// The app port's TLS of a Reaper pod that runs (None: plain HTTP, or the admin port).
    fn app_tls(&self, found: &ReaperPod) -> Option<ServerTls> {
        match (&found.tls, self.admin) {
            (Ok(Some(tls)), false) => Some(tls.clone()),
            _ => None,
        }
    }

    /// The memory of one Reaper, made on first use.
    pub fn state_of(&self, reaper: &PodRef) -> Arc<Mutex<ReaperState>> {
        Arc::clone(self.reapers.lock().entry(reaper.clone()).or_default())
    }

    fn answer(&self, pod: &PodRef, request: &PodRequest) -> PodResponse {
        let Some(ReaperPod { reaper, config, .. }) = self.reaper_of(pod) else {
            return Reply::empty(503).into_response();
        };
        if self.admin {
            if (request.method().as_str(), request.uri().path()) == ("GET", "/prometheusMetrics") {
                let state = self.state_of(&reaper);
                let mut state = state.lock();
                let mut model = self.model.lock();
                state.advance(&mut model);
                return Reply::prometheus(metrics::prometheus_text(&state, model.now_millis()))
                    .into_response();
            }
            return admin_answer(request).into_response();
        }
        let request = ReaperRequest::from_http(request);
        let state = self.state_of(&reaper);
        let mut state = state.lock();
        let mut model = self.model.lock();
        handle(&mut state, &mut model, &config, &request).into_response()
    }
}

/// A Reaper pod as its ports see it.
struct ReaperPod {
    /// The key of the memory it answers from.
    reaper: PodRef,
    config: ReaperConfig,
    /// Its app port's TLS; an error when Reaper cannot start.
    tls: Result<Option<ServerTls>, String>,
}

/// Dropwizard's admin servlets.
fn admin_answer(request: &PodRequest) -> Reply {
    match (request.method().as_str(), request.uri().path()) {
        ("GET", "/healthcheck") => Reply::json(
            200,
            &json!({
                "deadlocks": {"healthy": true, "duration": 0},
                "reaper": {"healthy": true, "duration": 0},
            }),
        ),
        ("GET", "/ping") => Reply::plain(200, "pong\n"),
        _ => Reply::not_found(),
    }
}

/// The `reaper` container of a pod (or its first).
fn reaper_container(pod: &Value) -> Option<&Value> {
    let containers = pod.pointer("/spec/containers").and_then(Value::as_array)?;
    (containers.iter())
        .find(|c| c.get("name").and_then(Value::as_str) == Some(CONTAINER))
        .or_else(|| containers.first())
}

/// A literal variable of the `reaper` container.
fn literal(pod: &Value, name: &str) -> Option<String> {
    let env = reaper_container(pod)?.get("env")?.as_array()?;
    let var = env.iter().find(|v| v.get("name").and_then(Value::as_str) == Some(name))?;
    var.get("value").and_then(Value::as_str).map(str::to_string)
}

/// Where a Reaper pod's state lives, as the key of its memory here. With `cassandra` storage
/// (or any database) it is in the cluster: it outlives the pod, under the Reaper's name. With
/// `memory`, the image's default, Reaper writes it to `REAPER_MEMORY_STORAGE_DIRECTORY`
/// (Reaper 3.6 on): a PersistentVolumeClaim mounted there keeps it (keyed by the claim's uid, so
/// a new claim of the same name starts empty); otherwise it dies with the pod.
fn storage_of(store: &Store, namespace: &str, reaper: &str, pod: &Value) -> String {
    let storage = literal(pod, "REAPER_STORAGE_TYPE").unwrap_or_else(|| "memory".into());
    if storage != "memory" {
        return reaper.to_string();
    }
    let own = || {
        format!(
            "pod/{}",
            pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default()
        )
    };
    let persists = reaper_container(pod)
        .and_then(|c| c.get("image")?.as_str())
        .is_none_or(persists_memory_storage);
    if !persists {
        return own();
    }
    let directory = literal(pod, "REAPER_MEMORY_STORAGE_DIRECTORY")
        .unwrap_or_else(|| "/var/lib/cassandra-reaper/storage".into());
    let mounts = reaper_container(pod).and_then(|c| c.get("volumeMounts")?.as_array().cloned());
    let volume = mounts.into_iter().flatten().find_map(|mount| {
        let path = mount.get("mountPath")?.as_str()?.trim_end_matches('/');
        (path == directory.trim_end_matches('/'))
            .then(|| mount.get("name")?.as_str().map(str::to_string))?
    });
    let claim = volume.and_then(|volume| {
        let volumes = pod.pointer("/spec/volumes")?.as_array()?;
        let found =
            volumes.iter().find(|v| v.get("name").and_then(Value::as_str) == Some(&volume))?;
        found.pointer("/persistentVolumeClaim/claimName")?.as_str().map(str::to_string)
    });
    let claim_uid = claim.and_then(|claim| {
        let claims = store.resource("", "persistentvolumeclaims")?;
        let object = store.get(&claims, Some(namespace), &claim).ok()?;
        object.pointer("/metadata/uid")?.as_str().map(str::to_string)
    });
    match claim_uid {
        Some(uid) => format!("pvc/{uid}"),
        None => own(),
    }
}

/// Whether the image's Reaper persists its memory storage: 3.6 and later (a tag that is not a
/// version, such as `latest`, is taken as recent).
fn persists_memory_storage(image: &str) -> bool {
    let reference = image.split('@').next().unwrap_or(image);
    let Some((path, tag)) = reference.rsplit_once(':') else {
        return true;
    };
    if tag.contains('/') || path.is_empty() {
        return true;
    }
    let mut parts = tag.trim_start_matches('v').split('.').map(|p| p.parse::<u32>());
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= (3, 6),
        (Some(Ok(major)), None) => major > 3,
        _ => true,
    }
}

/// The `reaper` container's auth environment; Secret references are read from the store.
fn config_of(store: &Store, namespace: &str, pod: &Value) -> ReaperConfig {
    let variable = |name: &str| server_tls::variable(store, namespace, pod, name);
    let enabled = variable("REAPER_AUTH_ENABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    ReaperConfig {
        region: String::new(),
        namespace: namespace.to_string(),
        login: enabled.then(|| {
            (
                variable("REAPER_AUTH_USER").unwrap_or_else(|| "admin".into()),
                variable("REAPER_AUTH_PASSWORD").unwrap_or_else(|| "admin".into()),
            )
        }),
        auto_scheduling: AutoScheduling::from_env(variable),
    }
}

impl PortService for ReaperPort {
    /// Every Reaper pod whose Reaper could start (both ports), else the fallback's pods.
    fn listens(&self, model: &CassandraModel, pod: &PodRef) -> bool {
        if let Some(found) = self.reaper_of(pod) {
            return found.tls.is_ok();
        }
        self.fallback.as_ref().is_some_and(|fallback| fallback.listens(model, pod))
    }

    /// Plain HTTP; a TLS app port closes the connection on it without an answer, as Jetty's
    /// TLS connector does with what is not a handshake (Go's transport reads `EOF`).
    fn proxy(&self, pod: PodRef, request: PodRequest) -> ProxyReply {
        let Some(found) = self.reaper_of(&pod) else {
            return match &self.fallback {
                Some(fallback) => fallback.proxy(pod, request),
                None => ProxyReply::Failed("EOF".into()),
            };
        };
        if self.app_tls(&found).is_some() {
            return ProxyReply::Failed("EOF".into());
        }
        let response = self.answer(&pod, &request);
        ProxyReply::Response(Box::pin(async move { response }))
    }

    /// `https:`: a TLS app port answers (the proxy does not verify its certificate), unless it
    /// requires a client certificate, which the proxy does not have.
    fn proxy_tls(&self, pod: PodRef, request: PodRequest) -> ProxyReply {
        let Some(found) = self.reaper_of(&pod) else {
            return match &self.fallback {
                Some(fallback) => fallback.proxy_tls(pod, request),
                None => ProxyReply::Failed("EOF".into()),
            };
        };
        match self.app_tls(&found) {
            None => {
                ProxyReply::Failed("tls: first record does not look like a TLS handshake".into())
            }
            Some(tls) if tls.client_ca_pem.is_some() => {
                ProxyReply::Failed("remote error: tls: certificate required".into())
            }
            Some(_) => {
                let response = self.answer(&pod, &request);
                ProxyReply::Response(Box::pin(async move { response }))
            }
        }
    }

    /// HTTP/1.1, plain or (the app port with `REAPER_SERVER_TLS_ENABLE`) over TLS, requiring a
    /// client certificate signed by the truststore's CA with `REAPER_SERVER_TLS_CLIENT_AUTH`.
    fn serve_connection(&self, pod: PodRef, stream: TcpStream) -> ServiceFuture<()> {
        let Some(found) = self.reaper_of(&pod) else {
            return match &self.fallback {
                Some(fallback) => fallback.serve_connection(pod, stream),
                None => Box::pin(async {}),
            };
        };
        let tls = self.app_tls(&found);
        let port = ReaperPort {
            model: Arc::clone(&self.model),
            stores: self.stores.clone(),
            reapers: Arc::clone(&self.reapers),
            fallback: None,
            admin: self.admin,
        };
        let port = Arc::new(port);
        let answer = move |request| {
            let response = port.answer(&pod, &request);
            async move { response }
        };
        let Some(tls) = tls else {
            return Box::pin(crate::pod_network::serve_http1(stream, "Reaper", answer));
        };
        Box::pin(async move {
            let config = crate::tls::server_tls_config(
                &tls.certificate_pem,
                &tls.key_pem,
                tls.client_ca_pem.as_deref(),
            );
            match config {
                Ok(config) => {
                    crate::pod_network::serve_tls_http1(stream, "Reaper", config, answer).await
                }
                Err(error) => tracing::debug!(%error, "Reaper's TLS cannot be set up"),
            }
        })
    }
}
