//! API errors, rendered as a Kubernetes `Status` exactly as kube-apiserver does.

use serde_json::{Value, json};

/// One `details.causes[]` entry of a Status.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// e.g. `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, `FieldValueForbidden`
    pub reason: String,
    pub message: String,
    /// dotted path such as `spec.cassandra.datacenters[0].size`
    pub field: String,
}

/// An error answer of the API: HTTP code, `reason` and message, plus optional details.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    /// `details.name`, `details.group`, `details.kind`
    pub details_name: Option<String>,
    pub details_group: Option<String>,
    pub details_kind: Option<String>,
    pub causes: Vec<Cause>,
    /// seconds for a `Retry-After` header (429)
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details_name: None,
            details_group: None,
            details_kind: None,
            causes: Vec::new(),
            retry_after: None,
        }
    }

    /// Fills `details` with the object's name, group and (plural) kind, as the real server does.
    pub fn with_details(mut self, name: &str, group: &str, kind: &str) -> Self {
        self.details_name = Some(name.to_string());
        self.details_group = Some(group.to_string());
        self.details_kind = Some(kind.to_string());
        self
    }

    /// `<resource>[.<group>] "<name>" not found`
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(resource, group)),
        )
        .with_details(name, group, resource)
    }

    /// `<resource>[.<group>] "<name>" already exists`
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(resource, group)),
        )
        .with_details(name, group, resource)
    }

    /// The optimistic-concurrency failure of an update with a stale resourceVersion.
    pub fn conflict(group: &str, resource: &str, name: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(resource, group)
            ),
        )
        .with_details(name, group, resource)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    /// 422 Invalid: `<Kind>.<group> "<name>" is invalid: [cause, cause]` (one cause: no brackets).
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let rendered: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let list = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let mut err = ApiError::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {list}", qualified(kind, group)),
        )
        .with_details(name, group, kind);
        err.causes = causes;
        err
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// The Status body.
    pub fn to_status(&self) -> Value {
        let mut details = serde_json::Map::new();
        if let Some(n) = &self.details_name {
            details.insert("name".into(), json!(n));
        }
        if let Some(g) = &self.details_group {
            details.insert("group".into(), json!(g));
        }
        if let Some(k) = &self.details_kind {
            details.insert("kind".into(), json!(k));
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(s) = self.retry_after {
            details.insert("retryAfterSeconds".into(), json!(s));
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

/// `widgets.example.com`, or just `secrets` for the core group.
pub fn qualified(resource_or_kind: &str, group: &str) -> String {
    if group.is_empty() {
        resource_or_kind.to_string()
    } else {
        format!("{resource_or_kind}.{group}")
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
