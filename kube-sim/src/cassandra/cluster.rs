//! One Cassandra cluster's state: its nodes, their ring and its schema.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use uuid::Uuid;

use super::data::NodeData;
use super::error::{CassandraError, Result};
use super::jobs::{Job, OperationRecord};
use super::ring::{Placement, Ring};
use super::schema::{Keyspace, Replication};

/// A Cassandra pod: the simulated Kubernetes cluster (region) it runs in, its namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodRef {
    pub region: String,
    pub namespace: String,
    pub name: String,
}

impl PodRef {
    pub fn new(
        region: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        PodRef {
            region: region.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.region, self.namespace, self.name)
    }
}

/// A node's ring state, as gossip shows it (`nodetool status`: J, N, L; Left nodes are gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Joining,
    Normal,
    Leaving,
    Left,
}

impl NodeState {
    /// Normal and Leaving nodes own token ranges; Joining ones only receive writes meant for them
    /// once they are Normal (joins complete at once in this model).
    pub fn owns_ranges(self) -> bool {
        matches!(self, NodeState::Normal | NodeState::Leaving)
    }
}

/// How the node's Management API should misbehave; the model only stores it, the HTTP layer
/// obeys it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagementFault {
    /// Answer every request with this HTTP status.
    pub fail_status: Option<u16>,
    /// Wait this long before answering.
    pub delay_millis: u64,
}

/// One Cassandra node.
#[derive(Debug, Clone)]
pub struct Node {
    pub pod: PodRef,
    pub host_id: Uuid,
    pub ip: String,
    pub datacenter: String,
    pub rack: String,
    pub tokens: Vec<i64>,
    pub state: NodeState,
    /// Whether the other nodes see it alive (gossip / failure detector).
    pub up: bool,
    /// Whether its Cassandra process runs (false after `stop_node`; `set_down` leaves it running
    /// but unreachable).
    pub running: bool,
    /// False once the pod was deleted without a decommission (`remove_node`).
    pub pod_present: bool,
    /// The schema version this node last saw.
    pub schema_version: Uuid,
    pub server_version: String,
    pub management_fault: ManagementFault,
    pub(crate) data: NodeData,
    pub(crate) operations: Vec<OperationRecord>,
    pub(crate) jobs: BTreeMap<String, Job>,
}

impl Node {
    /// The table operations (flush, compact, cleanup, ...) that ran here, oldest first.
    pub fn operations(&self) -> &[OperationRecord] {
        &self.operations
    }

    /// This node's Management API jobs by id.
    pub fn jobs(&self) -> &BTreeMap<String, Job> {
        &self.jobs
    }

    /// Bytes of live data held (keys plus values), what `nodetool status` calls Load.
    pub fn load_bytes(&self) -> u64 {
        self.data.load_bytes()
    }
}

pub(crate) struct Cluster {
    /// Every node that ever joined, Left ones included; indexes never change.
    pub(crate) nodes: Vec<Node>,
    /// The current node of each pod (a Left node's pod may start again as a new node).
    pub(crate) by_pod: HashMap<PodRef, usize>,
    pub(crate) keyspaces: BTreeMap<String, Keyspace>,
    pub(crate) schema_version: Uuid,
    /// PasswordAuthenticator (true) or AllowAllAuthenticator.
    pub(crate) authentication: bool,
    /// The default superuser still has to be written (its QUORUM write needs more live nodes).
    pub(crate) default_role_pending: bool,
}

impl Cluster {
    pub(crate) fn new(schema_version: Uuid, authentication: bool) -> Cluster {
        Cluster {
            nodes: Vec::new(),
            by_pod: HashMap::new(),
            keyspaces: BTreeMap::new(),
            schema_version,
            authentication,
            default_role_pending: false,
        }
    }

    /// Nodes that own token ranges.
    pub(crate) fn ring_members(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&idx| self.nodes[idx].state.owns_ranges())
    }

    /// Nodes gossip knows about (every state but Left).
    pub(crate) fn known_members(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&idx| self.nodes[idx].state != NodeState::Left)
    }

    pub(crate) fn ring(&self) -> Ring {
        Ring::of(&self.nodes, self.ring_members())
    }

    pub(crate) fn placement(&self, replication: &Replication) -> Placement {
        self.ring().placement(replication, &self.nodes)
    }

    /// `Datacenters.getValidDatacenters`: the datacenters of all known nodes.
    pub(crate) fn known_datacenters(&self) -> BTreeSet<String> {
        self.known_members().map(|idx| self.nodes[idx].datacenter.clone()).collect()
    }

    pub(crate) fn node_index(&self, pod: &PodRef) -> Result<usize> {
        self.by_pod.get(pod).copied().ok_or_else(|| CassandraError::UnknownNode(pod.to_string()))
    }

    pub(crate) fn index_by_ip(&self, ip: &str) -> Option<usize> {
        self.known_members().find(|&idx| self.nodes[idx].ip == ip)
    }

    pub(crate) fn keyspace(&self, name: &str) -> Option<&Keyspace> {
        self.keyspaces.get(name)
    }

    /// A schema change reaches the nodes that are up; the others keep their version until they
    /// come back (Cassandra pulls the schema from a live peer then).
    pub(crate) fn schema_changed(&mut self, version: Uuid) {
        self.schema_version = version;
        for node in &mut self.nodes {
            if node.up && node.state != NodeState::Left {
                node.schema_version = version;
            }
        }
    }

    /// The datacenters of `replicas`, in order (for consistency checks).
    pub(crate) fn dcs_of(&self, replicas: &[usize]) -> Vec<&str> {
        replicas.iter().map(|&idx| self.nodes[idx].datacenter.as_str()).collect()
    }

    pub(crate) fn liveness_of(&self, replicas: &[usize]) -> Vec<bool> {
        replicas.iter().map(|&idx| self.nodes[idx].up).collect()
    }
}
