//! The `spec.config` of a CassandraDatacenter: cass-operator's config builder input,
//! `{"cassandra-yaml": {...}, "jvm-options" | "jvm-server-options" | ...: {...}}`, built from a
//! K8ssandraCluster's merged `config` the way k8ssandra-operator builds it.
//!
//! Which file (and key) each `jvmOptions` field lands in depends on the server type and version;
//! [`JVM_OPTION_TARGETS`] is that table, read from k8ssandra-operator v1.32's `cass-config`
//! struct tags:
//!
//! | server | general JVM flags | GC choice and G1 tuning | CMS tuning, GC logging |
//! |---|---|---|---|
//! | Cassandra 3.11 | `jvm-options` | `jvm-options` | `jvm-options` |
//! | Cassandra ≥ 4 (4.0, 4.1, 5.0), HCD ≥ 1 | `jvm-server-options` | `jvm11-server-options` | dropped |
//! | DSE ≥ 6.8 | `jvm-server-options` | `jvm8-server-options` | dropped |
//! | older versions | dropped | dropped | dropped |
//!
//! Cassandra 5.0 gets `jvm11-server-options` like 4.x: k8ssandra-operator v1.32 sends nothing
//! to `jvm17-server-options` (k8ssandra-client's config builder reads that key, but no version
//! constraint in k8ssandra-operator targets it). Free-form lists go to the same keys for every
//! version: `additionalOptions` → `cassandra-env-sh/additional-jvm-opts`,
//! `additionalJvmServerOptions` → `jvm-server-options/additional-jvm-opts`, and so on.
//!
//! Quantities become plain numbers (bytes), integers when whole, as upstream sends them.

use serde_json::{Map, Value};
use thiserror::Error;

pub use crate::quantity::{Quantity, QuantityError, QuantityNumber};

use crate::api::cassdc::ServerType;
use crate::api::k8ssandra_cluster::{CassandraConfig, GarbageCollector, JvmOptions};

/// A server version, major.minor.patch (the K8ssandraCluster CRD enforces the shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl ServerVersion {
    /// Parses `major.minor.patch`; anything else is `None`.
    pub fn parse(text: &str) -> Option<ServerVersion> {
        let mut parts = text.split('.').map(|part| {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<u64>().ok())
                .flatten()
        });
        let version = ServerVersion {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next()??,
        };
        parts.next().is_none().then_some(version)
    }
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Which generation of cass-operator config keys a server takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigFamily {
    /// Cassandra 3.11: one `jvm-options` file.
    Cassandra311,
    /// Cassandra ≥ 4 and HCD: `jvm-server-options` + `jvm11-server-options`.
    Modern,
    /// DSE ≥ 6.8: `jvm-server-options` + `jvm8-server-options`.
    Dse68,
    /// Anything older: no JVM option is mapped.
    Unsupported,
}

impl ConfigFamily {
    pub fn of(server_type: ServerType, version: ServerVersion) -> ConfigFamily {
        match server_type {
            ServerType::Cassandra if version.major >= 4 => ConfigFamily::Modern,
            ServerType::Cassandra if version.major == 3 && version.minor >= 11 => {
                ConfigFamily::Cassandra311
            }
            ServerType::Hcd if version.major >= 1 => ConfigFamily::Modern,
            ServerType::Dse if (version.major, version.minor) >= (6, 8) => ConfigFamily::Dse68,
            _ => ConfigFamily::Unsupported,
        }
    }
}

/// Where one `jvmOptions` field goes: `file/key` per family, `None` when the family has no
/// such setting (the value is then dropped, as upstream drops it).
#[derive(Debug)]
pub struct JvmOptionTarget {
    /// The field's JSON name in `jvmOptions`.
    pub field: &'static str,
    pub cassandra_311: Option<&'static str>,
    pub modern: Option<&'static str>,
    pub dse_68: Option<&'static str>,
}

impl JvmOptionTarget {
    fn path(&self, family: ConfigFamily) -> Option<&'static str> {
        match family {
            ConfigFamily::Cassandra311 => self.cassandra_311,
            ConfigFamily::Modern => self.modern,
            ConfigFamily::Dse68 => self.dse_68,
            ConfigFamily::Unsupported => None,
        }
    }
}

const fn everywhere(
    field: &'static str,
    legacy: &'static str,
    modern: &'static str,
) -> JvmOptionTarget {
    JvmOptionTarget {
        field,
        cassandra_311: Some(legacy),
        modern: Some(modern),
        dse_68: Some(modern),
    }
}

const fn legacy_only(field: &'static str, legacy: &'static str) -> JvmOptionTarget {
    JvmOptionTarget {
        field,
        cassandra_311: Some(legacy),
        modern: None,
        dse_68: None,
    }
}

const fn modern_only(field: &'static str, modern: &'static str) -> JvmOptionTarget {
    JvmOptionTarget {
        field,
        cassandra_311: None,
        modern: Some(modern),
        dse_68: Some(modern),
    }
}

