//! The Prometheus relabelling Federator writes, the same series as k8ssandra-operator's so that
//! the dashboards and alerts people already have keep working:
//!
//! - [`mcac_relabelings`]: on the Cassandra ServiceMonitor when MCAC serves the metrics. MCAC
//!   exports every Cassandra metric as a handful of `collectd_mcac_*` series told apart by an
//!   `mcac` label holding the Dropwizard name (`org.apache.cassandra.metrics.client_request.latency.read`);
//!   the relabelling turns them into one series per metric (`mcac_client_request_latency`)
//!   with the parts of the name as labels (`request_type="read"`), histograms as `le` buckets
//!   and `quantile`s, and drops what it cannot name.
//! - [`stargate_relabelings`]: on the Stargate ServiceMonitor: Stargate's client request
//!   metrics as `stargate_client_request_*` with `cluster`, `dc` and `request_type`.
//! - [`metrics_agent_default_relabels`]: the Cassandra metrics endpoint's own filter (the
//!   agent configuration of every datacenter): of the per-table metrics, only the few the
//!   dashboards use are kept. The metrics endpoint needs no relabelling on the ServiceMonitor:
//!   it names its series itself.

use super::service_monitor::RelabelConfig;

/// Label MCAC puts the Dropwizard name of a metric in.
const MCAC: &str = "mcac";
/// Scratch label holding MCAC's series name while the rules read it; removed at the end.
const PROM_NAME: &str = "prom_name";
const NAME: &str = "__name__";
/// Prefix of the Cassandra metrics in MCAC's `mcac` label.
const CASSANDRA: &str = r"org\.apache\.cassandra\.metrics\.";

/// Pattern of the `mcac` label, the labels it sets, the series name it gets.
type McacMetric<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);

/// Every MCAC metric with `mcac` matching `pattern` (after [`CASSANDRA`] unless it starts
/// with `^`) gets each `(label, value)` and then the name `name` (`${n}` are the pattern's
/// groups).
fn mcac_rule(pattern: &str, labels: &[(&str, &str)], name: Option<&str>) -> Vec<RelabelConfig> {
    let regex = match pattern.strip_prefix('^') {
        Some(absolute) => absolute.to_string(),
        None => format!("{CASSANDRA}{pattern}"),
    };
    let mut rules: Vec<RelabelConfig> = (labels.iter())
        .map(|(label, value)| RelabelConfig::replace(&[MCAC], &regex, label, value))
        .collect();
    rules.extend(name.map(|name| RelabelConfig::replace(&[MCAC], &regex, NAME, name)));
    rules
}

