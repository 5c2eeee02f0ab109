//! K8ssandraCluster (k8ssandra.io/v1alpha1): one Cassandra cluster whose datacenters run in one
//! or more Kubernetes clusters, with its Stargate, Reaper and Medusa.
//!
//! Field names follow k8ssandra-operator so that its manifests apply unchanged. Every level
//! Federator interprets is typed, so the API server prunes or rejects a misspelt key there;
//! subtrees Federator only passes on (cassandra.yaml, container lists, affinity, Medusa) keep
//! unknown fields.
//!
//! Datacenter settings can be given once for the cluster (`spec.cassandra`) and overridden per
//! datacenter (`spec.cassandra.datacenters[]`): both levels flatten the same [`DatacenterOptions`],
//! and the datacenter's value wins ([`DatacenterOptions::merged_over`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSecurityContext, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cassdc::{
    CassandraDatacenterStatus, DseWorkloads, ManagementApiAuth, NetworkingConfig, Rack, ServerType,
    StorageConfig,
};
use super::medusa::MedusaClusterTemplate;
use super::reaper::{ReaperClusterTemplate, ReaperStatus};
use super::shared::{
    ConfigMapRef, ContainerImage, EncryptionStores, MetaTags, SecretRef, SecretsProvider,
    TelemetrySpec, condition_list, preserve_unknown_fields, preserve_unknown_fields_list,
    tidy_schema,
};
use super::stargate::{StargateClusterTemplate, StargateDatacenterTemplate, StargateStatus};

/// Most datacenters one K8ssandraCluster may have (bounds the cost of the CEL list rules; room
/// for one datacenter in each of 100 regions).
pub const MAX_DATACENTERS: u32 = 128;

pub use super::shared::MAX_DATACENTER_SIZE;

/// Most racks one datacenter may have (one StatefulSet each, and one Stargate Deployment each).
pub const MAX_RACKS: u32 = 64;

/// Most `additionalSeeds` entries (each host name is resolved, each address goes into the seed
/// EndpointSlices of every datacenter).
pub const MAX_ADDITIONAL_SEEDS: u32 = 100;

/// DNS-1035 label: datacenter names become parts of Kubernetes object names.
pub const DATACENTER_NAME_PATTERN: &str = r"^[a-z]([-a-z0-9]*[a-z0-9])?$";

/// Cassandra versions are always major.minor.patch.
pub const SERVER_VERSION_PATTERN: &str = r"^\d+\.\d+\.\d+$";

pub const CLUSTER_NAME_IMMUTABLE_MESSAGE: &str = "clusterName is immutable once set; create a new K8ssandraCluster to rename a Cassandra cluster";
pub const CLUSTER_NAME_REMOVED_MESSAGE: &str = "spec.cassandra.clusterName cannot be removed once set (the Cassandra cluster keeps its name); restore the previous value";
pub const DUPLICATE_DATACENTER_MESSAGE: &str = "datacenter names (metadata.name) must be unique within a K8ssandraCluster; rename one of the duplicates";
pub const K8S_CONTEXT_IMMUTABLE_MESSAGE: &str = "a datacenter's k8sContext cannot change while the datacenter stays in spec.cassandra.datacenters; to move it, remove the datacenter in one update and add it back with the new k8sContext in a later one";

/// The desired Cassandra cluster and its companions.
// Several printer columns share `type_ = "string"`; clippy reads that as a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "k8ssandra.io",
    version = "v1alpha1",
    kind = "K8ssandraCluster",
    doc = "A Cassandra cluster whose datacenters run in one or more Kubernetes clusters (K8ssandra API).",
    plural = "k8ssandraclusters",
    shortname = "k8c",
    shortname = "k8cs",
    namespaced,
    status = "K8ssandraClusterStatus",
    derive = "PartialEq",
    cel,
    printcolumn(
        name = "DCs",
        type_ = "string",
        description = "Ready datacenters / datacenters in the spec",
        json_path = ".status.datacenterSummary"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Error",
        type_ = "string",
        description = "Latest reconcile error",
        json_path = ".status.error"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(
    "!has(oldSelf.cassandra) || !has(oldSelf.cassandra.clusterName) || (has(self.cassandra) && has(self.cassandra.clusterName))"
).message(CLUSTER_NAME_REMOVED_MESSAGE))]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct K8ssandraClusterSpec {
    /// Whether Cassandra authentication is on (default true); also applies to Stargate,
    /// Reaper and Medusa.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<bool>,
    /// The Cassandra cluster. Absent only in placeholder manifests.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "readable_cassandra"
    )]
    pub cassandra: Option<CassandraClusterTemplate>,
    /// A Stargate in every datacenter (a datacenter's own `stargate` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stargate: Option<Box<StargateClusterTemplate>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaper: Option<Box<ReaperClusterTemplate>>,
    /// Medusa backups: the medusa container and medusa-restore init container in every
    /// datacenter, with its medusa.ini and storage Secret; the fields not acted on yet are named
    /// by the FieldsNotActedOn condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medusa: Option<Box<MedusaClusterTemplate>>,
    /// Datacenters of the Cassandra cluster that this K8ssandraCluster does not manage: they get
    /// system keyspace replicas from the first datacenter's start, and every datacenter skips
    /// creating the superuser, which they already have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_DATACENTERS))]
    pub external_datacenters: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets_provider: Option<SecretsProvider>,
}

