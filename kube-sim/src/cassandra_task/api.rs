//! The controller's Kubernetes client: the cluster's store, called in-process as the other
//! stand-ins do, with cass-operator's field manager.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::cluster::Cluster;
use crate::error::{ApiError, ApiResult};
use crate::store::{DeleteOptions, ListOptions, PatchType, ResourceInfo, Store, WriteOptions};

use super::MANAGER;

pub(super) struct Kube {
    cluster: Arc<Cluster>,
}

fn write_options(status: bool) -> WriteOptions {
    WriteOptions {
        field_manager: Some(MANAGER.into()),
        subresource_status: status,
        ..WriteOptions::default()
    }
}

/// `k1=v1,k2=v2`: the equality selector of a label map.
pub(super) fn selector(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

impl Kube {
    pub(super) fn new(cluster: Arc<Cluster>) -> Kube {
        Kube { cluster }
    }

    pub(super) fn store(&self) -> &Store {
        &self.cluster.store
    }

    /// The stored version of a served resource, if its kind is served.
    pub(super) fn info(&self, group: &str, plural: &str) -> Option<ResourceInfo> {
        self.cluster
            .catalog()
            .all()
            .iter()
            .find(|r| r.info.group == group && r.info.plural == plural && r.storage)
            .map(|r| r.info.clone())
    }

    /// As [`Kube::info`], with the API server's 404 for a kind it does not serve.
    pub(super) fn resource(&self, group: &str, plural: &str) -> ApiResult<ResourceInfo> {
        self.info(group, plural).ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        })
    }

    pub(super) fn get(&self, info: &ResourceInfo, namespace: &str, name: &str) -> ApiResult<Value> {
        self.cluster.store.get(info, Some(namespace), name)
    }

    /// The objects of a namespace that carry every label of `labels`.
    pub(super) fn list(
        &self,
        info: &ResourceInfo,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> ApiResult<Vec<Value>> {
        let options = ListOptions {
            label_selector: Some(selector(labels)),
            ..ListOptions::default()
        };
        let mut list = self.cluster.store.list(info, Some(namespace), &options)?;
        Ok(match list.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        })
    }

    /// PUT of the whole object (metadata and spec), with its resourceVersion.
    pub(super) fn update(&self, info: &ResourceInfo, object: Value) -> ApiResult<Value> {
        let (namespace, name) = identity(&object)?;
        self.cluster
            .store
            .update(info, Some(&namespace), &name, object, &write_options(false))
            .map(|written| written.object)
    }

    /// PUT on `/status`, with the object's resourceVersion.
    pub(super) fn update_status(&self, info: &ResourceInfo, object: Value) -> ApiResult<Value> {
        let (namespace, name) = identity(&object)?;
        self.cluster
            .store
            .update(info, Some(&namespace), &name, object, &write_options(true))
            .map(|written| written.object)
    }

    /// A JSON merge patch, of the object or (with `status`) of its `/status`.
    pub(super) fn merge_patch(
        &self,
        info: &ResourceInfo,
        namespace: &str,
        name: &str,
        patch: &Value,
        status: bool,
    ) -> ApiResult<Value> {
        self.cluster
            .store
            .patch(
                info,
                Some(namespace),
                name,
                PatchType::Merge,
                patch.to_string().as_bytes(),
                &write_options(status),
            )
            .map(|written| written.object)
    }

    pub(super) fn delete(&self, info: &ResourceInfo, namespace: &str, name: &str) -> ApiResult<()> {
        self.cluster
            .store
            .delete(info, Some(namespace), name, &DeleteOptions::default())
            .map(|_| ())
    }
}

fn identity(object: &Value) -> ApiResult<(String, String)> {
    let field = |pointer: &str| object.pointer(pointer).and_then(Value::as_str).map(str::to_string);
    match (field("/metadata/namespace"), field("/metadata/name")) {
        (Some(namespace), Some(name)) => Ok((namespace, name)),
        _ => Err(ApiError::new(
            400,
            "BadRequest",
            "the object has no namespace or name",
        )),
    }
}
