//! The custom-resource write pipeline of apiextensions-apiserver: defaulting, pruning (or
//! strict rejection of unknown fields), null removal, OpenAPI validation, list-type
//! uniqueness, then CEL rules.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use serde_json::Value;

use super::node::{self, SchemaNode};
use super::render::FieldError;
use super::{cel, coerce, listtype, openapi, structural};
use crate::error::{ApiError, ApiResult};
use crate::store::{Admission, SchemaListType};

/// Admission for the custom resources of one CRD version; the schema is parsed and every CEL
/// rule compiled once, here.
#[derive(Debug)]
pub struct CrAdmission {
    group: String,
    kind: String,
    schema: SchemaNode,
}

/// Field errors that stop CEL from running, as `hasBlockingErr` decides in the apiserver.
fn blocks_cel(error: &FieldError) -> bool {
    use super::render::ErrorKind::*;
    matches!(
        error.kind,
        NotSupported | Required | TooLong | TooMany | TypeInvalid
    )
}

impl CrAdmission {
    /// `schema` is the `openAPIV3Schema` of the served version. Fails, with the messages
    /// [`structural::check_structural`] gives, if the schema is not structural or a rule does
    /// not compile.
    pub fn new(group: &str, kind: &str, schema: &Value) -> Result<Self, Vec<String>> {
        let path = structural::FIRST_VERSION_SCHEMA;
        let (parsed, compile_problems) = node::parse(schema, path);
        let problems = structural::assemble_problems(schema, path, compile_problems);
        if !problems.is_empty() {
            return Err(problems.iter().map(ToString::to_string).collect());
        }
        Ok(CrAdmission {
            group: group.to_string(),
            kind: kind.to_string(),
            schema: parsed,
        })
    }

    /// [`CrAdmission::new`], shared: every cluster serving the same CRD version gets the same
    /// instance (a large schema parses into megabytes), for as long as one of them holds it.
    pub fn shared(group: &str, kind: &str, schema: &Value) -> Result<Arc<Self>, Vec<String>> {
        static SHARED: LazyLock<Mutex<HashMap<String, Weak<CrAdmission>>>> =
            LazyLock::new(Default::default);
        let cache_key = format!("{group}\n{kind}\n{schema}");
        let mut cache = SHARED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(existing) = cache.get(&cache_key).and_then(Weak::upgrade) {
            return Ok(existing);
        }
        let admission = Arc::new(Self::new(group, kind, schema)?);
        cache.retain(|_, held| held.strong_count() > 0);
        cache.insert(cache_key, Arc::downgrade(&admission));
        Ok(admission)
    }

    /// The fields of `obj` the schema does not know (`spec.foo`, `spec.list[0].bar`), sorted,
    /// without changing `obj`. For callers that word the strict-decoding error themselves
    /// (merge/JSON patch: 422 `patch: Invalid value`, server-side apply: `field not declared
    /// in schema`).
    pub fn unknown_fields(&self, obj: &Value) -> Vec<String> {
        let mut copy = obj.clone();
        coerce::apply_defaults(&mut copy, &self.schema);
        coerce::prune(&mut copy, &self.schema)
    }

    /// Applies the schema defaults to an object read from storage (the apiserver defaults on
    /// read too, without writing back).
    pub fn default_object(&self, obj: &mut Value) {
        coerce::apply_defaults(obj, &self.schema);
    }

    fn name_of(obj: &Value) -> String {
        let metadata = obj.get("metadata");
        metadata
            .and_then(|m| m.get("name"))
            .or_else(|| metadata.and_then(|m| m.get("generateName")))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    /// `Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.x", ...`
    fn strict_decoding_error(&self, obj: &Value, unknown: &[String]) -> ApiError {
        let version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .map(|gv| gv.rsplit('/').next().unwrap_or(gv))
            .unwrap_or_default();
        let fields: Vec<String> =
            unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect();
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
            fields.join(", "),
            kind = self.kind
        ))
    }
}

/// Takes out the top-level members (other than apiVersion, kind and metadata) that equal the
/// stored object's.
fn detach_unchanged(obj: &mut Value, old: Option<&Value>) -> Vec<(String, Value)> {
    let (Some(map), Some(old)) = (obj.as_object_mut(), old.and_then(Value::as_object)) else {
        return Vec::new();
    };
    let unchanged: Vec<String> = map
        .iter()
        .filter(|(name, value)| {
            !matches!(name.as_str(), "apiVersion" | "kind" | "metadata")
                && old.get(name.as_str()) == Some(value)
        })
        .map(|(name, _)| name.clone())
        .collect();
    unchanged.into_iter().filter_map(|name| map.remove(&name).map(|value| (name, value))).collect()
}

impl Admission for CrAdmission {
    /// The list type the schema gives the list at `path` (list items are stepped through), so
    /// that server-side apply merges `map` and `set` lists entry by entry, as the API server
    /// does; absent or untyped, atomic.
    fn list_type(&self, path: &[&str]) -> Option<SchemaListType> {
        let mut node = &self.schema;
        for name in path {
            while let Some(items) = node.items.as_deref() {
                node = items;
            }
            node = node.properties.get(name).or_else(|| node.additional_schema())?;
        }
        match node.list_type.as_deref()? {
            "set" => Some(SchemaListType::Set),
            "map" if !node.list_map_keys.is_empty() => {
                Some(SchemaListType::Map(node.list_map_keys.clone()))
            }
            _ => Some(SchemaListType::Atomic),
        }
    }

    fn admit(&self, obj: &mut Value, old: Option<&Value>, strict: bool) -> ApiResult<Vec<String>> {
        coerce::apply_defaults(obj, &self.schema);
        // What the write carried over unchanged (the status of a spec write, the spec of a
        // status write) was pruned and checked when it was stored: set it aside meanwhile.
        let carried = detach_unchanged(obj, old);
        let mut candidate = obj.clone();
        let unknown = coerce::prune(&mut candidate, &self.schema);
        if strict && !unknown.is_empty() {
            return Err(self.strict_decoding_error(obj, &unknown));
        }
        *obj = candidate;
        let mut warnings: Vec<String> =
            unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect();
        coerce::drop_disallowed_nulls(obj, &self.schema);
        let list_errors = listtype::validate(obj, &self.schema);
        if let Some(map) = obj.as_object_mut() {
            map.extend(carried);
        }

        let mut errors = openapi::validate_root(obj, &self.schema, old);
        errors.extend(list_errors);
        if errors.iter().any(blocks_cel) {
            errors.push(FieldError::invalid(
                "",
                "\"null\"",
                "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            ));
        } else {
            let outcome = cel::validate_root(obj, &self.schema, old);
            errors.extend(outcome.errors);
            warnings.extend(outcome.warnings);
        }
        if errors.is_empty() {
            return Ok(warnings);
        }

        // NewInvalid lists each distinct error once.
        let mut seen = std::collections::HashSet::new();
        errors.retain(|e| seen.insert(e.to_string()));
        let causes = errors.iter().map(FieldError::to_cause).collect();
        Err(ApiError::invalid(
            &self.group,
            &self.kind,
            &Self::name_of(obj),
            causes,
        ))
    }
}
