//! Reaper's stand-in through kube-sim's real interfaces: a Reaper Deployment and Service
//! written with a kube client, Reaper's REST API reached through the API server's services
//! proxy, Cassandra made by the cass-operator stand-in and inspected in the model.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use http_body_util::BodyExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use kube_sim::cassandra::ConsistencyLevel;
use kube_sim::{Sim, SimBuilder};
use serde_json::{Value, json};

mod support;
use support::wait_for;

const NAMESPACE: &str = "default";
const CLUSTER: &str = "demo";
const SERVICE: &str = "demo-reaper-service";

/// The Reaper Deployment as Federator's data plane writes it, with this environment.
fn reaper_deployment(env: Value) -> Value {
    let labels = json!({"app.kubernetes.io/name": "reaper", "k8ssandra.io/reaper": "demo-reaper"});
    json!({
        "metadata": {"name": "demo-reaper", "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"k8ssandra.io/reaper": "demo-reaper"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{
                    "name": "reaper",
                    "image": "thelastpickle/cassandra-reaper:3.8.0",
                    "ports": [{"name": "app", "containerPort": 8080},
                              {"name": "admin", "containerPort": 8081}],
                    "env": env,
                }]},
            },
        },
    })
}

/// The Reaper's Service as Federator's data plane writes it: `app` and `admin`.
fn reaper_service() -> Service {
    let labels = json!({"app.kubernetes.io/name": "reaper", "k8ssandra.io/reaper": "demo-reaper"});
    serde_json::from_value(json!({
        "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "selector": {"k8ssandra.io/reaper": "demo-reaper"},
            "ports": [{"name": "app", "port": 8080, "targetPort": "app"},
                      {"name": "admin", "port": 8081, "targetPort": "admin"}],
        },
    }))
    .expect("service")
}

struct World {
    sim: Sim,
    client: kube::Client,
}

/// A kube client that answers a 503 at once: kube-rs retries 503s by default, with backoff.
async fn client_without_retries(sim: &Sim) -> kube::Client {
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&sim.kubeconfig_yaml()).expect("kubeconfig");
    let options = kube::config::KubeConfigOptions {
        context: Some(sim.context_name(0)),
        ..Default::default()
    };
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.expect("config");
    config.default_retry = false;
    kube::Client::try_from(config).expect("client")
}

/// One answer through the proxy: status, Location, Set-Cookie and body.
#[derive(Debug)]
struct Answer {
    status: u16,
    location: Option<String>,
    cookie: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("JSON: {}", self.body))
    }
}

impl World {
    /// A Sim with a three-node datacenter `dc1` of cluster `demo`, a keyspace `app` (RF 3) with
    /// a table `kv`, and a Reaper `demo-reaper` with the given environment.
    async fn start(reaper_env: Value) -> World {
        let sim = SimBuilder::new()
            .clusters(1)
            .cass_operator(true)
            .dc_ready_after(Duration::from_millis(100))
            .start()
            .await
            .expect("starting kube-sim");
        let client = client_without_retries(&sim).await;
        let world = World { sim, client };
        world.create_datacenter().await;
        world.create_reaper(reaper_env).await;
        let replication = BTreeMap::from([
            ("class".to_string(), "NetworkTopologyStrategy".to_string()),
            ("dc1".to_string(), "3".to_string()),
        ]);
        world.sim.cassandra_create_keyspace(CLUSTER, "app", &replication).expect("keyspace");
        world.sim.cassandra_create_table(CLUSTER, "app", "kv").expect("table");
        world
    }

