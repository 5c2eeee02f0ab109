//! The pods of each Reaper Deployment and StatefulSet. kube-sim's Deployment and StatefulSet
//! controllers only report replicas ready and make no Pods; Reaper is reached at a pod (pod
//! proxy, Service proxy, pod IP), so Deployments and StatefulSets labelled [`REAPER_LABEL`] get
//! Running, Ready pods from their template, with a loopback address from the Sim's pod
//! addresses, owned by their workload (the garbage collector removes them with it). A pod whose
//! Reaper cannot start (a TLS store missing, see [`super::server_tls`]) is not Ready until it
//! can, checked at every resync (the workloads still report their replicas ready).
//!
//! A Deployment gets one pod `<name>-<template hash>`: a changed template replaces it, replicas
//! 0 removes it. A StatefulSet gets pods `<name>-<ordinal>` as kube-controller-manager makes
//! them: each volume claim template becomes a PersistentVolumeClaim `<claim>-<name>-<ordinal>`
//! (Bound) that the pod mounts under the template's name; it is owned by the StatefulSet when
//! its `persistentVolumeClaimRetentionPolicy.whenDeleted` is `Delete` (removed with it), and
//! kept otherwise. A changed template replaces the pods under the same names, keeping their
//! claims. Only labelled workloads are watched, so others cost nothing.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use super::REAPER_LABEL;
use crate::cass_operator::Wiring;
use crate::store::{DeleteOptions, ListOptions, PatchType, Store, WatchOptions, WriteOptions};

const MANAGER: &str = "kube-sim-reaper-pods";
/// How often the workloads are listed again besides the watch (a deleted pod comes back).
const RESYNC: Duration = Duration::from_secs(2);
/// The label of a StatefulSet pod's revision.
const REVISION_LABEL: &str = "controller-revision-hash";

/// Keeps the pods of one region's Reaper Deployments and StatefulSets until the store goes.
pub fn spawn(store: Arc<Store>, wiring: Arc<Wiring>) -> tokio::task::JoinHandle<()> {
    let store = Arc::downgrade(&store);
    tokio::spawn(async move {
        loop {
            let Some(strong) = store.upgrade() else {
                return;
            };
            let Some([deployments_version, sets_version]) = sync_all(&strong, &wiring) else {
                drop(strong);
                tokio::time::sleep(RESYNC).await;
                continue;
            };
            let (Some(deployments), Some(sets)) = (
                strong.resource("apps", "deployments"),
                strong.resource("apps", "statefulsets"),
            ) else {
                return;
            };
            let options = |resource_version: String| WatchOptions {
                label_selector: Some(REAPER_LABEL.into()),
                resource_version: Some(resource_version),
                ..WatchOptions::default()
            };
            let watched = strong
                .watch(&deployments, None, &options(deployments_version))
                .and_then(|d| Ok((d, strong.watch(&sets, None, &options(sets_version))?)));
            let Ok((mut deployment_events, mut set_events)) = watched else {
                drop(strong);
                tokio::time::sleep(RESYNC).await;
                continue;
            };
            drop(strong);
            let deadline = tokio::time::sleep(RESYNC);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    event = deployment_events.next() => {
                        let Some(event) = event else { break };
                        if matches!(event.event_type, "ADDED" | "MODIFIED")
                            && let Some(strong) = store.upgrade()
                        {
                            sync_deployment(&strong, &wiring, &event.object);
                        }
                    }
                    event = set_events.next() => {
                        let Some(event) = event else { break };
                        if matches!(event.event_type, "ADDED" | "MODIFIED")
                            && let Some(strong) = store.upgrade()
                        {
                            sync_stateful_set(&strong, &wiring, &event.object);
                        }
                    }
                }
            }
        }
    })
}

/// Syncs every labelled Deployment and StatefulSet; the lists' resourceVersions.
fn sync_all(store: &Store, wiring: &Wiring) -> Option<[String; 2]> {
    let options = ListOptions {
        label_selector: Some(REAPER_LABEL.into()),
        ..ListOptions::default()
    };
    let mut versions = Vec::new();
    for plural in ["deployments", "statefulsets"] {
        let info = store.resource("apps", plural)?;
        let list = store.list(&info, None, &options).ok()?;
        for workload in list.get("items").and_then(Value::as_array).into_iter().flatten() {
            if plural == "deployments" {
                sync_deployment(store, wiring, workload);
            } else {
                sync_stateful_set(store, wiring, workload);
            }
        }
        versions.push(list.pointer("/metadata/resourceVersion")?.as_str()?.to_string());
    }
    versions.try_into().ok()
}

fn text<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

