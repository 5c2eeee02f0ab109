//! The Vector agent of the Cassandra pods, set up as k8ssandra-operator sets it up.
//!
//! cass-operator runs Vector as the pods' `server-system-logger` container. With
//! `telemetry.vector.enabled`, the datacenter gets that container's image and resources from
//! the spec and mounts a generated `vector.toml` (in a ConfigMap in its region) at
//! `/etc/vector`: the system log and the metrics endpoint as sources, a log parser and a
//! metrics tagger as transforms, the log to stdout as the default sink, plus the user's
//! components and raw config. Pipelines whose output nobody reads are left out, so a default
//! source costs nothing until a sink uses it.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::Value;
use thiserror::Error;

use crate::api::shared::VectorTelemetry;

pub const SYSTEM_LOGGER_CONTAINER: &str = "server-system-logger";
pub const VECTOR_CONFIG_VOLUME: &str = "vector-config";
pub const VECTOR_CONFIG_MOUNT: &str = "/etc/vector";
pub const VECTOR_TOML_KEY: &str = "vector.toml";

/// Where the metrics are scraped from: MCAC's port, else the management API's endpoint.
const MCAC_METRICS_PORT: u16 = 9103;
const MODERN_METRICS_PORT: u16 = 9000;
const DEFAULT_SCRAPE_INTERVAL_SECONDS: i64 = 30;

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum VectorError {
    #[error("telemetry.cassandra.endpoint.port {port:?} is not a port number above 1024")]
    InvalidPort { port: String },
    #[error(
        "telemetry.vector.scrapeInterval {value:?} is not a duration such as \"30s\" or \"1m\""
    )]
    InvalidScrapeInterval { value: String },
    #[error("telemetry.vector.components.{kind}[{index}] needs a string `name` and `type`")]
    InvalidComponent { kind: &'static str, index: usize },
}

/// A source, transform or sink.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Component {
    name: String,
    kind: String,
    inputs: Vec<String>,
    config: String,
}

impl Component {
    fn new(name: &str, kind: &str, inputs: &[&str], config: &str) -> Component {
        Component {
            name: name.into(),
            kind: kind.into(),
            inputs: inputs.iter().map(|i| i.to_string()).collect(),
            config: config.into(),
        }
    }
}

/// The ConfigMap holding a datacenter's `vector.toml`, named as upstream names it.
pub fn config_map_name(cassandra_cluster_name: &str, cassandra_datacenter_name: &str) -> String {
    use super::labels::clean_for_kubernetes;
    clean_for_kubernetes(&format!(
        "{}-{cassandra_datacenter_name}-cass-vector",
        clean_for_kubernetes(cassandra_cluster_name)
    ))
}

/// The agent's resources: the spec's, else upstream's defaults.
pub fn resources(vector: &VectorTelemetry) -> ResourceRequirements {
    vector.resources.clone().unwrap_or_else(|| {
        let quantities = |cpu: &str, memory: &str| {
            [("cpu", cpu), ("memory", memory)]
                .into_iter()
                .map(|(name, value)| (name.to_string(), Quantity(value.to_string())))
                .collect()
        };
        ResourceRequirements {
            requests: Some(quantities("200m", "128Mi")),
            limits: Some(quantities("2", "2Gi")),
            ..Default::default()
        }
    })
}

/// The agent's configuration: the user's raw config, then every source, transform and sink
/// (the user's first; a name's first occurrence wins) that feeds a sink.
pub fn vector_toml(
    vector: &VectorTelemetry,
    cassandra_telemetry: Option<&Value>,
    mcac_enabled: bool,
) -> Result<String, VectorError> {
    let scrape = scrape_config(vector, cassandra_telemetry, mcac_enabled)?;
    let components = vector.components.as_ref();
    let mut sources = user_components(components, "sources")?;
    let mut transforms = user_components(components, "transforms")?;
    let mut sinks = user_components(components, "sinks")?;
    sources.extend(default_sources(&scrape));
    transforms.extend(default_transforms());
    sinks.push(Component::new(
        "console_log",
        "console",
        &["systemlog"],
        "target = \"stdout\"\nencoding.codec = \"text\"\n",
    ));
    let (sources, transforms, sinks) = used_pipelines(sources, transforms, sinks);
    Ok(render(vector, &sources, &transforms, &sinks))
}

