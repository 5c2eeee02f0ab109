//! Field ownership: field sets in the `fieldsV1` format, managedFields entries, the update
//! recorder and server-side apply (merge, conflicts, removal of fields no longer applied).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound::{Excluded, Unbounded};

use serde_json::{Map, Value, json};

use super::builtin::apply_list_keys;
use super::{Admission, SchemaListType};

/// One path in `fieldsV1` element form: `f:spec`, `k:{"name":"c"}`, `v:"x"`, `i:0`.
pub type FieldPath = Vec<String>;
pub type FieldSet = BTreeSet<FieldPath>;

/// What the field manager knows of a resource's schema.
#[derive(Clone, Copy)]
pub struct Schema<'a> {
    /// built-ins know their map lists
    pub builtin: bool,
    /// custom resources' list types come from their schema (atomic when it does not say)
    pub admission: Option<&'a dyn Admission>,
}

enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

fn list_type(schema: Schema, path: &FieldPath, sample: &[&Value]) -> ListType {
    let Some(field) = path.last().and_then(|p| p.strip_prefix("f:")) else {
        return ListType::Atomic;
    };
    let in_metadata = path.len() == 2 && path[0] == "f:metadata";
    if in_metadata && field == "finalizers" {
        return ListType::Set;
    }
    if !schema.builtin && !in_metadata {
        let names: Vec<&str> = path.iter().filter_map(|e| e.strip_prefix("f:")).collect();
        return match schema.admission.and_then(|a| a.list_type(&names)) {
            Some(SchemaListType::Set) => ListType::Set,
            Some(SchemaListType::Map(keys)) if !keys.is_empty() => ListType::Map(keys),
            _ => ListType::Atomic,
        };
    }
    match apply_list_keys(field, in_metadata, path.len() == 1, sample) {
        Some(keys) => ListType::Map(keys.iter().map(|k| k.to_string()).collect()),
        None => ListType::Atomic,
    }
}

/// `k:{"name":"c1"}` for a map-list item, None when the item lacks every key.
fn item_key(item: &Value, keys: &[String]) -> Option<String> {
    let mut key_fields = Map::new();
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    for key in sorted {
        if let Some(v) = item.get(key) {
            key_fields.insert(key.clone(), v.clone());
        }
    }
    if key_fields.is_empty() {
        return None;
    }
    Some(format!("k:{}", Value::Object(key_fields)))
}

