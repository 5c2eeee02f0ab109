//! K8ssandraTask (`control.k8ssandra.io`): a task fanned out as one cass-operator CassandraTask
//! per datacenter of a K8ssandraCluster, each in its datacenter's region. [`fanout`] decides
//! which datacenters, where and when (pure); [`progress`] folds their statuses into the
//! K8ssandraTask's and follows its TTL (pure); [`controller`] does the I/O. Control-plane mode
//! only. [`medusa_cluster_backup`]: a MedusaClusterBackupJob fanned out the same way, as one
//! MedusaBackupJob per datacenter.

pub mod controller;
pub mod fanout;
pub mod medusa_cluster_backup;
pub mod progress;