/// GC settings: `jvm11-server-options` on modern Cassandra, `jvm8-server-options` on DSE.
const fn gc_setting(
    field: &'static str,
    legacy: Option<&'static str>,
    modern: &'static str,
    dse: &'static str,
) -> JvmOptionTarget {
    JvmOptionTarget {
        field,
        cassandra_311: legacy,
        modern: Some(modern),
        dse_68: Some(dse),
    }
}

/// Every typed `jvmOptions` field and its cass-operator key (k8ssandra-operator v1.32).
pub const JVM_OPTION_TARGETS: &[JvmOptionTarget] = &[
    everywhere(
        "heap_initial_size",
        "jvm-options/initial_heap_size",
        "jvm-server-options/initial_heap_size",
    ),
    everywhere(
        "heap_max_size",
        "jvm-options/max_heap_size",
        "jvm-server-options/max_heap_size",
    ),
    everywhere(
        "vm_enable_assertions",
        "jvm-options/enable_assertions",
        "jvm-server-options/enable_assertions",
    ),
    everywhere(
        "vm_enable_thread_priorities",
        "jvm-options/use_thread_priorities",
        "jvm-server-options/use_thread_priorities",
    ),
    legacy_only(
        "vm_enable_non_root_thread_priority",
        "jvm-options/thread_priority_policy_42",
    ),
    everywhere(
        "vm_heap_dump_on_out_of_memory_error",
        "jvm-options/heap_dump_on_out_of_memory_error",
        "jvm-server-options/heap_dump_on_out_of_memory_error",
    ),
    everywhere(
        "vm_per_thread_stack_size",
        "jvm-options/per_thread_stack_size",
        "jvm-server-options/per_thread_stack_size",
    ),
    everywhere(
        "vm_string_table_size",
        "jvm-options/string_table_size",
        "jvm-server-options/string_table_size",
    ),
    everywhere(
        "vm_always_pre_touch",
        "jvm-options/always_pre_touch",
        "jvm-server-options/always_pre_touch",
    ),
    everywhere(
        "vm_disable_biased_locking",
        "jvm-options/use_biased_locking",
        "jvm-server-options/use-biased-locking",
    ),
    everywhere(
        "vm_use_tlab",
        "jvm-options/use_tlb",
        "jvm-server-options/use_tlb",
    ),
    everywhere(
        "vm_resize_tlab",
        "jvm-options/resize_tlb",
        "jvm-server-options/resize_tlb",
    ),
    everywhere(
        "vm_disable_perf_shared_mem",
        "jvm-options/perf_disable_shared_mem",
        "jvm-server-options/perf_disable_shared_mem",
    ),
    everywhere(
        "vm_prefer_ipv4",
        "jvm-options/java_net_prefer_ipv4_stack",
        "jvm-server-options/java_net_prefer_ipv4_stack",
    ),
    modern_only("vm_use_numa", "jvm-server-options/use_numa"),
    modern_only(
        "vm_print_heap_histogram_on_out_of_memory_error",
        "jvm-server-options/print_heap_histogram_on_out_of_memory_error",
    ),
    modern_only(
        "vm_exit_on_out_of_memory_error",
        "jvm-server-options/exit_on_out_of_memory_error",
    ),
    modern_only(
        "vm_crash_on_out_of_memory_error",
        "jvm-server-options/crash_on_out_of_memory_error",
    ),
    modern_only(
        "vm_guaranteed_safepoint_interval_ms",
        "jvm-server-options/guaranteed-safepoint-interval",
    ),
    modern_only(
        "netty_eventloop_maxpendingtasks",
        "jvm-server-options/io_netty_eventloop_maxpendingtasks",
    ),
    gc_setting(
        "netty_try_reflection_set_accessible",
        None,
        "jvm11-server-options/io_netty_try_reflection_set_accessible",
        "jvm8-server-options/io_netty_try_reflection_set_accessible",
    ),
    modern_only(
        "nio_maxcachedbuffersize",
        "jvm-server-options/jdk_nio_maxcachedbuffersize",
    ),
    modern_only(
        "nio_align_direct_memory",
        "jvm-server-options/page-align-direct-memory",
    ),
    gc_setting(
        "jdk_allow_attach_self",
        None,
        "jvm11-server-options/jdk_attach_allow_attach_self",
        "jvm8-server-options/jdk_attach_allow_attach_self",
    ),
    everywhere(
        "cassandra_available_processors",
        "jvm-options/cassandra_available_processors",
        "jvm-server-options/cassandra_available_processors",
    ),
    everywhere(
        "cassandra_metrics_reporter_config_file",
        "jvm-options/cassandra_metrics_reporter_config_file",
        "jvm-server-options/cassandra_metrics_reporter_config_file",
    ),
    everywhere(
        "cassandra_ring_delay_ms",
        "jvm-options/cassandra_ring_delay_ms",
        "jvm-server-options/cassandra_ring_delay_ms",
    ),
    everywhere(
        "cassandra_triggers_directory",
        "jvm-options/cassandra_triggers_dir",
        "jvm-server-options/cassandra_triggers_dir",
    ),
    everywhere(
        "cassandra_write_survey",
        "jvm-options/cassandra_write_survey",
        "jvm-server-options/cassandra_write_survey",
    ),
    everywhere(
        "cassandra_disable_auth_caches_remote_configuration",
        "jvm-options/cassandra_disable_auth_caches_remote_configuration",
        "jvm-server-options/cassandra_disable_auth_caches_remote_configuration",
    ),
    everywhere(
        "cassandra_force_default_indexing_page_size",
        "jvm-options/cassandra_force_default_indexing_page_size",
        "jvm-server-options/cassandra_force_default_indexing_page_size",
    ),
    legacy_only(
        "cassandra_force_3_0_protocol_version",
        "jvm-options/cassandra_force_3_0_protocol_version",
    ),
    modern_only(
        "cassandra_expiration_date_overflow_policy",
        "jvm-server-options/cassandra_expiration_date_overflow_policy",
    ),
    modern_only(
        "cassandra_max_hint_ttl_seconds",
        "jvm-server-options/cassandra_max_hint_ttl",
    ),
    gc_setting(
        "gc",
        Some("jvm-options/garbage_collector"),
        "jvm11-server-options/garbage_collector",
        "jvm8-server-options/garbage_collector",
    ),
    legacy_only(
        "gc_cms_heap_size_young_generation",
        "jvm-options/heap_size_young_generation",
    ),
    legacy_only("gc_cms_survivor_ratio", "jvm-options/survivor_ratio"),
    legacy_only(
        "gc_cms_max_tenuring_threshold",
        "jvm-options/max_tenuring_threshold",
    ),
    legacy_only(
        "gc_cms_initiating_occupancy_fraction",
        "jvm-options/cms_initiating_occupancy_fraction",
    ),
    legacy_only("gc_cms_wait_duration_ms", "jvm-options/cms_wait_duration"),
    gc_setting(
        "gc_g1_rset_updating_pause_time_percent",
        Some("jvm-options/g1r_set_updating_pause_time_percent"),
        "jvm11-server-options/g1r_set_updating_pause_time_percent",
        "jvm8-server-options/g1r_set_updating_pause_time_percent",
    ),
    gc_setting(
        "gc_g1_max_gc_pause_ms",
        Some("jvm-options/max_gc_pause_millis"),
        "jvm11-server-options/max_gc_pause_millis",
        "jvm8-server-options/max_gc_pause_millis",
    ),
    gc_setting(
        "gc_g1_initiating_heap_occupancy_percent",
        Some("jvm-options/initiating_heap_occupancy_percent"),
        "jvm11-server-options/initiating_heap_occupancy_percent",
        "jvm8-server-options/initiating_heap_occupancy_percent",
    ),
    gc_setting(
        "gc_g1_parallel_threads",
        Some("jvm-options/parallel_gc_threads"),
        "jvm11-server-options/parallel_gc_threads",
        "jvm8-server-options/parallel_gc_threads",
    ),
    gc_setting(
        "gc_g1_conc_threads",
        Some("jvm-options/conc_gc_threads"),
        "jvm11-server-options/conc_gc_threads",
        "jvm8-server-options/conc_gc_threads",
    ),
    legacy_only("gc_print_details", "jvm-options/print_gc_details"),
    legacy_only("gc_print_date_stamps", "jvm-options/print_gc_date_stamps"),
    legacy_only("gc_print_heap", "jvm-options/print_heap_at_gc"),
    legacy_only(
        "gc_print_tenuring_distribution",
        "jvm-options/print_tenuring_distribution",
    ),
    legacy_only(
        "gc_print_application_stopped_time",
        "jvm-options/print_gc_application_stopped_time",
    ),
    legacy_only(
        "gc_print_promotion_failure",
        "jvm-options/print_promotion_failure",
    ),
    legacy_only(
        "gc_print_flss_statistics",
        "jvm-options/print_flss_statistics",
    ),
    legacy_only("gc_print_use_log_file", "jvm-options/log_gc"),
    legacy_only(
        "gc_print_use_log_file_rotation",
        "jvm-options/use_gc_log_file_rotation",
    ),
    legacy_only(
        "gc_print_number_of_log_files",
        "jvm-options/number_of_gc_log_files",
    ),
    legacy_only("gc_print_log_file_size", "jvm-options/gc_log_file_size"),
    everywhere(
        "jmx_port",
        "jvm-options/jmx-port",
        "jvm-server-options/jmx-port",
    ),
    everywhere(
        "jmx_connection_type",
        "jvm-options/jmx-connection-type",
        "jvm-server-options/jmx-connection-type",
    ),
    everywhere(
        "jmx_remote_ssl",
        "jvm-options/jmx-remote-ssl",
        "jvm-server-options/jmx-remote-ssl",
    ),
    everywhere(
        "jmx_remote_ssl_opts",
        "jvm-options/jmx-remote-ssl-opts",
        "jvm-server-options/jmx-remote-ssl-opts",
    ),
    modern_only(
        "jmx_remote_ssl_require_client_auth",
        "jvm-server-options/jmx-remote-ssl-require-client-auth",
    ),
    everywhere(
        "debug_unlock_commercial_features",
        "jvm-options/unlock_commercial_features",
        "jvm-server-options/unlock_commercial_features",
    ),
    everywhere(
        "debug_enable_flight_recorder",
        "jvm-options/flight_recorder",
        "jvm-server-options/flight_recorder",
    ),
    everywhere(
        "debug_listen_remote_debuggers",
        "jvm-options/agent_lib_jdwp",
        "jvm-server-options/agent_lib_jdwp",
    ),
    modern_only(
        "debug_disable_contended_annotations",
        "jvm-server-options/restrict-contended",
    ),
    modern_only(
        "debug_non_safepoints",
        "jvm-server-options/debug-non-safepoints",
    ),
    modern_only(
        "debug_unlock_diagnostic_vm_options",
        "jvm-server-options/unlock-diagnostic-vm-options",
    ),
    modern_only(
        "debug_log_compilation",
        "jvm-server-options/log_compilation",
    ),
    modern_only(
        "debug_preserve_frame_pointer",
        "jvm-server-options/preserve-frame-pointer",
    ),
];

