#!/usr/bin/env bash
# Records the generic-netlink requests ipvsadm itself sends (and, for the dump
# and config cases, the kernel's replies) as the golden fixtures of
# crates/kproxy-ipvs/tests/golden.rs. The host has no IPVS, so this boots the
# test VM (tests/vm/run.sh), runs itself there with --inside, and splits the
# console output into one file per case.
#   scripts/capture-ipvsadm.sh            (root; on the host)
# Fixture lines: "# ..." comments, "> hex" one request message, "< hex" one
# reply message, hex grouped by 4 bytes, native (little-endian) byte order.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$repo/crates/kproxy-ipvs/tests/golden"

# name | untraced setup (ipvsadm argument lists, ';'-separated) | traced ipvsadm arguments | replies?
cases() {
  cat <<'CASES'
add-service-tcp||-A -t 10.96.0.10:80 -s rr|
add-service-udp||-A -u 10.96.0.10:53 -s rr|
add-service-sctp||-A --sctp-service 10.96.0.11:9000 -s rr|
add-service-v6||-A -t [fd00:96::10]:80 -s rr|
add-service-persistent||-A -t 10.96.0.13:80 -s wrr -p 300 -M 255.255.255.0|
add-service-v6-persistent||-A -t [fd00:96::11]:80 -s rr -p 60 -M 64|
add-service-mh-port||-A -t 10.96.0.14:443 -s mh -b mh-port|
add-service-onepacket||-A -u 10.96.0.12:53 -s rr -o|
edit-service|-A -t 10.96.0.10:80 -s rr|-E -t 10.96.0.10:80 -s wrr -p 600|
delete-service|-A -t 10.96.0.10:80 -s rr|-D -t 10.96.0.10:80|
add-dest-masq|-A -t 10.96.0.10:80 -s rr|-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1|
add-dest-route-thresholds|-A -t 10.96.0.10:80 -s rr|-a -t 10.96.0.10:80 -r 10.244.1.3:80 -g -w 2 -x 100 -y 10|
add-dest-tunnel|-A -t 10.96.0.10:80 -s rr|-a -t 10.96.0.10:80 -r 10.244.1.4:80 -i -w 3|
add-dest-v6|-A -t [fd00:96::10]:80 -s rr|-a -t [fd00:96::10]:80 -r [fd00:244::2]:8080 -m -w 1|
edit-dest|-A -t 10.96.0.10:80 -s rr;-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1|-e -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 0|
delete-dest|-A -t 10.96.0.10:80 -s rr;-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1|-d -t 10.96.0.10:80 -r 10.244.1.2:8080|
delete-dest-v6|-A -t [fd00:96::10]:80 -s rr;-a -t [fd00:96::10]:80 -r [fd00:244::2]:8080 -m -w 1|-d -t [fd00:96::10]:80 -r [fd00:244::2]:8080|
set-timeouts||--set 900 120 300|
timeouts||-L --timeout|replies
list-v4|-A -t 10.96.0.13:80 -s wrr -p 300 -M 255.255.255.0;-a -t 10.96.0.13:80 -r 10.244.1.2:8080 -m -w 5 -x 100 -y 10|-L -n|replies
list-v6|-A -t [fd00:96::10]:80 -s rr;-a -t [fd00:96::10]:80 -r [fd00:244::2]:8080 -m -w 1|-L -n|replies
CASES
}

# Hex-dumps of fd 3 (the netlink socket) from strace, one datagram per syscall,
# split into messages. MSG_PEEK receives repeat the next datagram: skipped.
to_lines() {
  awk -v replies="$1" '
    function hex(s,   i, v) { v = 0; for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
    function flush(   n, i, at, len, line) {
      if (dir == "" || nb == 0) { dir = ""; nb = 0; return }
      at = 0
      while (at + 4 <= nb) {
        len = hex(b[at+3] b[at+2] b[at+1] b[at])
        if (len < 16 || at + len > nb) break
        line = dir
        for (i = 0; i < len; i++) { if (i % 4 == 0) line = line " "; line = line b[at+i] }
        print line
        at += int((len + 3) / 4) * 4
      }
      dir = ""; nb = 0
    }
    /^(\[pid +[0-9]+\] )?sendmsg\(3,/ { flush(); dir = ">"; next }
    /^(\[pid +[0-9]+\] )?recvmsg\(3,/ { flush(); dir = (replies == "" || /MSG_PEEK/) ? "" : "<"; next }
    /^ \| [0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]  / {
      if (dir == "") next
      n = split(substr($0, 11, 49), h, " ")
      for (i = 1; i <= n; i++) b[nb++] = h[i]
      next
    }
    /^ \* [0-9]+ bytes in buffer/ { next }
    { flush() }
    END { flush() }'
}

inside() {
  modprobe ip_vs
  # IPv4 destinations must be unicast by the routing table: without lo up, every one is EINVAL.
  ip link set lo up
  echo "=== meta"
  echo "# ipvsadm $(ipvsadm --version 2>&1 | sed -n 's/^ipvsadm \(v[0-9.]*\).*/\1/p'), Linux $(uname -r)"
  cases | while IFS='|' read -r name setup args replies; do
    ipvsadm -C
    IFS=';' read -ra steps <<<"$setup"
    for s in "${steps[@]}"; do
      # shellcheck disable=SC2086
      [ -z "$s" ] || ipvsadm $s
    done
    echo "=== $name"
    [ -z "$setup" ] || echo "# setup: ipvsadm ${setup//;/; ipvsadm }"
    echo "# ipvsadm $args"
    # shellcheck disable=SC2086
    strace -e trace=sendmsg,recvmsg -e write=3 -e read=3 -o /tmp/ipvsadm.strace ipvsadm $args >/dev/null
    to_lines "$replies" </tmp/ipvsadm.strace
  done
  echo "=== end"
}

if [ "${1:-}" = --inside ]; then
  inside
  exit
fi

log="$repo/.cache/vm/capture-ipvsadm.log"
mkdir -p "$(dirname "$log")"
"$repo/tests/vm/run.sh" "bash $repo/scripts/capture-ipvsadm.sh --inside" | tr -d '\r' >"$log"
mkdir -p "$out"
awk -v out="$out" '
  /=== [a-z0-9-]+$/ { name = $NF; if (name == "end") exit; next }
  name == "meta" { meta = $0; next }
  name != "" && /^[#<>]/ {
    f = out "/" name ".txt"
    if (!(f in seen)) {
      seen[f] = 1
      print "# captured by scripts/capture-ipvsadm.sh; " substr(meta, 3) > f
    }
    print > f
  }' "$log"
ls "$out"
