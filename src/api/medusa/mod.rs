//! Medusa (medusa.k8ssandra.io/v1alpha1 and the K8ssandraCluster's `spec.medusa`): backups of
//! Cassandra to object storage, and restores from them. The shapes are k8ssandra-operator's,
//! one file per kind; the numbers upstream leaves open are bounded here.
//!
//! Federator acts on `spec.medusa` ([`crate::workload::medusa`]), MedusaBackupJobs
//! ([`crate::dataplane::medusa_backup`]), MedusaRestoreJobs ([`crate::dataplane::medusa_restore`])
//! and a referenced MedusaConfiguration; the other kinds are served and validated only.
//! MedusaClusterBackupJob is Federator's own, acted on in the hub
//! ([`crate::control::medusa_cluster_backup`]).

pub mod backup;
pub mod backup_job;
pub mod backup_schedule;
pub mod cassandra_backup;
pub mod cassandra_restore;
pub mod cluster_backup_job;
pub mod configuration;
pub mod restore_job;
pub mod task;

pub use backup::MedusaBackup;
pub use backup_job::MedusaBackupJob;
pub use backup_schedule::MedusaBackupSchedule;
pub use cassandra_backup::CassandraBackup;
pub use cassandra_restore::CassandraRestore;
pub use cluster_backup_job::MedusaClusterBackupJob;
pub use configuration::MedusaConfiguration;
pub use restore_job::MedusaRestoreJob;
pub use task::MedusaTask;

use k8s_openapi::api::core::v1::{Probe, ResourceRequirements, SecurityContext};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::{ContainerImage, EncryptionStores, ObjectReference, SecretRef};

/// The API group of every Medusa kind.
pub const GROUP: &str = "medusa.k8ssandra.io";

/// Longest name of an object a Medusa kind refers to (a Kubernetes object name).
pub const MAX_NAME_LENGTH: u32 = 253;
/// Most days a backup may be kept by age, or an orphan file protected (100 years).
pub const MAX_DAYS: i32 = 36_500;
/// Most backups the purge may be asked to keep.
pub const MAX_BACKUP_COUNT: i32 = 100_000;
/// Most uploads Medusa may be asked to run at once.
pub const MAX_CONCURRENT_TRANSFERS: i32 = 256;
/// Largest multi-part upload threshold, in bytes: 5 TiB, the largest object S3 stores.
pub const MAX_MULTI_PART_UPLOAD_THRESHOLD: i64 = 5 * 1024 * 1024 * 1024 * 1024;
/// Highest TCP port.
pub const MAX_PORT: i32 = 65_535;

/// `spec.medusa` of a K8ssandraCluster: the Medusa container beside each Cassandra node, and
/// where it stores backups ([`crate::workload::medusa`]); the fields not acted on yet are named by
/// the K8ssandraCluster's FieldsNotActedOn condition ([`MedusaClusterTemplate::fields_not_acted_on`]).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MedusaClusterTemplate {
    /// A MedusaConfiguration whose storage settings are the defaults; `storageProperties`
    /// overrides them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medusa_configuration_ref: Option<ObjectReference>,
    /// Image of the Medusa containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_image: Option<ContainerImage>,
    /// Security context of the Medusa containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// Secret (`username`, `password`) of the CQL role Medusa uses; in the datacenter's
    /// namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_user_secret_ref: Option<SecretRef>,
    /// Where and how backups are stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_properties: Option<MedusaStorage>,
    /// Medusa's gRPC service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_properties: Option<MedusaService>,
    /// Deprecated for `clientEncryptionStores`: Secret with `rootca.crt`, `client.crt_signed`
    /// and `client.key` for client encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates_secret_ref: Option<SecretRef>,
    /// Stores Medusa uses when Cassandra has client encryption on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_encryption_stores: Option<EncryptionStores>,
    /// Resources of the medusa-restore init container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_container_resources: Option<ResourceRequirements>,
    /// Resources of the Medusa container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    /// Purge old backups nightly (absent: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge_backups: Option<bool>,
}

impl MedusaClusterTemplate {
    /// Backups are purged unless `purgeBackups` is false (upstream default).
    pub fn purge_backups(&self) -> bool {
        self.purge_backups.unwrap_or(true)
    }

