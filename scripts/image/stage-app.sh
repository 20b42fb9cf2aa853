#!/usr/bin/env bash
# Stages /opt/kproxy for the image, from a built checkout (npm ci has run): the npm package's
# own files (what `npm pack` would ship), the addon for one architecture, and the production
# dependencies at the lockfile's versions. Both image recipes (scripts/image/build.sh and the
# Dockerfile) run it, then rootfs.sh.
# usage: stage-app.sh <amd64|arm64> <out dir>
set -euo pipefail
arch=${1:?usage: stage-app.sh <amd64|arm64> <out dir>}
out=${2:?usage: stage-app.sh <amd64|arm64> <out dir>}
cd "$(dirname "$0")/../.."

case $arch in
  amd64) addon=native/kproxy.linux-x64-gnu.node ;;
  arm64) addon=native/kproxy.linux-arm64-gnu.node ;;
  *) echo "stage-app.sh: architecture must be amd64 or arm64, got $arch" >&2; exit 2 ;;
esac
for f in dist/cli.js native/index.cjs "$addon"; do
  [[ -f $f ]] || { echo "stage-app.sh: $f is missing (npm ci, and npm run build:addon:arm64 for arm64)" >&2; exit 1; }
done

rm -rf "$out"
mkdir -p "$out/native"
# The package's file list, as npm computes it from package.json's "files".
npm pack --dry-run --json --ignore-scripts 2>/dev/null \
  | node -e 'for (const f of JSON.parse(require("fs").readFileSync(0, "utf8"))[0].files) console.log(f.path)' \
  | grep -Ev '\.node$|^(docs|examples|ts)/|^dist/(bench|demo)/|^bin/kproxy-demo|^README' \
  | while read -r f; do mkdir -p "$out/$(dirname "$f")"; cp -p "$f" "$out/$f"; done
cp -p "$addon" "$out/native/"

# Production dependencies, exactly as locked; they are plain JavaScript, so one set serves both
# architectures (checked below).
deps=$(mktemp -d)
trap 'rm -rf "$deps"' EXIT
cp package.json package-lock.json "$deps/"
(cd "$deps" && npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
cp -a "$deps/node_modules" "$out/node_modules"
rm -f "$out/node_modules/.package-lock.json"
# Types, source maps, docs and the packages' own tests: nothing at run time loads them; nor
# the Bare runtime's prebuilt addons (bare-*: tar-fs's, for Bare, never loaded by Node).
find "$out" \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.md' \) -type f -delete
find "$out/node_modules" \( -path '*/node_modules/@types' -o -path '*/node_modules/undici-types' \
  -o -path '*/node_modules/*/test' -o -path '*/node_modules/*/tests' -o -path '*/node_modules/*/.github' \
  -o -path '*/node_modules/bare-*/prebuilds' \) -prune -exec rm -rf {} +
native=$(find "$out/node_modules" -name '*.node' -o -name 'binding.gyp' | sed -n 1,5p)
[[ -z $native ]] || { echo "stage-app.sh: a production dependency carries native code, which is built for one arch: $native" >&2; exit 1; }
echo "staged /opt/kproxy for $arch in $out ($(du -sh "$out" | cut -f1))"