/// Metadata fields the field manager never records (and apply never removes).
const UNTRACKED_METADATA: [&str; 10] = [
    "name",
    "namespace",
    "uid",
    "generation",
    "resourceVersion",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

fn untracked(path: &FieldPath, key: &str) -> bool {
    match path.len() {
        0 => key == "apiVersion" || key == "kind",
        1 => path[0] == "f:metadata" && UNTRACKED_METADATA.contains(&key),
        _ => false,
    }
}

/// Whether an Update records the object node itself (`"."`): maps and optional structs do,
/// the top-level sections and embedded structs of built-ins do not.
fn records_node(schema: Schema, path: &FieldPath) -> bool {
    let Some(last) = path.last() else {
        return false;
    };
    if path.len() == 1 && last == "f:metadata" {
        return false;
    }
    if schema.builtin {
        !matches!(
            last.as_str(),
            "f:spec" | "f:status" | "f:metadata" | "f:template"
        )
    } else {
        last != "f:metadata"
    }
}

/// The set an applier claims: leaves, atomic lists, and map-list items (with their keys).
pub fn apply_set(obj: &Value, schema: Schema) -> FieldSet {
    let mut out = FieldSet::new();
    walk(obj, &mut Vec::new(), schema, &mut out, false);
    out
}

/// The nodes (every one, as [`walk`] with `every_node` finds them) that `base` has and
/// `merged` lacks, without walking the members both share unchanged (often the whole status).
fn removed_nodes(base: &Value, merged: &Value, schema: Schema) -> FieldSet {
    fn lost(
        base: &Value,
        merged: &Value,
        path: &mut FieldPath,
        schema: Schema,
        out: &mut FieldSet,
    ) {
        if base == merged {
            return;
        }
        match (base, merged) {
            // An object node is in both sets; its members decide.
            (Value::Object(before), Value::Object(after)) => {
                for (key, child) in before {
                    if untracked(path, key) {
                        continue;
                    }
                    path.push(format!("f:{key}"));
                    match after.get(key) {
                        Some(kept) => lost(child, kept, path, schema, out),
                        None => walk(child, path, schema, out, true),
                    }
                    path.pop();
                }
            }
            _ => {
                let mut before = FieldSet::new();
                let mut after = FieldSet::new();
                walk(base, path, schema, &mut before, true);
                walk(merged, path, schema, &mut after, true);
                out.extend(before.difference(&after).cloned());
            }
        }
    }
    let mut out = FieldSet::new();
    lost(base, merged, &mut Vec::new(), schema, &mut out);
    out
}

fn walk(value: &Value, path: &mut FieldPath, schema: Schema, out: &mut FieldSet, every_node: bool) {
    match value {
        Value::Object(map) => {
            if !path.is_empty() && (map.is_empty() || every_node) {
                out.insert(path.clone());
            }
            for (key, child) in map {
                if untracked(path, key) {
                    continue;
                }
                path.push(format!("f:{key}"));
                walk(child, path, schema, out, every_node);
                path.pop();
            }
        }
        Value::Array(items) => {
            let sample: Vec<&Value> = items.iter().collect();
            match list_type(schema, path, &sample) {
                ListType::Atomic => {
                    out.insert(path.clone());
                }
                ListType::Set => {
                    if items.is_empty() || every_node {
                        out.insert(path.clone());
                    }
                    for item in items {
                        let mut element = path.clone();
                        element.push(format!("v:{item}"));
                        out.insert(element);
                    }
                }
                ListType::Map(keys) => {
                    if items.is_empty() || every_node {
                        out.insert(path.clone());
                    }
                    for item in items {
                        let Some(key) = item_key(item, &keys) else {
                            out.insert(path.clone());
                            continue;
                        };
                        path.push(key);
                        out.insert(path.clone());
                        if let Value::Object(fields) = item {
                            for (field, child) in fields {
                                path.push(format!("f:{field}"));
                                walk(child, path, schema, out, every_node);
                                path.pop();
                            }
                        }
                        path.pop();
                    }
                }
            }
        }
        // an applied `null` removes the field: it is not claimed
        Value::Null if !every_node => {}
        _ => {
            if !path.is_empty() {
                out.insert(path.clone());
            }
        }
    }
}

/// The paths an Update adds or changes, in the form an Update manager owns them.
fn changed_set(old: Option<&Value>, new: &Value, schema: Schema) -> FieldSet {
    let mut out = FieldSet::new();
    diff(old, new, &mut Vec::new(), schema, &mut out);
    out
}

fn diff(
    old: Option<&Value>,
    new: &Value,
    path: &mut FieldPath,
    schema: Schema,
    out: &mut FieldSet,
) {
    // Nothing under an unchanged node is changed (status writes leave the spec alone).
    if old == Some(new) {
        return;
    }
    match new {
        Value::Object(map) => {
            let old_map = old.and_then(Value::as_object);
            if old_map.is_none()
                && !path.is_empty()
                && (map.is_empty() || records_node(schema, path))
            {
                out.insert(path.clone());
            }
            diff_fields(old_map, map, path, schema, out);
        }
        Value::Array(items) => {
            let old_items = old.and_then(Value::as_array);
            let sample: Vec<&Value> = items.iter().chain(old_items.into_iter().flatten()).collect();
            match list_type(schema, path, &sample) {
                ListType::Atomic => {
                    if old != Some(new) {
                        out.insert(path.clone());
                    }
                }
                ListType::Set => {
                    if old_items.is_none() {
                        out.insert(path.clone());
                    }
                    for item in items {
                        if !old_items.is_some_and(|o| o.contains(item)) {
                            let mut element = path.clone();
                            element.push(format!("v:{item}"));
                            out.insert(element);
                        }
                    }
                }
                ListType::Map(keys) => {
                    if old_items.is_none() && items.is_empty() {
                        out.insert(path.clone());
                    }
                    for item in items {
                        let Some(key) = item_key(item, &keys) else {
                            if old != Some(new) {
                                out.insert(path.clone());
                            }
                            continue;
                        };
                        let old_item = old_items.and_then(|o| {
                            o.iter()
                                .find(|candidate| item_key(candidate, &keys).as_ref() == Some(&key))
                        });
                        path.push(key);
                        if old_item.is_none() {
                            out.insert(path.clone());
                        }
                        if let Value::Object(fields) = item {
                            diff_fields(
                                old_item.and_then(Value::as_object),
                                fields,
                                path,
                                schema,
                                out,
                            );
                        }
                        path.pop();
                    }
                }
            }
        }
        _ => {
            if old != Some(new) && !path.is_empty() {
                out.insert(path.clone());
            }
        }
    }
}

fn diff_fields(
    old: Option<&Map<String, Value>>,
    new: &Map<String, Value>,
    path: &mut FieldPath,
    schema: Schema,
    out: &mut FieldSet,
) {
    for (key, child) in new {
        if untracked(path, key) {
            continue;
        }
        path.push(format!("f:{key}"));
        diff(old.and_then(|o| o.get(key)), child, path, schema, out);
        path.pop();
    }
}

/// Resolves a field path in an object.
pub fn value_at<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut current = doc;
    for element in path {
        current = step(current, element)?;
    }
    Some(current)
}

