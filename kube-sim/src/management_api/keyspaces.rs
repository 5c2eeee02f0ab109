//! Keyspace and table operations (`KeyspaceOpsResources`, `TableOpsResources` and their v1
//! counterparts): schema changes, and the table operations that run as jobs — blocking in v0
//! (200 once done), asynchronous in v1 (202 with the job id).

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value, json};

use super::reply::{
    Answer, Reply, bool_field, int_field, is_blank, null_body, objects_field, string_field,
    strings_field,
};
use super::{Call, Mode};
use crate::cassandra::{CassandraError, Column, ColumnKind, NodeOperation, TableOperation};

/// The default compaction of a table created without options, as `system_schema.tables` shows
/// it.
fn default_compaction() -> Value {
    json!({
        "class": "org.apache.cassandra.db.compaction.SizeTieredCompactionStrategy",
        "max_threshold": "32",
        "min_threshold": "4",
    })
}

/// `GET /api/v0/ops/keyspace`: every keyspace, or only `keyspaceName` if it exists.
pub(super) fn list(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    let wanted = call.query.get("keyspaceName").map(str::to_string);
    let names: Vec<String> = call
        .model
        .keyspace_names(&call.node.cluster)?
        .into_iter()
        .filter(|name| is_blank(wanted.as_deref()) || wanted.as_deref() == Some(name))
        .collect();
    Ok(Reply::json(200, &json!(names)))
}

pub(super) fn create(call: &mut Call<'_>) -> Answer {
    let (keyspace, options) = replication_request(call, "Keyspace creation failed.")?;
    call.cassandra()?;
    // The agent creates with IF NOT EXISTS.
    match call.model.create_keyspace_with_options(&call.node.cluster, &keyspace, &options) {
        Ok(()) | Err(CassandraError::AlreadyExists(_)) => Ok(Reply::ok()),
        Err(error) => Err(error.into()),
    }
}

pub(super) fn alter(call: &mut Call<'_>) -> Answer {
    let (keyspace, options) = replication_request(call, "Altering Keyspace failed.")?;
    call.cassandra()?;
    call.model.alter_keyspace_with_options(&call.node.cluster, &keyspace, &options)?;
    Ok(Reply::ok())
}

/// A `CreateOrAlterKeyspaceRequest` as NetworkTopologyStrategy options (the agent builds the
/// statement with `withNetworkTopologyStrategy(dc → rf)`).
fn replication_request(
    call: &Call<'_>,
    failure: &str,
) -> Result<(String, BTreeMap<String, String>), Reply> {
    let Some(body) = call.json_body()? else {
        return Err(null_body("createOrAlterKeyspaceRequest", "keyspaceName"));
    };
    let keyspace = string_field(&body, "keyspace_name")?;
    let settings = objects_field(&body, "replication_settings")?;
    let Some(keyspace) = keyspace.filter(|name| !is_blank(Some(name))) else {
        return Err(Reply::bad_request(format!(
            "{failure} Non-empty 'keyspace_name' must be provided"
        )));
    };
    if settings.is_empty() {
        return Err(Reply::bad_request(format!(
            "{failure} 'replication_settings' must be provided"
        )));
    }
    let mut options =
        BTreeMap::from([("class".to_string(), "NetworkTopologyStrategy".to_string())]);
    for setting in settings {
        let datacenter = string_field(setting, "dc_name")?
            .ok_or_else(|| missing_creator_property("dc_name", 0))?;
        let factor = int_field(setting, "replication_factor")?
            .ok_or_else(|| missing_creator_property("replication_factor", 1))?;
        options.insert(datacenter, factor.to_string());
    }
    Ok((keyspace, options))
}

/// Jackson refuses a `@JsonProperty(required = true)` creator property that is absent.
fn missing_creator_property(name: &str, index: usize) -> Reply {
    Reply::bad_request(format!(
        "Missing required creator property '{name}' (index {index})"
    ))
}

