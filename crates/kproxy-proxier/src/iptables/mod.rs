//! iptables mode: upstream's chain layout and names (names.rs), rendered as iptables-restore
//! input (restore.rs) from the desired ServicePorts (build.rs), one restore per sync (sync.rs).

pub mod build;
pub mod names;
pub mod restore;
pub mod sync;

pub use build::{build, IptablesConfig, Ruleset};
pub use sync::{is_service_chain, IptablesSync, Plan};
