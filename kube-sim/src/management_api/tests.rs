//! The Management API stand-in against the model: paths, bodies and statuses as the agent
//! answers them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use super::handle;
use crate::cassandra::{
    CassandraModel, ManagementFault, NodeSpec, PodRef, SharedModel, SystemReplicationProperties,
};

const CLUSTER: &str = "demo";

fn pod(index: usize) -> PodRef {
    PodRef::new("sim-0", "cass", format!("demo-dc1-r1-sts-{index}"))
}

/// A deterministic model with three running nodes in dc1, its system keyspaces replicated
/// three times there (k8ssandra's `-Dcassandra.system_distributed_replication`).
fn three_nodes() -> SharedModel {
    let mut model = CassandraModel::deterministic(7);
    for index in 0..3 {
        let mut spec = NodeSpec::new(
            CLUSTER,
            pod(index),
            &format!("127.0.9.{}", index + 1),
            "dc1",
            "r1",
        );
        spec.system_replication = SystemReplicationProperties::dc_rf("dc1:3");
        model.start_node(spec).expect("node starts");
    }
    Arc::new(parking_lot::Mutex::new(model))
}

struct Answer {
    status: u16,
    content_type: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

async fn call(model: &SharedModel, on: &PodRef, method: &str, path: &str) -> Answer {
    send(model, on, method, path, None).await
}

async fn send(
    model: &SharedModel,
    on: &PodRef,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let mut request = hyper::Request::builder().method(method).uri(path);
    if body.is_some() {
        request = request.header("Content-Type", "application/json");
    }
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let request = request.body(body).expect("request");
    let response = handle(model, on, request).await;
    Answer {
        status: response.status().as_u16(),
        content_type: response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: String::from_utf8_lossy(response.body()).into_owned(),
    }
}

#[tokio::test]
async fn probes_answer_as_the_agent_with_cassandra_running_or_stopped() {
    let model = three_nodes();
    let node = pod(0);
    let live = call(&model, &node, "GET", "/api/v0/probes/liveness").await;
    assert_eq!((live.status, live.body.as_str()), (200, "OK"));
    assert_eq!(live.content_type.as_deref(), Some("text/plain"));
    let ready = call(&model, &node, "GET", "/api/v0/probes/readiness").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "OK"));

    model.lock().stop_node(&node).expect("stops");
    let live = call(&model, &node, "GET", "/api/v0/probes/liveness").await;
    assert_eq!(live.status, 200, "the agent itself still runs");
    let ready = call(&model, &node, "GET", "/api/v0/probes/readiness").await;
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (500, "Internal connection to Cassandra closed")
    );
    let keyspaces = call(&model, &node, "GET", "/api/v0/ops/keyspace").await;
    assert_eq!(keyspaces.status, 500);
    let pid = call(&model, &node, "GET", "/api/v0/lifecycle/pid").await;
    assert_eq!(pid.status, 204);

    let started = call(&model, &node, "POST", "/api/v0/lifecycle/start").await;
    assert_eq!((started.status, started.body.as_str()), (201, "OK\n"));
    let again = call(&model, &node, "POST", "/api/v0/lifecycle/start").await;
    assert_eq!(again.status, 202, "already running");
    let ready = call(&model, &node, "GET", "/api/v0/probes/readiness").await;
    assert_eq!(ready.status, 200);
}

