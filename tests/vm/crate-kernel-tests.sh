#!/usr/bin/env bash
# Inside the VM (tests/vm/lts-kernel.sh): the Rust crates' real-kernel tests that need what
# this machine's kernel lacks: kproxy-ipvs's table of IPVS outcomes (IPVS) and
# kproxy-rtnetlink's link and address tests with the dummy kind. Runs the test binaries
# `cargo test` built (scripts/test.mjs runs it first). Prints "crate-test NAME ok|failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
ip link set lo up
modprobe ip_vs
newest() { ls -t target/debug/deps/ 2>/dev/null | grep -E "^$1-[0-9a-f]+$" | sed -n 1p; }
run() { # name, binary, must-see
  local out
  if [ -z "$2" ]; then echo "crate-test $1 failed (no test binary: run cargo test first)"; return; fi
  out="$(KPROXY_RTNL_TEST_KIND=dummy "target/debug/deps/$2" --test-threads=1 2>&1)"
  if printf '%s\n' "$out" | grep 'test result: ok' >/dev/null && printf '%s\n' "$out" | grep -- "$3" >/dev/null; then
    echo "crate-test $1 ok"
  else
    echo "crate-test $1 failed"
    printf '%s\n' "$out" | tail -30 | sed 's/^/#   /'
  fi
}
run "kproxy-ipvs: the kernel meets the table of IPVS outcomes" "$(newest kernel)" 'the_kernel_meets_the_table ... ok'
run "kproxy-rtnetlink: links and addresses with the dummy kind" "$(newest rtnl_kernel)" 'test result: ok. 1 passed'
