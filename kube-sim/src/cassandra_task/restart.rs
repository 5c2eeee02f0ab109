//! The `restart` command: a rolling restart, rack after rack (upstream's `restartSts`).
//!
//! Upstream annotates each rack's StatefulSet template with `control.k8ssandra.io/restartedAt`
//! (the task's start time) and waits until the StatefulSet has rolled and is ready; the
//! StatefulSet controller recreates the pods one at a time, highest ordinal first (`fast`: the
//! task deletes the whole rack's pods at once, unless another rack has pods down and `force` is
//! not set). Here the StatefulSets are annotated as upstream does when they exist, and the
//! controller rolls the pods itself: a restarting pod gets the annotation, turns not ready
//! (label `cassandra.datastax.com/node-state: Starting`) and its node stops; after the pod
//! restart time the node starts again and the pod is ready, one more container restart on its
//! count. The pod is restarted in place rather than recreated: its lifecycle belongs to the
//! cass-operator stand-in. A node that does not start again leaves its pod not ready and the
//! task waits, as upstream waits for a StatefulSet that never becomes ready.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::cassandra::{CassandraError, PodRef};

use super::datacenter::{Datacenter, NODE_STATE_LABEL, RACK_LABEL};
use super::error::TaskError;
use super::pods::DcPod;
use super::spec::JobArguments;
use super::{PodEvent, RESTARTED_AT_ANNOTATION, TaskController};

/// A pod whose node comes back when its timer fires.
pub(super) struct PodRestart {
    namespace: String,
    name: String,
    pod: PodRef,
}

pub(super) struct RestartProgress {
    pub done: bool,
    /// Pods rolled so far (upstream counts the StatefulSets' updated replicas).
    pub restarted: usize,
}

fn restarted_at(pod: &DcPod) -> Option<&str> {
    pod.object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(RESTARTED_AT_ANNOTATION))
        .and_then(Value::as_str)
}

impl TaskController {
    pub(super) fn rolling_restart(
        &mut self,
        dc: &Datacenter,
        args: &JobArguments,
        restart_time: &str,
    ) -> Result<RestartProgress, TaskError> {
        let mut racks: BTreeMap<String, Vec<DcPod>> = BTreeMap::new();
        for pod in self.datacenter_pods(dc)? {
            racks.entry(pod.rack.clone()).or_default().push(pod);
        }
        // Upstream's filter keeps every StatefulSet when none is the named rack's.
        let chosen: Vec<String> = if racks.contains_key(&args.rack_name) {
            vec![args.rack_name.clone()]
        } else {
            racks.keys().cloned().collect()
        };
        let in_progress = |restarted| RestartProgress {
            done: false,
            restarted,
        };
        let mut restarted = 0;
        for rack in &chosen {
            let Some(pods) = racks.get(rack) else {
                continue;
            };
            let rolled = |pod: &&DcPod| restarted_at(pod) == Some(restart_time);
            let rolled_count = pods.iter().filter(rolled).count();
            if rolled_count > 0 {
                restarted += rolled_count;
                if pods.iter().filter(rolled).any(|pod| !pod.ready) {
                    return Ok(in_progress(restarted));
                }
                // The StatefulSet rolls on to its next pod, highest ordinal first.
                if let Some(next) = pods.iter().filter(|p| !rolled(p)).max_by_key(|p| p.ordinal()) {
                    self.restart_pod(next, restart_time)?;
                    return Ok(in_progress(restarted));
                }
                continue;
            }
            if args.fast && !args.force {
                let other_rack_down = racks
                    .iter()
                    .filter(|(name, _)| *name != rack)
                    .any(|(_, pods)| pods.iter().any(|pod| !pod.ready));
                if other_rack_down {
                    return Ok(in_progress(restarted));
                }
            }
            self.annotate_statefulsets(dc, rack, restart_time)?;
            if args.fast {
                for pod in pods {
                    self.restart_pod(pod, restart_time)?;
                }
            } else if let Some(first) = pods.iter().max_by_key(|p| p.ordinal()) {
                self.restart_pod(first, restart_time)?;
            }
            return Ok(in_progress(restarted));
        }
        Ok(RestartProgress {
            done: true,
            restarted,
        })
    }

