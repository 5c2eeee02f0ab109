//! Reaper 3.x's REST resources over one Reaper's [`ReaperState`] and the Cassandra model:
//! `PingResource`, `LoginResource` with Shiro's filters (`shiro.ini`'s `[urls]`),
//! `ClusterResource`, `RepairRunResource` and `RepairScheduleResource`, with their status codes
//! and texts.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde_json::{Value, json};
use uuid::Uuid;

use super::http::{Params, Reply, split_list};
use super::state::{
    ReaperState, RegisteredCluster, RepairSchedule, RepairUnit, RunState, ScheduleState,
    run_status, schedule_status, segment_view,
};
use super::{
    DEFAULT_INTENSITY, DEFAULT_PARALLELISM, DEFAULT_SEGMENT_TIMEOUT_MINS, ReaperConfig,
    auto_scheduling,
};
use crate::cassandra::CassandraModel;

/// One HTTP request to a Reaper, parsed.
#[derive(Debug, Clone, Default)]
pub struct ReaperRequest {
    pub method: String,
    pub path: String,
    pub query: Params,
    /// The `application/x-www-form-urlencoded` body.
    pub form: Params,
    pub authorization: Option<String>,
    pub cookie: Option<String>,
}

impl ReaperRequest {
    pub fn from_http(request: &crate::pod_network::PodRequest) -> ReaperRequest {
        let header = |name: hyper::header::HeaderName| {
            request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
        };
        let is_form = header(hyper::header::CONTENT_TYPE)
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        let body = std::str::from_utf8(request.body()).unwrap_or_default();
        ReaperRequest {
            method: request.method().as_str().to_string(),
            path: request.uri().path().to_string(),
            query: Params::parse(request.uri().query()),
            form: if is_form {
                Params::parse(Some(body))
            } else {
                Params::default()
            },
            authorization: header(hyper::header::AUTHORIZATION),
            cookie: header(hyper::header::COOKIE),
        }
    }

    fn session(&self) -> Option<&str> {
        self.cookie.as_deref()?.split(';').find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE).then_some(value)
        })
    }

    fn bearer(&self) -> Option<&str> {
        self.authorization.as_deref()?.strip_prefix("Bearer ")
    }
}

const SESSION_COOKIE: &str = "JSESSIONID";
const LOGIN_PAGE: &str = "/webui/login.html";

/// Answers one request (the runner catches up with the model's clock first).
pub fn handle(
    state: &mut ReaperState,
    model: &mut CassandraModel,
    config: &ReaperConfig,
    request: &ReaperRequest,
) -> Reply {
    let segments: Vec<&str> = request.path.split('/').filter(|s| !s.is_empty()).collect();
    if let Some(refused) = authenticate(state, config, request, &segments) {
        return refused;
    }
    state.advance(model);
    if let Some(auto) = &config.auto_scheduling {
        auto_scheduling::poll(state, model, auto);
    }
    let known: Vec<String> = state.clusters.keys().cloned().collect();
    let method = request.method.as_str();
    let reply = route(state, model, config, request, method, &segments);
    // `ClusterResource.addOrUpdateCluster` schedules a cluster it has just registered.
    if let Some(auto) = &config.auto_scheduling {
        let added: Vec<String> =
            state.clusters.keys().filter(|name| !known.contains(name)).cloned().collect();
        for cluster in added {
            auto_scheduling::schedule_repairs(state, model, auto, &cluster);
        }
    }
    // A run started or a schedule triggered by this request moves at once when it is due.
    state.advance(model);
    reply
}

