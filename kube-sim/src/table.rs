//! `meta.k8s.io/v1` Table and PartialObjectMetadata renderings of objects and lists.

use serde_json::{Map, Value, json};

use crate::catalog::{PrinterColumn, ServedResource};
use crate::error::ApiError;
use crate::jsonpath::{self, JsonPath};

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATION_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// What a Table row's `object` holds (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("") | Some("Metadata") => Ok(IncludeObject::Metadata),
            Some("None") => Ok(IncludeObject::None),
            Some("Object") => Ok(IncludeObject::Object),
            Some(other) => Err(ApiError::bad_request(format!(
                "unrecognized includeObject value: {other:?}"
            ))),
        }
    }
}

/// `HumanDuration` of apimachinery: `45s`, `3m20s`, `5h10m`, `3d4h`, `400d`, `2y30d`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    let seconds = seconds.max(0);
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        let days = hours / 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    let days = hours / 24;
    if days < 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if years < 8 {
        let d = days % 365;
        return if d == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{d}d")
        };
    }
    format!("{years}y")
}

/// The age cell of an RFC3339 timestamp.
pub fn age_of(timestamp: Option<&Value>) -> Value {
    let Some(text) = timestamp.and_then(Value::as_str) else {
        return json!("<unknown>");
    };
    match text.parse::<jiff::Timestamp>() {
        Ok(t) => {
            let seconds = jiff::Timestamp::now().as_second() - t.as_second();
            json!(human_duration(seconds))
        }
        Err(_) => json!("<invalid>"),
    }
}

fn column(name: &str, column_type: &str, format: &str, description: &str, priority: i64) -> Value {
    json!({"name": name, "type": column_type, "format": format, "description": description, "priority": priority})
}

fn name_column() -> Value {
    column("Name", "string", "name", NAME_DESCRIPTION, 0)
}

fn age_column() -> Value {
    column("Age", "string", "", CREATION_DESCRIPTION, 0)
}

fn custom_columns(columns: &[PrinterColumn]) -> Vec<Value> {
    let mut defs = vec![name_column()];
    if columns.is_empty() {
        defs.push(column("Age", "date", "", CREATION_DESCRIPTION, 0));
        return defs;
    }
    for c in columns {
        defs.push(column(
            &c.name,
            &c.column_type,
            &c.format,
            &c.description,
            c.priority,
        ));
    }
    defs
}

fn custom_cell(column: &PrinterColumn, obj: &Value) -> Value {
    let Ok(path) = JsonPath::parse(&column.json_path) else {
        return Value::Null;
    };
    let Some(value) = path.find(obj).into_iter().next() else {
        return Value::Null;
    };
    match column.column_type.as_str() {
        "string" => json!(jsonpath::render(value)),
        "integer" => value
            .as_i64()
            .or_else(|| value.as_f64().map(|f| f as i64))
            .map(Value::from)
            .unwrap_or(Value::Null),
        "number" => value.as_f64().map(Value::from).unwrap_or(Value::Null),
        "boolean" => value.as_bool().map(Value::from).unwrap_or(Value::Null),
        "date" => age_of(Some(value)),
        _ => value.clone(),
    }
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn int_at(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn count_entries(obj: &Value, pointers: &[&str]) -> i64 {
    pointers
        .iter()
        .filter_map(|p| obj.pointer(p).and_then(Value::as_object))
        .map(|m| m.len() as i64)
        .sum()
}

fn list_at(obj: &Value, pointer: &str) -> Vec<Value> {
    obj.pointer(pointer).and_then(Value::as_array).cloned().unwrap_or_default()
}

fn or_unset(text: String) -> Value {
    if text.is_empty() {
        json!("<unset>")
    } else {
        json!(text)
    }
}

fn or_none(text: String) -> Value {
    if text.is_empty() {
        json!("<none>")
    } else {
        json!(text)
    }
}

/// Column definitions and a cell function for a built-in resource.
fn builtin_columns(resource: &ServedResource) -> Vec<Value> {
    let info = &resource.info;
    let mut defs = vec![name_column()];
    let more: Vec<Value> = match (info.group.as_str(), info.plural.as_str()) {
        ("", "namespaces") => vec![column(
            "Status",
            "string",
            "",
            "The status of the namespace",
            0,
        )],
        ("", "configmaps") => vec![column(
            "Data",
            "string",
            "",
            "Data contains the configuration data.",
            0,
        )],
        ("", "secrets") => vec![
            column("Type", "string", "", "The type of the secret", 0),
            column(
                "Data",
                "string",
                "",
                "The number of entries in the secret",
                0,
            ),
        ],
        ("", "services") => vec![
            column("Type", "string", "", "The type of the service", 0),
            column(
                "Cluster-IP",
                "string",
                "",
                "The cluster IP of the service",
                0,
            ),
            column(
                "External-IP",
                "string",
                "",
                "The external IP of the service",
                0,
            ),
            column("Port(s)", "string", "", "The ports of the service", 0),
        ],
        ("", "pods") => vec![
            column(
                "Ready",
                "string",
                "",
                "The aggregate readiness state of this pod for accepting traffic.",
                0,
            ),
            column(
                "Status",
                "string",
                "",
                "The aggregate status of the containers in this pod.",
                0,
            ),
            column(
                "Restarts",
                "string",
                "",
                "The number of times the containers in this pod have been restarted.",
                0,
            ),
        ],
        ("apps", "deployments") => vec![
            column(
                "Ready",
                "string",
                "",
                "Number of the pod with ready state",
                0,
            ),
            column(
                "Up-to-date",
                "string",
                "",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                0,
            ),
            column(
                "Available",
                "string",
                "",
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                0,
            ),
        ],
        ("apps", "statefulsets") => vec![column(
            "Ready",
            "string",
            "",
            "Number of the pod with ready state",
            0,
        )],
        ("coordination.k8s.io", "leases") => {
            vec![column("Holder", "string", "", "The holder of the lease", 0)]
        }
        ("discovery.k8s.io", "endpointslices") => vec![
            column(
                "AddressType",
                "string",
                "",
                "The type of addresses in this slice",
                0,
            ),
            column("Ports", "string", "", "The ports of the endpoints", 0),
            column(
                "Endpoints",
                "string",
                "",
                "The addresses of the endpoints",
                0,
            ),
        ],
        ("", "endpoints") => vec![column("Endpoints", "string", "", "The endpoints", 0)],
        ("", "serviceaccounts") => {
            vec![column("Secrets", "string", "", "The number of secrets", 0)]
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            defs.push(column("Created At", "date", "", CREATION_DESCRIPTION, 0));
            return defs;
        }
        _ => vec![],
    };
    defs.extend(more);
    defs.push(age_column());
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "pods") => {
            defs.push(column(
                "IP",
                "string",
                "",
                "IP address allocated to the pod.",
                1,
            ));
            defs.push(column(
                "Node",
                "string",
                "",
                "Name of the node the pod is assigned to.",
                1,
            ));
        }
        ("", "services") => defs.push(column(
            "Selector",
            "string",
            "",
            "The selector of the service",
            1,
        )),
        _ => {}
    }
    defs
}

