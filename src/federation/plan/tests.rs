use super::*;
use crate::api::k8ssandra_cluster::{MAX_ADDITIONAL_SEEDS, MAX_RACKS};
use crate::api::shared::SecretsProvider;
use serde_json::json;

/// A K8ssandraCluster `demo` in namespace `ns` with the given spec.
fn cluster(spec: Value) -> K8ssandraCluster {
    serde_json::from_value(json!({
        "apiVersion": "k8ssandra.io/v1alpha1",
        "kind": "K8ssandraCluster",
        "metadata": {"name": "demo", "namespace": "ns"},
        "spec": spec,
    }))
    .expect("valid K8ssandraCluster")
}

fn storage() -> Value {
    json!({"cassandraDataVolumeClaimSpec": {
        "storageClassName": "standard", "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "5Gi"}}
    }})
}

/// Two datacenters in two regions with cluster-level defaults.
fn two_dcs() -> K8ssandraCluster {
    cluster(json!({"cassandra": {
        "serverVersion": "4.0.17",
        "storageConfig": storage(),
        "datacenters": [
            {"metadata": {"name": "dc1"}, "k8sContext": "east", "size": 3},
            {"metadata": {"name": "dc2", "namespace": "other"}, "k8sContext": "west", "size": 2}
        ]
    }}))
}

fn planned(k8c: &K8ssandraCluster) -> ClusterPlan {
    plan(k8c).expect("plans")
}

fn spec_json(dc: &DatacenterPlan) -> Value {
    serde_json::to_value(&dc.datacenter.spec).expect("serializes")
}

#[test]
fn one_datacenter_per_entry_in_spec_order_with_region_and_namespace() {
    let plan = planned(&two_dcs());
    assert_eq!(
        plan.cluster,
        ClusterKey {
            namespace: "ns".into(),
            name: "demo".into()
        }
    );
    let placed: Vec<(&str, &str, &str)> = plan
        .datacenters
        .iter()
        .map(|dc| (dc.name.as_str(), dc.context.as_str(), dc.namespace.as_str()))
        .collect();
    assert_eq!(placed, [("dc1", "east", "ns"), ("dc2", "west", "other")]);
    let dc2 = &plan.datacenters[1].datacenter;
    assert_eq!(dc2.metadata.name.as_deref(), Some("dc2"));
    assert_eq!(dc2.metadata.namespace.as_deref(), Some("other"));
    assert_eq!(
        plan.contexts().into_iter().collect::<Vec<_>>(),
        ["east", "west"]
    );
}

#[test]
fn absent_context_is_the_hub() {
    let k8c = cluster(json!({"cassandra": {
        "serverVersion": "4.0.17", "storageConfig": storage(),
        "datacenters": [{"metadata": {"name": "dc1"}, "size": 1}]
    }}));
    assert_eq!(planned(&k8c).datacenters[0].context, "");
}

#[test]
fn a_context_that_reaches_the_hub_plans_as_the_hub() {
    let hub_contexts = BTreeSet::from(["east".to_string()]);
    let hub_by_name = plan_with(
        &two_dcs(),
        &PlanInputs {
            hub_contexts,
            ..PlanInputs::default()
        },
    )
    .expect("plans");
    let contexts: Vec<&str> =
        hub_by_name.datacenters.iter().map(|dc| dc.context.as_str()).collect();
    assert_eq!(contexts, ["", "west"]);
    // Nothing else differs from the same cluster with no context for dc1.
    let mut spec = serde_json::to_value(&two_dcs().spec).expect("serializes");
    spec["cassandra"]["datacenters"][0].as_object_mut().expect("object").remove("k8sContext");
    assert_eq!(hub_by_name, planned(&cluster(spec)));
}

#[test]
fn same_input_same_output() {
    let k8c = two_dcs();
    let first = planned(&k8c);
    let second = planned(&k8c);
    assert_eq!(first, second);
    assert_eq!(
        serde_json::to_string(&first.datacenters[0].datacenter).expect("json"),
        serde_json::to_string(&second.datacenters[0].datacenter).expect("json"),
    );
}

#[test]
fn no_cassandra_section_plans_no_datacenters() {
    let plan = planned(&cluster(json!({})));
    assert!(plan.datacenters.is_empty());
    assert_eq!(plan.cassandra_cluster_name, "demo");
    let plan = planned(&cluster(json!({"cassandra": {"serverVersion": "4.0.17"}})));
    assert!(plan.datacenters.is_empty());
}

#[test]
fn required_fields_and_defaults() {
    let plan = planned(&two_dcs());
    let spec = &plan.datacenters[0].datacenter.spec;
    assert_eq!(spec.cluster_name, "demo");
    assert_eq!(spec.server_type, ServerType::Cassandra);
    assert_eq!(spec.server_version, "4.0.17");
    assert_eq!(spec.size, 3);
    assert_eq!(spec.stopped, None);
    assert_eq!(spec.server_image, None);
    assert_eq!(
        spec.racks,
        Some(vec![Rack {
            name: "default".into(),
            ..Default::default()
        }])
    );
    assert_eq!(
        spec.superuser_secret_name.as_deref(),
        Some("demo-superuser")
    );
    assert_eq!(spec.datacenter_name, None);
    assert_eq!(
        spec.additional_seeds, None,
        "seeds go through EndpointSlices"
    );
    assert_eq!(plan.datacenters[0].cassandra_datacenter_name, "dc1");
    assert_eq!(
        plan.datacenters[0].additional_seed_service,
        "demo-dc1-additional-seed-service"
    );
}

#[test]
fn cluster_name_and_superuser_secret() {
    let mut k8c = two_dcs();
    if let Some(c) = k8c.spec.cassandra.as_mut() {
        c.cluster_name = Some("My Cluster".into());
    }
    let plan = planned(&k8c);
    assert_eq!(plan.cassandra_cluster_name, "My Cluster");
    let spec = &plan.datacenters[1].datacenter.spec;
    assert_eq!(spec.cluster_name, "My Cluster");
    assert_eq!(
        spec.superuser_secret_name.as_deref(),
        Some("mycluster-superuser")
    );
    assert_eq!(
        plan.datacenters[1].additional_seed_service,
        "mycluster-dc2-additional-seed-service"
    );

    if let Some(c) = k8c.spec.cassandra.as_mut() {
        c.superuser_secret_ref = Some(crate::api::shared::SecretRef::new("admin-creds"));
    }
    let spec = &planned(&k8c).datacenters[0].datacenter.spec;
    assert_eq!(spec.superuser_secret_name.as_deref(), Some("admin-creds"));

    k8c.spec.secrets_provider = Some(SecretsProvider::External);
    let spec = &planned(&k8c).datacenters[0].datacenter.spec;
    assert_eq!(
        spec.superuser_secret_name, None,
        "external secrets: cass-operator must not look"
    );
}

