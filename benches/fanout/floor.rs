//! The floor: the least any control plane must do for the changes the benchmark times, done by
//! a bare client in the benchmark process. One client per region, its connection opened before
//! any clock starts; the writes of one change go out at once, one task per region; the same
//! watches as Federator's writes time their arrival. What Federator adds is its time over the
//! floor's.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use federator::clusters::transport::Transport;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube_sim::Sim;
use serde_json::{Value, json};
use tower::layer::util::Identity;

use crate::{NS, Sightings, dynamic};

const FLOOR_MANAGER: &str = "fanout-floor";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Per region (index 1..=N): its CassandraDatacenter and Secret APIs in the bench namespace.
pub struct Floor {
    regions: Vec<(usize, Api<DynamicObject>, Api<DynamicObject>)>,
}

impl Floor {
    /// One client per region (Federator's HTTP stack: one HTTP/2 connection per region), each
    /// with one request made so that its connection is open.
    pub async fn connect(sim: &Sim, count: usize) -> anyhow::Result<Floor> {
        let mut regions = Vec::with_capacity(count);
        for index in 1..=count {
            let config = sim.client_config(index).await?;
            let client = Transport::new(&config, CONNECT_TIMEOUT)?.client(Identity::new());
            let datacenters = dynamic(
                &client,
                "cassandra.datastax.com/v1beta1",
                "CassandraDatacenter",
                "cassandradatacenters",
                Some(NS),
            );
            let secrets = dynamic(&client, "v1", "Secret", "secrets", Some(NS));
            datacenters
                .list(&ListParams::default().limit(1))
                .await
                .with_context(|| format!("floor: first request to cluster {index}"))?;
            regions.push((index, datacenters, secrets));
        }
        Ok(Floor { regions })
    }

    fn region(
        &self,
        index: usize,
    ) -> anyhow::Result<&(usize, Api<DynamicObject>, Api<DynamicObject>)> {
        self.regions
            .iter()
            .find(|(i, _, _)| *i == index)
            .ok_or_else(|| anyhow!("floor: no client for cluster {index}"))
    }

    /// Server-side applies every `(region, kind, name, body)` at once, a task per write.
    pub async fn apply_all(&self, writes: Vec<(usize, Kind, String, Value)>) -> anyhow::Result<()> {
        let mut tasks = Vec::with_capacity(writes.len());
        for (index, kind, name, body) in writes {
            let (_, datacenters, secrets) = self.region(index)?;
            let api = match kind {
                Kind::Datacenter => datacenters.clone(),
                Kind::Secret => secrets.clone(),
            };
            tasks.push(tokio::spawn(async move {
                api.patch(
                    &name,
                    &PatchParams::apply(FLOOR_MANAGER).force(),
                    &Patch::Apply(&body),
                )
                .await
                .with_context(|| format!("floor: apply {name} in cluster {index}"))
            }));
        }
        for task in tasks {
            task.await??;
        }
        Ok(())
    }

    /// Deletes what the floor made and waits until no datacenter of it is left (cass-operator
    /// holds a deleted datacenter until its pods are gone), so it loads no later phase.
    pub async fn remove(&self, prefix: &str, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        for (_, datacenters, secrets) in &self.regions {
            for api in [datacenters, secrets] {
                for object in api.list(&ListParams::default()).await?.items {
                    let Some(name) = object.metadata.name else {
                        continue;
                    };
                    if name.starts_with(prefix) {
                        api.delete(&name, &Default::default()).await?;
                    }
                }
            }
        }
        for (index, datacenters, _) in &self.regions {
            loop {
                let left = datacenters
                    .list(&ListParams::default())
                    .await?
                    .items
                    .iter()
                    .filter(|dc| dc.metadata.name.as_deref().is_some_and(|n| n.starts_with(prefix)))
                    .count();
                if left == 0 {
                    break;
                }
                if Instant::now() > deadline {
                    anyhow::bail!(
                        "floor: {left} datacenters left in cluster {index} after {limit:?}"
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Datacenter,
    Secret,
}

/// A CassandraDatacenter body for the floor from one Federator applied: its spec, under another
/// name and as a Cassandra cluster of its own (no seeds of Federator's clusters), without
/// Federator's labels and annotations so that Federator never takes it for one of its own.
pub fn datacenter_body(
    federators: &Value,
    name: &str,
    cassandra_cluster: &str,
    superuser_secret: &str,
    labels: Value,
) -> Value {
    let mut spec = federators["spec"].clone();
    if let Some(spec) = spec.as_object_mut() {
        spec.insert("clusterName".into(), json!(cassandra_cluster));
        spec.insert("superuserSecretName".into(), json!(superuser_secret));
        spec.remove("additionalSeeds");
    }
    json!({
        "apiVersion": "cassandra.datastax.com/v1beta1",
        "kind": "CassandraDatacenter",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": spec,
    })
}

/// A Secret body for the floor from one Federator applied: its data under another name.
pub fn secret_body(federators: &Value, name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "type": federators["type"].clone(),
        "data": federators["data"].clone(),
    })
}

/// Waits until every `(region, name)` is seen as `done` holds, and gives the latest of those
/// instants' distance from `started`.
pub async fn slowest_arrival(
    sightings: &Sightings,
    objects: &[(usize, String)],
    started: Instant,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Duration> {
    let mut slowest = Duration::ZERO;
    for (region, name) in objects {
        let at = sightings.wait(*region, name, limit, &done).await?;
        slowest = slowest.max(at.saturating_duration_since(started));
    }
    Ok(slowest)
}
