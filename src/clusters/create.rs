//! `federator clientconfig create`: registers a region with the hub. Builds a self-contained
//! kubeconfig for one context of a local kubeconfig (files it points at are read and inlined;
//! with a service account, that account's token replaces the caller's credentials), then writes
//! Secret `<NAME>-config` and ClientConfig `<NAME>` to the hub with server-side apply, so that
//! running it again updates both in place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Resource};
use secrecy::SecretString;

use super::kubeconfig::{KubeconfigPolicy, Refusal, RefusalReason, RegionKubeconfig};
use crate::api::client_config::{ClientConfig, ClientConfigSpec, KUBECONFIG_SECRET_KEY};
use crate::api::shared::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, SecretRef};
use crate::home::{HomeClientError, HomeCluster};

/// Field manager of everything `clientconfig create` writes (hub and region).
pub const FIELD_MANAGER: &str = "federator-clientconfig-create";
/// ClusterRole (in the region) holding what the control plane does there.
pub const REGION_CLUSTER_ROLE: &str = "federator-control-plane";
/// Bound on each API call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the token controller to fill a service-account token Secret.
const TOKEN_WAIT: Duration = Duration::from_secs(20);
/// Lifetime asked of a TokenRequest token when the token Secret is not filled (the API server
/// may shorten it; credentialExpiry on the ClientConfig shows when it ends).
const TOKEN_REQUEST_SECONDS: i64 = 365 * 24 * 3600;

/// What to register.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub src_kubeconfig: PathBuf,
    pub src_context: String,
    pub hub: HomeCluster,
    /// Operator namespace in the hub (and, with a service account, where it lives in the region).
    pub namespace: String,
    pub name: Option<String>,
    pub service_account: Option<String>,
    pub server: Option<String>,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Created {
    pub namespace: String,
    pub name: String,
    pub secret_name: String,
    pub context: String,
    pub server: String,
    /// Things the operator may refuse or a user should know (never credentials).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("cannot read kubeconfig {path}: {message}")]
    ReadKubeconfig { path: String, message: String },
    #[error("context {context:?} of {path}: {refusal}")]
    Kubeconfig {
        path: String,
        context: String,
        refusal: Refusal,
    },
    #[error("{name:?} cannot be a ClientConfig name: {reason} (choose one with --name)")]
    InvalidName { name: String, reason: &'static str },
    #[error("--server {server:?} is not an https URL")]
    InvalidServer { server: String },
    #[error("cannot connect to the region (context {context:?}): {message}")]
    SourceClient { context: String, message: String },
    #[error("in the region: {what}: {source}")]
    Region { what: String, source: kube::Error },
    #[error("in the hub: {what}: {source}")]
    Hub { what: String, source: kube::Error },
    #[error(transparent)]
    HubClient(#[from] HomeClientError),
    #[error("{what} took longer than {}s", .timeout.as_secs())]
    Timeout { what: String, timeout: Duration },
    #[error(
        "the region issued no token for service account {namespace}/{name}: the token Secret stayed empty for {}s and the TokenRequest API gave none",
        .waited.as_secs()
    )]
    NoToken {
        namespace: String,
        name: String,
        waited: Duration,
    },
}

