//! Which writes the built-in controllers ([`super::controllers`]) look at afterwards.

use serde_json::Value;

use super::meta::owner_refs;

/// Whether a write to this object needs a controller's attention later.
pub(crate) fn watched(resource: &(String, String), obj: &Value) -> bool {
    match (resource.0.as_str(), resource.1.as_str()) {
        ("apps", "deployments") | ("apps", "statefulsets") => true,
        ("", "secrets") => {
            obj.get("type").and_then(Value::as_str) == Some("kubernetes.io/service-account-token")
                && obj.get("data").and_then(|d| d.get("token")).is_none()
        }
        _ => !owner_refs(obj).is_empty(),
    }
}
