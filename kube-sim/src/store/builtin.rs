//! The built-in kinds: their registry entries and the few behaviours of their strategies that a
//! client can observe (defaults on create, which kinds carry a generation, field selectors).

use serde_json::{Value, json};

use super::ResourceInfo;
use crate::error::{ApiError, ApiResult, Cause};

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    singular: &str,
    kind: &str,
    namespaced: bool,
    has_status: bool,
) -> ResourceInfo {
    ResourceInfo {
        group: group.into(),
        version: version.into(),
        plural: plural.into(),
        singular: singular.into(),
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        namespaced,
        has_status,
        builtin: true,
        admission: None,
    }
}

/// What the API server's Secret strategy does on every write: `stringData` is merged into
/// `data` (base64, `stringData` wins) and never stored; an `immutable: true` Secret refuses any
/// change to `data` or to `immutable`.
pub struct SecretAdmission;

impl super::Admission for SecretAdmission {
    fn admit(&self, obj: &mut Value, old: Option<&Value>, _strict: bool) -> ApiResult<Vec<String>> {
        use base64::Engine as _;
        if let Some(map) = obj.as_object_mut()
            && let Some(string_data) = map.remove("stringData")
            && let Value::Object(entries) = string_data
        {
            let data = map.entry("data").or_insert_with(|| json!({}));
            if !data.is_object() {
                *data = json!({});
            }
            if let Value::Object(data) = data {
                for (key, value) in entries {
                    let text = value.as_str().unwrap_or_default();
                    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
                    data.insert(key, Value::String(encoded));
                }
            }
        }
        let Some(old) = old.filter(|old| old.get("immutable") == Some(&Value::Bool(true))) else {
            return Ok(Vec::new());
        };
        let empty = json!({});
        let data_of = |object: &Value| object.get("data").cloned().unwrap_or(empty.clone());
        let mut causes = Vec::new();
        if data_of(obj) != data_of(old) {
            causes.push(immutable_cause("data"));
        }
        if obj.get("immutable") != old.get("immutable") {
            causes.push(immutable_cause("immutable"));
        }
        if causes.is_empty() {
            return Ok(Vec::new());
        }
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        Err(ApiError::invalid("", "Secret", name, causes))
    }
}

/// What the API server's StatefulSet validation refuses on update: a change of the spec beyond
/// the fields that may change (the claim templates, selector, service name and pod management
/// policy are fixed once the StatefulSet exists).
pub struct StatefulSetAdmission;

/// The spec fields of a StatefulSet an update may change.
const STATEFULSET_MUTABLE: [&str; 7] = [
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

impl super::Admission for StatefulSetAdmission {
    fn admit(&self, obj: &mut Value, old: Option<&Value>, _strict: bool) -> ApiResult<Vec<String>> {
        let Some(old) = old else {
            return Ok(Vec::new());
        };
        let fixed = |object: &Value| -> serde_json::Map<String, Value> {
            let mut spec =
                object.get("spec").and_then(Value::as_object).cloned().unwrap_or_default();
            // Compared after defaulting, as the API server does.
            spec.entry("podManagementPolicy").or_insert_with(|| json!("OrderedReady"));
            spec.into_iter()
                .filter(|(key, value)| {
                    !STATEFULSET_MUTABLE.contains(&key.as_str())
                        && !value.is_null()
                        && value.as_str() != Some("")
                })
                .collect()
        };
        if fixed(obj) == fixed(old) {
            return Ok(Vec::new());
        }
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let cause = Cause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: updates to statefulset spec for fields other than 'replicas', \
                      'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', \
                      'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
                .into(),
            field: "spec".into(),
        };
        Err(ApiError::invalid("apps", "StatefulSet", name, vec![cause]))
    }
}

fn immutable_cause(field: &str) -> Cause {
    Cause {
        reason: "FieldValueForbidden".into(),
        message: "Forbidden: field is immutable when `immutable` is set".into(),
        field: field.into(),
    }
}

