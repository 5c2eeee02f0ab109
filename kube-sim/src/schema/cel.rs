//! `x-kubernetes-validations` evaluation: rules compiled by kube-cel at CRD time are run with
//! the Kubernetes CEL libraries on every node, with `self` bound to the node's value and
//! `oldSelf` to the correlated old value, and failures worded as apiextensions-apiserver
//! words them.
//!
//! Paths use `field.Path` style (`spec.map[key]`, `spec.list[0]`).

use std::collections::HashMap;
use std::sync::Arc;

use kube_cel::KubeCelExt;
use kube_cel::cel::objects::{Key, Map as CelMap, OptionalValue};
use kube_cel::cel::{Context, ExecutionError, Value as CelValue};
use serde_json::Value;

use super::escape::escape_property;
use super::memo::{MEMO_MIN_BYTES, MemoKeyRef, Verdict};
use super::node::{CelRule, SchemaNode};
use super::render::{FieldError, child, go_quote, index, key};

/// The apiserver's limit on an evaluated messageExpression (`MaxEvaluatedMessageExpressionSizeBytes`).
const MAX_MESSAGE_EXPRESSION_BYTES: usize = 5 * 1024;

thread_local! {
    /// Registering the function libraries is not free; each thread does it once.
    static BASE_CONTEXT: Context<'static> = Context::default().with_all();
}

/// Errors to report, and failures on unchanged values that ratcheting turned into warnings.
#[derive(Default)]
pub(crate) struct CelOutcome {
    pub errors: Vec<FieldError>,
    pub warnings: Vec<String>,
}

pub(crate) fn validate_root(obj: &Value, schema: &SchemaNode, old: Option<&Value>) -> CelOutcome {
    let mut outcome = CelOutcome::default();
    BASE_CONTEXT.with(|base| {
        let walker = Walker { base };
        let root = Site::new(None, Step::Root, obj, old);
        walker.node(&root, schema, true, &mut outcome);
    });
    outcome
}

struct Walker<'a> {
    base: &'a Context<'static>,
}

/// Where a node sits and what it was before. The path and whether the node changed are
/// only needed when a rule fails, so they are worked out then.
struct Site<'s> {
    parent: Option<&'s Site<'s>>,
    step: Step<'s>,
    value: &'s Value,
    /// The correlated old value, as found (possibly null).
    old: Option<&'s Value>,
    unchanged: std::cell::OnceCell<bool>,
}

#[derive(Clone, Copy)]
enum Step<'s> {
    Root,
    Field(&'s str),
    Key(&'s str),
    Index(usize),
}

impl<'s> Site<'s> {
    fn new(
        parent: Option<&'s Site<'s>>,
        step: Step<'s>,
        value: &'s Value,
        old: Option<&'s Value>,
    ) -> Self {
        Site {
            parent,
            step,
            value,
            old,
            unchanged: std::cell::OnceCell::new(),
        }
    }

    fn path(&self) -> String {
        let parent = self.parent.map(Site::path).unwrap_or_default();
        match self.step {
            Step::Root => parent,
            Step::Field(name) => child(&parent, name),
            Step::Key(name) => key(&parent, name),
            Step::Index(i) => index(&parent, i),
        }
    }

    /// Ratcheting: a node without a correlated old value is judged by its nearest correlated
    /// ancestor; an unchanged ancestor's correlated children are unchanged too.
    fn unchanged(&self) -> bool {
        *self.unchanged.get_or_init(|| match self.old {
            Some(old) => {
                self.parent.and_then(|p| p.unchanged.get().copied()).unwrap_or(false)
                    || old == self.value
            }
            None => self.parent.is_some_and(Site::unchanged),
        })
    }

    /// The old value rules see as `oldSelf` (never null).
    fn old_value(&self) -> Option<&'s Value> {
        self.old.filter(|o| !o.is_null())
    }
}