fn route(
    state: &mut ReaperState,
    model: &mut CassandraModel,
    config: &ReaperConfig,
    request: &ReaperRequest,
    method: &str,
    segments: &[&str],
) -> Reply {
    let query = &request.query;
    let form = &request.form;
    match (method, segments) {
        ("GET" | "HEAD", ["ping"]) => Reply::empty(204),
        ("POST", ["login"]) => login(state, config, form),
        ("POST", ["logout"]) => {
            if let Some(session) = request.session() {
                state.sessions.remove(session);
            }
            Reply::empty(204)
        }
        ("GET", ["jwt"]) => jwt(state, request),
        ("GET", ["cluster"]) => list_clusters(state, query),
        ("POST", ["cluster"]) => add_or_update_cluster(state, model, config, None, query, false),
        ("POST", ["cluster", "auth"]) => {
            add_or_update_cluster(state, model, config, None, form, true)
        }
        ("PUT", ["cluster", "auth", name]) => {
            add_or_update_cluster(state, model, config, Some(name), form, true)
        }
        ("GET", ["cluster", name]) => get_cluster(state, model, name),
        ("PUT", ["cluster", name]) => {
            add_or_update_cluster(state, model, config, Some(name), query, false)
        }
        ("DELETE", ["cluster", name]) => delete_cluster(state, name, query),
        ("GET", ["cluster", name, "tables"]) => cluster_tables(state, model, name),
        ("GET", ["repair_run"]) => list_runs(state, model, query),
        ("POST", ["repair_run"]) => add_run(state, model, query),
        ("GET", ["repair_run", "cluster", name]) => {
            let now = model.now_millis();
            let runs: Vec<Value> = runs_of_cluster(state, name)
                .map(|run| run_status(run, state.unit(run.unit_id), now))
                .collect();
            Reply::json(200, &Value::Array(runs))
        }
        ("GET", ["repair_run", id]) => with_run(state, id, |state, run_id| {
            let run = state.run(run_id)?;
            Some(Reply::json(
                200,
                &run_status(run, state.unit(run.unit_id), model.now_millis()),
            ))
        }),
        ("GET", ["repair_run", id, "segments"]) => with_run(state, id, |state, run_id| {
            let run = state.run(run_id)?;
            let views: Vec<Value> = run.segments.iter().map(|s| segment_view(run, s)).collect();
            Some(Reply::json(200, &Value::Array(views)))
        }),
        ("PUT", ["repair_run", id, "state", wanted]) => with_run(state, id, |state, run_id| {
            Some(modify_run_state(state, model, run_id, wanted))
        }),
        ("DELETE", ["repair_run", id]) => delete_run(state, id, query),
        ("GET", ["repair_schedule"]) => {
            let cluster = query.get("clusterName");
            let keyspace = query.get("keyspace");
            let views: Vec<Value> = state
                .schedules
                .iter()
                .filter_map(|s| Some((s, state.unit(s.unit_id)?)))
                .filter(|(_, unit)| cluster.is_none_or(|c| unit.cluster == c))
                .filter(|(_, unit)| keyspace.is_none_or(|k| unit.keyspace == k))
                .map(|(s, unit)| schedule_status(s, Some(unit)))
                .collect();
            Reply::json(200, &Value::Array(views))
        }
        ("POST", ["repair_schedule"]) => add_schedule(state, model, query),
        ("GET", ["repair_schedule", "cluster", name]) => {
            let views: Vec<Value> = state
                .schedules
                .iter()
                .filter_map(|s| Some((s, state.unit(s.unit_id)?)))
                .filter(|(_, unit)| unit.cluster == *name)
                .map(|(s, unit)| schedule_status(s, Some(unit)))
                .collect();
            Reply::json(200, &Value::Array(views))
        }
        ("POST", ["repair_schedule", "start", id]) => {
            let now = model.now_millis();
            with_schedule(state, id, |state, schedule_id| {
                state.schedule_mut(schedule_id)?.next_activation = now;
                let schedule = state.schedule(schedule_id)?;
                let view = schedule_status(schedule, state.unit(schedule.unit_id));
                Some(Reply::json(200, &view))
            })
        }
        ("GET", ["repair_schedule", id]) => with_schedule(state, id, |state, schedule_id| {
            let schedule = state.schedule(schedule_id)?;
            Some(Reply::json(
                200,
                &schedule_status(schedule, state.unit(schedule.unit_id)),
            ))
        }),
        ("PUT", ["repair_schedule", id]) => {
            let now = model.now_millis();
            with_schedule(state, id, |state, schedule_id| {
                Some(modify_schedule_state(
                    state,
                    schedule_id,
                    query.get("state"),
                    now,
                ))
            })
        }
        ("DELETE", ["repair_schedule", id]) => delete_schedule(state, id, query),
        (_, path) if is_known_path(path) => Reply::jersey(405, "Method Not Allowed"),
        _ => Reply::not_found(),
    }
}

fn is_known_path(path: &[&str]) -> bool {
    matches!(
        path,
        ["ping" | "login" | "logout" | "jwt" | "cluster" | "repair_run" | "repair_schedule"]
            | ["cluster" | "repair_run" | "repair_schedule", _]
            | ["cluster", _, _]
            | ["repair_run" | "repair_schedule", _, _]
            | ["repair_run", _, "state", _]
    )
}

/// Shiro's filters when authentication is on: `/ping` and `/login` are open, `/jwt` needs the
/// login's session (else the `authc` filter redirects to the login page), everything else a
/// JWT or that session (`ShiroJwtVerifyingFilter`: 403 and its text).
fn authenticate(
    state: &ReaperState,
    config: &ReaperConfig,
    request: &ReaperRequest,
    segments: &[&str],
) -> Option<Reply> {
    config.login.as_ref()?;
    let has_session = request.session().is_some_and(|id| state.sessions.contains_key(id));
    match segments {
        ["ping"] | ["login"] => None,
        ["jwt"] if !has_session => Some(Reply::empty(302).with_location(LOGIN_PAGE.into())),
        _ if has_session || request.bearer().is_some_and(|t| state.tokens.contains(t)) => None,
        _ => Some(Reply::plain(
            403,
            "Forbidden access. Please login to access this page.",
        )),
    }
}

/// `LoginResource.login`: a session cookie on success; Shiro's exceptions map to 403.
fn login(state: &mut ReaperState, config: &ReaperConfig, form: &Params) -> Reply {
    let username = form.get("username").map(str::trim).filter(|u| !u.is_empty());
    let password = form.get("password").filter(|p| !p.trim().is_empty());
    let Some(username) = username else {
        return Reply::text(403, "Invalid credentials: missing username.");
    };
    let Some(password) = password else {
        return Reply::text(403, "Invalid credentials: missing password.");
    };
    // Without authentication Shiro has no realm to check against: nothing to log in to.
    let accepted =
        config.login.as_ref().is_some_and(|(user, secret)| user == username && secret == password);
    if !accepted {
        return Reply::text(
            403,
            format!("Invalid credentials combination for user: {username}"),
        );
    }
    let session = state.random_text(32);
    state.sessions.insert(session.clone(), username.to_string());
    Reply {
        cookie: Some(format!("{SESSION_COOKIE}={session}; Path=/; HttpOnly")),
        ..Reply::empty(204)
    }
}

