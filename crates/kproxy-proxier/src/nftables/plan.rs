//! The plans that move one family's kproxy table to the desired state: a full
//! replace, or a partial diff of what changed. It remembers what the kernel
//! holds per ServicePort, to diff against.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use kproxy_nftables::{Chain, Element, Fake, NftError, Op, Rule, Stmt, Transaction, Tuple, Val};

use super::collect::{bump, unbump, ElementOps, RefCounts};
use super::layout::*;
use super::objects::{objects_of, Ep, ServicePort, ServicePortObjects};
use super::shared::SharedChain;
use crate::desired::{Desired, NodeAddressing};
use crate::sync::ReadSet;

/// Smallest set size requested from the kernel (see `set_size`).
const MIN_SET_SIZE: usize = 16 * 1024;

/// Kernels before 6.2 release a map element's hold on a chain after the commit, so a
/// chain is deleted by a later transaction, at least this long after its last use (upstream: 1 s).
const STALE_CHAIN_DELAY: Duration = Duration::from_secs(1);

const DYNAMIC_SETS: [&str; 22] = [
    CLUSTER_IPS,
    NODEPORT_IPS,
    HAIRPIN,
    SERVICE_IPS,
    NO_ENDPOINT_SERVICES,
    ENDPOINT_ADDRS,
    LOCAL_ENDPOINT_ADDRS,
    MASQUERADE_SERVICES,
    MASQUERADE_NODEPORTS,
    SERVICE_NODEPORTS,
    NO_ENDPOINT_NODEPORTS,
    NODEPORT_ENDPOINT_ADDRS,
    NODEPORT_LOCAL_ENDPOINT_ADDRS,
    FIREWALL_IPS,
    AFFINITY_MEMBERS,
    LOCAL_AFFINITY_MEMBERS,
    NODEPORT_AFFINITY_MEMBERS,
    NODEPORT_LOCAL_AFFINITY_MEMBERS,
    AFFINITY_RECORDERS,
    LOCAL_AFFINITY_RECORDERS,
    NODEPORT_AFFINITY_RECORDERS,
    NODEPORT_LOCAL_AFFINITY_RECORDERS,
];

/// The element cap for a set holding `count` elements: room to double before
/// a partial sync would overflow it and force a full sync that resizes.
fn set_size(count: usize, previous: Option<usize>) -> usize {
    let min = crate::fault::unguarded_set_size().unwrap_or(MIN_SET_SIZE);
    match previous {
        Some(p) if p >= min && count * 5 / 4 <= p => p,
        _ => (count * 2).next_power_of_two().max(min),
    }
}

pub struct Planner {
    cfg: LayoutConfig,
    /// What the kernel holds, per ServicePort (re-rendered when diffing).
    committed: HashMap<String, ServicePort>,
    cluster_refs: RefCounts,
    hairpin_refs: RefCounts,
    /// The shared chains that exist (never removed by partial syncs).
    shared: BTreeSet<SharedChain>,
    /// ServicePorts' own chains that were flushed, and when: a later sync deletes them.
    stale: BTreeMap<String, Instant>,
    /// Affinity entries to delete after the commit: their endpoint left.
    purges: Vec<Purge>,
    /// What the last after-commit transaction carried, taken back if it fails.
    in_flight: (Vec<(String, Instant)>, Vec<Purge>),
    /// Affinity maps whose purge failed: flushed by the next sync instead.
    flush_next: BTreeSet<&'static str>,
    node: NodeAddressing,
    /// Element counts and kernel caps of the dynamic sets.
    counts: HashMap<&'static str, usize>,
    sizes: HashMap<&'static str, usize>,
    needs_full: bool,
}

/// A partial transaction's ops, grouped so that every reference is valid when sent.
#[derive(Default)]
struct Stages {
    /// Chain and set flushes.
    release: Vec<Op>,
    chains: Vec<Op>,
    rules: Vec<Op>,
}

fn plain(key: Tuple) -> Element {
    Element { key, data: None, comment: None }
}

