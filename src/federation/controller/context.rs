//! What the K8ssandraCluster controller's stages share: its context and its errors.

use std::collections::BTreeSet;

use kube::api::{Patch, PatchParams};
use kube::runtime::finalizer::{self};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};

use crate::api::k8ssandra_cluster::{K8ssandraCluster, K8ssandraClusterStatus};
use crate::clusters::Registry;
use crate::events::Events;
use crate::federation::notices::Outcome;
use crate::federation::observed::known_contexts;
use crate::federation::referenced::ReferencedConfigMaps;
use crate::federation::seeds::{CachingResolver, HickoryResolver};
use crate::federation::watches::RegionCaches;

pub use crate::federation::FIELD_MANAGER;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("K8ssandraCluster {name} has no namespace")]
    MissingNamespace { name: String },
    #[error("writing the status of K8ssandraCluster {namespace}/{name}: {source}")]
    WriteStatus {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("K8ssandraCluster {namespace}/{name} is not deleted yet: {pending}")]
    CleanupPending {
        namespace: String,
        name: String,
        pending: String,
    },
    #[error("finalizer of a K8ssandraCluster: {0}")]
    Finalizer(#[source] Box<finalizer::Error<ReconcileError>>),
}

impl crate::ops::ErrorLabel for ReconcileError {
    const KINDS: &'static [&'static str] = &[
        "missing_namespace",
        "write_status",
        "cleanup_pending",
        "finalizer",
    ];
    fn metric_label(&self) -> &'static str {
        match self {
            ReconcileError::MissingNamespace { .. } => "missing_namespace",
            ReconcileError::WriteStatus { .. } => "write_status",
            ReconcileError::CleanupPending { .. } => "cleanup_pending",
            ReconcileError::Finalizer(error) => crate::ops::finalizer_label(error),
        }
    }
}

/// Reporting controller name of this controller's Events.
pub const EVENT_REPORTER: &str = "federator-k8ssandracluster";

/// Everything a reconcile needs.
pub struct ControllerContext {
    pub hub: kube::Client,
    pub registry: Registry,
    /// Namespaces whose K8ssandraClusters are reconciled; empty means all.
    pub watch_namespaces: Vec<String>,
    pub events: Events,
    /// Resolves `additionalSeeds` host names; an error when the system's DNS configuration
    /// cannot be read (then host names are reported unresolved).
    pub resolver:
        Result<CachingResolver<HickoryResolver>, crate::federation::seeds::SeedResolveError>,
    /// What the region watches have seen: read instead of asking the regions again.
    pub caches: RegionCaches,
    /// Region writes under way and their outcomes.
    pub operations: Operations,
    /// Re-queues a cluster when its region writes end.
    pub completions: futures::channel::mpsc::UnboundedSender<ObjectRef<K8ssandraCluster>>,
    /// The hub's ReplicatedSecrets and labelled Secrets, as watched.
    pub secret_caches: crate::federation::secrets::SecretCaches,
    /// Seed EndpointSlices found up to date, so unchanged ones are not compared again.
    pub seed_memo: crate::apply::UpToDateMemo,
    /// System keyspaces found as the datacenters require, so they are not asked again.
    pub keyspace_memo: super::remembered::KeyspaceMemo,
    /// Clusters found registered with the Reaper their `reaperRef` names.
    pub reaper_registrations: super::remembered::ReaperRegistrations,
    /// Datacenters whose rebuild ended lately: their watched copy may still carry the mark.
    pub rebuilds_ended: super::remembered::RebuildsEnded,
    /// How the pods' Management API is called.
    pub management: crate::cassandra::management::Access,
    /// Watches of the user ConfigMaps the datacenters reference.
    pub referenced: ReferencedConfigMaps,
    /// Region writes run in tasks of their own, stopped with the operator.
    pub fence: crate::ops::WriteFence,
    pub ops: crate::ops::Ops,
}

pub(super) fn annotation_is_true(k8c: &K8ssandraCluster, key: &str) -> bool {
    k8c.annotations().get(key).is_some_and(|v| v == "true")
}

/// Every context the cluster's spec names or its status remembers.
pub(super) fn cluster_contexts(k8c: &K8ssandraCluster) -> BTreeSet<String> {
    let mut contexts: BTreeSet<String> =
        known_contexts(k8c.status.as_ref()).into_values().collect();
    let in_spec = k8c
        .spec
        .cassandra
        .as_ref()
        .and_then(|c| c.datacenters.as_ref())
        .into_iter()
        .flatten()
        .map(|dc| dc.k8s_context.clone().unwrap_or_default());
    contexts.extend(in_spec);
    contexts
}

/// Writes the status with server-side apply, only when it changed.
pub(super) async fn write_status(
    api: &Api<K8ssandraCluster>,
    k8c: &K8ssandraCluster,
    status: K8ssandraClusterStatus,
) -> Result<(), ReconcileError> {
    if k8c.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let write_error = |source| ReconcileError::WriteStatus {
        namespace: k8c.namespace().unwrap_or_default(),
        name: k8c.name_any(),
        source,
    };
    let body = serde_json::json!({
        "apiVersion": K8ssandraCluster::api_version(&()),
        "kind": K8ssandraCluster::kind(&()),
        "status": status,
    });
    api.patch_status(
        &k8c.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(write_error)?;
    Ok(())
}

/// The region writes of every cluster: which regions have writes under way, and the outcomes of
/// finished ones the cluster's next reconcile reports (Events, `status.error`).
#[derive(Default)]
pub struct Operations {
    in_flight: std::sync::Mutex<std::collections::HashSet<(ObjectRef<K8ssandraCluster>, String)>>,
    finished:
        std::sync::Mutex<std::collections::HashMap<ObjectRef<K8ssandraCluster>, Vec<Outcome>>>,
}

impl Operations {
    /// Claims `region` for `cluster`; false when writes are still under way there.
    pub(super) fn start(&self, cluster: &ObjectRef<K8ssandraCluster>, region: &str) -> bool {
        self.in_flight
            .lock()
            .map(|mut in_flight| in_flight.insert((cluster.clone(), region.to_string())))
            .unwrap_or(false)
    }

    pub(super) fn finish(
        &self,
        cluster: &ObjectRef<K8ssandraCluster>,
        region: &str,
        outcomes: Vec<Outcome>,
    ) {
        if let Ok(mut finished) = self.finished.lock() {
            finished.entry(cluster.clone()).or_default().extend(outcomes);
        }
        if let Ok(mut in_flight) = self.in_flight.lock() {
            in_flight.remove(&(cluster.clone(), region.to_string()));
        }
    }

    pub(super) fn take_finished(&self, cluster: &ObjectRef<K8ssandraCluster>) -> Vec<Outcome> {
        self.finished
            .lock()
            .ok()
            .and_then(|mut finished| finished.remove(cluster))
            .unwrap_or_default()
    }

    /// Drops the outcomes of a deleted cluster's writes (nobody will take them).
    pub(super) fn forget(&self, cluster: &ObjectRef<K8ssandraCluster>) {
        if let Ok(mut finished) = self.finished.lock() {
            finished.remove(cluster);
        }
    }

    /// The regions where writes of `cluster` are under way.
    pub(super) fn busy_regions(&self, cluster: &ObjectRef<K8ssandraCluster>) -> Vec<String> {
        self.in_flight
            .lock()
            .map(|in_flight| {
                in_flight
                    .iter()
                    .filter(|(c, _)| c == cluster)
                    .map(|(_, region)| region.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}
