//! Types shared by several kinds: object references, encryption stores, container images,
//! label/annotation bundles, telemetry, condition helpers, and the schema helpers that mark
//! pass-through subtrees as `x-kubernetes-preserve-unknown-fields`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Most Cassandra nodes (and Stargate nodes) one datacenter may have: the pods, token lists and
/// rack splits Federator and cass-operator compute grow with it.
pub const MAX_DATACENTER_SIZE: i32 = 1000;

/// `own` if set, else `fallback`: how a datacenter's (or rack's) option wins over the cluster's.
pub(crate) fn own_or<T: Clone>(own: &Option<T>, fallback: &Option<T>) -> Option<T> {
    own.clone().or_else(|| fallback.clone())
}

/// Re-exported so callers build conditions without importing k8s-openapi paths.
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition as MetaCondition;

// ---- label and annotation keys (compatible with k8ssandra-operator) ----

/// Name of the K8ssandraCluster that owns an object (ownerReferences cannot cross clusters).
pub const CLUSTER_NAME_LABEL: &str = "k8ssandra.io/cluster-name";
/// Namespace of the K8ssandraCluster that owns an object.
pub const CLUSTER_NAMESPACE_LABEL: &str = "k8ssandra.io/cluster-namespace";
/// Set on objects whose cleanup is done by a controller rather than by garbage collection.
pub const CLEANED_UP_BY_LABEL: &str = "k8ssandra.io/cleaned-up-by";
/// Value of [`CLEANED_UP_BY_LABEL`] for objects Federator removes itself.
pub const CLEANED_UP_BY_VALUE: &str = "k8ssandracluster-controller";
/// Standard "who manages this object" label.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] on objects Federator creates.
pub const MANAGED_BY_VALUE: &str = "federator";
/// Standard "what is this object part of" label.
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
/// Value of [`PART_OF_LABEL`] (the same value k8ssandra-operator uses).
pub const PART_OF_VALUE: &str = "k8ssandra";
/// Label cass-operator puts on everything belonging to a CassandraDatacenter.
pub const CASSDC_DATACENTER_LABEL: &str = "cassandra.datastax.com/datacenter";
/// Label cass-operator puts on everything belonging to a Cassandra cluster.
pub const CASSDC_CLUSTER_LABEL: &str = "cassandra.datastax.com/cluster";
/// Label carrying the K8ssandraCluster datacenter (metadata.name) an object was made for
/// (Federator's own; the keys above are upstream's).
pub const DATACENTER_NAME_LABEL: &str = "k8ssandra.io/datacenter";
/// Label on ReplicatedSecret-managed copies naming the ReplicatedSecret they came from
/// (Federator's own).
pub const REPLICATED_BY_LABEL: &str = "replicatedsecret.k8ssandra.io/replicated-by";

// ---- schema helpers ----

/// Schema of a pass-through object: the API server keeps every key below it.
pub fn preserve_unknown_fields(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Schema of a list of pass-through objects (containers, volumes...).
pub fn preserve_unknown_fields_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        },
    })
}

/// Removes `null` from every `enum` below `schema`. schemars lists `null` among the values of
/// an `Option<Enum>`; the field is already `nullable`, and controller-gen never emits it, so the
/// CRDs stay identical in spirit to upstream's. Used as `#[schemars(transform = ...)]` on the
/// top-level spec and status structs.
pub fn strip_null_from_enums(schema: &mut Schema) {
    if let Some(values) = schema.get_mut("enum").and_then(serde_json::Value::as_array_mut) {
        values.retain(|value| !value.is_null());
    }
    schemars::transform::transform_subschemas(&mut strip_null_from_enums, schema);
}

/// Keeps only the first sentence of every `description` below `schema`, like controller-gen's
/// `maxDescLen`: the embedded core/v1 types carry pages of documentation per field, which would
/// push the K8ssandraCluster CRD past the 256 KiB that client-side `kubectl apply` can store.
pub fn shorten_descriptions(schema: &mut Schema) {
    if let Some(serde_json::Value::String(description)) = schema.get_mut("description") {
        *description = first_sentence(description);
    }
    schemars::transform::transform_subschemas(&mut shorten_descriptions, schema);
}

fn first_sentence(text: &str) -> String {
    let paragraph = text.split("\n\n").next().unwrap_or_default();
    let words: Vec<&str> = paragraph.split_whitespace().collect();
    // A sentence ends at a word ending in '.', unless that word is an abbreviation.
    let end = words
        .iter()
        .position(|word| {
            let bare = word.trim_start_matches(['(', '"', '\'']);
            word.ends_with('.') && !["e.g.", "i.e.", "etc.", "vs."].contains(&bare)
        })
        .map_or(words.len(), |at| at + 1);
    words[..end].join(" ")
}

