//! Operator settings, layered as: built-in defaults < `--config FILE` (YAML) < `FEDERATOR_*`
//! environment < command-line flags.
//!
//! Every source is read as raw text first and checked here, so a bad value is reported with the
//! name of the setting and the value that was given, whatever the source.

use std::{net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

/// Default namespace of the operator when `POD_NAMESPACE` is not set (k8ssandra-operator's).
pub const DEFAULT_OPERATOR_NAMESPACE: &str = "k8ssandra-operator";

/// Which controllers a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The hub: federation controllers plus the per-region ones.
    ControlPlane,
    /// A region: only the controllers for objects that live in that region.
    DataPlane,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "control-plane" => Ok(Mode::ControlPlane),
            "data-plane" => Ok(Mode::DataPlane),
            _ => Err("expected control-plane or data-plane".into()),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::ControlPlane => "control-plane",
            Mode::DataPlane => "data-plane",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json".into()),
        }
    }
}

/// Largest `regions.probe_failure_threshold`: beyond it a dead region would go unnoticed for
/// too long.
pub const MAX_PROBE_FAILURE_THRESHOLD: u32 = 20;

/// Limits that apply to every remote region (one per ClientConfig).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionSettings {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Requests in flight to one region at most; the rest wait.
    pub max_concurrent_requests: usize,
    pub probe_interval: Duration,
    /// Failed probes in a row before a region is marked unreachable (its calls then fail at
    /// once until a probe succeeds): one lost answer does not cut a region off.
    pub probe_failure_threshold: u32,
    /// Accept kubeconfigs whose cluster sets `insecure-skip-tls-verify`.
    pub allow_insecure_skip_tls_verify: bool,
}

/// Leader election among the replicas of a control plane: only the holder of the Lease runs
/// the controllers that write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElectionSettings {
    pub enabled: bool,
    pub lease_name: String,
    /// Namespace of the Lease; the operator namespace unless set.
    pub lease_namespace: String,
}

/// The validated settings of a `federator run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub mode: Mode,
    pub operator_namespace: String,
    /// Namespaces whose K8ssandraClusters are reconciled; empty means every namespace.
    pub watch_namespaces: Vec<String>,
    /// Kubeconfig of the home cluster; None means in-cluster, else `KUBECONFIG`/`~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub http_addr: SocketAddr,
    pub log_format: LogFormat,
    /// A tracing `EnvFilter` directive such as `info` or `federator=debug,kube=info`.
    pub log_level: String,
    /// Accept kubeconfigs whose users run `exec` or `auth-provider` plugins.
    pub allow_exec_credentials: bool,
    /// How long a replica whose controller failed keeps serving (failing `/healthz`, its
    /// metrics readable) before it exits.
    pub exit_after_controller_failure: Duration,
    pub regions: RegionSettings,
    pub leader_election: LeaderElectionSettings,
    pub images: ImageSettings,
    /// How the pods' Management API is reached.
    pub management_api_transport: crate::cassandra::management::Transport,
}

/// Container images of the components Federator deploys in the regions (`registry/name:tag`);
/// a component's own `containerImage` overrides the parts it gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSettings {
    /// Stargate for Cassandra 4.x and later.
    pub stargate: String,
    /// Stargate for Cassandra 3.11.
    pub stargate_cassandra3: String,
    pub reaper: String,
    /// Vector, for the agents of Stargate and Reaper (cass-operator's system-logger image).
    pub system_logger: String,
}

/// Default Stargate image (Cassandra 4.x), as k8ssandra-operator pins it.
pub const DEFAULT_STARGATE_IMAGE: &str = "docker.io/stargateio/stargate-4_0:v1.0.77";
/// Default Stargate image for Cassandra 3.11.
pub const DEFAULT_STARGATE_CASSANDRA3_IMAGE: &str = "docker.io/stargateio/stargate-3_11:v1.0.77";
/// Default Reaper image.
pub const DEFAULT_REAPER_IMAGE: &str = "docker.io/thelastpickle/cassandra-reaper:3.5.0";
/// Default Vector agent image, as k8ssandra-operator's image configuration pins it.
pub const DEFAULT_SYSTEM_LOGGER_IMAGE: &str = "docker.io/k8ssandra/system-logger:v1.31.0";

