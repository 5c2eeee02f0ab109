//! The validation rules of the K8ssandraCluster CRD: CEL rules (`x-kubernetes-validations`),
//! exercised through kube's client-side evaluator, and the OpenAPI bounds (maxItems, minimum,
//! pattern, maxLength), asserted on the generated schema at the right paths.

use federator::api::k8ssandra_cluster::{
    CLUSTER_NAME_IMMUTABLE_MESSAGE, CLUSTER_NAME_REMOVED_MESSAGE, CassandraClusterTemplate,
    CassandraDatacenterTemplate, DUPLICATE_DATACENTER_MESSAGE, DatacenterMetadata,
    K8S_CONTEXT_IMMUTABLE_MESSAGE, K8ssandraCluster, K8ssandraClusterSpec, MAX_DATACENTERS,
};
use federator::api::reaper::{
    CLIENT_CERT_WITHOUT_SERVER_CERT_MESSAGE, LOCAL_STORAGE_CLAIM_MESSAGE,
    LOCAL_STORAGE_CONFIG_MESSAGE, LOCAL_STORAGE_PER_DC_MESSAGE, Reaper,
};
use kube::CustomResourceExt;
use kube::core::cel::{
    ScopeContext, ValidationErrors, Validator, WarningKind, analyze_rule, compile_schema,
};
use serde_json::{Value, json};

fn datacenter(name: &str, context: Option<&str>) -> CassandraDatacenterTemplate {
    CassandraDatacenterTemplate {
        metadata: DatacenterMetadata {
            name: name.into(),
            ..Default::default()
        },
        k8s_context: context.map(str::to_string),
        size: 3,
        ..Default::default()
    }
}

fn cluster(
    cluster_name: Option<&str>,
    datacenters: Vec<CassandraDatacenterTemplate>,
) -> K8ssandraCluster {
    let mut cassandra = CassandraClusterTemplate {
        cluster_name: cluster_name.map(str::to_string),
        datacenters: Some(datacenters),
        ..Default::default()
    };
    cassandra.options.server_version = Some("4.1.8".into());
    K8ssandraCluster::new(
        "demo",
        K8ssandraClusterSpec {
            cassandra: Some(cassandra),
            ..Default::default()
        },
    )
}

fn two_regions() -> Vec<CassandraDatacenterTemplate> {
    vec![
        datacenter("dc1", Some("kind-k8ssandra-0")),
        datacenter("dc2", Some("kind-k8ssandra-1")),
    ]
}

/// Asserts that validation failed with exactly one error carrying `message`, at a path that
/// names `field`.
fn assert_rejected(result: Result<(), ValidationErrors>, message: &str, field: &str) {
    let errors = match result {
        Ok(()) => panic!("expected a rejection with {message:?}, but the object was accepted"),
        Err(errors) => errors,
    };
    assert_eq!(errors.len(), 1, "expected one error, got: {errors}");
    let error = &errors[0];
    assert_eq!(error.message, message, "unexpected message: {errors}");
    assert!(
        error.field_path.contains(field),
        "error path {:?} does not name {field}",
        error.field_path
    );
    // What `kubectl apply` shows the user names the field and explains the fix.
    assert!(errors.to_string().contains(message));
}

fn assert_accepted(result: Result<(), ValidationErrors>) {
    if let Err(errors) = result {
        panic!("expected the object to be accepted: {errors}");
    }
}

// ---- creation rules ----

#[test]
fn a_multi_region_cluster_is_accepted() {
    assert_accepted(cluster(Some("E2E Test Cluster"), two_regions()).validate_cel());
}

#[test]
fn a_cluster_without_cassandra_is_accepted() {
    // config/samples/k8ssandra_v1alpha1_k8ssandracluster.yaml has no spec.cassandra at all.
    assert_accepted(
        K8ssandraCluster::new("sample", K8ssandraClusterSpec::default()).validate_cel(),
    );
}

#[test]
fn duplicate_datacenter_names_are_rejected() {
    let duplicated = cluster(
        None,
        vec![
            datacenter("dc1", Some("kind-k8ssandra-0")),
            datacenter("dc2", Some("kind-k8ssandra-1")),
            datacenter("dc1", Some("kind-k8ssandra-2")),
        ],
    );
    assert_rejected(
        duplicated.validate_cel(),
        DUPLICATE_DATACENTER_MESSAGE,
        "spec.cassandra.datacenters",
    );
}

