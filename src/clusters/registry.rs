//! The registry: context name → region. Kept current by the ClientConfig controller; read by
//! every controller that talks to regions.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use futures::Stream;
use tokio::sync::broadcast;
use tracing::info;

use super::change::{ChangeKind, RegionChange};
use super::identity::{self, HubIdentity};
use super::kubeconfig::{Refusal, RegionKubeconfig};
use super::probe;
use super::region::{HealthReport, Region, RegionError};
use crate::ops::Metrics;
use crate::settings::RegionSettings;

/// How many changes a slow subscriber may fall behind before it gets [`RegionChange::Resync`].
const CHANGE_BUFFER: usize = 1024;

/// The regions known to the control plane. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Registry {
    inner: Arc<RegistryInner>,
}

struct RegistryInner {
    hub: Region,
    hub_identity: Arc<HubIdentity>,
    /// Where the hub may be read as a region: the watched namespaces (none: all).
    hub_namespaces: Vec<String>,
    settings: RegionSettings,
    slots: RwLock<BTreeMap<String, Slot>>,
    changes: broadcast::Sender<RegionChange>,
    metrics: Arc<Metrics>,
}

/// What the registry holds for one context.
struct Slot {
    /// Name of the ClientConfig that provides the context.
    source: String,
    /// Hash of what the region was built from (kubeconfig bytes, context, policy), to tell an
    /// unchanged Secret from a rotated one without comparing credentials.
    fingerprint: u64,
    state: SlotState,
}

enum SlotState {
    Connected {
        region: Region,
        /// Aborts the prober when the slot is replaced or removed.
        _prober: AbortOnDrop,
    },
    Misconfigured(Refusal),
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One context as the registry sees it (for status displays and tests).
#[derive(Debug, Clone)]
pub struct RegionSummary {
    pub context: String,
    pub source: String,
    /// Err when the ClientConfig cannot be used.
    pub health: Result<HealthReport, Refusal>,
    /// Whether the context reaches the hub itself (None: not known yet, or misconfigured).
    pub reaches_hub: Option<bool>,
}

impl Registry {
    /// A registry whose context "" is the hub, reached with `hub`; its regions' requests and
    /// reachability are recorded in `metrics`.
    pub fn new(hub: kube::Client, settings: RegionSettings, metrics: Arc<Metrics>) -> Registry {
        let (changes, _) = broadcast::channel(CHANGE_BUFFER);
        Registry {
            inner: Arc::new(RegistryInner {
                hub_identity: Arc::new(HubIdentity::new(hub.clone())),
                hub: Region::hub(hub),
                hub_namespaces: Vec::new(),
                settings,
                slots: RwLock::new(BTreeMap::new()),
                changes,
                metrics,
            }),
        }
    }

    /// Reads the hub, as a region, only in `namespaces` (a namespaced install's Role grants no
    /// more there); regions are read in every namespace.
    pub fn with_hub_namespaces(mut self, namespaces: Vec<String>) -> Registry {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.hub_namespaces = namespaces;
        }
        self
    }

    /// The namespaces to read `context` in when looking for what Federator made there (none:
    /// all), for [`crate::cache::scoped`].
    pub fn namespaces(&self, context: &str) -> &[String] {
        match self.canonical(context) {
            "" => &self.inner.hub_namespaces,
            _ => &[],
        }
    }

    /// Whether `context` is a ClientConfig's context that reaches the hub itself (the cluster
    /// Federator runs in): it is then the hub everywhere, as if no context were named.
    pub fn reaches_hub(&self, context: &str) -> bool {
        !context.is_empty()
            && self.read_slots().get(context).is_some_and(|slot| {
                matches!(&slot.state, SlotState::Connected { region, .. } if region.reaches_hub() == Some(true))
            })
    }