impl K8ssandraClusterSpec {
    /// The fields that are set but that Federator does not act on yet, each as its path with
    /// what a user would otherwise expect.
    pub fn fields_not_acted_on(&self) -> Vec<String> {
        let mut fields = Vec::new();
        if let Some(medusa) = &self.medusa {
            fields.extend(medusa.fields_not_acted_on());
        }
        if let Some(reaper) = &self.reaper {
            fields.extend(reaper.template.fields_not_acted_on("spec.reaper"));
            if reaper.references_a_reaper() && reaper.template.encryption.is_some() {
                fields.push(
                    "spec.reaper.encryption (with reaperRef, the referenced Reaper's own spec.encryption decides how Federator connects to it)"
                        .to_string(),
                );
            }
        }
        fields
    }

    /// `secretsProvider: external`: an injector (e.g. Vault's) provides the credentials and
    /// stores; Federator makes and mounts none.
    pub fn uses_external_secrets(&self) -> bool {
        self.secrets_provider == Some(SecretsProvider::External)
    }

    /// Authentication is on unless explicitly turned off.
    pub fn auth_enabled(&self) -> bool {
        self.auth.unwrap_or(true)
    }

    /// The datacenters in spec order (empty without `cassandra`).
    pub fn datacenters(&self) -> &[CassandraDatacenterTemplate] {
        self.cassandra.as_ref().and_then(|c| c.datacenters.as_deref()).unwrap_or_default()
    }
}

impl K8ssandraCluster {
    /// The Cassandra cluster name: `spec.cassandra.clusterName`, else the object's name.
    pub fn cassandra_cluster_name(&self) -> String {
        self.spec
            .cassandra
            .as_ref()
            .and_then(|c| c.cluster_name.clone())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| self.metadata.name.clone().unwrap_or_default())
    }
}

/// `spec.cassandra`: cluster-wide settings and the datacenters.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CassandraClusterTemplate {
    /// Name of the Cassandra cluster (cluster_name); defaults to the K8ssandraCluster's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message(CLUSTER_NAME_IMMUTABLE_MESSAGE))]
    pub cluster_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_type: Option<ServerType>,
    /// Secret with the superuser's `username` and `password`; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superuser_secret_ref: Option<SecretRef>,
    /// Seeds outside this K8ssandraCluster (host names or IPs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_ADDITIONAL_SEEDS))]
    pub additional_seeds: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_encryption_stores: Option<EncryptionStores>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_encryption_stores: Option<EncryptionStores>,
    /// Labels and annotations for every datacenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Box<CassandraMetadata>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_DATACENTERS))]
    #[x_kube(
        validation = Rule::new("self.all(x, self.exists_one(y, y.metadata.name == x.metadata.name))")
            // No `reason: FieldValueDuplicate`: the API server would then print only
            // `Duplicate value: "array"` and drop this message.
            .message(DUPLICATE_DATACENTER_MESSAGE),
        validation = Rule::new(
            "self.all(dc, oldSelf.all(old, old.metadata.name != dc.metadata.name || (has(old.k8sContext) ? old.k8sContext : '') == (has(dc.k8sContext) ? dc.k8sContext : '')))"
        ).message(K8S_CONTEXT_IMMUTABLE_MESSAGE)
    )]
    pub datacenters: Option<Vec<CassandraDatacenterTemplate>>,
    /// Defaults for every datacenter.
    #[serde(flatten)]
    pub options: DatacenterOptions,
    /// Why `spec.cassandra` as stored could not be read (every other field is then empty): a
    /// value nested deeper than [`MAX_NESTING`]. Not part of the API: never read from an
    /// object, and only in memory.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub unreadable: Option<String>,
}

