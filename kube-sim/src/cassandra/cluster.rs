//! One Cassandra cluster's state: its nodes, their ring and its schema.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use super::error::{CassandraError, Result};
use super::keyspace::{Keyspace, Replication};
pub use super::node::{ManagementFault, ManagementTls, Node, NodeState};
pub use super::pod::PodRef;
use super::ring::{Placement, Ring};

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
