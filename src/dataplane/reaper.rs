//! Pure: a Reaper and the CassandraDatacenter it repairs → what it runs as (a Deployment with
//! `storageType: cassandra`, a StatefulSet with a volume claim with `local`) and its Service, and
//! the Reaper's status from them. Names, ports, volumes and environment follow
//! k8ssandra-operator's.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy,
    StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction,
    PersistentVolumeClaim, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SecretKeySelector, SecretVolumeSource, Service, ServicePort, ServiceSpec,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use kube::runtime::reflector::ObjectRef;

use super::rollout::Rollout;
use super::vector_agent;
use super::{
    CREATED_BY_LABEL, NAME_LABEL, cluster_labels_of, controller_reference, image_pull_secrets,
    image_reference, parse_image, quantity_bytes,
};
use crate::api::cassdc::CassandraDatacenter;
use crate::api::reaper::{
    DatacenterAvailability, Reaper, ReaperProgress, ReaperStatus, ReaperStorageType,
    ReaperTemplate, RepairScheduleSummary, RepairType,
};
use crate::api::shared::{
    CONDITION_FALSE, CONDITION_TRUE, PART_OF_LABEL, PART_OF_VALUE, SecretRef, new_condition,
    report_fields_not_acted_on, set_condition,
};
use crate::settings::ImageSettings;
use crate::workload::encryption::{Store, Traffic, store_password_source, stores_volumes};
use crate::workload::labels::{COMPONENT_LABEL, clean_for_kubernetes};

/// Label naming the Reaper on its Deployment, pods and Service (the selectors use it).
pub const REAPER_LABEL: &str = "k8ssandra.io/reaper";
pub const COMPONENT_REAPER: &str = "reaper";
const CREATED_BY_VALUE: &str = "reaper-controller";
pub const CONDITION_READY: &str = "Ready";
/// The port of Reaper's admin endpoint (health and metrics) on its pod and Service.
pub const REAPER_ADMIN_PORT: &str = "admin";
/// Where Reaper serves its Prometheus metrics, on the admin port.
pub const REAPER_METRICS_PATH: &str = "/prometheusMetrics";
/// Reaper's JVM heap when the template gives none.
const DEFAULT_HEAP: &str = "2Gi";
const DEFAULT_KEYSPACE: &str = "reaper_db";
/// Where Reaper's `local` (memory) storage keeps its state: the image's
/// `REAPER_MEMORY_STORAGE_DIRECTORY`, on the StatefulSet's volume claim.
pub const LOCAL_STORAGE_PATH: &str = "/var/lib/cassandra-reaper/storage";
/// The StatefulSet's volume claim template (its pod's claim is `reaper-data-<reaper>-0`).
pub const LOCAL_STORAGE_VOLUME: &str = "reaper-data";
/// The init container that migrates Reaper's schema before Reaper starts.
pub const SCHEMA_INIT_CONTAINER: &str = "reaper-schema-init";
/// Where the `httpManagement.keystores` Secret is mounted.
const MANAGEMENT_KEYSTORES_PATH: &str = "/etc/encryption/mgmt";
/// Where the `encryption.serverCertName` Secret is mounted (Reaper's own TLS stores).
pub const SERVER_KEYSTORES_PATH: &str = "/etc/encryption/server";
/// The volume of the `encryption.serverCertName` Secret.
pub const SERVER_KEYSTORES_VOLUME: &str = "server-tls-keystore";

/// `<reaper>-service`.
pub fn service_name(reaper: &Reaper) -> String {
    format!("{}-service", reaper.name_any())
}

fn labels(reaper: &Reaper) -> BTreeMap<String, String> {
    let mut labels = cluster_labels_of(reaper.metadata.labels.as_ref());
    labels.extend([
        (NAME_LABEL.to_string(), "reaper".to_string()),
        (PART_OF_LABEL.to_string(), PART_OF_VALUE.to_string()),
        (COMPONENT_LABEL.to_string(), COMPONENT_REAPER.to_string()),
        (CREATED_BY_LABEL.to_string(), CREATED_BY_VALUE.to_string()),
        (REAPER_LABEL.to_string(), reaper.name_any()),
    ]);
    labels
}

fn selector(reaper: &Reaper) -> BTreeMap<String, String> {
    BTreeMap::from([(REAPER_LABEL.to_string(), reaper.name_any())])
}

/// The label selector of the Reaper's pods (its Service's), as text.
pub fn pod_selector(reaper: &Reaper) -> String {
    format!("{REAPER_LABEL}={}", reaper.name_any())
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn probe(own: Option<&Probe>) -> Probe {
    let mut probe = own.cloned().unwrap_or(Probe {
        initial_delay_seconds: Some(45),
        period_seconds: Some(15),
        ..Probe::default()
    });
    probe.exec = None;
    probe.tcp_socket = None;
    probe.grpc = None;
    probe.http_get = Some(HTTPGetAction {
        path: Some("/healthcheck".into()),
        port: IntOrString::String("admin".into()),
        ..HTTPGetAction::default()
    });
    probe
}

/// `REAPER_CASS_CONTACT_POINTS` for the Reaper `image` runs: Reaper 4 reads objects with a
/// host and port, Reaper 3 a list of hosts (as upstream decides, from the image's tag: `latest`
/// or a tag that is not a version counts as 4).
fn contact_points(image: &str, host: &str) -> String {
    let tag = parse_image(image).tag.unwrap_or_default();
    let version = tag.strip_prefix('v').unwrap_or(&tag);
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    match digits.parse::<u64>() {
        Ok(major) if major < 4 => format!("[{host}]"),
        _ => format!("[{{\"host\": \"{host}\", \"port\": 9042}}]"),
    }
}

/// The Cassandra Service Reaper connects to: cass-operator's `<cluster>-<dc>-service`.
pub fn contact_point(dc: &CassandraDatacenter) -> String {
    let datacenter =
        dc.spec.datacenter_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| dc.name_any());
    format!(
        "{}-{}-service.{}.svc",
        clean_for_kubernetes(&dc.spec.cluster_name),
        clean_for_kubernetes(&datacenter),
        dc.namespace().unwrap_or_default()
    )
}

/// Logins Reaper reads from Secrets by reference (their values never appear in the spec): the
/// CQL user also serves JMX (k8ssandra-operator's JMX secret is deprecated); without a UI user
/// the UI needs no login. With external secrets an injector provides them instead.
fn auth_environment(template: &ReaperTemplate) -> Vec<EnvVar> {
    let mut environment = Vec::new();
    if template.uses_external_secrets() {
        return environment;
    }
    let named = |secret: &Option<SecretRef>| {
        secret.as_ref().map(|s| s.name.clone()).filter(|name| !name.is_empty())
    };
    if let Some(secret) = named(&template.cassandra_user_secret_ref) {
        environment.extend([
            env("REAPER_CASS_AUTH_ENABLED", "true"),
            secret_env("REAPER_CASS_AUTH_USERNAME", &secret, "username"),
            secret_env("REAPER_CASS_AUTH_PASSWORD", &secret, "password"),
            secret_env("REAPER_JMX_AUTH_USERNAME", &secret, "username"),
            secret_env("REAPER_JMX_AUTH_PASSWORD", &secret, "password"),
        ]);
    }
    match named(&template.ui_user_secret_ref) {
        Some(secret) => environment.extend([
            env("REAPER_AUTH_ENABLED", "true"),
            secret_env("REAPER_AUTH_USER", &secret, "username"),
            secret_env("REAPER_AUTH_PASSWORD", &secret, "password"),
        ]),
        None => environment.push(env("REAPER_AUTH_ENABLED", "false")),
    }
    environment
}

/// JVM flags of Reaper's TLS to Cassandra: the client stores, their passwords by reference to
/// the variables [`client_tls`] defines (Kubernetes expands `$(NAME)`), and the driver's SSL.
const CLIENT_TLS_JAVA_OPTS: &str = concat!(
    " -Djavax.net.ssl.keyStore=/mnt/client-keystore/keystore",
    " -Djavax.net.ssl.keyStorePassword=$(REAPER_CLIENT_KEYSTORE_PASSWORD)",
    " -Djavax.net.ssl.trustStore=/mnt/client-truststore/truststore",
    " -Djavax.net.ssl.trustStorePassword=$(REAPER_CLIENT_TRUSTSTORE_PASSWORD)",
    " -Dssl.enable=true",
    " -Ddatastax-java-driver.advanced.ssl-engine-factory.class=com.datastax.oss.driver.internal.core.ssl.DefaultSslEngineFactory",
    " -Ddatastax-java-driver.advanced.ssl-engine-factory.hostname-validation=false"
);

/// What Reaper needs to reach a Cassandra that requires client TLS.
struct ClientTls {
    /// The store passwords as variables read from their Secrets.
    passwords: Vec<EnvVar>,
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
}

