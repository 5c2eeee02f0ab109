//! Progressive rollout: a change that restarts Cassandra reaches one datacenter (or a wave of
//! them) at a time; the next starts once those are Ready for their new generation.
//!
//! Rules:
//! - A change restarts Cassandra when it touches anything of the CassandraDatacenter's spec
//!   but the fields cass-operator acts on without a rolling restart ([`RESTARTS_NOTHING`]).
//!   Its hash ([`restart_hash`]) is kept on the CassandraDatacenter with the instant it was
//!   applied; a datacenter whose hash differs from the plan's has a restart pending.
//! - A datacenter that is not settled (not Ready, or not stopped as asked) is in flight, and
//!   one with a restart pending that is not settled gets it at once (it is already disrupted,
//!   and the change may be its fix).
//! - A settled datacenter with a restart pending gets it, in spec order, while fewer than the
//!   wave's size are in flight; otherwise it is queued behind the first in flight.
//! - An in-flight datacenter not settled within the deadline after its last restart (or its
//!   creation) halts the rollout: nothing more is restarted until it settles, its spec
//!   changes (which gives it a new deadline), or the user resumes for the current generation.
//! - A datacenter whose region cannot be seen holds nothing back (one dead region never
//!   blocks the others).
//! - Everything else of the spec reaches every datacenter at once, as do all changes with the
//!   wave `all`.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::api::cassdc::CassandraDatacenterSpec;

/// On a CassandraDatacenter: the [`restart_hash`] of the spec last applied to it.
pub const RESTART_HASH_ANNOTATION: &str = "federator.k8ssandra.io/restart-hash";
/// On a CassandraDatacenter: when the spec with that hash was applied (RFC 3339).
pub const RESTARTED_AT_ANNOTATION: &str = "federator.k8ssandra.io/restart-applied-at";
/// On a K8ssandraCluster: how many datacenters restart at once, or `all`.
pub const WAVE_ANNOTATION: &str = "federator.k8ssandra.io/rollout-wave";
/// On a K8ssandraCluster: how long a datacenter may take to be Ready after its change
/// (`45m`, `2h`, `1h30m`) before the rollout halts.
pub const DEADLINE_ANNOTATION: &str = "federator.k8ssandra.io/rollout-deadline";
/// On a K8ssandraCluster: the `metadata.generation` for which a halted rollout goes on without
/// waiting for the datacenters that halted it.
pub const RESUME_ANNOTATION: &str = "federator.k8ssandra.io/rollout-resume";

/// Spec fields cass-operator acts on without restarting Cassandra's pods: scaling, stopping
/// and starting, users and the superuser Secret (created through the Management API), seeds
/// (an Endpoints object), the services' extra settings, and node replacements (their own
/// procedure). Everything else ends in the StatefulSet's pod template or the config Secret
/// whose hash is on it.
pub const RESTARTS_NOTHING: &[&str] = &[
    "size",
    "stopped",
    "superuserSecretName",
    "users",
    "additionalSeeds",
    "additionalServiceConfig",
    "replaceNodes",
];

/// Bound of a numeric wave: more than any cluster has datacenters.
const MAX_WAVE: usize = 1_000;
const MIN_DEADLINE: SignedDuration = SignedDuration::from_secs(10);
const MAX_DEADLINE: SignedDuration = SignedDuration::from_hours(7 * 24);
/// Default deadline: a base, and more per node (cass-operator restarts one node at a time).
const BASE_DEADLINE: SignedDuration = SignedDuration::from_mins(10);
const DEADLINE_PER_NODE: SignedDuration = SignedDuration::from_mins(5);

/// How many datacenters restart at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wave {
    Datacenters(usize),
    All,
}

impl fmt::Display for Wave {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wave::Datacenters(1) => write!(f, "one datacenter at a time"),
            Wave::Datacenters(n) => write!(f, "{n} datacenters at a time"),
            Wave::All => write!(f, "all datacenters at once"),
        }
    }
}

