//! Which cluster a region is: a ClientConfig may reach the very cluster Federator runs in
//! (k8ssandra-operator's setups register the control plane's own cluster too). Clusters are told
//! apart by the UID of their `kube-system` namespace, the cluster ID of KEP-2149: an API server
//! address cannot tell, since the hub is reached in-cluster by another address than the one in a
//! kubeconfig.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use tokio::sync::OnceCell;
use tracing::{debug, info};

use super::region::Region;

/// The namespace whose UID identifies a cluster.
const IDENTITY_NAMESPACE: &str = "kube-system";

/// The hub's own cluster ID, read once (the first time a region is compared with it).
pub(crate) struct HubIdentity {
    client: kube::Client,
    uid: OnceCell<String>,
}

impl HubIdentity {
    pub(crate) fn new(client: kube::Client) -> HubIdentity {
        HubIdentity {
            client,
            uid: OnceCell::new(),
        }
    }

    /// The hub's cluster ID; None while it cannot be read (tried again next time).
    async fn uid(&self, timeout: Duration) -> Option<&str> {
        self.uid
            .get_or_try_init(|| cluster_id(&self.client, timeout))
            .await
            .ok()
            .map(String::as_str)
    }
}

/// The cluster ID of the cluster `client` reaches.
async fn cluster_id(client: &kube::Client, timeout: Duration) -> Result<String, String> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match tokio::time::timeout(timeout, namespaces.get(IDENTITY_NAMESPACE)).await {
        Ok(Ok(namespace)) => namespace
            .metadata
            .uid
            .ok_or_else(|| format!("namespace {IDENTITY_NAMESPACE} has no uid")),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Compares `region`'s cluster with the hub's and records the answer on the region; returns
/// whether the answer changed. Nothing is recorded when either cannot be read (the prober tries
/// again when the region answers).
pub(crate) async fn check(region: &Region, hub: &HubIdentity, timeout: Duration) -> bool {
    let Some(hub_uid) = hub.uid(timeout).await else {
        debug!(
            context = region.context(),
            "the hub's cluster ID cannot be read yet"
        );
        return false;
    };
    let uid = match cluster_id(&region.probe_client(), timeout).await {
        Ok(uid) => uid,
        Err(error) => {
            debug!(context = region.context(), error = %error, "the region's cluster ID cannot be read");
            return false;
        }
    };
    let reaches_hub = uid == hub_uid;
    let changed = region.record_reaches_hub(reaches_hub);
    if changed && reaches_hub {
        info!(
            context = region.context(),
            "the region is the hub itself: its datacenters are treated as the hub's"
        );
    } else if changed {
        debug!(context = region.context(), "the region is not the hub");
    }
    changed
}
