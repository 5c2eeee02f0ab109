//! Roles and logins, kept as rows of `system_auth.roles` so that they live on that keyspace's
//! replicas like any data: a datacenter without a `system_auth` replica cannot log anyone in at a
//! LOCAL level, and a replica that never received a role does not know it.
//!
//! Consistency levels follow `CassandraRoleManager`: the default `cassandra` superuser is read
//! and written at QUORUM; other roles at LOCAL_ONE up to 4.0 (`consistencyForRole`), and from
//! 4.1 at `auth_read_consistency_level` / `auth_write_consistency_level`, whose defaults are
//! LOCAL_QUORUM and EACH_QUORUM (CASSANDRA-12988, `Config`). Passwords are not bcrypt-hashed:
//! the model stores a stable hash, which is enough to compare.

use serde::{Deserialize, Serialize};

use super::CassandraModel;
use super::consistency::ConsistencyLevel;
use super::error::{CassandraError, Result};
use super::keyspace::SYSTEM_AUTH;
use super::ring::token_for_key;

/// `CassandraRoleManager.DEFAULT_SUPERUSER_NAME` and its password.
pub const DEFAULT_SUPERUSER: &str = "cassandra";
const DEFAULT_SUPERUSER_PASSWORD: &str = "cassandra";
const ROLES: &str = "roles";

/// A row of `system_auth.roles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    #[serde(skip)]
    pub name: String,
    #[serde(rename = "is_superuser")]
    pub superuser: bool,
    #[serde(rename = "can_login")]
    pub login: bool,
    salted_hash: String,
}

impl Role {
    fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn decode(name: &str, value: &str) -> Option<Role> {
        let mut role: Role = serde_json::from_str(value).ok()?;
        role.name = name.to_string();
        Some(role)
    }
}

fn salted_hash(password: &str) -> String {
    format!("model${:016x}", token_for_key(password))
}

/// Whether a server version uses 4.0's role consistency (LOCAL_ONE) rather than 4.1's
/// configurable levels.
fn has_legacy_role_consistency(server_version: &str) -> bool {
    let mut parts = server_version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    major < 4 || (major == 4 && minor == 0)
}

/// `consistencyForRoleRead` / `consistencyForRoleWrite`.
pub(crate) fn role_consistency(server_version: &str, role: &str, write: bool) -> ConsistencyLevel {
    if role == DEFAULT_SUPERUSER {
        ConsistencyLevel::Quorum
    } else if has_legacy_role_consistency(server_version) {
        ConsistencyLevel::LocalOne
    } else if write {
        ConsistencyLevel::EachQuorum
    } else {
        ConsistencyLevel::LocalQuorum
    }
}

