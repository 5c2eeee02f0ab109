//! The system keyspaces' replication of one K8ssandraCluster (pure): which datacenters joined
//! the Cassandra cluster and which left it, which pods to ask, and the condition that reports
//! it. The controller's `keyspaces` stage does the calls.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Resource as _;

use crate::api::cassdc::CONDITION_INITIALIZED;
use crate::api::shared::{CONDITION_FALSE, CONDITION_TRUE, new_condition};
use crate::cassandra::management::PodEndpoint;
use crate::cassandra::replication::{
    DatacenterSet, describe_replicas, parse_dc_replication, system_keyspaces,
};

use super::observed::{ObservedCluster, RemoteState};
use super::plan::{ClusterPlan, DatacenterPlan};
use super::rebuild::is_marked_for_rebuild;

/// On a K8ssandraCluster (upstream's): the user keyspaces a datacenter being added joins.
pub const DC_REPLICATION_ANNOTATION: &str = "k8ssandra.io/dc-replication";

pub const CONDITION_SYSTEM_KEYSPACES: &str = "SystemKeyspacesReplicated";
pub const REASON_REPLICATED: &str = "Replicated";
pub const REASON_WAITING_FOR_DATACENTERS: &str = "WaitingForDatacenters";
pub const REASON_CASSANDRA_UNREACHABLE: &str = "CassandraUnreachable";
pub const REASON_ALTER_REFUSED: &str = "AlterRefused";

/// Pods asked per Ready datacenter, and in all: enough to get past a node that is down,
/// without trying every pod of a cluster whose Cassandra does not answer.
const PODS_PER_DATACENTER: usize = 2;
const MAX_COORDINATORS: usize = 4;

/// A pod whose Management API can change the schema, and its region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coordinator {
    pub datacenter: String,
    pub context: String,
    pub pod: PodEndpoint,
    /// The datacenter's `managementApiAuth.manual.clientSecretName`: its Management API
    /// requires this client certificate (mutual TLS).
    pub client_secret: Option<String>,
}

/// What the system keyspaces must become, and through which pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyspaceWork {
    /// The keyspaces Federator keeps replicated to every datacenter that joined: Cassandra's
    /// system keyspaces, then those of the cluster's components (created when missing).
    pub keyspaces: Vec<String>,
    /// The components' keyspaces among them: Reaper's (`spec.reaper.keyspace`, default
    /// `reaper_db`) and Stargate's `data_endpoint_auth`, created when missing.
    pub component_keyspaces: Vec<String>,
    pub datacenters: DatacenterSet,
    /// User keyspaces a datacenter being added joins (`k8ssandra.io/dc-replication`):
    /// keyspace, Cassandra datacenter name, replicas (0: not in it).
    pub user_keyspaces: Vec<(String, String, u32)>,
    /// Why `k8ssandra.io/dc-replication` cannot be used, when it cannot: nothing is altered
    /// until it is fixed.
    pub invalid_annotation: Option<String>,
    /// In the order to try them: the Ready datacenters in spec order.
    pub coordinators: Vec<Coordinator>,
}

impl KeyspaceWork {
    /// Changes when what the keyspaces must become changes (not with the pods asked).
    pub fn fingerprint(&self) -> u64 {
        let mut hasher = std::hash::DefaultHasher::new();
        self.keyspaces.hash(&mut hasher);
        self.component_keyspaces.hash(&mut hasher);
        self.datacenters.joined.hash(&mut hasher);
        self.datacenters.external.hash(&mut hasher);
        self.datacenters.removed.hash(&mut hasher);
        self.user_keyspaces.hash(&mut hasher);
        self.invalid_annotation.hash(&mut hasher);
        hasher.finish()
    }
}

