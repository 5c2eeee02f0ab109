//! The pods' proxy subresource, `/api/v1/namespaces/{ns}/pods/{id}/proxy[/{path}]`, where `id` is
//! `name`, `name:port` or `scheme:name:port`, as kube-apiserver's `ProxyREST` and
//! `pod.ResourceLocation` (pkg/registry/core/pod) serve it:
//!
//! - RBAC on `pods/proxy` with the method's verb (GET and HEAD get, POST create, PUT update,
//!   PATCH patch, DELETE delete) and the raw `id` as the name;
//! - 400 `invalid pod request "<id>"` for an id it cannot split, 404 `pods "<name>" not found`,
//!   400 `address not allowed` for a pod without an IP;
//! - without a port, the first port of the pod's containers;
//! - 301 to `.../proxy/` when nothing follows `proxy` (kubernetes#4958);
//! - 503 ServiceUnavailable `error trying to reach service: dial tcp IP:PORT: connect:
//!   connection refused` when nothing listens there, or the transport's error when what listens
//!   does not speak HTTP/1.1; otherwise the pod's answer as it is.
//!
//! What answers is the port's service in the pod network, called in-process, so the proxy
//! works whether or not pods have listeners. One deliberate difference: kube-apiserver refuses
//! addresses that are not global unicast, which would refuse kube-sim's 127.0.0.0/8 pod IPs, so
//! loopback addresses are allowed.

use std::net::IpAddr;
use std::sync::Arc;

use hyper::header::{ACCEPT, CONTENT_TYPE, COOKIE, HeaderValue, LOCATION};
use hyper::{Method, Response};
use serde_json::Value;

use super::request::ApiRequest;
use super::{Body, full_body, generic_not_found, method_not_allowed, raw_response};
use crate::cassandra::PodRef;
use crate::cluster::Cluster;
use crate::error::ApiError;
use crate::pod_network::ProxyReply;

pub(super) async fn handle(
    cluster: &Arc<Cluster>,
    path: &str,
    namespace: &str,
    pod_id: &str,
    request: ApiRequest,
) -> Result<Response<Body>, ApiError> {
    admit(cluster, "pods", namespace, pod_id, &request)?;
    let (scheme, name, port) = split_scheme_name_port(pod_id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid pod request {pod_id:?}")))?;
    let pods = cluster.store.resource("", "pods").ok_or_else(generic_not_found)?;
    let pod = cluster.store.get(&pods, Some(namespace), name)?;
    let port = match port {
        "" => first_container_port(&pod).unwrap_or_default(),
        port => port.to_string(),
    };
    let ip = pod
        .pointer("/status/podIP")
        .and_then(Value::as_str)
        .and_then(|ip| ip.parse::<IpAddr>().ok())
        .filter(is_proxyable)
        .ok_or_else(|| ApiError::bad_request("address not allowed"))?;
    let prefix = format!("/api/v1/namespaces/{namespace}/pods/{pod_id}/proxy");
    let forwarded_path = path.strip_prefix(&prefix).unwrap_or_default();
    let query = request.raw_query.as_deref().map(|q| format!("?{q}")).unwrap_or_default();
    if forwarded_path.is_empty() {
        return Ok(redirect(&format!("{path}/{query}")));
    }
    let port_number = match port.as_str() {
        "" if scheme == "https" => 443,
        "" => 80,
        named => named.parse::<u16>().map_err(|_| {
            transport_failure(&format!("dial tcp: lookup tcp/{named}: unknown port"))
        })?,
    };
    let pod_ref = PodRef::new(&cluster.context, namespace, name);
    let target = std::net::SocketAddr::new(ip, port_number);
    forward(
        cluster,
        pod_ref,
        target,
        scheme,
        &format!("{forwarded_path}{query}"),
        &request,
    )
    .await
}

/// Sends the request to what listens at `target`, the pod's port: its service in the pod
/// network, in-process, over TLS with the `https` scheme (without verifying the pod's
/// certificate, as kube-apiserver's proxy transport does).
pub(super) async fn forward(
    cluster: &Cluster,
    pod_ref: PodRef,
    target: std::net::SocketAddr,
    scheme: &str,
    path_and_query: &str,
    request: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let service = cluster
        .pod_ports
        .service(target.port())
        .filter(|service| service.listens(&cluster.cassandra.lock(), &pod_ref))
        .ok_or_else(|| {
            transport_failure(&format!("dial tcp {target}: connect: connection refused"))
        })?;
    let forwarded = forwarded_request(request, path_and_query)?;
    let reply = match scheme {
        "https" => service.proxy_tls(pod_ref, forwarded),
        _ => service.proxy(pod_ref, forwarded),
    };
    match reply {
        ProxyReply::Response(answer) => {
            let (parts, body) = answer.await.into_parts();
            let mut response = Response::new(full_body(body));
            *response.status_mut() = parts.status;
            *response.headers_mut() = parts.headers;
            Ok(response)
        }
        ProxyReply::Failed(error) => Err(transport_failure(&error)),
    }
}

/// The RBAC verb of a proxied request, as kube-apiserver's request info derives it.
fn proxy_verb(method: &Method) -> Option<&'static str> {
    Some(match *method {
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => return None,
    })
}