/// `ShiroJwtProvider.get`: a token naming the session's user. Its signature is random, not
/// HS256: this Reaper only checks that it handed the token out.
fn jwt(state: &mut ReaperState, request: &ReaperRequest) -> Reply {
    let user = request.session().and_then(|id| state.sessions.get(id)).cloned();
    let Some(user) = user else {
        return Reply::empty(302).with_location(LOGIN_PAGE.into());
    };
    let encode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
    let signature = state.random_text(43);
    let token = format!(
        "{}.{}.{signature}",
        encode(r#"{"alg":"HS256"}"#),
        encode(&json!({"sub": user}).to_string())
    );
    state.tokens.insert(token.clone());
    Reply::plain(200, token)
}

/// `Cluster.toSymbolicName`.
pub fn symbolic_name(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
        .collect()
}

/// cass-operator's `CleanupForKubernetes` as Federator's `clean_for_kubernetes` applies it to
/// cluster and datacenter names in Service names.
fn clean_for_kubernetes(name: &str) -> String {
    let lowered = name.to_lowercase().replace('_', "-");
    let kept: String = lowered
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .skip_while(|c| !c.is_ascii_lowercase())
        .collect();
    kept.trim_end_matches('-').to_string()
}

/// The model cluster a seed host names, if a live node answers there: a node's IP (pod IPs
/// are routable from every simulated region, as k8ssandra requires), or, as the cluster DNS of
/// the Reaper's own region resolves it, a node's pod name or cass-operator's Service of a
/// datacenter (`<cluster>-<dc>-service`, `-all-pods-service`, `-additional-seed-service`) or
/// cluster (`<cluster>-seed-service`): `name` in the Reaper's namespace, `name.namespace[.svc…]`
/// in that one. A Service of another region does not resolve. `host@cluster` names the host
/// only.
pub fn resolve_seed(model: &CassandraModel, seed: &str, from: &ReaperConfig) -> Option<String> {
    let host = seed.split('@').next().unwrap_or(seed).trim();
    if let Some((cluster, node)) = model.locate_ip(host) {
        return node.up.then(|| cluster.to_string());
    }
    let mut labels = host.split('.');
    let label = labels.next().unwrap_or(host);
    let namespace = labels.next().unwrap_or(from.namespace.as_str());
    for cluster in model.cluster_names() {
        let Ok(nodes) = model.nodes(&cluster) else {
            continue;
        };
        let clean_cluster = clean_for_kubernetes(&cluster);
        let answers = nodes.iter().any(|node| {
            let clean_dc = clean_for_kubernetes(&node.datacenter);
            let named = node.pod.name == label
                || label == format!("{clean_cluster}-seed-service")
                || ["service", "all-pods-service", "additional-seed-service"]
                    .iter()
                    .any(|suffix| label == format!("{clean_cluster}-{clean_dc}-{suffix}"));
            let resolves = node.pod.region == from.region && node.pod.namespace == namespace;
            named && resolves && node.up
        });
        if answers {
            return Some(cluster);
        }
    }
    None
}

fn list_clusters(state: &ReaperState, query: &Params) -> Reply {
    let seed = query.get("seedHost");
    let names: Vec<&String> = state
        .clusters
        .values()
        .filter(|c| seed.is_none_or(|s| c.seed_hosts.contains(s)))
        .map(|c| &c.name)
        .collect();
    Reply::json(200, &json!(names))
}

/// `ClusterResource.addOrUpdateCluster`, from the query (`POST /cluster`, `PUT
/// /cluster/{name}`) or a form (`/cluster/auth`).
fn add_or_update_cluster(
    state: &mut ReaperState,
    model: &CassandraModel,
    config: &ReaperConfig,
    path_name: Option<&str>,
    params: &Params,
    with_credentials: bool,
) -> Reply {
    let Some(seed_host) = params.get("seedHost") else {
        return Reply::text(400, "query parameter \"seedHost\" required");
    };
    let jmx_port = match params.get("jmxPort").map(str::parse::<i64>) {
        None => super::DEFAULT_JMX_PORT,
        Some(Ok(port)) => port,
        Some(Err(_)) => return Reply::not_found(),
    };
    let blank = |key: &str| params.get(key).is_none_or(|v| v.trim().is_empty());
    if with_credentials && !blank("jmxUsername") && !blank("jmxPassword") {
        // No cryptograph is configured in k8ssandra's Reaper.
        return Reply::text(
            400,
            "Unable to store JMX Credentials without first enabling encryption in the reaper configuration",
        );
    }
    let seeds: BTreeSet<String> = split_list(seed_host)
        .iter()
        .map(|s| s.split('@').next().unwrap_or(s).to_string())
        .collect();
    let found = seeds.iter().find_map(|seed| resolve_seed(model, seed, config));
    let Some(model_name) = found else {
        return Reply::text(
            400,
            format!(
                "no cluster {} with seed host {seed_host}",
                path_name.unwrap_or_default()
            ),
        );
    };
    let name = symbolic_name(&model_name);
    if let Some(path_name) = path_name
        && path_name != name
    {
        return Reply::text(
            400,
            format!(
                "POST/PUT on cluster resource {path_name} called with seedHost {seed_host} belonging to different cluster {name}"
            ),
        );
    }
    let location = format!("/cluster/{name}");
    // k8ssandra turns the dynamic seed list off: a known cluster keeps its seeds.
    if state.clusters.keys().any(|known| known.eq_ignore_ascii_case(&name)) {
        return Reply::empty(204).with_location(location);
    }
    state.clusters.insert(
        name.clone(),
        RegisteredCluster {
            name,
            model_name,
            seed_hosts: seeds,
            jmx_port,
        },
    );
    Reply::empty(201).with_location(location)
}

fn get_cluster(state: &ReaperState, model: &CassandraModel, name: &str) -> Reply {
    let Some(cluster) = state.clusters.get(name) else {
        return Reply::text(404, format!("cluster with name \"{name}\" not found"));
    };
    let now = model.now_millis();
    let runs: Vec<Value> =
        runs_of_cluster(state, name).map(|r| run_status(r, state.unit(r.unit_id), now)).collect();
    let schedules: Vec<Value> = state
        .schedules
        .iter()
        .filter_map(|s| Some((s, state.unit(s.unit_id)?)))
        .filter(|(_, unit)| unit.cluster == name)
        .map(|(s, unit)| schedule_status(s, Some(unit)))
        .collect();
    Reply::json(
        200,
        &json!({
            "name": cluster.name,
            "jmx_username": "",
            "jmx_password_is_set": false,
            "seed_hosts": cluster.seed_hosts,
            "repair_runs": runs,
            "repair_schedules": schedules,
            "nodes_status": nodes_status(model, cluster),
        }),
    )
}

/// `NodesStatus`: gossip's view from a seed, nodes by datacenter and rack.
fn nodes_status(model: &CassandraModel, cluster: &RegisteredCluster) -> Value {
    let Ok(ring) = model.ring(&cluster.model_name) else {
        return json!({"endpointStates": []});
    };
    let mut endpoints: BTreeMap<String, BTreeMap<String, Vec<Value>>> = BTreeMap::new();
    let mut total_load = 0.0;
    for entry in &ring {
        let status = match entry.state {
            crate::cassandra::NodeState::Joining => "JOINING",
            crate::cassandra::NodeState::Leaving => "LEAVING",
            _ => "NORMAL",
        };
        let load = entry.load_bytes as f64;
        total_load += load;
        let tokens: Vec<String> = entry.tokens.iter().map(i64::to_string).collect();
        let release = model
            .node_by_ip(&cluster.model_name, &entry.ip)
            .map(|n| n.server_version.clone())
            .unwrap_or_default();
        endpoints
            .entry(entry.datacenter.clone())
            .or_default()
            .entry(entry.rack.clone())
            .or_default()
            .push(json!({
                "endpoint": entry.ip,
                "hostId": entry.host_id.to_string(),
                "dc": entry.datacenter,
                "rack": entry.rack,
                "status": if entry.up { status.to_string() } else { format!("{status} - DOWN") },
                "severity": 0.0,
                "releaseVersion": release,
                "tokens": tokens.join(","),
                "load": load,
                "type": "CASSANDRA",
            }));
    }
    let names: Vec<&String> = ring.iter().map(|e| &e.ip).collect();
    json!({"endpointStates": [{
        "sourceNode": cluster.seed_hosts.iter().next(),
        "endpoints": endpoints,
        "totalLoad": total_load,
        "endpointNames": names,
    }]})
}

fn cluster_tables(state: &ReaperState, model: &CassandraModel, name: &str) -> Reply {
    let Some(cluster) = state.clusters.get(name) else {
        return Reply::text(404, format!("cluster with name \"{name}\" not found"));
    };
    let keyspaces = model.keyspaces(&cluster.model_name).unwrap_or_default();
    let tables: BTreeMap<String, Vec<String>> =
        keyspaces.into_iter().map(|ks| (ks.name, ks.tables)).collect();
    Reply::json(200, &json!(tables))
}

/// `ClusterResource.deleteCluster`.
fn delete_cluster(state: &mut ReaperState, name: &str, query: &Params) -> Reply {
    let force = query.get("force").is_some_and(|f| f.eq_ignore_ascii_case("true"));
    let has_schedules =
        state.schedules.iter().any(|s| state.unit(s.unit_id).is_some_and(|u| u.cluster == name));
    if !force {
        if has_schedules {
            return Reply::text(
                409,
                format!("cluster \"{name}\" cannot be deleted, as it has repair schedules"),
            );
        }
        if runs_of_cluster(state, name).next().is_some() {
            return Reply::text(
                409,
                format!("cluster \"{name}\" cannot be deleted, as it has repair runs"),
            );
        }
    }
    if runs_of_cluster(state, name).any(|r| r.state == RunState::Running) {
        return Reply::text(
            409,
            format!(
                "cluster \"{name}\" cannot be deleted, as it has running repairs. Stop them first."
            ),
        );
    }
    if state.clusters.remove(name).is_none() {
        return Reply::text(404, format!("cluster \"{name}\" not found"));
    }
    let units: BTreeSet<Uuid> =
        state.units.iter().filter(|u| u.cluster == name).map(|u| u.id).collect();
    state.schedules.retain(|s| !units.contains(&s.unit_id));
    state.runs.retain(|r| r.cluster != name);
    state.units.retain(|u| u.cluster != name);
    Reply::empty(202)
}

fn runs_of_cluster<'a>(
    state: &'a ReaperState,
    name: &'a str,
) -> impl Iterator<Item = &'a super::state::RepairRun> + 'a {
    // Running first, then newest first (`getRepairRunsForClusterPrioritiseRunning`).
    let mut runs: Vec<&super::state::RepairRun> =
        state.runs.iter().filter(|r| r.cluster == name).collect();
    runs.sort_by_key(|r| (r.state != RunState::Running, std::cmp::Reverse(r.creation)));
    runs.into_iter()
}

