//! Which datacenters a K8ssandraTask runs on, where, and which CassandraTasks to create now
//! (pure).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::api::k8ssandra_task::{CassandraTaskStatus, DcConcurrencyPolicy, K8ssandraTask};
use crate::cassandra::task::{TASK_GROUP, TASK_KIND, TASK_VERSION};
use crate::workload::labels::datacenter_labels;

/// Labels naming the K8ssandraTask a CassandraTask was made for (upstream's).
pub const TASK_NAME_LABEL: &str = "k8ssandra.io/task-name";
pub const TASK_NAMESPACE_LABEL: &str = "k8ssandra.io/task-namespace";
/// Upstream's component label on the CassandraTasks.
const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
const COMPONENT_VALUE: &str = "cassandra";
/// The longest label value Kubernetes accepts.
const MAX_LABEL_VALUE: usize = 63;
/// The longest object name (DNS subdomain).
const MAX_NAME: usize = 253;

/// Where one datacenter of the K8ssandraCluster runs, as the K8ssandraCluster controller
/// placed it (`federation::plan`): its CassandraDatacenter's name, region and namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub name: String,
    /// The region; "" is the hub.
    pub context: String,
    pub namespace: String,
}

/// One datacenter the task runs on, and its CassandraTask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub datacenter: String,
    pub context: String,
    pub namespace: String,
    /// `<task>-<datacenter>`, as upstream names it.
    pub task_name: String,
}

/// Why a task cannot run; each message says what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("spec.cluster.name is empty: name the K8ssandraCluster to run the task on")]
    NoCluster,
    #[error(
        "unknown K8ssandraCluster {namespace}/{name}: create it, or correct spec.cluster (its namespace defaults to the task's)"
    )]
    UnknownCluster { namespace: String, name: String },
    #[error(
        "spec.cluster.namespace {namespace} is not among the namespaces this Federator watches: run the task in a watched namespace"
    )]
    UnwatchedNamespace { namespace: String },
    #[error("the K8ssandraCluster {cluster} cannot be planned: {reason}")]
    ClusterNotPlanned { cluster: String, reason: String },
    #[error(
        "unknown datacenters: {unknown}; spec.datacenters must name datacenters of the K8ssandraCluster (metadata.name): {known}"
    )]
    UnknownDatacenters { unknown: String, known: String },
    #[error("spec.template.jobs is empty: give the job to run (for instance command: restart)")]
    NoJobs,
    #[error(
        "the task's name and namespace must be at most {MAX_LABEL_VALUE} characters (they label its CassandraTasks): use a shorter name"
    )]
    NameTooLong,
    #[error(
        "CassandraTask name {name} would be longer than {MAX_NAME} characters: use a shorter task name"
    )]
    TaskNameTooLong { name: String },
}

impl Invalid {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Invalid::NoCluster
            | Invalid::UnknownCluster { .. }
            | Invalid::UnwatchedNamespace { .. } => "UnknownCluster",
            Invalid::ClusterNotPlanned { .. } => "ClusterNotPlanned",
            Invalid::UnknownDatacenters { .. } => "UnknownDatacenters",
            Invalid::NoJobs => "NoJobs",
            Invalid::NameTooLong | Invalid::TaskNameTooLong { .. } => "NameTooLong",
        }
    }
}

/// The datacenters the task runs on, in order: every datacenter of the cluster in its spec
/// order when `spec.datacenters` is empty, else the named ones in the order given (a name
/// given twice counts once).
pub fn select(task: &K8ssandraTask, located: &[Located]) -> Result<Vec<Target>, Invalid> {
    let name = task.metadata.name.clone().unwrap_or_default();
    let namespace = task.metadata.namespace.clone().unwrap_or_default();
    if name.len() > MAX_LABEL_VALUE || namespace.len() > MAX_LABEL_VALUE {
        return Err(Invalid::NameTooLong);
    }
    if task.spec.template.jobs.as_deref().unwrap_or_default().is_empty() {
        return Err(Invalid::NoJobs);
    }
    let wanted = task.spec.datacenters.as_deref().unwrap_or_default();
    let chosen: Vec<&Located> = if wanted.is_empty() {
        located.iter().collect()
    } else {
        let mut seen = BTreeSet::new();
        let mut unknown = Vec::new();
        let mut chosen = Vec::new();
        for dc in wanted {
            if !seen.insert(dc.as_str()) {
                continue;
            }
            match located.iter().find(|l| &l.name == dc) {
                Some(found) => chosen.push(found),
                None => unknown.push(dc.as_str()),
            }
        }
        if !unknown.is_empty() {
            let known: Vec<&str> = located.iter().map(|l| l.name.as_str()).collect();
            return Err(Invalid::UnknownDatacenters {
                unknown: unknown.join(", "),
                known: if known.is_empty() {
                    "it has none".into()
                } else {
                    known.join(", ")
                },
            });
        }
        chosen
    };
    chosen
        .into_iter()
        .map(|dc| {
            let task_name = format!("{name}-{}", dc.name);
            if task_name.len() > MAX_NAME {
                return Err(Invalid::TaskNameTooLong { name: task_name });
            }
            Ok(Target {
                datacenter: dc.name.clone(),
                context: dc.context.clone(),
                namespace: dc.namespace.clone(),
                task_name,
            })
        })
        .collect()
}

