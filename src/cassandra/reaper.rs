//! Reaper's REST API: registering a cluster (`PUT /cluster/{name}?seedHost=`, as
//! k8ssandra-operator's reaper-client does) and reading its repair schedules. With the UI's
//! authentication on, a `POST /login` session cookie is sent: kube-apiserver's proxy does not
//! pass an `Authorization` header on. Every call is bounded by [`CALL_TIMEOUT`]; passwords and
//! keys never enter an error message.
//!
//! How a Reaper is reached follows its `spec.encryption` ([`ReaperApi::connect`]):
//!
//! - no `serverCertName`: plain HTTP through the API server's services proxy
//!   (`/api/v1/namespaces/NS/services/<reaper>-service:app/proxy/...`);
//! - `serverCertName`: the same proxy with the `https:` scheme (kube-apiserver speaks TLS to
//!   Reaper, and does not verify its certificate);
//! - `serverCertName` and `clientCertName` (mutual TLS): the proxy cannot present a client
//!   certificate, so Federator connects itself ([`super::direct`]) to the `app` port of a Ready
//!   Reaper pod at its IP, read from the API server of the Reaper's cluster, with the
//!   clientCertName Secret's `tls.crt` and `tls.key`, verifying Reaper's chain against its
//!   `ca.crt`. A pod IP, not the Service's cluster IP: cluster IPs only route inside their own
//!   cluster, while Federator may run in another (the hub reaching a region's Reaper, or the
//!   reverse); pod IPs are what multi-cluster Cassandra already needs routed, as the Management
//!   API's pod-IP transport does.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use serde::Deserialize;

use crate::api::reaper::{ReaperEncryption, RepairScheduleSummary};

use super::direct::{ClientIdentity, DirectClient};

/// The name Reaper keeps a Cassandra cluster under (`Cluster.toSymbolicName`: lowercase,
/// keeping letters, digits, `_`, `-` and `.`); registering under another name is refused.
pub fn cluster_name_in_reaper(cassandra_cluster_name: &str) -> String {
    cassandra_cluster_name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
        .collect()
}

/// How long one call to Reaper may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Schedules listed in a Reaper's status at most.
pub const MAX_LISTED_SCHEDULES: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum ReaperApiError {
    #[error("Reaper did not answer {call} within {CALL_TIMEOUT:?}")]
    Timeout { call: String },
    #[error("{call} did not reach Reaper: {reason}")]
    Unreachable { call: String, reason: String },
    #[error("Reaper refused {call} ({code}): {message}")]
    Refused {
        call: String,
        code: u16,
        message: String,
    },
    #[error("Reaper's answer to {call} is not what its API documents: {reason}")]
    Unexpected { call: String, reason: String },
    /// Reaper requires mutual TLS and the client certificate cannot be read or used.
    #[error("Reaper requires a client certificate (mutual TLS), and {0}")]
    ClientCertificate(String),
}

/// Where a Reaper is and how it serves its REST API.
pub struct ReaperEndpoint<'a> {
    pub namespace: &'a str,
    /// Its Service (`<reaper>-service`, port `app`).
    pub service: &'a str,
    /// The label selector of its pods, for the direct connection of mutual TLS.
    pub pods: &'a str,
    /// Its `spec.encryption`.
    pub encryption: Option<&'a ReaperEncryption>,
}

/// Reaper's REST port in its pods (`app`) when the pod does not name it.
const APP_PORT: u16 = 8080;

/// How calls reach the Reaper.
enum Route {
    /// `client`'s API server, its services proxy at `prefix`.
    ServicesProxy {
        client: kube::Client,
        prefix: String,
    },
    /// A pod's address (`base`, scheme and authority), over mutual TLS.
    Direct {
        client: Box<DirectClient>,
        base: String,
    },
}

/// A Reaper's REST API (see the module's documentation for the ways there).
pub struct ReaperApi {
    route: Route,
    /// `JSESSIONID=...` once logged in.
    session: Option<String>,
}

struct Answer {
    status: u16,
    cookie: Option<String>,
    body: String,
}

impl ReaperApi {
    /// Plain HTTP through the services proxy of the cluster `client` talks to.
    pub fn new(client: kube::Client, namespace: &str, service: &str) -> ReaperApi {
        ReaperApi::through_proxy(client, namespace, service, "")
    }

    fn through_proxy(
        client: kube::Client,
        namespace: &str,
        service: &str,
        scheme: &str,
    ) -> ReaperApi {
        ReaperApi {
            route: Route::ServicesProxy {
                client,
                prefix: format!(
                    "/api/v1/namespaces/{namespace}/services/{scheme}{service}:app/proxy"
                ),
            },
            session: None,
        }
    }