    async fn create_datacenter(&self) {
        let resource = ApiResource {
            group: "cassandra.datastax.com".into(),
            version: "v1beta1".into(),
            api_version: "cassandra.datastax.com/v1beta1".into(),
            kind: "CassandraDatacenter".into(),
            plural: "cassandradatacenters".into(),
        };
        let dcs: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), NAMESPACE, &resource);
        let dc: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "cassandra.datastax.com/v1beta1",
            "kind": "CassandraDatacenter",
            "metadata": {"name": "dc1", "namespace": NAMESPACE},
            "spec": {"clusterName": CLUSTER, "serverType": "cassandra", "serverVersion": "4.0.17",
                     "size": 3},
        }))
        .expect("dc");
        dcs.create(&PostParams::default(), &dc).await.expect("datacenter");
        wait_for("dc1 Ready", || async {
            let dc = serde_json::to_value(dcs.get("dc1").await.ok()?).ok()?;
            (dc.pointer("/status/cassandraOperatorProgress")? == "Ready").then_some(())
        })
        .await;
        wait_for("three nodes up", || async {
            let ring = self.sim.cassandra_ring(CLUSTER).ok()?;
            (ring.len() == 3 && ring.iter().all(|n| n.up)).then_some(())
        })
        .await;
    }

    /// A Reaper Deployment and Service as Federator's data plane writes them.
    async fn create_reaper(&self, env: Value) {
        let deployment: Deployment =
            serde_json::from_value(reaper_deployment(env)).expect("deployment");
        Api::<Deployment>::namespaced(self.client.clone(), NAMESPACE)
            .create(&PostParams::default(), &deployment)
            .await
            .expect("deployment created");
        Api::<Service>::namespaced(self.client.clone(), NAMESPACE)
            .create(&PostParams::default(), &reaper_service())
            .await
            .expect("service created");
        self.answering("Reaper answers through the service proxy").await;
    }

    /// Waits until a Reaper behind the Service answers `/ping`.
    async fn answering(&self, what: &str) {
        wait_for(what, || async {
            (self.call("GET", "/ping", None, None).await.status == 204).then_some(())
        })
        .await;
    }

    /// A request to Reaper through `services/demo-reaper-service:app/proxy`.
    async fn call(
        &self,
        method: &str,
        path: &str,
        form: Option<&str>,
        cookie: Option<&str>,
    ) -> Answer {
        self.raw(method, &format!("{SERVICE}:app"), path, form, cookie).await
    }

    async fn raw(
        &self,
        method: &str,
        service: &str,
        path: &str,
        form: Option<&str>,
        cookie: Option<&str>,
    ) -> Answer {
        let uri = format!("/api/v1/namespaces/{NAMESPACE}/services/{service}/proxy{path}");
        let mut builder = hyper::Request::builder().method(method).uri(uri);
        if form.is_some() {
            builder = builder.header("content-type", "application/x-www-form-urlencoded");
        }
        if let Some(cookie) = cookie {
            builder = builder.header("cookie", cookie);
        }
        let body = form.map(|f| f.as_bytes().to_vec()).unwrap_or_default();
        let request = builder.body(body).expect("request");
        let response = self.client.send(request.map(kube::client::Body::from)).await.expect("sent");
        let header = |name: &str| {
            response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
        };
        let (status, location, cookie) = (
            response.status().as_u16(),
            header("location"),
            header("set-cookie"),
        );
        let body: Bytes = response.into_body().collect().await.expect("body").to_bytes();
        Answer {
            status,
            location,
            cookie,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn register_cluster(&self) {
        let seed = format!("{CLUSTER}-dc1-service.{NAMESPACE}.svc");
        let answer = self
            .call(
                "PUT",
                &format!("/cluster/{CLUSTER}?seedHost={seed}"),
                None,
                None,
            )
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
        assert_eq!(answer.location.as_deref(), Some("/cluster/demo"));
    }

    /// Creates a run of keyspace `app`; its id.
    async fn create_run(&self) -> String {
        let answer = self
            .call(
                "POST",
                "/repair_run?clusterName=demo&keyspace=app&owner=federator&segmentCountPerNode=2",
                None,
                None,
            )
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
        let run = answer.json();
        assert_eq!(run["state"], "NOT_STARTED");
        assert_eq!(run["keyspace_name"], "app");
        run["id"].as_str().expect("id").to_string()
    }

    /// The run once its state is `state`.
    async fn run_in_state(&self, id: &str, state: &str) -> Value {
        wait_for(&format!("run {id} {state}"), || async {
            let run = self.call("GET", &format!("/repair_run/{id}"), None, None).await.json();
            (run["state"] == state).then_some(run)
        })
        .await
    }

    /// Writes 60 rows at ONE while the third node is stopped: it misses them all.
    fn diverge_replicas(&self) -> String {
        let ring = self.sim.cassandra_ring(CLUSTER).expect("ring");
        let missing = ring[2].pod.name.clone();
        let context = self.sim.context_name(0);
        self.sim.stop_cassandra_node(&context, NAMESPACE, &missing).expect("stop");
        self.sim
            .cassandra_write_generated(CLUSTER, "dc1", "app", "kv", 60, ConsistencyLevel::One)
            .expect("write at ONE");
        missing
    }

    fn rows_per_node(&self) -> Vec<usize> {
        let counts = self.sim.cassandra_row_counts(CLUSTER).expect("row counts");
        counts.per_node.values().map(|tables| tables.get("app.kv").copied().unwrap_or(0)).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_run_through_the_service_proxy_makes_the_replicas_consistent() {
    let world = World::start(json!([{"name": "REAPER_AUTH_ENABLED", "value": "false"}])).await;
    let missing = world.diverge_replicas();
    let context = world.sim.context_name(0);
    world.sim.start_cassandra_node(&context, NAMESPACE, &missing).expect("start");
    let mut before = world.rows_per_node();
    before.sort();
    assert_eq!(
        before,
        vec![0, 60, 60],
        "the restarted node missed the writes"
    );

    world.register_cluster().await;
    assert_eq!(
        world.call("GET", "/cluster", None, None).await.json(),
        json!(["demo"])
    );
    let cluster = world.call("GET", "/cluster/demo", None, None).await.json();
    let dc1 = &cluster["nodes_status"]["endpointStates"][0]["endpoints"]["dc1"];
    let nodes: usize =
        dc1.as_object().expect("racks").values().map(|r| r.as_array().map_or(0, Vec::len)).sum();
    assert_eq!(nodes, 3, "{cluster}");
    // Registering again changes nothing.
    let again = world.call("POST", "/cluster?seedHost=demo-dc1-service", None, None).await;
    assert_eq!(again.status, 204);
    let unknown = world.call("POST", "/cluster?seedHost=nowhere", None, None).await;
    assert_eq!(
        (unknown.status, unknown.body.as_str()),
        (400, "no cluster  with seed host nowhere")
    );

    let admin = format!("{SERVICE}:admin");
    let metrics = || world.raw("GET", &admin, "/prometheusMetrics", None, None);
    let progress = "io_cassandrareaper_service_RepairRunner_repairProgress";
    let before = metrics().await;
    assert_eq!(before.status, 200, "{before:?}");
    assert!(
        !before.body.contains(progress),
        "no runner yet: {}",
        before.body
    );

    let id = world.create_run().await;
    let started = world
        .call(
            "PUT",
            &format!("/repair_run/{id}/state/RUNNING"),
            None,
            None,
        )
        .await;
    assert_eq!(started.status, 200, "{started:?}");
    let done = world.run_in_state(&id, "DONE").await;
    assert_eq!(done["segments_repaired"], done["total_segments"]);
    assert_eq!(done["last_event"], "All done");
    let segments =
        world.call("GET", &format!("/repair_run/{id}/segments"), None, None).await.json();
    let segments = segments.as_array().expect("segments");
    assert!(!segments.is_empty() && segments.iter().all(|s| s["state"] == "DONE"));
    assert_eq!(world.rows_per_node(), vec![60, 60, 60]);
    // Reaper's runner gauges, as its Prometheus servlet names them.
    let after = metrics().await.body;
    let sample = |name: &str| {
        after.lines().find_map(|line| {
            let rest =
                line.strip_prefix(&format!("io_cassandrareaper_service_RepairRunner_{name}{{"))?;
            let (labels, value) = rest.split_once("} ")?;
            labels
                .starts_with("cluster=\"demo\",keyspace=\"app\",repairid=\"")
                .then(|| value.parse::<f64>().ok())?
        })
    };
    assert_eq!(sample("repairProgress"), Some(1.0), "{after}");
    assert_eq!(
        sample("segmentsDone"),
        done["segments_repaired"].as_f64(),
        "{after}"
    );
    assert_eq!(
        sample("segmentsTotal"),
        done["total_segments"].as_f64(),
        "{after}"
    );
    assert!(
        sample("millisSinceLastRepair").is_some_and(|ms| ms >= 0.0),
        "{after}"
    );

    let listed = world
        .call(
            "GET",
            "/repair_run?cluster_name=demo&state=DONE",
            None,
            None,
        )
        .await
        .json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    let refused = world.call("DELETE", "/cluster/demo", None, None).await;
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (
            409,
            "cluster \"demo\" cannot be deleted, as it has repair runs"
        )
    );
    let deleted = world
        .call(
            "DELETE",
            &format!("/repair_run/{id}?owner=federator"),
            None,
            None,
        )
        .await;
    assert_eq!(deleted.status, 202);
    assert_eq!(
        world.call("DELETE", "/cluster/demo", None, None).await.status,
        202
    );
    let gone = world.call("GET", "/cluster/demo", None, None).await;
    assert_eq!(
        (gone.status, gone.body.as_str()),
        (404, "cluster with name \"demo\" not found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_fails_while_a_replica_is_down_and_resumes_once_it_is_back() {
    let world = World::start(json!([])).await;
    world.register_cluster().await;
    let missing = world.diverge_replicas();
    let id = world.create_run().await;
    world
        .call(
            "PUT",
            &format!("/repair_run/{id}/state/RUNNING"),
            None,
            None,
        )
        .await;
    let failed = world.run_in_state(&id, "ERROR").await;
    let event = failed["last_event"].as_str().unwrap_or_default();
    assert!(event.contains("Endpoint not alive: /"), "{failed}");

    let context = world.sim.context_name(0);
    world.sim.start_cassandra_node(&context, NAMESPACE, &missing).expect("start");
    let retried = world
        .call(
            "PUT",
            &format!("/repair_run/{id}/state/RUNNING"),
            None,
            None,
        )
        .await;
    assert_eq!(retried.status, 200);
    world.run_in_state(&id, "DONE").await;
    assert_eq!(world.rows_per_node(), vec![60, 60, 60]);

    let same = world.call("PUT", &format!("/repair_run/{id}/state/PAUSED"), None, None).await;
    assert_eq!(
        (same.status, same.body.as_str()),
        (409, "Transition DONE->PAUSED not supported.")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_is_created_listed_started_and_deleted() {
    let world = World::start(json!([])).await;
    world.register_cluster().await;
    let path = "/repair_schedule?clusterName=demo&keyspace=app&owner=federator&scheduleDaysBetween=7&scheduleTriggerTime=2099-01-01T00:00:00";
    let created = world.call("POST", path, None, None).await;
    assert_eq!(created.status, 201, "{created:?}");
    let location = created.location.expect("Location");
    let id = location.trim_start_matches("/repair_schedule/").to_string();
    // The same request again points at the same schedule.
    let again = world.call("POST", path, None, None).await;
    assert_eq!(
        (again.status, again.location.as_deref()),
        (204, Some(location.as_str()))
    );

    let all = world.call("GET", "/repair_schedule", None, None).await.json();
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    assert_eq!(all[0]["state"], "ACTIVE");
    assert_eq!(all[0]["scheduled_days_between"], 7);
    assert_eq!(all[0]["next_activation"], "2099-01-01T00:00:00Z");
    let of_cluster = world.call("GET", "/repair_schedule/cluster/demo", None, None).await.json();
    assert_eq!(of_cluster[0]["id"], id.as_str());

    let started = world.call("POST", &format!("/repair_schedule/start/{id}"), None, None).await;
    assert_eq!(started.status, 200);
    let run = wait_for("the scheduled run done", || async {
        let runs = world.call("GET", "/repair_run?cluster_name=demo", None, None).await.json();
        let run = runs.get(0)?.clone();
        (run["state"] == "DONE").then_some(run)
    })
    .await;
    assert_eq!(run["cause"], format!("scheduled run (schedule id {id})"));

    let active = world
        .call(
            "DELETE",
            &format!("/repair_schedule/{id}?owner=federator"),
            None,
            None,
        )
        .await;
    assert_eq!(active.status, 409);
    let paused = world
        .call(
            "PUT",
            &format!("/repair_schedule/{id}?state=PAUSED"),
            None,
            None,
        )
        .await;
    assert_eq!(paused.status, 200);
    let deleted = world
        .call(
            "DELETE",
            &format!("/repair_schedule/{id}?owner=federator"),
            None,
            None,
        )
        .await;
    assert_eq!(deleted.status, 202);
    assert_eq!(
        world.call("GET", "/repair_schedule", None, None).await.json(),
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_authentication_on_calls_need_a_login() {
    let client_secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "reaper-ui", "namespace": NAMESPACE},
        "stringData": {"username": "ops", "password": "s3cret"},
    }))
    .expect("secret");
    let env = json!([
        {"name": "REAPER_AUTH_ENABLED", "value": "true"},
        {"name": "REAPER_AUTH_USER", "valueFrom": {"secretKeyRef": {"name": "reaper-ui", "key": "username"}}},
        {"name": "REAPER_AUTH_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "reaper-ui", "key": "password"}}},
    ]);
    let sim = SimBuilder::new().clusters(1).start().await.expect("sim");
    let client = client_without_retries(&sim).await;
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &client_secret)
        .await
        .expect("secret created");
    let world = World { sim, client };
    world.create_reaper(env).await;

    let refused = world.call("GET", "/cluster", None, None).await;
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (403, "Forbidden access. Please login to access this page.")
    );
    let wrong = world.call("POST", "/login", Some("username=ops&password=nope"), None).await;
    assert_eq!(
        (wrong.status, wrong.body.as_str()),
        (403, "Invalid credentials combination for user: ops")
    );
    let login = world.call("POST", "/login", Some("username=ops&password=s3cret"), None).await;
    assert_eq!(login.status, 204, "{login:?}");
    let cookie = login.cookie.expect("session cookie");
    let session = cookie.split(';').next().unwrap_or_default().to_string();
    let jwt = world.call("GET", "/jwt", None, Some(&session)).await;
    assert_eq!(jwt.status, 200);
    assert_eq!(jwt.body.split('.').count(), 3, "{}", jwt.body);
    let listed = world.call("GET", "/cluster", None, Some(&session)).await;
    assert_eq!((listed.status, listed.json()), (200, json!([])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_proxy_words_its_failures_as_kube_apiserver() {
    let sim = SimBuilder::new().clusters(1).start().await.expect("sim");
    let client = client_without_retries(&sim).await;
    let world = World { sim, client };
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "lonely", "namespace": NAMESPACE},
        "spec": {"selector": {"app": "nothing"}, "ports": [{"name": "http", "port": 80}]},
    }))
    .expect("service");
    Api::<Service>::namespaced(world.client.clone(), NAMESPACE)
        .create(&PostParams::default(), &service)
        .await
        .expect("service created");
    let status =
        |answer: &Answer| answer.json()["message"].as_str().unwrap_or_default().to_string();

    let none = world.raw("GET", "lonely:http", "/", None, None).await;
    assert_eq!(
        (none.status, status(&none)),
        (503, "no endpoints available for service \"lonely\"".into())
    );
    let no_port = world.raw("GET", "lonely:81", "/", None, None).await;
    assert_eq!(
        (no_port.status, status(&no_port)),
        (
            503,
            "no service port 81 found for service \"lonely\"".into()
        )
    );
    let missing = world.raw("GET", "absent", "/", None, None).await;
    assert_eq!(
        (missing.status, status(&missing)),
        (404, "services \"absent\" not found".into())
    );

    let resources = world.client.list_core_api_resources("v1").await.expect("discovery");
    assert!(resources.resources.iter().any(|r| r.name == "services/proxy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_scheduling_keeps_a_schedule_for_every_user_keyspace_with_tables() {
    let world = World::start(json!([
        {"name": "REAPER_AUTO_SCHEDULING_ENABLED", "value": "true"},
        {"name": "REAPER_AUTO_SCHEDULING_INITIAL_DELAY_PERIOD", "value": "PT15S"},
        {"name": "REAPER_AUTO_SCHEDULING_PERIOD_BETWEEN_POLLS", "value": "PT10M"},
        {"name": "REAPER_AUTO_SCHEDULING_TIME_BEFORE_FIRST_SCHEDULE", "value": "PT5M"},
        {"name": "REAPER_AUTO_SCHEDULING_SCHEDULE_SPREAD_PERIOD", "value": "PT6H"},
        {"name": "REAPER_AUTO_SCHEDULING_EXCLUDED_KEYSPACES", "value": "[audit]"},
    ]))
    .await;
    let replication = BTreeMap::from([
        ("class".to_string(), "NetworkTopologyStrategy".to_string()),
        ("dc1".to_string(), "3".to_string()),
    ]);
    for (keyspace, table) in [
        ("orders", Some("items")),
        ("audit", Some("log")),
        ("empty", None),
    ] {
        world.sim.cassandra_create_keyspace(CLUSTER, keyspace, &replication).expect("keyspace");
        if let Some(table) = table {
            world.sim.cassandra_create_table(CLUSTER, keyspace, table).expect("table");
        }
    }
    let scheduled = || async {
        let all = world.call("GET", "/repair_schedule/cluster/demo", None, None).await.json();
        let mut found: Vec<(String, String, String)> = all
            .as_array()
            .expect("a list")
            .iter()
            .map(|s| {
                let text = |key: &str| s[key].as_str().unwrap_or_default().to_string();
                (
                    text("keyspace_name"),
                    text("owner"),
                    text("next_activation"),
                )
            })
            .collect();
        found.sort();
        found
    };

    // Registering schedules the user keyspaces with tables at once, spread 6 hours apart; not
    // the system ones, the excluded one or the one without tables.
    let now = {
        let model = world.sim.cassandra();
        let mut model = model.lock();
        let now = model.now_millis();
        model.set_now_millis(now);
        now
    };
    world.register_cluster().await;
    let at = |millis: i64| {
        let time = jiff::Timestamp::from_millisecond(millis).expect("time");
        time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    };
    let owner = "auto-scheduling".to_string();
    assert_eq!(
        scheduled().await,
        [
            ("app".into(), owner.clone(), at(now + 300_000)),
            (
                "orders".into(),
                owner.clone(),
                at(now + 300_000 + 21_600_000)
            ),
        ]
    );

    // A keyspace made later is scheduled at the next poll; a dropped one loses its schedule.
    world.sim.cassandra_create_keyspace(CLUSTER, "later", &replication).expect("keyspace");
    world.sim.cassandra_create_table(CLUSTER, "later", "kv").expect("table");
    {
        let model = world.sim.cassandra();
        let mut model = model.lock();
        model.drop_keyspace(CLUSTER, "orders").expect("drop");
        model.advance_millis(11 * 60_000);
    }
    let keyspaces: Vec<String> = scheduled().await.into_iter().map(|(k, _, _)| k).collect();
    assert_eq!(keyspaces, ["app", "later"]);
}

/// The names of the pods of Reaper `demo-reaper` with their uid.
async fn reaper_pods(client: &kube::Client) -> Vec<(String, String)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let listed = pods
        .list(&ListParams::default().labels("k8ssandra.io/reaper=demo-reaper"))
        .await
        .expect("pods");
    (listed.items.into_iter())
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            (
                p.metadata.name.unwrap_or_default(),
                p.metadata.uid.unwrap_or_default(),
            )
        })
        .collect()
}

/// Deletes the Reaper's one pod and waits for its replacement to answer; the new pod's name.
async fn restart_reaper_pod(world: &World) -> String {
    let before = reaper_pods(&world.client).await;
    assert_eq!(before.len(), 1, "{before:?}");
    let pods: Api<Pod> = Api::namespaced(world.client.clone(), NAMESPACE);
    pods.delete(&before[0].0, &DeleteParams::default()).await.expect("pod deleted");
    let replacement = wait_for("a new Reaper pod", || async {
        let now = reaper_pods(&world.client).await;
        (now.len() == 1 && now[0].1 != before[0].1).then(|| now[0].0.clone())
    })
    .await;
    world.answering("the new Reaper answers").await;
    replacement
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_storage_outlives_a_pod_restart_on_a_statefulsets_claim_only() {
    // A Deployment with memory storage and no volume: a new pod is a new, empty Reaper.
    let world = World::start(json!([{"name": "REAPER_STORAGE_TYPE", "value": "memory"}])).await;
    world.register_cluster().await;
    assert_eq!(
        world.call("GET", "/cluster", None, None).await.json(),
        json!(["demo"])
    );
    restart_reaper_pod(&world).await;
    assert_eq!(
        world.call("GET", "/cluster", None, None).await.json(),
        json!([])
    );

    // A StatefulSet whose claim holds the storage directory, as Federator writes for
    // `storageType: local`: the pod and its claim are made, and the state outlives the pod.
    Api::<Deployment>::namespaced(world.client.clone(), NAMESPACE)
        .delete("demo-reaper", &DeleteParams::default())
        .await
        .expect("deployment deleted");
    wait_for("the Deployment's pod gone", || async {
        reaper_pods(&world.client).await.is_empty().then_some(())
    })
    .await;
    let labels = json!({"app.kubernetes.io/name": "reaper", "k8ssandra.io/reaper": "demo-reaper"});
    let stateful_set: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "demo-reaper", "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"k8ssandra.io/reaper": "demo-reaper"}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"},
            "volumeClaimTemplates": [{
                "metadata": {"name": "reaper-data"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}},
            }],
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{
                    "name": "reaper",
                    "image": "thelastpickle/cassandra-reaper:3.8.0",
                    "ports": [{"name": "app", "containerPort": 8080},
                              {"name": "admin", "containerPort": 8081}],
                    "env": [{"name": "REAPER_STORAGE_TYPE", "value": "memory"}],
                    "volumeMounts": [{"name": "reaper-data",
                                      "mountPath": "/var/lib/cassandra-reaper/storage"}],
                }]},
            },
        },
    }))
    .expect("statefulset");
    Api::<StatefulSet>::namespaced(world.client.clone(), NAMESPACE)
        .create(&PostParams::default(), &stateful_set)
        .await
        .expect("statefulset created");
    world.answering("the StatefulSet's Reaper answers").await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(world.client.clone(), NAMESPACE);
    let claim = claims.get("reaper-data-demo-reaper-0").await.expect("claim made");
    assert_eq!(claim.status.and_then(|s| s.phase).as_deref(), Some("Bound"));
    let pod = Api::<Pod>::namespaced(world.client.clone(), NAMESPACE)
        .get("demo-reaper-0")
        .await
        .expect("pod demo-reaper-0");
    let mounted = (pod.spec.and_then(|s| s.volumes).unwrap_or_default().into_iter())
        .find(|v| v.name == "reaper-data")
        .and_then(|v| v.persistent_volume_claim)
        .map(|c| c.claim_name);
    assert_eq!(mounted.as_deref(), Some("reaper-data-demo-reaper-0"));
    assert_eq!(
        world.call("GET", "/cluster", None, None).await.json(),
        json!([])
    );
    world.register_cluster().await;
    assert_eq!(restart_reaper_pod(&world).await, "demo-reaper-0");
    assert_eq!(
        world.call("GET", "/cluster", None, None).await.json(),
        json!(["demo"])
    );

    // Reaper 3.5 kept its memory storage in memory only: the claim does not help.
    let old = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "reaper", "image": "thelastpickle/cassandra-reaper:3.5.0"}]}}}});
    Api::<StatefulSet>::namespaced(world.client.clone(), NAMESPACE)
        .patch(
            "demo-reaper",
            &PatchParams::default(),
            &Patch::Strategic(old),
        )
        .await
        .expect("image changed");
    wait_for("a Reaper 3.5 pod that has forgotten", || async {
        let answer = world.call("GET", "/cluster", None, None).await;
        (answer.status == 200 && answer.json() == json!([])).then_some(())
    })
    .await;

    // The claim goes with the StatefulSet (whenDeleted: Delete).
    Api::<StatefulSet>::namespaced(world.client.clone(), NAMESPACE)
        .delete("demo-reaper", &DeleteParams::default())
        .await
        .expect("statefulset deleted");
    wait_for("the claim removed with its StatefulSet", || async {
        claims.get_opt("reaper-data-demo-reaper-0").await.ok()?.is_none().then_some(())
    })
    .await;
}

