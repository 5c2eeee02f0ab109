//! The Stargate and Reaper controllers: the I/O around [`super::stargate`] and
//! [`super::reaper`]. They act only on the cluster they run in, in both modes.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt as _, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Error as ControllerError};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use super::rollout::Rollout;
use super::{CREATED_BY_LABEL, reaper, stargate, vector_agent};
use crate::api::cassdc::CassandraDatacenter;
use crate::api::reaper::Reaper;
use crate::api::stargate::{Stargate, StargateProgress};
use crate::apply::apply_if_changed;
use crate::cache::scoped;
use crate::events::{Events, Notice};
use crate::settings::{ImageSettings, Settings};
use crate::workload::generated::config_map_hash;

pub const STARGATE_FIELD_MANAGER: &str = "federator-stargate";
pub const REAPER_FIELD_MANAGER: &str = "federator-reaper";

/// Re-look while something is on its way (a datacenter becoming Ready, pods starting).
const PROGRESSING_REQUEUE: Duration = Duration::from_secs(5);
/// Re-look at a running component now and then; changes of its Deployments trigger sooner.
const STEADY_REQUEUE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("{kind} {name} has no namespace")]
    MissingNamespace { kind: &'static str, name: String },
    #[error("{kind} {namespace}/{name}: {message}")]
    Config {
        kind: &'static str,
        namespace: String,
        name: String,
        message: String,
    },
    #[error("{action} for {kind} {namespace}/{name}: {source}")]
    Api {
        action: String,
        kind: &'static str,
        namespace: String,
        name: String,
        source: kube::Error,
    },
}

/// What both controllers need.
pub struct ComponentContext {
    pub client: kube::Client,
    pub images: ImageSettings,
    pub stargate_events: Events,
    pub reaper_events: Events,
}

/// The Stargate and Reaper controllers on `client`'s cluster, by name, each running until
/// `shutdown` resolves.
pub fn controllers<S>(
    client: kube::Client,
    settings: &Settings,
    shutdown: S,
) -> [(&'static str, BoxFuture<'static, ()>); 2]
where
    S: Future<Output = ()> + Clone + Send + Sync + 'static,
{
    let context = Arc::new(ComponentContext {
        client: client.clone(),
        images: settings.images.clone(),
        stargate_events: Events::new(client.clone(), STARGATE_FIELD_MANAGER),
        reaper_events: Events::new(client.clone(), REAPER_FIELD_MANAGER),
    });
    [
        (
            STARGATES.name,
            run_component(
                STARGATES,
                reconcile_stargate,
                stargate::datacenter_of,
                Some(stargate::referenced_config_maps),
                Arc::clone(&context),
                settings.watch_namespaces.clone(),
                shutdown.clone(),
            )
            .boxed(),
        ),
        (
            REAPERS.name,
            run_component(
                REAPERS,
                reconcile_reaper,
                reaper::datacenter_of,
                None,
                context,
                settings.watch_namespaces.clone(),
                shutdown,
            )
            .boxed(),
        ),
    ]
}

fn children_of(controller: &str) -> watcher::Config {
    watcher::Config::default().labels(&format!("{CREATED_BY_LABEL}={controller}"))
}

/// What tells the Stargate and Reaper controllers apart.
struct Component {
    /// The kind, in logs.
    kind: &'static str,
    /// The controller's name in metrics and health.
    name: &'static str,
    /// The label value marking the Deployments and Services it creates.
    created_by: &'static str,
}

const STARGATES: Component = Component {
    kind: "Stargate",
    name: "stargate",
    created_by: "stargate-controller",
};

const REAPERS: Component = Component {
    kind: "Reaper",
    name: "reaper",
    created_by: "reaper-controller",
};

