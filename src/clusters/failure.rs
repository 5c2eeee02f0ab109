//! What went wrong in one region, kept as a value rather than a sentence: its category labels
//! `federator_region_failures_total` and chooses when the controller looks again, and its text
//! is made only where a user reads it (status, Events).

use std::fmt;
use std::time::Duration;

use super::RegionError;

/// Why a region request failed, as far as what to do next differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureCategory {
    /// The prober finds the region down; a region that comes back re-queues its users at once.
    RegionUnavailable,
    /// No usable ClientConfig provides the context; fixing the ClientConfig re-queues its users.
    RegionNotConfigured,
    /// The request did not complete: connection refused or reset, TLS, timeout.
    Unreachable,
    /// 401 or 403: the region's credentials or RBAC refuse it, until an administrator acts.
    Forbidden,
    /// Refused, by the region's API server (400, 404, 422: a schema or CRD version that differs
    /// there) or by Federator's own checks (an invalid spec); a changed spec or CRD is needed.
    Rejected,
    /// 409, 429 or a server error: worth trying again soon.
    Transient,
    /// An object of that name exists there and is not Federator's (or is immutable and
    /// differs): it is left alone. Whoever removes it makes no event Federator watches, so it
    /// is looked at again soon.
    Conflict,
    /// An object the spec names (a Secret, say) does not exist yet; a user creating it may
    /// make no event Federator watches, so it is looked for again soon (one cheap read).
    MissingReference,
    /// Federator could not build the request (a body that does not serialise).
    Internal,
}

impl FailureCategory {
    pub const ALL: [FailureCategory; 9] = [
        FailureCategory::RegionUnavailable,
        FailureCategory::RegionNotConfigured,
        FailureCategory::Unreachable,
        FailureCategory::Forbidden,
        FailureCategory::Rejected,
        FailureCategory::Transient,
        FailureCategory::Conflict,
        FailureCategory::MissingReference,
        FailureCategory::Internal,
    ];

    /// The `category` label of `federator_region_failures_total`.
    pub fn metric_label(self) -> &'static str {
        match self {
            FailureCategory::RegionUnavailable => "region_unavailable",
            FailureCategory::RegionNotConfigured => "region_not_configured",
            FailureCategory::Unreachable => "unreachable",
            FailureCategory::Forbidden => "forbidden",
            FailureCategory::Rejected => "rejected",
            FailureCategory::Transient => "transient",
            FailureCategory::Conflict => "conflict",
            FailureCategory::MissingReference => "missing_reference",
            FailureCategory::Internal => "internal",
        }
    }

    /// How soon to try again when nothing else brings the object back sooner. Failures that
    /// need a person (RBAC, a rejected object) are retried slowly: hammering a region that
    /// refuses helps no one. A region's recovery and ClientConfig changes re-queue by
    /// themselves, so their retry is only a safety net.
    pub fn retry_after(self) -> Duration {
        match self {
            FailureCategory::Transient | FailureCategory::MissingReference => {
                Duration::from_secs(5)
            }
            FailureCategory::Unreachable | FailureCategory::Conflict => Duration::from_secs(10),
            FailureCategory::RegionUnavailable | FailureCategory::Forbidden => {
                Duration::from_secs(30)
            }
            FailureCategory::RegionNotConfigured
            | FailureCategory::Rejected
            | FailureCategory::Internal => Duration::from_secs(60),
        }
    }

    /// The category of a failed request.
    pub fn of_kube(error: &kube::Error) -> FailureCategory {
        match error {
            kube::Error::Api(status) => match status.code {
                401 | 403 => FailureCategory::Forbidden,
                400 | 404 | 405 | 406 | 415 | 422 => FailureCategory::Rejected,
                _ => FailureCategory::Transient,
            },
            kube::Error::SerdeError(_) | kube::Error::BuildRequest(_) => FailureCategory::Internal,
            _ => FailureCategory::Unreachable,
        }
    }

    /// The category of a region without a usable client.
    pub fn of_region(error: &RegionError) -> FailureCategory {
        match error {
            RegionError::Unavailable { .. } => FailureCategory::RegionUnavailable,
            RegionError::UnknownContext { .. } | RegionError::Misconfigured { .. } => {
                FailureCategory::RegionNotConfigured
            }
        }
    }
}

/// The region name of the hub's own cluster (as everywhere a region is keyed).
pub const HUB: &str = "";

/// One failed step in one region ([`HUB`] is the hub).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionFailure {
    pub region: String,
    /// What was being done, e.g. "applying ConfigMap ns/name".
    pub doing: String,
    pub category: FailureCategory,
    /// The error, as its source words it (empty when `doing` says it all).
    pub detail: String,
}