// ---- TLS on the app port (REAPER_SERVER_TLS_*) ----

/// A Reaper Deployment serving TLS as Federator writes it with `encryption.serverCertName`
/// (and `clientCertName`: `client_auth`), its stores from Secret `reaper-server`, and its
/// Service.
async fn create_tls_reaper(client: &kube::Client, client_auth: bool) {
    let mut env = vec![
        json!({"name": "REAPER_SERVER_TLS_ENABLE", "value": "true"}),
        json!({"name": "REAPER_SERVER_TLS_KEYSTORE_PATH",
               "value": "/etc/encryption/server/keystore.jks"}),
        json!({"name": "REAPER_SERVER_TLS_TRUSTSTORE_PATH",
               "value": "/etc/encryption/server/truststore.jks"}),
        json!({"name": "REAPER_SERVER_TLS_DISABLE_SNI", "value": "true"}),
    ];
    if client_auth {
        env.push(json!({"name": "REAPER_SERVER_TLS_CLIENT_AUTH", "value": "true"}));
    }
    let mut deployment = reaper_deployment(json!(env));
    let pod = &mut deployment["spec"]["template"]["spec"];
    pod["containers"][0]["volumeMounts"] =
        json!([{"name": "server-tls-keystore", "mountPath": "/etc/encryption/server"}]);
    pod["volumes"] =
        json!([{"name": "server-tls-keystore", "secret": {"secretName": "reaper-server"}}]);
    let deployment: Deployment = serde_json::from_value(deployment).expect("deployment");
    let deployments = Api::<Deployment>::namespaced(client.clone(), NAMESPACE);
    let _ = deployments.delete("demo-reaper", &DeleteParams::default()).await;
    wait_for("the previous Reaper gone", || async {
        deployments.get_opt("demo-reaper").await.ok()?.is_none().then_some(())
    })
    .await;
    deployments.create(&PostParams::default(), &deployment).await.expect("deployment created");
    let services = Api::<Service>::namespaced(client.clone(), NAMESPACE);
    if services.get_opt(SERVICE).await.expect("service read").is_none() {
        let created = services.create(&PostParams::default(), &reaper_service()).await;
        created.expect("service created");
    }
}

