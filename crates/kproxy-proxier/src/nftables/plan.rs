//! The plans that move one family's kproxy table to the desired state: a full
//! replace, or a partial diff of what changed. It remembers what the kernel
//! holds per ServicePort, to diff against.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use kproxy_nftables::{Chain, ElemData, Element, Fake, Op, Rule, Transaction, Tuple, Val};

use super::layout::{
    dnat_slot, fixed_ops, slots_chain, LayoutConfig, CLUSTER_IPS, ENDPOINT_ADDRS, HAIRPIN, MASQUERADE_SERVICES, NO_ENDPOINT_SERVICES,
    SERVICE_IPS, TABLE,
};
use super::objects::{objects_of, ServicePort, ServicePortObjects};
use crate::desired::Desired;

/// Smallest set size requested from the kernel (see `set_size`).
const MIN_SET_SIZE: usize = 16 * 1024;

const DYNAMIC_SETS: [&str; 6] = [CLUSTER_IPS, HAIRPIN, SERVICE_IPS, NO_ENDPOINT_SERVICES, ENDPOINT_ADDRS, MASQUERADE_SERVICES];

/// The element cap for a set holding `count` elements: room to double before
/// a partial sync would overflow it and force a full sync that resizes.
fn set_size(count: usize, previous: Option<usize>) -> usize {
    match previous {
        Some(p) if p >= MIN_SET_SIZE && count * 5 / 4 <= p => p,
        _ => (count * 2).next_power_of_two().max(MIN_SET_SIZE),
    }
}

pub struct Planner {
    cfg: LayoutConfig,
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
    /// The element changes that turn `old` into `new` (elements keyed uniquely).
    fn diff_many(&mut self, set: &'static str, old: &[Element], new: &[Element]) {
        for o in old {
            if !new.contains(o) {
                self.del(set, o.key);
            }
        }
        for n in new {
            if !old.contains(n) {
                self.add(set, n.clone());
            }
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
    [Op::AddChain(Chain { name: name.clone(), base: None }), Op::AddRule(Rule { chain: name, stmts: vec![dnat_slot(n as u32)] })]
}

impl Planner {
    pub fn new(cfg: LayoutConfig) -> Self {
        Planner {
            cfg,
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

    pub fn needs_full(&self) -> bool {
        self.needs_full
    }

    /// Marks the kernel state unknown: the next plan replaces the whole table.
    pub fn invalidate(&mut self) {
        self.needs_full = true;
    }

    /// Builds the next transaction for `desired` and whether it is a full replace.
    /// The planner assumes it commits; call `invalidate` if it did not.
    pub fn plan(&mut self, desired: &mut Desired, force_full: bool) -> (Transaction, bool) {
        let dirty = desired.take_dirty();
        if force_full || self.needs_full {
            return (self.plan_full(desired), true);
        }
        match self.plan_partial(desired, &dirty) {
            Some(tx) => (tx, false),
            // A set would outgrow its kernel cap: a full sync recreates it bigger.
            None => (self.plan_full(desired), true),
        }
    }

    fn plan_full(&mut self, desired: &Desired) -> Transaction {
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
        let mut els = ElementOps::default();
        let mut specs: Vec<ServicePort> = desired.values().map(ServicePort::from_model).collect();
        specs.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        let endpoints: usize = specs.iter().map(|sp| sp.endpoints.len()).sum();
        els.adds.insert(ENDPOINT_ADDRS, Vec::with_capacity(endpoints));
        els.adds.insert(SERVICE_IPS, Vec::with_capacity(specs.len()));
        let mut rules = Vec::with_capacity(8);
        tx.ops.reserve(64);
        for n in specs.iter().flat_map(ServicePort::moduli).collect::<BTreeSet<_>>() {
            self.mod_chains.insert(n);
            let [chain, rule] = mod_chain_ops(n);
            tx.push(chain);
            rules.push(rule);
        }
        for sp in specs {
            let r = objects_of(&sp);
            self.add_refs(&r, &mut els);
            els.diff_many(SERVICE_IPS, &[], &r.service_ips);
            els.diff_many(NO_ENDPOINT_SERVICES, &[], &r.no_endpoints);
            for k in &r.masquerade {
                els.add(MASQUERADE_SERVICES, plain(*k));
            }
            for (k, v) in &r.slots {
                els.add(ENDPOINT_ADDRS, slot_element(*k, *v));
            }
            self.committed.insert(sp.key.clone(), sp);
        }
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

    fn add_refs(&mut self, r: &ServicePortObjects, els: &mut ElementOps) {
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

    fn drop_refs(&mut self, r: &ServicePortObjects, els: &mut ElementOps) {
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
    fn plan_partial(&mut self, desired: &Desired, dirty: &BTreeSet<String>) -> Option<Transaction> {
        let mut tx = Transaction::new(self.cfg.family, TABLE);
        let mut els = ElementOps::default();
        let mut mod_ops = Vec::new();
        for key in dirty {
            let old_sp = self.committed.remove(key);
            let new_sp = desired.get(key).map(ServicePort::from_model).map(|sp| match &old_sp {
                Some(o) => sp.keeping_slots_of(o),
                None => sp,
            });
            let old = old_sp.as_ref().map(objects_of);
            let new = new_sp.as_ref().map(objects_of);
            for n in new_sp.iter().flat_map(ServicePort::moduli) {
                if self.mod_chains.insert(n) {
                    mod_ops.extend(mod_chain_ops(n));
                }
            }
            let empty = ServicePortObjects::default();
            let (o, n) = (old.as_ref().unwrap_or(&empty), new.as_ref().unwrap_or(&empty));
            els.diff_many(SERVICE_IPS, &o.service_ips, &n.service_ips);
            els.diff_many(NO_ENDPOINT_SERVICES, &o.no_endpoints, &n.no_endpoints);
            let (om, nm): (Vec<Element>, Vec<Element>) =
                (o.masquerade.iter().map(|k| plain(*k)).collect(), n.masquerade.iter().map(|k| plain(*k)).collect());
            els.diff_many(MASQUERADE_SERVICES, &om, &nm);
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

    /// A planner with the same set sizes and nothing committed, for rendering.
    fn scratch(&self) -> Planner {
        let mut p = Planner::new(self.cfg.clone());
        p.sizes = self.sizes.clone();
        p
    }

    /// The desired ruleset as canonical sorted nft text.
    pub fn render_text(&self, desired: &Desired) -> String {
        let tx = self.full_transaction(desired);
        let mut fake = Fake::new();
        match fake.apply(&tx) {
            Ok(()) => fake.dump(self.cfg.family, TABLE),
            Err(e) => format!("# kproxy: rendering failed: {e:?}\n"),
        }
    }

    /// The full transaction for the desired state, without touching this planner.
    pub fn full_transaction(&self, desired: &Desired) -> Transaction {
        self.scratch().plan_full(desired)
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
