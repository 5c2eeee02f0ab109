//! Compatibility with k8ssandra-operator: its real manifests (../shared/compat/fixtures) must be
//! accepted by Federator's CRDs and survive a trip through the Rust types; the kinds must be
//! named exactly as upstream's; every field upstream accepts must be accepted here; and the
//! CassandraDatacenter Federator writes must fit cass-operator's real schema.

mod support;

use std::collections::BTreeMap;

use federator::api::cassdc::{
    AdditionalVolume, CassandraDatacenter, CassandraDatacenterSpec, CassandraUser, DseWorkloads,
    InsecureManagementApiAuth, ManagementApiAuth, NetworkingConfig, NodePortConfig, Rack,
    ServerType, StorageConfig,
};
use federator::api::k8ssandra_cluster::K8ssandraCluster;
use federator::api::k8ssandra_task::K8ssandraTask;
use federator::api::medusa::{
    CassandraBackup, CassandraRestore, MedusaBackup, MedusaBackupJob, MedusaBackupSchedule,
    MedusaConfiguration, MedusaRestoreJob, MedusaTask,
};
use federator::api::reaper::Reaper;
use federator::api::replicated_secret::ReplicatedSecret;
use federator::api::stargate::Stargate;
use federator::api::{all_crds, client_config::ClientConfig};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaimSpec, ResourceRequirements, Toleration, VolumeResourceRequirements,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResourceExt, Resource};
use kube_sim::schema::CrAdmission;
use kube_sim::store::Admission;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use support::{compat_path, fixture_files, yaml_documents};

/// Keys the API server prunes and the Rust types drop, on purpose: upstream's `config/samples`
/// are kubebuilder placeholders whose whole spec is `foo: bar`.
const PLACEHOLDER_KEYS: &[(&str, &str)] = &[
    ("sample-k8ssandracluster.yaml", "spec.foo"),
    ("sample-reaper.yaml", "spec.foo"),
    ("sample-stargate.yaml", "spec.foo"),
];

/// The first CustomResourceDefinition of a YAML file, as JSON.
fn crd_file(relative: &str) -> Option<Value> {
    let path = compat_path(relative)?;
    yaml_documents(&path).into_iter().find(|d| d["kind"] == "CustomResourceDefinition")
}

fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("generated CRD has a schema");
    serde_json::to_value(schema).expect("schema serializes")
}

// ---- leaf comparison ----

fn join(path: &str, key: &str) -> String {
    // Label keys contain dots: quote them so that the path stays readable and unambiguous.
    let key = if key.contains(['.', '[', ']']) {
        format!("[{key:?}]")
    } else {
        key.to_string()
    };
    if path.is_empty() || key.starts_with('[') {
        format!("{path}{key}")
    } else {
        format!("{path}.{key}")
    }
}

/// One step of a path inside a JSON document.
#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn render(steps: &[Step]) -> String {
    steps.iter().fold(String::new(), |path, step| match step {
        Step::Key(key) => join(&path, key),
        Step::Index(index) => format!("{path}[{index}]"),
    })
}

/// Every leaf (scalar, empty object, empty list) with its path.
fn leaves(value: &Value, path: &mut Vec<Step>, out: &mut Vec<(Vec<Step>, Value)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                path.push(Step::Key(key.clone()));
                leaves(child, path, out);
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (index, child) in items.iter().enumerate() {
                path.push(Step::Index(index));
                leaves(child, path, out);
                path.pop();
            }
        }
        leaf => out.push((path.clone(), leaf.clone())),
    }
}

fn lookup<'a>(value: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    steps.iter().try_fold(value, |current, step| match step {
        Step::Key(key) => current.get(key),
        Step::Index(index) => current.get(index),
    })
}

/// Paths of `original` that `reserialized` lost or changed.
fn lost_paths(original: &Value, reserialized: &Value) -> Vec<String> {
    let mut original_leaves = Vec::new();
    leaves(original, &mut Vec::new(), &mut original_leaves);
    original_leaves
        .into_iter()
        .filter(|(steps, value)| lookup(reserialized, steps) != Some(value))
        .map(|(steps, value)| format!("{} (was {value})", render(&steps)))
        .collect()
}

// ---- schema walker: what the API server would prune or reject ----

#[derive(Default)]
struct SchemaReport {
    /// Paths the server would silently drop.
    pruned: Vec<String>,
    /// Paths the server would reject (wrong type, enum, bounds, missing required field).
    invalid: Vec<String>,
}

fn is_true(schema: &Value, key: &str) -> bool {
    schema.get(key) == Some(&Value::Bool(true))
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => false,
    }
}

