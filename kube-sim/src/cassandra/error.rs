//! The model's errors. Each variant stands for the Cassandra exception class named on it, and
//! its message is Cassandra 4's text, so the interface layers can pass it on unchanged.

use super::level::ConsistencyLevel;

pub type Result<T, E = CassandraError> = std::result::Result<T, E>;

/// Not enough live replicas for a consistency level (`UnavailableException`). Cassandra 4.x
/// words it "Cannot achieve consistency level X", with " in DC d" for EACH_QUORUM's per-DC
/// check; `required` and `alive` are the numbers its native protocol error carries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Cannot achieve consistency level {consistency}{}", in_dc(.datacenter))]
pub struct Unavailable {
    pub consistency: ConsistencyLevel,
    pub required: usize,
    pub alive: usize,
    /// The datacenter EACH_QUORUM found short, if that is what failed.
    pub datacenter: Option<String>,
}

fn in_dc(datacenter: &Option<String>) -> String {
    datacenter.as_ref().map(|dc| format!(" in DC {dc}")).unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CassandraError {
    /// No node ever started with this `cluster_name`.
    #[error("unknown Cassandra cluster {0}")]
    UnknownCluster(String),
    /// No node for this pod (or ip / host id).
    #[error("unknown Cassandra node {0}")]
    UnknownNode(String),
    /// The node's process is not running, so nothing on it (Management API, Medusa) answers.
    #[error("Cassandra is not running on {0}")]
    NodeNotRunning(String),
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    /// CQL `InvalidRequestException`.
    #[error("{0}")]
    InvalidRequest(String),
    /// `ConfigurationException` (replication options).
    #[error("{0}")]
    Configuration(String),
    /// `AlreadyExistsException`.
    #[error("{0}")]
    AlreadyExists(String),
    /// `UnauthorizedException` (schema changes to system keyspaces).
    #[error("{0}")]
    Unauthorized(String),
    /// `AuthenticationException`: wrong credentials, or a role that may not log in.
    #[error("{0}")]
    Authentication(String),
    /// `AuthenticationException` wrapping the read that could not run, as
    /// `PasswordAuthenticator` does.
    #[error("Unable to perform authentication: {0}")]
    AuthenticationUnavailable(Unavailable),
    /// `UnsupportedOperationException` (decommission refusals).
    #[error("{0}")]
    UnsupportedOperation(String),
    /// `IllegalArgumentException` (unknown keyspace or table for an operation, bad source DC).
    #[error("{0}")]
    IllegalArgument(String),
    /// `IllegalStateException` / `RuntimeException` (streaming without a source, repairs with a
    /// dead neighbour, a node that cannot start).
    #[error("{0}")]
    IllegalState(String),
    /// A Medusa error (unknown backup, name already used, restore mapping).
    #[error("{0}")]
    Backup(String),
    /// No job of that id on that node (the Management API answers 404).
    #[error("Job not found: {0}")]
    UnknownJob(String),
}
