use std::collections::BTreeMap;

use k8s_openapi::ByteString;

use super::*;
use crate::api::replicated_secret::{ReplicatedSecretSpec, ReplicationTarget};

fn key() -> ReplicationKey {
    ReplicationKey {
        namespace: "ops".into(),
        name: "creds".into(),
    }
}

fn time(seconds: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(seconds).expect("valid timestamp"))
}

fn secret(name: &str, labels: &[(&str, &str)], password: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ops".into()),
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            annotations: Some(BTreeMap::from([
                (LAST_APPLIED_ANNOTATION.to_string(), "{...}".to_string()),
                ("note".to_string(), "kept".to_string()),
            ])),
            resource_version: Some("12".into()),
            uid: Some("source-uid".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "password".to_string(),
            ByteString(password.as_bytes().to_vec()),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

fn app_selector() -> Selector {
    Selector::try_from(LabelSelector {
        match_labels: Some(BTreeMap::from([("app".to_string(), "db".to_string())])),
        ..Default::default()
    })
    .expect("selector")
}

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

fn target(context: &str, namespace: &str) -> Target {
    Target {
        context: context.into(),
        namespace: namespace.into(),
        ..Default::default()
    }
}

#[test]
fn a_copy_has_the_source_data_and_labels_with_prefix_drops_and_additions() {
    let source = secret("db", &[("app", "db"), ("tier", "internal")], "s3cret");
    let target = Target {
        prefix: "copy-".into(),
        drop_labels: vec!["tier".into()],
        add_labels: BTreeMap::from([("team".to_string(), "data".to_string())]),
        ..target("region-1", "apps")
    };
    let copy = desired_copy(&source, &key(), &target);
    assert_eq!(copy.metadata.name.as_deref(), Some("copy-db"));
    assert_eq!(copy.metadata.namespace.as_deref(), Some("apps"));
    assert_eq!(copy.data, source.data);
    assert_eq!(copy.type_.as_deref(), Some("Opaque"));
    let labels = copy.metadata.labels.expect("labels");
    assert_eq!(
        labels,
        BTreeMap::from([
            ("app".to_string(), "db".to_string()),
            ("team".to_string(), "data".to_string()),
            (
                REPLICATED_SECRET_NAME_LABEL.to_string(),
                "ops.creds".to_string()
            ),
        ])
    );
    let annotations = copy.metadata.annotations.expect("annotations");
    assert!(!annotations.contains_key(LAST_APPLIED_ANNOTATION));
    assert_eq!(annotations.get("note").map(String::as_str), Some("kept"));
    // Nothing of the source object's identity is carried over.
    assert_eq!(copy.metadata.uid, None);
    assert_eq!(copy.metadata.resource_version, None);
}

#[test]
fn targets_default_their_namespace_and_count_once() {
    let rs = ReplicatedSecret::new(
        "creds",
        ReplicatedSecretSpec {
            selector: None,
            replication_targets: Some(vec![
                ReplicationTarget {
                    k8s_context_name: Some("east".into()),
                    ..Default::default()
                },
                ReplicationTarget {
                    k8s_context_name: Some("east".into()),
                    namespace: Some("ops".into()),
                    target_prefix: Some("ignored-".into()),
                    ..Default::default()
                },
                ReplicationTarget {
                    namespace: Some("apps".into()),
                    ..Default::default()
                },
            ]),
        },
    );
    let found = targets(&rs, "ops");
    assert_eq!(found.len(), 2);
    assert_eq!(
        (
            found[0].context.as_str(),
            found[0].namespace.as_str(),
            found[0].prefix.as_str()
        ),
        ("east", "ops", "")
    );
    assert_eq!(
        (found[1].context.as_str(), found[1].namespace.as_str()),
        ("", "apps")
    );
}

#[test]
fn sources_are_the_matching_secrets_that_are_not_copies() {
    let secrets = vec![
        secret("match", &[("app", "db")], "a"),
        secret("other", &[("app", "web")], "b"),
        secret(
            "a-copy",
            &[("app", "db"), (REPLICATED_SECRET_NAME_LABEL, "x.y")],
            "c",
        ),
    ];
    let names: Vec<_> = sources(&secrets, &app_selector())
        .iter()
        .map(|s| s.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, vec!["match"]);
}

#[test]
fn a_target_where_the_sources_are_is_a_loop_unless_copies_leave_the_selector() {
    let source = secret("db", &[("app", "db")], "a");
    let sources = vec![&source];
    let selector = app_selector();
    assert!(is_loop(&key(), &target("", "ops"), &selector, &sources));
    let prefixed = Target {
        prefix: "copy-".into(),
        ..target("", "ops")
    };
    assert!(
        is_loop(&key(), &prefixed, &selector, &sources),
        "a prefixed copy is still selected"
    );
    let dropped = Target {
        drop_labels: vec!["app".into()],
        ..prefixed
    };
    assert!(!is_loop(&key(), &dropped, &selector, &sources));
    assert!(!is_loop(&key(), &target("", "apps"), &selector, &sources));
    assert!(!is_loop(
        &key(),
        &target("east", "ops"),
        &selector,
        &sources
    ));
}

fn live_copy(desired: &Secret) -> Secret {
    // What the API server returns after an apply: the stamped object plus server fields.
    let mut value = serde_json::to_value(desired).expect("json");
    value["apiVersion"] = "v1".into();
    value["kind"] = "Secret".into();
    stamp(&mut value);
    value["metadata"]["resourceVersion"] = "5".into();
    serde_json::from_value(value).expect("secret")
}

#[test]
fn copy_actions_follow_ownership_and_immutability() {
    let source = secret("db", &[("app", "db")], "a");
    let desired = desired_copy(&source, &key(), &target("east", "ops"));
    assert_eq!(
        copy_action(&desired, None, &key(), false),
        CopyAction::Apply
    );

    let mut foreign = live_copy(&desired);
    foreign.metadata.labels = None;
    assert_eq!(
        copy_action(&desired, Some(&foreign), &key(), false),
        CopyAction::Conflict { owner: None }
    );
    let mut other_rs = live_copy(&desired);
    other_rs
        .metadata
        .labels
        .get_or_insert_default()
        .insert(REPLICATED_SECRET_NAME_LABEL.into(), "ops.other".into());
    assert_eq!(
        copy_action(&desired, Some(&other_rs), &key(), false),
        CopyAction::Conflict {
            owner: Some("ops.other".into())
        }
    );

    let mut immutable = live_copy(&desired);
    immutable.immutable = Some(true);
    assert_eq!(
        copy_action(&desired, Some(&immutable), &key(), false),
        CopyAction::Apply,
        "an immutable copy that is current is left alone"
    );
    let rotated = desired_copy(
        &secret("db", &[("app", "db")], "b"),
        &key(),
        &target("east", "ops"),
    );
    assert_eq!(
        copy_action(&rotated, Some(&immutable), &key(), false),
        CopyAction::Immutable
    );
    assert_eq!(
        copy_action(&rotated, Some(&immutable), &key(), true),
        CopyAction::Recreate
    );
}

#[test]
fn a_current_copy_needs_no_write_and_an_edited_one_does() {
    let source = secret("db", &[("app", "db")], "a");
    let desired = desired_copy(&source, &key(), &target("east", "ops"));
    let live = live_copy(&desired);
    assert!(!needs_write(&desired, &live));
    let mut edited = live.clone();
    edited.data = Some(BTreeMap::from([(
        "password".to_string(),
        ByteString(b"hand".to_vec()),
    )]));
    assert!(needs_write(&desired, &edited));
}

#[test]
fn prunable_copies_are_ours_unwanted_and_not_orphaned() {
    let ours = |name: &str| secret(name, &[(REPLICATED_SECRET_NAME_LABEL, "ops.creds")], "x");
    let mut orphan = ours("orphan");
    orphan
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(ORPHAN_ANNOTATION.into(), "true".into());
    let copies = vec![
        ours("wanted"),
        ours("stale"),
        orphan,
        secret(
            "foreign",
            &[(REPLICATED_SECRET_NAME_LABEL, "ops.other")],
            "x",
        ),
    ];
    let wanted = BTreeSet::from(["wanted".to_string()]);
    assert_eq!(
        prunable(&copies, &key(), &wanted),
        vec!["stale".to_string()]
    );
}

fn outcome(context: &str, replicated: bool, reason: &str) -> TargetOutcome {
    TargetOutcome {
        context: context.into(),
        namespace: "ops".into(),
        replicated,
        reason: reason.into(),
        message: String::new(),
        failure: (!replicated).then_some(crate::clusters::FailureCategory::Transient),
    }
}

#[test]
fn a_failing_target_remembers_copies_placed_before_it_failed() {
    let placed_of = |status: &ReplicatedSecretStatus, context: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.cluster == context)
            .and_then(|c| c.copies_placed)
    };
    let first = replication_status(
        None,
        &[
            outcome("west", true, REASON_REPLICATED),
            outcome("east", false, REASON_UNKNOWN_CONTEXT),
        ],
        Some(1),
        &time(10),
    );
    assert_eq!(placed_of(&first, "west"), None, "True says it already");
    assert_eq!(placed_of(&first, "east"), None, "never placed");

    // West's ClientConfig goes: it fails, still holding copies, through further failures.
    let mut status = first;
    for reason in [REASON_UNKNOWN_CONTEXT, REASON_UNREACHABLE] {
        status = replication_status(
            Some(&status),
            &[
                outcome("west", false, reason),
                outcome("east", false, REASON_UNKNOWN_CONTEXT),
            ],
            Some(1),
            &time(20),
        );
        assert_eq!(placed_of(&status, "west"), Some(true), "{reason}");
        assert_eq!(placed_of(&status, "east"), None, "{reason}");
    }
    let mut rs = ReplicatedSecret::new("creds", ReplicatedSecretSpec::default());
    rs.status = Some(status.clone());
    assert!(may_hold_copies(&rs, "west", "ops"));
    assert!(!may_hold_copies(&rs, "east", "ops"));

    // Replicated again: the True condition says it.
    let again = replication_status(
        Some(&status),
        &[outcome("west", true, REASON_REPLICATED)],
        Some(2),
        &time(30),
    );
    assert_eq!(placed_of(&again, "west"), None);
}

