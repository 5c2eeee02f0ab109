//! One simulated cluster: its store, served-resource catalog, credentials, fault injection and
//! the TLS listener that can be stopped and started again on the same port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::auth::UserInfo;
use crate::catalog::Catalog;
use crate::tls::ClientCertAuthenticator;

/// How a cluster authenticates and authorises requests.
#[derive(Debug, Clone)]
pub struct Security {
    pub tls: Arc<rustls::ServerConfig>,
    /// Checks the client certificates the TLS layer accepted.
    pub client_certificates: Arc<ClientCertAuthenticator>,
    /// Resource requests are authorised by the cluster's RBAC objects.
    pub enforce_rbac: bool,
}

/// Faults injected through the admin API or the Rust API.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    pub latency: Duration,
    pub fail_remaining: u32,
    pub fail_code: u16,
    /// Resources (plural names) every request for is refused with 403 Forbidden, as RBAC
    /// without a rule for them answers.
    pub forbidden: std::collections::BTreeSet<String>,
}

/// Whether the cluster accepts connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    Running,
    Stopped,
}

impl ClusterState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterState::Running => "running",
            ClusterState::Stopped => "stopped",
        }
    }
}

pub struct Cluster {
    pub index: usize,
    pub context: String,
    pub port: u16,
    pub store: Arc<crate::store::Store>,
    pub catalog: RwLock<Catalog>,
    token: RwLock<String>,
    faults: Mutex<Faults>,
    pub(crate) security: Security,
    listener: Mutex<Option<JoinHandle<()>>>,
    /// Bumped to end every open watch stream.
    watch_epoch: tokio::sync::watch::Sender<u64>,
    /// Serialises CRD reconciliation so discovery never sees half an update.
    pub crd_lock: tokio::sync::Mutex<()>,
    /// Resource requests counted by client, verb and resource.
    pub requests: crate::requests::RequestLog,
    /// TLS connections open now, by the protocol ALPN chose.
    pub(crate) connections: Arc<parking_lot::Mutex<ConnectionCounts>>,
    /// The Cassandra clusters behind this cluster's CassandraDatacenters (shared by all).
    pub cassandra: crate::cassandra::SharedModel,
    /// What pods serve on their ports, for the pods' proxy subresource (shared by all).
    pub pod_ports: Arc<crate::pod_network::PodPorts>,
}

/// Connections open to a cluster, by protocol.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCounts {
    pub http1: u64,
    pub http2: u64,
}

