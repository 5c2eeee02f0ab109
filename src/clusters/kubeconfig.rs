//! Region kubeconfigs: read from a Secret, checked before any connection is made, and turned into
//! a [`kube::Config`] or into a refusal a user can act on.
//!
//! Nothing here does I/O (the kubeconfig comes in as bytes), so every check is unit-tested. No
//! message built here contains anything from the kubeconfig except names (contexts, clusters,
//! users) and the server address: kube's own errors can quote the YAML or base64 they failed on,
//! so they are never shown.

use base64::Engine as _;
use k8s_openapi::jiff::Timestamp;
use kube::config::{AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, KubeconfigError};
use secrecy::{ExposeSecret as _, SecretString};

/// What a region kubeconfig may use, from the operator's settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KubeconfigPolicy {
    /// Users with `exec` or `auth-provider` credential plugins (they run commands or call
    /// identity providers from inside the operator).
    pub allow_exec_credentials: bool,
    /// Clusters with `insecure-skip-tls-verify: true` (or a plain `http://` server).
    pub allow_insecure_skip_tls_verify: bool,
}

/// Why a ClientConfig cannot be used; each is the `reason` of its Ready=False condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// The Secret named by `spec.kubeConfigSecret` does not exist.
    SecretNotFound,
    /// The Secret has no `kubeconfig` key.
    KubeconfigKeyMissing,
    /// Not a kubeconfig, or one that is incomplete (no server, no credentials, bad base64...).
    KubeconfigInvalid,
    /// The context the ClientConfig names is not in the kubeconfig.
    ContextNotFound,
    /// The user runs an `exec` or `auth-provider` plugin and the settings do not allow it.
    ExecCredentialsRefused,
    /// `insecure-skip-tls-verify` (or plain HTTP) and the settings do not allow it.
    InsecureTlsRefused,
    /// The kubeconfig points at files (CA, certificate, key, token): in the operator's pod those
    /// would be the operator's own files, e.g. its service-account token.
    FileReferenceRefused,
}

impl RefusalReason {
    /// The condition reason (CamelCase, as metav1.Condition wants).
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::SecretNotFound => "SecretNotFound",
            RefusalReason::KubeconfigKeyMissing => "KubeconfigKeyMissing",
            RefusalReason::KubeconfigInvalid => "KubeconfigInvalid",
            RefusalReason::ContextNotFound => "ContextNotFound",
            RefusalReason::ExecCredentialsRefused => "ExecCredentialsRefused",
            RefusalReason::InsecureTlsRefused => "InsecureTLSRefused",
            RefusalReason::FileReferenceRefused => "FileReferenceRefused",
        }
    }
}

impl std::fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kubeconfig Federator will not use, with a message that says what to change. The message
/// never quotes credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub reason: RefusalReason,
    pub message: String,
}

impl Refusal {
    pub fn new(reason: RefusalReason, message: impl Into<String>) -> Self {
        Refusal {
            reason,
            message: message.into(),
        }
    }
}

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal::new(RefusalReason::KubeconfigInvalid, message)
}

/// A checked region kubeconfig, reduced to the one context it is used for.
#[derive(Clone)]
pub struct RegionKubeconfig {
    /// The context used (the ClientConfig's context name).
    pub context: String,
    /// The API server address.
    pub server: String,
    /// When the credentials stop working: the client certificate's NotAfter or a JWT token's
    /// `exp`, whichever comes first, when either is known.
    pub credential_expiry: Option<Timestamp>,
    /// A kubeconfig with only this context, its cluster and its user.
    kubeconfig: Kubeconfig,
}

// Deliberately not derived: the kubeconfig holds credentials.
impl std::fmt::Debug for RegionKubeconfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionKubeconfig")
            .field("context", &self.context)
            .field("server", &self.server)
            .field("credential_expiry", &self.credential_expiry)
            .finish_non_exhaustive()
    }
}

impl RegionKubeconfig {
    /// Parses and checks `data` (the Secret's `kubeconfig` value) for `context`.
    pub fn parse(
        data: &[u8],
        context: &str,
        policy: &KubeconfigPolicy,
    ) -> Result<RegionKubeconfig, Refusal> {
        RegionKubeconfig::check(parse_yaml(data)?, context, policy)
    }

