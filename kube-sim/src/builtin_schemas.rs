//! OpenAPI v3 schemas of the built-in kinds, generated from k8s-openapi's types, with the
//! strategic-merge-patch extensions kubectl reads for client-side apply (merge keys of the
//! well-known lists). kubectl walks these schemas for every map or list in a patch, so a
//! permissive schema would make it warn "unable to find api field".

use std::collections::BTreeMap;
use std::sync::OnceLock;

use k8s_openapi::api::{apps, coordination, core, discovery, events, rbac};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::quantity::QuantityFields;

/// The generated schemas: every definition by its Kubernetes name.
pub struct BuiltinSchemas {
    pub definitions: Map<String, Value>,
    /// (group, version, kind) → definition name
    pub kinds: BTreeMap<(String, String, String), String>,
}

fn add<T: JsonSchema>(
    generator: &mut schemars::SchemaGenerator,
    kinds: &mut BTreeMap<(String, String, String), String>,
    group: &str,
    version: &str,
    kind: &str,
) {
    let _ = generator.subschema_for::<T>();
    kinds.insert(
        (group.to_string(), version.to_string(), kind.to_string()),
        T::schema_name().into_owned(),
    );
}

/// Merge key of a list property, by the definition holding it.
fn merge_key(definition: &str, property: &str) -> Option<&'static str> {
    match property {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "imagePullSecrets"
        | "env" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "hostAliases" => Some("ip"),
        "ports" if definition.ends_with(".v1.Container") => Some("containerPort"),
        "ports" if definition.ends_with(".v1.ServiceSpec") => Some("port"),
        _ => None,
    }
}

fn add_patch_extensions(definitions: &mut Map<String, Value>) {
    for (name, definition) in definitions.iter_mut() {
        let Some(properties) = definition.get_mut("properties").and_then(Value::as_object_mut)
        else {
            continue;
        };
        for (property, schema) in properties.iter_mut() {
            let Some(schema) = schema.as_object_mut() else {
                continue;
            };
            if let Some(key) = merge_key(name, property) {
                schema.insert("x-kubernetes-patch-merge-key".into(), json!(key));
                schema.insert("x-kubernetes-patch-strategy".into(), json!("merge"));
            } else if property == "finalizers" && name.ends_with("ObjectMeta") {
                schema.insert("x-kubernetes-patch-strategy".into(), json!("merge"));
            }
        }
    }
}

pub fn builtin_schemas() -> &'static BuiltinSchemas {
    static SCHEMAS: OnceLock<BuiltinSchemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut generator = SchemaSettings::openapi3().into_generator();
        let mut kinds = BTreeMap::new();
        let g = &mut generator;
        let k = &mut kinds;
        add::<core::v1::Namespace>(g, k, "", "v1", "Namespace");
        add::<core::v1::Secret>(g, k, "", "v1", "Secret");
        add::<core::v1::ConfigMap>(g, k, "", "v1", "ConfigMap");
        add::<core::v1::Service>(g, k, "", "v1", "Service");
        add::<core::v1::Endpoints>(g, k, "", "v1", "Endpoints");
        add::<core::v1::Pod>(g, k, "", "v1", "Pod");
        add::<core::v1::PersistentVolumeClaim>(g, k, "", "v1", "PersistentVolumeClaim");
        add::<core::v1::ServiceAccount>(g, k, "", "v1", "ServiceAccount");
        add::<core::v1::Event>(g, k, "", "v1", "Event");
        add::<discovery::v1::EndpointSlice>(g, k, "discovery.k8s.io", "v1", "EndpointSlice");
        add::<events::v1::Event>(g, k, "events.k8s.io", "v1", "Event");
        add::<coordination::v1::Lease>(g, k, "coordination.k8s.io", "v1", "Lease");
        add::<rbac::v1::Role>(g, k, "rbac.authorization.k8s.io", "v1", "Role");
        add::<rbac::v1::RoleBinding>(g, k, "rbac.authorization.k8s.io", "v1", "RoleBinding");
        add::<rbac::v1::ClusterRole>(g, k, "rbac.authorization.k8s.io", "v1", "ClusterRole");
        add::<rbac::v1::ClusterRoleBinding>(
            g,
            k,
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
        );
        add::<apps::v1::Deployment>(g, k, "apps", "v1", "Deployment");
        add::<apps::v1::StatefulSet>(g, k, "apps", "v1", "StatefulSet");
        add::<apiextensions::v1::CustomResourceDefinition>(
            g,
            k,
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
        );
        let mut definitions = generator.take_definitions(true);
        add_patch_extensions(&mut definitions);
        BuiltinSchemas { definitions, kinds }
    })
}