/// What kube-apiserver does with a request to the `proxy` subresource of `resource` (pods or
/// services) before it dials: the verb of the method, RBAC on the id as written in the path,
/// and the request counted.
pub(super) fn admit(
    cluster: &Cluster,
    resource: &str,
    namespace: &str,
    id: &str,
    request: &ApiRequest,
) -> Result<(), ApiError> {
    let verb = proxy_verb(&request.method).ok_or_else(method_not_allowed)?;
    authorize(cluster, verb, resource, namespace, id, request)?;
    cluster.requests.record(
        request.user_agent.as_deref().unwrap_or_default(),
        verb,
        crate::requests::resource_name("", resource, Some("proxy")),
        namespace,
    );
    Ok(())
}

fn authorize(
    cluster: &Cluster,
    verb: &str,
    resource: &str,
    namespace: &str,
    id: &str,
    request: &ApiRequest,
) -> Result<(), ApiError> {
    if !cluster.enforces_rbac() {
        return Ok(());
    }
    let Some(user) = &request.user else {
        return Err(ApiError::new(401, "Unauthorized", "Unauthorized"));
    };
    let attributes = crate::rbac::Attributes {
        verb,
        group: "",
        resource,
        subresource: Some("proxy"),
        namespace: Some(namespace),
        name: Some(id),
    };
    crate::rbac::authorize(&cluster.store, user, &attributes).inspect_err(|refused| {
        cluster.requests.record_refused(&refused.message);
    })
}

/// `net.SplitSchemeNamePort`: `name`, `name:port` or `scheme:name:port`, the scheme `http`,
/// `https` or empty, the name not empty.
pub(super) fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    (!name.is_empty() && matches!(scheme, "" | "http" | "https")).then_some((scheme, name, port))
}

fn first_container_port(pod: &Value) -> Option<String> {
    pod.pointer("/spec/containers")?.as_array()?.iter().find_map(|container| {
        let port = container.pointer("/ports/0/containerPort")?.as_i64()?;
        Some(port.to_string())
    })
}

/// Global unicast, as kube-apiserver requires, or loopback: kube-sim's pod network.
pub(super) fn is_proxyable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified() || v4.is_multicast() || v4.is_link_local() || v4.is_broadcast())
        }
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast() || v6.is_unicast_link_local()),
    }
}

pub(super) fn redirect(location: &str) -> Response<Body> {
    let mut response = raw_response(301, "text/html; charset=utf-8", "");
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// The proxy's transport failed: 503 with Go's error text.
pub(super) fn transport_failure(error: &str) -> ApiError {
    ApiError::new(
        503,
        "ServiceUnavailable",
        format!("error trying to reach service: {error}"),
    )
}

fn forwarded_request(
    request: &ApiRequest,
    path_and_query: &str,
) -> Result<crate::pod_network::PodRequest, ApiError> {
    let uri: hyper::Uri = path_and_query
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid path {path_and_query:?}")))?;
    let mut forwarded = hyper::Request::new(request.body.clone());
    *forwarded.method_mut() = request.method.clone();
    *forwarded.uri_mut() = uri;
    let headers = forwarded.headers_mut();
    for (name, value) in [
        (CONTENT_TYPE, request.content_type.as_deref()),
        (ACCEPT, request.accept.as_deref()),
        (COOKIE, request.cookie.as_deref()),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
    Ok(forwarded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_ids_split_as_kube_apiserver_splits_them() {
        assert_eq!(split_scheme_name_port("p"), Some(("", "p", "")));
        assert_eq!(split_scheme_name_port("p:8080"), Some(("", "p", "8080")));
        assert_eq!(
            split_scheme_name_port("https:p:8443"),
            Some(("https", "p", "8443"))
        );
        assert_eq!(split_scheme_name_port("ftp:p:21"), None);
        assert_eq!(split_scheme_name_port(":8080"), None);
        assert_eq!(split_scheme_name_port("a:b:c:d"), None);
    }
}
