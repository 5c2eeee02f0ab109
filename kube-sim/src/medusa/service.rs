//! The `medusa` container's gRPC service of one pod, over the shared Cassandra model.
//!
//! It answers as `medusa/service/grpc/server.py` (MedusaService) does, including the parts that
//! depend on what this Medusa process has seen: Medusa's `BackupMan` registry of the backups it
//! started or was asked about lives as long as the process, so a new [`MedusaService`] (a
//! restarted container) starts with none.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use medusa_grpc::medusa_server::Medusa;
use medusa_grpc::{self as wire, StatusType, backup_request};
use parking_lot::Mutex;
use tonic::{Request, Response, Status};

use super::config::MedusaConfig;
use super::restore::{RESTORE_MAPPING_DIR, RestoreMapping};
use crate::cassandra::{
    BackupMode, BackupStatus, BackupSummary, CassandraError, CassandraModel, NodeBackupStatus,
    PodRef, SharedModel, StorageLocation,
};

/// How often a synchronous `Backup` looks whether the model's clock has passed the backup's end.
const SYNC_BACKUP_POLL: Duration = Duration::from_millis(20);

/// `BackupStatus` times, as Medusa formats them (`TIMESTAMP_FORMAT`; the container runs in UTC).
const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Medusa's marker of a running backup (`MedusaTempFile`), named in its refusal.
const BACKUP_IN_PROGRESS_MARKER: &str = "/tmp/medusa_backup_in_progress";

/// Medusa's gRPC service for one pod.
#[derive(Clone)]
pub struct MedusaService {
    model: SharedModel,
    pod: PodRef,
    config: MedusaConfig,
    manager: Arc<Mutex<BackupManager>>,
}

/// Medusa's `BackupMan` status of a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ManagerStatus {
    Unknown,
    InProgress,
    Success,
    Failed,
}

/// How a registered backup runs in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Run {
    /// No future: a synchronous `Backup`, or a name `BackupStatus` registered.
    NoFuture,
    /// `AsyncBackup`'s future; `Some(error)` when the backup failed before it could run.
    Future(Option<String>),
}

#[derive(Debug, Clone)]
struct Registered {
    run: Run,
    status: ManagerStatus,
}

/// `BackupMan`: `None` until a first backup is registered, as Medusa's has no instance then.
#[derive(Debug, Default)]
struct BackupManager {
    backups: Option<BTreeMap<String, Registered>>,
}

impl BackupManager {
    fn register(&mut self, name: &str, overwrite_existing: bool) {
        let backups = self.backups.get_or_insert_with(BTreeMap::new);
        if overwrite_existing || !backups.contains_key(name) {
            backups.insert(
                name.to_string(),
                Registered {
                    run: Run::NoFuture,
                    status: ManagerStatus::Unknown,
                },
            );
        }
    }

    fn entry(&mut self, name: &str) -> Option<&mut Registered> {
        self.backups.as_mut().and_then(|b| b.get_mut(name))
    }
}

impl MedusaService {
    /// The service of `pod`'s Medusa, storing in `storage`, without purge limits (Medusa's
    /// defaults).
    pub fn new(model: SharedModel, pod: PodRef, storage: StorageLocation) -> Self {
        Self::from_config(model, pod, MedusaConfig::new(storage))
    }

    /// The service of `pod`'s Medusa as its `medusa.ini` configures it.
    pub fn from_config(model: SharedModel, pod: PodRef, config: MedusaConfig) -> Self {
        MedusaService {
            model,
            pod,
            config,
            manager: Arc::new(Mutex::new(BackupManager::default())),
        }
    }

    /// `max_backup_count` and `max_backup_age` (days) of medusa.ini's `[storage]`, which
    /// `PurgeBackups` applies (0: no limit).
    pub fn with_purge_limits(mut self, max_backup_count: usize, max_backup_age_days: i64) -> Self {
        self.config.max_backup_count = max_backup_count;
        self.config.max_backup_age_days = max_backup_age_days;
        self
    }

    pub fn pod(&self) -> &PodRef {
        &self.pod
    }

