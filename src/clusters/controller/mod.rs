//! The ClientConfig controller: keeps the [`Registry`] in step with the ClientConfigs of the
//! operator namespace and their kubeconfig Secrets, and writes each ClientConfig's status.
//!
//! Deletion is handled by absence, not with a finalizer: the registry lives in memory only and is
//! rebuilt from what exists at every start, so there is nothing outside the process to clean up,
//! and a finalizer would only leave ClientConfigs stuck when the operator is uninstalled. The
//! controller runs on its own reflector so that it sees delete events (a kube-runtime Controller
//! only reconciles objects that exist): a deleted ClientConfig leaves the registry as soon as
//! the store has dropped it, and after every re-list the registry is compared with the store, for
//! deletions that happened while the watch was down.
//!
//! Stages: `observe` (gather the kubeconfig, validate it, install the region in the registry),
//! [`super::status::desired_status`] (pure), then the status write and an Event on a Ready
//! transition, here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Error as ControllerError};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use tracing::{debug, info, warn};

mod observe;

use observe::{observe, older_claimant};

use super::change::{ChangeKind, RegionChange};
use super::kubeconfig::KubeconfigPolicy;
use super::registry::Registry;
use super::status::{Observation, desired_status, next_time_based_change};
use crate::api::client_config::{ClientConfig, ClientConfigStatus};
use crate::events::{Events, Notice};

/// Field manager of every status write of this controller.
pub const FIELD_MANAGER: &str = "federator-clientconfig";

/// Longest wait before a time-based status change is looked at (credential expiry).
const MAX_TIME_BASED_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Errors of one reconcile; none carries Secret data.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reading Secret {namespace}/{name} from the hub: {source}")]
    ReadSecret {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("writing the status of ClientConfig {namespace}/{name}: {source}")]
    WriteStatus {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("{what} took longer than {}s", .timeout.as_secs_f64())]
    Timeout { what: String, timeout: Duration },
}

impl crate::ops::ErrorLabel for ReconcileError {
    const KINDS: &'static [&'static str] = &["read_secret", "write_status", "timeout"];
    fn metric_label(&self) -> &'static str {
        match self {
            ReconcileError::ReadSecret { .. } => "read_secret",
            ReconcileError::WriteStatus { .. } => "write_status",
            ReconcileError::Timeout { .. } => "timeout",
        }
    }
}

/// Everything a reconcile needs.
pub struct ControllerContext {
    pub client: kube::Client,
    pub namespace: String,
    pub registry: Registry,
    pub policy: KubeconfigPolicy,
    /// Bound on every hub request the controller makes.
    pub request_timeout: Duration,
    store: Store<ClientConfig>,
    events: Events,
    /// Failed objects' retry delays.
    backoff: crate::ops::RetryBackoff,
    /// Events published from the error policy run here, and stop with the operator.
    fence: crate::ops::WriteFence,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    namespace: String,
    registry: Registry,
    policy: KubeconfigPolicy,
    fence: crate::ops::WriteFence,
    ops: crate::ops::Ops,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let request_timeout = registry.settings().request_timeout;
    let client_configs: Api<ClientConfig> = Api::namespaced(client.clone(), &namespace);
    // Only which Secret changed matters here (the reconcile reads it): a metadata watch, so
    // the namespace's Secret data is neither downloaded nor held by this watch.
    let secrets: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), &namespace);
    let (store, writer) = reflector::store::<ClientConfig>();
    let on_delete = registry.clone();
    let after_relist = (registry.clone(), store.clone());
    // The reflector has applied each event before it reaches `inspect`, so requeued claimants of
    // a released context no longer see the deleted ClientConfig.
    let client_config_events = reflector::reflector(
        writer,
        watcher(client_configs, watcher::Config::default()).default_backoff(),
    )
    .inspect(move |event| match event {
        Ok(watcher::Event::Delete(deleted)) => on_delete.release(&deleted.name_any(), None),
        Ok(watcher::Event::InitDone) => release_deleted(&after_relist.1, &after_relist.0),
        _ => {}
    })
    .applied_objects();
    let controller = Controller::for_stream(client_config_events, store.clone());

    let by_secret = store.clone();
    let by_change = store.clone();
    let region_triggers = registry
        .changes()
        .flat_map(move |change| stream::iter(objects_to_requeue(&by_change, &change)));

    ops.health.track_cache("clientconfig", store.clone());
    let context = Arc::new(ControllerContext {
        events: Events::new(client.clone(), FIELD_MANAGER),
        client,
        namespace: namespace.clone(),
        registry: registry.clone(),
        policy,
        request_timeout,
        store: store.clone(),
        backoff: crate::ops::RetryBackoff::default(),
        fence,
    });
    let backoff = context.backoff.clone();

    info!(namespace = %namespace, "ClientConfig controller started");
    controller
        .watches(
            secrets,
            watcher::Config::default(),
            move |secret: PartialObjectMeta<Secret>| {
                client_configs_using_secret(&by_secret, &secret.name_any())
            },
        )
        .reconcile_on(region_triggers)
        .graceful_shutdown_on(shutdown)
        .run(
            crate::ops::instrument("clientconfig", ClientConfig::context_name, &backoff, &ops.metrics, reconcile),
            error_policy,
            context,
        )
        .for_each(|result| {
            match result {
                Ok((object, _)) => debug!(client_config = %object.name, "reconciled"),
                // A Secret event for a ClientConfig deleted meanwhile: nothing to do.
                Err(ControllerError::ObjectNotFound(_)) => {}
                Err(ControllerError::ReconcilerFailed(error, object)) => {
                    warn!(client_config = %object.name, error = %error, "reconcile failed; retrying");
                }
                Err(error) => warn!(error = %error, "ClientConfig controller"),
            }
            futures::future::ready(())
        })
        .await;
    info!("ClientConfig controller stopped");
}

