//! Admission tests with small schemas; real CRDs are exercised in `compat`.

use serde_json::{Value, json};

use super::*;
use crate::error::ApiError;
use crate::store::Admission;

mod compat;

fn widget_schema(spec: Value) -> Value {
    json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
        }
    })
}

fn widget(spec: Value) -> Value {
    json!({
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "default"},
        "spec": spec,
    })
}

fn admission(spec_schema: Value) -> CrAdmission {
    match CrAdmission::new("example.com", "Widget", &widget_schema(spec_schema)) {
        Ok(a) => a,
        Err(problems) => panic!("schema rejected: {problems:?}"),
    }
}

/// Admits and expects a 422; returns `(field, message)` of each cause.
fn rejected(
    admission: &CrAdmission,
    mut obj: Value,
    old: Option<&Value>,
) -> (ApiError, Vec<(String, String)>) {
    match admission.admit(&mut obj, old, false) {
        Ok(warnings) => panic!("admitted: {obj} (warnings {warnings:?})"),
        Err(err) => {
            let causes = err.causes.iter().map(|c| (c.field.clone(), c.message.clone())).collect();
            (err, causes)
        }
    }
}

fn admitted(admission: &CrAdmission, obj: &mut Value, old: Option<&Value>) -> Vec<String> {
    match admission.admit(obj, old, false) {
        Ok(warnings) => warnings,
        Err(err) => panic!("rejected: {}", err.message),
    }
}

// ---- structural schema checks -------------------------------------------------------

#[test]
fn missing_type_is_not_structural() {
    let schema = widget_schema(json!({"properties": {"size": {"type": "integer"}}}));
    let errors = check_structural(&schema).unwrap_err();
    assert_eq!(
        errors,
        vec![
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"
        ]
    );
    let item_errors = check_structural_at(
        &json!({"type": "object", "properties": {"l": {"type": "array", "items": {}}}}),
        "openAPIV3Schema",
    )
    .unwrap_err();
    assert_eq!(
        item_errors,
        vec![
            "openAPIV3Schema.properties[l].items.type: Required value: must not be empty for specified array items"
        ]
    );
}

#[test]
fn root_must_be_object_and_untyped_is_allowed_when_preserving() {
    let errors = check_structural(&json!({"type": "string"})).unwrap_err();
    assert_eq!(
        errors,
        vec![
            r#"spec.versions[0].schema.openAPIV3Schema.type: Invalid value: "string": must be object at the root"#
        ]
    );
    let preserved = widget_schema(json!({"x-kubernetes-preserve-unknown-fields": true}));
    assert_eq!(check_structural(&preserved), Ok(()));
    let int_or_string = widget_schema(json!({"x-kubernetes-int-or-string": true}));
    assert_eq!(check_structural(&int_or_string), Ok(()));
}

#[test]
fn junctors_may_only_hold_value_validations() {
    let schema = widget_schema(json!({
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "anyOf": [
            {"type": "object", "description": "d", "nullable": true, "default": {}, "x-kubernetes-preserve-unknown-fields": true},
            {"required": ["a"]}
        ]
    }));
    let errors = check_structural(&schema).unwrap_err();
    let prefix = "spec.versions[0].schema.openAPIV3Schema.properties[spec].anyOf[0]";
    assert_eq!(
        errors,
        vec![
            format!("{prefix}.default: Forbidden: must be undefined to be structural"),
            format!("{prefix}.description: Forbidden: must be empty to be structural"),
            format!("{prefix}.nullable: Forbidden: must be false to be structural"),
            format!("{prefix}.type: Forbidden: must be empty to be structural"),
            format!(
                "{prefix}.x-kubernetes-preserve-unknown-fields: Forbidden: must be false to be structural"
            ),
        ]
    );
    // The int-or-string pattern is the exception.
    let int_or_string = widget_schema(json!({
        "x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}]
    }));
    assert_eq!(check_structural(&int_or_string), Ok(()));
}

#[test]
fn junctor_properties_must_exist_structurally() {
    let mut schema =
        widget_schema(json!({"type": "object", "properties": {"a": {"type": "string"}}}));
    schema["oneOf"] = json!([{"properties": {"spec": {"properties": {"b": {"minLength": 1}}}}}]);
    let errors = check_structural(&schema).unwrap_err();
    let prefix = "spec.versions[0].schema.openAPIV3Schema";
    assert_eq!(
        errors,
        vec![format!(
            "{prefix}.properties[spec].properties[b]: Required value: because it is defined in {prefix}.oneOf[0].properties[spec].properties[b]"
        )]
    );
    // The apiserver only checks the root's junctors.
    let nested = widget_schema(json!({
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "oneOf": [{"properties": {"b": {"minLength": 1}}}]
    }));
    assert_eq!(check_structural(&nested), Ok(()));
}

