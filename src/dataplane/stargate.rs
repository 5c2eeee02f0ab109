//! Pure: a Stargate and the CassandraDatacenter it serves → its Deployments (one per rack
//! that gets nodes) and its Service, and the Stargate's status from those Deployments. Names,
//! ports and environment follow k8ssandra-operator's.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, PodAffinityTerm, PodAntiAffinity, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    Condition, LabelSelector, LabelSelectorRequirement, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use kube::runtime::reflector::ObjectRef;

use super::rollout::Rollout;
use super::{
    CREATED_BY_LABEL, NAME_LABEL, cluster_labels_of, controller_reference, image_pull_secrets,
    image_reference, quantity_bytes,
};
use super::{Waiting, vector_agent};
use crate::api::cassdc::{CassandraDatacenter, ServerType};
use crate::api::shared::{
    CONDITION_FALSE, CONDITION_TRUE, PART_OF_LABEL, PART_OF_VALUE, new_condition, set_condition,
};
use crate::api::stargate::{
    ApiAuthMethod, AuthOptions, Stargate, StargateProgress, StargateStatus, StargateTemplate,
};
use crate::settings::ImageSettings;
use crate::workload::encryption::{Traffic, stores_volumes};
use crate::workload::labels::{
    COMPONENT_LABEL, COMPONENT_STARGATE, STARGATE_LABEL, clean_for_kubernetes,
};

/// Label naming the Deployment on its pods (the Deployment selects on it).
pub const STARGATE_DEPLOYMENT_LABEL: &str = "k8ssandra.io/stargate-deployment";
const CREATED_BY_VALUE: &str = "stargate-controller";
/// cass-operator's label on every Cassandra pod: its rack.
const CASSANDRA_RACK_LABEL: &str = "cassandra.datastax.com/rack";
/// The condition k8ssandra-operator puts on a Stargate.
pub const CONDITION_READY: &str = "Ready";
/// Stargate's JVM heap when the template gives none (k8ssandra-operator's default).
const DEFAULT_HEAP: &str = "256Mi";
/// The Stargate container's health port (liveness, readiness and metrics paths).
const HEALTH_PORT_NAME: &str = "health";
/// Pod-template annotation: the content hash of the ConfigMap Stargate's node reads.
pub const CONFIG_HASH_ANNOTATION: &str = "federator.k8ssandra.io/config-hash";

/// The datacenter the Stargate serves: in its own namespace.
pub fn datacenter_of(stargate: &Stargate) -> Option<ObjectRef<CassandraDatacenter>> {
    let namespace = stargate.namespace()?;
    Some(ObjectRef::new(&stargate.spec.datacenter_ref.name).within(&namespace))
}

/// The ConfigMaps the Stargate's `cassandraConfigMapRef`s name (its own and its racks').
pub fn referenced_config_maps(stargate: &Stargate) -> BTreeSet<String> {
    let racks = stargate.spec.racks.iter().flatten().map(|r| &r.template);
    std::iter::once(&stargate.spec.template)
        .chain(racks)
        .filter_map(|template| template.cassandra_config_map_ref.as_ref())
        .map(|reference| reference.name.clone())
        .collect()
}

/// Where a `cassandraConfigMapRef` is mounted, and the file Stargate's node is pointed at.
const CASSANDRA_CONFIG_VOLUME: &str = "cassandra-config";
const CASSANDRA_CONFIG_DIR: &str = "/config";
const CASSANDRA_CONFIG_PATH: &str = "/config/cassandra.yaml";
/// Stargate's CQL settings file in the generated ConfigMap.
const CQL_CONFIG_FILE: &str = "stargate-cql.yaml";
/// Top-level cassandra.yaml settings of the datacenter its Stargate shares (k8ssandra-operator's
/// lists): internode encryption for the embedded node, CQL settings for Stargate's CQL service.
const SHARED_CASSANDRA_SETTINGS: &[&str] = &["server_encryption_options"];
const SHARED_CQL_SETTINGS: &[&str] = &[
    "rpc_keepalive",
    "native_transport_max_frame_size_in_mb",
    "native_transport_max_concurrent_connections",
    "native_transport_max_concurrent_connections_per_ip",
    "native_transport_flush_in_batches_legacy",
    "native_transport_allow_older_protocols",
    "native_transport_max_concurrent_requests_in_bytes_per_ip",
    "native_transport_max_concurrent_requests_in_bytes",
    "native_transport_idle_timeout_in_ms",
    "client_encryption_options",
];

/// `<cluster>-<dc>-cassandra-config`: the ConfigMap Stargate's node and CQL service read when
/// they share settings of their datacenter (k8ssandra-operator's name).
pub fn generated_config_name(dc: &CassandraDatacenter) -> String {
    format!(
        "{}-{}-cassandra-config",
        clean_for_kubernetes(&dc.spec.cluster_name),
        clean_for_kubernetes(&cassandra_datacenter_name(dc))
    )
}

/// A Stargate ConfigMap that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{file} of ConfigMap {config_map}: {reason}")]
pub struct ConfigError {
    pub config_map: String,
    pub file: String,
    pub reason: String,
}

