use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::api::cassdc::DatacenterCondition;
use crate::api::k8ssandra_cluster::K8ssandraClusterStatus;
use crate::federation::observed::ObservedDatacenter;
use crate::federation::rollout::decide;
use crate::federation::rollout::tests::{
    absent, at, in_step, plan_of, present, remote_dc, stopped,
};

fn time(seconds: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(seconds).expect("valid timestamp"))
}

/// What the regions show; the system keyspaces replicate to none of the datacenters.
fn observed(
    entries: Vec<(String, ObservedDatacenter)>,
    previous: Option<&K8ssandraClusterStatus>,
) -> ObservedCluster {
    let mut observed =
        ObservedCluster::new(entries.into_iter().collect::<BTreeMap<_, _>>(), previous);
    observed.keyspace_replication = Some(BTreeMap::new());
    observed
}

/// One reconcile: plan `names`, observe `entries`, decide, compute the status at `now`.
fn reconcile(
    names: &[&str],
    entries: Vec<(String, ObservedDatacenter)>,
    previous: Option<&K8ssandraClusterStatus>,
    now: i64,
) -> K8ssandraClusterStatus {
    let plan = plan_of(names);
    let observed = in_step(&plan, observed(entries, previous));
    let actions = decide(&plan, &observed);
    let input = StatusInput {
        previous,
        generation: Some(7),
        now: time(now),
        reconcile_error: None,
        unresolved_seeds: None,
    };
    cluster_status(&input, &plan, &observed, &actions)
}

fn condition<'a>(status: &'a K8ssandraClusterStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .as_deref()
        .and_then(|c| find_condition(c, type_))
        .unwrap_or_else(|| panic!("no {type_} condition"))
}

fn state(status: &K8ssandraClusterStatus, type_: &str) -> (String, String) {
    let c = condition(status, type_);
    (c.status.clone(), c.reason.clone())
}

fn initialized_dc(name: &str, ready: bool) -> (String, ObservedDatacenter) {
    let mut dc = remote_dc(name, ready);
    if let Some(status) = dc.status.as_mut() {
        status.conditions.get_or_insert_with(Vec::new).push(DatacenterCondition {
            type_: CONDITION_INITIALIZED.into(),
            status: "True".into(),
            ..Default::default()
        });
    }
    at(name, RemoteState::Present(std::sync::Arc::new(dc.into())))
}

#[test]
fn all_ready() {
    let status = reconcile(
        &["dc1", "dc2"],
        vec![present("dc1", true), present("dc2", true)],
        None,
        10,
    );
    assert_eq!(
        state(&status, CONDITION_READY),
        ("True".into(), REASON_ALL_READY.into())
    );
    assert_eq!(
        state(&status, CONDITION_PROGRESSING),
        ("False".into(), REASON_RECONCILED.into())
    );
    assert_eq!(
        state(&status, CONDITION_DEGRADED),
        ("False".into(), REASON_NO_PROBLEMS.into())
    );
    assert_eq!(
        state(&status, CONDITION_REGION_UNREACHABLE),
        ("False".into(), REASON_ALL_REACHABLE.into())
    );
    assert_eq!(state(&status, CONDITION_CASSANDRA_INITIALIZED).0, "True");
    assert_eq!(status.observed_generation, Some(7));
    assert_eq!(
        condition(&status, CONDITION_READY).observed_generation,
        Some(7)
    );
    assert_eq!(
        (status.ready_datacenters, status.total_datacenters),
        (Some(2), Some(2))
    );
    assert_eq!(status.datacenter_summary.as_deref(), Some("2/2"));
    assert_eq!(status.error, None);
    let dcs = status.datacenters.clone().unwrap_or_default();
    assert_eq!(dcs["dc1"].context_name.as_deref(), Some("ctx-dc1"));
    assert!(dcs["dc1"].cassandra.as_ref().is_some_and(|s| s.is_ready()));
}

