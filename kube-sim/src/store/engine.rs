//! The store itself: objects of one cluster, the resourceVersion counter, the event window,
//! watchers, and the write pipelines (create, update, patch, apply, delete); the work they leave
//! for the garbage collector and the namespace controller, which the background controllers
//! run a little later.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use parking_lot::RwLock;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::builtin::{
    INITIAL_NAMESPACES, UNDELETABLE_NAMESPACES, apply_create_defaults, apply_create_strategy,
    builtin_resources, selectable_fields, tracks_generation,
};
use super::fields::{
    Actor, Conflict, ManagedEntry, Schema, conflict_message, parse_managed_fields, record_update,
    render_managed_fields, server_side_apply,
};
use super::meta::{
    self, OwnerRef, api_group, finalizers, is_deleting, members_equal, meta_str, metadata, new_uid,
    now_rfc3339, object_key, owner_refs, random_suffix, remove_meta, same_content, set_finalizers,
    set_meta,
};
use super::patch::{
    MAX_JSON_PATCH_OPERATIONS, apply_json_patch, apply_merge_patch, apply_strategic_merge_patch,
};
use super::selector::Selectors;
use super::watch::{StoredEvent, WatchStream, WatcherSlot};
use super::{
    DeleteOptions, DeleteOutcome, DryRun, ListOptions, PatchType, ResourceInfo, WatchOptions,
    WriteOptions,
};
use crate::builtin_schemas::quantity_fields;
use crate::error::{ApiError, ApiResult, Cause, qualified};

/// Tunables of one store.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// how many events are kept for watches that resume from a resourceVersion
    pub event_window: usize,
    /// and how many bytes of superseded object states they may keep alive (100 clusters
    /// under update churn must still fit in memory)
    pub event_window_bytes: usize,
    /// how often a watch that allows bookmarks gets one
    pub bookmark_interval: Duration,
    /// events buffered per watch before a too slow watcher is dropped
    pub watch_buffer: usize,
    /// how long the built-in controllers wait after a change (Deployment readiness, …)
    pub controller_delay: Duration,
    /// how long a Deployment or StatefulSet takes to report its replicas ready after a change
    /// (pods being scheduled and started); `None` is `controller_delay`
    pub workload_ready_delay: Option<Duration>,
    /// how long the garbage collector and the namespace controller take to act on a deletion
    /// (each step of a cascade takes as long again): they run after the request that deleted,
    /// as kube-controller-manager does, and only while the controllers run
    pub gc_delay: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            event_window: 4_096,
            event_window_bytes: 2 << 20,
            bookmark_interval: Duration::from_secs(5),
            watch_buffer: 65_536,
            controller_delay: Duration::from_millis(150),
            workload_ready_delay: None,
            gc_delay: Duration::from_millis(100),
        }
    }
}

/// The answer to a create, update or patch.
#[derive(Debug, Clone)]
pub struct WriteResult {
    /// the object as stored (or as it would be stored, for a dry run)
    pub object: Value,
    /// the write created the object: answer 201 (create, and apply on a missing object)
    pub created: bool,
    /// admission warnings, one `Warning` header each
    pub warnings: Vec<String>,
}

type ResourceKey = (String, String);

struct Resource {
    info: ResourceInfo,
    id: u32,
    /// `namespace/name` (or `name`) → the object's JSON
    objects: BTreeMap<String, Arc<[u8]>>,
}

/// Work that follows writes: the garbage collector and the namespace controller.
enum Work {
    Removed {
        uid: String,
        owners: Vec<OwnerRef>,
        namespace: Option<String>,
    },
    DeletingWithGcFinalizer(ResourceKey, String),
    NamespaceTerminating(String),
}

/// Delayed work of the background controllers.
#[derive(Clone, Debug)]
pub(crate) struct ControllerTask {
    pub due: Instant,
    pub resource: ResourceKey,
    pub key: String,
}

pub(crate) struct State {
    pub rv: u64,
    next_resource_id: u32,
    resources: BTreeMap<ResourceKey, Resource>,
    events: VecDeque<Arc<StoredEvent>>,
    /// every event with a larger resourceVersion is still in `events`
    window_start: u64,
    event_window: usize,
    event_window_bytes: usize,
    /// bytes the window keeps alive beyond the stored objects
    window_bytes: usize,
    watchers: Vec<WatcherSlot>,
    /// owner uid → dependents (resource, key)
    dependents: HashMap<String, BTreeSet<(ResourceKey, String)>>,
    /// the garbage collector's and namespace controller's work, each item with when it is due
    work: VecDeque<(Instant, Work)>,
    gc_delay: Duration,
    next_cluster_ip: u32,
    pub controllers_running: bool,
    pub controller_queue: VecDeque<ControllerTask>,
    controller_delay: Duration,
    workload_ready_delay: Duration,
}

pub(crate) struct Shared {
    pub state: RwLock<State>,
    pub config: StoreConfig,
}

/// One cluster's objects with etcd + registry semantics. Share it as `Arc<Store>`.
pub struct Store {
    pub(crate) shared: Arc<Shared>,
}

fn not_served() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn parse_object(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

fn group_version(info: &ResourceInfo) -> String {
    if info.group.is_empty() {
        info.version.clone()
    } else {
        format!("{}/{}", info.group, info.version)
    }
}

fn schema(info: &ResourceInfo) -> Schema<'_> {
    Schema {
        builtin: info.builtin,
        admission: info.admission.as_deref(),
    }
}

fn key_namespace(key: &str) -> Option<&str> {
    key.split_once('/').map(|(ns, _)| ns)
}

fn parse_rv(text: &str) -> ApiResult<u64> {
    text.parse::<u64>()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {text}")))
}

fn too_large_rv(requested: u64, current: u64) -> ApiError {
    let mut err = ApiError::new(
        504,
        "Timeout",
        format!("Timeout: Too large resource version: {requested}, current: {current}"),
    );
    err.causes.push(Cause {
        reason: "ResourceVersionTooLarge".into(),
        message: "Too large resource version".into(),
        field: String::new(),
    });
    err.retry_after = Some(1);
    err
}

fn object_rv(obj: &Value) -> Option<&str> {
    meta_str(obj, "resourceVersion").filter(|rv| !rv.is_empty())
}

/// Whether a write changed what `metadata.generation` counts: all but metadata (and status,
/// when it is a subresource).
fn generation_relevant_change(old: &Value, new: &Value, has_status: bool) -> bool {
    let uncounted = |k: &str| k == "metadata" || (has_status && k == "status");
    match (old.as_object(), new.as_object()) {
        (Some(a), Some(b)) => !members_equal(a, b, uncounted),
        _ => old != new,
    }
}

fn is_finalized(resource: &ResourceKey, obj: &Value) -> bool {
    if !finalizers(obj).is_empty() {
        return false;
    }
    if resource.0.is_empty() && resource.1 == "namespaces" {
        let spec_finalizers = obj
            .get("spec")
            .and_then(|s| s.get("finalizers"))
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        return !spec_finalizers;
    }
    true
}

fn delete_success(info: &ResourceInfo, name: &str, uid: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": info.group, "kind": info.plural, "uid": uid},
    })
}

fn namespaces_key() -> ResourceKey {
    (String::new(), "namespaces".into())
}

