//! A stand-in for cass-operator, driving the Cassandra model ([`crate::cassandra`]) as
//! cass-operator drives Cassandra through the Management API.
//!
//! Per cluster, a task watches CassandraDatacenters. A new generation first shows
//! `cassandraOperatorProgress: Updating`; `ready_after` later the stand-in reconciles it as
//! cass-operator's `ReconcileAllRacks` does, in one pass (the model's joins are instant):
//! - a StatefulSet per rack, `<clusterName>-<dc>-<rack>-sts`, owning the rack's pods
//!   `<sts>-<ordinal>`, each with a loopback address unique in the Sim ([`PodAddresses`]);
//! - Cassandra started in the pods in cass-operator's order (`startOneNodePerRack`, then
//!   `startAllNodes`), each a `start_node` of the model; a start the model refuses leaves the
//!   pod not Ready (its container shown restarting with Cassandra's message), the pod in
//!   `status.failedStarts`, a Warning Event, and the datacenter Updating until a retry works;
//! - seed labels on the first ready pods of each rack (`labelSeedPods`), the all-pods Service
//!   and its EndpointSlice, `status.nodeStatuses` from the model;
//! - scale-down by decommissioning the last pod of the rack that must shrink, one at a time
//!   (`DecommissionNodes`, `CheckDecommissioningNodes`);
//! - once every pod is Ready, the superuser and `spec.users` roles (`CreateUsers`), then Ready.
//!
//! `stopped: true` drains (stops) every node and removes the pods; starting again recreates
//! them and Cassandra restarts with its data. The operator's finalizer holds a deleted
//! datacenter until its pods are gone: decommissioned first with the
//! `cassandra.datastax.com/decommission-on-delete` annotation, else removed (the nodes stay in
//! the ring as down, as when a pod goes without a decommission).
//!
//! It also plays the StatefulSet controller for its StatefulSets: pods are made from the
//! rack's template (the datacenter's `podTemplateSpec` containers, init containers and volumes)
//! and rolled, one at a time, when the template changes (a new `podTemplateSpec`, a restart
//! task's `restartedAt`), Cassandra restarting in each with its data; the `medusa-restore` init
//! container runs before Cassandra starts (`restore.rs`). Pods listed in
//! `status.nodeReplacements` (a replacenode task deleted them) start replacing their dead node
//! (`replace_address_first_boot`), then leave the list.
//!
//! Between roll-outs, pod readiness follows the model (a node stopped through the admin API
//! makes its pod not Ready, as the readiness probe fails), on a [`Wiring`] signal or at the
//! next resync; a pod deleted by someone else is a node removed without decommission, and
//! comes back (as its StatefulSet recreates it) to restart the node.

mod desired;
mod events;
mod objects;
mod reconcile;
mod restore;
mod wiring;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::cassandra::PodRef;
use crate::cluster::Cluster;
use crate::store::{PatchType, ResourceInfo, WatchOptions, WriteOptions};

pub(crate) use desired::clean_label_value;
use desired::{Desired, str_at};
pub use wiring::{PodAddresses, Wiring};

pub const GROUP: &str = "cassandra.datastax.com";
pub const PLURAL: &str = "cassandradatacenters";
pub const FINALIZER: &str = "finalizer.cassandra.datastax.com";
const MANAGER: &str = "cass-operator";
/// How long until a reconcile that could not finish tries again (cass-operator's
/// `RequeueSoon` is 2 to 10 seconds; the simulation has no reason to wait as long).
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// How often pod readiness is compared with the model when nothing signals a change.
const RESYNC_EVERY: Duration = Duration::from_secs(1);

/// cass-operator's own install (its `config/crd` kustomization) removes `spec.config` from the
/// generated CRD: the field's schema depends on the server version, so it is left to
/// `spec`'s preserve-unknown-fields. The bases file declares it a byte string, which a real API
/// server would hold against every JSON object there. kube-sim serves the CRD as installed.
pub fn as_installed(crd: &mut Value) {
    if crd.pointer("/metadata/name").and_then(Value::as_str)
        != Some("cassandradatacenters.cassandra.datastax.com")
    {
        return;
    }
    if let Some(versions) = crd.pointer_mut("/spec/versions").and_then(Value::as_array_mut) {
        for version in versions {
            if let Some(spec_properties) = version
                .pointer_mut("/schema/openAPIV3Schema/properties/spec/properties")
                .and_then(Value::as_object_mut)
            {
                spec_properties.remove("config");
            }
        }
    }
}

