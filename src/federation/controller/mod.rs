//! The K8ssandraCluster controller: the I/O around the pure core of `federation` (see its module
//! docs for the call order). Control-plane mode only. This file is the driver (`run`, and
//! `apply_cluster` calling the stages in turn); each stage has a module: `gather` (read, then
//! plan), `converge` (decide and apply, with `seeding` and `write`), `report` (status, Events,
//! when to look again), `cleanup` (deletion), and `context` what they share.
//!
//! Each reconcile looks at every region in parallel, each request bounded by the region's own
//! timeout (the region client carries it); a region that is unknown or unavailable becomes a
//! `RemoteState` for its datacenters, never an error that holds up the other regions.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::api::PartialObjectMeta;
use kube::runtime::controller::{Action, Error as ControllerError};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, Predicate, WatchStreamExt, predicates, watcher};
use kube::{Api, ResourceExt};
use tracing::{debug, info, warn};

use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::api::replicated_secret::ReplicatedSecret;
use crate::cache::{reflected, scoped};
use crate::clusters::{RegionChange, Registry};
use crate::events::Events;
use crate::federation::referenced::{ReferencedConfigMaps, referenced_by};
use crate::federation::seeds::{CachingResolver, HickoryResolver};
use crate::federation::status::invalid_spec_status;
use crate::federation::watches::RegionCaches;
use crate::workload::labels::K8SSANDRA_CLUSTER_FINALIZER;

mod cleanup;
mod context;
mod converge;
mod gather;
mod keyspaces;
mod reaper_registration;
mod rebuild;
mod remembered;
mod report;
mod seeding;
mod write;

use cleanup::*;
pub use context::*;
use converge::converge;
use gather::gather_and_plan;
use report::{next_look, publish_transitions, status_input, status_of, steady_requeue};

/// The `controller` label of this controller's metrics.
const CONTROLLER: &str = "k8ssandracluster";

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    hub: kube::Client,
    registry: Registry,
    watch_namespaces: Vec<String>,
    management: crate::cassandra::management::Access,
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
        keyspace_memo: Default::default(),
        reaper_registrations: Default::default(),
        rebuilds_ended: Default::default(),
        management,
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
            crate::ops::instrument(CONTROLLER, region_names, &backoff, &metrics, reconcile),
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

/// Gather and plan, apply, report: the stages of one reconcile of a cluster that is not being
/// deleted.
async fn apply_cluster(
    k8c: &K8ssandraCluster,
    api: &Api<K8ssandraCluster>,
    context: &Arc<ControllerContext>,
) -> Result<Action, ReconcileError> {
    let (cluster_plan, mut observed) = match gather_and_plan(context, k8c).await {
        Ok(planned) => planned,
        Err(error) => {
            // Nothing is applied from a spec that cannot be planned; status says why.
            let status = invalid_spec_status(&status_input(k8c, None, None), &error);
            publish_transitions(context, k8c, &status, &[]).await;
            write_status(api, k8c, status).await?;
            return Ok(Action::requeue(steady_requeue()));
        }
    };
    context.referenced.set(&ObjectRef::from_obj(k8c), referenced_by(&cluster_plan));
    let applied = converge(context, k8c, &cluster_plan, &mut observed).await;
    let metrics = &context.ops.metrics;
    metrics.region_failures(CONTROLLER, applied.failures.iter().map(|f| f.category));
    let metrics_key = format!("{}/{}", k8c.namespace().unwrap_or_default(), k8c.name_any());
    metrics.fanout_progress(
        &metrics_key,
        k8c.metadata.generation,
        applied.everywhere(),
        &applied.by_region(),
    );
    let status = status_of(k8c, &cluster_plan, &observed, &applied);
    publish_transitions(context, k8c, &status, &applied.outcomes).await;
    for notice in applied.keyspaces.notices.iter().chain(&applied.rebuilds.notices) {
        context.events.publish(k8c, notice).await;
    }
    write_status(api, k8c, status).await?;
    Ok(Action::requeue(next_look(&observed, &applied)))
}
