//! One reconcile of a datacenter against the Cassandra model, in the order of cass-operator's
//! `ReconcileAllRacks` (`pkg/reconciliation/reconcile_racks.go`), and its deletion
//! (`ProcessDeletion`, `pkg/reconciliation/reconcile_datacenter.go`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::desired::{Desired, RackLayout, User, seeds_of_rack, split_racks, str_at};
use super::events::{EventType, action};
use super::{
    DcKey, DcState, FINALIZER, NodeLabel, Operator, PodState, Reconciled, condition,
    merge_conditions, status_options,
};
use crate::cassandra::{CassandraError, NodeState, PodRef};
use crate::store::ResourceInfo;

/// How a decommission round ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decommissioned {
    /// The pods fit the target.
    Done,
    /// Cassandra refused (or could not be asked); the pod stays, labelled Decommissioning.
    Refused,
}

impl Operator {
    pub(super) fn reconcile(
        &mut self,
        info: &ResourceInfo,
        dc: &Value,
        desired: &Desired,
        state: &mut DcState,
    ) -> Reconciled {
        state.desired = Some(desired.clone());
        state.replaced.retain(|pod| desired.node_replacements.contains(pod));
        if desired.stopped {
            self.stop_datacenter(info, dc, desired, state);
            return Reconciled::Done;
        }
        // CheckSuperuserSecretCreation
        self.ensure_superuser_secret(desired);
        let layout = desired.layout();
        // CheckRackCreation / CheckRackScale: racks grow here; they shrink by decommission.
        self.create_pods(desired, &layout, state);
        let started_before = state.pods.values().filter(|p| p.ready).count();
        let all_ready = self.start_nodes(desired, &layout, state);
        let mut decommissioned = Vec::new();
        let scaling_down = all_ready
            && self.decommission_down_to(desired, desired.size, state, &mut decommissioned)
                == Decommissioned::Refused;
        let rolling = all_ready && !scaling_down && self.roll_next_pod(desired, state);
        self.label_seeds(desired, &layout, state);
        self.ensure_service(desired, state);
        let node_statuses = self.node_statuses(dc, state, &decommissioned);
        let started_some = state.pods.values().filter(|p| p.ready).count() > started_before;
        let replacing: Vec<&String> =
            desired.node_replacements.iter().filter(|pod| !state.replaced.contains(*pod)).collect();
        // "Wait on any nodes that are still being replaced" (ReconcileAllRacks).
        let settled = all_ready && !scaling_down && !rolling && replacing.is_empty();
        let users = match settled && !desired.skip_user_creation {
            true => Some(self.create_users(desired)),
            false => None,
        };
        let now = json!(crate::now_rfc3339());
        let last_started = if started_some {
            now.clone()
        } else {
            dc.pointer("/status/lastServerNodeStarted").cloned().unwrap_or(now.clone())
        };
        let failed_starts: Vec<&String> = state.failed_starts.iter().collect();
        let mut status = json!({
            "datacenterName": desired.dc_name,
            "nodeStatuses": node_statuses,
            "lastServerNodeStarted": last_started,
            "failedStarts": if failed_starts.is_empty() { Value::Null } else { json!(failed_starts) },
        });
        // updateCurrentReplacePodsProgress: started replacements leave the list (written only
        // then, so as not to undo a task's addition made meanwhile).
        if !state.replaced.is_empty() {
            status["nodeReplacements"] = json!(replacing);
        }
        if settled && users.as_ref().is_none_or(Result::is_ok) {
            status["cassandraOperatorProgress"] = json!("Ready");
            status["observedGeneration"] = json!(desired.generation);
            let mut settled_conditions = vec![
                condition("Valid", true, dc),
                condition("Initialized", true, dc),
                condition("Ready", true, dc),
                condition("Updating", false, dc),
                condition("ScalingUp", false, dc),
                condition("ScalingDown", false, dc),
                condition("Resuming", false, dc),
                condition("Stopped", false, dc),
            ];
            // CheckClearActionConditions: a finished replacement clears ReplacingNodes.
            if previous_condition(dc, "ReplacingNodes") {
                settled_conditions.push(condition("ReplacingNodes", false, dc));
            }
            status["conditions"] = merge_conditions(dc, settled_conditions);
            if users.is_some() {
                status["superUserUpserted"] = now.clone();
                status["usersUpserted"] = now;
            }
            self.patch_dc(info, dc, json!({"status": status}), status_options());
            return Reconciled::Done;
        }
        if let Some(Err(error)) = &users {
            tracing::debug!(dc = desired.name, error, "cass-operator CreateUsers");
        }
        let initialized = previous_condition(dc, "Initialized");
        status["cassandraOperatorProgress"] = json!("Updating");
        status["conditions"] = merge_conditions(
            dc,
            vec![
                condition("Valid", true, dc),
                condition("Initialized", initialized, dc),
                condition("Ready", previous_condition(dc, "Ready"), dc),
                condition("Updating", initialized, dc),
                condition("ScalingUp", initialized && !all_ready, dc),
                condition("ScalingDown", scaling_down, dc),
                condition("Resuming", previous_condition(dc, "Resuming"), dc),
                condition("Stopped", false, dc),
            ],
        );
        self.patch_dc(info, dc, json!({"status": status}), status_options());
        Reconciled::Retry
    }