fn step<'a>(current: &'a Value, element: &str) -> Option<&'a Value> {
    if let Some(field) = element.strip_prefix("f:") {
        return current.as_object()?.get(field);
    }
    let items = current.as_array()?;
    if let Some(key) = element.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(key).ok()?;
        return items.iter().find(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)));
    }
    if let Some(value) = element.strip_prefix("v:") {
        let value: Value = serde_json::from_str(value).ok()?;
        return items.iter().find(|item| **item == value);
    }
    let index: usize = element.strip_prefix("i:")?.parse().ok()?;
    items.get(index)
}

/// Removes the node at a path, if present.
fn remove_at(doc: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = doc;
    for element in parents {
        let next = if let Some(field) = element.strip_prefix("f:") {
            current.as_object_mut().and_then(|m| m.get_mut(field))
        } else {
            let position = current_position(current, element);
            match (current.as_array_mut(), position) {
                (Some(items), Some(i)) => items.get_mut(i),
                _ => None,
            }
        };
        match next {
            Some(n) => current = n,
            None => return,
        }
    }
    if let Some(field) = last.strip_prefix("f:") {
        if let Some(map) = current.as_object_mut() {
            map.remove(field);
        }
    } else if let Some(i) = current_position(current, last)
        && let Some(items) = current.as_array_mut()
    {
        items.remove(i);
    }
}

/// A map or list that pruning left empty goes too (SMD's remove walker turns an emptied map
/// into null, which the API server then drops), unless a manager owns the node itself.
fn remove_emptied_parents(
    doc: &mut Value,
    path: &[String],
    claimed: &FieldSet,
    entries: &[ManagedEntry],
    own: Option<usize>,
) {
    for end in (1..path.len()).rev() {
        let parent = &path[..end];
        let emptied = match value_at(doc, parent) {
            Some(Value::Object(map)) => map.is_empty(),
            Some(Value::Array(items)) => items.is_empty(),
            _ => false,
        };
        let owned = claimed.iter().any(|p| p.as_slice() == parent)
            || entries
                .iter()
                .enumerate()
                .any(|(i, e)| Some(i) != own && e.fields.iter().any(|p| p.as_slice() == parent));
        if !emptied || owned || (end == 1 && parent[0] == "f:metadata") {
            return;
        }
        remove_at(doc, parent);
    }
}

fn current_position(list: &Value, element: &str) -> Option<usize> {
    let items = list.as_array()?;
    let target = step(list, element)?;
    items.iter().position(|item| std::ptr::eq(item, target))
}

/// `.spec.containers[name="nginx"].image`, as SMD prints paths in conflict messages.
pub fn path_string(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(field) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(key) = element.strip_prefix("k:") {
            let fields: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = element.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        } else if let Some(index) = element.strip_prefix("i:") {
            out.push_str(&format!("[{index}]"));
        }
    }
    out
}

/// Renders a set as `fieldsV1`.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    #[derive(Default)]
    struct Node {
        member: bool,
        children: BTreeMap<String, Node>,
    }
    fn render(node: &Node) -> Value {
        let mut map = Map::new();
        if node.member && !node.children.is_empty() {
            map.insert(".".into(), json!({}));
        }
        for (key, child) in &node.children {
            map.insert(key.clone(), render(child));
        }
        Value::Object(map)
    }
    let mut root = Node::default();
    for path in set {
        let mut node = &mut root;
        for element in path {
            node = node.children.entry(element.clone()).or_default();
        }
        node.member = true;
    }
    render(&root)
}