#[test]
fn datacenter_options_win_and_lists_replace() {
    let k8c = cluster(json!({"cassandra": {
        "serverVersion": "4.0.17",
        "serverImage": "registry/cass:4.0.17",
        "storageConfig": storage(),
        "racks": [{"name": "r1"}, {"name": "r2"}],
        "tolerations": [{"key": "a", "operator": "Exists"}],
        "resources": {"requests": {"cpu": "1"}},
        "networking": {"hostNetwork": true},
        "softPodAntiAffinity": true,
        "serviceAccount": "cassandra",
        "datacenters": [
            {"metadata": {"name": "dc1"}, "size": 1},
            {"metadata": {"name": "dc2"}, "size": 1,
             "serverVersion": "4.1.8",
             "racks": [{"name": "only"}],
             "tolerations": [],
             "networking": {"hostNetwork": false},
             "datacenterName": "real-dc2",
             "stopped": true}
        ]
    }}));
    let plan = planned(&k8c);
    let dc1 = &plan.datacenters[0].datacenter.spec;
    let dc2 = &plan.datacenters[1].datacenter.spec;
    assert_eq!(dc1.server_version, "4.0.17");
    assert_eq!(dc2.server_version, "4.1.8");
    assert_eq!(dc2.server_image.as_deref(), Some("registry/cass:4.0.17"));
    let rack_names = |spec: &CassandraDatacenterSpec| -> Vec<String> {
        spec.racks.iter().flatten().map(|r| r.name.clone()).collect()
    };
    assert_eq!(rack_names(dc1), ["r1", "r2"]);
    assert_eq!(
        rack_names(dc2),
        ["only"],
        "a datacenter's list replaces the cluster's"
    );
    assert_eq!(dc1.tolerations.as_ref().map(Vec::len), Some(1));
    assert_eq!(dc2.tolerations.as_ref().map(Vec::len), Some(0));
    assert_eq!(
        dc1.networking.as_ref().and_then(|n| n.host_network),
        Some(true)
    );
    assert_eq!(
        dc2.networking.as_ref().and_then(|n| n.host_network),
        Some(false)
    );
    assert!(dc2.resources.is_some());
    assert_eq!(dc2.allow_multiple_nodes_per_worker, Some(true));
    assert_eq!(dc2.service_account.as_deref(), Some("cassandra"));
    assert_eq!(dc2.stopped, Some(true));
    assert_eq!(dc1.stopped, None);
    assert_eq!(dc2.datacenter_name.as_deref(), Some("real-dc2"));
    assert_eq!(plan.datacenters[1].cassandra_datacenter_name, "real-dc2");
}

#[test]
fn cassandra_yaml_merges_key_by_key() {
    let k8c = cluster(json!({"cassandra": {
        "serverVersion": "4.0.17", "storageConfig": storage(),
        "config": {"cassandraYaml": {"num_tokens": 8, "auto_snapshot": false,
                                     "server_encryption_options": {"internode_encryption": "all"}}},
        "datacenters": [{"metadata": {"name": "dc1"}, "size": 1,
            "config": {"cassandraYaml": {"num_tokens": 4,
                                         "server_encryption_options": {"keystore": "/k"}}}}]
    }}));
    let yaml = &spec_json(&planned(&k8c).datacenters[0])["config"]["cassandra-yaml"];
    assert_eq!(yaml["num_tokens"], 4);
    assert_eq!(yaml["auto_snapshot"], false);
    assert_eq!(
        yaml["server_encryption_options"],
        json!({"internode_encryption": "all", "keystore": "/k"})
    );
}

#[test]
fn config_is_built_for_the_server_version() {
    let k8c = cluster(json!({"cassandra": {
        "serverVersion": "4.0.17", "storageConfig": storage(),
        "config": {"jvmOptions": {"heapSize": "512Mi", "heapNewGenSize": "256Mi", "gc": "CMS"}},
        "datacenters": [
            {"metadata": {"name": "dc1"}, "size": 3},
            {"metadata": {"name": "dc2"}, "size": 1, "serverVersion": "3.11.14"}
        ]
    }}));
    let plan = planned(&k8c);
    let modern = spec_json(&plan.datacenters[0])["config"].clone();
    assert_eq!(
        modern["jvm-server-options"],
        json!({"initial_heap_size": 536870912, "max_heap_size": 536870912})
    );
    assert_eq!(
        modern["jvm11-server-options"],
        json!({"garbage_collector": "CMS"})
    );
    assert_eq!(
        modern["cassandra-yaml"]["authenticator"],
        "PasswordAuthenticator"
    );
    assert_eq!(modern["cassandra-yaml"]["num_tokens"], 16);
    // The first datacenter carries the system keyspaces' replication; Cassandra 4 the RF flag.
    assert_eq!(
        modern["cassandra-env-sh"]["additional-jvm-opts"],
        json!([
            ALLOW_ALTER_RF_FLAG,
            "-Dcassandra.system_distributed_replication=dc1:3"
        ])
    );
    let legacy = spec_json(&plan.datacenters[1])["config"].clone();
    assert_eq!(
        legacy["jvm-options"]["heap_size_young_generation"],
        268435456
    );
    assert_eq!(legacy["cassandra-yaml"]["num_tokens"], 256);
    assert_eq!(legacy["cassandra-yaml"]["start_rpc"], false);
    assert!(
        legacy.get("cassandra-env-sh").is_none(),
        "no system replication after dc1"
    );
}

#[test]
fn gc_defaults_to_g1_when_jvm_options_are_given() {
    let k8c = cluster(json!({"cassandra": {
        "serverVersion": "4.0.17", "storageConfig": storage(),
        "datacenters": [
            {"metadata": {"name": "dc1"}, "size": 1, "config": {"jvmOptions": {"heapSize": "1Gi"}}},
            {"metadata": {"name": "dc2"}, "size": 1}
        ]
    }}));
    let plan = planned(&k8c);
    assert_eq!(
        spec_json(&plan.datacenters[0])["config"]["jvm11-server-options"]["garbage_collector"],
        "G1GC"
    );
    assert!(spec_json(&plan.datacenters[1])["config"].get("jvm11-server-options").is_none());
}

#[test]
fn auth_off_and_system_replication_annotation() {
    let mut k8c = two_dcs();
    k8c.spec.auth = Some(false);
    k8c.metadata.annotations = Some(BTreeMap::from([(
        INITIAL_SYSTEM_REPLICATION_ANNOTATION.to_string(),
        r#"{"dc1": 2, "legacy": 3}"#.to_string(),
    )]));
    let plan = planned(&k8c);
    let config = spec_json(&plan.datacenters[0])["config"].clone();
    assert_eq!(
        config["cassandra-yaml"]["authenticator"],
        "AllowAllAuthenticator"
    );
    assert_eq!(
        config["cassandra-env-sh"]["additional-jvm-opts"][1],
        "-Dcassandra.system_distributed_replication=dc1:2,legacy:3"
    );
    assert_eq!(
        plan.system_replication_annotation(),
        r#"{"dc1":2,"legacy":3}"#
    );

    k8c.metadata.annotations = Some(BTreeMap::from([(
        INITIAL_SYSTEM_REPLICATION_ANNOTATION.to_string(),
        r#"{"datacenters": ["dc1", "dc2"], "replicationFactor": 3}"#.to_string(),
    )]));
    assert_eq!(
        planned(&k8c).initial_system_replication,
        BTreeMap::from([("dc1".to_string(), 3), ("dc2".to_string(), 3)])
    );

    k8c.metadata.annotations = Some(BTreeMap::from([(
        INITIAL_SYSTEM_REPLICATION_ANNOTATION.to_string(),
        "three".to_string(),
    )]));
    assert!(matches!(
        plan_error(&k8c),
        PlanError::InvalidSystemReplication { .. }
    ));
}

