//! The simulated pod network: what a Cassandra pod serves on its ports (the Management API on
//! 8080; Medusa's gRPC on 50051 once registered), reachable two ways:
//!
//! - through the API server's pod proxy (`/api/v1/namespaces/NS/pods/POD:PORT/proxy/...`), which
//!   calls the port's [`PortService`] in-process: always available;
//! - at the pod's own IP, when [`SimBuilder::pod_listeners`](crate::SimBuilder::pod_listeners)
//!   is on: every pod whose `status.podIP` is in 127.0.0.0/8 (but not 127.0.0.1, where the API
//!   servers listen) and that a port's service says listens gets a real TCP listener on
//!   `podIP:port`; it goes when the pod, its IP or the model's node goes.
//!
//! Listeners follow a watch of every region's Pods, and the model (which sends no
//! notifications) is polled while some pod has an address; with no pod, nothing runs but an
//! idle watch per region. Linux routes all of 127.0.0.0/8 to the loopback interface, so no
//! address has to be configured; other systems may refuse to bind such addresses.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::cassandra::{CassandraModel, PodRef, SharedModel};
use crate::store::{ListOptions, Store, WatchOptions};

/// A future a port service returns.
pub type ServiceFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
/// An HTTP request to a pod: path and query in the URI, the body read.
pub type PodRequest = hyper::Request<Bytes>;
/// An HTTP answer of a pod.
pub type PodResponse = hyper::Response<Bytes>;

/// How the API server's proxy fares with a port.
pub enum ProxyReply {
    /// The port speaks HTTP/1.1 and answers.
    Response(ServiceFuture<PodResponse>),
    /// The connection opened but the exchange failed (a port that does not speak HTTP/1.1):
    /// Go's transport error, which the proxy reports as `error trying to reach service: ...`.
    Failed(String),
}

/// Serves HTTP/1.1 on one connection accepted at a pod's address (plain TCP, or TLS over it):
/// each request's body is read whole (413 beyond 1 MiB) and `answer` gives the response. `what`
/// names the service in the log of a connection that ends with an error.
pub async fn serve_http1<S, F, Fut>(stream: S, what: &'static str, answer: F)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn(PodRequest) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = PodResponse> + Send + 'static,
{
    use http_body_util::{BodyExt, Full, Limited};
    const MAX_BODY_BYTES: usize = 1 << 20;
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let answer = answer.clone();
            async move {
                let (parts, body) = request.into_parts();
                let response = match Limited::new(body, MAX_BODY_BYTES).collect().await {
                    Ok(collected) => {
                        answer(hyper::Request::from_parts(parts, collected.to_bytes())).await
                    }
                    Err(_) => {
                        let mut too_large = hyper::Response::new(Bytes::new());
                        *too_large.status_mut() = hyper::StatusCode::PAYLOAD_TOO_LARGE;
                        too_large
                    }
                };
                Ok::<_, std::convert::Infallible>(response.map(Full::new))
            }
        });
    if let Err(error) = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%error, "{what} connection ended with an error");
    }
}

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Serves HTTP/1.1 over TLS on one connection accepted at a pod's address, as a JVM or Netty
/// server does: what does not start with a TLS handshake record is not TLS, and the connection
/// is closed at once without an answer (rustls would wait for a record that long); a failed
/// handshake (no or a foreign client certificate when one is required) ends it too.
pub async fn serve_tls_http1<F, Fut>(
    stream: TcpStream,
    what: &'static str,
    config: Arc<rustls::ServerConfig>,
    answer: F,
) where
    F: Fn(PodRequest) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = PodResponse> + Send + 'static,
{
    let mut first = [0u8; 1];
    if !matches!(stream.peek(&mut first).await, Ok(1) if first[0] == TLS_HANDSHAKE_RECORD) {
        return;
    }
    match tokio_rustls::TlsAcceptor::from(config).accept(stream).await {
        Ok(stream) => serve_http1(stream, what, answer).await,
        Err(error) => tracing::debug!(%error, "{what} TLS handshake failed"),
    }
}