#[test]
fn the_same_context_for_two_datacenters_is_accepted() {
    // Two datacenters in one Kubernetes cluster (namespaces or node pools apart) is legitimate.
    let shared = cluster(
        None,
        vec![
            datacenter("dc1", Some("kind-k8ssandra-0")),
            datacenter("dc2", Some("kind-k8ssandra-0")),
        ],
    );
    assert_accepted(shared.validate_cel());
}

#[test]
fn one_datacenter_too_many_is_limited_by_openapi_not_cel() {
    // maxItems is enforced by the API server's OpenAPI validation, before CEL; the CEL rules
    // themselves have nothing against many distinct datacenters.
    let many: Vec<_> =
        (0..=MAX_DATACENTERS).map(|i| datacenter(&format!("dc{i}"), Some("ctx"))).collect();
    assert_eq!(many.len(), MAX_DATACENTERS as usize + 1);
    assert_accepted(cluster(None, many).validate_cel());
    assert_eq!(
        schema_at("spec.cassandra.datacenters")["maxItems"],
        MAX_DATACENTERS
    );
}

#[test]
fn transition_rules_do_not_run_on_creation() {
    // No oldSelf on create: a cluster name and contexts may be anything at first.
    assert_accepted(cluster(Some("Weird Cluster Name"), two_regions()).validate_cel());
}

// ---- clusterName ----

#[test]
fn changing_the_cluster_name_is_rejected() {
    let old = cluster(Some("E2E Test Cluster"), two_regions());
    let new = cluster(Some("Renamed"), two_regions());
    assert_rejected(
        new.validate_cel_update(&old),
        CLUSTER_NAME_IMMUTABLE_MESSAGE,
        "clusterName",
    );
}

#[test]
fn setting_the_cluster_name_for_the_first_time_is_accepted() {
    let old = cluster(None, two_regions());
    let new = cluster(Some("E2E Test Cluster"), two_regions());
    assert_accepted(new.validate_cel_update(&old));
}

#[test]
fn keeping_the_cluster_name_is_accepted() {
    let old = cluster(Some("E2E Test Cluster"), two_regions());
    let mut new = old.clone();
    if let Some(cassandra) = new.spec.cassandra.as_mut() {
        cassandra.options.server_version = Some("4.1.9".into());
    }
    assert_accepted(new.validate_cel_update(&old));
}

#[test]
fn removing_the_cluster_name_is_rejected() {
    let old = cluster(Some("E2E Test Cluster"), two_regions());
    let new = cluster(None, two_regions());
    assert_rejected(
        new.validate_cel_update(&old),
        CLUSTER_NAME_REMOVED_MESSAGE,
        "spec",
    );
}

#[test]
fn removing_spec_cassandra_with_a_cluster_name_is_rejected() {
    let old = cluster(Some("E2E Test Cluster"), two_regions());
    let new = K8ssandraCluster::new("demo", K8ssandraClusterSpec::default());
    assert_rejected(
        new.validate_cel_update(&old),
        CLUSTER_NAME_REMOVED_MESSAGE,
        "spec",
    );
}

// ---- k8sContext ----

#[test]
fn moving_a_kept_datacenter_to_another_context_is_rejected() {
    let old = cluster(None, two_regions());
    let new = cluster(
        None,
        vec![
            datacenter("dc1", Some("kind-k8ssandra-0")),
            datacenter("dc2", Some("kind-k8ssandra-2")),
        ],
    );
    assert_rejected(
        new.validate_cel_update(&old),
        K8S_CONTEXT_IMMUTABLE_MESSAGE,
        "spec.cassandra.datacenters",
    );
}

#[test]
fn setting_a_context_on_a_datacenter_that_had_none_is_rejected() {
    // Absent means the control plane's own cluster: giving it a context moves the datacenter.
    let old = cluster(None, vec![datacenter("dc1", None)]);
    let new = cluster(None, vec![datacenter("dc1", Some("kind-k8ssandra-1"))]);
    assert_rejected(
        new.validate_cel_update(&old),
        K8S_CONTEXT_IMMUTABLE_MESSAGE,
        "datacenters",
    );
}

#[test]
fn an_absent_context_equals_the_empty_context() {
    let old = cluster(None, vec![datacenter("dc1", None)]);
    let new = cluster(None, vec![datacenter("dc1", Some(""))]);
    assert_accepted(new.validate_cel_update(&old));
}

