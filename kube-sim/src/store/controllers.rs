//! kwok-like controllers of the built-in kinds, run by a background task: Deployments and
//! StatefulSets report their replicas ready, service-account token Secrets get a token,
//! dependents whose owners are gone are garbage collected, and terminating namespaces are
//! emptied and removed. Like kube-controller-manager, they act after the request that made the
//! change: a DELETE returns before the garbage collector has done anything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::engine::{ControllerTask, Store};
use super::meta::{is_deleting, meta_str, metadata, now_rfc3339, owner_refs, random_suffix};

const MANAGER: &str = "kube-controller-manager";

fn replicas(obj: &Value) -> i64 {
    obj.get("spec").and_then(|s| s.get("replicas")).and_then(Value::as_i64).unwrap_or(1)
}

fn generation(obj: &Value) -> i64 {
    metadata(obj).and_then(|m| m.get("generation")).and_then(Value::as_i64).unwrap_or(1)
}

/// Integer status fields, leaving out zeros as Go's omitempty does.
fn counts(status: &mut Map<String, Value>, fields: &[&str], value: i64) {
    for field in fields {
        if value != 0 {
            status.insert((*field).to_string(), json!(value));
        }
    }
}

fn counts_match(old: Option<&Value>, new: &Map<String, Value>, fields: &[&str]) -> bool {
    fields.iter().all(|f| old.and_then(|s| s.get(*f)) == new.get(*f))
}

/// A stable pseudo hash for revision names (`web-7c9f8d6b5`).
fn revision_suffix(obj: &Value) -> String {
    let spec =
        obj.get("spec").and_then(|s| s.get("template")).map(Value::to_string).unwrap_or_default();
    let hash = spec.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("{:x}", hash % 0xfffffffff)
}

fn deployment_status(obj: &Value) -> Option<Value> {
    if is_deleting(obj) {
        return None;
    }
    let r = replicas(obj);
    let mut status = Map::new();
    status.insert("observedGeneration".into(), json!(generation(obj)));
    let fields = [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ];
    counts(&mut status, &fields, r);
    let old = obj.get("status");
    let mut check = vec!["observedGeneration"];
    check.extend(fields);
    if counts_match(old, &status, &check) && old.and_then(|s| s.get("conditions")).is_some() {
        return None;
    }
    let now = now_rfc3339();
    let name = meta_str(obj, "name").unwrap_or_default();
    status.insert(
        "conditions".into(),
        json!([
            {"type": "Available", "status": "True", "lastUpdateTime": now, "lastTransitionTime": now,
             "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
            {"type": "Progressing", "status": "True", "lastUpdateTime": now, "lastTransitionTime": now,
             "reason": "NewReplicaSetAvailable",
             "message": format!("ReplicaSet \"{name}-{}\" has successfully progressed.", revision_suffix(obj))},
        ]),
    );
    Some(Value::Object(status))
}

fn statefulset_status(obj: &Value) -> Option<Value> {
    if is_deleting(obj) {
        return None;
    }
    let r = replicas(obj);
    let mut status = Map::new();
    status.insert("observedGeneration".into(), json!(generation(obj)));
    let fields = [
        "replicas",
        "readyReplicas",
        "currentReplicas",
        "updatedReplicas",
        "availableReplicas",
    ];
    counts(&mut status, &fields, r);
    let name = meta_str(obj, "name").unwrap_or_default();
    let revision = format!("{name}-{}", revision_suffix(obj));
    status.insert("currentRevision".into(), json!(revision));
    status.insert("updateRevision".into(), json!(revision));
    status.insert("collisionCount".into(), json!(0));
    let old = obj.get("status");
    let mut check = vec!["observedGeneration", "currentRevision", "updateRevision"];
    check.extend(fields);
    if counts_match(old, &status, &check) {
        return None;
    }
    Some(Value::Object(status))
}

impl Store {
    /// Starts the built-in controllers on the current tokio runtime. They stop when the store
    /// is dropped.
    pub fn spawn_controllers(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        self.shared.state.write().controllers_running = true;
        let store = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let Some(store) = store.upgrade() else {
                    break;
                };
                store.run_due_controllers(Instant::now());
            }
        })
    }

    /// Runs the controller work that is due (the background task calls this; tests may too).
    pub fn run_due_controllers(&self, now: Instant) {
        for task in self.take_due_tasks(now) {
            self.reconcile(task);
        }
        self.collect_garbage(now);
    }

    fn reconcile(&self, task: ControllerTask) {
        let ControllerTask { resource, key, .. } = task;
        match (resource.0.as_str(), resource.1.as_str()) {
            ("apps", "deployments") => {
                self.controller_status_write(&resource, &key, MANAGER, deployment_status)
            }
            ("apps", "statefulsets") => {
                self.controller_status_write(&resource, &key, MANAGER, statefulset_status)
            }
            ("", "secrets") => self.fill_token(&resource, &key),
            _ => {}
        }
        if self.load(&resource, &key).is_some_and(|o| !owner_refs(&o).is_empty()) {
            self.collect_if_orphaned(&resource, &key);
        }
    }

    fn fill_token(&self, resource: &(String, String), key: &str) {
        let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let namespace = key.split_once('/').map(|(ns, _)| ns).unwrap_or_default().to_string();
        self.controller_write(resource, key, |secret| {
            let token: String = (0..8).map(|_| random_suffix()).collect();
            let data = secret.as_object_mut().map(|m| m.entry("data").or_insert_with(|| json!({})));
            if let Some(Value::Object(data)) = data {
                data.entry("token").or_insert_with(|| json!(encode(&format!("kube-sim.{token}"))));
                data.entry("ca.crt").or_insert_with(|| {
                    json!(encode(
                        "-----BEGIN CERTIFICATE-----\nkube-sim\n-----END CERTIFICATE-----\n"
                    ))
                });
                data.entry("namespace").or_insert_with(|| json!(encode(&namespace)));
            }
        });
    }
}
