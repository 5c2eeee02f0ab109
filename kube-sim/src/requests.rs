//! Request accounting: how many resource requests each client made, by verb, resource and
//! namespace, as an API server's audit log would tell (what RBAC would have to allow). Clients are told apart by their User-Agent.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

/// Verbs that change something.
pub const WRITE_VERBS: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];

/// Requests of one client, verb and resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCount {
    /// The User-Agent header ("" when none was sent).
    pub user_agent: String,
    /// The Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// `plural[.group][/subresource]`, as kubectl names them: `leases.coordination.k8s.io`,
    /// `secrets`, `k8ssandraclusters.k8ssandra.io/status`.
    pub resource: String,
    /// The namespace in the request's path; "" for a cluster-wide request.
    pub namespace: String,
    pub count: u64,
}

impl RequestCount {
    pub fn is_write(&self) -> bool {
        WRITE_VERBS.contains(&self.verb.as_str())
    }
}

/// The counts of one cluster.
#[derive(Debug, Default)]
pub struct RequestLog {
    counts: Mutex<BTreeMap<(String, String, String, String), u64>>,
    /// The messages of the 403s RBAC answered, with how often each was answered.
    refused: Mutex<BTreeMap<String, u64>>,
}

impl RequestLog {
    pub fn record(&self, user_agent: &str, verb: &str, resource: String, namespace: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (
            user_agent.to_string(),
            verb.to_string(),
            resource,
            namespace.to_string(),
        );
        *counts.entry(key).or_default() += 1;
    }

    pub fn snapshot(&self) -> Vec<RequestCount> {
        let counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        counts
            .iter()
            .map(
                |((user_agent, verb, resource, namespace), count)| RequestCount {
                    user_agent: user_agent.clone(),
                    verb: verb.clone(),
                    resource: resource.clone(),
                    namespace: namespace.clone(),
                    count: *count,
                },
            )
            .collect()
    }

    /// Counts a request RBAC refused, by the message of its 403.
    pub fn record_refused(&self, message: &str) {
        *self
            .refused
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(message.to_string())
            .or_default() += 1;
    }

    /// The 403 messages RBAC answered and how many times each.
    pub fn refused(&self) -> BTreeMap<String, u64> {
        self.refused.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub fn reset(&self) {
        self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
        self.refused.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
    }
}

/// `plural[.group][/subresource]`.
pub fn resource_name(group: &str, plural: &str, subresource: Option<&str>) -> String {
    let mut name = plural.to_string();
    if !group.is_empty() {
        name.push('.');
        name.push_str(group);
    }
    if let Some(sub) = subresource {
        name.push('/');
        name.push_str(sub);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_client_verb_resource_and_namespace() {
        let log = RequestLog::default();
        let leases = || resource_name("coordination.k8s.io", "leases", None);
        log.record("a", "patch", leases(), "ns1");
        log.record("a", "patch", leases(), "ns1");
        log.record("a", "list", leases(), "");
        log.record("b", "get", resource_name("", "secrets", None), "ns1");
        let counts = log.snapshot();
        assert_eq!(counts.len(), 3);
        assert_eq!(
            (counts[0].verb.as_str(), counts[0].namespace.as_str()),
            ("list", "")
        );
        assert_eq!(counts[1].resource, "leases.coordination.k8s.io");
        assert_eq!((counts[1].namespace.as_str(), counts[1].count), ("ns1", 2));
        assert!(counts[1].is_write());
        assert!(!counts[2].is_write());
        log.reset();
        assert!(log.snapshot().is_empty());
    }
}
