//! The IPVS mode's binding: options in, syncs (IPVS, kube-ipvs0 and the nftables table, all
//! over netlink) on the libuv pool, a report out.

use std::sync::{Arc, Mutex, MutexGuard};

use napi::bindgen_prelude::AsyncTask;
use napi_derive::napi;

use kproxy_nftables::Cidr;
use kproxy_proxier::ipvs::{IpvsConfig, IpvsOutcome, IpvsSync};
use kproxy_proxier::Code;

use crate::errors::{coded, to_napi};
use crate::options::{common, LocalDetectorOption};
use crate::sync_task::{RejectedServicePort, StateTask, SyncRequest};

#[napi(object)]
pub struct IpvsOptions {
    /// "IPv4" or "IPv6".
    pub family: String,
    pub local_detector: Option<LocalDetectorOption>,
    pub masquerade_all: Option<bool>,
    pub masquerade_bit: Option<u32>,
    /// `--ipvs-scheduler`; empty or unset: rr.
    pub scheduler: Option<String>,
    /// `--ipvs-exclude-cidrs`: virtual servers there are left alone.
    pub exclude_cidrs: Option<Vec<String>>,
    /// In-memory IPVS, addresses and table instead of the kernel.
    pub fake: Option<bool>,
    /// The fake's node addresses (NodePorts on every address).
    pub fake_node_addresses: Option<Vec<String>>,
}

#[napi(object)]
pub struct IpvsReport {
    pub full: bool,
    /// IPVS operations and nftables table operations sent.
    pub objects: u32,
    pub ipvs_ops: u32,
    pub ipvs_failed: u32,
    /// The first refused operation: its errno and the operation in ipvsadm's syntax.
    pub first_errno: Option<i32>,
    pub first_failed: Option<String>,
    pub table_ops: u32,
    /// A sync with no changes found and repaired this many differences in the kernel.
    pub drift_repaired: u32,
    pub bytes: u32,
    pub addresses_added: u32,
    pub addresses_deleted: u32,
    pub addresses_failed: u32,
    /// Virtual and real servers of this family after the sync.
    pub services: u32,
    pub destinations: u32,
    /// Real servers at weight 0, waiting for their connections to end.
    pub draining: u32,
    pub duration_ms: f64,
    /// A full sync's time: table batch, kube-ipvs0's addresses, IPVS dumps, IPVS operations.
    pub phases_ms: Vec<f64>,
    pub rejected: Vec<RejectedServicePort>,
    pub text: Option<String>,
}

fn report(o: IpvsOutcome, draining: usize) -> IpvsReport {
    IpvsReport {
        full: o.full,
        objects: (o.ipvs_ops + o.table_ops) as u32,
        ipvs_ops: o.ipvs_ops as u32,
        ipvs_failed: o.ipvs_failed as u32,
        first_errno: o.first_failure.as_ref().map(|f| f.0),
        first_failed: o.first_failure.map(|f| f.1),
        table_ops: o.table_ops as u32,
        drift_repaired: o.drift_repaired as u32,
        bytes: o.table_bytes as u32,
        addresses_added: o.addresses_added as u32,
        addresses_deleted: o.addresses_deleted as u32,
        addresses_failed: o.addresses_failed as u32,
        services: o.services as u32,
        destinations: o.destinations as u32,
        draining: draining as u32,
        duration_ms: o.duration_ms,
        phases_ms: o.phases_ms.to_vec(),
        rejected: o.rejected.into_iter().map(|r| RejectedServicePort { key: r.key, reason: r.reason }).collect(),
        text: o.text,
    }
}

type Shared = Arc<Mutex<IpvsSync>>;

fn lock(s: &Shared) -> MutexGuard<'_, IpvsSync> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// A job's report, with the draining real servers it left.
fn done(s: &IpvsSync, out: IpvsOutcome) -> IpvsReport {
    report(out, s.draining().len())
}

#[napi]
pub struct IpvsProxier {
    sync: Shared,
}

#[napi]
impl IpvsProxier {
    #[napi(constructor, catch_unwind)]
    pub fn new(opts: IpvsOptions) -> napi::Result<Self> {
        let (family, detector, masquerade_bit) = common(&opts.family, &opts.local_detector, opts.masquerade_bit)?;
        let mut exclude_cidrs = Vec::new();
        for c in opts.exclude_cidrs.unwrap_or_default() {
            exclude_cidrs.push(c.parse::<Cidr>().map_err(|e| coded(Code::InvalidOption, format!("ipvs excludeCIDRs {c:?}: {e}")))?);
        }
        let mut fake_node = Vec::new();
        for a in opts.fake_node_addresses.unwrap_or_default() {
            fake_node.push(a.parse().map_err(|_| coded(Code::InvalidOption, format!("bad fake node address {a:?}")))?);
        }
        let cfg = IpvsConfig {
            scheduler: opts.scheduler.unwrap_or_default(),
            masquerade_all: opts.masquerade_all.unwrap_or(false),
            masquerade_bit,
            exclude_cidrs,
            ..IpvsConfig::new(detector)
        };
        Ok(Self { sync: Arc::new(Mutex::new(IpvsSync::new(family, cfg, opts.fake.unwrap_or(false), fake_node))) })
    }

