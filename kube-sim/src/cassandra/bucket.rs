//! Medusa's storage: backups of nodes, shared by every region and cluster that points at the
//! same bucket and prefix.
//!
//! As in Medusa, a backup is per node (its fqdn, here the pod name): a snapshot of the node's
//! rows, its tokens, datacenter and rack, the cluster's tokenmap and schema. A cluster backup is
//! the node backups sharing a name. Full backups upload every file under the backup's own
//! folder; differential ones reference files in the node's shared `data/` folder, uploaded once
//! (a table's content stands for an sstable file here). Purges follow `medusa/purge.py`: per
//! node, by age (`started` older than `max_backup_age` days) and by count (oldest beyond
//! `max_backup_count`), then files no differential backup references and older than the grace
//! period are deleted. Restores follow `restore_node.py`: every keyspace but `system` and
//! `system_schema` (and `system_auth` with `keep_auth`) is replaced by the backup's, and the
//! node takes the backed-up tokens as a restored `system.local` (or Medusa's `initial_token`)
//! makes it.

use std::collections::{BTreeMap, BTreeSet};

use super::CassandraModel;
use super::cluster::{NodeState, PodRef};
use super::error::{CassandraError, Result};
use super::ring::token_for_key;
use super::rows::NodeData;
use super::schema::{Keyspace, Replication, SYSTEM, SYSTEM_AUTH, SYSTEM_SCHEMA};

/// Medusa's default `backup_grace_period_in_days`.
pub const DEFAULT_BACKUP_GRACE_PERIOD_DAYS: i64 = 10;
const DAY_MILLIS: i64 = 86_400_000;

/// A Medusa storage: bucket name and prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorageLocation {
    pub bucket: String,
    pub prefix: String,
}

impl StorageLocation {
    pub fn new(bucket: &str, prefix: &str) -> Self {
        StorageLocation {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        }
    }
}

/// `BackupRequest.Mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupMode {
    Full,
    Differential,
}

impl BackupMode {
    /// `BackupSummary.backupType`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupMode::Full => "full",
            BackupMode::Differential => "differential",
        }
    }
}

/// Medusa's `StatusType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupStatus {
    InProgress,
    Success,
    Failed,
    Unknown,
}

impl BackupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupStatus::InProgress => "IN_PROGRESS",
            BackupStatus::Success => "SUCCESS",
            BackupStatus::Failed => "FAILED",
            BackupStatus::Unknown => "UNKNOWN",
        }
    }
}

/// `BackupNode`: a node of the backup's tokenmap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupNode {
    pub host: String,
    pub tokens: Vec<i64>,
    pub datacenter: String,
    pub rack: String,
}

/// One node's backup, as `BackupStatus` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeBackupStatus {
    pub host: String,
    pub datacenter: String,
    pub rack: String,
    pub status: BackupStatus,
    pub start_millis: i64,
    /// Set once finished.
    pub finish_millis: Option<i64>,
    pub size: u64,
    pub objects: u64,
    pub error: Option<String>,
}

/// `BackupSummary` for one backup name (times in milliseconds; Medusa's messages carry seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub name: String,
    pub cluster: String,
    pub backup_type: String,
    pub start_millis: i64,
    /// Set once every node finished.
    pub finish_millis: Option<i64>,
    pub total_nodes: usize,
    pub finished_nodes: usize,
    /// The tokenmap: the nodes of the backed-up datacenters when the backup started.
    pub nodes: Vec<BackupNode>,
    pub node_statuses: Vec<NodeBackupStatus>,
    pub status: BackupStatus,
    pub total_size: u64,
    pub total_objects: u64,
}

/// `PurgeBackupsResponse`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeStats {
    pub backups_purged: usize,
    pub objects_purged: usize,
    pub total_purged_size: u64,
    pub objects_within_gc_grace: usize,
}

impl std::ops::AddAssign for PurgeStats {
    fn add_assign(&mut self, other: PurgeStats) {
        self.backups_purged += other.backups_purged;
        self.objects_purged += other.objects_purged;
        self.total_purged_size += other.total_purged_size;
        self.objects_within_gc_grace += other.objects_within_gc_grace;
    }
}

