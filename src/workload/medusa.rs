//! Medusa beside every Cassandra node, as k8ssandra-operator adds it (`pkg/medusa/reconcile.go`):
//! the `medusa` container (gRPC on port 50051 unless `serviceProperties.grpcPort` says
//! otherwise), the `medusa-restore` init container, their volumes, and the `medusa.ini` each
//! datacenter's pods mount at `/etc/medusa`. Pure: the plan calls these.
//!
//! One difference from upstream: medusa.ini lives in a ConfigMap per datacenter
//! (`<cluster>-<dc>-medusa`, [`config_map_name`]), not one per cluster and namespace
//! (`<cluster>-medusa`): its `cassandra_url` depends on the datacenter's Management API
//! authentication, and upstream's single ConfigMap takes the last datacenter's. The volume
//! keeps upstream's name.

use serde_json::{Value, json};

use crate::api::cassdc::ManagementApiAuth;
use crate::api::medusa::MedusaClusterTemplate;
use crate::api::shared::ContainerImage;

pub const MEDUSA_CONTAINER: &str = "medusa";
pub const RESTORE_INIT_CONTAINER: &str = "medusa-restore";
/// Medusa's gRPC port in k8ssandra (`DefaultMedusaPort`).
pub const DEFAULT_GRPC_PORT: u16 = 50051;
/// The datacenter annotation naming a gRPC port other than the default, as upstream sets it;
/// the backup controller reads it.
pub const GRPC_PORT_ANNOTATION: &str = "medusa.k8ssandra.io/grpc-port";
/// Key of the configuration in the ConfigMap.
pub const MEDUSA_INI_KEY: &str = "medusa.ini";
const CONFIG_MOUNT: &str = "/etc/medusa";
const SECRETS_MOUNT: &str = "/etc/medusa-secrets";
const MGMT_ENCRYPTION_VOLUME: &str = "mgmt-encryption";
const PODINFO_VOLUME: &str = "podinfo";
const TMP_VOLUME: &str = "medusa-tmp";

/// Upstream's default image (`config/cass-operator/imageconfig/fragments/medusa.yaml`).
pub fn default_image() -> ContainerImage {
    ContainerImage {
        registry: Some("docker.io".into()),
        repository: Some("k8ssandra".into()),
        name: Some("medusa".into()),
        tag: Some("0.29.1".into()),
        ..Default::default()
    }
}

/// The ConfigMap of a datacenter's medusa.ini (named like its Vector ConfigMap: the Cassandra
/// cluster and datacenter names, cleaned for Kubernetes).
pub fn config_map_name(cassandra_cluster: &str, cassandra_datacenter: &str) -> String {
    use super::labels::clean_for_kubernetes;
    clean_for_kubernetes(&format!(
        "{}-{cassandra_datacenter}-medusa",
        clean_for_kubernetes(cassandra_cluster)
    ))
}

/// The daily purge schedule's name (upstream's `MedusaPurgeScheduleName`):
/// `<cluster>-<dc>-medusa-purge`, from the Cassandra cluster and datacenter names.
pub fn purge_schedule_name(cassandra_cluster: &str, cassandra_datacenter: &str) -> String {
    use super::labels::clean_for_kubernetes;
    clean_for_kubernetes(&format!(
        "{}-{cassandra_datacenter}-medusa-purge",
        clean_for_kubernetes(cassandra_cluster)
    ))
}

/// When the daily purge runs (upstream's cron): midnight UTC.
pub const PURGE_CRON_SCHEDULE: &str = "0 0 * * *";

