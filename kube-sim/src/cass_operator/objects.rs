//! The Kubernetes objects the stand-in writes: StatefulSets, pods and their status, the all-pods
//! Service and its EndpointSlice, the generated superuser Secret.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::desired::{Desired, str_at};
use super::{
    DcState, NodeLabel, Operator, PodState, StatefulSetState, status_options, write_options,
};
use crate::store::{DeleteOptions, PatchType};

const NATIVE_PORT: i64 = 9042;
const INTERNODE_PORT: i64 = 7000;
const MANAGEMENT_API_PORT: i64 = 8080;
/// Where kind's single node would put the pods.
const HOST_IP: &str = "172.18.0.2";

fn encode(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

fn decode(value: Option<&Value>) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(value?.as_str()?).ok()?;
    String::from_utf8(bytes).ok()
}

/// What went wrong reading a user's Secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum SecretError {
    #[error("secrets \"{0}\" not found")]
    Missing(String),
    #[error("secret {0} has no {1}")]
    MissingKey(String, &'static str),
}

impl Operator {
    fn merge_patch(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
        patch: &Value,
        status: bool,
    ) {
        let Some(info) = self.info(group, plural) else {
            return;
        };
        let options = if status {
            status_options()
        } else {
            write_options()
        };
        if let Err(e) = self.cluster.store.patch(
            &info,
            Some(namespace),
            name,
            PatchType::Merge,
            patch.to_string().as_bytes(),
            &options,
        ) {
            tracing::debug!(plural, name, error = %e, "cass-operator write");
        }
    }

    fn delete(&self, group: &str, plural: &str, namespace: &str, name: &str) {
        if let Some(info) = self.info(group, plural) {
            let _ =
                self.cluster.store.delete(&info, Some(namespace), name, &DeleteOptions::default());
        }
    }

