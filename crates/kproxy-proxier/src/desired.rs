//! The desired state of one family, shared by every mode: validated
//! ServicePorts by key, which of them changed since the last plan, and the
//! rule that one Service address has one owner (two would make any kernel
//! refuse every batch).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use kproxy_nftables::Family;

use crate::service::ServicePort;
use crate::wire::{Rejected, ServicePortRecord};

pub struct Desired {
    family: Family,
    ports: HashMap<String, ServicePort>,
    owner: HashMap<(IpAddr, u8, u16), String>,
    dirty: BTreeSet<String>,
}

impl Desired {
    pub fn new(family: Family) -> Self {
        Self { family, ports: HashMap::new(), owner: HashMap::new(), dirty: BTreeSet::new() }
    }

    pub fn family(&self) -> Family {
        self.family
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
    /// state after the whole batch, so two ServicePorts may swap addresses in one sync.
    pub fn update(&mut self, upserts: &[ServicePortRecord], deletes: &[String]) -> Vec<Rejected> {
        let mut rejected = Vec::new();
        for key in deletes {
            if let Some(old) = self.ports.remove(key) {
                self.release(&old);
                self.dirty.insert(key.clone());
            }
        }
        let mut changed = Vec::with_capacity(upserts.len());
        for s in upserts {
            match ServicePort::validate(s, self.family) {
                Ok(sp) if self.ports.get(&sp.key) == Some(&sp) => {}
                Ok(sp) => changed.push(sp),
                Err(reason) => rejected.push(Rejected { key: s.key.to_string(), reason }),
            }
        }
        // Release what the changed ServicePorts owned before claiming anything.
        for sp in &changed {
            if let Some(old) = self.ports.get(&sp.key).cloned() {
                self.release(&old);
            }
        }
        let mut refused = Vec::new();
        for sp in changed {
            let vips = sp.vips();
            if let Some(((ip, _, port), owner)) = vips.iter().find_map(|v| self.owner.get(v).map(|o| (*v, o.clone()))) {
                rejected.push(Rejected { key: sp.key.clone(), reason: format!("{ip} port {port} is already used by {owner}") });
                refused.push(sp.key);
                continue;
            }
            for v in vips {
                self.owner.insert(v, sp.key.clone());
            }
            self.dirty.insert(sp.key.clone());
            self.ports.insert(sp.key.clone(), sp);
        }
        // A refused change keeps its previous version, if that one's addresses are still free.
        for key in refused {
            let Some(old) = self.ports.get(&key).map(ServicePort::vips) else { continue };
            let taken = old.iter().find_map(|v| self.owner.get(v).filter(|o| **o != key).map(|o| (*v, o.clone())));
            match taken {
                None => {
                    for v in old {
                        self.owner.insert(v, key.clone());
                    }
                }
                Some(((ip, _, port), o)) => {
                    rejected.push(Rejected { key: key.clone(), reason: format!("{ip} port {port} was taken by {o}; removed") });
                    if let Some(gone) = self.ports.remove(&key) {
                        self.release(&gone);
                    }
                    self.dirty.insert(key);
                }
            }
        }
        rejected
    }

    fn release(&mut self, sp: &ServicePort) {
        for v in sp.vips() {
            if self.owner.get(&v) == Some(&sp.key) {
                self.owner.remove(&v);
            }
        }
    }
}
