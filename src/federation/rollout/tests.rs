use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::*;
use crate::api::cassdc::{
    CONDITION_READY, CONDITION_STOPPED, CassandraDatacenter, CassandraDatacenterStatus,
    DatacenterCondition, PROGRESS_READY, PROGRESS_UPDATING,
};
use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::federation::observed::ObservedDatacenter;
use crate::federation::plan::plan;
use crate::federation::progressive::RESTART_HASH_ANNOTATION;
use crate::workload::labels::DECOMMISSION_ON_DELETE_ANNOTATION;

/// A plan with the named datacenters, dcN in region `ctx-dcN`.
pub(crate) fn plan_of(names: &[&str]) -> ClusterPlan {
    let datacenters: Vec<_> = names
        .iter()
        .map(|name| json!({"metadata": {"name": name}, "k8sContext": format!("ctx-{name}"), "size": 3}))
        .collect();
    plan_of_datacenters(datacenters)
}

/// A plan with these `spec.cassandra.datacenters` entries.
pub(crate) fn plan_of_datacenters(datacenters: Vec<serde_json::Value>) -> ClusterPlan {
    let k8c: K8ssandraCluster = serde_json::from_value(json!({
        "apiVersion": "k8ssandra.io/v1alpha1", "kind": "K8ssandraCluster",
        "metadata": {"name": "demo", "namespace": "ns"},
        "spec": {"cassandra": {
            "serverVersion": "4.0.17",
            "storageConfig": {"cassandraDataVolumeClaimSpec": {"storageClassName": "standard"}},
            "datacenters": datacenters
        }}
    }))
    .expect("valid K8ssandraCluster");
    plan(&k8c).expect("plans")
}

/// A CassandraDatacenter as a region shows it, Ready or still working.
pub(crate) fn remote_dc(name: &str, ready: bool) -> CassandraDatacenter {
    let mut dc = CassandraDatacenter::new(name, Default::default());
    dc.metadata.generation = Some(1);
    dc.status = Some(CassandraDatacenterStatus {
        cassandra_operator_progress: Some(
            if ready {
                PROGRESS_READY
            } else {
                PROGRESS_UPDATING
            }
            .into(),
        ),
        conditions: Some(vec![DatacenterCondition {
            type_: CONDITION_READY.into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Default::default()
        }]),
        observed_generation: Some(1),
        ..Default::default()
    });
    dc
}

/// A CassandraDatacenter stopped (`stopped: true`) as cass-operator reports it: Stopped True,
/// Ready False; `done` once its nodes are down (progress Ready), else still Updating.
pub(crate) fn stopped_dc(name: &str, done: bool) -> CassandraDatacenter {
    let mut dc = remote_dc(name, done);
    if let Some(status) = dc.status.as_mut() {
        status.conditions = Some(vec![
            DatacenterCondition {
                type_: CONDITION_READY.into(),
                status: "False".into(),
                ..Default::default()
            },
            DatacenterCondition {
                type_: CONDITION_STOPPED.into(),
                status: "True".into(),
                ..Default::default()
            },
        ]);
    }
    dc
}

pub(crate) fn stopped(name: &str, done: bool) -> (String, ObservedDatacenter) {
    at(
        name,
        RemoteState::Present(std::sync::Arc::new(stopped_dc(name, done).into())),
    )
}

pub(crate) fn at(name: &str, state: RemoteState) -> (String, ObservedDatacenter) {
    (
        name.to_string(),
        ObservedDatacenter {
            context: format!("ctx-{name}"),
            namespace: "ns".into(),
            state,
        },
    )
}

pub(crate) fn present(name: &str, ready: bool) -> (String, ObservedDatacenter) {
    at(
        name,
        RemoteState::Present(std::sync::Arc::new(remote_dc(name, ready).into())),
    )
}

pub(crate) fn absent(name: &str) -> (String, ObservedDatacenter) {
    at(name, RemoteState::Absent)
}

/// What the regions show; the system keyspaces replicate to none of the datacenters named.
fn observed(entries: Vec<(String, ObservedDatacenter)>, known: &[&str]) -> ObservedCluster {
    ObservedCluster {
        datacenters: entries.into_iter().collect::<BTreeMap<_, _>>(),
        known: known.iter().map(|s| s.to_string()).collect(),
        keyspace_replication: Some(BTreeMap::new()),
        ..Default::default()
    }
}

