//! Watches of the user ConfigMaps datacenters reference (`perNodeConfigMapRef`): each is
//! watched by name in its datacenter's region and namespace, so an edit reaches the pods (through
//! the content hash on the pod template) at once instead of at the next steady re-look. The user's
//! object is not labelled or otherwise touched; only metadata is watched. A watch lives while a
//! K8ssandraCluster references the ConfigMap, and restarts when its region's client changes.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex, Weak};

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use tracing::debug;

use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::clusters::{ChangeKind, RegionChange, Registry};

use super::plan::ClusterPlan;
use super::watches::WatchTask;

/// A ConfigMap by region (context, "" for the hub), namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegionConfigMap {
    pub context: String,
    pub namespace: String,
    pub name: String,
}

/// The user ConfigMaps a cluster's datacenters reference.
pub fn referenced_by(cluster_plan: &ClusterPlan) -> BTreeSet<RegionConfigMap> {
    cluster_plan
        .datacenters
        .iter()
        .filter_map(|dc| {
            Some(RegionConfigMap {
                context: dc.context.clone(),
                namespace: dc.namespace.clone(),
                name: dc.user_per_node_config.clone()?,
            })
        })
        .collect()
}

pub type Owners = HashSet<ObjectRef<K8ssandraCluster>>;

#[derive(Default)]
struct Watched {
    /// The clusters referencing the ConfigMap: re-queued when it changes.
    owners: Owners,
    /// None while the region has no client.
    task: Option<WatchTask>,
}

/// The referenced ConfigMaps and their watches. Cloned handles share them.
#[derive(Clone)]
pub struct ReferencedConfigMaps {
    watched: Arc<Mutex<BTreeMap<RegionConfigMap, Watched>>>,
    registry: Registry,
    changed: mpsc::UnboundedSender<ObjectRef<K8ssandraCluster>>,
}

impl ReferencedConfigMaps {
    /// The watch set; the clusters to re-queue when a referenced ConfigMap changes; and the
    /// future that restarts watches as regions change (it never ends: drop it to stop it).
    pub fn start(
        registry: Registry,
    ) -> (
        Self,
        impl Stream<Item = ObjectRef<K8ssandraCluster>> + Send + 'static,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (changed, triggers) = mpsc::unbounded();
        let referenced = ReferencedConfigMaps {
            watched: Arc::default(),
            registry: registry.clone(),
            changed,
        };
        let follow_regions = {
            let referenced = referenced.clone();
            async move {
                let mut changes = Box::pin(registry.changes());
                while let Some(change) = changes.next().await {
                    match change {
                        RegionChange::Context { context, kind } => match kind {
                            ChangeKind::Reachable
                            | ChangeKind::Unreachable
                            | ChangeKind::WatchProblem => {}
                            _ => referenced.restart(|c| c == context),
                        },
                        RegionChange::Resync => referenced.restart(|_| true),
                    }
                }
            }
        };
        (referenced, triggers, follow_regions)
    }

    /// Records what `owner` references now: watches start for ConfigMaps newly referenced and
    /// stop for those no cluster references any more.
    pub fn set(&self, owner: &ObjectRef<K8ssandraCluster>, references: BTreeSet<RegionConfigMap>) {
        let Ok(mut watched) = self.watched.lock() else {
            return;
        };
        watched.retain(|config_map, entry| {
            if !references.contains(config_map) {
                entry.owners.remove(owner);
            }
            !entry.owners.is_empty()
        });
        for config_map in references {
            let entry = watched.entry(config_map.clone()).or_default();
            entry.owners.insert(owner.clone());
            if entry.task.is_none() {
                entry.task = self.watch(&config_map);
            }
        }
    }

    /// The ConfigMaps watched now, with the clusters referencing each.
    pub fn watched(&self) -> BTreeMap<RegionConfigMap, Owners> {
        let Ok(watched) = self.watched.lock() else {
            return BTreeMap::new();
        };
        watched
            .iter()
            .filter(|(_, entry)| entry.task.is_some())
            .map(|(config_map, entry)| (config_map.clone(), entry.owners.clone()))
            .collect()
    }

    /// Watches again, with the registry's current client (if any), the ConfigMaps of the
    /// regions `matches` picks.
    fn restart(&self, matches: impl Fn(&str) -> bool) {
        let Ok(mut watched) = self.watched.lock() else {
            return;
        };
        for (config_map, entry) in watched.iter_mut() {
            if matches(&config_map.context) {
                // The old watch stops before the new one starts.
                entry.task = None;
                entry.task = self.watch(config_map);
            }
        }
    }

    fn watch(&self, config_map: &RegionConfigMap) -> Option<WatchTask> {
        let region = self.registry.region_any_health(&config_map.context)?;
        let api =
            Api::<PartialObjectMeta<ConfigMap>>::namespaced(region.client(), &config_map.namespace);
        let task = tokio::spawn(follow(
            api,
            config_map.clone(),
            Arc::downgrade(&self.watched),
            self.changed.clone(),
        ));
        Some(WatchTask(vec![task]))
    }
}

/// What the watch last knew of the ConfigMap.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Nothing,
    Absent,
    Version(String),
}

/// Re-queues the ConfigMap's owners whenever its version differs from the one seen before,
/// relists included (a change made while the watch was down). The first sighting counts too:
/// the reconcile that started the watch read the ConfigMap before it.
async fn follow(
    api: Api<PartialObjectMeta<ConfigMap>>,
    config_map: RegionConfigMap,
    watched: Weak<Mutex<BTreeMap<RegionConfigMap, Watched>>>,
    changed: mpsc::UnboundedSender<ObjectRef<K8ssandraCluster>>,
) {
    let by_name = watcher::Config::default().fields(&format!("metadata.name={}", config_map.name));
    let mut events = Box::pin(watcher(api, by_name).default_backoff());
    let mut seen = Seen::Nothing;
    let mut listed = Seen::Absent;
    while let Some(event) = events.next().await {
        let now = match event {
            Ok(watcher::Event::Init) => {
                listed = Seen::Absent;
                continue;
            }
            Ok(watcher::Event::InitApply(object)) => {
                listed = Seen::Version(object.metadata.resource_version.unwrap_or_default());
                continue;
            }
            Ok(watcher::Event::InitDone) => listed.clone(),
            Ok(watcher::Event::Apply(object)) => {
                Seen::Version(object.metadata.resource_version.unwrap_or_default())
            }
            Ok(watcher::Event::Delete(_)) => Seen::Absent,
            Err(error) => {
                debug!(context = %config_map.context, namespace = %config_map.namespace,
                    name = %config_map.name, error = %error, "referenced ConfigMap watch");
                continue;
            }
        };
        if now == seen {
            continue;
        }
        seen = now;
        let owners = match watched.upgrade() {
            Some(watched) => match watched.lock() {
                Ok(watched) => {
                    watched.get(&config_map).map(|entry| entry.owners.clone()).unwrap_or_default()
                }
                Err(_) => return,
            },
            None => return,
        };
        for owner in owners {
            if changed.unbounded_send(owner).is_err() {
                // The controller is gone.
                return;
            }
        }
    }
}
