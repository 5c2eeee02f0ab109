//! Port 50051 of the Cassandra pods that run a `medusa` container: each pod's Medusa, configured
//! from the `medusa.ini` its container mounts (as k8ssandra-operator mounts the cluster's
//! `<cluster>-medusa` ConfigMap at `/etc/medusa`), keeping its in-memory state (the backups it
//! started) from one connection to the next, as the container's process does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::stream;
use medusa_grpc::medusa_server::MedusaServer;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::net::TcpStream;

use super::{MedusaConfig, MedusaService};
use crate::cassandra::{CassandraModel, PodRef, SharedModel};
use crate::pod_network::{PodRequest, PortService, ProxyReply, ServiceFuture};
use crate::store::Store;

/// Where k8ssandra-operator mounts medusa.ini in the `medusa` container.
const CONFIG_MOUNT_PATH: &str = "/etc/medusa";
pub(crate) const CONFIG_KEY: &str = "medusa.ini";
const CONTAINER: &str = "medusa";

/// Medusa on every pod that has it, as a [`PortService`] for [`super::GRPC_PORT`].
pub struct MedusaPort {
    model: SharedModel,
    /// Each region's store (by context), where the pods and their ConfigMaps are.
    stores: BTreeMap<String, Arc<Store>>,
    /// The Medusa process of each pod, made at its first connection.
    services: Mutex<HashMap<PodRef, MedusaService>>,
}

impl MedusaPort {
    pub fn new(model: SharedModel, stores: BTreeMap<String, Arc<Store>>) -> Self {
        MedusaPort {
            model,
            stores,
            services: Mutex::new(HashMap::new()),
        }
    }

    /// The medusa.ini of `pod`'s `medusa` container; None when the pod has none.
    fn config_of(&self, pod: &PodRef) -> Option<MedusaConfig> {
        let store = self.stores.get(&pod.region)?;
        let pods = store.resource("", "pods")?;
        let object = store.get(&pods, Some(&pod.namespace), &pod.name).ok()?;
        let config_map = mounted_config_map(&object)?;
        let config_maps = store.resource("", "configmaps")?;
        let found = store.get(&config_maps, Some(&pod.namespace), &config_map).ok()?;
        let text = found.get("data")?.get(CONFIG_KEY)?.as_str()?;
        MedusaConfig::from_ini(text).ok()
    }

    /// The pod's Medusa, made on first use (a new container starts with an empty registry).
    fn service_of(&self, pod: &PodRef) -> Option<MedusaService> {
        if let Some(service) = self.services.lock().get(pod) {
            return Some(service.clone());
        }
        let config = self.config_of(pod)?;
        let service = MedusaService::from_config(Arc::clone(&self.model), pod.clone(), config);
        Some(self.services.lock().entry(pod.clone()).or_insert(service).clone())
    }
}

/// The ConfigMap mounted at `/etc/medusa` in the pod's `medusa` container.
pub(crate) fn mounted_config_map(pod: &Value) -> Option<String> {
    let containers = pod.pointer("/spec/containers")?.as_array()?;
    let medusa =
        containers.iter().find(|c| c.get("name").and_then(Value::as_str) == Some(CONTAINER))?;
    let volume = medusa.get("volumeMounts")?.as_array()?.iter().find_map(|mount| {
        (mount.get("mountPath")?.as_str()? == CONFIG_MOUNT_PATH)
            .then(|| mount.get("name")?.as_str())
            .flatten()
    })?;
    let volumes = pod.pointer("/spec/volumes")?.as_array()?;
    let source = volumes.iter().find(|v| v.get("name").and_then(Value::as_str) == Some(volume))?;
    Some(source.pointer("/configMap/name")?.as_str()?.to_string())
}

impl PortService for MedusaPort {
    fn listens(&self, model: &CassandraModel, pod: &PodRef) -> bool {
        model.node(pod).is_ok() && self.config_of(pod).is_some()
    }

    /// The API server's proxy speaks HTTP/1.1; Medusa's gRPC server answers only HTTP/2.
    fn proxy(&self, _pod: PodRef, _request: PodRequest) -> ProxyReply {
        ProxyReply::Failed("EOF".to_string())
    }

    fn serve_connection(&self, pod: PodRef, stream: TcpStream) -> ServiceFuture<()> {
        let service = self.service_of(&pod);
        Box::pin(async move {
            let Some(service) = service else {
                return;
            };
            let incoming = stream::iter([Ok::<_, std::io::Error>(stream)]);
            if let Err(error) = tonic::transport::Server::builder()
                .add_service(MedusaServer::new(service))
                .serve_with_incoming(incoming)
                .await
            {
                tracing::debug!(%pod, %error, "Medusa connection ended with an error");
            }
        })
    }
}
