//! Helpers shared by the integration tests: finding and running the kubectl builds, the
//! CassandraDatacenter resource, waiting for a condition.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use kube::discovery::ApiResource;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// Every kubectl invocation gets this long at most.
pub const KUBECTL_TIMEOUT: Duration = Duration::from_secs(30);

/// One kubectl build pointed at a kubeconfig, with its own discovery cache.
pub struct Kubectl {
    pub binary: PathBuf,
    pub kubeconfig: PathBuf,
    pub cache_dir: PathBuf,
}

pub struct Outcome {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    pub fn new(binary: PathBuf, kubeconfig: PathBuf, work_dir: &Path) -> Self {
        let name = binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Kubectl {
            binary,
            kubeconfig,
            cache_dir: work_dir.join(format!("cache-{name}")),
        }
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache_dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs kubectl with optional stdin, within [`KUBECTL_TIMEOUT`].
    pub async fn run_with_input(&self, args: &[&str], input: Option<&str>) -> Outcome {
        let mut child = self.command(args).spawn().expect("spawning kubectl");
        let mut stdin = child.stdin.take().expect("kubectl stdin");
        if let Some(text) = input {
            stdin.write_all(text.as_bytes()).await.expect("writing kubectl stdin");
        }
        drop(stdin);
        let output = tokio::time::timeout(KUBECTL_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .expect("waiting for kubectl");
        Outcome {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub async fn run(&self, args: &[&str]) -> Outcome {
        self.run_with_input(args, None).await
    }

    /// Runs and requires success; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        self.ok_with_input(args, None).await
    }

    pub async fn ok_with_input(&self, args: &[&str], input: Option<&str>) -> String {
        let outcome = self.run_with_input(args, input).await;
        assert!(
            outcome.success,
            "{} {args:?} failed:\nstdout: {}\nstderr: {}",
            self.binary.display(),
            outcome.stdout,
            outcome.stderr
        );
        outcome.stdout
    }

    /// Runs and requires failure; returns stderr.
    pub async fn fails(&self, args: &[&str], input: Option<&str>) -> String {
        let outcome = self.run_with_input(args, input).await;
        assert!(
            !outcome.success,
            "{} {args:?} should have failed:\nstdout: {}",
            self.binary.display(),
            outcome.stdout
        );
        outcome.stderr
    }
}

/// A namespaced CRD with a status subresource, printer columns and a validated spec.
pub const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 0, maximum: 10}
              color: {type: string, enum: [red, blue]}
          status:
            type: object
            properties:
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {type: string}
                    status: {type: string}
"#;

/// cass-operator's CassandraDatacenter, for dynamic clients.
pub fn dc_resource() -> ApiResource {
    ApiResource {
        group: "cassandra.datastax.com".into(),
        version: "v1beta1".into(),
        api_version: "cassandra.datastax.com/v1beta1".into(),
        kind: "CassandraDatacenter".into(),
        plural: "cassandradatacenters".into(),
    }
}

/// `probe` until it gives a value, for up to 20 s; the test fails naming `what` otherwise.
pub async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Some(value) = probe().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The `medusa-restore` init container as k8ssandra-operator declares it (Medusa's image, the
/// `demo-medusa` ConfigMap holding medusa.ini), with `env`.
pub fn medusa_restore_container(env: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"name": "medusa-restore", "image": "docker.io/k8ssandra/medusa:0.22.0",
           "env": env, "terminationMessagePolicy": "FallbackToLogsOnError",
           "volumeMounts": [{"name": "demo-medusa", "mountPath": "/etc/medusa"}]})
}

/// One HTTP/1.1 exchange with `address`, as cass-operator's client makes it (the body JSON).
pub async fn http(
    address: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> std::io::Result<(u16, String)> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    let mut request = hyper::Request::builder().method(method).uri(path).header("Host", address);
    if body.is_some() {
        request = request.header("Content-Type", "application/json");
    }
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let request = request.body(Full::new(body)).map_err(std::io::Error::other)?;
    let response = sender.send_request(request).await.map_err(std::io::Error::other)?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.map_err(std::io::Error::other)?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// One HTTPS GET of `address`, presenting `client` (certificate and key PEM) when given,
/// verifying the server's chain against `ca_pem` and its name against `server_name`.
pub async fn https_get(
    address: &str,
    server_name: &str,
    path: &str,
    ca_pem: &str,
    client: Option<&kube_sim::tls::ClientCertificate>,
) -> Result<(u16, String), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match client {
        Some(client) => {
            let chain = CertificateDer::pem_slice_iter(client.certificate_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            let key = PrivateKeyDer::from_pem_slice(client.key_pem.as_bytes())
                .map_err(|e| e.to_string())?;
            builder.with_client_auth_cert(chain, key).map_err(|e| e.to_string())?
        }
        None => builder.with_no_client_auth(),
    };
    let stream = tokio::net::TcpStream::connect(address).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, stream)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("Host", address)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
