//! What the controller saw in the regions, as plain data: the input of [`super::rollout::decide`]
//! and [`super::status::cluster_status`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::api::cassdc::{CassandraDatacenter, CassandraDatacenterStatus};
use crate::api::k8ssandra_cluster::K8ssandraClusterStatus;
use crate::cache::Kept;

use super::config::yaml_integer;
use super::plan::{ClusterKey, RunningDatacenters};
use super::progressive::{RESTART_HASH_ANNOTATION, RESTARTED_AT_ANNOTATION, restarting_part};
use crate::workload::labels::{DECOMMISSION_ON_DELETE_ANNOTATION, is_owned_by};

/// A CassandraDatacenter as reconciles read it from a region: metadata and status parsed, the
/// spec as JSON text, since it is only compared against the desired spec (parsed, 1,100
/// datacenters' specs were about 8 MB of the region caches).
pub type LiveDatacenter = Kept<CassandraDatacenter, LiveParts>;

#[derive(Clone, Debug)]
pub struct LiveParts {
    spec: Box<RawValue>,
    status: Option<CassandraDatacenterStatus>,
}

impl PartialEq for LiveParts {
    fn eq(&self, other: &LiveParts) -> bool {
        self.spec.get() == other.spec.get() && self.status == other.status
    }
}

impl From<CassandraDatacenter> for LiveDatacenter {
    fn from(dc: CassandraDatacenter) -> LiveDatacenter {
        // Serializing a typed spec cannot fail; if it did, `null` compares as changed.
        let spec =
            serde_json::value::to_raw_value(&dc.spec).unwrap_or_else(|_| RawValue::NULL.to_owned());
        Kept::new(
            dc.metadata,
            LiveParts {
                spec,
                status: dc.status,
            },
        )
    }
}

impl LiveDatacenter {
    pub fn status(&self) -> Option<&CassandraDatacenterStatus> {
        self.data.status.as_ref()
    }

    /// Ready, and the status describes the current spec (not a previous generation).
    pub fn is_ready(&self) -> bool {
        self.status().is_some_and(|status| status.is_ready_at(self.meta().generation))
    }

    /// Stopped as its spec asks (`stopped: true`), for its current generation.
    pub fn is_stopped(&self) -> bool {
        self.status().is_some_and(|status| status.is_stopped_at(self.meta().generation))
    }

    /// Whether the spec's JSON text contains `text` (a name it refers to, quoted).
    pub fn spec_mentions(&self, text: &str) -> bool {
        self.data.spec.get().contains(text)
    }

    /// The `num_tokens` of its cassandra.yaml (`spec.config.cassandra-yaml.num_tokens`), when it
    /// is a whole number.
    pub fn num_tokens(&self) -> Option<i64> {
        #[derive(serde::Deserialize)]
        struct Spec {
            config: Option<Config>,
        }
        #[derive(serde::Deserialize)]
        struct Config {
            #[serde(rename = "cassandra-yaml")]
            cassandra_yaml: Option<Yaml>,
        }
        #[derive(serde::Deserialize)]
        struct Yaml {
            num_tokens: Option<Value>,
        }
        let spec: Spec = serde_json::from_str(self.data.spec.get()).ok()?;
        yaml_integer(&spec.config?.cassandra_yaml?.num_tokens?)
    }

