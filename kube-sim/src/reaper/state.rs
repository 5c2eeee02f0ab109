//! One Reaper's memory (what Reaper keeps in its `reaper_db` keyspace or in memory): registered
//! clusters, repair units, runs with their segments, schedules and logins; and the repair
//! runner, which moves RUNNING runs on as the Cassandra model's clock passes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::cassandra::{CassandraModel, RepairRequest};

/// Model time one segment's repair takes: a run of N segments is DONE N of these after it
/// started (segments run one after another, as with Reaper's default of one per replica set).
pub const SEGMENT_MILLIS: i64 = 10;
const DAY_MILLIS: i64 = 86_400_000;

/// `RepairRun.RunState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    Paused,
    NotStarted,
    Error,
    Done,
    Aborted,
    Deleted,
}

impl RunState {
    pub const ALL: [RunState; 7] = [
        RunState::Running,
        RunState::Paused,
        RunState::NotStarted,
        RunState::Error,
        RunState::Done,
        RunState::Aborted,
        RunState::Deleted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RunState::Running => "RUNNING",
            RunState::Paused => "PAUSED",
            RunState::NotStarted => "NOT_STARTED",
            RunState::Error => "ERROR",
            RunState::Done => "DONE",
            RunState::Aborted => "ABORTED",
            RunState::Deleted => "DELETED",
        }
    }

    /// `RunState.valueOf(input.toUpperCase())`.
    pub fn parse(input: &str) -> Option<RunState> {
        let upper = input.to_uppercase();
        RunState::ALL.into_iter().find(|state| state.name() == upper)
    }

    pub fn is_terminated(self) -> bool {
        matches!(
            self,
            RunState::Error | RunState::Done | RunState::Aborted | RunState::Deleted
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentState {
    NotStarted,
    Running,
    Done,
}

impl SegmentState {
    fn name(self) -> &'static str {
        match self {
            SegmentState::NotStarted => "NOT_STARTED",
            SegmentState::Running => "RUNNING",
            SegmentState::Done => "DONE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleState {
    Active,
    Paused,
}

impl ScheduleState {
    pub fn name(self) -> &'static str {
        match self {
            ScheduleState::Active => "ACTIVE",
            ScheduleState::Paused => "PAUSED",
        }
    }

    pub fn parse(input: &str) -> Option<ScheduleState> {
        match input.to_uppercase().as_str() {
            "ACTIVE" => Some(ScheduleState::Active),
            "PAUSED" => Some(ScheduleState::Paused),
            _ => None,
        }
    }
}

/// A cluster Reaper knows, under `Cluster.toSymbolicName` of its Cassandra name.
#[derive(Debug, Clone)]
pub struct RegisteredCluster {
    pub name: String,
    /// The cluster's name in the Cassandra model (`cluster_name` as Cassandra reports it).
    pub model_name: String,
    pub seed_hosts: BTreeSet<String>,
    pub jmx_port: i64,
}

/// What a run or schedule repairs (`RepairUnit`); identical requests share one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairUnit {
    pub id: Uuid,
    pub cluster: String,
    pub keyspace: String,
    pub tables: BTreeSet<String>,
    pub incremental: bool,
    pub subrange_incremental: bool,
    pub nodes: BTreeSet<String>,
    pub datacenters: BTreeSet<String>,
    pub blacklisted: BTreeSet<String>,
    pub thread_count: i64,
    pub timeout: i64,
}

impl RepairUnit {
    /// The same unit apart from its id (`RepairUnitService.identicalUnit`).
    pub fn same_as(&self, other: &RepairUnit) -> bool {
        RepairUnit {
            id: other.id,
            ..self.clone()
        } == *other
    }
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub id: Uuid,
    /// Token ranges `(start, end]`, all with the same replicas.
    pub ranges: Vec<(i64, i64)>,
    /// Replica address → datacenter.
    pub replicas: BTreeMap<String, String>,
    pub state: SegmentState,
    pub fail_count: u32,
    pub coordinator: Option<String>,
    pub start: Option<i64>,
    pub end: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct RepairRun {
    pub id: Uuid,
    pub unit_id: Uuid,
    pub cluster: String,
    pub cause: String,
    pub owner: String,
    pub state: RunState,
    pub creation: i64,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub pause: Option<i64>,
    pub intensity: f64,
    pub parallelism: String,
    pub last_event: String,
    pub segments: Vec<Segment>,
    /// When the runner repairs the next segment.
    pub next_segment_due: i64,
}

impl RepairRun {
    pub fn segments_repaired(&self) -> usize {
        self.segments.iter().filter(|s| s.state == SegmentState::Done).count()
    }
}

#[derive(Debug, Clone)]
pub struct RepairSchedule {
    pub id: Uuid,
    pub unit_id: Uuid,
    pub owner: String,
    pub state: ScheduleState,
    pub days_between: i64,
    pub next_activation: i64,
    pub creation: i64,
    pub pause: Option<i64>,
    pub segment_count_per_node: i64,
    pub parallelism: String,
    pub intensity: f64,
    pub adaptive: bool,
    pub percent_unrepaired_threshold: i64,
    /// The runs it started, oldest first.
    pub runs: Vec<Uuid>,
}

/// Everything one Reaper remembers.
pub struct ReaperState {
    pub clusters: BTreeMap<String, RegisteredCluster>,
    pub units: Vec<RepairUnit>,
    pub runs: Vec<RepairRun>,
    pub schedules: Vec<RepairSchedule>,
    /// Shiro session ids of `POST /login`s.
    pub sessions: HashMap<String, String>,
    /// Tokens `GET /jwt` handed out.
    pub tokens: HashSet<String>,
    /// When auto-scheduling next looks at every cluster (None: it has not started).
    pub auto_scheduling_next_poll: Option<i64>,
    rng: fastrand::Rng,
}

impl Default for ReaperState {
    fn default() -> Self {
        ReaperState {
            clusters: BTreeMap::new(),
            units: Vec::new(),
            runs: Vec::new(),
            schedules: Vec::new(),
            sessions: HashMap::new(),
            tokens: HashSet::new(),
            auto_scheduling_next_poll: None,
            rng: fastrand::Rng::new(),
        }
    }
}

impl ReaperState {
    pub fn new_uuid(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        for byte in &mut bytes {
            *byte = self.rng.u8(..);
        }
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    pub fn random_text(&mut self, length: usize) -> String {
        (0..length).map(|_| self.rng.alphanumeric()).collect()
    }

    pub fn unit(&self, id: Uuid) -> Option<&RepairUnit> {
        self.units.iter().find(|unit| unit.id == id)
    }

    pub fn run(&self, id: Uuid) -> Option<&RepairRun> {
        self.runs.iter().find(|run| run.id == id)
    }

    pub fn run_mut(&mut self, id: Uuid) -> Option<&mut RepairRun> {
        self.runs.iter_mut().find(|run| run.id == id)
    }

    pub fn schedule(&self, id: Uuid) -> Option<&RepairSchedule> {
        self.schedules.iter().find(|schedule| schedule.id == id)
    }

    pub fn schedule_mut(&mut self, id: Uuid) -> Option<&mut RepairSchedule> {
        self.schedules.iter_mut().find(|schedule| schedule.id == id)
    }

    /// The unit like `wanted`, made if there is none (`getOrCreateRepairUnit`).
    pub fn unit_for(&mut self, wanted: RepairUnit) -> Uuid {
        if let Some(existing) = self.units.iter().find(|unit| unit.same_as(&wanted)) {
            return existing.id;
        }
        let id = wanted.id;
        self.units.push(wanted);
        id
    }

    /// Another run of the unit is RUNNING (Reaper lets one run per unit repair at a time).
    pub fn unit_is_repairing(&self, unit_id: Uuid, except: Uuid) -> bool {
        self.runs
            .iter()
            .any(|run| run.unit_id == unit_id && run.id != except && run.state == RunState::Running)
    }

    /// Registers a run of `unit_id` in NOT_STARTED, its segments cut from the ring now
    /// (`RepairRunService.registerRepairRun`).
    #[allow(clippy::too_many_arguments)]
    pub fn register_run(
        &mut self,
        model: &CassandraModel,
        unit_id: Uuid,
        cause: String,
        owner: String,
        segment_count_per_node: i64,
        parallelism: String,
        intensity: f64,
    ) -> Result<Uuid, String> {
        let unit = self.unit(unit_id).cloned().ok_or("unknown repair unit")?;
        let cluster = self.clusters.get(&unit.cluster).cloned().ok_or("unknown cluster")?;
        let failed = || {
            format!(
                "failed to generate repair segments for cluster \"{}\"",
                cluster.name
            )
        };
        let ranges =
            model.range_to_endpoints(&cluster.model_name, &unit.keyspace).map_err(|_| failed())?;
        let nodes = model.nodes(&cluster.model_name).map_err(|_| failed())?;
        let dc_of: BTreeMap<String, String> =
            nodes.iter().map(|node| (node.ip.clone(), node.datacenter.clone())).collect();
        let per_node = if segment_count_per_node > 0 {
            segment_count_per_node
        } else {
            super::DEFAULT_SEGMENT_COUNT_PER_NODE
        };
        let wanted = usize::try_from(per_node).unwrap_or(1).saturating_mul(nodes.len().max(1));
        // Ranges with the same replicas, then split so that the total is close to what was
        // asked for (a segment never spans two replica sets, as Reaper's do not).
        let mut by_replicas: BTreeMap<Vec<String>, Vec<(i64, i64)>> = BTreeMap::new();
        for range in &ranges {
            let mut endpoints = range.endpoints.clone();
            endpoints.sort();
            let in_scope = (unit.nodes.is_empty()
                || endpoints.iter().any(|ip| unit.nodes.contains(ip)))
                && (unit.datacenters.is_empty()
                    || endpoints
                        .iter()
                        .any(|ip| dc_of.get(ip).is_some_and(|dc| unit.datacenters.contains(dc))));
            if in_scope && !endpoints.is_empty() {
                by_replicas.entry(endpoints).or_default().push((range.start, range.end));
            }
        }
        if by_replicas.is_empty() {
            return Err(failed());
        }
        let total = by_replicas.values().map(Vec::len).sum::<usize>().max(1);
        let mut segments = Vec::new();
        for (endpoints, group) in by_replicas {
            let pieces = (group.len() * wanted).div_ceil(total).clamp(1, group.len());
            let size = group.len().div_ceil(pieces);
            for chunk in group.chunks(size) {
                let replicas = endpoints
                    .iter()
                    .map(|ip| (ip.clone(), dc_of.get(ip).cloned().unwrap_or_default()))
                    .collect();
                segments.push(Segment {
                    id: self.new_uuid(),
                    ranges: chunk.to_vec(),
                    replicas,
                    state: SegmentState::NotStarted,
                    fail_count: 0,
                    coordinator: None,
                    start: None,
                    end: None,
                });
            }
        }
        let id = self.new_uuid();
        let now = model.now_millis();
        self.runs.push(RepairRun {
            id,
            unit_id,
            cluster: cluster.name,
            cause,
            owner,
            state: RunState::NotStarted,
            creation: now,
            start: None,
            end: None,
            pause: None,
            intensity,
            parallelism,
            last_event: "no events".into(),
            segments,
            next_segment_due: now,
        });
        Ok(id)
    }

    /// Starts or resumes a run (`RepairManager.startRepairRun`): an ERROR run picks up where
    /// it stopped.
    pub fn start_run(&mut self, id: Uuid, now: i64) {
        if let Some(run) = self.run_mut(id) {
            if run.state == RunState::NotStarted {
                run.start = Some(now);
            }
            run.state = RunState::Running;
            run.pause = None;
            run.end = None;
            run.next_segment_due = now + SEGMENT_MILLIS;
            run.last_event = "Repair run started".into();
        }
    }

    /// Starts the runs schedules owe and repairs the segments whose time has come.
    pub fn advance(&mut self, model: &mut CassandraModel) {
        let now = model.now_millis();
        self.trigger_schedules(model, now);
        let clusters = self.clusters.clone();
        let units = self.units.clone();
        for run in self.runs.iter_mut().filter(|run| run.state == RunState::Running) {
            let Some(unit) = units.iter().find(|unit| unit.id == run.unit_id) else {
                continue;
            };
            let Some(cluster) = clusters.get(&run.cluster) else {
                continue;
            };
            let tables = repaired_tables(model, &cluster.model_name, unit);
            while run.next_segment_due <= now {
                let Some(segment) = run.segments.iter_mut().find(|s| s.state != SegmentState::Done)
                else {
                    break;
                };
                let request = RepairRequest {
                    keyspace: unit.keyspace.clone(),
                    tables: tables.clone(),
                    datacenters: unit.datacenters.iter().cloned().collect(),
                    coordinator: None,
                    ranges: segment.ranges.clone(),
                    force: false,
                };
                let due = run.next_segment_due;
                segment.start = Some(due - SEGMENT_MILLIS);
                segment.coordinator = segment.replicas.keys().next().cloned();
                match model.repair(&cluster.model_name, &request) {
                    Ok(_) => {
                        segment.state = SegmentState::Done;
                        segment.end = Some(due);
                        run.next_segment_due = due + SEGMENT_MILLIS;
                    }
                    Err(error) => {
                        // The run stops with Cassandra's words; PUT .../state/RUNNING retries.
                        segment.state = SegmentState::NotStarted;
                        segment.fail_count += 1;
                        run.state = RunState::Error;
                        run.end = Some(due);
                        run.last_event =
                            format!("Repair of segment {} failed: {error}", segment.id);
                        break;
                    }
                }
            }
            if run.state == RunState::Running
                && run.segments.iter().all(|s| s.state == SegmentState::Done)
            {
                run.state = RunState::Done;
                run.end = Some(run.next_segment_due - SEGMENT_MILLIS);
                run.last_event = "All done".into();
            }
        }
    }

    /// `SchedulingManager`: an ACTIVE schedule whose activation time passed starts a run,
    /// unless its previous run is still going; the next activation is `daysBetween` later.
    fn trigger_schedules(&mut self, model: &CassandraModel, now: i64) {
        let due: Vec<Uuid> = self
            .schedules
            .iter()
            .filter(|s| s.state == ScheduleState::Active && s.next_activation <= now)
            .filter(|s| {
                s.runs.last().and_then(|id| self.run(*id)).is_none_or(|r| r.state.is_terminated())
            })
            .map(|s| s.id)
            .collect();
        for schedule_id in due {
            let Some(schedule) = self.schedule(schedule_id).cloned() else {
                continue;
            };
            if self.unit_is_repairing(schedule.unit_id, Uuid::nil()) {
                continue;
            }
            let cause = format!("scheduled run (schedule id {schedule_id})");
            let registered = self.register_run(
                model,
                schedule.unit_id,
                cause,
                schedule.owner.clone(),
                schedule.segment_count_per_node,
                schedule.parallelism.clone(),
                schedule.intensity,
            );
            if let Ok(run_id) = registered {
                self.start_run(run_id, now);
                if let Some(stored) = self.schedule_mut(schedule_id) {
                    stored.runs.push(run_id);
                    stored.next_activation = if schedule.days_between > 0 {
                        schedule.next_activation + schedule.days_between * DAY_MILLIS
                    } else {
                        now
                    };
                }
            }
        }
    }
}

/// The tables a unit repairs: the named ones, or all but the blacklisted.
fn repaired_tables(model: &CassandraModel, cluster: &str, unit: &RepairUnit) -> Vec<String> {
    if !unit.tables.is_empty() || unit.blacklisted.is_empty() {
        return unit.tables.iter().cloned().collect();
    }
    model
        .tables(cluster, &unit.keyspace)
        .map(|tables| {
            tables
                .iter()
                .map(|table| table.name.clone())
                .filter(|name| !unit.blacklisted.contains(name))
                .collect()
        })
        .unwrap_or_default()
}

/// `RepairRunStatus.dateTimeToIso8601`: UTC, seconds, `Z`.
pub fn iso8601(millis: Option<i64>) -> Value {
    millis
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|ts| json!(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
        .unwrap_or(Value::Null)
}

/// `DurationFormatUtils.formatDurationWords(millis, true, false)`.
fn duration_words(millis: i64) -> String {
    let seconds = millis.max(0) / 1000;
    let parts = [
        (seconds / 86_400, "day"),
        (seconds / 3_600 % 24, "hour"),
        (seconds / 60 % 60, "minute"),
        (seconds % 60, "second"),
    ];
    let first = parts.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    parts[first..]
        .iter()
        .map(|(n, unit)| format!("{n} {unit}{}", if *n == 1 { "" } else { "s" }))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `RepairRunStatus` as Reaper's JSON shows it.
pub fn run_status(run: &RepairRun, unit: Option<&RepairUnit>, now: i64) -> Value {
    let set = |pick: fn(&RepairUnit) -> &BTreeSet<String>| {
        unit.map(|u| pick(u).iter().cloned().collect::<Vec<_>>()).unwrap_or_default()
    };
    let duration = run.start.map(|start| duration_words(run.end.unwrap_or(now) - start));
    json!({
        "cause": run.cause,
        "owner": run.owner,
        "id": run.id.to_string(),
        "cluster_name": run.cluster,
        "column_families": set(|u| &u.tables),
        "keyspace_name": unit.map(|u| u.keyspace.clone()).unwrap_or_default(),
        "state": run.state.name(),
        "creation_time": iso8601(Some(run.creation)),
        "start_time": iso8601(run.start),
        "end_time": iso8601(run.end),
        "pause_time": iso8601(run.pause),
        "current_time": iso8601(Some(now)),
        "intensity": run.intensity,
        "incremental_repair": unit.is_some_and(|u| u.incremental),
        "subrange_incremental_repair": unit.is_some_and(|u| u.subrange_incremental),
        "total_segments": run.segments.len(),
        "repair_parallelism": run.parallelism,
        "segments_repaired": run.segments_repaired(),
        "last_event": run.last_event,
        "duration": duration,
        "estimated_time_of_arrival": Value::Null,
        "nodes": set(|u| &u.nodes),
        "datacenters": set(|u| &u.datacenters),
        "blacklisted_tables": set(|u| &u.blacklisted),
        "repair_thread_count": unit.map(|u| u.thread_count).unwrap_or(1),
        "repair_unit_id": run.unit_id.to_string(),
        "segment_timeout": unit.map(|u| u.timeout).unwrap_or(30),
        "adaptive_schedule": false,
    })
}

/// `RepairSegment` as Jackson writes it (tokens as numbers, times as epoch millis).
pub fn segment_view(run: &RepairRun, segment: &Segment) -> Value {
    let ranges: Vec<Value> =
        segment.ranges.iter().map(|(start, end)| json!({"start": start, "end": end})).collect();
    let base = match (segment.ranges.first(), segment.ranges.last()) {
        (Some((start, _)), Some((_, end))) => json!({"start": start, "end": end}),
        _ => Value::Null,
    };
    json!({
        "id": segment.id.to_string(),
        "runId": run.id.to_string(),
        "repairUnitId": run.unit_id.to_string(),
        "tokenRange": {"baseRange": base, "tokenRanges": ranges, "replicas": segment.replicas},
        "failCount": segment.fail_count,
        "state": segment.state.name(),
        "coordinatorHost": segment.coordinator,
        "startTime": segment.start,
        "endTime": segment.end,
        "replicas": segment.replicas,
        "hostID": Value::Null,
    })
}

/// `RepairScheduleStatus`.
pub fn schedule_status(schedule: &RepairSchedule, unit: Option<&RepairUnit>) -> Value {
    let set = |pick: fn(&RepairUnit) -> &BTreeSet<String>| {
        unit.map(|u| pick(u).iter().cloned().collect::<Vec<_>>()).unwrap_or_default()
    };
    json!({
        "id": schedule.id.to_string(),
        "owner": schedule.owner,
        "cluster_name": unit.map(|u| u.cluster.clone()).unwrap_or_default(),
        "keyspace_name": unit.map(|u| u.keyspace.clone()).unwrap_or_default(),
        "column_families": set(|u| &u.tables),
        "state": schedule.state.name(),
        "creation_time": iso8601(Some(schedule.creation)),
        "next_activation": iso8601(Some(schedule.next_activation)),
        "pause_time": iso8601(schedule.pause),
        "intensity": schedule.intensity,
        "incremental_repair": unit.is_some_and(|u| u.incremental),
        "subrange_incremental_repair": unit.is_some_and(|u| u.subrange_incremental),
        "repair_parallelism": schedule.parallelism,
        "scheduled_days_between": schedule.days_between,
        "nodes": set(|u| &u.nodes),
        "datacenters": set(|u| &u.datacenters),
        "blacklisted_tables": set(|u| &u.blacklisted),
        "segment_count_per_node": schedule.segment_count_per_node,
        "repair_thread_count": unit.map(|u| u.thread_count).unwrap_or(1),
        "repair_unit_id": schedule.unit_id.to_string(),
        "segment_timeout": unit.map(|u| u.timeout).unwrap_or(30),
        "adaptive": schedule.adaptive,
        "percent_unrepaired_threshold": schedule.percent_unrepaired_threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_reaper_words_them() {
        assert_eq!(duration_words(0), "0 seconds");
        assert_eq!(duration_words(61_000), "1 minute 1 second");
        assert_eq!(duration_words(3_600_000), "1 hour 0 minutes 0 seconds");
    }

    #[test]
    fn run_states_parse_case_insensitively() {
        assert_eq!(RunState::parse("running"), Some(RunState::Running));
        assert_eq!(RunState::parse("NOT_STARTED"), Some(RunState::NotStarted));
        assert_eq!(RunState::parse("bogus"), None);
    }
}