/// The user's raw config and components as they are, without defaults: the sinks of a
/// Stargate's or Reaper's agent.
pub fn custom_toml(vector: &VectorTelemetry) -> Result<String, VectorError> {
    let components = vector.components.as_ref();
    Ok(render(
        vector,
        &user_components(components, "sources")?,
        &user_components(components, "transforms")?,
        &user_components(components, "sinks")?,
    ))
}

/// `scrapeInterval` in whole seconds, 30 when not set.
pub fn scrape_interval_seconds(vector: &VectorTelemetry) -> Result<i64, VectorError> {
    match vector.scrape_interval.as_deref() {
        Some(text) => go_duration_seconds(text).ok_or_else(|| VectorError::InvalidScrapeInterval {
            value: text.to_string(),
        }),
        None => Ok(DEFAULT_SCRAPE_INTERVAL_SECONDS),
    }
}

fn render(
    vector: &VectorTelemetry,
    sources: &[Component],
    transforms: &[Component],
    sinks: &[Component],
) -> String {
    let mut toml = String::new();
    if let Some(config) = vector.config.as_deref().filter(|c| !c.is_empty()) {
        toml.push_str(config);
        if !config.ends_with('\n') {
            toml.push('\n');
        }
    }
    for (section, list) in [
        ("sources", sources),
        ("transforms", transforms),
        ("sinks", sinks),
    ] {
        for component in list {
            toml.push_str(&format!(
                "\n[{section}.{}]\ntype = \"{}\"\n",
                component.name, component.kind
            ));
            if section != "sources" {
                toml.push_str(&format!(
                    "inputs = [\"{}\"]\n",
                    component.inputs.join("\", \"")
                ));
            }
            if !component.config.is_empty() {
                toml.push_str(&component.config);
                toml.push('\n');
            }
        }
    }
    toml
}

/// The `prometheus_scrape` settings of the metrics source.
fn scrape_config(
    vector: &VectorTelemetry,
    cassandra_telemetry: Option<&Value>,
    mcac_enabled: bool,
) -> Result<String, VectorError> {
    let (mut port, path) = if mcac_enabled {
        (MCAC_METRICS_PORT, "")
    } else {
        (MODERN_METRICS_PORT, "/metrics")
    };
    let interval = scrape_interval_seconds(vector)?;
    let endpoint = cassandra_telemetry.and_then(|t| t.get("endpoint"));
    let text = |key: &str| {
        endpoint.and_then(|e| e.get(key)).and_then(Value::as_str).filter(|s| !s.is_empty())
    };
    if let Some(given) = text("port") {
        port = given.parse::<u16>().ok().filter(|p| *p > 1024).ok_or_else(|| {
            VectorError::InvalidPort {
                port: given.to_string(),
            }
        })?;
    }
    let address = text("address").unwrap_or("localhost");
    let tls = endpoint.and_then(|e| e.get("tls")).filter(|t| t.is_object());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut config = format!(
        "endpoints = [ \"{scheme}://{address}:{port}{path}\" ]\nscrape_interval_secs = {interval}"
    );
    // Upstream's keys (`telemetry.cassandra.endpoint.tls`).
    for (field, setting) in [
        ("ca.crt", "ca_file"),
        ("tls.crt", "crt_file"),
        ("tls.key", "key_file"),
    ] {
        if let Some(file) =
            tls.and_then(|t| t.get(field)).and_then(Value::as_str).filter(|f| !f.is_empty())
        {
            config.push_str(&format!("\ntls.{setting} = \"{file}\""));
        }
    }
    Ok(config)
}

