//! Apply: the datacenters' writes with the generated ConfigMaps they mount, per region in tasks
//! of their own behind the operator's write fence.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use tracing::debug;

use crate::api::cassdc::CassandraDatacenter;
use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::apply::{apply_if_changed, pending_apply_to, send_apply};
use crate::clusters::{FailureCategory, RegionError, RegionFailure};
use crate::federation::notices::{DatacenterOutcome, Outcome};
use crate::federation::observed::{LiveDatacenter, ObservedCluster};
use crate::federation::plan::{
    ClusterKey, ClusterPlan, DatacenterPlan, GENERATED_CONFIG_HASH_ANNOTATION,
};
use crate::federation::progressive::{RESTART_HASH_ANNOTATION, RESTARTED_AT_ANNOTATION};
use crate::federation::rebuild::{REBUILD_DC_ANNOTATION, rebuild_when_created};
use crate::federation::rollout::{Actions, Decision};
use crate::workload::labels::{DECOMMISSION_ON_DELETE_ANNOTATION, ownership_selector};

use super::context::*;
use super::rebuild::keeps_rebuild_mark;

/// One remote write decided by a reconcile, with everything it needs (it may outlive it).
pub(super) enum Operation {
    Apply {
        namespace: String,
        datacenter: String,
        /// What to send (or why it could not be made).
        body: Result<Box<serde_json::value::RawValue>, serde_json::Error>,
        /// Whether the datacenter exists (the apply updates rather than creates it).
        exists: bool,
        /// The generated ConfigMaps its pods mount (initial tokens, Vector's and the metrics
        /// agent's configuration), applied before it: a pod must find them at its first start.
        config_maps: Vec<ConfigMap>,
        /// Generated ConfigMaps the live datacenter mounts and this write stops mounting,
        /// deleted with it (one whose update waits, as a rollout queues it, keeps them).
        dropped_config_maps: Vec<String>,
    },
    Delete {
        namespace: String,
        datacenter: String,
        annotate_first: bool,
    },
}

/// How long a reconcile waits for its region writes before it goes on: fast regions are
/// reported by the same reconcile, a slow one finishes on its own and re-queues the cluster.
pub(super) const WRITE_GRACE: Duration = Duration::from_millis(50);

/// Starts the creates, updates and deletes as decided, one task per region, and waits for them
/// at most [`WRITE_GRACE`]. A region whose previous writes are still under way is skipped: their
/// end re-queues the cluster, which then decides again. So one slow region never holds up the
/// others, nor the next change.
pub(super) async fn act(
    context: &Arc<ControllerContext>,
    key: &ObjectRef<K8ssandraCluster>,
    cluster_plan: &ClusterPlan,
    observed: &ObservedCluster,
    actions: &Actions,
) {
    // Regions whose writes are under way are decided again when those end (their end re-queues
    // the cluster): no body is made for them now.
    let busy: std::collections::HashSet<String> =
        context.operations.busy_regions(key).into_iter().collect();
    if !busy.is_empty() {
        debug!(k8ssandra_cluster = %key, regions = ?busy, "writes still under way there");
    }
    let mut by_region: BTreeMap<String, Vec<Operation>> = BTreeMap::new();
    for decision in &actions.decisions {
        if busy.contains(&decision.context) {
            continue;
        }
        let operation = match &decision.decision {
            Decision::Create | Decision::Update => {
                let Some(planned) = cluster_plan.datacenter(&decision.datacenter) else {
                    continue;
                };
                let live = observed.get(&decision.datacenter).and_then(|o| o.state.present());
                let mut desired = datacenter_body(&planned.datacenter, &decision.namespace);
                // A datacenter the system keyspaces do not replicate to yet streams no
                // `system_auth` as its nodes join: it is rebuilt once they do.
                let in_system_keyspaces = || {
                    let dc_name = planned.cassandra_datacenter_name.as_str();
                    context.keyspace_memo.replicates_to(key, "system_auth", dc_name).unwrap_or_else(
                        || cluster_plan.initial_system_replication.contains_key(dc_name),
                    )
                };
                let created_beside_running = live.is_none()
                    && rebuild_when_created(observed, &decision.datacenter)
                    && !in_system_keyspaces();
                let rebuilt = |dc: &str| context.rebuilds_ended.ended_recently(key, dc);
                if let Some(restart) = &decision.restart {
                    let annotations = desired.metadata.annotations.get_or_insert_default();
                    annotations.insert(RESTART_HASH_ANNOTATION.to_string(), restart.hash.clone());
                    annotations.insert(
                        RESTARTED_AT_ANNOTATION.to_string(),
                        restart.changed_at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    );
                }
                if keeps_rebuild_mark(live, created_beside_running, rebuilt) {
                    desired.metadata.annotations.get_or_insert_default().insert(
                        REBUILD_DC_ANNOTATION.to_string(),
                        decision.datacenter.clone(),
                    );
                }
                let pending = live
                    .map(LiveDatacenter::to_value)
                    .transpose()
                    .and_then(|live| pending_apply_to(&desired, live.as_ref()));
                let body = match pending {
                    Ok(Some(body)) => Ok(body),
                    Ok(None) => continue,
                    Err(error) => Err(error),
                };
                let dropped_config_maps = (planned.dropped_config_maps.iter())
                    .filter(|name| live.is_some_and(|l| l.spec_mentions(&format!("\"{name}\""))))
                    .cloned()
                    .collect();
                Operation::Apply {
                    namespace: decision.namespace.clone(),
                    datacenter: decision.datacenter.clone(),
                    body,
                    exists: live.is_some(),
                    config_maps: match generated_config_maps_current(planned, live) {
                        true => Vec::new(),
                        false => {
                            planned.generated_config_maps().map(|c| c.to_config_map()).collect()
                        }
                    },
                    dropped_config_maps,
                }
            }
            Decision::Delete { annotate_first } => Operation::Delete {
                namespace: decision.namespace.clone(),
                datacenter: decision.datacenter.clone(),
                annotate_first: *annotate_first,
            },
            Decision::Wait(_) | Decision::Blocked(_) => continue,
        };
        by_region.entry(decision.context.clone()).or_default().push(operation);
    }
    let mut started = Vec::new();
    for (region, operations) in by_region {
        if !context.operations.start(key, &region) {
            debug!(k8ssandra_cluster = %key, region = %region, "writes still under way there");
            continue;
        }
        let context = context.clone();
        let key = key.clone();
        let cluster = cluster_plan.cluster.clone();
        let fence = context.fence.clone();
        started.push(fence.spawn(async move {
            let outcomes = run_region_operations(&context, &cluster, &region, operations).await;
            let changed = !outcomes.is_empty();
            context.operations.finish(&key, &region, outcomes);
            if changed {
                let _ = context.completions.unbounded_send(key);
            }
        }));
    }
    let _ = tokio::time::timeout(WRITE_GRACE, futures::future::join_all(started)).await;
}

