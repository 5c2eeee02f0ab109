//! Rows, their replicas and consistency: writes, reads, repair and cleanup.
//!
//! A row is a partition key with one value and the write timestamp; a delete is a tombstone.
//! Every node holds its own copy of the rows it was sent. A write reaches every live replica
//! (Cassandra sends mutations to all replicas and waits for `blockFor`); a replica that is down
//! misses it for good, because hints are not modelled. Reads ask `blockFor` replicas and merge
//! by timestamp; when those disagree the newest version is written back to them (4.0's blocking
//! read repair, `read_repair = 'BLOCKING'`), the replicas not asked stay as they are.

use std::collections::{BTreeMap, BTreeSet};

use super::CassandraModel;
use super::cluster::{Cluster, PodRef};
use super::consistency::{self, ConsistencyLevel, ReplicaView};
use super::error::{CassandraError, Result};
pub use super::operations::RepairRequest;
use super::ring::{Placement, range_contains, token_for_key};
pub use super::rows::Cell;
use super::schema::{Keyspace, Replication};

/// The partition keys any node holds for a table (the candidates of a scan or a stream).
pub(crate) fn keys_anywhere(cluster: &Cluster, keyspace: &str, table: &str) -> BTreeSet<String> {
    cluster
        .nodes
        .iter()
        .flat_map(|node| {
            node.data
                .tables(keyspace)
                .filter(|(t, _)| *t == table)
                .flat_map(|(_, rows)| rows.keys())
        })
        .cloned()
        .collect()
}

/// The table names any node holds rows for in a keyspace.
pub(crate) fn tables_anywhere(cluster: &Cluster, keyspace: &str) -> BTreeSet<String> {
    cluster
        .nodes
        .iter()
        .flat_map(|node| node.data.tables(keyspace).map(|(t, _)| t.clone()))
        .collect()
}

/// The newest version of `key` among `nodes`.
pub(crate) fn newest(
    cluster: &Cluster,
    nodes: &[usize],
    keyspace: &str,
    table: &str,
    key: &str,
) -> Option<Cell> {
    let mut best: Option<&Cell> = None;
    for &idx in nodes {
        if let Some(cell) = cluster.nodes[idx].data.get(keyspace, table, key)
            && best.is_none_or(|b| cell.supersedes(b))
        {
            best = Some(cell);
        }
    }
    best.cloned()
}

fn view<'a>(cluster: &'a Cluster, replicas: &[usize]) -> ReplicaView<'a> {
    ReplicaView {
        dcs: cluster.dcs_of(replicas),
        live: cluster.liveness_of(replicas),
    }
}

/// The keyspace and its replication for a data request on `table`.
fn data_keyspace<'a>(cluster: &'a Cluster, keyspace: &str, table: &str) -> Result<&'a Keyspace> {
    let ks = cluster.keyspace(keyspace).ok_or_else(|| {
        CassandraError::InvalidRequest(format!("Keyspace {keyspace} does not exist"))
    })?;
    if ks.replication == Replication::Local {
        return Err(CassandraError::InvalidRequest(format!(
            "the model keeps no rows of the node-local keyspace {keyspace}"
        )));
    }
    if !ks.tables.contains_key(table) {
        return Err(CassandraError::InvalidRequest(format!(
            "unconfigured table {table}"
        )));
    }
    Ok(ks)
}

/// What a repair changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepairOutcome {
    /// Row versions written to replicas that lacked them.
    pub rows_repaired: usize,
}

impl CassandraModel {
    /// Writes `rows` (partition key, value) at `consistency`, coordinated from a node of
    /// `coordinator_dc`. Fails with `Unavailable` before writing anything if some row has too
    /// few live replicas; otherwise every live replica of every row gets it. Returns the write
    /// timestamp (microseconds).
    pub fn write<K: Into<String>, V: Into<String>>(
        &mut self,
        cluster: &str,
        coordinator_dc: &str,
        keyspace: &str,
        table: &str,
        rows: impl IntoIterator<Item = (K, V)>,
        consistency: ConsistencyLevel,
    ) -> Result<i64> {
        let mutations = rows.into_iter().map(|(k, v)| (k.into(), Some(v.into()))).collect();
        self.mutate(
            cluster,
            coordinator_dc,
            keyspace,
            table,
            mutations,
            consistency,
            None,
        )
    }