/// Free-form JVM flag lists: the same key whatever the version.
pub const JVM_FLAG_LISTS: &[(&str, &str)] = &[
    ("additionalOptions", "cassandra-env-sh/additional-jvm-opts"),
    (
        "additionalJvmServerOptions",
        "jvm-server-options/additional-jvm-opts",
    ),
    (
        "additionalJvm8ServerOptions",
        "jvm8-server-options/additional-jvm-opts",
    ),
    (
        "additionalJvm11ServerOptions",
        "jvm11-server-options/additional-jvm-opts",
    ),
];

/// `jvmOptions` fields holding Kubernetes quantities, sent as numbers.
const QUANTITY_FIELDS: &[&str] = &[
    "heap_initial_size",
    "heap_max_size",
    "vm_per_thread_stack_size",
    "vm_string_table_size",
    "nio_maxcachedbuffersize",
    "gc_cms_heap_size_young_generation",
    "gc_print_log_file_size",
];

#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    #[error("config.jvmOptions.{field}: {source}")]
    Quantity {
        field: String,
        #[source]
        source: QuantityError,
    },
    #[error("config.cassandraYaml must be an object of cassandra.yaml settings, not {found}")]
    CassandraYamlNotObject { found: &'static str },
    #[error("config.dseYaml must be an object of dse.yaml settings, not {found}")]
    DseYamlNotObject { found: &'static str },
    #[error(
        "config.cassandraYaml sets both commitlog_sync_period_in_ms and commitlog_sync_batch_window_in_ms; they are mutually exclusive, keep one"
    )]
    ConflictingCommitlogSync,
    #[error("jvmOptions could not be read as JSON: {0}")]
    Serialize(String),
    #[error("config.cassandraYaml.{field} is {found}; it must be a whole number from 1 to {max}")]
    OutOfRange {
        field: &'static str,
        found: String,
        max: i64,
    },
}

