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
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Serialize;

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

/// The client certificate a datacenter's `managementApiAuth.manual` names: the `ca.crt`,
/// `tls.crt` and `tls.key` of its `clientSecretName` Secret, as cass-operator reads them.
#[derive(Clone)]
pub struct ClientIdentity {
    secret: String,
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of every log line.
        f.debug_struct("ClientIdentity").field("secret", &self.secret).finish_non_exhaustive()
    }
}

impl ClientIdentity {
    /// From the Secret's data; the error names the key that is missing.
    pub fn from_secret(
        secret: &str,
        data: &BTreeMap<String, k8s_openapi::ByteString>,
    ) -> Result<ClientIdentity, String> {
        let key = |name: &str| {
            data.get(name).map(|value| value.0.clone()).ok_or_else(|| {
                format!("Secret {secret} (managementApiAuth.manual.clientSecretName) has no {name}")
            })
        };
        Ok(ClientIdentity {
            secret: secret.to_string(),
            ca: key("ca.crt")?,
            cert: key("tls.crt")?,
            key: key("tls.key")?,
        })
    }

    /// TLS with this client certificate; the server's chain must lead to `ca.crt`.
    fn tls_config(&self) -> Result<rustls::ClientConfig, String> {
        let unreadable =
            |what: &str, e: &dyn std::fmt::Display| format!("Secret {}: {what}: {e}", self.secret);
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&self.ca) {
            let cert = cert.map_err(|e| unreadable("ca.crt", &e))?;
            roots.add(cert).map_err(|e| unreadable("ca.crt", &e))?;
        }
        if roots.is_empty() {
            return Err(format!(
                "Secret {}: ca.crt holds no certificate",
                self.secret
            ));
        }
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unreadable("tls.crt", &e))?;
        let key =
            PrivateKeyDer::from_pem_slice(&self.key).map_err(|e| unreadable("tls.key", &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain_verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| unreadable("ca.crt", &e))?;
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(chain_verifier)))
            .with_client_auth_cert(chain, key)
            .map_err(|e| unreadable("tls.crt and tls.key", &e))
    }
}

/// Verifies the server's chain against the datacenter's CA, its validity and signatures, but
/// not that it names the pod's IP: Management API certificates name the datacenter's service,
/// and pods change IPs. cass-operator checks the same way.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
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

type DirectClient = HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How calls reach the pods.
#[derive(Clone)]
enum Route {
    PodProxy(kube::Client),
    PodIp {
        client: Box<DirectClient>,
        scheme: &'static str,
        timeout: Duration,
    },
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
        let tls = match identity {
            Some(identity) => identity.tls_config()?,
            // Never used for plain HTTP; the connector wants one.
            None => rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth(),
        };
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = HyperClient::builder(TokioExecutor::new()).build(connector);
        Ok(ManagementApi {
            route: Route::PodIp {
                client: Box::new(client),
                scheme: if identity.is_some() { "https" } else { "http" },
                timeout,
            },
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
            Route::PodIp { scheme, .. } => {
                let ip = pod.ip.as_deref().unwrap_or_default();
                format!("{scheme}://{ip}:{MANAGEMENT_PORT}{path}")
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
            Route::PodIp {
                client, timeout, ..
            } => {
                if pod.ip.as_deref().is_none_or(str::is_empty) {
                    return Err(ManagementError::Unusable {
                        pod: pod.to_string(),
                        reason: "cass-operator reports no IP for it yet".into(),
                    });
                }
                send_direct(client, *timeout, pod, request).await
            }
        }
    }
}

async fn send_direct(
    client: &DirectClient,
    timeout: Duration,
    pod: &PodEndpoint,
    request: http::Request<Vec<u8>>,
) -> Result<String, ManagementError> {
    let connection = |reason: String| ManagementError::Connection {
        pod: pod.to_string(),
        reason,
    };
    let call = async {
        let response = client
            .request(request.map(|body| Full::new(Bytes::from(body))))
            .await
            .map_err(|e| connection(error_chain(&e)))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| connection(error_chain(&e)))?
            .to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        match status.is_success() {
            true => Ok(text),
            false => Err(ManagementError::Refused {
                pod: pod.to_string(),
                code: status.as_u16(),
                message: text,
            }),
        }
    };
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| Err(connection(format!("no answer within {timeout:?}"))))
}

/// An error with its causes (hyper's own words say little: "client error (Connect)").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut words = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        words.push_str(": ");
        words.push_str(&cause.to_string());
        source = cause.source();
    }
    words
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
