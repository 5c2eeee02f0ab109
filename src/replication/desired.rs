//! The pure core of secret replication: which Secrets are sources, what their copies look like
//! in each target, what to do with a copy that exists, which copies to prune, and the status.
//! No I/O: the controller gathers the inputs and applies the results.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::core::{ParseExpressionError, Selector, SelectorExt};

use crate::api::replicated_secret::{
    REPLICATION_DONE, ReplicatedSecret, ReplicatedSecretStatus, ReplicationCondition,
};
use crate::api::shared::{CONDITION_FALSE, CONDITION_TRUE};
use crate::apply::{APPLIED_HASH_ANNOTATION, stamp, up_to_date};

/// Label on every copy: `<namespace>.<name>` of the ReplicatedSecret it came from.
pub const REPLICATED_SECRET_NAME_LABEL: &str = "k8ssandra.io/replicated-secret-name";
/// A copy with this annotation set to "true" is never pruned (k8ssandra-operator's name).
pub const ORPHAN_ANNOTATION: &str = "replicatedresource.k8ssandra.io/orphan";
/// On the ReplicatedSecret: an immutable target Secret may be deleted and created again.
pub const RECREATE_IMMUTABLE_ANNOTATION: &str = "federator.k8ssandra.io/recreate-immutable";
/// Held by a ReplicatedSecret until its copies are pruned (k8ssandra-operator's name).
pub const REPLICATED_SECRET_FINALIZER: &str = "replicatedresource.k8ssandra.io/finalizer";
/// kubectl's copy of the last applied object: it would carry the source's data in clear.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub const REASON_REPLICATED: &str = "Replicated";
pub const REASON_CONFLICT: &str = "Conflict";
pub const REASON_IMMUTABLE: &str = "ImmutableTarget";
pub const REASON_LOOP: &str = "ReplicationLoop";
pub const REASON_UNKNOWN_CONTEXT: &str = "UnknownContext";
pub const REASON_UNREACHABLE: &str = "RegionUnreachable";
pub const REASON_NAMESPACE_MISSING: &str = "NamespaceMissing";
pub const REASON_FAILED: &str = "ReplicationFailed";
pub const REASON_INVALID_SELECTOR: &str = "InvalidSelector";
pub const REASON_PRUNE_PENDING: &str = "PrunePending";
pub const REASON_INVALID_NAME: &str = "InvalidName";

/// Namespace and name of a ReplicatedSecret.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReplicationKey {
    pub namespace: String,
    pub name: String,
}

impl ReplicationKey {
    /// The value of [`REPLICATED_SECRET_NAME_LABEL`] on its copies.
    pub fn label_value(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }

    /// The inverse of [`ReplicationKey::label_value`] (namespaces have no dots).
    pub fn from_label_value(value: &str) -> Option<ReplicationKey> {
        let (namespace, name) = value.split_once('.')?;
        (!namespace.is_empty() && !name.is_empty()).then(|| ReplicationKey {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    /// Whether [`ReplicationKey::label_value`] fits in a label value (63 characters).
    pub fn has_valid_label_value(&self) -> bool {
        self.label_value().len() <= 63
    }

    /// `key=value` selecting the copies of this ReplicatedSecret.
    pub fn copy_selector(&self) -> String {
        format!("{REPLICATED_SECRET_NAME_LABEL}={}", self.label_value())
    }
}

/// One destination, with its namespace resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// "" is the hub.
    pub context: String,
    pub namespace: String,
    pub prefix: String,
    pub drop_labels: Vec<String>,
    pub add_labels: BTreeMap<String, String>,
}

impl Target {
    /// How the target is named in conditions, messages and events.
    pub fn describe(&self) -> String {
        describe_target(&self.context, &self.namespace)
    }
}

pub fn describe_target(context: &str, namespace: &str) -> String {
    let cluster = if context.is_empty() {
        "the hub".to_string()
    } else {
        format!("region {context:?}")
    };
    format!("namespace {namespace:?} of {cluster}")
}

/// The targets of `rs` in spec order; a namespace defaults to the ReplicatedSecret's; a
/// repeated context+namespace counts once (the first wins).
pub fn targets(rs: &ReplicatedSecret, own_namespace: &str) -> Vec<Target> {
    let mut seen = BTreeSet::new();
    rs.spec
        .replication_targets
        .iter()
        .flatten()
        .map(|target| Target {
            context: target.context().to_string(),
            namespace: target
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| own_namespace.to_string()),
            prefix: target.target_prefix.clone().unwrap_or_default(),
            drop_labels: target.drop_labels.clone().unwrap_or_default(),
            add_labels: target.add_labels.clone().unwrap_or_default(),
        })
        .filter(|target| seen.insert((target.context.clone(), target.namespace.clone())))
        .collect()
}

/// The selector of `rs`; None (no selector) selects nothing.
pub fn selector(rs: &ReplicatedSecret) -> Result<Option<Selector>, ParseExpressionError> {
    rs.spec.selector.clone().map(Selector::try_from).transpose()
}

/// Whether `secret` is a copy made by some ReplicatedSecret (never a source: that is a loop).
pub fn is_copy(secret: &Secret) -> bool {
    secret.metadata.labels.as_ref().is_some_and(|l| l.contains_key(REPLICATED_SECRET_NAME_LABEL))
}

/// The Secrets of the ReplicatedSecret's namespace it copies: matching, not copies themselves,
/// not being deleted.
pub fn sources<'a>(secrets: &'a [Secret], selector: &Selector) -> Vec<&'a Secret> {
    secrets
        .iter()
        .filter(|s| !is_copy(s) && s.metadata.deletion_timestamp.is_none())
        .filter(|s| selector.matches(s.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())))
        .collect()
}