    pub(crate) fn annotation(&self, key: &str) -> Option<&str> {
        self.meta().annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// The spec's `size` and `stopped`.
    fn scale(&self) -> Scale {
        serde_json::from_str(self.data.spec.get()).unwrap_or_default()
    }

    pub fn size(&self) -> i32 {
        self.scale().size.unwrap_or(0)
    }

    /// Whether its spec asks for it to be stopped.
    pub fn stop_requested(&self) -> bool {
        self.scale().stopped.unwrap_or(false)
    }

    /// Whether a change that restarts Cassandra is yet to reach it: the restart hash it
    /// carries differs from `desired_hash`. One applied before Federator kept the hash is
    /// compared field by field with `desired`.
    pub fn restart_pending(&self, desired_hash: &str, desired: &CassandraDatacenter) -> bool {
        if let Some(hash) = self.annotation(RESTART_HASH_ANNOTATION) {
            return hash != desired_hash;
        }
        let live = serde_json::from_str::<Value>(self.data.spec.get()).map(restarting_part);
        let desired = serde_json::to_value(&desired.spec).map(restarting_part);
        match (live, desired) {
            (Ok(live), Ok(desired)) => !crate::apply::contains(&live, &desired),
            _ => true,
        }
    }

    /// When the restart it runs with was applied: as recorded, else its creation.
    pub fn changed_at(&self) -> Option<Timestamp> {
        self.annotation(RESTARTED_AT_ANNOTATION)
            .and_then(|at| at.parse().ok())
            .or_else(|| self.meta().creation_timestamp.as_ref().map(|t| t.0))
    }

    /// The object as JSON (without status), to compare the desired datacenter against.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        Ok(serde_json::json!({
            "apiVersion": CassandraDatacenter::api_version(&()),
            "kind": CassandraDatacenter::kind(&()),
            "metadata": self.meta(),
            "spec": serde_json::from_str::<Value>(self.data.spec.get())?,
        }))
    }
}

#[derive(Default, serde::Deserialize)]
struct Scale {
    size: Option<i32>,
    stopped: Option<bool>,
}

/// One datacenter as seen in its region: a datacenter of the plan (looked up where the plan puts
/// it), or one this K8ssandraCluster owns that the plan no longer has (found by label, or
/// remembered in `status.datacenters`).
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedDatacenter {
    pub context: String,
    pub namespace: String,
    pub state: RemoteState,
}

/// The state of one datacenter's CassandraDatacenter in its region.
#[derive(Clone, Debug, PartialEq)]
pub enum RemoteState {
    /// The datacenter's `k8sContext` names no known region (no ClientConfig for it).
    UnknownContext,
    /// The region did not answer; `reason` says why (timeout, TLS, credentials...).
    Unreachable { reason: String },
    /// The namespace does not exist in the region (Federator does not create namespaces).
    NamespaceMissing,
    /// There is no CassandraDatacenter of that name there.
    Absent,
    /// A CassandraDatacenter of that name exists without this cluster's ownership labels, and
    /// the K8ssandraCluster does not ask to adopt it.
    Conflict { owner: Option<String> },
    /// This cluster's CassandraDatacenter (or one adopted on request).
    Present(Arc<LiveDatacenter>),
}

impl RemoteState {
    /// Classifies what a region returned for the CassandraDatacenter: absent, ours (or adopted
    /// on request), or someone else's.
    pub fn from_lookup(
        found: Option<Arc<LiveDatacenter>>,
        cluster: &ClusterKey,
        adopt: bool,
    ) -> RemoteState {
        match found {
            None => RemoteState::Absent,
            Some(dc)
                if adopt
                    || is_owned_by(
                        dc.meta().labels.as_ref(),
                        &cluster.name,
                        &cluster.namespace,
                    ) =>
            {
                RemoteState::Present(dc)
            }
            Some(dc) => {
                let labels = dc.meta().labels.as_ref();
                let owner = labels.and_then(|l| l.get(crate::api::shared::CLUSTER_NAME_LABEL)).map(
                    |name| {
                        let namespace = labels
                            .and_then(|l| l.get(crate::api::shared::CLUSTER_NAMESPACE_LABEL))
                            .map(String::as_str)
                            .unwrap_or("?");
                        format!("K8ssandraCluster {namespace}/{name}")
                    },
                );
                RemoteState::Conflict { owner }
            }
        }
    }

    pub fn present(&self) -> Option<&LiveDatacenter> {
        match self {
            RemoteState::Present(dc) => Some(dc),
            _ => None,
        }
    }

    /// Present and Ready for its current generation.
    pub fn is_ready(&self) -> bool {
        self.present().is_some_and(LiveDatacenter::is_ready)
    }

    /// Present and stopped (`stopped: true`, every node down) for its current generation.
    pub fn is_stopped(&self) -> bool {
        self.present().is_some_and(LiveDatacenter::is_stopped)
    }

    /// Present and at rest for its current generation: Ready, or stopped as asked. Other
    /// datacenters wait for nothing more.
    pub fn is_settled(&self) -> bool {
        self.is_ready() || self.is_stopped()
    }

