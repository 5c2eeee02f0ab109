//! The `replacenode` command (upstream's `replace`, `replaceValidator`, `replacePreProcess`,
//! `replacePod`).
//!
//! As upstream, the task names the pods in the datacenter's `status.nodeReplacements` with
//! condition ReplacingNodes True, deletes the pod's PersistentVolumeClaims (when the cluster
//! serves them; kube-sim does not, and the stand-in clears the model's volume files instead)
//! and the pod, and the pod is done. The rest is cass-operator's main controller's, which the
//! cass-operator stand-in plays: it recreates the pod, starts Cassandra replacing the dead
//! node (`replace_address_first_boot`: a new host id, the old tokens, the ranges streamed from
//! the other replicas), takes the pod off `nodeReplacements` and sets ReplacingNodes False.
//! No drain before the deletion: the model keeps no commit log a drain would flush.

use serde_json::{Value, json};

use super::TaskController;
use super::datacenter::{DC_GROUP, DC_PLURAL, Datacenter};
use super::error::TaskError;
use super::pods::DcPod;
use super::reconcile::Validation;
use super::spec::JobArguments;

const REPLACING_NODES: &str = "ReplacingNodes";

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

    /// `replacePod`: the pod's claims and the pod are deleted; cass-operator brings the pod
    /// back replacing its node. Errors are the pod's ERROR message.
    pub(super) fn replace_pod(&mut self, pod: &DcPod) -> Result<(), String> {
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
        // kube-sim's cass-operator makes no claims for its pods (their data is in the model):
        // only claims that exist are deleted.
        if let (false, Some(claim_resource)) = (
            claims.is_empty(),
            self.kube.info("", "persistentvolumeclaims"),
        ) {
            let mut existing = Vec::new();
            for claim in &claims {
                match self.kube.get(&claim_resource, &pod.namespace, claim) {
                    Ok(_) => existing.push(claim),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e.message),
                }
            }
            for claim in existing {
                self.kube.delete(&claim_resource, &pod.namespace, claim).map_err(|e| e.message)?;
            }
        }
        let pods = self.kube.resource("", "pods").map_err(|e| e.message)?;
        self.kube.delete(&pods, &pod.namespace, &pod.name).map_err(|e| e.message)?;
        Ok(())
    }
}