/// Reaper's client TLS from `spec.clientEncryptionStores`, as k8ssandra-operator sets it up,
/// except that the passwords are read by the pod, not written into its spec.
fn client_tls(reaper: &Reaper) -> Option<ClientTls> {
    let stores = reaper.spec.client_encryption_stores.as_ref()?;
    if reaper.spec.template.uses_external_secrets() {
        return None;
    }
    let passwords = [
        (Store::Keystore, "REAPER_CLIENT_KEYSTORE_PASSWORD"),
        (Store::Truststore, "REAPER_CLIENT_TRUSTSTORE_PASSWORD"),
    ]
    .map(|(store, variable)| {
        let (secret, key) = store_password_source(stores, store);
        secret_env(variable, &secret, &key)
    })
    .to_vec();
    let (volumes, mounts) = stores_volumes(Traffic::Client, stores);
    Some(ClientTls {
        passwords,
        volumes,
        mounts,
    })
}

/// The name Reaper keeps a cluster under (`Cluster.toSymbolicName` of its Cassandra name);
/// registering under another name is refused by Reaper.
pub fn registered_name(dc: &CassandraDatacenter) -> String {
    crate::cassandra::reaper::cluster_name_in_reaper(&dc.spec.cluster_name)
}

/// The seed Reaper reaches the cluster through: cass-operator's `<cluster>-seed-service`.
pub fn seed_host(dc: &CassandraDatacenter) -> String {
    format!(
        "{}-seed-service.{}",
        clean_for_kubernetes(&dc.spec.cluster_name),
        dc.namespace().unwrap_or_default()
    )
}

/// The UI user's Secret when Reaper's REST API asks for a login that Federator can read
/// (None: no login, or one an injector provides).
pub fn ui_login_secret(reaper: &Reaper) -> Option<String> {
    let template = &reaper.spec.template;
    if template.uses_external_secrets() {
        return None;
    }
    (template.ui_user_secret_ref.as_ref())
        .map(|secret| secret.name.clone())
        .filter(|name| !name.is_empty())
}

/// Upstream's defaults for what `autoScheduling` leaves out.
const AUTO_SCHEDULING_DEFAULTS: [(&str, &str); 4] = [
    ("INITIAL_DELAY_PERIOD", "PT15S"),
    ("PERIOD_BETWEEN_POLLS", "PT10M"),
    ("TIME_BEFORE_FIRST_SCHEDULE", "PT5M"),
    ("SCHEDULE_SPREAD_PERIOD", "PT6H"),
];

/// Reaper's `REAPER_AUTO_SCHEDULING_*` variables for `autoScheduling` (none when it is off).
/// `repairType: AUTO` is adaptive on Cassandra 3.x and incremental from 4.0 on, as upstream.
/// A duration Reaper could not read is refused here: Reaper would not start.
pub fn auto_scheduling_environment(
    template: &ReaperTemplate,
    server_version: &str,
    field: &str,
) -> Result<Vec<EnvVar>, String> {
    let Some(auto) = template.auto_scheduling.as_ref().filter(|a| a.enabled == Some(true)) else {
        return Ok(Vec::new());
    };
    let variable =
        |suffix: &str, value: String| env(&format!("REAPER_AUTO_SCHEDULING_{suffix}"), value);
    let (adaptive, incremental) = match auto.repair_type.unwrap_or_default() {
        RepairType::Regular => (false, false),
        RepairType::Adaptive => (true, false),
        RepairType::Incremental => (false, true),
        RepairType::Auto => {
            let major = server_version.split('.').next().and_then(|m| m.parse::<u32>().ok());
            if server_version.is_empty() || major == Some(3) {
                (true, false)
            } else {
                (false, true)
            }
        }
    };
    let mut environment = vec![
        variable("ENABLED", "true".into()),
        variable("ADAPTIVE", adaptive.to_string()),
        variable("INCREMENTAL", incremental.to_string()),
        variable(
            "PERCENT_UNREPAIRED_THRESHOLD",
            auto.percent_unrepaired_threshold.unwrap_or(10).clamp(0, 100).to_string(),
        ),
    ];
    let given = [
        (&auto.initial_delay_period, "initialDelayPeriod"),
        (&auto.period_between_polls, "periodBetweenPolls"),
        (&auto.time_before_first_schedule, "timeBeforeFirstSchedule"),
        (&auto.schedule_spread_period, "scheduleSpreadPeriod"),
    ];
    for ((value, key), (suffix, default)) in given.into_iter().zip(AUTO_SCHEDULING_DEFAULTS) {
        let value = value.clone().unwrap_or_else(|| default.to_string());
        if !is_reaper_duration(&value) {
            return Err(format!(
                "{field}.autoScheduling.{key}: {value:?} is not an ISO-8601 duration Reaper reads (e.g. PT15S, PT10M, P1D)"
            ));
        }
        environment.push(variable(suffix, value));
    }
    let list = |items: &Vec<String>| format!("[{}]", items.join(", "));
    if let Some(clusters) = &auto.excluded_clusters {
        environment.push(variable("EXCLUDED_CLUSTERS", list(clusters)));
    }
    if let Some(keyspaces) = &auto.excluded_keyspaces {
        environment.push(variable("EXCLUDED_KEYSPACES", list(keyspaces)));
    }
    Ok(environment)
}

/// Java's `Duration.parse` of days, hours, minutes and seconds, with at least one of them.
fn is_reaper_duration(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('P') else {
        return false;
    };
    let (days, time) = rest.split_once('T').map_or((rest, None), |(d, t)| (d, Some(t)));
    let days_valid = days.is_empty() || days.strip_suffix('D').is_some_and(whole_number);
    let time_valid = time.is_none_or(|t| !t.is_empty() && time_fields(t));
    days_valid && time_valid && !(days.is_empty() && time.is_none())
}

fn whole_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// `nH`, `nM`, `n[.f]S`, in that order, each optional.
fn time_fields(mut rest: &str) -> bool {
    for unit in ['H', 'M'] {
        if let Some((number, after)) = rest.split_once(unit) {
            if !whole_number(number) {
                return false;
            }
            rest = after;
        }
    }
    if rest.is_empty() {
        return true;
    }
    let Some(seconds) = rest.strip_suffix('S') else {
        return false;
    };
    let (whole, fraction) = seconds.split_once('.').map_or((seconds, None), |(w, f)| (w, Some(f)));
    whole_number(whole) && fraction.is_none_or(|f| whole_number(f) && f.len() <= 9)
}

