#!/usr/bin/env bash
# Builds the Java client (offline when the workspace Maven repo already has everything) and runs
# its end-to-end smoke test against a live Baton server.
#   clients/java/smoke.sh 127.0.0.1:8800
# BATON_SMOKE_EXPECT_AI=1 also waits for the AI agent's reply. Prints `N passed, N failed` and
# exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${1:?usage: $0 HOST:PORT}"
repo="${BATON_M2_REPO:-$root/.cache/m2}"

cd "$here"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
build() { mvn -B -q -Dmaven.repo.local="$repo" -DskipTests "$@" package >"$log" 2>&1; }
# Offline first (no network round trips); online only when something is missing from the cache.
if ! { [ -d "$repo" ] && build -o; } && ! build; then
  cat "$log"
  echo "java smoke: build failed" >&2
  exit 1
fi
java -cp "target/classes:$(cat target/classpath.txt)" dev.baton.client.Smoke "$target"
