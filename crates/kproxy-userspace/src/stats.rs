//! Per-Service counters, kept with atomics on the proxy threads and read by the agent's
//! metrics scrape: connections accepted, active and failed (by reason), bytes each way,
//! and the time to connect to an endpoint.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the connect-latency histogram's buckets.
pub const CONNECT_BUCKETS: [f64; 14] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Why an accepted connection (or a UDP client) was not relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No endpoint serves this client (a Local policy with none local, say).
    NoEndpoint = 0,
    /// Every connect attempt failed or timed out.
    Connect = 1,
    /// The Service's connection cap was reached.
    Limit = 2,
    /// The source is outside the LoadBalancer's source ranges.
    SourceRange = 3,
}

pub const FAILURE_REASONS: [&str; 4] = ["no_endpoint", "connect", "limit", "source_range"];

#[derive(Default)]
pub struct Stats {
    accepted: AtomicU64,
    active: AtomicI64,
    failed: [AtomicU64; 4],
    connect_errors: AtomicU64,
    /// Client to endpoint, and endpoint to client.
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    buckets: [AtomicU64; CONNECT_BUCKETS.len()],
    connect_count: AtomicU64,
    connect_nanos: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub accepted: u64,
    pub active: i64,
    /// By `FAILURE_REASONS`.
    pub failed: [u64; 4],
    /// Connect attempts that failed (a connection may retry on another endpoint).
    pub connect_errors: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Cumulative counts per `CONNECT_BUCKETS` bound, then the count and sum (seconds).
    pub connect_buckets: Vec<u64>,
    pub connect_count: u64,
    pub connect_sum: f64,
}

impl Stats {
    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Relaxed);
    }

    pub fn failed(&self, why: Failure) {
        self.failed[why as usize].fetch_add(1, Relaxed);
    }

    pub fn connect_error(&self) {
        self.connect_errors.fetch_add(1, Relaxed);
    }

    pub fn active(&self) -> i64 {
        self.active.load(Relaxed)
    }

    pub fn add_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Relaxed);
    }

    pub fn add_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Relaxed);
    }

    pub fn connected(&self, took: Duration) {
        let s = took.as_secs_f64();
        if let Some(i) = CONNECT_BUCKETS.iter().position(|b| s <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.connect_count.fetch_add(1, Relaxed);
        self.connect_nanos.fetch_add(took.as_nanos().min(u64::MAX as u128) as u64, Relaxed);
    }

    /// Counts one active connection until the guard drops.
    pub fn enter(self: &std::sync::Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Relaxed);
        ActiveGuard(self.clone())
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut cumulative = 0;
        let connect_buckets = self
            .buckets
            .iter()
            .map(|b| {
                cumulative += b.load(Relaxed);
                cumulative
            })
            .collect();
        Snapshot {
            accepted: self.accepted.load(Relaxed),
            active: self.active.load(Relaxed),
            failed: std::array::from_fn(|i| self.failed[i].load(Relaxed)),
            connect_errors: self.connect_errors.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            connect_buckets,
            connect_count: self.connect_count.load(Relaxed),
            connect_sum: self.connect_nanos.load(Relaxed) as f64 / 1e9,
        }
    }
}

pub struct ActiveGuard(std::sync::Arc<Stats>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}

/// Engine-wide trouble: accept errors, file-descriptor exhaustion among them.
#[derive(Default)]
pub struct EngineCounters {
    pub fd_exhausted: AtomicU64,
    pub accept_errors: AtomicU64,
    pub last_error: std::sync::Mutex<Option<String>>,
}

impl EngineCounters {
    pub fn accept_error(&self, e: &std::io::Error) {
        if matches!(e.raw_os_error(), Some(n) if n == EMFILE || n == ENFILE) {
            self.fd_exhausted.fetch_add(1, Relaxed);
        }
        self.accept_errors.fetch_add(1, Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    }
}

/// Too many open files, in the process (EMFILE) or the system (ENFILE).
pub const EMFILE: i32 = 24;
pub const ENFILE: i32 = 23;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let s = Stats::default();
        for us in [50, 80, 300, 2000, 4_000_000] {
            s.connected(Duration::from_micros(us));
        }
        let snap = s.snapshot();
        assert_eq!(snap.connect_count, 5);
        assert_eq!(snap.connect_buckets[0], 2, "two under 100us");
        assert_eq!(snap.connect_buckets[2], 3, "three under 500us");
        assert_eq!(snap.connect_buckets[4], 4, "four under 2.5ms");
        assert_eq!(*snap.connect_buckets.last().unwrap(), 4, "4s is over the last bound");
        assert!((snap.connect_sum - 4.00243).abs() < 1e-9);
    }

    #[test]
    fn active_follows_guards() {
        let s = std::sync::Arc::new(Stats::default());
        let a = s.enter();
        let b = s.enter();
        assert_eq!(s.active(), 2);
        drop(a);
        drop(b);
        assert_eq!(s.active(), 0);
    }
}
