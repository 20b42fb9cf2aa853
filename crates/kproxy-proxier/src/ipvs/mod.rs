//! IPVS mode: the kernel's load balancer does the DNAT, one virtual server per Service
//! address and port, with every Service address on the dummy kube-ipvs0 as upstream has it;
//! one nftables table does what upstream's ipsets and iptables chains do (docs/design.md).

pub mod backends;
pub mod build;
pub mod counts;
pub mod drift;
pub mod reconcile;
pub mod sync;
pub mod table;
pub mod upkeep;

pub use build::IpvsConfig;
pub use sync::{IpvsOutcome, IpvsSync};