    /// Creates the StatefulSets and the pods the layout lacks.
    fn create_pods(&mut self, desired: &Desired, layout: &[RackLayout], state: &mut DcState) {
        for rack in layout {
            let existing = state.pods.values().filter(|p| p.rack == rack.name).count();
            let Some(uid) =
                self.ensure_statefulset(desired, &rack.name, existing.max(rack.nodes), state)
            else {
                continue;
            };
            for ordinal in 0..rack.nodes {
                let name = desired.pod_name(&rack.name, ordinal);
                if state.pods.contains_key(&name) {
                    continue;
                }
                let Some(ip) = self.wiring.addresses.allocate() else {
                    tracing::warn!(pod = name, "cass-operator: no loopback address left");
                    continue;
                };
                let mut pod = PodState {
                    rack: rack.name.clone(),
                    ordinal,
                    ip: ip.to_string(),
                    uid: String::new(),
                    node_label: NodeLabel::ReadyToStart,
                    seed: false,
                    ready: false,
                    failure: None,
                    init_failure: None,
                    restarts: 0,
                    revision: String::new(),
                };
                if let Some((pod_uid, revision)) = self.create_pod(desired, &name, &pod, &uid) {
                    pod.uid = pod_uid;
                    pod.revision = revision;
                    state.pods.insert(name, pod);
                }
            }
        }
    }

    /// `startOneNodePerRack` (each rack's last pod, rack by rack, waiting on each), then
    /// `startAllNodes` (the rest by descending ordinal, failed starts last). True when every pod
    /// of the layout runs Cassandra.
    fn start_nodes(
        &mut self,
        desired: &Desired,
        layout: &[RackLayout],
        state: &mut DcState,
    ) -> bool {
        let wanted: Vec<(usize, String)> = layout
            .iter()
            .flat_map(|rack| (0..rack.nodes).map(|o| (o, desired.pod_name(&rack.name, o))))
            .collect();
        for rack in layout.iter().filter(|rack| rack.nodes > 0) {
            let rack_runs = (0..rack.nodes).any(|ordinal| {
                state.pods.get(&desired.pod_name(&rack.name, ordinal)).is_some_and(|p| p.ready)
            });
            if !rack_runs
                && !self.start_pod(
                    desired,
                    &desired.pod_name(&rack.name, rack.nodes - 1),
                    state,
                )
            {
                return false;
            }
        }
        let mut sequence: Vec<&(usize, String)> = wanted
            .iter()
            .filter(|(_, name)| state.pods.get(name).is_some_and(|p| !p.ready))
            .collect();
        sequence.sort_by_key(|(ordinal, name)| {
            (state.failed_starts.contains(name), usize::MAX - ordinal)
        });
        for (_, name) in sequence {
            self.start_pod(desired, name, state);
        }
        wanted.iter().all(|(_, name)| state.pods.get(name).is_some_and(|p| p.ready))
    }

