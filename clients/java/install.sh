#!/usr/bin/env bash
# Installs what the Java client needs and resolves every Maven artifact (plugins, protoc and
# protoc-gen-grpc-java executables, dependencies, test engine, install plugin) into the workspace-local repository
# <repo>/.cache/m2 (override with BATON_M2_REPO), checks that src/main/proto matches the
# repository's protos (sync-protos.sh), then builds and unit-tests the client once.
# Idempotent: a second run downloads nothing and only rebuilds what changed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
repo="${BATON_M2_REPO:-$root/.cache/m2}"

if ! command -v java >/dev/null || ! command -v javac >/dev/null || ! command -v mvn >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null
fi

"$here/sync-protos.sh" --check
mkdir -p "$repo"
cd "$here"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# `install` (not just package): also resolves maven-install-plugin, which package-check.sh needs offline.
if ! mvn -B -q -Dmaven.repo.local="$repo" install >"$log" 2>&1; then
  cat "$log"
  echo "java client: build failed" >&2
  exit 1
fi
echo "java client: installed (maven repo $repo)"
