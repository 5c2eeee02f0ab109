//! The services' proxy subresource, `/api/v1/namespaces/{ns}/services/{id}/proxy[/{path}]`,
//! where `id` is `name`, `name:port` or `scheme:name:port`, as kube-apiserver's service
//! `ResourceLocation` (pkg/registry/core/service/storage) resolves it, with the endpoints
//! controller's choice of addresses:
//!
//! - RBAC on `services/proxy` with the method's verb and the raw `id` as the name;
//! - 400 `invalid service request "<id>"`, 404 `services "<name>" not found`;
//! - a port number is the Service port's name (503 `no service port N found for service
//!   "<name>"` when none has it); a name or nothing (the unnamed port) picks the port;
//! - the endpoints are the Ready pods with an IP that the selector picks, the target port a
//!   number or a container port's name; none: 503 `no endpoints available for service
//!   "<name>"` (or `"<id>"` when the port is missing, as kube-apiserver words the two cases);
//! - then the pods' proxy path: 301 to `.../proxy/` when nothing follows, and the pod's
//!   [`crate::pod_network::PortService`] answers.
//!
//! A Service without a selector has no endpoints here (kube-sim keeps no Endpoints objects).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hyper::Response;
use serde_json::{Map, Value};

use super::proxy::{admit, forward, is_proxyable, redirect, split_scheme_name_port};
use super::request::ApiRequest;
use super::{Body, generic_not_found};
use crate::cassandra::PodRef;
use crate::cluster::Cluster;
use crate::error::ApiError;
use crate::store::ListOptions;

pub(super) async fn handle(
    cluster: &Arc<Cluster>,
    path: &str,
    namespace: &str,
    service_id: &str,
    request: ApiRequest,
) -> Result<Response<Body>, ApiError> {
    admit(cluster, "services", namespace, service_id, &request)?;
    let (scheme, name, port) = split_scheme_name_port(service_id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid service request {service_id:?}")))?;
    let services = cluster.store.resource("", "services").ok_or_else(generic_not_found)?;
    let service = cluster.store.get(&services, Some(namespace), name)?;
    let ports: Vec<&Value> = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ports| ports.iter().collect())
        .unwrap_or_default();
    fn port_name_of(port: &Value) -> &str {
        port.get("name").and_then(Value::as_str).unwrap_or("")
    }
    let port_name = match port.parse::<i64>() {
        Ok(number) => {
            let found =
                ports.iter().find(|p| p.get("port").and_then(Value::as_i64) == Some(number));
            match found {
                Some(port) => port_name_of(port).to_string(),
                None => {
                    return Err(unavailable(format!(
                        "no service port {number} found for service {name:?}"
                    )));
                }
            }
        }
        Err(_) => port.to_string(),
    };
    let no_endpoints =
        |what: &str| unavailable(format!("no endpoints available for service {what:?}"));
    let endpoints = ready_pods(cluster, namespace, &service);
    if endpoints.is_empty() {
        return Err(no_endpoints(name));
    }
    let service_port = ports
        .iter()
        .find(|p| port_name_of(p) == port_name)
        .ok_or_else(|| no_endpoints(service_id))?;
    let (pod_name, target) = endpoints
        .iter()
        .find_map(|(pod_name, ip, pod)| {
            let number = target_port(service_port, pod)?;
            Some((pod_name.clone(), SocketAddr::new(*ip, number)))
        })
        .ok_or_else(|| no_endpoints(service_id))?;
    let prefix = format!("/api/v1/namespaces/{namespace}/services/{service_id}/proxy");
    let forwarded_path = path.strip_prefix(&prefix).unwrap_or_default();
    let query = request.raw_query.as_deref().map(|q| format!("?{q}")).unwrap_or_default();
    if forwarded_path.is_empty() {
        return Ok(redirect(&format!("{path}/{query}")));
    }
    let pod_ref = PodRef::new(&cluster.context, namespace, pod_name);
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

fn unavailable(message: String) -> ApiError {
    ApiError::new(503, "ServiceUnavailable", message)
}

/// The Ready pods the Service's selector picks, with their IPs, by name.
fn ready_pods(cluster: &Cluster, namespace: &str, service: &Value) -> Vec<(String, IpAddr, Value)> {
    let Some(selector) = service.pointer("/spec/selector").and_then(Value::as_object) else {
        return Vec::new();
    };
    if selector.is_empty() {
        return Vec::new();
    }
    let Some(pods) = cluster.store.resource("", "pods") else {
        return Vec::new();
    };
    let options = ListOptions {
        label_selector: Some(selector_text(selector)),
        ..ListOptions::default()
    };
    let Ok(list) = cluster.store.list(&pods, Some(namespace), &options) else {
        return Vec::new();
    };
    let mut ready: Vec<(String, IpAddr, Value)> = list
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|pod| pod.pointer("/metadata/deletionTimestamp").is_none())
        .filter(|pod| is_ready(pod))
        .filter_map(|pod| {
            let name = pod.pointer("/metadata/name")?.as_str()?.to_string();
            let ip = pod.pointer("/status/podIP")?.as_str()?.parse::<IpAddr>().ok()?;
            is_proxyable(&ip).then(|| (name, ip, pod.clone()))
        })
        .collect();
    ready.sort_by(|a, b| a.0.cmp(&b.0));
    ready
}

fn selector_text(selector: &Map<String, Value>) -> String {
    selector
        .iter()
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|conditions| {
        conditions.iter().any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Ready")
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
    })
}

/// The Service port's `targetPort` on `pod`: a number, a container port's name, or the port.
fn target_port(service_port: &Value, pod: &Value) -> Option<u16> {
    let number = match service_port.get("targetPort") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(name)) => match name.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => pod.pointer("/spec/containers")?.as_array()?.iter().find_map(|c| {
                c.get("ports")?.as_array()?.iter().find_map(|p| {
                    (p.get("name")?.as_str()? == name).then(|| p.get("containerPort")?.as_u64())?
                })
            }),
        },
        _ => service_port.get("port").and_then(Value::as_u64),
    }?;
    u16::try_from(number).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn target_ports_resolve_by_number_or_container_port_name() {
        let pod =
            json!({"spec": {"containers": [{"ports": [{"name": "app", "containerPort": 8080}]}]}});
        assert_eq!(
            target_port(&json!({"port": 80, "targetPort": "app"}), &pod),
            Some(8080)
        );
        assert_eq!(
            target_port(&json!({"port": 80, "targetPort": 9000}), &pod),
            Some(9000)
        );
        assert_eq!(target_port(&json!({"port": 80}), &pod), Some(80));
        assert_eq!(
            target_port(&json!({"port": 80, "targetPort": "nope"}), &pod),
            None
        );
    }
}