    /// The way to the Reaper at `endpoint` in the cluster `client` talks to, as its encryption
    /// asks: the services proxy (`http` or `https`), or, for mutual TLS, a Ready pod's IP with
    /// the client certificate (read now; a missing Secret or key is a
    /// [`ReaperApiError::ClientCertificate`]).
    pub async fn connect(
        client: &kube::Client,
        endpoint: &ReaperEndpoint<'_>,
    ) -> Result<ReaperApi, ReaperApiError> {
        let encryption = endpoint.encryption;
        if encryption.and_then(ReaperEncryption::server_secret).is_none() {
            return Ok(ReaperApi::new(
                client.clone(),
                endpoint.namespace,
                endpoint.service,
            ));
        }
        let Some(secret) = encryption.and_then(ReaperEncryption::client_secret) else {
            return Ok(ReaperApi::through_proxy(
                client.clone(),
                endpoint.namespace,
                endpoint.service,
                "https:",
            ));
        };
        let identity = client_identity(client, endpoint.namespace, secret).await?;
        let direct = DirectClient::new(Some(&identity), CALL_TIMEOUT)
            .map_err(ReaperApiError::ClientCertificate)?;
        let (ip, port) = ready_pod(client, endpoint).await?;
        Ok(ReaperApi {
            route: Route::Direct {
                base: direct.base_url(&ip, port),
                client: Box::new(direct),
            },
            session: None,
        })
    }

    /// `POST /login`: later calls carry the session cookie.
    pub async fn login(&mut self, username: &str, password: &str) -> Result<(), ReaperApiError> {
        let form = form_urlencoded(&[("username", username), ("password", password)]);
        let answer = self.call("POST", "/login", Some(form)).await?;
        let call = "POST /login";
        if answer.status >= 300 {
            return Err(refused(call, &answer));
        }
        let cookie = answer.cookie.and_then(|c| c.split(';').next().map(str::to_string));
        match cookie {
            Some(cookie) => {
                self.session = Some(cookie);
                Ok(())
            }
            None => Err(ReaperApiError::Unexpected {
                call: call.into(),
                reason: "no session cookie".into(),
            }),
        }
    }

    /// `GET /cluster`: the names of the clusters Reaper repairs.
    pub async fn cluster_names(&self) -> Result<Vec<String>, ReaperApiError> {
        let call = "GET /cluster";
        let answer = self.call("GET", "/cluster", None).await?;
        if answer.status != 200 {
            return Err(refused(call, &answer));
        }
        serde_json::from_str(&answer.body).map_err(|e| ReaperApiError::Unexpected {
            call: call.into(),
            reason: e.to_string(),
        })
    }

    /// `PUT /cluster/{name}?seedHost=`: Reaper finds the cluster through the seed and keeps it
    /// under `name`.
    pub async fn add_cluster(&self, name: &str, seed_host: &str) -> Result<(), ReaperApiError> {
        let path = format!(
            "/cluster/{}?{}",
            percent_encode(name),
            form_urlencoded(&[("seedHost", seed_host)])
        );
        let answer = self.call("PUT", &path, None).await?;
        match answer.status {
            200..=299 => Ok(()),
            _ => Err(refused(&format!("PUT /cluster/{name}"), &answer)),
        }
    }

    /// `GET /repair_schedule`: every cluster's, by cluster and keyspace, at most
    /// [`MAX_LISTED_SCHEDULES`].
    pub async fn all_schedules(&self) -> Result<Vec<RepairScheduleSummary>, ReaperApiError> {
        let call = "GET /repair_schedule";
        let answer = self.call("GET", "/repair_schedule", None).await?;
        if answer.status != 200 {
            return Err(refused(call, &answer));
        }
        let listed: Vec<ScheduleStatus> =
            serde_json::from_str(&answer.body).map_err(|e| ReaperApiError::Unexpected {
                call: call.into(),
                reason: e.to_string(),
            })?;
        Ok(summarize(listed))
    }

