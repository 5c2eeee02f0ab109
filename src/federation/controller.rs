//! The K8ssandraCluster controller: the I/O around the pure core of this module (see the module
//! docs for the call order). Control-plane mode only.
//!
//! Each reconcile looks at every region in parallel, each request bounded by the region's own
//! timeout (the region client carries it); a region that is unknown or unavailable becomes a
//! [`RemoteState`] for its datacenters, never an error that holds up the other regions.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Error as ControllerError};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Api, Resource, ResourceExt};
use tracing::{debug, info, warn};

use super::labels::{
    ADOPT_ANNOTATION, DECOMMISSION_ON_DELETE_ANNOTATION, K8SSANDRA_CLUSTER_FINALIZER,
    ORPHAN_ANNOTATION, ownership_selector,
};
use super::notices::{DatacenterOutcome, Outcome, condition_notices, outcome_notices};
use super::observed::{ObservedCluster, ObservedDatacenter, RemoteState, known_contexts};
use super::plan::{ClusterKey, ClusterPlan, plan};
use super::rollout::{Actions, Decision, decide};
use super::seeds::{
    AdditionalSeeds, CachingResolver, HickoryResolver, resolve_additional_seeds,
    seed_endpoint_slices,
};
use super::status::{StatusInput, cluster_status, invalid_spec_status};
use crate::api::cassdc::CassandraDatacenter;
use crate::api::k8ssandra_cluster::{K8ssandraCluster, K8ssandraClusterStatus};
use crate::apply::{Applied, apply_if_changed};
use crate::clusters::{RegionChange, RegionError, Registry};
use crate::events::Events;

/// Field manager of every write of this controller (remote DCs and the K8ssandraCluster status).
pub const FIELD_MANAGER: &str = "federator";

/// Re-look while something is being created, deleted or waited for.
const PROGRESSING_REQUEUE: Duration = Duration::from_secs(5);
/// Re-look at a steady cluster: corrects drift until per-region watches exist.
const STEADY_REQUEUE: Duration = Duration::from_secs(30);
/// Retry delay after a failed reconcile (hub write refused, remote DCs still being deleted).
const RETRY_DELAY: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("K8ssandraCluster {name} has no namespace")]
    MissingNamespace { name: String },
    #[error("writing the status of K8ssandraCluster {namespace}/{name}: {source}")]
    WriteStatus {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("K8ssandraCluster {namespace}/{name} is not deleted yet: {pending}")]
    CleanupPending {
        namespace: String,
        name: String,
        pending: String,
    },
    #[error("finalizer of a K8ssandraCluster: {0}")]
    Finalizer(#[source] Box<finalizer::Error<ReconcileError>>),
}

/// Reporting controller name of this controller's Events.
pub const EVENT_REPORTER: &str = "federator-k8ssandracluster";

/// Everything a reconcile needs.
pub struct ControllerContext {
    pub hub: kube::Client,
    pub registry: Registry,
    /// Namespaces whose K8ssandraClusters are reconciled; empty means all.
    pub watch_namespaces: Vec<String>,
    pub events: Events,
    /// Resolves `additionalSeeds` host names; an error when the system's DNS configuration
    /// cannot be read (then host names are reported unresolved).
    pub resolver: Result<CachingResolver<HickoryResolver>, super::seeds::SeedResolveError>,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    hub: kube::Client,
    registry: Registry,
    watch_namespaces: Vec<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let clusters: Api<K8ssandraCluster> = match watch_namespaces.as_slice() {
        [single] => Api::namespaced(hub.clone(), single),
        _ => Api::all(hub.clone()),
    };
    let controller = Controller::new(clusters, watcher::Config::default());
    let store = controller.store();
    let region_triggers = registry
        .changes()
        .flat_map(move |change| stream::iter(clusters_using_change(&store, &change)));
    let (remote_triggers, manage_watches) = super::watches::remote_changes(registry.clone());
    let context = Arc::new(ControllerContext {
        events: Events::new(hub.clone(), EVENT_REPORTER),
        hub,
        registry,
        watch_namespaces,
        resolver: HickoryResolver::from_system_conf().map(CachingResolver::new),
    });
    info!("K8ssandraCluster controller started");
    let controller = controller
        .reconcile_on(stream::select(region_triggers, remote_triggers))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context)
        .for_each(|result| {
            match result {
                Ok((object, _)) => debug!(k8ssandra_cluster = %object, "reconciled"),
                Err(ControllerError::ObjectNotFound(_)) => {}
                Err(ControllerError::ReconcilerFailed(error, object)) => {
                    warn!(k8ssandra_cluster = %object, error = %error, "reconcile failed; retrying");
                }
                Err(error) => warn!(error = %error, "K8ssandraCluster controller"),
            }
            futures::future::ready(())
        });
    // The region watches live as long as the controller: dropping `manage_watches` stops them.
    futures::future::select(Box::pin(controller), Box::pin(manage_watches)).await;
    info!("K8ssandraCluster controller stopped");
}

