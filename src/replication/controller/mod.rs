//! The ReplicatedSecret controller: gather (sources in the hub, copies in each target) ->
//! decide per copy ([`crate::replication::desired`], pure) -> apply and prune per target
//! (`sync`), targets in parallel, each bounded by its region client's timeout -> status (one
//! condition per target) and Events on transitions (`report`); `cleanup` on deletion,
//! `selecting` for the triggers. This file is the driver. Control-plane mode only.
//!
//! Triggers: the ReplicatedSecret itself, any Secret of its namespace in the hub (sources), its
//! copies in any region ([`super::watches`]), and the registry's region changes.

use std::future::Future;
use std::sync::Arc;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::{Action, Error as ControllerError};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tracing::{debug, info, warn};

use crate::api::replicated_secret::ReplicatedSecret;
use crate::cache::{reflected, scoped};
use crate::clusters::{FailureCategory, RegionChange, Registry};
use crate::events::{Events, Notice};
use crate::replication::desired::{
    REASON_INVALID_NAME, REASON_INVALID_SELECTOR, RECREATE_IMMUTABLE_ANNOTATION,
    REPLICATED_SECRET_FINALIZER, REPLICATED_SECRET_NAME_LABEL, ReplicationKey, TargetOutcome,
    may_hold_copies, remembered_targets, replication_status, selector, sources, targets,
};

/// Field manager of the copies and of the ReplicatedSecret status.
pub const FIELD_MANAGER: &str = "federator-replication";
/// Reporting controller of the Events.
const EVENTS_CONTROLLER: &str = "federator-replicatedsecret";
/// The `controller` label of this controller's metrics.
const CONTROLLER: &str = "replicatedsecret";

mod cleanup;
mod report;
mod selecting;
mod sync;

use cleanup::cleanup;
use report::{next_look, publish_transitions, write_status};
use selecting::SelectingReplicatedSecrets;
use sync::{list_sources, prune_target, sync_target};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("ReplicatedSecret {name} has no namespace")]
    MissingNamespace { name: String },
    #[error("listing the source Secrets of ReplicatedSecret {namespace}/{name}: {source}")]
    ListSources {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("writing the status of ReplicatedSecret {namespace}/{name}: {source}")]
    WriteStatus {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("copies of ReplicatedSecret {namespace}/{name} not pruned yet: {pending}")]
    CleanupPending {
        namespace: String,
        name: String,
        pending: String,
    },
    #[error("finalizer of a ReplicatedSecret: {0}")]
    Finalizer(#[source] Box<finalizer::Error<ReconcileError>>),
}

impl crate::ops::ErrorLabel for ReconcileError {
    const KINDS: &'static [&'static str] = &[
        "missing_namespace",
        "list_sources",
        "write_status",
        "cleanup_pending",
        "finalizer",
    ];
    fn metric_label(&self) -> &'static str {
        match self {
            ReconcileError::MissingNamespace { .. } => "missing_namespace",
            ReconcileError::ListSources { .. } => "list_sources",
            ReconcileError::WriteStatus { .. } => "write_status",
            ReconcileError::CleanupPending { .. } => "cleanup_pending",
            ReconcileError::Finalizer(error) => crate::ops::finalizer_label(error),
        }
    }
}

struct Context {
    hub: kube::Client,
    registry: Registry,
    events: Events,
    watch_namespaces: Vec<String>,
    selecting: Arc<SelectingReplicatedSecrets>,
    metrics: Arc<crate::ops::Metrics>,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    hub: kube::Client,
    registry: Registry,
    watch_namespaces: Vec<String>,
    ops: crate::ops::Ops,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (store, replicated_events) = reflected(
        scoped::<ReplicatedSecret>(&hub, &watch_namespaces),
        watcher::Config::default(),
    );
    let replicated_changes = replicated_events.applied_objects();
    let sources = scoped::<Secret>(&hub, &watch_namespaces);
    let controller = Controller::for_stream(replicated_changes, store.clone());
    ops.health.track_cache("replicatedsecret", store.clone());
    let source_store = store.clone();
    let selecting = Arc::new(SelectingReplicatedSecrets::default());
    let mapper_selecting = selecting.clone();
    let region_store = store.clone();
    let region_triggers = registry
        .changes()
        .flat_map(move |change| stream::iter(using_change(&region_store, &change)));
    let (copy_triggers, manage_watches) = super::watches::copy_changes(registry.clone());
    let context = Arc::new(Context {
        events: Events::new(hub.clone(), EVENTS_CONTROLLER),
        hub,
        registry,
        watch_namespaces,
        selecting,
        metrics: Arc::clone(&ops.metrics),
    });
    info!("ReplicatedSecret controller started");
    let backoff = crate::ops::RetryBackoff::default();
    let controller = controller
        // A Secret of the hub re-queues every ReplicatedSecret of its namespace: one whose labels
        // stopped matching must be seen too (its copies are pruned).
        .watches(sources, watcher::Config::default(), move |secret| {
            mapper_selecting.concerned(&source_store, &secret)
        })
        .reconcile_on(stream::select(region_triggers, copy_triggers))
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(crate::ops::MAX_CONCURRENT_RECONCILES),
        )
        .graceful_shutdown_on(shutdown)
        .run(
            // The hub holds every ReplicatedSecret; its targets name the regions.
            crate::ops::instrument(CONTROLLER, |_: &ReplicatedSecret| String::new(), &backoff, &ops.metrics, reconcile),
            backoff.error_policy(),
            context,
        )
        .for_each(|result| {
            match result {
                Ok((object, _)) => debug!(replicated_secret = %object, "reconciled"),
                Err(ControllerError::ObjectNotFound(_)) => {}
                Err(ControllerError::ReconcilerFailed(error, object)) => {
                    warn!(replicated_secret = %object, error = %error, "reconcile failed; retrying");
                }
                Err(error) => warn!(error = %error, "ReplicatedSecret controller"),
            }
            futures::future::ready(())
        });
    futures::future::select(Box::pin(controller), Box::pin(manage_watches)).await;
    info!("ReplicatedSecret controller stopped");
}

