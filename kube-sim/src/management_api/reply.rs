//! What goes over the wire: answers as the agent's JAX-RS resources build them, and the
//! request bodies and query parameters as RESTEasy and Jackson read them.

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use serde_json::{Map, Value, json};

use crate::cassandra::{CassandraError, Job};
use crate::pod_network::PodResponse;
use crate::server::query::Query;

pub(super) const TEXT: &str = "text/plain";
pub(super) const JSON: &str = "application/json";

/// The 500 of `BaseResources.handle` when the agent's CQL connection to Cassandra fails (the
/// process is not running).
pub(super) const CASSANDRA_DOWN: &str = "Internal connection to Cassandra closed";

/// An answer of the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: Bytes,
    /// `Response.status(code, reasonPhrase)`: the status line's text instead of the standard one.
    pub reason: Option<&'static str>,
}

/// Handlers answer `Ok` or an early `Err`; both are answers.
pub(super) type Answer = Result<Reply, Reply>;

impl Reply {
    pub fn new(status: u16, content_type: Option<&'static str>, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            reason: None,
        }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply::new(status, Some(TEXT), body.into())
    }

    pub fn ok() -> Reply {
        Reply::text(200, "OK")
    }

    pub fn json(status: u16, value: &Value) -> Reply {
        Reply::new(
            status,
            Some(JSON),
            serde_json::to_vec(value).unwrap_or_default(),
        )
    }

    pub fn empty(status: u16) -> Reply {
        Reply::new(status, None, Bytes::new())
    }

    /// `Response.ok(Entity.json(value))`: JAX-RS serialises the `Entity` wrapper itself, which
    /// is why clients read the payload from `entity`.
    pub fn entity(value: Value) -> Reply {
        let media_type = json!({
            "type": "application",
            "subtype": "json",
            "parameters": {},
            "wildcardType": false,
            "wildcardSubtype": false,
        });
        Reply::json(
            200,
            &json!({
                "entity": value,
                "variant": {
                    "language": null,
                    "mediaType": media_type,
                    "encoding": null,
                    "languageString": null,
                },
                "annotations": [],
                "mediaType": media_type,
                "language": null,
                "encoding": null,
            }),
        )
    }

    /// A job id, as the asynchronous (v1) operations answer it.
    pub fn accepted(job_id: String) -> Reply {
        Reply::text(202, job_id)
    }

    pub fn cassandra_down() -> Reply {
        Reply::text(500, CASSANDRA_DOWN)
    }

    pub fn not_found() -> Reply {
        Reply::empty(404)
    }

    pub fn bad_request(message: impl Into<String>) -> Reply {
        Reply::text(400, message)
    }

    pub fn into_response(self) -> PodResponse {
        let mut response = hyper::Response::new(self.body);
        *response.status_mut() = hyper::StatusCode::from_u16(self.status)
            .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        if let Some(content_type) = self.content_type {
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        if let Some(reason) = self.reason {
            response
                .extensions_mut()
                .insert(hyper::ext::ReasonPhrase::from_static(reason.as_bytes()));
        }
        response
    }
}

/// An operation that threw: `BaseResources.handle` answers 500 with the exception's message.
impl From<CassandraError> for Reply {
    fn from(error: CassandraError) -> Reply {
        Reply::text(500, error.to_string())
    }
}

/// `Job` as `GET /api/v0/ops/executor/job` serialises it: Jackson writes the times with a
/// `ToStringSerializer` (strings, though the OpenAPI document says int64; cass-operator reads
/// strings), `end_time` is "0" while the job runs and `error` is null unless it failed.
pub(super) fn job_json(job: &Job) -> Value {
    let changes: Vec<Value> = job
        .status_changes
        .iter()
        .map(|change| {
            json!({
                "status": change.status.as_str(),
                "change_time": change.change_time.to_string(),
                "message": change.message,
            })
        })
        .collect();
    json!({
        "id": job.id,
        "type": job.job_type,
        "status": job.status.as_str(),
        "submit_time": job.submit_time.to_string(),
        "end_time": job.end_time.unwrap_or(0).to_string(),
        "error": job.error,
        "status_changes": changes,
    })
}

