//! CRD-time checks of an openAPIV3Schema: the structural-schema rules and the parts of the
//! CRD API validation that concern the schema (including compiling every CEL rule), worded as
//! apiextensions-apiserver words them.

use serde_json::{Map, Value};

use super::node;
use super::render::{FieldError, child, go_quote, index, key};

/// The path of the first version's schema, which is what single-version CRDs report.
pub(crate) const FIRST_VERSION_SCHEMA: &str = "spec.versions[0].schema.openAPIV3Schema";

/// Checks that `schema` is structural and that all its CEL rules compile. Errors are
/// `<path>: <body>` strings below `spec.versions[0].schema.openAPIV3Schema`; use
/// [`check_structural_at`] for another version, or [`check_crd`] for a whole CRD.
pub fn check_structural(schema: &Value) -> Result<(), Vec<String>> {
    check_structural_at(schema, FIRST_VERSION_SCHEMA)
}

/// [`check_structural`] with errors reported below `path`
/// (e.g. `spec.versions[2].schema.openAPIV3Schema`).
pub fn check_structural_at(schema: &Value, path: &str) -> Result<(), Vec<String>> {
    into_result(schema_problems(schema, path))
}

/// Checks the schema of every version of a `CustomResourceDefinition` (apiextensions.k8s.io/v1).
pub fn check_crd(crd: &Value) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let versions =
        crd.pointer("/spec/versions").and_then(Value::as_array).cloned().unwrap_or_default();
    for (i, version) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
        match version.pointer("/schema/openAPIV3Schema") {
            Some(schema) => problems.extend(schema_problems(schema, &path)),
            None => problems.push(FieldError::required(&path, "schemas are required")),
        }
    }
    into_result(problems)
}

fn into_result(problems: Vec<FieldError>) -> Result<(), Vec<String>> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.iter().map(ToString::to_string).collect())
    }
}

/// All problems of one schema: first the CRD API checks (in schema order), then the
/// structural violations, sorted as `ValidateStructural` sorts them.
pub(crate) fn schema_problems(schema: &Value, path: &str) -> Vec<FieldError> {
    let (_, compile_problems) = node::parse(schema, path);
    assemble_problems(schema, path, compile_problems)
}

/// [`schema_problems`] for a schema already parsed, whose rule compilation problems are given.
pub(crate) fn assemble_problems(
    schema: &Value,
    path: &str,
    compile_problems: Vec<FieldError>,
) -> Vec<FieldError> {
    let Some(root) = schema.as_object() else {
        return vec![FieldError::required(
            &child(path, "type"),
            "must not be empty at the root",
        )];
    };
    let mut problems = Vec::new();
    api_checks(root, path, &mut problems);
    problems.extend(compile_problems);

    let mut structural = Vec::new();
    invariants(root, Level::Root, path, &mut structural);
    completeness(root, path, &mut structural);
    structural.sort_by_key(ToString::to_string);
    problems.extend(structural);
    problems
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

fn type_of(s: &Map<String, Value>) -> &str {
    s.get("type").and_then(Value::as_str).unwrap_or("")
}

fn flag(s: &Map<String, Value>, name: &str) -> bool {
    s.get(name).and_then(Value::as_bool) == Some(true)
}

fn properties(s: &Map<String, Value>) -> Option<&Map<String, Value>> {
    s.get("properties").and_then(Value::as_object)
}

fn sub_object<'a>(s: &'a Map<String, Value>, name: &str) -> Option<&'a Map<String, Value>> {
    s.get(name).and_then(Value::as_object)
}

fn branches<'a>(s: &'a Map<String, Value>, name: &str) -> Vec<&'a Map<String, Value>> {
    s.get(name)
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default()
}

