//! The N-API boundary: plain data in (ServicePort deltas), a typed report or
//! a coded error out. Syncs run on the libuv pool; no panic crosses into Node.
// napi-rs macros expand to unsafe FFI glue (they need `allow`), so this crate can
// only deny hand-written unsafe; `forbid` would reject the generated code.
#![deny(unsafe_code)]

mod dataplane;
mod errors;
mod wire;

pub use dataplane::*;
