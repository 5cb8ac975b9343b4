#!/usr/bin/env bash
# Smoke test of the TypeScript client against a running server with authentication on:
#   clients/typescript/smoke.sh HOST:PORT        (or BATON_SMOKE_TARGET)
# Reads BATON_SMOKE_INTEGRATION_KEY, BATON_SMOKE_OPERATOR_KEY, BATON_SMOKE_OPERATOR_ID and
# BATON_SMOKE_RESTART (see clients/smoke-all.sh). Installs dependencies and compiles when
# needed, then runs dist/smoke.js (src/smoke.ts): the cross-language scenario through the
# package's public API. Unit tests (no server): `npm test` here.
set -euo pipefail
target="${1:-${BATON_SMOKE_TARGET:-}}"
[ -n "$target" ] || { echo "usage: $0 HOST:PORT" >&2; exit 2; }
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT="$(cd ../.. && pwd)"
export npm_config_cache="${npm_config_cache:-$ROOT/.cache/npm}"

if [ ! -f node_modules/.installed ] || [ package-lock.json -nt node_modules/.installed ]; then
    npm ci --no-audit --no-fund --loglevel=error
    touch node_modules/.installed
fi
# Rebuild when any source or config is newer than the compiled smoke program.
if [ ! -f dist/smoke.js ] || [ -n "$(find src tsconfig.json package-lock.json -newer dist/smoke.js -print -quit)" ]; then
    node_modules/.bin/tsc -p tsconfig.json
    touch dist/smoke.js
fi
exec node dist/smoke.js "$target"
