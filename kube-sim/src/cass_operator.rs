//! A stand-in for cass-operator: what a control plane can observe of CassandraDatacenters.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::Cluster;

/// A minimal, permissive CassandraDatacenter CRD, used unless the real one is given with --crds.
pub fn builtin_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "cassandradatacenters.cassandra.datastax.com"},
        "spec": {
            "group": "cassandra.datastax.com",
            "names": {"kind": "CassandraDatacenter", "listKind": "CassandraDatacenterList",
                      "plural": "cassandradatacenters", "singular": "cassandradatacenter",
                      "shortNames": ["cassdc", "cassdcs"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1beta1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}
            }]
        }
    })
}

/// The controller task for one cluster.
pub fn spawn(cluster: Arc<Cluster>, ready_after: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = (cluster, ready_after);
    })
}
