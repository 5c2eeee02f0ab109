//! The K8ssandraCluster controller: the I/O around the pure core of `federation` (see its module
//! docs for the call order). Control-plane mode only. This file is the driver (`run`, `apply_cluster`
//! and when to look again); each stage has a module: `gather`, `seeding`,
//! `write` (apply), `cleanup` (deletion), and `context` what they share.
//!
//! Each reconcile looks at every region in parallel, each request bounded by the region's own
//! timeout (the region client carries it); a region that is unknown or unavailable becomes a
//! `RemoteState` for its datacenters, never an error that holds up the other regions.

use std::collections::BTreeSet;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::PartialObjectMeta;
use kube::runtime::controller::{Action, Error as ControllerError};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, Predicate, WatchStreamExt, predicates, watcher};
use kube::{Api, ResourceExt};
use tracing::{debug, info, warn};

use crate::api::k8ssandra_cluster::{K8ssandraCluster, K8ssandraClusterStatus};
use crate::api::replicated_secret::ReplicatedSecret;
use crate::cache::{reflected, scoped};
use crate::clusters::{RegionChange, Registry};
use crate::events::Events;
use crate::federation::notices::{DatacenterOutcome, Outcome, condition_notices, outcome_notices};
use crate::federation::observed::ObservedCluster;
use crate::federation::plan::{PlanInputs, plan_with};
use crate::federation::referenced::{ReferencedConfigMaps, referenced_by};
use crate::federation::rollout::{Actions, Decision, decide};
use crate::federation::seeds::{CachingResolver, HickoryResolver};
use crate::federation::status::{StatusInput, cluster_status, invalid_spec_status};
use crate::federation::watches::RegionCaches;
use crate::workload::labels::{ADOPT_ANNOTATION, K8SSANDRA_CLUSTER_FINALIZER};

mod cleanup;
mod context;
mod gather;
mod seeding;
mod write;

use cleanup::*;
pub use context::*;
use gather::*;
use seeding::*;
use write::*;

/// Re-look while something is being created, deleted or waited for.
const PROGRESSING_REQUEUE: Duration = Duration::from_secs(5);
/// Re-look at a steady cluster: a safety net, since the region watches bring every remote
/// change as it happens. Spread by [`steady_requeue`].
const STEADY_REQUEUE: Duration = Duration::from_secs(300);
/// Re-look while a region lacks the ServiceMonitor CRD the spec's telemetry needs.
const MISSING_CRD_RECHECK: Duration = Duration::from_secs(30);

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
        secret_caches: crate::federation::secrets::SecretCaches {
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
                crate::federation::secrets::read_store_passwords(
                    &context.hub,
                    &context.secret_caches,
                    &located
                ),
                read_user_per_node_config_hashes(context, &located),
            );
            let running = observed.running();
            // With nothing read beyond where the datacenters are, the first plan is the plan.
            if running.num_tokens.is_empty()
                && secret_values.is_empty()
                && per_node_config_hashes.is_empty()
            {
                Ok((located, observed))
            } else {
                let inputs = PlanInputs {
                    running,
                    secret_values,
                    per_node_config_hashes,
                    ..locating
                };
                plan_with(k8c, &inputs).map(|cluster_plan| (cluster_plan, observed))
            }
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
    let secrets = crate::federation::secrets::reconcile(
        &context.hub,
        &context.secret_caches,
        k8c,
        &cluster_plan,
    )
    .await;
    observed.secrets_pending = secrets.pending;
    observed.passwords_missing = cluster_plan.passwords_missing.clone();
    observed.per_node_config_missing = cluster_plan.per_node_config_missing.clone();
    observed.refused_watches =
        context.caches.refused_watches(cluster_contexts(k8c).iter().map(String::as_str));
    let actions = decide(&cluster_plan, &observed);
    let released =
        crate::federation::takeover::release_deleting(&context.registry, &observed).await;
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
        crate::federation::components::reconcile(&context.registry, k8c, &cluster_plan, &observed)
            .await;
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
