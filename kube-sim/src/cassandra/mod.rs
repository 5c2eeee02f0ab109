//! An in-memory model of Apache Cassandra 4.x clusters, for kube-sim's stand-ins of the
//! Management API, the CassandraTask runner, Medusa and Reaper.
//!
//! [`CassandraModel`] holds every cluster (keyed by the CassandraDatacenter's
//! `spec.clusterName`; one cluster spans several simulated Kubernetes clusters, its "regions")
//! and Medusa's buckets. It is plain data: callers wrap it in a mutex. Nothing here does I/O or
//! waits; time is the model's clock, which tests set by hand.
//!
//! What it models, by area:
//! - [`cluster`] and [`topology`]: nodes, their tokens, ring state and liveness; joining with
//!   bootstrap, decommission, pods deleted without decommission.
//! - [`ring`]: vnode tokens and replica placement (SimpleStrategy, rack-aware
//!   NetworkTopologyStrategy).
//! - [`schema`]: keyspaces and replication with Cassandra 4.0's validation, system keyspaces,
//!   tables, schema versions.
//! - [`data`] and [`streaming`]: rows on replicas, consistency levels, read repair, repair,
//!   cleanup, rebuild and the streaming of topology changes.
//! - [`auth`]: roles as rows of `system_auth.roles`, logins at the role manager's levels.
//! - [`jobs`]: Management API jobs and the table operations they run.
//! - [`bucket`]: Medusa backups, purges and restores.
//! - [`inspect`]: what the test interface shows (ring, keyspaces, row counts).
//! - [`volume`]: files on a pod's data volume besides the node's data (Medusa's restore marker).
//!
//! Deliberately not modelled: hints and batchlog (a replica that was down misses the writes of
//! that time until a repair or read repair), clustering rows and columns (one value per
//! partition), TTLs, gc_grace and tombstone purging, LWT/SERIAL, range movements that take time
//! (joins and decommissions complete at once, so ALTER KEYSPACE is never refused for a pending
//! range movement), replace_address, seeds (every node but a cluster's first bootstraps unless
//! its spec turns `auto_bootstrap` off), incremental repair, snapshots other than Medusa's, and
//! Murmur3 tokens (keys hash with a stable 64-bit hash instead).

pub mod auth;
pub mod bucket;
pub mod cluster;
pub mod consistency;
pub mod data;
pub mod error;
pub mod inspect;
pub mod jobs;
pub mod keyspace;
pub mod level;
pub mod node;
pub mod operations;
pub mod pod;
pub mod ring;
pub mod rows;
pub mod schema;
pub mod streaming;
pub mod topology;
pub mod volume;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

pub use auth::Role;
pub use bucket::{
    BackupMode, BackupNode, BackupStatus, BackupSummary, NodeBackupStatus, PurgeStats,
    RestoreOptions, StorageLocation,
};
pub use cluster::{ManagementFault, ManagementTls, Node, NodeState, PodRef};
pub use consistency::ConsistencyLevel;
pub use data::{Cell, RepairOutcome, RepairRequest};
pub use error::{CassandraError, Result, Unavailable};
pub use inspect::{KeyspaceView, RingEntry, RowCounts, TokenRangeReplicas};
pub use jobs::{Job, JobStatus, NodeOperation, OperationRecord, StatusChange, TableOperation};
pub use schema::{Column, ColumnKind, Keyspace, Replication, SystemReplicationProperties, Table};
pub use topology::{DecommissionOutcome, NodeSpec, StartOutcome};

use cluster::Cluster;

/// The one model every simulated Kubernetes cluster of a [`crate::Sim`] shares: a Cassandra
/// cluster spans regions.
pub type SharedModel = std::sync::Arc<parking_lot::Mutex<CassandraModel>>;

/// 2024-01-01T00:00:00Z, where a deterministic model's clock starts.
pub const DETERMINISTIC_EPOCH_MILLIS: i64 = 1_704_067_200_000;

