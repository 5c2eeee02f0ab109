//! The K8ssandra book's Medusa manifests end to end on kube-sim, in upstream's layout (context
//! `kind-k8ssandra-0`, namespace `k8ssandra-operator`, cluster `demo`): its CassandraBackup and
//! CassandraRestore, applied with `kubectl apply -f` exactly as printed, back up and restore
//! through the MedusaBackupJob and MedusaRestoreJob they own. Also: what those jobs cannot do is
//! refused or reported on the CassandraRestore, a MedusaConfiguration tells whether its storage
//! Secret is usable, and deleting a datacenter deletes its jobs.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use federator::api::cassdc::CassandraDatacenter;
use federator::api::medusa::{
    CassandraBackup, CassandraRestore, MedusaBackupJob, MedusaConfiguration, MedusaRestoreJob,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference};
use kube::Api;
use kube_sim::cassandra::{ConsistencyLevel, PodRef, StorageLocation};
use support::*;

const CLUSTER: &str = "demo";
const BUCKET: &str = "medusa-bucket";
const CONTEXT: &str = "kind-k8ssandra-0";
const WAIT: Duration = Duration::from_secs(60);
const PODS: [&str; 2] = ["demo-dc1-default-sts-0", "demo-dc1-default-sts-1"];

fn medusa_cluster() -> serde_json::Value {
    let mut cluster = k8ssandra_cluster(CLUSTER, &[("dc1", CONTEXT, 2)]);
    cluster["spec"]["medusa"] = medusa_spec(BUCKET);
    cluster
}

/// The hub with dc1 Ready, running Medusa, and 40 rows in `app.kv`; the operator to stop.
async fn book_world(sim: &kube_sim::Sim, hub: &kube::Client) -> InProcessOperator {
    apply_bucket_secret(hub).await;
    let operator = InProcessOperator::start(hub, |settings| {
        settings.leader_election.enabled = false;
    });
    let clusters =
        Api::<federator::api::k8ssandra_cluster::K8ssandraCluster>::namespaced(hub.clone(), NS);
    apply(&clusters, CLUSTER, medusa_cluster()).await;
    datacenter_ready(hub, "dc1", WAIT).await;
    write_app_rows(sim, CLUSTER, &["dc1"], 40);
    operator
}

/// `kubectl apply -f <file>` in the hub, as a reader of the book runs it.
async fn kubectl_apply(layout: &Layout, file: &Path) -> String {
    let path = file.to_string_lossy().into_owned();
    let (ok, out, err) = kubectl(
        &layout.kubeconfig,
        &layout.cache,
        &["--context", CONTEXT, "apply", "-f", &path],
    )
    .await;
    assert!(ok, "kubectl apply -f {path}: {out} {err}");
    format!("{out}{err}")
}

fn find<'a>(conditions: Option<&'a Vec<Condition>>, kind: &str) -> Option<&'a Condition> {
    conditions.into_iter().flatten().find(|c| c.type_ == kind)
}

fn owner<'a>(owners: Option<&'a Vec<OwnerReference>>, kind: &str) -> Option<&'a OwnerReference> {
    owners.into_iter().flatten().find(|o| o.kind == kind)
}

#[test]
fn the_books_backup_and_restore_applied_as_printed_back_up_and_restore() {
    let _one = one_at_a_time();
    run(book_backup_and_restore());
}