    /// Applies the changes: the table in one batch, then addresses and IPVS in hole-free order.
    #[napi(ts_return_type = "Promise<IpvsReport>")]
    pub fn sync(&self, req: SyncRequest) -> AsyncTask<StateTask<IpvsSync, IpvsReport>> {
        AsyncTask::new(StateTask::new(&self.sync, move |s| {
            if let Some(n) = &req.node {
                s.set_node(n.node_port_all, &n.node_port_ips, &n.node_ips).map_err(to_napi)?;
            }
            let out = s.sync(req.full, &req.upserts, &req.deletes, req.explain.unwrap_or(false)).map_err(to_napi)?;
            Ok(done(s, out))
        }))
    }

    /// Deletes draining real servers whose connections have ended.
    #[napi(ts_return_type = "Promise<IpvsReport>")]
    pub fn reap(&self) -> AsyncTask<StateTask<IpvsSync, IpvsReport>> {
        AsyncTask::new(StateTask::new(&self.sync, |s| {
            let out = s.reap().map_err(to_napi)?;
            Ok(done(s, out))
        }))
    }

    /// Between syncs: the first difference between the kernel's virtual servers (or the
    /// table) and what the last sync left, in words; empty when there is none.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn drift(&self) -> AsyncTask<StateTask<IpvsSync, String>> {
        AsyncTask::new(StateTask::new(&self.sync, |s| Ok(s.drift().map_err(to_napi)?.unwrap_or_default())))
    }

    /// Removes this family's table, virtual servers and kube-ipvs0 addresses.
    #[napi(ts_return_type = "Promise<IpvsReport>")]
    pub fn cleanup(&self) -> AsyncTask<StateTask<IpvsSync, IpvsReport>> {
        AsyncTask::new(StateTask::new(&self.sync, |s| {
            let n = s.cleanup().map_err(to_napi)?;
            Ok(done(s, IpvsOutcome { ipvs_ops: n, ..Default::default() }))
        }))
    }

    /// The desired state as canonical text (ipvsadm-save, kube-ipvs0's addresses, nft -f).
    #[napi(catch_unwind)]
    pub fn render(&self) -> String {
        lock(&self.sync).render()
    }

    /// Fails unless the kernel has the configured scheduler (upstream's start-up check).
    #[napi(catch_unwind)]
    pub fn probe_scheduler(&self) -> napi::Result<()> {
        lock(&self.sync).probe_scheduler().map_err(to_napi)
    }

    /// Sets IPVS's TCP, TCP FIN and UDP timeouts (seconds); 0 leaves one as it is.
    #[napi(catch_unwind)]
    pub fn set_timeouts(&self, tcp: u32, tcp_fin: u32, udp: u32) -> napi::Result<()> {
        lock(&self.sync).set_timeouts(&kproxy_ipvs::Timeouts { tcp, tcp_fin, udp }).map_err(to_napi)
    }

    /// Test hook for the fake: the kernel's connection counts of one real server.
    #[napi(catch_unwind)]
    pub fn fake_set_connections(&self, service: String, protocol: u32, dest: String, active: u32, inactive: u32) -> napi::Result<()> {
        let parse = |s: &str| -> napi::Result<(std::net::IpAddr, u16)> {
            let sa: std::net::SocketAddr = s.parse().map_err(|_| coded(Code::InvalidOption, format!("bad address:port {s:?}")))?;
            Ok((sa.ip(), sa.port()))
        };
        let ((sa, sp), (da, dp)) = (parse(&service)?, parse(&dest)?);
        let mut g = lock(&self.sync);
        let Some(f) = g.ipvs_fake() else { return Ok(()) };
        let key = kproxy_ipvs::ServiceKey { addr: sa, protocol: protocol as u8, port: sp };
        f.set_stats(
            &key,
            &kproxy_ipvs::DestKey { addr: da, port: dp },
            kproxy_ipvs::DestStats { active_conns: active, inactive_conns: inactive, persist_conns: 0 },
        );
        Ok(())
    }
}
