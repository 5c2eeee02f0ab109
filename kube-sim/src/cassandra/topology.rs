//! Nodes joining, stopping, failing and leaving.
//!
//! Registering a node is cheap: its tokens go on the ring, and streaming only walks rows that
//! exist. Joins and decommissions complete within the call (Cassandra's JOINING and LEAVING
//! phases take no model time).

use std::collections::BTreeSet;

use uuid::Uuid;

use super::CassandraModel;
use super::cluster::{Cluster, ManagementFault, Node, NodeState, PodRef};
use super::error::{CassandraError, Result};
use super::rows::NodeData;
use super::schema::{
    Replication, SystemReplicationProperties, distributed_keyspaces, ring_members_in,
    system_keyspaces,
};
use super::streaming;

/// k8ssandra's default `num_tokens` for Cassandra 4.
pub const DEFAULT_NUM_TOKENS: usize = 16;

/// What a Cassandra container starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// `cluster_name` (CassandraDatacenter `spec.clusterName`).
    pub cluster: String,
    pub pod: PodRef,
    pub ip: String,
    pub datacenter: String,
    pub rack: String,
    /// Random tokens to take when `initial_tokens` is empty.
    pub num_tokens: usize,
    /// `initial_token`: these exact tokens.
    pub initial_tokens: Vec<i64>,
    /// `auto_bootstrap`: stream owned ranges when joining an existing cluster.
    pub auto_bootstrap: bool,
    /// e.g. "4.0.17"; decides the role manager's consistency levels (see [`super::auth`]).
    pub server_version: String,
    /// PasswordAuthenticator (the k8ssandra default) rather than AllowAllAuthenticator; the
    /// founding node's setting holds for the cluster.
    pub authentication: bool,
    /// The `-Dcassandra.system_distributed_replication*` properties; they matter only on the
    /// node that founds the cluster, which creates the system keyspaces.
    pub system_replication: SystemReplicationProperties,
}

impl NodeSpec {
    pub fn new(cluster: &str, pod: PodRef, ip: &str, datacenter: &str, rack: &str) -> Self {
        NodeSpec {
            cluster: cluster.to_string(),
            pod,
            ip: ip.to_string(),
            datacenter: datacenter.to_string(),
            rack: rack.to_string(),
            num_tokens: DEFAULT_NUM_TOKENS,
            initial_tokens: Vec::new(),
            auto_bootstrap: true,
            server_version: "4.0.17".to_string(),
            authentication: true,
            system_replication: SystemReplicationProperties::default(),
        }
    }
}

/// What `start_node` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    /// The first node of the cluster: it created the system keyspaces and, with authentication,
    /// the default `cassandra` role.
    Founded,
    /// A new node joined the ring, bootstrapping `streamed_rows` rows.
    Joined { streamed_rows: usize },
    /// A known node came back with its data and caught up on the schema.
    Restarted,
}

/// What a decommission streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecommissionOutcome {
    pub streamed_rows: usize,
}

impl CassandraModel {
    /// Starts Cassandra in a pod: a restart if the pod's node is known (and not Left), else a new
    /// node joins (founding the cluster if it has no ring yet).
    pub fn start_node(&mut self, spec: NodeSpec) -> Result<StartOutcome> {
        if let Some(known) = self.pods.get(&spec.pod).cloned() {
            let c = self.cluster(&known)?;
            let idx = c.node_index(&spec.pod)?;
            if c.nodes[idx].state != NodeState::Left {
                if known != spec.cluster {
                    return Err(CassandraError::IllegalState(format!(
                        "Saved cluster name {known} != configured name {}",
                        spec.cluster
                    )));
                }
                self.restart(&spec, idx)?;
                self.maybe_setup_default_role(&spec.cluster);
                return Ok(StartOutcome::Restarted);
            }
            // A decommissioned node's pod starts over as a new node.
            self.unregister_pod(&spec.pod);
        }
        self.join(spec)
    }