/// Carries out one region's writes, in parallel; returns what happened.
pub(super) async fn run_region_operations(
    context: &ControllerContext,
    cluster: &ClusterKey,
    region: &str,
    operations: Vec<Operation>,
) -> Vec<Outcome> {
    let client = context.registry.client(region);
    let writes = operations.into_iter().map(|operation| {
        let client = client.as_ref();
        async move {
            let outcome = |namespace: &str, datacenter: &str, outcome| Outcome {
                datacenter: datacenter.to_string(),
                context: region.to_string(),
                namespace: namespace.to_string(),
                outcome,
            };
            let failure = |doing: &str, namespace: &str, datacenter: &str, error: WriteError| {
                let doing = format!("{doing} CassandraDatacenter {namespace}/{datacenter}");
                match error {
                    WriteError::ConfigMap(what, e) => RegionFailure::kube(region, what, &e),
                    WriteError::Region(e) => RegionFailure::region(region, doing, e),
                    WriteError::Kube(e) => RegionFailure::kube(region, doing, &e),
                    WriteError::Body(e) => {
                        RegionFailure::new(region, doing, FailureCategory::Internal, e)
                    }
                }
            };
            match operation {
                Operation::Apply {
                    namespace,
                    datacenter,
                    body,
                    exists,
                    config_maps,
                    dropped_config_maps,
                } => {
                    let applied = match (client, body) {
                        (Ok(client), Ok(body)) => {
                            let mounted = converge_config_maps(
                                client,
                                cluster,
                                &namespace,
                                &config_maps,
                                &dropped_config_maps,
                            )
                            .await;
                            match mounted {
                                Err(e) => Err(e),
                                Ok(()) => {
                                    let api: Api<CassandraDatacenter> =
                                        Api::namespaced(client.clone(), &namespace);
                                    send_apply(&api, FIELD_MANAGER, &datacenter, &body)
                                        .await
                                        .map_err(WriteError::Kube)
                                }
                            }
                        }
                        (Err(e), _) => Err(WriteError::Region(e)),
                        (_, Err(e)) => Err(WriteError::Body(e)),
                    };
                    let result = match applied {
                        Ok(()) if exists => DatacenterOutcome::Updated,
                        Ok(()) => DatacenterOutcome::Created,
                        Err(e) => DatacenterOutcome::ApplyFailed(failure(
                            "applying",
                            &namespace,
                            &datacenter,
                            e,
                        )),
                    };
                    outcome(&namespace, &datacenter, result)
                }
                Operation::Delete {
                    namespace,
                    datacenter,
                    annotate_first,
                } => {
                    let deleted = match client {
                        Ok(client) => delete_datacenter(
                            client,
                            cluster,
                            &namespace,
                            &datacenter,
                            annotate_first,
                        )
                        .await
                        .map_err(WriteError::Kube),
                        Err(e) => Err(WriteError::Region(e)),
                    };
                    let result = match deleted {
                        Ok(()) => DatacenterOutcome::Deleted,
                        Err(e) => DatacenterOutcome::DeleteFailed(failure(
                            "deleting",
                            &namespace,
                            &datacenter,
                            e,
                        )),
                    };
                    outcome(&namespace, &datacenter, result)
                }
            }
        }
    });
    futures::future::join_all(writes).await
}