#[test]
fn system_replication_is_computed_from_the_first_datacenter_and_external_ones() {
    let mut k8c = cluster(json!({"cassandra": {
        "serverVersion": "4.0.17", "storageConfig": storage(),
        "datacenters": [{"metadata": {"name": "dc1"}, "size": 1, "datacenterName": "east"}]
    }}));
    k8c.spec.external_datacenters = Some(vec!["legacy".into()]);
    let plan = planned(&k8c);
    assert_eq!(
        plan.initial_system_replication,
        BTreeMap::from([("east".to_string(), 1), ("legacy".to_string(), 3)])
    );
    // With datacenters managed elsewhere, users exist already: no datacenter creates them.
    let annotations =
        plan.datacenters[0].datacenter.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get(SKIP_USER_CREATION_ANNOTATION).map(String::as_str),
        Some("true")
    );
}

#[test]
fn labels_annotations_and_skip_user_creation() {
    let k8c = cluster(json!({"cassandra": {
        "serverVersion": "4.0.17", "storageConfig": storage(),
        "metadata": {
            "labels": {"team": "data", "k8ssandra.io/cluster-name": "hijack"},
            "annotations": {"note": "cluster"},
            "commonLabels": {"env": "prod", "tier": "gold"},
            "commonAnnotations": {"owner": "ops"},
            "pods": {"labels": {"pod": "yes"}},
            "services": {"dcService": {"labels": {"svc": "dc"}}}
        },
        "datacenters": [
            {"metadata": {"name": "dc1", "labels": {"dc": "one"}, "commonLabels": {"tier": "silver"}}, "size": 1},
            {"metadata": {"name": "dc2", "annotations": {"note": "dc2"}}, "size": 1}
        ]
    }}));
    let plan = planned(&k8c);
    let dc1 = &plan.datacenters[0].datacenter;
    let dc2 = &plan.datacenters[1].datacenter;
    let labels = dc1.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["team"], "data");
    assert_eq!(labels["dc"], "one");
    assert_eq!(
        labels["k8ssandra.io/cluster-name"], "demo",
        "ownership labels win"
    );
    assert_eq!(labels["k8ssandra.io/cluster-namespace"], "ns");
    assert_eq!(
        labels["k8ssandra.io/cleaned-up-by"],
        "k8ssandracluster-controller"
    );
    assert_eq!(labels["app.kubernetes.io/part-of"], "k8ssandra");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "federator");
    assert_eq!(labels["app.kubernetes.io/component"], "cassandra");
    assert_eq!(labels["k8ssandra.io/datacenter"], "dc1");

    let dc1_annotations = dc1.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        dc1_annotations.get("note").map(String::as_str),
        Some("cluster")
    );
    assert!(
        !dc1_annotations.contains_key(SKIP_USER_CREATION_ANNOTATION),
        "the first creates users"
    );
    let dc2_annotations = dc2.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(dc2_annotations["note"], "dc2");
    assert_eq!(dc2_annotations[SKIP_USER_CREATION_ANNOTATION], "true");

    assert_eq!(
        dc1.spec.additional_labels,
        Some(BTreeMap::from([
            ("env".to_string(), "prod".to_string()),
            ("tier".to_string(), "silver".to_string())
        ]))
    );
    assert_eq!(
        dc2.spec.additional_labels.as_ref().map(|l| l["tier"].clone()),
        Some("gold".into())
    );
    assert_eq!(
        dc1.spec.additional_annotations,
        Some(BTreeMap::from([("owner".to_string(), "ops".to_string())]))
    );
    let services = dc1.spec.additional_service_config.clone().unwrap_or_default();
    assert_eq!(
        services["dcService"],
        json!({"additionalLabels": {"svc": "dc"}})
    );
    assert_eq!(
        services["allpodsService"],
        json!({"additionalLabels": {"k8ssandra.io/cluster-name": "demo", "k8ssandra.io/cluster-namespace": "ns"}})
    );
    let pods = dc1.spec.pod_template_spec.clone().unwrap_or_default();
    assert_eq!(pods["metadata"], json!({"labels": {"pod": "yes"}}));
    assert_eq!(pods["spec"]["containers"][0]["name"], "cassandra");
}

#[test]
fn pod_template_carries_containers_volumes_and_management_api_environment() {
    let k8c = cluster(json!({"cassandra": {
        "serverVersion": "4.0.17", "storageConfig": storage(),
        "mgmtAPIHeap": "64Mi",
        "telemetry": {"mcac": {"enabled": false}},
        "podSecurityContext": {"runAsUser": 999},
        "podPriorityClassName": "high",
        "datacenters": [{"metadata": {"name": "dc1"}, "size": 1,
            "telemetry": {"vector": {"enabled": true}},
            "containers": [{"name": "cassandra", "env": [{"name": "A", "value": "1"}]}, {"name": "side", "image": "busybox"}],
            "initContainers": [{"name": "init", "image": "busybox"}],
            "extraVolumes": {
                "volumes": [{"name": "scratch", "emptyDir": {}}],
                "pvcs": [{"name": "extra", "mountPath": "/extra", "pvcSpec": {"resources": {"requests": {"storage": "1Gi"}}}}]
            }}]
    }}));
    let plan = planned(&k8c);
    let spec = &plan.datacenters[0].datacenter.spec;
    let pods = spec.pod_template_spec.clone().unwrap_or_default();
    assert_eq!(pods["spec"]["securityContext"], json!({"runAsUser": 999}));
    assert_eq!(pods["spec"]["priorityClassName"], "high");
    assert_eq!(
        pods["spec"]["containers"],
        json!([
            {"name": "cassandra", "env": [
                {"name": "A", "value": "1"},
                {"name": MANAGEMENT_API_HEAP_ENV, "value": "67108864"},
                {"name": MCAC_DISABLED_ENV, "value": "true"}
            ]},
            {"name": "side", "image": "busybox"},
            {"name": "server-system-logger"}
        ])
    );
    assert_eq!(
        pods["spec"]["initContainers"],
        json!([{"name": "init", "image": "busybox"}])
    );
    assert_eq!(
        pods["spec"]["volumes"],
        json!([{"name": "scratch", "emptyDir": {}}])
    );
    let extra: Vec<&str> =
        spec.storage_config.additional_volumes.iter().flatten().map(|v| v.name.as_str()).collect();
    assert_eq!(extra, ["extra", "vector-config", "metrics-agent-config"]);
}

/// The Cassandra container's environment variables of a planned datacenter.
fn cassandra_env(dc: &DatacenterPlan) -> Vec<(String, String)> {
    let spec = spec_json(dc);
    (spec["podTemplateSpec"]["spec"]["containers"].as_array().into_iter().flatten())
        .filter(|c| c["name"] == CASSANDRA_CONTAINER)
        .flat_map(|c| c["env"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (text(&e["name"]), text(&e["value"]))
        })
        .collect()
}

