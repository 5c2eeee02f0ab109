//! The secrets a K8ssandraCluster's datacenters need in their regions.
//!
//! - The superuser Secret: unless `spec.cassandra.superuserSecretRef` names one or
//!   `spec.secretsProvider` is `external`, Federator creates `<cluster>-superuser` in the
//!   K8ssandraCluster's namespace of the hub (username: the Cassandra cluster name; password: 24
//!   characters from the operating system's CSPRNG), once: later reconciles never change it. It
//!   is owned by the K8ssandraCluster (ownerReference), so it goes when the cluster goes. A Secret
//!   the user supplies (named by the ref, or existing under the default name) is used as it is
//!   and never deleted; Federator only adds the labels that select it for replication.
//! - Reaper's logins ([`super::reaper_access`]) follow the same rules: `<cluster>-reaper` and
//!   `<cluster>-reaper-ui` are generated (username: the Secret's name, as upstream), a Secret
//!   named by `spec.reaper.cassandraUserSecretRef` / `uiUserSecretRef` must exist.
//! - Medusa's (`spec.medusa`): its CQL login, `<cluster>-medusa` generated unless
//!   `cassandraUserSecretRef` names one, and the storage Secret `storageSecretRef` names (the
//!   user's, which must exist), copied to the regions like the others.
//! - The Secrets of encryption stores (`spec.cassandra.*EncryptionStores`) are the user's: they
//!   must exist in the hub, get the replication labels and are copied to the regions, where
//!   the datacenters mount them ([`crate::workload::encryption`]).
//! - A ReplicatedSecret of the K8ssandraCluster's name and namespace (as k8ssandra-operator
//!   makes it) selects the cluster's Secrets by label and has one target per region and
//!   namespace of its datacenters (the hub's own namespace excepted: the sources are there).
//!   Also owned by the K8ssandraCluster; its finalizer prunes the copies.
//! - A datacenter is created only once its target's condition in that ReplicatedSecret is True
//!   ([`pending_datacenters`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{PartialObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use rand::TryRngCore;
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::OsRng;

use super::plan::{ClusterKey, ClusterPlan};
use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::api::replicated_secret::{ReplicatedSecret, ReplicatedSecretSpec, ReplicationTarget};
use crate::api::shared::{CLUSTER_NAME_LABEL, CLUSTER_NAMESPACE_LABEL};
use crate::apply::apply_if_changed;
use crate::clusters::failure::HUB;
use crate::clusters::{FailureCategory, RegionFailure};
use crate::replication::desired::{
    ORPHAN_ANNOTATION, condition_of, describe_target, is_replicated_to,
};
use crate::workload::labels::{default_superuser_secret_name, ownership_labels};

/// Field manager of the labels Federator adds to a user's superuser Secret.
pub const SECRET_LABELS_FIELD_MANAGER: &str = "federator-secrets";
/// Length of a generated superuser password (62 symbols: about 143 bits).
pub const PASSWORD_LENGTH: usize = 24;

/// What a Secret of the cluster is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Superuser,
    ReaperCql,
    ReaperUi,
    /// A keystore, truststore or their passwords.
    EncryptionStore,
    /// The CQL role Medusa uses.
    MedusaCql,
    /// The credentials of Medusa's storage backend.
    MedusaStorage,
}

impl Purpose {
    fn describe(self) -> &'static str {
        match self {
            Purpose::Superuser => "superuser",
            Purpose::ReaperCql => "Reaper CQL user",
            Purpose::ReaperUi => "Reaper UI user",
            Purpose::EncryptionStore => "encryption store",
            Purpose::MedusaCql => "Medusa CQL user",
            Purpose::MedusaStorage => "Medusa storage",
        }
    }

    /// The keys a Secret of the user's needs.
    fn contents(self) -> &'static str {
        match self {
            Purpose::EncryptionStore => {
                "the store (key keystore or truststore, unless the ref names one) and its password (key keystore-password or truststore-password); Federator copies it to the regions"
            }
            Purpose::MedusaStorage => {
                "the storage provider's credentials file (key credentials); Federator copies it to the regions"
            }
            _ => "keys username and password",
        }
    }

    /// The field that names a Secret of the user's.
    fn field(self) -> &'static str {
        match self {
            Purpose::Superuser => "spec.cassandra.superuserSecretRef",
            Purpose::ReaperCql => "spec.reaper.cassandraUserSecretRef",
            Purpose::ReaperUi => "spec.reaper.uiUserSecretRef",
            Purpose::EncryptionStore => {
                "spec.cassandra.clientEncryptionStores or serverEncryptionStores"
            }
            Purpose::MedusaCql => "spec.medusa.cassandraUserSecretRef",
            Purpose::MedusaStorage => "spec.medusa.storageProperties.storageSecretRef",
        }
    }
}

