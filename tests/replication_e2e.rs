//! The ReplicatedSecret controller end to end, in process, against three kube-sim clusters (the
//! hub and two regions registered by ClientConfigs): copies created, rotated, repaired and pruned
//! in every target; conflicts, immutable copies and loops reported per target; a stopped region
//! holding up nothing and catching up; and no secret value in the operator's debug logs.

mod support;

use std::time::Duration;

use base64::Engine as _;
use federator::api::replicated_secret::{ReplicatedSecret, ReplicationCondition};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use kube_sim::Sim;
use support::*;

/// Bound of every wait for the operator to act.
const WAIT: Duration = Duration::from_secs(20);
const RS: &str = "app-secrets";
const OTHER_NS: &str = "apps";
const REPLICATED_LABEL: &str = "k8ssandra.io/replicated-secret-name";
const ORPHAN: &str = "replicatedresource.k8ssandra.io/orphan";

// ---- cluster and operator ----

/// kube-sim with the hub and two regions registered, and the operator running in this process
/// as `federator run` starts it.
struct Running {
    sim: Sim,
    hub: Client,
    regions: Vec<Client>,
    operator: Option<InProcessOperator>,
}

impl Running {
    async fn start() -> Running {
        captured_logs();
        let sim = start_sim(3).namespace(OTHER_NS).register([1, 2]).await;
        let mut clients = Vec::new();
        for index in 0..3 {
            clients.push(sim.client(index).await.expect("client"));
        }
        let hub = clients[0].clone();
        let mut running = Running {
            sim,
            hub,
            regions: clients,
            operator: None,
        };
        running.start_operator();
        running
    }

    fn start_operator(&mut self) {
        self.operator = Some(InProcessOperator::start(&self.hub, |_| {}));
    }

    async fn stop_operator(&mut self) {
        if let Some(operator) = self.operator.take() {
            operator.stop().await;
        }
    }

    fn context(&self, index: usize) -> String {
        self.sim.context_name(index)
    }

    /// Deletes region `index`'s ClientConfig: Federator no longer knows its context.
    async fn delete_client_config(&self, index: usize) {
        delete_client_config(&self.hub, &self.context(index)).await;
    }

    /// Puts region `index`'s ClientConfig back (its kubeconfig Secret stayed).
    async fn restore_client_config(&self, index: usize) {
        let context = self.context(index);
        put_client_config(&self.hub, &context, &context, &kubeconfig_secret(&context)).await;
    }

    /// Secrets of `namespace` in cluster `index` (0 is the hub).
    fn secrets(&self, index: usize, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.regions[index].clone(), namespace)
    }

    fn replicated(&self) -> Api<ReplicatedSecret> {
        Api::namespaced(self.hub.clone(), NS)
    }

    async fn stop(mut self) {
        self.stop_operator().await;
    }
}

async fn get_secret(api: &Api<Secret>, name: &str) -> Option<Secret> {
    bounded("get Secret", api.get_opt(name)).await.expect("get Secret")
}

fn b64(value: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(value)
}

fn value_of(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// A source Secret in the hub's NS.
async fn put_source(running: &Running, name: &str, labels: serde_json::Value, password: &str) {
    apply(
        &running.secrets(0, NS),
        name,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "stringData": {"password": password}
        }),
    )
    .await;
}

async fn put_replicated_secret(running: &Running, targets: serde_json::Value) {
    apply(
        &running.replicated(),
        RS,
        serde_json::json!({
            "apiVersion": "replication.k8ssandra.io/v1alpha1", "kind": "ReplicatedSecret",
            "metadata": {"name": RS, "namespace": NS},
            "spec": {
                "selector": {"matchLabels": {"app": "demo"}},
                "replicationTargets": targets
            }
        }),
    )
    .await;
}

/// Source Secret `s1` (`app: demo`) holding `password`, replicated to namespace NS of regions
/// 1 and 2; returns once region 2 has the copy.
async fn replicate_s1_to_both_regions(running: &Running, password: &str) {
    put_source(running, "s1", serde_json::json!({"app": "demo"}), password).await;
    put_replicated_secret(
        running,
        serde_json::json!([
            {"k8sContextName": running.context(1), "namespace": NS},
            {"k8sContextName": running.context(2), "namespace": NS}
        ]),
    )
    .await;
    wait_for_copy(running, 2, NS, "s1", password).await;
}

