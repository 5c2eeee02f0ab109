//! What a client of the API would observe of the store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::store::{
    Admission, DeleteOptions, DeleteOutcome, DryRun, ListOptions, PatchType, ResourceInfo,
    SchemaListType, Store, StoreConfig, WatchEvent, WatchOptions, WatchStream, WriteOptions,
};

fn config() -> StoreConfig {
    StoreConfig {
        bookmark_interval: Duration::from_millis(100),
        controller_delay: Duration::from_millis(100),
        ..Default::default()
    }
}

fn store() -> Store {
    Store::with_builtins(config())
}

fn builtin(store: &Store, group: &str, plural: &str) -> ResourceInfo {
    store.resource(group, plural).unwrap_or_else(|| panic!("{group}/{plural} is registered"))
}

fn widgets() -> ResourceInfo {
    ResourceInfo {
        group: "example.com".into(),
        version: "v1".into(),
        plural: "widgets".into(),
        singular: "widget".into(),
        kind: "Widget".into(),
        list_kind: "WidgetList".into(),
        namespaced: true,
        has_status: true,
        builtin: false,
        admission: None,
    }
}

fn store_with_widgets() -> (Store, ResourceInfo) {
    let store = store();
    store.register(widgets());
    (store, widgets())
}

fn manager(name: &str) -> WriteOptions {
    WriteOptions {
        field_manager: Some(name.into()),
        ..Default::default()
    }
}

fn widget(name: &str, size: i64) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": {"size": size}})
}

fn configmap(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

fn rv(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("resourceVersion in {obj}"))
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|items| {
            items.iter().map(|i| i["metadata"]["name"].as_str().unwrap_or("").to_string()).collect()
        })
        .unwrap_or_default()
}

fn create(store: &Store, res: &ResourceInfo, ns: &str, obj: Value) -> Value {
    store
        .create(res, Some(ns), obj, &manager("test"))
        .unwrap_or_else(|e| panic!("create failed: {e}"))
        .object
}

fn err<T: std::fmt::Debug>(result: ApiResult<T>) -> ApiError {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e,
    }
}

async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(2), stream.next())
        .await
        .unwrap_or_else(|_| panic!("no watch event within 2s"))
        .unwrap_or_else(|| panic!("watch ended"))
}

/// Next event that is not a bookmark.
async fn next_change(stream: &mut WatchStream) -> WatchEvent {
    loop {
        let event = next_event(stream).await;
        if event.event_type != "BOOKMARK" {
            return event;
        }
    }
}

async fn no_change_for(stream: &mut WatchStream, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return,
            Ok(None) => return,
            Ok(Some(event)) if event.event_type == "BOOKMARK" => continue,
            Ok(Some(event)) => panic!("unexpected {} {}", event.event_type, event.object),
        }
    }
}

// ---------------------------------------------------------------- create and metadata

#[test]
fn create_fills_system_metadata() {
    let (store, widgets) = store_with_widgets();
    let before = store.resource_version();
    let w = create(&store, &widgets, "default", widget("w1", 3));
    let meta = &w["metadata"];
    assert_eq!(meta["namespace"], "default");
    assert_eq!(meta["generation"], 1);
    assert_eq!(meta["uid"].as_str().map(str::len), Some(36));
    let created = meta["creationTimestamp"].as_str().unwrap_or_default();
    assert_eq!(created.len(), "2025-01-01T00:00:00Z".len(), "{created}");
    assert!(created.ends_with('Z'));
    assert_eq!(rv(&w), before + 1);
    assert_eq!(w["apiVersion"], "example.com/v1");
    let entry = &meta["managedFields"][0];
    assert_eq!(entry["manager"], "test");
    assert_eq!(entry["operation"], "Update");
    assert_eq!(entry["apiVersion"], "example.com/v1");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert_eq!(
        entry["fieldsV1"],
        json!({"f:spec": {".": {}, "f:size": {}}})
    );
    assert!(entry["time"].is_string());
    assert_eq!(store.get(&widgets, Some("default"), "w1").ok(), Some(w));
}

#[test]
fn configmaps_have_no_generation_and_record_data_ownership() {
    let store = store();
    let cms = builtin(&store, "", "configmaps");
    let cm = create(&store, &cms, "default", configmap("c1", json!({"a": "1"})));
    assert!(cm["metadata"].get("generation").is_none());
    assert_eq!(
        cm["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:labels": {".": {}, "f:a": {}}}})
    );
}

#[test]
fn generate_name_appends_five_characters() {
    let store = store();
    let cms = builtin(&store, "", "configmaps");
    let cm = create(
        &store,
        &cms,
        "default",
        json!({"metadata": {"generateName": "cfg-"}, "data": {}}),
    );
    let name = cm["metadata"]["name"].as_str().unwrap_or_default();
    assert!(name.starts_with("cfg-") && name.len() == 9, "{name}");
    assert_eq!(cm["kind"], "ConfigMap");
}

#[test]
fn create_errors_are_worded_as_the_apiserver() {
    let (store, widgets) = store_with_widgets();
    create(&store, &widgets, "default", widget("w1", 1));
    let e = err(store.create(&widgets, Some("default"), widget("w1", 1), &manager("t")));
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(e.message, "widgets.example.com \"w1\" already exists");

    let e = err(store.create(&widgets, Some("nope"), widget("w2", 1), &manager("t")));
    assert_eq!(
        (e.code, e.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );

    let e = err(store.create(
        &widgets,
        Some("default"),
        widget("Bad_Name", 1),
        &manager("t"),
    ));
    assert_eq!(e.code, 422);
    assert!(
        e.message.starts_with(
            "Widget.example.com \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
        ),
        "{}",
        e.message
    );

    let e = err(store.create(
        &widgets,
        Some("default"),
        json!({"metadata": {}}),
        &manager("t"),
    ));
    assert_eq!(
        e.message,
        "Widget.example.com \"\" is invalid: metadata.name: Required value: name or generateName is required"
    );

    let mut other_ns = widget("w3", 1);
    other_ns["metadata"]["namespace"] = json!("kube-system");
    let e = err(store.create(&widgets, Some("default"), other_ns, &manager("t")));
    assert_eq!(e.code, 400);
}

#[test]
fn a_subdomain_name_may_be_longer_than_63_characters_up_to_253() {
    let (store, widgets) = store_with_widgets();
    // IsDNS1123Subdomain limits the whole name, not its dot-separated parts.
    create(&store, &widgets, "default", widget(&"a".repeat(100), 1));
    create(
        &store,
        &widgets,
        "default",
        widget(&format!("{}.b", "a".repeat(251)), 1),
    );
    let e = err(store.create(
        &widgets,
        Some("default"),
        widget(&"a".repeat(254), 1),
        &manager("t"),
    ));
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains("must be no more than 253 characters"),
        "{}",
        e.message
    );
    // Namespace names are labels: 63 at most.
    let namespaces = builtin(&store, "", "namespaces");
    let e = err(store.create(
        &namespaces,
        None,
        json!({"metadata": {"name": "n".repeat(64)}}),
        &manager("t"),
    ));
    assert!(
        e.message.contains("must be no more than 63 characters"),
        "{}",
        e.message
    );
}

#[test]
fn annotations_over_256_kib_in_total_are_refused_on_create_and_update() {
    let (store, widgets) = store_with_widgets();
    // Keys count too: exactly at the limit is accepted, one byte more is not.
    let at_limit = "x".repeat(256 * 1024 - 2);
    let mut fits = widget("w1", 1);
    fits["metadata"]["annotations"] = json!({"a": at_limit, "b": ""});
    create(&store, &widgets, "default", fits);

    let mut too_big = widget("w2", 1);
    too_big["metadata"]["annotations"] = json!({"a": at_limit, "bb": ""});
    let e = err(store.create(&widgets, Some("default"), too_big, &manager("t")));
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        e.message,
        "Widget.example.com \"w2\" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes"
    );
    assert_eq!(e.causes[0].field, "metadata.annotations");
    assert_eq!(e.causes[0].reason, "FieldValueTooLong");

    let grow = json!({"metadata": {"annotations": {"c": "y"}}});
    let e = err(store.patch(
        &widgets,
        Some("default"),
        "w1",
        PatchType::Merge,
        grow.to_string().as_bytes(),
        &manager("t"),
    ));
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains("metadata.annotations: Too long"),
        "{}",
        e.message
    );
}

#[test]
fn create_refuses_a_resource_version() {
    let store = store();
    let cms = builtin(&store, "", "configmaps");
    let mut cm = configmap("c", json!({}));
    cm["metadata"]["resourceVersion"] = json!("12");
    let e = err(store.create(&cms, Some("default"), cm, &manager("m")));
    assert_eq!((e.code, e.reason.as_str()), (500, "InternalError"));
    assert_eq!(
        e.message,
        "Internal error occurred: resourceVersion should not be set on objects to be created"
    );
}

