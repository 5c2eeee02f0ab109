//! The stream behind a watch request: initial events, replay from the event window, live
//! events, selector transitions and bookmarks.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::selector::Selectors;
use super::{Shared, WatchEvent};

/// One write as the store records it: kept in the event window and sent to watchers.
#[derive(Debug)]
pub(crate) struct StoredEvent {
    pub rv: u64,
    pub resource_id: u32,
    pub key: Box<str>,
    /// ADDED | MODIFIED | DELETED
    pub event_type: &'static str,
    /// the new state; for DELETED the last state with the deletion's resourceVersion
    pub object: Arc<[u8]>,
    /// the state before this write
    pub previous: Option<Arc<[u8]>>,
}

impl StoredEvent {
    /// Bytes this event keeps alive beyond the stored objects: the superseded state, and the
    /// last state of a deleted object.
    pub fn retained_bytes(&self) -> usize {
        let previous = self.previous.as_ref().map_or(0, |p| p.len());
        let deleted = if self.event_type == "DELETED" {
            self.object.len()
        } else {
            0
        };
        previous + deleted
    }

    pub fn namespace(&self) -> Option<&str> {
        self.key.split_once('/').map(|(ns, _)| ns)
    }
}

/// A stream of watch events. It ends when the store drops the watch (fault injection, a
/// watcher too slow to keep up, or the resource going away); clients then re-watch from the
/// last resourceVersion they saw, as they do when a real apiserver closes a watch.
pub struct WatchStream {
    pub(crate) shared: Weak<Shared>,
    pub(crate) api_version: String,
    pub(crate) kind: String,
    pub(crate) selectors: Selectors,
    /// Hand out objects as stored rather than parsed (see [`super::WatchOptions`]).
    pub(crate) stored_objects: bool,
    /// current objects, sent as ADDED first (RV unset or "0")
    pub(crate) initial: VecDeque<Arc<[u8]>>,
    /// after the initial objects: the bookmark annotated `k8s.io/initial-events-end`
    pub(crate) initial_end: Option<u64>,
    /// events from the window after the requested resourceVersion
    pub(crate) backlog: VecDeque<Arc<StoredEvent>>,
    pub(crate) receiver: Option<mpsc::Receiver<Arc<StoredEvent>>>,
    pub(crate) ready: VecDeque<WatchEvent>,
    pub(crate) bookmark_interval: Option<Duration>,
    pub(crate) bookmark_timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

fn parse(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice(bytes).ok()
}

fn with_resource_version(mut object: Value, rv: u64) -> Value {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
    }
    object
}

