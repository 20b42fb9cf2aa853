#!/usr/bin/env bash
# Joins the amd64 and arm64 images (scripts/image/build.sh) into one multi-arch image, written
# as build/image/kproxy.oci.tar: an OCI image index over both. To publish it:
#   skopeo copy --all oci-archive:build/image/kproxy.oci.tar docker://<registry>/kproxy:<version>
# usage: multiarch.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(node -p 'require("./package.json").version')
list=localhost/kproxy:$version
for arch in amd64 arm64; do
  buildah inspect --type image "$list-$arch" >/dev/null 2>&1 || { echo "multiarch.sh: $list-$arch is missing: bash scripts/image/build.sh $arch" >&2; exit 1; }
done
buildah manifest rm "$list" >/dev/null 2>&1 || true
buildah manifest create "$list" >/dev/null
for arch in amd64 arm64; do
  buildah manifest add --os linux --arch "$arch" "$list" "containers-storage:$list-$arch" >/dev/null
done
rm -f build/image/kproxy.oci.tar
buildah manifest push --quiet --all "$list" "oci-archive:build/image/kproxy.oci.tar:$list"
echo "multi-arch image $list: build/image/kproxy.oci.tar ($(du -h build/image/kproxy.oci.tar | cut -f1))"
