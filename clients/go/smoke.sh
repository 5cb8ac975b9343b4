#!/usr/bin/env bash
# Smoke test of the Go client against a running server: clients/go/smoke.sh HOST:PORT
# Runs cmd/smoke (see cmd/smoke/main.go) with the Go caches inside the workspace (.cache/go).
# BATON_SMOKE_EXPECT_AI=1 additionally waits for the AI agent's reply.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 HOST:PORT" >&2; exit 2; }
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT="$(cd ../.. && pwd)"
export GOPATH="$ROOT/.cache/go" GOMODCACHE="$ROOT/.cache/go/mod" GOCACHE="$ROOT/.cache/go/build"
export GOFLAGS="${GOFLAGS:--buildvcs=false}" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
exec go run ./cmd/smoke -target "$1"
