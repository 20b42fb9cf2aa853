#!/usr/bin/env bash
# The demo end to end on Debian's LTS kernel (6.1 at the time of writing), in
# a qemu VM: kproxy's netlink batches must work on the kernels nodes run, not
# only on this machine's newer one. Prints TAP for scripts/test.mjs.
set -uo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
# What "no netfilter" means for userspace mode's demo: none of these may load.
NETFILTER_MODULES='nf_tables ip_tables ip6_tables x_tables nf_conntrack ip_vs'
# First userspace mode's demo with netfilter's modules blocked from loading (before anything
# else loads them): the mode needs none. Then the demo, every rule shape through its life
# (tests/vm/lifecycle.ts), then the IPVS and userspace suites (tests/vm/*.vmtest.ts: the
# packet matrix and more), in one boot. Under
# emulation the agent takes ~40 s to its first program (more on a busy host): the demo waits longer.
out="$("$repo/tests/vm/run.sh" "cd '$repo' && uname -r && { echo '== userspace mode'; printf 'install %s /bin/false\\n' $NETFILTER_MODULES > /etc/modprobe.d/kproxy-no-netfilter.conf; modprobe nf_tables 2>/dev/null; echo \"block-rc=\$?\"; KPROXY_DEMO_WAIT_S=240 node bin/kproxy-demo.js --once --mode userspace; echo \"demo-userspace-rc=\$?\"; for m in $NETFILTER_MODULES; do [ -e /sys/module/\$m ] && echo \"netfilter-loaded \$m\"; done; rm -f /etc/modprobe.d/kproxy-no-netfilter.conf; } && { KPROXY_DEMO_WAIT_S=240 node bin/kproxy-demo.js --once; echo \"demo-rc=\$?\"; } && { echo '== iptables mode'; KPROXY_DEMO_WAIT_S=240 node bin/kproxy-demo.js --once --mode iptables; echo \"demo-iptables-rc=\$?\"; } && ip netns add lifecycle && ip netns exec lifecycle npx tsx tests/vm/lifecycle.ts; bash tests/vm/crate-kernel-tests.sh; echo '== ipvs mode'; npx ava --config tests/vm/ava.config.mjs --tap --serial; echo \"ipvs-rc=\$?\"" 2>&1 | tr -d '\r')"
# npx draws a spinner (escape codes) before its first line: strip it so lines start clean.
out="$(printf '%s\n' "$out" | sed 's/\x1b\[[0-9;]*[A-Za-z]//g; s/^[|\/\\-]*\(ok\|not ok\) - lifecycle/\1 - lifecycle/; s/^[|\/\\]\+\(== \|ipvs-rc=\|crate-test \|ok \|not ok \)/\1/')"
rc="$(printf '%s\n' "$out" | sed -n 's/^demo-rc=//p' | tail -1)"
ipt_rc="$(printf '%s\n' "$out" | sed -n 's/^demo-iptables-rc=//p' | tail -1)"
ipvs_rc="$(printf '%s\n' "$out" | sed -n 's/^ipvs-rc=//p' | tail -1)"
ipvs_out="$(printf '%s\n' "$out" | sed -n '/^== ipvs mode/,/^ipvs-rc=/p')"
# The userspace demo's output (netfilter blocked), the nftables demo's, then the iptables demo's.
us_out="$(printf '%s\n' "$out" | sed -n '/^== userspace mode/,/^demo-userspace-rc=/p')"
us_rc="$(printf '%s\n' "$out" | sed -n 's/^demo-userspace-rc=//p' | tail -1)"
nft_out="$(printf '%s\n' "$out" | sed '/^== userspace mode/,/^demo-userspace-rc=/d; /^== iptables mode/,$d')"
ipt_out="$(printf '%s\n' "$out" | sed -n '/^== iptables mode/,/^demo-iptables-rc=/p')"
# (Readers that stop early, grep -q, -m1 or head, would SIGPIPE the writer and fail under pipefail.)
kernel="$(printf '%s\n' "$out" | grep -oE '[0-9]+\.[0-9]+\.[0-9]+-[0-9]+-[a-z0-9]+' | sed -n 1p)"
kernel=${kernel:-unknown}
pass=0; fail=0; n=0
check() { # name, command
  n=$((n + 1))
  if eval "$2"; then echo "ok $n - kernel $kernel: $1"; pass=$((pass + 1)); else echo "not ok $n - kernel $kernel: $1"; fail=$((fail + 1)); fi
}
echo "TAP version 13"
check "userspace mode: netfilter's modules are blocked (modprobe nf_tables fails)" 'printf "%s\n" "$out" | grep -E "^block-rc=[1-9]" >/dev/null'
check "userspace mode: no netfilter module loaded during its demo" '! printf "%s\n" "$out" | grep "^netfilter-loaded " >/dev/null'
printf '%s\n' "$out" | grep "^netfilter-loaded " | sed 's/^/# /'
for mode in userspace nftables iptables; do
  case "$mode" in
    userspace) o="$us_out"; r="$us_rc" ;;
    nftables) o="$nft_out"; r="$rc" ;;
    *) o="$ipt_out"; r="$ipt_rc" ;;
  esac
  check "$mode mode: the demo exits 0" '[ "$r" = 0 ]'
  check "$mode mode: every backend answers the ClusterIP" '[ "$(printf "%s\n" "$o" | grep -cE "^  backend-[123] +#+ +[0-9]+$")" = 3 ]'
  check "$mode mode: UDP through the ClusterIP is answered and masqueraded" 'printf "%s\n" "$o" | grep -E "UDP datagram to 10\.96\.0\.10:53 -> \"backend-[123] from 10\.244\.[123]\.1\"" >/dev/null'
  check "$mode mode: IPv6 through the ClusterIP is answered" 'printf "%s\n" "$o" | grep -E "TCP to \[fd00:96::10\]:80 +-> \"backend-[123] from fd00:244:0:[123]::1\"" >/dev/null'
  check "$mode mode: /proxyMode says $mode" 'printf "%s\n" "$o" | grep -E "/proxyMode -> $mode$" >/dev/null'