    /// Creates the rack's StatefulSet (`newStatefulSetForCassandraDatacenter`), or brings its
    /// replicas and pod template spec to what the datacenter asks (`CheckRackPodTemplate`;
    /// template annotations others set, such as a restart task's `restartedAt`, stay); its uid,
    /// for the pods' owner reference.
    pub(super) fn ensure_statefulset(
        &self,
        desired: &Desired,
        rack: &str,
        replicas: usize,
        state: &mut DcState,
    ) -> Option<String> {
        let name = desired.statefulset_name(rack);
        let pod_spec = pod_template_spec(desired);
        let config_hash = desired.config_hash();
        if let Some(known) = state.statefulsets.get(&name)
            && known.replicas == replicas
            && known.pod_spec == pod_spec
            && known.config_hash == config_hash
        {
            return Some(known.uid.clone());
        }
        let info = self.info("apps", "statefulsets")?;
        let labels = desired.rack_labels(rack);
        let mut selector = desired.selector_labels();
        selector["cassandra.datastax.com/rack"] = labels["cassandra.datastax.com/rack"].clone();
        let mut template_labels = labels.clone();
        template_labels["cassandra.datastax.com/node-state"] =
            json!(NodeLabel::ReadyToStart.as_str());
        let statefulset = json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": desired.namespace, "labels": labels,
                         "ownerReferences": desired.owner_reference()},
            "spec": {
                "replicas": replicas,
                "serviceName": desired.service_name(),
                "podManagementPolicy": "Parallel",
                "updateStrategy": {"type": "RollingUpdate"},
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": template_labels,
                                 "annotations": {CONFIG_HASH_ANNOTATION: config_hash}},
                    "spec": pod_spec,
                },
                "volumeClaimTemplates": [{
                    "metadata": {"name": "server-data", "labels": desired.rack_labels(rack)},
                    "spec": desired.volume_claim,
                }],
            },
        });
        let namespace = Some(desired.namespace.as_str());
        let stored =
            match self.cluster.store.create(&info, namespace, statefulset, &write_options()) {
                Ok(written) => written.object,
                // left over from an earlier life of the datacenter: take it over
                Err(_) => self.cluster.store.get(&info, namespace, &name).ok()?,
            };
        let uid = str_at(&stored, "/metadata/uid")?.to_string();
        let mut patch = json!({});
        if stored.pointer("/spec/replicas").and_then(Value::as_u64) != Some(replicas as u64) {
            patch["spec"]["replicas"] = json!(replicas);
        }
        if stored.pointer("/spec/template/spec") != Some(&pod_spec) {
            patch["spec"]["template"]["spec"] = pod_spec.clone();
        }
        let stored_hash = stored
            .pointer("/spec/template/metadata/annotations")
            .and_then(|a| a.get(CONFIG_HASH_ANNOTATION))
            .and_then(Value::as_str);
        if stored_hash != Some(config_hash.as_str()) {
            patch["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] =
                json!(config_hash);
        }
        if patch.get("spec").is_some() {
            self.merge_patch(
                "apps",
                "statefulsets",
                &desired.namespace,
                &name,
                &patch,
                false,
            );
        }
        state.statefulsets.insert(
            name,
            StatefulSetState {
                uid: uid.clone(),
                replicas,
                pod_spec,
                config_hash,
            },
        );
        Some(uid)
    }

    /// The rack's StatefulSet pod template as stored (with what others added) and its
    /// revision, which the pods made from it carry (`controller-revision-hash`).
    pub(super) fn statefulset_template(
        &self,
        namespace: &str,
        statefulset: &str,
    ) -> Option<(Value, String)> {
        let info = self.info("apps", "statefulsets")?;
        let stored = self.cluster.store.get(&info, Some(namespace), statefulset).ok()?;
        let template = stored.pointer("/spec/template")?.clone();
        let revision = template_revision(statefulset, &template);
        Some((template, revision))
    }

    pub(super) fn delete_statefulsets(&self, desired: &Desired, state: &mut DcState) {
        for name in std::mem::take(&mut state.statefulsets).into_keys() {
            self.delete("apps", "statefulsets", &desired.namespace, &name);
        }
    }

    /// Creates a pod of a rack's StatefulSet from its template, as the StatefulSet controller
    /// does (labels, annotations, containers, init containers, volumes, plus the claim of
    /// `server-data`), Running and not Ready (Cassandra waits for the operator's start,
    /// `MGMT_API_EXPLICIT_START`); its uid and the template revision it was made from.
    pub(super) fn create_pod(
        &self,
        desired: &Desired,
        pod_name: &str,
        pod: &PodState,
        statefulset_uid: &str,
    ) -> Option<(String, String)> {
        let info = self.info("", "pods")?;
        let statefulset = desired.statefulset_name(&pod.rack);
        let (template, revision) = self.statefulset_template(&desired.namespace, &statefulset)?;
        let mut labels = template.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({}));
        labels["cassandra.datastax.com/node-state"] = json!(pod.node_label.as_str());
        labels["statefulset.kubernetes.io/pod-name"] = json!(pod_name);
        labels["apps.kubernetes.io/pod-index"] = json!(pod.ordinal.to_string());
        labels["controller-revision-hash"] = json!(revision);
        let annotations =
            template.pointer("/metadata/annotations").cloned().unwrap_or_else(|| json!({}));
        let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
        spec["nodeName"] = json!(format!("sim-node-{}", pod.ordinal % 3));
        spec["hostname"] = json!(pod_name);
        spec["subdomain"] = json!(desired.service_name());
        let mut volumes =
            spec.get("volumes").and_then(Value::as_array).cloned().unwrap_or_default();
        volumes.push(json!({"name": "server-data",
                            "persistentVolumeClaim": {"claimName": format!("server-data-{pod_name}")}}));
        spec["volumes"] = Value::Array(volumes);
        let object = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": desired.namespace, "labels": labels,
                         "annotations": annotations,
                         "ownerReferences": [{
                             "apiVersion": "apps/v1", "kind": "StatefulSet",
                             "name": statefulset, "uid": statefulset_uid,
                             "controller": true, "blockOwnerDeletion": true}]},
            "spec": spec,
        });
        let created = match self.cluster.store.create(
            &info,
            Some(&desired.namespace),
            object,
            &write_options(),
        ) {
            Ok(written) => written.object,
            Err(e) => {
                tracing::debug!(pod = pod_name, error = %e, "cass-operator pod");
                return None;
            }
        };
        self.write_pod_status(desired, pod_name, pod);
        let uid = str_at(&created, "/metadata/uid")?.to_string();
        Some((uid, revision))
    }

    /// A pod as stored.
    pub(super) fn stored_pod(&self, namespace: &str, pod_name: &str) -> Option<Value> {
        let info = self.info("", "pods")?;
        self.cluster.store.get(&info, Some(namespace), pod_name).ok()
    }

    /// The TLS the pods' Management API agent is started with for `managementApiAuth.manual`:
    /// the server Secret mounted in the pod. Err is what the kubelet reports when it cannot
    /// mount it.
    pub(super) fn management_tls(
        &self,
        namespace: &str,
        secret: &str,
    ) -> Result<crate::cassandra::ManagementTls, String> {
        let not_found = || {
            format!(
                "MountVolume.SetUp failed for volume \"mgmt-api-server-certs\" : secret \"{secret}\" not found"
            )
        };
        let info = self.info("", "secrets").ok_or_else(not_found)?;
        let object =
            self.cluster.store.get(&info, Some(namespace), secret).map_err(|_| not_found())?;
        let key = |name: &str| {
            decode(object.pointer(&format!("/data/{name}")))
                .map(String::into_bytes)
                .ok_or_else(|| format!("secret \"{secret}\" has no {name}: the Management API agent cannot start with TLS"))
        };
        Ok(crate::cassandra::ManagementTls {
            certificate_pem: key("tls.crt")?,
            key_pem: key("tls.key")?,
            ca_pem: key("ca.crt")?,
        })
    }

    /// The ConfigMap's `key`, if both exist.
    pub(super) fn config_map_value(
        &self,
        namespace: &str,
        config_map: &str,
        key: &str,
    ) -> Option<String> {
        let info = self.info("", "configmaps")?;
        let object = self.cluster.store.get(&info, Some(namespace), config_map).ok()?;
        Some(object.get("data")?.get(key)?.as_str()?.to_string())
    }

    /// The pod's status as the kubelet would report it: Ready when Cassandra runs (the
    /// readiness probe); a start that failed shows as a container restarting with Cassandra's
    /// last words.
    pub(super) fn write_pod_status(&self, desired: &Desired, pod_name: &str, pod: &PodState) {
        let now = crate::now_rfc3339();
        let ready = if pod.ready { "True" } else { "False" };
        let (state, last_state) = match &pod.failure {
            Some(message) => (
                json!({"waiting": {"reason": "CrashLoopBackOff",
                                   "message": format!("back-off restarting failed container cassandra in pod {pod_name}")}}),
                json!({"terminated": {"exitCode": 1, "reason": "Error", "message": message,
                                      "finishedAt": now}}),
            ),
            None => (json!({"running": {"startedAt": now}}), json!({})),
        };
        if let Some(error) = &pod.init_failure {
            // Init:CrashLoopBackOff: the pod waits in Pending, its main containers not started.
            // Medusa's entrypoint writes no termination-message file: the kubelet fills
            // `message` only with the log's tail, under FallbackToLogsOnError.
            let falls_back_to_logs = (desired.pod_template.pointer("/initContainers"))
                .and_then(Value::as_array)
                .and_then(|all| all.iter().find(|c| c["name"] == "medusa-restore"))
                .and_then(|c| c.get("terminationMessagePolicy"))
                .is_some_and(|policy| policy == "FallbackToLogsOnError");
            let mut terminated = json!({"exitCode": 1, "reason": "Error", "startedAt": now,
                                        "finishedAt": now,
                                        "containerID": format!("containerd://{pod_name}-medusa-restore")});
            if falls_back_to_logs {
                terminated["message"] = Value::String(error.clone());
            }
            let status = json!({"status": {
                "phase": "Pending",
                "podIP": pod.ip,
                "podIPs": [{"ip": pod.ip}],
                "hostIP": HOST_IP,
                "startTime": now,
                "conditions": [
                    {"type": "Initialized", "status": "False", "lastTransitionTime": now,
                     "reason": "ContainersNotInitialized",
                     "message": "containers with incomplete status: [medusa-restore]"},
                    {"type": "Ready", "status": "False", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": "False", "lastTransitionTime": now},
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                ],
                "initContainerStatuses": [{"name": "medusa-restore", "ready": false, "started": false,
                    "restartCount": pod.restarts, "image": "", "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff",
                        "message": format!("back-off 10s restarting failed container=medusa-restore pod={pod_name}_{}", desired.namespace)}},
                    "lastState": {"terminated": terminated}}],
                "containerStatuses": [{"name": "cassandra", "ready": false, "started": false,
                                       "restartCount": 0, "image": desired.image, "imageID": "",
                                       "state": {"waiting": {"reason": "PodInitializing"}}}],
            }});
            self.merge_patch("", "pods", &desired.namespace, pod_name, &status, true);
            return;
        }
        let status = json!({"status": {
            "phase": "Running",
            "initContainerStatuses": null,
            "podIP": pod.ip,
            "podIPs": [{"ip": pod.ip}],
            "hostIP": HOST_IP,
            "startTime": now,
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": ready, "lastTransitionTime": now},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            ],
            "containerStatuses": [{"name": "cassandra", "ready": pod.ready, "started": true,
                                   "restartCount": pod.restarts, "image": desired.image, "imageID": "",
                                   "state": state, "lastState": last_state}],
        }});
        self.merge_patch("", "pods", &desired.namespace, pod_name, &status, true);
    }

    /// The node-state and seed labels.
    pub(super) fn write_pod_labels(&self, namespace: &str, pod_name: &str, pod: &PodState) {
        let patch = json!({"metadata": {"labels": {
            "cassandra.datastax.com/node-state": pod.node_label.as_str(),
            "cassandra.datastax.com/seed-node": if pod.seed { json!("true") } else { Value::Null },
        }}});
        self.merge_patch("", "pods", namespace, pod_name, &patch, false);
    }

    pub(super) fn delete_pod(&self, namespace: &str, pod_name: &str) {
        self.delete("", "pods", namespace, pod_name);
    }

    /// The all-pods headless Service and its EndpointSlice (rewritten only when the endpoints
    /// change).
    pub(super) fn ensure_service(&self, desired: &Desired, state: &mut DcState) {
        let (Some(services), Some(slices)) = (
            self.info("", "services"),
            self.info("discovery.k8s.io", "endpointslices"),
        ) else {
            return;
        };
        let endpoints: Vec<Value> = state
            .pods
            .iter()
            .map(|(name, pod)| {
                json!({
                    "addresses": [pod.ip],
                    "conditions": {"ready": pod.ready, "serving": pod.ready, "terminating": false},
                    "nodeName": format!("sim-node-{}", pod.ordinal % 3),
                    "targetRef": {"kind": "Pod", "name": name, "namespace": desired.namespace, "uid": pod.uid},
                })
            })
            .collect();
        if state.endpoints.as_ref() == Some(&endpoints) {
            return;
        }
        let namespace = Some(desired.namespace.as_str());
        let service_name = desired.service_name();
        if state.endpoints.is_none()
            && self.cluster.store.get(&services, namespace, &service_name).is_err()
        {
            let service = json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": service_name, "namespace": desired.namespace, "labels": desired.labels(),
                             "ownerReferences": desired.owner_reference()},
                "spec": {"clusterIP": "None", "type": "ClusterIP", "publishNotReadyAddresses": true,
                         "selector": desired.selector_labels(),
                         "ports": [{"name": "native", "port": NATIVE_PORT, "protocol": "TCP", "targetPort": NATIVE_PORT},
                                   {"name": "mgmt-api", "port": MANAGEMENT_API_PORT, "protocol": "TCP",
                                    "targetPort": MANAGEMENT_API_PORT}]},
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
        match result {
            Ok(_) => state.endpoints = Some(endpoints),
            Err(e) => {
                tracing::debug!(slice = slice_name, error = %e, "cass-operator endpointslice")
            }
        }
    }

    pub(super) fn delete_service(&self, desired: &Desired, state: &mut DcState) {
        let service_name = desired.service_name();
        self.delete("", "services", &desired.namespace, &service_name);
        self.delete(
            "discovery.k8s.io",
            "endpointslices",
            &desired.namespace,
            &format!("{service_name}-sim"),
        );
        state.endpoints = None;
    }

    /// `retrieveSuperuserSecretOrCreateDefault`: without `spec.superuserSecretName`, a missing
    /// `<clusterName>-superuser` Secret is generated (username `<clusterName>-superuser`, a
    /// random password).
    pub(super) fn ensure_superuser_secret(&self, desired: &Desired) {
        if !desired.generate_superuser_secret {
            return;
        }
        let Some(info) = self.info("", "secrets") else {
            return;
        };
        let namespace = Some(desired.namespace.as_str());
        if self.cluster.store.get(&info, namespace, &desired.superuser_secret).is_ok() {
            return;
        }
        let mut random = [0u8; 40];
        rand::Rng::fill(&mut rand::rng(), &mut random[..]);
        let password = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": desired.superuser_secret, "namespace": desired.namespace,
                         "labels": desired.labels()},
            "type": "Opaque",
            "data": {"username": encode(&format!("{}-superuser", desired.cluster_name)),
                     "password": encode(&password)},
        });
        if let Err(e) = self.cluster.store.create(&info, namespace, secret, &write_options()) {
            tracing::debug!(secret = desired.superuser_secret, error = %e, "cass-operator secret");
        }
    }

    /// A user Secret's `username` and `password`.
    pub(super) fn credentials(
        &self,
        namespace: &str,
        secret: &str,
    ) -> Result<(String, String), SecretError> {
        let missing = || SecretError::Missing(secret.to_string());
        let info = self.info("", "secrets").ok_or_else(missing)?;
        let object =
            self.cluster.store.get(&info, Some(namespace), secret).map_err(|_| missing())?;
        let field = |key: &'static str| {
            decode(object.pointer(&format!("/data/{key}")))
                .or_else(|| str_at(&object, &format!("/stringData/{key}")).map(str::to_string))
                .ok_or_else(|| SecretError::MissingKey(secret.to_string(), key))
        };
        Ok((field("username")?, field("password")?))
    }

    /// The pod's `<pod>_cassandra.yaml` of the per-node ConfigMap, if there is one.
    pub(super) fn per_node_yaml(
        &self,
        desired: &Desired,
        pod_name: &str,
    ) -> Option<Map<String, Value>> {
        let config_map = desired.per_node_config_map.as_deref()?;
        let info = self.info("", "configmaps")?;
        let object = self.cluster.store.get(&info, Some(&desired.namespace), config_map).ok()?;
        let text = object
            .get("data")?
            .get(format!("{pod_name}_cassandra.yaml"))
            .and_then(Value::as_str)?;
        match serde_saphyr::from_str::<Value>(text) {
            Ok(Value::Object(yaml)) => Some(yaml),
            _ => None,
        }
    }
}