#[test]
fn a_new_cluster_is_progressing_in_order() {
    let status = reconcile(
        &["dc1", "dc2"],
        vec![absent("dc1"), absent("dc2")],
        None,
        10,
    );
    assert_eq!(
        state(&status, CONDITION_READY),
        ("False".into(), REASON_NOT_READY.into())
    );
    assert_eq!(
        state(&status, CONDITION_PROGRESSING),
        ("True".into(), REASON_CREATING.into())
    );
    let message = &condition(&status, CONDITION_PROGRESSING).message;
    assert!(message.contains("dc1: creating"), "{message}");
    assert!(
        message.contains("dc2: waiting for datacenter dc1 to be Ready"),
        "{message}"
    );
    let ready_message = &condition(&status, CONDITION_READY).message;
    assert!(
        ready_message.starts_with("0/2 datacenters Ready"),
        "{ready_message}"
    );
    assert_eq!(
        state(&status, CONDITION_CASSANDRA_INITIALIZED),
        ("False".into(), REASON_NOT_INITIALIZED.into())
    );
    assert_eq!(
        status.datacenters, None,
        "entries appear once a datacenter is seen"
    );
    assert_eq!(status.datacenter_summary.as_deref(), Some("0/2"));

    let status = reconcile(
        &["dc1", "dc2"],
        vec![present("dc1", true), absent("dc2")],
        Some(&status),
        20,
    );
    assert_eq!(
        state(&status, CONDITION_PROGRESSING),
        ("True".into(), REASON_CREATING.into())
    );
    assert_eq!(status.datacenter_summary.as_deref(), Some("1/2"));
}

#[test]
fn an_initialized_datacenter_that_is_not_ready_is_updating() {
    let status = reconcile(&["dc1"], vec![initialized_dc("dc1", false)], None, 10);
    assert_eq!(
        state(&status, CONDITION_PROGRESSING),
        ("True".into(), REASON_UPDATING.into())
    );
    assert_eq!(state(&status, CONDITION_CASSANDRA_INITIALIZED).0, "True");
}

#[test]
fn transition_times_move_only_when_the_status_changes() {
    let first = reconcile(&["dc1"], vec![present("dc1", false)], None, 10);
    let second = reconcile(&["dc1"], vec![present("dc1", false)], Some(&first), 20);
    assert_eq!(
        condition(&second, CONDITION_READY).last_transition_time,
        time(10)
    );
    assert_eq!(
        condition(&second, CONDITION_DEGRADED).last_transition_time,
        time(10)
    );
    let third = reconcile(&["dc1"], vec![present("dc1", true)], Some(&second), 30);
    assert_eq!(
        condition(&third, CONDITION_READY).last_transition_time,
        time(30)
    );
    assert_eq!(
        condition(&third, CONDITION_PROGRESSING).last_transition_time,
        time(30)
    );
    assert_eq!(
        condition(&third, CONDITION_DEGRADED).last_transition_time,
        time(10)
    );
}

#[test]
fn cassandra_initialized_is_never_cleared() {
    let up = reconcile(&["dc1"], vec![present("dc1", true)], None, 10);
    assert_eq!(state(&up, CONDITION_CASSANDRA_INITIALIZED).0, "True");
    let lost = reconcile(&["dc1"], vec![absent("dc1")], Some(&up), 20);
    assert_eq!(state(&lost, CONDITION_CASSANDRA_INITIALIZED).0, "True");
    assert_eq!(
        condition(&lost, CONDITION_CASSANDRA_INITIALIZED).last_transition_time,
        time(10)
    );
    // The datacenter stays known (it will be re-created), without a stale cass-operator status.
    let entry = lost.datacenters.clone().unwrap_or_default().remove("dc1").expect("kept");
    assert_eq!(entry.cassandra, None);
    assert_eq!(entry.context_name.as_deref(), Some("ctx-dc1"));
}

