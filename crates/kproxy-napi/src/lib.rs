//! The N-API boundary: plain data in (wire text of ServicePort deltas), a typed
//! report or a coded error out. One thin file per mode over the shared sync
//! tasks; syncs run on the libuv pool and no panic crosses into Node.
// napi-rs macros expand to unsafe FFI glue (they need `allow`), so this crate can
// only deny hand-written unsafe; `forbid` would reject the generated code.
#![deny(unsafe_code)]

mod conntrack;
mod errors;
mod iptables;
mod ipvs;
mod nftables;
mod options;
mod sync_task;
mod userspace;

pub use iptables::*;
pub use ipvs::*;
pub use nftables::*;
pub use sync_task::{RejectedServicePort, SyncReport, SyncRequest};
pub use userspace::*;
