//! Federator: a multi-cluster control plane for Apache Cassandra on Kubernetes that speaks the
//! K8ssandra API.

pub mod api;
pub mod apply;
pub mod cache;
pub mod cassandra;
pub mod cli;
pub mod clusters;
pub mod control;
pub mod crdgen;
pub mod dataplane;
pub mod events;
pub mod federation;
pub mod home;
pub mod operator;
pub mod ops;
pub mod quantity;
pub mod replication;
pub mod settings;
pub mod telemetry;
pub mod workload;
