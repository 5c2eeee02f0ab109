//! A client of Medusa's gRPC service, the `medusa` container beside every Cassandra node,
//! reached at the pod's IP (the API server's pod proxy speaks HTTP/1.1, gRPC needs HTTP/2), as
//! k8ssandra-operator reaches it. Plain HTTP/2: k8ssandra runs Medusa without gRPC encryption
//! by default (`serviceProperties.encryption` is not acted on). Every call is bounded by
//! [`MedusaClient::timeout`], connecting included.

use std::time::Duration;

use medusa_grpc::medusa_client::MedusaClient as GrpcClient;
use medusa_grpc::{
    BackupRequest, BackupStatusRequest, GetBackupRequest, GetBackupsRequest, PrepareRestoreRequest,
    PurgeBackupsRequest, PurgeBackupsResponse, StatusType,
};
use tonic::transport::{Channel, Endpoint};

/// Each call's bound, connecting included, unless a controller says otherwise.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One call's failure.
#[derive(Debug, thiserror::Error)]
pub enum MedusaError {
    /// The pod could not be reached, or did not answer in time.
    #[error("Medusa on pod {pod} cannot be reached: {reason}")]
    Unreachable { pod: String, reason: String },
    /// Medusa answered with an error.
    #[error("Medusa on pod {pod} answered {code:?}: {message}")]
    Refused {
        pod: String,
        code: tonic::Code,
        message: String,
    },
}

/// Where a pod's Medusa listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MedusaPod {
    pub name: String,
    pub ip: String,
    pub port: u16,
}

/// A node's backup as `BackupStatus` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeBackup {
    InProgress,
    Success,
    /// FAILED or UNKNOWN (upstream counts both as failed).
    Failed,
}

/// Medusa's gRPC calls, each bounded by `timeout`.
#[derive(Clone, Copy, Debug)]
pub struct MedusaClient {
    pub timeout: Duration,
}

impl MedusaClient {
    async fn connect(&self, pod: &MedusaPod) -> Result<GrpcClient<Channel>, MedusaError> {
        let host = if pod.ip.contains(':') {
            format!("[{}]", pod.ip)
        } else {
            pod.ip.clone()
        };
        let unreachable = |reason: String| MedusaError::Unreachable {
            pod: pod.name.clone(),
            reason,
        };
        let endpoint = Endpoint::from_shared(format!("http://{host}:{}", pod.port))
            .map_err(|e| unreachable(e.to_string()))?
            .connect_timeout(self.timeout)
            .timeout(self.timeout);
        let channel = tokio::time::timeout(self.timeout, endpoint.connect())
            .await
            .map_err(|_| unreachable(format!("no connection within {:?}", self.timeout)))?
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(GrpcClient::new(channel))
    }