/// The `metricRelabelings` of the Cassandra ServiceMonitor when MCAC serves the metrics.
pub fn mcac_relabelings() -> Vec<RelabelConfig> {
    let mut rules = vec![
        // Which kind of Dropwizard metric a series comes from.
        RelabelConfig::replace(&[NAME], "collectd_mcac_(meter|histogram).*", "kind", "${1}"),
        // Moving rates: Prometheus computes its own from the counters.
        RelabelConfig::drop(&[NAME], ".*rate_(mean|1m|5m|15m)"),
        RelabelConfig::replace(&[NAME], "(collectd_mcac_.+)", PROM_NAME, "${1}"),
        // Histogram buckets and quantiles, from the series name.
        RelabelConfig::replace(&[PROM_NAME], r".+_bucket_(\d+)", "le", "${1}"),
        RelabelConfig::replace(&[PROM_NAME], ".+_bucket_inf", "le", "+Inf"),
        RelabelConfig::replace(&[PROM_NAME], r".*_histogram_p(\d+)", "quantile", ".${1}"),
        RelabelConfig::replace(&[PROM_NAME], ".*_histogram_min", "quantile", "0"),
        RelabelConfig::replace(&[PROM_NAME], ".*_histogram_max", "quantile", "1"),
        // The all-tables aggregates duplicate the per-table series.
        RelabelConfig::drop(&[MCAC], &format!(r"{CASSANDRA}table\.(\w+)")),
    ];
    let table: &[McacMetric] = &[
        (
            r"table\.(\w+)\.(\w+)\.(\w+)",
            &[("table", "${3}"), ("keyspace", "${2}")],
            Some("mcac_table_${1}"),
        ),
        (
            r"keyspace\.(\w+)\.(\w+)",
            &[("keyspace", "${2}")],
            Some("mcac_keyspace_${1}"),
        ),
        (
            r"thread_pools\.(\w+)\.(\w+)\.(\w+).*",
            &[("pool_type", "${2}"), ("pool_name", "${3}")],
            Some("mcac_thread_pools_${1}"),
        ),
        (
            r"client_request\.(\w+)\.(\w+)$",
            &[("request_type", "${2}")],
            Some("mcac_client_request_${1}"),
        ),
        (
            r"client_request\.(\w+)\.(\w+)\.(\w+)$",
            &[("cl", "${3}"), ("request_type", "${2}")],
            Some("mcac_client_request_${1}_cl"),
        ),
        (
            r"cache\.(\w+)\.(\w+)",
            &[("cache_name", "${2}")],
            Some("mcac_cache_${1}"),
        ),
        (r"cql\.(\w+)", &[], Some("mcac_cql_${1}")),
        (
            r"dropped_message\.(\w+)\.(\w+)",
            &[("message_type", "${2}")],
            Some("mcac_dropped_message_${1}"),
        ),
        (
            r"streaming\.(\w+)\.(.+)$",
            &[("peer_ip", "${2}")],
            Some("mcac_streaming_${1}"),
        ),
        (r"streaming\.(\w+)$", &[], Some("mcac_streaming_${1}")),
        (r"commit_log\.(\w+)", &[], Some("mcac_commit_log_${1}")),
        (r"compaction\.(\w+)", &[], Some("mcac_compaction_${1}")),
        (r"storage\.(\w+)", &[], Some("mcac_storage_${1}")),
        (r"batch\.(\w+)", &[], Some("mcac_batch_${1}")),
        (r"client\.(\w+)", &[], Some("mcac_client_${1}")),
        (r"buffer_pool\.(\w+)", &[], Some("mcac_buffer_pool_${1}")),
        (r"index\.(\w+)", &[], Some("mcac_sstable_index_${1}")),
        (
            r"hinted_hand_off_manager\.([^\-]+)-(\w+)",
            &[("peer_ip", "${2}")],
            Some("mcac_hints_${1}"),
        ),
        (
            r"hints_service\.hint_delays[\-\.]([\w\.]+)",
            &[("peer_ip", "${1}")],
            Some("mcac_hints_hint_delays"),
        ),
        (
            r"hints_service\.hints_created[\-\.]([\w\.]+)",
            &[("peer_ip", "${1}")],
            Some("mcac_hints_hint_created"),
        ),
        (r"hints_service\.([^\-]+)", &[], Some("mcac_hints_${1}")),
        (
            r"memtable_pool\.(\w+)",
            &[],
            Some("mcac_memtable_pool_${1}"),
        ),
        (r"cdc_agent\.(\w+)", &[], Some("mcac_cdc_agent_${1}")),
        (
            r"^com\.datastax\.bdp\.type\.performance_objects\.name\.cql_slow_log\.metrics\.queries_latency",
            &[],
            Some("mcac_cql_slow_log_query_latency"),
        ),
        (r"read_coordination\.(.*)", &[("read_type", "$1")], None),
        (
            r"^jvm\.gc\.(\w+)\.(\w+)",
            &[("collector_type", "${1}")],
            Some("mcac_jvm_gc_${2}"),
        ),
        (
            r"^jvm\.memory\.(\w+)\.(\w+)",
            &[("memory_type", "${1}")],
            Some("mcac_jvm_memory_${2}"),
        ),
        (
            r"^jvm\.memory\.pools\.(\w+)\.(\w+)",
            &[("pool_name", "${2}")],
            Some("mcac_jvm_memory_pool_${2}"),
        ),
        (r"^jvm\.fd\.usage", &[], Some("mcac_jvm_fd_usage")),
        (
            r"^jvm\.buffers\.(\w+)\.(\w+)",
            &[("buffer_type", "${1}")],
            Some("mcac_jvm_buffer_${2}"),
        ),
    ];
    for (pattern, labels, name) in table {
        rules.extend(mcac_rule(pattern, labels, *name));
    }
    rules.extend([
        // The kind of series (bucket, count, sum...) back on the new name.
        RelabelConfig::replace(
            &[NAME, PROM_NAME],
            "(mcac_.*);.*(_micros_bucket|_bucket|_micros_count_total|_count_total|_total|_micros_sum|_sum|_stddev).*",
            NAME,
            "${1}${2}",
        ),
        RelabelConfig::label_drop(PROM_NAME),
        // What no rule named still has dots: not a valid series name.
        RelabelConfig::drop(&[NAME], r"(.*)\.+(.*)"),
    ]);
    rules
}