/// A minimal, permissive CassandraDatacenter CRD, used unless the real one is given with --crds.
pub fn builtin_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "cassandradatacenters.cassandra.datastax.com"},
        "spec": {
            "group": GROUP,
            "names": {"kind": "CassandraDatacenter", "listKind": "CassandraDatacenterList",
                      "plural": PLURAL, "singular": "cassandradatacenter",
                      "shortNames": ["cassdc", "cassdcs"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1beta1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                             "properties": {"podTemplateSpec": pod_template_schema()}},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}
            }]
        }
    })
}

/// `spec.podTemplateSpec` as cass-operator's CRD types its lists: containers, init containers,
/// volumes and each container's env and volume mounts are lists keyed by name (mount path), so
/// that field managers own their entries (server-side apply), as in a real API server.
fn pod_template_schema() -> Value {
    let keyed = |key: &str, items: Value| {
        let mut items = items;
        items["required"] = json!([key]);
        json!({"type": "array", "x-kubernetes-list-type": "map",
               "x-kubernetes-list-map-keys": [key], "items": items})
    };
    let open = |properties: Value| {
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
               "properties": properties})
    };
    let container = open(json!({
        "name": {"type": "string"},
        "env": keyed("name", open(json!({"name": {"type": "string"}}))),
        "volumeMounts": keyed("mountPath", open(json!({"mountPath": {"type": "string"}}))),
    }));
    open(json!({"spec": open(json!({
        "containers": keyed("name", container.clone()),
        "initContainers": keyed("name", container),
        "volumes": keyed("name", open(json!({"name": {"type": "string"}}))),
    }))}))
}

/// How the stand-in decommissions nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long a new generation shows Updating before the stand-in acts on it.
    pub ready_after: Duration,
    /// cass-operator asks for `POST /api/v1/ops/node/decommission?force=true`
    /// (`pkg/reconciliation/decommission_node.go`, `callDecommission`), so Cassandra skips its
    /// replication-factor check. `false` asks without force: Cassandra then refuses to
    /// decommission a node a keyspace's replication still needs, which catches a control plane
    /// that shrinks or removes a datacenter before altering its keyspaces.
    pub force_decommission: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ready_after: Duration::from_secs(1),
            force_decommission: true,
        }
    }
}

/// The controller task for one cluster.
pub fn spawn(
    cluster: Arc<Cluster>,
    settings: Settings,
    wiring: Arc<Wiring>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut operator = Operator {
            cluster,
            settings,
            wiring,
            datacenters: HashMap::new(),
            events: HashMap::new(),
        };
        operator.run().await;
    })
}

/// The datacenter's (namespace, name).
type DcKey = (String, String);

struct Operator {
    cluster: Arc<Cluster>,
    settings: Settings,
    wiring: Arc<Wiring>,
    datacenters: HashMap<DcKey, DcState>,
    /// Events already written, by (datacenter, type, reason, action): repeats count in their
    /// `series`, as client-go's event recorder does.
    events: HashMap<(DcKey, &'static str, String, &'static str), events::Series>,
}

/// What the stand-in knows of one datacenter between reconciles.
#[derive(Debug, Default)]
struct DcState {
    /// The generation being rolled out and when its next reconcile runs.
    due: Option<(i64, Instant)>,
    /// The spec last reconciled (readiness changes between reconciles need its names).
    desired: Option<Desired>,
    /// The pods that exist, by name.
    pods: BTreeMap<String, PodState>,
    /// The StatefulSets last written, by name.
    statefulsets: BTreeMap<String, StatefulSetState>,
    /// Pods started replacing their node (`replace_address_first_boot`) that
    /// `status.nodeReplacements` still lists.
    replaced: BTreeSet<String>,
    /// The endpoints last written to the all-pods EndpointSlice.
    endpoints: Option<Vec<Value>>,
    /// Pods whose last start failed (`status.failedStarts`), started last next time.
    failed_starts: BTreeSet<String>,
}

