//! The token ring and replica placement.
//!
//! Each node owns a few random tokens (vnodes, `num_tokens`); a partition key's token is a
//! stable 64-bit hash of the key (not Murmur3, so tokens differ from a real cluster's, which no
//! test can observe). A token belongs to the range `(previous token, token]` and its replicas
//! are found by walking the ring clockwise from it, as `AbstractReplicationStrategy` does.

use std::collections::{BTreeMap, BTreeSet};

use super::keyspace::Replication;
use super::node::Node;

/// The token of a partition key: FNV-1a then the SplitMix64 finaliser, so that similar keys
/// spread over the whole ring.
pub(crate) fn token_for_key(key: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (hash ^ (hash >> 31)) as i64
}

/// Whether `token` lies in the range `(start, end]`, which wraps around the ring when
/// `start >= end` (`start == end` is the whole ring), as `org.apache.cassandra.dht.Range` has it.
pub(crate) fn range_contains(start: i64, end: i64, token: i64) -> bool {
    if start < end {
        start < token && token <= end
    } else {
        token > start || token <= end
    }
}

/// The tokens of the nodes that own ranges (Normal or Leaving), sorted.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ring {
    entries: Vec<(i64, usize)>,
}

impl Ring {
    /// The ring formed by the given node indexes.
    pub(crate) fn of(nodes: &[Node], members: impl IntoIterator<Item = usize>) -> Ring {
        let mut entries: Vec<(i64, usize)> = members
            .into_iter()
            .flat_map(|idx| nodes[idx].tokens.iter().map(move |token| (*token, idx)))
            .collect();
        entries.sort_unstable();
        Ring { entries }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The nodes on the ring.
    pub(crate) fn members(&self) -> BTreeSet<usize> {
        self.entries.iter().map(|(_, idx)| *idx).collect()
    }

    pub(crate) fn token_at(&self, pos: usize) -> i64 {
        self.entries[pos].0
    }

    /// The range `(left, right]` ending at `pos`, printed as Cassandra prints ranges.
    pub(crate) fn range_at(&self, pos: usize) -> String {
        let left = if pos == 0 {
            self.entries.len() - 1
        } else {
            pos - 1
        };
        format!("({},{}]", self.entries[left].0, self.entries[pos].0)
    }

    /// Replicas of every range of the ring under `replication`.
    pub(crate) fn placement(&self, replication: &Replication, nodes: &[Node]) -> Placement {
        let replicas = match replication {
            Replication::Local => vec![Vec::new(); self.entries.len()],
            Replication::Simple(rf) => {
                (0..self.entries.len()).map(|pos| self.simple_replicas(pos, *rf)).collect()
            }
            Replication::NetworkTopology(dcs) => {
                let topology = Topology::of(self, nodes, dcs);
                (0..self.entries.len())
                    .map(|pos| self.network_topology_replicas(pos, &topology))
                    .collect()
            }
        };
        Placement {
            tokens: self.entries.iter().map(|(t, _)| *t).collect(),
            replicas,
        }
    }

    /// SimpleStrategy: the next `rf` distinct nodes clockwise.
    fn simple_replicas(&self, pos: usize, rf: u32) -> Vec<usize> {
        let mut replicas = Vec::new();
        for step in 0..self.entries.len() {
            if replicas.len() >= rf as usize {
                break;
            }
            let idx = self.entries[(pos + step) % self.entries.len()].1;
            if !replicas.contains(&idx) {
                replicas.push(idx);
            }
        }
        replicas
    }

    /// NetworkTopologyStrategy.calculateNaturalReplicas: per datacenter, walk clockwise taking
    /// nodes of racks not yet used; a rack may repeat only as often as the DC has fewer racks than
    /// its replication factor (`DatacenterEndpoints.addEndpointAndCheckIfDone`). The walk reads
    /// each node's datacenter and rack as small numbers ([`Topology`]): a placement is computed
    /// for every range at every write and join.
    fn network_topology_replicas(&self, pos: usize, topology: &Topology) -> Vec<usize> {
        struct Filling {
            left: usize,
            rack_repeats: i64,
            racks: Vec<usize>,
        }
        let mut filling: Vec<Filling> = topology
            .datacenters
            .iter()
            .map(|dc| Filling {
                left: dc.wanted,
                rack_repeats: dc.rack_repeats,
                racks: Vec::new(),
            })
            .collect();
        let mut unfilled = filling.iter().filter(|f| f.left > 0).count();
        let mut replicas = Vec::new();
        for step in 0..self.entries.len() {
            if unfilled == 0 {
                break;
            }
            let idx = self.entries[(pos + step) % self.entries.len()].1;
            let Some(&(slot, rack)) = topology.node_slots.get(&idx) else {
                continue;
            };
            let dc = &mut filling[slot];
            if dc.left == 0 || replicas.contains(&idx) {
                continue;
            }
            if dc.racks.contains(&rack) {
                if dc.rack_repeats <= 0 {
                    continue;
                }
                dc.rack_repeats -= 1;
            } else {
                dc.racks.push(rack);
            }
            replicas.push(idx);
            dc.left -= 1;
            if dc.left == 0 {
                unfilled -= 1;
            }
        }
        replicas
    }
}

/// The ring's members as the NetworkTopologyStrategy walk reads them: the datacenters with a
/// replication factor, each with how many replicas it can take and how often a rack may repeat,
/// and each member node's datacenter slot and rack number.
struct Topology {
    datacenters: Vec<DatacenterSlot>,
    /// Node index → (slot in `datacenters`, rack number); nodes of other datacenters are absent.
    node_slots: std::collections::HashMap<usize, (usize, usize)>,
}

struct DatacenterSlot {
    /// min(RF, nodes in the datacenter).
    wanted: usize,
    /// RF minus the datacenter's rack count.
    rack_repeats: i64,
}

impl Topology {
    fn of(ring: &Ring, nodes: &[Node], factors: &BTreeMap<String, u32>) -> Topology {
        let mut members: BTreeMap<&str, (BTreeSet<usize>, BTreeSet<&str>)> = BTreeMap::new();
        for idx in ring.members() {
            let node = &nodes[idx];
            let entry = members.entry(node.datacenter.as_str()).or_default();
            entry.0.insert(idx);
            entry.1.insert(node.rack.as_str());
        }
        let mut datacenters = Vec::new();
        let mut node_slots = std::collections::HashMap::new();
        for (dc, rf) in factors.iter().filter(|(_, rf)| **rf > 0) {
            let Some((dc_nodes, racks)) = members.get(dc.as_str()) else {
                continue;
            };
            let slot = datacenters.len();
            datacenters.push(DatacenterSlot {
                wanted: (*rf as usize).min(dc_nodes.len()),
                rack_repeats: i64::from(*rf) - racks.len() as i64,
            });
            let rack_numbers: BTreeMap<&str, usize> =
                racks.iter().enumerate().map(|(n, rack)| (*rack, n)).collect();
            for idx in dc_nodes {
                let rack = rack_numbers.get(nodes[*idx].rack.as_str()).copied().unwrap_or(0);
                node_slots.insert(*idx, (slot, rack));
            }
        }
        Topology {
            datacenters,
            node_slots,
        }
    }
}

/// The replicas of each range of a ring for one replication setting.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    tokens: Vec<i64>,
    replicas: Vec<Vec<usize>>,
}

impl Placement {
    /// The position whose range holds `token`: the first ring token >= it, wrapping around.
    pub(crate) fn position(&self, token: i64) -> usize {
        let pos = self.tokens.partition_point(|t| *t < token);
        if pos == self.tokens.len() { 0 } else { pos }
    }

    pub(crate) fn len(&self) -> usize {
        self.tokens.len()
    }

    pub(crate) fn token_at(&self, pos: usize) -> i64 {
        self.tokens[pos]
    }

    /// Whether the ring range ending at `pos` overlaps `(start, end]`.
    pub(crate) fn overlaps(&self, pos: usize, start: i64, end: i64) -> bool {
        range_contains(start, end, self.tokens[pos]) || self.position(end) == pos
    }

    pub(crate) fn at(&self, pos: usize) -> &[usize] {
        self.replicas.get(pos).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The replicas of a partition key, in ring order.
    pub(crate) fn for_key(&self, key: &str) -> &[usize] {
        if self.tokens.is_empty() {
            return &[];
        }
        self.at(self.position(token_for_key(key)))
    }
}
