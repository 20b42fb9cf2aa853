//! IPVS mode's sync for one family. A full sync rebuilds every part, replaces the table in
//! one batch, and reconciles kube-ipvs0 and IPVS against dumps of the kernel, so it also
//! repairs what others changed. A partial sync rebuilds the changed ServicePorts' parts and
//! sends only their differences: a one-endpoint change is one IPVS message per virtual server.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Instant;

use kproxy_ipvs::{text as ipvs_text, DestKey, Op, ServiceKey};
use kproxy_nftables::{Cidr, Family, Op as NftOp, Transaction};

use super::backends::{IpvsSide, LinkSide, TableSide};
use super::build::{allowed_with_node, service_part, Element, IpvsConfig, Part};
use super::reconcile::{diff, drained, record, Draining, Servers};
use super::table::{element, firewall_rules, fixed_ops, nodeport_ip, TableShape, TABLE};
use crate::desired::Desired;
use crate::error::{Code, ProxierError};
use crate::nftables::layout::NODEPORT_IPS;
use crate::wire::{self, Rejected};

/// What one sync did.
#[derive(Debug, Default, Clone)]
pub struct IpvsOutcome {
    pub full: bool,
    pub ipvs_ops: usize,
    pub ipvs_failed: usize,
    /// The errno of the first refused IPVS operation, and the operation (ipvsadm's syntax).
    pub first_failure: Option<(i32, String)>,
    pub table_ops: usize,
    /// A sync with no changes found and repaired this many differences in the kernel.
    pub drift_repaired: usize,
    pub table_bytes: usize,
    pub addresses_added: usize,
    pub addresses_deleted: usize,
    pub duration_ms: f64,
    pub rejected: Vec<Rejected>,
    pub text: Option<String>,
    /// Virtual servers and real servers programmed after the sync (this family).
    pub services: usize,
    pub destinations: usize,
}

/// How many parts hold each element or address (several ServicePorts share a ClusterIP).
type Counts<K> = BTreeMap<K, u32>;

pub struct IpvsSync {
    desired: Desired,
    cfg: IpvsConfig,
    parts: BTreeMap<String, Part>,
    elements: Counts<Element>,
    addresses: Counts<IpAddr>,
    firewall: Vec<(IpAddr, u8, u16, Cidr)>,
    nodeport_addrs: Vec<IpAddr>,
    /// IPVS as the last sync left it, as far as we know.
    view: Servers,
    draining: Draining,
    /// The kernel's state is unknown (start, or something failed): the next sync is full.
    needs_full: bool,
    ipvs: IpvsSide,
    link: LinkSide,
    table: TableSide,
}

fn count<K: Ord + Clone>(counts: &mut Counts<K>, k: &K, up: bool) -> bool {
    if up {
        let n = counts.entry(k.clone()).or_insert(0);
        *n += 1;
        *n == 1
    } else {
        match counts.get_mut(k) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                counts.remove(k);
                true
            }
            None => false,
        }
    }
}

impl IpvsSync {
    /// `fake`: in-memory IPVS, addresses and table, with `fake_node_addresses` as the node's.
    pub fn new(family: Family, cfg: IpvsConfig, fake: bool, fake_node_addresses: Vec<IpAddr>) -> Self {
        let (ipvs, link, table) = if fake {
            (IpvsSide::Fake(Default::default()), LinkSide::fake(fake_node_addresses), TableSide::Fake(Default::default()))
        } else {
            (IpvsSide::Kernel(None), LinkSide::Kernel(None), TableSide::Kernel(None))
        };
        Self {
            desired: Desired::new(family),
            cfg,
            parts: BTreeMap::new(),
            elements: Counts::new(),
            addresses: Counts::new(),
            firewall: Vec::new(),
            nodeport_addrs: Vec::new(),
            view: Servers::new(),
            draining: Draining::new(),
            needs_full: true,
            ipvs,
            link,
            table,
        }
    }

    pub fn family(&self) -> Family {
        self.desired.family()
    }

    pub fn desired(&self) -> &Desired {
        &self.desired
    }

    pub fn ipvs_fake(&mut self) -> Option<&mut kproxy_ipvs::Fake> {
        match &mut self.ipvs {
            IpvsSide::Fake(f) => Some(f),
            IpvsSide::Kernel(_) => None,
        }
    }