/// Runs the controller of `K` (Stargate or Reaper), owning its Deployments and Services, until
/// `shutdown`. An object is re-queued when the spec or the readiness of the datacenter it
/// `follows` changes; with `reads_config_maps`, when a ConfigMap it names changes (only the
/// ConfigMaps' metadata is watched).
async fn run_component<K, F, Fut>(
    component: Component,
    reconcile: F,
    follows: fn(&K) -> Option<ObjectRef<CassandraDatacenter>>,
    reads_config_maps: Option<fn(&K) -> BTreeSet<String>>,
    context: Arc<ComponentContext>,
    watch_namespaces: Vec<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) where
    K: crate::cache::Watched + Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    F: FnMut(Arc<K>, Arc<ComponentContext>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Action, ComponentError>> + Send + 'static,
{
    let Component {
        kind,
        name,
        created_by,
    } = component;
    let client = context.client.clone();
    let backoff = crate::ops::RetryBackoff::default();
    info!("{kind} controller started");
    let controller = Controller::new(
        scoped::<K>(&client, &watch_namespaces),
        watcher::Config::default(),
    );
    crate::ops::health().track_cache(name, controller.store());
    let datacenter_changes = watcher(
        scoped::<CassandraDatacenter>(&client, &watch_namespaces),
        watcher::Config::default(),
    )
    .default_backoff()
    .applied_objects()
    // The controller pauses all its watches after an error in any of them, its own included:
    // a cluster without cass-operator's CRD (a hub that runs no datacenter) would keep the
    // Stargate and Reaper caches from ever syncing. This watch backs off on its own instead.
    .filter_map(move |event| {
        futures::future::ready(match event {
            Ok(datacenter) => Some(Ok(datacenter)),
            Err(error) => {
                debug!(kind, error = %error, "CassandraDatacenter watch");
                None
            }
        })
    })
    .predicate_filter(spec_or_readiness, Default::default());
    let store = controller.store();
    let controller = controller.watches_stream(datacenter_changes, move |dc| {
        let dc = ObjectRef::from_obj(&dc);
        cached_where(&store, |object| follows(object).as_ref() == Some(&dc))
    });
    let controller = match reads_config_maps {
        Some(names) => {
            let store = controller.store();
            controller.watches(
                scoped::<PartialObjectMeta<ConfigMap>>(&client, &watch_namespaces),
                watcher::Config::default(),
                move |config_map| {
                    let namespace = config_map.namespace();
                    let config_map = config_map.name_any();
                    cached_where(&store, |object| {
                        object.namespace() == namespace && names(object).contains(&config_map)
                    })
                },
            )
        }
        None => controller,
    };
    controller
        .owns(
            scoped::<Deployment>(&client, &watch_namespaces),
            children_of(created_by),
        )
        .owns(
            scoped::<Service>(&client, &watch_namespaces),
            children_of(created_by),
        )
        .graceful_shutdown_on(shutdown)
        .run(
            crate::ops::instrument(name, |_: &K| String::new(), &backoff, reconcile),
            backoff.error_policy(),
            context,
        )
        .for_each(|result| log_result(kind, result))
        .await;
    info!("{kind} controller stopped");
}

/// The cached objects `matches` picks, to re-queue.
fn cached_where<K>(store: &Store<K>, matches: impl Fn(&K) -> bool) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone,
{
    (store.state().into_iter())
        .filter(|object| matches(object))
        .map(|object| ObjectRef::from_obj(&*object))
        .collect()
}

/// What of a datacenter its Stargate and Reaper act on: its spec and whether it is Ready. Its
/// status changes often otherwise (cass-operator's progress, node states).
fn spec_or_readiness(dc: &CassandraDatacenter) -> Option<u64> {
    let mut hasher = std::hash::DefaultHasher::new();
    (dc.metadata.generation, dc.is_ready()).hash(&mut hasher);
    Some(hasher.finish())
}

fn log_result<K: Resource>(
    kind: &'static str,
    result: Result<
        (kube::runtime::reflector::ObjectRef<K>, Action),
        ControllerError<ComponentError, watcher::Error>,
    >,
) -> futures::future::Ready<()> {
    match result {
        Ok((object, _)) => debug!(kind, object = %object, "reconciled"),
        Err(ControllerError::ObjectNotFound(_)) => {}
        Err(ControllerError::ReconcilerFailed(error, object)) => {
            warn!(kind, object = %object, error = %error, "reconcile failed; retrying");
        }
        Err(error) => warn!(kind, error = %error, "controller"),
    }
    futures::future::ready(())
}

fn api_error(
    action: impl Into<String>,
    kind: &'static str,
    namespace: &str,
    name: &str,
) -> impl FnOnce(kube::Error) -> ComponentError {
    let action = action.into();
    let namespace = namespace.to_string();
    let name = name.to_string();
    move |source| ComponentError::Api {
        action,
        kind,
        namespace,
        name,
        source,
    }
}

/// Applies `desired` children (found among `live` by name) and deletes live children of this
/// owner that are no longer desired.
async fn converge_children<K>(
    api: &Api<K>,
    field_manager: &str,
    owner_uid: &str,
    desired: &[K],
    live: &[K],
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    for object in desired {
        let current = live.iter().find(|l| l.name_any() == object.name_any());
        apply_if_changed(api, field_manager, object, current).await?;
    }
    for object in live {
        let owned = object
            .owner_references()
            .iter()
            .any(|o| o.uid == owner_uid && o.controller == Some(true));
        let wanted = desired.iter().any(|d| d.name_any() == object.name_any());
        if owned && !wanted {
            match api
                .delete(&object.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(response)) if response.is_not_found() => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(())
}

/// Writes `status` with server-side apply as `field_manager`.
async fn write_status<K>(
    api: &Api<K>,
    field_manager: &str,
    name: &str,
    status: serde_json::Value,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(field_manager).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

/// Tells the people looking at a component what happened: a failure, or a new progress.
async fn announce<K: Resource<DynamicType = ()>>(
    events: &Events,
    object: &K,
    result: &Result<Action, ComponentError>,
    progress: (Option<String>, Option<String>),
) {
    match result {
        Err(error) => {
            let notice = Notice::warning("ReconcileFailed", "Reconcile", error.to_string());
            events.publish(object, &notice).await;
        }
        Ok(_) if progress.0 != progress.1 => {
            if let Some(now) = progress.1 {
                let notice = Notice::normal(&now, "Reconcile", format!("progress is now {now}"));
                events.publish(object, &notice).await;
            }
        }
        Ok(_) => {}
    }
}

async fn reconcile_stargate(
    object: Arc<Stargate>,
    context: Arc<ComponentContext>,
) -> Result<Action, ComponentError> {
    let (result, progress) = reconcile_stargate_once(&object, &context).await;
    let before = object
        .status
        .as_ref()
        .and_then(|s| s.progress)
        .map(|p| format!("{p:?}"));
    announce(
        &context.stargate_events,
        object.as_ref(),
        &result,
        (before, progress),
    )
    .await;
    result
}

async fn reconcile_reaper(
    object: Arc<Reaper>,
    context: Arc<ComponentContext>,
) -> Result<Action, ComponentError> {
    let (result, progress) = reconcile_reaper_once(&object, &context).await;
    let before = object
        .status
        .as_ref()
        .and_then(|s| s.progress)
        .map(|p| format!("{p:?}"));
    announce(
        &context.reaper_events,
        object.as_ref(),
        &result,
        (before, progress),
    )
    .await;
    result
}

/// One reconcile, and the progress it wrote (None when it failed before).
async fn reconcile_stargate_once(
    object: &Stargate,
    context: &ComponentContext,
) -> (Result<Action, ComponentError>, Option<String>) {
    let mut progress = None;
    let result = reconcile_stargate_steps(object, context, &mut progress).await;
    (result, progress)
}

async fn reconcile_reaper_once(
    object: &Reaper,
    context: &ComponentContext,
) -> (Result<Action, ComponentError>, Option<String>) {
    let mut progress = None;
    let result = reconcile_reaper_steps(object, context, &mut progress).await;
    (result, progress)
}

async fn reconcile_stargate_steps(
    object: &Stargate,
    context: &ComponentContext,
    progress: &mut Option<String>,
) -> Result<Action, ComponentError> {
    const KIND: &str = "Stargate";
    let name = object.name_any();
    let namespace = object
        .namespace()
        .ok_or_else(|| ComponentError::MissingNamespace {
            kind: KIND,
            name: name.clone(),
        })?;
    if object.metadata.deletion_timestamp.is_some() {
        // The garbage collector removes the children with their owner.
        return Ok(Action::await_change());
    }
    let client = &context.client;
    let stargates: Api<Stargate> = Api::namespaced(client.clone(), &namespace);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let datacenter = find_datacenter(client, stargate::datacenter_of(object), KIND, &name).await?;
    let deployed_before = object
        .status
        .as_ref()
        .and_then(|s| s.progress)
        .is_some_and(|p| p != StargateProgress::Pending);
    let now = Time(Timestamp::now());
    let status = match datacenter.map_err(Waiting::from) {
        Err(waiting) => stargate::status(object, Err(&waiting.into_stargate()), now),
        Ok(dc) if !dc.is_ready() && !deployed_before => stargate::status(
            object,
            Err(&stargate::Waiting::DatacenterNotReady(dc.name_any())),
            now,
        ),
        Ok(dc) => {
            let config = stargate_config(client, object, &dc, &namespace).await?;
            let vector = stargate::vector_config(object, &dc);
            let vector_on = apply_vector_config(
                client,
                vector,
                STARGATE_FIELD_MANAGER,
                (KIND, &namespace, &name),
            )
            .await?;
            let desired = stargate::deployments(
                object,
                &dc,
                &context.images,
                config.generated.as_deref(),
                &config.hashes,
            );
            let selector = format!("{}={name}", crate::workload::labels::STARGATE_LABEL);
            let live = deployments
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(api_error("listing Deployments", KIND, &namespace, &name))?
                .items;
            let uid = object.uid().unwrap_or_default();
            converge_children(&deployments, STARGATE_FIELD_MANAGER, &uid, &desired, &live)
                .await
                .map_err(api_error("applying Deployments", KIND, &namespace, &name))?;
            if !vector_on && vector_agent::STARGATE.mounted_in(&live) {
                let config = vector_agent::STARGATE.config_map_name(&dc);
                delete_owned_config_map(client, &namespace, &config, &uid, (KIND, &name)).await?;
            }
            let service = stargate::service(object, &dc);
            let live_service = services
                .get_opt(&service.name_any())
                .await
                .map_err(api_error("reading the Service", KIND, &namespace, &name))?;
            apply_if_changed(
                &services,
                STARGATE_FIELD_MANAGER,
                &service,
                live_service.as_ref(),
            )
            .await
            .map_err(api_error("applying the Service", KIND, &namespace, &name))?;
            let current: Vec<&Deployment> = desired
                .iter()
                .map(|d| {
                    live.iter()
                        .find(|l| l.name_any() == d.name_any())
                        .unwrap_or(d)
                })
                .collect();
            let names: Vec<String> = desired.iter().map(ResourceExt::name_any).collect();
            let service_name = service.name_any();
            stargate::status(
                object,
                Ok((&names, Some(service_name.as_str()), Rollout::of(&current))),
                now,
            )
        }
    };
    let running = status.is_ready();
    *progress = status.progress.map(|p| format!("{p:?}"));
    if object.status.as_ref() != Some(&status) {
        let value = serde_json::to_value(&status).map_err(|e| ComponentError::Api {
            action: "encoding the status".into(),
            kind: KIND,
            namespace: namespace.clone(),
            name: name.clone(),
            source: kube::Error::SerdeError(e),
        })?;
        write_status(&stargates, STARGATE_FIELD_MANAGER, &name, value)
            .await
            .map_err(api_error("writing the status", KIND, &namespace, &name))?;
    }
    Ok(Action::requeue(if running {
        STEADY_REQUEUE
    } else {
        PROGRESSING_REQUEUE
    }))
}

/// What Stargate's nodes read: the generated ConfigMap, if any, and the content hash of every
/// ConfigMap a rack mounts.
struct StargateConfig {
    generated: Option<String>,
    hashes: BTreeMap<String, String>,
}

/// Applies the ConfigMap of settings Stargate shares with its datacenter, if it needs one
/// ([`stargate::generated_config`]); reads the `cassandraConfigMapRef` ConfigMaps the racks
/// mount otherwise.
async fn stargate_config(
    client: &kube::Client,
    object: &Stargate,
    dc: &CassandraDatacenter,
    namespace: &str,
) -> Result<StargateConfig, ComponentError> {
    const KIND: &str = "Stargate";
    let name = object.name_any();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let read = |reference: &str| {
        let config_maps = config_maps.clone();
        let (reference, name) = (reference.to_string(), name.clone());
        async move {
            config_maps
                .get_opt(&reference)
                .await
                .map_err(api_error(
                    "reading its cassandraConfigMapRef",
                    KIND,
                    namespace,
                    &name,
                ))?
                .ok_or_else(|| ComponentError::Config {
                    kind: KIND,
                    namespace: namespace.to_string(),
                    name: name.clone(),
                    message: format!(
                        "ConfigMap {reference} named by cassandraConfigMapRef does not exist in its namespace"
                    ),
                })
        }
    };
    let user = match &object.spec.template.cassandra_config_map_ref {
        Some(reference) => Some(read(&reference.name).await?),
        None => None,
    };
    let generated = stargate::generated_config(object, dc, user.as_ref()).map_err(|error| {
        ComponentError::Config {
            kind: KIND,
            namespace: namespace.to_string(),
            name: name.clone(),
            message: error.to_string(),
        }
    })?;
    let mut hashes = BTreeMap::new();
    if let Some(generated) = generated {
        apply_config_map(client, &generated, STARGATE_FIELD_MANAGER, (KIND, &name)).await?;
        hashes.insert(generated.name_any(), config_map_hash(&generated));
        return Ok(StargateConfig {
            generated: Some(generated.name_any()),
            hashes,
        });
    }
    if let Some(user) = user {
        hashes.insert(user.name_any(), config_map_hash(&user));
    }
    for reference in stargate::referenced_config_maps(object) {
        if let std::collections::btree_map::Entry::Vacant(slot) = hashes.entry(reference) {
            let found = read(slot.key()).await?;
            slot.insert(config_map_hash(&found));
        }
    }
    Ok(StargateConfig {
        generated: None,
        hashes,
    })
}

/// Applies a component's Vector agent configuration, if it has one (then true); a bad setting
/// is the component's configuration error.
async fn apply_vector_config(
    client: &kube::Client,
    config: Result<Option<ConfigMap>, crate::workload::vector::VectorError>,
    field_manager: &str,
    (kind, namespace, name): (&'static str, &str, &str),
) -> Result<bool, ComponentError> {
    let config = config.map_err(|error| ComponentError::Config {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
        message: error.to_string(),
    })?;
    match config {
        Some(config) => apply_config_map(client, &config, field_manager, (kind, name))
            .await
            .map(|()| true),
        None => Ok(false),
    }
}

/// Deletes ConfigMap `config` if the component (`owner_uid`) owns it: the agent that read it
/// was just taken out of its pods.
async fn delete_owned_config_map(
    client: &kube::Client,
    namespace: &str,
    config: &str,
    owner_uid: &str,
    (kind, owner): (&'static str, &str),
) -> Result<(), ComponentError> {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let found = config_maps.get_opt(config).await.map_err(api_error(
        "reading its Vector ConfigMap",
        kind,
        namespace,
        owner,
    ))?;
    if found.is_some_and(|c| c.owner_references().iter().any(|o| o.uid == owner_uid)) {
        match config_maps.delete(config, &Default::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(response)) if response.is_not_found() => {}
            Err(error) => {
                return Err(api_error(
                    "deleting its Vector ConfigMap",
                    kind,
                    namespace,
                    owner,
                )(error));
            }
        }
    }
    Ok(())
}

/// Applies a ConfigMap a component owns (in the component's namespace) unless it is up to date.
async fn apply_config_map(
    client: &kube::Client,
    config: &ConfigMap,
    field_manager: &str,
    (kind, owner): (&'static str, &str),
) -> Result<(), ComponentError> {
    let namespace = config.namespace().unwrap_or_default();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let live = config_maps
        .get_opt(&config.name_any())
        .await
        .map_err(api_error("reading its ConfigMap", kind, &namespace, owner))?;
    apply_if_changed(&config_maps, field_manager, config, live.as_ref())
        .await
        .map_err(api_error("applying its ConfigMap", kind, &namespace, owner))?;
    Ok(())
}

/// Why a component's datacenter cannot be used.
enum Waiting {
    NoRef,
    NotFound(String),
}

impl Waiting {
    fn into_stargate(self) -> stargate::Waiting {
        match self {
            Waiting::NoRef => stargate::Waiting::NoDatacenterRef,
            Waiting::NotFound(name) => stargate::Waiting::DatacenterNotFound(name),
        }
    }

    fn describe(&self) -> String {
        match self {
            Waiting::NoRef => "spec.datacenterRef.name is empty".into(),
            Waiting::NotFound(name) => format!("CassandraDatacenter {name} does not exist"),
        }
    }
}

impl From<Option<String>> for Waiting {
    fn from(missing: Option<String>) -> Self {
        match missing {
            Some(name) => Waiting::NotFound(name),
            None => Waiting::NoRef,
        }
    }
}

/// The CassandraDatacenter `name` in `namespace`; Err(Some(name)) when it does not exist,
/// Err(None) when no name is given.
async fn find_datacenter(
    client: &kube::Client,
    datacenter: Option<ObjectRef<CassandraDatacenter>>,
    kind: &'static str,
    owner: &str,
) -> Result<Result<CassandraDatacenter, Option<String>>, ComponentError> {
    let Some(datacenter) = datacenter.filter(|dc| !dc.name.is_empty()) else {
        return Ok(Err(None));
    };
    let (name, namespace) = (
        &datacenter.name,
        datacenter.namespace.as_deref().unwrap_or_default(),
    );
    let api: Api<CassandraDatacenter> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(Some(dc)) => Ok(Ok(dc)),
        Ok(None) => Ok(Err(Some(name.to_string()))),
        // No CassandraDatacenter CRD in this cluster: nothing to serve yet.
        Err(kube::Error::Api(response)) if response.is_not_found() => {
            Ok(Err(Some(name.to_string())))
        }
        Err(error) => Err(api_error(
            "reading the CassandraDatacenter",
            kind,
            namespace,
            owner,
        )(error)),
    }
}

async fn reconcile_reaper_steps(
    object: &Reaper,
    context: &ComponentContext,
    progress: &mut Option<String>,
) -> Result<Action, ComponentError> {
    const KIND: &str = "Reaper";
    let name = object.name_any();
    let namespace = object
        .namespace()
        .ok_or_else(|| ComponentError::MissingNamespace {
            kind: KIND,
            name: name.clone(),
        })?;
    if object.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let client = &context.client;
    let reapers: Api<Reaper> = Api::namespaced(client.clone(), &namespace);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let datacenter = find_datacenter(client, reaper::datacenter_of(object), KIND, &name).await?;
    let deployed_before = object
        .status
        .as_ref()
        .and_then(|s| s.progress)
        .is_some_and(|p| p != crate::api::reaper::ReaperProgress::Pending);
    let now = Time(Timestamp::now());
    let status = match datacenter.map_err(Waiting::from) {
        Err(waiting) => reaper::status(object, Err(waiting.describe()), now),
        Ok(dc) if !dc.is_ready() && !deployed_before => reaper::status(
            object,
            Err(format!(
                "waiting for CassandraDatacenter {} to be Ready",
                dc.name_any()
            )),
            now,
        ),
        Ok(dc) => {
            let vector = reaper::vector_config(object, &dc);
            let vector_on = apply_vector_config(
                client,
                vector,
                REAPER_FIELD_MANAGER,
                (KIND, &namespace, &name),
            )
            .await?;
            let desired = reaper::deployment(object, &dc, &context.images);
            let live = deployments
                .get_opt(&desired.name_any())
                .await
                .map_err(api_error("reading the Deployment", KIND, &namespace, &name))?;
            apply_if_changed(&deployments, REAPER_FIELD_MANAGER, &desired, live.as_ref())
                .await
                .map_err(api_error(
                    "applying the Deployment",
                    KIND,
                    &namespace,
                    &name,
                ))?;
            if !vector_on && vector_agent::REAPER.mounted_in(live.iter()) {
                let config = vector_agent::REAPER.config_map_name(&dc);
                let uid = object.uid().unwrap_or_default();
                delete_owned_config_map(client, &namespace, &config, &uid, (KIND, &name)).await?;
            }
            let service = reaper::service(object);
            let live_service = services
                .get_opt(&service.name_any())
                .await
                .map_err(api_error("reading the Service", KIND, &namespace, &name))?;
            apply_if_changed(
                &services,
                REAPER_FIELD_MANAGER,
                &service,
                live_service.as_ref(),
            )
            .await
            .map_err(api_error("applying the Service", KIND, &namespace, &name))?;
            let current = live.as_ref().unwrap_or(&desired);
            reaper::status(object, Ok(Rollout::of(&[current])), now)
        }
    };
    let running = status.is_ready();
    *progress = status.progress.map(|p| format!("{p:?}"));
    if object.status.as_ref() != Some(&status) {
        let value = serde_json::to_value(&status).map_err(|e| ComponentError::Api {
            action: "encoding the status".into(),
            kind: KIND,
            namespace: namespace.clone(),
            name: name.clone(),
            source: kube::Error::SerdeError(e),
        })?;
        write_status(&reapers, REAPER_FIELD_MANAGER, &name, value)
            .await
            .map_err(api_error("writing the status", KIND, &namespace, &name))?;
    }
    Ok(Action::requeue(if running {
        STEADY_REQUEUE
    } else {
        PROGRESSING_REQUEUE
    }))
}
