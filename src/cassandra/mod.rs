//! Talking to Cassandra itself, under the controllers: the Management API client and the
//! keyspace replication the datacenters require (pure), CassandraTasks, Reaper's REST API,
//! Medusa's gRPC service.
//! Nothing here knows a K8ssandraCluster.

pub mod direct;
pub mod management;
pub mod medusa;
pub mod reaper;
pub mod replication;
pub mod task;
