//! Gather, for the triggers: which ReplicatedSecrets select which hub Secrets.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::ObjectRef;

use crate::api::replicated_secret::ReplicatedSecret;

/// Which ReplicatedSecrets selected each hub Secret when it was last seen: a change to a Secret
/// concerns those that select it now and those that selected it before (their copies go), not
/// every ReplicatedSecret of the namespace.
#[derive(Default)]
pub(super) struct SelectingReplicatedSecrets {
    last_seen: std::sync::Mutex<
        std::collections::HashMap<ObjectRef<Secret>, Vec<ObjectRef<ReplicatedSecret>>>,
    >,
}

impl SelectingReplicatedSecrets {
    /// Notes the Secrets `rs` selects now (so a later relabel that drops one still reaches it).
    pub(super) fn record(&self, rs: &ReplicatedSecret, secrets: &[Secret], selector: &Selector) {
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

    pub(super) fn concerned(
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
            .filter(|rs| match crate::replication::desired::selector(rs) {
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
