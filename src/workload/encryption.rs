//! Cassandra's client and internode encryption, set up as k8ssandra-operator sets it up, from
//! `spec.cassandra.clientEncryptionStores` / `serverEncryptionStores` and the merged
//! cassandra.yaml of each datacenter:
//!
//! - client encryption is on when `client_encryption_options.enabled` is `true`, internode
//!   encryption when `server_encryption_options.internode_encryption` is set and not `none`;
//! - without stores for it, nothing is added (the user sets it up alone, as upstream allows);
//! - the stores' Secrets are mounted in the Cassandra container at `/mnt/<client|server>-<store>`
//!   and cassandra.yaml points at them; paths and passwords the user wrote stay;
//! - the store passwords come from `keystorePasswordSecretRef` / `truststorePasswordSecretRef`
//!   (key `keystore-password` / `truststore-password` unless named), else from those keys of the
//!   store's own Secret (upstream would take a store ref's `key` for the password too);
//! - client encryption also secures JMX (`-Dcom.sun.management.jmxremote.ssl=true`, the client
//!   stores as the JVM's defaults);
//! - with `secretsProvider: external` only the JMX SSL switches are set: an injector provides
//!   stores and passwords.
//!
//! Pure. Planning leaves the passwords out ([`PasswordNeed`]); the controller reads them from
//! the hub and [`fill_passwords`] puts them in, as upstream, in the datacenter's `config`.

use k8s_openapi::api::core::v1::{Volume, VolumeMount};
use serde_json::{Value, json};

use crate::api::shared::{EncryptionStores, SecretKeyRef};

/// Where the stores are mounted.
pub const STORES_MOUNT_PATH: &str = "/mnt";
/// cass-operator's `config` key of cassandra-env.sh's extra JVM flags.
const ENV_SH: &str = "cassandra-env-sh";
const ADDITIONAL_JVM_OPTS: &str = "additional-jvm-opts";

/// Client (CQL) or internode encryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Traffic {
    Client,
    Server,
}

impl Traffic {
    fn prefix(self) -> &'static str {
        match self {
            Traffic::Client => "client",
            Traffic::Server => "server",
        }
    }

    /// The cassandra.yaml section of its options.
    fn section(self) -> &'static str {
        match self {
            Traffic::Client => "client_encryption_options",
            Traffic::Server => "server_encryption_options",
        }
    }

    /// The K8ssandraCluster field of its stores.
    pub fn field(self) -> &'static str {
        match self {
            Traffic::Client => "spec.cassandra.clientEncryptionStores",
            Traffic::Server => "spec.cassandra.serverEncryptionStores",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Store {
    Keystore,
    Truststore,
}

impl Store {
    /// Its file name, and its cassandra.yaml path field.
    fn name(self) -> &'static str {
        match self {
            Store::Keystore => "keystore",
            Store::Truststore => "truststore",
        }
    }

    /// The cassandra.yaml field of its password.
    fn password_field(self) -> &'static str {
        match self {
            Store::Keystore => "keystore_password",
            Store::Truststore => "truststore_password",
        }
    }

    /// The JVM flags naming it and its password (the JVM's default stores: JMX over TLS).
    fn jvm_flags(self) -> (&'static str, &'static str) {
        match self {
            Store::Keystore => (
                "-Djavax.net.ssl.keyStore=",
                "-Djavax.net.ssl.keyStorePassword=",
            ),
            Store::Truststore => (
                "-Djavax.net.ssl.trustStore=",
                "-Djavax.net.ssl.trustStorePassword=",
            ),
        }
    }

    /// Its Secret in `stores`, and the Secret its password is in if one is named.
    fn refs(self, stores: &EncryptionStores) -> (&SecretKeyRef, Option<&SecretKeyRef>) {
        match self {
            Store::Keystore => (
                &stores.keystore_secret_ref,
                stores.keystore_password_secret_ref.as_ref(),
            ),
            Store::Truststore => (
                &stores.truststore_secret_ref,
                stores.truststore_password_secret_ref.as_ref(),
            ),
        }
    }
}

const STORES: [Store; 2] = [Store::Keystore, Store::Truststore];

/// The file of a store inside its container.
pub fn store_path(traffic: Traffic, store: Store) -> String {
    format!(
        "{STORES_MOUNT_PATH}/{}-{}/{}",
        traffic.prefix(),
        store.name(),
        store.name()
    )
}

/// Where a password goes in the datacenter's `config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordSlot {
    /// `cassandra-yaml.<section>.<field>`.
    CassandraYaml {
        section: &'static str,
        field: &'static str,
    },
    /// A cassandra-env.sh JVM flag: the prefix, then the password.
    JvmFlag(&'static str),
}

