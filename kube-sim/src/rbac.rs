//! RBAC enforcement (when the cluster is started with it): a resource request is allowed when a
//! ClusterRoleBinding, or a RoleBinding in the request's namespace, binds the user (or one of
//! its groups, or its service account) to a Role or ClusterRole with a rule that matches, as
//! kube-apiserver's RBAC authorizer decides. Members of `system:masters` are never checked.

use serde_json::Value;

use crate::auth::UserInfo;
use crate::error::{ApiError, qualified};
use crate::store::{ListOptions, Store};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// What a resource request asks, as RBAC names it.
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'a str,
    pub group: &'a str,
    /// The plural, without the subresource.
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    /// For `/api/v1/namespaces/NAME` this is NAME itself, as kube-apiserver's request info has it.
    pub namespace: Option<&'a str>,
    /// The object's name; for a list or watch, the name of a `metadata.name=` field selector.
    pub name: Option<&'a str>,
}

/// Ok when `user` may do what `request` asks in the cluster `store` holds; otherwise the 403
/// kube-apiserver answers.
pub fn authorize(store: &Store, user: &UserInfo, request: &Attributes<'_>) -> Result<(), ApiError> {
    if user.is_privileged() {
        return Ok(());
    }
    let mut errors = Vec::new();
    let cluster_bindings = list(store, "clusterrolebindings", None);
    for binding in &cluster_bindings {
        if binds(binding, user, None) && grants(store, binding, None, request, &mut errors) {
            return Ok(());
        }
    }
    if let Some(namespace) = request.namespace.filter(|ns| !ns.is_empty()) {
        for binding in &list(store, "rolebindings", Some(namespace)) {
            if binds(binding, user, Some(namespace))
                && grants(store, binding, Some(namespace), request, &mut errors)
            {
                return Ok(());
            }
        }
    }
    errors.dedup();
    let reason = match errors.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        many => Some(format!("[{}]", many.join(", "))),
    };
    Err(forbidden(user, request, reason))
}

/// `pods "x" is forbidden: User "u" cannot get resource "pods" in API group "" in the
/// namespace "ns"` (`at the cluster scope` without a namespace; `: RBAC: ...` when a binding
/// names a role that does not exist).
pub fn forbidden(user: &UserInfo, request: &Attributes<'_>, reason: Option<String>) -> ApiError {
    let resource = match request.subresource {
        Some(sub) => format!("{}/{sub}", request.resource),
        None => request.resource.to_string(),
    };
    let scope = match request.namespace.filter(|ns| !ns.is_empty()) {
        Some(namespace) => format!("in the namespace \"{namespace}\""),
        None => "at the cluster scope".to_string(),
    };
    let mut why = format!(
        "User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        user.name, request.verb, request.group
    );
    if let Some(reason) = reason {
        why = format!("{why}: RBAC: {reason}");
    }
    let qualified_resource = qualified(request.resource, request.group);
    let name = request.name.filter(|n| !n.is_empty());
    let message = match name {
        Some(name) => format!("{qualified_resource} \"{name}\" is forbidden: {why}"),
        None => format!("{qualified_resource} is forbidden: {why}"),
    };
    let mut error = ApiError::new(403, "Forbidden", message);
    error.details_name = name.map(str::to_string);
    error.details_group = Some(request.group.to_string()).filter(|g| !g.is_empty());
    error.details_kind = Some(request.resource.to_string());
    error
}

fn list(store: &Store, plural: &str, namespace: Option<&str>) -> Vec<Value> {
    let Some(info) = store.resource(RBAC_GROUP, plural) else {
        return Vec::new();
    };
    store
        .list(&info, namespace, &ListOptions::default())
        .ok()
        .and_then(|mut list| match list.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => Some(items),
            _ => None,
        })
        .unwrap_or_default()
}

fn strings(value: &Value) -> impl Iterator<Item = &str> {
    value.as_array().into_iter().flatten().filter_map(Value::as_str)
}

/// Whether one of the binding's subjects is the user (by name, group or service account).
fn binds(binding: &Value, user: &UserInfo, binding_namespace: Option<&str>) -> bool {
    let subjects = binding.get("subjects").and_then(Value::as_array);
    subjects.into_iter().flatten().any(|subject| {
        let name = subject.get("name").and_then(Value::as_str).unwrap_or("");
        match subject.get("kind").and_then(Value::as_str) {
            Some("User") => name == user.name,
            Some("Group") => user.in_group(name),
            Some("ServiceAccount") => {
                // A RoleBinding's subject without a namespace means the binding's namespace.
                let namespace = subject
                    .get("namespace")
                    .and_then(Value::as_str)
                    .filter(|ns| !ns.is_empty())
                    .or(binding_namespace)
                    .unwrap_or("");
                !namespace.is_empty()
                    && user.name == format!("system:serviceaccount:{namespace}:{name}")
            }
            _ => false,
        }
    })
}

