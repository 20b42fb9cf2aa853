//! The userspace proxy's data path: proxy threads (a tokio runtime) that listen on Service
//! addresses themselves and relay each connection or UDP session to an endpoint. No
//! netfilter: the agent puts the addresses on an interface (kproxy-proxier's userspace
//! module) and this crate listens on them.
#![forbid(unsafe_code)]

pub mod engine;
pub mod pool;
pub mod prefix;
mod socket;
mod splice;
pub mod stats;
mod tcp;
mod udp;

pub use engine::{Engine, EngineError, EngineOptions, EngineSnapshot, Frontend, FrontendKey, Proto};
pub use pool::ServiceSpec;
pub use prefix::{LocalSources, Prefix};
pub use stats::{Snapshot, CONNECT_BUCKETS, FAILURE_REASONS};
