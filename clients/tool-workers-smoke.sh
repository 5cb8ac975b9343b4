#!/usr/bin/env bash
# The tool-workers example, end to end (issue 18): a real `baton serve` with authentication on
# and the example agent WITHOUT its Python tools (--example-agent-tools workers); its
# check_order_status is served by the Go worker (clients/go/cmd/order-worker) and its
# initiate_human_handoff by the TypeScript worker (clients/typescript/examples/handoff-worker.ts),
# each with its own tool_worker key. The driver (examples/tool-workers-driver.ts) waits until
# ListTools shows both workers, asks as a customer for order 12345 (the TOOL event must carry the
# Go worker's result) and then for a human (the TypeScript worker's result, the handoff, MANUAL).
# Then both workers get SIGTERM and must drain and exit 0, after which ListTools shows no worker.
# A worker with a key of another role must be refused (exit 1, PERMISSION_DENIED). Also runs the
# Go client's live worker test against the same server. Prints "tool workers: ok".
#   clients/tool-workers-smoke.sh          (clients/smoke-all.sh runs it)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export BIN="${BIN:-$ROOT/.venv/bin}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOFLAGS="${GOFLAGS:--buildvcs=false}"
export GOPATH="${GOPATH:-$ROOT/.cache/go}" GOMODCACHE="${GOMODCACHE:-$ROOT/.cache/go/mod}"
export GOCACHE="${GOCACHE:-$ROOT/.cache/go/build}" npm_config_cache="${npm_config_cache:-$ROOT/.cache/npm}"
STOP_DEADLINE=20 # seconds a worker has to drain and exit after SIGTERM

work="$(mktemp -d)"
workers=()
cleanup() {
  for pid in "${workers[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  clients/smoke-server.sh stop "$work/server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "tool workers: FAILED: $*" >&2
  for log in "$work"/*.log "$work/server/server.log"; do
    [ -f "$log" ] && { echo "--- $log (last lines)" >&2; tail -n 25 "$log" >&2; }
  done
  exit 1
}

# Build first, so that compiling does not eat into the waits below.
(cd clients/go && go build -o "$work/order-worker" ./cmd/order-worker) || fail "go build"
(
  cd clients/typescript
  if [ ! -f node_modules/.installed ] || [ package-lock.json -nt node_modules/.installed ]; then
    npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed
  fi
  node_modules/.bin/tsc -p tsconfig.json && node_modules/.bin/tsc -p tsconfig.examples.json
) || fail "TypeScript build"

clients/smoke-server.sh init "$work/server" --example-agent-tools workers
go_key="$(clients/smoke-server.sh key "$work/server" tool_worker "order worker (go)")"
ts_key="$(clients/smoke-server.sh key "$work/server" tool_worker "handoff worker (typescript)")"
clients/smoke-server.sh start "$work/server" || fail "baton serve did not start"
target="127.0.0.1:$(cat "$work/server/port")"
export BATON_SMOKE_INTEGRATION_KEY="$(cat "$work/server/integration.key")"
echo "tool workers: server on $target (authentication on, example agent without its Python tools)"

BATON_WORKER_KEY="$go_key" "$work/order-worker" -targets "$target" >"$work/go-worker.log" 2>&1 &
workers+=($!)
go_pid=$!
BATON_WORKER_KEY="$ts_key" node clients/typescript/dist-examples/handoff-worker.js "$target" \
  >"$work/ts-worker.log" 2>&1 &
workers+=($!)
ts_pid=$!

driver=clients/typescript/dist-examples/tool-workers-driver.js
node "$driver" "$target" || fail "the conversation through the workers"

# stop_worker NAME PID LOG: SIGTERM, then the worker must drain and exit 0 within STOP_DEADLINE.
stop_worker() {
  local name="$1" pid="$2" log="$3" rc=0 t0
  t0=$(date +%s%N)
  kill -TERM "$pid"
  timeout "$STOP_DEADLINE" tail --pid="$pid" -s 0.05 -f /dev/null ||
    fail "$name worker still running ${STOP_DEADLINE} s after SIGTERM"
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || fail "$name worker exited with status $rc after SIGTERM"
  grep -q "drained" "$work/$log" || fail "$name worker exited without draining"
  echo "tool workers: $name worker drained and exited 0 ($(( ($(date +%s%N) - t0) / 1000000 )) ms after SIGTERM)"
}
stop_worker go "$go_pid" go-worker.log
stop_worker typescript "$ts_pid" ts-worker.log
workers=()
node "$driver" "$target" --expect-no-workers || fail "workers still listed after they stopped"

# A key of another role is refused, and the worker does not retry it: exit 1, naming the code.
refused="$(BATON_WORKER_KEY="$BATON_SMOKE_INTEGRATION_KEY" timeout 30 \
  node clients/typescript/dist-examples/handoff-worker.js "$target" 2>&1)" && fail "an integration key served tools"
grep -q "PERMISSION_DENIED" <<<"$refused" || fail "TypeScript worker with an integration key: $refused"
echo "tool workers: typescript worker with an integration key: refused (PERMISSION_DENIED), exit 1"

# The Go client's live worker test (deadline, cancel, drain with a call in flight, a refused key).
live="$(cd clients/go && BATON_WORKER_TARGET="$target" BATON_WORKER_KEY="$go_key" \
  BATON_WORKER_INTEGRATION_KEY="$BATON_SMOKE_INTEGRATION_KEY" go test -count=1 -v -run TestLiveWorker . 2>&1)" ||
  { echo "$live" >&2; fail "Go live worker test"; }
grep -E "^--- " <<<"$live" | sed 's/^/tool workers: go live test /'
! grep -q "^--- SKIP" <<<"$live" || fail "Go live worker test skipped"
echo "tool workers: ok"
