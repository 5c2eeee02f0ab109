//! Initial tokens for clusters with few vnodes, as k8ssandra-operator computes them.
//!
//! With `num_tokens` below 16 in every datacenter, random token choice leaves the ring badly
//! balanced. So the first RF nodes of each datacenter get evenly spread `initial_token`s
//! (the rest are placed by Cassandra's allocator from them). The tokens reach each pod through a
//! generated per-node ConfigMap (`<pod>_cassandra.yaml` entries) that the per-node init
//! container merges into the pod's cassandra.yaml; `initial_token` only matters when a node
//! first joins.

use std::collections::BTreeMap;

use serde_json::Value;

use super::config::{MAX_TOKEN_ALLOCATION_REPLICATION_FACTOR, yaml_integer};
use crate::workload::generated::GeneratedConfigMap;
use crate::workload::labels::clean_for_kubernetes;

/// Pod-template annotation whose change restarts the pods when their per-node config changes.
pub const PER_NODE_CONFIG_HASH_ANNOTATION: &str = "k8ssandra.io/per-node-config-hash";

/// A partitioner's ring: tokens lie in `[offset, offset + range)`. (RandomPartitioner's range,
/// 2^127, is one more than an i128 holds.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ring {
    offset: i128,
    range: u128,
}

const MURMUR3: Ring = Ring {
    offset: -(1 << 63),
    range: 1 << 64,
};
const RANDOM: Ring = Ring {
    offset: 0,
    range: 1 << 127,
};

/// Why no initial tokens are computed for a cluster (all expected; none is an error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoInitialTokens {
    UserPerNodeConfig,
    NumTokensNotSmall,
    Unparsable(&'static str),
    /// Below 1, or above what Federator accepts (the plan refuses these before).
    OutOfRange(&'static str),
    PartitionerUnsupported,
    PartitionerMismatch,
}

/// What one datacenter contributes to the computation.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenInput {
    /// `num_tokens` from the datacenter's effective cassandra.yaml.
    pub num_tokens: Option<Value>,
    /// `allocate_tokens_for_local_replication_factor`, if set.
    pub replication_factor: Option<Value>,
    pub partitioner: Option<Value>,
    pub size: i32,
    /// The StatefulSet-name prefix of its pods: `<cluster>-<datacenter>` as cass-operator names them.
    pub pod_prefix: String,
    pub racks: Vec<String>,
    pub has_user_per_node_config: bool,
}

/// The initial tokens of each datacenter's first RF pods (pod name → tokens), in the order of
/// `inputs`; or why there are none.
pub fn initial_tokens(
    inputs: &[TokenInput],
) -> Result<Vec<BTreeMap<String, Vec<String>>>, NoInitialTokens> {
    if inputs.iter().any(|dc| dc.has_user_per_node_config) {
        return Err(NoInitialTokens::UserPerNodeConfig);
    }
    let mut rings = Vec::new();
    let mut token_counts = Vec::new();
    let mut replication_factors = Vec::new();
    for dc in inputs {
        let num_tokens = match &dc.num_tokens {
            None => 1,
            Some(value) => yaml_integer(value).ok_or(NoInitialTokens::Unparsable("num_tokens"))?,
        };
        if num_tokens >= 16 {
            return Err(NoInitialTokens::NumTokensNotSmall);
        }
        if num_tokens < 1 {
            return Err(NoInitialTokens::OutOfRange("num_tokens"));
        }
        const RF_FIELD: &str = "allocate_tokens_for_local_replication_factor";
        let replication_factor = match &dc.replication_factor {
            None => 3,
            Some(value) => yaml_integer(value).ok_or(NoInitialTokens::Unparsable(RF_FIELD))?,
        };
        // Bounded: it sizes the token lists below.
        if !(1..=MAX_TOKEN_ALLOCATION_REPLICATION_FACTOR).contains(&replication_factor) {
            return Err(NoInitialTokens::OutOfRange(RF_FIELD));
        }
        let replication_factor = replication_factor.min(i64::from(dc.size));
        rings.push(ring(dc.partitioner.as_ref())?);
        // Non-positive counts leave nothing to place (a datacenter of size 0).
        token_counts.push(usize::try_from(num_tokens * replication_factor).unwrap_or(0));
        replication_factors.push(usize::try_from(replication_factor).unwrap_or(0));
    }
    let Some(ring) = rings.first().copied() else {
        return Ok(Vec::new());
    };
    if rings.iter().any(|r| *r != ring) {
        return Err(NoInitialTokens::PartitionerMismatch);
    }
    let tokens = spread_tokens(&token_counts, ring);
    Ok(inputs
        .iter()
        .zip(tokens)
        .zip(replication_factors)
        .map(|((dc, tokens), replication_factor)| assign(dc, tokens, replication_factor))
        .collect())
}

fn ring(partitioner: Option<&Value>) -> Result<Ring, NoInitialTokens> {
    match partitioner {
        None => Ok(MURMUR3),
        Some(Value::String(name)) if name.contains("Murmur3Partitioner") => Ok(MURMUR3),
        Some(Value::String(name)) if name.contains("RandomPartitioner") => Ok(RANDOM),
        Some(_) => Err(NoInitialTokens::PartitionerUnsupported),
    }
}

