//! What `/healthz` and `/readyz` answer.
//!
//! Alive is the HTTP server answering while no controller has failed (a controller that ended
//! while it should run fails `/healthz`, so the kubelet restarts the pod). Ready is: the leader
//! (or a replica running without leader election) whose controllers' caches have synced, or a
//! follower that reads the Lease.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::runtime::reflector::Store;
use serde::Serialize;

/// How often a controller cache is looked at until it has synced.
const CACHE_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// This replica's part in leader election.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Not yet known (starting, or the hub cannot be reached).
    Starting,
    /// Holds the Lease (or leader election is off): runs the controllers.
    Leader,
    /// Another replica leads; this one waits, ready to take over.
    Follower,
    /// A controller failed: this replica stopped, gave up its Lease and waits to be restarted.
    Failed,
}

#[derive(Debug)]
struct State {
    role: Role,
    /// Bumped whenever the controllers stop, so a cache of stopped controllers is not counted.
    epoch: u64,
    caches: HashMap<&'static str, (u64, bool)>,
    /// The controller that ended while it should run, if one did.
    failed_controller: Option<&'static str>,
}

/// The readiness of this replica.
pub struct Health {
    state: Mutex<State>,
    /// Where leadership shows (`federator_leader`).
    metrics: Arc<super::metrics::Metrics>,
}

/// What `/readyz` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub role: Role,
    /// Controller caches that have not synced yet.
    pub pending_caches: Vec<&'static str>,
}

impl Health {
    pub fn new(metrics: Arc<super::metrics::Metrics>) -> Health {
        Health {
            metrics,
            state: Mutex::new(State {
                role: Role::Starting,
                epoch: 0,
                caches: HashMap::new(),
                failed_controller: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes `role`, unless a controller failed: a failed replica stays failed.
    pub fn set_role(&self, role: Role) {
        let mut state = self.state();
        if state.failed_controller.is_none() {
            state.role = role;
        }
        self.metrics.set_leader(state.role == Role::Leader);
    }

    /// A controller ended while it should run: `/healthz` and `/readyz` fail from now on.
    pub fn controller_failed(&self, controller: &'static str) {
        let mut state = self.state();
        state.failed_controller.get_or_insert(controller);
        state.role = Role::Failed;
        self.metrics.set_leader(false);
    }

    /// The controller that failed, if one did (then the process is not alive).
    pub fn failed_controller(&self) -> Option<&'static str> {
        self.state().failed_controller
    }

    /// Readiness waits for this controller cache to sync (called where a controller starts).
    pub fn track_cache<K>(self: &Arc<Self>, name: &'static str, store: Store<K>)
    where
        K: kube::Resource + Clone + Send + Sync + 'static,
        K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
    {
        let epoch = {
            let mut state = self.state();
            let epoch = state.epoch;
            state.caches.insert(name, (epoch, false));
            epoch
        };
        let health = Arc::clone(self);
        tokio::spawn(async move {
            // The store's readiness wakes only its last waiter (the controller also waits on
            // it), so look again every so often instead of waiting once.
            loop {
                match tokio::time::timeout(CACHE_POLL, store.wait_until_ready()).await {
                    Ok(Ok(())) => break,
                    Ok(Err(_)) => return,
                    Err(_) => {}
                }
                if health.state().epoch != epoch {
                    return;
                }
            }
            let mut state = health.state();
            if let Some(entry) = state.caches.get_mut(name)
                && entry.0 == epoch
            {
                entry.1 = true;
            }
        });
    }

    /// The controllers stopped: their caches no longer count.
    pub fn controllers_stopped(&self) {
        let mut state = self.state();
        state.epoch += 1;
        state.caches.clear();
    }

    pub fn readiness(&self) -> Readiness {
        let state = self.state();
        let mut pending_caches: Vec<&'static str> =
            state.caches.iter().filter(|(_, (_, synced))| !synced).map(|(name, _)| *name).collect();
        pending_caches.sort_unstable();
        let ready = match state.role {
            Role::Starting | Role::Failed => false,
            Role::Follower => true,
            Role::Leader => pending_caches.is_empty(),
        };
        Readiness {
            ready,
            role: state.role,
            pending_caches,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_is_ready_once_its_caches_synced_and_a_follower_at_once() {
        let health = Health::new(Default::default());
        assert!(!health.readiness().ready, "not ready while starting");
        health.set_role(Role::Follower);
        assert!(health.readiness().ready);
        health.set_role(Role::Leader);
        health.state().caches.insert("clientconfig", (0, false));
        let readiness = health.readiness();
        assert!(!readiness.ready);
        assert_eq!(readiness.pending_caches, vec!["clientconfig"]);
        health.state().caches.insert("clientconfig", (0, true));
        assert!(health.readiness().ready);
        health.controllers_stopped();
        assert!(health.readiness().pending_caches.is_empty());
    }

    #[test]
    fn a_failed_controller_ends_readiness_for_good() {
        let health = Health::new(Default::default());
        health.set_role(Role::Leader);
        assert_eq!(health.failed_controller(), None);
        health.controller_failed("stargate");
        health.controller_failed("reaper");
        assert_eq!(
            health.failed_controller(),
            Some("stargate"),
            "the first one"
        );
        health.set_role(Role::Follower);
        let readiness = health.readiness();
        assert_eq!(readiness.role, Role::Failed);
        assert!(!readiness.ready);
    }
}
