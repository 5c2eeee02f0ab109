//! The ReplicatedSecret controller: gather (sources in the hub, copies in each target) ->
//! decide per copy ([`super::desired`]) -> apply and prune per target, targets in parallel, each
//! bounded by its region client's timeout -> status (one condition per target) and Events on
//! transitions. Control-plane mode only.
//!
//! Triggers: the ReplicatedSecret itself, any Secret of its namespace in the hub (sources), its
//! copies in any region ([`super::watches`]), and the registry's region changes.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::{Action, Error as ControllerError};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use tracing::{debug, info, warn};

use super::desired::{
    CopyAction, ORPHAN_ANNOTATION, REASON_CONFLICT, REASON_FAILED, REASON_IMMUTABLE,
    REASON_INVALID_NAME, REASON_INVALID_SELECTOR, REASON_LOOP, REASON_NAMESPACE_MISSING,
    REASON_PRUNE_PENDING, REASON_REPLICATED, REASON_UNKNOWN_CONTEXT, REASON_UNREACHABLE,
    RECREATE_IMMUTABLE_ANNOTATION, REPLICATED_SECRET_FINALIZER, REPLICATED_SECRET_NAME_LABEL,
    ReplicationKey, Target, TargetOutcome, copy_action, describe_target, desired_copy, is_loop,
    may_hold_copies, prunable, remembered_targets, replication_status, selector, sources, targets,
};
use crate::api::replicated_secret::{ReplicatedSecret, ReplicatedSecretStatus};
use crate::apply::apply_if_changed;
use crate::cache::{reflected, scoped};
use crate::clusters::{RegionChange, RegionError, Registry};
use crate::events::{Events, Notice};

/// Field manager of the copies and of the ReplicatedSecret status.
pub const FIELD_MANAGER: &str = "federator-replication";
/// Reporting controller of the Events.
const EVENTS_CONTROLLER: &str = "federator-replicatedsecret";
/// Re-look while a target is not replicated (a region down, a conflict being fixed).
const PROGRESSING_REQUEUE: Duration = Duration::from_secs(5);
/// Re-look at a steady ReplicatedSecret (the watches do the real work).
const STEADY_REQUEUE: Duration = Duration::from_secs(300);

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
            crate::ops::instrument("replicatedsecret", |_: &ReplicatedSecret| String::new(), &backoff, &ops.metrics, reconcile),
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

/// Which ReplicatedSecrets selected each hub Secret when it was last seen: a change to a Secret
/// concerns those that select it now and those that selected it before (their copies go), not
/// every ReplicatedSecret of the namespace.
#[derive(Default)]
struct SelectingReplicatedSecrets {
    last_seen: std::sync::Mutex<
        std::collections::HashMap<ObjectRef<Secret>, Vec<ObjectRef<ReplicatedSecret>>>,
    >,
}

impl SelectingReplicatedSecrets {
    /// Notes the Secrets `rs` selects now (so a later relabel that drops one still reaches it).
    fn record(&self, rs: &ReplicatedSecret, secrets: &[Secret], selector: &Selector) {
        let reference = ObjectRef::from_obj(rs);
        let Ok(mut last_seen) = self.last_seen.lock() else {
            return;
        };
        for secret in secrets.iter().filter(|s| selector.matches(s.labels())) {
            let entry = last_seen.entry(ObjectRef::from_obj(secret)).or_default();
            if !entry.contains(&reference) {
                entry.push(reference.clone());
            }
        }
    }

