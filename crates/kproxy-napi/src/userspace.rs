//! The userspace mode's binding: options in, syncs (the proxy's Services and frontends, the
//! Service link's addresses) on the libuv pool, reports and per-Service counters out. One
//! proxy (kproxy-userspace's engine) serves both families; the first proxier starts it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use napi::bindgen_prelude::AsyncTask;
use napi_derive::napi;

use kproxy_proxier::userspace::link::{LinkKind, VipLink};
use kproxy_proxier::userspace::proxy::{FakeProxy, ProxySide};
use kproxy_proxier::userspace::{UserspaceConfig, UserspaceOutcome, UserspaceSync};
use kproxy_proxier::Code;
use kproxy_userspace::{EngineOptions, Snapshot, CONNECT_BUCKETS, FAILURE_REASONS};

use crate::errors::{coded, to_napi};
use crate::options::{common, LocalDetectorOption};
use crate::sync_task::{RejectedServicePort, StateTask, SyncRequest};

#[napi(object)]
pub struct UserspaceOptions {
    /// "IPv4" or "IPv6".
    pub family: String,
    pub local_detector: Option<LocalDetectorOption>,
    /// Active connections per Service; 0 or unset: no cap.
    pub max_connections_per_service: Option<u32>,
    /// upstream's udpIdleTimeout; unset: 250 ms.
    pub udp_idle_timeout_ms: Option<u32>,
    /// Proxy threads; unset: the CPUs, at most 4.
    pub threads: Option<u32>,
    /// Copy buffer per direction of a TCP connection; unset: 64 KiB.
    pub buffer_bytes: Option<u32>,
    /// In-memory proxy and link instead of sockets and the kernel.
    pub fake: Option<bool>,
    /// The fake's node addresses (NodePorts on every address).
    pub fake_node_addresses: Option<Vec<String>>,
}

#[napi(object)]
pub struct UserspaceReport {
    pub full: bool,
    /// Frontends opened and closed, and addresses changed.
    pub objects: u32,
    pub services: u32,
    pub frontends: u32,
    pub opened: u32,
    pub closed: u32,
    pub listen_failed: u32,
    pub first_errno: Option<i32>,
    pub first_failed: Option<String>,
    pub addresses_added: u32,
    pub addresses_deleted: u32,
    pub addresses_failed: u32,
    pub drift_repaired: u32,
    /// ServicePorts of a protocol the mode cannot proxy (SCTP), by name.
    pub skipped: Vec<String>,
    /// "kproxy-vips (dummy)" or "lo (no dummy driver)".
    pub link: Option<String>,
    pub duration_ms: f64,
    pub rejected: Vec<RejectedServicePort>,
    pub text: Option<String>,
}

#[napi(object)]
pub struct UserspaceServiceStats {
    /// upstream's ServicePortName.
    pub service: String,
    pub accepted: f64,
    pub active: f64,
    /// By `userspaceConstants().failureReasons`.
    pub failed: Vec<f64>,
    pub connect_errors: f64,
    pub bytes_in: f64,
    pub bytes_out: f64,
    /// Cumulative, by `userspaceConstants().connectBuckets`.
    pub connect_buckets: Vec<f64>,
    pub connect_count: f64,
    pub connect_sum: f64,
}

#[napi(object)]
pub struct UserspaceEngineStats {
    pub fd_exhausted: f64,
    pub accept_errors: f64,
    pub last_error: Option<String>,
}

#[napi(object)]
pub struct UserspaceConstants {
    pub failure_reasons: Vec<String>,
    pub connect_buckets: Vec<f64>,
}

#[napi]
pub fn userspace_constants() -> UserspaceConstants {
    UserspaceConstants {
        failure_reasons: FAILURE_REASONS.iter().map(|s| s.to_string()).collect(),
        connect_buckets: CONNECT_BUCKETS.to_vec(),
    }
}

fn report(o: UserspaceOutcome, link: Option<LinkKind>) -> UserspaceReport {
    UserspaceReport {
        full: o.full,
        objects: (o.opened + o.closed + o.addresses_added + o.addresses_deleted) as u32,
        services: o.services as u32,
        frontends: o.frontends as u32,
        opened: o.opened as u32,
        closed: o.closed as u32,
        listen_failed: o.listen_failed as u32,
        first_errno: o.first_failure.as_ref().map(|f| f.0),
        first_failed: o.first_failure.map(|f| f.1),
        addresses_added: o.addresses_added as u32,
        addresses_deleted: o.addresses_deleted as u32,
        addresses_failed: o.addresses_failed as u32,
        drift_repaired: o.drift_repaired as u32,
        skipped: o.skipped,
        link: link.map(|k| k.describe().to_string()),
        duration_ms: o.duration_ms,
        rejected: o.rejected.into_iter().map(|r| RejectedServicePort { key: r.key, reason: r.reason }).collect(),
        text: o.text,
    }
}

