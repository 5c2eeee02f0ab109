//! Gather, validate and apply to the registry: which ClientConfig holds a context, the
//! kubeconfig its Secret carries, checked against the policy, and the region (re)built from it
//! only when what it was built from changed. What comes out is an [`Observation`] for the pure
//! status stage (`crate::clusters::status`).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::Store;
use kube::{Api, Resource, ResourceExt};
use tracing::info;

use super::{ControllerContext, ReconcileError};
use crate::api::client_config::{ClientConfig, KUBECONFIG_SECRET_KEY};
use crate::clusters::kubeconfig::{KubeconfigPolicy, Refusal, RefusalReason, RegionKubeconfig};
use crate::clusters::status::Observation;

/// The oldest other ClientConfig claiming `context`, if it is older than this one (by
/// creationTimestamp, then name).
pub(super) fn older_claimant(
    store: &Store<ClientConfig>,
    this: &ClientConfig,
    context: &str,
) -> Option<String> {
    let key = |cc: &ClientConfig| {
        (
            cc.meta().creation_timestamp.as_ref().map(|t| t.0),
            cc.name_any(),
        )
    };
    let this_key = key(this);
    store
        .state()
        .iter()
        .filter(|cc| cc.meta().deletion_timestamp.is_none())
        .filter(|cc| cc.context_name() == context)
        .map(|cc| key(cc.as_ref()))
        .filter(|k| *k < this_key)
        .min()
        .map(|(_, name)| name)
}

/// Reads the Secret, and (re)builds the region when the kubeconfig changed.
pub(super) async fn observe(
    client_config: &ClientConfig,
    ctx: &ControllerContext,
    name: &str,
    context: &str,
) -> Result<Observation, ReconcileError> {
    let secret_name = client_config.spec.kube_config_secret.name.clone();
    let kubeconfig = read_kubeconfig(ctx, &secret_name).await?;
    let fingerprint = fingerprint(&kubeconfig, context, &ctx.policy);

    let unchanged = ctx
        .registry
        .slot_of(context)
        .is_some_and(|(source, fp)| source == name && fp == fingerprint);
    if !unchanged {
        let checked =
            kubeconfig.and_then(|bytes| RegionKubeconfig::parse(&bytes, context, &ctx.policy));
        let installed = match checked {
            Ok(region_kubeconfig) => {
                ctx.registry.install(name, fingerprint, &region_kubeconfig).await
            }
            Err(refusal) => Err(refusal),
        };
        if let Err(refusal) = installed {
            info!(client_config = name, context, reason = %refusal.reason, message = %refusal.message, "kubeconfig refused");
            ctx.registry.mark_misconfigured(name, context, fingerprint, refusal);
        }
    }
    Ok(match ctx.registry.own_region(context) {
        Some(region) => Observation::Connected {
            server: region.server().to_string(),
            credential_expiry: region.credential_expiry(),
            health: region.health(),
            reaches_hub: region.reaches_hub(),
        },
        None => Observation::Refused(ctx.registry.refusal_of(context).unwrap_or_else(|| {
            Refusal::new(
                RefusalReason::KubeconfigInvalid,
                "the kubeconfig could not be used",
            )
        })),
    })
}

/// The Secret's `kubeconfig` value, or why there is none.
async fn read_kubeconfig(
    ctx: &ControllerContext,
    secret_name: &str,
) -> Result<Result<Vec<u8>, Refusal>, ReconcileError> {
    let namespace = &ctx.namespace;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = tokio::time::timeout(ctx.request_timeout, secrets.get_opt(secret_name))
        .await
        .map_err(|_| ReconcileError::Timeout {
            what: format!("reading Secret {namespace}/{secret_name}"),
            timeout: ctx.request_timeout,
        })?
        .map_err(|source| ReconcileError::ReadSecret {
            namespace: namespace.clone(),
            name: secret_name.to_string(),
            source,
        })?;
    let Some(secret) = secret else {
        return Ok(Err(Refusal::new(
            RefusalReason::SecretNotFound,
            format!(
                "Secret {namespace}/{secret_name} (spec.kubeConfigSecret) does not exist; create it with the region's kubeconfig under the key {KUBECONFIG_SECRET_KEY:?} (federator clientconfig create does)"
            ),
        )));
    };
    let data = secret.data.unwrap_or_default();
    match data.get(KUBECONFIG_SECRET_KEY) {
        Some(bytes) => Ok(Ok(bytes.0.clone())),
        None => {
            // Key names are not secret, and they help spot a typo.
            let keys: Vec<&str> = data.keys().map(String::as_str).collect();
            let has = if keys.is_empty() {
                "it has no data".to_string()
            } else {
                format!("it has {}", keys.join(", "))
            };
            Ok(Err(Refusal::new(
                RefusalReason::KubeconfigKeyMissing,
                format!(
                    "Secret {namespace}/{secret_name} has no key {KUBECONFIG_SECRET_KEY:?} ({has}); put the kubeconfig under that key"
                ),
            )))
        }
    }
}

/// Identifies what a region was built from, without keeping the credentials around.
fn fingerprint(
    kubeconfig: &Result<Vec<u8>, Refusal>,
    context: &str,
    policy: &KubeconfigPolicy,
) -> u64 {
    let mut hasher = DefaultHasher::new();
    context.hash(&mut hasher);
    policy.allow_exec_credentials.hash(&mut hasher);
    policy.allow_insecure_skip_tls_verify.hash(&mut hasher);
    match kubeconfig {
        Ok(bytes) => bytes.hash(&mut hasher),
        Err(refusal) => {
            refusal.reason.hash(&mut hasher);
            refusal.message.hash(&mut hasher);
        }
    }
    hasher.finish()
}
