//! A stand-in for cass-operator's CassandraTask controller (`control.k8ssandra.io/v1alpha1`),
//! as cass-operator 1.33 runs it (`internal/controllers/control/cassandratask_controller.go`
//! and `jobs.go`), against the Cassandra model instead of the Management API.
//!
//! One controller per simulated cluster watches CassandraTasks. Like controller-runtime with
//! `GenerationChangedPredicate`, it reconciles a task when it is created or its spec changes,
//! then again when a reconcile asks for it (a scheduled time, a running job, a TTL) or failed
//! (exponential backoff). A cluster without tasks costs one idle watch.
//!
//! The commands run on the model node of each pod (`PodRef` = this cluster's context, the
//! pod's namespace and name): see [`pods`] for the per-pod machinery, [`restart`] for the
//! rolling restart, [`replace`] for replacenode. Pods and their Cassandra nodes belong to the
//! cass-operator stand-in: a restart or a replacement here only changes the StatefulSet, the
//! datacenter's status or deletes pods, as upstream's task controller does.

mod api;
mod datacenter;
mod error;
mod management;
mod pods;
mod reconcile;
mod replace;
mod restart;
mod spec;
mod status;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::store::WatchOptions;

use api::Kube;

pub use error::TaskError;

pub const GROUP: &str = "control.k8ssandra.io";
pub const VERSION: &str = "v1alpha1";
pub const PLURAL: &str = "cassandratasks";
/// Which tasks run (`active`) or ran (`completed`); how upstream finds the active ones.
pub const STATUS_LABEL: &str = "control.k8ssandra.io/status";
pub const ACTIVE: &str = "active";
pub const COMPLETED: &str = "completed";
/// Set on the StatefulSets (hence on their pods) a restart task rolls.
pub const RESTARTED_AT_ANNOTATION: &str = "control.k8ssandra.io/restartedAt";

/// Upstream's `JobRunningRequeue` is 10 s and `TaskRunningRequeue` 5 s (variables its own tests
/// set to 1 ms); the simulator polls faster so that tests do not wait.
const JOB_RUNNING_REQUEUE: Duration = Duration::from_millis(200);
const TASK_RUNNING_REQUEUE: Duration = Duration::from_millis(200);
/// A task labelled completed whose status does not say so yet (upstream's 200 ms).
const OUT_OF_SYNC_REQUEUE: Duration = Duration::from_millis(200);
/// controller-runtime's per-item backoff starts at 5 ms and doubles up to 1000 s; the simulator
/// stops doubling at 2 s so that a test sees a retried task recover.
const BACKOFF_BASE: Duration = Duration::from_millis(5);
const BACKOFF_CAP: Duration = Duration::from_secs(2);
/// How often to look for the CassandraTask resource while its CRD is not installed.
const CRD_POLL: Duration = Duration::from_millis(200);

/// The field manager of the controller's writes, as cass-operator's.
const MANAGER: &str = "cass-operator";

/// A minimal, permissive CassandraTask CRD, used unless the real one is given with --crds.
pub fn builtin_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{PLURAL}.{GROUP}")},
        "spec": {
            "group": GROUP,
            "names": {"kind": "CassandraTask", "listKind": "CassandraTaskList",
                      "plural": PLURAL, "singular": "cassandratask"},
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION, "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Datacenter", "type": "string", "jsonPath": ".spec.datacenter.name"},
                    {"name": "Job", "type": "string", "jsonPath": ".spec.jobs[0].command"},
                    {"name": "Scheduled", "type": "date", "jsonPath": ".spec.scheduledTime"},
                    {"name": "Started", "type": "date", "jsonPath": ".status.startTime"},
                    {"name": "Completed", "type": "date", "jsonPath": ".status.completionTime"},
                ],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}
            }]
        }
    })
}

/// The controller task for one cluster.
pub fn spawn(cluster: Arc<Cluster>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut controller = TaskController {
            region: cluster.context.clone(),
            model: Arc::clone(&cluster.cassandra),
            kube: Kube::new(cluster),
            queue: WorkQueue::default(),
            generations: HashMap::new(),
        };
        controller.run().await;
    })
}

/// A task's namespace and name.
type TaskKey = (String, String);

struct TaskController {
    kube: Kube,
    model: crate::cassandra::SharedModel,
    /// This cluster's context: the region of its pods' nodes in the model.
    region: String,
    queue: WorkQueue,
    /// The generation last reconciled for, per task (`GenerationChangedPredicate`).
    generations: HashMap<TaskKey, i64>,
}