/// The ClientConfigs whose Secret this is.
fn client_configs_using_secret(
    store: &Store<ClientConfig>,
    name: &str,
) -> Vec<ObjectRef<ClientConfig>> {
    store
        .state()
        .iter()
        .filter(|cc| cc.spec.kube_config_secret.name == name)
        .map(|cc| ObjectRef::from_obj(cc.as_ref()))
        .collect()
}

/// The ClientConfigs to look at again after a registry change: health changes go to the
/// status; a context released or taken over may resolve or create a conflict.
fn objects_to_requeue(
    store: &Store<ClientConfig>,
    change: &RegionChange,
) -> Vec<ObjectRef<ClientConfig>> {
    let all = store.state();
    match change {
        RegionChange::Resync => all.iter().map(|cc| ObjectRef::from_obj(cc.as_ref())).collect(),
        RegionChange::Context { context, kind } => match kind {
            ChangeKind::Reachable
            | ChangeKind::Unreachable
            | ChangeKind::Identity
            | ChangeKind::Removed
            | ChangeKind::Claimed => all
                .iter()
                .filter(|cc| cc.context_name() == *context)
                .map(|cc| ObjectRef::from_obj(cc.as_ref()))
                .collect(),
            // Made by this controller's own reconciles, which write the status themselves.
            ChangeKind::Added | ChangeKind::Replaced | ChangeKind::Misconfigured => Vec::new(),
            // Shown by the objects whose controllers watch.
            ChangeKind::WatchProblem => Vec::new(),
        },
    }
}

/// Drops regions whose ClientConfig is not in the store (deleted while the watch was down).
fn release_deleted(store: &Store<ClientConfig>, registry: &Registry) {
    let existing: std::collections::HashSet<String> =
        store.state().iter().map(|cc| cc.name_any()).collect();
    for summary in registry.summaries() {
        if !existing.contains(&summary.source) {
            registry.release(&summary.source, None);
        }
    }
}

fn error_policy(
    client_config: Arc<ClientConfig>,
    error: &ReconcileError,
    ctx: Arc<ControllerContext>,
) -> Action {
    // Repeats of the same failure fold into one event series (kube's Recorder).
    let notice = Notice::warning("ReconcileFailed", "Reconcile", error.to_string());
    let delay = ctx.backoff.failed(&crate::ops::object_key(client_config.as_ref()));
    let fence = ctx.fence.clone();
    fence.spawn(async move { ctx.events.publish(client_config.as_ref(), &notice).await });
    Action::requeue(delay)
}

