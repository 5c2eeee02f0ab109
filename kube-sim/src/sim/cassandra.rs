//! The Cassandra test endpoints of [`Sim`]: what a test does with the clusters behind the
//! CassandraDatacenters, as cqlsh and nodetool would. Clusters are named by Cassandra cluster
//! name (`spec.clusterName`) and requests go through a datacenter (a driver whose local DC it
//! is); nodes are named by context, namespace and pod.

use std::collections::BTreeMap;

use crate::cassandra::{
    CassandraError, Column, ConsistencyLevel, KeyspaceView, ManagementFault, PodRef, RingEntry,
    Role, RowCounts,
};

use super::Sim;

/// A Cassandra request of a test that could not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CassandraRequestError {
    /// What Cassandra answered.
    #[error(transparent)]
    Cassandra(#[from] CassandraError),
    /// The cluster has no node in that datacenter.
    #[error("no datacenter {datacenter} in Cassandra cluster {cluster}")]
    UnknownDatacenter { cluster: String, datacenter: String },
    /// No node of the datacenter runs: a driver held to it finds no coordinator.
    #[error(
        "All host(s) tried for query failed: no live node in datacenter {datacenter} of cluster {cluster}"
    )]
    NoHostAvailable { cluster: String, datacenter: String },
    /// No simulated Kubernetes cluster has that context.
    #[error("no cluster with context {0}")]
    UnknownContext(String),
}

impl CassandraRequestError {
    /// The HTTP status the admin API answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            CassandraRequestError::UnknownDatacenter { .. }
            | CassandraRequestError::UnknownContext(_) => 404,
            CassandraRequestError::NoHostAvailable { .. } => 503,
            CassandraRequestError::Cassandra(error) => match error {
                CassandraError::UnknownCluster(_)
                | CassandraError::UnknownNode(_)
                | CassandraError::UnknownJob(_) => 404,
                CassandraError::NodeNotRunning(_)
                | CassandraError::Unavailable(_)
                | CassandraError::AuthenticationUnavailable(_) => 503,
                CassandraError::Authentication(_) => 401,
                CassandraError::Unauthorized(_) => 403,
                CassandraError::AlreadyExists(_)
                | CassandraError::UnsupportedOperation(_)
                | CassandraError::IllegalState(_) => 409,
                CassandraError::InvalidRequest(_)
                | CassandraError::Configuration(_)
                | CassandraError::IllegalArgument(_)
                | CassandraError::Backup(_) => 400,
            },
        }
    }

    /// The Java exception class a driver would report (`NoHostAvailableException` for the
    /// driver's own).
    pub fn exception(&self) -> &'static str {
        match self {
            CassandraRequestError::UnknownDatacenter { .. }
            | CassandraRequestError::UnknownContext(_) => "NotFound",
            CassandraRequestError::NoHostAvailable { .. } => "NoHostAvailableException",
            CassandraRequestError::Cassandra(error) => match error {
                CassandraError::UnknownCluster(_)
                | CassandraError::UnknownNode(_)
                | CassandraError::UnknownJob(_) => "NotFound",
                CassandraError::NodeNotRunning(_) => "NoHostAvailableException",
                CassandraError::Unavailable(_) => "UnavailableException",
                CassandraError::Authentication(_)
                | CassandraError::AuthenticationUnavailable(_) => "AuthenticationException",
                CassandraError::Unauthorized(_) => "UnauthorizedException",
                CassandraError::AlreadyExists(_) => "AlreadyExistsException",
                CassandraError::InvalidRequest(_) => "InvalidRequestException",
                CassandraError::Configuration(_) => "ConfigurationException",
                CassandraError::UnsupportedOperation(_) => "UnsupportedOperationException",
                CassandraError::IllegalArgument(_) => "IllegalArgumentException",
                CassandraError::IllegalState(_) => "IllegalStateException",
                CassandraError::Backup(_) => "MedusaError",
            },
        }
    }
}

pub type CassandraResult<T> = Result<T, CassandraRequestError>;

/// The key of generated row `n` (`write_generated_rows`).
pub fn generated_key(n: usize) -> String {
    format!("key-{n}")
}

impl Sim {
    /// The model's name for a pod of cluster `context`.
    pub fn cassandra_pod(
        &self,
        context: &str,
        namespace: &str,
        pod: &str,
    ) -> CassandraResult<PodRef> {
        if !self.inner.clusters.iter().any(|c| c.context == context) {
            return Err(CassandraRequestError::UnknownContext(context.to_string()));
        }
        Ok(PodRef::new(context, namespace, pod))
    }

    /// A coordinator must exist and run in the datacenter (the driver's local DC).
    fn check_coordinator(&self, cluster: &str, datacenter: &str) -> CassandraResult<()> {
        let model = self.inner.cassandra.lock();
        let nodes = model.nodes(cluster)?;
        let in_dc: Vec<_> = nodes.iter().filter(|n| n.datacenter == datacenter).collect();
        if in_dc.is_empty() {
            return Err(CassandraRequestError::UnknownDatacenter {
                cluster: cluster.to_string(),
                datacenter: datacenter.to_string(),
            });
        }
        if !in_dc.iter().any(|n| n.running && n.up && n.state.owns_ranges()) {
            return Err(CassandraRequestError::NoHostAvailable {
                cluster: cluster.to_string(),
                datacenter: datacenter.to_string(),
            });
        }
        Ok(())
    }