impl TaskController {
    async fn run(&mut self) {
        loop {
            let Some(info) = self.kube.info(GROUP, PLURAL) else {
                tokio::time::sleep(CRD_POLL).await;
                continue;
            };
            let mut events = match self.kube.store().watch(&info, None, &WatchOptions::default()) {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(region = %self.region, error = %e, "CassandraTask watch");
                    tokio::time::sleep(CRD_POLL).await;
                    continue;
                }
            };
            loop {
                let next_due = self.next_due();
                let sleep_until =
                    next_due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
                tokio::select! {
                    event = events.next() => match event {
                        Some(event) => self.on_event(event.event_type, &event.object),
                        None => break,
                    },
                    _ = tokio::time::sleep_until(sleep_until) => self.run_due().await,
                }
            }
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.queue.next_due()
    }

    /// `GenerationChangedPredicate`: creations and spec changes are reconciled, status and
    /// label writes (the controller's own among them) are not.
    fn on_event(&mut self, event_type: &str, task: &Value) {
        let (Some(namespace), Some(name)) = (
            task.pointer("/metadata/namespace").and_then(Value::as_str),
            task.pointer("/metadata/name").and_then(Value::as_str),
        ) else {
            return;
        };
        let key = (namespace.to_string(), name.to_string());
        match event_type {
            "DELETED" => {
                self.generations.remove(&key);
                self.queue.remove(&key);
            }
            "ADDED" | "MODIFIED" => {
                let generation =
                    task.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
                if self.generations.insert(key.clone(), generation) != Some(generation) {
                    self.queue.add_now(key);
                }
            }
            _ => {}
        }
    }

    async fn run_due(&mut self) {
        let now = Instant::now();
        for key in self.queue.take_due(now) {
            match self.reconcile(&key).await {
                Ok(reconcile::Next::Done) => self.queue.forget(&key),
                Ok(reconcile::Next::After(delay)) => {
                    self.queue.forget(&key);
                    self.queue.add_after(key, delay);
                }
                Err(e) => {
                    tracing::warn!(region = %self.region, task = %format!("{}/{}", key.0, key.1),
                                   error = %e, "CassandraTask reconcile failed; retrying");
                    self.queue.add_rate_limited(key);
                }
            }
        }
    }
}

/// controller-runtime's work queue, reduced to what one worker needs: an item is due once,
/// at the earliest time asked; failures back off exponentially until an item is forgotten.
#[derive(Default)]
struct WorkQueue {
    due: BTreeMap<TaskKey, Instant>,
    failures: HashMap<TaskKey, u32>,
}

impl WorkQueue {
    fn add_now(&mut self, key: TaskKey) {
        self.add_after(key, Duration::ZERO);
    }

    fn add_after(&mut self, key: TaskKey, delay: Duration) {
        let at = Instant::now() + delay;
        self.due.entry(key).and_modify(|due| *due = (*due).min(at)).or_insert(at);
    }

    fn add_rate_limited(&mut self, key: TaskKey) {
        let failures = self.failures.entry(key.clone()).or_insert(0);
        let delay = backoff(*failures);
        *failures = failures.saturating_add(1);
        self.add_after(key, delay);
    }

    fn forget(&mut self, key: &TaskKey) {
        self.failures.remove(key);
    }

    fn remove(&mut self, key: &TaskKey) {
        self.due.remove(key);
        self.failures.remove(key);
    }

    fn next_due(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    fn take_due(&mut self, now: Instant) -> Vec<TaskKey> {
        let keys: Vec<TaskKey> =
            self.due.iter().filter(|(_, at)| **at <= now).map(|(key, _)| key.clone()).collect();
        for key in &keys {
            self.due.remove(key);
        }
        keys
    }
}

/// The delay before retry number `failures` (0 for the first).
fn backoff(failures: u32) -> Duration {
    let factor = 2u32.checked_pow(failures.min(20)).unwrap_or(u32::MAX);
    BACKOFF_BASE.checked_mul(factor).map_or(BACKOFF_CAP, |delay| delay.min(BACKOFF_CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_five_milliseconds_up_to_the_cap() {
        assert_eq!(backoff(0), Duration::from_millis(5));
        assert_eq!(backoff(1), Duration::from_millis(10));
        assert_eq!(backoff(4), Duration::from_millis(80));
        assert_eq!(backoff(12), BACKOFF_CAP);
        assert_eq!(backoff(u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn a_queued_item_keeps_its_earliest_due_time() {
        let mut queue = WorkQueue::default();
        let key = ("ns".to_string(), "t".to_string());
        queue.add_after(key.clone(), Duration::from_secs(60));
        queue.add_now(key.clone());
        queue.add_after(key.clone(), Duration::from_secs(30));
        assert_eq!(queue.take_due(Instant::now()), vec![key]);
        assert!(queue.next_due().is_none());
    }
}
