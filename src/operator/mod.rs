//! What `federator run` starts, by mode. Each controller is a task that ends when the shutdown
//! future resolves; one that ends before (a panic in a reconcile, say) is a failure of the whole
//! operator: see [`Operator::run_until`] and [`Operator::failure`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::clusters::{self, KubeconfigPolicy, Registry};
use crate::home::{HomeClientError, HomeCluster};
use crate::ops::{Metrics, Ops, WriteFence};
use crate::settings::{Mode, Settings};
use crate::{dataplane, federation};

pub mod leader;

pub use crate::ops::metrics::ExitCause;

/// How long controllers get to finish their current work after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Stack of every runtime worker thread that runs controllers. Decoding a K8ssandraCluster in
/// kube's watcher takes about 1.5 MiB of stack in a debug build (its types are large and
/// deserialized by value), more than tokio's 2 MiB default leaves once the controller's stream
/// frames are added; the memory is only reserved, not used.
pub const WORKER_STACK_SIZE: usize = 16 * 1024 * 1024;

/// A multi-thread tokio runtime whose workers have [`WORKER_STACK_SIZE`] of stack.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(WORKER_STACK_SIZE)
        .build()
}

/// A shutdown signal every controller can wait on.
pub type Shutdown = Shared<BoxFuture<'static, ()>>;

/// The hub client of a running operator: every request bounded by the request timeout (the
/// per-region concurrency limit is not applied: the hub carries every controller's watches).
pub async fn hub_client(
    settings: &Settings,
    metrics: &Arc<Metrics>,
) -> Result<kube::Client, HomeClientError> {
    let home = HomeCluster {
        kubeconfig: settings.kubeconfig.clone(),
        context: settings.context.clone(),
    };
    let config = home.config().await?;
    Ok(clusters::region::build_client(
        "",
        config,
        settings.regions.connect_timeout,
        settings.regions.request_timeout,
        None,
        metrics,
    )?)
}

/// The controller tasks, by name, so that one that ends is known.
pub struct Controllers {
    tasks: JoinSet<()>,
    names: HashMap<tokio::task::Id, &'static str>,
    metrics: Arc<Metrics>,
}

/// A controller that ended while the operator should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerExit {
    pub controller: &'static str,
    pub cause: ExitCause,
}

impl fmt::Display for ControllerExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {} controller {}",
            self.controller,
            self.cause.label()
        )
    }
}

impl Controllers {
    pub fn new(metrics: Arc<Metrics>) -> Controllers {
        Controllers {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            metrics,
        }
    }