/// The K8ssandraCluster's rollout settings, from its annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutPolicy {
    pub wave: Wave,
    /// `None`: [`BASE_DEADLINE`] and [`DEADLINE_PER_NODE`].
    pub deadline: Option<SignedDuration>,
    /// The K8ssandraCluster's `metadata.generation`.
    pub generation: Option<i64>,
    /// The resume annotation names the current generation.
    pub resumed: bool,
    /// Annotations that could not be read, with why; their defaults apply.
    pub problems: Vec<String>,
}

impl Default for RolloutPolicy {
    fn default() -> RolloutPolicy {
        RolloutPolicy {
            wave: Wave::Datacenters(1),
            deadline: None,
            generation: None,
            resumed: false,
            problems: Vec::new(),
        }
    }
}

impl RolloutPolicy {
    /// Reads the policy from a K8ssandraCluster's annotations and generation.
    pub fn from_annotations(
        annotations: Option<&BTreeMap<String, String>>,
        generation: Option<i64>,
    ) -> RolloutPolicy {
        let mut policy = RolloutPolicy {
            generation,
            ..RolloutPolicy::default()
        };
        let get = |key: &str| annotations.and_then(|a| a.get(key)).map(|v| v.trim());
        if let Some(value) = get(WAVE_ANNOTATION) {
            match parse_wave(value) {
                Ok(wave) => policy.wave = wave,
                Err(why) => policy.problems.push(format!("{WAVE_ANNOTATION}: {why}")),
            }
        }
        if let Some(value) = get(DEADLINE_ANNOTATION) {
            match parse_deadline(value) {
                Ok(deadline) => policy.deadline = Some(deadline),
                Err(why) => policy.problems.push(format!("{DEADLINE_ANNOTATION}: {why}")),
            }
        }
        if let Some(value) = get(RESUME_ANNOTATION) {
            match value.parse::<i64>() {
                Ok(resume) => policy.resumed = Some(resume) == generation,
                Err(_) => policy.problems.push(format!(
                    "{RESUME_ANNOTATION}: {value:?} is not a generation (a whole number: the K8ssandraCluster's metadata.generation)"
                )),
            }
        }
        policy
    }

    /// How long a datacenter of `size` nodes may take to settle after its change.
    pub fn deadline(&self, size: i32) -> SignedDuration {
        self.deadline.unwrap_or_else(|| {
            let nodes = size.clamp(0, 10_000);
            BASE_DEADLINE.saturating_add(DEADLINE_PER_NODE.saturating_mul(nodes)).min(MAX_DEADLINE)
        })
    }
}

fn parse_wave(value: &str) -> Result<Wave, String> {
    if value.eq_ignore_ascii_case("all") {
        return Ok(Wave::All);
    }
    match value.parse::<usize>() {
        Ok(n) if (1..=MAX_WAVE).contains(&n) => Ok(Wave::Datacenters(n)),
        _ => Err(format!(
            "{value:?} is neither \"all\" nor a number of datacenters from 1 to {MAX_WAVE}; one datacenter at a time applies"
        )),
    }
}

fn parse_deadline(value: &str) -> Result<SignedDuration, String> {
    let bounds = || {
        format!(
            "a duration from {:#} to {:#} such as 45m, 2h or 1h30m",
            MIN_DEADLINE, MAX_DEADLINE
        )
    };
    match value.parse::<SignedDuration>() {
        Ok(deadline) if (MIN_DEADLINE..=MAX_DEADLINE).contains(&deadline) => Ok(deadline),
        _ => Err(format!(
            "{value:?} is not {}; the default (10m, and 5m per node) applies",
            bounds()
        )),
    }
}

