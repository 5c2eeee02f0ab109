use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use super::*;
use crate::federation::rollout::tests::plan_of;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("valid IP")
}

/// A resolver answering from a table.
struct FakeResolver(BTreeMap<&'static str, Result<ResolvedHost, SeedResolveError>>);

impl SeedResolver for FakeResolver {
    async fn resolve(&self, host: &str) -> Result<ResolvedHost, SeedResolveError> {
        self.0.get(host).cloned().unwrap_or_else(|| {
            Err(SeedResolveError::Lookup {
                host: host.to_string(),
                reason: "NXDOMAIN".into(),
            })
        })
    }
}

/// The addresses of the EndpointSlice the planned slice makes.
fn addresses(slice: &SeedSlice) -> Vec<String> {
    slice.to_endpoint_slice().endpoints.into_iter().flat_map(|e| e.addresses).collect()
}

#[test]
fn each_datacenter_gets_the_other_datacenters_seeds() {
    let plan = plan_of(&["dc1", "dc2", "dc3"]);
    let seeds = BTreeMap::from([
        ("dc1".to_string(), vec![ip("10.0.1.1"), ip("10.0.1.2")]),
        ("dc2".to_string(), vec![ip("10.0.2.1"), ip("fd00::2")]),
        ("dc3".to_string(), vec![]),
        ("removed".to_string(), vec![ip("10.9.9.9")]),
    ]);
    let additional = BTreeSet::from([ip("192.168.0.1")]);
    let all = seed_endpoint_slices(&plan, &seeds, &additional);
    assert_eq!(all.len(), 3);

    let dc1 = &all[0];
    assert_eq!(
        (
            dc1.datacenter.as_str(),
            dc1.context.as_str(),
            dc1.namespace.as_str()
        ),
        ("dc1", "ctx-dc1", "ns")
    );
    let [v4, v6] = &dc1.slices[..] else {
        panic!("two slices")
    };
    assert_eq!(v4.address_type, "IPv4");
    assert_eq!(
        addresses(v4),
        ["10.0.2.1", "192.168.0.1"],
        "own seeds left out"
    );
    assert_eq!(v6.address_type, "IPv6");
    assert_eq!(addresses(v6), ["fd00::2"]);
    assert!(
        v4.to_endpoint_slice().endpoints.iter().all(|e| e.addresses.len() == 1),
        "one endpoint per address"
    );

    let dc3_v4 = &all[2].slices[0];
    assert_eq!(
        addresses(dc3_v4),
        ["10.0.1.1", "10.0.1.2", "10.0.2.1", "192.168.0.1"]
    );
    assert!(
        !addresses(dc3_v4).iter().any(|a| a == "10.9.9.9"),
        "datacenters out of the plan ignored"
    );
}

#[test]
fn slices_are_named_and_labelled_for_the_additional_seed_service() {
    let plan = plan_of(&["dc1", "dc2"]);
    let all = seed_endpoint_slices(&plan, &BTreeMap::new(), &BTreeSet::new());
    let v4 = &all[1].slices[0];
    let v6 = &all[1].slices[1];
    assert_eq!(
        v4.metadata.name.as_deref(),
        Some("demo-demo-dc2-additional-seed-service-ipv4")
    );
    assert_eq!(
        v6.metadata.name.as_deref(),
        Some("demo-demo-dc2-additional-seed-service-ipv6")
    );
    assert_eq!(v4.metadata.namespace.as_deref(), Some("ns"));
    let labels = v4.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels["kubernetes.io/service-name"],
        "demo-dc2-additional-seed-service"
    );
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "federator"
    );
    assert_eq!(labels["k8ssandra.io/cluster-name"], "demo");
    assert_eq!(labels["k8ssandra.io/cluster-namespace"], "ns");
    assert_eq!(labels["k8ssandra.io/datacenter"], "dc2");
    assert!(
        v4.to_endpoint_slice().endpoints.is_empty(),
        "an empty family is written empty, not left stale"
    );
    // The same input gives the same objects.
    assert_eq!(
        all,
        seed_endpoint_slices(&plan, &BTreeMap::new(), &BTreeSet::new())
    );
}