/// What is known of one target's CassandraTask in its region.
#[derive(Clone, Debug, PartialEq)]
pub enum Seen {
    /// Not there (yet).
    Missing,
    /// There, with this status.
    Found(CassandraTaskStatus),
    /// The region could not be asked (or the task there is not this K8ssandraTask's).
    Unknown,
}

impl Seen {
    fn finished(&self) -> bool {
        matches!(self, Seen::Found(s) if s.completion_time.is_some())
    }

    fn failed(&self) -> bool {
        matches!(self, Seen::Found(s) if has_condition(s, "Failed"))
    }
}

/// Whether `status` has condition `kind` with status True.
pub fn has_condition(status: &CassandraTaskStatus, kind: &str) -> bool {
    status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == kind && c.status == "True")
}

/// The datacenters whose CassandraTask is to be created now. Allow: every missing one. Forbid:
/// in order, the first one not finished, if it is missing; nothing after a datacenter whose
/// task is running, failed (the rest are cancelled, as upstream documents) or whose region
/// cannot be asked.
pub fn to_create<'a>(
    targets: &'a [Target],
    seen: &BTreeMap<String, Seen>,
    policy: DcConcurrencyPolicy,
) -> Vec<&'a Target> {
    let state = |t: &Target| seen.get(&t.datacenter).cloned().unwrap_or(Seen::Missing);
    match policy {
        DcConcurrencyPolicy::Allow => {
            targets.iter().filter(|t| state(t) == Seen::Missing).collect()
        }
        DcConcurrencyPolicy::Forbid => {
            for target in targets {
                let state = state(target);
                if state.finished() && !state.failed() {
                    continue;
                }
                if state == Seen::Missing {
                    return vec![target];
                }
                break;
            }
            Vec::new()
        }
    }
}

/// Under Forbid, the datacenters never started because an earlier one failed.
pub fn cancelled(
    targets: &[Target],
    seen: &BTreeMap<String, Seen>,
    policy: DcConcurrencyPolicy,
) -> Vec<String> {
    if policy == DcConcurrencyPolicy::Allow {
        return Vec::new();
    }
    match targets.iter().position(|t| seen.get(&t.datacenter).is_some_and(Seen::failed)) {
        Some(at) => targets[at + 1..]
            .iter()
            .filter(|t| matches!(seen.get(&t.datacenter), None | Some(Seen::Missing)))
            .map(|t| t.datacenter.clone())
            .collect(),
        None => Vec::new(),
    }
}

/// A region and namespace holding datacenters of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub context: String,
    pub namespace: String,
    pub datacenters: Vec<String>,
}

/// Every region and namespace where the cluster has datacenters, in spec order of their first.
pub fn places(located: &[Located]) -> Vec<Place> {
    let mut places: Vec<Place> = Vec::new();
    for dc in located {
        match places.iter_mut().find(|p| p.context == dc.context && p.namespace == dc.namespace) {
            Some(place) => place.datacenters.push(dc.name.clone()),
            None => places.push(Place {
                context: dc.context.clone(),
                namespace: dc.namespace.clone(),
                datacenters: vec![dc.name.clone()],
            }),
        }
    }
    places
}

/// The label selector of the task's CassandraTasks.
pub fn task_selector(task: &K8ssandraTask) -> String {
    format!(
        "{TASK_NAME_LABEL}={},{TASK_NAMESPACE_LABEL}={}",
        task.metadata.name.as_deref().unwrap_or_default(),
        task.metadata.namespace.as_deref().unwrap_or_default()
    )
}

