//! Shared by the `clusters_*` tests: kube-sim clusters with Federator's CRDs, ClientConfigs and
//! their Secrets in the hub, and bounded waits.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use federator::api::client_config::{ClientConfig, ClientConfigSpec, ClientConfigStatus};
use federator::api::shared::{SecretRef, find_condition};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use kube_sim::{Sim, SimBuilder};

/// Operator namespace in the hub.
pub const NS: &str = "k8ssandra-operator";
/// Field manager of the tests' own writes.
const TEST_MANAGER: &str = "clusters-test";
/// Bound on every single API call a test makes.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// `clusters` simulated clusters with Federator's CRDs; cluster 0 is the hub, with the operator
/// namespace.
pub async fn start_sim(clusters: usize) -> Sim {
    let sim = tokio::time::timeout(
        Duration::from_secs(120),
        SimBuilder::new()
            .clusters(clusters)
            .crd_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/crds"))
            .start(),
    )
    .await
    .expect("kube-sim starts in time")
    .expect("kube-sim starts");
    let hub = sim.client(0).await.expect("hub client");
    apply(
        &Api::<Namespace>::all(hub),
        NS,
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    )
    .await;
    sim
}

/// `call`, or a panic naming `what` if it takes longer than [`CALL_TIMEOUT`].
pub async fn bounded<T>(what: &str, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {CALL_TIMEOUT:?}"))
}

/// Server-side applies `object` as field manager `manager`, forcing conflicts.
pub async fn apply_as<K>(manager: &str, api: &Api<K>, name: &str, object: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    bounded(
        "apply",
        api.patch(
            name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&object),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

async fn apply<K>(api: &Api<K>, name: &str, object: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    apply_as(TEST_MANAGER, api, name, object).await;
}

/// Puts a Secret in the operator namespace with the given keys.
pub async fn put_secret(hub: &Client, name: &str, data: &[(&str, &[u8])]) {
    let data: BTreeMap<String, ByteString> = data
        .iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
        .collect();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };
    let mut value = serde_json::to_value(&secret).expect("json");
    value["apiVersion"] = "v1".into();
    value["kind"] = "Secret".into();
    apply(&Api::<Secret>::namespaced(hub.clone(), NS), name, value).await;
}

/// Registers kube-sim cluster `index` with the hub as its context: Secret `<context>-config`
/// with the simulator's kubeconfig, and ClientConfig `<context>`.
pub async fn register_region(sim: &Sim, hub: &Client, index: usize) {
    let context = sim.context_name(index);
    let secret = format!("{context}-config");
    put_secret(
        hub,
        &secret,
        &[("kubeconfig", sim.kubeconfig_yaml().as_bytes())],
    )
    .await;
    put_client_config(hub, &context, &context, &secret).await;
}

/// Puts a ClientConfig `name` for `context` reading Secret `secret`.
pub async fn put_client_config(hub: &Client, name: &str, context: &str, secret: &str) {
    let mut cc = ClientConfig::new(
        name,
        ClientConfigSpec {
            context_name: Some(context.into()),
            kube_config_secret: SecretRef::new(secret),
        },
    );
    cc.metadata.namespace = Some(NS.into());
    let value = serde_json::to_value(&cc).expect("json");
    apply(
        &Api::<ClientConfig>::namespaced(hub.clone(), NS),
        name,
        value,
    )
    .await;
}

pub async fn delete_client_config(hub: &Client, name: &str) {
    let api = Api::<ClientConfig>::namespaced(hub.clone(), NS);
    tokio::time::timeout(CALL_TIMEOUT, api.delete(name, &Default::default()))
        .await
        .expect("delete in time")
        .expect("delete");
}

pub async fn status_of(hub: &Client, name: &str) -> Option<ClientConfigStatus> {
    let api = Api::<ClientConfig>::namespaced(hub.clone(), NS);
    tokio::time::timeout(CALL_TIMEOUT, api.get_opt(name))
        .await
        .ok()?
        .ok()??
        .status
}

/// (status, reason) of a condition.
pub fn condition(status: &ClientConfigStatus, type_: &str) -> Option<(String, String)> {
    find_condition(status.conditions.as_deref().unwrap_or_default(), type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Polls `check` every 100 ms until it gives Some, for at most `limit`; returns the value and
/// how long it took.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return (value, start.elapsed());
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// [`wait_for`]'s value alone.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for(what, limit, check).await.0
}

/// Waits until the ClientConfig's Ready condition has `status` and `reason`; returns the
/// status and how long it took.
pub async fn wait_for_ready(
    hub: &Client,
    name: &str,
    status: &str,
    reason: &str,
    limit: Duration,
) -> (ClientConfigStatus, Duration) {
    let start = Instant::now();
    let mut last = None;
    loop {
        if let Some(current) = status_of(hub, name).await {
            if condition(&current, "Ready") == Some((status.to_string(), reason.to_string())) {
                return (current, start.elapsed());
            }
            last = Some(current);
        }
        assert!(
            start.elapsed() < limit,
            "ClientConfig {name}: Ready={status} ({reason}) not reached in {limit:?}; last status {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Lists namespaces through `client`, with a bound.
pub async fn can_list_namespaces(client: &Client) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_secs(3),
            Api::<Namespace>::all(client.clone()).list(&Default::default())
        )
        .await,
        Ok(Ok(_))
    )
}

/// The operator running in this test's process as `federator run` starts it (operator namespace
/// [`NS`], a probe every second, 2 s requests, then `adjust`); stopped by [`InProcessOperator::stop`].
pub struct InProcessOperator {
    operator: Option<federator::operator::Operator>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl InProcessOperator {
    pub fn start(
        hub: &Client,
        adjust: impl FnOnce(&mut federator::settings::Settings),
    ) -> InProcessOperator {
        use federator::settings::{Overrides, Settings};
        let mut settings =
            Settings::load_from(&Overrides::default(), &[]).expect("default settings load");
        settings.operator_namespace = NS.to_string();
        settings.regions.probe_interval = Duration::from_secs(1);
        settings.regions.request_timeout = Duration::from_secs(2);
        adjust(&mut settings);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let operator = federator::operator::Operator::start(
            &settings,
            hub.clone(),
            federator::operator::shutdown_on(async move {
                let _ = stopped.await;
            }),
        );
        InProcessOperator {
            operator: Some(operator),
            stop: Some(stop),
        }
    }

    /// Signals the shutdown and waits (bounded) for the controllers to stop.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(operator) = self.operator.take() {
            bounded("operator stops", operator.run_until(async {}))
                .await
                .expect("no controller ended before the stop");
        }
    }
}
