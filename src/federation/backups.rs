//! The Medusa backups of a K8ssandraCluster's datacenters, read back from their regions for the
//! status (`status.datacenters[dc].backups`, shown by `federator status`): the newest
//! MedusaBackup of each datacenter and the MedusaBackupJob running on it, if any. MedusaBackups
//! carry no cluster label (upstream's do not either), so they are matched by namespace and
//! `spec.cassandraDatacenter`.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::api::ListParams;

use crate::api::k8ssandra_cluster::{DatacenterBackups, LastBackup};
use crate::api::medusa::{MedusaBackup, MedusaBackupJob};

/// A datacenter whose backups are looked up: its CassandraDatacenter's namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BackedUpDatacenter {
    pub namespace: String,
    pub name: String,
}

/// Each datacenter's newest MedusaBackup (by finish time, then start time, then name) and
/// running MedusaBackupJob (the newest by creation). Datacenters with neither have no entry.
/// Pure.
pub fn datacenter_backups(
    datacenters: &[BackedUpDatacenter],
    backups: &[MedusaBackup],
    jobs: &[MedusaBackupJob],
) -> BTreeMap<String, DatacenterBackups> {
    let mut found = BTreeMap::new();
    for dc in datacenters {
        let of_dc = |namespace: Option<String>, datacenter: &str| {
            namespace.as_deref() == Some(dc.namespace.as_str()) && datacenter == dc.name
        };
        let last = backups
            .iter()
            .filter(|b| of_dc(b.namespace(), &b.spec.cassandra_datacenter))
            .max_by(|a, b| newest_first_key(a).cmp(&newest_first_key(b)))
            .map(summary);
        let running = jobs
            .iter()
            .filter(|j| of_dc(j.namespace(), &j.spec.cassandra_datacenter))
            .filter(|j| j.status.as_ref().and_then(|s| s.finish_time.as_ref()).is_none())
            .max_by(|a, b| {
                (a.creation_timestamp(), a.name_any()).cmp(&(b.creation_timestamp(), b.name_any()))
            })
            .map(|j| j.name_any());
        if last.is_some() || running.is_some() {
            found.insert(dc.name.clone(), DatacenterBackups { last, running });
        }
    }
    found
}

fn newest_first_key(
    backup: &MedusaBackup,
) -> (
    Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    String,
) {
    let status = backup.status.as_ref();
    (
        status.and_then(|s| s.finish_time.clone()),
        status.and_then(|s| s.start_time.clone()),
        backup.name_any(),
    )
}

fn summary(backup: &MedusaBackup) -> LastBackup {
    let status = backup.status.clone().unwrap_or_default();
    LastBackup {
        name: backup.name_any(),
        finish_time: status.finish_time,
        status: status.status,
        finished_nodes: status.finished_nodes,
        total_nodes: status.total_nodes,
    }
}

/// Lists the MedusaBackups and MedusaBackupJobs of `namespaces` (all, when empty) in a region
/// and sums them up for `datacenters`. A region without the Medusa CRDs has no backups.
pub async fn read_region(
    client: &kube::Client,
    namespaces: &[String],
    datacenters: &[BackedUpDatacenter],
) -> Result<BTreeMap<String, DatacenterBackups>, kube::Error> {
    let (backups, jobs) = futures::try_join!(
        list::<MedusaBackup>(client, namespaces),
        list::<MedusaBackupJob>(client, namespaces),
    )?;
    Ok(datacenter_backups(datacenters, &backups, &jobs))
}

async fn list<K>(client: &kube::Client, namespaces: &[String]) -> Result<Vec<K>, kube::Error>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: kube::Api<K> = crate::cache::scoped(client, namespaces);
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(response)) if response.is_not_found() => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::medusa::backup::{MedusaBackupSpec, MedusaBackupStatus};
    use crate::api::medusa::backup_job::{MedusaBackupJobSpec, MedusaBackupJobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn time(text: &str) -> Time {
        serde_json::from_value(serde_json::json!(text)).expect("time")
    }

    fn backup(namespace: &str, name: &str, dc: &str, finished: Option<&str>) -> MedusaBackup {
        let mut backup = MedusaBackup::new(
            name,
            MedusaBackupSpec {
                cassandra_datacenter: dc.into(),
                backup_type: None,
            },
        );
        backup.metadata.namespace = Some(namespace.into());
        backup.status = Some(MedusaBackupStatus {
            start_time: Some(time("2026-12-01T00:00:00Z")),
            finish_time: finished.map(time),
            finished_nodes: Some(3),
            total_nodes: Some(3),
            status: Some("SUCCESS".into()),
            ..Default::default()
        });
        backup
    }

    fn job(namespace: &str, name: &str, dc: &str, finished: bool) -> MedusaBackupJob {
        let mut job = MedusaBackupJob::new(
            name,
            MedusaBackupJobSpec {
                cassandra_datacenter: dc.into(),
                backup_type: None,
            },
        );
        job.metadata.namespace = Some(namespace.into());
        job.status = Some(MedusaBackupJobStatus {
            finish_time: finished.then(|| time("2026-12-02T00:00:00Z")),
            ..Default::default()
        });
        job
    }

    fn dc(namespace: &str, name: &str) -> BackedUpDatacenter {
        BackedUpDatacenter {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    #[test]
    fn the_newest_finished_backup_of_each_datacenter_is_the_last() {
        let backups = [
            backup("ns", "monday", "dc1", Some("2026-12-01T01:00:00Z")),
            backup("ns", "tuesday", "dc1", Some("2026-12-02T01:00:00Z")),
            backup("ns", "other-dc", "dc2", Some("2026-12-03T01:00:00Z")),
            backup(
                "elsewhere",
                "same-name-dc",
                "dc1",
                Some("2026-12-04T01:00:00Z"),
            ),
        ];
        let found = datacenter_backups(&[dc("ns", "dc1"), dc("ns", "dc3")], &backups, &[]);
        let last = found["dc1"].last.as_ref().expect("dc1's last backup");
        assert_eq!(last.name, "tuesday");
        assert_eq!(last.status.as_deref(), Some("SUCCESS"));
        assert_eq!((last.finished_nodes, last.total_nodes), (Some(3), Some(3)));
        assert!(!found.contains_key("dc3"), "no backup, no entry: {found:?}");
    }

    #[test]
    fn a_job_without_a_finish_time_is_running() {
        let jobs = [
            job("ns", "done", "dc1", true),
            job("ns", "now", "dc1", false),
            job("ns", "dc2-job", "dc2", false),
        ];
        let found = datacenter_backups(&[dc("ns", "dc1")], &[], &jobs);
        assert_eq!(found["dc1"].running.as_deref(), Some("now"));
        assert_eq!(found["dc1"].last, None);
        let none = datacenter_backups(&[dc("ns", "dc1")], &[], &jobs[..1]);
        assert!(none.is_empty(), "{none:?}");
    }
}
