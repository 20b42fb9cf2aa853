//! userspace mode's sync for one family. Each ServicePort's part is rebuilt when it
//! changes, and only its differences reach the proxy and the link, in an order with no
//! gap: addresses first, then Services, then frontends opened; frontends closed, then
//! Services, then addresses last. A sync with no changes (the sync period's tick)
//! re-reads the node's addresses, puts back link addresses someone removed, and retries
//! frontends that could not listen.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Instant;

use kproxy_nftables::Family;
use kproxy_userspace::{Frontend, FrontendKey, LocalSources, Prefix, ServiceSpec, Snapshot};

use super::build::{service_part, Part, UserspaceConfig};
use super::link::VipLink;
use super::proxy::ProxySide;
use super::text;
use crate::counts::Counts;
use crate::desired::Desired;
use crate::error::ProxierError;
use crate::local::LocalDetector;
use crate::node::NodeAddrs;
use crate::wire::{self, Rejected};

#[derive(Debug, Default, Clone)]
pub struct UserspaceOutcome {
    pub full: bool,
    /// Services and frontends of this family in the proxy after the sync.
    pub services: usize,
    pub frontends: usize,
    pub opened: usize,
    pub closed: usize,
    /// Frontends wanted but not listening after the sync (address in use, say): retried
    /// at every sync.
    pub listen_failed: usize,
    /// The first listen failure: its errno (0 when none) and the reason.
    pub first_failure: Option<(i32, String)>,
    pub addresses_added: usize,
    pub addresses_deleted: usize,
    pub addresses_failed: usize,
    /// Link addresses someone else removed or added, put right.
    pub drift_repaired: usize,
    /// ServicePorts of a protocol the mode cannot proxy (SCTP), by name.
    pub skipped: Vec<String>,
    pub duration_ms: f64,
    pub rejected: Vec<Rejected>,
    pub text: Option<String>,
}

pub struct UserspaceSync {
    desired: Desired,
    cfg: UserspaceConfig,
    parts: BTreeMap<String, Part>,
    addresses: Counts<IpAddr>,
    node: NodeAddrs,
    proxy: ProxySide,
    link: VipLink,
    unopened: BTreeSet<FrontendKey>,
    /// Frontends the parts want, kept as they change (a sum over 10k parts costs a partial sync).
    wanted_frontends: usize,
    /// The node's or the Service addresses changed since the proxy last had its local sources.
    local_stale: bool,
    needs_full: bool,
}

/// One sync's differences, applied in `UserspaceSync::apply`'s order.
#[derive(Default)]
struct Changes {
    addresses: BTreeMap<IpAddr, i64>,
    services: Vec<ServiceSpec>,
    open: Vec<(FrontendKey, Frontend)>,
    close: Vec<FrontendKey>,
    removed: Vec<String>,
}

impl Changes {
    fn diff(&mut self, old: Option<&Part>, new: Option<&Part>) {
        for a in old.iter().flat_map(|p| &p.addresses) {
            *self.addresses.entry(*a).or_default() -= 1;
        }
        for a in new.iter().flat_map(|p| &p.addresses) {
            *self.addresses.entry(*a).or_default() += 1;
        }
        match (old, new) {
            (_, Some(n)) if old.map(|o| &o.service) != Some(&n.service) => self.services.push(n.service.clone()),
            (Some(o), None) => self.removed.push(o.service.name.clone()),
            _ => {}
        }
        let empty = BTreeMap::new();
        let (was, now) = (old.map_or(&empty, |p| &p.frontends), new.map_or(&empty, |p| &p.frontends));
        self.open.extend(now.iter().filter(|(k, f)| was.get(k) != Some(f)).map(|(k, f)| (*k, f.clone())));
        self.close.extend(was.keys().filter(|k| !now.contains_key(k)));
    }
}

impl UserspaceSync {
    pub fn new(family: Family, cfg: UserspaceConfig, proxy: ProxySide, link: VipLink) -> Self {
        Self {
            desired: Desired::new(family),
            cfg,
            parts: BTreeMap::new(),
            addresses: Counts::default(),
            node: NodeAddrs::default(),
            proxy,
            link,
            unopened: BTreeSet::new(),
            wanted_frontends: 0,
            local_stale: true,
            needs_full: true,
        }
    }

    pub fn family(&self) -> Family {
        self.desired.family()
    }

    pub fn proxy(&mut self) -> &mut ProxySide {
        &mut self.proxy
    }