/// Whether the role the binding refers to has a rule allowing the request; a role that does not
/// exist adds an error to `errors` (the 403 names it).
fn grants(
    store: &Store,
    binding: &Value,
    binding_namespace: Option<&str>,
    request: &Attributes<'_>,
    errors: &mut Vec<String>,
) -> bool {
    let role_ref = binding.get("roleRef").cloned().unwrap_or_default();
    let name = role_ref.get("name").and_then(Value::as_str).unwrap_or("");
    let (plural, kind_text, namespace) = match role_ref.get("kind").and_then(Value::as_str) {
        Some("ClusterRole") => ("clusterroles", "clusterrole", None),
        Some("Role") if binding_namespace.is_some() => ("roles", "role", binding_namespace),
        _ => return false,
    };
    let role =
        store.resource(RBAC_GROUP, plural).and_then(|info| store.get(&info, namespace, name).ok());
    let Some(role) = role else {
        errors.push(format!("{kind_text}.{RBAC_GROUP} \"{name}\" not found"));
        return false;
    };
    role.get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|rule| rule_allows(rule, request))
}

/// kube-apiserver's rule matching: verbs, API groups, resources (`*`, `resource/subresource`,
/// `*/subresource`) and, when the rule lists them, resource names.
pub fn rule_allows(rule: &Value, request: &Attributes<'_>) -> bool {
    let verb_matches = strings(&rule["verbs"]).any(|v| v == "*" || v == request.verb);
    let group_matches = strings(&rule["apiGroups"]).any(|g| g == "*" || g == request.group);
    let combined = match request.subresource {
        Some(sub) => format!("{}/{sub}", request.resource),
        None => request.resource.to_string(),
    };
    let resource_matches = strings(&rule["resources"]).any(|r| {
        r == "*"
            || r == combined
            || request.subresource.is_some_and(|sub| r.strip_prefix("*/") == Some(sub))
    });
    let mut names = strings(&rule["resourceNames"]).peekable();
    let name_matches = names.peek().is_none()
        || request.name.is_some_and(|requested| names.any(|n| n == requested));
    verb_matches && group_matches && resource_matches && name_matches
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attributes<'a>(verb: &'a str, group: &'a str, resource: &'a str) -> Attributes<'a> {
        Attributes {
            verb,
            group,
            resource,
            subresource: None,
            namespace: Some("ns"),
            name: None,
        }
    }

    #[test]
    fn rules_match_verbs_groups_resources_subresources_and_names() {
        let pods = json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]});
        assert!(rule_allows(&pods, &attributes("list", "", "pods")));
        assert!(!rule_allows(&pods, &attributes("watch", "", "pods")));
        assert!(!rule_allows(&pods, &attributes("list", "apps", "pods")));
        let proxy = Attributes {
            subresource: Some("proxy"),
            ..attributes("get", "", "pods")
        };
        assert!(
            !rule_allows(&pods, &proxy),
            "pods does not grant pods/proxy"
        );
        let proxy_rule = json!({"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["get"]});
        assert!(rule_allows(&proxy_rule, &proxy));
        assert!(!rule_allows(&proxy_rule, &attributes("get", "", "pods")));
        let any_status = json!({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]});
        let status = Attributes {
            subresource: Some("status"),
            ..attributes("patch", "k8ssandra.io", "k8ssandraclusters")
        };
        assert!(rule_allows(&any_status, &status));
        assert!(!rule_allows(
            &any_status,
            &attributes("patch", "k8ssandra.io", "k8ssandraclusters")
        ));
        let everything = json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]});
        assert!(rule_allows(&everything, &status));

        let named = json!({"apiGroups": [""], "resources": ["configmaps"],
                           "resourceNames": ["mine"], "verbs": ["get", "watch"]});
        let mine = Attributes {
            name: Some("mine"),
            ..attributes("get", "", "configmaps")
        };
        assert!(rule_allows(&named, &mine));
        assert!(!rule_allows(
            &named,
            &Attributes {
                name: Some("other"),
                ..mine
            }
        ));
        assert!(
            !rule_allows(&named, &attributes("watch", "", "configmaps")),
            "a watch of every ConfigMap is not a watch of one by name"
        );
    }

    #[test]
    fn forbidden_messages_are_kube_apiservers() {
        let user = UserInfo::service_account("ns", "sa");
        let error = forbidden(&user, &attributes("list", "", "pods"), None);
        assert_eq!(error.code, 403);
        assert_eq!(
            error.message,
            "pods is forbidden: User \"system:serviceaccount:ns:sa\" cannot list resource \"pods\" in API group \"\" in the namespace \"ns\""
        );
        let status = error.to_status();
        assert_eq!(status["reason"], "Forbidden");
        assert_eq!(status["details"], json!({"kind": "pods"}));

        let cluster_wide = Attributes {
            namespace: None,
            name: Some("c1"),
            ..attributes("delete", "rbac.authorization.k8s.io", "clusterroles")
        };
        let error = forbidden(&user, &cluster_wide, None);
        assert_eq!(
            error.message,
            "clusterroles.rbac.authorization.k8s.io \"c1\" is forbidden: User \"system:serviceaccount:ns:sa\" cannot delete resource \"clusterroles\" in API group \"rbac.authorization.k8s.io\" at the cluster scope"
        );
        assert_eq!(
            error.to_status()["details"],
            json!({"name": "c1", "group": "rbac.authorization.k8s.io", "kind": "clusterroles"})
        );
    }
}
