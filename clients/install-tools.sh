#!/usr/bin/env bash
# Installs what the TypeScript and Go clients need, with every cache inside the workspace:
#   - protoc-gen-go and protoc-gen-go-grpc (pinned) into .cache/go/bin, for `buf generate`;
#   - the root npm tooling (buf, protoc-gen-es) into node_modules/;
#   - the TypeScript client's dependencies into clients/typescript/node_modules/.
# Idempotent: a second run only checks versions and lockfile stamps. Needs go and npm on PATH
# and the package registries (Go module proxy, npm) reachable.
#
# Then generate with:
#   PATH="$ROOT/.cache/go/bin:$ROOT/node_modules/.bin:$ROOT/.venv/bin:$PATH" npx --no-install buf generate
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PROTOC_GEN_GO_VERSION=v1.36.12        # google.golang.org/protobuf; keep equal to clients/go/go.mod
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2     # google.golang.org/grpc/cmd/protoc-gen-go-grpc

export GOPATH="$ROOT/.cache/go"
export GOMODCACHE="$ROOT/.cache/go/mod"
export GOCACHE="$ROOT/.cache/go/build"
export GOBIN="$ROOT/.cache/go/bin"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export npm_config_cache="${npm_config_cache:-$ROOT/.cache/npm}"

log() { echo "install-tools: $*"; }

# --- Go code generators --------------------------------------------------------------------
command -v go >/dev/null || { echo "install-tools: 'go' not found on PATH" >&2; exit 1; }

# Prints the module version recorded in a Go binary, or nothing.
go_bin_version() { [ -x "$1" ] && go version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $3; exit }'; }

install_go_tool() { # <binary name> <package path> <version>
    local bin="$GOBIN/$1"
    if [ "$(go_bin_version "$bin" || true)" = "$3" ]; then
        log "$1 $3 present"
    else
        log "installing $1 $3"
        go install "$2@$3"
    fi
}
install_go_tool protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
install_go_tool protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"

# Download the Go client's dependencies so its smoke test and build work offline afterwards.
(cd clients/go && go mod download)

# --- npm packages --------------------------------------------------------------------------
command -v npm >/dev/null || { echo "install-tools: 'npm' not found on PATH" >&2; exit 1; }

# `npm ci` in <dir> unless <dir>/node_modules/.installed is newer than the manifest and lockfile.
npm_ci() {
    local dir="$1" stamp="$1/node_modules/.installed"
    if [ -f "$stamp" ] && [ "$stamp" -nt "$dir/package.json" ] && [ "$stamp" -nt "$dir/package-lock.json" ]; then
        log "$dir/node_modules up to date"
        return
    fi
    log "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    touch "$stamp"
}
npm_ci "$ROOT"
npm_ci "$ROOT/clients/typescript"

log "done"