fn parse_uuid(id: &str) -> Option<Uuid> {
    Uuid::parse_str(id).ok()
}

/// A `{id}` path parameter that is not a UUID is Jersey's 404; an unknown run is Reaper's.
fn with_run(
    state: &mut ReaperState,
    id: &str,
    answer: impl FnOnce(&mut ReaperState, Uuid) -> Option<Reply>,
) -> Reply {
    let Some(run_id) = parse_uuid(id) else {
        return Reply::not_found();
    };
    if state.run(run_id).is_none() {
        return Reply::text(404, format!("repair run {run_id} doesn't exist"));
    }
    answer(state, run_id).unwrap_or_else(Reply::not_found)
}

fn with_schedule(
    state: &mut ReaperState,
    id: &str,
    answer: impl FnOnce(&mut ReaperState, Uuid) -> Option<Reply>,
) -> Reply {
    let Some(schedule_id) = parse_uuid(id) else {
        return Reply::not_found();
    };
    if state.schedule(schedule_id).is_none() {
        return Reply::text(
            404,
            format!("repair schedule with id {schedule_id} doesn't exist"),
        );
    }
    answer(state, schedule_id).unwrap_or_else(Reply::not_found)
}

/// What `checkRequestForAddRepair` and the table/node look-ups make of a run or schedule
/// request.
struct RepairParams {
    cluster: RegisteredCluster,
    keyspace: String,
    owner: String,
    unit: RepairUnit,
    segment_count_per_node: Option<i64>,
    parallelism: Option<String>,
    intensity: f64,
    force: bool,
}

