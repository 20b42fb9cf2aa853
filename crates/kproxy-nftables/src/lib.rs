//! nf_tables for kproxy, layered without cycles:
//! atoms (families, verdicts, values) → expr (netlink expressions) → stmt
//! (statements, rendered both to expressions and to nft text) → objects
//! (tables, chains, rules, sets) → tx (transactions) → encode / text / conn /
//! fake / trace. Nothing here knows kproxy's ruleset; the proxier builds it.
#![forbid(unsafe_code)]

pub mod atoms;
pub mod cidr;
pub mod conn;
pub mod consts;
pub mod encode;
pub mod error;
pub mod expr;
pub mod fake;
pub mod monitor;
pub mod objects;
pub mod stmt;
pub mod text;
pub mod trace;
pub mod tx;
pub mod udata;

pub use atoms::*;
pub use cidr::Cidr;
pub use conn::{CommitStats, Conn};
pub use error::NftError;
pub use fake::{Fake, FakeError};
pub use monitor::{Drained, Monitor};
pub use objects::*;
pub use stmt::{Field, Stmt};
pub use tx::{Op, Transaction};