    /// Checks an already parsed kubeconfig for `context` (also used by `clientconfig create`).
    pub fn check(
        kubeconfig: Kubeconfig,
        context: &str,
        policy: &KubeconfigPolicy,
    ) -> Result<RegionKubeconfig, Refusal> {
        let (named_context, context_body) = find_context(&kubeconfig, context)?;
        let cluster_name = context_body.cluster.clone();
        let cluster = kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == cluster_name)
            .and_then(|c| c.cluster.clone())
            .ok_or_else(|| {
                invalid(format!(
                    "context {context:?} names cluster {cluster_name:?}, which the kubeconfig does not define"
                ))
            })?;
        let server = check_cluster(&cluster, &cluster_name, policy)?;

        let user_name = context_body.user.clone().filter(|u| !u.is_empty()).ok_or_else(|| {
            invalid(format!(
                "context {context:?} has no user: Federator needs credentials for the region"
            ))
        })?;
        let user = kubeconfig
            .auth_infos
            .iter()
            .find(|u| u.name == user_name)
            .and_then(|u| u.auth_info.clone())
            .ok_or_else(|| {
                invalid(format!(
                    "context {context:?} names user {user_name:?}, which the kubeconfig does not define"
                ))
            })?;
        let credential_expiry = check_user(&user, &user_name, policy)?;

        let reduced = Kubeconfig {
            current_context: Some(context.to_string()),
            contexts: vec![named_context],
            clusters: vec![kube::config::NamedCluster {
                name: cluster_name,
                cluster: Some(cluster),
                ..Default::default()
            }],
            auth_infos: vec![kube::config::NamedAuthInfo {
                name: user_name,
                auth_info: Some(user),
                ..Default::default()
            }],
            api_version: Some("v1".into()),
            kind: Some("Config".into()),
            ..Default::default()
        };
        Ok(RegionKubeconfig {
            context: context.to_string(),
            server,
            credential_expiry,
            kubeconfig: reduced,
        })
    }

    /// The kube client configuration (TLS roots, credentials, server) of this kubeconfig.
    pub async fn client_config(&self) -> Result<kube::Config, Refusal> {
        let options = KubeConfigOptions {
            context: Some(self.context.clone()),
            ..Default::default()
        };
        kube::Config::from_custom_kubeconfig(self.kubeconfig.clone(), &options)
            .await
            .map_err(|e| invalid(config_error_message(&e, &self.context)))
    }

    /// The self-contained kubeconfig as YAML (it contains credentials: goes into a Secret only).
    pub fn to_yaml(&self) -> Result<String, Refusal> {
        serde_saphyr::to_string(&self.kubeconfig)
            .map_err(|_| invalid("the kubeconfig could not be written as YAML"))
    }

    /// The kubeconfig's single user (for `clientconfig create`, which may replace it).
    pub fn user_mut(&mut self) -> Option<&mut AuthInfo> {
        self.kubeconfig.auth_infos.first_mut().and_then(|u| u.auth_info.as_mut())
    }

    /// The kubeconfig's single cluster.
    pub fn cluster_mut(&mut self) -> Option<&mut Cluster> {
        self.kubeconfig.clusters.first_mut().and_then(|c| c.cluster.as_mut())
    }
}

/// Parses kubeconfig YAML; a refusal says where the YAML is wrong, never what it says.
pub fn parse_yaml(data: &[u8]) -> Result<Kubeconfig, Refusal> {
    let text =
        std::str::from_utf8(data).map_err(|_| invalid("the kubeconfig is not UTF-8 text"))?;
    Kubeconfig::from_yaml(text).map_err(|e| invalid(yaml_error_message(&e)))
}

fn find_context(
    kubeconfig: &Kubeconfig,
    context: &str,
) -> Result<(kube::config::NamedContext, Context), Refusal> {
    let found = kubeconfig.contexts.iter().find(|c| c.name == context);
    let Some(named) = found else {
        let mut available: Vec<&str> =
            kubeconfig.contexts.iter().map(|c| c.name.as_str()).collect();
        available.sort_unstable();
        let listed = if available.is_empty() {
            "it has no contexts".to_string()
        } else {
            format!("it has {}", available.join(", "))
        };
        return Err(Refusal::new(
            RefusalReason::ContextNotFound,
            format!(
                "context {context:?} is not in the kubeconfig ({listed}); set spec.contextName to one of them or add the context"
            ),
        ));
    };
    let body = named
        .context
        .clone()
        .ok_or_else(|| invalid(format!("context {context:?} is empty: it names no cluster")))?;
    Ok((named.clone(), body))
}

