//! Streaming: which node sends which ranges when the ring changes or a node rebuilds.
//!
//! A plan lists, per range of a ring, the (source, target) pairs to stream; applying it copies
//! every row of those ranges that the source holds. Sources are chosen as `RangeStreamer` does
//! in 4.0: with consistent range movement (the default) a joining node takes each range from the
//! replica that gives it up, which must be alive; otherwise from the nearest live replica, and
//! without one the operation fails ("Unable to find sufficient sources for streaming range").

use super::CassandraModel;
use super::cluster::{Cluster, PodRef};
use super::data::{keys_anywhere, tables_anywhere};
use super::error::{CassandraError, Result};
use super::ring::{Placement, Ring, token_for_key};
use super::schema::{Replication, distributed_keyspaces};

/// What one keyspace streams, by position of `lookup`.
struct KeyspacePlan {
    keyspace: String,
    lookup: Placement,
    moves: Vec<Vec<(usize, usize)>>,
}

/// `nodes` ordered nearest first as seen from `dc` (the snitch puts the local DC first; ring
/// order otherwise), keeping only live ones.
fn live_by_proximity(
    cluster: &Cluster,
    dc: &str,
    nodes: impl IntoIterator<Item = usize>,
) -> Vec<usize> {
    let mut live: Vec<usize> = nodes.into_iter().filter(|&idx| cluster.nodes[idx].up).collect();
    live.sort_by_key(|&idx| cluster.nodes[idx].datacenter != dc);
    live
}

fn no_sources(range: &str, keyspace: &str, replication: &Replication) -> CassandraError {
    if replication.total_replication_factor() == 1 {
        return CassandraError::IllegalState(format!(
            "Unable to find sufficient sources for streaming range {range} in keyspace {keyspace} \
             with RF=1. Ensure this keyspace contains replicas in the source datacenter."
        ));
    }
    CassandraError::IllegalState(format!(
        "Unable to find sufficient sources for streaming range {range} in keyspace {keyspace}"
    ))
}

/// Copies the planned rows; returns how many row versions the targets took.
fn apply(cluster: &mut Cluster, plans: Vec<KeyspacePlan>) -> usize {
    let mut writes = Vec::new();
    for plan in plans {
        if plan.moves.iter().all(Vec::is_empty) {
            continue;
        }
        for table in tables_anywhere(cluster, &plan.keyspace) {
            for key in keys_anywhere(cluster, &plan.keyspace, &table) {
                let pos = plan.lookup.position(token_for_key(&key));
                for &(source, target) in &plan.moves[pos] {
                    if let Some(cell) = cluster.nodes[source].data.get(&plan.keyspace, &table, &key)
                    {
                        writes.push((
                            target,
                            plan.keyspace.clone(),
                            table.clone(),
                            key.clone(),
                            cell.clone(),
                        ));
                    }
                }
            }
        }
    }
    let mut streamed = 0;
    for (target, keyspace, table, key, cell) in writes {
        if cluster.nodes[target].data.merge(&keyspace, &table, &key, cell) {
            streamed += 1;
        }
    }
    streamed
}

/// Bootstrap of `joining` (not yet on the ring): each range it gains comes from the replica that
/// loses it when every replica is in place (strict), otherwise from the nearest live replica.
pub(crate) fn bootstrap(cluster: &mut Cluster, joining: usize) -> Result<usize> {
    let old_ring = cluster.ring();
    let new_ring = Ring::of(
        &cluster.nodes,
        old_ring.members().into_iter().chain([joining]),
    );
    let dc = cluster.nodes[joining].datacenter.clone();
    let mut plans = Vec::new();
    for (keyspace, replication) in distributed_keyspaces(cluster) {
        let old = old_ring.placement(&replication, &cluster.nodes);
        let new = new_ring.placement(&replication, &cluster.nodes);
        let mut moves = vec![Vec::new(); new.len()];
        for (pos, pos_moves) in moves.iter_mut().enumerate() {
            if !new.at(pos).contains(&joining) || old.len() == 0 {
                continue;
            }
            let before = old.at(old.position(new_ring.token_at(pos)));
            if before.is_empty() {
                continue;
            }
            if before.len() == replication.total_replication_factor() {
                let losing = before.iter().copied().find(|idx| !new.at(pos).contains(idx));
                if let Some(source) = losing {
                    if !cluster.nodes[source].up {
                        return Err(CassandraError::IllegalState(format!(
                            "Necessary replicas for strict consistency were removed by source \
                             filters: Filtered /{} out because it was down",
                            cluster.nodes[source].ip
                        )));
                    }
                    pos_moves.push((source, joining));
                }
                continue;
            }
            let sources = live_by_proximity(cluster, &dc, before.iter().copied());
            let source = *sources
                .first()
                .ok_or_else(|| no_sources(&new_ring.range_at(pos), &keyspace, &replication))?;
            pos_moves.push((source, joining));
        }
        plans.push(KeyspacePlan {
            keyspace,
            lookup: new,
            moves,
        });
    }
    Ok(apply(cluster, plans))
}

/// Decommission of `leaving`: it sends each of its ranges to the nodes that gain it. A gaining
/// node that is down misses the rows (no hints).
pub(crate) fn unbootstrap(cluster: &mut Cluster, leaving: usize) -> usize {
    departure(cluster, leaving, |_, _, _| Some(leaving))
}

