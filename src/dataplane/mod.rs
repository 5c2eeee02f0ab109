//! The per-region components of a datacenter: Stargate and Reaper, and Medusa's backup and
//! restore jobs ([`medusa_backup`], [`medusa_restore`]), the K8ssandra book's CassandraBackup
//! and CassandraRestore that run them ([`cassandra_backup`], [`cassandra_restore`]) and the
//! MedusaConfiguration's Secret check ([`medusa_configuration`]). Their controllers run in
//! both modes (a data-plane instance runs only these), reconcile the Stargate and Reaper objects
//! of their own cluster, and own the Deployments (a local-storage Reaper's StatefulSet) and
//! Services they create (ownerReferences: the garbage collector removes them with their owner).
//!
//! Each controller is a pipeline: read the Stargate/Reaper and its CassandraDatacenter → build
//! the desired Deployments (or StatefulSet) and Service ([`stargate`], [`reaper`]: pure) → apply
//! them without writes at steady state → status from their status ([`rollout`]: pure).

pub mod cassandra_backup;
pub mod cassandra_restore;
pub mod controller;
mod job_controller;
pub mod medusa_backup;
pub mod medusa_configuration;
pub mod medusa_restore;
pub mod medusa_schedule;
pub mod medusa_task;
pub mod monitor;
pub mod reaper;
pub mod rollout;
pub mod stargate;
pub mod vector_agent;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;

use crate::api::shared::{CLUSTER_NAME_LABEL, CLUSTER_NAMESPACE_LABEL, ContainerImage};

/// `app.kubernetes.io/name` on everything the components create.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/created-by`: which controller made the object.
pub const CREATED_BY_LABEL: &str = "app.kubernetes.io/created-by";