    /// Starts Cassandra in a pod waiting for it (`Ready-to-Start`); true when it runs. A pod
    /// whose Cassandra was stopped by hand (`Started-not-Ready`) is left alone, as
    /// cass-operator only starts pods that never started.
    fn start_pod(&mut self, desired: &Desired, name: &str, state: &mut DcState) -> bool {
        let Some(mut pod) = state.pods.get(name).cloned() else {
            return false;
        };
        if pod.ready {
            return true;
        }
        if pod.node_label != NodeLabel::ReadyToStart {
            return false;
        }
        let pod_ref = self.pod_ref(&desired.namespace, name);
        let listed_for_replacement = desired.node_replacements.iter().any(|listed| listed == name);
        let replaced_ip = if listed_for_replacement {
            self.replaced_address(&pod_ref)
        } else {
            None
        };
        let node_known = self.cluster.cassandra.lock().node(&pod_ref).is_ok();
        if replaced_ip.is_some() {
            // The task deleted the pod's claim: the replacement starts on an empty volume.
            self.cluster.cassandra.lock().clear_volume(&pod_ref);
        } else if node_known && !self.init_containers_succeed(desired, name, &pod_ref, &mut pod) {
            self.write_pod_status(desired, name, &pod);
            state.pods.insert(name.to_string(), pod);
            return false;
        }
        let per_node = self.per_node_yaml(desired, name);
        if let Some(ip) = &replaced_ip {
            self.event(
                desired,
                EventType::Normal,
                action::STARTING_CASSANDRA_AND_REPLACING_NODE,
                format!(
                    "Starting Cassandra for pod {name} to replace Cassandra node with address {ip}"
                ),
                "",
            );
        }
        // cass-operator starts Cassandra through the pod's Management API
        // (`POST /api/v0/lifecycle/start`): a failing one fails the start.
        let refused_by_management_api = self
            .cluster
            .cassandra
            .lock()
            .node(&pod_ref)
            .ok()
            .and_then(|node| node.management_fault.fail_status);
        let management_tls = desired
            .management_server_secret
            .as_ref()
            .map(|secret| self.management_tls(&desired.namespace, secret))
            .transpose();
        let started = desired
            .node_spec(pod_ref.clone(), &pod.ip, &pod.rack, per_node.as_ref())
            .and_then(|spec| {
                let management_tls = management_tls?;
                if let Some(code) = refused_by_management_api {
                    return Err(format!(
                        "incorrect status code of {code} when calling endpoint"
                    ));
                }
                let mut model = self.cluster.cassandra.lock();
                match &replaced_ip {
                    Some(ip) => model.replace_node(spec, ip),
                    None => model.start_node(spec),
                }
                .and_then(|started| {
                    model.set_management_tls(&pod_ref, management_tls)?;
                    Ok(started)
                })
                .map_err(|e| e.to_string())
            });
        let outcome = match started {
            Ok(_) => {
                pod.ready = true;
                pod.node_label = NodeLabel::Started;
                pod.failure = None;
                state.failed_starts.remove(name);
                // The model restores into a node it knows: a pod's first start restores right
                // after it joined (kube-sim's order; Medusa restores before).
                if !node_known && replaced_ip.is_none() {
                    self.init_containers_succeed(desired, name, &pod_ref, &mut pod);
                }
                if listed_for_replacement {
                    state.replaced.insert(name.to_string());
                    self.event(
                        desired,
                        EventType::Normal,
                        action::FINISHED_REPLACE_NODE,
                        format!("Finished replacing pod {name}"),
                        "",
                    );
                }
                self.write_pod_labels(&desired.namespace, name, &pod);
                true
            }
            Err(message) => {
                pod.restarts += 1;
                state.failed_starts.insert(name.to_string());
                self.event(
                    desired,
                    EventType::Warning,
                    action::STARTING_CASSANDRA,
                    format!("Failed to start pod {name}"),
                    &message,
                );
                pod.failure = Some(message);
                false
            }
        };
        self.write_pod_status(desired, name, &pod);
        state.pods.insert(name.to_string(), pod);
        outcome
    }

    /// The StatefulSet controller's `RollingUpdate`, which cass-operator leaves to it: once
    /// every pod runs, the highest ordinal pod of the first rack whose template changed (a
    /// restart task's `restartedAt`, a new `podTemplateSpec`) is deleted, its node going down
    /// with it (`remove_node`); the next reconcile creates it from the new template and
    /// Cassandra restarts in it with its data volume. True while a roll is under way.
    fn roll_next_pod(&mut self, desired: &Desired, state: &mut DcState) -> bool {
        let revisions: BTreeMap<&String, String> = desired
            .racks
            .iter()
            .filter_map(|rack| {
                let statefulset = desired.statefulset_name(rack);
                let (_, revision) = self.statefulset_template(&desired.namespace, &statefulset)?;
                Some((rack, revision))
            })
            .collect();
        let rack_order = |rack: &str| desired.racks.iter().position(|r| r == rack);
        let Some(name) = state
            .pods
            .iter()
            .filter(|(_, pod)| revisions.get(&pod.rack).is_some_and(|r| *r != pod.revision))
            .max_by_key(|(_, pod)| (std::cmp::Reverse(rack_order(&pod.rack)), pod.ordinal))
            .map(|(name, _)| name.clone())
        else {
            return false;
        };
        state.pods.remove(&name);
        state.failed_starts.remove(&name);
        let pod_ref = self.pod_ref(&desired.namespace, &name);
        let _ = self.cluster.cassandra.lock().remove_node(&pod_ref);
        self.delete_pod(&desired.namespace, &name);
        true
    }