const PARALLELISMS: [&str; 3] = ["SEQUENTIAL", "PARALLEL", "DATACENTER_AWARE"];

fn is_boolean(text: &str) -> bool {
    text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false")
}

/// `RepairRunResource.checkRequestForAddRepair` and `RepairRunService`'s table and node
/// parameters, in Reaper's order.
fn check_repair_request(
    state: &mut ReaperState,
    model: &CassandraModel,
    query: &Params,
) -> Result<RepairParams, Reply> {
    let missing = |name: &str| Reply::text(400, format!("{name} argument missing"));
    let cluster_name = query.get("clusterName").ok_or_else(|| missing("clusterName"))?;
    let keyspace = query.get("keyspace").ok_or_else(|| missing("keyspace"))?;
    let owner = query.get("owner").ok_or_else(|| missing("owner"))?;
    let integer = |key: &str| match query.get(key).map(str::parse::<i64>) {
        None => Ok(None),
        Some(Ok(n)) => Ok(Some(n)),
        // Jersey cannot convert the parameter: 404.
        Some(Err(_)) => Err(Reply::not_found()),
    };
    let segment_count_per_node = integer("segmentCountPerNode")?;
    if segment_count_per_node.is_some_and(|n| !(0..=1000).contains(&n)) {
        return Err(Reply::text(
            400,
            "invalid query parameter \"segmentCountPerNode\", maximum value is 100000",
        ));
    }
    let parallelism = query.get("repairParallelism").map(str::to_uppercase);
    if let Some(given) = &parallelism
        && !PARALLELISMS.contains(&given.as_str())
    {
        return Err(Reply::text(
            400,
            format!(
                "invalid repair parallelism given \"{}\", must be one of: [{}]",
                query.get("repairParallelism").unwrap_or_default(),
                PARALLELISMS.join(", ")
            ),
        ));
    }
    let intensity = match query.get("intensity") {
        None => DEFAULT_INTENSITY,
        Some(text) => match text.parse::<f64>() {
            Ok(value) if value > 0.0 && value <= 1.0 => value,
            Ok(_) => {
                return Err(Reply::text(
                    400,
                    format!("query parameter \"intensity\" must be in range (0.0, 1.0]: {text}"),
                ));
            }
            Err(_) => {
                return Err(Reply::text(
                    400,
                    format!("invalid value for query parameter \"intensity\": {text}"),
                ));
            }
        },
    };
    if query.get("incrementalRepair").is_some_and(|v| !is_boolean(v)) {
        return Err(Reply::text(
            400,
            "invalid query parameter \"incrementalRepair\", expecting [True,False]",
        ));
    }
    if query.get("subrangeIncrementalRepair").is_some_and(|v| !is_boolean(v)) {
        return Err(Reply::text(
            400,
            "invalid query parameter \"subrangeIncrementalStr\", expecting [True,False]",
        ));
    }
    let Some(cluster) = state.clusters.get(&symbolic_name(cluster_name)).cloned() else {
        return Err(Reply::text(
            404,
            format!("No cluster found with name \"{cluster_name}\""),
        ));
    };
    let datacenters = query.list("datacenters");
    let nodes = query.list("nodes");
    if !datacenters.is_empty() && !nodes.is_empty() {
        return Err(Reply::text(
            400,
            "Parameters \"datacenters\" and \"nodes\" are mutually exclusive.",
        ));
    }
    if query.get("tables").is_some() && query.get("blacklistedTables").is_some() {
        return Err(Reply::text(
            400,
            "invalid to specify a table list and a blacklist",
        ));
    }
    if query.get("force").is_some_and(|v| !is_boolean(v)) {
        return Err(Reply::text(
            400,
            "invalid query parameter \"force\", expecting [True,False]",
        ));
    }
    let timeout = integer("timeout")?;
    if timeout == Some(0) {
        return Err(Reply::text(
            400,
            "invalid query parameter \"timeout\", should be higher than 0",
        ));
    }
    let known_tables: BTreeSet<String> = model
        .tables(&cluster.model_name, keyspace)
        .map(|tables| tables.iter().map(|t| t.name.clone()).collect())
        .unwrap_or_default();
    let tables_of = |key: &str| -> Result<BTreeSet<String>, Reply> {
        if known_tables.is_empty() {
            return Err(Reply::text(404, "no column families found for keyspace"));
        }
        let named = query.list(key);
        match named.iter().find(|t| !known_tables.contains(*t)) {
            Some(unknown) => Err(Reply::text(
                404,
                format!("keyspace doesn't contain a table named \"{unknown}\""),
            )),
            None => Ok(named.into_iter().collect()),
        }
    };
    let tables = tables_of("tables")?;
    let blacklisted = tables_of("blacklistedTables")?;
    let node_names: Vec<(String, String)> = model
        .nodes(&cluster.model_name)
        .map(|ns| ns.iter().map(|n| (n.ip.clone(), n.pod.name.clone())).collect())
        .unwrap_or_default();
    let mut node_ips = BTreeSet::new();
    for node in &nodes {
        match node_names.iter().find(|(ip, name)| ip == node || name == node) {
            Some((ip, _)) => {
                node_ips.insert(ip.clone());
            }
            None => {
                return Err(Reply::text(
                    404,
                    format!(
                        "cluster \"{}\" doesn't contain a node named \"{node}\"",
                        cluster.name
                    ),
                ));
            }
        }
    }
    let flag = |key: &str| query.get(key).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let unit = RepairUnit {
        id: state.new_uuid(),
        cluster: cluster.name.clone(),
        keyspace: keyspace.to_string(),
        tables,
        incremental: flag("incrementalRepair"),
        subrange_incremental: flag("subrangeIncrementalRepair"),
        nodes: node_ips,
        datacenters: datacenters.into_iter().collect(),
        blacklisted,
        thread_count: integer("repairThreadCount")?.unwrap_or(1),
        timeout: timeout.unwrap_or(DEFAULT_SEGMENT_TIMEOUT_MINS),
    };
    Ok(RepairParams {
        cluster,
        keyspace: keyspace.to_string(),
        owner: owner.to_string(),
        unit,
        segment_count_per_node,
        parallelism,
        intensity,
        force: flag("force"),
    })
}

