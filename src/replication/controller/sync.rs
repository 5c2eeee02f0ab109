//! Gather and apply per target: the sources in the hub, then each target's copies made to match
//! them (copies that are no longer wanted pruned), every failure told as a condition reason with
//! its category.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams};
use kube::core::Selector;
use kube::{Api, ResourceExt};

use crate::apply::apply_if_changed;
use crate::clusters::{FailureCategory, RegionError};
use crate::replication::desired::{
    CopyAction, ORPHAN_ANNOTATION, REASON_CONFLICT, REASON_FAILED, REASON_IMMUTABLE, REASON_LOOP,
    REASON_NAMESPACE_MISSING, REASON_PRUNE_PENDING, REASON_REPLICATED, REASON_UNKNOWN_CONTEXT,
    REASON_UNREACHABLE, RECREATE_IMMUTABLE_ANNOTATION, ReplicationKey, Target, TargetOutcome,
    copy_action, describe_target, desired_copy, is_loop, prunable,
};

use super::{Context, FIELD_MANAGER, ReconcileError};

pub(super) async fn list_sources(
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
    failed(
        target,
        reason,
        FailureCategory::of_region(error),
        error.to_string(),
    )
}

pub(super) fn failed(
    target: (&str, &str),
    reason: &str,
    category: FailureCategory,
    message: String,
) -> TargetOutcome {
    TargetOutcome {
        context: target.0.to_string(),
        namespace: target.1.to_string(),
        replicated: false,
        reason: reason.to_string(),
        message,
        failure: Some(category),
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
                FailureCategory::MissingReference,
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
                FailureCategory::MissingReference,
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
            FailureCategory::Unreachable,
            format!("{what} in {}: {error}", describe_target(target.0, target.1)),
        ),
        _ => failed(
            target,
            REASON_FAILED,
            FailureCategory::of_kube(error),
            format!("{what} in {}: {error}", describe_target(target.0, target.1)),
        ),
    }
}

/// Brings one target in line: every source copied, unwanted copies pruned.
pub(super) async fn sync_target(
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
            FailureCategory::Rejected,
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
    let mut problems: Vec<(&str, FailureCategory, String)> = Vec::new();
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
                    FailureCategory::Conflict,
                    format!(
                        "Secret {name} exists there and is {by}: it is not overwritten; delete or rename it, or give the target a targetPrefix"
                    ),
                ));
                continue;
            }
            CopyAction::Immutable => {
                problems.push((
                    REASON_IMMUTABLE,
                    FailureCategory::Conflict,
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
            problems.push((
                REASON_FAILED,
                FailureCategory::of_kube(&error),
                outcome.message,
            ));
        }
    }
    for name in prunable(&copies, key, &wanted) {
        if let Err(error) = delete_copy(&api, &name).await {
            problems.push((
                REASON_FAILED,
                FailureCategory::of_kube(&error),
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
            failure: None,
            message: if wanted.is_empty() {
                "no Secret matches the selector".to_string()
            } else {
                format!(
                    "copied: {}",
                    wanted.into_iter().collect::<Vec<_>>().join(", ")
                )
            },
        },
        Some((reason, category, _)) => failed(
            id,
            reason,
            *category,
            problems.iter().map(|(_, _, m)| m.as_str()).collect::<Vec<_>>().join("; "),
        ),
    }
}

pub(super) async fn delete_copy(api: &Api<Secret>, name: &str) -> Result<(), kube::Error> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(response)) if response.is_not_found() => Ok(()),
        Err(error) => Err(error),
    }
}

/// Deletes every copy of this ReplicatedSecret in a target (orphans stay). None when done; else
/// the target's condition saying what is pending. `placed`: copies may be there
/// ([`may_hold_copies`]).
pub(super) async fn prune_target(
    context: &Context,
    key: &ReplicationKey,
    target_context: String,
    namespace: String,
    placed: bool,
) -> Option<TargetOutcome> {
    let id = (target_context.as_str(), namespace.as_str());
    let pending = |category: FailureCategory, message: String| {
        Some(failed(
            id,
            REASON_PRUNE_PENDING,
            category,
            format!("target removed; its copies are pruned once it can be reached: {message}"),
        ))
    };
    let client = match context.registry.client(&target_context) {
        Ok(client) => client,
        // Copies were made there: its ClientConfig is not loaded yet (a restart) or was deleted.
        // Wait for it rather than leave them behind; the orphan annotation lets go.
        Err(error @ RegionError::UnknownContext { .. }) if placed => {
            return pending(
                FailureCategory::of_region(&error),
                format!(
                    "{error}; restore it, or annotate the ReplicatedSecret {ORPHAN_ANNOTATION}=true to leave the copies"
                ),
            );
        }
        // Never reached: nothing can be there.
        Err(RegionError::UnknownContext { .. }) => return None,
        Err(error) => return pending(FailureCategory::of_region(&error), error.to_string()),
    };
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    let copies = match api.list(&ListParams::default().labels(&key.copy_selector())).await {
        Ok(list) => list.items,
        Err(error) => return pending(FailureCategory::of_kube(&error), error.to_string()),
    };
    for name in prunable(&copies, key, &BTreeSet::new()) {
        if let Err(error) = delete_copy(&api, &name).await {
            return pending(
                FailureCategory::of_kube(&error),
                format!("deleting Secret {name}: {error}"),
            );
        }
    }
    None
}
