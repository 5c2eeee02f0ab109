//! What the test interface shows of a cluster: its ring (`nodetool status`), its keyspaces and
//! how many rows each node and datacenter holds, read straight from the replicas (no
//! consistency level involved).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::CassandraModel;
use super::cluster::{NodeState, PodRef};
use super::error::Result;

/// One line of `nodetool status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingEntry {
    pub pod: PodRef,
    pub ip: String,
    pub host_id: Uuid,
    pub datacenter: String,
    pub rack: String,
    pub state: NodeState,
    pub up: bool,
    pub tokens: Vec<i64>,
    pub load_bytes: u64,
    pub schema_version: Uuid,
}

/// A keyspace with its replication map and table names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyspaceView {
    pub name: String,
    pub replication: BTreeMap<String, String>,
    pub tables: Vec<String>,
}

/// A token range `(start, end]` and the addresses of its replicas, in placement order (the
/// Management API's `TokenRangeToEndpoints`, what Reaper cuts into segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRangeReplicas {
    pub start: i64,
    pub end: i64,
    pub endpoints: Vec<String>,
}

/// Live rows per `keyspace.table`, per node and per datacenter (distinct partitions any node of
/// the DC holds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowCounts {
    pub per_node: BTreeMap<PodRef, BTreeMap<String, usize>>,
    pub per_datacenter: BTreeMap<String, BTreeMap<String, usize>>,
}

impl CassandraModel {
    /// The nodes gossip knows (Left ones excluded), by datacenter, rack and pod.
    pub fn ring(&self, cluster: &str) -> Result<Vec<RingEntry>> {
        let c = self.cluster(cluster)?;
        let mut entries: Vec<RingEntry> = c
            .known_members()
            .map(|idx| {
                let node = &c.nodes[idx];
                let mut tokens = node.tokens.clone();
                tokens.sort_unstable();
                RingEntry {
                    pod: node.pod.clone(),
                    ip: node.ip.clone(),
                    host_id: node.host_id,
                    datacenter: node.datacenter.clone(),
                    rack: node.rack.clone(),
                    state: node.state,
                    up: node.up,
                    tokens,
                    load_bytes: node.load_bytes(),
                    schema_version: node.schema_version,
                }
            })
            .collect();
        entries.sort_by(|a, b| {
            (&a.datacenter, &a.rack, &a.pod).cmp(&(&b.datacenter, &b.rack, &b.pod))
        });
        Ok(entries)
    }

    /// Every keyspace with its replication, by name.
    pub fn keyspaces(&self, cluster: &str) -> Result<Vec<KeyspaceView>> {
        let c = self.cluster(cluster)?;
        Ok(c.keyspaces
            .values()
            .map(|ks| KeyspaceView {
                name: ks.name.clone(),
                replication: ks.replication.to_map(),
                tables: ks.tables.keys().cloned().collect(),
            })
            .collect())
    }

    /// Every range of the ring with the replicas a keyspace has there.
    pub fn range_to_endpoints(
        &self,
        cluster: &str,
        keyspace: &str,
    ) -> Result<Vec<TokenRangeReplicas>> {
        let c = self.cluster(cluster)?;
        let replication = &self.keyspace(cluster, keyspace)?.replication;
        let placement = c.placement(replication);
        let count = placement.len();
        Ok((0..count)
            .map(|pos| TokenRangeReplicas {
                start: placement.token_at((pos + count - 1) % count),
                end: placement.token_at(pos),
                endpoints: placement.at(pos).iter().map(|&idx| c.nodes[idx].ip.clone()).collect(),
            })
            .collect())
    }

    /// Row counts of every table with rows, per node and per datacenter.
    pub fn row_counts(&self, cluster: &str) -> Result<RowCounts> {
        let c = self.cluster(cluster)?;
        let mut counts = RowCounts::default();
        let mut dc_keys: BTreeMap<String, BTreeMap<String, BTreeSet<&String>>> = BTreeMap::new();
        for idx in c.known_members() {
            let node = &c.nodes[idx];
            let per_table = counts.per_node.entry(node.pod.clone()).or_default();
            for (keyspace, tables) in node.data.keyspaces() {
                for table in tables.keys() {
                    let name = format!("{keyspace}.{table}");
                    let keys: Vec<&String> =
                        node.data.live_rows(keyspace, table).map(|(k, _)| k).collect();
                    per_table.insert(name.clone(), keys.len());
                    dc_keys
                        .entry(node.datacenter.clone())
                        .or_default()
                        .entry(name)
                        .or_default()
                        .extend(keys);
                }
            }
        }
        counts.per_datacenter = dc_keys
            .into_iter()
            .map(|(dc, tables)| {
                (
                    dc,
                    tables.into_iter().map(|(t, keys)| (t, keys.len())).collect(),
                )
            })
            .collect();
        Ok(counts)
    }
}