/// What every top-level spec and status struct applies to its schema: no `null` enum values,
/// one-sentence descriptions.
pub fn tidy_schema(schema: &mut Schema) {
    strip_null_from_enums(schema);
    shorten_descriptions(schema);
}

/// Marks a list of metav1 Conditions as a map keyed by `type`, so that server-side apply merges
/// conditions one by one (Kubernetes API convention).
pub fn condition_list(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}

// ---- references ----

/// A reference to an object in the same namespace, by name (Secret, ConfigMap...).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct LocalObjectReference {
    #[serde(default)]
    pub name: String,
}

/// A reference to a Secret in the same namespace.
pub type SecretRef = LocalObjectReference;
/// A reference to a ConfigMap in the same namespace.
pub type ConfigMapRef = LocalObjectReference;

impl LocalObjectReference {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

/// A key inside a Secret; `key` defaults to the conventional file name of the store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A reference to any object, possibly in another namespace (upstream `ObjectReference`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,
}

/// Keystore and truststore Secrets for Cassandra client or internode encryption.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionStores {
    pub keystore_secret_ref: SecretKeyRef,
    pub truststore_secret_ref: SecretKeyRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keystore_password_secret_ref: Option<SecretKeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truststore_password_secret_ref: Option<SecretKeyRef>,
}

// ---- images ----

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// A container image split into parts, so that a registry or tag can be overridden alone.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerImage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secret_ref: Option<SecretRef>,
}

impl ContainerImage {
    /// `registry/repository/name:tag`, filling absent parts from `default`; a tag that is a
    /// digest (`sha256:…`) is written `name@sha256:…`, and `tag@sha256:…` as `name:tag@sha256:…`.
    pub fn reference_or(&self, default: &ContainerImage) -> String {
        let pick = |own: &Option<String>, fallback: &Option<String>| {
            own.clone().or_else(|| fallback.clone()).filter(|part| !part.is_empty())
        };
        let parts: Vec<String> = [
            pick(&self.registry, &default.registry),
            pick(&self.repository, &default.repository),
            pick(&self.name, &default.name),
        ]
        .into_iter()
        .flatten()
        .collect();
        let tag = pick(&self.tag, &default.tag).unwrap_or_else(|| "latest".to_string());
        // A tag never holds ':' ([A-Za-z0-9_][A-Za-z0-9_.-]*); a digest always does.
        let separator = if tag.contains(':') && !tag.contains('@') {
            '@'
        } else {
            ':'
        };
        format!("{}{separator}{tag}", parts.join("/"))
    }
}

// ---- labels and annotations ----

/// Labels and annotations for one kind of generated object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct MetaTags {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Metadata for a component (Stargate, Reaper): its own object, its pods and its Service;
/// `common*` go on every object the component creates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<MetaTags>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<MetaTags>,
}

// ---- enums used by several kinds ----

/// Where the credentials Secrets come from: created by the operator, or provided externally
/// (e.g. injected by Vault).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SecretsProvider {
    #[default]
    Internal,
    External,
}

// ---- telemetry ----

/// Metrics and log shipping of a component. Federator interprets the `enabled` switches;
/// the rest is passed to the component as written.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct TelemetrySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusTelemetry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcac: Option<McacTelemetry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<VectorTelemetry>,
    /// Where to send metrics with the Cassandra metrics endpoint (endpoint, relabels); a datacenter's, or its cluster's, goes into its metrics agent ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub cassandra: Option<serde_json::Value>,
}

impl TelemetrySpec {
    pub fn prometheus_enabled(&self) -> bool {
        self.prometheus.as_ref().and_then(|p| p.enabled).unwrap_or(false)
    }

    /// MCAC is on unless explicitly disabled (upstream default).
    pub fn mcac_enabled(&self) -> bool {
        self.mcac.as_ref().and_then(|m| m.enabled).unwrap_or(true)
    }

    pub fn vector_enabled(&self) -> bool {
        self.vector.as_ref().and_then(|v| v.enabled).unwrap_or(false)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusTelemetry {
    /// Create a ServiceMonitor for the component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_labels: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McacTelemetry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_filters: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VectorTelemetry {
    /// Run a Vector agent sidecar next to the component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Vector TOML appended to the generated configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_interval: Option<String>,
    /// Extra sources, transforms and sinks: passed through to the Vector configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub components: Option<serde_json::Value>,
}

// ---- conditions ----

/// Values of a condition's `status`.
pub const CONDITION_TRUE: &str = "True";
pub const CONDITION_FALSE: &str = "False";
pub const CONDITION_UNKNOWN: &str = "Unknown";

/// Finds the condition of the given type.
pub fn find_condition<'a>(
    conditions: &'a [Condition],
    condition_type: &str,
) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == condition_type)
}