/// `counts[dc]` tokens per datacenter, evenly spread over the ring, each datacenter starting a
/// little further along so that no two tokens collide (the scheme DSE and k8ssandra-operator use).
fn spread_tokens(counts: &[usize], ring: Ring) -> Vec<Vec<String>> {
    let largest = counts.iter().copied().max().unwrap_or(0);
    let divisor = (counts.len() * largest * 2).max(235) as u128;
    // -range / divisor rounded down (Go's big.Int Div), a small fraction of the ring.
    let datacenter_offset = -(ring.range.div_ceil(divisor) as i128);
    counts
        .iter()
        .enumerate()
        .map(|(index, &count)| {
            if count == 0 {
                return Vec::new();
            }
            // |start| < range, and i * increment < range: every sum below fits an i128.
            let start = datacenter_offset * index as i128;
            let increment = (ring.range / count as u128) as i128;
            let mut tokens: Vec<i128> = (0..count as i128)
                .map(|i| {
                    let position = i * increment + start;
                    let position = if position < 0 {
                        position + (ring.range - 1) as i128 + 1
                    } else {
                        position
                    };
                    position + ring.offset
                })
                .collect();
            tokens.sort_unstable();
            tokens.iter().map(i128::to_string).collect()
        })
        .collect()
}

/// Deals the tokens to the first RF pods, round robin; pods are taken a rack at a time, as
/// cass-operator fills racks (pod `i` is ordinal `i / racks` of rack `i % racks`).
fn assign(
    dc: &TokenInput,
    tokens: Vec<String>,
    replication_factor: usize,
) -> BTreeMap<String, Vec<String>> {
    let default_rack = ["default".to_string()];
    let racks = if dc.racks.is_empty() {
        &default_rack[..]
    } else {
        &dc.racks[..]
    };
    let pods: Vec<String> = (0..replication_factor)
        .map(|i| {
            let rack = &racks[i % racks.len()];
            let stateful_set = clean_for_kubernetes(&format!("{}-{rack}-sts", dc.pod_prefix));
            format!("{stateful_set}-{}", i / racks.len())
        })
        .collect();
    let mut by_pod: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if pods.is_empty() {
        return by_pod;
    }
    for (i, token) in tokens.into_iter().enumerate() {
        by_pod.entry(pods[i % pods.len()].clone()).or_default().push(token);
    }
    by_pod
}

/// Which datacenter a per-node ConfigMap belongs to.
pub struct PerNodeConfigOf<'a> {
    pub cluster_name: &'a str,
    pub cluster_namespace: &'a str,
    pub cassandra_cluster_name: &'a str,
    /// The CassandraDatacenter's name and namespace.
    pub datacenter: (&'a str, &'a str),
    pub cassandra_datacenter_name: &'a str,
}

/// The per-node ConfigMap of a datacenter carrying `tokens`, named as upstream names it.
pub fn per_node_config(
    of: PerNodeConfigOf<'_>,
    tokens: &BTreeMap<String, Vec<String>>,
) -> Option<GeneratedConfigMap> {
    if tokens.is_empty() {
        return None;
    }
    let data = tokens
        .iter()
        .map(|(pod, tokens)| {
            (
                format!("{pod}_cassandra.yaml"),
                format!("\ninitial_token: {}", tokens.join(",")),
            )
        })
        .collect();
    Some(GeneratedConfigMap::new(
        (of.cluster_name, of.cluster_namespace),
        of.datacenter,
        per_node_config_name(of.cassandra_cluster_name, of.cassandra_datacenter_name),
        data,
    ))
}

