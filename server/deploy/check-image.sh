#!/usr/bin/env bash
# Build the Baton image and check it answers gRPC health checks: run BY HAND (not in CI) on a
# Debian 12 machine as root, where no container registry is reachable (only Debian's apt
# repositories and PyPI). It
#   1. installs podman, runc and mmdebstrap with apt when missing,
#   2. makes a local base image (Debian bookworm minbase + python3 + python3-venv) with
#      mmdebstrap, since python:3.12-slim-bookworm cannot be pulled (tarball cached in
#      .cache/deploy/),
#   3. builds server/deploy/Dockerfile on it (pip reaches PyPI through the host network),
#   4. runs it on 127.0.0.1 only, then checks: grpc.health.v1 SERVING from the host, the image's
#      HEALTHCHECK (`podman healthcheck run`), a non-root uid, authentication on (no key:
#      UNAUTHENTICATED; a key made with `baton keys create` in the container: OK), a clean
#      SIGTERM stop (exit 0),
#   5. removes the container and its volume (images stay, so a rerun is quick; --clean removes
#      them too).
# Exit status: 0 all checks passed, 1 a check failed, 2 the machine cannot run the check.
#
#   server/deploy/check-image.sh [--refresh-base] [--clean]
#
# Environment: BASE_IMAGE (default: the local bookworm base; any other must already be in
# podman's store or be pullable, e.g. python:3.12-slim-bookworm elsewhere), PODMAN_RUNTIME (default: the first of podman's default, runc, that can start a
# container here), DEBIAN_MIRROR (default http://deb.debian.org/debian), IMAGE (default
# localhost/baton:check), PIP_CA_BUNDLE (CA bundle handed to pip as a build secret, for
# TLS-intercepting proxies; default /etc/ssl/certs/ca-certificates.crt when present).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE="$REPO/.cache/deploy"
BASE_TAR="$CACHE/base-bookworm.tar"
LOCAL_BASE=localhost/baton-base:bookworm
BASE_IMAGE=${BASE_IMAGE:-$LOCAL_BASE}
IMAGE=${IMAGE:-localhost/baton:check}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PIP_CA_BUNDLE=${PIP_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
NAME="baton-check-$$"
REFRESH_BASE=0
CLEAN=0
for arg in "$@"; do
    case "$arg" in
        --refresh-base) REFRESH_BASE=1 ;;
        --clean) CLEAN=1 ;;
        *) echo "usage: $0 [--refresh-base] [--clean]" >&2; exit 2 ;;
    esac
done