/// Registers the region; see the module documentation.
pub async fn create(options: &CreateOptions) -> Result<Created, CreateError> {
    let name = options.name.clone().unwrap_or_else(|| options.src_context.clone());
    check_object_name(&name)?;
    let secret_name = format!("{name}-config");
    check_object_name(&secret_name)?;

    let path_text = options.src_kubeconfig.display().to_string();
    let source = read_local_kubeconfig(&options.src_kubeconfig)?;
    let kubeconfig_error = |refusal| CreateError::Kubeconfig {
        path: path_text.clone(),
        context: options.src_context.clone(),
        refusal,
    };
    let inlined = inline_context(source.clone(), &options.src_context).map_err(kubeconfig_error)?;
    // Structure only here; what the operator's settings may refuse becomes a warning.
    let permissive = KubeconfigPolicy {
        allow_exec_credentials: true,
        allow_insecure_skip_tls_verify: true,
    };
    let mut region = RegionKubeconfig::check(inlined, &options.src_context, &permissive)
        .map_err(kubeconfig_error)?;
    if let Some(server) = &options.server {
        let https = server
            .parse::<http::Uri>()
            .ok()
            .is_some_and(|u| u.scheme_str() == Some("https") && u.host().is_some());
        if !https {
            return Err(CreateError::InvalidServer {
                server: server.clone(),
            });
        }
        if let Some(cluster) = region.cluster_mut() {
            cluster.server = Some(server.clone());
        }
    }

    let mut warnings = Vec::new();
    if let Some(service_account) = &options.service_account {
        let client = source_client(source, &options.src_context).await?;
        let token =
            service_account_token(&client, &options.namespace, service_account, &mut warnings)
                .await?;
        if let Some(user) = region.user_mut() {
            *user = kube::config::AuthInfo {
                token: Some(SecretString::from(token)),
                ..Default::default()
            };
        }
    }

    // Check again what will be stored, the way the operator will (less its policy switches).
    let yaml = region.to_yaml().map_err(kubeconfig_error)?;
    let stored = RegionKubeconfig::parse(yaml.as_bytes(), &options.src_context, &permissive)
        .map_err(kubeconfig_error)?;
    if let Err(refusal) =
        RegionKubeconfig::parse(yaml.as_bytes(), &options.src_context, &Default::default())
        && matches!(
            refusal.reason,
            RefusalReason::ExecCredentialsRefused | RefusalReason::InsecureTlsRefused
        )
    {
        warnings.push(format!(
            "the operator refuses this kubeconfig unless its settings allow it: {}",
            refusal.message
        ));
    }

    let hub = options.hub.client().await?;
    apply_to_hub(
        &hub,
        &options.namespace,
        &name,
        &secret_name,
        &options.src_context,
        yaml,
    )
    .await?;
    Ok(Created {
        namespace: options.namespace.clone(),
        name,
        secret_name,
        context: options.src_context.clone(),
        server: stored.server,
        warnings,
    })
}

/// A ClientConfig or Secret name: a DNS subdomain.
fn check_object_name(name: &str) -> Result<(), CreateError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 253 {
        Some("it is longer than 253 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        Some("only lower-case letters, digits, '-' and '.' are allowed")
    } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        Some("it must start and end with a letter or digit")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CreateError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Reads a local kubeconfig; relative file references become absolute (kube does that).
fn read_local_kubeconfig(path: &Path) -> Result<Kubeconfig, CreateError> {
    let text = std::fs::read_to_string(path).map_err(|e| CreateError::ReadKubeconfig {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    // Parsed once as text to report YAML errors by position only, then read with paths fixed.
    super::kubeconfig::parse_yaml(text.as_bytes()).map_err(|refusal| {
        CreateError::ReadKubeconfig {
            path: path.display().to_string(),
            message: refusal.message,
        }
    })?;
    Kubeconfig::read_from(path).map_err(|_| CreateError::ReadKubeconfig {
        path: path.display().to_string(),
        message: "it is not a valid kubeconfig".into(),
    })
}

/// The context's cluster CA, client certificate, key and token, read from the files they name
/// and put inline, so the kubeconfig works anywhere.
pub fn inline_context(mut kubeconfig: Kubeconfig, context: &str) -> Result<Kubeconfig, Refusal> {
    let body = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.clone())
        .ok_or_else(|| {
            Refusal::new(
                RefusalReason::ContextNotFound,
                format!("context {context:?} is not in the kubeconfig"),
            )
        })?;
    let read = |what: &str, path: &str| {
        std::fs::read(path).map_err(|e| {
            Refusal::new(
                RefusalReason::KubeconfigInvalid,
                format!("cannot read the {what} file {path}: {e}"),
            )
        })
    };
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    if let Some(cluster) = kubeconfig
        .clusters
        .iter_mut()
        .find(|c| c.name == body.cluster)
        .and_then(|c| c.cluster.as_mut())
        && let Some(path) = cluster.certificate_authority.take()
        && cluster.certificate_authority_data.is_none()
    {
        cluster.certificate_authority_data = Some(encode(&read("certificate-authority", &path)?));
    }
    if let Some(user_name) = &body.user
        && let Some(user) = kubeconfig
            .auth_infos
            .iter_mut()
            .find(|u| &u.name == user_name)
            .and_then(|u| u.auth_info.as_mut())
    {
        if let Some(path) = user.client_certificate.take()
            && user.client_certificate_data.is_none()
        {
            user.client_certificate_data = Some(encode(&read("client-certificate", &path)?));
        }
        if let Some(path) = user.client_key.take()
            && user.client_key_data.is_none()
        {
            user.client_key_data = Some(SecretString::from(encode(&read("client-key", &path)?)));
        }
        if let Some(path) = user.token_file.take()
            && user.token.is_none()
        {
            let token = String::from_utf8(read("tokenFile", &path)?).map_err(|_| {
                Refusal::new(
                    RefusalReason::KubeconfigInvalid,
                    format!("the tokenFile {path} is not text"),
                )
            })?;
            user.token = Some(SecretString::from(token.trim().to_string()));
        }
    }
    Ok(kubeconfig)
}

/// A client for the region with the caller's own credentials (exec plugins included: they run
/// here, on the caller's machine).
async fn source_client(kubeconfig: Kubeconfig, context: &str) -> Result<kube::Client, CreateError> {
    let options = KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let fail = |message: &str| CreateError::SourceClient {
        context: context.to_string(),
        message: message.to_string(),
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|_| fail("its kubeconfig entry cannot be loaded"))?;
    config.connect_timeout = Some(Duration::from_secs(10));
    kube::Client::try_from(config)
        .map_err(|_| fail("no client could be built from its TLS settings"))
}

async fn bounded<T>(
    what: impl Into<String>,
    call: impl Future<Output = Result<T, kube::Error>>,
    wrap: fn(String, kube::Error) -> CreateError,
) -> Result<T, CreateError> {
    let what = what.into();
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(|e| wrap(what, e)),
        Err(_) => Err(CreateError::Timeout {
            what,
            timeout: CALL_TIMEOUT,
        }),
    }
}

fn region_error(what: String, source: kube::Error) -> CreateError {
    CreateError::Region { what, source }
}

fn hub_error(what: String, source: kube::Error) -> CreateError {
    CreateError::Hub { what, source }
}

fn managed_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string())])
}

