//! MedusaBackupSchedule (medusa.k8ssandra.io/v1alpha1): a cron schedule of backups (or purges)
//! of one CassandraDatacenter, run in the datacenter's region
//! ([`crate::dataplane::medusa_schedule`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::backup_job::MedusaBackupJobSpec;
use crate::api::shared::{condition_list, tidy_schema};

/// Longest cron schedule accepted.
pub const MAX_CRON_SCHEDULE_LENGTH: u32 = 256;

/// Backups (or purges) on a cron schedule.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "medusa.k8ssandra.io",
    version = "v1alpha1",
    kind = "MedusaBackupSchedule",
    doc = "Medusa backups or purges of one CassandraDatacenter on a cron schedule: each fire creates a MedusaBackupJob (backup) or a MedusaTask (purge).",
    plural = "medusabackupschedules",
    namespaced,
    status = "MedusaBackupScheduleStatus",
    derive = "PartialEq",
    printcolumn(
        name = "Datacenter",
        type_ = "string",
        description = "Datacenter which the task targets",
        json_path = ".spec.backupSpec.cassandraDatacenter"
    ),
    printcolumn(
        name = "ScheduledExecution",
        type_ = "date",
        description = "Next scheduled execution time",
        json_path = ".status.nextSchedule"
    ),
    printcolumn(
        name = "LastExecution",
        type_ = "date",
        description = "Previous execution time",
        json_path = ".status.lastExecution"
    ),
    printcolumn(
        name = "OperationType",
        type_ = "string",
        description = "Type of scheduled operation",
        json_path = ".spec.operationType"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct MedusaBackupScheduleSpec {
    /// Cron schedule of the operations, e.g. `0 2 * * *`.
    #[schemars(length(min = 1, max = MAX_CRON_SCHEDULE_LENGTH))]
    pub cron_schedule: String,
    /// Schedule nothing while true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// The MedusaBackupJob each scheduled backup creates.
    pub backup_spec: MedusaBackupJobSpec,
    /// Allow or Forbid (the default, as upstream): whether an operation may start while one this
    /// schedule started is unfinished. Replace is refused (a condition says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub concurrency_policy: Option<String>,
    /// backup (default) or purge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_type: Option<ScheduledOperation>,
}

/// What a schedule runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScheduledOperation {
    #[default]
    Backup,
    Purge,
}

/// When the schedule runs next, and last ran.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = tidy_schema)]
pub struct MedusaBackupScheduleStatus {
    /// When the next operation is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule: Option<Time>,
    /// When the last operation ran; absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_execution: Option<Time>,
    /// `Scheduled` (True while the cron schedule is understood; False naming
    /// `spec.cronSchedule` and why) and `Skipped` (True when the last fire was skipped: Forbid
    /// and an unfinished operation). Federator's addition; upstream has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "condition_list")]
    pub conditions: Option<Vec<Condition>>,
}

impl MedusaBackupScheduleSpec {
    /// What the schedule runs: `operationType`, backup when absent.
    pub fn operation_type(&self) -> ScheduledOperation {
        self.operation_type.unwrap_or_default()
    }
}