#[test]
fn removing_a_datacenter_and_its_context_together_is_accepted() {
    let old = cluster(None, two_regions());
    let new = cluster(None, vec![datacenter("dc1", Some("kind-k8ssandra-0"))]);
    assert_accepted(new.validate_cel_update(&old));
}

#[test]
fn replacing_a_datacenter_by_a_new_one_elsewhere_is_accepted() {
    // dc2 leaves kind-k8ssandra-1 and dc3 arrives in kind-k8ssandra-2 in the same update.
    let old = cluster(None, two_regions());
    let new = cluster(
        None,
        vec![
            datacenter("dc1", Some("kind-k8ssandra-0")),
            datacenter("dc3", Some("kind-k8ssandra-2")),
        ],
    );
    assert_accepted(new.validate_cel_update(&old));
}

#[test]
fn reordering_and_adding_datacenters_is_accepted() {
    // The rule pairs datacenters by name, not by position.
    let old = cluster(None, two_regions());
    let new = cluster(
        None,
        vec![
            datacenter("dc3", Some("kind-k8ssandra-2")),
            datacenter("dc2", Some("kind-k8ssandra-1")),
            datacenter("dc1", Some("kind-k8ssandra-0")),
        ],
    );
    assert_accepted(new.validate_cel_update(&old));
}

#[test]
fn other_changes_to_a_kept_datacenter_are_accepted() {
    let old = cluster(None, two_regions());
    let mut new = old.clone();
    if let Some(dcs) = new.spec.cassandra.as_mut().and_then(|c| c.datacenters.as_mut()) {
        dcs[1].size = 5;
        dcs[1].stopped = Some(true);
    }
    assert_accepted(new.validate_cel_update(&old));
}

// ---- OpenAPI bounds, asserted on the generated schema ----

fn crd_schema() -> Value {
    let schema = schema_of(&K8ssandraCluster::crd());
    assert!(schema.is_object(), "K8ssandraCluster CRD has a schema");
    schema
}

/// The OpenAPI schema of a CRD's first version (null without one).
fn schema_of(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .map(serde_json::to_value)
        .and_then(Result::ok)
        .unwrap_or(Value::Null)
}

/// The schema node at a dotted path; `[]` steps into list items.
fn schema_at(path: &str) -> Value {
    let mut node = crd_schema();
    for step in path.split('.') {
        let (name, into_items) = match step.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (step, false),
        };
        node = node["properties"][name].clone();
        assert!(node.is_object(), "no schema at {path} (stopped at {name})");
        if into_items {
            node = node["items"].clone();
        }
    }
    node
}

#[test]
fn datacenter_list_is_bounded() {
    let datacenters = schema_at("spec.cassandra.datacenters");
    assert_eq!(datacenters["type"], "array");
    assert_eq!(datacenters["maxItems"], u64::from(MAX_DATACENTERS));
}

#[test]
fn datacenter_size_is_at_least_one() {
    let size = schema_at("spec.cassandra.datacenters[].size");
    assert_eq!(size["type"], "integer");
    assert_eq!(size["minimum"].as_f64(), Some(1.0));
    let required = schema_at("spec.cassandra.datacenters")["items"]["required"].clone();
    assert_eq!(required, json!(["metadata", "size"]));
}

#[test]
fn datacenter_name_is_a_dns_1035_label() {
    let name = schema_at("spec.cassandra.datacenters[].metadata.name");
    assert_eq!(name["pattern"], "^[a-z]([-a-z0-9]*[a-z0-9])?$");
    assert_eq!(name["maxLength"], 63);
    assert_eq!(name["minLength"], 1);
    let pattern = name["pattern"].as_str().unwrap_or_default().to_string();
    for good in ["dc1", "d", "east-1", "real-dc2"] {
        assert!(
            matches_pattern(&pattern, good),
            "{good} should be a valid datacenter name"
        );
    }
    for bad in ["DC1", "1dc", "dc_1", "dc-", "-dc", "dc.1", ""] {
        assert!(
            !matches_pattern(&pattern, bad),
            "{bad:?} should not be a valid datacenter name"
        );
    }
}