/// Creates (or updates) the service account, its RBAC and its token in the region; returns the
/// token.
async fn service_account_token(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    warnings: &mut Vec<String>,
) -> Result<String, CreateError> {
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace},
    });
    bounded(
        format!("applying namespace {namespace}"),
        namespaces.patch(namespace, &apply, &Patch::Apply(&ns)),
        region_error,
    )
    .await?;

    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let account = serde_json::json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace, "labels": managed_labels()},
    });
    bounded(
        format!("applying service account {namespace}/{name}"),
        accounts.patch(name, &apply, &Patch::Apply(&account)),
        region_error,
    )
    .await?;

    match apply_rbac(client, namespace, name).await {
        // Applying creates what is missing, so a 404 means the region serves no RBAC API.
        Err(CreateError::Region {
            source: kube::Error::Api(status),
            ..
        }) if status.is_not_found() => warnings.push(format!(
            "the region does not serve rbac.authorization.k8s.io: no ClusterRole {REGION_CLUSTER_ROLE} was bound to service account {namespace}/{name}"
        )),
        other => other?,
    }

    let token_secret_name = format!("{name}-token");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let token_secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {
            "name": token_secret_name, "namespace": namespace, "labels": managed_labels(),
            "annotations": {"kubernetes.io/service-account.name": name},
        },
    });
    bounded(
        format!("applying Secret {namespace}/{token_secret_name}"),
        secrets.patch(&token_secret_name, &apply, &Patch::Apply(&token_secret)),
        region_error,
    )
    .await?;

    // The token controller fills the Secret; poll briefly, then fall back to TokenRequest.
    let deadline = tokio::time::Instant::now() + TOKEN_WAIT;
    loop {
        let secret = bounded(
            format!("reading Secret {namespace}/{token_secret_name}"),
            secrets.get(&token_secret_name),
            region_error,
        )
        .await?;
        let token = secret
            .data
            .as_ref()
            .and_then(|d| d.get("token"))
            .and_then(|t| String::from_utf8(t.0.clone()).ok())
            .filter(|t| !t.trim().is_empty());
        if let Some(token) = token {
            return Ok(token);
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(TOKEN_REQUEST_SECONDS),
            ..Default::default()
        },
        ..Default::default()
    };
    let issued: Result<TokenRequest, CreateError> = bounded(
        format!("requesting a token for service account {namespace}/{name}"),
        accounts.create_subresource("token", name, &PostParams::default(), &request),
        region_error,
    )
    .await;
    issued.ok().and_then(|r| r.status).map(|s| s.token).filter(|t| !t.is_empty()).ok_or_else(|| {
        CreateError::NoToken {
            namespace: namespace.to_string(),
            name: name.to_string(),
            waited: TOKEN_WAIT,
        }
    })
}