#[tokio::test]
async fn the_event_window_is_bounded_in_bytes() {
    let store = Store::with_builtins(StoreConfig {
        event_window_bytes: 2_000,
        ..config()
    });
    let cms = builtin(&store, "", "configmaps");
    let first = create(&store, &cms, "default", configmap("c", json!({})));
    for i in 0..20 {
        let body = format!(r#"{{"data":{{"k":"{i}"}}}}"#);
        store
            .patch(
                &cms,
                Some("default"),
                "c",
                PatchType::Merge,
                body.as_bytes(),
                &manager("m"),
            )
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut watch = store
        .watch(
            &cms,
            None,
            &WatchOptions {
                resource_version: Some(rv(&first).to_string()),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next_event(&mut watch).await.event_type, "ERROR");
    let recent = (store.resource_version() - 1).to_string();
    let mut watch = store
        .watch(
            &cms,
            None,
            &WatchOptions {
                resource_version: Some(recent),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next_event(&mut watch).await.event_type, "MODIFIED");
}

#[test]
fn resource_version_grows_on_every_write_and_lists_report_it() {
    let store = store();
    let cms = builtin(&store, "", "configmaps");
    let a = create(&store, &cms, "default", configmap("a", json!({})));
    let mut b = a.clone();
    b["data"]["k"] = json!("changed");
    let b = store
        .update(&cms, Some("default"), "a", b, &manager("t"))
        .map(|r| r.object)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(rv(&b) > rv(&a));
    let list = store
        .list(&cms, Some("default"), &ListOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        list["metadata"]["resourceVersion"],
        json!(store.resource_version().to_string())
    );
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["apiVersion"], "v1");
    let empty = store
        .list(&cms, Some("kube-public"), &ListOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(empty["items"], json!([]));
}

// ---------------------------------------------------------------- update

#[test]
fn update_checks_resource_version() {
    let (store, widgets) = store_with_widgets();
    let w = create(&store, &widgets, "default", widget("w1", 1));
    let mut stale = w.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    let e = err(store.update(&widgets, Some("default"), "w1", stale, &manager("t")));
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        e.message,
        "Operation cannot be fulfilled on widgets.example.com \"w1\": the object has been modified; please apply your changes to the latest version and try again"
    );

    let mut unconditional = w.clone();
    unconditional["metadata"].as_object_mut().map(|m| m.remove("resourceVersion"));
    let e = err(store.update(
        &widgets,
        Some("default"),
        "w1",
        unconditional,
        &manager("t"),
    ));
    assert_eq!(
        e.message,
        "widgets.example.com \"w1\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
    );

    let e = err(store.update(
        &widgets,
        Some("default"),
        "missing",
        widget("missing", 1),
        &manager("t"),
    ));
    assert_eq!(e.code, 404);

    // built-ins allow unconditional updates
    let cms = builtin(&store, "", "configmaps");
    create(&store, &cms, "default", configmap("c", json!({})));
    assert!(
        store
            .update(
                &cms,
                Some("default"),
                "c",
                configmap("c", json!({"x": "y"})),
                &manager("t")
            )
            .is_ok()
    );
}

#[test]
fn generation_tracks_spec_only_and_status_is_a_subresource() {
    let (store, widgets) = store_with_widgets();
    let w = create(&store, &widgets, "default", widget("w1", 1));

    // metadata change: generation stays
    let mut labelled = w.clone();
    labelled["metadata"]["labels"] = json!({"a": "b"});
    let labelled = store
        .update(&widgets, Some("default"), "w1", labelled, &manager("t"))
        .map(|r| r.object)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(labelled["metadata"]["generation"], 1);
    assert!(rv(&labelled) > rv(&w));

    // status through the main resource is ignored
    let mut with_status = labelled.clone();
    with_status["status"] = json!({"ready": true});
    let same = store
        .update(
            &widgets,
            Some("default"),
            "w1",
            with_status.clone(),
            &manager("t"),
        )
        .map(|r| r.object)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(same.get("status").is_none());
    assert_eq!(
        rv(&same),
        rv(&labelled),
        "a write that changes nothing is no write"
    );

    // status through /status: only status is taken, generation unchanged
    let mut status_write = with_status.clone();
    status_write["spec"]["size"] = json!(99);
    status_write["metadata"]["labels"] = json!({"ignored": "yes"});
    let status_opts = WriteOptions {
        subresource_status: true,
        field_manager: Some("ctrl".into()),
        ..Default::default()
    };
    let after = store
        .update(&widgets, Some("default"), "w1", status_write, &status_opts)
        .map(|r| r.object)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after["status"], json!({"ready": true}));
    assert_eq!(after["spec"]["size"], 1);
    assert_eq!(after["metadata"]["labels"], json!({"a": "b"}));
    assert_eq!(after["metadata"]["generation"], 1);
    let status_entry = after["metadata"]["managedFields"]
        .as_array()
        .and_then(|m| m.iter().find(|e| e["manager"] == "ctrl").cloned())
        .unwrap_or_default();
    assert_eq!(status_entry["subresource"], "status");
    assert_eq!(
        status_entry["fieldsV1"],
        json!({"f:status": {".": {}, "f:ready": {}}})
    );

    // spec change: generation + 1, status kept
    let mut resized = after.clone();
    resized["spec"]["size"] = json!(2);
    let resized = store
        .update(&widgets, Some("default"), "w1", resized, &manager("t"))
        .map(|r| r.object)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resized["metadata"]["generation"], 2);
    assert_eq!(resized["status"], json!({"ready": true}));
}

#[test]
fn uid_and_creation_timestamp_are_immutable() {
    let (store, widgets) = store_with_widgets();
    let w = create(&store, &widgets, "default", widget("w1", 1));
    let mut changed = w.clone();
    changed["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000000");
    changed["metadata"]["creationTimestamp"] = json!("2000-01-01T00:00:00Z");
    changed["spec"]["size"] = json!(5);
    let after = store
        .update(&widgets, Some("default"), "w1", changed, &manager("t"))
        .map(|r| r.object)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after["metadata"]["uid"], w["metadata"]["uid"]);
    assert_eq!(
        after["metadata"]["creationTimestamp"],
        w["metadata"]["creationTimestamp"]
    );
}

// ---------------------------------------------------------------- list, selectors, paging

fn labelled_configmaps(store: &Store) -> ResourceInfo {
    let cms = builtin(store, "", "configmaps");
    let ns = builtin(store, "", "namespaces");
    create(store, &ns, "", json!({"metadata": {"name": "a-b"}}));
    create(
        store,
        &cms,
        "default",
        configmap("one", json!({"tier": "web", "n": "1"})),
    );
    create(
        store,
        &cms,
        "default",
        configmap("two", json!({"tier": "db", "n": "7"})),
    );
    create(
        store,
        &cms,
        "kube-system",
        configmap("three", json!({"n": "3"})),
    );
    create(
        store,
        &cms,
        "a-b",
        configmap("four", json!({"tier": "web", "canary": ""})),
    );
    cms
}

fn select(
    store: &Store,
    res: &ResourceInfo,
    ns: Option<&str>,
    labels: &str,
    fields: &str,
) -> ApiResult<Vec<String>> {
    let opts = ListOptions {
        label_selector: (!labels.is_empty()).then(|| labels.to_string()),
        field_selector: (!fields.is_empty()).then(|| fields.to_string()),
        ..Default::default()
    };
    store.list(res, ns, &opts).map(|l| names(&l))
}

#[test]
fn lists_are_in_etcd_key_order() {
    let store = store();
    let cms = labelled_configmaps(&store);
    // "a-b/four" sorts before "default/..." and "kube-system/..."
    assert_eq!(
        select(&store, &cms, None, "", "").ok(),
        Some(vec![
            "four".into(),
            "one".into(),
            "two".into(),
            "three".into()
        ])
    );
}

#[test]
fn label_selectors() {
    let store = store();
    let cms = labelled_configmaps(&store);
    let cases = [
        ("tier=web", vec!["four", "one"]),
        ("tier==web", vec!["four", "one"]),
        ("tier!=web", vec!["two", "three"]),
        ("tier in (db, web)", vec!["four", "one", "two"]),
        ("tier notin (web)", vec!["two", "three"]),
        ("tier", vec!["four", "one", "two"]),
        ("!tier", vec!["three"]),
        ("n>2", vec!["two", "three"]),
        ("n<2", vec!["one"]),
        ("tier=web,n=1", vec!["one"]),
        ("canary=", vec!["four"]),
    ];
    for (selector, expected) in cases {
        let got =
            select(&store, &cms, None, selector, "").unwrap_or_else(|e| panic!("{selector}: {e}"));
        assert_eq!(got, expected, "selector {selector}");
    }
    for bad in ["tier in web", "a=(b", "n>x", "=x"] {
        let e = err(select(&store, &cms, None, bad, ""));
        assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"), "{bad}");
    }
}

#[test]
fn field_selectors() {
    let store = store();
    let cms = labelled_configmaps(&store);
    assert_eq!(
        select(&store, &cms, None, "", "metadata.name=two").ok(),
        Some(vec!["two".into()])
    );
    assert_eq!(
        select(&store, &cms, None, "", "metadata.namespace==default").ok(),
        Some(vec!["one".into(), "two".into()])
    );
    assert_eq!(
        select(
            &store,
            &cms,
            None,
            "",
            "metadata.namespace!=default,metadata.name!=four"
        )
        .ok(),
        Some(vec!["three".into()])
    );
    let e = err(select(&store, &cms, None, "", "spec.foo=bar"));
    assert_eq!(
        (e.code, e.message.as_str()),
        (400, "field label not supported: spec.foo")
    );
    let secrets = builtin(&store, "", "secrets");
    create(
        &store,
        &secrets,
        "default",
        json!({"metadata": {"name": "s"}, "type": "Opaque"}),
    );
    assert_eq!(
        select(&store, &secrets, None, "", "type=Opaque").ok(),
        Some(vec!["s".into()])
    );
}

