//! Node operations, jobs, lifecycle and roles (`NodeOpsResources`, its v1 counterpart,
//! `RepairResourcesV2`, `K8OperatorResources.getJobStatus`, `LifecycleResources`,
//! `AuthResources`).

use serde_json::json;

use super::reply::{
    Answer, Reply, bool_field, flag, int_field, is_blank, job_json, null_body, objects_field,
    optional_flag, optional_int, string_field, strings_field,
};
use super::{Call, Mode};
use crate::cassandra::{CassandraError, NodeOperation, RepairRequest};

/// `GET /api/v0/ops/executor/job?job_id=`: the job, or 404 with `{}` (the agent's empty map)
/// for an id this node does not know.
pub(super) fn job_status(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    let id = call.query.get("job_id").unwrap_or_default().to_string();
    match call.model.job(call.pod, &id) {
        Ok(job) => Ok(Reply::json(200, &job_json(job))),
        Err(CassandraError::UnknownJob(_)) => Err(Reply::json(404, &json!({}))),
        Err(error) => Err(error.into()),
    }
}

/// `seedReload`: the model has no seed provider; the new seed list is empty.
pub(super) fn reload_seeds(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    Ok(Reply::json(200, &json!([])))
}

/// `POST /api/v0/lifecycle/start`: 202 if Cassandra already runs, else starts it (201 `OK`).
pub(super) fn start(call: &mut Call<'_>) -> Answer {
    if call.node.running {
        return Ok(Reply::empty(202));
    }
    if let Some(replace_ip) = call.query.get("replace_ip")
        && replace_ip.parse::<std::net::IpAddr>().is_err()
    {
        return Err(Reply::bad_request(format!(
            "Invalid replace IP passed: {replace_ip}"
        )));
    }
    if call.query.get("replace_consistency").is_some() {
        return Err(Reply::bad_request(
            "Consistency parameter for replace is only accepted with DSE",
        ));
    }
    call.model.restart_node(call.pod)?;
    Ok(Reply::text(201, "OK\n"))
}

/// `POST /api/v0/lifecycle/stop`: stops Cassandra (the agent keeps answering).
pub(super) fn stop(call: &mut Call<'_>) -> Answer {
    call.model.stop_node(call.pod)?;
    Ok(Reply::text(200, "OK\n"))
}

/// `POST /api/v0/lifecycle/configure`: the model has no cassandra.yaml to write.
pub(super) fn configure(_call: &mut Call<'_>) -> Answer {
    Ok(Reply::text(200, "OK\n"))
}

/// `GET /api/v0/lifecycle/pid`: a stable made-up pid while Cassandra runs, 204 otherwise.
pub(super) fn pid(call: &mut Call<'_>) -> Answer {
    if !call.node.running {
        return Ok(Reply::empty(204));
    }
    let host_id = call.model.node(call.pod).map(|node| node.host_id.as_u128()).unwrap_or(0);
    Ok(Reply::text(200, (100 + host_id % 30_000).to_string()))
}

/// `GET /api/v0/ops/auth/role`: every role, read at QUORUM through this node.
pub(super) fn list_roles(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    let roles = call.model.list_roles(&call.node.cluster, &call.node.datacenter)?;
    let roles: Vec<_> = roles
        .into_iter()
        .map(|role| {
            json!({
                "name": role.name,
                "super": role.superuser,
                "login": role.login,
                "datacenters": "ALL",
                "options": "{}",
            })
        })
        .collect();
    Ok(Reply::json(200, &json!(roles)))
}

/// `POST /api/v0/ops/auth/role?username=&password=&is_superuser=&can_login=`.
pub(super) fn create_role(call: &mut Call<'_>) -> Answer {
    let username = call.query.get("username").map(str::to_string);
    let password = call.query.get("password").map(str::to_string);
    let (Some(username), Some(password)) = (
        username.filter(|name| !is_blank(Some(name))),
        password.filter(|text| !is_blank(Some(text))),
    ) else {
        let missing = if is_blank(call.query.get("username")) {
            "Username is empty"
        } else {
            "Password is empty"
        };
        return Err(status_only(400, missing));
    };
    let superuser = optional_flag(&call.query, "is_superuser").unwrap_or(false);
    let login = optional_flag(&call.query, "can_login").unwrap_or(false);
    call.cassandra()?;
    call.model.create_role(
        &call.node.cluster,
        &call.node.datacenter,
        &username,
        &password,
        superuser,
        login,
    )?;
    Ok(Reply::ok())
}

/// `DELETE /api/v0/ops/auth/role?username=`.
pub(super) fn drop_role(call: &mut Call<'_>) -> Answer {
    let Some(username) = call.query.get("username").filter(|name| !is_blank(Some(name))) else {
        return Err(status_only(400, "Username is empty"));
    };
    let username = username.to_string();
    call.cassandra()?;
    call.model.drop_role(&call.node.cluster, &call.node.datacenter, &username)?;
    Ok(Reply::ok())
}