/// Checks `value` against an OpenAPI v3 structural schema the way the API server does for
/// pruning, types, enums, numeric and length bounds and required fields (not `pattern`: that
/// needs a regex engine, and our own patterns are asserted in tests/cel_rules.rs).
fn check_schema(schema: &Value, value: &Value, path: &str, report: &mut SchemaReport) {
    if value.is_null() {
        if !is_true(schema, "nullable") {
            report.invalid.push(format!("{path}: null where the schema is not nullable"));
        }
        return;
    }
    // cass-operator's `config` is a Go json.RawMessage: `type: string, format: byte` plus
    // preserve-unknown-fields. The API server takes the JSON object k8ssandra-operator (and
    // Federator) send there, so such a node accepts any value.
    if is_true(schema, "x-kubernetes-preserve-unknown-fields")
        && schema.get("type").and_then(Value::as_str) == Some("string")
        && schema.get("format").and_then(Value::as_str) == Some("byte")
    {
        return;
    }
    if is_true(schema, "x-kubernetes-int-or-string") {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            report.invalid.push(format!(
                "{path}: {value} is neither an integer nor a string"
            ));
        }
        return;
    }
    if let Some(expected) = schema.get("type").and_then(Value::as_str)
        && !type_matches(expected, value)
    {
        report.invalid.push(format!("{path}: {value} is not of type {expected}"));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        report.invalid.push(format!("{path}: {value} is not one of {allowed:?}"));
    }
    if let (Some(minimum), Some(number)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) && number < minimum
    {
        report.invalid.push(format!("{path}: {number} is below the minimum {minimum}"));
    }
    if let (Some(maximum), Some(number)) = (
        schema.get("maximum").and_then(Value::as_f64),
        value.as_f64(),
    ) && number > maximum
    {
        report.invalid.push(format!("{path}: {number} is above the maximum {maximum}"));
    }
    if let (Some(max), Some(text)) = (
        schema.get("maxLength").and_then(Value::as_u64),
        value.as_str(),
    ) && text.chars().count() as u64 > max
    {
        report.invalid.push(format!("{path}: longer than {max} characters"));
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for key in required.iter().filter_map(Value::as_str) {
                    let defaulted = properties
                        .and_then(|p| p.get(key))
                        .is_some_and(|p| p.get("default").is_some());
                    if !map.contains_key(key) && !defaulted {
                        report.invalid.push(format!("{}: required field missing", join(path, key)));
                    }
                }
            }
            let additional = schema.get("additionalProperties");
            let keeps_unknown = is_true(schema, "x-kubernetes-preserve-unknown-fields")
                || additional == Some(&Value::Bool(true));
            for (key, child) in map {
                let child_path = join(path, key);
                if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
                    check_schema(child_schema, child, &child_path, report);
                } else if let Some(child_schema) = additional.filter(|a| a.is_object()) {
                    check_schema(child_schema, child, &child_path, report);
                } else if !keeps_unknown {
                    report.pruned.push(child_path);
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                report.invalid.push(format!("{path}: more than {max} items"));
            }
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    check_schema(item_schema, item, &format!("{path}[{index}]"), report);
                }
            }
        }
        _ => {}
    }
}

/// Checks a whole object; apiVersion, kind and metadata are the API server's own business.
fn check_object(schema: &Value, object: &Value) -> SchemaReport {
    let mut report = SchemaReport::default();
    let mut body = object.clone();
    if let Some(map) = body.as_object_mut() {
        for key in ["apiVersion", "kind", "metadata"] {
            map.remove(key);
        }
    }
    check_schema(schema, &body, "", &mut report);
    report
}

// ---- fixtures ----

fn is_placeholder(file: &str, path: &str) -> bool {
    PLACEHOLDER_KEYS.iter().any(|(f, p)| *f == file && path.starts_with(p))
}

/// Round trip and schema check of one document as `T`; returns the typed value and the problems.
fn check_document<T>(file: &str, document: &Value, problems: &mut Vec<String>) -> Option<T>
where
    T: DeserializeOwned + Serialize + CustomResourceExt,
{
    let name = document["metadata"]["name"].as_str().unwrap_or("?");
    let kind = document["kind"].as_str().unwrap_or("?");
    let at = format!("{file} {kind}/{name}");

    let typed: T = match serde_json::from_value(document.clone()) {
        Ok(typed) => typed,
        Err(e) => {
            problems.push(format!("{at}: does not deserialize: {e}"));
            return None;
        }
    };
    let reserialized = serde_json::to_value(&typed).expect("typed object serializes");
    for lost in lost_paths(document, &reserialized) {
        if !is_placeholder(file, &lost) {
            problems.push(format!("{at}: lost in the round trip: {lost}"));
        }
    }

    let report = check_object(&schema_of(&T::crd()), document);
    for pruned in report.pruned {
        if !is_placeholder(file, &pruned) {
            problems.push(format!("{at}: the CRD schema would prune {pruned}"));
        }
    }
    for invalid in report.invalid {
        problems.push(format!("{at}: the CRD schema would reject {invalid}"));
    }
    Some(typed)
}

#[test]
fn every_fixture_is_accepted_and_round_trips() {
    let Some(files) = fixture_files() else { return };
    assert!(!files.is_empty(), "no fixtures found");
    let mut problems = Vec::new();
    let mut checked = BTreeMap::<String, usize>::new();

    for path in &files {
        let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default().to_string();
        for document in yaml_documents(path) {
            let kind = document["kind"].as_str().unwrap_or_default().to_string();
            match kind.as_str() {
                "K8ssandraCluster" => {
                    if let Some(cluster) =
                        check_document::<K8ssandraCluster>(&file, &document, &mut problems)
                        && let Err(errors) = cluster.validate_cel()
                    {
                        problems.push(format!("{file}: CEL rules reject it: {errors}"));
                    }
                }
                "Stargate" => {
                    check_document::<Stargate>(&file, &document, &mut problems);
                }
                "Reaper" => {
                    check_document::<Reaper>(&file, &document, &mut problems);
                }
                "ReplicatedSecret" => {
                    check_document::<ReplicatedSecret>(&file, &document, &mut problems);
                }
                "K8ssandraTask" => {
                    check_document::<K8ssandraTask>(&file, &document, &mut problems);
                }
                // ConfigMaps and Secrets that go with the fixtures are not ours.
                _ => continue,
            }
            *checked.entry(kind).or_default() += 1;
        }
    }

    println!("checked documents per kind: {checked:?}");
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        checked.get("K8ssandraCluster").copied().unwrap_or(0) >= 15,
        "too few K8ssandraClusters checked: {checked:?}"
    );
    for kind in ["Stargate", "Reaper", "ReplicatedSecret"] {
        assert!(
            checked.contains_key(kind),
            "no {kind} fixture checked: {checked:?}"
        );
    }
}

// ---- names and upstream field coverage ----