/// A rack's StatefulSet as last written.
#[derive(Debug, Clone)]
struct StatefulSetState {
    uid: String,
    replicas: usize,
    /// The pod template spec made from the datacenter.
    pod_spec: Value,
    /// The hash of the datacenter's config on the pod template.
    config_hash: String,
}

/// cass-operator's `cassandra.datastax.com/node-state` label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeLabel {
    ReadyToStart,
    Started,
    StartedNotReady,
    Decommissioning,
}

impl NodeLabel {
    fn as_str(self) -> &'static str {
        match self {
            NodeLabel::ReadyToStart => "Ready-to-Start",
            NodeLabel::Started => "Started",
            NodeLabel::StartedNotReady => "Started-not-Ready",
            NodeLabel::Decommissioning => "Decommissioning",
        }
    }
}

/// One pod of a datacenter as last written.
#[derive(Debug, Clone)]
struct PodState {
    rack: String,
    ordinal: usize,
    ip: String,
    uid: String,
    node_label: NodeLabel,
    seed: bool,
    /// What the readiness probe says: Cassandra runs in it.
    ready: bool,
    /// Why Cassandra last failed to start, while it does not run.
    failure: Option<String>,
    /// Why the `medusa-restore` init container failed, while it keeps the pod from starting.
    init_failure: Option<String>,
    restarts: u32,
    /// The StatefulSet template revision the pod was made from (`controller-revision-hash`).
    revision: String,
}

fn write_options() -> WriteOptions {
    WriteOptions {
        field_manager: Some(MANAGER.into()),
        ..WriteOptions::default()
    }
}

fn status_options() -> WriteOptions {
    WriteOptions {
        subresource_status: true,
        ..write_options()
    }
}

impl Operator {
    fn info(&self, group: &str, plural: &str) -> Option<ResourceInfo> {
        self.cluster
            .catalog()
            .all()
            .iter()
            .find(|r| r.info.group == group && r.info.plural == plural && r.storage)
            .map(|r| r.info.clone())
    }

    /// The pod's node in the model: the region is the cluster's context.
    fn pod_ref(&self, namespace: &str, pod: &str) -> PodRef {
        PodRef::new(self.cluster.context.as_str(), namespace, pod)
    }