#[test]
fn metadata_may_restrict_only_names_and_only_at_root() {
    let mut schema = widget_schema(json!({"type": "object"}));
    schema["properties"]["metadata"] =
        json!({"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}});
    assert_eq!(check_structural(&schema), Ok(()));
    schema["properties"]["metadata"] =
        json!({"type": "object", "properties": {"labels": {"type": "object"}}});
    assert_eq!(
        check_structural(&schema).unwrap_err(),
        vec![
            "spec.versions[0].schema.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
        ]
    );
    let nested = widget_schema(json!({
        "type": "object",
        "properties": {"metadata": {"type": "object"}},
        "allOf": [{"properties": {"metadata": {"required": ["x"]}}}]
    }));
    let errors = check_structural(&nested).unwrap_err();
    assert!(
        errors.contains(&"spec.versions[0].schema.openAPIV3Schema.properties[spec].allOf[0].properties[metadata]: Forbidden: must not be specified in a nested context".to_string()),
        "{errors:?}"
    );
}

#[test]
fn properties_and_additional_properties_exclude_each_other() {
    let schema = widget_schema(json!({
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "additionalProperties": {"type": "string"}
    }));
    assert_eq!(
        check_structural(&schema).unwrap_err(),
        vec![
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
        ]
    );
}

#[test]
fn int_or_string_excludes_preserve_and_embedded() {
    let schema = widget_schema(json!({
        "x-kubernetes-int-or-string": true,
        "x-kubernetes-preserve-unknown-fields": true,
        "x-kubernetes-embedded-resource": true,
        "type": "object",
        "properties": {"a": {"type": "string"}}
    }));
    let errors = check_structural(&schema).unwrap_err();
    let prefix = "spec.versions[0].schema.openAPIV3Schema.properties[spec]";
    assert!(errors.contains(&format!(
        "{prefix}.x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if x-kubernetes-int-or-string is true"
    )));
    assert!(errors.contains(&format!(
        "{prefix}.x-kubernetes-embedded-resource: Invalid value: true: must be false if x-kubernetes-int-or-string is true"
    )));
}

#[test]
fn cel_rules_must_compile() {
    let schema = widget_schema(json!({
        "type": "object",
        "properties": {"min": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.min >"}, {"rule": "true", "reason": "Nope"}]
    }));
    let errors = check_structural(&schema).unwrap_err();
    let prefix =
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations";
    assert!(
        errors[0].starts_with(&format!(
            r#"{prefix}[0].rule: Invalid value: "self.min >": compilation failed: ERROR: <input>:1:"#
        )),
        "{errors:?}"
    );
    assert!(errors.contains(&format!(
        r#"{prefix}[1].reason: Unsupported value: "Nope": supported values: "FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired""#
    )));
    assert!(CrAdmission::new("example.com", "Widget", &schema).is_err());
}

#[test]
fn check_crd_reports_each_version() {
    let crd = json!({
        "spec": {"versions": [
            {"name": "v1", "schema": {"openAPIV3Schema": widget_schema(json!({"type": "object"}))}},
            {"name": "v2", "schema": {"openAPIV3Schema": widget_schema(json!({}))}},
        ]}
    });
    assert_eq!(
        check_crd(&crd).unwrap_err(),
        vec![
            "spec.versions[1].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"
        ]
    );
}

#[test]
fn identical_schemas_share_one_admission() {
    let schema =
        widget_schema(json!({"type": "object", "properties": {"size": {"type": "integer"}}}));
    let first =
        CrAdmission::shared("example.com", "Widget", &schema).unwrap_or_else(|e| panic!("{e:?}"));
    let second =
        CrAdmission::shared("example.com", "Widget", &schema).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(std::sync::Arc::ptr_eq(&first, &second));
    let other =
        CrAdmission::shared("example.com", "Gadget", &schema).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!std::sync::Arc::ptr_eq(&first, &other));
    assert!(CrAdmission::shared("example.com", "Widget", &widget_schema(json!({}))).is_err());
}

// ---- pruning ----------------------------------------------------------------------------

#[test]
fn unknown_fields_are_pruned_with_warnings() {
    let admission = admission(json!({
        "type": "object",
        "properties": {
            "size": {"type": "integer"},
            "racks": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"known": {"type": "object", "properties": {}}}},
        }
    }));
    let mut obj = widget(json!({
        "size": 3,
        "foo": 1,
        "racks": [{"name": "r1", "zone": "z"}],
        "free": {"anything": {"deep": true}, "known": {"gone": 1}},
    }));
    obj["status"] = json!({"x": 1});
    obj["metadata"]["labels"] = json!({"a": "b"});
    let warnings = admitted(&admission, &mut obj, None);
    assert_eq!(
        warnings,
        vec![
            r#"unknown field "spec.foo""#,
            r#"unknown field "spec.free.known.gone""#,
            r#"unknown field "spec.racks[0].zone""#,
            r#"unknown field "status""#,
        ]
    );
    assert_eq!(
        obj,
        json!({
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w1", "namespace": "default", "labels": {"a": "b"}},
            "spec": {"size": 3, "racks": [{"name": "r1"}], "free": {"anything": {"deep": true}, "known": {}}},
        })
    );
}