/// How a node is restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Medusa's `--keep-auth`: leave `system_auth` as the node has it.
    pub keep_auth: bool,
    /// Take the backed-up node's tokens (what the restored `system.local` does in place, and
    /// what Medusa's `initial_token` does elsewhere).
    pub adopt_tokens: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            keep_auth: false,
            adopt_tokens: true,
        }
    }
}

struct NodeBackup {
    cluster: String,
    host: String,
    datacenter: String,
    rack: String,
    tokens: Vec<i64>,
    mode: BackupMode,
    started_millis: i64,
    finished_millis: i64,
    error: Option<String>,
    tokenmap: Vec<BackupNode>,
    data: NodeData,
    schema: Vec<Keyspace>,
    /// Object path → size.
    objects: BTreeMap<String, u64>,
}

impl NodeBackup {
    fn status(&self, now: i64) -> BackupStatus {
        if self.error.is_some() {
            BackupStatus::Failed
        } else if now < self.finished_millis {
            BackupStatus::InProgress
        } else {
            BackupStatus::Success
        }
    }

    fn report(&self, now: i64) -> NodeBackupStatus {
        let status = self.status(now);
        NodeBackupStatus {
            host: self.host.clone(),
            datacenter: self.datacenter.clone(),
            rack: self.rack.clone(),
            status,
            start_millis: self.started_millis,
            finish_millis: (status == BackupStatus::Success).then_some(self.finished_millis),
            size: self.objects.values().sum(),
            objects: self.objects.len() as u64,
            error: self.error.clone(),
        }
    }
}

struct StoredObject {
    size: u64,
    uploaded_millis: i64,
}

#[derive(Default)]
pub(crate) struct Bucket {
    /// (backup name, host) → node backup.
    backups: BTreeMap<(String, String), NodeBackup>,
    objects: BTreeMap<String, StoredObject>,
}

impl Bucket {
    fn summary(&self, name: &str, now: i64) -> Option<BackupSummary> {
        let node_backups: Vec<&NodeBackup> = self
            .backups
            .range((name.to_string(), String::new())..)
            .take_while(|((n, _), _)| n == name)
            .map(|(_, b)| b)
            .collect();
        let first = node_backups.first()?;
        let node_statuses: Vec<NodeBackupStatus> =
            node_backups.iter().map(|b| b.report(now)).collect();
        let total_nodes = first.tokenmap.len().max(node_backups.len());
        let finished_nodes =
            node_statuses.iter().filter(|s| s.status == BackupStatus::Success).count();
        let status = if node_statuses.iter().any(|s| s.status == BackupStatus::Failed) {
            BackupStatus::Failed
        } else if finished_nodes >= total_nodes {
            BackupStatus::Success
        } else {
            BackupStatus::InProgress
        };
        Some(BackupSummary {
            name: name.to_string(),
            cluster: first.cluster.clone(),
            backup_type: first.mode.as_str().to_string(),
            start_millis: node_backups.iter().map(|b| b.started_millis).min().unwrap_or(0),
            finish_millis: (status == BackupStatus::Success)
                .then(|| node_backups.iter().map(|b| b.finished_millis).max().unwrap_or(0)),
            total_nodes,
            finished_nodes,
            nodes: first.tokenmap.clone(),
            total_size: node_statuses.iter().map(|s| s.size).sum(),
            total_objects: node_statuses.iter().map(|s| s.objects).sum(),
            node_statuses,
            status,
        })
    }

    /// Removes a node backup; a full one's own files go with it.
    fn purge_backup(&mut self, name: &str, host: &str) -> PurgeStats {
        let mut stats = PurgeStats::default();
        let Some(backup) = self.backups.remove(&(name.to_string(), host.to_string())) else {
            return stats;
        };
        stats.backups_purged = 1;
        if backup.mode == BackupMode::Full {
            for path in backup.objects.keys() {
                if let Some(object) = self.objects.remove(path) {
                    stats.objects_purged += 1;
                    stats.total_purged_size += object.size;
                }
            }
        }
        stats
    }