    /// Starts a stopped node again with the spec it had.
    pub fn restart_node(&mut self, pod: &PodRef) -> Result<()> {
        let (cluster, idx) = self.locate(pod)?;
        let c = self.cluster_mut(&cluster)?;
        if c.nodes[idx].state == NodeState::Left {
            return Err(CassandraError::IllegalState(format!(
                "{pod} was decommissioned"
            )));
        }
        let version = c.schema_version;
        let node = &mut c.nodes[idx];
        node.running = true;
        node.up = true;
        node.pod_present = true;
        node.schema_version = version;
        self.maybe_setup_default_role(&cluster);
        Ok(())
    }

    fn restart(&mut self, spec: &NodeSpec, idx: usize) -> Result<()> {
        let c = self.cluster_mut(&spec.cluster)?;
        let node = &c.nodes[idx];
        // SystemKeyspace.checkHealth's refusals.
        if node.datacenter != spec.datacenter {
            return Err(CassandraError::IllegalState(format!(
                "Cannot start node if snitch's data center ({}) differs from previous data center ({}). \
                 Please fix the snitch configuration, decommission and rebootstrap this node or use the flag \
                 -Dcassandra.ignore_dc=true.",
                spec.datacenter, node.datacenter
            )));
        }
        if node.rack != spec.rack {
            return Err(CassandraError::IllegalState(format!(
                "Cannot start node if snitch's rack ({}) differs from previous rack ({}). Please fix the \
                 snitch configuration, decommission and rebootstrap this node or use the flag \
                 -Dcassandra.ignore_rack=true.",
                spec.rack, node.rack
            )));
        }
        if c.index_by_ip(&spec.ip).is_some_and(|other| other != idx) {
            return Err(address_in_use(&spec.ip));
        }
        let version = c.schema_version;
        let node = &mut c.nodes[idx];
        node.ip = spec.ip.clone();
        node.running = true;
        node.up = true;
        node.pod_present = true;
        node.server_version = spec.server_version.clone();
        node.schema_version = version;
        Ok(())
    }

    fn join(&mut self, spec: NodeSpec) -> Result<StartOutcome> {
        let host_id = self.new_uuid();
        let founding_version = self.new_uuid();
        let taken: BTreeSet<i64> = self
            .clusters
            .get(&spec.cluster)
            .map(|c| c.known_members().flat_map(|idx| c.nodes[idx].tokens.clone()).collect())
            .unwrap_or_default();
        let tokens = if spec.initial_tokens.is_empty() {
            let mut tokens = BTreeSet::new();
            while tokens.len() < spec.num_tokens.max(1) {
                let token = self.random_token();
                if !taken.contains(&token) {
                    tokens.insert(token);
                }
            }
            tokens.into_iter().collect()
        } else {
            if let Some(token) = spec.initial_tokens.iter().find(|t| taken.contains(t)) {
                return Err(CassandraError::IllegalState(format!(
                    "Bootstrapping to existing token {token} is not allowed (decommission/removenode the old node first)."
                )));
            }
            spec.initial_tokens.clone()
        };
        let c = self
            .clusters
            .entry(spec.cluster.clone())
            .or_insert_with(|| Cluster::new(founding_version, spec.authentication));
        if c.index_by_ip(&spec.ip).is_some() {
            return Err(address_in_use(&spec.ip));
        }
        let founding = c.ring().is_empty();
        if !founding && !c.known_members().any(|idx| c.nodes[idx].up) {
            return Err(CassandraError::IllegalState(
                "Unable to gossip with any peers".into(),
            ));
        }
        let idx = c.nodes.len();
        c.nodes.push(Node {
            pod: spec.pod.clone(),
            host_id,
            ip: spec.ip.clone(),
            datacenter: spec.datacenter.clone(),
            rack: spec.rack.clone(),
            tokens,
            state: NodeState::Joining,
            up: true,
            running: true,
            pod_present: true,
            schema_version: c.schema_version,
            server_version: spec.server_version.clone(),
            management_fault: ManagementFault::default(),
            management_tls: None,
            data: NodeData::default(),
            operations: Vec::new(),
            jobs: Default::default(),
        });
        let streamed_rows = if !founding && spec.auto_bootstrap {
            match streaming::bootstrap(c, idx) {
                Ok(rows) => rows,
                Err(err) => {
                    c.nodes.pop();
                    return Err(err);
                }
            }
        } else {
            0
        };
        c.nodes[idx].state = NodeState::Normal;
        c.by_pod.insert(spec.pod.clone(), idx);
        self.pods.insert(spec.pod.clone(), spec.cluster.clone());
        if founding && self.found(&spec)? {
            return Ok(StartOutcome::Founded);
        }
        self.maybe_setup_default_role(&spec.cluster);
        Ok(StartOutcome::Joined { streamed_rows })
    }

