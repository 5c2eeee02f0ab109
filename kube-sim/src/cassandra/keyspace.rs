//! Keyspaces, their replication and tables, and the system keyspaces Cassandra creates.
//!
//! Validation follows Cassandra 4.0 (`KeyspaceAttributes`, `AbstractReplicationStrategy.
//! validateReplicationStrategy`, `NetworkTopologyStrategy.prepareOptions`,
//! `ReplicationFactor.fromString`, `ClientState.preventSystemKSSchemaModification`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::error::{CassandraError, Result};

pub const SYSTEM: &str = "system";
pub const SYSTEM_SCHEMA: &str = "system_schema";
pub const SYSTEM_AUTH: &str = "system_auth";
pub const SYSTEM_DISTRIBUTED: &str = "system_distributed";
pub const SYSTEM_TRACES: &str = "system_traces";

const LOCATOR: &str = "org.apache.cassandra.locator.";
const REPLICATION_FACTOR: &str = "replication_factor";
/// `SchemaConstants.NAME_LENGTH`.
const NAME_LENGTH: usize = 48;

/// `SchemaConstants.isLocalSystemKeyspace`: node-local keyspaces nobody may alter.
pub fn is_local_system_keyspace(keyspace: &str) -> bool {
    keyspace == SYSTEM || keyspace == SYSTEM_SCHEMA
}

/// `SchemaConstants.isReplicatedSystemKeyspace`: their replication may be altered, nothing else.
pub fn is_replicated_system_keyspace(keyspace: &str) -> bool {
    matches!(keyspace, SYSTEM_AUTH | SYSTEM_DISTRIBUTED | SYSTEM_TRACES)
}

/// A keyspace's replication strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// LocalStrategy: `system` and `system_schema`, never replicated (the model stores no rows).
    Local,
    /// SimpleStrategy with its replication_factor, placed over the whole ring.
    Simple(u32),
    /// NetworkTopologyStrategy: replication factor per datacenter.
    NetworkTopology(BTreeMap<String, u32>),
}

impl Replication {
    pub fn simple(replication_factor: u32) -> Self {
        Replication::Simple(replication_factor)
    }

    pub fn network_topology<'a>(dcs: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        Replication::NetworkTopology(dcs.into_iter().map(|(dc, rf)| (dc.to_string(), rf)).collect())
    }

    /// The strategy's full class name, as `system_schema.keyspaces` stores it.
    pub fn class_name(&self) -> String {
        let simple = match self {
            Replication::Local => "LocalStrategy",
            Replication::Simple(_) => "SimpleStrategy",
            Replication::NetworkTopology(_) => "NetworkTopologyStrategy",
        };
        format!("{LOCATOR}{simple}")
    }

    /// The replication map as the Management API returns it, e.g.
    /// `{"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "dc1": "3"}`.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::from([("class".to_string(), self.class_name())]);
        match self {
            Replication::Local => {}
            Replication::Simple(rf) => {
                map.insert(REPLICATION_FACTOR.to_string(), rf.to_string());
            }
            Replication::NetworkTopology(dcs) => {
                map.extend(dcs.iter().map(|(dc, rf)| (dc.clone(), rf.to_string())));
            }
        }
        map
    }

    /// The replication factor in one datacenter (SimpleStrategy's factor counts everywhere).
    pub fn factor_in(&self, dc: &str) -> u32 {
        match self {
            Replication::Local => 0,
            Replication::Simple(rf) => *rf,
            Replication::NetworkTopology(dcs) => dcs.get(dc).copied().unwrap_or(0),
        }
    }

    /// `getReplicationFactor().allReplicas`.
    pub fn total_replication_factor(&self) -> usize {
        match self {
            Replication::Local => 1,
            Replication::Simple(rf) => *rf as usize,
            Replication::NetworkTopology(dcs) => dcs.values().map(|rf| *rf as usize).sum(),
        }
    }

    /// Whether writes in this keyspace go to nodes of `dc`.
    pub fn replicates_to(&self, dc: &str) -> bool {
        match self {
            Replication::Local => false,
            Replication::Simple(rf) => *rf > 0,
            Replication::NetworkTopology(dcs) => dcs.get(dc).is_some_and(|rf| *rf > 0),
        }
    }
}

/// The kind of a column, as the Management API's `Column.kind` names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ColumnKind {
    PartitionKey,
    ClusteringColumn,
    #[default]
    Regular,
    Static,
}