#[test]
fn strict_mode_rejects_unknown_fields() {
    let admission =
        admission(json!({"type": "object", "properties": {"size": {"type": "integer"}}}));
    let mut obj = widget(json!({"size": 3, "foo": 1, "bar": {}}));
    let err = admission.admit(&mut obj, None, true).unwrap_err();
    assert_eq!(err.code, 400);
    assert_eq!(err.reason, "BadRequest");
    assert_eq!(
        err.message,
        r#"Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.bar", unknown field "spec.foo""#
    );
    assert_eq!(admission.unknown_fields(&obj), vec!["spec.bar", "spec.foo"]);
}

#[test]
fn embedded_resources_keep_type_and_object_meta() {
    let admission = admission(json!({
        "type": "object",
        "properties": {
            "template": {
                "type": "object",
                "x-kubernetes-embedded-resource": true,
                "properties": {"spec": {"type": "object", "properties": {"x": {"type": "string"}}}}
            }
        }
    }));
    let mut obj = widget(json!({"template": {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"x": "a", "y": "b"}, "other": 1
    }}));
    let warnings = admitted(&admission, &mut obj, None);
    assert_eq!(
        warnings,
        vec![
            r#"unknown field "spec.template.other""#,
            r#"unknown field "spec.template.spec.y""#
        ]
    );
    assert_eq!(
        obj["spec"]["template"],
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": "a"}})
    );
}

// ---- defaulting and nulls ---------------------------------------------------------------

#[test]
fn defaults_apply_recursively() {
    let admission = admission(json!({
        "type": "object",
        "properties": {
            "size": {"type": "integer", "default": 3},
            "config": {
                "type": "object",
                "default": {},
                "properties": {"mode": {"type": "string", "default": "fast"}, "level": {"type": "integer"}}
            },
            "racks": {"type": "array", "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "weight": {"type": "integer", "default": 1}}
            }},
            "labels": {"type": "object", "additionalProperties": {
                "type": "object", "properties": {"v": {"type": "string", "default": "d"}}
            }},
            "keep": {"type": "integer", "default": 5},
        }
    }));
    let mut obj = widget(
        json!({"racks": [{"name": "a"}, {"name": "b", "weight": 7}], "labels": {"k": {}}, "keep": 9}),
    );
    admitted(&admission, &mut obj, None);
    assert_eq!(
        obj["spec"],
        json!({
            "size": 3,
            "config": {"mode": "fast"},
            "racks": [{"name": "a", "weight": 1}, {"name": "b", "weight": 7}],
            "labels": {"k": {"v": "d"}},
            "keep": 9,
        })
    );
}

#[test]
fn nulls_are_dropped_or_defaulted_unless_nullable() {
    let admission = admission(json!({
        "type": "object",
        "properties": {
            "plain": {"type": "string"},
            "defaulted": {"type": "string", "default": "d"},
            "nullable": {"type": "string", "nullable": true},
        }
    }));
    let mut obj = widget(json!({"plain": null, "defaulted": null, "nullable": null}));
    admitted(&admission, &mut obj, None);
    assert_eq!(obj["spec"], json!({"defaulted": "d", "nullable": null}));
}

// ---- OpenAPI validation -----------------------------------------------------------------