    fn concerned(
        &self,
        replicated: &kube::runtime::reflector::Store<ReplicatedSecret>,
        secret: &Secret,
    ) -> Vec<ObjectRef<ReplicatedSecret>> {
        let namespace = secret.namespace();
        let labels = secret.labels();
        let now: Vec<ObjectRef<ReplicatedSecret>> = replicated
            .state()
            .iter()
            .filter(|rs| rs.namespace() == namespace)
            // An unparsable selector is reported on the ReplicatedSecret: let it see the change.
            .filter(|rs| match super::desired::selector(rs) {
                Ok(Some(selector)) => selector.matches(labels),
                Ok(None) => false,
                Err(_) => true,
            })
            .map(|rs| ObjectRef::from_obj(rs.as_ref()))
            .collect();
        let key = ObjectRef::from_obj(secret);
        let Ok(mut last_seen) = self.last_seen.lock() else {
            return now;
        };
        let mut concerned = last_seen.remove(&key).unwrap_or_default();
        for rs in &now {
            if !concerned.contains(rs) {
                concerned.push(rs.clone());
            }
        }
        if secret.metadata.deletion_timestamp.is_none() && !now.is_empty() {
            last_seen.insert(key, now);
        }
        concerned
    }
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
    Ok(if outcomes.iter().all(|o| o.replicated) {
        Action::requeue(STEADY_REQUEUE)
    } else {
        Action::requeue(PROGRESSING_REQUEUE)
    })
}

async fn list_sources(
    context: &Context,
    key: &ReplicationKey,
    selector: Option<&Selector>,
) -> Result<Vec<Secret>, ReconcileError> {
    let Some(selector) = selector else {
        return Ok(Vec::new());
    };
    let api: Api<Secret> = Api::namespaced(context.hub.clone(), &key.namespace);
    api.list(&ListParams::default().labels_from(selector)).await.map(|list| list.items).map_err(
        |source| ReconcileError::ListSources {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            source,
        },
    )
}

fn region_outcome(target: (&str, &str), error: &RegionError) -> TargetOutcome {
    let reason = match error {
        RegionError::UnknownContext { .. } => REASON_UNKNOWN_CONTEXT,
        RegionError::Unavailable { .. } | RegionError::Misconfigured { .. } => REASON_UNREACHABLE,
    };
    failed(target, reason, error.to_string())
}

fn failed(target: (&str, &str), reason: &str, message: String) -> TargetOutcome {
    TargetOutcome {
        context: target.0.to_string(),
        namespace: target.1.to_string(),
        replicated: false,
        reason: reason.to_string(),
        message,
    }
}

/// A failed call in a target: a missing namespace says so, the rest says what failed.
fn call_failed(target: (&str, &str), what: &str, error: &kube::Error) -> TargetOutcome {
    match error {
        kube::Error::Api(response)
            if response.is_not_found() && response.message.contains("namespace") =>
        {
            failed(
                target,
                REASON_NAMESPACE_MISSING,
                format!(
                    "{} does not exist (Federator does not create namespaces)",
                    describe_target(target.0, target.1)
                ),
            )
        }
        // A namespace being deleted refuses new content until it is gone.
        kube::Error::Api(response)
            if response.code == 403
                && response.message.contains("because it is being terminated") =>
        {
            failed(
                target,
                REASON_NAMESPACE_MISSING,
                format!(
                    "{} is being deleted (Federator does not create namespaces)",
                    describe_target(target.0, target.1)
                ),
            )
        }
        // No answer (connection refused, timeout, TLS): the region, not the request.
        kube::Error::Service(_) | kube::Error::HyperError(_) => failed(
            target,
            REASON_UNREACHABLE,
            format!("{what} in {}: {error}", describe_target(target.0, target.1)),
        ),
        _ => failed(
            target,
            REASON_FAILED,
            format!("{what} in {}: {error}", describe_target(target.0, target.1)),
        ),
    }
}