/// Whether the condition of the given type is present with status "True".
pub fn is_condition_true(conditions: &[Condition], condition_type: &str) -> bool {
    find_condition(conditions, condition_type).is_some_and(|c| c.status == CONDITION_TRUE)
}

/// Condition set while an object sets fields Federator does not act on yet (True, with
/// [`REASON_NOT_ACTED_ON_YET`] and the fields in its message); absent otherwise.
pub const CONDITION_FIELDS_NOT_ACTED_ON: &str = "FieldsNotActedOn";
pub const REASON_NOT_ACTED_ON_YET: &str = "NotActedOnYet";

/// Sets the [`CONDITION_FIELDS_NOT_ACTED_ON`] condition naming `fields`, or removes it when there
/// are none. Returns whether anything changed.
pub fn report_fields_not_acted_on(
    conditions: &mut Vec<Condition>,
    fields: &[String],
    observed_generation: Option<i64>,
    now: Time,
) -> bool {
    if fields.is_empty() {
        let before = conditions.len();
        conditions.retain(|c| c.type_ != CONDITION_FIELDS_NOT_ACTED_ON);
        return conditions.len() != before;
    }
    set_condition(
        conditions,
        new_condition(
            CONDITION_FIELDS_NOT_ACTED_ON,
            CONDITION_TRUE,
            REASON_NOT_ACTED_ON_YET,
            format!(
                "set but not acted on yet, so they have no effect: {}",
                fields.join("; ")
            ),
            observed_generation,
            now,
        ),
    )
}

/// Inserts or replaces the condition of the same type. `lastTransitionTime` moves only when the
/// status changes, so that it tells when the state was entered, not when it was last seen.
/// Returns whether anything changed.
pub fn set_condition(conditions: &mut Vec<Condition>, new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            let mut merged = new;
            if existing.status == merged.status {
                merged.last_transition_time = existing.last_transition_time.clone();
            }
            if *existing == merged {
                return false;
            }
            *existing = merged;
            true
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

/// Builds a metav1 Condition.
pub fn new_condition(
    condition_type: &str,
    status: &str,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Time,
) -> Condition {
    Condition {
        type_: condition_type.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.into(),
        observed_generation,
        last_transition_time: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).expect("valid timestamp"))
    }

    #[test]
    fn set_condition_keeps_transition_time_while_status_is_unchanged() {
        let mut conditions = vec![new_condition(
            "Ready",
            CONDITION_TRUE,
            "Ok",
            "",
            None,
            time(10),
        )];
        let changed = set_condition(
            &mut conditions,
            new_condition("Ready", CONDITION_TRUE, "Ok", "", None, time(20)),
        );
        assert!(!changed);
        assert_eq!(conditions[0].last_transition_time, time(10));

        let changed = set_condition(
            &mut conditions,
            new_condition("Ready", CONDITION_FALSE, "Down", "dc1 down", None, time(30)),
        );
        assert!(changed);
        assert_eq!(conditions[0].last_transition_time, time(30));
        assert!(!is_condition_true(&conditions, "Ready"));
    }

    #[test]
    fn image_reference_fills_missing_parts_from_default() {
        let default = ContainerImage {
            registry: Some("docker.io".into()),
            repository: Some("stargateio".into()),
            name: Some("stargate-4_0".into()),
            tag: Some("v1.0.77".into()),
            ..Default::default()
        };
        let own = ContainerImage {
            tag: Some("v1.0.80".into()),
            ..Default::default()
        };
        assert_eq!(
            own.reference_or(&default),
            "docker.io/stargateio/stargate-4_0:v1.0.80"
        );
    }

    #[test]
    fn descriptions_keep_their_first_sentence() {
        assert_eq!(first_sentence("Short one."), "Short one.");
        assert_eq!(
            first_sentence(
                "Limits describes the maximum amount. More info: https://x.y/z.\n\nMore."
            ),
            "Limits describes the maximum amount."
        );
        assert_eq!(
            first_sentence("Version 1.2.3 is\nwrapped"),
            "Version 1.2.3 is wrapped"
        );
        assert_eq!(
            first_sentence("Labels (e.g. zone) to use. Rest."),
            "Labels (e.g. zone) to use."
        );
    }

    #[test]
    fn preserve_unknown_fields_schema_shape() {
        let schema = preserve_unknown_fields(&mut SchemaGenerator::default());
        assert_eq!(
            schema.as_value(),
            &serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
        );
    }
}
