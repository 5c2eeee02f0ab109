//! Names, labels and annotations of the objects Federator makes in the regions, compatible with
//! k8ssandra-operator and cass-operator.
//!
//! Ownership across clusters is by labels (ownerReferences cannot cross clusters): every object
//! made for a K8ssandraCluster carries [`ownership_labels`], and the watchers and the cleanup
//! select on [`ownership_selector`].

use std::collections::BTreeMap;

use crate::api::shared::{
    CLEANED_UP_BY_LABEL, CLEANED_UP_BY_VALUE, CLUSTER_NAME_LABEL, CLUSTER_NAMESPACE_LABEL,
    DATACENTER_NAME_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, PART_OF_LABEL, PART_OF_VALUE,
};

/// Standard "which component is this" label; k8ssandra-operator sets it on CassandraDatacenters.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// Value of [`COMPONENT_LABEL`] on CassandraDatacenters.
pub const COMPONENT_CASSANDRA: &str = "cassandra";
/// Value of [`COMPONENT_LABEL`] on Stargate's objects.
pub const COMPONENT_STARGATE: &str = "stargate";
/// Label naming the Stargate on its Deployments, pods and Service (the Service selects on it).
pub const STARGATE_LABEL: &str = "k8ssandra.io/stargate";

/// cass-operator: do not create the superuser and users in this datacenter (they exist already,
/// or will be created by the first datacenter).
pub const SKIP_USER_CREATION_ANNOTATION: &str = "cassandra.datastax.com/skip-user-creation";
/// cass-operator: decommission the datacenter's nodes when its CassandraDatacenter is deleted,
/// instead of just removing the pods.
pub const DECOMMISSION_ON_DELETE_ANNOTATION: &str = "cassandra.datastax.com/decommission-on-delete";
/// k8ssandra-operator: replication of the system keyspaces chosen when the cluster was created,
/// as JSON `{"dc1": 3}`. Kept so that later size changes do not change it.
pub const INITIAL_SYSTEM_REPLICATION_ANNOTATION: &str = "k8ssandra.io/initial-system-replication";
/// Federator: take over a CassandraDatacenter that exists in the region without Federator's labels.
pub const ADOPT_ANNOTATION: &str = "federator.k8ssandra.io/adopt";
/// Federator: on deletion, leave the remote objects behind instead of deleting them.
pub const ORPHAN_ANNOTATION: &str = "federator.k8ssandra.io/orphan";
/// Finalizer on the K8ssandraCluster until its remote objects are gone (k8ssandra-operator's name).
pub const K8SSANDRA_CLUSTER_FINALIZER: &str = "k8ssandracluster.k8ssandra.io/finalizer";

/// Label cass-operator puts on seed pods.
pub const SEED_NODE_LABEL: &str = "cassandra.datastax.com/seed-node";
/// Label cass-operator puts on everything of one Cassandra cluster (value: [`clean_label_value`]).
pub const CASSANDRA_CLUSTER_LABEL: &str = crate::api::shared::CASSDC_CLUSTER_LABEL;
/// Label cass-operator puts on everything of one datacenter (value: the CassandraDatacenter name).
pub const CASSANDRA_DATACENTER_LABEL: &str = crate::api::shared::CASSDC_DATACENTER_LABEL;
/// EndpointSlice label naming the Service the slice belongs to.
pub const ENDPOINT_SLICE_SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// EndpointSlice label naming the controller that manages the slice.
pub const ENDPOINT_SLICE_MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";

/// The labels that tie a remote object to its K8ssandraCluster, and tell k8ssandra tooling who
/// made it and who cleans it up.
pub fn ownership_labels(cluster_name: &str, cluster_namespace: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (PART_OF_LABEL.to_string(), PART_OF_VALUE.to_string()),
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
        (CLUSTER_NAME_LABEL.to_string(), cluster_name.to_string()),
        (
            CLUSTER_NAMESPACE_LABEL.to_string(),
            cluster_namespace.to_string(),
        ),
        (
            CLEANED_UP_BY_LABEL.to_string(),
            CLEANED_UP_BY_VALUE.to_string(),
        ),
    ])
}