fn builtin_cells(resource: &ServedResource, obj: &Value) -> Vec<Value> {
    let info = &resource.info;
    let name = json!(str_at(obj, "/metadata/name"));
    let age = age_of(obj.pointer("/metadata/creationTimestamp"));
    let mut cells = vec![name];
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "namespaces") => {
            let phase = str_at(obj, "/status/phase");
            cells.push(json!(if phase.is_empty() { "Active" } else { phase }));
        }
        ("", "configmaps") => cells.push(json!(count_entries(obj, &["/data", "/binaryData"]))),
        ("", "secrets") => {
            cells.push(json!(str_at(obj, "/type")));
            cells.push(json!(count_entries(obj, &["/data"])));
        }
        ("", "services") => {
            let service_type = str_at(obj, "/spec/type");
            cells.push(json!(if service_type.is_empty() {
                "ClusterIP"
            } else {
                service_type
            }));
            cells.push(or_none(str_at(obj, "/spec/clusterIP").to_string()));
            cells.push(json!("<none>"));
            let ports: Vec<String> = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ports| {
                    ports
                        .iter()
                        .map(|p| {
                            let protocol =
                                p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                            format!(
                                "{}/{protocol}",
                                p.get("port").map(jsonpath::render).unwrap_or_default()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            cells.push(or_none(ports.join(",")));
        }
        ("", "pods") => {
            let statuses = obj.pointer("/status/containerStatuses").and_then(Value::as_array);
            let total = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map(Vec::len)
                .unwrap_or(0);
            let ready = statuses
                .map(|s| s.iter().filter(|c| c.get("ready") == Some(&json!(true))).count())
                .unwrap_or(0);
            let restarts: i64 = statuses
                .map(|s| {
                    s.iter().filter_map(|c| c.get("restartCount").and_then(Value::as_i64)).sum()
                })
                .unwrap_or(0);
            cells.push(json!(format!("{ready}/{total}")));
            let status = if obj.pointer("/metadata/deletionTimestamp").is_some() {
                "Terminating"
            } else {
                match str_at(obj, "/status/phase") {
                    "" => "Pending",
                    phase => phase,
                }
            };
            cells.push(json!(status));
            cells.push(json!(restarts.to_string()));
        }
        ("apps", "deployments") => {
            cells.push(json!(format!(
                "{}/{}",
                int_at(obj, "/status/readyReplicas"),
                int_at(obj, "/spec/replicas")
            )));
            cells.push(json!(int_at(obj, "/status/updatedReplicas")));
            cells.push(json!(int_at(obj, "/status/availableReplicas")));
        }
        ("apps", "statefulsets") => {
            cells.push(json!(format!(
                "{}/{}",
                int_at(obj, "/status/readyReplicas"),
                int_at(obj, "/spec/replicas")
            )));
        }
        ("coordination.k8s.io", "leases") => {
            cells.push(or_none(str_at(obj, "/spec/holderIdentity").to_string()))
        }
        ("discovery.k8s.io", "endpointslices") => {
            cells.push(json!(str_at(obj, "/addressType")));
            let ports: Vec<String> = list_at(obj, "/ports")
                .iter()
                .filter_map(|p| p.get("port").map(jsonpath::render))
                .collect();
            cells.push(or_unset(ports.join(",")));
            let addresses: Vec<String> = list_at(obj, "/endpoints")
                .iter()
                .flat_map(|e| list_at(e, "/addresses"))
                .map(|a| jsonpath::render(&a))
                .collect();
            cells.push(or_unset(addresses.join(",")));
        }
        ("", "endpoints") => {
            let mut addresses = Vec::new();
            for subset in list_at(obj, "/subsets") {
                let ports: Vec<String> = list_at(&subset, "/ports")
                    .iter()
                    .filter_map(|p| p.get("port").map(jsonpath::render))
                    .collect();
                for address in list_at(&subset, "/addresses") {
                    let ip = address.get("ip").map(jsonpath::render).unwrap_or_default();
                    if ports.is_empty() {
                        addresses.push(ip);
                    } else {
                        addresses.extend(ports.iter().map(|p| format!("{ip}:{p}")));
                    }
                }
            }
            cells.push(or_none(addresses.join(",")));
        }
        ("", "serviceaccounts") => cells.push(json!(list_at(obj, "/secrets").len())),
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            cells.push(json!(str_at(obj, "/metadata/creationTimestamp")));
            return cells;
        }
        _ => {}
    }
    cells.push(age);
    match (info.group.as_str(), info.plural.as_str()) {
        ("", "pods") => {
            cells.push(or_none(str_at(obj, "/status/podIP").to_string()));
            cells.push(or_none(str_at(obj, "/spec/nodeName").to_string()));
        }
        ("", "services") => {
            let selector = obj
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", jsonpath::render(v)))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            cells.push(or_none(selector));
        }
        _ => {}
    }
    cells
}

pub fn column_definitions(resource: &ServedResource) -> Vec<Value> {
    if resource.crd_name.is_some() {
        custom_columns(&resource.printer_columns)
    } else {
        builtin_columns(resource)
    }
}

fn row_cells(resource: &ServedResource, obj: &Value) -> Vec<Value> {
    if resource.crd_name.is_some() {
        let mut cells = vec![json!(str_at(obj, "/metadata/name"))];
        if resource.printer_columns.is_empty() {
            cells.push(age_of(obj.pointer("/metadata/creationTimestamp")));
        } else {
            cells.extend(resource.printer_columns.iter().map(|c| custom_cell(c, obj)));
        }
        cells
    } else {
        builtin_cells(resource, obj)
    }
}

/// `PartialObjectMetadata` of an object.
pub fn partial_object_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// `PartialObjectMetadataList` of a list.
pub fn partial_object_metadata_list(list: &Value) -> Value {
    let items: Vec<Value> = list
        .get("items")
        .and_then(Value::as_array)
        .map(|items| items.iter().map(partial_object_metadata).collect())
        .unwrap_or_default();
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list.get("metadata").cloned().unwrap_or_else(|| json!({})),
        "items": items,
    })
}

