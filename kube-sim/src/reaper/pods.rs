//! The pod of each Reaper Deployment. kube-sim's Deployment controller only reports replicas
//! ready and makes no Pods; Reaper is reached at a pod (pod proxy, Service proxy, pod IP), so
//! Deployments labelled [`REAPER_LABEL`] get one Running, Ready pod from their template, with a
//! loopback address from the Sim's pod addresses, owned by the Deployment (the garbage
//! collector removes it with the Deployment). A changed template replaces the pod; replicas 0
//! removes it. Only labelled Deployments are watched, so others cost nothing.

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
/// How often the Deployments are listed again besides the watch (a deleted pod comes back).
const RESYNC: Duration = Duration::from_secs(2);

/// Keeps the pods of one region's Reaper Deployments until the store goes.
pub fn spawn(store: Arc<Store>, wiring: Arc<Wiring>) -> tokio::task::JoinHandle<()> {
    let store = Arc::downgrade(&store);
    tokio::spawn(async move {
        loop {
            let Some(strong) = store.upgrade() else {
                return;
            };
            let Some(resource_version) = sync_all(&strong, &wiring) else {
                drop(strong);
                tokio::time::sleep(RESYNC).await;
                continue;
            };
            let Some(info) = strong.resource("apps", "deployments") else {
                return;
            };
            let options = WatchOptions {
                label_selector: Some(REAPER_LABEL.into()),
                resource_version: Some(resource_version),
                ..WatchOptions::default()
            };
            let Ok(mut events) = strong.watch(&info, None, &options) else {
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
                    event = events.next() => {
                        let Some(event) = event else { break };
                        if matches!(event.event_type, "ADDED" | "MODIFIED")
                            && let Some(strong) = store.upgrade()
                        {
                            sync_deployment(&strong, &wiring, &event.object);
                        }
                    }
                }
            }
        }
    })
}

/// Syncs every labelled Deployment; the list's resourceVersion.
fn sync_all(store: &Store, wiring: &Wiring) -> Option<String> {
    let info = store.resource("apps", "deployments")?;
    let options = ListOptions {
        label_selector: Some(REAPER_LABEL.into()),
        ..ListOptions::default()
    };
    let list = store.list(&info, None, &options).ok()?;
    for deployment in list.get("items").and_then(Value::as_array).into_iter().flatten() {
        sync_deployment(store, wiring, deployment);
    }
    Some(list.pointer("/metadata/resourceVersion")?.as_str()?.to_string())
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
        } else if let Err(error) =
            store.delete(&pods, Some(namespace), existing, &DeleteOptions::default())
        {
            tracing::debug!(pod = existing, %error, "Reaper pod");
        }
    }
    if !wanted || present {
        return;
    }
    let Some(ip) = wiring.addresses.allocate() else {
        return;
    };
    let mut labels = template.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({}));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert("pod-template-hash".into(), json!(template_hash));
    }
    let object = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                 "uid": uid, "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    });
    let options = WriteOptions {
        field_manager: Some(MANAGER.into()),
        ..WriteOptions::default()
    };
    if let Err(error) = store.create(&pods, Some(namespace), object, &options) {
        tracing::debug!(pod = pod_name, %error, "Reaper pod");
        return;
    }
    let now = crate::now_rfc3339();
    let status = json!({"status": {
        "phase": "Running",
        "podIP": ip.to_string(),
        "podIPs": [{"ip": ip.to_string()}],
        "hostIP": "127.0.0.1",
        "startTime": now,
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ],
    }});
    let status_options = WriteOptions {
        subresource_status: true,
        ..options
    };
    if let Err(error) = store.patch(
        &pods,
        Some(namespace),
        &pod_name,
        PatchType::Merge,
        status.to_string().as_bytes(),
        &status_options,
    ) {
        tracing::debug!(pod = pod_name, %error, "Reaper pod status");
    }
}
