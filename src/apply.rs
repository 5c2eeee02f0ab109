//! Server-side apply of remote objects without writes at steady state.
//!
//! Each applied object carries the hash of what was applied in an annotation. An object is
//! applied again only when the desired state changed (the hash differs) or someone changed a
//! field Federator sets (the desired object is no longer contained in the live one); a
//! reconcile of an unchanged cluster writes nothing.

use std::sync::OnceLock;

use k8s_openapi::api::{apps, batch, core};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::quantity::QuantityFields;

/// Annotation holding the hash of the last applied desired object.
pub const APPLIED_HASH_ANNOTATION: &str = "federator.k8ssandra.io/applied-hash";

/// FNV-1a 64 of the canonical JSON text (serde_json maps are sorted): stable across runs and
/// releases, unlike std's hasher.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Adds the applied-hash annotation to `desired` (a full object with apiVersion and kind).
pub fn stamp(desired: &mut Value) {
    if let Some(metadata) = desired.pointer_mut("/metadata").and_then(Value::as_object_mut)
        && let Some(annotations) = metadata.get_mut("annotations").and_then(Value::as_object_mut)
    {
        annotations.remove(APPLIED_HASH_ANNOTATION);
        if annotations.is_empty() {
            metadata.remove("annotations");
        }
    }
    let hash = format!("{:016x}", fnv1a(desired.to_string().as_bytes()));
    let Some(object) = desired.as_object_mut() else {
        return;
    };
    let metadata = object.entry("metadata").or_insert_with(|| Value::Object(Default::default()));
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    let annotations =
        metadata.entry("annotations").or_insert_with(|| Value::Object(Default::default()));
    if let Some(annotations) = annotations.as_object_mut() {
        annotations.insert(APPLIED_HASH_ANNOTATION.to_string(), Value::String(hash));
    }
}

/// Whether every field of `desired` has the same value in `live` (arrays element by element,
/// same length). Fields only `live` has (defaults, other managers) do not matter; nor do the
/// entries only `live` has in a list of named objects (containers, env, volumes: lists keyed by
/// name, where another field manager's entries sit beside Federator's).
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(live), Value::Object(desired)) => {
            desired.iter().all(|(key, value)| match live.get(key) {
                Some(live_value) => contains(live_value, value),
                None => value.is_null(),
            })
        }
        (Value::Array(live), Value::Array(desired)) => match (names(live), names(desired)) {
            (Some(live_names), Some(desired_names)) => {
                desired_names.iter().zip(desired).all(|(name, wanted)| {
                    (live_names.iter().position(|n| n == name))
                        .is_some_and(|at| contains(&live[at], wanted))
                })
            }
            _ => {
                live.len() == desired.len() && live.iter().zip(desired).all(|(l, d)| contains(l, d))
            }
        },
        (live, desired) => live == desired,
    }
}

/// The names of a non-empty list whose entries are all objects with a distinct `name`.
fn names(list: &[Value]) -> Option<Vec<&str>> {
    let names: Vec<&str> = list
        .iter()
        .map(|entry| entry.get("name").and_then(Value::as_str))
        .collect::<Option<_>>()?;
    let distinct: std::collections::BTreeSet<&str> = names.iter().copied().collect();
    (!names.is_empty() && distinct.len() == names.len()).then_some(names)
}

/// Whether `live` already is what a stamped `desired` would make it.
pub fn up_to_date(live: &Value, stamped_desired: &Value) -> bool {
    let hash = |object: &Value| {
        object
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(APPLIED_HASH_ANNOTATION))
            .cloned()
    };
    hash(live).is_some() && hash(live) == hash(stamped_desired) && contains(live, stamped_desired)
}

/// Where the quantity fields are in the built-in kinds that have some (Pods and what holds a
/// pod template, claims): the API server stores them in canonical form (`cpu: 1000m` reads
/// back as `1`), so a desired object is compared and hashed in that form, or it would never
/// match the live one. Custom resources keep what was sent and are not in this table.
fn builtin_quantity_fields(api_version: &str, kind: &str) -> Option<&'static QuantityFields> {
    type Table = Vec<(&'static str, &'static str, QuantityFields)>;
    fn add<T: schemars::JsonSchema>(
        generator: &mut schemars::SchemaGenerator,
        kinds: &mut Vec<(&'static str, &'static str, String)>,
        api_version: &'static str,
        kind: &'static str,
    ) {
        let _ = generator.subschema_for::<T>();
        kinds.push((api_version, kind, T::schema_name().into_owned()));
    }
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
            let mut kinds = Vec::new();
            let (g, k) = (&mut generator, &mut kinds);
            add::<core::v1::Pod>(g, k, "v1", "Pod");
            add::<core::v1::PersistentVolumeClaim>(g, k, "v1", "PersistentVolumeClaim");
            add::<apps::v1::Deployment>(g, k, "apps/v1", "Deployment");
            add::<apps::v1::StatefulSet>(g, k, "apps/v1", "StatefulSet");
            add::<apps::v1::DaemonSet>(g, k, "apps/v1", "DaemonSet");
            add::<batch::v1::Job>(g, k, "batch/v1", "Job");
            add::<batch::v1::CronJob>(g, k, "batch/v1", "CronJob");
            let definitions = generator.take_definitions(true);
            kinds
                .into_iter()
                .filter_map(|(api_version, kind, definition)| {
                    QuantityFields::of_definition(&definition, &definitions)
                        .map(|fields| (api_version, kind, fields))
                })
                .collect()
        })
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
        .map(|(_, _, fields)| fields)
}