/// Parses `fieldsV1` into a set.
pub fn from_fields_v1(value: &Value) -> FieldSet {
    fn walk(node: &Map<String, Value>, path: &mut FieldPath, out: &mut FieldSet) {
        for (key, child) in node {
            if key == "." {
                out.insert(path.clone());
                continue;
            }
            path.push(key.clone());
            match child.as_object() {
                Some(grandchildren) if !grandchildren.is_empty() => walk(grandchildren, path, out),
                _ => {
                    out.insert(path.clone());
                }
            }
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    if let Some(map) = value.as_object() {
        walk(map, &mut Vec::new(), &mut out);
    }
    out
}

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedEntry {
    pub manager: String,
    /// `Apply` or `Update`
    pub operation: String,
    pub api_version: String,
    pub time: Option<String>,
    /// `""` or `"status"`
    pub subresource: String,
    pub fields: FieldSet,
}

impl ManagedEntry {
    fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    /// How conflict messages name a manager.
    fn describe(&self) -> String {
        let mut text = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            text.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            text.push_str(&format!(" using {}", self.api_version));
        }
        text
    }
}

/// Reads `metadata.managedFields` (entries that do not parse are dropped).
pub fn parse_managed_fields(obj: &Value) -> Vec<ManagedEntry> {
    let Some(entries) =
        obj.get("metadata").and_then(|m| m.get("managedFields")).and_then(Value::as_array)
    else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let text = |name: &str| entry.get(name).and_then(Value::as_str).map(str::to_string);
            Some(ManagedEntry {
                manager: text("manager").unwrap_or_default(),
                operation: text("operation")?,
                api_version: text("apiVersion").unwrap_or_default(),
                time: text("time"),
                subresource: text("subresource").unwrap_or_default(),
                fields: entry.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
            })
        })
        .collect()
}

/// Renders entries for `metadata.managedFields`; entries owning nothing are left out.
pub fn render_managed_fields(entries: &[ManagedEntry]) -> Value {
    Value::Array(
        entries
            .iter()
            .filter(|e| !e.fields.is_empty())
            .map(|e| {
                let mut map = Map::new();
                if !e.manager.is_empty() {
                    map.insert("manager".into(), json!(e.manager));
                }
                map.insert("operation".into(), json!(e.operation));
                map.insert("apiVersion".into(), json!(e.api_version));
                if let Some(time) = &e.time {
                    map.insert("time".into(), json!(time));
                }
                map.insert("fieldsType".into(), json!("FieldsV1"));
                map.insert("fieldsV1".into(), to_fields_v1(&e.fields));
                if !e.subresource.is_empty() {
                    map.insert("subresource".into(), json!(e.subresource));
                }
                Value::Object(map)
            })
            .collect(),
    )
}

/// Who a write is recorded for.
#[derive(Clone, Debug)]
pub struct Actor<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: &'a str,
    pub now: &'a str,
}

/// At most this many Update entries are kept; older ones merge into `ancient-changes`.
const MAX_UPDATE_ENTRIES: usize = 10;

/// Records a non-apply write: the writer owns what it added or changed (taking it from other
/// managers), and removed fields leave every manager.
pub fn record_update(
    entries: &mut Vec<ManagedEntry>,
    old: Option<&Value>,
    new: &Value,
    actor: &Actor,
    schema: Schema,
) {
    let changed = changed_set(old, new, schema);
    let removed = match old {
        Some(old) => removed_nodes(old, new, schema),
        None => FieldSet::new(),
    };
    for entry in entries.iter_mut() {
        if !removed.is_empty() {
            entry.fields.retain(|p| !removed.contains(p));
        }
        if !entry.is(actor.manager, "Update", actor.subresource) {
            entry.fields.retain(|p| !changed.contains(p));
        }
    }
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| e.is(actor.manager, "Update", actor.subresource)) {
            Some(entry) => {
                entry.fields.extend(changed);
                entry.time = Some(actor.now.to_string());
                entry.api_version = actor.api_version.to_string();
            }
            None => entries.push(ManagedEntry {
                manager: actor.manager.to_string(),
                operation: "Update".into(),
                api_version: actor.api_version.to_string(),
                time: Some(actor.now.to_string()),
                subresource: actor.subresource.to_string(),
                fields: changed,
            }),
        }
    }
    entries.retain(|e| !e.fields.is_empty());
    cap_update_entries(entries);
}

