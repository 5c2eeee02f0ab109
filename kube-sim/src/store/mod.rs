//! One cluster's object store: the semantics of kube-apiserver's registry over etcd, in memory.
//!
//! CONTRACT between the HTTP layer (`server`) and the store. The HTTP layer parses requests and
//! renders responses; everything about object semantics lives here: resourceVersion, uid,
//! generation, managedFields, patches, server-side apply, finalizers, garbage collection,
//! selectors, paging and watch.

// ApiError (shared, in error.rs) is large; every store call returns it, and these errors are
// rare, so boxing would only add noise.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use serde_json::Value;

use crate::error::ApiResult;

mod attention;
mod builtin;
mod controllers;
mod engine;
pub mod fields;
pub mod meta;
pub mod patch;
pub mod selector;
mod watch;

#[cfg(test)]
mod tests;

pub use builtin::builtin_resources;
pub(crate) use engine::Shared;
pub use engine::{Store, StoreConfig, WriteResult};
pub use watch::WatchStream;

/// What the store knows about one served resource (one group/version/plural).
#[derive(Clone)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    /// plural, e.g. `k8ssandraclusters`
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    /// status subresource enabled: main-resource writes ignore `.status`, `/status` writes ignore the rest
    pub has_status: bool,
    /// true for built-in kinds (strategic merge patch allowed), false for custom resources (415 on SMP)
    pub builtin: bool,
    /// Admission for custom resources (defaulting, pruning, schema + CEL validation).
    pub admission: Option<Arc<dyn Admission>>,
}

/// Called on every create/update/patch/apply of a resource, after the patch is applied and
/// before the object is stored.
pub trait Admission: Send + Sync {
    /// `obj` is the full new object (may be mutated: defaults, pruning). `old` is the stored
    /// object on update. `strict` is `fieldValidation=Strict`. Returns warnings (for the
    /// `Warning` header) or the error to answer (400 strict decoding, 422 Invalid).
    fn admit(&self, obj: &mut Value, old: Option<&Value>, strict: bool) -> ApiResult<Vec<String>>;

    /// `x-kubernetes-list-type` of the list at `path` (property names from the root; list
    /// items are not part of the path, so `spec.nodes[*].ports` is `["spec", "nodes",
    /// "ports"]`). Server-side apply merges `set` and `map` lists item by item; None means
    /// atomic, the default for custom resources.
    fn list_type(&self, _path: &[&str]) -> Option<SchemaListType> {
        None
    }
}

/// A list's `x-kubernetes-list-type`, as server-side apply needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaListType {
    Atomic,
    Set,
    /// `map` with its `x-kubernetes-list-map-keys`
    Map(Vec<String>),
}

/// Whether a write is persisted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DryRun {
    #[default]
    No,
    All,
}

/// Options shared by writes.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    pub dry_run: DryRun,
    /// `fieldManager` query parameter; None means derive from user agent (empty for kube-rs)
    pub field_manager: Option<String>,
    /// `fieldValidation`: "Strict" | "Warn" | "Ignore" (None = server default, Warn for CRs via kubectl... treat as Warn)
    pub field_validation: Option<String>,
    /// `force` for server-side apply
    pub force: bool,
    /// write to the `/status` subresource
    pub subresource_status: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    StrategicMerge,
    Apply,
}

#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub dry_run: DryRun,
    /// "Orphan" | "Background" | "Foreground"
    pub propagation_policy: Option<String>,
    pub preconditions_uid: Option<String>,
    pub preconditions_resource_version: Option<String>,
}

/// The answer of a delete: the object still exists (finalizers pending, 200 with the object),
/// or it is gone (200 with a Status Success whose details name it, or the object for some kinds).
#[derive(Debug, Clone)]
pub enum DeleteOutcome {
    Pending(Value),
    Deleted(Value),
}

/// A watch event as it goes on the wire: `{"type": ..., "object": ...}`.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// ADDED | MODIFIED | DELETED | BOOKMARK | ERROR
    pub event_type: &'static str,
    /// The object, parsed; Null when `stored` carries it instead.
    pub object: Value,
    /// The object as stored (compact JSON), for watches that asked for it unparsed.
    pub stored: Option<std::sync::Arc<[u8]>>,
}

impl WatchEvent {
    pub(crate) fn parsed(event_type: &'static str, object: Value) -> Self {
        WatchEvent {
            event_type,
            object,
            stored: None,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub resource_version: Option<String>,
    pub allow_bookmarks: bool,
    pub send_initial_events: bool,
    /// Objects of ADDED/MODIFIED events as stored, not parsed (the server writes them out as
    /// they are; in-process watchers want them parsed).
    pub stored_objects: bool,
}