impl Walker<'_> {
    fn node(
        &self,
        site: &Site<'_>,
        schema: &SchemaNode,
        is_resource_root: bool,
        outcome: &mut CelOutcome,
    ) {
        // Rules only see non-null values; subtrees without rules need no walk.
        if site.value.is_null() || !schema.rules_within {
            return;
        }
        self.rules(site, schema, is_resource_root, outcome);

        match site.value {
            Value::Array(items) => {
                let Some(item_schema) = schema.items.as_deref().filter(|s| s.rules_within) else {
                    return;
                };
                let old_items = site.old_value().and_then(Value::as_array);
                for (i, item) in items.iter().enumerate() {
                    // Only map lists correlate items with old ones; atomic and set lists do not.
                    let old_item = match old_items {
                        Some(o) if schema.is_map_list() => {
                            find_by_map_keys(&schema.list_map_keys, o, item)
                        }
                        _ => None,
                    };
                    let item_site = Site::new(Some(site), Step::Index(i), item, old_item);
                    self.node(
                        &item_site,
                        item_schema,
                        item_schema.embedded_resource,
                        outcome,
                    );
                }
            }
            Value::Object(map) => {
                let old_map = site.old_value().and_then(Value::as_object);
                if let Some(additional) = schema.additional_schema().filter(|s| s.rules_within) {
                    for (name, child_value) in map {
                        let old_child = old_map.and_then(|o| o.get(name));
                        let entry = Site::new(Some(site), Step::Key(name), child_value, old_child);
                        self.node(&entry, additional, additional.embedded_resource, outcome);
                    }
                }
                for (name, child_value) in map {
                    let Some(prop) = schema.properties.get(name) else {
                        continue;
                    };
                    // ObjectMeta is not the schema's business (only name/generateName are
                    // visible to rules, from the parent).
                    if is_resource_root && name == "metadata" {
                        continue;
                    }
                    let old_child = old_map.and_then(|o| o.get(name));
                    let field = Site::new(Some(site), Step::Field(name), child_value, old_child);
                    self.node(&field, prop, prop.embedded_resource, outcome);
                }
            }
            _ => {}
        }
    }

    /// Runs the rules of a node and of its allOf branches.
    fn rules(
        &self,
        site: &Site<'_>,
        schema: &SchemaNode,
        is_resource_root: bool,
        outcome: &mut CelOutcome,
    ) {
        let inputs = RuleInputs::new(site.value, site.old_value(), is_resource_root);
        for rule in &schema.rules {
            self.rule(rule, schema, site, &inputs, outcome);
        }
        for branch in &schema.all_of {
            // Branches carry no structure: the node's schema shapes `self`.
            let shaped = SchemaBranch {
                structure: schema,
                rules: branch,
            };
            shaped.run(self, site, &inputs, outcome);
        }
    }

    fn rule(
        &self,
        rule: &CelRule,
        schema: &SchemaNode,
        site: &Site<'_>,
        inputs: &RuleInputs<'_>,
        outcome: &mut CelOutcome,
    ) {
        // Transition rules run only when an old value correlates, unless oldSelf is optional.
        if rule.uses_old_self && inputs.old.is_none() && !rule.optional_old_self {
            return;
        }
        let self_part = rule.self_reach.part_of(inputs.value);
        let old_part = inputs.old.and_then(|old| rule.old_self_reach.part_of(old));
        let narrowed;
        let inputs = if self_part.is_some() || old_part.is_some() {
            narrowed = RuleInputs::new(
                self_part.as_ref().unwrap_or(inputs.value),
                old_part.as_ref().or(inputs.old),
                inputs.is_resource_root,
            );
            &narrowed
        } else {
            inputs
        };
        let verdict = rule.memo.verdict(inputs.memo_key(rule.uses_old_self), || {
            self.evaluate(rule, schema, inputs)
        });
        let type_name = go_quote(schema.cel_type_name());
        let path = site.path();
        let detail = match verdict {
            Verdict::Pass | Verdict::NotEvaluated => return,
            Verdict::RuntimeError(detail) => {
                outcome.errors.push(FieldError::invalid(&path, &type_name, &detail));
                return;
            }
            Verdict::Fail(detail) => detail,
        };
        let error_path = match &rule.field_path {
            Some(field_path) => append_field_path(&path, field_path, schema),
            None => path,
        };
        let error = match rule.reason.as_deref() {
            Some("FieldValueForbidden") => FieldError::forbidden(&error_path, &detail),
            Some("FieldValueRequired") => FieldError::required(&error_path, &detail),
            Some("FieldValueDuplicate") => FieldError::duplicate(&error_path, &type_name),
            _ => FieldError::invalid(&error_path, &type_name, &detail),
        };
        if !rule.uses_old_self && site.unchanged() {
            outcome.warnings.push(error.to_string());
        } else {
            outcome.errors.push(error);
        }
    }

    /// Runs one rule (and its messageExpression when it fails): depends only on the values.
    fn evaluate(&self, rule: &CelRule, schema: &SchemaNode, inputs: &RuleInputs<'_>) -> Verdict {
        let (self_value, old_value) = inputs.converted(schema);
        let mut scope = self.base.new_inner_scope();
        scope.add_variable_from_value("self", self_value.clone());
        if rule.uses_old_self {
            let old_self = match (rule.optional_old_self, old_value) {
                (true, Some(old)) => CelValue::Opaque(Arc::new(OptionalValue::of(old.clone()))),
                (true, None) => CelValue::Opaque(Arc::new(OptionalValue::none())),
                (false, Some(old)) => old.clone(),
                (false, None) => CelValue::Null,
            };
            scope.add_variable_from_value("oldSelf", old_self);
        }
        match rule.program.execute(&scope) {
            Ok(CelValue::Bool(true)) => return Verdict::Pass,
            Ok(_) => {}
            Err(ExecutionError::UndeclaredReference(name)) => {
                // kube-cel lacks a few cel-go macros; the apiserver accepted the rule, so do
                // not reject objects over what we cannot evaluate.
                tracing::warn!(rule = %rule.rule, reference = %name, "CEL rule not evaluated");
                return Verdict::NotEvaluated;
            }
            Err(err) => return Verdict::RuntimeError(runtime_error_detail(&err, rule)),
        }
        let detail = rule
            .message_program
            .as_ref()
            .and_then(|program| evaluated_message(program.execute(&scope)))
            .unwrap_or_else(|| match rule.message.as_deref().map(str::trim) {
                Some(message) if !message.is_empty() => message.to_string(),
                _ => format!("failed rule: {}", rule.rule.trim()),
            });
        Verdict::Fail(detail)
    }
}