impl RegionFailure {
    pub fn new(
        region: &str,
        doing: impl Into<String>,
        category: FailureCategory,
        detail: impl fmt::Display,
    ) -> RegionFailure {
        RegionFailure {
            region: region.to_string(),
            doing: doing.into(),
            category,
            detail: detail.to_string(),
        }
    }

    /// A request to the region (or the hub) that failed.
    pub fn kube(region: &str, doing: impl Into<String>, error: &kube::Error) -> RegionFailure {
        RegionFailure::new(region, doing, FailureCategory::of_kube(error), error)
    }

    /// A region without a usable client.
    pub fn region(region: &str, doing: impl Into<String>, error: &RegionError) -> RegionFailure {
        RegionFailure::new(region, doing, FailureCategory::of_region(error), error)
    }

    /// How soon to look again for the first of `failures` worth a retry; None without failures.
    pub fn retry_after<'a>(
        failures: impl IntoIterator<Item = &'a RegionFailure>,
    ) -> Option<Duration> {
        failures.into_iter().map(|f| f.category.retry_after()).min()
    }
}

impl fmt::Display for RegionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.doing)?;
        if self.region != HUB {
            write!(f, " in region {:?}", self.region)?;
        }
        match self.detail.as_str() {
            "" => Ok(()),
            detail => write!(f, ": {detail}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure("refused", "Reason").with_code(code).boxed())
    }

    #[test]
    fn api_errors_are_told_apart_by_what_fixes_them() {
        assert_eq!(
            FailureCategory::of_kube(&api_error(403)),
            FailureCategory::Forbidden
        );
        assert_eq!(
            FailureCategory::of_kube(&api_error(401)),
            FailureCategory::Forbidden
        );
        assert_eq!(
            FailureCategory::of_kube(&api_error(422)),
            FailureCategory::Rejected
        );
        assert_eq!(
            FailureCategory::of_kube(&api_error(409)),
            FailureCategory::Transient
        );
        assert_eq!(
            FailureCategory::of_kube(&api_error(429)),
            FailureCategory::Transient
        );
        assert_eq!(
            FailureCategory::of_kube(&api_error(503)),
            FailureCategory::Transient
        );
    }

    #[test]
    fn a_region_without_a_client_is_unavailable_or_not_configured() {
        let down = RegionError::Unavailable {
            context: "east".into(),
            since: k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            reason: "connection refused".into(),
        };
        let unknown = RegionError::UnknownContext {
            context: "west".into(),
        };
        assert_eq!(
            FailureCategory::of_region(&down),
            FailureCategory::RegionUnavailable
        );
        assert_eq!(
            FailureCategory::of_region(&unknown),
            FailureCategory::RegionNotConfigured
        );
    }

    #[test]
    fn the_soonest_retry_wins_and_people_problems_wait_longer() {
        let forbidden = RegionFailure::kube("east", "applying x", &api_error(403));
        let busy = RegionFailure::kube("west", "applying y", &api_error(503));
        assert_eq!(
            RegionFailure::retry_after([&forbidden]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            RegionFailure::retry_after([&forbidden, &busy]),
            Some(Duration::from_secs(5))
        );
        assert_eq!(RegionFailure::retry_after([]), None);
        assert!(FailureCategory::Rejected.retry_after() > FailureCategory::Transient.retry_after());
    }

    #[test]
    fn the_text_names_the_step_and_region_and_the_hub_goes_unnamed() {
        let failure = RegionFailure::new(
            "east",
            "applying ConfigMap ns/tokens",
            FailureCategory::Transient,
            "busy",
        );
        assert_eq!(
            failure.to_string(),
            "applying ConfigMap ns/tokens in region \"east\": busy"
        );
        let hub = RegionFailure::new(
            "",
            "applying ReplicatedSecret ns/c",
            FailureCategory::Transient,
            "busy",
        );
        assert_eq!(hub.to_string(), "applying ReplicatedSecret ns/c: busy");
        let said_all = RegionFailure::new(
            "",
            "Secret ns/s does not exist",
            FailureCategory::MissingReference,
            "",
        );
        assert_eq!(said_all.to_string(), "Secret ns/s does not exist");
    }

    #[test]
    fn every_category_has_its_own_label() {
        let labels: std::collections::BTreeSet<&str> =
            FailureCategory::ALL.iter().map(|c| c.metric_label()).collect();
        assert_eq!(labels.len(), FailureCategory::ALL.len());
    }
}
