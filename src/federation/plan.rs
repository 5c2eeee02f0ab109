//! The desired CassandraDatacenters of a K8ssandraCluster, one per datacenter, computed without
//! I/O: same input, same output.
//!
//! Each datacenter is the cluster-level options merged with its own (the datacenter wins; maps
//! merge, lists replace), made into the CassandraDatacenter k8ssandra-operator would make, with
//! these deliberate differences:
//! - `app.kubernetes.io/managed-by: federator` instead of k8ssandra-operator's
//!   `app.kubernetes.io/name: k8ssandra-operator`, plus Federator's `k8ssandra.io/datacenter`;
//!   ownership labels cannot be overridden by user labels (watches and cleanup select on them);
//! - `skip-user-creation` goes on every datacenter but the first in spec order (upstream: but the
//!   first in its priority order, which puts existing datacenters first);
//! - `jvmOptions.gc` defaults to G1GC after the cluster/datacenter merge (upstream's CRD
//!   defaults it at each level before the merge, so a datacenter-level `jvmOptions` there
//!   resets a cluster-level `gc: CMS`);
//! - racks default to one rack named `default` explicitly (cass-operator's own default);
//! - no finalizer on the CassandraDatacenter: deletion is driven from the hub;
//! - every datacenter opens JMX to other hosts when Reaper uses JMX ([`super::reaper_access`]),
//!   also for a Reaper named by `reaperRef` (upstream: only for its own; the other needs it too).
//!
//! What the plan needs from outside the K8ssandraCluster comes in [`PlanInputs`], gathered by
//! the controller: the contexts that reach the hub, what existing datacenters run with, the
//! encryption store passwords (stores are mounted and configured here,
//! [`crate::workload::encryption`]; [`DatacenterPlan::passwords`] says which the plan needs) and
//! the content hash of each `perNodeConfigMapRef` ConfigMap, which goes on the pod template.
//! The plan is made from them whole; what is missing is in [`ClusterPlan::passwords_missing`]
//! and [`ClusterPlan::per_node_config_missing`].
//!
//! `perNodeConfigMapRef` is mounted with upstream's merging init container; the ConfigMap must
//! exist in the datacenter's region and namespace ([`DatacenterPlan::user_per_node_config`]). When every datacenter runs with
//! fewer than 16 vnodes, the first pods' initial tokens come the same way, in a generated
//! ConfigMap ([`super::tokens`]).
//!
//! MCAC gets its metric filters (`METRIC_FILTERS`: the spec's, else upstream's defaults) as
//! upstream gives them, so that datacenters taken over keep their pod template.
//!
//! The Vector agent runs in cass-operator's logger container with a generated configuration
//! ([`crate::workload::vector`]).
//!
//! Not planned: Medusa.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value, json};
use thiserror::Error;

use super::config::{
    ConfigDefaults, ConfigError, DEFAULT_GARBAGE_COLLECTOR, Quantity, QuantityError, ServerVersion,
    build_config, yaml_integer,
};
use super::progressive::RolloutPolicy;
use super::reaper_access::{LOCAL_JMX_ENV, ReaperAccess, reaper_access, remote_jmx_flags};
use super::tokens::{
    PER_NODE_CONFIG_HASH_ANNOTATION, PerNodeConfigOf, TokenInput, initial_tokens, per_node_config,
    per_node_config_name,
};
use crate::api::cassdc::{
    AdditionalVolume, CassandraDatacenter, CassandraDatacenterSpec, CassandraUser, Rack,
    ServerType, StorageConfig,
};
use crate::api::k8ssandra_cluster::{
    CassandraClusterTemplate, CassandraDatacenterTemplate, CassandraMetadata, DatacenterOptions,
    K8ssandraCluster, MAX_ADDITIONAL_SEEDS, MAX_DATACENTER_SIZE, MAX_RACKS,
};
use crate::api::medusa::{MedusaClusterTemplate, MedusaStorage};
use crate::api::shared::{
    CLUSTER_NAME_LABEL, CLUSTER_NAMESPACE_LABEL, McacTelemetry, MetaTags, TelemetrySpec,
    VectorTelemetry,
};
use crate::workload::encryption::{self, EncryptionSetup, MissingStores, PasswordNeed};
use crate::workload::generated::GeneratedConfigMap;
use crate::workload::labels::{
    COMPONENT_CASSANDRA, COMPONENT_LABEL, INITIAL_SYSTEM_REPLICATION_ANNOTATION,
    SKIP_USER_CREATION_ANNOTATION, additional_seed_service_name, datacenter_labels,
    default_superuser_secret_name, is_dns1035_label, is_dns1123_label,
};
use crate::workload::{medusa, metrics_agent, vector};

/// Rack cass-operator creates when none is given.
pub const DEFAULT_RACK: &str = "default";
/// Replicas per datacenter of the system keyspaces at most (k8ssandra-operator's choice).
pub const MAX_SYSTEM_REPLICATION: i32 = 3;
/// Name of the Cassandra container in cass-operator's pods.
pub const CASSANDRA_CONTAINER: &str = "cassandra";
/// Environment variable of the management API heap (bytes).
pub const MANAGEMENT_API_HEAP_ENV: &str = "MANAGEMENT_API_HEAP_SIZE";
/// Environment variable of MCAC's metric filters (space-separated rules).
pub const METRIC_FILTERS_ENV: &str = "METRIC_FILTERS";
/// The filters k8ssandra-operator gives MCAC when the spec names none: table metrics only for
/// what dashboards use, which keeps the series per node in the hundreds, not the thousands.
pub const DEFAULT_METRIC_FILTERS: &[&str] = &[
    "deny:org.apache.cassandra.metrics.Table",
    "deny:org.apache.cassandra.metrics.table",
    "allow:org.apache.cassandra.metrics.table.live_ss_table_count",
    "allow:org.apache.cassandra.metrics.Table.LiveSSTableCount",
    "allow:org.apache.cassandra.metrics.table.live_disk_space_used",
    "allow:org.apache.cassandra.metrics.table.LiveDiskSpaceUsed",
    "allow:org.apache.cassandra.metrics.Table.Pending",
    "allow:org.apache.cassandra.metrics.Table.Memtable",
    "allow:org.apache.cassandra.metrics.Table.Compaction",
    "allow:org.apache.cassandra.metrics.table.read",
    "allow:org.apache.cassandra.metrics.table.write",
    "allow:org.apache.cassandra.metrics.table.range",
    "allow:org.apache.cassandra.metrics.table.coordinator",
    "allow:org.apache.cassandra.metrics.table.dropped_mutations",
];
/// Environment variable that turns MCAC off in the management API.
pub const MCAC_DISABLED_ENV: &str = "MGMT_API_DISABLE_MCAC";
/// JVM flag naming the system keyspaces' replication on a new cluster's first datacenter.
pub const SYSTEM_REPLICATION_FLAG: &str = "-Dcassandra.system_distributed_replication";
/// cass-operator's init container that writes the configuration.
pub const SERVER_CONFIG_INIT_CONTAINER: &str = "server-config-init";
/// Init container and volume of `perNodeConfigMapRef`.
pub const PER_NODE_CONFIG_INIT_CONTAINER: &str = "per-node-config";
const PER_NODE_CONFIG_VOLUME: &str = "per-node-config";
/// Image of the per-node init container (it needs `sh` and `yq`), as k8ssandra-operator's
/// image configuration pins it; `perNodeConfigInitContainerImage` overrides it.
pub const DEFAULT_PER_NODE_CONFIG_IMAGE: &str = "docker.io/k8ssandra/k8ssandra-client:v0.8.12";
/// JVM flag k8ssandra-operator sets on Cassandra ≥ 4 (Stargate needs it).
pub const ALLOW_ALTER_RF_FLAG: &str = "-Dcassandra.allow_alter_rf_during_range_movement=true";

/// Namespace and name of the K8ssandraCluster a plan is for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterKey {
    pub namespace: String,
    pub name: String,
}