fn cap_update_entries(entries: &mut Vec<ManagedEntry>) {
    let updates = entries
        .iter()
        .filter(|e| e.operation == "Update" && e.manager != "ancient-changes")
        .count();
    if updates <= MAX_UPDATE_ENTRIES {
        return;
    }
    // merge the oldest Update entries into one
    let mut order: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].operation == "Update" && entries[i].manager != "ancient-changes")
        .collect();
    order.sort_by(|&a, &b| entries[a].time.cmp(&entries[b].time));
    let doomed: BTreeSet<usize> =
        order[..updates - MAX_UPDATE_ENTRIES + 1].iter().copied().collect();
    let mut merged = FieldSet::new();
    let mut api_version = String::new();
    for &i in &doomed {
        merged.extend(entries[i].fields.iter().cloned());
        api_version = entries[i].api_version.clone();
    }
    let mut index = 0;
    entries.retain(|_| {
        let keep = !doomed.contains(&index);
        index += 1;
        keep
    });
    match entries.iter_mut().find(|e| e.manager == "ancient-changes") {
        Some(entry) => entry.fields.extend(merged),
        None => entries.push(ManagedEntry {
            manager: "ancient-changes".into(),
            operation: "Update".into(),
            api_version,
            time: None,
            subresource: String::new(),
            fields: merged,
        }),
    }
}

/// One field another manager owns with a different value.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflict {
    /// `"mgr"`, `"mgr" using apps/v1`, …
    pub manager: String,
    /// `.spec.size`
    pub field: String,
}

/// The 409 message for a set of conflicts, grouped by manager as SMD words it.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager, only.field
        );
    }
    let mut by_manager: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for conflict in conflicts {
        by_manager.entry(conflict.manager.as_str()).or_default().push(conflict.field.as_str());
    }
    let parts: Vec<String> = by_manager
        .iter()
        .map(|(manager, fields)| {
            if let [field] = fields.as_slice() {
                format!("conflict with {manager}: {field}")
            } else {
                let lines: Vec<String> = fields.iter().map(|f| format!("- {f}")).collect();
                format!("conflicts with {manager}:\n{}", lines.join("\n"))
            }
        })
        .collect();
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        parts.join("\n")
    )
}

/// Merges an applied configuration into the live object: maps recursively, atomic lists
/// replaced, set and map lists item by item. `null` removes a field.
fn apply_merge(target: &mut Value, applied: &Value, path: &mut FieldPath, schema: Schema) {
    match (&mut *target, applied) {
        (Value::Object(live), Value::Object(config)) => {
            for (key, value) in config {
                if value.is_null() {
                    live.remove(key);
                    continue;
                }
                path.push(format!("f:{key}"));
                match live.get_mut(key) {
                    Some(existing) => apply_merge(existing, value, path, schema),
                    None => {
                        live.insert(key.clone(), value.clone());
                    }
                }
                path.pop();
            }
        }
        (Value::Array(live), Value::Array(config)) => {
            let sample: Vec<&Value> = config.iter().chain(live.iter()).collect();
            match list_type(schema, path, &sample) {
                ListType::Atomic => *live = config.clone(),
                ListType::Set => {
                    for item in config {
                        if !live.contains(item) {
                            live.push(item.clone());
                        }
                    }
                }
                ListType::Map(keys) => {
                    if config.iter().any(|item| item_key(item, &keys).is_none()) {
                        *live = config.clone();
                        return;
                    }
                    for item in config {
                        let key = item_key(item, &keys);
                        match live.iter_mut().find(|l| item_key(l, &keys) == key) {
                            Some(existing) => {
                                if let Some(key) = &key {
                                    path.push(key.clone());
                                    apply_merge(existing, item, path, schema);
                                    path.pop();
                                }
                            }
                            None => live.push(item.clone()),
                        }
                    }
                }
            }
        }
        (slot, value) => *slot = value.clone(),
    }
}

