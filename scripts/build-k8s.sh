#!/usr/bin/env bash
# Builds the Kubernetes binaries the tests run (kube-apiserver, kube-proxy, kubectl, etcd)
# from the Go module proxy, pinned by tests/k8s/{kubernetes,etcd}/go.{mod,sum}, into
# tests/k8s/bin (git-ignored). Does nothing when they are there, built from the same pins.
# First build: ~12 minutes on 2 cores and ~1 GB of module cache; later ones come from Go's cache.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$PWD/tests/k8s/bin"
bins=(kube-apiserver kube-proxy kubectl etcd)
pins=$(cat tests/k8s/kubernetes/go.mod tests/k8s/kubernetes/go.sum tests/k8s/etcd/go.mod tests/k8s/etcd/go.sum | sha256sum | cut -d' ' -f1)
fresh=1
for b in "${bins[@]}"; do [ -x "$out/$b" ] || fresh=0; done
if [ "$fresh" = 1 ] && [ "$(cat "$out/.pins" 2>/dev/null)" = "$pins" ]; then
  echo "build-k8s: tests/k8s/bin is up to date"
  exit 0
fi
if ! command -v go >/dev/null; then
  echo "build-k8s: needs Go 1.26 or later (the tests/k8s wrappers pin Kubernetes and etcd)" >&2
  exit 1
fi
mkdir -p "$out"
rm -f "$out/.pins"

cd tests/k8s/kubernetes
version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
released=$(go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
IFS=. read -r major minor _ <<<"${version#v}"
# Upstream's version stamps (hack/lib/version.sh), so that --version tells the truth.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$released"
done
echo "build-k8s: kube-apiserver, kube-proxy, kubectl $version"
go build -trimpath -ldflags "$ldflags" -o "$out/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl

cd ../etcd
echo "build-k8s: etcd $(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)"
go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3

echo "$pins" >"$out/.pins"
# (sed reads all of it: `head -1` would end a longer output with SIGPIPE, failing the pipeline.)
for b in kube-apiserver kube-proxy etcd; do "$out/$b" --version 2>&1 | sed -n "1s/^/build-k8s: $b: /p"; done
"$out/kubectl" version --client 2>&1 | sed -n "1s/^/build-k8s: kubectl: /p"