/// The K8ssandraClusters with a datacenter in the changed context (now or per their status).
fn clusters_using_change(
    store: &Store<K8ssandraCluster>,
    change: &RegionChange,
) -> Vec<ObjectRef<K8ssandraCluster>> {
    store
        .state()
        .iter()
        .filter(|k8c| match change {
            RegionChange::Resync => true,
            RegionChange::Context { context, .. } => cluster_contexts(k8c).contains(context),
        })
        .map(|k8c| ObjectRef::from_obj(k8c.as_ref()))
        .collect()
}

/// Every context the cluster's spec names or its status remembers.
fn cluster_contexts(k8c: &K8ssandraCluster) -> BTreeSet<String> {
    let mut contexts: BTreeSet<String> =
        known_contexts(k8c.status.as_ref()).into_values().collect();
    let in_spec = k8c
        .spec
        .cassandra
        .as_ref()
        .and_then(|c| c.datacenters.as_ref())
        .into_iter()
        .flatten()
        .map(|dc| dc.k8s_context.clone().unwrap_or_default());
    contexts.extend(in_spec);
    contexts
}

fn error_policy(
    _k8c: Arc<K8ssandraCluster>,
    _error: &ReconcileError,
    _context: Arc<ControllerContext>,
) -> Action {
    Action::requeue(RETRY_DELAY)
}

async fn reconcile(
    k8c: Arc<K8ssandraCluster>,
    context: Arc<ControllerContext>,
) -> Result<Action, ReconcileError> {
    let namespace = k8c
        .namespace()
        .ok_or_else(|| ReconcileError::MissingNamespace {
            name: k8c.name_any(),
        })?;
    if !context.watch_namespaces.is_empty() && !context.watch_namespaces.contains(&namespace) {
        return Ok(Action::await_change());
    }
    let api: Api<K8ssandraCluster> = Api::namespaced(context.hub.clone(), &namespace);
    finalizer::finalizer(&api, K8SSANDRA_CLUSTER_FINALIZER, k8c, |event| async {
        match event {
            FinalizerEvent::Apply(k8c) => apply_cluster(&k8c, &api, &context).await,
            FinalizerEvent::Cleanup(k8c) => cleanup_cluster(&k8c, &api, &context).await,
        }
    })
    .await
    .map_err(|error| ReconcileError::Finalizer(Box::new(error)))
}

fn annotation_is_true(k8c: &K8ssandraCluster, key: &str) -> bool {
    k8c.annotations().get(key).is_some_and(|v| v == "true")
}

