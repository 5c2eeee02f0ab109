//! The three non-apply patch formats: JSON patch (RFC 6902, with evanphx json-patch's
//! leniencies), JSON merge patch (RFC 7386) and strategic merge patch for built-in kinds.

use serde_json::{Map, Value};

/// Most operations one JSON patch may hold (as the apiserver limits them).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Why a JSON patch could not be applied. The apiserver throws the text away (422 with a
/// generic message), so it is only for logs and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchFailure(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, PatchFailure> {
    Err(PatchFailure(message.into()))
}

fn parse_pointer(path: &str) -> Result<Vec<String>, PatchFailure> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return fail(format!("invalid JSON pointer {path:?}"));
    };
    Ok(rest.split('/').map(|token| token.replace("~1", "/").replace("~0", "~")).collect())
}

fn array_index(token: &str, len: usize, allow_end: bool) -> Result<usize, PatchFailure> {
    if allow_end && token == "-" {
        return Ok(len);
    }
    // RFC 6901: no leading zeros, digits only
    let valid = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    let index: usize = if valid {
        token.parse().map_err(|_| PatchFailure(format!("invalid index {token:?}")))?
    } else {
        return fail(format!("invalid index {token:?}"));
    };
    let limit = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if index > limit || (!allow_end && len == 0) {
        return fail(format!("index {index} out of bounds"));
    }
    Ok(index)
}

fn get<'a>(doc: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    let mut current = doc;
    for token in tokens {
        current = match current {
            Value::Object(map) => map.get(token)?,
            Value::Array(items) => items.get(array_index(token, items.len(), false).ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn parent_mut<'a>(
    doc: &'a mut Value,
    tokens: &[String],
) -> Result<(&'a mut Value, String), PatchFailure> {
    let Some((last, parents)) = tokens.split_last() else {
        return fail("the root has no parent");
    };
    let mut current = doc;
    for token in parents {
        current = match current {
            Value::Object(map) => match map.get_mut(token) {
                Some(v) => v,
                None => return fail(format!("doc is missing path: {token}")),
            },
            Value::Array(items) => {
                let index = array_index(token, items.len(), false)?;
                &mut items[index]
            }
            _ => return fail(format!("doc is missing path: {token}")),
        };
    }
    Ok((current, last.clone()))
}

fn add(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), PatchFailure> {
    if tokens.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = parent_mut(doc, tokens)?;
    match parent {
        Value::Object(map) => {
            map.insert(last, value);
            Ok(())
        }
        Value::Array(items) => {
            let index = array_index(&last, items.len(), true)?;
            items.insert(index, value);
            Ok(())
        }
        _ => fail("add target is not a container"),
    }
}

fn remove(doc: &mut Value, tokens: &[String]) -> Result<Value, PatchFailure> {
    if tokens.is_empty() {
        return Ok(std::mem::replace(doc, Value::Null));
    }
    let (parent, last) = parent_mut(doc, tokens)?;
    match parent {
        Value::Object(map) => match map.remove(&last) {
            Some(v) => Ok(v),
            None => fail(format!(
                "remove operation does not apply: doc is missing key: {last}"
            )),
        },
        Value::Array(items) => {
            let index = array_index(&last, items.len(), false)?;
            Ok(items.remove(index))
        }
        _ => fail("remove target is not a container"),
    }
}

fn replace(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), PatchFailure> {
    if tokens.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = parent_mut(doc, tokens)?;
    match parent {
        Value::Object(map) => match map.get_mut(&last) {
            Some(slot) => {
                *slot = value;
                Ok(())
            }
            None => fail(format!(
                "replace operation does not apply: doc is missing key: {last}"
            )),
        },
        Value::Array(items) => {
            let index = array_index(&last, items.len(), false)?;
            items[index] = value;
            Ok(())
        }
        _ => fail("replace target is not a container"),
    }
}

/// Applies an RFC 6902 patch. Like evanphx json-patch, `test` with value `null` succeeds on a
/// missing member (kube-rs's finalizer helper relies on it).
pub fn apply_json_patch(doc: &mut Value, operations: &Value) -> Result<(), PatchFailure> {
    let Some(operations) = operations.as_array() else {
        return fail("a JSON patch must be an array of operations");
    };
    for operation in operations {
        let op = operation.get("op").and_then(Value::as_str).unwrap_or("");
        let path = match operation.get("path").and_then(Value::as_str) {
            Some(p) => parse_pointer(p)?,
            None => return fail(format!("operation {op:?} has no path")),
        };
        let value = || match operation.get("value") {
            Some(v) => Ok(v.clone()),
            None => fail(format!("operation {op:?} has no value")),
        };
        let from = || match operation.get("from").and_then(Value::as_str) {
            Some(p) => parse_pointer(p),
            None => fail(format!("operation {op:?} has no from")),
        };
        match op {
            "add" => add(doc, &path, value()?)?,
            "remove" => {
                remove(doc, &path)?;
            }
            "replace" => replace(doc, &path, value()?)?,
            "move" => {
                let from = from()?;
                let moved = remove(doc, &from)?;
                add(doc, &path, moved)?;
            }
            "copy" => {
                let copied = match get(doc, &from()?) {
                    Some(v) => v.clone(),
                    None => return fail("copy from a missing path"),
                };
                add(doc, &path, copied)?;
            }
            "test" => {
                let expected = operation.get("value").unwrap_or(&Value::Null);
                match get(doc, &path) {
                    Some(actual) if actual == expected => {}
                    None if expected.is_null() => {}
                    _ => return fail("testing value failed"),
                }
            }
            other => return fail(format!("unexpected kind: {other}")),
        }
    }
    Ok(())
}

/// RFC 7386 JSON merge patch: objects merge recursively, `null` removes, anything else replaces.
pub fn apply_merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// How a built-in list merges under strategic merge patch.
#[derive(Debug, Clone, PartialEq)]
pub enum MergeStrategy {
    Replace,
    /// items merge by this key field
    MergeKey(&'static str),
    /// scalars: union (metadata.finalizers)
    MergePrimitives,
}

/// The patchStrategy/patchMergeKey of the common built-in list fields, by field name.
/// `path` holds the field names from the root down to the list's parent.
pub fn strategic_list_strategy(path: &[String], field: &str, sample: &[&Value]) -> MergeStrategy {
    let in_metadata = path.last().is_some_and(|p| p == "metadata");
    match field {
        "finalizers" if in_metadata => MergeStrategy::MergePrimitives,
        "ownerReferences" if in_metadata => MergeStrategy::MergeKey("uid"),
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => MergeStrategy::MergeKey("name"),
        "volumeMounts" => MergeStrategy::MergeKey("mountPath"),
        "volumeDevices" => MergeStrategy::MergeKey("devicePath"),
        "conditions" => MergeStrategy::MergeKey("type"),
        "hostAliases" | "podIPs" | "hostIPs" => MergeStrategy::MergeKey("ip"),
        "topologySpreadConstraints" => MergeStrategy::MergeKey("topologyKey"),
        // an EndpointSlice's `ports` (the only top-level one) has no patch strategy: replaced
        "ports" if path.is_empty() => MergeStrategy::Replace,
        // container ports merge by containerPort, Service ports by port
        "ports" => {
            if sample.iter().any(|item| item.get("containerPort").is_some()) {
                MergeStrategy::MergeKey("containerPort")
            } else {
                MergeStrategy::MergeKey("port")
            }
        }
        _ => MergeStrategy::Replace,
    }
}

/// Why a strategic merge patch is malformed (400 BadRequest).
#[derive(Debug, Clone, PartialEq)]
pub struct StrategicPatchError(pub String);

/// Removes every `$`-directive from a value inserted wholesale.
fn strip_directives(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|item| item.get("$patch").is_none())
                .map(strip_directives)
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Applies a strategic merge patch to `target` (an object).
pub fn apply_strategic_merge_patch(
    target: &mut Value,
    patch: &Value,
) -> Result<(), StrategicPatchError> {
    let mut path = Vec::new();
    merge_object(target, patch, &mut path)
}

fn merge_object(
    target: &mut Value,
    patch: &Value,
    path: &mut Vec<String>,
) -> Result<(), StrategicPatchError> {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match patch_map.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = strip_directives(patch);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(StrategicPatchError(format!(
                "Unknown patch type: {other}. Allowed: [replace delete merge]"
            )));
        }
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target_map) = target else {
        return Ok(());
    };
    for (key, value) in patch_map {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let Some(doomed) = value.as_array() else {
                return Err(StrategicPatchError(format!("{key} must be a list")));
            };
            if let Some(Value::Array(items)) = target_map.get_mut(field) {
                items.retain(|item| !doomed.contains(item));
            }
            continue;
        }
        if key.starts_with('$') {
            // $setElementOrder/... only orders; $retainKeys is handled after the merge
            continue;
        }
        if value.is_null() {
            target_map.remove(key);
            continue;
        }
        match value {
            Value::Object(inner)
                if inner.get("$patch").and_then(Value::as_str) == Some("delete") =>
            {
                target_map.remove(key);
            }
            Value::Object(_) => {
                let slot =
                    target_map.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
                path.push(key.clone());
                let result = merge_object(slot, value, path);
                path.pop();
                result?;
            }
            Value::Array(patch_items) => {
                let existing = target_map.get(key).and_then(Value::as_array).cloned();
                let merged = merge_list(path, key, existing.unwrap_or_default(), patch_items)?;
                target_map.insert(key.clone(), Value::Array(merged));
            }
            scalar => {
                target_map.insert(key.clone(), scalar.clone());
            }
        }
    }
    if let Some(keep) = patch_map.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        target_map.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(())
}

