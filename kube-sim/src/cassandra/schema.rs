//! Schema changes on a cluster: keyspaces and tables created, altered and dropped, and schema
//! versions. What a keyspace is and how its replication is validated is in [`super::keyspace`].

use std::collections::BTreeMap;

use super::CassandraModel;
use super::cluster::Cluster;
use super::error::{CassandraError, Result};
use super::keyspace::validate_name;
pub use super::keyspace::*;

/// `preventSystemKSSchemaModification` for `perm` (CREATE, ALTER or DROP) on a keyspace.
fn check_modifiable(keyspace: &str, perm: &str, altering_replication: bool) -> Result<()> {
    if is_local_system_keyspace(keyspace) {
        return Err(CassandraError::Unauthorized(format!(
            "{keyspace} keyspace is not user-modifiable."
        )));
    }
    if is_replicated_system_keyspace(keyspace) && !altering_replication {
        return Err(CassandraError::Unauthorized(format!(
            "Cannot {perm} <keyspace {keyspace}>"
        )));
    }
    Ok(())
}

impl CassandraModel {
    /// `CREATE KEYSPACE` with a typed replication (validated like the options form).
    pub fn create_keyspace(
        &mut self,
        cluster: &str,
        keyspace: &str,
        replication: &Replication,
    ) -> Result<()> {
        self.create_keyspace_with_options(cluster, keyspace, &replication.to_map())
    }

