//! Probes and what the agent reads about the cluster: gossip endpoint states, versions,
//! features, schema versions, token ranges (`K8OperatorResources`, `MetadataResources`,
//! v1 `NodeOpsResources.schemaVersions`, `TokenResourcesV2`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::Call;
use super::reply::{Answer, Reply, optional_int};
use crate::cassandra::consistency::{ReplicaView, assure_sufficient_live_replicas, block_for};
use crate::cassandra::{ConsistencyLevel, Node, NodeState, Replication};

/// The features of the agent's `FeatureSet.Feature`, all of which this stand-in serves.
const FEATURES: &[&str] = &[
    "async_sstable_tasks",
    "full_query_logging",
    "rebuild",
    "async_upgrade_sstable_task",
    "async_compaction_task",
    "async_scrub_task",
    "async_move_task",
    "async_gc_task",
    "reload_internode_truststore",
    "async_flush_task",
];

const STORAGE_PORT: u16 = 7000;
const NATIVE_PORT: u16 = 9042;
/// `MessagingService.current_version` of Cassandra 4.x (VERSION_40).
const MESSAGING_VERSION: &str = "12";

/// `checkLiveness`: the agent runs, whatever Cassandra does.
pub(super) fn liveness(_call: &mut Call<'_>) -> Answer {
    Ok(Reply::ok())
}

/// `checkReadiness`: `system.local` is readable and the node has bootstrapped.
pub(super) fn readiness(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    let joining = call.model.node(call.pod).is_ok_and(|node| node.state == NodeState::Joining);
    if joining {
        return Err(Reply::empty(500));
    }
    Ok(Reply::ok())
}

/// `checkClusterConsistency` (`CassandraAPI4x.checkConsistencyLevel`): with `rf_per_dc` replicas
/// in every known datacenter, can each range of the ring reach `consistency_level` with the
/// nodes that are up? 200 with no body, or 500 with the failing ranges and the replicas that
/// are down, e.g. `{"[-88, -75]": ["/127.0.1.3:7000"]}`.
pub(super) fn cluster_consistency(call: &mut Call<'_>) -> Answer {
    let requested = call.query.get("consistency_level").unwrap_or("LOCAL_QUORUM").to_string();
    let rf_per_dc = optional_int(&call.query, "rf_per_dc")?.unwrap_or(3);
    call.cassandra()?;
    // ConsistencyLevel.valueOf: exact constant names only.
    let consistency = requested
        .parse::<ConsistencyLevel>()
        .ok()
        .filter(|level| level.as_str() == requested)
        .ok_or_else(|| {
            Reply::text(
                500,
                format!("No enum constant org.apache.cassandra.db.ConsistencyLevel.{requested}"),
            )
        })?;
    if rf_per_dc <= 0 {
        return Err(Reply::text(500, "rf_per_dc must be > 0"));
    }
    let factor = u32::try_from(rf_per_dc).unwrap_or(u32::MAX);
    let cluster = call.model.cluster(&call.node.cluster)?;
    let replication = Replication::NetworkTopology(
        cluster.known_datacenters().into_iter().map(|dc| (dc, factor)).collect(),
    );
    let required = block_for(consistency, &replication, &call.node.datacenter);
    let placement = cluster.placement(&replication);
    let count = placement.len();
    let mut failing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for position in 0..count {
        let replicas = placement.at(position);
        let view = ReplicaView {
            dcs: cluster.dcs_of(replicas),
            live: cluster.liveness_of(replicas),
        };
        if assure_sufficient_live_replicas(consistency, &replication, &call.node.datacenter, &view)
            .is_ok()
        {
            continue;
        }
        let mut reasons: Vec<String> = replicas
            .iter()
            .map(|&idx| &cluster.nodes[idx])
            .filter(|node| !node.up)
            .map(|node| format!("/{}:{STORAGE_PORT}", node.ip))
            .collect();
        if reasons.is_empty() {
            reasons.push(if replicas.len() < required {
                format!(
                    "{required} replicas required, but only {} nodes in the ring",
                    replicas.len()
                )
            } else {
                "Nodes Flapping".to_string()
            });
        }
        let start = placement.token_at((position + count - 1) % count);
        let end = placement.token_at(position);
        failing.insert(format!("[{start}, {end}]"), reasons);
    }
    if failing.is_empty() {
        return Ok(Reply::empty(200));
    }
    Err(Reply::json(500, &json!(failing)))
}

pub(super) fn release_version(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    Ok(Reply::text(200, call.node.server_version.clone()))
}

pub(super) fn local_datacenter(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    Ok(Reply::text(200, call.node.datacenter.clone()))
}

/// `getFeatureSet`: the Cassandra version and every feature (`mgmt_version` is empty in the
/// agent's releases).
pub(super) fn features(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    Ok(Reply::json(
        200,
        &json!({
            "cassandra_version": call.node.server_version,
            "mgmt_version": "",
            "features": FEATURES,
        }),
    ))
}

/// `getEndpointStates`: the gossip state of every endpoint this node knows, as
/// `Entity.json(...)` (clients read `entity`).
pub(super) fn endpoint_states(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    let nodes = call.model.nodes(&call.node.cluster)?;
    let states: Vec<Value> = nodes
        .iter()
        .map(|node| Value::Object(endpoint_state(node, &call.node.cluster, &call.node.ip)))
        .collect();
    Ok(Reply::entity(Value::Array(states)))
}

