//! Management API jobs (`/api/v0/ops/executor/job`) and the table operations the CassandraTask
//! runner asks for.
//!
//! A submitted job is WAITING until the model's clock reaches its due time (submit time plus
//! the model's job duration, 0 by default), then `poll_jobs` runs its operation: COMPLETED, or
//! ERROR with the operation's message, as the Management API's `JobExecutor` reports them.

use super::CassandraModel;
use super::cluster::PodRef;
use super::data::{unknown_keyspace, unknown_table};
use super::error::{CassandraError, Result};
pub use super::operations::{
    Job, JobStatus, NodeOperation, OperationRecord, RepairRequest, StatusChange, TableOperation,
};

impl CassandraModel {
    /// Validates a keyspace and its tables for a table operation, as
    /// `StorageService.getValidColumnFamilies` does; `None` means every keyspace.
    fn validate_tables(
        &self,
        cluster: &str,
        keyspace: Option<&str>,
        tables: &[String],
    ) -> Result<()> {
        let Some(keyspace) = keyspace else {
            return Ok(());
        };
        let ks =
            self.cluster(cluster)?.keyspace(keyspace).ok_or_else(|| unknown_keyspace(keyspace))?;
        match tables.iter().find(|table| !ks.tables.contains_key(*table)) {
            Some(table) => Err(unknown_table(keyspace, table)),
            None => Ok(()),
        }
    }

    /// Notes on the node that an operation ran (see [`Node::operations`](super::Node::operations)).
    pub(crate) fn record(
        &mut self,
        pod: &PodRef,
        operation: &str,
        keyspace: Option<&str>,
        tables: &[String],
    ) -> Result<()> {
        let at_millis = self.now_millis();
        self.node_mut(pod)?.operations.push(OperationRecord {
            operation: operation.to_string(),
            keyspace: keyspace.map(str::to_string),
            tables: tables.to_vec(),
            at_millis,
        });
        Ok(())
    }

    /// Flush, compact, garbagecollect, scrub or upgradesstables on a node: validated and
    /// recorded; the model's rows have no sstables to change.
    pub fn table_operation(
        &mut self,
        pod: &PodRef,
        operation: TableOperation,
        keyspace: Option<&str>,
        tables: &[String],
    ) -> Result<()> {
        let (cluster, _) = self.running_node(pod)?;
        self.validate_tables(&cluster, keyspace, tables)?;
        self.record(pod, operation.as_str(), keyspace, tables)
    }

    pub fn flush(&mut self, pod: &PodRef, keyspace: Option<&str>, tables: &[String]) -> Result<()> {
        self.table_operation(pod, TableOperation::Flush, keyspace, tables)
    }

    pub fn compact(
        &mut self,
        pod: &PodRef,
        keyspace: Option<&str>,
        tables: &[String],
    ) -> Result<()> {
        self.table_operation(pod, TableOperation::Compact, keyspace, tables)
    }

    pub fn garbage_collect(
        &mut self,
        pod: &PodRef,
        keyspace: Option<&str>,
        tables: &[String],
    ) -> Result<()> {
        self.table_operation(pod, TableOperation::GarbageCollect, keyspace, tables)
    }

    pub fn scrub(&mut self, pod: &PodRef, keyspace: Option<&str>, tables: &[String]) -> Result<()> {
        self.table_operation(pod, TableOperation::Scrub, keyspace, tables)
    }

    pub fn upgrade_sstables(
        &mut self,
        pod: &PodRef,
        keyspace: Option<&str>,
        tables: &[String],
    ) -> Result<()> {
        self.table_operation(pod, TableOperation::UpgradeSSTables, keyspace, tables)
    }

