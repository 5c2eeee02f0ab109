//! The K8ssandraCluster controller: the I/O around the pure core of this module (see the module
//! docs for the call order). Control-plane mode only.
//!
//! Each reconcile looks at every region in parallel, each request bounded by the region's own
//! timeout (the region client carries it); a region that is unknown or unavailable becomes a
//! [`RemoteState`] for its datacenters, never an error that holds up the other regions.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Error as ControllerError};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, Predicate, WatchStreamExt, predicates, watcher};
use kube::{Api, Resource, ResourceExt};
use tracing::{debug, info, warn};

use super::notices::{DatacenterOutcome, Outcome, condition_notices, outcome_notices};
use super::observed::{
    LiveDatacenter, ObservedCluster, ObservedDatacenter, RemoteState, known_contexts,
};
use super::plan::{ClusterKey, ClusterPlan, PlanInputs, plan_with};
use super::referenced::{ReferencedConfigMaps, referenced_by};
use super::rollout::{Actions, Decision, decide};
use super::seeds::{AdditionalSeeds, CachingResolver, HickoryResolver, seed_endpoint_slices};
use super::status::{StatusInput, cluster_status, invalid_spec_status};
use super::watches::RegionCaches;
use crate::api::cassdc::CassandraDatacenter;
use crate::api::k8ssandra_cluster::{K8ssandraCluster, K8ssandraClusterStatus};
use crate::api::replicated_secret::ReplicatedSecret;
use crate::apply::{apply_if_changed, pending_apply_to, send_apply};
use crate::cache::{reflected, scoped};
use crate::clusters::{RegionChange, RegionError, Registry};
use crate::events::Events;
use crate::workload::labels::{
    ADOPT_ANNOTATION, DECOMMISSION_ON_DELETE_ANNOTATION, K8SSANDRA_CLUSTER_FINALIZER,
    ORPHAN_ANNOTATION, ownership_selector,
};

pub use super::FIELD_MANAGER;

/// Re-look while something is being created, deleted or waited for.
const PROGRESSING_REQUEUE: Duration = Duration::from_secs(5);
/// Re-look at a steady cluster: a safety net, since the region watches bring every remote
/// change as it happens. Spread by [`steady_requeue`].
const STEADY_REQUEUE: Duration = Duration::from_secs(300);
/// Re-look while a region lacks the ServiceMonitor CRD the spec's telemetry needs.
const MISSING_CRD_RECHECK: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("K8ssandraCluster {name} has no namespace")]
    MissingNamespace { name: String },
    #[error("writing the status of K8ssandraCluster {namespace}/{name}: {source}")]
    WriteStatus {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("K8ssandraCluster {namespace}/{name} is not deleted yet: {pending}")]
    CleanupPending {
        namespace: String,
        name: String,
        pending: String,
    },
    #[error("finalizer of a K8ssandraCluster: {0}")]
    Finalizer(#[source] Box<finalizer::Error<ReconcileError>>),
}

impl crate::ops::ErrorLabel for ReconcileError {
    const KINDS: &'static [&'static str] = &[
        "missing_namespace",
        "write_status",
        "cleanup_pending",
        "finalizer",
    ];
    fn metric_label(&self) -> &'static str {
        match self {
            ReconcileError::MissingNamespace { .. } => "missing_namespace",
            ReconcileError::WriteStatus { .. } => "write_status",
            ReconcileError::CleanupPending { .. } => "cleanup_pending",
            ReconcileError::Finalizer(error) => crate::ops::finalizer_label(error),
        }
    }
}

/// Reporting controller name of this controller's Events.
pub const EVENT_REPORTER: &str = "federator-k8ssandracluster";

