//! The Vector agent sidecar of Stargate and Reaper, as k8ssandra-operator adds it: with
//! `telemetry.vector.enabled`, a container scraping the component's metrics endpoint, and its
//! `vector.toml` in a ConfigMap named after the datacenter (`<cluster>-<dc>-<kind>-vector`),
//! owned by the component. Its sinks are the user's components, else one printing the metrics
//! to stdout.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, PodSpec, SecurityContext, Volume,
    VolumeMount,
};
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};

use crate::api::cassdc::CassandraDatacenter;
use crate::api::shared::{TelemetrySpec, VectorTelemetry};
use crate::workload::labels::clean_for_kubernetes;
use crate::workload::vector::{self, VectorError};

/// One component's agent: where its metrics are and what its objects are called.
pub struct Agent {
    kind: &'static str,
    metrics_port: u16,
    metrics_path: &'static str,
}

pub const STARGATE: Agent = Agent {
    kind: "stargate",
    metrics_port: 8084,
    metrics_path: "/metrics",
};

pub const REAPER: Agent = Agent {
    kind: "reaper",
    metrics_port: 8081,
    metrics_path: "/prometheusMetrics",
};

/// The Vector settings when the agent is enabled.
pub fn enabled(telemetry: Option<&TelemetrySpec>) -> Option<&VectorTelemetry> {
    telemetry.filter(|t| t.vector_enabled()).and_then(|t| t.vector.as_ref())
}

impl Agent {
    pub fn container_name(&self) -> String {
        format!("{}-vector-agent", self.kind)
    }

    fn volume_name(&self) -> String {
        format!("{}-vector-config", self.kind)
    }

