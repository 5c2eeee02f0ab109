//! Resource requests: path parsing, verbs, options, bodies, and response shapes.

use std::sync::Arc;

use hyper::{Method, Response};
use serde_json::{Value, json};

use super::media::{ResponseShape, negotiate_shape, parse_media};
use super::query::Query;
use super::{Body, add_warnings, generic_not_found, json_response, method_not_allowed};
use crate::catalog::ServedResource;
use crate::cluster::Cluster;
use crate::error::{ApiError, Cause};
use crate::store::WriteResult as Written;
use crate::store::{DeleteOptions, DeleteOutcome, DryRun, ListOptions, PatchType, WriteOptions};
use crate::table::{self, IncludeObject};

use super::request::ApiRequest;

/// A resource path's parts: (namespace, plural, name, subresource).
type PathParts<'a> = (Option<&'a str>, &'a str, Option<&'a str>, Option<&'a str>);

fn parse_path<'a>(group: &str, rest: &[&'a str]) -> Result<PathParts<'a>, ApiError> {
    Ok(match rest {
        ["namespaces", name, sub @ ("status" | "finalize")] if group.is_empty() => {
            (None, "namespaces", Some(*name), Some(*sub))
        }
        ["namespaces", ns, plural] => (Some(*ns), *plural, None, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name), None),
        ["namespaces", ns, plural, name, sub] => (Some(*ns), *plural, Some(*name), Some(*sub)),
        [plural] => (None, *plural, None, None),
        [plural, name] => (None, *plural, Some(*name), None),
        [plural, name, sub] => (None, *plural, Some(*name), Some(*sub)),
        _ => return Err(generic_not_found()),
    })
}

/// The Kubernetes verb of a resource request.
fn kube_verb(method: &Method, named: bool, watch: bool) -> Option<&'static str> {
    Some(match (method, named) {
        (&Method::GET, false) if watch => "watch",
        (&Method::GET, false) => "list",
        (&Method::GET, true) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, false) => "deletecollection",
        (&Method::DELETE, true) => "delete",
        _ => return None,
    })
}

/// The name a `metadata.name=NAME` (or `==`) term of a field selector requires.
fn field_selector_name(selector: Option<&str>) -> Option<&str> {
    selector?.split(',').find_map(|term| {
        let value = term.trim().strip_prefix("metadata.name")?;
        value
            .strip_prefix("==")
            .or_else(|| value.strip_prefix('='))
            .map(str::trim)
            .filter(|name| !name.is_empty())
    })
}

/// With RBAC enforced, refuses what the user's roles do not allow; checked before the resource
/// is looked up, as kube-apiserver authorises before it routes.
fn authorize(
    cluster: &Cluster,
    group: &str,
    rest: &[&str],
    request: &ApiRequest,
    watch: bool,
) -> Result<(), ApiError> {
    if !cluster.enforces_rbac() {
        return Ok(());
    }
    let Some(user) = &request.user else {
        return Err(ApiError::new(401, "Unauthorized", "Unauthorized"));
    };
    let (namespace, plural, name, subresource) = parse_path(group, rest)?;
    let Some(verb) = kube_verb(&request.method, name.is_some(), watch) else {
        return Ok(());
    };
    let selector = request.query.get_all("fieldSelector").first().copied();
    let name = name.or_else(|| {
        matches!(verb, "list" | "watch").then(|| field_selector_name(selector)).flatten()
    });
    // A namespace is its own namespace: a RoleBinding in it may grant reading it.
    let namespace = match (namespace, plural, name) {
        (None, "namespaces", Some(name)) if group.is_empty() => Some(name),
        _ => namespace,
    };
    let attributes = crate::rbac::Attributes {
        verb,
        group,
        resource: plural,
        subresource,
        namespace,
        name,
    };
    crate::rbac::authorize(&cluster.store, user, &attributes).inspect_err(|refused| {
        cluster.requests.record_refused(&refused.message);
    })
}

/// A parsed resource path.
struct Target<'a> {
    resource: Arc<ServedResource>,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
    subresource: Option<&'a str>,
}

