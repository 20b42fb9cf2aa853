//! iptables mode, being built: upstream's chain layout and names, rendered as
//! iptables-restore input (restore.rs) from the desired ServicePorts (build.rs). Not wired to
//! the agent yet; see docs/design.md.

pub mod build;
pub mod names;
pub mod restore;

pub use build::{build, IptablesConfig, Ruleset};
