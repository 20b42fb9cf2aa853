#!/usr/bin/env bash
# Builds the Dockerfile with buildah (APP=prebuilt: /opt/kproxy from stage-app.sh), so that
# tests/image can compare its image with scripts/image/build.sh's. Base images cannot be
# pulled here: the Dockerfile's docker.io/library/debian:bookworm is stood in for by a local
# debootstrap of the same release with the same apt sources, built once per machine.
# Writes build/image/kproxy-dockerfile-<arch>.oci.tar.
# usage: build-dockerfile.sh <amd64|arm64>
set -euo pipefail
arch=${1:?usage: build-dockerfile.sh <amd64|arm64>}
cd "$(dirname "$0")/../.."
base=docker.io/library/debian:bookworm
out=build/image
mkdir -p "$out"

if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap: a local stand-in for $base"
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
  # The official image's sources: the release, its updates and its security archive.
  rm -f "$root/etc/apt/sources.list"
  cat > "$root/etc/apt/sources.list.d/debian.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  ctr=$(buildah from scratch)
  buildah copy --quiet "$ctr" "$root/" / >/dev/null
  buildah config --cmd '["bash"]' --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  buildah commit --quiet --rm "$ctr" "$base" >/dev/null
  rm -rf "$root"
  trap - EXIT
fi

[[ -d $out/app-$arch ]] || bash scripts/image/stage-app.sh "$arch" "$out/app-$arch"
tag=localhost/kproxy-dockerfile:$arch
# chroot isolation: crun cannot run build steps under this host's hybrid cgroup layout. The
# host's own CAs go to the build steps too: this machine reaches the npm registry through a
# TLS proxy (the final image copies only /rootfs, so they do not end up in it). buildah 1.28
# takes BUILDPLATFORM from --platform, so it is passed: the rootfs stage runs natively.
cas=()
[[ -d /usr/local/share/ca-certificates ]] && cas=(--volume /usr/local/share/ca-certificates:/usr/local/share/ca-certificates:ro)
buildah bud --quiet --isolation chroot "${cas[@]}" --pull=never --network host --platform "linux/$arch" --build-arg BUILDPLATFORM=linux/$(dpkg --print-architecture) --build-arg APP=prebuilt -t "$tag" . >/dev/null
rm -f "$out/kproxy-dockerfile-$arch.oci.tar"
buildah push --quiet "$tag" "oci-archive:$out/kproxy-dockerfile-$arch.oci.tar:$tag"
echo "Dockerfile image $tag: $out/kproxy-dockerfile-$arch.oci.tar"