fn parse_target<'a>(
    cluster: &Cluster,
    group: &str,
    version: &str,
    rest: &[&'a str],
) -> Result<Target<'a>, ApiError> {
    let (namespace, plural, name, subresource) = parse_path(group, rest)?;
    let resource = cluster.catalog().find(group, version, plural).ok_or_else(generic_not_found)?;
    if namespace.is_some() && !resource.info.namespaced {
        return Err(generic_not_found());
    }
    if resource.info.namespaced && namespace.is_none() && name.is_some() {
        return Err(generic_not_found());
    }
    Ok(Target {
        resource,
        namespace,
        name,
        subresource,
    })
}

fn require_verb(resource: &ServedResource, verb: &str) -> Result<(), ApiError> {
    if resource.has_verb(verb) {
        Ok(())
    } else {
        Err(method_not_allowed())
    }
}

pub async fn handle(
    cluster: &Arc<Cluster>,
    group: &str,
    version: &str,
    rest: &[&str],
    request: ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let (rest, legacy_watch) = match rest {
        ["watch", rest @ ..] => (rest, true),
        _ => (rest, false),
    };
    let watch = legacy_watch || request.query.flag("watch").unwrap_or(false);
    authorize(cluster, group, rest, &request, watch)?;
    let target = parse_target(cluster, group, version, rest)?;
    let method = request.method.clone();
    record_request(cluster, group, &target, &request, watch);
    let resource = Arc::clone(&target.resource);
    let is_crd = resource.info.group == "apiextensions.k8s.io"
        && resource.info.plural == "customresourcedefinitions";
    let mut response = match (&method, target.name, target.subresource) {
        (&Method::GET, None, None) => {
            if legacy_watch || request.query.flag("watch")? {
                require_verb(&resource, "watch")?;
                return super::watch::watch(cluster, &resource, target.namespace, &request);
            }
            require_verb(&resource, "list")?;
            list(cluster, &resource, target.namespace, &request)?
        }
        (&Method::POST, None, None) => {
            require_verb(&resource, "create")?;
            create(cluster, &resource, target.namespace, &request)?
        }
        (&Method::DELETE, None, None) => {
            require_verb(&resource, "deletecollection")?;
            delete_collection(cluster, &resource, target.namespace, &request)?
        }
        (&Method::GET, Some(name), None) => {
            require_verb(&resource, "get")?;
            get(cluster, &resource, target.namespace, name, &request)?
        }
        (&Method::PUT, Some(name), None) => {
            require_verb(&resource, "update")?;
            update(cluster, &resource, target.namespace, name, &request, false)?
        }
        (&Method::PATCH, Some(name), None) => {
            require_verb(&resource, "patch")?;
            patch(cluster, &resource, target.namespace, name, &request, false)?
        }
        (&Method::DELETE, Some(name), None) => {
            require_verb(&resource, "delete")?;
            delete(cluster, &resource, target.namespace, name, &request)?
        }
        (_, Some(name), Some("status")) if resource.info.has_status => match method {
            Method::GET => get(cluster, &resource, target.namespace, name, &request)?,
            Method::PUT => update(cluster, &resource, target.namespace, name, &request, true)?,
            Method::PATCH => patch(cluster, &resource, target.namespace, name, &request, true)?,
            _ => return Err(method_not_allowed()),
        },
        (_, Some(name), Some("scale")) if resource.scale.is_some() => {
            scale(cluster, &resource, target.namespace, name, &request)?
        }
        (_, Some(name), Some("finalize"))
            if resource.info.group.is_empty() && resource.info.plural == "namespaces" =>
        {
            if method != Method::PUT {
                return Err(method_not_allowed());
            }
            finalize_namespace(cluster, &resource, name, &request)?
        }
        (_, Some(_), Some(_)) => return Err(generic_not_found()),
        _ => return Err(method_not_allowed()),
    };
    if is_crd && method != Method::GET && !is_dry_run(&request.query) {
        crate::crd::reconcile(cluster).await;
    }
    // As kube-apiserver: every answer about a deprecated version carries its warning.
    if let Some(warning) = &resource.deprecation_warning {
        add_warnings(&mut response, std::slice::from_ref(warning));
    }
    Ok(response)
}

/// Counts the request under its client, Kubernetes verb and resource.
fn record_request(
    cluster: &Cluster,
    group: &str,
    target: &Target<'_>,
    request: &ApiRequest,
    watch: bool,
) {
    let Some(verb) = kube_verb(&request.method, target.name.is_some(), watch) else {
        return;
    };
    let resource =
        crate::requests::resource_name(group, &target.resource.info.plural, target.subresource);
    cluster.requests.record(
        request.user_agent.as_deref().unwrap_or_default(),
        verb,
        resource,
        target.namespace.unwrap_or_default(),
    );
}

