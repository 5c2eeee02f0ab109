//! A client of the Management API (the agent beside Cassandra in every cass-operator pod,
//! port 8080), reached one of two ways ([`Transport`]):
//!
//! - through the region's API server: the pod proxy subresource
//!   (`/api/v1/namespaces/NS/pods/POD:8080/proxy/...`), the default. It works wherever Federator
//!   reaches a region's API server, but it cannot present a client certificate;
//! - at the pod's IP, as k8ssandra-operator does: it needs a route from the hub to every pod of
//!   every region, and it is the only way to a Management API that requires mutual TLS
//!   (`managementApiAuth.manual`): HTTPS with the client certificate of the datacenter's
//!   `clientSecretName` Secret, the server's chain verified against that Secret's `ca.crt`.
//!
//! Every call is bounded: by the region client's request timeout, or the given one.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

pub use super::direct::ClientIdentity;
use super::direct::DirectClient;
use super::replication::ReportedReplication;

/// How Federator reaches the pods' Management API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// Through the region's API server (`pods/proxy`): no route to the pods needed.
    #[default]
    PodProxy,
    /// At the pod's IP, port 8080: needs a route from the hub to every pod; required for
    /// `managementApiAuth.manual` (mutual TLS).
    PodIp,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::PodProxy => "pod-proxy",
            Transport::PodIp => "pod-ip",
        })
    }
}

/// How a controller calls the Management API: the transport, and the bound of each call at a
/// pod IP (through the pod proxy, the region client's own timeout applies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub transport: Transport,
    pub timeout: Duration,
}

/// The Management API's port in cass-operator's pods.
pub const MANAGEMENT_PORT: u16 = 8080;

/// One pod's Management API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodEndpoint {
    pub namespace: String,
    pub pod: String,
    /// Its IP as cass-operator reports it (`status.nodeStatuses`), for [`Transport::PodIp`].
    pub ip: Option<String>,
}

impl std::fmt::Display for PodEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.pod)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    /// The API server could not reach the pod, or did not answer in time.
    #[error("the Management API of pod {pod} cannot be reached: {source}")]
    Unreachable {
        pod: String,
        #[source]
        source: kube::Error,
    },
    /// The region refuses Federator the pod proxy (`pods/proxy` in its role).
    #[error("the region refuses the pod proxy of {pod}: {message}")]
    Forbidden { pod: String, message: String },
    /// The pod's IP could not be reached directly, or did not answer in time.
    #[error("the Management API of pod {pod} cannot be reached at its IP: {reason}")]
    Connection { pod: String, reason: String },
    /// The call cannot be made as configured (no client certificate, mutual TLS through the pod
    /// proxy, no pod IP).
    #[error("the Management API of pod {pod} cannot be called: {reason}")]
    Unusable { pod: String, reason: String },
    /// The Management API answered with an error.
    #[error("the Management API of pod {pod} answered {code}: {message}")]
    Refused {
        pod: String,
        code: u16,
        message: String,
    },
    /// An answer that is not what the Management API's specification gives.
    #[error("the Management API of pod {pod} gave an unexpected answer: {reason}")]
    Unexpected { pod: String, reason: String },
}

impl ManagementError {
    /// Whether the failure is worth trying at another pod (this one is down or busy), rather
    /// than an answer every pod would give.
    pub fn try_elsewhere(&self) -> bool {
        match self {
            ManagementError::Unreachable { .. }
            | ManagementError::Connection { .. }
            | ManagementError::Unusable { .. } => true,
            ManagementError::Refused { code, .. } => *code >= 500,
            ManagementError::Forbidden { .. } | ManagementError::Unexpected { .. } => false,
        }
    }
}

/// `CreateOrAlterKeyspaceRequest` of the Management API.
#[derive(Serialize)]
struct KeyspaceRequest<'a> {
    keyspace_name: &'a str,
    replication_settings: Vec<ReplicationSetting<'a>>,
}

#[derive(Serialize)]
struct ReplicationSetting<'a> {
    dc_name: &'a str,
    replication_factor: u32,
}

