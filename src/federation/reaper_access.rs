//! How a K8ssandraCluster's Reaper gets into Cassandra, set up as k8ssandra-operator does, so a
//! manifest with `spec.reaper` gives a Reaper that can log in:
//!
//! - With authentication on and Secrets managed by Kubernetes, Reaper logs in (CQL and JMX) as a
//!   role of its own: `spec.reaper.cassandraUserSecretRef`, else a generated `<cluster>-reaper`.
//!   Every datacenter lists it in `spec.users` (cass-operator creates the role), and the Reaper
//!   objects point at it.
//! - The UI and REST API use `spec.reaper.uiUserSecretRef`, else a generated
//!   `<cluster>-reaper-ui`; a ref with an empty name turns their authentication off.
//! - Generated Secrets are made in the hub and replicated with the superuser Secret
//!   (`super::secrets`). A Reaper named by `reaperRef` is not Federator's: no Secrets for it.
//! - With `httpManagement.enabled: false` Reaper talks JMX: Cassandra must accept remote JMX
//!   (`LOCAL_JMX=no`), authenticated by the Cassandra roles when authentication is on.
//!
//! Pure: the K8ssandraCluster alone decides.

use crate::api::k8ssandra_cluster::K8ssandraCluster;
use crate::workload::labels::clean_for_kubernetes;

/// Environment variable of cassandra-env.sh: `no` opens JMX to other hosts.
pub const LOCAL_JMX_ENV: &str = "LOCAL_JMX";

/// A Secret holding a username and a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub name: String,
    /// Federator creates it when absent; otherwise the user supplies it.
    pub generated: bool,
}

/// What the cluster's datacenters and Reaper objects need for `spec.reaper`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReaperAccess {
    /// The role Reaper logs in with over CQL and JMX.
    pub cql_user: Option<Credential>,
    /// The login of Reaper's UI and REST API.
    pub ui_user: Option<Credential>,
    /// Reaper manages the nodes over JMX (HTTP management turned off).
    pub remote_jmx: bool,
}

/// `<cluster>-reaper`: k8ssandra-operator's name for Reaper's CQL user Secret.
pub fn default_cql_user_secret_name(cassandra_cluster_name: &str) -> String {
    format!("{}-reaper", clean_for_kubernetes(cassandra_cluster_name))
}

/// `<cluster>-reaper-ui`: k8ssandra-operator's name for Reaper's UI user Secret.
pub fn default_ui_user_secret_name(cassandra_cluster_name: &str) -> String {
    format!("{}-reaper-ui", clean_for_kubernetes(cassandra_cluster_name))
}

/// What `spec.reaper` of `k8c` asks of the cluster; `None` without `spec.reaper`.
pub fn reaper_access(k8c: &K8ssandraCluster, cassandra_cluster_name: &str) -> Option<ReaperAccess> {
    let reaper = k8c.spec.reaper.as_ref()?;
    let remote_jmx =
        reaper.template.http_management.as_ref().and_then(|h| h.enabled) == Some(false);
    let referenced = reaper.references_a_reaper();
    let managed_secrets = !k8c.spec.uses_external_secrets();
    if referenced || !k8c.spec.auth_enabled() || !managed_secrets {
        return Some(ReaperAccess {
            remote_jmx,
            ..Default::default()
        });
    }
    let named = |name: &str, default: String| {
        if name.is_empty() {
            Credential {
                name: default,
                generated: true,
            }
        } else {
            Credential {
                name: name.to_string(),
                generated: false,
            }
        }
    };
    let template = &reaper.template;
    let cql_user = named(
        template.cassandra_user_secret_ref.as_ref().map_or("", |r| r.name.as_str()),
        default_cql_user_secret_name(cassandra_cluster_name),
    );
    let ui_user = match &template.ui_user_secret_ref {
        None => Some(named(
            "",
            default_ui_user_secret_name(cassandra_cluster_name),
        )),
        Some(r) if r.name.is_empty() => None,
        Some(r) => Some(named(&r.name, String::new())),
    };
    Some(ReaperAccess {
        cql_user: Some(cql_user),
        ui_user,
        remote_jmx,
    })
}

