//! The MedusaConfiguration controller, as k8ssandra-operator's
//! (`medusaconfiguration_controller.go`): in every mode, on the objects of the cluster it runs
//! in, it checks the storage Secret `spec.storageProperties.storageSecretRef` names and writes
//! `SecretAvailable` and `Ready`. Federator also checks that the Secret holds the key Medusa
//! reads (`credentials`, mounted as its `key_file`) and that the credentials type fits
//! (upstream's rule for a K8ssandraCluster's storage). In the control plane (which may list
//! Secrets), a change of a Secret re-checks the configurations of its namespace that name it; a
//! data plane reads Secrets by name only, and re-checks a configuration that is not Ready every
//! [`UNREADY_RECHECK`]. Only the Secret's keys' names are kept: nothing of its content goes to
//! status, logs or Events.
//!
//! Pure part: [`check`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Error as ControllerError};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use tracing::{debug, info, warn};

use super::job_controller::{JobError, JobRef};
use crate::api::medusa::configuration::{MedusaConfiguration, MedusaConfigurationStatus};
use crate::api::medusa::{CredentialsType, MedusaStorage};
use crate::api::shared::{CONDITION_FALSE, CONDITION_TRUE, new_condition, set_condition};
use crate::cache::scoped;
use crate::events::{Events, Notice};

pub const FIELD_MANAGER: &str = "federator-medusa-configuration";
pub const CONTROLLER: &str = "medusaconfiguration";

pub const CONDITION_SECRET_AVAILABLE: &str = "SecretAvailable";
pub const CONDITION_READY: &str = "Ready";

/// The key of the storage Secret Medusa reads (its `key_file`).
pub const STORAGE_SECRET_KEY: &str = "credentials";

/// Re-look now and then even without a change (a Secret watch that missed an event).
const RECHECK: Duration = Duration::from_secs(300);
/// Re-look at a configuration that is not Ready, where Secrets are not watched.
pub const UNREADY_RECHECK: Duration = Duration::from_secs(10);

pub struct ConfigurationContext {
    pub client: kube::Client,
    /// Whether Secrets are watched (the control plane); else a configuration that is not
    /// Ready is checked again every [`UNREADY_RECHECK`].
    pub watch_secrets: bool,
    pub events: Events,
    pub ops: crate::ops::Ops,
}

/// What is known of the storage Secret: whether it exists, and its keys' names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSeen {
    Missing,
    Keys(BTreeSet<String>),
}

/// The outcome of a check: `SecretAvailable` (when a Secret is named) and `Ready`, each as
/// (status, reason, message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub secret_available: Option<(&'static str, &'static str, String)>,
    pub ready: (&'static str, &'static str, String),
}

/// The storage Secret the configuration names, if any.
pub fn secret_name(storage: Option<&MedusaStorage>) -> Option<String> {
    let reference = storage?.storage_secret_ref.as_ref()?;
    Some(reference.name.clone()).filter(|name| !name.is_empty())
}

/// Pure: the conditions of a configuration with `storage` in `namespace`, whose Secret is
/// `secret` (`None` when none is named).
pub fn check(
    storage: Option<&MedusaStorage>,
    namespace: &str,
    secret: Option<&SecretSeen>,
) -> Checked {
    let role_based = storage.and_then(|s| s.credentials_type) == Some(CredentialsType::RoleBased);
    let Some(name) = secret_name(storage) else {
        // Upstream: a configuration without a Secret is Ready (a K8ssandraCluster naming it may
        // give one, or use role-based credentials).
        return Checked {
            secret_available: None,
            ready: (CONDITION_TRUE, "Ready", "no storage Secret is named".into()),
        };
    };
    if role_based {
        let message = format!(
            "storageProperties.storageSecretRef names Secret {name} but credentialsType is role-based: remove one of them"
        );
        return Checked {
            secret_available: None,
            ready: (CONDITION_FALSE, "SecretNotAllowed", message),
        };
    }
    let available = match secret {
        None | Some(SecretSeen::Missing) => (
            CONDITION_FALSE,
            "SecretNotFound",
            format!(
                "Secret {name} does not exist in namespace {namespace}: create it with the storage credentials under the key {STORAGE_SECRET_KEY}"
            ),
        ),
        Some(SecretSeen::Keys(keys)) if !keys.contains(STORAGE_SECRET_KEY) => (
            CONDITION_FALSE,
            "SecretKeyMissing",
            format!(
                "Secret {name} has no key {STORAGE_SECRET_KEY}, which Medusa reads as its credentials file: add it"
            ),
        ),
        Some(SecretSeen::Keys(_)) => (
            CONDITION_TRUE,
            "SecretFound",
            format!("Secret {name} has the key {STORAGE_SECRET_KEY}"),
        ),
    };
    let ready = match available.0 == CONDITION_TRUE {
        true => (
            CONDITION_TRUE,
            "Ready",
            format!("the storage Secret {name} is usable"),
        ),
        false => (CONDITION_FALSE, available.1, available.2.clone()),
    };
    Checked {
        secret_available: Some(available),
        ready,
    }
}

