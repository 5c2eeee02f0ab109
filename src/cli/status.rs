//! `federator status`: one screen from the hub with every K8ssandraCluster, its datacenters by
//! region (size, readiness, Stargate, Reaper and the last Medusa backup), and every region's
//! reachability, read from the objects' status (what the operator last wrote), never from the
//! regions themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde::Serialize;

use super::StatusArgs;
use crate::api::client_config::ClientConfig;
use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::api::shared::find_condition;
use crate::home::HomeCluster;

/// Bound on each request to the hub.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub clusters: Vec<ClusterReport>,
    pub regions: Vec<RegionReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReport {
    pub namespace: String,
    pub name: String,
    /// The Ready condition's status: True, False or Unknown.
    pub ready: String,
    /// The Ready condition's reason, when there is one.
    pub reason: Option<String>,
    /// "ready/total" datacenters.
    pub datacenters_ready: String,
    pub error: Option<String>,
    pub datacenters: Vec<DatacenterReport>,
    /// Where the operations on Cassandra stand: the SystemKeyspacesReplicated and
    /// DatacenterRebuild conditions, when present.
    pub operations: Vec<OperationReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationReport {
    /// The condition's type.
    pub operation: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// The conditions `federator status` shows as operations on Cassandra.
const OPERATION_CONDITIONS: [&str; 2] = ["SystemKeyspacesReplicated", "DatacenterRebuild"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatacenterReport {
    pub name: String,
    /// The k8sContext ("" for the hub).
    pub region: String,
    /// Whether it runs in the hub: no k8sContext, or one whose ClientConfig reaches the hub.
    pub in_hub: bool,
    pub size: i32,
    /// Ready, Stopped (`stopped: true`), NotReady, or Unknown (no status yet, or the region
    /// cannot be reached).
    pub state: String,
    pub ready_nodes: Option<usize>,
    /// Whether the region answers, per its ClientConfig (None when no ClientConfig names it,
    /// and for the hub).
    pub region_reachable: Option<bool>,
    pub stargate: Option<String>,
    pub reaper: Option<String>,
    /// The last Medusa backup (name, finish time, nodes) and the one running, as the
    /// K8ssandraCluster's status last recorded them.
    pub backup: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionReport {
    pub context: String,
    /// `namespace/name` of the ClientConfig.
    pub client_config: String,
    /// Reachable, Unreachable, or the reason the ClientConfig is not Ready.
    pub state: String,
    pub reachable: Option<bool>,
    pub server_version: Option<String>,
    pub message: Option<String>,
    /// Whether the context reaches the hub itself (its datacenters are the hub's).
    pub reaches_hub: bool,
}

/// The report from the objects as listed (pure, for tests).
pub fn build_report(
    clusters: &[K8ssandraCluster],
    client_configs: &[ClientConfig],
) -> StatusReport {
    let mut regions: Vec<RegionReport> = client_configs.iter().map(region_report).collect();
    regions.sort_by(|a, b| a.context.cmp(&b.context));
    // The hub's datacenters do not depend on how its ClientConfig's own kubeconfig fares.
    let reachability: BTreeMap<&str, Option<bool>> = regions
        .iter()
        .map(|r| (r.context.as_str(), r.reachable.filter(|_| !r.reaches_hub)))
        .collect();
    let hub_contexts: BTreeSet<&str> =
        regions.iter().filter(|r| r.reaches_hub).map(|r| r.context.as_str()).collect();
    let mut clusters: Vec<ClusterReport> =
        clusters.iter().map(|k8c| cluster_report(k8c, &reachability, &hub_contexts)).collect();
    clusters.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    StatusReport { clusters, regions }
}

fn region_report(cc: &ClientConfig) -> RegionReport {
    let status = cc.status.as_ref();
    let ready =
        status.and_then(|s| s.conditions.as_deref()).and_then(|c| find_condition(c, "Ready"));
    let reachable = status.and_then(|s| s.reachable);
    let reaches_hub = status.and_then(|s| s.reaches_hub) == Some(true);
    let state = match (reachable, ready) {
        (Some(true), _) if reaches_hub => "Reachable (the hub)".to_string(),
        (Some(true), _) => "Reachable".to_string(),
        (Some(false), _) => "Unreachable".to_string(),
        (None, Some(condition)) if !condition.reason.is_empty() => condition.reason.clone(),
        (None, _) => "Unknown".to_string(),
    };
    let message = status
        .and_then(|s| s.message.clone())
        .or_else(|| ready.map(|c| c.message.clone()))
        .filter(|m| !m.is_empty());
    RegionReport {
        context: cc.context_name(),
        client_config: format!("{}/{}", cc.namespace().unwrap_or_default(), cc.name_any()),
        state,
        reachable,
        server_version: status.and_then(|s| s.server_version.clone()),
        message,
        reaches_hub,
    }
}

fn cluster_report(
    k8c: &K8ssandraCluster,
    reachability: &BTreeMap<&str, Option<bool>>,
    hub_contexts: &BTreeSet<&str>,
) -> ClusterReport {
    let status = k8c.status.as_ref();
    let ready =
        status.and_then(|s| s.conditions.as_deref()).and_then(|c| find_condition(c, "Ready"));
    let statuses = status.and_then(|s| s.datacenters.as_ref());
    let templates =
        k8c.spec.cassandra.as_ref().and_then(|c| c.datacenters.as_deref()).unwrap_or_default();
    let datacenters: Vec<DatacenterReport> = templates
        .iter()
        .map(|dc| {
            let name = dc.name().to_string();
            let region = dc.k8s_context.clone().unwrap_or_default();
            let in_hub = region.is_empty() || hub_contexts.contains(region.as_str());
            let region_reachable = reachability.get(region.as_str()).copied().flatten();
            let dc_status = statuses.and_then(|s| s.get(&name));
            let cassandra = dc_status.and_then(|s| s.cassandra.as_ref());
            let state = match (region_reachable, cassandra) {
                (Some(false), _) | (_, None) => "Unknown",
                (_, Some(c)) if c.is_condition_true("Ready") => "Ready",
                (_, Some(c)) if c.is_stopped() => "Stopped",
                (_, Some(_)) => "NotReady",
            };
            DatacenterReport {
                name,
                region,
                in_hub,
                size: dc.size,
                state: state.to_string(),
                ready_nodes: cassandra.and_then(|c| c.node_statuses.as_ref()).map(|n| n.len()),
                region_reachable,
                stargate: dc_status.and_then(|s| s.stargate.as_ref()).map(|sg| {
                    let progress = sg
                        .progress
                        .as_ref()
                        .map(|p| format!("{p:?}"))
                        .unwrap_or_else(|| "Pending".into());
                    format!("{progress} {}/{}", sg.ready_replicas, sg.replicas)
                }),
                backup: dc_status.and_then(|s| s.backups.as_ref()).map(backup_summary),
                reaper: dc_status.and_then(|s| s.reaper.as_ref()).map(|r| {
                    if r.is_ready() {
                        "Ready".to_string()
                    } else {
                        r.progress
                            .as_ref()
                            .map(|p| format!("{p:?}"))
                            .unwrap_or_else(|| "Pending".into())
                    }
                }),
            }
        })
        .collect();
    let total = datacenters.len();
    let ready_count = datacenters.iter().filter(|d| d.state == "Ready").count();
    let mut datacenters = datacenters;
    // Datacenters taken out of the spec and not gone yet, with their removal's step.
    let in_spec: BTreeSet<&str> = templates.iter().map(|dc| dc.name()).collect();
    for (name, entry) in statuses.into_iter().flatten() {
        let Some(progress) = &entry.decommission_progress else {
            continue;
        };
        if in_spec.contains(name.as_str()) {
            continue;
        }
        let region = entry.context_name.clone().unwrap_or_default();
        datacenters.push(DatacenterReport {
            name: name.clone(),
            in_hub: region.is_empty() || hub_contexts.contains(region.as_str()),
            region_reachable: reachability.get(region.as_str()).copied().flatten(),
            region,
            size: 0,
            state: format!("Removing ({progress})"),
            ready_nodes: None,
            stargate: None,
            reaper: None,
            backup: None,
        });
    }
    let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    let mut operations: Vec<OperationReport> = OPERATION_CONDITIONS
        .iter()
        .filter_map(|kind| find_condition(conditions, kind))
        .map(|c| OperationReport {
            operation: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
        .collect();
    operations.extend(rollout_operation(conditions));
    ClusterReport {
        namespace: k8c.namespace().unwrap_or_default(),
        name: k8c.name_any(),
        ready: ready.map(|c| c.status.clone()).unwrap_or_else(|| "Unknown".into()),
        reason: ready.map(|c| c.reason.clone()).filter(|r| !r.is_empty()),
        datacenters_ready: format!("{ready_count}/{total}"),
        error: status.and_then(|s| s.error.clone()),
        datacenters,
        operations,
    }
}

/// `<name> <finishTime> <finished>/<total> nodes`, then `running <job>` when one runs.
fn backup_summary(backups: &crate::api::k8ssandra_cluster::DatacenterBackups) -> String {
    let mut parts = Vec::new();
    if let Some(last) = &backups.last {
        let mut text = last.name.clone();
        if let Some(finished) = &last.finish_time {
            let _ = write!(text, " {}", finished.0);
        }
        if let (Some(finished), Some(total)) = (last.finished_nodes, last.total_nodes) {
            let _ = write!(text, " {finished}/{total} nodes");
        }
        if let Some(status) = last.status.as_deref().filter(|s| *s != "SUCCESS") {
            let _ = write!(text, " {status}");
        }
        parts.push(text);
    }
    if let Some(running) = &backups.running {
        parts.push(format!("running {running}"));
    }
    parts.join(", ")
}

/// A change that restarts Cassandra on its way through the datacenters: halted (Degraded
/// `RolloutHalted`), or with datacenters waiting their turn (in Progressing).
fn rollout_operation(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Option<OperationReport> {
    let rollout = |reason: &str, message: &str| OperationReport {
        operation: "Rollout".into(),
        status: "False".into(),
        reason: reason.into(),
        message: message.into(),
    };
    if let Some(degraded) = find_condition(conditions, "Degraded")
        && degraded.reason == crate::federation::status::REASON_ROLLOUT_HALTED
    {
        return Some(rollout(&degraded.reason, &degraded.message));
    }
    let progressing = find_condition(conditions, "Progressing")?;
    progressing
        .message
        .contains(crate::federation::rollout::RESTART_QUEUED)
        .then(|| rollout("RollingOut", &progressing.message))
}

/// The report as a table for people.
pub fn render_table(report: &StatusReport) -> String {
    let mut out = String::new();
    if report.clusters.is_empty() {
        out.push_str("No K8ssandraClusters.\n");
    }
    for cluster in &report.clusters {
        let reason = cluster.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
        let _ = writeln!(
            out,
            "K8ssandraCluster {}/{}: Ready={}{reason}, datacenters ready {}",
            cluster.namespace, cluster.name, cluster.ready, cluster.datacenters_ready
        );
        if let Some(error) = &cluster.error {
            let _ = writeln!(out, "  error: {error}");
        }
        for operation in &cluster.operations {
            let _ = writeln!(
                out,
                "  {}: {} ({}) {}",
                operation.operation, operation.status, operation.reason, operation.message
            );
        }
        let rows: Vec<Vec<String>> = cluster
            .datacenters
            .iter()
            .map(|dc| {
                let state = match dc.region_reachable {
                    Some(false) => format!("{} (region unreachable)", dc.state),
                    _ => dc.state.clone(),
                };
                vec![
                    dc.name.clone(),
                    match (dc.region.is_empty(), dc.in_hub) {
                        (true, _) => "(hub)".into(),
                        (false, true) => format!("{} (hub)", dc.region),
                        (false, false) => dc.region.clone(),
                    },
                    dc.size.to_string(),
                    state,
                    dc.stargate.clone().unwrap_or_else(|| "-".into()),
                    dc.reaper.clone().unwrap_or_else(|| "-".into()),
                    dc.backup.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        table(
            &mut out,
            &[
                "DATACENTER",
                "REGION",
                "SIZE",
                "STATE",
                "STARGATE",
                "REAPER",
                "LAST BACKUP",
            ],
            &rows,
        );
        out.push('\n');
    }
    out.push_str("Regions:\n");
    if report.regions.is_empty() {
        out.push_str("  No ClientConfigs.\n");
    }
    let rows: Vec<Vec<String>> = report
        .regions
        .iter()
        .map(|r| {
            vec![
                r.context.clone(),
                r.state.clone(),
                r.client_config.clone(),
                r.server_version.clone().unwrap_or_else(|| "-".into()),
                r.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        table(
            &mut out,
            &["CONTEXT", "STATE", "CLIENTCONFIG", "VERSION", "MESSAGE"],
            &rows,
        );
    }
    out
}

/// Writes aligned columns, indented by two spaces.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::from("  ");
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[derive(Debug, thiserror::Error)]
enum StatusError {
    #[error("{0}")]
    Home(#[from] crate::home::HomeClientError),
    #[error("listing {what} in the hub: {source}")]
    List {
        what: &'static str,
        source: kube::Error,
    },
    #[error("listing {what} in the hub took longer than {}s", REQUEST_TIMEOUT.as_secs())]
    Timeout { what: &'static str },
    #[error("K8ssandraCluster {0} not found")]
    NotFound(String),
    #[error("unknown output format {0:?}: expected json (or nothing for a table)")]
    Format(String),
}

async fn list<K>(api: Api<K>, what: &'static str) -> Result<Vec<K>, StatusError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    tokio::time::timeout(REQUEST_TIMEOUT, api.list(&ListParams::default()))
        .await
        .map_err(|_| StatusError::Timeout { what })?
        .map(|list| list.items)
        .map_err(|source| StatusError::List { what, source })
}

async fn collect(args: &StatusArgs) -> Result<StatusReport, StatusError> {
    let home = HomeCluster {
        kubeconfig: args.hub.kubeconfig.clone(),
        context: args.hub.context.clone(),
    };
    let client =
        kube::Client::try_from(home.config().await?).map_err(crate::home::HomeClientError::from)?;
    let clusters: Api<K8ssandraCluster> = match &args.namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let mut clusters = list(clusters, "K8ssandraClusters").await?;
    if let Some(name) = &args.name {
        clusters.retain(|k8c| k8c.name_any() == *name);
        if clusters.is_empty() {
            return Err(StatusError::NotFound(name.clone()));
        }
    }
    let client_configs = list(Api::<ClientConfig>::all(client), "ClientConfigs").await?;
    Ok(build_report(&clusters, &client_configs))
}

/// `federator status`.
pub async fn run(args: StatusArgs) -> ExitCode {
    let json = match args.output.as_deref() {
        None | Some("table" | "wide") => false,
        Some("json") => true,
        Some(other) => {
            eprintln!(
                "federator status: {}",
                StatusError::Format(other.to_string())
            );
            return ExitCode::from(2);
        }
    };
    match collect(&args).await {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("federator status: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", render_table(&report));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("federator status: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> K8ssandraCluster {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "k8ssandra.io/v1alpha1",
            "kind": "K8ssandraCluster",
            "metadata": {"name": "demo", "namespace": "db"},
            "spec": {"cassandra": {"datacenters": [
                {"metadata": {"name": "dc1"}, "k8sContext": "east", "size": 3},
                {"metadata": {"name": "dc2"}, "k8sContext": "west", "size": 2}
            ]}},
            "status": {
                "conditions": [{"type": "Ready", "status": "False", "reason": "DatacentersNotReady",
                    "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "datacenters": {
                    "dc1": {"cassandra": {"conditions": [{"type": "Ready", "status": "True"}]},
                            "reaper": {"progress": "Running", "ready": true}},
                    "dc2": {"cassandra": {"conditions": [{"type": "Ready", "status": "True"}]},
                            "stargate": {"progress": "Deploying", "replicas": 1, "readyReplicas": 0,
                                "updatedReplicas": 0, "availableReplicas": 0}}
                }
            }
        }))
        .expect("valid K8ssandraCluster")
    }

    fn client_config(name: &str, reachable: bool) -> ClientConfig {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "config.k8ssandra.io/v1beta1",
            "kind": "ClientConfig",
            "metadata": {"name": name, "namespace": "k8ssandra-operator"},
            "spec": {"contextName": name, "kubeConfigSecret": {"name": name}},
            "status": {"reachable": reachable,
                "message": if reachable { "" } else { "connection refused" }}
        }))
        .expect("valid ClientConfig")
    }

    #[test]
    fn the_last_backup_and_a_running_one_are_shown_per_datacenter() {
        let mut k8c = cluster();
        let datacenters = (k8c.status.as_mut().and_then(|s| s.datacenters.as_mut()))
            .expect("datacenters in status");
        datacenters.get_mut("dc1").expect("dc1").backups =
            serde_json::from_value(serde_json::json!({
                "last": {"name": "nightly-1", "finishTime": "2026-12-07T01:00:00Z",
                    "status": "SUCCESS", "finishedNodes": 3, "totalNodes": 3},
                "running": "nightly-2"
            }))
            .expect("backups");
        datacenters.get_mut("dc2").expect("dc2").backups =
            serde_json::from_value(serde_json::json!({
                "last": {"name": "partial", "status": "FAILED", "finishedNodes": 1, "totalNodes": 2}
            }))
            .expect("backups");
        let report = build_report(&[k8c], &[]);
        let dcs = &report.clusters[0].datacenters;
        assert_eq!(
            dcs[0].backup.as_deref(),
            Some("nightly-1 2026-12-07T01:00:00Z 3/3 nodes, running nightly-2")
        );
        assert_eq!(dcs[1].backup.as_deref(), Some("partial 1/2 nodes FAILED"));
        let table = render_table(&report);
        assert!(table.contains("LAST BACKUP"), "{table}");
        assert!(table.contains("running nightly-2"), "{table}");
        let without = build_report(&[cluster()], &[]);
        assert_eq!(without.clusters[0].datacenters[0].backup, None);
    }

    #[test]
    fn a_context_that_reaches_the_hub_shows_its_datacenters_in_the_hub() {
        let mut hub = client_config("east", false);
        hub.status.as_mut().expect("status").reaches_hub = Some(true);
        let report = build_report(&[cluster()], &[hub, client_config("west", true)]);
        let dcs = &report.clusters[0].datacenters;
        assert!(dcs[0].in_hub && !dcs[1].in_hub);
        // Its own kubeconfig failing says nothing about the hub the datacenter runs in.
        assert_eq!(dcs[0].region_reachable, None);
        assert_eq!(dcs[0].state, "Ready");
        assert!(report.regions[0].reaches_hub);

        let text = render_table(&report);
        let dc1 = text.lines().find(|l| l.contains("dc1")).expect("dc1 row");
        assert!(dc1.contains("east (hub)") && dc1.contains("Ready"), "{dc1}");
        let dc2 = text.lines().find(|l| l.contains("dc2")).expect("dc2 row");
        assert!(!dc2.contains("(hub)"), "{dc2}");
    }

    #[test]
    fn operations_on_cassandra_and_a_datacenter_being_removed_are_shown() {
        let mut k8c = cluster();
        let status: crate::api::k8ssandra_cluster::K8ssandraClusterStatus =
            serde_json::from_value(serde_json::json!({
                "conditions": [
                    {"type": "SystemKeyspacesReplicated", "status": "True", "reason": "Replicated",
                     "message": "system_auth {dc1: 3}", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                    {"type": "DatacenterRebuild", "status": "False", "reason": "Rebuilding",
                     "message": "dc2 rebuilding from dc1", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "datacenters": {"old": {"contextName": "west", "decommissionProgress": "UpdatingReplication"}}
            }))
            .expect("status");
        k8c.status = Some(status);
        let report = build_report(&[k8c], &[client_config("west", true)]);
        let cluster = &report.clusters[0];
        let removing = cluster.datacenters.iter().find(|dc| dc.name == "old").expect("old");
        assert_eq!(removing.state, "Removing (UpdatingReplication)");
        assert_eq!(
            cluster.datacenters_ready, "0/2",
            "the spec's datacenters are counted"
        );
        let text = render_table(&report);
        assert!(
            text.contains("DatacenterRebuild: False (Rebuilding) dc2 rebuilding from dc1"),
            "{text}"
        );
        assert!(text.contains("SystemKeyspacesReplicated: True (Replicated) system_auth {dc1: 3}"));
        assert!(
            text.lines().any(|l| l.contains("old") && l.contains("Removing")),
            "{text}"
        );
    }

    #[test]
    fn a_rollout_under_way_or_halted_is_shown() {
        let with_conditions = |conditions: serde_json::Value| {
            let mut k8c = cluster();
            k8c.status = Some(
                serde_json::from_value(serde_json::json!({"conditions": conditions}))
                    .expect("status"),
            );
            render_table(&build_report(&[k8c], &[client_config("west", true)]))
        };
        let rolling = with_conditions(serde_json::json!([
            {"type": "Progressing", "status": "True", "reason": "WaitingForDatacenter",
             "message": "dc2: its change restarts Cassandra: applied once datacenter dc1 is Ready (one datacenter at a time)",
             "lastTransitionTime": "2026-01-01T00:00:00Z"}]));
        assert!(
            rolling.contains("Rollout: False (RollingOut) dc2: its change restarts Cassandra"),
            "{rolling}"
        );
        let halted = with_conditions(serde_json::json!([
            {"type": "Degraded", "status": "True", "reason": "RolloutHalted",
             "message": "datacenter dc1 is not Ready 26m after its change (deadline 25m)",
             "lastTransitionTime": "2026-01-01T00:00:00Z"}]));
        assert!(
            halted.contains("Rollout: False (RolloutHalted) datacenter dc1 is not Ready"),
            "{halted}"
        );
        let creating = with_conditions(serde_json::json!([
            {"type": "Progressing", "status": "True", "reason": "WaitingForDatacenter",
             "message": "dc2: waiting for datacenter dc1 to be Ready",
             "lastTransitionTime": "2026-01-01T00:00:00Z"}]));
        assert!(!creating.contains("Rollout"), "{creating}");
    }

    #[test]
    fn a_datacenter_in_an_unreachable_region_is_unknown_and_the_region_is_named() {
        let report = build_report(
            &[cluster()],
            &[client_config("west", false), client_config("east", true)],
        );
        let dcs = &report.clusters[0].datacenters;
        assert_eq!(dcs[0].state, "Ready");
        assert_eq!(dcs[0].reaper.as_deref(), Some("Ready"));
        assert_eq!(dcs[1].state, "Unknown");
        assert_eq!(dcs[1].stargate.as_deref(), Some("Deploying 0/1"));
        assert_eq!(report.clusters[0].datacenters_ready, "1/2");
        assert_eq!(report.regions[0].context, "east");
        assert_eq!(report.regions[1].state, "Unreachable");

        let text = render_table(&report);
        assert!(
            text.contains("K8ssandraCluster db/demo: Ready=False (DatacentersNotReady)"),
            "{text}"
        );
        let dc2 = text.lines().find(|l| l.contains("dc2")).expect("dc2 row");
        assert!(
            dc2.contains("west") && dc2.contains("Unknown (region unreachable)"),
            "{dc2}"
        );
        let west =
            text.lines().find(|l| l.trim_start().starts_with("west")).expect("west region row");
        assert!(
            west.contains("Unreachable") && west.contains("connection refused"),
            "{west}"
        );
    }
}