/// The built-in resources every simulated cluster serves.
pub fn builtin_resources() -> Vec<ResourceInfo> {
    vec![
        builtin(
            "",
            "v1",
            "namespaces",
            "namespace",
            "Namespace",
            false,
            true,
        ),
        ResourceInfo {
            admission: Some(std::sync::Arc::new(SecretAdmission)),
            ..builtin("", "v1", "secrets", "secret", "Secret", true, false)
        },
        builtin(
            "",
            "v1",
            "configmaps",
            "configmap",
            "ConfigMap",
            true,
            false,
        ),
        builtin("", "v1", "services", "service", "Service", true, true),
        builtin("", "v1", "endpoints", "endpoints", "Endpoints", true, false),
        builtin("", "v1", "pods", "pod", "Pod", true, true),
        builtin(
            "",
            "v1",
            "persistentvolumeclaims",
            "persistentvolumeclaim",
            "PersistentVolumeClaim",
            true,
            true,
        ),
        builtin(
            "",
            "v1",
            "serviceaccounts",
            "serviceaccount",
            "ServiceAccount",
            true,
            false,
        ),
        builtin("", "v1", "events", "event", "Event", true, false),
        builtin(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "endpointslice",
            "EndpointSlice",
            true,
            false,
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "events",
            "event",
            "Event",
            true,
            false,
        ),
        // RBAC objects are stored and served; kube-sim does not enforce them (every
        // authenticated caller may do everything).
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "role",
            "Role",
            true,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "rolebinding",
            "RoleBinding",
            true,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "clusterrole",
            "ClusterRole",
            false,
            false,
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "clusterrolebinding",
            "ClusterRoleBinding",
            false,
            false,
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "lease",
            "Lease",
            true,
            false,
        ),
        builtin(
            "apps",
            "v1",
            "deployments",
            "deployment",
            "Deployment",
            true,
            true,
        ),
        ResourceInfo {
            admission: Some(std::sync::Arc::new(StatefulSetAdmission)),
            ..builtin(
                "apps",
                "v1",
                "statefulsets",
                "statefulset",
                "StatefulSet",
                true,
                true,
            )
        },
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "customresourcedefinition",
            "CustomResourceDefinition",
            false,
            true,
        ),
    ]
}

/// Namespaces every cluster starts with.
pub const INITIAL_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Namespaces the apiserver refuses to delete.
pub const UNDELETABLE_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// Whether objects of this resource carry `metadata.generation` (custom resources always do;
/// among built-ins, the workload kinds and CRDs do, ConfigMaps and Secrets do not).
pub fn tracks_generation(info: &ResourceInfo) -> bool {
    if !info.builtin {
        return true;
    }
    matches!(
        (info.group.as_str(), info.plural.as_str()),
        ("apps", _)
            | ("batch", _)
            | ("apiextensions.k8s.io", "customresourcedefinitions")
            | ("discovery.k8s.io", "endpointslices")
            | ("networking.k8s.io", _)
            | ("policy", _)
    )
}

/// Field selectors a built-in supports beyond `metadata.name` and `metadata.namespace`.
pub fn selectable_fields(info: &ResourceInfo) -> &'static [&'static str] {
    if !info.builtin {
        return &[];
    }
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "secrets") => &["type"],
        ("", "namespaces") => &["status.phase"],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "events") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "reason",
            "type",
        ],
        _ => &[],
    }
}

/// The status a built-in's create strategy starts with (the request's status is dropped).
pub fn initial_status(info: &ResourceInfo, obj: &Value) -> Option<Value> {
    if !info.has_status {
        return None;
    }
    if !info.builtin {
        return None;
    }
    Some(match (info.group.as_str(), info.plural.as_str()) {
        ("", "namespaces") => json!({"phase": "Active"}),
        ("", "pods") => json!({"phase": "Pending", "qosClass": "BestEffort"}),
        ("", "persistentvolumeclaims") => json!({"phase": "Pending"}),
        ("", "services") => json!({"loadBalancer": {}}),
        ("apiextensions.k8s.io", _) => {
            // keep what the HTTP layer's CRD controller may need to see; it writes status itself
            obj.get("status").cloned().unwrap_or_else(|| json!({}))
        }
        _ => json!({}),
    })
}