/// `observed` with every present datacenter of the plan running the plan's spec (its restart
/// hash recorded): nothing is left to restart.
pub(crate) fn in_step(plan: &ClusterPlan, mut observed: ObservedCluster) -> ObservedCluster {
    for (name, observation) in observed.datacenters.iter_mut() {
        let (Some(planned), RemoteState::Present(live)) =
            (plan.datacenter(name), &observation.state)
        else {
            continue;
        };
        let mut dc = CassandraDatacenter {
            metadata: live.meta().clone(),
            spec: planned.datacenter.spec.clone(),
            status: live.status().cloned(),
        };
        dc.metadata
            .annotations
            .get_or_insert_default()
            .insert(RESTART_HASH_ANNOTATION.into(), restart_hash(&dc.spec));
        observation.state = RemoteState::Present(std::sync::Arc::new(dc.into()));
    }
    observed
}

fn decisions(actions: &Actions) -> Vec<(&str, &Decision)> {
    actions.decisions.iter().map(|d| (d.datacenter.as_str(), &d.decision)).collect()
}

fn not_ready(datacenter: &str) -> Decision {
    Decision::Wait(WaitReason::DatacenterNotReady {
        datacenter: datacenter.into(),
    })
}

#[test]
fn a_new_cluster_creates_only_its_first_datacenter() {
    let plan = plan_of(&["dc1", "dc2", "dc3"]);
    let actions = decide(
        &plan,
        &observed(vec![absent("dc1"), absent("dc2"), absent("dc3")], &[]),
    );
    assert_eq!(
        decisions(&actions),
        [
            ("dc1", &Decision::Create),
            ("dc2", &not_ready("dc1")),
            ("dc3", &not_ready("dc1"))
        ]
    );
    assert_eq!(actions.creates().count(), 1);
    let create = actions.creates().next().expect("one create");
    assert_eq!(
        (create.context.as_str(), create.namespace.as_str()),
        ("ctx-dc1", "ns")
    );
}

#[test]
fn the_next_datacenter_waits_until_the_previous_is_ready() {
    let plan = plan_of(&["dc1", "dc2", "dc3"]);
    let starting = observed(
        vec![present("dc1", false), absent("dc2"), absent("dc3")],
        &[],
    );
    assert_eq!(
        decisions(&decide(&plan, &starting)),
        [
            ("dc1", &Decision::Update),
            ("dc2", &not_ready("dc1")),
            ("dc3", &not_ready("dc1"))
        ]
    );
    let first_ready = observed(
        vec![present("dc1", true), absent("dc2"), absent("dc3")],
        &["dc1"],
    );
    assert_eq!(
        decisions(&decide(&plan, &first_ready)),
        [
            ("dc1", &Decision::Update),
            ("dc2", &Decision::Create),
            ("dc3", &not_ready("dc2"))
        ]
    );
    let second_ready = observed(
        vec![present("dc1", true), present("dc2", true), absent("dc3")],
        &["dc1"],
    );
    assert_eq!(
        decide(&plan, &second_ready).decision("dc3"),
        Some(&Decision::Create)
    );
}

#[test]
fn a_datacenter_added_later_waits_for_every_existing_one() {
    // dc0 is inserted before existing datacenters: all of them must be Ready first.
    let plan = plan_of(&["dc0", "dc1", "dc2"]);
    let busy = observed(
        vec![absent("dc0"), present("dc1", true), present("dc2", false)],
        &["dc1", "dc2"],
    );
    assert_eq!(
        decide(&plan, &busy).decision("dc0"),
        Some(&not_ready("dc2"))
    );
    let settled = in_step(
        &plan,
        observed(
            vec![absent("dc0"), present("dc1", true), present("dc2", true)],
            &["dc1", "dc2"],
        ),
    );
    let actions = decide(&plan, &settled);
    assert_eq!(actions.decision("dc0"), Some(&Decision::Create));
    assert_eq!(
        actions.updates().count(),
        2,
        "existing datacenters still get the spec"
    );
    assert_eq!(actions.refused, None);
}