/// Our CRD for each upstream CRD file.
fn upstream_pairs() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        (
            "crds/k8ssandra-operator/k8ssandra.io_k8ssandraclusters.yaml",
            K8ssandraCluster::crd(),
        ),
        (
            "crds/k8ssandra-operator/config.k8ssandra.io_clientconfigs.yaml",
            ClientConfig::crd(),
        ),
        (
            "crds/k8ssandra-operator/replication.k8ssandra.io_replicatedsecrets.yaml",
            ReplicatedSecret::crd(),
        ),
        (
            "crds/k8ssandra-operator/stargate.k8ssandra.io_stargates.yaml",
            Stargate::crd(),
        ),
        (
            "crds/k8ssandra-operator/reaper.k8ssandra.io_reapers.yaml",
            Reaper::crd(),
        ),
        (
            "crds/k8ssandra-operator/control.k8ssandra.io_k8ssandratasks.yaml",
            K8ssandraTask::crd(),
        ),
    ]
    .into_iter()
    .chain(medusa_pairs())
    .collect()
}

/// Our CRD for each upstream Medusa CRD file (the deprecated CassandraBackup and
/// CassandraRestore included).
fn medusa_pairs() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        (
            "crds/k8ssandra-operator/medusa.k8ssandra.io_medusabackupjobs.yaml",
            MedusaBackupJob::crd(),
        ),
        (
            "crds/k8ssandra-operator/medusa.k8ssandra.io_medusabackups.yaml",
            MedusaBackup::crd(),
        ),
        (
            "crds/k8ssandra-operator/medusa.k8ssandra.io_medusarestorejobs.yaml",
            MedusaRestoreJob::crd(),
        ),
        (
            "crds/k8ssandra-operator/medusa.k8ssandra.io_medusabackupschedules.yaml",
            MedusaBackupSchedule::crd(),
        ),
        (
            "crds/k8ssandra-operator/medusa.k8ssandra.io_medusatasks.yaml",
            MedusaTask::crd(),
        ),
        (
            "crds/k8ssandra-operator/medusa.k8ssandra.io_medusaconfigurations.yaml",
            MedusaConfiguration::crd(),
        ),
        (
            "crds/k8ssandra-operator/medusa.k8ssandra.io_cassandrabackups.yaml",
            CassandraBackup::crd(),
        ),
        (
            "crds/k8ssandra-operator/medusa.k8ssandra.io_cassandrarestores.yaml",
            CassandraRestore::crd(),
        ),
    ]
}

#[test]
fn kinds_are_named_exactly_as_upstream() {
    assert_eq!(all_crds().len(), 14);
    for (file, ours) in upstream_pairs() {
        let Some(upstream) = crd_file(file) else {
            return;
        };
        let ours = serde_json::to_value(&ours).expect("CRD serializes");
        let upstream_spec = &upstream["spec"];
        for field in ["group", "scope"] {
            assert_eq!(
                ours["spec"][field], upstream_spec[field],
                "{file}: spec.{field}"
            );
        }
        for field in ["kind", "plural", "singular", "listKind"] {
            let theirs = &upstream_spec["names"][field];
            // kube does not emit listKind; the API server derives the same `<Kind>List`.
            if field == "listKind" && ours["spec"]["names"][field].is_null() {
                assert_eq!(
                    theirs.as_str(),
                    Some(
                        format!(
                            "{}List",
                            ours["spec"]["names"]["kind"].as_str().unwrap_or_default()
                        )
                        .as_str()
                    )
                );
                continue;
            }
            assert_eq!(
                ours["spec"]["names"][field], *theirs,
                "{file}: names.{field}"
            );
        }
        let short = |crd: &Value| {
            crd["spec"]["names"]["shortNames"].as_array().cloned().unwrap_or_default()
        };
        assert_eq!(short(&ours), short(&upstream), "{file}: shortNames");
        let versions = |crd: &Value| -> Vec<Value> {
            crd["spec"]["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| v["name"].clone())
                .collect()
        };
        assert_eq!(versions(&ours), versions(&upstream), "{file}: versions");
    }
}

/// Every property path of an upstream schema subtree, with `[]` for list items and `{}` for map
/// values, not descending below nodes that keep unknown fields.
fn schema_paths(schema: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            let child_path = join(path, name);
            out.push(child_path.clone());
            schema_paths(child, &child_path, out);
        }
    }
    if let Some(items) = schema.get("items") {
        schema_paths(items, &format!("{path}[]"), out);
    }
    if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        schema_paths(additional, &format!("{path}{{}}"), out);
    }
}

/// Whether our schema accepts (keeps) the upstream path.
fn accepts(schema: &Value, path: &str) -> bool {
    let mut node = schema;
    let mut rest = path;
    while !rest.is_empty() {
        if is_true(node, "x-kubernetes-preserve-unknown-fields") && node.get("properties").is_none()
        {
            return true;
        }
        if let Some(after) = rest.strip_prefix("[]") {
            let Some(items) = node.get("items") else {
                return false;
            };
            node = items;
            rest = after.strip_prefix('.').unwrap_or(after);
            continue;
        }
        if let Some(after) = rest.strip_prefix("{}") {
            let Some(values) = node.get("additionalProperties").filter(|a| a.is_object()) else {
                return false;
            };
            node = values;
            rest = after.strip_prefix('.').unwrap_or(after);
            continue;
        }
        let end = rest.find(['.', '[', '{']).unwrap_or(rest.len());
        let key = &rest[..end];
        match node.get("properties").and_then(|p| p.get(key)) {
            Some(child) => node = child,
            None => {
                if let Some(values) = node.get("additionalProperties").filter(|a| a.is_object()) {
                    node = values;
                } else {
                    return is_true(node, "x-kubernetes-preserve-unknown-fields");
                }
            }
        }
        rest = rest[end..].strip_prefix('.').unwrap_or(&rest[end..]);
    }
    true
}