/// Most vnodes a Cassandra node accepts (cassandra.yaml `num_tokens`; Cassandra refuses to
/// start above it).
pub const MAX_NUM_TOKENS: i64 = 1536;
/// Highest `allocate_tokens_for_local_replication_factor` Federator accepts: the initial token
/// planner gives tokens to that many pods per datacenter.
pub const MAX_TOKEN_ALLOCATION_REPLICATION_FACTOR: i64 = 100;

/// Settings k8ssandra-operator adds to cassandra.yaml (and dse.yaml) when the user did not set
/// them, and that Federator adds the same way so that both operators produce the same servers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigDefaults {
    pub auth_enabled: bool,
    /// JVM flags prepended to `additionalOptions` (system keyspace replication...).
    pub extra_jvm_flags: Vec<String>,
    /// `num_tokens` the datacenter already runs with: kept when cassandraYaml sets none,
    /// instead of the server version's default (a node never starts with other num_tokens).
    pub running_num_tokens: Option<i64>,
}

/// Builds the cass-operator `config` object. `config` is the merged (cluster + datacenter)
/// configuration; `None` and empty parts are left out.
pub fn build_config(
    config: Option<&CassandraConfig>,
    server_type: ServerType,
    version: ServerVersion,
    defaults: &ConfigDefaults,
) -> Result<Value, ConfigError> {
    let config = config.cloned().unwrap_or_default();
    let family = ConfigFamily::of(server_type, version);
    let mut out = Map::new();

    let mut cassandra_yaml = object_or_empty(config.cassandra_yaml, |found| {
        ConfigError::CassandraYamlNotObject { found }
    })?;
    let mut dse_yaml = object_or_empty(config.dse_yaml, |found| ConfigError::DseYamlNotObject {
        found,
    })?;
    apply_yaml_defaults(
        &mut cassandra_yaml,
        &mut dse_yaml,
        server_type,
        version,
        defaults,
    );
    check_token_settings(&cassandra_yaml)?;
    if cassandra_yaml.contains_key("commitlog_sync_period_in_ms")
        && cassandra_yaml.contains_key("commitlog_sync_batch_window_in_ms")
    {
        return Err(ConfigError::ConflictingCommitlogSync);
    }
    if !cassandra_yaml.is_empty() {
        out.insert("cassandra-yaml".into(), Value::Object(cassandra_yaml));
    }
    if !dse_yaml.is_empty() {
        out.insert("dse-yaml".into(), Value::Object(dse_yaml));
    }

    let mut jvm = config.jvm_options.unwrap_or_default();
    resolve_deprecated_heap_options(&mut jvm);
    if !defaults.extra_jvm_flags.is_empty() {
        let mut flags = jvm.additional_options.take().unwrap_or_default();
        // Prepended, and only when missing, as upstream does.
        for flag in defaults.extra_jvm_flags.iter().rev() {
            if !flags.contains(flag) {
                flags.insert(0, flag.clone());
            }
        }
        jvm.additional_options = Some(flags);
    }
    for (path, value) in jvm_entries(&jvm, family)? {
        put_path(&mut out, path, value);
    }
    Ok(Value::Object(out))
}