/// What listens on one port of the pods.
pub trait PortService: Send + Sync + 'static {
    /// Whether `pod` has a process listening on this port now (called with the model locked).
    fn listens(&self, model: &CassandraModel, pod: &PodRef) -> bool;

    /// One request the API server's pod or service proxy forwards to the pod over plain
    /// HTTP/1.1 (no scheme, or `http:`).
    fn proxy(&self, pod: PodRef, request: PodRequest) -> ProxyReply;

    /// One request the proxy forwards with the `https:` scheme: kube-apiserver speaks TLS to
    /// the pod, without verifying its certificate and without a client certificate the pod
    /// would accept. A port that serves plain HTTP answers the handshake with HTTP, which Go's
    /// TLS client cannot read.
    fn proxy_tls(&self, pod: PodRef, request: PodRequest) -> ProxyReply {
        let _ = (pod, request);
        ProxyReply::Failed("tls: first record does not look like a TLS handshake".into())
    }

    /// Serves one connection accepted at the pod's IP on this port.
    fn serve_connection(&self, pod: PodRef, stream: TcpStream) -> ServiceFuture<()>;
}

/// The services of every port, shared by the API servers' proxies and the listeners.
#[derive(Default)]
pub struct PodPorts {
    services: RwLock<BTreeMap<u16, Arc<dyn PortService>>>,
}

impl PodPorts {
    /// Serves `port` of every pod the service says listens (replacing what served it).
    pub fn serve(&self, port: u16, service: Arc<dyn PortService>) {
        self.services.write().insert(port, service);
    }

    pub fn service(&self, port: u16) -> Option<Arc<dyn PortService>> {
        self.services.read().get(&port).cloned()
    }

    fn all(&self) -> Vec<(u16, Arc<dyn PortService>)> {
        self.services.read().iter().map(|(port, service)| (*port, Arc::clone(service))).collect()
    }
}

/// One simulated Kubernetes cluster as the network sees it: its context (the model's region)
/// and the store holding its Pods.
pub struct Region {
    pub context: String,
    pub store: Arc<Store>,
}

/// How often the model is looked at for nodes that came or went while some pod has an address.
const MODEL_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The Sim-wide pod network: port services and, when enabled, the listeners at pod IPs.
pub struct PodNetwork {
    model: SharedModel,
    ports: Arc<PodPorts>,
    regions: Vec<Region>,
    /// None when listeners are off.
    listeners: Option<Listeners>,
}

struct Listeners {
    state: Mutex<ListenerState>,
    changed: tokio::sync::Notify,
}

#[derive(Default)]
struct ListenerState {
    /// Pods whose IP a listener can bind.
    pods: HashMap<PodRef, Ipv4Addr>,
    bound: HashMap<(PodRef, u16), BoundPort>,
    /// Binds that failed, so each failure is logged once.
    failed: HashSet<(PodRef, u16)>,
}

/// A listener at `podIP:port`; dropping it closes the listener and its connections.
struct BoundPort {
    address: SocketAddrV4,
    task: JoinHandle<()>,
}

impl Drop for BoundPort {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An address a pod listener may bind: loopback, but not the API servers' 127.0.0.1.
pub fn bindable_pod_ip(ip: &str) -> Option<Ipv4Addr> {
    let ip: Ipv4Addr = ip.parse().ok()?;
    (ip.is_loopback() && ip != Ipv4Addr::LOCALHOST).then_some(ip)
}

impl PodNetwork {
    /// A network over `regions`; with `listen`, pods get listeners once [`PodNetwork::spawn`]
    /// runs.
    pub fn new(
        model: SharedModel,
        ports: Arc<PodPorts>,
        regions: Vec<Region>,
        listen: bool,
    ) -> Arc<PodNetwork> {
        let listeners = listen.then(|| Listeners {
            state: Mutex::new(ListenerState::default()),
            changed: tokio::sync::Notify::new(),
        });
        Arc::new(PodNetwork {
            model,
            ports,
            regions,
            listeners,
        })
    }

