//! The process's certificate authority, the per-cluster server certificates, and client
//! certificates: issued for a user (CN = user name, O = groups) and checked as kube-apiserver's
//! x509 authenticator checks them (rcgen + rustls).

use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};

use crate::auth::UserInfo;

/// A CA made at start-up; every cluster's serving certificate is signed by it, so one
/// `certificate-authority-data` value works for all contexts.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    ca_pem: String,
}

impl CertificateAuthority {
    pub fn generate() -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "kube-sim CA");
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        let key = KeyPair::generate().context("generating the CA key")?;
        let cert = params.self_signed(&key).context("self-signing the CA")?;
        Ok(CertificateAuthority {
            ca_der: cert.der().clone(),
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// PEM of the CA certificate, for `certificate-authority-data`.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// A client certificate for `user` in `groups` (at most two: the certificate library
    /// writes one Organization attribute per type), signed by this CA, valid for a year:
    /// the user kube-apiserver's x509 authenticator would see.
    pub fn issue_client_certificate(
        &self,
        user: &str,
        groups: &[&str],
    ) -> anyhow::Result<ClientCertificate> {
        anyhow::ensure!(!user.is_empty(), "a client certificate needs a user name");
        anyhow::ensure!(
            groups.len() <= 2,
            "a kube-sim client certificate holds at most two groups"
        );
        let mut params = CertificateParams::new(Vec::<String>::new())
            .context("client certificate parameters")?;
        params.distinguished_name.push(DnType::CommonName, user);
        // The second group as an Organization attribute spelled by its OID (2.5.4.10).
        let organization_types = [
            DnType::OrganizationName,
            DnType::CustomDnType(vec![2, 5, 4, 10]),
        ];
        for (group, dn_type) in groups.iter().zip(organization_types) {
            params.distinguished_name.push(dn_type, *group);
        }
        let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
        params.not_before = rcgen::date_time_ymd(
            i32::from(today.year()),
            today.month() as u8,
            today.day() as u8,
        );
        params.not_after = rcgen::date_time_ymd(
            i32::from(today.year()) + 1,
            today.month() as u8,
            today.day().min(28) as u8,
        );
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().context("generating a client key")?;
        let cert =
            params.signed_by(&key, &self.issuer).context("signing the client certificate")?;
        Ok(ClientCertificate {
            certificate_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Checks client certificates against this CA.
    pub fn client_authenticator(&self) -> anyhow::Result<Arc<ClientCertAuthenticator>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).context("the CA as a client-certificate root")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .context("client certificate verifier")?;
        Ok(Arc::new(ClientCertAuthenticator { verifier }))
    }

    /// A rustls server configuration with a fresh certificate for 127.0.0.1 and localhost,
    /// asking for an optional client certificate that `clients` checks after the handshake.
    pub fn server_config(
        &self,
        common_name: &str,
        clients: &Arc<ClientCertAuthenticator>,
    ) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let mut params = CertificateParams::new(vec!["localhost".to_string()])
            .context("server certificate parameters")?;
        params.subject_alt_names.push(SanType::IpAddress(std::net::IpAddr::V4(
            std::net::Ipv4Addr::LOCALHOST,
        )));
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().context("generating a server key")?;
        let cert =
            params.signed_by(&key, &self.issuer).context("signing the server certificate")?;
        let chain = vec![cert.der().clone(), self.ca_der.clone()];
        let private_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_client_cert_verifier(Arc::new(RequestClientCertificate(Arc::clone(clients))))
            .with_single_cert(chain, private_key)
            .context("server certificate and key")?;
        // As kube-apiserver: HTTP/2 for clients that offer it (client-go does), HTTP/1.1 for the rest.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// What a user makes for a Management API with mutual TLS (`managementApiAuth.manual`), as
/// cert-manager would: a CA of its own, a server certificate naming the datacenter's service
/// (not the pods' IPs), and a client certificate; all PEM. The Secrets cass-operator reads hold
/// them as `ca.crt`, `tls.crt` and `tls.key`.
pub struct ManagementApiCertificates {
    pub ca_pem: String,
    pub server: ClientCertificate,
    pub client: ClientCertificate,
}

impl ManagementApiCertificates {
    pub fn generate(service: &str) -> anyhow::Result<ManagementApiCertificates> {
        let ca = CertificateAuthority::generate()?;
        let mut params = CertificateParams::new(vec![service.to_string()])
            .context("server certificate parameters")?;
        params.distinguished_name.push(DnType::CommonName, service);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().context("generating a server key")?;
        let cert = params.signed_by(&key, &ca.issuer).context("signing the server certificate")?;
        Ok(ManagementApiCertificates {
            ca_pem: ca.ca_pem.clone(),
            server: ClientCertificate {
                certificate_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            },
            client: ca.issue_client_certificate("management-api-client", &[])?,
        })
    }
}

/// The Management API agent's TLS with `managementApiAuth.manual`: its certificate and key,
/// and a client certificate required, signed by `client_ca_pem`.
pub fn mutual_tls_server_config(
    certificate_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: &[u8],
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    server_tls_config(certificate_pem, key_pem, Some(client_ca_pem))
}

/// A pod's HTTPS server (HTTP/1.1): its certificate and key, and, with `client_ca_pem`, a
/// client certificate required, signed by that CA.
pub fn server_tls_config(
    certificate_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    let chain = CertificateDer::pem_slice_iter(certificate_pem)
        .collect::<Result<Vec<_>, _>>()
        .context("tls.crt")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).context("tls.key")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match client_ca_pem {
        Some(client_ca_pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(client_ca_pem) {
                roots.add(cert.context("ca.crt")?).context("ca.crt")?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .context("client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).context("server certificate and key")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client certificate and its private key, both PEM (as `client-certificate-data` and
/// `client-key-data` hold them once base64-encoded).
#[derive(Clone)]
pub struct ClientCertificate {
    pub certificate_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate").finish_non_exhaustive()
    }
}

/// Who a connection's client certificate says the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateIdentity {
    /// No certificate was presented: the request's token decides.
    None,
    /// A certificate this CA signed, valid now.
    User(UserInfo),
    /// A certificate that does not verify (another CA, expired, no CN): a request on the
    /// connection needs a valid bearer token, else it is 401 (even for `/version`), as
    /// kube-apiserver answers when an authenticator fails.
    Rejected,
}

/// Verifies client certificates against the CA, as kube-apiserver's x509 authenticator does.
#[derive(Debug)]
pub struct ClientCertAuthenticator {
    verifier: Arc<dyn ClientCertVerifier>,
}

impl ClientCertAuthenticator {
    /// The identity of the certificate chain the client presented (`chain[0]` is its own).
    pub fn identify(&self, chain: Option<&[CertificateDer<'static>]>) -> CertificateIdentity {
        let Some((end_entity, intermediates)) = chain.and_then(<[_]>::split_first) else {
            return CertificateIdentity::None;
        };
        if self.verifier.verify_client_cert(end_entity, intermediates, UnixTime::now()).is_err() {
            return CertificateIdentity::Rejected;
        }
        match user_of(end_entity) {
            Some(user) => CertificateIdentity::User(user),
            None => CertificateIdentity::Rejected,
        }
    }
}

/// CN is the user name, each O a group; every authenticated user is in system:authenticated.
fn user_of(certificate: &CertificateDer<'_>) -> Option<UserInfo> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).ok()?;
    let subject = parsed.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?;
    if name.is_empty() {
        return None;
    }
    let groups =
        subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_string).collect();
    Some(UserInfo::new(name, groups))
}

/// Asks for a client certificate without requiring one, and lets the handshake finish whatever
/// the client presents: kube-apiserver requests a certificate at the TLS layer and refuses a bad
/// one with 401 at the HTTP layer, not with a TLS alert. The handshake signature is still
/// checked, so a presented certificate is one the client holds the key of.
#[derive(Debug)]
struct RequestClientCertificate(Arc<ClientCertAuthenticator>);

impl ClientCertVerifier for RequestClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.0.verifier.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verifier.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verifier.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.verifier.supported_verify_schemes()
    }
}