#[test]
fn mcac_gets_upstreams_default_metric_filters_unless_the_spec_names_its_own() {
    let plan = planned(&two_dcs());
    assert_eq!(
        cassandra_env(&plan.datacenters[0]),
        [(
            METRIC_FILTERS_ENV.to_string(),
            DEFAULT_METRIC_FILTERS.join(" ")
        )]
    );
    let own = two_dcs_with(json!({"cassandra": {
        "serverVersion": "4.0.17", "storageConfig": storage(),
        "telemetry": {"mcac": {"metricFilters": ["deny:org.apache.cassandra.metrics.Table"]}},
        "datacenters": [
            {"metadata": {"name": "dc1"}, "size": 3},
            {"metadata": {"name": "dc2"}, "size": 3,
             "telemetry": {"mcac": {"metricFilters": ["allow:all", "deny:x"]}}},
            {"metadata": {"name": "dc3"}, "size": 3, "telemetry": {"mcac": {"enabled": false}}}
        ]
    }}));
    let env: Vec<Vec<(String, String)>> =
        planned(&own).datacenters.iter().map(cassandra_env).collect();
    let pair = |name: &str, value: &str| vec![(name.to_string(), value.to_string())];
    assert_eq!(
        env,
        [
            pair(
                METRIC_FILTERS_ENV,
                "deny:org.apache.cassandra.metrics.Table"
            ),
            pair(METRIC_FILTERS_ENV, "allow:all deny:x"),
            pair(MCAC_DISABLED_ENV, "true"),
        ]
    );
}

fn plan_error(k8c: &K8ssandraCluster) -> PlanError {
    plan(k8c).expect_err("must not plan")
}

#[test]
fn errors_name_what_to_fix() {
    let mut k8c = two_dcs();
    k8c.metadata.namespace = None;
    assert_eq!(
        plan_error(&k8c),
        PlanError::MissingNamespace {
            name: "demo".into()
        }
    );
    k8c.metadata.name = None;
    assert_eq!(plan_error(&k8c), PlanError::MissingName);

    let no_version = cluster(json!({"cassandra": {"storageConfig": storage(),
        "datacenters": [{"metadata": {"name": "dc1"}, "size": 1}]}}));
    assert_eq!(
        plan_error(&no_version),
        PlanError::MissingServerVersion {
            datacenter: "dc1".into()
        }
    );
    assert!(plan_error(&no_version).to_string().contains("spec.cassandra.serverVersion"));

    let bad_version = cluster(
        json!({"cassandra": {"storageConfig": storage(), "serverVersion": "4.0",
        "datacenters": [{"metadata": {"name": "dc1"}, "size": 1}]}}),
    );
    assert!(matches!(
        plan_error(&bad_version),
        PlanError::InvalidServerVersion { .. }
    ));

    let no_storage = cluster(json!({"cassandra": {"serverVersion": "4.0.17",
        "datacenters": [{"metadata": {"name": "dc1"}, "size": 1}]}}));
    assert_eq!(
        plan_error(&no_storage),
        PlanError::MissingStorageConfig {
            datacenter: "dc1".into()
        }
    );

    let duplicate = cluster(
        json!({"cassandra": {"serverVersion": "4.0.17", "storageConfig": storage(),
        "datacenters": [{"metadata": {"name": "dc1"}, "size": 1}, {"metadata": {"name": "dc1"}, "size": 1}]}}),
    );
    assert_eq!(
        plan_error(&duplicate),
        PlanError::DuplicateDatacenter { name: "dc1".into() }
    );

    let same_inside = cluster(
        json!({"cassandra": {"serverVersion": "4.0.17", "storageConfig": storage(),
        "datacenters": [{"metadata": {"name": "dc1"}, "size": 1},
                        {"metadata": {"name": "dc2"}, "size": 1, "datacenterName": "dc1"}]}}),
    );
    assert!(matches!(
        plan_error(&same_inside),
        PlanError::DuplicateCassandraDatacenterName { .. }
    ));

    let bad_namespace = cluster(
        json!({"cassandra": {"serverVersion": "4.0.17", "storageConfig": storage(),
        "datacenters": [{"metadata": {"name": "dc1", "namespace": "Not_Valid"}, "size": 1}]}}),
    );
    assert!(matches!(
        plan_error(&bad_namespace),
        PlanError::InvalidNamespace { .. }
    ));

    let bad_name = cluster(
        json!({"cassandra": {"serverVersion": "4.0.17", "storageConfig": storage(),
        "datacenters": [{"metadata": {"name": "DC1"}, "size": 1}]}}),
    );
    assert!(matches!(
        plan_error(&bad_name),
        PlanError::InvalidDatacenterName { .. }
    ));

    let bad_heap = cluster(
        json!({"cassandra": {"serverVersion": "4.0.17", "storageConfig": storage(),
        "mgmtAPIHeap": "lots",
        "datacenters": [{"metadata": {"name": "dc1"}, "size": 1}]}}),
    );
    let error = plan_error(&bad_heap);
    assert!(matches!(error, PlanError::ManagementApiHeap { .. }));
    assert!(
        error.to_string().starts_with("datacenter dc1: mgmtAPIHeap:"),
        "{error}"
    );

    let bad_config = cluster(
        json!({"cassandra": {"serverVersion": "4.0.17", "storageConfig": storage(),
        "config": {"jvmOptions": {"heap_max_size": "big"}},
        "datacenters": [{"metadata": {"name": "dc1"}, "size": 1}]}}),
    );
    let error = plan_error(&bad_config);
    assert!(
        error.to_string().starts_with("datacenter dc1: config.jvmOptions.heap_max_size"),
        "{error}"
    );
}

/// `two_dcs` with `extra` added to its spec.
fn two_dcs_with(extra: Value) -> K8ssandraCluster {
    let mut spec = serde_json::to_value(&two_dcs().spec).expect("serializes");
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    cluster(spec)
}

#[test]
fn reaper_gets_its_own_role_in_every_datacenter() {
    let plan = planned(&two_dcs_with(json!({"reaper": {}})));
    for dc in &plan.datacenters {
        assert_eq!(
            spec_json(dc)["users"],
            json!([{"secretName": "demo-reaper", "superuser": true}]),
            "{}",
            dc.name
        );
        // HTTP management (the default): JMX stays local.
        assert!(
            !cassandra_env(dc).iter().any(|(name, _)| name == LOCAL_JMX_ENV),
            "{}",
            dc.name
        );
    }
    let own = planned(&two_dcs_with(
        json!({"reaper": {"cassandraUserSecretRef": {"name": "reaper-cql"}}}),
    ));
    assert_eq!(
        spec_json(&own.datacenters[0])["users"],
        json!([{"secretName": "reaper-cql", "superuser": true}])
    );
    for spec in [
        json!({}),
        json!({"auth": false, "reaper": {}}),
        json!({"reaper": {"reaperRef": {"name": "shared"}}}),
    ] {
        let plan = planned(&two_dcs_with(spec.clone()));
        assert_eq!(plan.datacenters[0].datacenter.spec.users, None, "{spec}");
    }
}

