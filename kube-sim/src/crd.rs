//! CustomResourceDefinitions: turning a stored CRD into served resources (store registration,
//! discovery, OpenAPI, tables), its status conditions, and loading CRD files at start.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context;
use serde_json::{Value, json};

use crate::catalog::{PrinterColumn, ScalePaths, ServedResource, standard_verbs};
use crate::cluster::Cluster;
use crate::error::{ApiError, ApiResult, Cause};
use crate::store::{Admission, ListOptions, PatchType, ResourceInfo, WriteOptions};

pub const CRD_GROUP: &str = "apiextensions.k8s.io";
pub const CRD_PLURAL: &str = "customresourcedefinitions";

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn strings_at(value: &Value, pointer: &str) -> Vec<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// A `<path>: <body>` message from the schema checks as a Status cause.
pub fn cause_from_message(message: &str) -> Cause {
    let (field, body) = message.split_once(": ").unwrap_or(("", message));
    let reason = [
        ("Required value", "FieldValueRequired"),
        ("Invalid value", "FieldValueInvalid"),
        ("Forbidden", "FieldValueForbidden"),
        ("Unsupported value", "FieldValueNotSupported"),
        ("Too many", "FieldValueTooMany"),
        ("Too long", "FieldValueTooLong"),
        ("Duplicate value", "FieldValueDuplicate"),
    ]
    .iter()
    .find(|(prefix, _)| body.starts_with(prefix))
    .map(|(_, reason)| *reason)
    .unwrap_or("FieldValueInvalid");
    Cause {
        reason: reason.into(),
        message: body.into(),
        field: field.into(),
    }
}

/// Admission of CRD objects themselves: the API validation kube-apiserver runs on a CRD
/// (names, versions, structural schemas) before storing it.
pub struct CrdAdmission;

fn required(field: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired".into(),
        message: "Required value".into(),
        field: field.into(),
    }
}

impl Admission for CrdAdmission {
    fn admit(
        &self,
        crd: &mut Value,
        _old: Option<&Value>,
        _strict: bool,
    ) -> ApiResult<Vec<String>> {
        let name = str_at(crd, "/metadata/name").unwrap_or("").to_string();
        let mut causes = Vec::new();
        let group = str_at(crd, "/spec/group");
        let plural = str_at(crd, "/spec/names/plural");
        if group.is_none() {
            causes.push(required("spec.group"));
        }
        if plural.is_none() {
            causes.push(required("spec.names.plural"));
        }
        if str_at(crd, "/spec/names/kind").is_none() {
            causes.push(required("spec.names.kind"));
        }
        if let (Some(group), Some(plural)) = (group, plural)
            && name != format!("{plural}.{group}")
        {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"
                ),
                field: "metadata.name".into(),
            });
        }
        if !matches!(str_at(crd, "/spec/scope"), Some("Namespaced" | "Cluster")) {
            causes.push(Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!(
                    "Unsupported value: {:?}: supported values: \"Cluster\", \"Namespaced\"",
                    str_at(crd, "/spec/scope").unwrap_or("")
                ),
                field: "spec.scope".into(),
            });
        }
        let versions =
            crd.pointer("/spec/versions").and_then(Value::as_array).cloned().unwrap_or_default();
        if versions.is_empty() {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: "Invalid value: \"null\": must have exactly one version marked as storage version".into(),
                field: "spec.versions".into(),
            });
        } else {
            let storage =
                versions.iter().filter(|v| v.get("storage") == Some(&json!(true))).count();
            if storage != 1 {
                causes.push(Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!(
                        "Invalid value: {}: must have exactly one version marked as storage version",
                        serde_json::to_string(&versions).unwrap_or_default()
                    ),
                    field: "spec.versions".into(),
                });
            }
        }
        causes.extend(crd_schema_problems(crd).iter().map(|p| cause_from_message(p)));
        if causes.is_empty() {
            Ok(Vec::new())
        } else {
            Err(ApiError::invalid(
                CRD_GROUP,
                "CustomResourceDefinition",
                &name,
                causes,
            ))
        }
    }
}

fn content_key(parts: &[&str]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut hasher);
    hasher.finish()
}

type AdmissionCache = Mutex<HashMap<u64, Option<Arc<dyn Admission>>>>;