async fn book_backup_and_restore() {
    let Some(samples) = compat_path("samples/medusa") else {
        panic!("the book's manifests are missing: ../shared/compat/samples/medusa");
    };
    let layout = upstream_layout(1, |setup| setup.pod_listeners()).await;
    let sim = &layout.sim;
    let hub = sim.client(0).await.expect("hub client");
    let operator = book_world(sim, &hub).await;
    let dc = Api::<CassandraDatacenter>::namespaced(hub.clone(), NS).get("dc1").await.expect("dc1");

    // The book's CassandraBackup, as printed.
    let said = kubectl_apply(&layout, &samples.join("book-cassandrabackup.yaml")).await;
    assert!(said.contains("medusa-backup1"), "{said}");
    // kubectl shows the API server's deprecation warning, naming the jobs to use instead.
    assert!(
        said.contains("Warning: medusa.k8ssandra.io/v1alpha1 CassandraBackup and CassandraRestore are deprecated"),
        "{said}"
    );
    assert!(said.contains("MedusaBackupJob"), "{said}");
    let backups = Api::<CassandraBackup>::namespaced(hub.clone(), NS);
    let backup = wait_for("CassandraBackup medusa-backup1 finished", WAIT, || async {
        let backup = backups.get("medusa-backup1").await.map_err(|e| e.to_string())?;
        match backup.status.as_ref().and_then(|s| s.finish_time.as_ref()) {
            Some(_) => Ok(backup),
            None => Err(format!("{:?}", backup.status)),
        }
    })
    .await;
    let status = backup.status.clone().unwrap_or_default();
    let mut finished = status.finished.clone().unwrap_or_default();
    finished.sort();
    assert_eq!(finished, PODS, "{status:?}");
    assert!(
        status.failed.clone().unwrap_or_default().is_empty(),
        "{status:?}"
    );
    assert!(
        status.in_progress.clone().unwrap_or_default().is_empty(),
        "{status:?}"
    );
    assert!(status.start_time.is_some(), "{status:?}");
    let complete = find(status.conditions.as_ref(), "Complete").expect("Complete");
    assert_eq!(complete.status, "True");
    let template = status.cassdc_template_spec.clone().expect("cassdcTemplateSpec");
    assert_eq!(template["metadata"]["name"], "dc1");
    assert_eq!(template["spec"]["clusterName"], CLUSTER);
    assert_eq!(template["spec"]["size"], 2);

    // Run by a MedusaBackupJob of the backup's name, owned by the CassandraBackup (its
    // controller) and by the datacenter (as upstream: plain owner).
    let jobs = Api::<MedusaBackupJob>::namespaced(hub.clone(), NS);
    let job = jobs.get("medusa-backup1").await.expect("MedusaBackupJob medusa-backup1");
    let owners = job.metadata.owner_references.as_ref();
    let by_backup = owner(owners, "CassandraBackup").expect("owned by the CassandraBackup");
    assert_eq!(
        by_backup.uid,
        backup.metadata.uid.clone().unwrap_or_default()
    );
    assert_eq!(by_backup.controller, Some(true));
    let by_dc = owner(owners, "CassandraDatacenter").expect("owned by its datacenter");
    assert_eq!(by_dc.uid, dc.metadata.uid.clone().unwrap_or_default());
    assert_ne!(by_dc.controller, Some(true));
    assert_eq!(job.spec.cassandra_datacenter, "dc1");

    // The bucket holds each node's rows under the book's backup name.
    let storage = StorageLocation::new(BUCKET, CLUSTER);
    {
        let model = sim.cassandra();
        let model = model.lock();
        for pod in PODS {
            let node = PodRef::new(CONTEXT, NS, pod);
            let live = model.node_rows(&node, "app", "kv").expect("node rows");
            let saved =
                model.backup_rows(&storage, "medusa-backup1", pod, "app", "kv").expect("backup");
            assert!(!live.is_empty(), "{pod}");
            assert_eq!(saved, live, "{pod}: the backup holds what the node held");
        }
    }

    // More rows, and one changed, after the backup.
    let mut later: Vec<(String, String)> =
        (0..20).map(|n| (format!("after-{n}"), format!("later-{n}"))).collect();
    later.push(("key-0".to_string(), "changed".to_string()));
    sim.cassandra_write(CLUSTER, "dc1", "app", "kv", later, ConsistencyLevel::All)
        .expect("later rows");

    // The book's CassandraRestore, as printed.
    kubectl_apply(&layout, &samples.join("book-cassandrarestore.yaml")).await;
    let restores = Api::<CassandraRestore>::namespaced(hub.clone(), NS);
    let restore = wait_for(
        "CassandraRestore restore-backup1 finished",
        Duration::from_secs(180),
        || async {
            let restore = restores.get("restore-backup1").await.map_err(|e| e.to_string())?;
            match restore.status.as_ref().and_then(|s| s.finish_time.as_ref()) {
                Some(_) => Ok(restore),
                None => Err(format!("{:?}", restore.status)),
            }
        },
    )
    .await;
    let status = restore.status.clone().unwrap_or_default();
    let complete = find(status.conditions.as_ref(), "Complete").expect("Complete");
    assert_eq!(
        (complete.status.as_str(), complete.reason.as_str()),
        ("True", "Restored")
    );
    assert!(
        find(status.conditions.as_ref(), "Failed").is_none(),
        "{status:?}"
    );
    assert!(
        find(status.conditions.as_ref(), "FieldsNotActedOn").is_none(),
        "{status:?}"
    );
    assert_eq!(status.restore_key.len(), 36, "{status:?}");
    assert!(
        status.start_time.is_some() && status.datacenter_stopped.is_some(),
        "{status:?}"
    );

    let restore_jobs = Api::<MedusaRestoreJob>::namespaced(hub.clone(), NS);
    let job = restore_jobs.get("restore-backup1").await.expect("MedusaRestoreJob");
    assert_eq!(job.spec.backup, "medusa-backup1");
    assert_eq!(job.spec.cassandra_datacenter, "dc1");
    let owners = job.metadata.owner_references.as_ref();
    let by_restore = owner(owners, "CassandraRestore").expect("owned by the CassandraRestore");
    assert_eq!(
        by_restore.uid,
        restore.metadata.uid.clone().unwrap_or_default()
    );
    assert!(
        owner(owners, "CassandraDatacenter").is_some(),
        "owned by its datacenter"
    );

    // Exactly the backed-up rows remain on every node.
    {
        let model = sim.cassandra();
        let model = model.lock();
        for pod in PODS {
            let node = PodRef::new(CONTEXT, NS, pod);
            let live = model.node_rows(&node, "app", "kv").expect("node rows");
            let saved =
                model.backup_rows(&storage, "medusa-backup1", pod, "app", "kv").expect("backup");
            assert_eq!(live, saved, "{pod}: restored to its backup");
            assert!(!live.keys().any(|k| k.starts_with("after-")), "{pod}");
            assert_ne!(
                live.get("key-0").map(String::as_str),
                Some("changed"),
                "{pod}"
            );
        }
    }
    let datacenters = Api::<CassandraDatacenter>::namespaced(hub.clone(), NS);
    assert!(datacenters.get("dc1").await.expect("dc1").is_ready());

    // The story as Events on the book's objects.
    for (name, expected) in [
        ("medusa-backup1", ["BackupJobCreated", "BackupFinished"]),
        ("restore-backup1", ["RestoreJobCreated", "RestoreFinished"]),
    ] {
        let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(hub.clone(), NS);
        wait_for(&format!("{name}'s Events"), WAIT, || async {
            let listed = events.list(&Default::default()).await.map_err(|e| e.to_string())?;
            let reasons: Vec<String> = (listed.items.iter())
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
                .filter(|e| {
                    let kind = e.regarding.as_ref().and_then(|r| r.kind.as_deref());
                    matches!(kind, Some("CassandraBackup" | "CassandraRestore"))
                })
                .filter_map(|e| e.reason.clone())
                .collect();
            match expected.iter().all(|r| reasons.iter().any(|seen| seen == r)) {
                true => Ok(()),
                false => Err(format!("{reasons:?}")),
            }
        })
        .await;
    }

    stop_all(vec![operator]).await;
}