/// `GET /api/v0/ops/keyspace/replication?keyspaceName=`: the replication map, e.g.
/// `{"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "dc1": "3"}`.
pub(super) fn replication(call: &mut Call<'_>) -> Answer {
    let Some(keyspace) = call.query.get("keyspaceName").filter(|name| !is_blank(Some(name))) else {
        return Err(Reply::bad_request(
            "Get keyspace replication failed. Non-empty 'keyspaceName' must be provided",
        ));
    };
    let keyspace = keyspace.to_string();
    call.cassandra()?;
    if !call.model.keyspace_names(&call.node.cluster)?.contains(&keyspace) {
        return Err(Reply::text(
            404,
            format!("Get keyspace replication failed. Keyspace '{keyspace}' does not exist."),
        ));
    }
    let replication = call.model.replication(&call.node.cluster, &keyspace)?;
    Ok(Reply::json(200, &json!(replication)))
}

/// `nodetool refresh`: the model has no sstables to load.
pub(super) fn refresh(call: &mut Call<'_>) -> Answer {
    if is_blank(call.query.get("keyspaceName")) {
        return Err(Reply::bad_request("Must provide a keyspace name"));
    }
    if is_blank(call.query.get("table")) {
        return Err(Reply::bad_request("table must be provided"));
    }
    call.cassandra()?;
    Ok(Reply::ok())
}

/// `POST /api/v0/ops/keyspace/cleanup`: blocking; answers the finished job's id.
pub(super) fn cleanup_blocking(call: &mut Call<'_>) -> Answer {
    cleanup_as(call, Mode::Blocking)
}

/// `POST /api/v1/ops/keyspace/cleanup`: 202 with the job id.
pub(super) fn cleanup(call: &mut Call<'_>) -> Answer {
    cleanup_as(call, Mode::Async)
}

fn cleanup_as(call: &mut Call<'_>, mode: Mode) -> Answer {
    let request = KeyspaceRequest::read(call)?;
    // A blank keyspace is NON_LOCAL_STRATEGY: every distributed keyspace.
    let keyspace = request.keyspace.filter(|name| !is_blank(Some(name)));
    let local = keyspace.as_deref().is_some_and(|name| {
        name.eq_ignore_ascii_case("system") || name.eq_ignore_ascii_case("system_schema")
    });
    if local {
        return Ok(Reply::ok());
    }
    call.cassandra()?;
    let operation = NodeOperation::Cleanup {
        keyspace,
        tables: request.tables,
    };
    match mode {
        Mode::Blocking => Ok(Reply::text(200, call.run_now(operation)?)),
        Mode::Async => Ok(Reply::accepted(call.submit(operation)?)),
    }
}

/// `GET /api/v0/ops/tables?keyspaceName=`: table names (none for an unknown keyspace).
pub(super) fn table_names(call: &mut Call<'_>) -> Answer {
    let keyspace = table_list_keyspace(call)?;
    let names: Vec<String> = call
        .model
        .tables(&call.node.cluster, &keyspace)
        .map(|tables| tables.into_iter().map(|table| table.name.clone()).collect())
        .unwrap_or_default();
    Ok(Reply::json(200, &json!(names)))
}

/// `GET /api/v1/ops/tables?keyspaceName=`: tables with their compaction.
pub(super) fn tables(call: &mut Call<'_>) -> Answer {
    let keyspace = table_list_keyspace(call)?;
    let tables: Vec<Value> = call
        .model
        .tables(&call.node.cluster, &keyspace)
        .map(|tables| {
            tables
                .into_iter()
                .map(|table| json!({"name": table.name, "compaction": default_compaction()}))
                .collect()
        })
        .unwrap_or_default();
    Ok(Reply::json(200, &json!(tables)))
}

fn table_list_keyspace(call: &Call<'_>) -> Result<String, Reply> {
    let Some(keyspace) = call.query.get("keyspaceName").filter(|name| !is_blank(Some(name))) else {
        return Err(Reply::bad_request(
            "List tables failed. Non-empty 'keyspaceName' must be provided",
        ));
    };
    let keyspace = keyspace.to_string();
    call.cassandra()?;
    Ok(keyspace)
}

/// `POST /api/v0/ops/tables/create` with a `CreateTableRequest`, validated as the agent does.
pub(super) fn create_table(call: &mut Call<'_>) -> Answer {
    let Some(body) = call.json_body()? else {
        return Err(null_body("request", "keyspaceName"));
    };
    let request = TableRequest::read(&body)?;
    request
        .validate()
        .map_err(|message| Reply::bad_request(format!("Table creation failed: {message}")))?;
    call.cassandra()?;
    let columns = request.model_columns();
    // The agent creates with IF NOT EXISTS.
    match call.model.create_table(
        &call.node.cluster,
        &request.keyspace,
        &request.table,
        columns,
    ) {
        Ok(()) | Err(CassandraError::AlreadyExists(_)) => Ok(Reply::ok()),
        Err(error) => Err(error.into()),
    }
}