    /// `cleanup_obsolete_files`: a host's shared files that no differential backup references,
    /// once older than the grace period.
    fn cleanup_obsolete(
        &mut self,
        prefix: &str,
        host: &str,
        now: i64,
        grace_days: i64,
    ) -> PurgeStats {
        let shared = format!("{prefix}/{host}/data/");
        let referenced: BTreeSet<&String> = self
            .backups
            .values()
            .filter(|b| b.host == host && b.mode == BackupMode::Differential)
            .flat_map(|b| b.objects.keys())
            .collect();
        let candidates: Vec<String> = self
            .objects
            .keys()
            .filter(|path| path.starts_with(&shared) && !referenced.contains(path))
            .cloned()
            .collect();
        let mut stats = PurgeStats::default();
        for path in candidates {
            let old_enough = self
                .objects
                .get(&path)
                .is_some_and(|o| o.uploaded_millis <= now - grace_days * DAY_MILLIS);
            if old_enough {
                if let Some(object) = self.objects.remove(&path) {
                    stats.objects_purged += 1;
                    stats.total_purged_size += object.size;
                }
            } else {
                stats.objects_within_gc_grace += 1;
            }
        }
        stats
    }

    fn names(&self) -> BTreeSet<&String> {
        self.backups.keys().map(|(name, _)| name).collect()
    }
}

/// A stable signature and the size of a table's rows (what an sstable's name and size are).
fn table_file(rows: &BTreeMap<String, super::rows::Cell>) -> (u64, u64) {
    let mut text = String::new();
    let mut size = 0u64;
    for (key, cell) in rows {
        text.push_str(key);
        text.push('\u{1}');
        text.push_str(cell.value.as_deref().unwrap_or("\u{2}"));
        text.push_str(&cell.timestamp.to_string());
        size += (key.len() + cell.value.as_ref().map_or(0, String::len) + 8) as u64;
    }
    (token_for_key(&text) as u64, size)
}

impl CassandraModel {
    fn bucket(&self, storage: &StorageLocation) -> Option<&Bucket> {
        self.buckets.get(storage)
    }

    /// Medusa's (async) backup on `nodes` of a cluster (all its ring members when empty): each
    /// running node snapshots its rows now and finishes after the model's backup duration; a node
    /// that is not running records a failed backup. A name a node already used is refused.
    pub fn backup(
        &mut self,
        storage: &StorageLocation,
        cluster: &str,
        backup_name: &str,
        nodes: &[PodRef],
        mode: BackupMode,
    ) -> Result<BackupSummary> {
        let now = self.now_millis();
        let finished_millis = now + self.backup_duration_millis;
        let c = self.cluster(cluster)?;
        let indexes: Vec<usize> = if nodes.is_empty() {
            c.ring_members().filter(|&idx| c.nodes[idx].pod_present).collect()
        } else {
            nodes.iter().map(|pod| c.node_index(pod)).collect::<Result<_>>()?
        };
        let bucket = self.buckets.get(storage);
        for &idx in &indexes {
            let host = &c.nodes[idx].pod.name;
            if bucket
                .is_some_and(|b| b.backups.contains_key(&(backup_name.to_string(), host.clone())))
            {
                return Err(CassandraError::Backup(format!(
                    "Backup {backup_name} already exists for {host}"
                )));
            }
        }
        let dcs: BTreeSet<&str> =
            indexes.iter().map(|&idx| c.nodes[idx].datacenter.as_str()).collect();
        let tokenmap: Vec<BackupNode> = c
            .ring_members()
            .filter(|&idx| dcs.contains(c.nodes[idx].datacenter.as_str()))
            .map(|idx| {
                let node = &c.nodes[idx];
                BackupNode {
                    host: node.pod.name.clone(),
                    tokens: node.tokens.clone(),
                    datacenter: node.datacenter.clone(),
                    rack: node.rack.clone(),
                }
            })
            .collect();
        let schema: Vec<Keyspace> = c
            .keyspaces
            .values()
            .filter(|ks| ks.replication != Replication::Local)
            .cloned()
            .collect();
        let mut taken = Vec::new();
        for idx in indexes {
            let node = &c.nodes[idx];
            let host = node.pod.name.clone();
            let running = node.running && node.state == NodeState::Normal;
            let mut objects = BTreeMap::new();
            if running {
                for (keyspace, tables) in node.data.keyspaces() {
                    for (table, rows) in tables {
                        let (signature, size) = table_file(rows);
                        let folder = match mode {
                            BackupMode::Full => {
                                format!("{}/{host}/{backup_name}/data", storage.prefix)
                            }
                            BackupMode::Differential => format!("{}/{host}/data", storage.prefix),
                        };
                        objects.insert(
                            format!("{folder}/{keyspace}/{table}/{signature:016x}-Data.db"),
                            size,
                        );
                    }
                }
            }
            taken.push(NodeBackup {
                cluster: cluster.to_string(),
                host,
                datacenter: node.datacenter.clone(),
                rack: node.rack.clone(),
                tokens: node.tokens.clone(),
                mode,
                started_millis: now,
                finished_millis,
                error: (!running).then(|| format!("Cassandra is not running on {}", node.pod)),
                tokenmap: tokenmap.clone(),
                data: if running {
                    node.data.clone()
                } else {
                    NodeData::default()
                },
                schema: schema.clone(),
                objects,
            });
        }
        let bucket = self.buckets.entry(storage.clone()).or_default();
        for backup in taken {
            for (path, size) in &backup.objects {
                bucket.objects.entry(path.clone()).or_insert(StoredObject {
                    size: *size,
                    uploaded_millis: now,
                });
            }
            bucket.backups.insert((backup_name.to_string(), backup.host.clone()), backup);
        }
        self.backup_status(storage, backup_name)
    }

