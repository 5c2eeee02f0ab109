//! Events on the CassandraDatacenter as cass-operator's recorder writes them: events.k8s.io/v1
//! through client-go's `tools/events` (`pkg/events/events.go`), `reason` the human-readable
//! words, `action` the constant; a repeat of the same event counts in its `series`.

use serde_json::json;

use super::desired::Desired;
use super::{DcKey, Operator, write_options};

/// An event already written: its name and how many times it happened.
#[derive(Debug, Clone)]
pub(super) struct Series {
    name: String,
    count: u64,
}

/// Events.k8s.io's MicroTime.
fn micro_time() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Event actions of cass-operator's `pkg/events/events.go`.
pub(super) mod action {
    pub const STOPPING_DATACENTER: &str = "StoppingDatacenter";
    pub const STARTING_CASSANDRA: &str = "StartingCassandra";
    pub const STARTING_CASSANDRA_AND_REPLACING_NODE: &str = "StartingCassandraAndReplacingNode";
    pub const FINISHED_REPLACE_NODE: &str = "FinishedReplaceNode";
    pub const SCALING_DOWN_RACK: &str = "ScalingDownRack";
    pub const LABELED_POD_AS_DECOMMISSIONING: &str = "LabeledPodAsDecommissioning";
    pub const DECOMMISSIONING_NODE: &str = "DecommissioningNode";
    pub const DECOMMISSION_DATACENTER: &str = "DecommissionDatacenter";
    pub const CREATED_USERS: &str = "CreatedUsers";
    pub const CREATED_SUPERUSER: &str = "CreatedSuperuser";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

impl Operator {
    /// Records an event on the datacenter; a repeat bumps its series instead of adding one.
    pub(super) fn event(
        &mut self,
        desired: &Desired,
        event_type: EventType,
        action: &'static str,
        reason: String,
        note: &str,
    ) {
        let Some(info) = self.info("events.k8s.io", "events") else {
            return;
        };
        let key: (DcKey, &'static str, String, &'static str) =
            (desired.key(), event_type.as_str(), reason.clone(), action);
        let namespace = Some(desired.namespace.as_str());
        if let Some(series) = self.events.get_mut(&key) {
            series.count += 1;
            let patch = json!({
                "note": note,
                "series": {"count": series.count, "lastObservedTime": micro_time()},
            });
            let written = self.cluster.store.patch(
                &info,
                namespace,
                &series.name,
                crate::store::PatchType::Merge,
                patch.to_string().as_bytes(),
                &write_options(),
            );
            if written.is_ok() {
                return;
            }
            // gone (deleted by someone): write it anew
            self.events.remove(&key);
        }
        let name = format!("{}.{:016x}", desired.name, rand::random::<u64>());
        let event = json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": desired.namespace},
            "eventTime": micro_time(),
            "reportingController": "cass-operator",
            "reportingInstance": format!("cass-operator-{}", self.cluster.context),
            "action": action,
            "reason": reason,
            "note": note,
            "type": event_type.as_str(),
            "regarding": {
                "apiVersion": format!("{}/v1beta1", super::GROUP),
                "kind": "CassandraDatacenter",
                "name": desired.name,
                "namespace": desired.namespace,
                "uid": desired.uid,
            },
        });
        match self.cluster.store.create(&info, namespace, event, &write_options()) {
            Ok(_) => {
                self.events.insert(key, Series { name, count: 1 });
            }
            Err(e) => tracing::debug!(error = %e, "cass-operator event"),
        }
    }

    /// Forgets the event series of a datacenter that is gone.
    pub(super) fn forget_events(&mut self, key: &DcKey) {
        self.events.retain(|(dc, ..), _| dc != key);
    }
}