#[test]
fn a_stopped_datacenter_does_not_hold_back_the_others() {
    // dc1 is stopped (spec.stopped): it never reports Ready, and need not.
    let plan = plan_of(&["dc1", "dc2", "dc3"]);
    let added_later = observed(
        vec![stopped("dc1", true), present("dc2", true), absent("dc3")],
        &["dc1", "dc2"],
    );
    assert_eq!(
        decide(&plan, &added_later).decision("dc3"),
        Some(&Decision::Create)
    );
    // Bootstrapping in spec order: the stopped first datacenter lets the second be created.
    let bootstrapping = observed(
        vec![stopped("dc1", true), absent("dc2"), absent("dc3")],
        &["dc1"],
    );
    assert_eq!(
        decisions(&decide(&plan, &bootstrapping)),
        [
            ("dc1", &Decision::Update),
            ("dc2", &Decision::Create),
            ("dc3", &not_ready("dc2"))
        ]
    );
    // While cass-operator is still stopping its nodes, the datacenter is not settled yet.
    let stopping = observed(
        vec![stopped("dc1", false), present("dc2", true), absent("dc3")],
        &["dc1", "dc2"],
    );
    assert_eq!(
        decide(&plan, &stopping).decision("dc3"),
        Some(&not_ready("dc1"))
    );
}

#[test]
fn an_existing_datacenter_in_an_unreachable_region_holds_back_additions() {
    let plan = plan_of(&["dc1", "dc2"]);
    let observation = observed(
        vec![
            at(
                "dc1",
                RemoteState::Unreachable {
                    reason: "timeout".into(),
                },
            ),
            absent("dc2"),
        ],
        &["dc1"],
    );
    let actions = decide(&plan, &observation);
    assert_eq!(
        actions.decision("dc1"),
        Some(&Decision::Blocked(BlockReason::RegionUnreachable {
            reason: "timeout".into()
        }))
    );
    assert_eq!(
        actions.decision("dc2"),
        Some(&Decision::Wait(WaitReason::DatacenterUnobservable {
            datacenter: "dc1".into()
        }))
    );
}

#[test]
fn changes_that_restart_nothing_go_to_every_existing_datacenter_at_once() {
    let plan = plan_of(&["dc1", "dc2", "dc3"]);
    let observation = in_step(
        &plan,
        observed(
            vec![
                present("dc1", false),
                present("dc2", true),
                present("dc3", false),
            ],
            &["dc1", "dc2", "dc3"],
        ),
    );
    let mut scaled = plan.clone();
    for dc in &mut scaled.datacenters {
        dc.datacenter.spec.size = 5;
    }
    let actions = decide(&scaled, &observation);
    assert_eq!(
        actions.updates().map(|d| d.datacenter.as_str()).collect::<Vec<_>>(),
        ["dc1", "dc2", "dc3"]
    );
}

#[test]
fn one_region_down_does_not_stop_the_others() {
    let plan = plan_of(&["dc1", "dc2", "dc3"]);
    let observation = observed(
        vec![
            present("dc1", true),
            at(
                "dc2",
                RemoteState::Unreachable {
                    reason: "connection refused".into(),
                },
            ),
            at("dc3", RemoteState::UnknownContext),
        ],
        &["dc1", "dc2"],
    );
    let actions = decide(&plan, &observation);
    assert_eq!(actions.decision("dc1"), Some(&Decision::Update));
    assert!(matches!(
        actions.decision("dc2"),
        Some(Decision::Blocked(BlockReason::RegionUnreachable { .. }))
    ));
    assert_eq!(
        actions.decision("dc3"),
        Some(&Decision::Blocked(BlockReason::UnknownContext))
    );
}

#[test]
fn conflicts_missing_namespaces_and_missing_observations_are_left_alone() {
    let plan = plan_of(&["dc1", "dc2", "dc3"]);
    let observation = observed(
        vec![
            at("dc1", RemoteState::Conflict { owner: None }),
            at("dc2", RemoteState::NamespaceMissing),
        ],
        &[],
    );
    let actions = decide(&plan, &observation);
    assert_eq!(
        actions.decision("dc1"),
        Some(&Decision::Blocked(BlockReason::Conflict { owner: None }))
    );
    assert_eq!(
        actions.decision("dc2"),
        Some(&Decision::Blocked(BlockReason::NamespaceMissing))
    );
    assert_eq!(
        actions.decision("dc3"),
        Some(&Decision::Blocked(BlockReason::NotObserved))
    );
    assert_eq!(actions.creates().count() + actions.updates().count(), 0);
}

