//! The openAPIV3Schema of a CRD version, parsed once into a tree that admission walks, with
//! every `x-kubernetes-validations` rule compiled by kube-cel.

use kube_cel::cel::common::ast::IdedExpr;
use kube_cel::cel::parser::{Expression, Parser};
use kube_cel::cel::{Context, Program, ResolveResult};
use serde_json::Value;

use super::reach::Reach;
use super::render::{FieldError, child, go_quote, index, key};
use super::typecheck;

/// What `additionalProperties` says.
#[derive(Debug, Default)]
pub(crate) enum Additional {
    /// Absent or `false`: only `properties` are known.
    #[default]
    Absent,
    /// `true`: any key, with no schema below it.
    AnyWithoutSchema,
    Schema(Box<SchemaNode>),
}

/// A `minimum`/`maximum`/`multipleOf` bound, kept as written so messages print it as Go does.
#[derive(Debug, Clone)]
pub(crate) struct Bound {
    pub value: f64,
    pub literal: serde_json::Number,
}

/// A compiled CEL expression: a kube-cel program, or, for expressions using cel's optional
/// syntax (`self.?field`, which kube-cel's compiler does not enable and Kubernetes does),
/// the expression parsed with that syntax on.
pub(crate) enum Executable {
    Compiled(Program),
    WithOptionalSyntax(Expression),
}

impl Executable {
    pub(crate) fn execute(&self, context: &Context) -> ResolveResult {
        match self {
            Executable::Compiled(program) => program.execute(context),
            Executable::WithOptionalSyntax(expression) => context.resolve(expression),
        }
    }

    pub(crate) fn expression(&self) -> &IdedExpr {
        match self {
            Executable::Compiled(program) => program.expression(),
            Executable::WithOptionalSyntax(expression) => expression,
        }
    }

    fn uses_old_self(&self) -> bool {
        match self {
            Executable::Compiled(program) => program.references().has_variable("oldSelf"),
            Executable::WithOptionalSyntax(expression) => {
                expression.references().has_variable("oldSelf")
            }
        }
    }
}

/// Parses with optional syntax enabled, for what kube-cel's default parser refused.
fn parse_with_optional_syntax(source: &str) -> Option<Executable> {
    Parser::new()
        .enable_optional_syntax(true)
        .parse(&optional_selects_as_indexes(source))
        .ok()
        .map(Executable::WithOptionalSyntax)
}

/// Rewrites `x.?field` as `x[?'field']`: the cel interpreter fails `.?` on an absent field
/// of a plain map where cel-go yields `optional.none()`, while its `[?]` behaves.
fn optional_selects_as_indexes(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len() + 8);
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            out.push(c);
            if c == '\\' {
                if let Some(next) = chars.get(i + 1) {
                    out.push(*next);
                    i += 1;
                }
            } else if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            out.push(c);
            i += 1;
            continue;
        }
        if c == '.' && chars.get(i + 1) == Some(&'?') {
            let start = i + 2;
            let mut end = start;
            while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_') {
                end += 1;
            }
            if end > start {
                let field: String = chars[start..end].iter().collect();
                out.push_str(&format!("[?'{field}']"));
                i = end;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// One compiled `x-kubernetes-validations` entry.
pub(crate) struct CelRule {
    pub rule: String,
    pub message: Option<String>,
    pub reason: Option<String>,
    pub field_path: Option<String>,
    pub message_expression: Option<String>,
    pub optional_old_self: bool,
    pub program: Executable,
    pub message_program: Option<Executable>,
    pub uses_old_self: bool,
    /// What the rule and its messageExpression read of `self` and of `oldSelf`.
    pub self_reach: Reach,
    pub old_self_reach: Reach,
    /// Verdicts on large values seen before (see [`super::memo::VerdictMemo`]).
    pub memo: super::memo::VerdictMemo,
}

impl std::fmt::Debug for CelRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CelRule").field("rule", &self.rule).finish()
    }
}

/// A node's `properties`, sorted by name. A sorted vector rather than a map: most objects
/// have few properties, and a B-tree leaf sized for eleven nodes is wasteful for them.
#[derive(Debug, Default)]
pub(crate) struct Properties(Vec<(String, SchemaNode)>);

