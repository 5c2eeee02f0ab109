//! Gather: what the regions and the hub hold for a cluster (its datacenters as they are, the
//! ConfigMaps its datacenters reference), read in parallel, each region bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::ListParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};

use crate::api::cassdc::CassandraDatacenter;
use crate::api::k8ssandra_cluster::{K8ssandraCluster, K8ssandraClusterStatus};
use crate::clusters::RegionError;
use crate::federation::observed::{
    LiveDatacenter, ObservedCluster, ObservedDatacenter, RemoteState, known_contexts,
};
use crate::federation::plan::{ClusterKey, ClusterPlan, PlanError, PlanInputs, plan_with};
use crate::workload::labels::{ADOPT_ANNOTATION, ownership_selector};

use super::context::*;

/// Gather, then plan: where the datacenters are comes from the spec and the registry alone (a
/// context that reaches the hub is the hub, ""); what the plan applied reads besides the spec
/// is then read there (what the existing datacenters run with, store passwords, per-node
/// ConfigMaps), and the plan is made from it whole.
pub(super) async fn gather_and_plan(
    context: &Arc<ControllerContext>,
    k8c: &K8ssandraCluster,
) -> Result<(ClusterPlan, ObservedCluster), PlanError> {
    let hub_contexts: BTreeSet<String> =
        cluster_contexts(k8c).into_iter().filter(|c| context.registry.reaches_hub(c)).collect();
    let locating = PlanInputs {
        hub_contexts,
        ..PlanInputs::default()
    };
    let located = plan_with(k8c, &locating)?;
    let adopt = annotation_is_true(k8c, ADOPT_ANNOTATION);
    let (observed, secret_values, per_node_config_hashes, medusa_configuration) = futures::join!(
        observe(context, &located, k8c.status.as_ref(), adopt),
        crate::federation::secrets::read_store_passwords(
            &context.hub,
            &context.secret_caches,
            &located
        ),
        read_user_per_node_config_hashes(context, &located),
        read_medusa_configuration(context, k8c),
    );
    let running = observed.running();
    // With nothing read beyond where the datacenters are, the first plan is the plan.
    if running.num_tokens.is_empty()
        && secret_values.is_empty()
        && per_node_config_hashes.is_empty()
        && medusa_configuration.is_none()
    {
        return Ok((located, observed));
    }
    let inputs = PlanInputs {
        running,
        secret_values,
        per_node_config_hashes,
        medusa_configuration,
        ..locating
    };
    plan_with(k8c, &inputs).map(|cluster_plan| (cluster_plan, observed))
}

/// One datacenter to look up: planned, or removed from the spec but still known.
pub(super) struct Lookup {
    datacenter: String,
    /// Known for planned datacenters; found by label for removed ones.
    namespace: Option<String>,
}

/// Looks at every region in parallel.
pub(super) async fn observe(
    context: &ControllerContext,
    cluster_plan: &ClusterPlan,
    previous: Option<&K8ssandraClusterStatus>,
    adopt: bool,
) -> ObservedCluster {
    let mut by_context: BTreeMap<String, Vec<Lookup>> = BTreeMap::new();
    for dc in &cluster_plan.datacenters {
        by_context.entry(dc.context.clone()).or_default().push(Lookup {
            datacenter: dc.name.clone(),
            namespace: Some(dc.namespace.clone()),
        });
    }
    let owned = context
        .caches
        .owned_datacenters(&cluster_plan.cluster.name, &cluster_plan.cluster.namespace);
    let mut removed: BTreeMap<String, String> = known_contexts(previous);
    removed.extend(owned);
    for (datacenter, region) in removed {
        if cluster_plan.datacenter(&datacenter).is_none() {
            let region = context.registry.canonical(&region).to_string();
            by_context.entry(region).or_default().push(Lookup {
                datacenter,
                namespace: None,
            });
        }
    }
    let lookups = by_context.into_iter().map(|(region, lookups)| {
        observe_region(context, &cluster_plan.cluster, region, lookups, adopt)
    });
    let datacenters = futures::future::join_all(lookups).await.into_iter().flatten().collect();
    ObservedCluster::new(datacenters, previous)
}