    /// Deletes partitions (writes tombstones), with the same availability rules as `write`.
    pub fn delete<K: Into<String>>(
        &mut self,
        cluster: &str,
        coordinator_dc: &str,
        keyspace: &str,
        table: &str,
        keys: impl IntoIterator<Item = K>,
        consistency: ConsistencyLevel,
    ) -> Result<i64> {
        let mutations = keys.into_iter().map(|k| (k.into(), None)).collect();
        self.mutate(
            cluster,
            coordinator_dc,
            keyspace,
            table,
            mutations,
            consistency,
            None,
        )
    }

    /// Applies mutations; `timestamp` overrides the clock (`USING TIMESTAMP`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn mutate(
        &mut self,
        cluster: &str,
        coordinator_dc: &str,
        keyspace: &str,
        table: &str,
        mutations: Vec<(String, Option<String>)>,
        consistency: ConsistencyLevel,
        timestamp: Option<i64>,
    ) -> Result<i64> {
        let timestamp = match timestamp {
            Some(t) => t,
            None => self.next_timestamp(),
        };
        let c = self.cluster_mut(cluster)?;
        let replication = data_keyspace(c, keyspace, table)?.replication.clone();
        let placement = c.placement(&replication);
        let mut targets = Vec::with_capacity(mutations.len());
        for (key, value) in mutations {
            let replicas = placement.for_key(&key);
            consistency::assure_sufficient_live_replicas(
                consistency,
                &replication,
                coordinator_dc,
                &view(c, replicas),
            )?;
            let live: Vec<usize> =
                replicas.iter().copied().filter(|&idx| c.nodes[idx].up).collect();
            targets.push((key, value, live));
        }
        for (key, value, live) in targets {
            for idx in live {
                c.nodes[idx].data.merge(
                    keyspace,
                    table,
                    &key,
                    Cell {
                        value: value.clone(),
                        timestamp,
                    },
                );
            }
        }
        Ok(timestamp)
    }

    /// Reads one partition at `consistency` from a coordinator in `coordinator_dc`.
    pub fn read(
        &mut self,
        cluster: &str,
        coordinator_dc: &str,
        keyspace: &str,
        table: &str,
        key: &str,
        consistency: ConsistencyLevel,
    ) -> Result<Option<String>> {
        let c = self.cluster_mut(cluster)?;
        let replication = data_keyspace(c, keyspace, table)?.replication.clone();
        let placement = c.placement(&replication);
        let cell = read_key(
            c,
            &placement,
            &replication,
            coordinator_dc,
            keyspace,
            table,
            key,
            consistency,
        )?;
        Ok(cell.and_then(|cell| cell.value))
    }

    /// Reads the whole table (`SELECT *`) at `consistency`: every token range must be
    /// available, and each range answers with what its contacted replicas hold.
    pub fn read_all(
        &mut self,
        cluster: &str,
        coordinator_dc: &str,
        keyspace: &str,
        table: &str,
        consistency: ConsistencyLevel,
    ) -> Result<BTreeMap<String, String>> {
        let c = self.cluster_mut(cluster)?;
        let replication = data_keyspace(c, keyspace, table)?.replication.clone();
        let placement = c.placement(&replication);
        if placement.len() == 0 {
            consistency::assure_sufficient_live_replicas(
                consistency,
                &replication,
                coordinator_dc,
                &ReplicaView {
                    dcs: Vec::new(),
                    live: Vec::new(),
                },
            )?;
        }
        for pos in 0..placement.len() {
            consistency::assure_sufficient_live_replicas(
                consistency,
                &replication,
                coordinator_dc,
                &view(c, placement.at(pos)),
            )?;
        }
        let mut rows = BTreeMap::new();
        for key in keys_anywhere(c, keyspace, table) {
            let cell = read_key(
                c,
                &placement,
                &replication,
                coordinator_dc,
                keyspace,
                table,
                &key,
                consistency,
            )?;
            if let Some(value) = cell.and_then(|cell| cell.value) {
                rows.insert(key, value);
            }
        }
        Ok(rows)
    }

    /// `SELECT count(*)` at `consistency`.
    pub fn count(
        &mut self,
        cluster: &str,
        coordinator_dc: &str,
        keyspace: &str,
        table: &str,
        consistency: ConsistencyLevel,
    ) -> Result<usize> {
        Ok(self.read_all(cluster, coordinator_dc, keyspace, table, consistency)?.len())
    }

    /// Full repair: for each partition in scope, the newest version among the participating
    /// replicas is written to those that lack it. Without `force`, a dead replica fails the
    /// repair before anything is streamed, as `ActiveRepairService.prepareForRepair` does.
    pub fn repair(&mut self, cluster: &str, request: &RepairRequest) -> Result<RepairOutcome> {
        let coordinator = match &request.coordinator {
            Some(pod) => {
                let (pod_cluster, idx) = self.running_node(pod)?;
                if pod_cluster != cluster {
                    return Err(CassandraError::UnknownNode(format!(
                        "{pod} in cluster {cluster}"
                    )));
                }
                Some(idx)
            }
            None => None,
        };
        let c = self.cluster_mut(cluster)?;
        let ks =
            c.keyspace(&request.keyspace).ok_or_else(|| unknown_keyspace(&request.keyspace))?;
        for table in &request.tables {
            if !ks.tables.contains_key(table) {
                return Err(unknown_table(&request.keyspace, table));
            }
        }
        let replication = ks.replication.clone();
        let tables: Vec<String> = if request.tables.is_empty() {
            ks.tables.keys().cloned().collect()
        } else {
            request.tables.clone()
        };
        if let Some(coordinator) = coordinator
            && !request.datacenters.is_empty()
            && !request.datacenters.contains(&c.nodes[coordinator].datacenter)
        {
            return Err(CassandraError::IllegalArgument(
                "The local data center must be part of the repair".into(),
            ));
        }
        if replication == Replication::Local {
            return Ok(RepairOutcome::default());
        }
        let placement = c.placement(&replication);
        let in_scope = |replicas: &[usize]| -> Option<Vec<usize>> {
            if coordinator.is_some_and(|idx| !replicas.contains(&idx)) {
                return None;
            }
            Some(
                replicas
                    .iter()
                    .copied()
                    .filter(|&idx| {
                        request.datacenters.is_empty()
                            || request.datacenters.contains(&c.nodes[idx].datacenter)
                    })
                    .collect(),
            )
        };
        let requested = |pos: usize| {
            request.ranges.is_empty()
                || request.ranges.iter().any(|(start, end)| placement.overlaps(pos, *start, *end))
        };
        let key_requested = |key: &str| {
            let token = token_for_key(key);
            request.ranges.is_empty()
                || request.ranges.iter().any(|(start, end)| range_contains(*start, *end, token))
        };
        if !request.force {
            for pos in (0..placement.len()).filter(|&pos| requested(pos)) {
                if let Some(participants) = in_scope(placement.at(pos))
                    && let Some(&dead) = participants.iter().find(|&&idx| !c.nodes[idx].up)
                {
                    return Err(CassandraError::IllegalState(format!(
                        "Endpoint not alive: /{}",
                        c.nodes[dead].ip
                    )));
                }
            }
        }
        let mut writes = Vec::new();
        for table in &tables {
            for key in keys_anywhere(c, &request.keyspace, table) {
                if !key_requested(&key) {
                    continue;
                }
                let Some(participants) = in_scope(placement.for_key(&key)) else {
                    continue;
                };
                let live: Vec<usize> =
                    participants.into_iter().filter(|&idx| c.nodes[idx].up).collect();
                if let Some(cell) = newest(c, &live, &request.keyspace, table, &key) {
                    for idx in live {
                        writes.push((idx, table.clone(), key.clone(), cell.clone()));
                    }
                }
            }
        }
        let mut outcome = RepairOutcome::default();
        for (idx, table, key, cell) in writes {
            if c.nodes[idx].data.merge(&request.keyspace, &table, &key, cell) {
                outcome.rows_repaired += 1;
            }
        }
        if let Some(pod) = &request.coordinator {
            self.record(pod, "REPAIR", Some(&request.keyspace), &request.tables)?;
        }
        Ok(outcome)
    }

    /// `nodetool cleanup`: drops the rows the node holds but no longer replicates (all
    /// distributed keyspaces, or one). Returns how many rows went.
    pub fn cleanup(&mut self, pod: &PodRef, keyspace: Option<&str>) -> Result<usize> {
        let (cluster, idx) = self.running_node(pod)?;
        let c = self.cluster_mut(&cluster)?;
        let keyspaces: Vec<(String, Replication)> = match keyspace {
            Some(name) => {
                let ks = c.keyspace(name).ok_or_else(|| unknown_keyspace(name))?;
                vec![(ks.name.clone(), ks.replication.clone())]
            }
            None => super::schema::distributed_keyspaces(c),
        };
        let mut removed = 0;
        for (keyspace, replication) in keyspaces {
            if replication == Replication::Local {
                continue;
            }
            let placement = c.placement(&replication);
            let unowned: Vec<(String, String)> = c.nodes[idx]
                .data
                .tables(&keyspace)
                .flat_map(|(table, rows)| rows.keys().map(move |key| (table.clone(), key.clone())))
                .filter(|(_, key)| !placement.for_key(key).contains(&idx))
                .collect();
            for (table, key) in unowned {
                if c.nodes[idx].data.remove(&keyspace, &table, &key) {
                    removed += 1;
                }
            }
        }
        self.record(pod, "CLEANUP", keyspace, &[])?;
        Ok(removed)
    }

    /// The live rows a node holds for a table (what its sstables contain), for inspection.
    pub fn node_rows(
        &self,
        pod: &PodRef,
        keyspace: &str,
        table: &str,
    ) -> Result<BTreeMap<String, String>> {
        let node = self.node(pod)?;
        Ok(node.data.live_rows(keyspace, table).map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

/// `StorageService.getValidKeyspace`'s message.
pub(crate) fn unknown_keyspace(keyspace: &str) -> CassandraError {
    CassandraError::IllegalArgument(format!("Keyspace {keyspace} does not exist"))
}

/// `Keyspace.getColumnFamilyStore`'s message.
pub(crate) fn unknown_table(keyspace: &str, table: &str) -> CassandraError {
    CassandraError::IllegalArgument(format!("Unknown keyspace/cf pair ({keyspace}.{table})"))
}

/// One partition read: availability, contacts, merge and blocking read repair.
#[allow(clippy::too_many_arguments)]
fn read_key(
    c: &mut Cluster,
    placement: &Placement,
    replication: &Replication,
    coordinator_dc: &str,
    keyspace: &str,
    table: &str,
    key: &str,
    consistency: ConsistencyLevel,
) -> Result<Option<Cell>> {
    let replicas = placement.for_key(key);
    let replica_view = view(c, replicas);
    consistency::assure_sufficient_live_replicas(
        consistency,
        replication,
        coordinator_dc,
        &replica_view,
    )?;
    let contacts: Vec<usize> =
        consistency::contacts_for_read(consistency, replication, coordinator_dc, &replica_view)
            .into_iter()
            .map(|i| replicas[i])
            .collect();
    let merged = newest(c, &contacts, keyspace, table, key);
    if let Some(cell) = &merged
        && contacts.len() > 1
    {
        for idx in contacts {
            c.nodes[idx].data.merge(keyspace, table, key, cell.clone());
        }
    }
    Ok(merged)
}