/// Pure: `previous` with the conditions of `checked`.
pub fn conditions(
    previous: &[Condition],
    checked: &Checked,
    generation: Option<i64>,
    now: Time,
) -> Vec<Condition> {
    let mut conditions = previous.to_vec();
    match &checked.secret_available {
        Some((status, reason, message)) => {
            set_condition(
                &mut conditions,
                new_condition(
                    CONDITION_SECRET_AVAILABLE,
                    status,
                    reason,
                    message,
                    generation,
                    now.clone(),
                ),
            );
        }
        None => conditions.retain(|c| c.type_ != CONDITION_SECRET_AVAILABLE),
    }
    let (status, reason, message) = &checked.ready;
    set_condition(
        &mut conditions,
        new_condition(CONDITION_READY, status, reason, message, generation, now),
    );
    conditions
}

async fn reconcile(
    object: Arc<MedusaConfiguration>,
    context: Arc<ConfigurationContext>,
) -> Result<Action, JobError> {
    let id = JobRef::of(object.as_ref())?;
    let storage = object.spec.storage_properties.as_ref();
    let seen = match secret_name(storage) {
        None => None,
        Some(name) => {
            let secrets: Api<Secret> = Api::namespaced(context.client.clone(), &id.namespace);
            let found = secrets
                .get_opt(&name)
                .await
                .map_err(id.api_error(format!("reading Secret {name}")))?;
            // Only the keys' names are kept.
            Some(match found {
                None => SecretSeen::Missing,
                Some(secret) => SecretSeen::Keys(
                    (secret.data.iter().flat_map(|d| d.keys()))
                        .chain(secret.string_data.iter().flat_map(|d| d.keys()))
                        .cloned()
                        .collect(),
                ),
            })
        }
    };
    let checked = check(storage, &id.namespace, seen.as_ref());
    let previous = object.status.clone().unwrap_or_default().conditions.unwrap_or_default();
    let next = conditions(
        &previous,
        &checked,
        object.metadata.generation,
        Time(Timestamp::now()),
    );
    if next != previous {
        let status = MedusaConfigurationStatus {
            conditions: Some(next),
        };
        id.write_status::<MedusaConfiguration>(&context.client, FIELD_MANAGER, &status).await?;
        let was_ready =
            (previous.iter()).find(|c| c.type_ == CONDITION_READY).map(|c| c.status.as_str());
        let (ready, reason, message) = &checked.ready;
        if was_ready != Some(*ready) {
            let notice = match *ready == CONDITION_TRUE {
                true => Notice::normal("Ready", "Check", message.clone()),
                false => Notice::warning(reason, "Check", message.clone()),
            };
            context.events.publish(object.as_ref(), &notice).await;
        }
    }
    let ready = checked.ready.0 == CONDITION_TRUE;
    Ok(Action::requeue(match ready || context.watch_secrets {
        true => RECHECK,
        false => UNREADY_RECHECK,
    }))
}

impl AsRef<crate::ops::Ops> for ConfigurationContext {
    fn as_ref(&self) -> &crate::ops::Ops {
        &self.ops
    }
}