    /// Present and being deleted (deletionTimestamp set).
    pub fn is_deleting(&self) -> bool {
        self.present().is_some_and(|dc| dc.meta().deletion_timestamp.is_some())
    }

    /// Present and already annotated to decommission on delete.
    pub fn has_decommission_annotation(&self) -> bool {
        self.present().is_some_and(|dc| {
            dc.meta()
                .annotations
                .as_ref()
                .and_then(|a| a.get(DECOMMISSION_ON_DELETE_ANNOTATION))
                .is_some_and(|v| v == "true")
        })
    }
}

/// Everything observed for one K8ssandraCluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedCluster {
    /// By datacenter name (`metadata.name`).
    pub datacenters: BTreeMap<String, ObservedDatacenter>,
    /// Datacenters this cluster has had (keys of the previous `status.datacenters`): tells a
    /// CassandraDatacenter deleted by hand (re-created) from a datacenter added to the spec.
    pub known: BTreeSet<String>,
    /// Datacenters whose secrets are not in their region yet, with what is awaited
    /// ([`super::secrets`]): they are not created until the secrets are there.
    pub secrets_pending: BTreeMap<String, String>,
    /// Datacenters whose encryption store passwords cannot be read, with why: they are neither
    /// created nor updated until they can.
    pub passwords_missing: BTreeMap<String, String>,
    /// Datacenters whose per-node ConfigMap (`perNodeConfigMapRef`) cannot be read in their
    /// region, with why: neither created nor updated until it can (its hash is on the pods).
    pub per_node_config_missing: BTreeMap<String, String>,
    /// Why the MedusaConfiguration `spec.medusa` names could not be read (from the plan): every
    /// datacenter waits for it.
    pub medusa_configuration_missing: Option<String>,
    /// Watches refused (403, 404) in the cluster's regions, each naming its region, resource
    /// and namespace: changes there are seen only by the periodic reconciles.
    pub refused_watches: Vec<String>,
    /// The datacenters each keyspace replicates to, as last read through the Management API
    /// (the system keyspaces, and the user's that replicate to a datacenter being removed);
    /// `None` while unknown. A removed datacenter is deleted only once it is in none.
    pub keyspace_replication: Option<BTreeMap<String, BTreeSet<String>>>,
    /// Keyspaces Federator takes a removed datacenter out of itself (the system ones and the
    /// components'); any other that replicates to it is the user's to alter.
    pub managed_keyspaces: BTreeSet<String>,
    /// When the regions were looked at: the rollout's deadlines are measured to it.
    pub observed_at: Timestamp,
}

impl ObservedCluster {
    /// An observation with the datacenters known from the previous status.
    pub fn new(
        datacenters: BTreeMap<String, ObservedDatacenter>,
        previous: Option<&K8ssandraClusterStatus>,
    ) -> ObservedCluster {
        let known = previous
            .and_then(|s| s.datacenters.as_ref())
            .map(|dcs| dcs.keys().cloned().collect())
            .unwrap_or_default();
        ObservedCluster {
            datacenters,
            known,
            secrets_pending: BTreeMap::new(),
            passwords_missing: BTreeMap::new(),
            per_node_config_missing: BTreeMap::new(),
            medusa_configuration_missing: None,
            refused_watches: Vec::new(),
            keyspace_replication: None,
            managed_keyspaces: BTreeSet::new(),
            observed_at: Timestamp::now(),
        }
    }

    pub fn get(&self, datacenter: &str) -> Option<&ObservedDatacenter> {
        self.datacenters.get(datacenter)
    }

    /// What the existing datacenters run with, for [`super::plan::plan_with`].
    pub fn running(&self) -> RunningDatacenters {
        RunningDatacenters {
            num_tokens: self
                .datacenters
                .iter()
                .filter_map(|(name, o)| Some((name.clone(), o.state.present()?.num_tokens()?)))
                .collect(),
        }
    }

    /// Whether the datacenter exists now or existed before.
    pub fn is_known(&self, datacenter: &str) -> bool {
        self.known.contains(datacenter)
            || self.get(datacenter).is_some_and(|o| o.state.present().is_some())
    }
}