impl WatchStream {
    /// A stream that sends one ERROR event and ends (410 Expired for a too old resourceVersion).
    pub(crate) fn error(status: Value) -> Self {
        WatchStream {
            shared: Weak::new(),
            api_version: String::new(),
            kind: String::new(),
            selectors: Selectors::default(),
            stored_objects: false,
            initial: VecDeque::new(),
            initial_end: None,
            backlog: VecDeque::new(),
            receiver: None,
            ready: VecDeque::from([WatchEvent::parsed("ERROR", status)]),
            bookmark_interval: None,
            bookmark_timer: None,
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> WatchEvent {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        WatchEvent::parsed(
            "BOOKMARK",
            json!({"kind": self.kind, "apiVersion": self.api_version, "metadata": metadata}),
        )
    }

    /// Turns a stored event into what this watcher sees: with selectors, an object that stops
    /// matching is DELETED and one that starts matching is ADDED, as the watch cache does.
    fn translate(&mut self, event: &StoredEvent) {
        if self.selectors.is_empty() {
            if let Some(out) = self.outgoing(event.event_type, &event.object, None) {
                self.ready.push_back(out);
            }
            return;
        }
        let Some(now) = self.selector_view(&event.object) else {
            return;
        };
        let matches_now = self.selectors.matches(&now);
        let event_type = match event.event_type {
            "MODIFIED" => {
                let previous = event.previous.as_deref();
                let matched_before = previous
                    .and_then(|p| self.selector_view(p))
                    .is_some_and(|p| self.selectors.matches(&p));
                match (matched_before, matches_now) {
                    (true, true) => "MODIFIED",
                    (false, true) => "ADDED",
                    (true, false) => {
                        if let Some(previous) = previous.and_then(parse) {
                            self.ready.push_back(WatchEvent::parsed(
                                "DELETED",
                                with_resource_version(previous, event.rv),
                            ));
                        }
                        return;
                    }
                    (false, false) => return,
                }
            }
            other if matches_now => other,
            _ => return,
        };
        if let Some(out) = self.outgoing(event_type, &event.object, Some(now)) {
            self.ready.push_back(out);
        }
    }

    /// The event this watcher gets for an object: as stored, or parsed. `view` is what the
    /// selectors looked at, if they did: the whole object when objects go out parsed.
    fn outgoing(
        &self,
        event_type: &'static str,
        object: &Arc<[u8]>,
        view: Option<Value>,
    ) -> Option<WatchEvent> {
        if self.stored_objects {
            return Some(WatchEvent {
                event_type,
                object: Value::Null,
                stored: Some(Arc::clone(object)),
            });
        }
        view.or_else(|| parse(object)).map(|object| WatchEvent::parsed(event_type, object))
    }

    /// What the selectors look at: the whole object, or (when objects go out as stored) only
    /// the top-level members they read, the rest left unparsed.
    fn selector_view(&self, bytes: &[u8]) -> Option<Value> {
        if !self.stored_objects {
            return parse(bytes);
        }
        let members: BTreeMap<String, &RawValue> = serde_json::from_slice(bytes).ok()?;
        let mut view = serde_json::Map::new();
        for (name, raw) in members {
            if self.selectors.reads_member(&name) {
                view.insert(name, serde_json::from_str(raw.get()).ok()?);
            }
        }
        Some(Value::Object(view))
    }

    /// A bookmark at the store's current resourceVersion, after every event up to it.
    fn emit_bookmark(&mut self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        // while the read lock is held no write can happen, so every event up to `rv` is
        // already in the channel
        let state = shared.state.read();
        let rv = state.rv;
        let mut pending = Vec::new();
        if let Some(receiver) = self.receiver.as_mut() {
            while let Ok(event) = receiver.try_recv() {
                pending.push(event);
            }
        }
        drop(state);
        for event in pending {
            self.translate(&event);
        }
        let bookmark = self.bookmark(rv, false);
        self.ready.push_back(bookmark);
    }
}

impl Stream for WatchStream {
    type Item = WatchEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        let this = &mut *self;
        loop {
            if let Some(event) = this.ready.pop_front() {
                return Poll::Ready(Some(event));
            }
            if let Some(bytes) = this.initial.pop_front() {
                let view = if this.selectors.is_empty() {
                    None
                } else {
                    match this.selector_view(&bytes) {
                        Some(view) if this.selectors.matches(&view) => Some(view),
                        _ => continue,
                    }
                };
                if let Some(out) = this.outgoing("ADDED", &bytes, view) {
                    this.ready.push_back(out);
                }
                continue;
            }
            if let Some(rv) = this.initial_end.take() {
                let bookmark = this.bookmark(rv, true);
                this.ready.push_back(bookmark);
                continue;
            }
            if let Some(event) = this.backlog.pop_front() {
                this.translate(&event);
                continue;
            }
            let Some(receiver) = this.receiver.as_mut() else {
                return Poll::Ready(None);
            };
            match receiver.poll_recv(cx) {
                Poll::Ready(Some(event)) => {
                    this.translate(&event);
                    continue;
                }
                Poll::Ready(None) => {
                    this.receiver = None;
                    return Poll::Ready(None);
                }
                Poll::Pending => {}
            }
            let Some(interval) = this.bookmark_interval else {
                return Poll::Pending;
            };
            let timer =
                this.bookmark_timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(interval)));
            match timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    timer.as_mut().reset(tokio::time::Instant::now() + interval);
                    this.emit_bookmark();
                    continue;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Keeps a watch registered while its stream lives.
pub(crate) struct WatcherSlot {
    pub resource_id: u32,
    pub namespace: Option<String>,
    pub sender: mpsc::Sender<Arc<StoredEvent>>,
}

impl WatcherSlot {
    /// Offers an event; false when the watcher is gone or too slow and must be dropped.
    pub fn offer(&self, event: &Arc<StoredEvent>) -> bool {
        if self.resource_id != event.resource_id {
            return !self.sender.is_closed();
        }
        if let Some(ns) = &self.namespace
            && event.namespace() != Some(ns.as_str())
        {
            return !self.sender.is_closed();
        }
        self.sender.try_send(event.clone()).is_ok()
    }
}
