//! Keyspace replication as the datacenters require it (pure).
//!
//! Cassandra creates `system_auth`, `system_distributed` and `system_traces` (and DSE its own
//! keyspaces) with the replication of the first datacenter only. Each datacenter that joins must
//! be added to them, or logins through it fail (`system_auth`) and repairs and traces lose their
//! bookkeeping there; each datacenter that leaves must be taken out before it goes, or writes at
//! EACH_QUORUM and ALL fail for want of its replicas.
//!
//! What is decided here, per keyspace, from the replication Cassandra reports and what is known
//! of the datacenters:
//! - a datacenter that is part of the Cassandra cluster (it was initialised) gets
//!   min(3, size) replicas, an external datacenter 3;
//! - a datacenter this cluster no longer has (removed from the spec) is taken out;
//! - every other datacenter Cassandra lists keeps what it has: one being created or whose region
//!   cannot be seen now is neither added nor removed, and one Federator knows nothing about
//!   (not ours, not declared external) is left alone, where k8ssandra-operator would drop it.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::cassdc::ServerType;

/// Most replicas a system keyspace gets per datacenter.
pub const MAX_SYSTEM_REPLICAS: u32 = 3;

/// The keyspaces Cassandra creates that must follow the datacenters.
pub const SYSTEM_KEYSPACES: [&str; 3] = ["system_auth", "system_distributed", "system_traces"];

/// DSE's keyspaces with NetworkTopologyStrategy (`dse_system` and `solr_admin` use DSE's
/// EverywhereStrategy and are left as they are).
pub const DSE_KEYSPACES: [&str; 3] = ["dse_leases", "dse_perf", "dse_security"];

/// The class Cassandra reports for NetworkTopologyStrategy.
const NETWORK_TOPOLOGY: &str = "NetworkTopologyStrategy";

/// The keyspaces to keep replicated for a server type.
pub fn system_keyspaces(server_type: ServerType) -> Vec<&'static str> {
    let mut keyspaces = SYSTEM_KEYSPACES.to_vec();
    if server_type == ServerType::Dse {
        keyspaces.extend(DSE_KEYSPACES);
    }
    keyspaces
}

/// What is known of the cluster's datacenters, by their names inside Cassandra.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatacenterSet {
    /// Datacenters of the spec that are part of the Cassandra cluster, with their size.
    pub joined: BTreeMap<String, u32>,
    /// `spec.externalDatacenters`.
    pub external: BTreeSet<String>,
    /// Datacenters this cluster had and that left the spec: they leave replication.
    pub removed: BTreeSet<String>,
}

impl DatacenterSet {
    /// Replicas each datacenter must have in a system keyspace; `None` where the datacenter
    /// must not be in it. Datacenters not named keep what they have.
    fn wanted(&self) -> BTreeMap<&str, Option<u32>> {
        let mut wanted: BTreeMap<&str, Option<u32>> = BTreeMap::new();
        for removed in &self.removed {
            wanted.insert(removed, None);
        }
        for external in &self.external {
            wanted.insert(external, Some(MAX_SYSTEM_REPLICAS));
        }
        for (name, size) in &self.joined {
            wanted.insert(name, Some((*size).clamp(1, MAX_SYSTEM_REPLICAS)));
        }
        wanted
    }
}

/// The replication a keyspace reports, as the Management API gives it:
/// `{"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "dc1": "3"}`.
pub type ReportedReplication = BTreeMap<String, String>;

/// The replication to alter a keyspace to, datacenter → replicas, or `None` when it is as it
/// should be. A keyspace with another strategy (SimpleStrategy, as Cassandra creates
/// `system_auth` without `-Dcassandra.system_distributed_replication`) becomes
/// NetworkTopologyStrategy with the datacenters that joined.
pub fn alteration(
    reported: &ReportedReplication,
    datacenters: &DatacenterSet,
) -> Option<BTreeMap<String, u32>> {
    let network_topology = is_network_topology(reported);
    let current = match network_topology {
        true => listed_replicas(reported),
        false => BTreeMap::new(),
    };
    let mut desired = current.clone();
    for (dc, replicas) in datacenters.wanted() {
        match replicas {
            Some(replicas) => desired.insert(dc.to_string(), replicas),
            None => desired.remove(dc),
        };
    }
    // A keyspace must be somewhere: never alter one to no datacenter at all.
    if desired.is_empty() || (network_topology && desired == current) {
        return None;
    }
    Some(desired)
}

