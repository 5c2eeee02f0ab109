//! The part of `medusa.ini` the stand-in obeys. k8ssandra-operator writes the file into a
//! ConfigMap (`pkg/medusa/reconcile.go`, `CreateMedusaIni`); Medusa reads it with Python's
//! configparser (`medusa/config.py`).

use std::collections::BTreeMap;

use crate::cassandra::StorageLocation;

/// Medusa's default `backup_grace_period_in_days`.
pub const DEFAULT_BACKUP_GRACE_PERIOD_DAYS: i64 = 10;

/// Why `medusa.ini` cannot be used; Medusa exits at start-up on each of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MedusaConfigError {
    #[error("Required configuration \"{0}\" is missing in [storage] section.")]
    Missing(&'static str),
    #[error("Required configuration \"{0}\" cannot contain a slash (\"/\")")]
    Slash(&'static str),
    #[error("[storage] {key} = {value:?} is not a whole number")]
    NotANumber { key: &'static str, value: String },
    #[error(
        "line {line} of medusa.ini is neither a [section], a key = value nor a comment: {text:?}"
    )]
    Syntax { line: usize, text: String },
}

/// What one pod's Medusa is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedusaConfig {
    /// `storage_provider` (s3, gcs, local, ...): informative here, every bucket is the model's.
    pub storage_provider: String,
    /// `bucket_name` and `prefix` (k8ssandra-operator defaults the prefix to the cluster name).
    pub storage: StorageLocation,
    /// `max_backup_count`: purges keep this many backups per node (0: no limit).
    pub max_backup_count: usize,
    /// `max_backup_age` in days: purges drop older backups (0: no limit).
    pub max_backup_age_days: i64,
    /// `backup_grace_period_in_days`. Informative: the model applies its own grace period
    /// (`CassandraModel::set_backup_grace_period_days`) to every bucket.
    pub backup_grace_period_days: i64,
}

impl MedusaConfig {
    /// A config for `storage` with Medusa's defaults (no purge limits).
    pub fn new(storage: StorageLocation) -> Self {
        MedusaConfig {
            storage_provider: "local".to_string(),
            storage,
            max_backup_count: 0,
            max_backup_age_days: 0,
            backup_grace_period_days: DEFAULT_BACKUP_GRACE_PERIOD_DAYS,
        }
    }

    /// Reads `medusa.ini` text: its `[storage]` section, with Medusa's checks (`bucket_name` and
    /// `storage_provider` required, no slash in `bucket_name` or `prefix`).
    pub fn from_ini(text: &str) -> Result<Self, MedusaConfigError> {
        let sections = parse_ini(text)?;
        let storage = sections.get("storage");
        let get = |key: &str| storage.and_then(|s| s.get(key)).map(String::as_str);
        let required = |key: &'static str| -> Result<&str, MedusaConfigError> {
            get(key).filter(|v| !v.is_empty()).ok_or(MedusaConfigError::Missing(key))
        };
        let number = |key: &'static str, default: i64| -> Result<i64, MedusaConfigError> {
            match get(key).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(value) => value.parse().map_err(|_| MedusaConfigError::NotANumber {
                    key,
                    value: value.to_string(),
                }),
            }
        };
        let bucket = required("bucket_name")?;
        let storage_provider = required("storage_provider")?;
        let prefix = get("prefix").unwrap_or("");
        if bucket.contains('/') {
            return Err(MedusaConfigError::Slash("bucket_name"));
        }
        if prefix.contains('/') {
            return Err(MedusaConfigError::Slash("prefix"));
        }
        let max_backup_count = number("max_backup_count", 0)?;
        Ok(MedusaConfig {
            storage_provider: storage_provider.to_string(),
            storage: StorageLocation::new(bucket, prefix),
            max_backup_count: usize::try_from(max_backup_count).unwrap_or(0),
            max_backup_age_days: number("max_backup_age", 0)?.max(0),
            backup_grace_period_days: number(
                "backup_grace_period_in_days",
                DEFAULT_BACKUP_GRACE_PERIOD_DAYS,
            )?,
        })
    }
}

/// The storage a pod's Medusa uses, from its `medusa.ini`.
pub fn storage_location_from_ini(text: &str) -> Result<StorageLocation, MedusaConfigError> {
    MedusaConfig::from_ini(text).map(|config| config.storage)
}

/// configparser's subset that medusa.ini uses: `[section]`, `key = value` or `key: value`,
/// `#` and `;` comment lines; keys are case-insensitive. Lines are trimmed first because
/// k8ssandra-operator's template indents them.
fn parse_ini(text: &str) -> Result<BTreeMap<String, BTreeMap<String, String>>, MedusaConfigError> {
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_string();
            sections.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        let split = line.find(['=', ':']);
        match (split, &current) {
            (Some(at), Some(section)) => {
                let key = line[..at].trim().to_ascii_lowercase();
                let value = line[at + 1..].trim().to_string();
                sections.entry(section.clone()).or_default().insert(key, value);
            }
            _ => {
                return Err(MedusaConfigError::Syntax {
                    line: number + 1,
                    text: raw.to_string(),
                });
            }
        }
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What k8ssandra-operator's `CreateMedusaIni` renders, indentation included.
    const K8SSANDRA_INI: &str = "
    [cassandra]
    use_sudo = false

    [storage]
    use_sudo_for_restore = false
    storage_provider = s3_compatible
    bucket_name = k8ssandra-medusa
    key_file = /etc/medusa-secrets/credentials
    prefix = demo
    max_backup_age = 7
    max_backup_count = 3
    secure = False
    ssl_verify = False

    [grpc]
    enabled = 1

    [kubernetes]
    use_mgmt_api = 1
    enabled = 1";

    #[test]
    fn reads_what_k8ssandra_operator_writes() {
        let config = MedusaConfig::from_ini(K8SSANDRA_INI).expect("valid medusa.ini");
        assert_eq!(
            config.storage,
            StorageLocation::new("k8ssandra-medusa", "demo")
        );
        assert_eq!(config.storage_provider, "s3_compatible");
        assert_eq!(
            (config.max_backup_count, config.max_backup_age_days),
            (3, 7)
        );
        assert_eq!(
            config.backup_grace_period_days,
            DEFAULT_BACKUP_GRACE_PERIOD_DAYS
        );
        assert_eq!(
            storage_location_from_ini(K8SSANDRA_INI),
            Ok(StorageLocation::new("k8ssandra-medusa", "demo"))
        );
    }

    #[test]
    fn refuses_what_medusa_refuses() {
        assert_eq!(
            MedusaConfig::from_ini("[storage]\nstorage_provider = s3\n"),
            Err(MedusaConfigError::Missing("bucket_name"))
        );
        assert_eq!(
            MedusaConfig::from_ini(
                "[storage]\nbucket_name = b\nstorage_provider = s3\nprefix = a/b"
            ),
            Err(MedusaConfigError::Slash("prefix"))
        );
        assert!(matches!(
            MedusaConfig::from_ini(
                "[storage]\nbucket_name=b\nstorage_provider=s3\nmax_backup_count=x"
            ),
            Err(MedusaConfigError::NotANumber {
                key: "max_backup_count",
                ..
            })
        ));
        assert!(matches!(
            MedusaConfig::from_ini("bucket_name = b"),
            Err(MedusaConfigError::Syntax { line: 1, .. })
        ));
    }
}