/// Everything a reconcile needs.
pub struct ControllerContext {
    pub hub: kube::Client,
    pub registry: Registry,
    /// Namespaces whose K8ssandraClusters are reconciled; empty means all.
    pub watch_namespaces: Vec<String>,
    pub events: Events,
    /// Resolves `additionalSeeds` host names; an error when the system's DNS configuration
    /// cannot be read (then host names are reported unresolved).
    pub resolver: Result<CachingResolver<HickoryResolver>, super::seeds::SeedResolveError>,
    /// What the region watches have seen: read instead of asking the regions again.
    pub caches: RegionCaches,
    /// Region writes under way and their outcomes.
    pub operations: Operations,
    /// Re-queues a cluster when its region writes end.
    pub completions: futures::channel::mpsc::UnboundedSender<ObjectRef<K8ssandraCluster>>,
    /// The hub's ReplicatedSecrets and labelled Secrets, as watched.
    pub secret_caches: super::secrets::SecretCaches,
    /// Seed EndpointSlices found up to date, so unchanged ones are not compared again.
    pub seed_memo: crate::apply::UpToDateMemo,
    /// Watches of the user ConfigMaps the datacenters reference.
    pub referenced: ReferencedConfigMaps,
    /// Region writes run in tasks of their own, stopped with the operator.
    pub fence: crate::ops::WriteFence,
    pub ops: crate::ops::Ops,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    hub: kube::Client,
    registry: Registry,
    watch_namespaces: Vec<String>,
    fence: crate::ops::WriteFence,
    ops: crate::ops::Ops,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (store, cluster_events) = reflected(
        scoped::<K8ssandraCluster>(&hub, &watch_namespaces),
        watcher::Config::default(),
    );
    let cluster_changes =
        cluster_events.applied_objects().predicate_filter(worth_reconciling, Default::default());
    // A cluster's ReplicatedSecret has its name: its status (copies made) releases DCs waiting
    // for their secrets.
    let (replicated_store, replicated_events) = reflected(
        scoped::<ReplicatedSecret>(&hub, &watch_namespaces),
        watcher::Config::default(),
    );
    let replicated_changes = replicated_events.touched_objects();
    // The clusters' own Secrets (by label): a superuser Secret deleted by hand is made again.
    let (labelled_store, labelled_events) = reflected(
        scoped::<PartialObjectMeta<Secret>>(&hub, &watch_namespaces),
        watcher::Config::default().labels(crate::api::shared::CLUSTER_NAME_LABEL),
    );
    let labelled_changes = labelled_events.touched_objects();
    let controller = Controller::for_stream(cluster_changes, store.clone())
        .watches_stream(replicated_changes, |rs| {
            let namespace = rs.namespace()?;
            Some(ObjectRef::new(&rs.name_any()).within(&namespace))
        })
        .watches_stream(labelled_changes, |secret| {
            super::watches::owner_of_meta(&secret.metadata)
        });
    ops.health.track_cache("k8ssandracluster", store.clone());
    let region_triggers = registry
        .changes()
        .flat_map(move |change| stream::iter(clusters_using_change(&store, &change)));
    let caches = RegionCaches::default();
    let (completions, completed) = futures::channel::mpsc::unbounded();
    let (remote_triggers, manage_watches) =
        super::watches::remote_changes(registry.clone(), caches.clone());
    let (referenced, referenced_triggers, follow_regions) =
        ReferencedConfigMaps::start(registry.clone());
    let context = Arc::new(ControllerContext {
        events: Events::new(hub.clone(), EVENT_REPORTER),
        hub,
        registry,
        watch_namespaces,
        resolver: HickoryResolver::from_system_conf().map(CachingResolver::new),
        caches,
        operations: Operations::default(),
        completions,
        secret_caches: super::secrets::SecretCaches {
            replicated: replicated_store,
            labelled_secrets: labelled_store,
            passwords: Default::default(),
        },
        seed_memo: Default::default(),
        referenced,
        fence,
        ops,
    });
    let metrics = Arc::clone(&context.ops.metrics);
    let backoff = crate::ops::RetryBackoff::default();
    info!("K8ssandraCluster controller started");
    let controller = controller
        .reconcile_on(stream::select(
            stream::select(region_triggers, remote_triggers),
            stream::select(completed, referenced_triggers),
        ))
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(crate::ops::MAX_CONCURRENT_RECONCILES),
        )
        .graceful_shutdown_on(shutdown)
        .run(
            crate::ops::instrument("k8ssandracluster", region_names, &backoff, &metrics, reconcile),
            backoff.error_policy(),
            context,
        )
        .for_each(|result| {
            match result {
                Ok((object, _)) => debug!(k8ssandra_cluster = %object, "reconciled"),
                Err(ControllerError::ObjectNotFound(_)) => {}
                Err(ControllerError::ReconcilerFailed(error, object)) => {
                    warn!(k8ssandra_cluster = %object, error = %error, "reconcile failed; retrying");
                }
                Err(error) => warn!(error = %error, "K8ssandraCluster controller"),
            }
            futures::future::ready(())
        });
    // The region watches live as long as the controller: dropping `manage_watches` stops them.
    let watches = futures::future::join(manage_watches, follow_regions);
    futures::future::select(Box::pin(controller), Box::pin(watches)).await;
    info!("K8ssandraCluster controller stopped");
}

