//! The resources one cluster serves, with what discovery, OpenAPI and tables need beyond the
//! store's `ResourceInfo`: short names, categories, verbs, scale paths, printer columns, schema.

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::Value;

use crate::store::ResourceInfo;

/// JSON paths of a `/scale` subresource (autoscaling/v1 Scale).
#[derive(Clone, Debug)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// One `additionalPrinterColumns` entry (or a built-in printer's column).
#[derive(Clone, Debug)]
pub struct PrinterColumn {
    pub name: String,
    pub column_type: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// One served group/version/resource.
#[derive(Clone)]
pub struct ServedResource {
    pub info: ResourceInfo,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<String>,
    pub scale: Option<ScalePaths>,
    /// Only for custom resources; built-in tables are rendered by `table`.
    pub printer_columns: Vec<PrinterColumn>,
    /// `openAPIV3Schema` of a custom resource version.
    pub schema: Option<Value>,
    /// Name of the CRD that defines it (None for built-ins).
    pub crd_name: Option<String>,
    /// The version objects are stored in; the store keeps one entry per group+plural, so only
    /// this version's admission and kind are registered there.
    pub storage: bool,
    /// The `Warning` every request for a deprecated custom resource version is answered with
    /// (its `deprecationWarning`, else `<group>/<version> <Kind> is deprecated`).
    pub deprecation_warning: Option<String>,
}

impl ServedResource {
    pub fn group_version(&self) -> String {
        if self.info.group.is_empty() {
            self.info.version.clone()
        } else {
            format!("{}/{}", self.info.group, self.info.version)
        }
    }

    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }
}

/// All verbs of an ordinary resource.
pub fn standard_verbs() -> Vec<String> {
    [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ]
    .iter()
    .map(|v| v.to_string())
    .collect()
}

/// Short names, categories and verbs of the built-in kinds, as kube-apiserver reports them.
fn builtin_extras(group: &str, plural: &str) -> (Vec<&'static str>, Vec<&'static str>) {
    match (group, plural) {
        ("", "namespaces") => (vec!["ns"], vec![]),
        ("", "configmaps") => (vec!["cm"], vec![]),
        ("", "services") => (vec!["svc"], vec!["all"]),
        ("", "endpoints") => (vec!["ep"], vec![]),
        ("", "pods") => (vec!["po"], vec!["all"]),
        ("", "persistentvolumeclaims") => (vec!["pvc"], vec![]),
        ("", "serviceaccounts") => (vec!["sa"], vec![]),
        ("", "events") => (vec!["ev"], vec![]),
        ("events.k8s.io", "events") => (vec!["ev"], vec![]),
        ("apps", "deployments") => (vec!["deploy"], vec!["all"]),
        ("apps", "statefulsets") => (vec!["sts"], vec!["all"]),
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            (vec!["crd", "crds"], vec!["api-extensions"])
        }
        _ => (vec![], vec![]),
    }
}

/// Describes a built-in resource of the store for discovery.
pub fn builtin_served(info: ResourceInfo) -> ServedResource {
    let (short_names, categories) = builtin_extras(&info.group, &info.plural);
    let mut verbs = standard_verbs();
    if info.group.is_empty() && info.plural == "namespaces" {
        verbs.retain(|v| v != "deletecollection");
    }
    let scale =
        if info.group == "apps" && matches!(info.plural.as_str(), "deployments" | "statefulsets") {
            Some(ScalePaths {
                spec_replicas: ".spec.replicas".into(),
                status_replicas: ".status.replicas".into(),
                label_selector: None,
            })
        } else {
            None
        };
    ServedResource {
        info,
        short_names: short_names.into_iter().map(String::from).collect(),
        categories: categories.into_iter().map(String::from).collect(),
        verbs,
        scale,
        printer_columns: Vec::new(),
        schema: None,
        crd_name: None,
        storage: true,
        deprecation_warning: None,
    }
}

