//! libFuzzer over fuzz_genl (crates/kproxy-ipvs/src/fuzz_tests.rs, built with `--cfg fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kproxy_ipvs::fuzz_tests::fuzz_genl(data));