/// Runs the controller until `shutdown`: MedusaConfigurations, and, when
/// [`ConfigurationContext::watch_secrets`], the Secrets' metadata (a change re-checks the
/// configurations of its namespace that name it).
pub async fn run(
    context: Arc<ConfigurationContext>,
    watch_namespaces: Vec<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let backoff = crate::ops::RetryBackoff::default();
    let client = context.client.clone();
    info!("MedusaConfiguration controller started");
    let controller = Controller::new(
        scoped::<MedusaConfiguration>(&client, &watch_namespaces),
        watcher::Config::default(),
    );
    context.ops.health.track_cache(CONTROLLER, controller.store());
    let metrics = Arc::clone(&context.ops.metrics);
    let store = controller.store();
    let controller = match context.watch_secrets {
        false => controller,
        true => controller.watches(
            scoped::<PartialObjectMeta<Secret>>(&client, &watch_namespaces),
            watcher::Config::default(),
            move |secret| {
                let (namespace, name) = (secret.namespace(), secret.name_any());
                (store.state().into_iter())
                    .filter(|c| {
                        c.namespace() == namespace
                            && secret_name(c.spec.storage_properties.as_ref()).as_deref()
                                == Some(name.as_str())
                    })
                    .map(|c| ObjectRef::from_obj(&*c))
                    .collect::<Vec<_>>()
            },
        ),
    };
    controller
        .graceful_shutdown_on(shutdown)
        .run(
            crate::ops::instrument(
                CONTROLLER,
                |_: &MedusaConfiguration| String::new(),
                &backoff,
                &metrics,
                reconcile,
            ),
            backoff.error_policy(),
            context,
        )
        .for_each(|result| {
            match result {
                Ok((object, _)) => debug!(object = %object, "MedusaConfiguration reconciled"),
                Err(ControllerError::ObjectNotFound(_)) => {}
                Err(ControllerError::ReconcilerFailed(error, object)) => {
                    warn!(object = %object, error = %error, "reconcile failed; retrying");
                }
                Err(error) => warn!(error = %error, "MedusaConfiguration controller"),
            }
            futures::future::ready(())
        })
        .await;
    info!("MedusaConfiguration controller stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::shared::SecretRef;

    fn storage(secret: Option<&str>) -> MedusaStorage {
        MedusaStorage {
            storage_secret_ref: secret.map(|name| SecretRef { name: name.into() }),
            ..Default::default()
        }
    }

    fn keys(names: &[&str]) -> SecretSeen {
        SecretSeen::Keys(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn a_missing_secret_is_not_found_then_ready_once_it_has_the_key() {
        let storage = storage(Some("bucket-key"));
        let missing = check(Some(&storage), "ns", Some(&SecretSeen::Missing));
        let (status, reason, message) = missing.secret_available.clone().expect("checked");
        assert_eq!((status, reason), (CONDITION_FALSE, "SecretNotFound"));
        assert!(
            message.contains("Secret bucket-key does not exist in namespace ns"),
            "{message}"
        );
        assert_eq!(
            (missing.ready.0, missing.ready.1),
            (CONDITION_FALSE, "SecretNotFound")
        );

        let no_key = check(Some(&storage), "ns", Some(&keys(&["password"])));
        assert_eq!(no_key.ready.1, "SecretKeyMissing");

        let found = check(Some(&storage), "ns", Some(&keys(&["credentials"])));
        assert_eq!(found.secret_available.map(|s| s.0), Some(CONDITION_TRUE));
        assert_eq!(found.ready.0, CONDITION_TRUE);
    }

    #[test]
    fn no_secret_is_ready_and_a_secret_with_role_based_credentials_is_not() {
        let none = check(Some(&storage(None)), "ns", None);
        assert_eq!(
            (none.secret_available, none.ready.0),
            (None, CONDITION_TRUE)
        );
        assert_eq!(check(None, "ns", None).ready.0, CONDITION_TRUE);
        let mut role_based = storage(Some("bucket-key"));
        role_based.credentials_type = Some(CredentialsType::RoleBased);
        let refused = check(Some(&role_based), "ns", Some(&keys(&["credentials"])));
        assert_eq!(
            (refused.ready.0, refused.ready.1),
            (CONDITION_FALSE, "SecretNotAllowed")
        );
    }

    #[test]
    fn conditions_move_with_the_secret_and_keep_their_transition_time() {
        let t = |s| Time(Timestamp::from_second(s).expect("time"));
        let storage = storage(Some("k"));
        let missing = check(Some(&storage), "ns", Some(&SecretSeen::Missing));
        let first = conditions(&[], &missing, Some(1), t(1));
        assert_eq!(first.len(), 2);
        assert_eq!(
            conditions(&first, &missing, Some(1), t(5)),
            first,
            "unchanged"
        );
        let found = check(Some(&storage), "ns", Some(&keys(&["credentials"])));
        let ready = conditions(&first, &found, Some(1), t(9));
        let condition = ready.iter().find(|c| c.type_ == CONDITION_READY).expect("Ready");
        assert_eq!(
            (
                condition.status.as_str(),
                condition.last_transition_time.clone()
            ),
            ("True", t(9))
        );
    }
}