/// Stargate's embedded node's `persistence_cassandra_<version>_org_apache_cassandra_metrics_ClientRequest_*`.
const STARGATE_CLIENT_REQUEST: &str =
    r"persistence_cassandra_(\d_\d+)_org_apache_cassandra_metrics_ClientRequest_";
const STARGATE_REQUEST_TYPES: &str = "(Read|Write|CASRead|CASWrite|RangeSlice|ViewWrite)";

/// The `metricRelabelings` of a Stargate's ServiceMonitor: its client request metrics named
/// like Cassandra's, labelled with the Cassandra `cluster` and datacenter (`dc`) it serves.
pub fn stargate_relabelings(cluster: &str, datacenter: &str) -> Vec<RelabelConfig> {
    let any = format!("{STARGATE_CLIENT_REQUEST}.*");
    let mut rules = vec![
        RelabelConfig::replace(&[NAME], &any, "dc", datacenter),
        RelabelConfig::replace(&[NAME], &any, "cluster", cluster),
        RelabelConfig::replace(&[NAME], &any, "rack", "default"),
    ];
    for (operation, value) in [
        ("Read", "read"),
        ("Write", "write"),
        ("CASRead", "cas_read"),
        ("CASWrite", "cas_write"),
        ("RangeSlice", "range_slice"),
        ("ViewWrite", "view_write"),
    ] {
        rules.push(RelabelConfig::replace(
            &[NAME],
            &format!(r"{STARGATE_CLIENT_REQUEST}(\w+)_{operation}.*"),
            "request_type",
            value,
        ));
    }
    for (metric, suffix, name) in [
        ("Latency", "_count", "stargate_client_request_latency_total"),
        ("Latency", "", "stargate_client_request_latency_quantile"),
        (
            "Failures",
            "_total",
            "stargate_client_request_failures_total",
        ),
        (
            "Timeouts",
            "_total",
            "stargate_client_request_timeouts_total",
        ),
        (
            "Unavailables",
            "_total",
            "stargate_client_request_unavailables_total",
        ),
        (
            "ConditionNotMet",
            "",
            "stargate_client_request_condition_not_met_total",
        ),
        (
            "UnfinishedCommit",
            "",
            "stargate_client_request_unfinished_commit_total",
        ),
        // Misspelt as upstream names it, so that existing queries find it.
        (
            "ContentionHistogram",
            "_count",
            "stargate_client_request_contention_histogran_total",
        ),
    ] {
        rules.push(RelabelConfig::replace(
            &[NAME],
            &format!("{STARGATE_CLIENT_REQUEST}{metric}_{STARGATE_REQUEST_TYPES}{suffix}"),
            NAME,
            name,
        ));
    }
    rules
}

/// Per-table metrics the metrics endpoint keeps by default (every other series with a `table`
/// label is dropped): SSTable counts, disk space, memtables, compactions, reads, writes,
/// ranges, coordinator latencies and dropped mutations.
const KEPT_TABLE_METRICS: &[&str] = &[
    "live_ss_table_count",
    "live_disk_space_used",
    "memtable.*",
    "all_memtables.*",
    "compaction_bytes_written",
    "pending_compactions",
    "read_.*",
    "write_.*",
    "range.*",
    "coordinator_.*",
    "dropped_mutations",
];

