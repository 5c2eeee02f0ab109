//! A stand-in for cass-operator: what a control plane can observe of a CassandraDatacenter.
//!
//! Per cluster, a task watches CassandraDatacenters. A new generation first shows
//! `cassandraOperatorProgress: Updating`; `ready_after` later the datacenter gets one Pod per
//! node (cass-operator's labels, seed-node on the seeds, a pod IP from `10.<cluster>.0.0/16`),
//! the `<cluster>-<dc>-all-pods-service` headless Service and its EndpointSlice, and a Ready
//! status for that generation. `stopped: true` sets Stopped True and Ready False at once
//! (progress Updating), then removes the pods (progress Ready, Stopped, not Ready), as
//! cass-operator does; starting again sets Stopped False and Resuming until Ready. The operator's
//! finalizer keeps a deleted datacenter until its pods, Service and EndpointSlice are gone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::store::{DeleteOptions, PatchType, ResourceInfo, WatchOptions, WriteOptions};

pub const GROUP: &str = "cassandra.datastax.com";
pub const PLURAL: &str = "cassandradatacenters";
pub const FINALIZER: &str = "finalizer.cassandra.datastax.com";
const MANAGER: &str = "cass-operator";
const NATIVE_PORT: i64 = 9042;

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
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}
            }]
        }
    })
}

/// The controller task for one cluster.
pub fn spawn(cluster: Arc<Cluster>, ready_after: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut operator = Operator {
            cluster,
            ready_after,
            pending: HashMap::new(),
            addresses: HashMap::new(),
            next_address: 0,
            rolled_out: HashMap::new(),
        };
        operator.run().await;
    })
}