/// The daily purge schedule of a datacenter whose `spec.medusa.purgeBackups` is not false, as
/// upstream's `createPurgeSchedule`: a MedusaBackupSchedule `operationType: purge` on the
/// CassandraDatacenter `datacenter` (its object name), in `metadata`'s namespace. None when
/// purging is off.
pub fn purge_schedule(
    medusa: &MedusaClusterTemplate,
    metadata: kube::api::ObjectMeta,
    datacenter: &str,
) -> Option<crate::api::medusa::MedusaBackupSchedule> {
    use crate::api::medusa::backup_job::MedusaBackupJobSpec;
    use crate::api::medusa::backup_schedule::{MedusaBackupScheduleSpec, ScheduledOperation};
    if !medusa.purge_backups() {
        return None;
    }
    Some(crate::api::medusa::MedusaBackupSchedule {
        metadata,
        spec: MedusaBackupScheduleSpec {
            cron_schedule: PURGE_CRON_SCHEDULE.to_string(),
            disabled: None,
            backup_spec: MedusaBackupJobSpec {
                cassandra_datacenter: datacenter.to_string(),
                backup_type: None,
            },
            concurrency_policy: None,
            operation_type: Some(ScheduledOperation::Purge),
        },
        status: None,
    })
}

/// The volume holding medusa.ini (upstream's name).
pub fn config_volume_name(k8c_name: &str) -> String {
    format!("{k8c_name}-medusa")
}

/// The Secret of Medusa's CQL role: the ref's, else `<cluster>-medusa`, generated.
pub fn cql_user_secret_name(medusa: &MedusaClusterTemplate, k8c_name: &str) -> String {
    medusa
        .cassandra_user_secret_ref
        .as_ref()
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("{k8c_name}-medusa"))
}

/// The Secret with the storage backend's credentials, when named.
pub fn storage_secret_name(medusa: &MedusaClusterTemplate) -> Option<String> {
    let storage = medusa.storage_properties.as_ref()?;
    storage.storage_secret_ref.as_ref().map(|r| r.name.clone()).filter(|n| !n.is_empty())
}

/// The gRPC port Medusa listens on.
pub fn grpc_port(medusa: &MedusaClusterTemplate) -> u16 {
    medusa
        .service_properties
        .as_ref()
        .and_then(|s| s.grpc_port)
        .filter(|p| *p != 0)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(DEFAULT_GRPC_PORT)
}

fn manual_auth(auth: Option<&ManagementApiAuth>) -> Option<&str> {
    auth?.manual.as_ref().map(|m| m.client_secret_name.as_str())
}

/// Upstream refuses a storage Secret with role-based credentials, and no Secret without them.
pub fn check_storage_credentials(medusa: &MedusaClusterTemplate) -> Result<(), String> {
    use crate::api::medusa::CredentialsType;
    let role_based = medusa.storage_properties.as_ref().and_then(|s| s.credentials_type)
        == Some(CredentialsType::RoleBased);
    match (storage_secret_name(medusa), role_based) {
        (None, false) => Err(
            "spec.medusa.storageProperties.storageSecretRef is required unless credentialsType is role-based"
                .into(),
        ),
        (Some(secret), true) => Err(format!(
            "spec.medusa.storageProperties: a storage Secret ({secret}) cannot be used with role-based credentials"
        )),
        _ => Ok(()),
    }
}