#[test]
fn what_the_jobs_cannot_do_is_said_and_jobs_go_with_their_datacenter() {
    let _one = one_at_a_time();
    run(refusals_secret_check_and_cleanup());
}

fn book_restore(
    name: &str,
    cluster_name: &str,
    in_place: bool,
    shutdown: bool,
) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1",
        "kind": "CassandraRestore",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "cassandraDatacenter": {"name": "dc1", "clusterName": cluster_name},
            "backup": "no-such-backup",
            "inPlace": in_place,
            "shutdown": shutdown,
        },
    })
}

/// The condition `kind` of CassandraRestore `name` once it is True.
async fn restore_condition(restores: &Api<CassandraRestore>, name: &str, kind: &str) -> Condition {
    wait_for(&format!("CassandraRestore {name} {kind}"), WAIT, || async {
        let restore = restores.get(name).await.map_err(|e| e.to_string())?;
        let status = restore.status.unwrap_or_default();
        find(status.conditions.as_ref(), kind)
            .filter(|c| c.status == "True")
            .cloned()
            .ok_or_else(|| format!("{status:?}"))
    })
    .await
}

async fn configuration_ready(configurations: &Api<MedusaConfiguration>, status: &str) -> Condition {
    wait_for(
        &format!("MedusaConfiguration Ready {status}"),
        WAIT,
        || async {
            let configuration =
                configurations.get("book-storage").await.map_err(|e| e.to_string())?;
            let conditions = configuration.status.unwrap_or_default().conditions;
            find(conditions.as_ref(), "Ready")
                .filter(|c| c.status == status)
                .cloned()
                .ok_or_else(|| format!("{conditions:?}"))
        },
    )
    .await
}

