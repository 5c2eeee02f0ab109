//! Reaper's auto-scheduling (`AutoSchedulingManager` and `ClusterRepairScheduler`): with
//! `REAPER_AUTO_SCHEDULING_ENABLED=true`, every user keyspace with tables of every registered
//! cluster gets a repair schedule owned by `auto-scheduling`, and a keyspace that is gone loses
//! its schedules. A cluster is scheduled when it is registered, and all of them at every poll
//! (`initialDelayPeriod` after the Reaper first answers, then every `periodBetweenPolls`). Polls
//! happen, like the rest of this Reaper, when a request reaches it.

use std::collections::BTreeSet;

use jiff::{Span, SpanRelativeTo, Unit};
use uuid::Uuid;

use super::state::{ReaperState, RepairSchedule, RepairUnit, ScheduleState};
use super::{
    DEFAULT_DAYS_BETWEEN, DEFAULT_INTENSITY, DEFAULT_PARALLELISM, DEFAULT_SEGMENT_COUNT_PER_NODE,
    DEFAULT_SEGMENT_TIMEOUT_MINS, symbolic_name,
};
use crate::cassandra::CassandraModel;

/// The owner Reaper gives the schedules it makes.
pub const OWNER: &str = "auto-scheduling";

/// `autoScheduling` of Reaper's configuration, as its `REAPER_AUTO_SCHEDULING_*` variables set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoScheduling {
    pub initial_delay_millis: i64,
    pub period_between_polls_millis: i64,
    pub time_before_first_schedule_millis: i64,
    pub schedule_spread_millis: Option<i64>,
    pub excluded_clusters: Vec<String>,
    pub excluded_keyspaces: Vec<String>,
    pub adaptive: bool,
    pub incremental: bool,
    pub percent_unrepaired_threshold: i64,
}

impl AutoScheduling {
    /// Reads the variables (`variable` gives a container variable's value); None when
    /// auto-scheduling is off. Reaper does not start with an unreadable duration; here the
    /// configuration's default takes its place.
    pub fn from_env(variable: impl Fn(&str) -> Option<String>) -> Option<AutoScheduling> {
        let get = |suffix: &str| variable(&format!("REAPER_AUTO_SCHEDULING_{suffix}"));
        let flag =
            |suffix: &str| get(suffix).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if !flag("ENABLED") {
            return None;
        }
        let duration = |suffix: &str, default: i64| {
            get(suffix).and_then(|text| duration_millis(&text)).unwrap_or(default)
        };
        Some(AutoScheduling {
            initial_delay_millis: duration("INITIAL_DELAY_PERIOD", 15_000),
            period_between_polls_millis: duration("PERIOD_BETWEEN_POLLS", 600_000).max(1),
            time_before_first_schedule_millis: duration("TIME_BEFORE_FIRST_SCHEDULE", 300_000),
            schedule_spread_millis: get("SCHEDULE_SPREAD_PERIOD")
                .and_then(|text| duration_millis(&text)),
            excluded_clusters: list(get("EXCLUDED_CLUSTERS")),
            excluded_keyspaces: list(get("EXCLUDED_KEYSPACES")),
            adaptive: flag("ADAPTIVE"),
            incremental: flag("INCREMENTAL"),
            percent_unrepaired_threshold: get("PERCENT_UNREPAIRED_THRESHOLD")
                .and_then(|text| text.trim().parse().ok())
                .unwrap_or(10),
        })
    }
}

/// A Java `Duration.parse` text (`PT15S`, `PT10M`, `P1D`) in milliseconds.
pub fn duration_millis(text: &str) -> Option<i64> {
    let span: Span = text.trim().parse().ok()?;
    let total = span.total((Unit::Millisecond, SpanRelativeTo::days_are_24_hours())).ok()?;
    (total >= 0.0 && total < i64::MAX as f64).then_some(total as i64)
}

