//! Uniqueness of `x-kubernetes-list-type: set` elements and `map` keys.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::node::SchemaNode;
use super::render::{FieldError, child, go_value, index, key};

pub(crate) fn validate(obj: &Value, schema: &SchemaNode) -> Vec<FieldError> {
    let mut errors = Vec::new();
    walk(obj, schema, "", &mut errors);
    errors
}

fn walk(value: &Value, schema: &SchemaNode, path: &str, errors: &mut Vec<FieldError>) {
    match value {
        Value::Object(map) => {
            if let Some(additional) = schema.additional_schema() {
                for (name, v) in map {
                    walk(v, additional, &key(path, name), errors);
                }
            }
            for (name, v) in map {
                if let Some(prop) = schema.properties.get(name) {
                    walk(v, prop, &child(path, name), errors);
                }
            }
        }
        Value::Array(items) => {
            match schema.list_type.as_deref() {
                Some("set") => {
                    for i in first_repeats(items) {
                        errors.push(FieldError::duplicate(&index(path, i), &go_value(&items[i])));
                    }
                }
                Some("map") => map_list(items, &schema.list_map_keys, path, errors),
                _ => {}
            }
            if let Some(item_schema) = &schema.items {
                for (i, item) in items.iter().enumerate() {
                    walk(item, item_schema, &index(path, i), errors);
                }
            }
        }
        _ => {}
    }
}

/// Indices of the second occurrence of each repeated value (later repeats are not reported).
fn first_repeats(values: &[Value]) -> Vec<usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut repeats = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let count = seen.entry(v.to_string()).or_insert(0);
        *count += 1;
        if *count == 2 {
            repeats.push(i);
        }
    }
    repeats
}

fn map_list(items: &[Value], keys: &[String], path: &str, errors: &mut Vec<FieldError>) {
    for (i, item) in items.iter().enumerate() {
        if !item.is_null() && !item.is_object() {
            errors.push(FieldError::invalid(
                &index(path, i),
                &go_value(item),
                "must be an object for an array of list-type map",
            ));
            return;
        }
    }
    if items.len() <= 1 {
        return;
    }
    let key_values: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut present = Map::new();
            for k in keys {
                if let Some(v) = item.get(k) {
                    present.insert(k.clone(), v.clone());
                }
            }
            Value::Object(present)
        })
        .collect();
    for i in first_repeats(&key_values) {
        errors.push(FieldError::duplicate(
            &index(path, i),
            &go_value(&key_values[i]),
        ));
    }
}