/// Checks the cluster entry and returns its server address.
fn check_cluster(
    cluster: &Cluster,
    cluster_name: &str,
    policy: &KubeconfigPolicy,
) -> Result<String, Refusal> {
    let server = cluster
        .server
        .clone()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| invalid(format!("cluster {cluster_name:?} has no server address")))?;
    let uri: http::Uri = server.parse().map_err(|_| {
        invalid(format!(
            "cluster {cluster_name:?} has a server address that is not a URL: {server:?}"
        ))
    })?;
    if uri.host().is_none() {
        return Err(invalid(format!(
            "cluster {cluster_name:?} has a server address without a host: {server:?}"
        )));
    }
    let insecure_refused = |what: &str| {
        Refusal::new(
            RefusalReason::InsecureTlsRefused,
            format!(
                "cluster {cluster_name:?} {what}, so the region's identity would not be verified; give it the region's CA (certificate-authority-data), or set regions.allow_insecure_skip_tls_verify"
            ),
        )
    };
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if !policy.allow_insecure_skip_tls_verify => {
            return Err(insecure_refused("uses plain http"));
        }
        Some("http") => {}
        _ => {
            return Err(invalid(format!(
                "cluster {cluster_name:?} has a server address that is not an https URL: {server:?}"
            )));
        }
    }
    if cluster.insecure_skip_tls_verify == Some(true) && !policy.allow_insecure_skip_tls_verify {
        return Err(insecure_refused("sets insecure-skip-tls-verify"));
    }
    if cluster.certificate_authority.is_some() && cluster.certificate_authority_data.is_none() {
        return Err(file_reference(&format!(
            "cluster {cluster_name:?} reads its CA from a file (certificate-authority)"
        )));
    }
    if let Some(data) = &cluster.certificate_authority_data {
        let pem = decode_base64(data).ok_or_else(|| {
            invalid(format!(
                "certificate-authority-data of cluster {cluster_name:?} is not valid base64"
            ))
        })?;
        if first_certificate_not_after(&pem).is_none() {
            return Err(invalid(format!(
                "certificate-authority-data of cluster {cluster_name:?} holds no PEM certificate"
            )));
        }
    }
    Ok(server)
}

fn file_reference(what: &str) -> Refusal {
    Refusal::new(
        RefusalReason::FileReferenceRefused,
        format!(
            "{what}; inside the operator that would read the operator's own files: inline the data (federator clientconfig create does)"
        ),
    )
}

