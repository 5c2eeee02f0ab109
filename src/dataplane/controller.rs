//! The Stargate and Reaper controllers: the I/O around [`super::stargate`] and
//! [`super::reaper`]. They act only on the cluster they run in, in both modes.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt as _, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
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

use crate::api::medusa::{
    CassandraBackup, CassandraRestore, MedusaBackupJob, MedusaBackupSchedule, MedusaRestoreJob,
    MedusaTask,
};

use super::rollout::Rollout;
use super::{CREATED_BY_LABEL, Waiting, monitor, reaper, stargate, vector_agent};
use crate::api::cassdc::CassandraDatacenter;
use crate::api::reaper::{Reaper, RepairScheduleSummary};
use crate::api::stargate::{Stargate, StargateProgress};
use crate::apply::apply_if_changed;
use crate::cache::scoped;
use crate::cassandra::reaper::{ReaperApi, ReaperApiError, ReaperEndpoint, read_login};
use crate::events::{Events, Notice};
use crate::settings::{ImageSettings, Settings};
use crate::workload::generated::config_map_hash;
use crate::workload::service_monitor::ServiceMonitor;
use crate::workload::vector::VectorError;

pub const STARGATE_FIELD_MANAGER: &str = "federator-stargate";
pub const REAPER_FIELD_MANAGER: &str = "federator-reaper";

/// Re-look while something is on its way (a datacenter becoming Ready, pods starting).
const PROGRESSING_REQUEUE: Duration = Duration::from_secs(5);
/// Re-look at a running component now and then; changes of its Deployments trigger sooner.
const STEADY_REQUEUE: Duration = Duration::from_secs(300);
/// Re-look at a running Reaper without a datacenter: the clusters registered with it change
/// without an event here.
const CONTROL_PLANE_REAPER_REQUEUE: Duration = Duration::from_secs(30);

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

impl crate::ops::ErrorLabel for ComponentError {
    const KINDS: &'static [&'static str] = &["missing_namespace", "config", "api"];
    fn metric_label(&self) -> &'static str {
        match self {
            ComponentError::MissingNamespace { .. } => "missing_namespace",
            ComponentError::Config { .. } => "config",
            ComponentError::Api { .. } => "api",
        }
    }
}

/// What both controllers need.
pub struct ComponentContext {
    pub client: kube::Client,
    pub images: ImageSettings,
    pub stargate_events: Events,
    pub reaper_events: Events,
    pub ops: crate::ops::Ops,
}

