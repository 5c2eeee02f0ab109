//! Fault injection end to end: the real `federator` binary against three kube-sim clusters
//! (hub + two regions) with the cass-operator stand-in. Each scenario injects one kind of
//! fault and checks what a user would see: the cluster converges, every region holds exactly
//! the objects it should (listed by the ownership labels across every served resource), and the
//! operator neither exits nor panics. Figures are printed as `measured:` lines.

mod support;

use std::future::Future;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use federator::api::cassdc::CassandraDatacenter;
use futures::StreamExt;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use support::*;

/// The cass-operator stand-in makes a datacenter Ready this long after a change.
const READY_AFTER: Duration = Duration::from_millis(300);
/// Bound on a full 3-region rollout or a change reaching every region.
const CONVERGE: Duration = Duration::from_secs(40);

/// Held shared by every scenario, and alone by those that compare latencies: a scenario
/// running beside them (the SIGKILL runs start an operator every few seconds) would load the
/// cores in one half of the comparison and not the other.
static CORES: RwLock<()> = RwLock::new(());

/// Runs a scenario beside the others. The tests' own calls decode K8ssandraClusters: the
/// operator's runtime has the stack for it.
fn block_on(test: impl Future<Output = ()>) {
    let _shared = CORES.read().unwrap_or_else(PoisonError::into_inner);
    run(test);
}

/// Runs a scenario that measures latencies with no other scenario running.
fn block_on_alone(test: impl Future<Output = ()>) {
    let _alone = CORES.write().unwrap_or_else(PoisonError::into_inner);
    run(test);
}

/// Applies the 3-region cluster at `size` and waits until every datacenter is Ready with it and
/// every cluster holds exactly the expected objects.
async fn converge(world: &World, size: i32) -> Duration {
    let start = Instant::now();
    world.apply_cluster(CLUSTER, size).await;
    world.wait_converged(size).await;
    start.elapsed()
}

/// Waits until the datacenter `name` in cluster `index` has `size`.
async fn wait_size(
    world: &World,
    index: usize,
    name: &str,
    size: i32,
    limit: Duration,
) -> Duration {
    timed(wait_for(
        &format!("{name} at size {size}"),
        limit,
        || async {
            let dc = datacenter_in(&world.sim, index, name).await?;
            if dc.spec.size == size {
                Ok(())
            } else {
                Err(format!("size {}", dc.spec.size))
            }
        },
    ))
    .await
    .1
}

#[test]
fn a_region_stopped_during_rollout_update_and_deletion_converges_and_leaves_nothing_behind() {
    block_on(region_stopped());
}