fn merge_list(
    path: &mut Vec<String>,
    field: &str,
    mut existing: Vec<Value>,
    patch_items: &[Value],
) -> Result<Vec<Value>, StrategicPatchError> {
    // `{"$patch": "replace"}` as an element replaces the whole list with the other elements
    if patch_items.iter().any(|item| item.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(patch_items
            .iter()
            .filter(|item| item.get("$patch").is_none())
            .map(strip_directives)
            .collect());
    }
    let sample: Vec<&Value> = existing.iter().chain(patch_items.iter()).collect();
    match strategic_list_strategy(path, field, &sample) {
        MergeStrategy::Replace => Ok(patch_items.iter().map(strip_directives).collect()),
        MergeStrategy::MergePrimitives => {
            for item in patch_items {
                if !existing.contains(item) {
                    existing.push(item.clone());
                }
            }
            Ok(existing)
        }
        MergeStrategy::MergeKey(merge_key) => {
            for item in patch_items {
                let Some(key_value) = item.get(merge_key) else {
                    return Err(StrategicPatchError(format!(
                        "map: {item} does not contain declared merge key: {merge_key}"
                    )));
                };
                let position = existing.iter().position(|e| e.get(merge_key) == Some(key_value));
                let directive = item.get("$patch").and_then(Value::as_str);
                match (position, directive) {
                    (Some(i), Some("delete")) => {
                        existing.remove(i);
                    }
                    (None, Some("delete")) => {}
                    (Some(i), _) => {
                        path.push(field.to_string());
                        let result = merge_object(&mut existing[i], item, path);
                        path.pop();
                        result?;
                    }
                    (None, _) => existing.push(strip_directives(item)),
                }
            }
            Ok(existing)
        }
    }
}