/// The Secret cert-manager writes for a Certificate with keystores: the stores (kube-sim only
/// checks they are there) beside the PEM files it serves with.
fn server_secret(certificates: &kube_sim::tls::ManagementApiCertificates, stores: bool) -> Secret {
    let mut data = json!({
        "tls.crt": certificates.server.certificate_pem,
        "tls.key": certificates.server.key_pem,
        "ca.crt": certificates.ca_pem,
    });
    if stores {
        data["keystore.jks"] = json!("not really JKS");
        data["truststore.jks"] = json!("not really JKS");
    }
    serde_json::from_value(json!({
        "metadata": {"name": "reaper-server", "namespace": NAMESPACE},
        "stringData": data,
    }))
    .expect("secret")
}

/// The Reaper pod's IP once it is Ready (`ready`) or once it runs not Ready.
async fn reaper_pod_ip(client: &kube::Client, ready: bool) -> String {
    let pods = Api::<Pod>::namespaced(client.clone(), NAMESPACE);
    let params = ListParams::default().labels("k8ssandra.io/reaper=demo-reaper");
    wait_for("the Reaper pod", || async {
        let listed = pods.list(&params).await.ok()?;
        let pod = listed.items.into_iter().find(|p| p.metadata.deletion_timestamp.is_none())?;
        let status = pod.status?;
        let is_ready =
            (status.conditions.iter().flatten()).any(|c| c.type_ == "Ready" && c.status == "True");
        (is_ready == ready).then_some(())?;
        status.pod_ip
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_reaper_refuses_plain_http_and_with_client_auth_a_client_without_a_certificate() {
    let sim =
        SimBuilder::new().clusters(1).pod_listeners(true).start().await.expect("starting kube-sim");
    let client = client_without_retries(&sim).await;
    let world = World { sim, client };
    let certificates =
        kube_sim::tls::ManagementApiCertificates::generate(SERVICE).expect("certificates");
    let secrets = Api::<Secret>::namespaced(world.client.clone(), NAMESPACE);
    secrets
        .create(&PostParams::default(), &server_secret(&certificates, true))
        .await
        .expect("secret");

    // Mutual TLS.
    create_tls_reaper(&world.client, true).await;
    let address = format!("{}:8080", reaper_pod_ip(&world.client, true).await);
    // The listener at the pod's IP comes shortly after the pod.
    let (status, _) = wait_for("Reaper answers with mutual TLS at its pod IP", || {
        support::https_get(
            &address,
            SERVICE,
            "/ping",
            &certificates.ca_pem,
            Some(&certificates.client),
        )
        .map(Result::ok)
    })
    .await;
    assert_eq!(status, 204);
    let anonymous =
        support::https_get(&address, SERVICE, "/ping", &certificates.ca_pem, None).await;
    assert!(anonymous.is_err(), "{anonymous:?}");
    let plain = support::http(&address, "GET", "/ping", None).await;
    assert!(plain.is_err(), "plain HTTP got an answer: {plain:?}");
    // The API server's proxy has no certificate of that CA, with or without https.
    let proxied = world.raw("GET", &format!("https:{SERVICE}:app"), "/ping", None, None).await;
    assert_eq!(proxied.status, 503, "{proxied:?}");
    assert!(
        proxied.body.contains("tls: certificate required"),
        "{}",
        proxied.body
    );
    let proxied = world.call("GET", "/ping", None, None).await;
    assert_eq!(proxied.status, 503, "{proxied:?}");
    assert!(
        proxied.body.contains("error trying to reach service: EOF"),
        "{}",
        proxied.body
    );
    // The admin port stays plain HTTP.
    let admin = world
        .raw(
            "GET",
            &format!("{SERVICE}:admin"),
            "/healthcheck",
            None,
            None,
        )
        .await;
    assert_eq!(admin.status, 200, "{admin:?}");

    // Server TLS only: the https proxy reaches it, plain HTTP still does not.
    create_tls_reaper(&world.client, false).await;
    let address = format!("{}:8080", reaper_pod_ip(&world.client, true).await);
    let (status, _) = wait_for("Reaper answers with TLS at its pod IP", || {
        support::https_get(&address, SERVICE, "/ping", &certificates.ca_pem, None).map(Result::ok)
    })
    .await;
    assert_eq!(status, 204);
    let proxied = world.raw("GET", &format!("https:{SERVICE}:app"), "/ping", None, None).await;
    assert_eq!(proxied.status, 204, "{proxied:?}");
    let plain = support::http(&address, "GET", "/ping", None).await;
    assert!(plain.is_err(), "plain HTTP got an answer: {plain:?}");

    // A Secret without the keystore: Reaper does not start, its pod is not Ready, nothing
    // answers; once the keystore is there, it starts.
    for stores in [false, true] {
        let secret = server_secret(&certificates, stores);
        let replaced = secrets.replace("reaper-server", &PostParams::default(), &secret).await;
        replaced.expect("secret replaced");
        reaper_pod_ip(&world.client, stores).await;
        let proxied = world.raw("GET", &format!("https:{SERVICE}:app"), "/ping", None, None).await;
        match stores {
            false => assert!(
                proxied.status == 503 && proxied.body.contains("no endpoints available"),
                "{proxied:?}"
            ),
            true => assert_eq!(proxied.status, 204, "{proxied:?}"),
        }
    }
    world.sim.shutdown().await;
}
