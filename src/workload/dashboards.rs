//! The Grafana dashboards of `deploy/grafana/` query only series that exist: every metric name in
//! their queries is one the relabelling of the ServiceMonitors Federator writes produces
//! (`crate::workload::relabel`), one Federator itself exports (`crate::ops::metrics`), or one of
//! Reaper's repair runner gauges (which a scrape of Reaper checks in
//! `tests/cassandra_operations_e2e.rs`).

use std::collections::BTreeSet;
use std::path::Path;

use regex::Regex;
use serde_json::Value;

use super::relabel::{mcac_relabelings, stargate_relabelings};
use crate::ops::metrics::METRIC_NAMES;

const DASHBOARDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana");

/// Every `.json` dashboard of deploy/grafana, by file name.
fn dashboards() -> Vec<(String, Value)> {
    let mut found: Vec<(String, Value)> = std::fs::read_dir(DASHBOARDS)
        .expect("deploy/grafana")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("readable dashboard");
            let name =
                path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            (
                name,
                serde_json::from_str(&text).expect("a dashboard is JSON"),
            )
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// The PromQL of a dashboard: panel targets and templating queries, wherever they are nested.
fn queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    ("query", Value::String(query)) if query.contains('(') => {
                        out.push(query.clone())
                    }
                    _ => queries(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| queries(item, out)),
        _ => {}
    }
}

/// The metric names a PromQL expression (or Grafana's `label_values(metric, label)`) reads.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let strip = |pattern: &str, text: &str| {
        Regex::new(pattern).expect("valid regex").replace_all(text, " ").to_string()
    };
    let mut text = strip(r#""(?:[^"\\]|\\.)*""#, expr); // strings
    text = strip(r"\{[^}]*\}", &text); // label matchers
    text = strip(r"\[[^\]]*\]", &text); // ranges
    text = strip(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
        &text,
    );
    text = strip(r"\$\{?\w+\}?", &text); // dashboard variables
    text = strip(r",\s*\w+\s*\)", &text); // label_values' label
    let keywords = ["and", "or", "unless", "offset", "bool", "inf", "nan"];
    Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?")
        .expect("valid regex")
        .captures_iter(&text)
        .filter(|c| c.get(1).is_none()) // a function
        .map(|c| c[0].trim().to_string())
        .filter(|name| !keywords.contains(&name.to_lowercase().as_str()))
        .collect()
}

/// A pattern of every name a `__name__` rule writes: its groups stand for any word.
fn produced_by(replacement: &str) -> String {
    let group = Regex::new(r"\$\{\d+\}|\$\d+").expect("valid regex");
    group.split(replacement).map(regex::escape).collect::<Vec<_>>().join("[A-Za-z0-9_]+")
}

/// Whether the ServiceMonitors' relabelling can produce a series named `name`.
fn relabelling_produces(name: &str) -> bool {
    let mcac = mcac_relabelings();
    // The last renaming appends the kind of series (bucket, total...) to the new name.
    let suffixes = (mcac.iter())
        .filter(|r| r.source_labels == ["__name__", "prom_name"])
        .filter_map(|r| r.regex.as_deref())
        .filter_map(|regex| regex.split_once(".*(").map(|(_, rest)| rest.trim_end_matches(").*")))
        .next()
        .expect("the suffix rule")
        .to_string();
    let rules = mcac.into_iter().chain(stargate_relabelings("c", "d"));
    rules
        .filter(|r| r.target_label.as_deref() == Some("__name__"))
        // The suffix rule only appends to a name the others wrote.
        .filter(|r| r.source_labels != ["__name__", "prom_name"])
        .filter_map(|r| r.replacement)
        .any(|replacement| {
            let pattern = format!("^{}(?:{suffixes})?$", produced_by(&replacement));
            Regex::new(&pattern).expect("valid regex").is_match(name)
        })
}

