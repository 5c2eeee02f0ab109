//! A Medusa backup taken in one region (simulated Kubernetes cluster 0) restored into a
//! datacenter of another Cassandra cluster in another region (cluster 1), the disaster-recovery
//! copy, through the interfaces k8ssandra-operator uses: Medusa's gRPC port on the pods' IPs and
//! the `medusa-restore` init container's environment on the CassandraDatacenter.
//!
//! The restore follows k8ssandra-operator's MedusaRestoreJob for a remote restore with the
//! Medusa image the pods run (0.22): the host map is computed from the backup's topology as
//! `GetBackups` reports it (`pkg/medusa/hostmap.go`'s `GetHostMap`: the backup's nodes and the
//! target datacenter's pods paired rack by rack, in name order) and handed to the init container
//! as `RESTORE_MAPPING` next to `BACKUP_NAME` and `RESTORE_KEY`. `PrepareRestore` is called on
//! every target pod as well, as the `prepare_restore` MedusaTask does: since Medusa 0.15 the init
//! container no longer reads the mapping file it writes, so without `RESTORE_MAPPING` a pod of
//! another cluster would find no backup of its own and skip the restore.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube_sim::cassandra::{
    BackupMode, CassandraModel, Column, ConsistencyLevel, NodeSpec, PodRef, Replication,
    SharedModel, StorageLocation,
};
use kube_sim::medusa::{
    BACKUP_NAME_ENV, LAST_RESTORE_FILE, MedusaService, POD_NAME_ENV, RESTORE_KEY_ENV,
    RESTORE_MAPPING_ENV, RestoreMapping, RestoreOutcome, prepared_restore_mapping,
    restore_on_start,
};
use kube_sim::sim::generated_key;
use kube_sim::{Sim, SimBuilder};
use medusa_grpc::backup_request::Mode;
use medusa_grpc::medusa_client::MedusaClient;
use medusa_grpc::medusa_server::Medusa;
use medusa_grpc::{
    BackupNode, BackupRequest, GetBackupsRequest, PrepareRestoreRequest, StatusType,
};
use serde_json::{Value, json};
use tonic::transport::Channel;

mod support;
use support::{dc_resource, medusa_restore_container, wait_for};

const NS: &str = "default";
/// The source cluster, in region 0.
const SOURCE: &str = "demo";
/// The disaster-recovery copy, in region 1, with its own cluster name.
const DR: &str = "demo-dr";
/// Medusa restores remotely only into a datacenter of the backed-up one's name.
const DC: &str = "dc1";
const KEYSPACE: &str = "app";
const TABLE: &str = "kv";
const BACKUP: &str = "nightly";
const RESTORE_KEY: &str = "dr-restore-1";
const BACKED_UP_ROWS: usize = 40;
const RACK_LABEL: &str = "cassandra.datastax.com/rack";

/// Both regions' Medusa store in the same bucket under the same prefix (an S3 bucket every
/// region reaches), so the DR region sees the source's backups.
const MEDUSA_INI: &str = "
[storage]
storage_provider = s3
bucket_name = medusa-bucket
prefix = demo
";

/// `POD_NAME` from the downward API, which k8ssandra-operator gives Medusa's containers
/// (`medusaEnvVars`); restore.py looks the pod up in a remote mapping by it.
fn pod_name_env() -> Value {
    json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
}

async fn create_medusa_config(sim: &Sim, region: usize) {
    let client = sim.client(region).await.expect("client");
    let config_maps: Api<ConfigMap> = Api::namespaced(client, NS);
    let config_map: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "demo-medusa", "namespace": NS},
        "data": {"medusa.ini": MEDUSA_INI},
    }))
    .expect("config map");
    config_maps.create(&PostParams::default(), &config_map).await.expect("medusa.ini");
}