struct Operator {
    cluster: Arc<Cluster>,
    ready_after: Duration,
    /// datacenter key → (generation being rolled out, when it is done)
    pending: HashMap<(String, String), (i64, Instant)>,
    /// pod key → its IP, stable for the pod's name
    addresses: HashMap<String, String>,
    next_address: u32,
    /// datacenter key → the pods its last roll-out kept: while a roll-out keeps the same ones,
    /// there is nothing to remove and the datacenter's pods need not be listed (a list parses
    /// every pod of the namespace; cass-operator reads its informer cache).
    rolled_out: HashMap<(String, String), Vec<String>>,
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// cass-operator's CleanupForKubernetes: lower case, spaces and underscores become dashes.
fn clean_name(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// What the datacenter asks for.
struct Desired {
    namespace: String,
    name: String,
    uid: String,
    generation: i64,
    cluster_name: String,
    dc_name: String,
    racks: Vec<String>,
    size: usize,
    stopped: bool,
    image: String,
}

impl Desired {
    fn from(dc: &Value) -> Option<Desired> {
        let name = str_at(dc, "/metadata/name")?.to_string();
        let racks: Vec<String> = dc
            .pointer("/spec/racks")
            .and_then(Value::as_array)
            .map(|racks| {
                racks
                    .iter()
                    .filter_map(|r| r.get("name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .filter(|racks: &Vec<String>| !racks.is_empty())
            .unwrap_or_else(|| vec!["default".to_string()]);
        let version = str_at(dc, "/spec/serverVersion").unwrap_or("4.1.5");
        Some(Desired {
            namespace: str_at(dc, "/metadata/namespace").unwrap_or("default").to_string(),
            uid: str_at(dc, "/metadata/uid").unwrap_or("").to_string(),
            generation: dc.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1),
            cluster_name: clean_name(str_at(dc, "/spec/clusterName").unwrap_or(&name)),
            dc_name: str_at(dc, "/spec/datacenterName").unwrap_or(&name).to_string(),
            racks,
            size: dc.pointer("/spec/size").and_then(Value::as_u64).unwrap_or(1) as usize,
            stopped: dc.pointer("/spec/stopped").and_then(Value::as_bool).unwrap_or(false),
            image: str_at(dc, "/spec/serverImage").map(str::to_string).unwrap_or_else(|| {
                format!("cr.k8ssandra.io/k8ssandra/cass-management-api:{version}")
            }),
            name,
        })
    }

    /// The datacenter's (namespace, name): how the operator's own maps know it.
    fn key(&self) -> (String, String) {
        (self.namespace.clone(), self.name.clone())
    }

    fn service_name(&self) -> String {
        format!(
            "{}-{}-all-pods-service",
            self.cluster_name,
            clean_name(&self.dc_name)
        )
    }

    /// (pod name, rack, seed) for every node: racks filled evenly, the first racks getting
    /// the remainder; up to three seeds, spread over the racks.
    fn pods(&self) -> Vec<(String, String, bool)> {
        let rack_count = self.racks.len();
        let mut pods = Vec::with_capacity(self.size);
        for (rack_index, rack) in self.racks.iter().enumerate() {
            let in_rack = self.size / rack_count + usize::from(rack_index < self.size % rack_count);
            for ordinal in 0..in_rack {
                let name = format!(
                    "{}-{}-{}-sts-{ordinal}",
                    self.cluster_name,
                    clean_name(&self.dc_name),
                    clean_name(rack)
                );
                pods.push((name, rack.clone(), ordinal, rack_index));
            }
        }
        // seeds: ordinal 0 of each rack first, then ordinal 1, … until three
        let mut order: Vec<usize> = (0..pods.len()).collect();
        order.sort_by_key(|&i| (pods[i].2, pods[i].3));
        let seeds: Vec<usize> = order.into_iter().take(3).collect();
        pods.into_iter()
            .enumerate()
            .map(|(i, (name, rack, _, _))| (name, rack, seeds.contains(&i)))
            .collect()
    }

    fn labels(&self) -> Value {
        json!({
            "app.kubernetes.io/managed-by": "cass-operator",
            "app.kubernetes.io/name": "cassandra",
            "app.kubernetes.io/instance": format!("cassandra-{}", self.cluster_name),
            "cassandra.datastax.com/cluster": self.cluster_name,
            "cassandra.datastax.com/datacenter": self.dc_name,
        })
    }

    fn owner_reference(&self) -> Value {
        json!([{
            "apiVersion": format!("{GROUP}/v1beta1"),
            "kind": "CassandraDatacenter",
            "name": self.name,
            "uid": self.uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }])
    }
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

    async fn run(&mut self) {
        loop {
            let Some(info) = self.info(GROUP, PLURAL) else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let mut events = match self.cluster.store.watch(&info, None, &WatchOptions::default()) {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(cluster = self.cluster.index, error = %e, "cass-operator watch");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            loop {
                let next_due = self.pending.values().map(|(_, due)| *due).min();
                let sleep_until =
                    next_due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
                tokio::select! {
                    event = events.next() => match event {
                        Some(event) if event.event_type != "ERROR" && event.event_type != "BOOKMARK" => {
                            self.on_event(&info, event.event_type, &event.object);
                        }
                        Some(_) => {}
                        None => break,
                    },
                    _ = tokio::time::sleep_until(sleep_until) => self.complete_due(&info),
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
            self.pending.remove(&key);
            self.rolled_out.remove(&key);
            self.remove_children(&desired, &[]);
            return;
        }
        if dc.pointer("/metadata/deletionTimestamp").is_some() {
            self.pending.remove(&key);
            self.rolled_out.remove(&key);
            self.remove_children(&desired, &[]);
            self.remove_finalizer(info, dc);
            return;
        }
        if !self.ensure_finalizer(info, dc) {
            return;
        }
        let observed = dc.pointer("/status/observedGeneration").and_then(Value::as_i64);
        let progress = str_at(dc, "/status/cassandraOperatorProgress");
        if observed == Some(desired.generation) && progress == Some("Ready") {
            return;
        }
        if self.pending.get(&key).is_some_and(|(generation, _)| *generation == desired.generation) {
            return;
        }
        self.pending.insert(key, (desired.generation, Instant::now() + self.ready_after));
        self.write_updating(info, dc, &desired);
    }

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
            "conditions": conditions,
            "datacenterName": desired.dc_name,
        }});
        self.patch_dc(info, dc, status, status_options());
    }

    fn complete_due(&mut self, info: &ResourceInfo) {
        let now = Instant::now();
        let due: Vec<((String, String), i64)> = self
            .pending
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(key, (generation, _))| (key.clone(), *generation))
            .collect();
        for (key, generation) in due {
            self.pending.remove(&key);
            let Ok(dc) = self.cluster.store.get(info, Some(&key.0), &key.1) else {
                continue;
            };
            let Some(desired) = Desired::from(&dc) else {
                continue;
            };
            if desired.generation != generation
                || dc.pointer("/metadata/deletionTimestamp").is_some()
            {
                continue;
            }
            self.roll_out(info, &dc, &desired);
        }
    }

    fn roll_out(&mut self, info: &ResourceInfo, dc: &Value, desired: &Desired) {
        let pods = if desired.stopped {
            Vec::new()
        } else {
            desired.pods()
        };
        let keep: Vec<String> = pods.iter().map(|(name, _, _)| name.clone()).collect();
        let key = desired.key();
        if self.rolled_out.get(&key) != Some(&keep) {
            self.remove_children(desired, &keep);
            self.rolled_out.insert(key, keep);
        }
        let previous_nodes = dc
            .pointer("/status/nodeStatuses")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut node_statuses = serde_json::Map::new();
        let mut endpoints = Vec::new();
        for (index, (pod_name, rack, seed)) in pods.iter().enumerate() {
            let ip = self.address_for(&desired.namespace, pod_name);
            let node_name = format!("sim-node-{}", index % 3);
            let uid = self.ensure_pod(desired, pod_name, rack, *seed, &ip, &node_name);
            let host_id = previous_nodes
                .get(pod_name)
                .and_then(|n| n.get("hostID").cloned())
                .unwrap_or_else(|| json!(uuid::Uuid::new_v4().to_string()));
            node_statuses.insert(
                pod_name.clone(),
                json!({"hostID": host_id, "ip": ip, "rack": rack}),
            );
            endpoints.push(json!({
                "addresses": [ip],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": node_name,
                "targetRef": {"kind": "Pod", "name": pod_name, "namespace": desired.namespace, "uid": uid},
            }));
        }
        self.ensure_service(desired, endpoints);
        let first_time = dc.pointer("/status/superUserUpserted").is_none();
        let now = json!(crate::now_rfc3339());
        let mut status = json!({
            "cassandraOperatorProgress": "Ready",
            "observedGeneration": desired.generation,
            "datacenterName": desired.dc_name,
            "nodeStatuses": if desired.stopped { Value::Object(previous_nodes) } else { Value::Object(node_statuses) },
            "lastServerNodeStarted": dc.pointer("/status/lastServerNodeStarted").cloned().filter(|_| desired.stopped).unwrap_or(now.clone()),
            "conditions": [
                condition("Valid", true, dc),
                condition("Initialized", true, dc),
                condition("Ready", !desired.stopped, dc),
                condition("Updating", false, dc),
                condition("ScalingUp", false, dc),
                condition("ScalingDown", false, dc),
                condition("Resuming", false, dc),
                condition("Stopped", desired.stopped, dc),
            ],
        });
        if first_time {
            status["superUserUpserted"] = now.clone();
            status["usersUpserted"] = now;
        }
        self.patch_dc(info, dc, json!({"status": status}), status_options());
    }

    fn address_for(&mut self, namespace: &str, pod: &str) -> String {
        let key = format!("{namespace}/{pod}");
        if let Some(ip) = self.addresses.get(&key) {
            return ip.clone();
        }
        let n = self.next_address;
        self.next_address += 1;
        let ip = format!(
            "10.{}.{}.{}",
            self.cluster.index % 256,
            (n / 250) % 256,
            n % 250 + 1
        );
        self.addresses.insert(key, ip.clone());
        ip
    }

    /// Creates the pod if missing (and gives it a Running, Ready status); returns its uid.
    fn ensure_pod(
        &self,
        desired: &Desired,
        name: &str,
        rack: &str,
        seed: bool,
        ip: &str,
        node: &str,
    ) -> String {
        let Some(pods) = self.info("", "pods") else {
            return String::new();
        };
        let namespace = Some(desired.namespace.as_str());
        if let Ok(existing) = self.cluster.store.get(&pods, namespace, name) {
            return str_at(&existing, "/metadata/uid").unwrap_or("").to_string();
        }
        let mut labels = desired.labels();
        labels["cassandra.datastax.com/rack"] = json!(rack);
        labels["cassandra.datastax.com/node-state"] = json!("Started");
        labels["statefulset.kubernetes.io/pod-name"] = json!(name);
        if seed {
            labels["cassandra.datastax.com/seed-node"] = json!("true");
        }
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": desired.namespace, "labels": labels,
                         "ownerReferences": desired.owner_reference()},
            "spec": {
                "nodeName": node,
                "hostname": name,
                "containers": [{"name": "cassandra", "image": desired.image,
                                "ports": [{"name": "native", "containerPort": NATIVE_PORT, "protocol": "TCP"}]}],
            },
        });
        let created = match self.cluster.store.create(&pods, namespace, pod, &write_options()) {
            Ok(written) => written.object,
            Err(e) => {
                tracing::debug!(pod = name, error = %e, "cass-operator pod");
                return String::new();
            }
        };
        let now = crate::now_rfc3339();
        let status = json!({"status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "hostIP": "172.18.0.2",
            "startTime": now,
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            ],
            "containerStatuses": [{"name": "cassandra", "ready": true, "started": true, "restartCount": 0,
                                   "image": desired.image, "imageID": "", "state": {"running": {"startedAt": now}}}],
        }});
        let _ = self.cluster.store.patch(
            &pods,
            namespace,
            name,
            PatchType::Merge,
            status.to_string().as_bytes(),
            &status_options(),
        );
        str_at(&created, "/metadata/uid").unwrap_or("").to_string()
    }

    fn ensure_service(&self, desired: &Desired, endpoints: Vec<Value>) {
        let (Some(services), Some(slices)) = (
            self.info("", "services"),
            self.info("discovery.k8s.io", "endpointslices"),
        ) else {
            return;
        };
        let namespace = Some(desired.namespace.as_str());
        let service_name = desired.service_name();
        let mut selector = serde_json::Map::new();
        selector.insert(
            "cassandra.datastax.com/cluster".into(),
            json!(desired.cluster_name),
        );
        selector.insert(
            "cassandra.datastax.com/datacenter".into(),
            json!(desired.dc_name),
        );
        if self.cluster.store.get(&services, namespace, &service_name).is_err() {
            let service = json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": service_name, "namespace": desired.namespace, "labels": desired.labels(),
                             "ownerReferences": desired.owner_reference()},
                "spec": {"clusterIP": "None", "type": "ClusterIP", "publishNotReadyAddresses": true, "selector": selector,
                         "ports": [{"name": "native", "port": NATIVE_PORT, "protocol": "TCP", "targetPort": NATIVE_PORT}]},
            });
            if let Err(e) =
                self.cluster.store.create(&services, namespace, service, &write_options())
            {
                tracing::debug!(service = service_name, error = %e, "cass-operator service");
            }
        }
        let mut slice_labels = desired.labels();
        slice_labels["kubernetes.io/service-name"] = json!(service_name);
        slice_labels["endpointslice.kubernetes.io/managed-by"] =
            json!("endpointslice-controller.k8s.io");
        let slice_name = format!("{service_name}-sim");
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": slice_name, "namespace": desired.namespace, "labels": slice_labels,
                         "ownerReferences": desired.owner_reference()},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "native", "port": NATIVE_PORT, "protocol": "TCP"}],
        });
        let result = match self.cluster.store.get(&slices, namespace, &slice_name) {
            Ok(existing) => {
                let mut replacement = slice;
                replacement["metadata"]["resourceVersion"] =
                    existing.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null);
                self.cluster.store.update(
                    &slices,
                    namespace,
                    &slice_name,
                    replacement,
                    &write_options(),
                )
            }
            Err(_) => self.cluster.store.create(&slices, namespace, slice, &write_options()),
        };
        if let Err(e) = result {
            tracing::debug!(slice = slice_name, error = %e, "cass-operator endpointslice");
        }
    }

    /// Deletes the datacenter's pods not in `keep`; with an empty `keep` also its Service and
    /// EndpointSlice when the datacenter is going away.
    fn remove_children(&self, desired: &Desired, keep: &[String]) {
        let Some(pods) = self.info("", "pods") else {
            return;
        };
        let namespace = Some(desired.namespace.as_str());
        let selector = format!(
            "cassandra.datastax.com/cluster={},cassandra.datastax.com/datacenter={}",
            desired.cluster_name, desired.dc_name
        );
        let options = crate::store::ListOptions {
            label_selector: Some(selector),
            ..Default::default()
        };
        let existing = self
            .cluster
            .store
            .list(&pods, namespace, &options)
            .ok()
            .and_then(|list| list.get("items").and_then(Value::as_array).cloned())
            .unwrap_or_default();
        for pod in existing {
            let Some(name) = str_at(&pod, "/metadata/name") else {
                continue;
            };
            if keep.iter().any(|k| k == name) {
                continue;
            }
            let _ = self.cluster.store.delete(&pods, namespace, name, &DeleteOptions::default());
        }
        if keep.is_empty() && self.pending_or_deleting(desired) {
            let service_name = desired.service_name();
            if let Some(services) = self.info("", "services") {
                let _ = self.cluster.store.delete(
                    &services,
                    namespace,
                    &service_name,
                    &DeleteOptions::default(),
                );
            }
            if let Some(slices) = self.info("discovery.k8s.io", "endpointslices") {
                let _ = self.cluster.store.delete(
                    &slices,
                    namespace,
                    &format!("{service_name}-sim"),
                    &DeleteOptions::default(),
                );
            }
        }
    }

    /// True when the datacenter is being deleted (or already gone), not merely stopped.
    fn pending_or_deleting(&self, desired: &Desired) -> bool {
        let Some(info) = self.info(GROUP, PLURAL) else {
            return true;
        };
        match self.cluster.store.get(&info, Some(&desired.namespace), &desired.name) {
            Ok(dc) => dc.pointer("/metadata/deletionTimestamp").is_some(),
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_spread_over_racks_with_three_seeds() {
        let dc = json!({"metadata": {"name": "dc1", "namespace": "ns", "uid": "u", "generation": 1},
                        "spec": {"clusterName": "My_Cluster", "size": 5,
                                 "racks": [{"name": "r1"}, {"name": "r2"}]}});
        let desired = Desired::from(&dc).unwrap();
        let pods = desired.pods();
        let names: Vec<&str> = pods.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "my-cluster-dc1-r1-sts-0",
                "my-cluster-dc1-r1-sts-1",
                "my-cluster-dc1-r1-sts-2",
                "my-cluster-dc1-r2-sts-0",
                "my-cluster-dc1-r2-sts-1"
            ]
        );
        let seeds: Vec<&str> = pods.iter().filter(|p| p.2).map(|p| p.0.as_str()).collect();
        assert_eq!(
            seeds,
            [
                "my-cluster-dc1-r1-sts-0",
                "my-cluster-dc1-r1-sts-1",
                "my-cluster-dc1-r2-sts-0"
            ]
        );
        assert_eq!(desired.service_name(), "my-cluster-dc1-all-pods-service");
    }
}
