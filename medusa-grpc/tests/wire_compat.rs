//! Wire compatibility with the real Medusa proto (k8ssandra-operator `pkg/medusa/medusa.proto`,
//! kept in the steering repo's `shared/compat/medusa/`): every message, enum and RPC of the proto
//! has its Rust counterpart with the same field numbers, types and names, in both directions.
//!
//! The proto is read at test time only (never at build time) and compiled in pure Rust with
//! protox. A missing proto fails the test: it is what the test is about.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::PathBuf;

use medusa_grpc::backup_request::Mode;
use medusa_grpc::*;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, Value};

/// The proto, relative to the workspace root (`shared/` lies beside the repository).
const PROTO_FROM_WORKSPACE: &str = "../shared/compat/medusa/medusa.proto";

fn proto_pool() -> DescriptorPool {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let proto = workspace.join(PROTO_FROM_WORKSPACE);
    assert!(
        proto.is_file(),
        "the reference proto {} is missing: the wire-compatibility test needs the steering repo's \
         shared/compat/medusa/medusa.proto beside the workspace (it is never skipped)",
        proto.display()
    );
    let dir = proto.parent().expect("the proto path has a folder");
    let descriptors = protox::compile([&proto], [dir])
        .unwrap_or_else(|e| panic!("{} does not compile: {e}", proto.display()));
    DescriptorPool::from_file_descriptor_set(descriptors)
        .unwrap_or_else(|e| panic!("{} gives no descriptor pool: {e}", proto.display()))
}

/// What a Rust field's value must read as on the proto's side.
#[derive(Clone)]
enum Wire {
    Scalar(Value),
    Enum {
        enum_name: &'static str,
        number: i32,
    },
    Message {
        message_name: &'static str,
        encoded: Vec<u8>,
    },
    Messages {
        message_name: &'static str,
        encoded: Vec<Vec<u8>>,
    },
}

/// A Rust field value and what it must read as on the wire. The helpers below are typed by the
/// proto's scalar type, so a Rust field of another type does not compile.
struct Field<T> {
    rust: T,
    wire: Wire,
}

fn string(value: &str) -> Field<String> {
    Field {
        rust: value.to_string(),
        wire: Wire::Scalar(Value::String(value.to_string())),
    }
}

fn int32(value: i32) -> Field<i32> {
    Field {
        rust: value,
        wire: Wire::Scalar(Value::I32(value)),
    }
}

fn int64(value: i64) -> Field<i64> {
    Field {
        rust: value,
        wire: Wire::Scalar(Value::I64(value)),
    }
}

fn repeated_int64(values: &[i64]) -> Field<Vec<i64>> {
    Field {
        rust: values.to_vec(),
        wire: Wire::Scalar(Value::List(values.iter().map(|v| Value::I64(*v)).collect())),
    }
}

fn enumeration(enum_name: &'static str, number: i32) -> Field<i32> {
    Field {
        rust: number,
        wire: Wire::Enum { enum_name, number },
    }
}

fn message<M: Message>(message_name: &'static str, value: M) -> Field<Option<M>> {
    let encoded = value.encode_to_vec();
    Field {
        rust: Some(value),
        wire: Wire::Message {
            message_name,
            encoded,
        },
    }
}

fn messages<M: Message>(message_name: &'static str, values: Vec<M>) -> Field<Vec<M>> {
    let encoded = values.iter().map(Message::encode_to_vec).collect();
    Field {
        rust: values,
        wire: Wire::Messages {
            message_name,
            encoded,
        },
    }
}

