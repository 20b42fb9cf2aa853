//! A transaction: the ordered operations of one atomic batch on one table.

use crate::atoms::{Family, Tuple};
use crate::objects::{Chain, Element, Rule, SetDef, Table};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    AddTable(Table),
    DeleteTable,
    AddChain(Chain),
    /// Removes every rule of the chain.
    FlushChain(String),
    DeleteChain(String),
    AddRule(Rule),
    AddSet(SetDef),
    DeleteSet(String),
    /// Removes every element of the set (the packet path's too).
    FlushSet(String),
    AddElements {
        set: String,
        elems: Vec<Element>,
    },
    DeleteElements {
        set: String,
        keys: Vec<Tuple>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub family: Family,
    pub table: String,
    pub ops: Vec<Op>,
}

impl Transaction {
    pub fn new(family: Family, table: &str) -> Self {
        Self { family, table: table.to_owned(), ops: Vec::new() }
    }

    pub fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// nftables objects touched: one per op, one per element.
    pub fn object_count(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match op {
                Op::AddElements { elems, .. } => elems.len(),
                Op::DeleteElements { keys, .. } => keys.len(),
                _ => 1,
            })
            .sum()
    }
}