fn sync_deployment(store: &Store, wiring: &Wiring, deployment: &Value) {
    let (Some(namespace), Some(name), Some(uid)) = (
        text(deployment, "/metadata/namespace"),
        text(deployment, "/metadata/name"),
        text(deployment, "/metadata/uid"),
    ) else {
        return;
    };
    let Some(pods) = store.resource("", "pods") else {
        return;
    };
    let template = deployment.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    let mut hasher = DefaultHasher::new();
    template.to_string().hash(&mut hasher);
    let template_hash = format!("{:010x}", hasher.finish() & 0xff_ffff_ffff);
    let wanted = deployment.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1) > 0
        && deployment.pointer("/metadata/deletionTimestamp").is_none();
    let pod_name = format!("{name}-{template_hash}");
    let owned = store.list(&pods, Some(namespace), &ListOptions::default()).ok();
    let mut present = false;
    for pod in owned.iter().filter_map(|l| l.get("items")?.as_array()).flatten() {
        let owner_uid = pod.pointer("/metadata/ownerReferences/0/uid").and_then(Value::as_str);
        let Some(existing) = text(pod, "/metadata/name") else {
            continue;
        };
        if owner_uid != Some(uid) {
            continue;
        }
        if wanted && existing == pod_name {
            present = true;
            refresh_readiness(store, namespace, pod);
        } else if let Err(error) =
            store.delete(&pods, Some(namespace), existing, &DeleteOptions::default())
        {
            tracing::debug!(pod = existing, %error, "Reaper pod");
        }
    }
    if !wanted || present {
        return;
    }
    let mut labels = template.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({}));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert("pod-template-hash".into(), json!(template_hash));
    }
    let owner = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                       "uid": uid, "controller": true, "blockOwnerDeletion": true});
    let spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    start_pod(store, wiring, namespace, &pod_name, labels, owner, spec);
}

/// The pods `<name>-<ordinal>` of a StatefulSet, each with its claims.
fn sync_stateful_set(store: &Store, wiring: &Wiring, stateful_set: &Value) {
    let (Some(namespace), Some(name), Some(uid)) = (
        text(stateful_set, "/metadata/namespace"),
        text(stateful_set, "/metadata/name"),
        text(stateful_set, "/metadata/uid"),
    ) else {
        return;
    };
    let (Some(pods), Some(claims)) = (
        store.resource("", "pods"),
        store.resource("", "persistentvolumeclaims"),
    ) else {
        return;
    };
    let template = stateful_set.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    let mut hasher = DefaultHasher::new();
    template.to_string().hash(&mut hasher);
    let revision = format!("{name}-{:010x}", hasher.finish() & 0xff_ffff_ffff);
    let replicas = if stateful_set.pointer("/metadata/deletionTimestamp").is_some() {
        0
    } else {
        stateful_set.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1).max(0)
    };
    let owner = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
                       "uid": uid, "controller": true, "blockOwnerDeletion": true});
    let claim_templates: Vec<Value> = (stateful_set.pointer("/spec/volumeClaimTemplates"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let owned_claims = stateful_set
        .pointer("/spec/persistentVolumeClaimRetentionPolicy/whenDeleted")
        .and_then(Value::as_str)
        == Some("Delete");
    let options = WriteOptions {
        field_manager: Some(MANAGER.into()),
        ..WriteOptions::default()
    };
    let listed = store.list(&pods, Some(namespace), &ListOptions::default()).ok();
    let mut present = Vec::new();
    for pod in listed.iter().filter_map(|l| l.get("items")?.as_array()).flatten() {
        let owner_uid = pod.pointer("/metadata/ownerReferences/0/uid").and_then(Value::as_str);
        let Some(existing) = text(pod, "/metadata/name") else {
            continue;
        };
        if owner_uid != Some(uid) {
            continue;
        }
        let ordinal = existing
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|n| n.parse::<i64>().ok());
        let current = pod
            .pointer("/metadata/labels")
            .and_then(|l| l.get(REVISION_LABEL))
            .and_then(Value::as_str)
            == Some(revision.as_str());
        if current && ordinal.is_some_and(|o| o < replicas) {
            present.push(existing.to_string());
            refresh_readiness(store, namespace, pod);
        } else if let Err(error) =
            store.delete(&pods, Some(namespace), existing, &DeleteOptions::default())
        {
            tracing::debug!(pod = existing, %error, "Reaper pod");
        }
    }
    for ordinal in 0..replicas {
        let pod_name = format!("{name}-{ordinal}");
        if present.contains(&pod_name) {
            continue;
        }
        let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
        for claim_template in &claim_templates {
            let Some(claim_name) = text(claim_template, "/metadata/name") else {
                continue;
            };
            let claim = format!("{claim_name}-{pod_name}");
            if store.get(&claims, Some(namespace), &claim).is_err() {
                let mut metadata = json!({
                    "name": claim,
                    "namespace": namespace,
                    "labels": claim_template.pointer("/metadata/labels").cloned()
                        .unwrap_or_else(|| json!({})),
                });
                if owned_claims {
                    metadata["ownerReferences"] = json!([owner.clone()]);
                }
                let object = json!({
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": metadata,
                    "spec": claim_template.get("spec").cloned().unwrap_or_else(|| json!({})),
                });
                match store.create(&claims, Some(namespace), object, &options) {
                    Ok(_) => {
                        let bound = json!({"status": {"phase": "Bound"}}).to_string();
                        let status_options = WriteOptions {
                            subresource_status: true,
                            ..options.clone()
                        };
                        let patched = store.patch(
                            &claims,
                            Some(namespace),
                            &claim,
                            PatchType::Merge,
                            bound.as_bytes(),
                            &status_options,
                        );
                        if let Err(error) = patched {
                            tracing::debug!(claim, %error, "Reaper claim status");
                        }
                    }
                    Err(error) => {
                        tracing::debug!(claim, %error, "Reaper claim");
                        return;
                    }
                }
            }
            // As kube-controller-manager: the template's volume of that name is the claim.
            let volume = json!({"name": claim_name, "persistentVolumeClaim": {"claimName": claim}});
            let volumes = spec.as_object_mut().map(|s| s.entry("volumes").or_insert(json!([])));
            if let Some(Value::Array(volumes)) = volumes {
                volumes.retain(|v| v.get("name").and_then(Value::as_str) != Some(claim_name));
                volumes.push(volume);
            }
        }
        let mut labels = template.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({}));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(REVISION_LABEL.into(), json!(revision));
            labels.insert("statefulset.kubernetes.io/pod-name".into(), json!(pod_name));
        }
        start_pod(
            store,
            wiring,
            namespace,
            &pod_name,
            labels,
            owner.clone(),
            spec,
        );
    }
}

