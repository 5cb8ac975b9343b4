#!/usr/bin/env bash
# The cross-language smoke scenario with the Go client (see cmd/smoke/main.go):
#   clients/go/smoke.sh HOST:PORT
# Reads BATON_SMOKE_INTEGRATION_KEY, BATON_SMOKE_OPERATOR_KEY, BATON_SMOKE_OPERATOR_ID,
# BATON_SMOKE_RESTART and BATON_SMOKE_EXPECT_AI (set by clients/smoke-all.sh). Go caches default
# to .cache/go at the repository root (GOPATH / GOMODCACHE / GOCACHE from the environment win).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 HOST:PORT" >&2; exit 2; }
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT="$(cd ../.. && pwd)"
export GOPATH="${GOPATH:-$ROOT/.cache/go}" GOMODCACHE="${GOMODCACHE:-$ROOT/.cache/go/mod}"
export GOCACHE="${GOCACHE:-$ROOT/.cache/go/build}"
export GOFLAGS="${GOFLAGS:--buildvcs=false}" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
exec go run ./cmd/smoke -target "$1"
