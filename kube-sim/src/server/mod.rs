//! The HTTP side of one cluster: TLS connections, authentication (client certificate or bearer
//! token), fault injection, and the dispatch of discovery, OpenAPI and resource requests.

pub mod media;
mod protobuf;
mod proxy;
pub mod query;
mod request;
mod resources;
mod service_proxy;
mod watch;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::auth::UserInfo;
use crate::cluster::{Cluster, OpenConnection};
use crate::error::ApiError;
use crate::tls::CertificateIdentity;
use crate::{discovery, openapi};

pub type Body = BoxBody<Bytes, Infallible>;

/// Largest request body accepted (kube-apiserver's limit is 3 MiB for most objects).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// A streaming body fed by a channel: watch events, one JSON line per chunk.
pub struct ChannelBody {
    receiver: tokio::sync::mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut().receiver.poll_recv(cx).map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

pub fn full_body(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub fn json_response(status: u16, value: &Value) -> Response<Body> {
    raw_response(
        status,
        "application/json",
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

pub fn raw_response(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full_body(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

pub fn error_response(error: &ApiError) -> Response<Body> {
    let mut status = error.to_status();
    // The generic 404 and 405 bodies carry an empty `details` object.
    if matches!(error.code, 404 | 405)
        && status.get("details").is_none()
        && let Some(object) = status.as_object_mut()
    {
        object.insert("details".into(), json!({}));
    }
    let mut response = json_response(error.code, &status);
    if let Some(seconds) = error.retry_after {
        response.headers_mut().insert("Retry-After", HeaderValue::from(seconds));
    }
    response
}

/// The generic 404 of kube-apiserver for unknown paths and resources.
pub fn generic_not_found() -> ApiError {
    let mut error = ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    );
    error.details_name = None;
    error
}

pub fn method_not_allowed() -> ApiError {
    ApiError::new(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
    )
}

/// Adds `Warning: 299 - "<text>"` headers, one per warning.
pub fn add_warnings(response: &mut Response<Body>, warnings: &[String]) {
    for warning in warnings {
        let escaped = warning.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(value) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            response.headers_mut().append("Warning", value);
        }
    }
}

/// Streams a client may open at once on one HTTP/2 connection: kube-apiserver's default since
/// the rapid-reset fix (golang's client also opens at most 100).
const HTTP2_MAX_STREAMS: u32 = 100;

/// Serves one connection in the protocol TLS negotiated (`http2`: ALPN chose h2); `certificate`
/// is who the client certificate of the connection says the client is.
pub async fn serve_connection<S>(
    cluster: Arc<Cluster>,
    stream: S,
    http2: bool,
    certificate: CertificateIdentity,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let certificate = Arc::new(certificate);
    let service = hyper::service::service_fn(move |request| {
        let cluster = Arc::clone(&cluster);
        let certificate = Arc::clone(&certificate);
        async move { Ok::<_, Infallible>(handle(cluster, &certificate, request).await) }
    });
    let result = if http2 {
        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .max_concurrent_streams(HTTP2_MAX_STREAMS)
            .serve_connection(TokioIo::new(stream), service)
            .await
    } else {
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Injected failure: 500 as a Status, 429 as API Priority and Fairness answers it.
fn fault_response(code: u16) -> Response<Body> {
    if code == 429 {
        let mut response = raw_response(
            429,
            "text/plain; charset=utf-8",
            "Too many requests, please try again later.\n",
        );
        response.headers_mut().insert("Retry-After", HeaderValue::from_static("1"));
        return response;
    }
    let error = ApiError::new(
        code,
        "InternalError",
        "Internal error occurred: injected failure (kube-sim)",
    );
    error_response(&error)
}

fn unauthorized() -> Response<Body> {
    error_response(&ApiError::new(401, "Unauthorized", "Unauthorized"))
}

/// Paths an anonymous client may read, as with kube-apiserver's default anonymous access.
fn is_public_path(path: &str) -> bool {
    matches!(path, "/version" | "/healthz" | "/livez" | "/readyz")
}

/// The user a request comes from, as kube-apiserver's authenticators decide: a verified client
/// certificate, else the bearer token. `Ok(None)` is an anonymous read of a public path; `Err`
/// is the 401 (also for a certificate that does not verify and no token: a failed
/// authenticator is not anonymous).
fn authenticate(
    cluster: &Cluster,
    certificate: &CertificateIdentity,
    headers: &hyper::HeaderMap,
    path: &str,
) -> Result<Option<UserInfo>, Response<Body>> {
    if let CertificateIdentity::User(user) = certificate {
        return Ok(Some(user.clone()));
    }
    match headers.get(hyper::header::AUTHORIZATION) {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .and_then(|token| cluster.authenticate_token(token))
            .map(Some)
            .ok_or_else(unauthorized),
        None if *certificate == CertificateIdentity::None && is_public_path(path) => Ok(None),
        None => Err(unauthorized()),
    }
}

async fn handle(
    cluster: Arc<Cluster>,
    certificate: &CertificateIdentity,
    request: Request<Incoming>,
) -> Response<Body> {
    let (latency, fail) = cluster.take_fault();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(code) = fail {
        return fault_response(code);
    }
    let path = request.uri().path().to_string();
    let user = match authenticate(&cluster, certificate, request.headers(), &path) {
        Ok(user) => user,
        Err(response) => return response,
    };
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return error_response(&ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("Request entity too large: {e}"),
            ));
        }
    };
    let query = query::Query::parse(parts.uri.query());
    let accept =
        parts.headers.get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok()).map(str::to_string);
    let request = request::ApiRequest {
        method: parts.method.clone(),
        query,
        raw_query: parts.uri.query().map(str::to_string),
        accept,
        content_type: parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        user_agent: parts
            .headers
            .get(hyper::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        cookie: parts
            .headers
            .get(hyper::header::COOKIE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        user,
        body,
    };
    if let Some(refused) = rbac_refusal(&cluster, &path, &request) {
        return error_response(&refused);
    }
    match route(&cluster, &path, request).await {
        Ok(response) => response,
        Err(error) => error_response(&error),
    }
}

/// The 403 an API server whose RBAC grants nothing on a resource answers, for the resources
/// the admin API forbids: `<resource>[.<group>] is forbidden: User ... cannot <verb> ...`.
fn rbac_refusal(cluster: &Cluster, path: &str, request: &request::ApiRequest) -> Option<ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let (namespace, resource, name) = match rest {
        ["namespaces", namespace, resource, more @ ..] => {
            (Some(*namespace), *resource, more.first())
        }
        [resource, more @ ..] => (None, *resource, more.first()),
        [] => return None,
    };
    if !cluster.is_forbidden(resource) {
        return None;
    }
    let watch = request.query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (&request.method, name) {
        (&Method::GET, _) if watch => "watch",
        (&Method::GET, Some(_)) => "get",
        (&Method::GET, None) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, Some(_)) => "delete",
        (&Method::DELETE, None) => "deletecollection",
        _ => "get",
    };
    let qualified = match group {
        "" => resource.to_string(),
        group => format!("{resource}.{group}"),
    };
    let scope = match namespace {
        Some(namespace) => format!("in the namespace \"{namespace}\""),
        None => "at the cluster scope".to_string(),
    };
    let subject = match name {
        Some(name) => format!("{qualified} \"{name}\""),
        None => qualified,
    };
    Some(
        ApiError::new(
            403,
            "Forbidden",
            format!(
                "{subject} is forbidden: User \"kube-sim\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
            ),
        )
        .with_details(name.copied().unwrap_or(""), group, resource),
    )
}

async fn route(
    cluster: &Arc<Cluster>,
    path: &str,
    request: request::ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let is_get = request.method == Method::GET;
    match segments.as_slice() {
        ["version"] if is_get => Ok(json_response(200, &discovery::version_info())),
        ["healthz" | "livez" | "readyz"] if is_get => {
            Ok(raw_response(200, "text/plain; charset=utf-8", "ok"))
        }
        ["api"] if is_get => {
            let address = format!("127.0.0.1:{}", cluster.port);
            Ok(discovery_response(
                cluster,
                true,
                request.accept.as_deref(),
                || discovery::core_versions(&address),
            ))
        }
        ["apis"] if is_get => Ok(discovery_response(
            cluster,
            false,
            request.accept.as_deref(),
            || discovery::group_list(&cluster.catalog()),
        )),
        ["api", "v1"] if is_get => discovery::resource_list(&cluster.catalog(), "", "v1")
            .map(|doc| json_response(200, &doc))
            .ok_or_else(generic_not_found),
        ["apis", group] if is_get => discovery::group(&cluster.catalog(), group)
            .map(|doc| json_response(200, &doc))
            .ok_or_else(generic_not_found),
        ["apis", group, version] if is_get => {
            discovery::resource_list(&cluster.catalog(), group, version)
                .map(|doc| json_response(200, &doc))
                .ok_or_else(generic_not_found)
        }
        ["openapi", "v2"] | ["swagger-2.0.0.pb-v1"] if is_get => Ok(raw_response(
            200,
            openapi::OPENAPI_V2_CONTENT_TYPE,
            openapi::OPENAPI_V2_PROTOBUF,
        )),
        ["openapi", "v3"] if is_get => Ok(json_response(200, &openapi::index(&cluster.catalog()))),
        ["openapi", "v3", rest @ ..] if is_get => {
            let (group, version) =
                openapi::parse_index_key(&rest.join("/")).ok_or_else(generic_not_found)?;
            openapi::group_version_document(&cluster.catalog(), &group, &version)
                .map(|doc| json_response(200, &doc))
                .ok_or_else(generic_not_found)
        }
        [
            "api",
            "v1",
            "namespaces",
            namespace,
            "pods",
            pod,
            "proxy",
            ..,
        ] => proxy::handle(cluster, path, namespace, pod, request).await,
        [
            "api",
            "v1",
            "namespaces",
            namespace,
            "services",
            service,
            "proxy",
            ..,
        ] => service_proxy::handle(cluster, path, namespace, service, request).await,
        ["api", "v1", rest @ ..] => resources::handle(cluster, "", "v1", rest, request).await,
        ["apis", group, version, rest @ ..] if !rest.is_empty() => {
            resources::handle(cluster, group, version, rest, request).await
        }
        [
            "version" | "healthz" | "livez" | "readyz" | "api" | "apis" | "openapi",
            ..,
        ] => Err(method_not_allowed()),
        _ => Err(generic_not_found()),
    }
}

fn discovery_response(
    cluster: &Cluster,
    core: bool,
    accept: Option<&str>,
    legacy: impl FnOnce() -> Value,
) -> Response<Body> {
    match discovery::negotiate_aggregated(accept) {
        Some(version) => {
            let doc = discovery::aggregated(&cluster.catalog(), core, version);
            raw_response(
                200,
                &discovery::aggregated_content_type(version),
                serde_json::to_vec(&doc).unwrap_or_default(),
            )
        }
        None => json_response(200, &legacy()),
    }
}

/// `{"kind":"Status","status":"Success",...}` for a completed delete.
pub fn success_status(details: Value) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

/// Serves `cluster` on `listener` (TLS, then HTTP/2 or HTTP/1.1 as ALPN chose) until the cluster
/// is stopped.
pub fn accept(cluster: &Arc<Cluster>, listener: TcpListener) {
    let serving = Arc::clone(cluster);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&cluster.security.tls));
    let task = tokio::spawn(async move {
        // Connections live in this set so that aborting the accept task closes them all.
        let mut connections = JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(cluster = serving.index, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let cluster = Arc::clone(&serving);
            connections.spawn(async move {
                match acceptor.accept(stream).await {
                    Ok(tls_stream) => {
                        let session = tls_stream.get_ref().1;
                        let http2 = session.alpn_protocol() == Some(b"h2");
                        let certificate = cluster
                            .security
                            .client_certificates
                            .identify(session.peer_certificates());
                        let _open = OpenConnection::new(&cluster.connections, http2);
                        serve_connection(cluster, tls_stream, http2, certificate).await
                    }
                    Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                }
            });
        }
    });
    cluster.serve_on(task);
}