#[test]
fn conditions_keep_their_transition_time_until_their_status_changes() {
    let first = replication_status(
        None,
        &[
            outcome("west", true, REASON_REPLICATED),
            outcome("east", false, REASON_UNREACHABLE),
        ],
        Some(1),
        &time(10),
    );
    let conditions = first.conditions.clone().expect("conditions");
    assert_eq!(
        conditions.iter().map(|c| c.cluster.as_str()).collect::<Vec<_>>(),
        vec!["east", "west"],
        "sorted by cluster"
    );

    // Same statuses (east's reason changed but not its status): times stay.
    let second = replication_status(
        Some(&first),
        &[
            outcome("west", true, REASON_REPLICATED),
            outcome("east", false, REASON_FAILED),
        ],
        Some(1),
        &time(20),
    );
    let times: Vec<_> =
        second.conditions.iter().flatten().map(|c| c.last_transition_time.clone()).collect();
    assert_eq!(times, vec![Some(time(10)), Some(time(10))]);

    // East recovers: only its time moves.
    let third = replication_status(
        Some(&second),
        &[
            outcome("west", true, REASON_REPLICATED),
            outcome("east", true, REASON_REPLICATED),
        ],
        Some(2),
        &time(30),
    );
    let east = third.conditions.iter().flatten().find(|c| c.cluster == "east").expect("east");
    assert_eq!(east.last_transition_time, Some(time(30)));
    assert_eq!(east.status, CONDITION_TRUE);
    assert_eq!(third.observed_generation, Some(2));
    assert_eq!(
        remembered_targets(Some(&third)),
        vec![
            ("east".to_string(), "ops".to_string()),
            ("west".to_string(), "ops".to_string())
        ]
    );
}

