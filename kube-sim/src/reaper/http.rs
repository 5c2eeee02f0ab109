//! The HTTP pieces Reaper's resources share: parameters from the query or a form body, and
//! answers as Dropwizard/Jersey writes them (a String entity goes out raw, whatever the
//! resource produces).

use std::collections::BTreeMap;

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue, LOCATION, SET_COOKIE};
use serde_json::Value;

use crate::pod_network::PodResponse;

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space).
pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query or form parameters; a repeated name keeps its first value, as JAX-RS's
/// `@QueryParam` on a single value does.
#[derive(Debug, Default, Clone)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Params {
        let mut params = BTreeMap::new();
        for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            params.entry(percent_decode(key)).or_insert_with(|| percent_decode(value));
        }
        Params(params)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A comma-separated list (Reaper's `COMMA_SEPARATED_LIST_SPLITTER`: trimmed, empty parts
    /// dropped).
    pub fn list(&self, key: &str) -> Vec<String> {
        split_list(self.get(key).unwrap_or_default())
    }
}

pub(super) fn split_list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// One answer of the Reaper.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: String,
    pub location: Option<String>,
    pub cookie: Option<String>,
}

impl Reply {
    pub(super) fn empty(status: u16) -> Reply {
        Reply {
            status,
            content_type: None,
            body: String::new(),
            location: None,
            cookie: None,
        }
    }

    /// A String entity of a JSON resource: written as it is.
    pub(super) fn text(status: u16, message: impl Into<String>) -> Reply {
        Reply {
            content_type: Some("application/json"),
            body: message.into(),
            ..Reply::empty(status)
        }
    }

    pub(super) fn plain(status: u16, message: impl Into<String>) -> Reply {
        Reply {
            content_type: Some("text/plain"),
            body: message.into(),
            ..Reply::empty(status)
        }
    }

    /// Prometheus' text exposition format, as its `MetricsServlet` serves it.
    pub(super) fn prometheus(body: String) -> Reply {
        Reply {
            content_type: Some("text/plain; version=0.0.4; charset=utf-8"),
            body,
            ..Reply::empty(200)
        }
    }

    pub(super) fn json(status: u16, value: &Value) -> Reply {
        Reply {
            content_type: Some("application/json"),
            body: value.to_string(),
            ..Reply::empty(status)
        }
    }

    /// Jersey's answer when no resource method matches (Dropwizard's JSON error body).
    pub(super) fn jersey(status: u16, reason: &str) -> Reply {
        Reply::json(
            status,
            &serde_json::json!({"code": status, "message": format!("HTTP {status} {reason}")}),
        )
    }

    pub(super) fn not_found() -> Reply {
        Reply::jersey(404, "Not Found")
    }

    pub(super) fn with_location(mut self, path: String) -> Reply {
        self.location = Some(path);
        self
    }

    pub fn into_response(self) -> PodResponse {
        let mut response = hyper::Response::new(Bytes::from(self.body));
        *response.status_mut() =
            hyper::StatusCode::from_u16(self.status).unwrap_or(hyper::StatusCode::OK);
        let headers = response.headers_mut();
        let values = [
            (CONTENT_TYPE, self.content_type.map(str::to_string)),
            (LOCATION, self.location),
            (SET_COOKIE, self.cookie),
        ];
        for (name, value) in values {
            if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(name, value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_decode_and_lists_split_as_reaper_splits_them() {
        let params = Params::parse(Some("seedHost=a%2Cb+c&x=1&x=2&tables=t1,%20t2,,"));
        assert_eq!(params.get("seedHost"), Some("a,b c"));
        assert_eq!(params.get("x"), Some("1"));
        assert_eq!(params.list("tables"), vec!["t1", "t2"]);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
    }
}