/// Upstream fields Federator deliberately does not accept, with the reason.
const NOT_ACCEPTED_UPSTREAM_FIELDS: &[(&str, &str)] = &[];

#[test]
fn every_upstream_spec_field_is_accepted() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for (file, ours) in upstream_pairs() {
        let Some(upstream) = crd_file(file) else {
            return;
        };
        let ours = schema_of(&ours);
        let upstream_spec =
            &upstream["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let mut paths = Vec::new();
        schema_paths(upstream_spec, "spec", &mut paths);
        checked += paths.len();
        for path in paths {
            let kind = upstream["spec"]["names"]["kind"].as_str().unwrap_or_default();
            let deliberate =
                NOT_ACCEPTED_UPSTREAM_FIELDS.iter().any(|(k, p)| *k == kind && path.starts_with(p));
            if !deliberate && !accepts(&ours, &path) {
                missing.push(format!("{kind}: {path}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} upstream field(s) the CRDs would prune:\n{}",
        missing.len(),
        missing.join("\n")
    );
    assert!(checked > 1000, "only {checked} upstream paths checked");
}

/// K8ssandraTask's status is cass-operator's CassandraTaskStatus inline plus one per
/// datacenter: every upstream status path is kept too (a status written by k8ssandra-operator
/// before a migration is read back whole).
#[test]
fn every_upstream_k8ssandra_task_status_field_is_accepted() {
    let Some(upstream) =
        crd_file("crds/k8ssandra-operator/control.k8ssandra.io_k8ssandratasks.yaml")
    else {
        return;
    };
    let ours = schema_of(&K8ssandraTask::crd());
    let status =
        &upstream["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
    let mut paths = Vec::new();
    schema_paths(status, "status", &mut paths);
    assert!(paths.len() > 20, "only {} paths", paths.len());
    let missing: Vec<&String> = paths.iter().filter(|p| !accepts(&ours, p)).collect();
    assert!(
        missing.is_empty(),
        "status paths the CRD would prune: {missing:?}"
    );
}

/// The status of every Medusa kind keeps every upstream status path, so that a status written
/// by k8ssandra-operator before a migration is read back whole.
#[test]
fn every_upstream_medusa_status_field_is_accepted() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for (file, ours) in medusa_pairs() {
        let Some(upstream) = crd_file(file) else {
            return;
        };
        let kind = upstream["spec"]["names"]["kind"].as_str().unwrap_or_default().to_string();
        let ours = schema_of(&ours);
        let status =
            &upstream["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
        let mut paths = Vec::new();
        schema_paths(status, "status", &mut paths);
        assert!(!paths.is_empty(), "{kind}: upstream has no status paths");
        checked += paths.len();
        missing.extend(
            paths.into_iter().filter(|p| !accepts(&ours, p)).map(|p| format!("{kind}: {p}")),
        );
    }
    assert!(
        missing.is_empty(),
        "status paths the CRDs would prune: {missing:?}"
    );
    assert!(
        checked > 500,
        "only {checked} upstream status paths checked"
    );
}

/// Every schema node below `path`, with its path (`[]` for list items, `{}` for map values).
fn schema_nodes<'a>(schema: &'a Value, path: &str, out: &mut Vec<(String, &'a Value)>) {
    out.push((path.to_string(), schema));
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            schema_nodes(child, &join(path, name), out);
        }
    }
    if let Some(items) = schema.get("items") {
        schema_nodes(items, &format!("{path}[]"), out);
    }
    if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        schema_nodes(additional, &format!("{path}{{}}"), out);
    }
}

/// The schema node at an upstream-style path in our schema.
fn node_at<'a>(schema: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = schema;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("[]") {
            node = node.get("items")?;
            rest = after.strip_prefix('.').unwrap_or(after);
            continue;
        }
        if let Some(after) = rest.strip_prefix("{}") {
            node = node.get("additionalProperties")?;
            rest = after.strip_prefix('.').unwrap_or(after);
            continue;
        }
        let end = rest.find(['.', '[', '{']).unwrap_or(rest.len());
        node = node.get("properties")?.get(&rest[..end])?;
        rest = rest[end..].strip_prefix('.').unwrap_or(&rest[end..]);
    }
    Some(node)
}