/// Puts the quantities of a built-in object (with apiVersion and kind) in the API server's
/// canonical form. A quantity that does not parse stays as it is: the API server's answer
/// to the apply says what is wrong with it.
pub fn canonicalize_quantities(object: &mut Value) {
    let api_version = object.get("apiVersion").and_then(Value::as_str);
    let kind = object.get("kind").and_then(Value::as_str);
    if let (Some(api_version), Some(kind)) = (api_version, kind)
        && let Some(fields) = builtin_quantity_fields(api_version, kind)
    {
        let _ = fields.canonicalize(object);
    }
}

/// What [`apply_if_changed`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Created,
    Updated,
    Unchanged,
}

/// The body an apply of `desired` sends: without status and server-owned metadata, with
/// apiVersion, kind and the applied-hash annotation.
pub fn applied_body<K>(desired: &K) -> Result<Value, serde_json::Error>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let mut body = serde_json::to_value(desired)?;
    if let Some(object) = body.as_object_mut() {
        object.remove("status");
        object.insert("apiVersion".into(), K::api_version(&()).into());
        object.insert("kind".into(), K::kind(&()).into());
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            for server_owned in [
                "resourceVersion",
                "uid",
                "managedFields",
                "creationTimestamp",
            ] {
                metadata.remove(server_owned);
            }
        }
    }
    canonicalize_quantities(&mut body);
    stamp(&mut body);
    Ok(body)
}

/// The apply body that brings `live` to `desired`, or `None` when `live` already is what
/// applying `desired` would make it. The body is JSON text: a fan-out holds one per region
/// until its request is sent, and a parsed body takes several times the memory.
pub fn pending_apply<K>(
    desired: &K,
    live: Option<&K>,
) -> Result<Option<Box<RawValue>>, serde_json::Error>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let live = live.map(serde_json::to_value).transpose()?;
    pending_apply_to(desired, live.as_ref())
}

/// [`pending_apply`] against the live object as JSON.
pub fn pending_apply_to<K>(
    desired: &K,
    live: Option<&Value>,
) -> Result<Option<Box<RawValue>>, serde_json::Error>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let body = applied_body(desired)?;
    if live.is_some_and(|live| up_to_date(live, &body)) {
        return Ok(None);
    }
    serde_json::value::to_raw_value(&body).map(Some)
}

/// Server-side applies a body made by [`pending_apply`] as `field_manager`, forcing
/// conflicts (Federator owns these fields).
pub async fn send_apply<K>(
    api: &Api<K>,
    field_manager: &str,
    name: &str,
    body: &RawValue,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(field_manager).force(),
        &Patch::Apply(body),
    )
    .await?;
    Ok(())
}

/// Server-side applies `desired` (without status) as `field_manager` unless `live` is already
/// up to date. `desired` must carry its name; apiVersion and kind are filled in.
pub async fn apply_if_changed<K>(
    api: &Api<K>,
    field_manager: &str,
    desired: &K,
    live: Option<&K>,
) -> Result<Applied, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let Some(body) = pending_apply(desired, live).map_err(kube::Error::SerdeError)? else {
        return Ok(Applied::Unchanged);
    };
    let name = desired.meta().name.clone().unwrap_or_default();
    send_apply(api, field_manager, &name, &body).await?;
    Ok(if live.is_some() {
        Applied::Updated
    } else {
        Applied::Created
    })
}

/// Live objects found up to date, by the resourceVersion they had and a fingerprint of what
/// was desired: while neither changes, the object need not be compared again. A comparison
/// parses the live object and builds the desired one; for seed slices that is N² endpoints
/// per reconcile of an N-region cluster.
#[derive(Debug, Default)]
pub struct UpToDateMemo {
    confirmed: std::sync::Mutex<std::collections::HashMap<String, (u64, String)>>,
}

/// Entries kept at most; past it the memo starts again (objects of deleted clusters go too).
const MEMO_CAPACITY: usize = 1 << 16;

impl UpToDateMemo {
    /// Whether `key` was found up to date with `fingerprint` at `resource_version`.
    pub fn is_confirmed(&self, key: &str, fingerprint: u64, resource_version: &str) -> bool {
        self.confirmed.lock().is_ok_and(|confirmed| {
            confirmed.get(key).is_some_and(|(known, version)| {
                *known == fingerprint && version == resource_version
            })
        })
    }

