//! iptables mode: upstream's chain layout and names (names.rs), each ServicePort's part built
//! from the desired state (build.rs), put together with the shared chains (assemble.rs, with
//! KUBE-SERVICES's dispatch tree in dispatch.rs), rendered as iptables-restore input
//! (restore.rs, one restore or several: writer.rs), and synced by writing only what
//! changed (sync.rs).

pub mod assemble;
pub mod build;
pub mod dispatch;
pub mod names;
pub mod restore;
pub mod sync;
pub mod writer;

pub use assemble::{build, Ruleset};
pub use build::{IptablesConfig, DISPATCH_ABOVE};
pub use sync::{is_service_chain, IptablesSync, Plan};