#[test]
fn copy_labels_name_their_replicated_secret_both_ways() {
    assert_eq!(key().label_value(), "ops.creds");
    assert_eq!(
        ReplicationKey::from_label_value("ops.creds.v2"),
        Some(ReplicationKey {
            namespace: "ops".into(),
            name: "creds.v2".into()
        })
    );
    assert_eq!(ReplicationKey::from_label_value("nodot"), None);
    assert!(key().has_valid_label_value());
    let long = ReplicationKey {
        namespace: "n".repeat(30),
        name: "r".repeat(33),
    };
    assert!(!long.has_valid_label_value(), "64 characters");
    assert_eq!(
        key().copy_selector(),
        "k8ssandra.io/replicated-secret-name=ops.creds"
    );
}

#[test]
fn copies_may_be_in_a_target_replicated_to_or_waiting_to_be_pruned() {
    let condition = |cluster: &str, status: &str, reason: &str| ReplicationCondition {
        cluster: cluster.into(),
        namespace: Some("db".into()),
        type_: "Replicated".into(),
        status: status.into(),
        reason: Some(reason.into()),
        ..Default::default()
    };
    let mut rs = ReplicatedSecret::new("creds", ReplicatedSecretSpec::default());
    rs.status = Some(ReplicatedSecretStatus {
        conditions: Some(vec![
            condition("placed", CONDITION_TRUE, REASON_REPLICATED),
            // Written by a pass that found the removed target's context unknown: the next pass
            // must still wait, not forget the copies.
            condition("pruning", "False", REASON_PRUNE_PENDING),
            condition("never", "False", REASON_UNKNOWN_CONTEXT),
        ]),
        observed_generation: None,
    });
    assert!(may_hold_copies(&rs, "placed", "db"));
    assert!(may_hold_copies(&rs, "pruning", "db"));
    assert!(!may_hold_copies(&rs, "never", "db"));
    assert!(
        !may_hold_copies(&rs, "placed", "other"),
        "another namespace"
    );
    assert!(!may_hold_copies(&rs, "unknown", "db"), "no condition");
}