/// Continue tokens: base64url JSON naming the snapshot resourceVersion and the next key.
fn encode_continue(rv: u64, next_key: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{next_key}\u{0}")});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> ApiResult<(u64, String)> {
    let invalid = |why: &str| ApiError::bad_request(format!("continue key is not valid: {why}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| invalid("illegal base64 data"))?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|_| invalid("incorrect encoded start"))?;
    if value.get("v").and_then(Value::as_str) != Some("meta.k8s.io/v1") {
        return Err(invalid("server does not recognize this encoded key"));
    }
    let rv = value.get("rv").and_then(Value::as_u64).ok_or_else(|| {
        invalid("incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    })?;
    let start = value
        .get("start")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("encoded start key is missing"))?;
    Ok((rv, start.to_string()))
}

impl State {
    fn new(config: &StoreConfig) -> Self {
        State {
            rv: 1,
            next_resource_id: 1,
            resources: BTreeMap::new(),
            events: VecDeque::new(),
            window_start: 1,
            event_window: config.event_window.max(1),
            event_window_bytes: config.event_window_bytes,
            window_bytes: 0,
            watchers: Vec::new(),
            dependents: HashMap::new(),
            work: VecDeque::new(),
            gc_delay: config.gc_delay,
            next_cluster_ip: 10,
            controllers_running: false,
            controller_queue: VecDeque::new(),
            controller_delay: config.controller_delay,
            workload_ready_delay: config.workload_ready_delay.unwrap_or(config.controller_delay),
        }
    }

    fn info(&self, resource: &ResourceKey) -> ApiResult<ResourceInfo> {
        self.resources.get(resource).map(|r| r.info.clone()).ok_or_else(not_served)
    }

    fn load(&self, resource: &ResourceKey, key: &str) -> Option<Value> {
        self.resources.get(resource)?.objects.get(key).map(|b| parse_object(b))
    }

    fn register(&mut self, info: ResourceInfo) {
        let key = (info.group.clone(), info.plural.clone());
        match self.resources.get_mut(&key) {
            Some(existing) => existing.info = info,
            None => {
                let id = self.next_resource_id;
                self.next_resource_id += 1;
                self.resources.insert(
                    key,
                    Resource {
                        info,
                        id,
                        objects: BTreeMap::new(),
                    },
                );
            }
        }
    }

    /// Stores a new state of an object (or removes it) under a new resourceVersion, records the
    /// event, tells the watchers, and queues what the garbage collector must look at.
    fn commit(
        &mut self,
        resource: &ResourceKey,
        key: &str,
        old: Option<&Value>,
        mut obj: Value,
        remove: bool,
    ) -> Value {
        self.rv += 1;
        let rv = self.rv;
        set_meta(&mut obj, "resourceVersion", json!(rv.to_string()));
        let bytes: Arc<[u8]> = serde_json::to_vec(&obj).unwrap_or_default().into();
        let Some(entry) = self.resources.get_mut(resource) else {
            return obj;
        };
        let previous = if remove {
            entry.objects.remove(key)
        } else {
            entry.objects.insert(key.to_string(), bytes.clone())
        };
        let event_type = if remove {
            "DELETED"
        } else if previous.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let event = Arc::new(StoredEvent {
            rv,
            resource_id: entry.id,
            key: key.into(),
            event_type,
            object: bytes,
            previous,
        });
        let namespaced = entry.info.namespaced;
        self.window_bytes += event.retained_bytes();
        self.events.push_back(event.clone());
        while self.events.len() > self.event_window
            || (self.window_bytes > self.event_window_bytes && self.events.len() > 1)
        {
            if let Some(evicted) = self.events.pop_front() {
                self.window_bytes -= evicted.retained_bytes();
                self.window_start = evicted.rv;
            }
        }
        self.watchers.retain(|w| w.offer(&event));

        // ownerReference index for the garbage collector
        let old_refs = old.map(owner_refs).unwrap_or_default();
        let new_refs = if remove { Vec::new() } else { owner_refs(&obj) };
        for gone in old_refs.iter().filter(|r| !new_refs.iter().any(|n| n.uid == r.uid)) {
            if let Some(set) = self.dependents.get_mut(&gone.uid) {
                set.remove(&(resource.clone(), key.to_string()));
                if set.is_empty() {
                    self.dependents.remove(&gone.uid);
                }
            }
        }
        for owner in &new_refs {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert((resource.clone(), key.to_string()));
        }

        let due = Instant::now() + self.gc_delay;
        if remove {
            self.work.push_back((
                due,
                Work::Removed {
                    uid: meta_str(&obj, "uid").unwrap_or_default().to_string(),
                    owners: owner_refs(&obj),
                    namespace: if namespaced {
                        key_namespace(key).map(str::to_string)
                    } else {
                        None
                    },
                },
            ));
        } else if is_deleting(&obj) {
            let gc_finalizers =
                finalizers(&obj).iter().any(|f| f == "orphan" || f == "foregroundDeletion");
            if gc_finalizers {
                self.work.push_back((
                    due,
                    Work::DeletingWithGcFinalizer(resource.clone(), key.to_string()),
                ));
            }
            if *resource == namespaces_key() && !old.is_some_and(is_deleting) {
                self.work.push_back((due, Work::NamespaceTerminating(key.to_string())));
            }
        }
        if self.controllers_running && !remove && super::attention::watched(resource, &obj) {
            self.controller_queue.push_back(ControllerTask {
                due: Instant::now() + self.controller_delay_of(resource),
                resource: resource.clone(),
                key: key.to_string(),
            });
        }
        obj
    }

    /// Workloads (Deployments, StatefulSets) become ready after their own delay.
    fn controller_delay_of(&self, resource: &ResourceKey) -> Duration {
        match (resource.0.as_str(), resource.1.as_str()) {
            ("apps", "deployments") | ("apps", "statefulsets") => self.workload_ready_delay,
            _ => self.controller_delay,
        }
    }

    fn owner_exists(&self, owner: &OwnerRef, dependent_namespace: Option<&str>) -> bool {
        let group = api_group(&owner.api_version);
        let known =
            self.resources.values().any(|r| r.info.group == group && r.info.kind == owner.kind);
        if !known {
            // the garbage collector cannot resolve a kind it does not serve and leaves the
            // dependent alone
            return true;
        }
        self.resources.values().any(|r| {
            r.info.group == group
                && r.info.kind == owner.kind
                && r.objects
                    .get(&object_key(
                        if r.info.namespaced {
                            dependent_namespace
                        } else {
                            None
                        },
                        &owner.name,
                    ))
                    .is_some_and(|bytes| {
                        meta_str(&parse_object(bytes), "uid") == Some(owner.uid.as_str())
                    })
        })
    }

    fn find_owner(
        &self,
        owner: &OwnerRef,
        dependent_namespace: Option<&str>,
    ) -> Option<(ResourceKey, String)> {
        let group = api_group(&owner.api_version);
        self.resources.iter().find_map(|(rk, r)| {
            if r.info.group != group || r.info.kind != owner.kind {
                return None;
            }
            let key = object_key(
                if r.info.namespaced {
                    dependent_namespace
                } else {
                    None
                },
                &owner.name,
            );
            let bytes = r.objects.get(&key)?;
            (meta_str(&parse_object(bytes), "uid") == Some(owner.uid.as_str()))
                .then(|| (rk.clone(), key))
        })
    }

    fn namespace_error(&self, info: &ResourceInfo, ns: &str, name: &str) -> Option<ApiError> {
        let namespaces = self.resources.get(&namespaces_key())?;
        match namespaces.objects.get(ns) {
            None => Some(ApiError::not_found("", "namespaces", ns)),
            Some(bytes) if is_deleting(&parse_object(bytes)) => {
                let mut err = ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        qualified(&info.plural, &info.group)
                    ),
                )
                .with_details(name, &info.group, &info.plural);
                err.causes.push(Cause {
                    reason: "NamespaceTerminating".into(),
                    message: format!("namespace {ns} is being terminated"),
                    field: "metadata.namespace".into(),
                });
                Some(err)
            }
            Some(_) => None,
        }
    }

    fn admit(
        &self,
        info: &ResourceInfo,
        obj: &mut Value,
        old: Option<&Value>,
        opts: &WriteOptions,
    ) -> ApiResult<Vec<String>> {
        match &info.admission {
            Some(admission) => {
                admission.admit(obj, old, opts.field_validation.as_deref() == Some("Strict"))
            }
            None => Ok(Vec::new()),
        }
    }

    fn next_cluster_ip(&mut self) -> String {
        let n = self.next_cluster_ip;
        self.next_cluster_ip += 1;
        format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 1)
    }

    /// POST, and server-side apply of a missing object (then `applied` holds its entries).
    fn create(
        &mut self,
        resource: &ResourceKey,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
        applied: Option<Vec<ManagedEntry>>,
    ) -> ApiResult<WriteResult> {
        let info = self.info(resource)?;
        let Some(map) = obj.as_object_mut() else {
            return Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: the object is not a JSON object",
                info.kind, info.version, info.kind
            )));
        };
        map.insert("apiVersion".into(), json!(group_version(&info)));
        map.insert("kind".into(), json!(info.kind));

        let namespace = if info.namespaced {
            let from_body = meta_str(&obj, "namespace").filter(|n| !n.is_empty());
            let ns = match (ns, from_body) {
                (Some(url), Some(body)) if url != body => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                (Some(url), _) => url.to_string(),
                (None, Some(body)) => body.to_string(),
                (None, None) => {
                    return Err(ApiError::bad_request(
                        "an empty namespace may not be set during creation",
                    ));
                }
            };
            set_meta(&mut obj, "namespace", json!(ns));
            Some(ns)
        } else {
            remove_meta(&mut obj, "namespace");
            None
        };

        let mut name = meta_str(&obj, "name").unwrap_or_default().to_string();
        let generate_name = meta_str(&obj, "generateName").unwrap_or_default().to_string();
        let generated = name.is_empty() && !generate_name.is_empty();
        if name.is_empty() {
            if generate_name.is_empty() {
                return Err(ApiError::invalid(
                    &info.group,
                    &info.kind,
                    "",
                    vec![Cause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value: name or generateName is required".into(),
                        field: "metadata.name".into(),
                    }],
                ));
            }
            name = format!("{generate_name}{}", random_suffix());
        }
        let name_problem = if *resource == namespaces_key() {
            meta::label_error(&name)
        } else {
            meta::subdomain_error(&name)
        };
        if let Some(problem) = name_problem {
            let field = if generated {
                "metadata.generateName"
            } else {
                "metadata.name"
            };
            let shown = if generated { &generate_name } else { &name };
            return Err(ApiError::invalid(
                &info.group,
                &info.kind,
                &name,
                vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!("Invalid value: \"{shown}\": {problem}"),
                    field: field.into(),
                }],
            ));
        }
        if let Some(ns) = &namespace
            && let Some(err) = self.namespace_error(&info, ns, &name)
        {
            return Err(err);
        }
        let key = object_key(namespace.as_deref(), &name);
        let exists = |state: &State, key: &str| {
            state.resources.get(resource).is_some_and(|r| r.objects.contains_key(key))
        };
        let mut key = key;
        if exists(self, &key) {
            if !generated {
                let mut err = ApiError::already_exists(&info.group, &info.plural, &name);
                if self.load(resource, &key).is_some_and(|o| is_deleting(&o)) {
                    // a terminating namespace, an object waiting for its finalizers
                    err.message = format!("object is being deleted: {}", err.message);
                }
                return Err(err);
            }
            // a generated name that collides gets a second draw, as the apiserver retries
            name = format!("{generate_name}{}", random_suffix());
            key = object_key(namespace.as_deref(), &name);
            if exists(self, &key) {
                return Err(ApiError::already_exists(&info.group, &info.plural, &name));
            }
        }

        if applied.is_none() && object_rv(&obj).is_some() {
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        set_meta(&mut obj, "name", json!(name));
        set_meta(&mut obj, "uid", json!(new_uid()));
        set_meta(&mut obj, "creationTimestamp", json!(now_rfc3339()));
        for field in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "generation",
        ] {
            remove_meta(&mut obj, field);
        }
        let request_managed = remove_meta(&mut obj, "managedFields");
        if info.has_status
            && let Some(map) = obj.as_object_mut()
        {
            // the request's status is dropped; the strategy sets the initial one below
            map.remove("status");
        }
        apply_create_defaults(&info, &mut obj);
        canonicalize_quantities(&info, &mut obj)?;
        if tracks_generation(&info) {
            set_meta(&mut obj, "generation", json!(1));
        }
        annotations_check(&info, &obj, &name)?;
        let warnings = self.admit(&info, &mut obj, None, opts)?;

        let entries = match applied {
            Some(entries) => entries,
            None => {
                let mut entries = request_managed
                    .map(|m| parse_managed_fields(&json!({"metadata": {"managedFields": m}})))
                    .unwrap_or_default();
                let api_version = group_version(&info);
                let now = now_rfc3339();
                let actor = Actor {
                    manager: opts.field_manager.as_deref().unwrap_or(""),
                    api_version: &api_version,
                    subresource: "",
                    now: &now,
                };
                record_update(&mut entries, None, &obj, &actor, schema(&info));
                entries
            }
        };
        if !entries.is_empty() {
            set_meta(&mut obj, "managedFields", render_managed_fields(&entries));
        }
        let mut cluster_ip = None;
        if info.builtin && info.plural == "services" && info.group.is_empty() {
            cluster_ip = Some(self.next_cluster_ip());
        }
        apply_create_strategy(&info, &mut obj, || cluster_ip.unwrap_or_default());
        if opts.dry_run == DryRun::All {
            return Ok(WriteResult {
                object: obj,
                created: true,
                warnings,
            });
        }
        let object = self.commit(resource, &key, None, obj, false);
        Ok(WriteResult {
            object,
            created: true,
            warnings,
        })
    }

    /// The common end of PUT, PATCH and apply on an existing object: status subresource rules,
    /// immutable metadata, finalizer rules, admission, managedFields, generation, no-op
    /// detection, and deletion once the last finalizer is gone.
    #[allow(clippy::too_many_arguments)]
    fn finish_update(
        &mut self,
        resource: &ResourceKey,
        key: &str,
        old: Value,
        mut new: Value,
        opts: &WriteOptions,
        applied: Option<Vec<ManagedEntry>>,
        manager: &str,
    ) -> ApiResult<WriteResult> {
        let info = self.info(resource)?;
        if !new.is_object() {
            return Err(ApiError::bad_request("the object is not a JSON object"));
        }
        let status_write = opts.subresource_status;
        let request_managed = metadata(&new).and_then(|m| m.get("managedFields")).cloned();
        if status_write {
            // only .status comes from the request
            let status = new.get("status").cloned();
            new = old.clone();
            if let Some(map) = new.as_object_mut() {
                match status {
                    Some(s) => map.insert("status".into(), s),
                    None => map.remove("status"),
                };
            }
        } else if info.has_status {
            let status = old.get("status").cloned();
            if let Some(map) = new.as_object_mut() {
                match status {
                    Some(s) => map.insert("status".into(), s),
                    None => map.remove("status"),
                };
            }
        }
        if let Some(map) = new.as_object_mut() {
            map.insert("apiVersion".into(), json!(group_version(&info)));
            map.insert("kind".into(), json!(info.kind));
        }
        // identity and system fields stay as stored
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match metadata(&old).and_then(|m| m.get(field)).cloned() {
                Some(v) => set_meta(&mut new, field, v),
                None => {
                    remove_meta(&mut new, field);
                }
            }
        }
        remove_meta(&mut new, "selfLink");
        let name = meta_str(&old, "name").unwrap_or_default().to_string();

        if is_deleting(&old) {
            let before = finalizers(&old);
            let added: Vec<String> =
                finalizers(&new).into_iter().filter(|f| !before.contains(f)).collect();
            if !added.is_empty() {
                let listed: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
                return Err(ApiError::invalid(
                    &info.group,
                    &info.kind,
                    &name,
                    vec![Cause {
                        reason: "FieldValueForbidden".into(),
                        message: format!(
                            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                            listed.join(", ")
                        ),
                        field: "metadata.finalizers".into(),
                    }],
                ));
            }
        }

        canonicalize_quantities(&info, &mut new)?;
        annotations_check(&info, &new, &name)?;
        let warnings = self.admit(&info, &mut new, Some(&old), opts)?;

        let entries = match applied {
            Some(entries) => entries,
            None => {
                // a request that sets managedFields replaces them (kubectl's migration of
                // client-side-apply ownership relies on it)
                let stored = metadata(&old).and_then(|o| o.get("managedFields"));
                let mut entries = match &request_managed {
                    // `[{}]` strips ownership; `[]` is taken as "not set" so that clients
                    // unaware of the field cannot wipe it
                    Some(m) if *m == json!([{}]) => Vec::new(),
                    Some(m) if m.as_array().is_some_and(|a| !a.is_empty()) && Some(m) != stored => {
                        parse_managed_fields(&json!({"metadata": {"managedFields": m}}))
                    }
                    _ => parse_managed_fields(&old),
                };
                let stripped = request_managed.as_ref() == Some(&json!([{}]));
                let api_version = group_version(&info);
                let now = now_rfc3339();
                let actor = Actor {
                    manager,
                    api_version: &api_version,
                    subresource: if status_write { "status" } else { "" },
                    now: &now,
                };
                if !stripped {
                    record_update(&mut entries, Some(&old), &new, &actor, schema(&info));
                }
                entries
            }
        };
        if entries.is_empty() {
            remove_meta(&mut new, "managedFields");
        } else {
            set_meta(&mut new, "managedFields", render_managed_fields(&entries));
        }

        if tracks_generation(&info) && !status_write {
            let generation = metadata(&old)
                .and_then(|m| m.get("generation"))
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let changed = generation_relevant_change(&old, &new, info.has_status);
            set_meta(
                &mut new,
                "generation",
                json!(if changed { generation + 1 } else { generation }),
            );
        }

        if same_content(&old, &new) {
            return Ok(WriteResult {
                object: old,
                created: false,
                warnings,
            });
        }
        if opts.dry_run == DryRun::All {
            return Ok(WriteResult {
                object: new,
                created: false,
                warnings,
            });
        }
        let remove = is_deleting(&new) && is_finalized(resource, &new);
        let object = self.commit(resource, key, Some(&old), new, remove);
        Ok(WriteResult {
            object,
            created: false,
            warnings,
        })
    }

    fn update(
        &mut self,
        resource: &ResourceKey,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<WriteResult> {
        let info = self.info(resource)?;
        let key = object_key(ns.filter(|_| info.namespaced), name);
        let Some(old) = self.load(resource, &key) else {
            return Err(ApiError::not_found(&info.group, &info.plural, name));
        };
        if !obj.is_object() {
            return Err(ApiError::bad_request("the object is not a JSON object"));
        }
        if let Some(body_name) = meta_str(&obj, "name")
            && body_name != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if info.namespaced
            && let (Some(body_ns), Some(url_ns)) = (meta_str(&obj, "namespace"), ns)
            && !body_ns.is_empty()
            && body_ns != url_ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        match object_rv(&obj) {
            None if !info.builtin => {
                return Err(ApiError::invalid(
                    &info.group,
                    &info.plural,
                    name,
                    vec![Cause {
                        reason: "FieldValueInvalid".into(),
                        message: "Invalid value: 0x0: must be specified for an update".into(),
                        field: "metadata.resourceVersion".into(),
                    }],
                ));
            }
            Some(rv) if Some(rv) != object_rv(&old) => {
                return Err(ApiError::conflict(&info.group, &info.plural, name));
            }
            _ => {}
        }
        let manager = opts.field_manager.clone().unwrap_or_default();
        self.finish_update(resource, &key, old, obj, opts, None, &manager)
    }

    fn patch(
        &mut self,
        resource: &ResourceKey,
        ns: Option<&str>,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
        opts: &WriteOptions,
    ) -> ApiResult<WriteResult> {
        let info = self.info(resource)?;
        if patch_type == PatchType::Apply {
            return self.apply(resource, &info, ns, name, body, opts);
        }
        if opts.force {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause {
                    reason: "FieldValueForbidden".into(),
                    message: "Forbidden: may not be specified for non-apply patch".into(),
                    field: "force".into(),
                }],
            ));
        }
        if patch_type == PatchType::StrategicMerge && !info.builtin {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        let key = object_key(ns.filter(|_| info.namespaced), name);
        let Some(old) = self.load(resource, &key) else {
            return Err(ApiError::not_found(&info.group, &info.plural, name));
        };
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let mut patched = old.clone();
        match patch_type {
            PatchType::Json => {
                let count = patch.as_array().map_or(0, Vec::len);
                if count > MAX_JSON_PATCH_OPERATIONS {
                    return Err(ApiError::new(
                        413,
                        "RequestEntityTooLarge",
                        format!(
                            "The allowed operations in a JSON patch are limited to {MAX_JSON_PATCH_OPERATIONS}, got {count}"
                        ),
                    ));
                }
                if !patch.is_array() {
                    return Err(ApiError::bad_request(
                        "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
                    ));
                }
                if apply_json_patch(&mut patched, &patch).is_err() {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        "the server rejected our request due to an error in our request",
                    ));
                }
            }
            PatchType::Merge => apply_merge_patch(&mut patched, &patch),
            PatchType::StrategicMerge => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request(
                        "json: cannot unmarshal array into Go value of type map[string]interface {}",
                    ));
                }
                apply_strategic_merge_patch(&mut patched, &patch)
                    .map_err(|e| ApiError::bad_request(e.0))?;
            }
            PatchType::Apply => unreachable!("handled above"),
        }
        // a resourceVersion in the patch makes it conditional
        if object_rv(&patched).is_some() && object_rv(&patched) != object_rv(&old) {
            return Err(ApiError::conflict(&info.group, &info.plural, name));
        }
        let manager = opts.field_manager.clone().unwrap_or_default();
        self.finish_update(resource, &key, old, patched, opts, None, &manager)
    }

    fn apply(
        &mut self,
        resource: &ResourceKey,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        body: &[u8],
        opts: &WriteOptions,
    ) -> ApiResult<WriteResult> {
        let manager = opts.field_manager.clone().unwrap_or_default();
        if manager.is_empty() {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value: is required for apply patch".into(),
                    field: "fieldManager".into(),
                }],
            ));
        }
        let mut applied: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => {
                let text = std::str::from_utf8(body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
                serde_saphyr::from_str(text)
                    .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
            }
        };
        if !applied.is_object() {
            return Err(ApiError::bad_request(
                "error decoding YAML: the apply patch is not an object",
            ));
        }
        let expected_version = group_version(info);
        let body_version = applied.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if body_version != expected_version {
            return Err(ApiError::bad_request(format!(
                "Incorrect version specified in apply patch. Specified patch version: {body_version}, expected: {expected_version}"
            )));
        }
        let body_kind = applied.get("kind").and_then(Value::as_str).unwrap_or("");
        if body_kind != info.kind {
            return Err(ApiError::bad_request(format!(
                "Incorrect kind specified in apply patch. Specified patch kind: {body_kind}, expected: {}",
                info.kind
            )));
        }
        if metadata(&applied).and_then(|m| m.get("managedFields")).is_some_and(|m| !m.is_null()) {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        if let Some(body_name) = meta_str(&applied, "name")
            && body_name != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        set_meta(&mut applied, "name", json!(name));
        let expected_rv = remove_meta(&mut applied, "resourceVersion")
            .and_then(|v| v.as_str().map(str::to_string))
            .filter(|v| !v.is_empty());
        for field in [
            "uid",
            "creationTimestamp",
            "generation",
            "managedFields",
            "selfLink",
        ] {
            remove_meta(&mut applied, field);
        }
        if info.namespaced {
            if let Some(ns) = ns {
                set_meta(&mut applied, "namespace", json!(ns));
            }
        } else {
            remove_meta(&mut applied, "namespace");
        }
        // what the strategy resets is neither applied nor owned
        if info.has_status
            && let Some(map) = applied.as_object_mut()
        {
            if opts.subresource_status {
                map.retain(|k, _| {
                    matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status")
                });
                if let Some(Value::Object(meta)) = map.get_mut("metadata") {
                    meta.retain(|k, _| k == "name" || k == "namespace");
                }
            } else {
                map.remove("status");
            }
        }

        let key = object_key(ns.filter(|_| info.namespaced), name);
        let old = self.load(resource, &key);
        if let (Some(expected), Some(old)) = (&expected_rv, &old)
            && Some(expected.as_str()) != object_rv(old)
        {
            return Err(ApiError::conflict(&info.group, &info.plural, name));
        }
        if old.is_none() && opts.subresource_status {
            return Err(ApiError::not_found(&info.group, &info.plural, name));
        }
        let now = now_rfc3339();
        let actor = Actor {
            manager: &manager,
            api_version: &expected_version,
            subresource: if opts.subresource_status {
                "status"
            } else {
                ""
            },
            now: &now,
        };
        let entries = old.as_ref().map(parse_managed_fields).unwrap_or_default();
        let (merged, entries) = server_side_apply(
            old.as_ref(),
            &applied,
            entries,
            &actor,
            opts.force,
            schema(info),
        )
        .map_err(|conflicts| conflict_error(&conflicts))?;
        match old {
            None => self.create(resource, ns, merged, opts, Some(entries)),
            Some(old) => {
                self.finish_update(resource, &key, old, merged, opts, Some(entries), &manager)
            }
        }
    }

    /// DELETE of one object, after preconditions: finalizers keep it (deletionTimestamp set),
    /// otherwise it goes at once. Namespaces start terminating.
    fn delete(
        &mut self,
        resource: &ResourceKey,
        key: &str,
        old: Value,
        policy: Option<&str>,
        dry_run: bool,
    ) -> ApiResult<DeleteOutcome> {
        let info = self.info(resource)?;
        if is_deleting(&old) {
            return Ok(DeleteOutcome::Pending(old));
        }
        let name = meta_str(&old, "name").unwrap_or_default().to_string();
        let uid = meta_str(&old, "uid").unwrap_or_default().to_string();
        let mut new = old.clone();
        if *resource == namespaces_key() {
            set_meta(&mut new, "deletionTimestamp", json!(now_rfc3339()));
            set_meta(&mut new, "deletionGracePeriodSeconds", json!(0));
            new["status"]["phase"] = json!("Terminating");
            if dry_run {
                return Ok(DeleteOutcome::Pending(new));
            }
            let stored = self.commit(resource, key, Some(&old), new, false);
            return Ok(DeleteOutcome::Pending(stored));
        }
        let mut list = finalizers(&old);
        let gc_finalizer = match policy {
            Some("Orphan") => Some("orphan"),
            Some("Foreground") => Some("foregroundDeletion"),
            _ => None,
        };
        if let Some(f) = gc_finalizer
            && !list.iter().any(|x| x == f)
        {
            list.push(f.to_string());
        }
        if list.iter().any(|f| f == "orphan") && list.iter().any(|f| f == "foregroundDeletion") {
            return Err(ApiError::invalid(
                &info.group,
                &info.kind,
                &name,
                vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    message: "Invalid value: []string{\"orphan\", \"foregroundDeletion\"}: finalizer orphan and foregroundDeletion cannot be both set".into(),
                    field: "metadata.finalizers".into(),
                }],
            ));
        }
        if list.is_empty() {
            if !dry_run {
                self.commit(resource, key, Some(&old), old.clone(), true);
            }
            return Ok(DeleteOutcome::Deleted(delete_success(&info, &name, &uid)));
        }
        set_finalizers(&mut new, list);
        set_meta(&mut new, "deletionTimestamp", json!(now_rfc3339()));
        set_meta(&mut new, "deletionGracePeriodSeconds", json!(0));
        if let Some(generation) = metadata(&old)
            .and_then(|m| m.get("generation"))
            .and_then(Value::as_i64)
            .filter(|g| *g > 0)
        {
            set_meta(&mut new, "generation", json!(generation + 1));
        }
        if dry_run {
            return Ok(DeleteOutcome::Pending(new));
        }
        let stored = self.commit(resource, key, Some(&old), new, false);
        Ok(DeleteOutcome::Pending(stored))
    }

    /// A change made by the store's own controllers (garbage collector, namespace controller):
    /// no admission, recorded under the controller's manager name.
    fn internal_update(
        &mut self,
        resource: &ResourceKey,
        key: &str,
        change: impl FnOnce(&mut Value),
    ) {
        let Some(old) = self.load(resource, key) else {
            return;
        };
        let mut new = old.clone();
        change(&mut new);
        let opts = WriteOptions::default();
        let _ = self.finish_update(
            resource,
            key,
            old,
            new,
            &opts,
            None,
            "kube-controller-manager",
        );
    }

    /// Runs the garbage collector's and namespace controller's work that is due by `now`;
    /// what that work changes is due a `gc_delay` later.
    fn settle(&mut self, now: Instant) {
        while self.work.front().is_some_and(|(due, _)| *due <= now) {
            let Some((_, work)) = self.work.pop_front() else {
                break;
            };
            match work {
                Work::Removed {
                    uid,
                    owners,
                    namespace,
                } => {
                    self.collect_dependents(&uid);
                    for owner in owners {
                        if let Some((rk, key)) = self.find_owner(&owner, namespace.as_deref()) {
                            let due = Instant::now() + self.gc_delay;
                            self.work.push_back((due, Work::DeletingWithGcFinalizer(rk, key)));
                        }
                    }
                    if let Some(ns) = namespace {
                        self.finish_namespace(&ns);
                    }
                }
                Work::DeletingWithGcFinalizer(rk, key) => self.process_gc_finalizers(&rk, &key),
                Work::NamespaceTerminating(ns) => {
                    let contents: Vec<(ResourceKey, String)> = self
                        .resources
                        .iter()
                        .filter(|(_, r)| r.info.namespaced)
                        .flat_map(|(rk, r)| {
                            let prefix = format!("{ns}/");
                            r.objects
                                .range::<str, _>((
                                    Bound::Included(prefix.as_str()),
                                    Bound::Unbounded,
                                ))
                                .take_while(move |(k, _)| k.starts_with(&prefix))
                                .map(|(k, _)| (rk.clone(), k.clone()))
                                .collect::<Vec<_>>()
                        })
                        .collect();
                    for (rk, key) in contents {
                        if let Some(obj) = self.load(&rk, &key) {
                            let _ = self.delete(&rk, &key, obj, None, false);
                        }
                    }
                    self.finish_namespace(&ns);
                }
            }
        }
    }

    /// The owner with this uid is gone: dependents that have no other live owner are deleted,
    /// the others lose the dangling reference.
    fn collect_dependents(&mut self, uid: &str) {
        let Some(dependents) = self.dependents.get(uid).cloned() else {
            return;
        };
        for (rk, key) in dependents {
            let Some(obj) = self.load(&rk, &key) else {
                continue;
            };
            let namespace = key_namespace(&key);
            let others_alive =
                owner_refs(&obj).iter().any(|r| r.uid != uid && self.owner_exists(r, namespace));
            if others_alive {
                self.internal_update(&rk, &key, |o| remove_owner_ref(o, uid));
            } else if !is_deleting(&obj) {
                let _ = self.delete(&rk, &key, obj, None, false);
            }
        }
    }

    fn process_gc_finalizers(&mut self, rk: &ResourceKey, key: &str) {
        let Some(obj) = self.load(rk, key) else {
            return;
        };
        if !is_deleting(&obj) {
            return;
        }
        let uid = meta_str(&obj, "uid").unwrap_or_default().to_string();
        let list = finalizers(&obj);
        let dependents: Vec<(ResourceKey, String)> =
            self.dependents.get(&uid).map(|s| s.iter().cloned().collect()).unwrap_or_default();
        if list.iter().any(|f| f == "orphan") {
            for (drk, dkey) in &dependents {
                self.internal_update(drk, dkey, |o| remove_owner_ref(o, &uid));
            }
            self.internal_update(rk, key, |o| {
                let rest = finalizers(o).into_iter().filter(|f| f != "orphan").collect();
                set_finalizers(o, rest);
            });
        } else if list.iter().any(|f| f == "foregroundDeletion") {
            for (drk, dkey) in &dependents {
                if let Some(dependent) = self.load(drk, dkey)
                    && !is_deleting(&dependent)
                {
                    let _ = self.delete(drk, dkey, dependent, Some("Foreground"), false);
                }
            }
            // the owner waits for dependents that block its deletion
            let blocked = self
                .dependents
                .get(&uid)
                .map(|s| s.iter().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
                .iter()
                .any(|(drk, dkey)| {
                    self.load(drk, dkey).is_some_and(|d| {
                        owner_refs(&d).iter().any(|r| r.uid == uid && r.block_owner_deletion)
                    })
                });
            if !blocked {
                self.internal_update(rk, key, |o| {
                    let rest =
                        finalizers(o).into_iter().filter(|f| f != "foregroundDeletion").collect();
                    set_finalizers(o, rest);
                });
            }
        }
    }

    /// A terminating namespace disappears once nothing is left in it.
    fn finish_namespace(&mut self, ns: &str) {
        let nk = namespaces_key();
        let Some(namespace) = self.load(&nk, ns) else {
            return;
        };
        if !is_deleting(&namespace) {
            return;
        }
        let prefix = format!("{ns}/");
        // what is left, per resource, and the finalizers holding it
        let mut remaining: BTreeMap<String, usize> = BTreeMap::new();
        let mut finalizers_left: BTreeMap<String, usize> = BTreeMap::new();
        for r in self.resources.values().filter(|r| r.info.namespaced) {
            for (_, bytes) in r
                .objects
                .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(&prefix))
            {
                *remaining.entry(qualified(&r.info.plural, &r.info.group)).or_default() += 1;
                for finalizer in finalizers(&parse_object(bytes)) {
                    *finalizers_left.entry(finalizer).or_default() += 1;
                }
            }
        }
        if !remaining.is_empty() {
            let conditions = namespace_conditions(&namespace, &remaining, &finalizers_left);
            if namespace.get("status").and_then(|s| s.get("conditions")) != Some(&conditions) {
                let mut updated = namespace.clone();
                updated["status"]["conditions"] = conditions;
                self.commit(&nk, ns, Some(&namespace), updated, false);
            }
            return;
        }
        let mut finalized = namespace.clone();
        if let Some(spec) = finalized.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("finalizers".into(), json!([]));
        }
        if is_finalized(&nk, &finalized) {
            if let Some(spec) = finalized.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("finalizers");
            }
            self.commit(&nk, ns, Some(&namespace), finalized, true);
        } else if finalized != namespace {
            self.commit(&nk, ns, Some(&namespace), finalized, false);
        }
    }

    /// The objects of a resource as they were at `at` (the current state when `at` is now),
    /// from `start` on, in key order; undoing newer events from the window.
    fn snapshot(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        start: Option<&str>,
        at: u64,
    ) -> Vec<(String, Arc<[u8]>)> {
        let prefix = namespace.map(|ns| format!("{ns}/"));
        let lower = match (start, &prefix) {
            (Some(s), _) => s.to_string(),
            (None, Some(p)) => p.clone(),
            (None, None) => String::new(),
        };
        let in_scope = |k: &str| {
            prefix.as_ref().is_none_or(|p| k.starts_with(p.as_str())) && k >= lower.as_str()
        };
        let mut items: BTreeMap<String, Arc<[u8]>> = resource
            .objects
            .range::<str, _>((Bound::Included(lower.as_str()), Bound::Unbounded))
            .take_while(|(k, _)| prefix.as_ref().is_none_or(|p| k.starts_with(p.as_str())))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if at < self.rv {
            let first = self.events.partition_point(|e| e.rv <= at);
            let mut undone: HashMap<&str, Option<Arc<[u8]>>> = HashMap::new();
            for event in self.events.range(first..).rev() {
                if event.resource_id == resource.id && in_scope(&event.key) {
                    undone.insert(&event.key, event.previous.clone());
                }
            }
            for (key, previous) in undone {
                match previous {
                    Some(bytes) => {
                        items.insert(key.to_string(), bytes);
                    }
                    None => {
                        items.remove(key);
                    }
                }
            }
        }
        items.into_iter().collect()
    }
}

