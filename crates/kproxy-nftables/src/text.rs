//! Renders transactions as `nft -f` text: the same operations the netlink
//! encoder sends, in nft's own syntax (debug logs, `plan`, the nft baseline).

use std::fmt::Write as _;

use crate::atoms::{render_vals, Family};
use crate::objects::{Chain, ChainType, Element, SetDef};
use crate::stmt::render_rule;
use crate::tx::{Op, Transaction};

/// Comments are quoted strings in nft syntax; drop characters that would end them.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace(['"', '\\', '\n'], ""))
}

pub fn chain_line(f: Family, table: &str, c: &Chain) -> String {
    match &c.base {
        None => format!("add chain {} {table} {}", f.keyword(), c.name),
        Some(b) => format!(
            "add chain {} {table} {} {{ type {} hook {} priority {} ; }}",
            f.keyword(),
            c.name,
            if b.ty == ChainType::Nat { "nat" } else { "filter" },
            b.hook.name(),
            b.priority
        ),
    }
}

pub fn set_line(f: Family, table: &str, s: &SetDef) -> String {
    let kind = if s.is_map() { "map" } else { "set" };
    let mut line = format!("add {kind} {} {table} {} {{ {} ;", f.keyword(), s.name, s.decl);
    if let Some(size) = s.size {
        let _ = write!(line, " size {size} ;");
    }
    if let Some(c) = &s.comment {
        let _ = write!(line, " comment {} ;", quote(c));
    }
    line.push_str(" }");
    line
}

pub fn element_line(f: Family, table: &str, set: &str, e: &Element) -> String {
    let mut line = format!("add element {} {table} {set} {{ {}", f.keyword(), render_vals(&e.key));
    if let Some(c) = &e.comment {
        let _ = write!(line, " comment {}", quote(c));
    }
    if let Some(d) = &e.data {
        let _ = write!(line, " : {d}");
    }
    line.push_str(" }");
    line
}

pub fn render_tx(tx: &Transaction) -> String {
    let f = tx.family;
    let fam = f.keyword();
    let t = &tx.table;
    let mut out = String::new();
    for op in &tx.ops {
        match op {
            Op::AddTable(table) => {
                let _ = match &table.comment {
                    Some(c) => writeln!(out, "add table {fam} {t} {{ comment {} ; }}", quote(c)),
                    None => writeln!(out, "add table {fam} {t}"),
                };
            }
            Op::DeleteTable => {
                let _ = writeln!(out, "delete table {fam} {t}");
            }
            Op::AddChain(c) => {
                out.push_str(&chain_line(f, t, c));
                out.push('\n');
            }
            Op::FlushChain(c) => {
                let _ = writeln!(out, "flush chain {fam} {t} {c}");
            }
            Op::DeleteChain(c) => {
                let _ = writeln!(out, "delete chain {fam} {t} {c}");
            }
            Op::AddRule(r) => {
                let _ = writeln!(out, "add rule {fam} {t} {} {}", r.chain, render_rule(f, &r.stmts));
            }
            Op::AddSet(s) => {
                out.push_str(&set_line(f, t, s));
                out.push('\n');
            }
            Op::DeleteSet(s) => {
                let _ = writeln!(out, "delete set {fam} {t} {s}");
            }
            Op::FlushSet(s) => {
                let _ = writeln!(out, "flush set {fam} {t} {s}");
            }
            Op::AddElements { set, elems } => {
                for e in elems {
                    out.push_str(&element_line(f, t, set, e));
                    out.push('\n');
                }
            }
            Op::DeleteElements { set, keys } => {
                for k in keys {
                    let _ = writeln!(out, "delete element {fam} {t} {set} {{ {} }}", render_vals(k));
                }
            }
        }
    }
    out
}