#[test]
fn a_datacenter_deleted_by_hand_is_created_again_without_counting_as_added() {
    let plan = plan_of(&["dc1", "dc2"]);
    let mut deleting = remote_dc("dc2", true);
    deleting.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
    let going = observed(
        vec![
            present("dc1", true),
            at(
                "dc2",
                RemoteState::Present(std::sync::Arc::new(deleting.into())),
            ),
        ],
        &["dc1", "dc2"],
    );
    assert_eq!(
        decide(&plan, &going).decision("dc2"),
        Some(&Decision::Wait(WaitReason::Deleting))
    );
    let gone = observed(vec![present("dc1", true), absent("dc2")], &["dc1", "dc2"]);
    assert_eq!(
        decide(&plan, &gone).decision("dc2"),
        Some(&Decision::Create)
    );
}

#[test]
fn datacenters_recreated_after_loss_do_not_deadlock() {
    let plan = plan_of(&["dc1", "dc2"]);
    let both_gone = observed(vec![absent("dc1"), absent("dc2")], &["dc1", "dc2"]);
    let actions = decide(&plan, &both_gone);
    assert_eq!(actions.decision("dc1"), Some(&Decision::Create));
    assert_eq!(actions.decision("dc2"), Some(&not_ready("dc1")));
}

#[test]
fn a_removed_datacenter_is_annotated_then_deleted() {
    let plan = plan_of(&["dc1"]);
    let observation = observed(
        vec![present("dc1", true), present("dc2", true)],
        &["dc1", "dc2"],
    );
    let actions = decide(&plan, &observation);
    assert_eq!(
        actions.decision("dc2"),
        Some(&Decision::Delete {
            annotate_first: true
        })
    );
    let delete = actions.deletes().next().expect("one delete");
    assert_eq!(
        (delete.context.as_str(), delete.namespace.as_str()),
        ("ctx-dc2", "ns")
    );

    let mut annotated = remote_dc("dc2", true);
    annotated.metadata.annotations = Some(BTreeMap::from([(
        DECOMMISSION_ON_DELETE_ANNOTATION.to_string(),
        "true".to_string(),
    )]));
    let observation = observed(
        vec![
            present("dc1", true),
            at(
                "dc2",
                RemoteState::Present(std::sync::Arc::new(annotated.into())),
            ),
        ],
        &["dc1", "dc2"],
    );
    assert_eq!(
        decide(&plan, &observation).decision("dc2"),
        Some(&Decision::Delete {
            annotate_first: false
        })
    );
}

#[test]
fn a_removed_datacenter_waits_until_no_system_keyspace_replicates_to_it() {
    let plan = plan_of(&["dc1"]);
    let mut observation = observed(
        vec![
            present("dc1", true),
            present("dc2", true),
            present("dc3", true),
        ],
        &["dc1", "dc2", "dc3"],
    );
    let in_keyspaces = |dcs: &[&str]| dcs.iter().map(|dc| dc.to_string()).collect();
    observation.keyspace_replication = Some(BTreeMap::from([
        ("system_auth".to_string(), in_keyspaces(&["dc1", "dc2"])),
        ("system_traces".to_string(), in_keyspaces(&["dc1", "dc2"])),
    ]));
    let actions = decide(&plan, &observation);
    assert_eq!(
        actions.decision("dc2"),
        Some(&Decision::Wait(WaitReason::LeavingReplication {
            keyspaces: vec!["system_auth".into(), "system_traces".into()]
        }))
    );
    // One removal at a time: dc3 waits behind dc2.
    assert_eq!(
        actions.decision("dc3"),
        Some(&Decision::Wait(WaitReason::RemovalQueued {
            behind: "dc2".into()
        }))
    );
    // Unknown (no Ready datacenter to ask yet): nothing is deleted either.
    observation.keyspace_replication = None;
    assert_eq!(
        decide(&plan, &observation).decision("dc2"),
        Some(&Decision::Wait(WaitReason::LeavingReplication {
            keyspaces: vec![]
        }))
    );
    // Out of the system keyspaces, but a keyspace of the user's still replicates to it.
    observation.keyspace_replication = Some(BTreeMap::from([
        ("system_auth".to_string(), in_keyspaces(&["dc1"])),
        ("app".to_string(), in_keyspaces(&["dc1", "dc2"])),
    ]));
    assert_eq!(
        decide(&plan, &observation).decision("dc2"),
        Some(&Decision::Blocked(BlockReason::KeyspacesReplicateToIt {
            keyspaces: vec!["app".into()]
        }))
    );
    observation.keyspace_replication = Some(BTreeMap::from([(
        "system_auth".to_string(),
        in_keyspaces(&["dc1"]),
    )]));
    assert_eq!(
        decide(&plan, &observation).decision("dc2"),
        Some(&Decision::Delete {
            annotate_first: true
        })
    );
}