/// The work for this reconcile; `None` while no datacenter of the spec is Ready (no Cassandra
/// to ask). Datacenters taken out of the spec leave replication only when `removal_allowed`
/// (not while the change that removed them is refused). `dc_replication` is the cluster's
/// `k8ssandra.io/dc-replication` annotation: as upstream, it is read only for datacenters
/// being added (marked for a rebuild), so that the rebuild streams those keyspaces too.
pub fn keyspace_work(
    plan: &ClusterPlan,
    observed: &ObservedCluster,
    removal_allowed: bool,
    dc_replication: Option<&str>,
    component_keyspaces: Vec<String>,
) -> Option<KeyspaceWork> {
    let mut datacenters = DatacenterSet {
        external: plan.external_datacenters.iter().cloned().collect(),
        ..DatacenterSet::default()
    };
    let mut coordinators = Vec::new();
    let mut being_added = Vec::new();
    for dc in &plan.datacenters {
        let Some(RemoteState::Present(live)) = observed.get(&dc.name).map(|o| &o.state) else {
            continue;
        };
        let Some(status) = live.status() else {
            continue;
        };
        if status.is_condition_true(CONDITION_INITIALIZED) || live.is_ready() {
            let size = u32::try_from(dc.datacenter.spec.size).unwrap_or(0);
            datacenters.joined.insert(dc.cassandra_datacenter_name.clone(), size);
            if is_marked_for_rebuild(live.meta()) {
                being_added.push(dc);
            }
        }
        if !live.is_ready() {
            continue;
        }
        let client_secret = dc
            .datacenter
            .spec
            .management_api_auth
            .as_ref()
            .and_then(|auth| auth.manual.as_ref())
            .map(|manual| manual.client_secret_name.clone());
        let pods = status.node_statuses.iter().flatten();
        coordinators.extend(
            pods.take(PODS_PER_DATACENTER).map(|(pod, node)| Coordinator {
                datacenter: dc.name.clone(),
                context: dc.context.clone(),
                pod: PodEndpoint {
                    namespace: dc.namespace.clone(),
                    pod: pod.clone(),
                    ip: node.ip.clone(),
                },
                client_secret: client_secret.clone(),
            }),
        );
    }
    if removal_allowed {
        datacenters.removed = removed_datacenters(plan, observed);
    }
    coordinators.truncate(MAX_COORDINATORS);
    if coordinators.is_empty() {
        return None;
    }
    let (user_keyspaces, invalid_annotation) = match (dc_replication, being_added.is_empty()) {
        (Some(value), false) => match user_keyspaces_for(value, plan, &being_added) {
            Ok(keyspaces) => (keyspaces, None),
            Err(error) => (
                Vec::new(),
                Some(format!("{DC_REPLICATION_ANNOTATION}: {error}")),
            ),
        },
        _ => (Vec::new(), None),
    };
    let server_type = plan.datacenters.first().map(|dc| dc.datacenter.spec.server_type);
    Some(KeyspaceWork {
        keyspaces: system_keyspaces(server_type.unwrap_or_default())
            .into_iter()
            .map(str::to_string)
            .chain(component_keyspaces.iter().cloned())
            .collect(),
        component_keyspaces,
        datacenters,
        user_keyspaces,
        invalid_annotation,
        coordinators,
    })
}

/// The annotation's keyspaces for the datacenters being added (named by `metadata.name` or by
/// their Cassandra name); those of other datacenters are ignored, as upstream ignores them.
fn user_keyspaces_for(
    value: &str,
    plan: &ClusterPlan,
    being_added: &[&DatacenterPlan],
) -> Result<Vec<(String, String, u32)>, String> {
    let mut sizes = BTreeMap::new();
    for dc in &plan.datacenters {
        let size = u32::try_from(dc.datacenter.spec.size).unwrap_or(0);
        sizes.insert(dc.name.clone(), size);
        sizes.insert(dc.cassandra_datacenter_name.clone(), size);
    }
    let parsed = parse_dc_replication(value, &sizes)?;
    let mut keyspaces = Vec::new();
    for dc in being_added {
        let listed = parsed.get(&dc.name).or_else(|| parsed.get(&dc.cassandra_datacenter_name));
        for (keyspace, replicas) in listed.into_iter().flatten() {
            keyspaces.push((
                keyspace.clone(),
                dc.cassandra_datacenter_name.clone(),
                *replicas,
            ));
        }
    }
    Ok(keyspaces)
}