/// Waits until Secret `name` in cluster `index`/`namespace` holds `password`.
async fn wait_for_copy(
    running: &Running,
    index: usize,
    namespace: &str,
    name: &str,
    password: &str,
) -> Secret {
    let api = running.secrets(index, namespace);
    wait_for(
        &format!(
            "Secret {name} with the current password in cluster {index} namespace {namespace}"
        ),
        WAIT,
        || async {
            get_secret(&api, name)
                .await
                .filter(|s| value_of(s, "password").as_deref() == Some(password))
        },
    )
    .await
}

async fn wait_for_absence(running: &Running, index: usize, namespace: &str, name: &str) {
    let api = running.secrets(index, namespace);
    wait_for(
        &format!("Secret {name} gone from cluster {index} namespace {namespace}"),
        WAIT,
        || async { get_secret(&api, name).await.is_none().then_some(()) },
    )
    .await;
}

async fn conditions(running: &Running) -> Vec<ReplicationCondition> {
    bounded("get ReplicatedSecret", running.replicated().get_opt(RS))
        .await
        .expect("get ReplicatedSecret")
        .and_then(|rs| rs.status)
        .and_then(|s| s.conditions)
        .unwrap_or_default()
}

/// Waits until the condition of target `context`/`namespace` has `reason`.
async fn wait_for_condition(
    running: &Running,
    context: &str,
    namespace: &str,
    reason: &str,
) -> ReplicationCondition {
    wait_for(
        &format!("condition {reason} for {context:?}/{namespace}"),
        WAIT,
        || async {
            conditions(running).await.into_iter().find(|c| {
                c.cluster == context
                    && c.namespace.as_deref() == Some(namespace)
                    && c.reason.as_deref() == Some(reason)
            })
        },
    )
    .await
}

async fn merge_patch(api: &Api<Secret>, name: &str, patch: serde_json::Value) {
    bounded(
        "patch Secret",
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)),
    )
    .await
    .unwrap_or_else(|e| panic!("patch {name}: {e}"));
}

#[test]
fn copies_follow_their_sources_in_every_region_and_are_pruned() {
    run(follow_and_prune());
}