/// `RepairRunResource.addRepairRun`: a NOT_STARTED run, 201 with its status.
fn add_run(state: &mut ReaperState, model: &CassandraModel, query: &Params) -> Reply {
    let params = match check_repair_request(state, model, query) {
        Ok(params) => params,
        Err(reply) => return reply,
    };
    let incremental = params.unit.incremental || params.unit.subrange_incremental;
    let parallelism = if incremental {
        "PARALLEL".to_string()
    } else {
        params.parallelism.unwrap_or_else(|| DEFAULT_PARALLELISM.into())
    };
    let segments = if params.unit.incremental && !params.unit.subrange_incremental {
        -1
    } else {
        params.segment_count_per_node.unwrap_or(super::DEFAULT_SEGMENT_COUNT_PER_NODE)
    };
    let unit_id = state.unit_for(params.unit);
    let cause = query.get("cause").unwrap_or("manual spawn").to_string();
    match state.register_run(
        model,
        unit_id,
        cause,
        params.owner,
        segments,
        parallelism,
        params.intensity,
    ) {
        Ok(run_id) => match state.run(run_id) {
            Some(run) => Reply::json(
                201,
                &run_status(run, state.unit(unit_id), model.now_millis()),
            )
            .with_location(format!("/repair_run/{run_id}")),
            None => Reply::empty(500),
        },
        Err(message) => Reply::text(500, message),
    }
}

/// `RepairRunResource.modifyRunState`.
fn modify_run_state(
    state: &mut ReaperState,
    model: &CassandraModel,
    run_id: Uuid,
    wanted: &str,
) -> Reply {
    let Some(new_state) = RunState::parse(wanted) else {
        return Reply::text(400, format!("invalid \"state\" argument: {wanted}"));
    };
    let Some(run) = state.run(run_id) else {
        return Reply::text(404, format!("repair run {run_id} doesn't exist"));
    };
    let (old_state, unit_id) = (run.state, run.unit_id);
    let location = format!("/repair_run/{run_id}");
    if old_state == new_state {
        return Reply::text(
            204,
            format!("given \"state\" Optional[{wanted}] is same as the current run state"),
        )
        .with_location(location);
    }
    use RunState::*;
    let starting = matches!(
        (old_state, new_state),
        (NotStarted | Paused | Error, Running)
    );
    if starting && state.unit_is_repairing(unit_id, run_id) {
        return Reply::text(
            409,
            format!("repair unit already has run {unit_id} in RUNNING state"),
        );
    }
    let now = model.now_millis();
    match (old_state, new_state) {
        (_, Running) if starting => state.start_run(run_id, now),
        (Running, Paused) => {
            if let Some(run) = state.run_mut(run_id) {
                run.state = Paused;
                run.pause = Some(now);
                run.last_event = "Repair run paused".into();
            }
        }
        (old, Aborted) if old != Error => {
            if let Some(run) = state.run_mut(run_id) {
                run.state = Aborted;
                run.end = Some(now);
                run.last_event = "Repair run aborted".into();
            }
        }
        (old, new) => {
            return Reply::text(
                409,
                format!("Transition {}->{} not supported.", old.name(), new.name()),
            );
        }
    }
    Reply::empty(200).with_location(location)
}

