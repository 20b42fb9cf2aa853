//! Every error that reaches JS is `[CODE] message`; the TS side splits the code off.

use kproxy_nftables::NftError;

pub fn coded(code: &str, msg: impl std::fmt::Display) -> napi::Error {
    napi::Error::from_reason(format!("[{code}] {msg}"))
}

pub fn from_nft(e: &NftError) -> napi::Error {
    coded(e.code(), e)
}

/// Runs `f`, turning a panic into a coded error instead of aborting Node.
pub fn no_panic<T>(f: impl FnOnce() -> napi::Result<T>) -> napi::Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default();
            Err(coded("E_PANIC", format!("internal error in the dataplane addon: {msg}")))
        }
    }
}