#[test]
fn type_errors_are_worded_like_the_apiserver() {
    let admission = admission(json!({
        "type": "object",
        "properties": {"size": {"type": "integer"}, "ratio": {"type": "number"}, "on": {"type": "boolean"}}
    }));
    let (err, causes) = rejected(
        &admission,
        widget(json!({"size": "3", "ratio": 1, "on": "yes"})),
        None,
    );
    assert_eq!(err.code, 422);
    assert_eq!(
        causes,
        vec![
            ("spec.on".into(), r#"Invalid value: "string": spec.on in body must be of type boolean: "string""#.into()),
            ("spec.size".into(), r#"Invalid value: "string": spec.size in body must be of type integer: "string""#.into()),
            (String::new(), r#"Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#.into()),
        ]
    );
    assert_eq!(err.causes[0].reason, "FieldValueTypeInvalid");
    assert!(
        err.message.starts_with(
            r#"Widget.example.com "w1" is invalid: [spec.on: Invalid value: "string""#
        )
    );
    // 3.0 is an integer to the apiserver.
    admitted(&admission, &mut widget(json!({"size": 3.0})), None);
}

#[test]
fn required_enum_pattern_and_bounds() {
    let admission = admission(json!({
        "type": "object",
        "required": ["version", "size"],
        "properties": {
            "version": {"type": "string", "pattern": "^\\d+$"},
            "size": {"type": "integer", "minimum": 1, "maximum": 10},
            "count": {"type": "integer", "exclusiveMinimum": true, "minimum": 0},
            "mode": {"type": "string", "enum": ["a", "b"]},
            "step": {"type": "integer", "multipleOf": 2},
        }
    }));
    let (_, causes) = rejected(
        &admission,
        widget(json!({"version": "4.0", "size": 30, "count": 0, "step": 3})),
        None,
    );
    assert_eq!(
        causes,
        vec![
            (
                "spec.count".into(),
                "Invalid value: 0: spec.count in body should be greater than 0".into()
            ),
            (
                "spec.size".into(),
                "Invalid value: 30: spec.size in body should be less than or equal to 10".into()
            ),
            (
                "spec.step".into(),
                "Invalid value: 3: spec.step in body should be a multiple of 2".into()
            ),
            (
                "spec.version".into(),
                r#"Invalid value: "4.0": spec.version in body should match '^\d+$'"#.into()
            ),
        ]
    );
    let (_, causes) = rejected(&admission, widget(json!({"mode": "x"})), None);
    assert_eq!(
        causes[..3],
        [
            (
                "spec.mode".into(),
                r#"Unsupported value: "x": supported values: "a", "b""#.into()
            ),
            ("spec.version".into(), "Required value".into()),
            ("spec.size".into(), "Required value".into()),
        ]
    );
}

#[test]
fn lengths_items_and_properties() {
    let admission = admission(json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 3, "maxLength": 5},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 1},
            "annotations": {"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 2},
        }
    }));
    let (_, causes) = rejected(
        &admission,
        widget(
            json!({"name": "toolongname", "tags": ["a", "b", "c"], "labels": {"a": "1", "b": "2"}, "annotations": {"x": "y"}}),
        ),
        None,
    );
    assert_eq!(
        causes[..4],
        [
            (
                "spec.annotations".into(),
                "Invalid value: 1: spec.annotations in body should have at least 2 properties"
                    .into()
            ),
            (
                "spec.labels".into(),
                "Too many: 2: must have at most 1 item".into()
            ),
            (
                "spec.name".into(),
                "Too long: may not be more than 5 bytes".into()
            ),
            (
                "spec.tags".into(),
                "Too many: 3: must have at most 2 items".into()
            ),
        ]
    );
    let (_, causes) = rejected(
        &admission,
        widget(json!({"name": "ab", "tags": [], "labels": {"a": 1}})),
        None,
    );
    assert_eq!(
        causes[..3],
        [
            ("spec.labels.a".into(), r#"Invalid value: "integer": spec.labels.a in body must be of type string: "integer""#.into()),
            ("spec.name".into(), r#"Invalid value: "ab": spec.name in body should be at least 3 chars long"#.into()),
            ("spec.tags".into(), "Invalid value: 0: spec.tags in body should have at least 1 items".into()),
        ]
    );
}

#[test]
fn nested_paths_use_brackets_for_items() {
    let admission = admission(json!({
        "type": "object",
        "properties": {"cassandra": {"type": "object", "properties": {"datacenters": {
            "type": "array",
            "items": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1}}}
        }}}}
    }));
    let (_, causes) = rejected(
        &admission,
        widget(json!({"cassandra": {"datacenters": [{"size": 1}, {"size": 0}]}})),
        None,
    );
    assert_eq!(
        causes,
        vec![(
            "spec.cassandra.datacenters[1].size".into(),
            "Invalid value: 0: spec.cassandra.datacenters[1].size in body should be greater than or equal to 1".into()
        )]
    );
}

#[test]
fn formats_take_part_in_type_checks() {
    // kube-openapi judges a non-string value against the format too.
    let admission = admission(json!({
        "type": "object",
        "properties": {"config": {"type": "string", "format": "byte"}, "when": {"type": "string", "format": "date-time"}}
    }));
    let (_, causes) = rejected(
        &admission,
        widget(json!({"config": {"a": 1}, "when": 5})),
        None,
    );
    assert_eq!(
        causes[..2],
        [
            (
                "spec.config".into(),
                r#"Invalid value: "": spec.config in body must be of type byte: """#.into()
            ),
            (
                "spec.when".into(),
                r#"Invalid value: "int64": spec.when in body must be of type date-time: "int64""#
                    .into()
            ),
        ]
    );
}

#[test]
fn int_or_string_nullable_and_formats() {
    let admission = admission(json!({
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "maybe": {"type": "string", "nullable": true},
            "when": {"type": "string", "format": "date-time"},
            "id": {"type": "string", "format": "uuid"},
        }
    }));
    admitted(
        &admission,
        &mut widget(
            json!({"port": "http", "maybe": null, "when": "2025-01-01T00:00:00Z", "id": "0e4f7a34-16a0-4a8e-a1c2-9f1e0e7a1b2c"}),
        ),
        None,
    );
    admitted(
        &admission,
        &mut widget(json!({"port": 8080, "id": "0E4F7A3416A04A8EA1C29F1E0E7A1B2C"})),
        None,
    );
    let (_, causes) = rejected(&admission, widget(json!({"id": "0e4f7a34-16a0"})), None);
    assert_eq!(causes[0].0, "spec.id");
    let (_, causes) = rejected(
        &admission,
        widget(json!({"port": true, "when": "yesterday"})),
        None,
    );
    assert_eq!(causes[0].0, "spec.port");
    assert_eq!(
        causes[0].1,
        r#"Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#
    );
    assert!(causes.contains(&(
        "spec.when".into(),
        r#"Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday""#.into()
    )));
}

