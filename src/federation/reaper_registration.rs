//! `spec.reaper.reaperRef`: the cluster is registered with an existing Reaper (upstream's
//! control-plane Reaper) instead of getting Reapers of its own. The Reaper is in the hub (the
//! K8ssandraCluster's cluster), in `reaperRef.namespace`, else the K8ssandraCluster's namespace;
//! Federator logs in as `spec.reaper.uiUserSecretRef` (a Secret in the K8ssandraCluster's
//! namespace; none named, no login: upstream's defaulting, which makes no UI Secret for a
//! referenced Reaper). The referenced Reaper's own `spec.encryption` says how it serves, and so
//! how Federator connects (upstream reads the K8ssandraCluster's `spec.reaper.encryption`
//! instead, which can disagree with the Reaper); its clientCertName Secret is read in the
//! Reaper's namespace.
//!
//! The seed host is the seed pods' IPs of every datacenter, in the plan's order: what the
//! datacenters of other regions use as each other's seeds (`super::seeds`), since pod IPs are
//! routable across regions while a datacenter's Services resolve in its own region only.
//!
//! Pure: what to register and the `ReaperRegistered` condition; the calls are the controller's
//! (`controller/reaper_registration.rs`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;

use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::api::shared::{CONDITION_FALSE, CONDITION_TRUE, new_condition};
use crate::cassandra::reaper::{ReaperApiError, cluster_name_in_reaper};
use crate::federation::plan::ClusterPlan;

pub const CONDITION_REAPER_REGISTERED: &str = "ReaperRegistered";
/// How long a registration is trusted without asking Reaper again.
pub const RECHECK_AFTER: Duration = Duration::from_secs(300);
/// How long Reaper's failure stands before it is asked again.
pub const RETRY_AFTER: Duration = Duration::from_secs(10);

/// Seed IPs handed to Reaper per datacenter at most: enough for one to answer.
const SEEDS_PER_DATACENTER: usize = 3;

/// The Reaper a cluster is registered with, and how.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegistrationTarget {
    pub namespace: String,
    pub name: String,
    /// The UI user's Secret in the K8ssandraCluster's namespace, when Federator logs in.
    pub ui_secret: Option<String>,
    /// The cluster's name in Reaper.
    pub cluster: String,
}

impl RegistrationTarget {
    fn reaper(&self) -> String {
        format!("Reaper {}/{}", self.namespace, self.name)
    }
}

/// What `spec.reaper.reaperRef` of `k8c` asks; None without one (or with an empty name).
pub fn registration_target(
    k8c: &K8ssandraCluster,
    cassandra_cluster_name: &str,
) -> Option<RegistrationTarget> {
    let reaper = k8c.spec.reaper.as_ref().filter(|r| r.references_a_reaper())?;
    let reference = reaper.reaper_ref.as_ref()?;
    let namespace = (reference.namespace.clone())
        .filter(|namespace| !namespace.is_empty())
        .or_else(|| k8c.namespace())?;
    let ui_secret = (reaper.template.ui_user_secret_ref.as_ref())
        .map(|secret| secret.name.clone())
        .filter(|name| !name.is_empty());
    Some(RegistrationTarget {
        namespace,
        name: reference.name.clone()?,
        ui_secret,
        cluster: cluster_name_in_reaper(cassandra_cluster_name),
    })
}

/// The seed host Reaper is given: up to three seed pod IPs of each datacenter, in the plan's
/// order, comma-separated (Reaper tries each); None while no datacenter has a seed pod.
pub fn seed_host(plan: &ClusterPlan, seed_ips: &BTreeMap<String, Vec<IpAddr>>) -> Option<String> {
    let mut hosts: Vec<String> = Vec::new();
    for dc in &plan.datacenters {
        let mut ips = seed_ips.get(&dc.name).cloned().unwrap_or_default();
        ips.sort();
        ips.dedup();
        hosts.extend(ips.iter().take(SEEDS_PER_DATACENTER).map(IpAddr::to_string));
    }
    (!hosts.is_empty()).then(|| hosts.join(","))
}

/// Where registering the cluster got to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registration {
    /// The cluster is known to the Reaper (registered now, or before).
    Registered,
    /// No datacenter has a seed pod yet to give Reaper.
    WaitingForSeeds,
    ReaperNotFound,
    /// The Reaper exists but is not ready: its Ready condition's message, if any.
    ReaperNotRunning(Option<String>),
    /// The UI user's Secret cannot be read, or Reaper refused the login.
    LoginFailed(String),
    /// Reaper (or the API server's proxy to it) did not answer.
    Unreachable(String),
    /// Reaper answered with an error.
    Refused(String),
    /// The Reaper requires mutual TLS and its client certificate's Secret is missing or unusable.
    ClientCertificateUnusable(String),
}

