//! The real CRDs Federator meets (cass-operator, k8ssandra-operator, prometheus-operator):
//! they must be structural with compiling rules, and admission must judge CassandraDatacenters
//! and the k8ssandra-operator fixtures as the apiserver does.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::super::{CrAdmission, check_crd};
use crate::store::Admission;

/// `shared/compat` beside the workspace.
fn compat_dir() -> Option<PathBuf> {
    crate::prerequisites::compat_dir(&crate::prerequisites::workspace_root())
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    documents.into_iter().filter(|d| !d.is_null()).collect()
}

fn crd_files(compat: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for project in ["cass-operator", "k8ssandra-operator", "prometheus-operator"] {
        let dir = compat.join("crds").join(project);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        files.extend(entries.filter_map(Result::ok).map(|e| e.path()));
    }
    files.sort();
    files
}

fn count_rules(schema: &Value) -> usize {
    match schema {
        Value::Object(map) => {
            let here =
                map.get("x-kubernetes-validations").and_then(Value::as_array).map_or(0, Vec::len);
            here + map.values().map(count_rules).sum::<usize>()
        }
        Value::Array(items) => items.iter().map(count_rules).sum(),
        _ => 0,
    }
}

/// The admission of a CRD's version, as the CRD handler would build it.
fn admission_for(crd: &Value, version: &str) -> CrAdmission {
    let group = crd.pointer("/spec/group").and_then(Value::as_str).unwrap_or_default();
    let kind = crd.pointer("/spec/names/kind").and_then(Value::as_str).unwrap_or_default();
    let versions =
        crd.pointer("/spec/versions").and_then(Value::as_array).cloned().unwrap_or_default();
    let Some(schema) = versions
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(version))
        .and_then(|v| v.pointer("/schema/openAPIV3Schema"))
    else {
        panic!("{kind} has no version {version}");
    };
    CrAdmission::new(group, kind, schema).unwrap_or_else(|e| panic!("{kind}: {e:?}"))
}

#[test]
fn real_crds_are_structural_and_their_rules_compile() {
    let Some(compat) = compat_dir() else {
        return;
    };
    let files = crd_files(&compat);
    assert!(files.len() >= 8, "{files:?}");
    for file in files {
        for crd in yaml_documents(&file) {
            assert_eq!(check_crd(&crd), Ok(()), "{}", file.display());
            let rules = count_rules(&crd);
            let versions = crd
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for version in versions {
                let name = version.get("name").and_then(Value::as_str).unwrap_or_default();
                admission_for(&crd, name);
            }
            eprintln!("{}: structural, {rules} CEL rules compiled", file.display());
        }
    }
}

fn cassandra_datacenter_crd(compat: &Path) -> Value {
    let file = compat.join("crds/cass-operator/cassandra.datastax.com_cassandradatacenters.yaml");
    yaml_documents(&file).remove(0)
}

/// The CRD as cass-operator installs it: its kustomization removes `spec.config` from the
/// schema (config_removal.yaml), so the free-form config lives under `spec`'s
/// `x-kubernetes-preserve-unknown-fields`.
fn installed_cassandra_datacenters(compat: &Path) -> CrAdmission {
    let mut crd = cassandra_datacenter_crd(compat);
    if let Some(spec_properties) = crd
        .pointer_mut("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties")
        .and_then(Value::as_object_mut)
    {
        spec_properties.remove("config");
    }
    admission_for(&crd, "v1beta1")
}

fn datacenter(spec: Value) -> Value {
    json!({
        "apiVersion": "cassandra.datastax.com/v1beta1",
        "kind": "CassandraDatacenter",
        "metadata": {"name": "dc1", "namespace": "cass"},
        "spec": spec,
    })
}

fn good_spec() -> Value {
    json!({
        "clusterName": "cluster1",
        "serverType": "cassandra",
        "serverVersion": "4.1.5",
        "size": 3,
        "racks": [{"name": "r1"}, {"name": "r2"}, {"name": "r3"}],
        "storageConfig": {"cassandraDataVolumeClaimSpec": {
            "storageClassName": "standard",
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "10Gi"}}
        }},
        "config": {"cassandra-yaml": {"num_tokens": 16}},
        "resources": {"requests": {"cpu": 1, "memory": "2Gi"}},
    })
}

fn causes_of(err: &crate::error::ApiError) -> Vec<(&str, &str)> {
    err.causes.iter().map(|c| (c.field.as_str(), c.message.as_str())).collect()
}

