//! What the task controller reads of a CassandraDatacenter: the labels upstream finds its pods
//! and tasks by (`GetDatacenterLabels`), the operator's labels it copies onto a task
//! (`oplabels.AddOperatorMetadata`), its racks and its owner reference.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::error::TaskError;

pub(super) const DC_GROUP: &str = crate::cass_operator::GROUP;
pub(super) const DC_PLURAL: &str = crate::cass_operator::PLURAL;
pub(super) const CLUSTER_LABEL: &str = "cassandra.datastax.com/cluster";
pub(super) const DATACENTER_LABEL: &str = "cassandra.datastax.com/datacenter";
pub(super) const RACK_LABEL: &str = "cassandra.datastax.com/rack";

pub(super) struct Datacenter {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub api_version: String,
    pub cluster_name: String,
    pub server_version: String,
    /// `spec.racks[].name` (empty when the spec lists none).
    pub racks: Vec<String>,
    pub additional_labels: BTreeMap<String, String>,
    pub additional_annotations: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

fn text(value: &Value, pointer: &str) -> String {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn string_map(value: &Value, pointer: &str) -> BTreeMap<String, String> {
    value
        .pointer(pointer)
        .and_then(Value::as_object)
        .map(|map| {
            map.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect()
        })
        .unwrap_or_default()
}

impl Datacenter {
    pub fn from_object(dc: &Value) -> Result<Datacenter, TaskError> {
        let name = text(dc, "/metadata/name");
        if name.is_empty() {
            return Err(TaskError::Malformed(
                "CassandraDatacenter without a name".into(),
            ));
        }
        let racks = dc
            .pointer("/spec/racks")
            .and_then(Value::as_array)
            .map(|racks| {
                racks
                    .iter()
                    .filter_map(|rack| rack.get("name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Datacenter {
            namespace: text(dc, "/metadata/namespace"),
            uid: text(dc, "/metadata/uid"),
            api_version: dc
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("cassandra.datastax.com/v1beta1")
                .to_string(),
            cluster_name: text(dc, "/spec/clusterName"),
            server_version: text(dc, "/spec/serverVersion"),
            racks,
            additional_labels: string_map(dc, "/spec/additionalLabels"),
            additional_annotations: string_map(dc, "/spec/additionalAnnotations"),
            annotations: string_map(dc, "/metadata/annotations"),
            name,
        })
    }

    /// `GetDatacenterLabels`: the cluster and the datacenter's object name, cleaned.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                CLUSTER_LABEL.to_string(),
                clean_label_value(&self.cluster_name),
            ),
            (DATACENTER_LABEL.to_string(), clean_label_value(&self.name)),
        ])
    }

    /// `AddOperatorLabels`.
    pub fn operator_labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            (
                "app.kubernetes.io/managed-by".to_string(),
                "cass-operator".to_string(),
            ),
            (
                "app.kubernetes.io/name".to_string(),
                "cassandra".to_string(),
            ),
            (
                "app.kubernetes.io/version".to_string(),
                self.server_version.clone(),
            ),
            (
                "app.kubernetes.io/instance".to_string(),
                format!("cassandra-{}", clean_label_value(&self.cluster_name)),
            ),
            (
                "app.kubernetes.io/created-by".to_string(),
                "cass-operator".to_string(),
            ),
        ]);
        for (key, value) in &self.additional_labels {
            labels.insert(key.clone(), clean_label_value(value));
        }
        labels
    }

    /// What `SetControllerReference` adds for this datacenter.
    pub fn controller_reference(&self) -> Value {
        json!({
            "apiVersion": self.api_version,
            "kind": "CassandraDatacenter",
            "name": self.name,
            "uid": self.uid,
            "controller": true,
            "blockOwnerDeletion": true,
        })
    }
}

pub(super) use crate::cass_operator::clean_label_value;

/// Upserts the datacenter as the task's controller, refusing as controller-runtime's
/// `SetControllerReference` does (another controller, another namespace).
pub(super) fn set_controller_reference(task: &mut Value, dc: &Datacenter) -> Result<(), String> {
    let task_namespace = text(task, "/metadata/namespace");
    if dc.namespace != task_namespace {
        return Err(format!(
            "cross-namespace owner references are disallowed, owner's namespace {}, obj's namespace {task_namespace}",
            dc.namespace
        ));
    }
    let group = |api_version: &str| api_version.split('/').next().unwrap_or_default().to_string();
    let same_owner = |reference: &Value| {
        group(reference.get("apiVersion").and_then(Value::as_str).unwrap_or_default())
            == group(&dc.api_version)
            && reference.get("kind").and_then(Value::as_str) == Some("CassandraDatacenter")
            && reference.get("name").and_then(Value::as_str) == Some(dc.name.as_str())
    };
    let mut references: Vec<Value> = task
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(other) = references
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true) && !same_owner(r))
    {
        return Err(format!(
            "Object {}/{} is already owned by another {} controller {}",
            task_namespace,
            text(task, "/metadata/name"),
            other.get("kind").and_then(Value::as_str).unwrap_or_default(),
            other.get("name").and_then(Value::as_str).unwrap_or_default(),
        ));
    }
    match references.iter_mut().find(|r| same_owner(r)) {
        Some(existing) => *existing = dc.controller_reference(),
        None => references.push(dc.controller_reference()),
    }
    if let Some(metadata) = task.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("ownerReferences".into(), Value::Array(references));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_cleaned_as_upstream_cleans_them() {
        assert_eq!(clean_label_value("My Cluster"), "MyCluster");
        assert_eq!(clean_label_value("My_Cluster"), "My_Cluster");
        assert_eq!(clean_label_value("-demo-"), "demo");
        assert_eq!(clean_label_value("a!b"), "ab");
        assert_eq!(clean_label_value("dc1"), "dc1");
    }

    #[test]
    fn the_controller_reference_is_refused_across_namespaces_and_owners() {
        let dc = Datacenter::from_object(&json!({
            "apiVersion": "cassandra.datastax.com/v1beta1",
            "metadata": {"name": "dc1", "namespace": "ns", "uid": "u1"},
            "spec": {"clusterName": "Demo Cluster"}}))
        .expect("dc");
        assert_eq!(
            dc.labels().get(CLUSTER_LABEL).map(String::as_str),
            Some("DemoCluster")
        );
        let mut task = json!({"metadata": {"name": "t", "namespace": "other"}});
        assert!(set_controller_reference(&mut task, &dc).is_err());
        let mut task = json!({"metadata": {"name": "t", "namespace": "ns", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u0", "controller": true}]}});
        assert_eq!(
            set_controller_reference(&mut task, &dc).err().as_deref(),
            Some("Object ns/t is already owned by another ConfigMap controller x")
        );
        let mut task = json!({"metadata": {"name": "t", "namespace": "ns"}});
        assert_eq!(set_controller_reference(&mut task, &dc), Ok(()));
        assert_eq!(
            task.pointer("/metadata/ownerReferences/0/uid").and_then(Value::as_str),
            Some("u1")
        );
    }
}
