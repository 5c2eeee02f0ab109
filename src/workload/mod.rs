//! Building Cassandra's workloads, shared by the federation (the CassandraDatacenters and their
//! Secrets and ConfigMaps) and the data plane (Stargate and Reaper): the names, labels and
//! annotations k8ssandra-operator and cass-operator use, encryption stores, the Vector agent's
//! configuration, generated ConfigMaps and their content hashes, and ServiceMonitors.

pub mod encryption;
pub mod generated;
pub mod labels;
pub mod service_monitor;
pub mod vector;
