"""Child processes of a bench, and the one launcher of `baton serve`.

`Procs` owns every child a bench starts (servers, baselines, load workers) and ends each one when
its `async with` is left, whether the run completed, failed or was cancelled; every child also
gets PR_SET_PDEATHSIG, so even a `kill -9` of the orchestrator takes it down. `start_baton`
starts `baton serve` on a free loopback port with the given flags on a SQLite file or a
PostgreSQL URL, waits until its health service says SERVING, and `Procs.stop` stops it
gracefully (SIGTERM, then SIGKILL after a bounded wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

HOST = "127.0.0.1"
# The project root: worker processes run `python -m bench.worker` from here.
ROOT = Path(__file__).resolve().parent.parent
# One customer-token secret per run: replicas on one PostgreSQL must share it (a server on
# PostgreSQL without --dev refuses to start without one).
TOKEN_SECRET = secrets.token_urlsafe(32)


class WorkerFailed(RuntimeError):
    """A child process failed, exited early or did not answer in time."""


# Every child starts through this trampoline: it asks Linux to SIGKILL it when the orchestrator
# dies (even by SIGKILL; PR_SET_PDEATHSIG survives exec), then execs the real command (same pid).
# Not a preexec_fn: that forces fork(), whose grpc fork handlers can abort the child (epoll EBADF).
_TRAMPOLINE = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL('libc.so.6').prctl(1, signal.SIGKILL)\n"
    "if os.getppid() != int(sys.argv[1]): sys.exit('orchestrator gone')\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def _executable(command: str) -> str:
    """The absolute path of a command (os.execv needs one; children run in the workdir)."""
    found = shutil.which(command)
    if found is None:
        raise WorkerFailed(f"{command!r} not found")
    return os.path.abspath(found)


@dataclass(slots=True)
class Proc:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def expect(self, prefix: str, timeout_s: float) -> dict[str, Any]:
        """Reads stdout until a line `PREFIX {json}`; returns the JSON. Fails on EOF/timeout."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerFailed(f"{self.name}: no {prefix} within {timeout_s:.0f}s")
            try:
                line = await asyncio.wait_for(self.process.stdout.readline(), remaining)
            except TimeoutError:
                continue
            if not line:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.process.wait(), 5)
                raise WorkerFailed(
                    f"{self.name} exited (code {self.process.returncode}) before {prefix}:\n"
                    f"{self.log_tail()}"
                )
            text = line.decode().strip()
            if text.startswith(prefix + " "):
                return dict(json.loads(text[len(prefix) + 1 :]))

    async def send(self, line: str) -> None:
        """A line on the child's stdin (e.g. STOP), if it is still running."""
        if self.process.stdin is not None and self.process.returncode is None:
            with contextlib.suppress(ConnectionError):
                self.process.stdin.write(line.encode() + b"\n")
                await self.process.stdin.drain()


class Procs:
    """Owns child processes; leaving the `async with` ends every one (SIGTERM, then SIGKILL)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._procs: list[Proc] = []
        self._numbers = itertools.count()

    async def __aenter__(self) -> Procs:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for proc in reversed(list(self._procs)):
            await self.stop(proc)

    async def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        pipes: bool = True,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Proc:
        """Starts `argv` (stderr, and stdout unless `pipes`, to a log file in the workdir)."""
        executable = _executable(argv[0])
        log_path = self.workdir / f"{name}-{next(self._numbers)}.log"
        with log_path.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _TRAMPOLINE,
                str(os.getpid()),
                executable,
                *argv[1:],
                stdin=asyncio.subprocess.PIPE if pipes else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if pipes else log_file,
                stderr=log_file,
                env=env,
                cwd=cwd or self.workdir,
                limit=1 << 22,
            )
        proc = Proc(name, process, log_path)
        self._procs.append(proc)
        return proc

    async def worker(self, function: Callable[..., Any], config: dict[str, Any]) -> Proc:
        """Runs `await function(config)` in a child process (`python -m bench.worker`); it
        prints `RESULT {json}` with what the function returns."""
        module = function.__module__
        if module == "__main__":  # a bench run as `python -m bench.NAME`
            spec = getattr(sys.modules["__main__"], "__spec__", None)
            module = spec.name if spec is not None else module
        name = function.__name__.removeprefix("worker_")
        config_path = self.workdir / f"{name}-{next(self._numbers)}.json"
        config_path.write_text(json.dumps(config))
        argv = [sys.executable, "-m", "bench.worker", f"{module}:{function.__name__}"]
        return await self.spawn(name, [*argv, str(config_path)], cwd=ROOT)

    async def stop(self, proc: Proc, timeout_s: float = 20.0) -> None:
        """SIGTERM, then SIGKILL if the child has not exited within `timeout_s`."""
        process = proc.process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await asyncio.wait_for(process.wait(), timeout_s)
        if proc in self._procs:
            self._procs.remove(proc)


# =============================================================================================
# Servers
# =============================================================================================


@dataclass(frozen=True, slots=True)
class Server:
    proc: Proc
    target: str
    argv: tuple[str, ...] = ()  # the server's command line (Baton's)

    @property
    def pid(self) -> int:
        return self.proc.pid


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def baton_command() -> list[str]:
    """The venv's `baton` script, else `python -m baton_server`."""
    script = Path(sys.executable).with_name("baton")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "baton_server"]