    /// Runs the pod's init containers (Medusa's restore); false, with the pod marked, when one
    /// fails.
    fn init_containers_succeed(
        &mut self,
        desired: &Desired,
        name: &str,
        pod_ref: &PodRef,
        pod: &mut PodState,
    ) -> bool {
        match self.run_medusa_restore(desired, name, pod_ref) {
            Ok(_) => {
                pod.init_failure = None;
                true
            }
            Err(error) => {
                // A failing init container: Cassandra does not start; the kubelet retries it.
                pod.restarts += 1;
                pod.ready = false;
                pod.init_failure = Some(error.to_string());
                self.event(
                    desired,
                    EventType::Warning,
                    action::STARTING_CASSANDRA,
                    format!("Failed to restore pod {name}"),
                    &error.to_string(),
                );
                false
            }
        }
    }

    /// The address of the dead node a pod listed in `status.nodeReplacements` replaces
    /// (upstream: its `nodeStatuses` host id's endpoint); None when its node never joined or
    /// runs (it then starts as usual).
    fn replaced_address(&self, pod_ref: &PodRef) -> Option<String> {
        let model = self.cluster.cassandra.lock();
        let node = model.node(pod_ref).ok()?;
        (node.state != NodeState::Left && !node.up).then(|| node.ip.clone())
    }

    /// `DecommissionNodes` and `CheckDecommissioningNodes`: while more pods run than `target`,
    /// the last pod of the first rack holding more than its share of one node less is
    /// decommissioned (`CalculateRackInfoForDecomm`); once it left the ring its pod goes and
    /// its StatefulSet shrinks. A refusal leaves the pod labelled Decommissioning, to be asked
    /// again at the next reconcile.
    fn decommission_down_to(
        &mut self,
        desired: &Desired,
        target: usize,
        state: &mut DcState,
        decommissioned: &mut Vec<String>,
    ) -> Decommissioned {
        loop {
            let counts: Vec<usize> = desired
                .racks
                .iter()
                .map(|rack| state.pods.values().filter(|p| &p.rack == rack).count())
                .collect();
            let current: usize = counts.iter().sum();
            if current <= target {
                return Decommissioned::Done;
            }
            let shares = split_racks(current - 1, desired.racks.len());
            let Some(index) = (0..counts.len()).find(|&i| counts[i] > shares[i]) else {
                return Decommissioned::Done;
            };
            let rack = desired.racks[index].clone();
            let name = desired.pod_name(&rack, counts[index] - 1);
            let Some(mut pod) = state.pods.get(&name).cloned() else {
                return Decommissioned::Refused;
            };
            self.event(
                desired,
                EventType::Normal,
                action::SCALING_DOWN_RACK,
                format!("Scaling down rack {rack}"),
                "",
            );
            let pod_ref = self.pod_ref(&desired.namespace, &name);
            let result = if pod.ready {
                self.cluster
                    .cassandra
                    .lock()
                    .decommission_node(&pod_ref, self.settings.force_decommission)
                    .map(|_| ())
            } else {
                Err(CassandraError::NodeNotRunning(pod_ref.to_string()))
            };
            if pod.node_label != NodeLabel::Decommissioning {
                pod.node_label = NodeLabel::Decommissioning;
                self.write_pod_labels(&desired.namespace, &name, &pod);
                self.event(
                    desired,
                    EventType::Normal,
                    action::LABELED_POD_AS_DECOMMISSIONING,
                    format!("Labeled node as decommissioning {name}"),
                    "",
                );
            }
            self.event(
                desired,
                EventType::Normal,
                action::DECOMMISSIONING_NODE,
                format!("Decommissioning node {name}"),
                "",
            );
            if let Err(error) = result {
                // cass-operator only logs the failed job and asks again; the Warning tells why.
                self.event(
                    desired,
                    EventType::Warning,
                    action::DECOMMISSIONING_NODE,
                    format!("Decommission of node {name} failed"),
                    &error.to_string(),
                );
                state.pods.insert(name, pod);
                return Decommissioned::Refused;
            }
            // cleanUpAfterDecommissionedPod: the StatefulSet shrinks, the pod goes.
            state.pods.remove(&name);
            state.failed_starts.remove(&name);
            self.ensure_statefulset(desired, &rack, counts[index] - 1, state);
            self.delete_pod(&desired.namespace, &name);
            decommissioned.push(name);
        }
    }

