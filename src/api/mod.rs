//! Custom resource types: the K8ssandra API that Federator serves, one file per kind,
//! plus the client-side view of cass-operator's CassandraDatacenter.

pub mod cassdc;
pub mod client_config;
pub mod k8ssandra_cluster;
pub mod reaper;
pub mod replicated_secret;
pub mod shared;
pub mod stargate;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD Federator owns and installs, in a stable order.
/// (CassandraDatacenter is cass-operator's and is not listed.)
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        k8ssandra_cluster::K8ssandraCluster::crd(),
        client_config::ClientConfig::crd(),
        replicated_secret::ReplicatedSecret::crd(),
        stargate::Stargate::crd(),
        reaper::Reaper::crd(),
    ]
}