/// The copy of `source` in `target`: same data and type; the source's labels without
/// `dropLabels`, plus `addLabels` and the replication label; its annotations without the ones
/// describing the source object itself.
pub fn desired_copy(source: &Secret, key: &ReplicationKey, target: &Target) -> Secret {
    let mut labels = source.metadata.labels.clone().unwrap_or_default();
    labels.retain(|k, _| !target.drop_labels.contains(k));
    labels.extend(target.add_labels.clone());
    labels.insert(REPLICATED_SECRET_NAME_LABEL.to_string(), key.label_value());
    let mut annotations = source.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(LAST_APPLIED_ANNOTATION);
    annotations.remove(APPLIED_HASH_ANNOTATION);
    Secret {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}{}",
                target.prefix,
                source.metadata.name.as_deref().unwrap_or_default()
            )),
            namespace: Some(target.namespace.clone()),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        data: Some(source.data.clone().unwrap_or_default()),
        type_: source.type_.clone(),
        ..Default::default()
    }
}

/// Whether copying into `target` would feed the selector its own copies: the target is the
/// sources' own cluster and namespace, and a copy would have the source's name or be selected.
pub fn is_loop(
    key: &ReplicationKey,
    target: &Target,
    selector: &Selector,
    sources: &[&Secret],
) -> bool {
    if !target.context.is_empty() || target.namespace != key.namespace {
        return false;
    }
    target.prefix.is_empty()
        || sources.iter().any(|source| {
            let copy = desired_copy(source, key, target);
            selector.matches(copy.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))
        })
}

/// Whether an apply of `desired` would change `live` (as [`crate::apply::apply_if_changed`]
/// decides it).
pub fn needs_write(desired: &Secret, live: &Secret) -> bool {
    let Ok(mut body) = serde_json::to_value(desired) else {
        return true;
    };
    body["apiVersion"] = "v1".into();
    body["kind"] = "Secret".into();
    stamp(&mut body);
    match serde_json::to_value(live) {
        Ok(live) => !up_to_date(&live, &body),
        Err(_) => true,
    }
}

/// What to do with one copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyAction {
    /// Apply the desired copy (no write when it is already up to date).
    Apply,
    /// A Secret of that name exists and is not this ReplicatedSecret's copy.
    Conflict { owner: Option<String> },
    /// The copy is immutable and out of date; recreating it was not allowed.
    Immutable,
    /// Delete the immutable copy, then create it again.
    Recreate,
}

pub fn copy_action(
    desired: &Secret,
    live: Option<&Secret>,
    key: &ReplicationKey,
    recreate_immutable: bool,
) -> CopyAction {
    let Some(live) = live else {
        return CopyAction::Apply;
    };
    let owner = live.metadata.labels.as_ref().and_then(|l| l.get(REPLICATED_SECRET_NAME_LABEL));
    if owner != Some(&key.label_value()) {
        return CopyAction::Conflict {
            owner: owner.cloned(),
        };
    }
    if live.immutable == Some(true) && needs_write(desired, live) {
        return if recreate_immutable {
            CopyAction::Recreate
        } else {
            CopyAction::Immutable
        };
    }
    CopyAction::Apply
}

