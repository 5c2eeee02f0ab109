//! Cross-region seeds: each datacenter learns the seed addresses of the other datacenters (and
//! `spec.cassandra.additionalSeeds`) through the EndpointSlices of cass-operator's additional
//! seed Service, `<cluster>-<dc>-additional-seed-service`, which its config builder lists as a
//! seed.
//!
//! Per datacenter, in its region and namespace, two EndpointSlices named
//! `<k8c>-<cluster>-<dc>-additional-seed-service-ipv4` and `...-ipv6` (k8ssandra-operator's
//! names), labelled `kubernetes.io/service-name` with that Service. Both are always written, an
//! empty one with no endpoints, so that an address family that goes away is emptied by the same
//! apply instead of needing a delete. Each address is its own endpoint: an endpoint holds at
//! most 100 addresses, and DNS and kube-proxy read only an endpoint's first one.
//!
//! Host names in `additionalSeeds` are resolved (A and AAAA) through [`SeedResolver`];
//! k8ssandra-operator drops them. The real resolver is [`HickoryResolver`]; everything else here
//! is pure.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use thiserror::Error;

use super::plan::ClusterPlan;
use crate::api::shared::MANAGED_BY_VALUE;
use crate::workload::labels::{
    CASSANDRA_CLUSTER_LABEL, CASSANDRA_DATACENTER_LABEL, ENDPOINT_SLICE_MANAGED_BY_LABEL,
    ENDPOINT_SLICE_SERVICE_NAME_LABEL, clean_label_value, datacenter_labels,
};

/// `addressType` values of an EndpointSlice.
pub const ADDRESS_TYPE_IPV4: &str = "IPv4";
pub const ADDRESS_TYPE_IPV6: &str = "IPv6";

/// The seed EndpointSlices of one datacenter, to apply in its region and namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct DatacenterSeeds {
    pub datacenter: String,
    pub context: String,
    pub namespace: String,
    /// The IPv4 slice, then the IPv6 slice.
    pub slices: Vec<SeedSlice>,
}

/// One seed EndpointSlice as planned. The object is made only when it is compared or applied:
/// a 100-region cluster's 200 slices of 99 endpoints each were 3.5 MB as objects.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedSlice {
    pub metadata: ObjectMeta,
    pub address_type: &'static str,
    pub addresses: Vec<IpAddr>,
}

impl SeedSlice {
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// Identifies what this slice would be written as, for [`crate::apply::UpToDateMemo`].
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        // All of the metadata, whatever it comes to carry; it is small, unlike the addresses.
        serde_json::to_string(&self.metadata).unwrap_or_default().hash(&mut hasher);
        self.address_type.hash(&mut hasher);
        self.addresses.hash(&mut hasher);
        hasher.finish()
    }

    /// The EndpointSlice: one endpoint per address.
    pub fn to_endpoint_slice(&self) -> EndpointSlice {
        EndpointSlice {
            metadata: self.metadata.clone(),
            address_type: self.address_type.to_string(),
            endpoints: self
                .addresses
                .iter()
                .map(|ip| Endpoint {
                    addresses: vec![ip.to_string()],
                    ..Default::default()
                })
                .collect(),
            ports: None,
        }
    }
}

/// `additionalSeeds` split into the addresses given as IPs and the host names to resolve.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdditionalSeeds {
    pub addresses: BTreeSet<IpAddr>,
    pub host_names: BTreeSet<String>,
}

impl AdditionalSeeds {
    pub fn parse(seeds: &[String]) -> AdditionalSeeds {
        let mut parsed = AdditionalSeeds::default();
        for seed in seeds.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            // Bracketed IPv6 literals are accepted too ("[fd00::1]").
            let literal = seed.trim_start_matches('[').trim_end_matches(']');
            match literal.parse::<IpAddr>() {
                Ok(ip) => {
                    parsed.addresses.insert(canonical(ip));
                }
                Err(_) => {
                    parsed.host_names.insert(seed.to_ascii_lowercase());
                }
            }
        }
        parsed
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are IPv4 addresses.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// What a host name resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedHost {
    pub addresses: Vec<IpAddr>,
    /// How long the answer may be cached (the smallest record TTL), when known: resolve again
    /// after that.
    pub valid_for: Option<Duration>,
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SeedResolveError {
    #[error("{host} has no A or AAAA record")]
    NoRecords { host: String },
    #[error("cannot resolve {host}: {reason}")]
    Lookup { host: String, reason: String },
    #[error("cannot set up DNS resolution from the system configuration: {0}")]
    Setup(String),
}

/// Resolves host names to addresses. The real one is [`HickoryResolver`]; tests use a table.
pub trait SeedResolver: Send + Sync {
    fn resolve(
        &self,
        host: &str,
    ) -> impl Future<Output = Result<ResolvedHost, SeedResolveError>> + Send;
}

/// The outcome of resolving every host name of `additionalSeeds`: the addresses found and the
/// host names that failed, so that one bad name does not drop the others.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResolvedSeeds {
    pub addresses: BTreeSet<IpAddr>,
    pub failures: Vec<SeedResolveError>,
    /// When to resolve again: the shortest time any answer stays valid (a failed host name is
    /// tried again after [`MIN_REFRESH`]); `None` when there are no host names.
    pub refresh_after: Option<Duration>,
}

