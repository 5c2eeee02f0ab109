//! kube-rs against kube-sim: a kube-runtime Controller with a finalizer, watches, and the
//! fault-injection API.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::watcher;
use kube::{Client, CustomResource, CustomResourceExt, ResourceExt};
use kube_sim::SimBuilder;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "example.com",
    version = "v1",
    kind = "Gadget",
    namespaced,
    status = "GadgetStatus"
)]
pub struct GadgetSpec {
    pub size: i32,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GadgetStatus {
    pub phase: Option<String>,
    pub observed_size: Option<i32>,
}

const FINALIZER: &str = "example.com/cleanup";

struct Context {
    client: Client,
    cleanups: AtomicUsize,
}

async fn reconcile(
    gadget: Arc<Gadget>,
    ctx: Arc<Context>,
) -> Result<Action, kube::runtime::finalizer::Error<kube::Error>> {
    let namespace = gadget.namespace().unwrap_or_else(|| "default".into());
    let gadgets: Api<Gadget> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&gadgets, FINALIZER, gadget, |event| async {
        match event {
            FinalizerEvent::Apply(gadget) => {
                let status = json!({
                    "apiVersion": "example.com/v1",
                    "kind": "Gadget",
                    "status": {"phase": "Ready", "observedSize": gadget.spec.size},
                });
                gadgets
                    .patch_status(
                        &gadget.name_any(),
                        &PatchParams::apply("gadget-controller").force(),
                        &Patch::Apply(&status),
                    )
                    .await?;
                Ok(Action::await_change())
            }
            FinalizerEvent::Cleanup(_) => {
                ctx.cleanups.fetch_add(1, Ordering::SeqCst);
                Ok(Action::await_change())
            }
        }
    })
    .await
}

fn error_policy(
    _: Arc<Gadget>,
    _: &kube::runtime::finalizer::Error<kube::Error>,
    _: Arc<Context>,
) -> Action {
    Action::requeue(Duration::from_millis(200))
}

