//! Deletion: the finalizer prunes the copies from every target the spec or the status names.

use std::collections::BTreeSet;

use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::info;

use crate::api::replicated_secret::ReplicatedSecret;
use crate::replication::desired::{
    ORPHAN_ANNOTATION, describe_target, may_hold_copies, remembered_targets, targets,
};

use super::sync::prune_target;
use super::{Context, ReconcileError, key_of};

/// Finalizer: the copies go from every target the spec or the status names.
pub(super) async fn cleanup(
    rs: &ReplicatedSecret,
    context: &Context,
) -> Result<Action, ReconcileError> {
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