/// Resolves the host names of `seeds` one by one (they are few) and adds the literal IPs.
pub async fn resolve_additional_seeds<R: SeedResolver>(
    resolver: &R,
    seeds: &AdditionalSeeds,
) -> ResolvedSeeds {
    let mut resolved = ResolvedSeeds {
        addresses: seeds.addresses.clone(),
        ..Default::default()
    };
    for host in &seeds.host_names {
        let valid_for = match resolver.resolve(host).await {
            Ok(answer) if answer.addresses.is_empty() => {
                resolved.failures.push(SeedResolveError::NoRecords { host: host.clone() });
                Some(MIN_REFRESH)
            }
            Ok(answer) => {
                resolved.addresses.extend(answer.addresses.into_iter().map(canonical));
                answer.valid_for
            }
            Err(error) => {
                resolved.failures.push(error);
                Some(MIN_REFRESH)
            }
        };
        resolved.refresh_after = match (resolved.refresh_after, valid_for) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    resolved
}

/// Shortest and longest time a host name's answer is used before it is resolved again: DNS
/// TTLs of 0 would mean a lookup per reconcile, very long ones would miss a moved seed.
pub const MIN_REFRESH: Duration = Duration::from_secs(30);
pub const MAX_REFRESH: Duration = Duration::from_secs(300);

/// A [`SeedResolver`] that remembers each host name's answer (or failure) until its TTL ends
/// (kept within [`MIN_REFRESH`]..=[`MAX_REFRESH`]), so reconciles re-resolve periodically
/// without a lookup each time. Answers are kept while a cluster names their host (see
/// [`CachingResolver::resolve_for`]).
pub struct CachingResolver<R> {
    inner: R,
    answers: std::sync::Mutex<BTreeMap<String, CachedAnswer>>,
    /// The host names each cluster (`namespace/name`) resolves.
    hosts_by_cluster: std::sync::Mutex<BTreeMap<String, BTreeSet<String>>>,
}

/// An answer and when it stops being used.
type CachedAnswer = (Result<ResolvedHost, SeedResolveError>, Instant);

impl<R: SeedResolver> CachingResolver<R> {
    pub fn new(inner: R) -> CachingResolver<R> {
        CachingResolver {
            inner,
            answers: std::sync::Mutex::new(BTreeMap::new()),
            hosts_by_cluster: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Resolves `seeds` for `cluster` (`namespace/name`), noting its host names: answers for
    /// host names no cluster names any more are dropped.
    pub async fn resolve_for(&self, cluster: &str, seeds: &AdditionalSeeds) -> ResolvedSeeds {
        self.note_hosts(cluster, Some(seeds.host_names.clone()));
        resolve_additional_seeds(self, seeds).await
    }

    /// A deleted cluster: the answers only it used go.
    pub fn forget_cluster(&self, cluster: &str) {
        self.note_hosts(cluster, None);
    }

    fn note_hosts(&self, cluster: &str, hosts: Option<BTreeSet<String>>) {
        let Ok(mut by_cluster) = self.hosts_by_cluster.lock() else {
            return;
        };
        match hosts {
            Some(hosts) if !hosts.is_empty() => {
                if by_cluster.get(cluster) == Some(&hosts) {
                    return;
                }
                by_cluster.insert(cluster.to_string(), hosts);
            }
            _ => {
                if by_cluster.remove(cluster).is_none() {
                    return;
                }
            }
        }
        let named: BTreeSet<&String> = by_cluster.values().flatten().collect();
        if let Ok(mut answers) = self.answers.lock() {
            answers.retain(|host, _| named.contains(host));
        }
    }

    /// How many host names have an answer kept.
    pub fn cached_hosts(&self) -> usize {
        self.answers.lock().map_or(0, |answers| answers.len())
    }

    /// A fresh cached answer, valid for the time it has left.
    fn cached(&self, host: &str, now: Instant) -> Option<Result<ResolvedHost, SeedResolveError>> {
        let answers = self.answers.lock().ok()?;
        let (answer, expires) = answers.get(host)?;
        let left = expires.checked_duration_since(now).filter(|left| !left.is_zero())?;
        Some(answer.clone().map(|found| ResolvedHost {
            valid_for: Some(left),
            ..found
        }))
    }

    /// Resolves `host`, from the cache while its answer is fresh at `now`.
    pub async fn resolve_at(
        &self,
        host: &str,
        now: Instant,
    ) -> Result<ResolvedHost, SeedResolveError> {
        if let Some(answer) = self.cached(host, now) {
            return answer;
        }
        let answer = self.inner.resolve(host).await;
        let keep_for = match &answer {
            Ok(found) => found.valid_for.unwrap_or(MIN_REFRESH).clamp(MIN_REFRESH, MAX_REFRESH),
            Err(_) => MIN_REFRESH,
        };
        if let Ok(mut answers) = self.answers.lock() {
            answers.insert(host.to_string(), (answer.clone(), now + keep_for));
        }
        answer.map(|found| ResolvedHost {
            valid_for: Some(keep_for),
            ..found
        })
    }
}

impl<R: SeedResolver> SeedResolver for CachingResolver<R> {
    async fn resolve(&self, host: &str) -> Result<ResolvedHost, SeedResolveError> {
        self.resolve_at(host, Instant::now()).await
    }
}

/// The seed EndpointSlices of every datacenter of `plan`: the seed pod IPs of the OTHER
/// datacenters (`seed_ips` by datacenter name; datacenters not in the plan are ignored) plus
/// `additional` (resolved `additionalSeeds`). Sorted and deduplicated, so the same input gives
/// byte-identical objects.
pub fn seed_endpoint_slices(
    plan: &ClusterPlan,
    seed_ips: &BTreeMap<String, Vec<IpAddr>>,
    additional: &BTreeSet<IpAddr>,
) -> Vec<DatacenterSeeds> {
    plan.datacenters
        .iter()
        .map(|dc| {
            let mut addresses: BTreeSet<IpAddr> =
                additional.iter().copied().map(canonical).collect();
            for other in plan.datacenters.iter().filter(|other| other.name != dc.name) {
                if let Some(ips) = seed_ips.get(&other.name) {
                    addresses.extend(ips.iter().copied().map(canonical));
                }
            }
            let slice = |address_type: &'static str, suffix: &str, addresses: Vec<IpAddr>| {
                let mut labels =
                    datacenter_labels(&plan.cluster.name, &plan.cluster.namespace, &dc.name);
                labels.insert(
                    ENDPOINT_SLICE_SERVICE_NAME_LABEL.to_string(),
                    dc.additional_seed_service.clone(),
                );
                labels.insert(
                    ENDPOINT_SLICE_MANAGED_BY_LABEL.to_string(),
                    MANAGED_BY_VALUE.to_string(),
                );
                labels.insert(
                    CASSANDRA_CLUSTER_LABEL.to_string(),
                    clean_label_value(&plan.cassandra_cluster_name),
                );
                labels.insert(CASSANDRA_DATACENTER_LABEL.to_string(), dc.name.clone());
                SeedSlice {
                    metadata: ObjectMeta {
                        name: Some(format!(
                            "{}-{}-{suffix}",
                            plan.cluster.name, dc.additional_seed_service
                        )),
                        namespace: Some(dc.namespace.clone()),
                        labels: Some(labels),
                        ..Default::default()
                    },
                    address_type,
                    addresses,
                }
            };
            let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) =
                addresses.into_iter().partition(IpAddr::is_ipv4);
            DatacenterSeeds {
                datacenter: dc.name.clone(),
                context: dc.context.clone(),
                namespace: dc.namespace.clone(),
                slices: vec![
                    slice(ADDRESS_TYPE_IPV4, "ipv4", v4),
                    slice(ADDRESS_TYPE_IPV6, "ipv6", v6),
                ],
            }
        })
        .collect()
}

/// [`SeedResolver`] over hickory-dns with the system's resolver configuration, asking for A and
/// AAAA records together.
pub struct HickoryResolver {
    resolver: hickory_resolver::TokioResolver,
}

impl HickoryResolver {
    /// Reads `/etc/resolv.conf` (in a pod: the cluster DNS).
    pub fn from_system_conf() -> Result<HickoryResolver, SeedResolveError> {
        let mut builder = hickory_resolver::TokioResolver::builder_tokio()
            .map_err(|e| SeedResolveError::Setup(e.to_string()))?;
        let options = builder.options_mut();
        options.ip_strategy = hickory_resolver::config::LookupIpStrategy::Ipv4AndIpv6;
        // A reconcile waits for its lookups: a DNS server that does not answer costs seconds,
        // not the default 5 s x 2 attempts per name.
        options.timeout = Duration::from_secs(2);
        options.attempts = 1;
        Ok(HickoryResolver {
            resolver: builder.build(),
        })
    }
}

impl SeedResolver for HickoryResolver {
    async fn resolve(&self, host: &str) -> Result<ResolvedHost, SeedResolveError> {
        match self.resolver.lookup_ip(host).await {
            Ok(lookup) => Ok(ResolvedHost {
                addresses: lookup.iter().collect(),
                valid_for: Some(lookup.valid_until().saturating_duration_since(Instant::now())),
            }),
            Err(error) if error.is_no_records_found() => Err(SeedResolveError::NoRecords {
                host: host.to_string(),
            }),
            Err(error) => Err(SeedResolveError::Lookup {
                host: host.to_string(),
                reason: error.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