/// Everything Federator wants in the regions for one K8ssandraCluster.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterPlan {
    pub cluster: ClusterKey,
    /// `spec.cassandra.clusterName`, else the K8ssandraCluster's name.
    pub cassandra_cluster_name: String,
    /// In spec order (the order a new cluster bootstraps in).
    pub datacenters: Vec<DatacenterPlan>,
    /// Replication of the system keyspaces at creation, by Cassandra datacenter name: from the
    /// `k8ssandra.io/initial-system-replication` annotation, else computed from the first
    /// datacenter. The controller stores it in that annotation when it is not there yet, so
    /// that it never changes afterwards.
    pub initial_system_replication: BTreeMap<String, i32>,
    /// `spec.externalDatacenters`: datacenters of the Cassandra cluster managed elsewhere.
    pub external_datacenters: Vec<String>,
    /// What `spec.reaper` needs: Reaper's users, remote JMX.
    pub reaper_access: Option<ReaperAccess>,
    /// Datacenters whose encryption store passwords were not all in the inputs, and why.
    pub passwords_missing: BTreeMap<String, String>,
    /// Datacenters whose `perNodeConfigMapRef` ConfigMap was not in the inputs, and why.
    pub per_node_config_missing: BTreeMap<String, String>,
    /// `spec.medusa` as the datacenters get it: its `storageProperties` merged over those of the
    /// MedusaConfiguration `medusaConfigurationRef` names.
    pub medusa: Option<MedusaClusterTemplate>,
    /// Why that MedusaConfiguration was not in the inputs: no datacenter is created or updated
    /// until it is (upstream does not reconcile the cluster either).
    pub medusa_configuration_missing: Option<String>,
    /// How changes that restart Cassandra roll out (the K8ssandraCluster's annotations).
    pub rollout: RolloutPolicy,
}

/// One datacenter: where it goes and what it is.
#[derive(Clone, Debug, PartialEq)]
pub struct DatacenterPlan {
    /// `metadata.name` of the datacenter, and of its CassandraDatacenter.
    pub name: String,
    /// The region (context); "" is the hub.
    pub context: String,
    /// The namespace in the region.
    pub namespace: String,
    /// The datacenter's name inside Cassandra (`datacenterName`, else `name`).
    pub cassandra_datacenter_name: String,
    /// The cass-operator Service whose endpoints list the other datacenters' seeds.
    pub additional_seed_service: String,
    /// The desired object, ready for server-side apply (its store passwords filled in from the
    /// inputs; [`ClusterPlan::passwords_missing`] says where some were missing).
    pub datacenter: CassandraDatacenter,
    /// Encryption store passwords its `config` needs, read from the hub's Secrets.
    pub passwords: Vec<PasswordNeed>,
    /// Secrets it reads besides the superuser's and Reaper's: the encryption stores.
    pub store_secrets: Vec<String>,
    /// The per-node ConfigMap Federator generates for it (initial tokens), applied in its
    /// region before it.
    pub per_node_config: Option<GeneratedConfigMap>,
    /// Vector's configuration when its agent is enabled, applied in its region before it.
    pub vector_config: Option<GeneratedConfigMap>,
    /// medusa.ini when `spec.medusa` is set, applied in its region before it.
    pub medusa_config: Option<GeneratedConfigMap>,
    /// The metrics agent's configuration (`telemetry.cassandra`, else upstream's default
    /// relabels), mounted by every datacenter as k8ssandra-operator mounts it.
    pub metrics_agent_config: GeneratedConfigMap,
    /// Names of the ConfigMaps Federator would generate for it that it does not need now
    /// (Vector turned off, no initial tokens): deleted while the live datacenter still mounts
    /// them, that is when the change that unmounts them goes out.
    pub dropped_config_maps: Vec<String>,
    /// The user's per-node ConfigMap (`perNodeConfigMapRef`) in its region: its content hash
    /// goes on the pod template before the datacenter is applied.
    pub user_per_node_config: Option<String>,
    /// The spec asks this existing datacenter for another `num_tokens` than it runs with: it
    /// is refused (the planned object keeps the running value and is not applied).
    pub num_tokens_change: Option<NumTokensChange>,
    /// `rebuild` of the datacenter: its source and pods at once, when it is added to a running
    /// cluster.
    pub rebuild: Option<crate::api::k8ssandra_cluster::RebuildOptions>,
}

/// What a plan reads besides the K8ssandraCluster, gathered by the controller before it plans:
/// the plan is built from these whole, and nothing patches it afterwards.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlanInputs {
    /// What the existing datacenters run with.
    pub running: RunningDatacenters,
    /// Contexts that reach the hub itself (from the registry): their datacenters are the hub's
    /// `""`, exactly as if they named no context (one watch, no copy of a Secret onto itself,
    /// one set of seeds).
    pub hub_contexts: BTreeSet<String>,
    /// The hub Secrets holding encryption store passwords: key → value, or why a Secret could
    /// not be read.
    pub secret_values: BTreeMap<String, Result<BTreeMap<String, String>, String>>,
    /// The content hash of each datacenter's `perNodeConfigMapRef` ConfigMap in its region, or
    /// why there is none yet.
    pub per_node_config_hashes: BTreeMap<String, Result<String, String>>,
    /// The `storageProperties` of the MedusaConfiguration `spec.medusa.medusaConfigurationRef`
    /// names (in the K8ssandraCluster's namespace of the hub), or why it could not be read; None
    /// when not read.
    pub medusa_configuration: Option<Result<MedusaStorage, String>>,
}

/// What the existing datacenters run with that a plan keeps, read from their live
/// CassandraDatacenters before planning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunningDatacenters {
    /// `num_tokens` of each existing datacenter's cassandra.yaml, by datacenter name: Cassandra
    /// refuses to start a node whose num_tokens changed, so a datacenter keeps it whatever the
    /// server version's default becomes.
    pub num_tokens: BTreeMap<String, i64>,
}

/// A `num_tokens` the spec sets for an existing datacenter that differs from the one it runs
/// with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumTokensChange {
    pub running: i64,
    /// The spec's value as written.
    pub requested: String,
}

impl std::fmt::Display for NumTokensChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "config.cassandraYaml.num_tokens cannot change from {} to {} on an existing datacenter: Cassandra refuses to start a node whose num_tokens changed; set num_tokens back to {} (or remove it: the running value is kept), or add a new datacenter with the new num_tokens and remove this one once the data is streamed",
            self.running, self.requested, self.running
        )
    }
}

impl DatacenterPlan {
    /// The ConfigMaps Federator generates for this datacenter.
    pub fn generated_config_maps(&self) -> impl Iterator<Item = &GeneratedConfigMap> {
        (self.per_node_config.iter())
            .chain(&self.vector_config)
            .chain(&self.medusa_config)
            .chain(std::iter::once(&self.metrics_agent_config))
    }

    /// The content hash of its generated ConfigMaps, on the CassandraDatacenter's metadata (not
    /// its pod template: nothing restarts). A change updates the datacenter, and its ConfigMaps
    /// with it; while it is unchanged they are not written again.
    fn note_generated_config_hash(&mut self) {
        let hashes: Vec<String> = self
            .generated_config_maps()
            .map(|c| format!("{}={}", c.name, c.content_hash()))
            .collect();
        let hash = format!("{:016x}", crate::apply::fnv1a(hashes.join(",").as_bytes()));
        (self.datacenter.metadata.annotations.get_or_insert_default())
            .insert(GENERATED_CONFIG_HASH_ANNOTATION.to_string(), hash);
    }

    /// The hash [`Self::note_generated_config_hash`] wrote.
    pub fn generated_config_hash(&self) -> Option<&str> {
        let annotations = self.datacenter.metadata.annotations.as_ref()?;
        annotations.get(GENERATED_CONFIG_HASH_ANNOTATION).map(String::as_str)
    }
}

/// Annotation of a CassandraDatacenter: the content hash of the ConfigMaps Federator generates
/// for it.
pub const GENERATED_CONFIG_HASH_ANNOTATION: &str = "federator.k8ssandra.io/generated-config-hash";

impl ClusterPlan {
    pub fn datacenter(&self, name: &str) -> Option<&DatacenterPlan> {
        self.datacenters.iter().find(|dc| dc.name == name)
    }

    /// The regions (contexts) this plan touches, sorted.
    pub fn contexts(&self) -> BTreeSet<&str> {
        self.datacenters.iter().map(|dc| dc.context.as_str()).collect()
    }

    /// The value for [`INITIAL_SYSTEM_REPLICATION_ANNOTATION`] (JSON, sorted keys).
    pub fn system_replication_annotation(&self) -> String {
        serde_json::to_string(&self.initial_system_replication).unwrap_or_else(|_| "{}".into())
    }
}

