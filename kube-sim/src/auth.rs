//! Who a request comes from: the user and groups kube-apiserver's authenticators would give it.

/// The user name of the cluster's own bearer token (the kubeconfig's), as kind names its admin.
pub const ADMIN_USER: &str = "kubernetes-admin";
/// Members may do everything, whatever RBAC says (kube-apiserver's privileged group).
pub const MASTERS_GROUP: &str = "system:masters";
/// Every authenticated user is in this group.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// `name` in `groups`, and in `system:authenticated` as every authenticated user is.
    pub fn new(name: impl Into<String>, mut groups: Vec<String>) -> UserInfo {
        if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            groups.push(AUTHENTICATED_GROUP.to_string());
        }
        UserInfo {
            name: name.into(),
            groups,
        }
    }

    /// The holder of the cluster's own token: unrestricted.
    pub fn admin() -> UserInfo {
        UserInfo::new(ADMIN_USER, vec![MASTERS_GROUP.to_string()])
    }

    /// Service account `namespace/name`: `system:serviceaccount:NS:NAME` in
    /// `system:serviceaccounts` and `system:serviceaccounts:NS`.
    pub fn service_account(namespace: &str, name: &str) -> UserInfo {
        UserInfo::new(
            format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"),
            vec![
                SERVICE_ACCOUNTS_GROUP.to_string(),
                format!("{SERVICE_ACCOUNTS_GROUP}:{namespace}"),
            ],
        )
    }

    /// Whether RBAC is bypassed for this user (member of `system:masters`).
    pub fn is_privileged(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS_GROUP)
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_accounts_get_their_user_name_and_groups() {
        let user = UserInfo::service_account("ops", "federator");
        assert_eq!(user.name, "system:serviceaccount:ops:federator");
        assert_eq!(
            user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ops",
                "system:authenticated"
            ]
        );
        assert!(!user.is_privileged());
        assert!(UserInfo::admin().is_privileged());
    }
}
