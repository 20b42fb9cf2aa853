//! A tracer: runs one new connection's first packet through the fake's
//! ruleset, hook by hook in the kernel's order, and says what happens to it.
//! `Stmt` is a closed enum, so every statement kproxy can write has a meaning
//! here by construction. Random load balancing is explored exhaustively: each
//! `numgen random mod N` forks the trace N ways, one outcome per choice.

use std::net::IpAddr;

use crate::atoms::{Family, Tuple, Val, Verdict};
use crate::cidr::Cidr;
use crate::fake::{Fake, TableState};
use crate::objects::{ElemData, Hook};
use crate::stmt::{render_rule, Field, Stmt};

/// The first packet of a new connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub dport: u16,
    /// Sent by the node itself (output hooks), not received (prerouting).
    pub from_node: bool,
    /// The interface it came in on (prerouting); None for the node's own traffic.
    pub iif: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fate {
    /// Passed every hook; `dnat` says whether its destination was rewritten.
    Accept,
    Drop,
    /// Rejected with a TCP reset.
    RejectTcpReset,
    /// Rejected with ICMP(v6) port unreachable.
    RejectIcmp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub fate: Fate,
    pub dnat: Option<(IpAddr, u16)>,
    pub masquerade: bool,
    /// Comments of the map elements the packet matched (kproxy: "ns/svc:port").
    pub comments: Vec<String>,
    /// "table chain: rule" for every rule whose matches all held, in order.
    pub path: Vec<String>,
}

/// Bounds the exploration: more random choices than this are not enumerated.
const MAX_RUNS: usize = 4096;
const MAX_DEPTH: usize = 64;

struct Run<'a> {
    family: Family,
    fake: &'a Fake,
    /// Choices for successive numgen expressions; past the end, 0 is used and the modulus recorded.
    script: &'a [u32],
    used: usize,
    moduli: Vec<u32>,
    src: IpAddr,
    dst: IpAddr,
    dport: u16,
    /// The destination before any DNAT (`ct original`).
    orig: (IpAddr, u16),
    proto: u8,
    from_node: bool,
    iif: Option<&'a str>,
    /// Prefixes of the node's own addresses (`fib ... type local`).
    local: &'a [Cidr],
    mark: u32,
    dnat: Option<(IpAddr, u16)>,
    masquerade: bool,
    comments: Vec<String>,
    path: Vec<String>,
}

/// How a chain ended.
enum End {
    /// Fell off the end or `return`ed.
    Return,
    /// accept, or a terminal statement that accepts (dnat, masquerade).
    Accept,
    Final(Fate),
}

impl<'a> Run<'a> {
    fn numgen(&mut self, n: u32) -> u32 {
        let v = if self.used < self.script.len() {
            self.script[self.used]
        } else {
            self.moduli.push(n);
            0
        };
        self.used += 1;
        v % n.max(1)
    }

    fn key(&mut self, fields: &[Field]) -> Tuple {
        let mut t = Tuple::new(&[]);
        for f in fields {
            let v = match f {
                Field::Saddr => Val::ip(self.src),
                Field::Daddr => Val::ip(self.dst),
                Field::L4Proto => Val::Proto(self.proto),
                Field::Dport => Val::Port(self.dport),
                Field::CtOrigDaddr => Val::ip(self.orig.0),
                Field::CtOrigProtoDst => Val::Port(self.orig.1),
                Field::NumgenRandom(n) => Val::Int(self.numgen(*n)),
                Field::Value(v) => *v,
            };
            t = t.with(v);
        }
        t
    }

    fn lookup(&mut self, table: &TableState, set: &str, key: &Tuple) -> Option<Option<ElemData>> {
        let (data, comment) = table.sets.get(set)?.elems.get(key)?;
        if let Some(c) = comment {
            self.comments.push(c.clone());
        }
        Some(data.clone())
    }

