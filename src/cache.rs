//! Watches that keep a cache of hub objects, shared by the controllers.

use std::borrow::Cow;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

/// An API type that watches and their caches can hold.
pub trait Watched:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

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
    K: Watched,
{
    let (store, writer) = reflector::store();
    let events =
        watcher(api, config).modify(without_managed_fields).default_backoff().reflect(writer);
    (store, events)
}

/// What a cache keeps of an object of kind `K`: its metadata and `Data`, the part reconciles
/// read. It is a `K` to watches and stores (same kind, same API path).
#[derive(Clone, Debug, PartialEq)]
pub struct Kept<K, Data> {
    metadata: ObjectMeta,
    pub data: Data,
    kind: PhantomData<fn() -> K>,
}

impl<K, Data> Kept<K, Data> {
    pub fn new(metadata: ObjectMeta, data: Data) -> Kept<K, Data> {
        Kept {
            metadata,
            data,
            kind: PhantomData,
        }
    }
}

/// An object kept as its metadata and its JSON text. For caches that are only compared
/// against (the seed EndpointSlices: each of a 100-region cluster's lists the seeds of 99
/// others): the text takes a fraction of the memory of the parsed object, and a comparison
/// parses it, as it would otherwise have to convert the parsed object.
pub type Compact<K> = Kept<K, Box<RawValue>>;

/// The metadata a [`Kept`] object needs beside its data: what stores key on (name, namespace),
/// what tells versions apart (uid, resourceVersion) and the labels owner lookups read.
pub fn identity(metadata: ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: metadata.name,
        namespace: metadata.namespace,
        labels: metadata.labels,
        uid: metadata.uid,
        resource_version: metadata.resource_version,
        ..ObjectMeta::default()
    }
}

impl<K: Resource + Serialize> Compact<K> {
    /// The whole object is in the text; its metadata, kept apart, only as [`identity`].
    pub fn compact(mut object: K) -> Compact<K> {
        // Serializing an API object cannot fail; if it did, `null` compares as changed.
        let json =
            serde_json::value::to_raw_value(&object).unwrap_or_else(|_| RawValue::NULL.to_owned());
        Kept::new(identity(std::mem::take(object.meta_mut())), json)
    }

    /// The object as JSON, for comparisons.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.data.get())
    }
}

impl<K: Resource, Data> Resource for Kept<K, Data> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
    use std::collections::BTreeMap;

    #[test]
    fn a_compact_object_gives_back_the_same_json_and_keeps_its_identity_apart() {
        let labels = BTreeMap::from([("app.kubernetes.io/managed-by".into(), "federator".into())]);
        let slice = EndpointSlice {
            metadata: ObjectMeta {
                name: Some("demo-dc1-additional-seed-service".into()),
                namespace: Some("db".into()),
                uid: Some("0f6a".into()),
                resource_version: Some("42".into()),
                labels: Some(labels.clone()),
                annotations: Some(BTreeMap::from([("note".into(), "x".repeat(512))])),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: vec![Endpoint {
                addresses: vec!["10.0.0.1".into()],
                ..Default::default()
            }],
            ports: None,
        };
        let whole = serde_json::to_value(&slice).expect("serializable");
        let compact = Compact::compact(slice);
        assert_eq!(compact.to_value().expect("valid JSON"), whole);
        assert_eq!(
            compact.meta().name.as_deref(),
            Some("demo-dc1-additional-seed-service")
        );
        assert_eq!(compact.meta().namespace.as_deref(), Some("db"));
        assert_eq!(compact.meta().uid.as_deref(), Some("0f6a"));
        assert_eq!(compact.meta().resource_version.as_deref(), Some("42"));
        assert_eq!(compact.meta().labels.as_ref(), Some(&labels));
        assert_eq!(compact.meta().annotations, None, "kept in the text only");
        assert_eq!(Compact::<EndpointSlice>::kind(&()), "EndpointSlice");
        assert_eq!(Compact::<EndpointSlice>::plural(&()), "endpointslices");
    }
}
