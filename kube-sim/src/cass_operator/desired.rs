//! What a CassandraDatacenter asks for, read as cass-operator reads it
//! (`apis/cassandra/v1beta1/cassandradatacenter_types.go`), and what each Cassandra node of it
//! starts with (the config builder's `cassandra-yaml` and JVM options).

use serde_json::{Map, Value, json};

use crate::cassandra::{NodeSpec, PodRef, SystemReplicationProperties};

use super::GROUP;

/// `cassandra.datastax.com/skip-user-creation: "true"`: cass-operator creates no roles.
const SKIP_USER_CREATION_ANNOTATION: &str = "cassandra.datastax.com/skip-user-creation";
/// Decommission the datacenter's nodes before its deletion completes (multi-DC clusters).
pub(super) const DECOMMISSION_ON_DELETE_ANNOTATION: &str =
    "cassandra.datastax.com/decommission-on-delete";
/// The JVM system property prefix of the system keyspaces' replication override.
const SYSTEM_REPLICATION_PROPERTY: &str = "-Dcassandra.system_distributed_replication";
/// Where the per-node ConfigMap is mounted (Federator and k8ssandra-operator name the volume so).
const PER_NODE_CONFIG_VOLUME: &str = "per-node-config";

pub(super) fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// cass-operator's CleanupForKubernetes: lower case, spaces and underscores become dashes.
pub(super) fn clean_name(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `CleanLabelValue` (`apis/cassandra/v1beta1`): spaces removed, then only the runs of
/// `[-A-Za-z0-9_.]` that start and end with an alphanumeric character are kept, joined. The
/// cluster, datacenter and rack labels hold these values, and the CassandraTask controller finds
/// the pods by them.
pub(crate) fn clean_label_value(value: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    value
        .replace(' ', "")
        .split(|c: char| !allowed(c))
        .map(|run| run.trim_matches(|c: char| !c.is_ascii_alphanumeric()))
        .collect()
}

/// cass-operator's `api.SplitRacks`: `count` spread over `racks`, the first racks taking the
/// remainder.
pub(super) fn split_racks(count: usize, racks: usize) -> Vec<usize> {
    let racks = racks.max(1);
    (0..racks).map(|index| count / racks + usize::from(index < count % racks)).collect()
}

/// A user cass-operator creates as a Cassandra role (`spec.users`, plus the superuser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct User {
    pub secret_name: String,
    pub superuser: bool,
}

/// One rack of the datacenter as `CalculateRackInformation` sizes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RackLayout {
    pub name: String,
    pub nodes: usize,
    pub seeds: usize,
}

/// What the datacenter asks for.
#[derive(Debug, Clone)]
pub(super) struct Desired {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub generation: i64,
    /// `spec.clusterName` as Cassandra's `cluster_name` gets it.
    pub cassandra_cluster: String,
    /// `spec.clusterName` cleaned for Kubernetes names and labels.
    pub cluster_name: String,
    /// `spec.datacenterName`, else the object's name: the DC name Cassandra's snitch reports.
    pub dc_name: String,
    pub racks: Vec<String>,
    pub size: usize,
    pub stopped: bool,
    pub image: String,
    pub server_version: String,
    /// The superuser Secret: `spec.superuserSecretName`, else `<clean clusterName>-superuser`.
    pub superuser_secret: String,
    /// No `spec.superuserSecretName`: cass-operator generates the Secret when it is missing.
    pub generate_superuser_secret: bool,
    pub users: Vec<User>,
    pub skip_user_creation: bool,
    pub decommission_on_delete: bool,
    /// `spec.config`.
    pub config: Value,
    /// The ConfigMap of the `per-node-config` volume of `spec.podTemplateSpec`.
    pub per_node_config_map: Option<String>,
    /// `spec.storageConfig.cassandraDataVolumeClaimSpec`, the StatefulSets' claim template.
    pub volume_claim: Value,
    /// `spec.podTemplateSpec.spec`: containers, init containers and volumes merged into the
    /// StatefulSets' pod template.
    pub pod_template: Value,
    /// `status.nodeReplacements`: pods whose Cassandra starts replacing the node they had.
    pub node_replacements: Vec<String>,
    /// `spec.managementApiAuth.manual.serverSecretName`: the agent serves mutual TLS with it.
    pub management_server_secret: Option<String>,
}