    /// `CREATE KEYSPACE ... WITH replication = {options}`.
    pub fn create_keyspace_with_options(
        &mut self,
        cluster: &str,
        keyspace: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<()> {
        validate_name("Keyspace", keyspace)?;
        let version = self.new_uuid();
        let c = self.cluster_mut(cluster)?;
        check_modifiable(keyspace, "CREATE", false)?;
        if c.keyspaces.contains_key(keyspace) {
            return Err(CassandraError::AlreadyExists(format!(
                "Cannot add existing keyspace \"{keyspace}\""
            )));
        }
        let replication = parse_replication(keyspace, options, None, &c.known_datacenters())?;
        c.keyspaces.insert(
            keyspace.to_string(),
            Keyspace {
                name: keyspace.to_string(),
                replication,
                tables: BTreeMap::new(),
            },
        );
        c.schema_changed(version);
        Ok(())
    }

    /// `ALTER KEYSPACE` with a typed replication.
    pub fn alter_keyspace(
        &mut self,
        cluster: &str,
        keyspace: &str,
        replication: &Replication,
    ) -> Result<()> {
        self.alter_keyspace_with_options(cluster, keyspace, &replication.to_map())
    }

    /// `ALTER KEYSPACE ... WITH replication = {options}`. Only the schema changes: existing rows
    /// stay where they are until a rebuild, repair or cleanup moves them.
    pub fn alter_keyspace_with_options(
        &mut self,
        cluster: &str,
        keyspace: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<()> {
        let version = self.new_uuid();
        let c = self.cluster_mut(cluster)?;
        check_modifiable(keyspace, "ALTER", true)?;
        let known = c.known_datacenters();
        let ks = c.keyspaces.get_mut(keyspace).ok_or_else(|| {
            CassandraError::InvalidRequest(format!("Keyspace '{keyspace}' doesn't exist"))
        })?;
        ks.replication = parse_replication(keyspace, options, Some(&ks.replication), &known)?;
        c.schema_changed(version);
        Ok(())
    }

    /// `DROP KEYSPACE`: the schema entry and every node's rows of it go.
    pub fn drop_keyspace(&mut self, cluster: &str, keyspace: &str) -> Result<()> {
        let version = self.new_uuid();
        let c = self.cluster_mut(cluster)?;
        check_modifiable(keyspace, "DROP", false)?;
        if c.keyspaces.remove(keyspace).is_none() {
            return Err(CassandraError::InvalidRequest(format!(
                "Cannot drop non existing keyspace '{keyspace}'."
            )));
        }
        for node in &mut c.nodes {
            node.data.drop_keyspace(keyspace);
        }
        c.schema_changed(version);
        Ok(())
    }

    /// All keyspace names, system ones included, sorted.
    pub fn keyspace_names(&self, cluster: &str) -> Result<Vec<String>> {
        Ok(self.cluster(cluster)?.keyspaces.keys().cloned().collect())
    }

    pub fn keyspace(&self, cluster: &str, keyspace: &str) -> Result<&Keyspace> {
        self.cluster(cluster)?.keyspace(keyspace).ok_or_else(|| {
            CassandraError::InvalidRequest(format!("Keyspace '{keyspace}' does not exist"))
        })
    }

    /// The replication map as `GET /api/v0/ops/keyspace/replication` returns it.
    pub fn replication(&self, cluster: &str, keyspace: &str) -> Result<BTreeMap<String, String>> {
        Ok(self.keyspace(cluster, keyspace)?.replication.to_map())
    }

    /// `CREATE TABLE keyspace.table (columns)`; one column must be the partition key.
    pub fn create_table(
        &mut self,
        cluster: &str,
        keyspace: &str,
        table: &str,
        columns: Vec<Column>,
    ) -> Result<()> {
        validate_name("Table", table)?;
        let version = self.new_uuid();
        let c = self.cluster_mut(cluster)?;
        check_modifiable(keyspace, "CREATE", false)?;
        let ks = c.keyspaces.get_mut(keyspace).ok_or_else(|| {
            CassandraError::InvalidRequest(format!("Keyspace '{keyspace}' doesn't exist"))
        })?;
        if ks.tables.contains_key(table) {
            return Err(CassandraError::AlreadyExists(format!(
                "Cannot add already existing table \"{table}\" to keyspace \"{keyspace}\""
            )));
        }
        if !columns.iter().any(|c| c.kind == ColumnKind::PartitionKey) {
            return Err(CassandraError::InvalidRequest(format!(
                "No PRIMARY KEY specifed for table '{table}' (exactly one required)"
            )));
        }
        ks.tables.insert(
            table.to_string(),
            Table {
                name: table.to_string(),
                columns,
            },
        );
        c.schema_changed(version);
        Ok(())
    }

    /// `DROP TABLE`: the table and its rows on every node.
    pub fn drop_table(&mut self, cluster: &str, keyspace: &str, table: &str) -> Result<()> {
        let version = self.new_uuid();
        let c = self.cluster_mut(cluster)?;
        check_modifiable(keyspace, "DROP", false)?;
        let missing =
            || CassandraError::InvalidRequest(format!("Table '{keyspace}.{table}' doesn't exist"));
        let ks = c.keyspaces.get_mut(keyspace).ok_or_else(missing)?;
        ks.tables.remove(table).ok_or_else(missing)?;
        for node in &mut c.nodes {
            node.data.drop_table(keyspace, table);
        }
        c.schema_changed(version);
        Ok(())
    }

    /// The tables of a keyspace, by name.
    pub fn tables(&self, cluster: &str, keyspace: &str) -> Result<Vec<&Table>> {
        Ok(self.keyspace(cluster, keyspace)?.tables.values().collect())
    }

    /// `StorageProxy.describeSchemaVersions`: schema version → ips of the nodes holding it; nodes
    /// that are down are listed under `UNREACHABLE`, so agreement means exactly one key.
    pub fn schema_versions(&self, cluster: &str) -> Result<BTreeMap<String, Vec<String>>> {
        let c = self.cluster(cluster)?;
        let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for idx in c.known_members() {
            let node = &c.nodes[idx];
            let key = if node.up {
                node.schema_version.to_string()
            } else {
                "UNREACHABLE".to_string()
            };
            versions.entry(key).or_default().push(node.ip.clone());
        }
        Ok(versions)
    }

    /// Whether every known node is up and on the same schema version.
    pub fn schema_agreement(&self, cluster: &str) -> Result<bool> {
        Ok(self.schema_versions(cluster)?.len() == 1)
    }

    /// The current schema version of the cluster (what a node that is up holds).
    pub fn cluster_schema_version(&self, cluster: &str) -> Result<uuid::Uuid> {
        Ok(self.cluster(cluster)?.schema_version)
    }
}

/// Keyspaces whose rows a node holds (every keyspace but the local ones).
pub(crate) fn distributed_keyspaces(cluster: &Cluster) -> Vec<(String, Replication)> {
    cluster
        .keyspaces
        .values()
        .filter(|ks| ks.replication != Replication::Local)
        .map(|ks| (ks.name.clone(), ks.replication.clone()))
        .collect()
}

/// Nodes that are members of the ring in a datacenter (`getTopology().getDatacenterEndpoints`).
pub(crate) fn ring_members_in(cluster: &Cluster, dc: &str) -> usize {
    cluster.ring_members().filter(|&idx| cluster.nodes[idx].datacenter == dc).count()
}