/// One endpoint as `CassandraAPI4x.getEndpointStates` lists it: its gossip application states
/// (Left nodes have expired from gossip and are not listed) plus ENDPOINT_IP, IS_ALIVE,
/// PARTITIONER, CLUSTER_NAME and IS_LOCAL.
fn endpoint_state(node: &Node, cluster: &str, local_ip: &str) -> Map<String, Value> {
    let mut tokens = node.tokens.clone();
    tokens.sort_unstable();
    let first_token = tokens.first().map(i64::to_string).unwrap_or_default();
    // A node that stopped announced its shutdown (VersionedValue.shutdown) before going.
    let status = match (node.running, node.state) {
        (false, _) => "shutdown,true".to_string(),
        (true, NodeState::Joining) => format!("BOOT,{first_token}"),
        (true, NodeState::Normal) => format!("NORMAL,{first_token}"),
        (true, NodeState::Leaving) => format!("LEAVING,{first_token}"),
        (true, NodeState::Left) => format!("LEFT,{first_token}"),
    };
    let is_local = node.ip == local_ip;
    let ip = node.ip.as_str();
    let entries: [(&str, String); 22] = [
        ("DC", node.datacenter.clone()),
        ("RACK", node.rack.clone()),
        ("HOST_ID", node.host_id.to_string()),
        ("SCHEMA", node.schema_version.to_string()),
        ("RELEASE_VERSION", node.server_version.clone()),
        ("STATUS", status.clone()),
        ("STATUS_WITH_PORT", status),
        (
            "TOKENS",
            tokens.iter().map(i64::to_string).collect::<Vec<_>>().join(","),
        ),
        ("LOAD", java_double(node.load_bytes())),
        ("SEVERITY", "0.0".to_string()),
        ("NET_VERSION", MESSAGING_VERSION.to_string()),
        (
            "SSTABLE_VERSIONS",
            sstable_version(&node.server_version).to_string(),
        ),
        ("RPC_ADDRESS", ip.to_string()),
        (
            "RPC_READY",
            (node.running && node.state != NodeState::Left).to_string(),
        ),
        ("INTERNAL_IP", ip.to_string()),
        ("INTERNAL_ADDRESS_AND_PORT", format!("{ip}:{STORAGE_PORT}")),
        ("NATIVE_ADDRESS_AND_PORT", format!("{ip}:{NATIVE_PORT}")),
        ("ENDPOINT_IP", ip.to_string()),
        // A node always sees itself alive.
        ("IS_ALIVE", (node.up || is_local).to_string()),
        (
            "PARTITIONER",
            "org.apache.cassandra.dht.Murmur3Partitioner".to_string(),
        ),
        ("CLUSTER_NAME", cluster.to_string()),
        ("IS_LOCAL", is_local.to_string()),
    ];
    entries.into_iter().map(|(key, value)| (key.to_string(), Value::String(value))).collect()
}

/// The sstable format a server version writes (`big-nb` in 4.x, `big-oa` from 5.0).
fn sstable_version(server_version: &str) -> &'static str {
    let major = server_version.split('.').next().and_then(|major| major.parse::<u32>().ok());
    match major {
        Some(major) if major >= 5 => "big-oa",
        _ => "big-nb",
    }
}

/// `String.valueOf(double)` of a whole number, as gossip's LOAD carries it: `123.0`, or
/// `1.2345678E7` from ten million on.
fn java_double(value: u64) -> String {
    if value < 10_000_000 {
        return format!("{value}.0");
    }
    let digits = value.to_string();
    let (first, rest) = digits.split_at(1);
    let fraction = rest.trim_end_matches('0');
    let fraction = if fraction.is_empty() { "0" } else { fraction };
    format!("{first}.{fraction}E{}", digits.len() - 1)
}

/// `getSchemaVersions`: schema version → addresses, `UNREACHABLE` for the nodes that are down.
pub(super) fn schema_versions(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    let versions = call.model.schema_versions(&call.node.cluster)?;
    Ok(Reply::json(200, &json!(versions)))
}

/// `getStreamInfo`: no stream outlives a call in the model.
pub(super) fn stream_info(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    Ok(Reply::entity(json!([])))
}

/// `getRangeToEndpointMap`: every range of the ring with a keyspace's replicas, as Reaper
/// reads it.
pub(super) fn range_to_endpoints(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    let cluster = call.node.cluster.clone();
    let keyspace = match call.query.get("keyspaceName") {
        Some(name) => {
            if !call.model.keyspace_names(&cluster)?.iter().any(|known| known == name) {
                return Err(Reply::text(404, "keyspace not found"));
            }
            name.to_string()
        }
        // StorageService.getRangeToEndpointMap(null) takes the first non-local keyspace.
        None => call
            .model
            .keyspaces(&cluster)?
            .into_iter()
            .find(|keyspace| {
                keyspace.replication.get("class").is_none_or(|c| !c.ends_with(".LocalStrategy"))
            })
            .map(|keyspace| keyspace.name)
            .ok_or_else(|| Reply::text(500, "No non-local keyspace"))?,
    };
    let ranges: Vec<Value> = call
        .model
        .range_to_endpoints(&cluster, &keyspace)?
        .into_iter()
        .map(|range| json!({"tokens": [range.start, range.end], "endpoints": range.endpoints}))
        .collect();
    Ok(Reply::json(
        200,
        &json!({"token_range_to_endpoints": ranges}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gossip_load_reads_as_java_prints_a_double() {
        assert_eq!(java_double(0), "0.0");
        assert_eq!(java_double(123_456), "123456.0");
        assert_eq!(java_double(12_345_678), "1.2345678E7");
        assert_eq!(java_double(20_000_000), "2.0E7");
    }
}