/// A JAX-RS `@QueryParam boolean`: `Boolean.valueOf`, false when absent.
pub(super) fn flag(query: &Query, name: &str) -> bool {
    query.get(name).is_some_and(|value| value.eq_ignore_ascii_case("true"))
}

/// A JAX-RS `@QueryParam Boolean`: null when absent.
pub(super) fn optional_flag(query: &Query, name: &str) -> Option<bool> {
    query.get(name).map(|value| value.eq_ignore_ascii_case("true"))
}

/// A JAX-RS `@QueryParam Integer`; a value that is not a number makes RESTEasy answer 404.
pub(super) fn optional_int(query: &Query, name: &str) -> Result<Option<i64>, Reply> {
    match query.get(name) {
        None => Ok(None),
        Some(text) => text.trim().parse().map(Some).map_err(|_| Reply::not_found()),
    }
}

/// StringUtils.isBlank.
pub(super) fn is_blank(text: Option<&str>) -> bool {
    text.is_none_or(|text| text.trim().is_empty())
}

/// A JSON request body as Jackson binds it; `None` for an empty body, which RESTEasy passes as
/// a null entity. A resource that `@Consumes(application/json)` refuses other media types (415).
pub(super) fn json_body(
    content_type: Option<&str>,
    body: &Bytes,
) -> Result<Option<Map<String, Value>>, Reply> {
    let is_json = content_type.is_some_and(|value| {
        value.split(';').next().is_some_and(|essence| essence.trim().eq_ignore_ascii_case(JSON))
    });
    if !is_json {
        return Err(Reply::empty(415));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(Some(object)),
        Ok(Value::Null) => Ok(None),
        Ok(other) => Err(Reply::bad_request(format!(
            "Cannot deserialize value of type `java.lang.Object` from {} value",
            json_kind(&other)
        ))),
        Err(error) => Err(Reply::bad_request(format!(
            "Unable to parse the JSON body: {error}"
        ))),
    }
}

/// The NullPointerException a resource throws reading a field of a null (empty) body.
pub(super) fn null_body(parameter: &str, field: &str) -> Reply {
    Reply::text(
        500,
        format!("Cannot read field \"{field}\" because \"{parameter}\" is null"),
    )
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn mismatch(field: &str, expected: &str, value: &Value) -> Reply {
    Reply::bad_request(format!(
        "Cannot deserialize value of type `{expected}` from {} value (field \"{field}\")",
        json_kind(value)
    ))
}

/// A string field; null when absent.
pub(super) fn string_field(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, Reply> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(Value::Bool(flag)) => Ok(Some(flag.to_string())),
        Some(other) => Err(mismatch(field, "java.lang.String", other)),
    }
}

/// An integer field; Jackson also takes a numeric string (cass-operator sends `"jobs": "2"`).
pub(super) fn int_field(object: &Map<String, Value>, field: &str) -> Result<Option<i64>, Reply> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => {
            number.as_i64().map(Some).ok_or_else(|| mismatch(field, "int", &Value::Null))
        }
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(value @ Value::String(text)) => {
            text.trim().parse().map(Some).map_err(|_| mismatch(field, "int", value))
        }
        Some(other) => Err(mismatch(field, "int", other)),
    }
}

/// A boolean field; Jackson also takes "true" and "false".
pub(super) fn bool_field(object: &Map<String, Value>, field: &str) -> Result<Option<bool>, Reply> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(value @ Value::String(text)) => match text.as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(mismatch(field, "boolean", value)),
        },
        Some(other) => Err(mismatch(field, "boolean", other)),
    }
}

/// A list of strings; empty when absent.
pub(super) fn strings_field(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Vec<String>, Reply> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(text.clone()),
                other => Err(mismatch(field, "java.util.List<java.lang.String>", other)),
            })
            .collect(),
        Some(other) => Err(mismatch(field, "java.util.List<java.lang.String>", other)),
    }
}

/// A list of objects; empty when absent.
pub(super) fn objects_field<'a>(
    object: &'a Map<String, Value>,
    field: &str,
) -> Result<Vec<&'a Map<String, Value>>, Reply> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::Object(inner) => Ok(inner),
                other => Err(mismatch(field, "java.util.List", other)),
            })
            .collect(),
        Some(other) => Err(mismatch(field, "java.util.List", other)),
    }
}
