//! `federator run` against kube-sim: /healthz, /readyz, and /metrics moving as a two-region
//! K8ssandraCluster fans out; every reconcile logs its object and region; the Grafana dashboard
//! queries only metrics /metrics exports; a region whose ClientConfig is deleted leaves no
//! series; a reconcile that keeps failing is retried at growing intervals.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use federator::api::cassdc::CassandraDatacenter;
use federator::api::client_config::ClientConfig;
use federator::api::k8ssandra_cluster::K8ssandraCluster;
use kube::Api;
use support::*;

#[test]
fn metrics_move_during_a_fan_out_and_the_dashboard_queries_only_exported_metrics() {
    run(fan_out_metrics());
}

async fn fan_out_metrics() {
    let sim = start_sim(3).cass_operator().register([1, 2]).await;
    let hub = sim.client(0).await.expect("hub client");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = write_kubeconfig(&sim, dir.path());
    let operator = OperatorProcess::start(&kubeconfig, &[]);
    let addr = operator.http_addr().await;

    let (status, body) = http_get(addr, "/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok"));
    // Ready: the only replica takes the Lease, and its controllers' caches sync.
    let (ready, took) = timed(wait_for("ready", Duration::from_secs(30), || async {
        match readiness(addr).await {
            (200, body) => Ok(body),
            (status, body) => Err(format!("{status} {body}\n{}", operator.logs())),
        }
    }))
    .await;
    eprintln!("measured: ready {took:?} after the HTTP server");
    assert_eq!(ready["role"], "leader", "{ready}");

    // Both regions probed: reachability comes from the registry.
    let before = wait_for(
        "both regions reachable in /metrics",
        Duration::from_secs(20),
        || async {
            let (_, text) = http_get(addr, "/metrics").await;
            (metric(&text, "federator_region_reachable", &["region=\"sim-1\""]) == 1.0
                && metric(&text, "federator_region_reachable", &["region=\"sim-2\""]) == 1.0)
                .then_some(text)
        },
    )
    .await;
    assert!(
        before.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    assert_eq!(metric(&before, "federator_leader", &[]), 1.0);
    let k8c_reconciles = |text: &str| {
        metric(
            text,
            "federator_reconciles_total",
            &["controller=\"k8ssandracluster\""],
        )
    };
    let region_requests = |text: &str, region: &str| {
        metric(
            text,
            "federator_region_requests_total",
            &[&format!("region=\"{region}\"")],
        )
    };
    let region_writes = |text: &str, region: &str| {
        metric(
            text,
            "federator_region_requests_total",
            &[&format!("region=\"{region}\""), "method=\"PATCH\""],
        )
    };

    let created = Instant::now();
    apply(
        &hub_api::<K8ssandraCluster>(&hub),
        "demo",
        k8ssandra_cluster("demo", &[("dc1", "sim-1", 1), ("dc2", "sim-2", 1)]),
    )
    .await;
    let after = wait_for(
        "a fan-out lag observed",
        Duration::from_secs(60),
        || async {
            let (_, text) = http_get(addr, "/metrics").await;
            (metric(&text, "federator_fanout_lag_seconds_count", &[])
                > metric(&before, "federator_fanout_lag_seconds_count", &[]))
            .then_some(text)
        },
    )
    .await;
    let lag = metric(&after, "federator_fanout_lag_seconds_sum", &[])
        - metric(&before, "federator_fanout_lag_seconds_sum", &[]);
    eprintln!(
        "measured: fan-out lag {lag:.2} s (seen {:?} after create)",
        created.elapsed()
    );
    assert!(
        lag > 0.0 && lag < created.elapsed().as_secs_f64() + 1.0,
        "lag {lag}"
    );
    for index in [1, 2] {
        let dcs: Api<CassandraDatacenter> =
            Api::namespaced(sim.client(index).await.expect("client"), NS);
        let name = format!("dc{index}");
        assert!(
            dcs.get_opt(&name).await.expect("get").is_some(),
            "{name} exists in sim-{index} once the lag is observed"
        );
    }
    assert!(k8c_reconciles(&after) > k8c_reconciles(&before));
    assert!(
        metric(
            &after,
            "federator_reconcile_duration_seconds_count",
            &["controller=\"k8ssandracluster\""]
        ) > 0.0
    );
    for region in ["sim-1", "sim-2"] {
        assert!(
            region_requests(&after, region) > region_requests(&before, region),
            "requests to {region} counted"
        );
        assert!(
            region_writes(&after, region) > region_writes(&before, region),
            "the datacenter apply in {region} counted as a PATCH"
        );
    }
    assert!(
        metric(
            &after,
            "federator_region_requests_total",
            &["region=\"hub\""]
        ) > 0.0
    );
    assert_eq!(metric(&after, "federator_fanouts_pending", &[]), 0.0);

    // Reconciles log their object and region as fields of the `reconcile` span.
    let lines = operator.log_lines();
    let spans: Vec<&serde_json::Value> = lines.iter().filter_map(|l| l.get("span")).collect();
    assert!(
        spans.iter().any(|s| s["name"] == "reconcile"
            && s["controller"] == "clientconfig"
            && s["object"] == format!("{NS}/sim-1")
            && s["region"] == "sim-1"),
        "a ClientConfig reconcile log with its object and region: {spans:?}"
    );

    dashboard_queries_only_exported_metrics(&after);

    // A write that a region's RBAC refuses is counted by its category, and the reconcile goes on.
    let forbidden = |text: &str| {
        metric(
            text,
            "federator_region_failures_total",
            &["controller=\"k8ssandracluster\"", "category=\"forbidden\""],
        )
    };
    assert_eq!(forbidden(&after), 0.0, "every category is exported at zero");
    sim.forbid(1, "cassandradatacenters", true).expect("forbid");
    apply(
        &hub_api::<K8ssandraCluster>(&hub),
        "demo",
        k8ssandra_cluster("demo", &[("dc1", "sim-1", 2), ("dc2", "sim-2", 1)]),
    )
    .await;
    wait_for(
        "the refused apply counted as forbidden",
        Duration::from_secs(30),
        || async {
            let (_, text) = http_get(addr, "/metrics").await;
            (forbidden(&text) > 0.0).then_some(())
        },
    )
    .await;
    // The refused region is behind on that change, the other is not.
    let region_lag = |text: &str, region: &str| {
        metric(
            text,
            "federator_region_fanout_lag_seconds",
            &[&format!("region=\"{region}\"")],
        )
    };
    let behind = wait_for("sim-1 shown behind", Duration::from_secs(30), || async {
        let (_, text) = http_get(addr, "/metrics").await;
        (region_lag(&text, "sim-1") > 0.5).then_some(text)
    })
    .await;
    assert_eq!(region_lag(&behind, "sim-2"), 0.0, "sim-2 has the change");
    sim.forbid(1, "cassandradatacenters", false).expect("allow");
    wait_for("sim-1 caught up", Duration::from_secs(60), || async {
        let (_, text) = http_get(addr, "/metrics").await;
        (region_lag(&text, "sim-1") == 0.0).then_some(())
    })
    .await;

    // A region whose ClientConfig is deleted leaves no series behind.
    hub_api::<ClientConfig>(&hub)
        .delete("sim-2", &Default::default())
        .await
        .expect("deleting the ClientConfig of sim-2");
    let pruned = wait_for(
        "no sim-2 series in /metrics",
        Duration::from_secs(20),
        || async {
            let (_, text) = http_get(addr, "/metrics").await;
            (!text.contains("region=\"sim-2\"")).then_some(text)
        },
    )
    .await;
    assert!(
        region_requests(&pruned, "sim-1") > 0.0,
        "sim-1's series stay"
    );
}

