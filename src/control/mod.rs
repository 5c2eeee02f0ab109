//! K8ssandraTask (`control.k8ssandra.io`): a task fanned out as one cass-operator CassandraTask
//! per datacenter of a K8ssandraCluster, each in its datacenter's region. [`fanout`] decides
//! which datacenters, where and when (pure); [`progress`] folds their statuses into the
//! K8ssandraTask's and follows its TTL (pure); [`controller`] does the I/O. Control-plane mode
//! only.

pub mod controller;
pub mod fanout;
pub mod progress;