/// Deepest nesting below `spec.cassandra` Federator reads. The API server stores objects up to
/// 10,000 levels deep in free-form fields (cassandraYaml, containers...), but the Kubernetes
/// client's JSON decoder stops at 128 levels from the object's root, and one undecodable
/// object would fail the whole list of K8ssandraClusters.
pub const MAX_NESTING: usize = 100;

/// Reads `spec.cassandra` from its own text: one nested too deep becomes a template that only
/// says so ([`CassandraClusterTemplate::unreadable`]), instead of an error that would fail
/// every K8ssandraCluster of the list or watch it arrives in.
fn readable_cassandra<'de, D>(deserializer: D) -> Result<Option<CassandraClusterTemplate>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error as _;
    let Some(raw) = Option::<Box<serde_json::value::RawValue>>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Some(path) = too_deep(raw.get(), MAX_NESTING) {
        return Ok(Some(CassandraClusterTemplate {
            unreadable: Some(format!(
                "spec.cassandra{path} is nested more than {MAX_NESTING} levels deep; Federator does not read it: flatten it"
            )),
            ..Default::default()
        }));
    }
    serde_json::from_str(raw.get()).map(Some).map_err(D::Error::custom)
}

/// Where the JSON `text` first nests more than `limit` objects and lists deep, as a path
/// (`.config.cassandraYaml.a…`); `None` when it never does. Iterative: any depth is read.
pub fn too_deep(text: &str, limit: usize) -> Option<String> {
    enum Frame<'a> {
        Object(Option<&'a str>),
        List(usize),
    }
    let bytes = text.as_bytes();
    let mut frames: Vec<Frame> = Vec::new();
    let mut last_string: Option<&str> = None;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'"' => {
                let start = index + 1;
                index = start;
                while index < bytes.len() && bytes[index] != b'"' {
                    index += if bytes[index] == b'\\' { 2 } else { 1 };
                }
                last_string = text.get(start..index.min(bytes.len()));
            }
            b':' => {
                if let Some(Frame::Object(key)) = frames.last_mut() {
                    *key = last_string.take();
                }
            }
            b',' => {
                if let Some(Frame::List(position)) = frames.last_mut() {
                    *position += 1;
                }
            }
            b'{' | b'[' if frames.len() >= limit => {
                const SHOWN: usize = 6;
                let mut path: String = (frames.iter().take(SHOWN))
                    .map(|frame| match frame {
                        Frame::Object(key) => format!(".{}", key.unwrap_or("?")),
                        Frame::List(position) => format!("[{position}]"),
                    })
                    .collect();
                if frames.len() > SHOWN {
                    path.push('…');
                }
                return Some(path);
            }
            b'{' => frames.push(Frame::Object(None)),
            b'[' => frames.push(Frame::List(0)),
            b'}' | b']' => {
                frames.pop();
            }
            _ => {}
        }
        index += 1;
    }
    None
}

/// One datacenter of the cluster, placed in the Kubernetes cluster named by `k8sContext`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CassandraDatacenterTemplate {
    pub metadata: DatacenterMetadata,
    /// Context (ClientConfig) of the Kubernetes cluster to run in; absent or "" is the control
    /// plane's own cluster.
    #[serde(
        rename = "k8sContext",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(length(max = 253))]
    pub k8s_context: Option<String>,
    /// Number of Cassandra nodes.
    #[schemars(range(min = 1, max = MAX_DATACENTER_SIZE))]
    pub size: i32,
    /// Scale the datacenter to zero pods, keeping its volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stargate: Option<Box<StargateDatacenterTemplate>>,
    /// ConfigMap with per-node configuration files (`<pod>_cassandra.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_node_config_map_ref: Option<ConfigMapRef>,
    /// Overrides of the cluster-level options.
    #[serde(flatten)]
    pub options: DatacenterOptions,
}

impl CassandraDatacenterTemplate {
    /// The datacenter's name in the spec (metadata.name).
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The region's context; "" is the control plane's own cluster.
    pub fn context(&self) -> &str {
        self.k8s_context.as_deref().unwrap_or("")
    }

    /// The datacenter's name inside Cassandra: `datacenterName` when set, else metadata.name.
    pub fn cassandra_datacenter_name(&self) -> &str {
        self.options
            .datacenter_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.metadata.name)
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.unwrap_or(false)
    }
}