/// The labels of a target's CassandraTask.
pub fn task_labels(
    task: &K8ssandraTask,
    cluster: &(String, String),
    target: &Target,
) -> BTreeMap<String, String> {
    let mut labels = datacenter_labels(&cluster.1, &cluster.0, &target.datacenter);
    labels.insert(COMPONENT_LABEL.into(), COMPONENT_VALUE.into());
    labels.insert(
        TASK_NAME_LABEL.into(),
        task.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(
        TASK_NAMESPACE_LABEL.into(),
        task.metadata.namespace.clone().unwrap_or_default(),
    );
    labels
}

/// Whether a CassandraTask found in a region was made for this K8ssandraTask.
pub fn made_for(labels: Option<&BTreeMap<String, String>>, task: &K8ssandraTask) -> bool {
    let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
    label(TASK_NAME_LABEL) == task.metadata.name.as_deref()
        && label(TASK_NAMESPACE_LABEL) == task.metadata.namespace.as_deref()
}

/// The CassandraTask of a target, for server-side apply: the template as given, aimed at the
/// datacenter's CassandraDatacenter, with a TTL of 0 (the K8ssandraTask's own TTL deletes it).
pub fn cassandra_task(task: &K8ssandraTask, cluster: &(String, String), target: &Target) -> Value {
    let mut spec = serde_json::to_value(&task.spec.template).unwrap_or_else(|_| json!({}));
    if let Some(spec) = spec.as_object_mut() {
        spec.insert("ttlSecondsAfterFinished".into(), json!(0));
        spec.insert(
            "datacenter".into(),
            json!({"name": target.datacenter, "namespace": target.namespace}),
        );
    }
    json!({
        "apiVersion": format!("{TASK_GROUP}/{TASK_VERSION}"),
        "kind": TASK_KIND,
        "metadata": {
            "name": target.task_name,
            "namespace": target.namespace,
            "labels": task_labels(task, cluster, target),
        },
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::k8ssandra_task::{CassandraJob, K8ssandraTaskSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn located(name: &str, context: &str) -> Located {
        Located {
            name: name.into(),
            context: context.into(),
            namespace: "ns".into(),
        }
    }

    fn cluster() -> Vec<Located> {
        vec![
            located("dc1", ""),
            located("dc2", "east"),
            located("dc3", "west"),
        ]
    }

    fn task(datacenters: &[&str]) -> K8ssandraTask {
        let mut task = K8ssandraTask::new(
            "restart",
            K8ssandraTaskSpec {
                datacenters: Some(datacenters.iter().map(|d| d.to_string()).collect()),
                ..Default::default()
            },
        );
        task.metadata.namespace = Some("ns".into());
        task.spec.cluster.name = Some("demo".into());
        task.spec.template.jobs = Some(vec![CassandraJob {
            name: "r".into(),
            command: "restart".into(),
            args: None,
        }]);
        task
    }

    fn names(targets: &[&Target]) -> Vec<String> {
        targets.iter().map(|t| t.datacenter.clone()).collect()
    }

    fn finished(failed: bool) -> Seen {
        let condition = |kind: &str| Condition {
            type_: kind.into(),
            status: "True".into(),
            reason: kind.into(),
            message: String::new(),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            observed_generation: None,
        };
        let mut conditions = vec![condition("Complete")];
        if failed {
            conditions.push(condition("Failed"));
        }
        Seen::Found(CassandraTaskStatus {
            completion_time: Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
            conditions: Some(conditions),
            ..Default::default()
        })
    }

    #[test]
    fn no_datacenters_means_all_in_spec_order() {
        let targets = select(&task(&[]), &cluster()).expect("valid");
        let order: Vec<_> = targets.iter().map(|t| (&*t.datacenter, &*t.context)).collect();
        assert_eq!(order, [("dc1", ""), ("dc2", "east"), ("dc3", "west")]);
        assert_eq!(targets[1].task_name, "restart-dc2");
        assert_eq!(targets[1].namespace, "ns");
    }

    #[test]
    fn named_datacenters_run_in_the_order_given_once_each() {
        let targets = select(&task(&["dc3", "dc1", "dc3"]), &cluster()).expect("valid");
        let order: Vec<_> = targets.iter().map(|t| t.datacenter.as_str()).collect();
        assert_eq!(order, ["dc3", "dc1"]);
    }

    #[test]
    fn bad_input_says_what_to_fix() {
        let unknown = select(&task(&["dc1", "dc9", "x"]), &cluster()).unwrap_err();
        assert_eq!(unknown.reason(), "UnknownDatacenters");
        assert_eq!(
            unknown.to_string(),
            "unknown datacenters: dc9, x; spec.datacenters must name datacenters of the K8ssandraCluster (metadata.name): dc1, dc2, dc3"
        );
        let mut no_jobs = task(&[]);
        no_jobs.spec.template.jobs = Some(Vec::new());
        assert_eq!(select(&no_jobs, &cluster()), Err(Invalid::NoJobs));
        let mut long = task(&[]);
        long.metadata.name = Some("x".repeat(64));
        assert_eq!(select(&long, &cluster()), Err(Invalid::NameTooLong));
    }

    #[test]
    fn allow_creates_every_missing_task_at_once() {
        let targets = select(&task(&[]), &cluster()).expect("valid");
        let seen = BTreeMap::from([("dc2".to_string(), Seen::Found(Default::default()))]);
        let created = to_create(&targets, &seen, DcConcurrencyPolicy::Allow);
        assert_eq!(names(&created), ["dc1", "dc3"]);
        let unknown = BTreeMap::from([("dc1".to_string(), Seen::Unknown)]);
        let created = to_create(&targets, &unknown, DcConcurrencyPolicy::Allow);
        assert_eq!(
            names(&created),
            ["dc2", "dc3"],
            "a region down holds up no other"
        );
    }

    #[test]
    fn forbid_creates_one_task_at_a_time_in_order() {
        let targets = select(&task(&[]), &cluster()).expect("valid");
        let forbid = DcConcurrencyPolicy::Forbid;
        let mut seen = BTreeMap::new();
        assert_eq!(names(&to_create(&targets, &seen, forbid)), ["dc1"]);
        seen.insert("dc1".to_string(), Seen::Found(Default::default()));
        assert!(to_create(&targets, &seen, forbid).is_empty(), "dc1 runs");
        seen.insert("dc1".to_string(), finished(false));
        assert_eq!(names(&to_create(&targets, &seen, forbid)), ["dc2"]);
        seen.insert("dc2".to_string(), Seen::Unknown);
        assert!(
            to_create(&targets, &seen, forbid).is_empty(),
            "dc2's region is down"
        );
        seen.insert("dc2".to_string(), finished(true));
        assert!(to_create(&targets, &seen, forbid).is_empty(), "dc2 failed");
        assert_eq!(cancelled(&targets, &seen, forbid), ["dc3"]);
        assert!(cancelled(&targets, &seen, DcConcurrencyPolicy::Allow).is_empty());
    }

    #[test]
    fn cleanup_looks_in_every_place_of_the_cluster_by_the_tasks_labels() {
        let mut all = cluster();
        all.push(located("dc4", "east"));
        all.push(Located {
            namespace: "other".into(),
            ..located("dc5", "east")
        });
        let found = places(&all);
        let summary: Vec<(&str, &str, Vec<&str>)> = found
            .iter()
            .map(|p| {
                let dcs = p.datacenters.iter().map(String::as_str).collect();
                (p.context.as_str(), p.namespace.as_str(), dcs)
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("", "ns", vec!["dc1"]),
                ("east", "ns", vec!["dc2", "dc4"]),
                ("west", "ns", vec!["dc3"]),
                ("east", "other", vec!["dc5"]),
            ]
        );
        assert_eq!(
            task_selector(&task(&[])),
            "k8ssandra.io/task-name=restart,k8ssandra.io/task-namespace=ns"
        );
    }

    #[test]
    fn the_cassandra_task_is_the_template_aimed_at_the_datacenter_without_ttl() {
        let mut task = task(&[]);
        task.spec.template.ttl_seconds_after_finished = Some(60);
        task.spec.template.restart_policy = Some("Never".into());
        let targets = select(&task, &cluster()).expect("valid");
        let cluster = ("ns".to_string(), "demo".to_string());
        let object = cassandra_task(&task, &cluster, &targets[1]);
        assert_eq!(object["metadata"]["name"], "restart-dc2");
        assert_eq!(object["metadata"]["namespace"], "ns");
        assert_eq!(
            object["spec"]["datacenter"],
            json!({"name": "dc2", "namespace": "ns"})
        );
        assert_eq!(object["spec"]["ttlSecondsAfterFinished"], 0);
        assert_eq!(object["spec"]["restartPolicy"], "Never");
        assert_eq!(object["spec"]["jobs"][0]["command"], "restart");
        let labels = &object["metadata"]["labels"];
        assert_eq!(labels[TASK_NAME_LABEL], "restart");
        assert_eq!(labels[TASK_NAMESPACE_LABEL], "ns");
        assert_eq!(labels["k8ssandra.io/cluster-name"], "demo");
        assert_eq!(labels["k8ssandra.io/datacenter"], "dc2");
        let labels: BTreeMap<String, String> =
            serde_json::from_value(labels.clone()).expect("labels");
        assert!(made_for(Some(&labels), &task));
        let mut other = task.clone();
        other.metadata.name = Some("other".into());
        assert!(!made_for(Some(&labels), &other));
        assert!(!made_for(None, &task));
    }
}
