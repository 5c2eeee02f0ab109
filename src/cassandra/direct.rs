//! HTTP(S) straight to a pod's address, not through an API server: the Management API at pod
//! IPs and a Reaper that requires mutual TLS both need it, since kube-apiserver's proxy cannot
//! present a client certificate. With a [`ClientIdentity`] the connection is HTTPS with that
//! certificate, and the server's chain is verified against the identity's `ca.crt` (see
//! [`ChainOnly`] for the name); without one it is plain HTTP. Every call is bounded.

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

/// A client certificate from a Secret (`kubernetes.io/tls` with the CA, as cert-manager writes
/// it): its `ca.crt`, `tls.crt` and `tls.key`.
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
    /// From the data of Secret `secret`, which the spec's `field` names; the error names the
    /// Secret, the field and the key that is missing (never a value).
    pub fn from_secret(
        secret: &str,
        field: &str,
        data: &BTreeMap<String, k8s_openapi::ByteString>,
    ) -> Result<ClientIdentity, String> {
        let key = |name: &str| {
            (data.get(name))
                .map(|value| value.0.clone())
                .filter(|value| !value.is_empty())
                .ok_or_else(|| format!("Secret {secret} ({field}) has no {name}"))
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

/// Verifies the server's chain against the identity's CA, its validity and signatures, but
/// not that it names the address dialled: the servers are reached at pod IPs, which change,
/// while their certificates name Services (the Management API's, the datacenter's service;
/// Reaper's, whatever the user's cert-manager Certificate lists). cass-operator and
/// k8ssandra-operator check the same way.
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

/// A client of addresses: HTTPS with the identity it was made with, or plain HTTP.
#[derive(Clone)]
pub struct DirectClient {
    client: HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    scheme: &'static str,
    timeout: Duration,
}

impl DirectClient {
    /// HTTPS with `identity` (mutual TLS), else plain HTTP; each call bounded by `timeout`.
    pub fn new(identity: Option<&ClientIdentity>, timeout: Duration) -> Result<Self, String> {
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
        Ok(DirectClient {
            client: HyperClient::builder(TokioExecutor::new()).build(connector),
            scheme: if identity.is_some() { "https" } else { "http" },
            timeout,
        })
    }

    /// `https://host:port` or `http://host:port`, as the client speaks.
    pub fn base_url(&self, host: &str, port: u16) -> String {
        let host = match host.parse::<std::net::Ipv6Addr>() {
            Ok(_) => format!("[{host}]"),
            Err(_) => host.to_string(),
        };
        format!("{}://{host}:{port}", self.scheme)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One call, its answer read whole; the error says why no answer came (connection, TLS,
    /// or no answer within the timeout), with its causes.
    pub async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Bytes>, String> {
        let call = async {
            let response = self
                .client
                .request(request.map(|body| Full::new(Bytes::from(body))))
                .await
                .map_err(|e| error_chain(&e))?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|e| error_chain(&e))?.to_bytes();
            Ok(http::Response::from_parts(parts, body))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {:?}", self.timeout)))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_key_is_named_with_the_secret_and_its_field_never_a_value() {
        let data = |keys: &[(&str, &str)]| {
            keys.iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        k8s_openapi::ByteString(v.as_bytes().to_vec()),
                    )
                })
                .collect::<BTreeMap<_, _>>()
        };
        let field = "spec.encryption.clientCertName";
        let missing = ClientIdentity::from_secret(
            "reaper-client",
            field,
            &data(&[("ca.crt", "CA"), ("tls.crt", "CERT")]),
        )
        .expect_err("no key");
        assert_eq!(
            missing,
            "Secret reaper-client (spec.encryption.clientCertName) has no tls.key"
        );
        let empty = ClientIdentity::from_secret(
            "reaper-client",
            field,
            &data(&[
                ("ca.crt", ""),
                ("tls.crt", "CERT"),
                ("tls.key", "SECRET-KEY"),
            ]),
        )
        .expect_err("empty CA");
        assert!(empty.ends_with("has no ca.crt"), "{empty}");
        // Unreadable PEM: the error names what is wrong, not what it holds.
        let identity = ClientIdentity::from_secret(
            "reaper-client",
            field,
            &data(&[
                ("ca.crt", "CA"),
                ("tls.crt", "CERT"),
                ("tls.key", "SECRET-KEY"),
            ]),
        )
        .expect("all keys present");
        let error =
            DirectClient::new(Some(&identity), Duration::from_secs(1)).err().expect("unusable PEM");
        assert!(error.contains("Secret reaper-client"), "{error}");
        assert!(!error.contains("SECRET-KEY"), "{error}");
        assert!(!format!("{identity:?}").contains("SECRET-KEY"));
    }

    #[test]
    fn base_urls_bracket_ipv6_addresses() {
        let client = DirectClient::new(None, Duration::from_secs(1)).expect("plain client");
        assert_eq!(client.base_url("10.0.0.7", 8080), "http://10.0.0.7:8080");
        assert_eq!(client.base_url("fd00::7", 8080), "http://[fd00::7]:8080");
    }
}
