//! Registering the cluster with the Reaper `spec.reaper.reaperRef` names, as a stage: after the
//! writes (Reaper's answers never hold them up), reading the Reaper in the hub, then calling its
//! REST API as the Reaper's `spec.encryption` asks (the hub's services proxy, or a Reaper pod's
//! IP for mutual TLS), as the Reaper controller does for its own cluster.
//! Every call is bounded by [`CALL_TIMEOUT`] and the whole stage by [`STAGE_BUDGET`]; once the
//! cluster is registered, Reaper is not asked again for
//! [`RECHECK_AFTER`](crate::federation::reaper_registration::RECHECK_AFTER) unless the Reaper
//! object changes (a Reaper that keeps its state in memory forgets it when it restarts), and
//! after a failure of Reaper's not for
//! [`RETRY_AFTER`](crate::federation::reaper_registration::RETRY_AFTER).

use std::hash::{Hash, Hasher};
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use tracing::info;

use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::api::reaper::Reaper;
use crate::api::shared::find_condition;
use crate::cassandra::reaper::{CALL_TIMEOUT, ReaperApi, ReaperEndpoint, read_login};
use crate::federation::reaper_registration::{
    Registration, RegistrationTarget, registration_target,
};

use super::context::ControllerContext;

/// The longest one reconcile spends on it.
const STAGE_BUDGET: Duration = Duration::from_secs(20);

/// Registers the cluster with the Reaper its `reaperRef` names, given `seed_host` (None while
/// no datacenter has a seed pod); None without a `reaperRef`.
pub(super) async fn register_with_referenced_reaper(
    context: &ControllerContext,
    k8c: &K8ssandraCluster,
    cassandra_cluster_name: &str,
    seed_host: Option<String>,
) -> Option<(RegistrationTarget, Registration)> {
    let target = registration_target(k8c, cassandra_cluster_name)?;
    let key = ObjectRef::from_obj(k8c);
    let registration =
        tokio::time::timeout(STAGE_BUDGET, register(context, &key, &target, seed_host))
            .await
            .unwrap_or_else(|_| {
                Registration::Unreachable(format!(
                    "registering did not finish within {STAGE_BUDGET:?}"
                ))
            });
    Some((target, registration))
}

async fn register(
    context: &ControllerContext,
    key: &ObjectRef<K8ssandraCluster>,
    target: &RegistrationTarget,
    seed_host: Option<String>,
) -> Registration {
    let hub = &context.hub;
    let reapers: Api<Reaper> = Api::namespaced(hub.clone(), &target.namespace);
    let reaper = match tokio::time::timeout(CALL_TIMEOUT, reapers.get_opt(&target.name)).await {
        Err(_) => {
            return Registration::Unreachable(format!(
                "the API server did not answer within {CALL_TIMEOUT:?} reading the Reaper"
            ));
        }
        Ok(Err(error)) => return Registration::Refused(format!("reading the Reaper: {error}")),
        Ok(Ok(None)) => return Registration::ReaperNotFound,
        Ok(Ok(Some(reaper))) => reaper,
    };
    let status = reaper.status.clone().unwrap_or_default();
    if !status.is_ready() {
        let conditions = status.conditions.as_deref().unwrap_or_default();
        let why = find_condition(conditions, crate::dataplane::reaper::CONDITION_READY)
            .map(|c| c.message.clone())
            .filter(|m| !m.is_empty());
        return Registration::ReaperNotRunning(why);
    }
    let fingerprint = {
        let mut hasher = std::hash::DefaultHasher::new();
        (target, reaper.uid()).hash(&mut hasher);
        hasher.finish()
    };
    if let Some(known) = context.reaper_registrations.fresh(key, fingerprint) {
        return known;
    }
    let registration = call_reaper(hub, key, target, &reaper, seed_host).await;
    context.reaper_registrations.remember(key.clone(), fingerprint, registration.clone());
    registration
}

/// Logs in if asked, lists the clusters Reaper knows and registers this one unless known.
async fn call_reaper(
    hub: &kube::Client,
    key: &ObjectRef<K8ssandraCluster>,
    target: &RegistrationTarget,
    reaper: &Reaper,
    seed_host: Option<String>,
) -> Registration {
    let service = crate::dataplane::reaper::service_name(reaper);
    let pods = crate::dataplane::reaper::pod_selector(reaper);
    let endpoint = ReaperEndpoint {
        namespace: &target.namespace,
        service: &service,
        pods: &pods,
        encryption: reaper.spec.template.encryption.as_ref(),
    };
    let mut api = match ReaperApi::connect(hub, &endpoint).await {
        Ok(api) => api,
        Err(error) => return Registration::from_error(&error),
    };
    if let Some(secret) = &target.ui_secret {
        let namespace = key.namespace.clone().unwrap_or_default();
        let (username, password) = match read_login(hub, &namespace, secret).await {
            Ok(login) => login,
            Err(why) => return Registration::LoginFailed(why),
        };
        if let Err(error) = api.login(&username, &password).await {
            return Registration::from_error(&error);
        }
    }
    let known = match api.cluster_names().await {
        Ok(known) => known,
        Err(error) => return Registration::from_error(&error),
    };
    if !known.contains(&target.cluster) {
        let Some(seed_host) = seed_host else {
            return Registration::WaitingForSeeds;
        };
        if let Err(error) = api.add_cluster(&target.cluster, &seed_host).await {
            return Registration::from_error(&error);
        }
        info!(
            reaper = %format!("{}/{}", target.namespace, target.name),
            cluster = %target.cluster,
            seed_host,
            k8ssandra_cluster = %key,
            "cluster registered with the referenced Reaper"
        );
    }
    Registration::Registered
}