/// Plan, observe, decide, act, write status.
async fn apply_cluster(
    k8c: &K8ssandraCluster,
    api: &Api<K8ssandraCluster>,
    context: &ControllerContext,
) -> Result<Action, ReconcileError> {
    let previous = k8c.status.as_ref();
    let input = |reconcile_error, unresolved_seeds| StatusInput {
        previous,
        generation: k8c.metadata.generation,
        now: Time(Timestamp::now()),
        reconcile_error,
        unresolved_seeds,
    };
    let cluster_plan = match plan(k8c) {
        Ok(cluster_plan) => cluster_plan,
        Err(error) => {
            // Nothing is applied from a spec that cannot be planned; status says why.
            let status = invalid_spec_status(&input(None, None), &error);
            publish_transitions(context, k8c, &status, &[]).await;
            write_status(api, k8c, status).await?;
            return Ok(Action::requeue(STEADY_REQUEUE));
        }
    };
    let adopt = annotation_is_true(k8c, ADOPT_ANNOTATION);
    let observed = observe(context, &cluster_plan, previous, adopt).await;
    let actions = decide(&cluster_plan, &observed);
    // Seeds first: a datacenter created now finds the other regions' seeds at its first start.
    let seeds = apply_seeds(context, k8c, &cluster_plan, &observed, &actions).await;
    let outcomes = act(context, &cluster_plan, &observed, &actions).await;
    let errors: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match &o.outcome {
            DatacenterOutcome::ApplyFailed(e) | DatacenterOutcome::DeleteFailed(e) => {
                Some(e.clone())
            }
            _ => None,
        })
        .chain(seeds.errors)
        .collect();
    let error_text = (!errors.is_empty()).then(|| errors.join("; "));
    let status = cluster_status(
        &input(error_text.as_deref(), seeds.unresolved.as_deref()),
        &cluster_plan,
        &observed,
        &actions,
    );
    publish_transitions(context, k8c, &status, &outcomes).await;
    write_status(api, k8c, status).await?;
    Ok(Action::requeue(next_look(&observed, &actions, &errors)))
}

/// Events for what this reconcile did and for condition transitions; nothing when steady.
async fn publish_transitions(
    context: &ControllerContext,
    k8c: &K8ssandraCluster,
    status: &K8ssandraClusterStatus,
    outcomes: &[Outcome],
) {
    let previous = k8c.status.as_ref();
    let before = previous
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or(&[]);
    let after = status.conditions.as_deref().unwrap_or(&[]);
    let previous_error = previous.and_then(|s| s.error.as_deref());
    let notices = outcome_notices(outcomes, previous_error)
        .into_iter()
        .chain(condition_notices(before, after));
    for notice in notices {
        context.events.publish(k8c, &notice).await;
    }
}

/// What applying the seed EndpointSlices found: write errors and unresolved host names.
struct SeedsOutcome {
    errors: Vec<String>,
    /// `None` when `additionalSeeds` has no host names.
    unresolved: Option<Vec<String>>,
}