/// Datacenter `DC` of Cassandra cluster `cluster_name` in `region`: 3 nodes in one rack, Medusa's
/// container and its restore init container (no restore asked yet).
async fn create_datacenter(sim: &Sim, region: usize, cluster_name: &str) {
    let client = sim.client(region).await.expect("client");
    let dcs: Api<DynamicObject> = Api::namespaced_with(client, NS, &dc_resource());
    let dc: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cassandra.datastax.com/v1beta1", "kind": "CassandraDatacenter",
        "metadata": {"name": DC, "namespace": NS},
        "spec": {"clusterName": cluster_name, "serverType": "cassandra", "serverVersion": "4.1.5",
                 "size": 3, "racks": [{"name": "r1"}],
                 "storageConfig": {"cassandraDataVolumeClaimSpec": {"accessModes": ["ReadWriteOnce"],
                                   "resources": {"requests": {"storage": "1Gi"}}}},
                 "podTemplateSpec": {"spec": {
                     "containers": [{"name": "medusa", "image": "docker.io/k8ssandra/medusa:0.22.0",
                                     "env": [pod_name_env()],
                                     "ports": [{"name": "grpc", "containerPort": 50051, "protocol": "TCP"}],
                                     "volumeMounts": [{"name": "demo-medusa", "mountPath": "/etc/medusa"}]}],
                     "initContainers": [medusa_restore_container(json!([pod_name_env()]))],
                     "volumes": [{"name": "demo-medusa", "configMap": {"name": "demo-medusa"}}]}}},
    }))
    .expect("dc");
    dcs.create(&PostParams::default(), &dc).await.expect("creating the datacenter");
}

/// Waits until `region`'s datacenter is Ready at its current generation; its pods by name.
async fn ready_pods(sim: &Sim, region: usize) -> BTreeMap<String, Pod> {
    let client = sim.client(region).await.expect("client");
    let dcs: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &dc_resource());
    let pods: Api<Pod> = Api::namespaced(client, NS);
    let what = format!("{DC} of region {region} Ready");
    wait_for(&what, || async {
        let dc = serde_json::to_value(dcs.get(DC).await.ok()?).ok()?;
        let ready = dc.pointer("/status/cassandraOperatorProgress")? == "Ready"
            && dc.pointer("/status/observedGeneration") == dc.pointer("/metadata/generation");
        if !ready {
            return None;
        }
        let selector = format!("cassandra.datastax.com/datacenter={DC}");
        let listed = pods.list(&ListParams::default().labels(&selector)).await.ok()?;
        let by_name: BTreeMap<String, Pod> = listed
            .items
            .into_iter()
            .filter_map(|pod| Some((pod.metadata.name.clone()?, pod)))
            .collect();
        (by_name.len() == 3).then_some(by_name)
    })
    .await
}

/// The pod's Medusa at its IP, port 50051.
async fn medusa_of(pod: &Pod) -> MedusaClient<Channel> {
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).expect("a pod IP");
    let address = format!("http://{ip}:50051");
    wait_for("Medusa listening at the pod's IP", || async {
        MedusaClient::connect(address.clone()).await.ok()
    })
    .await
}

fn rack_of(pod: &Pod) -> String {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(RACK_LABEL).cloned())
        .expect("a rack label")
}

/// k8ssandra-operator's `GetHostMap`: the backup's nodes of the target datacenter's name and the
/// target's pods, each grouped by rack and sorted by name, paired rack by rack in rack name
/// order. Target pod name → the backed-up node it restores from.
fn host_map(
    backup_nodes: &[BackupNode],
    targets: &BTreeMap<String, Pod>,
) -> BTreeMap<String, BackupNode> {
    let mut sources: BTreeMap<String, Vec<&BackupNode>> = BTreeMap::new();
    for node in backup_nodes.iter().filter(|n| n.datacenter == DC) {
        sources.entry(node.rack.clone()).or_default().push(node);
    }
    let mut destinations: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for (name, pod) in targets {
        destinations.entry(rack_of(pod)).or_default().push(name);
    }
    // validateBackupForRestore: same racks, as many nodes.
    let source_racks: Vec<(&String, usize)> = sources.iter().map(|(r, n)| (r, n.len())).collect();
    let target_racks: Vec<(&String, usize)> =
        destinations.iter().map(|(r, n)| (r, n.len())).collect();
    assert_eq!(
        source_racks, target_racks,
        "racks and sizes match the backup's"
    );
    let mut map = BTreeMap::new();
    for (rack, mut nodes) in sources {
        nodes.sort_by(|a, b| a.host.cmp(&b.host));
        let mut names = destinations.remove(&rack).unwrap_or_default();
        names.sort();
        for (name, node) in names.into_iter().zip(nodes) {
            map.insert(name.clone(), node.clone());
        }
    }
    map
}