done
# The crates' kernel tests (tests/vm/crate-kernel-tests.sh).
while IFS= read -r line; do
  name="${line#crate-test }"
  case "$name" in
    *" ok") check "${name% ok}" true ;;
    *" failed"*) check "${name% failed*}" false ;;
  esac
done < <(printf '%s\n' "$out" | grep -E '^crate-test ')
check "the crates' kernel tests ran" '[ "$(printf "%s\n" "$out" | grep -c "^crate-test ")" = 2 ]'
printf '%s\n' "$out" | grep -A30 '^crate-test .* failed' | sed 's/^/# /'
# IPVS mode's ava TAP, one check per test (its failures' details are in the TAP, echoed below).
while IFS= read -r line; do
  name="$(printf '%s' "$line" | sed -E 's/^(not )?ok [0-9]+ - //')"
  case "$line" in
    "ok "*) check "$name" true ;;
    "not ok "*) check "$name" false ;;
  esac
done < <(printf '%s\n' "$ipvs_out" | grep -E '^(not )?ok [0-9]+ - ')
check "the VM suites (IPVS, userspace) ran and passed (ava exit status)" '[ "$ipvs_rc" = 0 ] && printf "%s\n" "$ipvs_out" | grep -E "^ok [0-9]+ - " >/dev/null'
if [ "$ipvs_rc" != 0 ]; then printf '%s\n' "$ipvs_out" | tail -150 | sed 's/^/# /'; fi
check "every rule shape commits through its life (lifecycle.ts)" '[ "$(printf "%s\n" "$out" | grep -c "^ok - lifecycle:")" = 21 ] && ! printf "%s\n" "$out" | grep "^not ok - lifecycle:" >/dev/null'
printf '%s\n' "$out" | grep "^not ok - lifecycle:" | sed 's/^/# /'
if [ "$fail" -gt 0 ]; then printf '%s\n' "$out" | tail -60 | sed 's/^/# /'; fi
echo "1..$n"
echo "# pass $pass"
echo "# fail $fail"
[ "$fail" = 0 ]
