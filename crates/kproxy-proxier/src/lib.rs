//! The proxier core, shared by every mode: the wire codec, the validated
//! model, the desired state with its one-owner rule, the error catalogue and
//! the sync loop (generation guard, foreign changes, retry). Each mode adds a
//! module that plans its rules from the desired state (nftables/, iptables/, ipvs/).
#![forbid(unsafe_code)]

pub mod counts;
pub mod desired;
pub mod error;
pub mod fault;
pub mod foreign;
pub mod iptables;
pub mod ipvs;
pub mod local;
pub mod nftables;
pub mod node;
pub mod service;
pub mod sync;
pub mod userspace;
pub mod wire;

pub use desired::Desired;
pub use error::{Code, ProxierError};
pub use service::{Endpoint, ServicePort};
pub use sync::{Mode, Outcome, Syncer};
pub use wire::{Rejected, ServicePortRecord};
