//! Every K8ssandraCluster among k8ssandra-operator's real manifests (../shared/compat/fixtures)
//! is planned; each datacenter lands in the region and namespace its manifest asks for, and
//! each generated CassandraDatacenter passes cass-operator's real CRD schema as the API server
//! admits it (kube-sim's CrAdmission: defaults, pruning, OpenAPI validation) with strict field
//! validation, so that a field cass-operator does not know is an error, not silently dropped.
//!
//! The CRD is taken as cass-operator installs it (kube-sim's loader applies cass-operator's
//! install-time removal of `spec.config`, whose free-form JSON `spec` then keeps).

mod support;

use federator::api::k8ssandra_cluster::K8ssandraCluster;
use federator::federation::plan::{PlanInputs, plan, plan_with};
use kube_sim::schema::CrAdmission;
use kube_sim::store::Admission;
use serde_json::Value;
use support::{compat_path, file_name, fixture_files, yaml_documents};

const CASSDC_CRD: &str = "crds/cass-operator/cassandra.datastax.com_cassandradatacenters.yaml";
/// Namespace the fixtures are applied in (they name none).
const NAMESPACE: &str = "k8ssandra-operator";

/// cass-operator's CassandraDatacenter admission, from its real CRD.
fn cassandra_datacenter_admission() -> Option<CrAdmission> {
    let path = compat_path(CASSDC_CRD)?;
    let dir = path.parent().expect("the CRD file is in a directory");
    let crd = kube_sim::crd::load_crd_dir(dir)
        .expect("cass-operator's CRDs load")
        .into_iter()
        .find(|d| d["metadata"]["name"] == "cassandradatacenters.cassandra.datastax.com")
        .expect("the directory holds the CassandraDatacenter CRD");
    let version = crd["spec"]["versions"]
        .as_array()
        .and_then(|versions| versions.iter().find(|v| v["name"] == "v1beta1"))
        .expect("v1beta1 is served");
    let admission = CrAdmission::new(
        "cassandra.datastax.com",
        "CassandraDatacenter",
        &version["schema"]["openAPIV3Schema"],
    )
    .unwrap_or_else(|problems| panic!("cass-operator's schema is refused: {problems:?}"));
    Some(admission)
}

/// Every K8ssandraCluster of every fixture, with its file name.
fn fixture_clusters() -> Option<Vec<(String, K8ssandraCluster)>> {
    let files = fixture_files()?;
    let mut clusters = Vec::new();
    for path in files {
        let file = file_name(&path);
        for document in yaml_documents(&path) {
            if document["kind"] != "K8ssandraCluster" {
                continue;
            }
            let mut k8c: K8ssandraCluster = serde_json::from_value(document)
                .unwrap_or_else(|e| panic!("{file}: not a K8ssandraCluster: {e}"));
            k8c.metadata.namespace.get_or_insert_with(|| NAMESPACE.to_string());
            clusters.push((file.clone(), k8c));
        }
    }
    Some(clusters)
}

/// What cass-operator's schema says about one generated CassandraDatacenter: the admitted
/// object, or the error's causes (`field: message`; the error itself when it has none).
fn admit(admission: &CrAdmission, object: &Value) -> Result<Value, Vec<String>> {
    let mut admitted = object.clone();
    admission.admit(&mut admitted, None, true).map(|_warnings| admitted).map_err(|error| {
        if error.causes.is_empty() {
            vec![error.to_string()]
        } else {
            error.causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
        }
    })
}

