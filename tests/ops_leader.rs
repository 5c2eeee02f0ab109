//! Two `federator run` replicas against kube-sim: one leads, the other follows without writing
//! anything but the Lease (kube-sim counts every request by User-Agent); the leader killed with
//! SIGKILL is replaced within 15 s, and the new leader reconciles.

mod ops_support;

use std::time::{Duration, Instant};

use federator::api::cassdc::CassandraDatacenter;
use federator::api::k8ssandra_cluster::K8ssandraCluster;
use kube::Api;
use kube_sim::Sim;
use ops_support::*;

const LEASES: &str = "leases.coordination.k8s.io";

#[test]
fn a_killed_leader_is_replaced_within_15_s_and_the_follower_never_writes() {
    federator::operator::runtime()
        .expect("tokio runtime")
        .block_on(failover());
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

async fn wait_for_role(replica: &OperatorProcess, role: &str, limit: Duration) -> Duration {
    let addr = replica.http_addr().await;
    let started = Instant::now();
    loop {
        let (status, body) = readiness(addr).await;
        if status == 200 && body["role"] == role {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "not a ready {role} after {limit:?}: {status} {body}\n{}",
            replica.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn datacenter_size(sim: &Sim, index: usize, name: &str) -> Option<i32> {
    let api: Api<CassandraDatacenter> = Api::namespaced(sim.client(index).await.ok()?, NS);
    let dc = api.get_opt(name).await.ok()??;
    Some(dc.spec.size)
}

async fn failover() {
    let sim = start_sim(2).await;
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
    federator::operator::runtime()
        .expect("tokio runtime")
        .block_on(renewal_failure());
}

async fn renewal_failure() {
    let sim = start_sim(2).await;
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