    /// The founding node creates the system keyspaces (and the default superuser); false if the
    /// cluster already had them (its ring had emptied).
    fn found(&mut self, spec: &NodeSpec) -> Result<bool> {
        let founded = self.create_system_keyspaces(spec)?;
        self.maybe_setup_default_role(&spec.cluster);
        Ok(founded)
    }

    fn create_system_keyspaces(&mut self, spec: &NodeSpec) -> Result<bool> {
        let version = self.new_uuid();
        let c = self.cluster_mut(&spec.cluster)?;
        if !c.keyspaces.is_empty() {
            return Ok(false);
        }
        for keyspace in system_keyspaces(&spec.system_replication) {
            c.keyspaces.insert(keyspace.name.clone(), keyspace);
        }
        c.schema_changed(version);
        c.default_role_pending = c.authentication;
        Ok(true)
    }

    /// Stops the Cassandra process (drain and stop): the node is down and answers nothing, and
    /// keeps its data and ring position.
    pub fn stop_node(&mut self, pod: &PodRef) -> Result<()> {
        let node = self.node_mut(pod)?;
        node.running = false;
        node.up = false;
        Ok(())
    }

    /// Marks the node down for the others (a partition); its process keeps running.
    pub fn set_down(&mut self, pod: &PodRef) -> Result<()> {
        self.node_mut(pod)?.up = false;
        Ok(())
    }

    /// Marks the node up again; it catches up on schema changes made while it was down (rows
    /// written meanwhile stay missing: no hints).
    pub fn set_up(&mut self, pod: &PodRef) -> Result<()> {
        let (cluster, idx) = self.locate(pod)?;
        let c = self.cluster_mut(&cluster)?;
        let node = &c.nodes[idx];
        if !node.running {
            return Err(CassandraError::NodeNotRunning(pod.to_string()));
        }
        if node.state == NodeState::Left {
            return Err(CassandraError::IllegalState(format!(
                "{pod} was decommissioned"
            )));
        }
        let version = c.schema_version;
        let node = &mut c.nodes[idx];
        node.up = true;
        node.schema_version = version;
        self.maybe_setup_default_role(&cluster);
        Ok(())
    }

    /// `StorageService.decommission(force)`: refuses when, without `force`, some keyspace's
    /// replication factor in the node's DC (SimpleStrategy: in the cluster) is at least the
    /// number of ring members there, counting this node, i.e. it could not be kept after. On
    /// success the node streams its ranges to their new owners and leaves the ring.
    pub fn decommission_node(&mut self, pod: &PodRef, force: bool) -> Result<DecommissionOutcome> {
        let (cluster, idx) = self.running_node(pod)?;
        let c = self.cluster_mut(&cluster)?;
        let node = &c.nodes[idx];
        match node.state {
            NodeState::Normal => {}
            NodeState::Leaving => {
                return Err(CassandraError::IllegalState(
                    "Node is still decommissioning. Check nodetool netstats.".into(),
                ));
            }
            NodeState::Joining | NodeState::Left => {
                return Err(CassandraError::UnsupportedOperation(
                    "local node is not a member of the token ring yet".into(),
                ));
            }
        }
        if c.ring_members().count() < 2 {
            return Err(CassandraError::UnsupportedOperation(
                "no other normal nodes in the ring; decommission would be pointless".into(),
            ));
        }
        if !force {
            check_replication_after_leaving(c, idx)?;
        }
        c.nodes[idx].state = NodeState::Leaving;
        let streamed_rows = streaming::unbootstrap(c, idx);
        let node = &mut c.nodes[idx];
        node.state = NodeState::Left;
        node.up = false;
        node.data = NodeData::default();
        self.record(pod, "DECOMMISSION", None, &[])?;
        Ok(DecommissionOutcome { streamed_rows })
    }

