//! Discovery documents: /version, legacy /api and /apis lists, per group-version resource
//! lists, and aggregated discovery (apidiscovery.k8s.io v2 and v2beta1) chosen by Accept.

use serde_json::{Value, json};

use crate::catalog::{Catalog, ServedResource};

/// The Kubernetes minor version kube-sim claims. The kubectl dispatcher runs `kubectl.1.<minor>`.
pub const SERVER_MINOR: &str = "33";

pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": SERVER_MINOR,
        "gitVersion": format!("v1.{SERVER_MINOR}.1"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-05-15T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// The aggregated discovery version a client accepts before any plain JSON, honouring the
/// order of its Accept header. None means the legacy format.
pub fn negotiate_aggregated(accept: Option<&str>) -> Option<&'static str> {
    let accept = accept?;
    for range in crate::server::media::parse_accept(accept) {
        if range.essence == "application/json"
            || range.essence == "*/*"
            || range.essence == "application/*"
        {
            let is_discovery = range.param("g") == Some("apidiscovery.k8s.io")
                && range.param("as") == Some("APIGroupDiscoveryList");
            if is_discovery {
                match range.param("v") {
                    Some("v2") => return Some("v2"),
                    Some("v2beta1") => return Some("v2beta1"),
                    _ => continue,
                }
            }
            if range.param("as").is_none() {
                // plain JSON is preferred over any aggregated format listed after it
                break;
            }
        }
    }
    None
}

pub fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

/// Legacy `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let versions_json: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    let preferred = versions_json.first().cloned().unwrap_or(Value::Null);
    json!({"name": name, "versions": versions_json, "preferredVersion": preferred})
}

/// Legacy `/apis`.
pub fn group_list(catalog: &Catalog) -> Value {
    let groups: Vec<Value> =
        catalog.groups().iter().map(|g| group_json(&g.name, &g.versions)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group(catalog: &Catalog, name: &str) -> Option<Value> {
    let versions = catalog.versions_of(name);
    if versions.is_empty() {
        return None;
    }
    let mut doc = group_json(name, &versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

struct SubresourceEntry {
    name: &'static str,
    group: String,
    version: String,
    kind: String,
    verbs: Vec<&'static str>,
}

fn subresources(resource: &ServedResource) -> Vec<SubresourceEntry> {
    let info = &resource.info;
    let mut subs = Vec::new();
    if info.has_status {
        subs.push(SubresourceEntry {
            name: "status",
            group: info.group.clone(),
            version: info.version.clone(),
            kind: info.kind.clone(),
            verbs: vec!["get", "patch", "update"],
        });
    }
    if resource.scale.is_some() {
        subs.push(SubresourceEntry {
            name: "scale",
            group: "autoscaling".into(),
            version: "v1".into(),
            kind: "Scale".into(),
            verbs: vec!["get", "patch", "update"],
        });
    }
    if info.group.is_empty() && info.plural == "pods" {
        // Served by server/proxy.rs; a connect subresource, so every verb a method maps to.
        subs.push(SubresourceEntry {
            name: "proxy",
            group: String::new(),
            version: "v1".into(),
            kind: "PodProxyOptions".into(),
            verbs: vec!["create", "delete", "get", "patch", "update"],
        });
    }
    if info.group.is_empty() && info.plural == "services" {
        // Served by server/service_proxy.rs, like the pods' proxy.
        subs.push(SubresourceEntry {
            name: "proxy",
            group: String::new(),
            version: "v1".into(),
            kind: "ServiceProxyOptions".into(),
            verbs: vec!["create", "delete", "get", "patch", "update"],
        });
    }
    if info.group.is_empty() && info.plural == "namespaces" {
        subs.push(SubresourceEntry {
            name: "finalize",
            group: String::new(),
            version: "v1".into(),
            kind: "Namespace".into(),
            verbs: vec!["update"],
        });
    }
    subs
}

/// Legacy `/api/v1` or `/apis/<g>/<v>`.
pub fn resource_list(catalog: &Catalog, group: &str, version: &str) -> Option<Value> {
    let resources = catalog.in_group_version(group, version);
    if resources.is_empty() {
        return None;
    }
    let mut entries = Vec::new();
    for resource in &resources {
        let info = &resource.info;
        let mut entry = json!({
            "name": info.plural,
            "singularName": info.singular,
            "namespaced": info.namespaced,
            "kind": info.kind,
            "verbs": resource.verbs,
        });
        if !resource.short_names.is_empty() {
            entry["shortNames"] = json!(resource.short_names);
        }
        if !resource.categories.is_empty() {
            entry["categories"] = json!(resource.categories);
        }
        entries.push(entry);
        for sub in subresources(resource) {
            let mut sub_entry = json!({
                "name": format!("{}/{}", info.plural, sub.name),
                "singularName": "",
                "namespaced": info.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if sub.group != info.group || sub.version != info.version {
                sub_entry["group"] = json!(sub.group);
                sub_entry["version"] = json!(sub.version);
            }
            entries.push(sub_entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }))
}

fn aggregated_resource(resource: &ServedResource) -> Value {
    let info = &resource.info;
    let mut entry = json!({
        "resource": info.plural,
        "responseKind": {"group": info.group, "version": info.version, "kind": info.kind},
        "scope": if info.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": info.singular,
        "verbs": resource.verbs,
    });
    if !resource.short_names.is_empty() {
        entry["shortNames"] = json!(resource.short_names);
    }
    if !resource.categories.is_empty() {
        entry["categories"] = json!(resource.categories);
    }
    let subs: Vec<Value> = subresources(resource)
        .into_iter()
        .map(|s| {
            json!({
                "subresource": s.name,
                "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                "verbs": s.verbs,
            })
        })
        .collect();
    if !subs.is_empty() {
        entry["subresources"] = Value::Array(subs);
    }
    entry
}

fn aggregated_group(catalog: &Catalog, name: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> =
                catalog.in_group_version(name, v).iter().map(|r| aggregated_resource(r)).collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": name, "creationTimestamp": null}, "versions": versions})
}

/// Aggregated discovery for `/api` (core = true) or `/apis`.
pub fn aggregated(catalog: &Catalog, core: bool, version: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group(catalog, "", &["v1".to_string()])]
    } else {
        catalog.groups().iter().map(|g| aggregated_group(catalog, &g.name, &g.versions)).collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_127_gets_v2beta1_and_133_gets_v2() {
        let k127 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        let k133 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate_aggregated(Some(k127)), Some("v2beta1"));
        assert_eq!(negotiate_aggregated(Some(k133)), Some("v2"));
        assert_eq!(negotiate_aggregated(Some("application/json, */*")), None);
        assert_eq!(negotiate_aggregated(None), None);
    }
}
