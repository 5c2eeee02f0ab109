//! System keyspace replication, as a stage: through one Ready pod's Management API (its
//! region's pod proxy), read how each system keyspace is replicated and alter those the
//! datacenters require otherwise. A pod that does not answer gives way to the next; a region that
//! cannot be reached blocks nothing else. Once the keyspaces are as required, they are not asked
//! again until the datacenters change, Federator restarts, or an hour passes (`remembered.rs`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::cassandra::management::{
    ClientIdentity, ManagementApi, ManagementError, PodEndpoint, Transport,
};
use crate::cassandra::replication::{
    DatacenterSet, ReportedReplication, alteration, describe_replicas, is_system_keyspace,
    listed_replicas, with_datacenter,
};
use crate::clusters::{FailureCategory, RegionFailure};
use crate::events::Notice;
use crate::federation::keyspaces::{
    Coordinator, DC_REPLICATION_ANNOTATION, KeyspaceWork, KeyspacesOutcome, component_keyspaces,
    keyspace_work,
};
use crate::federation::observed::ObservedCluster;
use crate::federation::plan::ClusterPlan;

use super::context::ControllerContext;

/// What the stage did.
pub(super) struct KeyspacesReport {
    pub(super) outcome: KeyspacesOutcome,
    /// Failures when no pod could do the work (none once one pod did).
    pub(super) failures: Vec<RegionFailure>,
    /// Events for the keyspaces altered.
    pub(super) notices: Vec<Notice>,
}

pub(super) async fn replicate_system_keyspaces(
    context: &ControllerContext,
    k8c: &K8ssandraCluster,
    cluster_plan: &ClusterPlan,
    observed: &ObservedCluster,
    removal_allowed: bool,
) -> KeyspacesReport {
    let report = |outcome| KeyspacesReport {
        outcome,
        failures: Vec::new(),
        notices: Vec::new(),
    };
    let dc_replication = k8c.annotations().get(DC_REPLICATION_ANNOTATION).map(String::as_str);
    let components = component_keyspaces(k8c);
    let work = keyspace_work(
        cluster_plan,
        observed,
        removal_allowed,
        dc_replication,
        components,
    );
    let Some(work) = work else {
        return report(KeyspacesOutcome::Waiting);
    };
    if let Some(error) = &work.invalid_annotation {
        return report(KeyspacesOutcome::Refused {
            error: error.clone(),
        });
    }
    let key = ObjectRef::from_obj(k8c);
    let fingerprint = work.fingerprint();
    if let Some(outcome) = context.keyspace_memo.fresh(&key, fingerprint) {
        return report(outcome);
    }
    let mut failures = Vec::new();
    for coordinator in &work.coordinators {
        let doing = format!(
            "replicating the system keyspaces through pod {}",
            coordinator.pod
        );
        let client = match context.registry.client(&coordinator.context) {
            Ok(client) => client,
            Err(error) => {
                failures.push(RegionFailure::region(&coordinator.context, doing, &error));
                continue;
            }
        };
        let api = match management_api(context, client, coordinator).await {
            Ok(api) => api,
            Err(error) => {
                let failure =
                    RegionFailure::new(&coordinator.context, doing, category(&error), &error);
                failures.push(failure);
                continue;
            }
        };
        match replicate_through(&api, &coordinator.pod, &work).await {
            Ok(done) => {
                let managed: BTreeSet<String> = work.keyspaces.iter().cloned().collect();
                let holds_removal = done.replication.iter().any(|(keyspace, replicas)| {
                    !managed.contains(keyspace)
                        && replicas.keys().any(|dc| work.datacenters.removed.contains(dc))
                });
                let outcome = KeyspacesOutcome::Replicated {
                    replication: done.replication,
                };
                let memo = &context.keyspace_memo;
                memo.remember(key, fingerprint, outcome.clone(), managed, holds_removal);
                return KeyspacesReport {
                    outcome,
                    failures: Vec::new(),
                    notices: done.notices,
                };
            }
            Err(StageError::Keyspace(error)) => {
                return report(KeyspacesOutcome::Refused { error });
            }
            Err(StageError::Management(error)) => {
                let retry_elsewhere = error.try_elsewhere();
                let failure =
                    RegionFailure::new(&coordinator.context, doing, category(&error), &error);
                failures.push(failure);
                if !retry_elsewhere {
                    return KeyspacesReport {
                        outcome: KeyspacesOutcome::Refused {
                            error: error.to_string(),
                        },
                        failures,
                        notices: Vec::new(),
                    };
                }
            }
        }
    }
    KeyspacesReport {
        outcome: KeyspacesOutcome::Unreachable {
            errors: failures.iter().map(RegionFailure::to_string).collect(),
        },
        failures,
        notices: Vec::new(),
    }
}

