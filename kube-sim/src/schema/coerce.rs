//! The decoding steps before validation: defaulting, pruning of unknown fields, and removal of
//! nulls that a non-nullable field without default may not hold.

use serde_json::{Map, Value};

use super::node::{Additional, SchemaNode};

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Applies `default`s to absent fields (and to nulls in non-nullable fields), recursively,
/// including array items and additionalProperties values; a defaulted object gets its own
/// nested defaults because the walk continues into the value just set.
pub(crate) fn apply_defaults(root: &mut Value, schema: &SchemaNode) {
    default_node(root, schema, true);
}

fn default_node(value: &mut Value, schema: &SchemaNode, is_resource_root: bool) {
    match value {
        Value::Object(map) => {
            for (name, prop) in &schema.properties {
                // ObjectMeta belongs to the store, never to the schema.
                if is_resource_root && name == "metadata" {
                    continue;
                }
                default_field(map, name, prop);
                if let Some(child) = map.get_mut(name) {
                    default_node(child, prop, false);
                }
            }
            if let Some(additional) = schema.additional_schema() {
                for (name, child) in map.iter_mut() {
                    if schema.properties.contains_key(name) {
                        continue;
                    }
                    default_null(child, additional);
                    default_node(child, additional, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                for item in items.iter_mut() {
                    default_null(item, item_schema);
                    default_node(item, item_schema, false);
                }
            }
        }
        _ => {}
    }
}

fn default_field(map: &mut Map<String, Value>, name: &str, prop: &SchemaNode) {
    let Some(default) = &prop.default else {
        return;
    };
    match map.get(name) {
        None => {
            map.insert(name.to_string(), default.clone());
        }
        Some(Value::Null) if !prop.nullable => {
            map.insert(name.to_string(), default.clone());
        }
        Some(_) => {}
    }
}

fn default_null(value: &mut Value, schema: &SchemaNode) {
    if value.is_null()
        && !schema.nullable
        && let Some(default) = &schema.default
    {
        *value = default.clone();
    }
}

/// Removes fields the schema does not know, except where it preserves unknown fields, and
/// returns their paths (`spec.foo`, `spec.list[0].bar`), sorted. The root's apiVersion, kind
/// and metadata are kept, as are those of embedded resources.
pub(crate) fn prune(root: &mut Value, schema: &SchemaNode) -> Vec<String> {
    let mut unknown = Vec::new();
    prune_resource_root(root, schema, &mut unknown);
    unknown.sort();
    unknown
}

fn prune_resource_root(root: &mut Value, schema: &SchemaNode, unknown: &mut Vec<String>) {
    // The resource root behaves as an embedded resource.
    if schema.preserve_unknown_fields {
        skip_prune(root, Some(schema), true, "", unknown);
    } else {
        prune_value(root, Some(schema), true, "", unknown);
    }
}

fn prune_value(
    value: &mut Value,
    schema: Option<&SchemaNode>,
    embedded: bool,
    path: &str,
    unknown: &mut Vec<String>,
) {
    if let Some(s) = schema
        && s.preserve_unknown_fields
    {
        skip_prune(value, schema, embedded, path, unknown);
        return;
    }
    match value {
        Value::Object(map) => {
            let Some(s) = schema else {
                for name in map.keys() {
                    unknown.push(join(path, name));
                }
                map.clear();
                return;
            };
            let mut removed = Vec::new();
            for (name, child) in map.iter_mut() {
                if embedded && META_FIELDS.contains(&name.as_str()) {
                    continue;
                }
                if let Some(prop) = s.properties.get(name) {
                    let child_path = join(path, name);
                    prune_value(
                        child,
                        Some(prop),
                        prop.embedded_resource,
                        &child_path,
                        unknown,
                    );
                } else if s.has_additional() {
                    let child_path = join(path, name);
                    prune_additional(child, &s.additional, &child_path, unknown);
                } else {
                    unknown.push(join(path, name));
                    removed.push(name.clone());
                }
            }
            for name in removed {
                map.remove(&name);
            }
        }
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.items.as_deref());
            for (i, item) in items.iter_mut().enumerate() {
                let embedded = item_schema.is_some_and(|s| s.embedded_resource);
                let item_path = format!("{path}[{i}]");
                prune_value(item, item_schema, embedded, &item_path, unknown);
            }
        }
        _ => {}
    }
}

fn prune_additional(
    value: &mut Value,
    additional: &Additional,
    path: &str,
    unknown: &mut Vec<String>,
) {
    match additional {
        Additional::Schema(sub) => {
            prune_value(value, Some(sub), sub.embedded_resource, path, unknown)
        }
        // `additionalProperties: true` has no schema below it: the apiserver prunes the
        // contents of nested objects.
        Additional::AnyWithoutSchema => prune_value(value, None, false, path, unknown),
        Additional::Absent => {}
    }
}

/// Below `x-kubernetes-preserve-unknown-fields: true` unknown fields stay, but specified
/// fields are still pruned inside.
fn skip_prune(
    value: &mut Value,
    schema: Option<&SchemaNode>,
    embedded: bool,
    path: &str,
    unknown: &mut Vec<String>,
) {
    let Some(s) = schema else {
        return;
    };
    match value {
        Value::Object(map) => {
            for (name, child) in map.iter_mut() {
                if embedded && META_FIELDS.contains(&name.as_str()) {
                    continue;
                }
                let child_path = join(path, name);
                if let Some(prop) = s.properties.get(name) {
                    prune_value(
                        child,
                        Some(prop),
                        prop.embedded_resource,
                        &child_path,
                        unknown,
                    );
                } else if s.has_additional() {
                    prune_additional(child, &s.additional, &child_path, unknown);
                }
            }
        }
        Value::Array(items) => {
            let item_schema = s.items.as_deref();
            for (i, item) in items.iter_mut().enumerate() {
                let embedded = item_schema.is_some_and(|s| s.embedded_resource);
                skip_prune(
                    item,
                    item_schema,
                    embedded,
                    &format!("{path}[{i}]"),
                    unknown,
                );
            }
        }
        _ => {}
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// Drops `null` values of specified fields that are neither nullable nor defaulted.
pub(crate) fn drop_disallowed_nulls(value: &mut Value, schema: &SchemaNode) {
    match value {
        Value::Object(map) => {
            map.retain(|name, child| match schema.properties.get(name) {
                Some(prop) => !(child.is_null() && !prop.nullable && prop.default.is_none()),
                None => true,
            });
            for (name, child) in map.iter_mut() {
                if let Some(prop) = schema.properties.get(name) {
                    drop_disallowed_nulls(child, prop);
                } else if let Some(additional) = schema.additional_schema() {
                    drop_disallowed_nulls(child, additional);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                for item in items.iter_mut() {
                    drop_disallowed_nulls(item, item_schema);
                }
            }
        }
        _ => {}
    }
}
