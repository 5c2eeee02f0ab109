//! Field errors and value rendering as apimachinery's `field.Error` prints them, so that
//! messages match kube-apiserver byte for byte where we can.

use serde_json::Value;

use crate::error::Cause;

/// The `field.ErrorType`s admission produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    Invalid,
    TypeInvalid,
    Required,
    NotSupported,
    TooLong,
    TooMany,
    Forbidden,
    Duplicate,
}

impl ErrorKind {
    /// The `details.causes[].reason` of a Status.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            ErrorKind::Invalid => "FieldValueInvalid",
            ErrorKind::TypeInvalid => "FieldValueTypeInvalid",
            ErrorKind::Required => "FieldValueRequired",
            ErrorKind::NotSupported => "FieldValueNotSupported",
            ErrorKind::TooLong => "FieldValueTooLong",
            ErrorKind::TooMany => "FieldValueTooMany",
            ErrorKind::Forbidden => "FieldValueForbidden",
            ErrorKind::Duplicate => "FieldValueDuplicate",
        }
    }
}

/// One field error: `<field>: <body>`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FieldError {
    pub kind: ErrorKind,
    pub field: String,
    /// What `field.Error.ErrorBody()` prints, e.g. `Invalid value: "x": must be ...`.
    pub body: String,
}

impl FieldError {
    fn with_body(kind: ErrorKind, field: &str, body: String) -> Self {
        FieldError {
            kind,
            field: field.to_string(),
            body,
        }
    }

    /// `Invalid value: <rendered>: <detail>`; `rendered` is already in Go form (see [`go_value`]).
    pub(crate) fn invalid(field: &str, rendered: &str, detail: &str) -> Self {
        Self::with_body(
            ErrorKind::Invalid,
            field,
            with_detail(format!("Invalid value: {rendered}"), detail),
        )
    }

    pub(crate) fn type_invalid(field: &str, rendered: &str, detail: &str) -> Self {
        Self::with_body(
            ErrorKind::TypeInvalid,
            field,
            with_detail(format!("Invalid value: {rendered}"), detail),
        )
    }

    pub(crate) fn required(field: &str, detail: &str) -> Self {
        Self::with_body(
            ErrorKind::Required,
            field,
            with_detail("Required value".to_string(), detail),
        )
    }

    pub(crate) fn forbidden(field: &str, detail: &str) -> Self {
        Self::with_body(
            ErrorKind::Forbidden,
            field,
            with_detail("Forbidden".to_string(), detail),
        )
    }

    pub(crate) fn not_supported(field: &str, rendered: &str, supported: &[String]) -> Self {
        let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        let detail = if quoted.is_empty() {
            String::new()
        } else {
            format!("supported values: {}", quoted.join(", "))
        };
        Self::with_body(
            ErrorKind::NotSupported,
            field,
            with_detail(format!("Unsupported value: {rendered}"), &detail),
        )
    }

    /// 1.33 wording: `Too long: may not be more than 63 bytes`.
    pub(crate) fn too_long(field: &str, max: i64) -> Self {
        let unit = if max == 1 { "byte" } else { "bytes" };
        Self::with_body(
            ErrorKind::TooLong,
            field,
            format!("Too long: may not be more than {max} {unit}"),
        )
    }

    /// `Too many: 33: must have at most 32 items`.
    pub(crate) fn too_many(field: &str, actual: i64, max: i64) -> Self {
        let unit = if max == 1 { "item" } else { "items" };
        Self::with_body(
            ErrorKind::TooMany,
            field,
            format!("Too many: {actual}: must have at most {max} {unit}"),
        )
    }

    pub(crate) fn duplicate(field: &str, rendered: &str) -> Self {
        Self::with_body(
            ErrorKind::Duplicate,
            field,
            format!("Duplicate value: {rendered}"),
        )
    }

    pub(crate) fn to_cause(&self) -> Cause {
        Cause {
            reason: self.kind.reason().to_string(),
            message: self.body.clone(),
            field: self.field.clone(),
        }
    }
}