#[test]
fn additional_seeds_split_into_addresses_and_host_names() {
    let parsed = AdditionalSeeds::parse(&[
        "10.0.0.1".into(),
        " fd00::1 ".into(),
        "[fd00::2]".into(),
        "::ffff:10.0.0.9".into(),
        "Seed.Example.com".into(),
        "".into(),
    ]);
    assert_eq!(
        parsed.addresses,
        BTreeSet::from([ip("10.0.0.1"), ip("10.0.0.9"), ip("fd00::1"), ip("fd00::2")])
    );
    assert_eq!(
        parsed.host_names,
        BTreeSet::from(["seed.example.com".to_string()])
    );
}

#[tokio::test]
async fn host_names_are_resolved_and_failures_reported_without_dropping_the_rest() {
    let resolver = FakeResolver(BTreeMap::from([
        (
            "a.example.com",
            Ok(ResolvedHost {
                addresses: vec![ip("10.1.0.1"), ip("fd01::1")],
                valid_for: Some(Duration::from_secs(300)),
            }),
        ),
        (
            "b.example.com",
            Ok(ResolvedHost {
                addresses: vec![ip("10.1.0.2")],
                valid_for: Some(Duration::from_secs(60)),
            }),
        ),
        (
            "empty.example.com",
            Ok(ResolvedHost {
                addresses: vec![],
                valid_for: None,
            }),
        ),
    ]));
    let seeds = AdditionalSeeds::parse(&[
        "10.0.0.1".into(),
        "a.example.com".into(),
        "b.example.com".into(),
        "empty.example.com".into(),
        "gone.example.com".into(),
    ]);
    let resolved = resolve_additional_seeds(&resolver, &seeds).await;
    assert_eq!(
        resolved.addresses,
        BTreeSet::from([
            ip("10.0.0.1"),
            ip("10.1.0.1"),
            ip("10.1.0.2"),
            ip("fd01::1")
        ])
    );
    // the failed host names are tried again sooner than the shortest TTL (60 s)
    assert_eq!(resolved.refresh_after, Some(MIN_REFRESH));
    assert_eq!(
        resolved.failures,
        [
            SeedResolveError::NoRecords {
                host: "empty.example.com".into()
            },
            SeedResolveError::Lookup {
                host: "gone.example.com".into(),
                reason: "NXDOMAIN".into()
            },
        ]
    );

    let plan = plan_of(&["dc1"]);
    let slices = seed_endpoint_slices(&plan, &BTreeMap::new(), &resolved.addresses);
    assert_eq!(
        addresses(&slices[0].slices[0]),
        ["10.0.0.1", "10.1.0.1", "10.1.0.2"]
    );
    assert_eq!(addresses(&slices[0].slices[1]), ["fd01::1"]);
}

#[tokio::test]
async fn the_hickory_resolver_reads_literal_addresses() {
    // No network in tests: an IP literal is answered without a query.
    let Ok(resolver) = HickoryResolver::from_system_conf() else {
        println!("SKIP: no system resolver configuration");
        return;
    };
    let answer = resolver.resolve("127.0.0.1").await.expect("literal resolves");
    assert_eq!(answer.addresses, [ip("127.0.0.1")]);
}

/// Counts the lookups that reach it, and answers with the address it is set to.
struct CountingResolver {
    lookups: std::sync::atomic::AtomicUsize,
    answer: std::sync::Mutex<IpAddr>,
    ttl: Option<Duration>,
}

impl SeedResolver for CountingResolver {
    async fn resolve(&self, _host: &str) -> Result<ResolvedHost, SeedResolveError> {
        self.lookups.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let address = *self.answer.lock().unwrap_or_else(|e| e.into_inner());
        Ok(ResolvedHost {
            addresses: vec![address],
            valid_for: self.ttl,
        })
    }
}