enum PageItems {
    /// selected while the lock was held
    Parsed(Vec<Value>),
    /// parsed after the lock is released (no selectors to evaluate)
    Raw(Vec<Arc<[u8]>>),
}

struct Page {
    items: PageItems,
    /// the last key looked at, where the next page starts
    last_key: Option<String>,
    /// keys after this page
    remaining: usize,
}

fn take_page<'a>(
    mut objects: impl Iterator<Item = (&'a str, &'a Arc<[u8]>)>,
    selectors: &Selectors,
    limit: Option<usize>,
) -> Page {
    let mut last_key = None;
    let items = if selectors.is_empty() {
        let mut raw = Vec::new();
        for (key, bytes) in objects.by_ref() {
            raw.push(bytes.clone());
            if limit.is_some_and(|l| raw.len() >= l) {
                last_key = Some(key.to_string());
                break;
            }
        }
        PageItems::Raw(raw)
    } else {
        let mut parsed = Vec::new();
        for (key, bytes) in objects.by_ref() {
            let object = parse_object(bytes);
            if selectors.matches(&object) {
                parsed.push(object);
                if limit.is_some_and(|l| parsed.len() >= l) {
                    last_key = Some(key.to_string());
                    break;
                }
            }
        }
        PageItems::Parsed(parsed)
    };
    Page {
        items,
        last_key,
        remaining: objects.count(),
    }
}