/// Settings that can be given for the whole cluster and overridden per datacenter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatacenterOptions {
    /// Cassandra version, major.minor.patch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SERVER_VERSION_PATTERN), length(max = 64))]
    pub server_version: Option<String>,
    /// Full image reference; derived from serverType and serverVersion when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_image: Option<String>,
    /// Name of the datacenter inside Cassandra when it must differ from metadata.name.
    /// Per datacenter only: accepted at cluster level (upstream schema) but not inherited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Box<CassandraConfig>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_config: Option<Box<StorageConfig>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networking: Option<NetworkingConfig>,
    /// Resources of the Cassandra container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Racks (failure domains) of each datacenter; one rack named "default" when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_RACKS))]
    pub racks: Option<Vec<Rack>>,
    /// Tolerations of the Cassandra pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Metrics and logs of the Cassandra pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetrySpec>,
    /// Heap of the management API agent.
    #[serde(
        rename = "mgmtAPIHeap",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mgmt_api_heap: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_api_auth: Option<ManagementApiAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmx_init_container_image: Option<ContainerImage>,
    /// Allow more than one Cassandra pod per worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_pod_anti_affinity: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<Box<PodSecurityContext>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_priority_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    /// Extra or overridden containers of the Cassandra pod (core/v1 Container), passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields_list")]
    pub containers: Option<Vec<serde_json::Value>>,
    /// Extra or overridden init containers (core/v1 Container), passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields_list")]
    pub init_containers: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_volumes: Option<ExtraVolumes>,
    /// Deprecated upstream; kept so manifests that set it are accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_node_config_init_container_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dse_workloads: Option<DseWorkloads>,
    /// Change data capture to Pulsar: passed through to cass-operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub cdc: Option<serde_json::Value>,
    /// Per datacenter only, like datacenterName: not inherited from the cluster level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuild: Option<RebuildOptions>,
}

impl DatacenterOptions {
    /// These options with every field absent here taken from `cluster`: the datacenter wins
    /// field by field, with whole values, except `config`, which merges key by key
    /// ([`CassandraConfig::merge`]).
    pub fn merged_over(&self, cluster: &DatacenterOptions) -> DatacenterOptions {
        use super::shared::own_or as pick;
        DatacenterOptions {
            server_version: pick(&self.server_version, &cluster.server_version),
            server_image: pick(&self.server_image, &cluster.server_image),
            datacenter_name: self.datacenter_name.clone(),
            config: CassandraConfig::merge(self.config.as_deref(), cluster.config.as_deref())
                .map(Box::new),
            storage_config: pick(&self.storage_config, &cluster.storage_config),
            networking: pick(&self.networking, &cluster.networking),
            resources: pick(&self.resources, &cluster.resources),
            racks: pick(&self.racks, &cluster.racks),
            tolerations: pick(&self.tolerations, &cluster.tolerations),
            telemetry: pick(&self.telemetry, &cluster.telemetry),
            mgmt_api_heap: pick(&self.mgmt_api_heap, &cluster.mgmt_api_heap),
            management_api_auth: pick(&self.management_api_auth, &cluster.management_api_auth),
            jmx_init_container_image: pick(
                &self.jmx_init_container_image,
                &cluster.jmx_init_container_image,
            ),
            soft_pod_anti_affinity: pick(
                &self.soft_pod_anti_affinity,
                &cluster.soft_pod_anti_affinity,
            ),
            pod_security_context: pick(&self.pod_security_context, &cluster.pod_security_context),
            service_account: pick(&self.service_account, &cluster.service_account),
            pod_priority_class_name: pick(
                &self.pod_priority_class_name,
                &cluster.pod_priority_class_name,
            ),
            read_only_root_filesystem: pick(
                &self.read_only_root_filesystem,
                &cluster.read_only_root_filesystem,
            ),
            containers: pick(&self.containers, &cluster.containers),
            init_containers: pick(&self.init_containers, &cluster.init_containers),
            extra_volumes: pick(&self.extra_volumes, &cluster.extra_volumes),
            per_node_config_init_container_image: pick(
                &self.per_node_config_init_container_image,
                &cluster.per_node_config_init_container_image,
            ),
            dse_workloads: pick(&self.dse_workloads, &cluster.dse_workloads),
            cdc: pick(&self.cdc, &cluster.cdc),
            rebuild: self.rebuild.clone(),
        }
    }
}

/// Labels and annotations of one generated Service.
pub type ServiceMetadata = MetaTags;

/// Labels and annotations of the Services cass-operator creates for a datacenter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatacenterServicesMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dc_service: Option<ServiceMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_service: Option<ServiceMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_pods_service: Option<ServiceMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_seed_service: Option<ServiceMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port_service: Option<ServiceMetadata>,
}