    /// The tasks that keep listeners in step with Pods and the model (none when listeners are
    /// off): a Pod watch per region and the loop that binds and unbinds.
    pub fn spawn(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        if self.listeners.is_none() {
            return Vec::new();
        }
        let mut tasks: Vec<JoinHandle<()>> = (0..self.regions.len())
            .map(|region| tokio::spawn(Arc::clone(self).watch_region(region)))
            .collect();
        tasks.push(tokio::spawn(Arc::clone(self).keep_listeners()));
        tasks
    }

    /// The port services the API servers' proxies use.
    pub fn ports(&self) -> &Arc<PodPorts> {
        &self.ports
    }

    /// Serves `port` of the pods with `service` (e.g. Medusa's gRPC on 50051); existing pods
    /// get listeners at the next sync.
    pub fn serve(&self, port: u16, service: Arc<dyn PortService>) {
        self.ports.serve(port, service);
        if let Some(listeners) = &self.listeners {
            listeners.changed.notify_one();
        }
    }

    pub fn listeners_enabled(&self) -> bool {
        self.listeners.is_some()
    }

    /// The listeners bound now, by pod and port.
    pub fn listening(&self) -> Vec<(PodRef, SocketAddr)> {
        let Some(listeners) = &self.listeners else {
            return Vec::new();
        };
        let mut bound: Vec<(PodRef, SocketAddr)> = listeners
            .state
            .lock()
            .bound
            .iter()
            .map(|((pod, _), bound)| (pod.clone(), SocketAddr::V4(bound.address)))
            .collect();
        bound.sort();
        bound
    }

    /// Closes every listener (the Sim shuts down); the watch tasks are the caller's to stop.
    pub fn close(&self) {
        if let Some(listeners) = &self.listeners {
            let mut state = listeners.state.lock();
            state.pods.clear();
            state.bound.clear();
        }
    }

    /// Reads every region's Pods and the model now and binds or unbinds to match, instead of
    /// waiting for the watch and the next poll (tests call it after changing pods or nodes).
    pub fn resync(&self) {
        let Some(listeners) = &self.listeners else {
            return;
        };
        for region in &self.regions {
            if let Some((pods, _)) = list_pods(region) {
                replace_region_pods(&mut listeners.state.lock(), &region.context, pods);
            }
        }
        self.sync();
    }