    pub fn config_map_name(&self, dc: &CassandraDatacenter) -> String {
        let datacenter = dc
            .spec
            .datacenter_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| dc.name_any());
        format!(
            "{}-{}-{}-vector",
            clean_for_kubernetes(&dc.spec.cluster_name),
            clean_for_kubernetes(&datacenter),
            self.kind
        )
    }

    /// The agent's configuration: the component's metrics as a source, then the sinks.
    pub fn toml(&self, settings: &VectorTelemetry) -> Result<String, VectorError> {
        let source = format!("{}_metrics", self.kind);
        let sinks = match settings.components {
            Some(_) => vector::custom_toml(settings)?,
            None => format!(
                "\n[sinks.console]\ntype = \"console\"\ninputs = [ \"{source}\" ]\ntarget = \"stdout\"\n\n  [sinks.console.encoding]\n  codec = \"json\""
            ),
        };
        Ok(format!(
            "\ndata_dir = \"/var/lib/vector\"\n\n[api]\nenabled = false\n\n[sources.{source}]\ntype = \"prometheus_scrape\"\nendpoints = [ \"http://localhost:{}{}\" ]\nscrape_interval_secs = {}\n\n{sinks}",
            self.metrics_port,
            self.metrics_path,
            vector::scrape_interval_seconds(settings)?
        ))
    }

    /// The ConfigMap holding the configuration, owned by `owner`, when `telemetry` enables the
    /// agent.
    pub fn config_map<K: Resource<DynamicType = ()>>(
        &self,
        owner: &K,
        labels: BTreeMap<String, String>,
        dc: &CassandraDatacenter,
        telemetry: Option<&TelemetrySpec>,
    ) -> Result<Option<ConfigMap>, VectorError> {
        let Some(settings) = enabled(telemetry) else {
            return Ok(None);
        };
        Ok(Some(ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.config_map_name(dc)),
                namespace: owner.meta().namespace.clone(),
                labels: Some(labels),
                owner_references: super::controller_reference(owner).map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                vector::VECTOR_TOML_KEY.to_string(),
                self.toml(settings)?,
            )])),
            ..ConfigMap::default()
        }))
    }

    /// Whether a pod of `deployments` mounts this agent's configuration.
    pub fn mounted_in<'a>(&self, deployments: impl IntoIterator<Item = &'a Deployment>) -> bool {
        self.mounted_in_pods(
            deployments.into_iter().filter_map(|d| d.spec.as_ref()?.template.spec.as_ref()),
        )
    }

    /// Whether any of these pod templates mounts the agent's configuration.
    pub fn mounted_in_pods<'a>(&self, pods: impl IntoIterator<Item = &'a PodSpec>) -> bool {
        let volume = self.volume_name();
        pods.into_iter().filter_map(|pod| pod.volumes.as_ref()).flatten().any(|v| v.name == volume)
    }

    /// Adds the agent's container (replacing one of its name) and configuration volume.
    pub fn add_to(
        &self,
        pod: &mut PodSpec,
        dc: &CassandraDatacenter,
        settings: &VectorTelemetry,
        default_image: &str,
    ) {
        let container = Container {
            name: self.container_name(),
            image: Some(
                settings
                    .image
                    .clone()
                    .filter(|i| !i.is_empty())
                    .unwrap_or_else(|| default_image.to_string()),
            ),
            image_pull_policy: Some("IfNotPresent".into()),
            security_context: Some(SecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(1000),
                read_only_root_filesystem: Some(true),
                allow_privilege_escalation: Some(false),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".into()]),
                    ..Capabilities::default()
                }),
                ..SecurityContext::default()
            }),
            volume_mounts: Some(vec![VolumeMount {
                name: self.volume_name(),
                mount_path: vector::VECTOR_CONFIG_MOUNT.into(),
                ..VolumeMount::default()
            }]),
            resources: Some(vector::resources(settings)),
            ..Container::default()
        };
        pod.containers.retain(|c| c.name != container.name);
        pod.containers.push(container);
        let volume = Volume {
            name: self.volume_name(),
            config_map: Some(ConfigMapVolumeSource {
                name: self.config_map_name(dc),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        };
        let volumes = pod.volumes.get_or_insert_default();
        volumes.retain(|v| v.name != volume.name);
        volumes.push(volume);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn datacenter() -> CassandraDatacenter {
        let mut dc = CassandraDatacenter::new("dc1", Default::default());
        dc.spec.cluster_name = "My Cluster".into();
        dc.spec.datacenter_name = Some("East".into());
        dc
    }

    fn on() -> VectorTelemetry {
        VectorTelemetry {
            enabled: Some(true),
            ..VectorTelemetry::default()
        }
    }

    #[test]
    fn by_default_the_metrics_go_to_stdout() {
        let toml = REAPER.toml(&on()).expect("toml");
        assert!(toml.contains(concat!(
            "[sources.reaper_metrics]\ntype = \"prometheus_scrape\"\n",
            "endpoints = [ \"http://localhost:8081/prometheusMetrics\" ]\nscrape_interval_secs = 30\n"
        )), "{toml}");
        assert!(
            toml.contains("[sinks.console]\ntype = \"console\"\ninputs = [ \"reaper_metrics\" ]")
        );
        assert_eq!(
            REAPER.config_map_name(&datacenter()),
            "mycluster-east-reaper-vector"
        );
    }

    #[test]
    fn the_users_components_replace_the_default_sink() {
        let mut settings = on();
        settings.scrape_interval = Some("10s".into());
        settings.components = Some(json!({"sinks": [
            {"name": "prom", "type": "prometheus_exporter", "inputs": ["stargate_metrics"]}
        ]}));
        let toml = STARGATE.toml(&settings).expect("toml");
        assert!(toml.contains(
            "endpoints = [ \"http://localhost:8084/metrics\" ]\nscrape_interval_secs = 10\n"
        ));
        assert!(toml.contains(
            "[sinks.prom]\ntype = \"prometheus_exporter\"\ninputs = [\"stargate_metrics\"]"
        ));
        assert!(!toml.contains("[sinks.console]"), "{toml}");
    }

    #[test]
    fn the_sidecar_mounts_its_configuration_and_runs_locked_down() {
        let mut pod = PodSpec {
            containers: vec![Container {
                name: "reaper".into(),
                ..Container::default()
            }],
            ..PodSpec::default()
        };
        let mut settings = on();
        settings.image = Some("example.com/vector:1".into());
        REAPER.add_to(
            &mut pod,
            &datacenter(),
            &settings,
            "docker.io/k8ssandra/system-logger:x",
        );
        REAPER.add_to(
            &mut pod,
            &datacenter(),
            &settings,
            "docker.io/k8ssandra/system-logger:x",
        );
        assert_eq!(pod.containers.len(), 2, "added once");
        let agent = &pod.containers[1];
        assert_eq!(agent.name, "reaper-vector-agent");
        assert_eq!(agent.image.as_deref(), Some("example.com/vector:1"));
        let security = agent.security_context.as_ref().expect("security context");
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(
            agent.volume_mounts.as_ref().expect("mounts")[0].mount_path,
            "/etc/vector"
        );
        let volumes = pod.volumes.expect("volumes");
        assert_eq!(volumes.len(), 1);
        assert_eq!(
            volumes[0].config_map.as_ref().map(|c| c.name.as_str()),
            Some("mycluster-east-reaper-vector")
        );
    }
}