#[test]
fn every_fixture_fans_out_to_valid_cassandra_datacenters() {
    let (Some(admission), Some(clusters)) = (cassandra_datacenter_admission(), fixture_clusters())
    else {
        return;
    };
    assert!(
        !clusters.is_empty(),
        "no K8ssandraCluster among the fixtures"
    );

    let mut problems = Vec::new();
    let mut summary = Vec::new();
    let mut datacenters = 0;
    for (file, k8c) in &clusters {
        let planned = match plan(k8c) {
            Ok(planned) => planned,
            Err(error) => {
                problems.push(format!("{file}: not planned: {error}"));
                continue;
            }
        };
        let templates = k8c.spec.datacenters();
        assert_eq!(
            planned.datacenters.len(),
            templates.len(),
            "{file}: one CassandraDatacenter per datacenter"
        );
        if templates.is_empty() {
            summary.push(format!("{file}: no datacenters (placeholder manifest)"));
        }
        for (dc, template) in planned.datacenters.iter().zip(templates) {
            datacenters += 1;
            let expected_namespace =
                template.metadata.namespace.clone().unwrap_or_else(|| NAMESPACE.to_string());
            assert_eq!(dc.name, template.name(), "{file}: spec order kept");
            assert_eq!(dc.context, template.context(), "{file} {}: region", dc.name);
            assert_eq!(
                dc.namespace, expected_namespace,
                "{file} {}: namespace",
                dc.name
            );
            assert_eq!(
                dc.datacenter.metadata.namespace.as_deref(),
                Some(expected_namespace.as_str())
            );
            assert_eq!(
                dc.datacenter.metadata.name.as_deref(),
                Some(template.name())
            );

            let object = serde_json::to_value(&dc.datacenter).expect("serializes");
            assert!(
                object["spec"]["config"].is_object(),
                "{file} {}: config",
                dc.name
            );
            match admit(&admission, &object) {
                Ok(admitted) => {
                    // Defaults may be added; nothing Federator wrote may be lost or changed.
                    let lost = lost_leaves(&object["spec"], &admitted["spec"], "spec");
                    if !lost.is_empty() {
                        problems.push(format!(
                            "{file} {}: changed by admission: {lost:?}",
                            dc.name
                        ));
                    }
                    summary.push(format!(
                        "{file}: {} -> context {:?}, namespace {}, cassandra {} {}, size {}: admitted",
                        dc.name,
                        dc.context,
                        dc.namespace,
                        dc.datacenter.spec.server_version,
                        dc.cassandra_datacenter_name,
                        dc.datacenter.spec.size
                    ));
                }
                Err(causes) => problems.push(format!("{file} {}: rejected: {causes:?}", dc.name)),
            }
        }
    }
    println!("{}", summary.join("\n"));
    println!(
        "{} K8ssandraClusters, {datacenters} CassandraDatacenters, every one admitted",
        clusters.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Paths of `original` whose value is not found unchanged in `admitted`.
fn lost_leaves(original: &Value, admitted: &Value, path: &str) -> Vec<String> {
    match (original, admitted) {
        (Value::Object(own), Value::Object(other)) => own
            .iter()
            .flat_map(|(key, value)| match other.get(key) {
                Some(kept) => lost_leaves(value, kept, &format!("{path}.{key}")),
                None => vec![format!("{path}.{key}")],
            })
            .collect(),
        (Value::Array(own), Value::Array(other)) if own.len() == other.len() => own
            .iter()
            .zip(other)
            .enumerate()
            .flat_map(|(i, (a, b))| lost_leaves(a, b, &format!("{path}[{i}]")))
            .collect(),
        (a, b) if a == b => Vec::new(),
        _ => vec![path.to_string()],
    }
}

#[test]
fn strict_admission_has_teeth() {
    let (Some(admission), Some(clusters)) = (cassandra_datacenter_admission(), fixture_clusters())
    else {
        return;
    };
    let (_, k8c) = clusters
        .iter()
        .find(|(file, _)| file == "multi-dc.yaml")
        .expect("multi-dc.yaml is among the fixtures");
    let planned = plan(k8c).expect("plans");
    let mut object = serde_json::to_value(&planned.datacenters[0].datacenter).expect("serializes");
    if let Some(spec) = object["spec"].as_object_mut() {
        spec.remove("config");
        // k8ssandra-operator's spelling; cass-operator's is `allpodsService`.
        spec.insert(
            "additionalServiceConfig".into(),
            serde_json::json!({"allPodsService": {"additionalLabels": {"a": "b"}}}),
        );
    }
    let causes = admit(&admission, &object).expect_err("an unknown field is an error");
    assert!(
        causes
            .iter()
            .any(|c| c.contains("unknown field \"spec.additionalServiceConfig.allPodsService\"")),
        "{causes:?}"
    );
}

/// k8ssandra-operator's mapping: `kind-k8ssandra-0` is the control plane's own cluster, which it
/// registers with a ClientConfig too. Once that context is known to reach the hub, every
/// fixture plans exactly as if its datacenters there named no `k8sContext`.
#[test]
fn with_upstreams_mapping_the_hubs_own_context_plans_as_no_context() {
    const HUB_CONTEXT: &str = "kind-k8ssandra-0";
    let Some(clusters) = fixture_clusters() else {
        return;
    };
    let mut placed_by_hub_context = 0;
    for (file, k8c) in &clusters {
        let inputs = PlanInputs {
            hub_contexts: [HUB_CONTEXT.to_string()].into(),
            ..PlanInputs::default()
        };
        let Ok(resolved) = plan_with(k8c, &inputs) else {
            continue;
        };
        let mut without = k8c.clone();
        for dc in without
            .spec
            .cassandra
            .iter_mut()
            .flat_map(|c| c.datacenters.iter_mut().flatten())
            .filter(|dc| dc.k8s_context.as_deref() == Some(HUB_CONTEXT))
        {
            placed_by_hub_context += 1;
            dc.k8s_context = None;
        }
        assert_eq!(
            resolved,
            plan(&without).expect("plans"),
            "{file}: the hub's own context plans as no context"
        );
    }
    assert!(
        placed_by_hub_context > 0,
        "no fixture places a datacenter by {HUB_CONTEXT}"
    );
}

/// upstream's Medusa sample (`samples/medusa/k8ssandra-single-kind-medusa.yaml`, its
/// `storageSecretRef` written as the object the CRD takes) with every part Federator acts on:
/// the datacenters it plans carry the medusa container and init container, and pass
/// cass-operator's schema unchanged.
#[test]
fn a_cluster_with_medusa_fans_out_to_valid_cassandra_datacenters() {
    let Some(admission) = cassandra_datacenter_admission() else {
        return;
    };
    let k8c: K8ssandraCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "k8ssandra.io/v1alpha1",
        "kind": "K8ssandraCluster",
        "metadata": {"name": "demo", "namespace": NAMESPACE},
        "spec": {
            "cassandra": {
                "serverVersion": "4.0.17",
                "storageConfig": {"cassandraDataVolumeClaimSpec": {
                    "storageClassName": "standard", "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "5Gi"}}}},
                "datacenters": [
                    {"metadata": {"name": "dc1"}, "size": 3},
                    {"metadata": {"name": "dc2"}, "size": 3, "k8sContext": "east",
                     "managementApiAuth": {"manual": {
                         "clientSecretName": "mgmt-client", "serverSecretName": "mgmt-server"}},
                     "initContainers": [{"name": "medusa-restore", "image": "old"}]}
                ]
            },
            "medusa": {
                "containerImage": {"registry": "docker.io", "repository": "k8ssandra", "pullPolicy": "IfNotPresent",
                                   "pullSecretRef": {"name": "registry-login"}},
                "securityContext": {"runAsNonRoot": true},
                "containerResources": {"requests": {"cpu": "200m"}},
                "serviceProperties": {"grpcPort": 50055},
                "readinessProbe": {"periodSeconds": 20},
                "storageProperties": {
                    "storageProvider": "s3_compatible",
                    "storageSecretRef": {"name": "medusa-bucket-key"},
                    "bucketName": "k8ssandra-medusa", "prefix": "test",
                    "host": "minio.minio.svc.cluster.local", "port": 9000, "secure": false
                }
            }
        }
    }))
    .expect("a K8ssandraCluster");
    let planned = plan(&k8c).expect("planned");
    assert_eq!(planned.datacenters.len(), 2);
    for dc in &planned.datacenters {
        let object = serde_json::to_value(&dc.datacenter).expect("serializes");
        let template = &object["spec"]["podTemplateSpec"]["spec"];
        let names = |list: &str| -> Vec<String> {
            (template[list].as_array().into_iter().flatten())
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        };
        assert!(
            names("containers").contains(&"medusa".to_string()),
            "{}",
            dc.name
        );
        let init = names("initContainers");
        assert_eq!(
            init.iter().filter(|n| *n == "medusa-restore").count(),
            1,
            "{init:?}"
        );
        // A new medusa-restore goes after server-config-init; dc2's own is replaced in place.
        let expected: &[&str] = match dc.name.as_str() {
            "dc1" => &["server-config-init", "medusa-restore"],
            _ => &["medusa-restore"],
        };
        assert_eq!(init, expected, "{}", dc.name);
        let restore = (template["initContainers"].as_array().into_iter().flatten())
            .find(|c| c["name"] == "medusa-restore")
            .expect("medusa-restore");
        assert_ne!(restore["image"], "old", "{}", dc.name);
        // Medusa's pull secret reaches the pod (upstream drops it).
        assert_eq!(
            template["imagePullSecrets"],
            serde_json::json!([{"name": "registry-login"}]),
            "{}",
            dc.name
        );
        assert_eq!(
            object["metadata"]["annotations"]["medusa.k8ssandra.io/grpc-port"],
            "50055"
        );
        assert!(
            (object["spec"]["users"].as_array().into_iter().flatten())
                .any(|u| u["secretName"] == "demo-medusa"),
            "{}",
            object["spec"]["users"]
        );
        let config = dc.medusa_config.as_ref().expect("medusa.ini");
        assert_eq!(config.name, format!("demo-{}-medusa", dc.name));
        match admit(&admission, &object) {
            Ok(admitted) => {
                let lost = lost_leaves(&object["spec"], &admitted["spec"], "spec");
                assert!(
                    lost.is_empty(),
                    "{}: changed by admission: {lost:?}",
                    dc.name
                );
            }
            Err(causes) => panic!("{}: rejected: {causes:?}", dc.name),
        }
    }
    let dc2 = &planned.datacenters[1];
    let ini = &dc2.medusa_config.as_ref().expect("medusa.ini").data["medusa.ini"];
    assert!(ini.contains("cassandra_url = https://"), "{ini}");
    assert!(
        !planned.datacenters[0].medusa_config.as_ref().expect("ini").data["medusa.ini"]
            .contains("https://")
    );
}