/// Why a K8ssandraCluster cannot be planned. Each message names the field to fix.
#[derive(Debug, Error, PartialEq)]
pub enum PlanError {
    #[error("the K8ssandraCluster has no metadata.name")]
    MissingName,
    #[error("the K8ssandraCluster {name} has no metadata.namespace")]
    MissingNamespace { name: String },
    #[error("datacenter name {name:?} appears more than once in spec.cassandra.datacenters")]
    DuplicateDatacenter { name: String },
    #[error(
        "datacenter name {name:?} is not a DNS-1035 label (lower-case letters, digits and '-', starting with a letter, at most 63 characters)"
    )]
    InvalidDatacenterName { name: String },
    #[error(
        "datacenters {first} and {second} would both be named {cassandra_name:?} inside Cassandra; give one of them another datacenterName"
    )]
    DuplicateCassandraDatacenterName {
        first: String,
        second: String,
        cassandra_name: String,
    },
    #[error(
        "datacenter {datacenter}: metadata.namespace {namespace:?} is not a valid namespace name (RFC 1123 label)"
    )]
    InvalidNamespace {
        datacenter: String,
        namespace: String,
    },
    #[error(
        "datacenter {datacenter}: serverVersion is not set; set spec.cassandra.serverVersion or the datacenter's serverVersion"
    )]
    MissingServerVersion { datacenter: String },
    #[error("datacenter {datacenter}: serverVersion {version:?} is not major.minor.patch")]
    InvalidServerVersion { datacenter: String, version: String },
    #[error(
        "datacenter {datacenter}: storageConfig is not set; set spec.cassandra.storageConfig.cassandraDataVolumeClaimSpec or the datacenter's"
    )]
    MissingStorageConfig { datacenter: String },
    #[error("datacenter {datacenter}: mgmtAPIHeap: {source}")]
    ManagementApiHeap {
        datacenter: String,
        #[source]
        source: QuantityError,
    },
    #[error("datacenter {datacenter}: {source}")]
    Config {
        datacenter: String,
        #[source]
        source: ConfigError,
    },
    #[error(
        "annotation {INITIAL_SYSTEM_REPLICATION_ANNOTATION} is {value:?}, not a JSON object of datacenter → replicas ({reason}); fix or remove it"
    )]
    InvalidSystemReplication { value: String, reason: String },
    #[error("datacenter {datacenter}: {source}")]
    Encryption {
        datacenter: String,
        #[source]
        source: MissingStores,
    },
    #[error("datacenter {datacenter}: {reason}")]
    Medusa { datacenter: String, reason: String },
    #[error("{reason}")]
    MedusaConfiguration { reason: String },
    #[error("datacenter {datacenter}: {source}")]
    Vector {
        datacenter: String,
        #[source]
        source: crate::workload::vector::VectorError,
    },
    #[error("datacenter {datacenter}: {source}")]
    MetricsAgent {
        datacenter: String,
        #[source]
        source: crate::workload::metrics_agent::MetricsAgentError,
    },
    #[error("{reason}")]
    Unreadable { reason: String },
    #[error("{field} has {found}; at most {max} are accepted")]
    TooMany {
        field: String,
        found: String,
        max: i64,
    },
    #[error("datacenter {datacenter}: {field} cannot be represented as JSON: {reason}")]
    Unserializable {
        datacenter: String,
        field: &'static str,
        reason: String,
    },
}

/// Plans every datacenter of `k8c` as if none existed yet. A K8ssandraCluster without
/// `spec.cassandra` (a placeholder) plans to zero datacenters.
pub fn plan(k8c: &K8ssandraCluster) -> Result<ClusterPlan, PlanError> {
    plan_with(k8c, &PlanInputs::default())
}

/// Plans every datacenter of `k8c` from `inputs`: where it is (the hub for contexts that reach
/// it), what the existing datacenters keep, its store passwords and per-node ConfigMap hash.
pub fn plan_with(k8c: &K8ssandraCluster, inputs: &PlanInputs) -> Result<ClusterPlan, PlanError> {
    let running = &inputs.running;
    let name = k8c.metadata.name.clone().filter(|n| !n.is_empty()).ok_or(PlanError::MissingName)?;
    let namespace = k8c
        .metadata
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| PlanError::MissingNamespace { name: name.clone() })?;
    let cluster = ClusterKey { namespace, name };
    let cassandra_cluster_name = k8c.cassandra_cluster_name();
    let external_datacenters = k8c.spec.external_datacenters.clone().unwrap_or_default();
    let reaper_access = reaper_access(k8c, &cassandra_cluster_name);
    let (medusa, medusa_configuration_missing) =
        effective_medusa(k8c, inputs.medusa_configuration.as_ref())?;
    let rollout =
        RolloutPolicy::from_annotations(k8c.metadata.annotations.as_ref(), k8c.metadata.generation);

    let Some(template) = k8c.spec.cassandra.as_ref() else {
        return Ok(ClusterPlan {
            cluster,
            cassandra_cluster_name,
            datacenters: Vec::new(),
            initial_system_replication: BTreeMap::new(),
            external_datacenters,
            reaper_access,
            passwords_missing: BTreeMap::new(),
            per_node_config_missing: BTreeMap::new(),
            medusa,
            medusa_configuration_missing,
            rollout,
        });
    };
    if let Some(reason) = &template.unreadable {
        return Err(PlanError::Unreadable {
            reason: reason.clone(),
        });
    }
    let datacenters = k8c.spec.datacenters();
    check_names(datacenters)?;
    check_bounds(template, datacenters)?;

    let initial_system_replication = initial_system_replication(k8c, datacenters)?;
    let context = PlanContext {
        k8c,
        template,
        cluster: &cluster,
        cassandra_cluster_name: &cassandra_cluster_name,
        system_replication: &initial_system_replication,
        external_datacenters: &external_datacenters,
        reaper_access: reaper_access.as_ref(),
        running,
        medusa: medusa.as_ref(),
        medusa_complete: medusa_configuration_missing.is_none(),
    };
    let mut planned = datacenters
        .iter()
        .enumerate()
        .map(|(index, dc)| context.datacenter(index, dc))
        .collect::<Result<Vec<_>, _>>()?;
    add_initial_tokens(
        &cluster,
        &cassandra_cluster_name,
        template,
        datacenters,
        &mut planned,
    );
    let passwords_missing = fill_store_passwords(&mut planned, &inputs.secret_values);
    let mut per_node_config_missing = BTreeMap::new();
    for dc in &mut planned {
        if dc.user_per_node_config.is_none() {
            continue;
        }
        match inputs.per_node_config_hashes.get(&dc.name) {
            Some(Ok(hash)) => dc.set_user_per_node_config_hash(hash),
            Some(Err(why)) => {
                per_node_config_missing.insert(dc.name.clone(), why.clone());
            }
            None => {
                per_node_config_missing.insert(dc.name.clone(), "not read yet".to_string());
            }
        }
    }
    for dc in &mut planned {
        if inputs.hub_contexts.contains(&dc.context) {
            dc.context.clear();
        }
        dc.note_generated_config_hash();
    }
    Ok(ClusterPlan {
        cluster,
        cassandra_cluster_name,
        datacenters: planned,
        initial_system_replication,
        external_datacenters,
        reaper_access,
        passwords_missing,
        per_node_config_missing,
        medusa,
        medusa_configuration_missing,
        rollout,
    })
}

/// `spec.medusa` with the referenced MedusaConfiguration's storage settings under its own, as
/// upstream merges them, and why that MedusaConfiguration is missing (then the cluster's own
/// settings only). As upstream, a reference needs `storageProperties.prefix`.
fn effective_medusa(
    k8c: &K8ssandraCluster,
    configuration: Option<&Result<MedusaStorage, String>>,
) -> Result<(Option<MedusaClusterTemplate>, Option<String>), PlanError> {
    let Some(own) = k8c.spec.medusa.as_deref() else {
        return Ok((None, None));
    };
    let Some(name) = (own.medusa_configuration_ref.as_ref())
        .and_then(|r| r.name.clone())
        .filter(|n| !n.is_empty())
    else {
        return Ok((Some(own.clone()), None));
    };
    let storage = own.storage_properties.clone().unwrap_or_default();
    if storage.prefix.as_deref().unwrap_or("").is_empty() {
        return Err(PlanError::MedusaConfiguration {
            reason: format!(
                "spec.medusa.storageProperties.prefix is required with medusaConfigurationRef {name}: it keeps this cluster's backups apart from the others' in the shared bucket"
            ),
        });
    }
    match configuration {
        Some(Ok(base)) => {
            let mut merged = own.clone();
            merged.storage_properties = Some(storage.merged_over(base));
            Ok((Some(merged), None))
        }
        Some(Err(why)) => Ok((Some(own.clone()), Some(why.clone()))),
        None => Ok((
            Some(own.clone()),
            Some(format!("MedusaConfiguration {name} not read yet")),
        )),
    }
}