/// Applies the seed EndpointSlices of every datacenter being created or kept: the seed pod IPs
/// of the other datacenters, and `additionalSeeds` with host names resolved.
async fn apply_seeds(
    context: &ControllerContext,
    k8c: &K8ssandraCluster,
    cluster_plan: &ClusterPlan,
    observed: &ObservedCluster,
    actions: &Actions,
) -> SeedsOutcome {
    let additional = AdditionalSeeds::parse(
        k8c.spec
            .cassandra
            .as_ref()
            .and_then(|c| c.additional_seeds.as_deref())
            .unwrap_or(&[]),
    );
    let (addresses, unresolved) = if additional.host_names.is_empty() {
        (additional.addresses.clone(), None)
    } else {
        match &context.resolver {
            Ok(resolver) => {
                let resolved = resolve_additional_seeds(resolver, &additional).await;
                let failures = resolved.failures.iter().map(ToString::to_string).collect();
                (resolved.addresses, Some(failures))
            }
            Err(setup) => (additional.addresses.clone(), Some(vec![setup.to_string()])),
        }
    };
    let seed_lookups = cluster_plan.datacenters.iter().filter_map(|dc| {
        observed.get(&dc.name)?.state.present()?;
        let client = context.registry.client(&dc.context).ok()?;
        let selector =
            super::labels::seed_pod_selector(&cluster_plan.cassandra_cluster_name, &dc.name);
        Some(async move {
            let pods: Api<Pod> = Api::namespaced(client, &dc.namespace);
            let ips: Vec<std::net::IpAddr> = match pods
                .list(&ListParams::default().labels(&selector))
                .await
            {
                Ok(list) => list
                    .items
                    .iter()
                    .filter_map(|pod| pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok())
                    .collect(),
                Err(error) => {
                    debug!(datacenter = %dc.name, region = %dc.context, error = %error, "seed pods not listed");
                    Vec::new()
                }
            };
            (dc.name.clone(), ips)
        })
    });
    let seed_ips: BTreeMap<String, Vec<std::net::IpAddr>> = futures::future::join_all(seed_lookups)
        .await
        .into_iter()
        .collect();
    let applies = seed_endpoint_slices(cluster_plan, &seed_ips, &addresses)
        .into_iter()
        .filter(|seeds| {
            actions
                .decision(&seeds.datacenter)
                .is_some_and(|d| matches!(d, Decision::Create | Decision::Update))
        })
        .map(|seeds| async move {
            let client = context
                .registry
                .client(&seeds.context)
                .map_err(|e| e.to_string())?;
            let api: Api<EndpointSlice> = Api::namespaced(client, &seeds.namespace);
            for slice in &seeds.slices {
                let name = slice.metadata.name.clone().unwrap_or_default();
                let live = api.get_opt(&name).await.map_err(|e| e.to_string())?;
                apply_if_changed(&api, FIELD_MANAGER, slice, live.as_ref())
                    .await
                    .map_err(|e| {
                        format!(
                            "applying seed EndpointSlice {}/{name} in region {:?}: {e}",
                            seeds.namespace, seeds.context
                        )
                    })?;
            }
            Ok::<(), String>(())
        });
    let errors = futures::future::join_all(applies)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    SeedsOutcome { errors, unresolved }
}

fn next_look(observed: &ObservedCluster, actions: &Actions, errors: &[String]) -> Duration {
    let settled = errors.is_empty()
        && actions.refused.is_none()
        && actions
            .decisions
            .iter()
            .all(|d| matches!(d.decision, Decision::Update))
        && observed.datacenters.values().all(|o| o.state.is_ready());
    if settled {
        STEADY_REQUEUE
    } else {
        PROGRESSING_REQUEUE
    }
}

/// One datacenter to look up: planned, or removed from the spec but still known.
struct Lookup {
    datacenter: String,
    /// Known for planned datacenters; found by label for removed ones.
    namespace: Option<String>,
}

/// Looks at every region in parallel.
async fn observe(
    context: &ControllerContext,
    cluster_plan: &ClusterPlan,
    previous: Option<&K8ssandraClusterStatus>,
    adopt: bool,
) -> ObservedCluster {
    let mut by_context: BTreeMap<String, Vec<Lookup>> = BTreeMap::new();
    for dc in &cluster_plan.datacenters {
        by_context
            .entry(dc.context.clone())
            .or_default()
            .push(Lookup {
                datacenter: dc.name.clone(),
                namespace: Some(dc.namespace.clone()),
            });
    }
    for (datacenter, region) in known_contexts(previous) {
        if cluster_plan.datacenter(&datacenter).is_none() {
            by_context.entry(region).or_default().push(Lookup {
                datacenter,
                namespace: None,
            });
        }
    }
    let lookups = by_context.into_iter().map(|(region, lookups)| {
        observe_region(context, &cluster_plan.cluster, region, lookups, adopt)
    });
    let datacenters = futures::future::join_all(lookups)
        .await
        .into_iter()
        .flatten()
        .collect();
    ObservedCluster::new(datacenters, previous)
}