/// The Management API of a coordinator's pod, as the settings and its datacenter's
/// `managementApiAuth` require: mutual TLS needs a client certificate, which only a call at
/// the pod's IP can present.
async fn management_api(
    context: &ControllerContext,
    region: kube::Client,
    coordinator: &Coordinator,
) -> Result<ManagementApi, ManagementError> {
    let access = context.management;
    let unusable = |reason: String| ManagementError::Unusable {
        pod: coordinator.pod.to_string(),
        reason,
    };
    let identity = match (&coordinator.client_secret, access.transport) {
        (None, Transport::PodProxy) => return Ok(ManagementApi::through_pod_proxy(region)),
        (None, Transport::PodIp) => None,
        (Some(secret), Transport::PodProxy) => {
            return Err(unusable(format!(
                "its datacenter's Management API requires mutual TLS (managementApiAuth.manual, client Secret {secret}), and the pod proxy cannot present a client certificate: set the management_api.transport setting to pod-ip (FEDERATOR_MANAGEMENT_API__TRANSPORT=pod-ip), with a route from Federator to the pods"
            )));
        }
        (Some(secret), Transport::PodIp) => {
            let secrets: Api<Secret> = Api::namespaced(region, &coordinator.pod.namespace);
            let found = secrets.get_opt(secret).await.map_err(|e| {
                unusable(format!(
                    "its client Secret {secret} (managementApiAuth.manual) cannot be read: {e}"
                ))
            })?;
            let Some(found) = found else {
                return Err(unusable(format!(
                    "its client Secret {secret} (managementApiAuth.manual) does not exist in namespace {}",
                    coordinator.pod.namespace
                )));
            };
            let data = found.data.unwrap_or_default();
            Some(
                ClientIdentity::from_secret(
                    secret,
                    "managementApiAuth.manual.clientSecretName",
                    &data,
                )
                .map_err(unusable)?,
            )
        }
    };
    ManagementApi::at_pod_ips(identity.as_ref(), access.timeout).map_err(unusable)
}

struct Replicated {
    replication: BTreeMap<String, BTreeMap<String, u32>>,
    notices: Vec<Notice>,
}

enum StageError {
    Management(ManagementError),
    /// A user keyspace `k8ssandra.io/dc-replication` names cannot be altered as it asks.
    Keyspace(String),
}

impl From<ManagementError> for StageError {
    fn from(error: ManagementError) -> StageError {
        StageError::Management(error)
    }
}