#[test]
fn server_side_apply_reads_list_types_from_the_schema_through_list_items() {
    let admission = admission(json!({
        "type": "object",
        "properties": {
            "containers": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"},
                    "env": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
                    },
                    "args": {"type": "array", "items": {"type": "string"}},
                }}
            },
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        }
    }));
    use crate::store::SchemaListType::{Map, Set};
    let keyed = Map(vec!["name".to_string()]);
    assert_eq!(
        admission.list_type(&["spec", "containers"]),
        Some(keyed.clone())
    );
    assert_eq!(
        admission.list_type(&["spec", "containers", "env"]),
        Some(keyed)
    );
    assert_eq!(admission.list_type(&["spec", "tags"]), Some(Set));
    assert_eq!(admission.list_type(&["spec", "containers", "args"]), None);
    assert_eq!(admission.list_type(&["spec", "missing"]), None);
}

#[test]
fn list_types_reject_duplicates() {
    let admission = admission(json!({
        "type": "object",
        "properties": {
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "ports": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}
            },
        }
    }));
    let (_, causes) = rejected(
        &admission,
        widget(
            json!({"tags": ["a", "b", "a", "a"], "ports": [{"name": "x", "port": 1}, {"name": "x", "port": 2}]}),
        ),
        None,
    );
    assert_eq!(
        causes,
        vec![
            (
                "spec.ports[1]".into(),
                r#"Duplicate value: map[string]interface {}{"name":"x"}"#.into()
            ),
            ("spec.tags[2]".into(), r#"Duplicate value: "a""#.into()),
        ]
    );
}

#[test]
fn any_of_and_not_value_validations() {
    let admission = admission(json!({
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "anyOf": [{"required": ["a"]}, {"required": ["b"]}],
        "not": {"required": ["a", "b"]},
    }));
    admitted(&admission, &mut widget(json!({"a": "x"})), None);
    let (_, causes) = rejected(&admission, widget(json!({})), None);
    assert_eq!(
        causes[..2],
        [
            (
                String::new(),
                r#"Invalid value: "": "spec" must validate at least one schema (anyOf)"#.into()
            ),
            ("spec.a".into(), "Required value".into()),
        ]
    );
    let (_, causes) = rejected(&admission, widget(json!({"a": "x", "b": "y"})), None);
    assert_eq!(
        causes,
        vec![(
            String::new(),
            r#"Invalid value: "": "spec" must not validate the schema (not)"#.into()
        )]
    );
}

#[test]
fn unchanged_invalid_values_are_ratcheted_on_update() {
    let admission = admission(json!({
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 3}, "size": {"type": "integer"}}
    }));
    let old = widget(json!({"name": "toolong", "size": 1}));
    admitted(
        &admission,
        &mut widget(json!({"name": "toolong", "size": 2})),
        Some(&old),
    );
    let (_, causes) = rejected(
        &admission,
        widget(json!({"name": "toolonger", "size": 2})),
        Some(&old),
    );
    assert_eq!(
        causes[0],
        (
            "spec.name".into(),
            "Too long: may not be more than 3 bytes".into()
        )
    );
}

// ---- CEL --------------------------------------------------------------------------------

fn cel_admission() -> CrAdmission {
    admission(json!({
        "type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.min <= self.max"},
            {"rule": "self.min >= 0", "message": "  min must not be negative  "},
            {"rule": "self.max < 100", "messageExpression": "'max is ' + string(self.max)", "fieldPath": ".max"},
            {"rule": "!has(self.forbidden)", "reason": "FieldValueForbidden", "message": "must not be set"},
        ],
        "properties": {
            "min": {"type": "integer"},
            "max": {"type": "integer"},
            "forbidden": {"type": "string"},
        }
    }))
}

#[test]
fn cel_failures_are_worded_like_the_apiserver() {
    let admission = cel_admission();
    admitted(&admission, &mut widget(json!({"min": 1, "max": 2})), None);
    let (err, causes) = rejected(&admission, widget(json!({"min": -5, "max": -10})), None);
    assert_eq!(
        causes,
        vec![
            (
                "spec".into(),
                r#"Invalid value: "object": failed rule: self.min <= self.max"#.into()
            ),
            (
                "spec".into(),
                r#"Invalid value: "object": min must not be negative"#.into()
            ),
        ]
    );
    assert_eq!(err.causes[0].reason, "FieldValueInvalid");
    let (err, causes) = rejected(
        &admission,
        widget(json!({"min": 1, "max": 200, "forbidden": "x"})),
        None,
    );
    assert_eq!(
        causes,
        vec![
            (
                "spec.max".into(),
                r#"Invalid value: "object": max is 200"#.into()
            ),
            ("spec".into(), "Forbidden: must not be set".into()),
        ]
    );
    assert_eq!(err.causes[1].reason, "FieldValueForbidden");
}