    pub fn set_node(&mut self, nodeports_all: bool, nodeport_ips: &[String], node_ips: &[String]) -> Result<(), ProxierError> {
        let before = self.desired.node().clone();
        self.desired.set_node(nodeports_all, nodeport_ips, node_ips).map_err(|e| ProxierError::new(Code::InvalidOption, e))?;
        if *self.desired.node() != before {
            self.needs_full = true;
        }
        Ok(())
    }

    fn shape(&self) -> TableShape {
        TableShape { family: self.family(), nodeports_all: self.desired.node().nodeports_all }
    }

    fn ours(&self, ip: &IpAddr) -> bool {
        Family::of(ip) == self.family() && !self.cfg.excluded(ip)
    }

    /// Applies the changes (wire text) and programs them.
    pub fn sync(&mut self, full: bool, upserts: &str, deletes: &[String], explain: bool) -> Result<IpvsOutcome, ProxierError> {
        let start = Instant::now();
        let (records, mut rejected) = wire::decode(upserts)?;
        rejected.extend(if full { self.desired.replace_all(&records) } else { self.desired.update(&records, deletes) });
        let dirty = self.desired.take_dirty();
        let full = full || self.needs_full;
        // Whatever fails below leaves the kernel in an unknown state: the next sync repairs it.
        self.needs_full = true;
        let mut out = match () {
            _ if full => self.full_sync()?,
            // Nothing changed (the sync period's tick): check the kernel for drift, as
            // upstream's IPVS mode does on every sync.
            _ if dirty.is_empty() => {
                let mut out = IpvsOutcome::default();
                self.reconcile_kernel(&mut out)?;
                out.drift_repaired = out.ipvs_ops + out.addresses_added + out.addresses_deleted;
                out
            }
            _ => self.partial_sync(&dirty)?,
        };
        self.needs_full = out.ipvs_failed > 0;
        out.rejected = rejected;
        out.full = full;
        out.services = self.view.len();
        out.destinations = self.view.values().map(|(_, d)| d.len()).sum();
        if explain {
            out.text = Some(self.render());
        }
        out.duration_ms = start.elapsed().as_secs_f64() * 1e3;
        Ok(out)
    }

    fn part_of(&self, key: &str) -> Option<Part> {
        self.desired.get(key).map(|sp| service_part(&self.cfg, sp, &self.nodeport_addrs))
    }

    fn nodeport_addrs(&mut self) -> Result<Vec<IpAddr>, ProxierError> {
        let node = self.desired.node();
        let v = if node.nodeports_all { self.link.node_addresses()? } else { node.nodeport_ips.clone() };
        Ok(v.into_iter().filter(|ip| Family::of(ip) == self.family()).collect())
    }

    fn all_firewall(&self) -> Vec<(IpAddr, u8, u16, Cidr)> {
        let node_ips = &self.desired.node().node_ips;
        self.parts.values().filter(|p| !p.allowed.is_empty()).flat_map(|p| allowed_with_node(p, node_ips)).collect()
    }

    fn want(&self) -> Servers {
        let mut want = Servers::new();
        for p in self.parts.values() {
            for v in &p.servers {
                want.insert(v.service.key, (v.service.clone(), v.dests.iter().map(|d| (d.key, d.clone())).collect()));
            }
        }
        want
    }

    fn full_transaction(&self) -> Transaction {
        let mut tx = Transaction::new(self.family(), TABLE);
        let fixed = fixed_ops(&self.cfg, &self.shape());
        // Ensure, delete, recreate: one atomic replace whether or not the table exists.
        tx.push(fixed[0].clone());
        tx.push(NftOp::DeleteTable);
        tx.ops.extend(fixed);
        if !self.shape().nodeports_all && !self.nodeport_addrs.is_empty() {
            tx.push(NftOp::AddElements {
                set: NODEPORT_IPS.into(),
                elems: self.nodeport_addrs.iter().map(|ip| nodeport_ip(*ip)).collect(),
            });
        }
        push_elements(&mut tx, self.elements.keys(), true);
        tx.ops.extend(firewall_rules(&self.firewall));
        tx
    }

    fn full_sync(&mut self) -> Result<IpvsOutcome, ProxierError> {
        let mut out = IpvsOutcome::default();
        self.nodeport_addrs = self.nodeport_addrs()?;
        self.parts = self.desired.values().map(|sp| (sp.key.clone(), service_part(&self.cfg, sp, &self.nodeport_addrs))).collect();
        self.elements.clear();
        self.addresses.clear();
        for p in self.parts.values() {
            for e in &p.elements {
                count(&mut self.elements, e, true);
            }
            for a in &p.addresses {
                count(&mut self.addresses, a, true);
            }
        }
        self.firewall = self.all_firewall();
        let tx = self.full_transaction();
        out.table_ops = tx.ops.len();
        out.table_bytes = self.table.commit(&tx)?;
        self.reconcile_kernel(&mut out)?;
        Ok(out)
    }

