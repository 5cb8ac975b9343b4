#!/usr/bin/env bash
# Cross-language smoke: starts a real `baton serve` with authentication ON (fresh SQLite file,
# offline engine, the example agent's tools; clients/smoke-server.sh) and runs the same scenario
# through the Python, TypeScript, Go and Java clients (each restarts the server once), plus the
# Go and Java clients' unit tests, and the tool-workers example (clients/tool-workers-smoke.sh).
# Prints one `N passed, N failed` line over the languages at the end.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${BIN:-$ROOT/.venv/bin}"
work="$(mktemp -d)"
cleanup() { "$ROOT/clients/smoke-server.sh" stop "$work/server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$ROOT/clients/smoke-server.sh" init "$work/server"
"$ROOT/clients/smoke-server.sh" start "$work/server" || exit 1
target="127.0.0.1:$(cat "$work/server/port")"
echo "smoke: server on $target (authentication on)"

# What every language's smoke program reads (see clients/README.md, "The smoke scenario").
export BATON_SMOKE_TARGET="$target"
export BATON_SMOKE_INTEGRATION_KEY="$(cat "$work/server/integration.key")"
export BATON_SMOKE_OPERATOR_KEY="$(cat "$work/server/operator.key")"
export BATON_SMOKE_OPERATOR_ID=olga
export BATON_SMOKE_RESTART="$ROOT/clients/smoke-server.sh restart $work/server"
export BATON_SMOKE_EXPECT_AI=1 GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export GOPATH="$ROOT/.cache/go" GOMODCACHE="$ROOT/.cache/go/mod" GOCACHE="$ROOT/.cache/go/build"
passed=0
failed=0
run() { # <name> <command...>
  local name="$1"; shift
  echo "== $name"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "smoke: $name FAILED"; fi
}
run python "$BIN/python" clients/python/smoke.py "$target"
run typescript clients/typescript/smoke.sh "$target"
run go clients/go/smoke.sh "$target"
run java clients/java/smoke.sh "$target"
run python-package clients/python/package-check.sh
run typescript-unit bash -c "cd clients/typescript && npm test --silent"
run typescript-package clients/typescript/package-check.sh
run go-unit bash -c "cd clients/go && go test ./..."
run go-package clients/go/package-check.sh
run java-unit bash -c "cd clients/java && mvn -B -o -Dmaven.repo.local='$ROOT/.cache/m2' test | grep -E 'Tests run:|BUILD|ERROR'; exit \${PIPESTATUS[0]}"
run java-package clients/java/package-check.sh
run tool-workers env BIN="$BIN" clients/tool-workers-smoke.sh # its own server: the example agent's tools in Go and TS workers
run java-worker env BIN="$BIN" clients/java/worker-smoke.sh # the Java tool worker serves the example agent's tools
echo "clients: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
