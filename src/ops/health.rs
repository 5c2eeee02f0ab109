//! What `/healthz` and `/readyz` answer.
//!
//! Alive is the HTTP server answering at all. Ready is: the leader (or a replica running without
//! leader election) whose controllers' caches have synced, or a follower that reads the Lease.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

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
}

#[derive(Debug)]
struct State {
    role: Role,
    /// Bumped whenever the controllers stop, so a cache of stopped controllers is not counted.
    epoch: u64,
    caches: HashMap<&'static str, (u64, bool)>,
}

/// The readiness of this replica.
#[derive(Debug)]
pub struct Health {
    state: Mutex<State>,
}

/// What `/readyz` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub role: Role,
    /// Controller caches that have not synced yet.
    pub pending_caches: Vec<&'static str>,
}

/// The process's health.
pub fn health() -> &'static Health {
    static HEALTH: OnceLock<Health> = OnceLock::new();
    HEALTH.get_or_init(Health::new)
}

impl Health {
    fn new() -> Health {
        Health {
            state: Mutex::new(State {
                role: Role::Starting,
                epoch: 0,
                caches: HashMap::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn set_role(&self, role: Role) {
        self.state().role = role;
        super::metrics().set_leader(role == Role::Leader);
    }

    /// Readiness waits for this controller cache to sync (called where a controller starts).
    pub fn track_cache<K>(&self, name: &'static str, store: Store<K>)
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
        tokio::spawn(async move {
            // The store's readiness wakes only its last waiter (the controller also waits on
            // it), so look again every so often instead of waiting once.
            loop {
                match tokio::time::timeout(CACHE_POLL, store.wait_until_ready()).await {
                    Ok(Ok(())) => break,
                    Ok(Err(_)) => return,
                    Err(_) => {}
                }
                if health().state().epoch != epoch {
                    return;
                }
            }
            let mut state = health().state();
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
        let mut pending_caches: Vec<&'static str> = state
            .caches
            .iter()
            .filter(|(_, (_, synced))| !synced)
            .map(|(name, _)| *name)
            .collect();
        pending_caches.sort_unstable();
        let ready = match state.role {
            Role::Starting => false,
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
        let health = Health::new();
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
}