    /// The fields of `spec.medusa` that are set and that Federator does not act on yet.
    pub fn fields_not_acted_on(&self) -> Vec<String> {
        let medusa = self;
        let mut fields = Vec::new();
        if medusa.certificates_secret_ref.as_ref().is_some_and(|r| !r.name.is_empty()) {
            fields.push("spec.medusa.certificatesSecretRef (Medusa connects without TLS)".into());
        }
        if medusa.client_encryption_stores.is_some() {
            fields.push("spec.medusa.clientEncryptionStores (Medusa connects without TLS)".into());
        }
        if medusa.service_properties.as_ref().is_some_and(|s| s.encryption.is_some()) {
            fields.push(
                "spec.medusa.serviceProperties.encryption (Medusa's gRPC stays plain)".to_string(),
            );
        }
        if medusa.storage_properties.as_ref().is_some_and(|s| s.pod_storage.is_some()) {
            fields
                .push("spec.medusa.storageProperties.podStorage (no backup volume is made)".into());
        }
        let has_handler = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
            p.as_ref().is_some_and(|p| {
                p.exec.is_some()
                    || p.grpc.is_some()
                    || p.http_get.is_some()
                    || p.tcp_socket.is_some()
            })
        };
        for (field, probe) in [
            ("readinessProbe", &medusa.readiness_probe),
            ("livenessProbe", &medusa.liveness_probe),
        ] {
            if has_handler(probe) {
                fields.push(format!(
                    "spec.medusa.{field} handler (Medusa's probe keeps grpc_health_probe; only its timings apply)"
                ));
            }
        }
        fields
    }
}

/// The storage backend of backups (upstream `Storage`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MedusaStorage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_provider: Option<StorageProvider>,
    /// role-based or credential-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_type: Option<CredentialsType>,
    /// Secret holding the storage provider's credentials file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_secret_ref: Option<SecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub bucket_name: Option<String>,
    /// Top-level folder in the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub prefix: Option<String>,
    /// Age in days after which the purge deletes a backup; 0: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_DAYS))]
    pub max_backup_age: Option<i32>,
    /// Backups the purge keeps; 0: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_BACKUP_COUNT))]
    pub max_backup_count: Option<i32>,
    /// AWS profile used for authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub api_profile: Option<String>,
    /// Upload bandwidth limit, e.g. `50MB/s` (upstream's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub transfer_max_bandwidth: Option<String>,
    /// Uploads run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_CONCURRENT_TRANSFERS))]
    pub concurrent_transfers: Option<i32>,
    /// File size in bytes above which the provider's multi-part upload is used (upstream's
    /// default: 104857600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_MULTI_PART_UPLOAD_THRESHOLD))]
    pub multi_part_upload_threshold: Option<i64>,
    /// Host of the storage backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub host: Option<String>,
    /// Region of the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub region: Option<String>,
    /// Port of the storage backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_PORT))]
    pub port: Option<i32>,
    /// Connect to the storage backend with TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
    /// With TLS, verify the backend's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_verify: Option<bool>,
    /// Days an orphan file is kept before the purge may delete it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_DAYS))]
    pub backup_grace_period_in_days: Option<i32>,
    /// The volume of the `local` storage provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_storage: Option<PodStorageSettings>,
}

impl MedusaStorage {
    /// These settings over `base` (a MedusaConfiguration's), as upstream's
    /// `goalesce.DeepMerge(base, cluster)`: every field set here wins, nested ones field by field;
    /// the others come from `base`.
    pub fn merged_over(&self, base: &MedusaStorage) -> MedusaStorage {
        fn overlay(base: &mut serde_json::Value, top: serde_json::Value) {
            match (base, top) {
                (serde_json::Value::Object(base), serde_json::Value::Object(top)) => {
                    for (key, value) in top {
                        overlay(base.entry(key).or_insert(serde_json::Value::Null), value);
                    }
                }
                (base, top) => *base = top,
            }
        }
        let mut merged = serde_json::to_value(base).unwrap_or_default();
        overlay(&mut merged, serde_json::to_value(self).unwrap_or_default());
        serde_json::from_value(merged).unwrap_or_else(|_| self.clone())
    }
}

/// Storage backends Medusa supports.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum StorageProvider {
    #[serde(rename = "google_storage")]
    GoogleStorage,
    #[serde(rename = "azure_blobs")]
    AzureBlobs,
    #[serde(rename = "s3")]
    S3,
    #[serde(rename = "s3_compatible")]
    S3Compatible,
    #[serde(rename = "s3_rgw")]
    S3Rgw,
    #[serde(rename = "ibm_storage")]
    IbmStorage,
}

/// How Medusa authenticates to the storage backend.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CredentialsType {
    #[serde(rename = "role-based")]
    RoleBased,
    #[serde(rename = "credential-based")]
    CredentialBased,
}

/// The volume backups go to with the local storage provider.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodStorageSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub storage_class_name: Option<String>,
    /// Size of the volume (upstream's default: 10Gi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,
    /// Access modes of the volume (ReadWriteOnce, ReadOnlyMany, ReadWriteMany,
    /// ReadWriteOncePod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4))]
    pub access_modes: Option<Vec<String>>,
}

/// Medusa's gRPC service (upstream `Service`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MedusaService {
    /// Port Medusa's gRPC server listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_PORT))]
    pub grpc_port: Option<i32>,
    /// mTLS for the gRPC server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<GrpcEncryption>,
}

/// Secrets of the gRPC server's and its clients' certificates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrpcEncryption {
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub client_secret_name: String,
    #[schemars(length(max = MAX_NAME_LENGTH))]
    pub server_secret_name: String,
}