async fn region_stopped() {
    let world = World::start(READY_AFTER).await;
    let sim = &world.sim;

    // Rollout: region 2 (dc3, last in bootstrap order) goes down once dc1 exists.
    let rollout = Instant::now();
    world.apply_cluster(CLUSTER, 1).await;
    wait_for("dc1 created", CONVERGE, || async {
        datacenter_in(sim, 0, "dc1").await.map(|_| ())
    })
    .await;
    sim.stop(2).expect("stop region 2");
    let message = wait_condition(
        sim,
        CLUSTER,
        "RegionUnreachable",
        "True",
        "RegionUnreachable",
        Duration::from_secs(20),
    )
    .await;
    assert!(message.contains("sim-2"), "{message}");
    wait_for("dc2 Ready while region 2 is down", CONVERGE, || async {
        let dc = datacenter_in(sim, 1, "dc2").await?;
        dc.is_ready().then_some(()).ok_or("not Ready".to_string())
    })
    .await;
    sim.start(2).await.expect("start region 2");
    world.wait_converged(1).await;
    eprintln!(
        "measured: rollout with region 2 down for part of it converged in {:?}",
        rollout.elapsed()
    );

    // Update: region 1 is down while every size changes; the others take it meanwhile.
    sim.stop(1).expect("stop region 1");
    world.apply_cluster(CLUSTER, 2).await;
    wait_size(&world, 0, "dc1", 2, Duration::from_secs(15)).await;
    wait_size(&world, 2, "dc3", 2, Duration::from_secs(15)).await;
    sim.start(1).await.expect("start region 1");
    let (_, recovered) = timed(wait_for("every datacenter at size 2", CONVERGE, || {
        datacenters_ready(sim, 2)
    }))
    .await;
    world.wait_converged(2).await;
    eprintln!("measured: region 1 caught up with the update {recovered:?} after it came back");

    // Deletion: region 2 is down; the hub's and region 1's parts go, the K8ssandraCluster stays
    // (finalizer, status naming the region) until region 2 is back, then nothing is left.
    sim.stop(2).expect("stop region 2");
    delete_cluster(sim, CLUSTER).await;
    wait_for("dc1 and dc2 deleted", Duration::from_secs(20), || async {
        for (name, index) in [("dc1", 0), ("dc2", 1)] {
            if datacenter_in(sim, index, name).await.is_ok() {
                return Err(format!("{name} still there"));
            }
        }
        Ok(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = find_cluster(sim, CLUSTER)
        .await
        .expect("get K8ssandraCluster")
        .expect("the K8ssandraCluster stays while region 2 holds dc3");
    let error = held.status.and_then(|s| s.error).unwrap_or_default();
    assert!(
        error.contains("sim-2"),
        "status.error names the region: {error}"
    );
    sim.start(2).await.expect("start region 2");
    let gone_after = wait_cluster_gone(sim, CLUSTER, CONVERGE).await;
    wait_owned(sim, CLUSTER, &Default::default(), Duration::from_secs(10)).await;
    eprintln!("measured: deletion finished {gone_after:?} after region 2 came back");
    world.finish().await;
}

/// Applies `size` and returns how long each cluster's datacenter took to show it, for the
/// clusters in `measured`; then waits until those datacenters are Ready. The time is taken
/// when the datacenter's watch event arrives: polling would round it up to the poll interval,
/// which is as long as the latencies compared.
async fn timed_change(world: &World, size: i32, measured: &[usize]) -> Vec<Duration> {
    let mut watches = Vec::new();
    for &index in measured {
        let name = DATACENTERS[index].0;
        let api = Api::<CassandraDatacenter>::namespaced(client(&world.sim, index).await, NS);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut versions = watcher(api, config).applied_objects().boxed();
        // The list the watch starts from: any later change reaches this stream.
        let _ = bounded(&format!("{name}'s watch"), versions.next()).await;
        watches.push((name, versions));
    }
    let start = Instant::now();
    world.apply_cluster(CLUSTER, size).await;
    let waits = watches.into_iter().map(|(name, mut versions)| async move {
        let shown = async {
            while let Some(version) = versions.next().await {
                if matches!(version, Ok(dc) if dc.spec.size == size) {
                    return start.elapsed();
                }
            }
            panic!("{name}'s watch ended");
        };
        tokio::time::timeout(Duration::from_secs(20), shown)
            .await
            .unwrap_or_else(|_| panic!("{name} not at size {size} after 20 s"))
    });
    let latencies = futures::future::join_all(waits).await;
    for &index in measured {
        let name = DATACENTERS[index].0;
        wait_for(&format!("{name} Ready"), CONVERGE, || async {
            let dc = datacenter_in(&world.sim, index, name).await?;
            (dc.spec.size == size && dc.is_ready()).then_some(()).ok_or("not Ready".to_string())
        })
        .await;
    }
    latencies
}

/// What the disturbed region suffers during the measured changes.
#[derive(Clone, Copy, Debug)]
enum Disturbance {
    /// 30 requests answered 500 or 429 (alternately) before each change.
    ErrorStorms,
    /// Every response 500 ms late (under the 2 s request timeout: the region still answers).
    Latency,
}

#[test]
fn error_storms_in_one_region_leave_the_others_update_latency_within_twice_undisturbed() {
    block_on_alone(one_region_disturbed(Disturbance::ErrorStorms));
}

#[test]
fn added_latency_in_one_region_leaves_the_others_update_latency_within_twice_undisturbed() {
    block_on_alone(one_region_disturbed(Disturbance::Latency));
}

/// Medians over a few changes of how long the hub's and region 1's datacenters take to show a
/// change, undisturbed and then with region 2 disturbed, in the same test.
async fn one_region_disturbed(disturbance: Disturbance) {
    const CHANGES: i32 = 9;
    let world = World::start(READY_AFTER).await;
    let sim = &world.sim;
    converge(&world, 1).await;
    let measured = [0, 1];

    let mut undisturbed: Vec<Vec<Duration>> = vec![Vec::new(); 2];
    for change in 0..CHANGES {
        let latencies = timed_change(&world, 2 + change, &[0, 1, 2]).await;
        for (i, latency) in latencies.iter().take(2).enumerate() {
            undisturbed[i].push(*latency);
        }
    }
    if let Disturbance::Latency = disturbance {
        sim.set_latency(2, Duration::from_millis(500)).expect("latency");
    }
    let mut disturbed: Vec<Vec<Duration>> = vec![Vec::new(); 2];
    for change in 0..CHANGES {
        if let Disturbance::ErrorStorms = disturbance {
            let code = if change % 2 == 0 { 500 } else { 429 };
            sim.fail_next(2, 30, code).expect("fail_next");
        }
        let latencies = timed_change(&world, 2 + CHANGES + change, &measured).await;
        for (i, latency) in latencies.iter().enumerate() {
            disturbed[i].push(*latency);
        }
    }
    for index in measured {
        let before = median(undisturbed[index].clone());
        let during = median(disturbed[index].clone());
        eprintln!(
            "measured: cluster {index} update latency median {before:?} undisturbed, {during:?} with region 2 disturbed by {disturbance:?} (samples {:?} / {:?})",
            undisturbed[index], disturbed[index]
        );
        assert!(
            during <= before * 2,
            "cluster {index}: {during:?} with region 2 disturbed by {disturbance:?} is more than twice {before:?}"
        );
    }
    // Faults removed: region 2 catches up.
    sim.set_latency(2, Duration::ZERO).expect("latency");
    world.wait_converged(1 + 2 * CHANGES).await;
    world.finish().await;
}

#[test]
fn a_change_made_while_every_watch_is_dropped_is_still_applied() {
    block_on(watches_dropped());
}

async fn watches_dropped() {
    let world = World::start(READY_AFTER).await;
    let sim = world.sim.clone();
    converge(&world, 1).await;

    // Every watch of every cluster ends, again and again, while the spec changes.
    let dropping = tokio::spawn({
        let sim = sim.clone();
        async move {
            for _ in 0..15 {
                for index in 0..3 {
                    let _ = sim.drop_watches(index);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    let start = Instant::now();
    world.apply_cluster(CLUSTER, 2).await;
    // Well under the 5 min steady re-look: the change came through a re-established watch.
    wait_for(
        "every datacenter at size 2",
        Duration::from_secs(15),
        || datacenters_ready(&sim, 2),
    )
    .await;
    eprintln!(
        "measured: change applied everywhere {:?} after it was made, watches dropped every 200 ms",
        start.elapsed()
    );
    let _ = dropping.await;

    // A hand edit in a region while its watches are down is reverted.
    for index in 0..3 {
        sim.drop_watches(index).expect("drop watches");
    }
    let region1 = Api::<CassandraDatacenter>::namespaced(client(&sim, 1).await, NS);
    bounded(
        "hand edit",
        region1.patch(
            "dc2",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"size": 7}})),
        ),
    )
    .await
    .expect("hand edit of dc2");
    let reverted = wait_size(&world, 1, "dc2", 2, Duration::from_secs(15)).await;
    eprintln!("measured: hand edit made while watches were dropped reverted in {reverted:?}");
    world.wait_converged(2).await;
    world.finish().await;
}

#[test]
fn a_rotated_token_and_a_recreated_client_config_are_recovered_without_losing_anything() {
    block_on(token_rotation_and_client_config_recreated());
}

async fn token_rotation_and_client_config_recreated() {
    let world = World::start(READY_AFTER).await;
    let sim = &world.sim;
    converge(&world, 1).await;

    // Region 1's token rotates: its ClientConfig credentials are rejected from now on.
    sim.rotate_token(1).expect("rotate token");
    world.apply_cluster(CLUSTER, 2).await;
    wait_size(&world, 0, "dc1", 2, Duration::from_secs(15)).await;
    wait_size(&world, 2, "dc3", 2, Duration::from_secs(15)).await;
    let message = wait_condition(
        sim,
        CLUSTER,
        "RegionUnreachable",
        "True",
        "RegionUnreachable",
        Duration::from_secs(20),
    )
    .await;
    assert!(message.contains("sim-1"), "{message}");
    assert_eq!(
        datacenter_in(sim, 1, "dc2").await.map(|dc| dc.spec.size),
        Ok(1),
        "dc2 untouched while its region refuses the old token"
    );
    // The kubeconfig Secret gets the new token: the region is used again, in place.
    let updated = Instant::now();
    register_region(sim, &world.hub, 1).await;
    wait_for("every datacenter at size 2", CONVERGE, || {
        datacenters_ready(sim, 2)
    })
    .await;
    eprintln!(
        "measured: region 1 updated {:?} after its kubeconfig Secret got the rotated token",
        updated.elapsed()
    );

    // Region 2's ClientConfig deleted: its datacenter is reported, never deleted.
    let client_configs =
        Api::<federator::api::client_config::ClientConfig>::namespaced(client(sim, 0).await, NS);
    bounded(
        "delete ClientConfig",
        client_configs.delete("sim-2", &Default::default()),
    )
    .await
    .expect("delete ClientConfig sim-2");
    wait_condition(
        sim,
        CLUSTER,
        "Degraded",
        "True",
        "UnknownContext",
        Duration::from_secs(20),
    )
    .await;
    world.apply_cluster(CLUSTER, 3).await;
    wait_size(&world, 0, "dc1", 3, Duration::from_secs(15)).await;
    wait_size(&world, 1, "dc2", 3, Duration::from_secs(15)).await;
    assert_eq!(
        datacenter_in(sim, 2, "dc3").await.map(|dc| dc.spec.size),
        Ok(2),
        "dc3 stays as it was while its ClientConfig is missing"
    );
    // Created again: dc3 catches up.
    let recreated = Instant::now();
    put_client_config(&world.hub, "sim-2", "sim-2", "sim-2-config").await;
    world.wait_converged(3).await;
    eprintln!(
        "measured: dc3 updated {:?} after its ClientConfig was created again",
        recreated.elapsed()
    );
    world.finish().await;
}

#[test]
fn the_hub_api_stopped_and_started_again_loses_no_change() {
    block_on(hub_stopped());
}

async fn hub_stopped() {
    let world = World::start(READY_AFTER).await;
    let sim = &world.sim;
    converge(&world, 1).await;

    // The hub goes away right after a change, for longer than a request timeout.
    world.apply_cluster(CLUSTER, 2).await;
    sim.stop(0).expect("stop hub");
    tokio::time::sleep(Duration::from_secs(4)).await;
    sim.start(0).await.expect("start hub");
    let (_, after) = timed(wait_for("every datacenter at size 2", CONVERGE, || {
        datacenters_ready(sim, 2)
    }))
    .await;
    world.wait_converged(2).await;
    eprintln!(
        "measured: change made just before a 4 s hub outage applied {after:?} after it ended"
    );

    // Its watches are back: a change made now is applied promptly.
    let change = converge(&world, 3).await;
    eprintln!("measured: next change after the hub outage converged in {change:?}");
    world.finish().await;
}

/// A small deterministic generator (splitmix64), so that a failing run can be replayed from
/// its printed seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, bound)`.
    fn below(&mut self, bound: Duration) -> Duration {
        let millis = bound.as_millis().max(1) as u64;
        Duration::from_millis(self.next() % millis)
    }
}

/// What a converged cluster looks like from the outside.
#[derive(Debug, PartialEq)]
struct FinalState {
    /// The owned objects of every cluster.
    owned: Vec<std::collections::BTreeSet<String>>,
    /// Each datacenter's labels, annotations and spec.
    datacenters: Vec<serde_json::Value>,
    /// The K8ssandraCluster's finalizers, condition types/statuses/reasons, datacenters in its
    /// status and error.
    cluster: serde_json::Value,
}

async fn final_state(world: &World) -> Result<FinalState, String> {
    let mut owned = Vec::new();
    for index in 0..3 {
        owned.push(owned_objects(&world.sim, index, CLUSTER).await?);
    }
    let mut datacenters = Vec::new();
    for (name, index) in DATACENTERS {
        let dc = datacenter_in(&world.sim, index, name).await?;
        // When a restart was applied differs from run to run, and so does the hash of what was
        // applied, which includes it.
        let mut annotations = dc.metadata.annotations.unwrap_or_default();
        annotations.remove("federator.k8ssandra.io/restart-applied-at");
        annotations.remove("federator.k8ssandra.io/applied-hash");
        datacenters.push(serde_json::json!({
            "labels": dc.metadata.labels,
            "annotations": annotations,
            "spec": dc.spec,
        }));
    }
    let k8c = find_cluster(&world.sim, CLUSTER).await?.ok_or("the K8ssandraCluster is gone")?;
    let status = k8c.status.unwrap_or_default();
    let mut conditions: Vec<(String, String, String)> = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_, c.status, c.reason))
        .collect();
    conditions.sort();
    let cluster = serde_json::json!({
        "finalizers": k8c.metadata.finalizers,
        "conditions": conditions,
        "datacenters": status.datacenters.map(|d| d.into_keys().collect::<Vec<_>>()),
        "error": status.error,
    });
    Ok(FinalState {
        owned,
        datacenters,
        cluster,
    })
}

#[test]
fn sigkill_at_random_points_of_a_rollout_ends_in_the_undisturbed_state_twenty_times() {
    block_on(sigkill_runs());
}

async fn sigkill_runs() {
    const RUNS: usize = 20;
    let seed = std::env::var("FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    eprintln!("SIGKILL runs: seed {seed} (replay with FAULT_SEED={seed})");
    let mut random = SplitMix(seed);
    let suite = Instant::now();
    let mut world = World::start(READY_AFTER).await;

    // The undisturbed run: its final state is the reference.
    let undisturbed = converge(&world, 1).await;
    let reference = final_state(&world).await.expect("final state");
    assert_eq!(
        reference.owned,
        expected_objects(CLUSTER).to_vec(),
        "the undisturbed run holds exactly the expected objects"
    );
    delete_cluster(&world.sim, CLUSTER).await;
    wait_cluster_gone(&world.sim, CLUSTER, CONVERGE).await;
    wait_owned(
        &world.sim,
        CLUSTER,
        &Default::default(),
        Duration::from_secs(10),
    )
    .await;
    eprintln!("measured: undisturbed 3-region rollout {undisturbed:?}");

    let mut logs = String::new();
    for run in 0..RUNS {
        let started = Instant::now();
        world.apply_cluster(CLUSTER, 1).await;
        // One or two kills at random points of the rollout; a new process each time.
        let kills = 1 + (random.next() % 2) as usize;
        let mut points = Vec::new();
        for _ in 0..kills {
            let wait = random.below(undisturbed);
            tokio::time::sleep(wait).await;
            points.push(started.elapsed());
            logs.push_str(&world.restart_federator());
        }
        wait_for("every datacenter Ready", CONVERGE, || {
            datacenters_ready(&world.sim, 1)
        })
        .await;
        wait_for(
            "the undisturbed final state",
            Duration::from_secs(20),
            || async {
                let state = final_state(&world).await?;
                if state == reference {
                    Ok(())
                } else {
                    Err(format!("{state:?}\nreference {reference:?}"))
                }
            },
        )
        .await;
        // A kill during the deletion must not orphan anything either.
        delete_cluster(&world.sim, CLUSTER).await;
        if random.next().is_multiple_of(2) {
            tokio::time::sleep(random.below(Duration::from_millis(500))).await;
            logs.push_str(&world.restart_federator());
            points.push(started.elapsed());
        }
        wait_cluster_gone(&world.sim, CLUSTER, CONVERGE).await;
        // The K8ssandraCluster can be gone before its ReplicatedSecret's copies are: a kill
        // then leaves them to the next leader, which waits out the killed one's lease.
        wait_owned(
            &world.sim,
            CLUSTER,
            &Default::default(),
            federator::operator::leader::LEASE_DURATION + Duration::from_secs(10),
        )
        .await;
        eprintln!(
            "measured: SIGKILL run {run}: killed at {points:?}, converged and deleted in {:?}",
            started.elapsed()
        );
    }
    assert_no_panic(&logs);
    world.finish().await;
    eprintln!(
        "measured: {RUNS} SIGKILL runs (seed {seed}) in {:?}",
        suite.elapsed()
    );
}