#[test]
fn paging_with_continue_tokens_reads_one_snapshot() {
    let store = store();
    let cms = builtin(&store, "", "configmaps");
    for i in 0..5 {
        create(
            &store,
            &cms,
            "default",
            configmap(&format!("cm{i}"), json!({})),
        );
    }
    let page = |token: Option<String>| {
        store
            .list(
                &cms,
                Some("default"),
                &ListOptions {
                    limit: Some(2),
                    continue_token: token,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let first = page(None);
    assert_eq!(names(&first), ["cm0", "cm1"]);
    assert_eq!(first["metadata"]["remainingItemCount"], 3);
    let snapshot_rv = first["metadata"]["resourceVersion"].clone();

    // changes after the first page are not seen by later pages
    create(&store, &cms, "default", configmap("cm9", json!({})));
    store
        .delete(&cms, Some("default"), "cm3", &DeleteOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));

    let token = first["metadata"]["continue"].as_str().map(str::to_string);
    let second = page(token);
    assert_eq!(names(&second), ["cm2", "cm3"]);
    assert_eq!(second["metadata"]["resourceVersion"], snapshot_rv);
    assert_eq!(second["metadata"]["remainingItemCount"], 1);
    let third = page(second["metadata"]["continue"].as_str().map(str::to_string));
    assert_eq!(names(&third), ["cm4"]);
    assert!(third["metadata"].get("continue").is_none());

    let e = err(store.list(
        &cms,
        None,
        &ListOptions {
            continue_token: Some("garbage!".into()),
            ..Default::default()
        },
    ));
    assert_eq!(e.code, 400);

    // with selectors: no remainingItemCount
    let filtered = store
        .list(
            &cms,
            None,
            &ListOptions {
                limit: Some(1),
                label_selector: Some("!x".into()),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(filtered["metadata"].get("remainingItemCount").is_none());
    assert!(filtered["metadata"]["continue"].is_string());
}

#[test]
fn list_resource_version_semantics() {
    let store = store();
    let cms = builtin(&store, "", "configmaps");
    let a = create(&store, &cms, "default", configmap("a", json!({})));
    create(&store, &cms, "default", configmap("b", json!({})));
    let exact = store
        .list(
            &cms,
            None,
            &ListOptions {
                resource_version: Some(rv(&a).to_string()),
                resource_version_match: Some("Exact".into()),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(names(&exact), ["a"]);
    let future = (store.resource_version() + 10).to_string();
    let e = err(store.list(
        &cms,
        None,
        &ListOptions {
            resource_version: Some(future),
            ..Default::default()
        },
    ));
    assert_eq!((e.code, e.reason.as_str()), (504, "Timeout"));
}

// ---------------------------------------------------------------- patches

#[test]
fn json_patch_supports_the_kube_rs_finalizer_helper() {
    let (store, widgets) = store_with_widgets();
    create(&store, &widgets, "default", widget("w1", 1));
    let add = json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.com/cleanup"]}
    ]);
    let patched = store
        .patch(
            &widgets,
            Some("default"),
            "w1",
            PatchType::Json,
            add.to_string().as_bytes(),
            &WriteOptions::default(),
        )
        .map(|r| r.object)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        patched["metadata"]["finalizers"],
        json!(["example.com/cleanup"])
    );

    // the same test now fails: 422 with the generic text
    let e = err(store.patch(
        &widgets,
        Some("default"),
        "w1",
        PatchType::Json,
        add.to_string().as_bytes(),
        &WriteOptions::default(),
    ));
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        e.message,
        "the server rejected our request due to an error in our request"
    );

    let append = json!([
        {"op": "test", "path": "/metadata/finalizers", "value": ["example.com/cleanup"]},
        {"op": "add", "path": "/metadata/finalizers/-", "value": "second"}
    ]);
    let patched = store
        .patch(
            &widgets,
            Some("default"),
            "w1",
            PatchType::Json,
            append.to_string().as_bytes(),
            &WriteOptions::default(),
        )
        .map(|r| r.object)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        patched["metadata"]["finalizers"],
        json!(["example.com/cleanup", "second"])
    );

    let remove = json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "example.com/cleanup"},
        {"op": "remove", "path": "/metadata/finalizers/0"}
    ]);
    let patched = store
        .patch(
            &widgets,
            Some("default"),
            "w1",
            PatchType::Json,
            remove.to_string().as_bytes(),
            &WriteOptions::default(),
        )
        .map(|r| r.object)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(patched["metadata"]["finalizers"], json!(["second"]));

    let e = err(store.patch(
        &widgets,
        Some("default"),
        "w1",
        PatchType::Json,
        b"not json",
        &WriteOptions::default(),
    ));
    assert_eq!(e.code, 400);
}

#[test]
fn merge_patch_and_conditional_patches() {
    let (store, widgets) = store_with_widgets();
    let w = create(&store, &widgets, "default", widget("w1", 1));
    let body = json!({"spec": {"size": null, "color": "red"}, "metadata": {"labels": {"x": "y"}}});
    let patched = store
        .patch(
            &widgets,
            Some("default"),
            "w1",
            PatchType::Merge,
            body.to_string().as_bytes(),
            &manager("p"),
        )
        .map(|r| r.object)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(patched["spec"], json!({"color": "red"}));
    assert_eq!(patched["metadata"]["labels"], json!({"x": "y"}));
    assert_eq!(patched["metadata"]["generation"], 2);

    let stale = json!({"metadata": {"resourceVersion": w["metadata"]["resourceVersion"]}, "spec": {"size": 4}});
    let e = err(store.patch(
        &widgets,
        Some("default"),
        "w1",
        PatchType::Merge,
        stale.to_string().as_bytes(),
        &manager("p"),
    ));
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));

    let e = err(store.patch(
        &widgets,
        Some("default"),
        "absent",
        PatchType::Merge,
        b"{}",
        &manager("p"),
    ));
    assert_eq!(e.code, 404);

    let e = err(store.patch(
        &widgets,
        Some("default"),
        "w1",
        PatchType::StrategicMerge,
        b"{}",
        &manager("p"),
    ));
    assert_eq!((e.code, e.reason.as_str()), (415, "UnsupportedMediaType"));
    assert_eq!(
        e.message,
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    );

    let forced = WriteOptions {
        force: true,
        ..manager("p")
    };
    let e = err(store.patch(
        &widgets,
        Some("default"),
        "w1",
        PatchType::Merge,
        b"{}",
        &forced,
    ));
    assert_eq!(
        e.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
    );
}

#[test]
fn strategic_merge_patch_merges_built_in_lists_by_key() {
    let store = store();
    let deployments = builtin(&store, "apps", "deployments");
    let d = json!({
        "metadata": {"name": "web", "finalizers": ["a"]},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "side:1"}
        ]}}}
    });
    create(&store, &deployments, "default", d);
    let patch = json!({
        "metadata": {"finalizers": ["b"]},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [
                {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}], "ports": [{"containerPort": 81}]},
                {"name": "sidecar", "$patch": "delete"}
            ]
        }}}
    });
    let patched = store
        .patch(
            &deployments,
            Some("default"),
            "web",
            PatchType::StrategicMerge,
            patch.to_string().as_bytes(),
            &manager("kubectl-patch"),
        )
        .map(|r| r.object)
        .unwrap_or_else(|e| panic!("{e}"));
    let containers = &patched["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().map(Vec::len), Some(1));
    assert_eq!(containers[0]["image"], "app:2");
    assert_eq!(
        containers[0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    );
    assert_eq!(
        containers[0]["ports"],
        json!([{"containerPort": 80}, {"containerPort": 81}])
    );
    assert_eq!(patched["metadata"]["finalizers"], json!(["a", "b"]));
    assert_eq!(patched["metadata"]["generation"], 2);

    // other lists are replaced
    let cms = builtin(&store, "", "configmaps");
    create(&store, &cms, "default", configmap("c", json!({})));
    let patched = store
        .patch(
            &cms,
            Some("default"),
            "c",
            PatchType::StrategicMerge,
            br#"{"data":{"k":null,"n":"1"}}"#,
            &manager("p"),
        )
        .map(|r| r.object)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(patched["data"], json!({"n": "1"}));
}

// ---------------------------------------------------------------- server-side apply

fn apply(
    store: &Store,
    res: &ResourceInfo,
    name: &str,
    body: Value,
    mgr: &str,
    force: bool,
) -> ApiResult<Value> {
    let opts = WriteOptions {
        field_manager: Some(mgr.into()),
        force,
        ..Default::default()
    };
    store
        .patch(
            res,
            Some("default"),
            name,
            PatchType::Apply,
            body.to_string().as_bytes(),
            &opts,
        )
        .map(|r| r.object)
}

fn entry(obj: &Value, mgr: &str, operation: &str) -> Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .and_then(|entries| {
            entries.iter().find(|e| e["manager"] == mgr && e["operation"] == operation).cloned()
        })
        .unwrap_or(Value::Null)
}

#[test]
fn apply_creates_and_records_ownership() {
    let (store, widgets) = store_with_widgets();
    let opts = manager("kubectl");
    let result = store
        .patch(
            &widgets,
            Some("default"),
            "w1",
            PatchType::Apply,
            widget("w1", 3).to_string().as_bytes(),
            &opts,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(result.created);
    let applied = entry(&result.object, "kubectl", "Apply");
    assert_eq!(applied["fieldsV1"], json!({"f:spec": {"f:size": {}}}));
    assert_eq!(applied["apiVersion"], "example.com/v1");
    assert!(applied["time"].is_string());

    // re-applying the same configuration is no write
    let again = store
        .patch(
            &widgets,
            Some("default"),
            "w1",
            PatchType::Apply,
            widget("w1", 3).to_string().as_bytes(),
            &opts,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!again.created);
    assert_eq!(rv(&again.object), rv(&result.object));

    // YAML bodies are accepted too
    let yaml =
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 4\n";
    let updated = store
        .patch(
            &widgets,
            Some("default"),
            "w1",
            PatchType::Apply,
            yaml.as_bytes(),
            &opts,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(updated.object["spec"]["size"], 4);
    assert_eq!(updated.object["metadata"]["generation"], 2);
}

#[test]
fn apply_conflicts_force_and_shared_ownership() {
    let (store, widgets) = store_with_widgets();
    apply(&store, &widgets, "w1", widget("w1", 3), "first", false)
        .unwrap_or_else(|e| panic!("{e}"));

    // the same value: shared ownership, no conflict
    let shared = apply(&store, &widgets, "w1", widget("w1", 3), "second", false)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        entry(&shared, "second", "Apply")["fieldsV1"],
        json!({"f:spec": {"f:size": {}}})
    );

    let e = err(apply(
        &store,
        &widgets,
        "w1",
        widget("w1", 5),
        "third",
        false,
    ));
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        e.message,
        "Apply failed with 2 conflicts: conflict with \"first\": .spec.size\nconflict with \"second\": .spec.size"
    );
    assert_eq!(e.causes[0].reason, "FieldManagerConflict");
    assert_eq!(e.causes[0].field, ".spec.size");
    assert_eq!(e.causes[0].message, "conflict with \"first\"");

    let forced = apply(&store, &widgets, "w1", widget("w1", 5), "third", true)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(forced["spec"]["size"], 5);
    assert_eq!(
        entry(&forced, "first", "Apply"),
        Value::Null,
        "first lost its only field"
    );
    assert_eq!(
        entry(&forced, "third", "Apply")["fieldsV1"],
        json!({"f:spec": {"f:size": {}}})
    );
}