async fn follow_and_prune() {
    let running = Running::start().await;
    let (region1, region2) = (running.context(1), running.context(2));
    let mut passwords = Vec::new();
    let mut password = |tag: &str| {
        let value = format!("pw-{tag}-{}", std::process::id());
        passwords.push(value.clone());
        value
    };
    let s1_v1 = password("s1-first");
    let s2_v1 = password("s2-first");
    put_source(
        &running,
        "s1",
        serde_json::json!({"app": "demo", "tier": "internal"}),
        &s1_v1,
    )
    .await;
    put_source(&running, "s2", serde_json::json!({"app": "demo"}), &s2_v1).await;
    put_source(
        &running,
        "unrelated",
        serde_json::json!({"app": "other"}),
        &password("unrelated"),
    )
    .await;
    put_replicated_secret(
        &running,
        serde_json::json!([
            {"k8sContextName": region1},
            {"k8sContextName": region2, "namespace": NS},
            {"namespace": OTHER_NS, "targetPrefix": "copy-", "dropLabels": ["tier"], "addLabels": {"team": "db"}}
        ]),
    )
    .await;

    // Created in every target, labelled, with the hub target's prefix and label changes.
    for index in [1, 2] {
        for (name, value) in [("s1", &s1_v1), ("s2", &s2_v1)] {
            let copy = wait_for_copy(&running, index, NS, name, value).await;
            assert_eq!(
                copy.labels().get(REPLICATED_LABEL).map(String::as_str),
                Some(format!("{NS}.{RS}").as_str())
            );
            assert_eq!(
                copy.labels().get("tier").map(String::as_str),
                (name == "s1").then_some("internal")
            );
        }
        assert!(
            get_secret(&running.secrets(index, NS), "unrelated").await.is_none(),
            "an unselected Secret is not copied"
        );
    }
    let hub_copy = wait_for_copy(&running, 0, OTHER_NS, "copy-s1", &s1_v1).await;
    assert_eq!(
        hub_copy.labels().get("team").map(String::as_str),
        Some("db")
    );
    assert!(
        !hub_copy.labels().contains_key("tier"),
        "dropLabels are not copied"
    );
    for (context, namespace) in [
        (region1.as_str(), NS),
        (region2.as_str(), NS),
        ("", OTHER_NS),
    ] {
        let condition = wait_for_condition(&running, context, namespace, "Replicated").await;
        assert_eq!(condition.status, "True");
    }
    assert_eq!(
        conditions(&running).await.len(),
        3,
        "one condition per target"
    );

    // Rotation reaches every region.
    let s1_v2 = password("s1-rotated");
    put_source(
        &running,
        "s1",
        serde_json::json!({"app": "demo", "tier": "internal"}),
        &s1_v2,
    )
    .await;
    for index in [1, 2] {
        wait_for_copy(&running, index, NS, "s1", &s1_v2).await;
    }
    wait_for_copy(&running, 0, OTHER_NS, "copy-s1", &s1_v2).await;

    // A copy edited by hand is repaired within seconds.
    let edited = password("edited-by-hand");
    merge_patch(
        &running.secrets(2, NS),
        "s1",
        serde_json::json!({"stringData": {"password": edited}}),
    )
    .await;
    let started = std::time::Instant::now();
    wait_for_copy(&running, 2, NS, "s1", &s1_v2).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "repaired in {:?}",
        started.elapsed()
    );
    // So is a copy deleted by hand.
    bounded(
        "delete a copy",
        running.secrets(1, NS).delete("s2", &DeleteParams::default()),
    )
    .await
    .expect("delete a copy");
    let started = std::time::Instant::now();
    wait_for_copy(&running, 1, NS, "s2", &s2_v1).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "re-created in {:?}",
        started.elapsed()
    );

    // Steady state: nothing is written, and transition times stay.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let snapshot = || async {
        let mut versions = Vec::new();
        for (index, namespace, name) in [(1, NS, "s1"), (2, NS, "s2"), (0, OTHER_NS, "copy-s1")] {
            let copy = get_secret(&running.secrets(index, namespace), name).await.expect("copy");
            versions.push(copy.resource_version());
        }
        let rs = bounded("get", running.replicated().get(RS)).await.expect("rs");
        versions.push(rs.resource_version());
        versions
    };
    let before = snapshot().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        before,
        snapshot().await,
        "nothing is written at steady state"
    );

    // A source that stops matching: its copies are pruned everywhere.
    put_source(
        &running,
        "s2",
        serde_json::json!({"app": "retired"}),
        &s2_v1,
    )
    .await;
    for index in [1, 2] {
        wait_for_absence(&running, index, NS, "s2").await;
    }
    wait_for_absence(&running, 0, OTHER_NS, "copy-s2").await;

    // A target taken out of the spec: its copies go, its condition too; an orphan stays.
    merge_patch(
        &running.secrets(2, NS),
        "s1",
        serde_json::json!({"metadata": {"annotations": {ORPHAN: "true"}}}),
    )
    .await;
    put_replicated_secret(
        &running,
        serde_json::json!([
            {"k8sContextName": region2, "namespace": NS},
            {"namespace": OTHER_NS, "targetPrefix": "copy-", "dropLabels": ["tier"], "addLabels": {"team": "db"}}
        ]),
    )
    .await;
    wait_for_absence(&running, 1, NS, "s1").await;
    wait_for("region 1's condition removed", WAIT, || async {
        let now = conditions(&running).await;
        (now.len() == 2 && !now.iter().any(|c| c.cluster == region1)).then_some(())
    })
    .await;

    // A deleted source: its copies go, except the orphan.
    bounded(
        "delete s1",
        running.secrets(0, NS).delete("s1", &DeleteParams::default()),
    )
    .await
    .expect("delete s1");
    wait_for_absence(&running, 0, OTHER_NS, "copy-s1").await;
    assert!(
        get_secret(&running.secrets(2, NS), "s1").await.is_some(),
        "the orphan copy stays"
    );

    // The ReplicatedSecret deleted: its finalizer prunes the copies, then it goes.
    let s3 = password("s3");
    put_source(&running, "s3", serde_json::json!({"app": "demo"}), &s3).await;
    wait_for_copy(&running, 2, NS, "s3", &s3).await;
    wait_for_copy(&running, 0, OTHER_NS, "copy-s3", &s3).await;
    bounded(
        "delete RS",
        running.replicated().delete(RS, &DeleteParams::default()),
    )
    .await
    .expect("delete ReplicatedSecret");
    wait_for_absence(&running, 2, NS, "s3").await;
    wait_for_absence(&running, 0, OTHER_NS, "copy-s3").await;
    wait_for("the ReplicatedSecret gone", WAIT, || async {
        bounded("get", running.replicated().get_opt(RS)).await.expect("get").is_none().then_some(())
    })
    .await;
    assert!(
        get_secret(&running.secrets(2, NS), "s1").await.is_some(),
        "the orphan copy outlives its ReplicatedSecret"
    );

    running.stop().await;
    assert_no_secret_value_logged(&passwords);
}