/// `RepairRunResource.deleteRepairRun`.
fn delete_run(state: &mut ReaperState, id: &str, query: &Params) -> Reply {
    let Some(owner) = query.get("owner") else {
        return Reply::text(400, "required query parameter \"owner\" is missing");
    };
    let Some(run_id) = parse_uuid(id) else {
        return Reply::not_found();
    };
    let Some(run) = state.run(run_id) else {
        return Reply::text(404, format!("Repair run %s{run_id} not found"));
    };
    if run.state == RunState::Running {
        return Reply::text(
            409,
            format!(
                "Repair run with id \"{run_id}\" is currently running, and must be stopped before deleting"
            ),
        );
    }
    if !run.owner.eq_ignore_ascii_case(owner) {
        return Reply::text(
            409,
            format!("Repair run {run_id} is not owned by the user you defined {owner}"),
        );
    }
    state.runs.retain(|r| r.id != run_id);
    Reply::empty(202)
}

/// `RepairRunResource.listRepairRuns`.
fn list_runs(state: &ReaperState, model: &CassandraModel, query: &Params) -> Reply {
    let mut wanted_states = BTreeSet::new();
    for name in query.list("state") {
        match RunState::parse(&name) {
            // Reaper compares the names as given with the states' names.
            Some(_) => wanted_states.insert(name),
            None => return Reply::empty(400),
        };
    }
    let clusters: Vec<&String> = match query.get("cluster_name").filter(|c| *c != "all") {
        Some(name) => match state.clusters.get_key_value(name) {
            Some((key, _)) => vec![key],
            None => return Reply::text(500, format!("Failed find cluster {name}")),
        },
        None => state.clusters.keys().collect(),
    };
    let limit = query.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(1000);
    let mut runs: Vec<&super::state::RepairRun> =
        clusters.iter().flat_map(|name| runs_of_cluster(state, name)).collect();
    // `RepairRunService.sortByRunState`: RUNNING, PAUSED, NOT_STARTED, then the rest.
    runs.sort_by_key(|r| match r.state {
        RunState::Running => 0,
        RunState::Paused => 1,
        RunState::NotStarted => 2,
        _ => 3,
    });
    runs.truncate(limit);
    let now = model.now_millis();
    let keyspace = query.get("keyspace_name");
    let views: Vec<Value> = runs
        .into_iter()
        .filter(|r| wanted_states.is_empty() || wanted_states.contains(r.state.name()))
        .filter_map(|r| Some((r, state.unit(r.unit_id)?)))
        .filter(|(_, unit)| keyspace.is_none_or(|k| unit.keyspace == k))
        .map(|(r, unit)| run_status(r, Some(unit), now))
        .collect();
    Reply::json(200, &Value::Array(views))
}

/// Joda's `DateTime.parse` of `scheduleTriggerTime`: ISO 8601, local time (UTC in Reaper's
/// container) when no offset is given.
fn parse_trigger_time(text: &str) -> Option<i64> {
    if let Ok(timestamp) = text.parse::<jiff::Timestamp>() {
        return Some(timestamp.as_millisecond());
    }
    let civil = text.parse::<jiff::civil::DateTime>().ok()?;
    Some(civil.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp().as_millisecond())
}

