//! What k8ssandra-operator leaves on the CassandraDatacenters Federator takes over: its
//! finalizer (`k8ssandracluster.k8ssandra.io/finalizer`, the same name as the K8ssandraCluster's).
//! With k8ssandra-operator gone nobody would remove it, and deleting such a datacenter (removed
//! from the spec, or with its cluster) would hang; so Federator removes it, and only it, from
//! the datacenters it deletes. cass-operator's own finalizer stays: it cleans up after the pods.

use futures::future::join_all;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::{Api, Resource};
use tracing::info;

use super::observed::ObservedCluster;
use crate::api::cassdc::CassandraDatacenter;
use crate::clusters::{RegionFailure, Registry};
use crate::workload::labels::K8SSANDRA_CLUSTER_FINALIZER;

/// k8ssandra-operator's finalizer on the CassandraDatacenters it made.
pub const UPSTREAM_DATACENTER_FINALIZER: &str = K8SSANDRA_CLUSTER_FINALIZER;

/// The finalizers to keep when `metadata` carries k8ssandra-operator's (None when it does not).
pub fn without_upstream_finalizer(metadata: &ObjectMeta) -> Option<Vec<String>> {
    let finalizers = metadata.finalizers.as_deref()?;
    finalizers.iter().any(|f| f == UPSTREAM_DATACENTER_FINALIZER).then(|| {
        finalizers.iter().filter(|f| *f != UPSTREAM_DATACENTER_FINALIZER).cloned().collect()
    })
}

/// Removes k8ssandra-operator's finalizer from the CassandraDatacenter `name` as last seen
/// (`seen`, else read now). The write names the version it was computed from: if the object
/// changed meanwhile (cass-operator removed its own finalizer), it is read again once.
pub async fn release(
    api: &Api<CassandraDatacenter>,
    name: &str,
    seen: Option<&ObjectMeta>,
) -> Result<(), kube::Error> {
    let mut seen = seen.cloned();
    for attempt in 0..2 {
        let metadata = match seen.take() {
            Some(metadata) => metadata,
            None => match api.get_opt(name).await? {
                Some(dc) => dc.metadata,
                None => return Ok(()),
            },
        };
        let Some(kept) = without_upstream_finalizer(&metadata) else {
            return Ok(());
        };
        let patch = serde_json::json!({
            "metadata": {"finalizers": kept, "resourceVersion": metadata.resource_version}
        });
        match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                info!(datacenter = name, "removed k8ssandra-operator's finalizer");
                return Ok(());
            }
            Err(kube::Error::Api(response)) if response.is_not_found() => return Ok(()),
            Err(kube::Error::Api(response)) if response.code == 409 && attempt == 0 => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Releases every observed datacenter of the cluster that is being deleted and still carries
/// k8ssandra-operator's finalizer (a deletion started before, or whose release failed); returns
/// what failed.
pub async fn release_deleting(
    registry: &Registry,
    observed: &ObservedCluster,
) -> Vec<RegionFailure> {
    let releases = observed.datacenters.iter().filter_map(|(name, o)| {
        let dc = o.state.present()?;
        dc.meta().deletion_timestamp.as_ref()?;
        without_upstream_finalizer(dc.meta())?;
        Some(async move {
            let doing = format!(
                "removing k8ssandra-operator's finalizer from CassandraDatacenter {}/{name}",
                o.namespace
            );
            let client = registry
                .client(&o.context)
                .map_err(|e| RegionFailure::region(&o.context, &doing, &e))?;
            let api: Api<CassandraDatacenter> = Api::namespaced(client, &o.namespace);
            release(&api, name, Some(dc.meta()))
                .await
                .map_err(|e| RegionFailure::kube(&o.context, &doing, &e))
        })
    });
    join_all(releases).await.into_iter().filter_map(Result::err).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(finalizers: &[&str]) -> ObjectMeta {
        ObjectMeta {
            finalizers: Some(finalizers.iter().map(|f| f.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn only_k8ssandra_operators_finalizer_goes() {
        let upstream = with(&[
            "finalizer.cassandra.datastax.com",
            UPSTREAM_DATACENTER_FINALIZER,
        ]);
        assert_eq!(
            without_upstream_finalizer(&upstream),
            Some(vec!["finalizer.cassandra.datastax.com".to_string()])
        );
        assert_eq!(
            without_upstream_finalizer(&with(&[UPSTREAM_DATACENTER_FINALIZER])),
            Some(Vec::new())
        );
        assert_eq!(
            without_upstream_finalizer(&with(&["finalizer.cassandra.datastax.com"])),
            None
        );
        assert_eq!(without_upstream_finalizer(&ObjectMeta::default()), None);
    }
}
