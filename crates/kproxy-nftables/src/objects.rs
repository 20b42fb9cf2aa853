//! Plain-data nftables objects, after knftables: Table, Chain, Rule, Set, Element.

use std::fmt;

use crate::atoms::{render_vals, Family, Tuple, Verdict};
use crate::stmt::Stmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub family: Family,
    pub name: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChainType {
    Filter,
    Nat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

impl Hook {
    pub fn number(self) -> u32 {
        match self {
            Hook::Prerouting => 0,
            Hook::Input => 1,
            Hook::Forward => 2,
            Hook::Output => 3,
            Hook::Postrouting => 4,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChain {
    pub ty: ChainType,
    pub hook: Hook,
    pub priority: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    pub base: Option<BaseChain>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub chain: String,
    pub stmts: Vec<Stmt>,
}

/// What a set's values are: plain set, verdict map, or data map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetData {
    None,
    Verdict,
    /// Data map: nft datatype id and byte length of the value.
    Value {
        ty: u32,
        len: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDef {
    pub name: String,
    pub key_type: u32,
    pub key_len: u32,
    pub data: SetData,
    /// The declaration inside `{ ... }` in nft syntax, without the comment.
    pub decl: String,
    pub comment: Option<String>,
    /// nft's NFTA_SET_USERDATA TLVs that precede the comment (byte order, typeof).
    pub udata_prefix: Vec<u8>,
    /// Maximum element count (NFTA_SET_DESC_SIZE). Sizing the kernel's hash
    /// up front avoids its slow incremental growth during a large batch.
    pub size: Option<u32>,
    /// Updated from the packet path with per-element timeouts (`flags dynamic,timeout`; say so in `decl`).
    pub dynamic: bool,
}

impl SetDef {
    pub fn is_map(&self) -> bool {
        self.data != SetData::None
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ElemData {
    Verdict(Verdict),
    Vals(Tuple),
}

impl fmt::Display for ElemData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElemData::Verdict(v) => write!(f, "{v}"),
            ElemData::Vals(v) => f.write_str(&render_vals(v)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub key: Tuple,
    pub data: Option<ElemData>,
    pub comment: Option<String>,
}

/// One element as the kernel lists it: key bytes, data bytes (empty for a plain set).
pub type ElementBytes = (Vec<u8>, Vec<u8>);