/// The captured logs hold none of `values`, in clear or base64.
fn assert_no_secret_value_logged(values: &[String]) {
    let logs = captured_logs().text();
    assert!(
        logs.contains("ReplicatedSecret controller started"),
        "the operator's logs were captured"
    );
    for value in values {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        assert!(
            !logs.contains(value.as_str()),
            "a secret value is in the logs"
        );
        assert!(
            !logs.contains(&encoded),
            "a base64 secret value is in the logs"
        );
    }
}

#[test]
fn conflicts_immutable_copies_and_loops_are_reported_per_target() {
    run(conflicts_and_immutables());
}

async fn conflicts_and_immutables() {
    let running = Running::start().await;
    let (region1, region2) = (running.context(1), running.context(2));
    // Someone else's Secret of the same name in region 1.
    apply(
        &running.secrets(1, NS),
        "s1",
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s1", "namespace": NS},
            "data": {"password": b64("not-federators")}
        }),
    )
    .await;
    put_source(&running, "s1", serde_json::json!({"app": "demo"}), "first").await;
    put_replicated_secret(
        &running,
        serde_json::json!([
            {"k8sContextName": region1, "namespace": NS},
            {"k8sContextName": region2, "namespace": NS},
            {}
        ]),
    )
    .await;

    let conflict = wait_for_condition(&running, &region1, NS, "Conflict").await;
    assert_eq!(conflict.status, "False");
    assert!(
        conflict.message.as_deref().unwrap_or("").contains("s1"),
        "{conflict:?}"
    );
    let loop_guard = wait_for_condition(&running, "", NS, "ReplicationLoop").await;
    assert_eq!(loop_guard.status, "False");
    // The other region is not held up by either.
    wait_for_copy(&running, 2, NS, "s1", "first").await;
    wait_for_condition(&running, &region2, NS, "Replicated").await;
    // Told as an Event on the ReplicatedSecret too.
    let events: Api<Event> = Api::namespaced(running.hub.clone(), NS);
    wait_for("a Conflict Event on the ReplicatedSecret", WAIT, || async {
        let list =
            bounded("list Events", events.list(&Default::default())).await.expect("list Events");
        list.items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("Conflict")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(RS)
                    && e.type_.as_deref() == Some("Warning")
            })
            .map(|_| ())
    })
    .await;
    let theirs = get_secret(&running.secrets(1, NS), "s1").await.expect("their Secret");
    assert_eq!(
        value_of(&theirs, "password").as_deref(),
        Some("not-federators")
    );
    assert!(!theirs.labels().contains_key(REPLICATED_LABEL));

    // The copy in region 2 made immutable: a rotation is not forced onto it.
    merge_patch(
        &running.secrets(2, NS),
        "s1",
        serde_json::json!({"immutable": true}),
    )
    .await;
    let immutable = get_secret(&running.secrets(2, NS), "s1").await.expect("copy");
    put_source(&running, "s1", serde_json::json!({"app": "demo"}), "second").await;
    let condition = wait_for_condition(&running, &region2, NS, "ImmutableTarget").await;
    assert!(
        condition.message.as_deref().unwrap_or("").contains("recreate-immutable"),
        "{condition:?}"
    );
    let kept = get_secret(&running.secrets(2, NS), "s1").await.expect("copy");
    assert_eq!(kept.uid(), immutable.uid());
    assert_eq!(value_of(&kept, "password").as_deref(), Some("first"));

    // With the annotation it is replaced by a new copy.
    bounded(
        "annotate the ReplicatedSecret",
        running.replicated().patch(
            RS,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                "federator.k8ssandra.io/recreate-immutable": "true"
            }}})),
        ),
    )
    .await
    .expect("annotate the ReplicatedSecret");
    let replaced = wait_for_copy(&running, 2, NS, "s1", "second").await;
    assert_ne!(replaced.uid(), immutable.uid(), "replaced, not edited");
    wait_for_condition(&running, &region2, NS, "Replicated").await;

    // Transition times move only on a transition: the conflict's stays while it lasts.
    let conflict_again = wait_for_condition(&running, &region1, NS, "Conflict").await;
    assert_eq!(
        conflict_again.last_transition_time,
        conflict.last_transition_time
    );

    // A target namespace being deleted (held in Terminating by a finalizer) refuses the copy.
    let region1_client = running.regions[1].clone();
    apply(
        &Api::<Namespace>::all(region1_client.clone()),
        "doomed",
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}}),
    )
    .await;
    apply(
        &running.secrets(1, "doomed"),
        "held",
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "held", "namespace": "doomed", "finalizers": ["example.com/hold"]}}),
    )
    .await;
    bounded(
        "delete namespace",
        Api::<Namespace>::all(region1_client).delete("doomed", &DeleteParams::default()),
    )
    .await
    .expect("namespace deletion starts");
    put_replicated_secret(
        &running,
        serde_json::json!([{"k8sContextName": region1, "namespace": "doomed"}]),
    )
    .await;
    let terminating = wait_for_condition(&running, &region1, "doomed", "NamespaceMissing").await;
    assert!(
        terminating.message.as_deref().unwrap_or("").contains("is being deleted"),
        "{terminating:?}"
    );
    running.stop().await;
}