#[tokio::test]
async fn host_names_are_resolved_again_when_their_ttl_ends_and_not_before() {
    let resolver = CachingResolver::new(CountingResolver {
        lookups: Default::default(),
        answer: std::sync::Mutex::new(ip("192.0.2.1")),
        ttl: Some(Duration::from_secs(60)),
    });
    let start = Instant::now();
    let first = resolver.resolve_at("seed.example", start).await;
    assert_eq!(first.map(|r| r.addresses), Ok(vec![ip("192.0.2.1")]));
    // the seed moves; within its TTL the cached answer is used
    *resolver.inner.answer.lock().unwrap_or_else(|e| e.into_inner()) = ip("192.0.2.9");
    let cached = resolver.resolve_at("seed.example", start + Duration::from_secs(59)).await;
    assert_eq!(cached.map(|r| r.addresses), Ok(vec![ip("192.0.2.1")]));
    let refreshed = resolver.resolve_at("seed.example", start + Duration::from_secs(61)).await;
    assert_eq!(refreshed.map(|r| r.addresses), Ok(vec![ip("192.0.2.9")]));
    assert_eq!(
        resolver.inner.lookups.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}

#[tokio::test]
async fn a_cached_answer_says_how_long_it_has_left_so_the_cluster_comes_back_then() {
    let resolver = CachingResolver::new(CountingResolver {
        lookups: Default::default(),
        answer: std::sync::Mutex::new(ip("192.0.2.1")),
        ttl: Some(Duration::from_secs(60)),
    });
    let start = Instant::now();
    let fresh = resolver.resolve_at("seed.example", start).await;
    assert_eq!(
        fresh.map(|r| r.valid_for),
        Ok(Some(Duration::from_secs(60)))
    );
    let cached = resolver.resolve_at("seed.example", start + Duration::from_secs(45)).await;
    assert_eq!(
        cached.map(|r| r.valid_for),
        Ok(Some(Duration::from_secs(15)))
    );
    // a TTL below the floor is kept, and reported, as the floor
    let short = CachingResolver::new(CountingResolver {
        lookups: Default::default(),
        answer: std::sync::Mutex::new(ip("192.0.2.1")),
        ttl: Some(Duration::from_secs(1)),
    });
    let answer = short.resolve_at("seed.example", start).await;
    assert_eq!(answer.map(|r| r.valid_for), Ok(Some(MIN_REFRESH)));
}

#[tokio::test]
async fn a_zero_ttl_does_not_mean_a_lookup_per_reconcile() {
    let resolver = CachingResolver::new(CountingResolver {
        lookups: Default::default(),
        answer: std::sync::Mutex::new(ip("192.0.2.1")),
        ttl: Some(Duration::ZERO),
    });
    let start = Instant::now();
    for seconds in [0, 5, 10, 29] {
        let _ = resolver.resolve_at("seed.example", start + Duration::from_secs(seconds)).await;
    }
    assert_eq!(
        resolver.inner.lookups.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn answers_go_when_no_cluster_names_their_host_any_more() {
    let resolver = CachingResolver::new(CountingResolver {
        lookups: Default::default(),
        answer: std::sync::Mutex::new(ip("192.0.2.1")),
        ttl: Some(Duration::from_secs(300)),
    });
    let seeds = |names: &[&str]| {
        AdditionalSeeds::parse(&names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
    };
    resolver.resolve_for("ns/a", &seeds(&["shared.example", "a.example"])).await;
    resolver.resolve_for("ns/b", &seeds(&["shared.example"])).await;
    assert_eq!(resolver.cached_hosts(), 2);
    // a drops a.example from its spec: nobody names it any more
    resolver.resolve_for("ns/a", &seeds(&["shared.example"])).await;
    assert_eq!(resolver.cached_hosts(), 1);
    // a is deleted: b still names shared.example
    resolver.forget_cluster("ns/a");
    assert_eq!(resolver.cached_hosts(), 1);
    // b goes too: nothing is kept
    resolver.forget_cluster("ns/b");
    assert_eq!(resolver.cached_hosts(), 0);
}

#[test]
fn a_slice_fingerprint_changes_with_its_addresses_and_metadata_only() {
    let plan = plan_of(&["dc1", "dc2"]);
    let seeds = |ips: &[&str]| {
        BTreeMap::from([(
            "dc2".to_string(),
            ips.iter().map(|text| ip(text)).collect::<Vec<_>>(),
        )])
    };
    let fingerprint = |seeds: &BTreeMap<String, Vec<IpAddr>>| {
        seed_endpoint_slices(&plan, seeds, &BTreeSet::new())[0].slices[0].fingerprint()
    };
    let before = fingerprint(&seeds(&["10.0.2.1"]));
    assert_eq!(before, fingerprint(&seeds(&["10.0.2.1"])));
    assert_ne!(before, fingerprint(&seeds(&["10.0.2.2"])));

    let mut relabelled = seed_endpoint_slices(&plan, &seeds(&["10.0.2.1"]), &BTreeSet::new());
    let slice = &mut relabelled[0].slices[0];
    slice.metadata.labels.get_or_insert_default().insert("extra".into(), "x".into());
    assert_ne!(before, slice.fingerprint());
}