START=$SECONDS
step() { printf '\n== [%4ds] %s\n' "$((SECONDS - START))" "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
unable() { echo "CANNOT RUN HERE: $*" >&2; exit 2; }
# Any other failing command (apt, mmdebstrap, the build, ...) fails the check, saying which.
trap 'status=$?; echo "FAIL: line $LINENO: $BASH_COMMAND (exit $status)" >&2; exit 1' ERR

[ "$(id -u)" = 0 ] || unable "run as root (apt, rootful podman)"
command -v apt-get >/dev/null || unable "needs a Debian-like machine (apt-get)"

step "tools: podman, runc, mmdebstrap"
missing=()
for tool in podman:podman runc:runc mmdebstrap:mmdebstrap; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" uidmap slirp4netns
fi
podman --version

# Rootful podman asks for RLIMIT_NOFILE/NPROC above what a sandbox may grant ("setrlimit ...
# Operation not permitted"): ask for what this shell already has instead.
ULIMITS=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=4096:4096")

step "base image $BASE_IMAGE"
mkdir -p "$CACHE"
if [ "$BASE_IMAGE" != "$LOCAL_BASE" ]; then
    echo "given: not built here"
elif [ "$REFRESH_BASE" = 1 ] || [ ! -s "$BASE_TAR" ]; then
    echo "mmdebstrap: bookworm minbase + python3 + python3-venv"
    mmdebstrap --variant=minbase --format=tar --include=python3,python3-venv,passwd,ca-certificates \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
        bookworm "$BASE_TAR.tmp" \
        "deb $DEBIAN_MIRROR bookworm main" \
        "deb $DEBIAN_MIRROR bookworm-updates main" \
        "deb ${DEBIAN_MIRROR%/debian}/debian-security bookworm-security main"
    mv "$BASE_TAR.tmp" "$BASE_TAR"
    podman rmi -f "$BASE_IMAGE" >/dev/null 2>&1 || true
fi
if [ "$BASE_IMAGE" = "$LOCAL_BASE" ]; then
    podman image exists "$BASE_IMAGE" \
        || podman import --change 'CMD ["python3"]' "$BASE_TAR" "$BASE_IMAGE" >/dev/null
    echo "cached rootfs: $BASE_TAR ($(du -h "$BASE_TAR" | cut -f1))"
fi

step "container runtime"
# crun 1.8 (Debian 12's default) refuses a hybrid cgroup v1/v2 host ("cgroups in hybrid mode not
# supported"); runc copes with it.
RUNTIMES=("${PODMAN_RUNTIME:-}")
[ -n "${PODMAN_RUNTIME:-}" ] || RUNTIMES=("" runc)
PODMAN=()
for runtime in "${RUNTIMES[@]}"; do
    candidate=(podman ${runtime:+--runtime "$runtime"})
    if out=$("${candidate[@]}" run --rm "${ULIMITS[@]}" "$BASE_IMAGE" python3 -c 'print("ok")' 2>&1); then
        PODMAN=("${candidate[@]}")
        break
    fi
    echo "runtime ${runtime:-default} cannot start a container: $(tail -1 <<<"$out")"
done
[ ${#PODMAN[@]} -gt 0 ] || unable "no OCI runtime can start a container here"
echo "using: ${PODMAN[*]}"

cleanup() {
    "${PODMAN[@]}" rm -f -v "$NAME" >/dev/null 2>&1 || true
    if [ "$CLEAN" = 1 ]; then
        podman rmi -f "$IMAGE" "$LOCAL_BASE" >/dev/null 2>&1 || true
        podman image prune -f >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

step "build $IMAGE (server/deploy/Dockerfile, BASE_IMAGE=$BASE_IMAGE)"
SECRET=()
[ -s "$PIP_CA_BUNDLE" ] && SECRET=(--secret "id=pip-ca,src=$PIP_CA_BUNDLE")
# --format docker: OCI image configs have no HEALTHCHECK. --network host: pip reaches PyPI.
"${PODMAN[@]}" build --format docker --network host "${ULIMITS[@]}" "${SECRET[@]}" \
    -f "$REPO/server/deploy/Dockerfile" --ignorefile "$REPO/server/deploy/Dockerfile.dockerignore" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$IMAGE" "$REPO"
SIZE=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image size: $((SIZE / 1000000)) MB (base: $(($(podman image inspect --format '{{.Size}}' "$BASE_IMAGE") / 1000000)) MB)"

step "run on 127.0.0.1"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${PODMAN[@]}" run -d --name "$NAME" "${ULIMITS[@]}" -p "127.0.0.1:$PORT:8800" "$IMAGE" >/dev/null
echo "container $NAME on 127.0.0.1:$PORT"

# The host-side probe: the repository's venv when it has grpcio, else the image's own Python in
# the host's network namespace (either way the call goes through the published port).
if [ -x "$REPO/.venv/bin/python" ] && "$REPO/.venv/bin/python" -c 'import grpc_health, baton.v1' 2>/dev/null; then
    PROBE=("$REPO/.venv/bin/python" -)
else
    PROBE=("${PODMAN[@]}" run --rm -i "${ULIMITS[@]}" --network host --entrypoint /opt/baton/bin/python "$IMAGE" -)
fi
probe() {  # probe PHASE [KEY]: PHASE health | nokey | key
    "${PROBE[@]}" "$PORT" "$@" <<'EOF'
import sys, time
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from baton.v1 import request_response_pb2 as rr, service_pb2_grpc as svc

port, phase = sys.argv[1], sys.argv[2]
with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
    if phase == "health":  # up to 90 s for the first start (migrations, model load)
        deadline = time.monotonic() + 90
        while True:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
                if status == "SERVING" or time.monotonic() > deadline:
                    break
            except grpc.RpcError as error:
                status = error.code().name
                if time.monotonic() > deadline:
                    break
            time.sleep(1)
        print(f"grpc.health.v1.Health/Check from the host: {status}")
        sys.exit(status != "SERVING")
    metadata = [("authorization", f"Bearer {sys.argv[3]}")] if phase == "key" else []
    try:
        svc.AgentServiceStub(channel).ListAgents(rr.ListAgentsRequest(), timeout=5, metadata=metadata)
        result = "OK"
    except grpc.RpcError as error:
        result = error.code().name
    print(f"AgentService/ListAgents {'with a key' if metadata else 'without a key'}: {result}")
    sys.exit(result != ("OK" if metadata else "UNAUTHENTICATED"))
EOF
}

step "checks"
probe health || { "${PODMAN[@]}" logs "$NAME" | tail -30; fail "no SERVING answer on 127.0.0.1:$PORT"; }
# Podman schedules periodic health checks through systemd timers (absent here, hence its
# "unable to get systemd connection" messages); `healthcheck run` runs the image's check now.
"${PODMAN[@]}" healthcheck run "$NAME" || fail "the image's HEALTHCHECK failed"
echo "podman healthcheck run: healthy"
uid=$("${PODMAN[@]}" exec "$NAME" id -u)
echo "runs as: $("${PODMAN[@]}" exec "$NAME" id)"
[ "$uid" != 0 ] || fail "the server runs as root"
probe nokey || fail "a call without credentials was not refused"
KEY=$("${PODMAN[@]}" exec "$NAME" baton keys create --role admin --name check-image 2>/dev/null | tail -1)
probe key "$KEY" || fail "a call with a fresh admin key failed"
"${PODMAN[@]}" stop -t 20 "$NAME" >/dev/null 2>&1
code=$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$NAME")
echo "SIGTERM stop: exit $code"
[ "$code" = 0 ] || { "${PODMAN[@]}" logs "$NAME" | tail -20; fail "unclean stop (exit $code)"; }

step "all checks passed: $IMAGE, $((SIZE / 1000000)) MB, in $((SECONDS - START)) s"
