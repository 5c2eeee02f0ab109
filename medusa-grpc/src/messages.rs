//! Medusa's messages (k8ssandra-operator `pkg/medusa/medusa.proto`), written as prost types. Field
//! numbers and types are the wire's; the Rust names are the proto's in snake_case. The
//! `wire_compat` test checks them against the real proto.

/// `StatusType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum StatusType {
    InProgress = 0,
    Success = 1,
    Failed = 2,
    Unknown = 3,
}

impl StatusType {
    /// The value's name in the proto.
    pub fn as_str_name(self) -> &'static str {
        match self {
            StatusType::InProgress => "IN_PROGRESS",
            StatusType::Success => "SUCCESS",
            StatusType::Failed => "FAILED",
            StatusType::Unknown => "UNKNOWN",
        }
    }
}

/// `BackupRequest`: `Backup` and `AsyncBackup`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BackupRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(enumeration = "backup_request::Mode", tag = "2")]
    pub mode: i32,
}

/// Types nested in `BackupRequest`.
pub mod backup_request {
    /// `BackupRequest.Mode`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum Mode {
        Differential = 0,
        Full = 1,
    }

    impl Mode {
        /// The value's name in the proto.
        pub fn as_str_name(self) -> &'static str {
            match self {
                Mode::Differential => "DIFFERENTIAL",
                Mode::Full => "FULL",
            }
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BackupResponse {
    #[prost(string, tag = "1")]
    pub backup_name: String,
    #[prost(enumeration = "StatusType", tag = "2")]
    pub status: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BackupStatusRequest {
    #[prost(string, tag = "1")]
    pub backup_name: String,
}

/// Times are `%Y-%m-%d %H:%M:%S` text; `finish_time` is empty until the node's backup finished.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BackupStatusResponse {
    #[prost(string, tag = "1")]
    pub start_time: String,
    #[prost(string, tag = "2")]
    pub finish_time: String,
    #[prost(enumeration = "StatusType", tag = "3")]
    pub status: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteBackupRequest {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteBackupResponse {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(enumeration = "StatusType", tag = "2")]
    pub status: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetBackupRequest {
    #[prost(string, tag = "1")]
    pub backup_name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetBackupResponse {
    #[prost(message, optional, tag = "1")]
    pub backup: Option<BackupSummary>,
    #[prost(enumeration = "StatusType", tag = "2")]
    pub status: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetBackupsRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetBackupsResponse {
    #[prost(message, repeated, tag = "1")]
    pub backups: Vec<BackupSummary>,
    #[prost(enumeration = "StatusType", tag = "2")]
    pub overall_status: i32,
}

/// A cluster backup: times in seconds since the epoch (0 while unfinished).
#[derive(Clone, PartialEq, prost::Message)]
pub struct BackupSummary {
    #[prost(string, tag = "1")]
    pub backup_name: String,
    #[prost(int64, tag = "2")]
    pub start_time: i64,
    #[prost(int64, tag = "3")]
    pub finish_time: i64,
    #[prost(int32, tag = "4")]
    pub total_nodes: i32,
    #[prost(int32, tag = "5")]
    pub finished_nodes: i32,
    #[prost(message, repeated, tag = "6")]
    pub nodes: Vec<BackupNode>,
    #[prost(enumeration = "StatusType", tag = "7")]
    pub status: i32,
    #[prost(string, tag = "8")]
    pub backup_type: String,
    #[prost(int64, tag = "9")]
    pub total_size: i64,
    #[prost(int64, tag = "10")]
    pub total_objects: i64,
}

/// A node of a backup's tokenmap.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BackupNode {
    #[prost(string, tag = "1")]
    pub host: String,
    #[prost(int64, repeated, tag = "2")]
    pub tokens: Vec<i64>,
    #[prost(string, tag = "3")]
    pub datacenter: String,
    #[prost(string, tag = "4")]
    pub rack: String,
}

/// Medusa purges with the limits of its own medusa.ini: the request carries none.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PurgeBackupsRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PurgeBackupsResponse {
    #[prost(int32, tag = "1")]
    pub nb_backups_purged: i32,
    #[prost(int32, tag = "2")]
    pub nb_objects_purged: i32,
    #[prost(int64, tag = "3")]
    pub total_purged_size: i64,
    #[prost(int32, tag = "4")]
    pub total_objects_within_gc_grace: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PrepareRestoreRequest {
    #[prost(string, tag = "1")]
    pub backup_name: String,
    #[prost(string, tag = "2")]
    pub datacenter: String,
    #[prost(string, tag = "3")]
    pub restore_key: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PrepareRestoreResponse {}