/// Cassandra names of the datacenters this cluster had that the spec no longer has.
fn removed_datacenters(plan: &ClusterPlan, observed: &ObservedCluster) -> BTreeSet<String> {
    let in_spec: BTreeSet<&str> = plan
        .datacenters
        .iter()
        .flat_map(|dc| [dc.name.as_str(), dc.cassandra_datacenter_name.as_str()])
        .chain(plan.external_datacenters.iter().map(String::as_str))
        .collect();
    let live_names = observed.datacenters.iter().map(|(name, o)| {
        let cassandra_name = o
            .state
            .present()
            .and_then(|live| live.status())
            .and_then(|status| status.datacenter_name.clone());
        cassandra_name.unwrap_or_else(|| name.clone())
    });
    live_names
        .chain(observed.known.iter().cloned())
        .filter(|name| !in_spec.contains(name.as_str()))
        .collect()
}

/// Stargate's keyspace for its auth tokens (upstream's name).
pub const STARGATE_AUTH_KEYSPACE: &str = "data_endpoint_auth";
/// Reaper's keyspace unless `spec.reaper.keyspace` names another (upstream's default).
pub const DEFAULT_REAPER_KEYSPACE: &str = "reaper_db";

/// The keyspaces of the cluster's components that Federator creates and keeps replicated as
/// the system ones: Reaper's when Reaper stores its state in Cassandra, Stargate's auth
/// keyspace when any datacenter runs Stargate.
pub fn component_keyspaces(k8c: &crate::api::k8ssandra_cluster::K8ssandraCluster) -> Vec<String> {
    let mut keyspaces = Vec::new();
    // A Reaper named by `reaperRef` keeps its state where it is (upstream: no schema then).
    if let Some(reaper) = &k8c.spec.reaper
        && reaper.template.storage_type != Some(crate::api::reaper::ReaperStorageType::Local)
        && !reaper.references_a_reaper()
    {
        let keyspace = reaper.template.keyspace.clone().filter(|k| !k.is_empty());
        keyspaces.push(keyspace.unwrap_or_else(|| DEFAULT_REAPER_KEYSPACE.to_string()));
    }
    let stargate_somewhere = k8c.spec.stargate.is_some()
        || k8c.spec.datacenters().iter().any(|dc| dc.stargate.is_some());
    if stargate_somewhere {
        keyspaces.push(STARGATE_AUTH_KEYSPACE.to_string());
    }
    keyspaces
}

/// How the system keyspaces stand after this reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyspacesOutcome {
    /// No datacenter is Ready yet.
    Waiting,
    /// Every system keyspace has the replication the datacenters require (and the user
    /// keyspaces `k8ssandra.io/dc-replication` gives a datacenter being added, theirs).
    Replicated {
        /// The keyspaces' replication, datacenter → replicas, as last read or altered.
        replication: BTreeMap<String, BTreeMap<String, u32>>,
    },
    /// No pod asked answered.
    Unreachable { errors: Vec<String> },
    /// A pod answered, and refused.
    Refused { error: String },
}

impl KeyspacesOutcome {
    /// The `SystemKeyspacesReplicated` condition.
    pub fn condition(&self, generation: Option<i64>, now: Time) -> Condition {
        let (status, reason, message) = match self {
            KeyspacesOutcome::Waiting => (
                CONDITION_FALSE,
                REASON_WAITING_FOR_DATACENTERS,
                "no datacenter is Ready yet to change the schema through".to_string(),
            ),
            KeyspacesOutcome::Replicated { replication } => {
                (CONDITION_TRUE, REASON_REPLICATED, describe(replication))
            }
            KeyspacesOutcome::Unreachable { errors } => (
                CONDITION_FALSE,
                REASON_CASSANDRA_UNREACHABLE,
                format!(
                    "no Management API answered (retried): {}",
                    errors.join("; ")
                ),
            ),
            KeyspacesOutcome::Refused { error } => {
                (CONDITION_FALSE, REASON_ALTER_REFUSED, error.clone())
            }
        };
        new_condition(
            CONDITION_SYSTEM_KEYSPACES,
            status,
            reason,
            message,
            generation,
            now,
        )
    }
}

/// `system_auth {dc1: 3, dc2: 3}; system_distributed {...}`.
fn describe(replication: &BTreeMap<String, BTreeMap<String, u32>>) -> String {
    let keyspaces: Vec<String> = replication
        .iter()
        .map(|(keyspace, replicas)| describe_replicas(keyspace, replicas))
        .collect();
    keyspaces.join("; ")
}

#[cfg(test)]
mod tests;
