//! Watches that keep a cache of hub objects, shared by the controllers.

use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// `K` in the one watched namespace, or in all when zero or several are watched.
pub fn scoped<K>(client: &kube::Client, watch_namespaces: &[String]) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match watch_namespaces {
        [single] => Api::namespaced(client.clone(), single),
        _ => Api::all(client.clone()),
    }
}

/// Drops what no reconcile reads from a cached object: the managedFields are often as large as
/// the rest of it.
pub fn without_managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// A watch of `api` whose objects, without their managedFields, fill the returned store; its
/// events are left to the caller to turn into triggers.
pub fn reflected<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let events = watcher(api, config)
        .modify(without_managed_fields)
        .default_backoff()
        .reflect(writer);
    (store, events)
}