fn add_chain(stages: &mut Stages, name: &str, rules: &[Vec<Stmt>]) {
    stages.chains.push(Op::AddChain(Chain { name: name.to_owned(), base: None }));
    push_rules(stages, name, rules);
}

fn push_rules(stages: &mut Stages, name: &str, rules: &[Vec<Stmt>]) {
    for r in rules {
        stages.rules.push(Op::AddRule(Rule { chain: name.to_owned(), stmts: r.clone() }));
    }
}

impl Planner {
    pub fn new(cfg: LayoutConfig) -> Self {
        Planner {
            cfg,
            committed: HashMap::new(),
            cluster_refs: RefCounts::default(),
            hairpin_refs: RefCounts::default(),
            shared: BTreeSet::new(),
            stale: BTreeMap::new(),
            purges: Vec::new(),
            in_flight: Default::default(),
            flush_next: BTreeSet::new(),
            node: NodeAddressing::default(),
            counts: HashMap::new(),
            sizes: HashMap::new(),
            needs_full: true,
        }
    }

    pub fn config(&self) -> &LayoutConfig {
        &self.cfg
    }

    /// The next plan replaces everything whatever changes (a set overflow aside, which only
    /// the plan itself finds).
    pub fn next_plan_full(&self, desired: &Desired) -> bool {
        self.needs_full || desired.node().nodeports_all != self.cfg.nodeports_all
    }

    /// Marks the kernel state unknown: the next plan replaces the whole table.
    pub fn invalidate(&mut self) {
        self.needs_full = true;
    }

    /// Builds the next transaction for `desired` and whether it is a full replace.
    /// The planner assumes it commits; call `invalidate` if it did not.
    pub fn plan(&mut self, desired: &mut Desired, force_full: bool) -> (Transaction, bool) {
        let mut dirty = desired.take_dirty();
        // Where NodePorts match is part of the fixed rules: a change there replaces them.
        let all_changed = desired.node().nodeports_all != self.cfg.nodeports_all;
        self.cfg.nodeports_all = desired.node().nodeports_all;
        if force_full || self.needs_full || all_changed {
            return (self.plan_full(desired), true);
        }
        if desired.node().node_ips != self.node.node_ips {
            // The firewall chains depend on whether a node IP is in their ranges.
            dirty.extend(self.committed.values().filter(|sp| !sp.source_ranges.is_empty()).map(|sp| sp.key.clone()));
        }
        match self.plan_partial(desired, &dirty) {
            Some(tx) => (tx, false),
            // A set would outgrow its kernel cap: a full sync recreates it bigger.
            None => (self.plan_full(desired), true),
        }
    }

    fn plan_full(&mut self, desired: &Desired) -> Transaction {
        self.cfg.service_cidrs = desired.service_cidrs().to_vec();
        self.cfg.nodeports_all = desired.node().nodeports_all;
        let mut tx = Transaction::new(self.cfg.family, TABLE);
        let fixed = fixed_ops(&self.cfg);
        // Ensure, delete, recreate: one atomic replace whether or not the table exists.
        tx.push(fixed[0].clone());
        tx.push(Op::DeleteTable);
        tx.ops.extend(fixed);
        self.shared.clear();
        self.stale.clear();
        self.purges.clear();
        self.flush_next.clear();
        self.committed.clear();
        self.cluster_refs.clear();
        self.hairpin_refs.clear();
        self.node = desired.node().clone();
        let node_ips = self.node.node_ips.clone();
        let mut els = ElementOps::default();
        for ip in &self.node.nodeport_ips {
            els.add(NODEPORT_IPS, plain(Tuple::new(&[Val::ip(*ip)])));
        }
        let mut specs: Vec<ServicePort> = desired.values().map(|sp| ServicePort::from_model(sp, &node_ips)).collect();
        specs.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        let endpoints: usize = specs.iter().map(|sp| sp.endpoints.len() + sp.external_endpoints.len()).sum();
        // Room up front: growing vectors of large elements and tables of 100k addresses
        // one doubling at a time copies them again and again.
        els.adds.entry(ENDPOINT_ADDRS).reserve(endpoints);
        els.adds.entry(HAIRPIN).reserve(endpoints);
        els.adds.entry(SERVICE_IPS).reserve(specs.len());
        els.adds.entry(CLUSTER_IPS).reserve(specs.len());
        self.hairpin_refs.reserve(endpoints);
        self.cluster_refs.reserve(specs.len());
        self.committed.reserve(specs.len());
        let mut st = Stages::default();
        tx.ops.reserve(64);
        for sp in specs {
            let r = objects_of(&sp);
            for c in &r.shared {
                if self.shared.insert(*c) {
                    add_chain(&mut st, &c.name(), &c.rules(self.cfg.detector.as_ref()));
                }
            }
            self.own_diff(&ServicePortObjects::default(), &r, &mut st);
            self.add_refs(&r, &mut els);
            for (set, e) in r.elements {
                els.add(set, e);
            }
            self.committed.insert(sp.key.clone(), sp);
        }
        for set in DYNAMIC_SETS {
            let count = els.net_change(set) as usize;
            self.counts.insert(set, count);
            let size = set_size(count, self.sizes.get(set).copied());
            self.sizes.insert(set, size);
        }
        for op in tx.ops.iter_mut() {
            if let Op::AddSet(s) = op {
                if let Some(n) = self.sizes.get(s.name.as_str()) {
                    s.size = Some(*n as u32);
                }
            }
        }
        push_stages(&mut tx, st, els);
        self.needs_full = false;
        tx
    }

