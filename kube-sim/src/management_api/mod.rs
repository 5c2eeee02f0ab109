//! A stand-in for the Management API (k8ssandra/management-api-for-apache-cassandra), the HTTP
//! agent every Cassandra pod runs on port 8080, answering from the shared Cassandra model.
//!
//! It serves the paths of the agent's OpenAPI document (`management-api-server/doc/openapi.json`)
//! with the bodies and status codes its JAX-RS resources
//! (`management-api-server/src/main/java/com/datastax/mgmtapi/resources/`) give: text/plain
//! `OK` for most operations, job ids for the asynchronous v1 operations (202), `Entity.json`
//! wrappers for `metadata/endpoints` and friends, 400s with the resources' own words, 500 with
//! the exception's message when an operation fails, an empty 404 for an unknown path and 405 for
//! a known path with another method.
//!
//! A node whose Cassandra process is not running answers as the agent does while its CQL
//! connection to Cassandra is down: liveness OK (the agent itself runs), everything that needs
//! Cassandra 500 `Internal connection to Cassandra closed`; `lifecycle/start` starts it. The
//! node's [`ManagementFault`](crate::cassandra::ManagementFault) delays every answer and/or
//! replaces it with its status. Jobs run by the model's clock: every request first runs the
//! jobs that are due ([`CassandraModel::poll_jobs`]), as the agent's executor would have.

mod keyspaces;
mod metadata;
mod node;
mod reply;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use serde_json::{Map, Value};
use tokio::net::TcpStream;

use crate::cassandra::{CassandraModel, NodeOperation, PodRef, SharedModel};
use crate::pod_network::{PodRequest, PodResponse, PortService, ProxyReply, ServiceFuture};
use crate::server::query::Query;
use reply::{Answer, Reply};

/// The port the agent listens on (cass-operator's `DefaultMgmtApiPort`).
pub const PORT: u16 = 8080;

/// The body of an answer a [`ManagementFault`](crate::cassandra::ManagementFault) replaces.
const INJECTED_FAILURE: &str = "injected failure (kube-sim)";

/// The Management API of every pod that is a node of the model, as a port service.
pub struct ManagementApi {
    model: SharedModel,
}

impl ManagementApi {
    pub fn new(model: SharedModel) -> Arc<ManagementApi> {
        Arc::new(ManagementApi { model })
    }
}

impl PortService for ManagementApi {
    fn listens(&self, model: &CassandraModel, pod: &PodRef) -> bool {
        model.node(pod).is_ok()
    }

    /// The API server's proxy speaks plain HTTP to the pod: an agent serving mutual TLS answers
    /// it with a TLS alert, which the proxy cannot read as HTTP.
    fn proxy(&self, pod: PodRef, request: PodRequest) -> ProxyReply {
        if self.model.lock().node(&pod).is_ok_and(|node| node.management_tls.is_some()) {
            return ProxyReply::Failed(
                "net/http: HTTP/1.x transport connection broken: malformed HTTP response \"\\x15\\x03\\x03\\x00\\x02\\x02P\"".into(),
            );
        }
        let model = Arc::clone(&self.model);
        ProxyReply::Response(Box::pin(async move { handle(&model, &pod, request).await }))
    }

    /// `https:` through the proxy: a plain agent answers the handshake with HTTP; one with
    /// mutual TLS refuses the proxy, which presents no certificate of its CA.
    fn proxy_tls(&self, pod: PodRef, _request: PodRequest) -> ProxyReply {
        match self.model.lock().node(&pod).is_ok_and(|node| node.management_tls.is_some()) {
            true => ProxyReply::Failed("remote error: tls: certificate required".into()),
            false => {
                ProxyReply::Failed("tls: first record does not look like a TLS handshake".into())
            }
        }
    }