#[test]
fn a_stopped_region_holds_up_nothing_and_catches_up() {
    run(stopped_region());
}

async fn stopped_region() {
    let running = Running::start().await;
    let region2 = running.context(2);
    replicate_s1_to_both_regions(&running, "first").await;

    running.sim.stop(2).expect("stop region 2");
    put_source(
        &running,
        "s1",
        serde_json::json!({"app": "demo"}),
        "rotated",
    )
    .await;
    put_source(&running, "s2", serde_json::json!({"app": "demo"}), "new").await;
    let started = std::time::Instant::now();
    wait_for_copy(&running, 1, NS, "s1", "rotated").await;
    wait_for_copy(&running, 1, NS, "s2", "new").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "region 1 waited {:?} for the stopped region",
        started.elapsed()
    );
    let down = wait_for("region 2's condition False", WAIT, || async {
        conditions(&running).await.into_iter().find(|c| c.cluster == region2 && c.status == "False")
    })
    .await;
    assert!(
        matches!(down.reason.as_deref(), Some("RegionUnreachable")),
        "{down:?}"
    );

    running.sim.start(2).await.expect("start region 2");
    wait_for_copy(&running, 2, NS, "s1", "rotated").await;
    wait_for_copy(&running, 2, NS, "s2", "new").await;
    wait_for_condition(&running, &region2, NS, "Replicated").await;

    // A ReplicatedSecret annotated orphan leaves every copy when it is deleted.
    bounded(
        "annotate the ReplicatedSecret",
        running.replicated().patch(
            RS,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {ORPHAN: "true"}}})),
        ),
    )
    .await
    .expect("annotate the ReplicatedSecret");
    bounded(
        "delete RS",
        running.replicated().delete(RS, &DeleteParams::default()),
    )
    .await
    .expect("delete ReplicatedSecret");
    wait_for("the ReplicatedSecret gone", WAIT, || async {
        bounded("get", running.replicated().get_opt(RS)).await.expect("get").is_none().then_some(())
    })
    .await;
    for index in [1, 2] {
        for name in ["s1", "s2"] {
            assert!(
                get_secret(&running.secrets(index, NS), name).await.is_some(),
                "copy {name} in cluster {index} left in place"
            );
        }
    }
    running.stop().await;
}

#[test]
fn a_target_removed_while_its_region_is_unknown_keeps_its_copies_until_it_is_known_again() {
    run(removed_target_of_an_unknown_region());
}