    /// `GET /repair_schedule/cluster/{name}`, by keyspace, at most [`MAX_LISTED_SCHEDULES`].
    pub async fn schedules(
        &self,
        cluster: &str,
    ) -> Result<Vec<RepairScheduleSummary>, ReaperApiError> {
        let call = format!("GET /repair_schedule/cluster/{cluster}");
        let path = format!("/repair_schedule/cluster/{}", percent_encode(cluster));
        let answer = self.call("GET", &path, None).await?;
        if answer.status != 200 {
            return Err(refused(&call, &answer));
        }
        let listed: Vec<ScheduleStatus> =
            serde_json::from_str(&answer.body).map_err(|e| ReaperApiError::Unexpected {
                call: call.clone(),
                reason: e.to_string(),
            })?;
        Ok(summarize(listed))
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        form: Option<String>,
    ) -> Result<Answer, ReaperApiError> {
        let call = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let base = match &self.route {
            Route::ServicesProxy { prefix, .. } => prefix,
            Route::Direct { base, .. } => base,
        };
        let mut builder = http::Request::builder().method(method).uri(format!("{base}{path}"));
        if form.is_some() {
            builder = builder.header("content-type", "application/x-www-form-urlencoded");
        }
        if let Some(session) = &self.session {
            builder = builder.header("cookie", session);
        }
        let request = builder.body(form.unwrap_or_default().into_bytes()).map_err(|e| {
            ReaperApiError::Unexpected {
                call: call.clone(),
                reason: e.to_string(),
            }
        })?;
        let unreachable = |reason: String| ReaperApiError::Unreachable {
            call: call.clone(),
            reason,
        };
        let exchange = async {
            let response: http::Response<Bytes> = match &self.route {
                Route::ServicesProxy { client, .. } => {
                    let response = client
                        .send(request.map(kube::client::Body::from))
                        .await
                        .map_err(|e| unreachable(e.to_string()))?;
                    let (parts, body) = response.into_parts();
                    let body = body.collect().await.map_err(|e| unreachable(e.to_string()))?;
                    http::Response::from_parts(parts, body.to_bytes())
                }
                Route::Direct { client, .. } => client.send(request).await.map_err(unreachable)?,
            };
            let cookie = (response.headers().get("set-cookie"))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            Ok(Answer {
                status: response.status().as_u16(),
                cookie,
                body: String::from_utf8_lossy(response.body()).into_owned(),
            })
        };
        tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| Err(ReaperApiError::Timeout { call: call.clone() }))
    }
}

/// The client certificate of Secret `name` in `namespace` (`encryption.clientCertName`).
async fn client_identity(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<ClientIdentity, ReaperApiError> {
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), namespace);
    let call = format!("reading Secret {namespace}/{name}");
    let secret = match tokio::time::timeout(CALL_TIMEOUT, secrets.get_opt(name)).await {
        Err(_) => return Err(ReaperApiError::Timeout { call }),
        Ok(Err(error)) => {
            return Err(ReaperApiError::Unreachable {
                call,
                reason: error.to_string(),
            });
        }
        Ok(Ok(None)) => {
            return Err(ReaperApiError::ClientCertificate(format!(
                "its Secret {name} (spec.encryption.clientCertName) does not exist in namespace {namespace}"
            )));
        }
        Ok(Ok(Some(secret))) => secret,
    };
    let data = secret.data.unwrap_or_default();
    ClientIdentity::from_secret(name, "spec.encryption.clientCertName", &data)
        .map_err(ReaperApiError::ClientCertificate)
}

/// The IP and `app` port of a Ready Reaper pod, not being deleted, the first by name.
async fn ready_pod(
    client: &kube::Client,
    endpoint: &ReaperEndpoint<'_>,
) -> Result<(String, u16), ReaperApiError> {
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), endpoint.namespace);
    let call = format!("listing the pods of {}", endpoint.service);
    let params = kube::api::ListParams::default().labels(endpoint.pods);
    let listed = match tokio::time::timeout(CALL_TIMEOUT, pods.list(&params)).await {
        Err(_) => return Err(ReaperApiError::Timeout { call }),
        Ok(listed) => listed.map_err(|e| ReaperApiError::Unreachable {
            call: call.clone(),
            reason: e.to_string(),
        })?,
    };
    let mut ready: Vec<(String, String, u16)> = (listed.items.iter())
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter(|pod| {
            let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
            conditions.into_iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True")
        })
        .filter_map(|pod| {
            let ip = pod.status.as_ref()?.pod_ip.clone().filter(|ip| !ip.is_empty())?;
            let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
            let port = (containers.iter())
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some("app"))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .unwrap_or(APP_PORT);
            Some((pod.metadata.name.clone().unwrap_or_default(), ip, port))
        })
        .collect();
    ready.sort();
    let (_, ip, port) = ready.into_iter().next().ok_or_else(|| ReaperApiError::Unreachable {
        call: "connecting with mutual TLS".into(),
        reason: format!(
            "no Ready pod of Service {} with an IP to connect to",
            endpoint.service
        ),
    })?;
    Ok((ip, port))
}

