//! Per-region watches of what Federator made (CassandraDatacenters, seed EndpointSlices) and of
//! the seed pods: a remote change (cass-operator status, an edit or delete by hand) re-queues the
//! K8ssandraCluster that owns the object, so drift is corrected and status stays current without
//! polling. The watches also fill per-region caches ([`RegionCaches`]) that reconciles read
//! instead of asking every region again. A watch starts and stops with its region in the
//! registry, and restarts when the region's credentials change. A watch the region refuses
//! (403: the ClientConfig's credentials may not list or watch that kind there; 404: the kind
//! is not served) is logged at warn with its resource, namespace and region, and recorded here
//! for the status of the K8ssandraClusters that use the region.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use futures::channel::mpsc;
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use tracing::{debug, info, warn};

use crate::api::cassdc::CassandraDatacenter;
use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::api::shared::{
    CLUSTER_NAME_LABEL, CLUSTER_NAMESPACE_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE,
};
use crate::cache::{Compact, Kept, scoped};
use crate::clusters::{ChangeKind, RegionChange, Registry};

use super::observed::LiveDatacenter;
use crate::workload::labels::SEED_NODE_LABEL;

/// Aborts a region's watch tasks when the region goes or is replaced.
pub(super) struct WatchTask(pub(super) Vec<tokio::task::JoinHandle<()>>);

impl Drop for WatchTask {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// What the watches of one region have seen.
#[derive(Clone)]
pub struct RegionCache {
    /// CassandraDatacenters labelled managed-by Federator.
    pub datacenters: Store<LiveDatacenter>,
    /// EndpointSlices labelled managed-by Federator (the seed slices), only compared against.
    pub seed_slices: Store<Compact<EndpointSlice>>,
    /// Pods cass-operator labelled seed nodes: their IPs.
    pub seed_pods: Store<SeedPod>,
    synced: Arc<AtomicBool>,
    /// Bumped on every CassandraDatacenter event: tells when `owners` is out of date.
    datacenter_events: Arc<AtomicU64>,
    owners: Arc<Mutex<OwnerIndex>>,
}

/// The cached CassandraDatacenters by owning K8ssandraCluster (namespace, name), as of
/// `events_seen`: a reconcile asks for one cluster's, among thousands.
#[derive(Default)]
struct OwnerIndex {
    events_seen: Option<u64>,
    datacenters: HashMap<(String, String), Vec<String>>,
}

impl RegionCache {
    /// Names of the cached CassandraDatacenters this K8ssandraCluster owns (by label).
    fn owned_by(&self, cluster_name: &str, cluster_namespace: &str) -> Vec<String> {
        let events = self.datacenter_events.load(Ordering::Acquire);
        let Ok(mut index) = self.owners.lock() else {
            return Vec::new();
        };
        if index.events_seen != Some(events) {
            let mut datacenters: HashMap<(String, String), Vec<String>> = HashMap::new();
            for dc in self.datacenters.state() {
                if let Some(owner) = owner_of_meta(dc.meta()) {
                    let key = (owner.namespace.unwrap_or_default(), owner.name);
                    datacenters.entry(key).or_default().push(dc.name_any());
                }
            }
            *index = OwnerIndex {
                events_seen: Some(events),
                datacenters,
            };
        }
        let key = (cluster_namespace.to_string(), cluster_name.to_string());
        index.datacenters.get(&key).cloned().unwrap_or_default()
    }
}

/// Every region's cache, by context ("" is the hub). A region's cache is given out only once
/// its initial lists are in, so a reconcile never mistakes "not listed yet" for "absent".
#[derive(Clone, Default)]
pub struct RegionCaches {
    regions: Arc<RwLock<BTreeMap<String, RegionCache>>>,
    /// Watches the regions refuse, by context.
    refused: Arc<Mutex<BTreeMap<String, RefusedWatches>>>,
}

/// (resource, namespace) → what was refused and why.
type RefusedWatches = BTreeMap<(String, String), String>;

impl RegionCaches {
    pub fn region(&self, context: &str) -> Option<RegionCache> {
        let regions = self.regions.read().ok()?;
        let cache = regions.get(context)?;
        cache.synced.load(Ordering::Acquire).then(|| cache.clone())
    }

