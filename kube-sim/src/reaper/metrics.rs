//! Reaper's `/prometheusMetrics` on the admin port: the repair runner's gauges as Reaper 3.x
//! exports them (Dropwizard metrics through Prometheus' `DropwizardExports` with the mappings
//! of `metrics/PrometheusMetricsConfiguration.java`).
//!
//! A runner registers `repairProgress`, `segmentsDone` and `segmentsTotal` for its run's repair
//! unit when it starts (`service/RepairRunner.java`), named after the cleaned cluster and
//! keyspace names and the unit's id; they stay registered after the run ends, and a later run
//! of the same unit replaces them. A finished run adds `millisSinceLastRepair`. Only the
//! per-keyspace names are exported: the per-cluster ones are filtered out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use uuid::Uuid;

use super::state::{ReaperState, RunState, SegmentState};

const PREFIX: &str = "io_cassandrareaper_service_RepairRunner_";

/// The exported names (without [`PREFIX`]), in the order they are written.
const GAUGES: [&str; 4] = [
    "millisSinceLastRepair",
    "repairProgress",
    "segmentsDone",
    "segmentsTotal",
];

/// `MetricNameUtils.cleanName`: only letters, digits, `-` and `_` are kept.
fn clean_name(name: &str) -> String {
    name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

#[derive(Default)]
struct UnitGauges {
    labels: String,
    done: usize,
    total: usize,
    finished_at: Option<i64>,
}

/// The Prometheus text (format 0.0.4) of `state` at `now` (milliseconds).
pub fn prometheus_text(state: &ReaperState, now: i64) -> String {
    // The latest started run of each unit holds its gauges.
    let mut units: BTreeMap<Uuid, (i64, UnitGauges)> = BTreeMap::new();
    for run in &state.runs {
        let Some(started) = run.start else {
            continue;
        };
        let Some(unit) = state.units.iter().find(|unit| unit.id == run.unit_id) else {
            continue;
        };
        if units.get(&unit.id).is_some_and(|(latest, _)| *latest > started) {
            continue;
        }
        let gauges = UnitGauges {
            labels: format!(
                "cluster=\"{}\",keyspace=\"{}\",repairid=\"{}\"",
                clean_name(&unit.cluster),
                clean_name(&unit.keyspace),
                unit.id
            ),
            done: run.segments.iter().filter(|s| s.state == SegmentState::Done).count(),
            total: run.segments.len(),
            finished_at: run.end.filter(|_| run.state == RunState::Done),
        };
        units.insert(unit.id, (started, gauges));
    }
    let mut text = String::new();
    for gauge in GAUGES {
        let samples: Vec<(String, f64)> = units
            .values()
            .filter_map(|(_, unit)| {
                let value = match gauge {
                    "millisSinceLastRepair" => (now - unit.finished_at?) as f64,
                    "repairProgress" if unit.total > 0 => unit.done as f64 / unit.total as f64,
                    "repairProgress" => 0.0,
                    "segmentsDone" => unit.done as f64,
                    _ => unit.total as f64,
                };
                Some((unit.labels.clone(), value))
            })
            .collect();
        if samples.is_empty() {
            continue;
        }
        let name = format!("{PREFIX}{gauge}");
        let _ = writeln!(
            text,
            "# HELP {name} Generated from Dropwizard metric import"
        );
        let _ = writeln!(text, "# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(text, "{name}{{{labels}}} {value:?}");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_as_reaper_cleans_them() {
        assert_eq!(clean_name("my.cluster name_1-a"), "myclustername_1-a");
    }
}