pub(super) async fn observe_region(
    context: &ControllerContext,
    cluster: &ClusterKey,
    region_context: String,
    lookups: Vec<Lookup>,
    adopt: bool,
) -> Vec<(String, ObservedDatacenter)> {
    let observed = |lookup: &Lookup, namespace: String, state: RemoteState| {
        (
            lookup.datacenter.clone(),
            ObservedDatacenter {
                context: region_context.clone(),
                namespace,
                state,
            },
        )
    };
    let client = match context.registry.client(&region_context) {
        Ok(client) => client,
        Err(error) => {
            let state = region_state(&error);
            return lookups
                .iter()
                .map(|l| observed(l, l.namespace.clone().unwrap_or_default(), state.clone()))
                .collect();
        }
    };
    let cache = context.caches.region(&region_context);
    // Removed datacenters: their namespace is only known from the objects themselves.
    let owned = if let Some(cache) =
        cache.as_ref().filter(|_| lookups.iter().any(|l| l.namespace.is_none()))
    {
        Some(Ok(cache.datacenters.state_filter(|dc| {
            crate::workload::labels::is_owned_by(
                dc.meta().labels.as_ref(),
                &cluster.name,
                &cluster.namespace,
            )
        })))
    } else if lookups.iter().any(|l| l.namespace.is_none()) {
        let api: Api<CassandraDatacenter> = Api::all(client.clone());
        let selector = ownership_selector(&cluster.name, &cluster.namespace);
        Some(
            api.list(&ListParams::default().labels(&selector)).await.map(|list| {
                list.items.into_iter().map(|dc| Arc::new(LiveDatacenter::from(dc))).collect()
            }),
        )
    } else {
        None
    };
    let mut result = Vec::new();
    for lookup in &lookups {
        let Some(namespace) = &lookup.namespace else {
            let entry = match &owned {
                Some(Ok(items)) => match items.iter().find(|dc| dc.name_any() == lookup.datacenter)
                {
                    Some(dc) => observed(
                        lookup,
                        dc.namespace().unwrap_or_default(),
                        RemoteState::Present(dc.clone()),
                    ),
                    None => observed(lookup, String::new(), RemoteState::Absent),
                },
                Some(Err(error)) => observed(
                    lookup,
                    String::new(),
                    RemoteState::Unreachable {
                        reason: error.to_string(),
                    },
                ),
                None => observed(lookup, String::new(), RemoteState::Absent),
            };
            result.push(entry);
            continue;
        };
        let cached = cache.as_ref().and_then(|cache| {
            cache.datacenters.get(&ObjectRef::new(&lookup.datacenter).within(namespace))
        });
        let state = match cached {
            // Only what Federator made is cached; anything else is looked up (conflicts, adoption).
            Some(dc) => RemoteState::from_lookup(Some(dc), cluster, adopt),
            None => lookup_datacenter(&client, cluster, namespace, &lookup.datacenter, adopt).await,
        };
        result.push(observed(lookup, namespace.clone(), state));
    }
    result
}

pub(super) async fn lookup_datacenter(
    client: &kube::Client,
    cluster: &ClusterKey,
    namespace: &str,
    datacenter: &str,
    adopt: bool,
) -> RemoteState {
    let api: Api<CassandraDatacenter> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(datacenter).await {
        Ok(Some(found)) => RemoteState::from_lookup(Some(Arc::new(found.into())), cluster, adopt),
        Ok(None) => {
            // Federator does not create namespaces: a missing one is the user's to fix. One
            // being deleted refuses new content (403) until it is gone: missing as well.
            let namespaces: Api<Namespace> = Api::all(client.clone());
            match namespaces.get_opt(namespace).await {
                Ok(Some(found)) if found.metadata.deletion_timestamp.is_none() => {
                    RemoteState::Absent
                }
                Ok(_) => RemoteState::NamespaceMissing,
                Err(error) => RemoteState::Unreachable {
                    reason: error.to_string(),
                },
            }
        }
        Err(error) => RemoteState::Unreachable {
            reason: error.to_string(),
        },
    }
}

pub(super) fn region_state(error: &RegionError) -> RemoteState {
    match error {
        RegionError::UnknownContext { .. } => RemoteState::UnknownContext,
        RegionError::Unavailable { reason, .. } | RegionError::Misconfigured { reason, .. } => {
            RemoteState::Unreachable {
                reason: reason.clone(),
            }
        }
    }
}

/// The content hash of each datacenter's `perNodeConfigMapRef` ConfigMap, read in its region
/// (by datacenter), or why there is none yet.
/// The storage settings of the MedusaConfiguration `spec.medusa.medusaConfigurationRef` names,
/// read in the hub in the K8ssandraCluster's namespace (as upstream: the ref's namespace is not
/// used); None without one. Read at each reconcile (not watched).
pub(super) async fn read_medusa_configuration(
    context: &ControllerContext,
    k8c: &K8ssandraCluster,
) -> Option<Result<crate::api::medusa::MedusaStorage, String>> {
    let medusa = k8c.spec.medusa.as_deref()?;
    let name = (medusa.medusa_configuration_ref.as_ref())
        .and_then(|r| r.name.clone())
        .filter(|n| !n.is_empty())?;
    let namespace = k8c.namespace().unwrap_or_default();
    let api =
        Api::<crate::api::medusa::MedusaConfiguration>::namespaced(context.hub.clone(), &namespace);
    let what =
        format!("MedusaConfiguration {namespace}/{name} (spec.medusa.medusaConfigurationRef)");
    Some(match api.get_opt(&name).await {
        Ok(Some(found)) => Ok(found.spec.storage_properties.unwrap_or_default()),
        Ok(None) => Err(format!("waiting for {what}: create it in the hub")),
        Err(error) => Err(format!("cannot read {what}: {error}")),
    })
}

pub(super) async fn read_user_per_node_config_hashes(
    context: &ControllerContext,
    cluster_plan: &ClusterPlan,
) -> BTreeMap<String, Result<String, String>> {
    let reads = cluster_plan.datacenters.iter().filter_map(|dc| {
        let name = dc.user_per_node_config.as_deref()?;
        Some(async move {
            let config_map = format!(
                "ConfigMap {}/{name} (perNodeConfigMapRef) in region {:?}",
                dc.namespace, dc.context
            );
            let read = match context.registry.client(&dc.context) {
                Ok(client) => Api::<ConfigMap>::namespaced(client, &dc.namespace)
                    .get_opt(name)
                    .await
                    .map_err(|e| format!("cannot read {config_map}: {e}")),
                Err(e) => Err(format!("cannot read {config_map}: {e}")),
            };
            let hash = match read {
                Ok(Some(found)) => Ok(crate::workload::generated::config_map_hash(&found)),
                Ok(None) => Err(format!("waiting for {config_map}: create it there")),
                Err(error) => Err(error),
            };
            (dc.name.clone(), hash)
        })
    });
    futures::future::join_all(reads).await.into_iter().collect()
}
