//! Kubernetes Events (events.k8s.io/v1) for the objects users look at: K8ssandraCluster,
//! ClientConfig, ReplicatedSecret. Repeats of one reason on one object within
//! [`SERIES_WINDOW`] fold into the first event's series (one small patch instead of a new
//! event), so callers publish on transitions and errors without flooding the API.
//! Publishing never fails a reconcile: an event that cannot be written is logged and dropped.
//!
//! kube's `Recorder` does the same but keeps a full copy of every event it wrote for six
//! minutes and scans them all on each publish: about 10 MB and a linear scan per event after a
//! cold start of 1,000 clusters. Here a series costs its key's hash, the event's name and a
//! count, and the table is bounded ([`MAX_SERIES`]).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Resource;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tracing::debug;

/// The API limit on an event's note.
const MAX_NOTE_BYTES: usize = 1024;
/// How long after its last repeat an event still takes repeats into its series.
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);
/// Series remembered at most; past it the stalest is forgotten (its next repeat starts a new
/// event, which is all that is lost).
const MAX_SERIES: usize = 4096;
/// Expired series are swept at most this often (and whenever the table is full).
const SWEEP_EVERY: SignedDuration = SignedDuration::from_mins(1);

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
    client: kube::Client,
    controller: Arc<str>,
    instance: Arc<str>,
    series: Arc<Mutex<SeriesTable>>,
}

/// The event a repeat folds into.
#[derive(Clone, Debug, PartialEq)]
struct Series {
    namespace: String,
    name: String,
    count: i32,
    last_observed: Timestamp,
}

/// Open series by the hash of what makes a repeat (regarding, reason, action, type, related).
#[derive(Debug)]
struct SeriesTable {
    open: HashMap<u64, Series>,
    last_sweep: Timestamp,
}

impl SeriesTable {
    fn new(now: Timestamp) -> SeriesTable {
        SeriesTable {
            open: HashMap::new(),
            last_sweep: now,
        }
    }

    /// The open series `key` continues at `now`, if any.
    fn repeat_of(&mut self, key: u64, now: Timestamp) -> Option<Series> {
        self.sweep(now);
        self.open.get(&key).filter(|series| series.last_observed + SERIES_WINDOW > now).cloned()
    }

    fn record(&mut self, key: u64, series: Series) {
        if self.open.len() >= MAX_SERIES && !self.open.contains_key(&key) {
            self.sweep(series.last_observed);
            if self.open.len() >= MAX_SERIES
                && let Some(stalest) = self
                    .open
                    .iter()
                    .min_by_key(|(_, series)| series.last_observed)
                    .map(|(key, _)| *key)
            {
                self.open.remove(&stalest);
            }
        }
        self.open.insert(key, series);
    }

    /// Forgets expired series, at most once per [`SWEEP_EVERY`] unless the table is full.
    fn sweep(&mut self, now: Timestamp) {
        if self.open.len() < MAX_SERIES && self.last_sweep + SWEEP_EVERY > now {
            return;
        }
        self.open.retain(|_, series| series.last_observed + SERIES_WINDOW > now);
        self.last_sweep = now;
    }
}

impl Events {
    /// `controller` names the reporting controller (e.g. `federator-k8ssandracluster`); the
    /// instance is the pod name when the deployment passes it as POD_NAME.
    pub fn new(client: kube::Client, controller: &str) -> Events {
        let instance = std::env::var("POD_NAME")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| controller.to_string());
        Events {
            client,
            controller: controller.into(),
            instance: instance.into(),
            series: Arc::new(Mutex::new(SeriesTable::new(Timestamp::now()))),
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
        let now = Timestamp::now();
        let key = series_key(regarding, notice);
        let repeat = self.series.lock().ok().and_then(|mut table| table.repeat_of(key, now));
        let written = match repeat {
            Some(series) => match self.continue_series(&series, now).await {
                Ok(()) => Ok(Series {
                    count: series.count + 1,
                    last_observed: now,
                    ..series
                }),
                // Gone (expired by the API server's TTL, deleted by hand): start anew.
                Err(error) => {
                    debug!(reason = %notice.reason, error = %error, "event series not continued");
                    self.create(regarding, notice, now).await
                }
            },
            None => self.create(regarding, notice, now).await,
        };
        match written {
            Ok(series) => {
                if let Ok(mut table) = self.series.lock() {
                    table.record(key, series);
                }
            }
            Err(error) => debug!(
                reason = %notice.reason,
                object = ?regarding.name,
                error = %error,
                "event not written"
            ),
        }
    }

    async fn create(
        &self,
        regarding: &ObjectReference,
        notice: &Notice,
        now: Timestamp,
    ) -> Result<Series, kube::Error> {
        let event = new_event(regarding, notice, &self.controller, &self.instance, now);
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let name = event.metadata.name.clone().unwrap_or_default();
        Api::<Event>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await?;
        Ok(Series {
            namespace,
            name,
            count: 1,
            last_observed: now,
        })
    }