#[tokio::test]
async fn keyspaces_are_created_altered_and_read_back_from_the_model() {
    let model = three_nodes();
    let node = pod(1);
    let system_auth = call(
        &model,
        &node,
        "GET",
        "/api/v0/ops/keyspace/replication?keyspaceName=system_auth",
    )
    .await;
    assert_eq!(system_auth.status, 200);
    let expected = model.lock().replication(CLUSTER, "system_auth").expect("replication");
    assert_eq!(system_auth.json(), json!(expected));

    let create = json!({
        "keyspace_name": "app",
        "replication_settings": [{"dc_name": "dc1", "replication_factor": 3}],
    });
    let created = send(
        &model,
        &node,
        "POST",
        "/api/v0/ops/keyspace/create",
        Some(create.clone()),
    )
    .await;
    assert_eq!((created.status, created.body.as_str()), (200, "OK"));
    let again = send(
        &model,
        &node,
        "POST",
        "/api/v0/ops/keyspace/create",
        Some(create),
    )
    .await;
    assert_eq!(again.status, 200, "created IF NOT EXISTS");
    let replication = call(
        &model,
        &node,
        "GET",
        "/api/v0/ops/keyspace/replication?keyspaceName=app",
    )
    .await;
    assert_eq!(
        replication.json(),
        json!({"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "dc1": "3"})
    );
    let listed = call(
        &model,
        &node,
        "GET",
        "/api/v0/ops/keyspace?keyspaceName=app",
    )
    .await;
    assert_eq!(listed.json(), json!(["app"]));

    let altered = send(
        &model,
        &node,
        "POST",
        "/api/v0/ops/keyspace/alter",
        Some(json!({"keyspace_name": "app", "replication_settings": [{"dc_name": "dc1", "replication_factor": 2}]})),
    )
    .await;
    assert_eq!(altered.status, 200);
    assert_eq!(
        model.lock().replication(CLUSTER, "app").expect("app").get("dc1").map(String::as_str),
        Some("2")
    );

    let missing = call(
        &model,
        &node,
        "GET",
        "/api/v0/ops/keyspace/replication?keyspaceName=nope",
    )
    .await;
    assert_eq!(
        (missing.status, missing.body.as_str()),
        (
            404,
            "Get keyspace replication failed. Keyspace 'nope' does not exist."
        )
    );
    let blank = call(&model, &node, "GET", "/api/v0/ops/keyspace/replication").await;
    assert_eq!(blank.status, 400);
    let no_settings = send(
        &model,
        &node,
        "POST",
        "/api/v0/ops/keyspace/create",
        Some(json!({"keyspace_name": "other", "replication_settings": []})),
    )
    .await;
    assert_eq!(
        (no_settings.status, no_settings.body.as_str()),
        (
            400,
            "Keyspace creation failed. 'replication_settings' must be provided"
        )
    );
    let unknown_dc = send(
        &model,
        &node,
        "POST",
        "/api/v0/ops/keyspace/alter",
        Some(json!({"keyspace_name": "app", "replication_settings": [{"dc_name": "dc9", "replication_factor": 3}]})),
    )
    .await;
    assert_eq!(unknown_dc.status, 500);
    assert!(unknown_dc.body.contains("dc9"), "{}", unknown_dc.body);
}

#[tokio::test]
async fn endpoints_carry_the_gossip_state_operators_parse() {
    let model = three_nodes();
    let node = pod(0);
    model.lock().stop_node(&pod(2)).expect("stops");
    let answer = call(&model, &node, "GET", "/api/v0/metadata/endpoints").await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    let endpoints = body["entity"].as_array().expect("entity is a list");
    assert_eq!(endpoints.len(), 3);
    let local = endpoints.iter().find(|e| e["IS_LOCAL"] == "true").expect("local endpoint");
    let host_id = model.lock().node(&node).expect("node").host_id.to_string();
    assert_eq!(local["HOST_ID"], json!(host_id));
    assert_eq!(local["DC"], "dc1");
    assert_eq!(local["RACK"], "r1");
    assert_eq!(local["IS_ALIVE"], "true");
    assert_eq!(local["ENDPOINT_IP"], "127.0.9.1");
    assert_eq!(local["NATIVE_ADDRESS_AND_PORT"], "127.0.9.1:9042");
    assert!(local["STATUS"].as_str().is_some_and(|s| s.starts_with("NORMAL,")));
    assert_eq!(local["STATUS"], local["STATUS_WITH_PORT"]);
    let stopped = endpoints.iter().find(|e| e["ENDPOINT_IP"] == "127.0.9.3").expect("stopped");
    assert_eq!(stopped["IS_ALIVE"], "false");
    assert_eq!(stopped["STATUS"], "shutdown,true");

    let versions = call(&model, &node, "GET", "/api/v1/ops/node/schema/versions").await;
    let versions = versions.json();
    assert_eq!(versions["UNREACHABLE"], json!(["127.0.9.3"]));

    let features = call(&model, &node, "GET", "/api/v0/metadata/versions/features").await;
    assert_eq!(features.json()["cassandra_version"], "4.0.17");
    assert!(
        features.json()["features"]
            .as_array()
            .is_some_and(|f| f.contains(&json!("async_sstable_tasks")))
    );
}

#[tokio::test]
async fn a_rebuild_job_completes_when_the_model_clock_moves() {
    let model = three_nodes();
    let node = pod(1);
    model.lock().set_job_duration_millis(5_000);
    let submitted = call(&model, &node, "POST", "/api/v1/ops/node/rebuild?src_dc=dc1").await;
    assert_eq!(submitted.status, 202);
    let job_id = submitted.body.clone();
    let path = format!("/api/v0/ops/executor/job?job_id={job_id}");
    let waiting = call(&model, &node, "GET", &path).await.json();
    assert_eq!(waiting["id"], json!(job_id));
    assert_eq!(waiting["type"], "rebuild");
    assert_eq!(waiting["status"], "WAITING");
    assert_eq!(
        waiting["end_time"], "0",
        "times are strings, as Jackson writes them"
    );

    model.lock().advance_millis(5_000);
    let done = call(&model, &node, "GET", &path).await.json();
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["error"], Value::Null);
    assert_ne!(done["end_time"], "0");

    let unknown = call(&model, &node, "GET", "/api/v0/ops/executor/job?job_id=nope").await;
    assert_eq!((unknown.status, unknown.body.as_str()), (404, "{}"));
    let elsewhere = call(&model, &pod(0), "GET", &path).await;
    assert_eq!(
        elsewhere.status, 404,
        "jobs belong to the node that runs them"
    );
}

#[tokio::test]
async fn a_failing_job_reports_the_operation_error() {
    let model = three_nodes();
    let node = pod(0);
    let submitted = call(&model, &node, "POST", "/api/v1/ops/node/rebuild?src_dc=dc7").await;
    let job = call(
        &model,
        &node,
        "GET",
        &format!("/api/v0/ops/executor/job?job_id={}", submitted.body),
    )
    .await
    .json();
    assert_eq!(job["status"], "ERROR");
    assert!(job["error"].as_str().is_some_and(|e| e.contains("'dc7' is not a valid datacenter")));
}

#[tokio::test]
async fn blocking_operations_wait_for_their_job_and_report_its_error() {
    let model = three_nodes();
    model.lock().set_job_duration_millis(60_000);
    let node = pod(2);
    let cleanup = send(
        &model,
        &node,
        "POST",
        "/api/v0/ops/keyspace/cleanup",
        Some(json!({"keyspace_name": "system_auth", "jobs": "1"})),
    )
    .await;
    assert_eq!(cleanup.status, 200);
    let job = call(
        &model,
        &node,
        "GET",
        &format!("/api/v0/ops/executor/job?job_id={}", cleanup.body),
    )
    .await
    .json();
    assert_eq!(
        (job["type"].as_str(), job["status"].as_str()),
        (Some("CLEANUP"), Some("COMPLETED"))
    );

    let flush = send(
        &model,
        &node,
        "POST",
        "/api/v0/ops/tables/flush",
        Some(json!({"keyspace_name": "nope"})),
    )
    .await;
    assert_eq!(flush.status, 500);
    let async_flush = send(
        &model,
        &node,
        "POST",
        "/api/v1/ops/tables/flush",
        Some(json!({"keyspace_name": "nope"})),
    )
    .await;
    assert_eq!(
        (async_flush.status, async_flush.body.as_str()),
        (400, "keyspace nope does not exists")
    );

    let decommission = call(
        &model,
        &node,
        "POST",
        "/api/v0/ops/node/decommission?force=true",
    )
    .await;
    assert_eq!(
        (decommission.status, decommission.body.as_str()),
        (200, "OK")
    );
    let endpoints = call(&model, &pod(0), "GET", "/api/v0/metadata/endpoints").await.json();
    assert_eq!(
        endpoints["entity"].as_array().map(Vec::len),
        Some(2),
        "a decommissioned node is gone from gossip"
    );
}

#[tokio::test]
async fn tables_are_created_with_the_agents_validation() {
    let model = three_nodes();
    let node = pod(0);
    send(
        &model,
        &node,
        "POST",
        "/api/v0/ops/keyspace/create",
        Some(json!({"keyspace_name": "app", "replication_settings": [{"dc_name": "dc1", "replication_factor": 1}]})),
    )
    .await;
    let table = json!({
        "keyspace_name": "app",
        "table_name": "tokens",
        "columns": [
            {"name": "auth_token", "type": "uuid", "kind": "PARTITION_KEY", "position": 0},
            {"name": "username", "type": "text", "kind": "REGULAR"},
        ],
    });
    let created = send(
        &model,
        &node,
        "POST",
        "/api/v0/ops/tables/create",
        Some(table),
    )
    .await;
    assert_eq!((created.status, created.body.as_str()), (200, "OK"));
    let names = call(&model, &node, "GET", "/api/v0/ops/tables?keyspaceName=app").await;
    assert_eq!(names.json(), json!(["tokens"]));
    let v1 = call(&model, &node, "GET", "/api/v1/ops/tables?keyspaceName=app").await.json();
    assert_eq!(v1[0]["name"], "tokens");

    let no_key = json!({
        "keyspace_name": "app",
        "table_name": "other",
        "columns": [{"name": "v", "type": "text", "kind": "REGULAR"}],
    });
    let refused = send(
        &model,
        &node,
        "POST",
        "/api/v0/ops/tables/create",
        Some(no_key),
    )
    .await;
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (
            400,
            "Table creation failed: invalid primary key: partition key is empty"
        )
    );
}

