// Medusa's RPCs, in one table that `build.rs` generates the tonic client and server from and that
// the crate exports, so that the wire-compatibility test checks what was generated.

/// medusa.proto declares no `package`, so routes are `/Medusa/<Method>`.
pub const PACKAGE: &str = "";
/// The gRPC service name.
pub const SERVICE_NAME: &str = "Medusa";

/// One RPC: its name on the wire, the Rust method name and the request and response types (in
/// this crate's root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rpc {
    pub name: &'static str,
    pub rust_name: &'static str,
    pub request: &'static str,
    pub response: &'static str,
}

/// Every RPC of `service Medusa`, in the proto's order.
pub const RPCS: &[Rpc] = &[
    Rpc {
        name: "Backup",
        rust_name: "backup",
        request: "BackupRequest",
        response: "BackupResponse",
    },
    Rpc {
        name: "AsyncBackup",
        rust_name: "async_backup",
        request: "BackupRequest",
        response: "BackupResponse",
    },
    Rpc {
        name: "BackupStatus",
        rust_name: "backup_status",
        request: "BackupStatusRequest",
        response: "BackupStatusResponse",
    },
    Rpc {
        name: "DeleteBackup",
        rust_name: "delete_backup",
        request: "DeleteBackupRequest",
        response: "DeleteBackupResponse",
    },
    Rpc {
        name: "GetBackup",
        rust_name: "get_backup",
        request: "GetBackupRequest",
        response: "GetBackupResponse",
    },
    Rpc {
        name: "GetBackups",
        rust_name: "get_backups",
        request: "GetBackupsRequest",
        response: "GetBackupsResponse",
    },
    Rpc {
        name: "PurgeBackups",
        rust_name: "purge_backups",
        request: "PurgeBackupsRequest",
        response: "PurgeBackupsResponse",
    },
    Rpc {
        name: "PrepareRestore",
        rust_name: "prepare_restore",
        request: "PrepareRestoreRequest",
        response: "PrepareRestoreResponse",
    },
];

impl Rpc {
    /// The HTTP/2 path of the RPC: `/<package>.<Service>/<Method>`, without the package and its
    /// dot when there is none.
    pub fn path(&self) -> String {
        if PACKAGE.is_empty() {
            format!("/{SERVICE_NAME}/{}", self.name)
        } else {
            format!("/{PACKAGE}.{SERVICE_NAME}/{}", self.name)
        }
    }
}