/// Checks the user entry and returns when its credentials expire, if that can be told.
fn check_user(
    user: &AuthInfo,
    user_name: &str,
    policy: &KubeconfigPolicy,
) -> Result<Option<Timestamp>, Refusal> {
    let plugin = if user.exec.is_some() {
        Some("an exec credential plugin")
    } else if user.auth_provider.is_some() {
        Some("an auth-provider plugin")
    } else {
        None
    };
    if let Some(plugin) = plugin
        && !policy.allow_exec_credentials
    {
        return Err(Refusal::new(
            RefusalReason::ExecCredentialsRefused,
            format!(
                "user {user_name:?} gets its credentials from {plugin}, which would run inside the operator; use a token or client certificate (federator clientconfig create --service-account makes one), or start the operator with --allow-exec-credentials"
            ),
        ));
    }
    let has_token = user.token.is_some();
    if user.token_file.is_some() && !has_token {
        return Err(file_reference(&format!(
            "user {user_name:?} reads its token from a file (tokenFile)"
        )));
    }
    if user.client_certificate.is_some() && user.client_certificate_data.is_none() {
        return Err(file_reference(&format!(
            "user {user_name:?} reads its client certificate from a file (client-certificate)"
        )));
    }
    if user.client_key.is_some() && user.client_key_data.is_none() {
        return Err(file_reference(&format!(
            "user {user_name:?} reads its client key from a file (client-key)"
        )));
    }

    let mut expiry = None;
    match (&user.client_certificate_data, &user.client_key_data) {
        (Some(cert), Some(key)) => {
            let cert_pem = decode_base64(cert).ok_or_else(|| {
                invalid(format!(
                    "client-certificate-data of user {user_name:?} is not valid base64"
                ))
            })?;
            expiry = Some(first_certificate_not_after(&cert_pem).ok_or_else(|| {
                invalid(format!(
                    "client-certificate-data of user {user_name:?} holds no PEM certificate"
                ))
            })?);
            let key_pem = decode_base64(expose(key)).ok_or_else(|| {
                invalid(format!(
                    "client-key-data of user {user_name:?} is not valid base64"
                ))
            })?;
            if !looks_like_pem_private_key(&key_pem) {
                return Err(invalid(format!(
                    "client-key-data of user {user_name:?} holds no PEM private key"
                )));
            }
        }
        (Some(_), None) => {
            return Err(invalid(format!(
                "user {user_name:?} has a client certificate but no client-key-data"
            )));
        }
        (None, Some(_)) => {
            return Err(invalid(format!(
                "user {user_name:?} has client-key-data but no client certificate"
            )));
        }
        (None, None) => {}
    }
    if let Some(token) = &user.token {
        if expose(token).trim().is_empty() {
            return Err(invalid(format!("user {user_name:?} has an empty token")));
        }
        if let Some(token_expiry) = jwt_expiry(expose(token)) {
            expiry = Some(expiry.map_or(token_expiry, |e: Timestamp| e.min(token_expiry)));
        }
    }
    let has_credentials = has_token
        || user.client_certificate_data.is_some()
        || user.username.is_some()
        || plugin.is_some();
    if !has_credentials {
        return Err(invalid(format!(
            "user {user_name:?} has no credentials (token or client certificate)"
        )));
    }
    Ok(expiry)
}

fn decode_base64(data: &str) -> Option<Vec<u8>> {
    let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(compact).ok()
}

/// NotAfter of the first certificate in a PEM bundle.
pub fn first_certificate_not_after(pem: &[u8]) -> Option<Timestamp> {
    let first = x509_parser::pem::Pem::iter_from_buffer(pem).next()?.ok()?;
    let certificate = first.parse_x509().ok()?;
    Timestamp::from_second(certificate.validity().not_after.timestamp()).ok()
}

fn looks_like_pem_private_key(pem: &[u8]) -> bool {
    std::str::from_utf8(pem).is_ok_and(|text| {
        text.lines().any(|l| l.starts_with("-----BEGIN ") && l.contains("PRIVATE KEY-----"))
    })
}

/// `exp` of a JWT (service-account tokens from the TokenRequest API carry one); None for
/// anything else. The signature is not checked: this only informs the status.
pub fn jwt_expiry(token: &str) -> Option<Timestamp> {
    let mut parts = token.trim().split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Timestamp::from_second(claims.get("exp")?.as_i64()?).ok()
}

/// A YAML error, by position only: serde-saphyr's message can quote the offending text.
fn yaml_error_message(error: &KubeconfigError) -> String {
    let position = match error {
        KubeconfigError::Parse(e) => {
            e.location().map(|l| format!(" (at line {}, column {})", l.line(), l.column()))
        }
        _ => None,
    };
    format!(
        "the kubeconfig is not valid: it could not be read as a kubeconfig YAML document{}",
        position.unwrap_or_default()
    )
}

/// kube's config errors, reworded without the data they may carry.
fn config_error_message(error: &KubeconfigError, context: &str) -> String {
    let what = match error {
        KubeconfigError::MissingClusterUrl => "its cluster has no server address",
        KubeconfigError::ParseClusterUrl(_) => "its server address is not a URL",
        KubeconfigError::ParseProxyUrl(_) => "its proxy-url is not a URL",
        KubeconfigError::LoadCertificateAuthority(_) | KubeconfigError::ParseCertificates(_) => {
            "its certificate-authority-data could not be loaded"
        }
        KubeconfigError::LoadClientCertificate(_) => "its client certificate could not be loaded",
        KubeconfigError::LoadClientKey(_) => "its client key could not be loaded",
        _ => "it could not be turned into a client configuration",
    };
    format!("context {context:?} of the kubeconfig cannot be used: {what}")
}

