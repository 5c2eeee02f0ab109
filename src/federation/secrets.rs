//! The secrets a K8ssandraCluster's datacenters need in their regions.
//!
//! - The superuser Secret: unless `spec.cassandra.superuserSecretRef` names one or
//!   `spec.secretsProvider` is `external`, Federator creates `<cluster>-superuser` in the
//!   K8ssandraCluster's namespace of the hub (username: the Cassandra cluster name; password: 24
//!   characters from the operating system's CSPRNG), once: later reconciles never change it. It
//!   is owned by the K8ssandraCluster (ownerReference), so it goes when the cluster goes. A Secret
//!   the user supplies (named by the ref, or existing under the default name) is used as it is
//!   and never deleted; Federator only adds the labels that select it for replication.
//! - A ReplicatedSecret of the K8ssandraCluster's name and namespace (as k8ssandra-operator
//!   makes it) selects the cluster's Secrets by label and has one target per region and
//!   namespace of its datacenters (the hub's own namespace excepted: the sources are there).
//!   Also owned by the K8ssandraCluster; its finalizer prunes the copies.
//! - A datacenter is created only once its target's condition in that ReplicatedSecret is True
//!   ([`pending_datacenters`]).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{PartialObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use rand::TryRngCore;
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::OsRng;

use super::labels::{default_superuser_secret_name, ownership_labels};
use super::plan::ClusterPlan;
use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::api::replicated_secret::{ReplicatedSecret, ReplicatedSecretSpec, ReplicationTarget};
use crate::api::shared::{CLUSTER_NAME_LABEL, CLUSTER_NAMESPACE_LABEL, SecretsProvider};
use crate::apply::apply_if_changed;
use crate::replication::desired::{
    ORPHAN_ANNOTATION, condition_of, describe_target, is_replicated_to,
};

/// Field manager of the labels Federator adds to a user's superuser Secret.
pub const SECRET_LABELS_FIELD_MANAGER: &str = "federator-secrets";
/// Length of a generated superuser password (62 symbols: about 143 bits).
pub const PASSWORD_LENGTH: usize = 24;

/// The superuser Secret a cluster uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuperuserSecret {
    pub name: String,
    /// Federator creates it when absent (no `superuserSecretRef`).
    pub generated: bool,
    pub username: String,
}

/// What a cluster needs; nothing with `secretsProvider: external`.
#[derive(Clone, Debug, PartialEq)]
pub struct SecretsPlan {
    pub superuser: Option<SuperuserSecret>,
    pub replicated: Option<ReplicatedSecret>,
}

/// The labels that select a Secret for the cluster's replication.
pub fn replication_labels(plan: &ClusterPlan) -> BTreeMap<String, String> {
    BTreeMap::from([
        (CLUSTER_NAME_LABEL.to_string(), plan.cluster.name.clone()),
        (
            CLUSTER_NAMESPACE_LABEL.to_string(),
            plan.cluster.namespace.clone(),
        ),
    ])
}

/// Pure: the superuser Secret and the ReplicatedSecret of `k8c`.
pub fn secrets_plan(k8c: &K8ssandraCluster, plan: &ClusterPlan) -> SecretsPlan {
    if k8c.spec.secrets_provider == Some(SecretsProvider::External) {
        return SecretsPlan {
            superuser: None,
            replicated: None,
        };
    }
    let named = k8c
        .spec
        .cassandra
        .as_ref()
        .and_then(|c| c.superuser_secret_ref.as_ref())
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty());
    let superuser = SuperuserSecret {
        generated: named.is_none(),
        name: named.unwrap_or_else(|| default_superuser_secret_name(&plan.cassandra_cluster_name)),
        username: plan.cassandra_cluster_name.clone(),
    };
    let mut seen = BTreeSet::new();
    let targets: Vec<ReplicationTarget> = plan
        .datacenters
        .iter()
        .filter(|dc| !(dc.context.is_empty() && dc.namespace == plan.cluster.namespace))
        .filter(|dc| seen.insert((dc.context.clone(), dc.namespace.clone())))
        .map(|dc| ReplicationTarget {
            namespace: Some(dc.namespace.clone()),
            k8s_context_name: (!dc.context.is_empty()).then(|| dc.context.clone()),
            ..Default::default()
        })
        .collect();
    let replicated = ReplicatedSecret {
        metadata: ObjectMeta {
            name: Some(plan.cluster.name.clone()),
            namespace: Some(plan.cluster.namespace.clone()),
            labels: Some(ownership_labels(
                &plan.cluster.name,
                &plan.cluster.namespace,
            )),
            owner_references: k8c.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        spec: ReplicatedSecretSpec {
            selector: Some(LabelSelector {
                match_labels: Some(replication_labels(plan)),
                ..Default::default()
            }),
            replication_targets: Some(targets),
        },
        status: None,
    };
    SecretsPlan {
        superuser: Some(superuser),
        replicated: Some(replicated),
    }
}