/// Polls until `check` holds, for at most `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_reconciles_a_custom_resource_with_a_finalizer() {
    let sim = SimBuilder::new().clusters(1).start().await.expect("starting kube-sim");
    let client = sim.client(0).await.expect("client");

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Gadget::crd()).await.expect("creating the CRD");
    tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(
            crds,
            "gadgets.example.com",
            conditions::is_crd_established(),
        ),
    )
    .await
    .expect("CRD established in time")
    .expect("watching the CRD");

    let context = Arc::new(Context {
        client: client.clone(),
        cleanups: AtomicUsize::new(0),
    });
    let gadgets: Api<Gadget> = Api::namespaced(client.clone(), "default");
    let controller = tokio::spawn(
        Controller::new(gadgets.clone(), watcher::Config::default())
            .run(reconcile, error_policy, Arc::clone(&context))
            .for_each(|_| async {}),
    );

    let gadget = Gadget::new("g1", GadgetSpec { size: 3 });
    gadgets.create(&PostParams::default(), &gadget).await.expect("creating g1");
    eventually(
        Duration::from_secs(15),
        "g1 Ready with the finalizer",
        || async {
            let Ok(g) = gadgets.get("g1").await else {
                return false;
            };
            let ready = g.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Ready");
            ready && g.finalizers().iter().any(|f| f == FINALIZER)
        },
    )
    .await;

    gadgets
        .patch(
            "g1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 5}})),
        )
        .await
        .expect("changing the spec");
    eventually(Duration::from_secs(15), "observedSize 5", || async {
        gadgets.get("g1").await.ok().and_then(|g| g.status.and_then(|s| s.observed_size)) == Some(5)
    })
    .await;
    let g1 = gadgets.get("g1").await.expect("g1");
    assert_eq!(g1.metadata.generation, Some(2));

    gadgets.delete("g1", &DeleteParams::default()).await.expect("deleting g1");
    eventually(Duration::from_secs(15), "g1 gone", || async {
        matches!(gadgets.get("g1").await, Err(kube::Error::Api(e)) if e.code == 404)
    })
    .await;
    assert_eq!(context.cleanups.load(Ordering::SeqCst), 1);

    controller.abort();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_are_independent_and_faults_are_injectable() {
    let sim = SimBuilder::new().clusters(2).start().await.expect("starting kube-sim");
    assert_eq!(sim.context_name(1), "sim-1");
    let yaml = sim.kubeconfig_yaml();
    assert!(
        yaml.contains("current-context: sim-0") && yaml.contains("name: sim-1"),
        "{yaml}"
    );

    let client0 = sim.client(0).await.expect("client 0");
    let client1 = sim.client(1).await.expect("client 1");
    let cms0: Api<ConfigMap> = Api::namespaced(client0.clone(), "default");
    let cms1: Api<ConfigMap> = Api::namespaced(client1.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "only-in-0"}, "data": {"k": "v"}}))
            .expect("cm");
    cms0.create(&PostParams::default(), &cm).await.expect("create in cluster 0");
    assert!(cms1.get_opt("only-in-0").await.expect("get in cluster 1").is_none());

    // watch: an event arrives, then dropping watches ends the stream
    let list = cms0.list(&ListParams::default()).await.expect("list");
    let rv = list.metadata.resource_version.clone().expect("list resourceVersion");
    let mut stream =
        cms0.watch(&WatchParams::default().timeout(30), &rv).await.expect("watch").boxed();
    cms0.patch(
        "only-in-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "w"}})),
    )
    .await
    .expect("patch");
    let event =
        tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("event in time");
    assert!(
        matches!(event, Some(Ok(WatchEvent::Modified(_)))),
        "{event:?}"
    );
    sim.drop_watches(0).expect("drop watches");
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(item) = stream.next().await {
            if item.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(
        end.is_ok(),
        "the watch stream should end when watches are dropped"
    );

    // 500s are not retried by kube-rs; 429 with Retry-After is
    sim.fail_next(0, 1, 500).expect("fail next");
    match cms0.get("only-in-0").await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 500),
        other => panic!("expected a 500, got {other:?}"),
    }
    sim.fail_next(0, 1, 429).expect("fail next");
    cms0.get("only-in-0").await.expect("429 is retried");

    // a forbidden resource is refused as RBAC refuses it; other resources are not
    sim.forbid(0, "configmaps", true).expect("forbid");
    match cms0.get("only-in-0").await {
        Err(kube::Error::Api(e)) => {
            assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
            assert_eq!(
                e.message,
                "configmaps \"only-in-0\" is forbidden: User \"kube-sim\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\""
            );
        }
        other => panic!("expected a 403, got {other:?}"),
    }
    match cms0.list(&ListParams::default()).await {
        Err(kube::Error::Api(e)) => assert!(e.message.contains("cannot list"), "{}", e.message),
        other => panic!("expected a 403, got {other:?}"),
    }
    Api::<k8s_openapi::api::core::v1::Namespace>::all(sim.client(0).await.expect("client"))
        .list(&ListParams::default())
        .await
        .expect("other resources are served");
    sim.forbid(0, "configmaps", false).expect("allow");
    cms0.get("only-in-0").await.expect("served again");

    // latency
    sim.set_latency(0, Duration::from_millis(300)).expect("latency");
    let start = Instant::now();
    cms0.get("only-in-0").await.expect("get with latency");
    assert!(start.elapsed() >= Duration::from_millis(300));
    sim.set_latency(0, Duration::ZERO).expect("latency off");

    // stop refuses connections, start serves the same data on the same port
    let url = sim.url(0);
    sim.stop(0).expect("stop");
    assert!(cms0.get("only-in-0").await.is_err());
    sim.start(0).await.expect("start");
    assert_eq!(sim.url(0), url);
    let fresh: Api<ConfigMap> = Api::namespaced(sim.client(0).await.expect("client"), "default");
    assert_eq!(
        fresh
            .get("only-in-0")
            .await
            .expect("data kept")
            .data
            .and_then(|d| d.get("k").cloned())
            .as_deref(),
        Some("w")
    );

    // token rotation: the old token is refused
    let new_token = sim.rotate_token(1).expect("rotate");
    assert_eq!(new_token, sim.token(1));
    match cms1.list(&ListParams::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 401),
        other => panic!("expected 401 with the old token, got {other:?}"),
    }
    let cms1: Api<ConfigMap> = Api::namespaced(sim.client(1).await.expect("client"), "default");
    cms1.list(&ListParams::default()).await.expect("new token works");

    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_controls_clusters() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    assert!(kube_sim::admin::bind("0.0.0.0:0".parse().expect("addr")).await.is_err());
    let sim = SimBuilder::new().clusters(2).start().await.expect("starting kube-sim");
    let listener =
        kube_sim::admin::bind("127.0.0.1:0".parse().expect("addr")).await.expect("admin bind");
    let admin = listener.local_addr().expect("admin address");
    let server = tokio::spawn(kube_sim::admin::serve(listener, sim.clone()));

    async fn call(
        admin: std::net::SocketAddr,
        method: &str,
        path: &str,
        body: &str,
    ) -> (u16, serde_json::Value) {
        let mut stream = tokio::net::TcpStream::connect(admin).await.expect("connect admin");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = response.split("\r\n\r\n").nth(1).unwrap_or("");
        (
            status,
            serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        )
    }

    let (status, listing) = call(admin, "GET", "/clusters", "").await;
    assert_eq!(status, 200);
    assert_eq!(listing["clusters"][1]["context"], "sim-1");
    assert_eq!(listing["clusters"][0]["state"], "running");

    let (status, answer) = call(admin, "POST", "/clusters/1/stop", "").await;
    assert_eq!(
        (status, answer["cluster"]["state"].as_str()),
        (200, Some("stopped"))
    );
    let port = sim.url(1).rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).expect("port");
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "stopped clusters refuse connections"
    );
    let (status, _) = call(admin, "POST", "/clusters/1/start", "").await;
    assert_eq!(status, 200);
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok());

    let (status, answer) = call(admin, "POST", "/clusters/0/rotate-token", "").await;
    assert_eq!(status, 200);
    assert_eq!(answer["token"].as_str(), Some(sim.token(0).as_str()));
    let (status, _) = call(admin, "POST", "/clusters/0/latency", r#"{"ms": 10}"#).await;
    assert_eq!(status, 200);
    let (status, _) = call(
        admin,
        "POST",
        "/clusters/0/fail",
        r#"{"count": 2, "code": 429}"#,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(admin, "POST", "/clusters/0/drop-watches", "").await;
    assert_eq!(status, 200);
    let (status, _) = call(admin, "POST", "/clusters/9/stop", "").await;
    assert_eq!(status, 404);

    server.abort();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_legacy_and_aggregated_see_builtins_and_crds() {
    let sim = SimBuilder::new().clusters(1).start().await.expect("starting kube-sim");
    let client = sim.client(0).await.expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Gadget::crd()).await.expect("creating the CRD");

    for aggregated in [false, true] {
        let discovery = kube::Discovery::new(client.clone());
        let discovery = if aggregated {
            discovery.run_aggregated().await
        } else {
            discovery.run().await
        }
        .expect("discovery");
        let find = |group: &str, plural: &str| {
            discovery.groups().any(|g| {
                g.name() == group
                    && g.recommended_resources().iter().any(|(r, _)| r.plural == plural)
            })
        };
        assert!(find("apps", "deployments"), "aggregated={aggregated}");
        assert!(find("", "configmaps"), "aggregated={aggregated}");
        assert!(find("example.com", "gadgets"), "aggregated={aggregated}");
        let (_, capabilities) = discovery
            .groups()
            .find(|g| g.name() == "example.com")
            .and_then(|g| {
                g.recommended_resources().into_iter().find(|(r, _)| r.plural == "gadgets")
            })
            .expect("gadgets");
        assert!(
            capabilities
                .subresources
                .iter()
                .any(|(r, _)| r.plural == "gadgets/status" || r.plural == "status"),
            "{:?}",
            capabilities.subresources.iter().map(|(r, _)| r.plural.clone()).collect::<Vec<_>>()
        );
    }
    sim.shutdown().await;
}

/// Each simulated cluster has its own kube-system namespace whose UID stays the same for as long
/// as the cluster lives, as a real API server's: clients use it as the cluster's ID (KEP-2149).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cluster_has_a_stable_kube_system_uid_of_its_own() {
    use k8s_openapi::api::core::v1::Namespace;
    let sim = SimBuilder::new().clusters(2).start().await.expect("sim");
    let mut uids = Vec::new();
    for index in 0..2 {
        let namespaces: Api<Namespace> = Api::all(sim.client(index).await.expect("client"));
        let first = namespaces.get("kube-system").await.expect("kube-system");
        let again = namespaces.get("kube-system").await.expect("kube-system");
        let uid = first.metadata.uid.clone().expect("a uid");
        assert!(!uid.is_empty());
        assert_eq!(again.metadata.uid, Some(uid.clone()), "stable");
        uids.push(uid);
    }
    assert_ne!(uids[0], uids[1], "one per cluster");
    sim.shutdown().await;
}