/// `nodetool removenode` of a dead node: the remaining replicas restore the replica count,
/// each gaining node streaming from the nearest live replica that stays.
pub(crate) fn restore_replica_count(cluster: &mut Cluster, removed: usize) -> usize {
    departure(cluster, removed, |cluster, gainer, replicas| {
        let dc = &cluster.nodes[gainer].datacenter;
        let remaining = replicas.iter().copied().filter(|&idx| idx != removed);
        live_by_proximity(cluster, dc, remaining).first().copied()
    })
}

/// `departing` leaves the ring: each range it replicated goes to the nodes that gain it, each
/// live gainer streaming from the node `source_of` picks among the range's old replicas.
fn departure(
    cluster: &mut Cluster,
    departing: usize,
    source_of: impl Fn(&Cluster, usize, &[usize]) -> Option<usize>,
) -> usize {
    let old_ring = cluster.ring();
    let new_ring = Ring::of(
        &cluster.nodes,
        old_ring.members().into_iter().filter(|&idx| idx != departing),
    );
    let mut plans = Vec::new();
    for (keyspace, replication) in distributed_keyspaces(cluster) {
        let old = old_ring.placement(&replication, &cluster.nodes);
        let new = new_ring.placement(&replication, &cluster.nodes);
        let mut moves = vec![Vec::new(); old.len()];
        for (pos, pos_moves) in moves.iter_mut().enumerate() {
            if !old.at(pos).contains(&departing) || new.len() == 0 {
                continue;
            }
            let after = new.at(new.position(old_ring.token_at(pos)));
            for &gainer in after.iter().filter(|idx| !old.at(pos).contains(idx)) {
                if !cluster.nodes[gainer].up {
                    continue;
                }
                if let Some(source) = source_of(cluster, gainer, old.at(pos)) {
                    pos_moves.push((source, gainer));
                }
            }
        }
        plans.push(KeyspacePlan {
            keyspace,
            lookup: old,
            moves,
        });
    }
    apply(cluster, plans)
}

/// A replacement (`replace_address`): `replacing` holds the same tokens as the dead
/// `replaced`, so it takes over exactly its ranges, each from the nearest live replica that
/// stays (Cassandra's `RangeStreamer` filters the dead node out).
pub(crate) fn replace(cluster: &mut Cluster, replaced: usize, replacing: usize) -> usize {
    let ring = cluster.ring();
    let dc = cluster.nodes[replacing].datacenter.clone();
    let mut plans = Vec::new();
    for (keyspace, replication) in distributed_keyspaces(cluster) {
        let placement = ring.placement(&replication, &cluster.nodes);
        let mut moves = vec![Vec::new(); placement.len()];
        for (pos, pos_moves) in moves.iter_mut().enumerate() {
            let replicas = placement.at(pos);
            if !replicas.contains(&replaced) {
                continue;
            }
            let others = replicas.iter().copied().filter(|&idx| idx != replaced);
            if let Some(&source) = live_by_proximity(cluster, &dc, others).first() {
                pos_moves.push((source, replacing));
            }
        }
        plans.push(KeyspacePlan {
            keyspace,
            lookup: placement,
            moves,
        });
    }
    apply(cluster, plans)
}

impl CassandraModel {
    /// `nodetool rebuild [source_dc]`: the node streams every range it replicates, in every
    /// distributed keyspace, from the nearest live replica (in `source_dc` if given). Fails as
    /// `StorageService.rebuild` does for an unknown DC, and as `RangeStreamer` does when a range
    /// has no live source there. Returns the number of rows the node took.
    pub fn rebuild(&mut self, pod: &PodRef, source_dc: Option<&str>) -> Result<usize> {
        let (cluster, node) = self.running_node(pod)?;
        let c = self.cluster_mut(&cluster)?;
        if let Some(source_dc) = source_dc {
            let ring_dcs: std::collections::BTreeSet<String> =
                c.ring_members().map(|idx| c.nodes[idx].datacenter.clone()).collect();
            if !ring_dcs.contains(source_dc) {
                return Err(CassandraError::IllegalArgument(format!(
                    "Provided datacenter '{source_dc}' is not a valid datacenter, available datacenters are: {}",
                    ring_dcs.into_iter().collect::<Vec<_>>().join(",")
                )));
            }
        }
        let ring = c.ring();
        let dc = c.nodes[node].datacenter.clone();
        let mut plans = Vec::new();
        for (keyspace, replication) in distributed_keyspaces(c) {
            let placement = ring.placement(&replication, &c.nodes);
            let mut moves = vec![Vec::new(); placement.len()];
            for (pos, pos_moves) in moves.iter_mut().enumerate() {
                let replicas = placement.at(pos);
                if !replicas.contains(&node) {
                    continue;
                }
                let candidates = replicas
                    .iter()
                    .copied()
                    .filter(|&idx| idx != node)
                    .filter(|&idx| source_dc.is_none_or(|s| c.nodes[idx].datacenter == s));
                let sources = live_by_proximity(c, &dc, candidates);
                let source = *sources
                    .first()
                    .ok_or_else(|| no_sources(&ring.range_at(pos), &keyspace, &replication))?;
                pos_moves.push((source, node));
            }
            plans.push(KeyspacePlan {
                keyspace,
                lookup: placement,
                moves,
            });
        }
        let streamed = apply(c, plans);
        self.record(pod, "REBUILD", None, &[])?;
        Ok(streamed)
    }
}
