//! The desired state of one family, shared by every mode: validated
//! ServicePorts by key, which of them changed since the last plan, and the
//! rule that one Service address has one owner (two would make any kernel
//! refuse every batch).
//!
//! Ownership: a ClusterIP:port belongs to one ServicePort; a second one is
//! refused whole and keeps its last good version. An external or LoadBalancer
//! IP:port goes to whoever held it, else to the first claim; the others keep
//! everything but that address (`ServicePort::blocked`) and get it when it is
//! released. A ClusterIP always wins over an external claim on the same address.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use kproxy_nftables::{Cidr, Family};

use crate::service::{describe_vip, ServicePort};
use crate::wire::{Rejected, ServicePortRecord};

type Vip = (IpAddr, u8, u16);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    key: String,
    cluster: bool,
}

/// Where NodePorts answer and what the node's own addresses are, for one family.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeAddressing {
    /// Every local address but loopback (nodePortAddresses 0.0.0.0/0 or ::/0).
    pub nodeports_all: bool,
    pub nodeport_ips: Vec<IpAddr>,
    /// loadBalancerSourceRanges let the LoadBalancer IPs in when one of these is in range.
    pub node_ips: Vec<IpAddr>,
}

pub struct Desired {
    family: Family,
    node: NodeAddressing,
    service_cidrs: Vec<Cidr>,
    ports: HashMap<String, ServicePort>,
    owner: HashMap<Vip, Owner>,
    /// External addresses wanted by ServicePorts that do not own them.
    waiting: BTreeMap<Vip, BTreeSet<String>>,
    dirty: BTreeSet<String>,
    /// IPv4 loopback NodePort addresses are kept (iptables mode's localhost NodePorts).
    keep_loopback: bool,
}

impl Desired {
    pub fn new(family: Family) -> Self {
        Self {
            family,
            node: NodeAddressing::default(),
            service_cidrs: Vec::new(),
            ports: HashMap::new(),
            owner: HashMap::new(),
            waiting: BTreeMap::new(),
            dirty: BTreeSet::new(),
            keep_loopback: false,
        }
    }

