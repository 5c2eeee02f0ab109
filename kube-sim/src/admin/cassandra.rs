//! The admin API's Cassandra routes (`/cassandra/...`): the test endpoints of
//! [`crate::sim::cassandra`] over HTTP. Errors carry Cassandra's message, the exception class
//! and an HTTP status that fits (see README.md).

use std::collections::BTreeMap;

use hyper::{Method, Response};
use serde_json::{Value, json};

use crate::cassandra::{ConsistencyLevel, ManagementFault, NodeState, RingEntry};
use crate::server::{Body, json_response};
use crate::sim::{CassandraRequestError, Sim};

use super::error;

fn failure(e: &CassandraRequestError) -> Response<Body> {
    let mut body = json!({"error": e.to_string(), "exception": e.exception()});
    if let CassandraRequestError::Cassandra(crate::cassandra::CassandraError::Unavailable(u)) = e {
        body["consistency"] = json!(u.consistency.as_str());
        body["required"] = json!(u.required);
        body["alive"] = json!(u.alive);
    }
    json_response(e.http_status(), &body)
}

fn answer<T>(
    result: Result<T, CassandraRequestError>,
    ok: impl FnOnce(T) -> Value,
) -> Response<Body> {
    match result {
        Ok(value) => json_response(200, &ok(value)),
        Err(e) => failure(&e),
    }
}

/// A required string field of the body.
fn text<'a>(input: &'a Value, field: &str) -> Result<&'a str, Response<Body>> {
    input
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| error(400, format!("expected \"{field}\": <string>")))
}

/// `consistency` of the body (cqlsh's default, ONE, when absent).
fn consistency(input: &Value) -> Result<ConsistencyLevel, Response<Body>> {
    match input.get("consistency") {
        None | Some(Value::Null) => Ok(ConsistencyLevel::One),
        Some(Value::String(level)) => level.parse().map_err(|e: String| error(400, e)),
        Some(other) => Err(error(
            400,
            format!("consistency must be a string, not {other}"),
        )),
    }
}

/// A replication map: `{"class": "NetworkTopologyStrategy", "dc1": 3}` (factors as numbers or
/// strings).
fn replication(input: &Value) -> Result<BTreeMap<String, String>, Response<Body>> {
    let Some(options) = input.get("replication").and_then(Value::as_object) else {
        return Err(error(
            400,
            "expected \"replication\": {\"class\": ..., \"<dc>\": <factor>, ...}",
        ));
    };
    options
        .iter()
        .map(|(key, value)| match value {
            Value::String(s) => Ok((key.clone(), s.clone())),
            Value::Number(n) => Ok((key.clone(), n.to_string())),
            other => Err(error(
                400,
                format!("replication option {key} must be a string or number, not {other}"),
            )),
        })
        .collect()
}

fn node_status(entry: &RingEntry) -> &'static str {
    match (entry.up, entry.state) {
        (true, NodeState::Normal) => "UN",
        (true, NodeState::Joining) => "UJ",
        (true, NodeState::Leaving) => "UL",
        (false, NodeState::Normal) => "DN",
        (false, NodeState::Joining) => "DJ",
        (false, NodeState::Leaving) => "DL",
        (_, NodeState::Left) => "LEFT",
    }
}

fn ring_entry(entry: &RingEntry) -> Value {
    json!({
        "context": entry.pod.region,
        "namespace": entry.pod.namespace,
        "pod": entry.pod.name,
        "ip": entry.ip,
        "hostId": entry.host_id.to_string(),
        "datacenter": entry.datacenter,
        "rack": entry.rack,
        "status": node_status(entry),
        "up": entry.up,
        "tokens": entry.tokens,
        "loadBytes": entry.load_bytes,
        "schemaVersion": entry.schema_version.to_string(),
    })
}

