//! Consistency levels: how many replicas a request needs, whether enough are alive, and which
//! ones a read contacts. Mirrors `org.apache.cassandra.db.ConsistencyLevel` (`blockFor`,
//! `localQuorumFor`) and `ReplicaPlans.assureSufficientLiveReplicas` / `contactForRead` of 4.0.

use super::error::Unavailable;
use super::keyspace::Replication;
pub use super::level::ConsistencyLevel;

/// `quorumFor`: a majority of the keyspace's total replication factor.
fn quorum_for(replication: &Replication) -> usize {
    replication.total_replication_factor() / 2 + 1
}

/// `localQuorumFor`: a majority of the DC's factor under NetworkTopologyStrategy (1 for a DC the
/// keyspace does not replicate to, so LOCAL_QUORUM there is unavailable), QUORUM otherwise.
fn local_quorum_for(replication: &Replication, dc: &str) -> usize {
    match replication {
        Replication::NetworkTopology(dcs) => dcs.get(dc).copied().unwrap_or(0) as usize / 2 + 1,
        _ => quorum_for(replication),
    }
}

/// `blockFor`: how many replicas must answer.
pub(crate) fn block_for(cl: ConsistencyLevel, replication: &Replication, local_dc: &str) -> usize {
    match cl {
        ConsistencyLevel::Any | ConsistencyLevel::One | ConsistencyLevel::LocalOne => 1,
        ConsistencyLevel::Two => 2,
        ConsistencyLevel::Three => 3,
        ConsistencyLevel::Quorum => quorum_for(replication),
        ConsistencyLevel::All => replication.total_replication_factor(),
        ConsistencyLevel::LocalQuorum => local_quorum_for(replication, local_dc),
        ConsistencyLevel::EachQuorum => match replication {
            Replication::NetworkTopology(dcs) => {
                dcs.keys().map(|dc| local_quorum_for(replication, dc)).sum()
            }
            _ => quorum_for(replication),
        },
    }
}

/// The replicas of one token as a request sees them.
pub(crate) struct ReplicaView<'a> {
    /// The datacenter of each replica, in ring (placement) order.
    pub dcs: Vec<&'a str>,
    /// Whether each replica is up.
    pub live: Vec<bool>,
}

impl ReplicaView<'_> {
    fn live_in(&self, dc: &str) -> usize {
        self.dcs.iter().zip(&self.live).filter(|(d, live)| **live && **d == dc).count()
    }

    fn live_total(&self) -> usize {
        self.live.iter().filter(|live| **live).count()
    }
}

/// `assureSufficientLiveReplicas`: fails before any replica is touched, as Cassandra does.
pub(crate) fn assure_sufficient_live_replicas(
    cl: ConsistencyLevel,
    replication: &Replication,
    local_dc: &str,
    replicas: &ReplicaView<'_>,
) -> Result<(), Unavailable> {
    let required = block_for(cl, replication, local_dc);
    let unavailable = |required, alive, datacenter| Unavailable {
        consistency: cl,
        required,
        alive,
        datacenter,
    };
    match cl {
        // A hint on the coordinator would do.
        ConsistencyLevel::Any => Ok(()),
        ConsistencyLevel::LocalOne | ConsistencyLevel::LocalQuorum => {
            let alive = replicas.live_in(local_dc);
            if alive < required {
                return Err(unavailable(required, alive, None));
            }
            Ok(())
        }
        ConsistencyLevel::EachQuorum if matches!(replication, Replication::NetworkTopology(_)) => {
            if let Replication::NetworkTopology(dcs) = replication {
                for dc in dcs.keys() {
                    let dc_required = local_quorum_for(replication, dc);
                    let alive = replicas.live_in(dc);
                    if alive < dc_required {
                        return Err(unavailable(dc_required, alive, Some(dc.clone())));
                    }
                }
            }
            Ok(())
        }
        _ => {
            let alive = replicas.live_total();
            if alive < required {
                return Err(unavailable(required, alive, None));
            }
            Ok(())
        }
    }
}

