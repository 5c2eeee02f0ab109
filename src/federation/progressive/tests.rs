use std::collections::BTreeMap;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::*;

fn at_minute(minute: i64) -> Timestamp {
    Timestamp::from_second(minute * 60).expect("in range")
}

fn member(name: &str, pending: bool, settled: bool, changed_minute: i64) -> RolloutMember {
    RolloutMember {
        datacenter: name.into(),
        restart_pending: pending,
        settled,
        changed_at: Some(at_minute(changed_minute)),
        size: 3,
    }
}

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn gate_list(gates: &BTreeMap<String, Gate>) -> Vec<(&str, &Gate)> {
    gates.iter().map(|(dc, gate)| (dc.as_str(), gate)).collect()
}

fn queued(behind: &str) -> Gate {
    Gate::Queued {
        behind: behind.into(),
    }
}

#[test]
fn a_restart_goes_to_one_datacenter_at_a_time_in_spec_order() {
    let policy = RolloutPolicy::default();
    let members = [
        member("dc2", true, true, 0),
        member("dc1", true, true, 0),
        member("dc3", true, true, 0),
    ];
    let gates = gates(&policy, &members, at_minute(1));
    assert_eq!(
        gate_list(&gates),
        [
            ("dc1", &queued("dc2")),
            ("dc2", &Gate::Go),
            ("dc3", &queued("dc2"))
        ]
    );
}

#[test]
fn the_next_datacenter_goes_once_the_previous_settled_with_the_change() {
    let policy = RolloutPolicy::default();
    // dc1 took the change and is restarting: dc2 waits.
    let rolling = [member("dc1", false, false, 5), member("dc2", true, true, 0)];
    assert_eq!(
        gates(&policy, &rolling, at_minute(6)).get("dc2"),
        Some(&queued("dc1"))
    );
    // dc1 is Ready again: dc2 goes.
    let settled = [member("dc1", false, true, 5), member("dc2", true, true, 0)];
    assert_eq!(
        gates(&policy, &settled, at_minute(9)).get("dc2"),
        Some(&Gate::Go)
    );
}

#[test]
fn a_wave_restarts_that_many_and_all_restarts_every_one() {
    let members = [
        member("dc1", true, true, 0),
        member("dc2", true, true, 0),
        member("dc3", true, true, 0),
    ];
    let two = RolloutPolicy {
        wave: Wave::Datacenters(2),
        ..RolloutPolicy::default()
    };
    assert_eq!(
        gate_list(&gates(&two, &members, at_minute(1))),
        [
            ("dc1", &Gate::Go),
            ("dc2", &Gate::Go),
            ("dc3", &queued("dc1"))
        ]
    );
    let all = RolloutPolicy {
        wave: Wave::All,
        ..RolloutPolicy::default()
    };
    // Even behind a datacenter far past its deadline.
    let mut with_broken = members.to_vec();
    with_broken.push(member("dc4", false, false, -1_000));
    assert!(gates(&all, &with_broken, at_minute(1)).values().all(|g| *g == Gate::Go));
}

#[test]
fn a_datacenter_not_ready_past_its_deadline_halts_the_rollout() {
    let policy = RolloutPolicy::default();
    // size 3: 10m + 3 x 5m = 25m.
    let members = [member("dc1", false, false, 0), member("dc2", true, true, 0)];
    assert_eq!(
        gates(&policy, &members, at_minute(25)).get("dc2"),
        Some(&queued("dc1"))
    );
    let halted = gates(&policy, &members, at_minute(26));
    let Some(Gate::Halted(halt)) = halted.get("dc2") else {
        panic!("halted: {halted:?}");
    };
    assert_eq!(halt.datacenter, "dc1");
    assert_eq!(
        halt.to_string(),
        "datacenter dc1 is not Ready 26m after its change (deadline 25m)"
    );
}

#[test]
fn resuming_for_the_current_generation_goes_on_without_the_halted_datacenter() {
    let members = [member("dc1", false, false, 0), member("dc2", true, true, 0)];
    let resumed =
        RolloutPolicy::from_annotations(Some(&annotations(&[(RESUME_ANNOTATION, "7")])), Some(7));
    assert_eq!(
        gates(&resumed, &members, at_minute(60)).get("dc2"),
        Some(&Gate::Go)
    );
    // A resume written for an earlier generation does not carry over to the next change.
    let stale =
        RolloutPolicy::from_annotations(Some(&annotations(&[(RESUME_ANNOTATION, "6")])), Some(7));
    assert!(matches!(
        gates(&stale, &members, at_minute(60)).get("dc2"),
        Some(Gate::Halted(_))
    ));
}

