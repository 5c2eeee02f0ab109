//! Federator's Kubernetes Events against kube-sim: repeats fold into one event's series, other
//! reasons and related objects get their own event, and a series whose event is gone starts a
//! new event.

mod support;

use federator::events::{Events, Notice};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use support::*;

fn cluster(name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("k8ssandra.io/v1alpha1".into()),
        kind: Some("K8ssandraCluster".into()),
        namespace: Some(NS.into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

/// The events about `name`, by reason, as (event name, series count, note).
async fn events_about(api: &Api<Event>, name: &str, reason: &str) -> Vec<(String, i32, String)> {
    let list = bounded("list events", api.list(&ListParams::default())).await.expect("list events");
    list.items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .map(|e| {
            (
                e.metadata.name.unwrap_or_default(),
                e.series.map_or(1, |s| s.count),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_fold_into_one_event_and_a_deleted_event_starts_a_new_series() {
    let sim = start_sim(1).await;
    let hub = sim.client(0).await.expect("hub client");
    let api = Api::<Event>::namespaced(hub.clone(), NS);
    let events = Events::new(hub, "federator-test");
    let demo = cluster("demo");

    for round in 1..=3 {
        let notice = Notice::warning("ApplyFailed", "Apply", format!("attempt {round} failed"));
        events.publish_to(&demo, &notice).await;
    }
    let failed = events_about(&api, "demo", "ApplyFailed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(
        failed[0].1, 3,
        "three occurrences in one series: {failed:?}"
    );
    assert_eq!(failed[0].2, "attempt 1 failed", "the first note is kept");

    // Another object, or the same reason about another related object: events of their own.
    events
        .publish_to(
            &cluster("other"),
            &Notice::warning("ApplyFailed", "Apply", "x"),
        )
        .await;
    let about_dc = Notice::warning("ApplyFailed", "Apply", "dc1 failed").about(cluster("dc1"));
    events.publish_to(&demo, &about_dc).await;
    assert_eq!(events_about(&api, "other", "ApplyFailed").await.len(), 1);
    assert_eq!(events_about(&api, "demo", "ApplyFailed").await.len(), 2);

    // The series' event deleted (by hand, or expired by the API server): the next repeat is a
    // new event, not lost.
    bounded(
        "delete event",
        api.delete(&failed[0].0, &DeleteParams::default()),
    )
    .await
    .expect("delete event");
    let again = Notice::warning("ApplyFailed", "Apply", "attempt 4 failed");
    events.publish_to(&demo, &again).await;
    let after = events_about(&api, "demo", "ApplyFailed").await;
    assert!(
        after.iter().any(|(name, count, note)| *name != failed[0].0
            && *count == 1
            && note == "attempt 4 failed"),
        "{after:?}"
    );
}