/// Copies of this ReplicatedSecret in a target that no source wants any more, except orphans.
pub fn prunable(copies: &[Secret], key: &ReplicationKey, wanted: &BTreeSet<String>) -> Vec<String> {
    copies
        .iter()
        .filter(|copy| {
            copy.metadata.labels.as_ref().and_then(|l| l.get(REPLICATED_SECRET_NAME_LABEL))
                == Some(&key.label_value())
        })
        .filter(|copy| copy.metadata.deletion_timestamp.is_none())
        .filter(|copy| !is_orphan(copy))
        .filter_map(|copy| copy.metadata.name.clone())
        .filter(|name| !wanted.contains(name))
        .collect()
}

/// Whether the copy is annotated to outlive its ReplicatedSecret.
fn is_orphan(copy: &Secret) -> bool {
    copy.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ORPHAN_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// The result of replicating into one target (or pruning a removed one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetOutcome {
    pub context: String,
    pub namespace: String,
    pub replicated: bool,
    pub reason: String,
    pub message: String,
    /// Why it failed, as far as what fixes it and how soon to retry (None when replicated).
    pub failure: Option<crate::clusters::FailureCategory>,
}

/// The status: one condition per target, sorted by cluster then namespace; a condition keeps
/// its lastTransitionTime while its status stays the same.
pub fn replication_status(
    previous: Option<&ReplicatedSecretStatus>,
    outcomes: &[TargetOutcome],
    generation: Option<i64>,
    now: &Time,
) -> ReplicatedSecretStatus {
    let before = previous.and_then(|s| s.conditions.as_ref());
    let mut conditions: Vec<ReplicationCondition> = outcomes
        .iter()
        .map(|outcome| {
            let status = if outcome.replicated {
                CONDITION_TRUE
            } else {
                CONDITION_FALSE
            };
            let before_this = before.and_then(|conditions| {
                target_condition(conditions, &outcome.context, &outcome.namespace)
            });
            // A failure does not forget copies placed before it (pruning will need them).
            let copies_placed = !outcome.replicated && before_this.is_some_and(holds_copies);
            let kept_time = before_this
                .filter(|c| c.type_ == REPLICATION_DONE && c.status == status)
                .and_then(|c| c.last_transition_time.clone());
            ReplicationCondition {
                cluster: outcome.context.clone(),
                namespace: Some(outcome.namespace.clone()),
                type_: REPLICATION_DONE.to_string(),
                status: status.to_string(),
                last_transition_time: Some(kept_time.unwrap_or_else(|| now.clone())),
                reason: Some(outcome.reason.clone()),
                message: Some(outcome.message.clone()),
                copies_placed: copies_placed.then_some(true),
            }
        })
        .collect();
    conditions.sort_by(|a, b| (&a.cluster, &a.namespace).cmp(&(&b.cluster, &b.namespace)));
    ReplicatedSecretStatus {
        conditions: Some(conditions),
        observed_generation: generation,
    }
}

/// The targets a status remembers (context, namespace): where copies may be left to prune.
pub fn remembered_targets(status: Option<&ReplicatedSecretStatus>) -> Vec<(String, String)> {
    status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c.cluster.clone(), c.namespace.clone()?)))
        .collect()
}

/// Whether the copies of `rs` are in place in `context`/`namespace` (its condition is True).
pub fn is_replicated_to(rs: &ReplicatedSecret, context: &str, namespace: &str) -> bool {
    condition_of(rs, context, namespace).is_some_and(|c| c.status == CONDITION_TRUE)
}

/// Whether copies of `rs` may be in `context`/`namespace`: they were placed (True, or a
/// failure since that remembers them), or a removed target is still waiting for them to be
/// pruned (PrunePending). A pass that finds the target's context unknown gives up only when
/// none of these: nothing can have been placed there.
pub fn may_hold_copies(rs: &ReplicatedSecret, context: &str, namespace: &str) -> bool {
    condition_of(rs, context, namespace).is_some_and(holds_copies)
}

fn holds_copies(condition: &ReplicationCondition) -> bool {
    condition.status == CONDITION_TRUE
        || condition.reason.as_deref() == Some(REASON_PRUNE_PENDING)
        || condition.copies_placed == Some(true)
}

pub fn condition_of<'a>(
    rs: &'a ReplicatedSecret,
    context: &str,
    namespace: &str,
) -> Option<&'a ReplicationCondition> {
    target_condition(rs.status.as_ref()?.conditions.as_ref()?, context, namespace)
}

/// The condition of one target (context, namespace) among a status's conditions.
fn target_condition<'a>(
    conditions: &'a [ReplicationCondition],
    context: &str,
    namespace: &str,
) -> Option<&'a ReplicationCondition> {
    conditions.iter().find(|c| c.cluster == context && c.namespace.as_deref() == Some(namespace))
}

#[cfg(test)]
mod tests;