    async fn run(&mut self) {
        let mut model_changed = self.wiring.subscribe();
        loop {
            let (Some(info), Some(pods), Some(statefulsets)) = (
                self.info(GROUP, PLURAL),
                self.info("", "pods"),
                self.info("apps", "statefulsets"),
            ) else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let watched =
                self.cluster.store.watch(&info, None, &WatchOptions::default()).and_then(|dcs| {
                    let ours = WatchOptions {
                        label_selector: Some("app.kubernetes.io/managed-by=cass-operator".into()),
                        ..WatchOptions::default()
                    };
                    Ok((
                        dcs,
                        self.cluster.store.watch(&pods, None, &ours)?,
                        self.cluster.store.watch(&statefulsets, None, &ours)?,
                    ))
                });
            let (mut dc_events, mut pod_events, mut statefulset_events) = match watched {
                Ok(streams) => streams,
                Err(e) => {
                    tracing::warn!(cluster = self.cluster.index, error = %e, "cass-operator watch");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let mut resync = tokio::time::interval(RESYNC_EVERY);
            loop {
                let next_due = self.datacenters.values().filter_map(|s| s.due.map(|d| d.1)).min();
                let sleep_until =
                    next_due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
                tokio::select! {
                    event = dc_events.next() => match event {
                        Some(event) if event.event_type != "ERROR" && event.event_type != "BOOKMARK" => {
                            self.on_event(&info, event.event_type, &event.object);
                        }
                        Some(_) => {}
                        None => break,
                    },
                    event = pod_events.next() => match event {
                        Some(event) if event.event_type == "DELETED" => self.on_pod_deleted(&event.object),
                        Some(_) => {}
                        None => break,
                    },
                    event = statefulset_events.next() => match event {
                        Some(event) if event.event_type == "MODIFIED" => self.on_statefulset_changed(&event.object),
                        Some(_) => {}
                        None => break,
                    },
                    _ = tokio::time::sleep_until(sleep_until) => self.run_due(&info),
                    _ = resync.tick() => self.follow_model(),
                    changed = model_changed.changed() => {
                        if changed.is_ok() {
                            self.follow_model();
                        }
                    }
                }
            }
        }
    }

    fn on_event(&mut self, info: &ResourceInfo, event_type: &str, dc: &Value) {
        let Some(desired) = Desired::from(dc) else {
            return;
        };
        let key = desired.key();
        if event_type == "DELETED" {
            // Gone without the finalizer's work (someone removed it): the pods go as they are.
            let mut state = self.datacenters.remove(&key).unwrap_or_default();
            self.remove_everything(&desired, &mut state);
            return;
        }
        if dc.pointer("/metadata/deletionTimestamp").is_some() {
            self.finalize_now(info, dc, &desired);
            return;
        }
        if !self.ensure_finalizer(info, dc) {
            return;
        }
        let observed = dc.pointer("/status/observedGeneration").and_then(Value::as_i64);
        let progress = str_at(dc, "/status/cassandraOperatorProgress");
        let state = self.datacenters.entry(key).or_default();
        if observed == Some(desired.generation) && progress == Some("Ready") && state.due.is_none()
        {
            return;
        }
        if state.due.is_some_and(|(generation, _)| generation == desired.generation) {
            return;
        }
        state.due = Some((
            desired.generation,
            Instant::now() + self.settings.ready_after,
        ));
        self.write_updating(info, dc, &desired);
    }

    /// Reconciles every datacenter whose time has come.
    fn run_due(&mut self, info: &ResourceInfo) {
        let now = Instant::now();
        let due: Vec<DcKey> = self
            .datacenters
            .iter()
            .filter(|(_, state)| state.due.is_some_and(|(_, at)| at <= now))
            .map(|(key, _)| key.clone())
            .collect();
        for key in due {
            let Ok(dc) = self.cluster.store.get(info, Some(&key.0), &key.1) else {
                // gone: its DELETED event does the rest
                if let Some(state) = self.datacenters.get_mut(&key) {
                    state.due = None;
                }
                continue;
            };
            let Some(desired) = Desired::from(&dc) else {
                continue;
            };
            let mut state = self.datacenters.remove(&key).unwrap_or_default();
            let retry = if dc.pointer("/metadata/deletionTimestamp").is_some() {
                self.finalize(info, &dc, &desired, &mut state)
            } else {
                self.reconcile(info, &dc, &desired, &mut state)
            };
            match retry {
                Reconciled::Done => state.due = None,
                Reconciled::Retry => {
                    state.due = Some((desired.generation, Instant::now() + RETRY_AFTER));
                }
                Reconciled::Forget => continue,
            }
            self.datacenters.insert(key, state);
        }
    }

    /// A deletion is handled at once (and retried while it waits on something).
    fn finalize_now(&mut self, info: &ResourceInfo, dc: &Value, desired: &Desired) {
        let key = desired.key();
        let mut state = self.datacenters.remove(&key).unwrap_or_default();
        match self.finalize(info, dc, desired, &mut state) {
            Reconciled::Forget => {}
            Reconciled::Done => {
                state.due = None;
                self.datacenters.insert(key, state);
            }
            Reconciled::Retry => {
                state.due = Some((desired.generation, Instant::now() + RETRY_AFTER));
                self.datacenters.insert(key, state);
            }
        }
    }
}

/// What a reconcile leaves to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reconciled {
    /// Settled until the next change.
    Done,
    /// Waiting on Cassandra (a failed start, a refused decommission): try again soon.
    Retry,
    /// The datacenter is gone: forget it.
    Forget,
}

fn condition(kind: &str, status: bool, previous: &Value) -> Value {
    let status_text = if status { "True" } else { "False" };
    let earlier = previous
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|all| all.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(kind)))
        .filter(|c| c.get("status").and_then(Value::as_str) == Some(status_text))
        .and_then(|c| c.get("lastTransitionTime").cloned());
    json!({
        "type": kind,
        "status": status_text,
        "reason": "",
        "message": "",
        "lastTransitionTime": earlier.unwrap_or_else(|| json!(crate::now_rfc3339())),
    })
}

