//! Kubernetes Events (events.k8s.io/v1) for the objects users look at: K8ssandraCluster,
//! ClientConfig, ReplicatedSecret. kube's [`Recorder`] folds repeats of one reason on one object
//! into a series, so callers publish on transitions and errors without flooding the API.
//! Publishing never fails a reconcile: an event that cannot be written is logged and dropped.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::debug;

/// The API limit on an event's note.
const MAX_NOTE_BYTES: usize = 1024;

/// What an event says: a PascalCase reason and action, and a note for people. Repeats of one
/// reason about one object fold into a series whatever their notes; `related` names the other
/// object involved (a remote datacenter, a target Secret), so that events about different ones
/// stay apart.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub warning: bool,
    pub reason: String,
    pub action: String,
    pub note: String,
    pub related: Option<ObjectReference>,
}

impl Notice {
    pub fn normal(reason: &str, action: &str, note: impl Into<String>) -> Notice {
        Notice {
            warning: false,
            reason: reason.to_string(),
            action: action.to_string(),
            note: note.into(),
            related: None,
        }
    }

    /// The same notice about `related` too.
    pub fn about(self, related: ObjectReference) -> Notice {
        Notice {
            related: Some(related),
            ..self
        }
    }

    pub fn warning(reason: &str, action: &str, note: impl Into<String>) -> Notice {
        Notice {
            warning: true,
            ..Notice::normal(reason, action, note)
        }
    }
}

/// One controller's event publisher.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

impl Events {
    /// `controller` names the reporting controller (e.g. `federator-k8ssandracluster`); the
    /// instance is the pod name when the deployment passes it as POD_NAME.
    pub fn new(client: kube::Client, controller: &str) -> Events {
        let reporter = Reporter {
            controller: controller.to_string(),
            instance: std::env::var("POD_NAME").ok().filter(|v| !v.is_empty()),
        };
        Events {
            recorder: Recorder::new(client, reporter),
        }
    }

    /// Publishes `notice` regarding `object`.
    pub async fn publish<K>(&self, object: &K, notice: &Notice)
    where
        K: Resource<DynamicType = ()>,
    {
        self.publish_to(&object.object_ref(&()), notice).await;
    }

    pub async fn publish_to(&self, regarding: &ObjectReference, notice: &Notice) {
        let event = Event {
            type_: if notice.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: notice.reason.clone(),
            note: Some(truncate(&notice.note, MAX_NOTE_BYTES)),
            action: notice.action.clone(),
            secondary: notice.related.clone(),
        };
        if let Err(error) = self.recorder.publish(&event, regarding).await {
            debug!(
                reason = %notice.reason,
                object = ?regarding.name,
                error = %error,
                "event not written"
            );
        }
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_are_cut_at_a_character_boundary_within_the_api_limit() {
        let note = "é".repeat(700);
        let cut = truncate(&note, MAX_NOTE_BYTES);
        assert!(cut.len() <= MAX_NOTE_BYTES);
        assert!(cut.ends_with("..."));
        assert_eq!(truncate("short", MAX_NOTE_BYTES), "short");
    }
}