/// Defaults applied while decoding a built-in (recorded in managedFields, as the real
/// defaulting happens before the field manager runs).
pub fn apply_create_defaults(info: &ResourceInfo, obj: &mut Value) {
    if !info.builtin {
        return;
    }
    let name = obj
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "namespaces") => {
            if let Some(Value::Object(meta)) = map.get_mut("metadata") {
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if let Value::Object(labels) = labels {
                    labels.insert("kubernetes.io/metadata.name".into(), Value::String(name));
                }
            }
        }
        ("", "secrets") => {
            map.entry("type").or_insert_with(|| json!("Opaque"));
        }
        ("", "services") => {
            let spec = map.entry("spec").or_insert_with(|| json!({}));
            if let Value::Object(spec) = spec {
                spec.entry("type").or_insert_with(|| json!("ClusterIP"));
                spec.entry("sessionAffinity").or_insert_with(|| json!("None"));
                if let Some(Value::Array(ports)) = spec.get_mut("ports") {
                    for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                        port.entry("protocol").or_insert_with(|| json!("TCP"));
                        if let Some(number) = port.get("port").cloned() {
                            port.entry("targetPort").or_insert(number);
                        }
                    }
                }
            }
        }
        ("apps", "deployments") => {
            let spec = map.entry("spec").or_insert_with(|| json!({}));
            if let Value::Object(spec) = spec {
                spec.entry("replicas").or_insert_with(|| json!(1));
                spec.entry("revisionHistoryLimit").or_insert_with(|| json!(10));
                spec.entry("progressDeadlineSeconds").or_insert_with(|| json!(600));
            }
        }
        ("apps", "statefulsets") => {
            let spec = map.entry("spec").or_insert_with(|| json!({}));
            if let Value::Object(spec) = spec {
                spec.entry("replicas").or_insert_with(|| json!(1));
                spec.entry("podManagementPolicy").or_insert_with(|| json!("OrderedReady"));
                spec.entry("revisionHistoryLimit").or_insert_with(|| json!(10));
            }
        }
        _ => {}
    }
}

/// What a built-in's create strategy sets after the field manager ran (so nobody owns it):
/// the initial status, a namespace's `kubernetes` finalizer, a Service's cluster IP.
pub fn apply_create_strategy(
    info: &ResourceInfo,
    obj: &mut Value,
    cluster_ip: impl FnOnce() -> String,
) {
    if info.has_status {
        let status = initial_status(info, obj);
        if let Some(map) = obj.as_object_mut() {
            match status {
                Some(s) => map.insert("status".into(), s),
                None => map.remove("status"),
            };
        }
    }
    if !info.builtin {
        return;
    }
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "namespaces") => {
            map.insert("spec".into(), json!({"finalizers": ["kubernetes"]}));
        }
        ("", "services") => {
            if let Some(Value::Object(spec)) = map.get_mut("spec") {
                let headless_or_external = spec.get("type").and_then(Value::as_str)
                    == Some("ExternalName")
                    || spec.contains_key("clusterIP");
                if !headless_or_external {
                    let ip = cluster_ip();
                    spec.insert("clusterIP".into(), json!(ip));
                    spec.insert("clusterIPs".into(), json!([ip]));
                }
            }
        }
        _ => {}
    }
}

/// Built-in map-list keys for server-side apply (`+listType=map` with `+listMapKey`).
/// `top_level` is a field of the object itself (not under spec, metadata, or a list item).
pub fn apply_list_keys(
    field: &str,
    in_metadata: bool,
    top_level: bool,
    sample: &[&Value],
) -> Option<&'static [&'static str]> {
    if in_metadata {
        return match field {
            "ownerReferences" => Some(&["uid"]),
            _ => None,
        };
    }
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => Some(&["name"]),
        "volumeMounts" => Some(&["mountPath"]),
        "conditions" => Some(&["type"]),
        // an EndpointSlice's `ports` (the only top-level one) is `+listType=atomic`
        "ports" if top_level => None,
        "ports" => {
            if sample.iter().any(|item| item.get("containerPort").is_some()) {
                Some(&["containerPort", "protocol"])
            } else {
                Some(&["port", "protocol"])
            }
        }
        _ => None,
    }
}