/// The served resources of one cluster.
#[derive(Default, Clone)]
pub struct Catalog {
    resources: Vec<Arc<ServedResource>>,
    /// group names in the order built-ins were registered; CRD groups follow, sorted
    builtin_groups: Vec<String>,
}

/// One API group as discovery lists it.
pub struct GroupEntry {
    pub name: String,
    /// preferred first
    pub versions: Vec<String>,
}

impl Catalog {
    pub fn add_builtin(&mut self, resource: ServedResource) {
        if !self.builtin_groups.contains(&resource.info.group) {
            self.builtin_groups.push(resource.info.group.clone());
        }
        self.upsert(resource);
    }

    /// Adds or replaces a resource (same group, version, plural).
    pub fn upsert(&mut self, resource: ServedResource) {
        let resource = Arc::new(resource);
        match self.resources.iter_mut().find(|r| {
            r.info.group == resource.info.group
                && r.info.version == resource.info.version
                && r.info.plural == resource.info.plural
        }) {
            Some(existing) => *existing = resource,
            None => self.resources.push(resource),
        }
    }

    /// Removes every resource of group+plural (all versions); returns what was removed.
    pub fn remove_group_resource(&mut self, group: &str, plural: &str) -> Vec<Arc<ServedResource>> {
        let (removed, kept) = self
            .resources
            .drain(..)
            .partition(|r| r.info.group == group && r.info.plural == plural);
        self.resources = kept;
        removed
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ServedResource>> {
        self.resources
            .iter()
            .find(|r| r.info.group == group && r.info.version == version && r.info.plural == plural)
            .cloned()
    }

    pub fn find_by_kind(
        &self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Option<Arc<ServedResource>> {
        self.resources
            .iter()
            .find(|r| r.info.group == group && r.info.version == version && r.info.kind == kind)
            .cloned()
    }

    pub fn all(&self) -> &[Arc<ServedResource>] {
        &self.resources
    }

    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ServedResource>> {
        self.resources
            .iter()
            .filter(|r| r.info.group == group && r.info.version == version)
            .cloned()
            .collect()
    }

    /// Groups (without the core group), built-ins first, versions by Kubernetes priority.
    pub fn groups(&self) -> Vec<GroupEntry> {
        let mut names: Vec<String> = self
            .builtin_groups
            .iter()
            .filter(|g| !g.is_empty())
            .filter(|g| self.resources.iter().any(|r| &r.info.group == *g))
            .cloned()
            .collect();
        let mut custom: Vec<String> = self
            .resources
            .iter()
            .map(|r| r.info.group.clone())
            .filter(|g| !g.is_empty() && !names.contains(g))
            .collect();
        custom.sort();
        custom.dedup();
        names.extend(custom);
        names
            .into_iter()
            .map(|name| {
                let versions = self.versions_of(&name);
                GroupEntry { name, versions }
            })
            .collect()
    }

    pub fn versions_of(&self, group: &str) -> Vec<String> {
        let mut versions: Vec<String> = self
            .resources
            .iter()
            .filter(|r| r.info.group == group)
            .map(|r| r.info.version.clone())
            .collect();
        versions.sort_by(|a, b| compare_kube_versions(a, b));
        versions.dedup();
        versions
    }
}

/// Kubernetes version priority: GA > beta > alpha > anything else, higher numbers first.
pub fn compare_kube_versions(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u32, u32, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let major: u32 = rest[..digits_end].parse().ok()?;
        let tail = &rest[digits_end..];
        if tail.is_empty() {
            return Some((3, major, 0));
        }
        for (prefix, rank) in [("beta", 2), ("alpha", 1)] {
            if let Some(minor) = tail.strip_prefix(prefix) {
                return Some((rank, major, minor.parse().ok()?));
            }
        }
        None
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_by_kubernetes_priority() {
        let mut v = vec!["v1alpha1", "foo", "v2", "v1beta2", "v1", "v1beta1"];
        v.sort_by(|a, b| compare_kube_versions(a, b));
        assert_eq!(v, vec!["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }
}