fn is_dry_run(query: &Query) -> bool {
    query.get_all("dryRun").contains(&"All")
}

fn dry_run(query: &Query) -> Result<DryRun, ApiError> {
    let values = query.get_all("dryRun");
    for value in &values {
        if *value != "All" {
            return Err(ApiError::bad_request(format!(
                "Invalid dry run value: {value:?}: supported values: \"All\""
            )));
        }
    }
    Ok(if values.is_empty() {
        DryRun::No
    } else {
        DryRun::All
    })
}

fn write_options(request: &ApiRequest, subresource_status: bool) -> Result<WriteOptions, ApiError> {
    let field_validation = match request.query.non_empty("fieldValidation") {
        None => None,
        Some(v) if matches!(v.as_str(), "Strict" | "Warn" | "Ignore") => Some(v),
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {v:?}; supported values: \"Ignore\", \"Strict\", \"Warn\""
            )));
        }
    };
    let field_manager = request.query.non_empty("fieldManager").or_else(|| {
        request.user_agent.as_deref().map(|ua| ua.split('/').next().unwrap_or("").to_string())
    });
    Ok(WriteOptions {
        dry_run: dry_run(&request.query)?,
        field_manager,
        field_validation,
        force: request.query.flag("force")?,
        subresource_status,
    })
}

fn list_options(query: &Query) -> Result<ListOptions, ApiError> {
    let limit = match query.number("limit")? {
        Some(n) if n > 0 => Some(n as usize),
        _ => None,
    };
    Ok(ListOptions {
        label_selector: query.non_empty("labelSelector"),
        field_selector: query.non_empty("fieldSelector"),
        limit,
        continue_token: query.non_empty("continue"),
        resource_version: query.get("resourceVersion").map(str::to_string),
        resource_version_match: query.non_empty("resourceVersionMatch"),
    })
}

/// Decodes a request body: JSON, or YAML for `application/yaml` and apply patches.
pub fn decode_body(request: &ApiRequest) -> Result<Value, ApiError> {
    let essence =
        request.content_type.as_deref().map(|ct| parse_media(ct).essence).unwrap_or_default();
    if essence == "application/vnd.kubernetes.protobuf" {
        return super::protobuf::decode(&request.body);
    }
    if essence == "application/cbor" {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
        ));
    }
    if request.body.is_empty() {
        return Err(ApiError::bad_request("the body of the request was empty"));
    }
    match serde_json::from_slice::<Value>(&request.body) {
        Ok(value) => Ok(value),
        Err(json_error) => {
            let essence = request
                .content_type
                .as_deref()
                .map(|ct| parse_media(ct).essence)
                .unwrap_or_default();
            if essence.contains("yaml") {
                let text = std::str::from_utf8(&request.body).map_err(|e| {
                    ApiError::bad_request(format!("error converting YAML to JSON: {e}"))
                })?;
                serde_saphyr::from_str::<Value>(text).map_err(|e| {
                    ApiError::bad_request(format!("error converting YAML to JSON: {e}"))
                })
            } else {
                Err(ApiError::bad_request(format!(
                    "couldn't get version/kind; json parse error: {json_error}"
                )))
            }
        }
    }
}

/// Checks and fills apiVersion, kind and namespace of a body against the URL.
fn check_body_identity(
    resource: &ServedResource,
    namespace: Option<&str>,
    name: Option<&str>,
    body: &mut Value,
) -> Result<(), ApiError> {
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    };
    let expected_api_version = resource.group_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != expected_api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected_api_version})"
            )));
        }
        Some(_) => {}
        None => {
            obj.insert("apiVersion".into(), json!(expected_api_version));
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        Some(k) if k != resource.info.kind => {
            return Err(ApiError::bad_request(format!(
                "{k} in version {:?} cannot be handled as a {}: the kind does not match",
                resource.info.version, resource.info.kind
            )));
        }
        Some(_) => {}
        None => {
            obj.insert("kind".into(), json!(resource.info.kind));
        }
    }
    let metadata = obj.entry("metadata").or_insert_with(|| json!({}));
    let Some(metadata) = metadata.as_object_mut() else {
        return Err(ApiError::bad_request("metadata must be an object"));
    };
    if resource.info.namespaced {
        if let Some(ns) = namespace {
            match metadata.get("namespace").and_then(Value::as_str) {
                Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    metadata.insert("namespace".into(), json!(ns));
                }
            }
        }
    } else {
        metadata.remove("namespace");
    }
    if let Some(url_name) = name {
        match metadata.get("name").and_then(Value::as_str) {
            Some(body_name) if !body_name.is_empty() && body_name != url_name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({url_name})"
                )));
            }
            _ => {
                metadata.insert("name".into(), json!(url_name));
            }
        }
    }
    Ok(())
}