/// Puts each datacenter's encryption store passwords in its `config`; returns the datacenters
/// that lack some, and why.
fn fill_store_passwords(
    planned: &mut [DatacenterPlan],
    secret_values: &BTreeMap<String, Result<BTreeMap<String, String>, String>>,
) -> BTreeMap<String, String> {
    let mut missing = BTreeMap::new();
    for dc in planned {
        if dc.passwords.is_empty() {
            continue;
        }
        let config = dc.datacenter.spec.config.get_or_insert_with(|| serde_json::json!({}));
        let lookup = |secret: &str, key: &str| {
            secret_values
                .get(secret)
                .and_then(|read| read.as_ref().ok())
                .and_then(|values| values.get(key).cloned())
        };
        if let Err(absent) = encryption::fill_passwords(config, &dc.passwords, lookup) {
            let mut why = vec![format!("waiting for {}", absent.join(", "))];
            why.extend(
                dc.passwords
                    .iter()
                    .filter_map(|p| secret_values.get(&p.secret).and_then(|r| r.as_ref().err()))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .cloned(),
            );
            missing.insert(dc.name.clone(), why.join("; "));
        }
    }
    missing
}

/// Gives the first RF pods of each datacenter their initial tokens when every datacenter runs
/// with few vnodes (as k8ssandra-operator): a generated per-node ConfigMap, mounted like a
/// user's `perNodeConfigMapRef`, whose content hash restarts the pods when it changes.
fn add_initial_tokens(
    cluster: &ClusterKey,
    cassandra_cluster_name: &str,
    template: &CassandraClusterTemplate,
    templates: &[CassandraDatacenterTemplate],
    planned: &mut [DatacenterPlan],
) {
    let inputs: Vec<TokenInput> = templates
        .iter()
        .zip(planned.iter())
        .map(|(dc_template, dc)| {
            let yaml =
                dc.datacenter.spec.config.as_ref().and_then(|config| config.get("cassandra-yaml"));
            let setting = |key: &str| yaml.and_then(|yaml| yaml.get(key)).cloned();
            TokenInput {
                num_tokens: setting("num_tokens"),
                replication_factor: setting("allocate_tokens_for_local_replication_factor"),
                partitioner: setting("partitioner"),
                size: dc.datacenter.spec.size,
                pod_prefix: format!(
                    "{}-{}",
                    dc.datacenter.spec.cluster_name, dc.cassandra_datacenter_name
                ),
                racks: (dc.datacenter.spec.racks.iter().flatten())
                    .map(|rack| rack.name.clone())
                    .collect(),
                has_user_per_node_config: dc_template
                    .per_node_config_map_ref
                    .as_ref()
                    .is_some_and(|r| !r.name.is_empty()),
            }
        })
        .collect();
    let tokens = initial_tokens(&inputs).unwrap_or_default();
    for dc in planned.iter_mut() {
        let generated = per_node_config_name(cassandra_cluster_name, &dc.cassandra_datacenter_name);
        // Never one the user named: that ConfigMap is theirs.
        if dc.user_per_node_config.as_deref() != Some(generated.as_str()) {
            dc.dropped_config_maps.push(generated);
        }
    }
    for ((dc, dc_template), tokens) in planned.iter_mut().zip(templates).zip(tokens) {
        let of = PerNodeConfigOf {
            cluster_name: &cluster.name,
            cluster_namespace: &cluster.namespace,
            cassandra_cluster_name,
            datacenter: (&dc.name, &dc.namespace),
            cassandra_datacenter_name: &dc.cassandra_datacenter_name,
        };
        let Some(config) = per_node_config(of, &tokens) else {
            continue;
        };
        let options = dc_template.options.merged_over(&template.options);
        let image = options
            .per_node_config_init_container_image
            .as_deref()
            .filter(|i| !i.is_empty())
            .unwrap_or(DEFAULT_PER_NODE_CONFIG_IMAGE);
        mount_per_node_config(&mut dc.datacenter, &config, image);
        dc.dropped_config_maps.retain(|name| *name != config.name);
        dc.per_node_config = Some(config);
    }
}

/// Adds the per-node init container, the ConfigMap's volume and its content hash to the pod
/// template (cass-operator requires `containers` in it).
fn mount_per_node_config(
    datacenter: &mut CassandraDatacenter,
    config: &GeneratedConfigMap,
    image: &str,
) {
    let template = datacenter
        .spec
        .pod_template_spec
        .get_or_insert_with(|| json!({"spec": {"containers": [{"name": CASSANDRA_CONTAINER}]}}));
    let Some(template) = template.as_object_mut() else {
        return;
    };
    annotate_pod_template(
        template,
        PER_NODE_CONFIG_HASH_ANNOTATION,
        &config.content_hash(),
    );
    let Some(spec) = template
        .entry("spec")
        .or_insert_with(|| json!({"containers": [{"name": CASSANDRA_CONTAINER}]}))
        .as_object_mut()
    else {
        return;
    };
    let mut init: Vec<Value> =
        spec.get("initContainers").and_then(Value::as_array).cloned().unwrap_or_default();
    add_per_node_config_init(&mut init, image);
    spec.insert("initContainers".into(), Value::Array(init));
    let mut volumes: Vec<Value> =
        spec.get("volumes").and_then(Value::as_array).cloned().unwrap_or_default();
    volumes.retain(|v| v.get("name").and_then(Value::as_str) != Some(PER_NODE_CONFIG_VOLUME));
    volumes.push(json!({"name": PER_NODE_CONFIG_VOLUME, "configMap": {"name": config.name}}));
    spec.insert("volumes".into(), Value::Array(volumes));
}

fn annotate_pod_template(template: &mut Map<String, Value>, key: &str, value: &str) {
    if let Some(metadata) = template.entry("metadata").or_insert_with(|| json!({})).as_object_mut()
        && let Some(annotations) =
            metadata.entry("annotations").or_insert_with(|| json!({})).as_object_mut()
    {
        annotations.insert(key.into(), value.into());
    }
}

impl DatacenterPlan {
    /// Puts the content hash of the user's per-node ConfigMap on the pod template: a change of
    /// the ConfigMap then restarts the pods, which read it at start (as upstream).
    pub fn set_user_per_node_config_hash(&mut self, hash: &str) {
        // A user's per-node config implies a pod template (its volume and init container).
        if let Some(template) =
            self.datacenter.spec.pod_template_spec.as_mut().and_then(Value::as_object_mut)
        {
            annotate_pod_template(template, PER_NODE_CONFIG_HASH_ANNOTATION, hash);
        }
    }
}

/// Names the CRD's rules already check, checked again because a plan must never produce two
/// objects with one name (the CRD may be older than this code, or rules may be bypassed).
fn check_names(datacenters: &[CassandraDatacenterTemplate]) -> Result<(), PlanError> {
    let mut names = BTreeSet::new();
    let mut cassandra_names: BTreeMap<&str, &str> = BTreeMap::new();
    for dc in datacenters {
        if !is_dns1035_label(dc.name()) {
            return Err(PlanError::InvalidDatacenterName {
                name: dc.name().to_string(),
            });
        }
        if !names.insert(dc.name()) {
            return Err(PlanError::DuplicateDatacenter {
                name: dc.name().to_string(),
            });
        }
        if let Some(first) = cassandra_names.insert(dc.cassandra_datacenter_name(), dc.name()) {
            return Err(PlanError::DuplicateCassandraDatacenterName {
                first: first.to_string(),
                second: dc.name().to_string(),
                cassandra_name: dc.cassandra_datacenter_name().to_string(),
            });
        }
    }
    Ok(())
}