/// [`ownership_labels`] plus the datacenter the object was made for.
pub fn datacenter_labels(
    cluster_name: &str,
    cluster_namespace: &str,
    datacenter: &str,
) -> BTreeMap<String, String> {
    let mut labels = ownership_labels(cluster_name, cluster_namespace);
    labels.insert(DATACENTER_NAME_LABEL.to_string(), datacenter.to_string());
    labels
}

/// Label selector (`k=v,k=v`) matching every remote object of one K8ssandraCluster.
pub fn ownership_selector(cluster_name: &str, cluster_namespace: &str) -> String {
    [
        (CLUSTER_NAME_LABEL, cluster_name),
        (CLUSTER_NAMESPACE_LABEL, cluster_namespace),
        (CLEANED_UP_BY_LABEL, CLEANED_UP_BY_VALUE),
    ]
    .iter()
    .map(|(key, value)| format!("{key}={value}"))
    .collect::<Vec<_>>()
    .join(",")
}

/// Whether `labels` say the object belongs to this K8ssandraCluster. An object without them
/// was made by someone else: overwriting it is a conflict unless the user asks for adoption.
pub fn is_owned_by(
    labels: Option<&BTreeMap<String, String>>,
    cluster_name: &str,
    cluster_namespace: &str,
) -> bool {
    let Some(labels) = labels else {
        return false;
    };
    let has = |key: &str, value: &str| labels.get(key).is_some_and(|v| v == value);
    has(CLUSTER_NAME_LABEL, cluster_name) && has(CLUSTER_NAMESPACE_LABEL, cluster_namespace)
}

/// The labels cass-operator puts on the seed pods of one datacenter.
pub fn seed_pod_labels(cassandra_cluster_name: &str, datacenter: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            CASSANDRA_CLUSTER_LABEL.to_string(),
            clean_label_value(cassandra_cluster_name),
        ),
        (
            CASSANDRA_DATACENTER_LABEL.to_string(),
            datacenter.to_string(),
        ),
        (SEED_NODE_LABEL.to_string(), "true".to_string()),
    ])
}

/// Label selector of the seed pods of one datacenter, as cass-operator labels them.
pub fn seed_pod_selector(cassandra_cluster_name: &str, datacenter: &str) -> String {
    seed_pod_labels(cassandra_cluster_name, datacenter)
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A free-form name (a Cassandra cluster name such as "My Cluster") made into a DNS-1035 label
/// the way cass-operator does it, so that derived names (`<cluster>-superuser`, Services) match
/// the ones cass-operator computes: a valid label is kept as is; otherwise it is lower-cased,
/// `_` becomes `-`, and only the runs that form DNS-1035 labels are kept, concatenated
/// ("My Cluster" → "mycluster").
pub fn clean_for_kubernetes(input: &str) -> String {
    if is_dns1035_label(input) {
        return input.to_string();
    }
    let lowered = input.to_lowercase().replace('_', "-");
    concat_matches(
        &lowered,
        |c| c.is_ascii_lowercase(),
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
        |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
    )
}

/// A free-form name made into a label value the way cass-operator does it for its
/// `cassandra.datastax.com/cluster` label: spaces removed, then only the runs that form label
/// values kept ("My Cluster" → "MyCluster").
pub fn clean_label_value(input: &str) -> String {
    let without_spaces: String = input.chars().filter(|c| *c != ' ').collect();
    let alphanumeric = |c: char| c.is_ascii_alphanumeric();
    concat_matches(
        &without_spaces,
        alphanumeric,
        |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'),
        alphanumeric,
    )
}

/// Concatenates the leftmost-longest matches of `first (inner* last)?` in `input`: the shape of
/// both cass-operator patterns, evaluated without a regex engine.
fn concat_matches(
    input: &str,
    first: impl Fn(char) -> bool,
    inner: impl Fn(char) -> bool,
    last: impl Fn(char) -> bool,
) -> String {
    let chars: Vec<char> = input.chars().collect();
    let mut out = String::new();
    let mut at = 0;
    while at < chars.len() {
        if !first(chars[at]) {
            at += 1;
            continue;
        }
        // Extend over the longest run the middle class allows, then back off to a valid end.
        let mut end = at + 1;
        while end < chars.len() && inner(chars[end]) {
            end += 1;
        }
        while end > at + 1 && !last(chars[end - 1]) {
            end -= 1;
        }
        out.extend(&chars[at..end]);
        at = end;
    }
    out
}

/// RFC 1035 label: lower-case letter first, letters/digits/'-' inside, no '-' last, ≤ 63.
pub fn is_dns1035_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.last().is_some_and(|b| *b != b'-')
}

