//! One Cassandra node: where it runs, its tokens and ring state, liveness, and what it holds.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::operations::{Job, OperationRecord};
use super::pod::PodRef;
use super::rows::NodeData;

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

/// The TLS of a node's Management API with `managementApiAuth.manual`: the server Secret's
/// `tls.crt`, `tls.key` and `ca.crt` (the CA client certificates must be signed by), PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct ManagementTls {
    pub certificate_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub ca_pem: Vec<u8>,
}

impl std::fmt::Debug for ManagementTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ManagementTls { .. }")
    }
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
    /// Mutual TLS on its Management API, as the pod's agent was started with.
    pub management_tls: Option<ManagementTls>,
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
