use serde_json::json;

use super::*;
use crate::api::replicated_secret::{
    REPLICATION_DONE, ReplicatedSecretStatus, ReplicationCondition,
};
use crate::federation::observed::ObservedCluster;
use crate::federation::plan::plan;
use crate::federation::rollout::tests::absent;
use crate::federation::rollout::{Decision, WaitReason, decide};

fn cluster(extra: serde_json::Value) -> K8ssandraCluster {
    let mut value = json!({
        "apiVersion": "k8ssandra.io/v1alpha1", "kind": "K8ssandraCluster",
        "metadata": {"name": "demo", "namespace": "ns", "uid": "uid-1"},
        "spec": {"cassandra": {
            "clusterName": "My Cluster",
            "serverVersion": "4.1.5",
            "storageConfig": {"cassandraDataVolumeClaimSpec": {"storageClassName": "standard"}},
            "datacenters": [
                {"metadata": {"name": "dc1"}, "size": 3},
                {"metadata": {"name": "dc2"}, "k8sContext": "east", "size": 3},
                {"metadata": {"name": "dc3", "namespace": "other"}, "k8sContext": "east", "size": 3},
                {"metadata": {"name": "dc4", "namespace": "apps"}, "size": 3},
                {"metadata": {"name": "dc5"}, "k8sContext": "east", "size": 3}
            ]
        }}
    });
    json_merge(&mut value, extra);
    serde_json::from_value(value).expect("valid K8ssandraCluster")
}

fn json_merge(base: &mut serde_json::Value, extra: serde_json::Value) {
    match (base, extra) {
        (serde_json::Value::Object(base), serde_json::Value::Object(extra)) => {
            for (key, value) in extra {
                json_merge(base.entry(key).or_insert(serde_json::Value::Null), value);
            }
        }
        (base, extra) => *base = extra,
    }
}

