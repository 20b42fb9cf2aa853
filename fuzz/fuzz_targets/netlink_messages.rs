//! libFuzzer over fuzz_messages (crates/kproxy-netlink/tests/fuzz.rs, which cargo test also drives).
#![no_main]

#[allow(dead_code, unused_imports)]
#[path = "../../crates/kproxy-netlink/tests/fuzz.rs"]
mod target;

libfuzzer_sys::fuzz_target!(|data: &[u8]| target::fuzz_messages(data));