#[test]
fn removals_go_one_at_a_time() {
    let plan = plan_of(&["dc1"]);
    let observation = observed(
        vec![
            present("dc1", true),
            present("dc2", true),
            present("dc3", true),
        ],
        &["dc1", "dc2", "dc3"],
    );
    let actions = decide(&plan, &observation);
    assert_eq!(
        actions.decision("dc2"),
        Some(&Decision::Delete {
            annotate_first: true
        })
    );
    assert_eq!(
        actions.decision("dc3"),
        Some(&Decision::Wait(WaitReason::RemovalQueued {
            behind: "dc2".into()
        }))
    );

    let mut decommissioning = remote_dc("dc3", true);
    decommissioning.metadata.deletion_timestamp =
        Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
    let observation = observed(
        vec![
            present("dc1", true),
            present("dc2", true),
            at(
                "dc3",
                RemoteState::Present(std::sync::Arc::new(decommissioning.into())),
            ),
        ],
        &["dc1", "dc2", "dc3"],
    );
    let actions = decide(&plan, &observation);
    assert_eq!(
        actions.decision("dc3"),
        Some(&Decision::Wait(WaitReason::Deleting))
    );
    assert_eq!(
        actions.decision("dc2"),
        Some(&Decision::Wait(WaitReason::RemovalQueued {
            behind: "dc3".into()
        }))
    );
    // Gone datacenters are not deleted again.
    let gone = observed(vec![present("dc1", true), absent("dc2")], &["dc1", "dc2"]);
    assert_eq!(decide(&plan, &gone).deletes().count(), 0);
}

#[test]
fn adding_and_removing_in_one_change_is_refused() {
    // dc2 renamed to dc3: both sides are refused, dc1 is still kept in step.
    let plan = plan_of(&["dc1", "dc3"]);
    let observation = observed(
        vec![present("dc1", true), present("dc2", true), absent("dc3")],
        &["dc1", "dc2"],
    );
    let actions = decide(&plan, &observation);
    assert_eq!(
        actions.refused,
        Some(TopologyChange {
            added: vec!["dc3".into()],
            removed: vec!["dc2".into()]
        })
    );
    let refused = Decision::Blocked(BlockReason::TopologyChangeRefused);
    assert_eq!(actions.decision("dc3"), Some(&refused));
    assert_eq!(actions.decision("dc2"), Some(&refused));
    assert_eq!(actions.decision("dc1"), Some(&Decision::Update));
    assert_eq!(actions.creates().count() + actions.deletes().count(), 0);
    assert!(actions.refused.as_ref().is_some_and(|c| c.to_string().contains("restore dc2")));
}

#[test]
fn decisions_are_deterministic() {
    let plan = plan_of(&["dc1", "dc2"]);
    let observation = observed(
        vec![present("dc1", true), absent("dc2"), present("old", true)],
        &["dc1"],
    );
    assert_eq!(decide(&plan, &observation), decide(&plan, &observation));
}

#[test]
fn a_missing_per_node_config_holds_its_datacenter_only() {
    let plan = plan_of(&["dc1", "dc2", "dc3"]);
    let mut observation = observed(
        vec![present("dc1", true), present("dc2", true), absent("dc3")],
        &["dc1", "dc2"],
    );
    let missing = |dc: &str| (dc.to_string(), format!("waiting for {dc}'s ConfigMap"));
    observation.per_node_config_missing = BTreeMap::from([missing("dc2"), missing("dc3")]);
    let held = |dc: &str| {
        Decision::Wait(WaitReason::PerNodeConfigMissing {
            detail: format!("waiting for {dc}'s ConfigMap"),
        })
    };
    assert_eq!(
        decisions(&decide(&plan, &observation)),
        [
            ("dc1", &Decision::Update),
            ("dc2", &held("dc2")),
            ("dc3", &held("dc3"))
        ]
    );
}

