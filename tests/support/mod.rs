//! The one support module of the integration tests: every test file that needs a helper says
//! `mod support;` and takes it from here (`use support::*;`).
//!
//! - [`sim`]: kube-sim clusters with Federator's CRDs ([`start_sim`]), the tests' bounded API
//!   calls ([`bounded`], [`apply`]) and the hub's registered regions (Secrets, ClientConfigs).
//! - [`cluster`]: the K8ssandraCluster manifest the tests apply, and status conditions.
//! - [`wait`]: [`wait_for`], polling a check until it gives a value.
//! - [`operator`]: the operator in the test's own process ([`InProcessOperator`]) and its logs.
//! - [`process`]: the `federator` binary as a child process ([`OperatorProcess`]) or as a user
//!   runs it, `kubectl`, and plain HTTP calls to the operator's server.
//! - [`world`]: the fault suite's and bad-input matrix's three-region world, and what they
//!   compare (every object carrying the ownership labels, in every cluster).
//! - [`compat`]: the shared reference data (`../shared/compat`).
//! - [`medusa`]: the Medusa tests' `spec.medusa`, bucket Secret, operators and rows.
//!
//! Each test binary compiles all of it: what one binary does not use (a helper, or a whole
//! submodule's re-export) is normal there, hence the allows.
#![allow(dead_code, unused_imports)]

pub mod cluster;
pub mod compat;
pub mod medusa;
pub mod operator;
pub mod process;
pub mod sim;
pub mod wait;
pub mod world;

pub use cluster::*;
pub use compat::*;
pub use medusa::*;
pub use operator::*;
pub use process::*;
pub use sim::*;
pub use wait::*;
pub use world::*;
