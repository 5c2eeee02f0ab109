//! The rows one node holds, each a cell with its write timestamp.

use std::collections::{BTreeMap, BTreeSet};

/// One version of a row on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// `None` is a tombstone.
    pub value: Option<String>,
    /// Write time in microseconds, as CQL's `USING TIMESTAMP`.
    pub timestamp: i64,
}

impl Cell {
    /// Cassandra's reconciliation: the newer timestamp wins; on a tie a tombstone wins, then the
    /// greater value (`Cells.reconcile`).
    pub fn supersedes(&self, other: &Cell) -> bool {
        if self.timestamp != other.timestamp {
            return self.timestamp > other.timestamp;
        }
        match (&self.value, &other.value) {
            (None, Some(_)) => true,
            (Some(a), Some(b)) => a > b,
            _ => false,
        }
    }

    fn size(&self, key: &str) -> u64 {
        (key.len() + self.value.as_ref().map_or(0, String::len)) as u64
    }
}

type TableRows = BTreeMap<String, Cell>;

/// The rows one node holds: keyspace → table → partition key → cell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NodeData {
    keyspaces: BTreeMap<String, BTreeMap<String, TableRows>>,
}

impl NodeData {
    pub(crate) fn get(&self, keyspace: &str, table: &str, key: &str) -> Option<&Cell> {
        self.keyspaces.get(keyspace)?.get(table)?.get(key)
    }

    /// Keeps `cell` unless the node already has a version that supersedes it; true if it changed.
    pub(crate) fn merge(&mut self, keyspace: &str, table: &str, key: &str, cell: Cell) -> bool {
        let rows = self
            .keyspaces
            .entry(keyspace.to_string())
            .or_default()
            .entry(table.to_string())
            .or_default();
        match rows.get(key) {
            Some(existing) if !cell.supersedes(existing) => false,
            _ => {
                rows.insert(key.to_string(), cell);
                true
            }
        }
    }

    pub(crate) fn remove(&mut self, keyspace: &str, table: &str, key: &str) -> bool {
        let Some(rows) = self.keyspaces.get_mut(keyspace).and_then(|t| t.get_mut(table)) else {
            return false;
        };
        rows.remove(key).is_some()
    }

    pub(crate) fn tables(&self, keyspace: &str) -> impl Iterator<Item = (&String, &TableRows)> {
        self.keyspaces.get(keyspace).into_iter().flatten()
    }

    pub(crate) fn keyspaces(
        &self,
    ) -> impl Iterator<Item = (&String, &BTreeMap<String, TableRows>)> {
        self.keyspaces.iter()
    }

    pub(crate) fn drop_keyspace(&mut self, keyspace: &str) {
        self.keyspaces.remove(keyspace);
    }

    pub(crate) fn drop_table(&mut self, keyspace: &str, table: &str) {
        if let Some(tables) = self.keyspaces.get_mut(keyspace) {
            tables.remove(table);
        }
    }

    /// Rows that are not tombstones.
    pub(crate) fn live_rows(
        &self,
        keyspace: &str,
        table: &str,
    ) -> impl Iterator<Item = (&String, &String)> {
        self.keyspaces
            .get(keyspace)
            .and_then(|t| t.get(table))
            .into_iter()
            .flatten()
            .filter_map(|(key, cell)| cell.value.as_ref().map(|value| (key, value)))
    }

    pub(crate) fn load_bytes(&self) -> u64 {
        self.keyspaces
            .values()
            .flat_map(|tables| tables.values())
            .flat_map(|rows| rows.iter())
            .filter(|(_, cell)| cell.value.is_some())
            .map(|(key, cell)| cell.size(key))
            .sum()
    }

    /// Every row of every keyspace but `keep`, replaced by `rows` (a Medusa restore).
    pub(crate) fn replace_except(&mut self, keep: &BTreeSet<String>, rows: NodeData) {
        self.keyspaces.retain(|keyspace, _| keep.contains(keyspace));
        for (keyspace, tables) in rows.keyspaces {
            if !keep.contains(&keyspace) {
                self.keyspaces.insert(keyspace, tables);
            }
        }
    }
}
