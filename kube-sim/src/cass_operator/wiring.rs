//! What the cass-operator stand-ins of one Sim share besides the Cassandra model: the pod
//! addresses, and a signal that the model changed behind their back (a node stopped through the
//! admin API), so that pod readiness follows at once instead of at the next resync.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};

/// Pod addresses from the loopback range, unique across every cluster of a Sim (the Cassandra
/// model is global: one address, one node). 127.0.0.0/24 is left alone (the API servers listen
/// on 127.0.0.1); each following /24 gives .1 to .254, so 65,535 × 254 addresses in all. Each
/// Sim starts at a random /24, so that Sims running side by side (tests in one process, or in
/// processes at once) do not hand out the same addresses, whose listeners would answer the
/// other Sim's calls: on one host, loopback is shared as a real pod network is not.
#[derive(Debug)]
pub struct PodAddresses {
    first: u32,
    handed_out: AtomicU32,
}

/// Host numbers per /24 (.1 to .254).
const HOSTS_PER_SUBNET: u32 = 254;
/// Subnets 127.0.1.0/24 to 127.255.255.0/24.
const SUBNETS: u32 = (1 << 16) - 1;
const ADDRESSES: u32 = HOSTS_PER_SUBNET * SUBNETS;

impl Default for PodAddresses {
    fn default() -> Self {
        PodAddresses::starting_at_subnet(rand::random_range(0..SUBNETS))
    }
}

impl PodAddresses {
    /// Addresses from the `subnet`th /24 after 127.0.0.0/24 on (0: 127.0.1.0/24), wrapping.
    pub fn starting_at_subnet(subnet: u32) -> Self {
        PodAddresses {
            first: (subnet % SUBNETS) * HOSTS_PER_SUBNET,
            handed_out: AtomicU32::new(0),
        }
    }

    /// The next unused address; `None` once every one was handed out (addresses are never
    /// reused within a Sim, so that a stale IP never names another pod).
    pub fn allocate(&self) -> Option<Ipv4Addr> {
        let n = self.handed_out.fetch_add(1, Ordering::Relaxed);
        if n >= ADDRESSES {
            return None;
        }
        let n = (self.first + n) % ADDRESSES;
        let subnet = n / HOSTS_PER_SUBNET + 1;
        let host = n % HOSTS_PER_SUBNET + 1;
        let [_, _, high, low] = subnet.to_be_bytes();
        Some(Ipv4Addr::new(127, high, low, host as u8))
    }
}

/// Shared by the stand-ins of one Sim.
#[derive(Debug)]
pub struct Wiring {
    pub addresses: PodAddresses,
    model_changed: tokio::sync::watch::Sender<u64>,
}

impl Default for Wiring {
    fn default() -> Self {
        Wiring {
            addresses: PodAddresses::default(),
            model_changed: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Wiring {
    /// Tells every stand-in that node liveness may have changed in the model (they compare
    /// their pods' readiness with it). Whoever stops or starts nodes outside the stand-ins calls
    /// this; a slow periodic resync catches anyone who does not.
    pub fn model_changed(&self) {
        self.model_changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.model_changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_loopback_and_skip_the_api_servers_subnet() {
        let addresses = PodAddresses::starting_at_subnet(0);
        let first = addresses.allocate();
        assert_eq!(first, Some(Ipv4Addr::new(127, 0, 1, 1)));
        let mut last = first;
        for _ in 1..254 {
            last = addresses.allocate();
        }
        assert_eq!(last, Some(Ipv4Addr::new(127, 0, 1, 254)));
        assert_eq!(addresses.allocate(), Some(Ipv4Addr::new(127, 0, 2, 1)));
        // The last /24 wraps around to the first.
        let wrapping = PodAddresses::starting_at_subnet(SUBNETS - 1);
        assert_eq!(wrapping.allocate(), Some(Ipv4Addr::new(127, 255, 255, 1)));
        for _ in 1..254 {
            wrapping.allocate();
        }
        assert_eq!(wrapping.allocate(), Some(Ipv4Addr::new(127, 0, 1, 1)));
        // 1,000 clusters of 30 pods fit many times over
        let many = PodAddresses::default();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..30_000 {
            let ip = many.allocate().unwrap_or(Ipv4Addr::LOCALHOST);
            assert!(ip.is_loopback() && ip != Ipv4Addr::LOCALHOST);
            assert!(seen.insert(ip), "{ip} handed out twice");
        }
    }
}