#[test]
fn a_halted_datacenter_with_a_new_change_gets_it_at_once() {
    let policy = RolloutPolicy::default();
    // dc1 was broken by the last change; the user's fix reaches it at once, dc2 waits for it.
    let members = [member("dc1", true, false, 0), member("dc2", true, true, 0)];
    let gates = gates(&policy, &members, at_minute(120));
    assert_eq!(
        gate_list(&gates),
        [("dc1", &Gate::Go), ("dc2", &queued("dc1"))]
    );
}

#[test]
fn settled_datacenters_without_a_pending_restart_are_not_gated() {
    let policy = RolloutPolicy::default();
    let members = [member("dc1", false, true, 0), member("dc2", false, true, 0)];
    assert!(gates(&policy, &members, at_minute(1)).is_empty());
}

#[test]
fn the_deadline_grows_with_the_datacenter_and_can_be_set() {
    let default = RolloutPolicy::default();
    assert_eq!(default.deadline(1), SignedDuration::from_mins(15));
    assert_eq!(default.deadline(12), SignedDuration::from_mins(70));
    assert_eq!(default.deadline(i32::MAX), MAX_DEADLINE);
    let set = RolloutPolicy::from_annotations(
        Some(&annotations(&[(DEADLINE_ANNOTATION, "1h30m")])),
        Some(1),
    );
    assert_eq!(set.deadline(12), SignedDuration::from_mins(90));
    assert!(set.problems.is_empty(), "{:?}", set.problems);
}

#[test]
fn unreadable_annotations_are_reported_and_the_defaults_apply() {
    let policy = RolloutPolicy::from_annotations(
        Some(&annotations(&[
            (WAVE_ANNOTATION, "0"),
            (DEADLINE_ANNOTATION, "5s"),
            (RESUME_ANNOTATION, "now"),
        ])),
        Some(3),
    );
    assert_eq!(policy.wave, Wave::Datacenters(1));
    assert_eq!(policy.deadline, None);
    assert!(!policy.resumed);
    assert_eq!(policy.problems.len(), 3, "{:?}", policy.problems);
    assert!(
        policy.problems[0].starts_with(WAVE_ANNOTATION),
        "{}",
        policy.problems[0]
    );
    assert!(policy.problems[1].contains("45m"), "{}", policy.problems[1]);
    assert!(
        policy.problems[2].contains("metadata.generation"),
        "{}",
        policy.problems[2]
    );
    let all = RolloutPolicy::from_annotations(
        Some(&annotations(&[
            (WAVE_ANNOTATION, "All"),
            (DEADLINE_ANNOTATION, "PT2H"),
        ])),
        None,
    );
    assert_eq!(all.wave, Wave::All);
    assert_eq!(all.deadline, Some(SignedDuration::from_hours(2)));
}

#[test]
fn only_fields_that_restart_cassandra_change_the_restart_hash() {
    let spec = |value: serde_json::Value| -> CassandraDatacenterSpec {
        serde_json::from_value(value).expect("spec")
    };
    let base = serde_json::json!({
        "clusterName": "demo", "serverType": "cassandra", "serverVersion": "4.1.5", "size": 3,
        "storageConfig": {}, "config": {"cassandra-yaml": {"concurrent_reads": 32}},
        "additionalSeeds": ["10.0.0.1"]
    });
    let hash = restart_hash(&spec(base.clone()));
    let mut scaled = base.clone();
    scaled["size"] = 5.into();
    scaled["additionalSeeds"] = serde_json::json!(["10.0.0.2"]);
    scaled["stopped"] = true.into();
    assert_eq!(restart_hash(&spec(scaled)), hash);
    let mut reconfigured = base.clone();
    reconfigured["config"]["cassandra-yaml"]["concurrent_reads"] = 64.into();
    assert_ne!(restart_hash(&spec(reconfigured)), hash);
    let mut upgraded = base;
    upgraded["serverVersion"] = "4.1.6".into();
    assert_ne!(restart_hash(&spec(upgraded)), hash);
}

#[test]
fn the_recorded_instant_is_kept_until_the_next_restart() {
    let recorded = Some(at_minute(3));
    assert_eq!(
        changed_at_to_record(false, recorded, at_minute(9)),
        at_minute(3)
    );
    assert_eq!(
        changed_at_to_record(true, recorded, at_minute(9)),
        at_minute(9)
    );
    assert_eq!(
        changed_at_to_record(false, None, at_minute(9)),
        at_minute(9)
    );
}
