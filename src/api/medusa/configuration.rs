//! MedusaConfiguration (medusa.k8ssandra.io/v1alpha1): storage settings shared by the
//! K8ssandraClusters whose `spec.medusa.medusaConfigurationRef` names it: its `storageProperties`
//! are merged under theirs when their datacenters are planned. Its status says whether the
//! storage Secret it names is usable ([`crate::dataplane::medusa_configuration`]).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::MedusaStorage;
use crate::api::shared::{MetaCondition, condition_list, tidy_schema};

/// Shared Medusa storage settings.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "medusa.k8ssandra.io",
    version = "v1alpha1",
    kind = "MedusaConfiguration",
    doc = "Medusa storage settings shared by the K8ssandraClusters that name it in spec.medusa.medusaConfigurationRef.",
    plural = "medusaconfigurations",
    namespaced,
    status = "MedusaConfigurationStatus",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct MedusaConfigurationSpec {
    /// The storage backend of the backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_properties: Option<MedusaStorage>,
}

/// `SecretAvailable` (the storage Secret exists with the key Medusa reads) and `Ready`
/// conditions.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct MedusaConfigurationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "condition_list")]
    pub conditions: Option<Vec<MetaCondition>>,
}