    pub fn spawn(
        &mut self,
        name: &'static str,
        controller: impl Future<Output = ()> + Send + 'static,
    ) {
        self.metrics.controller_started(name);
        let task = self.tasks.spawn(controller);
        self.names.insert(task.id(), name);
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The next controller to end; pending while none does (or none runs).
    async fn next_exit(&mut self) -> ControllerExit {
        let (id, cause) = match self.tasks.join_next_with_id().await {
            Some(Ok((id, ()))) => (id, ExitCause::Returned),
            Some(Err(error)) => (
                error.id(),
                if error.is_panic() {
                    ExitCause::Panicked
                } else {
                    ExitCause::Returned
                },
            ),
            None => return std::future::pending().await,
        };
        ControllerExit {
            controller: self.names.remove(&id).unwrap_or("unknown"),
            cause,
        }
    }

    async fn abort(&mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        self.names.clear();
    }
}

/// What is running: the registry exists in control-plane mode only.
pub struct Operator {
    pub registry: Option<Registry>,
    controllers: Controllers,
    /// The writes the controllers run in tasks of their own.
    fence: WriteFence,
    ops: Ops,
}

impl Operator {
    /// Starts the controllers of `settings.mode`, recording into `ops`.
    pub fn start(
        settings: &Settings,
        hub: kube::Client,
        ops: &Ops,
        shutdown: Shutdown,
    ) -> Operator {
        let mut controllers = Controllers::new(Arc::clone(&ops.metrics));
        let fence = WriteFence::new();
        let registry = match settings.mode {
            Mode::ControlPlane => {
                let registry = Registry::new(
                    hub.clone(),
                    settings.regions.clone(),
                    Arc::clone(&ops.metrics),
                )
                .with_hub_namespaces(settings.watch_namespaces.clone());
                let policy = KubeconfigPolicy {
                    allow_exec_credentials: settings.allow_exec_credentials,
                    allow_insecure_skip_tls_verify: settings.regions.allow_insecure_skip_tls_verify,
                };
                controllers.spawn(
                    "clientconfig",
                    clusters::controller::run(
                        hub.clone(),
                        settings.operator_namespace.clone(),
                        registry.clone(),
                        policy,
                        fence.clone(),
                        ops.clone(),
                        shutdown.clone(),
                    ),
                );
                controllers.spawn(
                    "k8ssandracluster",
                    federation::controller::run(
                        hub.clone(),
                        registry.clone(),
                        settings.watch_namespaces.clone(),
                        crate::cassandra::management::Access {
                            transport: settings.management_api_transport,
                            timeout: settings.regions.request_timeout,
                        },
                        fence.clone(),
                        ops.clone(),
                        shutdown.clone(),
                    ),
                );
                controllers.spawn(
                    "replicatedsecret",
                    crate::replication::controller::run(
                        hub.clone(),
                        registry.clone(),
                        settings.watch_namespaces.clone(),
                        ops.clone(),
                        shutdown.clone(),
                    ),
                );
                controllers.spawn(
                    "k8ssandratask",
                    crate::control::controller::run(
                        hub.clone(),
                        registry.clone(),
                        settings.watch_namespaces.clone(),
                        ops.clone(),
                        shutdown.clone(),
                    ),
                );
                controllers.spawn(
                    "medusaclusterbackupjob",
                    crate::control::medusa_cluster_backup::run(
                        hub.clone(),
                        registry.clone(),
                        settings.watch_namespaces.clone(),
                        ops.clone(),
                        shutdown.clone(),
                    ),
                );
                Some(registry)
            }
            // Only the controllers of objects that live in the region run here; no
            // ClientConfigs, no probes, no K8ssandraClusters.
            Mode::DataPlane => None,
        };
        // Stargate and Reaper live in the cluster they serve: their controllers run in both modes.
        for (name, controller) in
            dataplane::controller::controllers(hub, settings, ops.clone(), shutdown)
        {
            controllers.spawn(name, controller);
        }
        info!(mode = %settings.mode, controllers = controllers.len(), "controllers started");
        Operator {
            registry,
            controllers,
            fence,
            ops: ops.clone(),
        }
    }

    /// Stops the controllers and their writes at once, wherever they are (the Lease is lost:
    /// no more writes). When this returns, no task of this operator writes any more.
    pub async fn abort(mut self) {
        self.fence.close().await;
        self.controllers.abort().await;
    }

    /// Resolves when a controller ends before it was asked to stop, which is recorded (log,
    /// `federator_controller_exits_total`, `/healthz`); the caller then stops the operator.
    pub async fn failure(&mut self) -> ControllerExit {
        let exit = self.controllers.next_exit().await;
        error!(
            controller = exit.controller,
            cause = exit.cause.label(),
            "{exit}: stopping"
        );
        self.ops.metrics.controller_exited(exit.controller, exit.cause.label());
        self.ops.health.controller_failed(exit.controller);
        exit
    }

    /// Waits for `shutdown`, then for the controllers and their writes to stop (at most a grace
    /// period). A controller that ends first stops the others at once and is returned.
    pub async fn run_until(
        mut self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ControllerExit> {
        tokio::select! {
            biased;
            _ = shutdown => {}
            exit = self.failure() => {
                self.abort().await;
                return Err(exit);
            }
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while self.controllers.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(
                grace_seconds = SHUTDOWN_GRACE.as_secs(),
                "controllers did not stop in time"
            );
        }
        self.fence.drain(deadline.saturating_duration_since(Instant::now())).await;
        self.controllers.abort().await;
        Ok(())
    }
}

/// A [`Shutdown`] from any future (a signal, a test's channel).
pub fn shutdown_on(signal: impl Future<Output = ()> + Send + 'static) -> Shutdown {
    signal.boxed().shared()
}