    /// kube-ipvs0 and IPVS against dumps of the kernel: what others changed is put back.
    fn reconcile_kernel(&mut self, out: &mut IpvsOutcome) -> Result<(), ProxierError> {
        let index = self.link.ensure()?;
        let family = self.family();
        let on_link: BTreeSet<IpAddr> = self.link.addresses(index)?.into_iter().filter(|a| Family::of(a) == family).collect();
        let add: Vec<IpAddr> = self.addresses.keys().filter(|a| !on_link.contains(a)).copied().collect();
        let stale: Vec<IpAddr> = on_link.iter().filter(|a| !self.addresses.contains_key(a)).copied().collect();
        self.link.change(index, &add, &[])?;
        out.addresses_added = add.len();

        let have = self.dump()?;
        let want = self.want();
        // A draining real server the kernel no longer has is forgotten.
        self.draining.retain(|(s, d)| have.get(s).is_some_and(|(_, ds)| ds.contains_key(d)));
        let scope: BTreeSet<ServiceKey> = want.keys().chain(have.keys()).copied().collect();
        let ops = diff(&want, &have, &scope, &mut self.draining);
        self.view = have;
        self.apply(&ops, out)?;
        self.reap_into(out)?;
        self.link.change(index, &[], &stale)?;
        out.addresses_deleted = stale.len();
        Ok(())
    }

    fn partial_sync(&mut self, dirty: &BTreeSet<String>) -> Result<IpvsOutcome, ProxierError> {
        let mut out = IpvsOutcome::default();
        let mut element_delta: BTreeMap<Element, i64> = BTreeMap::new();
        let mut address_delta: BTreeMap<IpAddr, i64> = BTreeMap::new();
        let mut scope = BTreeSet::new();
        let mut want = Servers::new();
        let mut firewall_touched = false;
        for key in dirty {
            let old = self.parts.remove(key);
            let new = self.part_of(key);
            for (part, sign) in [(&old, -1i64), (&new, 1)] {
                let Some(p) = part else { continue };
                firewall_touched |= !p.allowed.is_empty();
                for e in &p.elements {
                    *element_delta.entry(e.clone()).or_default() += sign;
                }
                for a in &p.addresses {
                    *address_delta.entry(*a).or_default() += sign;
                }
                scope.extend(p.servers.iter().map(|v| v.service.key));
            }
            if let Some(p) = new {
                for v in &p.servers {
                    want.insert(v.service.key, (v.service.clone(), v.dests.iter().map(|d| (d.key, d.clone())).collect()));
                }
                self.parts.insert(key.clone(), p);
            }
        }
        let (mut add_e, mut del_e) = (Vec::new(), Vec::new());
        for (e, d) in element_delta.into_iter().filter(|(_, d)| *d != 0) {
            for _ in 0..d.unsigned_abs() {
                if count(&mut self.elements, &e, d > 0) {
                    if d > 0 {
                        add_e.push(e.clone())
                    } else {
                        del_e.push(e.clone())
                    }
                }
            }
        }
        let mut tx = Transaction::new(self.family(), TABLE);
        push_elements(&mut tx, del_e.iter(), false);
        push_elements(&mut tx, add_e.iter(), true);
        if firewall_touched {
            let fw = self.all_firewall();
            if fw != self.firewall {
                tx.ops.extend(firewall_rules(&fw));
                self.firewall = fw;
            }
        }
        out.table_ops = tx.ops.len();
        out.table_bytes = self.table.commit(&tx)?;

        let (mut add_a, mut del_a) = (Vec::new(), Vec::new());
        for (a, d) in address_delta.into_iter().filter(|(_, d)| *d != 0) {
            for _ in 0..d.unsigned_abs() {
                if count(&mut self.addresses, &a, d > 0) {
                    if d > 0 {
                        add_a.push(a)
                    } else {
                        del_a.push(a)
                    }
                }
            }
        }
        let index = self.link.ensure()?;
        if !add_a.is_empty() {
            self.link.change(index, &add_a, &[])?;
        }
        let ops = diff(&want, &self.view, &scope, &mut self.draining);
        // Draining real servers are left to `reap` (the agent's timer): a change stays one
        // message per real server added or removed.
        self.apply(&ops, &mut out)?;
        if !del_a.is_empty() {
            self.link.change(index, &[], &del_a)?;
        }
        out.addresses_added = add_a.len();
        out.addresses_deleted = del_a.len();
        Ok(out)
    }