    /// The ops that turn `old`'s own chains into `new`'s.
    fn own_diff(&mut self, old: &ServicePortObjects, new: &ServicePortObjects, st: &mut Stages) {
        let old_chains: HashMap<&str, &Vec<Vec<Stmt>>> = old.chains.iter().map(|(n, r)| (n.as_str(), r)).collect();
        let new_chains: HashMap<&str, &Vec<Vec<Stmt>>> = new.chains.iter().map(|(n, r)| (n.as_str(), r)).collect();
        for (name, rules) in &new.chains {
            match old_chains.get(name.as_str()) {
                None => {
                    // A chain flushed earlier and not deleted yet is simply reused.
                    if self.stale.remove(name).is_some() {
                        push_rules(st, name, rules);
                    } else {
                        add_chain(st, name, rules);
                    }
                }
                Some(o) if *o != rules => {
                    st.release.push(Op::FlushChain(name.clone()));
                    push_rules(st, name, rules);
                }
                Some(_) => {}
            }
        }
        for (name, _) in &old.chains {
            if !new_chains.contains_key(name.as_str()) {
                st.release.push(Op::FlushChain(name.clone()));
                self.stale.insert(name.clone(), Instant::now());
            }
        }
        // Clients of an endpoint or a path that left are deleted after the commit, when
        // nothing records them any more; the map cannot be searched by value here.
        for a in &old.affinity {
            let gone = match new.affinity.iter().find(|n| n.map == a.map && n.prefix == a.prefix) {
                Some(now) => {
                    let gone: Vec<Ep> = a.endpoints.iter().filter(|e| !now.endpoints.contains(e)).copied().collect();
                    if gone.is_empty() {
                        continue;
                    }
                    Some(gone)
                }
                None => None,
            };
            self.purges.push(Purge { map: a.map, prefix: a.prefix, gone });
        }
    }

    fn add_refs(&mut self, r: &ServicePortObjects, els: &mut ElementOps) {
        if let Some(ip) = r.cluster_ip {
            if bump(&mut self.cluster_refs, ip) {
                els.add(CLUSTER_IPS, plain(Tuple::new(&[Val::ip(ip)])));
            }
        }
        for ip in &r.hairpins {
            if bump(&mut self.hairpin_refs, *ip) {
                els.add(HAIRPIN, plain(Tuple::new(&[Val::ip(*ip), Val::ip(*ip)])));
            }
        }
    }

    fn drop_refs(&mut self, r: &ServicePortObjects, els: &mut ElementOps) {
        if let Some(ip) = r.cluster_ip {
            if unbump(&mut self.cluster_refs, ip) {
                els.del(CLUSTER_IPS, Tuple::new(&[Val::ip(ip)]));
            }
        }
        for ip in &r.hairpins {
            if unbump(&mut self.hairpin_refs, *ip) {
                els.del(HAIRPIN, Tuple::new(&[Val::ip(*ip), Val::ip(*ip)]));
            }
        }
    }

