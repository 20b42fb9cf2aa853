//! IPVS over generic netlink: services and destinations (apply many ops in one
//! pipeline, dump them back), info and timeouts; the canonical `ipvsadm-save`
//! text; and a fake with the kernel's semantics. Requests match ipvsadm's bytes
//! (tests/golden.rs); tests/kernel.rs holds the fake and a real kernel to one table.
#![forbid(unsafe_code)]

pub mod conn;
pub mod consts;
pub mod error;
pub mod fake;
/// Public to the cargo-fuzz target (fuzz/), which builds with `--cfg fuzzing`.
#[cfg(any(test, fuzzing))]
#[cfg_attr(fuzzing, allow(dead_code))]
pub mod fuzz_tests;
pub mod genl;
pub mod msg;
pub mod reply;
#[cfg(any(test, fuzzing))]
#[cfg_attr(fuzzing, allow(dead_code))]
mod testutil;
pub mod text;
mod types;

pub use conn::Ipvs;
pub use error::IpvsError;
pub use fake::Fake;
pub use genl::resolve_family;
pub use types::*;