/// A Secret the cluster's datacenters read, copied to their regions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSecret {
    pub purpose: Purpose,
    pub name: String,
    /// Federator creates it when absent (no ref names it), with this username.
    pub generated: bool,
    pub username: String,
}

/// What a cluster needs; nothing with `secretsProvider: external`.
#[derive(Clone, Debug, PartialEq)]
pub struct SecretsPlan {
    /// The superuser's first.
    pub secrets: Vec<ClusterSecret>,
    pub replicated: Option<ReplicatedSecret>,
}

impl SecretsPlan {
    pub fn superuser(&self) -> Option<&ClusterSecret> {
        self.secrets.iter().find(|s| s.purpose == Purpose::Superuser)
    }
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
    if k8c.spec.uses_external_secrets() {
        return SecretsPlan {
            secrets: Vec::new(),
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
    let mut secrets = vec![ClusterSecret {
        purpose: Purpose::Superuser,
        generated: named.is_none(),
        name: named.unwrap_or_else(|| default_superuser_secret_name(&plan.cassandra_cluster_name)),
        username: plan.cassandra_cluster_name.clone(),
    }];
    if let Some(access) = &plan.reaper_access {
        let reaper_logins = [
            (Purpose::ReaperCql, &access.cql_user),
            (Purpose::ReaperUi, &access.ui_user),
        ];
        secrets.extend(
            reaper_logins.into_iter().filter_map(|(purpose, credential)| {
                credential.as_ref().map(|c| ClusterSecret {
                    purpose,
                    name: c.name.clone(),
                    generated: c.generated,
                    username: c.name.clone(),
                })
            }),
        );
    }
    if let Some(medusa) = plan.medusa.as_ref() {
        let named = (medusa.cassandra_user_secret_ref.as_ref()).is_some_and(|r| !r.name.is_empty());
        let name = crate::workload::medusa::cql_user_secret_name(medusa, &plan.cluster.name);
        secrets.push(ClusterSecret {
            purpose: Purpose::MedusaCql,
            username: name.clone(),
            name,
            generated: !named,
        });
        if let Some(name) = crate::workload::medusa::storage_secret_name(medusa)
            && !secrets.iter().any(|s| s.name == name)
        {
            secrets.push(ClusterSecret {
                purpose: Purpose::MedusaStorage,
                name,
                generated: false,
                username: String::new(),
            });
        }
    }
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
    for name in plan.datacenters.iter().flat_map(|dc| &dc.store_secrets) {
        if !secrets.iter().any(|s| &s.name == name) {
            secrets.push(ClusterSecret {
                purpose: Purpose::EncryptionStore,
                name: name.clone(),
                generated: false,
                username: String::new(),
            });
        }
    }
    SecretsPlan {
        secrets,
        replicated: Some(replicated),
    }
}

/// A new random password: [`PASSWORD_LENGTH`] letters and digits from the OS's CSPRNG.
pub fn generate_password() -> String {
    Alphanumeric.sample_string(&mut OsRng.unwrap_err(), PASSWORD_LENGTH)
}

/// Pure: a generated login Secret, owned by `k8c`.
pub fn generated_secret(
    k8c: &K8ssandraCluster,
    plan: &ClusterPlan,
    secret: &ClusterSecret,
    password: &str,
) -> Secret {
    let mut labels = ownership_labels(&plan.cluster.name, &plan.cluster.namespace);
    labels.extend(replication_labels(plan));
    Secret {
        metadata: ObjectMeta {
            name: Some(secret.name.clone()),
            namespace: Some(plan.cluster.namespace.clone()),
            labels: Some(labels),
            owner_references: k8c.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (
                "username".to_string(),
                ByteString(secret.username.as_bytes().to_vec()),
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
    if secrets.secrets.is_empty() {
        return BTreeMap::new();
    }
    let names: Vec<&str> = secrets.secrets.iter().map(|s| s.name.as_str()).collect();
    let (noun, names) = match names.as_slice() {
        [one] => ("Secret", one.to_string()),
        many => ("Secrets", many.join(", ")),
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
                "waiting for {noun} {names} to be replicated to {} (ReplicatedSecret {}: {state})",
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
    pub errors: Vec<RegionFailure>,
}

/// What the hub's watches have seen of the clusters' secrets: read before asking the hub, so a
/// steady reconcile makes no request for them.
#[derive(Clone)]
pub struct SecretCaches {
    /// Every ReplicatedSecret of the watched namespaces.
    pub replicated: Store<ReplicatedSecret>,
    /// Metadata of the Secrets carrying a cluster-name label (the generated login Secrets, and
    /// users' once Federator labelled them).
    pub labelled_secrets: Store<PartialObjectMeta<Secret>>,
    /// Encryption store passwords read from the hub.
    pub passwords: Arc<PasswordMemo>,
}

/// Values read from the hub's Secrets, with the resourceVersion they were read at: read again
/// only once the watch shows that version changed, so a steady reconcile asks nothing. By
/// (namespace, K8ssandraCluster, Secret): kept while the cluster uses the Secret.
#[derive(Default)]
pub struct PasswordMemo(Mutex<HashMap<(String, String, String), ReadSecret>>);

impl PasswordMemo {
    /// Keeps only what cluster `namespace/cluster` reads now (`secrets`).
    fn retain_for(&self, namespace: &str, cluster: &str, secrets: &BTreeSet<&String>) {
        if let Ok(mut memo) = self.0.lock() {
            memo.retain(|(ns, c, secret), _| {
                ns != namespace || c != cluster || secrets.contains(secret)
            });
        }
    }

    /// A deleted cluster: what was read for it goes.
    pub fn forget_cluster(&self, namespace: &str, cluster: &str) {
        self.retain_for(namespace, cluster, &BTreeSet::new());
    }

    /// Secrets whose values are kept.
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |memo| memo.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct ReadSecret {
    resource_version: Option<String>,
    /// The keys asked for, and the values of those present.
    keys: BTreeSet<String>,
    values: BTreeMap<String, String>,
}

/// Reads the hub Secrets holding the encryption store passwords the datacenters of `plan`
/// need (the keys they need only): Secret → key → value, or why it could not be read.
pub async fn read_store_passwords(
    hub: &kube::Client,
    caches: &SecretCaches,
    plan: &ClusterPlan,
) -> BTreeMap<String, Result<BTreeMap<String, String>, String>> {
    let mut needed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for need in plan.datacenters.iter().flat_map(|dc| &dc.passwords) {
        (needed.entry(need.secret.clone()).or_default()).insert(need.key.clone());
    }
    let cluster = &plan.cluster;
    caches.passwords.retain_for(&cluster.namespace, &cluster.name, &needed.keys().collect());
    let mut read = BTreeMap::new();
    for (name, keys) in needed {
        let values = caches.read_secret(hub, cluster, &name, &keys).await;
        read.insert(name, values);
    }
    read
}

/// Makes sure the cluster's Secrets exist and are selected, and applies the ReplicatedSecret.
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
    for secret in &secrets.secrets {
        if !caches.is_labelled(plan, &secret.name)
            && let Err(error) = ensure_cluster_secret(hub, k8c, plan, secret).await
        {
            outcome.errors.push(error);
        }
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
                if let Err(error) =
                    apply_if_changed(&api, super::FIELD_MANAGER, desired, found.as_ref()).await
                {
                    let doing = format!(
                        "applying ReplicatedSecret {}/{}",
                        plan.cluster.namespace, plan.cluster.name
                    );
                    outcome.errors.push(RegionFailure::kube(HUB, doing, &error));
                }
                live = found;
            }
            Err(error) => {
                let doing = format!(
                    "reading ReplicatedSecret {}/{}",
                    plan.cluster.namespace, plan.cluster.name
                );
                outcome.errors.push(RegionFailure::kube(HUB, doing, &error));
            }
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
    /// The text values of `keys` in hub Secret `namespace/name`: from the memo while the watch
    /// shows the version they were read at, else read now.
    async fn read_secret(
        &self,
        hub: &kube::Client,
        cluster: &ClusterKey,
        name: &str,
        keys: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, String>, String> {
        let namespace = cluster.namespace.as_str();
        let key = (
            namespace.to_string(),
            cluster.name.clone(),
            name.to_string(),
        );
        let watched = self
            .labelled_secrets
            .get(&ObjectRef::new(name).within(namespace))
            .and_then(|s| s.metadata.resource_version.clone());
        if let Ok(memo) = self.passwords.0.lock()
            && let Some(read) = memo.get(&key)
            && watched.is_some()
            && read.resource_version == watched
            && keys.is_subset(&read.keys)
        {
            return Ok(read.values.clone());
        }
        let api: Api<Secret> = Api::namespaced(hub.clone(), namespace);
        let secret = match api.get_opt(name).await {
            Ok(Some(secret)) => secret,
            Ok(None) => {
                return Err(format!(
                    "Secret {namespace}/{name} does not exist in the hub"
                ));
            }
            Err(error) => return Err(format!("reading Secret {namespace}/{name}: {error}")),
        };
        // Only the keys asked for: the store files stay out of memory.
        let values: BTreeMap<String, String> = (secret.data.into_iter().flatten())
            .filter(|(k, _)| keys.contains(k))
            .filter_map(|(k, v)| String::from_utf8(v.0).ok().map(|v| (k, v)))
            .collect();
        if let Ok(mut memo) = self.passwords.0.lock() {
            memo.insert(
                key,
                ReadSecret {
                    resource_version: secret.metadata.resource_version,
                    keys: keys.clone(),
                    values: values.clone(),
                },
            );
        }
        Ok(values)
    }

    /// Whether the cached metadata shows Secret `name` with the replication labels.
    fn is_labelled(&self, plan: &ClusterPlan, name: &str) -> bool {
        let key = ObjectRef::new(name).within(&plan.cluster.namespace);
        self.labelled_secrets
            .get(&key)
            .is_some_and(|secret| has_replication_labels(plan, secret.metadata.labels.as_ref()))
    }
}

/// Whether a Secret's labels select it for the cluster's replication.
fn has_replication_labels(plan: &ClusterPlan, labels: Option<&BTreeMap<String, String>>) -> bool {
    replication_labels(plan).iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Creates a generated login Secret once; adds the replication labels to a user's.
async fn ensure_cluster_secret(
    hub: &kube::Client,
    k8c: &K8ssandraCluster,
    plan: &ClusterPlan,
    secret: &ClusterSecret,
) -> Result<(), RegionFailure> {
    let api: Api<Secret> = Api::namespaced(hub.clone(), &plan.cluster.namespace);
    let context = |what: &str, error: kube::Error| {
        let doing = format!(
            "{what} {} Secret {}/{}",
            secret.purpose.describe(),
            plan.cluster.namespace,
            secret.name
        );
        RegionFailure::kube(HUB, doing, &error)
    };
    let existing = api.get_opt(&secret.name).await.map_err(|e| context("reading", e))?;
    let Some(existing) = existing else {
        if !secret.generated {
            let missing = format!(
                "{} Secret {}/{} named by {} does not exist; create it in the hub with {}",
                secret.purpose.describe(),
                plan.cluster.namespace,
                secret.name,
                secret.purpose.field(),
                secret.purpose.contents()
            );
            return Err(RegionFailure::new(
                HUB,
                missing,
                FailureCategory::MissingReference,
                "",
            ));
        }
        let generated = generated_secret(k8c, plan, secret, &generate_password());
        return match api.create(&PostParams::default(), &generated).await {
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
        "metadata": {"name": secret.name, "labels": wanted},
    });
    api.patch(
        &secret.name,
        &PatchParams::apply(SECRET_LABELS_FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map(|_| ())
    .map_err(|e| context("labelling", e))
}

/// The K8ssandraCluster is deleted with `federator.k8ssandra.io/orphan: "true"`: the datacenters
/// left behind still need their login Secrets. The generated ones lose their ownerReference
/// (garbage collection would delete them), and the ReplicatedSecret is marked to leave its copies.
pub async fn orphan_copies(hub: &kube::Client, k8c: &K8ssandraCluster) -> Result<(), String> {
    let namespace = k8c.namespace().unwrap_or_default();
    if let Ok(cluster_plan) = super::plan::plan(k8c) {
        for secret in secrets_plan(k8c, &cluster_plan).secrets {
            if secret.generated {
                release_secret(hub, k8c, &namespace, &secret.name).await?;
            }
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
        Err(kube::Error::Api(response)) if response.is_not_found() => Ok(()),
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
    let failed = |error: kube::Error| format!("keeping Secret {namespace}/{name}: {error}");
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