/// `MedusaRestoreMapping` as the operator marshals it into `RESTORE_MAPPING`.
fn restore_mapping_json(map: &BTreeMap<String, BackupNode>) -> String {
    let in_place = map.iter().all(|(target, source)| *target == source.host);
    let host_map: serde_json::Map<String, Value> = map
        .iter()
        .map(|(target, source)| {
            (
                target.clone(),
                json!({"source": [source.host], "seed": false}),
            )
        })
        .collect();
    json!({"in_place": in_place, "host_map": host_map}).to_string()
}

fn sorted(tokens: &[i64]) -> Vec<i64> {
    let mut tokens = tokens.to_vec();
    tokens.sort_unstable();
    tokens
}

/// Each pod's tokens, as `nodetool status` of its cluster shows them.
fn ring_tokens(sim: &Sim, cluster: &str) -> BTreeMap<String, Vec<i64>> {
    sim.cassandra_ring(cluster)
        .expect("ring")
        .into_iter()
        .map(|entry| (entry.pod.name, entry.tokens))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_in_one_region_is_restored_into_another_regions_datacenter() {
    let mut builder = SimBuilder::new()
        .clusters(2)
        .cass_operator(true)
        .pod_listeners(true)
        .dc_ready_after(Duration::from_millis(300));
    let workspace = kube_sim::prerequisites::workspace_root();
    if let Some(compat) = kube_sim::prerequisites::compat_dir(&workspace) {
        builder = builder.crd_dir(compat.join("crds/cass-operator"));
    }
    let sim = builder.start().await.expect("starting kube-sim");
    for region in 0..2 {
        create_medusa_config(&sim, region).await;
    }
    create_datacenter(&sim, 0, SOURCE).await;
    create_datacenter(&sim, 1, DR).await;
    let source_pods = ready_pods(&sim, 0).await;
    let dr_pods = ready_pods(&sim, 1).await;

    // Region 0: the application's rows, then Medusa's backup on every node of dc1.
    let replication = BTreeMap::from([
        ("class".to_string(), "NetworkTopologyStrategy".to_string()),
        (DC.to_string(), "3".to_string()),
    ]);
    sim.cassandra_create_keyspace(SOURCE, KEYSPACE, &replication).expect("keyspace");
    sim.cassandra_create_table(SOURCE, KEYSPACE, TABLE).expect("table");
    sim.cassandra_write_generated(
        SOURCE,
        DC,
        KEYSPACE,
        TABLE,
        BACKED_UP_ROWS,
        ConsistencyLevel::LocalQuorum,
    )
    .expect("rows");
    sim.cassandra().lock().set_backup_duration_millis(0);
    for pod in source_pods.values() {
        let request = BackupRequest {
            name: BACKUP.into(),
            mode: Mode::Full as i32,
        };
        let response = medusa_of(pod).await.backup(request).await.expect("Backup").into_inner();
        assert_eq!(
            StatusType::try_from(response.status).ok(),
            Some(StatusType::Success)
        );
    }
    let later: Vec<(String, String)> =
        (0..25).map(|n| (format!("later-{n}"), format!("v{n}"))).collect();
    sim.cassandra_write(
        SOURCE,
        DC,
        KEYSPACE,
        TABLE,
        later.clone(),
        ConsistencyLevel::LocalQuorum,
    )
    .expect("rows after the backup");
    let source_rows = BACKED_UP_ROWS + later.len();
    assert_eq!(
        sim.cassandra_count(SOURCE, DC, KEYSPACE, TABLE, ConsistencyLevel::All).ok(),
        Some(source_rows)
    );
    let source_tokens = ring_tokens(&sim, SOURCE);

    // Region 1 sees the backup in the shared bucket: the topology the host map comes from.
    let first_dr_pod = dr_pods.values().next().expect("a DR pod");
    let listing = medusa_of(first_dr_pod)
        .await
        .get_backups(GetBackupsRequest {})
        .await
        .expect("GetBackups")
        .into_inner();
    let backup = listing
        .backups
        .iter()
        .find(|b| b.backup_name == BACKUP)
        .expect("the source's backup listed in the DR region");
    assert_eq!(
        StatusType::try_from(backup.status).ok(),
        Some(StatusType::Success)
    );
    assert_eq!(
        (backup.total_nodes, backup.finished_nodes),
        (3, 3),
        "every node of the source's dc1 is in the backup"
    );
    let map = host_map(&backup.nodes, &dr_pods);
    assert_eq!(map.len(), dr_pods.len());
    assert!(
        map.iter().all(|(target, source)| source_pods.contains_key(&source.host)
            && !source_pods.contains_key(target)),
        "a remote restore: every DR pod restores from a source pod"
    );

    // MedusaRestoreJob: PrepareRestore on each DR pod, then the init container's environment.
    let context = sim.context_name(1);
    for (name, pod) in &dr_pods {
        let request = PrepareRestoreRequest {
            backup_name: BACKUP.into(),
            datacenter: DC.into(),
            restore_key: RESTORE_KEY.into(),
        };
        medusa_of(pod).await.prepare_restore(request).await.expect("PrepareRestore");
        let prepared = prepared_restore_mapping(
            &sim.cassandra().lock(),
            &PodRef::new(&context, NS, name),
            RESTORE_KEY,
        )
        .expect("the mapping file on the pod's volume");
        assert_eq!(
            prepared.in_place,
            Some(false),
            "Medusa sees a remote restore"
        );
    }
    let restore_env = vec![
        pod_name_env(),
        json!({"name": "BACKUP_NAME", "value": BACKUP}),
        json!({"name": "RESTORE_KEY", "value": RESTORE_KEY}),
        json!({"name": "RESTORE_MAPPING", "value": restore_mapping_json(&map)}),
    ];
    let patch = json!({"spec": {"podTemplateSpec": {"spec": {
        "initContainers": [medusa_restore_container(Value::Array(restore_env))]}}}});
    let dcs: Api<DynamicObject> =
        Api::namespaced_with(sim.client(1).await.expect("client"), NS, &dc_resource());
    dcs.patch(DC, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("restore env");
    let restored = wait_for("every DR pod rolled and restored", || async {
        let rolled = ready_pods(&sim, 1).await;
        let all_new =
            rolled.iter().all(|(name, pod)| pod.metadata.uid != dr_pods[name].metadata.uid);
        let model = sim.cassandra();
        let model = model.lock();
        let marker = format!("{RESTORE_KEY}\n");
        let marked = rolled.keys().all(|name| {
            let pod = PodRef::new(&context, NS, name);
            model.volume_file(&pod, LAST_RESTORE_FILE) == Some(marker.as_str())
        });
        (all_new && marked).then_some(rolled)
    })
    .await;
    assert_eq!(restored.len(), dr_pods.len());

    // Region 1 holds exactly the backed-up rows, on every node, with the source's values.
    assert_eq!(
        sim.cassandra_count(DR, DC, KEYSPACE, TABLE, ConsistencyLevel::All).ok(),
        Some(BACKED_UP_ROWS),
        "exactly the backed-up rows"
    );
    for n in 0..BACKED_UP_ROWS {
        let key = generated_key(n);
        let read = |cluster: &str| {
            sim.cassandra_read(cluster, DC, KEYSPACE, TABLE, &key, ConsistencyLevel::All)
                .expect("read")
        };
        let value = read(SOURCE);
        assert!(value.is_some(), "{key} in the source");
        assert_eq!(read(DR), value, "{key} restored as backed up");
    }
    for (key, _) in &later {
        assert_eq!(
            sim.cassandra_read(DR, DC, KEYSPACE, TABLE, key, ConsistencyLevel::All).ok(),
            Some(None),
            "{key} was written after the backup"
        );
    }
    let table = format!("{KEYSPACE}.{TABLE}");
    let per_node = sim.cassandra_row_counts(DR).expect("row counts").per_node;
    for name in restored.keys() {
        let pod = PodRef::new(&context, NS, name);
        let rows = per_node.get(&pod).and_then(|tables| tables.get(&table)).copied();
        assert_eq!(rows, Some(BACKED_UP_ROWS), "{name} restored its replica");
    }
    // Each DR node took the tokens of the node it was restored from.
    let dr_tokens = ring_tokens(&sim, DR);
    for (target, source) in &map {
        assert_eq!(
            dr_tokens.get(target).map(Vec::as_slice),
            Some(sorted(&source.tokens).as_slice()),
            "{target} owns {}'s ranges",
            source.host
        );
    }

    // Region 0 is untouched: its rows, tokens and pods.
    assert_eq!(
        sim.cassandra_count(SOURCE, DC, KEYSPACE, TABLE, ConsistencyLevel::All).ok(),
        Some(source_rows)
    );
    assert_eq!(ring_tokens(&sim, SOURCE), source_tokens);
    let source_now = ready_pods(&sim, 0).await;
    let source_context = sim.context_name(0);
    let model = sim.cassandra();
    let model = model.lock();
    for (name, pod) in &source_now {
        assert_eq!(
            pod.metadata.uid, source_pods[name].metadata.uid,
            "{name} did not roll"
        );
        let pod_ref = PodRef::new(&source_context, NS, name);
        assert_eq!(model.volume_file(&pod_ref, LAST_RESTORE_FILE), None);
    }
}

/// Medusa 0.15 and later (`medusa/service/grpc/restore.py`'s `apply_mapping_env`) take a remote
/// mapping from `RESTORE_MAPPING` only: the file `PrepareRestore` writes does not make the init
/// container restore from another cluster's node, which then finds no backup of its own, skips
/// the restore and still records the key (a retry with `RESTORE_MAPPING` needs a new key).
#[tokio::test]
async fn a_prepared_mapping_file_alone_does_not_restore_from_another_cluster() {
    let storage = StorageLocation::new("medusa-bucket", "demo");
    let mut model = CassandraModel::deterministic(7);
    let mut start_dc = |region: &str, cluster: &str, octet: u8| -> Vec<PodRef> {
        (0..3)
            .map(|i| {
                let pod = PodRef::new(region, NS, format!("{cluster}-{DC}-r1-sts-{i}"));
                let ip = format!("10.{octet}.0.{}", i + 1);
                model
                    .start_node(NodeSpec::new(cluster, pod.clone(), &ip, DC, "r1"))
                    .expect("node starts");
                pod
            })
            .collect()
    };
    let source = start_dc("west", SOURCE, 1);
    let dr = start_dc("east", DR, 2);
    model
        .create_keyspace(SOURCE, KEYSPACE, &Replication::network_topology([(DC, 3)]))
        .expect("keyspace");
    model
        .create_table(
            SOURCE,
            KEYSPACE,
            TABLE,
            vec![
                Column::partition_key("id", "text"),
                Column::regular("v", "text"),
            ],
        )
        .expect("table");
    let rows = (0..BACKED_UP_ROWS).map(|n| (generated_key(n), format!("value-{n}")));
    model.write(SOURCE, DC, KEYSPACE, TABLE, rows, ConsistencyLevel::All).expect("rows");
    model.set_backup_duration_millis(0);
    model.backup(&storage, SOURCE, BACKUP, &[], BackupMode::Full).expect("backup");
    let model: SharedModel = Arc::new(parking_lot::Mutex::new(model));
    let target = &dr[0];
    let medusa = MedusaService::new(model.clone(), target.clone(), storage.clone());
    let request = PrepareRestoreRequest {
        backup_name: BACKUP.into(),
        datacenter: DC.into(),
        restore_key: "key-1".into(),
    };
    medusa.prepare_restore(tonic::Request::new(request)).await.expect("PrepareRestore");
    let prepared = prepared_restore_mapping(&model.lock(), target, "key-1").expect("mapping file");
    assert_eq!(prepared.in_place, Some(false));

    let env = |key: &str, mapping: Option<String>| {
        let mut env = BTreeMap::from([
            (BACKUP_NAME_ENV.to_string(), BACKUP.to_string()),
            (RESTORE_KEY_ENV.to_string(), key.to_string()),
            (POD_NAME_ENV.to_string(), target.name.clone()),
        ]);
        if let Some(mapping) = mapping {
            env.insert(RESTORE_MAPPING_ENV.to_string(), mapping);
        }
        env
    };
    let skipped = restore_on_start(&model, target, &storage, &env("key-1", None)).expect("start");
    assert_eq!(
        skipped,
        RestoreOutcome::BackupMissing {
            backup_name: BACKUP.into(),
            source_host: target.name.clone(),
        }
    );
    assert_eq!(
        model.lock().volume_file(target, LAST_RESTORE_FILE),
        Some("key-1\n")
    );
    assert!(
        !model.lock().keyspaces(DR).expect("keyspaces").iter().any(|k| k.name == KEYSPACE),
        "nothing restored"
    );

    let mapping = RestoreMapping::from_pairs(
        dr.iter().zip(&source).map(|(target, source)| (target.name.as_str(), source.name.as_str())),
    );
    let json = serde_json::to_string(&mapping).expect("json");
    let restored =
        restore_on_start(&model, target, &storage, &env("key-2", Some(json))).expect("start");
    assert_eq!(
        restored,
        RestoreOutcome::Restored {
            backup_name: BACKUP.into(),
            source_host: source[0].name.clone(),
            in_place: false,
            rows: BACKED_UP_ROWS,
        }
    );
}