#[test]
fn cel_runs_after_openapi_errors_only_when_they_do_not_block() {
    let admission = admission(json!({
        "type": "object",
        "x-kubernetes-validations": [{"rule": "self.size > 1", "message": "too small"}],
        "properties": {"size": {"type": "integer", "minimum": 0}, "name": {"type": "string", "pattern": "^[a-z]+$"}}
    }));
    let (_, causes) = rejected(&admission, widget(json!({"size": 1, "name": "A"})), None);
    assert_eq!(
        causes,
        vec![
            (
                "spec.name".into(),
                r#"Invalid value: "A": spec.name in body should match '^[a-z]+$'"#.into()
            ),
            (
                "spec".into(),
                r#"Invalid value: "object": too small"#.into()
            ),
        ]
    );
}

#[test]
fn cel_sees_nested_values_with_their_paths_and_map_keys() {
    let admission = admission(json!({
        "type": "object",
        "properties": {
            "racks": {"type": "array", "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": "self.name.startsWith('r')", "message": "bad rack"}]
            }},
            "limits": {"type": "object", "additionalProperties": {
                "type": "integer",
                "x-kubernetes-validations": [{"rule": "self > 0", "message": "positive"}]
            }},
            "my-field": {"type": "string", "x-kubernetes-validations": [{"rule": "self != 'x'"}]},
        },
        "x-kubernetes-validations": [{"rule": "self.my__dash__field != 'y'", "message": "escaped"}]
    }));
    let (_, causes) = rejected(
        &admission,
        widget(
            json!({"racks": [{"name": "r1"}, {"name": "x2"}], "limits": {"cpu": 0}, "my-field": "y"}),
        ),
        None,
    );
    assert_eq!(
        causes,
        vec![
            ("spec".into(), r#"Invalid value: "object": escaped"#.into()),
            (
                "spec.limits[cpu]".into(),
                r#"Invalid value: "integer": positive"#.into()
            ),
            (
                "spec.racks[1]".into(),
                r#"Invalid value: "object": bad rack"#.into()
            ),
        ]
    );
}

#[test]
fn transition_rules_need_a_correlated_old_value() {
    let admission = admission(json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "immutable"}]},
            "dcs": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {
                    "name": {"type": "string"},
                    "size": {"type": "integer", "x-kubernetes-validations": [{"rule": "self >= oldSelf", "message": "no shrinking"}]}
                }}
            },
            "atomic": {"type": "array", "items": {"type": "object", "properties": {
                "size": {"type": "integer", "x-kubernetes-validations": [{"rule": "self >= oldSelf", "message": "never checked"}]}
            }}},
            "optional": {"type": "string", "x-kubernetes-validations": [{
                "rule": "!oldSelf.hasValue() || self == oldSelf.value()",
                "optionalOldSelf": true,
                "message": "set once"
            }, {
                "rule": "oldSelf.hasValue() || self != 'bad'",
                "optionalOldSelf": true,
                "message": "bad on create"
            }]},
        }
    }));
    // Create: transition rules without optionalOldSelf do not run.
    let create =
        widget(json!({"name": "a", "dcs": [{"name": "dc1", "size": 3}], "atomic": [{"size": 3}]}));
    admitted(&admission, &mut create.clone(), None);
    let (_, causes) = rejected(&admission, widget(json!({"optional": "bad"})), None);
    assert_eq!(
        causes,
        vec![(
            "spec.optional".into(),
            r#"Invalid value: "string": bad on create"#.into()
        )]
    );

    let old = widget(
        json!({"name": "a", "dcs": [{"name": "dc0", "size": 1}, {"name": "dc1", "size": 3}], "atomic": [{"size": 3}], "optional": "x"}),
    );
    let update = widget(json!({
        "name": "b",
        "dcs": [{"name": "dc1", "size": 2}, {"name": "dc2", "size": 1}],
        "atomic": [{"size": 1}],
        "optional": "y"
    }));
    let (_, causes) = rejected(&admission, update, Some(&old));
    assert_eq!(
        causes,
        vec![
            (
                "spec.dcs[0].size".into(),
                r#"Invalid value: "integer": no shrinking"#.into()
            ),
            (
                "spec.name".into(),
                r#"Invalid value: "string": immutable"#.into()
            ),
            (
                "spec.optional".into(),
                r#"Invalid value: "string": set once"#.into()
            ),
        ]
    );
}

