//! An in-memory nf_tables with the kernel's semantics for the operations
//! kproxy uses: transactions apply all-or-nothing, dangling references and
//! busy deletes fail with the kernel's errno. `dump` prints sorted nft text.

use std::collections::BTreeMap;

use crate::atoms::{Family, Tuple};
use crate::objects::{BaseChain, Chain, ElemData, Element, SetDef};
use crate::stmt::{render_rule, Stmt};
use crate::text::{chain_line, element_line, quote, set_line};
use crate::tx::{Op, Transaction};

const ENOENT: i32 = 2;
const EEXIST: i32 = 17;
const EBUSY: i32 = 16;
const ENFILE: i32 = 23;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeError {
    pub errno: i32,
    pub op_index: usize,
    pub what: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ChainState {
    pub(crate) base: Option<BaseChain>,
    pub(crate) rules: Vec<Vec<Stmt>>,
}

#[derive(Debug, Clone)]
pub(crate) struct SetState {
    def: SetDef,
    pub(crate) elems: BTreeMap<Tuple, (Option<ElemData>, Option<String>)>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct TableState {
    comment: Option<String>,
    pub(crate) chains: BTreeMap<String, ChainState>,
    pub(crate) sets: BTreeMap<String, SetState>,
}

#[derive(Debug, Clone, Default)]
pub struct Fake {
    tables: BTreeMap<(Family, String), TableState>,
    /// Refuse the next transaction with this errno (tests of failure handling).
    fail_next: Option<i32>,
}

fn err(errno: i32, op_index: usize, what: impl Into<String>) -> FakeError {
    FakeError { errno, op_index, what: what.into() }
}

impl Fake {
    pub fn new() -> Self {
        Self::default()
    }

    /// The tables of one family, for the tracer.
    pub(crate) fn tables_of(&self, f: Family) -> impl Iterator<Item = (&str, &TableState)> {
        self.tables.iter().filter(move |((tf, _), _)| *tf == f).map(|((_, n), t)| (n.as_str(), t))
    }

    pub fn has_table(&self, f: Family, name: &str) -> bool {
        self.tables.contains_key(&(f, name.to_owned()))
    }

    /// Deletes a table behind kproxy's back, like another process would.
    pub fn remove_table(&mut self, f: Family, name: &str) {
        self.tables.remove(&(f, name.to_owned()));
    }

    /// Makes the next `apply` fail with `errno`, as a kernel refusing the batch would.
    pub fn fail_next(&mut self, errno: i32) {
        self.fail_next = Some(errno);
    }

    /// Applies the whole transaction, or nothing.
    pub fn apply(&mut self, tx: &Transaction) -> Result<(), FakeError> {
        if let Some(errno) = self.fail_next.take() {
            return Err(err(errno, 0, "injected failure"));
        }
        let mut next = self.tables.clone();
        let key = (tx.family, tx.table.clone());
        for (i, op) in tx.ops.iter().enumerate() {
            if let Op::AddTable(t) = op {
                next.entry(key.clone()).or_default().comment = t.comment.clone();
                continue;
            }
            if let Op::DeleteTable = op {
                if next.remove(&key).is_none() {
                    return Err(err(ENOENT, i, "delete table: no such table"));
                }
                continue;
            }
            let table = next.get_mut(&key).ok_or_else(|| err(ENOENT, i, "no such table"))?;
            apply_op(table, op).map_err(|(errno, what)| err(errno, i, what))?;
        }
        self.tables = next;
        Ok(())
    }

    /// The table's contents as sorted `nft -f` text that recreates it.
    /// A set's elements as `Conn::list_elements` returns them (key bytes, data bytes).
    pub fn list_elements(&self, f: Family, table: &str, set: &str) -> Result<Vec<crate::objects::ElementBytes>, FakeError> {
        let t = self.tables.get(&(f, table.to_owned())).ok_or_else(|| err(ENOENT, 0, format!("list set {set}: no such table")))?;
        let s = t.sets.get(set).ok_or_else(|| err(ENOENT, 0, format!("list set {set}: no such set")))?;
        Ok(s.elems
            .iter()
            .map(|(k, (d, _))| {
                let (mut key, mut data) = (Vec::new(), Vec::new());
                crate::atoms::put_vals(&mut key, k);
                if let Some(ElemData::Vals(v)) = d {
                    crate::atoms::put_vals(&mut data, v);
                }
                (key, data)
            })
            .collect())
    }

    pub fn dump(&self, f: Family, name: &str) -> String {
        let Some(t) = self.tables.get(&(f, name.to_owned())) else { return String::new() };
        let mut out = String::new();
        let fam = f.keyword();
        match &t.comment {
            Some(c) => out.push_str(&format!("add table {fam} {name} {{ comment {} ; }}\n", quote(c))),
            None => out.push_str(&format!("add table {fam} {name}\n")),
        }
        for (cname, c) in &t.chains {
            out.push_str(&chain_line(f, name, &Chain { name: cname.clone(), base: c.base.clone() }));
            out.push('\n');
        }
        for s in t.sets.values() {
            out.push_str(&set_line(f, name, &s.def));
            out.push('\n');
        }
        for (cname, c) in &t.chains {
            for r in &c.rules {
                out.push_str(&format!("add rule {fam} {name} {cname} {}\n", render_rule(f, r)));
            }
        }
        for (sname, s) in &t.sets {
            for (k, (d, c)) in &s.elems {
                let e = Element { key: *k, data: d.clone(), comment: c.clone() };
                out.push_str(&element_line(f, name, sname, &e));
                out.push('\n');
            }
        }
        out
    }
}

fn chain_referenced(t: &TableState, name: &str) -> bool {
    let in_rules = t.chains.values().any(|c| c.rules.iter().flatten().any(|s| s.chain_ref() == Some(name)));
    let in_maps =
        t.sets.values().any(|s| s.elems.values().any(|(d, _)| matches!(d, Some(ElemData::Verdict(v)) if v.chain() == Some(name))));
    in_rules || in_maps
}

fn apply_op(t: &mut TableState, op: &Op) -> Result<(), (i32, String)> {
    match op {
        Op::AddTable(_) | Op::DeleteTable => unreachable!("handled by apply"),
        Op::AddChain(c) => {
            t.chains.entry(c.name.clone()).or_insert_with(|| ChainState { base: c.base.clone(), rules: vec![] });
        }
        Op::FlushChain(name) => {
            t.chains.get_mut(name).ok_or((ENOENT, format!("flush chain {name}: no such chain")))?.rules.clear();
        }
        Op::DeleteChain(name) => {
            let c = t.chains.get(name).ok_or((ENOENT, format!("delete chain {name}: no such chain")))?;
            if !c.rules.is_empty() || chain_referenced(t, name) {
                return Err((EBUSY, format!("delete chain {name}: chain in use")));
            }
            t.chains.remove(name);
        }
        Op::AddRule(r) => {
            for s in &r.stmts {
                if let Some(c) = s.chain_ref() {
                    if !t.chains.contains_key(c) {
                        return Err((ENOENT, format!("rule in {}: no such chain {c}", r.chain)));
                    }
                }
                if let Some(set) = s.set_ref() {
                    if !t.sets.contains_key(set) {
                        return Err((ENOENT, format!("rule in {}: no such set {set}", r.chain)));
                    }
                }
            }
            t.chains.get_mut(&r.chain).ok_or((ENOENT, format!("add rule: no such chain {}", r.chain)))?.rules.push(r.stmts.clone());
        }
        Op::AddSet(s) => {
            t.sets.entry(s.name.clone()).or_insert_with(|| SetState { def: s.clone(), elems: BTreeMap::new() });
        }
        Op::DeleteSet(name) => {
            if !t.sets.contains_key(name) {
                return Err((ENOENT, format!("delete set {name}: no such set")));
            }
            if t.chains.values().any(|c| c.rules.iter().flatten().any(|s| s.set_ref() == Some(name.as_str()))) {
                return Err((EBUSY, format!("delete set {name}: set in use")));
            }
            t.sets.remove(name);
        }
        Op::FlushSet(name) => {
            t.sets.get_mut(name).ok_or((ENOENT, format!("flush set {name}: no such set")))?.elems.clear();
        }
        Op::AddElements { set, elems } => {
            for e in elems {
                if let Some(ElemData::Verdict(v)) = &e.data {
                    if let Some(c) = v.chain() {
                        if !t.chains.contains_key(c) {
                            return Err((ENOENT, format!("element of {set}: no such chain {c}")));
                        }
                    }
                }
            }
            let s = t.sets.get_mut(set).ok_or((ENOENT, format!("add element: no such set {set}")))?;
            for e in elems {
                if let Some(max) = s.def.size {
                    if s.elems.len() >= max as usize && !s.elems.contains_key(&e.key) {
                        return Err((ENFILE, format!("set {set} is full ({max} elements)")));
                    }
                }
                match s.elems.get(&e.key) {
                    Some((d, _)) if *d != e.data => return Err((EEXIST, format!("element of {set}: key exists with other data"))),
                    _ => {
                        s.elems.insert(e.key, (e.data.clone(), e.comment.clone()));
                    }
                }
            }
        }
        Op::DeleteElements { set, keys } => {
            let s = t.sets.get_mut(set).ok_or((ENOENT, format!("delete element: no such set {set}")))?;
            for k in keys {
                if s.elems.remove(k).is_none() {
                    return Err((ENOENT, format!("delete element of {set}: no such element")));
                }
            }
        }
    }
    Ok(())
}