    pub fn link(&mut self) -> &mut VipLink {
        &mut self.link
    }

    pub fn set_node(&mut self, nodeports_all: bool, nodeport_ips: &[String], node_ips: &[String]) -> Result<(), ProxierError> {
        if self.desired.node_changed(nodeports_all, nodeport_ips, node_ips)? {
            self.needs_full = true;
        }
        Ok(())
    }

    fn node_addrs(&mut self) -> Result<NodeAddrs, ProxierError> {
        let local = self.link.node_addresses()?;
        Ok(NodeAddrs::resolve(self.family(), local, self.desired.node()))
    }

    pub fn sync(&mut self, full: bool, upserts: &str, deletes: &[String], explain: bool) -> Result<UserspaceOutcome, ProxierError> {
        let start = Instant::now();
        self.proxy.start()?;
        let (records, mut rejected) = wire::decode(upserts)?;
        rejected.extend(if full { self.desired.replace_all(&records) } else { self.desired.update(&records, deletes) });
        let dirty = self.desired.take_dirty();
        let mut out = UserspaceOutcome { full: full || self.needs_full, rejected, ..Default::default() };
        let result = self.sync_inner(&mut out, dirty);
        if result.is_err() {
            self.needs_full = true;
        }
        result?;
        out.services = self.parts.len();
        out.frontends = self.wanted_frontends - self.unopened.len();
        out.listen_failed = self.unopened.len();
        if explain {
            out.text = Some(self.render());
        }
        out.duration_ms = start.elapsed().as_secs_f64() * 1e3;
        Ok(out)
    }

    fn sync_inner(&mut self, out: &mut UserspaceOutcome, dirty: BTreeSet<String>) -> Result<(), ProxierError> {
        let all = |s: &Self| -> BTreeSet<String> { s.parts.keys().cloned().chain(s.desired.values().map(|sp| sp.key.clone())).collect() };
        if out.full {
            self.link.ensure()?;
            self.node = self.node_addrs()?;
            self.local_stale = true;
            self.apply(all(self), out)?;
            out.drift_repaired = self.repair_addresses(out)?;
            self.needs_full = false;
        } else if !dirty.is_empty() {
            self.apply(dirty, out)?;
        } else {
            let node = self.node_addrs()?;
            if node != self.node {
                self.node = node;
                self.local_stale = true;
                self.apply(all(self), out)?;
            }
            out.drift_repaired = self.repair_addresses(out)?;
        }
        self.retry_unopened(out);
        self.update_local_sources();
        Ok(())
    }

    fn apply(&mut self, keys: BTreeSet<String>, out: &mut UserspaceOutcome) -> Result<(), ProxierError> {
        let family = self.family();
        let mut c = Changes::default();
        for key in keys {
            let sp = self.desired.get(&key);
            let new = sp.and_then(|sp| service_part(&self.cfg, family, sp, &self.node));
            if let (Some(sp), None) = (sp, &new) {
                out.skipped.push(sp.display.clone());
            }
            let old = self.parts.remove(&key);
            self.wanted_frontends =
                self.wanted_frontends + new.as_ref().map_or(0, |p| p.frontends.len()) - old.as_ref().map_or(0, |p| p.frontends.len());
            if old != new {
                c.diff(old.as_ref(), new.as_ref());
            }
            if let Some(n) = new {
                self.parts.insert(key, n);
            }
        }
        let (added, gone) = self.addresses.apply(c.addresses);
        self.local_stale |= !added.is_empty() || !gone.is_empty();
        if !added.is_empty() {
            out.addresses_failed += self.link.change(&added, &[])?;
            out.addresses_added += added.len();
        }
        for s in &c.services {
            self.proxy.upsert(s);
        }
        for (k, f) in &c.open {
            self.open(*k, f, out);
        }
        // A frontend one part gave up and another took in this sync (a ClusterIP reused by a
        // new Service, an external IP changing owner) was re-routed above: it stays open.
        let taken: BTreeSet<FrontendKey> = c.open.iter().map(|(k, _)| *k).collect();
        c.close.retain(|k| !taken.contains(k));
        out.closed += self.proxy.close_all(&c.close);
        for k in &c.close {
            self.unopened.remove(k);
        }
        for name in &c.removed {
            self.proxy.remove(name);
        }
        if !gone.is_empty() {
            out.addresses_failed += self.link.change(&[], &gone)?;
            out.addresses_deleted += gone.len();
        }
        Ok(())
    }