/// RFC 1123 label (namespaces): like DNS-1035 but may start with a digit.
pub fn is_dns1123_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.last().is_some_and(|b| *b != b'-')
}

/// The Service cass-operator makes for the seeds outside a datacenter:
/// `<clean cluster>-<clean dc>-additional-seed-service`.
pub fn additional_seed_service_name(cassandra_cluster_name: &str, datacenter: &str) -> String {
    format!(
        "{}-{}-additional-seed-service",
        clean_for_kubernetes(cassandra_cluster_name),
        clean_for_kubernetes(datacenter)
    )
}

/// Default name of the superuser Secret: `<clean cluster>-superuser`, as both operators name it.
pub fn default_superuser_secret_name(cassandra_cluster_name: &str) -> String {
    format!("{}-superuser", clean_for_kubernetes(cassandra_cluster_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_are_cleaned_like_cass_operator() {
        assert_eq!(clean_for_kubernetes("demo"), "demo");
        assert_eq!(
            clean_for_kubernetes("Weird Cluster Name"),
            "weirdclustername"
        );
        assert_eq!(clean_for_kubernetes("E2E Test Cluster"), "e2etestcluster");
        assert_eq!(clean_for_kubernetes("My_Cluster"), "my-cluster");
        assert_eq!(clean_for_kubernetes("1st-cluster-"), "st-cluster");
        assert_eq!(clean_for_kubernetes("a--b--"), "a--b");
        assert_eq!(clean_for_kubernetes("-- !!"), "");
    }

    #[test]
    fn label_values_are_cleaned_like_cass_operator() {
        assert_eq!(clean_label_value("My Cluster"), "MyCluster");
        assert_eq!(clean_label_value("E2E Test Cluster"), "E2ETestCluster");
        assert_eq!(clean_label_value("a.b_c-d"), "a.b_c-d");
        assert_eq!(clean_label_value("-x!y-"), "xy");
    }

    #[test]
    fn derived_names() {
        assert_eq!(
            additional_seed_service_name("Weird Cluster Name", "dc1"),
            "weirdclustername-dc1-additional-seed-service"
        );
        assert_eq!(
            default_superuser_secret_name("My Cluster"),
            "mycluster-superuser"
        );
        assert_eq!(
            seed_pod_selector("My Cluster", "dc1"),
            "cassandra.datastax.com/cluster=MyCluster,cassandra.datastax.com/datacenter=dc1,cassandra.datastax.com/seed-node=true"
        );
    }

    #[test]
    fn ownership_labels_and_selector_agree() {
        let labels = datacenter_labels("demo", "ns1", "dc1");
        assert_eq!(labels["app.kubernetes.io/part-of"], "k8ssandra");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "federator");
        assert_eq!(labels["k8ssandra.io/cluster-name"], "demo");
        assert_eq!(labels["k8ssandra.io/cluster-namespace"], "ns1");
        assert_eq!(
            labels["k8ssandra.io/cleaned-up-by"],
            "k8ssandracluster-controller"
        );
        assert_eq!(labels["k8ssandra.io/datacenter"], "dc1");
        assert!(is_owned_by(Some(&labels), "demo", "ns1"));
        assert!(!is_owned_by(Some(&labels), "demo", "ns2"));
        assert!(!is_owned_by(None, "demo", "ns1"));
        let selector = ownership_selector("demo", "ns1");
        for term in selector.split(',') {
            let (key, value) = term.split_once('=').expect("k=v");
            assert_eq!(labels.get(key).map(String::as_str), Some(value), "{term}");
        }
    }

    #[test]
    fn dns_label_checks() {
        assert!(is_dns1035_label("dc1"));
        assert!(!is_dns1035_label("1dc"));
        assert!(!is_dns1035_label("dc-"));
        assert!(!is_dns1035_label(&"a".repeat(64)));
        assert!(is_dns1123_label("1ns"));
        assert!(!is_dns1123_label("Ns"));
        assert!(!is_dns1123_label(""));
    }
}
