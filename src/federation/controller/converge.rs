//! Apply, as a stage: from the plan and what was gathered, decide and bring every region to the
//! plan (the cluster's Secrets in the hub, seeds, generated ConfigMaps, the datacenters, their
//! components), and collect what happened for the status stage.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;

use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::clusters::RegionFailure;
use crate::federation::components::ComponentsReport;
use crate::federation::keyspaces::KeyspacesOutcome;
use crate::federation::notices::{DatacenterOutcome, Outcome};
use crate::federation::observed::ObservedCluster;
use crate::federation::plan::ClusterPlan;
use crate::federation::reaper_registration::{self, Registration, RegistrationTarget};
use crate::federation::rollout::{Actions, Decision, decide};

use super::context::*;
use super::keyspaces::{KeyspacesReport, replicate_system_keyspaces};
use super::reaper_registration::register_with_referenced_reaper;
use super::rebuild::{RebuildReport, rebuild_datacenters};
use super::seeding::*;
use super::write::*;

/// What the apply stage did.
pub(super) struct Applied {
    pub(super) actions: Actions,
    /// Datacenter writes finished since the last reconcile, and this one's that finished in
    /// the write grace.
    pub(super) outcomes: Vec<Outcome>,
    /// `additionalSeeds` host names that did not resolve (None without host names).
    pub(super) unresolved_seeds: Option<Vec<String>>,
    /// When the seed host names' answers run out.
    pub(super) seeds_refresh_after: Option<Duration>,
    /// Every step that failed, region by region.
    pub(super) failures: Vec<RegionFailure>,
    pub(super) components: ComponentsReport,
    pub(super) keyspaces: KeyspacesReport,
    pub(super) rebuilds: RebuildReport,
    /// Regions whose datacenter writes are still under way.
    pub(super) busy_regions: Vec<String>,
    /// Registering the cluster with the Reaper `reaperRef` names, when it names one.
    pub(super) reaper_registration: Option<(RegistrationTarget, Registration)>,
}

impl Applied {
    /// Applied everywhere: nothing failed or refused, and no region's writes still under way.
    pub(super) fn everywhere(&self) -> bool {
        self.failures.is_empty()
            && self.actions.refused.is_none()
            && self.busy_regions.is_empty()
            && self
                .actions
                .decisions
                .iter()
                .all(|d| matches!(d.decision, Decision::Create | Decision::Update))
    }

    /// Each region with a datacenter of the cluster, and whether its part is applied there:
    /// as [`Applied::everywhere`], region by region.
    pub(super) fn by_region(&self) -> Vec<(String, bool)> {
        let mut regions: std::collections::BTreeMap<&str, bool> = Default::default();
        for decision in &self.actions.decisions {
            let applied = matches!(decision.decision, Decision::Create | Decision::Update);
            *regions.entry(decision.context.as_str()).or_insert(true) &= applied;
        }
        let behind = self.failures.iter().map(|f| f.region.as_str());
        for region in behind.chain(self.busy_regions.iter().map(String::as_str)) {
            if let Some(applied) = regions.get_mut(region) {
                *applied = false;
            }
        }
        let refused = self.actions.refused.is_some();
        regions
            .into_iter()
            .map(|(region, applied)| (region.to_string(), applied && !refused))
            .collect()
    }
}

/// Decides and acts. Secrets first (a datacenter waits for its secrets in its region), then
/// seeds before creating: a datacenter created now finds the other regions' seeds at its first
/// start. Seeds of existing datacenters are refreshed after the updates, which then reach the
/// regions without waiting for the seed lookups.
pub(super) async fn converge(
    context: &Arc<ControllerContext>,
    k8c: &K8ssandraCluster,
    cluster_plan: &ClusterPlan,
    observed: &mut ObservedCluster,
) -> Applied {
    let secrets = crate::federation::secrets::reconcile(
        &context.hub,
        &context.secret_caches,
        k8c,
        cluster_plan,
    )
    .await;
    observed.secrets_pending = secrets.pending;
    observed.passwords_missing = cluster_plan.passwords_missing.clone();
    observed.per_node_config_missing = cluster_plan.per_node_config_missing.clone();
    observed.medusa_configuration_missing = cluster_plan.medusa_configuration_missing.clone();
    observed.refused_watches =
        context.caches.refused_watches(cluster_contexts(k8c).iter().map(String::as_str));
    let key = ObjectRef::from_obj(k8c);
    observed.keyspace_replication = context.keyspace_memo.keyspace_replication(&key);
    observed.managed_keyspaces = context.keyspace_memo.managed(&key);
    let observed = &*observed;
    let actions = decide(cluster_plan, observed);
    let mut failures =
        crate::federation::takeover::release_deleting(&context.registry, observed).await;
    failures.extend(secrets.errors);
    let creating = actions.decisions.iter().any(|d| matches!(d.decision, Decision::Create));
    let early_seeds = match creating {
        true => Some(seed_slices(context, k8c, cluster_plan, observed).await),
        false => None,
    };
    if let Some(seeds) = &early_seeds {
        failures.extend(apply_seed_slices(context, seeds, &actions, SeedPhase::BeforeCreate).await);
    }
    act(context, &key, cluster_plan, observed, &actions).await;
    // After the writes are on their way, so that Cassandra's answers never hold them up: the
    // keyspaces (a removed datacenter is deleted by a later reconcile, once they leave it),
    // then the rebuilds.
    let removal_allowed = actions.refused.is_none();
    let keyspaces =
        replicate_system_keyspaces(context, k8c, cluster_plan, observed, removal_allowed).await;
    let keyspaces_replicated = matches!(keyspaces.outcome, KeyspacesOutcome::Replicated { .. });
    let rebuilds =
        rebuild_datacenters(context, k8c, cluster_plan, observed, keyspaces_replicated).await;
    let outcomes = context.operations.take_finished(&key);
    let seeds = match early_seeds {
        Some(seeds) => seeds,
        None => seed_slices(context, k8c, cluster_plan, observed).await,
    };
    failures.extend(apply_seed_slices(context, &seeds, &actions, SeedPhase::Existing).await);
    failures.extend(seeds.lookup_errors);
    failures.extend(outcomes.iter().filter_map(|o| match &o.outcome {
        DatacenterOutcome::ApplyFailed(failure) | DatacenterOutcome::DeleteFailed(failure) => {
            Some(failure.clone())
        }
        _ => None,
    }));
    let components =
        crate::federation::components::reconcile(&context.registry, k8c, cluster_plan, observed)
            .await;
    failures.extend(components.errors.iter().cloned());
    // Last: Reaper's answers hold up no write.
    let seed_host = reaper_registration::seed_host(cluster_plan, &seeds.seed_ips);
    let reaper_registration = register_with_referenced_reaper(
        context,
        k8c,
        &cluster_plan.cassandra_cluster_name,
        seed_host,
    )
    .await;
    failures.extend(keyspaces.failures.iter().cloned());
    failures.extend(rebuilds.failures.iter().cloned());
    Applied {
        actions,
        outcomes,
        unresolved_seeds: seeds.unresolved,
        seeds_refresh_after: seeds.refresh_after,
        failures,
        components,
        keyspaces,
        rebuilds,
        busy_regions: context.operations.busy_regions(&key),
        reaper_registration,
    }
}