/// Numbers that size the work of a plan (and of cass-operator after it), checked again for
/// the same reason as [`check_names`].
fn check_bounds(
    template: &CassandraClusterTemplate,
    datacenters: &[CassandraDatacenterTemplate],
) -> Result<(), PlanError> {
    let too_many = |field: String, found: usize, max: u32| PlanError::TooMany {
        field,
        found: format!("{found} entries"),
        max: max.into(),
    };
    let seeds = template.additional_seeds.as_ref().map_or(0, Vec::len);
    if seeds > MAX_ADDITIONAL_SEEDS as usize {
        return Err(too_many(
            "spec.cassandra.additionalSeeds".into(),
            seeds,
            MAX_ADDITIONAL_SEEDS,
        ));
    }
    let racks = |options: &DatacenterOptions| options.racks.as_ref().map_or(0, Vec::len);
    if racks(&template.options) > MAX_RACKS as usize {
        return Err(too_many(
            "spec.cassandra.racks".into(),
            racks(&template.options),
            MAX_RACKS,
        ));
    }
    for (index, dc) in datacenters.iter().enumerate() {
        let field = |name: &str| format!("spec.cassandra.datacenters[{index}].{name}");
        if dc.size > MAX_DATACENTER_SIZE {
            return Err(PlanError::TooMany {
                field: field("size"),
                found: format!("{} nodes", dc.size),
                max: MAX_DATACENTER_SIZE.into(),
            });
        }
        if racks(&dc.options) > MAX_RACKS as usize {
            return Err(too_many(field("racks"), racks(&dc.options), MAX_RACKS));
        }
    }
    Ok(())
}

/// The annotation if present; else min(3, size) replicas in the first datacenter, and 3 in
/// each external datacenter (only the first datacenter exists when the cluster bootstraps).
fn initial_system_replication(
    k8c: &K8ssandraCluster,
    datacenters: &[CassandraDatacenterTemplate],
) -> Result<BTreeMap<String, i32>, PlanError> {
    let annotation = k8c
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INITIAL_SYSTEM_REPLICATION_ANNOTATION));
    if let Some(value) = annotation {
        return parse_system_replication(value);
    }
    let mut replication = BTreeMap::new();
    if let Some(first) = datacenters.first() {
        replication.insert(
            first.cassandra_datacenter_name().to_string(),
            first.size.clamp(0, MAX_SYSTEM_REPLICATION),
        );
    }
    for external in k8c.spec.external_datacenters.iter().flatten() {
        replication.insert(external.clone(), MAX_SYSTEM_REPLICATION);
    }
    Ok(replication)
}

/// Reads the annotation in its current form (`{"dc1": 3}`) or k8ssandra-operator's older one
/// (`{"datacenters": ["dc1"], "replicationFactor": 3}`).
fn parse_system_replication(value: &str) -> Result<BTreeMap<String, i32>, PlanError> {
    let invalid = |reason: String| PlanError::InvalidSystemReplication {
        value: value.to_string(),
        reason,
    };
    let parsed: Value = serde_json::from_str(value).map_err(|e| invalid(e.to_string()))?;
    let Value::Object(map) = parsed else {
        return Err(invalid("not an object".into()));
    };
    if let (Some(Value::Array(dcs)), Some(rf)) =
        (map.get("datacenters"), map.get("replicationFactor"))
    {
        let rf = rf
            .as_i64()
            .and_then(|rf| i32::try_from(rf).ok())
            .ok_or_else(|| invalid("replicationFactor is not an integer".into()))?;
        return dcs
            .iter()
            .map(|dc| {
                dc.as_str()
                    .map(|dc| (dc.to_string(), rf))
                    .ok_or_else(|| invalid("datacenters must be names".into()))
            })
            .collect();
    }
    map.iter()
        .map(|(dc, rf)| {
            rf.as_i64()
                .and_then(|rf| i32::try_from(rf).ok())
                .map(|rf| (dc.clone(), rf))
                .ok_or_else(|| invalid(format!("replicas of {dc} is not an integer")))
        })
        .collect()
}

/// What every datacenter of one plan shares.
struct PlanContext<'a> {
    k8c: &'a K8ssandraCluster,
    template: &'a CassandraClusterTemplate,
    cluster: &'a ClusterKey,
    cassandra_cluster_name: &'a str,
    system_replication: &'a BTreeMap<String, i32>,
    external_datacenters: &'a [String],
    reaper_access: Option<&'a ReaperAccess>,
    running: &'a RunningDatacenters,
    /// [`ClusterPlan::medusa`].
    medusa: Option<&'a MedusaClusterTemplate>,
    /// Whether its MedusaConfiguration, if any, was merged in (else the storage is not checked).
    medusa_complete: bool,
}