    pub fn confirm(&self, key: String, fingerprint: u64, resource_version: String) {
        if let Ok(mut confirmed) = self.confirmed.lock() {
            if confirmed.len() >= MEMO_CAPACITY && !confirmed.contains_key(&key) {
                confirmed.clear();
            }
            confirmed.insert(key, (fingerprint, resource_version));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_memo_holds_only_for_the_same_fingerprint_and_resource_version() {
        let memo = UpToDateMemo::default();
        assert!(!memo.is_confirmed("r/ns/a", 1, "10"));
        memo.confirm("r/ns/a".into(), 1, "10".into());
        assert!(memo.is_confirmed("r/ns/a", 1, "10"));
        assert!(
            !memo.is_confirmed("r/ns/a", 2, "10"),
            "the desired object changed"
        );
        assert!(
            !memo.is_confirmed("r/ns/a", 1, "11"),
            "the live object changed"
        );
        assert!(!memo.is_confirmed("r/ns/b", 1, "10"));
    }

    fn desired() -> Value {
        let mut desired = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "labels": {"app": "x"}},
            "data": {"k": "v"}
        });
        stamp(&mut desired);
        desired
    }

    #[test]
    fn a_live_object_with_server_defaults_and_other_fields_is_up_to_date() {
        let mut live = desired();
        live["metadata"]["resourceVersion"] = json!("7");
        live["metadata"]["labels"]["added-by-someone"] = json!("y");
        assert!(up_to_date(&live, &desired()));
    }

    #[test]
    fn another_managers_entries_in_a_named_list_leave_the_object_up_to_date() {
        let desired = json!({"env": [{"name": "MODE", "value": "RESTORE"}]});
        let live = json!({"env": [
            {"name": "MODE", "value": "RESTORE"},
            {"name": "RESTORE_KEY", "value": "k"},
        ]});
        assert!(contains(&live, &desired));
        let changed = json!({"env": [{"name": "MODE", "value": "GRPC"}, {"name": "RESTORE_KEY", "value": "k"}]});
        assert!(!contains(&changed, &desired));
        let missing = json!({"env": [{"name": "RESTORE_KEY", "value": "k"}]});
        assert!(!contains(&missing, &desired));
        // Lists of anything else still compare element by element.
        assert!(!contains(
            &json!({"args": ["a", "b"]}),
            &json!({"args": ["a"]})
        ));
    }

    #[test]
    fn a_hand_edit_of_an_applied_field_needs_an_apply() {
        let mut live = desired();
        live["data"]["k"] = json!("edited");
        assert!(!up_to_date(&live, &desired()));
    }

    #[test]
    fn a_changed_desired_object_needs_an_apply_even_when_the_live_one_contains_it() {
        let live = desired();
        let mut fewer = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a"},
            "data": {"k": "v"}
        });
        stamp(&mut fewer);
        assert!(!up_to_date(&live, &fewer));
    }

    #[test]
    fn an_object_never_stamped_needs_an_apply() {
        let mut live = desired();
        live["metadata"]["annotations"] = json!({});
        assert!(!up_to_date(&live, &desired()));
    }

    #[test]
    fn the_hash_does_not_depend_on_a_previous_stamp() {
        let mut twice = desired();
        stamp(&mut twice);
        assert_eq!(twice, desired());
    }

    fn deployment_with_resources(cpu: &str, memory: &str) -> apps::v1::Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{
                    "name": "web",
                    "resources": {"limits": {"cpu": cpu, "memory": memory}},
                }]}},
            }
        }))
        .expect("a deployment")
    }

    #[test]
    fn a_deployment_stored_with_canonical_quantities_is_up_to_date() {
        let desired = deployment_with_resources("1000m", "1024Mi");
        let body = applied_body(&desired).expect("serializable");
        // what the API server stores: quantities in canonical form
        let mut live = body.clone();
        live["metadata"]["resourceVersion"] = json!("7");
        live["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] =
            json!({"cpu": "1", "memory": "1Gi"});
        let live: apps::v1::Deployment = serde_json::from_value(live).expect("a deployment");
        assert!(pending_apply(&desired, Some(&live)).expect("serializable").is_none());
        // a hand edit of a quantity is still seen
        let mut edited = live.clone();
        let limits = edited
            .spec
            .as_mut()
            .and_then(|s| s.template.spec.as_mut())
            .and_then(|s| s.containers[0].resources.as_mut())
            .and_then(|r| r.limits.as_mut())
            .expect("limits");
        limits.insert(
            "cpu".into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("2".into()),
        );
        assert!(pending_apply(&desired, Some(&edited)).expect("serializable").is_some());
    }

    #[test]
    fn custom_resources_keep_their_quantities_as_written() {
        let mut object = json!({
            "apiVersion": "cassandra.datastax.com/v1beta1", "kind": "CassandraDatacenter",
            "spec": {"resources": {"limits": {"cpu": "1000m"}}}
        });
        canonicalize_quantities(&mut object);
        assert_eq!(object["spec"]["resources"]["limits"]["cpu"], "1000m");
    }
}
