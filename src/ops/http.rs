//! The operator's HTTP server: `/metrics` (OpenMetrics text), `/healthz` (the process answers
//! and no controller failed) and `/readyz` (see [`super::health`]).

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tracing::{info, warn};

/// The content type of OpenMetrics text, as Prometheus negotiates it.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
#[error("binding the HTTP server on {addr}: {source}")]
pub struct BindError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// Binds `addr` (port 0 picks a free port) and serves until `shutdown` resolves. Returns the
/// bound address and the serving future; the address is logged as
/// `http server listening addr=...`.
pub async fn bind(
    addr: SocketAddr,
    ops: super::Ops,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl Future<Output = ()> + Send), BindError> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|source| BindError { addr, source })?;
    let bound = listener.local_addr().map_err(|source| BindError { addr, source })?;
    info!(addr = %bound, "http server listening");
    let app = router(ops);
    let serve = async move {
        if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            warn!(error = %error, "http server stopped");
        }
    };
    Ok((bound, serve))
}

fn router(ops: super::Ops) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(ops)
}

async fn metrics(State(ops): State<super::Ops>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        ops.metrics.encode(),
    )
        .into_response()
}

async fn healthz(State(ops): State<super::Ops>) -> Response {
    match ops.health.failed_controller() {
        None => "ok\n".into_response(),
        Some(controller) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the {controller} controller failed; this replica stopped\n"),
        )
            .into_response(),
    }
}

async fn readyz(State(ops): State<super::Ops>) -> Response {
    let readiness = ops.health.readiness();
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::to_string(&readiness).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