/// The ConfigMap Stargate reads when its datacenter's cassandra.yaml has settings it must
/// share (encryption, CQL limits): the user's `cassandraConfigMapRef` files (`user`) with those
/// settings over them. `None` when there is nothing to share: the user's ConfigMap is then
/// mounted as it is.
pub fn generated_config(
    stargate: &Stargate,
    dc: &CassandraDatacenter,
    user: Option<&ConfigMap>,
) -> Result<Option<ConfigMap>, ConfigError> {
    let dc_yaml = dc
        .spec
        .config
        .as_ref()
        .and_then(|c| c.get("cassandra-yaml"))
        .and_then(serde_json::Value::as_object);
    let shared = |keys: &[&str]| -> serde_json::Map<String, serde_json::Value> {
        (dc_yaml.into_iter().flatten())
            .filter(|(k, _)| keys.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let (cassandra, cql) = (
        shared(SHARED_CASSANDRA_SETTINGS),
        shared(SHARED_CQL_SETTINGS),
    );
    if cassandra.is_empty() && cql.is_empty() {
        return Ok(None);
    }
    let user_name = user.map(ResourceExt::name_any).unwrap_or_default();
    let merged = |file: &str, settings: serde_json::Map<String, serde_json::Value>| {
        let text = user
            .and_then(|u| u.data.as_ref())
            .and_then(|d| d.get(file))
            .map(String::as_str)
            .unwrap_or_default();
        let mut map = match serde_saphyr::from_str::<Option<serde_json::Value>>(text) {
            Ok(None) => serde_json::Map::new(),
            Ok(Some(serde_json::Value::Object(map))) => map,
            Ok(Some(_)) => {
                return Err(ConfigError {
                    config_map: user_name.clone(),
                    file: file.into(),
                    reason: "not a mapping of settings".into(),
                });
            }
            Err(error) => {
                return Err(ConfigError {
                    config_map: user_name.clone(),
                    file: file.into(),
                    reason: error.to_string(),
                });
            }
        };
        // The datacenter's settings win: the node must match its ring.
        map.extend(settings);
        Ok(yaml_text(&map))
    };
    let data = BTreeMap::from([
        (
            "cassandra.yaml".to_string(),
            merged("cassandra.yaml", cassandra)?,
        ),
        (CQL_CONFIG_FILE.to_string(), merged(CQL_CONFIG_FILE, cql)?),
    ]);
    Ok(Some(ConfigMap {
        metadata: ObjectMeta {
            name: Some(generated_config_name(dc)),
            namespace: stargate.namespace(),
            labels: Some(labels(stargate)),
            owner_references: controller_reference(stargate).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    }))
}

/// YAML with one top-level setting per line, each value in JSON (a YAML flow value); `{}` when
/// empty (Stargate fails on an empty file).
fn yaml_text(settings: &serde_json::Map<String, serde_json::Value>) -> String {
    if settings.is_empty() {
        return "{}\n".into();
    }
    settings.iter().map(|(key, value)| format!("{key}: {value}\n")).collect()
}

/// The datacenter's name inside Cassandra (what Stargate joins as).
fn cassandra_datacenter_name(dc: &CassandraDatacenter) -> String {
    dc.spec.datacenter_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| dc.name_any())
}

/// `<cluster>-<dc>-stargate-service`.
pub fn service_name(dc: &CassandraDatacenter) -> String {
    format!(
        "{}-{}-stargate-service",
        clean_for_kubernetes(&dc.spec.cluster_name),
        clean_for_kubernetes(&cassandra_datacenter_name(dc))
    )
}

/// `<cluster>-<dc>-<rack>-stargate-deployment`.
pub fn deployment_name(dc: &CassandraDatacenter, rack: &str) -> String {
    format!(
        "{}-{}-{}-stargate-deployment",
        clean_for_kubernetes(&dc.spec.cluster_name),
        clean_for_kubernetes(&cassandra_datacenter_name(dc)),
        clean_for_kubernetes(rack)
    )
}

/// cass-operator's seed Service of the Cassandra cluster: Stargate's node joins through it.
pub fn seed_service_host(dc: &CassandraDatacenter) -> String {
    format!(
        "{}-seed-service.{}.svc",
        clean_for_kubernetes(&dc.spec.cluster_name),
        dc.namespace().unwrap_or_default()
    )
}

/// The Stargate image line for the server: 3.11, 4.x or DSE 6.8.
fn cluster_version(dc: &CassandraDatacenter) -> &'static str {
    if dc.spec.server_type == ServerType::Dse {
        "6.8"
    } else if dc.spec.server_version.starts_with('3') {
        "3.11"
    } else {
        "4.0"
    }
}

/// Racks of the datacenter and how many Stargate nodes each gets: `size` split evenly, the
/// first racks taking the remainder; racks that get none are left out.
pub fn nodes_per_rack(dc: &CassandraDatacenter, size: i32) -> Vec<(String, i32)> {
    let racks: Vec<String> = dc
        .spec
        .racks
        .as_ref()
        .filter(|racks| !racks.is_empty())
        .map(|racks| racks.iter().map(|r| r.name.clone()).collect())
        .unwrap_or_else(|| vec!["default".to_string()]);
    let count = i32::try_from(racks.len()).unwrap_or(i32::MAX);
    let size = size.max(0);
    racks
        .into_iter()
        .enumerate()
        .map(|(index, rack)| {
            let index = i32::try_from(index).unwrap_or(i32::MAX);
            (rack, size / count + i32::from(index < size % count))
        })
        .filter(|(_, nodes)| *nodes > 0)
        .collect()
}

fn labels(stargate: &Stargate) -> BTreeMap<String, String> {
    let mut labels = cluster_labels_of(stargate.metadata.labels.as_ref());
    labels.extend([
        (NAME_LABEL.to_string(), "stargate".to_string()),
        (PART_OF_LABEL.to_string(), PART_OF_VALUE.to_string()),
        (COMPONENT_LABEL.to_string(), COMPONENT_STARGATE.to_string()),
        (CREATED_BY_LABEL.to_string(), CREATED_BY_VALUE.to_string()),
        (STARGATE_LABEL.to_string(), stargate.name_any()),
    ]);
    labels
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn http_probe(own: Option<&Probe>, path: &str) -> Probe {
    let mut probe = own.cloned().unwrap_or(Probe {
        timeout_seconds: Some(10),
        initial_delay_seconds: Some(30),
        failure_threshold: Some(5),
        ..Probe::default()
    });
    // The handler is Stargate's, whatever the template says.
    probe.exec = None;
    probe.tcp_socket = None;
    probe.grpc = None;
    probe.http_get = Some(HTTPGetAction {
        path: Some(path.into()),
        port: IntOrString::String(HEALTH_PORT_NAME.into()),
        ..HTTPGetAction::default()
    });
    probe
}

/// Requests twice the heap, limits four times it, unless the template sets resources.
fn resources(template: &StargateTemplate, heap_bytes: u64) -> ResourceRequirements {
    if let Some(resources) = &template.resources {
        return resources.clone();
    }
    let memory = |factor: u64| Quantity(heap_bytes.saturating_mul(factor).to_string());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("200m".into())),
            ("memory".to_string(), memory(2)),
        ])),
        limits: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("1000m".into())),
            ("memory".to_string(), memory(4)),
        ])),
        ..ResourceRequirements::default()
    }
}