#[derive(Debug, Clone, Copy)]
enum Clock {
    System,
    Manual(i64),
}

/// Every simulated Cassandra cluster and Medusa bucket.
pub struct CassandraModel {
    clusters: BTreeMap<String, Cluster>,
    /// Which cluster each pod's node belongs to.
    pods: HashMap<PodRef, String>,
    buckets: BTreeMap<StorageLocation, bucket::Bucket>,
    /// Files on each pod's data volume other than the node's data (see [`volume`]).
    volumes: HashMap<PodRef, BTreeMap<String, String>>,
    clock: Clock,
    rng: fastrand::Rng,
    last_timestamp_micros: i64,
    job_duration_millis: i64,
    job_sequence: u64,
    backup_duration_millis: i64,
    backup_grace_period_days: i64,
}

impl Default for CassandraModel {
    fn default() -> Self {
        Self::new()
    }
}

impl CassandraModel {
    /// A model on the system clock with random tokens and ids.
    pub fn new() -> Self {
        Self::build(Clock::System, fastrand::Rng::new())
    }

    /// A model whose clock starts at [`DETERMINISTIC_EPOCH_MILLIS`] and only moves when told,
    /// and whose tokens, host ids and job ids come from `seed`: the same calls give the same
    /// results.
    pub fn deterministic(seed: u64) -> Self {
        Self::build(
            Clock::Manual(DETERMINISTIC_EPOCH_MILLIS),
            fastrand::Rng::with_seed(seed),
        )
    }

    fn build(clock: Clock, rng: fastrand::Rng) -> Self {
        CassandraModel {
            clusters: BTreeMap::new(),
            pods: HashMap::new(),
            buckets: BTreeMap::new(),
            volumes: HashMap::new(),
            clock,
            rng,
            last_timestamp_micros: 0,
            job_duration_millis: 0,
            job_sequence: 0,
            backup_duration_millis: 0,
            backup_grace_period_days: bucket::DEFAULT_BACKUP_GRACE_PERIOD_DAYS,
        }
    }

    /// The model's time in milliseconds since the epoch.
    pub fn now_millis(&self) -> i64 {
        match self.clock {
            Clock::System => jiff::Timestamp::now().as_millisecond(),
            Clock::Manual(millis) => millis,
        }
    }

    /// Fixes the clock at `millis` (from then on it moves only when told).
    pub fn set_now_millis(&mut self, millis: i64) {
        self.clock = Clock::Manual(millis);
    }

    /// Moves the clock forward (a system clock becomes a manual one first).
    pub fn advance_millis(&mut self, millis: i64) {
        let now = self.now_millis();
        self.clock = Clock::Manual(now + millis);
    }

    /// How long Management API jobs stay WAITING before they run (0: they run when submitted).
    pub fn set_job_duration_millis(&mut self, millis: i64) {
        self.job_duration_millis = millis.max(0);
    }

    /// How long a Medusa node backup stays IN_PROGRESS (0: it finishes when taken).
    pub fn set_backup_duration_millis(&mut self, millis: i64) {
        self.backup_duration_millis = millis.max(0);
    }

    /// Medusa's `backup_grace_period_in_days`: purges keep unreferenced differential files
    /// younger than this.
    pub fn set_backup_grace_period_days(&mut self, days: i64) {
        self.backup_grace_period_days = days.max(0);
    }

    /// Names of the clusters that have had a node.
    pub fn cluster_names(&self) -> Vec<String> {
        self.clusters.keys().cloned().collect()
    }

    pub fn has_cluster(&self, cluster: &str) -> bool {
        self.clusters.contains_key(cluster)
    }

    /// The node of a pod, in whichever cluster it belongs to.
    pub fn node(&self, pod: &PodRef) -> Result<&Node> {
        let (cluster, idx) = self.locate(pod)?;
        Ok(&self.cluster(&cluster)?.nodes[idx])
    }

