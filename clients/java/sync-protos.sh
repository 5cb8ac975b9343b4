#!/usr/bin/env bash
# Copies the API definition (protos/baton/v1/*.proto at the repository root) into this module's
# src/main/proto, so the Java artifact builds from clients/java alone (a source archive of this
# folder, a build container that mounts only it). The copies are committed; edit the originals.
#   clients/java/sync-protos.sh           refresh the copies
#   clients/java/sync-protos.sh --check   exit 1 (naming the files) when a copy is stale
# install.sh, smoke.sh and package-check.sh run the check whenever the repository's protos are there.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/../.." && pwd)/protos/baton/v1"
dst="$here/src/main/proto/baton/v1"
if [ ! -d "$src" ]; then
  [ "${1:-}" = --check ] && exit 0   # outside the repository: the copies are all there is
  echo "sync-protos: $src not found" >&2; exit 1
fi
if [ "${1:-}" = --check ]; then
  if ! diff -r -q "$src" "$dst" >/dev/null 2>&1; then
    diff -r -q "$src" "$dst" >&2 || true
    echo "java client: src/main/proto is stale; run clients/java/sync-protos.sh and commit" >&2
    exit 1
  fi
  exit 0
fi
rm -rf "$dst"
mkdir -p "$dst"
cp "$src"/*.proto "$dst"/
echo "java client: copied $(ls "$dst" | wc -l) protos into src/main/proto/baton/v1"
