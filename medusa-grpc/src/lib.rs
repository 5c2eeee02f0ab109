//! Medusa's gRPC service, the `medusa` container on port 50051 of every Cassandra pod that
//! k8ssandra-operator deploys: the wire types (hand-written prost messages), and the tonic client
//! ([`medusa_client::MedusaClient`]) and server ([`medusa_server::MedusaServer`] over the
//! [`medusa_server::Medusa`] trait) generated from [`RPCS`].

mod messages;
mod service_definition;

pub use messages::*;
pub use service_definition::{PACKAGE, RPCS, Rpc, SERVICE_NAME};

// tonic-build names the file `<package>.<Service>.rs`; medusa.proto has no package.
include!(concat!(env!("OUT_DIR"), "/.Medusa.rs"));