/// The pod of a Reaper (its Deployment's or StatefulSet's template); refused when its
/// `autoScheduling` would keep Reaper from starting.
fn pod_template(
    reaper: &Reaper,
    dc: &CassandraDatacenter,
    images: &ImageSettings,
) -> Result<PodTemplateSpec, String> {
    let template = &reaper.spec.template;
    let local = is_local(template);
    let auto_scheduling = auto_scheduling_environment(template, &dc.spec.server_version, "spec")?;
    let heap = template.heap_size.clone().unwrap_or_else(|| Quantity(DEFAULT_HEAP.into()));
    let heap_bytes = quantity_bytes(&heap).unwrap_or(2 * 1024 * 1024 * 1024);
    let availability = match reaper.spec.datacenter_availability.unwrap_or_default() {
        DatacenterAvailability::Local => "LOCAL",
        DatacenterAvailability::All => "ALL",
        DatacenterAvailability::Each => "EACH",
    };
    let local_dc =
        dc.spec.datacenter_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| dc.name_any());
    let storage = match template.storage_type.unwrap_or_default() {
        ReaperStorageType::Cassandra => "cassandra",
        ReaperStorageType::Local => "memory",
    };
    // As upstream, TLS to Cassandra only matters when Reaper keeps its state there.
    let client_tls = if local { None } else { client_tls(reaper) };
    let mut java_opts = format!("-Xms{heap_bytes} -Xmx{heap_bytes}");
    if client_tls.is_some() {
        java_opts.push_str(CLIENT_TLS_JAVA_OPTS);
    }
    let image = image_reference(template.container_image.as_ref(), &images.reaper);
    let mut environment = Vec::new();
    if let Some(tls) = &client_tls {
        // Defined before JAVA_OPTS, which refers to them: the passwords stay in their Secrets.
        environment.extend(tls.passwords.iter().cloned());
    }
    environment.extend([
        env("REAPER_STORAGE_TYPE", storage),
        env("REAPER_ENABLE_DYNAMIC_SEED_LIST", "false"),
        env(
            "REAPER_CASS_CONTACT_POINTS",
            contact_points(&image, &contact_point(dc)),
        ),
        env("REAPER_CASS_CLUSTER_NAME", dc.spec.cluster_name.clone()),
        env("REAPER_DATACENTER_AVAILABILITY", availability),
        env("REAPER_CASS_LOCAL_DC", local_dc),
        env(
            "REAPER_CASS_KEYSPACE",
            template.keyspace.clone().unwrap_or_else(|| DEFAULT_KEYSPACE.into()),
        ),
        env("JAVA_OPTS", java_opts),
        env(
            "REAPER_HTTP_MANAGEMENT_ENABLE",
            template.http_management.as_ref().and_then(|h| h.enabled).unwrap_or(true).to_string(),
        ),
    ]);
    if management_keystores(template).is_some() {
        environment.extend([
            env(
                "REAPER_HTTP_MANAGEMENT_KEYSTORE_PATH",
                format!("{MANAGEMENT_KEYSTORES_PATH}/keystore.jks"),
            ),
            env(
                "REAPER_HTTP_MANAGEMENT_TRUSTSTORE_PATH",
                format!("{MANAGEMENT_KEYSTORES_PATH}/truststore.jks"),
            ),
        ]);
    }
    if let Some(server_tls) = server_tls_environment(template) {
        environment.extend(server_tls);
    }
    if !has_datacenter(dc) {
        environment.retain(|e| !DATACENTER_ENVIRONMENT.contains(&e.name.as_str()));
    }
    if client_tls.is_some() {
        environment.push(env(
            "REAPER_CASS_NATIVE_PROTOCOL_SSL_ENCRYPTION_ENABLED",
            "true",
        ));
    }
    environment.extend(auth_environment(template));
    environment.extend(auto_scheduling);
    environment.extend(template.additional_env_vars.iter().flatten().cloned());
    let (mut volumes, mut mounts) = volumes(template);
    if let Some(tls) = client_tls {
        volumes.extend(tls.volumes);
        mounts.extend(tls.mounts);
    }
    let pull_policy =
        template.container_image.as_ref().and_then(|i| i.pull_policy).map(|p| format!("{p:?}"));
    // The schema is migrated by the init container (unless skipped): Reaper itself never does.
    let init_containers = (template.skip_schema_migration != Some(true)).then(|| {
        vec![Container {
            name: SCHEMA_INIT_CONTAINER.into(),
            image: Some(image.clone()),
            image_pull_policy: pull_policy.clone(),
            args: Some(vec!["schema-migration".into()]),
            env: Some(environment.clone()),
            resources: Some(
                template.init_container_resources.clone().unwrap_or_else(init_resources),
            ),
            security_context: template.init_container_security_context.clone(),
            volume_mounts: Some(mounts.clone()),
            ..Container::default()
        }]
    });
    if !environment.iter().any(|e| e.name == "REAPER_SKIP_SCHEMA_MIGRATION") {
        environment.push(env("REAPER_SKIP_SCHEMA_MIGRATION", "true"));
    }
    let mut pod_labels = labels(reaper);
    if let Some(extra) = template.metadata.as_ref().and_then(|m| m.pods.as_ref()) {
        for (key, value) in extra.labels.iter().flatten() {
            pod_labels.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    let port = |name: &str, number: i32| ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    };
    let container = Container {
        name: "reaper".into(),
        image: Some(image),
        image_pull_policy: pull_policy,
        ports: Some(vec![port("app", 8080), port("admin", 8081)]),
        env: Some(environment),
        resources: template.resources.clone(),
        security_context: template.security_context.clone(),
        liveness_probe: Some(probe(template.liveness_probe.as_ref())),
        readiness_probe: Some(probe(template.readiness_probe.as_ref())),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    let mut pod = PodSpec {
        service_account_name: template.service_account_name.clone(),
        init_containers,
        containers: vec![container],
        volumes: Some(volumes),
        image_pull_secrets: image_pull_secrets(template.container_image.as_ref()),
        tolerations: template.tolerations.clone(),
        affinity: template.affinity.clone().and_then(|a| serde_json::from_value(a).ok()),
        // Upstream's fsGroup, so that Reaper can write to its claim. Upstream's non-root user
        // and read-only root are not defaults here: the default image (Reaper 3.5) runs as a
        // named user and writes its configuration into the image's file system.
        security_context: Some(template.pod_security_context.clone().unwrap_or_else(|| {
            PodSecurityContext {
                fs_group: Some(1000),
                ..PodSecurityContext::default()
            }
        })),
        ..PodSpec::default()
    };
    if let Some(settings) = vector_agent::enabled(template.telemetry.as_ref())
        && has_datacenter(dc)
    {
        vector_agent::REAPER.add_to(&mut pod, dc, settings, &images.system_logger);
    }
    Ok(PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            ..ObjectMeta::default()
        }),
        spec: Some(pod),
    })
}

fn is_local(template: &ReaperTemplate) -> bool {
    template.storage_type == Some(ReaperStorageType::Local)
}

/// The Secret of `httpManagement.keystores`, when the management API is used (the default).
fn management_keystores(template: &ReaperTemplate) -> Option<String> {
    let http = template.http_management.as_ref()?;
    if !http.enabled.unwrap_or(true) {
        return None;
    }
    (http.keystores.as_ref()).map(|secret| secret.name.clone()).filter(|name| !name.is_empty())
}

/// The Secret of `encryption.serverCertName`, when Reaper serves its REST API over TLS.
fn server_tls_secret(template: &ReaperTemplate) -> Option<String> {
    template.encryption.as_ref()?.server_secret().map(str::to_string)
}

/// Reaper's TLS on its `app` port, as the image's configure script reads it: the stores of the
/// serverCertName Secret, client certificates required when clientCertName is set, and SNI
/// checks off (clients reach Reaper at addresses its certificate does not name). The admin
/// port, and so the probes, stay plain HTTP.
fn server_tls_environment(template: &ReaperTemplate) -> Option<Vec<EnvVar>> {
    let encryption = template.encryption.as_ref()?;
    encryption.server_secret()?;
    let mut environment = vec![
        env("REAPER_SERVER_TLS_ENABLE", "true"),
        env(
            "REAPER_SERVER_TLS_KEYSTORE_PATH",
            format!("{SERVER_KEYSTORES_PATH}/keystore.jks"),
        ),
        env(
            "REAPER_SERVER_TLS_TRUSTSTORE_PATH",
            format!("{SERVER_KEYSTORES_PATH}/truststore.jks"),
        ),
    ];
    if encryption.client_secret().is_some() {
        environment.push(env("REAPER_SERVER_TLS_CLIENT_AUTH", "true"));
    }
    environment.push(env("REAPER_SERVER_TLS_DISABLE_SNI", "true"));
    Some(environment)
}

/// What Reaper writes to besides the image's file system (its generated configuration from
/// Reaper 3.7 on, `/tmp`, and with local storage its state and temporary files), the
/// management API's keystores and its own TLS stores; as upstream. With local storage the
/// state's volume is the StatefulSet's claim.
fn volumes(template: &ReaperTemplate) -> (Vec<Volume>, Vec<VolumeMount>) {
    let empty = |name: &str| Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    };
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    };
    let mut volumes = vec![empty("conf"), empty("temp-dir")];
    let mut mounts = vec![
        mount("conf", "/etc/cassandra-reaper/config"),
        mount("temp-dir", "/tmp"),
    ];
    if let Some(secret) = management_keystores(template) {
        volumes.push(Volume {
            name: "management-api-keystore".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(mount("management-api-keystore", MANAGEMENT_KEYSTORES_PATH));
    }
    if let Some(secret) = server_tls_secret(template) {
        volumes.push(Volume {
            name: SERVER_KEYSTORES_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(mount(SERVER_KEYSTORES_VOLUME, SERVER_KEYSTORES_PATH));
    }
    if is_local(template) {
        mounts.push(mount(LOCAL_STORAGE_VOLUME, LOCAL_STORAGE_PATH));
        volumes.push(empty("db-temp-dir"));
        mounts.push(mount("db-temp-dir", "/var/tmp/cassandra-reaper"));
    }
    (volumes, mounts)
}

/// Upstream's requests and limit of the schema init container.
fn init_resources() -> ResourceRequirements {
    let quantity = |q: &str| Quantity(q.into());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), quantity("100m")),
            ("memory".to_string(), quantity("128Mi")),
        ])),
        limits: Some(BTreeMap::from([("memory".to_string(), quantity("512Mi"))])),
        ..ResourceRequirements::default()
    }
}

fn workload_metadata(reaper: &Reaper) -> ObjectMeta {
    ObjectMeta {
        name: Some(reaper.name_any()),
        namespace: reaper.namespace(),
        labels: Some(labels(reaper)),
        owner_references: controller_reference(reaper).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

fn workload_selector(reaper: &Reaper) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector(reaper)),
        ..LabelSelector::default()
    }
}

/// The Reaper's Deployment (one replica: Reaper is not replicated), whatever its storage type;
/// [`workload`] picks the kind.
pub fn deployment(
    reaper: &Reaper,
    dc: &CassandraDatacenter,
    images: &ImageSettings,
) -> Result<Deployment, String> {
    Ok(Deployment {
        metadata: workload_metadata(reaper),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: workload_selector(reaper),
            template: pod_template(reaper, dc, images)?,
            ..DeploymentSpec::default()
        }),
        status: None,
    })
}