    /// HTTP/1.1: plain, or with `managementApiAuth.manual` over TLS that requires a client
    /// certificate signed by the server Secret's `ca.crt` (the agent's `--tlscacert`).
    fn serve_connection(&self, pod: PodRef, stream: TcpStream) -> ServiceFuture<()> {
        let model = Arc::clone(&self.model);
        let tls = model.lock().node(&pod).ok().and_then(|node| node.management_tls.clone());
        let answer = move |request| {
            let model = Arc::clone(&model);
            let pod = pod.clone();
            async move { handle(&model, &pod, request).await }
        };
        let Some(tls) = tls else {
            return Box::pin(crate::pod_network::serve_http1(
                stream,
                "Management API",
                answer,
            ));
        };
        Box::pin(async move {
            let config = match crate::tls::mutual_tls_server_config(
                &tls.certificate_pem,
                &tls.key_pem,
                &tls.ca_pem,
            ) {
                Ok(config) => config,
                Err(error) => {
                    tracing::debug!(%error, "the Management API's TLS cannot be set up");
                    return;
                }
            };
            crate::pod_network::serve_tls_http1(stream, "Management API", config, answer).await
        })
    }
}

/// Answers one request to the Management API of `pod`, from the model.
pub async fn handle(model: &SharedModel, pod: &PodRef, request: PodRequest) -> PodResponse {
    let fault = model.lock().node(pod).map(|node| node.management_fault.clone());
    let Ok(fault) = fault else {
        // The pod's node went between dispatch and now: as if Cassandra were gone.
        return Reply::cassandra_down().into_response();
    };
    if fault.delay_millis > 0 {
        tokio::time::sleep(Duration::from_millis(fault.delay_millis)).await;
    }
    if let Some(status) = fault.fail_status {
        return Reply::text(status, INJECTED_FAILURE).into_response();
    }
    let (parts, body) = request.into_parts();
    let Some(route) = ROUTES.iter().find(|route| route.path == parts.uri.path()) else {
        return Reply::not_found().into_response();
    };
    let Some(verb) = Verb::of(&parts.method) else {
        return Reply::empty(405).into_response();
    };
    let Some(handler) = route.handler(verb) else {
        return Reply::empty(405).into_response();
    };
    let mut model = model.lock();
    model.poll_jobs();
    let Some(node) = NodeFacts::of(&model, pod) else {
        return Reply::cassandra_down().into_response();
    };
    let mut call = Call {
        model: &mut model,
        pod,
        node,
        query: Query::parse(parts.uri.query()),
        content_type: parts
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string),
        body,
    };
    handler(&mut call).unwrap_or_else(|early| early).into_response()
}

/// What a handler knows of the node it runs on.
#[derive(Debug, Clone)]
struct NodeFacts {
    pub cluster: String,
    pub datacenter: String,
    pub ip: String,
    pub running: bool,
    pub server_version: String,
}

impl NodeFacts {
    fn of(model: &CassandraModel, pod: &PodRef) -> Option<NodeFacts> {
        let node = model.node(pod).ok()?;
        Some(NodeFacts {
            cluster: model.cluster_of(pod).ok()?.to_string(),
            datacenter: node.datacenter.clone(),
            ip: node.ip.clone(),
            running: node.running,
            server_version: node.server_version.clone(),
        })
    }
}

/// One request on its way through a handler, the model locked.
struct Call<'a> {
    pub model: &'a mut CassandraModel,
    pub pod: &'a PodRef,
    pub node: NodeFacts,
    pub query: Query,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl Call<'_> {
    /// Fails as the agent does when it cannot reach Cassandra over CQL: call it where the
    /// resource first talks to Cassandra, after its own validation.
    fn cassandra(&self) -> Result<(), Reply> {
        if self.node.running {
            Ok(())
        } else {
            Err(Reply::cassandra_down())
        }
    }

    /// The JSON body of a resource that consumes `application/json`.
    fn json_body(&self) -> Result<Option<Map<String, Value>>, Reply> {
        reply::json_body(self.content_type.as_deref(), &self.body)
    }

    /// Submits a job (the asynchronous v1 operations): its id.
    fn submit(&mut self, operation: NodeOperation) -> Result<String, Reply> {
        Ok(self.model.submit_job(self.pod, operation)?)
    }

    /// Runs a job to its end now (the blocking v0 operations wait for theirs): its id, or the
    /// 500 of the operation's error.
    fn run_now(&mut self, operation: NodeOperation) -> Result<String, Reply> {
        let job = self.model.run_job_now(self.pod, operation)?;
        match job.error {
            Some(error) => Err(Reply::text(500, error)),
            None => Ok(job.id),
        }
    }
}

