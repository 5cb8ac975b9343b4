#!/usr/bin/env bash
# Smoke test of the TypeScript client against a running server: clients/typescript/smoke.sh HOST:PORT
# Installs dependencies and compiles when needed, then runs dist/smoke.js (see src/smoke.ts).
# BATON_SMOKE_EXPECT_AI=1 additionally waits for the AI agent's reply.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 HOST:PORT" >&2; exit 2; }
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
exec node dist/smoke.js "$1"
