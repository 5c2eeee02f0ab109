//! Two `federator run` replicas against kube-sim: one leads, the other follows without writing
//! anything but the Lease (kube-sim counts every request by User-Agent); the leader killed with
//! SIGKILL is replaced within 15 s, and the new leader reconciles.

mod support;

use std::time::{Duration, Instant};

use federator::api::cassdc::CassandraDatacenter;
use federator::api::k8ssandra_cluster::K8ssandraCluster;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube_sim::Sim;
use support::*;

const LEASES: &str = "leases.coordination.k8s.io";

#[test]
fn a_killed_leader_is_replaced_within_15_s_and_the_follower_never_writes() {
    run(failover());
}

/// Requests `replica` made to the sim's clusters: (lease requests, writes other than to Leases).
fn requests_of(sim: &Sim, replica: &OperatorProcess) -> (u64, Vec<String>) {
    let mut lease_requests = 0;
    let mut writes = Vec::new();
    for index in 0..sim.cluster_count() {
        for count in sim.requests(index).expect("request counts") {
            if !replica.owns_user_agent(&count.user_agent) {
                continue;
            }
            if count.resource == LEASES {
                lease_requests += count.count;
            } else if count.is_write() {
                writes.push(format!(
                    "cluster {index}: {} {} x{}",
                    count.verb, count.resource, count.count
                ));
            }
        }
    }
    (lease_requests, writes)
}

/// Waits until `replica` is a ready `role`; how long that took once its server answered.
async fn wait_for_role(replica: &OperatorProcess, role: &str, limit: Duration) -> Duration {
    let addr = replica.http_addr().await;
    let (_, took) = timed(wait_for(&format!("a ready {role}"), limit, || async {
        let (status, body) = readiness(addr).await;
        if status == 200 && body["role"] == role {
            Ok(())
        } else {
            Err(format!("{status} {body}\n{}", replica.logs()))
        }
    }))
    .await;
    took
}

/// Waits until `replica` has exited by itself; its exit status.
async fn wait_for_exit(
    replica: &mut OperatorProcess,
    what: &str,
    limit: Duration,
) -> std::process::ExitStatus {
    wait_for(what, limit, || {
        let exit = replica.child.try_wait().expect("child status");
        let logs = replica.logs();
        async move { exit.ok_or(logs) }
    })
    .await
}

async fn datacenter_size(sim: &Sim, index: usize, name: &str) -> Option<i32> {
    let api: Api<CassandraDatacenter> = Api::namespaced(sim.client(index).await.ok()?, NS);
    let dc = api.get_opt(name).await.ok()??;
    Some(dc.spec.size)
}

async fn failover() {
    let sim = start_sim(2).cass_operator().register([1]).await;
    let hub = sim.client(0).await.expect("hub client");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = write_kubeconfig(&sim, dir.path());

    let mut first = OperatorProcess::start(&kubeconfig, &[]);
    wait_for_role(&first, "leader", Duration::from_secs(30)).await;
    let second = OperatorProcess::start(&kubeconfig, &[]);
    wait_for_role(&second, "follower", Duration::from_secs(30)).await;

    apply(
        &hub_api::<K8ssandraCluster>(&hub),
        "demo",
        k8ssandra_cluster("demo", &[("dc1", "sim-1", 1)]),
    )
    .await;
    wait_for(
        "dc1 created by the leader",
        Duration::from_secs(30),
        || async { datacenter_size(&sim, 1, "dc1").await.filter(|s| *s == 1) },
    )
    .await;
    // A few renewal periods in which the follower keeps reading the Lease.
    tokio::time::sleep(Duration::from_secs(8)).await;

    let (leader_leases, leader_writes) = requests_of(&sim, &first);
    assert!(leader_leases > 0, "the leader renews its Lease");
    assert!(
        !leader_writes.is_empty(),
        "the leader writes (ClientConfig status, the datacenter)"
    );
    let (follower_leases, follower_writes) = requests_of(&sim, &second);
    assert!(follower_leases > 0, "the follower reads the Lease");
    assert!(
        follower_writes.is_empty(),
        "the follower wrote: {follower_writes:?}"
    );

    first.kill();
    let killed = Instant::now();
    let took = wait_for_role(&second, "leader", Duration::from_secs(15)).await;
    eprintln!("measured: new leader ready {took:?} after SIGKILL of the old one");
    assert!(killed.elapsed() < Duration::from_secs(15));

    // The new leader reconciles: a spec change reaches the region.
    apply(
        &hub_api::<K8ssandraCluster>(&hub),
        "demo",
        k8ssandra_cluster("demo", &[("dc1", "sim-1", 2)]),
    )
    .await;
    wait_for(
        "dc1 scaled by the new leader",
        Duration::from_secs(30),
        || async { datacenter_size(&sim, 1, "dc1").await.filter(|s| *s == 2) },
    )
    .await;
    let (_, writes) = requests_of(&sim, &second);
    assert!(!writes.is_empty(), "the new leader writes");
}