/// Brings one target in line: every source copied, unwanted copies pruned.
async fn sync_target(
    context: &Context,
    key: &ReplicationKey,
    target: &Target,
    selector: &Selector,
    sources: &[&Secret],
    recreate_immutable: bool,
) -> TargetOutcome {
    let id = (target.context.as_str(), target.namespace.as_str());
    // A context that reaches the hub is the sources' own cluster.
    let placed = Target {
        context: context.registry.canonical(&target.context).to_string(),
        ..target.clone()
    };
    if is_loop(key, &placed, selector, sources) {
        return failed(
            id,
            REASON_LOOP,
            format!(
                "{} is where the sources are: the copies would replace or be selected as sources; give the target another namespace or cluster, or a targetPrefix and dropLabels that take the copies out of the selector",
                target.describe()
            ),
        );
    }
    let client = match context.registry.client(&target.context) {
        Ok(client) => client,
        Err(error) => return region_outcome(id, &error),
    };
    let api: Api<Secret> = Api::namespaced(client, &target.namespace);
    let copies = match api.list(&ListParams::default().labels(&key.copy_selector())).await {
        Ok(list) => list.items,
        Err(error) => return call_failed(id, "listing the copies", &error),
    };
    let mut problems: Vec<(&str, String)> = Vec::new();
    let mut wanted = BTreeSet::new();
    for source in sources {
        let desired = desired_copy(source, key, target);
        let name = desired.name_any();
        wanted.insert(name.clone());
        let live = match copies.iter().find(|c| c.name_any() == name) {
            Some(copy) => Some(copy.clone()),
            None => match api.get_opt(&name).await {
                Ok(found) => found,
                Err(error) => return call_failed(id, "reading a Secret", &error),
            },
        };
        let result = match copy_action(&desired, live.as_ref(), key, recreate_immutable) {
            CopyAction::Conflict { owner } => {
                let by = owner
                    .map(|o| format!("the copy of ReplicatedSecret {o}"))
                    .unwrap_or_else(|| "not a copy made by Federator".into());
                problems.push((
                    REASON_CONFLICT,
                    format!(
                        "Secret {name} exists there and is {by}: it is not overwritten; delete or rename it, or give the target a targetPrefix"
                    ),
                ));
                continue;
            }
            CopyAction::Immutable => {
                problems.push((
                    REASON_IMMUTABLE,
                    format!(
                        "Secret {name} there is immutable and differs from its source; annotate the ReplicatedSecret {RECREATE_IMMUTABLE_ANNOTATION}: \"true\" to replace it"
                    ),
                ));
                continue;
            }
            CopyAction::Recreate => match delete_copy(&api, &name).await {
                Ok(()) => apply_if_changed(&api, FIELD_MANAGER, &desired, None).await,
                Err(error) => Err(error),
            },
            CopyAction::Apply => {
                apply_if_changed(&api, FIELD_MANAGER, &desired, live.as_ref()).await
            }
        };
        if let Err(error) = result {
            let outcome = call_failed(id, &format!("writing Secret {name}"), &error);
            if outcome.reason != REASON_FAILED {
                return outcome;
            }
            problems.push((REASON_FAILED, outcome.message));
        }
    }
    for name in prunable(&copies, key, &wanted) {
        if let Err(error) = delete_copy(&api, &name).await {
            problems.push((
                REASON_FAILED,
                format!("pruning Secret {name} in {}: {error}", target.describe()),
            ));
        }
    }
    match problems.first() {
        None => TargetOutcome {
            context: target.context.clone(),
            namespace: target.namespace.clone(),
            replicated: true,
            reason: REASON_REPLICATED.into(),
            message: if wanted.is_empty() {
                "no Secret matches the selector".to_string()
            } else {
                format!(
                    "copied: {}",
                    wanted.into_iter().collect::<Vec<_>>().join(", ")
                )
            },
        },
        Some((reason, _)) => failed(
            id,
            reason,
            problems.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; "),
        ),
    }
}

async fn delete_copy(api: &Api<Secret>, name: &str) -> Result<(), kube::Error> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(response)) if response.is_not_found() => Ok(()),
        Err(error) => Err(error),
    }
}