    /// The pod was deleted without a decommission: Cassandra keeps the node in the ring, down
    /// (`nodetool status` shows DN) until it returns, is removed (`removenode`) or assassinated.
    /// A Left node's pod simply goes away.
    pub fn remove_node(&mut self, pod: &PodRef) -> Result<()> {
        let (cluster, idx) = self.locate(pod)?;
        if self.cluster(&cluster)?.nodes[idx].state == NodeState::Left {
            self.unregister_pod(pod);
            return Ok(());
        }
        let node = self.node_mut(pod)?;
        node.running = false;
        node.up = false;
        node.pod_present = false;
        Ok(())
    }

    /// `nodetool removenode <host id>`: takes a dead node off the ring; the remaining replicas
    /// stream its ranges to the new owners.
    pub fn removenode(&mut self, cluster: &str, host_id: Uuid) -> Result<usize> {
        let c = self.cluster_mut(cluster)?;
        let idx =
            c.known_members().find(|&idx| c.nodes[idx].host_id == host_id).ok_or_else(|| {
                CassandraError::UnsupportedOperation(format!("Host ID not found: {host_id}"))
            })?;
        if c.nodes[idx].up {
            return Err(CassandraError::UnsupportedOperation(format!(
                "Node /{} is alive and owns this ID. Use decommission command to remove it from the ring",
                c.nodes[idx].ip
            )));
        }
        let streamed = streaming::restore_replica_count(c, idx);
        let pod = c.nodes[idx].pod.clone();
        c.nodes[idx].state = NodeState::Left;
        c.nodes[idx].data = NodeData::default();
        if !c.nodes[idx].pod_present {
            self.unregister_pod(&pod);
        }
        Ok(streamed)
    }

    /// Cassandra started in `spec.pod` with `-Dcassandra.replace_address_first_boot=<replaced_ip>`
    /// (`StorageService.prepareForReplacement`): the dead node at that address must be known to
    /// gossip and down; the new node gets a new host id and the dead node's tokens, streams the
    /// ranges it takes over from the other live replicas (nearest first), and the dead node
    /// leaves the ring. The pod's earlier node, if it is another one, is forgotten.
    pub fn replace_node(&mut self, spec: NodeSpec, replaced_ip: &str) -> Result<StartOutcome> {
        let host_id = self.new_uuid();
        let c = self.cluster_mut(&spec.cluster)?;
        let replaced = c.index_by_ip(replaced_ip).ok_or_else(|| {
            CassandraError::IllegalState(format!(
                "Cannot replace_address /{replaced_ip} because it doesn't exist in gossip"
            ))
        })?;
        if c.nodes[replaced].up {
            return Err(CassandraError::UnsupportedOperation(format!(
                "Cannot replace a live node /{replaced_ip}. Endpoint is still alive."
            )));
        }
        if replaced_ip != spec.ip && c.index_by_ip(&spec.ip).is_some() {
            return Err(address_in_use(&spec.ip));
        }
        let old = &c.nodes[replaced];
        let node = Node {
            pod: spec.pod.clone(),
            host_id,
            ip: spec.ip.clone(),
            datacenter: spec.datacenter.clone(),
            rack: spec.rack.clone(),
            tokens: old.tokens.clone(),
            state: NodeState::Joining,
            up: true,
            running: true,
            pod_present: true,
            schema_version: c.schema_version,
            server_version: spec.server_version.clone(),
            management_fault: ManagementFault::default(),
            management_tls: None,
            data: NodeData::default(),
            operations: Vec::new(),
            jobs: Default::default(),
        };
        let replaced_pod = old.pod.clone();
        let replacing = c.nodes.len();
        c.nodes.push(node);
        let streamed_rows = streaming::replace(c, replaced, replacing);
        let old = &mut c.nodes[replaced];
        old.state = NodeState::Left;
        old.up = false;
        old.running = false;
        old.data = NodeData::default();
        c.nodes[replacing].state = NodeState::Normal;
        if replaced_pod != spec.pod && !c.nodes[replaced].pod_present {
            self.unregister_pod(&replaced_pod);
        }
        self.unregister_pod(&spec.pod);
        let c = self.cluster_mut(&spec.cluster)?;
        c.by_pod.insert(spec.pod.clone(), replacing);
        self.pods.insert(spec.pod.clone(), spec.cluster.clone());
        self.maybe_setup_default_role(&spec.cluster);
        Ok(StartOutcome::Joined { streamed_rows })
    }

