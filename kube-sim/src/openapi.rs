//! OpenAPI documents: the /openapi/v3 index and per group-version documents (enough for
//! kubectl's fieldValidation detection and its choice of patch type), and a minimal
//! protobuf /openapi/v2.

use serde_json::{Map, Value, json};

use crate::catalog::{Catalog, ServedResource};

/// A gnostic `openapi_v2.Document` holding only `swagger: "2.0"`; kubectl then finds no v2
/// schema and relies on v3 and on server-side validation.
pub const OPENAPI_V2_PROTOBUF: &[u8] = &[0x0a, 0x03, 0x32, 0x2e, 0x30];
pub const OPENAPI_V2_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `api/v1` or `apis/<g>/<v>` as the v3 index names group-versions.
fn index_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// Splits an index key back into (group, version).
pub fn parse_index_key(key: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = key.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", version] => Some((String::new(), version.to_string())),
        ["apis", group, version] => Some((group.to_string(), version.to_string())),
        _ => None,
    }
}

/// FNV-1a: a stable content hash for the `?hash=` of the index (changes when a CRD changes).
fn content_hash(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{hash:016X}")
}

/// Every served group-version, core first.
fn group_versions(catalog: &Catalog) -> Vec<(String, String)> {
    let mut gvs = vec![(String::new(), "v1".to_string())];
    for group in catalog.groups() {
        for version in group.versions {
            gvs.push((group.name.clone(), version));
        }
    }
    gvs
}

pub fn index(catalog: &Catalog) -> Value {
    let mut paths = Map::new();
    for (group, version) in group_versions(catalog) {
        let Some(doc) = group_version_document(catalog, &group, &version) else {
            continue;
        };
        let key = index_key(&group, &version);
        let hash = content_hash(doc.to_string().as_bytes());
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
        );
    }
    json!({ "paths": paths })
}

/// `io.k8s.api.core.v1.ConfigMap` style names for built-ins, reversed group for CRs.
fn schema_name(resource: &ServedResource) -> String {
    let info = &resource.info;
    if resource.crd_name.is_none() {
        let group = match info.group.as_str() {
            "" => "core",
            "apiextensions.k8s.io" => {
                return format!(
                    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{}.{}",
                    info.version, info.kind
                );
            }
            g => g.split('.').next().unwrap_or(g),
        };
        return format!("io.k8s.api.{group}.{}.{}", info.version, info.kind);
    }
    let reversed: Vec<&str> = info.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), info.version, info.kind)
}

fn gvk(resource: &ServedResource) -> Value {
    json!({"group": resource.info.group, "version": resource.info.version, "kind": resource.info.kind})
}

fn query_param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn write_params() -> Vec<Value> {
    vec![
        query_param("dryRun"),
        query_param("fieldManager"),
        query_param("fieldValidation"),
    ]
}

fn patch_operation(resource: &ServedResource, schema_ref: &Value, subresource: &str) -> Value {
    let mut content = Map::new();
    let mut types = vec![
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
    ];
    if resource.info.builtin {
        types.push("application/strategic-merge-patch+json");
    }
    for t in types {
        content.insert(t.to_string(), json!({"schema": {"type": "object"}}));
    }
    let mut params = write_params();
    params.push(
        json!({"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}),
    );
    json!({
        "description": format!("partially update {}{} of the specified {}", if subresource.is_empty() { "" } else { "status " }, "", resource.info.kind),
        "operationId": format!("patch{}{}", resource.info.kind, subresource),
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": gvk(resource),
        "parameters": params,
        "requestBody": {"content": content, "required": true},
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref}}}},
    })
}