    pub fn config(&self) -> &MedusaConfig {
        &self.config
    }

    fn storage(&self) -> &StorageLocation {
        &self.config.storage
    }

    /// This node's backup of that name (Medusa's node backup is per fqdn, here the pod name).
    fn node_backup(&self, model: &CassandraModel, name: &str) -> Option<NodeBackupStatus> {
        model
            .backup_status(self.storage(), name)
            .ok()?
            .node_statuses
            .into_iter()
            .find(|status| status.host == self.pod.name)
    }

    /// What `BackupMan` says of a registered backup now. The model stands for the backup's
    /// thread: an async backup is done once the model's clock passed its end.
    fn manager_status(
        &self,
        model: &CassandraModel,
        name: &str,
        entry: &Registered,
    ) -> ManagerStatus {
        match &entry.run {
            Run::Future(Some(_)) => ManagerStatus::Failed,
            Run::Future(None) => match self.node_backup(model, name).map(|b| b.status) {
                Some(BackupStatus::InProgress) => ManagerStatus::InProgress,
                Some(BackupStatus::Success) => ManagerStatus::Success,
                _ => ManagerStatus::Failed,
            },
            Run::NoFuture => entry.status,
        }
    }

    /// `handle_backup` up to the point where the node's backup runs: one backup at a time per
    /// Medusa, a name once per node, then the snapshot (the model finishes it after its backup
    /// duration).
    fn start_backup(
        &self,
        manager: &BackupManager,
        model: &mut CassandraModel,
        name: &str,
        mode: BackupMode,
    ) -> Result<(), BackupRefused> {
        let running_here = manager.backups.iter().flatten().any(|(other, entry)| {
            let started_here =
                entry.run == Run::Future(None) || entry.status == ManagerStatus::InProgress;
            started_here
                && self
                    .node_backup(model, other)
                    .is_some_and(|b| b.status == BackupStatus::InProgress)
        });
        if running_here {
            return Err(BackupRefused::AnotherRunning);
        }
        if self.node_backup(model, name).is_some() {
            return Err(BackupRefused::NameTaken(name.to_string()));
        }
        let cluster = model.cluster_of(&self.pod)?.to_string();
        model.backup(
            self.storage(),
            &cluster,
            name,
            std::slice::from_ref(&self.pod),
            mode,
        )?;
        Ok(())
    }
}

/// Why `handle_backup` did not start a backup, in Medusa's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum BackupRefused {
    // The stray "f" is Medusa's.
    #[error(
        "Error: Backup already in progress. Please delete f{BACKUP_IN_PROGRESS_MARKER} if that is \
         not the case to continue."
    )]
    AnotherRunning,
    #[error("Error: Backup {0} already exists")]
    NameTaken(String),
    /// The model could not take it (no node for the pod, ...).
    #[error(transparent)]
    Model(#[from] CassandraError),
}

fn backup_mode(mode: i32) -> BackupMode {
    match backup_request::Mode::try_from(mode) {
        Ok(backup_request::Mode::Full) => BackupMode::Full,
        // Medusa takes anything but FULL as differential.
        _ => BackupMode::Differential,
    }
}

fn wire_status(status: ManagerStatus) -> StatusType {
    match status {
        ManagerStatus::InProgress => StatusType::InProgress,
        ManagerStatus::Success => StatusType::Success,
        ManagerStatus::Failed => StatusType::Failed,
        // `record_status_in_response` leaves the field unset: proto3's 0.
        ManagerStatus::Unknown => StatusType::InProgress,
    }
}

fn seconds(millis: i64) -> i64 {
    millis.div_euclid(1000)
}

