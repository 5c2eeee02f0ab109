//! The `replacenode` command (upstream's `replace`, `replaceValidator`, `replacePreProcess`,
//! `replacePod`).
//!
//! Upstream names the pods in the datacenter's `status.nodeReplacements` with condition
//! ReplacingNodes True, drains the node, deletes the pod's PersistentVolumeClaims and the pod,
//! and the pod is done; its StatefulSet recreates it and cass-operator starts Cassandra with
//! `replace_address_first_boot`, then takes the pod off `nodeReplacements` (ReplacingNodes
//! False when none is left).
//!
//! Here the deleted pod's node is removed from the model as a deleted pod's node is
//! (`remove_node`: down, still in the ring). After the pod restart time the pod comes back
//! (created again from what was deleted, unless something else created it) and, the model
//! having no replace_address, the replacement is approximated: the dead node is removed from
//! the ring (`removenode`, its ranges streamed to the remaining replicas) and a new node joins
//! for the pod with the old one's datacenter, rack, address and token count, bootstrapping
//! its ranges. The data ends where a replacement puts it; the tokens and the host id are new.

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::cassandra::{NodeSpec, PodRef};

use super::datacenter::{DC_GROUP, DC_PLURAL, Datacenter, NODE_STATE_LABEL};
use super::error::TaskError;
use super::pods::DcPod;
use super::reconcile::Validation;
use super::spec::JobArguments;
use super::{PodEvent, TaskController};

const REPLACING_NODES: &str = "ReplacingNodes";

/// A replaced pod waiting to come back.
pub(super) struct Replacement {
    namespace: String,
    name: String,
    pod: PodRef,
    /// The pod as it was deleted, to create it again.
    deleted_pod: Value,
    old_node: Option<ReplacedNode>,
    dc_namespace: String,
    dc_name: String,
}

/// What the new node takes over from the one it replaces.
struct ReplacedNode {
    cluster: String,
    host_id: Uuid,
    ip: String,
    datacenter: String,
    rack: String,
    num_tokens: usize,
    server_version: String,
}

/// `dc.SetCondition` of a condition built by `NewDatacenterCondition`, when its status changes.
fn set_datacenter_condition(conditions: &mut Vec<Value>, kind: &str, value: bool) {
    let status = if value { "True" } else { "False" };
    let condition = json!({"type": kind, "status": status, "reason": "", "message": "",
                           "lastTransitionTime": crate::now_rfc3339()});
    match conditions.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some(kind)) {
        Some(existing) if existing.get("status").and_then(Value::as_str) == Some(status) => {}
        Some(existing) => *existing = condition,
        None => conditions.push(condition),
    }
}

fn string_list(value: &Value, pointer: &str) -> Vec<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

impl TaskController {
    /// `replaceValidator`.
    pub(super) fn validate_replace(&self, args: &JobArguments, dc: &Datacenter) -> Validation {
        if args.pod_name.is_empty() && args.rack_name.is_empty() {
            return Validation::Invalid(
                "replace requires either rack_name or pod_name to be set as a filtering rule"
                    .into(),
            );
        }
        if !args.rack_name.is_empty() && !dc.racks.contains(&args.rack_name) {
            return Validation::Invalid(format!("{} is not a valid rack name", args.rack_name));
        }
        if !args.pod_name.is_empty() {
            match self.datacenter_pods(dc) {
                Err(error) => return Validation::Retry(error),
                Ok(pods) if !pods.iter().any(|pod| pod.name == args.pod_name) => {
                    return Validation::Invalid("valid pod_name to replace is required".into());
                }
                Ok(_) => {}
            }
        }
        Validation::Valid
    }

    /// `replacePreProcess`: the datacenter lists the pods being replaced.
    pub(super) fn mark_replacements(
        &self,
        dc: &Datacenter,
        args: &JobArguments,
    ) -> Result<(), TaskError> {
        let replaced: Vec<String> = if !args.pod_name.is_empty() {
            vec![args.pod_name.clone()]
        } else if !args.rack_name.is_empty() {
            self.datacenter_pods(dc)?
                .into_iter()
                .filter(|pod| pod.rack == args.rack_name)
                .map(|pod| pod.name)
                .collect()
        } else {
            Vec::new()
        };
        self.update_replacements(&dc.namespace, &dc.name, |replacements| {
            for pod in replaced {
                if !replacements.contains(&pod) {
                    replacements.push(pod);
                }
            }
        })
    }