impl Desired {
    pub fn from(dc: &Value) -> Option<Desired> {
        let name = str_at(dc, "/metadata/name")?.to_string();
        let racks: Vec<String> = dc
            .pointer("/spec/racks")
            .and_then(Value::as_array)
            .map(|racks| {
                racks
                    .iter()
                    .filter_map(|r| r.get("name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .filter(|racks: &Vec<String>| !racks.is_empty())
            .unwrap_or_else(|| vec!["default".to_string()]);
        let server_version = str_at(dc, "/spec/serverVersion").unwrap_or("4.1.5").to_string();
        let cassandra_cluster = str_at(dc, "/spec/clusterName").unwrap_or(&name).to_string();
        let cluster_name = clean_name(&cassandra_cluster);
        let given_secret = str_at(dc, "/spec/superuserSecretName").filter(|s| !s.is_empty());
        let annotation = |key: &str| str_at(dc, &format!("/metadata/annotations/{}", escape(key)));
        let users = dc
            .pointer("/spec/users")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|user| {
                Some(User {
                    secret_name: user.get("secretName")?.as_str()?.to_string(),
                    superuser: user.get("superuser").and_then(Value::as_bool).unwrap_or(false),
                })
            })
            .collect();
        let per_node_config_map = dc
            .pointer("/spec/podTemplateSpec/spec/volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|volume| str_at(volume, "/name") == Some(PER_NODE_CONFIG_VOLUME))
            .and_then(|volume| str_at(volume, "/configMap/name"))
            .map(str::to_string);
        Some(Desired {
            namespace: str_at(dc, "/metadata/namespace").unwrap_or("default").to_string(),
            uid: str_at(dc, "/metadata/uid").unwrap_or("").to_string(),
            generation: dc.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1),
            superuser_secret: given_secret
                .map(str::to_string)
                .unwrap_or_else(|| format!("{cluster_name}-superuser")),
            generate_superuser_secret: given_secret.is_none(),
            cassandra_cluster,
            cluster_name,
            dc_name: str_at(dc, "/spec/datacenterName")
                .filter(|n| !n.is_empty())
                .unwrap_or(&name)
                .to_string(),
            racks,
            size: dc.pointer("/spec/size").and_then(Value::as_u64).unwrap_or(1) as usize,
            stopped: dc.pointer("/spec/stopped").and_then(Value::as_bool).unwrap_or(false),
            image: str_at(dc, "/spec/serverImage").map(str::to_string).unwrap_or_else(|| {
                format!("cr.k8ssandra.io/k8ssandra/cass-management-api:{server_version}")
            }),
            server_version,
            users,
            skip_user_creation: annotation(SKIP_USER_CREATION_ANNOTATION) == Some("true"),
            decommission_on_delete: annotation(DECOMMISSION_ON_DELETE_ANNOTATION).is_some(),
            config: dc.pointer("/spec/config").cloned().unwrap_or(Value::Null),
            per_node_config_map,
            management_server_secret: str_at(dc, "/spec/managementApiAuth/manual/serverSecretName")
                .filter(|name| !name.is_empty())
                .map(str::to_string),
            volume_claim: dc
                .pointer("/spec/storageConfig/cassandraDataVolumeClaimSpec")
                .cloned()
                .unwrap_or_else(|| json!({})),
            pod_template: dc.pointer("/spec/podTemplateSpec/spec").cloned().unwrap_or(Value::Null),
            node_replacements: dc
                .pointer("/status/nodeReplacements")
                .and_then(Value::as_array)
                .map(|pods| pods.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            name,
        })
    }

    /// The datacenter's (namespace, name): how the operator's own maps know it.
    pub fn key(&self) -> (String, String) {
        (self.namespace.clone(), self.name.clone())
    }

    pub fn service_name(&self) -> String {
        format!(
            "{}-{}-all-pods-service",
            self.cluster_name,
            clean_name(&self.dc_name)
        )
    }

    /// `<clusterName>-<dc>-<rack>-sts` (NewNamespacedNameForStatefulSet).
    /// The hash cass-operator puts on the pod template as `cassandra.datastax.com/config-hash`
    /// (of the config Secret it makes from `spec.config`): a changed config rolls the pods.
    pub fn config_hash(&self) -> String {
        let hash = self.config.to_string().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        format!("{hash:016x}")
    }

    pub fn statefulset_name(&self, rack: &str) -> String {
        format!(
            "{}-{}-{}-sts",
            self.cluster_name,
            clean_name(&self.dc_name),
            clean_name(rack)
        )
    }

    pub fn pod_name(&self, rack: &str, ordinal: usize) -> String {
        format!("{}-{ordinal}", self.statefulset_name(rack))
    }

    /// `CalculateRackInformation`: nodes split over the racks; three seeds per datacenter, or
    /// every node when fewer than three, or one per rack when there are more than three racks.
    pub fn layout(&self) -> Vec<RackLayout> {
        let nodes = if self.stopped { 0 } else { self.size };
        let seeds = if nodes < 3 {
            nodes
        } else if self.racks.len() > 3 {
            self.racks.len()
        } else {
            3
        };
        let node_counts = split_racks(nodes, self.racks.len());
        let seed_counts = split_racks(seeds, self.racks.len());
        self.racks
            .iter()
            .zip(node_counts.into_iter().zip(seed_counts))
            .map(|(name, (nodes, seeds))| RackLayout {
                name: name.clone(),
                nodes,
                seeds,
            })
            .collect()
    }

    /// `GetClusterLabels` and `GetDatacenterLabels`: `CleanLabelValue` of `spec.clusterName`
    /// and of the object's name (not `spec.datacenterName`).
    pub fn selector_labels(&self) -> Value {
        json!({
            "cassandra.datastax.com/cluster": clean_label_value(&self.cassandra_cluster),
            "cassandra.datastax.com/datacenter": clean_label_value(&self.name),
        })
    }

    /// The datacenter labels plus `oplabels.AddOperatorLabels`.
    pub fn labels(&self) -> Value {
        let mut labels = self.selector_labels();
        labels["app.kubernetes.io/managed-by"] = json!("cass-operator");
        labels["app.kubernetes.io/name"] = json!("cassandra");
        labels["app.kubernetes.io/instance"] = json!(format!(
            "cassandra-{}",
            clean_label_value(&self.cassandra_cluster)
        ));
        labels["app.kubernetes.io/version"] = json!(self.server_version);
        labels["app.kubernetes.io/created-by"] = json!("cass-operator");
        labels
    }

    /// `GetRackLabels` plus the operator labels.
    pub fn rack_labels(&self, rack: &str) -> Value {
        let mut labels = self.labels();
        labels["cassandra.datastax.com/rack"] = json!(clean_label_value(rack));
        labels
    }

    pub fn owner_reference(&self) -> Value {
        json!([{
            "apiVersion": format!("{GROUP}/v1beta1"),
            "kind": "CassandraDatacenter",
            "name": self.name,
            "uid": self.uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }])
    }

    /// What the Cassandra container of `pod` starts with: the datacenter's `cassandra-yaml`
    /// and JVM options, then the pod's own `<pod>_cassandra.yaml` of the per-node ConfigMap
    /// (its keys win, as the per-node init container merges them). An unreadable setting is the
    /// error Cassandra would fail to start with.
    pub fn node_spec(
        &self,
        pod: PodRef,
        ip: &str,
        rack: &str,
        per_node_yaml: Option<&Map<String, Value>>,
    ) -> Result<NodeSpec, String> {
        let mut spec = NodeSpec::new(&self.cassandra_cluster, pod, ip, &self.dc_name, rack);
        spec.server_version = self.server_version.clone();
        spec.system_replication = system_replication(&self.config);
        let mut yaml = self
            .config
            .get("cassandra-yaml")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(per_node) = per_node_yaml {
            yaml.extend(per_node.clone());
        }
        if let Some(value) = yaml.get("num_tokens") {
            spec.num_tokens = number(value)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("Invalid yaml. num_tokens: {value} is not a number"))?;
        }
        if let Some(value) = yaml.get("initial_token").filter(|v| !v.is_null()) {
            spec.initial_tokens = initial_tokens(value)?;
            spec.num_tokens = spec.initial_tokens.len();
        }
        if let Some(value) = yaml.get("auto_bootstrap") {
            spec.auto_bootstrap = value.as_bool().unwrap_or(value.as_str() != Some("false"));
        }
        // PasswordAuthenticator is k8ssandra's default; only AllowAllAuthenticator turns
        // authentication off (DSE's and custom authenticators authenticate).
        spec.authentication = yaml
            .get("authenticator")
            .and_then(Value::as_str)
            .is_none_or(|authenticator| !authenticator.ends_with("AllowAllAuthenticator"));
        Ok(spec)
    }
}

/// A JSON pointer token for a map key (`~` and `/` escaped).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn number(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

/// `initial_token: "t1,t2"` (or a single number), as Cassandra's `tokensFromString` reads it.
fn initial_tokens(value: &Value) -> Result<Vec<i64>, String> {
    if let Some(token) = value.as_i64() {
        return Ok(vec![token]);
    }
    let text = value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<i64>().map_err(|_| {
                format!("Invalid token for Murmur3Partitioner. Got {t} but expected a long value")
            })
        })
        .collect()
}

/// The `-Dcassandra.system_distributed_replication*` properties from the config builder's JVM
/// option lists (`additional-jvm-opts` of `cassandra-env-sh`, `jvm-options`,
/// `jvm-server-options`, ...), where Federator and k8ssandra-operator put them.
pub(super) fn system_replication(config: &Value) -> SystemReplicationProperties {
    let mut properties = SystemReplicationProperties::default();
    let Some(files) = config.as_object() else {
        return properties;
    };
    let options = files
        .values()
        .filter_map(|file| file.get("additional-jvm-opts").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str);
    for option in options {
        let Some(rest) = option.strip_prefix(SYSTEM_REPLICATION_PROPERTY) else {
            continue;
        };
        if let Some(value) = rest.strip_prefix('=') {
            properties.dc_rf = Some(value.to_string());
        } else if let Some(value) = rest.strip_prefix("_dc_names=") {
            properties.dc_names = Some(value.to_string());
        } else if let Some(value) = rest.strip_prefix("_per_dc=") {
            properties.per_dc = Some(value.to_string());
        }
    }
    properties
}

/// The pods of a rack that are seeds (`labelSeedPods`): by name, the first `seeds` that are
/// ready.
pub(super) fn seeds_of_rack(
    mut pods: Vec<(&str, bool)>,
    seeds: usize,
) -> impl Iterator<Item = &str> {
    pods.sort_by(|a, b| a.0.cmp(b.0));
    pods.into_iter().filter(|(_, ready)| *ready).take(seeds).map(|(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(spec: Value) -> Desired {
        let dc = json!({"metadata": {"name": "dc1", "namespace": "ns", "uid": "u", "generation": 1},
                        "spec": spec});
        Desired::from(&dc).expect("a named datacenter")
    }

    #[test]
    fn racks_seeds_and_names_as_cass_operator_computes_them() {
        let dc = desired(json!({"clusterName": "My_Cluster", "size": 5,
                                "racks": [{"name": "r1"}, {"name": "r2"}]}));
        let layout = dc.layout();
        assert_eq!(
            layout,
            [
                RackLayout {
                    name: "r1".into(),
                    nodes: 3,
                    seeds: 2
                },
                RackLayout {
                    name: "r2".into(),
                    nodes: 2,
                    seeds: 1
                },
            ]
        );
        assert_eq!(dc.pod_name("r1", 2), "my-cluster-dc1-r1-sts-2");
        assert_eq!(dc.statefulset_name("r2"), "my-cluster-dc1-r2-sts");
        assert_eq!(dc.service_name(), "my-cluster-dc1-all-pods-service");
        assert_eq!(dc.superuser_secret, "my-cluster-superuser");
        assert_eq!(dc.cassandra_cluster, "My_Cluster");
        let seeds: Vec<&str> = seeds_of_rack(
            vec![
                ("my-cluster-dc1-r1-sts-2", true),
                ("my-cluster-dc1-r1-sts-0", false),
                ("my-cluster-dc1-r1-sts-1", true),
            ],
            2,
        )
        .collect();
        assert_eq!(
            seeds,
            ["my-cluster-dc1-r1-sts-1", "my-cluster-dc1-r1-sts-2"]
        );
    }

    #[test]
    fn labels_are_upstreams_clean_label_values_of_the_cluster_and_the_object_name() {
        let dc = desired(
            json!({"clusterName": "My_Cluster Demo", "datacenterName": "East_1",
                                "racks": [{"name": "Rack_A"}]}),
        );
        let labels = dc.rack_labels("Rack_A");
        assert_eq!(labels["cassandra.datastax.com/cluster"], "My_ClusterDemo");
        assert_eq!(labels["cassandra.datastax.com/datacenter"], "dc1");
        assert_eq!(labels["cassandra.datastax.com/rack"], "Rack_A");
        assert_eq!(
            labels["app.kubernetes.io/instance"],
            "cassandra-My_ClusterDemo"
        );
        assert_eq!(clean_label_value("-demo-"), "demo");
        assert_eq!(clean_label_value("a!b"), "ab");
    }

    #[test]
    fn node_spec_follows_the_config_builder_input() {
        let dc = desired(json!({
            "clusterName": "demo", "datacenterName": "east", "serverVersion": "4.0.17", "size": 1,
            "config": {
                "cassandra-yaml": {"num_tokens": 4, "authenticator": "org.apache.cassandra.auth.AllowAllAuthenticator",
                                   "auto_bootstrap": false},
                "cassandra-env-sh": {"additional-jvm-opts": [
                    "-Dcassandra.allow_alter_rf_during_range_movement=true",
                    "-Dcassandra.system_distributed_replication=east:3,west:3"]},
            }
        }));
        let pod = PodRef::new("sim-0", "ns", "demo-east-default-sts-0");
        let spec = dc.node_spec(pod, "127.0.1.1", "default", None).expect("a valid spec");
        assert_eq!(
            (spec.cluster.as_str(), spec.datacenter.as_str()),
            ("demo", "east")
        );
        assert_eq!(spec.num_tokens, 4);
        assert!(!spec.authentication && !spec.auto_bootstrap);
        assert_eq!(spec.server_version, "4.0.17");
        assert_eq!(
            spec.system_replication.dc_rf.as_deref(),
            Some("east:3,west:3")
        );
        let per_node = json!({"initial_token": "-100,100"});
        let pod = PodRef::new("sim-0", "ns", "demo-east-default-sts-0");
        let spec = dc.node_spec(pod, "127.0.1.1", "default", per_node.as_object()).expect("tokens");
        assert_eq!(spec.initial_tokens, [-100, 100]);
        let bad = json!({"initial_token": "x"});
        let pod = PodRef::new("sim-0", "ns", "demo-east-default-sts-0");
        assert!(dc.node_spec(pod, "127.0.1.1", "default", bad.as_object()).is_err());
    }
}
