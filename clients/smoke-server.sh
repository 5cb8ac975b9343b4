#!/usr/bin/env bash
# The live server of the cross-language smoke (clients/smoke-all.sh): authentication ON, the
# example agent's tools, a fixed customer-token secret (tokens survive a restart), a fixed port
# (clients reconnect to the same address). State lives in DIR.
#   smoke-server.sh init DIR [ARG...]  fresh SQLite database, an integration key and an operator
#                                 key bound to operator "olga" (secrets in DIR/integration.key,
#                                 ...); ARGs are added to every `baton serve` of DIR
#   smoke-server.sh key DIR ROLE NAME  prints the secret of a new key (e.g. role tool_worker)
#   smoke-server.sh start DIR     starts `baton serve`; returns once it listens
#   smoke-server.sh stop DIR      SIGTERM, waits for the exit
#   smoke-server.sh restart DIR   stop, then start on the same port (the smoke programs run this)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BIN:-$ROOT/.venv/bin}"
cmd="${1:?usage: $0 init|start|stop|restart DIR}"
dir="${2:?usage: $0 init|start|stop|restart DIR}"
db="sqlite+aiosqlite:///$dir/smoke.db"

key() { # <role> [operator id] -> the new key's secret (the last line `keys create` prints)
  local extra=()
  [ -n "${2:-}" ] && extra=(--operator-id "$2")
  "$BIN/baton" keys create --role "$1" --name "smoke $1" "${extra[@]}" --database "$db" \
    2>/dev/null | tail -n 1
}

start() {
  local before extra=()
  [ -s "$dir/serve-args" ] && mapfile -t extra <"$dir/serve-args"
  before=$(grep -c "listening on" "$dir/server.log" 2>/dev/null || true)
  "$BIN/baton" serve --port "$(cat "$dir/port")" --database "$db" --example-agent \
    --offline-matcher lexical --token-secret "$(cat "$dir/token-secret")" --log-level INFO "${extra[@]}" \
    >>"$dir/server.log" 2>&1 &
  echo $! >"$dir/server.pid"
  for _ in $(seq 600); do
    [ "$(grep -c "listening on" "$dir/server.log" || true)" -gt "${before:-0}" ] && return 0
    kill -0 "$(cat "$dir/server.pid")" 2>/dev/null || break
    sleep 0.05
  done
  tail -n 30 "$dir/server.log" >&2
  echo "smoke-server: baton serve did not start" >&2
  return 1
}

stop() {
  local pid
  pid=$(cat "$dir/server.pid" 2>/dev/null) || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
}

case "$cmd" in
  init)
    mkdir -p "$dir"
    : >"$dir/server.log"
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' \
      >"$dir/port"
    python3 -c 'import secrets; print(secrets.token_urlsafe(36))' >"$dir/token-secret"
    key integration >"$dir/integration.key"
    key operator olga >"$dir/operator.key"
    if [ $# -gt 2 ]; then printf '%s\n' "${@:3}"; fi >"$dir/serve-args"
    ;;
  key) "$BIN/baton" keys create --role "${3:?role}" --name "${4:?name}" --database "$db" 2>/dev/null \
         | tail -n 1 ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  *) echo "usage: $0 init|key|start|stop|restart DIR" >&2; exit 2 ;;
esac