/// The relabels of the Cassandra metrics agent when `telemetry.cassandra.relabels` is not set.
pub fn metrics_agent_default_relabels() -> Vec<RelabelConfig> {
    const SHOULD_DROP: &str = "should_drop";
    let mut rules = vec![RelabelConfig::replace(
        &["table"],
        ".+",
        SHOULD_DROP,
        "true",
    )];
    rules.extend(KEPT_TABLE_METRICS.iter().map(|metric| {
        RelabelConfig::replace(
            &[NAME],
            &format!("org_apache_cassandra_metrics_table_{metric}"),
            SHOULD_DROP,
            "false",
        )
    }));
    rules.push(RelabelConfig::drop(&[SHOULD_DROP], "true"));
    rules
}

/// Prometheus' relabelling of one series, for tests: what a scrape with these rules stores.
#[cfg(test)]
pub(crate) mod simulate {
    use std::collections::BTreeMap;

    use regex::Regex;

    use crate::workload::service_monitor::RelabelConfig;

    /// Labels of a series, its name under `__name__`.
    pub type Series = BTreeMap<String, String>;

    /// A series from its name and labels.
    pub fn series(name: &str, labels: &[(&str, &str)]) -> Series {
        let mut series: Series =
            (labels.iter()).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        series.insert("__name__".into(), name.into());
        series
    }

    /// The series after `rules`, or None when a rule drops it. Prometheus anchors every regex.
    pub fn apply(rules: &[RelabelConfig], mut series: Series) -> Option<Series> {
        for rule in rules {
            let pattern = rule.regex.as_deref().unwrap_or("(.*)");
            let regex = Regex::new(&format!("^(?:{pattern})$")).expect("a valid regex");
            let separator = rule.separator.as_deref().unwrap_or(";");
            let value = (rule.source_labels.iter())
                .map(|label| series.get(label).cloned().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(separator);
            match rule.action.as_deref().unwrap_or("replace") {
                "replace" => {
                    let Some(captures) = regex.captures(&value) else {
                        continue;
                    };
                    let mut replaced = String::new();
                    captures.expand(rule.replacement.as_deref().unwrap_or("$1"), &mut replaced);
                    let target = rule.target_label.clone().expect("replace names its target");
                    if replaced.is_empty() {
                        series.remove(&target);
                    } else {
                        series.insert(target, replaced);
                    }
                }
                "drop" if regex.is_match(&value) => return None,
                "keep" if !regex.is_match(&value) => return None,
                "drop" | "keep" => {}
                "labeldrop" => series.retain(|label, _| !regex.is_match(label)),
                other => panic!("relabel action {other} is not simulated"),
            }
        }
        Some(series)
    }
}

#[cfg(test)]
mod tests {
    use super::simulate::{apply, series};
    use super::*;

    /// What MCAC exports for `metric` (its Dropwizard name) as series `name`.
    fn mcac(name: &str, metric: &str) -> Option<simulate::Series> {
        let raw = series(
            name,
            &[("mcac", metric), ("dc", "dc1"), ("cluster", "demo")],
        );
        apply(&mcac_relabelings(), raw)
    }

    fn name_and(series: &simulate::Series, label: &str) -> (String, Option<String>) {
        (series["__name__"].clone(), series.get(label).cloned())
    }

