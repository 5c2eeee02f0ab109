//! Seeds: each datacenter's seed EndpointSlices, from the other datacenters' seed pods and the
//! resolved `additionalSeeds`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use tracing::debug;

use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::apply::{pending_apply_to, send_apply};
use crate::clusters::{FailureCategory, RegionFailure};
use crate::federation::observed::ObservedCluster;
use crate::federation::plan::ClusterPlan;
use crate::federation::rollout::{Actions, Decision};
use crate::federation::seeds::{AdditionalSeeds, seed_endpoint_slices};

use super::context::*;

/// The seed EndpointSlices of every datacenter, and the host names that did not resolve.
pub(super) struct SeedSlices {
    pub(super) slices: Vec<crate::federation::seeds::DatacenterSeeds>,
    /// `None` when `additionalSeeds` has no host names.
    pub(super) unresolved: Option<Vec<String>>,
    /// When the host names' answers stop being valid: the cluster is looked at again then.
    pub(super) refresh_after: Option<Duration>,
    /// Datacenters whose seed pods could not be listed (e.g. the region's RBAC refuses it):
    /// the other datacenters lack their seeds, which the status must say.
    pub(super) lookup_errors: Vec<RegionFailure>,
    /// The seed pod IPs of each datacenter, by name (empty when not listed).
    pub(super) seed_ips: BTreeMap<String, Vec<std::net::IpAddr>>,
}

/// Which datacenters' seed slices to apply.
#[derive(Clone, Copy)]
pub(super) enum SeedPhase {
    /// Those about to be created.
    BeforeCreate,
    /// Those that exist and are kept.
    Existing,
}

/// The seed pod IPs of the other datacenters, and `additionalSeeds` with host names resolved.
pub(super) async fn seed_slices(
    context: &ControllerContext,
    k8c: &K8ssandraCluster,
    cluster_plan: &ClusterPlan,
    observed: &ObservedCluster,
) -> SeedSlices {
    let additional = AdditionalSeeds::parse(
        k8c.spec.cassandra.as_ref().and_then(|c| c.additional_seeds.as_deref()).unwrap_or(&[]),
    );
    let names_hosts = !additional.host_names.is_empty();
    let (addresses, unresolved, refresh_after) = match &context.resolver {
        Ok(resolver) => {
            // Noted for the cluster even when empty: answers no cluster uses any more go.
            let cluster = format!(
                "{}/{}",
                cluster_plan.cluster.namespace, cluster_plan.cluster.name
            );
            let resolved = resolver.resolve_for(&cluster, &additional).await;
            let failures = resolved.failures.iter().map(ToString::to_string);
            (
                resolved.addresses,
                names_hosts.then(|| failures.collect()),
                resolved.refresh_after,
            )
        }
        Err(_) if !names_hosts => (additional.addresses.clone(), None, None),
        Err(setup) => (
            additional.addresses.clone(),
            Some(vec![setup.to_string()]),
            None,
        ),
    };
    let seed_lookups = cluster_plan.datacenters.iter().filter_map(|dc| {
        observed.get(&dc.name)?.state.present()?;
        let client = context.registry.client(&dc.context).ok()?;
        let selector =
            crate::workload::labels::seed_pod_selector(&cluster_plan.cassandra_cluster_name, &dc.name);
        let cache = context.caches.region(&dc.context);
        Some(async move {
            if let Some(cache) = cache {
                let wanted = kube::core::Selector::from_iter(
                    crate::workload::labels::seed_pod_labels(&cluster_plan.cassandra_cluster_name, &dc.name),
                );
                let ips = cache
                    .seed_pods
                    .state_filter_selector(&wanted)
                    .iter()
                    .filter(|pod| pod.namespace().as_deref() == Some(dc.namespace.as_str()))
                    .filter_map(|pod| pod.data)
                    .collect();
                return (dc.name.clone(), Ok(ips));
            }
            let pods: Api<Pod> = Api::namespaced(client, &dc.namespace);
            let ips = match pods
                .list(&ListParams::default().labels(&selector))
                .await
            {
                Ok(list) => Ok(list
                    .items
                    .iter()
                    .filter_map(|pod| pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok())
                    .collect()),
                Err(error) => {
                    debug!(datacenter = %dc.name, region = %dc.context, error = %error, "seed pods not listed");
                    Err(RegionFailure::kube(
                        &dc.context,
                        format!("listing the seed pods of datacenter {}", dc.name),
                        &error,
                    ))
                }
            };
            (dc.name.clone(), ips)
        })
    });
    let mut seed_ips: BTreeMap<String, Vec<std::net::IpAddr>> = BTreeMap::new();
    let mut lookup_errors = Vec::new();
    for (datacenter, ips) in futures::future::join_all(seed_lookups).await {
        match ips {
            Ok(ips) => {
                seed_ips.insert(datacenter, ips);
            }
            Err(error) => {
                seed_ips.insert(datacenter, Vec::new());
                lookup_errors.push(error);
            }
        }
    }
    SeedSlices {
        slices: seed_endpoint_slices(cluster_plan, &seed_ips, &addresses),
        unresolved,
        refresh_after,
        lookup_errors,
        seed_ips,
    }
}