#[test]
fn reaper_over_jmx_opens_jmx_to_other_hosts_with_cassandra_logins() {
    let plan = planned(&two_dcs_with(
        json!({"reaper": {"httpManagement": {"enabled": false}}}),
    ));
    for dc in &plan.datacenters {
        let spec = spec_json(dc);
        assert!(
            cassandra_env(dc).contains(&(LOCAL_JMX_ENV.to_string(), "no".to_string())),
            "{}",
            dc.name
        );
        let flags: Vec<&str> = spec["config"]["cassandra-env-sh"]["additional-jvm-opts"]
            .as_array()
            .expect("flags")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for wanted in remote_jmx_flags(true, true) {
            assert!(flags.contains(&wanted.as_str()), "{}: {flags:?}", dc.name);
        }
    }
    let without_auth = planned(&two_dcs_with(
        json!({"auth": false, "reaper": {"httpManagement": {"enabled": false}}}),
    ));
    let flags = &spec_json(&without_auth.datacenters[0])["config"]["cassandra-env-sh"]["additional-jvm-opts"];
    assert!(
        flags
            .as_array()
            .expect("flags")
            .contains(&json!("-Dcom.sun.management.jmxremote.authenticate=false")),
        "{flags}"
    );
    assert!(!flags.to_string().contains("CassandraLogin"), "{flags}");
}