impl PlanContext<'_> {
    fn datacenter(
        &self,
        index: usize,
        dc: &CassandraDatacenterTemplate,
    ) -> Result<DatacenterPlan, PlanError> {
        let name = dc.name().to_string();
        let options = dc.options.merged_over(&self.template.options);
        let cluster_tags = self.template.metadata.clone().unwrap_or_default();
        let tags = dc.metadata.tags.merged_over(&cluster_tags);

        let namespace = dc
            .metadata
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| self.cluster.namespace.clone());
        if !is_dns1123_label(&namespace) {
            return Err(PlanError::InvalidNamespace {
                datacenter: name,
                namespace,
            });
        }

        let server_type = self.template.server_type.unwrap_or_default();
        let version_text =
            options.server_version.clone().filter(|v| !v.is_empty()).ok_or_else(|| {
                PlanError::MissingServerVersion {
                    datacenter: name.clone(),
                }
            })?;
        let version =
            ServerVersion::parse(&version_text).ok_or_else(|| PlanError::InvalidServerVersion {
                datacenter: name.clone(),
                version: version_text.clone(),
            })?;

        let mut storage_config =
            storage_config(&options).ok_or_else(|| PlanError::MissingStorageConfig {
                datacenter: name.clone(),
            })?;
        let vector = self.vector(dc);
        let vector_config_name =
            vector::config_map_name(self.cassandra_cluster_name, dc.cassandra_datacenter_name());
        let vector_config = match &vector {
            Some(settings) => {
                let toml = vector::vector_toml(
                    settings,
                    self.cassandra_telemetry(dc).as_ref(),
                    self.mcac_enabled(dc),
                )
                .map_err(|source| PlanError::Vector {
                    datacenter: name.clone(),
                    source,
                })?;
                let config_map = GeneratedConfigMap::new(
                    (&self.cluster.name, &self.cluster.namespace),
                    (&name, &namespace),
                    vector_config_name.clone(),
                    BTreeMap::from([(vector::VECTOR_TOML_KEY.to_string(), toml)]),
                );
                let volumes = storage_config.additional_volumes.get_or_insert_default();
                volumes.retain(|v| v.name != vector::VECTOR_CONFIG_VOLUME);
                volumes.push(AdditionalVolume {
                    name: vector::VECTOR_CONFIG_VOLUME.into(),
                    mount_path: vector::VECTOR_CONFIG_MOUNT.into(),
                    volume_source: Some(json!({"configMap": {"name": config_map.name}})),
                    ..Default::default()
                });
                Some(config_map)
            }
            None => None,
        };
        let metrics_agent_yaml = metrics_agent::collector_yaml(
            self.cassandra_telemetry(dc).as_ref(),
        )
        .map_err(|source| PlanError::MetricsAgent {
            datacenter: name.clone(),
            source,
        })?;
        let metrics_agent_config = GeneratedConfigMap::new(
            (&self.cluster.name, &self.cluster.namespace),
            (&name, &namespace),
            metrics_agent::config_map_name(
                self.cassandra_cluster_name,
                dc.cassandra_datacenter_name(),
            ),
            BTreeMap::from([(
                metrics_agent::METRICS_AGENT_KEY.to_string(),
                metrics_agent_yaml,
            )]),
        );
        let volumes = storage_config.additional_volumes.get_or_insert_default();
        volumes.retain(|v| v.name != metrics_agent::METRICS_AGENT_VOLUME);
        volumes.push(AdditionalVolume {
            name: metrics_agent::METRICS_AGENT_VOLUME.into(),
            mount_path: metrics_agent::METRICS_AGENT_MOUNT.into(),
            volume_source: Some(json!({"configMap": {
                "name": metrics_agent_config.name,
                "items": [{"key": metrics_agent::METRICS_AGENT_KEY, "path": metrics_agent::METRICS_AGENT_KEY}],
            }})),
            ..Default::default()
        });

        let external_secrets = self.k8c.spec.uses_external_secrets();
        let cassandra_yaml = options.config.as_ref().and_then(|c| c.cassandra_yaml.as_ref());
        let encryption = encryption::setup(
            cassandra_yaml,
            self.template.client_encryption_stores.as_ref(),
            self.template.server_encryption_stores.as_ref(),
            external_secrets,
        )
        .map_err(|source| PlanError::Encryption {
            datacenter: name.clone(),
            source,
        })?;

        let running_num_tokens = self.running.num_tokens.get(&name).copied();
        let num_tokens_change = num_tokens_change(&options, running_num_tokens);
        let config = self
            .config(
                index,
                &options,
                (server_type, version),
                &encryption,
                running_num_tokens,
            )
            .map_err(|source| PlanError::Config {
                datacenter: name.clone(),
                source,
            })?;

        let medusa_config_name =
            medusa::config_map_name(self.cassandra_cluster_name, dc.cassandra_datacenter_name());
        let medusa = match self.medusa {
            Some(template) => {
                if self.medusa_complete {
                    medusa::check_storage_credentials(template).map_err(|reason| {
                        PlanError::Medusa {
                            datacenter: name.clone(),
                            reason,
                        }
                    })?;
                }
                let auth = options.management_api_auth.as_ref();
                let config_map = GeneratedConfigMap::new(
                    (&self.cluster.name, &self.cluster.namespace),
                    (&name, &namespace),
                    medusa_config_name.clone(),
                    BTreeMap::from([(
                        medusa::MEDUSA_INI_KEY.to_string(),
                        medusa::medusa_ini(template, &self.cluster.name, auth),
                    )]),
                );
                let pods = medusa::pods(
                    template,
                    &self.cluster.name,
                    &config_map.name,
                    auth,
                    self.k8c.spec.uses_external_secrets(),
                );
                Some((template, config_map, pods))
            }
            None => None,
        };
        let pod_template_spec = self.pod_template_spec(
            dc,
            &options,
            &tags,
            &encryption,
            vector.as_ref(),
            medusa.as_ref().map(|(_, _, pods)| pods),
        )?;

        let spec = CassandraDatacenterSpec {
            cluster_name: self.cassandra_cluster_name.to_string(),
            server_type,
            server_version: version_text,
            server_image: options.server_image.clone().filter(|i| !i.is_empty()),
            size: dc.size,
            stopped: dc.is_stopped().then_some(true),
            racks: Some(
                options.racks.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| {
                    vec![Rack {
                        name: DEFAULT_RACK.to_string(),
                        ..Default::default()
                    }]
                }),
            ),
            storage_config,
            config: Some(config),
            resources: options.resources.clone(),
            tolerations: options.tolerations.clone(),
            networking: options.networking.clone(),
            superuser_secret_name: self.superuser_secret_name(),
            users: self.users(),
            management_api_auth: options.management_api_auth.clone(),
            pod_template_spec,
            datacenter_name: options.datacenter_name.clone().filter(|n| !n.is_empty()),
            additional_labels: tags.common_labels.clone().filter(|l| !l.is_empty()),
            additional_annotations: tags.common_annotations.clone().filter(|a| !a.is_empty()),
            additional_service_config: Some(self.service_config(&tags)),
            service_account: options.service_account.clone().filter(|s| !s.is_empty()),
            read_only_root_filesystem: options.read_only_root_filesystem,
            dse_workloads: options.dse_workloads.clone(),
            cdc: options.cdc.clone(),
            allow_multiple_nodes_per_worker: options.soft_pod_anti_affinity,
            system_logger_resources: vector.as_ref().map(vector::resources),
            // additionalSeeds are not passed to cass-operator: they go into the additional
            // seed Service's EndpointSlices (seeds.rs); cass-operator would otherwise write the
            // same Service's endpoints too.
            ..Default::default()
        };

        let mut labels = tags.labels.clone().unwrap_or_default();
        // Ownership labels last: a user label must not detach the object from its cluster.
        labels.extend(datacenter_labels(
            &self.cluster.name,
            &self.cluster.namespace,
            &name,
        ));
        labels.insert(COMPONENT_LABEL.to_string(), COMPONENT_CASSANDRA.to_string());
        let mut annotations = tags.annotations.clone().unwrap_or_default();
        if let Some((template, _, _)) = &medusa {
            let port = medusa::grpc_port(template);
            if port != medusa::DEFAULT_GRPC_PORT {
                annotations.insert(medusa::GRPC_PORT_ANNOTATION.to_string(), port.to_string());
            }
        }
        if index > 0 || !self.external_datacenters.is_empty() {
            annotations.insert(
                SKIP_USER_CREATION_ANNOTATION.to_string(),
                "true".to_string(),
            );
        }

        let datacenter = CassandraDatacenter {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                labels: Some(labels),
                annotations: (!annotations.is_empty()).then_some(annotations),
                ..Default::default()
            },
            spec,
            status: None,
        };
        Ok(DatacenterPlan {
            additional_seed_service: additional_seed_service_name(
                self.cassandra_cluster_name,
                &name,
            ),
            cassandra_datacenter_name: dc.cassandra_datacenter_name().to_string(),
            context: dc.context().to_string(),
            namespace,
            name,
            datacenter,
            passwords: encryption.passwords,
            store_secrets: encryption.secrets,
            per_node_config: None,
            dropped_config_maps: (vector_config.is_none().then_some(vector_config_name))
                .into_iter()
                .chain(medusa.is_none().then_some(medusa_config_name))
                .collect(),
            vector_config,
            medusa_config: medusa.map(|(_, config_map, _)| config_map),
            metrics_agent_config,
            user_per_node_config: dc
                .per_node_config_map_ref
                .as_ref()
                .filter(|r| !r.name.is_empty())
                .map(|r| r.name.clone()),
            num_tokens_change,
            rebuild: dc.options.rebuild.clone(),
        })
    }

    fn superuser_secret_name(&self) -> Option<String> {
        // With external secrets (e.g. Vault), cass-operator must not look for a Secret.
        if self.k8c.spec.uses_external_secrets() {
            return None;
        }
        let named = self
            .template
            .superuser_secret_ref
            .as_ref()
            .map(|r| r.name.clone())
            .filter(|n| !n.is_empty());
        Some(named.unwrap_or_else(|| default_superuser_secret_name(self.cassandra_cluster_name)))
    }

    /// Roles cass-operator creates besides the superuser: Reaper's and Medusa's (none with
    /// external secrets).
    fn users(&self) -> Option<Vec<CassandraUser>> {
        let reaper = self.reaper_access.and_then(|a| a.cql_user.as_ref()).map(|r| r.name.clone());
        let medusa = (self.medusa)
            .filter(|_| !self.k8c.spec.uses_external_secrets())
            .map(|m| medusa::cql_user_secret_name(m, &self.cluster.name));
        let users: Vec<CassandraUser> = (reaper.into_iter().chain(medusa))
            .map(|secret_name| CassandraUser {
                secret_name,
                superuser: true,
            })
            .collect();
        (!users.is_empty()).then_some(users)
    }

    /// Reaper manages the nodes over JMX.
    fn remote_jmx(&self) -> bool {
        self.reaper_access.is_some_and(|a| a.remote_jmx)
    }

    /// cass-operator's `config`. An existing datacenter keeps the `num_tokens` it runs with
    /// (`running_num_tokens`): when the spec sets none, and also when it sets another (that
    /// change is refused, see [`DatacenterPlan::num_tokens_change`]).
    fn config(
        &self,
        index: usize,
        options: &DatacenterOptions,
        (server_type, version): (ServerType, ServerVersion),
        encryption: &EncryptionSetup,
        running_num_tokens: Option<i64>,
    ) -> Result<Value, ConfigError> {
        let mut config = options.config.clone().unwrap_or_default();
        if let (Some(running), Some(Value::Object(yaml))) =
            (running_num_tokens, config.cassandra_yaml.as_mut())
            && num_tokens_change(options, Some(running)).is_some()
        {
            yaml.insert("num_tokens".into(), running.into());
        }
        if let Some(jvm) = config.jvm_options.as_mut() {
            jvm.gc.get_or_insert(DEFAULT_GARBAGE_COLLECTOR);
        }
        if !encryption.yaml.is_empty() {
            let yaml = config.cassandra_yaml.get_or_insert_with(|| json!({}));
            for (section, field, value) in &encryption.yaml {
                let options = &mut yaml[*section];
                if options.get(*field).is_none_or(Value::is_null) {
                    options[*field] = Value::String(value.clone());
                }
            }
        }
        let mut extra_jvm_flags = encryption.jvm_flags.clone();
        if server_type == ServerType::Cassandra {
            if version.major != 3 {
                extra_jvm_flags.push(ALLOW_ALTER_RF_FLAG.to_string());
            }
            // Only the first datacenter bootstraps the cluster and creates the system keyspaces.
            if index == 0 && !self.system_replication.is_empty() {
                let factors: Vec<String> =
                    self.system_replication.iter().map(|(dc, rf)| format!("{dc}:{rf}")).collect();
                extra_jvm_flags.push(format!("{SYSTEM_REPLICATION_FLAG}={}", factors.join(",")));
            }
        }
        let auth_enabled = self.k8c.spec.auth_enabled();
        if self.remote_jmx() {
            let managed_secrets = !self.k8c.spec.uses_external_secrets();
            extra_jvm_flags.extend(remote_jmx_flags(auth_enabled, managed_secrets));
        }
        let defaults = ConfigDefaults {
            auth_enabled,
            extra_jvm_flags,
            running_num_tokens,
        };
        build_config(Some(&config), server_type, version, &defaults)
    }

    /// Labels and annotations of the Services cass-operator makes. The all-pods Service always
    /// carries the cluster labels, so that its endpoints can be watched per K8ssandraCluster.
    fn service_config(&self, tags: &CassandraMetadata) -> Value {
        let services = tags.services.clone().unwrap_or_default();
        let additions = |meta: Option<MetaTags>, extra: BTreeMap<String, String>| {
            let meta = meta.unwrap_or_default();
            let mut labels = meta.labels.unwrap_or_default();
            labels.extend(extra);
            let mut out = Map::new();
            if !labels.is_empty() {
                out.insert("additionalLabels".into(), json!(labels));
            }
            if let Some(annotations) = meta.annotations.filter(|a| !a.is_empty()) {
                out.insert("additionalAnnotations".into(), json!(annotations));
            }
            out
        };
        let cluster_labels = BTreeMap::from([
            (CLUSTER_NAME_LABEL.to_string(), self.cluster.name.clone()),
            (
                CLUSTER_NAMESPACE_LABEL.to_string(),
                self.cluster.namespace.clone(),
            ),
        ]);
        // cass-operator spells the all-pods key `allpodsService`.
        let entries = [
            ("dcService", additions(services.dc_service, BTreeMap::new())),
            (
                "seedService",
                additions(services.seed_service, BTreeMap::new()),
            ),
            (
                "allpodsService",
                additions(services.all_pods_service, cluster_labels),
            ),
            (
                "additionalSeedService",
                additions(services.additional_seed_service, BTreeMap::new()),
            ),
            (
                "nodePortService",
                additions(services.node_port_service, BTreeMap::new()),
            ),
        ];
        Value::Object(
            entries
                .into_iter()
                .filter(|(_, additions)| !additions.is_empty())
                .map(|(key, additions)| (key.to_string(), Value::Object(additions)))
                .collect(),
        )
    }

    /// The pod template cass-operator merges into its own: pod labels/annotations, security
    /// context, priority class, extra containers and volumes, and the management API's
    /// environment. `None` when there is nothing to say.
    fn pod_template_spec(
        &self,
        dc: &CassandraDatacenterTemplate,
        options: &DatacenterOptions,
        tags: &CassandraMetadata,
        encryption: &EncryptionSetup,
        vector: Option<&VectorTelemetry>,
        medusa: Option<&medusa::MedusaPods>,
    ) -> Result<Option<Value>, PlanError> {
        let datacenter = dc.name();
        let mut spec = Map::new();
        if let Some(context) = &options.pod_security_context {
            let context = serde_json::to_value(context).map_err(|e| PlanError::Unserializable {
                datacenter: datacenter.to_string(),
                field: "podSecurityContext",
                reason: e.to_string(),
            })?;
            spec.insert("securityContext".into(), context);
        }
        if let Some(class) = options.pod_priority_class_name.clone().filter(|c| !c.is_empty()) {
            spec.insert("priorityClassName".into(), Value::String(class));
        }
        let mut containers = options.containers.clone().unwrap_or_default();
        let mut cassandra_env = Vec::new();
        if let Some(heap) = &options.mgmt_api_heap {
            let bytes = Quantity::parse(&heap.0)
                .and_then(|q| q.ceil_value().ok_or_else(|| QuantityError::TooLarge(heap.0.clone())))
                .map_err(|source| PlanError::ManagementApiHeap {
                    datacenter: datacenter.to_string(),
                    source,
                })?;
            cassandra_env
                .push(json!({"name": MANAGEMENT_API_HEAP_ENV, "value": bytes.to_string()}));
        }
        if !self.mcac_enabled(dc) {
            cassandra_env.push(json!({"name": MCAC_DISABLED_ENV, "value": "true"}));
        }
        if self.remote_jmx() {
            cassandra_env.push(json!({"name": LOCAL_JMX_ENV, "value": "no"}));
        }
        if self.mcac_enabled(dc) {
            cassandra_env
                .push(json!({"name": METRIC_FILTERS_ENV, "value": self.metric_filters(dc)}));
        }
        if !cassandra_env.is_empty() {
            add_to_container(&mut containers, CASSANDRA_CONTAINER, "env", cassandra_env);
        }
        if let Some(settings) = vector {
            add_system_logger(&mut containers, settings.image.as_deref());
        }
        if !encryption.mounts.is_empty() {
            add_to_container(
                &mut containers,
                CASSANDRA_CONTAINER,
                "volumeMounts",
                encryption.mounts.clone(),
            );
        }
        let named = |c: &Value, name: &str| c.get("name").and_then(Value::as_str) == Some(name);
        if let Some(pods) = medusa {
            // Replaces a container of the same name, as upstream.
            containers.retain(|c| !named(c, medusa::MEDUSA_CONTAINER));
            containers.push(pods.container.clone());
            // Upstream ignores Medusa's pull secret; the pod needs it to pull a private image.
            if let Some(secret) = &pods.image_pull_secret {
                spec.insert("imagePullSecrets".into(), json!([{"name": secret}]));
            }
        }
        if !containers.is_empty() {
            spec.insert("containers".into(), Value::Array(containers));
        }
        let mut init = options.init_containers.clone().unwrap_or_default();
        if let Some(pods) = medusa {
            // As upstream: a medusa-restore the spec already has is replaced in place; a new
            // one goes last, after server-config-init (added when missing) so that Medusa reads
            // the built cassandra.yaml.
            match init.iter_mut().find(|c| named(c, medusa::RESTORE_INIT_CONTAINER)) {
                Some(existing) => *existing = pods.init_container.clone(),
                None => {
                    if !init.iter().any(|c| named(c, SERVER_CONFIG_INIT_CONTAINER)) {
                        init.push(json!({"name": SERVER_CONFIG_INIT_CONTAINER}));
                    }
                    init.push(pods.init_container.clone());
                }
            }
        }
        let mut volumes =
            options.extra_volumes.as_ref().and_then(|v| v.volumes.clone()).unwrap_or_default();
        let mut added_volumes = encryption.volumes.clone();
        if let Some(pods) = medusa {
            added_volumes.extend(pods.volumes.iter().cloned());
        }
        if let Some(config_map) = dc.per_node_config_map_ref.as_ref().filter(|r| !r.name.is_empty())
        {
            let image = options
                .per_node_config_init_container_image
                .as_deref()
                .filter(|i| !i.is_empty())
                .unwrap_or(DEFAULT_PER_NODE_CONFIG_IMAGE);
            add_per_node_config_init(&mut init, image);
            added_volumes.push(json!({
                "name": PER_NODE_CONFIG_VOLUME, "configMap": {"name": config_map.name}
            }));
        }
        if !init.is_empty() {
            spec.insert("initContainers".into(), Value::Array(init));
        }
        for volume in added_volumes {
            // Replaces a volume of the same name, as upstream.
            volumes.retain(|v| v.get("name") != volume.get("name"));
            volumes.push(volume);
        }
        if !volumes.is_empty() {
            spec.insert("volumes".into(), Value::Array(volumes));
        }

        let pods = tags.pods.clone().unwrap_or_default();
        let mut metadata = Map::new();
        if let Some(labels) = pods.labels.filter(|l| !l.is_empty()) {
            metadata.insert("labels".into(), json!(labels));
        }
        if let Some(annotations) = pods.annotations.filter(|a| !a.is_empty()) {
            metadata.insert("annotations".into(), json!(annotations));
        }
        if spec.is_empty() && metadata.is_empty() {
            return Ok(None);
        }
        let mut template = Map::new();
        if !metadata.is_empty() {
            template.insert("metadata".into(), Value::Object(metadata));
        }
        // cass-operator's schema requires `containers` in a pod spec.
        spec.entry("containers").or_insert_with(|| json!([{"name": CASSANDRA_CONTAINER}]));
        template.insert("spec".into(), Value::Object(spec));
        Ok(Some(Value::Object(template)))
    }

    /// MCAC stays on unless the merged telemetry turns it off. Telemetry is merged key by key
    /// here (upstream deep-merges it), not taken whole from the datacenter.
    fn mcac_enabled(&self, dc: &CassandraDatacenterTemplate) -> bool {
        self.mcac_setting(dc, |m| m.enabled).unwrap_or(true)
    }

    /// MCAC's metric filters: the datacenter's, else the cluster's, else upstream's defaults.
    fn metric_filters(&self, dc: &CassandraDatacenterTemplate) -> String {
        match self.mcac_setting(dc, |m| m.metric_filters.clone()) {
            Some(filters) => filters.join(" "),
            None => DEFAULT_METRIC_FILTERS.join(" "),
        }
    }

    /// The datacenter's Vector settings over the cluster's, field by field, when enabled.
    fn vector(&self, dc: &CassandraDatacenterTemplate) -> Option<VectorTelemetry> {
        let of =
            |telemetry: &Option<TelemetrySpec>| telemetry.as_ref().and_then(|t| t.vector.clone());
        let merged = match (
            of(&dc.options.telemetry),
            of(&self.template.options.telemetry),
        ) {
            (Some(own), Some(cluster)) => VectorTelemetry {
                enabled: own.enabled.or(cluster.enabled),
                image: own.image.or(cluster.image),
                resources: own.resources.or(cluster.resources),
                config: own.config.or(cluster.config),
                scrape_interval: own.scrape_interval.or(cluster.scrape_interval),
                // Sources, transforms and sinks each replace the cluster's, as upstream's merge.
                components: match (own.components, cluster.components) {
                    (Some(Value::Object(own)), Some(Value::Object(mut cluster))) => {
                        cluster.extend(own);
                        Some(Value::Object(cluster))
                    }
                    (own, cluster) => own.or(cluster),
                },
            },
            (own, cluster) => own.or(cluster)?,
        };
        merged.enabled.unwrap_or(false).then_some(merged)
    }

    /// `telemetry.cassandra` (the metrics endpoint) of the datacenter over the cluster's, key
    /// by key (lists whole), as upstream merges them.
    fn cassandra_telemetry(&self, dc: &CassandraDatacenterTemplate) -> Option<Value> {
        let of = |telemetry: &Option<TelemetrySpec>| {
            telemetry.as_ref().and_then(|t| t.cassandra.clone())
        };
        metrics_agent::merge_json(
            of(&dc.options.telemetry).as_ref(),
            of(&self.template.options.telemetry).as_ref(),
        )
    }

    /// An MCAC setting of the datacenter's telemetry, else of the cluster's.
    fn mcac_setting<T>(
        &self,
        dc: &CassandraDatacenterTemplate,
        setting: impl Fn(&McacTelemetry) -> Option<T>,
    ) -> Option<T> {
        let of = |telemetry: &Option<TelemetrySpec>| {
            telemetry.as_ref().and_then(|t| t.mcac.as_ref()).and_then(&setting)
        };
        of(&dc.options.telemetry).or_else(|| of(&self.template.options.telemetry))
    }
}

