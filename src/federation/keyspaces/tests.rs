use std::collections::BTreeMap;
use std::sync::Arc;

use kube::Resource;

use super::*;
use crate::api::cassdc::{CassandraDatacenter, DatacenterCondition, NodeStatus};
use crate::federation::observed::ObservedDatacenter;
use crate::federation::rollout::tests::{absent, at, plan_of, present, remote_dc};

/// A Ready datacenter (Initialized too) with pods `<name>-pod-N`.
fn ready_with_pods(name: &str, pods: usize) -> (String, ObservedDatacenter) {
    let mut dc: CassandraDatacenter = remote_dc(name, true);
    if let Some(status) = dc.status.as_mut() {
        status.conditions.get_or_insert_default().push(DatacenterCondition {
            type_: CONDITION_INITIALIZED.into(),
            status: "True".into(),
            ..Default::default()
        });
        status.node_statuses =
            Some((0..pods).map(|n| (format!("{name}-pod-{n}"), NodeStatus::default())).collect());
    }
    at(name, RemoteState::Present(Arc::new(dc.into())))
}

fn observed(entries: Vec<(String, ObservedDatacenter)>, known: &[&str]) -> ObservedCluster {
    ObservedCluster {
        datacenters: entries.into_iter().collect::<BTreeMap<_, _>>(),
        known: known.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn pods(work: &KeyspaceWork) -> Vec<(&str, &str)> {
    work.coordinators.iter().map(|c| (c.context.as_str(), c.pod.pod.as_str())).collect()
}

#[test]
fn nothing_is_asked_before_a_datacenter_is_ready() {
    let plan = plan_of(&["dc1", "dc2"]);
    let seen = observed(vec![present("dc1", false), absent("dc2")], &[]);
    assert_eq!(keyspace_work(&plan, &seen, true, None, Vec::new()), None);
}

#[test]
fn ready_datacenters_join_and_their_pods_are_asked_in_spec_order() {
    let plan = plan_of(&["dc1", "dc2", "dc3"]);
    let seen = observed(
        vec![
            ready_with_pods("dc1", 3),
            ready_with_pods("dc2", 1),
            present("dc3", false),
        ],
        &[],
    );
    let work = keyspace_work(&plan, &seen, true, None, Vec::new()).expect("work");
    // dc3 is being created: neither added nor removed yet.
    assert_eq!(
        work.datacenters.joined,
        BTreeMap::from([("dc1".to_string(), 3), ("dc2".to_string(), 3)])
    );
    assert_eq!(
        pods(&work),
        vec![
            ("ctx-dc1", "dc1-pod-0"),
            ("ctx-dc1", "dc1-pod-1"),
            ("ctx-dc2", "dc2-pod-0")
        ]
    );
    assert_eq!(
        work.keyspaces,
        vec!["system_auth", "system_distributed", "system_traces"]
    );
}

#[test]
fn a_datacenter_that_joined_stays_while_it_rolls() {
    // Initialized, but not Ready (a rolling restart): still in replication, not asked.
    let plan = plan_of(&["dc1", "dc2"]);
    let (name, mut rolling) = ready_with_pods("dc2", 3);
    if let RemoteState::Present(live) = &rolling.state {
        let mut dc = CassandraDatacenter::new(&name, Default::default());
        dc.metadata = live.meta().clone();
        dc.status = live.status().cloned();
        if let Some(status) = dc.status.as_mut() {
            status.cassandra_operator_progress = Some("Updating".into());
        }
        rolling.state = RemoteState::Present(Arc::new(dc.into()));
    }
    let seen = observed(vec![ready_with_pods("dc1", 1), (name, rolling)], &[]);
    let work = keyspace_work(&plan, &seen, true, None, Vec::new()).expect("work");
    assert!(work.datacenters.joined.contains_key("dc2"));
    assert!(pods(&work).iter().all(|(context, _)| *context == "ctx-dc1"));
}

#[test]
fn removed_datacenters_leave_only_when_the_removal_is_not_refused() {
    let plan = plan_of(&["dc1"]);
    let seen = observed(
        vec![ready_with_pods("dc1", 1), ready_with_pods("old", 3)],
        &["gone"],
    );
    let work = keyspace_work(&plan, &seen, true, None, Vec::new()).expect("work");
    assert_eq!(
        work.datacenters.removed,
        BTreeSet::from(["old".to_string(), "gone".to_string()])
    );
    let held = keyspace_work(&plan, &seen, false, None, Vec::new()).expect("work");
    assert!(held.datacenters.removed.is_empty());
    assert_ne!(work.fingerprint(), held.fingerprint());
}

#[test]
fn the_condition_names_each_keyspaces_replicas_or_what_failed() {
    let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    let replicated = KeyspacesOutcome::Replicated {
        replication: BTreeMap::from([(
            "system_auth".to_string(),
            BTreeMap::from([("dc1".to_string(), 3), ("dc2".to_string(), 1)]),
        )]),
    };
    let condition = replicated.condition(Some(4), now.clone());
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("True", REASON_REPLICATED)
    );
    assert_eq!(condition.message, "system_auth {dc1: 3, dc2: 1}");
    assert_eq!(condition.observed_generation, Some(4));
    let unreachable = KeyspacesOutcome::Unreachable {
        errors: vec!["pod ns/p0: timed out".into()],
    }
    .condition(None, now);
    assert_eq!(unreachable.reason, REASON_CASSANDRA_UNREACHABLE);
    assert!(unreachable.message.contains("ns/p0: timed out"));
}

#[test]
fn reapers_and_stargates_keyspaces_are_kept_with_the_system_ones() {
    let k8c = |spec: serde_json::Value| -> crate::api::k8ssandra_cluster::K8ssandraCluster {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "k8ssandra.io/v1alpha1", "kind": "K8ssandraCluster",
            "metadata": {"name": "demo", "namespace": "ns"},
            "spec": spec,
        }))
        .expect("valid K8ssandraCluster")
    };
    let dcs = serde_json::json!({"datacenters": [{"metadata": {"name": "dc1"}, "size": 3}]});
    assert!(component_keyspaces(&k8c(serde_json::json!({"cassandra": dcs}))).is_empty());
    let both = k8c(serde_json::json!({"cassandra": dcs, "reaper": {}, "stargate": {"size": 1}}));
    assert_eq!(
        component_keyspaces(&both),
        vec!["reaper_db", "data_endpoint_auth"]
    );
    let named = k8c(serde_json::json!({"cassandra": dcs, "reaper": {"keyspace": "repairs"}}));
    assert_eq!(component_keyspaces(&named), vec!["repairs"]);
    let local = k8c(serde_json::json!({"cassandra": dcs, "reaper": {"storageType": "local"}}));
    assert!(
        component_keyspaces(&local).is_empty(),
        "Reaper's state is not in Cassandra"
    );
    let referenced = k8c(serde_json::json!({"cassandra": dcs, "reaper": {
        "reaperRef": {"name": "cp-reaper"}}}));
    assert!(
        component_keyspaces(&referenced).is_empty(),
        "the referenced Reaper keeps its state where it is, as upstream"
    );
    let per_dc = k8c(serde_json::json!({"cassandra": {"datacenters": [
        {"metadata": {"name": "dc1"}, "size": 3, "stargate": {"size": 1}}]}}));
    assert_eq!(component_keyspaces(&per_dc), vec!["data_endpoint_auth"]);

    let plan = plan_of(&["dc1"]);
    let seen = observed(vec![ready_with_pods("dc1", 1)], &[]);
    let work = keyspace_work(&plan, &seen, true, None, vec!["reaper_db".into()]).expect("work");
    assert_eq!(
        work.keyspaces,
        vec![
            "system_auth",
            "system_distributed",
            "system_traces",
            "reaper_db"
        ]
    );
    assert_eq!(work.component_keyspaces, vec!["reaper_db"]);
}