/// Runs `writes` together; returns the failures of those that failed.
pub(super) async fn failures(
    writes: impl IntoIterator<Item = impl std::future::Future<Output = Result<(), RegionFailure>>>,
) -> Vec<RegionFailure> {
    futures::future::join_all(writes).await.into_iter().filter_map(Result::err).collect()
}

/// Applies the seed slices of the datacenters of `phase`; returns what failed.
pub(super) async fn apply_seed_slices(
    context: &ControllerContext,
    seeds: &SeedSlices,
    actions: &Actions,
    phase: SeedPhase,
) -> Vec<RegionFailure> {
    let applies = seeds
        .slices
        .iter()
        .filter(|seeds| {
            actions.decision(&seeds.datacenter).is_some_and(|d| match phase {
                SeedPhase::BeforeCreate => matches!(d, Decision::Create),
                SeedPhase::Existing => matches!(d, Decision::Update),
            })
        })
        .map(|seeds| async move {
            let region = &seeds.context;
            let client = context
                .registry
                .client(region)
                .map_err(|e| RegionFailure::region(region, "applying seed EndpointSlices", &e))?;
            let api: Api<EndpointSlice> = Api::namespaced(client, &seeds.namespace);
            let cache = context.caches.region(region);
            for slice in &seeds.slices {
                let name = slice.name();
                let doing = || format!("applying seed EndpointSlice {}/{name}", seeds.namespace);
                let failed = |e: kube::Error| RegionFailure::kube(region, doing(), &e);
                let unserialisable = |e: serde_json::Error| {
                    RegionFailure::new(region, doing(), FailureCategory::Internal, e)
                };
                let cached = cache.as_ref().and_then(|cache| {
                    cache.seed_slices.get(&ObjectRef::new(name).within(&seeds.namespace))
                });
                let memo_key = format!("{}/{}/{name}", seeds.context, seeds.namespace);
                let fingerprint = slice.fingerprint();
                let cached_version =
                    cached.as_ref().and_then(|cached| cached.meta().resource_version.clone());
                if let Some(version) = &cached_version
                    && context.seed_memo.is_confirmed(&memo_key, fingerprint, version)
                {
                    continue;
                }
                // The live and desired slices (the seeds of every other region) are dropped
                // before the apply's await: 100 regions' copies alive at once made the heap's peak.
                let pending = {
                    let live = match cached {
                        Some(cached) => Some(cached.to_value()),
                        None => api.get_opt(name).await.map_err(failed)?.map(serde_json::to_value),
                    };
                    let live = live.transpose().map_err(unserialisable)?;
                    pending_apply_to(&slice.to_endpoint_slice(), live.as_ref())
                        .map_err(unserialisable)?
                };
                match pending {
                    Some(body) => {
                        send_apply(&api, FIELD_MANAGER, name, &body).await.map_err(failed)?
                    }
                    None => {
                        if let Some(version) = cached_version {
                            context.seed_memo.confirm(memo_key, fingerprint, version);
                        }
                    }
                }
            }
            Ok(())
        });
    failures(applies).await
}
