//! What IPVS mode does to the kernel besides planning: sending operations and keeping the
//! view, dumps, draining, the start-up checks, and cleanup.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use kproxy_ipvs::{text as ipvs_text, DestKey, Op, ServiceKey};
use kproxy_nftables::{Family, Op as NftOp, Transaction};

use super::backends::ipvs_error;
use super::reconcile::{drained, record, Servers};
use super::sync::{IpvsOutcome, IpvsSync};
use super::table::{fixed_ops, TABLE};
use crate::error::{Code, ProxierError};

const EEXIST: i32 = 17;
/// kube-proxy's default --service-node-port-range: cleanup takes virtual servers on node
/// addresses only on these ports.
const NODEPORT_RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;

impl IpvsSync {
    /// Sends `ops`; the ones that succeeded go into the view, the first refusal is noted.
    pub(super) fn apply(&mut self, ops: &[Op], out: &mut IpvsOutcome) -> Result<(), ProxierError> {
        if ops.is_empty() {
            return Ok(());
        }
        let results = self.ipvs.get()?.apply(ops).map_err(ipvs_error)?;
        record(&mut self.view, ops, &results);
        if out.first_failure.is_none() {
            if let Some((op, Err(errno))) = ops.iter().zip(&results).find(|(_, r)| r.is_err()) {
                out.first_failure = Some((*errno, ipvs_text::render_ops(std::slice::from_ref(op)).trim_end().to_string()));
            }
        }
        out.ipvs_ops += ops.len();
        out.ipvs_failed += results.iter().filter(|r| r.is_err()).count();
        Ok(())
    }

    /// Every virtual server of this family outside the excluded ranges, with its real servers.
    pub(super) fn dump(&mut self) -> Result<Servers, ProxierError> {
        let family = self.family();
        let excluded = self.cfg.exclude_cidrs.clone();
        let ipvs = self.ipvs.get()?;
        let mut have = Servers::new();
        for s in ipvs.services().map_err(ipvs_error)? {
            if Family::of(&s.key.addr) != family || excluded.iter().any(|c| c.contains(&s.key.addr)) {
                continue;
            }
            let dests = ipvs.destinations(&s.key).map_err(ipvs_error)?;
            have.insert(s.key, (s, dests.into_iter().map(|d| (d.dest.key, d.dest)).collect()));
        }
        Ok(have)
    }

    /// Deletes draining real servers whose connections have ended (upstream checks each minute).
    pub fn reap(&mut self) -> Result<IpvsOutcome, ProxierError> {
        let mut out = IpvsOutcome::default();
        self.reap_into(&mut out)?;
        Ok(out)
    }

    pub(super) fn reap_into(&mut self, out: &mut IpvsOutcome) -> Result<(), ProxierError> {
        if self.draining.is_empty() {
            return Ok(());
        }
        let services: BTreeSet<ServiceKey> = self.draining.iter().map(|(s, _)| *s).collect();
        let mut stats = BTreeMap::new();
        let ipvs = self.ipvs.get()?;
        for s in services {
            // A service that is gone has no draining servers left.
            let Ok(dests) = ipvs.destinations(&s) else { continue };
            for d in dests {
                stats.insert((s, d.dest.key), d.stats);
            }
        }
        let ops = drained(&mut self.draining, &stats);
        self.apply(&ops, out)
    }

    /// Real servers draining now, as (virtual server, real server).
    pub fn draining(&self) -> Vec<(ServiceKey, DestKey)> {
        self.draining.iter().copied().collect()
    }

    /// Whether the kernel has the configured scheduler, as upstream checks at start: a
    /// throwaway virtual server (TEST-NET-2 port 20000, as upstream's) made and deleted.
    pub fn probe_scheduler(&mut self) -> Result<(), ProxierError> {
        let addr = if self.family() == Family::Ip { "198.51.100.0" } else { "2001:db8::" };
        let key = ServiceKey { addr: addr.parse().expect("literal"), protocol: 6, port: 20000 };
        let scheduler = self.cfg.scheduler().to_string();
        let ipvs = self.ipvs.get()?;
        let r = ipvs.apply(&[Op::AddService(kproxy_ipvs::Service::new(key, &scheduler))]).map_err(ipvs_error)?;
        match r.first() {
            Some(Ok(())) => {
                let _ = ipvs.apply(&[Op::DeleteService(key)]);
                Ok(())
            }
            Some(Err(errno)) => Err(ProxierError {
                code: Code::InvalidOption,
                message: if *errno == EEXIST {
                    format!("IPVS already has the virtual server {addr} port 20000 that the scheduler check uses; remove it")
                } else {
                    format!("the kernel refused IPVS scheduler {scheduler:?} (errno {errno}): is its module (ip_vs_{scheduler}) there?")
                },
                errno: Some(*errno),
            }),
            None => Err(ProxierError::new(Code::NoAck, "no answer to the IPVS scheduler check")),
        }
    }

    /// `--ipvs-tcp-timeout` and friends; a 0 leaves the kernel's value.
    pub fn set_timeouts(&mut self, t: &kproxy_ipvs::Timeouts) -> Result<(), ProxierError> {
        self.ipvs.get()?.set_timeouts(t).map_err(ipvs_error)
    }

    /// Removes this family's table, virtual servers and kube-ipvs0 addresses (`--cleanup`,
    /// a mode switch). kproxy's virtual servers are those on kube-ipvs0's addresses, or on a
    /// node address at a NodePort-range port, outside the excluded ranges. kube-ipvs0 goes
    /// when it holds nothing else (deleting the link is also far faster than its addresses).
    pub fn cleanup(&mut self) -> Result<usize, ProxierError> {
        let mut tx = Transaction::new(self.family(), TABLE);
        tx.push(fixed_ops(&self.cfg, &self.shape())[0].clone());
        tx.push(NftOp::DeleteTable);
        self.table.commit(&tx)?;
        let index = self.link.find()?;
        let on_link = match index {
            Some(i) => self.link.addresses(i)?,
            None => Vec::new(),
        };
        let node = self.link.node_addresses()?;
        let family = self.family();
        let ours = |ip: &IpAddr, port: u16| {
            Family::of(ip) == family
                && !self.cfg.excluded(ip)
                && (on_link.contains(ip) || (node.contains(ip) && NODEPORT_RANGE.contains(&port)))
        };
        let mut deleted = 0;
        match self.ipvs.get() {
            Ok(ipvs) => {
                let services = ipvs.services().map_err(ipvs_error)?;
                let gone: Vec<Op> =
                    services.into_iter().filter(|s| ours(&s.key.addr, s.key.port)).map(|s| Op::DeleteService(s.key)).collect();
                deleted = gone.len();
                if !gone.is_empty() {
                    self.ipvs.get()?.apply(&gone).map_err(ipvs_error)?;
                }
            }
            // No IPVS in this kernel: no virtual servers to remove.
            Err(e) if e.code == Code::InvalidOption => {}
            Err(e) => return Err(e),
        }
        if let Some(i) = index {
            let mine: Vec<IpAddr> = on_link.iter().filter(|a| Family::of(a) == family).copied().collect();
            if on_link.len() == mine.len() {
                self.link.delete()?;
            } else {
                self.link.change(i, &[], &mine)?;
            }
        }
        self.view.clear();
        self.draining.clear();
        self.needs_full = true;
        Ok(deleted)
    }
}