fn shape(request: &ApiRequest) -> Result<ResponseShape, ApiError> {
    negotiate_shape(request.accept.as_deref()).map_err(|accept| {
        ApiError::new(
            406,
            "NotAcceptable",
            format!("only the following media types are accepted: application/json, application/yaml; got {accept:?}"),
        )
    })
}

fn list(
    cluster: &Cluster,
    resource: &ServedResource,
    namespace: Option<&str>,
    request: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let shape = shape(request)?;
    let include = IncludeObject::parse(request.query.get("includeObject"))?;
    if request.query.flag("sendInitialEvents")? {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "ListOptions",
            "",
            vec![Cause {
                reason: "FieldValueForbidden".into(),
                message: "Forbidden: sendInitialEvents is forbidden for list".into(),
                field: "sendInitialEvents".into(),
            }],
        ));
    }
    let options = list_options(&request.query)?;
    validate_list_options(&options)?;
    let list = cluster.store.list(&resource.info, namespace, &options)?;
    let body = match shape {
        ResponseShape::Object => list,
        ResponseShape::PartialObjectMetadata => table::partial_object_metadata_list(&list),
        ResponseShape::Table => {
            let items = list.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            let metadata = list.get("metadata").cloned().unwrap_or_else(|| json!({}));
            table::table(resource, &items, metadata, include, true)
        }
    };
    Ok(json_response(200, &body))
}

/// The resourceVersionMatch rules of ListOptions validation.
fn validate_list_options(options: &ListOptions) -> Result<(), ApiError> {
    let Some(match_rule) = options.resource_version_match.as_deref() else {
        return Ok(());
    };
    let rv = options.resource_version.as_deref().unwrap_or("");
    let (reason, message) = if rv.is_empty() {
        (
            "FieldValueForbidden",
            "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
                .to_string(),
        )
    } else if options.continue_token.is_some() {
        (
            "FieldValueForbidden",
            "Forbidden: resourceVersionMatch is forbidden when continue is provided".to_string(),
        )
    } else if match_rule == "Exact" && rv == "0" {
        (
            "FieldValueForbidden",
            "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""
                .to_string(),
        )
    } else if matches!(match_rule, "Exact" | "NotOlderThan") {
        return Ok(());
    } else {
        (
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {match_rule:?}: supported values: \"Exact\", \"NotOlderThan\""
            ),
        )
    };
    Err(ApiError::invalid(
        "meta.k8s.io",
        "ListOptions",
        "",
        vec![Cause {
            reason: reason.into(),
            message,
            field: "resourceVersionMatch".into(),
        }],
    ))
}

fn render_object(
    resource: &ServedResource,
    object: Value,
    request: &ApiRequest,
) -> Result<Value, ApiError> {
    Ok(match shape(request)? {
        ResponseShape::Object => object,
        ResponseShape::PartialObjectMetadata => table::partial_object_metadata(&object),
        ResponseShape::Table => {
            let include = IncludeObject::parse(request.query.get("includeObject"))?;
            let rv = object.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null);
            table::table(
                resource,
                &[object],
                json!({"resourceVersion": rv}),
                include,
                true,
            )
        }
    })
}

fn get(
    cluster: &Cluster,
    resource: &ServedResource,
    namespace: Option<&str>,
    name: &str,
    request: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let object = cluster.store.get(&resource.info, namespace, name)?;
    Ok(json_response(
        200,
        &render_object(resource, object, request)?,
    ))
}

fn written_response(written: Written, status_if_created: u16) -> Response<Body> {
    let code = if written.created {
        status_if_created
    } else {
        200
    };
    let mut response = json_response(code, &written.object);
    add_warnings(&mut response, &written.warnings);
    response
}