impl Properties {
    fn from_unsorted(mut entries: Vec<(String, SchemaNode)>) -> Self {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Properties(entries)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&SchemaNode> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)).ok().map(|i| &self.0[i].1)
    }

    pub(crate) fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &SchemaNode)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl<'a> IntoIterator for &'a Properties {
    type Item = (&'a String, &'a SchemaNode);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, SchemaNode)>,
        fn(&'a (String, SchemaNode)) -> (&'a String, &'a SchemaNode),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

#[derive(Debug, Default)]
pub(crate) struct SchemaNode {
    pub type_name: Option<String>,
    pub format: Option<String>,
    pub nullable: bool,
    pub default: Option<Value>,
    pub properties: Properties,
    pub additional: Additional,
    pub items: Option<Box<SchemaNode>>,
    pub required: Vec<String>,
    pub enum_values: Option<Vec<Value>>,
    pub pattern: Option<(String, regex::Regex)>,
    pub minimum: Option<Bound>,
    pub maximum: Option<Bound>,
    pub exclusive_minimum: bool,
    pub exclusive_maximum: bool,
    pub multiple_of: Option<Bound>,
    pub min_length: Option<i64>,
    pub max_length: Option<i64>,
    pub min_items: Option<i64>,
    pub max_items: Option<i64>,
    pub min_properties: Option<i64>,
    pub max_properties: Option<i64>,
    pub preserve_unknown_fields: bool,
    pub embedded_resource: bool,
    pub int_or_string: bool,
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    pub all_of: Vec<SchemaNode>,
    pub any_of: Vec<SchemaNode>,
    pub one_of: Vec<SchemaNode>,
    pub not: Option<Box<SchemaNode>>,
    pub rules: Vec<CelRule>,
    /// Whether this node, an allOf branch of it or a node below it has CEL rules.
    pub rules_within: bool,
}

impl SchemaNode {
    pub(crate) fn additional_schema(&self) -> Option<&SchemaNode> {
        match &self.additional {
            Additional::Schema(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn has_additional(&self) -> bool {
        !matches!(self.additional, Additional::Absent)
    }

    pub(crate) fn is_map_list(&self) -> bool {
        self.list_type.as_deref() == Some("map")
    }

    /// The `sts.Type` that CEL failures print as the bad value (empty for untyped nodes).
    pub(crate) fn cel_type_name(&self) -> &str {
        self.type_name.as_deref().unwrap_or("")
    }
}

/// Parses a schema. Problems that make the CRD invalid (rules that do not compile, bad
/// patterns) are returned with their `field.Path` below `path`.
pub(crate) fn parse(schema: &Value, path: &str) -> (SchemaNode, Vec<FieldError>) {
    let mut problems = Vec::new();
    let root = Place {
        resource: true,
        structural: true,
    };
    let node = parse_node(schema, path, root, &mut problems);
    (node, problems)
}

/// Where a node sits.
#[derive(Clone, Copy)]
struct Place {
    /// The resource root or an embedded resource.
    resource: bool,
    /// Outside logical junctors, where the node itself types `self`.
    structural: bool,
}

impl Place {
    fn below(structural: bool, sub: &Value) -> Place {
        let embedded = sub.get("x-kubernetes-embedded-resource").and_then(Value::as_bool);
        Place {
            resource: embedded == Some(true),
            structural,
        }
    }
}

fn parse_node(
    schema: &Value,
    path: &str,
    place: Place,
    problems: &mut Vec<FieldError>,
) -> SchemaNode {
    let Some(obj) = schema.as_object() else {
        return SchemaNode::default();
    };
    let flag = |name: &str| obj.get(name).and_then(Value::as_bool) == Some(true);
    let int = |name: &str| obj.get(name).and_then(Value::as_i64);
    let bound = |name: &str| match obj.get(name) {
        Some(Value::Number(n)) => n.as_f64().map(|value| Bound {
            value,
            literal: n.clone(),
        }),
        _ => None,
    };
    let branches = |name: &str, problems: &mut Vec<FieldError>| -> Vec<SchemaNode> {
        obj.get(name)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let branch_place = Place::below(false, s);
                        parse_node(s, &index(&child(path, name), i), branch_place, problems)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };

    let mut node = SchemaNode {
        type_name: obj.get("type").and_then(Value::as_str).map(str::to_string),
        format: obj.get("format").and_then(Value::as_str).map(str::to_string),
        nullable: flag("nullable"),
        default: obj.get("default").cloned(),
        required: string_list(obj.get("required")),
        enum_values: obj.get("enum").and_then(Value::as_array).cloned(),
        minimum: bound("minimum"),
        maximum: bound("maximum"),
        exclusive_minimum: flag("exclusiveMinimum"),
        exclusive_maximum: flag("exclusiveMaximum"),
        multiple_of: bound("multipleOf"),
        min_length: int("minLength"),
        max_length: int("maxLength"),
        min_items: int("minItems"),
        max_items: int("maxItems"),
        min_properties: int("minProperties"),
        max_properties: int("maxProperties"),
        preserve_unknown_fields: flag("x-kubernetes-preserve-unknown-fields"),
        embedded_resource: flag("x-kubernetes-embedded-resource"),
        int_or_string: flag("x-kubernetes-int-or-string"),
        list_type: obj.get("x-kubernetes-list-type").and_then(Value::as_str).map(str::to_string),
        list_map_keys: string_list(obj.get("x-kubernetes-list-map-keys")),
        ..SchemaNode::default()
    };

    if let Some(pattern) = obj.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(&ascii_perl_classes(pattern)) {
            Ok(re) => node.pattern = Some((pattern.to_string(), re)),
            Err(e) => problems.push(FieldError::invalid(
                &child(path, "pattern"),
                &go_quote(pattern),
                &format!("must be a valid regular expression, but isn't: {e}"),
            )),
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        let props_path = child(path, "properties");
        let mut entries = Vec::with_capacity(props.len());
        for (name, sub) in props {
            let sub_place = Place::below(place.structural, sub);
            let sub_node = parse_node(sub, &key(&props_path, name), sub_place, problems);
            entries.push((name.clone(), sub_node));
        }
        node.properties = Properties::from_unsorted(entries);
    }
    node.additional = match obj.get("additionalProperties") {
        Some(Value::Bool(true)) => Additional::AnyWithoutSchema,
        Some(sub @ Value::Object(_)) => Additional::Schema(Box::new(parse_node(
            sub,
            &child(path, "additionalProperties"),
            Place::below(place.structural, sub),
            problems,
        ))),
        _ => Additional::Absent,
    };
    if let Some(items) = obj.get("items").filter(|v| v.is_object()) {
        let items_place = Place::below(place.structural, items);
        node.items = Some(Box::new(parse_node(
            items,
            &child(path, "items"),
            items_place,
            problems,
        )));
    }
    node.all_of = branches("allOf", problems);
    node.any_of = branches("anyOf", problems);
    node.one_of = branches("oneOf", problems);
    if let Some(not) = obj.get("not").filter(|v| v.is_object()) {
        let not_place = Place::below(false, not);
        node.not = Some(Box::new(parse_node(
            not,
            &child(path, "not"),
            not_place,
            problems,
        )));
    }
    if let Some(rules) = obj.get("x-kubernetes-validations").and_then(Value::as_array) {
        let rules_path = child(path, "x-kubernetes-validations");
        let mut compiled = Vec::new();
        for (i, raw) in rules.iter().enumerate() {
            let rule_path = index(&rules_path, i);
            let Some(rule) = compile_rule(raw, &rule_path, problems) else {
                continue;
            };
            // Junctor branches carry no structure of their own to check fields against.
            if place.structural {
                let found = rule_problems(&rule, &node, place, &rule_path);
                if !found.is_empty() {
                    problems.extend(found);
                    continue;
                }
            }
            compiled.push(rule);
        }
        node.rules = compiled;
    }
    node.rules_within = !node.rules.is_empty()
        || node.all_of.iter().any(|branch| branch.rules_within)
        || node.properties.into_iter().any(|(_, prop)| prop.rules_within)
        || node.additional_schema().is_some_and(|s| s.rules_within)
        || node.items.as_deref().is_some_and(|s| s.rules_within);
    node
}

/// cel-go indents its source snippets as ` | `; the cel crate writes `| `.
fn cel_go_snippets(report: &str) -> String {
    report.replace("\n| ", "\n | ")
}

impl typecheck::DeclaredSchema for SchemaNode {
    fn value_schema(&self) -> Option<&dyn typecheck::DeclaredSchema> {
        self.additional_schema().map(|s| s as &dyn typecheck::DeclaredSchema)
    }
    fn item_schema(&self) -> Option<&dyn typecheck::DeclaredSchema> {
        self.items.as_deref().map(|s| s as &dyn typecheck::DeclaredSchema)
    }
    fn is_declared_object(&self) -> bool {
        self.type_name.as_deref() == Some("object")
            && !self.has_additional()
            && !self.preserve_unknown_fields
            && !self.properties.is_empty()
    }
    fn property(&self, field: &str) -> Option<&dyn typecheck::DeclaredSchema> {
        self.properties
            .iter()
            .find(|(name, _)| super::escape::escape_property(name) == field)
            .map(|(_, node)| node as &dyn typecheck::DeclaredSchema)
    }
    fn is_embedded_resource(&self) -> bool {
        self.embedded_resource
    }
}

/// What the CRD validation finds in a compiled rule against its node: fields the schema does
/// not declare (cel-go's checker), in the rule or its messageExpression, and a fieldPath
/// that leads nowhere.
fn rule_problems(
    rule: &CelRule,
    node: &SchemaNode,
    place: Place,
    rule_path: &str,
) -> Vec<FieldError> {
    let mut problems = Vec::new();
    let checked = [
        (
            Some(&rule.program),
            Some(rule.rule.as_str()),
            "rule",
            "compilation failed",
        ),
        (
            rule.message_program.as_ref(),
            rule.message_expression.as_deref(),
            "messageExpression",
            "messageExpression compilation failed",
        ),
    ];
    for (program, source, field, failure) in checked {
        let (Some(program), Some(source)) = (program, source) else {
            continue;
        };
        let expression = program.expression();
        let undefined =
            typecheck::undefined_fields(expression, node, place.resource, rule.optional_old_self);
        if undefined.is_empty() {
            continue;
        }
        let reports: Vec<String> =
            undefined.iter().map(|name| typecheck::undefined_field_report(source, name)).collect();
        problems.push(FieldError::invalid(
            &child(rule_path, field),
            &go_quote(source),
            &format!("{failure}: {}", reports.join("\n")),
        ));
    }
    if let Some(field_path) = &rule.field_path
        && !field_path_resolves(node, field_path)
    {
        problems.push(FieldError::invalid(
            &child(rule_path, "fieldPath"),
            &go_quote(field_path),
            "fieldPath must be a valid path",
        ));
    }
    problems
}

/// Whether a rule's `fieldPath` (`.a.b`, `.m['key']`, `['a.b']`) names a field of the node:
/// each step a declared property, or any key of a map.
fn field_path_resolves(node: &SchemaNode, field_path: &str) -> bool {
    let mut current = node;
    let mut rest = field_path;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let name;
        if let Some(tail) = rest.strip_prefix("['") {
            let Some(end) = tail.find("']") else {
                return false;
            };
            name = &tail[..end];
            rest = &tail[end + 2..];
        } else if let Some(tail) = rest.strip_prefix('.') {
            let end = tail.find(['.', '[']).unwrap_or(tail.len());
            name = &tail[..end];
            rest = &tail[end..];
        } else {
            return false;
        }
        if name.is_empty() {
            return false;
        }
        current = if !current.properties.is_empty() {
            match current.properties.get(name) {
                Some(next) => next,
                None => return false,
            }
        } else if let Some(values) = current.additional_schema() {
            values
        } else {
            return false;
        };
    }
    true
}

/// Go's regexp (RE2) gives `\d`, `\w`, `\s` and `\b` their ASCII meaning where Rust's regex
/// crate is Unicode-aware (and builds much larger automata for it).
fn ascii_perl_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str("[0-9]"),
            Some('D') => out.push_str("[^0-9]"),
            Some('w') => out.push_str("[0-9A-Za-z_]"),
            Some('W') => out.push_str("[^0-9A-Za-z_]"),
            Some('s') => out.push_str("[\\t\\n\\f\\r ]"),
            Some('S') => out.push_str("[^\\t\\n\\f\\r ]"),
            Some('b') => out.push_str("(?-u:\\b)"),
            Some('B') => out.push_str("(?-u:\\B)"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

const RULE_REASONS: [&str; 4] = [
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];

fn reach_of(program: &Executable, message: Option<&Executable>, variable: &str) -> Reach {
    let mut expressions = vec![program.expression()];
    expressions.extend(message.map(Executable::expression));
    Reach::of(&expressions, variable)
}

/// Compiles one rule with kube-cel; failures are reported the way the CRD validation does.
fn compile_rule(raw: &Value, path: &str, problems: &mut Vec<FieldError>) -> Option<CelRule> {
    let Some(rule_text) = raw.get("rule").and_then(Value::as_str) else {
        problems.push(FieldError::required(&child(path, "rule"), ""));
        return None;
    };
    let text = |name: &str| raw.get(name).and_then(Value::as_str).map(str::to_string);
    let reason = text("reason");
    if let Some(r) = &reason
        && !RULE_REASONS.contains(&r.as_str())
    {
        let supported: Vec<String> = RULE_REASONS.iter().map(|s| s.to_string()).collect();
        problems.push(FieldError::not_supported(
            &child(path, "reason"),
            &go_quote(r),
            &supported,
        ));
    }

    // One rule per call so a broken rule cannot hide the others; kube-cel parses the rule
    // entry, compiles the expression and the messageExpression, and spots oldSelf.
    let single = serde_json::json!({ "x-kubernetes-validations": [raw] });
    let compiled = kube_cel::compile_schema(&single);
    let result = compiled.validations.into_iter().next()?;
    let message_text = text("messageExpression");
    let build = |program: Executable, message_program: Option<Executable>| CelRule {
        self_reach: reach_of(&program, message_program.as_ref(), "self"),
        old_self_reach: reach_of(&program, message_program.as_ref(), "oldSelf"),
        rule: rule_text.to_string(),
        message: text("message"),
        reason: reason.clone(),
        field_path: text("fieldPath"),
        message_expression: message_text.clone(),
        optional_old_self: raw.get("optionalOldSelf").and_then(Value::as_bool) == Some(true),
        uses_old_self: program.uses_old_self(),
        program,
        message_program,
        memo: Default::default(),
    };
    match result {
        Ok(result) => Some(build(
            Executable::Compiled(result.program),
            result.message_program.map(Executable::Compiled),
        )),
        Err(kube_cel::CompilationError::Parse { source, .. }) => {
            let message_program = match message_text.as_deref() {
                Some(expr) => match Program::compile(expr) {
                    Ok(program) => Some(Executable::Compiled(program)),
                    Err(_) => parse_with_optional_syntax(expr),
                },
                None => None,
            };
            if let Some(program) = parse_with_optional_syntax(rule_text) {
                return Some(build(program, message_program));
            }
            problems.push(FieldError::invalid(
                &child(path, "rule"),
                &go_quote(rule_text),
                &format!(
                    "compilation failed: {}",
                    cel_go_snippets(&source.to_string())
                ),
            ));
            None
        }
        Err(kube_cel::CompilationError::MessageExpressionParse {
            message_expression,
            source,
            ..
        }) => {
            let program = Program::compile(rule_text).ok().map(Executable::Compiled);
            if let (Some(program), Some(message_program)) =
                (program, parse_with_optional_syntax(&message_expression))
            {
                return Some(build(program, Some(message_program)));
            }
            problems.push(FieldError::invalid(
                &child(path, "messageExpression"),
                &go_quote(&message_expression),
                &format!(
                    "messageExpression compilation failed: {}",
                    cel_go_snippets(&source.to_string())
                ),
            ));
            None
        }
        Err(other) => {
            problems.push(FieldError::invalid(
                path,
                &go_quote(rule_text),
                &other.to_string(),
            ));
            None
        }
    }
}