/// Kind of a backup: only the files not in the previous backup, or all.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupType {
    #[default]
    Differential,
    Full,
}

#[cfg(test)]
mod tests {
    use super::restore_job::MedusaRestoreJob;
    use super::task::MedusaOperation;
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cluster_template_as_upstream_writes_it_deserializes() {
        let template: MedusaClusterTemplate = serde_json::from_value(json!({
            "containerImage": {"registry": "docker.io", "repository": "k8ssandra", "name": "medusa", "tag": "0.22.0"},
            "storageProperties": {
                "storageProvider": "s3_compatible", "credentialsType": "credential-based",
                "storageSecretRef": {"name": "medusa-bucket-key"}, "bucketName": "k8ssandra-medusa",
                "prefix": "test", "host": "minio.minio.svc.cluster.local", "port": 9000,
                "secure": false, "sslVerify": false, "maxBackupAge": 7, "maxBackupCount": 3,
                "concurrentTransfers": 2, "multiPartUploadThreshold": 104857600,
                "transferMaxBandwidth": "50MB/s", "backupGracePeriodInDays": 10,
                "podStorage": {"storageClassName": "standard", "size": "10Gi", "accessModes": ["ReadWriteOnce"]}
            },
            "serviceProperties": {"grpcPort": 50051, "encryption": {"clientSecretName": "c", "serverSecretName": "s"}},
            "cassandraUserSecretRef": {"name": "medusa-user"},
            "medusaConfigurationRef": {"name": "config1"},
            "readinessProbe": {"periodSeconds": 10},
            "containerResources": {"requests": {"cpu": "100m"}}
        }))
        .expect("upstream shape");
        let storage = template.storage_properties.clone().unwrap_or_default();
        assert_eq!(
            storage.storage_provider,
            Some(StorageProvider::S3Compatible)
        );
        assert_eq!(
            storage.credentials_type,
            Some(CredentialsType::CredentialBased)
        );
        assert_eq!(storage.port, Some(9000));
        assert_eq!(
            storage.pod_storage.and_then(|p| p.size).map(|q| q.0),
            Some("10Gi".to_string())
        );
        assert!(template.purge_backups(), "purgeBackups defaults to true");
    }

    #[test]
    fn an_unknown_storage_provider_or_operation_is_an_error_not_a_panic() {
        let storage = serde_json::from_value::<MedusaStorage>(json!({"storageProvider": "s4"}));
        assert!(storage.is_err());
        let operation = serde_json::from_value::<MedusaOperation>(json!("verify"));
        assert!(operation.is_err());
        assert_eq!(
            serde_json::from_value::<MedusaOperation>(json!("prepare_restore")).ok(),
            Some(MedusaOperation::PrepareRestore)
        );
    }

    #[test]
    fn a_backup_job_without_a_type_is_differential() {
        let job: MedusaBackupJob = serde_json::from_value(json!({
            "apiVersion": "medusa.k8ssandra.io/v1alpha1", "kind": "MedusaBackupJob",
            "metadata": {"name": "backup1"}, "spec": {"cassandraDatacenter": "dc1"}
        }))
        .expect("minimal backup job");
        assert_eq!(job.spec.backup_type(), BackupType::Differential);
    }

    #[test]
    fn a_schedule_without_an_operation_type_backs_up() {
        let schedule: MedusaBackupSchedule = serde_json::from_value(json!({
            "apiVersion": "medusa.k8ssandra.io/v1alpha1", "kind": "MedusaBackupSchedule",
            "metadata": {"name": "nightly"},
            "spec": {"cronSchedule": "0 2 * * *", "backupSpec": {"cassandraDatacenter": "dc1"}}
        }))
        .expect("minimal schedule");
        assert_eq!(
            schedule.spec.operation_type(),
            backup_schedule::ScheduledOperation::Backup
        );
        assert_eq!(
            schedule.spec.backup_spec.backup_type(),
            BackupType::Differential
        );
    }

    #[test]
    fn a_restore_status_keeps_medusas_snake_case_mapping() {
        let restore: MedusaRestoreJob = serde_json::from_value(json!({
            "apiVersion": "medusa.k8ssandra.io/v1alpha1", "kind": "MedusaRestoreJob",
            "metadata": {"name": "restore1"},
            "spec": {"backup": "backup1", "cassandraDatacenter": "dc1"},
            "status": {"restoreKey": "k", "restoreMapping": {"in_place": true,
                "host_map": {"pod-0": {"source": ["pod-0"], "seed": true}}}}
        }))
        .expect("restore with mapping");
        let reserialized = serde_json::to_value(&restore).expect("serializes");
        assert_eq!(
            reserialized["status"]["restoreMapping"]["host_map"]["pod-0"]["seed"],
            json!(true)
        );
        assert_eq!(
            reserialized["status"]["restoreMapping"]["in_place"],
            json!(true)
        );
    }
}
