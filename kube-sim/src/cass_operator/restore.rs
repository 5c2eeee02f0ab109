//! The `medusa-restore` init container of a pod whose template has one (k8ssandra-operator
//! adds it to the datacenter's `podTemplateSpec`; a MedusaRestoreJob sets its `BACKUP_NAME`,
//! `RESTORE_KEY` and `RESTORE_MAPPING`): it runs before Cassandra starts in the pod, with the
//! storage of the medusa.ini the pod's `medusa` container mounts.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Operator;
use super::desired::{Desired, str_at};
use crate::cassandra::PodRef;
use crate::medusa::{
    BACKUP_NAME_ENV, MEDUSA_INI_KEY, MedusaConfigError, RESTORE_KEY_ENV, RestoreError,
    RestoreOutcome, mounted_config_map, restore_on_start, storage_location_from_ini,
};

const INIT_CONTAINER: &str = "medusa-restore";

/// Why the init container failed (the pod stays not Ready, as with a failing init container).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum InitContainerError {
    #[error("medusa-restore: no medusa.ini in ConfigMap {0:?} mounted by the medusa container")]
    MissingConfig(String),
    #[error("medusa-restore: the pod's medusa container mounts no medusa.ini ConfigMap")]
    NoConfigMount,
    #[error("medusa-restore: {0}")]
    Config(#[from] MedusaConfigError),
    #[error("medusa-restore: {0}")]
    Restore(#[from] RestoreError),
}

/// The init container's environment: literal values and the downward API's pod name and
/// namespace (other sources are not simulated).
fn environment(container: &Value, pod_name: &str, namespace: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for item in container.get("env").and_then(Value::as_array).into_iter().flatten() {
        let Some(name) = str_at(item, "/name") else {
            continue;
        };
        let value = match (
            str_at(item, "/value"),
            str_at(item, "/valueFrom/fieldRef/fieldPath"),
        ) {
            (Some(value), _) => value.to_string(),
            (None, Some("metadata.name")) => pod_name.to_string(),
            (None, Some("metadata.namespace")) => namespace.to_string(),
            _ => continue,
        };
        env.insert(name.to_string(), value);
    }
    env
}

impl Operator {
    /// Runs the pod's `medusa-restore` init container, if it has one asking for a restore.
    pub(super) fn run_medusa_restore(
        &self,
        desired: &Desired,
        pod_name: &str,
        pod_ref: &PodRef,
    ) -> Result<Option<RestoreOutcome>, InitContainerError> {
        let Some(pod) = self.stored_pod(&desired.namespace, pod_name) else {
            return Ok(None);
        };
        let Some(container) = pod
            .pointer("/spec/initContainers")
            .and_then(Value::as_array)
            .and_then(|all| all.iter().find(|c| str_at(c, "/name") == Some(INIT_CONTAINER)))
        else {
            return Ok(None);
        };
        let env = environment(container, pod_name, &desired.namespace);
        let requested = [BACKUP_NAME_ENV, RESTORE_KEY_ENV]
            .iter()
            .all(|key| env.get(*key).is_some_and(|v| !v.is_empty()));
        if !requested {
            return Ok(None);
        }
        let config_map = mounted_config_map(&pod).ok_or(InitContainerError::NoConfigMount)?;
        let ini = self
            .config_map_value(&desired.namespace, &config_map, MEDUSA_INI_KEY)
            .ok_or(InitContainerError::MissingConfig(config_map))?;
        let storage = storage_location_from_ini(&ini)?;
        let outcome = restore_on_start(&self.cluster.cassandra, pod_ref, &storage, &env)?;
        tracing::debug!(pod = %pod_ref, ?outcome, "medusa-restore");
        Ok(Some(outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_environment_takes_values_and_the_pods_name() {
        let container = json!({"env": [
            {"name": "BACKUP_NAME", "value": "b1"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ]});
        let env = environment(&container, "pod-0", "ns");
        assert_eq!(
            env,
            BTreeMap::from([
                ("BACKUP_NAME".to_string(), "b1".to_string()),
                ("POD_NAME".to_string(), "pod-0".to_string()),
            ])
        );
    }
}
