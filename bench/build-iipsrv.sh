#!/usr/bin/env bash
# Build the current IIPImage server (iipsrv 1.3+: Image API 3.0, stored tiles sent without re-encoding) from
# source, as the peer of bench/run.py. Debian 12 packages only iipsrv 1.1, ~3x slower on random tiles.
#
#   bench/build-iipsrv.sh [SRC] [OUT]
#     SRC  git URL, checkout or bare git directory of iipsrv (default: https://github.com/ruven/iipsrv)
#     OUT  build folder, outside this repository (default: ~/.cache/iipsrv-build); reused if already built
#
# Prints the path of iipsrv.fcgi last; pass it to bench/run.py as --iipsrv PATH or IIPSRV=PATH.
# Installs nothing: it lists missing Debian packages and the apt-get line, then stops.
set -euo pipefail
SRC="${1:-https://github.com/ruven/iipsrv}"
OUT="${2:-${XDG_CACHE_HOME:-$HOME/.cache}/iipsrv-build}"
DEPS=(build-essential autoconf automake libtool pkg-config git libtiff-dev libjpeg-dev libpng-dev libwebp-dev
  libfcgi-dev zlib1g-dev)
missing=()
for pkg in "${DEPS[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing build packages: ${missing[*]}" >&2
  echo "install them with: apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
BIN="$OUT/src/src/iipsrv.fcgi"
if [ ! -x "$BIN" ]; then
  rm -rf "$OUT/src"
  mkdir -p "$OUT"
  if ! git clone -q "$SRC" "$OUT/src" 2>/dev/null; then
    # A bare git directory that git clone refuses (e.g. a mirror without refs/heads): export its HEAD.
    mkdir -p "$OUT/src"
    git --git-dir="$SRC" archive HEAD | tar -x -C "$OUT/src"
  fi
  (cd "$OUT/src" && ./autogen.sh >/dev/null 2>&1 && ./configure -q >/dev/null && make -s -j"$(nproc)" >/dev/null)
fi
echo "$(cd "$(dirname "$BIN")" && pwd)/iipsrv.fcgi"
