//! Medusa's stand-in: the gRPC service of the `medusa` container on port 50051 of every
//! Cassandra pod ([`MedusaService`], served by [`serve`]) and the `medusa-restore` init container
//! ([`restore_on_start`]), both over the shared Cassandra model's buckets
//! ([`crate::cassandra::bucket`]).
//!
//! Semantics follow cassandra-medusa's `medusa/service/grpc/server.py`, `restore.py`,
//! `backup_node.py`, `purge.py`, `listing.py` and `k8s/docker-entrypoint.sh`, configured as
//! k8ssandra-operator configures them (`pkg/medusa/reconcile.go`'s medusa.ini,
//! `controllers/medusa/medusarestorejob_controller.go`'s init container environment). The wire
//! types and the generated server are the `medusa-grpc` crate's.

mod config;
mod port;
mod restore;
mod service;

use std::future::Future;

use medusa_grpc::medusa_server::MedusaServer;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

pub use config::{
    DEFAULT_BACKUP_GRACE_PERIOD_DAYS, MedusaConfig, MedusaConfigError, storage_location_from_ini,
};
pub use port::MedusaPort;
pub(crate) use port::{CONFIG_KEY as MEDUSA_INI_KEY, mounted_config_map};
pub use restore::{
    BACKUP_NAME_ENV, LAST_RESTORE_FILE, MappingSource, POD_NAME_ENV, RESTORE_KEY_ENV,
    RESTORE_MAPPING_DIR, RESTORE_MAPPING_ENV, RestoreError, RestoreMapping, RestoreOutcome,
    prepared_restore_mapping, restore_on_start,
};
pub use service::MedusaService;

/// Medusa's gRPC port in k8ssandra (`[grpc] port`'s default).
pub const GRPC_PORT: u16 = 50051;

/// Serves `service` over plain HTTP/2 on an already bound listener until the server fails.
pub async fn serve(
    listener: TcpListener,
    service: MedusaService,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(MedusaServer::new(service))
        .serve_with_incoming(TcpIncoming::from(listener))
        .await
}

/// [`serve`] until `shutdown` completes (the pod stops).
pub async fn serve_with_shutdown(
    listener: TcpListener,
    service: MedusaService,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(MedusaServer::new(service))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}