/// What a change of a K8ssandraCluster must touch to be reconciled: the spec (generation),
/// labels, annotations (adopt, orphan, decommission), finalizers or deletion. A status write,
/// most often this controller's own, is not worth another reconcile.
fn worth_reconciling(k8c: &K8ssandraCluster) -> Option<u64> {
    let deletion = |k8c: &K8ssandraCluster| {
        let mut hasher = std::hash::DefaultHasher::new();
        k8c.metadata.deletion_timestamp.as_ref().map(|t| t.0).hash(&mut hasher);
        Some(hasher.finish())
    };
    predicates::generation
        .combine(predicates::labels)
        .combine(predicates::annotations)
        .combine(predicates::finalizers)
        .combine(deletion)
        .hash_property(k8c)
}

/// The K8ssandraClusters with a datacenter in the changed context (now or per their status).
fn clusters_using_change(
    store: &Store<K8ssandraCluster>,
    change: &RegionChange,
) -> Vec<ObjectRef<K8ssandraCluster>> {
    store
        .state()
        .iter()
        .filter(|k8c| match change {
            RegionChange::Resync => true,
            RegionChange::Context { context, .. } => cluster_contexts(k8c).contains(context),
        })
        .map(|k8c| ObjectRef::from_obj(k8c.as_ref()))
        .collect()
}

/// The cluster's regions, for its reconcile's log span.
fn region_names(k8c: &K8ssandraCluster) -> String {
    Vec::from_iter(cluster_contexts(k8c)).join(",")
}

/// Every context the cluster's spec names or its status remembers.
fn cluster_contexts(k8c: &K8ssandraCluster) -> BTreeSet<String> {
    let mut contexts: BTreeSet<String> =
        known_contexts(k8c.status.as_ref()).into_values().collect();
    let in_spec = k8c
        .spec
        .cassandra
        .as_ref()
        .and_then(|c| c.datacenters.as_ref())
        .into_iter()
        .flatten()
        .map(|dc| dc.k8s_context.clone().unwrap_or_default());
    contexts.extend(in_spec);
    contexts
}

async fn reconcile(
    k8c: Arc<K8ssandraCluster>,
    context: Arc<ControllerContext>,
) -> Result<Action, ReconcileError> {
    let namespace = k8c.namespace().ok_or_else(|| ReconcileError::MissingNamespace {
        name: k8c.name_any(),
    })?;
    if !context.watch_namespaces.is_empty() && !context.watch_namespaces.contains(&namespace) {
        return Ok(Action::await_change());
    }
    let api: Api<K8ssandraCluster> = Api::namespaced(context.hub.clone(), &namespace);
    finalizer::finalizer(&api, K8SSANDRA_CLUSTER_FINALIZER, k8c, |event| async {
        match event {
            FinalizerEvent::Apply(k8c) => apply_cluster(&k8c, &api, &context).await,
            FinalizerEvent::Cleanup(k8c) => cleanup_cluster(&k8c, &api, &context).await,
        }
    })
    .await
    .map_err(|error| ReconcileError::Finalizer(Box::new(error)))
}

fn annotation_is_true(k8c: &K8ssandraCluster, key: &str) -> bool {
    k8c.annotations().get(key).is_some_and(|v| v == "true")
}