    /// Writes `rows` (partition key, value) at `consistency` through `datacenter`; the write
    /// timestamp.
    #[allow(clippy::too_many_arguments)]
    pub fn cassandra_write(
        &self,
        cluster: &str,
        datacenter: &str,
        keyspace: &str,
        table: &str,
        rows: Vec<(String, String)>,
        consistency: ConsistencyLevel,
    ) -> CassandraResult<i64> {
        self.check_coordinator(cluster, datacenter)?;
        let written = self.inner.cassandra.lock().write(
            cluster,
            datacenter,
            keyspace,
            table,
            rows,
            consistency,
        )?;
        Ok(written)
    }

    /// Writes `count` rows `key-<n>` → `value-<n>` (n from 0).
    pub fn cassandra_write_generated(
        &self,
        cluster: &str,
        datacenter: &str,
        keyspace: &str,
        table: &str,
        count: usize,
        consistency: ConsistencyLevel,
    ) -> CassandraResult<i64> {
        let rows = (0..count).map(|n| (generated_key(n), format!("value-{n}"))).collect();
        self.cassandra_write(cluster, datacenter, keyspace, table, rows, consistency)
    }

    /// Reads one partition at `consistency` through `datacenter`.
    pub fn cassandra_read(
        &self,
        cluster: &str,
        datacenter: &str,
        keyspace: &str,
        table: &str,
        key: &str,
        consistency: ConsistencyLevel,
    ) -> CassandraResult<Option<String>> {
        self.check_coordinator(cluster, datacenter)?;
        let value = self.inner.cassandra.lock().read(
            cluster,
            datacenter,
            keyspace,
            table,
            key,
            consistency,
        )?;
        Ok(value)
    }

    /// `SELECT count(*)` at `consistency` through `datacenter`.
    pub fn cassandra_count(
        &self,
        cluster: &str,
        datacenter: &str,
        keyspace: &str,
        table: &str,
        consistency: ConsistencyLevel,
    ) -> CassandraResult<usize> {
        self.check_coordinator(cluster, datacenter)?;
        let count =
            self.inner.cassandra.lock().count(cluster, datacenter, keyspace, table, consistency)?;
        Ok(count)
    }

    /// A native-protocol login through `datacenter`.
    pub fn cassandra_login(
        &self,
        cluster: &str,
        datacenter: &str,
        user: &str,
        password: &str,
    ) -> CassandraResult<Role> {
        self.check_coordinator(cluster, datacenter)?;
        let role = self.inner.cassandra.lock().login(cluster, datacenter, user, password)?;
        Ok(role)
    }

    /// `nodetool status`: the nodes gossip knows.
    pub fn cassandra_ring(&self, cluster: &str) -> CassandraResult<Vec<RingEntry>> {
        Ok(self.inner.cassandra.lock().ring(cluster)?)
    }

    /// Every keyspace with its replication and tables.
    pub fn cassandra_keyspaces(&self, cluster: &str) -> CassandraResult<Vec<KeyspaceView>> {
        Ok(self.inner.cassandra.lock().keyspaces(cluster)?)
    }

    /// Live rows per table, per node and per datacenter, read from the replicas.
    pub fn cassandra_row_counts(&self, cluster: &str) -> CassandraResult<RowCounts> {
        Ok(self.inner.cassandra.lock().row_counts(cluster)?)
    }

    /// `CREATE KEYSPACE ... WITH replication = {options}` (e.g. `class` and a factor per DC).
    pub fn cassandra_create_keyspace(
        &self,
        cluster: &str,
        keyspace: &str,
        replication: &BTreeMap<String, String>,
    ) -> CassandraResult<()> {
        self.inner.cassandra.lock().create_keyspace_with_options(cluster, keyspace, replication)?;
        Ok(())
    }

    /// `ALTER KEYSPACE ... WITH replication = {options}`.
    pub fn cassandra_alter_keyspace(
        &self,
        cluster: &str,
        keyspace: &str,
        replication: &BTreeMap<String, String>,
    ) -> CassandraResult<()> {
        self.inner.cassandra.lock().alter_keyspace_with_options(cluster, keyspace, replication)?;
        Ok(())
    }

    /// `CREATE TABLE keyspace.table (key text PRIMARY KEY, value text)`, the shape the write
    /// and read endpoints use.
    pub fn cassandra_create_table(
        &self,
        cluster: &str,
        keyspace: &str,
        table: &str,
    ) -> CassandraResult<()> {
        let columns = vec![
            Column::partition_key("key", "text"),
            Column::regular("value", "text"),
        ];
        self.inner.cassandra.lock().create_table(cluster, keyspace, table, columns)?;
        Ok(())
    }

    /// Stops the Cassandra process of a pod (the pod stays; its readiness probe fails, so
    /// the stand-in turns it not Ready).
    pub fn stop_cassandra_node(
        &self,
        context: &str,
        namespace: &str,
        pod: &str,
    ) -> CassandraResult<()> {
        let pod = self.cassandra_pod(context, namespace, pod)?;
        self.inner.cassandra.lock().stop_node(&pod)?;
        self.inner.wiring.model_changed();
        Ok(())
    }

    /// Starts a stopped Cassandra process again (the pod turns Ready).
    pub fn start_cassandra_node(
        &self,
        context: &str,
        namespace: &str,
        pod: &str,
    ) -> CassandraResult<()> {
        let pod = self.cassandra_pod(context, namespace, pod)?;
        self.inner.cassandra.lock().restart_node(&pod)?;
        self.inner.wiring.model_changed();
        Ok(())
    }

    /// Makes the node's Management API answer with a status or slowly (the default fault
    /// clears it).
    pub fn set_cassandra_management_fault(
        &self,
        context: &str,
        namespace: &str,
        pod: &str,
        fault: ManagementFault,
    ) -> CassandraResult<()> {
        let pod = self.cassandra_pod(context, namespace, pod)?;
        self.inner.cassandra.lock().set_management_fault(&pod, fault)?;
        Ok(())
    }
}
