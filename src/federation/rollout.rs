//! Which datacenters to create, update or delete now, given the plan and what the regions show.
//!
//! Rules:
//! - A datacenter that does not exist yet is created only when every datacenter before it in
//!   spec order exists and is settled, and every existing datacenter is settled: a new cluster
//!   bootstraps one datacenter after another, and a datacenter added later waits for the
//!   existing ones to settle (its nodes join through their seeds). Settled is Ready, or stopped
//!   as the spec asks (`stopped: true`: cass-operator reports Stopped, never Ready, until it is
//!   started again).
//! - A datacenter marked to be rebuilt holds back the creation of the others until its rebuild
//!   is done: datacenters join one at a time, with their data.
//! - A datacenter that may be created waits until its secrets are in its region.
//! - A datacenter that exists gets the desired spec at once, whatever the others do, unless
//!   the change restarts Cassandra: then [`super::progressive`] says when (one datacenter at a
//!   time by default).
//! - Stopping a datacenter that is to be rebuilt or rebuilding is refused until the rebuild
//!   ends (the rebuild would fail, and its data would stay missing): it is left as it is.
//! - A datacenter taken out of the spec is deleted, annotated to decommission first; one at a
//!   time, and only once no keyspace replicates to it (as last read): the keyspace stage takes
//!   it out of the system keyspaces; a user keyspace that still names it blocks the removal
//!   until the user alters it.
//! - Adding and removing datacenters in one change is refused (that is what a rename looks
//!   like, and deleting the "old" one would drop its data): nothing is created or deleted, the
//!   existing datacenters are still updated.
//! - A datacenter whose region is unknown, unreachable, lacks the namespace, or holds someone
//!   else's CassandraDatacenter is left alone; the other regions proceed.
//! - An existing datacenter asked for another `num_tokens` than it runs with is left alone
//!   (Cassandra would not start its nodes again); the other datacenters proceed.

use std::fmt;

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::Resource;

use super::observed::{ObservedCluster, RemoteState};
use super::plan::{ClusterPlan, NumTokensChange};
use super::progressive::{
    Gate, Halt, RolloutMember, Wave, changed_at_to_record, gates, restart_hash,
};
use super::rebuild::is_marked_for_rebuild;
use crate::cassandra::replication::is_system_keyspace;

/// How a datacenter whose restarting change waits for its turn starts its wait's words (in
/// `Progressing`, which `federator status` reads).
pub const RESTART_QUEUED: &str = "its change restarts Cassandra";

/// The decisions for one reconcile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Actions {
    /// Datacenters of the plan in spec order, then removed ones by name.
    pub decisions: Vec<DatacenterDecision>,
    /// Set when datacenters were added and removed in the same change.
    pub refused: Option<TopologyChange>,
}

/// The datacenters added and removed by a change that was refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopologyChange {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl fmt::Display for TopologyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "datacenters {} added and {} removed in one change; a datacenter cannot be renamed (its data would be lost): restore {}, then add and remove datacenters in separate changes",
            self.added.join(", "),
            self.removed.join(", "),
            self.removed.join(", ")
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DatacenterDecision {
    pub datacenter: String,
    pub context: String,
    pub namespace: String,
    pub decision: Decision,
    /// For a create or update: the restart hash and its instant, recorded on the object.
    pub restart: Option<RestartRecord>,
}

