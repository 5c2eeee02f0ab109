//! Status, as a stage: Events on transitions, the status write, and when to look again.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use tracing::info;

use crate::api::replicated_secret::{ReplicatedSecret, ReplicatedSecretStatus};
use crate::events::Notice;
use crate::replication::desired::{TargetOutcome, describe_target};

use super::{Context, FIELD_MANAGER, ReconcileError};

/// Re-look at a steady ReplicatedSecret (the watches do the real work).
const STEADY_REQUEUE: Duration = Duration::from_secs(300);
/// Re-look at a target that failed without saying why.
const PROGRESSING_REQUEUE: Duration = Duration::from_secs(5);

/// Steady when every target is replicated; otherwise as soon as the first failure's category
/// says is worth a retry.
pub(super) fn next_look(outcomes: &[TargetOutcome]) -> Duration {
    if outcomes.iter().all(|o| o.replicated) {
        return STEADY_REQUEUE;
    }
    outcomes
        .iter()
        .filter(|o| !o.replicated)
        .map(|o| o.failure.map_or(PROGRESSING_REQUEUE, |c| c.retry_after()))
        .min()
        .unwrap_or(PROGRESSING_REQUEUE)
}

/// An Event per target whose condition changed status or reason.
pub(super) async fn publish_transitions(
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
pub(super) async fn write_status(
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
