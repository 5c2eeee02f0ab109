//! What a node can be asked to run (a job, a table operation, a repair) and the record of it.

use serde_json::{Value, json};

use super::pod::PodRef;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Waiting,
    Completed,
    Error,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Waiting => "WAITING",
            JobStatus::Completed => "COMPLETED",
            JobStatus::Error => "ERROR",
        }
    }
}

/// The Management API's `StatusChange`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub status: JobStatus,
    pub change_time: i64,
    pub message: String,
}

/// The table-level operations of `nodetool` that leave the rows as they are in this model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableOperation {
    Flush,
    Compact,
    GarbageCollect,
    Scrub,
    UpgradeSSTables,
}

impl TableOperation {
    /// Cassandra's `OperationType` name, which the Management API uses as the job type.
    pub fn as_str(self) -> &'static str {
        match self {
            TableOperation::Flush => "FLUSH",
            TableOperation::Compact => "COMPACTION",
            TableOperation::GarbageCollect => "GARBAGE_COLLECT",
            TableOperation::Scrub => "SCRUB",
            TableOperation::UpgradeSSTables => "UPGRADE_SSTABLES",
        }
    }
}

/// What a job does on its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeOperation {
    Rebuild {
        source_dc: Option<String>,
    },
    Decommission {
        force: bool,
    },
    /// `keyspace: None` is every distributed keyspace (`NON_LOCAL_STRATEGY`).
    Cleanup {
        keyspace: Option<String>,
        tables: Vec<String>,
    },
    /// Run with this node as the coordinator.
    Repair(RepairRequest),
    /// `keyspace: None` is every keyspace (the Management API's `ALL`).
    Table {
        operation: TableOperation,
        keyspace: Option<String>,
        tables: Vec<String>,
    },
}

impl NodeOperation {
    /// The job's `type` as the Management API reports it.
    pub fn job_type(&self) -> &'static str {
        match self {
            NodeOperation::Rebuild { .. } => "rebuild",
            NodeOperation::Decommission { .. } => "decommission",
            NodeOperation::Cleanup { .. } => "CLEANUP",
            NodeOperation::Repair(_) => "repair",
            NodeOperation::Table { operation, .. } => operation.as_str(),
        }
    }
}

/// One Management API job of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub job_type: String,
    pub status: JobStatus,
    pub submit_time: i64,
    pub end_time: Option<i64>,
    pub error: Option<String>,
    pub status_changes: Vec<StatusChange>,
    pub operation: NodeOperation,
    pub(crate) due_millis: i64,
    pub(crate) sequence: u64,
}

impl Job {
    /// The body of `GET /api/v0/ops/executor/job` (the OpenAPI `Job` schema); `end_time` is 0
    /// while the job runs, as the executor's unset field reads.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "id": self.id,
            "type": self.job_type,
            "status": self.status.as_str(),
            "submit_time": self.submit_time,
            "end_time": self.end_time.unwrap_or(0),
            "status_changes": self.status_changes.iter().map(|change| json!({
                "status": change.status.as_str(),
                "change_time": change.change_time,
                "message": change.message,
            })).collect::<Vec<_>>(),
        });
        if let (Some(error), Some(map)) = (&self.error, body.as_object_mut()) {
            map.insert("error".into(), Value::String(error.clone()));
        }
        body
    }
}

/// A record that an operation ran on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationRecord {
    /// `FLUSH`, `COMPACTION`, `CLEANUP`, `REBUILD`, ...
    pub operation: String,
    /// `None`: every keyspace.
    pub keyspace: Option<String>,
    pub tables: Vec<String>,
    pub at_millis: i64,
}

/// What a repair should cover.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairRequest {
    pub keyspace: String,
    /// Empty: every table.
    pub tables: Vec<String>,
    /// Empty: every datacenter (`-dc` options otherwise).
    pub datacenters: Vec<String>,
    /// The node repair runs on: only the ranges it replicates are repaired. `None` repairs the
    /// whole ring, as Reaper does by running every segment.
    pub coordinator: Option<PodRef>,
    /// Token ranges `(start, end]` to repair (a Reaper segment, the Management API's
    /// `associated_tokens`); empty: all.
    pub ranges: Vec<(i64, i64)>,
    /// `--force`: leave dead replicas out instead of failing.
    pub force: bool,
}

impl RepairRequest {
    pub fn keyspace(keyspace: &str) -> Self {
        RepairRequest {
            keyspace: keyspace.to_string(),
            ..Default::default()
        }
    }
}