async fn refusals_secret_check_and_cleanup() {
    let layout = upstream_layout(1, |setup| setup.pod_listeners()).await;
    let sim = &layout.sim;
    let hub = sim.client(0).await.expect("hub client");
    let operator = book_world(sim, &hub).await;
    let restores = Api::<CassandraRestore>::namespaced(hub.clone(), NS);
    let restore_jobs = Api::<MedusaRestoreJob>::namespaced(hub.clone(), NS);

    // A clusterName that is not the datacenter's: refused naming both, no job.
    apply(
        &restores,
        "wrong-cluster",
        book_restore("wrong-cluster", "other", true, true),
    )
    .await;
    let refused = restore_condition(&restores, "wrong-cluster", "Failed").await;
    assert_eq!(refused.reason, "ClusterNameMismatch");
    assert!(
        refused.message.contains("\"other\"") && refused.message.contains("\"demo\""),
        "{}",
        refused.message
    );
    // A restore into a new datacenter: refused, no job.
    apply(
        &restores,
        "not-in-place",
        book_restore("not-in-place", CLUSTER, false, true),
    )
    .await;
    let refused = restore_condition(&restores, "not-in-place", "Failed").await;
    assert_eq!(refused.reason, "NotInPlace");
    assert!(
        refused.message.contains("inPlace: false"),
        "{}",
        refused.message
    );
    for name in ["wrong-cluster", "not-in-place"] {
        assert!(
            restore_jobs.get_opt(name).await.expect("get").is_none(),
            "{name} ran a job"
        );
    }

    // shutdown: false is reported; the restore runs (and waits for its missing backup, as its
    // job says).
    apply(
        &restores,
        "no-shutdown",
        book_restore("no-shutdown", CLUSTER, true, false),
    )
    .await;
    let reported = restore_condition(&restores, "no-shutdown", "FieldsNotActedOn").await;
    assert!(
        reported.message.contains("spec.shutdown: false"),
        "{}",
        reported.message
    );
    let blocked = restore_condition(&restores, "no-shutdown", "Blocked").await;
    assert_eq!(blocked.reason, "BackupNotFound", "{}", blocked.message);

    // A backup whose name a MedusaBackupJob of someone else's has: not taken over.
    let jobs = Api::<MedusaBackupJob>::namespaced(hub.clone(), NS);
    apply(
        &jobs,
        "taken",
        serde_json::json!({
            "apiVersion": "medusa.k8ssandra.io/v1alpha1",
            "kind": "MedusaBackupJob",
            "metadata": {"name": "taken", "namespace": NS},
            "spec": {"cassandraDatacenter": "dc1"},
        }),
    )
    .await;
    let backups = Api::<CassandraBackup>::namespaced(hub.clone(), NS);
    apply(
        &backups,
        "book-taken",
        serde_json::json!({
            "apiVersion": "medusa.k8ssandra.io/v1alpha1",
            "kind": "CassandraBackup",
            "metadata": {"name": "book-taken", "namespace": NS},
            "spec": {"cassandraDatacenter": "dc1", "name": "taken"},
        }),
    )
    .await;
    let blocked = wait_for("CassandraBackup book-taken Blocked", WAIT, || async {
        let backup = backups.get("book-taken").await.ok()?;
        let status = backup.status.unwrap_or_default();
        find(status.conditions.as_ref(), "Blocked").filter(|c| c.status == "True").cloned()
    })
    .await;
    assert_eq!(blocked.reason, "JobNotOwned");
    let job = jobs.get("taken").await.expect("taken");
    assert!(owner(job.metadata.owner_references.as_ref(), "CassandraBackup").is_none());

    // A MedusaConfiguration whose Secret is missing, then created.
    let configurations = Api::<MedusaConfiguration>::namespaced(hub.clone(), NS);
    apply(
        &configurations,
        "book-storage",
        serde_json::json!({
            "apiVersion": "medusa.k8ssandra.io/v1alpha1",
            "kind": "MedusaConfiguration",
            "metadata": {"name": "book-storage", "namespace": NS},
            "spec": {"storageProperties": {
                "storageProvider": "s3_compatible",
                "bucketName": BUCKET,
                "storageSecretRef": {"name": "book-bucket-key"},
            }},
        }),
    )
    .await;
    let missing = configuration_ready(&configurations, "False").await;
    assert_eq!(missing.reason, "SecretNotFound");
    assert!(
        missing.message.contains("book-bucket-key"),
        "{}",
        missing.message
    );
    let secrets = Api::<Secret>::namespaced(hub.clone(), NS);
    apply(
        &secrets,
        "book-bucket-key",
        bucket_secret("book-bucket-key"),
    )
    .await;
    let ready = configuration_ready(&configurations, "True").await;
    assert!(
        !ready.message.contains("aws_secret_access_key"),
        "{}",
        ready.message
    );
    let configuration = configurations.get("book-storage").await.expect("configuration");
    let available = configuration.status.unwrap_or_default().conditions;
    let available = find(available.as_ref(), "SecretAvailable").expect("SecretAvailable");
    assert_eq!(available.status, "True");

    // Deleting the datacenter deletes the jobs it alone owns (the garbage collector, through
    // their owner reference to it); a job a CassandraRestore also owns stays with it, as the
    // garbage collector keeps a dependent with a live owner.
    apply(
        &restore_jobs,
        "orphan-restore",
        serde_json::json!({
            "apiVersion": "medusa.k8ssandra.io/v1alpha1",
            "kind": "MedusaRestoreJob",
            "metadata": {"name": "orphan-restore", "namespace": NS},
            "spec": {"backup": "no-such-backup", "cassandraDatacenter": "dc1"},
        }),
    )
    .await;
    let datacenters = Api::<CassandraDatacenter>::namespaced(hub.clone(), NS);
    let dc = datacenters.get("dc1").await.expect("dc1");
    let dc_uid = dc.metadata.uid.clone().unwrap_or_default();
    let owned = |owners: Option<&Vec<OwnerReference>>| {
        owner(owners, "CassandraDatacenter").is_some_and(|o| o.uid == dc_uid)
    };
    let mut uids = BTreeMap::new();
    for name in ["taken", "orphan-restore", "no-shutdown"] {
        let job = wait_for(&format!("{name} owned by dc1"), WAIT, || async {
            let (uid, owners) = match name {
                "taken" => {
                    jobs.get(name).await.map(|j| (j.metadata.uid, j.metadata.owner_references))
                }
                _ => restore_jobs
                    .get(name)
                    .await
                    .map(|j| (j.metadata.uid, j.metadata.owner_references)),
            }
            .map_err(|e| e.to_string())?;
            match owned(owners.as_ref()) {
                true => Ok(uid),
                false => Err(format!("{owners:?}")),
            }
        })
        .await;
        uids.insert(name, job);
    }
    // The datacenter goes as a user removes it: with its K8ssandraCluster (deleted by itself,
    // the hub would make it again, and the jobs would get the new one as owner).
    let clusters =
        Api::<federator::api::k8ssandra_cluster::K8ssandraCluster>::namespaced(hub.clone(), NS);
    delete(&clusters, CLUSTER).await;
    wait_deleted(&datacenters, "dc1", Duration::from_secs(120)).await;
    wait_for("the jobs only dc1 owned deleted", WAIT, || async {
        let backup = jobs.get_opt("taken").await.map_err(|e| e.to_string())?;
        let restore = restore_jobs.get_opt("orphan-restore").await.map_err(|e| e.to_string())?;
        let dc = datacenters.get_opt("dc1").await.map_err(|e| e.to_string())?;
        let backup = backup.and_then(|j| j.metadata.uid);
        let restore = restore.and_then(|j| j.metadata.uid);
        match backup.is_none() && restore.is_none() {
            true => Ok(()),
            false => Err(format!(
                "taken {backup:?}, orphan-restore {restore:?}; dc1 {:?}",
                dc.map(|d| (
                    d.metadata.uid,
                    d.metadata.deletion_timestamp,
                    d.metadata.finalizers
                ))
            )),
        }
    })
    .await;
    let kept = restore_jobs.get("no-shutdown").await.expect("no-shutdown's job stays");
    assert_eq!(kept.metadata.uid, uids["no-shutdown"]);
    assert!(owner(kept.metadata.owner_references.as_ref(), "CassandraRestore").is_some());

    stop_all(vec![operator]).await;
}