/// A rule's `self` and `oldSelf`, converted to CEL values only when a rule has to run, and
/// serialized (for the memo) once for all the rules of a node.
struct RuleInputs<'v> {
    value: &'v Value,
    old: Option<&'v Value>,
    is_resource_root: bool,
    converted: std::cell::OnceCell<(CelValue, Option<CelValue>)>,
    /// `self` serialized, when at least [`MEMO_MIN_BYTES`] long.
    value_bytes: std::cell::OnceCell<Option<Vec<u8>>>,
    old_bytes: std::cell::OnceCell<Option<Vec<u8>>>,
}

impl<'v> RuleInputs<'v> {
    fn new(value: &'v Value, old: Option<&'v Value>, is_resource_root: bool) -> Self {
        RuleInputs {
            value,
            old,
            is_resource_root,
            converted: std::cell::OnceCell::new(),
            value_bytes: std::cell::OnceCell::new(),
            old_bytes: std::cell::OnceCell::new(),
        }
    }

    /// What a rule's verdict is remembered by; None when `self` is too small to bother (or
    /// cannot be serialized).
    fn memo_key(&self, uses_old_self: bool) -> Option<MemoKeyRef<'_>> {
        let value = self
            .value_bytes
            .get_or_init(|| {
                serde_json::to_vec(self.value).ok().filter(|bytes| bytes.len() >= MEMO_MIN_BYTES)
            })
            .as_deref()?;
        let old = match self.old.filter(|_| uses_old_self) {
            Some(old) => {
                Some(self.old_bytes.get_or_init(|| serde_json::to_vec(old).ok()).as_deref()?)
            }
            None => None,
        };
        Some((value, old))
    }

    fn converted(&self, schema: &SchemaNode) -> (&CelValue, Option<&CelValue>) {
        let (value, old) = self.converted.get_or_init(|| {
            (
                to_cel(self.value, Some(schema), self.is_resource_root),
                self.old.map(|o| to_cel(o, Some(schema), self.is_resource_root)),
            )
        });
        (value, old.as_ref())
    }
}

