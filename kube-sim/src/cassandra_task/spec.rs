//! A CassandraTask's spec as `apis/control/v1alpha1/cassandratask_types.go` declares it, with
//! upstream's defaults (`setDefaults`, `calculateDeletionTime`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::error::TaskError;

/// The TTL of a finished task when `ttlSecondsAfterFinished` is unset.
const DEFAULT_TTL: Duration = Duration::from_secs(86_400);

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TaskSpec {
    #[serde(default)]
    pub datacenter: DatacenterRef,
    pub scheduled_time: Option<String>,
    #[serde(default)]
    pub jobs: Vec<JobSpec>,
    #[serde(default)]
    pub restart_policy: String,
    pub ttl_seconds_after_finished: Option<i64>,
    #[serde(default)]
    pub concurrency_policy: String,
    pub max_concurrent_pods: Option<i64>,
    pub retries: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct DatacenterRef {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct JobSpec {
    #[serde(default)]
    pub command: String,
    #[serde(default, rename = "args")]
    pub arguments: JobArguments,
}

/// `JobArguments`; JSON names are snake_case upstream.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct JobArguments {
    #[serde(default)]
    pub keyspace_name: String,
    #[serde(default)]
    pub source_datacenter: String,
    #[serde(default)]
    pub pod_name: String,
    #[serde(default, rename = "rack")]
    pub rack_name: String,
    #[serde(default)]
    pub tables: Vec<String>,
    #[serde(default)]
    pub new_tokens: BTreeMap<String, String>,
    #[serde(default)]
    pub fast: bool,
    #[serde(default)]
    pub force: bool,
}

impl JobArguments {
    /// The keyspace a table operation targets; empty means every keyspace.
    pub fn keyspace(&self) -> Option<String> {
        Some(self.keyspace_name.clone()).filter(|k| !k.is_empty())
    }
}

impl TaskSpec {
    pub fn parse(task: &serde_json::Value) -> Result<TaskSpec, TaskError> {
        match task.get("spec") {
            None => Ok(TaskSpec::default()),
            Some(spec) => TaskSpec::deserialize(spec)
                .map_err(|e| TaskError::Malformed(format!("CassandraTask spec: {e}"))),
        }
    }

    /// RestartPolicy defaults to OnFailure, the only policy that retries a pod.
    pub fn retries_failed_pods(&self) -> bool {
        self.restart_policy.is_empty() || self.restart_policy == "OnFailure"
    }

    /// ConcurrencyPolicy defaults to Forbid for the task being started.
    pub fn forbids_concurrency(&self) -> bool {
        self.concurrency_policy.is_empty() || self.concurrency_policy == "Forbid"
    }

    pub fn scheduled_time(&self) -> Result<Option<jiff::Timestamp>, TaskError> {
        self.scheduled_time.as_deref().map(parse_time).transpose()
    }

    /// When a task finished at `completed` is deleted; None keeps it (TTL 0).
    pub fn deletion_time(&self, completed: jiff::Timestamp) -> Option<jiff::Timestamp> {
        let ttl = match self.ttl_seconds_after_finished {
            Some(0) => return None,
            Some(seconds) => jiff::SignedDuration::from_secs(seconds),
            None => jiff::SignedDuration::try_from(DEFAULT_TTL).unwrap_or_default(),
        };
        completed.checked_add(ttl).ok()
    }
}

pub(super) fn parse_time(text: &str) -> Result<jiff::Timestamp, TaskError> {
    text.parse::<jiff::Timestamp>().map_err(|e| TaskError::Malformed(format!("time {text:?}: {e}")))
}

/// The commands of `CassandraCommand`; anything else is kept to be refused as upstream does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Command {
    /// Rolls the datacenter's StatefulSets (pods), not a per-pod job.
    Restart,
    /// Lets cass-operator apply the datacenter's spec once.
    Refresh,
    PerPod(PodCommand),
    Unknown(String),
}

/// The commands run pod by pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PodCommand {
    Cleanup,
    Rebuild,
    UpgradeSSTables,
    ReplaceNode,
    Compact,
    Scrub,
    Move,
    GarbageCollect,
    Flush,
    TsReload,
}

impl Command {
    pub fn parse(command: &str) -> Command {
        let per_pod = match command {
            "restart" => return Command::Restart,
            "refresh" => return Command::Refresh,
            "cleanup" => PodCommand::Cleanup,
            "rebuild" => PodCommand::Rebuild,
            "upgradesstables" => PodCommand::UpgradeSSTables,
            "replacenode" => PodCommand::ReplaceNode,
            "compact" => PodCommand::Compact,
            "scrub" => PodCommand::Scrub,
            "move" => PodCommand::Move,
            "garbagecollect" => PodCommand::GarbageCollect,
            "flush" => PodCommand::Flush,
            "tsreload" => PodCommand::TsReload,
            other => return Command::Unknown(other.to_string()),
        };
        Command::PerPod(per_pod)
    }
}

/// How one job runs on the pods (upstream's `TaskConfiguration`).
pub(super) struct PodJob<'a> {
    pub command: PodCommand,
    pub args: &'a JobArguments,
    pub retries_failed_pods: bool,
    pub retries: Option<i64>,
    pub max_concurrent_pods: Option<i64>,
}

impl PodJob<'_> {
    pub(super) fn max_retries(&self) -> i64 {
        if self.retries_failed_pods {
            self.retries.unwrap_or(1)
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_are_upstreams() {
        let spec =
            TaskSpec::parse(&json!({"spec": {"jobs": [{"name": "j", "command": "cleanup"}]}}))
                .expect("spec");
        assert!(spec.retries_failed_pods());
        assert!(spec.forbids_concurrency());
        let done = jiff::Timestamp::UNIX_EPOCH;
        assert_eq!(
            spec.deletion_time(done).map(|t| t.as_second()),
            Some(86_400)
        );
        let keep = TaskSpec::parse(&json!({"spec": {"ttlSecondsAfterFinished": 0,
            "restartPolicy": "Never", "concurrencyPolicy": "Allow"}}))
        .expect("spec");
        assert_eq!(keep.deletion_time(done), None);
        assert!(!keep.retries_failed_pods());
        assert!(!keep.forbids_concurrency());
    }

    #[test]
    fn arguments_use_upstreams_json_names() {
        let spec = TaskSpec::parse(&json!({"spec": {"jobs": [{"name": "j", "command": "move",
            "args": {"rack": "r1", "pod_name": "p", "keyspace_name": "ks", "tables": ["t"],
                     "source_datacenter": "dc1", "new_tokens": {"p": "1"}, "fast": true, "jobs": 2}}]}}))
        .expect("spec");
        let args = &spec.jobs[0].arguments;
        assert_eq!(
            (args.rack_name.as_str(), args.pod_name.as_str()),
            ("r1", "p")
        );
        assert_eq!(args.keyspace(), Some("ks".to_string()));
        assert_eq!(args.new_tokens.get("p").map(String::as_str), Some("1"));
        assert!(args.fast);
        assert_eq!(
            Command::parse(&spec.jobs[0].command),
            Command::PerPod(PodCommand::Move)
        );
        assert_eq!(
            Command::parse("frobnicate"),
            Command::Unknown("frobnicate".into())
        );
    }
}