#[test]
fn internode_encryption_mounts_the_stores_and_points_cassandra_yaml_at_them() {
    let k8c = two_dcs_with(json!({"cassandra": {
        "serverVersion": "4.0.17",
        "storageConfig": storage(),
        "config": {"cassandraYaml": {"server_encryption_options": {"internode_encryption": "all"}}},
        "serverEncryptionStores": {
            "keystoreSecretRef": {"name": "stores"}, "truststoreSecretRef": {"name": "stores"}
        },
        "datacenters": [
            {"metadata": {"name": "dc1"}, "k8sContext": "east", "size": 3},
            {"metadata": {"name": "dc2"}, "k8sContext": "west", "size": 3,
             "config": {"cassandraYaml": {"server_encryption_options": {"internode_encryption": "none"}}}}
        ]
    }}));
    let plan = planned(&k8c);
    let dc1 = spec_json(&plan.datacenters[0]);
    let options = &dc1["config"]["cassandra-yaml"]["server_encryption_options"];
    assert_eq!(options["keystore"], "/mnt/server-keystore/keystore");
    assert_eq!(options["truststore"], "/mnt/server-truststore/truststore");
    assert_eq!(options.get("keystore_password"), None, "filled in later");
    assert_eq!(
        dc1["podTemplateSpec"]["spec"]["containers"][0]["volumeMounts"],
        json!([
            {"name": "server-keystore", "mountPath": "/mnt/server-keystore"},
            {"name": "server-truststore", "mountPath": "/mnt/server-truststore"}
        ])
    );
    let volumes: Vec<&str> = dc1["podTemplateSpec"]["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter_map(|v| v["secret"]["secretName"].as_str())
        .collect();
    assert_eq!(volumes, ["stores", "stores"]);
    assert_eq!(plan.datacenters[0].passwords.len(), 2);
    assert_eq!(plan.datacenters[0].store_secrets, ["stores"]);
    // dc2 turns it off for itself.
    assert!(plan.datacenters[1].passwords.is_empty());
    assert_eq!(
        spec_json(&plan.datacenters[1])["config"]["cassandra-yaml"]["server_encryption_options"],
        json!({"internode_encryption": "none"})
    );

    let unnamed = two_dcs_with(json!({"cassandra": {
        "serverVersion": "4.0.17", "storageConfig": storage(),
        "config": {"cassandraYaml": {"client_encryption_options": {"enabled": true}}},
        "clientEncryptionStores": {"keystoreSecretRef": {"name": "ks"}, "truststoreSecretRef": {}},
        "datacenters": [{"metadata": {"name": "dc1"}, "size": 3}]
    }}));
    assert_eq!(
        plan_error(&unnamed).to_string(),
        "datacenter dc1: spec.cassandra.clientEncryptionStores.keystoreSecretRef and truststoreSecretRef must name Secrets: cassandra.yaml turns client encryption on"
    );
}

fn init_container_names(pod_template: &Value) -> Vec<&str> {
    pod_template["spec"]["initContainers"]
        .as_array()
        .expect("init containers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect()
}

#[test]
fn a_per_node_config_map_is_merged_by_an_init_container_after_the_config_builder() {
    let k8c = cluster(json!({"cassandra": {
        "serverVersion": "4.1.5", "storageConfig": storage(),
        "datacenters": [
            {"metadata": {"name": "dc1"}, "size": 3, "perNodeConfigMapRef": {"name": "per-node"},
             "initContainers": [{"name": "mine", "image": "busybox"}]},
            {"metadata": {"name": "dc2"}, "size": 3, "perNodeConfigMapRef": {"name": "other"},
             "perNodeConfigInitContainerImage": "example.com/yq:1"},
            {"metadata": {"name": "dc3"}, "size": 3}
        ]
    }}));
    let plan = planned(&k8c);
    let dc1 = spec_json(&plan.datacenters[0]);
    assert_eq!(
        init_container_names(&dc1["podTemplateSpec"]),
        [
            "mine",
            SERVER_CONFIG_INIT_CONTAINER,
            PER_NODE_CONFIG_INIT_CONTAINER
        ]
    );
    let merger = &dc1["podTemplateSpec"]["spec"]["initContainers"][2];
    assert_eq!(merger["image"], DEFAULT_PER_NODE_CONFIG_IMAGE);
    assert!(
        merger["command"][2].as_str().is_some_and(|c| c.contains("/per-node-config/${POD_NAME}_*")),
        "{merger}"
    );
    assert_eq!(
        dc1["podTemplateSpec"]["spec"]["volumes"],
        json!([{"name": "per-node-config", "configMap": {"name": "per-node"}}])
    );
    let dc2 = spec_json(&plan.datacenters[1]);
    assert_eq!(
        dc2["podTemplateSpec"]["spec"]["initContainers"][1]["image"],
        "example.com/yq:1"
    );
    assert!(spec_json(&plan.datacenters[2])["podTemplateSpec"]["spec"]["initContainers"].is_null());
}

#[test]
fn few_vnodes_give_each_datacenter_a_per_node_config_map_of_initial_tokens() {
    let k8c = cluster(json!({"cassandra": {
        "clusterName": "My Cluster",
        "serverVersion": "4.1.5", "storageConfig": storage(),
        "config": {"cassandraYaml": {"num_tokens": 4}},
        "datacenters": [
            {"metadata": {"name": "dc1"}, "k8sContext": "east", "size": 3,
             "racks": [{"name": "r1"}, {"name": "r2"}, {"name": "r3"}]},
            {"metadata": {"name": "dc2", "namespace": "other"}, "k8sContext": "west", "size": 2,
             "datacenterName": "West"}
        ]
    }}));
    let plan = planned(&k8c);
    let dc1 = &plan.datacenters[0];
    let config = dc1.per_node_config.as_ref().expect("dc1's per-node config");
    assert_eq!(config.name, "mycluster-dc1-per-node-config");
    assert_eq!(config.namespace, "ns");
    assert_eq!(config.labels["k8ssandra.io/datacenter"], "dc1");
    assert_eq!(
        config.data.keys().collect::<Vec<_>>(),
        [
            "mycluster-dc1-r1-sts-0_cassandra.yaml",
            "mycluster-dc1-r2-sts-0_cassandra.yaml",
            "mycluster-dc1-r3-sts-0_cassandra.yaml"
        ]
    );
    let first = &config.data["mycluster-dc1-r1-sts-0_cassandra.yaml"];
    assert!(
        first.starts_with("\ninitial_token: -9223372036854775808,"),
        "{first}"
    );
    assert_eq!(first.matches(',').count(), 3, "num_tokens tokens: {first}");

    let template = &spec_json(dc1)["podTemplateSpec"];
    assert_eq!(
        template["metadata"]["annotations"]["k8ssandra.io/per-node-config-hash"],
        config.content_hash()
    );
    assert_eq!(
        init_container_names(template),
        [SERVER_CONFIG_INIT_CONTAINER, PER_NODE_CONFIG_INIT_CONTAINER]
    );
    assert!(
        template["spec"]["volumes"]
            .as_array()
            .expect("volumes")
            .contains(&json!({"name": "per-node-config", "configMap": {"name": config.name}}))
    );

    // Pods are named after the Cassandra datacenter name, in their own namespace; RF is capped
    // by the size.
    let dc2 = plan.datacenters[1].per_node_config.as_ref().expect("dc2's");
    assert_eq!(
        (dc2.name.as_str(), dc2.namespace.as_str()),
        ("mycluster-west-per-node-config", "other")
    );
    assert_eq!(
        dc2.data.keys().collect::<Vec<_>>(),
        [
            "mycluster-west-default-sts-0_cassandra.yaml",
            "mycluster-west-default-sts-1_cassandra.yaml"
        ]
    );
    assert_ne!(config.content_hash(), dc2.content_hash());
}

#[test]
fn default_vnodes_or_a_users_per_node_config_leave_tokens_to_cassandra() {
    let default_vnodes = planned(&two_dcs());
    assert!(default_vnodes.datacenters.iter().all(|dc| dc.per_node_config.is_none()));
    assert!(spec_json(&default_vnodes.datacenters[0])["podTemplateSpec"]["metadata"].is_null());

    let with_users = cluster(json!({"cassandra": {
        "serverVersion": "4.1.5", "storageConfig": storage(),
        "config": {"cassandraYaml": {"num_tokens": 4}},
        "datacenters": [
            {"metadata": {"name": "dc1"}, "size": 3,
             "perNodeConfigMapRef": {"name": "demo-dc1-per-node-config"}},
            {"metadata": {"name": "dc2"}, "size": 3}
        ]
    }}));
    let plan = planned(&with_users);
    assert!(plan.datacenters.iter().all(|dc| dc.per_node_config.is_none()));
    // A user's ConfigMap named as a generated one would be is never taken for one.
    assert_eq!(
        plan.datacenters[0].dropped_config_maps,
        ["demo-dc1-cass-vector", "demo-dc1-medusa"]
    );
    assert_eq!(
        plan.datacenters[1].dropped_config_maps,
        [
            "demo-dc2-cass-vector",
            "demo-dc2-medusa",
            "demo-dc2-per-node-config"
        ]
    );
    assert!(spec_json(&plan.datacenters[1])["podTemplateSpec"]["spec"]["initContainers"].is_null());
}

#[test]
fn a_users_per_node_config_map_is_named_for_reading_and_its_hash_restarts_the_pods() {
    let k8c = cluster(json!({"cassandra": {
        "serverVersion": "4.1.5", "storageConfig": storage(),
        "datacenters": [
            {"metadata": {"name": "dc1"}, "size": 3, "perNodeConfigMapRef": {"name": "per-node"}},
            {"metadata": {"name": "dc2"}, "size": 3}
        ]
    }}));
    let mut plan = planned(&k8c);
    assert_eq!(
        plan.datacenters[0].user_per_node_config.as_deref(),
        Some("per-node")
    );
    assert_eq!(plan.datacenters[1].user_per_node_config, None);
    plan.datacenters[0].set_user_per_node_config_hash("0123abcd");
    assert_eq!(
        spec_json(&plan.datacenters[0])["podTemplateSpec"]["metadata"]["annotations"]["k8ssandra.io/per-node-config-hash"],
        "0123abcd"
    );
}

#[test]
fn every_datacenter_mounts_its_metrics_agent_configuration() {
    let k8c = cluster(json!({"cassandra": {
        "serverVersion": "4.1.5", "storageConfig": storage(),
        "telemetry": {"cassandra": {"endpoint": {"address": "0.0.0.0", "port": "9000"}}},
        "datacenters": [
            {"metadata": {"name": "dc1"}, "size": 3},
            {"metadata": {"name": "dc2"}, "size": 3, "telemetry": {"cassandra": {
                "endpoint": {"port": "10000"},
                "relabels": [{"sourceLabels": ["keyspace"], "regex": "scratch", "action": "drop"}]}}}
        ]
    }}));
    let plan = planned(&k8c);
    let agent = |index: usize| {
        let config = &plan.datacenters[index].metrics_agent_config;
        let yaml: Value =
            serde_saphyr::from_str(&config.data["metrics-collector.yaml"]).expect("valid YAML");
        (config.name.clone(), yaml)
    };
    let (name, dc1) = agent(0);
    assert_eq!(name, "demo-dc1-metrics-agent-config");
    assert_eq!(
        dc1["endpoint"],
        json!({"address": "0.0.0.0", "port": "9000"})
    );
    assert_eq!(
        dc1["relabels"][0],
        json!({"sourceLabels": ["table"], "regex": ".+", "targetLabel": "should_drop",
            "replacement": "true"}),
        "upstream's default filter of per-table metrics"
    );
    let (_, dc2) = agent(1);
    assert_eq!(
        dc2,
        json!({"endpoint": {"address": "0.0.0.0", "port": "10000"},
            "relabels": [{"sourceLabels": ["keyspace"], "regex": "scratch", "action": "drop"}]}),
        "the datacenter's relabels replace the defaults; its endpoint wins key by key"
    );
    assert!(
        spec_json(&plan.datacenters[0])["storageConfig"]["additionalVolumes"]
            .as_array()
            .expect("additional volumes")
            .contains(&json!({"name": "metrics-agent-config",
                "mountPath": "/opt/management-api/configs",
                "volumeSource": {"configMap": {"name": "demo-dc1-metrics-agent-config",
                    "items": [{"key": "metrics-collector.yaml", "path": "metrics-collector.yaml"}]}}}))
    );
    let broken = cluster(json!({"cassandra": {
        "serverVersion": "4.1.5", "storageConfig": storage(),
        "telemetry": {"cassandra": {"relabels": "drop everything"}},
        "datacenters": [{"metadata": {"name": "dc1"}, "size": 3}]
    }}));
    assert!(matches!(
        super::plan(&broken),
        Err(PlanError::MetricsAgent { datacenter, .. }) if datacenter == "dc1"
    ));
}

#[test]
fn vector_runs_in_the_system_logger_with_its_generated_configuration() {
    let k8c = cluster(json!({"cassandra": {
        "clusterName": "My Cluster",
        "serverVersion": "4.1.5", "storageConfig": storage(),
        "telemetry": {"vector": {"enabled": true, "image": "timberio/vector:0.39.0-alpine",
            "components": {"sinks": [{"name": "all", "type": "console", "inputs": ["parse_cassandra_log"]}]}}},
        "datacenters": [
            {"metadata": {"name": "dc1"}, "size": 3,
             "telemetry": {"vector": {"resources": {"limits": {"memory": "1Gi"}},
                 "components": {"sources": [{"name": "systemlog", "type": "file",
                     "config": "include = [ \"/custom.log\" ]"}]}}}},
            {"metadata": {"name": "dc2"}, "size": 3, "telemetry": {"vector": {"enabled": false}}}
        ]
    }}));
    let plan = planned(&k8c);
    let dc1 = &plan.datacenters[0];
    let config = dc1.vector_config.as_ref().expect("dc1's Vector configuration");
    assert_eq!(config.name, "mycluster-dc1-cass-vector");
    assert_eq!(config.labels["k8ssandra.io/datacenter"], "dc1");
    let toml = &config.data["vector.toml"];
    assert!(
        toml.contains("[sinks.all]") && toml.contains("[transforms.parse_cassandra_log]"),
        "{toml}"
    );
    assert!(
        toml.contains("include = [ \"/custom.log\" ]") && toml.contains("[sinks.all]"),
        "the datacenter's sources with the cluster's sinks: {toml}"
    );
    assert_eq!(
        (dc1.generated_config_maps().map(|c| c.name.as_str())).collect::<Vec<_>>(),
        [
            "mycluster-dc1-cass-vector",
            "mycluster-dc1-metrics-agent-config"
        ]
    );

    let spec = spec_json(dc1);
    assert!(
        spec["podTemplateSpec"]["spec"]["containers"].as_array().expect("containers").contains(
            &json!({"name": "server-system-logger", "image": "timberio/vector:0.39.0-alpine"})
        )
    );
    assert_eq!(
        spec["systemLoggerResources"],
        json!({"limits": {"memory": "1Gi"}}),
        "the datacenter's resources win"
    );
    assert!(
        spec["storageConfig"]["additionalVolumes"]
            .as_array()
            .expect("additional volumes")
            .contains(&json!({"name": "vector-config", "mountPath": "/etc/vector",
                "volumeSource": {"configMap": {"name": "mycluster-dc1-cass-vector"}}}))
    );

    // Turned off in dc2: nothing of it there, and its ConfigMap goes if it was mounted.
    let dc2 = &plan.datacenters[1];
    assert!(dc2.vector_config.is_none());
    assert!(spec_json(dc2)["systemLoggerResources"].is_null());
    assert_eq!(
        dc2.dropped_config_maps,
        [
            "mycluster-dc2-cass-vector",
            "mycluster-dc2-medusa",
            "mycluster-dc2-per-node-config"
        ]
    );
    assert_eq!(
        dc1.dropped_config_maps,
        ["mycluster-dc1-medusa", "mycluster-dc1-per-node-config"]
    );
}

#[test]
fn a_bad_vector_setting_is_a_plan_error_naming_the_datacenter() {
    let k8c = cluster(json!({"cassandra": {
        "serverVersion": "4.1.5", "storageConfig": storage(),
        "telemetry": {"vector": {"enabled": true, "scrapeInterval": "often"}},
        "datacenters": [{"metadata": {"name": "dc1"}, "size": 3}]
    }}));
    let error = plan(&k8c).expect_err("refused").to_string();
    assert!(
        error.contains("dc1") && error.contains("scrapeInterval"),
        "{error}"
    );
}

/// Two datacenters of `version` with `config` at the cluster level.
fn versioned(version: &str, config: Value) -> K8ssandraCluster {
    cluster(json!({"cassandra": {
        "serverVersion": version, "storageConfig": storage(), "config": config,
        "datacenters": [
            {"metadata": {"name": "dc1"}, "k8sContext": "east", "size": 3},
            {"metadata": {"name": "dc2"}, "k8sContext": "west", "size": 3}
        ]
    }}))
}

fn with_running(num_tokens: &[(&str, i64)]) -> PlanInputs {
    PlanInputs {
        running: running(num_tokens),
        ..PlanInputs::default()
    }
}

fn running(num_tokens: &[(&str, i64)]) -> RunningDatacenters {
    RunningDatacenters {
        num_tokens: num_tokens.iter().map(|(dc, n)| (dc.to_string(), *n)).collect(),
    }
}

fn num_tokens_of(plan: &ClusterPlan) -> Vec<Value> {
    plan.datacenters
        .iter()
        .map(|dc| spec_json(dc)["config"]["cassandra-yaml"]["num_tokens"].clone())
        .collect()
}

#[test]
fn an_upgrade_from_3_11_keeps_the_num_tokens_existing_datacenters_run_with() {
    let before = planned(&versioned("3.11.17", json!({})));
    assert_eq!(num_tokens_of(&before), [json!(256), json!(256)]);
    // Upgraded to 4.1 with dc1 running and dc2 not created yet: dc1 keeps 256, dc2 starts with
    // 4.x's default.
    let upgraded = versioned("4.1.5", json!({}));
    let plan = plan_with(&upgraded, &with_running(&[("dc1", 256)])).expect("plans");
    assert_eq!(num_tokens_of(&plan), [json!(256), json!(16)]);
    assert!(plan.datacenters.iter().all(|dc| dc.num_tokens_change.is_none()));
    assert_eq!(
        spec_json(&plan.datacenters[0])["serverVersion"],
        "4.1.5",
        "the rest of the upgrade goes ahead"
    );
    // Without running datacenters (a new cluster), the version's default.
    assert_eq!(num_tokens_of(&planned(&upgraded)), [json!(16), json!(16)]);
}

#[test]
fn a_num_tokens_change_of_an_existing_datacenter_is_refused_and_the_running_value_kept() {
    let k8c = cluster(json!({"cassandra": {
        "serverVersion": "4.1.5", "storageConfig": storage(),
        "config": {"cassandraYaml": {"num_tokens": 16}},
        "datacenters": [
            {"metadata": {"name": "dc1"}, "k8sContext": "east", "size": 3},
            {"metadata": {"name": "dc2"}, "k8sContext": "west", "size": 3,
             "config": {"cassandraYaml": {"num_tokens": "256"}}},
            {"metadata": {"name": "dc3"}, "k8sContext": "west", "size": 3}
        ]
    }}));
    let plan = plan_with(&k8c, &with_running(&[("dc1", 256), ("dc2", 256)])).expect("plans");
    let change =
        plan.datacenters[0].num_tokens_change.as_ref().expect("dc1 runs 256, the spec asks 16");
    assert_eq!(
        change,
        &NumTokensChange {
            running: 256,
            requested: "16".into()
        }
    );
    let message = change.to_string();
    assert!(
        message.contains("Cassandra refuses to start a node whose num_tokens changed")
            && message.contains("set num_tokens back to 256"),
        "{message}"
    );
    // dc2 asks the value it runs with, as text: no change; dc3 is new.
    assert_eq!(plan.datacenters[1].num_tokens_change, None);
    assert_eq!(plan.datacenters[2].num_tokens_change, None);
    assert_eq!(
        num_tokens_of(&plan),
        [json!(256), json!("256"), json!(16)],
        "the refused datacenter's desired object keeps its running value"
    );
}

#[test]
fn token_settings_that_size_the_token_planner_are_bounded() {
    for (yaml, field) in [
        (
            json!({"num_tokens": -1,
                   "allocate_tokens_for_local_replication_factor": -4611686018427387904_i64}),
            "config.cassandraYaml.num_tokens",
        ),
        (
            json!({"num_tokens": 4, "allocate_tokens_for_local_replication_factor": 1_000_000}),
            "config.cassandraYaml.allocate_tokens_for_local_replication_factor",
        ),
    ] {
        let error = plan(&versioned("4.1.5", json!({"cassandraYaml": yaml}))).expect_err("refused");
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("datacenter dc1: {field} is ")),
            "{message}"
        );
    }
}