/// cass-operator's pod template annotation with the hash of the datacenter's config Secret.
const CONFIG_HASH_ANNOTATION: &str = "cassandra.datastax.com/config-hash";

/// The StatefulSets' pod spec (`buildPodTemplateSpec`): the `cassandra` container, with what
/// `spec.podTemplateSpec` adds to a container of that name (env, volume mounts, ports), then the
/// template's other containers; the template's init containers and volumes.
fn pod_template_spec(desired: &Desired) -> Value {
    let list = |key: &str| -> Vec<Value> {
        desired.pod_template.get(key).and_then(Value::as_array).cloned().unwrap_or_default()
    };
    let is_cassandra = |c: &Value| c.get("name").and_then(Value::as_str) == Some("cassandra");
    let mut cassandra = container(desired);
    let template_containers = list("containers");
    if let Some(given) = template_containers.iter().find(|c| is_cassandra(c)) {
        for key in ["env", "volumeMounts", "ports"] {
            let extra = given.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
            if let Some(Value::Array(items)) = cassandra.get_mut(key) {
                items.extend(extra);
            } else if !extra.is_empty() {
                cassandra[key] = Value::Array(extra);
            }
        }
    }
    let mut containers = vec![cassandra];
    containers.extend(template_containers.into_iter().filter(|c| !is_cassandra(c)));
    json!({
        "containers": containers,
        "initContainers": list("initContainers"),
        "volumes": list("volumes"),
    })
}

/// A stable hash of a pod template, named as the StatefulSet controller names revisions
/// (`<statefulset>-<hash>`).
pub(super) fn template_revision(statefulset: &str, template: &Value) -> String {
    let hash = template.to_string().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{statefulset}-{:x}", hash % 0xf_ffff_ffff)
}

/// The cassandra container as cass-operator declares it (the ports the simulation serves).
fn container(desired: &Desired) -> Value {
    json!({
        "name": "cassandra",
        "image": desired.image,
        "ports": [
            {"name": "native", "containerPort": NATIVE_PORT, "protocol": "TCP"},
            {"name": "internode", "containerPort": INTERNODE_PORT, "protocol": "TCP"},
            {"name": "mgmt-api-http", "containerPort": MANAGEMENT_API_PORT, "protocol": "TCP"},
        ],
        "env": [{"name": "RACK_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['cassandra.datastax.com/rack']"}}},
                {"name": "DS_LICENSE", "value": "accept"},
                {"name": "USE_MGMT_API", "value": "true"},
                {"name": "MGMT_API_EXPLICIT_START", "value": "true"}],
    })
}
