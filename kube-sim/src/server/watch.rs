//! Watch streams: newline-delimited JSON events over a chunked response, as Tables or
//! PartialObjectMetadata when asked, ending at `timeoutSeconds`, on client disconnect, or when
//! the admin API drops watches.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use hyper::Response;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use rand::Rng;
use serde_json::{Value, json};

use super::media::{ResponseShape, negotiate_shape};
use super::request::ApiRequest;
use super::{Body, ChannelBody};
use crate::catalog::ServedResource;
use crate::cluster::Cluster;
use crate::error::{ApiError, Cause};
use crate::store::{WatchEvent, WatchOptions};
use crate::table::{self, IncludeObject};

fn list_options_invalid(field: &str, message: &str) -> ApiError {
    ApiError::invalid(
        "meta.k8s.io",
        "ListOptions",
        "",
        vec![Cause {
            reason: "FieldValueForbidden".into(),
            message: message.into(),
            field: field.into(),
        }],
    )
}

pub fn watch(
    cluster: &Arc<Cluster>,
    resource: &Arc<ServedResource>,
    namespace: Option<&str>,
    request: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let query = &request.query;
    let shape = negotiate_shape(request.accept.as_deref()).unwrap_or(ResponseShape::Object);
    let include = IncludeObject::parse(query.get("includeObject"))?;
    let send_initial_events = query.flag("sendInitialEvents")?;
    // A 1.33 server has the WatchList gate off, so it refuses streaming lists.
    if send_initial_events {
        return Err(list_options_invalid(
            "sendInitialEvents",
            "Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
        ));
    }
    if query.non_empty("resourceVersionMatch").is_some() {
        return Err(list_options_invalid(
            "resourceVersionMatch",
            "Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ));
    }
    let options = WatchOptions {
        label_selector: query.non_empty("labelSelector"),
        field_selector: query.non_empty("fieldSelector"),
        resource_version: query.get("resourceVersion").map(str::to_string),
        allow_bookmarks: query.flag("allowWatchBookmarks")?,
        send_initial_events,
        // Objects go out as they are stored: parsing and writing them again per watcher was
        // most of serving a watch.
        stored_objects: shape == ResponseShape::Object,
    };
    let timeout = match query.number("timeoutSeconds")? {
        Some(seconds) if seconds > 0 => Duration::from_secs(seconds as u64),
        _ => Duration::from_secs(rand::rng().random_range(1800..3600)),
    };
    let mut events = cluster.store.watch(&resource.info, namespace, &options)?;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(64);
    let mut epoch = cluster.watch_epoch();
    epoch.borrow_and_update();
    let resource = Arc::clone(resource);
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut first_table = true;
        loop {
            let event = tokio::select! {
                _ = &mut deadline => break,
                _ = epoch.changed() => break,
                _ = sender.closed() => break,
                event = events.next() => match event {
                    Some(event) => event,
                    None => break,
                },
            };
            let is_error = event.event_type == "ERROR";
            let event_type = Value::from(event.event_type);
            // `type` before `object`, as kube-apiserver writes events; one event per line.
            let bytes = match event.stored.clone() {
                Some(stored) => {
                    let mut line = format!("{{\"type\":{event_type},\"object\":").into_bytes();
                    line.extend_from_slice(&stored);
                    line.extend_from_slice(b"}\n");
                    line
                }
                None => {
                    let object = render_event(&resource, event, shape, include, &mut first_table);
                    format!("{{\"type\":{event_type},\"object\":{object}}}\n").into_bytes()
                }
            };
            if sender.send(Bytes::from(bytes)).await.is_err() || is_error {
                break;
            }
        }
    });
    let mut response = Response::new(ChannelBody { receiver }.boxed());
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// The event's object as the client asked for it: raw, metadata only, or a one-row Table.
fn render_event(
    resource: &ServedResource,
    event: WatchEvent,
    shape: ResponseShape,
    include: IncludeObject,
    first_table: &mut bool,
) -> Value {
    match (event.event_type, shape) {
        ("BOOKMARK" | "ERROR", _) | (_, ResponseShape::Object) => event.object,
        (_, ResponseShape::PartialObjectMetadata) => table::partial_object_metadata(&event.object),
        (_, ResponseShape::Table) => {
            let rv =
                event.object.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null);
            let with_columns = std::mem::replace(first_table, false);
            table::table(
                resource,
                &[event.object],
                json!({"resourceVersion": rv}),
                include,
                with_columns,
            )
        }
    }
}