pub(super) fn flush_blocking(call: &mut Call<'_>) -> Answer {
    flush_as(call, Mode::Blocking)
}

pub(super) fn flush(call: &mut Call<'_>) -> Answer {
    flush_as(call, Mode::Async)
}

fn flush_as(call: &mut Call<'_>, mode: Mode) -> Answer {
    let request = KeyspaceRequest::read(call)?;
    let keyspace = every_or_one(request.keyspace);
    if mode == Mode::Async {
        require_keyspace(call, keyspace.as_deref())?;
    }
    call.cassandra()?;
    table_job(call, TableOperation::Flush, keyspace, request.tables, mode)
}

pub(super) fn garbage_collect_blocking(call: &mut Call<'_>) -> Answer {
    garbage_collect_as(call, Mode::Blocking)
}

pub(super) fn garbage_collect(call: &mut Call<'_>) -> Answer {
    garbage_collect_as(call, Mode::Async)
}

fn garbage_collect_as(call: &mut Call<'_>, mode: Mode) -> Answer {
    let request = KeyspaceRequest::read(call)?;
    let keyspace = every_or_one(request.keyspace);
    if mode == Mode::Async {
        require_keyspace(call, keyspace.as_deref())?;
    }
    let option = call.query.get("tombstoneOption").filter(|text| !is_blank(Some(text)));
    if option
        .is_some_and(|text| !text.eq_ignore_ascii_case("ROW") && !text.eq_ignore_ascii_case("CELL"))
    {
        return Err(Reply::bad_request(
            "tombstoneOption must be either ROW or CELL",
        ));
    }
    call.cassandra()?;
    table_job(
        call,
        TableOperation::GarbageCollect,
        keyspace,
        request.tables,
        mode,
    )
}

pub(super) fn scrub_blocking(call: &mut Call<'_>) -> Answer {
    scrub_as(call, Mode::Blocking)
}

pub(super) fn scrub(call: &mut Call<'_>) -> Answer {
    scrub_as(call, Mode::Async)
}

fn scrub_as(call: &mut Call<'_>, mode: Mode) -> Answer {
    let Some(body) = call.json_body()? else {
        return Err(null_body("scrubRequest", "tables"));
    };
    for flag in [
        "disable_snapshot",
        "skip_corrupted",
        "check_data",
        "reinsert_overflowed_ttl",
    ] {
        bool_field(&body, flag)?;
    }
    int_field(&body, "jobs")?;
    let keyspace = every_or_one(string_field(&body, "keyspace_name")?);
    let tables = strings_field(&body, "tables")?;
    call.cassandra()?;
    table_job(call, TableOperation::Scrub, keyspace, tables, mode)
}

pub(super) fn upgrade_sstables_blocking(call: &mut Call<'_>) -> Answer {
    upgrade_sstables_as(call, Mode::Blocking)
}

pub(super) fn upgrade_sstables(call: &mut Call<'_>) -> Answer {
    upgrade_sstables_as(call, Mode::Async)
}

fn upgrade_sstables_as(call: &mut Call<'_>, mode: Mode) -> Answer {
    let request = KeyspaceRequest::read(call)?;
    let keyspace = every_or_one(request.keyspace);
    call.cassandra()?;
    table_job(
        call,
        TableOperation::UpgradeSSTables,
        keyspace,
        request.tables,
        mode,
    )
}

pub(super) fn compact_blocking(call: &mut Call<'_>) -> Answer {
    compact_as(call, Mode::Blocking)
}

pub(super) fn compact(call: &mut Call<'_>) -> Answer {
    compact_as(call, Mode::Async)
}

