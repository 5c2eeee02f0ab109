//! `federator status` as a user runs it, against a three-region K8ssandraCluster reconciled by
//! `federator run`, with one region stopped; the region's ClientConfig tells its transitions as
//! Events.

mod support;

use std::path::Path;
use std::time::Duration;

use federator::api::client_config::ClientConfig;
use federator::api::k8ssandra_cluster::K8ssandraCluster;
use support::*;

#[test]
fn status_names_the_down_region_and_each_datacenters_readiness() {
    run(status_with_a_region_down());
}

/// Runs `federator status` with `args`: (success, stdout, stderr).
async fn federator_status(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["status"];
    all.extend(args);
    all.extend(["--kubeconfig", kubeconfig.to_str().expect("UTF-8 path")]);
    all.extend(["--context", "sim-0"]);
    run_federator(all, Duration::from_secs(30)).await
}

async fn status_with_a_region_down() {
    let sim = start_sim(4).cass_operator().register(1..4).await;
    let hub = sim.client(0).await.expect("hub client");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = write_kubeconfig(&sim, dir.path());
    let _operator = OperatorProcess::start(&kubeconfig, &["--no-leader-election"]);
    apply(
        &hub_api::<K8ssandraCluster>(&hub),
        "demo",
        k8ssandra_cluster(
            "demo",
            &[
                ("dc1", "sim-1", 3),
                ("dc2", "sim-2", 2),
                ("dc3", "sim-3", 1),
            ],
        ),
    )
    .await;
    wait_for(
        "three datacenters Ready in the status",
        Duration::from_secs(60),
        || async {
            let (ok, stdout, _) = federator_status(&kubeconfig, &["-o", "json"]).await;
            let report: serde_json::Value = serde_json::from_str(&stdout).ok()?;
            (ok && report["clusters"][0]["datacentersReady"] == "3/3").then_some(())
        },
    )
    .await;

    sim.stop(3).expect("stop sim-3");
    let client_configs = hub_api::<ClientConfig>(&hub);
    wait_for(
        "sim-3 unreachable in its ClientConfig",
        Duration::from_secs(30),
        || async {
            let cc = client_configs.get("sim-3").await.ok()?;
            (cc.status?.reachable == Some(false)).then_some(())
        },
    )
    .await;

    let (ok, table, stderr) = federator_status(&kubeconfig, &[]).await;
    assert!(ok, "{stderr}");
    eprintln!("federator status with sim-3 stopped:\n{table}");
    assert!(
        table.contains(&format!("K8ssandraCluster {NS}/demo")),
        "{table}"
    );
    let row = |first: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(first))
            .unwrap_or_else(|| panic!("no row {first} in\n{table}"))
            .to_string()
    };
    let dc1 = row("dc1");
    assert!(
        dc1.contains("sim-1") && dc1.contains(" 3 ") && dc1.contains("Ready"),
        "{dc1}"
    );
    let dc2 = row("dc2");
    assert!(
        dc2.contains("sim-2") && dc2.contains(" 2 ") && dc2.contains("Ready"),
        "{dc2}"
    );
    let dc3 = row("dc3");
    assert!(
        dc3.contains("sim-3") && dc3.contains("Unknown (region unreachable)"),
        "{dc3}"
    );
    for region in ["sim-1", "sim-2"] {
        assert!(row(region).contains("Reachable"), "{table}");
    }
    let down = row("sim-3");
    assert!(down.contains("Unreachable"), "{down}");

    let (ok, json, stderr) = federator_status(&kubeconfig, &["demo", "-n", NS, "-o", "json"]).await;
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&json).expect("JSON output");
    let dcs = report["clusters"][0]["datacenters"].as_array().expect("datacenters");
    let states: Vec<(&str, &str, i64)> = dcs
        .iter()
        .map(|d| {
            (
                d["region"].as_str().unwrap_or_default(),
                d["state"].as_str().unwrap_or_default(),
                d["size"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        states,
        vec![
            ("sim-1", "Ready", 3),
            ("sim-2", "Ready", 2),
            ("sim-3", "Unknown", 1)
        ]
    );
    let down = report["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .find(|r| r["context"] == "sim-3")
        .expect("sim-3 listed");
    assert_eq!(down["reachable"], false);

    // The ClientConfig's transitions are Events: connected, then unreachable with the reason.
    let events: kube::Api<k8s_openapi::api::events::v1::Event> = hub_api(&hub);
    wait_for(
        "Connected and Unreachable events on ClientConfig sim-3",
        Duration::from_secs(20),
        || async {
            let list = events.list(&Default::default()).await.ok()?;
            let reasons: Vec<(String, String)> = list
                .items
                .iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("sim-3"))
                .map(|e| {
                    (
                        e.reason.clone().unwrap_or_default(),
                        e.type_.clone().unwrap_or_default(),
                    )
                })
                .collect();
            let has =
                |reason: &str, type_: &str| reasons.iter().any(|(r, t)| r == reason && t == type_);
            (has("Connected", "Normal") && has("Unreachable", "Warning")).then_some(())
        },
    )
    .await;

    let (ok, _, stderr) = federator_status(&kubeconfig, &["nosuch"]).await;
    assert!(
        !ok && stderr.contains("K8ssandraCluster nosuch not found"),
        "{stderr}"
    );
}