/// `contactForRead`: the live replicas a read asks, `blockFor` of them, nearest first. The
/// snitch puts the coordinator's datacenter first; within a DC the model keeps ring order, so the
/// choice is deterministic. EACH_QUORUM asks a quorum in every datacenter.
pub(crate) fn contacts_for_read(
    cl: ConsistencyLevel,
    replication: &Replication,
    local_dc: &str,
    replicas: &ReplicaView<'_>,
) -> Vec<usize> {
    let mut candidates: Vec<usize> = (0..replicas.dcs.len())
        .filter(|&i| replicas.live[i])
        .filter(|&i| !cl.is_datacenter_local() || replicas.dcs[i] == local_dc)
        .collect();
    // Stable sort: local datacenter first, ring order otherwise.
    candidates.sort_by_key(|&i| replicas.dcs[i] != local_dc);
    if let (ConsistencyLevel::EachQuorum, Replication::NetworkTopology(dcs)) = (cl, replication) {
        let mut wanted: Vec<(&str, usize)> =
            dcs.keys().map(|dc| (dc.as_str(), local_quorum_for(replication, dc))).collect();
        return candidates
            .into_iter()
            .filter(
                |&i| match wanted.iter_mut().find(|(dc, _)| *dc == replicas.dcs[i]) {
                    Some((_, left)) if *left > 0 => {
                        *left -= 1;
                        true
                    }
                    _ => false,
                },
            )
            .collect();
    }
    candidates.truncate(block_for(cl, replication, local_dc));
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nts(dcs: &[(&str, u32)]) -> Replication {
        Replication::NetworkTopology(dcs.iter().map(|(d, rf)| (d.to_string(), *rf)).collect())
    }

    #[test]
    fn block_for_follows_cassandra() {
        let r = nts(&[("dc1", 3), ("dc2", 3)]);
        assert_eq!(block_for(ConsistencyLevel::Quorum, &r, "dc1"), 4);
        assert_eq!(block_for(ConsistencyLevel::LocalQuorum, &r, "dc1"), 2);
        assert_eq!(block_for(ConsistencyLevel::EachQuorum, &r, "dc1"), 4);
        assert_eq!(block_for(ConsistencyLevel::All, &r, "dc1"), 6);
        // A DC the keyspace does not replicate to still needs one local replica.
        assert_eq!(block_for(ConsistencyLevel::LocalQuorum, &r, "dc3"), 1);
        let simple = Replication::Simple(3);
        assert_eq!(block_for(ConsistencyLevel::LocalQuorum, &simple, "dc1"), 2);
        assert_eq!(block_for(ConsistencyLevel::EachQuorum, &simple, "dc1"), 2);
    }

    #[test]
    fn parses_and_prints_levels() {
        let cl: ConsistencyLevel = "local_quorum".parse().unwrap_or(ConsistencyLevel::One);
        assert_eq!(cl, ConsistencyLevel::LocalQuorum);
        assert_eq!(cl.to_string(), "LOCAL_QUORUM");
        assert!("SERIAL".parse::<ConsistencyLevel>().is_err());
    }

    #[test]
    fn each_quorum_reports_the_short_datacenter() {
        let r = nts(&[("dc1", 3), ("dc2", 3)]);
        let view = ReplicaView {
            dcs: vec!["dc1", "dc1", "dc1", "dc2", "dc2", "dc2"],
            live: vec![true, true, true, true, false, false],
        };
        let err = assure_sufficient_live_replicas(ConsistencyLevel::EachQuorum, &r, "dc1", &view);
        let err = err.err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("Cannot achieve consistency level EACH_QUORUM in DC dc2")
        );
        // QUORUM counts replicas anywhere: 4 of 6 are alive.
        assert!(
            assure_sufficient_live_replicas(ConsistencyLevel::Quorum, &r, "dc1", &view).is_ok()
        );
    }

    #[test]
    fn reads_contact_local_replicas_first() {
        let r = nts(&[("dc1", 2), ("dc2", 2)]);
        let view = ReplicaView {
            dcs: vec!["dc1", "dc2", "dc1", "dc2"],
            live: vec![true; 4],
        };
        assert_eq!(
            contacts_for_read(ConsistencyLevel::One, &r, "dc2", &view),
            vec![1]
        );
        assert_eq!(
            contacts_for_read(ConsistencyLevel::Quorum, &r, "dc2", &view),
            vec![1, 3, 0]
        );
        assert_eq!(
            contacts_for_read(ConsistencyLevel::EachQuorum, &r, "dc1", &view).len(),
            4
        );
    }
}
