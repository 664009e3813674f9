#!/usr/bin/env bash
# Refresh the vendored Mirador viewer from the npm registry.
#
#   tools/vendor-viewers.sh            # the pinned version below
#   tools/vendor-viewers.sh 4.0.1      # another version (then update MIRADOR_VERSION and the README)
#
# Copies dist/mirador.min.js (byte-identical to the npm tarball; no source map) and the
# package's LICENSE to iiif_server/web/static/mirador/ and prints the sha256 to record in
# that folder's README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

MIRADOR_VERSION="${1:-4.0.0}"
dest="iiif_server/web/static/mirador"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "mirador@${MIRADOR_VERSION}" >/dev/null && tar xzf "mirador-${MIRADOR_VERSION}.tgz")
version="$(node -p "require('$work/package/package.json').version")"
if [ "$version" != "$MIRADOR_VERSION" ]; then
  echo "vendor-viewers: asked for mirador@${MIRADOR_VERSION}, npm gave ${version}" >&2
  exit 1
fi

mkdir -p "$dest"
cp "$work/package/dist/mirador.min.js" "$dest/mirador.min.js"
cp "$work/package/LICENSE" "$dest/LICENSE"
echo "mirador ${version} -> ${dest}/mirador.min.js"
sha256sum "$dest/mirador.min.js"
