//! Per-region watches of the CassandraDatacenters Federator made: a remote change (cass-operator
//! status, an edit or delete by hand) re-queues the K8ssandraCluster that owns the datacenter, so
//! drift is corrected and status stays current without polling. A watch starts and stops with
//! its region in the registry, and restarts when the region's credentials change.

use std::collections::BTreeMap;

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use kube::Api;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use tracing::{debug, info};

use crate::api::cassdc::CassandraDatacenter;
use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::api::shared::{
    CLUSTER_NAME_LABEL, CLUSTER_NAMESPACE_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE,
};
use crate::clusters::{ChangeKind, RegionChange, Registry};

/// Aborts a region's watch task when the region goes or is replaced.
struct WatchTask(tokio::task::JoinHandle<()>);

impl Drop for WatchTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The K8ssandraCluster that owns a CassandraDatacenter, from its ownership labels.
pub fn owner_of(dc: &CassandraDatacenter) -> Option<ObjectRef<K8ssandraCluster>> {
    let labels = dc.metadata.labels.as_ref()?;
    let name = labels.get(CLUSTER_NAME_LABEL)?;
    let namespace = labels.get(CLUSTER_NAMESPACE_LABEL)?;
    Some(ObjectRef::new(name).within(namespace))
}

/// The owners of remote CassandraDatacenters as they change, in every region; and the future
/// that keeps the watches in step with the registry (it never ends: drop it to stop them all).
pub fn remote_changes(
    registry: Registry,
) -> (
    impl Stream<Item = ObjectRef<K8ssandraCluster>> + Send + 'static,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (sender, receiver) = mpsc::unbounded();
    let manage = async move {
        let mut changes = Box::pin(registry.changes());
        let mut watches: BTreeMap<String, WatchTask> = BTreeMap::new();
        // The hub ("") and every region known now; later ones arrive as changes.
        watches.insert(String::new(), start_watch(&registry, "", &sender));
        for context in registry.contexts() {
            let task = start_watch(&registry, &context, &sender);
            watches.insert(context, task);
        }
        while let Some(change) = changes.next().await {
            match change {
                RegionChange::Context { context, kind } => match kind {
                    // New client (or new credentials): a fresh watch with it.
                    ChangeKind::Added | ChangeKind::Replaced | ChangeKind::Claimed => {
                        let task = start_watch(&registry, &context, &sender);
                        watches.insert(context, task);
                    }
                    ChangeKind::Removed | ChangeKind::Misconfigured => {
                        if watches.remove(&context).is_some() {
                            info!(context = %context, "stopped watching CassandraDatacenters");
                        }
                    }
                    // The watch's own backoff rides out an outage.
                    ChangeKind::Reachable | ChangeKind::Unreachable => {}
                },
                RegionChange::Resync => {
                    let known = registry.contexts();
                    watches.retain(|context, _| context.is_empty() || known.contains(context));
                    for context in known {
                        if let std::collections::btree_map::Entry::Vacant(slot) =
                            watches.entry(context)
                        {
                            let task = start_watch(&registry, slot.key(), &sender);
                            slot.insert(task);
                        }
                    }
                }
            }
        }
    };
    (receiver, manage)
}

fn start_watch(
    registry: &Registry,
    context: &str,
    sender: &mpsc::UnboundedSender<ObjectRef<K8ssandraCluster>>,
) -> WatchTask {
    let region = registry.region_any_health(context);
    let sender = sender.clone();
    let context = context.to_string();
    WatchTask(tokio::spawn(async move {
        let Some(region) = region else {
            debug!(context = %context, "no usable client: CassandraDatacenters not watched");
            return;
        };
        info!(context = %context, "watching CassandraDatacenters made by Federator");
        let api: Api<CassandraDatacenter> = Api::all(region.client());
        let config =
            watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
        let mut events = Box::pin(watcher(api, config).default_backoff());
        while let Some(event) = events.next().await {
            let dc = match event {
                Ok(
                    watcher::Event::Apply(dc)
                    | watcher::Event::Delete(dc)
                    | watcher::Event::InitApply(dc),
                ) => dc,
                Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
                Err(error) => {
                    debug!(context = %context, error = %error, "CassandraDatacenter watch");
                    continue;
                }
            };
            if let Some(owner) = owner_of(&dc)
                && sender.unbounded_send(owner).is_err()
            {
                // The controller is gone.
                return;
            }
        }
    }))
}