def database_url(database: str | Path) -> str:
    """A SQLite file (a Path) or a database URL as it is."""
    return f"sqlite+aiosqlite:///{database}" if isinstance(database, Path) else database


def server_env(pythonpath: str = "", extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without anything that would change the server behind the flags
    (BATON_DEV=1 turns authentication off, OPENAI_API_KEY switches the agent to OpenAI)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    env.pop("OPENAI_API_KEY", None)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


async def wait_serving(proc: Proc, target: str, timeout_s: float, *, health: bool = False) -> None:
    """Until `target` accepts a connection (and, with `health`, its health service says
    SERVING); fails early if the process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.process.returncode is not None:
            raise WorkerFailed(f"{proc.name} exited at start-up:\n{proc.log_tail()}")
        async with grpc.aio.insecure_channel(target) as channel:
            with contextlib.suppress(TimeoutError, grpc.aio.AioRpcError):
                await asyncio.wait_for(channel.channel_ready(), 1.0)
                if not health:
                    return
                stub = health_pb2_grpc.HealthStub(channel)
                response = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        await asyncio.sleep(0.2)
    raise WorkerFailed(f"{proc.name} not serving after {timeout_s:.0f}s:\n{proc.log_tail()}")


async def start_baton(
    procs: Procs,
    database: str | Path,
    *flags: str,
    name: str = "baton",
    command: Sequence[str] | None = None,
    log_level: str = "WARNING",
    pythonpath: str = "",
    timeout_s: float = 90.0,
    env: dict[str, str] | None = None,
) -> Server:
    """`baton serve` on HOST and a free port, on `database` (a SQLite file or a URL), with
    `flags` (e.g. `--dev`, `--no-engine`); returns once it serves.

    `command` replaces the `baton` command (e.g. `python -m baton_server` with `pythonpath` for
    another checkout); `env` adds environment variables. Without `--dev` on PostgreSQL the
    server gets the run's TOKEN_SECRET."""
    url = database_url(database)
    extra = dict(env or {})
    if not url.startswith("sqlite") and "--dev" not in flags:
        if not any(flag.startswith("--token-secret") for flag in flags):
            extra["BATON_TOKEN_SECRET"] = TOKEN_SECRET
    env = server_env(pythonpath, extra)
    for _attempt in range(3):  # a free port can be taken before the server binds it
        port = free_port()
        argv = (
            *(command or baton_command()),
            "serve",
            "--host", HOST,
            "--port", str(port),
            "--database", url,
            "--log-level", log_level,
            *flags,
        )  # fmt: skip
        proc = await procs.spawn(name, argv, pipes=False, env=env)
        target = f"{HOST}:{port}"
        try:
            await wait_serving(proc, target, timeout_s, health=True)
        except WorkerFailed:
            if "cannot listen on" not in proc.log_tail():
                raise
            await procs.stop(proc)
            continue
        return Server(proc, target, argv)
    raise WorkerFailed(f"{name}: no free port to listen on")


def create_key(database: str | Path, role: str) -> str:
    """`baton keys create` on the database (before the server starts); returns the secret."""
    argv = [
        *baton_command(),
        "keys", "create",
        "--role", role,
        "--name", "bench",
        "--database", database_url(database),
    ]  # fmt: skip
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, check=True, env=server_env()
    )
    secret = done.stdout.strip().splitlines()[-1]
    if not secret.startswith("bk_"):
        raise WorkerFailed(f"baton keys create printed no secret:\n{done.stdout}{done.stderr}")
    return secret


async def create_postgres_database(admin_url: str) -> str:
    """A new, empty database on the PostgreSQL of `admin_url`; its URL (same driver)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(admin_url)
    name = f"baton_bench_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(
        url.set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return url.set(database=name).render_as_string(hide_password=False)


async def figure_database(postgres_admin_url: str, workdir: Path, name: str) -> str | Path:
    """Where a figure's Baton keeps its data: a fresh PostgreSQL database when the run has an
    admin URL, else `<workdir>/<name>.db`."""
    if postgres_admin_url:
        return await create_postgres_database(postgres_admin_url)
    return workdir / f"{name}.db"
