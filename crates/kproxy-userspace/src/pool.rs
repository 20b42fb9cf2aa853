//! A Service's endpoints and how one is chosen for a client: round robin over the pool
//! the frontend routes the client to, or, with ClientIP affinity, the endpoint the client
//! had last (while it is still in the pool and the timeout has not passed).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::stats::Stats;

/// What the agent wants of one Service (one ServicePort of one family).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceSpec {
    /// upstream's ServicePortName ("ns/name:port"): the metrics' label.
    pub name: String,
    /// Endpoint pools; each frontend names the one it routes to.
    pub pools: Vec<Vec<SocketAddr>>,
    /// ClientIP affinity's timeout; None without affinity.
    pub affinity: Option<Duration>,
    /// 0: no cap on active connections.
    pub max_connections: u32,
}

struct Pools {
    pools: Vec<Vec<SocketAddr>>,
    next: Vec<AtomicUsize>,
}

/// A Service on the proxy threads. Its spec is swapped in place, so connections already
/// relaying keep their endpoint and new ones see the new pools at once.
pub struct Service {
    name: String,
    pools: RwLock<Arc<Pools>>,
    affinity: RwLock<Option<Duration>>,
    max_connections: AtomicUsize,
    /// Client IP to (endpoint, last use).
    sticky: Mutex<HashMap<IpAddr, (SocketAddr, Instant)>>,
    inserts: AtomicUsize,
    pub stats: Arc<Stats>,
}

/// Expired affinity entries are swept every this many inserts.
const SWEEP_EVERY: usize = 1024;