/// The ownerReference that makes `owner` the controller of a child object (same namespace).
pub fn controller_reference<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    let meta = owner.meta();
    Some(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The K8ssandraCluster labels of `owner` (when a K8ssandraCluster made it), to copy onto its
/// children so that they can be found per cluster.
pub fn cluster_labels_of(owner: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    owner
        .into_iter()
        .flatten()
        .filter(|(key, _)| *key == CLUSTER_NAME_LABEL || *key == CLUSTER_NAMESPACE_LABEL)
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// An image reference (`registry/repository/name:tag`, `…/name@sha256:…` or
/// `…/name:tag@sha256:…`) split into the parts a `containerImage` can override. A digest is kept
/// in `tag` (`sha256:…`, or `tag@sha256:…`), which [`ContainerImage::reference_or`] writes back.
pub fn parse_image(reference: &str) -> ContainerImage {
    let (reference, digest) = match reference.split_once('@') {
        Some((reference, digest)) => (reference, Some(digest)),
        None => (reference, None),
    };
    let (path, tag) = match reference.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') => (path, Some(tag)),
        _ => (reference, None),
    };
    let tag = match (tag, digest) {
        (Some(tag), Some(digest)) => Some(format!("{tag}@{digest}")),
        (None, Some(digest)) => Some(digest.to_string()),
        (tag, None) => tag.map(str::to_string),
    };
    let mut parts: Vec<&str> = path.split('/').collect();
    let name = parts.pop().map(str::to_string);
    let registry = match parts.first() {
        Some(first) if parts.len() > 1 || first.contains('.') || first.contains(':') => {
            Some(parts.remove(0).to_string())
        }
        _ => None,
    };
    let repository = (!parts.is_empty()).then(|| parts.join("/"));
    ContainerImage {
        registry,
        repository,
        name,
        tag,
        ..ContainerImage::default()
    }
}

/// The image to run: the settings' default, with the parts the resource's `containerImage` gives.
pub fn image_reference(own: Option<&ContainerImage>, default: &str) -> String {
    match own {
        Some(image) => image.reference_or(&parse_image(default)),
        None => default.to_string(),
    }
}

/// The pod's `imagePullSecrets`: the `pullSecretRef` of `image`, if it names one.
pub fn image_pull_secrets(
    image: Option<&ContainerImage>,
) -> Option<Vec<k8s_openapi::api::core::v1::LocalObjectReference>> {
    let secret = image?.pull_secret_ref.as_ref().filter(|s| !s.name.is_empty())?;
    Some(vec![k8s_openapi::api::core::v1::LocalObjectReference {
        name: secret.name.clone(),
    }])
}

/// Bytes of a Kubernetes quantity (`256Mi`, `2G`, `1e9`, `512`), rounded up as Kubernetes'
/// `Quantity.Value()`; None when it cannot be read or is negative.
pub fn quantity_bytes(quantity: &Quantity) -> Option<u64> {
    let value = crate::quantity::Quantity::parse(&quantity.0).ok()?.ceil_value()?;
    u64::try_from(value).ok()
}

/// Why a Stargate or Reaper is not deployed yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Waiting {
    /// `spec.datacenterRef.name` is empty.
    NoDatacenterRef,
    DatacenterNotFound(String),
    DatacenterNotReady(String),
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Waiting::NoDatacenterRef => f.write_str("spec.datacenterRef.name is empty"),
            Waiting::DatacenterNotFound(name) => {
                write!(
                    f,
                    "CassandraDatacenter {name} does not exist in this namespace"
                )
            }
            Waiting::DatacenterNotReady(name) => {
                write!(f, "waiting for CassandraDatacenter {name} to be Ready")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_into_overridable_parts() {
        let image = parse_image("docker.io/stargateio/stargate-4_0:v1.0.77");
        assert_eq!(image.registry.as_deref(), Some("docker.io"));
        assert_eq!(image.repository.as_deref(), Some("stargateio"));
        assert_eq!(image.name.as_deref(), Some("stargate-4_0"));
        assert_eq!(image.tag.as_deref(), Some("v1.0.77"));
        let own = ContainerImage {
            tag: Some("v1.0.80".into()),
            ..Default::default()
        };
        assert_eq!(
            image_reference(Some(&own), "docker.io/stargateio/stargate-4_0:v1.0.77"),
            "docker.io/stargateio/stargate-4_0:v1.0.80"
        );
        assert_eq!(
            image_reference(None, "localhost:5000/reaper:1"),
            "localhost:5000/reaper:1"
        );
        let local = parse_image("localhost:5000/reaper:1");
        assert_eq!(local.registry.as_deref(), Some("localhost:5000"));
        assert_eq!(local.name.as_deref(), Some("reaper"));
    }

    #[test]
    fn digests_survive_an_override_of_the_other_parts() {
        const DIGEST: &str =
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let mirror = ContainerImage {
            registry: Some("mirror.example.com:5000".into()),
            ..Default::default()
        };
        let pinned = format!("docker.io/thelastpickle/cassandra-reaper@{DIGEST}");
        let image = parse_image(&pinned);
        assert_eq!(image.registry.as_deref(), Some("docker.io"));
        assert_eq!(image.repository.as_deref(), Some("thelastpickle"));
        assert_eq!(image.name.as_deref(), Some("cassandra-reaper"));
        assert_eq!(image.tag.as_deref(), Some(DIGEST));
        assert_eq!(
            image_reference(Some(&mirror), &pinned),
            format!("mirror.example.com:5000/thelastpickle/cassandra-reaper@{DIGEST}")
        );
        let tagged = format!("localhost:5000/reaper:3.5.0@{DIGEST}");
        assert_eq!(
            image_reference(Some(&ContainerImage::default()), &tagged),
            tagged
        );
        assert_eq!(
            image_reference(Some(&mirror), &tagged),
            format!("mirror.example.com:5000/reaper:3.5.0@{DIGEST}")
        );
    }

    #[test]
    fn quantities_become_bytes() {
        assert_eq!(quantity_bytes(&Quantity("256Mi".into())), Some(268_435_456));
        assert_eq!(quantity_bytes(&Quantity("2G".into())), Some(2_000_000_000));
        assert_eq!(quantity_bytes(&Quantity("1e3".into())), Some(1000));
        assert_eq!(quantity_bytes(&Quantity("512".into())), Some(512));
        assert_eq!(quantity_bytes(&Quantity("lots".into())), None);
    }
}