/// Deletes every copy of this ReplicatedSecret in a target (orphans stay). None when done; else
/// the target's condition saying what is pending. `placed`: copies may be there
/// ([`may_hold_copies`]).
async fn prune_target(
    context: &Context,
    key: &ReplicationKey,
    target_context: String,
    namespace: String,
    placed: bool,
) -> Option<TargetOutcome> {
    let id = (target_context.as_str(), namespace.as_str());
    let pending = |message: String| {
        Some(failed(
            id,
            REASON_PRUNE_PENDING,
            format!("target removed; its copies are pruned once it can be reached: {message}"),
        ))
    };
    let client = match context.registry.client(&target_context) {
        Ok(client) => client,
        // Copies were made there: its ClientConfig is not loaded yet (a restart) or was deleted.
        // Wait for it rather than leave them behind; the orphan annotation lets go.
        Err(error @ RegionError::UnknownContext { .. }) if placed => {
            return pending(format!(
                "{error}; restore it, or annotate the ReplicatedSecret {ORPHAN_ANNOTATION}=true to leave the copies"
            ));
        }
        // Never reached: nothing can be there.
        Err(RegionError::UnknownContext { .. }) => return None,
        Err(error) => return pending(error.to_string()),
    };
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    let copies = match api.list(&ListParams::default().labels(&key.copy_selector())).await {
        Ok(list) => list.items,
        Err(error) => return pending(error.to_string()),
    };
    for name in prunable(&copies, key, &BTreeSet::new()) {
        if let Err(error) = delete_copy(&api, &name).await {
            return pending(format!("deleting Secret {name}: {error}"));
        }
    }
    None
}

/// Finalizer: the copies go from every target the spec or the status names.
async fn cleanup(rs: &ReplicatedSecret, context: &Context) -> Result<Action, ReconcileError> {
    let key = key_of(rs);
    if rs.annotations().get(ORPHAN_ANNOTATION).is_some_and(|v| v == "true") {
        info!(replicated_secret = %key.label_value(), "orphan annotation: copies left in place");
        return Ok(Action::await_change());
    }
    let mut all: BTreeSet<(String, String)> =
        targets(rs, &key.namespace).into_iter().map(|t| (t.context, t.namespace)).collect();
    all.extend(remembered_targets(rs.status.as_ref()));
    let prunes = all.into_iter().map(|(c, n)| {
        let placed = may_hold_copies(rs, &c, &n);
        prune_target(context, &key, c, n, placed)
    });
    let pending: Vec<String> = futures::future::join_all(prunes)
        .await
        .into_iter()
        .flatten()
        .map(|o| {
            format!(
                "{}: {}",
                describe_target(&o.context, &o.namespace),
                o.message
            )
        })
        .collect();
    if pending.is_empty() {
        info!(replicated_secret = %key.label_value(), "copies pruned");
        return Ok(Action::await_change());
    }
    Err(ReconcileError::CleanupPending {
        namespace: key.namespace,
        name: key.name,
        pending: pending.join("; "),
    })
}

/// An Event per target whose condition changed status or reason.
async fn publish_transitions(
    context: &Context,
    rs: &ReplicatedSecret,
    previous: Option<&ReplicatedSecretStatus>,
    outcomes: &[TargetOutcome],
) {
    for outcome in outcomes {
        let before = previous.and_then(|s| s.conditions.as_ref()).into_iter().flatten().find(|c| {
            c.cluster == outcome.context
                && c.namespace.as_deref() == Some(outcome.namespace.as_str())
        });
        let same = before.is_some_and(|c| {
            (c.status == crate::api::shared::CONDITION_TRUE) == outcome.replicated
                && c.reason.as_deref() == Some(outcome.reason.as_str())
        });
        if same {
            continue;
        }
        let note = format!(
            "{}: {}",
            describe_target(&outcome.context, &outcome.namespace),
            outcome.message
        );
        info!(replicated_secret = %rs.name_any(), namespace = ?rs.namespace(), reason = %outcome.reason, note = %note, "target changed");
        let notice = if outcome.replicated {
            Notice::normal(&outcome.reason, "Replicate", note)
        } else {
            Notice::warning(&outcome.reason, "Replicate", note)
        };
        context.events.publish(rs, &notice).await;
    }
}

/// Writes the status with server-side apply, only when it changed.
async fn write_status(
    api: &Api<ReplicatedSecret>,
    rs: &ReplicatedSecret,
    status: ReplicatedSecretStatus,
) -> Result<(), ReconcileError> {
    if rs.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let body = serde_json::json!({
        "apiVersion": ReplicatedSecret::api_version(&()),
        "kind": ReplicatedSecret::kind(&()),
        "status": status,
    });
    api.patch_status(
        &rs.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| ReconcileError::WriteStatus {
        namespace: rs.namespace().unwrap_or_default(),
        name: rs.name_any(),
        source,
    })?;
    Ok(())
}