/// Schema admission (pruning, defaults, validation) for one version of a custom resource.
/// Compiling a schema (CEL rules included) is costly and every cluster gets the same CRDs, so
/// compiled admissions are shared across clusters.
fn custom_resource_admission(
    crd_name: &str,
    group: &str,
    kind: &str,
    schema: &Value,
) -> Option<Arc<dyn Admission>> {
    static CACHE: OnceLock<AdmissionCache> = OnceLock::new();
    let key = content_key(&[group, kind, &schema.to_string()]);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(cached) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return cached;
    }
    let admission: Option<Arc<dyn Admission>> =
        match crate::schema::CrAdmission::new(group, kind, schema) {
            Ok(admission) => Some(Arc::new(admission)),
            Err(problems) => {
                tracing::warn!(crd = crd_name, ?problems, "schema not usable for admission");
                None
            }
        };
    if let Ok(mut cache) = cache.lock() {
        cache.insert(key, admission.clone());
    }
    admission
}

/// `<path>: <body>` problems of the CRD's schemas (structural rules, CEL compilation), cached
/// by the CRD's spec for the same reason as admissions.
fn crd_schema_problems(crd: &Value) -> Vec<String> {
    static CACHE: OnceLock<Mutex<HashMap<u64, Vec<String>>>> = OnceLock::new();
    let key = content_key(&[&crd.get("spec").map(Value::to_string).unwrap_or_default()]);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(cached) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return cached;
    }
    let problems = crate::schema::check_crd(crd).err().unwrap_or_default();
    if let Ok(mut cache) = cache.lock() {
        cache.insert(key, problems.clone());
    }
    problems
}