#[tokio::test]
async fn roles_are_created_and_listed() {
    let model = three_nodes();
    let node = pod(0);
    let created = call(
        &model,
        &node,
        "POST",
        "/api/v0/ops/auth/role?username=app&password=secret&can_login=true&is_superuser=false",
    )
    .await;
    assert_eq!((created.status, created.body.as_str()), (200, "OK"));
    let roles = call(&model, &node, "GET", "/api/v0/ops/auth/role").await.json();
    let app = roles
        .as_array()
        .and_then(|roles| roles.iter().find(|role| role["name"] == "app"))
        .cloned()
        .expect("the role is listed");
    assert_eq!(
        (app["super"].clone(), app["login"].clone()),
        (json!(false), json!(true))
    );
    let no_password = call(&model, &node, "POST", "/api/v0/ops/auth/role?username=x").await;
    assert_eq!((no_password.status, no_password.body.as_str()), (400, ""));
    assert!(model.lock().login(CLUSTER, "dc1", "app", "secret").is_ok());
}

#[tokio::test]
async fn repairs_run_as_jobs_and_report_token_ranges() {
    let model = three_nodes();
    let node = pod(0);
    let repair = send(
        &model,
        &node,
        "PUT",
        "/api/v2/repairs",
        Some(json!({"keyspace": "system_auth", "full_repair": true, "associated_tokens": [{"start": -10, "end": 10}]})),
    )
    .await;
    assert_eq!(repair.status, 202);
    let id = repair.json()["repair_id"].as_str().map(str::to_string).expect("repair id");
    let job = call(
        &model,
        &node,
        "GET",
        &format!("/api/v0/ops/executor/job?job_id={id}"),
    )
    .await;
    assert_eq!(job.json()["status"], "COMPLETED");
    let no_keyspace = send(&model, &node, "PUT", "/api/v2/repairs", Some(json!({}))).await;
    assert_eq!(
        (no_keyspace.status, no_keyspace.body.as_str()),
        (400, "keyspaceName must be specified")
    );

    let ranges = call(
        &model,
        &node,
        "GET",
        "/api/v2/tokens/rangetoendpoint?keyspaceName=system_auth",
    )
    .await
    .json();
    let ranges = ranges["token_range_to_endpoints"].as_array().cloned().unwrap_or_default();
    assert_eq!(ranges.len(), 48, "16 tokens for each of 3 nodes");
    let missing = call(
        &model,
        &node,
        "GET",
        "/api/v2/tokens/rangetoendpoint?keyspaceName=x",
    )
    .await;
    assert_eq!(
        (missing.status, missing.body.as_str()),
        (404, "keyspace not found")
    );
}