    async fn continue_series(&self, series: &Series, now: Timestamp) -> Result<(), kube::Error> {
        let patch = serde_json::json!({
            "series": EventSeries {
                count: series.count + 1,
                last_observed_time: MicroTime(now),
            }
        });
        Api::<Event>::namespaced(self.client.clone(), &series.namespace)
            .patch(&series.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }
}

/// What makes two notices repeats of one event: the object, reason, action, type and related
/// object (not the note).
fn series_key(regarding: &ObjectReference, notice: &Notice) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    let reference = |reference: &ObjectReference, hasher: &mut std::hash::DefaultHasher| {
        reference.api_version.hash(hasher);
        reference.kind.hash(hasher);
        reference.namespace.hash(hasher);
        reference.name.hash(hasher);
        reference.uid.hash(hasher);
    };
    reference(regarding, &mut hasher);
    notice.reason.hash(&mut hasher);
    notice.action.hash(&mut hasher);
    notice.warning.hash(&mut hasher);
    if let Some(related) = &notice.related {
        reference(related, &mut hasher);
    }
    hasher.finish()
}

/// A new event about `regarding`, in its namespace ("default" for cluster-scoped objects).
fn new_event(
    regarding: &ObjectReference,
    notice: &Notice,
    controller: &str,
    instance: &str,
    now: Timestamp,
) -> Event {
    let name = format!(
        "{}.{:x}",
        regarding.name.as_deref().unwrap_or(controller),
        now.as_nanosecond()
    );
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(regarding.namespace.clone().unwrap_or_else(|| "default".into())),
            ..Default::default()
        },
        event_time: Some(MicroTime(now)),
        type_: Some(if notice.warning { "Warning" } else { "Normal" }.into()),
        reason: Some(notice.reason.clone()),
        action: Some(notice.action.clone()),
        note: Some(truncate(&notice.note, MAX_NOTE_BYTES)),
        regarding: Some(regarding.clone()),
        related: notice.related.clone(),
        reporting_controller: Some(controller.to_string()),
        reporting_instance: Some(instance.to_string()),
        ..Default::default()
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

    fn cluster(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("k8ssandra.io/v1alpha1".into()),
            kind: Some("K8ssandraCluster".into()),
            namespace: Some("ns".into()),
            name: Some(name.into()),
            ..Default::default()
        }
    }

    fn series(name: &str, last_observed: Timestamp) -> Series {
        Series {
            namespace: "ns".into(),
            name: name.into(),
            count: 1,
            last_observed,
        }
    }

    #[test]
    fn repeats_differ_by_object_reason_and_related_object_not_by_note() {
        let a = Notice::normal("DatacenterUpdated", "Update", "dc1 updated");
        let same_but_note = Notice::normal("DatacenterUpdated", "Update", "dc1 updated again");
        assert_eq!(
            series_key(&cluster("demo"), &a),
            series_key(&cluster("demo"), &same_but_note)
        );
        assert_ne!(
            series_key(&cluster("demo"), &a),
            series_key(&cluster("other"), &a)
        );
        assert_ne!(
            series_key(&cluster("demo"), &a),
            series_key(
                &cluster("demo"),
                &Notice::warning("DatacenterUpdated", "Update", "")
            )
        );
        assert_ne!(
            series_key(&cluster("demo"), &a),
            series_key(&cluster("demo"), &a.clone().about(cluster("dc1")))
        );
    }

    #[test]
    fn a_repeat_continues_its_series_only_within_the_window() {
        let start = Timestamp::now();
        let mut table = SeriesTable::new(start);
        table.record(7, series("demo.1", start));
        let soon = start + SignedDuration::from_mins(5);
        assert_eq!(table.repeat_of(7, soon), Some(series("demo.1", start)));
        assert_eq!(table.repeat_of(8, soon), None);
        let late = start + SERIES_WINDOW + SignedDuration::from_secs(1);
        assert_eq!(table.repeat_of(7, late), None);
        assert!(table.open.is_empty(), "swept once expired");
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_the_stalest_series_first() {
        let start = Timestamp::now();
        let mut table = SeriesTable::new(start);
        for key in 0..MAX_SERIES as u64 + 10 {
            let seen = start + SignedDuration::from_millis(key as i64);
            table.record(key, series(&format!("e{key}"), seen));
        }
        assert_eq!(table.open.len(), MAX_SERIES);
        assert!(table.repeat_of(0, start).is_none(), "stalest forgotten");
        let newest = MAX_SERIES as u64 + 9;
        assert!(table.repeat_of(newest, start).is_some());
    }
}