/// `username` and `password` of a Secret in `namespace` (the UI user's), bounded by
/// [`CALL_TIMEOUT`]; the error names the Secret, never its values.
pub async fn read_login(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<(String, String), String> {
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), namespace);
    let secret = tokio::time::timeout(CALL_TIMEOUT, secrets.get_opt(name))
        .await
        .map_err(|_| {
            format!("reading Secret {namespace}/{name}: no answer within {CALL_TIMEOUT:?}")
        })?
        .map_err(|e| format!("reading Secret {namespace}/{name}: {e}"))?
        .ok_or_else(|| format!("the UI user's Secret {namespace}/{name} does not exist"))?;
    let field = |key: &str| {
        let data = secret.data.as_ref().and_then(|d| d.get(key));
        data.and_then(|bytes| String::from_utf8(bytes.0.clone()).ok())
            .filter(|value| !value.is_empty())
            .ok_or_else(|| format!("Secret {namespace}/{name} has no {key}"))
    };
    Ok((field("username")?, field("password")?))
}

/// The part of Reaper's `RepairScheduleStatus` shown in status.
#[derive(Deserialize)]
struct ScheduleStatus {
    #[serde(default)]
    cluster_name: String,
    #[serde(default)]
    keyspace_name: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    next_activation: Option<String>,
    #[serde(default)]
    scheduled_days_between: Option<i64>,
}

fn summarize(mut listed: Vec<ScheduleStatus>) -> Vec<RepairScheduleSummary> {
    listed.sort_by(|a, b| {
        let key = |s: &ScheduleStatus| {
            (
                s.cluster_name.clone(),
                s.keyspace_name.clone(),
                s.owner.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    listed
        .into_iter()
        .take(MAX_LISTED_SCHEDULES)
        .map(|s| RepairScheduleSummary {
            cluster: Some(s.cluster_name).filter(|c| !c.is_empty()),
            keyspace: s.keyspace_name,
            state: s.state,
            owner: s.owner,
            next_activation: s.next_activation,
            days_between: s.scheduled_days_between,
        })
        .collect()
}

/// A refusal in Reaper's words, or the API server's when the proxy answered (a JSON Status);
/// 401 and 403 say how to fix the login.
fn refused(call: &str, answer: &Answer) -> ReaperApiError {
    let status: Option<kube::core::Status> = serde_json::from_str(&answer.body).ok();
    let mut message = status
        .map(|s| s.message)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| answer.body.chars().take(300).collect());
    if matches!(answer.status, 401 | 403) && call.ends_with("/login") {
        message.push_str(" (check the username and password of the UI user's Secret)");
    }
    ReaperApiError::Refused {
        call: call.into(),
        code: answer.status,
        message,
    }
}

fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// A path segment: everything but RFC 3986's unreserved characters percent-encoded.
fn percent_encode(text: &str) -> String {
    const NOT_UNRESERVED: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    percent_encoding::utf8_percent_encode(text, NOT_UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_names_are_percent_encoded() {
        assert_eq!(
            form_urlencoded(&[("username", "r&d"), ("password", "p w=1")]),
            "username=r%26d&password=p+w%3D1"
        );
        assert_eq!(percent_encode("demo_1.x-y"), "demo_1.x-y");
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn schedules_are_listed_by_keyspace_and_bounded() {
        let listed: Vec<ScheduleStatus> = (0..150)
            .rev()
            .map(|i| ScheduleStatus {
                cluster_name: "demo".into(),
                keyspace_name: format!("ks{i:03}"),
                state: "ACTIVE".into(),
                owner: "auto-scheduling".into(),
                next_activation: None,
                scheduled_days_between: Some(7),
            })
            .collect();
        let summary = summarize(listed);
        assert_eq!(summary.len(), MAX_LISTED_SCHEDULES);
        assert_eq!(summary[0].keyspace, "ks000");
        assert_eq!(summary[99].keyspace, "ks099");
    }

    #[test]
    fn refusals_keep_reapers_words_or_the_api_servers() {
        let plain = Answer {
            status: 400,
            cookie: None,
            body: "no cluster demo with seed host x".into(),
        };
        let text = refused("PUT /cluster/demo", &plain).to_string();
        assert!(
            text.contains("(400): no cluster demo with seed host x"),
            "{text}"
        );
        let proxy = Answer {
            status: 503,
            cookie: None,
            body: r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"no endpoints available for service \"r-service\"","code":503}"#.into(),
        };
        let text = refused("GET /cluster", &proxy).to_string();
        assert!(
            text.ends_with("no endpoints available for service \"r-service\""),
            "{text}"
        );
        let login = Answer {
            status: 403,
            cookie: None,
            body: "Invalid credentials combination for user: admin".into(),
        };
        let text = refused("POST /login", &login).to_string();
        assert!(text.contains("check the username and password"), "{text}");
    }
}
