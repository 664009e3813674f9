#!/usr/bin/env bash
# Refresh the vendored viewers from the npm registry: Mirador (/viewer, the embeds' ?viewer=mirador) and
# OpenSeadragon (the embeds at /embed/..., and the Auth 2.0 client page of the browser tests).
#
#   tools/vendor-viewers.sh                # the pinned versions below
#   tools/vendor-viewers.sh 4.0.1 6.1.1    # other versions (then update the pins and the READMEs)
#
# Copies dist/mirador.min.js (byte-identical to the npm tarball; no source map) and the
# package's LICENSE to iiif_server/web/static/mirador/, and OpenSeadragon's
# build/openseadragon/openseadragon.min.js and LICENSE.txt to iiif_server/web/static/openseadragon/, and prints
# the sha256 sums to record in those folders' README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

MIRADOR_VERSION="${1:-4.0.0}"
OPENSEADRAGON_VERSION="${2:-6.1.1}"
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

osd_dest="iiif_server/web/static/openseadragon"
osd_work="$work/openseadragon"
mkdir -p "$osd_work"
(cd "$osd_work" && npm pack --silent "openseadragon@${OPENSEADRAGON_VERSION}" >/dev/null \
  && tar xzf "openseadragon-${OPENSEADRAGON_VERSION}.tgz")
osd_version="$(node -p "require('$osd_work/package/package.json').version")"
if [ "$osd_version" != "$OPENSEADRAGON_VERSION" ]; then
  echo "vendor-viewers: asked for openseadragon@${OPENSEADRAGON_VERSION}, npm gave ${osd_version}" >&2
  exit 1
fi
mkdir -p "$osd_dest"
cp "$osd_work/package/build/openseadragon/openseadragon.min.js" "$osd_dest/openseadragon.min.js"
cp "$osd_work/package/LICENSE.txt" "$osd_dest/LICENSE.txt"
echo "openseadragon ${osd_version} -> ${osd_dest}/openseadragon.min.js"
sha256sum "$osd_dest/openseadragon.min.js"