async fn observe_region(
    context: &ControllerContext,
    cluster: &ClusterKey,
    region_context: String,
    lookups: Vec<Lookup>,
    adopt: bool,
) -> Vec<(String, ObservedDatacenter)> {
    let observed = |lookup: &Lookup, namespace: String, state: RemoteState| {
        (
            lookup.datacenter.clone(),
            ObservedDatacenter {
                context: region_context.clone(),
                namespace,
                state,
            },
        )
    };
    let client = match context.registry.client(&region_context) {
        Ok(client) => client,
        Err(error) => {
            let state = region_state(&error);
            return lookups
                .iter()
                .map(|l| observed(l, l.namespace.clone().unwrap_or_default(), state.clone()))
                .collect();
        }
    };
    // Removed datacenters: their namespace is only known from the objects themselves.
    let owned = if lookups.iter().any(|l| l.namespace.is_none()) {
        let api: Api<CassandraDatacenter> = Api::all(client.clone());
        let selector = ownership_selector(&cluster.name, &cluster.namespace);
        Some(
            api.list(&ListParams::default().labels(&selector))
                .await
                .map(|list| list.items),
        )
    } else {
        None
    };
    let mut result = Vec::new();
    for lookup in &lookups {
        let Some(namespace) = &lookup.namespace else {
            let entry = match &owned {
                Some(Ok(items)) => match items.iter().find(|dc| dc.name_any() == lookup.datacenter)
                {
                    Some(dc) => observed(
                        lookup,
                        dc.namespace().unwrap_or_default(),
                        RemoteState::Present(Box::new(dc.clone())),
                    ),
                    None => observed(lookup, String::new(), RemoteState::Absent),
                },
                Some(Err(error)) => observed(
                    lookup,
                    String::new(),
                    RemoteState::Unreachable {
                        reason: error.to_string(),
                    },
                ),
                None => observed(lookup, String::new(), RemoteState::Absent),
            };
            result.push(entry);
            continue;
        };
        let state = lookup_datacenter(&client, cluster, namespace, &lookup.datacenter, adopt).await;
        result.push(observed(lookup, namespace.clone(), state));
    }
    result
}

async fn lookup_datacenter(
    client: &kube::Client,
    cluster: &ClusterKey,
    namespace: &str,
    datacenter: &str,
    adopt: bool,
) -> RemoteState {
    let api: Api<CassandraDatacenter> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(datacenter).await {
        Ok(Some(found)) => RemoteState::from_lookup(Some(found), cluster, adopt),
        Ok(None) => {
            // Federator does not create namespaces: a missing one is the user's to fix.
            let namespaces: Api<Namespace> = Api::all(client.clone());
            match namespaces.get_opt(namespace).await {
                Ok(Some(_)) => RemoteState::Absent,
                Ok(None) => RemoteState::NamespaceMissing,
                Err(error) => RemoteState::Unreachable {
                    reason: error.to_string(),
                },
            }
        }
        Err(error) => RemoteState::Unreachable {
            reason: error.to_string(),
        },
    }
}

fn region_state(error: &RegionError) -> RemoteState {
    match error {
        RegionError::UnknownContext { .. } => RemoteState::UnknownContext,
        RegionError::Unavailable { reason, .. } | RegionError::Misconfigured { reason, .. } => {
            RemoteState::Unreachable {
                reason: reason.clone(),
            }
        }
    }
}