/// What the control plane does in a region: CassandraDatacenters and the objects around them
/// (secrets, seed EndpointSlices, generated ConfigMaps, services), Stargate, Reaper and
/// ServiceMonitors, reading pods and namespaces, the pods' Management API through the pod
/// proxy, rebuild CassandraTasks, and Events.
pub fn region_cluster_role() -> ClusterRole {
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let write = [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    let read = ["get", "list", "watch"];
    ClusterRole {
        metadata: kube::api::ObjectMeta {
            name: Some(REGION_CLUSTER_ROLE.to_string()),
            labels: Some(managed_labels()),
            ..Default::default()
        },
        rules: Some(vec![
            rule(
                &["cassandra.datastax.com"],
                &["cassandradatacenters", "cassandradatacenters/status"],
                &write,
            ),
            rule(
                &[""],
                &["secrets", "services", "endpoints", "configmaps"],
                &write,
            ),
            rule(&["discovery.k8s.io"], &["endpointslices"], &write),
            rule(
                &["stargate.k8ssandra.io"],
                &["stargates", "stargates/status"],
                &write,
            ),
            rule(
                &["reaper.k8ssandra.io"],
                &["reapers", "reapers/status"],
                &write,
            ),
            // Each datacenter's daily Medusa purge schedule (spec.medusa.purgeBackups).
            rule(
                &["medusa.k8ssandra.io"],
                &["medusabackupschedules"],
                &["get", "list", "create", "patch", "delete"],
            ),
            // Telemetry: ServiceMonitors, where prometheus-operator's CRD is installed.
            rule(&["monitoring.coreos.com"], &["servicemonitors"], &write),
            rule(&[""], &["pods", "namespaces"], &read),
            // The Management API of the Cassandra pods, through the API server: GET reads,
            // POST (create) changes the schema.
            rule(&[""], &["pods/proxy"], &["get", "create"]),
            // Rebuilds of datacenters added to a running cluster, K8ssandraTasks' CassandraTasks.
            rule(
                &["control.k8ssandra.io"],
                &["cassandratasks"],
                &["get", "list", "create", "patch", "delete"],
            ),
            rule(&["", "events.k8s.io"], &["events"], &["create", "patch"]),
        ]),
        ..Default::default()
    }
}

async fn apply_rbac(client: &kube::Client, namespace: &str, name: &str) -> Result<(), CreateError> {
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let mut role = region_cluster_role();
    role.metadata.managed_fields = None;
    let role_value = with_type_meta::<ClusterRole>(&role);
    bounded(
        format!("applying ClusterRole {REGION_CLUSTER_ROLE}"),
        roles.patch(REGION_CLUSTER_ROLE, &apply, &Patch::Apply(&role_value)),
        region_error,
    )
    .await?;

    let binding_name = format!("{REGION_CLUSTER_ROLE}-{namespace}-{name}");
    let binding = ClusterRoleBinding {
        metadata: kube::api::ObjectMeta {
            name: Some(binding_name.clone()),
            labels: Some(managed_labels()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: REGION_CLUSTER_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some(namespace.into()),
            ..Default::default()
        }]),
    };
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    bounded(
        format!("applying ClusterRoleBinding {binding_name}"),
        bindings.patch(
            &binding_name,
            &apply,
            &Patch::Apply(&with_type_meta::<ClusterRoleBinding>(&binding)),
        ),
        region_error,
    )
    .await?;
    Ok(())
}

/// The object as JSON with apiVersion and kind, as server-side apply wants.
fn with_type_meta<K>(object: &K) -> serde_json::Value
where
    K: Resource<DynamicType = ()> + serde::Serialize,
{
    let mut value = serde_json::to_value(object).unwrap_or(serde_json::Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), K::api_version(&()).into());
        map.insert("kind".into(), K::kind(&()).into());
    }
    value
}