/// The generated per-node ConfigMap's name, as upstream names it.
pub fn per_node_config_name(
    cassandra_cluster_name: &str,
    cassandra_datacenter_name: &str,
) -> String {
    clean_for_kubernetes(&format!(
        "{cassandra_cluster_name}-{cassandra_datacenter_name}-per-node-config"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(num_tokens: Value, size: i32, racks: &[&str]) -> TokenInput {
        TokenInput {
            num_tokens: Some(num_tokens),
            replication_factor: Some(json!(3)),
            partitioner: None,
            size,
            pod_prefix: "demo-dc1".into(),
            racks: racks.iter().map(|r| r.to_string()).collect(),
            has_user_per_node_config: false,
        }
    }

    fn parse(tokens: &[String]) -> Vec<i128> {
        tokens.iter().map(|t| t.parse().expect("a number")).collect()
    }

    #[test]
    fn the_first_rf_pods_share_evenly_spread_murmur3_tokens() {
        let tokens = initial_tokens(&[input(json!(4), 6, &["r1", "r2", "r3"])]).expect("tokens");
        let dc = &tokens[0];
        // Pods 0 of each rack: the first three cass-operator creates.
        assert_eq!(
            dc.keys().collect::<Vec<_>>(),
            [
                "demo-dc1-r1-sts-0",
                "demo-dc1-r2-sts-0",
                "demo-dc1-r3-sts-0"
            ]
        );
        let mut all: Vec<i128> = dc.values().flat_map(|t| parse(t)).collect();
        assert!(dc.values().all(|t| t.len() == 4), "num_tokens each");
        all.sort_unstable();
        assert_eq!(
            all[0],
            -(1i128 << 63),
            "the first datacenter starts at the ring's start"
        );
        let step = (1i128 << 64) / 12;
        assert!(all.windows(2).all(|w| w[1] - w[0] == step), "evenly spread");
        // Dealt round robin: a pod's tokens are a third of the ring apart.
        let first = parse(&dc["demo-dc1-r1-sts-0"]);
        assert_eq!(first[1] - first[0], 3 * step);
    }

    #[test]
    fn datacenters_start_apart_and_never_share_a_token() {
        let mut second = input(json!("8"), 3, &[]);
        second.pod_prefix = "demo-dc2".into();
        let tokens = initial_tokens(&[input(json!(4.0), 3, &[]), second]).expect("tokens");
        assert_eq!(
            tokens[1].keys().collect::<Vec<_>>(),
            [
                "demo-dc2-default-sts-0",
                "demo-dc2-default-sts-1",
                "demo-dc2-default-sts-2"
            ]
        );
        let first: Vec<i128> = tokens[0].values().flat_map(|t| parse(t)).collect();
        let other: Vec<i128> = tokens[1].values().flat_map(|t| parse(t)).collect();
        assert_eq!((first.len(), other.len()), (12, 24));
        assert!(first.iter().all(|t| !other.contains(t)));
        let ring = -(1i128 << 63)..(1i128 << 63);
        assert!(first.iter().chain(&other).all(|t| ring.contains(t)));
        // The second datacenter starts 1/235 of the ring before the first (wrapping round).
        let offset = (-(1i128 << 64)).div_euclid(235);
        assert!(other.contains(&(-(1i128 << 63) + offset + (1i128 << 64))));
    }

    #[test]
    fn tokens_are_the_ones_k8ssandra_operator_computes() {
        // Its second datacenter of three nodes each, on both rings: a cluster moving over keeps
        // the same per-node config.
        let murmur3 = spread_tokens(&[3, 3], MURMUR3);
        assert_eq!(murmur3[1][0], "-3152954128910639674");
        let random = spread_tokens(&[3, 3], RANDOM);
        assert_eq!(random[1][2], "169417178424467235000914166253263322299");
    }

    #[test]
    fn fewer_nodes_than_rf_take_all_the_tokens() {
        let tokens = initial_tokens(&[input(json!(4), 2, &[])]).expect("tokens");
        assert_eq!(tokens[0].len(), 2);
        assert!(tokens[0].values().all(|t| t.len() == 4));
    }

    #[test]
    fn random_partitioner_uses_its_own_ring() {
        let mut dc = input(json!(2), 3, &[]);
        dc.partitioner = Some(json!("org.apache.cassandra.dht.RandomPartitioner"));
        let tokens = initial_tokens(&[dc]).expect("tokens");
        let mut all: Vec<i128> = tokens[0].values().flat_map(|t| parse(t)).collect();
        all.sort_unstable();
        assert_eq!(all[0], 0);
        assert_eq!(all[1], ((1u128 << 127) / 6) as i128);
        assert!(all.iter().all(|t| *t >= 0), "the ring starts at 0");
    }

    #[test]
    fn no_tokens_unless_every_datacenter_qualifies() {
        let small = input(json!(4), 3, &[]);
        let cases = [
            (input(json!(16), 3, &[]), NoInitialTokens::NumTokensNotSmall),
            (
                input(json!("many"), 3, &[]),
                NoInitialTokens::Unparsable("num_tokens"),
            ),
            (
                input(json!(-1), 3, &[]),
                NoInitialTokens::OutOfRange("num_tokens"),
            ),
            (
                TokenInput {
                    replication_factor: Some(json!(-4611686018427387904_i64)),
                    ..small.clone()
                },
                NoInitialTokens::OutOfRange("allocate_tokens_for_local_replication_factor"),
            ),
            (
                TokenInput {
                    replication_factor: Some(json!(1_000_000)),
                    size: 1_000_000,
                    ..small.clone()
                },
                NoInitialTokens::OutOfRange("allocate_tokens_for_local_replication_factor"),
            ),
            (
                TokenInput {
                    has_user_per_node_config: true,
                    ..small.clone()
                },
                NoInitialTokens::UserPerNodeConfig,
            ),
            (
                TokenInput {
                    partitioner: Some(json!("ByteOrderedPartitioner")),
                    ..small.clone()
                },
                NoInitialTokens::PartitionerUnsupported,
            ),
            (
                TokenInput {
                    partitioner: Some(json!("RandomPartitioner")),
                    ..small.clone()
                },
                NoInitialTokens::PartitionerMismatch,
            ),
        ];
        for (other, why) in cases {
            assert_eq!(initial_tokens(&[small.clone(), other]), Err(why));
        }
    }
}