/// Plan, observe, decide, act, write status.
async fn apply_cluster(
    k8c: &K8ssandraCluster,
    api: &Api<K8ssandraCluster>,
    context: &Arc<ControllerContext>,
) -> Result<Action, ReconcileError> {
    let previous = k8c.status.as_ref();
    let input = |reconcile_error, unresolved_seeds| StatusInput {
        previous,
        generation: k8c.metadata.generation,
        now: Time(Timestamp::now()),
        reconcile_error,
        unresolved_seeds,
    };
    let adopt = annotation_is_true(k8c, ADOPT_ANNOTATION);
    // Gather: where the datacenters are comes from the spec and the registry alone (a context
    // that reaches the hub is the hub, ""); what the plan applied reads besides the spec is
    // then read there (what the existing datacenters run with, store passwords, per-node
    // ConfigMaps), and the plan is made from it whole.
    let hub_contexts: BTreeSet<String> =
        cluster_contexts(k8c).into_iter().filter(|c| context.registry.reaches_hub(c)).collect();
    let locating = PlanInputs {
        hub_contexts,
        ..PlanInputs::default()
    };
    let planned = match plan_with(k8c, &locating) {
        Ok(located) => {
            let (observed, secret_values, per_node_config_hashes) = futures::join!(
                observe(context, &located, previous, adopt),
                super::secrets::read_store_passwords(
                    &context.hub,
                    &context.secret_caches,
                    &located
                ),
                read_user_per_node_config_hashes(context, &located),
            );
            let inputs = PlanInputs {
                running: observed.running(),
                secret_values,
                per_node_config_hashes,
                ..locating
            };
            plan_with(k8c, &inputs).map(|cluster_plan| (cluster_plan, observed))
        }
        Err(error) => Err(error),
    };
    let (cluster_plan, mut observed) = match planned {
        Ok(planned) => planned,
        Err(error) => {
            // Nothing is applied from a spec that cannot be planned; status says why.
            let status = invalid_spec_status(&input(None, None), &error);
            publish_transitions(context, k8c, &status, &[]).await;
            write_status(api, k8c, status).await?;
            return Ok(Action::requeue(steady_requeue()));
        }
    };
    context.referenced.set(&ObjectRef::from_obj(k8c), referenced_by(&cluster_plan));
    let secrets =
        super::secrets::reconcile(&context.hub, &context.secret_caches, k8c, &cluster_plan).await;
    observed.secrets_pending = secrets.pending;
    observed.passwords_missing = cluster_plan.passwords_missing.clone();
    observed.per_node_config_missing = cluster_plan.per_node_config_missing.clone();
    observed.refused_watches =
        context.caches.refused_watches(cluster_contexts(k8c).iter().map(String::as_str));
    let actions = decide(&cluster_plan, &observed);
    let released = super::takeover::release_deleting(&context.registry, &observed).await;
    // Seeds before creating: a datacenter created now finds the other regions' seeds at its
    // first start. Seeds of existing datacenters are refreshed after the updates, which then
    // reach the regions without waiting for the seed lookups.
    let creating = actions.decisions.iter().any(|d| matches!(d.decision, Decision::Create));
    let early_seeds = match creating {
        true => Some(seed_slices(context, k8c, &cluster_plan, &observed).await),
        false => None,
    };
    let mut seed_errors = match &early_seeds {
        Some(seeds) => apply_seed_slices(context, seeds, &actions, SeedPhase::BeforeCreate).await,
        None => Vec::new(),
    };
    seed_errors
        .extend(apply_generated_config_maps(context, &cluster_plan, &observed, &actions).await);
    let key = ObjectRef::from_obj(k8c);
    act(context, &key, &cluster_plan, &observed, &actions).await;
    // Writes finished since the last reconcile, and this one's that finished in the grace time.
    let outcomes = context.operations.take_finished(&key);
    let seeds = match early_seeds {
        Some(seeds) => seeds,
        None => seed_slices(context, k8c, &cluster_plan, &observed).await,
    };
    seed_errors.extend(apply_seed_slices(context, &seeds, &actions, SeedPhase::Existing).await);
    let mut errors: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match &o.outcome {
            DatacenterOutcome::ApplyFailed(e) | DatacenterOutcome::DeleteFailed(e) => {
                Some(e.clone())
            }
            _ => None,
        })
        .chain(seed_errors)
        .chain(seeds.lookup_errors.iter().cloned())
        .chain(released)
        .chain(secrets.errors)
        .collect();
    let components =
        super::components::reconcile(&context.registry, k8c, &cluster_plan, &observed).await;
    errors.extend(components.errors.iter().cloned());
    // Applied everywhere: nothing failed or refused, and no region's writes still under way.
    let applied = errors.is_empty()
        && actions.refused.is_none()
        && context.operations.busy_regions(&key).is_empty()
        && actions
            .decisions
            .iter()
            .all(|d| matches!(d.decision, Decision::Create | Decision::Update));
    let metrics_key = format!("{}/{}", k8c.namespace().unwrap_or_default(), k8c.name_any());
    context.ops.metrics.fanout_progress(&metrics_key, k8c.metadata.generation, applied);
    let error_text = (!errors.is_empty()).then(|| errors.join("; "));
    let mut status = cluster_status(
        &input(error_text.as_deref(), seeds.unresolved.as_deref()),
        &cluster_plan,
        &observed,
        &actions,
    );
    components.fill_status(&mut status, k8c.metadata.generation, Time(Timestamp::now()));
    crate::api::shared::report_fields_not_acted_on(
        status.conditions.get_or_insert_default(),
        &k8c.spec.fields_not_acted_on(),
        k8c.metadata.generation,
        Time(Timestamp::now()),
    );
    publish_transitions(context, k8c, &status, &outcomes).await;
    write_status(api, k8c, status).await?;
    let next = if !components.settled {
        PROGRESSING_REQUEUE
    } else if !components.service_monitor_crd_missing.is_empty() {
        // Installing a CRD in a region makes no event Federator watches.
        MISSING_CRD_RECHECK
    } else {
        next_look(&observed, &actions, &errors)
    };
    Ok(Action::requeue(sooner_for_seeds(next, seeds.refresh_after)))
}