/// Keeps Stargate off the workers that run Cassandra pods (they carry cass-operator's rack
/// label), unless `allowStargateOnDataNodes` says otherwise.
fn default_affinity(template: &StargateTemplate) -> Option<Affinity> {
    if template.allow_stargate_on_data_nodes == Some(true) {
        return None;
    }
    Some(Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                label_selector: Some(LabelSelector {
                    match_expressions: Some(vec![LabelSelectorRequirement {
                        key: CASSANDRA_RACK_LABEL.into(),
                        operator: "Exists".into(),
                        values: None,
                    }]),
                    ..LabelSelector::default()
                }),
                topology_key: "kubernetes.io/hostname".into(),
                ..PodAffinityTerm::default()
            }]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    })
}

fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: number,
        ..ContainerPort::default()
    }
}

/// The Deployments of `stargate`, one per rack that gets nodes. `generated` is the ConfigMap
/// from [`generated_config`], if any: every rack mounts it instead of its own.
pub fn deployments(
    stargate: &Stargate,
    dc: &CassandraDatacenter,
    images: &ImageSettings,
    generated: Option<&str>,
    config_hashes: &BTreeMap<String, String>,
) -> Vec<Deployment> {
    let (store_volumes, store_mounts) = store_volumes(stargate);
    let namespace = stargate.namespace();
    let owner = controller_reference(stargate);
    let version = cluster_version(dc);
    let default_image = if version == "3.11" {
        &images.stargate_cassandra3
    } else {
        &images.stargate
    };
    let mut deployments: Vec<Deployment> = nodes_per_rack(dc, stargate.spec.size)
        .into_iter()
        .map(|(rack, replicas)| {
            let rack_template = stargate
                .spec
                .racks
                .iter()
                .flatten()
                .find(|r| r.name == rack)
                .map(|r| r.template.merged_over(&stargate.spec.template))
                .unwrap_or_else(|| stargate.spec.template.clone());
            let name = deployment_name(dc, &rack);
            let heap =
                rack_template.heap_size.clone().unwrap_or_else(|| Quantity(DEFAULT_HEAP.into()));
            let heap_bytes = quantity_bytes(&heap).unwrap_or(256 * 1024 * 1024);
            let mut java_opts =
                format!("-XX:+CrashOnOutOfMemoryError -Xms{heap_bytes} -Xmx{heap_bytes}");
            let mut environment = vec![
                EnvVar {
                    name: "LISTEN".into(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "status.podIP".into(),
                            api_version: None,
                        }),
                        ..EnvVarSource::default()
                    }),
                },
                env("CLUSTER_NAME", dc.spec.cluster_name.clone()),
                env("CLUSTER_VERSION", version),
                env("SEED", seed_service_host(dc)),
                env("DATACENTER_NAME", cassandra_datacenter_name(dc)),
                env("RACK_NAME", rack.clone()),
                // Watching bundles is useless in a container and costs CPU.
                env("DISABLE_BUNDLES_WATCH", "true"),
            ];
            if version == "6.8" {
                environment.push(env("DSE", "1"));
            }
            if stargate.spec.auth.unwrap_or(true) {
                // Stargate turns authentication on when the variable exists.
                environment.push(env("ENABLE_AUTH", "true"));
                java_opts.push_str(&api_auth_options(
                    stargate.spec.template.auth_options.as_ref(),
                ));
            }
            // The ConfigMap's cassandra.yaml configures Stargate's embedded Cassandra node.
            let config_map = match generated {
                Some(name) => Some(name.to_string()),
                None => rack_template.cassandra_config_map_ref.as_ref().map(|r| r.name.clone()),
            };
            // Stargate reads its configuration at start only: a new one restarts the pods.
            let config_hash = config_map.as_ref().and_then(|name| config_hashes.get(name)).cloned();
            if config_map.is_some() {
                java_opts.push_str(&format!(
                    " -Dstargate.unsafe.cassandra_config_path={CASSANDRA_CONFIG_PATH}"
                ));
            }
            if generated.is_some() {
                java_opts.push_str(&format!(
                    " -Dstargate.cql.config_path={CASSANDRA_CONFIG_DIR}/{CQL_CONFIG_FILE}"
                ));
            }
            let mut volumes: Vec<Volume> = config_map
                .iter()
                .map(|name| Volume {
                    name: CASSANDRA_CONFIG_VOLUME.into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: name.clone(),
                        ..ConfigMapVolumeSource::default()
                    }),
                    ..Volume::default()
                })
                .collect();
            volumes.extend(store_volumes.iter().cloned());
            let mut mounts: Vec<VolumeMount> = config_map
                .iter()
                .map(|_| VolumeMount {
                    name: CASSANDRA_CONFIG_VOLUME.into(),
                    mount_path: CASSANDRA_CONFIG_DIR.into(),
                    ..VolumeMount::default()
                })
                .collect();
            mounts.extend(store_mounts.iter().cloned());
            environment.insert(1, env("JAVA_OPTS", java_opts));
            let mut pod_labels = labels(stargate);
            pod_labels.insert(STARGATE_DEPLOYMENT_LABEL.into(), name.clone());
            if let Some(extra) = rack_template.metadata.as_ref().and_then(|m| m.pods.as_ref()) {
                for (key, value) in extra.labels.iter().flatten() {
                    pod_labels.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
            let container = Container {
                name: name.clone(),
                image: Some(image_reference(
                    rack_template.container_image.as_ref(),
                    default_image,
                )),
                image_pull_policy: rack_template
                    .container_image
                    .as_ref()
                    .and_then(|i| i.pull_policy)
                    .map(|p| format!("{p:?}")),
                ports: Some(vec![
                    port("graphql", 8080),
                    port("authorization", 8081),
                    port("rest", 8082),
                    port(HEALTH_PORT_NAME, 8084),
                    port("metrics", 8085),
                    port("grpc", 8090),
                    port("native", 9042),
                    port("inter-node-msg", 8609),
                    port("intra-node", 7000),
                    port("tls-intra-node", 7001),
                ]),
                env: Some(environment),
                resources: Some(resources(&rack_template, heap_bytes)),
                liveness_probe: Some(http_probe(
                    rack_template.liveness_probe.as_ref(),
                    "/checker/liveness",
                )),
                readiness_probe: Some(http_probe(
                    rack_template.readiness_probe.as_ref(),
                    "/checker/readiness",
                )),
                volume_mounts: (!mounts.is_empty()).then_some(mounts),
                ..Container::default()
            };
            let affinity = match rack_template.affinity.clone() {
                Some(own) => serde_json::from_value(own).ok(),
                None => default_affinity(&rack_template),
            };
            Deployment {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: namespace.clone(),
                    labels: Some(labels(stargate)),
                    owner_references: owner.clone().map(|o| vec![o]),
                    ..ObjectMeta::default()
                },
                spec: Some(DeploymentSpec {
                    replicas: Some(replicas),
                    selector: LabelSelector {
                        match_labels: Some(BTreeMap::from([(
                            STARGATE_DEPLOYMENT_LABEL.to_string(),
                            name.clone(),
                        )])),
                        ..LabelSelector::default()
                    },
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(pod_labels),
                            annotations: config_hash.map(|hash| {
                                BTreeMap::from([(CONFIG_HASH_ANNOTATION.to_string(), hash)])
                            }),
                            ..ObjectMeta::default()
                        }),
                        spec: Some(PodSpec {
                            service_account_name: Some(
                                rack_template
                                    .service_account
                                    .clone()
                                    .unwrap_or_else(|| "default".into()),
                            ),
                            containers: vec![container],
                            node_selector: rack_template
                                .node_selector
                                .clone()
                                .or_else(|| dc.spec.node_selector.clone()),
                            tolerations: rack_template.tolerations.clone(),
                            image_pull_secrets: image_pull_secrets(
                                rack_template.container_image.as_ref(),
                            ),
                            affinity,
                            volumes: (!volumes.is_empty()).then_some(volumes),
                            ..PodSpec::default()
                        }),
                    },
                    ..DeploymentSpec::default()
                }),
                status: None,
            }
        })
        .collect();
    if let Some(settings) = vector_agent::enabled(stargate.spec.template.telemetry.as_ref()) {
        for deployment in &mut deployments {
            if let Some(pod) = deployment.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
                vector_agent::STARGATE.add_to(pod, dc, settings, &images.system_logger);
            }
        }
    }
    deployments
}