/// `Response.status(code, reason)`: the message is the status line's reason, the body empty.
fn status_only(status: u16, reason: &'static str) -> Reply {
    Reply {
        reason: Some(reason),
        ..Reply::empty(status)
    }
}

/// `POST /api/v1/ops/auth/identity_to_role` (Cassandra 5.0 and later); the model keeps no
/// identity mappings.
pub(super) fn add_identity_to_role(call: &mut Call<'_>) -> Answer {
    let Some(body) = call.json_body()? else {
        return Err(Reply::bad_request("Request body is empty"));
    };
    let identity = string_field(&body, "identity")?;
    let role = string_field(&body, "role")?;
    int_field(&body, "ttl")?;
    if is_blank(identity.as_deref()) || is_blank(role.as_deref()) {
        return Err(Reply::bad_request("Role and identity are required"));
    }
    identity_supported(call)?;
    Ok(Reply::ok())
}

/// `DELETE /api/v1/ops/auth/identity_to_role`.
pub(super) fn delete_identity_to_role(call: &mut Call<'_>) -> Answer {
    let Some(body) = call.json_body()? else {
        return Err(Reply::bad_request("Request body is empty"));
    };
    if is_blank(string_field(&body, "identity")?.as_deref()) {
        return Err(Reply::bad_request("Identity is empty"));
    }
    identity_supported(call)?;
    Ok(Reply::ok())
}

fn identity_supported(call: &Call<'_>) -> Result<(), Reply> {
    call.cassandra()?;
    let major = call.node.server_version.split('.').next().and_then(|m| m.parse::<u32>().ok());
    if major.is_some_and(|major| major >= 5) {
        Ok(())
    } else {
        Err(Reply::bad_request(
            "Identity-to-role operations are only supported on HCD 2.x and Cassandra 5.0 or newer",
        ))
    }
}

/// `POST /api/v0/ops/node/decommission?force=`: waits for the decommission.
pub(super) fn decommission_blocking(call: &mut Call<'_>) -> Answer {
    decommission_as(call, Mode::Blocking)
}

/// `POST /api/v1/ops/node/decommission?force=`: 202 with the job id.
pub(super) fn decommission(call: &mut Call<'_>) -> Answer {
    decommission_as(call, Mode::Async)
}

fn decommission_as(call: &mut Call<'_>, mode: Mode) -> Answer {
    call.cassandra()?;
    let operation = NodeOperation::Decommission {
        force: flag(&call.query, "force"),
    };
    match mode {
        Mode::Blocking => call.run_now(operation).map(|_| Reply::ok()),
        Mode::Async => Ok(Reply::accepted(call.submit(operation)?)),
    }
}

/// `POST /api/v1/ops/node/rebuild?src_dc=`: 202 with the job id. An empty `src_dc` is passed on
/// as the agent does (Cassandra refuses it when the job runs).
pub(super) fn rebuild(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    let operation = NodeOperation::Rebuild {
        source_dc: call.query.get("src_dc").map(str::to_string),
    };
    Ok(Reply::accepted(call.submit(operation)?))
}

/// `POST /api/v0/ops/node/repair`: Cassandra repairs in the background; the agent answers OK
/// at once.
pub(super) fn repair_v0(call: &mut Call<'_>) -> Answer {
    let request = repair_request(call)?;
    call.cassandra()?;
    call.submit(NodeOperation::Repair(request))?;
    Ok(Reply::ok())
}

/// `POST /api/v1/ops/node/repair`: 202 with the job id.
pub(super) fn repair_v1(call: &mut Call<'_>) -> Answer {
    let request = repair_request(call)?;
    call.cassandra()?;
    Ok(Reply::accepted(
        call.submit(NodeOperation::Repair(request))?,
    ))
}

/// The v0/v1 `RepairRequest`: `keyspace_name`, `tables`, `full` (the model's repairs are all
/// full).
fn repair_request(call: &Call<'_>) -> Result<RepairRequest, Reply> {
    let Some(body) = call.json_body()? else {
        return Err(null_body("repairRequest", "keyspaceName"));
    };
    bool_field(&body, "full")?;
    let tables = strings_field(&body, "tables")?;
    let Some(keyspace) = string_field(&body, "keyspace_name")? else {
        return Err(Reply::bad_request("keyspaceName must be specified"));
    };
    Ok(RepairRequest {
        tables,
        ..RepairRequest::keyspace(&keyspace)
    })
}