/// Events for what this reconcile did and for condition transitions; nothing when steady.
async fn publish_transitions(
    context: &ControllerContext,
    k8c: &K8ssandraCluster,
    status: &K8ssandraClusterStatus,
    outcomes: &[Outcome],
) {
    let previous = k8c.status.as_ref();
    let before = previous.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    let after = status.conditions.as_deref().unwrap_or(&[]);
    let previous_error = previous.and_then(|s| s.error.as_deref());
    let notices = outcome_notices(outcomes, previous_error)
        .into_iter()
        .chain(condition_notices(before, after));
    for notice in notices {
        context.events.publish(k8c, &notice).await;
    }
}

/// The seed EndpointSlices of every datacenter, and the host names that did not resolve.
struct SeedSlices {
    slices: Vec<super::seeds::DatacenterSeeds>,
    /// `None` when `additionalSeeds` has no host names.
    unresolved: Option<Vec<String>>,
    /// When the host names' answers stop being valid: the cluster is looked at again then.
    refresh_after: Option<Duration>,
    /// Datacenters whose seed pods could not be listed (e.g. the region's RBAC refuses it):
    /// the other datacenters lack their seeds, which the status must say.
    lookup_errors: Vec<String>,
}

/// Which datacenters' seed slices to apply.
#[derive(Clone, Copy)]
enum SeedPhase {
    /// Those about to be created.
    BeforeCreate,
    /// Those that exist and are kept.
    Existing,
}

/// The seed pod IPs of the other datacenters, and `additionalSeeds` with host names resolved.
async fn seed_slices(
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
                    Err(format!(
                        "listing the seed pods of datacenter {} in region {:?}: {error}",
                        dc.name, dc.context
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
    }
}

/// Runs `writes` together; returns the errors of those that failed.
async fn failures(
    writes: impl IntoIterator<Item = impl std::future::Future<Output = Result<(), String>>>,
) -> Vec<String> {
    futures::future::join_all(writes).await.into_iter().filter_map(Result::err).collect()
}

/// Applies the seed slices of the datacenters of `phase`; returns what failed.
async fn apply_seed_slices(
    context: &ControllerContext,
    seeds: &SeedSlices,
    actions: &Actions,
    phase: SeedPhase,
) -> Vec<String> {
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
            let client = context.registry.client(&seeds.context).map_err(|e| e.to_string())?;
            let api: Api<EndpointSlice> = Api::namespaced(client, &seeds.namespace);
            let cache = context.caches.region(&seeds.context);
            for slice in &seeds.slices {
                let name = slice.name();
                let failed = |e: &dyn std::fmt::Display| {
                    format!(
                        "applying seed EndpointSlice {}/{name} in region {:?}: {e}",
                        seeds.namespace, seeds.context
                    )
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
                        None => api
                            .get_opt(name)
                            .await
                            .map_err(|e| failed(&e))?
                            .map(serde_json::to_value),
                    };
                    let live = live.transpose().map_err(|e| failed(&e))?;
                    pending_apply_to(&slice.to_endpoint_slice(), live.as_ref())
                        .map_err(|e| failed(&e))?
                };
                match pending {
                    Some(body) => send_apply(&api, FIELD_MANAGER, name, &body)
                        .await
                        .map_err(|e| failed(&e))?,
                    None => {
                        if let Some(version) = cached_version {
                            context.seed_memo.confirm(memo_key, fingerprint, version);
                        }
                    }
                }
            }
            Ok::<(), String>(())
        });
    failures(applies).await
}