    /// Runs an operation on a node now (what a job does when it runs).
    pub fn run_operation(&mut self, pod: &PodRef, operation: &NodeOperation) -> Result<()> {
        self.running_node(pod)?;
        match operation {
            NodeOperation::Rebuild { source_dc } => {
                self.rebuild(pod, source_dc.as_deref()).map(|_| ())
            }
            NodeOperation::Decommission { force } => {
                self.decommission_node(pod, *force).map(|_| ())
            }
            NodeOperation::Cleanup { keyspace, tables } => {
                let (cluster, _) = self.locate(pod)?;
                self.validate_tables(&cluster, keyspace.as_deref(), tables)?;
                self.cleanup(pod, keyspace.as_deref()).map(|_| ())
            }
            NodeOperation::Repair(request) => {
                let (cluster, _) = self.locate(pod)?;
                let request = RepairRequest {
                    coordinator: Some(pod.clone()),
                    ..request.clone()
                };
                self.repair(&cluster, &request).map(|_| ())
            }
            NodeOperation::Table {
                operation,
                keyspace,
                tables,
            } => self.table_operation(pod, *operation, keyspace.as_deref(), tables),
        }
    }

    /// Submits a job to a node's Management API and returns its id. With a job duration of 0
    /// it runs at once; otherwise it waits for `poll_jobs` at or after its due time.
    pub fn submit_job(&mut self, pod: &PodRef, operation: NodeOperation) -> Result<String> {
        self.running_node(pod)?;
        let id = self.new_uuid().to_string();
        let now = self.now_millis();
        let due_millis = now + self.job_duration_millis;
        let sequence = self.next_job_sequence();
        let job = Job {
            id: id.clone(),
            job_type: operation.job_type().to_string(),
            status: JobStatus::Waiting,
            submit_time: now,
            end_time: None,
            error: None,
            status_changes: vec![StatusChange {
                status: JobStatus::Waiting,
                change_time: now,
                message: "submitted".into(),
            }],
            operation,
            due_millis,
            sequence,
        };
        self.node_mut(pod)?.jobs.insert(id.clone(), job);
        if self.job_duration_millis == 0 {
            self.poll_jobs();
        }
        Ok(id)
    }

    /// Submits a job and runs it to its end now, whatever the job duration (the Management
    /// API's blocking v0 operations wait for their job); returns the finished job.
    pub fn run_job_now(&mut self, pod: &PodRef, operation: NodeOperation) -> Result<Job> {
        let id = self.submit_job(pod, operation)?;
        self.run_jobs(|job| job.id == id);
        self.job(pod, &id).cloned()
    }

    /// Runs the WAITING jobs whose due time has come, oldest first; returns how many ran.
    pub fn poll_jobs(&mut self) -> usize {
        let now = self.now_millis();
        self.run_jobs(|job| job.due_millis <= now)
    }

    /// Runs every WAITING job now, due or not; returns how many ran.
    pub fn complete_jobs(&mut self) -> usize {
        self.run_jobs(|_| true)
    }

    /// A node's job by id.
    pub fn job(&self, pod: &PodRef, id: &str) -> Result<&Job> {
        self.node(pod)?.jobs.get(id).ok_or_else(|| CassandraError::UnknownJob(id.to_string()))
    }

    fn run_jobs(&mut self, due: impl Fn(&Job) -> bool) -> usize {
        let mut ready: Vec<(u64, PodRef, String, NodeOperation)> = self
            .clusters
            .values()
            .flat_map(|c| c.nodes.iter())
            .flat_map(|node| node.jobs.values().map(move |job| (node, job)))
            .filter(|(_, job)| job.status == JobStatus::Waiting && due(job))
            .map(|(node, job)| {
                (
                    job.sequence,
                    node.pod.clone(),
                    job.id.clone(),
                    job.operation.clone(),
                )
            })
            .collect();
        ready.sort_by_key(|(sequence, ..)| *sequence);
        let ran = ready.len();
        for (_, pod, id, operation) in ready {
            let outcome = self.run_operation(&pod, &operation);
            let now = self.now_millis();
            // The node may have left the ring; its job record stays with it.
            if let Ok(node) = self.node_mut(&pod)
                && let Some(job) = node.jobs.get_mut(&id)
            {
                let (status, message) = match outcome {
                    Ok(()) => (JobStatus::Completed, "completed".to_string()),
                    Err(err) => (JobStatus::Error, err.to_string()),
                };
                if status == JobStatus::Error {
                    job.error = Some(message.clone());
                }
                job.status = status;
                job.end_time = Some(now);
                job.status_changes.push(StatusChange {
                    status,
                    change_time: now,
                    message,
                });
            }
        }
        ran
    }
}