#[test]
fn apply_conflicts_with_update_managers() {
    let (store, widgets) = store_with_widgets();
    create(&store, &widgets, "default", widget("w1", 1));
    let e = err(apply(
        &store,
        &widgets,
        "w1",
        widget("w1", 2),
        "applier",
        false,
    ));
    assert_eq!(
        e.message,
        "Apply failed with 1 conflict: conflict with \"test\" using example.com/v1: .spec.size"
    );
}

#[test]
fn apply_removes_fields_no_longer_applied() {
    let (store, widgets) = store_with_widgets();
    let mut config = widget("w1", 1);
    config["spec"]["color"] = json!("red");
    config["metadata"]["labels"] = json!({"a": "1", "b": "2"});
    apply(&store, &widgets, "w1", config, "mgr", false).unwrap_or_else(|e| panic!("{e}"));

    // another manager also owns color (same value): it stays when mgr stops applying it
    let mut other = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"color": "red"}});
    apply(&store, &widgets, "w1", other.clone(), "other", false).unwrap_or_else(|e| panic!("{e}"));

    let mut reduced = widget("w1", 1);
    reduced["metadata"]["labels"] = json!({"a": "1"});
    let after =
        apply(&store, &widgets, "w1", reduced, "mgr", false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after["metadata"]["labels"], json!({"a": "1"}));
    assert_eq!(after["spec"], json!({"size": 1, "color": "red"}));

    other["spec"] = json!({});
    let after =
        apply(&store, &widgets, "w1", other, "other", false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after["spec"], json!({"size": 1}));
}

#[test]
fn apply_merges_built_in_containers_by_name() {
    let store = store();
    let deployments = builtin(&store, "apps", "deployments");
    let base = |containers: Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"template": {"spec": {"containers": containers}}}})
    };
    apply(
        &store,
        &deployments,
        "web",
        base(json!([{"name": "app", "image": "app:1"}])),
        "a",
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let both = apply(
        &store,
        &deployments,
        "web",
        base(json!([{"name": "side", "image": "side:1"}])),
        "b",
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        both["spec"]["template"]["spec"]["containers"],
        json!([{"name": "app", "image": "app:1"}, {"name": "side", "image": "side:1"}])
    );
    assert_eq!(
        entry(&both, "b", "Apply")["fieldsV1"],
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"side\"}": {".": {}, "f:image": {}, "f:name": {}}
        }}}}})
    );
    let e = err(apply(
        &store,
        &deployments,
        "web",
        base(json!([{"name": "app", "image": "app:2"}])),
        "b",
        false,
    ));
    assert_eq!(
        e.message,
        "Apply failed with 1 conflict: conflict with \"a\": .spec.template.spec.containers[name=\"app\"].image"
    );
}

#[test]
fn endpoint_slice_ports_and_endpoints_are_atomic_lists() {
    let store = store();
    let slices = builtin(&store, "discovery.k8s.io", "endpointslices");
    let slice = |ports: Value, endpoints: Value| {
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": "seeds"}, "addressType": "IPv4",
               "ports": ports, "endpoints": endpoints})
    };
    let ep = |ip: &str| json!([{"addresses": [ip]}]);
    apply(
        &store,
        &slices,
        "seeds",
        slice(
            json!([{"name": "a", "port": 1, "protocol": "TCP"}]),
            ep("10.0.0.1"),
        ),
        "a",
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // another manager's list conflicts as a whole, not item by item
    let e = err(apply(
        &store,
        &slices,
        "seeds",
        slice(
            json!([{"name": "b", "port": 2, "protocol": "TCP"}]),
            ep("10.0.0.2"),
        ),
        "b",
        false,
    ));
    assert_eq!(e.code, 409);
    assert_eq!(
        e.message,
        "Apply failed with 2 conflicts: conflicts with \"a\":\n- .endpoints\n- .ports"
    );
    // forced, it replaces the whole list and takes it over
    let taken = apply(
        &store,
        &slices,
        "seeds",
        slice(
            json!([{"name": "b", "port": 2, "protocol": "TCP"}]),
            ep("10.0.0.2"),
        ),
        "b",
        true,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        taken["ports"],
        json!([{"name": "b", "port": 2, "protocol": "TCP"}])
    );
    assert_eq!(taken["endpoints"], json!([{"addresses": ["10.0.0.2"]}]));
    assert_eq!(
        entry(&taken, "b", "Apply")["fieldsV1"],
        json!({"f:addressType": {}, "f:endpoints": {}, "f:ports": {}})
    );
    assert_eq!(
        entry(&taken, "a", "Apply")["fieldsV1"],
        json!({"f:addressType": {}})
    );
    // a strategic merge patch replaces the list as well (no patch strategy)
    let patched = store
        .patch(
            &slices,
            Some("default"),
            "seeds",
            PatchType::StrategicMerge,
            br#"{"ports":[{"name":"c","port":3}]}"#,
            &manager("kubectl"),
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .object;
    assert_eq!(patched["ports"], json!([{"name": "c", "port": 3}]));
}

#[test]
fn built_in_quantities_are_stored_in_canonical_form() {
    let (store, widgets) = store_with_widgets();
    let deployments = builtin(&store, "apps", "deployments");
    let web = |cpu: Value, memory: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:1",
                   "resources": {"limits": {"cpu": cpu, "memory": memory},
                                 "requests": {"cpu": 0.5}}}]}}}})
    };
    let stored = apply(
        &store,
        &deployments,
        "web",
        web(json!("1000m"), "1024Mi"),
        "federator",
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let resources = &stored["spec"]["template"]["spec"]["containers"][0]["resources"];
    assert_eq!(
        *resources,
        json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}})
    );
    // the same apply again changes nothing: no write, same resourceVersion
    let again = apply(
        &store,
        &deployments,
        "web",
        web(json!("1000m"), "1024Mi"),
        "federator",
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rv(&again), rv(&stored));
    // what a quantity field cannot hold fails the decoding
    let e = err(apply(
        &store,
        &deployments,
        "web",
        web(json!("lots"), "1Gi"),
        "federator",
        false,
    ));
    assert_eq!(e.code, 400);
    assert_eq!(
        e.message,
        "Deployment in version \"v1\" cannot be handled as a Deployment: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    );
    // custom resources keep what was sent
    let mut w = widget("w", 1);
    w["spec"]["cpu"] = json!("1000m");
    let w = create(&store, &widgets, "default", w);
    assert_eq!(w["spec"]["cpu"], "1000m");
}

#[test]
fn apply_validates_its_request() {
    let (store, widgets) = store_with_widgets();
    let e = err(store.patch(
        &widgets,
        Some("default"),
        "w1",
        PatchType::Apply,
        widget("w1", 1).to_string().as_bytes(),
        &WriteOptions::default(),
    ));
    assert_eq!(
        e.message,
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let mut wrong = widget("w1", 1);
    wrong["apiVersion"] = json!("example.com/v2");
    let e = err(apply(&store, &widgets, "w1", wrong, "m", false));
    assert_eq!(
        e.message,
        "Incorrect version specified in apply patch. Specified patch version: example.com/v2, expected: example.com/v1"
    );
    let mut with_managed = widget("w1", 1);
    with_managed["metadata"]["managedFields"] = json!([]);
    let e = err(apply(&store, &widgets, "w1", with_managed, "m", false));
    assert_eq!(e.message, "metadata.managedFields must be nil");
}

/// A schema that declares `spec.nodes` a map list keyed by name and `spec.tags` a set.
struct ListTypes;

impl Admission for ListTypes {
    fn admit(
        &self,
        _obj: &mut Value,
        _old: Option<&Value>,
        _strict: bool,
    ) -> ApiResult<Vec<String>> {
        Ok(Vec::new())
    }

    fn list_type(&self, path: &[&str]) -> Option<SchemaListType> {
        match path {
            ["spec", "nodes"] => Some(SchemaListType::Map(vec!["name".into()])),
            ["spec", "tags"] => Some(SchemaListType::Set),
            _ => None,
        }
    }
}

#[test]
fn apply_follows_custom_resource_list_types() {
    let store = store();
    let mut info = widgets();
    info.admission = Some(Arc::new(ListTypes));
    store.register(info.clone());
    let config = |nodes: Value, tags: Value| {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
               "spec": {"nodes": nodes, "tags": tags, "list": [1]}})
    };
    apply(
        &store,
        &info,
        "w",
        config(json!([{"name": "a", "size": 1}]), json!(["x"])),
        "one",
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let merged = apply(
        &store,
        &info,
        "w",
        config(json!([{"name": "b", "size": 2}]), json!(["y"])),
        "two",
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        merged["spec"]["nodes"],
        json!([{"name": "a", "size": 1}, {"name": "b", "size": 2}])
    );
    assert_eq!(merged["spec"]["tags"], json!(["x", "y"]));
    assert_eq!(
        entry(&merged, "two", "Apply")["fieldsV1"],
        json!({"f:spec": {"f:list": {}, "f:nodes": {"k:{\"name\":\"b\"}": {".": {}, "f:name": {}, "f:size": {}}},
                          "f:tags": {"v:\"y\"": {}}}})
    );
    // "one" stops applying node a: it goes, b stays
    let after = apply(
        &store,
        &info,
        "w",
        config(json!([]), json!(["x"])),
        "one",
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after["spec"]["nodes"], json!([{"name": "b", "size": 2}]));
}