/// Whether Federator's registry exports `name` (histograms as `_bucket`, `_sum`, `_count`).
fn federator_exports(name: &str) -> bool {
    METRIC_NAMES.iter().any(|family| {
        name == *family
            || ["_bucket", "_sum", "_count"].iter().any(|s| name == format!("{family}{s}"))
    })
}

/// The repair runner's gauges Reaper's `/prometheusMetrics` exports (its Prometheus mappings).
const REAPER_SERIES: [&str; 4] = [
    "io_cassandrareaper_service_RepairRunner_repairProgress",
    "io_cassandrareaper_service_RepairRunner_segmentsDone",
    "io_cassandrareaper_service_RepairRunner_segmentsTotal",
    "io_cassandrareaper_service_RepairRunner_millisSinceLastRepair",
];

#[test]
fn every_series_a_dashboard_queries_is_produced_or_exported() {
    let found = dashboards();
    let names: Vec<&str> = found.iter().map(|(name, _)| name.as_str()).collect();
    assert!(
        names.contains(&"federator-dashboard.json")
            && names.contains(&"cassandra-cluster-dashboard.json")
            && names.contains(&"cassandra-regions-dashboard.json"),
        "{names:?}"
    );
    for (file, dashboard) in &found {
        let mut exprs = Vec::new();
        queries(dashboard, &mut exprs);
        assert!(!exprs.is_empty(), "{file} queries nothing");
        for expr in exprs {
            let metrics = metric_names(&expr);
            assert!(!metrics.is_empty(), "{file}: no metric in {expr}");
            for metric in metrics {
                assert!(
                    relabelling_produces(&metric)
                        || federator_exports(&metric)
                        || REAPER_SERIES.contains(&metric.as_str()),
                    "{file}: {metric} (in {expr}) is neither produced by the ServiceMonitors' relabelling nor exported by Federator or Reaper"
                );
            }
        }
    }
}

#[test]
fn the_check_tells_real_series_from_made_up_ones() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (le, dc) (rate(mcac_client_request_latency_bucket{dc=~"$dc"}[5m])))"#
        ),
        BTreeSet::from(["mcac_client_request_latency_bucket".to_string()])
    );
    assert_eq!(
        metric_names("label_values(mcac_client_request_latency_total{cluster=~\"$cluster\"}, dc)"),
        BTreeSet::from(["mcac_client_request_latency_total".to_string()])
    );
    assert!(relabelling_produces("mcac_client_request_latency_bucket"));
    assert!(relabelling_produces("mcac_compaction_pending_tasks"));
    assert!(relabelling_produces(
        "stargate_client_request_latency_total"
    ));
    assert!(
        !relabelling_produces("mcac_made_up"),
        "no rule writes mcac_made_up"
    );
    assert!(!relabelling_produces(
        "org_apache_cassandra_metrics_client_request_latency"
    ));
    assert!(federator_exports("federator_fanout_lag_seconds_bucket"));
    assert!(!federator_exports("federator_made_up_total"));
}

#[test]
fn the_install_provisions_every_dashboard_for_the_grafana_sidecar() {
    let kustomization = std::fs::read_to_string(Path::new(DASHBOARDS).join("kustomization.yaml"))
        .expect("deploy/grafana/kustomization.yaml");
    let parsed: Value = serde_saphyr::from_str(&kustomization).expect("valid YAML");
    assert_eq!(
        parsed["generatorOptions"]["labels"]["grafana_dashboard"],
        "1"
    );
    let files: BTreeSet<String> = (parsed["configMapGenerator"].as_array().into_iter().flatten())
        .flat_map(|generator| generator["files"].as_array().cloned().unwrap_or_default())
        .filter_map(|file| file.as_str().map(str::to_string))
        .collect();
    let dashboards: BTreeSet<String> = dashboards().into_iter().map(|(name, _)| name).collect();
    assert_eq!(files, dashboards, "every dashboard is a ConfigMap");
}