#[test]
fn cassandra_datacenters_are_judged_like_the_apiserver() {
    let Some(compat) = compat_dir() else {
        return;
    };
    let admission = installed_cassandra_datacenters(&compat);

    let mut good = datacenter(good_spec());
    let warnings =
        admission.admit(&mut good, None, true).unwrap_or_else(|e| panic!("{}", e.message));
    assert!(warnings.is_empty(), "{warnings:?}");
    // The free-form config is kept: `spec` preserves unknown fields.
    assert_eq!(
        good.pointer("/spec/config/cassandra-yaml/num_tokens"),
        Some(&json!(16))
    );

    let mut spec = good_spec();
    spec["size"] = json!("3");
    let err = admission.admit(&mut datacenter(spec), None, false).unwrap_err();
    assert_eq!(err.code, 422);
    assert_eq!(
        causes_of(&err)[0],
        (
            "spec.size",
            r#"Invalid value: "string": spec.size in body must be of type integer: "string""#
        )
    );
    assert!(
        err.message.starts_with(r#"CassandraDatacenter.cassandra.datastax.com "dc1" is invalid: "#)
    );

    // spec itself preserves unknown fields, so spec.foo is kept even in strict mode; below it
    // (a rack) fields are pruned or, in strict mode, rejected.
    let mut spec = good_spec();
    spec["foo"] = json!("bar");
    spec["racks"][0]["foo"] = json!("bar");
    let err = admission.admit(&mut datacenter(spec.clone()), None, true).unwrap_err();
    assert_eq!(err.code, 400);
    assert_eq!(
        err.message,
        r#"CassandraDatacenter in version "v1beta1" cannot be handled as a CassandraDatacenter: strict decoding error: unknown field "spec.racks[0].foo""#
    );
    let mut lenient = datacenter(spec);
    let warnings =
        admission.admit(&mut lenient, None, false).unwrap_or_else(|e| panic!("{}", e.message));
    assert_eq!(warnings, vec![r#"unknown field "spec.racks[0].foo""#]);
    assert!(lenient.pointer("/spec/racks/0/foo").is_none());
    assert_eq!(lenient.pointer("/spec/foo"), Some(&json!("bar")));

    let mut spec = good_spec();
    spec["serverType"] = json!("scylla");
    spec["racks"][1]["nodeAffinityLabels"] = json!({"zone": 1});
    let err = admission.admit(&mut datacenter(spec), None, false).unwrap_err();
    let causes = causes_of(&err);
    assert!(
        causes.contains(&(
            "spec.serverType",
            r#"Unsupported value: "scylla": supported values: "cassandra", "dse", "hcd""#
        )),
        "{causes:?}"
    );
    assert!(
        causes.contains(&(
            "spec.racks[1].nodeAffinityLabels.zone",
            r#"Invalid value: "integer": spec.racks[1].nodeAffinityLabels.zone in body must be of type string: "integer""#
        )),
        "{causes:?}"
    );

    let mut spec = good_spec();
    spec["size"] = json!(0);
    spec["serverVersion"] = json!("four");
    spec.as_object_mut().map(|s| s.remove("clusterName"));
    let err = admission.admit(&mut datacenter(spec), None, false).unwrap_err();
    assert_eq!(
        causes_of(&err)[..3],
        [
            (
                "spec.serverVersion",
                r#"Invalid value: "four": spec.serverVersion in body should match '(\d+\.\d+\.\d+)'"#
            ),
            (
                "spec.size",
                "Invalid value: 0: spec.size in body should be greater than or equal to 1"
            ),
            ("spec.clusterName", "Required value"),
        ]
    );
}

#[test]
fn the_raw_cass_operator_base_rejects_object_config() {
    let Some(compat) = compat_dir() else {
        return;
    };
    // config/crd/bases declares `config` as `type: string, format: byte` (json.RawMessage);
    // applied without cass-operator's kustomize patch, the apiserver refuses object configs.
    let admission = admission_for(&cassandra_datacenter_crd(&compat), "v1beta1");
    let err = admission.admit(&mut datacenter(good_spec()), None, false).unwrap_err();
    assert_eq!(
        causes_of(&err)[0],
        (
            "spec.config",
            r#"Invalid value: "": spec.config in body must be of type byte: """#
        )
    );
}

#[test]
fn k8ssandra_fixtures_are_accepted() {
    let Some(compat) = compat_dir() else {
        return;
    };
    let crd_file = compat.join("crds/k8ssandra-operator/k8ssandra.io_k8ssandraclusters.yaml");
    let crd = yaml_documents(&crd_file).remove(0);
    let admission = admission_for(&crd, "v1alpha1");
    let entries = std::fs::read_dir(compat.join("fixtures"))
        .unwrap_or_else(|e| panic!("{}/fixtures: {e}", compat.display()));
    let mut checked = 0;
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        for mut doc in yaml_documents(&path) {
            if doc.get("kind").and_then(Value::as_str) != Some("K8ssandraCluster") {
                continue;
            }
            // Not strict: config/samples/k8ssandra.yaml carries a stray `spec.foo`, which
            // kubectl's fieldValidation=Strict would have the apiserver reject.
            if let Err(e) = admission.admit(&mut doc, None, false) {
                panic!("{}: {}", path.display(), e.message);
            }
            checked += 1;
        }
    }
    assert!(checked > 0);
}

/// Federator's own CRDs (`crds/` in the workspace), generated from its Rust types.
fn federator_crds_dir() -> PathBuf {
    crate::prerequisites::workspace_root().join("crds")
}

fn k8ssandra_cluster(cassandra: Value) -> Value {
    json!({
        "apiVersion": "k8ssandra.io/v1alpha1",
        "kind": "K8ssandraCluster",
        "metadata": {"name": "demo", "namespace": "k8ssandra"},
        "spec": {"cassandra": cassandra},
    })
}

fn dc(name: &str, context: &str) -> Value {
    json!({"metadata": {"name": name}, "k8sContext": context, "size": 3})
}

#[test]
fn federator_crds_enforce_their_cel_rules() {
    let dir = federator_crds_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for file in &files {
        for crd in yaml_documents(file) {
            assert_eq!(check_crd(&crd), Ok(()), "{}", file.display());
        }
    }
    let crd = yaml_documents(&dir.join("k8ssandra.io_k8ssandraclusters.yaml")).remove(0);
    let admission = admission_for(&crd, "v1alpha1");
    let base = json!({"serverVersion": "4.1.5", "clusterName": "demo", "datacenters": [dc("dc1", "east"), dc("dc2", "west")]});

    let mut created = k8ssandra_cluster(base.clone());
    admission.admit(&mut created, None, true).unwrap_or_else(|e| panic!("{}", e.message));

    let mut duplicate = base.clone();
    duplicate["datacenters"][1]["metadata"]["name"] = json!("dc1");
    let err = admission.admit(&mut k8ssandra_cluster(duplicate), None, false).unwrap_err();
    // The CRD may word this rule with reason FieldValueDuplicate (which drops the message)
    // or as a plain Invalid with its message.
    let cause = &err.causes[0];
    assert_eq!(cause.field, "spec.cassandra.datacenters");
    match cause.reason.as_str() {
        "FieldValueDuplicate" => assert_eq!(cause.message, r#"Duplicate value: "array""#),
        _ => assert!(cause.message.contains("must be unique"), "{cause:?}"),
    }

    let mut moved = base.clone();
    moved["datacenters"][0]["k8sContext"] = json!("north");
    moved["clusterName"] = json!("renamed");
    let err = admission.admit(&mut k8ssandra_cluster(moved), Some(&created), false).unwrap_err();
    let causes = causes_of(&err);
    assert_eq!(causes.len(), 2, "{causes:?}");
    assert_eq!(causes[0].0, "spec.cassandra.clusterName");
    assert!(
        causes[0].1.starts_with(r#"Invalid value: "string": clusterName is immutable once set"#)
    );
    assert_eq!(causes[1].0, "spec.cassandra.datacenters");
    assert!(
        causes[1]
            .1
            .starts_with(r#"Invalid value: "array": a datacenter's k8sContext cannot change"#)
    );

    let mut unnamed = base.clone();
    unnamed.as_object_mut().map(|c| c.remove("clusterName"));
    let err = admission.admit(&mut k8ssandra_cluster(unnamed), Some(&created), false).unwrap_err();
    assert_eq!(causes_of(&err)[0].0, "spec");
    assert!(causes_of(&err)[0].1.contains("cannot be removed once set"));

    // A new datacenter, and a scale-up, are fine.
    let mut grown = base.clone();
    grown["datacenters"][0]["size"] = json!(6);
    if let Some(dcs) = grown["datacenters"].as_array_mut() {
        dcs.push(dc("dc3", "south"));
    }
    admission
        .admit(&mut k8ssandra_cluster(grown), Some(&created), true)
        .unwrap_or_else(|e| panic!("{}", e.message));

    // The k8ssandra-operator fixtures fit Federator's CRD too.
    let Some(compat) = compat_dir() else {
        return;
    };
    let entries = std::fs::read_dir(compat.join("fixtures"))
        .map(|e| e.filter_map(Result::ok).collect::<Vec<_>>());
    for entry in entries.unwrap_or_default() {
        for mut doc in yaml_documents(&entry.path()) {
            if doc.get("kind").and_then(Value::as_str) == Some("K8ssandraCluster")
                && let Err(e) = admission.admit(&mut doc, None, false)
            {
                panic!("{}: {}", entry.path().display(), e.message);
            }
        }
    }
}