#[test]
fn update_takes_ownership_and_managed_fields_can_be_replaced() {
    let (store, widgets) = store_with_widgets();
    apply(&store, &widgets, "w1", widget("w1", 1), "applier", false)
        .unwrap_or_else(|e| panic!("{e}"));
    let patched = store
        .patch(
            &widgets,
            Some("default"),
            "w1",
            PatchType::Merge,
            br#"{"spec":{"size":2}}"#,
            &manager("kubectl-edit"),
        )
        .map(|r| r.object)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(entry(&patched, "applier", "Apply"), Value::Null);
    assert_eq!(
        entry(&patched, "kubectl-edit", "Update")["fieldsV1"],
        json!({"f:spec": {"f:size": {}}})
    );

    // kubectl's migration: a JSON patch replacing managedFields wholesale
    let replacement = json!([{"manager": "kubectl", "operation": "Apply", "apiVersion": "example.com/v1",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:size": {}}}}]);
    let ops = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": patched["metadata"]["resourceVersion"]},
        {"op": "replace", "path": "/metadata/managedFields", "value": replacement}
    ]);
    let migrated = store
        .patch(
            &widgets,
            Some("default"),
            "w1",
            PatchType::Json,
            ops.to_string().as_bytes(),
            &manager("kubectl"),
        )
        .map(|r| r.object)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        entry(&migrated, "kubectl", "Apply")["fieldsV1"],
        json!({"f:spec": {"f:size": {}}})
    );
    assert_eq!(entry(&migrated, "kubectl-edit", "Update"), Value::Null);

    // an empty list leaves them alone, a list with one empty entry strips them
    let kept = store
        .patch(
            &widgets,
            Some("default"),
            "w1",
            PatchType::Merge,
            br#"{"metadata":{"managedFields":[],"labels":{"x":"y"}}}"#,
            &manager("kubectl"),
        )
        .map(|r| r.object)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        kept["metadata"]["managedFields"].as_array().map(Vec::len),
        Some(2)
    );
    let stripped = store
        .patch(
            &widgets,
            Some("default"),
            "w1",
            PatchType::Merge,
            br#"{"metadata":{"managedFields":[{}]}}"#,
            &manager("kubectl"),
        )
        .map(|r| r.object)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        stripped["metadata"].get("managedFields").is_none(),
        "{stripped}"
    );
}

// ---------------------------------------------------------------- finalizers and deletion