    fn chain(&mut self, tname: &str, table: &TableState, name: &str, depth: usize) -> End {
        let Some(chain) = table.chains.get(name) else { return End::Final(Fate::Drop) };
        if depth > MAX_DEPTH {
            return End::Final(Fate::Drop);
        }
        'rules: for rule in &chain.rules {
            for (i, st) in rule.iter().enumerate() {
                let fired = |run: &mut Run| run.path.push(format!("{tname} {name}: {}", render_rule(run.family, rule)));
                match st {
                    Stmt::CtStateNew => {}
                    Stmt::CtStatusDnat => {
                        if self.dnat.is_none() {
                            continue 'rules;
                        }
                    }
                    Stmt::L4Proto(p) => {
                        if self.proto != *p {
                            continue 'rules;
                        }
                    }
                    Stmt::DportIs(p) => {
                        if self.dport != *p {
                            continue 'rules;
                        }
                    }
                    Stmt::AddrIn { field, cidr, negate } => {
                        let a = if *field == Field::Daddr { self.dst } else { self.src };
                        if cidr.contains(&a) == *negate {
                            continue 'rules;
                        }
                    }
                    Stmt::FibLocal { daddr } => {
                        let local = if *daddr {
                            self.local.iter().any(|c| c.contains(&self.dst))
                        } else {
                            self.from_node || self.local.iter().any(|c| c.contains(&self.src))
                        };
                        if !local {
                            continue 'rules;
                        }
                    }
                    Stmt::IifName { name, prefix, negate } => {
                        let iif = self.iif.unwrap_or("");
                        let hit = if *prefix { iif.starts_with(name.as_str()) } else { iif == name };
                        if hit == *negate {
                            continue 'rules;
                        }
                    }
                    // The packet path's own state (affinity) is not modelled: every client is new.
                    Stmt::UpdateSet { .. } => {}
                    Stmt::DnatTo { addr, port } => {
                        fired(self);
                        self.dst = *addr;
                        self.dport = *port;
                        self.dnat = Some((*addr, *port));
                        return End::Accept;
                    }
                    Stmt::InSet { fields, set } => {
                        let k = self.key(fields);
                        if self.lookup(table, set, &k).is_none() {
                            continue 'rules;
                        }
                    }
                    Stmt::MarkBitsClear(m) => {
                        if self.mark & m != 0 {
                            continue 'rules;
                        }
                    }
                    Stmt::MarkOr(m) => self.mark |= m,
                    Stmt::MarkXor(m) => self.mark ^= m,
                    Stmt::Vmap { fields, map } => {
                        let k = self.key(fields);
                        let Some(Some(ElemData::Verdict(v))) = self.lookup(table, map, &k) else { continue 'rules };
                        fired(self);
                        match self.verdict(tname, table, name, &v, depth) {
                            Some(end) => return end,
                            None => continue 'rules,
                        }
                    }
                    Stmt::DnatMap { fields, map } => {
                        let k = self.key(fields);
                        let Some(Some(ElemData::Vals(v))) = self.lookup(table, map, &k) else { continue 'rules };
                        let addr = match v.first() {
                            Some(Val::V4(a)) => IpAddr::V4(*a),
                            Some(Val::V6(a)) => IpAddr::V6(*a),
                            _ => continue 'rules,
                        };
                        let port = match v.get(1) {
                            Some(Val::Port(p)) => *p,
                            _ => self.dport,
                        };
                        fired(self);
                        self.dst = addr;
                        self.dport = port;
                        self.dnat = Some((addr, port));
                        return End::Accept;
                    }
                    Stmt::MasqueradeFullyRandom => {
                        fired(self);
                        self.masquerade = true;
                        return End::Accept;
                    }
                    Stmt::RejectTcpReset | Stmt::Reject => {
                        fired(self);
                        let tcp_reset = matches!(st, Stmt::RejectTcpReset);
                        return End::Final(if tcp_reset { Fate::RejectTcpReset } else { Fate::RejectIcmp });
                    }
                    Stmt::Verdict(v) => {
                        fired(self);
                        match self.verdict(tname, table, name, v, depth) {
                            Some(end) => return end,
                            None => continue 'rules,
                        }
                    }
                }
                if i + 1 == rule.len() {
                    fired(self);
                }
            }
        }
        End::Return
    }

    /// Applies a verdict; None means "go on with the next rule" (a jump that returned).
    fn verdict(&mut self, tname: &str, table: &TableState, _from: &str, v: &Verdict, depth: usize) -> Option<End> {
        match v {
            Verdict::Accept => Some(End::Accept),
            Verdict::Drop => Some(End::Final(Fate::Drop)),
            Verdict::Return => Some(End::Return),
            Verdict::Jump(c) => match self.chain(tname, table, c, depth + 1) {
                End::Return => None,
                end => Some(end),
            },
            // goto: the called chain's return returns from the caller too.
            Verdict::Goto(c) => Some(self.chain(tname, table, c, depth + 1)),
        }
    }

    /// Runs every base chain on `hook`, across tables, by priority. None: the packet goes on.
    fn hook(&mut self, hook: Hook) -> Option<Fate> {
        let mut chains: Vec<(i32, &str, &TableState, &str)> = Vec::new();
        for (tname, t) in self.fake.tables_of(self.family) {
            for (cname, c) in &t.chains {
                if let Some(b) = c.base.as_ref().filter(|b| b.hook == hook) {
                    chains.push((b.priority, tname, t, cname.as_str()));
                }
            }
        }
        chains.sort_by(|a, b| (a.0, a.1, a.3).cmp(&(b.0, b.1, b.3)));
        for (_, tname, t, cname) in chains {
            if let End::Final(f) = self.chain(tname, t, cname, 0) {
                return Some(f);
            }
        }
        None
    }
}

fn run_once<'a>(fake: &'a Fake, family: Family, p: &'a Packet, local: &'a [Cidr], script: &'a [u32]) -> (Outcome, Vec<u32>) {
    let mut r = Run {
        family,
        fake,
        script,
        used: 0,
        moduli: Vec::new(),
        src: p.src,
        dst: p.dst,
        dport: p.dport,
        orig: (p.dst, p.dport),
        proto: p.proto,
        from_node: p.from_node,
        iif: p.iif.as_deref(),
        local,
        mark: 0,
        dnat: None,
        masquerade: false,
        comments: Vec::new(),
        path: Vec::new(),
    };
    // The kernel's order for a new connection. After prerouting, routing decides: a
    // destination the node delivers locally (`local`) goes to input, anything else is forwarded.
    let mut fate = Fate::Accept;
    let first = if p.from_node { Hook::Output } else { Hook::Prerouting };
    if let Some(f) = r.hook(first) {
        fate = f;
    } else {
        // Routing: the node's own traffic leaves through postrouting, and if it is for one of
        // the node's addresses comes back through input (over loopback); received traffic goes
        // to input when it is for the node, else it is forwarded and leaves through postrouting.
        let to_node = local.iter().any(|c| c.contains(&r.dst));
        let hooks: &[Hook] = match (p.from_node, to_node) {
            (true, true) => &[Hook::Postrouting, Hook::Input],
            (true, false) => &[Hook::Postrouting],
            (false, true) => &[Hook::Input],
            (false, false) => &[Hook::Forward, Hook::Postrouting],
        };
        for h in hooks {
            if let Some(f) = r.hook(*h) {
                fate = f;
                break;
            }
        }
    }
    let out = Outcome { fate, dnat: r.dnat, masquerade: r.masquerade, comments: r.comments, path: r.path };
    (out, r.moduli)
}

/// Every outcome the packet can have, one per combination of random choices, on a node
/// that delivers nothing locally but its own traffic (ClusterIPs are not local addresses).
pub fn trace(fake: &Fake, family: Family, p: &Packet) -> Vec<Outcome> {
    trace_with_local(fake, family, p, &[])
}

/// As `trace`, on a node that delivers destinations in `local` to itself (input hook).
pub fn trace_with_local(fake: &Fake, family: Family, p: &Packet, local: &[Cidr]) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut pending: Vec<Vec<u32>> = vec![Vec::new()];
    while let Some(script) = pending.pop() {
        if outcomes.len() >= MAX_RUNS {
            break;
        }
        let (out, moduli) = run_once(fake, family, p, local, &script);
        outcomes.push(out);
        // New numgen expressions beyond the script: fork on every other value of the first one.
        if let Some(n) = moduli.first() {
            for v in (1..*n).rev() {
                let mut s = script.clone();
                s.push(v);
                pending.push(s);
            }
            let mut s0 = script;
            s0.push(0);
            // The 0 branch has run already (as `out`); continue it deeper only if it forks again.
            if moduli.len() > 1 {
                pending.push(s0);
                outcomes.pop();
            }
        }
    }
    outcomes
}