impl Registration {
    pub fn is_registered(&self) -> bool {
        *self == Registration::Registered
    }

    /// A failed call, sorted by what the user has to look at.
    pub fn from_error(error: &ReaperApiError) -> Registration {
        match error {
            ReaperApiError::Timeout { .. } | ReaperApiError::Unreachable { .. } => {
                Registration::Unreachable(error.to_string())
            }
            ReaperApiError::Refused { call, .. } if call.ends_with("/login") => {
                Registration::LoginFailed(error.to_string())
            }
            ReaperApiError::Refused { .. } | ReaperApiError::Unexpected { .. } => {
                Registration::Refused(error.to_string())
            }
            ReaperApiError::ClientCertificate(_) => {
                Registration::ClientCertificateUnusable(error.to_string())
            }
        }
    }

    /// The `ReaperRegistered` condition.
    pub fn condition(
        &self,
        target: &RegistrationTarget,
        generation: Option<i64>,
        now: Time,
    ) -> Condition {
        let reaper = target.reaper();
        let (status, reason, message) = match self {
            Registration::Registered => (
                CONDITION_TRUE,
                "Registered",
                format!("cluster {} is registered with {reaper}", target.cluster),
            ),
            Registration::WaitingForSeeds => (
                CONDITION_FALSE,
                "WaitingForDatacenters",
                format!("no datacenter has a seed pod yet to give {reaper} as the seed host"),
            ),
            Registration::ReaperNotFound => (
                CONDITION_FALSE,
                "ReaperNotFound",
                format!(
                    "{reaper} (spec.reaper.reaperRef) does not exist in the control plane's cluster: create it (no datacenterRef, storageType local), or fix the reference"
                ),
            ),
            Registration::ReaperNotRunning(why) => (
                CONDITION_FALSE,
                "ReaperNotRunning",
                match why {
                    Some(why) => format!("{reaper} is not ready: {why}"),
                    None => format!("{reaper} is not ready"),
                },
            ),
            Registration::LoginFailed(why) => (
                CONDITION_FALSE,
                "LoginFailed",
                format!(
                    "logging in to {reaper} as the UI user of spec.reaper.uiUserSecretRef: {why}"
                ),
            ),
            Registration::Unreachable(why) => (
                CONDITION_FALSE,
                "ReaperUnreachable",
                format!("{reaper}: {why}"),
            ),
            Registration::ClientCertificateUnusable(why) => (
                CONDITION_FALSE,
                "ClientCertificateUnusable",
                format!("{reaper}: {why}"),
            ),
            Registration::Refused(why) => (
                CONDITION_FALSE,
                "RegistrationRefused",
                format!(
                    "registering cluster {} with {reaper}: {why}",
                    target.cluster
                ),
            ),
        };
        new_condition(
            CONDITION_REAPER_REGISTERED,
            status,
            reason,
            message,
            generation,
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster(reaper: serde_json::Value) -> K8ssandraCluster {
        let mut k8c: K8ssandraCluster = serde_json::from_value(json!({
            "apiVersion": "k8ssandra.io/v1alpha1", "kind": "K8ssandraCluster",
            "metadata": {"name": "demo", "namespace": "apps"},
            "spec": {"cassandra": {"serverVersion": "4.1.5", "datacenters": []}, "reaper": reaper},
        }))
        .expect("a K8ssandraCluster");
        k8c.metadata.generation = Some(1);
        k8c
    }

    #[test]
    fn the_referenced_reaper_is_in_the_clusters_namespace_unless_another_is_named() {
        let same = registration_target(
            &cluster(json!({"reaperRef": {"name": "cp-reaper"}})),
            "Demo Cluster",
        );
        assert_eq!(
            same,
            Some(RegistrationTarget {
                namespace: "apps".into(),
                name: "cp-reaper".into(),
                ui_secret: None,
                cluster: "democluster".into(),
            })
        );
        let other = registration_target(
            &cluster(json!({
                "reaperRef": {"name": "cp-reaper", "namespace": "reapers"},
                "uiUserSecretRef": {"name": "reaper-ui"}
            })),
            "demo",
        )
        .expect("a target");
        assert_eq!(
            (other.namespace.as_str(), other.ui_secret.as_deref()),
            ("reapers", Some("reaper-ui"))
        );
        for no_ref in [json!({}), json!({"reaperRef": {"name": ""}})] {
            assert_eq!(registration_target(&cluster(no_ref), "demo"), None);
        }
    }

    #[test]
    fn the_seed_host_lists_each_datacenters_seed_ips_in_the_plans_order() {
        let k8c: K8ssandraCluster = serde_json::from_value(json!({
            "apiVersion": "k8ssandra.io/v1alpha1", "kind": "K8ssandraCluster",
            "metadata": {"name": "demo", "namespace": "apps", "generation": 1},
            "spec": {"cassandra": {
                "serverVersion": "4.1.5",
                "storageConfig": {"cassandraDataVolumeClaimSpec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "5Gi"}}
                }},
                "datacenters": [
                    {"metadata": {"name": "dc2"}, "k8sContext": "east", "size": 3},
                    {"metadata": {"name": "dc1"}, "k8sContext": "west", "size": 3},
                ]
            }},
        }))
        .expect("a K8ssandraCluster");
        let plan = crate::federation::plan::plan(&k8c).expect("a plan");
        let ip = |text: &str| text.parse::<IpAddr>().expect("an IP");
        let mut seeds = BTreeMap::new();
        assert_eq!(seed_host(&plan, &seeds), None);
        seeds.insert(
            "dc1".to_string(),
            vec![
                ip("10.1.0.9"),
                ip("10.1.0.2"),
                ip("10.1.0.5"),
                ip("10.1.0.7"),
            ],
        );
        seeds.insert("dc2".to_string(), vec![ip("10.2.0.3")]);
        assert_eq!(
            seed_host(&plan, &seeds).as_deref(),
            Some("10.2.0.3,10.1.0.2,10.1.0.5,10.1.0.7")
        );
    }

    #[test]
    fn the_condition_says_what_to_fix() {
        let target = RegistrationTarget {
            namespace: "reapers".into(),
            name: "cp-reaper".into(),
            ui_secret: Some("reaper-ui".into()),
            cluster: "demo".into(),
        };
        let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let of = |registration: Registration| {
            let condition = registration.condition(&target, Some(2), now.clone());
            (condition.status, condition.reason, condition.message)
        };
        let (status, reason, message) = of(Registration::Registered);
        assert_eq!((status.as_str(), reason.as_str()), ("True", "Registered"));
        assert_eq!(
            message,
            "cluster demo is registered with Reaper reapers/cp-reaper"
        );
        let (status, reason, message) = of(Registration::ReaperNotFound);
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "ReaperNotFound")
        );
        assert!(
            message.starts_with("Reaper reapers/cp-reaper (spec.reaper.reaperRef) does not exist"),
            "{message}"
        );
        let login = ReaperApiError::Refused {
            call: "POST /login".into(),
            code: 403,
            message: "bad credentials (check the username and password of the UI user's Secret)"
                .into(),
        };
        let (_, reason, message) = of(Registration::from_error(&login));
        assert_eq!(reason, "LoginFailed");
        assert!(
            message.contains("check the username and password"),
            "{message}"
        );
        let refused = ReaperApiError::Refused {
            call: "PUT /cluster/demo".into(),
            code: 400,
            message: "no cluster demo with seed host 10.0.0.1".into(),
        };
        let (_, reason, message) = of(Registration::from_error(&refused));
        assert_eq!(reason, "RegistrationRefused");
        assert!(
            message.ends_with("no cluster demo with seed host 10.0.0.1"),
            "{message}"
        );
        let timeout = ReaperApiError::Timeout {
            call: "GET /cluster".into(),
        };
        assert_eq!(
            of(Registration::from_error(&timeout)).1,
            "ReaperUnreachable"
        );
        let (_, reason, message) = of(Registration::ReaperNotRunning(Some(
            "0/1 replicas ready".into(),
        )));
        assert_eq!(reason, "ReaperNotRunning");
        assert_eq!(
            message,
            "Reaper reapers/cp-reaper is not ready: 0/1 replicas ready"
        );
        let certificate = ReaperApiError::ClientCertificate(
            "Secret reaper-client (spec.encryption.clientCertName) has no tls.key".into(),
        );
        let (_, reason, message) = of(Registration::from_error(&certificate));
        assert_eq!(reason, "ClientCertificateUnusable");
        assert_eq!(
            message,
            "Reaper reapers/cp-reaper: Reaper requires a client certificate (mutual TLS), and Secret reaper-client (spec.encryption.clientCertName) has no tls.key"
        );
    }
}