impl std::fmt::Display for FieldError {
    /// As `field.Error.Error()`: the field, a colon, the body (Go prints the colon even for an
    /// empty field).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body)
    }
}

fn with_detail(head: String, detail: &str) -> String {
    if detail.is_empty() {
        head
    } else {
        format!("{head}: {detail}")
    }
}

/// A bad value the way `field.Error.ErrorBody` prints it: strings quoted (`%q`), numbers and
/// booleans plain, null as `"null"`, lists and maps as Go's `%#v` of unstructured data.
pub(crate) fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "\"null\"".to_string(),
        Value::String(s) => go_quote(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::Array(_) | Value::Object(_) => go_sharp_v(value),
    }
}

/// Go's `%#v` of an unstructured value (`map[string]interface {}{"a":1}`).
pub(crate) fn go_sharp_v(value: &Value) -> String {
    match value {
        Value::Null => "interface {}(nil)".to_string(),
        Value::String(s) => go_quote(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_sharp_v).collect();
            format!("[]interface {{}}{{{}}}", inner.join(", "))
        }
        Value::Object(map) => {
            // serde_json's map iterates in key order, which is also the order Go's fmt prints.
            let inner: Vec<String> =
                map.iter().map(|(k, v)| format!("{}:{}", go_quote(k), go_sharp_v(v))).collect();
            format!("map[string]interface {{}}{{{}}}", inner.join(", "))
        }
    }
}

/// A JSON number as Go's `%v` prints the int64 or float64 the apiserver decoded it to.
pub(crate) fn go_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        go_float(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Go's `%v` of a float64: shortest representation, exponent form below 1e-4 or from 1e21.
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let magnitude = f.abs();
    if magnitude != 0.0 && !(1e-4..1e21).contains(&magnitude) {
        // Rust prints `1e21` / `1.5e-5`; Go prints `1e+21` / `1.5e-05`.
        let rust = format!("{f:e}");
        let (mantissa, exponent) = rust.split_once('e').unwrap_or((rust.as_str(), "0"));
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exponent),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    // Rust's Display is the shortest round-trip form without exponent, like Go in this range.
    format!("{f}")
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Path builders in the two styles the apiserver uses: `field.Path` (`a.b[key][0]`, used by
/// CEL, list-type and structural errors) and kube-openapi's (`a.b.key[0]`, used by schema
/// validation and unknown-field reports).
pub(crate) fn child(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

pub(crate) fn key(parent: &str, key: &str) -> String {
    format!("{parent}[{key}]")
}

pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_render_like_go() {
        assert_eq!(go_value(&json!("a\"b")), r#""a\"b""#);
        assert_eq!(go_value(&json!(30)), "30");
        assert_eq!(go_value(&json!(1.5)), "1.5");
        assert_eq!(go_value(&json!(10.0)), "10");
        assert_eq!(go_value(&json!(null)), r#""null""#);
        assert_eq!(go_value(&json!(true)), "true");
        assert_eq!(
            go_value(&json!({"name": "a", "port": 80})),
            r#"map[string]interface {}{"name":"a", "port":80}"#
        );
        assert_eq!(go_value(&json!(["a", 1])), r#"[]interface {}{"a", 1}"#);
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(0.00001), "1e-05");
    }

    #[test]
    fn error_bodies_match_apimachinery() {
        assert_eq!(
            FieldError::too_many("spec.x", 33, 32).to_string(),
            "spec.x: Too many: 33: must have at most 32 items"
        );
        assert_eq!(
            FieldError::too_long("spec.x", 63).body,
            "Too long: may not be more than 63 bytes"
        );
        assert_eq!(
            FieldError::not_supported("spec.x", "\"x\"", &["a".into(), "b".into()]).body,
            r#"Unsupported value: "x": supported values: "a", "b""#
        );
        assert_eq!(FieldError::required("spec.x", "").body, "Required value");
        assert_eq!(
            FieldError::forbidden("spec.x", "no").to_cause().reason,
            "FieldValueForbidden"
        );
    }
}