    /// `GetBackup` / `BackupStatus`: the backup's summary with each node's status.
    pub fn backup_status(
        &self,
        storage: &StorageLocation,
        backup_name: &str,
    ) -> Result<BackupSummary> {
        self.bucket(storage).and_then(|b| b.summary(backup_name, self.now_millis())).ok_or_else(
            || CassandraError::Backup(format!("The backup {backup_name} does not exist")),
        )
    }

    /// The live rows node `host`'s backup `backup_name` holds for a table (what was uploaded),
    /// for inspection; an error when that node has no such backup.
    pub fn backup_rows(
        &self,
        storage: &StorageLocation,
        backup_name: &str,
        host: &str,
        keyspace: &str,
        table: &str,
    ) -> Result<BTreeMap<String, String>> {
        let backup = self
            .bucket(storage)
            .and_then(|b| b.backups.get(&(backup_name.to_string(), host.to_string())))
            .ok_or_else(|| {
                CassandraError::Backup(format!(
                    "The backup {backup_name} does not exist for {host}"
                ))
            })?;
        Ok(backup.data.live_rows(keyspace, table).map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// Makes backup `backup_name` older by `by_millis`: its nodes' start and finish times and the
    /// files it uploaded move back, as in a bucket holding a backup taken that long ago (what
    /// Medusa reads: the backup's times and its objects' upload times). For purges by
    /// `max_backup_age` without waiting days.
    pub fn backdate_backup(
        &mut self,
        storage: &StorageLocation,
        backup_name: &str,
        by_millis: i64,
    ) -> Result<()> {
        let missing = || CassandraError::Backup(format!("The backup {backup_name} does not exist"));
        let bucket = self.buckets.get_mut(storage).ok_or_else(missing)?;
        let mut found = false;
        let mut uploaded = Vec::new();
        for ((name, _), backup) in bucket.backups.iter_mut() {
            if name != backup_name {
                continue;
            }
            found = true;
            let started = backup.started_millis;
            backup.started_millis -= by_millis;
            backup.finished_millis -= by_millis;
            uploaded.extend(backup.objects.keys().map(|path| (path.clone(), started)));
        }
        if !found {
            return Err(missing());
        }
        for (path, started) in uploaded {
            // Only the files this backup uploaded; those it shares with earlier ones keep theirs.
            if let Some(object) = bucket.objects.get_mut(&path)
                && object.uploaded_millis >= started
            {
                object.uploaded_millis -= by_millis;
            }
        }
        Ok(())
    }

    /// `GetBackups`: every backup in the storage (of one cluster if given), oldest first.
    pub fn list_backups(
        &self,
        storage: &StorageLocation,
        cluster: Option<&str>,
    ) -> Vec<BackupSummary> {
        let Some(bucket) = self.bucket(storage) else {
            return Vec::new();
        };
        let now = self.now_millis();
        let mut summaries: Vec<BackupSummary> = bucket
            .names()
            .into_iter()
            .filter_map(|name| bucket.summary(name, now))
            .filter(|s| cluster.is_none_or(|c| s.cluster == c))
            .collect();
        summaries.sort_by(|a, b| (a.start_millis, &a.name).cmp(&(b.start_millis, &b.name)));
        summaries
    }

    /// `DeleteBackup`: the backup of every node, then the files nothing references any more.
    pub fn delete_backup(
        &mut self,
        storage: &StorageLocation,
        backup_name: &str,
    ) -> Result<PurgeStats> {
        let now = self.now_millis();
        let grace = self.backup_grace_period_days;
        let missing = || CassandraError::Backup(format!("The backup {backup_name} does not exist"));
        let bucket = self.buckets.get_mut(storage).ok_or_else(missing)?;
        let hosts: Vec<String> = bucket
            .backups
            .keys()
            .filter(|(name, _)| name == backup_name)
            .map(|(_, host)| host.clone())
            .collect();
        if hosts.is_empty() {
            return Err(missing());
        }
        let mut stats = PurgeStats::default();
        for host in &hosts {
            stats += bucket.purge_backup(backup_name, host);
        }
        for host in &hosts {
            stats += bucket.cleanup_obsolete(&storage.prefix, host, now, grace);
        }
        Ok(stats)
    }

    /// `PurgeBackups` on one node (`host`, the pod name): its backups started more than
    /// `max_backup_age_days` ago (0: no limit) and all but its newest `max_backup_count`
    /// (0: no limit) go, then its unreferenced differential files past the grace period.
    pub fn purge_node_backups(
        &mut self,
        storage: &StorageLocation,
        host: &str,
        max_backup_count: usize,
        max_backup_age_days: i64,
    ) -> PurgeStats {
        let now = self.now_millis();
        let grace = self.backup_grace_period_days;
        let Some(bucket) = self.buckets.get_mut(storage) else {
            return PurgeStats::default();
        };
        let mut own: Vec<(i64, String)> = bucket
            .backups
            .iter()
            .filter(|((_, h), _)| h == host)
            .map(|((name, _), b)| (b.started_millis, name.clone()))
            .collect();
        own.sort();
        let mut doomed: BTreeSet<String> = BTreeSet::new();
        if max_backup_age_days > 0 {
            let oldest_kept = now - max_backup_age_days * DAY_MILLIS;
            doomed.extend(
                own.iter().filter(|(started, _)| *started < oldest_kept).map(|(_, n)| n.clone()),
            );
        }
        if max_backup_count > 0 && own.len() > max_backup_count {
            doomed.extend(own.iter().take(own.len() - max_backup_count).map(|(_, n)| n.clone()));
        }
        let mut stats = PurgeStats::default();
        for name in &doomed {
            stats += bucket.purge_backup(name, host);
        }
        stats += bucket.cleanup_obsolete(&storage.prefix, host, now, grace);
        stats
    }

    /// `PurgeBackups` run on every node of a cluster that has backups in the storage.
    pub fn purge_backups(
        &mut self,
        storage: &StorageLocation,
        cluster: &str,
        max_backup_count: usize,
        max_backup_age_days: i64,
    ) -> PurgeStats {
        let hosts: BTreeSet<String> = self
            .bucket(storage)
            .map(|b| {
                b.backups
                    .values()
                    .filter(|nb| nb.cluster == cluster)
                    .map(|nb| nb.host.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut stats = PurgeStats::default();
        for host in hosts {
            stats += self.purge_node_backups(storage, &host, max_backup_count, max_backup_age_days);
        }
        stats
    }

    /// The restore mapping of a datacenter (what Medusa's `PrepareRestore` computes): for each
    /// of the cluster's pods in `datacenter`, the backed-up host to restore it from. In place
    /// when the pods carry the backed-up host names; otherwise nodes pair up in (rack, name)
    /// order, and the datacenter must have as many nodes as the backup has there.
    pub fn restore_mapping(
        &self,
        storage: &StorageLocation,
        backup_name: &str,
        cluster: &str,
        datacenter: &str,
    ) -> Result<BTreeMap<PodRef, String>> {
        let summary = self.backup_status(storage, backup_name)?;
        let mut sources: Vec<&BackupNode> =
            summary.nodes.iter().filter(|node| node.datacenter == datacenter).collect();
        if sources.is_empty() {
            return Err(CassandraError::Backup(format!(
                "Backup {backup_name} has no node in datacenter {datacenter}"
            )));
        }
        sources.sort_by(|a, b| (&a.rack, &a.host).cmp(&(&b.rack, &b.host)));
        let c = self.cluster(cluster)?;
        let mut targets: Vec<(&str, &PodRef)> = c
            .ring_members()
            .filter(|&idx| c.nodes[idx].datacenter == datacenter)
            .map(|idx| (c.nodes[idx].rack.as_str(), &c.nodes[idx].pod))
            .collect();
        targets.sort_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
        let in_place = targets.iter().all(|(_, pod)| sources.iter().any(|s| s.host == pod.name));
        if in_place {
            return Ok(targets
                .into_iter()
                .map(|(_, pod)| (pod.clone(), pod.name.clone()))
                .collect());
        }
        if targets.len() != sources.len() {
            return Err(CassandraError::Backup(format!(
                "Datacenter {datacenter} has {} nodes but backup {backup_name} has {} there",
                targets.len(),
                sources.len()
            )));
        }
        Ok(targets
            .into_iter()
            .zip(sources)
            .map(|((_, pod), source)| (pod.clone(), source.host.clone()))
            .collect())
    }

    /// Medusa's restore of one node from the backup of `source_host` (the restore mapping): the
    /// node's rows in every keyspace but the kept system ones become the backup's, keyspaces and
    /// tables the backup knows are added to the schema if missing, and (by default) the node
    /// takes the backed-up tokens. Returns the number of live rows restored.
    pub fn restore_node(
        &mut self,
        target: &PodRef,
        storage: &StorageLocation,
        backup_name: &str,
        source_host: &str,
        options: RestoreOptions,
    ) -> Result<usize> {
        let now = self.now_millis();
        let (cluster, idx) = self.locate(target)?;
        let version = self.new_uuid();
        let backup = self
            .bucket(storage)
            .and_then(|b| b.backups.get(&(backup_name.to_string(), source_host.to_string())))
            .ok_or_else(|| {
                CassandraError::Backup(format!("No backup {backup_name} of host {source_host}"))
            })?;
        if backup.status(now) != BackupStatus::Success {
            return Err(CassandraError::Backup(format!(
                "Backup {backup_name} of host {source_host} is not complete ({})",
                backup.status(now).as_str()
            )));
        }
        let mut keep: BTreeSet<String> =
            [SYSTEM, SYSTEM_SCHEMA].iter().map(|s| s.to_string()).collect();
        if options.keep_auth {
            keep.insert(SYSTEM_AUTH.to_string());
        }
        let mut rows = NodeData::default();
        let mut restored = 0;
        for (keyspace, tables) in backup.data.keyspaces() {
            if keep.contains(keyspace) {
                continue;
            }
            for (table, cells) in tables {
                for (key, cell) in cells {
                    restored += usize::from(cell.value.is_some());
                    rows.merge(keyspace, table, key, cell.clone());
                }
            }
        }
        let tokens = backup.tokens.clone();
        let schema: Vec<Keyspace> =
            backup.schema.iter().filter(|ks| !keep.contains(&ks.name)).cloned().collect();
        let c = self.cluster_mut(&cluster)?;
        if options.adopt_tokens && c.nodes[idx].tokens != tokens {
            for other in c.known_members().filter(|&other| other != idx) {
                if let Some(token) = c.nodes[other].tokens.iter().find(|t| tokens.contains(t)) {
                    return Err(CassandraError::Backup(format!(
                        "Cannot restore the tokens of {source_host}: token {token} belongs to /{}",
                        c.nodes[other].ip
                    )));
                }
            }
            c.nodes[idx].tokens = tokens;
        }
        let mut schema_changed = false;
        for keyspace in schema {
            let existing = c.keyspaces.entry(keyspace.name.clone()).or_insert_with(|| {
                schema_changed = true;
                Keyspace {
                    tables: BTreeMap::new(),
                    ..keyspace.clone()
                }
            });
            for (name, table) in keyspace.tables {
                existing.tables.entry(name).or_insert_with(|| {
                    schema_changed = true;
                    table
                });
            }
        }
        if schema_changed {
            c.schema_changed(version);
        }
        c.nodes[idx].data.replace_except(&keep, rows);
        c.nodes[idx].operations.push(super::operations::OperationRecord {
            operation: "RESTORE".into(),
            keyspace: None,
            tables: Vec::new(),
            at_millis: now,
        });
        Ok(restored)
    }
}