/// The namespace controller's conditions while content remains.
fn namespace_conditions(
    namespace: &Value,
    remaining: &BTreeMap<String, usize>,
    finalizers_left: &BTreeMap<String, usize>,
) -> Value {
    let previous =
        namespace.get("status").and_then(|s| s.get("conditions")).and_then(Value::as_array);
    let condition = |kind: &str, status: &str, reason: &str, message: String| {
        // keep the transition time while the status stays
        let since = previous
            .and_then(|p| p.iter().find(|c| c["type"] == kind && c["status"] == status))
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now_rfc3339()));
        json!({"type": kind, "status": status, "lastTransitionTime": since, "reason": reason, "message": message})
    };
    let counted = |items: &BTreeMap<String, usize>, joiner: &str| {
        items
            .iter()
            .map(|(name, count)| format!("{name}{joiner}{count} resource instances"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut conditions = vec![
        condition(
            "NamespaceDeletionDiscoveryFailure",
            "False",
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
        ),
        condition(
            "NamespaceDeletionGroupVersionParsingFailure",
            "False",
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
        ),
        condition(
            "NamespaceDeletionContentFailure",
            "False",
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into(),
        ),
        condition(
            "NamespaceContentRemaining",
            "True",
            "SomeResourcesRemain",
            format!(
                "Some resources are remaining: {}",
                counted(remaining, " has ")
            ),
        ),
    ];
    conditions.push(if finalizers_left.is_empty() {
        condition(
            "NamespaceFinalizersRemaining",
            "False",
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".into(),
        )
    } else {
        condition(
            "NamespaceFinalizersRemaining",
            "True",
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                counted(finalizers_left, " in ")
            ),
        )
    });
    Value::Array(conditions)
}

fn remove_owner_ref(obj: &mut Value, uid: &str) {
    let meta = meta::metadata_mut(obj);
    if let Some(Value::Array(refs)) = meta.get_mut("ownerReferences") {
        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
        if refs.is_empty() {
            meta.remove("ownerReferences");
        }
    }
}

fn conflict_error(conflicts: &[Conflict]) -> ApiError {
    let mut err = ApiError::new(409, "Conflict", conflict_message(conflicts));
    err.causes = conflicts
        .iter()
        .map(|c| Cause {
            reason: "FieldManagerConflict".into(),
            message: format!("conflict with {}", c.manager),
            field: c.field.clone(),
        })
        .collect();
    err
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    /// An empty store: no resources registered, no namespaces.
    pub fn new() -> Self {
        Store::with_config(StoreConfig::default())
    }

    pub fn with_config(config: StoreConfig) -> Self {
        Store {
            shared: Arc::new(Shared {
                state: RwLock::new(State::new(&config)),
                config,
            }),
        }
    }

    /// A store as a fresh cluster has it: the built-in resources and the initial namespaces.
    pub fn with_builtins(config: StoreConfig) -> Self {
        let store = Store::with_config(config);
        for info in builtin_resources() {
            store.register(info);
        }
        let namespaces =
            store.resource("", "namespaces").unwrap_or_else(|| builtin_resources().remove(0));
        for name in INITIAL_NAMESPACES {
            let _ = store.create(
                &namespaces,
                None,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
                &WriteOptions {
                    field_manager: Some("kube-apiserver".into()),
                    ..Default::default()
                },
            );
        }
        store
    }

    pub fn config(&self) -> &StoreConfig {
        &self.shared.config
    }

    /// Serves a resource (again): a re-registration replaces the info and keeps the objects.
    pub fn register(&self, info: ResourceInfo) {
        self.shared.state.write().register(info);
    }

    /// Stops serving a resource: its objects are deleted (with DELETED events) and its watches end.
    pub fn unregister(&self, group: &str, plural: &str) -> Option<ResourceInfo> {
        let mut state = self.shared.state.write();
        let resource = (group.to_string(), plural.to_string());
        let keys: Vec<String> = state.resources.get(&resource)?.objects.keys().cloned().collect();
        for key in keys {
            if let Some(old) = state.load(&resource, &key) {
                state.commit(&resource, &key, Some(&old), old.clone(), true);
            }
        }
        let removed = state.resources.remove(&resource)?;
        state.watchers.retain(|w| w.resource_id != removed.id);
        Some(removed.info)
    }

    pub fn resources(&self) -> Vec<ResourceInfo> {
        self.shared.state.read().resources.values().map(|r| r.info.clone()).collect()
    }

    pub fn resource(&self, group: &str, plural: &str) -> Option<ResourceInfo> {
        self.shared
            .state
            .read()
            .resources
            .get(&(group.to_string(), plural.to_string()))
            .map(|r| r.info.clone())
    }

    /// The current resourceVersion (the last write's).
    pub fn resource_version(&self) -> u64 {
        self.shared.state.read().rv
    }

    /// Number of stored objects, all resources together.
    pub fn object_count(&self) -> usize {
        self.shared.state.read().resources.values().map(|r| r.objects.len()).sum()
    }

    /// Bytes held by objects, keys and the event window (approximate: allocator overhead and
    /// the sharing of event payloads with stored objects are estimated).
    pub fn memory_estimate(&self) -> usize {
        let state = self.shared.state.read();
        let objects: usize = state
            .resources
            .values()
            .flat_map(|r| r.objects.iter())
            .map(|(k, v)| k.len() + v.len() + 64)
            .sum();
        // an event's new state is usually the stored object itself; what it keeps alive on
        // its own are superseded states
        let events: usize = state.events.iter().map(|e| e.key.len() + 128).sum();
        objects + events + state.window_bytes
    }

    fn key_of(info: &ResourceInfo) -> ResourceKey {
        (info.group.clone(), info.plural.clone())
    }

    pub fn get(&self, res: &ResourceInfo, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        let state = self.shared.state.read();
        let resource = Self::key_of(res);
        let info = state.info(&resource)?;
        let key = object_key(ns.filter(|_| info.namespaced), name);
        state
            .load(&resource, &key)
            .ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))
    }

    /// A `<Kind>List` with selectors, paging (`limit`/`continue`) and resourceVersion semantics.
    pub fn list(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<Value> {
        let state = self.shared.state.read();
        let resource_key = Self::key_of(res);
        let info = state.info(&resource_key)?;
        let selectors = Selectors::parse(
            opts.label_selector.as_deref(),
            opts.field_selector.as_deref(),
            selectable_fields(&info),
        )?;
        let namespace = ns.filter(|n| info.namespaced && !n.is_empty());
        let (at, start) = match opts.continue_token.as_deref().filter(|t| !t.is_empty()) {
            Some(token) => {
                let (rv, start) = decode_continue(token)?;
                if rv < state.window_start {
                    return Err(ApiError::new(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    ));
                }
                (rv, Some(start))
            }
            None => match opts.resource_version.as_deref().filter(|v| !v.is_empty() && *v != "0") {
                None => (state.rv, None),
                Some(text) => {
                    let requested = parse_rv(text)?;
                    if requested > state.rv {
                        return Err(too_large_rv(requested, state.rv));
                    }
                    if opts.resource_version_match.as_deref() == Some("Exact") {
                        if requested < state.window_start {
                            return Err(ApiError::new(
                                410,
                                "Expired",
                                "The resourceVersion for the provided list is too old.",
                            ));
                        }
                        (requested, None)
                    } else {
                        (state.rv, None)
                    }
                }
            },
        };
        let Some(resource) = state.resources.get(&resource_key) else {
            return Err(not_served());
        };
        let limit = opts.limit.filter(|l| *l > 0);
        let page = if at == state.rv {
            // the current state: walk the map without copying it
            let prefix = namespace.map(|ns| format!("{ns}/"));
            let lower = start.clone().or_else(|| prefix.clone()).unwrap_or_default();
            let range = resource
                .objects
                .range::<str, _>((Bound::Included(lower.as_str()), Bound::Unbounded))
                .take_while(|(k, _)| prefix.as_ref().is_none_or(|p| k.starts_with(p.as_str())))
                .map(|(k, v)| (k.as_str(), v));
            take_page(range, &selectors, limit)
        } else {
            let snapshot = state.snapshot(resource, namespace, start.as_deref(), at);
            take_page(
                snapshot.iter().map(|(k, v)| (k.as_str(), v)),
                &selectors,
                limit,
            )
        };
        drop(state);
        let items: Vec<Value> = match page.items {
            PageItems::Parsed(items) => items,
            PageItems::Raw(raw) => raw.iter().map(|b| parse_object(b)).collect(),
        };
        let mut list_meta = Map::new();
        list_meta.insert("resourceVersion".into(), json!(at.to_string()));
        if page.remaining > 0
            && let Some(last) = &page.last_key
        {
            list_meta.insert("continue".into(), json!(encode_continue(at, last)));
            if selectors.is_empty() {
                list_meta.insert("remainingItemCount".into(), json!(page.remaining));
            }
        }
        Ok(json!({
            "kind": info.list_kind,
            "apiVersion": group_version(&info),
            "metadata": list_meta,
            "items": items,
        }))
    }

    pub fn create(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<WriteResult> {
        let mut state = self.shared.state.write();
        state.create(&Self::key_of(res), ns, obj, opts, None)
    }

    /// PUT (or PUT on `/status` with `opts.subresource_status`).
    pub fn update(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<WriteResult> {
        let mut state = self.shared.state.write();
        state.update(&Self::key_of(res), ns, name, obj, opts)
    }

    /// PATCH of any type; server-side apply creates a missing object (`created` is then true).
    pub fn patch(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
        opts: &WriteOptions,
    ) -> ApiResult<WriteResult> {
        let mut state = self.shared.state.write();
        state.patch(&Self::key_of(res), ns, name, patch_type, body, opts)
    }

    pub fn delete(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<DeleteOutcome> {
        let mut state = self.shared.state.write();
        let resource = Self::key_of(res);
        let info = state.info(&resource)?;
        let key = object_key(ns.filter(|_| info.namespaced), name);
        let Some(old) = state.load(&resource, &key) else {
            return Err(ApiError::not_found(&info.group, &info.plural, name));
        };
        check_delete_options(&info, name, &old, opts)?;
        if resource == namespaces_key() && UNDELETABLE_NAMESPACES.contains(&name) {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
            )
            .with_details(name, "", "namespaces"));
        }
        state.delete(
            &resource,
            &key,
            old,
            opts.propagation_policy.as_deref(),
            opts.dry_run == DryRun::All,
        )
    }

    /// DELETE on a collection: deletes every selected object; answers the List of them.
    pub fn delete_collection(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> ApiResult<Value> {
        let mut state = self.shared.state.write();
        let resource_key = Self::key_of(res);
        let info = state.info(&resource_key)?;
        let selectors = Selectors::parse(
            list.label_selector.as_deref(),
            list.field_selector.as_deref(),
            selectable_fields(&info),
        )?;
        let namespace = ns.filter(|n| info.namespaced && !n.is_empty());
        let Some(resource) = state.resources.get(&resource_key) else {
            return Err(not_served());
        };
        let current = state.rv;
        let chosen: Vec<(String, Value)> = state
            .snapshot(resource, namespace, None, current)
            .into_iter()
            .map(|(k, b)| (k, parse_object(&b)))
            .filter(|(_, o)| selectors.matches(o))
            .collect();
        let mut items = Vec::new();
        for (key, old) in chosen {
            let name = meta_str(&old, "name").unwrap_or_default().to_string();
            if resource_key == namespaces_key() && UNDELETABLE_NAMESPACES.contains(&name.as_str()) {
                continue;
            }
            let last = old.clone();
            match state.delete(
                &resource_key,
                &key,
                old,
                opts.propagation_policy.as_deref(),
                opts.dry_run == DryRun::All,
            )? {
                DeleteOutcome::Pending(obj) => items.push(obj),
                DeleteOutcome::Deleted(_) => items.push(last),
            }
        }
        Ok(json!({
            "kind": info.list_kind,
            "apiVersion": group_version(&info),
            "metadata": {"resourceVersion": state.rv.to_string()},
            "items": items,
        }))
    }

    /// A watch. Too old resourceVersions give a stream with one ERROR event (410 Expired),
    /// never an error of the request.
    pub fn watch(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        opts: &WatchOptions,
    ) -> ApiResult<WatchStream> {
        let mut state = self.shared.state.write();
        let resource_key = Self::key_of(res);
        let info = state.info(&resource_key)?;
        let selectors = Selectors::parse(
            opts.label_selector.as_deref(),
            opts.field_selector.as_deref(),
            selectable_fields(&info),
        )?;
        let namespace = ns.filter(|n| info.namespaced && !n.is_empty());
        let from = match opts.resource_version.as_deref().filter(|v| !v.is_empty() && *v != "0") {
            None => None,
            Some(text) => Some(parse_rv(text)?),
        };
        if let Some(requested) = from {
            if requested > state.rv {
                return Err(too_large_rv(requested, state.rv));
            }
            if requested < state.window_start && !opts.send_initial_events {
                let expired = ApiError::new(
                    410,
                    "Expired",
                    format!(
                        "too old resource version: {requested} ({})",
                        state.window_start + 1
                    ),
                );
                return Ok(WatchStream::error(expired.to_status()));
            }
        }
        let Some(resource) = state.resources.get(&resource_key) else {
            return Err(not_served());
        };
        let resource_id = resource.id;
        let current = state.rv;
        let (initial, backlog) = match from {
            Some(requested) if !opts.send_initial_events => {
                let first = state.events.partition_point(|e| e.rv <= requested);
                let backlog: VecDeque<Arc<StoredEvent>> = state
                    .events
                    .range(first..)
                    .filter(|e| {
                        e.resource_id == resource_id
                            && namespace.is_none_or(|ns| e.namespace() == Some(ns))
                    })
                    .cloned()
                    .collect();
                (VecDeque::new(), backlog)
            }
            _ => {
                let initial = state
                    .snapshot(resource, namespace, None, current)
                    .into_iter()
                    .map(|(_, b)| b)
                    .collect();
                (initial, VecDeque::new())
            }
        };
        let (sender, receiver) = mpsc::channel(self.shared.config.watch_buffer.max(1));
        state.watchers.push(WatcherSlot {
            resource_id,
            namespace: namespace.map(str::to_string),
            sender,
        });
        Ok(WatchStream {
            shared: Arc::downgrade(&self.shared),
            api_version: group_version(&info),
            kind: info.kind.clone(),
            selectors,
            stored_objects: opts.stored_objects,
            initial,
            initial_end: opts.send_initial_events.then_some(current),
            backlog,
            receiver: Some(receiver),
            ready: VecDeque::new(),
            bookmark_interval: opts.allow_bookmarks.then_some(self.shared.config.bookmark_interval),
            bookmark_timer: None,
        })
    }

    /// Fault injection: ends every open watch (clients re-watch from their last resourceVersion).
    pub fn drop_watches(&self) {
        self.shared.state.write().watchers.clear();
    }

    /// Number of open watches.
    pub fn watch_count(&self) -> usize {
        let mut state = self.shared.state.write();
        state.watchers.retain(|w| !w.sender.is_closed());
        state.watchers.len()
    }

    /// Writes `.status` of an object as a controller does (Update on the status subresource).
    pub(crate) fn controller_status_write(
        &self,
        resource: &ResourceKey,
        key: &str,
        manager: &str,
        status: impl FnOnce(&Value) -> Option<Value>,
    ) {
        let mut state = self.shared.state.write();
        let Some(old) = state.load(resource, key) else {
            return;
        };
        let Some(new_status) = status(&old) else {
            return;
        };
        let mut new = old.clone();
        new["status"] = new_status;
        let opts = WriteOptions {
            subresource_status: true,
            ..Default::default()
        };
        let _ = state.finish_update(resource, key, old, new, &opts, None, manager);
    }

    /// Changes an object as a controller does (Update on the main resource, no admission).
    pub(crate) fn controller_write(
        &self,
        resource: &ResourceKey,
        key: &str,
        change: impl FnOnce(&mut Value),
    ) {
        let mut state = self.shared.state.write();
        state.internal_update(resource, key, change);
    }

    /// Deletes an object whose owners are all gone (the GC's absent-owner rule).
    pub(crate) fn collect_if_orphaned(&self, resource: &ResourceKey, key: &str) {
        let mut state = self.shared.state.write();
        let Some(obj) = state.load(resource, key) else {
            return;
        };
        let refs = owner_refs(&obj);
        if refs.is_empty() || is_deleting(&obj) {
            return;
        }
        let namespace = key_namespace(key);
        let alive: Vec<bool> = refs.iter().map(|r| state.owner_exists(r, namespace)).collect();
        if alive.iter().all(|a| !a) {
            let _ = state.delete(resource, key, obj, None, false);
        } else if alive.iter().any(|a| !a) {
            let dangling: Vec<String> =
                refs.iter().zip(&alive).filter(|(_, a)| !**a).map(|(r, _)| r.uid.clone()).collect();
            state.internal_update(resource, key, |o| {
                for uid in &dangling {
                    remove_owner_ref(o, uid);
                }
            });
        }
    }

    /// Runs the garbage collector's and namespace controller's work that is due by `now`.
    pub(crate) fn collect_garbage(&self, now: Instant) {
        self.shared.state.write().settle(now);
    }

    pub(crate) fn take_due_tasks(&self, now: Instant) -> Vec<ControllerTask> {
        let mut state = self.shared.state.write();
        let mut due = Vec::new();
        while state.controller_queue.front().is_some_and(|t| t.due <= now) {
            if let Some(task) = state.controller_queue.pop_front() {
                due.push(task);
            }
        }
        due
    }

    pub(crate) fn load(&self, resource: &ResourceKey, key: &str) -> Option<Value> {
        self.shared.state.read().load(resource, key)
    }
}

fn check_delete_options(
    info: &ResourceInfo,
    name: &str,
    obj: &Value,
    opts: &DeleteOptions,
) -> ApiResult<()> {
    if let Some(policy) = opts.propagation_policy.as_deref()
        && !matches!(policy, "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "DeleteOptions",
            "",
            vec![Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!(
                    "Unsupported value: \"{policy}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                ),
                field: "propagationPolicy".into(),
            }],
        ));
    }
    let on = qualified(&info.kind, &info.group);
    if let Some(uid) = opts.preconditions_uid.as_deref() {
        let actual = meta_str(obj, "uid").unwrap_or_default();
        if uid != actual {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {on} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
            )
            .with_details(name, &info.group, &info.plural));
        }
    }
    if let Some(rv) = opts.preconditions_resource_version.as_deref() {
        let actual = object_rv(obj).unwrap_or_default();
        if rv != actual {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {on} \"{name}\": the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({actual}). The object might have been modified"
                ),
            )
            .with_details(name, &info.group, &info.plural));
        }
    }
    Ok(())
}

/// Built-in kinds decode their quantity fields into `resource.Quantity`: they are stored in
/// canonical form (`1000m` as `1`), and one that does not parse fails the decoding.
fn canonicalize_quantities(info: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
    if !info.builtin {
        return Ok(());
    }
    let Some(fields) = quantity_fields(&info.group, &info.version, &info.kind) else {
        return Ok(());
    };
    fields.canonicalize(obj).map_err(|_| {
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            kind = info.kind,
            version = info.version,
        ))
    })
}

/// ObjectMeta validation of the total annotation size, on create and on every update.
fn annotations_check(info: &ResourceInfo, obj: &Value, name: &str) -> ApiResult<()> {
    match meta::annotations_size_error(obj) {
        Some(message) => Err(ApiError::invalid(
            &info.group,
            &info.kind,
            name,
            vec![Cause {
                reason: "FieldValueTooLong".into(),
                message,
                field: "metadata.annotations".into(),
            }],
        )),
        None => Ok(()),
    }
}
