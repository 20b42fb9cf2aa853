#!/usr/bin/env bash
# Runs the stable-Rust fuzz targets for longer than CI does, looping seeds.
#
#   scripts/fuzz.sh [MINUTES] [ITERS_PER_ROUND]     (defaults: 10 minutes, 5,000,000)
#
# Targets (plain functions that must never panic, driven by a seeded splitmix PRNG over
# a corpus of valid messages, structure-aware mutations of it and random bytes; the
# driver is crates/kproxy-netlink/tests/fuzzkit/mod.rs):
#   fuzz_messages  crates/kproxy-netlink/tests/fuzz.rs    netlink messages/attrs/NLMSG_ERROR/acks
#   fuzz_genl      crates/kproxy-ipvs/src/fuzz_tests.rs   IPVS dumps, info, timeouts, family lookup
#   fuzz_nft       crates/kproxy-nftables/tests/fuzz.rs   monitor notifications, set-element dumps
#   fuzz_wire      crates/kproxy-proxier/tests/fuzz.rs    the N-API wire decoder (decode/encode round trip)
# Each round gives every target a fresh seed base (KPROXY_FUZZ_BASE) and ITERS_PER_ROUND
# inputs (KPROXY_FUZZ_ITERS), in release mode with overflow checks on (as debug builds
# have them). It stops at the first failure, which prints the replay line, e.g.
#   KPROXY_FUZZ_BASE=0x... KPROXY_FUZZ_SEED=0x... cargo test -p kproxy-netlink --test fuzz -- --nocapture
# (KPROXY_FUZZ_SEED alone replays one input; the base is printed for completeness.)
# CI runs the same tests at a small budget with plain `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
iters=${2:-5000000}
export CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
targets=("kproxy-netlink --test fuzz" "kproxy-ipvs --lib fuzz_tests" "kproxy-nftables --test fuzz" "kproxy-proxier --test fuzz")
# Build once, so the time goes to fuzzing.
for t in "${targets[@]}"; do
  # shellcheck disable=SC2086
  cargo test --release -q -p $t --no-run
done
end=$(( $(date +%s) + minutes * 60 ))
round=0
while [ "$(date +%s)" -lt "$end" ]; do
  round=$((round + 1))
  base=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
  echo "round $round, KPROXY_FUZZ_BASE=$base, $iters inputs per target"
  for t in "${targets[@]}"; do
    # shellcheck disable=SC2086
    if ! out=$(KPROXY_FUZZ_BASE=$base KPROXY_FUZZ_ITERS=$iters cargo test --release -p $t -- --nocapture 2>&1); then
      echo "$out" | grep -E 'fuzz |panicked|error' >&2
      echo "FAILED: $t (replay with the KPROXY_FUZZ_SEED above)" >&2
      exit 1
    fi
    echo "$out" | grep -o "fuzz .*"
  done
done
echo "fuzzed $round rounds in $minutes minutes, no failure"