/// The StatefulSet of a Reaper with `storageType: local`: one replica (Reaper's state is its
/// own), and a claim from `storageConfig` for the state, deleted with the StatefulSet as
/// upstream. Refused without `storageConfig`.
pub fn stateful_set(
    reaper: &Reaper,
    dc: &CassandraDatacenter,
    images: &ImageSettings,
) -> Result<StatefulSet, String> {
    let claim = (reaper.spec.template.storage_config.clone()).ok_or_else(|| {
        "spec.storageConfig is required with storageType local (the volume claim of Reaper's state)"
            .to_string()
    })?;
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(LOCAL_STORAGE_VOLUME.into()),
            labels: Some(labels(reaper)),
            ..ObjectMeta::default()
        },
        spec: Some(claim),
        status: None,
    };
    Ok(StatefulSet {
        metadata: workload_metadata(reaper),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            selector: workload_selector(reaper),
            template: pod_template(reaper, dc, images)?,
            volume_claim_templates: Some(vec![claim]),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Delete".into()),
                    when_scaled: Some("Delete".into()),
                },
            ),
            ..StatefulSetSpec::default()
        }),
        status: None,
    })
}

/// Whether `live`'s volume claim templates are still those `desired` asks for: Kubernetes
/// refuses to change them once the StatefulSet exists.
pub fn claims_unchanged(desired: &StatefulSet, live: &StatefulSet) -> bool {
    let Ok(mut desired) = crate::apply::applied_body(desired) else {
        return false;
    };
    crate::apply::canonicalize_quantities(&mut desired);
    let Ok(live) = serde_json::to_value(live) else {
        return false;
    };
    let claims = |object: &serde_json::Value| {
        object.pointer("/spec/volumeClaimTemplates").cloned().unwrap_or_default()
    };
    crate::apply::contains(&claims(&live), &claims(&desired))
}

/// What a Reaper runs as: its storage type picks the kind.
#[derive(Clone, Debug)]
pub enum ReaperWorkload {
    Deployment(Deployment),
    StatefulSet(StatefulSet),
}

/// A Deployment with `storageType: cassandra` (Reaper's state is in the cluster), a StatefulSet
/// with `local` ([`stateful_set`]).
pub fn workload(
    reaper: &Reaper,
    dc: &CassandraDatacenter,
    images: &ImageSettings,
) -> Result<ReaperWorkload, String> {
    if is_local(&reaper.spec.template) {
        stateful_set(reaper, dc, images).map(ReaperWorkload::StatefulSet)
    } else {
        deployment(reaper, dc, images).map(ReaperWorkload::Deployment)
    }
}

/// The ConfigMap of Reaper's Vector agent, when it has one.
pub fn vector_config(
    reaper: &Reaper,
    dc: &CassandraDatacenter,
) -> Result<Option<ConfigMap>, crate::workload::vector::VectorError> {
    if !has_datacenter(dc) {
        return Ok(None);
    }
    let telemetry = reaper.spec.template.telemetry.as_ref();
    vector_agent::REAPER.config_map(reaper, labels(reaper), dc, telemetry)
}

