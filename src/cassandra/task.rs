//! cass-operator's CassandraTask (`control.k8ssandra.io/v1alpha1`): the jobs Federator asks of a
//! datacenter's pods, built here (pure), and their progress as cass-operator reports it.

use std::collections::BTreeMap;

use kube::api::ApiResource;
use serde_json::{Value, json};

pub const TASK_GROUP: &str = "control.k8ssandra.io";
pub const TASK_VERSION: &str = "v1alpha1";
pub const TASK_KIND: &str = "CassandraTask";
pub const TASK_PLURAL: &str = "cassandratasks";

/// The CassandraTask resource, for dynamic clients.
pub fn task_resource() -> ApiResource {
    ApiResource {
        group: TASK_GROUP.into(),
        version: TASK_VERSION.into(),
        api_version: format!("{TASK_GROUP}/{TASK_VERSION}"),
        kind: TASK_KIND.into(),
        plural: TASK_PLURAL.into(),
    }
}

/// A rebuild of every node of a datacenter from another one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebuildTask {
    pub name: String,
    pub namespace: String,
    /// The CassandraDatacenter (`metadata.name`) whose pods rebuild.
    pub datacenter: String,
    /// The Cassandra name of the datacenter to stream from.
    pub source_datacenter: String,
    /// Pods rebuilding at once per rack.
    pub max_concurrent_pods: u32,
    pub labels: BTreeMap<String, String>,
}

impl RebuildTask {
    /// The object, for server-side apply.
    pub fn to_object(&self) -> Value {
        json!({
            "apiVersion": format!("{TASK_GROUP}/{TASK_VERSION}"),
            "kind": TASK_KIND,
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": self.labels,
            },
            "spec": {
                "datacenter": {"name": self.datacenter, "namespace": self.namespace},
                "jobs": [{
                    "name": self.name,
                    "command": "rebuild",
                    "args": {"source_datacenter": self.source_datacenter},
                }],
                "maxConcurrentPods": self.max_concurrent_pods,
            },
        })
    }
}

/// Where a task stands, from its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskProgress {
    /// Not finished: pods done so far, and pods at work now.
    Running { succeeded: i64, active: i64 },
    /// Complete, every pod's job succeeded.
    Succeeded,
    /// Complete with failures; the message of the Failed condition, if any.
    Failed { failed: i64, message: String },
}

/// Reads a CassandraTask's status as cass-operator writes it: `Complete` True once done, and
/// `Failed` True as well when a pod's job failed for good.
pub fn task_progress(task: &Value) -> TaskProgress {
    let status = task.get("status");
    let count = |field: &str| status.and_then(|s| s.get(field)).and_then(Value::as_i64);
    let condition = |kind: &str| {
        status
            .and_then(|s| s.get("conditions"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
            .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
    };
    let failed = count("failed").unwrap_or(0);
    if condition("Failed").is_some() || (failed > 0 && condition("Complete").is_some()) {
        let message = condition("Failed")
            .and_then(|c| c.get("message"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        return TaskProgress::Failed { failed, message };
    }
    if condition("Complete").is_some() {
        return TaskProgress::Succeeded;
    }
    TaskProgress::Running {
        succeeded: count("succeeded").unwrap_or(0),
        active: count("active").unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebuild_task_names_its_datacenter_source_and_concurrency() {
        let task = RebuildTask {
            name: "dc2-rebuild".into(),
            namespace: "ns".into(),
            datacenter: "dc2".into(),
            source_datacenter: "dc1".into(),
            max_concurrent_pods: 2,
            labels: BTreeMap::from([("k8ssandra.io/cluster-name".into(), "demo".into())]),
        };
        let object = task.to_object();
        assert_eq!(
            object["spec"]["datacenter"],
            json!({"name": "dc2", "namespace": "ns"})
        );
        assert_eq!(object["spec"]["jobs"][0]["command"], "rebuild");
        assert_eq!(
            object["spec"]["jobs"][0]["args"]["source_datacenter"],
            "dc1"
        );
        assert_eq!(object["spec"]["maxConcurrentPods"], 2);
        assert_eq!(
            object["metadata"]["labels"]["k8ssandra.io/cluster-name"],
            "demo"
        );
    }

    #[test]
    fn progress_follows_cass_operators_conditions() {
        assert_eq!(
            task_progress(&json!({"status": {"active": 1, "succeeded": 2}})),
            TaskProgress::Running {
                succeeded: 2,
                active: 1
            }
        );
        assert_eq!(
            task_progress(&json!({})),
            TaskProgress::Running {
                succeeded: 0,
                active: 0
            }
        );
        let complete = json!({"status": {"succeeded": 3, "conditions": [
            {"type": "Running", "status": "False"},
            {"type": "Complete", "status": "True"}]}});
        assert_eq!(task_progress(&complete), TaskProgress::Succeeded);
        let failed = json!({"status": {"succeeded": 2, "failed": 1, "conditions": [
            {"type": "Complete", "status": "True"},
            {"type": "Failed", "status": "True", "message": "streaming failed"}]}});
        assert_eq!(
            task_progress(&failed),
            TaskProgress::Failed {
                failed: 1,
                message: "streaming failed".into()
            }
        );
    }
}
