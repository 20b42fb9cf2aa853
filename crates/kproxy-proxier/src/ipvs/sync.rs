//! IPVS mode's sync for one family. A full sync rebuilds every part, replaces the table in
//! one batch, and reconciles kube-ipvs0 and IPVS against dumps of the kernel, so it also
//! repairs what others changed. A partial sync rebuilds the changed ServicePorts' parts and
//! sends only their differences: a one-endpoint change is one IPVS message per virtual server
//! for the endpoint that came and one for the one that went. A sync with no changes (the
//! sync period's tick) checks the kernel for drift, as upstream's IPVS mode does each sync.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Instant;

use kproxy_ipvs::{text as ipvs_text, ServiceKey};
use kproxy_nftables::{Cidr, Family, Op as NftOp, Transaction};

use super::backends::{IpvsSide, LinkSide, TableSide};
use super::build::{service_part, Element, IpvsConfig, Part};
use super::counts::push_elements;
use super::reconcile::{diff, Draining, Servers};
use super::table::{firewall_rules, fixed_ops, nodeport_ip, TableShape, TABLE};
use crate::counts::Counts;
use crate::desired::Desired;
use crate::error::ProxierError;
use crate::nftables::layout::NODEPORT_IPS;
use crate::node::NodeAddrs;
use crate::wire::{self, Rejected};

/// What one sync did.
#[derive(Debug, Default, Clone)]
pub struct IpvsOutcome {
    pub full: bool,
    pub ipvs_ops: usize,
    /// IPVS operations and address changes the kernel refused: retried by the next tick.
    pub ipvs_failed: usize,
    pub addresses_failed: usize,
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
    /// Where a full sync's time went: the table batch, kube-ipvs0's addresses, the IPVS
    /// dumps, and the IPVS operations.
    pub phases_ms: [f64; 4],
    /// Virtual servers and real servers programmed after the sync (this family).
    pub services: usize,
    pub destinations: usize,
}

pub struct IpvsSync {
    desired: Desired,
    pub(super) cfg: IpvsConfig,
    parts: BTreeMap<String, Part>,
    elements: Counts<Element>,
    addresses: Counts<IpAddr>,
    firewall: Vec<(IpAddr, u8, u16, Cidr)>,
    node: NodeAddrs,
    /// IPVS as the last sync left it, as far as we know.
    pub(super) view: Servers,
    pub(super) draining: Draining,
    /// The kernel's state is unknown (start, a failed sync): the next sync is full.
    pub(super) needs_full: bool,
    pub(super) ipvs: IpvsSide,
    pub(super) link: LinkSide,
    pub(super) table: TableSide,
}