fn timestamp_text(millis: i64) -> String {
    jiff::Timestamp::from_second(seconds(millis))
        .map(|t| t.strftime(TIMESTAMP_FORMAT).to_string())
        .unwrap_or_default()
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn size(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `get_backup_summary`: Medusa reports a cluster backup SUCCESS once every node of its tokenmap
/// finished and IN_PROGRESS otherwise (never FAILED), and counts sizes of finished nodes only.
fn wire_summary(summary: &BackupSummary) -> wire::BackupSummary {
    let finished: Vec<&NodeBackupStatus> =
        summary.node_statuses.iter().filter(|s| s.status == BackupStatus::Success).collect();
    let finished_in_tokenmap =
        finished.iter().filter(|s| summary.nodes.iter().any(|n| n.host == s.host)).count();
    wire::BackupSummary {
        backup_name: summary.name.clone(),
        start_time: seconds(summary.start_millis),
        finish_time: summary.finish_millis.map(seconds).unwrap_or(0),
        total_nodes: count(summary.nodes.len()),
        finished_nodes: count(finished_in_tokenmap),
        nodes: summary
            .nodes
            .iter()
            .map(|node| wire::BackupNode {
                host: node.host.clone(),
                tokens: node.tokens.clone(),
                datacenter: node.datacenter.clone(),
                rack: node.rack.clone(),
            })
            .collect(),
        status: if summary.finish_millis.is_some() {
            StatusType::Success
        } else {
            StatusType::InProgress
        } as i32,
        backup_type: summary.backup_type.clone(),
        total_size: size(finished.iter().map(|s| s.size).sum()),
        total_objects: size(finished.iter().map(|s| s.objects).sum()),
    }
}

/// `set_overall_status`: each later rule overrides the earlier ones.
fn overall_status(backups: &[wire::BackupSummary]) -> StatusType {
    let mut overall = StatusType::Unknown;
    if backups.is_empty() {
        return overall;
    }
    let has = |status: StatusType| backups.iter().any(|b| b.status == status as i32);
    if backups.iter().all(|b| b.status == StatusType::Success as i32) {
        overall = StatusType::Success;
    }
    if has(StatusType::InProgress) {
        overall = StatusType::InProgress;
    }
    if has(StatusType::Failed) {
        overall = StatusType::Failed;
    }
    if has(StatusType::Unknown) {
        overall = StatusType::Unknown;
    }
    overall
}

/// Python's `str(KeyError(...))`, quotes included, as Medusa's messages carry it.
fn missing_backup(name: &str) -> String {
    format!("'The backup {name} does not exist'")
}

/// grpc's asyncio server words an exception the servicer did not catch this way (code UNKNOWN).
fn uncaught(exception: &str, message: &str) -> Status {
    Status::unknown(format!("Unexpected <class '{exception}'>: {message}"))
}

const NO_BACKUP_NAME: &str = "No backup name supplied";

#[tonic::async_trait]
impl Medusa for MedusaService {
    async fn async_backup(
        &self,
        request: Request<wire::BackupRequest>,
    ) -> Result<Response<wire::BackupResponse>, Status> {
        let request = request.into_inner();
        let name = request.name;
        if name.is_empty() {
            return Err(Status::internal(format!(
                "Failed to create async backup: {NO_BACKUP_NAME}"
            )));
        }
        let mut manager = self.manager.lock();
        manager.register(&name, true);
        let started = {
            let mut model = self.model.lock();
            self.start_backup(&manager, &mut model, &name, backup_mode(request.mode))
        };
        if let Some(entry) = manager.entry(&name) {
            entry.run = Run::Future(started.err().map(|refusal| refusal.to_string()));
            entry.status = ManagerStatus::Unknown;
        }
        Ok(Response::new(wire::BackupResponse {
            backup_name: name,
            status: StatusType::InProgress as i32,
        }))
    }

    /// Returns once the node's backup finished (the model's clock passed its end).
    async fn backup(
        &self,
        request: Request<wire::BackupRequest>,
    ) -> Result<Response<wire::BackupResponse>, Status> {
        let request = request.into_inner();
        let name = request.name;
        let failed =
            |message: &str| Status::internal(format!("Failed to create sync backups: {message}"));
        if name.is_empty() {
            return Err(failed(NO_BACKUP_NAME));
        }
        let set_status = |status: ManagerStatus| {
            if let Some(entry) = self.manager.lock().entry(&name) {
                entry.status = status;
            }
        };
        {
            let mut manager = self.manager.lock();
            manager.register(&name, true);
            let mut model = self.model.lock();
            if let Err(e) =
                self.start_backup(&manager, &mut model, &name, backup_mode(request.mode))
            {
                drop(model);
                drop(manager);
                set_status(ManagerStatus::Failed);
                return Err(failed(&e.to_string()));
            }
        }
        set_status(ManagerStatus::InProgress);
        loop {
            let node = self.node_backup(&self.model.lock(), &name);
            match node {
                Some(b) if b.status == BackupStatus::InProgress => {
                    tokio::time::sleep(SYNC_BACKUP_POLL).await;
                }
                Some(b) if b.status == BackupStatus::Success => break,
                other => {
                    set_status(ManagerStatus::Failed);
                    let reason = other
                        .and_then(|b| b.error)
                        .unwrap_or_else(|| format!("backup {name} disappeared while it ran"));
                    return Err(failed(&reason));
                }
            }
        }
        set_status(ManagerStatus::Success);
        Ok(Response::new(wire::BackupResponse {
            backup_name: name,
            status: StatusType::Success as i32,
        }))
    }

    /// This node's backup only; NOT_FOUND when it has none of that name.
    async fn backup_status(
        &self,
        request: Request<wire::BackupStatusRequest>,
    ) -> Result<Response<wire::BackupStatusResponse>, Status> {
        let name = request.into_inner().backup_name;
        let mut manager = self.manager.lock();
        let model = self.model.lock();
        let Some(node) = self.node_backup(&model, &name) else {
            return Err(Status::not_found(format!("backup <{name}> does not exist")));
        };
        manager.register(&name, false);
        let Some(entry) = manager.entry(&name) else {
            return Err(uncaught(
                "RuntimeError",
                &format!("Backup not located for id: {name}"),
            ));
        };
        // `_get_backup_status`: without a future, finished means success and anything else failure.
        let status = match entry.run {
            Run::NoFuture if node.status == BackupStatus::Success => ManagerStatus::Success,
            Run::NoFuture => ManagerStatus::Failed,
            Run::Future(_) => self.manager_status(&model, &name, entry),
        };
        entry.status = status;
        Ok(Response::new(wire::BackupStatusResponse {
            start_time: timestamp_text(node.start_millis),
            finish_time: node.finish_millis.map(timestamp_text).unwrap_or_default(),
            status: wire_status(status) as i32,
        }))
    }

    async fn delete_backup(
        &self,
        request: Request<wire::DeleteBackupRequest>,
    ) -> Result<Response<wire::DeleteBackupResponse>, Status> {
        let name = request.into_inner().name;
        let mut manager = self.manager.lock();
        let mut model = self.model.lock();
        let Some(backups) = manager.backups.as_ref() else {
            // "Backup manager has no backups on record".
            return Ok(Response::new(wire::DeleteBackupResponse {
                name,
                status: StatusType::Failed as i32,
            }));
        };
        if name.is_empty() {
            return Err(uncaught("RuntimeError", NO_BACKUP_NAME));
        }
        let Some(entry) = backups.get(&name) else {
            return Err(uncaught(
                "RuntimeError",
                &format!("Unable to get status for backup id: {name}"),
            ));
        };
        if self.manager_status(&model, &name, entry) == ManagerStatus::InProgress {
            return Ok(Response::new(wire::DeleteBackupResponse {
                name,
                status: StatusType::Failed as i32,
            }));
        }
        match model.delete_backup(self.storage(), &name) {
            Ok(_) => {
                if let Some(backups) = manager.backups.as_mut() {
                    backups.remove(&name);
                }
                // Medusa answers UNKNOWN for a deleted backup.
                Ok(Response::new(wire::DeleteBackupResponse {
                    name,
                    status: StatusType::Unknown as i32,
                }))
            }
            Err(CassandraError::Backup(_)) => Err(Status::internal(format!(
                "deleting backups failed: {}",
                missing_backup(&name)
            ))),
            Err(e) => Err(Status::internal(format!("deleting backups failed: {e}"))),
        }
    }

    async fn get_backup(
        &self,
        request: Request<wire::GetBackupRequest>,
    ) -> Result<Response<wire::GetBackupResponse>, Status> {
        let name = request.into_inner().backup_name;
        let summary = self.model.lock().backup_status(self.storage(), &name).map_err(|_| {
            Status::internal(format!(
                "Failed to get backup due to error: {}",
                missing_backup(&name)
            ))
        })?;
        let backup = wire_summary(&summary);
        let status = backup.status;
        Ok(Response::new(wire::GetBackupResponse {
            backup: Some(backup),
            status,
        }))
    }

    /// Every backup of the storage (bucket and prefix), whichever cluster, region or node took
    /// it, oldest first.
    async fn get_backups(
        &self,
        _request: Request<wire::GetBackupsRequest>,
    ) -> Result<Response<wire::GetBackupsResponse>, Status> {
        let summaries = self.model.lock().list_backups(self.storage(), None);
        let backups: Vec<wire::BackupSummary> = summaries.iter().map(wire_summary).collect();
        let overall_status = overall_status(&backups) as i32;
        Ok(Response::new(wire::GetBackupsResponse {
            backups,
            overall_status,
        }))
    }

    /// This node's backups, by medusa.ini's limits (the request carries none).
    async fn purge_backups(
        &self,
        _request: Request<wire::PurgeBackupsRequest>,
    ) -> Result<Response<wire::PurgeBackupsResponse>, Status> {
        let stats = self.model.lock().purge_node_backups(
            self.storage(),
            &self.pod.name,
            self.config.max_backup_count,
            self.config.max_backup_age_days,
        );
        Ok(Response::new(wire::PurgeBackupsResponse {
            nb_backups_purged: count(stats.backups_purged),
            nb_objects_purged: count(stats.objects_purged),
            total_purged_size: size(stats.total_purged_size),
            total_objects_within_gc_grace: count(stats.objects_within_gc_grace),
        }))
    }

    /// Computes the restore mapping of the datacenter (the request's, else this node's) against
    /// the live ring and writes it to this pod's volume under the restore key, as Medusa writes
    /// `/var/lib/cassandra/.restore_mapping/<restoreKey>`.
    async fn prepare_restore(
        &self,
        request: Request<wire::PrepareRestoreRequest>,
    ) -> Result<Response<wire::PrepareRestoreResponse>, Status> {
        let request = request.into_inner();
        let failed =
            |message: String| Status::internal(format!("Failed to prepare restore: {message}"));
        let mut model = self.model.lock();
        model
            .backup_status(self.storage(), &request.backup_name)
            .map_err(|_| failed(missing_backup(&request.backup_name)))?;
        // Medusa reads the ring through the local node's CQL.
        let node = model.node(&self.pod).map_err(|e| failed(e.to_string()))?;
        if !node.running {
            return Err(failed(
                CassandraError::NodeNotRunning(self.pod.to_string()).to_string(),
            ));
        }
        let datacenter = if request.datacenter.is_empty() {
            node.datacenter.clone()
        } else {
            request.datacenter.clone()
        };
        let cluster = model.cluster_of(&self.pod).map_err(|e| failed(e.to_string()))?.to_string();
        let pairs = model
            .restore_mapping(self.storage(), &request.backup_name, &cluster, &datacenter)
            .map_err(|e| failed(e.to_string()))?;
        let path = format!("{RESTORE_MAPPING_DIR}/{}", request.restore_key);
        if request.restore_key.is_empty() {
            return Err(failed(format!("[Errno 21] Is a directory: '{path}'")));
        }
        let mapping = RestoreMapping::from_pairs(
            pairs.iter().map(|(target, source)| (target.name.as_str(), source.as_str())),
        );
        let json = serde_json::to_string(&mapping).map_err(|e| failed(e.to_string()))?;
        model.write_volume_file(&self.pod, &path, json);
        Ok(Response::new(wire::PrepareRestoreResponse {}))
    }
}