/// Reads and, where needed, alters every keyspace of `work` through one pod: the system ones
/// (those that do not exist, DSE's on Cassandra, are skipped), then the user keyspaces a
/// datacenter being added joins.
async fn replicate_through(
    api: &ManagementApi,
    pod: &PodEndpoint,
    work: &KeyspaceWork,
) -> Result<Replicated, StageError> {
    let mut done = Replicated {
        replication: BTreeMap::new(),
        notices: Vec::new(),
    };
    let mut altered = Vec::new();
    for keyspace in &work.keyspaces {
        let Some(reported) = api.keyspace_replication(pod, keyspace).await? else {
            if work.component_keyspaces.contains(keyspace) {
                let created = create(api, pod, keyspace, &work.datacenters, &mut altered).await?;
                done.replication.insert(keyspace.to_string(), created);
            }
            continue;
        };
        let replicas = match alteration(&reported, &work.datacenters) {
            Some(replicas) => {
                alter(api, pod, keyspace, &replicas, &mut altered).await?;
                replicas
            }
            None => listed_replicas(&reported),
        };
        done.replication.insert(keyspace.to_string(), replicas);
    }
    for (keyspace, datacenter, replicas) in &work.user_keyspaces {
        let refused = |why: String| {
            StageError::Keyspace(format!(
                "{DC_REPLICATION_ANNOTATION} asks {replicas} replicas of keyspace {keyspace} in {datacenter}: {why}"
            ))
        };
        let Some(reported) = api.keyspace_replication(pod, keyspace).await? else {
            return Err(refused("the keyspace does not exist".into()));
        };
        let replicas = match with_datacenter(&reported, datacenter, *replicas).map_err(refused)? {
            Some(replicas) => {
                alter(api, pod, keyspace, &replicas, &mut altered).await?;
                replicas
            }
            None => listed_replicas(&reported),
        };
        done.replication.insert(keyspace.clone(), replicas);
    }
    // A datacenter being removed: which of the user's keyspaces still replicate to it (it is
    // not deleted while any does; the user alters them).
    if !work.datacenters.removed.is_empty() {
        for keyspace in api.keyspaces(pod).await? {
            let managed = work.keyspaces.contains(&keyspace);
            if managed || is_system_keyspace(&keyspace) || done.replication.contains_key(&keyspace)
            {
                continue;
            }
            let Some(reported) = api.keyspace_replication(pod, &keyspace).await? else {
                continue;
            };
            let replicas = listed_replicas(&reported);
            if replicas.keys().any(|dc| work.datacenters.removed.contains(dc)) {
                done.replication.insert(keyspace, replicas);
            }
        }
    }
    // One Event per change (repeats of a reason fold into one series).
    if !altered.is_empty() {
        done.notices.push(Notice::normal(
            "ReplicationAltered",
            "AlterKeyspace",
            format!("replication altered: {}", altered.join("; ")),
        ));
    }
    Ok(done)
}

/// Creates a component's keyspace with the replication the system keyspaces get.
async fn create(
    api: &ManagementApi,
    pod: &PodEndpoint,
    keyspace: &str,
    datacenters: &DatacenterSet,
    altered: &mut Vec<String>,
) -> Result<BTreeMap<String, u32>, ManagementError> {
    let empty =
        ReportedReplication::from([("class".to_string(), "NetworkTopologyStrategy".to_string())]);
    let replicas = alteration(&empty, datacenters).unwrap_or_default();
    api.create_keyspace(pod, keyspace, &replicas).await?;
    altered.push(format!(
        "{} (created)",
        describe_replicas(keyspace, &replicas)
    ));
    Ok(replicas)
}

async fn alter(
    api: &ManagementApi,
    pod: &PodEndpoint,
    keyspace: &str,
    replicas: &BTreeMap<String, u32>,
    altered: &mut Vec<String>,
) -> Result<(), ManagementError> {
    api.alter_keyspace(pod, keyspace, replicas).await?;
    altered.push(describe_replicas(keyspace, replicas));
    Ok(())
}

fn category(error: &ManagementError) -> FailureCategory {
    match error {
        ManagementError::Unreachable { .. } | ManagementError::Connection { .. } => {
            FailureCategory::Unreachable
        }
        ManagementError::Unusable { .. } => FailureCategory::Rejected,
        ManagementError::Forbidden { .. } => FailureCategory::Forbidden,
        ManagementError::Refused { code, .. } if *code >= 500 => FailureCategory::Transient,
        ManagementError::Refused { .. } | ManagementError::Unexpected { .. } => {
            FailureCategory::Rejected
        }
    }
}