fn object_or_empty(
    value: Option<Value>,
    error: impl Fn(&'static str) -> ConfigError,
) -> Result<Map<String, Value>, ConfigError> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(other) => Err(error(json_kind(&other))),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// k8ssandra-operator's cassandra.yaml defaults: authentication classes, num_tokens (256 on
/// 3.x, else 16), start_rpc off on 3.x, token allocation for DSE/HCD.
fn apply_yaml_defaults(
    cassandra_yaml: &mut Map<String, Value>,
    dse_yaml: &mut Map<String, Value>,
    server_type: ServerType,
    version: ServerVersion,
    defaults: &ConfigDefaults,
) {
    let auth_enabled = defaults.auth_enabled;
    let mut put_if_absent = |key: &str, value: Value| {
        cassandra_yaml.entry(key.to_string()).or_insert(value);
    };
    match (auth_enabled, server_type) {
        (true, ServerType::Dse) => {
            put_if_absent(
                "authenticator",
                "com.datastax.bdp.cassandra.auth.DseAuthenticator".into(),
            );
            put_if_absent(
                "authorizer",
                "com.datastax.bdp.cassandra.auth.DseAuthorizer".into(),
            );
            put_if_absent(
                "role_manager",
                "com.datastax.bdp.cassandra.auth.DseRoleManager".into(),
            );
        }
        (true, _) => {
            put_if_absent("authenticator", "PasswordAuthenticator".into());
            put_if_absent("authorizer", "CassandraAuthorizer".into());
        }
        (false, _) => {
            put_if_absent("authenticator", "AllowAllAuthenticator".into());
            put_if_absent("authorizer", "AllowAllAuthorizer".into());
        }
    }
    put_if_absent("role_manager", "CassandraRoleManager".into());
    let legacy_cassandra = server_type == ServerType::Cassandra && version.major == 3;
    let version_default = if legacy_cassandra { 256 } else { 16 };
    put_if_absent(
        "num_tokens",
        defaults.running_num_tokens.unwrap_or(version_default).into(),
    );
    if legacy_cassandra {
        put_if_absent("start_rpc", false.into());
    }
    if matches!(server_type, ServerType::Dse | ServerType::Hcd) {
        put_if_absent("allocate_tokens_for_local_replication_factor", 3.into());
    }
    if auth_enabled && server_type == ServerType::Dse {
        for (section, key, value) in [
            ("authentication_options", "enabled", "true"),
            ("authorization_options", "enabled", "true"),
            ("role_management_options", "mode", "internal"),
        ] {
            let entry =
                dse_yaml.entry(section.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(options) = entry {
                options.entry(key.to_string()).or_insert_with(|| value.into());
            }
        }
    }
}

/// A whole number from cassandra.yaml: a number, or its text.
pub fn yaml_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| {
            number.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e15).map(|f| f as i64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// The settings that size the initial token computation must be whole numbers in range:
/// `num_tokens: -1` or a replication factor of 10^6 would otherwise make it allocate without
/// bound.
fn check_token_settings(cassandra_yaml: &Map<String, Value>) -> Result<(), ConfigError> {
    for (field, max) in [
        ("num_tokens", MAX_NUM_TOKENS),
        (
            "allocate_tokens_for_local_replication_factor",
            MAX_TOKEN_ALLOCATION_REPLICATION_FACTOR,
        ),
    ] {
        let Some(value) = cassandra_yaml.get(field) else {
            continue;
        };
        if !yaml_integer(value).is_some_and(|n| (1..=max).contains(&n)) {
            let mut found = value.to_string();
            if found.len() > 40 {
                found = format!("{}...", found.chars().take(40).collect::<String>());
            }
            return Err(ConfigError::OutOfRange { field, found, max });
        }
    }
    Ok(())
}

/// `heapSize` and `heapNewGenSize` are upstream's deprecated shortcuts: they fill the precise
/// fields only where those are unset.
fn resolve_deprecated_heap_options(jvm: &mut JvmOptions) {
    if let Some(heap) = jvm.heap_size.take() {
        jvm.heap_initial_size.get_or_insert_with(|| heap.clone());
        jvm.heap_max_size.get_or_insert(heap);
    }
    if let Some(young) = jvm.heap_new_gen_size.take() {
        jvm.gc_cms_heap_size_young_generation.get_or_insert(young);
    }
}

/// The (path, value) pairs of `jvm` for one family, in table order.
fn jvm_entries(
    jvm: &JvmOptions,
    family: ConfigFamily,
) -> Result<Vec<(&'static str, Value)>, ConfigError> {
    let fields = match serde_json::to_value(jvm) {
        Ok(Value::Object(map)) => map,
        Ok(_) => Map::new(),
        Err(e) => return Err(ConfigError::Serialize(e.to_string())),
    };
    let mut entries = Vec::new();
    for target in JVM_OPTION_TARGETS {
        let (Some(path), Some(value)) = (target.path(family), fields.get(target.field)) else {
            continue;
        };
        let value = if QUANTITY_FIELDS.contains(&target.field) {
            quantity_json(value).map_err(|source| ConfigError::Quantity {
                field: target.field.to_string(),
                source,
            })?
        } else {
            value.clone()
        };
        entries.push((path, value));
    }
    for (field, path) in JVM_FLAG_LISTS {
        if let Some(Value::Array(flags)) = fields.get(*field)
            && !flags.is_empty()
        {
            entries.push((path, Value::Array(flags.clone())));
        }
    }
    Ok(entries)
}

fn quantity_json(value: &Value) -> Result<Value, QuantityError> {
    let text = value.as_str().ok_or(QuantityError::NotAString)?;
    Ok(match Quantity::parse(text)?.number() {
        QuantityNumber::Integer(i) => Value::from(i),
        QuantityNumber::Decimal(f) => Value::from(f),
    })
}

/// Sets `out[a][b] = value` for a path `a/b`, creating the intermediate object.
fn put_path(out: &mut Map<String, Value>, path: &str, value: Value) {
    let (file, key) = path.split_once('/').unwrap_or((path, ""));
    let section = out.entry(file.to_string()).or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(section) = section {
        section.insert(key.to_string(), value);
    }
}

/// The garbage collector k8ssandra-operator's CRD defaults `jvmOptions.gc` to, when
/// `jvmOptions` is given without one. Federator's CRD has no such default, so the planner
/// applies it to produce the same DCs.
pub const DEFAULT_GARBAGE_COLLECTOR: GarbageCollector = GarbageCollector::G1;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn version(text: &str) -> ServerVersion {
        ServerVersion::parse(text).expect("valid version")
    }

    fn jvm(value: Value) -> CassandraConfig {
        serde_json::from_value(json!({"jvmOptions": value})).expect("valid jvm options")
    }

    fn config_for(config: &CassandraConfig, server_type: ServerType, v: &str) -> Value {
        build_config(
            Some(config),
            server_type,
            version(v),
            &ConfigDefaults::default(),
        )
        .expect("config builds")
    }

    #[test]
    fn versions_parse_strictly() {
        assert_eq!(
            ServerVersion::parse("4.0.17"),
            Some(ServerVersion {
                major: 4,
                minor: 0,
                patch: 17
            })
        );
        assert_eq!(ServerVersion::parse("4.0"), None);
        assert_eq!(ServerVersion::parse("4.0.1.2"), None);
        assert_eq!(ServerVersion::parse("4.x.1"), None);
        assert_eq!(ServerVersion::parse("4..1"), None);
        assert_eq!(version("5.0.4").to_string(), "5.0.4");
    }

    #[test]
    fn families_by_server_type_and_version() {
        use ConfigFamily::*;
        assert_eq!(
            ConfigFamily::of(ServerType::Cassandra, version("3.11.14")),
            Cassandra311
        );
        assert_eq!(
            ConfigFamily::of(ServerType::Cassandra, version("3.0.29")),
            Unsupported
        );
        assert_eq!(
            ConfigFamily::of(ServerType::Cassandra, version("4.0.17")),
            Modern
        );
        assert_eq!(
            ConfigFamily::of(ServerType::Cassandra, version("5.0.4")),
            Modern
        );
        assert_eq!(ConfigFamily::of(ServerType::Hcd, version("1.0.0")), Modern);
        assert_eq!(ConfigFamily::of(ServerType::Dse, version("6.8.50")), Dse68);
        assert_eq!(
            ConfigFamily::of(ServerType::Dse, version("6.7.1")),
            Unsupported
        );
    }

    #[test]
    fn heap_size_maps_by_version() {
        let config = jvm(json!({"heapSize": "512Mi", "heapNewGenSize": "256Mi", "gc": "CMS"}));
        let legacy = config_for(&config, ServerType::Cassandra, "3.11.14");
        assert_eq!(
            legacy["jvm-options"],
            json!({
                "initial_heap_size": 536870912, "max_heap_size": 536870912,
                "heap_size_young_generation": 268435456, "garbage_collector": "CMS"
            })
        );
        assert!(legacy.get("jvm-server-options").is_none());

        let modern = config_for(&config, ServerType::Cassandra, "4.0.17");
        assert_eq!(
            modern["jvm-server-options"],
            json!({"initial_heap_size": 536870912, "max_heap_size": 536870912})
        );
        // CMS young generation has no 4.x key: dropped, as upstream drops it.
        assert_eq!(
            modern["jvm11-server-options"],
            json!({"garbage_collector": "CMS"})
        );
        assert!(modern.get("jvm-options").is_none());

        // 5.0 goes where 4.x goes (upstream sends nothing to jvm17-server-options).
        let five = config_for(&config, ServerType::Cassandra, "5.0.4");
        assert_eq!(
            five["jvm11-server-options"],
            json!({"garbage_collector": "CMS"})
        );
        assert!(five.get("jvm17-server-options").is_none());

        let dse = config_for(&config, ServerType::Dse, "6.8.50");
        assert_eq!(
            dse["jvm8-server-options"],
            json!({"garbage_collector": "CMS"})
        );
        assert_eq!(dse["jvm-server-options"]["max_heap_size"], 536870912);
    }

    #[test]
    fn precise_heap_fields_win_over_deprecated_shortcuts() {
        let config = jvm(json!({"heapSize": "1Gi", "heap_max_size": "2Gi"}));
        let out = config_for(&config, ServerType::Cassandra, "4.1.8");
        assert_eq!(out["jvm-server-options"]["initial_heap_size"], 1073741824);
        assert_eq!(out["jvm-server-options"]["max_heap_size"], 2147483648u64);
    }

    #[test]
    fn g1_settings_and_flag_lists() {
        let config = jvm(json!({
            "gc": "G1GC", "gc_g1_max_gc_pause_ms": 600, "gc_g1_parallel_threads": 2,
            "vm_per_thread_stack_size": "256Ki", "vm_enable_non_root_thread_priority": false,
            "additionalOptions": ["-Dfoo=true"], "additionalJvm11ServerOptions": ["-XX:+X"]
        }));
        let modern = config_for(&config, ServerType::Cassandra, "4.0.17");
        assert_eq!(
            modern["jvm11-server-options"],
            json!({
                "garbage_collector": "G1GC", "max_gc_pause_millis": 600,
                "parallel_gc_threads": 2, "additional-jvm-opts": ["-XX:+X"]
            })
        );
        assert_eq!(
            modern["jvm-server-options"],
            json!({"per_thread_stack_size": 262144})
        );
        assert_eq!(
            modern["cassandra-env-sh"],
            json!({"additional-jvm-opts": ["-Dfoo=true"]})
        );
        let legacy = config_for(&config, ServerType::Cassandra, "3.11.14");
        assert_eq!(legacy["jvm-options"]["thread_priority_policy_42"], false);
        assert_eq!(legacy["jvm-options"]["max_gc_pause_millis"], 600);
    }

    #[test]
    fn every_typed_jvm_field_has_a_target() {
        // A field added to JvmOptions without a row here would silently never reach Cassandra.
        let all = serde_json::to_value(JvmOptions::default()).expect("serializes");
        assert_eq!(all, json!({}));
        let schema = serde_json::to_value(schemars::schema_for!(JvmOptions)).expect("schema");
        let properties = schema["properties"].as_object().expect("properties");
        let shortcuts = ["heapSize", "heapNewGenSize"];
        for name in properties.keys() {
            let known = JVM_OPTION_TARGETS.iter().any(|t| t.field == name)
                || JVM_FLAG_LISTS.iter().any(|(field, _)| field == name)
                || shortcuts.contains(&name.as_str());
            assert!(known, "jvmOptions.{name} has no cass-operator target");
        }
    }

    #[test]
    fn yaml_defaults_fill_only_what_is_missing() {
        let config: CassandraConfig = serde_json::from_value(json!({
            "cassandraYaml": {"num_tokens": 4, "authenticator": "Custom"}
        }))
        .expect("valid");
        let defaults = ConfigDefaults {
            auth_enabled: true,
            ..Default::default()
        };
        let out = build_config(
            Some(&config),
            ServerType::Cassandra,
            version("4.0.17"),
            &defaults,
        )
        .expect("builds");
        assert_eq!(
            out["cassandra-yaml"],
            json!({
                "num_tokens": 4, "authenticator": "Custom", "authorizer": "CassandraAuthorizer",
                "role_manager": "CassandraRoleManager"
            })
        );
        let legacy = build_config(
            None,
            ServerType::Cassandra,
            version("3.11.14"),
            &ConfigDefaults::default(),
        )
        .expect("builds");
        assert_eq!(
            legacy["cassandra-yaml"],
            json!({
                "authenticator": "AllowAllAuthenticator", "authorizer": "AllowAllAuthorizer",
                "role_manager": "CassandraRoleManager", "num_tokens": 256, "start_rpc": false
            })
        );
        let dse =
            build_config(None, ServerType::Dse, version("6.8.50"), &defaults).expect("builds");
        assert_eq!(
            dse["cassandra-yaml"]["allocate_tokens_for_local_replication_factor"],
            3
        );
        assert_eq!(
            dse["cassandra-yaml"]["role_manager"],
            "com.datastax.bdp.cassandra.auth.DseRoleManager"
        );
        assert_eq!(
            dse["dse-yaml"],
            json!({
                "authentication_options": {"enabled": "true"},
                "authorization_options": {"enabled": "true"},
                "role_management_options": {"mode": "internal"}
            })
        );
    }

    #[test]
    fn extra_flags_are_prepended_once() {
        let config = jvm(json!({"additionalOptions": ["-Dmine", "-Dcassandra.b"]}));
        let defaults = ConfigDefaults {
            auth_enabled: true,
            extra_jvm_flags: vec!["-Dcassandra.a".into(), "-Dcassandra.b".into()],
            ..Default::default()
        };
        let out = build_config(
            Some(&config),
            ServerType::Cassandra,
            version("4.0.17"),
            &defaults,
        )
        .expect("builds");
        assert_eq!(
            out["cassandra-env-sh"]["additional-jvm-opts"],
            json!(["-Dcassandra.a", "-Dmine", "-Dcassandra.b"])
        );
    }

    #[test]
    fn conflicting_commitlog_settings_are_refused() {
        let config: CassandraConfig = serde_json::from_value(json!({"cassandraYaml": {
            "commitlog_sync_period_in_ms": 10, "commitlog_sync_batch_window_in_ms": "2"
        }}))
        .expect("valid");
        let error = build_config(
            Some(&config),
            ServerType::Cassandra,
            version("4.0.17"),
            &ConfigDefaults::default(),
        );
        assert_eq!(error, Err(ConfigError::ConflictingCommitlogSync));
    }

    #[test]
    fn bad_quantities_name_their_field() {
        let config = jvm(json!({"heap_max_size": "lots"}));
        let error = build_config(
            Some(&config),
            ServerType::Cassandra,
            version("4.0.17"),
            &ConfigDefaults::default(),
        )
        .expect_err("refused");
        assert!(
            error.to_string().starts_with("config.jvmOptions.heap_max_size: \"lots\""),
            "{error}"
        );
    }

    #[test]
    fn a_running_num_tokens_replaces_the_version_default_only() {
        let defaults = ConfigDefaults {
            running_num_tokens: Some(256),
            ..Default::default()
        };
        let unset = build_config(None, ServerType::Cassandra, version("4.1.5"), &defaults)
            .expect("config builds");
        assert_eq!(unset["cassandra-yaml"]["num_tokens"], 256);
        let config: CassandraConfig =
            serde_json::from_value(json!({"cassandraYaml": {"num_tokens": 8}})).expect("valid");
        let set = build_config(
            Some(&config),
            ServerType::Cassandra,
            version("4.1.5"),
            &defaults,
        )
        .expect("config builds");
        assert_eq!(
            set["cassandra-yaml"]["num_tokens"], 8,
            "the spec's own value"
        );
    }

    #[test]
    fn token_settings_out_of_range_name_their_field() {
        for (yaml, field) in [
            (json!({"num_tokens": -1}), "num_tokens"),
            (json!({"num_tokens": 0}), "num_tokens"),
            (json!({"num_tokens": 1537}), "num_tokens"),
            (json!({"num_tokens": "many"}), "num_tokens"),
            (json!({"num_tokens": {"nested": 1}}), "num_tokens"),
            (
                json!({"allocate_tokens_for_local_replication_factor": -4611686018427387904_i64}),
                "allocate_tokens_for_local_replication_factor",
            ),
            (
                json!({"allocate_tokens_for_local_replication_factor": 1000000}),
                "allocate_tokens_for_local_replication_factor",
            ),
        ] {
            let config: CassandraConfig =
                serde_json::from_value(json!({"cassandraYaml": yaml})).expect("valid");
            let error = build_config(
                Some(&config),
                ServerType::Cassandra,
                version("4.1.5"),
                &ConfigDefaults::default(),
            )
            .expect_err("out of range");
            assert!(
                error.to_string().starts_with(&format!("config.cassandraYaml.{field} is ")),
                "{error}"
            );
        }
        let config: CassandraConfig = serde_json::from_value(json!({"cassandraYaml": {
            "num_tokens": "1536", "allocate_tokens_for_local_replication_factor": 3
        }}))
        .expect("valid");
        build_config(
            Some(&config),
            ServerType::Cassandra,
            version("4.1.5"),
            &ConfigDefaults::default(),
        )
        .expect("in range");
    }
}
