//! The `restart` command: a rolling restart, rack after rack (upstream's `restartSts`).
//!
//! As upstream, the task only triggers and waits: it sets `control.k8ssandra.io/restartedAt`
//! (the task's start time) on the pod template of each rack's StatefulSet in name order, and
//! moves to the next once the rack has rolled; with `fast` it also deletes the rack's pods at
//! once (unless another rack has pods down and `force` is not set). The StatefulSet's pods are
//! rolled by the cass-operator stand-in, which plays the StatefulSet controller for its
//! StatefulSets: it recreates the pods from the new template, highest ordinal first, and
//! restarts Cassandra in them with their data.
//!
//! Upstream reads the rack's progress from the StatefulSet's status (revisions, updated and
//! ready replicas). kube-sim's built-in StatefulSet status reports every replica ready and
//! updated at once, whatever the pods do, so the task counts the StatefulSet's pods instead:
//! the rack has rolled when `replicas` pods carry the template's `restartedAt` and are Ready
//! (what updatedReplicas == readyReplicas == replicas means), and it counts the pods that carry
//! it as restarted.

use serde_json::{Value, json};

use super::datacenter::{Datacenter, RACK_LABEL};
use super::error::TaskError;
use super::pods::DcPod;
use super::spec::JobArguments;
use super::{RESTARTED_AT_ANNOTATION, TaskController};

pub(super) struct RestartProgress {
    pub done: bool,
    /// Pods rolled so far (upstream counts the StatefulSets' updated replicas).
    pub restarted: usize,
}

fn restarted_at<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(|a| a.get(RESTARTED_AT_ANNOTATION)).and_then(Value::as_str)
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// One rack's StatefulSet and its pods.
struct Rack {
    statefulset: Value,
    pods: Vec<DcPod>,
}

impl Rack {
    fn name(&self) -> &str {
        text(&self.statefulset, "/metadata/name")
    }

    fn replicas(&self) -> usize {
        self.statefulset
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(1)
    }

    fn template_restarted_at(&self) -> Option<&str> {
        restarted_at(&self.statefulset, "/spec/template/metadata/annotations")
    }

    /// Pods made from the template that carries `restart_time`.
    fn updated(&self, restart_time: &str) -> impl Iterator<Item = &DcPod> {
        self.pods.iter().filter(move |pod| {
            restarted_at(&pod.object, "/metadata/annotations") == Some(restart_time)
        })
    }

    /// Pods missing or not Ready (upstream: `replicas - readyReplicas`).
    fn down(&self) -> usize {
        self.replicas().saturating_sub(self.pods.iter().filter(|pod| pod.ready).count())
    }
}

impl TaskController {
    pub(super) fn rolling_restart(
        &mut self,
        dc: &Datacenter,
        args: &JobArguments,
        restart_time: &str,
    ) -> Result<RestartProgress, TaskError> {
        let mut racks = self.racks(dc)?;
        // Upstream keeps every StatefulSet when none is the named rack's.
        if let Some(chosen) = racks
            .iter()
            .position(|rack| text(&rack.statefulset, &label_pointer(RACK_LABEL)) == args.rack_name)
        {
            racks = vec![racks.swap_remove(chosen)];
        }
        let mut restarted = 0;
        for (index, rack) in racks.iter().enumerate() {
            if rack.template_restarted_at() == Some(restart_time) {
                let updated = rack.updated(restart_time).count();
                restarted += updated;
                let rolled = rack.updated(restart_time).filter(|pod| pod.ready).count();
                if rolled >= rack.replicas() {
                    continue;
                }
                return Ok(RestartProgress {
                    done: false,
                    restarted,
                });
            }
            if args.fast && !args.force {
                let other_rack_down =
                    racks.iter().enumerate().any(|(other, rack)| other != index && rack.down() > 0);
                if other_rack_down {
                    return Ok(RestartProgress {
                        done: false,
                        restarted,
                    });
                }
            }
            self.annotate_statefulset(dc, rack, restart_time)?;
            if args.fast {
                let pods = self.kube.resource("", "pods")?;
                for pod in &rack.pods {
                    self.kube.delete(&pods, &pod.namespace, &pod.name)?;
                }
            }
            return Ok(RestartProgress {
                done: false,
                restarted,
            });
        }
        Ok(RestartProgress {
            done: true,
            restarted,
        })
    }

    /// The datacenter's StatefulSets (by its labels) in name order, each with its pods.
    fn racks(&self, dc: &Datacenter) -> Result<Vec<Rack>, TaskError> {
        let Some(statefulsets) = self.kube.info("apps", "statefulsets") else {
            return Ok(Vec::new());
        };
        let mut listed = self.kube.list(&statefulsets, &dc.namespace, &dc.labels())?;
        listed.sort_by(|a, b| text(a, "/metadata/name").cmp(text(b, "/metadata/name")));
        let pods = self.datacenter_pods(dc)?;
        Ok(listed
            .into_iter()
            .map(|statefulset| {
                let rack = text(&statefulset, &label_pointer(RACK_LABEL)).to_string();
                Rack {
                    pods: pods.iter().filter(|pod| pod.rack == rack).cloned().collect(),
                    statefulset,
                }
            })
            .collect())
    }

    /// Sets the restart annotation on the rack's StatefulSet pod template.
    fn annotate_statefulset(
        &self,
        dc: &Datacenter,
        rack: &Rack,
        restart_time: &str,
    ) -> Result<(), TaskError> {
        let statefulsets = self.kube.resource("apps", "statefulsets")?;
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {
            RESTARTED_AT_ANNOTATION: restart_time}}}}});
        self.kube.merge_patch(&statefulsets, &dc.namespace, rack.name(), &patch, false)?;
        Ok(())
    }
}

fn label_pointer(label: &str) -> String {
    format!(
        "/metadata/labels/{}",
        label.replace('~', "~0").replace('/', "~1")
    )
}