/// What a CassandraDatacenter records of the last change that restarted it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartRecord {
    pub hash: String,
    pub changed_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Apply the planned object; it does not exist yet.
    Create,
    /// Apply the planned object over the existing one.
    Update,
    /// Delete the CassandraDatacenter; when `annotate_first`, set
    /// `cassandra.datastax.com/decommission-on-delete: "true"` on it before deleting.
    Delete { annotate_first: bool },
    /// Nothing to do yet; it will happen by itself.
    Wait(WaitReason),
    /// Nothing can be done until the user or the environment changes something.
    Blocked(BlockReason),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitReason {
    /// Created once this datacenter reports Ready.
    DatacenterNotReady { datacenter: String },
    /// Created once this datacenter's readiness can be seen again.
    DatacenterUnobservable { datacenter: String },
    /// Created once this datacenter, added before it, is rebuilt.
    DatacenterRebuilding { datacenter: String },
    /// Its CassandraDatacenter is being deleted (decommissioning, or deleted by hand: it is
    /// created again once gone).
    Deleting,
    /// Removals go one at a time; this one is next after `behind`.
    RemovalQueued { behind: String },
    /// Created once its secrets are replicated to its region, or applied once the encryption
    /// store passwords its config needs can be read; `detail` says what is awaited.
    SecretsNotReady { detail: String },
    /// Created or applied once the per-node ConfigMap it names can be read in its region.
    PerNodeConfigMissing { detail: String },
    /// Created or applied once the MedusaConfiguration `spec.medusa` names can be read.
    MedusaConfigurationMissing { detail: String },
    /// Deleted once no system keyspace replicates to it: those it is still in (empty while the
    /// replication cannot be read).
    LeavingReplication { keyspaces: Vec<String> },
    /// Its change restarts Cassandra: applied once `behind` settles with its own.
    RestartQueued { behind: String, wave: Wave },
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::DatacenterNotReady { datacenter } => {
                write!(f, "waiting for datacenter {datacenter} to be Ready")
            }
            WaitReason::DatacenterUnobservable { datacenter } => write!(
                f,
                "waiting until datacenter {datacenter} can be observed (its region does not answer)"
            ),
            WaitReason::DatacenterRebuilding { datacenter } => {
                write!(f, "waiting for datacenter {datacenter} to be rebuilt")
            }
            WaitReason::Deleting => write!(f, "its CassandraDatacenter is being deleted"),
            WaitReason::RemovalQueued { behind } => {
                write!(f, "removed after datacenter {behind}")
            }
            WaitReason::SecretsNotReady { detail }
            | WaitReason::PerNodeConfigMissing { detail }
            | WaitReason::MedusaConfigurationMissing { detail } => {
                write!(f, "{detail}")
            }
            WaitReason::LeavingReplication { keyspaces } if keyspaces.is_empty() => write!(
                f,
                "deleted once the system keyspaces' replication is read through a Ready datacenter and no longer names it"
            ),
            WaitReason::LeavingReplication { keyspaces } => write!(
                f,
                "deleted once {} no longer replicate to it (being altered)",
                keyspaces.join(", ")
            ),
            WaitReason::RestartQueued { behind, wave } => write!(
                f,
                "{RESTART_QUEUED}: applied once datacenter {behind} is Ready ({wave})"
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockReason {
    UnknownContext,
    RegionUnreachable {
        reason: String,
    },
    NamespaceMissing,
    Conflict {
        owner: Option<String>,
    },
    /// The controller passed no observation for this datacenter.
    NotObserved,
    TopologyChangeRefused,
    /// The spec changes the `num_tokens` of this existing datacenter.
    NumTokensChangeRefused(NumTokensChange),
    /// A removed datacenter that these user keyspaces still replicate to.
    KeyspacesReplicateToIt {
        keyspaces: Vec<String>,
    },
    /// Its change restarts Cassandra, and the rollout is halted by a datacenter past its
    /// deadline.
    RolloutHalted(Halt),
    /// The spec stops it while it is to be rebuilt or rebuilding.
    StopRefusedWhileRebuilding,
}

impl BlockReason {
    fn of(state: &RemoteState) -> Option<BlockReason> {
        Some(match state {
            RemoteState::UnknownContext => BlockReason::UnknownContext,
            RemoteState::Unreachable { reason } => BlockReason::RegionUnreachable {
                reason: reason.clone(),
            },
            RemoteState::NamespaceMissing => BlockReason::NamespaceMissing,
            RemoteState::Conflict { owner } => BlockReason::Conflict {
                owner: owner.clone(),
            },
            RemoteState::Absent | RemoteState::Present(_) => return None,
        })
    }
}

impl Actions {
    fn with<'a>(
        &'a self,
        pick: impl Fn(&Decision) -> bool + 'a,
    ) -> impl Iterator<Item = &'a DatacenterDecision> + 'a {
        self.decisions.iter().filter(move |d| pick(&d.decision))
    }

    /// Datacenters to create now.
    pub fn creates(&self) -> impl Iterator<Item = &DatacenterDecision> {
        self.with(|d| matches!(d, Decision::Create))
    }

    /// Datacenters to update now.
    pub fn updates(&self) -> impl Iterator<Item = &DatacenterDecision> {
        self.with(|d| matches!(d, Decision::Update))
    }

    /// Datacenters to delete now.
    pub fn deletes(&self) -> impl Iterator<Item = &DatacenterDecision> {
        self.with(|d| matches!(d, Decision::Delete { .. }))
    }

    /// The decision for one datacenter.
    pub fn decision(&self, datacenter: &str) -> Option<&Decision> {
        self.decisions.iter().find(|d| d.datacenter == datacenter).map(|d| &d.decision)
    }
}

fn secrets_not_ready(detail: &str) -> Decision {
    Decision::Wait(WaitReason::SecretsNotReady {
        detail: detail.to_string(),
    })
}

/// The wait of a datacenter whose spec cannot be completed yet: an encryption store password
/// or its per-node ConfigMap cannot be read. Never applied without them: that would take them
/// out of its config and pods.
fn inputs_missing(observed: &ObservedCluster, datacenter: &str) -> Option<Decision> {
    if let Some(detail) = &observed.medusa_configuration_missing {
        return Some(Decision::Wait(WaitReason::MedusaConfigurationMissing {
            detail: detail.clone(),
        }));
    }
    if let Some(detail) = observed.passwords_missing.get(datacenter) {
        return Some(secrets_not_ready(detail));
    }
    let detail = observed.per_node_config_missing.get(datacenter)?;
    Some(Decision::Wait(WaitReason::PerNodeConfigMissing {
        detail: detail.clone(),
    }))
}

/// Decides what to do in every region now. Pure: the same plan and observation give the same
/// actions.
pub fn decide(plan: &ClusterPlan, observed: &ObservedCluster) -> Actions {
    let state_of = |name: &str| observed.get(name).map(|o| &o.state);

    // Removed: owned datacenters the plan does not have (that still exist, or may).
    let removed: Vec<(&String, &super::observed::ObservedDatacenter)> = observed
        .datacenters
        .iter()
        .filter(|(name, _)| plan.datacenter(name).is_none())
        .filter(|(_, o)| {
            matches!(
                o.state,
                RemoteState::Present(_) | RemoteState::Unreachable { .. }
            )
        })
        .collect();
    let added: Vec<String> = plan
        .datacenters
        .iter()
        .filter(|dc| !observed.is_known(&dc.name))
        .map(|dc| dc.name.clone())
        .collect();
    let refused = (!removed.is_empty() && !added.is_empty()).then(|| TopologyChange {
        added: added.clone(),
        removed: removed.iter().map(|(name, _)| (*name).clone()).collect(),
    });

    let rollout = restart_rollout(plan, observed);
    let mut decisions = Vec::new();
    for (index, dc) in plan.datacenters.iter().enumerate() {
        let decision = match state_of(&dc.name) {
            None => Decision::Blocked(BlockReason::NotObserved),
            Some(state) if state.is_deleting() => Decision::Wait(WaitReason::Deleting),
            Some(RemoteState::Present(live)) => match &dc.num_tokens_change {
                Some(change) => {
                    Decision::Blocked(BlockReason::NumTokensChangeRefused(change.clone()))
                }
                None => match inputs_missing(observed, &dc.name) {
                    Some(wait) => wait,
                    None if dc.datacenter.spec.stopped == Some(true)
                        && !live.stop_requested()
                        && is_marked_for_rebuild(live.meta()) =>
                    {
                        Decision::Blocked(BlockReason::StopRefusedWhileRebuilding)
                    }
                    None => match rollout.gates.get(&dc.name) {
                        None | Some(Gate::Go) => Decision::Update,
                        Some(Gate::Queued { behind }) => {
                            Decision::Wait(WaitReason::RestartQueued {
                                behind: behind.clone(),
                                wave: plan.rollout.wave,
                            })
                        }
                        Some(Gate::Halted(halt)) => {
                            Decision::Blocked(BlockReason::RolloutHalted(halt.clone()))
                        }
                    },
                },
            },
            Some(state) => match BlockReason::of(state) {
                Some(block) => Decision::Blocked(block),
                None if refused.is_some() && added.contains(&dc.name) => {
                    Decision::Blocked(BlockReason::TopologyChangeRefused)
                }
                None => match creation_blocker(plan, observed, index) {
                    Some(wait) => Decision::Wait(wait),
                    None => match observed.secrets_pending.get(&dc.name) {
                        Some(detail) => secrets_not_ready(detail),
                        None => inputs_missing(observed, &dc.name).unwrap_or(Decision::Create),
                    },
                },
            },
        };
        let restart = matches!(decision, Decision::Create | Decision::Update).then(|| {
            let live = state_of(&dc.name).and_then(RemoteState::present);
            let pending = rollout.pending.get(&dc.name).copied().unwrap_or(true);
            RestartRecord {
                hash: rollout.hashes.get(&dc.name).cloned().unwrap_or_default(),
                changed_at: changed_at_to_record(
                    pending,
                    live.and_then(|l| l.changed_at()),
                    observed.observed_at,
                ),
            }
        });
        decisions.push(DatacenterDecision {
            datacenter: dc.name.clone(),
            context: dc.context.clone(),
            namespace: dc.namespace.clone(),
            decision,
            restart,
        });
    }

    // One removal at a time: a decommission in progress holds the others back.
    let mut removing: Option<&String> =
        removed.iter().find(|(_, o)| o.state.is_deleting()).map(|(name, _)| *name);
    for (name, observation) in &removed {
        let decision = if refused.is_some() {
            Decision::Blocked(BlockReason::TopologyChangeRefused)
        } else if let Some(block) = BlockReason::of(&observation.state) {
            Decision::Blocked(block)
        } else if observation.state.is_deleting() {
            Decision::Wait(WaitReason::Deleting)
        } else if let Some(behind) = removing {
            Decision::Wait(WaitReason::RemovalQueued {
                behind: behind.clone(),
            })
        } else if let Some(keyspaces) = still_replicated(observed, name, observation) {
            removing = Some(name);
            let (system, user): (Vec<String>, Vec<String>) =
                keyspaces.into_iter().partition(|keyspace| {
                    is_system_keyspace(keyspace) || observed.managed_keyspaces.contains(keyspace)
                });
            match user.is_empty() {
                true => Decision::Wait(WaitReason::LeavingReplication { keyspaces: system }),
                false => Decision::Blocked(BlockReason::KeyspacesReplicateToIt { keyspaces: user }),
            }
        } else {
            removing = Some(name);
            Decision::Delete {
                annotate_first: !observation.state.has_decommission_annotation(),
            }
        };
        decisions.push(DatacenterDecision {
            datacenter: (*name).clone(),
            context: observation.context.clone(),
            namespace: observation.namespace.clone(),
            decision,
            restart: None,
        });
    }
    Actions { decisions, refused }
}

/// The existing datacenters as the progressive rollout sees them.
struct RestartRollout {
    /// Restart hash of every planned datacenter.
    hashes: BTreeMap<String, String>,
    /// Whether each existing datacenter has a restart pending.
    pending: BTreeMap<String, bool>,
    gates: BTreeMap<String, Gate>,
}

fn restart_rollout(plan: &ClusterPlan, observed: &ObservedCluster) -> RestartRollout {
    let mut hashes = BTreeMap::new();
    let mut pending = BTreeMap::new();
    let mut members = Vec::new();
    for dc in &plan.datacenters {
        let hash = restart_hash(&dc.datacenter.spec);
        let live = observed.get(&dc.name).and_then(|o| o.state.present());
        if let Some(live) = live.filter(|live| live.meta().deletion_timestamp.is_none()) {
            // A datacenter held back for other reasons takes no place in a wave.
            let held =
                dc.num_tokens_change.is_some() || inputs_missing(observed, &dc.name).is_some();
            let restart_pending = live.restart_pending(&hash, &dc.datacenter);
            pending.insert(dc.name.clone(), restart_pending);
            members.push(RolloutMember {
                datacenter: dc.name.clone(),
                restart_pending: restart_pending && !held,
                settled: live.is_ready() || live.is_stopped(),
                changed_at: live.changed_at(),
                size: live.size(),
            });
        }
        hashes.insert(dc.name.clone(), hash);
    }
    let gates = gates(&plan.rollout, &members, observed.observed_at);
    RestartRollout {
        hashes,
        pending,
        gates,
    }
}

/// The keyspaces a removed datacenter is still in (empty when that cannot be read yet), or
/// `None` when it may go: Cassandra refuses to decommission the last nodes of a datacenter a
/// keyspace replicates to.
pub(crate) fn still_replicated(
    observed: &ObservedCluster,
    name: &str,
    observation: &super::observed::ObservedDatacenter,
) -> Option<Vec<String>> {
    let live_name =
        observation.state.present().and_then(|live| live.status()?.datacenter_name.clone());
    let cassandra_name = live_name.as_deref().unwrap_or(name);
    let Some(replication) = &observed.keyspace_replication else {
        return Some(Vec::new());
    };
    let keyspaces: Vec<String> = replication
        .iter()
        .filter(|(_, datacenters)| datacenters.contains(cassandra_name))
        .map(|(keyspace, _)| keyspace.clone())
        .collect();
    (!keyspaces.is_empty()).then_some(keyspaces)
}

/// Why the datacenter at `index` (absent) cannot be created yet: the first other datacenter
/// that must be settled (Ready or stopped) first and is not. Every datacenter before it must
/// be; after it, the ones that exist must be (those not created yet come later), and so must
/// the ones that existed but cannot be seen now.
fn creation_blocker(
    plan: &ClusterPlan,
    observed: &ObservedCluster,
    index: usize,
) -> Option<WaitReason> {
    plan.datacenters.iter().enumerate().filter(|(other, _)| *other != index).find_map(
        |(other, dc)| {
            let state = observed.get(&dc.name).map(|o| &o.state);
            let rebuilding = state
                .and_then(RemoteState::present)
                .is_some_and(|live| is_marked_for_rebuild(live.meta()));
            if rebuilding {
                // One datacenter joins at a time, its data included (as upstream): the next
                // is created once this one's rebuild is done.
                return Some(WaitReason::DatacenterRebuilding {
                    datacenter: dc.name.clone(),
                });
            }
            if state.is_some_and(RemoteState::is_settled) {
                return None;
            }
            let visible = matches!(state, Some(RemoteState::Present(_) | RemoteState::Absent));
            let must_be_ready = other < index
                || match state {
                    Some(RemoteState::Present(_)) => true,
                    Some(RemoteState::Absent) => false,
                    _ => observed.is_known(&dc.name),
                };
            if !must_be_ready {
                return None;
            }
            let datacenter = dc.name.clone();
            Some(if !visible && observed.is_known(&dc.name) {
                WaitReason::DatacenterUnobservable { datacenter }
            } else {
                WaitReason::DatacenterNotReady { datacenter }
            })
        },
    )
}

#[cfg(test)]
pub(crate) mod tests;
