//! How far the Deployments (or StatefulSets) of a component are, read from their status as
//! kube-controller-manager reports it.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::ObjectMeta;

/// A workload whose replicas are counted: its spec's replicas and its status's counts.
pub trait Replicated {
    fn metadata(&self) -> &ObjectMeta;
    fn desired(&self) -> i32;
    /// observedGeneration, replicas, ready, updated, available.
    fn counts(&self) -> (Option<i64>, [i32; 4]);
}

impl Replicated for Deployment {
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn desired(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn counts(&self) -> (Option<i64>, [i32; 4]) {
        let status = self.status.clone().unwrap_or_default();
        let count = |c: Option<i32>| c.unwrap_or(0);
        (
            status.observed_generation,
            [
                count(status.replicas),
                count(status.ready_replicas),
                count(status.updated_replicas),
                count(status.available_replicas),
            ],
        )
    }
}

impl Replicated for StatefulSet {
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn desired(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn counts(&self) -> (Option<i64>, [i32; 4]) {
        let status = self.status.clone().unwrap_or_default();
        let count = |c: Option<i32>| c.unwrap_or(0);
        (
            status.observed_generation,
            [
                status.replicas,
                count(status.ready_replicas),
                count(status.updated_replicas),
                count(status.available_replicas),
            ],
        )
    }
}

/// Replica counts summed over a component's Deployments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rollout {
    /// Replicas asked for (spec).
    pub desired: i32,
    pub replicas: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: i32,
    /// Every Deployment's status describes its current spec.
    pub observed_current: bool,
}

impl Rollout {
    /// Sums `workloads` (the live ones matching the desired names).
    pub fn of<W: Replicated>(workloads: &[&W]) -> Rollout {
        let mut rollout = Rollout {
            observed_current: true,
            ..Rollout::default()
        };
        for workload in workloads {
            rollout.desired += workload.desired();
            let (observed, [replicas, ready, updated, available]) = workload.counts();
            rollout.replicas += replicas;
            rollout.ready += ready;
            rollout.updated += updated;
            rollout.available += available;
            let current = match (observed, workload.metadata().generation) {
                (Some(observed), Some(generation)) => observed >= generation,
                (None, _) => false,
                (Some(_), None) => true,
            };
            rollout.observed_current &= current;
        }
        rollout
    }

    /// Both sums: a component's Deployments and StatefulSets.
    pub fn and(self, other: Rollout) -> Rollout {
        Rollout {
            desired: self.desired + other.desired,
            replicas: self.replicas + other.replicas,
            ready: self.ready + other.ready,
            updated: self.updated + other.updated,
            available: self.available + other.available,
            observed_current: self.observed_current && other.observed_current,
        }
    }

    /// Every desired replica is updated, ready and available, as of the current spec.
    pub fn is_complete(&self) -> bool {
        self.observed_current
            && self.desired > 0
            && self.ready == self.desired
            && self.updated == self.desired
            && self.available == self.desired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};

    fn deployment(replicas: i32, generation: i64, status: Option<(i64, i32)>) -> Deployment {
        Deployment {
            metadata: kube::api::ObjectMeta {
                generation: Some(generation),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: status.map(|(observed, ready)| DeploymentStatus {
                observed_generation: Some(observed),
                replicas: Some(replicas),
                ready_replicas: Some(ready),
                updated_replicas: Some(ready),
                available_replicas: Some(ready),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn complete_only_when_every_deployment_is_ready_for_its_current_spec() {
        let ready = deployment(2, 1, Some((1, 2)));
        let partly = deployment(2, 1, Some((1, 1)));
        let stale = deployment(2, 2, Some((1, 2)));
        let new = deployment(1, 1, None);
        assert!(Rollout::of(&[&ready]).is_complete());
        assert!(!Rollout::of(&[&ready, &partly]).is_complete());
        assert!(!Rollout::of(&[&stale]).is_complete());
        assert!(!Rollout::of(&[&ready, &new]).is_complete());
        assert!(!Rollout::of::<Deployment>(&[]).is_complete());
        let sum = Rollout::of(&[&ready, &partly]);
        assert_eq!((sum.desired, sum.ready), (4, 3));
    }
}
