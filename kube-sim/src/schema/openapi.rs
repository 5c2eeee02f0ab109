//! OpenAPI v3 schema validation of a custom resource, in the order kube-openapi's validators
//! run and with the messages apiextensions-apiserver turns their results into.
//!
//! Paths use kube-openapi's style (`spec.map.key`, `spec.list[0]`). On update, a node equal
//! to its correlated old value is not validated (CRD validation ratcheting, GA in 1.33).

use serde_json::Value;

use super::node::{Additional, Bound, SchemaNode};
use super::render::{FieldError, go_number, go_quote, go_value};

/// Validates the whole object against the root schema.
pub(crate) fn validate_root(
    obj: &Value,
    schema: &SchemaNode,
    old: Option<&Value>,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    Validator { ratchet: true }.node(obj, schema, "", old, true, &mut errors);
    errors
}

struct Validator {
    /// Off inside logical junctors: their branches are judged on the whole value.
    ratchet: bool,
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// The JSON type kube-openapi infers for a decoded value.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::String(_) => "string",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integral(value: &Value) -> bool {
    match value {
        Value::Number(n) => !n.is_f64() || n.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

/// The declared types, or none when any type is accepted.
fn expected_types(schema: &SchemaNode) -> Vec<&str> {
    match schema.type_name.as_deref() {
        Some(t) if !t.is_empty() => vec![t],
        _ if schema.int_or_string => vec!["integer", "string"],
        _ => Vec::new(),
    }
}

fn type_matches(expected: &[&str], value: &Value) -> bool {
    let actual = json_type(value);
    expected.iter().any(|t| {
        *t == actual
            || (*t == "integer" && actual == "number" && is_integral(value))
            || (*t == "number" && actual == "integer")
    })
}

/// The format kube-openapi infers for a decoded non-string value.
fn value_format(value: &Value) -> &'static str {
    match json_type(value) {
        "integer" => "int64",
        "number" => "float64",
        _ => "",
    }
}

/// What kube-openapi's type validator says about a non-null value, as (wanted, actual).
/// A declared `format` takes part: a non-string value must match the type or the format
/// (so an object under `type: string, format: byte` is "not of type byte"), and strings or
/// lists under a non-numeric formatted type are not type-checked at all.
fn type_problem(
    schema: &SchemaNode,
    expected: &[&str],
    value: &Value,
) -> Option<(String, &'static str)> {
    let textual = value.is_string() || value.is_array();
    if let Some(format) = schema.format.as_deref().filter(|f| !f.is_empty()) {
        if !textual && !type_matches(expected, value) && value_format(value) != format {
            return Some((format.to_string(), value_format(value)));
        }
        if textual && !expected.iter().any(|t| *t == "number" || *t == "integer") {
            return None;
        }
    }
    if !expected.is_empty() && !type_matches(expected, value) {
        return Some((expected.join(","), json_type(value)));
    }
    None
}

fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

impl Validator {
    fn node(
        &self,
        value: &Value,
        schema: &SchemaNode,
        path: &str,
        old: Option<&Value>,
        is_resource_root: bool,
        errors: &mut Vec<FieldError>,
    ) {
        if self.ratchet && old.is_some_and(|o| json_equal(o, value)) {
            return;
        }
        let expected = expected_types(schema);
        if value.is_null() {
            if !expected.is_empty() && !schema.nullable {
                errors.push(self.type_error(path, &expected.join(","), "null"));
            }
            self.enumeration(value, schema, path, errors);
            return;
        }
        if let Some((wanted, actual)) = type_problem(schema, &expected, value) {
            errors.push(self.type_error(path, &wanted, actual));
            self.enumeration(value, schema, path, errors);
            return;
        }
        self.junctors(value, schema, path, errors);
        if let Value::String(s) = value {
            self.string(s, value, schema, path, errors);
        }
        if let Value::Number(_) = value {
            self.number(value, schema, path, errors);
        }
        if let Value::Array(items) = value {
            self.array(items, schema, path, old, errors);
        }
        self.enumeration(value, schema, path, errors);
        if let Value::Object(_) = value {
            self.object(value, schema, path, old, is_resource_root, errors);
        }
    }

    fn type_error(&self, path: &str, expected: &str, actual: &str) -> FieldError {
        FieldError::type_invalid(
            path,
            &go_quote(actual),
            &format!(
                "{path} in body must be of type {expected}: {}",
                go_quote(actual)
            ),
        )
    }

    fn enumeration(
        &self,
        value: &Value,
        schema: &SchemaNode,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        let Some(allowed) = &schema.enum_values else {
            return;
        };
        if allowed.iter().any(|a| json_equal(a, value)) {
            return;
        }
        let supported: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        errors.push(FieldError::not_supported(
            path,
            &go_value(value),
            &supported,
        ));
    }