/// Labels and annotations of a datacenter's objects: the CassandraDatacenter itself
/// (`labels`/`annotations`), every object it leads to (`common*`), its pods and its Services.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CassandraMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<MetaTags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<DatacenterServicesMetadata>,
}

impl CassandraMetadata {
    /// The datacenter's labels and annotations over the cluster's: maps merge, the datacenter's
    /// value wins for a key present at both levels.
    pub fn merged_over(&self, cluster: &CassandraMetadata) -> CassandraMetadata {
        fn merge_maps(
            own: &Option<BTreeMap<String, String>>,
            base: &Option<BTreeMap<String, String>>,
        ) -> Option<BTreeMap<String, String>> {
            match (own, base) {
                (None, None) => None,
                (own, base) => {
                    let mut merged = base.clone().unwrap_or_default();
                    merged.extend(own.clone().unwrap_or_default());
                    Some(merged)
                }
            }
        }
        fn merge_tags(own: &Option<MetaTags>, base: &Option<MetaTags>) -> Option<MetaTags> {
            match (own, base) {
                (None, None) => None,
                (own, base) => {
                    let own = own.clone().unwrap_or_default();
                    let base = base.clone().unwrap_or_default();
                    Some(MetaTags {
                        labels: merge_maps(&own.labels, &base.labels),
                        annotations: merge_maps(&own.annotations, &base.annotations),
                    })
                }
            }
        }
        let services = match (&self.services, &cluster.services) {
            (None, None) => None,
            (own, base) => {
                let own = own.clone().unwrap_or_default();
                let base = base.clone().unwrap_or_default();
                Some(DatacenterServicesMetadata {
                    dc_service: merge_tags(&own.dc_service, &base.dc_service),
                    seed_service: merge_tags(&own.seed_service, &base.seed_service),
                    all_pods_service: merge_tags(&own.all_pods_service, &base.all_pods_service),
                    additional_seed_service: merge_tags(
                        &own.additional_seed_service,
                        &base.additional_seed_service,
                    ),
                    node_port_service: merge_tags(&own.node_port_service, &base.node_port_service),
                })
            }
        };
        CassandraMetadata {
            labels: merge_maps(&self.labels, &cluster.labels),
            annotations: merge_maps(&self.annotations, &cluster.annotations),
            common_labels: merge_maps(&self.common_labels, &cluster.common_labels),
            common_annotations: merge_maps(&self.common_annotations, &cluster.common_annotations),
            pods: merge_tags(&self.pods, &cluster.pods),
            services,
        }
    }
}

/// `datacenters[].metadata`: the datacenter's name (and so its CassandraDatacenter's), its
/// namespace in the region, and its labels and annotations.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatacenterMetadata {
    #[schemars(regex(pattern = DATACENTER_NAME_PATTERN), length(min = 1, max = 63))]
    pub name: String,
    /// Namespace in the region; defaults to the K8ssandraCluster's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub namespace: Option<String>,
    #[serde(flatten)]
    pub tags: CassandraMetadata,
}

/// Volumes added to every Cassandra pod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtraVolumes {
    /// core/v1 Volumes, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields_list")]
    pub volumes: Option<Vec<serde_json::Value>>,
    /// Volumes backed by claims managed by the StatefulSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvcs: Option<Vec<super::cassdc::AdditionalVolume>>,
}

/// Rebuild of a new datacenter from an existing one.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RebuildOptions {
    /// Datacenter to stream data from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_dc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_concurrent_rebuilds: Option<i32>,
}

/// Cassandra server configuration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CassandraConfig {
    /// cassandra.yaml settings, passed through as written (snake_case keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub cassandra_yaml: Option<serde_json::Value>,
    /// dse.yaml settings (serverType dse), passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub dse_yaml: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jvm_options: Option<JvmOptions>,
}

impl CassandraConfig {
    /// The datacenter's config over the cluster's: cassandra.yaml and dse.yaml keys merge
    /// (datacenter keys win, recursively); JVM options merge field by field.
    pub fn merge(
        datacenter: Option<&CassandraConfig>,
        cluster: Option<&CassandraConfig>,
    ) -> Option<CassandraConfig> {
        match (datacenter, cluster) {
            (None, None) => None,
            (Some(only), None) | (None, Some(only)) => Some(only.clone()),
            (Some(dc), Some(cluster)) => Some(CassandraConfig {
                cassandra_yaml: merge_json(
                    dc.cassandra_yaml.as_ref(),
                    cluster.cassandra_yaml.as_ref(),
                ),
                dse_yaml: merge_json(dc.dse_yaml.as_ref(), cluster.dse_yaml.as_ref()),
                jvm_options: match (&dc.jvm_options, &cluster.jvm_options) {
                    (Some(dc_jvm), Some(cluster_jvm)) => Some(dc_jvm.merged_over(cluster_jvm)),
                    (own, fallback) => own.clone().or_else(|| fallback.clone()),
                },
            }),
        }
    }
}