/// Creates a pod and reports it Running at a new address, Ready when its Reaper starts.
fn start_pod(
    store: &Store,
    wiring: &Wiring,
    namespace: &str,
    pod_name: &str,
    labels: Value,
    owner: Value,
    spec: Value,
) {
    let Some(pods) = store.resource("", "pods") else {
        return;
    };
    let Some(ip) = wiring.addresses.allocate() else {
        return;
    };
    let object = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner],
        },
        "spec": spec,
    });
    let options = WriteOptions {
        field_manager: Some(MANAGER.into()),
        ..WriteOptions::default()
    };
    let started = starts(store, namespace, &object);
    if let Err(error) = store.create(&pods, Some(namespace), object, &options) {
        tracing::debug!(pod = pod_name, %error, "Reaper pod");
        return;
    }
    let now = crate::now_rfc3339();
    let mut status = json!({"status": {
        "phase": "Running",
        "podIP": ip.to_string(),
        "podIPs": [{"ip": ip.to_string()}],
        "hostIP": "127.0.0.1",
        "startTime": now,
    }});
    status["status"]["conditions"] = conditions(started, &now);
    let status_options = WriteOptions {
        subresource_status: true,
        ..options
    };
    if let Err(error) = store.patch(
        &pods,
        Some(namespace),
        pod_name,
        PatchType::Merge,
        status.to_string().as_bytes(),
        &status_options,
    ) {
        tracing::debug!(pod = pod_name, %error, "Reaper pod status");
    }
}

/// Whether the pod's Reaper starts: not when a TLS store it is configured with is missing
/// ([`super::server_tls::of_pod`]), as the real one exits then (and is restarted until the
/// Secret has it).
fn starts(store: &Store, namespace: &str, pod: &Value) -> Result<(), String> {
    super::server_tls::of_pod(store, namespace, pod).map(drop)
}

/// The pod's conditions as kubelet reports them, its container ready or not.
fn conditions(started: Result<(), String>, now: &str) -> Value {
    let (status, reason, message) = match &started {
        Ok(()) => ("True", None, None),
        Err(why) => (
            "False",
            Some("ContainersNotReady"),
            Some(format!("containers with unready status: [reaper] ({why})")),
        ),
    };
    let not_ready = |kind: &str| {
        let mut condition = json!({"type": kind, "status": status, "lastTransitionTime": now});
        if let (Some(reason), Some(message)) = (reason, &message) {
            condition["reason"] = json!(reason);
            condition["message"] = json!(message);
        }
        condition
    };
    json!([
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        not_ready("Ready"),
        not_ready("ContainersReady"),
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
    ])
}

/// Reports the pod Ready once its Reaper can start, and not Ready while it cannot (a Secret
/// created, fixed or broken after the pod started).
fn refresh_readiness(store: &Store, namespace: &str, pod: &Value) {
    let (Some(pods), Some(name)) = (store.resource("", "pods"), text(pod, "/metadata/name")) else {
        return;
    };
    let started = starts(store, namespace, pod);
    let ready = (pod.pointer("/status/conditions").and_then(Value::as_array))
        .into_iter()
        .flatten()
        .any(|c| text(c, "/type") == Some("Ready") && text(c, "/status") == Some("True"));
    if ready == started.is_ok() {
        return;
    }
    let now = crate::now_rfc3339();
    let status = json!({"status": {"conditions": conditions(started, &now)}});
    let options = WriteOptions {
        field_manager: Some(MANAGER.into()),
        subresource_status: true,
        ..WriteOptions::default()
    };
    let patched = store.patch(
        &pods,
        Some(namespace),
        name,
        PatchType::Merge,
        status.to_string().as_bytes(),
        &options,
    );
    if let Err(error) = patched {
        tracing::debug!(pod = name, %error, "Reaper pod readiness");
    }
}