#[tokio::test]
async fn the_cluster_probe_lists_the_ranges_that_cannot_reach_the_consistency_level() {
    let model = three_nodes();
    let node = pod(0);
    let path = "/api/v0/probes/cluster?consistency_level=LOCAL_QUORUM&rf_per_dc=3";
    let healthy = call(&model, &node, "GET", path).await;
    assert_eq!((healthy.status, healthy.body.as_str()), (200, ""));
    model.lock().set_down(&pod(1)).expect("down");
    model.lock().set_down(&pod(2)).expect("down");
    let degraded = call(&model, &node, "GET", path).await;
    assert_eq!(degraded.status, 500);
    let ranges = degraded.json();
    let first = ranges.as_object().and_then(|r| r.values().next()).cloned().expect("a range");
    assert!(
        first.as_array().is_some_and(|down| down.contains(&json!("/127.0.9.2:7000"))),
        "{first}"
    );
    let bad_level = call(
        &model,
        &node,
        "GET",
        "/api/v0/probes/cluster?consistency_level=local_quorum",
    )
    .await;
    assert_eq!(bad_level.status, 500);
}

#[tokio::test]
async fn a_management_fault_fails_or_delays_every_answer_until_cleared() {
    let model = three_nodes();
    let node = pod(0);
    let failing = ManagementFault {
        fail_status: Some(500),
        delay_millis: 0,
    };
    model.lock().set_management_fault(&node, failing).expect("fault");
    let failed = call(&model, &node, "GET", "/api/v0/probes/readiness").await;
    assert_eq!(failed.status, 500);
    model.lock().set_management_fault(&node, ManagementFault::default()).expect("cleared");
    assert_eq!(
        call(&model, &node, "GET", "/api/v0/probes/readiness").await.status,
        200
    );

    let slow = ManagementFault {
        fail_status: None,
        delay_millis: 50,
    };
    model.lock().set_management_fault(&node, slow).expect("fault");
    let started = std::time::Instant::now();
    assert_eq!(
        call(&model, &node, "GET", "/api/v0/probes/liveness").await.status,
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[tokio::test]
async fn unknown_paths_methods_and_media_types_are_refused_as_resteasy_does() {
    let model = three_nodes();
    let node = pod(0);
    let unknown = call(&model, &node, "GET", "/api/v0/nothing").await;
    assert_eq!((unknown.status, unknown.body.as_str()), (404, ""));
    let wrong_method = call(&model, &node, "DELETE", "/api/v0/probes/readiness").await;
    assert_eq!(wrong_method.status, 405);
    let request = hyper::Request::post("/api/v0/ops/keyspace/create")
        .header("Content-Type", "text/plain")
        .body(Bytes::from_static(b"{}"))
        .expect("request");
    assert_eq!(handle(&model, &node, request).await.status(), 415);
}