/// The JVM options choosing how Stargate's APIs authenticate clients (`authOptions`): table
/// tokens (default), living `tokenTtlSeconds` when given; or JWTs checked against the keys at
/// `providerUrl`.
fn api_auth_options(options: Option<&AuthOptions>) -> String {
    let method = options.and_then(|o| o.api_auth_method).unwrap_or_default();
    match method {
        ApiAuthMethod::Table => {
            let mut opts = " -Dstargate.auth_id=AuthTableBasedService".to_string();
            if let Some(ttl) = options.and_then(|o| o.token_ttl_seconds).filter(|t| *t > 0) {
                opts.push_str(&format!(" -Dstargate.auth_tokenttl={ttl}"));
            }
            opts
        }
        ApiAuthMethod::Jwt => {
            let url = options.and_then(|o| o.provider_url.as_deref()).unwrap_or_default();
            format!(" -Dstargate.auth_id=AuthJwtService -Dstargate.auth.jwt_provider_url={url}")
        }
    }
}

/// The ConfigMap of Stargate's Vector agent, when it has one.
pub fn vector_config(
    stargate: &Stargate,
    dc: &CassandraDatacenter,
) -> Result<Option<ConfigMap>, crate::workload::vector::VectorError> {
    let telemetry = stargate.spec.template.telemetry.as_ref();
    vector_agent::STARGATE.config_map(stargate, labels(stargate), dc, telemetry)
}

/// The encryption stores of `stargate.spec.cassandraEncryption`, mounted where its
/// datacenter's nodes have them (the shared settings name those paths).
fn store_volumes(stargate: &Stargate) -> (Vec<Volume>, Vec<VolumeMount>) {
    let encryption = stargate.spec.cassandra_encryption.as_ref();
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for (traffic, stores) in [
        (
            Traffic::Server,
            encryption.and_then(|e| e.server_encryption_stores.as_ref()),
        ),
        (
            Traffic::Client,
            encryption.and_then(|e| e.client_encryption_stores.as_ref()),
        ),
    ] {
        let Some(stores) = stores else { continue };
        let (store_volumes, store_mounts) = stores_volumes(traffic, stores);
        volumes.extend(store_volumes);
        mounts.extend(store_mounts);
    }
    (volumes, mounts)
}

