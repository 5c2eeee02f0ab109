//! Request accounting: every resource request is counted by client (User-Agent), verb and
//! resource, readable through the Rust API and the admin API.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use kube_sim::SimBuilder;
use kube_sim::requests::RequestCount;

fn count(counts: &[RequestCount], agent: &str, verb: &str, resource: &str) -> u64 {
    counts
        .iter()
        .filter(|c| c.user_agent == agent && c.verb == verb && c.resource == resource)
        .map(|c| c.count)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_counted_by_client_verb_and_resource() {
    let sim = tokio::time::timeout(
        Duration::from_secs(60),
        SimBuilder::new().clusters(2).start(),
    )
    .await
    .expect("starts in time")
    .expect("starts");
    let writer = sim.client_with_user_agent(0, "writer/1").await.expect("client");
    let reader = sim.client_with_user_agent(0, "reader/1").await.expect("client");
    let writer_maps: Api<ConfigMap> = Api::namespaced(writer, "default");
    let reader_maps: Api<ConfigMap> = Api::namespaced(reader, "default");
    let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "counted"}, "data": {"a": "1"}});
    for _ in 0..2 {
        writer_maps
            .patch(
                "counted",
                &PatchParams::apply("test").force(),
                &Patch::Apply(&body),
            )
            .await
            .expect("apply");
    }
    reader_maps.get("counted").await.expect("get");
    reader_maps.list(&ListParams::default()).await.expect("list");
    writer_maps.delete("counted", &Default::default()).await.expect("delete");

    let counts = sim.requests(0).expect("counts");
    assert_eq!(count(&counts, "writer/1", "patch", "configmaps"), 2);
    assert_eq!(count(&counts, "writer/1", "delete", "configmaps"), 1);
    assert_eq!(count(&counts, "reader/1", "get", "configmaps"), 1);
    assert_eq!(count(&counts, "reader/1", "list", "configmaps"), 1);
    let reader_writes: u64 =
        counts.iter().filter(|c| c.user_agent == "reader/1" && c.is_write()).map(|c| c.count).sum();
    assert_eq!(reader_writes, 0, "{counts:?}");
    assert!(
        sim.requests(1).expect("counts").is_empty(),
        "clusters count separately"
    );

    // The admin API shows the same counts and resets them.
    let listener =
        kube_sim::admin::bind("127.0.0.1:0".parse().expect("addr")).await.expect("admin bind");
    let admin = listener.local_addr().expect("admin address");
    let server = tokio::spawn(kube_sim::admin::serve(listener, sim.clone()));
    let (status, answer) = admin_call(admin, "GET", "/clusters/0/requests").await;
    assert_eq!(status, 200);
    let listed: Vec<serde_json::Value> = answer["requests"].as_array().cloned().unwrap_or_default();
    assert!(
        listed.iter().any(|r| r["userAgent"] == "writer/1"
            && r["verb"] == "patch"
            && r["resource"] == "configmaps"
            && r["count"] == 2),
        "{answer}"
    );
    let (status, _) = admin_call(admin, "POST", "/clusters/0/reset-requests").await;
    assert_eq!(status, 200);
    assert!(sim.requests(0).expect("counts").is_empty());
    server.abort();
    sim.shutdown().await;
}

async fn admin_call(
    admin: std::net::SocketAddr,
    method: &str,
    path: &str,
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(admin).await.expect("connect admin");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
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
