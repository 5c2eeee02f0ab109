//! Deletion: what a deleted cluster made, region by region, until nothing is left.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use tracing::{info, warn};

use crate::api::cassdc::CassandraDatacenter;
use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::clusters::RegionError;
use crate::federation::observed::known_contexts;
use crate::workload::labels::{ORPHAN_ANNOTATION, ownership_selector};

use super::context::*;
use super::write::{delete_labelled, generated_config_maps};

/// Deletes every remote CassandraDatacenter labelled for this cluster, region by region. Ok
/// (the finalizer goes) only when none is left, or when the user asked to orphan them.
pub(super) async fn cleanup_cluster(
    k8c: &K8ssandraCluster,
    api: &Api<K8ssandraCluster>,
    context: &ControllerContext,
) -> Result<Action, ReconcileError> {
    context.referenced.set(&ObjectRef::from_obj(k8c), Default::default());
    let namespace = k8c.namespace().unwrap_or_default();
    let name = k8c.name_any();
    // A write still under way could re-create what the cleanup deletes (and would leave its
    // outcome behind): let it end first.
    let busy = context.operations.busy_regions(&ObjectRef::from_obj(k8c));
    if !busy.is_empty() {
        return Err(ReconcileError::CleanupPending {
            namespace,
            name,
            pending: format!("writes still under way in regions {busy:?}"),
        });
    }
    if annotation_is_true(k8c, ORPHAN_ANNOTATION) {
        // The datacenters left behind keep their secrets: the ReplicatedSecret leaves its copies.
        crate::federation::secrets::orphan_copies(&context.hub, k8c).await.map_err(|pending| {
            ReconcileError::CleanupPending {
                namespace: namespace.clone(),
                name: name.clone(),
                pending,
            }
        })?;
        info!(k8ssandra_cluster = %name, namespace = %namespace, "orphan annotation: remote datacenters left in place");
        forget_cluster(context, k8c);
        return Ok(Action::await_change());
    }
    let selector = ownership_selector(&name, &namespace);
    // Regions where a datacenter has run (per the status); an unknown context only the spec
    // names (a typo, never used) holds nothing to clean up.
    let canonical = |c: String| context.registry.canonical(&c).to_string();
    let used: BTreeSet<String> =
        (known_contexts(k8c.status.as_ref()).into_values()).map(canonical).collect();
    let regions: BTreeSet<String> = cluster_contexts(k8c).into_iter().map(canonical).collect();
    let cleanups = regions.into_iter().map(|region| {
        let used = used.contains(&region);
        cleanup_region(context, region, used, &selector)
    });
    let pending: Vec<String> =
        futures::future::join_all(cleanups).await.into_iter().flatten().collect();
    if pending.is_empty() {
        forget_cluster(context, k8c);
        return Ok(Action::await_change());
    }
    let pending = pending.join("; ");
    let mut status = k8c.status.clone().unwrap_or_default();
    status.error = Some(format!("deleting: {pending}"));
    write_status(api, k8c, status).await?;
    Err(ReconcileError::CleanupPending {
        namespace,
        name,
        pending,
    })
}

/// Drops what this process kept for a deleted cluster: its writes' outcomes, the passwords read
/// for it, the DNS answers only it used, its fan-out metric.
pub(super) fn forget_cluster(context: &ControllerContext, k8c: &K8ssandraCluster) {
    let (namespace, name) = (k8c.namespace().unwrap_or_default(), k8c.name_any());
    context.operations.forget(&ObjectRef::from_obj(k8c));
    context.keyspace_memo.forget(&ObjectRef::from_obj(k8c));
    context.reaper_registrations.forget(&ObjectRef::from_obj(k8c));
    context.rebuilds_ended.forget(&ObjectRef::from_obj(k8c));
    context.secret_caches.passwords.forget_cluster(&namespace, &name);
    if let Ok(resolver) = &context.resolver {
        resolver.forget_cluster(&format!("{namespace}/{name}"));
    }
    context.ops.metrics.fanout_forget(&format!("{namespace}/{name}"));
}

/// What is still in the way of deleting the cluster in this region (empty when nothing is).
pub(super) async fn cleanup_region(
    context: &ControllerContext,
    region: String,
    used: bool,
    selector: &str,
) -> Option<String> {
    let client = match context.registry.client(&region) {
        Ok(client) => client,
        Err(RegionError::UnknownContext { .. }) if !used => return None,
        Err(error) => return Some(format!("region {region:?} cannot be reached: {error}")),
    };
    let namespaces = context.registry.namespaces(&region);
    if let Err(error) =
        crate::federation::components::delete_all(&client, namespaces, selector).await
    {
        return Some(format!("region {region:?}: {error}"));
    }
    if let Err(error) = delete_labelled::<EndpointSlice>(&client, namespaces, selector).await {
        return Some(format!(
            "deleting seed EndpointSlices in region {region:?}: {error}"
        ));
    }
    if let Err(error) =
        delete_labelled::<ConfigMap>(&client, namespaces, &generated_config_maps(selector)).await
    {
        return Some(format!(
            "deleting generated ConfigMaps in region {region:?}: {error}"
        ));
    }
    if let Err(error) = super::rebuild::delete_tasks(&client, namespaces, selector).await {
        return Some(format!(
            "deleting rebuild CassandraTasks in region {region:?}: {error}"
        ));
    }
    let api: Api<CassandraDatacenter> = Api::all(client.clone());
    let remaining = match api.list(&ListParams::default().labels(selector)).await {
        Ok(list) => list.items,
        Err(error) => return Some(format!("listing in region {region:?}: {error}")),
    };
    if remaining.is_empty() {
        return None;
    }
    let mut names = Vec::new();
    for dc in &remaining {
        let dc_namespace = dc.namespace().unwrap_or_default();
        let dc_name = dc.name_any();
        let namespaced: Api<CassandraDatacenter> = Api::namespaced(client.clone(), &dc_namespace);
        let mut seen = Some(&dc.metadata);
        let deleting;
        if dc.metadata.deletion_timestamp.is_none() {
            match namespaced.delete(&dc_name, &DeleteParams::default()).await {
                Ok(deleted) => match deleted.left() {
                    Some(dc) => {
                        deleting = dc;
                        seen = Some(&deleting.metadata);
                    }
                    None => seen = None,
                },
                Err(error) => {
                    warn!(region = %region, datacenter = %dc_name, error = %error, "deleting a remote CassandraDatacenter");
                }
            }
        }
        if let Some(seen) = seen
            && let Err(error) =
                crate::federation::takeover::release(&namespaced, &dc_name, Some(seen)).await
        {
            warn!(region = %region, datacenter = %dc_name, error = %error, "removing k8ssandra-operator's finalizer");
        }
        names.push(format!("{dc_namespace}/{dc_name}"));
    }
    Some(format!(
        "region {region:?} still has CassandraDatacenter {}",
        names.join(", ")
    ))
}
