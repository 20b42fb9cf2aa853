#!/bin/sh
# Prints the NFTA_SET_USERDATA bytes that `nft` itself sends for kproxy's sets,
# so that sets created over raw netlink list identically (`nft list`, `nft -j`).
# Usage: scripts/capture-set-udata.sh > /tmp/udata.txt   (needs root and nft)
set -e
ns=kp-udata-$$
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
for fam in ip ip6; do
  if [ $fam = ip ]; then a=ipv4_addr; ph="ip daddr"; else a=ipv6_addr; ph="ip6 daddr"; fi
  ip netns exec "$ns" nft --debug=mnl -f - <<NFT 2>&1 | sed 's/\x1b\[[0-9;]*m//g' | awk -v fam=$fam '
    /message length/ { inmsg=1; attr=""; }
    /\|  type \| flags/ { type=$2 }
    /\|len \|flags\| type\|/ { split($0, f, "|"); attr=f[4]+0; alen=f[2]+0 - 4; next }
    /\|      data      \|/ && type=="02569" {
      split($0, f, "|"); gsub(/^ +| +$/, "", f[2]); n=split(f[2], b, " ");
      for (i=1;i<=n;i++) { if (attr==2 && length(name_hex[type]) < 2*(alen)) {} }
      if (attr==2) name=name f[2] " ";
      if (attr==13) ud=ud f[2] " ";
      lastlen[attr]=alen
    }
    /message length/ && name!="" { print fam, name, "|", ud, "|", lastlen[13]; name=""; ud="" }
    END { if (name!="") print fam, name, "|", ud, "|", lastlen[13] }'
add table $fam kube-proxy
add set $fam kube-proxy cluster-ips { type $a ; comment "Active ClusterIPs" ; }
add set $fam kube-proxy hairpin-connections { type $a . $a ; comment "endpoint pairs that need hairpin masquerade" ; }
add set $fam kube-proxy masquerade-services { type $a . inet_proto . inet_service ; comment "external IPs and LoadBalancer IPs whose traffic is always masqueraded" ; }
add map $fam kube-proxy service-ips { type $a . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }
add map $fam kube-proxy no-endpoint-services { type $a . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }
add map $fam kube-proxy endpoint-addrs { typeof $ph . meta l4proto . th dport . numgen random mod 1 : $ph . th dport ; comment "service IP . protocol . port . slot : endpoint address . port" ; }
add map $fam kube-proxy service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }
add map $fam kube-proxy nodeport-endpoint-addrs { typeof meta l4proto . th dport . numgen random mod 1 : $ph . th dport ; comment "protocol . NodePort . slot : endpoint address . port" ; }
add map $fam kube-proxy affinity-endpoints { typeof ${ph%daddr}saddr . meta l4proto . $ph . th dport : $ph . th dport ; flags dynamic,timeout ; comment "x" ; }
add map $fam kube-proxy nodeport-affinity-endpoints { typeof ${ph%daddr}saddr . meta l4proto . th dport : $ph . th dport ; flags dynamic,timeout ; comment "x" ; }
add set $fam kube-proxy affinity-members { type $a . inet_proto . inet_service . $a . inet_service ; comment "x" ; }
add set $fam kube-proxy nodeport-affinity-members { type inet_proto . inet_service . $a . inet_service ; comment "x" ; }
NFT
done