/// The event for a change of the Ready condition (None when it did not change): became Ready,
/// became unreachable or rejected, kubeconfig refused, context conflict.
fn ready_transition(
    previous: Option<&ClientConfigStatus>,
    next: &ClientConfigStatus,
    context: &str,
) -> Option<Notice> {
    let ready = |status: Option<&ClientConfigStatus>| {
        status
            .and_then(|s| s.conditions.as_deref())
            .and_then(|c| crate::api::shared::find_condition(c, super::status::READY))
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let (status, reason, message) = ready(Some(next))?;
    let before = ready(previous);
    if before.as_ref().is_some_and(|(s, r, _)| *s == status && *r == reason) {
        return None;
    }
    match status.as_str() {
        "True" => {
            let version = next.server_version.as_deref().unwrap_or("unknown version");
            Some(Notice::normal(
                "Connected",
                "Probe",
                format!("region {context:?} is reachable (Kubernetes {version})"),
            ))
        }
        "False" => Some(Notice::warning(
            &reason,
            "Probe",
            format!("region {context:?}: {message}"),
        )),
        // Probing: the first probe has not finished; nothing worth telling yet.
        _ => None,
    }
}

async fn reconcile(
    client_config: Arc<ClientConfig>,
    ctx: Arc<ControllerContext>,
) -> Result<Action, ReconcileError> {
    let name = client_config.name_any();
    let context = client_config.context_name();
    if client_config.meta().deletion_timestamp.is_some() {
        ctx.registry.release(&name, None);
        return Ok(Action::await_change());
    }
    // A contextName that was edited leaves the old context.
    ctx.registry.release(&name, Some(&context));

    let observation = match older_claimant(&ctx.store, &client_config, &context) {
        Some(holder) => {
            ctx.registry.release(&name, None);
            Observation::Conflict {
                context: context.clone(),
                holder,
            }
        }
        None => observe(&client_config, &ctx, &name, &context).await?,
    };

    let status = desired_status(
        client_config.status.as_ref(),
        client_config.meta().generation,
        &observation,
        Timestamp::now(),
    );
    if client_config.status.as_ref() != Some(&status) {
        write_status(&ctx, &name, &status).await?;
        if let Some(notice) = ready_transition(client_config.status.as_ref(), &status, &context) {
            ctx.events.publish(client_config.as_ref(), &notice).await;
        }
        info!(
            client_config = %name,
            context = %context,
            ready = ready_reason(&status),
            "status updated"
        );
    }

    let expiry = match &observation {
        Observation::Connected {
            credential_expiry, ..
        } => *credential_expiry,
        _ => None,
    };
    Ok(match next_time_based_change(expiry, Timestamp::now()) {
        Some(wait) => Action::requeue(wait.min(MAX_TIME_BASED_WAIT) + Duration::from_secs(1)),
        None => Action::await_change(),
    })
}

fn ready_reason(status: &ClientConfigStatus) -> &str {
    status
        .conditions
        .as_deref()
        .and_then(|c| crate::api::shared::find_condition(c, super::status::READY))
        .map(|c| c.reason.as_str())
        .unwrap_or("")
}

/// Writes the status with server-side apply (the caller writes only a changed one).
async fn write_status(
    ctx: &ControllerContext,
    name: &str,
    status: &ClientConfigStatus,
) -> Result<(), ReconcileError> {
    let api: Api<ClientConfig> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let patch = serde_json::json!({
        "apiVersion": ClientConfig::api_version(&()),
        "kind": ClientConfig::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    tokio::time::timeout(
        ctx.request_timeout,
        api.patch_status(name, &params, &Patch::Apply(&patch)),
    )
    .await
    .map_err(|_| ReconcileError::Timeout {
        what: format!(
            "writing the status of ClientConfig {}/{name}",
            ctx.namespace
        ),
        timeout: ctx.request_timeout,
    })?
    .map_err(|source| ReconcileError::WriteStatus {
        namespace: ctx.namespace.clone(),
        name: name.to_string(),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ready(status: &str, reason: &str, message: &str) -> ClientConfigStatus {
        ClientConfigStatus {
            server_version: Some("v1.34.0".into()),
            conditions: Some(vec![crate::api::shared::new_condition(
                super::super::status::READY,
                status,
                reason,
                message,
                Some(1),
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
            )]),
            ..Default::default()
        }
    }

    #[test]
    fn events_follow_ready_transitions_only() {
        let probing = with_ready("Unknown", "Probing", "");
        let ready = with_ready("True", "Reachable", "");
        let down = with_ready("False", "Unreachable", "connection refused");
        let refused = with_ready("False", "SecretNotFound", "Secret ns/x does not exist");

        assert_eq!(ready_transition(None, &probing, "east"), None);
        let connected = ready_transition(Some(&probing), &ready, "east").expect("event");
        assert_eq!(
            (connected.reason.as_str(), connected.warning),
            ("Connected", false)
        );
        assert_eq!(ready_transition(Some(&ready), &ready, "east"), None);
        let lost = ready_transition(Some(&ready), &down, "east").expect("event");
        assert!(lost.warning);
        assert_eq!(lost.reason, "Unreachable");
        assert!(lost.note.contains("connection refused"), "{}", lost.note);
        // Same reason again (e.g. another message): already told.
        let again = with_ready("False", "Unreachable", "timed out");
        assert_eq!(ready_transition(Some(&down), &again, "east"), None);
        let refusal = ready_transition(Some(&down), &refused, "east").expect("event");
        assert_eq!(refusal.reason, "SecretNotFound");
    }
}