    /// Keeps IPv4 loopback addresses among the NodePort addresses (iptables mode with
    /// localhost NodePorts); every other mode drops them, and IPv6 never has them.
    pub fn keep_loopback_nodeports(&mut self, keep: bool) {
        self.keep_loopback = keep;
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn node(&self) -> &NodeAddressing {
        &self.node
    }

    pub fn service_cidrs(&self) -> &[Cidr] {
        &self.service_cidrs
    }

    /// Sets the node addressing; every address must be of this family.
    pub fn set_node(&mut self, nodeports_all: bool, nodeport_ips: &[String], node_ips: &[String]) -> Result<(), String> {
        let parse = |v: &[String], what: &str| -> Result<Vec<IpAddr>, String> {
            let mut out = Vec::with_capacity(v.len());
            for s in v {
                let ip: IpAddr = s.parse().map_err(|_| format!("bad {what} {s:?}"))?;
                if Family::of(&ip) != self.family {
                    return Err(format!("{what} {ip} is not {}", self.family.keyword()));
                }
                out.push(ip);
            }
            out.sort_unstable();
            out.dedup();
            Ok(out)
        };
        // Loopback takes NodePorts only in iptables mode, IPv4 (upstream logs and skips it otherwise).
        let mut nodeport_ips = parse(nodeport_ips, "NodePort address")?;
        let keep_loopback = self.keep_loopback;
        nodeport_ips.retain(|ip| !ip.is_unspecified() && (!ip.is_loopback() || (keep_loopback && ip.is_ipv4())));
        self.node = NodeAddressing { nodeports_all, nodeport_ips, node_ips: parse(node_ips, "node IP")? };
        Ok(())
    }

    /// `set_node`, in the error catalogue; true when the addressing changed.
    pub fn node_changed(&mut self, nodeports_all: bool, nodeport_ips: &[String], node_ips: &[String]) -> Result<bool, crate::ProxierError> {
        let before = self.node.clone();
        self.set_node(nodeports_all, nodeport_ips, node_ips).map_err(|e| crate::ProxierError::new(crate::Code::InvalidOption, e))?;
        Ok(self.node != before)
    }

    /// Sets the ServiceCIDR ranges; each must be of this family.
    pub fn set_service_cidrs(&mut self, cidrs: &[String]) -> Result<(), String> {
        let mut out = Vec::with_capacity(cidrs.len());
        for s in cidrs {
            let c: Cidr = s.parse().map_err(|e| format!("bad ServiceCIDR {s:?}: {e}"))?;
            if Family::of(&c.addr) != self.family {
                return Err(format!("ServiceCIDR {c} is not {}", self.family.keyword()));
            }
            out.push(c);
        }
        out.sort_unstable();
        out.dedup();
        self.service_cidrs = out;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.ports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&ServicePort> {
        self.ports.get(key)
    }

    pub fn values(&self) -> impl Iterator<Item = &ServicePort> {
        self.ports.values()
    }

    /// The keys changed since the last call.
    pub fn take_dirty(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.dirty)
    }

    /// Makes `records` the complete desired state: ServicePorts not among them are deleted.
    pub fn replace_all(&mut self, records: &[ServicePortRecord]) -> Vec<Rejected> {
        let keep: HashSet<&str> = records.iter().map(|s| s.key.as_ref()).collect();
        let gone: Vec<String> = self.ports.keys().filter(|k| !keep.contains(k.as_str())).cloned().collect();
        self.update(records, &gone)
    }

    /// Validates and records changes. Invalid records are returned and leave the
    /// previous state of that ServicePort untouched. Ownership is decided against the
    /// state after the whole batch, so ServicePorts may swap addresses in one sync.
    pub fn update(&mut self, upserts: &[ServicePortRecord], deletes: &[String]) -> Vec<Rejected> {
        let mut rejected = Vec::new();
        let mut freed = Vec::new();
        for key in deletes {
            if let Some(old) = self.ports.remove(key) {
                freed.extend(self.release(&old, None));
                self.dirty.insert(key.clone());
            }
        }
        let mut changed = Vec::with_capacity(upserts.len());
        for s in upserts {
            match ServicePort::validate(s, self.family) {
                Ok(sp) if self.ports.get(&sp.key).is_some_and(|old| same_but_blocked(old, &sp)) => {}
                Ok(sp) => changed.push(sp),
                Err(reason) => rejected.push(Rejected { key: s.key.to_string(), reason }),
            }
        }
        // Release what the changed ServicePorts held and no longer want, before any claim.
        for sp in &changed {
            if let Some(old) = self.ports.get(&sp.key).cloned() {
                freed.extend(self.release(&old, Some(sp)));
            }
        }
        // ClusterIPs first: they win over external claims.
        let mut accepted = Vec::with_capacity(changed.len());
        let mut refused = Vec::new();
        for sp in changed {
            let vip = sp.cluster_vip();
            match self.owner.get(&vip).cloned() {
                Some(o) if o.key != sp.key && o.cluster => {
                    let (ip, _, port) = vip;
                    rejected.push(Rejected { key: sp.key.clone(), reason: format!("{ip} port {port} is already used by {}", o.key) });
                    refused.push(sp.key);
                    continue;
                }
                Some(o) if o.key != sp.key => self.revoke(vip, &o.key),
                _ => {}
            }
            self.owner.insert(vip, Owner { key: sp.key.clone(), cluster: true });
            accepted.push(sp);
        }
        for mut sp in accepted {
            sp.blocked = self.claim_external(&sp, &mut rejected);
            self.dirty.insert(sp.key.clone());
            self.ports.insert(sp.key.clone(), sp);
        }
        for key in refused {
            self.restore(&key, &mut rejected);
        }
        for vip in freed {
            self.hand_over(vip);
        }
        rejected
    }

    /// Claims `sp`'s external addresses; returns the IPs someone else holds (reported).
    fn claim_external(&mut self, sp: &ServicePort, rejected: &mut Vec<Rejected>) -> Vec<IpAddr> {
        let mut blocked = Vec::new();
        for vip in sp.external_vips() {
            match self.owner.get(&vip) {
                Some(o) if o.key != sp.key => {
                    let (ip, _, port) = vip;
                    rejected.push(Rejected {
                        key: sp.key.clone(),
                        reason: format!(
                            "{} is already used by {}; this ServicePort is programmed without it",
                            describe_vip(ip, port),
                            o.key
                        ),
                    });
                    blocked.push(vip.0);
                    self.waiting.entry(vip).or_default().insert(sp.key.clone());
                }
                _ => {
                    self.owner.insert(vip, Owner { key: sp.key.clone(), cluster: false });
                    self.unwait(vip, &sp.key);
                }
            }
        }
        blocked
    }

    /// A refused change keeps its previous version, if that one's ClusterIP is still free.
    fn restore(&mut self, key: &str, rejected: &mut Vec<Rejected>) {
        let Some(old) = self.ports.get(key).cloned() else { return };
        let vip = old.cluster_vip();
        match self.owner.get(&vip).cloned() {
            Some(o) if o.key != key => {
                let (ip, _, port) = vip;
                rejected.push(Rejected { key: key.to_owned(), reason: format!("{ip} port {port} was taken by {}; removed", o.key) });
                self.ports.remove(key);
                let freed = self.release(&old, None);
                self.dirty.insert(key.to_owned());
                for v in freed {
                    self.hand_over(v);
                }
            }
            _ => {
                self.owner.insert(vip, Owner { key: key.to_owned(), cluster: true });
                let blocked = self.claim_external(&old, rejected);
                if blocked != old.blocked {
                    self.dirty.insert(key.to_owned());
                }
                if let Some(p) = self.ports.get_mut(key) {
                    p.blocked = blocked;
                }
            }
        }
    }

    /// Takes an external address from its holder (a ClusterIP claims it); it waits again.
    fn revoke(&mut self, vip: Vip, holder: &str) {
        self.owner.remove(&vip);
        self.waiting.entry(vip).or_default().insert(holder.to_owned());
        if let Some(p) = self.ports.get_mut(holder) {
            if !p.blocked.contains(&vip.0) {
                p.blocked.push(vip.0);
                p.blocked.sort_unstable();
            }
            self.dirty.insert(holder.to_owned());
        }
    }

    /// A released external address goes to the first ServicePort waiting for it.
    fn hand_over(&mut self, vip: Vip) {
        if self.owner.contains_key(&vip) {
            return;
        }
        let Some(next) = self.waiting.get(&vip).and_then(|w| w.iter().next().cloned()) else { return };
        self.unwait(vip, &next);
        if let Some(p) = self.ports.get_mut(&next) {
            p.blocked.retain(|ip| *ip != vip.0);
            self.owner.insert(vip, Owner { key: next.clone(), cluster: false });
            self.dirty.insert(next);
        }
    }

    fn unwait(&mut self, vip: Vip, key: &str) {
        if let Some(w) = self.waiting.get_mut(&vip) {
            w.remove(key);
            if w.is_empty() {
                self.waiting.remove(&vip);
            }
        }
    }

    /// Drops what `old` owned and waited for, except what `next` (its new version) keeps
    /// wanting. Returns the external addresses now free.
    fn release(&mut self, old: &ServicePort, next: Option<&ServicePort>) -> Vec<Vip> {
        let keeps = |v: &Vip| next.is_some_and(|n| n.cluster_vip() == *v || n.external_vips().contains(v));
        let mut freed = Vec::new();
        let cluster = old.cluster_vip();
        if !keeps(&cluster) && self.owner.get(&cluster).is_some_and(|o| o.key == old.key) {
            self.owner.remove(&cluster);
            freed.push(cluster);
        }
        for v in old.external_vips() {
            if keeps(&v) {
                continue;
            }
            if self.owner.get(&v).is_some_and(|o| o.key == old.key) {
                self.owner.remove(&v);
                freed.push(v);
            }
            self.unwait(v, &old.key);
        }
        freed
    }
}

/// Equal but for the addresses ownership blocked. Full syncs compare every ServicePort,
/// so the common case (nothing blocked) compares in place.
fn same_but_blocked(old: &ServicePort, new: &ServicePort) -> bool {
    if old.blocked.is_empty() {
        return old == new;
    }
    let mut o = old.clone();
    o.blocked.clear();
    o == *new
}
