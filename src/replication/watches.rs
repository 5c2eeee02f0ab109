//! Per-region watches of the copies (Secrets labelled `k8ssandra.io/replicated-secret-name`): a
//! copy edited or deleted in a region re-queues its ReplicatedSecret, so drift is repaired within
//! seconds without polling. A watch starts and stops with its region in the registry.

use std::collections::BTreeMap;

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use tracing::{debug, info};

use super::desired::{REPLICATED_SECRET_NAME_LABEL, ReplicationKey};
use crate::api::replicated_secret::ReplicatedSecret;
use crate::clusters::{ChangeKind, RegionChange, Registry};

/// Aborts a region's watch task when the region goes or is replaced.
struct WatchTask(tokio::task::JoinHandle<()>);

impl Drop for WatchTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The ReplicatedSecret a copy came from, from its label.
pub fn owner_of(copy: &Secret) -> Option<ObjectRef<ReplicatedSecret>> {
    let value = copy.metadata.labels.as_ref()?.get(REPLICATED_SECRET_NAME_LABEL)?;
    let key = ReplicationKey::from_label_value(value)?;
    Some(ObjectRef::new(&key.name).within(&key.namespace))
}

/// The ReplicatedSecrets whose copies change, in every region (the hub included); and the
/// future keeping the watches in step with the registry (drop it to stop them all).
pub fn copy_changes(
    registry: Registry,
) -> (
    impl Stream<Item = ObjectRef<ReplicatedSecret>> + Send + 'static,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (sender, receiver) = mpsc::unbounded();
    let manage = async move {
        let mut changes = Box::pin(registry.changes());
        let mut watches: BTreeMap<String, WatchTask> = BTreeMap::new();
        watches.insert(String::new(), start_watch(&registry, "", &sender));
        for context in registry.contexts() {
            let task = start_watch(&registry, &context, &sender);
            watches.insert(context, task);
        }
        while let Some(change) = changes.next().await {
            match change {
                RegionChange::Context { context, kind } => match kind {
                    ChangeKind::Added
                    | ChangeKind::Replaced
                    | ChangeKind::Claimed
                    | ChangeKind::Identity => {
                        let task = start_watch(&registry, &context, &sender);
                        watches.insert(context, task);
                    }
                    ChangeKind::Removed | ChangeKind::Misconfigured => {
                        if watches.remove(&context).is_some() {
                            info!(context = %context, "stopped watching replicated Secrets");
                        }
                    }
                    // The watch's own backoff rides out an outage.
                    ChangeKind::Reachable | ChangeKind::Unreachable | ChangeKind::WatchProblem => {}
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
    sender: &mpsc::UnboundedSender<ObjectRef<ReplicatedSecret>>,
) -> WatchTask {
    // A context that reaches the hub is watched as the hub ("").
    let region =
        (!registry.reaches_hub(context)).then(|| registry.region_any_health(context)).flatten();
    let namespaces = registry.namespaces(context).to_vec();
    let sender = sender.clone();
    let context = context.to_string();
    WatchTask(tokio::spawn(async move {
        let Some(region) = region else {
            debug!(context = %context, "no usable client: replicated Secrets not watched");
            return;
        };
        info!(context = %context, "watching replicated Secrets");
        let api: Api<Secret> = crate::cache::scoped(&region.client(), &namespaces);
        let config = watcher::Config::default().labels(REPLICATED_SECRET_NAME_LABEL);
        let mut events = Box::pin(watcher(api, config).default_backoff());
        while let Some(event) = events.next().await {
            let copy = match event {
                Ok(
                    watcher::Event::Apply(copy)
                    | watcher::Event::Delete(copy)
                    | watcher::Event::InitApply(copy),
                ) => copy,
                Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
                Err(error) => {
                    debug!(context = %context, error = %error, "replicated Secret watch");
                    continue;
                }
            };
            if let Some(owner) = owner_of(&copy)
                && sender.unbounded_send(owner).is_err()
            {
                return;
            }
        }
    }))
}