    /// anyOf, oneOf, allOf and not, judged on the whole value without ratcheting.
    fn junctors(
        &self,
        value: &Value,
        schema: &SchemaNode,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        let strict = Validator { ratchet: false };
        let run = |branch: &SchemaNode| {
            let mut branch_errors = Vec::new();
            strict.node(value, branch, path, None, false, &mut branch_errors);
            branch_errors
        };
        let composite = |detail: String| FieldError::invalid("", "\"\"", &detail);
        let quoted_path = go_quote(path);

        if !schema.any_of.is_empty() {
            let results: Vec<Vec<FieldError>> = schema.any_of.iter().map(run).collect();
            if results.iter().all(|r| !r.is_empty()) {
                errors.push(composite(format!(
                    "{quoted_path} must validate at least one schema (anyOf)"
                )));
                // kube-openapi keeps the failures of the branch that matched best.
                if let Some(best) = results.into_iter().min_by_key(Vec::len) {
                    errors.extend(best);
                }
            }
        }
        if !schema.one_of.is_empty() {
            let results: Vec<Vec<FieldError>> = schema.one_of.iter().map(run).collect();
            let valid = results.iter().filter(|r| r.is_empty()).count();
            if valid != 1 {
                let found = if valid == 0 {
                    "Found none valid".to_string()
                } else {
                    format!("Found {valid} valid alternatives")
                };
                errors.push(composite(format!(
                    "{quoted_path} must validate one and only one schema (oneOf). {found}"
                )));
                if valid == 0
                    && let Some(best) = results.into_iter().min_by_key(Vec::len)
                {
                    errors.extend(best);
                }
            }
        }
        if !schema.all_of.is_empty() {
            let mut valid = 0;
            for branch in &schema.all_of {
                let branch_errors = run(branch);
                if branch_errors.is_empty() {
                    valid += 1;
                }
                errors.extend(branch_errors);
            }
            if valid != schema.all_of.len() {
                let none = if valid == 0 { ". None validated" } else { "" };
                errors.push(composite(format!(
                    "{quoted_path} must validate all the schemas (allOf){none}"
                )));
            }
        }
        if let Some(not) = &schema.not
            && run(not).is_empty()
        {
            errors.push(composite(format!(
                "{quoted_path} must not validate the schema (not)"
            )));
        }
    }

    fn string(
        &self,
        s: &str,
        value: &Value,
        schema: &SchemaNode,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        // go-openapi counts runes, whatever the message says about bytes.
        let length = s.chars().count() as i64;
        if let Some(max) = schema.max_length
            && length > max
        {
            errors.push(FieldError::too_long(path, max));
        }
        if let Some(min) = schema.min_length
            && length < min
        {
            errors.push(FieldError::invalid(
                path,
                &go_value(value),
                &format!("{path} in body should be at least {min} chars long"),
            ));
        }
        if let Some((pattern, re)) = &schema.pattern
            && !re.is_match(s)
        {
            errors.push(FieldError::invalid(
                path,
                &go_value(value),
                &format!("{path} in body should match '{pattern}'"),
            ));
        }
        if let Some(format) = &schema.format
            && format_rejects(format, s)
        {
            errors.push(FieldError::type_invalid(
                path,
                &go_value(value),
                &format!("{path} in body must be of type {format}: {}", go_quote(s)),
            ));
        }
    }

