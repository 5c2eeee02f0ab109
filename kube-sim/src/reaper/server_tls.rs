//! Reaper's TLS on its `app` port, as the image's configure script sets it up from the pod's
//! environment: `REAPER_SERVER_TLS_ENABLE` set to anything (the script only tests that it is
//! not empty) makes the application connector HTTPS with the JKS stores at
//! `REAPER_SERVER_TLS_KEYSTORE_PATH` and `REAPER_SERVER_TLS_TRUSTSTORE_PATH`, and
//! `REAPER_SERVER_TLS_CLIENT_AUTH=true` requires a client certificate the truststore trusts.
//! The admin connector stays plain HTTP.
//!
//! kube-sim cannot read JKS. The stores come from a Secret volume mounted where the paths
//! point; cert-manager, asked for keystores, writes `keystore.jks` and `truststore.jks` into
//! the same Secret as `tls.crt`, `tls.key` and `ca.crt`. So the files the paths name must be in
//! the Secret (else Reaper fails to start, as the real one does without its keystore), and the
//! server's certificate and key are read from `tls.crt` and `tls.key`, the truststore's content
//! from `ca.crt`.

use base64::Engine as _;
use serde_json::Value;

use crate::store::Store;

/// What a TLS Reaper serves with.
#[derive(Clone)]
pub struct ServerTls {
    pub certificate_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// The truststore's CA, when client certificates are required.
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("client_auth", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// A variable of the `reaper` container: its value, or the Secret key it refers to.
pub(super) fn variable(store: &Store, namespace: &str, pod: &Value, name: &str) -> Option<String> {
    let env = super::reaper_container(pod)?.get("env")?.as_array()?;
    // Kubernetes keeps the last of a repeated name.
    let var = env.iter().rev().find(|v| v.get("name").and_then(Value::as_str) == Some(name))?;
    if let Some(value) = var.get("value").and_then(Value::as_str) {
        return Some(value.to_string());
    }
    let reference = var.pointer("/valueFrom/secretKeyRef")?;
    let secret = secret(store, namespace, reference.get("name")?.as_str()?)?;
    String::from_utf8(secret_key(&secret, reference.get("key")?.as_str()?)?).ok()
}

fn secret(store: &Store, namespace: &str, name: &str) -> Option<Value> {
    let secrets = store.resource("", "secrets")?;
    store.get(&secrets, Some(namespace), name).ok()
}

/// A key of a Secret, from `data` (base64) or `stringData`.
fn secret_key(secret: &Value, key: &str) -> Option<Vec<u8>> {
    if let Some(text) = secret.pointer("/stringData").and_then(|d| d.get(key)?.as_str()) {
        return Some(text.as_bytes().to_vec());
    }
    let encoded = secret.get("data")?.get(key)?.as_str()?;
    base64::engine::general_purpose::STANDARD.decode(encoded).ok()
}

/// The Reaper's TLS from its pod: None when it serves plain HTTP; an error, in the words of
/// Reaper's failure to start, when a store or key it needs is missing.
pub fn of_pod(store: &Store, namespace: &str, pod: &Value) -> Result<Option<ServerTls>, String> {
    let variable = |name: &str| variable(store, namespace, pod, name);
    if variable("REAPER_SERVER_TLS_ENABLE").is_none_or(|v| v.is_empty()) {
        return Ok(None);
    }
    let client_auth =
        variable("REAPER_SERVER_TLS_CLIENT_AUTH").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut secret_name = None;
    for path_variable in [
        "REAPER_SERVER_TLS_KEYSTORE_PATH",
        "REAPER_SERVER_TLS_TRUSTSTORE_PATH",
    ] {
        let path = variable(path_variable).unwrap_or_default();
        let (name, file) = secret_file(pod, &path)
            .ok_or_else(|| format!("{path_variable} {path:?}: no Secret is mounted there"))?;
        let secret = secret(store, namespace, &name)
            .ok_or_else(|| format!("{path:?}: Secret {name} does not exist"))?;
        if secret_key(&secret, &file).is_none() {
            return Err(format!(
                "{path:?}: no such file (Secret {name} has no {file})"
            ));
        }
        secret_name = Some((name, secret));
    }
    let Some((name, secret)) = secret_name else {
        return Ok(None);
    };
    let key =
        |key: &str| secret_key(&secret, key).ok_or_else(|| format!("Secret {name} has no {key}"));
    Ok(Some(ServerTls {
        certificate_pem: key("tls.crt")?,
        key_pem: key("tls.key")?,
        client_ca_pem: client_auth.then(|| key("ca.crt")).transpose()?,
    }))
}

/// The Secret mounted at the directory of `path` in the `reaper` container, and the file's
/// name in it.
fn secret_file(pod: &Value, path: &str) -> Option<(String, String)> {
    let (directory, file) = path.rsplit_once('/')?;
    let mounts = super::reaper_container(pod)?.get("volumeMounts")?.as_array()?;
    let volume = mounts.iter().find_map(|mount| {
        let mounted = mount.get("mountPath")?.as_str()?.trim_end_matches('/');
        (mounted == directory.trim_end_matches('/'))
            .then(|| mount.get("name")?.as_str().map(str::to_string))?
    })?;
    let volumes = pod.pointer("/spec/volumes")?.as_array()?;
    let found = volumes.iter().find(|v| v.get("name").and_then(Value::as_str) == Some(&volume))?;
    let secret = found.pointer("/secret/secretName")?.as_str()?;
    Some((secret.to_string(), file.to_string()))
}