/// Recursive merge of two JSON objects; `preferred` wins on conflicts.
fn merge_json(
    preferred: Option<&serde_json::Value>,
    fallback: Option<&serde_json::Value>,
) -> Option<serde_json::Value> {
    match (preferred, fallback) {
        (Some(serde_json::Value::Object(own)), Some(serde_json::Value::Object(base))) => {
            let mut merged = base.clone();
            for (key, value) in own {
                let combined =
                    merge_json(Some(value), base.get(key)).unwrap_or_else(|| value.clone());
                merged.insert(key.clone(), combined);
            }
            Some(serde_json::Value::Object(merged))
        }
        (Some(own), _) => Some(own.clone()),
        (None, base) => base.cloned(),
    }
}

/// Garbage collector of the Cassandra JVM.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum GarbageCollector {
    #[default]
    #[serde(rename = "G1GC")]
    G1,
    #[serde(rename = "CMS")]
    Cms,
    #[serde(rename = "ZGC")]
    Zgc,
    Shenandoah,
    Graal,
    /// Flags given entirely through additionalOptions.
    Custom,
}

/// JVM options of the Cassandra process. Keys keep upstream's spelling: snake_case names of
/// jvm-server-options entries, camelCase for the heap shortcuts and the free-form lists.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct JvmOptions {
    /// Sets both initial and max heap (-Xms/-Xmx).
    #[serde(rename = "heapSize", default, skip_serializing_if = "Option::is_none")]
    pub heap_size: Option<Quantity>,
    /// Young generation size (-Xmn), CMS only.
    #[serde(
        rename = "heapNewGenSize",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub heap_new_gen_size: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_initial_size: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_max_size: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc: Option<GarbageCollector>,
    /// Extra JVM flags for every Java version.
    #[serde(
        rename = "additionalOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub additional_options: Option<Vec<String>>,
    #[serde(
        rename = "additionalJvmServerOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub additional_jvm_server_options: Option<Vec<String>>,
    #[serde(
        rename = "additionalJvm8ServerOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub additional_jvm8_server_options: Option<Vec<String>>,
    #[serde(
        rename = "additionalJvm11ServerOptions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub additional_jvm11_server_options: Option<Vec<String>>,

    // cassandra_* system properties
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_available_processors: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_disable_auth_caches_remote_configuration: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_expiration_date_overflow_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_force_3_0_protocol_version: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_force_default_indexing_page_size: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_max_hint_ttl_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_metrics_reporter_config_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_ring_delay_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_triggers_directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_write_survey: Option<bool>,

    // debug_* flags
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_disable_contended_annotations: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_enable_flight_recorder: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_listen_remote_debuggers: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_log_compilation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_non_safepoints: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_preserve_frame_pointer: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_unlock_commercial_features: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_unlock_diagnostic_vm_options: Option<bool>,

    // CMS
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_cms_heap_size_young_generation: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub gc_cms_initiating_occupancy_fraction: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_cms_max_tenuring_threshold: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_cms_survivor_ratio: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_cms_wait_duration_ms: Option<i64>,

    // G1
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_g1_conc_threads: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub gc_g1_initiating_heap_occupancy_percent: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_g1_max_gc_pause_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_g1_parallel_threads: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub gc_g1_rset_updating_pause_time_percent: Option<i32>,

    // GC logging
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_print_application_stopped_time: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_print_date_stamps: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_print_details: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_print_flss_statistics: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_print_heap: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_print_log_file_size: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_print_number_of_log_files: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_print_promotion_failure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_print_tenuring_distribution: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_print_use_log_file: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_print_use_log_file_rotation: Option<bool>,

    // JDK, JMX, Netty, NIO
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jdk_allow_attach_self: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmx_connection_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmx_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmx_remote_ssl: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmx_remote_ssl_opts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmx_remote_ssl_require_client_auth: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netty_eventloop_maxpendingtasks: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netty_try_reflection_set_accessible: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nio_align_direct_memory: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nio_maxcachedbuffersize: Option<Quantity>,

    // vm_* flags
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_always_pre_touch: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_crash_on_out_of_memory_error: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_disable_biased_locking: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_disable_perf_shared_mem: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_enable_assertions: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_enable_non_root_thread_priority: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_enable_thread_priorities: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_exit_on_out_of_memory_error: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_guaranteed_safepoint_interval_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_heap_dump_on_out_of_memory_error: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_per_thread_stack_size: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_prefer_ipv4: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_print_heap_histogram_on_out_of_memory_error: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_resize_tlab: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_string_table_size: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_use_numa: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_use_tlab: Option<bool>,
}