/// `backupName` → `backup_name`: the Rust name of a proto field.
fn snake_case(proto_name: &str) -> String {
    let mut out = String::new();
    for c in proto_name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The proto value `wire` stands for, once checked against the field's declared kind.
fn resolve(
    pool: &DescriptorPool,
    field: &prost_reflect::FieldDescriptor,
    wire: &Wire,
) -> Result<Value, String> {
    let decode = |name: &str, bytes: &[u8]| -> Result<Value, String> {
        let desc =
            pool.get_message_by_name(name).ok_or(format!("no message {name} in the proto"))?;
        DynamicMessage::decode(desc, bytes)
            .map(Value::Message)
            .map_err(|e| format!("{name} does not decode: {e}"))
    };
    let kind_name = match field.kind() {
        Kind::Message(m) => Some(m.full_name().to_string()),
        Kind::Enum(e) => Some(e.full_name().to_string()),
        _ => None,
    };
    match wire {
        Wire::Scalar(value) => Ok(value.clone()),
        Wire::Enum { enum_name, number } => {
            if kind_name.as_deref() != Some(enum_name) {
                return Err(format!(
                    "is {:?} in the proto, {enum_name} in Rust",
                    field.kind()
                ));
            }
            Ok(Value::EnumNumber(*number))
        }
        Wire::Message {
            message_name,
            encoded,
        } => {
            if kind_name.as_deref() != Some(message_name) || field.is_list() {
                return Err(format!(
                    "is {:?} in the proto, {message_name} in Rust",
                    field.kind()
                ));
            }
            decode(message_name, encoded)
        }
        Wire::Messages {
            message_name,
            encoded,
        } => {
            if kind_name.as_deref() != Some(message_name) || !field.is_list() {
                return Err(format!(
                    "is {:?} in the proto, repeated {message_name} in Rust",
                    field.kind()
                ));
            }
            encoded
                .iter()
                .map(|bytes| decode(message_name, bytes))
                .collect::<Result<_, _>>()
                .map(Value::List)
        }
    }
}

/// Checks one message both ways: the Rust value read as the proto's `DynamicMessage` has every
/// field by name with the expected value, and the `DynamicMessage` built by name decodes to the
/// Rust value. Returns the differences.
fn check_message<M: Message + Default + PartialEq + Debug>(
    pool: &DescriptorPool,
    name: &str,
    rust: M,
    fields: Vec<(&'static str, Wire)>,
) -> Vec<String> {
    let Some(desc) = pool.get_message_by_name(name) else {
        return vec![format!("message {name} is in Rust but not in the proto")];
    };
    let mut problems = Vec::new();
    let rust_names: BTreeSet<&str> = fields.iter().map(|(n, _)| *n).collect();
    for field in desc.fields() {
        if !rust_names.contains(snake_case(field.name()).as_str()) {
            problems.push(format!(
                "{name}.{} (field {}) has no Rust field {}",
                field.name(),
                field.number(),
                snake_case(field.name())
            ));
        }
    }
    let by_rust_name: BTreeMap<String, prost_reflect::FieldDescriptor> =
        desc.fields().map(|f| (snake_case(f.name()), f)).collect();
    let mut expected = Vec::new();
    for (rust_name, wire) in &fields {
        let Some(field) = by_rust_name.get(*rust_name) else {
            problems.push(format!("Rust field {name}.{rust_name} is not in the proto"));
            continue;
        };
        match resolve(pool, field, wire) {
            Ok(value) => expected.push((field.clone(), value)),
            Err(e) => problems.push(format!("{name}.{}: {e}", field.name())),
        }
    }

    // Rust → proto.
    match DynamicMessage::decode(desc.clone(), rust.encode_to_vec().as_slice()) {
        Ok(dynamic) => {
            for (field, value) in &expected {
                let got = dynamic.get_field_by_name(field.name());
                if !dynamic.has_field_by_name(field.name()) || got.as_deref() != Some(value) {
                    problems.push(format!(
                        "{name}.{} (field {}): Rust wrote {value:?}, the proto reads {got:?}",
                        field.name(),
                        field.number()
                    ));
                }
            }
            let unknown: Vec<u32> = dynamic.unknown_fields().map(|f| f.number()).collect();
            if !unknown.is_empty() {
                problems.push(format!(
                    "{name}: Rust wrote field numbers {unknown:?} the proto lacks"
                ));
            }
        }
        Err(e) => problems.push(format!(
            "{name}: the Rust encoding does not decode as the proto: {e}"
        )),
    }

    // proto → Rust.
    let mut dynamic = DynamicMessage::new(desc);
    for (field, value) in &expected {
        if let Err(e) = dynamic.try_set_field_by_name(field.name(), value.clone()) {
            problems.push(format!("{name}.{}: {e}", field.name()));
        }
    }
    match M::decode(dynamic.encode_to_vec().as_slice()) {
        Ok(decoded) if decoded == rust => {}
        Ok(decoded) => problems.push(format!(
            "{name}: the proto's encoding decodes in Rust as {decoded:?}, not {rust:?}"
        )),
        Err(e) => problems.push(format!(
            "{name}: the proto's encoding does not decode in Rust: {e}"
        )),
    }
    problems
}

/// One case per message: the Rust value with every field set (the struct literal names them
/// all, so a Rust field the test forgets does not compile) and what each must read as.
macro_rules! case {
    ($pool:expr, $ty:ident { $($field:ident : $spec:expr),* $(,)? }) => {{
        $(let $field = $spec;)*
        let wires = vec![$((stringify!($field), $field.wire.clone())),*];
        let value = $ty { $($field: $field.rust),* };
        (stringify!($ty), check_message::<$ty>($pool, stringify!($ty), value, wires))
    }};
}

fn node(host: &str, tokens: &[i64], dc: &str, rack: &str) -> BackupNode {
    BackupNode {
        host: host.to_string(),
        tokens: tokens.to_vec(),
        datacenter: dc.to_string(),
        rack: rack.to_string(),
    }
}

fn summary(name: &str, base: i64) -> BackupSummary {
    BackupSummary {
        backup_name: name.to_string(),
        start_time: base + 1,
        finish_time: base + 2,
        total_nodes: 3,
        finished_nodes: 2,
        nodes: vec![
            node("a", &[1, -2], "dc1", "r1"),
            node("b", &[3], "dc2", "r2"),
        ],
        status: StatusType::Failed as i32,
        backup_type: "full".to_string(),
        total_size: base + 3,
        total_objects: base + 4,
    }
}

const STATUS: &str = "StatusType";

/// Each field gets a value no other field of its message has, none of them a default (int64
/// values beyond the int32 range, enum values other than 0).
fn message_cases(pool: &DescriptorPool) -> Vec<(&'static str, Vec<String>)> {
    vec![
        case!(
            pool,
            BackupRequest {
                name: string("nightly-1"),
                mode: enumeration("BackupRequest.Mode", Mode::Full as i32),
            }
        ),
        case!(
            pool,
            BackupResponse {
                backup_name: string("nightly-2"),
                status: enumeration(STATUS, StatusType::Failed as i32),
            }
        ),
        case!(
            pool,
            BackupStatusRequest {
                backup_name: string("nightly-3")
            }
        ),
        case!(
            pool,
            BackupStatusResponse {
                start_time: string("2024-01-01 00:00:00"),
                finish_time: string("2024-01-01 00:05:00"),
                status: enumeration(STATUS, StatusType::Unknown as i32),
            }
        ),
        case!(
            pool,
            DeleteBackupRequest {
                name: string("nightly-4")
            }
        ),
        case!(
            pool,
            DeleteBackupResponse {
                name: string("nightly-5"),
                status: enumeration(STATUS, StatusType::Success as i32),
            }
        ),
        case!(
            pool,
            GetBackupRequest {
                backup_name: string("nightly-6")
            }
        ),
        case!(
            pool,
            GetBackupResponse {
                backup: message("BackupSummary", summary("nightly-7", 7_000_000_000)),
                status: enumeration(STATUS, StatusType::Unknown as i32),
            }
        ),
        case!(pool, GetBackupsRequest {}),
        case!(
            pool,
            GetBackupsResponse {
                backups: messages(
                    "BackupSummary",
                    vec![
                        summary("nightly-8", 8_000_000_000),
                        summary("nightly-9", 9_000_000_000)
                    ],
                ),
                overall_status: enumeration(STATUS, StatusType::Failed as i32),
            }
        ),
        case!(
            pool,
            BackupSummary {
                backup_name: string("nightly-10"),
                start_time: int64(5_000_000_001),
                finish_time: int64(5_000_000_002),
                total_nodes: int32(7),
                finished_nodes: int32(6),
                nodes: messages(
                    "BackupNode",
                    vec![
                        node("pod-0", &[-5, 5], "dc1", "r1"),
                        node("pod-1", &[9], "dc1", "r2")
                    ],
                ),
                status: enumeration(STATUS, StatusType::Success as i32),
                backup_type: string("differential"),
                total_size: int64(5_000_000_003),
                total_objects: int64(5_000_000_004),
            }
        ),
        case!(
            pool,
            BackupNode {
                host: string("demo-dc1-default-sts-0"),
                tokens: repeated_int64(&[i64::MIN + 1, -42, 9_000_000_000_000_000_000]),
                datacenter: string("dc1"),
                rack: string("rack1"),
            }
        ),
        case!(pool, PurgeBackupsRequest {}),
        case!(
            pool,
            PurgeBackupsResponse {
                nb_backups_purged: int32(11),
                nb_objects_purged: int32(12),
                total_purged_size: int64(13_000_000_000),
                total_objects_within_gc_grace: int32(14),
            }
        ),
        case!(
            pool,
            PrepareRestoreRequest {
                backup_name: string("nightly-11"),
                datacenter: string("dc2"),
                restore_key: string("3f1c2d5e-restore"),
            }
        ),
        case!(pool, PrepareRestoreResponse {}),
    ]
}

#[test]
fn every_message_matches_the_proto_field_by_field_both_ways() {
    let pool = proto_pool();
    let cases = message_cases(&pool);
    let mut problems: Vec<String> = cases.iter().flat_map(|(_, p)| p.clone()).collect();
    let covered: BTreeSet<&str> = cases.iter().map(|(name, _)| *name).collect();
    for message in pool.all_messages() {
        if !covered.contains(message.full_name()) {
            problems.push(format!(
                "message {} of the proto has no Rust counterpart",
                message.full_name()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "wire differences:\n{}",
        problems.join("\n")
    );
}

/// The values a Rust enum has: (number, proto name).
fn rust_values<E: TryFrom<i32> + Copy>(
    name: impl Fn(E) -> &'static str,
) -> BTreeSet<(i32, String)> {
    (-16..256)
        .filter_map(|number| E::try_from(number).ok().map(|v| (number, name(v).to_string())))
        .collect()
}

#[test]
fn every_enum_has_the_proto_values() {
    let pool = proto_pool();
    let rust: BTreeMap<&str, BTreeSet<(i32, String)>> = BTreeMap::from([
        (STATUS, rust_values::<StatusType>(StatusType::as_str_name)),
        ("BackupRequest.Mode", rust_values::<Mode>(Mode::as_str_name)),
    ]);
    let mut problems = Vec::new();
    for proto_enum in pool.all_enums() {
        let proto_values: BTreeSet<(i32, String)> =
            proto_enum.values().map(|v| (v.number(), v.name().to_string())).collect();
        match rust.get(proto_enum.full_name()) {
            Some(values) if *values == proto_values => {}
            Some(values) => problems.push(format!(
                "enum {}: the proto has {proto_values:?}, Rust {values:?}",
                proto_enum.full_name()
            )),
            None => problems.push(format!(
                "enum {} has no Rust counterpart",
                proto_enum.full_name()
            )),
        }
    }
    for name in rust.keys() {
        if pool.get_enum_by_name(name).is_none() {
            problems.push(format!("Rust enum {name} is not in the proto"));
        }
    }
    assert!(
        problems.is_empty(),
        "enum differences:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_rpc_of_the_proto_has_its_rust_counterpart() {
    let pool = proto_pool();
    let services: Vec<_> = pool.services().collect();
    assert_eq!(
        services.iter().map(|s| s.full_name().to_string()).collect::<Vec<_>>(),
        vec![rpc_service_full_name()],
        "the proto's services"
    );
    let service = &services[0];
    assert_eq!(service.package_name(), PACKAGE, "the proto's package");
    let mut problems = Vec::new();
    for method in service.methods() {
        let path = format!("/{}/{}", service.full_name(), method.name());
        let Some(rpc) = RPCS.iter().find(|rpc| rpc.name == method.name()) else {
            problems.push(format!("RPC {path} has no Rust counterpart"));
            continue;
        };
        if rpc.path() != path {
            problems.push(format!(
                "RPC {}: Rust routes {}, the proto {path}",
                rpc.name,
                rpc.path()
            ));
        }
        if rpc.request != method.input().full_name() || rpc.response != method.output().full_name()
        {
            problems.push(format!(
                "RPC {}: Rust takes {} and returns {}, the proto {} and {}",
                rpc.name,
                rpc.request,
                rpc.response,
                method.input().full_name(),
                method.output().full_name()
            ));
        }
        if method.is_client_streaming() || method.is_server_streaming() {
            problems.push(format!("RPC {path} streams in the proto; Rust's is unary"));
        }
    }
    for rpc in RPCS {
        if service.methods().all(|m| m.name() != rpc.name) {
            problems.push(format!("Rust RPC {} is not in the proto", rpc.path()));
        }
    }
    assert!(
        problems.is_empty(),
        "RPC differences:\n{}",
        problems.join("\n")
    );
}

fn rpc_service_full_name() -> String {
    if PACKAGE.is_empty() {
        SERVICE_NAME.to_string()
    } else {
        format!("{PACKAGE}.{SERVICE_NAME}")
    }
}

/// A message that decodes from any bytes: lets one raw call reach every route.
#[derive(Clone, PartialEq, prost::Message)]
struct Opaque {}

/// Answers every RPC with the default response.
struct Stub;

#[tonic::async_trait]
impl medusa_server::Medusa for Stub {
    async fn backup(
        &self,
        _: tonic::Request<BackupRequest>,
    ) -> Result<tonic::Response<BackupResponse>, tonic::Status> {
        Ok(tonic::Response::new(BackupResponse::default()))
    }
    async fn async_backup(
        &self,
        _: tonic::Request<BackupRequest>,
    ) -> Result<tonic::Response<BackupResponse>, tonic::Status> {
        Ok(tonic::Response::new(BackupResponse::default()))
    }
    async fn backup_status(
        &self,
        _: tonic::Request<BackupStatusRequest>,
    ) -> Result<tonic::Response<BackupStatusResponse>, tonic::Status> {
        Ok(tonic::Response::new(BackupStatusResponse::default()))
    }
    async fn delete_backup(
        &self,
        _: tonic::Request<DeleteBackupRequest>,
    ) -> Result<tonic::Response<DeleteBackupResponse>, tonic::Status> {
        Ok(tonic::Response::new(DeleteBackupResponse::default()))
    }
    async fn get_backup(
        &self,
        _: tonic::Request<GetBackupRequest>,
    ) -> Result<tonic::Response<GetBackupResponse>, tonic::Status> {
        Ok(tonic::Response::new(GetBackupResponse::default()))
    }
    async fn get_backups(
        &self,
        _: tonic::Request<GetBackupsRequest>,
    ) -> Result<tonic::Response<GetBackupsResponse>, tonic::Status> {
        Ok(tonic::Response::new(GetBackupsResponse::default()))
    }
    async fn purge_backups(
        &self,
        _: tonic::Request<PurgeBackupsRequest>,
    ) -> Result<tonic::Response<PurgeBackupsResponse>, tonic::Status> {
        Ok(tonic::Response::new(PurgeBackupsResponse::default()))
    }
    async fn prepare_restore(
        &self,
        _: tonic::Request<PrepareRestoreRequest>,
    ) -> Result<tonic::Response<PrepareRestoreResponse>, tonic::Status> {
        Ok(tonic::Response::new(PrepareRestoreResponse::default()))
    }
}

/// The generated server answers each RPC on the path the proto gives it, and not on others.
#[tokio::test]
async fn the_generated_server_answers_every_proto_path() {
    let pool = proto_pool();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(medusa_server::MedusaServer::new(Stub))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    let mut call = async |path: String| {
        grpc.ready().await.expect("ready");
        let path = tonic::codegen::http::uri::PathAndQuery::try_from(path).expect("path");
        grpc.unary(
            tonic::Request::new(Opaque {}),
            path,
            tonic_prost::ProstCodec::<Opaque, Opaque>::default(),
        )
        .await
        .map(|_| ())
    };
    let service = pool.services().next().expect("the proto has a service");
    for method in service.methods() {
        let path = format!("/{}/{}", service.full_name(), method.name());
        call(path.clone()).await.unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    let unknown = call(format!("/{}/NoSuchMethod", service.full_name())).await;
    assert_eq!(
        unknown.map_err(|e| e.code()),
        Err(tonic::Code::Unimplemented)
    );

    // The generated client reaches the same routes.
    let mut client = medusa_client::MedusaClient::connect(format!("http://{address}"))
        .await
        .expect("client connects");
    client.backup(BackupRequest::default()).await.expect("Backup");
    client.async_backup(BackupRequest::default()).await.expect("AsyncBackup");
    client.backup_status(BackupStatusRequest::default()).await.expect("BackupStatus");
    client.delete_backup(DeleteBackupRequest::default()).await.expect("DeleteBackup");
    client.get_backup(GetBackupRequest::default()).await.expect("GetBackup");
    client.get_backups(GetBackupsRequest::default()).await.expect("GetBackups");
    client.purge_backups(PurgeBackupsRequest::default()).await.expect("PurgeBackups");
    client.prepare_restore(PrepareRestoreRequest::default()).await.expect("PrepareRestore");
    server.abort();
}