    #[test]
    fn mcac_series_become_one_series_per_metric_with_its_parts_as_labels() {
        let bucket = mcac(
            "collectd_mcac_histogram_bucket_1109",
            "org.apache.cassandra.metrics.client_request.latency.read",
        )
        .expect("kept");
        assert_eq!(
            name_and(&bucket, "le"),
            (
                "mcac_client_request_latency_bucket".into(),
                Some("1109".into())
            )
        );
        assert_eq!(bucket["request_type"], "read");
        assert!(!bucket.contains_key("prom_name"), "the scratch label goes");
        let count = mcac(
            "collectd_mcac_histogram_count_total",
            "org.apache.cassandra.metrics.client_request.latency.write",
        )
        .expect("kept");
        assert_eq!(count["__name__"], "mcac_client_request_latency_total");
        let p99 = mcac(
            "collectd_mcac_histogram_p99",
            "org.apache.cassandra.metrics.client_request.latency.read",
        )
        .expect("kept");
        assert_eq!(
            name_and(&p99, "quantile"),
            ("mcac_client_request_latency".into(), Some(".99".into()))
        );
        let with_cl = mcac(
            "collectd_mcac_meter_total",
            "org.apache.cassandra.metrics.client_request.timeouts.write.local_quorum",
        )
        .expect("kept");
        assert_eq!(
            name_and(&with_cl, "cl"),
            (
                "mcac_client_request_timeouts_cl_total".into(),
                Some("local_quorum".into())
            )
        );
        let table = mcac(
            "collectd_mcac_gauge",
            "org.apache.cassandra.metrics.table.pending_compactions.shop.orders",
        )
        .expect("kept");
        assert_eq!(table["__name__"], "mcac_table_pending_compactions");
        assert_eq!(
            (table["keyspace"].as_str(), table["table"].as_str()),
            ("shop", "orders")
        );
        let pool = mcac(
            "collectd_mcac_gauge",
            "org.apache.cassandra.metrics.thread_pools.pending_tasks.internal.ValidationExecutor",
        )
        .expect("kept");
        assert_eq!(
            name_and(&pool, "pool_name"),
            (
                "mcac_thread_pools_pending_tasks".into(),
                Some("ValidationExecutor".into())
            )
        );
    }

    #[test]
    fn mcac_rates_aggregates_and_unnamed_metrics_are_dropped() {
        let rate = mcac(
            "collectd_mcac_meter_rate_1m",
            "org.apache.cassandra.metrics.client_request.timeouts.read",
        );
        assert_eq!(rate, None, "Prometheus computes rates itself");
        let all_tables = mcac(
            "collectd_mcac_gauge",
            "org.apache.cassandra.metrics.table.pending_compactions",
        );
        assert_eq!(all_tables, None, "the sum over tables duplicates them");
        let unknown = mcac("collectd_mcac_gauge", "org.example.plugin.thing");
        assert!(unknown.is_some_and(|s| !s["__name__"].contains('.')));
    }

    #[test]
    fn stargate_client_requests_are_named_and_labelled_with_their_datacenter() {
        let raw = series(
            "persistence_cassandra_4_0_org_apache_cassandra_metrics_ClientRequest_Latency_Read_count",
            &[],
        );
        let renamed = apply(&stargate_relabelings("demo", "dc1"), raw).expect("kept");
        assert_eq!(renamed["__name__"], "stargate_client_request_latency_total");
        assert_eq!(
            (
                renamed["dc"].as_str(),
                renamed["cluster"].as_str(),
                renamed["request_type"].as_str()
            ),
            ("dc1", "demo", "read")
        );
        let other = series("jvm_memory_used_bytes", &[]);
        assert_eq!(
            apply(&stargate_relabelings("demo", "dc1"), other.clone()),
            Some(other)
        );
    }

    #[test]
    fn the_metrics_agent_keeps_only_the_per_table_metrics_dashboards_use() {
        let table = |name: &str| {
            let raw = series(name, &[("table", "orders"), ("keyspace", "shop")]);
            apply(&metrics_agent_default_relabels(), raw).map(|s| s["__name__"].clone())
        };
        assert!(table("org_apache_cassandra_metrics_table_pending_compactions").is_some());
        assert!(table("org_apache_cassandra_metrics_table_read_latency_bucket").is_some());
        assert_eq!(
            table("org_apache_cassandra_metrics_table_bloom_filter_false_ratio"),
            None
        );
        let node_level = series("org_apache_cassandra_metrics_compaction_pending_tasks", &[]);
        assert!(apply(&metrics_agent_default_relabels(), node_level).is_some());
    }
}