#[test]
fn a_refused_num_tokens_change_holds_its_datacenter_only() {
    let mut plan = plan_of(&["dc1", "dc2", "dc3"]);
    let change = crate::federation::plan::NumTokensChange {
        running: 256,
        requested: "16".into(),
    };
    // Also set on the new dc3: a datacenter that does not exist yet has nothing to keep.
    for index in [0, 2] {
        plan.datacenters[index].num_tokens_change = Some(change.clone());
    }
    let observation = observed(
        vec![present("dc1", true), present("dc2", true), absent("dc3")],
        &["dc1", "dc2"],
    );
    assert_eq!(
        decisions(&decide(&plan, &observation)),
        [
            (
                "dc1",
                &Decision::Blocked(BlockReason::NumTokensChangeRefused(change))
            ),
            ("dc2", &Decision::Update),
            ("dc3", &Decision::Create)
        ]
    );
}

/// The plan with another server version: a change that restarts every datacenter.
fn upgraded(plan: &ClusterPlan) -> ClusterPlan {
    let mut upgraded = plan.clone();
    for dc in &mut upgraded.datacenters {
        dc.datacenter.spec.server_version = "4.0.18".into();
    }
    upgraded
}

/// dcN with the restart of `plan` applied `minutes_ago`, Ready or not.
fn restarted(
    plan: &ClusterPlan,
    name: &str,
    ready: bool,
    now: Timestamp,
    minutes_ago: i64,
) -> (String, ObservedDatacenter) {
    let planned = plan.datacenter(name).expect("planned");
    let mut dc = remote_dc(name, ready);
    dc.spec = planned.datacenter.spec.clone();
    let applied = now - k8s_openapi::jiff::SignedDuration::from_mins(minutes_ago);
    let annotations = dc.metadata.annotations.get_or_insert_default();
    annotations.insert(RESTART_HASH_ANNOTATION.into(), restart_hash(&dc.spec));
    annotations.insert(
        crate::federation::progressive::RESTARTED_AT_ANNOTATION.into(),
        applied.to_string(),
    );
    at(name, RemoteState::Present(std::sync::Arc::new(dc.into())))
}

fn queued_behind(behind: &str) -> Decision {
    Decision::Wait(WaitReason::RestartQueued {
        behind: behind.into(),
        wave: crate::federation::progressive::Wave::Datacenters(1),
    })
}

#[test]
fn a_change_that_restarts_cassandra_rolls_one_datacenter_at_a_time() {
    let plan = plan_of(&["dc1", "dc2", "dc3"]);
    let names = ["dc1", "dc2", "dc3"];
    let all_ready = in_step(
        &plan,
        observed(names.iter().map(|n| present(n, true)).collect(), &names),
    );
    let upgrade = upgraded(&plan);
    let actions = decide(&upgrade, &all_ready);
    assert_eq!(
        decisions(&actions),
        [
            ("dc1", &Decision::Update),
            ("dc2", &queued_behind("dc1")),
            ("dc3", &queued_behind("dc1")),
        ]
    );
    let record = actions.decisions[0].restart.as_ref().expect("recorded");
    assert_eq!(
        record.hash,
        restart_hash(&upgrade.datacenters[0].datacenter.spec)
    );
    assert_eq!(record.changed_at, all_ready.observed_at);

    // dc1 restarts with the change: the others wait; once it is Ready, dc2 goes.
    let now = all_ready.observed_at;
    let mut rolling = in_step(
        &plan,
        observed(vec![present("dc2", true), present("dc3", true)], &names),
    );
    rolling.datacenters.extend([restarted(&upgrade, "dc1", false, now, 2)]);
    rolling.observed_at = now;
    let actions = decide(&upgrade, &rolling);
    assert_eq!(actions.decision("dc2"), Some(&queued_behind("dc1")));
    assert_eq!(actions.decision("dc1"), Some(&Decision::Update));
    // dc1 keeps the instant its restart was applied.
    assert_eq!(
        actions.decisions[0].restart.as_ref().map(|r| r.changed_at),
        Some(now - k8s_openapi::jiff::SignedDuration::from_mins(2))
    );
    rolling.datacenters.extend([restarted(&upgrade, "dc1", true, now, 2)]);
    let actions = decide(&upgrade, &rolling);
    assert_eq!(actions.decision("dc2"), Some(&Decision::Update));
    assert_eq!(actions.decision("dc3"), Some(&queued_behind("dc2")));
}