/// A column of a table; the model keeps it only to describe the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub cql_type: String,
    #[serde(default)]
    pub kind: ColumnKind,
}

impl Column {
    pub fn partition_key(name: &str, cql_type: &str) -> Self {
        Column {
            name: name.to_string(),
            cql_type: cql_type.to_string(),
            kind: ColumnKind::PartitionKey,
        }
    }

    pub fn regular(name: &str, cql_type: &str) -> Self {
        Column {
            name: name.to_string(),
            cql_type: cql_type.to_string(),
            kind: ColumnKind::Regular,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyspace {
    pub name: String,
    pub replication: Replication,
    pub tables: BTreeMap<String, Table>,
}

impl Keyspace {
    fn new(name: &str, replication: Replication, tables: &[(&str, &[(&str, &str)])]) -> Self {
        let tables = tables
            .iter()
            .map(|(table, columns)| {
                let columns = columns
                    .iter()
                    .enumerate()
                    .map(|(i, (name, cql_type))| {
                        if i == 0 {
                            Column::partition_key(name, cql_type)
                        } else {
                            Column::regular(name, cql_type)
                        }
                    })
                    .collect();
                (
                    table.to_string(),
                    Table {
                        name: table.to_string(),
                        columns,
                    },
                )
            })
            .collect();
        Keyspace {
            name: name.to_string(),
            replication,
            tables,
        }
    }
}

/// The JVM properties that override the system keyspaces' replication when a cluster is first
/// created. Cassandra 4.0 knows `cassandra.system_distributed_replication_dc_names` and
/// `_per_dc` (`KeyspaceParams.systemDistributed`); k8ssandra's Management API agent adds
/// `cassandra.system_distributed_replication=dc1:3,dc2:3`, which wins over both
/// (`SystemDistributedReplicationInterceptor`). The agent applies the override to
/// `system_auth`, `system_distributed` and `system_traces` alike.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemReplicationProperties {
    /// `-Dcassandra.system_distributed_replication`, e.g. `dc1:3,dc2:3`.
    pub dc_rf: Option<String>,
    /// `-Dcassandra.system_distributed_replication_dc_names`, e.g. `dc1,dc2`.
    pub dc_names: Option<String>,
    /// `-Dcassandra.system_distributed_replication_per_dc`, e.g. `3`.
    pub per_dc: Option<String>,
}

impl SystemReplicationProperties {
    /// Only `-Dcassandra.system_distributed_replication=<value>`.
    pub fn dc_rf(value: &str) -> Self {
        SystemReplicationProperties {
            dc_rf: Some(value.to_string()),
            ..Default::default()
        }
    }

    /// The NetworkTopologyStrategy the properties ask for, if any. Like the agent, entries that
    /// are not `dc:rf` or whose factor is outside 1..=5 are ignored (it logs them), and parsing
    /// stops at the first factor that is not a number.
    pub fn override_replication(&self) -> Option<Replication> {
        let mut dcs = BTreeMap::new();
        if let Some(mappings) = &self.dc_rf {
            for mapping in mappings.split(',') {
                let parts: Vec<&str> = mapping.trim().split(':').map(str::trim).collect();
                let [dc, rf] = parts.as_slice() else { continue };
                let Ok(rf) = rf.parse::<i32>() else { break };
                if (1..=5).contains(&rf) {
                    dcs.insert(dc.to_string(), rf as u32);
                }
            }
        }
        if dcs.is_empty()
            && let (Some(names), Some(per_dc)) = (&self.dc_names, &self.per_dc)
            && let Ok(rf) = per_dc.trim().parse::<i32>()
            && (1..=5).contains(&rf)
        {
            for dc in names.split(',').map(str::trim).filter(|dc| !dc.is_empty()) {
                dcs.insert(dc.to_string(), rf as u32);
            }
        }
        (!dcs.is_empty()).then_some(Replication::NetworkTopology(dcs))
    }
}

/// The keyspaces a new cluster starts with. Defaults from `CassandraRelevantProperties`
/// (`system_auth.default_rf` 1, `system_traces.default_rf` 2, `system_distributed.default_rf`
/// 3) and `AuthKeyspace`, `TraceKeyspace`, `SystemDistributedKeyspace`.
pub(crate) fn system_keyspaces(properties: &SystemReplicationProperties) -> Vec<Keyspace> {
    let distributed = properties.override_replication();
    let or = |rf: u32| distributed.clone().unwrap_or(Replication::Simple(rf));
    vec![
        Keyspace::new(
            SYSTEM,
            Replication::Local,
            &[
                ("local", &[("key", "text")]),
                ("peers_v2", &[("peer", "inet")]),
            ],
        ),
        Keyspace::new(
            SYSTEM_SCHEMA,
            Replication::Local,
            &[
                ("keyspaces", &[("keyspace_name", "text")]),
                ("tables", &[("keyspace_name", "text")]),
                ("columns", &[("keyspace_name", "text")]),
            ],
        ),
        Keyspace::new(
            SYSTEM_AUTH,
            or(1),
            &[
                (
                    "roles",
                    &[
                        ("role", "text"),
                        ("is_superuser", "boolean"),
                        ("can_login", "boolean"),
                        ("salted_hash", "text"),
                    ],
                ),
                ("role_members", &[("role", "text"), ("member", "text")]),
                (
                    "role_permissions",
                    &[("role", "text"), ("resource", "text")],
                ),
                (
                    "resource_role_permissons_index",
                    &[("resource", "text"), ("role", "text")],
                ),
                (
                    "network_permissions",
                    &[("role", "text"), ("dcs", "frozen<set<text>>")],
                ),
            ],
        ),
        Keyspace::new(
            SYSTEM_DISTRIBUTED,
            or(3),
            &[
                ("repair_history", &[("keyspace_name", "text")]),
                ("parent_repair_history", &[("parent_id", "timeuuid")]),
                ("view_build_status", &[("keyspace_name", "text")]),
            ],
        ),
        Keyspace::new(
            SYSTEM_TRACES,
            or(2),
            &[
                ("sessions", &[("session_id", "uuid")]),
                ("events", &[("session_id", "uuid")]),
            ],
        ),
    ]
}

/// `ReplicationFactor.fromString` with its messages (the transient `n/m` form is not modelled).
fn parse_factor(value: &str) -> Result<u32> {
    let rf: i64 = value
        .trim()
        .parse()
        .map_err(|_| CassandraError::Configuration(format!("For input string: \"{value}\"")))?;
    u32::try_from(rf).map_err(|_| {
        CassandraError::Configuration(format!(
            "Replication factor must be non-negative, found {rf}"
        ))
    })
}

/// Validates CQL replication options for `keyspace` and resolves them to a strategy.
/// `previous` is the keyspace's replication when altering; `known_dcs` the datacenters NTS
/// accepts (`Datacenters.getValidDatacenters`: unknown DCs are refused in 4.0).
pub(crate) fn parse_replication(
    keyspace: &str,
    options: &BTreeMap<String, String>,
    previous: Option<&Replication>,
    known_dcs: &BTreeSet<String>,
) -> Result<Replication> {
    let mut options = options.clone();
    let class = options.remove("class").ok_or_else(|| {
        CassandraError::Configuration("Missing replication strategy class".into())
    })?;
    let simple_name = class.strip_prefix(LOCATOR).unwrap_or(&class);
    let unrecognized = |key: &str, strategy: &str| {
        CassandraError::Configuration(format!(
            "Unrecognized strategy option {{{key}}} passed to {strategy} for keyspace {keyspace}"
        ))
    };
    match simple_name {
        "LocalStrategy" => Err(CassandraError::InvalidRequest(
            "Unable to use given strategy class: LocalStrategy is reserved for internal use."
                .into(),
        )),
        "SimpleStrategy" => {
            if let Some(key) = options.keys().find(|key| *key != REPLICATION_FACTOR) {
                return Err(unrecognized(key, "SimpleStrategy"));
            }
            let rf = options.get(REPLICATION_FACTOR).ok_or_else(|| {
                CassandraError::Configuration(
                    "SimpleStrategy requires a replication_factor strategy option.".into(),
                )
            })?;
            Ok(Replication::Simple(parse_factor(rf)?))
        }
        "NetworkTopologyStrategy" => {
            // prepareOptions: `replication_factor` expands to every known DC not named, a bare
            // switch from SimpleStrategy keeps its factor, and DCs set to 0 are dropped.
            let mut expand = options.remove(REPLICATION_FACTOR);
            if expand.is_none() && options.is_empty() {
                expand = match previous {
                    Some(Replication::Simple(rf)) => Some(rf.to_string()),
                    _ => None,
                };
            }
            if let Some(rf) = expand {
                parse_factor(&rf)?;
                for dc in known_dcs {
                    options.entry(dc.clone()).or_insert_with(|| rf.clone());
                }
            }
            options.retain(|_, rf| rf.trim() != "0");
            let mut dcs = BTreeMap::new();
            for (dc, rf) in &options {
                dcs.insert(dc.clone(), parse_factor(rf)?);
            }
            if let Some(dc) = dcs.keys().find(|dc| !known_dcs.contains(*dc)) {
                return Err(unrecognized(dc, "NetworkTopologyStrategy"));
            }
            if dcs.is_empty() {
                return Err(CassandraError::Configuration(
                    "Configuration for at least one datacenter must be present".into(),
                ));
            }
            Ok(Replication::NetworkTopology(dcs))
        }
        _ => Err(CassandraError::Configuration(format!(
            "Unable to find replication strategy class '{}{simple_name}'",
            if class.contains('.') { "" } else { LOCATOR }
        ))),
    }
}

pub(crate) fn validate_name(kind: &str, name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= NAME_LENGTH
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        return Ok(());
    }
    Err(CassandraError::InvalidRequest(format!(
        "{kind} name must not be empty, more than {NAME_LENGTH} characters long, or contain \
         non-alphanumeric-underscore characters (got \"{name}\")"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn dcs(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn message(result: Result<Replication>) -> String {
        result.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn replication_options_are_validated_as_cassandra_4_0_does() {
        let known = dcs(&["dc1", "dc2"]);
        let nts = "NetworkTopologyStrategy";
        assert_eq!(
            message(parse_replication(
                "ks",
                &options(&[("class", nts), ("dc3", "3")]),
                None,
                &known
            )),
            "Unrecognized strategy option {dc3} passed to NetworkTopologyStrategy for keyspace ks"
        );
        assert_eq!(
            message(parse_replication(
                "ks",
                &options(&[("class", nts), ("dc1", "-1")]),
                None,
                &known
            )),
            "Replication factor must be non-negative, found -1"
        );
        assert_eq!(
            message(parse_replication(
                "ks",
                &options(&[("class", nts), ("dc1", "x")]),
                None,
                &known
            )),
            "For input string: \"x\""
        );
        assert_eq!(
            message(parse_replication(
                "ks",
                &options(&[("class", "SimpleStrategy")]),
                None,
                &known
            )),
            "SimpleStrategy requires a replication_factor strategy option."
        );
        assert_eq!(
            message(parse_replication(
                "ks",
                &options(&[("class", "Foo")]),
                None,
                &known
            )),
            "Unable to find replication strategy class 'org.apache.cassandra.locator.Foo'"
        );
        assert_eq!(
            message(parse_replication(
                "ks",
                &options(&[("dc1", "3")]),
                None,
                &known
            )),
            "Missing replication strategy class"
        );
        let expanded = parse_replication(
            "ks",
            &options(&[("class", nts), ("replication_factor", "2"), ("dc2", "0")]),
            None,
            &known,
        );
        assert_eq!(
            expanded.ok(),
            Some(Replication::network_topology([("dc1", 2)]))
        );
        let from_simple = parse_replication(
            "ks",
            &options(&[("class", nts)]),
            Some(&Replication::Simple(3)),
            &known,
        );
        assert_eq!(
            from_simple.ok(),
            Some(Replication::network_topology([("dc1", 3), ("dc2", 3)]))
        );
    }

    #[test]
    fn system_replication_property_is_parsed_like_the_management_api_agent() {
        let props = SystemReplicationProperties::dc_rf("dc1:3, dc2:3,bad,dc3:9");
        assert_eq!(
            props.override_replication(),
            Some(Replication::network_topology([("dc1", 3), ("dc2", 3)]))
        );
        let legacy = SystemReplicationProperties {
            dc_names: Some("dc1,dc2".into()),
            per_dc: Some("2".into()),
            ..Default::default()
        };
        assert_eq!(
            legacy.override_replication(),
            Some(Replication::network_topology([("dc1", 2), ("dc2", 2)]))
        );
        assert_eq!(
            SystemReplicationProperties::default().override_replication(),
            None
        );
    }
}
