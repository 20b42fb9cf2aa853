#!/usr/bin/env bash
# Is a Service address on a DOWN kube-ipvs0 usable? Prints, for the dummy link DOWN,
# UP, and DOWN again: its addresses, the local-table routes, and whether a peer
# namespace (another host, over a veth) gets ICMP echo answers from them. Needs the
# dummy link type: run it in the VM, from the repository: `tests/vm/run.sh "bash $PWD/crates/kproxy-rtnetlink/tests/down_vs_up.sh"`.
set -u
P=kprtnl-probe-$$ Q=kprtnl-peer-$$
trap 'ip netns del $P; ip netns del $Q' EXIT
ip netns add $P; ip netns add $Q
ip link add v0 netns $P type veth peer name v1 netns $Q
ip -n $P link set lo up; ip -n $P link set v0 up; ip -n $Q link set v1 up
ip -n $P addr add 192.0.2.1/24 dev v0; ip -n $P addr add 2001:db8::1/64 dev v0 nodad
ip -n $Q addr add 192.0.2.2/24 dev v1; ip -n $Q addr add 2001:db8::2/64 dev v1 nodad
ip -n $Q route add 10.96.0.0/16 via 192.0.2.1; ip -n $Q route add fd00:96::/64 via 2001:db8::1
ip netns exec $P sh -c '
ip link add kube-ipvs0 type dummy
ip addr add 10.96.0.1/32 dev kube-ipvs0
ip addr add fd00:96::1/128 dev kube-ipvs0 nodad
ip addr add fd00:96::2/128 dev kube-ipvs0
echo "keep_addr_on_down=$(cat /proc/sys/net/ipv6/conf/kube-ipvs0/keep_addr_on_down)"'
ip netns exec $Q busybox ping -c1 -W2 192.0.2.1 >/dev/null && echo "peer reaches the node" || echo "peer cannot reach the node"
for state in DOWN UP DOWN-AGAIN; do
  case $state in UP) ip -n $P link set kube-ipvs0 up; sleep 3;; DOWN-AGAIN) ip -n $P link set kube-ipvs0 down; sleep 1;; esac
  echo "== $state: $(ip -n $P -o link show kube-ipvs0 | cut -d' ' -f2-3)"
  ip -n $P -o addr show dev kube-ipvs0 | sed 's/\\.*//'
  echo "-- local table"; ip -n $P route show table local | grep 10.96; ip -n $P -6 route show table local | grep fd00
  for a in 10.96.0.1 fd00:96::1 fd00:96::2; do ip netns exec $Q busybox ping -c1 -W2 $a >/dev/null 2>&1 && echo "ping from peer $a ok" || echo "ping from peer $a FAILED"; done
done
