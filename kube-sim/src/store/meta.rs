//! Small helpers around object metadata: names, timestamps, uids, field access.

use serde_json::{Map, Value};

/// RFC 3339 UTC with whole seconds, as the apiserver serializes `metav1.Time`.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The 5-character suffix of `generateName` (the apiserver's alphabet avoids vowels and
/// look-alike characters so that generated names spell no words).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5).map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char).collect()
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && is_label_shaped(s)
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` of any length: one dot-separated part of a DNS-1123 subdomain,
/// which (unlike a label) has no length limit of its own, only the whole name's 253.
fn is_label_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// The validation message for a name that is not a DNS-1123 subdomain, if it is not one.
pub fn subdomain_error(name: &str) -> Option<String> {
    if name.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    if name.is_empty() || !name.split('.').all(is_label_shaped) {
        return Some(SUBDOMAIN_MSG.into());
    }
    None
}

/// The validation message for a name that is not a DNS-1123 label (namespace names).
pub fn label_error(name: &str) -> Option<String> {
    if name.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    if !is_dns_label(name) {
        return Some(LABEL_MSG.into());
    }
    None
}

/// The API server's limit on the total size of an object's annotations (keys and values, in
/// bytes): apimachinery's `TotalAnnotationSizeLimitB`.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// The validation message for annotations whose keys and values together exceed
/// [`TOTAL_ANNOTATION_SIZE_LIMIT`], as apimachinery's `field.TooLong` words it.
pub fn annotations_size_error(obj: &Value) -> Option<String> {
    let annotations = metadata(obj)?.get("annotations")?.as_object()?;
    let total: usize =
        annotations.iter().map(|(key, value)| key.len() + value.as_str().map_or(0, str::len)).sum();
    (total > TOTAL_ANNOTATION_SIZE_LIMIT)
        .then(|| format!("Too long: may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"))
}

pub fn metadata(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// `metadata` as a mutable map, created when missing or not an object.
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let Value::Object(map) = obj else {
        unreachable!("just made an object")
    };
    let entry = map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    let Value::Object(meta) = entry else {
        unreachable!("just made an object")
    };
    meta
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    metadata(obj)?.get(field)?.as_str()
}

pub fn set_meta(obj: &mut Value, field: &str, value: Value) {
    metadata_mut(obj).insert(field.to_string(), value);
}

pub fn remove_meta(obj: &mut Value, field: &str) -> Option<Value> {
    metadata_mut(obj).remove(field)
}

/// `metadata.finalizers` as strings.
pub fn finalizers(obj: &Value) -> Vec<String> {
    metadata(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

pub fn set_finalizers(obj: &mut Value, list: Vec<String>) {
    if list.is_empty() {
        remove_meta(obj, "finalizers");
    } else {
        set_meta(
            obj,
            "finalizers",
            Value::Array(list.into_iter().map(Value::String).collect()),
        );
    }
}

pub fn is_deleting(obj: &Value) -> bool {
    metadata(obj).is_some_and(|m| m.get("deletionTimestamp").is_some_and(|v| !v.is_null()))
}

/// One `metadata.ownerReferences` entry, as far as the garbage collector needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub block_owner_deletion: bool,
}

pub fn owner_refs(obj: &Value) -> Vec<OwnerRef> {
    metadata(obj)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| {
                    let field =
                        |name: &str| r.get(name).and_then(Value::as_str).map(str::to_string);
                    Some(OwnerRef {
                        api_version: field("apiVersion").unwrap_or_default(),
                        kind: field("kind").unwrap_or_default(),
                        name: field("name").unwrap_or_default(),
                        uid: field("uid")?,
                        block_owner_deletion: r
                            .get("blockOwnerDeletion")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The group of an `apiVersion` (`apps/v1` → `apps`, `v1` → ``).
pub fn api_group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// The store key of an object: `namespace/name`, or `name` for cluster-scoped objects. Sorting
/// these strings gives etcd's key order.
pub fn object_key(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// Value equality that ignores `metadata.resourceVersion` and managedFields timestamps: a write
/// that changes nothing else is not a write. Compares in place: objects can be large.
pub fn same_content(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let metadata_same = match (a.get("metadata"), b.get("metadata")) {
        (Some(Value::Object(ma)), Some(Value::Object(mb))) => {
            members_equal(ma, mb, |k| k == "resourceVersion" || k == "managedFields")
                && managed_fields_equal(ma.get("managedFields"), mb.get("managedFields"))
        }
        (ma, mb) => ma == mb,
    };
    metadata_same && members_equal(a, b, |k| k == "metadata")
}

/// managedFields equality that ignores each entry's `time`.
fn managed_fields_equal(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|pair| match pair {
                    (Value::Object(p), Value::Object(q)) => members_equal(p, q, |k| k == "time"),
                    (p, q) => p == q,
                })
        }
        _ => a == b,
    }
}

/// Whether two JSON objects have the same members, leaving out those whose name `skip` picks.
pub fn members_equal(
    a: &serde_json::Map<String, Value>,
    b: &serde_json::Map<String, Value>,
    skip: impl Fn(&str) -> bool,
) -> bool {
    let kept = |map: &serde_json::Map<String, Value>| map.keys().filter(|k| !skip(k)).count();
    kept(a) == kept(b) && a.iter().filter(|(k, _)| !skip(k)).all(|(k, v)| b.get(k) == Some(v))
}