#[test]
fn unreachable_regions_are_named_and_their_last_status_kept() {
    let up = reconcile(
        &["dc1", "dc2"],
        vec![present("dc1", true), present("dc2", true)],
        None,
        10,
    );
    let down = reconcile(
        &["dc1", "dc2"],
        vec![
            present("dc1", true),
            at(
                "dc2",
                RemoteState::Unreachable {
                    reason: "dial tcp: connection refused".into(),
                },
            ),
        ],
        Some(&up),
        20,
    );
    assert_eq!(
        state(&down, CONDITION_REGION_UNREACHABLE),
        ("True".into(), REASON_REGION_UNREACHABLE.into())
    );
    assert_eq!(
        condition(&down, CONDITION_REGION_UNREACHABLE).message,
        "region ctx-dc2: dial tcp: connection refused"
    );
    assert_eq!(
        state(&down, CONDITION_DEGRADED),
        ("True".into(), REASON_REGION_UNREACHABLE.into())
    );
    assert_eq!(state(&down, CONDITION_READY).0, "False");
    assert_eq!(
        state(&down, CONDITION_PROGRESSING),
        ("False".into(), REASON_BLOCKED.into())
    );
    assert_eq!(
        down.datacenters.as_ref().map(|d| &d["dc2"]),
        up.datacenters.as_ref().map(|d| &d["dc2"]),
        "last known entry kept"
    );
    let back = reconcile(
        &["dc1", "dc2"],
        vec![present("dc1", true), present("dc2", true)],
        Some(&down),
        30,
    );
    assert_eq!(state(&back, CONDITION_REGION_UNREACHABLE).0, "False");
    assert_eq!(state(&back, CONDITION_DEGRADED).0, "False");
}

#[test]
fn degraded_reasons_tell_the_user_what_to_do() {
    let status = reconcile(
        &["dc1", "dc2", "dc3"],
        vec![
            at("dc1", RemoteState::UnknownContext),
            at("dc2", RemoteState::NamespaceMissing),
            at(
                "dc3",
                RemoteState::Conflict {
                    owner: Some("K8ssandraCluster other/x".into()),
                },
            ),
        ],
        None,
        10,
    );
    assert_eq!(
        state(&status, CONDITION_DEGRADED),
        ("True".into(), REASON_CONFLICT.into())
    );
    let message = &condition(&status, CONDITION_DEGRADED).message;
    assert!(
        message.contains("belongs to K8ssandraCluster other/x"),
        "{message}"
    );
    assert!(
        message.contains("federator.k8ssandra.io/adopt"),
        "{message}"
    );
    assert!(
        message.contains("k8sContext \"ctx-dc1\" names no ClientConfig"),
        "{message}"
    );
    assert!(
        message.contains("namespace ns does not exist there"),
        "{message}"
    );
    assert_eq!(
        state(&status, CONDITION_PROGRESSING),
        ("False".into(), REASON_BLOCKED.into())
    );
}

#[test]
fn a_refused_rename_is_degraded() {
    let before = reconcile(
        &["dc1", "dc2"],
        vec![present("dc1", true), present("dc2", true)],
        None,
        10,
    );
    let status = reconcile(
        &["dc1", "dc3"],
        vec![present("dc1", true), present("dc2", true), absent("dc3")],
        Some(&before),
        20,
    );
    assert_eq!(
        state(&status, CONDITION_DEGRADED),
        ("True".into(), REASON_ADDED_AND_REMOVED.into())
    );
    assert!(condition(&status, CONDITION_DEGRADED).message.contains("restore dc2"));
}

#[test]
fn removed_datacenters_show_decommissioning_then_disappear() {
    let before = reconcile(
        &["dc1", "dc2"],
        vec![present("dc1", true), present("dc2", true)],
        None,
        10,
    );
    let removing = reconcile(
        &["dc1"],
        vec![present("dc1", true), present("dc2", true)],
        Some(&before),
        20,
    );
    assert_eq!(
        state(&removing, CONDITION_PROGRESSING),
        ("True".into(), REASON_DECOMMISSIONING.into())
    );
    assert_eq!(
        state(&removing, CONDITION_READY).0,
        "True",
        "Ready counts the spec's datacenters"
    );
    let entry = removing.datacenters.clone().unwrap_or_default().remove("dc2").expect("entry");
    assert_eq!(
        entry.decommission_progress.as_deref(),
        Some(DECOMMISSION_IN_PROGRESS)
    );
    // Before that, while system_auth still replicates to it.
    let plan = plan_of(&["dc1"]);
    let mut leaving = observed(
        vec![present("dc1", true), present("dc2", true)],
        Some(&before),
    );
    leaving.keyspace_replication = Some(BTreeMap::from([(
        "system_auth".to_string(),
        ["dc1", "dc2"].iter().map(|dc| dc.to_string()).collect(),
    )]));
    let input = StatusInput {
        previous: Some(&before),
        generation: Some(7),
        now: time(21),
        reconcile_error: None,
        unresolved_seeds: None,
    };
    let updating = cluster_status(&input, &plan, &leaving, &decide(&plan, &leaving));
    let entry = updating.datacenters.clone().unwrap_or_default().remove("dc2").expect("entry");
    assert_eq!(
        entry.decommission_progress.as_deref(),
        Some(UPDATING_REPLICATION)
    );
    assert!(
        condition(&updating, CONDITION_PROGRESSING).message.contains("system_auth"),
        "{:?}",
        condition(&updating, CONDITION_PROGRESSING)
    );
    assert_eq!(
        (removing.ready_datacenters, removing.total_datacenters),
        (Some(1), Some(1))
    );

    let gone = reconcile(
        &["dc1"],
        vec![present("dc1", true), absent("dc2")],
        Some(&removing),
        30,
    );
    let names: Vec<String> = gone.datacenters.clone().unwrap_or_default().into_keys().collect();
    assert_eq!(names, ["dc1"]);
    assert_eq!(
        state(&gone, CONDITION_PROGRESSING),
        ("False".into(), REASON_RECONCILED.into())
    );
}