/// The (spec or status) subtree of a CRD to compare, with the path it starts at.
fn medusa_subtrees() -> Option<Vec<(String, Value, Value)>> {
    let mut subtrees = Vec::new();
    for (file, ours) in medusa_pairs() {
        let upstream = crd_file(file)?;
        let kind = upstream["spec"]["names"]["kind"].as_str().unwrap_or_default().to_string();
        let theirs =
            upstream["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
                .clone();
        let ours = schema_of(&ours)["properties"]["spec"].clone();
        subtrees.push((format!("{kind} spec"), theirs, ours));
    }
    let upstream = crd_file("crds/k8ssandra-operator/k8ssandra.io_k8ssandraclusters.yaml")?;
    let theirs = upstream["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"]["medusa"]
        .clone();
    let ours =
        schema_of(&K8ssandraCluster::crd())["properties"]["spec"]["properties"]["medusa"].clone();
    subtrees.push(("K8ssandraCluster spec.medusa".to_string(), theirs, ours));
    Some(subtrees)
}

/// Where upstream's CRD lists the values of a Medusa field (storage provider, credentials type,
/// backup type, operation, scheduled operation, pull policy), ours lists the same ones; where it
/// requires a field or a minimum length, so does ours.
#[test]
fn medusa_fields_take_the_same_values_as_upstreams() {
    let Some(subtrees) = medusa_subtrees() else {
        return;
    };
    let mut problems = Vec::new();
    let mut enums = 0;
    for (name, theirs, ours) in &subtrees {
        let mut nodes = Vec::new();
        schema_nodes(theirs, "", &mut nodes);
        for (path, node) in nodes {
            let Some(mine) = node_at(ours, &path) else {
                continue; // a pass-through subtree; every_upstream_spec_field_is_accepted covers it
            };
            let sorted = |v: &Value| -> Vec<String> {
                let mut values: Vec<String> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect();
                values.sort();
                values
            };
            if node.get("enum").is_some() {
                enums += 1;
                if sorted(&node["enum"]) != sorted(&mine["enum"]) {
                    problems.push(format!(
                        "{name} {path}: enum {:?} upstream, {:?} here",
                        node["enum"], mine["enum"]
                    ));
                }
            }
            if let Some(min) = node.get("minLength")
                && mine.get("minLength") != Some(min)
            {
                problems.push(format!(
                    "{name} {path}: minLength {min} upstream, {} here",
                    mine["minLength"]
                ));
            }
            for key in sorted(&node["required"]) {
                if !sorted(&mine["required"]).contains(&key) {
                    problems.push(format!(
                        "{name} {path}: {key} is required upstream, not here"
                    ));
                }
            }
            for key in sorted(&mine["required"]) {
                if !sorted(&node["required"]).contains(&key) {
                    problems.push(format!(
                        "{name} {path}: {key} is required here, not upstream"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(enums >= 8, "only {enums} enums compared");
}

/// Kubernetes types whose numbers Kubernetes itself leaves open (probes, security contexts,
/// resource claims), embedded as upstream embeds them.
const KUBERNETES_TYPES: &[&str] = &[".securityContext", "Probe", "Resources"];

/// Every integer a user sets in a Medusa kind (or `spec.medusa`) has a minimum and a maximum.
#[test]
fn every_medusa_number_a_user_sets_is_bounded() {
    let mut unbounded = Vec::new();
    let mut integers = 0;
    let cluster = schema_of(&K8ssandraCluster::crd());
    let mut specs = vec![(
        "K8ssandraCluster".to_string(),
        cluster["properties"]["spec"]["properties"]["medusa"].clone(),
    )];
    for (_, crd) in medusa_pairs() {
        specs.push((
            crd.spec.names.kind.clone(),
            schema_of(&crd)["properties"]["spec"].clone(),
        ));
    }
    for (kind, spec) in &specs {
        let mut nodes = Vec::new();
        schema_nodes(spec, "spec", &mut nodes);
        for (path, node) in nodes {
            if node["type"] != "integer" || KUBERNETES_TYPES.iter().any(|t| path.contains(t)) {
                continue;
            }
            integers += 1;
            if node.get("minimum").is_none() || node.get("maximum").is_none() {
                unbounded.push(format!("{kind} {path}"));
            }
        }
    }
    assert!(unbounded.is_empty(), "unbounded: {unbounded:?}");
    assert!(integers >= 8, "only {integers} integers found");
}

/// The Medusa kinds show the columns upstream's show in `kubectl get`, and the deprecated
/// CassandraBackup and CassandraRestore are marked deprecated, as upstream's are.
#[test]
fn medusa_kinds_print_upstreams_columns_and_keep_its_deprecations() {
    for (file, ours) in medusa_pairs() {
        let Some(upstream) = crd_file(file) else {
            return;
        };
        let ours = serde_json::to_value(&ours).expect("CRD serializes");
        let columns = |crd: &Value| -> Vec<(Value, Value, Value)> {
            crd["spec"]["versions"][0]["additionalPrinterColumns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| (c["name"].clone(), c["type"].clone(), c["jsonPath"].clone()))
                .collect()
        };
        assert_eq!(
            columns(&ours),
            columns(&upstream),
            "{file}: printer columns"
        );
        let deprecated = |crd: &Value| crd["spec"]["versions"][0]["deprecated"] == json!(true);
        assert_eq!(
            deprecated(&ours),
            deprecated(&upstream),
            "{file}: deprecated"
        );
        if deprecated(&ours) {
            let warning =
                ours["spec"]["versions"][0]["deprecationWarning"].as_str().unwrap_or_default();
            // Acted on, but deprecated for the jobs they run: the warning names them.
            assert!(warning.contains("use those"), "{file}: {warning}");
            assert!(
                warning.contains("MedusaBackupJob or MedusaRestoreJob"),
                "{file}: {warning}"
            );
        }
        assert_eq!(
            ours["spec"]["versions"][0]["subresources"],
            upstream["spec"]["versions"][0]["subresources"],
            "{file}: subresources"
        );
    }
}

/// A K8ssandraTask as upstream's docs write one is accepted whole.
#[test]
fn an_upstream_k8ssandra_task_is_accepted_and_round_trips() {
    let document = json!({
        "apiVersion": "control.k8ssandra.io/v1alpha1", "kind": "K8ssandraTask",
        "metadata": {"name": "task-restart", "namespace": "k8ssandra-operator"},
        "spec": {
            "cluster": {"name": "demo", "namespace": "k8ssandra-operator"},
            "datacenters": ["dc1"],
            "dcConcurrencyPolicy": "Forbid",
            "template": {
                "jobs": [{"name": "restart-dc1", "command": "restart", "args": {"rack": "r1"}}],
                "restartPolicy": "OnFailure",
                "concurrencyPolicy": "Forbid",
                "maxConcurrentPods": 1,
                "retries": 2,
                "ttlSecondsAfterFinished": 3600,
                "scheduledTime": "2026-01-01T00:00:00Z"
            }
        }
    });
    let mut problems = Vec::new();
    check_document::<K8ssandraTask>("upstream docs", &document, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn path_acceptance_has_teeth() {
    let ours = schema_of(&K8ssandraCluster::crd());
    assert!(accepts(&ours, "spec.cassandra.datacenters[].metadata.name"));
    assert!(accepts(
        &ours,
        "spec.cassandra.config.cassandraYaml.anything.below"
    ));
    assert!(accepts(&ours, "spec.cassandra.metadata.commonLabels{}"));
    assert!(!accepts(&ours, "spec.cassandra.datacenters[].sise"));
    assert!(!accepts(
        &ours,
        "spec.cassandra.config.jvmOptions.heap_sise"
    ));
}

/// Misspelt keys at levels Federator interprets are pruned; keys in pass-through subtrees are
/// kept; wrong types and out-of-range values are rejected.
#[test]
fn schema_walker_prunes_misspelt_keys_and_rejects_bad_values() {
    let schema = schema_of(&K8ssandraCluster::crd());
    let document = json!({
        "apiVersion": "k8ssandra.io/v1alpha1", "kind": "K8ssandraCluster", "metadata": {"name": "demo"},
        "spec": {"cassandra": {
            "serverVersion": "4.0.17",
            "config": {
                "cassandraYaml": {"any_key_at_all": 1},
                "jvmOptions": {"heapSize": "512Mi", "heap_sise": "1Gi", "gc": "Parallel"}
            },
            "datacenters": [{"metadata": {"name": "dc1"}, "size": 0, "sise": 3, "stopped": "yes"}]
        }}
    });
    let report = check_object(&schema, &document);
    assert_eq!(
        report.pruned,
        vec![
            "spec.cassandra.config.jvmOptions.heap_sise",
            "spec.cassandra.datacenters[0].sise"
        ]
    );
    assert_eq!(report.invalid.len(), 3, "{:?}", report.invalid);
    for expected in [
        "jvmOptions.gc",
        "datacenters[0].size",
        "datacenters[0].stopped",
    ] {
        assert!(
            report.invalid.iter().any(|p| p.contains(expected)),
            "{expected} not rejected: {:?}",
            report.invalid
        );
    }
}

// ---- the CassandraDatacenter Federator writes ----

fn quantity(text: &str) -> Quantity {
    Quantity(text.to_string())
}

/// A CassandraDatacenter with every field Federator may set.
fn full_cassandra_datacenter() -> CassandraDatacenter {
    let storage = PersistentVolumeClaimSpec {
        storage_class_name: Some("standard".into()),
        access_modes: Some(vec!["ReadWriteOnce".into()]),
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([("storage".to_string(), quantity("5Gi"))])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let resources = ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), quantity("1")),
            ("memory".to_string(), quantity("2Gi")),
        ])),
        limits: Some(BTreeMap::from([("memory".to_string(), quantity("2Gi"))])),
        ..Default::default()
    };
    let labels = BTreeMap::from([("k8ssandra.io/cluster-name".to_string(), "demo".to_string())]);
    let spec = CassandraDatacenterSpec {
        cluster_name: "demo".into(),
        server_type: ServerType::Cassandra,
        server_version: "4.0.17".into(),
        server_image: Some("k8ssandra/cass-management-api:4.0.17".into()),
        size: 3,
        stopped: Some(false),
        racks: Some(vec![Rack {
            name: "rack1".into(),
            node_affinity_labels: Some(BTreeMap::from([(
                "topology.kubernetes.io/zone".to_string(),
                "region1-zone1".to_string(),
            )])),
            affinity: Some(
                json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]
                }}}),
            ),
            zone: None,
        }]),
        storage_config: StorageConfig {
            cassandra_data_volume_claim_spec: Some(storage.clone()),
            additional_volumes: Some(vec![AdditionalVolume {
                name: "commitlog-vol".into(),
                mount_path: "/var/lib/cassandra/commitlog2".into(),
                pvc_spec: Some(storage),
                volume_source: None,
            }]),
        },
        config: Some(json!({
            "cassandra-yaml": {"num_tokens": 16, "authenticator": "PasswordAuthenticator"},
            "jvm-server-options": {"initial_heap_size": "512M", "max_heap_size": "512M"}
        })),
        resources: Some(resources.clone()),
        tolerations: Some(vec![Toleration {
            key: Some("dedicated".into()),
            operator: Some("Equal".into()),
            value: Some("cassandra".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        }]),
        node_selector: Some(BTreeMap::from([("disk".to_string(), "ssd".to_string())])),
        networking: Some(NetworkingConfig {
            host_network: Some(true),
            node_port: Some(NodePortConfig {
                native: Some(30042),
                native_ssl: Some(30142),
                internode: Some(30007),
                internode_ssl: Some(30107),
            }),
        }),
        superuser_secret_name: Some("demo-superuser".into()),
        users: Some(vec![CassandraUser {
            secret_name: "demo-reaper".into(),
            superuser: true,
        }]),
        management_api_auth: Some(ManagementApiAuth {
            insecure: Some(InsecureManagementApiAuth {}),
            manual: None,
        }),
        pod_template_spec: Some(
            json!({"spec": {"containers": [{"name": "cassandra", "env": [{"name": "LOCAL_JMX", "value": "no"}]}]}}),
        ),
        additional_seeds: Some(vec![
            "10.0.0.1".into(),
            "demo-dc2-additional-seed-service.k8ssandra.svc".into(),
        ]),
        datacenter_name: Some("real-dc1".into()),
        additional_labels: Some(labels.clone()),
        additional_annotations: Some(labels),
        additional_service_config: Some(json!({"dcService": {"additionalLabels": {"a": "b"}}})),
        service_account: Some("cassandra".into()),
        read_only_root_filesystem: Some(true),
        dse_workloads: Some(DseWorkloads {
            search_enabled: Some(true),
            ..Default::default()
        }),
        cdc: Some(json!({"pulsarServiceUrl": "pulsar://pulsar:6650"})),
        allow_multiple_nodes_per_worker: Some(false),
        config_builder_image: Some("datastax/cass-config-builder:1.0-ubi8".into()),
        system_logger_image: Some("k8ssandra/system-logger:latest".into()),
        system_logger_resources: Some(resources),
        disable_system_logger_sidecar: Some(false),
        replace_nodes: Some(vec!["demo-dc1-rack1-sts-0".into()]),
    };
    CassandraDatacenter::new("dc1", spec)
}

#[test]
fn cassandra_datacenter_fits_cass_operators_schema() {
    let Some(crd) = crd_file("crds/cass-operator/cassandra.datastax.com_cassandradatacenters.yaml")
    else {
        return;
    };
    let names = &crd["spec"]["names"];
    assert_eq!(
        crd["spec"]["group"],
        CassandraDatacenter::group(&()).as_ref()
    );
    assert_eq!(names["kind"], CassandraDatacenter::kind(&()).as_ref());
    assert_eq!(names["plural"], CassandraDatacenter::plural(&()).as_ref());
    assert_eq!(
        crd["spec"]["versions"][0]["name"],
        CassandraDatacenter::version(&()).as_ref()
    );

    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let full = serde_json::to_value(full_cassandra_datacenter()).expect("serializes");
    assert_eq!(full["apiVersion"], "cassandra.datastax.com/v1beta1");
    let report = check_object(schema, &full);
    let mut problems: Vec<String> = report.pruned.iter().map(|p| format!("pruned: {p}")).collect();
    problems.extend(report.invalid.iter().map(|p| format!("rejected: {p}")));
    assert!(
        problems.is_empty(),
        "cass-operator's schema disagrees:\n{}",
        problems.join("\n")
    );

    // A minimal one too: absent optional fields must simply not be there (no nulls).
    let minimal = CassandraDatacenter::new(
        "dc1",
        CassandraDatacenterSpec {
            cluster_name: "demo".into(),
            server_version: "4.1.8".into(),
            size: 1,
            ..Default::default()
        },
    );
    let minimal = serde_json::to_value(minimal).expect("serializes");
    let report = check_object(schema, &minimal);
    assert!(
        report.pruned.is_empty() && report.invalid.is_empty(),
        "{:?} {:?}",
        report.pruned,
        report.invalid
    );
    assert_eq!(minimal["spec"]["storageConfig"], json!({}));
}

#[test]
fn cassandra_datacenter_status_from_cass_operator_parses() {
    let status = json!({
        "cassandraOperatorProgress": "Ready",
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "", "message": "", "lastTransitionTime": "2024-05-01T10:00:00Z"},
            {"type": "Initialized", "status": "True", "reason": "", "message": "", "lastTransitionTime": "2024-05-01T09:00:00Z"}
        ],
        "observedGeneration": 3,
        "lastServerNodeStarted": "2024-05-01T09:58:00Z",
        "superUserUpserted": "2024-05-01T10:01:00Z",
        "nodeStatuses": {"demo-dc1-rack1-sts-0": {"hostID": "9f0c", "ip": "10.0.0.5", "rack": "rack1"}},
        "datacenterName": "dc1",
        "trackedTasks": [{"name": "task", "namespace": "k8ssandra"}]
    });
    let parsed: federator::api::cassdc::CassandraDatacenterStatus =
        serde_json::from_value(status).expect("cass-operator status parses");
    assert!(parsed.is_ready());
    assert_eq!(parsed.node_statuses.as_ref().map(BTreeMap::len), Some(1));
}