/// `k8ssandra.io/dc-replication` (upstream's format): for a datacenter being added, the user
/// keyspaces to replicate to it and with how many replicas, `{"dc2": {"ks1": 3, "ks2": 0}}`;
/// 0 leaves a keyspace out. `sizes` bounds each count by the datacenter's size (more replicas
/// than nodes would fail every write at QUORUM there).
pub fn parse_dc_replication(
    value: &str,
    sizes: &BTreeMap<String, u32>,
) -> Result<BTreeMap<String, BTreeMap<String, u32>>, String> {
    let parsed: BTreeMap<String, BTreeMap<String, u32>> = serde_json::from_str(value)
        .map_err(|e| format!("not a map of datacenters to keyspaces to replica counts: {e}"))?;
    for (dc, keyspaces) in &parsed {
        for (keyspace, replicas) in keyspaces {
            if is_system_keyspace(keyspace) {
                return Err(format!(
                    "{keyspace} is a system keyspace: Federator keeps its replication"
                ));
            }
            if let Some(size) = sizes.get(dc)
                && replicas > size
            {
                return Err(format!(
                    "{replicas} replicas of {keyspace} in {dc}, which has {size} nodes"
                ));
            }
        }
    }
    Ok(parsed)
}

/// Whether the reported class is NetworkTopologyStrategy (Cassandra gives it fully qualified).
fn is_network_topology(reported: &ReportedReplication) -> bool {
    reported.get("class").is_some_and(|class| class.rsplit('.').next() == Some(NETWORK_TOPOLOGY))
}

/// Every numeric option but `class`, by name: the replicas per datacenter under
/// NetworkTopologyStrategy (`replication_factor` under SimpleStrategy).
pub fn listed_replicas(reported: &ReportedReplication) -> BTreeMap<String, u32> {
    reported
        .iter()
        .filter(|(key, _)| key.as_str() != "class")
        .filter_map(|(dc, n)| Some((dc.clone(), n.parse().ok()?)))
        .collect()
}

/// `system_auth {dc1: 3, dc2: 1}`, as status messages and Events show a keyspace's replicas.
pub fn describe_replicas(keyspace: &str, replicas: &BTreeMap<String, u32>) -> String {
    let dcs: Vec<String> = replicas.iter().map(|(dc, n)| format!("{dc}: {n}")).collect();
    format!("{keyspace} {{{}}}", dcs.join(", "))
}

/// Keyspaces Cassandra (or DSE) owns.
pub fn is_system_keyspace(keyspace: &str) -> bool {
    keyspace.starts_with("system") || keyspace.starts_with("dse_") || keyspace == "solr_admin"
}