fn create(
    cluster: &Cluster,
    resource: &ServedResource,
    namespace: Option<&str>,
    request: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    if resource.info.namespaced && namespace.is_none() {
        return Err(generic_not_found());
    }
    let mut body = decode_body(request)?;
    check_body_identity(resource, namespace, None, &mut body)?;
    let options = write_options(request, false)?;
    let mut written = cluster.store.create(&resource.info, namespace, body, &options)?;
    written.created = true;
    Ok(written_response(written, 201))
}

fn update(
    cluster: &Cluster,
    resource: &ServedResource,
    namespace: Option<&str>,
    name: &str,
    request: &ApiRequest,
    status: bool,
) -> Result<Response<Body>, ApiError> {
    let mut body = decode_body(request)?;
    check_body_identity(resource, namespace, Some(name), &mut body)?;
    let options = write_options(request, status)?;
    let written = cluster.store.update(&resource.info, namespace, name, body, &options)?;
    Ok(written_response(written, 201))
}

fn patch_type(
    resource: &ServedResource,
    content_type: Option<&str>,
) -> Result<PatchType, ApiError> {
    let essence = content_type.map(|ct| parse_media(ct).essence).unwrap_or_default();
    let accepted = if resource.info.builtin {
        "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
    } else {
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    };
    let unsupported = || {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {accepted}"
            ),
        )
    };
    match essence.as_str() {
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/strategic-merge-patch+json" if resource.info.builtin => {
            Ok(PatchType::StrategicMerge)
        }
        "application/apply-patch+yaml" => Ok(PatchType::Apply),
        _ => Err(unsupported()),
    }
}

fn patch_options_invalid(field: &str, reason: &str, message: &str) -> ApiError {
    ApiError::invalid(
        "meta.k8s.io",
        "PatchOptions",
        "",
        vec![Cause {
            reason: reason.into(),
            message: message.into(),
            field: field.into(),
        }],
    )
}

fn patch(
    cluster: &Cluster,
    resource: &ServedResource,
    namespace: Option<&str>,
    name: &str,
    request: &ApiRequest,
    status: bool,
) -> Result<Response<Body>, ApiError> {
    let patch_type = patch_type(resource, request.content_type.as_deref())?;
    let mut options = write_options(request, status)?;
    if patch_type == PatchType::Apply {
        options.field_manager = request.query.non_empty("fieldManager");
        if options.field_manager.is_none() {
            return Err(patch_options_invalid(
                "fieldManager",
                "FieldValueRequired",
                "Required value: is required for apply patch",
            ));
        }
    } else if request.query.get("force").is_some() && options.force {
        return Err(patch_options_invalid(
            "force",
            "FieldValueForbidden",
            "Forbidden: may not be specified for non-apply patch",
        ));
    }
    let written = cluster.store.patch(
        &resource.info,
        namespace,
        name,
        patch_type,
        &request.body,
        &options,
    )?;
    Ok(written_response(written, 201))
}

fn delete_options(request: &ApiRequest) -> Result<DeleteOptions, ApiError> {
    let body: Value = if request.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&request.body)
            .map_err(|e| ApiError::bad_request(format!("couldn't decode DeleteOptions: {e}")))?
    };
    let mut dry = dry_run(&request.query)?;
    if body.get("dryRun").and_then(Value::as_array).is_some_and(|v| v.iter().any(|x| x == "All")) {
        dry = DryRun::All;
    }
    let mut propagation = request
        .query
        .non_empty("propagationPolicy")
        .or_else(|| body.get("propagationPolicy").and_then(Value::as_str).map(str::to_string));
    if propagation.is_none() {
        propagation = match body.get("orphanDependents").and_then(Value::as_bool) {
            Some(true) => Some("Orphan".into()),
            Some(false) => Some("Background".into()),
            None => None,
        };
    }
    if let Some(policy) = &propagation
        && !matches!(policy.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "DeleteOptions",
            "",
            vec![Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!(
                    "Unsupported value: {policy:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                ),
                field: "propagationPolicy".into(),
            }],
        ));
    }
    let precondition = |key: &str| {
        body.pointer(&format!("/preconditions/{key}")).and_then(Value::as_str).map(str::to_string)
    };
    Ok(DeleteOptions {
        dry_run: dry,
        propagation_policy: propagation,
        preconditions_uid: precondition("uid"),
        preconditions_resource_version: precondition("resourceVersion"),
    })
}

