#!/usr/bin/env bash
# Builds kproxy's image for one architecture without a Docker engine: buildah from scratch,
# with the root filesystem of stage-app.sh and rootfs.sh (the Dockerfile runs the same two).
# Writes build/image/kproxy-<arch>.oci.tar (an OCI archive: skopeo, podman load, or
# `skopeo copy oci-archive:… docker-daemon:…`) and tags localhost/kproxy:<version>-<arch>.
# usage: build.sh <amd64|arm64>
set -euo pipefail
arch=${1:?usage: build.sh <amd64|arm64>}
cd "$(dirname "$0")/../.."
version=$(node -p 'require("./package.json").version')

out=build/image
mkdir -p "$out"
bash scripts/image/stage-app.sh "$arch" "$out/app-$arch"
bash scripts/image/rootfs.sh "$arch" "$out/app-$arch" "$out/rootfs-$arch"

ctr=$(buildah from --arch "$arch" scratch)
trap 'buildah rm "$ctr" >/dev/null' EXIT
# cp -a, not buildah copy (which makes every file root's): /home/nonroot stays 65532's, and
# the file capability on /usr/bin/node goes into the layer as an xattr.
mnt=$(buildah mount "$ctr")
cp -a "$out/rootfs-$arch/." "$mnt/"
buildah umount "$ctr" >/dev/null
# The Dockerfile's final stage says the same; tests/image compares the two images' configs.
buildah config --os linux --arch "$arch" --user 65532:65532 --workingdir /opt/kproxy \
  --env PATH=/usr/sbin:/usr/bin --env NODE_ENV=production \
  --entrypoint '["/usr/bin/node","--max-semi-space-size=2","/opt/kproxy/bin/kproxy.js"]' --cmd '' \
  --label org.opencontainers.image.title=kproxy --label org.opencontainers.image.licenses=Apache-2.0 \
  --label "org.opencontainers.image.version=$version" "$ctr"
tag=localhost/kproxy:$version-$arch
buildah commit --quiet --rm "$ctr" "$tag" >/dev/null
trap - EXIT
rm -f "$out/kproxy-$arch.oci.tar"
buildah push --quiet "$tag" "oci-archive:$out/kproxy-$arch.oci.tar:$tag"
echo "image $tag: $out/kproxy-$arch.oci.tar ($(du -h "$out/kproxy-$arch.oci.tar" | cut -f1), layer compressed)"