/// allOf branch rules evaluated against the value shaped by the structural node.
struct SchemaBranch<'a> {
    structure: &'a SchemaNode,
    rules: &'a SchemaNode,
}

impl SchemaBranch<'_> {
    fn run(
        &self,
        walker: &Walker<'_>,
        site: &Site<'_>,
        inputs: &RuleInputs<'_>,
        outcome: &mut CelOutcome,
    ) {
        for rule in &self.rules.rules {
            walker.rule(rule, self.structure, site, inputs, outcome);
        }
        for nested in &self.rules.all_of {
            let shaped = SchemaBranch {
                structure: self.structure,
                rules: nested,
            };
            shaped.run(walker, site, inputs, outcome);
        }
    }
}

/// `<err> evaluating rule: <message or rule>`, with cel-go's texts for the common errors.
fn runtime_error_detail(err: &ExecutionError, rule: &CelRule) -> String {
    let rule_text = match rule.message.as_deref().map(str::trim) {
        Some(message) if !message.is_empty() => message.to_string(),
        _ => rule.rule.trim().to_string(),
    };
    match err {
        ExecutionError::NoSuchOverload => format!(
            "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {rule_text}"
        ),
        ExecutionError::NoSuchKey(name) => {
            format!("no such key: {name} evaluating rule: {rule_text}")
        }
        ExecutionError::DivisionByZero(_) => {
            format!("division by zero evaluating rule: {rule_text}")
        }
        ExecutionError::RemainderByZero(_) => {
            format!("modulus by zero evaluating rule: {rule_text}")
        }
        ExecutionError::Overflow(..) => format!("integer overflow evaluating rule: {rule_text}"),
        other => format!("{other} evaluating rule: {rule_text}"),
    }
}

/// A messageExpression result the apiserver would use: a non-empty single line of at most 5 KiB.
fn evaluated_message(result: Result<CelValue, ExecutionError>) -> Option<String> {
    let Ok(CelValue::String(text)) = result else {
        return None;
    };
    let trimmed = text.trim();
    let usable = !trimmed.is_empty()
        && !trimmed.contains('\n')
        && trimmed.len() <= MAX_MESSAGE_EXPRESSION_BYTES;
    usable.then(|| trimmed.to_string())
}

/// Appends a rule's `fieldPath` (`.spec.x`, `.map['key']`, `['a.b']`) to the node path,
/// following the schema to tell object fields (`.x`) from map keys (`[x]`).
fn append_field_path(path: &str, field_path: &str, schema: &SchemaNode) -> String {
    let mut result = path.to_string();
    let mut current = Some(schema);
    let mut rest = field_path;
    while !rest.is_empty() {
        let name;
        if let Some(tail) = rest.strip_prefix("['") {
            let Some(end) = tail.find("']") else {
                break;
            };
            name = tail[..end].replace("\\'", "'").replace("\\\\", "\\");
            rest = &tail[end + 2..];
        } else if let Some(tail) = rest.strip_prefix('.') {
            let end = tail.find(['.', '[']).unwrap_or(tail.len());
            name = tail[..end].to_string();
            rest = &tail[end..];
        } else {
            break;
        }
        match current {
            Some(node) if !node.properties.is_empty() || !node.has_additional() => {
                result = child(&result, &name);
                current = node.properties.get(&name);
            }
            Some(node) => {
                result = key(&result, &name);
                current = node.additional_schema();
            }
            None => result = child(&result, &name),
        }
    }
    result
}

/// Finds the old item of a map list with the same key values as `item`.
pub(crate) fn find_by_map_keys<'a>(
    keys: &[String],
    old_items: &'a [Value],
    item: &Value,
) -> Option<&'a Value> {
    if keys.is_empty() || !item.is_object() {
        return None;
    }
    old_items.iter().find(|old| old.is_object() && keys.iter().all(|k| old.get(k) == item.get(k)))
}

fn string_key(s: String) -> Key {
    Key::String(Arc::new(s))
}