#[test]
fn sizes_racks_and_seeds_beyond_the_crds_maxima_name_their_field() {
    let racks: Vec<Value> = (0..=MAX_RACKS).map(|i| json!({"name": format!("r{i}")})).collect();
    let seeds: Vec<String> = (0..=MAX_ADDITIONAL_SEEDS).map(|i| format!("10.0.0.{i}")).collect();
    for (edit, field) in [
        (
            json!({"datacenters": [{"metadata": {"name": "dc1"}, "size": 1_000_000}]}),
            "spec.cassandra.datacenters[0].size has 1000000 nodes; at most 1000",
        ),
        (
            json!({"datacenters": [{"metadata": {"name": "dc1"}, "size": 3, "racks": racks}]}),
            "spec.cassandra.datacenters[0].racks has 65 entries; at most 64",
        ),
        (
            json!({"racks": racks}),
            "spec.cassandra.racks has 65 entries; at most 64",
        ),
        (
            json!({"additionalSeeds": seeds}),
            "spec.cassandra.additionalSeeds has 101 entries; at most 100",
        ),
    ] {
        let mut spec = json!({"serverVersion": "4.1.5", "storageConfig": storage(),
            "datacenters": [{"metadata": {"name": "dc1"}, "size": 3}]});
        for (key, value) in edit.as_object().expect("an object") {
            spec[key] = value.clone();
        }
        let message = plan_error(&cluster(json!({"cassandra": spec}))).to_string();
        assert!(message.starts_with(field), "{message}");
    }
}