    fn apply(&mut self, ops: &[Op], out: &mut IpvsOutcome) -> Result<(), ProxierError> {
        if ops.is_empty() {
            return Ok(());
        }
        let results = self.ipvs.get()?.apply(ops).map_err(super::backends::ipvs_error)?;
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
    fn dump(&mut self) -> Result<Servers, ProxierError> {
        let family = self.family();
        let excluded: Vec<Cidr> = self.cfg.exclude_cidrs.clone();
        let ipvs = self.ipvs.get()?;
        let mut have = Servers::new();
        for s in ipvs.services().map_err(super::backends::ipvs_error)? {
            if Family::of(&s.key.addr) != family || excluded.iter().any(|c| c.contains(&s.key.addr)) {
                continue;
            }
            let dests = ipvs.destinations(&s.key).map_err(super::backends::ipvs_error)?;
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

    fn reap_into(&mut self, out: &mut IpvsOutcome) -> Result<(), ProxierError> {
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

    /// `--ipvs-tcp-timeout` and friends; a 0 leaves the kernel's value.
    pub fn set_timeouts(&mut self, t: &kproxy_ipvs::Timeouts) -> Result<(), ProxierError> {
        self.ipvs.get()?.set_timeouts(t).map_err(super::backends::ipvs_error)
    }

    /// Real servers draining now, as (virtual server, real server).
    pub fn draining(&self) -> Vec<(ServiceKey, DestKey)> {
        self.draining.iter().copied().collect()
    }

    /// The desired state as canonical text: IPVS in `ipvsadm-save -n` form, kube-ipvs0's
    /// addresses, then the table as `nft -f` text.
    pub fn render(&self) -> String {
        let servers: Vec<_> = self.want().into_values().map(|(s, d)| (s, d.into_values().collect())).collect();
        let mut out = ipvs_text::render(&servers);
        out.push_str(&format!("# {}\n", super::backends::DUMMY));
        for a in self.addresses.keys() {
            out.push_str(&format!("{a}\n"));
        }
        out.push_str(&kproxy_nftables::text::render_tx(&self.full_transaction()));
        out
    }

    /// Removes this family's table, virtual servers and kube-ipvs0 addresses (`--cleanup`,
    /// a mode switch): the virtual servers on kube-ipvs0's addresses or on NodePort-range
    /// ports, outside the excluded ranges. Deletes kube-ipvs0 when it holds nothing else.
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
        let mut deleted = 0;
        match self.ipvs.get() {
            Ok(ipvs) => {
                let services = ipvs.services().map_err(super::backends::ipvs_error)?;
                let ours: Vec<Op> = services
                    .into_iter()
                    .filter(|s| self.ours(&s.key.addr) && (on_link.contains(&s.key.addr) || (30000..=32767).contains(&s.key.port)))
                    .map(|s| Op::DeleteService(s.key))
                    .collect();
                deleted = ours.len();
                if !ours.is_empty() {
                    self.ipvs.get()?.apply(&ours).map_err(super::backends::ipvs_error)?;
                }
            }
            // No IPVS: no virtual servers to remove.
            Err(e) if e.code == Code::InvalidOption => {}
            Err(e) => return Err(e),
        }
        if let Some(i) = index {
            let family = self.family();
            let mine: Vec<IpAddr> = on_link.iter().filter(|a| Family::of(a) == family).copied().collect();
            self.link.change(i, &[], &mine)?;
            if on_link.len() == mine.len() {
                self.link.delete()?;
            }
        }
        self.view.clear();
        self.draining.clear();
        self.needs_full = true;
        Ok(deleted)
    }
}

/// Adds (or deletes) the elements, one op per set.
fn push_elements<'a>(tx: &mut Transaction, elements: impl Iterator<Item = &'a Element>, add: bool) {
    let mut by_set: BTreeMap<&'static str, Vec<kproxy_nftables::Element>> = BTreeMap::new();
    for e in elements {
        let (set, el) = element(e);
        by_set.entry(set).or_default().push(el);
    }
    for (set, elems) in by_set {
        tx.push(if add {
            NftOp::AddElements { set: set.into(), elems }
        } else {
            NftOp::DeleteElements { set: set.into(), keys: elems.into_iter().map(|e| e.key).collect() }
        });
    }
}
