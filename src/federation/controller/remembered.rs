//! What the K8ssandraCluster controller remembers between reconciles about Cassandra itself:
//! the keyspaces last read (so that they are not asked again while nothing changed) and the
//! rebuilds that ended lately (so that an older watched copy does not bring a mark back).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::runtime::reflector::ObjectRef;

use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::federation::keyspaces::KeyspacesOutcome;
use crate::federation::reaper_registration::{self as registration, Registration};

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

/// What registering each cluster with the Reaper its `reaperRef` names came to lately, with
/// what it was for (the target and the Reaper's uid) and when.
#[derive(Default)]
pub struct ReaperRegistrations {
    last: Mutex<HashMap<ObjectRef<K8ssandraCluster>, (u64, Instant, Registration)>>,
}

impl ReaperRegistrations {
    /// The last outcome for the same target and Reaper while it holds: a registration for
    /// [`registration::RECHECK_AFTER`], a failure of Reaper's for [`registration::RETRY_AFTER`]
    /// (a Reaper that does not
    /// answer holds up each reconcile until the calls time out).
    pub(super) fn fresh(
        &self,
        key: &ObjectRef<K8ssandraCluster>,
        fingerprint: u64,
    ) -> Option<Registration> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let (known, at, outcome) = last.get(key)?;
        let holds = match outcome.is_registered() {
            true => registration::RECHECK_AFTER,
            false => registration::RETRY_AFTER,
        };
        (*known == fingerprint && at.elapsed() < holds).then(|| outcome.clone())
    }

    pub(super) fn remember(
        &self,
        key: ObjectRef<K8ssandraCluster>,
        fingerprint: u64,
        outcome: Registration,
    ) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.insert(key, (fingerprint, Instant::now(), outcome));
    }

    /// Forgets a deleted cluster.
    pub fn forget(&self, key: &ObjectRef<K8ssandraCluster>) {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_is_trusted_for_its_target_and_reaper_only() {
        let memo = ReaperRegistrations::default();
        let key = ObjectRef::<K8ssandraCluster>::new("demo").within("apps");
        assert_eq!(memo.fresh(&key, 1), None);
        memo.remember(key.clone(), 1, Registration::Registered);
        assert_eq!(memo.fresh(&key, 1), Some(Registration::Registered));
        assert_eq!(memo.fresh(&key, 2), None, "another target or a new Reaper");
        let refused = Registration::Refused("no cluster demo with seed host x".into());
        memo.remember(key.clone(), 1, refused.clone());
        assert_eq!(
            memo.fresh(&key, 1),
            Some(refused),
            "Reaper is not asked again at once"
        );
        memo.forget(&key);
        assert_eq!(memo.fresh(&key, 1), None);
    }
}