async fn removed_target_of_an_unknown_region() {
    let mut running = Running::start().await;
    let (region1, region2) = (running.context(1), running.context(2));
    let password = format!("pw-unknown-{}", std::process::id());
    replicate_s1_to_both_regions(&running, &password).await;
    wait_for_condition(&running, &region2, NS, "Replicated").await;

    // While Federator is down, region 2's ClientConfig goes and its target leaves the spec:
    // when it comes back, the copies there cannot be reached, and must not be forgotten.
    running.stop_operator().await;
    running.delete_client_config(2).await;
    put_replicated_secret(
        &running,
        serde_json::json!([{"k8sContextName": region1, "namespace": NS}]),
    )
    .await;
    running.start_operator();
    let pending = wait_for_condition(&running, &region2, NS, "PrunePending").await;
    assert!(
        pending.message.as_deref().unwrap_or_default().contains(ORPHAN),
        "says how to let go: {pending:?}"
    );
    // Several passes later (a pending target is looked at every 5 s) it still waits.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert!(
        conditions(&running)
            .await
            .iter()
            .any(|c| c.cluster == region2 && c.reason.as_deref() == Some("PrunePending")),
        "the removed target is still pending"
    );
    assert!(
        get_secret(&running.secrets(2, NS), "s1").await.is_some(),
        "the copy is still there, not forgotten"
    );

    // Its ClientConfig back: the copy is pruned and the target leaves the status.
    running.restore_client_config(2).await;
    wait_for_absence(&running, 2, NS, "s1").await;
    wait_for("region 2 gone from the status", WAIT, || async {
        (!conditions(&running).await.iter().any(|c| c.cluster == region2)).then_some(())
    })
    .await;
    assert!(get_secret(&running.secrets(1, NS), "s1").await.is_some());
    running.stop().await;
}

#[test]
fn a_target_whose_region_became_unknown_before_its_removal_keeps_its_copies() {
    run(target_unknown_then_removed());
}

async fn target_unknown_then_removed() {
    let running = Running::start().await;
    let (region1, region2) = (running.context(1), running.context(2));
    let password = format!("pw-lost-{}", std::process::id());
    replicate_s1_to_both_regions(&running, &password).await;
    wait_for_condition(&running, &region2, NS, "Replicated").await;

    // With Federator running, region 2's ClientConfig goes while it is still a target...
    running.delete_client_config(2).await;
    let unknown = wait_for_condition(&running, &region2, NS, "UnknownContext").await;
    assert_eq!(unknown.copies_placed, Some(true), "{unknown:?}");
    // ...and only then leaves the spec: its copies are not taken for never placed.
    put_replicated_secret(
        &running,
        serde_json::json!([{"k8sContextName": region1, "namespace": NS}]),
    )
    .await;
    wait_for_condition(&running, &region2, NS, "PrunePending").await;
    assert!(
        get_secret(&running.secrets(2, NS), "s1").await.is_some(),
        "the copy is still there"
    );

    running.restore_client_config(2).await;
    wait_for_absence(&running, 2, NS, "s1").await;
    running.stop().await;
}

#[test]
fn a_target_whose_context_reaches_the_hub_is_the_hub() {
    run(target_in_the_hub_by_context());
}

/// The hub registered with a ClientConfig of its own (as k8ssandra-operator's setups do): a
/// target naming that context is the hub, so its sources' own namespace is a loop, not a
/// conflict with the sources themselves, and another namespace gets the copies.
async fn target_in_the_hub_by_context() {
    let running = Running::start().await;
    let hub_context = running.context(0);
    register_region(&running.sim, &running.hub, 0).await;
    wait_reaches_hub(&running.hub, &hub_context, true, WAIT).await;

    put_source(&running, "s1", serde_json::json!({"app": "demo"}), "first").await;
    put_replicated_secret(
        &running,
        serde_json::json!([
            {"k8sContextName": hub_context, "namespace": NS},
            {"k8sContextName": hub_context, "namespace": OTHER_NS}
        ]),
    )
    .await;
    wait_for_condition(&running, &hub_context, NS, "ReplicationLoop").await;
    wait_for_copy(&running, 0, OTHER_NS, "s1", "first").await;
    wait_for_condition(&running, &hub_context, OTHER_NS, "Replicated").await;
    let source = get_secret(&running.secrets(0, NS), "s1").await.expect("the source");
    assert!(
        !source.labels().contains_key(REPLICATED_LABEL),
        "the source is left as it is"
    );
    running.stop().await;
}