    /// The diff for the ServicePorts changed since the last sync, or None if a
    /// set would overflow its kernel cap.
    fn plan_partial(&mut self, desired: &Desired, dirty: &BTreeSet<String>) -> Option<Transaction> {
        let mut tx = Transaction::new(self.cfg.family, TABLE);
        let mut els = ElementOps::default();
        let mut st = Stages::default();
        // Affinity maps whose purge failed: their clients start over.
        for set in std::mem::take(&mut self.flush_next) {
            st.release.push(Op::FlushSet(set.into()));
        }
        if desired.service_cidrs() != self.cfg.service_cidrs {
            self.cfg.service_cidrs = desired.service_cidrs().to_vec();
            st.release.push(Op::FlushChain(CLUSTER_IPS_CHECK.into()));
            push_rules(&mut st, CLUSTER_IPS_CHECK, &cluster_ips_check_rules(&self.cfg));
        }
        let node = desired.node().clone();
        for ip in self.node.nodeport_ips.iter().filter(|ip| !node.nodeport_ips.contains(ip)) {
            els.del(NODEPORT_IPS, Tuple::new(&[Val::ip(*ip)]));
        }
        for ip in node.nodeport_ips.iter().filter(|ip| !self.node.nodeport_ips.contains(ip)) {
            els.add(NODEPORT_IPS, plain(Tuple::new(&[Val::ip(*ip)])));
        }
        self.node = node;
        let node_ips = self.node.node_ips.clone();
        for key in dirty {
            let old_sp = self.committed.remove(key);
            let new_sp = desired.get(key).map(|sp| ServicePort::from_model(sp, &node_ips)).map(|sp| match &old_sp {
                Some(o) => sp.keeping_slots_of(o),
                None => sp,
            });
            let empty = ServicePortObjects::default();
            let old = old_sp.as_ref().map(objects_of);
            let new = new_sp.as_ref().map(objects_of);
            let (o, n) = (old.as_ref().unwrap_or(&empty), new.as_ref().unwrap_or(&empty));
            for c in &n.shared {
                if self.shared.insert(*c) {
                    add_chain(&mut st, &c.name(), &c.rules(self.cfg.detector.as_ref()));
                }
            }
            diff_elements(&o.elements, &n.elements, &mut els);
            self.own_diff(o, n, &mut st);
            self.drop_refs(o, &mut els);
            self.add_refs(n, &mut els);
            if let Some(sp) = new_sp {
                self.committed.insert(key.clone(), sp);
            }
        }
        // An address whose refcount went 1→0→1 within this plan is both deleted and re-added: cancel out.
        cancel_readds(&mut els);
        let guarded = crate::fault::unguarded_set_size().is_none();
        for set in DYNAMIC_SETS {
            let count = (self.counts.get(set).copied().unwrap_or(0) as isize + els.net_change(set)).max(0) as usize;
            if guarded && count > self.sizes.get(set).copied().unwrap_or(0) {
                return None;
            }
            self.counts.insert(set, count);
        }
        for (set, keys) in els.dels.take() {
            tx.push(Op::DeleteElements { set: set.into(), keys });
        }
        push_stages(&mut tx, st, els);
        Some(tx)
    }

    /// `after_commit` has something to do: purges, or stale chains old enough to delete.
    pub fn after_commit_due(&self) -> bool {
        let now = Instant::now();
        !self.purges.is_empty() || self.stale.values().any(|t| now.duration_since(*t) >= STALE_CHAIN_DELAY)
    }