/// The Service of Reaper's UI/API (`app`, 8080) and admin endpoint (`admin`, 8081).
pub fn service(reaper: &Reaper) -> Service {
    let port = |name: &str, number: i32| ServicePort {
        name: Some(name.into()),
        port: number,
        protocol: Some("TCP".into()),
        target_port: Some(IntOrString::String(name.into())),
        ..ServicePort::default()
    };
    Service {
        metadata: ObjectMeta {
            name: Some(service_name(reaper)),
            namespace: reaper.namespace(),
            labels: Some(labels(reaper)),
            owner_references: controller_reference(reaper).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            ports: Some(vec![port("app", 8080), port("admin", 8081)]),
            selector: Some(selector(reaper)),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The datacenter the Reaper repairs: `datacenterRef`, in the Reaper's namespace unless it
/// names another.
pub fn datacenter_of(reaper: &Reaper) -> Option<ObjectRef<CassandraDatacenter>> {
    let reference = reaper.spec.datacenter_ref.as_ref()?;
    let namespace = reference
        .namespace
        .clone()
        .filter(|namespace| !namespace.is_empty())
        .or_else(|| reaper.namespace())?;
    Some(ObjectRef::new(&reference.name).within(&namespace))
}

/// What tells Reaper about the Cassandra cluster it stores into (and repairs): left out of
/// the Deployment of a Reaper without a datacenter, as upstream.
const DATACENTER_ENVIRONMENT: [&str; 4] = [
    "REAPER_CASS_CONTACT_POINTS",
    "REAPER_CASS_CLUSTER_NAME",
    "REAPER_CASS_LOCAL_DC",
    "REAPER_CASS_KEYSPACE",
];

/// A Reaper without `spec.datacenterRef` (upstream's control-plane Reaper): it repairs the
/// clusters registered with it (`reaperRef` of K8ssandraClusters) and is next to none.
pub fn is_control_plane(reaper: &Reaper) -> bool {
    (reaper.spec.datacenter_ref.as_ref()).is_none_or(|reference| reference.name.is_empty())
}

/// Why a Reaper without a datacenter cannot run as its spec says; None when it can. Upstream
/// deploys a `cassandra` one with no contact point, which then fails to start.
pub fn control_plane_refusal(reaper: &Reaper) -> Option<String> {
    match reaper.spec.template.storage_type.unwrap_or_default() {
        ReaperStorageType::Local => None,
        ReaperStorageType::Cassandra => Some(
            "spec.storageType is cassandra (the default), which keeps Reaper's state in the datacenter spec.datacenterRef names, and it names none: set spec.storageType: local for a Reaper that serves the clusters registered with it, or set spec.datacenterRef".into(),
        ),
    }
}

/// What a Reaper without a datacenter is built next to: an empty datacenter, as upstream;
/// nothing of it reaches the Deployment.
pub fn no_datacenter() -> CassandraDatacenter {
    CassandraDatacenter::new("", Default::default())
}

fn has_datacenter(dc: &CassandraDatacenter) -> bool {
    !dc.name_any().is_empty()
}

/// Where a Reaper is on its way to repairing its cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// Not deployed: the message says what it waits for.
    Waiting(String),
    /// Deployed; its replica not ready for the current spec yet.
    Deploying(Rollout),
    /// Running, but the cluster is not registered with it yet: the message says why.
    Registering(String),
    /// Running with mutual TLS, but the client certificate Federator must present
    /// (`encryption.clientCertName`) is missing or unusable: the message says which and why.
    ClientCertificateUnusable(String),
    /// Running and repairing the cluster (registered under `cluster`), with its schedules.
    Registered {
        cluster: String,
        schedules: Vec<RepairScheduleSummary>,
    },
    /// Not deployed: its spec cannot work (the message says why).
    Invalid(String),
    /// A Reaper without a datacenter, running: the clusters registered with it (by their
    /// K8ssandraClusters or by hand) and their schedules.
    Serving {
        clusters: Vec<String>,
        schedules: Vec<RepairScheduleSummary>,
    },
}

/// The Reaper's status: Pending while it waits (the message says for what), Deploying until
/// its replica is ready for the current spec, Configuring until the cluster is registered with
/// it, then Running and ready, listing the cluster's repair schedules.
pub fn status(reaper: &Reaper, stage: Stage, now: Time) -> ReaperStatus {
    let previous = reaper.status.clone().unwrap_or_default();
    let mut conditions = previous.conditions.clone().unwrap_or_default();
    let condition = |status: &str, reason: &str, message: String| {
        new_condition(
            CONDITION_READY,
            status,
            reason,
            message,
            reaper.metadata.generation,
            now.clone(),
        )
    };
    let (progress, ready, reported) = match stage {
        Stage::Waiting(waiting) => {
            set_condition(
                &mut conditions,
                condition(CONDITION_FALSE, "Waiting", waiting),
            );
            (ReaperProgress::Pending, false, None)
        }
        Stage::Deploying(rollout) => {
            set_condition(
                &mut conditions,
                condition(
                    CONDITION_FALSE,
                    "Deploying",
                    format!("{}/{} replicas ready", rollout.ready, rollout.desired),
                ),
            );
            (ReaperProgress::Deploying, false, None)
        }
        Stage::Registering(why) => {
            set_condition(
                &mut conditions,
                condition(CONDITION_FALSE, "Registering", why),
            );
            // What was listed stays until Reaper can be asked again.
            (
                ReaperProgress::Configuring,
                false,
                previous.schedules.clone(),
            )
        }
        Stage::ClientCertificateUnusable(why) => {
            set_condition(
                &mut conditions,
                condition(CONDITION_FALSE, "ClientCertificateUnusable", why),
            );
            (
                ReaperProgress::Configuring,
                false,
                previous.schedules.clone(),
            )
        }
        Stage::Registered { cluster, schedules } => {
            let message = format!(
                "cluster {cluster} is registered with Reaper; {} repair schedule(s)",
                schedules.len()
            );
            set_condition(
                &mut conditions,
                condition(CONDITION_TRUE, "Registered", message),
            );
            (ReaperProgress::Running, true, Some(schedules))
        }
        Stage::Invalid(why) => {
            set_condition(
                &mut conditions,
                condition(CONDITION_FALSE, "InvalidSpec", why),
            );
            (ReaperProgress::Pending, false, None)
        }
        Stage::Serving {
            clusters,
            schedules,
        } => {
            let message = match clusters.is_empty() {
                true => "Reaper runs; no cluster is registered with it".to_string(),
                false => format!(
                    "Reaper runs; cluster(s) registered with it: {}; {} repair schedule(s)",
                    clusters.join(", "),
                    schedules.len()
                ),
            };
            set_condition(
                &mut conditions,
                condition(CONDITION_TRUE, "Running", message),
            );
            (ReaperProgress::Running, true, Some(schedules))
        }
    };
    let mut not_acted_on = reaper.spec.template.fields_not_acted_on("spec");
    let template = &reaper.spec.template;
    if is_control_plane(reaper) && vector_agent::enabled(template.telemetry.as_ref()).is_some() {
        not_acted_on.push(
            "spec.telemetry.vector (no Vector agent runs beside a Reaper without a datacenter)"
                .into(),
        );
    }
    report_fields_not_acted_on(
        &mut conditions,
        &not_acted_on,
        reaper.metadata.generation,
        now,
    );
    ReaperStatus {
        progress: Some(progress),
        ready: Some(ready),
        conditions: Some(conditions),
        observed_generation: reaper.metadata.generation,
        schedules: reported,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::cassdc::CassandraDatacenterSpec;
    use crate::api::reaper::{ReaperDatacenterRef, ReaperSpec, ReaperTemplate};
    use crate::api::shared::SecretRef;
    use crate::api::shared::SecretsProvider;

    fn datacenter() -> CassandraDatacenter {
        let spec: CassandraDatacenterSpec = serde_json::from_value(serde_json::json!({
            "clusterName": "demo", "serverType": "cassandra", "serverVersion": "4.1.5",
            "size": 3, "storageConfig": {}
        }))
        .expect("valid datacenter spec");
        let mut dc = CassandraDatacenter::new("dc1", spec);
        dc.metadata.namespace = Some("ns1".into());
        dc
    }

    fn reaper() -> Reaper {
        let mut reaper = Reaper::new(
            "demo-dc1-reaper",
            ReaperSpec {
                datacenter_ref: Some(ReaperDatacenterRef {
                    name: "dc1".into(),
                    namespace: None,
                }),
                datacenter_availability: Some(DatacenterAvailability::Each),
                client_encryption_stores: None,
                template: ReaperTemplate {
                    cassandra_user_secret_ref: Some(SecretRef::new("reaper-cql")),
                    ..Default::default()
                },
            },
        );
        reaper.metadata.namespace = Some("ns1".into());
        reaper.metadata.uid = Some("uid-r".into());
        reaper
    }

    #[test]
    fn a_reaper_follows_the_datacenter_it_names_in_its_own_namespace_unless_it_names_another() {
        let dc = |name: &str, namespace: &str| Some(ObjectRef::new(name).within(namespace));
        let mut reaper = reaper();
        assert_eq!(datacenter_of(&reaper), dc("dc1", "ns1"));
        for (namespace, expected) in [(Some(""), "ns1"), (Some("cassandra"), "cassandra")] {
            if let Some(reference) = reaper.spec.datacenter_ref.as_mut() {
                reference.namespace = namespace.map(str::to_string);
            }
            assert_eq!(datacenter_of(&reaper), dc("dc1", expected));
        }
        reaper.spec.datacenter_ref = None;
        assert_eq!(datacenter_of(&reaper), None);
    }

    fn env_of(deployment: &Deployment) -> Vec<EnvVar> {
        deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .map(|p| p.containers[0].env.clone().unwrap_or_default())
            .unwrap_or_default()
    }

    #[test]
    fn the_pod_pulls_reapers_image_with_the_secret_named() {
        let pull_secrets = |reaper: &Reaper| {
            let built =
                deployment(reaper, &datacenter(), &ImageSettings::default()).expect("deployment");
            let pod = built.spec.and_then(|s| s.template.spec);
            pod.and_then(|p| p.image_pull_secrets)
                .map(|refs| refs.into_iter().map(|r| r.name).collect::<Vec<_>>())
        };
        let mut private = reaper();
        private.spec.template.container_image = Some(crate::api::shared::ContainerImage {
            pull_secret_ref: Some(SecretRef::new("registry")),
            ..Default::default()
        });
        assert_eq!(pull_secrets(&private), Some(vec!["registry".to_string()]));
        assert_eq!(pull_secrets(&reaper()), None);
    }

    #[test]
    fn deployment_points_reaper_at_its_datacenter_and_reads_credentials_from_secrets() {
        let built =
            deployment(&reaper(), &datacenter(), &ImageSettings::default()).expect("deployment");
        assert_eq!(built.name_any(), "demo-dc1-reaper");
        let env = env_of(&built);
        let value = |name: &str| env.iter().find(|e| e.name == name).and_then(|e| e.value.clone());
        assert_eq!(
            value("REAPER_CASS_CONTACT_POINTS").as_deref(),
            Some("[demo-dc1-service.ns1.svc]"),
            "the default image is Reaper 3"
        );
        assert_eq!(
            value("REAPER_DATACENTER_AVAILABILITY").as_deref(),
            Some("EACH")
        );
        assert_eq!(value("REAPER_CASS_LOCAL_DC").as_deref(), Some("dc1"));
        let password =
            env.iter().find(|e| e.name == "REAPER_CASS_AUTH_PASSWORD").expect("password env");
        assert_eq!(password.value, None, "never a literal credential");
        let secret = password
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("secret ref");
        assert_eq!(
            (secret.name.as_str(), secret.key.as_str()),
            ("reaper-cql", "password")
        );
        let owner = &built.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Reaper", "uid-r")
        );
    }

    /// Each login variable: its literal value, or `secret/key` it reads.
    fn logins(template: ReaperTemplate) -> Vec<(String, String)> {
        let mut r = reaper();
        r.spec.template = template;
        env_of(&deployment(&r, &datacenter(), &ImageSettings::default()).expect("deployment"))
            .into_iter()
            .filter(|e| e.name.contains("AUTH"))
            .map(|e| {
                let source = e
                    .value_from
                    .and_then(|v| v.secret_key_ref)
                    .map(|s| format!("{}/{}", s.name, s.key));
                (e.name, e.value.or(source).unwrap_or_default())
            })
            .collect()
    }

    #[test]
    fn the_cql_login_also_serves_jmx_and_no_ui_login_means_an_open_ui() {
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
        };
        assert_eq!(
            logins(ReaperTemplate {
                cassandra_user_secret_ref: Some(SecretRef::new("demo-reaper")),
                ui_user_secret_ref: Some(SecretRef::new("demo-reaper-ui")),
                ..Default::default()
            }),
            pairs(&[
                ("REAPER_CASS_AUTH_ENABLED", "true"),
                ("REAPER_CASS_AUTH_USERNAME", "demo-reaper/username"),
                ("REAPER_CASS_AUTH_PASSWORD", "demo-reaper/password"),
                ("REAPER_JMX_AUTH_USERNAME", "demo-reaper/username"),
                ("REAPER_JMX_AUTH_PASSWORD", "demo-reaper/password"),
                ("REAPER_AUTH_ENABLED", "true"),
                ("REAPER_AUTH_USER", "demo-reaper-ui/username"),
                ("REAPER_AUTH_PASSWORD", "demo-reaper-ui/password"),
            ])
        );
        assert_eq!(
            logins(ReaperTemplate {
                ui_user_secret_ref: Some(SecretRef::new("")),
                ..Default::default()
            }),
            pairs(&[("REAPER_AUTH_ENABLED", "false")])
        );
        assert_eq!(
            logins(ReaperTemplate {
                cassandra_user_secret_ref: Some(SecretRef::new("demo-reaper")),
                secrets_provider: Some(SecretsProvider::External),
                ..Default::default()
            }),
            Vec::<(String, String)>::new(),
            "external secrets are injected into the pod"
        );
    }

    #[test]
    fn client_tls_mounts_the_stores_and_reads_their_passwords_in_the_pod() {
        let mut r = reaper();
        r.spec.client_encryption_stores = serde_json::from_value(serde_json::json!({
            "keystoreSecretRef": {"name": "client-stores"},
            "truststoreSecretRef": {"name": "client-stores"},
            "truststorePasswordSecretRef": {"name": "passwords", "key": "trust"}
        }))
        .ok();
        let built = deployment(&r, &datacenter(), &ImageSettings::default()).expect("deployment");
        let env = env_of(&built);
        let position = |name: &str| env.iter().position(|e| e.name == name);
        let reference = |name: &str| {
            env.iter()
                .find(|e| e.name == name)
                .and_then(|e| e.value_from.clone())
                .and_then(|v| v.secret_key_ref)
                .map(|s| (s.name, s.key))
        };
        assert_eq!(
            reference("REAPER_CLIENT_KEYSTORE_PASSWORD"),
            Some(("client-stores".into(), "keystore-password".into()))
        );
        assert_eq!(
            reference("REAPER_CLIENT_TRUSTSTORE_PASSWORD"),
            Some(("passwords".into(), "trust".into()))
        );
        assert!(
            position("REAPER_CLIENT_KEYSTORE_PASSWORD") < position("JAVA_OPTS"),
            "Kubernetes expands only variables defined before"
        );
        let java = env
            .iter()
            .find(|e| e.name == "JAVA_OPTS")
            .and_then(|e| e.value.clone())
            .unwrap_or_default();
        assert!(
            java.contains("-Djavax.net.ssl.keyStorePassword=$(REAPER_CLIENT_KEYSTORE_PASSWORD)"),
            "{java}"
        );
        assert!(java.contains("-Djavax.net.ssl.trustStore=/mnt/client-truststore/truststore"));
        let pod = built.spec.and_then(|s| s.template.spec).expect("pod spec");
        let volumes: Vec<String> = (pod.volumes.iter().flatten())
            .map(|v| v.name.clone())
            .filter(|name| name.starts_with("client-"))
            .collect();
        assert_eq!(volumes, ["client-keystore", "client-truststore"]);
        let mounts: Vec<String> = (pod.containers[0].volume_mounts.iter().flatten())
            .map(|m| m.mount_path.clone())
            .filter(|path| path.starts_with("/mnt/"))
            .collect();
        assert_eq!(mounts, ["/mnt/client-keystore", "/mnt/client-truststore"]);

        // Without stores: no TLS.
        let plain =
            deployment(&reaper(), &datacenter(), &ImageSettings::default()).expect("deployment");
        assert!(
            !env_of(&plain)
                .iter()
                .any(|e| e.name == "REAPER_CASS_NATIVE_PROTOCOL_SSL_ENCRYPTION_ENABLED")
        );
    }

    #[test]
    fn service_selects_the_reaper_pod_on_app_and_admin_ports() {
        let r = reaper();
        let svc = service(&r);
        assert_eq!(svc.name_any(), "demo-dc1-reaper-service");
        let spec = svc.spec.expect("spec");
        let ports: Vec<(String, i32)> = spec
            .ports
            .into_iter()
            .flatten()
            .map(|p| (p.name.unwrap_or_default(), p.port))
            .collect();
        assert_eq!(
            ports,
            vec![("app".to_string(), 8080), ("admin".to_string(), 8081)]
        );
        let built = deployment(&r, &datacenter(), &ImageSettings::default()).expect("deployment");
        let pod_labels =
            built.spec.and_then(|s| s.template.metadata).and_then(|m| m.labels).expect("labels");
        for (key, value) in spec.selector.expect("selector") {
            assert_eq!(pod_labels.get(&key), Some(&value));
        }
    }

    #[test]
    fn status_is_ready_only_once_the_replica_is() {
        let now = Time(k8s_openapi::jiff::Timestamp::from_second(1_000).expect("time"));
        let r = reaper();
        let pending = status(&r, Stage::Waiting("waiting".into()), now.clone());
        assert_eq!(pending.progress, Some(ReaperProgress::Pending));
        assert!(!pending.is_ready());
        let deploying = Rollout {
            desired: 1,
            replicas: 1,
            observed_current: true,
            ..Rollout::default()
        };
        assert_eq!(
            status(&r, Stage::Deploying(deploying), now.clone()).progress,
            Some(ReaperProgress::Deploying)
        );
        // A running replica is not ready until the cluster is registered with it.
        let registering = status(
            &r,
            Stage::Registering("Reaper refused PUT /cluster/demo (400): no cluster".into()),
            now.clone(),
        );
        assert_eq!(registering.progress, Some(ReaperProgress::Configuring));
        assert!(!registering.is_ready());
        let ready = (registering.conditions.iter().flatten()).find(|c| c.type_ == "Ready");
        assert_eq!(
            ready.map(|c| (c.reason.as_str(), c.message.as_str())),
            Some((
                "Registering",
                "Reaper refused PUT /cluster/demo (400): no cluster"
            ))
        );
        let schedule = RepairScheduleSummary {
            cluster: Some("demo".into()),
            keyspace: "app".into(),
            state: "ACTIVE".into(),
            owner: "auto-scheduling".into(),
            next_activation: Some("2026-12-07T12:00:00Z".into()),
            days_between: Some(7),
        };
        let registered = Stage::Registered {
            cluster: "demo".into(),
            schedules: vec![schedule.clone()],
        };
        let s = status(&r, registered, now.clone());
        assert_eq!(s.progress, Some(ReaperProgress::Running));
        assert!(s.is_ready());
        assert_eq!(s.schedules, Some(vec![schedule.clone()]));
        // Reaper out of reach for a while: what it listed stays.
        let mut r = r;
        r.status = Some(s);
        let unreachable = status(&r, Stage::Registering("no answer".into()), now);
        assert_eq!(unreachable.schedules, Some(vec![schedule]));
    }

    #[test]
    fn reaper_names_the_cluster_as_reaper_does_and_reaches_it_through_its_seed_service() {
        let mut dc = datacenter();
        // Reaper keeps the underscore that cass-operator's Service names turn into a dash.
        dc.spec.cluster_name = "Demo_Cluster".into();
        assert_eq!(registered_name(&dc), "demo_cluster");
        assert_eq!(seed_host(&dc), "demo-cluster-seed-service.ns1");
    }

    fn auto_env(auto: serde_json::Value, version: &str) -> Result<Vec<(String, String)>, String> {
        let template = ReaperTemplate {
            auto_scheduling: Some(serde_json::from_value(auto).expect("autoScheduling")),
            ..Default::default()
        };
        let environment = auto_scheduling_environment(&template, version, "spec.reaper")?;
        Ok(environment.into_iter().map(|e| (e.name, e.value.unwrap_or_default())).collect())
    }

    #[test]
    fn auto_scheduling_configures_reaper_as_upstream_with_its_defaults() {
        let value = |env: &[(String, String)], name: &str| {
            let name = format!("REAPER_AUTO_SCHEDULING_{name}");
            env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
        };
        assert_eq!(
            auto_env(serde_json::json!({"enabled": false}), "4.1.5"),
            Ok(vec![])
        );
        let env = auto_env(
            serde_json::json!({"enabled": true, "excludedKeyspaces": ["audit", "tmp"]}),
            "4.1.5",
        )
        .expect("valid");
        for (name, expected) in [
            ("ENABLED", "true"),
            ("INITIAL_DELAY_PERIOD", "PT15S"),
            ("PERIOD_BETWEEN_POLLS", "PT10M"),
            ("TIME_BEFORE_FIRST_SCHEDULE", "PT5M"),
            ("SCHEDULE_SPREAD_PERIOD", "PT6H"),
            ("PERCENT_UNREPAIRED_THRESHOLD", "10"),
            ("EXCLUDED_KEYSPACES", "[audit, tmp]"),
            // repairType AUTO: incremental from Cassandra 4.0 on.
            ("INCREMENTAL", "true"),
            ("ADAPTIVE", "false"),
        ] {
            assert_eq!(value(&env, name).as_deref(), Some(expected), "{name}");
        }
        assert_eq!(value(&env, "EXCLUDED_CLUSTERS"), None);
        let on_3 = auto_env(serde_json::json!({"enabled": true}), "3.11.17").expect("valid");
        assert_eq!(value(&on_3, "ADAPTIVE").as_deref(), Some("true"));
        assert_eq!(value(&on_3, "INCREMENTAL").as_deref(), Some("false"));
    }

    #[test]
    fn a_duration_reaper_cannot_read_is_refused_with_its_field() {
        for good in ["PT15S", "PT10M", "P1D", "P1DT2H", "PT1H30M", "PT0.5S"] {
            assert!(is_reaper_duration(good), "{good}");
        }
        for bad in [
            "P",
            "PT",
            "15s",
            "PT1.5H",
            "P1W",
            "PT5S1H",
            "PTM",
            "10 minutes",
        ] {
            assert!(!is_reaper_duration(bad), "{bad}");
        }
        let refused = auto_env(
            serde_json::json!({"enabled": true, "periodBetweenPolls": "10m"}),
            "4.1.5",
        );
        assert_eq!(
            refused,
            Err("spec.reaper.autoScheduling.periodBetweenPolls: \"10m\" is not an ISO-8601 duration Reaper reads (e.g. PT15S, PT10M, P1D)".into())
        );
    }

    #[test]
    fn contact_points_are_written_as_the_reaper_version_of_the_image_reads_them() {
        let host = "demo-dc1-service.ns.svc";
        let v4 = format!("[{{\"host\": \"{host}\", \"port\": 9042}}]");
        let v3 = format!("[{host}]");
        for (image, expected) in [
            ("docker.io/thelastpickle/cassandra-reaper:3.5.0", &v3),
            ("cassandra-reaper:3.8.1", &v3),
            ("registry:5000/cassandra-reaper:3.5.0", &v3),
            ("thelastpickle/cassandra-reaper:4.0.0", &v4),
            ("thelastpickle/cassandra-reaper:latest", &v4),
            ("registry:5000/cassandra-reaper", &v4),
            ("cassandra-reaper@sha256:abc", &v4),
        ] {
            assert_eq!(&contact_points(image, host), expected, "{image}");
        }
    }

    #[test]
    fn status_names_the_fields_not_acted_on_until_they_are_removed() {
        let now = Time(k8s_openapi::jiff::Timestamp::from_second(1_000).expect("time"));
        let mut r = reaper();
        r.spec.template.init_container_image = Some(Default::default());
        // Acted on: not reported.
        r.spec.template.encryption = serde_json::from_value(
            serde_json::json!({"serverCertName": "s", "clientCertName": "c"}),
        )
        .ok();
        r.spec.template.skip_schema_migration = Some(true);
        r.spec.template.storage_type = Some(ReaperStorageType::Local);
        let reported = status(&r, Stage::Waiting("waiting".into()), now.clone());
        let condition = (reported.conditions.iter().flatten())
            .find(|c| c.type_ == "FieldsNotActedOn")
            .expect("FieldsNotActedOn condition");
        assert_eq!(condition.status, "True");
        assert!(
            condition.message.contains("spec.initContainerImage"),
            "{}",
            condition.message
        );
        for acted_on in ["encryption", "skipSchemaMigration", "storageType"] {
            assert!(
                !condition.message.contains(acted_on),
                "{}",
                condition.message
            );
        }

        r.status = Some(reported);
        r.spec.template.encryption = None;
        r.spec.template.init_container_image = None;
        let cleared = status(&r, Stage::Waiting("waiting".into()), now);
        assert!(
            !(cleared.conditions.iter().flatten()).any(|c| c.type_ == "FieldsNotActedOn"),
            "{cleared:?}"
        );
    }

    fn local(storage_config: Option<serde_json::Value>) -> Reaper {
        let mut r = reaper();
        r.spec.template.storage_type = Some(ReaperStorageType::Local);
        r.spec.template.storage_config =
            storage_config.map(|c| serde_json::from_value(c).expect("claim spec"));
        r
    }

    fn pod_of(workload: &ReaperWorkload) -> PodSpec {
        let template = match workload {
            ReaperWorkload::Deployment(d) => d.spec.as_ref().map(|s| &s.template),
            ReaperWorkload::StatefulSet(s) => s.spec.as_ref().map(|s| &s.template),
        };
        template.and_then(|t| t.spec.clone()).expect("pod spec")
    }

    fn value_of(container: &Container, name: &str) -> Option<String> {
        let env = container.env.iter().flatten();
        env.filter(|e| e.name == name).map(|e| e.value.clone().unwrap_or_default()).next()
    }

    #[test]
    fn local_storage_runs_one_replica_of_a_statefulset_with_its_claim() {
        let claim = serde_json::json!({
            "storageClassName": "standard", "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "256Mi"}}
        });
        let mut r = local(Some(claim.clone()));
        // TLS to Cassandra is for Cassandra storage only, as upstream.
        r.spec.client_encryption_stores = serde_json::from_value(serde_json::json!({
            "keystoreSecretRef": {"name": "client-stores"},
            "truststoreSecretRef": {"name": "client-stores"}
        }))
        .ok();
        let built = workload(&r, &datacenter(), &ImageSettings::default()).expect("workload");
        let ReaperWorkload::StatefulSet(set) = &built else {
            panic!("a StatefulSet for local storage: {built:?}");
        };
        assert_eq!(set.name_any(), "demo-dc1-reaper");
        let spec = set.spec.as_ref().expect("spec");
        assert_eq!(spec.replicas, Some(1));
        let claims = spec.volume_claim_templates.as_ref().expect("claim templates");
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].metadata.name.as_deref(), Some("reaper-data"));
        assert_eq!(serde_json::to_value(&claims[0].spec).expect("claim"), claim);
        let retention = spec.persistent_volume_claim_retention_policy.as_ref();
        assert_eq!(
            retention.map(|p| (p.when_deleted.as_deref(), p.when_scaled.as_deref())),
            Some((Some("Delete"), Some("Delete")))
        );
        let pod = pod_of(&built);
        let main = &pod.containers[0];
        assert_eq!(
            value_of(main, "REAPER_STORAGE_TYPE").as_deref(),
            Some("memory")
        );
        let mounts: Vec<(&str, &str)> = (main.volume_mounts.iter().flatten())
            .map(|m| (m.name.as_str(), m.mount_path.as_str()))
            .collect();
        assert!(
            mounts.contains(&("reaper-data", "/var/lib/cassandra-reaper/storage")),
            "{mounts:?}"
        );
        assert!(mounts.contains(&("db-temp-dir", "/var/tmp/cassandra-reaper")));
        // The claim's volume is the StatefulSet's to add; no client stores are mounted.
        let volumes: Vec<&str> = pod.volumes.iter().flatten().map(|v| v.name.as_str()).collect();
        assert_eq!(volumes, ["conf", "temp-dir", "db-temp-dir"]);
        assert_eq!(
            value_of(main, "REAPER_CASS_NATIVE_PROTOCOL_SSL_ENCRYPTION_ENABLED"),
            None
        );

        // Cassandra storage (the default): a Deployment, no claim.
        let cassandra =
            workload(&reaper(), &datacenter(), &ImageSettings::default()).expect("workload");
        assert!(matches!(cassandra, ReaperWorkload::Deployment(_)));
        let main = &pod_of(&cassandra).containers[0];
        assert_eq!(
            value_of(main, "REAPER_STORAGE_TYPE").as_deref(),
            Some("cassandra")
        );
        assert!(!(main.volume_mounts.iter().flatten()).any(|m| m.name == "reaper-data"));

        // Local storage without a claim is refused, saying what is missing.
        let refused = workload(&local(None), &datacenter(), &ImageSettings::default());
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("spec.storageConfig is required")),
            "{refused:?}"
        );
    }

    /// A Reaper without a datacenter (upstream's control-plane Reaper), as a user writes it.
    fn control_plane_reaper(spec: serde_json::Value) -> Reaper {
        let mut reaper: Reaper = serde_json::from_value(serde_json::json!({
            "apiVersion": "reaper.k8ssandra.io/v1alpha1", "kind": "Reaper",
            "metadata": {"name": "cp-reaper", "namespace": "reapers", "uid": "uid-cp",
                         "generation": 1},
            "spec": spec,
        }))
        .expect("a Reaper");
        reaper.status = None;
        reaper
    }

    #[test]
    fn a_reaper_without_a_datacenter_runs_with_no_cassandra_to_store_into() {
        let reaper = control_plane_reaper(serde_json::json!({
            "storageType": "local",
            "telemetry": {"vector": {"enabled": true}},
        }));
        assert!(is_control_plane(&reaper));
        assert_eq!(control_plane_refusal(&reaper), None);
        let built =
            deployment(&reaper, &no_datacenter(), &ImageSettings::default()).expect("deployment");
        let names: Vec<String> = env_of(&built).into_iter().map(|e| e.name).collect();
        for absent in DATACENTER_ENVIRONMENT {
            assert!(!names.iter().any(|n| n == absent), "{absent} in {names:?}");
        }
        assert!(
            names.iter().any(|n| n == "REAPER_STORAGE_TYPE"),
            "{names:?}"
        );
        let pod = built.spec.and_then(|s| s.template.spec).expect("pod");
        assert_eq!(
            pod.containers.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["reaper"],
            "no Vector agent without a datacenter"
        );
        assert_eq!(
            vector_config(&reaper, &no_datacenter()).expect("config"),
            None
        );
        let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let serving = Stage::Serving {
            clusters: vec!["demo".into(), "other".into()],
            schedules: Vec::new(),
        };
        let status = status(&reaper, serving, now);
        assert!(status.is_ready());
        assert_eq!(status.progress, Some(ReaperProgress::Running));
        let conditions = status.conditions.unwrap_or_default();
        let ready = conditions.iter().find(|c| c.type_ == "Ready").expect("Ready");
        assert_eq!(
            (ready.reason.as_str(), ready.message.as_str()),
            (
                "Running",
                "Reaper runs; cluster(s) registered with it: demo, other; 0 repair schedule(s)"
            )
        );
        let not_acted_on = conditions.iter().find(|c| c.type_ == "FieldsNotActedOn");
        assert!(
            not_acted_on.is_some_and(|c| c.message.contains("spec.telemetry.vector")),
            "{conditions:?}"
        );
    }

    #[test]
    fn the_schema_is_migrated_by_an_init_container_unless_skipped() {
        let built = workload(&reaper(), &datacenter(), &ImageSettings::default()).expect("built");
        let pod = pod_of(&built);
        let main = &pod.containers[0];
        let init = pod.init_containers.as_ref().expect("init containers");
        assert_eq!(init.len(), 1);
        let init = &init[0];
        assert_eq!(init.name, "reaper-schema-init");
        assert_eq!(init.args, Some(vec!["schema-migration".to_string()]));
        assert_eq!(init.image, main.image, "the main image, as upstream");
        // It migrates: only Reaper itself skips the migration, exactly once.
        assert_eq!(value_of(init, "REAPER_SKIP_SCHEMA_MIGRATION"), None);
        assert_eq!(
            value_of(init, "REAPER_CASS_AUTH_PASSWORD"),
            Some(String::new()),
            "the init container logs in as Reaper does (from the Secret)"
        );
        let skips = (main.env.iter().flatten())
            .filter(|e| e.name == "REAPER_SKIP_SCHEMA_MIGRATION")
            .map(|e| e.value.clone())
            .collect::<Vec<_>>();
        assert_eq!(skips, [Some("true".to_string())]);
        assert_eq!(init.volume_mounts, main.volume_mounts);
        // Upstream's defaults.
        let resources = serde_json::to_value(&init.resources).expect("resources");
        assert_eq!(
            resources,
            serde_json::json!({"requests": {"cpu": "100m", "memory": "128Mi"},
                               "limits": {"memory": "512Mi"}})
        );
        // The default image writes its configuration into its own file system: no read-only
        // root by default; the claim is writable through the pod's fsGroup.
        assert_eq!(init.security_context, None);
        assert_eq!(main.security_context, None);
        assert_eq!(
            pod.security_context.as_ref().and_then(|s| s.fs_group),
            Some(1000)
        );

        // The template's resources and security context instead.
        let mut own = reaper();
        own.spec.template.init_container_resources =
            serde_json::from_value(serde_json::json!({"limits": {"memory": "1Gi"}})).ok();
        own.spec.template.init_container_security_context =
            serde_json::from_value(serde_json::json!({"runAsUser": 2000})).ok();
        let pod = pod_of(&workload(&own, &datacenter(), &ImageSettings::default()).expect("built"));
        let init = &pod.init_containers.expect("init containers")[0];
        assert_eq!(
            serde_json::to_value(&init.resources).expect("resources"),
            serde_json::json!({"limits": {"memory": "1Gi"}})
        );
        assert_eq!(
            init.security_context.as_ref().and_then(|s| s.run_as_user),
            Some(2000)
        );

        // skipSchemaMigration: no init container, Reaper skips it too; in both kinds.
        for storage in [ReaperStorageType::Cassandra, ReaperStorageType::Local] {
            let mut skipped = local(Some(serde_json::json!({})));
            skipped.spec.template.storage_type = Some(storage);
            skipped.spec.template.skip_schema_migration = Some(true);
            let pod = pod_of(
                &workload(&skipped, &datacenter(), &ImageSettings::default()).expect("built"),
            );
            assert_eq!(pod.init_containers, None, "{storage:?}");
            assert_eq!(
                value_of(&pod.containers[0], "REAPER_SKIP_SCHEMA_MIGRATION").as_deref(),
                Some("true")
            );
        }
    }

    #[test]
    fn management_api_keystores_are_mounted_from_their_secret() {
        let mut r = reaper();
        r.spec.template.http_management = serde_json::from_value(
            serde_json::json!({"enabled": true, "keystores": {"name": "mgmt-stores"}}),
        )
        .ok();
        let pod = pod_of(&workload(&r, &datacenter(), &ImageSettings::default()).expect("built"));
        let volume = (pod.volumes.iter().flatten())
            .find(|v| v.name == "management-api-keystore")
            .expect("keystores volume");
        assert_eq!(
            volume.secret.as_ref().and_then(|s| s.secret_name.as_deref()),
            Some("mgmt-stores")
        );
        for container in pod.containers.iter().chain(pod.init_containers.iter().flatten()) {
            assert!(
                (container.volume_mounts.iter().flatten()).any(|m| {
                    m.name == "management-api-keystore" && m.mount_path == "/etc/encryption/mgmt"
                }),
                "{}",
                container.name
            );
        }
        let main = &pod.containers[0];
        assert_eq!(
            value_of(main, "REAPER_HTTP_MANAGEMENT_KEYSTORE_PATH").as_deref(),
            Some("/etc/encryption/mgmt/keystore.jks")
        );
        assert_eq!(
            value_of(main, "REAPER_HTTP_MANAGEMENT_TRUSTSTORE_PATH").as_deref(),
            Some("/etc/encryption/mgmt/truststore.jks")
        );

        // Management API off: Reaper uses JMX, the keystores are not used.
        r.spec.template.http_management = serde_json::from_value(
            serde_json::json!({"enabled": false, "keystores": {"name": "mgmt-stores"}}),
        )
        .ok();
        let pod = pod_of(&workload(&r, &datacenter(), &ImageSettings::default()).expect("built"));
        assert!(!(pod.volumes.iter().flatten()).any(|v| v.name == "management-api-keystore"));
        assert_eq!(
            value_of(&pod.containers[0], "REAPER_HTTP_MANAGEMENT_KEYSTORE_PATH"),
            None
        );
        assert_eq!(
            value_of(&pod.containers[0], "REAPER_HTTP_MANAGEMENT_ENABLE").as_deref(),
            Some("false")
        );
    }

    #[test]
    fn server_tls_mounts_the_server_secret_and_asks_for_client_certificates_only_with_one() {
        let built = |encryption: serde_json::Value, extra: serde_json::Value| {
            let mut r = reaper();
            r.spec.template.encryption = serde_json::from_value(encryption).ok();
            r.spec.template.additional_env_vars = serde_json::from_value(extra).ok();
            pod_of(&workload(&r, &datacenter(), &ImageSettings::default()).expect("built"))
        };
        // What the container ends up with: Kubernetes keeps the last of a repeated name.
        let last = |container: &Container, name: &str| {
            let env = container.env.iter().flatten();
            env.filter(|e| e.name == name).map(|e| e.value.clone().unwrap_or_default()).next_back()
        };

        let pod = built(
            serde_json::json!({"serverCertName": "reaper-server"}),
            serde_json::Value::Null,
        );
        let main = &pod.containers[0];
        for (name, value) in [
            ("REAPER_SERVER_TLS_ENABLE", "true"),
            (
                "REAPER_SERVER_TLS_KEYSTORE_PATH",
                "/etc/encryption/server/keystore.jks",
            ),
            (
                "REAPER_SERVER_TLS_TRUSTSTORE_PATH",
                "/etc/encryption/server/truststore.jks",
            ),
            ("REAPER_SERVER_TLS_DISABLE_SNI", "true"),
        ] {
            assert_eq!(last(main, name).as_deref(), Some(value), "{name}");
        }
        assert_eq!(last(main, "REAPER_SERVER_TLS_CLIENT_AUTH"), None);
        let volume = (pod.volumes.iter().flatten())
            .find(|v| v.name == "server-tls-keystore")
            .expect("server stores volume");
        assert_eq!(
            volume.secret.as_ref().and_then(|s| s.secret_name.as_deref()),
            Some("reaper-server")
        );
        assert!(
            (main.volume_mounts.iter().flatten()).any(
                |m| m.name == "server-tls-keystore" && m.mount_path == "/etc/encryption/server"
            ),
            "mounted where the paths point"
        );
        // The probes stay on the plain-HTTP admin port.
        let probe = main.readiness_probe.as_ref().and_then(|p| p.http_get.as_ref());
        assert_eq!(
            probe.map(|g| (g.port.clone(), g.scheme.clone())),
            Some((IntOrString::String("admin".into()), None))
        );

        // Mutual TLS: client certificates required.
        let pod = built(
            serde_json::json!({"serverCertName": "reaper-server", "clientCertName": "reaper-client"}),
            serde_json::Value::Null,
        );
        assert_eq!(
            last(&pod.containers[0], "REAPER_SERVER_TLS_CLIENT_AUTH").as_deref(),
            Some("true")
        );

        // additionalEnvVars still have the last word.
        let pod = built(
            serde_json::json!({"serverCertName": "reaper-server"}),
            serde_json::json!([{"name": "REAPER_SERVER_TLS_DISABLE_SNI", "value": "false"}]),
        );
        assert_eq!(
            last(&pod.containers[0], "REAPER_SERVER_TLS_DISABLE_SNI").as_deref(),
            Some("false")
        );

        // No server certificate: plain HTTP, nothing mounted, whatever clientCertName says
        // (the CRD refuses that combination; an empty name is no name).
        for encryption in [
            serde_json::json!({}),
            serde_json::json!({"serverCertName": ""}),
            serde_json::json!({"clientCertName": "reaper-client"}),
        ] {
            let pod = built(encryption.clone(), serde_json::Value::Null);
            let main = &pod.containers[0];
            assert!(
                !(main.env.iter().flatten()).any(|e| e.name.starts_with("REAPER_SERVER_TLS")),
                "{encryption}"
            );
            assert!(
                !(pod.volumes.iter().flatten()).any(|v| v.name == "server-tls-keystore"),
                "{encryption}"
            );
        }
    }

    #[test]
    fn a_reaper_without_a_datacenter_storing_into_cassandra_is_refused_with_what_to_set() {
        for spec in [
            serde_json::json!({}),
            serde_json::json!({"storageType": "cassandra", "datacenterRef": {"name": ""}}),
        ] {
            let reaper = control_plane_reaper(spec);
            assert!(is_control_plane(&reaper));
            let why = control_plane_refusal(&reaper).expect("refused");
            assert!(why.contains("set spec.storageType: local"), "{why}");
            let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
            let status = status(&reaper, Stage::Invalid(why), now);
            assert_eq!(status.progress, Some(ReaperProgress::Pending));
            let ready =
                (status.conditions.iter().flatten()).find(|c| c.type_ == "Ready").expect("Ready");
            assert_eq!(
                (ready.status.as_str(), ready.reason.as_str()),
                ("False", "InvalidSpec")
            );
        }
        assert!(!is_control_plane(&reaper()));
    }
}