#[test]
fn a_list_with_a_cassandra_yaml_nested_3000_levels_deep_is_read_and_that_cluster_refused() {
    let mut nested = String::from("1");
    for _ in 0..3000 {
        nested = format!("{{\"a\":{nested}}}");
    }
    let deep = format!(
        r#"{{"apiVersion":"k8ssandra.io/v1alpha1","kind":"K8ssandraCluster",
            "metadata":{{"name":"deep","namespace":"ns"}},
            "spec":{{"cassandra":{{"serverVersion":"4.1.5","config":{{"cassandraYaml":{nested}}},
                "datacenters":[{{"metadata":{{"name":"dc1"}},"size":1}}]}}}}}}"#
    );
    let healthy = serde_json::to_string(&two_dcs()).expect("serializes");
    // A list as the API server answers a watcher: one bad item must not fail the others.
    let list = format!(
        r#"{{"apiVersion":"k8ssandra.io/v1alpha1","kind":"K8ssandraClusterList","metadata":{{}},"items":[{deep},{healthy}]}}"#
    );
    let list: kube::core::ObjectList<K8ssandraCluster> =
        serde_json::from_str(&list).expect("the list decodes");
    let message = plan_error(&list.items[0]).to_string();
    assert!(
        message.starts_with(
            "spec.cassandra.config.cassandraYaml.a.a.a.a… is nested more than 100 levels deep"
        ),
        "{message}"
    );
    assert_eq!(planned(&list.items[1]), planned(&two_dcs()));
}

#[test]
fn cassandra_yaml_nested_within_the_limit_is_read_as_written() {
    let mut nested = json!("leaf");
    for _ in 0..90 {
        nested = json!({"a": nested});
    }
    let k8c = cluster(json!({"cassandra": {
        "serverVersion": "4.1.5", "storageConfig": storage(),
        "config": {"cassandraYaml": {"deep": nested.clone()}},
        "datacenters": [{"metadata": {"name": "dc1"}, "size": 1}]
    }}));
    let plan = planned(&k8c);
    assert_eq!(
        spec_json(&plan.datacenters[0])["config"]["cassandra-yaml"]["deep"],
        nested
    );
}

#[test]
fn a_generated_config_map_change_updates_the_datacenters_metadata_not_its_pods() {
    let with_relabels = |regex: &str| {
        cluster(json!({"cassandra": {
            "serverVersion": "4.1.5", "storageConfig": storage(),
            "telemetry": {"cassandra": {"relabels": [
                {"sourceLabels": ["keyspace"], "regex": regex, "action": "drop"}]}},
            "datacenters": [{"metadata": {"name": "dc1"}, "size": 3}]
        }}))
    };
    let before = planned(&with_relabels("scratch"));
    let after = planned(&with_relabels("tmp"));
    let hash = |plan: &ClusterPlan| {
        plan.datacenters[0].generated_config_hash().map(str::to_string).expect("a hash")
    };
    assert_ne!(
        hash(&before),
        hash(&after),
        "the ConfigMap's content changed"
    );
    assert_eq!(hash(&before), hash(&planned(&with_relabels("scratch"))));
    assert_eq!(
        spec_json(&before.datacenters[0]),
        spec_json(&after.datacenters[0]),
        "no pod restarts for it"
    );
}

#[test]
fn a_medusa_configuration_is_merged_under_the_clusters_storage_and_awaited_until_read() {
    let mut k8c = two_dcs();
    k8c.spec.medusa = Some(Box::new(
        serde_json::from_value(json!({
            "medusaConfigurationRef": {"name": "shared"},
            "storageProperties": {"prefix": "demo", "bucketName": "own-bucket"}
        }))
        .expect("medusa"),
    ));
    // Not read yet: planned with the cluster's own settings, storage not checked, awaited.
    let unread = planned(&k8c);
    assert!(unread.medusa_configuration_missing.is_some());
    let inputs = PlanInputs {
        medusa_configuration: Some(Ok(serde_json::from_value(json!({
            "storageProvider": "s3", "bucketName": "shared-bucket", "region": "eu-west-1",
            "storageSecretRef": {"name": "bucket-key"}
        }))
        .expect("storage"))),
        ..PlanInputs::default()
    };
    let merged = plan_with(&k8c, &inputs).expect("plans");
    assert_eq!(merged.medusa_configuration_missing, None);
    let ini = &merged.datacenters[0].medusa_config.as_ref().expect("ini").data["medusa.ini"];
    for line in [
        "storage_provider = s3",
        "bucket_name = own-bucket",
        "region = eu-west-1",
        "prefix = demo",
        "key_file = /etc/medusa-secrets/credentials",
    ] {
        assert!(ini.lines().any(|l| l == line), "{line} missing in\n{ini}");
    }
    let missing = PlanInputs {
        medusa_configuration: Some(Err("waiting for it".into())),
        ..PlanInputs::default()
    };
    let waiting = plan_with(&k8c, &missing).expect("plans");
    assert_eq!(
        waiting.medusa_configuration_missing.as_deref(),
        Some("waiting for it")
    );
    // As upstream, a reference needs the cluster's own prefix.
    let mut no_prefix = k8c.clone();
    if let Some(medusa) = no_prefix.spec.medusa.as_mut()
        && let Some(storage) = medusa.storage_properties.as_mut()
    {
        storage.prefix = None;
    }
    let refused = plan_with(&no_prefix, &inputs).expect_err("refused");
    assert!(
        refused.to_string().contains("prefix is required"),
        "{refused}"
    );
}