fn servers_of(parts: &[&Part]) -> Servers {
    let mut want = Servers::new();
    for p in parts {
        for v in &p.servers {
            want.insert(v.service.key, (v.service.clone(), v.dests.iter().map(|d| (d.key, d.clone())).collect()));
        }
    }
    want
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
            elements: Counts::default(),
            addresses: Counts::default(),
            firewall: Vec::new(),
            node: NodeAddrs::default(),
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

    pub fn table_fake(&mut self) -> Option<&mut kproxy_nftables::Fake> {
        match &mut self.table {
            TableSide::Fake(f) => Some(f),
            TableSide::Kernel(_) => None,
        }
    }

    /// The fake kube-ipvs0's addresses (empty for the kernel).
    pub fn fake_link_addresses(&self) -> Vec<IpAddr> {
        match &self.link {
            LinkSide::Fake { addrs, .. } => addrs.iter().copied().collect(),
            LinkSide::Kernel(_) => Vec::new(),
        }
    }

    pub fn set_node(&mut self, nodeports_all: bool, nodeport_ips: &[String], node_ips: &[String]) -> Result<(), ProxierError> {
        if self.desired.node_changed(nodeports_all, nodeport_ips, node_ips)? {
            self.needs_full = true;
        }
        Ok(())
    }

    pub(super) fn shape(&self) -> TableShape {
        TableShape { family: self.family(), nodeports_all: self.desired.node().nodeports_all }
    }

    /// Applies the changes (wire text) and programs them.
    pub fn sync(&mut self, full: bool, upserts: &str, deletes: &[String], explain: bool) -> Result<IpvsOutcome, ProxierError> {
        let start = Instant::now();
        let (records, mut rejected) = wire::decode(upserts)?;
        rejected.extend(if full { self.desired.replace_all(&records) } else { self.desired.update(&records, deletes) });
        let dirty = self.desired.take_dirty();
        let full = full || self.needs_full;
        // A sync that fails midway leaves the kernel unknown: the next one is full.
        self.needs_full = true;
        let mut out = match () {
            _ if full => self.full_sync()?,
            _ if dirty.is_empty() => self.tick()?,
            _ => self.partial_sync(&dirty)?,
        };
        // Refused operations are not: the next tick's dumps find and retry them.
        self.needs_full = false;
        out.rejected = rejected;
        out.services = self.view.len();
        out.destinations = self.view.values().map(|(_, d)| d.len()).sum();
        if explain {
            out.text = Some(self.render());
        }
        out.duration_ms = start.elapsed().as_secs_f64() * 1e3;
        Ok(out)
    }

    /// The node's addresses now (one rtnetlink dump).
    fn node_addrs(&mut self) -> Result<NodeAddrs, ProxierError> {
        let local = self.link.node_addresses()?;
        Ok(NodeAddrs::resolve(self.family(), local, self.desired.node()))
    }

    fn all_firewall(&self) -> Vec<(IpAddr, u8, u16, Cidr)> {
        self.parts.values().flat_map(|p| p.allowed.iter().copied()).collect()
    }

    fn full_transaction(&self) -> Transaction {
        let mut tx = Transaction::new(self.family(), TABLE);
        let fixed = fixed_ops(&self.cfg, &self.shape());
        // Ensure, delete, recreate: one atomic replace whether or not the table exists.
        tx.push(fixed[0].clone());
        tx.push(NftOp::DeleteTable);
        tx.ops.extend(fixed);
        if !self.shape().nodeports_all && !self.node.nodeport.is_empty() {
            tx.push(NftOp::AddElements { set: NODEPORT_IPS.into(), elems: self.node.nodeport.iter().map(|ip| nodeport_ip(*ip)).collect() });
        }
        push_elements(&mut tx, self.elements.keys(), true);
        tx.ops.extend(firewall_rules(&self.firewall));
        tx
    }

    fn full_sync(&mut self) -> Result<IpvsOutcome, ProxierError> {
        let mut out = IpvsOutcome { full: true, ..Default::default() };
        self.node = self.node_addrs()?;
        self.parts = self.desired.values().map(|sp| (sp.key.clone(), service_part(&self.cfg, sp, &self.node))).collect();
        self.elements.clear();
        self.addresses.clear();
        for p in self.parts.values() {
            p.elements.iter().for_each(|e| self.elements.add(e));
            p.addresses.iter().for_each(|a| self.addresses.add(a));
        }
        self.firewall = self.all_firewall();
        let tx = self.full_transaction();
        out.table_ops = tx.ops.len();
        let t = Instant::now();
        out.table_bytes = self.table.commit(&tx)?;
        out.phases_ms[0] = t.elapsed().as_secs_f64() * 1e3;
        self.reconcile_kernel(&mut out)?;
        Ok(out)
    }

    /// Nothing changed: a node address that came or went, or a table someone deleted, calls
    /// for a full sync; else IPVS and kube-ipvs0 are checked against the kernel's dumps.
    fn tick(&mut self) -> Result<IpvsOutcome, ProxierError> {
        if self.node_addrs()? != self.node || !self.table.exists(self.family())? {
            return self.full_sync();
        }
        let mut out = IpvsOutcome::default();
        self.reconcile_kernel(&mut out)?;
        Ok(out)
    }

    /// kube-ipvs0 and IPVS against dumps of the kernel: what others changed is put back.
    fn reconcile_kernel(&mut self, out: &mut IpvsOutcome) -> Result<(), ProxierError> {
        let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let index = self.link.ensure()?;
        let family = self.family();
        let on_link: BTreeSet<IpAddr> = self.link.addresses(index)?.into_iter().filter(|a| Family::of(a) == family).collect();
        let add: Vec<IpAddr> = self.addresses.keys().filter(|a| !on_link.contains(a)).copied().collect();
        let stale: Vec<IpAddr> = on_link.iter().filter(|a| !self.addresses.contains(a)).copied().collect();
        out.addresses_failed += self.link.change(index, &add, &[])?;
        out.addresses_added = add.len();
        out.phases_ms[1] = ms(t);

        let t = Instant::now();
        let have = self.dump()?;
        out.phases_ms[2] = ms(t);
        let want = servers_of(&self.parts.values().collect::<Vec<_>>());
        // A draining real server the kernel no longer has is forgotten.
        self.draining.retain(|(s, d)| have.get(s).is_some_and(|(_, ds)| ds.contains_key(d)));
        let scope: BTreeSet<ServiceKey> = want.keys().chain(have.keys()).copied().collect();
        let ops = diff(&want, &have, &scope, &mut self.draining);
        // Anything to do outside a full sync is drift: someone else changed the kernel.
        if !out.full {
            out.drift_repaired = ops.len() + add.len() + stale.len();
        }
        self.view = have;
        let t = Instant::now();
        self.apply(&ops, out)?;
        out.phases_ms[3] = ms(t);
        self.reap_into(out)?;
        out.addresses_failed += self.link.change(index, &[], &stale)?;
        out.addresses_deleted = stale.len();
        Ok(())
    }

    fn partial_sync(&mut self, dirty: &BTreeSet<String>) -> Result<IpvsOutcome, ProxierError> {
        let mut out = IpvsOutcome::default();
        let mut element_delta: BTreeMap<Element, i64> = BTreeMap::new();
        let mut address_delta: BTreeMap<IpAddr, i64> = BTreeMap::new();
        let mut scope = BTreeSet::new();
        let mut firewall_touched = false;
        let mut rebuilt = Vec::new();
        for key in dirty {
            let old = self.parts.remove(key);
            let new = self.desired.get(key).map(|sp| service_part(&self.cfg, sp, &self.node));
            for (part, sign) in [(&old, -1i64), (&new, 1)] {
                let Some(p) = part else { continue };
                firewall_touched |= !p.allowed.is_empty();
                p.elements.iter().for_each(|e| *element_delta.entry(e.clone()).or_default() += sign);
                p.addresses.iter().for_each(|a| *address_delta.entry(*a).or_default() += sign);
                scope.extend(p.servers.iter().map(|v| v.service.key));
            }
            if let Some(p) = new {
                self.parts.insert(key.clone(), p);
                rebuilt.push(key);
            }
        }
        // (One owner per address and port, desired.rs: only the rebuilt parts hold these keys.)
        let want = servers_of(&rebuilt.iter().filter_map(|k| self.parts.get(*k)).collect::<Vec<_>>());
        let (add_e, del_e) = self.elements.apply(element_delta);
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

        let (add_a, del_a) = self.addresses.apply(address_delta);
        let index = self.link.ensure()?;
        if !add_a.is_empty() {
            out.addresses_failed += self.link.change(index, &add_a, &[])?;
        }
        // Draining real servers are left to `reap` (the agent's timer): a change stays one
        // message per real server added or removed.
        let ops = diff(&want, &self.view, &scope, &mut self.draining);
        self.apply(&ops, &mut out)?;
        if !del_a.is_empty() {
            out.addresses_failed += self.link.change(index, &[], &del_a)?;
        }
        out.addresses_added = add_a.len();
        out.addresses_deleted = del_a.len();
        Ok(out)
    }

    /// The desired state as canonical text: IPVS in `ipvsadm-save -n` form, kube-ipvs0's
    /// addresses, then the table as `nft -f` text.
    pub fn render(&self) -> String {
        let want = servers_of(&self.parts.values().collect::<Vec<_>>());
        let servers: Vec<_> = want.into_values().map(|(s, d)| (s, d.into_values().collect())).collect();
        let mut out = ipvs_text::render(&servers);
        out.push_str(&format!("# {}\n", super::backends::DUMMY));
        for a in self.addresses.keys() {
            out.push_str(&format!("{a}\n"));
        }
        out.push_str(&kproxy_nftables::text::render_tx(&self.full_transaction()));
        out
    }
}