/// How calls reach the pods.
#[derive(Clone)]
enum Route {
    PodProxy(kube::Client),
    PodIp(Box<DirectClient>),
}

/// The Management API of the pods of one region.
#[derive(Clone)]
pub struct ManagementApi {
    route: Route,
}

impl ManagementApi {
    /// Calls go through `region`'s API server (its pod proxy).
    pub fn through_pod_proxy(region: kube::Client) -> ManagementApi {
        ManagementApi {
            route: Route::PodProxy(region),
        }
    }

    /// Calls go to each pod's IP: HTTPS with `identity` (mutual TLS), else plain HTTP as the
    /// agent serves without `managementApiAuth.manual`; each bounded by `timeout`.
    pub fn at_pod_ips(
        identity: Option<&ClientIdentity>,
        timeout: Duration,
    ) -> Result<ManagementApi, String> {
        Ok(ManagementApi {
            route: Route::PodIp(Box::new(DirectClient::new(identity, timeout)?)),
        })
    }

    /// `GET /api/v0/ops/keyspace`: every keyspace's name.
    pub async fn keyspaces(&self, pod: &PodEndpoint) -> Result<Vec<String>, ManagementError> {
        let request = http::Request::get(self.url(pod, "/api/v0/ops/keyspace")).body(Vec::new());
        let body = self.send(pod, request).await?;
        serde_json::from_str(&body).map_err(|e| ManagementError::Unexpected {
            pod: pod.to_string(),
            reason: format!("the keyspace list is not a list of names: {e}"),
        })
    }

