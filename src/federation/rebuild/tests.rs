use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::api::cassdc::{CassandraDatacenter, DatacenterCondition};
use crate::federation::observed::ObservedDatacenter;
use crate::federation::rollout::tests::{
    absent, at, plan_of, plan_of_datacenters, present, remote_dc,
};

/// A datacenter as its region shows it: Ready or not, marked for a rebuild or not.
fn seen(name: &str, ready: bool, marked: bool) -> (String, ObservedDatacenter) {
    let mut dc: CassandraDatacenter = remote_dc(name, ready);
    if marked {
        dc.metadata.annotations = Some(BTreeMap::from([(
            REBUILD_DC_ANNOTATION.to_string(),
            name.to_string(),
        )]));
    }
    at(name, RemoteState::Present(Arc::new(dc.into())))
}

fn observed(entries: Vec<(String, ObservedDatacenter)>) -> ObservedCluster {
    ObservedCluster {
        datacenters: entries.into_iter().collect(),
        ..Default::default()
    }
}

fn next_of(pending: &[PendingRebuild]) -> Vec<(&str, &RebuildNext)> {
    pending.iter().map(|p| (p.datacenter.as_str(), &p.next)).collect()
}

#[test]
fn a_datacenter_created_beside_a_running_one_is_marked() {
    let new_cluster = observed(vec![absent("dc1"), absent("dc2")]);
    assert!(!rebuild_when_created(&new_cluster, "dc1"));
    let running = observed(vec![present("dc1", true), absent("dc2")]);
    assert!(rebuild_when_created(&running, "dc2"));
    // Initialized counts even while dc1 rolls (not Ready now).
    let mut rolling = remote_dc("dc1", false);
    if let Some(status) = rolling.status.as_mut() {
        status.conditions.get_or_insert_default().push(DatacenterCondition {
            type_: CONDITION_INITIALIZED.into(),
            status: "True".into(),
            ..Default::default()
        });
    }
    let rolling = observed(vec![
        at("dc1", RemoteState::Present(Arc::new(rolling.into()))),
        absent("dc2"),
    ]);
    assert!(rebuild_when_created(&rolling, "dc2"));
}

#[test]
fn a_marked_datacenter_rebuilds_from_the_first_ready_one_once_the_keyspaces_follow() {
    let plan = plan_of(&["dc1", "dc2", "dc3"]);
    let world = observed(vec![
        seen("dc1", false, false),
        seen("dc2", true, false),
        seen("dc3", true, true),
    ]);
    let waiting = pending_rebuilds(&plan, &world, None, false);
    assert!(matches!(
        next_of(&waiting)[..],
        [("dc3", RebuildNext::Wait(_))]
    ));
    let pending = pending_rebuilds(&plan, &world, None, true);
    let [("dc3", RebuildNext::Run(task))] = next_of(&pending)[..] else {
        panic!("{pending:?}");
    };
    assert_eq!(task.name, "dc3-rebuild");
    assert_eq!(task.datacenter, "dc3");
    assert_eq!(task.namespace, "ns");
    // dc1 is not Ready: dc2 is the first one that is.
    assert_eq!(task.source_datacenter, "dc2");
    assert_eq!(task.max_concurrent_pods, 1);
    assert_eq!(pending[0].context, "ctx-dc3");
}

#[test]
fn a_marked_datacenter_that_is_not_ready_waits() {
    let plan = plan_of(&["dc1", "dc2"]);
    let world = observed(vec![seen("dc1", true, false), seen("dc2", false, true)]);
    let pending = pending_rebuilds(&plan, &world, None, true);
    assert!(matches!(&pending[0].next, RebuildNext::Wait(why) if why.contains("not Ready")));
}

/// dc1, dc2 and dc3, dc3 with `rebuild` options.
fn plan_with_rebuild(rebuild: serde_json::Value) -> ClusterPlan {
    plan_of_datacenters(vec![
        json!({"metadata": {"name": "dc1"}, "k8sContext": "ctx-dc1", "size": 3}),
        json!({"metadata": {"name": "dc2"}, "k8sContext": "ctx-dc2", "size": 3}),
        json!({"metadata": {"name": "dc3"}, "k8sContext": "ctx-dc3", "size": 4, "rebuild": rebuild}),
    ])
}

#[test]
fn the_source_and_concurrency_come_from_the_spec_then_the_annotation() {
    let world = observed(vec![
        seen("dc1", true, false),
        seen("dc2", true, false),
        seen("dc3", true, true),
    ]);
    let run = |plan: &ClusterPlan, annotation: Option<&str>| match &pending_rebuilds(
        plan, &world, annotation, true,
    )[0]
    .next
    {
        RebuildNext::Run(task) => Ok((task.source_datacenter.clone(), task.max_concurrent_pods)),
        RebuildNext::Wait(why) => Err(why.clone()),
    };
    let spec = plan_with_rebuild(json!({"sourceDc": "dc2", "maxConcurrentRebuilds": 2}));
    assert_eq!(run(&spec, Some("dc1")), Ok(("dc2".to_string(), 2)));
    let annotation_only = plan_with_rebuild(json!({"maxConcurrentRebuilds": 0}));
    // 0: every pod of a rack at once, sent as the datacenter's size.
    assert_eq!(
        run(&annotation_only, Some("dc2")),
        Ok(("dc2".to_string(), 4))
    );
    let unknown = plan_with_rebuild(json!({"sourceDc": "dc9"}));
    assert!(run(&unknown, None).is_err_and(|why| why.contains("dc9")));
    let itself = plan_with_rebuild(json!({"sourceDc": "dc3"}));
    assert!(run(&itself, None).is_err());
}

#[test]
fn the_condition_says_who_rebuilds_from_where_and_what_failed() {
    let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    assert_eq!(rebuild_condition(&[], None, None, now.clone()), None);
    let running = rebuild_condition(
        &[(
            "dc2".into(),
            RebuildState::Running {
                task: "dc2-rebuild".into(),
                source: "dc1".into(),
                succeeded: 1,
                total: 3,
            },
        )],
        None,
        Some(2),
        now.clone(),
    )
    .expect("condition");
    assert_eq!(
        (running.status.as_str(), running.reason.as_str()),
        ("False", REASON_REBUILDING)
    );
    assert_eq!(
        running.message,
        "dc2 rebuilding from dc1 (CassandraTask dc2-rebuild: 1 of 3 pods done)"
    );
    let done = rebuild_condition(
        &[(
            "dc2".into(),
            RebuildState::Done {
                source: "dc1".into(),
            },
        )],
        Some(&running),
        Some(2),
        now.clone(),
    )
    .expect("condition");
    assert_eq!(
        (done.status.as_str(), done.reason.as_str()),
        ("True", REASON_REBUILT)
    );
    let failed = rebuild_condition(
        &[(
            "dc2".into(),
            RebuildState::Failed {
                task: "dc2-rebuild".into(),
                message: "stream failed".into(),
            },
        )],
        None,
        None,
        now.clone(),
    )
    .expect("condition");
    assert_eq!(failed.reason, REASON_REBUILD_FAILED);
    assert!(failed.message.contains("delete it to try again"));
    // Nothing marked any more: what was not True becomes True, True stays as it is.
    let ended = rebuild_condition(&[], Some(&running), None, now.clone()).expect("condition");
    assert_eq!(
        (ended.status.as_str(), ended.reason.as_str()),
        ("True", REASON_REBUILT)
    );
    assert_eq!(rebuild_condition(&[], Some(&done), None, now), None);
}