/// The datacenter's conditions with `owned` set one by one, as cass-operator's `SetCondition`
/// does: conditions of other types (ReplacingNodes, which the CassandraTask controller sets)
/// stay, since the status is written as a merge patch whose lists replace the stored ones.
fn merge_conditions(previous: &Value, owned: Vec<Value>) -> Value {
    let mut conditions: Vec<Value> = previous
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for condition in owned {
        let kind = condition.get("type").cloned();
        match conditions.iter_mut().find(|c| c.get("type") == kind.as_ref()) {
            Some(existing) => *existing = condition,
            None => conditions.push(condition),
        }
    }
    Value::Array(conditions)
}

impl Operator {
    /// Adds the operator's finalizer; false if the write failed (a later event retries).
    fn ensure_finalizer(&self, info: &ResourceInfo, dc: &Value) -> bool {
        let mut finalizers: Vec<Value> = dc
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if finalizers.iter().any(|f| f == FINALIZER) {
            return true;
        }
        finalizers.push(json!(FINALIZER));
        let patch = json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": dc.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null),
        }});
        self.patch_dc(info, dc, patch, write_options()).is_some()
    }

    fn remove_finalizer(&self, info: &ResourceInfo, dc: &Value) {
        let finalizers: Vec<Value> = dc
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|all| all.iter().filter(|f| *f != FINALIZER).cloned().collect())
            .unwrap_or_default();
        if finalizers.len()
            == dc.pointer("/metadata/finalizers").and_then(Value::as_array).map_or(0, Vec::len)
        {
            return;
        }
        self.patch_dc(
            info,
            dc,
            json!({"metadata": {"finalizers": finalizers}}),
            write_options(),
        );
    }

    fn patch_dc(
        &self,
        info: &ResourceInfo,
        dc: &Value,
        patch: Value,
        options: WriteOptions,
    ) -> Option<Value> {
        let namespace = str_at(dc, "/metadata/namespace");
        let name = str_at(dc, "/metadata/name")?;
        match self.cluster.store.patch(
            info,
            namespace,
            name,
            PatchType::Merge,
            patch.to_string().as_bytes(),
            &options,
        ) {
            Ok(written) => Some(written.object),
            Err(e) => {
                tracing::debug!(dc = name, error = %e, "cass-operator write");
                None
            }
        }
    }

    fn write_updating(&self, info: &ResourceInfo, dc: &Value, desired: &Desired) {
        let was_ready = str_at(dc, "/status/cassandraOperatorProgress") == Some("Ready");
        let initialized = dc
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Initialized" && c["status"] == "True"));
        let running =
            dc.pointer("/status/nodeStatuses").and_then(Value::as_object).map_or(0, |m| m.len());
        let was_stopped = dc
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Stopped" && c["status"] == "True"));
        let mut conditions = vec![
            condition("Valid", true, dc),
            condition("Initialized", initialized, dc),
            condition(
                "Ready",
                initialized && was_ready && !was_stopped && !desired.stopped,
                dc,
            ),
            condition("Updating", initialized, dc),
        ];
        if initialized && !desired.stopped {
            conditions.push(condition(
                "ScalingUp",
                desired.size > running && !was_stopped,
                dc,
            ));
            conditions.push(condition("ScalingDown", desired.size < running, dc));
            conditions.push(condition("Resuming", was_stopped, dc));
        }
        // As cass-operator: a stop sets Stopped (and Ready False) when it begins, while the
        // nodes are drained; a start sets Stopped False and Resuming.
        if desired.stopped || was_stopped {
            conditions.push(condition("Stopped", desired.stopped, dc));
        }
        let status = json!({"status": {
            "cassandraOperatorProgress": "Updating",
            "conditions": merge_conditions(dc, conditions),
            "datacenterName": desired.dc_name,
        }});
        self.patch_dc(info, dc, status, status_options());
    }
}