fn printer_columns(version: &Value) -> Vec<PrinterColumn> {
    version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .map(|columns| {
            columns
                .iter()
                .map(|c| {
                    let json_path = c.get("jsonPath").and_then(Value::as_str).unwrap_or("").to_string();
                    PrinterColumn {
                        name: c.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
                        column_type: c.get("type").and_then(Value::as_str).unwrap_or("string").to_string(),
                        format: c.get("format").and_then(Value::as_str).unwrap_or("").to_string(),
                        description: c
                            .get("description")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .unwrap_or_else(|| {
                                format!("Custom resource definition column (in JSONPath format): {json_path}")
                            }),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        json_path,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn version_name(version: &Value) -> &str {
    version.get("name").and_then(Value::as_str).unwrap_or_default()
}

/// The served resources of a CRD, one per served version.
pub fn served_resources(crd: &Value) -> Vec<ServedResource> {
    let (Some(crd_name), Some(group), Some(plural), Some(kind)) = (
        str_at(crd, "/metadata/name"),
        str_at(crd, "/spec/group"),
        str_at(crd, "/spec/names/plural"),
        str_at(crd, "/spec/names/kind"),
    ) else {
        return Vec::new();
    };
    let singular = str_at(crd, "/spec/names/singular")
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let list_kind = str_at(crd, "/spec/names/listKind")
        .map(str::to_string)
        .unwrap_or_else(|| format!("{kind}List"));
    let namespaced = str_at(crd, "/spec/scope") != Some("Cluster");
    let versions =
        crd.pointer("/spec/versions").and_then(Value::as_array).cloned().unwrap_or_default();
    versions
        .iter()
        .filter(|v| v.get("served") != Some(&json!(false)))
        .filter_map(|v| {
            let version = v.get("name").and_then(Value::as_str)?.to_string();
            let schema = v.pointer("/schema/openAPIV3Schema").cloned();
            let admission =
                schema.as_ref().and_then(|s| custom_resource_admission(crd_name, group, kind, s));
            let scale = v.pointer("/subresources/scale").map(|s| ScalePaths {
                spec_replicas: s
                    .get("specReplicasPath")
                    .and_then(Value::as_str)
                    .unwrap_or(".spec.replicas")
                    .into(),
                status_replicas: s
                    .get("statusReplicasPath")
                    .and_then(Value::as_str)
                    .unwrap_or(".status.replicas")
                    .into(),
                label_selector: s
                    .get("labelSelectorPath")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            });
            Some(ServedResource {
                info: ResourceInfo {
                    group: group.to_string(),
                    version,
                    plural: plural.to_string(),
                    singular: singular.clone(),
                    kind: kind.to_string(),
                    list_kind: list_kind.clone(),
                    namespaced,
                    has_status: v.pointer("/subresources/status").is_some(),
                    builtin: false,
                    admission,
                },
                short_names: strings_at(crd, "/spec/names/shortNames"),
                categories: strings_at(crd, "/spec/names/categories"),
                verbs: standard_verbs(),
                scale,
                printer_columns: printer_columns(v),
                schema,
                crd_name: Some(crd_name.to_string()),
                storage: v.get("storage") == Some(&json!(true)),
                deprecation_warning: (v.get("deprecated") == Some(&json!(true))).then(|| {
                    v.get("deprecationWarning")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| {
                            format!("{group}/{} {kind} is deprecated", version_name(v))
                        })
                }),
            })
        })
        .collect()
}

fn condition(kind: &str, reason: &str, message: &str, previous: &Value) -> Value {
    let earlier = previous
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|conditions| {
            conditions.iter().find(|c| {
                c.get("type").and_then(Value::as_str) == Some(kind)
                    && c.get("status") == Some(&json!("True"))
            })
        })
        .and_then(|c| c.get("lastTransitionTime").cloned());
    json!({
        "type": kind,
        "status": "True",
        "lastTransitionTime": earlier.unwrap_or_else(|| json!(crate::now_rfc3339())),
        "reason": reason,
        "message": message,
    })
}

/// The status kube-apiserver's naming and establishing controllers give an accepted CRD.
fn desired_status(crd: &Value) -> Value {
    let mut accepted = json!({
        "plural": str_at(crd, "/spec/names/plural").unwrap_or(""),
        "kind": str_at(crd, "/spec/names/kind").unwrap_or(""),
    });
    for (key, pointer) in [
        ("singular", "/spec/names/singular"),
        ("listKind", "/spec/names/listKind"),
    ] {
        if let Some(v) = str_at(crd, pointer) {
            accepted[key] = json!(v);
        }
    }
    if accepted.get("singular").is_none() {
        accepted["singular"] = json!(str_at(crd, "/spec/names/kind").unwrap_or("").to_lowercase());
    }
    if accepted.get("listKind").is_none() {
        accepted["listKind"] = json!(format!(
            "{}List",
            str_at(crd, "/spec/names/kind").unwrap_or("")
        ));
    }
    for (key, pointer) in [
        ("shortNames", "/spec/names/shortNames"),
        ("categories", "/spec/names/categories"),
    ] {
        let values = strings_at(crd, pointer);
        if !values.is_empty() {
            accepted[key] = json!(values);
        }
    }
    let mut stored = strings_at(crd, "/status/storedVersions");
    if let Some(storage) = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|versions| versions.iter().find(|v| v.get("storage") == Some(&json!(true))))
        .and_then(|v| v.get("name").and_then(Value::as_str))
        && !stored.iter().any(|s| s == storage)
    {
        stored.push(storage.to_string());
    }
    json!({
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found", crd),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted", crd),
        ],
        "acceptedNames": accepted,
        "storedVersions": stored,
    })
}

fn crd_info(cluster: &Cluster) -> Option<ResourceInfo> {
    cluster.catalog().find(CRD_GROUP, "v1", CRD_PLURAL).map(|r| r.info.clone())
}

/// Makes the served custom resources match the stored CRDs and marks new CRDs Established.
pub async fn reconcile(cluster: &Arc<Cluster>) {
    let _guard = cluster.crd_lock.lock().await;
    let Some(info) = crd_info(cluster) else {
        return;
    };
    let crds = match cluster.store.list(&info, None, &ListOptions::default()) {
        Ok(list) => list.get("items").and_then(Value::as_array).cloned().unwrap_or_default(),
        Err(e) => {
            tracing::warn!(cluster = cluster.index, error = %e, "listing CRDs");
            return;
        }
    };
    let mut wanted: HashMap<(String, String, String), ServedResource> = HashMap::new();
    for crd in &crds {
        for served in served_resources(crd) {
            let key = (
                served.info.group.clone(),
                served.info.version.clone(),
                served.info.plural.clone(),
            );
            wanted.insert(key, served);
        }
    }
    // Drop what no CRD serves any more (their objects go with them).
    let stale: Vec<Arc<ServedResource>> = cluster
        .catalog()
        .all()
        .iter()
        .filter(|r| r.crd_name.is_some())
        .filter(|r| {
            !wanted.contains_key(&(
                r.info.group.clone(),
                r.info.version.clone(),
                r.info.plural.clone(),
            ))
        })
        .cloned()
        .collect();
    let stale_group_resources: HashSet<(String, String)> =
        stale.iter().map(|r| (r.info.group.clone(), r.info.plural.clone())).collect();
    // The store keeps one entry per group+plural (all versions share the objects).
    for (group, plural) in &stale_group_resources {
        let still_served = wanted.keys().any(|(g, _, p)| g == group && p == plural);
        if !still_served {
            cluster.store.unregister(group, plural);
        }
    }
    {
        let mut catalog = cluster.catalog_mut();
        for (group, plural) in &stale_group_resources {
            let removed = catalog.remove_group_resource(group, plural);
            for resource in removed {
                let key = (
                    resource.info.group.clone(),
                    resource.info.version.clone(),
                    resource.info.plural.clone(),
                );
                if let Some(keep) = wanted.get(&key) {
                    catalog.upsert(keep.clone());
                }
            }
        }
    }
    for served in wanted.into_values() {
        let changed = cluster
            .catalog()
            .find(
                &served.info.group,
                &served.info.version,
                &served.info.plural,
            )
            .is_none_or(|existing| !same_definition(&existing, &served));
        if changed {
            let registered = cluster.store.resource(&served.info.group, &served.info.plural);
            if served.storage || registered.is_none() {
                cluster.store.register(served.info.clone());
            }
            cluster.catalog_mut().upsert(served);
        }
    }
    for crd in &crds {
        let status = desired_status(crd);
        if crd.get("status").map(strip_times) == Some(strip_times(&status)) {
            continue;
        }
        let Some(name) = str_at(crd, "/metadata/name") else {
            continue;
        };
        let options = WriteOptions {
            field_manager: Some("kube-apiserver".into()),
            subresource_status: true,
            ..WriteOptions::default()
        };
        if let Err(e) = cluster.store.patch(
            &info,
            None,
            name,
            PatchType::Merge,
            json!({"status": status}).to_string().as_bytes(),
            &options,
        ) {
            tracing::warn!(crd = name, error = %e, "setting CRD status");
        }
    }
}

fn strip_times(status: &Value) -> Value {
    let mut status = status.clone();
    if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conditions {
            if let Some(obj) = c.as_object_mut() {
                obj.remove("lastTransitionTime");
            }
        }
    }
    status
}