#[test]
fn server_version_is_major_minor_patch_at_both_levels() {
    for path in [
        "spec.cassandra.serverVersion",
        "spec.cassandra.datacenters[].serverVersion",
    ] {
        let version = schema_at(path);
        assert_eq!(version["pattern"], r"^\d+\.\d+\.\d+$", "{path}");
        let pattern = version["pattern"].as_str().unwrap_or_default().to_string();
        for good in ["4.0.17", "3.11.14", "5.0.4", "6.8.50"] {
            assert!(
                matches_pattern(&pattern, good),
                "{good} should be accepted at {path}"
            );
        }
        for bad in ["4.0", "v4.0.17", "4.0.17-beta", "4.0.17 ", "latest"] {
            assert!(
                !matches_pattern(&pattern, bad),
                "{bad:?} should be rejected at {path}"
            );
        }
    }
}

#[test]
fn strings_used_by_cel_rules_have_a_max_length() {
    // A real API server estimates the cost of each rule from these bounds.
    assert_eq!(
        schema_at("spec.cassandra.datacenters[].metadata.name")["maxLength"],
        63
    );
    assert_eq!(
        schema_at("spec.cassandra.datacenters[].k8sContext")["maxLength"],
        253
    );
    assert_eq!(schema_at("spec.cassandra.clusterName")["maxLength"], 253);
}