    /// Every CassandraDatacenter of this K8ssandraCluster the synced caches hold, as
    /// (name, context): finds datacenters the status does not know yet (e.g. created just
    /// before a rename).
    pub fn owned_datacenters(
        &self,
        cluster_name: &str,
        cluster_namespace: &str,
    ) -> Vec<(String, String)> {
        let Ok(regions) = self.regions.read() else {
            return Vec::new();
        };
        regions
            .iter()
            .filter(|(_, cache)| cache.synced.load(Ordering::Acquire))
            .flat_map(|(context, cache)| {
                cache
                    .owned_by(cluster_name, cluster_namespace)
                    .into_iter()
                    .map(move |name| (name, context.clone()))
            })
            .collect()
    }

    /// The refused watches of these regions, each as a message naming its region, resource
    /// and namespace.
    pub fn refused_watches<'a>(&self, contexts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let Ok(refused) = self.refused.lock() else {
            return Vec::new();
        };
        let mut messages = Vec::new();
        for context in contexts {
            messages.extend(refused.get(context).into_iter().flat_map(|r| r.values().cloned()));
        }
        messages
    }

    /// Records that the watch of `resource` in `namespace` of `context` is refused (`Some`,
    /// why) or works; true when that changed.
    fn set_refused(
        &self,
        context: &str,
        resource: &str,
        namespace: &str,
        refusal: Option<String>,
    ) -> bool {
        let Ok(mut refused) = self.refused.lock() else {
            return false;
        };
        let key = (resource.to_string(), namespace.to_string());
        match refusal {
            Some(message) => {
                let region = refused.entry(context.to_string()).or_default();
                region.insert(key, message.clone()) != Some(message)
            }
            None => {
                let Some(region) = refused.get_mut(context) else {
                    return false;
                };
                let was = region.remove(&key).is_some();
                if region.is_empty() {
                    refused.remove(context);
                }
                was
            }
        }
    }

    fn insert(&self, context: &str, cache: RegionCache) {
        if let Ok(mut regions) = self.regions.write() {
            regions.insert(context.to_string(), cache);
        }
    }

    /// Forgets the region: its cache and its refused watches (a new watch records its own).
    fn remove(&self, context: &str) {
        if let Ok(mut regions) = self.regions.write() {
            regions.remove(context);
        }
        if let Ok(mut refused) = self.refused.lock() {
            refused.remove(context);
        }
    }
}

/// The K8ssandraCluster an object made by Federator belongs to, from its ownership labels.
pub fn owner_of_meta(metadata: &ObjectMeta) -> Option<ObjectRef<K8ssandraCluster>> {
    let labels = metadata.labels.as_ref()?;
    let name = labels.get(CLUSTER_NAME_LABEL)?;
    let namespace = labels.get(CLUSTER_NAMESPACE_LABEL)?;
    Some(ObjectRef::new(name).within(namespace))
}