fn row(resource: &ServedResource, obj: &Value, include: IncludeObject) -> Value {
    let object = match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Metadata => partial_object_metadata(obj),
        IncludeObject::Object => obj.clone(),
    };
    json!({"cells": row_cells(resource, obj), "object": object})
}

/// A Table of the given objects. `list_metadata` is the list's metadata (resourceVersion,
/// continue, remainingItemCount); `with_columns` is false for watch events after the first.
pub fn table(
    resource: &ServedResource,
    objects: &[Value],
    list_metadata: Value,
    include: IncludeObject,
    with_columns: bool,
) -> Value {
    let rows: Vec<Value> = objects.iter().map(|o| row(resource, o, include)).collect();
    let mut table = Map::new();
    table.insert("kind".into(), json!("Table"));
    table.insert("apiVersion".into(), json!("meta.k8s.io/v1"));
    table.insert("metadata".into(), list_metadata);
    if with_columns {
        table.insert(
            "columnDefinitions".into(),
            json!(column_definitions(resource)),
        );
    } else {
        table.insert("columnDefinitions".into(), Value::Null);
    }
    table.insert("rows".into(), Value::Array(rows));
    Value::Object(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_apimachinery() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(240), "4m");
        assert_eq!(human_duration(3600), "60m");
        assert_eq!(human_duration(5 * 3600 + 600), "5h10m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 4 * 3600), "3d4h");
        assert_eq!(human_duration(400 * 86400), "400d");
        assert_eq!(human_duration(3 * 365 * 86400), "3y");
    }
}