/// Upstream's initial-token manifest: every datacenter with few vnodes gets its first RF pods'
/// tokens, keyed by the pods cass-operator names after the Cassandra datacenter name.
#[test]
fn the_initial_tokens_fixture_gives_each_datacenters_first_pods_their_tokens() {
    let Some(path) = compat_path("fixtures/multi-dc-initial-tokens.yaml") else {
        return;
    };
    let mut document = yaml_documents(&path).remove(0);
    document["metadata"]["namespace"] = Value::from("k8ssandra-operator");
    let k8c: K8ssandraCluster = serde_json::from_value(document).expect("a K8ssandraCluster");
    let plan = federator::federation::plan::plan(&k8c).expect("plans");
    for (dc, cassandra_name, num_tokens) in [(0, "dc1", 4), (1, "real-dc2", 8)] {
        let config = plan.datacenters[dc]
            .per_node_config
            .as_ref()
            .unwrap_or_else(|| panic!("{cassandra_name} has a per-node config"));
        assert_eq!(
            config.name,
            format!("test-{cassandra_name}-per-node-config")
        );
        let pods: Vec<String> = (1..=3)
            .map(|rack| format!("test-{cassandra_name}-rack{rack}-sts-0_cassandra.yaml"))
            .collect();
        assert_eq!(config.data.keys().cloned().collect::<Vec<_>>(), pods);
        for entry in config.data.values() {
            assert_eq!(entry.matches(',').count() + 1, num_tokens, "{entry}");
        }
    }
}