    /// The one name of the region `context` reaches: "" for the hub (also when a ClientConfig's
    /// context reaches it), else `context` itself. What is keyed by region uses this name, so
    /// the hub's objects are neither watched twice nor copied onto themselves.
    pub fn canonical<'a>(&self, context: &'a str) -> &'a str {
        if self.reaches_hub(context) {
            ""
        } else {
            context
        }
    }

    /// The region for `context` ("" is the hub), if it can be used now: not unknown, not
    /// misconfigured and not marked unreachable by the prober. Never waits on the network. A
    /// context that reaches the hub gives the hub.
    pub fn region(&self, context: &str) -> Result<Region, RegionError> {
        if context.is_empty() {
            return Ok(self.inner.hub.clone());
        }
        let slots = self.read_slots();
        let slot = slots.get(context).ok_or_else(|| RegionError::UnknownContext {
            context: context.to_string(),
        })?;
        match &slot.state {
            SlotState::Connected { region, .. } if region.reaches_hub() == Some(true) => {
                Ok(self.inner.hub.clone())
            }
            SlotState::Connected { region, .. } => {
                region.check_available()?;
                Ok(region.clone())
            }
            SlotState::Misconfigured(refusal) => Err(RegionError::Misconfigured {
                context: context.to_string(),
                reason: refusal.message.clone(),
            }),
        }
    }

    /// Shorthand for `region(context)?.client()`.
    pub fn client(&self, context: &str) -> Result<kube::Client, RegionError> {
        self.region(context).map(|r| r.client())
    }

    /// The region for `context` even when it is unreachable (to watch it come back, or to read
    /// its health); None when unknown or misconfigured. A context that reaches the hub gives
    /// the hub.
    pub fn region_any_health(&self, context: &str) -> Option<Region> {
        match self.own_region(context) {
            Some(region) if region.reaches_hub() == Some(true) => Some(self.inner.hub.clone()),
            found => found,
        }
    }

    /// The region built from `context`'s own ClientConfig (the hub for ""), even when that
    /// context reaches the hub: for its ClientConfig's status.
    pub(crate) fn own_region(&self, context: &str) -> Option<Region> {
        if context.is_empty() {
            return Some(self.inner.hub.clone());
        }
        match &self.read_slots().get(context)?.state {
            SlotState::Connected { region, .. } => Some(region.clone()),
            SlotState::Misconfigured(_) => None,
        }
    }

    /// Every context some ClientConfig provides (usable or not) that is a region of its own,
    /// sorted: the hub's "" and the contexts that reach the hub are not listed.
    pub fn contexts(&self) -> Vec<String> {
        self.read_slots()
            .iter()
            .filter(|(_, slot)| {
                !matches!(&slot.state, SlotState::Connected { region, .. } if region.reaches_hub() == Some(true))
            })
            .map(|(context, _)| context.clone())
            .collect()
    }

    /// Every context with its source and health.
    pub fn summaries(&self) -> Vec<RegionSummary> {
        self.read_slots()
            .iter()
            .map(|(context, slot)| RegionSummary {
                context: context.clone(),
                source: slot.source.clone(),
                health: match &slot.state {
                    SlotState::Connected { region, .. } => Ok(region.health()),
                    SlotState::Misconfigured(refusal) => Err(refusal.clone()),
                },
                reaches_hub: match &slot.state {
                    SlotState::Connected { region, .. } => region.reaches_hub(),
                    SlotState::Misconfigured(_) => None,
                },
            })
            .collect()
    }

    /// Changes from now on. Lagging behind by more than 1024 changes gives
    /// [`RegionChange::Resync`].
    pub fn subscribe(&self) -> broadcast::Receiver<RegionChange> {
        self.inner.changes.subscribe()
    }

    /// [`Registry::subscribe`] as a stream, ready for `Controller::reconcile_on` after mapping
    /// each change to the objects that use its context.
    pub fn changes(&self) -> impl Stream<Item = RegionChange> + Send + 'static {
        futures::stream::unfold(self.subscribe(), |mut receiver| async move {
            match receiver.recv().await {
                Ok(change) => Some((change, receiver)),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    Some((RegionChange::Resync, receiver))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
    }

    pub fn settings(&self) -> &RegionSettings {
        &self.inner.settings
    }

    // ---- used by the ClientConfig controller ----

    /// The ClientConfig that provides `context` and the fingerprint its region was built from.
    pub(crate) fn slot_of(&self, context: &str) -> Option<(String, u64)> {
        self.read_slots().get(context).map(|slot| (slot.source.clone(), slot.fingerprint))
    }

    /// Builds a region from a checked kubeconfig and puts it in place of whatever `context`
    /// had; the old prober stops and a new one starts (it probes at once).
    pub(crate) async fn install(
        &self,
        source: &str,
        fingerprint: u64,
        kubeconfig: &RegionKubeconfig,
    ) -> Result<Region, Refusal> {
        let config = kubeconfig.client_config().await?;
        let region = Region::new(
            kubeconfig.context.clone(),
            Some(source.to_string()),
            kubeconfig.server.clone(),
            kubeconfig.credential_expiry,
            config,
            &self.inner.settings,
            &self.inner.metrics,
        )
        .map_err(|_| {
            // kube's message could name parts of the credentials; say which part failed.
            Refusal::new(
                super::kubeconfig::RefusalReason::KubeconfigInvalid,
                format!(
                    "context {:?}: no TLS client could be built from its CA, client certificate and key",
                    kubeconfig.context
                ),
            )
        })?;
        // Known before anyone is given the region, so that a context reaching the hub is never
        // used as a region of its own; one that does not answer now is checked by its prober.
        let timeout = probe::probe_timeout(
            self.inner.settings.probe_interval,
            self.inner.settings.request_timeout,
        );
        identity::check(&region, &self.inner.hub_identity, timeout).await;
        let prober = tokio::spawn(probe::run(
            region.clone(),
            self.inner.settings.probe_interval,
            self.inner.settings.request_timeout,
            self.inner.changes.clone(),
            self.inner.hub_identity.clone(),
            Arc::clone(&self.inner.metrics),
        ));
        let slot = Slot {
            source: source.to_string(),
            fingerprint,
            state: SlotState::Connected {
                region: region.clone(),
                _prober: AbortOnDrop(prober),
            },
        };
        let kind = self.put(&kubeconfig.context, slot);
        info!(context = %kubeconfig.context, client_config = source, server = %kubeconfig.server, change = ?kind, "region client installed");
        Ok(region)
    }

    /// Why `context` cannot be used, when its ClientConfig is refused.
    pub(crate) fn refusal_of(&self, context: &str) -> Option<Refusal> {
        match &self.read_slots().get(context)?.state {
            SlotState::Misconfigured(refusal) => Some(refusal.clone()),
            SlotState::Connected { .. } => None,
        }
    }

    /// Records that `source`'s ClientConfig for `context` cannot be used.
    pub(crate) fn mark_misconfigured(
        &self,
        source: &str,
        context: &str,
        fingerprint: u64,
        refusal: Refusal,
    ) {
        let unchanged = self.read_slots().get(context).is_some_and(|slot| {
            slot.source == source
                && slot.fingerprint == fingerprint
                && matches!(&slot.state, SlotState::Misconfigured(r) if *r == refusal)
        });
        if unchanged {
            return;
        }
        let slot = Slot {
            source: source.to_string(),
            fingerprint,
            state: SlotState::Misconfigured(refusal),
        };
        self.put(context, slot);
    }

    /// Removes every context `source` provides, except `keep`.
    pub(crate) fn release(&self, source: &str, keep: Option<&str>) {
        let removed: Vec<String> = {
            let mut slots = self.write_slots();
            let gone: Vec<String> = slots
                .iter()
                .filter(|(context, slot)| slot.source == source && Some(context.as_str()) != keep)
                .map(|(context, _)| context.clone())
                .collect();
            for context in &gone {
                slots.remove(context);
            }
            gone
        };
        for context in removed {
            info!(context = %context, client_config = source, "region removed");
            self.inner.metrics.forget_region(&context);
            self.notify(context, ChangeKind::Removed);
        }
    }

    /// Tells subscribers that a watch in `context` was refused, or works again.
    pub fn notify_watch_problem(&self, context: &str) {
        self.notify(context.to_string(), ChangeKind::WatchProblem);
    }

    fn put(&self, context: &str, slot: Slot) -> ChangeKind {
        let connected = matches!(slot.state, SlotState::Connected { .. });
        let new_source = slot.source.clone();
        let reachable = match &slot.state {
            SlotState::Connected { region, .. } => region.health().reachable == Some(true),
            SlotState::Misconfigured(_) => false,
        };
        self.inner.metrics.set_region_reachable(context, reachable);
        let previous = self.write_slots().insert(context.to_string(), slot);
        let kind = match (&previous, connected) {
            (_, false) => ChangeKind::Misconfigured,
            (Some(old), true) if old.source != new_source => ChangeKind::Claimed,
            (Some(old), true) if matches!(old.state, SlotState::Connected { .. }) => {
                ChangeKind::Replaced
            }
            _ => ChangeKind::Added,
        };
        // The previous slot (and its prober) is dropped here, outside the lock.
        drop(previous);
        self.notify(context.to_string(), kind);
        kind
    }

    fn notify(&self, context: String, kind: ChangeKind) {
        let _ = self.inner.changes.send(RegionChange::Context { context, kind });
    }

    fn read_slots(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Slot>> {
        self.inner.slots.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_slots(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Slot>> {
        self.inner.slots.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
