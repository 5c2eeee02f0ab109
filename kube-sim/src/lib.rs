//! kube-sim: a multi-cluster Kubernetes API simulator for Federator's tests, benchmarks and demo.
//!
//! [`SimBuilder`] starts N clusters, each a TLS Kubernetes API on its own 127.0.0.1 port.

// `ApiError` carries a whole Status (details, causes); errors are the rare path, so its size
// in `Result` does not matter.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod auth;
pub mod builtin_schemas;
pub mod cass_operator;
pub mod cassandra;
pub mod cassandra_task;
pub mod catalog;
pub mod cluster;
pub mod crd;
pub mod discovery;
pub mod error;
pub mod jsonpath;
pub mod management_api;
pub mod medusa;
pub mod openapi;
pub mod pod_network;
pub mod prerequisites;
// Federator's own quantity code, so that the simulated API server stores quantities in the
// canonical form Federator compares with (kube-sim must not depend on the federator crate).
#[path = "../../src/quantity.rs"]
pub mod quantity;
pub mod rbac;
pub mod reaper;
pub mod requests;
pub mod schema;
pub mod server;
pub mod sim;
pub mod store;
pub mod table;
pub mod tls;

pub use sim::{ClusterSummary, Sim, SimBuilder};

/// Now as RFC3339 UTC with whole seconds, as Kubernetes timestamps are written.
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    now.to_string()
}