// ---- the Medusa samples, admitted as the API server admits them ----

/// kube-sim's admission (defaults, pruning, OpenAPI validation, CEL) for a CRD's first version.
fn admission_of(crd: &Value) -> CrAdmission {
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let kind = crd["spec"]["names"]["kind"].as_str().unwrap_or_default();
    CrAdmission::new(
        group,
        kind,
        &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
    )
    .unwrap_or_else(|problems| panic!("{kind}: schema refused: {problems:?}"))
}

/// What the API server answers to creating `document` with `kubectl apply` (strict field
/// validation): the stored object, or the fields it names in its refusal.
fn admit(admission: &CrAdmission, document: &Value) -> Result<Value, Vec<String>> {
    let mut admitted = document.clone();
    admission.admit(&mut admitted, None, true).map(|_warnings| admitted).map_err(|error| {
        let mut fields: Vec<String> = error.causes.iter().map(|c| c.field.clone()).collect();
        if fields.is_empty() {
            fields.push(error.to_string());
        }
        fields.sort();
        fields
    })
}

/// Upstream's samples that upstream's own CRDs refuse, with the field named: kubebuilder
/// placeholders whose spec is `foo: bar` (an unknown field under kubectl's strict validation,
/// and without the required fields), and a `storageSecretRef` written as a plain name where
/// the CRD wants `{name: ...}`. Federator's CRDs refuse them the same way.
const SAMPLES_UPSTREAM_REFUSES: &[(&str, &str)] = &[
    (
        "k8ssandra-single-kind-medusa.yaml",
        "spec.medusa.storageProperties.storageSecretRef",
    ),
    ("medusa_v1alpha1_backuptask.yaml", "spec.foo"),
    ("medusa_v1alpha1_medusabackup.yaml", "spec.foo"),
    ("medusa_v1alpha1_medusabackupjob.yaml", "spec.foo"),
    ("medusa_v1alpha1_medusarestorejob.yaml", "spec.foo"),
];