fn targets_of(rs: &ReplicatedSecret) -> Vec<(String, String)> {
    rs.spec
        .replication_targets
        .iter()
        .flatten()
        .map(|t| {
            (
                t.context().to_string(),
                t.namespace.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn a_cluster_gets_a_generated_superuser_and_one_target_per_remote_region_and_namespace() {
    let k8c = cluster(json!({}));
    let cluster_plan = plan(&k8c).expect("plans");
    let secrets = secrets_plan(&k8c, &cluster_plan);
    let superuser = secrets.superuser().cloned().expect("superuser");
    assert_eq!(
        superuser.name, "mycluster-superuser",
        "cass-operator's default name"
    );
    assert!(superuser.generated);
    assert_eq!(superuser.username, "My Cluster");
    // Every datacenter's CassandraDatacenter points at it.
    for dc in &cluster_plan.datacenters {
        assert_eq!(
            dc.datacenter.spec.superuser_secret_name.as_deref(),
            Some("mycluster-superuser")
        );
    }

    let rs = secrets.replicated.expect("ReplicatedSecret");
    assert_eq!(rs.metadata.name.as_deref(), Some("demo"));
    assert_eq!(rs.metadata.namespace.as_deref(), Some("ns"));
    // dc1 is in the hub's own namespace: no copy; dc5 shares dc2's target.
    assert_eq!(
        targets_of(&rs),
        vec![
            ("east".to_string(), "ns".to_string()),
            ("east".to_string(), "other".to_string()),
            (String::new(), "apps".to_string()),
        ]
    );
    let selector = rs.spec.selector.and_then(|s| s.match_labels).expect("selector");
    assert_eq!(selector, replication_labels(&cluster_plan));
    let owner = rs.metadata.owner_references.expect("owner")[0].clone();
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("K8ssandraCluster", "demo")
    );
}

#[test]
fn the_generated_secret_is_selected_by_the_replicated_secret_and_owned_by_the_cluster() {
    let k8c = cluster(json!({}));
    let cluster_plan = plan(&k8c).expect("plans");
    let secrets = secrets_plan(&k8c, &cluster_plan);
    let superuser = secrets.superuser().cloned().expect("superuser");
    let secret = generated_secret(&k8c, &cluster_plan, &superuser, "pw");
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    let selector = secrets
        .replicated
        .and_then(|rs| rs.spec.selector)
        .and_then(|s| s.match_labels)
        .expect("selector");
    assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let data = secret.data.expect("data");
    assert_eq!(data["username"].0, b"My Cluster");
    assert_eq!(data["password"].0, b"pw");
    assert_eq!(
        secret.metadata.owner_references.expect("owner")[0].uid,
        "uid-1"
    );
}

#[test]
fn a_user_secret_is_used_as_named_and_external_secrets_need_nothing() {
    let named = cluster(json!({"spec": {"cassandra": {"superuserSecretRef": {"name": "mine"}}}}));
    let secrets = secrets_plan(&named, &plan(&named).expect("plans"));
    let superuser = secrets.superuser().cloned().expect("superuser");
    assert_eq!(superuser.name, "mine");
    assert!(!superuser.generated);
    assert!(
        secrets.replicated.is_some(),
        "a user's secret is replicated too"
    );

    let external = cluster(json!({"spec": {"secretsProvider": "external"}}));
    let external_plan = plan(&external).expect("plans");
    let secrets = secrets_plan(&external, &external_plan);
    assert_eq!(secrets.superuser(), None);
    assert_eq!(secrets.replicated, None);
    assert!(pending_datacenters(&external_plan, &secrets, None).is_empty());
}

#[test]
fn passwords_are_long_random_and_alphanumeric() {
    let first = generate_password();
    let second = generate_password();
    assert!(first.len() >= 20);
    assert!(first.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(first, second);
}

fn replicated_to(rs: &mut ReplicatedSecret, context: &str, namespace: &str, done: bool) {
    rs.status
        .get_or_insert_with(ReplicatedSecretStatus::default)
        .conditions
        .get_or_insert_default()
        .push(ReplicationCondition {
            cluster: context.into(),
            namespace: Some(namespace.into()),
            type_: REPLICATION_DONE.into(),
            status: if done { "True" } else { "False" }.into(),
            message: Some("region \"east\" is unavailable".into()),
            ..Default::default()
        });
}

#[test]
fn datacenters_outside_the_hub_namespace_wait_until_their_target_is_replicated() {
    let k8c = cluster(json!({}));
    let cluster_plan = plan(&k8c).expect("plans");
    let secrets = secrets_plan(&k8c, &cluster_plan);
    let none_yet = pending_datacenters(&cluster_plan, &secrets, None);
    assert_eq!(
        none_yet.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["dc2", "dc3", "dc4", "dc5"],
        "dc1 uses the source itself"
    );

    let mut live = secrets.replicated.clone().expect("rs");
    replicated_to(&mut live, "east", "ns", true);
    replicated_to(&mut live, "east", "other", false);
    let pending = pending_datacenters(&cluster_plan, &secrets, Some(&live));
    assert_eq!(
        pending.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["dc3", "dc4"]
    );
    assert!(
        pending["dc3"].contains("mycluster-superuser"),
        "{}",
        pending["dc3"]
    );
    assert!(
        pending["dc3"].contains("unavailable"),
        "the target's condition says why"
    );
}

#[test]
fn decide_creates_a_datacenter_only_once_its_secrets_are_there() {
    let k8c = cluster(json!({"spec": {"cassandra": {"datacenters": [
        {"metadata": {"name": "dc1"}, "k8sContext": "east", "size": 3}
    ]}}}));
    let cluster_plan = plan(&k8c).expect("plans");
    let mut observed = ObservedCluster::new([absent("dc1")].into_iter().collect(), None);
    observed.secrets_pending.insert("dc1".into(), "waiting for Secret x".into());
    assert_eq!(
        decide(&cluster_plan, &observed).decision("dc1"),
        Some(&Decision::Wait(WaitReason::SecretsNotReady {
            detail: "waiting for Secret x".into()
        }))
    );
    observed.secrets_pending.clear();
    assert_eq!(
        decide(&cluster_plan, &observed).decision("dc1"),
        Some(&Decision::Create)
    );
}

#[test]
fn reaper_logins_are_generated_replicated_and_named_in_pending_messages() {
    let k8c = cluster(json!({"spec": {"reaper": {}}}));
    let cluster_plan = plan(&k8c).expect("plans");
    let secrets = secrets_plan(&k8c, &cluster_plan);
    let logins: Vec<(Purpose, &str, bool, &str)> = secrets
        .secrets
        .iter()
        .map(|s| (s.purpose, s.name.as_str(), s.generated, s.username.as_str()))
        .collect();
    assert_eq!(
        logins,
        vec![
            (
                Purpose::Superuser,
                "mycluster-superuser",
                true,
                "My Cluster"
            ),
            (
                Purpose::ReaperCql,
                "mycluster-reaper",
                true,
                "mycluster-reaper"
            ),
            (
                Purpose::ReaperUi,
                "mycluster-reaper-ui",
                true,
                "mycluster-reaper-ui"
            ),
        ]
    );
    // Selected by the same ReplicatedSecret as the superuser's.
    let selector = secrets
        .replicated
        .as_ref()
        .and_then(|rs| rs.spec.selector.clone())
        .and_then(|s| s.match_labels)
        .expect("selector");
    for login in &secrets.secrets {
        let secret = generated_secret(&k8c, &cluster_plan, login, "pw");
        let labels = secret.metadata.labels.unwrap_or_default();
        assert!(
            selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
            "{}",
            login.name
        );
    }
    let pending = pending_datacenters(&cluster_plan, &secrets, None);
    assert!(
        pending["dc2"].contains(
            "Secrets mycluster-superuser, mycluster-reaper, mycluster-reaper-ui to be replicated"
        ),
        "{}",
        pending["dc2"]
    );
}

#[test]
fn reaper_secrets_named_by_the_user_are_not_generated() {
    let k8c = cluster(json!({"spec": {"reaper": {
        "cassandraUserSecretRef": {"name": "reaper-cql-secret"},
        "uiUserSecretRef": {"name": ""}
    }}}));
    let secrets = secrets_plan(&k8c, &plan(&k8c).expect("plans"));
    let reaper: Vec<(&str, bool)> = secrets
        .secrets
        .iter()
        .filter(|s| s.purpose != Purpose::Superuser)
        .map(|s| (s.name.as_str(), s.generated))
        .collect();
    assert_eq!(reaper, vec![("reaper-cql-secret", false)], "no UI login");
}

#[test]
fn encryption_stores_are_the_users_and_replicated_with_the_rest() {
    let k8c = cluster(json!({"spec": {"cassandra": {
        "config": {"cassandraYaml": {"client_encryption_options": {"enabled": true}}},
        "clientEncryptionStores": {
            "keystoreSecretRef": {"name": "client-ks"},
            "truststoreSecretRef": {"name": "client-ts"},
            "keystorePasswordSecretRef": {"name": "store-passwords"}
        }
    }}}));
    let secrets = secrets_plan(&k8c, &plan(&k8c).expect("plans"));
    let stores: Vec<(&str, bool)> = secrets
        .secrets
        .iter()
        .filter(|s| s.purpose == Purpose::EncryptionStore)
        .map(|s| (s.name.as_str(), s.generated))
        .collect();
    assert_eq!(
        stores,
        vec![
            ("client-ks", false),
            ("store-passwords", false),
            ("client-ts", false)
        ]
    );
}

#[test]
fn passwords_read_for_a_cluster_go_when_it_stops_using_them_or_is_deleted() {
    let memo = PasswordMemo::default();
    let read = || ReadSecret {
        resource_version: Some("1".into()),
        keys: BTreeSet::from(["password".to_string()]),
        values: BTreeMap::new(),
    };
    if let Ok(mut entries) = memo.0.lock() {
        for (cluster, secret) in [("a", "stores"), ("a", "old-stores"), ("b", "stores")] {
            entries.insert(("db".into(), cluster.into(), secret.into()), read());
        }
    }
    assert_eq!(memo.len(), 3);
    // a's spec now names only "stores"
    let stores = "stores".to_string();
    memo.retain_for("db", "a", &BTreeSet::from([&stores]));
    assert_eq!(memo.len(), 2);
    // a is deleted; b's read stays
    memo.forget_cluster("db", "a");
    assert_eq!(memo.len(), 1);
    memo.forget_cluster("db", "b");
    assert!(memo.is_empty());
}

#[test]
fn medusas_login_is_generated_and_its_storage_secret_is_the_users_both_replicated() {
    let k8c = cluster(json!({"spec": {"medusa": {"storageProperties": {
        "storageProvider": "s3", "bucketName": "b", "storageSecretRef": {"name": "bucket-key"}
    }}}}));
    let planned = plan(&k8c).expect("plan");
    let secrets = secrets_plan(&k8c, &planned);
    let medusa: Vec<(Purpose, &str, bool, &str)> = (secrets.secrets.iter())
        .filter(|s| matches!(s.purpose, Purpose::MedusaCql | Purpose::MedusaStorage))
        .map(|s| (s.purpose, s.name.as_str(), s.generated, s.username.as_str()))
        .collect();
    assert_eq!(
        medusa,
        [
            (Purpose::MedusaCql, "demo-medusa", true, "demo-medusa"),
            (Purpose::MedusaStorage, "bucket-key", false, ""),
        ]
    );
    let named = cluster(json!({"spec": {"medusa": {
        "cassandraUserSecretRef": {"name": "my-medusa"},
        "storageProperties": {"credentialsType": "role-based"}
    }}}));
    let secrets = secrets_plan(&named, &plan(&named).expect("plan"));
    let cql = (secrets.secrets.iter()).find(|s| s.purpose == Purpose::MedusaCql).expect("login");
    assert_eq!((cql.name.as_str(), cql.generated), ("my-medusa", false));
    assert!(!secrets.secrets.iter().any(|s| s.purpose == Purpose::MedusaStorage));
}
