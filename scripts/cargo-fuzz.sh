#!/usr/bin/env bash
# libFuzzer (cargo fuzz) over the four fuzz targets: the netlink message parser, the
# nftables readers (monitor notifications, set-element dumps), the generic-netlink (IPVS)
# readers and the N-API wire decoder. The same functions run under plain `cargo test`
# (crates/*/tests/fuzz.rs); this adds coverage-guided search.
#
#   scripts/cargo-fuzz.sh [SECONDS_PER_TARGET]     (default 60; CI runs 20)
#
# Stable Rust: RUSTC_BOOTSTRAP=1 lets cargo fuzz pass its -Z flags, with no sanitizer (the
# parsers are safe Rust; a bad index panics, which libFuzzer reports as a crash) and with
# debug assertions, so overflows panic. Seeds come from the stable tests' corpora; a crash
# is saved under fuzz/artifacts/<target>/ and the script fails.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
targets=(netlink_messages nftables_readers ipvs_genl wire_decode)
# Seed corpora: the valid inputs the stable tests start from, one file each.
rm -rf fuzz/corpus
export KPROXY_FUZZ_CORPUS_DIR="$PWD/fuzz/corpus"
KPROXY_FUZZ_ITERS=0 cargo test -q --locked -p kproxy-netlink --test fuzz >/dev/null
KPROXY_FUZZ_ITERS=0 cargo test -q --locked -p kproxy-nftables --test fuzz >/dev/null
KPROXY_FUZZ_ITERS=0 cargo test -q --locked -p kproxy-ipvs --lib fuzz_tests >/dev/null
KPROXY_FUZZ_ITERS=0 cargo test -q --locked -p kproxy-proxier --test fuzz >/dev/null
unset KPROXY_FUZZ_CORPUS_DIR
cd fuzz
cargo fuzz build --sanitizer none -O -a
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "== cargo fuzz: $t, ${seconds}s, $(ls "corpus/$t" | wc -l) seeds"
  # libFuzzer's last lines say how far it got (runs, coverage, corpus).
  if ! cargo fuzz run --sanitizer none -O -a "$t" "corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>"/tmp/kproxy-fuzz-$t.log"; then
    tail -40 "/tmp/kproxy-fuzz-$t.log" >&2
    echo "cargo fuzz: $t FAILED (the input is in fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+ +DONE' "/tmp/kproxy-fuzz-$t.log" | tr '\n' ' '
  echo
done
echo "cargo fuzz: ${#targets[@]} targets, ${seconds}s each, no crash"