impl JvmOptions {
    /// These options with every absent field taken from `cluster`. Done through JSON so that
    /// the ~80 fields cannot drift out of the merge when one is added.
    pub fn merged_over(&self, cluster: &JvmOptions) -> JvmOptions {
        let own = serde_json::to_value(self).ok();
        let base = serde_json::to_value(cluster).ok();
        merge_json(own.as_ref(), base.as_ref())
            .and_then(|merged| serde_json::from_value(merged).ok())
            .unwrap_or_else(|| self.clone())
    }
}

/// Observed state of a K8ssandraCluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct K8ssandraClusterStatus {
    /// Ready, Progressing, Degraded, RegionUnreachable... (metav1.Condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "condition_list")]
    pub conditions: Option<Vec<Condition>>,
    /// What each region reports, keyed by datacenter name (metadata.name). Boxed because a
    /// map's node holds room for 11 values: 6 KiB per cached cluster with one datacenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenters: Option<BTreeMap<String, Box<DatacenterStatus>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Latest reconcile error, if the last reconcile failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_datacenters: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_datacenters: Option<i32>,
    /// "ready/total", shown by `kubectl get k8c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter_summary: Option<String>,
}

impl K8ssandraClusterStatus {
    /// Sets the ready/total counters and the summary shown by kubectl, consistently.
    pub fn set_datacenter_counts(&mut self, ready: i32, total: i32) {
        self.ready_datacenters = Some(ready);
        self.total_datacenters = Some(total);
        self.datacenter_summary = Some(format!("{ready}/{total}"));
    }
}

/// What one region reports about one datacenter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatacenterStatus {
    /// The region (context) the datacenter runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_name: Option<String>,
    /// The CassandraDatacenter's status as cass-operator reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra: Option<CassandraDatacenterStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stargate: Option<StargateStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaper: Option<ReaperStatus>,
    /// Progress of the removal of this datacenter, while it is being decommissioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decommission_progress: Option<String>,
    /// The datacenter's Medusa backups as its region lists them, when `spec.medusa` is set
    /// (Federator's addition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backups: Option<DatacenterBackups>,
}

/// The newest MedusaBackup of a datacenter, and the MedusaBackupJob running on it, if one is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatacenterBackups {
    /// The MedusaBackup that finished last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<LastBackup>,
    /// A MedusaBackupJob of the datacenter that has not finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<String>,
}