#[test]
fn no_datacenters_and_reconcile_errors() {
    let status = reconcile(&[], vec![], None, 10);
    assert_eq!(
        state(&status, CONDITION_READY),
        ("False".into(), REASON_NO_DATACENTERS.into())
    );

    let plan = plan_of(&["dc1"]);
    let observed = observed(vec![present("dc1", true)], None);
    let actions = decide(&plan, &observed);
    let input = StatusInput {
        previous: None,
        generation: Some(3),
        now: time(10),
        reconcile_error: Some("apply to ctx-dc1 timed out after 10s"),
        unresolved_seeds: None,
    };
    let status = cluster_status(&input, &plan, &observed, &actions);
    assert_eq!(
        status.error.as_deref(),
        Some("apply to ctx-dc1 timed out after 10s")
    );
    assert_eq!(
        state(&status, CONDITION_DEGRADED),
        ("True".into(), REASON_RECONCILE_ERROR.into())
    );
}

#[test]
fn an_invalid_spec_keeps_the_datacenters_and_says_why() {
    let before = reconcile(&["dc1"], vec![present("dc1", true)], None, 10);
    let input = StatusInput {
        previous: Some(&before),
        generation: Some(8),
        now: time(20),
        reconcile_error: None,
        unresolved_seeds: None,
    };
    let error = PlanError::MissingServerVersion {
        datacenter: "dc1".into(),
    };
    let status = invalid_spec_status(&input, &error);
    assert_eq!(
        state(&status, CONDITION_READY),
        ("False".into(), REASON_INVALID_SPEC.into())
    );
    assert_eq!(
        state(&status, CONDITION_DEGRADED),
        ("True".into(), REASON_INVALID_SPEC.into())
    );
    assert_eq!(status.error.as_deref(), Some(error.to_string().as_str()));
    assert_eq!(status.datacenters, before.datacenters);
    assert_eq!(status.observed_generation, Some(8));
    assert_eq!(state(&status, CONDITION_CASSANDRA_INITIALIZED).0, "True");
}

#[test]
fn seeds_resolved_names_each_host_that_failed_and_goes_when_there_are_no_host_names() {
    let plan = plan_of(&["dc1"]);
    let observed = observed(vec![present("dc1", true)], None);
    let actions = decide(&plan, &observed);
    let with_seeds = |unresolved: Option<&[String]>, previous| {
        let input = StatusInput {
            previous,
            generation: Some(3),
            now: time(10),
            reconcile_error: None,
            unresolved_seeds: unresolved,
        };
        cluster_status(&input, &plan, &observed, &actions)
    };
    let failures = vec!["cannot resolve seed.example: timed out".to_string()];
    let failing = with_seeds(Some(&failures), None);
    let seeds = condition(&failing, CONDITION_SEEDS_RESOLVED);
    assert_eq!(seeds.status, "False");
    assert_eq!(seeds.reason, REASON_HOST_NAME_NOT_RESOLVED);
    assert!(seeds.message.contains("seed.example"));

    let resolved = with_seeds(Some(&[]), Some(&failing));
    assert_eq!(
        state(&resolved, CONDITION_SEEDS_RESOLVED),
        ("True".into(), REASON_HOST_NAMES_RESOLVED.into())
    );
    let none = with_seeds(None, Some(&resolved));
    assert!(none.conditions.iter().flatten().all(|c| c.type_ != CONDITION_SEEDS_RESOLVED));
}

