//! The controller loop the Medusa jobs share: one kind, in the watched namespaces, reconciled
//! with metrics, backoff and cache health, until shutdown.

use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::controller::{Action, Error as ControllerError};
use kube::runtime::{Controller, watcher};
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use crate::cache::scoped;

/// Re-look at a running job.
pub const POLL: std::time::Duration = std::time::Duration::from_secs(2);
/// Re-look at a job waiting on something else (its datacenter, pods, backup).
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `reconcile` on the `K`s of `client`'s cluster (in `watch_namespaces`, all when empty)
/// until `shutdown`; `name` labels metrics and health, `kind` the logs.
pub async fn run<K, C, E, F, Fut>(
    name: &'static str,
    kind: &'static str,
    client: kube::Client,
    context: Arc<C>,
    watch_namespaces: Vec<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    reconcile: F,
) where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    C: AsRef<crate::ops::Ops> + Send + Sync + 'static,
    E: crate::ops::ErrorLabel + std::error::Error + Send + 'static,
    F: FnMut(Arc<K>, Arc<C>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Action, E>> + Send + 'static,
{
    let backoff = crate::ops::RetryBackoff::default();
    info!("{kind} controller started");
    let controller = Controller::new(
        scoped::<K>(&client, &watch_namespaces),
        watcher::Config::default(),
    );
    let ops: &crate::ops::Ops = context.as_ref().as_ref();
    ops.health.track_cache(name, controller.store());
    let metrics = Arc::clone(&ops.metrics);
    controller
        .graceful_shutdown_on(shutdown)
        .run(
            crate::ops::instrument(name, |_: &K| String::new(), &backoff, &metrics, reconcile),
            backoff.error_policy(),
            context,
        )
        .for_each(|result| {
            match result {
                Ok((object, _)) => debug!(object = %object, "{kind} reconciled"),
                Err(ControllerError::ObjectNotFound(_)) => {}
                Err(ControllerError::ReconcilerFailed(error, object)) => {
                    warn!(object = %object, error = %error, "reconcile failed; retrying");
                }
                Err(error) => warn!(error = %error, "{kind} controller"),
            }
            futures::future::ready(())
        })
        .await;
    info!("{kind} controller stopped");
}

/// A Medusa job's reconcile failure.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{kind} {name} has no namespace")]
    MissingNamespace { kind: &'static str, name: String },
    #[error("{action} for {kind} {namespace}/{name}: {source}")]
    Api {
        kind: &'static str,
        action: String,
        namespace: String,
        name: String,
        source: Box<kube::Error>,
    },
    #[error("{kind} {namespace}/{name}: {message}")]
    Medusa {
        kind: &'static str,
        namespace: String,
        name: String,
        message: String,
    },
}

impl crate::ops::ErrorLabel for JobError {
    const KINDS: &'static [&'static str] = &["missing_namespace", "api", "medusa"];
    fn metric_label(&self) -> &'static str {
        match self {
            JobError::MissingNamespace { .. } => "missing_namespace",
            JobError::Api { .. } => "api",
            JobError::Medusa { .. } => "medusa",
        }
    }
}

/// The job a reconcile is about: names its errors and writes its status.
pub struct JobRef {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

impl JobRef {
    pub fn of<K: kube::Resource<DynamicType = ()>>(object: &K) -> Result<JobRef, JobError> {
        let kind = match K::kind(&()) {
            std::borrow::Cow::Borrowed(kind) => kind,
            std::borrow::Cow::Owned(_) => "job",
        };
        let name = object.meta().name.clone().unwrap_or_default();
        let namespace =
            (object.meta().namespace.clone()).ok_or_else(|| JobError::MissingNamespace {
                kind,
                name: name.clone(),
            })?;
        Ok(JobRef {
            kind,
            namespace,
            name,
        })
    }

    pub fn api_error(&self, action: impl Into<String>) -> impl FnOnce(kube::Error) -> JobError {
        let (kind, action) = (self.kind, action.into());
        let (namespace, name) = (self.namespace.clone(), self.name.clone());
        move |source| JobError::Api {
            kind,
            action,
            namespace,
            name,
            source: Box::new(source),
        }
    }

    pub fn medusa_error(&self, message: String) -> JobError {
        JobError::Medusa {
            kind: self.kind,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            message,
        }
    }

