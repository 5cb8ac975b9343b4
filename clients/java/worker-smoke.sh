#!/usr/bin/env bash
# The Java tool worker against a real server: starts `baton serve --example-agent
# --example-agent-tools workers` on a free loopback port (authentication on, a fresh SQLite file),
# creates a tool_worker key and an integration key, and runs LiveWorkerTest (the example agent's
# check_order_status and initiate_human_handoff served by the Java worker; a key without the
# role refused). BIN (default: <repo>/.venv/bin) holds `baton`.
#   clients/java/worker-smoke.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
BIN="${BIN:-$root/.venv/bin}"
repo="${BATON_M2_REPO:-$root/.cache/m2}"
dir="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
db="sqlite+aiosqlite:///$dir/b.db"
key() { "$BIN/baton" keys create --role "$1" --name "java worker smoke $1" --database "$db" 2>/dev/null | tail -n 1; }
worker_key="$(key tool_worker)"
integration_key="$(key integration)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$BIN/baton" serve --port "$port" --database "$db" --example-agent --example-agent-tools workers \
  --offline-matcher lexical --log-level INFO >"$dir/server.log" 2>&1 &
pid=$!
for _ in $(seq 600); do
  grep -q "listening on" "$dir/server.log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$dir/server.log" >&2; echo "worker smoke: baton serve exited" >&2; exit 1; }
  sleep 0.05
done
grep -q "listening on" "$dir/server.log" || { cat "$dir/server.log" >&2; exit 1; }
cd "$here"
if BATON_WORKER_TARGET="127.0.0.1:$port" BATON_WORKER_KEY="$worker_key" \
   BATON_INTEGRATION_KEY="$integration_key" \
   mvn -B -q -o -Dmaven.repo.local="$repo" test -Dtest=LiveWorkerTest -Dsurefire.failIfNoSpecifiedTests=false; then
  echo "worker smoke java: ok"
else
  tail -n 40 "$dir/server.log" >&2
  echo "worker smoke java: FAILED" >&2
  exit 1
fi