/// A password the datacenter's config needs, and the hub Secret key holding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordNeed {
    pub slot: PasswordSlot,
    pub secret: String,
    pub key: String,
    /// What it is, for messages: "the server keystore's password".
    pub what: String,
}

/// What a datacenter's encryption adds to its CassandraDatacenter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EncryptionSetup {
    /// cassandra.yaml `(section, field, value)`, set when the user did not.
    pub yaml: Vec<(&'static str, &'static str, String)>,
    pub jvm_flags: Vec<String>,
    /// Pod volumes, and their mounts in the Cassandra container.
    pub volumes: Vec<Value>,
    pub mounts: Vec<Value>,
    pub passwords: Vec<PasswordNeed>,
    /// The Secrets the datacenter reads: they must exist in the hub, and are copied to its region.
    pub secrets: Vec<String>,
}

/// Encryption turned on with stores that name no Secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field}.keystoreSecretRef and truststoreSecretRef must name Secrets: cassandra.yaml turns {what} on"
)]
pub struct MissingStores {
    pub field: &'static str,
    pub what: &'static str,
}

/// Whether `cassandra_yaml` turns encryption of `traffic` on.
pub fn enabled(cassandra_yaml: Option<&Value>, traffic: Traffic) -> bool {
    let options = cassandra_yaml.and_then(|y| y.get(traffic.section()));
    match traffic {
        Traffic::Client => options.and_then(|o| o.get("enabled")) == Some(&Value::Bool(true)),
        Traffic::Server => options
            .and_then(|o| o.get("internode_encryption"))
            .is_some_and(|mode| !mode.is_null() && mode.as_str() != Some("none")),
    }
}

/// The encryption a datacenter with this merged cassandra.yaml needs. Pure.
pub fn setup(
    cassandra_yaml: Option<&Value>,
    client_stores: Option<&EncryptionStores>,
    server_stores: Option<&EncryptionStores>,
    external_secrets: bool,
) -> Result<EncryptionSetup, MissingStores> {
    let mut setup = EncryptionSetup::default();
    let client = enabled(cassandra_yaml, Traffic::Client);
    if client {
        setup.jvm_flags.extend(
            [
                "-Dcom.sun.management.jmxremote.ssl=true",
                "-Dcom.sun.management.jmxremote.ssl.need.client.auth=true",
            ]
            .map(String::from),
        );
    }
    if external_secrets {
        return Ok(setup);
    }
    let given = |section: &str, field: &str| {
        cassandra_yaml
            .and_then(|y| y.get(section))
            .and_then(|o| o.get(field))
            .is_some_and(|v| !v.is_null())
    };
    for (traffic, stores, what) in [
        (Traffic::Client, client_stores, "client encryption"),
        (Traffic::Server, server_stores, "internode encryption"),
    ] {
        // Without stores the user sets encryption up alone (stores in the image, say).
        let Some(stores) = stores.filter(|_| enabled(cassandra_yaml, traffic)) else {
            continue;
        };
        if stores.keystore_secret_ref.name.is_empty()
            || stores.truststore_secret_ref.name.is_empty()
        {
            return Err(MissingStores {
                field: traffic.field(),
                what,
            });
        }
        for store in STORES {
            let (reference, _) = store.refs(stores);
            let (volume, mount) = store_volume(traffic, store, reference);
            setup.volumes.push(volume);
            setup.mounts.push(mount);
            setup.yaml.push((traffic.section(), store.name(), store_path(traffic, store)));
            let (secret, key) = store_password_source(stores, store);
            push_secret(&mut setup.secrets, &reference.name);
            push_secret(&mut setup.secrets, &secret);
            let what = format!("the {} {}'s password", traffic.prefix(), store.name());
            if !given(traffic.section(), store.password_field()) {
                setup.passwords.push(PasswordNeed {
                    slot: PasswordSlot::CassandraYaml {
                        section: traffic.section(),
                        field: store.password_field(),
                    },
                    secret: secret.clone(),
                    key: key.clone(),
                    what: what.clone(),
                });
            }
            if traffic == Traffic::Client {
                let (path_flag, password_flag) = store.jvm_flags();
                setup.jvm_flags.push(format!("{path_flag}{}", store_path(traffic, store)));
                setup.passwords.push(PasswordNeed {
                    slot: PasswordSlot::JvmFlag(password_flag),
                    secret,
                    key,
                    what,
                });
            }
        }
    }
    Ok(setup)
}

