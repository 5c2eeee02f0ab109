//! Decoding of the Kubernetes protobuf request bodies that kubectl 1.33's typed clients send
//! (`kubectl create namespace|configmap|secret|serviceaccount`), for the few simple kinds whose
//! messages are small. Other kinds answer 415.
//!
//! Wire format: the magic `k8s\0`, then a `runtime.Unknown` {1: TypeMeta {1: apiVersion,
//! 2: kind}, 2: raw object bytes}; the raw object is the kind's own message.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::error::ApiError;

const MAGIC: &[u8] = b"k8s\0";

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Bool,
    Time,
    Message(&'static [Field]),
    MapText,
    MapBytes,
}

struct Field {
    number: u64,
    name: &'static str,
    kind: Kind,
    repeated: bool,
}

const fn field(number: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        number,
        name,
        kind,
        repeated: false,
    }
}

const fn repeated(number: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        number,
        name,
        kind,
        repeated: true,
    }
}

const OWNER_REFERENCE: &[Field] = &[
    field(1, "kind", Kind::Text),
    field(3, "name", Kind::Text),
    field(4, "uid", Kind::Text),
    field(5, "apiVersion", Kind::Text),
    field(6, "controller", Kind::Bool),
    field(7, "blockOwnerDeletion", Kind::Bool),
];

const OBJECT_META: &[Field] = &[
    field(1, "name", Kind::Text),
    field(2, "generateName", Kind::Text),
    field(3, "namespace", Kind::Text),
    field(5, "uid", Kind::Text),
    field(6, "resourceVersion", Kind::Text),
    field(7, "generation", Kind::Int),
    field(8, "creationTimestamp", Kind::Time),
    field(11, "labels", Kind::MapText),
    field(12, "annotations", Kind::MapText),
    repeated(13, "ownerReferences", Kind::Message(OWNER_REFERENCE)),
    repeated(14, "finalizers", Kind::Text),
];

const NAMESPACE: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    field(
        2,
        "spec",
        Kind::Message(&[repeated(1, "finalizers", Kind::Text)]),
    ),
];

const CONFIG_MAP: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    field(2, "data", Kind::MapText),
    field(3, "binaryData", Kind::MapBytes),
    field(4, "immutable", Kind::Bool),
];

const SECRET: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    field(2, "data", Kind::MapBytes),
    field(3, "type", Kind::Text),
    field(4, "stringData", Kind::MapText),
    field(5, "immutable", Kind::Bool),
];

const SERVICE_ACCOUNT: &[Field] = &[
    field(1, "metadata", Kind::Message(OBJECT_META)),
    repeated(
        3,
        "imagePullSecrets",
        Kind::Message(&[field(1, "name", Kind::Text)]),
    ),
    field(4, "automountServiceAccountToken", Kind::Bool),
];

struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.position)?;
            self.position += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn take(&mut self, length: usize) -> Option<&'a [u8]> {
        let end = self.position.checked_add(length)?;
        let slice = self.bytes.get(self.position..end)?;
        self.position = end;
        Some(slice)
    }

    fn done(&self) -> bool {
        self.position >= self.bytes.len()
    }

    /// The next field: (number, wire type, varint value or bytes).
    fn next_field(&mut self) -> Option<(u64, Value64OrBytes<'a>)> {
        let tag = self.varint()?;
        let value = match tag & 7 {
            0 => Value64OrBytes::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value64OrBytes::Fixed
            }
            2 => {
                let length = usize::try_from(self.varint()?).ok()?;
                Value64OrBytes::Bytes(self.take(length)?)
            }
            5 => {
                self.take(4)?;
                Value64OrBytes::Fixed
            }
            _ => return None,
        };
        Some((tag >> 3, value))
    }
}

enum Value64OrBytes<'a> {
    Varint(u64),
    /// 32- and 64-bit fields, which none of the decoded messages use
    Fixed,
    Bytes(&'a [u8]),
}

fn text(bytes: &[u8]) -> Option<Value> {
    std::str::from_utf8(bytes).ok().map(|s| json!(s))
}

fn map_entry(bytes: &[u8], binary_value: bool) -> Option<(String, Value)> {
    let mut reader = Reader { bytes, position: 0 };
    // an entry without a value field holds the empty value
    let (mut key, mut value) = (String::new(), json!(""));
    while !reader.done() {
        match reader.next_field()? {
            (1, Value64OrBytes::Bytes(b)) => key = std::str::from_utf8(b).ok()?.to_string(),
            (2, Value64OrBytes::Bytes(b)) if binary_value => {
                value = json!(base64::engine::general_purpose::STANDARD.encode(b))
            }
            (2, Value64OrBytes::Bytes(b)) => value = text(b)?,
            _ => {}
        }
    }
    Some((key, value))
}

