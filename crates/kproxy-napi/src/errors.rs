//! Every error that reaches JS carries the catalogue's JSON as its message:
//! {"code","errno","message"}; ts/addon/errors.ts turns it back into fields.

use kproxy_proxier::{Code, ProxierError};

pub fn to_napi(e: ProxierError) -> napi::Error {
    napi::Error::from_reason(e.to_json())
}

pub fn coded(code: Code, msg: impl std::fmt::Display) -> napi::Error {
    to_napi(ProxierError::new(code, msg))
}

/// Runs `f`, turning a panic into a coded error instead of aborting Node.
pub fn no_panic<T>(f: impl FnOnce() -> napi::Result<T>) -> napi::Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
            Err(coded(Code::Panic, format!("internal error in the proxier addon: {msg}")))
        }
    }
}