/// Converts a JSON value to CEL, typed by its schema: `number` fields are doubles,
/// date-time/duration/byte strings become timestamps/durations/bytes, object fields are
/// escaped while map keys are not, and resource roots expose only name and generateName of
/// their metadata.
pub(crate) fn to_cel(
    value: &Value,
    schema: Option<&SchemaNode>,
    is_resource_root: bool,
) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => {
            let wants_double = schema.is_some_and(|s| s.type_name.as_deref() == Some("number"));
            if wants_double {
                CelValue::Float(n.as_f64().unwrap_or(f64::NAN))
            } else if let Some(i) = n.as_i64() {
                CelValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                CelValue::UInt(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                // An integer field written as 3.0 decodes as an integer in the apiserver.
                if schema.is_some_and(|s| s.type_name.as_deref() == Some("integer"))
                    && f.fract() == 0.0
                {
                    CelValue::Int(f as i64)
                } else {
                    CelValue::Float(f)
                }
            }
        }
        Value::String(s) => string_to_cel(s, schema),
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.items.as_deref());
            CelValue::List(Arc::new(
                items.iter().map(|item| to_cel(item, item_schema, false)).collect(),
            ))
        }
        Value::Object(map) => {
            let mut out: HashMap<Key, CelValue> = HashMap::with_capacity(map.len());
            let has_properties = schema.is_some_and(|s| !s.properties.is_empty());
            for (name, child_value) in map {
                let (prop, is_field) = match schema {
                    Some(s) => match s.properties.get(name) {
                        Some(p) => (Some(p), true),
                        None => (s.additional_schema(), has_properties),
                    },
                    None => (None, false),
                };
                let converted = if is_resource_root && name == "metadata" {
                    restricted_metadata(child_value)
                } else {
                    to_cel(child_value, prop, prop.is_some_and(|p| p.embedded_resource))
                };
                let cel_name = if is_field {
                    escape_property(name)
                } else {
                    name.clone()
                };
                out.insert(string_key(cel_name), converted);
            }
            if schema.is_some_and(|s| s.embedded_resource) || is_resource_root {
                for (name, empty) in [
                    ("apiVersion", CelValue::String(Arc::new(String::new()))),
                    ("kind", CelValue::String(Arc::new(String::new()))),
                    (
                        "metadata",
                        CelValue::Map(CelMap {
                            map: Arc::new(HashMap::new()),
                        }),
                    ),
                ] {
                    out.entry(string_key(name.to_string())).or_insert(empty);
                }
            }
            CelValue::Map(CelMap { map: Arc::new(out) })
        }
    }
}

fn restricted_metadata(metadata: &Value) -> CelValue {
    let mut out = HashMap::new();
    for name in ["name", "generateName"] {
        if let Some(Value::String(s)) = metadata.get(name) {
            out.insert(
                string_key(name.to_string()),
                CelValue::String(Arc::new(s.clone())),
            );
        }
    }
    CelValue::Map(CelMap { map: Arc::new(out) })
}

fn string_to_cel(s: &str, schema: Option<&SchemaNode>) -> CelValue {
    let plain = || CelValue::String(Arc::new(s.to_string()));
    let Some(format) = schema.filter(|s| !s.int_or_string).and_then(|s| s.format.as_deref()) else {
        return plain();
    };
    match format {
        "date-time" => chrono::DateTime::parse_from_rfc3339(s)
            .map(CelValue::Timestamp)
            .unwrap_or_else(|_| plain()),
        "duration" => parse_go_duration(s).map(CelValue::Duration).unwrap_or_else(plain),
        "byte" => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map(|bytes| CelValue::Bytes(Arc::new(bytes)))
                .unwrap_or_else(|_| plain())
        }
        _ => plain(),
    }
}

/// Go's `time.ParseDuration` (`1h30m`, `1.5s`, `-300ms`, `0`).
pub(crate) fn parse_go_duration(input: &str) -> Option<chrono::Duration> {
    let (negative, mut rest) = match input.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, input.strip_prefix('+').unwrap_or(input)),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len =
            rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_nanos += number * nanos_per_unit;
    }
    let nanos = if negative { -total_nanos } else { total_nanos };
    Some(chrono::Duration::nanoseconds(nanos as i64))
}