    /// Server-side applies the job's whole `status` under `field_manager`.
    pub async fn write_status<K>(
        &self,
        client: &kube::Client,
        field_manager: &str,
        status: &impl serde::Serialize,
    ) -> Result<(), JobError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: kube::Api<K> = kube::Api::namespaced(client.clone(), &self.namespace);
        let body = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        let params = kube::api::PatchParams::apply(field_manager).force();
        api.patch_status(&self.name, &params, &kube::api::Patch::Apply(&body))
            .await
            .map(|_| ())
            .map_err(self.api_error("writing the status"))
    }
}

/// Pure: the apply that makes `dc` an owner of the job `id` (as upstream's
/// `controllerutil.SetOwnerReference`: a plain owner, neither controller nor blocking the
/// datacenter's deletion), so that deleting the datacenter deletes its jobs; `None` when it
/// already is one. Server-side apply merges owner references by uid: other owners stay.
pub fn datacenter_owner_apply<K: kube::Resource<DynamicType = ()>>(
    id: &JobRef,
    job: &K,
    dc: &crate::api::cassdc::CassandraDatacenter,
) -> Option<serde_json::Value> {
    use kube::Resource as _;
    let uid = dc.meta().uid.as_deref().filter(|uid| !uid.is_empty())?;
    let owned = (job.meta().owner_references.iter().flatten()).any(|owner| owner.uid == uid);
    if owned {
        return None;
    }
    Some(serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {
            "name": id.name,
            "namespace": id.namespace,
            "ownerReferences": [{
                "apiVersion": crate::api::cassdc::CassandraDatacenter::api_version(&()),
                "kind": crate::api::cassdc::CassandraDatacenter::kind(&()),
                "name": dc.meta().name.clone().unwrap_or_default(),
                "uid": uid,
            }],
        },
    }))
}

impl JobRef {
    /// Makes `dc` an owner of the job when it is not yet ([`datacenter_owner_apply`]); whether
    /// it did. The caller then ends its reconcile (as upstream): the write comes back as an
    /// event, and a step taken now could run again on the cached job of before it.
    pub async fn own_by_datacenter<K>(
        &self,
        client: &kube::Client,
        field_manager: &str,
        job: &K,
        dc: &crate::api::cassdc::CassandraDatacenter,
    ) -> Result<bool, JobError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let Some(body) = datacenter_owner_apply(self, job, dc) else {
            return Ok(false);
        };
        let api: kube::Api<K> = kube::Api::namespaced(client.clone(), &self.namespace);
        let params = kube::api::PatchParams::apply(field_manager).force();
        api.patch(&self.name, &params, &kube::api::Patch::Apply(&body))
            .await
            .map(|_| true)
            .map_err(self.api_error("setting the CassandraDatacenter as owner"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::medusa::backup_job::{MedusaBackupJob, MedusaBackupJobSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    #[test]
    fn a_job_gets_its_datacenter_as_plain_owner_once() {
        let mut job = MedusaBackupJob::new("b1", MedusaBackupJobSpec::default());
        job.metadata.namespace = Some("ns".into());
        let id = JobRef::of(&job).expect("namespaced");
        let mut dc = crate::api::cassdc::CassandraDatacenter::new("dc1", Default::default());
        dc.metadata.namespace = Some("ns".into());
        dc.metadata.uid = Some("u-1".into());
        let body = datacenter_owner_apply(&id, &job, &dc).expect("an owner to set");
        let owner = &body["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "CassandraDatacenter");
        assert_eq!(owner["uid"], "u-1");
        assert_eq!(owner["name"], "dc1");
        // Neither controller nor blocking, as upstream's SetOwnerReference.
        assert!(owner.get("controller").is_none() && owner.get("blockOwnerDeletion").is_none());

        job.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "cassandra.datastax.com/v1beta1".into(),
            kind: "CassandraDatacenter".into(),
            name: "dc1".into(),
            uid: "u-1".into(),
            ..Default::default()
        }]);
        assert_eq!(datacenter_owner_apply(&id, &job, &dc), None);
        // A datacenter recreated under the same name is a new owner.
        dc.metadata.uid = Some("u-2".into());
        assert!(datacenter_owner_apply(&id, &job, &dc).is_some());
    }
}