/// The owners of remote CassandraDatacenters as they change, in every region; and the future
/// that keeps the watches in step with the registry (it never ends: drop it to stop them all).
pub fn remote_changes(
    registry: Registry,
    caches: RegionCaches,
) -> (
    impl Stream<Item = ObjectRef<K8ssandraCluster>> + Send + 'static,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (sender, receiver) = mpsc::unbounded();
    let manage = async move {
        let mut changes = Box::pin(registry.changes());
        let mut watches: BTreeMap<String, WatchTask> = BTreeMap::new();
        // The hub ("") and every region known now; later ones arrive as changes.
        watches.insert(String::new(), start_watch(&registry, "", &sender, &caches));
        for context in registry.contexts() {
            let task = start_watch(&registry, &context, &sender, &caches);
            watches.insert(context, task);
        }
        while let Some(change) = changes.next().await {
            match change {
                RegionChange::Context { context, kind } => match kind {
                    // New client (or new credentials): a fresh watch with it.
                    ChangeKind::Added
                    | ChangeKind::Replaced
                    | ChangeKind::Claimed
                    | ChangeKind::Identity => {
                        let task = start_watch(&registry, &context, &sender, &caches);
                        watches.insert(context, task);
                    }
                    ChangeKind::Removed | ChangeKind::Misconfigured => {
                        caches.remove(&context);
                        if watches.remove(&context).is_some() {
                            info!(context = %context, "stopped watching CassandraDatacenters");
                        }
                    }
                    // The watch's own backoff rides out an outage; a refused watch starts
                    // over by itself.
                    ChangeKind::Reachable | ChangeKind::Unreachable | ChangeKind::WatchProblem => {}
                },
                RegionChange::Resync => {
                    let known = registry.contexts();
                    watches.retain(|context, _| {
                        let keep = context.is_empty() || known.contains(context);
                        if !keep {
                            caches.remove(context);
                        }
                        keep
                    });
                    for context in known {
                        if let std::collections::btree_map::Entry::Vacant(slot) =
                            watches.entry(context)
                        {
                            let task = start_watch(&registry, slot.key(), &sender, &caches);
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
    caches: &RegionCaches,
) -> WatchTask {
    // A replaced region's old cache must not be read while the new one fills.
    caches.remove(context);
    if registry.reaches_hub(context) {
        debug!(context = %context, "reaches the hub: watched as the hub");
        return WatchTask(Vec::new());
    }
    let Some(region) = registry.region_any_health(context) else {
        debug!(context = %context, "no usable client: nothing watched");
        return WatchTask(Vec::new());
    };
    info!(context = %context, "watching the objects Federator made");
    let client = region.client();
    let made_by_us = format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}");
    let (datacenters, datacenters_writer) = reflector::store();
    let (seed_slices, slices_writer) = reflector::store();
    let (seed_pods, pods_writer) = reflector::store();
    let cache = RegionCache {
        datacenters: datacenters.clone(),
        seed_slices: seed_slices.clone(),
        seed_pods: seed_pods.clone(),
        synced: Arc::new(AtomicBool::new(false)),
        datacenter_events: Arc::new(AtomicU64::new(0)),
        owners: Arc::default(),
    };
    caches.insert(context, cache.clone());
    let site = WatchSite {
        registry: registry.clone(),
        caches: caches.clone(),
        context: context.to_string(),
        namespace: match registry.namespaces(context) {
            [single] => single.clone(),
            _ => String::new(),
        },
    };
    let tasks = vec![
        tokio::spawn(reflect(
            scoped::<CassandraDatacenter>(&client, registry.namespaces(context)),
            made_by_us.clone(),
            |mut dc: CassandraDatacenter| {
                crate::cache::without_managed_fields(&mut dc);
                LiveDatacenter::from(dc)
            },
            datacenters_writer,
            Some(sender.clone()),
            Some(cache.datacenter_events.clone()),
            site.clone(),
        )),
        tokio::spawn(reflect(
            scoped::<EndpointSlice>(&client, registry.namespaces(context)),
            made_by_us,
            |mut slice| {
                crate::cache::without_managed_fields(&mut slice);
                Compact::compact(slice)
            },
            slices_writer,
            Some(sender.clone()),
            None,
            site.clone(),
        )),
        tokio::spawn(reflect(
            scoped::<Pod>(&client, registry.namespaces(context)),
            format!("{SEED_NODE_LABEL}=true"),
            seed_pod_essentials,
            pods_writer,
            None,
            None,
            site,
        )),
        tokio::spawn(async move {
            let synced = datacenters.wait_until_ready().await.is_ok()
                && seed_slices.wait_until_ready().await.is_ok()
                && seed_pods.wait_until_ready().await.is_ok();
            cache.synced.store(synced, Ordering::Release);
        }),
    ];
    WatchTask(tasks)
}

/// What the seed slices are made of: a seed pod's name, namespace and labels (the seed
/// selector), and its IP. A whole `Pod` is 2 KiB before any field is set.
pub type SeedPod = Kept<Pod, Option<std::net::IpAddr>>;

fn seed_pod_essentials(pod: Pod) -> SeedPod {
    let metadata = pod.metadata;
    let ip = pod.status.and_then(|status| status.pod_ip).and_then(|ip| ip.parse().ok());
    Kept::new(crate::cache::identity(metadata), ip)
}

/// Where a watch runs: its region and namespace ("" for all), and where its refusals go.
#[derive(Clone)]
struct WatchSite {
    registry: Registry,
    caches: RegionCaches,
    context: String,
    namespace: String,
}

impl WatchSite {
    /// Records a watch error: a refusal (403, 404) is logged at warn and shown in status once,
    /// anything else (an outage, a dropped connection) is the backoff's to ride out.
    fn failed(&self, resource: &str, error: &watcher::Error) {
        let Some(refusal) = refusal(error) else {
            debug!(context = %self.context, resource, error = %error, "region watch");
            return;
        };
        let namespace = match self.namespace.as_str() {
            "" => "all namespaces".to_string(),
            namespace => format!("namespace {namespace}"),
        };
        let region = match self.context.as_str() {
            "" => "the control plane's cluster".to_string(),
            context => format!("region {context}"),
        };
        let message = format!(
            "watching {resource} in {namespace} of {region} is refused ({} {}): {}; {}",
            refusal.code,
            refusal.reason,
            refusal.message,
            match refusal.code {
                403 => "grant the region's credentials (its ClientConfig) list and watch on it",
                _ => "install the CRD that serves it there",
            }
        );
        if self.caches.set_refused(&self.context, resource, &self.namespace, Some(message)) {
            warn!(region = %self.context, resource, namespace = %self.namespace, code = refusal.code, error = %refusal.message, "region watch refused");
            self.registry.notify_watch_problem(&self.context);
        }
    }

    /// The watch of `resource` works (again).
    fn works(&self, resource: &str) {
        if self.caches.set_refused(&self.context, resource, &self.namespace, None) {
            info!(region = %self.context, resource, namespace = %self.namespace, "region watch works again");
            self.registry.notify_watch_problem(&self.context);
        }
    }
}

/// The API server's refusal behind a watch error, when it refused: 403 or 404.
fn refusal(error: &watcher::Error) -> Option<&kube::core::Status> {
    let status = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.as_ref(),
        watcher::Error::WatchError(status) => status.as_ref(),
        _ => return None,
    };
    matches!(status.code, 403 | 404).then_some(status)
}

/// Keeps `writer`'s store in step with the label-selected objects of `api` (each as
/// `to_cached` makes it: what reconciles read of it), and sends the owner of each changed
/// object to `owners` (when given).
async fn reflect<K, Cached>(
    api: Api<K>,
    selector: String,
    to_cached: fn(K) -> Cached,
    writer: reflector::store::Writer<Cached>,
    owners: Option<mpsc::UnboundedSender<ObjectRef<K8ssandraCluster>>>,
    events_seen: Option<Arc<AtomicU64>>,
    site: WatchSite,
) where
    K: crate::cache::Watched,
    Cached: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let config = watcher::Config::default().labels(&selector);
    let resource = K::plural(&()).to_string();
    let mut writer = writer;
    let mut refused = false;
    let mut restart_after = REFUSED_RESTART_MIN;
    loop {
        let objects = watcher(api.clone(), config.clone())
            .map_ok(move |event| cached_event(event, to_cached))
            .default_backoff();
        let mut events = Box::pin(objects);
        while let Some(event) = events.next().await {
            if let Some(counter) = &events_seen {
                counter.fetch_add(1, Ordering::Release);
            }
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    site.failed(&resource, &error);
                    if refusal(&error).is_some() {
                        refused = true;
                        break;
                    }
                    continue;
                }
            };
            writer.apply_watcher_event(&event);
            let object = match event {
                watcher::Event::Apply(object)
                | watcher::Event::Delete(object)
                | watcher::Event::InitApply(object) => object,
                // Init comes before the list is asked for: it proves nothing.
                watcher::Event::Init => continue,
                watcher::Event::InitDone => {
                    if refused {
                        refused = false;
                        restart_after = REFUSED_RESTART_MIN;
                        site.works(&resource);
                    }
                    continue;
                }
            };
            if let Some(owners) = &owners
                && let Some(owner) = owner_of_meta(object.meta())
                && owners.unbounded_send(owner).is_err()
            {
                // The controller is gone.
                return;
            }
        }
        // A refused watch starts over with a fresh list: one resumed after the fix would send
        // nothing that tells it works. The cache keeps what it had meanwhile.
        tokio::time::sleep(restart_after).await;
        restart_after = (restart_after * 2).min(REFUSED_RESTART_MAX);
    }
}

/// How long a refused watch waits before it starts over, doubling up to the maximum.
const REFUSED_RESTART_MIN: std::time::Duration = std::time::Duration::from_secs(1);
const REFUSED_RESTART_MAX: std::time::Duration = std::time::Duration::from_secs(60);

/// The same watch event about the object as the store keeps it.
fn cached_event<K, Cached>(
    event: watcher::Event<K>,
    to_cached: fn(K) -> Cached,
) -> watcher::Event<Cached> {
    match event {
        watcher::Event::Apply(object) => watcher::Event::Apply(to_cached(object)),
        watcher::Event::Delete(object) => watcher::Event::Delete(to_cached(object)),
        watcher::Event::InitApply(object) => watcher::Event::InitApply(to_cached(object)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}