    /// Binds what should listen and is not bound, unbinds what should not listen any more.
    fn sync(&self) {
        let Some(listeners) = &self.listeners else {
            return;
        };
        let pods: Vec<(PodRef, Ipv4Addr)> =
            listeners.state.lock().pods.iter().map(|(pod, ip)| (pod.clone(), *ip)).collect();
        let services = self.ports.all();
        let desired: HashMap<(PodRef, u16), SocketAddrV4> = {
            let model = self.model.lock();
            pods.iter()
                .flat_map(|(pod, ip)| {
                    services
                        .iter()
                        .filter(|(_, service)| service.listens(&model, pod))
                        .map(|(port, _)| ((pod.clone(), *port), SocketAddrV4::new(*ip, *port)))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let mut state = listeners.state.lock();
        state.bound.retain(|key, bound| desired.get(key) == Some(&bound.address));
        state.failed.retain(|key| desired.contains_key(key));
        for (key, address) in desired {
            if state.bound.contains_key(&key) {
                continue;
            }
            match bind(address, key.0.clone(), Arc::clone(&self.ports)) {
                Ok(bound) => {
                    state.failed.remove(&key);
                    state.bound.insert(key, bound);
                }
                Err(error) => {
                    if state.failed.insert(key.clone()) {
                        tracing::warn!(pod = %key.0, %address, %error, "cannot listen at the pod's address");
                    }
                }
            }
        }
    }

    /// Syncs whenever Pods change, and every poll interval while some pod has an address.
    async fn keep_listeners(self: Arc<Self>) {
        let Some(listeners) = &self.listeners else {
            return;
        };
        loop {
            let idle = listeners.state.lock().pods.is_empty();
            if idle {
                listeners.changed.notified().await;
            } else {
                tokio::select! {
                    _ = listeners.changed.notified() => {}
                    _ = tokio::time::sleep(MODEL_POLL_INTERVAL) => {}
                }
            }
            self.sync();
        }
    }

    /// Lists, then watches, one region's Pods, keeping the addresses of its pods.
    async fn watch_region(self: Arc<Self>, index: usize) {
        let (Some(listeners), Some(region)) = (&self.listeners, self.regions.get(index)) else {
            return;
        };
        loop {
            let Some((pods, resource_version)) = list_pods(region) else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            replace_region_pods(&mut listeners.state.lock(), &region.context, pods);
            listeners.changed.notify_one();
            let Some(info) = region.store.resource("", "pods") else {
                continue;
            };
            let options = WatchOptions {
                resource_version: Some(resource_version),
                ..Default::default()
            };
            let mut events = match region.store.watch(&info, None, &options) {
                Ok(events) => events,
                Err(error) => {
                    tracing::debug!(region = %region.context, %error, "pod network watch");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            while let Some(event) = events.next().await {
                let change = match event.event_type {
                    "ERROR" => break,
                    "BOOKMARK" => continue,
                    "DELETED" => pod_ref(&region.context, &event.object).map(|pod| (pod, None)),
                    _ => pod_address(&region.context, &event.object)
                        .map(|(pod, ip)| (pod, Some(ip)))
                        .or_else(|| pod_ref(&region.context, &event.object).map(|p| (p, None))),
                };
                let Some((pod, ip)) = change else { continue };
                let changed = {
                    let mut state = listeners.state.lock();
                    match ip {
                        Some(ip) => state.pods.insert(pod, ip) != Some(ip),
                        None => state.pods.remove(&pod).is_some(),
                    }
                };
                if changed {
                    listeners.changed.notify_one();
                }
            }
        }
    }
}

/// The region's pods with a bindable address, and the list's resourceVersion.
fn list_pods(region: &Region) -> Option<(Vec<(PodRef, Ipv4Addr)>, String)> {
    let info = region.store.resource("", "pods")?;
    let list = region.store.list(&info, None, &ListOptions::default()).ok()?;
    let resource_version =
        list.pointer("/metadata/resourceVersion").and_then(Value::as_str)?.to_string();
    let pods = list
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|pod| pod_address(&region.context, pod))
        .collect();
    Some((pods, resource_version))
}

fn replace_region_pods(state: &mut ListenerState, region: &str, pods: Vec<(PodRef, Ipv4Addr)>) {
    state.pods.retain(|pod, _| pod.region != region);
    state.pods.extend(pods);
}

fn pod_ref(region: &str, pod: &Value) -> Option<PodRef> {
    let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str)?;
    let name = pod.pointer("/metadata/name").and_then(Value::as_str)?;
    Some(PodRef::new(region, namespace, name))
}

/// A pod with an address its listeners can bind.
fn pod_address(region: &str, pod: &Value) -> Option<(PodRef, Ipv4Addr)> {
    let ip = bindable_pod_ip(pod.pointer("/status/podIP").and_then(Value::as_str)?)?;
    Some((pod_ref(region, pod)?, ip))
}

fn bind(address: SocketAddrV4, pod: PodRef, ports: Arc<PodPorts>) -> std::io::Result<BoundPort> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    // A listener just closed may leave connections in TIME_WAIT on the address.
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::V4(address))?;
    let listener = socket.listen(128)?;
    let task = tokio::spawn(accept(listener, pod, address.port(), ports));
    Ok(BoundPort { address, task })
}

/// Hands each connection to the port's service; aborting the task closes them all.
async fn accept(listener: TcpListener, pod: PodRef, port: u16, ports: Arc<PodPorts>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::debug!(%pod, port, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if let Some(service) = ports.service(port) {
            connections.spawn(service.serve_connection(pod.clone(), stream));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_other_than_the_api_servers_are_bindable() {
        assert_eq!(
            bindable_pod_ip("127.0.3.7"),
            Some(Ipv4Addr::new(127, 0, 3, 7))
        );
        assert_eq!(bindable_pod_ip("127.0.0.1"), None);
        assert_eq!(bindable_pod_ip("10.1.0.4"), None);
        assert_eq!(bindable_pod_ip("::1"), None);
        assert_eq!(bindable_pod_ip(""), None);
    }
}