    /// `nodetool assassinate <ip>`: the node leaves gossip and the ring with no streaming.
    pub fn assassinate(&mut self, cluster: &str, ip: &str) -> Result<()> {
        let c = self.cluster_mut(cluster)?;
        let idx = c.index_by_ip(ip).ok_or_else(|| CassandraError::UnknownNode(ip.to_string()))?;
        let pod = c.nodes[idx].pod.clone();
        let node = &mut c.nodes[idx];
        node.state = NodeState::Left;
        node.up = false;
        node.data = NodeData::default();
        if !node.pod_present {
            self.unregister_pod(&pod);
        }
        Ok(())
    }

    /// Forgets a cluster none of whose nodes has a pod any more (every datacenter was deleted
    /// with its volumes): a cluster of that name made later starts afresh, its first node
    /// finding no peer. True if it was forgotten.
    pub fn forget_cluster_without_pods(&mut self, cluster: &str) -> bool {
        let Some(c) = self.clusters.get(cluster) else {
            return false;
        };
        if c.nodes.iter().any(|node| node.pod_present && node.state != NodeState::Left) {
            return false;
        }
        self.clusters.remove(cluster);
        self.pods.retain(|_, name| name != cluster);
        true
    }

    fn unregister_pod(&mut self, pod: &PodRef) {
        if let Some(cluster) = self.pods.remove(pod)
            && let Some(c) = self.clusters.get_mut(&cluster)
        {
            c.by_pod.remove(pod);
        }
    }
}

fn address_in_use(ip: &str) -> CassandraError {
    CassandraError::IllegalState(format!(
        "A node with address /{ip} already exists, cancelling join. Use cassandra.replace_address if you want to \
         replace this node."
    ))
}

/// The non-forced decommission check of Cassandra 4.x `StorageService.decommission`: for each
/// distributed keyspace, N counts the ring members (up or down, this node included) of the DC
/// under NetworkTopologyStrategy, or of the whole ring otherwise; N <= RF refuses.
fn check_replication_after_leaving(c: &Cluster, idx: usize) -> Result<()> {
    let dc = c.nodes[idx].datacenter.as_str();
    for (keyspace, replication) in distributed_keyspaces(c) {
        let (rf, nodes) = match &replication {
            Replication::NetworkTopology(_) => {
                (replication.factor_in(dc) as usize, ring_members_in(c, dc))
            }
            _ => (
                replication.total_replication_factor(),
                c.ring_members().count(),
            ),
        };
        if nodes <= rf {
            return Err(CassandraError::UnsupportedOperation(format!(
                "Not enough live nodes to maintain replication factor in keyspace {keyspace} (RF = {rf}, N = {nodes}). \
                 Perform a forceful decommission to ignore."
            )));
        }
    }
    Ok(())
}