/// The content hash of each datacenter's `perNodeConfigMapRef` ConfigMap, read in its region
/// (by datacenter), or why there is none yet.
async fn read_user_per_node_config_hashes(
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

/// Applies the ConfigMaps generated for the datacenters about to be created or updated (initial
/// tokens, Vector's configuration), before them: a pod must find them at its first start. Read
/// from the regions only for the clusters that have them. Deletes the ones no longer needed
/// while their datacenter still mounts them. Returns what failed.
async fn apply_generated_config_maps(
    context: &ControllerContext,
    cluster_plan: &ClusterPlan,
    observed: &ObservedCluster,
    actions: &Actions,
) -> Vec<String> {
    let mut wanted = Vec::new();
    let mut dropped = Vec::new();
    for dc in &cluster_plan.datacenters {
        if actions
            .decision(&dc.name)
            .is_some_and(|d| matches!(d, Decision::Create | Decision::Update))
        {
            wanted.extend(dc.generated_config_maps().map(|config| (dc, config)));
        }
        if let Some(live) = observed.get(&dc.name).and_then(|o| o.state.present()) {
            for name in &dc.dropped_config_maps {
                if live.spec_mentions(&format!("\"{name}\"")) {
                    dropped.push((dc, name));
                }
            }
        }
    }
    let deletes = dropped.into_iter().map(|(dc, name)| async move {
        let failed = |e: &dyn std::fmt::Display| {
            format!(
                "deleting ConfigMap {}/{name} in region {:?}: {e}",
                dc.namespace, dc.context
            )
        };
        let client = context.registry.client(&dc.context).map_err(|e| failed(&e))?;
        let api: Api<ConfigMap> = Api::namespaced(client, &dc.namespace);
        // Only one generated for this cluster (by Federator or k8ssandra-operator before it): a
        // ConfigMap of that name may be someone else's.
        let cluster = &cluster_plan.cluster;
        let ours = (api.get_opt(name).await.map_err(|e| failed(&e))?).is_some_and(|found| {
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
                Err(error) => return Err(failed(&error)),
            }
        }
        Ok::<(), String>(())
    });
    let mut errors = failures(deletes).await;
    let applies = wanted.into_iter().map(|(dc, config)| async move {
        let failed = |e: &dyn std::fmt::Display| {
            format!(
                "applying ConfigMap {}/{} in region {:?}: {e}",
                config.namespace, config.name, dc.context
            )
        };
        let client = context.registry.client(&dc.context).map_err(|e| failed(&e))?;
        let api: Api<ConfigMap> = Api::namespaced(client, &config.namespace);
        let live = api.get_opt(&config.name).await.map_err(|e| failed(&e))?;
        apply_if_changed(&api, FIELD_MANAGER, &config.to_config_map(), live.as_ref())
            .await
            .map_err(|e| failed(&e))?;
        Ok::<(), String>(())
    });
    errors.extend(failures(applies).await);
    errors
}

/// [`STEADY_REQUEUE`] give or take a tenth: clusters created together (a restart lists them
/// all at once) do not all come back in the same instant.
fn steady_requeue() -> Duration {
    use rand::Rng as _;
    STEADY_REQUEUE.mul_f64(rand::rng().random_range(0.9..1.1))
}

fn next_look(observed: &ObservedCluster, actions: &Actions, errors: &[String]) -> Duration {
    let settled = errors.is_empty()
        && actions.refused.is_none()
        && actions.decisions.iter().all(|d| matches!(d.decision, Decision::Update))
        && observed.datacenters.values().all(|o| o.state.is_settled());
    if settled {
        steady_requeue()
    } else {
        PROGRESSING_REQUEUE
    }
}

/// `next`, or sooner when the answers for `additionalSeeds` host names run out, so a seed that
/// moved is seen when its TTL ends rather than at the next steady look.
fn sooner_for_seeds(next: Duration, seeds_refresh_after: Option<Duration>) -> Duration {
    // A second at least: an answer about to expire is not worth a reconcile loop.
    seeds_refresh_after.map_or(next, |refresh| {
        next.min(refresh.max(Duration::from_secs(1)))
    })
}

/// One datacenter to look up: planned, or removed from the spec but still known.
struct Lookup {
    datacenter: String,
    /// Known for planned datacenters; found by label for removed ones.
    namespace: Option<String>,
}

/// Looks at every region in parallel.
async fn observe(
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

async fn observe_region(
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

async fn lookup_datacenter(
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

fn region_state(error: &RegionError) -> RemoteState {
    match error {
        RegionError::UnknownContext { .. } => RemoteState::UnknownContext,
        RegionError::Unavailable { reason, .. } | RegionError::Misconfigured { reason, .. } => {
            RemoteState::Unreachable {
                reason: reason.clone(),
            }
        }
    }
}

/// One remote write decided by a reconcile, with everything it needs (it may outlive it).
enum Operation {
    Apply {
        namespace: String,
        datacenter: String,
        /// What to send (or why it could not be made).
        body: Result<Box<serde_json::value::RawValue>, String>,
        /// Whether the datacenter exists (the apply updates rather than creates it).
        exists: bool,
    },
    Delete {
        namespace: String,
        datacenter: String,
        annotate_first: bool,
    },
}

/// The region writes of every cluster: which regions have writes under way, and the outcomes of
/// finished ones the cluster's next reconcile reports (Events, `status.error`).
#[derive(Default)]
pub struct Operations {
    in_flight: std::sync::Mutex<std::collections::HashSet<(ObjectRef<K8ssandraCluster>, String)>>,
    finished:
        std::sync::Mutex<std::collections::HashMap<ObjectRef<K8ssandraCluster>, Vec<Outcome>>>,
}

impl Operations {
    /// Claims `region` for `cluster`; false when writes are still under way there.
    fn start(&self, cluster: &ObjectRef<K8ssandraCluster>, region: &str) -> bool {
        self.in_flight
            .lock()
            .map(|mut in_flight| in_flight.insert((cluster.clone(), region.to_string())))
            .unwrap_or(false)
    }

    fn finish(&self, cluster: &ObjectRef<K8ssandraCluster>, region: &str, outcomes: Vec<Outcome>) {
        if let Ok(mut finished) = self.finished.lock() {
            finished.entry(cluster.clone()).or_default().extend(outcomes);
        }
        if let Ok(mut in_flight) = self.in_flight.lock() {
            in_flight.remove(&(cluster.clone(), region.to_string()));
        }
    }

    fn take_finished(&self, cluster: &ObjectRef<K8ssandraCluster>) -> Vec<Outcome> {
        self.finished
            .lock()
            .ok()
            .and_then(|mut finished| finished.remove(cluster))
            .unwrap_or_default()
    }

    /// Drops the outcomes of a deleted cluster's writes (nobody will take them).
    fn forget(&self, cluster: &ObjectRef<K8ssandraCluster>) {
        if let Ok(mut finished) = self.finished.lock() {
            finished.remove(cluster);
        }
    }

    /// The regions where writes of `cluster` are under way.
    fn busy_regions(&self, cluster: &ObjectRef<K8ssandraCluster>) -> Vec<String> {
        self.in_flight
            .lock()
            .map(|in_flight| {
                in_flight
                    .iter()
                    .filter(|(c, _)| c == cluster)
                    .map(|(_, region)| region.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// How long a reconcile waits for its region writes before it goes on: fast regions are
/// reported by the same reconcile, a slow one finishes on its own and re-queues the cluster.
const WRITE_GRACE: Duration = Duration::from_millis(50);

/// Starts the creates, updates and deletes as decided, one task per region, and waits for them
/// at most [`WRITE_GRACE`]. A region whose previous writes are still under way is skipped: their
/// end re-queues the cluster, which then decides again. So one slow region never holds up the
/// others, nor the next change.
async fn act(
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
                let desired = datacenter_body(&planned.datacenter, &decision.namespace);
                let pending = live
                    .map(LiveDatacenter::to_value)
                    .transpose()
                    .and_then(|live| pending_apply_to(&desired, live.as_ref()));
                let body = match pending {
                    Ok(Some(body)) => Ok(body),
                    Ok(None) => continue,
                    Err(error) => Err(error.to_string()),
                };
                Operation::Apply {
                    namespace: decision.namespace.clone(),
                    datacenter: decision.datacenter.clone(),
                    body,
                    exists: live.is_some(),
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
async fn run_region_operations(
    context: &ControllerContext,
    cluster: &ClusterKey,
    region: &str,
    operations: Vec<Operation>,
) -> Vec<Outcome> {
    let client = context.registry.client(region).map_err(|e| e.to_string());
    let writes = operations.into_iter().map(|operation| {
        let client = client.clone();
        async move {
            let outcome = |namespace: &str, datacenter: &str, outcome| Outcome {
                datacenter: datacenter.to_string(),
                context: region.to_string(),
                namespace: namespace.to_string(),
                outcome,
            };
            match operation {
                Operation::Apply {
                    namespace,
                    datacenter,
                    body,
                    exists,
                } => {
                    let applied = match (&client, &body) {
                        (Ok(client), Ok(body)) => {
                            let api: Api<CassandraDatacenter> = Api::namespaced(client.clone(), &namespace);
                            send_apply(&api, FIELD_MANAGER, &datacenter, body)
                                .await
                                .map_err(|e| e.to_string())
                        }
                        (Err(e), _) | (_, Err(e)) => Err(e.clone()),
                    };
                    match applied {
                        Ok(()) if exists => Some(outcome(&namespace, &datacenter, DatacenterOutcome::Updated)),
                        Ok(()) => Some(outcome(&namespace, &datacenter, DatacenterOutcome::Created)),
                        Err(e) => Some(outcome(
                            &namespace,
                            &datacenter,
                            DatacenterOutcome::ApplyFailed(format!(
                                "applying CassandraDatacenter {namespace}/{datacenter} in region {region:?}: {e}"
                            )),
                        )),
                    }
                }
                Operation::Delete {
                    namespace,
                    datacenter,
                    annotate_first,
                } => {
                    let deleted = match &client {
                        Ok(client) => {
                            delete_datacenter(client, cluster, &namespace, &datacenter, annotate_first)
                                .await
                                .map_err(|e| e.to_string())
                        }
                        Err(e) => Err(e.clone()),
                    };
                    Some(match deleted {
                        Ok(()) => outcome(&namespace, &datacenter, DatacenterOutcome::Deleted),
                        Err(e) => outcome(
                            &namespace,
                            &datacenter,
                            DatacenterOutcome::DeleteFailed(format!(
                                "deleting CassandraDatacenter {namespace}/{datacenter} in region {region:?}: {e}"
                            )),
                        ),
                    })
                }
            }
        }
    });
    futures::future::join_all(writes).await.into_iter().flatten().collect()
}

/// The object applied for a datacenter: the plan's, in its namespace, without status.
fn datacenter_body(desired: &CassandraDatacenter, namespace: &str) -> CassandraDatacenter {
    let mut body = desired.clone();
    // Status belongs to cass-operator.
    body.status = None;
    body.metadata.namespace = Some(namespace.to_string());
    body
}

async fn delete_datacenter(
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
            Some(deleting) => super::takeover::release(&api, name, Some(&deleting.metadata)).await,
            None => Ok(()),
        },
        Err(kube::Error::Api(response)) if response.is_not_found() => Ok(()),
        Err(error) => Err(error),
    }
}

/// `selector` narrowed to the generated ConfigMaps (the data plane makes ConfigMaps too).
fn generated_config_maps(selector: &str) -> String {
    format!(
        "{selector},{}",
        crate::workload::generated::GENERATED_CONFIG_MAP_SELECTOR
    )
}

/// Deletes every object of kind `K` matching `selector` in `namespaces` (none: everywhere).
async fn delete_labelled<K>(
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

/// Writes the status with server-side apply, only when it changed.
async fn write_status(
    api: &Api<K8ssandraCluster>,
    k8c: &K8ssandraCluster,
    status: K8ssandraClusterStatus,
) -> Result<(), ReconcileError> {
    if k8c.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let write_error = |source| ReconcileError::WriteStatus {
        namespace: k8c.namespace().unwrap_or_default(),
        name: k8c.name_any(),
        source,
    };
    let body = serde_json::json!({
        "apiVersion": K8ssandraCluster::api_version(&()),
        "kind": K8ssandraCluster::kind(&()),
        "status": status,
    });
    api.patch_status(
        &k8c.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(write_error)?;
    Ok(())
}

/// Deletes every remote CassandraDatacenter labelled for this cluster, region by region. Ok
/// (the finalizer goes) only when none is left, or when the user asked to orphan them.
async fn cleanup_cluster(
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
        super::secrets::orphan_copies(&context.hub, k8c).await.map_err(|pending| {
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
fn forget_cluster(context: &ControllerContext, k8c: &K8ssandraCluster) {
    let (namespace, name) = (k8c.namespace().unwrap_or_default(), k8c.name_any());
    context.operations.forget(&ObjectRef::from_obj(k8c));
    context.secret_caches.passwords.forget_cluster(&namespace, &name);
    if let Ok(resolver) = &context.resolver {
        resolver.forget_cluster(&format!("{namespace}/{name}"));
    }
    context.ops.metrics.fanout_forget(&format!("{namespace}/{name}"));
}

/// What is still in the way of deleting the cluster in this region (empty when nothing is).
async fn cleanup_region(
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
    if let Err(error) = super::components::delete_all(&client, namespaces, selector).await {
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
            && let Err(error) = super::takeover::release(&namespaced, &dc_name, Some(seen)).await
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

#[cfg(test)]
mod seed_refresh_tests {
    use super::*;

    #[test]
    fn a_cluster_with_host_name_seeds_comes_back_when_their_answers_run_out() {
        let steady = Duration::from_secs(300);
        assert_eq!(sooner_for_seeds(steady, None), steady);
        assert_eq!(
            sooner_for_seeds(steady, Some(Duration::from_secs(42))),
            Duration::from_secs(42)
        );
        assert_eq!(
            sooner_for_seeds(Duration::from_secs(5), Some(Duration::from_secs(42))),
            Duration::from_secs(5)
        );
        assert_eq!(
            sooner_for_seeds(steady, Some(Duration::ZERO)),
            Duration::from_secs(1)
        );
    }
}