#[test]
fn a_datacenter_not_ready_past_its_deadline_halts_the_rollout_until_resumed() {
    let plan = plan_of(&["dc1", "dc2"]);
    let upgrade = upgraded(&plan);
    let now = Timestamp::from_second(1_000_000).expect("time");
    let mut observation = in_step(&plan, observed(vec![present("dc2", true)], &["dc1", "dc2"]));
    // dc1 (3 nodes: deadline 25m) took the change 40 minutes ago and is not Ready.
    observation.datacenters.extend([restarted(&upgrade, "dc1", false, now, 40)]);
    observation.observed_at = now;
    let actions = decide(&upgrade, &observation);
    let Some(Decision::Blocked(BlockReason::RolloutHalted(halt))) = actions.decision("dc2") else {
        panic!("{:?}", actions.decision("dc2"));
    };
    assert_eq!(halt.datacenter, "dc1");
    // Resumed for this generation: dc2 goes on.
    let mut resumed = upgrade.clone();
    resumed.rollout.generation = Some(4);
    resumed.rollout.resumed = true;
    assert_eq!(
        decide(&resumed, &observation).decision("dc2"),
        Some(&Decision::Update)
    );
}

#[test]
fn stopping_a_datacenter_that_is_to_be_rebuilt_is_refused() {
    let plan = plan_of(&["dc1", "dc2"]);
    let mut observation = in_step(
        &plan,
        observed(
            vec![present("dc1", true), present("dc2", true)],
            &["dc1", "dc2"],
        ),
    );
    let mut stop = plan.clone();
    for dc in &mut stop.datacenters {
        dc.datacenter.spec.stopped = Some(true);
    }
    assert_eq!(
        decide(&stop, &observation).decision("dc2"),
        Some(&Decision::Update)
    );
    let mut marked = remote_dc("dc2", true);
    marked.spec = plan.datacenter("dc2").expect("dc2").datacenter.spec.clone();
    marked
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(RESTART_HASH_ANNOTATION.into(), restart_hash(&marked.spec));
    marked.metadata.annotations.get_or_insert_default().insert(
        crate::federation::rebuild::REBUILD_DC_ANNOTATION.into(),
        "dc2".into(),
    );
    observation.datacenters.extend([at(
        "dc2",
        RemoteState::Present(std::sync::Arc::new(marked.into())),
    )]);
    let actions = decide(&stop, &observation);
    assert_eq!(
        actions.decision("dc2"),
        Some(&Decision::Blocked(BlockReason::StopRefusedWhileRebuilding))
    );
    assert_eq!(actions.decision("dc1"), Some(&Decision::Update));
}

#[test]
fn a_datacenter_being_rebuilt_holds_back_the_next_creation() {
    let plan = plan_of(&["dc1", "dc2", "dc3"]);
    let mut observation = in_step(
        &plan,
        observed(
            vec![present("dc1", true), present("dc2", true), absent("dc3")],
            &["dc1", "dc2"],
        ),
    );
    assert_eq!(
        decide(&plan, &observation).decision("dc3"),
        Some(&Decision::Create)
    );
    let mut marked = remote_dc("dc2", true);
    marked.spec = plan.datacenter("dc2").expect("dc2").datacenter.spec.clone();
    let annotations = marked.metadata.annotations.get_or_insert_default();
    annotations.insert(RESTART_HASH_ANNOTATION.into(), restart_hash(&marked.spec));
    annotations.insert(
        crate::federation::rebuild::REBUILD_DC_ANNOTATION.into(),
        "dc2".into(),
    );
    observation.datacenters.extend([at(
        "dc2",
        RemoteState::Present(std::sync::Arc::new(marked.into())),
    )]);
    assert_eq!(
        decide(&plan, &observation).decision("dc3"),
        Some(&Decision::Wait(WaitReason::DatacenterRebuilding {
            datacenter: "dc2".into()
        }))
    );
}

#[test]
fn no_datacenter_goes_out_while_its_medusa_configuration_is_missing() {
    let plan = plan_of(&["dc1"]);
    let mut seen = observed(vec![absent("dc1")], &[]);
    seen.medusa_configuration_missing = Some("waiting for MedusaConfiguration ns/shared".into());
    let actions = decide(&plan, &seen);
    let text = format!("{actions:?}");
    assert!(text.contains("MedusaConfigurationMissing"), "{text}");
}