/// Whole seconds of a Go duration ("30s", "1m30s", "1.5m", "500ms"), rounded down.
fn go_duration_seconds(text: &str) -> Option<i64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut nanos = 0f64;
    while !rest.is_empty() {
        let number_end =
            rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        nanos += number * scale;
        rest = &rest[unit_end..];
    }
    Some((nanos / 1e9).floor() as i64)
}

fn user_components(
    components: Option<&Value>,
    kind: &'static str,
) -> Result<Vec<Component>, VectorError> {
    let Some(list) = components.and_then(|c| c.get(kind)).and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    list.iter()
        .enumerate()
        .map(|(index, item)| {
            let text = |key: &str| item.get(key).and_then(Value::as_str);
            let (Some(name), Some(type_)) = (text("name"), text("type")) else {
                return Err(VectorError::InvalidComponent { kind, index });
            };
            let inputs = item
                .get("inputs")
                .and_then(Value::as_array)
                .map(|inputs| inputs.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            Ok(Component {
                name: name.to_string(),
                kind: type_.to_string(),
                inputs,
                config: text("config").unwrap_or_default().to_string(),
            })
        })
        .collect()
}

fn default_sources(scrape: &str) -> Vec<Component> {
    vec![
        Component::new(
            "systemlog",
            "file",
            &[],
            concat!(
                "include = [ \"/var/log/cassandra/system.log\" ]\n",
                "read_from = \"beginning\"\n",
                "fingerprint.strategy = \"device_and_inode\"\n",
                "[sources.systemlog.multiline]\n",
                "start_pattern = \"^(INFO|WARN|ERROR|DEBUG|TRACE|FATAL)\"\n",
                "condition_pattern = \"^(INFO|WARN|ERROR|DEBUG|TRACE|FATAL)\"\n",
                "mode = \"halt_before\"\n",
                "timeout_ms = 10000\n",
            ),
        ),
        Component::new("cassandra_metrics_raw", "prometheus_scrape", &[], scrape),
    ]
}

/// A parser of Cassandra's log lines (level, thread, time, class, line; the pod's identity
/// from its environment) and a tagger adding the namespace to the metrics: offered for the
/// user's sinks, left out unless one reads them.
fn default_transforms() -> Vec<Component> {
    let identity: String = [
        ("pod_name", "POD_NAME"),
        ("node_name", "NODE_NAME"),
        ("cluster", "CLUSTER_NAME"),
        ("datacenter", "DATACENTER_NAME"),
        ("rack", "RACK_NAME"),
        ("namespace", "NAMESPACE"),
    ]
    .iter()
    .map(|(field, variable)| {
        format!(
            "{field}, err = get_env_var(\"{variable}\")\nif err == null {{\n  .{field} = {field}\n}}\n"
        )
    })
    .collect();
    let parse_log = format!(
        concat!(
            "source = '''\n",
            "del(.source_type)\n",
            ".message = string!(.message)\n",
            ".message = strip_whitespace(.message)\n",
            "., err = . | parse_groks(.message, patterns: [\n",
            "  \"%{{LOGLEVEL:loglevel}}\\\\s+\\\\[(?<thread>((.+)))\\\\]\\\\s+%{{TIMESTAMP_ISO8601:timestamp_raw}}\\\\s+%{{JAVACLASS:class}}:%{{NUMBER:line}}\\\\s+-\\\\s+(?<message>(.+\\\\n?)+)\",\n",
            "  ]\n",
            ")\n",
            "if err != null {{\n",
            "  log(\"Unable to parse line: \" + err, level: \"error\")\n",
            "  .message = .message\n",
            "  .loglevel = \"warn\"\n",
            "}}\n",
            "parsed_timestamp, err = parse_timestamp(.timestamp_raw, format: \"%Y-%m-%d %T,%3f\")\n",
            "if err == null {{\n",
            "  .timestamp = parsed_timestamp\n",
            "}} else {{\n",
            "  .timestamp = now()\n",
            "}}\n",
            "del(.timestamp_raw)\n",
            "{identity}",
            "'''\n",
        ),
        identity = identity
    );
    vec![
        Component::new("parse_cassandra_log", "remap", &["systemlog"], &parse_log),
        Component::new(
            "cassandra_metrics",
            "remap",
            &["cassandra_metrics_raw"],
            "source = '''\nnamespace, err = get_env_var(\"NAMESPACE\")\nif err == null {\n  .tags.namespace = namespace\n}\n'''\n",
        ),
    ]
}

/// Keeps the first of each name, then drops transforms nothing reads (until none is left to
/// drop) and sources nothing reads. Sinks are all kept.
fn used_pipelines(
    sources: Vec<Component>,
    transforms: Vec<Component>,
    sinks: Vec<Component>,
) -> (Vec<Component>, Vec<Component>, Vec<Component>) {
    let first_of_each = |list: Vec<Component>| {
        let mut seen = BTreeSet::new();
        list.into_iter().filter(|c| seen.insert(c.name.clone())).collect::<Vec<_>>()
    };
    let (sources, mut transforms, sinks) = (
        first_of_each(sources),
        first_of_each(transforms),
        first_of_each(sinks),
    );
    let read_by_sinks: BTreeSet<&str> =
        sinks.iter().flat_map(|s| s.inputs.iter().map(String::as_str)).collect();
    loop {
        let read: BTreeSet<String> = transforms
            .iter()
            .flat_map(|t| t.inputs.iter().cloned())
            .chain(read_by_sinks.iter().map(|s| s.to_string()))
            .collect();
        let before = transforms.len();
        transforms.retain(|t| read.contains(&t.name));
        if transforms.len() == before {
            let sources = sources.into_iter().filter(|s| read.contains(&s.name)).collect();
            return (sources, transforms, sinks);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn enabled() -> VectorTelemetry {
        VectorTelemetry {
            enabled: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn by_default_the_system_log_goes_to_stdout_and_nothing_else_runs() {
        let toml = vector_toml(&enabled(), None, true).expect("toml");
        assert!(
            toml.starts_with("\n[sources.systemlog]\ntype = \"file\"\n"),
            "{toml}"
        );
        assert!(
            toml.contains("\n[sinks.console_log]\ntype = \"console\"\ninputs = [\"systemlog\"]\n")
        );
        for unused in [
            "cassandra_metrics_raw",
            "parse_cassandra_log",
            "[transforms.",
        ] {
            assert!(!toml.contains(unused), "{unused} in {toml}");
        }
    }

    #[test]
    fn a_users_sink_pulls_in_the_transforms_and_sources_it_reads() {
        let mut vector = enabled();
        vector.scrape_interval = Some("1m30s".into());
        vector.config = Some("[api]\nenabled = true".into());
        vector.components = Some(json!({"sinks": [{
            "name": "prom", "type": "prometheus_exporter", "inputs": ["cassandra_metrics"],
            "config": "address = \"0.0.0.0:9091\""
        }]}));
        let toml = vector_toml(&vector, None, false).expect("toml");
        assert!(
            toml.starts_with("[api]\nenabled = true\n\n[sources."),
            "{toml}"
        );
        assert!(toml.contains(concat!(
            "[sources.cassandra_metrics_raw]\ntype = \"prometheus_scrape\"\n",
            "endpoints = [ \"http://localhost:9000/metrics\" ]\nscrape_interval_secs = 90\n"
        )));
        assert!(toml.contains("[transforms.cassandra_metrics]\ntype = \"remap\"\ninputs = [\"cassandra_metrics_raw\"]\n"));
        assert!(toml.contains("[sinks.prom]\ntype = \"prometheus_exporter\"\ninputs = [\"cassandra_metrics\"]\naddress = \"0.0.0.0:9091\"\n"));
        assert!(!toml.contains("parse_cassandra_log"), "no sink reads it");
        // Sources come before transforms, transforms before sinks.
        let at = |s: &str| toml.find(s).expect(s);
        assert!(
            at("[sources.systemlog]") < at("[transforms.") && at("[transforms.") < at("[sinks.")
        );
    }

    #[test]
    fn a_users_component_replaces_a_default_of_the_same_name() {
        let mut vector = enabled();
        vector.components = Some(json!({"sinks": [{
            "name": "console_log", "type": "console", "inputs": ["parse_cassandra_log"],
            "config": "target = \"stderr\""
        }]}));
        let toml = vector_toml(&vector, None, true).expect("toml");
        assert_eq!(toml.matches("[sinks.console_log]").count(), 1);
        assert!(toml.contains("target = \"stderr\""));
        assert!(toml.contains("[transforms.parse_cassandra_log]"));
        assert!(toml.contains(".pod_name = pod_name"), "{toml}");
    }

    #[test]
    fn the_metrics_endpoint_follows_mcac_and_the_cassandra_telemetry_endpoint() {
        let mut vector = enabled();
        vector.components = Some(json!({"sinks": [
            {"name": "m", "type": "blackhole", "inputs": ["cassandra_metrics_raw"]}
        ]}));
        let mcac = vector_toml(&vector, None, true).expect("toml");
        assert!(
            mcac.contains("endpoints = [ \"http://localhost:9103\" ]\nscrape_interval_secs = 30")
        );
        let endpoint = json!({"endpoint": {"address": "10.0.0.1", "port": "9443",
            "tls": {"ca.crt": "/ca.crt", "tls.crt": "/tls.crt", "tls.key": "/tls.key"}}});
        let tls = vector_toml(&vector, Some(&endpoint), false).expect("toml");
        assert!(tls.contains(concat!(
            "endpoints = [ \"https://10.0.0.1:9443/metrics\" ]\nscrape_interval_secs = 30\n",
            "tls.ca_file = \"/ca.crt\"\ntls.crt_file = \"/tls.crt\"\ntls.key_file = \"/tls.key\"\n"
        )), "{tls}");
    }

    #[test]
    fn bad_settings_are_named() {
        let low_port = json!({"endpoint": {"port": "80"}});
        assert_eq!(
            vector_toml(&enabled(), Some(&low_port), true),
            Err(VectorError::InvalidPort { port: "80".into() })
        );
        let mut vector = enabled();
        vector.scrape_interval = Some("soon".into());
        assert!(matches!(
            vector_toml(&vector, None, true),
            Err(VectorError::InvalidScrapeInterval { .. })
        ));
        vector.scrape_interval = None;
        vector.components = Some(json!({"transforms": [{"type": "remap"}]}));
        assert_eq!(
            vector_toml(&vector, None, true),
            Err(VectorError::InvalidComponent {
                kind: "transforms",
                index: 0
            })
        );
    }

    #[test]
    fn go_durations_in_whole_seconds() {
        for (text, seconds) in [
            ("30s", 30),
            ("1m", 60),
            ("1h2m3s", 3723),
            ("1.5m", 90),
            ("2500ms", 2),
        ] {
            assert_eq!(go_duration_seconds(text), Some(seconds), "{text}");
        }
        for bad in ["", "30", "1d", "s"] {
            assert_eq!(go_duration_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn default_resources_are_upstreams() {
        let defaults = resources(&enabled());
        let requests = defaults.requests.expect("requests");
        assert_eq!(requests["cpu"], Quantity("200m".into()));
        assert_eq!(
            defaults.limits.expect("limits")["memory"],
            Quantity("2Gi".into())
        );
        assert_eq!(
            config_map_name("Demo", "dc1"),
            "demo-dc1-cass-vector",
            "cleaned as cass-operator cleans names"
        );
    }
}