fn time(bytes: &[u8]) -> Option<Value> {
    let mut reader = Reader { bytes, position: 0 };
    let mut seconds = 0i64;
    while !reader.done() {
        if let (1, Value64OrBytes::Varint(v)) = reader.next_field()? {
            seconds = v as i64;
        }
    }
    let timestamp = jiff::Timestamp::from_second(seconds).ok()?;
    Some(json!(timestamp.to_string()))
}

fn message(bytes: &[u8], fields: &[Field]) -> Option<Value> {
    let mut reader = Reader { bytes, position: 0 };
    let mut object = Map::new();
    while !reader.done() {
        let (number, raw) = reader.next_field()?;
        let Some(field) = fields.iter().find(|f| f.number == number) else {
            continue;
        };
        let value = match (field.kind, raw) {
            (Kind::Text, Value64OrBytes::Bytes(b)) => text(b)?,
            (Kind::Int, Value64OrBytes::Varint(v)) => json!(v as i64),
            (Kind::Bool, Value64OrBytes::Varint(v)) => json!(v != 0),
            (Kind::Time, Value64OrBytes::Bytes(b)) => time(b)?,
            (Kind::Message(inner), Value64OrBytes::Bytes(b)) => message(b, inner)?,
            (Kind::MapText | Kind::MapBytes, Value64OrBytes::Bytes(b)) => {
                let (key, value) = map_entry(b, matches!(field.kind, Kind::MapBytes))?;
                let map = object.entry(field.name).or_insert_with(|| json!({}));
                if let Some(map) = map.as_object_mut() {
                    map.insert(key, value);
                }
                continue;
            }
            _ => return None,
        };
        // gogo-protobuf writes empty optional strings and zero numbers; JSON omits them.
        if !field.repeated && (value == json!("") || value == json!(0)) {
            continue;
        }
        if field.repeated {
            let list = object.entry(field.name).or_insert_with(|| json!([]));
            if let Some(list) = list.as_array_mut() {
                list.push(value);
            }
        } else {
            object.insert(field.name.to_string(), value);
        }
    }
    Some(Value::Object(object))
}

fn unsupported(detail: &str) -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml ({detail})"
        ),
    )
}

/// Decodes a `application/vnd.kubernetes.protobuf` body into the object's JSON form.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let envelope = body.strip_prefix(MAGIC).ok_or_else(|| {
        ApiError::bad_request("the protobuf body does not start with the k8s magic number")
    })?;
    let malformed = || ApiError::bad_request("malformed protobuf body");
    let mut reader = Reader {
        bytes: envelope,
        position: 0,
    };
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    while !reader.done() {
        match reader.next_field().ok_or_else(malformed)? {
            (1, Value64OrBytes::Bytes(type_meta)) => {
                let meta = message(
                    type_meta,
                    &[
                        field(1, "apiVersion", Kind::Text),
                        field(2, "kind", Kind::Text),
                    ],
                )
                .ok_or_else(malformed)?;
                api_version = meta["apiVersion"].as_str().unwrap_or_default().to_string();
                kind = meta["kind"].as_str().unwrap_or_default().to_string();
            }
            (2, Value64OrBytes::Bytes(bytes)) => raw = bytes,
            _ => {}
        }
    }
    let fields = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        _ => {
            return Err(unsupported(&format!(
                "kube-sim decodes protobuf only for Namespace, ConfigMap, Secret and ServiceAccount, not {api_version} {kind}"
            )));
        }
    };
    let mut object = message(raw, fields).ok_or_else(malformed)?;
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((number << 3) | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_config_map() {
        let type_meta = [bytes_field(1, b"v1"), bytes_field(2, b"ConfigMap")].concat();
        let meta = [bytes_field(1, b"cm1"), bytes_field(3, b"default")].concat();
        let entry = [bytes_field(1, b"k"), bytes_field(2, b"v")].concat();
        let raw = [bytes_field(1, &meta), bytes_field(2, &entry)].concat();
        let body = [
            MAGIC.to_vec(),
            bytes_field(1, &type_meta),
            bytes_field(2, &raw),
        ]
        .concat();
        let object = decode(&body).unwrap();
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm1", "namespace": "default"}, "data": {"k": "v"}})
        );
    }
}
