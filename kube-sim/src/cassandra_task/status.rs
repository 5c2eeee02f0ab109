//! A CassandraTask's status (`CassandraTaskStatus`), written as Go writes it: zero counts and
//! empty strings left out (`omitempty`), condition messages always present.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::TaskError;

pub(super) const RUNNING: &str = "Running";
pub(super) const COMPLETE: &str = "Complete";
pub(super) const FAILED: &str = "Failed";
pub(super) const DATACENTER_UPDATED: &str = "DatacenterUpdated";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TaskStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub active: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub succeeded: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: i64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_statuses: BTreeMap<String, PodStatus>,
}

/// `metav1.Condition`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub last_transition_time: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum PodPhase {
    #[serde(rename = "WAITING")]
    Waiting,
    #[serde(rename = "RUNNING")]
    Running,
    #[serde(rename = "COMPLETED")]
    Completed,
    #[serde(rename = "ERROR")]
    Error,
}

/// `PodProcessingStatus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PodStatus {
    pub status: PodPhase,
    #[serde(default, rename = "jobId", skip_serializing_if = "String::is_empty")]
    pub job_id: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

fn condition_status(value: bool) -> &'static str {
    if value { "True" } else { "False" }
}

impl PodStatus {
    /// A pod about to be processed for the first time.
    pub fn running() -> PodStatus {
        PodStatus {
            status: PodPhase::Running,
            job_id: String::new(),
            retries: 0,
            error: String::new(),
            start_time: None,
            completion_time: None,
        }
    }

    pub fn complete(&mut self) {
        self.status = PodPhase::Completed;
        self.completion_time = Some(crate::now_rfc3339());
    }

    /// `podFailedHandling`: another try while retries remain (RestartPolicy OnFailure, one
    /// retry unless `retries` says otherwise), else ERROR with the message. Returns 1 when the
    /// pod failed for good.
    pub fn fail(&mut self, message: &str, max_retries: i64) -> usize {
        if self.retries < max_retries {
            self.retries += 1;
            self.status = PodPhase::Waiting;
            self.job_id.clear();
            self.error.clear();
            0
        } else {
            self.status = PodPhase::Error;
            self.error = message.to_string();
            self.completion_time = Some(crate::now_rfc3339());
            1
        }
    }
}

impl TaskStatus {
    pub fn parse(task: &serde_json::Value) -> Result<TaskStatus, TaskError> {
        match task.get("status") {
            None | Some(serde_json::Value::Null) => Ok(TaskStatus::default()),
            Some(status) => TaskStatus::deserialize(status)
                .map_err(|e| TaskError::Malformed(format!("CassandraTask status: {e}"))),
        }
    }

    pub fn has_condition(&self, kind: &str, value: bool) -> bool {
        self.conditions
            .iter()
            .find(|c| c.kind == kind)
            .is_some_and(|c| c.status == condition_status(value))
    }

    /// Upstream's `SetCondition`: a new condition has its type as reason; a changed one keeps
    /// its reason and its message unless a new message is given. Returns whether it changed.
    pub fn set_condition(&mut self, kind: &str, value: bool, message: &str) -> bool {
        let status = condition_status(value);
        let now = crate::now_rfc3339();
        if let Some(existing) = self.conditions.iter_mut().find(|c| c.kind == kind) {
            if existing.status == status {
                return false;
            }
            existing.status = status.to_string();
            existing.last_transition_time = now;
            if !message.is_empty() {
                existing.message = message.to_string();
            }
            return true;
        }
        self.conditions.push(Condition {
            kind: kind.to_string(),
            status: status.to_string(),
            observed_generation: None,
            last_transition_time: now,
            reason: kind.to_string(),
            message: message.to_string(),
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_set_as_upstream_sets_them() {
        let mut status = TaskStatus::default();
        assert!(status.set_condition(RUNNING, true, ""));
        assert!(!status.set_condition(RUNNING, true, "ignored"));
        assert!(status.set_condition(COMPLETE, true, ""));
        assert!(status.set_condition(RUNNING, false, ""));
        assert!(status.set_condition(FAILED, true, "2 pods failed during processing"));
        let kinds: Vec<(&str, &str, &str)> = status
            .conditions
            .iter()
            .map(|c| (c.kind.as_str(), c.status.as_str(), c.reason.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("Running", "False", "Running"),
                ("Complete", "True", "Complete"),
                ("Failed", "True", "Failed")
            ]
        );
        assert_eq!(
            status.conditions[2].message,
            "2 pods failed during processing"
        );
        assert!(status.has_condition(RUNNING, false));
    }

    #[test]
    fn a_failed_pod_is_retried_until_its_retries_are_spent() {
        let mut pod = PodStatus::running();
        pod.job_id = "j1".into();
        assert_eq!(pod.fail("boom", 1), 0);
        assert_eq!(
            (pod.status, pod.retries, pod.job_id.as_str()),
            (PodPhase::Waiting, 1, "")
        );
        assert_eq!(pod.fail("boom", 1), 1);
        assert_eq!((pod.status, pod.error.as_str()), (PodPhase::Error, "boom"));
        assert!(pod.completion_time.is_some());
    }

    #[test]
    fn zero_counts_and_empty_fields_are_left_out() {
        let mut status = TaskStatus::default();
        status.pod_statuses.insert("p".into(), PodStatus::running());
        assert_eq!(
            serde_json::to_value(&status).ok(),
            Some(serde_json::json!({"podStatuses": {"p": {"status": "RUNNING"}}}))
        );
    }
}