/// Creates, updates and deletes as decided, regions in parallel; returns what happened.
async fn act(
    context: &ControllerContext,
    cluster_plan: &ClusterPlan,
    observed: &ObservedCluster,
    actions: &Actions,
) -> Vec<Outcome> {
    let operations = actions.decisions.iter().filter_map(|decision| {
        let client = || context.registry.client(&decision.context);
        let outcome = |outcome| Outcome {
            datacenter: decision.datacenter.clone(),
            context: decision.context.clone(),
            namespace: decision.namespace.clone(),
            outcome,
        };
        match &decision.decision {
            Decision::Create | Decision::Update => {
                let desired = &cluster_plan.datacenter(&decision.datacenter)?.datacenter;
                let live = observed
                    .get(&decision.datacenter)
                    .and_then(|o| o.state.present());
                Some(futures::future::Either::Left(async move {
                    let applied = match client() {
                        Ok(client) => apply_datacenter(&client, &decision.namespace, desired, live)
                            .await
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    match applied {
                        Ok(Applied::Created) => Some(outcome(DatacenterOutcome::Created)),
                        Ok(Applied::Updated) => Some(outcome(DatacenterOutcome::Updated)),
                        Ok(Applied::Unchanged) => None,
                        Err(e) => Some(outcome(DatacenterOutcome::ApplyFailed(format!(
                            "applying CassandraDatacenter {}/{} in region {:?}: {e}",
                            decision.namespace, decision.datacenter, decision.context
                        )))),
                    }
                }))
            }
            Decision::Delete { annotate_first } => {
                let annotate_first = *annotate_first;
                Some(futures::future::Either::Right(async move {
                    let deleted = match client() {
                        Ok(client) => delete_datacenter(
                            &client,
                            &cluster_plan.cluster,
                            &decision.namespace,
                            &decision.datacenter,
                            annotate_first,
                        )
                        .await
                        .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    Some(match deleted {
                        Ok(()) => outcome(DatacenterOutcome::Deleted),
                        Err(e) => outcome(DatacenterOutcome::DeleteFailed(format!(
                            "deleting CassandraDatacenter {}/{} in region {:?}: {e}",
                            decision.namespace, decision.datacenter, decision.context
                        ))),
                    })
                }))
            }
            Decision::Wait(_) | Decision::Blocked(_) => None,
        }
    });
    futures::future::join_all(operations)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn apply_datacenter(
    client: &kube::Client,
    namespace: &str,
    desired: &CassandraDatacenter,
    live: Option<&CassandraDatacenter>,
) -> Result<Applied, kube::Error> {
    let api: Api<CassandraDatacenter> = Api::namespaced(client.clone(), namespace);
    let mut body = desired.clone();
    // Status belongs to cass-operator.
    body.status = None;
    body.metadata.namespace = Some(namespace.to_string());
    apply_if_changed(&api, FIELD_MANAGER, &body, live).await
}

async fn delete_datacenter(
    client: &kube::Client,
    cluster: &ClusterKey,
    namespace: &str,
    name: &str,
    annotate_first: bool,
) -> Result<(), kube::Error> {
    // Its seed slices go with it (the other datacenters' slices drop its seeds by themselves).
    let selector = format!(
        "{},{}={name}",
        ownership_selector(&cluster.name, &cluster.namespace),
        crate::api::shared::DATACENTER_NAME_LABEL
    );
    delete_labelled::<EndpointSlice>(client, Some(namespace), &selector).await?;
    let api: Api<CassandraDatacenter> = Api::namespaced(client.clone(), namespace);
    if annotate_first {
        // cass-operator decommissions the nodes (streams their data away) only when asked.
        let annotation = serde_json::json!({
            "metadata": {"annotations": {DECOMMISSION_ON_DELETE_ANNOTATION: "true"}}
        });
        api.patch(name, &PatchParams::default(), &Patch::Merge(&annotation))
            .await?;
    }
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(response)) if response.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}

/// Deletes every object of kind `K` matching `selector` (in `namespace`, or everywhere).
async fn delete_labelled<K>(
    client: &kube::Client,
    namespace: Option<&str>,
    selector: &str,
) -> Result<usize, kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let listing: Api<K> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let found = listing
        .list(&ListParams::default().labels(selector))
        .await?;
    let count = found.items.len();
    for object in found.items {
        let api: Api<K> = Api::namespaced(client.clone(), &object.namespace().unwrap_or_default());
        match api
            .delete(&object.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(response)) if response.code == 404 => {}
            Err(error) => return Err(error),
        }
    }
    Ok(count)
}

