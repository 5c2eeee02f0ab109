//! Federation: a K8ssandraCluster in the hub becomes one CassandraDatacenter per datacenter, in
//! the region its `k8sContext` names, kept in step for the life of the cluster.
//!
//! This module is the pure core, without Kubernetes I/O; the controller that watches, applies
//! and writes status calls it in this order:
//!
//! 1. Gather: a first [`plan::plan_with`] with only the contexts that reach the hub says where
//!    each datacenter is and what it references; the controller then looks in each region
//!    ([`observed::RemoteState::from_lookup`], an [`observed::ObservedCluster`]) and reads the
//!    store passwords and `perNodeConfigMapRef` ConfigMaps, all into [`plan::PlanInputs`].
//! 2. Plan: [`plan::plan_with`] from those inputs, whole (existing datacenters keep their
//!    `num_tokens`): the desired CassandraDatacenter of every datacenter, with its region and
//!    namespace ([`plan::ClusterPlan`]). Nothing changes it afterwards.
//! 3. [`rollout::decide`]: what to create, update or delete now (bootstrap order, removals,
//!    refused renames).
//! 4. [`keyspaces::keyspace_work`]: the system keyspaces' replication the datacenters that
//!    joined (or left) require, and the pods whose Management API to ask.
//! 5. [`seeds::seed_endpoint_slices`]: the seed EndpointSlices of each datacenter (host names
//!    of `additionalSeeds` resolved through [`seeds::CachingResolver`], again when their TTL
//!    ends), applied before the datacenters.
//! 6. The decisions are carried out ([`crate::apply::apply_if_changed`]: nothing is written
//!    when nothing changed).
//! 7. [`status::cluster_status`] (or [`status::invalid_spec_status`]): the new status, and
//!    [`notices`]: the Events for what changed.
//!
//! [`crate::workload::labels`] holds the names, labels and annotations shared with
//! k8ssandra-operator and cass-operator; [`config`] builds cass-operator's `config` from
//! `spec.cassandra.config`.

/// Field manager of the K8ssandraCluster controller's writes (remote datacenters, their
/// ConfigMaps and Secrets, the K8ssandraCluster status).
pub const FIELD_MANAGER: &str = "federator";

pub mod backups;
pub mod components;
pub mod config;
pub mod controller;
pub mod keyspaces;
pub mod notices;
pub mod observed;
pub mod plan;
pub mod progressive;
pub mod reaper_access;
pub mod reaper_registration;
pub mod rebuild;
pub mod referenced;
pub mod rollout;
pub mod secrets;
pub mod seeds;
pub mod status;
pub mod takeover;
pub mod tokens;
pub mod watches;