/// A new random password: [`PASSWORD_LENGTH`] letters and digits from the OS's CSPRNG.
pub fn generate_password() -> String {
    Alphanumeric.sample_string(&mut OsRng.unwrap_err(), PASSWORD_LENGTH)
}

/// Pure: the generated superuser Secret, owned by `k8c`.
pub fn generated_superuser_secret(
    k8c: &K8ssandraCluster,
    plan: &ClusterPlan,
    superuser: &SuperuserSecret,
    password: &str,
) -> Secret {
    let mut labels = ownership_labels(&plan.cluster.name, &plan.cluster.namespace);
    labels.extend(replication_labels(plan));
    Secret {
        metadata: ObjectMeta {
            name: Some(superuser.name.clone()),
            namespace: Some(plan.cluster.namespace.clone()),
            labels: Some(labels),
            owner_references: k8c.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (
                "username".to_string(),
                ByteString(superuser.username.as_bytes().to_vec()),
            ),
            (
                "password".to_string(),
                ByteString(password.as_bytes().to_vec()),
            ),
        ])),
        ..Default::default()
    }
}

/// Pure: the datacenters that must not be created yet, with what they wait for. A datacenter in
/// the hub's own namespace needs no copy; the others need their target's condition True.
pub fn pending_datacenters(
    plan: &ClusterPlan,
    secrets: &SecretsPlan,
    live: Option<&ReplicatedSecret>,
) -> BTreeMap<String, String> {
    let Some(superuser) = &secrets.superuser else {
        return BTreeMap::new();
    };
    plan.datacenters
        .iter()
        .filter(|dc| !(dc.context.is_empty() && dc.namespace == plan.cluster.namespace))
        .filter(|dc| !live.is_some_and(|rs| is_replicated_to(rs, &dc.context, &dc.namespace)))
        .map(|dc| {
            let state = live
                .and_then(|rs| condition_of(rs, &dc.context, &dc.namespace))
                .and_then(|c| c.message.clone())
                .unwrap_or_else(|| "not copied yet".into());
            let detail = format!(
                "waiting for Secret {} to be replicated to {} (ReplicatedSecret {}: {state})",
                superuser.name,
                describe_target(&dc.context, &dc.namespace),
                plan.cluster.name
            );
            (dc.name.clone(), detail)
        })
        .collect()
}

/// What [`reconcile`] found: datacenters to hold back, and what failed.
#[derive(Clone, Debug, Default)]
pub struct SecretsOutcome {
    pub pending: BTreeMap<String, String>,
    pub errors: Vec<String>,
}

/// What the hub's watches have seen of the clusters' secrets: read before asking the hub, so a
/// steady reconcile makes no request for them.
#[derive(Clone)]
pub struct SecretCaches {
    /// Every ReplicatedSecret of the watched namespaces.
    pub replicated: Store<ReplicatedSecret>,
    /// Metadata of the Secrets carrying a cluster-name label (the generated superuser Secrets,
    /// and users' once Federator labelled them).
    pub labelled_secrets: Store<PartialObjectMeta<Secret>>,
}

/// Makes sure the superuser Secret exists and is selected, and applies the ReplicatedSecret.
pub async fn reconcile(
    hub: &kube::Client,
    caches: &SecretCaches,
    k8c: &K8ssandraCluster,
    plan: &ClusterPlan,
) -> SecretsOutcome {
    let mut outcome = SecretsOutcome::default();
    // A placeholder cluster (no datacenters) needs no credentials yet.
    if plan.datacenters.is_empty() {
        return outcome;
    }
    let secrets = secrets_plan(k8c, plan);
    if let Some(superuser) = &secrets.superuser
        && !caches.superuser_is_labelled(plan, superuser)
        && let Err(error) = ensure_superuser(hub, k8c, plan, superuser).await
    {
        outcome.errors.push(error);
    }
    let mut live = None;
    if let Some(desired) = &secrets.replicated {
        let api: Api<ReplicatedSecret> = Api::namespaced(hub.clone(), &plan.cluster.namespace);
        let key = ObjectRef::new(&plan.cluster.name).within(&plan.cluster.namespace);
        let cached = caches.replicated.get(&key);
        let found = match cached {
            Some(cached) => Ok(Some(cached.as_ref().clone())),
            // Not cached: not made yet, or the cache is still filling.
            None => api.get_opt(&plan.cluster.name).await,
        };
        match found {
            Ok(found) => {
                if let Err(error) = apply_if_changed(
                    &api,
                    super::controller::FIELD_MANAGER,
                    desired,
                    found.as_ref(),
                )
                .await
                {
                    outcome.errors.push(format!(
                        "applying ReplicatedSecret {}/{}: {error}",
                        plan.cluster.namespace, plan.cluster.name
                    ));
                }
                live = found;
            }
            Err(error) => outcome.errors.push(format!(
                "reading ReplicatedSecret {}/{}: {error}",
                plan.cluster.namespace, plan.cluster.name
            )),
        }
    }
    // A ReplicatedSecret applied just now has no condition for a new target yet: pending.
    let live = live.filter(|rs| {
        let current = secrets.replicated.as_ref().map(|d| &d.spec);
        Some(&rs.spec) == current
    });
    outcome.pending = pending_datacenters(plan, &secrets, live.as_ref());
    outcome
}

