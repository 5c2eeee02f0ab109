//! What the controller saw in the regions, as plain data: the input of [`super::rollout::decide`]
//! and [`super::status::cluster_status`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::api::cassdc::CassandraDatacenter;
use crate::api::k8ssandra_cluster::K8ssandraClusterStatus;

use super::labels::{DECOMMISSION_ON_DELETE_ANNOTATION, is_owned_by};
use super::plan::ClusterKey;

/// One datacenter as seen in its region: a datacenter of the plan (looked up where the plan puts
/// it), or one this K8ssandraCluster owns that the plan no longer has (found by label, or
/// remembered in `status.datacenters`).
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedDatacenter {
    pub context: String,
    pub namespace: String,
    pub state: RemoteState,
}

/// The state of one datacenter's CassandraDatacenter in its region.
#[derive(Clone, Debug, PartialEq)]
pub enum RemoteState {
    /// The datacenter's `k8sContext` names no known region (no ClientConfig for it).
    UnknownContext,
    /// The region did not answer; `reason` says why (timeout, TLS, credentials...).
    Unreachable { reason: String },
    /// The namespace does not exist in the region (Federator does not create namespaces).
    NamespaceMissing,
    /// There is no CassandraDatacenter of that name there.
    Absent,
    /// A CassandraDatacenter of that name exists without this cluster's ownership labels, and
    /// the K8ssandraCluster does not ask to adopt it.
    Conflict { owner: Option<String> },
    /// This cluster's CassandraDatacenter (or one adopted on request).
    Present(Arc<CassandraDatacenter>),
}

impl RemoteState {
    /// Classifies what a region returned for the CassandraDatacenter: absent, ours (or adopted
    /// on request), or someone else's.
    pub fn from_lookup(
        found: Option<Arc<CassandraDatacenter>>,
        cluster: &ClusterKey,
        adopt: bool,
    ) -> RemoteState {
        match found {
            None => RemoteState::Absent,
            Some(dc)
                if adopt
                    || is_owned_by(
                        dc.metadata.labels.as_ref(),
                        &cluster.name,
                        &cluster.namespace,
                    ) =>
            {
                RemoteState::Present(dc)
            }
            Some(dc) => {
                let labels = dc.metadata.labels.as_ref();
                let owner = labels
                    .and_then(|l| l.get(crate::api::shared::CLUSTER_NAME_LABEL))
                    .map(|name| {
                        let namespace = labels
                            .and_then(|l| l.get(crate::api::shared::CLUSTER_NAMESPACE_LABEL))
                            .map(String::as_str)
                            .unwrap_or("?");
                        format!("K8ssandraCluster {namespace}/{name}")
                    });
                RemoteState::Conflict { owner }
            }
        }
    }

    pub fn present(&self) -> Option<&CassandraDatacenter> {
        match self {
            RemoteState::Present(dc) => Some(dc),
            _ => None,
        }
    }

    /// Present and Ready for its current generation.
    pub fn is_ready(&self) -> bool {
        self.present().is_some_and(CassandraDatacenter::is_ready)
    }

    /// Present and being deleted (deletionTimestamp set).
    pub fn is_deleting(&self) -> bool {
        self.present()
            .is_some_and(|dc| dc.metadata.deletion_timestamp.is_some())
    }

    /// Present and already annotated to decommission on delete.
    pub fn has_decommission_annotation(&self) -> bool {
        self.present().is_some_and(|dc| {
            dc.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DECOMMISSION_ON_DELETE_ANNOTATION))
                .is_some_and(|v| v == "true")
        })
    }
}

/// Everything observed for one K8ssandraCluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedCluster {
    /// By datacenter name (`metadata.name`).
    pub datacenters: BTreeMap<String, ObservedDatacenter>,
    /// Datacenters this cluster has had (keys of the previous `status.datacenters`): tells a
    /// CassandraDatacenter deleted by hand (re-created) from a datacenter added to the spec.
    pub known: BTreeSet<String>,
    /// Datacenters whose secrets are not in their region yet, with what is awaited
    /// ([`super::secrets`]): they are not created until the secrets are there.
    pub secrets_pending: BTreeMap<String, String>,
}

impl ObservedCluster {
    /// An observation with the datacenters known from the previous status.
    pub fn new(
        datacenters: BTreeMap<String, ObservedDatacenter>,
        previous: Option<&K8ssandraClusterStatus>,
    ) -> ObservedCluster {
        let known = previous
            .and_then(|s| s.datacenters.as_ref())
            .map(|dcs| dcs.keys().cloned().collect())
            .unwrap_or_default();
        ObservedCluster {
            datacenters,
            known,
            secrets_pending: BTreeMap::new(),
        }
    }

    pub fn get(&self, datacenter: &str) -> Option<&ObservedDatacenter> {
        self.datacenters.get(datacenter)
    }

    /// Whether the datacenter exists now or existed before.
    pub fn is_known(&self, datacenter: &str) -> bool {
        self.known.contains(datacenter)
            || self
                .get(datacenter)
                .is_some_and(|o| o.state.present().is_some())
    }
}

/// Where the previous status says each datacenter ran: how the controller finds the region of a
/// datacenter taken out of the spec.
pub fn known_contexts(status: Option<&K8ssandraClusterStatus>) -> BTreeMap<String, String> {
    status
        .and_then(|s| s.datacenters.as_ref())
        .map(|dcs| {
            dcs.iter()
                .map(|(name, dc)| (name.clone(), dc.context_name.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}