/// A MedusaBackup, summed up.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastBackup {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,
    /// Medusa's status of the backup (`SUCCESS`, `FAILED`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Nodes whose backup finished, of those in the datacenter at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_nodes: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_nodes: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaper_encryption_is_acted_on_unless_a_referenced_reaper_decides() {
        let spec = |reaper: serde_json::Value| -> K8ssandraClusterSpec {
            serde_json::from_value(serde_json::json!({"reaper": reaper})).expect("spec")
        };
        let encryption = serde_json::json!({"serverCertName": "s", "clientCertName": "c"});
        let own = spec(serde_json::json!({"encryption": encryption}));
        assert!(
            !own.fields_not_acted_on().iter().any(|f| f.contains("encryption")),
            "{:?}",
            own.fields_not_acted_on()
        );
        let referenced =
            spec(serde_json::json!({"reaperRef": {"name": "cp"}, "encryption": encryption}));
        assert!(
            (referenced.fields_not_acted_on().iter())
                .any(|f| f.starts_with("spec.reaper.encryption (with reaperRef")),
            "{:?}",
            referenced.fields_not_acted_on()
        );
    }

    fn datacenter(name: &str, context: Option<&str>) -> CassandraDatacenterTemplate {
        CassandraDatacenterTemplate {
            metadata: DatacenterMetadata {
                name: name.into(),
                ..Default::default()
            },
            k8s_context: context.map(str::to_string),
            size: 1,
            ..Default::default()
        }
    }

    #[test]
    fn too_deep_names_where_the_nesting_passes_the_limit() {
        let text = r#"{"a\"b": [1, {"c": [[0]], "d": "{[{["}]}"#;
        assert_eq!(too_deep(text, 3).as_deref(), Some(r#".a\"b[1].c"#));
        assert_eq!(
            too_deep(text, 5),
            None,
            "brackets inside strings do not count"
        );
        let deep = format!("{}{}", "[".repeat(20), "]".repeat(20));
        assert_eq!(too_deep(&deep, 10).as_deref(), Some("[0][0][0][0][0][0]…"));
    }

    #[test]
    fn cluster_name_defaults_to_object_name() {
        let mut cluster = K8ssandraCluster::new("demo", K8ssandraClusterSpec::default());
        assert_eq!(cluster.cassandra_cluster_name(), "demo");
        cluster.spec.cassandra = Some(CassandraClusterTemplate {
            cluster_name: Some("Weird Cluster Name".into()),
            ..Default::default()
        });
        assert_eq!(cluster.cassandra_cluster_name(), "Weird Cluster Name");
    }

    #[test]
    fn datacenter_helpers() {
        let mut dc = datacenter("dc2", Some("kind-k8ssandra-1"));
        assert_eq!(dc.context(), "kind-k8ssandra-1");
        assert_eq!(dc.cassandra_datacenter_name(), "dc2");
        dc.options.datacenter_name = Some("real-dc2".into());
        assert_eq!(dc.cassandra_datacenter_name(), "real-dc2");
        assert_eq!(datacenter("dc1", None).context(), "");
    }

    #[test]
    fn datacenter_options_win_over_cluster_options() {
        let cluster: DatacenterOptions = serde_json::from_value(serde_json::json!({
            "serverVersion": "4.0.17",
            "mgmtAPIHeap": "64Mi",
            "config": {
                "cassandraYaml": {"num_tokens": 16, "auto_snapshot": false},
                "jvmOptions": {"heapSize": "512Mi", "gc": "CMS"}
            }
        }))
        .expect("valid options");
        let dc: DatacenterOptions = serde_json::from_value(serde_json::json!({
            "serverVersion": "4.1.8",
            "config": {
                "cassandraYaml": {"num_tokens": 4},
                "jvmOptions": {"heap_max_size": "1Gi"}
            }
        }))
        .expect("valid options");

        let merged = dc.merged_over(&cluster);
        assert_eq!(merged.server_version.as_deref(), Some("4.1.8"));
        assert_eq!(merged.mgmt_api_heap, Some(Quantity("64Mi".into())));
        let config = merged.config.expect("config merged");
        assert_eq!(
            config.cassandra_yaml,
            Some(serde_json::json!({"num_tokens": 4, "auto_snapshot": false}))
        );
        let jvm = config.jvm_options.expect("jvm options merged");
        assert_eq!(jvm.heap_size, Some(Quantity("512Mi".into())));
        assert_eq!(jvm.heap_max_size, Some(Quantity("1Gi".into())));
        assert_eq!(jvm.gc, Some(GarbageCollector::Cms));
    }

    #[test]
    fn mgmt_api_heap_and_k8s_context_keep_upstream_spelling() {
        let mut dc = datacenter("dc1", Some("kind-k8ssandra-0"));
        dc.options.mgmt_api_heap = Some(Quantity("64Mi".into()));
        let json = serde_json::to_value(&dc).expect("serializes");
        assert_eq!(json["k8sContext"], "kind-k8ssandra-0");
        assert_eq!(json["mgmtAPIHeap"], "64Mi");
        assert_eq!(json["metadata"], serde_json::json!({"name": "dc1"}));
    }

    #[test]
    fn datacenter_labels_merge_over_cluster_labels() {
        let labels = |pairs: &[(&str, &str)]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        let cluster = CassandraMetadata {
            common_labels: labels(&[("team", "data"), ("tier", "gold")]),
            ..Default::default()
        };
        let dc = CassandraMetadata {
            common_labels: labels(&[("tier", "silver")]),
            ..Default::default()
        };
        let merged = dc.merged_over(&cluster);
        assert_eq!(
            merged.common_labels,
            labels(&[("team", "data"), ("tier", "silver")])
        );
        assert_eq!(merged.labels, None);
    }

    #[test]
    fn status_counts_and_summary_agree() {
        let mut status = K8ssandraClusterStatus::default();
        status.set_datacenter_counts(1, 2);
        assert_eq!(status.datacenter_summary.as_deref(), Some("1/2"));
        assert_eq!(
            (status.ready_datacenters, status.total_datacenters),
            (Some(1), Some(2))
        );
    }
}