/// Every `federator_*` name in the dashboard's queries is a sample name in `scrape`.
fn dashboard_queries_only_exported_metrics(scrape: &str) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/federator-dashboard.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard file"))
            .expect("the dashboard is valid JSON");
    let exported: BTreeSet<&str> = scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let mut queried = BTreeSet::new();
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(start) = rest.find("federator_") {
                let tail = &rest[start..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                queried.insert(tail[..end].to_string());
                rest = &tail[end..];
            }
        }
    }
    assert!(queried.len() >= 8, "{queried:?}");
    for name in &queried {
        assert!(
            exported.contains(name.as_str()),
            "the dashboard queries {name}, which /metrics does not export; exported: {exported:?}"
        );
    }
}

#[test]
fn a_reconcile_that_keeps_failing_is_retried_at_growing_intervals() {
    run(failing_reconcile_backs_off());
}

/// The times of the failed reconciles of K8ssandraCluster `name`, from the operator's logs.
fn failures_of(operator: &OperatorProcess, name: &str) -> Vec<k8s_openapi::jiff::Timestamp> {
    operator
        .log_lines()
        .iter()
        .filter(|l| l["message"] == "reconcile failed; retrying")
        // An ObjectRef: `K8ssandraCluster.<version>.<group>/<name>.<namespace>`.
        .filter(|l| {
            (l["k8ssandra_cluster"].as_str()).is_some_and(|o| o.ends_with(&format!("/{name}.{NS}")))
        })
        .filter_map(|l| l["timestamp"].as_str()?.parse().ok())
        .collect()
}

async fn failing_reconcile_backs_off() {
    let sim = start_sim(2).cass_operator().register([1]).await;
    let hub = sim.client(0).await.expect("hub client");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = write_kubeconfig(&sim, dir.path());
    let operator = OperatorProcess::start(&kubeconfig, &[]);
    let clusters = hub_api::<K8ssandraCluster>(&hub);
    apply(
        &clusters,
        "demo",
        k8ssandra_cluster("demo", &[("dc1", "sim-1", 1)]),
    )
    .await;
    wait_for("dc1 created", Duration::from_secs(60), || async {
        let api: Api<CassandraDatacenter> = Api::namespaced(sim.client(1).await.ok()?, NS);
        api.get_opt("dc1").await.ok()?
    })
    .await;

    // Its region down, the cluster cannot be deleted: every reconcile fails (cleanup pending).
    sim.stop(1).expect("stop region 1");
    tokio::time::timeout(CALL_TIMEOUT, clusters.delete("demo", &Default::default()))
        .await
        .expect("delete in time")
        .expect("delete");
    let failures = wait_for("six failed reconciles", Duration::from_secs(60), || async {
        let failures = failures_of(&operator, "demo");
        (failures.len() >= 6).then_some(failures)
    })
    .await;
    let gaps: Vec<f64> =
        failures.windows(2).map(|pair| pair[1].duration_since(pair[0]).as_secs_f64()).collect();
    eprintln!("measured: seconds between failed reconciles {gaps:.2?}");
    // 1, 2, 4, 8, 16 s: each gap about twice the one before (a watch event may add a retry).
    assert!(
        gaps[4] >= 12.0 && gaps[3] >= 6.0,
        "retries do not back off: {gaps:?}"
    );
    assert!(gaps.iter().all(|gap| *gap < 40.0), "{gaps:?}");
}