/// Where the quantity fields of a built-in kind are (container resources, volume size limits,
/// claim templates…): the API server decodes them into `resource.Quantity` and stores them in
/// canonical form. `None` for kinds with none.
pub fn quantity_fields(group: &str, version: &str, kind: &str) -> Option<&'static QuantityFields> {
    static FIELDS: OnceLock<BTreeMap<(String, String, String), QuantityFields>> = OnceLock::new();
    FIELDS
        .get_or_init(|| {
            let schemas = builtin_schemas();
            schemas
                .kinds
                .iter()
                .filter_map(|(key, definition)| {
                    QuantityFields::of_definition(definition, &schemas.definitions)
                        .map(|fields| (key.clone(), fields))
                })
                .collect()
        })
        .get(&(group.to_string(), version.to_string(), kind.to_string()))
}

/// The definitions a schema refers to, transitively (so a document carries only what it needs).
pub fn referenced_definitions(root: &str, out: &mut Map<String, Value>) {
    let all = &builtin_schemas().definitions;
    let mut pending = vec![root.to_string()];
    while let Some(name) = pending.pop() {
        if out.contains_key(&name) {
            continue;
        }
        let Some(definition) = all.get(&name) else {
            continue;
        };
        collect_refs(definition, &mut pending);
        out.insert(name, definition.clone());
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(reference) = map.get("$ref").and_then(Value::as_str)
                && let Some(name) = reference.strip_prefix("#/components/schemas/")
            {
                out.push(name.to_string());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_schema_has_container_merge_keys() {
        let schemas = builtin_schemas();
        let name = &schemas.kinds[&(
            "apps".to_string(),
            "v1".to_string(),
            "Deployment".to_string(),
        )];
        let mut defs = Map::new();
        referenced_definitions(name, &mut defs);
        let pod_spec = &defs["io.k8s.api.core.v1.PodSpec"];
        assert_eq!(
            pod_spec["properties"]["containers"]["x-kubernetes-patch-merge-key"],
            "name"
        );
        assert!(defs.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
    }

    #[test]
    fn quantity_fields_of_the_kinds_that_have_them() {
        let deployment = quantity_fields("apps", "v1", "Deployment").expect("deployments");
        let mut object = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "c", "resources": {"limits": {"cpu": "1000m"}}}],
            "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1024Mi"}}],
        }}}});
        deployment.canonicalize(&mut object).expect("valid");
        assert_eq!(
            object["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            "1"
        );
        assert_eq!(
            object["spec"]["template"]["spec"]["volumes"][0]["emptyDir"]["sizeLimit"],
            "1Gi"
        );
        let statefulset = quantity_fields("apps", "v1", "StatefulSet").expect("statefulsets");
        let mut object = json!({"spec": {"volumeClaimTemplates": [
            {"spec": {"resources": {"requests": {"storage": "5120Mi"}}}}
        ]}});
        statefulset.canonicalize(&mut object).expect("valid");
        assert_eq!(
            object["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
            "5Gi"
        );
        assert!(quantity_fields("", "v1", "Pod").is_some());
        assert!(quantity_fields("", "v1", "ConfigMap").is_none());
        assert!(quantity_fields("", "v1", "Secret").is_none());
        assert!(
            quantity_fields("apiextensions.k8s.io", "v1", "CustomResourceDefinition").is_none()
        );
    }
}