#[test]
fn cel_reasons_runtime_errors_and_ratcheting() {
    let admission = admission(json!({
        "type": "object",
        "properties": {
            "a": {"type": "object", "properties": {"x": {"type": "integer"}},
                  "x-kubernetes-validations": [{"rule": "self.x > 0", "reason": "FieldValueRequired", "message": "x needed"}]},
            "b": {"type": "object", "properties": {"x": {"type": "integer"}},
                  "x-kubernetes-validations": [{"rule": "self.x > 0", "reason": "FieldValueDuplicate"}]},
            "c": {"type": "object", "properties": {"x": {"type": "integer"}},
                  "x-kubernetes-validations": [{"rule": "self.x > 0"}]},
            "d": {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() < 3", "message": "short"}]},
        }
    }));
    let (err, causes) = rejected(
        &admission,
        widget(json!({"a": {"x": 0}, "b": {"x": 0}, "c": {}})),
        None,
    );
    assert_eq!(
        causes,
        vec![
            ("spec.a".into(), "Required value: x needed".into()),
            ("spec.b".into(), r#"Duplicate value: "object""#.into()),
            (
                "spec.c".into(),
                r#"Invalid value: "object": no such key: x evaluating rule: self.x > 0"#.into()
            ),
        ]
    );
    assert_eq!(err.causes[0].reason, "FieldValueRequired");
    assert_eq!(err.causes[1].reason, "FieldValueDuplicate");

    // An unchanged failing value only warns on update.
    let old = widget(json!({"d": "long"}));
    let mut update = widget(json!({"d": "long", "a": {"x": 1}}));
    let warnings = admitted(&admission, &mut update, Some(&old));
    assert_eq!(warnings, vec![r#"spec.d: Invalid value: "string": short"#]);
}

#[test]
fn uncorrelated_items_are_ratcheted_by_their_list() {
    // Atomic list items have no old counterpart: the list's own change decides.
    let admission = admission(json!({
        "type": "object",
        "properties": {
            "size": {"type": "integer"},
            "tags": {"type": "array", "items": {
                "type": "object", "properties": {"name": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": "self.name.size() < 3", "message": "short"}]}},
        }
    }));
    let old = widget(json!({"size": 1, "tags": [{"name": "long"}]}));
    let mut resized = widget(json!({"size": 2, "tags": [{"name": "long"}]}));
    let warnings = admitted(&admission, &mut resized, Some(&old));
    assert_eq!(
        warnings,
        vec![r#"spec.tags[0]: Invalid value: "object": short"#]
    );

    let retagged = widget(json!({"size": 1, "tags": [{"name": "ok"}, {"name": "long"}]}));
    let (_, causes) = rejected(&admission, retagged, Some(&old));
    assert_eq!(
        causes,
        vec![(
            "spec.tags[1]".into(),
            r#"Invalid value: "object": short"#.into()
        )]
    );
}

#[test]
fn root_rules_see_metadata_name_only() {
    let schema = json!({
        "type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.metadata.name.startsWith('w')", "message": "name"},
            {"rule": "self.kind == 'Widget'", "message": "kind"},
        ],
        "properties": {"metadata": {"type": "object"}, "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}
    });
    let admission =
        CrAdmission::new("example.com", "Widget", &schema).unwrap_or_else(|e| panic!("{e:?}"));
    let mut obj = widget(json!({"size": 1}));
    obj["metadata"]["labels"] = json!({"a": "b"});
    admitted(&admission, &mut obj, None);
    let mut other = widget(json!({}));
    other["metadata"]["name"] = json!("x1");
    let (_, causes) = rejected(&admission, other, None);
    assert_eq!(
        causes,
        vec![(String::new(), r#"Invalid value: "object": name"#.into())]
    );

    // Only name and generateName of metadata exist for rules.
    let mut labels = schema.clone();
    labels["x-kubernetes-validations"] = json!([{"rule": "!has(self.metadata.labels)"}]);
    assert_eq!(
        check_structural(&labels).unwrap_err(),
        vec![
            "spec.versions[0].schema.openAPIV3Schema.x-kubernetes-validations[0].rule: Invalid value: \"!has(self.metadata.labels)\": compilation failed: ERROR: <input>:1:19: undefined field 'labels'\n | !has(self.metadata.labels)\n | ..................^"
        ]
    );
}

#[test]
fn rules_selecting_undeclared_fields_do_not_compile() {
    let spec = |rule: &str| {
        widget_schema(json!({
            "type": "object",
            "properties": {
                "replicas": {"type": "integer"},
                "my-field": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            },
            "x-kubernetes-validations": [{"rule": rule}],
        }))
    };
    for accepted in [
        "self.replicas > 0",
        "self.my__dash__field != ''",
        "self.labels.anything == 'x' && self.labels['k'] == 'y'",
        "self.items.all(i, i.name != '')",
        "self.labels.all(k, k != '')",
        "self.free.whatever == 1",
        "self.replicas == oldSelf.replicas",
    ] {
        assert_eq!(check_structural(&spec(accepted)), Ok(()), "{accepted}");
    }
    let errors =
        check_structural(&spec("self.items.all(i, i.nam != '') && self.replica > 0")).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].ends_with(
            "compilation failed: ERROR: <input>:1:20: undefined field 'nam'\n | self.items.all(i, i.nam != '') && self.replica > 0\n | ...................^\nERROR: <input>:1:39: undefined field 'replica'\n | self.items.all(i, i.nam != '') && self.replica > 0\n | ......................................^"
        ),
        "{errors:?}"
    );
}

#[test]
fn cel_typed_values() {
    let admission = admission(json!({
        "type": "object",
        "properties": {
            "ratio": {"type": "number", "x-kubernetes-validations": [{"rule": "self > 0.5"}]},
            "timeout": {"type": "string", "format": "duration", "x-kubernetes-validations": [{"rule": "self < duration('1h')"}]},
            "at": {"type": "string", "format": "date-time", "x-kubernetes-validations": [{"rule": "self > timestamp('2020-01-01T00:00:00Z')"}]},
            "under_score": {"type": "integer"},
        },
        "x-kubernetes-validations": [{"rule": "!has(self.under_score) || self.under_score > 0"}]
    }));
    admitted(
        &admission,
        &mut widget(
            json!({"ratio": 1, "timeout": "30m", "at": "2025-01-01T00:00:00Z", "under_score": 1}),
        ),
        None,
    );
    let (_, causes) = rejected(&admission, widget(json!({"timeout": "2h"})), None);
    assert_eq!(
        causes,
        vec![(
            "spec.timeout".into(),
            r#"Invalid value: "string": failed rule: self < duration('1h')"#.into()
        )]
    );
}

#[test]
fn common_cel_rule_shapes_evaluate() {
    let rules = [
        "self.name.matches('^[a-z]+$')",
        "self.items.all(i, i.name != '')",
        "self.items.exists(i, i.size > 2)",
        "self.items.exists_one(i, i.name == 'a')",
        "self.items.map(i, i.size).sum() == 5",
        "self.items.filter(i, i.size > 2).size() == 1",
        "self.labels.all(k, self.labels[k] != '')",
        "'env' in self.labels",
        "has(self.name) && !has(self.missing)",
        "self.name.size() <= 10 && size(self.items) == 2",
        "string(self.count) == '3' && int('4') == 4",
        "quantity(self.memory).compareTo(quantity('1Gi')) > 0",
        "isURL(self.url) && url(self.url).getHost() == 'example.com'",
        "self.name.startsWith('ab') && self.name.endsWith('c') && self.name.contains('b')",
        "self.?missing.orValue('d') == 'd'",
        "self.count in [1, 2, 3]",
        "type(self.count) == int",
        "self.ratio > 0.5",
        "self.name.lowerAscii() == 'abc'",
        "self.items.all(i, i.size < 100) ? true : false",
    ];
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "missing": {"type": "string"},
            "count": {"type": "integer"},
            "ratio": {"type": "number"},
            "memory": {"type": "string"},
            "url": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "items": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "size": {"type": "integer"}
            }}},
        },
        "x-kubernetes-validations": rules.iter().map(|r| json!({"rule": r})).collect::<Vec<_>>(),
    });
    let admission = admission(schema);
    let mut obj = widget(json!({
        "name": "abc", "count": 3, "ratio": 1, "memory": "2Gi", "url": "https://example.com/x",
        "labels": {"env": "prod"},
        "items": [{"name": "a", "size": 3}, {"name": "b", "size": 2}],
    }));
    admitted(&admission, &mut obj, None);
}

#[test]
fn large_values_get_the_same_verdicts_when_seen_again() {
    // Rules over lists large enough for their verdicts to be remembered (see VerdictMemo).
    let admission = admission(json!({
        "type": "object",
        "properties": {
            "dcs": {
                "type": "array",
                "items": {"type": "object", "properties": {
                    "name": {"type": "string"},
                    "context": {"type": "string"}
                }},
                "x-kubernetes-validations": [
                    {"rule": "self.all(x, self.exists_one(y, y.name == x.name))", "message": "names must be unique"},
                    {"rule": "self.all(dc, oldSelf.all(old, old.name != dc.name || old.context == dc.context))", "message": "context is immutable"}
                ]
            }
        }
    }));
    let dcs = |duplicate: bool, moved: bool| -> Value {
        let mut dcs: Vec<Value> = (0..60)
            .map(|i| json!({"name": format!("datacenter-{i}"), "context": format!("region-{i}")}))
            .collect();
        if duplicate {
            dcs[59] = json!({"name": "datacenter-0", "context": "region-0"});
        }
        if moved {
            dcs[1]["context"] = json!("elsewhere");
        }
        Value::Array(dcs)
    };
    let unique = widget(json!({"dcs": dcs(false, false)}));
    let with_duplicate = widget(json!({"dcs": dcs(true, false)}));
    let unique_cause = vec![(
        "spec.dcs".to_string(),
        r#"Invalid value: "array": names must be unique"#.to_string(),
    )];
    for _ in 0..3 {
        assert!(admitted(&admission, &mut unique.clone(), None).is_empty());
        let (_, causes) = rejected(&admission, with_duplicate.clone(), None);
        assert_eq!(causes, unique_cause);
    }
    // The same new value judged against two old values: the transition rule's verdict follows
    // the old value.
    let moved = widget(json!({"dcs": dcs(false, true)}));
    assert!(admitted(&admission, &mut moved.clone(), Some(&moved)).is_empty());
    let (_, causes) = rejected(&admission, moved.clone(), Some(&unique));
    assert_eq!(
        causes,
        vec![(
            "spec.dcs".to_string(),
            r#"Invalid value: "array": context is immutable"#.to_string()
        )]
    );
    assert!(admitted(&admission, &mut moved.clone(), Some(&moved)).is_empty());
    // A remembered failure on an unchanged value is still ratcheted to a warning.
    let warnings = admitted(
        &admission,
        &mut with_duplicate.clone(),
        Some(&with_duplicate),
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("names must be unique"), "{warnings:?}");
}
