//! How far the Deployments of a component are, read from their status as
//! kube-controller-manager reports it.

use k8s_openapi::api::apps::v1::Deployment;

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
    /// Sums `deployments` (the live ones matching the desired names).
    pub fn of(deployments: &[&Deployment]) -> Rollout {
        let mut rollout = Rollout {
            observed_current: true,
            ..Rollout::default()
        };
        for deployment in deployments {
            let desired = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            rollout.desired += desired;
            let status = deployment.status.clone().unwrap_or_default();
            rollout.replicas += status.replicas.unwrap_or(0);
            rollout.ready += status.ready_replicas.unwrap_or(0);
            rollout.updated += status.updated_replicas.unwrap_or(0);
            rollout.available += status.available_replicas.unwrap_or(0);
            let current = match (status.observed_generation, deployment.metadata.generation) {
                (Some(observed), Some(generation)) => observed >= generation,
                (None, _) => false,
                (Some(_), None) => true,
            };
            rollout.observed_current &= current;
        }
        rollout
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
        assert!(!Rollout::of(&[]).is_complete());
        let sum = Rollout::of(&[&ready, &partly]);
        assert_eq!((sum.desired, sum.ready), (4, 3));
    }
}