    fn number(&self, value: &Value, schema: &SchemaNode, path: &str, errors: &mut Vec<FieldError>) {
        let Some(data) = value.as_f64() else {
            return;
        };
        let bad = go_value(value);
        if let Some(factor) = &schema.multiple_of
            && factor.value != 0.0
        {
            let quotient = if factor.value < 1.0 {
                1.0 / factor.value * data
            } else {
                data / factor.value
            };
            if quotient.ceil() != quotient {
                errors.push(FieldError::invalid(
                    path,
                    &bad,
                    &format!(
                        "{path} in body should be a multiple of {}",
                        bound_text(factor)
                    ),
                ));
            }
        }
        if let Some(max) = &schema.maximum {
            let exceeded = if schema.exclusive_maximum {
                data >= max.value
            } else {
                data > max.value
            };
            if exceeded {
                let relation = if schema.exclusive_maximum {
                    "less than"
                } else {
                    "less than or equal to"
                };
                errors.push(FieldError::invalid(
                    path,
                    &bad,
                    &format!("{path} in body should be {relation} {}", bound_text(max)),
                ));
            }
        }
        if let Some(min) = &schema.minimum {
            let exceeded = if schema.exclusive_minimum {
                data <= min.value
            } else {
                data < min.value
            };
            if exceeded {
                let relation = if schema.exclusive_minimum {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                errors.push(FieldError::invalid(
                    path,
                    &bad,
                    &format!("{path} in body should be {relation} {}", bound_text(min)),
                ));
            }
        }
    }

    fn array(
        &self,
        items: &[Value],
        schema: &SchemaNode,
        path: &str,
        old: Option<&Value>,
        errors: &mut Vec<FieldError>,
    ) {
        if let Some(item_schema) = &schema.items {
            let old_items = old.and_then(Value::as_array);
            for (i, item) in items.iter().enumerate() {
                let old_item = old_items.and_then(|o| correlate_for_ratcheting(schema, o, item));
                self.node(
                    item,
                    item_schema,
                    &format!("{path}[{i}]"),
                    old_item,
                    false,
                    errors,
                );
            }
        }
        let size = items.len() as i64;
        if let Some(min) = schema.min_items
            && size < min
        {
            errors.push(FieldError::invalid(
                path,
                &size.to_string(),
                &format!("{path} in body should have at least {min} items"),
            ));
        }
        if let Some(max) = schema.max_items
            && size > max
        {
            errors.push(FieldError::too_many(path, size, max));
        }
    }

    fn object(
        &self,
        value: &Value,
        schema: &SchemaNode,
        path: &str,
        old: Option<&Value>,
        is_resource_root: bool,
        errors: &mut Vec<FieldError>,
    ) {
        let Value::Object(map) = value else {
            return;
        };
        let count = map.len() as i64;
        if let Some(min) = schema.min_properties
            && count < min
        {
            errors.push(FieldError::invalid(
                path,
                &count.to_string(),
                &format!("{path} in body should have at least {min} properties"),
            ));
            return;
        }
        if let Some(max) = schema.max_properties
            && count > max
        {
            errors.push(FieldError::too_many(path, count, max));
            return;
        }
        let old_map = old.and_then(Value::as_object);

        if let Additional::Schema(additional) = &schema.additional {
            for (name, child) in map {
                if schema.properties.contains_key(name) {
                    continue;
                }
                let old_child = old_map.and_then(|o| o.get(name));
                let child_path = format!("{path}.{name}");
                self.node(child, additional, &child_path, old_child, false, errors);
            }
        }
        for (name, prop) in &schema.properties {
            let Some(child) = map.get(name) else {
                continue;
            };
            let old_child = old_map.and_then(|o| o.get(name));
            let child_path = join(path, name);
            if is_resource_root && name == "metadata" {
                // ObjectMeta is validated by the store; the schema may only restrict names.
                self.metadata_names(child, prop, &child_path, old_child, errors);
                continue;
            }
            self.node(child, prop, &child_path, old_child, false, errors);
        }
        for name in &schema.required {
            if !map.contains_key(name) {
                errors.push(FieldError::required(&join(path, name), ""));
            }
        }
    }

    fn metadata_names(
        &self,
        metadata: &Value,
        schema: &SchemaNode,
        path: &str,
        old: Option<&Value>,
        errors: &mut Vec<FieldError>,
    ) {
        for name in ["name", "generateName"] {
            if let (Some(prop), Some(value)) = (schema.properties.get(name), metadata.get(name)) {
                let old_value = old.and_then(|o| o.get(name));
                self.node(value, prop, &join(path, name), old_value, false, errors);
            }
        }
    }
}

fn bound_text(bound: &Bound) -> String {
    go_number(&bound.literal)
}

/// Correlates a list item with its old value for ratcheting: by key for map lists, by value
/// for sets; atomic lists do not correlate.
fn correlate_for_ratcheting<'a>(
    schema: &SchemaNode,
    old_items: &'a [Value],
    item: &Value,
) -> Option<&'a Value> {
    match schema.list_type.as_deref() {
        Some("map") => super::cel::find_by_map_keys(&schema.list_map_keys, old_items, item),
        Some("set") => old_items.iter().find(|o| json_equal(o, item)),
        _ => None,
    }
}

/// Whether a string fails one of the formats the apiserver checks (unknown formats pass).
fn format_rejects(format: &str, s: &str) -> bool {
    match format {
        "date-time" | "datetime" => !is_date_time(s),
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_err(),
        "byte" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(s).is_err()
        }
        "uuid" => !is_uuid(s),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_err(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_err(),
        "cidr" => !is_cidr(s),
        _ => false,
    }
}

fn is_date_time(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
        || ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
            .iter()
            .any(|f| chrono::NaiveDateTime::parse_from_str(s, f).is_ok())
}

/// strfmt's UUID: 32 hex digits, the four hyphens optional, any case.
fn is_uuid(s: &str) -> bool {
    let mut rest = s;
    for (i, len) in [8, 4, 4, 4, 12].into_iter().enumerate() {
        if i > 0 {
            rest = rest.strip_prefix('-').unwrap_or(rest);
        }
        let Some(group) = rest.get(..len) else {
            return false;
        };
        if !group.chars().all(|c| c.is_ascii_hexdigit()) {
            return false;
        }
        rest = &rest[len..];
    }
    rest.is_empty()
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, prefix)) = s.split_once('/') else {
        return false;
    };
    let Ok(prefix) = prefix.parse::<u8>() else {
        return false;
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => prefix <= 32,
        Ok(std::net::IpAddr::V6(_)) => prefix <= 128,
        Err(_) => false,
    }
}
