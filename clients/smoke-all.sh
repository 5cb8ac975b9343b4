#!/usr/bin/env bash
# Cross-language smoke: starts a real `baton serve` (fresh SQLite file, free port, offline engine)
# and runs the same scenario through the Python, TypeScript, Go and Java clients, plus the Go and
# Java clients' unit tests. Prints one `N passed, N failed` line over the languages at the end.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${BIN:-$ROOT/.venv/bin}"
work="$(mktemp -d)"
log="$work/server.log"
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$BIN/baton" serve --port 0 --database "sqlite+aiosqlite:///$work/smoke.db" --dev \
  --log-level INFO >"$log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 300); do
  port="$(sed -n 's/.*listening on [^:]*:\([0-9]*\).*/\1/p' "$log" | head -n 1)"
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then cat "$log"; echo "smoke: server did not start" >&2; exit 1; fi
target="127.0.0.1:$port"
echo "smoke: server on $target"

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
run go-unit bash -c "cd clients/go && go test ./..."
run java-unit bash -c "cd clients/java && mvn -B -o -Dmaven.repo.local='$ROOT/.cache/m2' test | grep -E 'Tests run:|BUILD|ERROR'; exit \${PIPESTATUS[0]}"
echo "clients: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