    fn open(&mut self, key: FrontendKey, fe: &Frontend, out: &mut UserspaceOutcome) {
        match self.proxy.open(key, fe) {
            Ok(()) => {
                out.opened += 1;
                self.unopened.remove(&key);
            }
            Err((errno, why)) => {
                out.first_failure.get_or_insert((errno.unwrap_or(0), why));
                self.unopened.insert(key);
            }
        }
    }

    /// Opens the frontends that failed before this sync (not the ones it just tried).
    fn retry_unopened(&mut self, out: &mut UserspaceOutcome) {
        if self.unopened.is_empty() || out.first_failure.is_some() {
            return;
        }
        let wanted: Vec<(FrontendKey, Frontend)> = self
            .parts
            .values()
            .flat_map(|p| p.frontends.iter())
            .filter(|(k, _)| self.unopened.contains(k))
            .map(|(k, f)| (*k, f.clone()))
            .collect();
        self.unopened.retain(|k| wanted.iter().any(|(w, _)| w == k));
        for (k, f) in wanted {
            self.open(k, &f, out);
        }
    }

    /// Between syncs: this family's Service addresses still on the link? A missing one (the
    /// link deleted, an address removed by another process) is named in words, and the next
    /// sync is full, which puts the link and its addresses back. Empty when nothing is
    /// missing, before the first sync, and while a full sync is due anyway.
    pub fn drift(&mut self) -> Result<String, ProxierError> {
        if self.needs_full || self.addresses.is_empty() {
            return Ok(String::new());
        }
        let family = self.family();
        let have: BTreeSet<IpAddr> = self.link.ours()?.into_iter().filter(|a| Family::of(a) == family).collect();
        let missing: Vec<&IpAddr> = self.addresses.keys().filter(|a| !have.contains(a)).collect();
        let Some(first) = missing.first() else { return Ok(String::new()) };
        self.needs_full = true;
        let link = self.link.current().map_or("the Service link", |(_, k)| k.describe());
        Ok(format!("{} of {} Service addresses gone from {link} (first {first})", missing.len(), self.addresses.len()))
    }

    /// Puts the link's addresses (this family's) back as the parts want them.
    fn repair_addresses(&mut self, out: &mut UserspaceOutcome) -> Result<usize, ProxierError> {
        let family = self.family();
        let have: BTreeSet<IpAddr> = self.link.ours()?.into_iter().filter(|a| Family::of(a) == family).collect();
        let missing: Vec<IpAddr> = self.addresses.keys().filter(|a| !have.contains(a)).copied().collect();
        let extra: Vec<IpAddr> = have.iter().filter(|a| !self.addresses.contains(a)).copied().collect();
        if missing.is_empty() && extra.is_empty() {
            return Ok(0);
        }
        out.addresses_failed += self.link.change(&missing, &extra)?;
        Ok(missing.len() + extra.len())
    }

    /// Clients from these take a frontend's local pool: the pod range (a CIDR detector),
    /// the node's addresses, and the Service addresses (the node reaching them comes from
    /// them). Rebuilt only when one of those changed: a one-endpoint change costs nothing here.
    fn update_local_sources(&mut self) {
        if !self.local_stale {
            return;
        }
        let mut v = LocalSources::default();
        if let Some(LocalDetector::Cidr(c)) = &self.cfg.detector {
            v.prefixes.push(Prefix { addr: c.addr, len: c.prefix });
        }
        v.hosts.extend(self.node.local.iter().chain(self.addresses.keys()).copied());
        self.proxy.set_local_sources(self.family() == Family::Ip6, v);
        self.local_stale = false;
    }

    pub fn render(&self) -> String {
        let link = self.link.current().map_or("none", |(_, k)| k.describe());
        text::render(link, self.addresses.keys(), self.parts.values())
    }

    /// Each Service's counters, by upstream's ServicePortName.
    pub fn stats(&self) -> Vec<(String, Snapshot)> {
        self.parts.values().filter_map(|p| self.proxy.stats(&p.service.name).map(|s| (p.display.clone(), s))).collect()
    }

    /// Closes this family's frontends and Services, then deletes the link (or kproxy's
    /// addresses on lo); returns how many addresses went.
    pub fn cleanup(&mut self) -> Result<usize, ProxierError> {
        for p in std::mem::take(&mut self.parts).into_values() {
            self.proxy.remove(&p.service.name);
        }
        self.addresses.clear();
        self.unopened.clear();
        self.wanted_frontends = 0;
        self.needs_full = true;
        self.link.cleanup()
    }
}
