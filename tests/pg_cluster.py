"""A private, throwaway PostgreSQL cluster for tests that stop and start the database.

The shared cluster of `make test` (.ci/postgres) serves every other test, so a test must never
stop it; a test that needs the database to go away (and come back) under a live Baton server
starts its own:

    cluster = PrivateCluster()              # initdb + start, on a free loopback port
    try:
        url = cluster.url                   # postgresql+asyncpg://postgres@127.0.0.1:PORT/postgres
        await asyncio.to_thread(cluster.stop)   # fast shutdown; the data stays
        await asyncio.to_thread(cluster.start)  # same port, same data
    finally:
        cluster.close()                     # stop, and remove every file

The methods block until pg_ctl is done (-w), so async tests call them through
`asyncio.to_thread` to keep their event loop (and the server under test) running meanwhile.
As .ci/postgres does, the files live in a fresh directory under /tmp, and as root the server
runs as the `postgres` user (PostgreSQL refuses to run as root), who can reach that directory.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

# pg_ctl -w gives up after this long; a throwaway cluster starts in well under a second.
PG_CTL_TIMEOUT_S = 60
# TCP on loopback only; durability is not under test, so no fsyncs (as in .ci/postgres). A fast
# shutdown still writes everything out: the data survives stop() and start().
SERVER_SETTINGS = (
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
)


def postgres_bindir() -> Path | None:
    """The PostgreSQL binaries .ci/postgres uses: BATON_PG_BINDIR, else the newest Debian ones."""
    if configured := os.environ.get("BATON_PG_BINDIR"):
        return Path(configured)
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()]
    # By version number, so that 9.6 < 15 (Debian names the folders after the major version).
    found.sort(key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)])
    return found[-1] if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrivateCluster:
    """A PostgreSQL cluster of its own, started on creation. Skips the test when PostgreSQL is
    not installed, or fails it when BATON_REQUIRE_POSTGRES=1 (as under `make test`)."""

    def __init__(self) -> None:
        bindir = postgres_bindir()
        if bindir is None or not (bindir / "initdb").exists():
            where = bindir or "/usr/lib/postgresql/*/bin"
            message = f"PostgreSQL is not installed (no initdb in {where})"
            if os.environ.get("BATON_REQUIRE_POSTGRES") == "1":
                pytest.fail(f"{message} but PostgreSQL tests are required")
            pytest.skip(f"{message}; `apt-get install postgresql`, or run `make test`")
        self.bindir = bindir
        self.port = _free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        # The same cluster for asyncpg.connect(), which takes no SQLAlchemy driver name.
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        # Under /tmp rather than $TMPDIR, which as root may be a folder `postgres` cannot reach.
        self.directory = Path(tempfile.mkdtemp(prefix="baton-pg.", dir="/tmp"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        self._as_postgres = os.getuid() == 0
        try:
            if self._as_postgres:
                os.chown(self.directory, pwd.getpwnam("postgres").pw_uid, -1)
            self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
            )
            self.start()
        except BaseException:
            self.close()
            raise

    def start(self) -> None:
        """Starts the server (again) on the same port, over the same data."""
        # One string: pg_ctl hands it to a shell. The socket goes to our directory, not to
        # /var/run/postgresql (absent, or someone else's).
        options = ["-p", str(self.port), "-k", str(self.directory)]
        for setting in SERVER_SETTINGS:
            options += ["-c", setting]
        try:
            self._run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t",
                str(PG_CTL_TIMEOUT_S), "start", "-o", shlex.join(options),
            )  # fmt: skip
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{self.log} ends with:\n{self._log_tail()}") from None

    def stop(self) -> None:
        """Fast shutdown (sessions are ended, no data lost); start() brings it back."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        # pg_ctl status: 0 running, 3 not running, 4 no data directory.
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def close(self) -> None:
        """Stops the server if it runs and removes the cluster's files."""
        if self.data.exists() and self.running():
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PrivateCluster:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(
        self, program: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        extra: dict[str, Any] = {}
        if self._as_postgres:
            extra = {"user": "postgres", "group": "postgres", "extra_groups": []}
        result = subprocess.run(
            [str(self.bindir / program), *args],
            # Its own directory: initdb fails when it cannot read its working directory.
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=PG_CTL_TIMEOUT_S + 30,
            check=False,
            **extra,
        )
        if check and result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise RuntimeError(
                f"private PostgreSQL cluster in {self.directory}: `{program} {shlex.join(args)}`"
                f" failed (exit {result.returncode}): {output}"
            )
        return result

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as error:
            return f"(cannot read it: {error})"