/// The ReplicatedSecrets targeting the changed context (per spec or status).
fn using_change(
    store: &Store<ReplicatedSecret>,
    change: &RegionChange,
) -> Vec<ObjectRef<ReplicatedSecret>> {
    store
        .state()
        .iter()
        .filter(|rs| match change {
            RegionChange::Resync => true,
            RegionChange::Context { context, .. } => {
                let namespace = rs.namespace().unwrap_or_default();
                targets(rs, &namespace).iter().any(|t| &t.context == context)
                    || remembered_targets(rs.status.as_ref()).iter().any(|(c, _)| c == context)
            }
        })
        .map(|rs| ObjectRef::from_obj(rs.as_ref()))
        .collect()
}

async fn reconcile(
    rs: Arc<ReplicatedSecret>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let namespace = rs.namespace().ok_or_else(|| ReconcileError::MissingNamespace {
        name: rs.name_any(),
    })?;
    if !context.watch_namespaces.is_empty() && !context.watch_namespaces.contains(&namespace) {
        return Ok(Action::await_change());
    }
    let api: Api<ReplicatedSecret> = Api::namespaced(context.hub.clone(), &namespace);
    let result = finalizer::finalizer(
        &api,
        REPLICATED_SECRET_FINALIZER,
        rs.clone(),
        |event| async {
            match event {
                FinalizerEvent::Apply(rs) => replicate(&rs, &api, &context).await,
                FinalizerEvent::Cleanup(rs) => cleanup(&rs, &context).await,
            }
        },
    )
    .await
    .map_err(|error| ReconcileError::Finalizer(Box::new(error)));
    if let Err(error) = &result {
        context
            .events
            .publish(
                rs.as_ref(),
                &Notice::warning("ReconcileError", "Replicate", error.to_string()),
            )
            .await;
    }
    result
}

fn key_of(rs: &ReplicatedSecret) -> ReplicationKey {
    ReplicationKey {
        namespace: rs.namespace().unwrap_or_default(),
        name: rs.name_any(),
    }
}

/// Gather, replicate into every target, prune removed targets, write status.
async fn replicate(
    rs: &ReplicatedSecret,
    api: &Api<ReplicatedSecret>,
    context: &Context,
) -> Result<Action, ReconcileError> {
    let key = key_of(rs);
    let wanted = targets(rs, &key.namespace);
    let outcomes = match selector(rs) {
        _ if !key.has_valid_label_value() => wanted
            .iter()
            .map(|t| TargetOutcome {
                context: t.context.clone(),
                namespace: t.namespace.clone(),
                replicated: false,
                reason: REASON_INVALID_NAME.into(),
                failure: Some(FailureCategory::Rejected),
                message: format!(
                    "the copies' label {REPLICATED_SECRET_NAME_LABEL}={} would be longer than 63 characters; use a shorter name",
                    key.label_value()
                ),
            })
            .collect(),
        Err(error) => wanted
            .iter()
            .map(|t| TargetOutcome {
                context: t.context.clone(),
                namespace: t.namespace.clone(),
                replicated: false,
                reason: REASON_INVALID_SELECTOR.into(),
                failure: Some(FailureCategory::Rejected),
                message: format!("spec.selector cannot be used: {error}"),
            })
            .collect(),
        Ok(selector) => {
            let secrets = list_sources(context, &key, selector.as_ref()).await?;
            let selector = selector.unwrap_or_default();
            context.selecting.record(rs, &secrets, &selector);
            let sources = match rs.spec.selector {
                Some(_) => sources(&secrets, &selector),
                None => Vec::new(),
            };
            let recreate = rs
                .annotations()
                .get(RECREATE_IMMUTABLE_ANNOTATION)
                .is_some_and(|v| v == "true");
            let syncs = wanted
                .iter()
                .map(|target| sync_target(context, &key, target, &selector, &sources, recreate));
            let mut outcomes = futures::future::join_all(syncs).await;
            // Targets taken out of the spec: their copies go; until then they keep a condition.
            let removed = remembered_targets(rs.status.as_ref())
                .into_iter()
                .filter(|(c, n)| !wanted.iter().any(|t| &t.context == c && &t.namespace == n));
            let prunes = removed.map(|(c, n)| {
                let placed = may_hold_copies(rs, &c, &n);
                prune_target(context, &key, c, n, placed)
            });
            outcomes.extend(
                futures::future::join_all(prunes)
                    .await
                    .into_iter()
                    .flatten(),
            );
            outcomes
        }
    };
    let now = Time(Timestamp::now());
    let status = replication_status(rs.status.as_ref(), &outcomes, rs.metadata.generation, &now);
    publish_transitions(context, rs, rs.status.as_ref(), &outcomes).await;
    write_status(api, rs, status).await?;
    let failures = outcomes.iter().filter_map(|o| o.failure);
    context.metrics.region_failures(CONTROLLER, failures);
    Ok(Action::requeue(next_look(&outcomes)))
}