/// `PUT /api/v2/repairs`: 202 with `{"repair_id": ...}`, the job to poll.
pub(super) fn repair_v2(call: &mut Call<'_>) -> Answer {
    let Some(body) = call.json_body()? else {
        return Err(null_body("request", "keyspace"));
    };
    bool_field(&body, "full_repair")?;
    string_field(&body, "repair_parallelism")?;
    let tables = strings_field(&body, "tables")?;
    let datacenters = strings_field(&body, "datacenters")?;
    let threads = int_field(&body, "repair_thread_count")?;
    let mut ranges = Vec::new();
    for range in objects_field(&body, "associated_tokens")? {
        let start = int_field(range, "start")?;
        let end = int_field(range, "end")?;
        match (start, end) {
            (Some(start), Some(end)) => ranges.push((start, end)),
            _ => {
                return Err(Reply::bad_request(
                    "Missing required creator property 'start' or 'end' of RingRange",
                ));
            }
        }
    }
    let Some(keyspace) = string_field(&body, "keyspace")? else {
        return Err(Reply::bad_request("keyspaceName must be specified"));
    };
    call.cassandra()?;
    if let Some(threads) = threads.filter(|threads| *threads <= 0) {
        return Err(Reply::text(
            500,
            format!("Invalid repair thread count: {threads}. Value should be greater than 0"),
        ));
    }
    let request = RepairRequest {
        tables,
        datacenters,
        ranges,
        ..RepairRequest::keyspace(&keyspace)
    };
    let id = call.submit(NodeOperation::Repair(request))?;
    Ok(Reply::json(202, &json!({"repair_id": id})))
}

/// `DELETE /api/v2/repairs`: repairs here finish within their job; nothing is left to stop.
pub(super) fn cancel_repairs(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    Ok(Reply::empty(202))
}

/// `POST /api/v0/ops/node/drain`: the node stops gossiping, so the others see it down; the
/// process keeps running until stopped.
pub(super) fn drain(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    call.model.set_down(call.pod)?;
    Ok(Reply::ok())
}

/// `POST /api/v0/ops/node/move?newToken=`: the model has no token moves.
pub(super) fn move_token(call: &mut Call<'_>) -> Answer {
    if is_blank(call.query.get("newToken")) {
        return Err(Reply::bad_request("newToken must be specified"));
    }
    call.cassandra()?;
    Err(Reply::text(
        500,
        "Moving a node to another token is not modelled by kube-sim",
    ))
}

/// `POST /api/v0/ops/node/assassinate?address=`.
pub(super) fn assassinate(call: &mut Call<'_>) -> Answer {
    let Some(address) = call.query.get("address").filter(|text| !is_blank(Some(text))) else {
        return Err(Reply::bad_request("Address must be provided"));
    };
    let address = address.to_string();
    call.cassandra()?;
    call.model.assassinate(&call.node.cluster, &address)?;
    Ok(Reply::ok())
}

/// `POST /api/v0/ops/node/compaction?value=`: an `int` parameter (404 when not a number).
pub(super) fn set_compaction_throughput(call: &mut Call<'_>) -> Answer {
    optional_int(&call.query, "value")?;
    call.cassandra()?;
    Ok(Reply::ok())
}

/// Settings the model does not keep (logging levels, hints, schema reset and reload, full
/// query logging, snapshot removal): accepted.
pub(super) fn accept_setting(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    Ok(Reply::ok())
}

/// `GET /api/v0/ops/node/fullquerylogging`: never enabled in the model.
pub(super) fn full_query_logging(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    Ok(Reply::entity(json!(false)))
}

/// `GET /api/v0/ops/node/snapshots`: the model keeps no snapshots but Medusa's.
pub(super) fn snapshot_details(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    Ok(Reply::entity(json!([])))
}

/// `POST /api/v0/ops/node/snapshots` with a `TakeSnapshotRequest`'s checks.
pub(super) fn take_snapshot(call: &mut Call<'_>) -> Answer {
    let Some(body) = call.json_body()? else {
        return Err(null_body("takeSnapshotRequest", "snapshotName"));
    };
    string_field(&body, "snapshot_name")?;
    bool_field(&body, "skip_flush")?;
    let keyspaces = strings_field(&body, "keyspaces")?;
    let table = string_field(&body, "table_name")?;
    let keyspace_tables = strings_field(&body, "keyspace_tables")?;
    if !keyspaces.is_empty() && !keyspace_tables.is_empty() {
        return Err(Reply::bad_request(
            "When specifying keyspace_tables, specifying keyspaces is not allowed",
        ));
    }
    if table.is_some() && keyspaces.len() != 1 {
        return Err(Reply::bad_request(
            "Exactly 1 keyspace must be specified when specifying table_name",
        ));
    }
    call.cassandra()?;
    Ok(Reply::ok())
}

pub(super) fn rebuild_search_index(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    Err(Reply::bad_request(
        "Rebuilding Search Index is only supported on DSE",
    ))
}

pub(super) fn reload_truststore(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    Err(Reply::bad_request(
        "Reloading the truststore manually is only possible on DSE",
    ))
}
