#!/usr/bin/env bash
# Builds the Java client (offline when the workspace Maven repo already has everything) and runs
# the cross-language smoke scenario (clients/README.md) against a live Baton server with
# authentication on:
#   clients/java/smoke.sh 127.0.0.1:8800      (or BATON_SMOKE_TARGET)
# Reads BATON_SMOKE_INTEGRATION_KEY, BATON_SMOKE_OPERATOR_KEY, BATON_SMOKE_OPERATOR_ID,
# BATON_SMOKE_RESTART, BATON_SMOKE_EXPECT_AI (see clients/smoke-all.sh). Prints
# `smoke java: ok` or `smoke java: FAILED: <why>` and exits non-zero on failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${1:-${BATON_SMOKE_TARGET:?usage: $0 HOST:PORT}}"
repo="${BATON_M2_REPO:-$root/.cache/m2}"

"$here/sync-protos.sh" --check
cd "$here"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
build() { mvn -B -q -Dmaven.repo.local="$repo" -DskipTests "$@" package >"$log" 2>&1; }
# Offline first (no network round trips); online only when something is missing from the cache.
if ! { [ -d "$repo" ] && build -o; } && ! build; then
  cat "$log"
  echo "smoke java: FAILED: build failed" >&2
  exit 1
fi
exec java -cp "target/classes:$(cat target/classpath.txt)" dev.baton.client.Smoke "$target"