    /// Sets the restart annotation on the rack's StatefulSet templates, if there are any.
    fn annotate_statefulsets(
        &self,
        dc: &Datacenter,
        rack: &str,
        restart_time: &str,
    ) -> Result<(), TaskError> {
        let Some(statefulsets) = self.kube.info("apps", "statefulsets") else {
            return Ok(());
        };
        let mut labels = dc.labels();
        labels.insert(RACK_LABEL.to_string(), rack.to_string());
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {
            RESTARTED_AT_ANNOTATION: restart_time}}}}});
        for sts in self.kube.list(&statefulsets, &dc.namespace, &labels)? {
            if let Some(name) = sts.pointer("/metadata/name").and_then(Value::as_str) {
                self.kube.merge_patch(&statefulsets, &dc.namespace, name, &patch, false)?;
            }
        }
        Ok(())
    }

    /// The pod goes down: annotated, not ready, its node stopped until its timer fires.
    fn restart_pod(&mut self, pod: &DcPod, restart_time: &str) -> Result<(), TaskError> {
        let pods = self.kube.resource("", "pods")?;
        let metadata = json!({"metadata": {
            "annotations": {RESTARTED_AT_ANNOTATION: restart_time},
            "labels": {NODE_STATE_LABEL: "Starting"},
        }});
        self.kube.merge_patch(&pods, &pod.namespace, &pod.name, &metadata, false)?;
        let status = readiness_patch(&pod.object, false, true);
        self.kube.merge_patch(&pods, &pod.namespace, &pod.name, &status, true)?;
        let pod_ref = self.pod_ref(pod);
        match self.model.lock().stop_node(&pod_ref) {
            // A pod without a node in the model restarts as a pod only.
            Ok(()) | Err(CassandraError::UnknownNode(_)) => {}
            Err(e) => tracing::warn!(pod = %pod_ref, error = %e, "stopping the node for a restart"),
        }
        self.schedule_pod_event(PodEvent::Restarted(PodRestart {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            pod: pod_ref,
        }));
        Ok(())
    }

    /// The restarted pod's node starts again; the pod is ready once it has.
    pub(super) fn finish_restart(&mut self, restart: &PodRestart) {
        let started = self.model.lock().restart_node(&restart.pod);
        if let Err(e) = started
            && !matches!(e, CassandraError::UnknownNode(_))
        {
            tracing::warn!(pod = %restart.pod, error = %e, "the restarted node did not start; its pod stays not ready");
            return;
        }
        self.mark_pod_started(&restart.namespace, &restart.name);
    }

    /// The pod is ready and labelled Started, as cass-operator leaves a started node's pod.
    pub(super) fn mark_pod_started(&self, namespace: &str, name: &str) {
        let outcome = self.kube.resource("", "pods").and_then(|pods| {
            let pod = self.kube.get(&pods, namespace, name)?;
            self.kube.merge_patch(
                &pods,
                namespace,
                name,
                &readiness_patch(&pod, true, false),
                true,
            )?;
            let label = json!({"metadata": {"labels": {NODE_STATE_LABEL: "Started"}}});
            self.kube.merge_patch(&pods, namespace, name, &label, false)
        });
        if let Err(e) = outcome {
            tracing::warn!(pod = %format!("{namespace}/{name}"), error = %e, "marking a pod ready");
        }
    }
}

/// A `/status` merge patch for the pod's readiness: the Ready and ContainersReady conditions
/// and the `cassandra` container's `ready`; `container_restarted` counts one more restart of
/// the container, running since now.
pub(super) fn readiness_patch(pod: &Value, ready: bool, container_restarted: bool) -> Value {
    let now = crate::now_rfc3339();
    let status_text = if ready { "True" } else { "False" };
    let mut conditions: Vec<Value> =
        pod.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    for kind in ["Ready", "ContainersReady"] {
        let mut condition = json!({"type": kind, "status": status_text, "lastTransitionTime": now});
        if !ready {
            condition["reason"] = json!("ContainersNotReady");
            condition["message"] = json!("containers with unready status: [cassandra]");
        }
        match conditions.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some(kind)) {
            Some(existing)
                if existing.get("status").and_then(Value::as_str) == Some(status_text) => {}
            Some(existing) => *existing = condition,
            None => conditions.push(condition),
        }
    }
    let mut containers: Vec<Value> = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !containers.iter().any(|c| c.get("name").and_then(Value::as_str) == Some("cassandra")) {
        containers
            .push(json!({"name": "cassandra", "restartCount": 0, "image": "", "imageID": ""}));
    }
    for container in &mut containers {
        if container.get("name").and_then(Value::as_str) != Some("cassandra") {
            continue;
        }
        container["ready"] = json!(ready);
        container["started"] = json!(true);
        if container_restarted {
            let count = container.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
            container["restartCount"] = json!(count + 1);
            if let Some(previous) = container.get("state").cloned() {
                container["lastState"] = json!({"terminated": {
                    "exitCode": 143, "reason": "Error", "finishedAt": now,
                    "startedAt": previous.pointer("/running/startedAt").cloned().unwrap_or(json!(now))}});
            }
            container["state"] = json!({"running": {"startedAt": now}});
        }
    }
    json!({"status": {"conditions": conditions, "containerStatuses": containers}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarting_pod_is_not_ready_and_counts_a_container_restart() {
        let pod = json!({"status": {
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "t0"},
                           {"type": "PodScheduled", "status": "True", "lastTransitionTime": "t0"}],
            "containerStatuses": [{"name": "cassandra", "ready": true, "restartCount": 0,
                                   "state": {"running": {"startedAt": "t0"}}}]}});
        let patch = readiness_patch(&pod, false, true);
        let ready = patch
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|all| all.iter().find(|c| c["type"] == "Ready"))
            .and_then(|c| c["status"].as_str());
        assert_eq!(ready, Some("False"));
        assert_eq!(
            patch.pointer("/status/containerStatuses/0/restartCount"),
            Some(&json!(1))
        );
        assert_eq!(
            patch.pointer("/status/containerStatuses/0/ready"),
            Some(&json!(false))
        );
        assert_eq!(
            patch.pointer("/status/conditions").and_then(Value::as_array).map(Vec::len),
            Some(3)
        );
    }
}