    /// The cluster name of a pod's node.
    pub fn cluster_of(&self, pod: &PodRef) -> Result<&str> {
        self.pods
            .get(pod)
            .map(String::as_str)
            .ok_or_else(|| CassandraError::UnknownNode(pod.to_string()))
    }

    /// The node with this address in a cluster (Left nodes excluded).
    pub fn node_by_ip(&self, cluster: &str, ip: &str) -> Result<&Node> {
        let c = self.cluster(cluster)?;
        let idx = c.index_by_ip(ip).ok_or_else(|| CassandraError::UnknownNode(ip.to_string()))?;
        Ok(&c.nodes[idx])
    }

    /// The node with this address in any cluster, with its cluster's name (addresses are
    /// unique across the simulated regions' pod networks).
    pub fn locate_ip(&self, ip: &str) -> Option<(&str, &Node)> {
        self.clusters
            .iter()
            .find_map(|(name, c)| c.index_by_ip(ip).map(|idx| (name.as_str(), &c.nodes[idx])))
    }

    /// Every node of a cluster that is not Left, in join order.
    pub fn nodes(&self, cluster: &str) -> Result<Vec<&Node>> {
        let c = self.cluster(cluster)?;
        Ok(c.known_members().map(|idx| &c.nodes[idx]).collect())
    }

    /// Sets what the node's Management API should do (see [`ManagementFault`]).
    pub fn set_management_fault(&mut self, pod: &PodRef, fault: ManagementFault) -> Result<()> {
        self.node_mut(pod)?.management_fault = fault;
        Ok(())
    }

    /// Sets the TLS the node's Management API serves with (`None`: plain HTTP).
    pub fn set_management_tls(&mut self, pod: &PodRef, tls: Option<ManagementTls>) -> Result<()> {
        self.node_mut(pod)?.management_tls = tls;
        Ok(())
    }

    pub(crate) fn cluster(&self, cluster: &str) -> Result<&Cluster> {
        self.clusters
            .get(cluster)
            .ok_or_else(|| CassandraError::UnknownCluster(cluster.to_string()))
    }

    pub(crate) fn cluster_mut(&mut self, cluster: &str) -> Result<&mut Cluster> {
        self.clusters
            .get_mut(cluster)
            .ok_or_else(|| CassandraError::UnknownCluster(cluster.to_string()))
    }

    /// The cluster name and node index of a pod.
    pub(crate) fn locate(&self, pod: &PodRef) -> Result<(String, usize)> {
        let cluster = self.cluster_of(pod)?.to_string();
        let idx = self.cluster(&cluster)?.node_index(pod)?;
        Ok((cluster, idx))
    }

    pub(crate) fn node_mut(&mut self, pod: &PodRef) -> Result<&mut Node> {
        let (cluster, idx) = self.locate(pod)?;
        Ok(&mut self.cluster_mut(&cluster)?.nodes[idx])
    }

    /// The node of a pod, which must be running (a stopped node answers nothing).
    pub(crate) fn running_node(&self, pod: &PodRef) -> Result<(String, usize)> {
        let (cluster, idx) = self.locate(pod)?;
        if !self.cluster(&cluster)?.nodes[idx].running {
            return Err(CassandraError::NodeNotRunning(pod.to_string()));
        }
        Ok((cluster, idx))
    }

    pub(crate) fn new_uuid(&mut self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        for byte in &mut bytes {
            *byte = self.rng.u8(..);
        }
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    pub(crate) fn next_job_sequence(&mut self) -> u64 {
        self.job_sequence += 1;
        self.job_sequence
    }

    pub(crate) fn random_token(&mut self) -> i64 {
        self.rng.i64(..)
    }

    /// A write timestamp in microseconds: the clock's, but always after the previous one, so
    /// that of two writes the later wins even within one millisecond.
    pub(crate) fn next_timestamp(&mut self) -> i64 {
        let now = self.now_millis().saturating_mul(1000);
        self.last_timestamp_micros = now.max(self.last_timestamp_micros + 1);
        self.last_timestamp_micros
    }
}