/// A path segment with its `%XX` escapes decoded (cluster names may hold spaces); `None` if
/// the result is not UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| segment.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `/cassandra/...` routes; `path` is what follows `cassandra`, still percent-encoded.
pub(super) fn handle(sim: &Sim, method: &Method, path: &[&str], input: &Value) -> Response<Body> {
    let Some(decoded) = path.iter().map(|s| percent_decode(s)).collect::<Option<Vec<String>>>()
    else {
        return error(400, "the path is not UTF-8 once decoded");
    };
    let path: Vec<&str> = decoded.iter().map(String::as_str).collect();
    match (method, path.as_slice()) {
        (&Method::GET, ["clusters"]) => json_response(
            200,
            &json!({"clusters": sim.cassandra().lock().cluster_names()}),
        ),
        (&Method::GET, ["clusters", cluster, "ring"]) => answer(
            sim.cassandra_ring(cluster),
            |ring| json!({"ring": ring.iter().map(ring_entry).collect::<Vec<_>>()}),
        ),
        (&Method::GET, ["clusters", cluster, "keyspaces"]) => {
            answer(sim.cassandra_keyspaces(cluster), |keyspaces| {
                json!({"keyspaces": keyspaces.iter().map(|k| json!({
                    "name": k.name, "replication": k.replication, "tables": k.tables,
                })).collect::<Vec<_>>()})
            })
        }
        (&Method::POST, ["clusters", cluster, "keyspaces"]) => {
            let (name, options) = match (text(input, "name"), replication(input)) {
                (Ok(name), Ok(options)) => (name, options),
                (Err(response), _) | (_, Err(response)) => return response,
            };
            answer(
                sim.cassandra_create_keyspace(cluster, name, &options),
                |()| json!({"keyspace": name, "replication": options}),
            )
        }
        (&Method::PUT, ["clusters", cluster, "keyspaces", keyspace]) => {
            let options = match replication(input) {
                Ok(options) => options,
                Err(response) => return response,
            };
            answer(
                sim.cassandra_alter_keyspace(cluster, keyspace, &options),
                |()| json!({"keyspace": keyspace, "replication": options}),
            )
        }
        (&Method::POST, ["clusters", cluster, "keyspaces", keyspace, "tables"]) => {
            let name = match text(input, "name") {
                Ok(name) => name,
                Err(response) => return response,
            };
            answer(sim.cassandra_create_table(cluster, keyspace, name), |()| {
                json!({"keyspace": keyspace, "table": name,
                       "columns": [{"name": "key", "type": "text", "kind": "partition_key"},
                                   {"name": "value", "type": "text", "kind": "regular"}]})
            })
        }
        (&Method::GET, ["clusters", cluster, "row-counts"]) => {
            answer(sim.cassandra_row_counts(cluster), |counts| {
                let per_node: Vec<Value> = counts
                    .per_node
                    .iter()
                    .map(|(pod, tables)| {
                        json!({"context": pod.region, "namespace": pod.namespace,
                                                "pod": pod.name, "rows": tables})
                    })
                    .collect();
                json!({"perDatacenter": counts.per_datacenter, "perNode": per_node})
            })
        }
        (&Method::POST, ["clusters", cluster, "datacenters", dc, operation]) => {
            datacenter_request(sim, cluster, dc, operation, input)
        }
        // A backup in the bucket made older, as one taken `days` ago (for maxBackupAge purges).
        (&Method::POST, ["buckets", bucket, prefix, "backups", backup, "backdate"]) => {
            let days = match input.get("days").and_then(Value::as_i64) {
                Some(days) if (0..=36_500).contains(&days) => days,
                _ => return error(400, "days must be a whole number of days (0-36500)"),
            };
            let storage = crate::cassandra::StorageLocation::new(bucket, prefix);
            let moved = sim.cassandra().lock().backdate_backup(&storage, backup, days * 86_400_000);
            answer(
                moved.map_err(Into::into),
                |()| json!({"backup": backup, "days": days}),
            )
        }
        (&Method::GET, ["nodes", context, namespace, pod]) => {
            let pod = match sim.cassandra_pod(context, namespace, pod) {
                Ok(pod) => pod,
                Err(e) => return failure(&e),
            };
            let model = sim.cassandra();
            let model = model.lock();
            let node = match model.node(&pod) {
                Ok(node) => node,
                Err(e) => return failure(&e.into()),
            };
            json_response(
                200,
                &json!({
                    "context": pod.region, "namespace": pod.namespace, "pod": pod.name,
                    "cluster": model.cluster_of(&pod).unwrap_or_default(),
                    "ip": node.ip, "hostId": node.host_id.to_string(),
                    "datacenter": node.datacenter, "rack": node.rack,
                    "running": node.running, "up": node.up, "state": format!("{:?}", node.state),
                    "serverVersion": node.server_version,
                    "managementFault": {"status": node.management_fault.fail_status,
                                        "delayMs": node.management_fault.delay_millis},
                }),
            )
        }
        (&Method::POST, ["nodes", context, namespace, pod, action]) => match *action {
            "stop" => answer(
                sim.stop_cassandra_node(context, namespace, pod),
                |()| json!({"running": false}),
            ),
            "start" => answer(
                sim.start_cassandra_node(context, namespace, pod),
                |()| json!({"running": true}),
            ),
            "management-fault" => {
                let status = match input.get("status") {
                    None | Some(Value::Null) => None,
                    Some(value) => match value.as_u64().and_then(|s| u16::try_from(s).ok()) {
                        Some(status) if (100..600).contains(&status) => Some(status),
                        _ => return error(400, "status must be an HTTP status (100-599)"),
                    },
                };
                let delay = match input.get("delayMs") {
                    None | Some(Value::Null) => 0,
                    Some(value) => match value.as_u64() {
                        Some(ms) => ms,
                        None => return error(400, "delayMs must be a number of milliseconds"),
                    },
                };
                let fault = ManagementFault {
                    fail_status: status,
                    delay_millis: delay,
                };
                answer(
                    sim.set_cassandra_management_fault(context, namespace, pod, fault),
                    |()| json!({"status": status, "delayMs": delay}),
                )
            }
            _ => error(404, format!("no node action {action:?}")),
        },
        _ => error(
            404,
            format!("no admin route {method} /cassandra/{}", path.join("/")),
        ),
    }
}