/// The replication to alter a user keyspace to so that `datacenter` has `replicas`, or `None`
/// when it has them already (or when `replicas` is 0 and it has none). Other datacenters keep
/// theirs. A keyspace without NetworkTopologyStrategy cannot name datacenters: an error.
pub fn with_datacenter(
    reported: &ReportedReplication,
    datacenter: &str,
    replicas: u32,
) -> Result<Option<BTreeMap<String, u32>>, String> {
    if !is_network_topology(reported) {
        let class = reported.get("class").map(String::as_str).unwrap_or_default();
        return match replicas {
            0 => Ok(None),
            _ => Err(format!(
                "it uses {class}, which cannot place replicas per datacenter: alter it to NetworkTopologyStrategy"
            )),
        };
    }
    let mut desired = listed_replicas(reported);
    let current = desired.get(datacenter).copied().unwrap_or(0);
    if current == replicas {
        return Ok(None);
    }
    match replicas {
        0 => desired.remove(datacenter),
        n => desired.insert(datacenter.to_string(), n),
    };
    Ok((!desired.is_empty()).then_some(desired))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reported(pairs: &[(&str, &str)]) -> ReportedReplication {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn joined(pairs: &[(&str, u32)]) -> DatacenterSet {
        DatacenterSet {
            joined: pairs.iter().map(|(dc, size)| (dc.to_string(), *size)).collect(),
            ..DatacenterSet::default()
        }
    }

    fn replicas(pairs: &[(&str, u32)]) -> Option<BTreeMap<String, u32>> {
        Some(pairs.iter().map(|(dc, n)| (dc.to_string(), *n)).collect())
    }

    const NTS: &str = "org.apache.cassandra.locator.NetworkTopologyStrategy";

    #[test]
    fn a_joined_datacenter_is_added_with_at_most_three_replicas() {
        let now = reported(&[("class", NTS), ("dc1", "3")]);
        let set = joined(&[("dc1", 5), ("dc2", 2)]);
        assert_eq!(alteration(&now, &set), replicas(&[("dc1", 3), ("dc2", 2)]));
    }

    #[test]
    fn nothing_to_do_when_every_datacenter_has_its_replicas() {
        let now = reported(&[("class", NTS), ("dc1", "3"), ("dc2", "1")]);
        assert_eq!(alteration(&now, &joined(&[("dc1", 3), ("dc2", 1)])), None);
    }

    #[test]
    fn simple_strategy_becomes_network_topology() {
        let now = reported(&[
            ("class", "org.apache.cassandra.locator.SimpleStrategy"),
            ("replication_factor", "1"),
        ]);
        assert_eq!(
            alteration(&now, &joined(&[("dc1", 3)])),
            replicas(&[("dc1", 3)])
        );
    }

    #[test]
    fn a_removed_datacenter_leaves_and_an_unknown_one_stays() {
        let now = reported(&[("class", NTS), ("dc1", "3"), ("old", "3"), ("theirs", "2")]);
        let set = DatacenterSet {
            removed: BTreeSet::from(["old".to_string()]),
            ..joined(&[("dc1", 3)])
        };
        assert_eq!(
            alteration(&now, &set),
            replicas(&[("dc1", 3), ("theirs", 2)])
        );
    }

    #[test]
    fn a_datacenter_not_joined_yet_is_neither_added_nor_removed() {
        // dc2 is being created, dc3's region cannot be seen: both keep what they have.
        let now = reported(&[("class", NTS), ("dc1", "3"), ("dc3", "3")]);
        assert_eq!(alteration(&now, &joined(&[("dc1", 3)])), None);
    }

    #[test]
    fn external_datacenters_get_three() {
        let now = reported(&[("class", NTS), ("dc1", "3")]);
        let set = DatacenterSet {
            external: BTreeSet::from(["legacy".to_string()]),
            ..joined(&[("dc1", 3)])
        };
        assert_eq!(
            alteration(&now, &set),
            replicas(&[("dc1", 3), ("legacy", 3)])
        );
    }

    #[test]
    fn a_keyspace_is_never_altered_to_no_datacenter() {
        let now = reported(&[("class", NTS), ("old", "3")]);
        let set = DatacenterSet {
            removed: BTreeSet::from(["old".to_string()]),
            ..DatacenterSet::default()
        };
        assert_eq!(alteration(&now, &set), None);
    }

    #[test]
    fn dc_replication_is_upstreams_map_bounded_by_the_datacenters_size() {
        let sizes = BTreeMap::from([("dc2".to_string(), 3)]);
        let parsed = parse_dc_replication(r#"{"dc2": {"ks1": 3, "ks2": 0}}"#, &sizes);
        assert_eq!(
            parsed.ok().and_then(|p| p.get("dc2").cloned()),
            Some(BTreeMap::from([
                ("ks1".to_string(), 3),
                ("ks2".to_string(), 0)
            ]))
        );
        let too_many = parse_dc_replication(r#"{"dc2": {"ks1": 4}}"#, &sizes);
        assert!(too_many.is_err_and(|e| e.contains("has 3 nodes")));
        let system = parse_dc_replication(r#"{"dc2": {"system_auth": 3}}"#, &sizes);
        assert!(system.is_err_and(|e| e.contains("system keyspace")));
        assert!(parse_dc_replication(r#"{"dc2": ["ks1"]}"#, &sizes).is_err());
    }

    #[test]
    fn a_user_keyspace_gains_the_datacenter_and_keeps_the_others() {
        let now = reported(&[("class", NTS), ("dc1", "5")]);
        assert_eq!(
            with_datacenter(&now, "dc2", 2),
            Ok(replicas(&[("dc1", 5), ("dc2", 2)]))
        );
        assert_eq!(with_datacenter(&now, "dc2", 0), Ok(None));
        let there = reported(&[("class", NTS), ("dc1", "5"), ("dc2", "2")]);
        assert_eq!(with_datacenter(&there, "dc2", 2), Ok(None));
        let simple = reported(&[("class", "SimpleStrategy"), ("replication_factor", "1")]);
        assert!(with_datacenter(&simple, "dc2", 2).is_err_and(|e| e.contains("SimpleStrategy")));
        assert_eq!(with_datacenter(&simple, "dc2", 0), Ok(None));
    }

    #[test]
    fn dse_has_its_own_keyspaces_too() {
        assert_eq!(system_keyspaces(ServerType::Cassandra).len(), 3);
        let dse = system_keyspaces(ServerType::Dse);
        assert!(dse.contains(&"dse_security") && dse.contains(&"system_auth"));
        assert!(!dse.contains(&"dse_system"));
    }
}