/// `RepairScheduleResource.addRepairSchedule`: 201 with the schedule's Location (no body), or
/// 204 pointing at the identical schedule.
fn add_schedule(state: &mut ReaperState, model: &CassandraModel, query: &Params) -> Reply {
    let params = match check_repair_request(state, model, query) {
        Ok(params) => params,
        Err(reply) => return reply,
    };
    let now = model.now_millis();
    const DAY: i64 = 86_400_000;
    let next_activation = match query.get("scheduleTriggerTime") {
        None => (now.div_euclid(DAY) + 1) * DAY,
        Some(text) => match parse_trigger_time(text) {
            Some(millis) => millis,
            None => return Reply::text(400, "invalid schedule_trigger_time"),
        },
    };
    if next_activation < now - 15 * 60_000 {
        return Reply::text(
            400,
            format!(
                "given schedule_trigger_time is too far in the past: {}",
                super::state::iso8601(Some(next_activation)).as_str().unwrap_or_default()
            ),
        );
    }
    let days_between = match query.get("scheduleDaysBetween").map(str::parse::<i64>) {
        None => return Reply::text(400, "missing required parameter: scheduleDaysBetween"),
        Some(Ok(days)) => days,
        Some(Err(_)) => return Reply::not_found(),
    };
    let incremental = params.unit.incremental || params.unit.subrange_incremental;
    let parallelism = params.parallelism.clone().unwrap_or_else(|| DEFAULT_PARALLELISM.into());
    if incremental && parallelism != "PARALLEL" {
        return Reply::text(
            400,
            "Incremental repairs only supports PARALLEL parallelism mode.",
        );
    }
    let location = |id: Uuid| format!("/repair_schedule/{id}");
    let identical = state
        .schedules
        .iter()
        .find(|s| state.unit(s.unit_id).is_some_and(|unit| unit.same_as(&params.unit)));
    if let Some(existing) = identical {
        return Reply::empty(204).with_location(location(existing.id));
    }
    // `conflictingRepairSchedule`: the same cluster and keyspace with overlapping tables.
    let overlaps = |unit: &RepairUnit| {
        unit.cluster == params.cluster.name
            && unit.keyspace == params.keyspace
            && (unit.tables.is_empty()
                || params.unit.tables.is_empty()
                || !unit.tables.is_disjoint(&params.unit.tables))
    };
    let conflicting = state.schedules.iter().find(|s| state.unit(s.unit_id).is_some_and(overlaps));
    if let Some(existing) = conflicting {
        if existing.days_between == days_between
            && existing.owner == params.owner
            && existing.parallelism == parallelism
        {
            return Reply::empty(204).with_location(location(existing.id));
        }
        if !params.force {
            let tables: Vec<&String> = params.unit.tables.iter().collect();
            return Reply::text(
                409,
                format!(
                    "A repair schedule already exists for cluster \"{}\", keyspace \"{}\", and column families: [{}]",
                    params.cluster.name,
                    params.keyspace,
                    tables.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )
            .with_location(location(existing.id));
        }
    }
    let unit_id = state.unit_for(params.unit);
    let id = state.new_uuid();
    let percent = match query.get("percentUnrepairedThreshold").map(str::parse::<i64>) {
        None => -1,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Reply::not_found(),
    };
    state.schedules.push(RepairSchedule {
        id,
        unit_id,
        owner: params.owner,
        state: ScheduleState::Active,
        days_between,
        next_activation,
        creation: now,
        pause: None,
        segment_count_per_node: params.segment_count_per_node.unwrap_or(0),
        parallelism,
        intensity: params.intensity,
        adaptive: query.get("adaptive").is_some_and(|a| a.eq_ignore_ascii_case("true")),
        percent_unrepaired_threshold: percent,
        runs: Vec::new(),
    });
    Reply::empty(201).with_location(location(id))
}

/// `RepairScheduleResource.modifyState`.
fn modify_schedule_state(
    state: &mut ReaperState,
    schedule_id: Uuid,
    wanted: Option<&str>,
    now: i64,
) -> Reply {
    let Some(wanted) = wanted else {
        return Reply::text(400, "\"state\" argument missing");
    };
    let Some(new_state) = ScheduleState::parse(wanted) else {
        return Reply::text(400, format!("invalid \"state\" argument: {wanted}"));
    };
    let Some(schedule) = state.schedule_mut(schedule_id) else {
        return Reply::text(
            404,
            format!("repair schedule with id {schedule_id} not found"),
        );
    };
    let location = format!("/repair_schedule/{schedule_id}");
    if schedule.state == new_state {
        return Reply::empty(204).with_location(location);
    }
    schedule.state = new_state;
    schedule.pause = (new_state == ScheduleState::Paused).then_some(now);
    Reply::empty(200).with_location(location)
}

/// `RepairScheduleResource.deleteRepairSchedule`.
fn delete_schedule(state: &mut ReaperState, id: &str, query: &Params) -> Reply {
    let Some(owner) = query.get("owner") else {
        return Reply::text(400, "required query parameter \"owner\" is missing");
    };
    let Some(schedule_id) = parse_uuid(id) else {
        return Reply::not_found();
    };
    let Some(schedule) = state.schedule(schedule_id) else {
        return Reply::text(
            404,
            format!("Repair schedule with id \"{schedule_id}\" not found"),
        );
    };
    if schedule.state == ScheduleState::Active {
        return Reply::text(
            409,
            format!("Repair schedule {schedule_id} currently running. Must be first stopped"),
        );
    }
    if !schedule.owner.eq_ignore_ascii_case(owner) {
        return Reply::text(
            409,
            format!("Repair schedule {schedule_id} is not owned by {owner}"),
        );
    }
    state.schedules.retain(|s| s.id != schedule_id);
    Reply::empty(202)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_reaper_and_cass_operator() {
        assert_eq!(symbolic_name("Demo Cluster"), "democluster");
        assert_eq!(symbolic_name("demo_1.x"), "demo_1.x");
        assert_eq!(clean_for_kubernetes("Demo_Cluster"), "demo-cluster");
        assert_eq!(clean_for_kubernetes("dc1"), "dc1");
    }

    #[test]
    fn trigger_times_read_with_or_without_an_offset() {
        assert_eq!(
            parse_trigger_time("2024-01-01T00:00:00"),
            Some(crate::cassandra::DETERMINISTIC_EPOCH_MILLIS)
        );
        assert_eq!(
            parse_trigger_time("2024-01-01T01:00:00+01:00"),
            Some(crate::cassandra::DETERMINISTIC_EPOCH_MILLIS)
        );
        assert_eq!(parse_trigger_time("tomorrow"), None);
    }
}