#[test]
fn a_leader_that_cannot_renew_its_lease_stops_its_controllers_until_it_leads_again() {
    run(renewal_failure());
}

async fn renewal_failure() {
    let sim = start_sim(2).cass_operator().register([1]).await;
    let hub = sim.client(0).await.expect("hub client");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = write_kubeconfig(&sim, dir.path());
    let leader = OperatorProcess::start(&kubeconfig, &[]);
    wait_for_role(&leader, "leader", Duration::from_secs(30)).await;
    apply(
        &hub_api::<K8ssandraCluster>(&hub),
        "demo",
        k8ssandra_cluster("demo", &[("dc1", "sim-1", 1)]),
    )
    .await;
    wait_for("dc1 created", Duration::from_secs(30), || async {
        datacenter_size(&sim, 1, "dc1").await.filter(|s| *s == 1)
    })
    .await;

    // Every hub request now outlasts the Lease request timeout: the next renewal fails.
    sim.set_latency(0, Duration::from_secs(3)).expect("latency");
    let slowed = Instant::now();
    wait_for(
        "the leader to stop its controllers",
        Duration::from_secs(15),
        || async {
            leader
                .logs()
                .contains("the lease could not be renewed; controllers stopped")
                .then_some(())
        },
    )
    .await;
    eprintln!(
        "measured: controllers stopped {:?} after the hub slowed down",
        slowed.elapsed()
    );
    let addr = leader.http_addr().await;
    let (status, body) = readiness(addr).await;
    assert_eq!(status, 503, "{body}");
    assert_ne!(body["role"], "leader");

    // A spec change is not acted on while the replica does not lead, though the region is fine.
    apply(
        &hub_api::<K8ssandraCluster>(&hub),
        "demo",
        k8ssandra_cluster("demo", &[("dc1", "sim-1", 2)]),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(datacenter_size(&sim, 1, "dc1").await, Some(1));

    // The hub answers again: the replica takes the Lease back and catches up.
    sim.set_latency(0, Duration::ZERO).expect("latency");
    wait_for_role(&leader, "leader", Duration::from_secs(20)).await;
    wait_for("dc1 scaled", Duration::from_secs(30), || async {
        datacenter_size(&sim, 1, "dc1").await.filter(|s| *s == 2)
    })
    .await;
}

#[test]
fn a_controller_that_panics_fails_healthz_gives_up_the_lease_and_ends_the_process() {
    run(controller_panic());
}

async fn controller_panic() {
    let sim = start_sim(2).cass_operator().register([1]).await;
    let hub = sim.client(0).await.expect("hub client");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = write_kubeconfig(&sim, dir.path());
    // The first replica's K8ssandraCluster reconciles panic; the second's do not.
    let mut failing = OperatorProcess::start_with_env(
        &kubeconfig,
        &[],
        &[
            ("POD_NAME", "replica-a"),
            ("FEDERATOR_FAULT_PANIC_ON_RECONCILE", "k8ssandracluster"),
            ("FEDERATOR_EXIT_AFTER_CONTROLLER_FAILURE_SECONDS", "4"),
        ],
    );
    wait_for_role(&failing, "leader", Duration::from_secs(30)).await;
    let second = OperatorProcess::start(&kubeconfig, &[]);
    wait_for_role(&second, "follower", Duration::from_secs(30)).await;
    let addr = failing.http_addr().await;
    assert_eq!(http_get(addr, "/healthz").await.0, 200);

    apply(
        &hub_api::<K8ssandraCluster>(&hub),
        "demo",
        k8ssandra_cluster("demo", &[("dc1", "sim-1", 1)]),
    )
    .await;
    let failed_at = wait_for(
        "/healthz to fail on the replica whose controller panicked",
        Duration::from_secs(30),
        || async {
            let (status, body) = http_get(addr, "/healthz").await;
            (status == 503).then_some((Instant::now(), body))
        },
    )
    .await;
    assert!(failed_at.1.contains("k8ssandracluster"), "{}", failed_at.1);
    let (status, readiness) = readiness(addr).await;
    assert_eq!(status, 503);
    assert_eq!(readiness["role"], "failed");
    let (_, metrics) = http_get(addr, "/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "federator_controller_exits_total",
            &["controller=\"k8ssandracluster\"", "cause=\"panicked\""]
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "federator_leader", &[]), 0.0);

    // The Lease is given up at once, not left to expire; the other replica leads and creates
    // the datacenter the failed one could not.
    let leases: Api<Lease> = Api::namespaced(hub.clone(), NS);
    wait_for(
        "the Lease to be given up",
        Duration::from_secs(2),
        || async {
            let lease = leases.get_opt("federator-leader").await.ok()??;
            let holder = lease.spec?.holder_identity.unwrap_or_default();
            (holder != "replica-a").then_some(())
        },
    )
    .await;
    let took = wait_for_role(&second, "leader", Duration::from_secs(15)).await;
    eprintln!("measured: the other replica led {took:?} after /healthz failed");
    wait_for(
        "dc1 created by the other replica",
        Duration::from_secs(30),
        || async { datacenter_size(&sim, 1, "dc1").await.filter(|s| *s == 1) },
    )
    .await;
    assert!(
        failing.logs().contains("controllers stopped and the lease released"),
        "{}",
        failing.logs()
    );

    // After its grace (4 s here), the failed replica ends with a failure status.
    let status = wait_for_exit(
        &mut failing,
        "the failed replica to exit",
        Duration::from_secs(15),
    )
    .await;
    assert!(!status.success(), "{status:?}");
    assert!(
        failed_at.0.elapsed() >= Duration::from_secs(3),
        "it served /healthz and /metrics for its grace first"
    );
}