async fn apply_to_hub(
    hub: &kube::Client,
    namespace: &str,
    name: &str,
    secret_name: &str,
    context: &str,
    kubeconfig_yaml: String,
) -> Result<(), CreateError> {
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(secret_name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(managed_labels()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            KUBECONFIG_SECRET_KEY.to_string(),
            ByteString(kubeconfig_yaml.into_bytes()),
        )])),
        ..Default::default()
    };
    let secrets: Api<Secret> = Api::namespaced(hub.clone(), namespace);
    bounded(
        format!("applying Secret {namespace}/{secret_name}"),
        secrets.patch(secret_name, &apply, &Patch::Apply(&with_type_meta(&secret))),
        hub_error,
    )
    .await?;

    let mut client_config = ClientConfig::new(
        name,
        ClientConfigSpec {
            context_name: Some(context.to_string()),
            kube_config_secret: SecretRef::new(secret_name),
        },
    );
    client_config.metadata.namespace = Some(namespace.to_string());
    client_config.metadata.labels = Some(managed_labels());
    let client_configs: Api<ClientConfig> = Api::namespaced(hub.clone(), namespace);
    bounded(
        format!("applying ClientConfig {namespace}/{name}"),
        client_configs.patch(name, &apply, &Patch::Apply(&client_config)),
        hub_error,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_dns_subdomains() {
        assert!(check_object_name("kind-k8ssandra-1").is_ok());
        assert!(check_object_name("east.example").is_ok());
        for bad in ["", "gke_proj_zone_c", "East", "-a", "a-", &"a".repeat(254)] {
            assert!(check_object_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn files_named_by_the_context_are_inlined() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, contents: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, contents).expect("write");
            path.display().to_string()
        };
        let cert = include_str!("testdata/client-cert.pem");
        let ca = write("ca.crt", cert);
        let crt = write("client.crt", cert);
        let key = write(
            "client.key",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        );
        let token = write("token", "file-token-value\n");
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://1.2.3.4\n    certificate-authority: {ca}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\n- name: y\n  context: {{cluster: c, user: t}}\nusers:\n- name: u\n  user:\n    client-certificate: {crt}\n    client-key: {key}\n- name: t\n  user:\n    tokenFile: {token}\n"
        );
        let kubeconfig = Kubeconfig::from_yaml(&yaml).expect("parse");
        let inlined = inline_context(kubeconfig.clone(), "x").expect("inline");
        let checked = RegionKubeconfig::check(inlined, "x", &KubeconfigPolicy::default())
            .expect("self-contained");
        let out = checked.to_yaml().expect("yaml");
        assert!(!out.contains(dir.path().to_str().unwrap_or("/")), "{out}");
        assert!(checked.credential_expiry.is_some());

        let inlined = inline_context(kubeconfig, "y").expect("inline");
        let checked = RegionKubeconfig::check(inlined, "y", &KubeconfigPolicy::default())
            .expect("self-contained");
        assert!(checked.to_yaml().expect("yaml").contains("file-token-value"));
    }

    #[test]
    fn the_region_role_covers_what_the_control_plane_writes() {
        let role = region_cluster_role();
        let rules = role.rules.unwrap_or_default();
        let allows = |group: &str, resource: &str, verb: &str| {
            rules.iter().any(|r| {
                r.api_groups.as_deref().unwrap_or_default().iter().any(|g| g == group)
                    && r.resources.as_deref().unwrap_or_default().iter().any(|x| x == resource)
                    && r.verbs.iter().any(|v| v == verb)
            })
        };
        assert!(allows(
            "cassandra.datastax.com",
            "cassandradatacenters",
            "patch"
        ));
        assert!(allows("", "secrets", "create"));
        assert!(allows("discovery.k8s.io", "endpointslices", "delete"));
        assert!(allows("", "configmaps", "patch"));
        assert!(allows("", "pods", "list"));
        assert!(allows(
            "medusa.k8ssandra.io",
            "medusabackupschedules",
            "delete"
        ));
        assert!(!allows("", "pods", "delete"));
        assert!(allows("", "pods/proxy", "create"));
        assert!(!allows("", "pods/proxy", "delete"));
        assert!(allows("control.k8ssandra.io", "cassandratasks", "create"));
        assert!(!allows(
            "control.k8ssandra.io",
            "cassandratasks",
            "deletecollection"
        ));
        assert!(!allows("", "namespaces", "create"));
        assert!(!allows(
            "rbac.authorization.k8s.io",
            "clusterroles",
            "create"
        ));
    }
}