/// Whether an operation's resource waits for its job (v0) or answers with the job id (v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Blocking,
    Async,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Get,
    Post,
    Put,
    Delete,
}

impl Verb {
    /// HEAD is GET without the body, as JAX-RS serves it.
    fn of(method: &Method) -> Option<Verb> {
        match *method {
            Method::GET | Method::HEAD => Some(Verb::Get),
            Method::POST => Some(Verb::Post),
            Method::PUT => Some(Verb::Put),
            Method::DELETE => Some(Verb::Delete),
            _ => None,
        }
    }
}

type Handler = fn(&mut Call<'_>) -> Answer;

struct Route {
    path: &'static str,
    handlers: &'static [(Verb, Handler)],
}

impl Route {
    fn handler(&self, verb: Verb) -> Option<Handler> {
        self.handlers.iter().find(|(v, _)| *v == verb).map(|(_, handler)| *handler)
    }
}

use Verb::{Delete, Get, Post, Put};

/// Every path of the agent's OpenAPI document.
static ROUTES: &[Route] = &[
    // K8OperatorResources
    route("/api/v0/probes/liveness", &[(Get, metadata::liveness)]),
    route("/api/v0/probes/readiness", &[(Get, metadata::readiness)]),
    route(
        "/api/v0/probes/cluster",
        &[(Get, metadata::cluster_consistency)],
    ),
    route("/api/v0/ops/seeds/reload", &[(Post, node::reload_seeds)]),
    route("/api/v0/ops/executor/job", &[(Get, node::job_status)]),
    // MetadataResources
    route(
        "/api/v0/metadata/versions/release",
        &[(Get, metadata::release_version)],
    ),
    route(
        "/api/v0/metadata/endpoints",
        &[(Get, metadata::endpoint_states)],
    ),
    route(
        "/api/v0/metadata/localdc",
        &[(Get, metadata::local_datacenter)],
    ),
    route(
        "/api/v0/metadata/versions/features",
        &[(Get, metadata::features)],
    ),
    // LifecycleResources
    route("/api/v0/lifecycle/start", &[(Post, node::start)]),
    route("/api/v0/lifecycle/stop", &[(Post, node::stop)]),
    route("/api/v0/lifecycle/configure", &[(Post, node::configure)]),
    route("/api/v0/lifecycle/pid", &[(Get, node::pid)]),
    // AuthResources, v1 AuthResources
    route(
        "/api/v0/ops/auth/role",
        &[
            (Get, node::list_roles),
            (Post, node::create_role),
            (Delete, node::drop_role),
        ],
    ),
    route(
        "/api/v1/ops/auth/identity_to_role",
        &[
            (Post, node::add_identity_to_role),
            (Delete, node::delete_identity_to_role),
        ],
    ),
    // KeyspaceOpsResources, v1 KeyspaceOpsResources
    route("/api/v0/ops/keyspace", &[(Get, keyspaces::list)]),
    route("/api/v0/ops/keyspace/create", &[(Post, keyspaces::create)]),
    route("/api/v0/ops/keyspace/alter", &[(Post, keyspaces::alter)]),
    route(
        "/api/v0/ops/keyspace/replication",
        &[(Get, keyspaces::replication)],
    ),
    route(
        "/api/v0/ops/keyspace/refresh",
        &[(Post, keyspaces::refresh)],
    ),
    route(
        "/api/v0/ops/keyspace/cleanup",
        &[(Post, keyspaces::cleanup_blocking)],
    ),
    route(
        "/api/v1/ops/keyspace/cleanup",
        &[(Post, keyspaces::cleanup)],
    ),
    // TableOpsResources, v1 TableOpsResources
    route("/api/v0/ops/tables", &[(Get, keyspaces::table_names)]),
    route("/api/v1/ops/tables", &[(Get, keyspaces::tables)]),
    route(
        "/api/v0/ops/tables/create",
        &[(Post, keyspaces::create_table)],
    ),
    route(
        "/api/v0/ops/tables/flush",
        &[(Post, keyspaces::flush_blocking)],
    ),
    route("/api/v1/ops/tables/flush", &[(Post, keyspaces::flush)]),
    route(
        "/api/v0/ops/tables/compact",
        &[(Post, keyspaces::compact_blocking)],
    ),
    route("/api/v1/ops/tables/compact", &[(Post, keyspaces::compact)]),
    route(
        "/api/v1/ops/tables/compactions",
        &[(Get, keyspaces::compactions)],
    ),
    route(
        "/api/v0/ops/tables/garbagecollect",
        &[(Post, keyspaces::garbage_collect_blocking)],
    ),
    route(
        "/api/v1/ops/tables/garbagecollect",
        &[(Post, keyspaces::garbage_collect)],
    ),
    route(
        "/api/v0/ops/tables/scrub",
        &[(Post, keyspaces::scrub_blocking)],
    ),
    route("/api/v1/ops/tables/scrub", &[(Post, keyspaces::scrub)]),
    route(
        "/api/v0/ops/tables/sstables/upgrade",
        &[(Post, keyspaces::upgrade_sstables_blocking)],
    ),
    route(
        "/api/v1/ops/tables/sstables/upgrade",
        &[(Post, keyspaces::upgrade_sstables)],
    ),
    // NodeOpsResources, v1 NodeOpsResources
    route(
        "/api/v0/ops/node/decommission",
        &[(Post, node::decommission_blocking)],
    ),
    route(
        "/api/v1/ops/node/decommission",
        &[(Post, node::decommission)],
    ),
    route("/api/v1/ops/node/rebuild", &[(Post, node::rebuild)]),
    route("/api/v0/ops/node/repair", &[(Post, node::repair_v0)]),
    route("/api/v1/ops/node/repair", &[(Post, node::repair_v1)]),
    route(
        "/api/v1/ops/node/schema/versions",
        &[(Get, metadata::schema_versions)],
    ),
    route("/api/v0/ops/node/drain", &[(Post, node::drain)]),
    route("/api/v0/ops/node/move", &[(Post, node::move_token)]),
    route("/api/v0/ops/node/assassinate", &[(Post, node::assassinate)]),
    route(
        "/api/v0/ops/node/compaction",
        &[(Post, node::set_compaction_throughput)],
    ),
    route("/api/v0/ops/node/logging", &[(Post, node::accept_setting)]),
    route(
        "/api/v0/ops/node/hints/truncate",
        &[(Post, node::accept_setting)],
    ),
    route(
        "/api/v0/ops/node/schema/reset",
        &[(Post, node::accept_setting)],
    ),
    route(
        "/api/v0/ops/node/schema/reload",
        &[(Post, node::accept_setting)],
    ),
    route(
        "/api/v0/ops/node/fullquerylogging",
        &[
            (Get, node::full_query_logging),
            (Post, node::accept_setting),
        ],
    ),
    route(
        "/api/v0/ops/node/streaminfo",
        &[(Get, metadata::stream_info)],
    ),
    route(
        "/api/v0/ops/node/snapshots",
        &[
            (Get, node::snapshot_details),
            (Post, node::take_snapshot),
            (Delete, node::accept_setting),
        ],
    ),
    route(
        "/api/v0/ops/node/search/rebuildIndex",
        &[(Post, node::rebuild_search_index)],
    ),
    route(
        "/api/v0/ops/node/encryption/internode/truststore/reload",
        &[(Post, node::reload_truststore)],
    ),
    // v2 RepairResourcesV2, TokenResourcesV2
    route(
        "/api/v2/repairs",
        &[(Put, node::repair_v2), (Delete, node::cancel_repairs)],
    ),
    route(
        "/api/v2/tokens/rangetoendpoint",
        &[(Get, metadata::range_to_endpoints)],
    ),
];

const fn route(path: &'static str, handlers: &'static [(Verb, Handler)]) -> Route {
    Route { path, handlers }
}