/// Samples only Federator's CRDs refuse, with the field named: every Federator kind requires a
/// `spec` (kube's CRDs do), where upstream's CRDs store an object without one, which nothing
/// could act on (the sample's spec is only comments).
const SAMPLES_ONLY_FEDERATOR_REFUSES: &[(&str, &str)] =
    &[("medusa_v1alpha1_cassandrabackupschedule.yaml", "spec")];

/// Every manifest in upstream's Medusa samples (the K8ssandra book's CassandraBackup and
/// CassandraRestore included) gets the same answer from Federator's CRD as from upstream's:
/// stored alike, or refused naming the same fields; what is stored deserializes into the Rust
/// types and survives their round trip.
#[test]
fn every_medusa_sample_is_admitted_as_upstreams_crds_admit_it() {
    let Some(dir) = compat_path("samples/medusa") else {
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("samples/medusa lists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let mut problems = Vec::new();
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    let mut only_ours = Vec::new();
    for path in &files {
        let file = support::file_name(path);
        for document in yaml_documents(path) {
            let kind = document["kind"].as_str().unwrap_or_default().to_string();
            let (ours, upstream_file) = match kind.as_str() {
                "K8ssandraCluster" => (
                    K8ssandraCluster::crd(),
                    "crds/k8ssandra-operator/k8ssandra.io_k8ssandraclusters.yaml",
                ),
                _ => {
                    match medusa_pairs().into_iter().find(|(_, crd)| crd.spec.names.kind == kind) {
                        Some((upstream_file, ours)) => (ours, upstream_file),
                        None => continue, // the Secrets that go with the samples
                    }
                }
            };
            let Some(upstream) = crd_file(upstream_file) else {
                return;
            };
            let ours = serde_json::to_value(&ours).expect("CRD serializes");
            let our_answer = admit(&admission_of(&ours), &document);
            let their_answer = admit(&admission_of(&upstream), &document);
            match (&our_answer, &their_answer) {
                (Ok(_), Ok(_)) => {
                    accepted.push(format!("{file} {kind}"));
                    let mut lost = Vec::new();
                    match kind.as_str() {
                        "K8ssandraCluster" => {
                            check_document::<K8ssandraCluster>(&file, &document, &mut lost);
                        }
                        "MedusaConfiguration" => {
                            check_document::<MedusaConfiguration>(&file, &document, &mut lost);
                        }
                        "CassandraBackup" => {
                            check_document::<CassandraBackup>(&file, &document, &mut lost);
                        }
                        "CassandraRestore" => {
                            check_document::<CassandraRestore>(&file, &document, &mut lost);
                        }
                        "MedusaBackupSchedule" => {
                            check_document::<MedusaBackupSchedule>(&file, &document, &mut lost);
                        }
                        other => lost.push(format!("{file}: {other} accepted but not round-tripped")),
                    }
                    problems.extend(lost);
                }
                (Err(ours), Err(theirs)) if ours == theirs => {
                    refused.push((file.clone(), ours.clone()));
                }
                (Err(ours), Ok(_))
                    if SAMPLES_ONLY_FEDERATOR_REFUSES
                        .iter()
                        .any(|(f, field)| *f == file && ours.iter().any(|x| x == field)) =>
                {
                    only_ours.push(file.clone());
                }
                _ => problems.push(format!(
                    "{file} {kind}: Federator's CRD answers {our_answer:?}, upstream's {their_answer:?}"
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for (file, field) in SAMPLES_UPSTREAM_REFUSES {
        assert!(
            refused.iter().any(|(f, fields)| f == file && fields.iter().any(|x| x.contains(field))),
            "{file} should be refused naming {field}; refused: {refused:?}"
        );
    }
    assert_eq!(
        refused.len(),
        SAMPLES_UPSTREAM_REFUSES.len(),
        "refused: {refused:?}"
    );
    assert_eq!(
        only_ours.len(),
        SAMPLES_ONLY_FEDERATOR_REFUSES.len(),
        "{only_ours:?}"
    );
    for expected in [
        "book-cassandrabackup.yaml CassandraBackup",
        "book-cassandrarestore.yaml CassandraRestore",
        "medusa-configuration.yaml MedusaConfiguration",
        "medusa_v1alpha1_medusaconfiguration.yaml MedusaConfiguration",
    ] {
        assert!(
            accepted.iter().any(|a| a == expected),
            "{expected} not accepted: {accepted:?}"
        );
    }
}