    /// `labelSeedPods` for every rack.
    fn label_seeds(&self, desired: &Desired, layout: &[RackLayout], state: &mut DcState) {
        for rack in layout {
            let pods: Vec<(&str, bool)> = state
                .pods
                .iter()
                .filter(|(_, p)| p.rack == rack.name)
                .map(|(name, p)| (name.as_str(), p.ready))
                .collect();
            let seeds: Vec<String> = seeds_of_rack(pods, rack.seeds).map(str::to_string).collect();
            for (name, pod) in state.pods.iter_mut().filter(|(_, p)| p.rack == rack.name) {
                let seed = seeds.contains(name);
                if pod.seed != seed {
                    pod.seed = seed;
                    self.write_pod_labels(&desired.namespace, name, pod);
                }
            }
        }
    }

    /// `status.nodeStatuses`: each pod's node as the model knows it (host id, address, rack);
    /// entries of pods that went without a decommission stay, as in cass-operator, and those of
    /// decommissioned pods are nulled (the status is written as a merge patch).
    fn node_statuses(&self, dc: &Value, state: &DcState, decommissioned: &[String]) -> Value {
        let mut statuses: Map<String, Value> = dc
            .pointer("/status/nodeStatuses")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for name in decommissioned {
            statuses.insert(name.clone(), Value::Null);
        }
        let namespace = state.desired.as_ref().map(|d| d.namespace.as_str()).unwrap_or_default();
        let model = self.cluster.cassandra.lock();
        for name in state.pods.keys() {
            if let Ok(node) = model.node(&self.pod_ref(namespace, name)) {
                statuses.insert(
                    name.clone(),
                    json!({"hostID": node.host_id.to_string(), "ip": node.ip, "rack": node.rack}),
                );
            }
        }
        Value::Object(statuses)
    }

    /// `CreateUsers`: the superuser and `spec.users`, each a role that may log in, written
    /// through this datacenter.
    fn create_users(&mut self, desired: &Desired) -> Result<(), String> {
        let mut users = desired.users.clone();
        users.push(User {
            secret_name: desired.superuser_secret.clone(),
            superuser: true,
        });
        for user in users {
            let (name, password) = self
                .credentials(&desired.namespace, &user.secret_name)
                .map_err(|e| e.to_string())?;
            self.cluster
                .cassandra
                .lock()
                .create_role(
                    &desired.cassandra_cluster,
                    &desired.dc_name,
                    &name,
                    &password,
                    user.superuser,
                    true,
                )
                .map_err(|e| e.to_string())?;
        }
        self.event(
            desired,
            EventType::Normal,
            action::CREATED_USERS,
            "Created users".into(),
            "",
        );
        self.event(
            desired,
            EventType::Normal,
            action::CREATED_SUPERUSER,
            "Created superuser".into(),
            "",
        );
        Ok(())
    }

    /// `CheckRackStoppedState`: every node drained (stopped), then the racks scaled to zero.
    fn stop_datacenter(
        &mut self,
        info: &ResourceInfo,
        dc: &Value,
        desired: &Desired,
        state: &mut DcState,
    ) {
        if !state.pods.is_empty() {
            self.event(
                desired,
                EventType::Normal,
                action::STOPPING_DATACENTER,
                "Stopping datacenter".into(),
                "",
            );
            let pods: Vec<String> = std::mem::take(&mut state.pods).into_keys().collect();
            {
                let mut model = self.cluster.cassandra.lock();
                for name in &pods {
                    let _ = model.stop_node(&self.pod_ref(&desired.namespace, name));
                }
            }
            for name in &pods {
                self.delete_pod(&desired.namespace, name);
            }
        }
        for rack in &desired.racks {
            self.ensure_statefulset(desired, rack, 0, state);
        }
        state.failed_starts.clear();
        self.ensure_service(desired, state);
        let status = json!({"status": {
            "cassandraOperatorProgress": "Ready",
            "observedGeneration": desired.generation,
            "datacenterName": desired.dc_name,
            "conditions": merge_conditions(dc, vec![
                condition("Valid", true, dc),
                condition("Initialized", true, dc),
                condition("Ready", false, dc),
                condition("Updating", false, dc),
                condition("ScalingUp", false, dc),
                condition("ScalingDown", false, dc),
                condition("Resuming", false, dc),
                condition("Stopped", true, dc),
            ]),
        }});
        self.patch_dc(info, dc, status, status_options());
    }

