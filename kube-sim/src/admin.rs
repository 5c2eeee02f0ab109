//! The admin HTTP API (plain HTTP, loopback only) for scripts: list clusters, stop/start,
//! latency, failure injection, dropping watches, token rotation, client certificates, and the
//! Cassandra test endpoints ([`cassandra`]). See README.md.

mod cassandra;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use http_body_util::BodyExt;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::server::{Body, json_response, raw_response};
use crate::sim::Sim;

/// Binds the admin API; refuses anything but a loopback address.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "the admin API listens on loopback addresses only, not {addr}"
    );
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the admin API on {addr}"))
}

/// Serves the admin API until the task is aborted.
pub async fn serve(listener: tokio::net::TcpListener, sim: Sim) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let sim = sim.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let sim = sim.clone();
                async move { Ok::<_, Infallible>(handle(&sim, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn error(status: u16, message: impl Into<String>) -> Response<Body> {
    json_response(status, &json!({"error": message.into()}))
}

async fn handle(sim: &Sim, request: Request<hyper::body::Incoming>) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return error(400, format!("reading the body: {e}")),
    };
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(value) => value,
            Err(e) => return error(400, format!("the body must be JSON: {e}")),
        }
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["clusters"]) => json_response(200, &json!({"clusters": sim.clusters()})),
        (&Method::GET, ["kubeconfig"]) => {
            raw_response(200, "application/yaml", sim.kubeconfig_yaml())
        }
        (&Method::GET, ["clusters", index, "requests"]) => {
            let Ok(index) = index.parse::<usize>() else {
                return error(400, format!("cluster index {index:?} is not a number"));
            };
            match sim.requests(index) {
                Ok(requests) => json_response(200, &json!({"requests": requests})),
                Err(e) => error(404, e.to_string()),
            }
        }
        (&Method::GET, ["clusters", index, "refused"]) => {
            let Ok(index) = index.parse::<usize>() else {
                return error(400, format!("cluster index {index:?} is not a number"));
            };
            match sim.refused_requests(index) {
                Ok(refused) => json_response(200, &json!({"refused": refused})),
                Err(e) => error(404, e.to_string()),
            }
        }
        (_, ["cassandra", rest @ ..]) => cassandra::handle(sim, &method, rest, &input),
        (&Method::POST, ["clusters", index, action]) => {
            let Ok(index) = index.parse::<usize>() else {
                return error(400, format!("cluster index {index:?} is not a number"));
            };
            if index >= sim.cluster_count() {
                return error(404, format!("no cluster {index}"));
            }
            cluster_action(sim, index, action, &input).await
        }
        _ => error(404, format!("no admin route {method} {path}")),
    }
}

async fn cluster_action(sim: &Sim, index: usize, action: &str, input: &Value) -> Response<Body> {
    let result = match action {
        "stop" => sim.stop(index).map(|_| json!({})),
        "start" => sim.start(index).await.map(|_| json!({})),
        "latency" => {
            let Some(ms) = input.get("ms").and_then(Value::as_u64) else {
                return error(400, "expected {\"ms\": <milliseconds>}");
            };
            sim.set_latency(index, Duration::from_millis(ms)).map(|_| json!({"ms": ms}))
        }
        "fail" => {
            let count = input.get("count").and_then(Value::as_u64).unwrap_or(1);
            let code = input.get("code").and_then(Value::as_u64).unwrap_or(500);
            let Ok(count) = u32::try_from(count) else {
                return error(400, "count is too large");
            };
            match sim.fail_next(index, count, code as u16) {
                Ok(()) => Ok(json!({"count": count, "code": code})),
                Err(e) => return error(400, e.to_string()),
            }
        }
        "forbid" => {
            let Some(resource) = input.get("resource").and_then(Value::as_str) else {
                return error(
                    400,
                    "expected {\"resource\": \"<plural>\", \"forbidden\": true|false}",
                );
            };
            let forbidden = input.get("forbidden").and_then(Value::as_bool).unwrap_or(true);
            sim.forbid(index, resource, forbidden)
                .map(|_| json!({"resource": resource, "forbidden": forbidden}))
        }
        "drop-watches" => sim.drop_watches(index).map(|_| json!({})),
        "reset-requests" => sim.reset_requests(index).map(|_| json!({})),
        "rotate-token" => sim.rotate_token(index).map(|token| json!({"token": token})),
        "client-certificate" => {
            let Some(user) = input.get("user").and_then(Value::as_str) else {
                return error(
                    400,
                    "expected {\"user\": <name>, \"groups\": [<group>, ...]}",
                );
            };
            let groups: Vec<&str> = input
                .get("groups")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match sim.issue_client_certificate(user, &groups) {
                Ok(certificate) => sim
                    .client_certificate_kubeconfig_yaml(index, &certificate)
                    .map(|kubeconfig| json!({"kubeconfig": kubeconfig})),
                Err(e) => return error(400, e.to_string()),
            }
        }
        _ => return error(404, format!("no cluster action {action:?}")),
    };
    match result {
        Ok(mut answer) => {
            if let Some(summary) = sim.clusters().into_iter().nth(index) {
                answer["cluster"] = json!(summary);
            }
            json_response(200, &answer)
        }
        Err(e) => error(500, format!("{e:#}")),
    }
}