/// The pod volume of a store's Secret (its file only) and the mount that puts the file at
/// [`store_path`].
fn store_volume(traffic: Traffic, store: Store, reference: &SecretKeyRef) -> (Value, Value) {
    let volume = format!("{}-{}", traffic.prefix(), store.name());
    let file_key = reference.key.clone().filter(|k| !k.is_empty());
    (
        json!({"name": volume, "secret": {
            "secretName": reference.name,
            "items": [{"key": file_key.as_deref().unwrap_or(store.name()), "path": store.name()}]
        }}),
        json!({"name": volume, "mountPath": format!("{STORES_MOUNT_PATH}/{volume}")}),
    )
}

/// Pod volumes and container mounts of both stores of `stores`, at the paths the datacenters
/// use: for the components (Stargate, Reaper) that share the datacenter's encryption.
pub fn stores_volumes(
    traffic: Traffic,
    stores: &EncryptionStores,
) -> (Vec<Volume>, Vec<VolumeMount>) {
    fn typed<T: serde::de::DeserializeOwned>(values: Vec<Value>) -> Vec<T> {
        values.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect()
    }
    let (volumes, mounts) =
        STORES.into_iter().map(|store| store_volume(traffic, store, store.refs(stores).0)).unzip();
    (typed(volumes), typed(mounts))
}

fn push_secret(secrets: &mut Vec<String>, name: &str) {
    if !secrets.iter().any(|s| s == name) {
        secrets.push(name.to_string());
    }
}

/// The Secret and key holding the password of `stores`' keystore or truststore.
pub fn store_password_source(stores: &EncryptionStores, store: Store) -> (String, String) {
    let (store_ref, password_ref) = store.refs(stores);
    let default_key = format!("{}-password", store.name());
    match password_ref.filter(|r| !r.name.is_empty()) {
        Some(r) => (
            r.name.clone(),
            r.key.clone().filter(|k| !k.is_empty()).unwrap_or(default_key),
        ),
        None => (store_ref.name.clone(), default_key),
    }
}

