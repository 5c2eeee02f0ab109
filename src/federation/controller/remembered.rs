//! What the K8ssandraCluster controller remembers between reconciles about Cassandra itself:
//! the keyspaces last read (so that they are not asked again while nothing changed) and the
//! rebuilds that ended lately (so that an older watched copy does not bring a mark back).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::runtime::reflector::ObjectRef;

use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::federation::keyspaces::KeyspacesOutcome;

/// How long keyspaces found as required are trusted without asking again (someone may alter
/// them by hand).
const RECHECK_AFTER: Duration = Duration::from_secs(3600);

/// The last outcome per cluster, with what it was computed for and when.
#[derive(Default)]
pub struct KeyspaceMemo {
    checked: Mutex<HashMap<ObjectRef<K8ssandraCluster>, Checked>>,
}

struct Checked {
    fingerprint: u64,
    at: Instant,
    outcome: KeyspacesOutcome,
    /// The keyspaces Federator keeps replicated itself (system and components').
    managed: BTreeSet<String>,
    /// A user keyspace held a removal back: the user alters it without an event Federator
    /// sees, so it is read again at every reconcile.
    recheck: bool,
}

impl KeyspaceMemo {
    pub(super) fn fresh(
        &self,
        key: &ObjectRef<K8ssandraCluster>,
        fingerprint: u64,
    ) -> Option<KeyspacesOutcome> {
        let checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        let last = checked.get(key)?;
        let fresh =
            last.fingerprint == fingerprint && !last.recheck && last.at.elapsed() < RECHECK_AFTER;
        fresh.then(|| last.outcome.clone())
    }

    pub(super) fn remember(
        &self,
        key: ObjectRef<K8ssandraCluster>,
        fingerprint: u64,
        outcome: KeyspacesOutcome,
        managed: BTreeSet<String>,
        recheck: bool,
    ) {
        let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        let at = Instant::now();
        checked.insert(
            key,
            Checked {
                fingerprint,
                at,
                outcome,
                managed,
                recheck,
            },
        );
    }

    /// The keyspaces Federator kept replicated itself when it last succeeded.
    pub(super) fn managed(&self, key: &ObjectRef<K8ssandraCluster>) -> BTreeSet<String> {
        let checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        checked.get(key).map(|c| c.managed.clone()).unwrap_or_default()
    }

    /// `read` over the replication last read or altered, in place.
    fn reading<T>(
        &self,
        key: &ObjectRef<K8ssandraCluster>,
        read: impl FnOnce(&BTreeMap<String, BTreeMap<String, u32>>) -> Option<T>,
    ) -> Option<T> {
        let checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        match &checked.get(key)?.outcome {
            KeyspacesOutcome::Replicated { replication } => read(replication),
            _ => None,
        }
    }

    /// Whether `keyspace` replicated to `datacenter` when last read or altered; `None` when
    /// unknown here (nothing read since Federator started, or the last attempt failed).
    pub(super) fn replicates_to(
        &self,
        key: &ObjectRef<K8ssandraCluster>,
        keyspace: &str,
        datacenter: &str,
    ) -> Option<bool> {
        self.reading(key, |replication| {
            Some(replication.get(keyspace)?.contains_key(datacenter))
        })
    }

    /// The datacenters each keyspace read replicated to when last read or altered: the system
    /// ones, and the user's that replicate to a datacenter being removed.
    pub(super) fn keyspace_replication(
        &self,
        key: &ObjectRef<K8ssandraCluster>,
    ) -> Option<BTreeMap<String, BTreeSet<String>>> {
        self.reading(key, |replication| {
            let datacenters = |replicas: &BTreeMap<String, u32>| replicas.keys().cloned().collect();
            Some(
                replication
                    .iter()
                    .map(|(ks, replicas)| (ks.clone(), datacenters(replicas)))
                    .collect(),
            )
        })
    }

    /// Forgets a deleted cluster.
    pub fn forget(&self, key: &ObjectRef<K8ssandraCluster>) {
        self.checked.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// How long a datacenter whose rebuild ended is kept from getting its mark back from a watched
/// copy older than the end (the mark is applied with the datacenter while the copy has it).
const ENDED_WINDOW: Duration = Duration::from_secs(600);

/// The datacenters whose rebuild ended lately, per cluster.
#[derive(Default)]
pub struct RebuildsEnded {
    ended: Mutex<HashMap<(ObjectRef<K8ssandraCluster>, String), Instant>>,
}

impl RebuildsEnded {
    pub(super) fn record(&self, key: &ObjectRef<K8ssandraCluster>, datacenter: &str) {
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        ended.retain(|_, at| at.elapsed() < ENDED_WINDOW);
        ended.insert((key.clone(), datacenter.to_string()), Instant::now());
    }

    pub(super) fn ended_recently(
        &self,
        key: &ObjectRef<K8ssandraCluster>,
        datacenter: &str,
    ) -> bool {
        let ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        ended
            .get(&(key.clone(), datacenter.to_string()))
            .is_some_and(|at| at.elapsed() < ENDED_WINDOW)
    }

    /// Forgets a deleted cluster.
    pub fn forget(&self, key: &ObjectRef<K8ssandraCluster>) {
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        ended.retain(|(cluster, _), _| cluster != key);
    }
}

/// The clusters found registered with the Reaper their `reaperRef` names, with what that was
/// for (the target and the Reaper's uid) and when.
#[derive(Default)]
pub struct ReaperRegistrations {
    registered: Mutex<HashMap<ObjectRef<K8ssandraCluster>, (u64, Instant)>>,
}

impl ReaperRegistrations {
    /// Registered lately for the same target and Reaper.
    pub(super) fn fresh(&self, key: &ObjectRef<K8ssandraCluster>, fingerprint: u64) -> bool {
        let registered = self.registered.lock().unwrap_or_else(|e| e.into_inner());
        registered.get(key).is_some_and(|(known, at)| {
            *known == fingerprint && at.elapsed() < super::reaper_registration::RECHECK_AFTER
        })
    }

    pub(super) fn remember(&self, key: ObjectRef<K8ssandraCluster>, fingerprint: u64) {
        let mut registered = self.registered.lock().unwrap_or_else(|e| e.into_inner());
        registered.insert(key, (fingerprint, Instant::now()));
    }

    /// Forgets a deleted cluster.
    pub fn forget(&self, key: &ObjectRef<K8ssandraCluster>) {
        self.registered.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}