/// The `num_tokens` change the merged options ask of a datacenter running with
/// `running_num_tokens`, if any (a value written as text, "16", is the same as 16).
fn num_tokens_change(
    options: &DatacenterOptions,
    running_num_tokens: Option<i64>,
) -> Option<NumTokensChange> {
    let running = running_num_tokens?;
    let requested = options.config.as_ref()?.cassandra_yaml.as_ref()?.get("num_tokens")?;
    (yaml_integer(requested) != Some(running)).then(|| {
        let written = match requested {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        NumTokensChange {
            running,
            requested: written.chars().take(40).collect(),
        }
    })
}

/// The storage of the data volume plus the extra volumes managed by the StatefulSet.
fn storage_config(options: &DatacenterOptions) -> Option<StorageConfig> {
    let mut storage = options.storage_config.as_deref().cloned()?;
    if let Some(pvcs) =
        options.extra_volumes.as_ref().and_then(|v| v.pvcs.clone()).filter(|p| !p.is_empty())
    {
        storage.additional_volumes.get_or_insert_with(Vec::new).extend(pvcs);
    }
    Some(storage)
}

/// Adds the init container that merges a pod's files of the per-node ConfigMap
/// (`<pod>_cassandra.yaml`, ...) into the configuration cass-operator's config builder wrote: a
/// placeholder `server-config-init` first, so that cass-operator's container (merged into it by
/// name) runs before it.
fn add_per_node_config_init(init: &mut Vec<Value>, image: &str) {
    let named = |c: &Value, name: &str| c.get("name").and_then(Value::as_str) == Some(name);
    if !init.iter().any(|c| named(c, SERVER_CONFIG_INIT_CONTAINER)) {
        init.push(json!({"name": SERVER_CONFIG_INIT_CONTAINER}));
    }
    init.retain(|c| !named(c, PER_NODE_CONFIG_INIT_CONTAINER));
    let merge = concat!(
        "if [ -e /per-node-config/${POD_NAME}_* ]; then ",
        "for src in /per-node-config/${POD_NAME}_*; do ",
        "dest=/config/`echo $src | cut -d \"_\" -f2`; ",
        "yq ea '. as $item ireduce ({}; . * $item)' -i $dest $src && echo merged $src into $dest || exit 1; ",
        "done; echo done merging per-node config for pod $POD_NAME; ",
        "else echo no per-node config found for pod $POD_NAME; fi"
    );
    init.push(json!({
        "name": PER_NODE_CONFIG_INIT_CONTAINER,
        "image": image,
        "command": ["sh", "-c", merge],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"cpu": "100m", "memory": "64Mi"}
        },
        "volumeMounts": [
            // cass-operator's volumes: the built configuration, and scratch space for yq.
            {"name": "server-config", "mountPath": "/config"},
            {"name": PER_NODE_CONFIG_VOLUME, "mountPath": "/per-node-config"},
            {"name": "tmp", "mountPath": "/tmp"}
        ]
    }));
}

