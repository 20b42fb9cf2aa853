#!/bin/sh
# Records how nft itself encodes kproxy's rules: `nft --debug=netlink` output
# for the golden rulesets, used by crates/kproxy-proxier/tests/netlink_golden.rs.
# Usage (root, needs nft): scripts/capture-netlink-golden.sh
set -e
dir="$(dirname "$0")/../crates/kproxy-proxier/tests/golden"
ns=kp-golden-$$
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
for f in ipv4 ipv6; do
  ip netns exec "$ns" nft flush ruleset
  ip netns exec "$ns" nft --debug=netlink -f "$dir/$f.nft" > "$dir/$f.netlink"
done
