//! Leader election on a coordination.k8s.io Lease (kube-lease-manager): of the replicas of a
//! control plane, only the holder of the Lease runs the controllers; the others wait, ready.
//!
//! Timing (seconds after the holder's last successful renewal `r`):
//! - the holder renews when [`RENEW_GRACE`] is left, at `r + 6`; each Lease request gives up
//!   after [`LEASE_REQUEST_TIMEOUT`], so a holder that cannot renew knows it by `r + 8` at the
//!   latest and aborts its controllers at once (no grace period: they stop writing);
//! - another replica may take the Lease only once it has expired, at `r + 10`
//!   ([`LEASE_DURATION`]): the 2 s between the two cover the abort and clock skew;
//! - a killed holder is replaced at about `r + 11` (the follower wakes at expiry, clears the
//!   stale holder, waits up to 1 s to avoid a collision, takes the Lease and starts the
//!   controllers): within 15 s of the kill, wherever in the renewal cycle it happened.

use std::time::Duration;

use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tracing::{info, warn};

use super::{ControllerExit, Operator, Shutdown};
use crate::home::{HomeClientError, HomeCluster};
use crate::ops::Ops;
use crate::ops::health::Role;
use crate::settings::Settings;

/// How long a Lease stays valid after its last renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(10);
/// The holder renews when this much of the Lease is left.
pub const RENEW_GRACE: Duration = Duration::from_secs(4);
/// Bound on every Lease request: a renewal that takes longer counts as failed.
pub const LEASE_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Wait before trying again after the Lease could not be read or written.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// How [`run_elected`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// `shutdown` resolved.
    Shutdown,
    /// A controller failed: the others were stopped and the Lease released.
    ControllerFailed(ControllerExit),
}

/// Runs the controllers of `settings.mode` while this replica holds the Lease, until
/// `shutdown` resolves or a controller fails; then stops them and releases the Lease so another
/// replica takes over.
pub async fn run_elected(
    settings: &Settings,
    hub: kube::Client,
    ops: &Ops,
    shutdown: Shutdown,
) -> Result<Ended, HomeClientError> {
    let lease_client = lease_client(settings, ops).await?;
    let health = &ops.health;
    let election = &settings.leader_election;
    let identity = crate::ops::identity();
    info!(
        identity,
        lease = %election.lease_name,
        namespace = %election.lease_namespace,
        "leader election: waiting for the lease"
    );
    loop {
        let manager = tokio::select! {
            _ = shutdown.clone() => return Ok(Ended::Shutdown),
            built = LeaseManagerBuilder::new(lease_client.clone(), &election.lease_name)
                .with_namespace(&election.lease_namespace)
                .with_identity(identity)
                .with_duration(LEASE_DURATION.as_secs())
                .with_grace(RENEW_GRACE.as_secs())
                .build() => built,
        };
        let manager = match manager {
            Ok(manager) => manager,
            Err(error) => {
                warn!(error = %error, "leader election: the lease cannot be read");
                health.set_role(Role::Starting);
                if wait_or_shutdown(&shutdown).await {
                    return Ok(Ended::Shutdown);
                }
                continue;
            }
        };
        if health.readiness().role != Role::Leader {
            health.set_role(Role::Follower);
        }
        if let Some(ended) = follow(settings, &hub, ops, &manager, &shutdown).await {
            return Ok(ended);
        }
        if wait_or_shutdown(&shutdown).await {
            return Ok(Ended::Shutdown);
        }
    }
}

/// Starts and stops the controllers as the Lease comes and goes. Returns how it ended, or None
/// when the Lease could not be renewed or read (the caller builds a new manager).
async fn follow(
    settings: &Settings,
    hub: &kube::Client,
    ops: &Ops,
    manager: &LeaseManager,
    shutdown: &Shutdown,
) -> Option<Ended> {
    let health = &ops.health;
    let mut running: Option<Operator> = None;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.clone() => {
                if let Some(operator) = running.take() {
                    // A controller that fails now is stopped with the others.
                    let _ = operator.run_until(futures::future::ready(())).await;
                    stopped(ops);
                }
                release(manager).await;
                return Some(Ended::Shutdown);
            }
            exit = failure_of(&mut running) => {
                if let Some(operator) = running.take() {
                    operator.abort().await;
                    stopped(ops);
                }
                release(manager).await;
                warn!(%exit, "leader election: a controller failed; controllers stopped and the lease released");
                return Some(Ended::ControllerFailed(exit));
            }
            changed = manager.changed() => match changed {
                Ok(true) => {
                    info!(identity = crate::ops::identity(), "leader election: became the leader");
                    health.set_role(Role::Leader);
                    running = Some(Operator::start(settings, hub.clone(), ops, shutdown.clone()));
                }
                Ok(false) => {
                    if let Some(operator) = running.take() {
                        warn!("leader election: lost the lease; controllers stopped");
                        operator.abort().await;
                        stopped(ops);
                    }
                    health.set_role(Role::Follower);
                }
                Err(error) => {
                    if let Some(operator) = running.take() {
                        operator.abort().await;
                        stopped(ops);
                        warn!(error = %error, "leader election: the lease could not be renewed; controllers stopped");
                    } else {
                        warn!(error = %error, "leader election: the lease cannot be read");
                    }
                    health.set_role(Role::Starting);
                    return None;
                }
            }
        }
    }
}

/// Resolves when a controller of `running` fails; pending while nothing runs.
async fn failure_of(running: &mut Option<Operator>) -> ControllerExit {
    match running {
        Some(operator) => operator.failure().await,
        None => std::future::pending().await,
    }
}

/// Gives the Lease up, so that another replica need not wait for it to expire.
async fn release(manager: &LeaseManager) {
    if let Err(error) = manager.release().await {
        warn!(error = %error, "leader election: the lease was not released");
    }
}

fn stopped(ops: &Ops) {
    ops.health.controllers_stopped();
    ops.metrics.forget_regions();
}

/// Sleeps [`RETRY_DELAY`]; true when `shutdown` came first.
async fn wait_or_shutdown(shutdown: &Shutdown) -> bool {
    tokio::select! {
        _ = shutdown.clone() => true,
        _ = tokio::time::sleep(RETRY_DELAY) => false,
    }
}

/// A hub client whose every request gives up after [`LEASE_REQUEST_TIMEOUT`].
async fn lease_client(settings: &Settings, ops: &Ops) -> Result<kube::Client, HomeClientError> {
    let home = HomeCluster {
        kubeconfig: settings.kubeconfig.clone(),
        context: settings.context.clone(),
    };
    let config = home.config().await?;
    Ok(crate::clusters::region::build_client(
        "",
        config,
        settings.regions.connect_timeout.min(LEASE_REQUEST_TIMEOUT),
        LEASE_REQUEST_TIMEOUT,
        None,
        &ops.metrics,
    )?)
}
