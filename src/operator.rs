//! What `federator run` starts, by mode. Each controller is a task that ends when the shutdown
//! future resolves; the next controllers (federation, replication, data plane) plug in here.

use std::future::Future;
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::clusters::{self, KubeconfigPolicy, Registry};
use crate::home::{HomeClientError, HomeCluster};
use crate::settings::{Mode, Settings};
use crate::{dataplane, federation};

/// How long controllers get to finish their current work after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Reconciles one controller runs at once. Each holds its requests' HTTP/1.1 connections, which
/// stay open for reuse: unbounded, a thousand clusters created together would open thousands.
pub const MAX_CONCURRENT_RECONCILES: u16 = 16;

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
pub async fn hub_client(settings: &Settings) -> Result<kube::Client, HomeClientError> {
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
    )?)
}

/// What is running: the registry exists in control-plane mode only.
pub struct Operator {
    pub registry: Option<Registry>,
    controllers: JoinSet<()>,
}

impl Operator {
    /// Starts the controllers of `settings.mode`.
    pub fn start(settings: &Settings, hub: kube::Client, shutdown: Shutdown) -> Operator {
        let mut controllers = JoinSet::new();
        let registry = match settings.mode {
            Mode::ControlPlane => {
                let registry = Registry::new(hub.clone(), settings.regions.clone())
                    .with_hub_namespaces(settings.watch_namespaces.clone());
                crate::ops::metrics().watch_regions(registry.clone());
                let policy = KubeconfigPolicy {
                    allow_exec_credentials: settings.allow_exec_credentials,
                    allow_insecure_skip_tls_verify: settings.regions.allow_insecure_skip_tls_verify,
                };
                controllers.spawn(clusters::controller::run(
                    hub.clone(),
                    settings.operator_namespace.clone(),
                    registry.clone(),
                    policy,
                    shutdown.clone(),
                ));
                controllers.spawn(federation::controller::run(
                    hub.clone(),
                    registry.clone(),
                    settings.watch_namespaces.clone(),
                    shutdown.clone(),
                ));
                controllers.spawn(crate::replication::controller::run(
                    hub.clone(),
                    registry.clone(),
                    settings.watch_namespaces.clone(),
                    shutdown.clone(),
                ));
                Some(registry)
            }
            // Only the controllers of objects that live in the region run here; no
            // ClientConfigs, no probes, no K8ssandraClusters.
            Mode::DataPlane => None,
        };
        // Stargate and Reaper live in the cluster they serve: their controllers run in both modes.
        dataplane::controller::spawn(&mut controllers, hub, settings, shutdown);
        info!(mode = %settings.mode, controllers = controllers.len(), "controllers started");
        Operator {
            registry,
            controllers,
        }
    }

    /// Stops the controllers at once, wherever they are (the Lease is lost: no more writes).
    pub async fn abort(mut self) {
        self.controllers.abort_all();
        while self.controllers.join_next().await.is_some() {}
    }

    /// Waits for `shutdown`, then for the controllers to stop (at most a grace period).
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while self.controllers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(
                grace_seconds = SHUTDOWN_GRACE.as_secs(),
                "controllers did not stop in time"
            );
            self.controllers.abort_all();
        }
    }
}

/// A [`Shutdown`] from any future (a signal, a test's channel).
pub fn shutdown_on(signal: impl Future<Output = ()> + Send + 'static) -> Shutdown {
    signal.boxed().shared()
}