#[tokio::test]
async fn finalizers_keep_the_object_until_removed() {
    let (store, widgets) = store_with_widgets();
    let mut w = widget("w1", 1);
    w["metadata"]["finalizers"] = json!(["example.com/f"]);
    let created = create(&store, &widgets, "default", w);
    let mut watch = store
        .watch(
            &widgets,
            Some("default"),
            &WatchOptions {
                resource_version: Some(
                    created["metadata"]["resourceVersion"].as_str().unwrap_or("").into(),
                ),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));

    let DeleteOutcome::Pending(deleting) = store
        .delete(&widgets, Some("default"), "w1", &DeleteOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
    else {
        panic!("finalizers keep the object");
    };
    assert!(deleting["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(deleting["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(deleting["metadata"]["generation"], 2);
    assert_eq!(next_change(&mut watch).await.event_type, "MODIFIED");

    // a repeated delete returns it unchanged
    let DeleteOutcome::Pending(again) = store
        .delete(&widgets, Some("default"), "w1", &DeleteOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
    else {
        panic!("still pending");
    };
    assert_eq!(again, deleting);

    // no new finalizers on a deleting object
    let e = err(store.patch(
        &widgets,
        Some("default"),
        "w1",
        PatchType::Merge,
        br#"{"metadata":{"finalizers":["example.com/f","x"]}}"#,
        &manager("m"),
    ));
    assert_eq!(e.code, 422);
    assert!(e.message.ends_with("metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"x\"}"), "{}", e.message);

    // removing the last finalizer deletes it: only a DELETED event
    let result = store
        .patch(
            &widgets,
            Some("default"),
            "w1",
            PatchType::Merge,
            br#"{"metadata":{"finalizers":null}}"#,
            &manager("m"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let deleted = next_change(&mut watch).await;
    assert_eq!(deleted.event_type, "DELETED");
    assert_eq!(rv(&deleted.object), rv(&result.object));
    assert_eq!(err(store.get(&widgets, Some("default"), "w1")).code, 404);
    no_change_for(&mut watch, Duration::from_millis(200)).await;
}

#[test]
fn delete_without_finalizers_answers_a_status() {
    let (store, widgets) = store_with_widgets();
    let w = create(&store, &widgets, "default", widget("w1", 1));
    let outcome = store
        .delete(&widgets, Some("default"), "w1", &DeleteOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let DeleteOutcome::Deleted(status) = outcome else {
        panic!("deleted at once");
    };
    assert_eq!(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
               "details": {"name": "w1", "group": "example.com", "kind": "widgets", "uid": w["metadata"]["uid"]}})
    );
    let e = err(store.delete(&widgets, Some("default"), "w1", &DeleteOptions::default()));
    assert_eq!(e.message, "widgets.example.com \"w1\" not found");
}

#[test]
fn delete_preconditions() {
    let (store, widgets) = store_with_widgets();
    let w = create(&store, &widgets, "default", widget("w1", 1));
    let e = err(store.delete(
        &widgets,
        Some("default"),
        "w1",
        &DeleteOptions {
            preconditions_resource_version: Some("1".into()),
            ..Default::default()
        },
    ));
    assert_eq!(
        e.message,
        format!(
            "Operation cannot be fulfilled on Widget.example.com \"w1\": the ResourceVersion in the precondition (1) does not match the ResourceVersion in record ({}). The object might have been modified",
            rv(&w)
        )
    );
    let e = err(store.delete(
        &widgets,
        Some("default"),
        "w1",
        &DeleteOptions {
            preconditions_uid: Some("other".into()),
            ..Default::default()
        },
    ));
    assert_eq!(e.code, 409);
    assert!(
        store
            .delete(
                &widgets,
                Some("default"),
                "w1",
                &DeleteOptions {
                    preconditions_uid: w["metadata"]["uid"].as_str().map(str::to_string),
                    ..Default::default()
                }
            )
            .is_ok()
    );
}

#[test]
fn delete_collection_returns_the_deleted_objects() {
    let store = store();
    let cms = labelled_configmaps(&store);
    let list = store
        .delete_collection(
            &cms,
            Some("default"),
            &ListOptions {
                label_selector: Some("tier=web".into()),
                ..Default::default()
            },
            &DeleteOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(names(&list), ["one"]);
    assert_eq!(
        select(&store, &cms, None, "", "").ok(),
        Some(vec!["four".into(), "two".into(), "three".into()])
    );
}

// ---------------------------------------------------------------- garbage collection

/// Lets the background controllers (garbage collector, namespace controller) do everything
/// they have to, as if all their delays had passed.
fn run_controllers(store: &Store) {
    store.run_due_controllers(std::time::Instant::now() + Duration::from_secs(3600));
}

fn owned_by(name: &str, owner: &Value, block: bool) -> Value {
    json!({"metadata": {"name": name, "ownerReferences": [{
        "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "blockOwnerDeletion": block
    }]}, "data": {}})
}

#[test]
fn background_deletion_collects_dependents() {
    let (store, widgets) = store_with_widgets();
    let cms = builtin(&store, "", "configmaps");
    let owner = create(&store, &widgets, "default", widget("owner", 1));
    create(&store, &cms, "default", owned_by("dep1", &owner, false));
    create(&store, &cms, "default", owned_by("dep2", &owner, false));
    let unrelated = create(&store, &widgets, "default", widget("other", 1));
    let mut shared = owned_by("shared", &owner, false);
    if let Some(refs) = shared["metadata"]["ownerReferences"].as_array_mut() {
        refs.push(
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "name": "other",
                         "uid": unrelated["metadata"]["uid"]}),
        );
    }
    create(&store, &cms, "default", shared);

    store
        .delete(
            &widgets,
            Some("default"),
            "owner",
            &DeleteOptions {
                propagation_policy: Some("Background".into()),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    // the owner goes at once; its dependents only once the garbage collector has run
    assert_eq!(err(store.get(&widgets, Some("default"), "owner")).code, 404);
    assert_eq!(
        select(&store, &cms, Some("default"), "", "").ok(),
        Some(vec!["dep1".into(), "dep2".into(), "shared".into()])
    );
    run_controllers(&store);
    assert_eq!(
        select(&store, &cms, Some("default"), "", "").ok(),
        Some(vec!["shared".into()])
    );
    let shared = store.get(&cms, Some("default"), "shared").unwrap_or_default();
    assert_eq!(
        shared["metadata"]["ownerReferences"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn orphan_deletion_keeps_dependents() {
    let (store, widgets) = store_with_widgets();
    let cms = builtin(&store, "", "configmaps");
    let owner = create(&store, &widgets, "default", widget("owner", 1));
    create(&store, &cms, "default", owned_by("dep", &owner, false));
    let outcome = store
        .delete(
            &widgets,
            Some("default"),
            "owner",
            &DeleteOptions {
                propagation_policy: Some("Orphan".into()),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let DeleteOutcome::Pending(pending) = outcome else {
        panic!("the owner waits for the garbage collector to orphan its dependents");
    };
    assert_eq!(pending["metadata"]["finalizers"], json!(["orphan"]));
    assert!(pending["metadata"]["deletionTimestamp"].is_string());
    let dep = store.get(&cms, Some("default"), "dep").unwrap_or_default();
    assert!(dep["metadata"]["ownerReferences"].is_array(), "{dep}");
    run_controllers(&store);
    assert_eq!(err(store.get(&widgets, Some("default"), "owner")).code, 404);
    let dep = store.get(&cms, Some("default"), "dep").unwrap_or_default();
    assert!(dep["metadata"].get("ownerReferences").is_none(), "{dep}");
}

#[test]
fn foreground_deletion_waits_for_blocking_dependents() {
    let (store, widgets) = store_with_widgets();
    let cms = builtin(&store, "", "configmaps");
    let owner = create(&store, &widgets, "default", widget("owner", 1));
    let mut blocking = owned_by("blocking", &owner, true);
    blocking["metadata"]["finalizers"] = json!(["hold"]);
    create(&store, &cms, "default", blocking);
    create(&store, &cms, "default", owned_by("plain", &owner, false));

    let outcome = store
        .delete(
            &widgets,
            Some("default"),
            "owner",
            &DeleteOptions {
                propagation_policy: Some("Foreground".into()),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let DeleteOutcome::Pending(pending) = outcome else {
        panic!("foreground deletion keeps the owner first");
    };
    assert_eq!(
        pending["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    assert!(store.get(&cms, Some("default"), "plain").is_ok());
    run_controllers(&store);
    assert_eq!(err(store.get(&cms, Some("default"), "plain")).code, 404);
    let owner_now = store.get(&widgets, Some("default"), "owner").unwrap_or_default();
    assert!(owner_now["metadata"]["deletionTimestamp"].is_string());

    // the blocking dependent goes once its finalizer is removed; then the owner goes
    store
        .patch(
            &cms,
            Some("default"),
            "blocking",
            PatchType::Merge,
            br#"{"metadata":{"finalizers":null}}"#,
            &manager("m"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(err(store.get(&cms, Some("default"), "blocking")).code, 404);
    assert!(store.get(&widgets, Some("default"), "owner").is_ok());
    run_controllers(&store);
    assert_eq!(err(store.get(&widgets, Some("default"), "owner")).code, 404);
}

#[tokio::test]
async fn dependents_of_absent_owners_are_collected_by_the_controller() {
    let store = Arc::new(store());
    let cms = builtin(&store, "", "configmaps");
    let _controllers = store.spawn_controllers();
    let ghost = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ghost", "uid": "00000000-0000-0000-0000-000000000001"}});
    create(&store, &cms, "default", owned_by("orphan", &ghost, false));
    // an owner of a kind the cluster does not serve cannot be checked: the dependent stays
    let unknown = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs", "uid": "00000000-0000-0000-0000-000000000002"}});
    create(
        &store,
        &cms,
        "default",
        owned_by("unresolvable", &unknown, false),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(err(store.get(&cms, Some("default"), "orphan")).code, 404);
    assert!(store.get(&cms, Some("default"), "unresolvable").is_ok());
}

#[tokio::test]
async fn the_garbage_collector_runs_after_the_delete_returns() {
    let store = Arc::new(Store::with_builtins(StoreConfig {
        gc_delay: Duration::from_millis(200),
        ..config()
    }));
    let _controllers = store.spawn_controllers();
    let widgets = widgets();
    store.register(widgets.clone());
    let cms = builtin(&store, "", "configmaps");
    let owner = create(&store, &widgets, "default", widget("owner", 1));
    create(&store, &cms, "default", owned_by("dep", &owner, false));
    store
        .delete(
            &widgets,
            Some("default"),
            "owner",
            &DeleteOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(err(store.get(&widgets, Some("default"), "owner")).code, 404);
    assert!(
        store.get(&cms, Some("default"), "dep").is_ok(),
        "a DELETE does not wait for the garbage collector"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store.get(&cms, Some("default"), "dep").is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dependent is collected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------- namespaces

#[test]
fn deleting_a_namespace_terminates_it_and_its_contents() {
    let (store, widgets) = store_with_widgets();
    let namespaces = builtin(&store, "", "namespaces");
    let cms = builtin(&store, "", "configmaps");
    let ns = create(
        &store,
        &namespaces,
        "",
        json!({"metadata": {"name": "team"}}),
    );
    assert_eq!(ns["spec"], json!({"finalizers": ["kubernetes"]}));
    assert_eq!(ns["status"], json!({"phase": "Active"}));
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team"
    );
    create(&store, &cms, "team", configmap("c", json!({})));
    let mut held = widget("held", 1);
    held["metadata"]["finalizers"] = json!(["example.com/f"]);
    create(&store, &widgets, "team", held);

    let DeleteOutcome::Pending(terminating) = store
        .delete(&namespaces, None, "team", &DeleteOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
    else {
        panic!("a namespace terminates first");
    };
    assert_eq!(terminating["status"]["phase"], "Terminating");
    assert!(terminating["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(terminating["spec"]["finalizers"], json!(["kubernetes"]));
    // the namespace controller empties it later
    assert!(store.get(&cms, Some("team"), "c").is_ok());

    let e = err(store.create(
        &cms,
        Some("team"),
        configmap("new", json!({})),
        &manager("m"),
    ));
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        e.message,
        "configmaps \"new\" is forbidden: unable to create new content in namespace team because it is being terminated"
    );
    assert_eq!(e.causes[0].reason, "NamespaceTerminating");
    let e = err(store.create(
        &namespaces,
        None,
        json!({"metadata": {"name": "team"}}),
        &manager("m"),
    ));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            409,
            "object is being deleted: namespaces \"team\" already exists"
        )
    );

    run_controllers(&store);
    assert_eq!(err(store.get(&cms, Some("team"), "c")).code, 404);
    // the held widget keeps the namespace until its finalizer goes
    let waiting = store.get(&namespaces, None, "team").unwrap_or_default();
    let conditions = waiting["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let remaining = conditions
        .iter()
        .find(|c| c["type"] == "NamespaceContentRemaining")
        .cloned()
        .unwrap_or_default();
    assert_eq!(remaining["status"], "True");
    assert_eq!(
        remaining["message"],
        "Some resources are remaining: widgets.example.com has 1 resource instances"
    );
    let held_by = conditions
        .iter()
        .find(|c| c["type"] == "NamespaceFinalizersRemaining")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        held_by["message"],
        "Some content in the namespace has finalizers remaining: example.com/f in 1 resource instances"
    );
    store
        .patch(
            &widgets,
            Some("team"),
            "held",
            PatchType::Merge,
            br#"{"metadata":{"finalizers":[]}}"#,
            &manager("m"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(err(store.get(&widgets, Some("team"), "held")).code, 404);
    assert!(store.get(&namespaces, None, "team").is_ok());
    run_controllers(&store);
    assert_eq!(err(store.get(&namespaces, None, "team")).code, 404);
}

#[test]
fn system_namespaces_cannot_be_deleted() {
    let store = store();
    let namespaces = builtin(&store, "", "namespaces");
    for name in ["default", "kube-system", "kube-public"] {
        let e = err(store.delete(&namespaces, None, name, &DeleteOptions::default()));
        assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
        assert_eq!(
            e.message,
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted")
        );
    }
}

// ---------------------------------------------------------------- dry run

#[test]
fn dry_run_persists_nothing() {
    let (store, widgets) = store_with_widgets();
    let dry = WriteOptions {
        dry_run: DryRun::All,
        field_manager: Some("m".into()),
        ..Default::default()
    };
    let before = store.resource_version();
    let would = store
        .create(&widgets, Some("default"), widget("w1", 1), &dry)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(would.created);
    assert!(would.object["metadata"]["uid"].is_string());
    assert_eq!(store.resource_version(), before);
    assert_eq!(err(store.get(&widgets, Some("default"), "w1")).code, 404);

    let w = create(&store, &widgets, "default", widget("w1", 1));
    let before = store.resource_version();
    let patched = store
        .patch(
            &widgets,
            Some("default"),
            "w1",
            PatchType::Merge,
            br#"{"spec":{"size":9}}"#,
            &dry,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(patched.object["spec"]["size"], 9);
    let applied = store
        .patch(
            &widgets,
            Some("default"),
            "w1",
            PatchType::Apply,
            widget("w1", 7).to_string().as_bytes(),
            &WriteOptions {
                force: true,
                ..dry.clone()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(applied.object["spec"]["size"], 7);
    let deleted = store
        .delete(
            &widgets,
            Some("default"),
            "w1",
            &DeleteOptions {
                dry_run: DryRun::All,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(deleted, DeleteOutcome::Deleted(_)));
    assert_eq!(store.resource_version(), before);
    assert_eq!(store.get(&widgets, Some("default"), "w1").ok(), Some(w));
}

// ---------------------------------------------------------------- watch

#[tokio::test]
async fn watch_from_scratch_sends_current_objects_then_changes() {
    let store = store();
    let cms = builtin(&store, "", "configmaps");
    create(&store, &cms, "default", configmap("b", json!({})));
    create(&store, &cms, "default", configmap("a", json!({})));
    create(
        &store,
        &cms,
        "kube-system",
        configmap("elsewhere", json!({})),
    );
    let mut watch = store
        .watch(
            &cms,
            Some("default"),
            &WatchOptions {
                resource_version: Some("0".into()),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let first = next_event(&mut watch).await;
    assert_eq!(
        (first.event_type, first.object["metadata"]["name"].as_str()),
        ("ADDED", Some("a"))
    );
    let second = next_event(&mut watch).await;
    assert_eq!(second.object["metadata"]["name"], "b");

    create(&store, &cms, "kube-system", configmap("ignored", json!({})));
    let c = create(&store, &cms, "default", configmap("c", json!({})));
    let added = next_event(&mut watch).await;
    assert_eq!((added.event_type, added.object.clone()), ("ADDED", c));
    store
        .delete(&cms, Some("default"), "a", &DeleteOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let deleted = next_event(&mut watch).await;
    assert_eq!(deleted.event_type, "DELETED");
    assert_eq!(rv(&deleted.object), store.resource_version());
}

#[tokio::test]
async fn watch_from_a_resource_version_replays_later_changes_only() {
    let store = store();
    let cms = builtin(&store, "", "configmaps");
    let a = create(&store, &cms, "default", configmap("a", json!({})));
    let mut changed = a.clone();
    changed["data"]["k"] = json!("2");
    store
        .update(&cms, Some("default"), "a", changed, &manager("m"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut watch = store
        .watch(
            &cms,
            None,
            &WatchOptions {
                resource_version: Some(rv(&a).to_string()),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let modified = next_event(&mut watch).await;
    assert_eq!(modified.event_type, "MODIFIED");
    assert_eq!(modified.object["data"]["k"], "2");
    no_change_for(&mut watch, Duration::from_millis(100)).await;
}

#[tokio::test]
async fn too_old_resource_version_gives_a_410_error_event() {
    let store = Store::with_builtins(StoreConfig {
        event_window: 3,
        ..config()
    });
    let cms = builtin(&store, "", "configmaps");
    for i in 0..6 {
        create(
            &store,
            &cms,
            "default",
            configmap(&format!("c{i}"), json!({})),
        );
    }
    let mut watch = store
        .watch(
            &cms,
            None,
            &WatchOptions {
                resource_version: Some("2".into()),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let event = next_event(&mut watch).await;
    assert_eq!(event.event_type, "ERROR");
    assert_eq!(event.object["code"], 410);
    assert_eq!(event.object["reason"], "Expired");
    assert_eq!(event.object["kind"], "Status");
    assert!(
        event.object["message"].as_str().unwrap_or("").starts_with("too old resource version: 2 (")
    );
    assert!(watch.next().await.is_none());
}

/// The event's object, parsed or as stored.
fn object_of(event: &WatchEvent) -> Value {
    match &event.stored {
        Some(stored) => serde_json::from_slice(stored).unwrap_or_else(|e| panic!("{e}")),
        None => event.object.clone(),
    }
}

#[tokio::test]
async fn watch_selectors_turn_transitions_into_added_and_deleted() {
    // The HTTP server takes objects as stored; in-process watchers take them parsed.
    for stored_objects in [false, true] {
        let store = store();
        let cms = builtin(&store, "", "configmaps");
        let start = store.resource_version().to_string();
        let mut watch = store
            .watch(
                &cms,
                None,
                &WatchOptions {
                    resource_version: Some(start),
                    label_selector: Some("app=web".into()),
                    stored_objects,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{e}"));
        create(
            &store,
            &cms,
            "default",
            configmap("c", json!({"app": "db"})),
        );
        let patch = |labels: &str| {
            store
                .patch(
                    &cms,
                    Some("default"),
                    "c",
                    PatchType::Merge,
                    format!(r#"{{"metadata":{{"labels":{labels}}}}}"#).as_bytes(),
                    &manager("m"),
                )
                .unwrap_or_else(|e| panic!("{e}"))
                .object
        };
        let matching = patch(r#"{"app":"web"}"#);
        let event = next_event(&mut watch).await;
        assert_eq!(event.stored.is_some(), stored_objects);
        assert_eq!((event.event_type, object_of(&event)), ("ADDED", matching));
        let changed = patch(r#"{"app":"web","x":"1"}"#);
        let event = next_event(&mut watch).await;
        assert_eq!((event.event_type, object_of(&event)), ("MODIFIED", changed));
        let gone = patch(r#"{"app":"db"}"#);
        let event = next_event(&mut watch).await;
        assert_eq!(event.event_type, "DELETED");
        let last = object_of(&event);
        assert_eq!(
            last["metadata"]["labels"]["app"], "web",
            "the last matching state"
        );
        assert_eq!(rv(&last), rv(&gone));
    }
}

#[tokio::test]
async fn bookmarks_and_initial_events_end() {
    let store = store();
    let cms = builtin(&store, "", "configmaps");
    create(&store, &cms, "default", configmap("a", json!({})));
    let mut watch = store
        .watch(
            &cms,
            None,
            &WatchOptions {
                allow_bookmarks: true,
                send_initial_events: true,
                resource_version: Some("0".into()),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next_event(&mut watch).await.event_type, "ADDED");
    let end = next_event(&mut watch).await;
    assert_eq!(end.event_type, "BOOKMARK");
    assert_eq!(
        end.object["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert_eq!(end.object["kind"], "ConfigMap");
    assert_eq!(end.object["apiVersion"], "v1");
    assert_eq!(rv(&end.object), store.resource_version());

    create(&store, &cms, "default", configmap("b", json!({})));
    assert_eq!(next_event(&mut watch).await.event_type, "ADDED");
    let bookmark = next_event(&mut watch).await;
    assert_eq!(bookmark.event_type, "BOOKMARK");
    assert_eq!(rv(&bookmark.object), store.resource_version());
    assert_eq!(
        bookmark.object["metadata"].as_object().map(|m| m.len()),
        Some(1)
    );
}

#[tokio::test]
async fn drop_watches_ends_every_stream() {
    let store = store();
    let cms = builtin(&store, "", "configmaps");
    let mut watch =
        store.watch(&cms, None, &WatchOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.watch_count(), 1);
    store.drop_watches();
    let ended = tokio::time::timeout(Duration::from_secs(1), watch.next()).await;
    assert!(matches!(ended, Ok(None)));
    assert_eq!(store.watch_count(), 0);
}

#[test]
fn dry_run_and_no_op_writes_emit_no_events() {
    let store = store();
    let cms = builtin(&store, "", "configmaps");
    let c = create(&store, &cms, "default", configmap("c", json!({})));
    let before = store.resource_version();
    let same = store
        .update(&cms, Some("default"), "c", c.clone(), &manager("test"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(same.object, c);
    assert_eq!(store.resource_version(), before);
}

// ---------------------------------------------------------------- admission and controllers

struct RecordingAdmission {
    calls: Mutex<Vec<(bool, bool)>>,
}

impl Admission for RecordingAdmission {
    fn admit(&self, obj: &mut Value, old: Option<&Value>, strict: bool) -> ApiResult<Vec<String>> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push((old.is_some(), strict));
        }
        if obj["spec"]["size"].as_i64().is_some_and(|s| s > 10) {
            return Err(ApiError::new(422, "Invalid", "too big"));
        }
        obj["spec"]["defaulted"] = json!(true);
        Ok(vec!["a warning".into()])
    }
}

#[test]
fn admission_sees_every_write() {
    let store = store();
    let admission = Arc::new(RecordingAdmission {
        calls: Mutex::new(Vec::new()),
    });
    let mut info = widgets();
    info.admission = Some(admission.clone());
    store.register(info.clone());
    let strict = WriteOptions {
        field_validation: Some("Strict".into()),
        ..manager("m")
    };
    let created = store
        .create(&info, Some("default"), widget("w1", 1), &strict)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(created.warnings, ["a warning"]);
    assert_eq!(created.object["spec"]["defaulted"], true);
    let e = err(store.patch(
        &info,
        Some("default"),
        "w1",
        PatchType::Merge,
        br#"{"spec":{"size":11}}"#,
        &manager("m"),
    ));
    assert_eq!(e.message, "too big");
    let calls = admission.calls.lock().map(|c| c.clone()).unwrap_or_default();
    assert_eq!(calls, [(false, true), (true, false)]);
}

#[tokio::test]
async fn deployments_become_ready_after_each_change() {
    let store = Arc::new(store());
    let _controllers = store.spawn_controllers();
    let deployments = builtin(&store, "apps", "deployments");
    let created = create(
        &store,
        &deployments,
        "default",
        json!({"metadata": {"name": "web"}, "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "a", "image": "a"}]}}}}),
    );
    assert_eq!(created["status"], json!({}));
    let ready = |store: &Store, generation: i64, replicas: i64| {
        let d = store.get(&deployments, Some("default"), "web").unwrap_or_default();
        d["status"]["observedGeneration"] == generation
            && d["status"]["readyReplicas"] == replicas
            && d["status"]["availableReplicas"] == replicas
            && d["status"]["updatedReplicas"] == replicas
            && d["status"]["replicas"] == replicas
    };
    let wait = |generation: i64, replicas: i64| {
        let store = store.clone();
        async move {
            for _ in 0..40 {
                if ready(&store, generation, replicas) {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        }
    };
    assert!(wait(1, 3).await, "ready after create");
    store
        .patch(
            &deployments,
            Some("default"),
            "web",
            PatchType::Merge,
            br#"{"spec":{"replicas":5}}"#,
            &manager("m"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(wait(2, 5).await, "ready after scaling");

    let statefulsets = builtin(&store, "apps", "statefulsets");
    create(
        &store,
        &statefulsets,
        "default",
        json!({"metadata": {"name": "db"}, "spec": {"replicas": 2}}),
    );
    let mut ok = false;
    for _ in 0..40 {
        let s = store.get(&statefulsets, Some("default"), "db").unwrap_or_default();
        if s["status"]["readyReplicas"] == 2 && s["status"]["observedGeneration"] == 1 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "statefulset ready");
}

#[test]
fn built_in_registry_entries() {
    let infos = crate::store::builtin_resources();
    let find = |group: &str, plural: &str| {
        infos
            .iter()
            .find(|i| i.group == group && i.plural == plural)
            .unwrap_or_else(|| panic!("{group}/{plural}"))
    };
    assert_eq!(infos.len(), 19);
    let claims = find("", "persistentvolumeclaims");
    assert!(claims.namespaced && claims.has_status);
    assert!(!find("rbac.authorization.k8s.io", "clusterroles").namespaced);
    assert!(find("rbac.authorization.k8s.io", "rolebindings").namespaced);
    let ns = find("", "namespaces");
    assert!(!ns.namespaced && ns.has_status);
    let endpoints = find("", "endpoints");
    assert_eq!(
        (endpoints.kind.as_str(), endpoints.singular.as_str()),
        ("Endpoints", "endpoints")
    );
    let crd = find("apiextensions.k8s.io", "customresourcedefinitions");
    assert_eq!(crd.list_kind, "CustomResourceDefinitionList");
    assert!(!crd.namespaced);
    assert!(find("apps", "deployments").has_status);
    assert!(!find("", "configmaps").has_status);
    assert!(infos.iter().all(|i| i.builtin));
}

fn resident_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<usize>().ok()))
        .map_or(0, |pages| pages * 4096)
}

/// Not a test: prints what 10,000 objects cost (`cargo test -- --ignored --nocapture memory`).
#[test]
#[ignore]
fn memory_of_ten_thousand_objects() {
    let before = resident_bytes();
    let stores: Vec<Store> = (0..10).map(|_| store()).collect();
    for store in &stores {
        let cms = builtin(store, "", "configmaps");
        for i in 0..10_000 {
            let obj = json!({"metadata": {"name": format!("object-{i}"), "labels": {"app": "bench", "index": i.to_string()}},
                             "data": {"key": "value", "other": "some longer value of a few dozen bytes"}});
            store
                .create(&cms, Some("default"), obj, &manager("bench"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let after = resident_bytes();
    let estimate: usize = stores.iter().map(Store::memory_estimate).sum();
    let sample = stores[0]
        .get(
            &builtin(&stores[0], "", "configmaps"),
            Some("default"),
            "object-1",
        )
        .unwrap_or_default();
    println!(
        "100,000 objects in 10 stores: resident +{} MiB, estimate {} MiB, one object {} bytes",
        (after.saturating_sub(before)) >> 20,
        estimate >> 20,
        sample.to_string().len()
    );
}

#[tokio::test]
async fn service_account_token_secrets_get_a_token() {
    let store = Arc::new(store());
    let _controllers = store.spawn_controllers();
    let secrets = builtin(&store, "", "secrets");
    create(
        &store,
        &secrets,
        "default",
        json!({"metadata": {"name": "sa-token", "annotations": {"kubernetes.io/service-account.name": "default"}},
               "type": "kubernetes.io/service-account-token"}),
    );
    let mut filled = Value::Null;
    for _ in 0..40 {
        filled = store.get(&secrets, Some("default"), "sa-token").unwrap_or_default();
        if filled["data"]["token"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(filled["data"]["token"].is_string(), "{filled}");
    assert!(filled["data"]["ca.crt"].is_string());
    assert_eq!(filled["data"]["namespace"], "ZGVmYXVsdA==");
}

#[tokio::test]
async fn deployments_become_ready_only_after_the_workload_delay() {
    let store = Arc::new(Store::with_builtins(StoreConfig {
        workload_ready_delay: Some(Duration::from_millis(800)),
        ..config()
    }));
    let _controllers = store.spawn_controllers();
    let deployments = builtin(&store, "apps", "deployments");
    create(
        &store,
        &deployments,
        "default",
        json!({"metadata": {"name": "slow"}, "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "a"}]}}}}),
    );
    let ready_replicas = |store: &Store| {
        store
            .get(&deployments, Some("default"), "slow")
            .unwrap_or_default()["status"]["readyReplicas"]
            .clone()
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        ready_replicas(&store),
        Value::Null,
        "not ready before the delay"
    );
    let mut ready = false;
    for _ in 0..40 {
        if ready_replicas(&store) == json!(2) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "ready after the delay");
}

#[test]
fn secrets_store_string_data_as_data_and_immutable_ones_refuse_changes() {
    let store = store();
    let secrets = builtin(&store, "", "secrets");
    let created = create(
        &store,
        &secrets,
        "default",
        json!({"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"b": "pw"}}),
    );
    assert_eq!(created["data"], json!({"a": "eA==", "b": "cHc="}));
    assert!(
        created.get("stringData").is_none(),
        "stringData is never stored"
    );

    // stringData wins over data for the same key.
    let patched = store
        .patch(
            &secrets,
            Some("default"),
            "s",
            PatchType::Merge,
            br#"{"data": {"b": "eHg="}, "stringData": {"b": "new"}, "immutable": true}"#,
            &manager("test"),
        )
        .expect("patch")
        .object;
    assert_eq!(patched["data"]["b"], json!("bmV3"));

    // Now immutable: data and immutable cannot change, metadata can.
    let e = err(store.patch(
        &secrets,
        Some("default"),
        "s",
        PatchType::Merge,
        br#"{"stringData": {"b": "other"}}"#,
        &manager("test"),
    ));
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            422,
            "Secret \"s\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
        )
    );
    let e = err(store.patch(
        &secrets,
        Some("default"),
        "s",
        PatchType::Merge,
        br#"{"immutable": false}"#,
        &manager("test"),
    ));
    assert_eq!(e.code, 422);
    store
        .patch(
            &secrets,
            Some("default"),
            "s",
            PatchType::Merge,
            br#"{"metadata": {"labels": {"x": "y"}}}"#,
            &manager("test"),
        )
        .expect("metadata of an immutable Secret can change");
}

#[test]
fn an_empty_object_applied_again_with_fields_keeps_them() {
    let (store, widgets) = store_with_widgets();
    let with = |dcs: Value| {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
               "spec": {"size": 1, "datacenters": dcs}})
    };
    let second = |dcs: Value| {
        let mut object = with(dcs);
        object["metadata"]["name"] = json!("w2");
        object
    };
    apply(&store, &widgets, "w1", with(json!({})), "one", false).unwrap_or_else(|e| panic!("{e}"));
    let filled = json!({"dc1": {"context": "a"}});
    let after = apply(&store, &widgets, "w1", with(filled.clone()), "one", false)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after["spec"]["datacenters"], filled);
    assert_eq!(
        entry(&after, "one", "Apply")["fieldsV1"]["f:spec"]["f:datacenters"],
        json!({"f:dc1": {"f:context": {}}})
    );

    // applied as `{}` by one, filled by another: dropping it leaves the other's fields
    apply(&store, &widgets, "w2", second(json!({})), "one", false)
        .unwrap_or_else(|e| panic!("{e}"));
    apply(&store, &widgets, "w2", second(filled.clone()), "two", false)
        .unwrap_or_else(|e| panic!("{e}"));
    let dropped = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w2"}, "spec": {"size": 1}});
    let after =
        apply(&store, &widgets, "w2", dropped, "one", false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after["spec"]["datacenters"], filled);
}

#[test]
fn a_map_key_no_longer_applied_goes_with_everything_under_it() {
    let (store, widgets) = store_with_widgets();
    let with = |dcs: Value| {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
               "spec": {"size": 1, "datacenters": dcs}})
    };
    let two = json!({"dc1": {"context": "a", "nested": {"x": 1}}, "dc2": {"context": "b", "nested": {"x": 2}}});
    apply(&store, &widgets, "w1", with(two), "one", false).unwrap_or_else(|e| panic!("{e}"));
    let one = json!({"dc1": {"context": "a", "nested": {"x": 1}}});
    let after = apply(&store, &widgets, "w1", with(one.clone()), "one", false)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after["spec"]["datacenters"], one);

    // a key another manager also set stays, with that manager's fields only
    let shared =
        json!({"dc1": {"context": "a", "nested": {"x": 1}}, "dc3": {"context": "c", "note": "n"}});
    apply(&store, &widgets, "w1", with(shared), "one", false).unwrap_or_else(|e| panic!("{e}"));
    apply(
        &store,
        &widgets,
        "w1",
        with(json!({"dc3": {"note": "n"}})),
        "two",
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let kept =
        apply(&store, &widgets, "w1", with(one), "one", false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kept["spec"]["datacenters"]["dc3"], json!({"note": "n"}));
    assert_eq!(kept["spec"]["datacenters"]["dc1"]["context"], "a");
}

#[test]
fn a_statefulsets_claim_templates_cannot_change_but_its_template_and_replicas_can() {
    let store = store();
    let statefulsets = builtin(&store, "apps", "statefulsets");
    let claim = |size: &str| {
        json!([{"metadata": {"name": "data"},
                "spec": {"resources": {"requests": {"storage": size}}}}])
    };
    create(
        &store,
        &statefulsets,
        "default",
        json!({"metadata": {"name": "db"},
               "spec": {"replicas": 1, "volumeClaimTemplates": claim("1Gi"),
                        "template": {"spec": {"containers": [{"name": "c", "image": "a"}]}}}}),
    );
    let patch = |body: Value| {
        store.patch(
            &statefulsets,
            Some("default"),
            "db",
            PatchType::Merge,
            body.to_string().as_bytes(),
            &manager("m"),
        )
    };
    patch(json!({"spec": {"replicas": 2,
                          "template": {"spec": {"containers": [{"name": "c", "image": "b"}]}}}}))
    .unwrap_or_else(|e| panic!("{e}"));
    let refused = patch(json!({"spec": {"volumeClaimTemplates": claim("2Gi")}}))
        .expect_err("claim templates are fixed");
    assert_eq!(refused.code, 422);
    assert!(
        refused.message.starts_with(
            "StatefulSet.apps \"db\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas'"
        ),
        "{}",
        refused.message
    );
}
