//! nf_tables for kproxy: plain-data objects, statements that render both to
//! netlink expressions and to nft text, transactions encoded as one NFNL
//! batch, a connection that commits them, and a fake with kernel semantics.
#![forbid(unsafe_code)]

pub mod cidr;
pub mod conn;
pub mod consts;
pub mod encode;
pub mod error;
pub mod expr;
pub mod fake;
pub mod stmt;
pub mod text;
pub mod tx;
pub mod types;
pub mod udata;

pub use cidr::Cidr;
pub use conn::{CommitStats, Conn};
pub use error::NftError;
pub use fake::{Fake, FakeError};
pub use stmt::Stmt;
pub use tx::{Op, Transaction};
pub use types::*;