#[test]
fn a_leader_that_loses_its_lease_mid_rollout_writes_nothing_more() {
    run(lease_lost_mid_rollout());
}

/// Writes `replica` made to cluster `index` so far.
fn writes_to(sim: &Sim, index: usize, replica: &OperatorProcess) -> u64 {
    sim.requests(index)
        .expect("request counts")
        .iter()
        .filter(|count| replica.owns_user_agent(&count.user_agent) && count.is_write())
        .map(|count| count.count)
        .sum()
}

async fn lease_lost_mid_rollout() {
    const DATACENTERS: usize = 12;
    let sim =
        start_sim(2).cass_operator().dc_ready_after(Duration::from_millis(300)).register([1]).await;
    let hub = sim.client(0).await.expect("hub client");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = write_kubeconfig(&sim, dir.path());
    // One request in flight per region, each waiting up to 10 s for its turn: a rollout to a
    // slow region is a queue of writes. Probes every 3 s, so that their timeout (the interval)
    // is above the 1 s the region is made to take: slow, not unreachable (an unreachable region
    // gets no writes, and the rollout would stop for that reason instead).
    let env = |pod| {
        [
            ("POD_NAME", pod),
            ("FEDERATOR_REGIONS__MAX_CONCURRENT_REQUESTS", "1"),
            ("FEDERATOR_REGIONS__REQUEST_TIMEOUT_SECONDS", "10"),
            ("FEDERATOR_REGIONS__PROBE_INTERVAL_SECONDS", "3"),
        ]
    };
    let first = OperatorProcess::start_with_env(&kubeconfig, &[], &env("replica-a"));
    wait_for_role(&first, "leader", Duration::from_secs(30)).await;
    let second = OperatorProcess::start_with_env(&kubeconfig, &[], &env("replica-b"));
    wait_for_role(&second, "follower", Duration::from_secs(30)).await;

    let names: Vec<String> = (1..=DATACENTERS).map(|i| format!("dc{i}")).collect();
    let cluster = |size| {
        let datacenters: Vec<(&str, &str, i32)> =
            names.iter().map(|dc| (dc.as_str(), "sim-1", size)).collect();
        k8ssandra_cluster("demo", &datacenters)
    };
    // One list per look: the region's latency delays the test's requests too.
    let sizes = || async {
        let api: Api<CassandraDatacenter> =
            Api::namespaced(sim.client(1).await.expect("region client"), NS);
        let listed = api.list(&Default::default()).await.ok();
        names
            .iter()
            .map(|name| {
                listed.as_ref().and_then(|list| {
                    list.items
                        .iter()
                        .find(|dc| dc.metadata.name.as_deref() == Some(name.as_str()))
                        .map(|dc| dc.spec.size)
                })
            })
            .collect::<Vec<_>>()
    };
    apply(&hub_api::<K8ssandraCluster>(&hub), "demo", cluster(1)).await;
    // One after the other, each once the one before is rebuilt.
    wait_for(
        "every datacenter created",
        Duration::from_secs(120),
        || async { sizes().await.iter().all(|s| *s == Some(1)).then_some(()) },
    )
    .await;
    // Settled: every datacenter Ready and, having joined a running cluster, rebuilt.
    wait_for("the cluster settled", Duration::from_secs(90), || async {
        let k8c = hub_api::<K8ssandraCluster>(&hub).get("demo").await.ok()?;
        let status = k8c.status?;
        let ready = condition(&status, "Ready").is_some_and(|(state, _, _)| state == "True");
        let rebuilt =
            condition(&status, "DatacenterRebuild").is_some_and(|(state, _, _)| state == "True");
        (ready && rebuilt).then_some(())
    })
    .await;

    // The rollout: every datacenter grows, one write a second reaches the region.
    sim.set_latency(1, Duration::from_secs(1)).expect("latency");
    apply(&hub_api::<K8ssandraCluster>(&hub), "demo", cluster(2)).await;
    let rollout = Instant::now();
    wait_for("the rollout to begin", Duration::from_secs(60), || async {
        sizes().await.contains(&Some(2)).then_some(())
    })
    .await;
    eprintln!(
        "measured: first datacenter grown {:?} after the change",
        rollout.elapsed()
    );

    // Another replica takes the Lease over, as one would after this leader's renewals failed.
    let leases: Api<Lease> = Api::namespaced(hub.clone(), NS);
    let now = k8s_openapi::jiff::Timestamp::now();
    let taken = serde_json::json!({"spec": {
        "holderIdentity": "replica-b",
        "acquireTime": now.to_string(),
        "renewTime": now.to_string(),
        "leaseDurationSeconds": 10,
    }});
    tokio::time::timeout(
        CALL_TIMEOUT,
        leases.patch(
            "federator-leader",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&taken),
        ),
    )
    .await
    .expect("Lease patched in time")
    .expect("Lease patched");
    wait_for(
        "the old leader to stop",
        Duration::from_secs(15),
        || async { first.logs().contains("lost the lease; controllers stopped").then_some(()) },
    )
    .await;
    eprintln!(
        "measured: old leader stopped {:?} after the change",
        rollout.elapsed()
    );
    let left = sizes().await.iter().filter(|s| **s == Some(1)).count();
    assert!(left > 0, "the rollout was over before the Lease was lost");
    eprintln!("measured: {left} of {DATACENTERS} datacenters left to grow when it stopped");

    // A write already on the wire when it stopped arrives within the region's latency; none
    // may follow.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = writes_to(&sim, 1, &first);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        writes_to(&sim, 1, &first),
        settled,
        "the old leader kept writing to the region after it lost its Lease ({left} datacenters were left)"
    );

    // The new leader finishes the rollout.
    sim.set_latency(1, Duration::ZERO).expect("latency");
    wait_for(
        "the rollout finished by the new leader",
        Duration::from_secs(60),
        || async { sizes().await.iter().all(|s| *s == Some(2)).then_some(()) },
    )
    .await;
    assert!(writes_to(&sim, 1, &second) > 0, "the new leader wrote");
}

#[test]
fn without_cass_operator_in_the_hub_the_operator_gets_ready_and_stops_promptly() {
    run(hub_without_cass_operator());
}

/// A hub that runs no datacenter need not have cass-operator's CRD: the Stargate and Reaper
/// controllers' watch of CassandraDatacenters fails there, which must neither keep their caches
/// from syncing nor their controllers from stopping.
async fn hub_without_cass_operator() {
    let sim = start_sim(1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = write_kubeconfig(&sim, dir.path());
    let mut replica = OperatorProcess::start(&kubeconfig, &["--no-leader-election"]);
    let took = wait_for_role(&replica, "leader", Duration::from_secs(20)).await;
    eprintln!("measured: ready {took:?} after start");

    let status = std::process::Command::new("kill")
        .args(["-TERM", &replica.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let (exit, took) = timed(wait_for_exit(
        &mut replica,
        "the exit after SIGTERM",
        Duration::from_secs(5),
    ))
    .await;
    eprintln!("measured: exited {took:?} after SIGTERM");
    assert!(exit.success(), "{exit:?}\n{}", replica.logs());
    assert!(
        !replica.logs().contains("controllers did not stop in time"),
        "{}",
        replica.logs()
    );
}