/// Checks the CRD API makes on every schema node, outside the structural rules.
fn api_checks(s: &Map<String, Value>, path: &str, problems: &mut Vec<FieldError>) {
    if s.contains_key("$ref") {
        problems.push(FieldError::forbidden(
            &child(path, "$ref"),
            "$ref is not supported",
        ));
    }
    if flag(s, "uniqueItems") {
        problems.push(FieldError::forbidden(
            &child(path, "uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    match s.get("additionalProperties") {
        Some(Value::Bool(false)) => problems.push(FieldError::forbidden(
            &child(path, "additionalProperties"),
            "additionalProperties cannot be set to false",
        )),
        Some(_) if properties(s).is_some_and(|p| !p.is_empty()) => {
            problems.push(FieldError::forbidden(
                &child(path, "additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ))
        }
        _ => {}
    }
    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        problems.push(FieldError::invalid(
            &child(path, "x-kubernetes-preserve-unknown-fields"),
            "false",
            "must be true or undefined",
        ));
    }
    if let Some(list_type) = s.get("x-kubernetes-list-type").and_then(Value::as_str) {
        let list_type_path = child(path, "x-kubernetes-list-type");
        match list_type {
            "atomic" | "set" => {}
            "map" => {
                let keys = s.get("x-kubernetes-list-map-keys").and_then(Value::as_array);
                if keys.is_none_or(|k| k.is_empty()) {
                    problems.push(FieldError::required(
                        &child(path, "x-kubernetes-list-map-keys"),
                        "must not be empty if x-kubernetes-list-type is map",
                    ));
                }
            }
            other => problems.push(FieldError::not_supported(
                &list_type_path,
                &go_quote(other),
                &["atomic".into(), "map".into(), "set".into()],
            )),
        }
    }

    if let Some(props) = properties(s) {
        let props_path = child(path, "properties");
        for (name, sub) in props {
            if let Some(sub) = sub.as_object() {
                api_checks(sub, &key(&props_path, name), problems);
            }
        }
    }
    if let Some(items) = sub_object(s, "items") {
        api_checks(items, &child(path, "items"), problems);
    }
    if let Some(additional) = sub_object(s, "additionalProperties") {
        api_checks(additional, &child(path, "additionalProperties"), problems);
    }
    for junctor in ["allOf", "anyOf", "oneOf"] {
        for (i, branch) in branches(s, junctor).into_iter().enumerate() {
            api_checks(branch, &index(&child(path, junctor), i), problems);
        }
    }
    if let Some(not) = sub_object(s, "not") {
        api_checks(not, &child(path, "not"), problems);
    }
}

/// `anyOf: [{type: integer}, {type: string}]`, the one nested type allowed (int-or-string).
fn is_int_or_string_any_of(branches: &[&Map<String, Value>]) -> bool {
    branches.len() == 2
        && branches
            .iter()
            .zip(["integer", "string"])
            .all(|(b, t)| b.len() == 1 && b.get("type").and_then(Value::as_str) == Some(t))
}

fn invariants(s: &Map<String, Value>, level: Level, path: &str, errs: &mut Vec<FieldError>) {
    let ty = type_of(s);
    if ty == "array" && !s.contains_key("items") {
        errs.push(FieldError::required(
            &child(path, "items"),
            "must be specified",
        ));
    }
    if let Some(items) = sub_object(s, "items") {
        invariants(items, Level::Item, &child(path, "items"), errs);
    }
    if let Some(props) = properties(s) {
        let props_path = child(path, "properties");
        for (name, sub) in props {
            if let Some(sub) = sub.as_object() {
                invariants(sub, Level::Field, &key(&props_path, name), errs);
            }
        }
    }
    if s.contains_key("additionalProperties") {
        if level == Level::Root {
            errs.push(FieldError::forbidden(
                &child(path, "additionalProperties"),
                "must not be used at the root",
            ));
        }
        if let Some(additional) = sub_object(s, "additionalProperties") {
            invariants(
                additional,
                Level::Field,
                &child(path, "additionalProperties"),
                errs,
            );
        }
    }

    let int_or_string = flag(s, "x-kubernetes-int-or-string");
    let preserve = flag(s, "x-kubernetes-preserve-unknown-fields");
    let embedded = flag(s, "x-kubernetes-embedded-resource");
    if int_or_string && preserve {
        errs.push(FieldError::invalid(
            &child(path, "x-kubernetes-preserve-unknown-fields"),
            "true",
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if int_or_string && embedded {
        errs.push(FieldError::invalid(
            &child(path, "x-kubernetes-embedded-resource"),
            "true",
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }

    // Value validations (the logical junctors), except the int-or-string patterns.
    let any_of = branches(s, "anyOf");
    if !is_int_or_string_any_of(&any_of) {
        for (i, branch) in any_of.iter().enumerate() {
            nested_value_validation(branch, false, &index(&child(path, "anyOf"), i), errs);
        }
    }
    for (i, branch) in branches(s, "allOf").iter().enumerate() {
        let skip_any_of = i == 0 && is_int_or_string_any_of(&branches(branch, "anyOf"));
        nested_value_validation(branch, skip_any_of, &index(&child(path, "allOf"), i), errs);
    }
    for (i, branch) in branches(s, "oneOf").iter().enumerate() {
        nested_value_validation(branch, false, &index(&child(path, "oneOf"), i), errs);
    }
    if let Some(not) = sub_object(s, "not") {
        nested_value_validation(not, false, &child(path, "not"), errs);
    }

    let type_path = child(path, "type");
    if embedded && ty != "object" {
        let detail = "must be object if x-kubernetes-embedded-resource is true";
        if ty.is_empty() {
            errs.push(FieldError::required(&type_path, detail));
        } else {
            errs.push(FieldError::invalid(&type_path, &go_quote(ty), detail));
        }
    } else if ty.is_empty() && !int_or_string && !preserve {
        let detail = match level {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(&type_path, detail));
    }
    if embedded && s.contains_key("additionalProperties") {
        errs.push(FieldError::forbidden(
            &child(path, "additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if level == Level::Root && !ty.is_empty() && ty != "object" {
        errs.push(FieldError::invalid(
            &type_path,
            &go_quote(ty),
            "must be object at the root",
        ));
    }

    let check_metadata = level == Level::Root || embedded;
    let props = properties(s);
    let prop = |name: &str| props.and_then(|p| p.get(name)).and_then(Value::as_object);
    let props_path = child(path, "properties");
    if check_metadata {
        for (name, wanted) in [
            ("kind", "string"),
            ("apiVersion", "string"),
            ("metadata", "object"),
        ] {
            if let Some(sub) = prop(name) {
                let actual = type_of(sub);
                if actual != wanted {
                    errs.push(FieldError::invalid(
                        &child(&key(&props_path, name), "type"),
                        &go_quote(actual),
                        &format!("must be {wanted}"),
                    ));
                }
            }
        }
    }
    if level == Level::Root
        && let Some(metadata) = prop("metadata")
        && !metadata_restricts_only_names(metadata)
    {
        errs.push(FieldError::forbidden(
            &key(&props_path, "metadata"),
            "must not specify anything other than name and generateName, but metadata is implicitly specified",
        ));
    }
    if embedded && !preserve && props.is_none_or(|p| p.is_empty()) {
        errs.push(FieldError::required(
            &props_path,
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// The root `metadata` may carry a type, a default and constraints on name/generateName only.
fn metadata_restricts_only_names(metadata: &Map<String, Value>) -> bool {
    metadata.iter().all(|(k, v)| match k.as_str() {
        "type" | "default" => true,
        "properties" => v.as_object().is_some_and(|p| {
            !p.is_empty() && p.keys().all(|name| name == "name" || name == "generateName")
        }),
        _ => false,
    })
}

/// Inside anyOf/allOf/oneOf/not only value validations are allowed.
fn nested_value_validation(
    v: &Map<String, Value>,
    skip_any_of: bool,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if !skip_any_of {
        for (i, branch) in branches(v, "anyOf").iter().enumerate() {
            nested_value_validation(branch, false, &index(&child(path, "anyOf"), i), errs);
        }
    }
    for (i, branch) in branches(v, "allOf").iter().enumerate() {
        nested_value_validation(branch, false, &index(&child(path, "allOf"), i), errs);
    }
    for (i, branch) in branches(v, "oneOf").iter().enumerate() {
        nested_value_validation(branch, false, &index(&child(path, "oneOf"), i), errs);
    }
    if let Some(not) = sub_object(v, "not") {
        nested_value_validation(not, false, &child(path, "not"), errs);
    }
    if let Some(items) = sub_object(v, "items") {
        nested_value_validation(items, false, &child(path, "items"), errs);
    }
    if let Some(props) = properties(v) {
        let props_path = child(path, "properties");
        for (name, sub) in props {
            if let Some(sub) = sub.as_object() {
                nested_value_validation(sub, false, &key(&props_path, name), errs);
            }
        }
        if props.contains_key("metadata") {
            errs.push(FieldError::forbidden(
                &key(&props_path, "metadata"),
                "must not be specified in a nested context",
            ));
        }
    }

    let forbidden: [(&str, &str); 11] = [
        ("type", "must be empty to be structural"),
        ("additionalProperties", "must be undefined to be structural"),
        ("default", "must be undefined to be structural"),
        ("title", "must be empty to be structural"),
        ("description", "must be empty to be structural"),
        ("nullable", "must be false to be structural"),
        (
            "x-kubernetes-preserve-unknown-fields",
            "must be false to be structural",
        ),
        (
            "x-kubernetes-embedded-resource",
            "must be false to be structural",
        ),
        (
            "x-kubernetes-int-or-string",
            "must be false to be structural",
        ),
        (
            "x-kubernetes-list-map-keys",
            "must be empty to be structural",
        ),
        (
            "x-kubernetes-list-type",
            "must be undefined to be structural",
        ),
    ];
    for (name, detail) in forbidden {
        let set = match v.get(name) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        if set {
            errs.push(FieldError::forbidden(&child(path, name), detail));
        }
    }
}

/// Every property or items specified inside the root's junctors must also exist in the
/// structural part of the schema (the apiserver checks the root's junctors only).
fn completeness(s: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    for name in ["allOf", "anyOf", "oneOf"] {
        for (i, branch) in branches(s, name).into_iter().enumerate() {
            branch_completeness(branch, &index(&child(path, name), i), Some(s), path, errs);
        }
    }
    if let Some(not) = sub_object(s, "not") {
        branch_completeness(not, &child(path, "not"), Some(s), path, errs);
    }
}

fn branch_completeness(
    branch: &Map<String, Value>,
    branch_path: &str,
    structural: Option<&Map<String, Value>>,
    structural_path: &str,
    errs: &mut Vec<FieldError>,
) {
    let Some(s) = structural else {
        errs.push(FieldError::required(
            structural_path,
            &format!("because it is defined in {branch_path}"),
        ));
        return;
    };
    for name in ["allOf", "anyOf", "oneOf"] {
        for (i, nested) in branches(branch, name).into_iter().enumerate() {
            let nested_path = index(&child(branch_path, name), i);
            branch_completeness(nested, &nested_path, Some(s), structural_path, errs);
        }
    }
    if let Some(not) = sub_object(branch, "not") {
        branch_completeness(
            not,
            &child(branch_path, "not"),
            Some(s),
            structural_path,
            errs,
        );
    }
    if let Some(items) = sub_object(branch, "items") {
        branch_completeness(
            items,
            &child(branch_path, "items"),
            sub_object(s, "items"),
            &child(structural_path, "items"),
            errs,
        );
    }
    if let Some(props) = properties(branch) {
        for (name, sub) in props {
            let Some(sub) = sub.as_object() else { continue };
            let sub_branch_path = key(&child(branch_path, "properties"), name);
            let declared = properties(s).and_then(|p| p.get(name)).and_then(Value::as_object);
            // A property validated under a map is checked against the map's values.
            let (structural_sub, structural_sub_path) =
                match (declared, sub_object(s, "additionalProperties")) {
                    (Some(declared), _) => (
                        Some(declared),
                        key(&child(structural_path, "properties"), name),
                    ),
                    (None, Some(values)) => {
                        (Some(values), child(structural_path, "additionalProperties"))
                    }
                    (None, None) => (None, key(&child(structural_path, "properties"), name)),
                };
            branch_completeness(
                sub,
                &sub_branch_path,
                structural_sub,
                &structural_sub_path,
                errs,
            );
        }
    }
}
