//! `iptables-restore --noflush` input, chain by chain: per table the declarations (each
//! flushes its chain and leaves every other one alone), the rules, then the deletions. As one
//! restore, or as several applied in turn (iptables-nft-restore's time grows with the jump
//! rules of one input times the chains they jump to: a full program at 10k Services takes
//! minutes as one input, seconds in pieces). The pieces go bottom-up: a chain comes after
//! every written chain it jumps to, and the deletions come last, so each restore in turn
//! leaves only chains whose targets exist, each one whole (old or new).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;

use super::restore::{render_rule, Chain, TableName, Target};

struct Written {
    name: String,
    text: String,
    rules: usize,
    /// The chains its rules jump to.
    targets: Vec<String>,
}

#[derive(Default)]
struct TableInput {
    chains: Vec<Written>,
    deletes: Vec<String>,
}

pub struct RestoreWriter {
    v6: bool,
    tables: BTreeMap<TableName, TableInput>,
}

impl RestoreWriter {
    pub fn new(v6: bool) -> Self {
        Self { v6, tables: BTreeMap::new() }
    }

    pub fn write(&mut self, table: TableName, c: &Chain) {
        let mut text = String::new();
        let mut targets = Vec::new();
        for r in &c.rules {
            writeln!(text, "{}", render_rule(&c.name, r, self.v6)).unwrap();
            if let Target::Jump(t) = &r.target {
                targets.push(t.clone());
            }
        }
        let chains = &mut self.tables.entry(table).or_default().chains;
        chains.push(Written { name: c.name.clone(), text, rules: c.rules.len(), targets });
    }

    /// A chain no longer wanted: declared (so flushed, dropping its jumps), then deleted.
    pub fn delete(&mut self, table: TableName, name: &str) {
        self.tables.entry(table).or_default().deletes.push(name.to_string());
    }

    /// Rules written, per table.
    pub fn rules(&self) -> Vec<(TableName, usize)> {
        self.tables.iter().map(|(t, i)| (*t, i.chains.iter().map(|c| c.rules).sum())).collect()
    }

    /// One restore with everything ('' when there is nothing to write).
    pub fn finish(self) -> String {
        let mut out = String::new();
        for (name, t) in &self.tables {
            let chains: Vec<&Written> = t.chains.iter().collect();
            section(&mut out, *name, &chains, &t.deletes);
        }
        out
    }

    /// Restores to apply in turn, none with more than `max_jumps` jump rules (but a chain
    /// that has more alone); one when everything fits.
    pub fn finish_chunked(self, max_jumps: usize) -> Vec<String> {
        let mut out = Vec::new();
        for (name, t) in &self.tables {
            let mut piece: Vec<&Written> = Vec::new();
            let mut jumps = 0;
            for c in bottom_up(&t.chains) {
                if !piece.is_empty() && jumps + c.targets.len() > max_jumps {
                    let mut text = String::new();
                    section(&mut text, *name, &piece, &[]);
                    out.push(text);
                    piece.clear();
                    jumps = 0;
                }
                jumps += c.targets.len();
                piece.push(c);
            }
            if !piece.is_empty() || !t.deletes.is_empty() {
                let mut text = String::new();
                section(&mut text, *name, &piece, &t.deletes);
                out.push(text);
            }
        }
        out
    }
}

fn section(out: &mut String, table: TableName, chains: &[&Written], deletes: &[String]) {
    if chains.is_empty() && deletes.is_empty() {
        return;
    }
    writeln!(out, "*{}", table.as_str()).unwrap();
    for name in chains.iter().map(|c| &c.name).chain(deletes) {
        writeln!(out, ":{name} - [0:0]").unwrap();
    }
    for c in chains {
        out.push_str(&c.text);
    }
    for name in deletes {
        writeln!(out, "-X {name}").unwrap();
    }
    out.push_str("COMMIT\n");
}

/// The chains with each one after the written chains it jumps to (depth first, iterative:
/// dispatch trees and Service chains are shallow, but nothing here relies on it).
fn bottom_up(chains: &[Written]) -> Vec<&Written> {
    let index: HashMap<&str, usize> = chains.iter().enumerate().map(|(i, c)| (c.name.as_str(), i)).collect();
    let mut done: HashSet<usize> = HashSet::new();
    let mut out = Vec::with_capacity(chains.len());
    for start in 0..chains.len() {
        // (chain, next target to visit)
        let mut stack = vec![(start, 0usize)];
        while let Some((i, k)) = stack.pop() {
            if k == 0 && !done.insert(i) {
                continue;
            }
            match chains[i].targets.get(k) {
                Some(t) => {
                    stack.push((i, k + 1));
                    if let Some(&j) = index.get(t.as_str()) {
                        if !done.contains(&j) {
                            stack.push((j, 0));
                        }
                    }
                }
                None => out.push(&chains[i]),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iptables::restore::Rule;

    fn jumping(name: &str, to: &[&str]) -> Chain {
        Chain { name: name.into(), rules: to.iter().map(|t| Rule { matches: vec![], target: Target::Jump(t.to_string()) }).collect() }
    }

    #[test]
    fn pieces_go_bottom_up_within_the_jump_budget_and_deletions_last() {
        let mut w = RestoreWriter::new(false);
        w.write(TableName::Nat, &jumping("TOP", &["A", "B", "KUBE-MARK-MASQ"]));
        w.write(TableName::Nat, &jumping("A", &["C", "C"]));
        w.write(TableName::Nat, &jumping("B", &["C"]));
        w.write(TableName::Nat, &jumping("C", &[]));
        w.delete(TableName::Nat, "OLD");
        let pieces = w.finish_chunked(2);
        let order: Vec<String> = pieces
            .iter()
            .flat_map(|p| {
                p.lines().filter(|l| l.starts_with(':')).map(|l| l[1..].split(' ').next().unwrap().to_string()).collect::<Vec<_>>()
            })
            .collect();
        let at = |n: &str| order.iter().position(|o| o == n).unwrap();
        assert!(at("C") < at("A") && at("C") < at("B") && at("A") < at("TOP") && at("B") < at("TOP"));
        for p in &pieces {
            let jumps = p.lines().filter(|l| l.contains(" -j ")).count();
            assert!(jumps <= 3, "{p}");
        }
        let last = pieces.last().unwrap();
        assert!(last.contains("-X OLD") && pieces.iter().filter(|p| p.contains("-X")).count() == 1);
        // Everything fits: one restore, the same as finish().
        let mut one = RestoreWriter::new(false);
        one.write(TableName::Nat, &jumping("A", &["C"]));
        assert_eq!(one.finish_chunked(100).len(), 1);
    }

    #[test]
    fn a_cycle_does_not_hang_the_order() {
        let mut w = RestoreWriter::new(false);
        w.write(TableName::Nat, &jumping("A", &["B"]));
        w.write(TableName::Nat, &jumping("B", &["A"]));
        assert_eq!(w.finish_chunked(1).len(), 2);
    }
}
