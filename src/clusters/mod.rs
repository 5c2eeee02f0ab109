//! The cluster registry: which regions the control plane can reach, and how.
//!
//! A region is named by its context (`k8sContext` in a K8ssandraCluster; "" is the hub). The
//! [`Registry`] maps each context to a [`Region`]: a `kube::Client` bounded by the per-region
//! request timeout and concurrency limit, plus the health its prober last saw. The
//! [`controller`] keeps the registry in step with the ClientConfigs of the operator namespace
//! and their kubeconfig Secrets (no restart, ever) and writes each ClientConfig's status.
//!
//! For controllers that talk to regions:
//! - `registry.region(ctx)` / `registry.client(ctx)` hand out a client, or a [`RegionError`] at
//!   once (unknown context, region unavailable, ClientConfig misconfigured);
//! - a ClientConfig whose context reaches the hub itself (same cluster ID, see [`identity`])
//!   is the hub: `region`/`client` give the hub, `registry.canonical(ctx)` gives "", which is
//!   what everything keyed by region must use;
//! - `registry.changes()` tells which contexts changed (client added, replaced or removed,
//!   reachability), to re-queue the objects that use them, e.g. with
//!   `Controller::reconcile_on(registry.changes().flat_map(|c| objects_using(c)))`.

pub mod change;
pub mod controller;
pub mod create;
pub mod failure;
pub mod identity;
pub mod kubeconfig;
pub mod probe;
pub mod region;
pub mod registry;
pub mod status;
pub mod transport;

pub use change::{ChangeKind, RegionChange};
pub use failure::{FailureCategory, RegionFailure};
pub use kubeconfig::{KubeconfigPolicy, Refusal, RefusalReason, RegionKubeconfig};
pub use region::{FailureKind, HealthReport, ProbeFailure, Region, RegionError, is_timeout};
pub use registry::{RegionSummary, Registry};