/// Writes the status with server-side apply, only when it changed.
async fn write_status(
    api: &Api<K8ssandraCluster>,
    k8c: &K8ssandraCluster,
    status: K8ssandraClusterStatus,
) -> Result<(), ReconcileError> {
    if k8c.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let write_error = |source| ReconcileError::WriteStatus {
        namespace: k8c.namespace().unwrap_or_default(),
        name: k8c.name_any(),
        source,
    };
    let body = serde_json::json!({
        "apiVersion": K8ssandraCluster::api_version(&()),
        "kind": K8ssandraCluster::kind(&()),
        "status": status,
    });
    api.patch_status(
        &k8c.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(write_error)?;
    Ok(())
}

/// Deletes every remote CassandraDatacenter labelled for this cluster, region by region. Ok
/// (the finalizer goes) only when none is left, or when the user asked to orphan them.
async fn cleanup_cluster(
    k8c: &K8ssandraCluster,
    api: &Api<K8ssandraCluster>,
    context: &ControllerContext,
) -> Result<Action, ReconcileError> {
    let namespace = k8c.namespace().unwrap_or_default();
    let name = k8c.name_any();
    if annotation_is_true(k8c, ORPHAN_ANNOTATION) {
        info!(k8ssandra_cluster = %name, namespace = %namespace, "orphan annotation: remote datacenters left in place");
        return Ok(Action::await_change());
    }
    let selector = ownership_selector(&name, &namespace);
    // Regions where a datacenter has run (per the status); an unknown context only the spec
    // names (a typo, never used) holds nothing to clean up.
    let used: BTreeSet<String> = known_contexts(k8c.status.as_ref()).into_values().collect();
    let cleanups = cluster_contexts(k8c).into_iter().map(|region| {
        let used = used.contains(&region);
        cleanup_region(context, region, used, &selector)
    });
    let pending: Vec<String> = futures::future::join_all(cleanups)
        .await
        .into_iter()
        .flatten()
        .collect();
    if pending.is_empty() {
        return Ok(Action::await_change());
    }
    let pending = pending.join("; ");
    let mut status = k8c.status.clone().unwrap_or_default();
    status.error = Some(format!("deleting: {pending}"));
    write_status(api, k8c, status).await?;
    Err(ReconcileError::CleanupPending {
        namespace,
        name,
        pending,
    })
}

/// What is still in the way of deleting the cluster in this region (empty when nothing is).
async fn cleanup_region(
    context: &ControllerContext,
    region: String,
    used: bool,
    selector: &str,
) -> Option<String> {
    let client = match context.registry.client(&region) {
        Ok(client) => client,
        Err(RegionError::UnknownContext { .. }) if !used => return None,
        Err(error) => return Some(format!("region {region:?} cannot be reached: {error}")),
    };
    if let Err(error) = delete_labelled::<EndpointSlice>(&client, None, selector).await {
        return Some(format!(
            "deleting seed EndpointSlices in region {region:?}: {error}"
        ));
    }
    let api: Api<CassandraDatacenter> = Api::all(client.clone());
    let remaining = match api.list(&ListParams::default().labels(selector)).await {
        Ok(list) => list.items,
        Err(error) => return Some(format!("listing in region {region:?}: {error}")),
    };
    if remaining.is_empty() {
        return None;
    }
    let mut names = Vec::new();
    for dc in &remaining {
        let dc_namespace = dc.namespace().unwrap_or_default();
        let dc_name = dc.name_any();
        if dc.metadata.deletion_timestamp.is_none() {
            let namespaced: Api<CassandraDatacenter> =
                Api::namespaced(client.clone(), &dc_namespace);
            if let Err(error) = namespaced.delete(&dc_name, &DeleteParams::default()).await {
                warn!(region = %region, datacenter = %dc_name, error = %error, "deleting a remote CassandraDatacenter");
            }
        }
        names.push(format!("{dc_namespace}/{dc_name}"));
    }
    Some(format!(
        "region {region:?} still has CassandraDatacenter {}",
        names.join(", ")
    ))
}