#[test]
fn a_stopped_datacenter_leaves_the_cluster_ready_and_is_named() {
    let status = reconcile(
        &["dc1", "dc2"],
        vec![stopped("dc1", true), present("dc2", true)],
        None,
        10,
    );
    assert_eq!(
        state(&status, CONDITION_READY),
        ("True".into(), REASON_STOPPED.into())
    );
    let ready = condition(&status, CONDITION_READY);
    assert!(ready.message.contains("Stopped"), "{}", ready.message);
    assert!(ready.message.contains("dc1"), "{}", ready.message);
    assert_eq!(
        state(&status, CONDITION_PROGRESSING),
        ("False".into(), REASON_RECONCILED.into()),
        "a stopped datacenter is not being updated"
    );
    assert_eq!(
        (status.ready_datacenters, status.total_datacenters),
        (Some(1), Some(2))
    );
    let dcs = status.datacenters.clone().unwrap_or_default();
    assert!(
        dcs["dc1"].cassandra.as_ref().is_some_and(|s| s.is_stopped()),
        "status.datacenters.dc1 shows cass-operator's Stopped"
    );

    // Still stopping (cass-operator drains the nodes): not Ready yet, and the message says so.
    let stopping = reconcile(
        &["dc1", "dc2"],
        vec![stopped("dc1", false), present("dc2", true)],
        None,
        10,
    );
    assert_eq!(
        state(&stopping, CONDITION_READY),
        ("False".into(), REASON_NOT_READY.into())
    );
    assert_eq!(state(&stopping, CONDITION_PROGRESSING).0, "True");
}

#[test]
fn a_refused_region_watch_is_degraded_and_names_it_without_blocking() {
    let plan = plan_of(&["dc1"]);
    let mut observed = observed(vec![present("dc1", true)], None);
    observed.refused_watches = vec![
        "watching cassandradatacenters in all namespaces of region ctx-dc1 is refused (403 Forbidden): no".into(),
    ];
    let actions = decide(&plan, &observed);
    let input = StatusInput {
        previous: None,
        generation: Some(1),
        now: time(10),
        reconcile_error: None,
        unresolved_seeds: None,
    };
    let status = cluster_status(&input, &plan, &observed, &actions);
    assert_eq!(
        state(&status, CONDITION_DEGRADED),
        ("True".into(), REASON_WATCH_REFUSED.into())
    );
    let message = &condition(&status, CONDITION_DEGRADED).message;
    assert!(
        message.contains("cassandradatacenters") && message.contains("ctx-dc1"),
        "{message}"
    );
    assert_eq!(
        state(&status, CONDITION_PROGRESSING),
        ("False".into(), REASON_RECONCILED.into()),
        "nothing is blocked"
    );
    assert_eq!(state(&status, CONDITION_READY).0, "True");
}

#[test]
fn a_refused_num_tokens_change_is_degraded_and_says_why() {
    let mut plan = plan_of(&["dc1", "dc2"]);
    plan.datacenters[0].num_tokens_change = Some(crate::federation::plan::NumTokensChange {
        running: 256,
        requested: "16".into(),
    });
    let observed = observed(vec![present("dc1", true), present("dc2", true)], None);
    let actions = decide(&plan, &observed);
    let input = StatusInput {
        previous: None,
        generation: Some(7),
        now: time(10),
        reconcile_error: None,
        unresolved_seeds: None,
    };
    let status = cluster_status(&input, &plan, &observed, &actions);
    assert_eq!(
        state(&status, CONDITION_DEGRADED),
        ("True".into(), REASON_NUM_TOKENS_CHANGE_REFUSED.into())
    );
    let message = &condition(&status, CONDITION_DEGRADED).message;
    assert!(
        message.starts_with(
            "datacenter dc1: config.cassandraYaml.num_tokens cannot change from 256 to 16"
        ) && message.contains("Cassandra refuses to start a node whose num_tokens changed"),
        "{message}"
    );
    assert_eq!(
        state(&status, CONDITION_PROGRESSING),
        ("False".into(), REASON_BLOCKED.into())
    );
}