/// The live datacenter was written with the ConfigMaps the plan generates now: they are in
/// place (their hash is on it), so they are not written again.
fn generated_config_maps_current(planned: &DatacenterPlan, live: Option<&LiveDatacenter>) -> bool {
    let Some(live) = live else {
        return false;
    };
    let wanted = planned.generated_config_hash();
    wanted.is_some() && live.annotation(GENERATED_CONFIG_HASH_ANNOTATION) == wanted
}

/// Why one datacenter write failed, until it is told as a [`RegionFailure`].
enum WriteError<'a> {
    Region(&'a RegionError),
    Kube(kube::Error),
    Body(serde_json::Error),
    /// A generated ConfigMap it mounts: what was being done to it.
    ConfigMap(String, kube::Error),
}

/// Before a datacenter's write, in its region's task: deletes the generated ConfigMaps it stops
/// mounting (only Federator's: one of that name may be someone else's), then applies the ones
/// it mounts.
async fn converge_config_maps<'a>(
    client: &kube::Client,
    cluster: &ClusterKey,
    namespace: &str,
    config_maps: &[ConfigMap],
    dropped: &[String],
) -> Result<(), WriteError<'a>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    for name in dropped {
        let failed = |e| WriteError::ConfigMap(format!("deleting ConfigMap {namespace}/{name}"), e);
        let found = api.get_opt(name).await.map_err(failed)?;
        let ours = found.is_some_and(|found| {
            crate::workload::labels::is_owned_by(
                Some(found.labels()),
                &cluster.name,
                &cluster.namespace,
            )
        });
        if ours {
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(response)) if response.is_not_found() => {}
                Err(error) => return Err(failed(error)),
            }
        }
    }
    for config_map in config_maps {
        let name = config_map.name_any();
        let failed = |e| WriteError::ConfigMap(format!("applying ConfigMap {namespace}/{name}"), e);
        let live = api.get_opt(&name).await.map_err(failed)?;
        apply_if_changed(&api, FIELD_MANAGER, config_map, live.as_ref()).await.map_err(failed)?;
    }
    Ok(())
}

/// The object applied for a datacenter: the plan's, in its namespace, without status.
pub(super) fn datacenter_body(
    desired: &CassandraDatacenter,
    namespace: &str,
) -> CassandraDatacenter {
    let mut body = desired.clone();
    // Status belongs to cass-operator.
    body.status = None;
    body.metadata.namespace = Some(namespace.to_string());
    body
}

pub(super) async fn delete_datacenter(
    client: &kube::Client,
    cluster: &ClusterKey,
    namespace: &str,
    name: &str,
    annotate_first: bool,
) -> Result<(), kube::Error> {
    // Its seed slices go with it (the other datacenters' slices drop its seeds by themselves).
    let selector = format!(
        "{},{}={name}",
        ownership_selector(&cluster.name, &cluster.namespace),
        crate::api::shared::DATACENTER_NAME_LABEL
    );
    let only = [namespace.to_string()];
    delete_labelled::<EndpointSlice>(client, &only, &selector).await?;
    delete_labelled::<ConfigMap>(client, &only, &generated_config_maps(&selector)).await?;
    let api: Api<CassandraDatacenter> = Api::namespaced(client.clone(), namespace);
    if annotate_first {
        // cass-operator decommissions the nodes (each leaves the ring) only when asked.
        let annotation = serde_json::json!({
            "metadata": {"annotations": {DECOMMISSION_ON_DELETE_ANNOTATION: "true"}}
        });
        api.patch(name, &PatchParams::default(), &Patch::Merge(&annotation)).await?;
    }
    match api.delete(name, &DeleteParams::default()).await {
        // Still there, held by finalizers: k8ssandra-operator's would never go by itself.
        Ok(deleted) => match deleted.left() {
            Some(deleting) => {
                crate::federation::takeover::release(&api, name, Some(&deleting.metadata)).await
            }
            None => Ok(()),
        },
        Err(kube::Error::Api(response)) if response.is_not_found() => Ok(()),
        Err(error) => Err(error),
    }
}

/// `selector` narrowed to the generated ConfigMaps (the data plane makes ConfigMaps too).
pub(super) fn generated_config_maps(selector: &str) -> String {
    format!(
        "{selector},{}",
        crate::workload::generated::GENERATED_CONFIG_MAP_SELECTOR
    )
}

/// Deletes every object of kind `K` matching `selector` in `namespaces` (none: everywhere).
pub(super) async fn delete_labelled<K>(
    client: &kube::Client,
    namespaces: &[String],
    selector: &str,
) -> Result<usize, kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let listing: Api<K> = crate::cache::scoped(client, namespaces);
    let found = listing.list(&ListParams::default().labels(selector)).await?;
    let count = found.items.len();
    for object in found.items {
        let api: Api<K> = Api::namespaced(client.clone(), &object.namespace().unwrap_or_default());
        match api.delete(&object.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(response)) if response.is_not_found() => {}
            Err(error) => return Err(error),
        }
    }
    Ok(count)
}