/// Server-side apply of `applied` over `live` (None: the object does not exist yet).
/// Returns the merged object and the new entries, or the conflicts when not forced.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    mut entries: Vec<ManagedEntry>,
    actor: &Actor,
    force: bool,
    schema: Schema,
) -> Result<(Value, Vec<ManagedEntry>), Vec<Conflict>> {
    let base = live.cloned().unwrap_or_else(|| json!({}));
    let claimed = apply_set(applied, schema);
    let mut merged = base.clone();
    apply_merge(&mut merged, applied, &mut Vec::new(), schema);

    let own = entries.iter().position(|e| e.is(actor.manager, "Apply", actor.subresource));

    // a field is in conflict when applying changes a value another manager owns
    let mut conflicts = Vec::new();
    let mut conflicting: Vec<(usize, FieldPath)> = Vec::new();
    for path in &claimed {
        // owning a map-list item or set element is membership, not a value: it cannot conflict
        if path.last().is_some_and(|e| e.starts_with("k:") || e.starts_with("v:")) {
            continue;
        }
        let Some(before) = value_at(&base, path) else {
            continue;
        };
        if value_at(&merged, path) == Some(before) {
            continue;
        }
        for (index, entry) in entries.iter().enumerate() {
            if Some(index) != own && entry.fields.contains(path) {
                conflicts.push(Conflict {
                    manager: entry.describe(),
                    field: path_string(path),
                });
                conflicting.push((index, path.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for (index, path) in conflicting {
        entries[index].fields.remove(&path);
    }

    // fields this manager applied before but no longer does go, unless someone else owns them
    let previous = own.map(|i| entries[i].fields.clone()).unwrap_or_default();
    let mut dropped: Vec<&FieldPath> = previous.difference(&claimed).collect();
    // whole items first: their fields are then gone with them, and a field removed first
    // would change the key an item is found by
    dropped.sort_by_key(|p| p.len());
    for path in dropped {
        // a node with owned fields below it stays (the API server adds owned items back): an
        // object applied as `{}` and now with fields, or one another manager added fields to
        let owned_elsewhere = owns_below(&claimed, path)
            || entries.iter().enumerate().any(|(i, e)| {
                Some(i) != own && (e.fields.contains(path) || owns_below(&e.fields, path))
            });
        if !owned_elsewhere && !is_item_key_field(path) {
            remove_at(&mut merged, path);
            remove_emptied_parents(&mut merged, path, &claimed, &entries, own);
        }
    }
    drop_empty_label_maps(&mut merged);

    let removed = removed_nodes(&base, &merged, schema);
    for entry in entries.iter_mut() {
        entry.fields.retain(|p| !removed.contains(p));
    }
    match own {
        Some(i) => {
            let entry = &mut entries[i];
            if entry.fields != claimed || entry.api_version != actor.api_version {
                entry.time = Some(actor.now.to_string());
            }
            entry.fields = claimed;
            entry.api_version = actor.api_version.to_string();
        }
        None => entries.push(ManagedEntry {
            manager: actor.manager.to_string(),
            operation: "Apply".into(),
            api_version: actor.api_version.to_string(),
            time: Some(actor.now.to_string()),
            subresource: actor.subresource.to_string(),
            fields: claimed,
        }),
    }
    entries.retain(|e| !e.fields.is_empty());
    Ok((merged, entries))
}

/// Whether `fields` holds a path strictly below `path` (they sort right after it).
fn owns_below(fields: &FieldSet, path: &FieldPath) -> bool {
    fields
        .range::<FieldPath, _>((Excluded(path), Unbounded))
        .next()
        .is_some_and(|p| p.starts_with(path))
}

/// A map-list item's key field (`...k:{"name":"a"}, f:name`): it goes only with its item.
fn is_item_key_field(path: &[String]) -> bool {
    let [.., parent, last] = path else {
        return false;
    };
    let (Some(key), Some(field)) = (parent.strip_prefix("k:"), last.strip_prefix("f:")) else {
        return false;
    };
    serde_json::from_str::<Map<String, Value>>(key).is_ok_and(|k| k.contains_key(field))
}

/// Go omits empty label and annotation maps; removing the last applied label leaves none.
fn drop_empty_label_maps(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["labels", "annotations", "finalizers", "ownerReferences"] {
            let empty = match meta.get(field) {
                Some(Value::Object(m)) => m.is_empty(),
                Some(Value::Array(a)) => a.is_empty(),
                _ => false,
            };
            if empty {
                meta.remove(field);
            }
        }
    }
}