impl Default for ImageSettings {
    fn default() -> Self {
        ImageSettings {
            stargate: DEFAULT_STARGATE_IMAGE.into(),
            stargate_cassandra3: DEFAULT_STARGATE_CASSANDRA3_IMAGE.into(),
            reaper: DEFAULT_REAPER_IMAGE.into(),
            system_logger: DEFAULT_SYSTEM_LOGGER_IMAGE.into(),
        }
    }
}

/// Flags of `federator run` that override every other source when given.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub mode: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
    pub watch_namespaces: Option<Vec<String>>,
    pub http_addr: Option<String>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    /// `--allow-exec-credentials` given (a flag can only turn it on)
    pub allow_exec_credentials: bool,
    /// `--no-leader-election` given (a flag can only turn it off)
    pub no_leader_election: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read settings: {0}")]
    Source(#[from] config::ConfigError),
    #[error("invalid setting `{key}`: {value:?}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
}

/// Raw settings as the sources give them: text, so that errors can quote what was given.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    mode: String,
    operator_namespace: String,
    #[serde(default)]
    watch_namespaces: Vec<String>,
    kubeconfig: Option<String>,
    context: Option<String>,
    http_addr: String,
    log_format: String,
    log_level: String,
    allow_exec_credentials: String,
    exit_after_controller_failure_seconds: String,
    regions: RawRegionSettings,
    images: RawImageSettings,
    leader_election: RawLeaderElectionSettings,
    management_api: RawManagementApiSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManagementApiSettings {
    transport: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImageSettings {
    stargate: String,
    stargate_cassandra3: String,
    reaper: String,
    system_logger: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLeaderElectionSettings {
    enabled: String,
    lease_name: String,
    #[serde(default)]
    lease_namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegionSettings {
    connect_timeout_seconds: String,
    request_timeout_seconds: String,
    max_concurrent_requests: String,
    probe_interval_seconds: String,
    probe_failure_threshold: String,
    allow_insecure_skip_tls_verify: String,
}

impl Settings {
    /// Loads settings from the defaults, the config file, the process environment and `flags`.
    pub fn load(flags: &Overrides) -> Result<Settings, SettingsError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Settings::load_from(flags, &env)
    }

    /// Like [`Settings::load`], with an explicit environment (for tests).
    pub fn load_from(
        flags: &Overrides,
        env: &[(String, String)],
    ) -> Result<Settings, SettingsError> {
        let pod_namespace = env
            .iter()
            .find(|(k, v)| k == "POD_NAMESPACE" && !v.is_empty())
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| DEFAULT_OPERATOR_NAMESPACE.to_string());

        let mut builder = Config::builder()
            .set_default("mode", "control-plane")?
            .set_default("operator_namespace", pod_namespace)?
            .set_default("watch_namespaces", Vec::<String>::new())?
            .set_default("http_addr", "0.0.0.0:8080")?
            .set_default("log_format", "text")?
            .set_default("log_level", "info")?
            .set_default("allow_exec_credentials", "false")?
            .set_default("exit_after_controller_failure_seconds", "30")?
            .set_default("regions.connect_timeout_seconds", "5")?
            .set_default("regions.request_timeout_seconds", "10")?
            .set_default("regions.max_concurrent_requests", "8")?
            .set_default("regions.probe_interval_seconds", "10")?
            .set_default("regions.probe_failure_threshold", "3")?
            .set_default("regions.allow_insecure_skip_tls_verify", "false")?
            .set_default("images.stargate", DEFAULT_STARGATE_IMAGE)?
            .set_default(
                "images.stargate_cassandra3",
                DEFAULT_STARGATE_CASSANDRA3_IMAGE,
            )?
            .set_default("images.reaper", DEFAULT_REAPER_IMAGE)?
            .set_default("images.system_logger", DEFAULT_SYSTEM_LOGGER_IMAGE)?
            .set_default("leader_election.enabled", "true")?
            .set_default("leader_election.lease_name", "federator-leader")?
            .set_default("management_api.transport", "pod-proxy")?;

        if let Some(path) = &flags.config_file {
            builder = builder.add_source(File::from(path.clone()).format(FileFormat::Yaml));
        }

        // Only the variables that name a setting: Kubernetes injects service-link variables such
        // as FEDERATOR_SERVICE_HOST into pods, and those must not be taken for typos.
        let federator_env: config::Map<String, String> =
            env.iter().filter(|(k, _)| env_names_a_setting(k)).cloned().collect();
        builder = builder.add_source(
            Environment::with_prefix("FEDERATOR")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("watch_namespaces")
                .try_parsing(true)
                .source(Some(federator_env)),
        );

        builder = apply_flags(builder, flags)?;
        let raw: RawSettings = builder.build()?.try_deserialize()?;
        raw.validate()
    }
}

/// Every setting's key, as written in the config file (`regions.x` nests under `regions:`).
const SETTING_KEYS: &[&str] = &[
    "mode",
    "operator_namespace",
    "watch_namespaces",
    "kubeconfig",
    "context",
    "http_addr",
    "log_format",
    "log_level",
    "allow_exec_credentials",
    "exit_after_controller_failure_seconds",
    "regions.connect_timeout_seconds",
    "regions.request_timeout_seconds",
    "regions.max_concurrent_requests",
    "regions.probe_interval_seconds",
    "regions.probe_failure_threshold",
    "regions.allow_insecure_skip_tls_verify",
    "images.stargate",
    "images.stargate_cassandra3",
    "images.reaper",
    "images.system_logger",
    "leader_election.enabled",
    "leader_election.lease_name",
    "leader_election.lease_namespace",
    "management_api.transport",
];

/// `FEDERATOR_REGIONS__PROBE_INTERVAL_SECONDS` names `regions.probe_interval_seconds`.
fn env_names_a_setting(variable: &str) -> bool {
    variable.strip_prefix("FEDERATOR_").is_some_and(|rest| {
        let key = rest.to_ascii_lowercase().replace("__", ".");
        SETTING_KEYS.contains(&key.as_str())
    })
}

fn apply_flags(
    mut builder: config::ConfigBuilder<config::builder::DefaultState>,
    flags: &Overrides,
) -> Result<config::ConfigBuilder<config::builder::DefaultState>, SettingsError> {
    let path_text = |p: &PathBuf| p.to_string_lossy().into_owned();
    let scalars = [
        ("mode", flags.mode.clone()),
        ("kubeconfig", flags.kubeconfig.as_ref().map(path_text)),
        ("context", flags.context.clone()),
        ("operator_namespace", flags.namespace.clone()),
        ("http_addr", flags.http_addr.clone()),
        ("log_format", flags.log_format.clone()),
        ("log_level", flags.log_level.clone()),
    ];
    for (key, value) in scalars {
        if let Some(value) = value {
            builder = builder.set_override(key, value)?;
        }
    }
    if let Some(namespaces) = &flags.watch_namespaces {
        builder = builder.set_override("watch_namespaces", namespaces.clone())?;
    }
    if flags.allow_exec_credentials {
        builder = builder.set_override("allow_exec_credentials", "true")?;
    }
    if flags.no_leader_election {
        builder = builder.set_override("leader_election.enabled", "false")?;
    }
    Ok(builder)
}

fn invalid(key: &'static str, value: &str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key,
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn parse<T: FromStr>(key: &'static str, value: &str) -> Result<T, SettingsError>
where
    T::Err: std::fmt::Display,
{
    value.trim().parse::<T>().map_err(|e| invalid(key, value, e.to_string()))
}

fn parse_bool(key: &'static str, value: &str) -> Result<bool, SettingsError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

fn parse_seconds(key: &'static str, value: &str) -> Result<Duration, SettingsError> {
    let seconds: f64 = parse(key, value)?;
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
        return Err(invalid(
            key,
            value,
            "expected a number of seconds above 0 and at most 3600",
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A Kubernetes namespace name: an RFC 1123 label.
fn check_namespace(key: &'static str, value: &str) -> Result<String, SettingsError> {
    let valid = !value.is_empty()
        && value.len() <= 63
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if valid {
        Ok(value.to_string())
    } else {
        Err(invalid(
            key,
            value,
            "not a namespace name (lower-case letters, digits and '-', at most 63 characters)",
        ))
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

impl RawSettings {
    fn validate(self) -> Result<Settings, SettingsError> {
        let mode = parse("mode", &self.mode)?;
        let operator_namespace = check_namespace("operator_namespace", &self.operator_namespace)?;
        let watch_namespaces = self
            .watch_namespaces
            .iter()
            .map(|ns| ns.trim())
            .filter(|ns| !ns.is_empty())
            .map(|ns| check_namespace("watch_namespaces", ns))
            .collect::<Result<Vec<_>, _>>()?;
        let http_addr = parse("http_addr", &self.http_addr)?;
        let log_format = parse("log_format", &self.log_format)?;
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .map_err(|e| invalid("log_level", &self.log_level, e.to_string()))?;
        let allow_exec_credentials =
            parse_bool("allow_exec_credentials", &self.allow_exec_credentials)?;
        let exit_after_controller_failure = parse_seconds(
            "exit_after_controller_failure_seconds",
            &self.exit_after_controller_failure_seconds,
        )?;

        let r = self.regions;
        let max_concurrent_requests: usize = parse(
            "regions.max_concurrent_requests",
            &r.max_concurrent_requests,
        )?;
        if max_concurrent_requests == 0 {
            return Err(invalid(
                "regions.max_concurrent_requests",
                &r.max_concurrent_requests,
                "must be at least 1",
            ));
        }
        let probe_failure_threshold: u32 = parse(
            "regions.probe_failure_threshold",
            &r.probe_failure_threshold,
        )?;
        if !(1..=MAX_PROBE_FAILURE_THRESHOLD).contains(&probe_failure_threshold) {
            return Err(invalid(
                "regions.probe_failure_threshold",
                &r.probe_failure_threshold,
                format!("must be between 1 and {MAX_PROBE_FAILURE_THRESHOLD}"),
            ));
        }
        let regions = RegionSettings {
            connect_timeout: parse_seconds(
                "regions.connect_timeout_seconds",
                &r.connect_timeout_seconds,
            )?,
            request_timeout: parse_seconds(
                "regions.request_timeout_seconds",
                &r.request_timeout_seconds,
            )?,
            max_concurrent_requests,
            probe_interval: parse_seconds(
                "regions.probe_interval_seconds",
                &r.probe_interval_seconds,
            )?,
            probe_failure_threshold,
            allow_insecure_skip_tls_verify: parse_bool(
                "regions.allow_insecure_skip_tls_verify",
                &r.allow_insecure_skip_tls_verify,
            )?,
        };

        let image = |key: &'static str, value: String| {
            let value = value.trim().to_string();
            if value.is_empty() || value.chars().any(char::is_whitespace) {
                Err(invalid(
                    key,
                    &value,
                    "expected an image reference such as registry/name:tag",
                ))
            } else {
                Ok(value)
            }
        };
        let images = ImageSettings {
            stargate: image("images.stargate", self.images.stargate)?,
            stargate_cassandra3: image(
                "images.stargate_cassandra3",
                self.images.stargate_cassandra3,
            )?,
            reaper: image("images.reaper", self.images.reaper)?,
            system_logger: image("images.system_logger", self.images.system_logger)?,
        };
        let election = self.leader_election;
        let lease_name = election.lease_name.trim();
        if lease_name.is_empty() {
            return Err(invalid(
                "leader_election.lease_name",
                &election.lease_name,
                "must not be empty",
            ));
        }
        let leader_election = LeaderElectionSettings {
            enabled: parse_bool("leader_election.enabled", &election.enabled)?,
            lease_name: lease_name.to_string(),
            lease_namespace: match non_empty(election.lease_namespace) {
                Some(namespace) => check_namespace("leader_election.lease_namespace", &namespace)?,
                None => operator_namespace.clone(),
            },
        };

        let management_api_transport = match self.management_api.transport.trim() {
            "pod-proxy" => crate::cassandra::management::Transport::PodProxy,
            "pod-ip" => crate::cassandra::management::Transport::PodIp,
            other => {
                return Err(invalid(
                    "management_api.transport",
                    other,
                    "expected pod-proxy or pod-ip",
                ));
            }
        };

        Ok(Settings {
            mode,
            operator_namespace,
            watch_namespaces,
            kubeconfig: non_empty(self.kubeconfig).map(PathBuf::from),
            context: non_empty(self.context),
            http_addr,
            log_format,
            log_level: self.log_level,
            allow_exec_credentials,
            exit_after_controller_failure,
            regions,
            images,
            leader_election,
            management_api_transport,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn config_file(yaml: &str) -> tempfile_path::TempFile {
        tempfile_path::TempFile::with_contents(yaml)
    }

    /// A minimal temp file helper, to keep the dev-dependencies small.
    mod tempfile_path {
        use super::*;
        pub struct TempFile(pub PathBuf);
        impl TempFile {
            pub fn with_contents(contents: &str) -> Self {
                static COUNTER: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(0);
                let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let path = std::env::temp_dir().join(format!(
                    "federator-settings-{}-{n}.yaml",
                    std::process::id()
                ));
                let mut file = std::fs::File::create(&path).expect("create temp file");
                file.write_all(contents.as_bytes()).expect("write temp file");
                TempFile(path)
            }
        }
        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let s = Settings::load_from(&Overrides::default(), &[]).expect("defaults are valid");
        assert_eq!(s.mode, Mode::ControlPlane);
        assert_eq!(s.operator_namespace, "k8ssandra-operator");
        assert!(s.watch_namespaces.is_empty());
        assert_eq!(s.http_addr, "0.0.0.0:8080".parse().expect("addr"));
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.log_level, "info");
        assert!(!s.allow_exec_credentials);
        assert_eq!(s.kubeconfig, None);
        assert_eq!(s.regions.request_timeout, Duration::from_secs(10));
        assert_eq!(s.regions.max_concurrent_requests, 8);
        assert_eq!(s.regions.probe_failure_threshold, 3);
        assert!(s.leader_election.enabled);
        assert_eq!(s.leader_election.lease_name, "federator-leader");
        assert_eq!(s.leader_election.lease_namespace, "k8ssandra-operator");
    }

    #[test]
    fn leader_election_is_configurable_and_can_be_turned_off_by_flag() {
        let environment = env(&[
            ("POD_NAMESPACE", "ops"),
            ("FEDERATOR_LEADER_ELECTION__LEASE_NAME", "hub-leader"),
            ("FEDERATOR_LEADER_ELECTION__LEASE_NAMESPACE", "leases"),
        ]);
        let s = Settings::load_from(&Overrides::default(), &environment).expect("valid");
        assert!(s.leader_election.enabled);
        assert_eq!(s.leader_election.lease_name, "hub-leader");
        assert_eq!(s.leader_election.lease_namespace, "leases");
        let flags = Overrides {
            no_leader_election: true,
            ..Overrides::default()
        };
        let s = Settings::load_from(&flags, &environment).expect("valid");
        assert!(!s.leader_election.enabled);
        let bad = env(&[(
            "FEDERATOR_LEADER_ELECTION__LEASE_NAMESPACE",
            "Not_A_Namespace",
        )]);
        let error = Settings::load_from(&Overrides::default(), &bad).expect_err("refused");
        assert!(
            error.to_string().contains("leader_election.lease_namespace"),
            "{error}"
        );
    }

    #[test]
    fn pod_namespace_is_the_default_operator_namespace() {
        let s = Settings::load_from(&Overrides::default(), &env(&[("POD_NAMESPACE", "ops")]))
            .expect("valid");
        assert_eq!(s.operator_namespace, "ops");
    }

    #[test]
    fn file_overrides_defaults_env_overrides_file_and_flags_override_env() {
        let file = config_file(
            "mode: data-plane\nlog_format: json\nhttp_addr: 127.0.0.1:9000\noperator_namespace: from-file\nregions:\n  request_timeout_seconds: 3\n",
        );
        let flags = Overrides {
            config_file: Some(file.0.clone()),
            ..Default::default()
        };
        let s = Settings::load_from(&flags, &[]).expect("valid");
        assert_eq!(s.mode, Mode::DataPlane);
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.operator_namespace, "from-file");
        assert_eq!(s.regions.request_timeout, Duration::from_secs(3));

        let environment = env(&[
            ("FEDERATOR_MODE", "control-plane"),
            ("FEDERATOR_OPERATOR_NAMESPACE", "from-env"),
            ("FEDERATOR_WATCH_NAMESPACES", "a,b"),
            ("FEDERATOR_REGIONS__REQUEST_TIMEOUT_SECONDS", "7"),
            ("FEDERATOR_ALLOW_EXEC_CREDENTIALS", "true"),
        ]);
        let s = Settings::load_from(&flags, &environment).expect("valid");
        assert_eq!(s.mode, Mode::ControlPlane);
        assert_eq!(s.operator_namespace, "from-env");
        assert_eq!(s.watch_namespaces, vec!["a", "b"]);
        assert_eq!(s.regions.request_timeout, Duration::from_secs(7));
        assert!(s.allow_exec_credentials);
        assert_eq!(s.log_format, LogFormat::Json, "the file still applies");

        let flags = Overrides {
            mode: Some("data-plane".into()),
            namespace: Some("from-flag".into()),
            watch_namespaces: Some(vec!["c".into()]),
            ..flags
        };
        let s = Settings::load_from(&flags, &environment).expect("valid");
        assert_eq!(s.mode, Mode::DataPlane);
        assert_eq!(s.operator_namespace, "from-flag");
        assert_eq!(s.watch_namespaces, vec!["c"]);
    }

    #[test]
    fn a_bad_value_names_the_setting_and_the_value() {
        let cases = [
            ("FEDERATOR_MODE", "hub", "mode"),
            ("FEDERATOR_HTTP_ADDR", "localhost", "http_addr"),
            ("FEDERATOR_LOG_FORMAT", "xml", "log_format"),
            (
                "FEDERATOR_ALLOW_EXEC_CREDENTIALS",
                "maybe",
                "allow_exec_credentials",
            ),
            (
                "FEDERATOR_OPERATOR_NAMESPACE",
                "Bad_NS",
                "operator_namespace",
            ),
            (
                "FEDERATOR_WATCH_NAMESPACES",
                "ok,NOT-OK",
                "watch_namespaces",
            ),
            (
                "FEDERATOR_REGIONS__REQUEST_TIMEOUT_SECONDS",
                "-1",
                "regions.request_timeout_seconds",
            ),
            (
                "FEDERATOR_REGIONS__MAX_CONCURRENT_REQUESTS",
                "0",
                "regions.max_concurrent_requests",
            ),
            (
                "FEDERATOR_REGIONS__PROBE_FAILURE_THRESHOLD",
                "0",
                "regions.probe_failure_threshold",
            ),
            (
                "FEDERATOR_REGIONS__PROBE_FAILURE_THRESHOLD",
                "1000",
                "regions.probe_failure_threshold",
            ),
        ];
        for (var, value, key) in cases {
            let err =
                Settings::load_from(&Overrides::default(), &env(&[(var, value)])).expect_err(var);
            let text = err.to_string();
            assert!(text.contains(&format!("`{key}`")), "{text}");
            let quoted_part = value.split(',').next_back().unwrap_or(value);
            assert!(text.contains(quoted_part), "{text}");
        }
    }

    #[test]
    fn service_link_variables_are_not_taken_for_settings() {
        let environment = env(&[
            ("FEDERATOR_SERVICE_HOST", "10.0.0.1"),
            ("FEDERATOR_PORT", "tcp://10.0.0.1:8080"),
            ("FEDERATOR_LOG_LEVEL", "debug"),
        ]);
        let s = Settings::load_from(&Overrides::default(), &environment).expect("valid");
        assert_eq!(s.log_level, "debug");
    }

    #[test]
    fn every_setting_key_has_an_environment_variable() {
        for key in SETTING_KEYS {
            let var = format!("FEDERATOR_{}", key.to_ascii_uppercase().replace('.', "__"));
            assert!(env_names_a_setting(&var), "{var}");
        }
    }

    #[test]
    fn component_images_have_defaults_and_can_be_overridden() {
        let s = Settings::load_from(&Overrides::default(), &[]).expect("defaults are valid");
        assert_eq!(s.images, ImageSettings::default());
        let environment = env(&[("FEDERATOR_IMAGES__REAPER", "registry.local/reaper:9")]);
        let s = Settings::load_from(&Overrides::default(), &environment).expect("valid");
        assert_eq!(s.images.reaper, "registry.local/reaper:9");
        assert_eq!(s.images.stargate, DEFAULT_STARGATE_IMAGE);
        let environment = env(&[("FEDERATOR_IMAGES__STARGATE", "bad image")]);
        let err = Settings::load_from(&Overrides::default(), &environment).expect_err("space");
        assert!(err.to_string().contains("`images.stargate`"), "{err}");
    }

    #[test]
    fn a_bad_flag_is_reported_like_any_other_source() {
        let flags = Overrides {
            log_format: Some("yaml".into()),
            ..Default::default()
        };
        let err = Settings::load_from(&flags, &[]).expect_err("bad flag");
        assert!(err.to_string().contains("`log_format`: \"yaml\""), "{err}");
    }

    #[test]
    fn an_unknown_key_in_the_config_file_is_refused() {
        let file = config_file("mdoe: data-plane\n");
        let flags = Overrides {
            config_file: Some(file.0.clone()),
            ..Default::default()
        };
        let err = Settings::load_from(&flags, &[]).expect_err("typo");
        assert!(err.to_string().contains("mdoe"), "{err}");
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        let flags = Overrides {
            config_file: Some(PathBuf::from("/nonexistent/federator.yaml")),
            ..Default::default()
        };
        assert!(Settings::load_from(&flags, &[]).is_err());
    }
}