fn resource_paths(resource: &ServedResource, paths: &mut Map<String, Value>) {
    let info = &resource.info;
    let prefix = if info.group.is_empty() {
        format!("/api/{}", info.version)
    } else {
        format!("/apis/{}/{}", info.group, info.version)
    };
    let collection = if info.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", info.plural)
    } else {
        format!("{prefix}/{}", info.plural)
    };
    let schema_ref = json!({"$ref": format!("#/components/schemas/{}", schema_name(resource))});
    let ok = |description: &str| json!({"200": {"description": description, "content": {"application/json": {"schema": schema_ref.clone()}}}});
    let mut path_params =
        vec![json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}})];
    if info.namespaced {
        path_params.push(json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}}));
    }
    paths.insert(
        collection.clone(),
        json!({
            "get": {"operationId": format!("list{}", info.kind), "x-kubernetes-action": "list", "x-kubernetes-group-version-kind": gvk(resource), "responses": ok("OK")},
            "post": {"operationId": format!("create{}", info.kind), "x-kubernetes-action": "post", "x-kubernetes-group-version-kind": gvk(resource), "parameters": write_params(),
                     "requestBody": {"content": {"application/json": {"schema": schema_ref.clone()}}, "required": true}, "responses": ok("OK")},
            "parameters": if info.namespaced { json!([path_params[1].clone()]) } else { json!([]) },
        }),
    );
    paths.insert(
        format!("{collection}/{{name}}"),
        json!({
            "get": {"operationId": format!("read{}", info.kind), "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk(resource), "responses": ok("OK")},
            "put": {"operationId": format!("replace{}", info.kind), "x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk(resource), "parameters": write_params(),
                    "requestBody": {"content": {"application/json": {"schema": schema_ref.clone()}}, "required": true}, "responses": ok("OK")},
            "patch": patch_operation(resource, &schema_ref, ""),
            "delete": {"operationId": format!("delete{}", info.kind), "x-kubernetes-action": "delete", "x-kubernetes-group-version-kind": gvk(resource), "responses": ok("OK")},
            "parameters": path_params,
        }),
    );
    if info.has_status {
        paths.insert(
            format!("{collection}/{{name}}/status"),
            json!({
                "get": {"operationId": format!("read{}Status", info.kind), "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk(resource), "responses": ok("OK")},
                "put": {"operationId": format!("replace{}Status", info.kind), "x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk(resource), "parameters": write_params(),
                        "requestBody": {"content": {"application/json": {"schema": schema_ref.clone()}}, "required": true}, "responses": ok("OK")},
                "patch": patch_operation(resource, &schema_ref, "Status"),
                "parameters": path_params,
            }),
        );
    }
}

/// The object schema of a resource: a CRD's own schema, or a permissive one for built-ins.
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

fn object_schema(resource: &ServedResource) -> Value {
    let mut schema = resource
        .schema
        .clone()
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([gvk(resource)]),
        );
        let properties = obj.entry("properties").or_insert_with(|| json!({}));
        if let Some(props) = properties.as_object_mut() {
            props.entry("apiVersion").or_insert(json!({"type": "string"}));
            props.entry("kind").or_insert(json!({"type": "string"}));
            props.insert(
                "metadata".into(),
                json!({"$ref": format!("#/components/schemas/{OBJECT_META}")}),
            );
        }
    }
    schema
}

/// The document for one group-version, or None if nothing is served there.
pub fn group_version_document(catalog: &Catalog, group: &str, version: &str) -> Option<Value> {
    let resources = catalog.in_group_version(group, version);
    if resources.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    crate::builtin_schemas::referenced_definitions(OBJECT_META, &mut schemas);
    for resource in &resources {
        resource_paths(resource, &mut paths);
        let name = schema_name(resource);
        let builtin_schemas = crate::builtin_schemas::builtin_schemas();
        if resource.crd_name.is_none() && builtin_schemas.definitions.contains_key(&name) {
            crate::builtin_schemas::referenced_definitions(&name, &mut schemas);
            if let Some(definition) = schemas.get_mut(&name).and_then(Value::as_object_mut) {
                definition.insert(
                    "x-kubernetes-group-version-kind".into(),
                    json!([gvk(resource)]),
                );
            }
        } else {
            schemas.insert(name, object_schema(resource));
        }
    }
    let title = if group.is_empty() {
        "Kubernetes".to_string()
    } else {
        format!("Kubernetes {group}")
    };
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": title, "version": format!("v1.{}.1", crate::discovery::SERVER_MINOR)},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