pub fn new_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Cluster {
    /// A cluster on a fresh port, and its listener ([`crate::server::accept`] serves it).
    pub async fn bind_new(
        index: usize,
        context: String,
        store: Arc<crate::store::Store>,
        catalog: Catalog,
        security: Security,
        cassandra: crate::cassandra::SharedModel,
        pod_ports: Arc<crate::pod_network::PodPorts>,
    ) -> anyhow::Result<(Arc<Cluster>, TcpListener)> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a cluster port on 127.0.0.1")?;
        let port = listener.local_addr().context("cluster port")?.port();
        let (watch_epoch, _) = tokio::sync::watch::channel(0);
        let cluster = Arc::new(Cluster {
            index,
            context,
            port,
            store,
            catalog: RwLock::new(catalog),
            token: RwLock::new(new_token()),
            faults: Mutex::new(Faults::default()),
            security,
            listener: Mutex::new(None),
            watch_epoch,
            crd_lock: tokio::sync::Mutex::new(()),
            requests: crate::requests::RequestLog::default(),
            connections: Arc::default(),
            cassandra,
            pod_ports,
        });
        Ok((cluster, listener))
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn token(&self) -> String {
        self.token.read().map(|t| t.clone()).unwrap_or_default()
    }

    pub fn token_matches(&self, presented: &str) -> bool {
        self.token.read().map(|t| *t == presented).unwrap_or(false)
    }

    /// Whether resource requests are authorised by the cluster's RBAC objects.
    pub fn enforces_rbac(&self) -> bool {
        self.security.enforce_rbac
    }

    /// The user a bearer token stands for: the admin for the cluster's own token, the service
    /// account for the token its `kubernetes.io/service-account-token` Secret holds (filled by
    /// the token controller) while that service account exists; None for any other token.
    pub fn authenticate_token(&self, presented: &str) -> Option<UserInfo> {
        if self.token_matches(presented) {
            return Some(UserInfo::admin());
        }
        self.service_account_of_token(presented)
    }

    fn service_account_of_token(&self, presented: &str) -> Option<UserInfo> {
        use base64::Engine;
        use serde_json::Value;
        let secrets = self.store.resource("", "secrets")?;
        let list = self.store.list(&secrets, None, &crate::store::ListOptions::default()).ok()?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(presented);
        let secret = list.get("items")?.as_array()?.iter().find(|secret| {
            secret.get("type").and_then(Value::as_str)
                == Some("kubernetes.io/service-account-token")
                && secret.pointer("/data/token").and_then(Value::as_str) == Some(encoded.as_str())
        })?;
        let namespace = secret.pointer("/metadata/namespace")?.as_str()?;
        let account = secret
            .pointer("/metadata/annotations/kubernetes.io~1service-account.name")?
            .as_str()?;
        let accounts = self.store.resource("", "serviceaccounts")?;
        self.store.get(&accounts, Some(namespace), account).ok()?;
        Some(UserInfo::service_account(namespace, account))
    }

    /// Replaces the bearer token; the old one is refused from now on.
    pub fn rotate_token(&self) -> String {
        let token = new_token();
        if let Ok(mut current) = self.token.write() {
            *current = token.clone();
        }
        token
    }

    pub fn state(&self) -> ClusterState {
        match self.listener.lock() {
            Ok(guard) if guard.is_some() => ClusterState::Running,
            _ => ClusterState::Stopped,
        }
    }

    pub fn catalog(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn catalog_mut(&self) -> std::sync::RwLockWriteGuard<'_, Catalog> {
        self.catalog.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Connections open now, by protocol.
    pub fn connections(&self) -> ConnectionCounts {
        *self.connections.lock()
    }

    pub fn set_latency(&self, latency: Duration) {
        if let Ok(mut faults) = self.faults.lock() {
            faults.latency = latency;
        }
    }

    /// The next `count` requests fail with `code` (500 or 429).
    pub fn fail_next(&self, count: u32, code: u16) {
        if let Ok(mut faults) = self.faults.lock() {
            faults.fail_remaining = count;
            faults.fail_code = code;
        }
    }

    /// Every request for `resource` (a plural name) is refused with 403 (`forbidden`), or no
    /// longer.
    pub fn forbid(&self, resource: &str, forbidden: bool) {
        if let Ok(mut faults) = self.faults.lock() {
            if forbidden {
                faults.forbidden.insert(resource.to_string());
            } else {
                faults.forbidden.remove(resource);
            }
        }
    }

    /// Whether requests for `resource` are refused.
    pub fn is_forbidden(&self, resource: &str) -> bool {
        self.faults.lock().is_ok_and(|faults| faults.forbidden.contains(resource))
    }

    /// The latency to add, and the failure code if this request is to fail.
    pub fn take_fault(&self) -> (Duration, Option<u16>) {
        match self.faults.lock() {
            Ok(mut faults) => {
                let fail = if faults.fail_remaining > 0 {
                    faults.fail_remaining -= 1;
                    Some(faults.fail_code)
                } else {
                    None
                };
                (faults.latency, fail)
            }
            Err(_) => (Duration::ZERO, None),
        }
    }

    pub fn watch_epoch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.watch_epoch.subscribe()
    }

    /// Ends every open watch; clients re-establish them.
    pub fn drop_watches(&self) {
        self.watch_epoch.send_modify(|epoch| *epoch += 1);
        self.store.drop_watches();
    }

    /// Closes the listener and every open connection; data is kept.
    pub fn stop(&self) {
        let handle = self.listener.lock().ok().and_then(|mut guard| guard.take());
        if let Some(handle) = handle {
            handle.abort();
        }
    }

    /// A listener on the same port again; None while the cluster is serving.
    pub async fn rebind(&self) -> anyhow::Result<Option<TcpListener>> {
        if self.state() == ClusterState::Running {
            return Ok(None);
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        // The port was ours a moment ago; the aborted accept task may still be dropping its
        // socket, so retry briefly.
        let mut last_error = None;
        for _ in 0..50 {
            let socket = tokio::net::TcpSocket::new_v4().context("creating a socket")?;
            socket.set_reuseaddr(true).context("SO_REUSEADDR")?;
            match socket.bind(addr).and_then(|_| socket.listen(1024)) {
                Ok(listener) => return Ok(Some(listener)),
                Err(e) => last_error = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(anyhow::anyhow!(
            "re-binding {addr}: {}",
            last_error.map(|e| e.to_string()).unwrap_or_default()
        ))
    }

    /// The task serving the listener: aborting it closes the listener and its connections.
    pub(crate) fn serve_on(&self, task: JoinHandle<()>) {
        if let Ok(mut guard) = self.listener.lock()
            && let Some(old) = guard.replace(task)
        {
            old.abort();
        }
    }
}

/// Counts a connection as open from its TLS handshake until it ends or is aborted.
pub(crate) struct OpenConnection {
    counts: Arc<parking_lot::Mutex<ConnectionCounts>>,
    http2: bool,
}

impl OpenConnection {
    pub(crate) fn new(
        counts: &Arc<parking_lot::Mutex<ConnectionCounts>>,
        http2: bool,
    ) -> OpenConnection {
        *counts.lock().of(http2) += 1;
        OpenConnection {
            counts: Arc::clone(counts),
            http2,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        *self.counts.lock().of(self.http2) -= 1;
    }
}

impl ConnectionCounts {
    fn of(&mut self, http2: bool) -> &mut u64 {
        match http2 {
            true => &mut self.http2,
            false => &mut self.http1,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