/// The Service in front of every Stargate node of the datacenter.
pub fn service(stargate: &Stargate, dc: &CassandraDatacenter) -> Service {
    let service_port = |name: &str, number: i32| ServicePort {
        name: Some(name.into()),
        port: number,
        target_port: Some(IntOrString::Int(number)),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    };
    let mut service_labels = labels(stargate);
    if let Some(extra) = stargate.spec.template.metadata.as_ref().and_then(|m| m.service.as_ref()) {
        for (key, value) in extra.labels.iter().flatten() {
            service_labels.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    Service {
        metadata: ObjectMeta {
            name: Some(service_name(dc)),
            namespace: stargate.namespace(),
            labels: Some(service_labels),
            owner_references: controller_reference(stargate).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            ports: Some(vec![
                service_port("graphql", 8080),
                service_port("authorization", 8081),
                service_port("rest", 8082),
                service_port(HEALTH_PORT_NAME, 8084),
                service_port("metrics", 8085),
                service_port("grpc", 8090),
                service_port("cassandra", 9042),
            ]),
            selector: Some(BTreeMap::from([(
                STARGATE_LABEL.to_string(),
                stargate.name_any(),
            )])),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The Stargate's status: Pending while it waits, Deploying until every desired replica is
/// ready for the current spec, then Running.
pub fn status(
    stargate: &Stargate,
    outcome: Result<(&[String], Option<&str>, Rollout), &Waiting>,
    now: Time,
) -> StargateStatus {
    let previous = stargate.status.clone().unwrap_or_default();
    let mut conditions: Vec<Condition> = previous.conditions.clone().unwrap_or_default();
    let condition = |status: &str, reason: &str, message: String| {
        new_condition(
            CONDITION_READY,
            status,
            reason,
            message,
            stargate.metadata.generation,
            now.clone(),
        )
    };
    match outcome {
        Err(waiting) => {
            let reason = match waiting {
                Waiting::NoDatacenterRef => "InvalidSpec",
                Waiting::DatacenterNotFound(_) => "DatacenterNotFound",
                Waiting::DatacenterNotReady(_) => "DatacenterNotReady",
            };
            set_condition(
                &mut conditions,
                condition(CONDITION_FALSE, reason, waiting.to_string()),
            );
            StargateStatus {
                progress: Some(StargateProgress::Pending),
                conditions: Some(conditions),
                observed_generation: stargate.metadata.generation,
                ..StargateStatus::default()
            }
        }
        Ok((deployments, service, rollout)) => {
            let complete = rollout.is_complete();
            let ratio = format!("{}/{}", rollout.ready, rollout.desired);
            let ready_condition = if complete {
                condition(
                    CONDITION_TRUE,
                    "AllReplicasReady",
                    format!("{ratio} replicas ready"),
                )
            } else {
                condition(
                    CONDITION_FALSE,
                    "Deploying",
                    format!("{ratio} replicas ready"),
                )
            };
            set_condition(&mut conditions, ready_condition);
            StargateStatus {
                progress: Some(if complete {
                    StargateProgress::Running
                } else {
                    StargateProgress::Deploying
                }),
                replicas: rollout.desired,
                ready_replicas: rollout.ready,
                updated_replicas: rollout.updated,
                available_replicas: rollout.available,
                ready_replicas_ratio: Some(ratio),
                deployment_refs: Some(deployments.to_vec()),
                service_ref: service.map(str::to_string),
                conditions: Some(conditions),
                observed_generation: stargate.metadata.generation,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::cassdc::CassandraDatacenterSpec;
    use crate::api::shared::ConfigMapRef;
    use crate::api::stargate::{
        CassandraEncryption, StargateDatacenterRef, StargateRackTemplate, StargateSpec,
    };

    fn datacenter(racks: &[&str], version: &str) -> CassandraDatacenter {
        let mut spec: CassandraDatacenterSpec = serde_json::from_value(serde_json::json!({
            "clusterName": "My Cluster", "serverType": "cassandra", "serverVersion": version,
            "size": 3, "storageConfig": {},
            "racks": racks.iter().map(|r| serde_json::json!({"name": r})).collect::<Vec<_>>(),
        }))
        .expect("valid datacenter spec");
        spec.datacenter_name = None;
        let mut dc = CassandraDatacenter::new("dc1", spec);
        dc.metadata.namespace = Some("ns1".into());
        dc
    }

    fn stargate(size: i32) -> Stargate {
        let mut stargate = Stargate::new(
            "demo-dc1-stargate",
            StargateSpec {
                datacenter_ref: StargateDatacenterRef { name: "dc1".into() },
                auth: None,
                cassandra_encryption: None,
                size,
                template: StargateTemplate {
                    heap_size: Some(Quantity("512Mi".into())),
                    ..Default::default()
                },
                racks: Some(vec![StargateRackTemplate {
                    name: "r2".into(),
                    template: StargateTemplate {
                        heap_size: Some(Quantity("1Gi".into())),
                        ..Default::default()
                    },
                }]),
            },
        );
        stargate.metadata.namespace = Some("ns1".into());
        stargate.metadata.uid = Some("uid-1".into());
        stargate.metadata.labels = Some(BTreeMap::from([
            ("k8ssandra.io/cluster-name".to_string(), "demo".to_string()),
            (
                "k8ssandra.io/cluster-namespace".to_string(),
                "hub".to_string(),
            ),
            ("unrelated".to_string(), "x".to_string()),
        ]));
        stargate
    }

    fn env_value(deployment: &Deployment, name: &str) -> Option<String> {
        deployment.spec.as_ref()?.template.spec.as_ref()?.containers[0]
            .env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    }

    #[test]
    fn nodes_are_split_over_racks_and_racks_without_nodes_get_no_deployment() {
        let dc = datacenter(&["r1", "r2", "r3"], "4.1.5");
        assert_eq!(
            nodes_per_rack(&dc, 4),
            vec![("r1".into(), 2), ("r2".into(), 1), ("r3".into(), 1)]
        );
        assert_eq!(nodes_per_rack(&dc, 1), vec![("r1".into(), 1)]);
        let images = ImageSettings::default();
        let built = deployments(&stargate(2), &dc, &images, None, &BTreeMap::new());
        let names: Vec<String> = built.iter().map(|d| d.name_any()).collect();
        assert_eq!(
            names,
            vec![
                "mycluster-dc1-r1-stargate-deployment",
                "mycluster-dc1-r2-stargate-deployment"
            ]
        );
    }

    #[test]
    fn api_authentication_follows_auth_options() {
        let dc = datacenter(&["r1"], "4.1.5");
        let java_opts = |auth: Option<bool>, options: serde_json::Value| {
            let mut stargate = stargate(1);
            stargate.spec.auth = auth;
            stargate.spec.template.auth_options =
                serde_json::from_value(options).expect("valid authOptions");
            let built = deployments(
                &stargate,
                &dc,
                &ImageSettings::default(),
                None,
                &BTreeMap::new(),
            );
            env_value(&built[0], "JAVA_OPTS").unwrap_or_default()
        };
        let table = java_opts(None, serde_json::json!({"tokenTtlSeconds": 600}));
        assert!(
            table.ends_with(
                " -Dstargate.auth_id=AuthTableBasedService -Dstargate.auth_tokenttl=600"
            ),
            "{table}"
        );
        let jwt = java_opts(
            None,
            serde_json::json!({"apiAuthMethod": "JWT", "providerUrl": "https://idp/certs",
                "tokenTtlSeconds": 600}),
        );
        assert!(
            jwt.ends_with(
                " -Dstargate.auth_id=AuthJwtService -Dstargate.auth.jwt_provider_url=https://idp/certs"
            ),
            "{jwt}"
        );
        assert!(
            !jwt.contains("auth_tokenttl"),
            "a TTL is for table tokens only"
        );
        let off = java_opts(Some(false), serde_json::json!({"apiAuthMethod": "JWT"}));
        assert!(
            !off.contains("auth_id"),
            "no authentication, no API auth: {off}"
        );
    }

    #[test]
    fn the_pods_pull_their_image_with_the_secret_named() {
        let dc = datacenter(&["r1", "r2"], "4.1.5");
        let mut stargate = stargate(2);
        stargate.spec.template.container_image = serde_json::from_value(
            serde_json::json!({"tag": "v2", "pullSecretRef": {"name": "registry"}}),
        )
        .expect("valid image");
        let built = deployments(
            &stargate,
            &dc,
            &ImageSettings::default(),
            None,
            &BTreeMap::new(),
        );
        let secrets: Vec<Option<Vec<String>>> = built
            .iter()
            .map(|d| {
                let pod = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
                pod.and_then(|p| p.image_pull_secrets.as_ref())
                    .map(|refs| refs.iter().map(|r| r.name.clone()).collect())
            })
            .collect();
        assert_eq!(
            secrets,
            vec![
                Some(vec!["registry".to_string()]),
                Some(vec!["registry".to_string()])
            ]
        );
        let plain = deployments(
            &self::stargate(1),
            &dc,
            &ImageSettings::default(),
            None,
            &BTreeMap::new(),
        );
        assert!(
            plain[0]
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .is_some_and(|p| p.image_pull_secrets.is_none())
        );
    }

    #[test]
    fn deployment_is_wired_to_the_seed_service_and_owned_by_the_stargate() {
        let dc = datacenter(&["r1", "r2"], "4.1.5");
        let images = ImageSettings::default();
        let built = deployments(&stargate(2), &dc, &images, None, &BTreeMap::new());
        let first = &built[0];
        assert_eq!(
            env_value(first, "SEED").as_deref(),
            Some("mycluster-seed-service.ns1.svc")
        );
        assert_eq!(
            env_value(first, "CLUSTER_NAME").as_deref(),
            Some("My Cluster")
        );
        assert_eq!(env_value(first, "CLUSTER_VERSION").as_deref(), Some("4.0"));
        assert_eq!(env_value(first, "DATACENTER_NAME").as_deref(), Some("dc1"));
        assert_eq!(env_value(first, "RACK_NAME").as_deref(), Some("r1"));
        assert_eq!(env_value(first, "ENABLE_AUTH").as_deref(), Some("true"));
        let java = env_value(first, "JAVA_OPTS").unwrap_or_default();
        assert!(java.contains("-Xmx536870912"), "{java}");
        // The rack's own heap wins over the datacenter's.
        let java = env_value(&built[1], "JAVA_OPTS").unwrap_or_default();
        assert!(java.contains("-Xmx1073741824"), "{java}");
        let owner = &first.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Stargate", "uid-1")
        );
        assert_eq!(owner.controller, Some(true));
        let labels = first.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["k8ssandra.io/cluster-name"], "demo");
        assert!(!labels.contains_key("unrelated"));
        let container =
            &first.spec.as_ref().expect("spec").template.spec.as_ref().expect("pod").containers[0];
        assert_eq!(container.image.as_deref(), Some(images.stargate.as_str()));
        let memory = &container
            .resources
            .as_ref()
            .expect("resources")
            .limits
            .as_ref()
            .expect("limits")["memory"];
        assert_eq!(memory.0, (4u64 * 536_870_912).to_string());
        let readiness =
            container.readiness_probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("probe");
        assert_eq!(readiness.path.as_deref(), Some("/checker/readiness"));
        let selector =
            first.spec.as_ref().expect("spec").selector.match_labels.clone().expect("selector");
        let pod_labels = first
            .spec
            .as_ref()
            .expect("spec")
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .expect("pod labels");
        assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
    }

    /// The hash annotation of each Deployment's pod template.
    fn config_hashes_of(built: &[Deployment]) -> Vec<Option<String>> {
        built
            .iter()
            .map(|d| {
                let template = &d.spec.as_ref()?.template;
                template
                    .metadata
                    .as_ref()?
                    .annotations
                    .as_ref()?
                    .get(CONFIG_HASH_ANNOTATION)
                    .cloned()
            })
            .collect()
    }

    #[test]
    fn the_pods_carry_the_hash_of_the_config_map_they_read_so_a_new_one_restarts_them() {
        let dc = datacenter(&["r1", "r2"], "4.1.5");
        let mut sg = stargate(2);
        sg.spec.template.cassandra_config_map_ref = Some(ConfigMapRef {
            name: "mine".into(),
        });
        // Rack r2 has its own.
        for rack in sg.spec.racks.iter_mut().flatten() {
            rack.template.cassandra_config_map_ref = Some(ConfigMapRef {
                name: "r2-own".into(),
            });
        }
        let hashes = |mine: &str| {
            BTreeMap::from([
                ("mine".to_string(), mine.to_string()),
                ("r2-own".to_string(), "r2hash".to_string()),
                ("generated".to_string(), "genhash".to_string()),
            ])
        };
        // Each rack's pods carry the hash of the ConfigMap they mount.
        let built = deployments(&sg, &dc, &ImageSettings::default(), None, &hashes("h1"));
        assert_eq!(
            config_hashes_of(&built),
            [Some("h1".to_string()), Some("r2hash".to_string())]
        );
        let edited = deployments(&sg, &dc, &ImageSettings::default(), None, &hashes("h2"));
        assert_eq!(
            config_hashes_of(&edited),
            [Some("h2".to_string()), Some("r2hash".to_string())]
        );
        // The generated ConfigMap, when there is one, is what every rack reads.
        let generated = deployments(
            &sg,
            &dc,
            &ImageSettings::default(),
            Some("generated"),
            &hashes("h1"),
        );
        assert_eq!(
            config_hashes_of(&generated),
            [Some("genhash".to_string()), Some("genhash".to_string())]
        );
        // Nothing mounted: no annotation.
        let plain = deployments(
            &stargate(2),
            &dc,
            &ImageSettings::default(),
            None,
            &hashes("h1"),
        );
        assert_eq!(config_hashes_of(&plain), [None, None]);
    }

    #[test]
    fn a_cassandra_config_map_is_mounted_and_given_to_the_embedded_node() {
        let dc = datacenter(&["r1", "r2"], "4.1.5");
        let mut with_config = stargate(2);
        with_config.spec.template.cassandra_config_map_ref = Some(ConfigMapRef {
            name: "stargate-cassandra".into(),
        });
        let built = deployments(
            &with_config,
            &dc,
            &ImageSettings::default(),
            None,
            &BTreeMap::new(),
        );
        // Racks inherit the datacenter-level reference.
        for deployment in &built {
            let java = env_value(deployment, "JAVA_OPTS").unwrap_or_default();
            assert!(
                java.contains("-Dstargate.unsafe.cassandra_config_path=/config/cassandra.yaml"),
                "{java}"
            );
            let pod = deployment.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod");
            let volumes = pod.volumes.as_ref().expect("volumes");
            assert_eq!(volumes[0].name, "cassandra-config");
            assert_eq!(
                volumes[0].config_map.as_ref().map(|c| c.name.as_str()),
                Some("stargate-cassandra")
            );
            let mounts = pod.containers[0].volume_mounts.as_ref().expect("mounts");
            assert_eq!(
                (mounts[0].name.as_str(), mounts[0].mount_path.as_str()),
                ("cassandra-config", "/config")
            );
        }

        let without = deployments(
            &stargate(2),
            &dc,
            &ImageSettings::default(),
            None,
            &BTreeMap::new(),
        );
        let pod = without[0].spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod");
        assert!(pod.volumes.is_none() && pod.containers[0].volume_mounts.is_none());
        let java = env_value(&without[0], "JAVA_OPTS").unwrap_or_default();
        assert!(!java.contains("cassandra_config_path"), "{java}");
    }

    #[test]
    fn a_datacenter_with_encryption_shares_it_through_a_generated_config_map() {
        let mut dc = datacenter(&["r1"], "4.0.17");
        dc.spec.config = Some(serde_json::json!({"cassandra-yaml": {
            "num_tokens": 16,
            "server_encryption_options": {
                "internode_encryption": "all", "keystore": "/mnt/server-keystore/keystore"
            },
            "client_encryption_options": {"enabled": true},
            "native_transport_max_frame_size_in_mb": 64
        }}));
        let mut sg = stargate(1);
        sg.spec.cassandra_encryption = Some(CassandraEncryption {
            server_encryption_stores: serde_json::from_value(serde_json::json!({
                "keystoreSecretRef": {"name": "server-stores"},
                "truststoreSecretRef": {"name": "server-stores"}
            }))
            .ok(),
            client_encryption_stores: None,
        });
        let user = ConfigMap {
            metadata: ObjectMeta {
                name: Some("mine".into()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                "cassandra.yaml".to_string(),
                "read_request_timeout_in_ms: 10000\nserver_encryption_options:\n  internode_encryption: none\n"
                    .to_string(),
            )])),
            ..ConfigMap::default()
        };
        let generated =
            generated_config(&sg, &dc, Some(&user)).expect("valid").expect("a ConfigMap");
        assert_eq!(generated.name_any(), "mycluster-dc1-cassandra-config");
        let data = generated.data.clone().expect("data");
        let parse = |file: &str| -> serde_json::Value {
            serde_saphyr::from_str(&data[file]).expect("valid YAML")
        };
        assert_eq!(
            parse("cassandra.yaml"),
            serde_json::json!({
                "read_request_timeout_in_ms": 10000,
                "server_encryption_options": {
                    "internode_encryption": "all", "keystore": "/mnt/server-keystore/keystore"
                }
            }),
            "the user's settings, with the datacenter's encryption over them"
        );
        assert_eq!(
            parse(CQL_CONFIG_FILE),
            serde_json::json!({
                "client_encryption_options": {"enabled": true},
                "native_transport_max_frame_size_in_mb": 64
            })
        );

        let built = deployments(
            &sg,
            &dc,
            &ImageSettings::default(),
            Some("mycluster-dc1-cassandra-config"),
            &BTreeMap::new(),
        );
        let java = env_value(&built[0], "JAVA_OPTS").unwrap_or_default();
        assert!(
            java.contains("-Dstargate.cql.config_path=/config/stargate-cql.yaml"),
            "{java}"
        );
        let pod = built[0].spec.as_ref().and_then(|s| s.template.spec.clone()).expect("pod");
        let volumes: Vec<(String, Option<String>)> = pod
            .volumes
            .iter()
            .flatten()
            .map(|v| {
                let source = v
                    .config_map
                    .as_ref()
                    .map(|c| c.name.clone())
                    .or_else(|| v.secret.as_ref().and_then(|s| s.secret_name.clone()));
                (v.name.clone(), source)
            })
            .collect();
        assert_eq!(
            volumes,
            vec![
                (
                    "cassandra-config".to_string(),
                    Some("mycluster-dc1-cassandra-config".to_string())
                ),
                (
                    "server-keystore".to_string(),
                    Some("server-stores".to_string())
                ),
                (
                    "server-truststore".to_string(),
                    Some("server-stores".to_string())
                ),
            ]
        );
        let mounts: Vec<String> = pod.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.clone())
            .collect();
        assert_eq!(
            mounts,
            ["/config", "/mnt/server-keystore", "/mnt/server-truststore"]
        );

        // Nothing to share: no generated ConfigMap; a broken user file is named.
        let plain = datacenter(&["r1"], "4.0.17");
        assert!(generated_config(&sg, &plain, Some(&user)).expect("valid").is_none());
        let mut broken = user.clone();
        broken.data = Some(BTreeMap::from([(
            "cassandra.yaml".to_string(),
            "- a list".to_string(),
        )]));
        let error = generated_config(&sg, &dc, Some(&broken)).expect_err("not a mapping");
        assert_eq!(
            error.to_string(),
            "cassandra.yaml of ConfigMap mine: not a mapping of settings"
        );
    }

    #[test]
    fn stargate_avoids_cassandra_workers_unless_allowed() {
        let dc = datacenter(&[], "4.1.5");
        let images = ImageSettings::default();
        let affinity = |sg: &Stargate| {
            deployments(sg, &dc, &images, None, &BTreeMap::new())[0]
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|p| p.affinity.clone())
        };
        let avoided =
            affinity(&stargate(1)).and_then(|a| a.pod_anti_affinity).expect("anti-affinity");
        let term =
            &avoided.required_during_scheduling_ignored_during_execution.expect("required")[0];
        assert_eq!(term.topology_key, "kubernetes.io/hostname");
        let mut allowed = stargate(1);
        allowed.spec.template.allow_stargate_on_data_nodes = Some(true);
        assert_eq!(affinity(&allowed), None);
    }

    #[test]
    fn cassandra_3_gets_the_3_11_image() {
        let dc = datacenter(&[], "3.11.17");
        let images = ImageSettings::default();
        let built = deployments(&stargate(1), &dc, &images, None, &BTreeMap::new());
        let container =
            &built[0].spec.as_ref().expect("spec").template.spec.as_ref().expect("pod").containers
                [0];
        assert_eq!(
            container.image.as_deref(),
            Some(images.stargate_cassandra3.as_str())
        );
        assert_eq!(
            env_value(&built[0], "CLUSTER_VERSION").as_deref(),
            Some("3.11")
        );
        assert_eq!(
            env_value(&built[0], "RACK_NAME").as_deref(),
            Some("default")
        );
    }

    #[test]
    fn service_exposes_every_api_port_and_selects_the_stargate_pods() {
        let dc = datacenter(&["r1"], "4.1.5");
        let sg = stargate(1);
        let svc = service(&sg, &dc);
        assert_eq!(svc.name_any(), "mycluster-dc1-stargate-service");
        let spec = svc.spec.expect("spec");
        let ports: BTreeMap<String, i32> = spec
            .ports
            .into_iter()
            .flatten()
            .map(|p| (p.name.unwrap_or_default(), p.port))
            .collect();
        for (name, number) in [
            ("cassandra", 9042),
            ("rest", 8082),
            ("graphql", 8080),
            ("grpc", 8090),
            ("health", 8084),
            ("metrics", 8085),
        ] {
            assert_eq!(ports.get(name), Some(&number), "{name}");
        }
        let pod_labels = deployments(&sg, &dc, &ImageSettings::default(), None, &BTreeMap::new())
            [0]
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .expect("labels");
        for (key, value) in spec.selector.expect("selector") {
            assert_eq!(pod_labels.get(&key), Some(&value));
        }
    }

    #[test]
    fn status_follows_the_deployments() {
        let sg = stargate(2);
        let now = Time(k8s_openapi::jiff::Timestamp::from_second(1_000).expect("time"));
        let pending = status(
            &sg,
            Err(&Waiting::DatacenterNotReady("dc1".into())),
            now.clone(),
        );
        assert_eq!(pending.progress, Some(StargateProgress::Pending));
        assert!(!pending.is_ready());
        let names = vec!["d1".to_string()];
        let deploying = Rollout {
            desired: 2,
            replicas: 2,
            ready: 1,
            updated: 2,
            available: 1,
            observed_current: true,
        };
        let s = status(&sg, Ok((&names, Some("svc"), deploying)), now.clone());
        assert_eq!(s.progress, Some(StargateProgress::Deploying));
        assert_eq!(s.ready_replicas_ratio.as_deref(), Some("1/2"));
        let done = Rollout {
            ready: 2,
            available: 2,
            ..deploying
        };
        let s = status(&sg, Ok((&names, Some("svc"), done)), now);
        assert_eq!(s.progress, Some(StargateProgress::Running));
        assert!(s.is_ready());
        assert_eq!(s.service_ref.as_deref(), Some("svc"));
    }
}