/// The Stargate, Reaper, MedusaBackupJob, MedusaRestoreJob, CassandraBackup, CassandraRestore,
/// MedusaConfiguration, MedusaBackupSchedule and MedusaTask controllers on `client`'s cluster,
/// by name, each running until `shutdown` resolves.
pub fn controllers<S>(
    client: kube::Client,
    settings: &Settings,
    ops: crate::ops::Ops,
    shutdown: S,
) -> [(&'static str, BoxFuture<'static, ()>); 9]
where
    S: Future<Output = ()> + Clone + Send + Sync + 'static,
{
    let medusa = Arc::new(super::medusa_backup::MedusaBackupContext {
        client: client.clone(),
        events: Events::new(client.clone(), super::medusa_backup::FIELD_MANAGER),
        medusa: crate::cassandra::medusa::MedusaClient {
            timeout: crate::cassandra::medusa::DEFAULT_CALL_TIMEOUT,
        },
        unanswered_limit: super::medusa_backup::DEFAULT_UNANSWERED_LIMIT,
        ops: ops.clone(),
        reasons: Default::default(),
    });
    let restore = Arc::new(super::medusa_restore::MedusaRestoreContext {
        client: client.clone(),
        events: Events::new(client.clone(), super::medusa_restore::FIELD_MANAGER),
        medusa: crate::cassandra::medusa::MedusaClient {
            timeout: crate::cassandra::medusa::DEFAULT_CALL_TIMEOUT,
        },
        restore_limit: super::medusa_restore::DEFAULT_RESTORE_LIMIT,
        ops: ops.clone(),
    });
    let book_backup = Arc::new(super::cassandra_backup::BookContext {
        client: client.clone(),
        events: Events::new(client.clone(), super::cassandra_backup::FIELD_MANAGER),
        ops: ops.clone(),
    });
    let book_restore = Arc::new(super::cassandra_backup::BookContext {
        client: client.clone(),
        events: Events::new(client.clone(), super::cassandra_restore::FIELD_MANAGER),
        ops: ops.clone(),
    });
    let configuration = Arc::new(super::medusa_configuration::ConfigurationContext {
        client: client.clone(),
        // The data plane reads Secrets by name only (its RBAC): no Secret watch there.
        watch_secrets: settings.mode == crate::settings::Mode::ControlPlane,
        events: Events::new(client.clone(), super::medusa_configuration::FIELD_MANAGER),
        ops: ops.clone(),
    });
    let schedule = Arc::new(super::medusa_schedule::MedusaScheduleContext {
        client: client.clone(),
        events: Events::new(client.clone(), super::medusa_schedule::FIELD_MANAGER),
        ops: ops.clone(),
    });
    let task = Arc::new(super::medusa_task::MedusaTaskContext {
        client: client.clone(),
        events: Events::new(client.clone(), super::medusa_task::FIELD_MANAGER),
        medusa: crate::cassandra::medusa::MedusaClient {
            timeout: crate::cassandra::medusa::DEFAULT_CALL_TIMEOUT,
        },
        ops: ops.clone(),
    });
    let context = Arc::new(ComponentContext {
        client: client.clone(),
        images: settings.images.clone(),
        stargate_events: Events::new(client.clone(), STARGATE_FIELD_MANAGER),
        reaper_events: Events::new(client.clone(), REAPER_FIELD_MANAGER),
        ops,
    });
    [
        (
            Stargate::CONTROLLER,
            run_component::<Stargate>(
                Arc::clone(&context),
                settings.watch_namespaces.clone(),
                shutdown.clone(),
            )
            .boxed(),
        ),
        (
            Reaper::CONTROLLER,
            run_component::<Reaper>(context, settings.watch_namespaces.clone(), shutdown.clone())
                .boxed(),
        ),
        (
            super::medusa_backup::CONTROLLER,
            super::job_controller::run::<MedusaBackupJob, _, _, _, _>(
                super::medusa_backup::CONTROLLER,
                "MedusaBackupJob",
                client.clone(),
                medusa,
                settings.watch_namespaces.clone(),
                shutdown.clone(),
                super::medusa_backup::reconcile,
            )
            .boxed(),
        ),
        (
            super::medusa_restore::CONTROLLER,
            super::job_controller::run::<MedusaRestoreJob, _, _, _, _>(
                super::medusa_restore::CONTROLLER,
                "MedusaRestoreJob",
                client.clone(),
                restore,
                settings.watch_namespaces.clone(),
                shutdown.clone(),
                super::medusa_restore::reconcile,
            )
            .boxed(),
        ),
        (
            super::cassandra_backup::CONTROLLER,
            super::job_controller::run::<CassandraBackup, _, _, _, _>(
                super::cassandra_backup::CONTROLLER,
                "CassandraBackup",
                client.clone(),
                book_backup,
                settings.watch_namespaces.clone(),
                shutdown.clone(),
                super::cassandra_backup::reconcile,
            )
            .boxed(),
        ),
        (
            super::cassandra_restore::CONTROLLER,
            super::job_controller::run::<CassandraRestore, _, _, _, _>(
                super::cassandra_restore::CONTROLLER,
                "CassandraRestore",
                client.clone(),
                book_restore,
                settings.watch_namespaces.clone(),
                shutdown.clone(),
                super::cassandra_restore::reconcile,
            )
            .boxed(),
        ),
        (
            super::medusa_configuration::CONTROLLER,
            super::medusa_configuration::run(
                configuration,
                settings.watch_namespaces.clone(),
                shutdown.clone(),
            )
            .boxed(),
        ),
        (
            super::medusa_schedule::CONTROLLER,
            super::job_controller::run::<MedusaBackupSchedule, _, _, _, _>(
                super::medusa_schedule::CONTROLLER,
                "MedusaBackupSchedule",
                client.clone(),
                schedule,
                settings.watch_namespaces.clone(),
                shutdown.clone(),
                super::medusa_schedule::reconcile,
            )
            .boxed(),
        ),
        (
            super::medusa_task::CONTROLLER,
            super::job_controller::run::<MedusaTask, _, _, _, _>(
                super::medusa_task::CONTROLLER,
                "MedusaTask",
                client.clone(),
                task,
                settings.watch_namespaces.clone(),
                shutdown,
                super::medusa_task::reconcile,
            )
            .boxed(),
        ),
    ]
}

