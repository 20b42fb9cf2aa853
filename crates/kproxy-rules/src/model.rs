//! The desired state of one family's table, and the plans that move the
//! kernel to it: a full replace, or a partial diff of what changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use kproxy_nftables::{Chain, ElemData, Element, Fake, Op, Rule, Stmt, Transaction, Tuple, Val};

use crate::layout::{fixed_ops, slots_chain, LayoutConfig, CLUSTER_IPS, ENDPOINT_ADDRS, HAIRPIN, NO_ENDPOINT_SERVICES, SERVICE_IPS, TABLE};
use crate::service::{render, Rendered, ServicePort, ServicePortSpec};

/// Smallest set size requested from the kernel (see `set_size`).
const MIN_SET_SIZE: usize = 16 * 1024;

const DYNAMIC_SETS: [&str; 5] = [CLUSTER_IPS, HAIRPIN, SERVICE_IPS, NO_ENDPOINT_SERVICES, ENDPOINT_ADDRS];

/// The element cap for a set holding `count` elements: room to double before
/// a partial sync would overflow it and force a full sync that resizes.
fn set_size(count: usize, previous: Option<usize>) -> usize {
    match previous {
        Some(p) if p >= MIN_SET_SIZE && count * 5 / 4 <= p => p,
        _ => (count * 2).next_power_of_two().max(MIN_SET_SIZE),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub key: String,
    pub reason: String,
}

pub struct Model {
    cfg: LayoutConfig,
    desired: HashMap<String, ServicePort>,
    /// Which ServicePort owns each (ClusterIP, protocol, port): two owners would
    /// make the kernel refuse every batch (the same map key twice).
    vip_owner: HashMap<(IpAddr, u8, u16), String>,
    dirty: BTreeSet<String>,
    /// What the kernel holds, per ServicePort (re-rendered when diffing).
    committed: HashMap<String, ServicePort>,
    cluster_refs: HashMap<IpAddr, usize>,
    hairpin_refs: HashMap<IpAddr, usize>,
    /// The shared `endpoints-mod-N` chains that exist (never removed by partial syncs).
    mod_chains: BTreeSet<usize>,
    /// Element counts and kernel caps of the dynamic sets.
    counts: HashMap<&'static str, usize>,
    sizes: HashMap<&'static str, usize>,
    needs_full: bool,
}

#[derive(Default)]
struct ElementOps {
    adds: BTreeMap<&'static str, Vec<Element>>,
    dels: BTreeMap<&'static str, Vec<Tuple>>,
}

impl ElementOps {
    fn add(&mut self, set: &'static str, e: Element) {
        self.adds.entry(set).or_default().push(e);
    }
    fn del(&mut self, set: &'static str, key: Tuple) {
        self.dels.entry(set).or_default().push(key);
    }
    fn diff_one(&mut self, set: &'static str, old: Option<&Element>, new: Option<&Element>) {
        if old == new {
            return;
        }
        if let Some(o) = old {
            self.del(set, o.key);
        }
        if let Some(n) = new {
            self.add(set, n.clone());
        }
    }
    fn net_change(&self, set: &str) -> isize {
        self.adds.get(set).map_or(0, |v| v.len() as isize) - self.dels.get(set).map_or(0, |v| v.len() as isize)
    }
}

fn plain(key: Tuple) -> Element {
    Element { key, data: None, comment: None }
}

fn slot_element(k: Tuple, v: Tuple) -> Element {
    Element { key: k, data: Some(ElemData::Vals(v)), comment: None }
}

fn mod_chain_ops(n: usize) -> [Op; 2] {
    let name = slots_chain(n);
    [
        Op::AddChain(Chain { name: name.clone(), base: None }),
        Op::AddRule(Rule { chain: name, stmts: vec![Stmt::DnatSlot { modulus: n as u32, map: ENDPOINT_ADDRS.into() }] }),
    ]
}

impl Model {
    pub fn new(cfg: LayoutConfig) -> Self {
        Model {
            cfg,
            desired: HashMap::new(),
            vip_owner: HashMap::new(),
            dirty: BTreeSet::new(),
            committed: HashMap::new(),
            cluster_refs: HashMap::new(),
            hairpin_refs: HashMap::new(),
            mod_chains: BTreeSet::new(),
            counts: HashMap::new(),
            sizes: HashMap::new(),
            needs_full: true,
        }
    }

    pub fn config(&self) -> &LayoutConfig {
        &self.cfg
    }

    pub fn service_port_count(&self) -> usize {
        self.desired.len()
    }

    pub fn needs_full(&self) -> bool {
        self.needs_full
    }

    /// Makes `specs` the complete desired state: ServicePorts not among them are
    /// deleted. A full sync sends everything, so nothing can be lost in between.
    pub fn replace_all(&mut self, specs: &[ServicePortSpec]) -> Vec<Rejected> {
        let keep: std::collections::HashSet<&str> = specs.iter().map(|s| s.key.as_str()).collect();
        let gone: Vec<String> = self.desired.keys().filter(|k| !keep.contains(k.as_str())).cloned().collect();
        self.update(specs, &gone)
    }

    /// Validates and records changes. Invalid specs are returned and leave the
    /// previous state of that ServicePort untouched.
    pub fn update(&mut self, upserts: &[ServicePortSpec], deletes: &[String]) -> Vec<Rejected> {
        let mut rejected = Vec::new();
        for key in deletes {
            if let Some(old) = self.desired.remove(key) {
                self.vip_owner.remove(&old.vip());
                self.dirty.insert(key.clone());
            }
        }
        for s in upserts {
            let sp = match ServicePort::validate(s, self.cfg.family) {
                Ok(sp) => sp,
                Err(reason) => {
                    rejected.push(Rejected { key: s.key.clone(), reason });
                    continue;
                }
            };
            if let Some(owner) = self.vip_owner.get(&sp.vip()).filter(|o| **o != sp.key) {
                let (ip, _, port) = sp.vip();
                rejected.push(Rejected { key: sp.key.clone(), reason: format!("{ip} port {port} is already used by {owner}") });
                continue;
            }
            if self.desired.get(&sp.key) == Some(&sp) {
                continue;
            }
            if let Some(old) = self.desired.get(&sp.key) {
                self.vip_owner.remove(&old.vip());
            }
            self.vip_owner.insert(sp.vip(), sp.key.clone());
            self.dirty.insert(sp.key.clone());
            self.desired.insert(sp.key.clone(), sp);
        }
        rejected
    }

    /// Marks the kernel state unknown: the next plan replaces the whole table.
    pub fn invalidate(&mut self) {
        self.needs_full = true;
    }

    /// Records the outcome of committing the last plan.
    pub fn committed(&mut self, ok: bool) {
        if !ok {
            self.needs_full = true;
        }
    }

    /// Builds the next transaction and whether it is a full replace. The model
    /// assumes it commits; call `committed(false)` if it did not.
    pub fn plan(&mut self, force_full: bool) -> (Transaction, bool) {
        if force_full || self.needs_full {
            return (self.plan_full(), true);
        }
        match self.plan_partial() {
            Some(tx) => (tx, false),
            // A set would outgrow its kernel cap: a full sync recreates it bigger.
            None => (self.plan_full(), true),
        }
    }

    fn plan_full(&mut self) -> Transaction {
        let mut tx = Transaction::new(self.cfg.family, TABLE);
        let fixed = fixed_ops(&self.cfg);
        // Ensure, delete, recreate: one atomic replace whether or not the table exists.
        tx.push(fixed[0].clone());
        tx.push(Op::DeleteTable);
        tx.ops.extend(fixed);
        self.mod_chains.clear();
        self.committed.clear();
        self.cluster_refs.clear();
        self.hairpin_refs.clear();
        self.dirty.clear();
        let mut els = ElementOps::default();
        let endpoints: usize = self.desired.values().map(|sp| sp.endpoints.len()).sum();
        els.adds.insert(ENDPOINT_ADDRS, Vec::with_capacity(endpoints));
        els.adds.insert(SERVICE_IPS, Vec::with_capacity(self.desired.len()));
        let mut rules = Vec::with_capacity(self.desired.len() + 8);
        tx.ops.reserve(self.desired.len() * 2 + 64);
        let desired = std::mem::take(&mut self.desired);
        let mut specs: Vec<&ServicePort> = desired.values().collect();
        specs.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        for n in specs.iter().map(|sp| sp.endpoints.len()).filter(|n| *n > 0).collect::<BTreeSet<_>>() {
            self.mod_chains.insert(n);
            let [chain, rule] = mod_chain_ops(n);
            tx.push(chain);
            rules.push(rule);
        }
        for sp in &specs {
            let r = render(sp);
            self.add_refs(&r, &mut els);
            els.diff_one(SERVICE_IPS, None, r.service_ip.as_ref());
            els.diff_one(NO_ENDPOINT_SERVICES, None, r.no_endpoint.as_ref());
            for (k, v) in &r.slots {
                els.add(ENDPOINT_ADDRS, slot_element(*k, *v));
            }
            self.committed.insert(sp.key.clone(), (*sp).clone());
        }
        drop(specs);
        self.desired = desired;
        tx.ops.extend(rules);
        for set in DYNAMIC_SETS {
            let count = els.net_change(set) as usize;
            self.counts.insert(set, count);
            let size = set_size(count, self.sizes.get(set).copied());
            self.sizes.insert(set, size);
        }
        for op in tx.ops.iter_mut() {
            if let Op::AddSet(s) = op {
                s.size = self.sizes.get(s.name.as_str()).map(|n| *n as u32);
            }
        }
        push_elements(&mut tx, els);
        self.needs_full = false;
        tx
    }

    fn add_refs(&mut self, r: &Rendered, els: &mut ElementOps) {
        if let Some(ip) = r.cluster_ip {
            let n = self.cluster_refs.entry(ip).or_insert(0);
            *n += 1;
            if *n == 1 {
                els.add(CLUSTER_IPS, plain(Tuple::new(&[Val::ip(ip)])));
            }
        }
        for ip in &r.hairpins {
            let n = self.hairpin_refs.entry(*ip).or_insert(0);
            *n += 1;
            if *n == 1 {
                els.add(HAIRPIN, plain(Tuple::new(&[Val::ip(*ip), Val::ip(*ip)])));
            }
        }
    }

    fn drop_refs(&mut self, r: &Rendered, els: &mut ElementOps) {
        if let Some(ip) = r.cluster_ip {
            if let Some(n) = self.cluster_refs.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.cluster_refs.remove(&ip);
                    els.del(CLUSTER_IPS, Tuple::new(&[Val::ip(ip)]));
                }
            }
        }
        for ip in &r.hairpins {
            if let Some(n) = self.hairpin_refs.get_mut(ip) {
                *n -= 1;
                if *n == 0 {
                    self.hairpin_refs.remove(ip);
                    els.del(HAIRPIN, Tuple::new(&[Val::ip(*ip), Val::ip(*ip)]));
                }
            }
        }
    }

    /// The diff for the ServicePorts changed since the last sync, or None if a
    /// set would overflow its kernel cap.
    fn plan_partial(&mut self) -> Option<Transaction> {
        let mut tx = Transaction::new(self.cfg.family, TABLE);
        let mut els = ElementOps::default();
        let mut mod_ops = Vec::new();
        let dirty = std::mem::take(&mut self.dirty);
        for key in &dirty {
            let old_sp = self.committed.remove(key);
            let new_sp = self.desired.get(key).map(|sp| match &old_sp {
                Some(o) => sp.keeping_slots_of(&o.endpoints),
                None => sp.clone(),
            });
            let old = old_sp.as_ref().map(render);
            let new = new_sp.as_ref().map(render);
            if let Some(n) = new.as_ref().map(|r| r.slots.len()).filter(|n| *n > 0) {
                if self.mod_chains.insert(n) {
                    mod_ops.extend(mod_chain_ops(n));
                }
            }
            let empty = Rendered::default();
            let (o, n) = (old.as_ref().unwrap_or(&empty), new.as_ref().unwrap_or(&empty));
            els.diff_one(SERVICE_IPS, o.service_ip.as_ref(), n.service_ip.as_ref());
            els.diff_one(NO_ENDPOINT_SERVICES, o.no_endpoint.as_ref(), n.no_endpoint.as_ref());
            let old_slots: HashMap<&Tuple, &Tuple> = o.slots.iter().map(|(k, v)| (k, v)).collect();
            let new_slots: HashMap<&Tuple, &Tuple> = n.slots.iter().map(|(k, v)| (k, v)).collect();
            for (k, v) in &o.slots {
                if new_slots.get(k) != Some(&v) {
                    els.del(ENDPOINT_ADDRS, *k);
                }
            }
            for (k, v) in &n.slots {
                if old_slots.get(k) != Some(&v) {
                    els.add(ENDPOINT_ADDRS, slot_element(*k, *v));
                }
            }
            self.drop_refs(o, &mut els);
            self.add_refs(n, &mut els);
            if let Some(sp) = new_sp {
                self.committed.insert(key.clone(), sp);
            }
        }
        // An address whose refcount went 1→0→1 within this plan is both deleted and re-added: cancel out.
        cancel_readds(&mut els);
        for set in DYNAMIC_SETS {
            let count = (self.counts.get(set).copied().unwrap_or(0) as isize + els.net_change(set)).max(0) as usize;
            if count > self.sizes.get(set).copied().unwrap_or(0) {
                return None;
            }
            self.counts.insert(set, count);
        }
        for (set, keys) in std::mem::take(&mut els.dels) {
            tx.push(Op::DeleteElements { set: set.into(), keys });
        }
        tx.ops.extend(mod_ops);
        push_elements(&mut tx, els);
        Some(tx)
    }

    /// A model with the same desired state and set sizes, for rendering.
    fn scratch(&self) -> Model {
        let mut m = Model::new(self.cfg.clone());
        m.desired = self.desired.clone();
        m.vip_owner = self.vip_owner.clone();
        m.sizes = self.sizes.clone();
        m
    }

    /// The desired ruleset as canonical sorted nft text.
    pub fn render_text(&self) -> String {
        let tx = self.scratch().plan_full();
        let mut fake = Fake::new();
        match fake.apply(&tx) {
            Ok(()) => fake.dump(self.cfg.family, TABLE),
            Err(e) => format!("# kproxy: rendering failed: {e:?}\n"),
        }
    }

    /// The full transaction for the desired state, without touching this model.
    pub fn full_transaction(&self) -> Transaction {
        self.scratch().plan_full()
    }
}

fn cancel_readds(els: &mut ElementOps) {
    for set in [CLUSTER_IPS, HAIRPIN] {
        let (Some(dels), Some(adds)) = (els.dels.get_mut(set), els.adds.get_mut(set)) else { continue };
        let added: BTreeSet<Tuple> = adds.iter().map(|a| a.key).collect();
        let both: BTreeSet<Tuple> = dels.iter().filter(|k| added.contains(k)).copied().collect();
        dels.retain(|k| !both.contains(k));
        adds.retain(|a| !both.contains(&a.key));
    }
    els.dels.retain(|_, v| !v.is_empty());
    els.adds.retain(|_, v| !v.is_empty());
}

fn push_elements(tx: &mut Transaction, els: ElementOps) {
    for (set, elems) in els.adds {
        tx.push(Op::AddElements { set: set.into(), elems });
    }
}