    /// `ProcessDeletion`: with `decommission-on-delete` and another datacenter alive in the
    /// cluster, the Decommission condition is set and the nodes are decommissioned to zero
    /// first (a refusal keeps the datacenter, retried); without the annotation the pods simply
    /// go and their nodes stay in the ring as down. Then the finalizer goes.
    pub(super) fn finalize(
        &mut self,
        info: &ResourceInfo,
        dc: &Value,
        desired: &Desired,
        state: &mut DcState,
    ) -> Reconciled {
        let has_finalizer = dc
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|all| all.iter().any(|f| f == FINALIZER));
        if !has_finalizer {
            return Reconciled::Done;
        }
        if desired.decommission_on_delete && !state.pods.is_empty() {
            let decommissioning = previous_condition(dc, "Decommission");
            if !decommissioning && self.live_datacenters(&desired.cassandra_cluster) < 2 {
                // "How could we have pods if we've decommissioned everything?": cass-operator
                // requeues; a lone datacenter is never decommissioned.
                self.write_deleting(info, dc, false, false);
                return Reconciled::Retry;
            }
            self.event(
                desired,
                EventType::Normal,
                action::DECOMMISSION_DATACENTER,
                "Datacenter is decommissioning".into(),
                "",
            );
            let mut decommissioned = Vec::new();
            let outcome = self.decommission_down_to(desired, 0, state, &mut decommissioned);
            self.ensure_service(desired, state);
            if outcome == Decommissioned::Refused {
                self.write_deleting(info, dc, true, true);
                return Reconciled::Retry;
            }
        }
        self.remove_everything(desired, state);
        self.remove_finalizer(info, dc);
        Reconciled::Forget
    }

    /// Datacenters of the cluster with a live node in the ring (`getClusterDatacenters`).
    fn live_datacenters(&self, cluster: &str) -> usize {
        let model = self.cluster.cassandra.lock();
        let Ok(ring) = model.ring(cluster) else {
            return 0;
        };
        let live: std::collections::BTreeSet<&str> = ring
            .iter()
            .filter(|entry| entry.up && entry.state == NodeState::Normal)
            .map(|entry| entry.datacenter.as_str())
            .collect();
        live.len()
    }

    fn write_deleting(
        &self,
        info: &ResourceInfo,
        dc: &Value,
        decommission: bool,
        scaling_down: bool,
    ) {
        let mut conditions = vec![
            condition("Valid", true, dc),
            condition("Initialized", previous_condition(dc, "Initialized"), dc),
            condition("Ready", previous_condition(dc, "Ready"), dc),
            condition("ScalingDown", scaling_down, dc),
        ];
        if decommission {
            conditions.push(condition("Decommission", true, dc));
        }
        let status = json!({"status": {
            "cassandraOperatorProgress": "Updating",
            "conditions": merge_conditions(dc, conditions),
        }});
        self.patch_dc(info, dc, status, status_options());
    }

    /// The pods go without a decommission (`remove_node`: Cassandra keeps them in the ring as
    /// down), then the StatefulSets, Service and EndpointSlice; a Cassandra cluster left with no
    /// pod at all is forgotten (its volumes went with its datacenters).
    pub(super) fn remove_everything(&mut self, desired: &Desired, state: &mut DcState) {
        let pods: Vec<String> = std::mem::take(&mut state.pods).into_keys().collect();
        {
            let mut model = self.cluster.cassandra.lock();
            for name in &pods {
                let _ = model.remove_node(&self.pod_ref(&desired.namespace, name));
            }
            model.forget_cluster_without_pods(&desired.cassandra_cluster);
        }
        for name in &pods {
            self.delete_pod(&desired.namespace, name);
        }
        self.delete_statefulsets(desired, state);
        self.delete_service(desired, state);
        self.forget_events(&desired.key());
    }

    /// Pod readiness follows the model between reconciles: a node whose process stopped turns
    /// its pod not Ready and `Started-not-Ready` (`findStartedNotReadyNodes`), and back.
    pub(super) fn follow_model(&mut self) {
        let watched: Vec<(DcKey, String, crate::cassandra::PodRef)> = self
            .datacenters
            .iter()
            .flat_map(|(key, state)| {
                state
                    .pods
                    .iter()
                    .filter(|(_, p)| {
                        matches!(
                            p.node_label,
                            NodeLabel::Started | NodeLabel::StartedNotReady
                        )
                    })
                    .map(|(name, _)| (key.clone(), name.clone(), self.pod_ref(&key.0, name)))
            })
            .collect();
        if watched.is_empty() {
            return;
        }
        let running: Vec<Option<bool>> = {
            let model = self.cluster.cassandra.lock();
            watched.iter().map(|(_, _, pod)| model.node(pod).ok().map(|n| n.running)).collect()
        };
        let mut changed: Vec<DcKey> = Vec::new();
        for ((key, name, _), running) in watched.into_iter().zip(running) {
            let Some(running) = running else { continue };
            let Some(state) = self.datacenters.get_mut(&key) else {
                continue;
            };
            let Some(pod) = state.pods.get_mut(&name) else {
                continue;
            };
            if pod.ready == running {
                continue;
            }
            pod.ready = running;
            pod.node_label = if running {
                NodeLabel::Started
            } else {
                NodeLabel::StartedNotReady
            };
            let pod = pod.clone();
            if let Some(desired) = state.desired.clone() {
                self.write_pod_labels(&key.0, &name, &pod);
                self.write_pod_status(&desired, &name, &pod);
            }
            if !changed.contains(&key) {
                changed.push(key);
            }
        }
        for key in changed {
            let Some(mut state) = self.datacenters.remove(&key) else {
                continue;
            };
            if let Some(desired) = state.desired.clone() {
                self.label_seeds(&desired, &desired.layout(), &mut state);
                self.ensure_service(&desired, &mut state);
            }
            self.datacenters.insert(key, state);
        }
    }

    /// A StatefulSet's template changed (a restart task's `restartedAt`): the datacenter
    /// reconciles now, rolling the pods made from the earlier template.
    pub(super) fn on_statefulset_changed(&mut self, statefulset: &Value) {
        let (Some(namespace), Some(name), Some(template)) = (
            str_at(statefulset, "/metadata/namespace"),
            str_at(statefulset, "/metadata/name"),
            statefulset.pointer("/spec/template"),
        ) else {
            return;
        };
        let revision = super::objects::template_revision(name, template);
        let now = tokio::time::Instant::now();
        for ((dc_namespace, _), state) in self.datacenters.iter_mut() {
            let Some(desired) = state.desired.as_ref() else {
                continue;
            };
            let outdated = dc_namespace == namespace
                && state.pods.values().any(|pod| {
                    desired.statefulset_name(&pod.rack) == name && pod.revision != revision
                });
            if outdated {
                let generation = state.due.map_or(desired.generation, |(g, _)| g);
                state.due = Some((generation, state.due.map_or(now, |(_, at)| at.min(now))));
            }
        }
    }

    /// A pod deleted by someone else: its node leaves without a decommission (down in the
    /// ring); the StatefulSet brings the pod back, and Cassandra restarts in it.
    pub(super) fn on_pod_deleted(&mut self, pod: &Value) {
        let (Some(namespace), Some(name)) = (
            str_at(pod, "/metadata/namespace"),
            str_at(pod, "/metadata/name"),
        ) else {
            return;
        };
        let Some(state) = self
            .datacenters
            .iter_mut()
            .find(|(key, state)| key.0 == namespace && state.pods.contains_key(name))
            .map(|(_, state)| state)
        else {
            return;
        };
        state.pods.remove(name);
        let generation = state.desired.as_ref().map_or(0, |d| d.generation);
        state.due = Some((
            generation,
            tokio::time::Instant::now() + self.settings.ready_after,
        ));
        let pod_ref = self.pod_ref(namespace, name);
        let _ = self.cluster.cassandra.lock().remove_node(&pod_ref);
    }
}

fn previous_condition(dc: &Value, kind: &str) -> bool {
    dc.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|all| all.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}
