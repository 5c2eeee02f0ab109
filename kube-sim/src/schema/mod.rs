//! Custom-resource admission: structural schema checks, defaulting, pruning, OpenAPI v3
//! validation and `x-kubernetes-validations` CEL rules, worded as kube-apiserver words them.
//!
//! - [`check_structural`] / [`check_crd`]: what the apiserver checks in a CRD's schemas when
//!   the CRD is written (structural rules, and every CEL rule must compile).
//! - [`CrAdmission`]: the [`crate::store::Admission`] of one CRD version, run on every write
//!   of a custom resource.

mod admission;
mod cel;
mod coerce;
mod escape;
mod listtype;
mod memo;
mod node;
mod openapi;
mod reach;
mod render;
mod structural;
#[cfg(test)]
mod tests;
mod typecheck;

pub use admission::CrAdmission;
pub use structural::{check_crd, check_structural, check_structural_at};