/// `[a, b]` (how k8ssandra-operator writes the lists) or `a,b`.
fn list(value: Option<String>) -> Vec<String> {
    value
        .map(|text| {
            text.trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .split(',')
                .map(|item| item.trim().to_string())
                .filter(|item| !item.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// `AutoSchedulingManager.run`, when a poll is due: every registered cluster.
pub fn poll(state: &mut ReaperState, model: &CassandraModel, config: &AutoScheduling) {
    let now = model.now_millis();
    let due = *state.auto_scheduling_next_poll.get_or_insert(now + config.initial_delay_millis);
    if now < due {
        return;
    }
    state.auto_scheduling_next_poll = Some(now + config.period_between_polls_millis);
    let clusters: Vec<String> = state.clusters.keys().cloned().collect();
    for cluster in clusters {
        schedule_repairs(state, model, config, &cluster);
    }
}

/// `ClusterRepairScheduler.scheduleRepairs` for one registered cluster.
pub fn schedule_repairs(
    state: &mut ReaperState,
    model: &CassandraModel,
    config: &AutoScheduling,
    cluster: &str,
) {
    let excluded = config.excluded_clusters.iter().map(|c| symbolic_name(c));
    if excluded.into_iter().any(|c| c == cluster) {
        return;
    }
    let Some(registered) = state.clusters.get(cluster).cloned() else {
        return;
    };
    let Ok(names) = model.keyspace_names(&registered.model_name) else {
        return;
    };
    let in_cluster: BTreeSet<String> = names.into_iter().collect();
    if in_cluster.is_empty() {
        return;
    }
    let scheduled: BTreeSet<String> = state
        .schedules
        .iter()
        .filter_map(|schedule| state.unit(schedule.unit_id))
        .filter(|unit| unit.cluster == cluster)
        .map(|unit| unit.keyspace.clone())
        .collect();
    for gone in scheduled.difference(&in_cluster) {
        let units: Vec<Uuid> = state
            .units
            .iter()
            .filter(|unit| unit.cluster == cluster && &unit.keyspace == gone)
            .map(|unit| unit.id)
            .collect();
        state.schedules.retain(|schedule| !units.contains(&schedule.unit_id));
    }
    let now = model.now_millis();
    let first = now + config.time_before_first_schedule_millis;
    let candidates = in_cluster.difference(&scheduled).filter(|keyspace| {
        !keyspace.to_lowercase().starts_with("system")
            && !config.excluded_keyspaces.contains(keyspace)
            && model.tables(&registered.model_name, keyspace).is_ok_and(|tables| !tables.is_empty())
    });
    let candidates: Vec<String> = candidates.cloned().collect();
    for (index, keyspace) in candidates.into_iter().enumerate() {
        let spread = config.schedule_spread_millis.unwrap_or(0);
        let next_activation = first + index as i64 * spread;
        let unit = RepairUnit {
            id: state.new_uuid(),
            cluster: cluster.to_string(),
            keyspace,
            tables: BTreeSet::new(),
            incremental: config.incremental,
            subrange_incremental: false,
            nodes: BTreeSet::new(),
            datacenters: BTreeSet::new(),
            blacklisted: BTreeSet::new(),
            thread_count: 1,
            timeout: DEFAULT_SEGMENT_TIMEOUT_MINS,
        };
        let unit_id = state.unit_for(unit);
        let id = state.new_uuid();
        state.schedules.push(RepairSchedule {
            id,
            unit_id,
            owner: OWNER.to_string(),
            state: ScheduleState::Active,
            days_between: DEFAULT_DAYS_BETWEEN,
            next_activation,
            creation: now,
            pause: None,
            segment_count_per_node: DEFAULT_SEGMENT_COUNT_PER_NODE,
            // Reaper repairs incrementally only in parallel.
            parallelism: if config.incremental {
                "PARALLEL"
            } else {
                DEFAULT_PARALLELISM
            }
            .to_string(),
            intensity: DEFAULT_INTENSITY,
            adaptive: config.adaptive,
            percent_unrepaired_threshold: config.percent_unrepaired_threshold,
            runs: Vec::new(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_java_reads_them() {
        assert_eq!(duration_millis("PT15S"), Some(15_000));
        assert_eq!(duration_millis("PT10M"), Some(600_000));
        assert_eq!(duration_millis("P1D"), Some(86_400_000));
        assert_eq!(duration_millis("PT1H30M"), Some(5_400_000));
        assert_eq!(duration_millis("fifteen seconds"), None);
    }

    #[test]
    fn configuration_follows_the_variables_and_is_off_unless_enabled() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
        };
        assert_eq!(AutoScheduling::from_env(vars(&[])), None);
        let config = AutoScheduling::from_env(vars(&[
            ("REAPER_AUTO_SCHEDULING_ENABLED", "true"),
            ("REAPER_AUTO_SCHEDULING_INITIAL_DELAY_PERIOD", "PT1S"),
            ("REAPER_AUTO_SCHEDULING_SCHEDULE_SPREAD_PERIOD", "PT6H"),
            (
                "REAPER_AUTO_SCHEDULING_EXCLUDED_KEYSPACES",
                "[reaper_db, audit]",
            ),
            ("REAPER_AUTO_SCHEDULING_INCREMENTAL", "true"),
        ]))
        .expect("enabled");
        assert_eq!(config.initial_delay_millis, 1_000);
        assert_eq!(config.period_between_polls_millis, 600_000);
        assert_eq!(config.schedule_spread_millis, Some(21_600_000));
        assert_eq!(config.excluded_keyspaces, ["reaper_db", "audit"]);
        assert!(config.incremental && !config.adaptive);
        assert_eq!(config.percent_unrepaired_threshold, 10);
    }
}