    /// Rewrites the datacenter's `status.nodeReplacements` and its ReplacingNodes condition
    /// (True while a pod is listed, as cass-operator keeps it).
    fn update_replacements(
        &self,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Vec<String>),
    ) -> Result<(), TaskError> {
        let datacenters = self.kube.resource(DC_GROUP, DC_PLURAL)?;
        let dc = self.kube.get(&datacenters, namespace, name)?;
        let mut replacements = string_list(&dc, "/status/nodeReplacements");
        change(&mut replacements);
        let mut conditions: Vec<Value> =
            dc.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
        set_datacenter_condition(&mut conditions, REPLACING_NODES, !replacements.is_empty());
        let patch = json!({"status": {"nodeReplacements": replacements, "conditions": conditions}});
        self.kube.merge_patch(&datacenters, namespace, name, &patch, true)?;
        Ok(())
    }

    /// `replacePod`: the pod's claims and the pod are deleted; the pod comes back replacing
    /// its node after the pod restart time. Errors are the pod's ERROR message.
    pub(super) fn replace_pod(&mut self, dc: &Datacenter, pod: &DcPod) -> Result<(), String> {
        // No drain: the node goes down with its pod just below, and the model keeps no
        // commit log a drain would flush.
        let claims: Vec<String> = pod
            .object
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .map(|volumes| {
                volumes
                    .iter()
                    .filter_map(|v| v.pointer("/persistentVolumeClaim/claimName"))
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if !claims.is_empty() {
            let claim_resource =
                self.kube.resource("", "persistentvolumeclaims").map_err(|e| e.message)?;
            for claim in &claims {
                self.kube.get(&claim_resource, &pod.namespace, claim).map_err(|e| e.message)?;
            }
            for claim in &claims {
                self.kube.delete(&claim_resource, &pod.namespace, claim).map_err(|e| e.message)?;
            }
        }
        let pod_ref = self.pod_ref(pod);
        let old_node = {
            let model = self.model.lock();
            match (model.node(&pod_ref), model.cluster_of(&pod_ref)) {
                (Ok(node), Ok(cluster)) => Some(ReplacedNode {
                    cluster: cluster.to_string(),
                    host_id: node.host_id,
                    ip: node.ip.clone(),
                    datacenter: node.datacenter.clone(),
                    rack: node.rack.clone(),
                    num_tokens: node.tokens.len(),
                    server_version: node.server_version.clone(),
                }),
                _ => None,
            }
        };
        let pods = self.kube.resource("", "pods").map_err(|e| e.message)?;
        self.kube.delete(&pods, &pod.namespace, &pod.name).map_err(|e| e.message)?;
        if old_node.is_some()
            && let Err(e) = self.model.lock().remove_node(&pod_ref)
        {
            tracing::warn!(pod = %pod_ref, error = %e, "removing the replaced pod's node");
        }
        self.schedule_pod_event(PodEvent::Replaced(Box::new(Replacement {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            pod: pod_ref,
            deleted_pod: pod.object.clone(),
            old_node,
            dc_namespace: dc.namespace.clone(),
            dc_name: dc.name.clone(),
        })));
        Ok(())
    }

    /// The replaced pod is back: its node replaces the old one, the pod is ready and the
    /// datacenter no longer lists it.
    pub(super) fn finish_replacement(&mut self, replacement: &Replacement) {
        let key = format!("{}/{}", replacement.namespace, replacement.name);
        let pods = match self.kube.resource("", "pods") {
            Ok(pods) => pods,
            Err(e) => {
                tracing::warn!(pod = %key, error = %e, "bringing back a replaced pod");
                return;
            }
        };
        let pod = match self.kube.get(&pods, &replacement.namespace, &replacement.name) {
            Ok(pod) => pod,
            Err(e) if e.code == 404 => {
                let recreated = recreated_pod(&replacement.deleted_pod);
                match self.kube.create(&pods, &replacement.namespace, recreated) {
                    Ok(pod) => pod,
                    Err(e) => {
                        tracing::warn!(pod = %key, error = %e, "creating a replaced pod again");
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(pod = %key, error = %e, "reading a replaced pod");
                return;
            }
        };
        let address = pod
            .pointer("/status/podIP")
            .or_else(|| replacement.deleted_pod.pointer("/status/podIP"))
            .and_then(Value::as_str)
            .filter(|ip| !ip.is_empty())
            .map(str::to_string)
            .or_else(|| replacement.old_node.as_ref().map(|old| old.ip.clone()))
            .unwrap_or_default();
        if let Some(old) = &replacement.old_node {
            let started = {
                let mut model = self.model.lock();
                if let Err(e) = model.removenode(&old.cluster, old.host_id) {
                    tracing::warn!(pod = %replacement.pod, error = %e, "removing the replaced node");
                }
                let mut spec = NodeSpec::new(
                    &old.cluster,
                    replacement.pod.clone(),
                    &address,
                    &old.datacenter,
                    &old.rack,
                );
                spec.num_tokens = old.num_tokens.max(1);
                spec.server_version = old.server_version.clone();
                model.start_node(spec)
            };
            if let Err(e) = started {
                tracing::warn!(pod = %replacement.pod, error = %e,
                               "the replacing node did not start; its pod stays not ready");
                return;
            }
        }
        let running = pod_running_patch(&pod, &replacement.deleted_pod, &address);
        if let Err(e) = self.kube.merge_patch(
            &pods,
            &replacement.namespace,
            &replacement.name,
            &running,
            true,
        ) {
            tracing::warn!(pod = %key, error = %e, "writing a replaced pod's status");
        }
        self.mark_pod_started(&replacement.namespace, &replacement.name);
        let done = self.update_replacements(
            &replacement.dc_namespace,
            &replacement.dc_name,
            |replacements| replacements.retain(|name| *name != replacement.name),
        );
        if let Err(e) = done {
            tracing::warn!(pod = %key, error = %e, "taking a replaced pod off nodeReplacements");
        }
    }
}

/// The deleted pod as its StatefulSet would create it again: same name, labels and spec.
fn recreated_pod(deleted: &Value) -> Value {
    let mut metadata = Map::new();
    for field in [
        "name",
        "namespace",
        "labels",
        "annotations",
        "ownerReferences",
    ] {
        if let Some(value) = deleted.pointer(&format!("/metadata/{field}")) {
            metadata.insert(field.to_string(), value.clone());
        }
    }
    if let Some(labels) = metadata.get_mut("labels").and_then(Value::as_object_mut) {
        labels.insert(NODE_STATE_LABEL.into(), json!("Starting"));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": deleted.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A `/status` patch of a pod that runs at `address`, not ready yet; nothing for a pod that
/// already runs (something else created it).
fn pod_running_patch(pod: &Value, deleted: &Value, address: &str) -> Value {
    if pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running") {
        return json!({});
    }
    let now = crate::now_rfc3339();
    let image =
        deleted.pointer("/status/containerStatuses/0/image").cloned().unwrap_or_else(|| json!(""));
    let not_ready = |kind: &str| {
        json!({"type": kind, "status": "False", "lastTransitionTime": now,
               "reason": "ContainersNotReady", "message": "containers with unready status: [cassandra]"})
    };
    json!({"status": {
        "phase": "Running",
        "podIP": address,
        "podIPs": [{"ip": address}],
        "hostIP": deleted.pointer("/status/hostIP").cloned().unwrap_or_else(|| json!("")),
        "startTime": now,
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            not_ready("Ready"),
            not_ready("ContainersReady"),
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ],
        "containerStatuses": [{"name": "cassandra", "ready": false, "started": true,
                               "restartCount": 0, "image": image, "imageID": "",
                               "state": {"running": {"startedAt": now}}}],
    }})
}
