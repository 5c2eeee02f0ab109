//! The `medusa-restore` init container: Medusa's image in RESTORE mode (`k8s/docker-entrypoint.sh`
//! and `medusa/service/grpc/restore.py`), with the environment k8ssandra-operator gives it
//! (`controllers/medusa/medusarestorejob_controller.go`: `BACKUP_NAME`, `RESTORE_KEY`,
//! `RESTORE_MAPPING`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cassandra::{
    CassandraError, CassandraModel, PodRef, RestoreOptions, SharedModel, StorageLocation,
};

/// The backup to restore.
pub const BACKUP_NAME_ENV: &str = "BACKUP_NAME";
/// A restore's identity: a pod restores each key once.
pub const RESTORE_KEY_ENV: &str = "RESTORE_KEY";
/// The JSON [`RestoreMapping`]; without it the restore is in place.
pub const RESTORE_MAPPING_ENV: &str = "RESTORE_MAPPING";
/// The pod's name (downward API); the pod's own name when unset.
pub const POD_NAME_ENV: &str = "POD_NAME";

/// Where the entrypoint records the last restore key, on the Cassandra data volume.
pub const LAST_RESTORE_FILE: &str = "/var/lib/cassandra/.last-restore";
/// Where `PrepareRestore` writes mappings, one file per restore key.
pub const RESTORE_MAPPING_DIR: &str = "/var/lib/cassandra/.restore_mapping";

/// `MedusaRestoreMapping` (k8ssandra-operator `apis/medusa/v1alpha1`), the JSON of
/// `RESTORE_MAPPING` and of `PrepareRestore`'s file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreMapping {
    /// Whether the restore is in place; the operator may leave it null.
    #[serde(default)]
    pub in_place: Option<bool>,
    /// Target pod name → where it restores from.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_map: BTreeMap<String, MappingSource>,
}

/// `MappingSource`: the backed-up host(s) a target restores from (Medusa uses the first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingSource {
    pub source: Vec<String>,
    #[serde(default)]
    pub seed: bool,
}

impl RestoreMapping {
    /// From (target pod name, source host) pairs; in place when some target is its own source,
    /// as Medusa's `_is_restore_in_place` decides (the tokenmaps share a host).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut in_place = false;
        let mut host_map = BTreeMap::new();
        for (target, source) in pairs {
            in_place |= target == source;
            host_map.insert(
                target.to_string(),
                MappingSource {
                    source: vec![source.to_string()],
                    seed: false,
                },
            );
        }
        RestoreMapping {
            in_place: Some(in_place),
            host_map,
        }
    }
}

/// What the init container did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreOutcome {
    /// `BACKUP_NAME` or `RESTORE_KEY` is unset or empty: nothing to do, nothing recorded.
    NotRequested { missing: &'static str },
    /// The pod's `.last-restore` already holds this key.
    AlreadyRestored { restore_key: String },
    /// A remote mapping without this pod (`POD_NAME ... not found in mapping`).
    NotInMapping { pod_name: String },
    /// The mapping's `in_place` is null: `restore.py` then skips the restore.
    InPlaceUnknown,
    /// No backup of that name holds the source host ("Skipped restore of missing backup").
    BackupMissing {
        backup_name: String,
        source_host: String,
    },
    /// The node's data now is the backup's.
    Restored {
        backup_name: String,
        source_host: String,
        in_place: bool,
        /// Live rows restored (every keyspace but the kept system ones).
        rows: usize,
    },
}

/// Why the init container failed (the pod does not start; the key is not recorded, so the next
/// start tries again).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("RESTORE_MAPPING is not a restore mapping: {0}")]
    InvalidMapping(String),
    #[error("the restore mapping gives {pod_name} no source host")]
    EmptySource { pod_name: String },
    #[error("restore of backup {backup_name} from {source_host} failed: {cause}")]
    Restore {
        backup_name: String,
        source_host: String,
        cause: CassandraError,
    },
}