/// JVM flags for JMX from other hosts: cassandra-env.sh would infer authentication from
/// `LOCAL_JMX=no` alone; it follows the cluster's instead, through Cassandra's roles.
pub fn remote_jmx_flags(auth_enabled: bool, managed_secrets: bool) -> Vec<String> {
    let mut flags = vec![format!(
        "-Dcom.sun.management.jmxremote.authenticate={auth_enabled}"
    )];
    if auth_enabled && managed_secrets {
        flags.extend(
            [
                "-Dcassandra.jmx.remote.login.config=CassandraLogin",
                "-Djava.security.auth.login.config=$CASSANDRA_HOME/conf/cassandra-jaas.config",
                "-Dcassandra.jmx.authorizer=org.apache.cassandra.auth.jmx.AuthorizationProxy",
            ]
            .map(String::from),
        );
    }
    flags
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cluster(spec_extra: serde_json::Value) -> K8ssandraCluster {
        let mut spec = json!({"cassandra": {
            "clusterName": "My Cluster", "serverVersion": "4.1.5",
            "datacenters": [{"metadata": {"name": "dc1"}, "size": 1}]
        }});
        if let (Some(spec), serde_json::Value::Object(extra)) = (spec.as_object_mut(), spec_extra) {
            spec.extend(extra);
        }
        serde_json::from_value(json!({
            "apiVersion": "k8ssandra.io/v1alpha1", "kind": "K8ssandraCluster",
            "metadata": {"name": "demo", "namespace": "ns"},
            "spec": spec
        }))
        .expect("valid K8ssandraCluster")
    }

    fn access(spec_extra: serde_json::Value) -> Option<ReaperAccess> {
        reaper_access(&cluster(spec_extra), "My Cluster")
    }

    fn generated(name: &str) -> Option<Credential> {
        Some(Credential {
            name: name.into(),
            generated: true,
        })
    }

    #[test]
    fn without_reaper_nothing_is_needed() {
        assert_eq!(access(json!({})), None);
    }

    #[test]
    fn reaper_with_authentication_gets_generated_cql_and_ui_users() {
        assert_eq!(
            access(json!({"reaper": {}})),
            Some(ReaperAccess {
                cql_user: generated("mycluster-reaper"),
                ui_user: generated("mycluster-reaper-ui"),
                remote_jmx: false,
            })
        );
    }

    #[test]
    fn users_secrets_are_used_and_an_empty_ui_ref_turns_ui_login_off() {
        let supplied = access(json!({"reaper": {
            "cassandraUserSecretRef": {"name": "reaper-cql-secret"},
            "uiUserSecretRef": {"name": "reaper-ui-secret"}
        }}))
        .expect("access");
        assert_eq!(
            (supplied.cql_user, supplied.ui_user),
            (
                Some(Credential {
                    name: "reaper-cql-secret".into(),
                    generated: false
                }),
                Some(Credential {
                    name: "reaper-ui-secret".into(),
                    generated: false
                })
            )
        );
        let no_ui = access(json!({"reaper": {"uiUserSecretRef": {"name": ""}}})).expect("access");
        assert_eq!(no_ui.cql_user, generated("mycluster-reaper"));
        assert_eq!(no_ui.ui_user, None);
    }

    #[test]
    fn no_secrets_without_auth_with_external_secrets_or_for_a_referenced_reaper() {
        for spec in [
            json!({"auth": false, "reaper": {}}),
            json!({"secretsProvider": "external", "reaper": {}}),
            json!({"reaper": {"reaperRef": {"name": "shared-reaper"}}}),
        ] {
            let found = access(spec.clone()).expect("access");
            assert_eq!((found.cql_user, found.ui_user), (None, None), "{spec}");
        }
    }

    #[test]
    fn jmx_management_needs_remote_jmx_authenticated_by_cassandra_roles() {
        let jmx = access(json!({"reaper": {"httpManagement": {"enabled": false}}}));
        assert!(jmx.is_some_and(|a| a.remote_jmx));
        assert!(!access(json!({"reaper": {"httpManagement": {}}})).is_some_and(|a| a.remote_jmx));
        assert_eq!(
            remote_jmx_flags(true, true),
            vec![
                "-Dcom.sun.management.jmxremote.authenticate=true",
                "-Dcassandra.jmx.remote.login.config=CassandraLogin",
                "-Djava.security.auth.login.config=$CASSANDRA_HOME/conf/cassandra-jaas.config",
                "-Dcassandra.jmx.authorizer=org.apache.cassandra.auth.jmx.AuthorizationProxy",
            ]
        );
        assert_eq!(
            remote_jmx_flags(false, true),
            vec!["-Dcom.sun.management.jmxremote.authenticate=false"]
        );
        assert_eq!(
            remote_jmx_flags(true, false),
            vec!["-Dcom.sun.management.jmxremote.authenticate=true"]
        );
    }
}
