#!/usr/bin/env bash
# Packaging check of the Python client: builds the wheel and sdist of baton-client with
# `python -m build` (in a throwaway venv), checks their metadata (version 0.2.0, license
# Apache-2.0, LICENSE inside), installs the wheel into a scratch venv OUTSIDE the repository
# and runs a ten-line program against the live server:
#   BATON_SMOKE_TARGET=127.0.0.1:PORT BATON_SMOKE_INTEGRATION_KEY=bk_key_... \
#     clients/python/package-check.sh
# PYTHON (default python3, 3.11+) makes the venvs; pip downloads are cached in .cache/pip.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
: "${BATON_SMOKE_TARGET:?set BATON_SMOKE_TARGET (host:port of a running server)}"
: "${BATON_SMOKE_INTEGRATION_KEY:?set BATON_SMOKE_INTEGRATION_KEY (an integration API key)}"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$ROOT/.cache/pip}" PIP_DISABLE_PIP_VERSION_CHECK=1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cmp -s "$ROOT/LICENSE" "$HERE/LICENSE" || {
  echo "package-check: clients/python/LICENSE differs from the root LICENSE (copy it)" >&2
  exit 1
}

# Build from a copy, so that no build/ or *.egg-info lands in the repository.
mkdir "$work/src"
cp -R "$HERE/pyproject.toml" "$HERE/README.md" "$HERE/LICENSE" "$HERE/src" "$HERE/generated" \
  "$work/src/"
"$PYTHON" -m venv "$work/build-venv"
"$work/build-venv/bin/pip" install -q "build>=1.2"
"$work/build-venv/bin/python" -m build --outdir "$work/dist" "$work/src" >"$work/build.log" 2>&1 || {
  cat "$work/build.log" >&2
  exit 1
}
wheel=$(ls "$work"/dist/baton_client-0.2.0-*.whl)
sdist=$(ls "$work"/dist/baton_client-0.2.0.tar.gz)
echo "package-check: built $(basename "$wheel") and $(basename "$sdist")"

"$work/build-venv/bin/python" - "$wheel" "$sdist" <<'PY'
import sys, tarfile, zipfile
wheel, sdist = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    for needed in ("baton_client/__init__.py", "baton_client/py.typed",
                   "baton/v1/service_pb2_grpc.py", "baton/v1/message_pb2.pyi"):
        assert needed in names, f"{needed} missing from the wheel"
assert "License-Expression: Apache-2.0" in meta, meta
assert "Version: 0.2.0" in meta, meta
with tarfile.open(sdist) as t:
    members = t.getnames()
    assert "baton_client-0.2.0/LICENSE" in members, members
    assert "baton_client-0.2.0/src/baton_client/errors.py" in members, members
print("package-check: metadata ok (0.2.0, Apache-2.0, LICENSE in wheel and sdist)")
PY

# A scratch project outside the repository, with only the wheel installed.
app="$work/app"
mkdir "$app"
"$PYTHON" -m venv "$app/.venv"
"$app/.venv/bin/pip" install -q "$wheel"
cat >"$app/main.py" <<'PY'
import asyncio, os
from baton_client import BatonClient, NotFound

async def main() -> None:
    async with BatonClient(os.environ["BATON_SMOKE_TARGET"], api_key=os.environ["BATON_SMOKE_INTEGRATION_KEY"]) as client:
        customer = await client.customers.create("Package check", metadata={"via": "wheel"})
        agents = [agent.name async for agent in client.agents.iterate()]
        try:
            await client.sessions.get("ses_package_check")
        except NotFound as error:
            print(f"customer {customer.id}; {len(agents)} agent(s); missing session: {error.reason}")

asyncio.run(main())
PY
(cd "$app" && env -u PYTHONPATH .venv/bin/python main.py)
# The program ran from the installed wheel, not from the repository.
(cd "$app" && env -u PYTHONPATH .venv/bin/python -c \
  'import baton_client, sys; assert "site-packages" in baton_client.__file__, baton_client.__file__')
echo "package-check python: ok"