fn delete(
    cluster: &Cluster,
    resource: &ServedResource,
    namespace: Option<&str>,
    name: &str,
    request: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let options = delete_options(request)?;
    let outcome = cluster.store.delete(&resource.info, namespace, name, &options)?;
    Ok(match outcome {
        DeleteOutcome::Pending(object) => json_response(200, &object),
        DeleteOutcome::Deleted(answer) => json_response(200, &answer),
    })
}

fn delete_collection(
    cluster: &Cluster,
    resource: &ServedResource,
    namespace: Option<&str>,
    request: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let options = delete_options(request)?;
    let list = list_options(&request.query)?;
    let deleted = cluster.store.delete_collection(&resource.info, namespace, &list, &options)?;
    Ok(json_response(200, &deleted))
}

/// Reads a dotted JSON path such as `.spec.replicas`.
fn value_at<'a>(object: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .try_fold(object, |value, key| value.get(key))
}

/// `{"spec":{"replicas":n}}` for a dotted path.
fn nested(dotted: &str, value: Value) -> Value {
    dotted
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .rev()
        .fold(value, |inner, key| json!({ key: inner }))
}

fn scale_of(resource: &ServedResource, object: &Value) -> Value {
    let Some(paths) = &resource.scale else {
        return Value::Null;
    };
    let replicas = |path: &str| value_at(object, path).and_then(Value::as_i64).unwrap_or(0);
    let metadata = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let pick = |key: &str| metadata.get(key).cloned().unwrap_or(Value::Null);
    let mut status = json!({"replicas": replicas(&paths.status_replicas)});
    let selector = match &paths.label_selector {
        Some(path) => value_at(object, path).and_then(Value::as_str).map(str::to_string),
        None => {
            object.pointer("/spec/selector/matchLabels").and_then(Value::as_object).map(|labels| {
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
        }
    };
    if let Some(selector) = selector {
        status["selector"] = json!(selector);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": pick("name"),
            "namespace": pick("namespace"),
            "uid": pick("uid"),
            "resourceVersion": pick("resourceVersion"),
            "creationTimestamp": pick("creationTimestamp"),
        },
        "spec": {"replicas": replicas(&paths.spec_replicas)},
        "status": status,
    })
}

fn scale(
    cluster: &Cluster,
    resource: &ServedResource,
    namespace: Option<&str>,
    name: &str,
    request: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let Some(paths) = &resource.scale else {
        return Err(generic_not_found());
    };
    let current = cluster.store.get(&resource.info, namespace, name)?;
    let current_scale = scale_of(resource, &current);
    let desired_scale = match request.method {
        Method::GET => return Ok(json_response(200, &current_scale)),
        Method::PUT => decode_body(request)?,
        Method::PATCH => {
            let body = decode_body(request)?;
            let mut scale = current_scale.clone();
            match patch_type(resource, request.content_type.as_deref())? {
                PatchType::Json => {
                    let operations: json_patch::Patch = serde_json::from_value(body)
                        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                    json_patch::patch(&mut scale, &operations).map_err(|_| {
                        ApiError::new(
                            422,
                            "Invalid",
                            "the server rejected our request due to an error in our request",
                        )
                    })?;
                }
                _ => json_patch::merge(&mut scale, &body),
            }
            scale
        }
        _ => return Err(method_not_allowed()),
    };
    let replicas = desired_scale.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
    let mut change = nested(&paths.spec_replicas, json!(replicas));
    if let Some(rv) = desired_scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|rv| !rv.is_empty())
    {
        change["metadata"] = json!({"resourceVersion": rv});
    }
    let options = write_options(request, false)?;
    let written = cluster.store.patch(
        &resource.info,
        namespace,
        name,
        PatchType::Merge,
        change.to_string().as_bytes(),
        &options,
    )?;
    Ok(json_response(200, &scale_of(resource, &written.object)))
}

fn finalize_namespace(
    cluster: &Cluster,
    resource: &ServedResource,
    name: &str,
    request: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let body = decode_body(request)?;
    let finalizers = body.pointer("/spec/finalizers").cloned().unwrap_or_else(|| json!([]));
    let mut change = json!({"spec": {"finalizers": finalizers}});
    if let Some(rv) = body.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
        change["metadata"] = json!({"resourceVersion": rv});
    }
    let options = write_options(request, false)?;
    let written = cluster.store.patch(
        &resource.info,
        None,
        name,
        PatchType::Merge,
        change.to_string().as_bytes(),
        &options,
    )?;
    Ok(json_response(200, &written.object))
}