/// medusa.ini as upstream's template writes it, for the datacenter whose Management API
/// authentication is `auth`. `k8c_name` is the default prefix.
pub fn medusa_ini(
    medusa: &MedusaClusterTemplate,
    k8c_name: &str,
    auth: Option<&ManagementApiAuth>,
) -> String {
    let storage = medusa.storage_properties.clone().unwrap_or_default();
    let provider = storage
        .storage_provider
        .and_then(|p| serde_json::to_value(p).ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut lines = vec![
        "[cassandra]".to_string(),
        "use_sudo = false".to_string(),
        String::new(),
        "[storage]".to_string(),
        "use_sudo_for_restore = false".to_string(),
        format!("storage_provider = {provider}"),
        format!(
            "bucket_name = {}",
            storage.bucket_name.clone().unwrap_or_default()
        ),
    ];
    if storage_secret_name(medusa).is_some() {
        lines.push(format!("key_file = {SECRETS_MOUNT}/credentials"));
    }
    let prefix = storage.prefix.clone().filter(|p| !p.is_empty());
    lines.push(format!(
        "prefix = {}",
        prefix.as_deref().unwrap_or(k8c_name)
    ));
    lines.push(format!(
        "max_backup_age = {}",
        storage.max_backup_age.unwrap_or(0)
    ));
    lines.push(format!(
        "max_backup_count = {}",
        storage.max_backup_count.unwrap_or(0)
    ));
    let optional = |lines: &mut Vec<String>, key: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.is_empty() && v != "0") {
            lines.push(format!("{key} = {value}"));
        }
    };
    optional(&mut lines, "region", storage.region.clone());
    optional(&mut lines, "host", storage.host.clone());
    optional(&mut lines, "port", storage.port.map(|p| p.to_string()));
    let python_bool = |b: Option<bool>| if b.unwrap_or(false) { "True" } else { "False" };
    lines.push(format!("secure = {}", python_bool(storage.secure)));
    lines.push(format!("ssl_verify = {}", python_bool(storage.ssl_verify)));
    optional(
        &mut lines,
        "backup_grace_period_in_days",
        storage.backup_grace_period_in_days.map(|d| d.to_string()),
    );
    optional(&mut lines, "api_profile", storage.api_profile.clone());
    optional(
        &mut lines,
        "transfer_max_bandwidth",
        storage.transfer_max_bandwidth.clone(),
    );
    // Upstream writes 1 when none is set.
    let concurrent = storage.concurrent_transfers.filter(|c| *c != 0).unwrap_or(1);
    lines.push(format!("concurrent_transfers = {concurrent}"));
    optional(
        &mut lines,
        "multi_part_upload_threshold",
        storage.multi_part_upload_threshold.map(|t| t.to_string()),
    );
    lines.extend([
        String::new(),
        "[grpc]".to_string(),
        "enabled = 1".to_string(),
    ]);
    if let Some(port) = medusa.service_properties.as_ref().and_then(|s| s.grpc_port)
        && port != 0
    {
        lines.push(format!("port = {port}"));
    }
    lines.extend([
        String::new(),
        "[logging]".to_string(),
        "level = DEBUG".to_string(),
        String::new(),
        "[kubernetes]".to_string(),
        "use_mgmt_api = 1".to_string(),
        "enabled = 1".to_string(),
    ]);
    if manual_auth(auth).is_some() {
        lines.extend([
            "cassandra_url = https://127.0.0.1:8080/api/v0/ops/node/snapshots".to_string(),
            "ca_cert = /etc/encryption/mgmt/ca.crt".to_string(),
            "tls_cert = /etc/encryption/mgmt/tls.crt".to_string(),
            "tls_key = /etc/encryption/mgmt/tls.key".to_string(),
        ]);
    } else {
        lines.push("cassandra_url = http://127.0.0.1:8080/api/v0/ops/node/snapshots".to_string());
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// What the pod template of a datacenter with Medusa gets.
#[derive(Clone, Debug, PartialEq)]
pub struct MedusaPods {
    /// The `medusa` container.
    pub container: Value,
    /// The `medusa-restore` init container (after `server-config-init`, as upstream).
    pub init_container: Value,
    pub volumes: Vec<Value>,
    /// `containerImage.pullSecretRef`: the pod pulls Medusa's image with it.
    pub image_pull_secret: Option<String>,
}

/// The containers and volumes of `medusa` for a datacenter whose medusa.ini is in ConfigMap
/// `config_map`. Without external secrets, Medusa's CQL credentials come from its Secret.
pub fn pods(
    medusa: &MedusaClusterTemplate,
    k8c_name: &str,
    config_map: &str,
    auth: Option<&ManagementApiAuth>,
    external_secrets: bool,
) -> MedusaPods {
    let image = medusa.container_image.clone().unwrap_or_default();
    let reference = image.reference_or(&default_image());
    let pull_policy = image.pull_policy.and_then(|p| serde_json::to_value(p).ok());
    let mounts = volume_mounts(medusa, k8c_name, auth);
    let container = |name: &str, mode: &str, resources: Value| {
        let mut c = json!({
            "name": name,
            "image": reference,
            "env": env(medusa, k8c_name, external_secrets, mode),
            "volumeMounts": mounts,
            "resources": resources,
        });
        if let Some(policy) = &pull_policy {
            c["imagePullPolicy"] = policy.clone();
        }
        if let Some(context) =
            medusa.security_context.as_ref().and_then(|s| serde_json::to_value(s).ok())
        {
            c["securityContext"] = context;
        }
        c
    };
    let resources = |own: &Option<k8s_openapi::api::core::v1::ResourceRequirements>| {
        own.as_ref().and_then(|r| serde_json::to_value(r).ok()).unwrap_or_else(
            || json!({"requests": {"cpu": "100m", "memory": "100Mi"}, "limits": {"memory": "8Gi"}}),
        )
    };
    let port = grpc_port(medusa);
    let mut main = container(
        MEDUSA_CONTAINER,
        "GRPC",
        resources(&medusa.container_resources),
    );
    main["ports"] = json!([{"name": "grpc", "containerPort": port, "protocol": "TCP"}]);
    main["readinessProbe"] = probe(medusa.readiness_probe.as_ref(), port);
    main["livenessProbe"] = probe(medusa.liveness_probe.as_ref(), port);
    let init = container(
        RESTORE_INIT_CONTAINER,
        "RESTORE",
        resources(&medusa.init_container_resources),
    );

    let mut volumes = vec![json!({
        "name": config_volume_name(k8c_name), "configMap": {"name": config_map}
    })];
    if let Some(secret) = storage_secret_name(medusa) {
        volumes.push(json!({"name": secret, "secret": {"secretName": secret}}));
    }
    volumes.push(json!({
        "name": PODINFO_VOLUME,
        "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}
    }));
    if let Some(client_secret) = manual_auth(auth) {
        volumes.push(json!({
            "name": MGMT_ENCRYPTION_VOLUME, "secret": {"secretName": client_secret}
        }));
    }
    volumes.push(json!({"name": TMP_VOLUME, "emptyDir": {}}));
    MedusaPods {
        container: main,
        init_container: init,
        volumes,
        image_pull_secret: image
            .pull_secret_ref
            .as_ref()
            .map(|secret| secret.name.clone())
            .filter(|name| !name.is_empty()),
    }
}

/// Upstream's default probe (`grpc_health_probe` on the port), with the timings the user set;
/// the handler stays upstream's (a changed handler is reported as not acted on).
fn probe(configured: Option<&k8s_openapi::api::core::v1::Probe>, port: u16) -> Value {
    let mut probe = json!({
        "exec": {"command": ["/bin/grpc_health_probe", format!("--addr=:{port}")]},
        "initialDelaySeconds": 10,
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 10,
    });
    if let Some(own) = configured {
        let timings = [
            ("initialDelaySeconds", own.initial_delay_seconds),
            ("timeoutSeconds", own.timeout_seconds),
            ("periodSeconds", own.period_seconds),
            ("successThreshold", own.success_threshold),
            ("failureThreshold", own.failure_threshold),
        ];
        for (key, value) in timings {
            if let Some(value) = value.filter(|v| *v != 0) {
                probe[key] = json!(value);
            }
        }
        if let Some(grace) = own.termination_grace_period_seconds {
            probe["terminationGracePeriodSeconds"] = json!(grace);
        }
    }
    probe
}

fn volume_mounts(
    medusa: &MedusaClusterTemplate,
    k8c_name: &str,
    auth: Option<&ManagementApiAuth>,
) -> Vec<Value> {
    let mut mounts = vec![
        json!({"name": "server-config", "mountPath": "/etc/cassandra"}),
        json!({"name": "server-data", "mountPath": "/var/lib/cassandra"}),
        json!({"name": config_volume_name(k8c_name), "mountPath": CONFIG_MOUNT}),
        json!({"name": PODINFO_VOLUME, "mountPath": "/etc/podinfo"}),
        json!({"name": TMP_VOLUME, "mountPath": "/tmp"}),
    ];
    if let Some(secret) = storage_secret_name(medusa) {
        mounts.push(json!({"name": secret, "mountPath": SECRETS_MOUNT}));
    }
    if manual_auth(auth).is_some() {
        mounts.push(json!({"name": MGMT_ENCRYPTION_VOLUME, "mountPath": "/etc/encryption/mgmt"}));
    }
    mounts
}

fn env(
    medusa: &MedusaClusterTemplate,
    k8c_name: &str,
    external_secrets: bool,
    mode: &str,
) -> Vec<Value> {
    let mut env = vec![
        json!({"name": "MEDUSA_MODE", "value": mode}),
        json!({"name": "MEDUSA_TMP_DIR", "value": "/var/lib/cassandra"}),
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
    ];
    if !external_secrets {
        let secret = cql_user_secret_name(medusa, k8c_name);
        for (name, key) in [("CQL_USERNAME", "username"), ("CQL_PASSWORD", "password")] {
            env.push(json!({
                "name": name,
                "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}
            }));
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::cassdc::ManualManagementApiAuth;

    fn template(value: Value) -> MedusaClusterTemplate {
        serde_json::from_value(value).expect("medusa template")
    }

    fn s3() -> MedusaClusterTemplate {
        template(json!({
            "storageProperties": {
                "storageProvider": "s3", "bucketName": "backups",
                "storageSecretRef": {"name": "medusa-bucket-key"},
                "maxBackupCount": 3, "region": "eu-west-1"
            }
        }))
    }

    #[test]
    fn medusa_ini_says_what_upstreams_template_says() {
        let ini = medusa_ini(&s3(), "demo", None);
        for line in [
            "[storage]",
            "storage_provider = s3",
            "bucket_name = backups",
            "key_file = /etc/medusa-secrets/credentials",
            "prefix = demo",
            "max_backup_age = 0",
            "max_backup_count = 3",
            "region = eu-west-1",
            "secure = False",
            "ssl_verify = False",
            "concurrent_transfers = 1",
            "[grpc]",
            "enabled = 1",
            "cassandra_url = http://127.0.0.1:8080/api/v0/ops/node/snapshots",
        ] {
            assert!(ini.lines().any(|l| l == line), "{line} missing in\n{ini}");
        }
        assert!(!ini.contains("host ="), "{ini}");
        assert!(!ini.contains("port ="), "no grpc port unless set: {ini}");
    }

    #[test]
    fn medusa_ini_with_mutual_tls_management_api_uses_https_and_the_client_certificate() {
        let auth = ManagementApiAuth {
            manual: Some(ManualManagementApiAuth {
                client_secret_name: "mgmt-client".into(),
                server_secret_name: "mgmt-server".into(),
                skip_secret_validation: None,
            }),
            ..Default::default()
        };
        let ini = medusa_ini(&s3(), "demo", Some(&auth));
        assert!(
            ini.contains("cassandra_url = https://127.0.0.1:8080"),
            "{ini}"
        );
        assert!(
            ini.contains("tls_key = /etc/encryption/mgmt/tls.key"),
            "{ini}"
        );
        let pods = pods(&s3(), "demo", "demo-dc1-medusa", Some(&auth), false);
        assert!(pods.volumes.iter().any(|v| v["secret"]["secretName"] == "mgmt-client"));
    }

    #[test]
    fn the_medusa_container_serves_grpc_with_upstreams_environment_and_mounts() {
        let pods = pods(&s3(), "demo", "demo-dc1-medusa", None, false);
        let c = &pods.container;
        assert_eq!(c["name"], "medusa");
        assert_eq!(c["image"], "docker.io/k8ssandra/medusa:0.29.1");
        assert_eq!(c["ports"][0]["containerPort"], 50051);
        let env: Vec<&str> =
            c["env"].as_array().into_iter().flatten().filter_map(|e| e["name"].as_str()).collect();
        assert_eq!(
            env,
            [
                "MEDUSA_MODE",
                "MEDUSA_TMP_DIR",
                "POD_NAME",
                "CQL_USERNAME",
                "CQL_PASSWORD"
            ]
        );
        assert_eq!(c["env"][0]["value"], "GRPC");
        assert_eq!(
            c["env"][3]["valueFrom"]["secretKeyRef"]["name"],
            "demo-medusa"
        );
        let mount = |path: &str| {
            c["volumeMounts"].as_array().into_iter().flatten().find(|m| m["mountPath"] == path)
        };
        assert_eq!(
            mount("/etc/medusa").map(|m| &m["name"]),
            Some(&json!("demo-medusa"))
        );
        assert_eq!(
            mount("/etc/medusa-secrets").map(|m| &m["name"]),
            Some(&json!("medusa-bucket-key"))
        );
        assert_eq!(
            mount("/var/lib/cassandra").map(|m| &m["name"]),
            Some(&json!("server-data"))
        );
        assert_eq!(pods.init_container["name"], "medusa-restore");
        assert_eq!(pods.init_container["env"][0]["value"], "RESTORE");
        let config = pods.volumes.iter().find(|v| v["name"] == "demo-medusa").expect("config");
        assert_eq!(config["configMap"]["name"], "demo-dc1-medusa");
    }

    #[test]
    fn a_grpc_port_moves_the_container_port_probes_and_ini() {
        let mut medusa = s3();
        medusa.service_properties = Some(crate::api::medusa::MedusaService {
            grpc_port: Some(50055),
            encryption: None,
        });
        let pods = pods(&medusa, "demo", "c", None, true);
        assert_eq!(pods.container["ports"][0]["containerPort"], 50055);
        assert_eq!(
            pods.container["readinessProbe"]["exec"]["command"][1],
            "--addr=:50055"
        );
        assert!(medusa_ini(&medusa, "demo", None).contains("\nport = 50055\n"));
        // External secrets: no CQL credentials from a Secret.
        assert_eq!(pods.container["env"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn storage_credentials_are_checked_as_upstream() {
        assert!(check_storage_credentials(&s3()).is_ok());
        let no_secret = template(json!({"storageProperties": {"bucketName": "b"}}));
        assert!(check_storage_credentials(&no_secret).is_err());
        let role = template(json!({"storageProperties": {"credentialsType": "role-based"}}));
        assert!(check_storage_credentials(&role).is_ok());
    }

    #[test]
    fn the_daily_purge_schedule_follows_purge_backups_with_upstreams_name_and_cron() {
        assert_eq!(
            purge_schedule_name("My Cluster", "dc1"),
            "mycluster-dc1-medusa-purge"
        );
        let meta = kube::api::ObjectMeta {
            name: Some(purge_schedule_name("demo", "dc1")),
            namespace: Some("ns".into()),
            ..Default::default()
        };
        let schedule = purge_schedule(&s3(), meta.clone(), "dc1").expect("purging by default");
        assert_eq!(
            schedule.metadata.name.as_deref(),
            Some("demo-dc1-medusa-purge")
        );
        assert_eq!(schedule.spec.cron_schedule, "0 0 * * *");
        assert_eq!(
            schedule.spec.operation_type(),
            crate::api::medusa::backup_schedule::ScheduledOperation::Purge
        );
        assert_eq!(schedule.spec.backup_spec.cassandra_datacenter, "dc1");
        let off = template(json!({"purgeBackups": false}));
        assert!(purge_schedule(&off, meta, "dc1").is_none());
    }

    #[test]
    fn fields_not_acted_on_name_what_is_set_and_ignored() {
        assert_eq!(
            template(json!({"purgeBackups": false})).fields_not_acted_on(),
            Vec::<String>::new()
        );
        assert_eq!(s3().fields_not_acted_on(), Vec::<String>::new());
        let set = template(json!({
            "purgeBackups": false,
            "certificatesSecretRef": {"name": "certs"},
            "serviceProperties": {"encryption": {"clientSecretName": "c", "serverSecretName": "s"}},
        }));
        assert_eq!(set.fields_not_acted_on().len(), 2);
    }
}