/// A `CompactRequest` with `nodetool compact`'s option checks; token ranges and user-defined
/// files are accepted, but the model compacts whole tables (it has no sstables).
fn compact_as(call: &mut Call<'_>, mode: Mode) -> Answer {
    let Some(body) = call.json_body()? else {
        return Err(null_body("compactRequest", "startToken"));
    };
    let split_output = bool_field(&body, "split_output")?.unwrap_or(false);
    let user_defined = bool_field(&body, "user_defined")?.unwrap_or(false);
    let start_token = string_field(&body, "start_token")?;
    let end_token = string_field(&body, "end_token")?;
    let files = strings_field(&body, "user_defined_files")?;
    let keyspace = string_field(&body, "keyspace_name")?;
    let tables = strings_field(&body, "tables")?;
    let token_given = !(is_blank(start_token.as_deref()) && is_blank(end_token.as_deref()));
    if split_output && (user_defined || token_given) {
        return Err(Reply::bad_request(
            "Invalid option combination: Can not use split-output here",
        ));
    }
    if user_defined && token_given {
        return Err(Reply::bad_request(
            "Invalid option combination: Can not provide tokens when using user-defined",
        ));
    }
    if user_defined && files.is_empty() {
        return Err(Reply::bad_request(
            "Must provide a file if setting userDefined to true",
        ));
    }
    call.cassandra()?;
    let (keyspace, tables) = if user_defined {
        (None, Vec::new())
    } else {
        (every_or_one(keyspace), tables)
    };
    table_job(call, TableOperation::Compact, keyspace, tables, mode)
}

/// `GET /api/v1/ops/tables/compactions`: compactions in progress (none outlive a call here).
pub(super) fn compactions(call: &mut Call<'_>) -> Answer {
    call.cassandra()?;
    Ok(Reply::json(200, &json!([])))
}

/// Runs a table operation as a job: v0 waits and answers OK (500 with the job's error), v1
/// answers 202 with the job id.
fn table_job(
    call: &mut Call<'_>,
    operation: TableOperation,
    keyspace: Option<String>,
    tables: Vec<String>,
    mode: Mode,
) -> Answer {
    let operation = NodeOperation::Table {
        operation,
        keyspace,
        tables,
    };
    match mode {
        Mode::Blocking => call.run_now(operation).map(|_| Reply::ok()),
        Mode::Async => Ok(Reply::accepted(call.submit(operation)?)),
    }
}

/// A blank keyspace, or `ALL`, is every keyspace (`None`).
fn every_or_one(keyspace: Option<String>) -> Option<String> {
    keyspace.filter(|name| !is_blank(Some(name)) && !name.eq_ignore_ascii_case("ALL"))
}

/// The v1 flush and garbagecollect check the keyspace first (`BaseResources.keyspaceExists`).
fn require_keyspace(call: &Call<'_>, keyspace: Option<&str>) -> Result<(), Reply> {
    let Some(keyspace) = keyspace else {
        return Ok(());
    };
    call.cassandra()?;
    if call.model.keyspace_names(&call.node.cluster)?.iter().any(|name| name == keyspace) {
        Ok(())
    } else {
        Err(Reply::bad_request(format!(
            "keyspace {keyspace} does not exists"
        )))
    }
}

/// The agent's `KeyspaceRequest`: `jobs`, `keyspace_name`, `tables`.
struct KeyspaceRequest {
    keyspace: Option<String>,
    tables: Vec<String>,
}

impl KeyspaceRequest {
    fn read(call: &Call<'_>) -> Result<KeyspaceRequest, Reply> {
        let Some(body) = call.json_body()? else {
            return Err(null_body("keyspaceRequest", "tables"));
        };
        int_field(&body, "jobs")?;
        Ok(KeyspaceRequest {
            keyspace: string_field(&body, "keyspace_name")?,
            tables: strings_field(&body, "tables")?,
        })
    }
}

/// A column of `CreateTableRequest`.
struct ColumnRequest {
    name: Option<String>,
    cql_type: Option<String>,
    kind: Option<ColumnKind>,
    position: i64,
    order: Option<String>,
}

/// The agent's `CreateTableRequest`.
struct TableRequest {
    keyspace: String,
    table: String,
    columns: Vec<ColumnRequest>,
}

impl TableRequest {
    fn read(body: &Map<String, Value>) -> Result<TableRequest, Reply> {
        let columns = objects_field(body, "columns")?
            .into_iter()
            .map(ColumnRequest::read)
            .collect::<Result<Vec<_>, Reply>>()?;
        Ok(TableRequest {
            keyspace: string_field(body, "keyspace_name")?.unwrap_or_default(),
            table: string_field(body, "table_name")?.unwrap_or_default(),
            columns,
        })
    }