impl CassandraModel {
    /// The server version the role manager runs (the oldest known node's, as in a rolling
    /// upgrade the old behaviour still applies somewhere).
    fn auth_server_version(&self, cluster: &str) -> Result<String> {
        let c = self.cluster(cluster)?;
        Ok(c.known_members()
            .map(|idx| c.nodes[idx].server_version.clone())
            .min_by_key(|v| v.split('.').map(|p| p.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>())
            .unwrap_or_default())
    }

    /// `CassandraRoleManager.setupDefaultRole`, which Cassandra schedules at startup and
    /// retries until it succeeds: if no role exists yet, `cassandra`/`cassandra` is written at
    /// QUORUM `USING TIMESTAMP 0` (so that any later change to it wins). The model tries when the
    /// cluster is founded and again whenever a node starts or comes up.
    pub(crate) fn maybe_setup_default_role(&mut self, cluster: &str) {
        let Ok(c) = self.cluster(cluster) else { return };
        if !c.default_role_pending {
            return;
        }
        let roles_exist =
            c.nodes.iter().any(|node| node.data.live_rows(SYSTEM_AUTH, ROLES).next().is_some());
        let coordinator_dc = c
            .known_members()
            .find(|&idx| c.nodes[idx].up)
            .map(|idx| c.nodes[idx].datacenter.clone());
        let done = match coordinator_dc {
            _ if roles_exist => true,
            Some(dc) => self.write_default_role(cluster, &dc).is_ok(),
            None => false,
        };
        if done && let Ok(c) = self.cluster_mut(cluster) {
            c.default_role_pending = false;
        }
    }

    fn write_default_role(&mut self, cluster: &str, dc: &str) -> Result<()> {
        let role = Role {
            name: DEFAULT_SUPERUSER.to_string(),
            superuser: true,
            login: true,
            salted_hash: salted_hash(DEFAULT_SUPERUSER_PASSWORD),
        };
        let row = vec![(DEFAULT_SUPERUSER.to_string(), Some(role.encode()))];
        self.mutate(
            cluster,
            dc,
            SYSTEM_AUTH,
            ROLES,
            row,
            ConsistencyLevel::Quorum,
            Some(0),
        )?;
        Ok(())
    }

    /// `IRoleManager.createRole` as the Management API calls it: writes the role row at the role
    /// manager's write level (an existing role is overwritten).
    pub fn create_role(
        &mut self,
        cluster: &str,
        coordinator_dc: &str,
        name: &str,
        password: &str,
        superuser: bool,
        login: bool,
    ) -> Result<()> {
        if name.is_empty() {
            return Err(CassandraError::InvalidRequest("Username is empty".into()));
        }
        let consistency = role_consistency(&self.auth_server_version(cluster)?, name, true);
        let role = Role {
            name: name.to_string(),
            superuser,
            login,
            salted_hash: salted_hash(password),
        };
        let row = vec![(name.to_string(), Some(role.encode()))];
        self.mutate(
            cluster,
            coordinator_dc,
            SYSTEM_AUTH,
            ROLES,
            row,
            consistency,
            None,
        )?;
        Ok(())
    }

    /// `DROP ROLE`: a tombstone for the role's row.
    pub fn drop_role(&mut self, cluster: &str, coordinator_dc: &str, name: &str) -> Result<()> {
        let consistency = role_consistency(&self.auth_server_version(cluster)?, name, true);
        let row = vec![(name.to_string(), None)];
        self.mutate(
            cluster,
            coordinator_dc,
            SYSTEM_AUTH,
            ROLES,
            row,
            consistency,
            None,
        )?;
        Ok(())
    }

    /// The role as the coordinator reads it at the role manager's read level.
    pub fn role(
        &mut self,
        cluster: &str,
        coordinator_dc: &str,
        name: &str,
    ) -> Result<Option<Role>> {
        let consistency = role_consistency(&self.auth_server_version(cluster)?, name, false);
        let value = self.read(
            cluster,
            coordinator_dc,
            SYSTEM_AUTH,
            ROLES,
            name,
            consistency,
        )?;
        Ok(value.and_then(|value| Role::decode(name, &value)))
    }

    /// `CassandraRoleManager.getAllRoles` (read at QUORUM), by name.
    pub fn list_roles(&mut self, cluster: &str, coordinator_dc: &str) -> Result<Vec<Role>> {
        let rows = self.read_all(
            cluster,
            coordinator_dc,
            SYSTEM_AUTH,
            ROLES,
            ConsistencyLevel::Quorum,
        )?;
        Ok(rows.iter().filter_map(|(name, value)| Role::decode(name, value)).collect())
    }

    /// A native-protocol login through a coordinator in `coordinator_dc`
    /// (`PasswordAuthenticator`): the role is read at its consistency level; a read that cannot
    /// run fails as "Unable to perform authentication: Cannot achieve consistency level ...",
    /// a missing role or a wrong password as "Provided username X and/or password are incorrect".
    pub fn login(
        &mut self,
        cluster: &str,
        coordinator_dc: &str,
        user: &str,
        password: &str,
    ) -> Result<Role> {
        if !self.cluster(cluster)?.authentication {
            return Ok(Role {
                name: user.to_string(),
                superuser: false,
                login: true,
                salted_hash: String::new(),
            });
        }
        let role = match self.role(cluster, coordinator_dc, user) {
            Ok(role) => role,
            Err(CassandraError::Unavailable(unavailable)) => {
                return Err(CassandraError::AuthenticationUnavailable(unavailable));
            }
            Err(other) => return Err(other),
        };
        let incorrect = || {
            CassandraError::Authentication(format!(
                "Provided username {user} and/or password are incorrect"
            ))
        };
        let role = role.ok_or_else(incorrect)?;
        if role.salted_hash != salted_hash(password) {
            return Err(incorrect());
        }
        if !role.login {
            return Err(CassandraError::Authentication(format!(
                "{user} is not permitted to log in"
            )));
        }
        Ok(role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_levels_follow_the_server_version() {
        assert_eq!(
            role_consistency("4.0.17", "app", false),
            ConsistencyLevel::LocalOne
        );
        assert_eq!(
            role_consistency("4.0.17", "app", true),
            ConsistencyLevel::LocalOne
        );
        assert_eq!(
            role_consistency("4.1.8", "app", false),
            ConsistencyLevel::LocalQuorum
        );
        assert_eq!(
            role_consistency("5.0.4", "app", true),
            ConsistencyLevel::EachQuorum
        );
        assert_eq!(
            role_consistency("4.1.8", DEFAULT_SUPERUSER, false),
            ConsistencyLevel::Quorum
        );
        assert_eq!(
            role_consistency("3.11.14", "app", false),
            ConsistencyLevel::LocalOne
        );
    }
}