fn same_definition(a: &ServedResource, b: &ServedResource) -> bool {
    a.info.kind == b.info.kind
        && a.info.namespaced == b.info.namespaced
        && a.info.has_status == b.info.has_status
        && a.info.singular == b.info.singular
        && a.info.list_kind == b.info.list_kind
        && a.schema == b.schema
        && a.short_names == b.short_names
        && a.categories == b.categories
        && a.scale.is_some() == b.scale.is_some()
        && a.printer_columns.len() == b.printer_columns.len()
        && a.printer_columns
            .iter()
            .zip(&b.printer_columns)
            .all(|(x, y)| x.json_path == y.json_path && x.name == y.name)
}

/// Every CRD document in a directory's `.yaml`/`.yml`/`.json` files (multi-document YAML).
pub fn load_crd_dir(dir: &Path) -> anyhow::Result<Vec<Value>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading CRD directory {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        })
        .collect();
    paths.sort();
    let mut crds = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
            .with_context(|| format!("parsing YAML in {}", path.display()))?;
        crds.extend(
            documents
                .into_iter()
                .filter(|d| {
                    d.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
                })
                .map(|mut crd| {
                    crate::cass_operator::as_installed(&mut crd);
                    crd
                }),
        );
    }
    Ok(crds)
}

/// Creates or replaces each CRD, then serves them all.
pub async fn apply_crds(cluster: &Arc<Cluster>, crds: &[Value]) -> anyhow::Result<()> {
    for crd in crds {
        store_crd(cluster, crd.clone())?;
    }
    reconcile(cluster).await;
    Ok(())
}

/// Creates a CRD, or replaces the stored one of the same name, and serves it.
pub async fn apply_crd(cluster: &Arc<Cluster>, crd: Value) -> anyhow::Result<()> {
    store_crd(cluster, crd)?;
    reconcile(cluster).await;
    Ok(())
}

fn store_crd(cluster: &Arc<Cluster>, mut crd: Value) -> anyhow::Result<()> {
    let info = crd_info(cluster).context("the cluster serves no CRD resource")?;
    let name = str_at(&crd, "/metadata/name").context("CRD without metadata.name")?.to_string();
    if let Some(meta) = crd.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        meta.remove("uid");
        meta.remove("creationTimestamp");
    }
    let options = WriteOptions {
        field_manager: Some("kube-sim".into()),
        ..WriteOptions::default()
    };
    match cluster.store.get(&info, None, &name) {
        Ok(existing) => {
            if let (Some(meta), Some(rv)) = (
                crd.get_mut("metadata").and_then(Value::as_object_mut),
                existing.pointer("/metadata/resourceVersion"),
            ) {
                meta.insert("resourceVersion".into(), rv.clone());
            }
            cluster
                .store
                .update(&info, None, &name, crd, &options)
                .map_err(|e| anyhow::anyhow!("replacing CRD {name}: {e}"))?;
        }
        Err(_) => {
            cluster
                .store
                .create(&info, None, crd, &options)
                .map_err(|e| anyhow::anyhow!("creating CRD {name}: {e}"))?;
        }
    }
    Ok(())
}