#[test]
fn rules_sit_where_they_apply() {
    let rules = |path: &str| -> Vec<String> {
        let node = if path.is_empty() {
            crd_schema()
        } else {
            schema_at(path)
        };
        node["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|rule| rule["message"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(rules("spec"), vec![CLUSTER_NAME_REMOVED_MESSAGE]);
    assert_eq!(
        rules("spec.cassandra.clusterName"),
        vec![CLUSTER_NAME_IMMUTABLE_MESSAGE]
    );
    assert_eq!(
        rules("spec.cassandra.datacenters"),
        vec![DUPLICATE_DATACENTER_MESSAGE, K8S_CONTEXT_IMMUTABLE_MESSAGE]
    );
    assert_eq!(
        rules("spec.reaper"),
        vec![
            LOCAL_STORAGE_CONFIG_MESSAGE,
            LOCAL_STORAGE_CLAIM_MESSAGE,
            LOCAL_STORAGE_PER_DC_MESSAGE
        ]
    );
}

/// Every CEL rule of every CRD compiles, uses only the variables a CRD rule may use, and stays
/// within the API server's cost budget given the schema's bounds.
#[test]
fn every_rule_compiles_and_fits_the_cost_budget() {
    fn visit(node: &Value, path: &str, found: &mut Vec<String>, rule_count: &mut usize) {
        if let Some(rules) = node["x-kubernetes-validations"].as_array() {
            let compiled = compile_schema(node);
            if let Some(errors) = Some(compiled.compilation_errors()).filter(|e| !e.is_empty()) {
                found.push(format!("{path}: {errors:?}"));
            }
            for rule in rules.iter().filter_map(|r| r["rule"].as_str()) {
                *rule_count += 1;
                // The analyzer's scope check counts macro variables (`x` in `self.all(x, ...)`)
                // as free variables; the rules are evaluated for real in the tests above, so
                // only cost and missing-bound warnings matter here.
                let warnings = analyze_rule(rule, &compiled, ScopeContext::CrdValidation);
                for warning in warnings.iter().filter(|w| w.kind != WarningKind::WrongScope) {
                    found.push(format!("{path}: {rule}: {}", warning.message));
                }
            }
        }
        if let Some(properties) = node["properties"].as_object() {
            for (name, child) in properties {
                visit(child, &format!("{path}.{name}"), found, rule_count);
            }
        }
        if node["items"].is_object() {
            visit(&node["items"], &format!("{path}[]"), found, rule_count);
        }
    }
    let mut found = Vec::new();
    let mut rule_count = 0;
    for crd in federator::api::all_crds() {
        visit(
            &schema_of(&crd),
            &crd.spec.names.kind,
            &mut found,
            &mut rule_count,
        );
    }
    assert_eq!(rule_count, 12, "rules found: {rule_count}");
    assert!(found.is_empty(), "{}", found.join("\n"));

    // The budget check has teeth: without maxItems the uniqueness rule is too expensive.
    let mut unbounded = schema_at("spec.cassandra.datacenters");
    if let Some(node) = unbounded.as_object_mut() {
        node.remove("maxItems");
    }
    let unique = "self.all(x, self.exists_one(y, y.metadata.name == x.metadata.name))";
    let warnings = analyze_rule(
        unique,
        &compile_schema(&unbounded),
        ScopeContext::CrdValidation,
    );
    assert!(
        warnings.iter().any(|w| w.kind == WarningKind::CostExceeded),
        "{warnings:?}"
    );
}

/// Whether `text` matches an OpenAPI `pattern`, evaluated with the RE2-compatible engine behind
/// CEL's `matches()` (the same syntax the API server uses for patterns).
fn matches_pattern(pattern: &str, text: &str) -> bool {
    let schema = json!({
        "type": "string",
        "x-kubernetes-validations": [{"rule": format!("self.matches(r'{pattern}')")}]
    });
    match Validator::new().validate(&schema, &json!(text), None) {
        Ok(()) => true,
        Err(errors) => {
            assert!(
                errors.iter().all(|e| e.kind == kube::core::cel::ErrorKind::ValidationFailure),
                "pattern {pattern} could not be evaluated: {errors}"
            );
            false
        }
    }
}

// ---- Medusa: what the API server refuses, and the field it names ----

/// The API server's answer (kube-sim's admission of our generated CRD: defaults, pruning,
/// OpenAPI and CEL validation) to creating `object`: Ok, or each refused field with its message.
fn admit_medusa(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    object: Value,
) -> Result<(), Vec<(String, String)>> {
    use kube_sim::store::Admission;
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .map(serde_json::to_value)
        .and_then(Result::ok)
        .expect("generated CRD has a schema");
    let admission =
        kube_sim::schema::CrAdmission::new(&crd.spec.group, &crd.spec.names.kind, &schema)
            .unwrap_or_else(|problems| panic!("{}: {problems:?}", crd.spec.names.kind));
    let mut object = object;
    admission.admit(&mut object, None, true).map(|_| ()).map_err(|error| {
        if error.causes.is_empty() {
            // A strict decoding error names the unknown field in its message only.
            return vec![(String::new(), error.to_string())];
        }
        error.causes.iter().map(|c| (c.field.clone(), c.message.clone())).collect()
    })
}

fn medusa_object(kind: &str, spec: Value) -> Value {
    json!({"apiVersion": "medusa.k8ssandra.io/v1alpha1", "kind": kind,
           "metadata": {"name": "m", "namespace": "k8ssandra-operator"}, "spec": spec})
}

/// Asserts a refusal naming exactly `field`, with a message containing `words`.
fn assert_refused_at(result: Result<(), Vec<(String, String)>>, field: &str, words: &str) {
    let causes = match result {
        Ok(()) => panic!("expected {field} to be refused, but the object was accepted"),
        Err(causes) => causes,
    };
    assert!(
        causes.iter().any(|(f, message)| f == field && message.contains(words)),
        "expected {field}: …{words}…, got {causes:?}"
    );
}

#[test]
fn medusa_storage_settings_out_of_range_are_refused_naming_the_field() {
    use federator::api::medusa::{MAX_DAYS, MAX_PORT};
    let crd = K8ssandraCluster::crd();
    let with_storage = |storage: Value| {
        json!({"apiVersion": "k8ssandra.io/v1alpha1", "kind": "K8ssandraCluster",
               "metadata": {"name": "demo", "namespace": "k8ssandra-operator"},
               "spec": {"medusa": {"storageProperties": storage}}})
    };
    assert!(
        admit_medusa(
            &crd,
            with_storage(
                json!({"storageProvider": "s3_compatible", "port": 9000, "maxBackupAge": 7})
            )
        )
        .is_ok()
    );
    assert_refused_at(
        admit_medusa(&crd, with_storage(json!({"storageProvider": "s4"}))),
        "spec.medusa.storageProperties.storageProvider",
        "s3_compatible",
    );
    assert_refused_at(
        admit_medusa(&crd, with_storage(json!({"port": MAX_PORT + 1}))),
        "spec.medusa.storageProperties.port",
        "65535",
    );
    assert_refused_at(
        admit_medusa(&crd, with_storage(json!({"maxBackupAge": -1}))),
        "spec.medusa.storageProperties.maxBackupAge",
        "0",
    );
    assert_refused_at(
        admit_medusa(
            &crd,
            with_storage(json!({"backupGracePeriodInDays": MAX_DAYS + 1})),
        ),
        "spec.medusa.storageProperties.backupGracePeriodInDays",
        &MAX_DAYS.to_string(),
    );
    // spec.medusa is typed now: a misspelt key is refused under kubectl's strict validation
    // (and pruned without it), where it used to be kept silently.
    assert_refused_at(
        admit_medusa(&crd, with_storage(json!({"bucket": "k8ssandra-medusa"}))),
        "",
        "unknown field \"spec.medusa.storageProperties.bucket\"",
    );
    assert_refused_at(
        admit_medusa(&crd, with_storage(json!({"credentialsType": "password"}))),
        "spec.medusa.storageProperties.credentialsType",
        "role-based",
    );
}

#[test]
fn medusa_jobs_with_bad_values_are_refused_naming_the_field() {
    use federator::api::medusa::{
        MedusaBackupJob, MedusaBackupSchedule, MedusaConfiguration, MedusaRestoreJob, MedusaTask,
    };
    let job = MedusaBackupJob::crd();
    assert!(
        admit_medusa(
            &job,
            medusa_object(
                "MedusaBackupJob",
                json!({"cassandraDatacenter": "dc1", "backupType": "full"})
            )
        )
        .is_ok()
    );
    assert_refused_at(
        admit_medusa(
            &job,
            medusa_object(
                "MedusaBackupJob",
                json!({"cassandraDatacenter": "dc1", "backupType": "incremental"}),
            ),
        ),
        "spec.backupType",
        "differential",
    );
    assert_refused_at(
        admit_medusa(
            &job,
            medusa_object("MedusaBackupJob", json!({"cassandraDatacenter": ""})),
        ),
        "spec.cassandraDatacenter",
        "at least 1",
    );
    let schedule = MedusaBackupSchedule::crd();
    assert_refused_at(
        admit_medusa(
            &schedule,
            medusa_object(
                "MedusaBackupSchedule",
                json!({"cronSchedule": "", "backupSpec": {"cassandraDatacenter": "dc1"}}),
            ),
        ),
        "spec.cronSchedule",
        "at least 1",
    );
    assert_refused_at(
        admit_medusa(
            &schedule,
            medusa_object(
                "MedusaBackupSchedule",
                json!({"cronSchedule": "0 2 * * *", "backupSpec": {"cassandraDatacenter": "dc1"}, "operationType": "verify"}),
            ),
        ),
        "spec.operationType",
        "purge",
    );
    assert_refused_at(
        admit_medusa(
            &MedusaTask::crd(),
            medusa_object(
                "MedusaTask",
                json!({"cassandraDatacenter": "dc1", "operation": "verify"}),
            ),
        ),
        "spec.operation",
        "prepare_restore",
    );
    assert_refused_at(
        admit_medusa(
            &MedusaRestoreJob::crd(),
            medusa_object("MedusaRestoreJob", json!({"cassandraDatacenter": "dc1"})),
        ),
        "spec.backup",
        "Required",
    );
    assert_refused_at(
        admit_medusa(
            &MedusaConfiguration::crd(),
            medusa_object(
                "MedusaConfiguration",
                json!({"storageProperties": {"concurrentTransfers": 100_000}}),
            ),
        ),
        "spec.storageProperties.concurrentTransfers",
        "256",
    );
}

// ---- Reaper's local storage, as upstream's webhook ----

fn with_reaper(reaper: Value) -> K8ssandraCluster {
    let mut k8c = cluster(Some("demo"), two_regions());
    k8c.spec.reaper = Some(serde_json::from_value(reaper).expect("reaper template"));
    k8c
}

#[test]
fn local_reaper_storage_needs_its_claim_and_a_single_reaper() {
    let claim = json!({"accessModes": ["ReadWriteOnce"],
                       "resources": {"requests": {"storage": "1Gi"}}});
    assert_accepted(
        with_reaper(json!({"deploymentMode": "SINGLE", "storageType": "local",
                           "storageConfig": claim}))
        .validate_cel(),
    );
    assert_accepted(with_reaper(json!({"storageType": "cassandra"})).validate_cel());
    assert_accepted(with_reaper(json!({"deploymentMode": "PER_DC"})).validate_cel());
    assert_rejected(
        with_reaper(json!({"deploymentMode": "SINGLE", "storageType": "local"})).validate_cel(),
        LOCAL_STORAGE_CONFIG_MESSAGE,
        "spec.reaper",
    );
    assert_rejected(
        with_reaper(json!({"deploymentMode": "SINGLE", "storageType": "local",
                           "storageConfig": {"accessModes": ["ReadWriteOnce"]}}))
        .validate_cel(),
        LOCAL_STORAGE_CLAIM_MESSAGE,
        "spec.reaper",
    );
    // PER_DC is the default deployment mode.
    assert_rejected(
        with_reaper(json!({"storageType": "local", "storageConfig": claim})).validate_cel(),
        LOCAL_STORAGE_PER_DC_MESSAGE,
        "spec.reaper",
    );
}

// ---- Reaper's encryption: a client certificate only with a server certificate ----

#[test]
fn a_reaper_client_certificate_without_a_server_certificate_is_refused() {
    for encryption in [
        json!({"serverCertName": "reaper-server"}),
        json!({"serverCertName": "reaper-server", "clientCertName": "reaper-client"}),
        json!({}),
        json!({"clientCertName": ""}),
    ] {
        assert_accepted(with_reaper(json!({"encryption": encryption})).validate_cel());
    }
    for encryption in [
        json!({"clientCertName": "reaper-client"}),
        json!({"clientCertName": "reaper-client", "serverCertName": ""}),
    ] {
        assert_rejected(
            with_reaper(json!({"encryption": encryption})).validate_cel(),
            CLIENT_CERT_WITHOUT_SERVER_CERT_MESSAGE,
            "spec.reaper.encryption.clientCertName",
        );
    }

    // The Reaper kind carries the same rule at spec.encryption.
    let schema = schema_of(&Reaper::crd());
    assert!(schema.is_object(), "the Reaper CRD has a schema");
    let reaper = |encryption: Value| {
        json!({"apiVersion": "reaper.k8ssandra.io/v1alpha1", "kind": "Reaper",
               "metadata": {"name": "r", "namespace": "ns"},
               "spec": {"datacenterRef": {"name": "dc1"}, "encryption": encryption}})
    };
    let validator = Validator::new();
    assert_accepted(validator.validate(
        &schema,
        &reaper(json!({"serverCertName": "s", "clientCertName": "c"})),
        None,
    ));
    assert_rejected(
        validator.validate(&schema, &reaper(json!({"clientCertName": "c"})), None),
        CLIENT_CERT_WITHOUT_SERVER_CERT_MESSAGE,
        "spec.encryption.clientCertName",
    );
}

#[test]
fn a_cluster_backup_job_with_bad_values_is_refused_naming_the_field() {
    use federator::api::medusa::MedusaClusterBackupJob;
    let crd = MedusaClusterBackupJob::crd();
    let kind = "MedusaClusterBackupJob";
    assert!(
        admit_medusa(
            &crd,
            medusa_object(
                kind,
                json!({"k8ssandraCluster": {"name": "demo"}, "datacenters": ["dc1", "dc2"], "backupType": "full"})
            )
        )
        .is_ok()
    );
    assert_refused_at(
        admit_medusa(&crd, medusa_object(kind, json!({"datacenters": ["dc1"]}))),
        "spec.k8ssandraCluster",
        "Required",
    );
    assert_refused_at(
        admit_medusa(
            &crd,
            medusa_object(kind, json!({"k8ssandraCluster": {"name": ""}})),
        ),
        "spec.k8ssandraCluster.name",
        "at least 1",
    );
    assert_refused_at(
        admit_medusa(
            &crd,
            medusa_object(
                kind,
                json!({"k8ssandraCluster": {"name": "demo"}, "datacenters": ["dc1", "dc1"]}),
            ),
        ),
        "spec.datacenters[1]",
        "Duplicate",
    );
    let many: Vec<String> = (0..=federator::api::k8ssandra_cluster::MAX_DATACENTERS)
        .map(|n| format!("dc{n}"))
        .collect();
    assert_refused_at(
        admit_medusa(
            &crd,
            medusa_object(
                kind,
                json!({"k8ssandraCluster": {"name": "demo"}, "datacenters": many}),
            ),
        ),
        "spec.datacenters",
        "128",
    );
    assert_refused_at(
        admit_medusa(
            &crd,
            medusa_object(
                kind,
                json!({"k8ssandraCluster": {"name": "demo"}, "backupType": "incremental"}),
            ),
        ),
        "spec.backupType",
        "differential",
    );
}