    /// `CreateTableRequest.validate`, with its messages.
    fn validate(&self) -> Result<(), String> {
        if is_blank(Some(&self.keyspace)) {
            return Err("'keyspace_name' must not be empty".into());
        }
        if is_blank(Some(&self.table)) {
            return Err("'table_name' must not be empty".into());
        }
        if self.columns.is_empty() {
            return Err("'columns' must not be empty".into());
        }
        let mut names = HashSet::new();
        for (index, column) in self.columns.iter().enumerate() {
            column.validate(index)?;
            let name = column.name.clone().unwrap_or_default();
            if !names.insert(name.clone()) {
                return Err(format!("duplicated column name: '{name}'"));
            }
        }
        self.validate_positions(
            ColumnKind::PartitionKey,
            "partition key",
            "partition key columns",
        )?;
        self.validate_positions(
            ColumnKind::ClusteringColumn,
            "clustering column",
            "clustering columns",
        )
    }

    /// Positions of the key columns of one kind run 0, 1, ... with one column each.
    fn validate_positions(&self, kind: ColumnKind, one: &str, many: &str) -> Result<(), String> {
        let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
        for column in self.columns.iter().filter(|column| column.kind == Some(kind)) {
            *counts.entry(column.position).or_default() += 1;
        }
        if kind == ColumnKind::PartitionKey && counts.is_empty() {
            return Err("invalid primary key: partition key is empty".into());
        }
        for position in 0..counts.len() as i64 {
            match counts.get(&position) {
                None => {
                    return Err(format!(
                        "invalid primary key: missing {one} at position {position}"
                    ));
                }
                Some(&count) if count > 1 => {
                    return Err(format!(
                        "invalid primary key: found {count} {many} at position {position}"
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The model's columns: partition key, clustering columns (by position), then the rest.
    fn model_columns(&self) -> Vec<Column> {
        let mut ordered: Vec<&ColumnRequest> = self.columns.iter().collect();
        ordered.sort_by_key(|column| match column.kind {
            Some(ColumnKind::PartitionKey) => (0, column.position),
            Some(ColumnKind::ClusteringColumn) => (1, column.position),
            _ => (2, 0),
        });
        ordered
            .into_iter()
            .map(|column| Column {
                name: column.name.clone().unwrap_or_default(),
                cql_type: column.cql_type.clone().unwrap_or_default(),
                kind: column.kind.unwrap_or_default(),
            })
            .collect()
    }
}

impl ColumnRequest {
    fn read(body: &Map<String, Value>) -> Result<ColumnRequest, Reply> {
        let kind = match string_field(body, "kind")? {
            None => None,
            Some(text) => Some(
                serde_json::from_value::<ColumnKind>(Value::String(text.clone())).map_err(
                    |_| {
                        Reply::bad_request(format!(
                            "Cannot deserialize value of type `ColumnKind` from String \"{text}\": not one of the values accepted for Enum class: [PARTITION_KEY, CLUSTERING_COLUMN, REGULAR, STATIC]"
                        ))
                    },
                )?,
            ),
        };
        let order = string_field(body, "order")?;
        if let Some(order) = &order
            && order != "ASC"
            && order != "DESC"
        {
            return Err(Reply::bad_request(format!(
                "Cannot deserialize value of type `ClusteringOrder` from String \"{order}\": not one of the values accepted for Enum class: [ASC, DESC]"
            )));
        }
        Ok(ColumnRequest {
            name: string_field(body, "name")?,
            cql_type: string_field(body, "type")?,
            kind,
            position: int_field(body, "position")?.unwrap_or(0),
            order,
        })
    }

    fn validate(&self, index: usize) -> Result<(), String> {
        if is_blank(self.name.as_deref()) {
            return Err(format!("'columns[{index}].name' must not be empty"));
        }
        if is_blank(self.cql_type.as_deref()) {
            return Err(format!("'columns[{index}].type' must not be empty"));
        }
        match self.kind {
            None => Err(format!("'columns[{index}].kind' must not be null")),
            Some(ColumnKind::PartitionKey) if self.position < 0 => Err(format!(
                "'columns[{index}].position' must not be negative for partition key columns"
            )),
            Some(ColumnKind::ClusteringColumn) if self.position < 0 => Err(format!(
                "'columns[{index}].position' must not be negative for clustering columns"
            )),
            Some(ColumnKind::ClusteringColumn) if self.order.is_none() => Err(format!(
                "'columns[{index}].order' must not be empty for clustering columns"
            )),
            Some(_) => Ok(()),
        }
    }
}