/// Puts each needed password into `config` (a CassandraDatacenter's `spec.config`); the
/// passwords come from `lookup(secret, key)`. Pure. Returns what could not be found.
pub fn fill_passwords(
    config: &mut Value,
    needs: &[PasswordNeed],
    lookup: impl Fn(&str, &str) -> Option<String>,
) -> Result<(), Vec<String>> {
    let mut missing = Vec::new();
    for need in needs {
        let Some(password) = lookup(&need.secret, &need.key) else {
            missing.push(format!(
                "{} (key {} of Secret {})",
                need.what, need.key, need.secret
            ));
            continue;
        };
        match &need.slot {
            PasswordSlot::CassandraYaml { section, field } => {
                config["cassandra-yaml"][*section][*field] = Value::String(password);
            }
            PasswordSlot::JvmFlag(prefix) => {
                let flags = &mut config[ENV_SH][ADDITIONAL_JVM_OPTS];
                if !flags.is_array() {
                    *flags = Value::Array(Vec::new());
                }
                if let Value::Array(flags) = flags
                    && !flags.iter().any(|f| f.as_str().is_some_and(|f| f.starts_with(prefix)))
                {
                    flags.insert(0, Value::String(format!("{prefix}{password}")));
                }
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stores(keystore: &str, truststore: &str) -> EncryptionStores {
        serde_json::from_value(json!({
            "keystoreSecretRef": {"name": keystore},
            "truststoreSecretRef": {"name": truststore}
        }))
        .expect("stores")
    }

    fn yaml(value: Value) -> Option<Value> {
        Some(value)
    }

    #[test]
    fn nothing_without_encryption_in_cassandra_yaml() {
        let setup = setup(
            yaml(json!({"server_encryption_options": {"internode_encryption": "none"}})).as_ref(),
            Some(&stores("c", "c")),
            Some(&stores("s", "s")),
            false,
        )
        .expect("setup");
        assert_eq!(setup, EncryptionSetup::default());
    }

    #[test]
    fn internode_encryption_mounts_the_server_stores_and_needs_their_passwords() {
        let mut server = stores("server-stores", "server-stores");
        server.truststore_password_secret_ref = Some(SecretKeyRef {
            name: "passwords".into(),
            key: Some("trust".into()),
        });
        let setup = setup(
            yaml(json!({"server_encryption_options": {"internode_encryption": "all"}})).as_ref(),
            None,
            Some(&server),
            false,
        )
        .expect("setup");
        assert_eq!(
            setup.volumes,
            vec![
                json!({"name": "server-keystore", "secret": {"secretName": "server-stores",
                    "items": [{"key": "keystore", "path": "keystore"}]}}),
                json!({"name": "server-truststore", "secret": {"secretName": "server-stores",
                    "items": [{"key": "truststore", "path": "truststore"}]}}),
            ]
        );
        assert_eq!(
            setup.mounts,
            vec![
                json!({"name": "server-keystore", "mountPath": "/mnt/server-keystore"}),
                json!({"name": "server-truststore", "mountPath": "/mnt/server-truststore"}),
            ]
        );
        assert_eq!(
            setup.yaml,
            vec![
                (
                    "server_encryption_options",
                    "keystore",
                    "/mnt/server-keystore/keystore".to_string()
                ),
                (
                    "server_encryption_options",
                    "truststore",
                    "/mnt/server-truststore/truststore".to_string()
                ),
            ]
        );
        let sources: Vec<(&str, &str)> =
            setup.passwords.iter().map(|p| (p.secret.as_str(), p.key.as_str())).collect();
        assert_eq!(
            sources,
            vec![
                ("server-stores", "keystore-password"),
                ("passwords", "trust")
            ]
        );
        assert_eq!(setup.secrets, vec!["server-stores", "passwords"]);
        assert!(setup.jvm_flags.is_empty(), "JMX is for client encryption");
    }

    #[test]
    fn client_encryption_also_secures_jmx() {
        let setup = setup(
            yaml(json!({"client_encryption_options": {"enabled": true}})).as_ref(),
            Some(&stores("client-ks", "client-ts")),
            None,
            false,
        )
        .expect("setup");
        assert_eq!(
            setup.jvm_flags,
            vec![
                "-Dcom.sun.management.jmxremote.ssl=true",
                "-Dcom.sun.management.jmxremote.ssl.need.client.auth=true",
                "-Djavax.net.ssl.keyStore=/mnt/client-keystore/keystore",
                "-Djavax.net.ssl.trustStore=/mnt/client-truststore/truststore",
            ]
        );
        let slots: Vec<&PasswordSlot> = setup.passwords.iter().map(|p| &p.slot).collect();
        assert!(slots.contains(&&PasswordSlot::JvmFlag("-Djavax.net.ssl.keyStorePassword=")));
        assert_eq!(setup.secrets, vec!["client-ks", "client-ts"]);
    }

    #[test]
    fn stores_naming_no_secret_are_an_error_naming_the_field() {
        let error = setup(
            yaml(json!({"client_encryption_options": {"enabled": true}})).as_ref(),
            Some(&stores("ks", "")),
            None,
            false,
        )
        .expect_err("no truststore");
        assert_eq!(
            error.to_string(),
            "spec.cassandra.clientEncryptionStores.keystoreSecretRef and truststoreSecretRef must name Secrets: cassandra.yaml turns client encryption on"
        );
        // No stores at all: the user's own set-up, left alone.
        let own = setup(
            yaml(json!({"client_encryption_options": {"enabled": true}})).as_ref(),
            None,
            None,
            false,
        )
        .expect("no stores");
        assert!(own.passwords.is_empty() && own.volumes.is_empty());
        // External secrets: an injector provides the stores.
        let external = setup(
            yaml(json!({"client_encryption_options": {"enabled": true}})).as_ref(),
            None,
            None,
            true,
        )
        .expect("external");
        assert_eq!(external.jvm_flags.len(), 2);
        assert!(external.passwords.is_empty() && external.volumes.is_empty());
    }

    #[test]
    fn passwords_fill_what_the_user_left_out_and_missing_ones_are_named() {
        let setup = setup(
            yaml(json!({
                "client_encryption_options": {"enabled": true, "truststore_password": "mine"}
            }))
            .as_ref(),
            Some(&stores("ks", "ts")),
            None,
            false,
        )
        .expect("setup");
        let mut config = json!({"cassandra-yaml": {"client_encryption_options": {
            "enabled": true, "truststore_password": "mine"
        }}, "cassandra-env-sh": {"additional-jvm-opts": ["-Dx"]}});
        let lookup = |secret: &str, key: &str| match (secret, key) {
            ("ks", "keystore-password") => Some("k-secret".to_string()),
            ("ts", "truststore-password") => Some("t-secret".to_string()),
            _ => None,
        };
        fill_passwords(&mut config, &setup.passwords, lookup).expect("all found");
        let options = &config["cassandra-yaml"]["client_encryption_options"];
        assert_eq!(options["keystore_password"], "k-secret");
        assert_eq!(options["truststore_password"], "mine", "the user's stays");
        assert_eq!(
            config["cassandra-env-sh"]["additional-jvm-opts"],
            json!([
                "-Djavax.net.ssl.trustStorePassword=t-secret",
                "-Djavax.net.ssl.keyStorePassword=k-secret",
                "-Dx"
            ])
        );

        let mut empty = json!({});
        let missing =
            fill_passwords(&mut empty, &setup.passwords, |_, _| None).expect_err("missing");
        assert_eq!(
            missing[0],
            "the client keystore's password (key keystore-password of Secret ks)"
        );
    }
}