impl SecretCaches {
    /// Whether the cached metadata shows the superuser Secret with the replication labels.
    fn superuser_is_labelled(&self, plan: &ClusterPlan, superuser: &SuperuserSecret) -> bool {
        let key = ObjectRef::new(&superuser.name).within(&plan.cluster.namespace);
        self.labelled_secrets
            .get(&key)
            .is_some_and(|secret| has_replication_labels(plan, secret.metadata.labels.as_ref()))
    }
}

/// Whether a Secret's labels select it for the cluster's replication.
fn has_replication_labels(plan: &ClusterPlan, labels: Option<&BTreeMap<String, String>>) -> bool {
    replication_labels(plan)
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Creates the generated superuser Secret once; adds the replication labels to a user's.
async fn ensure_superuser(
    hub: &kube::Client,
    k8c: &K8ssandraCluster,
    plan: &ClusterPlan,
    superuser: &SuperuserSecret,
) -> Result<(), String> {
    let api: Api<Secret> = Api::namespaced(hub.clone(), &plan.cluster.namespace);
    let context = |what: &str, error: kube::Error| {
        format!(
            "{what} superuser Secret {}/{}: {error}",
            plan.cluster.namespace, superuser.name
        )
    };
    let existing = api
        .get_opt(&superuser.name)
        .await
        .map_err(|e| context("reading", e))?;
    let Some(existing) = existing else {
        if !superuser.generated {
            return Err(format!(
                "superuser Secret {}/{} named by spec.cassandra.superuserSecretRef does not exist; create it with keys username and password",
                plan.cluster.namespace, superuser.name
            ));
        }
        let secret = generated_superuser_secret(k8c, plan, superuser, &generate_password());
        return match api.create(&PostParams::default(), &secret).await {
            Ok(_) => Ok(()),
            // Created meanwhile (a concurrent reconcile): that one stays.
            Err(kube::Error::Api(response)) if response.code == 409 => Ok(()),
            Err(error) => Err(context("creating", error)),
        };
    };
    if has_replication_labels(plan, existing.metadata.labels.as_ref()) {
        return Ok(());
    }
    let wanted = replication_labels(plan);
    // Only labels, under their own field manager: the user's data is never touched.
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": superuser.name, "labels": wanted},
    });
    api.patch(
        &superuser.name,
        &PatchParams::apply(SECRET_LABELS_FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map(|_| ())
    .map_err(|e| context("labelling", e))
}

/// The K8ssandraCluster is deleted with `federator.k8ssandra.io/orphan: "true"`: the datacenters
/// left behind still need their superuser Secret. The generated one loses its ownerReference
/// (garbage collection would delete it), and the ReplicatedSecret is marked to leave its copies.
pub async fn orphan_copies(hub: &kube::Client, k8c: &K8ssandraCluster) -> Result<(), String> {
    let namespace = k8c.namespace().unwrap_or_default();
    if let (Some(cassandra), Ok(cluster_plan)) =
        (k8c.spec.cassandra.as_ref(), super::plan::plan(k8c))
    {
        let named = cassandra.superuser_secret_ref.is_some();
        if !named {
            let name = default_superuser_secret_name(&cluster_plan.cassandra_cluster_name);
            release_secret(hub, k8c, &namespace, &name).await?;
        }
    }
    let api: Api<ReplicatedSecret> = Api::namespaced(hub.clone(), &namespace);
    let patch = serde_json::json!({"metadata": {"annotations": {ORPHAN_ANNOTATION: "true"}}});
    match api
        .patch(
            &k8c.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(response)) if response.code == 404 => Ok(()),
        Err(error) => Err(format!(
            "marking ReplicatedSecret {namespace}/{} to keep its copies: {error}",
            k8c.name_any()
        )),
    }
}

/// Drops `k8c`'s ownerReference from Secret `name`, if it has it.
async fn release_secret(
    hub: &kube::Client,
    k8c: &K8ssandraCluster,
    namespace: &str,
    name: &str,
) -> Result<(), String> {
    let api: Api<Secret> = Api::namespaced(hub.clone(), namespace);
    let failed =
        |error: kube::Error| format!("keeping superuser Secret {namespace}/{name}: {error}");
    let Some(secret) = api.get_opt(name).await.map_err(failed)? else {
        return Ok(());
    };
    let uid = k8c.uid().unwrap_or_default();
    let owners = secret.metadata.owner_references.clone().unwrap_or_default();
    if !owners.iter().any(|o| o.uid == uid) {
        return Ok(());
    }
    let remaining: Vec<_> = owners.into_iter().filter(|o| o.uid != uid).collect();
    let patch = serde_json::json!({"metadata": {"ownerReferences": remaining}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(failed)
}

#[cfg(test)]
mod tests;