fn stats(name: String, s: Snapshot) -> UserspaceServiceStats {
    let f = |v: u64| v as f64;
    UserspaceServiceStats {
        service: name,
        accepted: f(s.accepted),
        active: s.active as f64,
        failed: s.failed.iter().map(|v| f(*v)).collect(),
        connect_errors: f(s.connect_errors),
        bytes_in: f(s.bytes_in),
        bytes_out: f(s.bytes_out),
        connect_buckets: s.connect_buckets.iter().map(|v| f(*v)).collect(),
        connect_count: f(s.connect_count),
        connect_sum: s.connect_sum,
    }
}

/// The proxy's options; the first proxier to sync starts the process's one proxy with them.
fn engine_options(opts: &UserspaceOptions) -> napi::Result<EngineOptions> {
    let mut eo = EngineOptions::default();
    if let Some(t) = opts.threads.filter(|t| *t > 0) {
        eo.threads = t as usize;
    }
    if let Some(ms) = opts.udp_idle_timeout_ms {
        if ms == 0 {
            return Err(coded(Code::InvalidOption, "udpIdleTimeout must be greater than 0"));
        }
        eo.udp_idle_timeout = Duration::from_millis(ms.into());
    }
    if let Some(b) = opts.buffer_bytes {
        eo.buffer_bytes = (b as usize).clamp(4096, 16 << 20);
    }
    Ok(eo)
}

type Shared = Arc<Mutex<UserspaceSync>>;

fn lock(s: &Shared) -> MutexGuard<'_, UserspaceSync> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// A sync: node addressing first, then the changes; the report names the link.
fn sync_job(s: &mut UserspaceSync, req: SyncRequest) -> napi::Result<UserspaceReport> {
    if let Some(n) = &req.node {
        s.set_node(n.node_port_all, &n.node_port_ips, &n.node_ips).map_err(to_napi)?;
    }
    let out = s.sync(req.full, &req.upserts, &req.deletes, req.explain.unwrap_or(false)).map_err(to_napi)?;
    Ok(report(out, s.link().current().map(|(_, k)| k)))
}

#[napi]
pub struct UserspaceProxier {
    sync: Shared,
}

#[napi]
impl UserspaceProxier {
    #[napi(constructor, catch_unwind)]
    pub fn new(opts: UserspaceOptions) -> napi::Result<Self> {
        let (family, detector, _) = common(&opts.family, &opts.local_detector, None)?;
        let cfg = UserspaceConfig { detector, max_connections: opts.max_connections_per_service.unwrap_or(0) };
        let (proxy, link) = if opts.fake.unwrap_or(false) {
            let mut node = Vec::new();
            for a in opts.fake_node_addresses.iter().flatten() {
                node.push(a.parse().map_err(|_| coded(Code::InvalidOption, format!("bad fake node address {a:?}")))?);
            }
            (ProxySide::Fake(FakeProxy::default()), VipLink::fake(LinkKind::Dummy, node))
        } else {
            (ProxySide::Pending(engine_options(&opts)?), VipLink::kernel())
        };
        Ok(Self { sync: Arc::new(Mutex::new(UserspaceSync::new(family, cfg, proxy, link))) })
    }

    /// Applies the changes: addresses, Services and frontends, in gap-free order.
    #[napi(ts_return_type = "Promise<UserspaceReport>")]
    pub fn sync(&self, req: SyncRequest) -> AsyncTask<StateTask<UserspaceSync, UserspaceReport>> {
        AsyncTask::new(StateTask::new(&self.sync, move |s| sync_job(s, req)))
    }

    /// Between syncs: the Service addresses missing from the link, in words (the next sync is
    /// then full); empty when none is.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn drift(&self) -> AsyncTask<StateTask<UserspaceSync, String>> {
        AsyncTask::new(StateTask::new(&self.sync, |s| s.drift().map_err(to_napi)))
    }

    /// Closes this family's frontends and Services and removes the Service link.
    #[napi(ts_return_type = "Promise<UserspaceReport>")]
    pub fn cleanup(&self) -> AsyncTask<StateTask<UserspaceSync, UserspaceReport>> {
        AsyncTask::new(StateTask::new(&self.sync, |s| {
            let n = s.cleanup().map_err(to_napi)?;
            Ok(report(UserspaceOutcome { addresses_deleted: n, ..Default::default() }, None))
        }))
    }

    /// The desired state as canonical text: the link, its addresses, each Service's pools and frontends.
    #[napi(catch_unwind)]
    pub fn render(&self) -> String {
        lock(&self.sync).render()
    }

    /// Each Service's counters (this family's).
    #[napi(catch_unwind)]
    pub fn stats(&self) -> Vec<UserspaceServiceStats> {
        lock(&self.sync).stats().into_iter().map(|(n, s)| stats(n, s)).collect()
    }

    /// The proxy's own trouble (accept errors, descriptors running out); none with the fake.
    #[napi(catch_unwind)]
    pub fn engine_stats(&self) -> UserspaceEngineStats {
        let mut g = lock(&self.sync);
        let c = match g.proxy() {
            ProxySide::Engine(e) => e.counters(),
            ProxySide::Pending(_) | ProxySide::Fake(_) => Default::default(),
        };
        UserspaceEngineStats { fd_exhausted: c.fd_exhausted as f64, accept_errors: c.accept_errors as f64, last_error: c.last_error }
    }
}
