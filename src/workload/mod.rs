//! Building Cassandra's workloads, shared by the federation (the CassandraDatacenters and their
//! Secrets and ConfigMaps) and the data plane (Stargate and Reaper): the names, labels and
//! annotations k8ssandra-operator and cass-operator use, encryption stores, the Vector agent's
//! configuration, the Cassandra metrics agent's configuration, generated ConfigMaps and their
//! content hashes, and ServiceMonitors with their relabelling.

pub mod encryption;
pub mod generated;
pub mod labels;
pub mod medusa;
pub mod metrics_agent;
pub mod relabel;
pub mod service_monitor;
pub mod vector;

#[cfg(test)]
mod dashboards;