fn expose(secret: &SecretString) -> &str {
    secret.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NotAfter of `TEST_CERT` (2036-11-20T09:35:37Z).
    const TEST_CERT_NOT_AFTER: i64 = 2_110_786_537;

    fn b64(data: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(data)
    }

    fn kubeconfig(cluster_extra: &str, user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: east\nclusters:\n- name: east-cluster\n  cluster:\n    server: https://10.0.0.1:6443\n{cluster_extra}contexts:\n- name: east\n  context:\n    cluster: east-cluster\n    user: east-user\n- name: west\n  context:\n    cluster: east-cluster\n    user: east-user\nusers:\n- name: east-user\n  user:\n{user}"
        )
    }

    fn token_user() -> &'static str {
        "    token: secret-token-123\n"
    }

    fn strict() -> KubeconfigPolicy {
        KubeconfigPolicy::default()
    }

    fn refusal(text: &str, context: &str, policy: KubeconfigPolicy) -> Refusal {
        match RegionKubeconfig::parse(text.as_bytes(), context, &policy) {
            Ok(_) => panic!("expected a refusal for context {context}"),
            Err(r) => r,
        }
    }

    #[test]
    fn a_token_kubeconfig_is_accepted_and_reduced_to_its_context() {
        let parsed =
            RegionKubeconfig::parse(kubeconfig("", token_user()).as_bytes(), "west", &strict())
                .expect("valid");
        assert_eq!(parsed.context, "west");
        assert_eq!(parsed.server, "https://10.0.0.1:6443");
        assert_eq!(parsed.credential_expiry, None);
        let yaml = parsed.to_yaml().expect("yaml");
        assert!(yaml.contains("current-context: west"), "{yaml}");
        assert!(!yaml.contains("name: east\n"), "{yaml}");
        assert!(!format!("{parsed:?}").contains("secret-token-123"));
    }

    #[tokio::test]
    async fn a_checked_kubeconfig_gives_a_client_config() {
        let parsed =
            RegionKubeconfig::parse(kubeconfig("", token_user()).as_bytes(), "east", &strict())
                .expect("valid");
        let config = parsed.client_config().await.expect("config");
        assert_eq!(config.cluster_url.host(), Some("10.0.0.1"));
        assert!(!config.accept_invalid_certs);
    }

    #[test]
    fn malformed_yaml_is_refused_without_quoting_it() {
        let text = "clusters: [\n  token: hunter2-very-secret\n  {{{";
        let r = refusal(text, "east", strict());
        assert_eq!(r.reason, RefusalReason::KubeconfigInvalid);
        assert!(!r.message.contains("hunter2"), "{}", r.message);
        let r = refusal("\u{0}\u{1}", "east", strict());
        assert_eq!(r.reason, RefusalReason::KubeconfigInvalid);
        let r =
            RegionKubeconfig::parse(&[0xff, 0xfe, 0x00], "east", &strict()).expect_err("refused");
        assert_eq!(r.reason, RefusalReason::KubeconfigInvalid);
    }

    #[test]
    fn an_unknown_context_lists_the_ones_there_are() {
        let r = refusal(&kubeconfig("", token_user()), "north", strict());
        assert_eq!(r.reason, RefusalReason::ContextNotFound);
        assert!(r.message.contains("\"north\""), "{}", r.message);
        assert!(r.message.contains("east, west"), "{}", r.message);
        let r = refusal("apiVersion: v1\nkind: Config\n", "east", strict());
        assert_eq!(r.reason, RefusalReason::ContextNotFound);
        assert!(r.message.contains("no contexts"), "{}", r.message);
    }

    #[test]
    fn exec_and_auth_provider_are_refused_unless_allowed() {
        let exec = "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws\n      args: [eks, get-token]\n";
        let provider = "    auth-provider:\n      name: gcp\n      config: {}\n";
        for user in [exec, provider] {
            let r = refusal(&kubeconfig("", user), "east", strict());
            assert_eq!(r.reason, RefusalReason::ExecCredentialsRefused);
            assert!(
                r.message.contains("--allow-exec-credentials"),
                "{}",
                r.message
            );
            let allowed = KubeconfigPolicy {
                allow_exec_credentials: true,
                ..strict()
            };
            RegionKubeconfig::parse(kubeconfig("", user).as_bytes(), "east", &allowed)
                .expect("allowed");
        }
    }

    #[test]
    fn insecure_tls_is_refused_unless_allowed() {
        let text = kubeconfig("    insecure-skip-tls-verify: true\n", token_user());
        let r = refusal(&text, "east", strict());
        assert_eq!(r.reason, RefusalReason::InsecureTlsRefused);
        assert_eq!(r.reason.as_str(), "InsecureTLSRefused");
        let allowed = KubeconfigPolicy {
            allow_insecure_skip_tls_verify: true,
            ..strict()
        };
        RegionKubeconfig::parse(text.as_bytes(), "east", &allowed).expect("allowed");

        let plain = kubeconfig("", token_user()).replace("https://", "http://");
        assert_eq!(
            refusal(&plain, "east", strict()).reason,
            RefusalReason::InsecureTlsRefused
        );
    }

    #[test]
    fn file_references_are_refused() {
        let cases = [
            kubeconfig("    certificate-authority: /etc/ca.crt\n", token_user()),
            kubeconfig(
                "",
                "    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n",
            ),
            kubeconfig(
                "",
                "    client-certificate: /tmp/c.crt\n    client-key: /tmp/c.key\n",
            ),
        ];
        for text in cases {
            assert_eq!(
                refusal(&text, "east", strict()).reason,
                RefusalReason::FileReferenceRefused,
                "{text}"
            );
        }
    }

    #[test]
    fn incomplete_kubeconfigs_are_invalid() {
        let cases = [
            // no user at all
            kubeconfig("", "    {}\n"),
            // a user named by the context that does not exist
            kubeconfig("", token_user()).replace("user: east-user", "user: nobody"),
            // a cluster that does not exist
            kubeconfig("", token_user()).replace("cluster: east-cluster", "cluster: nowhere"),
            // no server
            kubeconfig("", token_user()).replace("    server: https://10.0.0.1:6443\n", ""),
            // bad CA data
            kubeconfig("    certificate-authority-data: '%%%'\n", token_user()),
            kubeconfig(
                &format!("    certificate-authority-data: {}\n", b64("not a pem")),
                token_user(),
            ),
            // a certificate without its key
            kubeconfig(
                "",
                &format!("    client-certificate-data: {}\n", b64(TEST_CERT)),
            ),
            // an empty token
            kubeconfig("", "    token: ''\n"),
        ];
        for text in cases {
            let r = refusal(&text, "east", strict());
            assert_eq!(r.reason, RefusalReason::KubeconfigInvalid, "{text}");
            assert!(!r.message.contains("secret-token-123"), "{}", r.message);
        }
    }

    #[test]
    fn a_client_certificate_gives_the_credential_expiry() {
        let user = format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(TEST_CERT),
            b64("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        );
        let parsed = RegionKubeconfig::parse(
            kubeconfig(
                &format!("    certificate-authority-data: {}\n", b64(TEST_CERT)),
                &user,
            )
            .as_bytes(),
            "east",
            &strict(),
        )
        .expect("valid");
        assert_eq!(
            parsed.credential_expiry,
            Some(Timestamp::from_second(TEST_CERT_NOT_AFTER).expect("ts"))
        );

        let bad_key = format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(TEST_CERT),
            b64("not a key")
        );
        let r = refusal(&kubeconfig("", &bad_key), "east", strict());
        assert_eq!(r.reason, RefusalReason::KubeconfigInvalid);
    }

    #[test]
    fn a_jwt_token_gives_its_expiry() {
        let url = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = format!(
            "{}.{}.signature",
            url(r#"{"alg":"RS256"}"#),
            url(r#"{"exp":1900000000,"sub":"system:serviceaccount:x:y"}"#)
        );
        assert_eq!(
            jwt_expiry(&token),
            Some(Timestamp::from_second(1_900_000_000).expect("ts"))
        );
        assert_eq!(jwt_expiry("kube-sim.abcdef"), None);
        assert_eq!(jwt_expiry("a.b.c.d"), None);
        let user = format!("    token: {token}\n");
        let parsed = RegionKubeconfig::parse(kubeconfig("", &user).as_bytes(), "east", &strict())
            .expect("valid");
        assert_eq!(
            parsed.credential_expiry,
            Some(Timestamp::from_second(1_900_000_000).expect("ts"))
        );
    }

    /// Self-signed test certificate (CN=federator-test); its key was thrown away.
    const TEST_CERT: &str = include_str!("testdata/client-cert.pem");
}
