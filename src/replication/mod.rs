//! Secret replication: the ReplicatedSecret controller (control-plane mode).
//!
//! A ReplicatedSecret copies the Secrets of its own namespace that its selector matches into
//! each target (a region's context and a namespace), keeps the copies equal to their sources
//! (rotation, hand edits), and prunes the copies nobody wants any more. Improvements over
//! k8ssandra-operator: a Secret it did not make is never overwritten (Conflict), copies are
//! pruned (source no longer selected, target removed, ReplicatedSecret deleted) unless annotated
//! `replicatedresource.k8ssandra.io/orphan: "true"`, immutable copies are replaced only on
//! request, a target that would feed the selector its own copies is refused, and each target has
//! its own condition, so a region that does not answer holds up nothing else. A ReplicatedSecret
//! itself annotated `replicatedresource.k8ssandra.io/orphan: "true"` leaves all its copies when
//! deleted (a K8ssandraCluster deleted with Federator's orphan annotation does that, so the
//! datacenters it leaves keep their credentials).
//!
//! [`desired`] is the pure core; [`controller`] does the I/O; [`watches`] re-queues a
//! ReplicatedSecret when one of its copies changes in any region.

pub mod controller;
pub mod desired;
pub mod watches;