fn read<T: Clone>(l: &RwLock<T>) -> T {
    l.read().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Service {
    pub fn new(spec: &ServiceSpec) -> Self {
        let s = Self {
            name: spec.name.clone(),
            pools: RwLock::new(Arc::new(Pools { pools: Vec::new(), next: Vec::new() })),
            affinity: RwLock::new(None),
            max_connections: AtomicUsize::new(0),
            sticky: Mutex::new(HashMap::new()),
            inserts: AtomicUsize::new(0),
            stats: Arc::new(Stats::default()),
        };
        s.update(spec);
        s
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes the new pools, affinity and cap; counters and affinity entries stay.
    pub fn update(&self, spec: &ServiceSpec) {
        let next = spec.pools.iter().map(|_| AtomicUsize::new(0)).collect();
        *self.pools.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Pools { pools: spec.pools.clone(), next });
        let old = std::mem::replace(&mut *self.affinity.write().unwrap_or_else(|p| p.into_inner()), spec.affinity);
        if spec.affinity.is_none() && old.is_some() {
            self.sticky.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        self.max_connections.store(spec.max_connections as usize, Relaxed);
    }

    /// The cap is reached: refuse the next connection.
    pub fn full(&self) -> bool {
        let max = self.max_connections.load(Relaxed);
        max > 0 && self.stats.active() >= max as i64
    }

    pub fn has_endpoints(&self, pool: usize) -> bool {
        read(&self.pools).pools.get(pool).is_some_and(|p| !p.is_empty())
    }

    /// The endpoint for `client` from `pool`, none of `tried` when another is left.
    pub fn pick(&self, pool: usize, client: IpAddr, tried: &[SocketAddr]) -> Option<SocketAddr> {
        let pools = read(&self.pools);
        let eps = pools.pools.get(pool).filter(|p| !p.is_empty())?;
        let affinity = *self.affinity.read().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if let Some(timeout) = affinity {
            let mut sticky = self.sticky.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((ep, at)) = sticky.get_mut(&client) {
                if now.duration_since(*at) < timeout && eps.contains(ep) && !tried.contains(ep) {
                    *at = now;
                    return Some(*ep);
                }
            }
        }
        let start = pools.next[pool].fetch_add(1, Relaxed);
        let ep = (0..eps.len()).map(|i| eps[(start + i) % eps.len()]).find(|e| !tried.contains(e)).unwrap_or(eps[start % eps.len()]);
        if let Some(timeout) = affinity {
            let mut sticky = self.sticky.lock().unwrap_or_else(|p| p.into_inner());
            sticky.insert(client, (ep, now));
            if self.inserts.fetch_add(1, Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
                sticky.retain(|_, (_, at)| now.duration_since(*at) < timeout);
            }
        }
        Some(ep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn spec(eps: &[&str], affinity: Option<Duration>) -> ServiceSpec {
        ServiceSpec { name: "ns/svc:p".into(), pools: vec![eps.iter().map(|e| sa(e)).collect(), vec![]], affinity, max_connections: 0 }
    }

    #[test]
    fn round_robin_visits_every_endpoint_in_turn() {
        let s = Service::new(&spec(&["10.1.0.1:80", "10.1.0.2:80", "10.1.0.3:80"], None));
        let client: IpAddr = "10.0.0.9".parse().unwrap();
        let picks: Vec<SocketAddr> = (0..6).map(|_| s.pick(0, client, &[]).unwrap()).collect();
        assert_eq!(picks[..3], picks[3..]);
        let mut first: Vec<_> = picks[..3].to_vec();
        first.sort();
        first.dedup();
        assert_eq!(first.len(), 3);
    }

    #[test]
    fn an_empty_pool_picks_nothing() {
        let s = Service::new(&spec(&["10.1.0.1:80"], None));
        assert_eq!(s.pick(1, "10.0.0.9".parse().unwrap(), &[]), None);
        assert_eq!(s.pick(7, "10.0.0.9".parse().unwrap(), &[]), None);
        assert!(!s.has_endpoints(1));
    }

    #[test]
    fn a_retry_skips_the_endpoints_tried() {
        let s = Service::new(&spec(&["10.1.0.1:80", "10.1.0.2:80"], None));
        let c = "10.0.0.9".parse().unwrap();
        let a = s.pick(0, c, &[]).unwrap();
        let b = s.pick(0, c, &[a]).unwrap();
        assert_ne!(a, b);
        // Every endpoint tried: one is tried again rather than none.
        assert!(s.pick(0, c, &[a, b]).is_some());
    }

    #[test]
    fn affinity_keeps_a_client_on_its_endpoint_until_it_leaves_the_pool() {
        let s = Service::new(&spec(&["10.1.0.1:80", "10.1.0.2:80", "10.1.0.3:80"], Some(Duration::from_secs(60))));
        let (c1, c2): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = s.pick(0, c1, &[]).unwrap();
        for _ in 0..5 {
            assert_eq!(s.pick(0, c1, &[]).unwrap(), first);
            s.pick(0, c2, &[]);
        }
        let rest: Vec<&str> = ["10.1.0.1:80", "10.1.0.2:80", "10.1.0.3:80"].into_iter().filter(|e| sa(e) != first).collect();
        s.update(&spec(&rest, Some(Duration::from_secs(60))));
        let moved = s.pick(0, c1, &[]).unwrap();
        assert_ne!(moved, first);
        assert_eq!(s.pick(0, c1, &[]).unwrap(), moved);
    }

    #[test]
    fn affinity_times_out() {
        let s = Service::new(&spec(&["10.1.0.1:80", "10.1.0.2:80"], Some(Duration::from_millis(30))));
        let c: IpAddr = "10.0.0.1".parse().unwrap();
        let first = s.pick(0, c, &[]).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        // Round robin moves on: the expired entry is not followed.
        assert_ne!(s.pick(0, c, &[]).unwrap(), first);
    }

    #[test]
    fn the_cap_counts_active_connections() {
        let mut sp = spec(&["10.1.0.1:80"], None);
        sp.max_connections = 2;
        let s = Service::new(&sp);
        let a = s.stats.enter();
        assert!(!s.full());
        let b = s.stats.enter();
        assert!(s.full());
        drop((a, b));
        assert!(!s.full());
    }
}
