//! kube-sim: a multi-cluster Kubernetes API simulator for Federator's tests, benchmarks and demo.

pub mod error;
pub mod schema;
pub mod store;