/// Runs the `medusa-restore` init container of `pod`, whose Medusa stores in `storage`, with the
/// container's environment `env`: restores the node from the backup unless this `RESTORE_KEY`
/// was restored already, then records the key on the pod's volume (even when the restore was
/// skipped, as the entrypoint does once `restore.py` exits cleanly).
pub fn restore_on_start(
    model: &SharedModel,
    pod: &PodRef,
    storage: &StorageLocation,
    env: &BTreeMap<String, String>,
) -> Result<RestoreOutcome, RestoreError> {
    let var = |name: &str| env.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let Some(backup_name) = var(BACKUP_NAME_ENV) else {
        return Ok(RestoreOutcome::NotRequested {
            missing: BACKUP_NAME_ENV,
        });
    };
    let Some(restore_key) = var(RESTORE_KEY_ENV) else {
        return Ok(RestoreOutcome::NotRequested {
            missing: RESTORE_KEY_ENV,
        });
    };
    let mut model = model.lock();
    // The entrypoint compares `cat .last-restore`, whose trailing newline the shell drops.
    if model.volume_file(pod, LAST_RESTORE_FILE).map(str::trim_end) == Some(restore_key) {
        return Ok(RestoreOutcome::AlreadyRestored {
            restore_key: restore_key.to_string(),
        });
    }
    let pod_name = var(POD_NAME_ENV).unwrap_or(&pod.name);
    let outcome = restore(
        &mut model,
        pod,
        storage,
        backup_name,
        pod_name,
        var(RESTORE_MAPPING_ENV),
    )?;
    model.write_volume_file(pod, LAST_RESTORE_FILE, format!("{restore_key}\n"));
    Ok(outcome)
}

/// `restore.py`: `apply_mapping_env`, then `restore_backup`.
fn restore(
    model: &mut CassandraModel,
    pod: &PodRef,
    storage: &StorageLocation,
    backup_name: &str,
    pod_name: &str,
    mapping: Option<&str>,
) -> Result<RestoreOutcome, RestoreError> {
    let (in_place, source_host) = match mapping {
        None => (true, pod_name.to_string()),
        Some(json) => {
            let mapping: RestoreMapping = serde_json::from_str(json)
                .map_err(|e| RestoreError::InvalidMapping(e.to_string()))?;
            match mapping.in_place {
                Some(true) => (true, pod_name.to_string()),
                None => return Ok(RestoreOutcome::InPlaceUnknown),
                Some(false) => {
                    let Some(entry) = mapping.host_map.get(pod_name) else {
                        return Ok(RestoreOutcome::NotInMapping {
                            pod_name: pod_name.to_string(),
                        });
                    };
                    let source = entry.source.first().ok_or_else(|| RestoreError::EmptySource {
                        pod_name: pod_name.to_string(),
                    })?;
                    (false, source.clone())
                }
            }
        }
    };
    // `get_backups(show_all=False)`: the cluster backups this node (its fqdn) is part of.
    let has_node_backup = model
        .backup_status(storage, backup_name)
        .is_ok_and(|summary| summary.node_statuses.iter().any(|s| s.host == source_host));
    if !has_node_backup {
        return Ok(RestoreOutcome::BackupMissing {
            backup_name: backup_name.to_string(),
            source_host,
        });
    }
    let options = RestoreOptions {
        // restore.py keeps the target's credentials when restoring elsewhere.
        keep_auth: !in_place,
        adopt_tokens: true,
    };
    let rows =
        model.restore_node(pod, storage, backup_name, &source_host, options).map_err(|cause| {
            RestoreError::Restore {
                backup_name: backup_name.to_string(),
                source_host: source_host.clone(),
                cause,
            }
        })?;
    Ok(RestoreOutcome::Restored {
        backup_name: backup_name.to_string(),
        source_host,
        in_place,
        rows,
    })
}

/// The mapping `PrepareRestore` wrote on `pod`'s volume for `restore_key`, if any.
pub fn prepared_restore_mapping(
    model: &CassandraModel,
    pod: &PodRef,
    restore_key: &str,
) -> Option<RestoreMapping> {
    let text = model.volume_file(pod, &format!("{RESTORE_MAPPING_DIR}/{restore_key}"))?;
    serde_json::from_str(text).ok()
}