/// The hash of everything in `spec` whose change restarts Cassandra (FNV-1a of its canonical
/// JSON, as the applied-hash).
pub fn restart_hash(spec: &CassandraDatacenterSpec) -> String {
    let value = serde_json::to_value(spec).unwrap_or(Value::Null);
    format!(
        "{:016x}",
        crate::apply::fnv1a(restarting_part(value).to_string().as_bytes())
    )
}

/// A spec (as JSON) without [`RESTARTS_NOTHING`].
pub fn restarting_part(mut spec: Value) -> Value {
    if let Some(fields) = spec.as_object_mut() {
        for field in RESTARTS_NOTHING {
            fields.remove(*field);
        }
    }
    spec
}

/// One existing datacenter, as the rollout sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutMember {
    pub datacenter: String,
    /// Its live restart hash differs from the plan's.
    pub restart_pending: bool,
    /// Ready, or stopped as asked, for its current generation.
    pub settled: bool,
    /// When its current restart hash was applied (else when it was created).
    pub changed_at: Option<Timestamp>,
    pub size: i32,
}

/// What the rollout allows a datacenter with a restart pending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Apply the change now.
    Go,
    /// Wait for `behind`, in flight, to settle.
    Queued { behind: String },
    /// The rollout is halted by `halted`.
    Halted(Halt),
}

/// An in-flight datacenter past its deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Halt {
    pub datacenter: String,
    /// Since its change (or creation).
    pub waited: SignedDuration,
    pub deadline: SignedDuration,
}

impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "datacenter {} is not Ready {:#} after its change (deadline {:#})",
            self.datacenter,
            round_to_minutes(self.waited),
            self.deadline
        )
    }
}

fn round_to_minutes(duration: SignedDuration) -> SignedDuration {
    SignedDuration::from_mins(duration.as_mins())
}

/// The gate of every member with a restart pending, by datacenter; `members` in spec order.
/// Pure: `now` is when the members were observed.
pub fn gates(
    policy: &RolloutPolicy,
    members: &[RolloutMember],
    now: Timestamp,
) -> BTreeMap<String, Gate> {
    let go_all = || {
        members
            .iter()
            .filter(|m| m.restart_pending)
            .map(|m| (m.datacenter.clone(), Gate::Go))
            .collect()
    };
    let wave = match policy.wave {
        Wave::All => return go_all(),
        Wave::Datacenters(n) => n,
    };
    let mut in_flight: Vec<&str> = Vec::new();
    let mut halts: Vec<Halt> = Vec::new();
    let mut gates = BTreeMap::new();
    for member in members.iter().filter(|m| !m.settled) {
        if member.restart_pending {
            gates.insert(member.datacenter.clone(), Gate::Go);
            in_flight.push(&member.datacenter);
            continue;
        }
        let deadline = policy.deadline(member.size);
        let waited = member.changed_at.map(|at| now.duration_since(at));
        match waited {
            Some(waited) if waited > deadline => {
                if !policy.resumed {
                    halts.push(Halt {
                        datacenter: member.datacenter.clone(),
                        waited,
                        deadline,
                    });
                }
            }
            _ => in_flight.push(&member.datacenter),
        }
    }
    for member in members.iter().filter(|m| m.settled && m.restart_pending) {
        let gate = if let Some(halt) = halts.first() {
            Gate::Halted(halt.clone())
        } else if in_flight.len() < wave {
            in_flight.push(&member.datacenter);
            Gate::Go
        } else {
            Gate::Queued {
                behind: in_flight.first().map(|dc| dc.to_string()).unwrap_or_default(),
            }
        };
        gates.insert(member.datacenter.clone(), gate);
    }
    gates
}

/// The instant to record with a datacenter's restart hash: kept while the hash is unchanged,
/// `now` when the change is applied.
pub fn changed_at_to_record(
    restart_pending: bool,
    recorded: Option<Timestamp>,
    now: Timestamp,
) -> Timestamp {
    match (restart_pending, recorded) {
        (false, Some(recorded)) => recorded,
        _ => now,
    }
}

#[cfg(test)]
mod tests;