    fn answer_error(&self, pod: &MedusaPod, status: tonic::Status) -> MedusaError {
        match status.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                MedusaError::Unreachable {
                    pod: pod.name.clone(),
                    reason: status.message().to_string(),
                }
            }
            code => MedusaError::Refused {
                pod: pod.name.clone(),
                code,
                message: status.message().to_string(),
            },
        }
    }

    /// `AsyncBackup`: starts the node's backup `name` and returns at once.
    pub async fn start_backup(
        &self,
        pod: &MedusaPod,
        name: &str,
        full: bool,
    ) -> Result<(), MedusaError> {
        let mut client = self.connect(pod).await?;
        let mode = if full {
            medusa_grpc::backup_request::Mode::Full
        } else {
            medusa_grpc::backup_request::Mode::Differential
        };
        let request = BackupRequest {
            name: name.to_string(),
            mode: mode as i32,
        };
        let call = tokio::time::timeout(self.timeout, client.async_backup(request));
        match call.await {
            Err(_) => Err(self.timed_out(pod)),
            Ok(Err(status)) => Err(self.answer_error(pod, status)),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// `BackupStatus` of the node's backup `name`.
    pub async fn backup_status(
        &self,
        pod: &MedusaPod,
        name: &str,
    ) -> Result<NodeBackup, MedusaError> {
        let mut client = self.connect(pod).await?;
        let request = BackupStatusRequest {
            backup_name: name.to_string(),
        };
        let call = tokio::time::timeout(self.timeout, client.backup_status(request));
        let response = match call.await {
            Err(_) => return Err(self.timed_out(pod)),
            Ok(Err(status)) => return Err(self.answer_error(pod, status)),
            Ok(Ok(response)) => response.into_inner(),
        };
        Ok(match StatusType::try_from(response.status) {
            Ok(StatusType::InProgress) => NodeBackup::InProgress,
            Ok(StatusType::Success) => NodeBackup::Success,
            _ => NodeBackup::Failed,
        })
    }

    /// `GetBackup`: the cluster-wide summary of backup `name`.
    pub async fn backup_summary(
        &self,
        pod: &MedusaPod,
        name: &str,
    ) -> Result<medusa_grpc::BackupSummary, MedusaError> {
        let mut client = self.connect(pod).await?;
        let request = GetBackupRequest {
            backup_name: name.to_string(),
        };
        let call = tokio::time::timeout(self.timeout, client.get_backup(request));
        let response = match call.await {
            Err(_) => return Err(self.timed_out(pod)),
            Ok(Err(status)) => return Err(self.answer_error(pod, status)),
            Ok(Ok(response)) => response.into_inner(),
        };
        response.backup.ok_or_else(|| MedusaError::Refused {
            pod: pod.name.clone(),
            code: tonic::Code::NotFound,
            message: format!("no summary of backup {name}"),
        })
    }

    /// `GetBackups`: the summaries of every backup in the bucket of the pod's Medusa.
    pub async fn backups(
        &self,
        pod: &MedusaPod,
    ) -> Result<Vec<medusa_grpc::BackupSummary>, MedusaError> {
        let mut client = self.connect(pod).await?;
        let call = tokio::time::timeout(self.timeout, client.get_backups(GetBackupsRequest {}));
        match call.await {
            Err(_) => Err(self.timed_out(pod)),
            Ok(Err(status)) => Err(self.answer_error(pod, status)),
            Ok(Ok(response)) => Ok(response.into_inner().backups),
        }
    }

    /// `PurgeBackups`: the node drops its backups past medusa.ini's `max_backup_count` /
    /// `max_backup_age` (the request carries no limits), and says what it purged.
    pub async fn purge_backups(
        &self,
        pod: &MedusaPod,
    ) -> Result<PurgeBackupsResponse, MedusaError> {
        let mut client = self.connect(pod).await?;
        let call = tokio::time::timeout(self.timeout, client.purge_backups(PurgeBackupsRequest {}));
        match call.await {
            Err(_) => Err(self.timed_out(pod)),
            Ok(Err(status)) => Err(self.answer_error(pod, status)),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }

    /// `PrepareRestore`: the node computes the restore mapping of `backup_name` for
    /// `datacenter` and keeps it under `restore_key`.
    pub async fn prepare_restore(
        &self,
        pod: &MedusaPod,
        backup_name: &str,
        datacenter: &str,
        restore_key: &str,
    ) -> Result<(), MedusaError> {
        let mut client = self.connect(pod).await?;
        let request = PrepareRestoreRequest {
            backup_name: backup_name.to_string(),
            datacenter: datacenter.to_string(),
            restore_key: restore_key.to_string(),
        };
        let call = tokio::time::timeout(self.timeout, client.prepare_restore(request));
        match call.await {
            Err(_) => Err(self.timed_out(pod)),
            Ok(Err(status)) => Err(self.answer_error(pod, status)),
            Ok(Ok(_)) => Ok(()),
        }
    }

    fn timed_out(&self, pod: &MedusaPod) -> MedusaError {
        MedusaError::Unreachable {
            pod: pod.name.clone(),
            reason: format!("no answer within {:?}", self.timeout),
        }
    }
}

/// The proto enum's name of a status (`SUCCESS`, ...), as upstream writes MedusaBackup's
/// `status.status`.
pub fn status_name(status: i32) -> String {
    match StatusType::try_from(status) {
        Ok(StatusType::InProgress) => "IN_PROGRESS",
        Ok(StatusType::Success) => "SUCCESS",
        Ok(StatusType::Failed) => "FAILED",
        _ => "UNKNOWN",
    }
    .to_string()
}