/// write, read, count and login through a datacenter.
fn datacenter_request(
    sim: &Sim,
    cluster: &str,
    dc: &str,
    operation: &str,
    input: &Value,
) -> Response<Body> {
    if operation == "login" {
        let (user, password) = match (text(input, "username"), text(input, "password")) {
            (Ok(user), Ok(password)) => (user, password),
            (Err(response), _) | (_, Err(response)) => return response,
        };
        return answer(
            sim.cassandra_login(cluster, dc, user, password),
            |role| json!({"role": user, "superuser": role.superuser}),
        );
    }
    let (keyspace, table, level) = match (
        text(input, "keyspace"),
        text(input, "table"),
        consistency(input),
    ) {
        (Ok(keyspace), Ok(table), Ok(level)) => (keyspace, table, level),
        (Err(response), ..) | (_, Err(response), _) | (.., Err(response)) => return response,
    };
    match operation {
        "write" => match input.get("rows") {
            Some(Value::Number(count)) => {
                let Some(count) = count.as_u64().and_then(|c| usize::try_from(c).ok()) else {
                    return error(400, "rows must be a count or an object of key: value");
                };
                answer(
                    sim.cassandra_write_generated(cluster, dc, keyspace, table, count, level),
                    |timestamp| json!({"written": count, "timestamp": timestamp}),
                )
            }
            Some(Value::Object(rows)) => {
                let mut pairs = Vec::with_capacity(rows.len());
                for (key, value) in rows {
                    let value = match value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    pairs.push((key.clone(), value));
                }
                let written = pairs.len();
                answer(
                    sim.cassandra_write(cluster, dc, keyspace, table, pairs, level),
                    |timestamp| json!({"written": written, "timestamp": timestamp}),
                )
            }
            _ => error(
                400,
                "expected \"rows\": <count> or {\"<key>\": \"<value>\", ...}",
            ),
        },
        "read" => {
            let key = match text(input, "key") {
                Ok(key) => key,
                Err(response) => return response,
            };
            answer(
                sim.cassandra_read(cluster, dc, keyspace, table, key, level),
                |value| json!({"key": key, "value": value}),
            )
        }
        "count" => answer(
            sim.cassandra_count(cluster, dc, keyspace, table, level),
            |count| json!({"count": count}),
        ),
        _ => error(404, format!("no datacenter operation {operation:?}")),
    }
}