/// Where the previous status says each datacenter ran: how the controller finds the region of a
/// datacenter taken out of the spec.
pub fn known_contexts(status: Option<&K8ssandraClusterStatus>) -> BTreeMap<String, String> {
    status
        .and_then(|s| s.datacenters.as_ref())
        .map(|dcs| {
            dcs.iter()
                .map(|(name, dc)| (name.clone(), dc.context_name.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::cassdc::{
        CONDITION_READY, CassandraDatacenterSpec, DatacenterCondition, PROGRESS_READY,
    };
    use crate::apply::{applied_body, pending_apply_to};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn desired(size: i32) -> CassandraDatacenter {
        let mut dc = CassandraDatacenter::new(
            "dc1",
            CassandraDatacenterSpec {
                cluster_name: "demo".into(),
                server_version: "4.1.5".into(),
                size,
                config: Some(serde_json::json!({"cassandra-yaml": {"num_tokens": 16}})),
                ..Default::default()
            },
        );
        dc.metadata.namespace = Some("db".into());
        dc
    }

    /// What the region holds after `desired` was applied: the body plus what the server and
    /// cass-operator add.
    fn live_after_apply(desired: &CassandraDatacenter, observed_generation: i64) -> LiveDatacenter {
        let mut live: CassandraDatacenter =
            serde_json::from_value(applied_body(desired).expect("serializable")).expect("a DC");
        live.metadata.uid = Some("7d1c".into());
        live.metadata.generation = Some(2);
        live.status = Some(CassandraDatacenterStatus {
            cassandra_operator_progress: Some(PROGRESS_READY.into()),
            conditions: Some(vec![DatacenterCondition {
                type_: CONDITION_READY.into(),
                status: "True".into(),
                ..Default::default()
            }]),
            observed_generation: Some(observed_generation),
            ..Default::default()
        });
        live.into()
    }

    #[test]
    fn a_cached_datacenter_applied_from_the_same_spec_needs_no_write() {
        let live = live_after_apply(&desired(3), 2);
        let live = live.to_value().expect("valid JSON");
        let pending = pending_apply_to(&desired(3), Some(&live)).expect("ok");
        assert!(pending.is_none(), "would send {pending:?}");
    }

    #[test]
    fn a_cached_datacenter_with_another_spec_is_applied_again() {
        let live = live_after_apply(&desired(3), 2);
        let live = live.to_value().expect("valid JSON");
        let body =
            pending_apply_to(&desired(5), Some(&live)).expect("ok").expect("the size changed");
        let body: Value = serde_json::from_str(body.get()).expect("JSON");
        assert_eq!(body["spec"]["size"], 5);
    }

    #[test]
    fn the_running_num_tokens_is_read_from_the_live_config() {
        let mut text = desired(3);
        text.spec.config = Some(serde_json::json!({"cassandra-yaml": {"num_tokens": "256"}}));
        let mut unset = desired(3);
        unset.spec.config = Some(serde_json::json!({"cassandra-yaml": {}}));
        let observed = ObservedCluster::new(
            [("dc1", desired(3)), ("dc2", text), ("dc3", unset)]
                .into_iter()
                .map(|(name, dc)| {
                    let state = RemoteState::Present(Arc::new(LiveDatacenter::from(dc)));
                    let observed = ObservedDatacenter {
                        context: String::new(),
                        namespace: "db".into(),
                        state,
                    };
                    (name.to_string(), observed)
                })
                .chain([(
                    "dc4".to_string(),
                    ObservedDatacenter {
                        context: String::new(),
                        namespace: "db".into(),
                        state: RemoteState::Absent,
                    },
                )])
                .collect(),
            None,
        );
        assert_eq!(
            observed.running().num_tokens,
            BTreeMap::from([("dc1".to_string(), 16), ("dc2".to_string(), 256)])
        );
    }

    #[test]
    fn a_cached_datacenter_is_ready_only_for_its_current_generation() {
        let current = live_after_apply(&desired(3), 2);
        assert!(current.is_ready());
        assert!(RemoteState::Present(Arc::new(current.clone())).is_ready());
        let behind = live_after_apply(&desired(3), 1);
        assert!(!behind.is_ready(), "status of generation 1, spec of 2");
        let without_status = Kept::new(
            ObjectMeta::default(),
            LiveParts {
                status: None,
                ..current.data
            },
        );
        assert!(!without_status.is_ready());
    }
}