    /// `GET /api/v0/ops/keyspace/replication`: the keyspace's replication, `None` when the
    /// keyspace does not exist.
    pub async fn keyspace_replication(
        &self,
        pod: &PodEndpoint,
        keyspace: &str,
    ) -> Result<Option<ReportedReplication>, ManagementError> {
        let path = format!("/api/v0/ops/keyspace/replication?keyspaceName={keyspace}");
        let request = http::Request::get(self.url(pod, &path)).body(Vec::new());
        match self.send(pod, request).await {
            Ok(body) => {
                serde_json::from_str(&body).map(Some).map_err(|e| ManagementError::Unexpected {
                    pod: pod.to_string(),
                    reason: format!("replication of {keyspace} is not a map of strings: {e}"),
                })
            }
            Err(ManagementError::Refused { code: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `POST /api/v0/ops/keyspace/create` (IF NOT EXISTS): NetworkTopologyStrategy with these
    /// replicas.
    pub async fn create_keyspace(
        &self,
        pod: &PodEndpoint,
        keyspace: &str,
        replicas: &BTreeMap<String, u32>,
    ) -> Result<(), ManagementError> {
        self.keyspace_request(pod, "/api/v0/ops/keyspace/create", keyspace, replicas).await
    }

    /// `POST /api/v0/ops/keyspace/alter`: NetworkTopologyStrategy with these replicas.
    pub async fn alter_keyspace(
        &self,
        pod: &PodEndpoint,
        keyspace: &str,
        replicas: &BTreeMap<String, u32>,
    ) -> Result<(), ManagementError> {
        self.keyspace_request(pod, "/api/v0/ops/keyspace/alter", keyspace, replicas).await
    }

    async fn keyspace_request(
        &self,
        pod: &PodEndpoint,
        path: &str,
        keyspace: &str,
        replicas: &BTreeMap<String, u32>,
    ) -> Result<(), ManagementError> {
        let body = KeyspaceRequest {
            keyspace_name: keyspace,
            replication_settings: replicas
                .iter()
                .map(|(dc, n)| ReplicationSetting {
                    dc_name: dc,
                    replication_factor: *n,
                })
                .collect(),
        };
        let body = serde_json::to_vec(&body).map_err(|e| ManagementError::Unexpected {
            pod: pod.to_string(),
            reason: e.to_string(),
        })?;
        let request = http::Request::post(self.url(pod, path))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send(pod, request).await.map(drop)
    }

    fn url(&self, pod: &PodEndpoint, path: &str) -> String {
        match &self.route {
            Route::PodProxy(_) => format!(
                "/api/v1/namespaces/{}/pods/{}:{MANAGEMENT_PORT}/proxy{path}",
                pod.namespace, pod.pod
            ),
            Route::PodIp(client) => {
                let ip = pod.ip.as_deref().unwrap_or_default();
                format!("{}{path}", client.base_url(ip, MANAGEMENT_PORT))
            }
        }
    }

    async fn send(
        &self,
        pod: &PodEndpoint,
        request: Result<http::Request<Vec<u8>>, http::Error>,
    ) -> Result<String, ManagementError> {
        let request = request.map_err(|e| ManagementError::Unexpected {
            pod: pod.to_string(),
            reason: e.to_string(),
        })?;
        match &self.route {
            Route::PodProxy(region) => {
                region.request_text(request).await.map_err(|error| classify(pod, error))
            }
            Route::PodIp(client) => {
                if pod.ip.as_deref().is_none_or(str::is_empty) {
                    return Err(ManagementError::Unusable {
                        pod: pod.to_string(),
                        reason: "cass-operator reports no IP for it yet".into(),
                    });
                }
                send_direct(client, pod, request).await
            }
        }
    }
}

async fn send_direct(
    client: &DirectClient,
    pod: &PodEndpoint,
    request: http::Request<Vec<u8>>,
) -> Result<String, ManagementError> {
    let response = client.send(request).await.map_err(|reason| ManagementError::Connection {
        pod: pod.to_string(),
        reason,
    })?;
    let status = response.status();
    let text = String::from_utf8_lossy(response.body()).into_owned();
    match status.is_success() {
        true => Ok(text),
        false => Err(ManagementError::Refused {
            pod: pod.to_string(),
            code: status.as_u16(),
            message: text,
        }),
    }
}

/// The API server's own refusals (a JSON Status) and its failures to reach the pod (502, 503)
/// are told apart from the Management API's answers (plain text).
fn classify(pod: &PodEndpoint, error: kube::Error) -> ManagementError {
    let pod = pod.to_string();
    match error {
        kube::Error::Api(status) if status.code == 401 || status.code == 403 => {
            ManagementError::Forbidden {
                pod,
                message: status.message,
            }
        }
        kube::Error::Api(status) if matches!(status.code, 502..=504) => {
            ManagementError::Unreachable {
                pod,
                source: kube::Error::Api(status),
            }
        }
        kube::Error::Api(status) => ManagementError::Refused {
            pod,
            code: status.code,
            message: status.message,
        },
        source => ManagementError::Unreachable { pod, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure(message, "").with_code(code).boxed())
    }

    fn pod() -> PodEndpoint {
        PodEndpoint {
            namespace: "ns".into(),
            pod: "demo-dc1-r1-sts-0".into(),
            ip: Some("10.0.0.7".into()),
        }
    }

    #[test]
    fn the_api_servers_refusals_and_the_agents_answers_are_told_apart() {
        assert!(matches!(
            classify(&pod(), status(403, "pods/proxy forbidden")),
            ManagementError::Forbidden { .. }
        ));
        let unreachable = classify(&pod(), status(503, "no endpoints"));
        assert!(matches!(unreachable, ManagementError::Unreachable { .. }));
        assert!(unreachable.try_elsewhere());
        let refused = classify(&pod(), status(400, "Altering Keyspace failed."));
        assert!(matches!(
            refused,
            ManagementError::Refused { code: 400, .. }
        ));
        assert!(!refused.try_elsewhere());
        assert!(classify(&pod(), status(500, "busy")).try_elsewhere());
    }

    #[test]
    fn the_alter_body_is_the_agents_request() {
        let body = KeyspaceRequest {
            keyspace_name: "system_auth",
            replication_settings: vec![ReplicationSetting {
                dc_name: "dc1",
                replication_factor: 3,
            }],
        };
        let json = serde_json::to_value(&body).ok();
        assert_eq!(
            json,
            Some(serde_json::json!({"keyspace_name": "system_auth",
                "replication_settings": [{"dc_name": "dc1", "replication_factor": 3}]}))
        );
    }
}