    /// The best-effort transaction after a commit: own chains flushed at least
    /// STALE_CHAIN_DELAY ago are deleted, and affinity clients of endpoints that left.
    pub fn after_commit(&mut self, read: &mut ReadSet<'_>) -> Result<Option<Transaction>, NftError> {
        let mut tx = Transaction::new(self.cfg.family, TABLE);
        let now = Instant::now();
        let ripe: Vec<(String, Instant)> =
            self.stale.iter().filter(|(_, t)| now.duration_since(**t) >= STALE_CHAIN_DELAY).map(|(n, t)| (n.clone(), *t)).collect();
        for (name, _) in &ripe {
            self.stale.remove(name);
            tx.push(Op::DeleteChain(name.clone()));
        }
        let purges = std::mem::take(&mut self.purges);
        self.in_flight = (ripe, purges.clone());
        let alen = self.cfg.family.addr_len();
        let maps: BTreeSet<&'static str> = purges.iter().map(|p| p.map).collect();
        for map in maps {
            let here: Vec<(&Purge, Vec<u8>)> = purges.iter().filter(|p| p.map == map).map(|p| (p, vals_bytes(&p.prefix))).collect();
            // A dump is no snapshot: the packet path may add entries mid-dump, and an entry
            // can be listed twice; a key deleted twice fails the whole batch.
            let mut keys = BTreeSet::new();
            for (k, d) in read(map)? {
                let Some(client) = k.get(..alen).and_then(addr_val) else { continue };
                let hit = here.iter().find(|(p, prefix)| {
                    k[alen..] == prefix[..]
                        && p.gone.as_ref().is_none_or(|g| g.iter().any(|e| vals_bytes(&[Val::ip(e.0), Val::Port(e.1)]) == d))
                });
                if let Some((p, _)) = hit {
                    keys.insert(Tuple::new(&[client]).extend_from(&p.prefix));
                }
            }
            if !keys.is_empty() {
                tx.push(Op::DeleteElements { set: map.into(), keys: keys.into_iter().collect() });
            }
        }
        Ok((!tx.is_empty()).then_some(tx))
    }

    /// The after-commit transaction failed: chains wait for the next one; affinity maps
    /// that could not be purged are flushed by the next sync.
    pub fn after_commit_failed(&mut self) {
        let (ripe, purges) = std::mem::take(&mut self.in_flight);
        self.stale.extend(ripe);
        self.flush_next.extend(purges.iter().map(|p| p.map));
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

/// Affinity entries to delete: keys of `map` with `prefix` after the client, pointing at
/// an endpoint in `gone` (None: at any, the path itself left).
#[derive(Debug, Clone)]
struct Purge {
    map: &'static str,
    prefix: Tuple,
    gone: Option<Vec<Ep>>,
}

/// Element bytes of `vals`, as the kernel lists them.
fn vals_bytes(vals: &[Val]) -> Vec<u8> {
    let mut out = Vec::new();
    kproxy_nftables::atoms::put_vals(&mut out, vals);
    out
}

/// A client address from its bytes.
fn addr_val(k: &[u8]) -> Option<Val> {
    let ip: IpAddr = match k.len() {
        4 => <[u8; 4]>::try_from(k).ok()?.into(),
        16 => <[u8; 16]>::try_from(k).ok()?.into(),
        _ => return None,
    };
    Some(Val::ip(ip))
}

/// Element changes from `old` to `new`; a changed value is a delete then an add.
fn diff_elements(old: &[(&'static str, Element)], new: &[(&'static str, Element)], els: &mut ElementOps) {
    let index = |v: &'_ [(&'static str, Element)]| -> HashMap<(&'static str, Tuple), Element> {
        v.iter().map(|(s, e)| ((*s, e.key), e.clone())).collect()
    };
    let (o, n) = (index(old), index(new));
    for (set, e) in old {
        if n.get(&(*set, e.key)) != Some(e) {
            els.del(set, e.key);
        }
    }
    for (set, e) in new {
        if o.get(&(*set, e.key)) != Some(e) {
            els.add(set, e.clone());
        }
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
    els.dels.drop_empty();
    els.adds.drop_empty();
}

/// Appends the staged ops in an order where every reference exists when sent.
fn push_stages(tx: &mut Transaction, st: Stages, mut els: ElementOps) {
    tx.ops.extend(st.release);
    tx.ops.extend(st.chains);
    tx.ops.extend(st.rules);
    for (set, elems) in els.adds.take() {
        tx.push(Op::AddElements { set: set.into(), elems });
    }
}