/// cass-operator's logger sidecar runs Vector: named in the pod template (so that cass-operator
/// merges into it), with the spec's image if any.
fn add_system_logger(containers: &mut Vec<Value>, image: Option<&str>) {
    let container = container_named(containers, vector::SYSTEM_LOGGER_CONTAINER);
    if let (Some(image), Some(container)) = (image.filter(|i| !i.is_empty()), container) {
        container.insert("image".into(), image.into());
    }
}

/// The container named `name`, added if it is missing.
fn container_named<'a>(
    containers: &'a mut Vec<Value>,
    name: &str,
) -> Option<&'a mut Map<String, Value>> {
    let position =
        containers.iter().position(|c| c.get("name").and_then(Value::as_str) == Some(name));
    let index = position.unwrap_or_else(|| {
        containers.push(json!({"name": name}));
        containers.len() - 1
    });
    containers.get_mut(index).and_then(Value::as_object_mut)
}

/// Appends `items` to list `field` (env, volumeMounts) of the container named `name`, adding
/// that container if it is missing.
fn add_to_container(containers: &mut Vec<Value>, name: &str, field: &str, items: Vec<Value>) {
    if let Some(container) = container_named(containers, name) {
        let list = container.entry(field).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = list {
            list.extend(items);
        } else {
            *list = Value::Array(items);
        }
    }
}

#[cfg(test)]
mod tests;