fn children_of(controller: &str) -> watcher::Config {
    watcher::Config::default().labels(&format!("{CREATED_BY_LABEL}={controller}"))
}

/// Runs the controller of `K` (Stargate or Reaper), owning its Deployments (and StatefulSets,
/// [`Workload::STATEFUL_SETS`]) and Services, until `shutdown`. An object is re-queued when the
/// spec or the readiness of the datacenter it follows changes, and when a ConfigMap it names
/// changes (only the ConfigMaps' metadata is watched).
async fn run_component<K>(
    context: Arc<ComponentContext>,
    watch_namespaces: Vec<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) where
    K: Workload,
{
    let (kind, name, created_by) = (K::KIND, K::CONTROLLER, K::CREATED_BY);
    let client = context.client.clone();
    let backoff = crate::ops::RetryBackoff::default();
    info!("{kind} controller started");
    let controller = Controller::new(
        scoped::<K>(&client, &watch_namespaces),
        watcher::Config::default(),
    );
    context.ops.health.track_cache(name, controller.store());
    let metrics = Arc::clone(&context.ops.metrics);
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
        cached_where(&store, |object| object.datacenter().as_ref() == Some(&dc))
    });
    let controller = match K::REFERENCED_CONFIG_MAPS {
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
    let controller = if K::STATEFUL_SETS {
        controller.owns(
            scoped::<StatefulSet>(&client, &watch_namespaces),
            children_of(created_by),
        )
    } else {
        controller
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
            crate::ops::instrument(
                name,
                |_: &K| String::new(),
                &backoff,
                &metrics,
                reconcile::<K>,
            ),
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

/// Each built child as it is live, or as built while it is not.
fn as_live<'a, W: Resource>(built: &'a [W], live: &'a [W]) -> Vec<&'a W> {
    (built.iter())
        .map(|b| live.iter().find(|l| l.meta().name == b.meta().name).unwrap_or(b))
        .collect()
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
            match api.delete(&object.name_any(), &DeleteParams::background()).await {
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

/// A kind the data-plane pipeline deploys beside a CassandraDatacenter: its builders (pure, in
/// [`super::stargate`] and [`super::reaper`]) and what it reads before building.
pub(crate) trait Workload:
    crate::cache::Watched + Resource<Scope = k8s_openapi::NamespaceResourceScope>
{
    const KIND: &'static str;
    /// The controller's name in metrics and health.
    const CONTROLLER: &'static str;
    /// The `app.kubernetes.io/created-by` value of the Deployments and Services it creates.
    const CREATED_BY: &'static str;
    /// The ConfigMaps an object names, when a change of theirs must re-queue it.
    const REFERENCED_CONFIG_MAPS: Option<fn(&Self) -> BTreeSet<String>>;
    const FIELD_MANAGER: &'static str;
    /// Whether it may run as StatefulSets (then watched, listed and pruned like its Deployments).
    const STATEFUL_SETS: bool;
    /// Its Vector agent.
    const AGENT: vector_agent::Agent;
    type Status: PartialEq + Serialize + Send + Sync;

    fn events(context: &ComponentContext) -> &Events;
    fn datacenter(&self) -> Option<ObjectRef<CassandraDatacenter>>;
    fn current_status(&self) -> Option<&Self::Status>;
    /// Deployed before: its datacenter no longer being Ready does not take it back to waiting.
    fn deployed_before(&self) -> bool;
    fn waiting(&self, waiting: &Waiting, now: Time) -> Self::Status;
    fn vector_config(&self, dc: &CassandraDatacenter) -> Result<Option<ConfigMap>, VectorError>;
    /// Its ServiceMonitor when it is hand-made and its own telemetry asks for Prometheus.
    fn service_monitor(&self, dc: &CassandraDatacenter) -> Option<ServiceMonitor>;
    /// Reads (and applies) what its Deployments mount, then builds them and its Service.
    fn build(
        &self,
        context: &ComponentContext,
        dc: &CassandraDatacenter,
        namespace: &str,
    ) -> impl Future<Output = Result<Built, ComponentError>> + Send;
    /// The label selector of its live Deployments and StatefulSets.
    fn deployments_selector(&self) -> String;
    /// Its status once applied; what it must be told when its replicas are ready (Reaper: the
    /// cluster to repair) is told here.
    fn deployed(
        &self,
        context: &ComponentContext,
        dc: &CassandraDatacenter,
        built: &Built,
        rollout: Rollout,
        now: Time,
    ) -> impl Future<Output = Self::Status> + Send;
    fn is_ready(status: &Self::Status) -> bool;
    fn progress(status: &Self::Status) -> Option<String>;
    /// For an object that names no datacenter: `Ok(true)` when it is deployed without one (a
    /// Reaper without `datacenterRef`), `Ok(false)` when it waits for one, `Err(status)` when its
    /// spec cannot run so.
    fn without_datacenter(&self, _now: Time) -> Result<bool, Self::Status> {
        Ok(false)
    }
    /// How soon a running one is looked at again.
    fn steady_requeue(&self) -> Duration {
        STEADY_REQUEUE
    }
}

/// What a component runs as.
pub(crate) struct Built {
    deployments: Vec<Deployment>,
    stateful_sets: Vec<StatefulSet>,
    service: Service,
}

impl Workload for Stargate {
    const KIND: &'static str = "Stargate";
    const CONTROLLER: &'static str = "stargate";
    const CREATED_BY: &'static str = "stargate-controller";
    const REFERENCED_CONFIG_MAPS: Option<fn(&Self) -> BTreeSet<String>> =
        Some(stargate::referenced_config_maps);
    const FIELD_MANAGER: &'static str = STARGATE_FIELD_MANAGER;
    const STATEFUL_SETS: bool = false;
    const AGENT: vector_agent::Agent = vector_agent::STARGATE;
    type Status = crate::api::stargate::StargateStatus;

    fn events(context: &ComponentContext) -> &Events {
        &context.stargate_events
    }
    fn datacenter(&self) -> Option<ObjectRef<CassandraDatacenter>> {
        stargate::datacenter_of(self)
    }
    fn current_status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }
    fn deployed_before(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.progress)
            .is_some_and(|p| p != StargateProgress::Pending)
    }
    fn waiting(&self, waiting: &Waiting, now: Time) -> Self::Status {
        stargate::status(self, Err(waiting), now)
    }
    fn vector_config(&self, dc: &CassandraDatacenter) -> Result<Option<ConfigMap>, VectorError> {
        stargate::vector_config(self, dc)
    }
    fn service_monitor(&self, dc: &CassandraDatacenter) -> Option<ServiceMonitor> {
        monitor::stargate_monitor(self, dc)
    }
    async fn build(
        &self,
        context: &ComponentContext,
        dc: &CassandraDatacenter,
        namespace: &str,
    ) -> Result<Built, ComponentError> {
        let config = stargate_config(&context.client, self, dc, namespace).await?;
        Ok(Built {
            deployments: stargate::deployments(
                self,
                dc,
                &context.images,
                config.generated.as_deref(),
                &config.hashes,
            ),
            stateful_sets: Vec::new(),
            service: stargate::service(self, dc),
        })
    }
    fn deployments_selector(&self) -> String {
        format!(
            "{}={}",
            crate::workload::labels::STARGATE_LABEL,
            self.name_any()
        )
    }
    async fn deployed(
        &self,
        _context: &ComponentContext,
        _dc: &CassandraDatacenter,
        built: &Built,
        rollout: Rollout,
        now: Time,
    ) -> Self::Status {
        let names: Vec<String> = built.deployments.iter().map(ResourceExt::name_any).collect();
        let service = built.service.name_any();
        stargate::status(self, Ok((&names, Some(service.as_str()), rollout)), now)
    }
    fn is_ready(status: &Self::Status) -> bool {
        status.is_ready()
    }
    fn progress(status: &Self::Status) -> Option<String> {
        status.progress.map(|p| format!("{p:?}"))
    }
}

impl Workload for Reaper {
    const KIND: &'static str = "Reaper";
    const CONTROLLER: &'static str = "reaper";
    const CREATED_BY: &'static str = "reaper-controller";
    const REFERENCED_CONFIG_MAPS: Option<fn(&Self) -> BTreeSet<String>> = None;
    const FIELD_MANAGER: &'static str = REAPER_FIELD_MANAGER;
    const STATEFUL_SETS: bool = true;
    const AGENT: vector_agent::Agent = vector_agent::REAPER;
    type Status = crate::api::reaper::ReaperStatus;

    fn events(context: &ComponentContext) -> &Events {
        &context.reaper_events
    }
    fn datacenter(&self) -> Option<ObjectRef<CassandraDatacenter>> {
        reaper::datacenter_of(self)
    }
    fn current_status(&self) -> Option<&Self::Status> {
        self.status.as_ref()
    }
    fn deployed_before(&self) -> bool {
        self.status
            .as_ref()
            .and_then(|s| s.progress)
            .is_some_and(|p| p != crate::api::reaper::ReaperProgress::Pending)
    }
    fn waiting(&self, waiting: &Waiting, now: Time) -> Self::Status {
        let message = match waiting {
            Waiting::NoDatacenterRef => "spec.datacenterRef.name is empty".to_string(),
            Waiting::DatacenterNotFound(name) => {
                format!("CassandraDatacenter {name} does not exist")
            }
            Waiting::DatacenterNotReady(name) => {
                format!("waiting for CassandraDatacenter {name} to be Ready")
            }
        };
        reaper::status(self, reaper::Stage::Waiting(message), now)
    }
    fn vector_config(&self, dc: &CassandraDatacenter) -> Result<Option<ConfigMap>, VectorError> {
        reaper::vector_config(self, dc)
    }
    fn service_monitor(&self, _dc: &CassandraDatacenter) -> Option<ServiceMonitor> {
        monitor::reaper_monitor(self)
    }
    async fn build(
        &self,
        context: &ComponentContext,
        dc: &CassandraDatacenter,
        _namespace: &str,
    ) -> Result<Built, ComponentError> {
        let workload = reaper::workload(self, dc, &context.images).map_err(|message| {
            ComponentError::Config {
                kind: Self::KIND,
                namespace: self.namespace().unwrap_or_default(),
                name: self.name_any(),
                message,
            }
        })?;
        // The other kind, left from another storage type, is removed once this one is applied.
        let (deployments, stateful_sets) = match workload {
            reaper::ReaperWorkload::Deployment(deployment) => (vec![deployment], Vec::new()),
            reaper::ReaperWorkload::StatefulSet(stateful_set) => (Vec::new(), vec![stateful_set]),
        };
        Ok(Built {
            deployments,
            stateful_sets,
            service: reaper::service(self),
        })
    }
    fn deployments_selector(&self) -> String {
        reaper::pod_selector(self)
    }
    async fn deployed(
        &self,
        context: &ComponentContext,
        dc: &CassandraDatacenter,
        _built: &Built,
        rollout: Rollout,
        now: Time,
    ) -> Self::Status {
        let stage = if !rollout.is_complete() {
            reaper::Stage::Deploying(rollout)
        } else if reaper::is_control_plane(self) {
            match clusters_served(&context.client, self).await {
                Ok((clusters, schedules)) => reaper::Stage::Serving {
                    clusters,
                    schedules,
                },
                Err(stage) => stage,
            }
        } else {
            match register_with_reaper(&context.client, self, dc).await {
                Ok((cluster, schedules)) => reaper::Stage::Registered { cluster, schedules },
                Err(stage) => stage,
            }
        };
        reaper::status(self, stage, now)
    }
    fn is_ready(status: &Self::Status) -> bool {
        status.is_ready()
    }
    fn progress(status: &Self::Status) -> Option<String> {
        status.progress.map(|p| format!("{p:?}"))
    }
    fn without_datacenter(&self, now: Time) -> Result<bool, Self::Status> {
        if !reaper::is_control_plane(self) {
            return Ok(false);
        }
        match reaper::control_plane_refusal(self) {
            None => Ok(true),
            Some(why) => Err(reaper::status(self, reaper::Stage::Invalid(why), now)),
        }
    }
    fn steady_requeue(&self) -> Duration {
        // Clusters get registered with a Reaper without a datacenter by others (the
        // K8ssandraCluster controller, users): their schedules show up within this.
        match reaper::is_control_plane(self) {
            true => CONTROL_PLANE_REAPER_REQUEUE,
            false => STEADY_REQUEUE,
        }
    }
}

/// One reconcile of a Stargate or Reaper, and an Event when it failed or its progress changed.
async fn reconcile<K: Workload>(
    object: Arc<K>,
    context: Arc<ComponentContext>,
) -> Result<Action, ComponentError> {
    let mut progress = None;
    let result = reconcile_steps(object.as_ref(), &context, &mut progress).await;
    let before = object.current_status().and_then(K::progress);
    announce(
        K::events(&context),
        object.as_ref(),
        &result,
        (before, progress),
    )
    .await;
    result
}

/// gather (its datacenter) → build (what it mounts, its Deployments and Service) → apply
/// (Vector configuration, Deployments, Service) → status. `progress` is the progress written.
async fn reconcile_steps<K: Workload>(
    object: &K,
    context: &ComponentContext,
    progress: &mut Option<String>,
) -> Result<Action, ComponentError> {
    let name = object.name_any();
    let namespace = object.namespace().ok_or_else(|| ComponentError::MissingNamespace {
        kind: K::KIND,
        name: name.clone(),
    })?;
    if object.meta().deletion_timestamp.is_some() {
        // The garbage collector removes the children with their owner.
        return Ok(Action::await_change());
    }
    let client = &context.client;
    let datacenter = find_datacenter(client, object.datacenter(), K::KIND, &name).await?;
    let now = Time(Timestamp::now());
    let status = match datacenter {
        Err(None) => match object.without_datacenter(now.clone()) {
            Ok(true) => {
                let dc = reaper::no_datacenter();
                deploy(object, context, &dc, &namespace, now).await?
            }
            Ok(false) => object.waiting(&Waiting::NoDatacenterRef, now),
            Err(status) => status,
        },
        Err(Some(missing)) => object.waiting(&Waiting::DatacenterNotFound(missing), now),
        Ok(dc) if !dc.is_ready() && !object.deployed_before() => {
            object.waiting(&Waiting::DatacenterNotReady(dc.name_any()), now)
        }
        Ok(dc) => deploy(object, context, &dc, &namespace, now).await?,
    };
    let running = K::is_ready(&status);
    *progress = K::progress(&status);
    if object.current_status() != Some(&status) {
        let value = serde_json::to_value(&status).map_err(|e| ComponentError::Api {
            action: "encoding the status".into(),
            kind: K::KIND,
            namespace: namespace.clone(),
            name: name.clone(),
            source: kube::Error::SerdeError(e),
        })?;
        let api: Api<K> = Api::namespaced(client.clone(), &namespace);
        write_status(&api, K::FIELD_MANAGER, &name, value).await.map_err(api_error(
            "writing the status",
            K::KIND,
            &namespace,
            &name,
        ))?;
    }
    Ok(Action::requeue(if running {
        object.steady_requeue()
    } else {
        PROGRESSING_REQUEUE
    }))
}

/// Applies what `object` runs as next to `dc`; its status from what is live.
async fn deploy<K: Workload>(
    object: &K,
    context: &ComponentContext,
    dc: &CassandraDatacenter,
    namespace: &str,
    now: Time,
) -> Result<K::Status, ComponentError> {
    let client = &context.client;
    let name = object.name_any();
    let built = object.build(context, dc, namespace).await?;
    let vector_on = apply_vector_config(
        client,
        object.vector_config(dc),
        K::FIELD_MANAGER,
        (K::KIND, namespace, &name),
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let live = deployments
        .list(&ListParams::default().labels(&object.deployments_selector()))
        .await
        .map_err(api_error("listing Deployments", K::KIND, namespace, &name))?
        .items;
    let uid = object.uid().unwrap_or_default();
    converge_children(
        &deployments,
        K::FIELD_MANAGER,
        &uid,
        &built.deployments,
        &live,
    )
    .await
    .map_err(api_error("applying Deployments", K::KIND, namespace, &name))?;
    let live_sets = if K::STATEFUL_SETS {
        let stateful_sets: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
        let live = stateful_sets
            .list(&ListParams::default().labels(&object.deployments_selector()))
            .await
            .map_err(api_error("listing StatefulSets", K::KIND, namespace, &name))?
            .items;
        for desired in &built.stateful_sets {
            let current = live.iter().find(|l| {
                l.name_any() == desired.name_any() && l.metadata.deletion_timestamp.is_none()
            });
            if current.is_some_and(|live| !reaper::claims_unchanged(desired, live)) {
                return Err(ComponentError::Config {
                    kind: K::KIND,
                    namespace: namespace.to_string(),
                    name: name.clone(),
                    message: format!(
                        "spec.storageConfig cannot change once StatefulSet {} exists (Kubernetes refuses to change its volume claim); put it back, or delete the StatefulSet (its claim and the state on it go too) to have it made again",
                        desired.name_any()
                    ),
                });
            }
        }
        converge_children(
            &stateful_sets,
            K::FIELD_MANAGER,
            &uid,
            &built.stateful_sets,
            &live,
        )
        .await
        .map_err(api_error(
            "applying StatefulSets",
            K::KIND,
            namespace,
            &name,
        ))?;
        live
    } else {
        Vec::new()
    };
    let live_pods = (live.iter().filter_map(|d| d.spec.as_ref()?.template.spec.as_ref()))
        .chain(live_sets.iter().filter_map(|s| s.spec.as_ref()?.template.spec.as_ref()));
    if !vector_on && K::AGENT.mounted_in_pods(live_pods) {
        let config = K::AGENT.config_map_name(dc);
        delete_owned_config_map(client, namespace, &config, &uid, (K::KIND, &name)).await?;
    }
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let live_service = services.get_opt(&built.service.name_any()).await.map_err(api_error(
        "reading the Service",
        K::KIND,
        namespace,
        &name,
    ))?;
    apply_if_changed(
        &services,
        K::FIELD_MANAGER,
        &built.service,
        live_service.as_ref(),
    )
    .await
    .map_err(api_error("applying the Service", K::KIND, namespace, &name))?;
    if !monitor::made_for_a_cluster(object) {
        let desired = object.service_monitor(dc);
        let converged =
            monitor::converge(client, K::FIELD_MANAGER, namespace, &name, &uid, desired).await;
        // The component runs without its monitor; the Warning says why.
        if let Err(error) = converged {
            warn!(kind = K::KIND, namespace, name = %name, %error, "ServiceMonitor not converged");
            let notice =
                Notice::warning("ServiceMonitorNotApplied", "Reconcile", error.to_string());
            K::events(context).publish(object, &notice).await;
        }
    }
    let rollout = Rollout::of(&as_live(&built.deployments, &live))
        .and(Rollout::of(&as_live(&built.stateful_sets, &live_sets)));
    Ok(object.deployed(context, dc, &built, rollout, now).await)
}

/// The Reaper's REST API, reached as its `spec.encryption` asks and logged in as its UI user
/// when it asks for one; why not as the stage to report (a client certificate that cannot be
/// used gets a reason of its own).
async fn reaper_api(client: &kube::Client, object: &Reaper) -> Result<ReaperApi, reaper::Stage> {
    let namespace = object.namespace().unwrap_or_default();
    let service = reaper::service_name(object);
    let pods = reaper::pod_selector(object);
    let endpoint = ReaperEndpoint {
        namespace: &namespace,
        service: &service,
        pods: &pods,
        encryption: object.spec.template.encryption.as_ref(),
    };
    let mut api = ReaperApi::connect(client, &endpoint).await.map_err(|error| match error {
        ReaperApiError::ClientCertificate(_) => {
            reaper::Stage::ClientCertificateUnusable(error.to_string())
        }
        error => reaper::Stage::Registering(error.to_string()),
    })?;
    if let Some(secret) = reaper::ui_login_secret(object) {
        let (username, password) =
            read_login(client, &namespace, &secret).await.map_err(reaper::Stage::Registering)?;
        (api.login(&username, &password).await)
            .map_err(|e| reaper::Stage::Registering(e.to_string()))?;
    }
    Ok(api)
}

/// Registers `dc`'s cluster with the Reaper, as k8ssandra-operator does once Reaper runs; its
/// name in Reaper and its repair schedules. The error is the stage that says why not, in words
/// for the Reaper's status (never a credential).
async fn register_with_reaper(
    client: &kube::Client,
    object: &Reaper,
    dc: &CassandraDatacenter,
) -> Result<(String, Vec<RepairScheduleSummary>), reaper::Stage> {
    let api = reaper_api(client, object).await?;
    let failed = |e: ReaperApiError| reaper::Stage::Registering(e.to_string());
    let cluster = reaper::registered_name(dc);
    let known = api.cluster_names().await.map_err(failed)?;
    if !known.contains(&cluster) {
        let seed = reaper::seed_host(dc);
        api.add_cluster(&cluster, &seed).await.map_err(failed)?;
        info!(reaper = %object.name_any(), cluster, seed, "cluster registered with Reaper");
    }
    let schedules = api.schedules(&cluster).await.map_err(failed)?;
    Ok((cluster, schedules))
}

/// What a Reaper without a datacenter serves: the clusters registered with it and their repair
/// schedules. The error is the stage that says why not.
async fn clusters_served(
    client: &kube::Client,
    object: &Reaper,
) -> Result<(Vec<String>, Vec<RepairScheduleSummary>), reaper::Stage> {
    let api = reaper_api(client, object).await?;
    let failed = |e: ReaperApiError| reaper::Stage::Registering(e.to_string());
    let clusters = api.cluster_names().await.map_err(failed)?;
    let schedules = api.all_schedules().await.map_err(failed)?;
    Ok((clusters, schedules))
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
        Some(config) => {
            apply_config_map(client, &config, field_manager, (kind, name)).await.map(|()| true)
        }
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
    let live = config_maps.get_opt(&config.name_any()).await.map_err(api_error(
        "reading its ConfigMap",
        kind,
        &namespace,
        owner,
    ))?;
    apply_if_changed(&config_maps, field_manager, config, live.as_ref())
        .await
        .map_err(api_error("applying its ConfigMap", kind, &namespace, owner))?;
    Ok(())
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
